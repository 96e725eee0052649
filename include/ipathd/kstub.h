/* SPDX-License-Identifier: MIT */
/*
 * The ipath kernel-driver stubs (provider/kstub, docs/address-forms.md): a
 * user-space model of the kernel side of the 2006 problem, for model ULPs.
 *
 *  - "Physical memory" is a memfd shared with ipathd.  Pages below
 *    lowmem_pages are in the kernel's direct map (at IPD_KVA_BASE in this
 *    process, so a kmalloc() pointer is its own kernel virtual address);
 *    the others are highmem: no kernel mapping, reached with kmap().
 *  - Each device has DMA mapping operations chosen by its mode: an
 *    emulated IOMMU (IO virtual addresses, page table shared with the
 *    daemon) for a DMA-capable device; ipath-style operations (kernel VAs,
 *    and the page form for highmem) for the software device.
 *  - ib_post_send/ib_post_recv/ib_poll_cq forward work requests through
 *    the daemon's rings like the verbs provider.  Work requests and
 *    completions are the libibverbs structures; SGE addresses are DMA
 *    addresses and lkeys/rkeys are the device's DMA MR keys.
 *
 * Single-threaded, like the model ULPs that use it.
 */
#ifndef IPATHD_KSTUB_H
#define IPATHD_KSTUB_H

#include <infiniband/verbs.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipathd/addr.h"

typedef uint64_t dma_addr_t;

struct ib_device;
struct ib_cq;
struct ib_qp;

/* A physical page frame. */
struct page {
	uint64_t pfn;
};

enum dma_data_direction {
	DMA_BIDIRECTIONAL = 0,
	DMA_TO_DEVICE = 1,
	DMA_FROM_DEVICE = 2,
};

/* Allocation flags: where a page comes from. */
#define GFP_KERNEL 0x1u      /* lowmem: has a kernel virtual address */
#define GFP_HIGHUSER 0x2u    /* highmem first: may have none */

struct scatterlist {
	struct page *page;
	unsigned int offset;
	unsigned int length;
	dma_addr_t dma_address;  /* filled by ib_dma_map_sg */
	unsigned int dma_length;
};

/* Per-device DMA mapping operations (struct ib_dma_mapping_ops, 2006). */
struct ib_dma_mapping_ops {
	const char *name;
	int (*mapping_error)(struct ib_device *dev, dma_addr_t addr);
	dma_addr_t (*map_single)(struct ib_device *dev, void *cpu_addr,
				 size_t size, enum dma_data_direction dir);
	void (*unmap_single)(struct ib_device *dev, dma_addr_t addr,
			     size_t size, enum dma_data_direction dir);
	dma_addr_t (*map_page)(struct ib_device *dev, struct page *page,
			       unsigned long offset, size_t size,
			       enum dma_data_direction dir);
	void (*unmap_page)(struct ib_device *dev, dma_addr_t addr,
			   size_t size, enum dma_data_direction dir);
	int (*map_sg)(struct ib_device *dev, struct scatterlist *sg, int nents,
		      enum dma_data_direction dir);
	void (*unmap_sg)(struct ib_device *dev, struct scatterlist *sg,
			 int nents, enum dma_data_direction dir);
	void (*sync_single_for_cpu)(struct ib_device *dev, dma_addr_t addr,
				    size_t size, enum dma_data_direction dir);
	void (*sync_single_for_device)(struct ib_device *dev, dma_addr_t addr,
				       size_t size,
				       enum dma_data_direction dir);
};

struct kstub_opts {
	const char *socket;        /* NULL: $IPATHD_SOCKET, else the default */
	uint64_t phys_pages;       /* 0: 1024 */
	uint64_t lowmem_pages;     /* 0: half of phys_pages */
	uint64_t iova_pages;       /* 0: phys_pages * 2 */
	/* Use ipath's 2006 operations unchanged on the software device:
	 * map_page of a highmem page returns page_address() + offset, which
	 * is 0 + offset (the highmem TODO).  For the negative tests. */
	bool legacy_ipath_ops;
};

