// SPDX-License-Identifier: MIT
/*
 * The kernel's memory in the stubs: physical pages in a memfd shared with
 * ipathd.  Pages [0, low_pages) are lowmem and permanently mapped at
 * IPD_KVA_BASE (the direct map: a kernel VA is IPD_KVA_BASE + physical
 * address, and a kmalloc() pointer is one).  The rest is highmem, with no
 * kernel mapping at all: code that must touch such a page maps it into a
 * small kmap window and unmaps it afterwards, as 32-bit Linux did.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kstub_priv.h"

int kstub_mem_init(struct ib_device *dev, uint64_t phys_pages,
		   uint64_t low_pages)
{
	size_t pg = dev->pg;
	void *p;

	dev->phys_fd = memfd_create("kstub-phys", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (dev->phys_fd < 0)
		return -errno;
	if (ftruncate(dev->phys_fd, (off_t)(phys_pages * pg)) < 0)
		return -errno;
	dev->phys_pages = phys_pages;
	dev->low_pages = low_pages;
	dev->pages = calloc(phys_pages, sizeof(*dev->pages));
	dev->alloc_len = calloc(phys_pages, sizeof(*dev->alloc_len));
	if (!dev->pages || !dev->alloc_len)
		return -ENOMEM;
	for (uint64_t i = 0; i < phys_pages; i++)
		dev->pages[i].pfn = i;
	if (low_pages) {
		/* MAP_FIXED_NOREPLACE: fail rather than clobber a mapping. */
		p = mmap((void *)(uintptr_t)IPD_KVA_BASE, low_pages * pg,
			 PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED_NOREPLACE, dev->phys_fd, 0);
		if (p == MAP_FAILED)
			return -errno;
		if (p != (void *)(uintptr_t)IPD_KVA_BASE) {
			munmap(p, low_pages * pg);
			return -EEXIST;
		}
		dev->lowmem = p;
	}
	p = mmap(NULL, KSTUB_KMAP_SLOTS * pg, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	dev->kmap_win = p;
	for (int i = 0; i < KSTUB_KMAP_SLOTS; i++)
		dev->kmap_pfn[i] = KSTUB_NO_PFN;
	return 0;
}

void kstub_mem_fini(struct ib_device *dev)
{
	if (dev->kmap_win)
		munmap(dev->kmap_win, KSTUB_KMAP_SLOTS * dev->pg);
	if (dev->lowmem)
		munmap(dev->lowmem, dev->low_pages * dev->pg);
	if (dev->phys_fd >= 0)
		close(dev->phys_fd);
	free(dev->pages);
	free(dev->alloc_len);
}

/* First fit of n free pages in [lo, hi); returns the first pfn or -1. */
static int64_t pages_find(struct ib_device *dev, uint64_t lo, uint64_t hi,
			  uint64_t n)
{
	uint64_t run = 0;

	for (uint64_t i = lo; i < hi; i++) {
		/* alloc_len marks the first page; the rest are covered by it */
		if (dev->alloc_len[i]) {
			i += dev->alloc_len[i] - 1;
			run = 0;
			continue;
		}
		if (++run == n)
			return (int64_t)(i + 1 - n);
	}
	return -1;
}

static int64_t pages_alloc(struct ib_device *dev, uint64_t lo, uint64_t hi,
			   uint64_t n)
{
	int64_t first = pages_find(dev, lo, hi, n);

	if (first >= 0)
		dev->alloc_len[first] = (uint32_t)n;
	return first;
}

void *kmalloc(struct ib_device *dev, size_t size)
{
	uint64_t n = (size + dev->pg - 1) / dev->pg;
	int64_t first;

	if (!size)
		return NULL;
	first = pages_alloc(dev, 0, dev->low_pages, n);
	if (first < 0)
		return NULL;
	return dev->lowmem + (uint64_t)first * dev->pg;
}

void kfree(struct ib_device *dev, void *p)
{
	uint64_t pfn;

	if (!p)
		return;
	pfn = (uint64_t)((uint8_t *)p - dev->lowmem) / dev->pg;
	if (pfn < dev->low_pages)
		dev->alloc_len[pfn] = 0;
}

struct page *alloc_page(struct ib_device *dev, unsigned int gfp)
{
	int64_t pfn = -1;

	if (gfp & GFP_HIGHUSER)
		pfn = pages_alloc(dev, dev->low_pages, dev->phys_pages, 1);
	if (pfn < 0)
		pfn = pages_alloc(dev, 0, dev->low_pages, 1);
	return pfn < 0 ? NULL : &dev->pages[pfn];
}

void __free_page(struct ib_device *dev, struct page *page)
{
	if (page && page->pfn < dev->phys_pages)
		dev->alloc_len[page->pfn] = 0;
}

bool PageHighMem(const struct ib_device *dev, const struct page *page)
{
	return page->pfn >= dev->low_pages;
}

void *page_address(const struct ib_device *dev, const struct page *page)
{
	if (PageHighMem(dev, page))
		return NULL;
	return dev->lowmem + page->pfn * dev->pg;
}

struct page *virt_to_page(struct ib_device *dev, const void *kva)
{
	uint64_t off = (uint64_t)((const uint8_t *)kva - dev->lowmem);

	if ((const uint8_t *)kva < dev->lowmem || off / dev->pg >= dev->low_pages)
		return NULL;
	return &dev->pages[off / dev->pg];
}

void *kmap(struct ib_device *dev, struct page *page)
{
	int i;

	if (!PageHighMem(dev, page))
		return page_address(dev, page);
	for (i = 0; i < KSTUB_KMAP_SLOTS; i++)
		if (dev->kmap_pfn[i] == KSTUB_NO_PFN)
			break;
	if (i == KSTUB_KMAP_SLOTS)
		return NULL;
	if (mmap(dev->kmap_win + (size_t)i * dev->pg, dev->pg,
		 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, dev->phys_fd,
		 (off_t)(page->pfn * dev->pg)) == MAP_FAILED)
		return NULL;
	dev->kmap_pfn[i] = page->pfn;
	return dev->kmap_win + (size_t)i * dev->pg;
}

void kunmap(struct ib_device *dev, struct page *page)
{
	if (!PageHighMem(dev, page))
		return;
	for (int i = 0; i < KSTUB_KMAP_SLOTS; i++) {
		if (dev->kmap_pfn[i] != page->pfn)
			continue;
		/* The page leaves the kernel's address space again. */
		mmap(dev->kmap_win + (size_t)i * dev->pg, dev->pg, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		     -1, 0);
		dev->kmap_pfn[i] = KSTUB_NO_PFN;
		return;
	}
}
