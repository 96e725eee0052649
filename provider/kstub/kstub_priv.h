/* SPDX-License-Identifier: MIT */
/*
 * Internals of the ipath kernel-driver stubs (include/ipathd/kstub.h):
 * ctl.c talks to the daemon, mem.c is the kernel's memory (pages, kmalloc,
 * kmap), dma.c the per-device DMA mapping operations, post.c the rings.
 */
#ifndef KSTUB_PRIV_H
#define KSTUB_PRIV_H

#include "ipathd/ctl.h"
#include "ipathd/kstub.h"
#include "ipathd/ring.h"

#define KSTUB_KMAP_SLOTS 8
#define KSTUB_NO_PFN UINT64_MAX

struct kstub_ring {
	struct ipd_ring_hdr *hdr;
	size_t map_len;
	uint32_t size, slot_size;
	uint32_t idx;               /* producer (SQ/RQ) or consumer (CQ) */
};

struct ib_device {
	int sock;
	int async_rd;
	int doorbell_fd;
	struct ipd_client_page *page;
	size_t page_len;
	uint32_t pd;
	size_t pg;

	/* physical memory (mem.c) */
	int phys_fd;
	uint64_t phys_pages, low_pages;
	uint8_t *lowmem;            /* == IPD_KVA_BASE: the direct map */
	struct page *pages;         /* descriptors, pfn = index */
	uint32_t *alloc_len;        /* pages of the allocation starting here */
	uint8_t *kmap_win;
	uint64_t kmap_pfn[KSTUB_KMAP_SLOTS];

	/* the DMA MR and the IOMMU (dma.c) */
	uint32_t mr, lkey, rkey;
	bool dma_capable;
	const struct ib_dma_mapping_ops *ops;
	int pt_fd;
	uint64_t *ptes;             /* shared page table */
	uint64_t iova_pages;
	uint8_t *iova_used;
};

struct ib_cq {
	struct ib_device *dev;
	uint32_t handle;
	struct kstub_ring ring;
};

struct ib_qp {
	struct ib_device *dev;
	uint32_t qpn;
	uint32_t max_sge;
	struct kstub_ring sq, rq;
};

/* ctl.c */
Ipd__Response *kstub_call(struct ib_device *dev, Ipd__Request *req,
			  const int *fds, int nfds, int *rfds, int *nrfds,
			  int maxrfds);
int kstub_ring_map(struct kstub_ring *r, int fd, uint32_t size,
		   uint32_t slot_size);
void kstub_ring_unmap(struct kstub_ring *r);
int kstub_destroy_obj(struct ib_device *dev, Ipd__ObjType type,
		      uint32_t handle);

/* mem.c */
int kstub_mem_init(struct ib_device *dev, uint64_t phys_pages,
		   uint64_t low_pages);
void kstub_mem_fini(struct ib_device *dev);

/* dma.c */
int kstub_dma_init(struct ib_device *dev, uint64_t iova_pages);
void kstub_dma_fini(struct ib_device *dev);
void kstub_dma_select(struct ib_device *dev, bool legacy);

#endif