/* ---- device ----------------------------------------------------------- */
struct ib_device *kstub_open(const struct kstub_opts *opts);
void kstub_close(struct ib_device *dev);
bool kstub_dma_capable(const struct ib_device *dev);
const struct ib_dma_mapping_ops *kstub_dma_ops(const struct ib_device *dev);
uint32_t kstub_lkey(const struct ib_device *dev); /* local_dma_lkey */
uint32_t kstub_rkey(const struct ib_device *dev); /* the DMA MR's rkey */
/* GID table entry (from the daemon's STATUS).  0 or -errno. */
int kstub_query_gid(struct ib_device *dev, int index, union ibv_gid *gid);
/* QP qpn's negotiated address-form pair from STATUS ("<1,0>"). */
int kstub_qp_addr_form(struct ib_device *dev, uint32_t qpn, char *buf,
		       size_t cap);

/* ---- kernel memory ---------------------------------------------------- */
void *kmalloc(struct ib_device *dev, size_t size);  /* lowmem, contiguous */
void kfree(struct ib_device *dev, void *p);
struct page *alloc_page(struct ib_device *dev, unsigned int gfp);
void __free_page(struct ib_device *dev, struct page *page);
bool PageHighMem(const struct ib_device *dev, const struct page *page);
/* Kernel VA of a lowmem page, NULL for a highmem page. */
void *page_address(const struct ib_device *dev, const struct page *page);
struct page *virt_to_page(struct ib_device *dev, const void *kva);
/* Map a page into the kernel's small kmap window (lowmem: its direct
 * address); kunmap() takes it out again.  NULL when the window is full. */
void *kmap(struct ib_device *dev, struct page *page);
void kunmap(struct ib_device *dev, struct page *page);

/* ---- DMA mapping (include/rdma/ib_verbs.h ib_dma_*) --------------------- */
int ib_dma_mapping_error(struct ib_device *dev, dma_addr_t addr);
dma_addr_t ib_dma_map_single(struct ib_device *dev, void *cpu_addr,
			     size_t size, enum dma_data_direction dir);
void ib_dma_unmap_single(struct ib_device *dev, dma_addr_t addr, size_t size,
			 enum dma_data_direction dir);
dma_addr_t ib_dma_map_page(struct ib_device *dev, struct page *page,
			   unsigned long offset, size_t size,
			   enum dma_data_direction dir);
void ib_dma_unmap_page(struct ib_device *dev, dma_addr_t addr, size_t size,
		       enum dma_data_direction dir);
int ib_dma_map_sg(struct ib_device *dev, struct scatterlist *sg, int nents,
		  enum dma_data_direction dir);
void ib_dma_unmap_sg(struct ib_device *dev, struct scatterlist *sg, int nents,
		     enum dma_data_direction dir);
void ib_dma_sync_single_for_cpu(struct ib_device *dev, dma_addr_t addr,
				size_t size, enum dma_data_direction dir);
void ib_dma_sync_single_for_device(struct ib_device *dev, dma_addr_t addr,
				   size_t size, enum dma_data_direction dir);

/* ---- queues and work requests ----------------------------------------- */
struct ib_cq *ib_create_cq(struct ib_device *dev, int cqe);
int ib_destroy_cq(struct ib_cq *cq);
struct ib_qp *ib_create_qp(struct ib_device *dev, struct ib_cq *send_cq,
			   struct ib_cq *recv_cq, uint32_t max_wr,
			   uint32_t max_sge);           /* RC */
int ib_destroy_qp(struct ib_qp *qp);
uint32_t ib_qp_num(const struct ib_qp *qp);
/* RESET->INIT->RTR->RTS towards dgid/dqpn (RC, every access allowed). */
int ib_qp_connect(struct ib_qp *qp, const union ibv_gid *dgid, int sgid_index,
		  uint32_t dqpn, uint32_t my_psn, uint32_t peer_psn);
int ib_post_send(struct ib_qp *qp, const struct ibv_send_wr *wr,
		 const struct ibv_send_wr **bad_wr);
int ib_post_recv(struct ib_qp *qp, const struct ibv_recv_wr *wr,
		 const struct ibv_recv_wr **bad_wr);
int ib_poll_cq(struct ib_cq *cq, int num_entries, struct ibv_wc *wc);

#endif
