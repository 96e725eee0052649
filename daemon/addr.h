/* SPDX-License-Identifier: MIT */
/*
 * Kernel (stub) memory and its address forms (docs/address-forms.md):
 * addr.c resolves the addresses of the DMA MR a kernel-driver stub attached,
 * iommu.c is the emulated IOMMU of a DMA-capable device, peer.c the
 * capability exchange that tells each side its peer's form.
 */
#ifndef IPATHD_ADDR_DAEMON_H
#define IPATHD_ADDR_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "ipathd.h"
#include "ipathd/addr.h"

/* ---- iommu.c --------------------------------------------------------- */

/*
 * The device side of an IOMMU: the page table lives in memory shared with
 * the stub (the "kernel" writes it), and the daemon keeps its own IOTLB
 * that changes only on an invalidation, like hardware.  The device view of
 * the IO virtual space is a daemon mapping in which each valid IOVA page
 * maps the physical page its entry names, so that a range of IOVAs is one
 * daemon pointer however scattered the pages behind it are.
 */
struct ipd_iommu {
	const volatile uint64_t *ptes; /* shared page table, read only */
	size_t pt_len;
	uint64_t npages;               /* aperture */
	uint64_t *iotlb;               /* entries in force (0 = invalid) */
	uint8_t *view;                 /* npages pages, PROT_NONE where invalid */
	int phys_fd;
	uint64_t phys_pages;
	uint64_t invalidations, faults;
};

int ipd_iommu_init(struct ipd_iommu *io, int pt_fd, uint64_t npages,
		   int phys_fd, uint64_t phys_pages);
void ipd_iommu_fini(struct ipd_iommu *io);
/* IOTLB flush of [first, first + n): re-read those entries.  0 or -errno. */
int ipd_iommu_inval(struct ipd_iommu *io, uint64_t first, uint64_t n);
/* Device pointer for [iova, iova + len) for an access doing rw (IPD_MEM_*),
 * or NULL when any page of it has no translation in force or its entry's
 * direction bits do not allow rw (fault). */
void *ipd_iommu_ptr(struct ipd_iommu *io, uint64_t iova, uint64_t len,
		    unsigned int rw);

/* ---- addr.c ---------------------------------------------------------- */

/* The kernel's DMA MR: an ipd_mr whose map is NULL, embedded first. */
struct ipd_kmem;

static inline bool ipd_mr_is_kmem(const struct ipd_mr *mr)
{
	return mr->map == NULL;
}

/* Resolve [addr, addr + len) of a kernel DMA MR in the device's own form
 * for an access doing rw (IPD_MEM_*); NULL for the wrong form, out of
 * bounds, no translation, or a direction the IOMMU mapping refuses. */
void *ipd_kmem_ptr(struct ipd_mr *mr, uint64_t addr, uint64_t len,
		   unsigned int rw);
void ipd_kmem_destroy(struct ipd_mr *mr);

int ipd_handle_kstub_attach(struct ipd_req_ctx *ctx);
int ipd_handle_iommu_inval(struct ipd_req_ctx *ctx);

/* Address-form events since start, for STATUS. */
struct ipd_addr_counters {
	uint64_t addr_wrong_form, addr_out_of_bounds, addr_iommu_fault,
		addr_kmaps, addr_iotlb_invals;
};
const struct ipd_addr_counters *ipd_addr_counters(void);

/* ---- peer.c ---------------------------------------------------------- */

/* Open the peer port ($IPATHD_PEER_PORT, else cfg->peer_port, else
 * cfg->udp_port + 1).  A daemon that cannot bind runs without the exchange
 * (forms show as "?"). */
int ipd_peer_init(struct ipd_dev *dev);
void ipd_peer_fini(struct ipd_dev *dev);
/* A QP needs the host behind av (INIT->RTR): handshake, or refresh. */
void ipd_peer_need(struct ipd_dev *dev, const struct ipd_av *av);
/* "<l,r>" for the QP's pair (local bit, peer bit; "?" while unknown), or
 * "" for a QP without a path.  buf has at least 16 bytes. */
void ipd_peer_addr_form(struct ipd_dev *dev, struct ipd_qp *qp, char *buf,
			size_t cap);
/* The host behind av answered the capability exchange and keeps
 * out-of-order packets (FEATURE_SELECTIVE, daemon/ooo.c). */
bool ipd_peer_selective(struct ipd_dev *dev, const struct ipd_av *av);
/* Peers for STATUS: text lines "addr dma=<b> boot=<id> ...". */
int ipd_peer_count(void);
int ipd_peer_describe(int i, char *buf, size_t cap);

#endif
