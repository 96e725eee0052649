// SPDX-License-Identifier: MIT
/*
 * Per-device DMA mapping operations (the 2006 struct ib_dma_mapping_ops;
 * docs/address-forms.md):
 *
 *  iommu_ops   DMA-capable device: an emulated IOMMU hands out IO virtual
 *              addresses from its own space; the page table is shared
 *              with ipathd, which is told to flush its IOTLB after every
 *              change, so after unmap returns the device cannot reach the
 *              page any more.
 *  ipath_ops   software device: the "DMA address" is the kernel virtual
 *              address (as ipath_dma.c did); a highmem page, which has
 *              none, gets the page form, which the daemon kmaps.
 *  legacy_ops  ipath_dma.c's behaviour unchanged: a highmem page maps to
 *              page_address() = NULL, i.e. a mapping error (its TODO).
 *
 * A mapping error is address 0 (ipath's BAD_DMA_ADDRESS).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kstub_priv.h"

#define BAD_DMA_ADDRESS ((dma_addr_t)0)

static int bad_dma(struct ib_device *dev, dma_addr_t addr)
{
	return addr == BAD_DMA_ADDRESS;
}

static void sync_noop(struct ib_device *dev, dma_addr_t addr, size_t size,
		      enum dma_data_direction dir)
{
	/* Coherent memory: only order the CPU's accesses against the
	 * device's (which runs in another process). */
	atomic_thread_fence(memory_order_seq_cst);
}

static uint64_t kva_to_phys(struct ib_device *dev, const void *p)
{
	return (uint64_t)((const uint8_t *)p - dev->lowmem);
}

static bool kva_valid(struct ib_device *dev, const void *p, size_t size)
{
	uint64_t low = dev->low_pages * dev->pg;

	return (const uint8_t *)p >= dev->lowmem && kva_to_phys(dev, p) < low &&
	       size <= low - kva_to_phys(dev, p);
}

/* ---- IOMMU ------------------------------------------------------------- */

static int iommu_flush(struct ib_device *dev, uint64_t first, uint64_t n)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__IommuInval inv = IPD__IOMMU_INVAL__INIT;
	Ipd__Response *r;

	inv.mr = dev->mr;
	inv.first_page = first;
	inv.npages = n;
	req.op_case = IPD__REQUEST__OP_IOMMU_INVAL;
	req.iommu_inval = &inv;
	r = kstub_call(dev, &req, NULL, 0, NULL, NULL, 0);
	if (!r)
		return -errno;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

static int64_t iova_alloc(struct ib_device *dev, uint64_t n)
{
	uint64_t run = 0;

	for (uint64_t i = 0; i < dev->iova_pages; i++) {
		run = dev->iova_used[i] ? 0 : run + 1;
		if (run == n) {
			memset(dev->iova_used + i + 1 - n, 1, n);
			return (int64_t)(i + 1 - n);
		}
	}
	return -1;
}

static uint64_t dir_perm(enum dma_data_direction dir)
{
	return dir == DMA_TO_DEVICE ? IPD_PTE_READ :
	       dir == DMA_FROM_DEVICE ? IPD_PTE_WRITE :
					IPD_PTE_READ | IPD_PTE_WRITE;
}

/*
 * Map the n physical pages pfns[] at a fresh IOVA range and flush the
 * device's IOTLB.  Each range is followed by one IOVA page that stays
 * invalid (a guard page): a transfer that runs past its mapping faults
 * instead of reaching the next mapping.  Returns the first IOVA page or -1.
 */
static int64_t iommu_map_pfns(struct ib_device *dev, const uint64_t *pfns,
			      uint64_t n, enum dma_data_direction dir)
{
	int64_t first = iova_alloc(dev, n + 1);

	if (first < 0)
		return -1;
	for (uint64_t i = 0; i < n; i++)
		dev->ptes[first + (int64_t)i] = IPD_PTE_VALID | dir_perm(dir) |
						pfns[i];
	if (iommu_flush(dev, (uint64_t)first, n)) {
		memset(dev->ptes + first, 0, n * sizeof(*dev->ptes));
		memset(dev->iova_used + first, 0, n + 1);
		return -1;
	}
	return first;
}

