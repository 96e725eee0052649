// SPDX-License-Identifier: MIT
/*
 * The emulated IOMMU of a DMA-capable ipathd device (docs/address-forms.md).
 * The stub's "kernel" owns the page table and writes its entries; the
 * daemon is the device behind the IOMMU and translates through its IOTLB,
 * which changes only when the kernel flushes it (IommuInval), exactly the
 * contract of real hardware: after dma_unmap_*() returns, the device can
 * no longer reach the page.  A translation fault makes the caller answer
 * with a remote access error; it never touches memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"

static uint64_t pg(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

int ipd_iommu_init(struct ipd_iommu *io, int pt_fd, uint64_t npages,
		   int phys_fd, uint64_t phys_pages)
{
	struct stat st;
	void *p;

	io->pt_len = (npages * sizeof(uint64_t) + pg() - 1) & ~(pg() - 1);
	if (fstat(pt_fd, &st) < 0 || (uint64_t)st.st_size < io->pt_len)
		return -EINVAL;
	/* Sealed against shrinking by the caller (addr.c): reading a page
	 * table past its end would SIGBUS the daemon. */
	p = mmap(NULL, io->pt_len, PROT_READ, MAP_SHARED, pt_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	io->ptes = p;
	io->npages = npages;
	io->iotlb = calloc(npages, sizeof(*io->iotlb));
	io->view = mmap(NULL, npages * pg(), PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!io->iotlb || io->view == MAP_FAILED) {
		if (io->view != MAP_FAILED)
			munmap(io->view, npages * pg());
		free(io->iotlb);
		munmap(p, io->pt_len);
		return -ENOMEM;
	}
	io->phys_fd = phys_fd;
	io->phys_pages = phys_pages;
	return 0;
}

void ipd_iommu_fini(struct ipd_iommu *io)
{
	if (!io->ptes)
		return;
	munmap(io->view, io->npages * pg());
	munmap((void *)io->ptes, io->pt_len);
	free(io->iotlb);
	io->ptes = NULL;
}

/* Take page i out of the device view (PROT_NONE, no backing). */
static int iommu_unmap_page(struct ipd_iommu *io, uint64_t i)
{
	void *p = mmap(io->view + i * pg(), pg(), PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		       -1, 0);

	io->iotlb[i] = 0;
	return p == MAP_FAILED ? -errno : 0;
}

int ipd_iommu_inval(struct ipd_iommu *io, uint64_t first, uint64_t n)
{
	uint64_t i;
	int ret = 0;

	if (first > io->npages || n > io->npages - first)
		return -EINVAL;
	for (i = first; i < first + n; i++) {
		uint64_t pte = io->ptes[i];
		uint64_t pfn = pte & IPD_PTE_PFN_MASK;
		void *p;

		if (pte == io->iotlb[i])
			continue;
		/* An entry naming memory the kernel does not have is taken
		 * as invalid: the device faults instead of reaching it. */
		if (!(pte & IPD_PTE_VALID) || pfn >= io->phys_pages) {
			if (iommu_unmap_page(io, i))
				ret = -ENOMEM;
			continue;
		}
		p = mmap(io->view + i * pg(), pg(), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, io->phys_fd,
			 (off_t)(pfn * pg()));
		if (p == MAP_FAILED) {
			iommu_unmap_page(io, i);
			ret = -ENOMEM;
			continue;
		}
		io->iotlb[i] = pte;
	}
	return ret;
}

/* The PTE bits a page needs for rw: DMA_TO_DEVICE pages are read by the
 * device only, DMA_FROM_DEVICE pages written only (DMA-API-HOWTO). */
static uint64_t pte_need(unsigned int rw)
{
	return IPD_PTE_VALID | ((rw & IPD_MEM_READ) ? IPD_PTE_READ : 0) |
	       ((rw & IPD_MEM_WRITE) ? IPD_PTE_WRITE : 0);
}

void *ipd_iommu_ptr(struct ipd_iommu *io, uint64_t iova, uint64_t len,
		    unsigned int rw)
{
	uint64_t off, first, last, i, need = pte_need(rw);

	if (iova < IPD_IOVA_BASE)
		return NULL;
	off = iova - IPD_IOVA_BASE;
	if (off > io->npages * pg() || len > io->npages * pg() - off)
		return NULL;
	first = off / pg();
	last = len ? (off + len - 1) / pg() : first;
	for (i = first; i <= last && i < io->npages; i++) {
		if ((io->iotlb[i] & need) != need) {
			io->faults++;
			return NULL;
		}
	}
	return io->view + off;
}
