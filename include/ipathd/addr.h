/* SPDX-License-Identifier: MIT */
/*
 * Address forms of kernel (stub) memory, shared by ipathd and the ipath
 * kernel-driver stubs (docs/address-forms.md).
 *
 * A kernel ULP names memory by the address its device's DMA mapping
 * operations returned.  The three forms live in disjoint ranges so that a
 * responder can always tell which form an address is in, and refuse one
 * that is not its own:
 *
 *   IOVA  [IPD_IOVA_BASE, + aperture)   DMA-capable device: IO virtual
 *         address, translated by the device's IOMMU page table.
 *   KVA   [kva_base, + lowmem)          software device: kernel virtual
 *         address of a page in the kernel's direct map (lowmem).
 *   PAGE  IPD_PAGE_TAG | physical addr  software device: a page with no
 *         kernel mapping (highmem); the responder kmaps it for the access.
 *
 * RETH/AtomicETH carry the responder's form: the peer handshake tells each
 * side which one that is (proto/ipathd_peer.proto).
 */
#ifndef IPATHD_ADDR_H
#define IPATHD_ADDR_H

#include <stdint.h>

/* IO virtual addresses start at 4 GiB (never 0: a zero DMA address is the
 * classic "mapping error" value). */
#define IPD_IOVA_BASE 0x100000000ull
/* The kernel direct map in the stub process: free in ordinary processes
 * and, under ASan, inside its "HighMem" range (outside the shadow). */
#define IPD_KVA_BASE 0x500000000000ull
/* Page form: non-canonical on x86_64, so never a valid virtual address. */
#define IPD_PAGE_TAG 0xfee0000000000000ull
#define IPD_PAGE_TAG_MASK 0xfff0000000000000ull

/* IOMMU page-table entry (one u64 per IOVA page): written by the stub,
 * read by the daemon only when told to (IommuInval = IOTLB flush). */
#define IPD_PTE_VALID (1ull << 63)
#define IPD_PTE_READ  (1ull << 62)   /* device may read (DMA_TO_DEVICE) */
#define IPD_PTE_WRITE (1ull << 61)   /* device may write (DMA_FROM_DEVICE) */
#define IPD_PTE_PFN_MASK ((1ull << 40) - 1)

enum ipd_addr_form {
	IPD_FORM_NONE = 0,
	IPD_FORM_IOVA,
	IPD_FORM_KVA,
	IPD_FORM_PAGE,
};

/* Which form an address is in, given the device's direct-map range. */
static inline enum ipd_addr_form ipd_addr_form_of(uint64_t addr,
						  uint64_t kva_base,
						  uint64_t kva_len,
						  uint64_t iova_len)
{
	if ((addr & IPD_PAGE_TAG_MASK) == IPD_PAGE_TAG)
		return IPD_FORM_PAGE;
	if (addr >= kva_base && addr - kva_base < kva_len)
		return IPD_FORM_KVA;
	if (addr >= IPD_IOVA_BASE && addr - IPD_IOVA_BASE < iova_len)
		return IPD_FORM_IOVA;
	return IPD_FORM_NONE;
}

#endif