/* Map physically contiguous [phys, phys + size). */
static dma_addr_t iommu_map(struct ib_device *dev, uint64_t phys,
			    size_t size, enum dma_data_direction dir)
{
	uint64_t off = phys % dev->pg, pfn = phys / dev->pg;
	uint64_t n = (off + size + dev->pg - 1) / dev->pg;
	uint64_t *pfns;
	int64_t first;

	if (!size || pfn + n > dev->phys_pages)
		return BAD_DMA_ADDRESS;
	pfns = malloc(n * sizeof(*pfns));
	if (!pfns)
		return BAD_DMA_ADDRESS;
	for (uint64_t i = 0; i < n; i++)
		pfns[i] = pfn + i;
	first = iommu_map_pfns(dev, pfns, n, dir);
	free(pfns);
	if (first < 0)
		return BAD_DMA_ADDRESS;
	return IPD_IOVA_BASE + (uint64_t)first * dev->pg + off;
}

static void iommu_unmap(struct ib_device *dev, dma_addr_t addr, size_t size,
			enum dma_data_direction dir)
{
	uint64_t off, first, n;

	if (addr < IPD_IOVA_BASE || !size)
		return;
	off = addr - IPD_IOVA_BASE;
	first = off / dev->pg;
	n = (off % dev->pg + size + dev->pg - 1) / dev->pg;
	if (first >= dev->iova_pages || n >= dev->iova_pages - first)
		return;
	memset(dev->ptes + first, 0, n * sizeof(*dev->ptes));
	/* The range (and its guard page) is free again only once the
	 * device cannot use it. */
	if (!iommu_flush(dev, first, n))
		memset(dev->iova_used + first, 0, n + 1);
}

static dma_addr_t iommu_map_single(struct ib_device *dev, void *cpu_addr,
				   size_t size, enum dma_data_direction dir)
{
	if (!kva_valid(dev, cpu_addr, size))
		return BAD_DMA_ADDRESS;
	return iommu_map(dev, kva_to_phys(dev, cpu_addr), size, dir);
}

static dma_addr_t iommu_map_page(struct ib_device *dev, struct page *page,
				 unsigned long offset, size_t size,
				 enum dma_data_direction dir)
{
	/* The IOMMU needs no kernel mapping of the page at all. */
	return iommu_map(dev, page->pfn * dev->pg + offset, size, dir);
}

/* Pages an entry touches (physically contiguous from its page). */
static uint64_t sg_pages(struct ib_device *dev, const struct scatterlist *sg)
{
	return (sg->offset + sg->length + dev->pg - 1) / dev->pg;
}

/* Entry k continues entry k-1 in one IO virtual range: the previous one
 * ends at a page end and this one starts at a page start. */
static bool sg_joins(struct ib_device *dev, const struct scatterlist *prev,
		     const struct scatterlist *sg)
{
	return sg->offset == 0 && (prev->offset + prev->length) % dev->pg == 0;
}

/*
 * Like an IOMMU's dma_map_sg(): entries that meet at page boundaries are
 * merged into one IO virtual segment, however scattered their physical
 * pages.  Segments are written to sg[0..count) (dma_address/dma_length);
 * the remaining entries get dma_length 0.  Returns count, 0 on failure.
 */
static int iommu_map_sg(struct ib_device *dev, struct scatterlist *sg,
			int nents, enum dma_data_direction dir)
{
	uint64_t pfns[64], npfn;
	int count = 0, i = 0;

	for (int k = 0; k < nents; k++)
		if (!sg[k].length || sg[k].page->pfn + sg_pages(dev, &sg[k]) >
					      dev->phys_pages)
			return 0;
	while (i < nents) {
		int j = i;
		uint32_t len = 0;
		int64_t first;

		npfn = 0;
		do {
			uint64_t n = sg_pages(dev, &sg[j]);

			if (npfn + n > sizeof(pfns) / sizeof(pfns[0]))
				break;
			for (uint64_t p = 0; p < n; p++)
				pfns[npfn++] = sg[j].page->pfn + p;
			len += sg[j].length;
			j++;
		} while (j < nents && sg_joins(dev, &sg[j - 1], &sg[j]));
		if (j == i)
			goto err;
		first = iommu_map_pfns(dev, pfns, npfn, dir);
		if (first < 0)
			goto err;
		/* sg[count] may be sg[i] itself: read offset first. */
		sg[count].dma_address = IPD_IOVA_BASE +
					(uint64_t)first * dev->pg + sg[i].offset;
		sg[count].dma_length = len;
		count++;
		i = j;
	}
	for (int k = count; k < nents; k++)
		sg[k].dma_length = 0;
	return count;

err:
	while (count--)
		iommu_unmap(dev, sg[count].dma_address, sg[count].dma_length,
			    dir);
	return 0;
}

