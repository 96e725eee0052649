/* SPDX-License-Identifier: MIT */
/*
 * Shared-memory rings between ipathd and its clients (the verbs provider and
 * the kernel-driver stubs).
 *
 * Every queue (SQ, RQ, SRQ, CQ) is one memfd created by the daemon and mapped
 * by both sides: a 256-byte header followed by `size` slots of `slot_size`
 * bytes.  `size` is a power of two; indices are free-running 32-bit counters
 * and a slot is found with (index & (size - 1)).
 *
 *   SQ, RQ, SRQ: the client produces work requests, the daemon consumes.
 *   CQ:          the daemon produces completions, the client consumes.
 *
 * The daemon never trusts what a client can write: it keeps its own copy of
 * size and slot_size, reads only the producer index from a client-produced
 * ring (and checks that prod - cons <= size), and copies a slot before using
 * it.
 */
#ifndef IPATHD_RING_H
#define IPATHD_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPD_RING_HDR_SIZE 256u
#define IPD_CACHELINE 64u

struct ipd_ring_hdr {
	/* Written only by the producer (release), read by the consumer (acquire). */
	_Atomic uint32_t prod;
	uint8_t pad0[IPD_CACHELINE - 4];
	/* Written only by the consumer (release), read by the producer (acquire). */
	_Atomic uint32_t cons;
	uint8_t pad1[IPD_CACHELINE - 4];
	/* Written once by the daemon at creation; informational for clients. */
	uint32_t size;
	uint32_t slot_size;
	/*
	 * CQ only: notification request written by the client
	 * (ibv_req_notify_cq), consumed by the daemon.  0 = not armed,
	 * IPD_CQ_ARM_NEXT, IPD_CQ_ARM_SOLICITED.
	 */
	_Atomic uint32_t arm;
	/*
	 * SQ only: application transmit (docs/design.md "Application
	 * transmit"), written by the daemon.  app_tx is 0, or
	 * IPD_APP_TX_VALID | the ring index of the next WQE << 24 | its PSN
	 * while the send queue is idle (every WQE sent and completed) and
	 * the client may send that WQE's single packet itself; the fields
	 * after it up to app_tx_sport, written before app_tx turns valid,
	 * say where to.
	 */
	uint32_t app_tx_dqpn;    /* destination QP */
	_Atomic uint64_t app_tx;
	uint8_t app_tx_src[16];  /* IPv6 or IPv4-mapped source address */
	uint8_t app_tx_dst[16];  /* destination address, the same forms */
	uint16_t app_tx_mtu;     /* path MTU in bytes */
	uint16_t app_tx_dport;   /* the peer's UDP port */
	/* The UDP source port of the daemon's packets of this QP, which the
	 * client may bind too (SO_REUSEPORT); 0: any port. */
	uint16_t app_tx_sport;
	/* 1 from just before the daemon shows a receive completion whose
	 * ACK it has not handed to the kernel yet until it has: meanwhile
	 * the client sends nothing itself (docs/design.md "ACKs before the
	 * requests that follow them"). */
	_Atomic uint16_t app_tx_ack_owed;
	/*
	 * SQ and RQ only: the WQE the daemon is retiring, for a client whose
	 * daemon died (docs/design.md "Daemon failure").  The daemon frees a
	 * WQE's slot (cons) just before it posts that WQE's completion; while
	 * `retiring` is set, a shared cons equal to retire_cons means the slot
	 * of WQE retire_wr_id is free, and its completion is on the CQ only if
	 * the CQ's prod moved past retire_cq_prod.  Written by the daemon only;
	 * read only once it is gone.
	 */
	_Atomic uint32_t retiring;
	uint32_t retire_cons;
	uint32_t retire_cq_prod;
	uint32_t reserved3;
	uint64_t retire_wr_id;
	uint8_t pad3[IPD_CACHELINE - 24];
};
_Static_assert(sizeof(struct ipd_ring_hdr) == IPD_RING_HDR_SIZE, "ring header");

enum { IPD_CQ_ARM_NONE = 0, IPD_CQ_ARM_NEXT = 1, IPD_CQ_ARM_SOLICITED = 2 };

/* Bytes of the memfd behind a ring (rounded up to whole pages by the creator). */
static inline size_t ipd_ring_bytes(uint32_t size, uint32_t slot_size)
{
	return IPD_RING_HDR_SIZE + (size_t)size * slot_size;
}

static inline void *ipd_ring_slot(struct ipd_ring_hdr *hdr, uint32_t size,
				  uint32_t slot_size, uint32_t idx)
{
	return (uint8_t *)hdr + IPD_RING_HDR_SIZE +
	       (size_t)(idx & (size - 1)) * slot_size;
}

/*
 * Producer side.  Only the producer calls these; a client serialises its
 * producers on one queue with its own lock (as rdma-core's rxe_queue.h).
 */
static inline bool ipd_ring_full(struct ipd_ring_hdr *hdr, uint32_t size,
				 uint32_t prod)
{
	uint32_t cons = atomic_load_explicit(&hdr->cons, memory_order_acquire);

	return prod - cons >= size;
}

/* Publish slot `prod` (already written) to the consumer. */
static inline void ipd_ring_publish(struct ipd_ring_hdr *hdr, uint32_t new_prod)
{
	atomic_store_explicit(&hdr->prod, new_prod, memory_order_release);
}

/* Consumer side.  Only the consumer calls these. */
static inline uint32_t ipd_ring_avail(struct ipd_ring_hdr *hdr, uint32_t cons)
{
	return atomic_load_explicit(&hdr->prod, memory_order_acquire) - cons;
}

static inline void ipd_ring_release(struct ipd_ring_hdr *hdr, uint32_t new_cons)
{
	atomic_store_explicit(&hdr->cons, new_cons, memory_order_release);
}

