// SPDX-License-Identifier: MIT
/*
 * Unit test of the daemon's emulated IOMMU (daemon/iommu.c) and of the
 * address-form classifier (include/ipathd/addr.h): scattered physical
 * pages behind one IOVA range, IOTLB semantics (a page-table change counts
 * only after the invalidation), faults for unmapped, out-of-aperture,
 * wrapping and bogus-pfn addresses, and for accesses the mapping's
 * direction (DMA_TO_DEVICE = read, DMA_FROM_DEVICE = write) refuses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "addr.h"

static int failures;

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: FAIL %s\n", __FILE__,       \
				__LINE__, #cond);                           \
			failures++;                                         \
		}                                                           \
	} while (0)

#define NPHYS 8
#define NIOVA 16

int main(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	int phys = memfd_create("phys", MFD_ALLOW_SEALING);
	int pt = memfd_create("pt", MFD_ALLOW_SEALING);
	struct ipd_iommu io = { 0 };
	uint64_t *ptes;
	uint8_t *mem, *p;

	if (phys < 0 || pt < 0 || ftruncate(phys, NPHYS * pg) ||
	    ftruncate(pt, pg))
		return 99;
	mem = mmap(NULL, NPHYS * pg, PROT_READ | PROT_WRITE, MAP_SHARED, phys, 0);
	ptes = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, pt, 0);
	if (mem == MAP_FAILED || ptes == MAP_FAILED)
		return 99;
	for (int i = 0; i < NPHYS; i++)
		memset(mem + i * pg, 0xa0 + i, pg);
	CHECK(ipd_iommu_init(&io, pt, NIOVA, phys, NPHYS) == 0);

	/* IOVA pages 0,1,2 -> pfn 5,1,7: one contiguous device view. */
	ptes[0] = IPD_PTE_VALID | IPD_PTE_READ | 5;
	ptes[1] = IPD_PTE_VALID | IPD_PTE_READ | 1;
	ptes[2] = IPD_PTE_VALID | IPD_PTE_READ | 7;
	/* Not yet flushed: the device does not see it. */
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE, 8, IPD_MEM_READ) == NULL);
	CHECK(ipd_iommu_inval(&io, 0, 3) == 0);
	p = ipd_iommu_ptr(&io, IPD_IOVA_BASE + 100, 3 * pg - 200, IPD_MEM_READ);
	CHECK(p != NULL);
	if (p) {
		CHECK(p[0] == 0xa5 && p[pg - 101] == 0xa5);
		CHECK(p[pg - 100] == 0xa1 && p[2 * pg - 101] == 0xa1);
		CHECK(p[2 * pg - 100] == 0xa7);
		p[pg] = 0x11;                 /* device write reaches pfn 1 */
		CHECK(mem[1 * pg + 100] == 0x11);
	}
	/* Running into the unmapped page 3 faults. */
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 2 * pg, pg + 1,
			    IPD_MEM_READ) == NULL);
	/* Unmap page 1: still translated until the flush (IOTLB). */
	ptes[1] = 0;
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + pg, 8, IPD_MEM_READ) != NULL);
	CHECK(ipd_iommu_inval(&io, 1, 1) == 0);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + pg, 8, IPD_MEM_READ) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE, 2 * pg, IPD_MEM_READ) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE, pg, IPD_MEM_READ) != NULL);
	/* A PTE naming memory that does not exist is no translation. */
	ptes[4] = IPD_PTE_VALID | (NPHYS + 3);
	CHECK(ipd_iommu_inval(&io, 4, 1) == 0);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 4 * pg, 8, IPD_MEM_READ) == NULL);
	/* Outside the aperture, below it, wrapping, bad flush ranges. */
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + NIOVA * pg, 1, IPD_MEM_READ) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE - 8, 8, IPD_MEM_READ) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE, UINT64_MAX, IPD_MEM_READ) == NULL);
	CHECK(ipd_iommu_inval(&io, NIOVA, 1) != 0);
	CHECK(ipd_iommu_inval(&io, 2, UINT64_MAX) != 0);
	/* Direction: page 5 DMA_TO_DEVICE (device reads only), page 6
	 * DMA_FROM_DEVICE (writes only), page 7 bidirectional. */
	ptes[5] = IPD_PTE_VALID | IPD_PTE_READ | 2;
	ptes[6] = IPD_PTE_VALID | IPD_PTE_WRITE | 3;
	ptes[7] = IPD_PTE_VALID | IPD_PTE_READ | IPD_PTE_WRITE | 4;
	CHECK(ipd_iommu_inval(&io, 5, 3) == 0);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 5 * pg, 8, IPD_MEM_READ) != NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 5 * pg, 8, IPD_MEM_WRITE) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 6 * pg, 8, IPD_MEM_WRITE) != NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 6 * pg, 8, IPD_MEM_READ) == NULL);
	/* an atomic reads and writes */
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 6 * pg, 8,
			    IPD_MEM_READ | IPD_MEM_WRITE) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 7 * pg, 8,
			    IPD_MEM_READ | IPD_MEM_WRITE) != NULL);
	/* a range is allowed only if every page of it is */
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 6 * pg, 2 * pg,
			    IPD_MEM_WRITE) != NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 5 * pg, 2 * pg,
			    IPD_MEM_WRITE) == NULL);
	CHECK(ipd_iommu_ptr(&io, IPD_IOVA_BASE + 5 * pg, 3 * pg, 0) != NULL);
	CHECK(io.faults > 0);
	ipd_iommu_fini(&io);

	/* Address forms are disjoint and decidable. */
	CHECK(ipd_addr_form_of(IPD_IOVA_BASE, IPD_KVA_BASE, pg, pg) ==
	      IPD_FORM_IOVA);
	CHECK(ipd_addr_form_of(IPD_KVA_BASE + 5, IPD_KVA_BASE, pg, pg) ==
	      IPD_FORM_KVA);
	CHECK(ipd_addr_form_of(IPD_KVA_BASE + pg, IPD_KVA_BASE, pg, pg) ==
	      IPD_FORM_NONE);
	CHECK(ipd_addr_form_of(IPD_PAGE_TAG | 0x1234, IPD_KVA_BASE, pg, pg) ==
	      IPD_FORM_PAGE);
	CHECK(ipd_addr_form_of(0, IPD_KVA_BASE, pg, pg) == IPD_FORM_NONE);
	CHECK(ipd_addr_form_of(IPD_IOVA_BASE + pg, IPD_KVA_BASE, pg, pg) ==
	      IPD_FORM_NONE);

	printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