static void iommu_unmap_sg(struct ib_device *dev, struct scatterlist *sg,
			   int nents, enum dma_data_direction dir)
{
	for (int i = 0; i < nents && sg[i].dma_length; i++)
		iommu_unmap(dev, sg[i].dma_address, sg[i].dma_length, dir);
}

static const struct ib_dma_mapping_ops iommu_ops = {
	.name = "iommu",
	.mapping_error = bad_dma,
	.map_single = iommu_map_single,
	.unmap_single = iommu_unmap,
	.map_page = iommu_map_page,
	.unmap_page = iommu_unmap,
	.map_sg = iommu_map_sg,
	.unmap_sg = iommu_unmap_sg,
	.sync_single_for_cpu = sync_noop,
	.sync_single_for_device = sync_noop,
};

/* ---- the software device (ipath) ---------------------------------------- */

static dma_addr_t ipath_map_single(struct ib_device *dev, void *cpu_addr,
				   size_t size, enum dma_data_direction dir)
{
	/* ipath_dma_map_single: the DMA address is the kernel VA. */
	if (!kva_valid(dev, cpu_addr, size))
		return BAD_DMA_ADDRESS;
	return (dma_addr_t)(uintptr_t)cpu_addr;
}

static void ipath_unmap(struct ib_device *dev, dma_addr_t addr, size_t size,
			enum dma_data_direction dir)
{
	/* Nothing to tear down: the kernel VA stays the kernel's. */
}

/*
 * The software device's map_page.  As ipath, a mapping may not leave its
 * page and a lowmem page maps to its kernel VA.  A highmem page has none:
 * ipath_dma.c (legacy) gave up there (its TODO); ipathd answers with the
 * page form.
 */
static dma_addr_t sw_map_page(struct ib_device *dev, struct page *page,
			      unsigned long offset, size_t size, bool legacy)
{
	void *kva;

	if (offset + size > dev->pg)
		return BAD_DMA_ADDRESS;
	kva = page_address(dev, page);
	if (kva)
		return (dma_addr_t)(uintptr_t)kva + offset;
	if (legacy)
		return BAD_DMA_ADDRESS;
	return IPD_PAGE_TAG | (page->pfn * dev->pg + offset);
}

static dma_addr_t ipath_map_page(struct ib_device *dev, struct page *page,
				 unsigned long offset, size_t size,
				 enum dma_data_direction dir)
{
	return sw_map_page(dev, page, offset, size, false);
}

static dma_addr_t legacy_map_page(struct ib_device *dev, struct page *page,
				  unsigned long offset, size_t size,
				  enum dma_data_direction dir)
{
	return sw_map_page(dev, page, offset, size, true);
}

static int sw_map_sg(struct ib_device *dev, struct scatterlist *sg, int nents,
		     enum dma_data_direction dir, bool legacy)
{
	for (int i = 0; i < nents; i++) {
		sg[i].dma_address = legacy ?
			legacy_map_page(dev, sg[i].page, sg[i].offset,
					sg[i].length, dir) :
			ipath_map_page(dev, sg[i].page, sg[i].offset,
				       sg[i].length, dir);
		sg[i].dma_length = sg[i].length;
		/* ipath_map_sg: any page without an address fails all. */
		if (bad_dma(dev, sg[i].dma_address))
			return 0;
	}
	return nents;
}

static int ipath_map_sg(struct ib_device *dev, struct scatterlist *sg,
			int nents, enum dma_data_direction dir)
{
	return sw_map_sg(dev, sg, nents, dir, false);
}

static int legacy_map_sg(struct ib_device *dev, struct scatterlist *sg,
			 int nents, enum dma_data_direction dir)
{
	return sw_map_sg(dev, sg, nents, dir, true);
}

static void ipath_unmap_sg(struct ib_device *dev, struct scatterlist *sg,
			   int nents, enum dma_data_direction dir)
{
}