/* ------------------------------------------------------------------ */
/* Slot layouts                                                        */

struct ipd_sge {
	uint64_t addr;
	uint32_t length;
	uint32_t lkey;
};

#define IPD_APP_TX_VALID (1ull << 63)

static inline uint64_t ipd_app_tx_word(uint32_t idx, uint32_t psn)
{
	return IPD_APP_TX_VALID | (uint64_t)idx << 24 | (psn & 0xffffffu);
}

static inline uint32_t ipd_app_tx_idx(uint64_t w)
{
	return (uint32_t)(w >> 24);
}

static inline uint32_t ipd_app_tx_psn(uint64_t w)
{
	return (uint32_t)w & 0xffffffu;
}

/* ipd_send_wqe.flags: the client sent this WQE's packet with PSN
 * app_psn (application transmit). */
#define IPD_WQE_F_APP_SENT 0x01u

/* Send queue slot: 64-byte header, then sge[num_sge] or inline data. */
struct ipd_send_wqe {
	uint64_t wr_id;
	uint8_t opcode;       /* enum ibv_wr_opcode */
	uint8_t flags;        /* IPD_WQE_F_* */
	uint16_t num_sge;
	uint32_t send_flags;  /* IBV_SEND_* */
	uint32_t imm_data;    /* imm_data or invalidate_rkey, network order */
	uint32_t inline_len;  /* IBV_SEND_INLINE: bytes stored in data[] */
	union {
		struct {
			uint64_t remote_addr;
			uint32_t rkey;
			uint32_t reserved;
		} rdma;
		struct {
			uint64_t remote_addr;
			uint64_t compare_add;
			uint64_t swap;
			uint32_t rkey;
			uint32_t reserved;
		} atomic;
		struct {
			uint32_t ah;          /* daemon AH handle */
			uint32_t remote_qpn;
			uint32_t remote_qkey;
			uint32_t reserved;
		} ud;
	} wr;
	uint32_t xrc_srqn;    /* XRC_SEND: the remote XRC SRQ (XRCETH) */
	uint32_t app_psn;     /* IPD_WQE_F_APP_SENT: the PSN it went with */
	/* sge[num_sge] (struct ipd_sge), or inline_len bytes of data */
	uint8_t payload[];
};
_Static_assert(sizeof(struct ipd_send_wqe) == 64, "send wqe header");

/* Receive queue / SRQ slot: 16-byte header, then sge[num_sge]. */
struct ipd_recv_wqe {
	uint64_t wr_id;
	uint32_t num_sge;
	uint32_t reserved;
	struct ipd_sge sge[];
};
_Static_assert(sizeof(struct ipd_recv_wqe) == 16, "recv wqe header");

/* Completion queue slot: exactly 64 bytes. Fields as in struct ibv_wc. */
struct ipd_cqe {
	uint64_t wr_id;
	uint32_t status;      /* enum ibv_wc_status */
	uint32_t opcode;      /* enum ibv_wc_opcode */
	uint32_t vendor_err;
	uint32_t byte_len;
	uint32_t imm_data;    /* network order (imm_data or invalidated rkey) */
	uint32_t qp_num;
	uint32_t src_qp;
	uint32_t wc_flags;    /* IBV_WC_GRH | IBV_WC_WITH_IMM | IBV_WC_WITH_INV */
	uint16_t pkey_index;
	uint16_t slid;
	uint8_t sl;
	uint8_t dlid_path_bits;
	uint8_t flags;        /* IPD_CQE_F_*: for the daemon's event logic */
	uint8_t reserved[17];
};
_Static_assert(sizeof(struct ipd_cqe) == 64, "cqe");

/*
 * The receive completed a message whose last packet had the BTH SE bit:
 * a CQ armed IPD_CQ_ARM_SOLICITED fires on it (IBA 11.4.2.2: solicited or
 * unsuccessful completions).
 */
#define IPD_CQE_F_SOLICITED 0x01u

static inline struct ipd_sge *ipd_send_wqe_sge(struct ipd_send_wqe *wqe)
{
	return (struct ipd_sge *)(void *)wqe->payload;
}

static inline uint32_t ipd_slot_round(uint32_t bytes)
{
	return (bytes + IPD_CACHELINE - 1) & ~(IPD_CACHELINE - 1);
}

static inline uint32_t ipd_send_slot_size(uint32_t max_sge, uint32_t max_inline)
{
	uint32_t body = max_sge * (uint32_t)sizeof(struct ipd_sge);

	if (max_inline > body)
		body = max_inline;
	return ipd_slot_round((uint32_t)sizeof(struct ipd_send_wqe) + body);
}

static inline uint32_t ipd_recv_slot_size(uint32_t max_sge)
{
	return ipd_slot_round((uint32_t)sizeof(struct ipd_recv_wqe) +
			      max_sge * (uint32_t)sizeof(struct ipd_sge));
}

/*
 * The client page: one shared page per client connection, created by the
 * daemon and handed over at HELLO together with the doorbell eventfd.
 *
 * Doorbell rule (Dekker, both sides use seq_cst fences):
 *   client: publish prod; fence; if daemon_sleeping, write(doorbell_fd, 1).
 *   daemon: set daemon_sleeping; fence; re-scan every ring; only then block.
 *   The daemon clears daemon_sleeping when it wakes.
 */
struct ipd_client_page {
	_Atomic uint32_t daemon_sleeping;
	uint8_t pad[IPD_CACHELINE - 4];
};

static inline bool ipd_need_doorbell(struct ipd_client_page *page)
{
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&page->daemon_sleeping,
				    memory_order_relaxed) != 0;
}

#endif