static const struct ib_dma_mapping_ops ipath_ops = {
	.name = "ipath",
	.mapping_error = bad_dma,
	.map_single = ipath_map_single,
	.unmap_single = ipath_unmap,
	.map_page = ipath_map_page,
	.unmap_page = ipath_unmap,
	.map_sg = ipath_map_sg,
	.unmap_sg = ipath_unmap_sg,
	.sync_single_for_cpu = sync_noop,
	.sync_single_for_device = sync_noop,
};

static const struct ib_dma_mapping_ops legacy_ops = {
	.name = "ipath-2006",
	.mapping_error = bad_dma,
	.map_single = ipath_map_single,
	.unmap_single = ipath_unmap,
	.map_page = legacy_map_page,
	.unmap_page = ipath_unmap,
	.map_sg = legacy_map_sg,
	.unmap_sg = ipath_unmap_sg,
	.sync_single_for_cpu = sync_noop,
	.sync_single_for_device = sync_noop,
};

int kstub_dma_init(struct ib_device *dev, uint64_t iova_pages)
{
	size_t len = (iova_pages * sizeof(uint64_t) + dev->pg - 1) &
		     ~(dev->pg - 1);
	void *p;

	dev->pt_fd = memfd_create("kstub-iommu-pt",
				  MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (dev->pt_fd < 0)
		return -errno;
	if (ftruncate(dev->pt_fd, (off_t)len) < 0)
		return -errno;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dev->pt_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	dev->ptes = p;
	dev->iova_pages = iova_pages;
	dev->iova_used = calloc(iova_pages, 1);
	return dev->iova_used ? 0 : -ENOMEM;
}

void kstub_dma_fini(struct ib_device *dev)
{
	if (dev->ptes)
		munmap(dev->ptes, (dev->iova_pages * sizeof(uint64_t) +
				   dev->pg - 1) & ~(dev->pg - 1));
	if (dev->pt_fd >= 0)
		close(dev->pt_fd);
	free(dev->iova_used);
}

void kstub_dma_select(struct ib_device *dev, bool legacy)
{
	if (dev->dma_capable)
		dev->ops = &iommu_ops;
	else
		dev->ops = legacy ? &legacy_ops : &ipath_ops;
}

/* ---- include/rdma/ib_verbs.h: ib_dma_* go through the device's ops ------ */

int ib_dma_mapping_error(struct ib_device *dev, dma_addr_t addr)
{
	return dev->ops->mapping_error(dev, addr);
}

dma_addr_t ib_dma_map_single(struct ib_device *dev, void *cpu_addr,
			     size_t size, enum dma_data_direction dir)
{
	return dev->ops->map_single(dev, cpu_addr, size, dir);
}

void ib_dma_unmap_single(struct ib_device *dev, dma_addr_t addr, size_t size,
			 enum dma_data_direction dir)
{
	dev->ops->unmap_single(dev, addr, size, dir);
}

dma_addr_t ib_dma_map_page(struct ib_device *dev, struct page *page,
			   unsigned long offset, size_t size,
			   enum dma_data_direction dir)
{
	return dev->ops->map_page(dev, page, offset, size, dir);
}

void ib_dma_unmap_page(struct ib_device *dev, dma_addr_t addr, size_t size,
		       enum dma_data_direction dir)
{
	dev->ops->unmap_page(dev, addr, size, dir);
}

int ib_dma_map_sg(struct ib_device *dev, struct scatterlist *sg, int nents,
		  enum dma_data_direction dir)
{
	return dev->ops->map_sg(dev, sg, nents, dir);
}

void ib_dma_unmap_sg(struct ib_device *dev, struct scatterlist *sg, int nents,
		     enum dma_data_direction dir)
{
	dev->ops->unmap_sg(dev, sg, nents, dir);
}

void ib_dma_sync_single_for_cpu(struct ib_device *dev, dma_addr_t addr,
				size_t size, enum dma_data_direction dir)
{
	dev->ops->sync_single_for_cpu(dev, addr, size, dir);
}

void ib_dma_sync_single_for_device(struct ib_device *dev, dma_addr_t addr,
				   size_t size, enum dma_data_direction dir)
{
	dev->ops->sync_single_for_device(dev, addr, size, dir);
}
