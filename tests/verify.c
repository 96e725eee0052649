// SPDX-License-Identifier: MIT
/*
 * verify - move random data through a verbs device and check every byte.
 *
 * Sources: tests/verify.c, tests/vtest_common.c (+ vtest_common.h);
 * links libibverbs.
 *
 * One process, two QPs (A = requester, B = responder) on one device,
 * addressed to each other through the local GID.  For each QP type and
 * opcode the QP type allows, many iterations post batches of work requests
 * (several outstanding, signaled and unsignaled, multiple SGEs, unaligned
 * buffers, inline when the QP allows it) and check: every byte at the
 * destination, bytes around it untouched, completion status, opcode,
 * wr_id order, byte_len, immediate data, qp_num, src_qp and GRH flag (UD).
 * Atomics are checked exactly: each returned original value and the final
 * value in memory follow from the posted sequence.
 *
 *   verify [--type rc|uc|ud|xrc[,..]|all] [--op NAME[,NAME..]|all] [--iters N]
 *          [--max-size BYTES] [--seed S] [--srq] [--all] [-d DEV] [-g IDX] [-v]
 *          [--corrupt] [--server PORT | --client HOST:PORT] [--wait SEC]
 *
 * Two processes (two hosts): "verify --server PORT" holds the responder
 * (B) and "verify --client HOST:PORT [options]" the requester (A); the
 * client decides everything (types, ops, sizes, seed) and drives the
 * server over a TCP side channel, as the pingpongs exchange their
 * addresses.  Per combination the client sends its QPN, PSN and GID and
 * gets the server's QPN, PSN, GID, rkey and buffer address; per batch it
 * describes B's side of every work request (receive scatter lists, the
 * poison byte, the seed the message bytes come from, READ sources, the
 * atomic target's initial and final value); the server prepares its
 * memory and receives, says READY, and after the client's DONE checks
 * its completions and bytes and answers with a RESULT.  The same checks
 * as in one process run, each where the bytes land: SEND/WRITE data and
 * receive completions on the server, READ data, atomic return values and
 * send completions on the client.  The server exits after the client's
 * BYE: 0 when everything passed on both sides.
 *
 * XRC ("xrc"): A is an XRC INI QP, B an XRC TGT QP of a private XRC
 * domain with an XRC SRQ (completing on B's receive CQ) that every work
 * request names; the server tells the client the SRQ number.
 *
 * Exit status 0 when every combination passed, 1 at the first mismatch,
 * 2 on a usage or setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "vtest_common.h"

#define MAX_SGE		8
#define MAX_DEPTH	32	/* WRs per batch when messages are small */
#define BIG_DEPTH	8	/* ... when they may be large */
#define BIG_SIZE	(256u << 10)
#define SLOT_PAD	1024	/* misalignment, gaps between SGEs, GRH, guard */
#define GUARD		64	/* bytes after the message that must stay untouched */
#define GRH_LEN		40
#define BATCH_BYTES	(4u << 20)

enum vop {
	OP_SEND, OP_SEND_IMM, OP_WRITE, OP_WRITE_IMM, OP_READ, OP_CAS, OP_FAA,
	OP_NUM
};

#define T_RC	(1u << IBV_QPT_RC)
#define T_UC	(1u << IBV_QPT_UC)
#define T_UD	(1u << IBV_QPT_UD)
#define T_XRC	(1u << IBV_QPT_XRC_SEND)	/* XRC, by its INI side */
#define T_ALL	(T_RC | T_UC | T_UD | T_XRC)

/* What each opcode is and where it is allowed (IBA table 3.6.1 / verbs). */
static const struct op_info {
	const char *name;
	enum ibv_wr_opcode wr;
	enum ibv_wc_opcode swc;		/* sender's completion opcode */
	unsigned int types;
	bool recv;			/* consumes a receive WQE */
	bool imm;
	bool rdma;			/* carries a remote address */
	bool to_remote;			/* data moves A -> B */
	bool atomic;
} ops[OP_NUM] = {
	[OP_SEND] = { "send", IBV_WR_SEND, IBV_WC_SEND,
		      T_ALL, true, false, false, true, false },
	[OP_SEND_IMM] = { "send_imm", IBV_WR_SEND_WITH_IMM, IBV_WC_SEND,
			  T_ALL, true, true, false, true, false },
	[OP_WRITE] = { "write", IBV_WR_RDMA_WRITE, IBV_WC_RDMA_WRITE,
		       T_RC | T_UC | T_XRC, false, false, true, true, false },
	[OP_WRITE_IMM] = { "write_imm", IBV_WR_RDMA_WRITE_WITH_IMM,
			   IBV_WC_RDMA_WRITE, T_RC | T_UC | T_XRC, true, true,
			   true, true, false },
	[OP_READ] = { "read", IBV_WR_RDMA_READ, IBV_WC_RDMA_READ,
		      T_RC | T_XRC, false, false, true, false, false },
	[OP_CAS] = { "cmp_swap", IBV_WR_ATOMIC_CMP_AND_SWP, IBV_WC_COMP_SWAP,
		     T_RC | T_XRC, false, false, true, false, true },
	[OP_FAA] = { "fetch_add", IBV_WR_ATOMIC_FETCH_AND_ADD,
		     IBV_WC_FETCH_ADD, T_RC | T_XRC, false, false, true, false,
		     true },
};

static const enum ibv_qp_type all_types[] = { IBV_QPT_RC, IBV_QPT_UC,
					      IBV_QPT_UD, IBV_QPT_XRC_SEND };
#define NUM_TYPES (sizeof(all_types) / sizeof(all_types[0]))

struct options {
	unsigned int type_mask;
	unsigned int op_mask;
	unsigned int iters;
	size_t max_size;
	uint64_t seed;
	const char *dev;
	int gid;
	bool srq;
	bool all;
	bool corrupt;	/* self-test: damage one received byte */
	const char *server;	/* --server PORT */
	const char *client;	/* --client HOST:PORT */
	int wait_ms;		/* bound on every side-channel wait */
	/* filled at run time in two-process mode */
	int sock;		/* the side channel */
	union ibv_gid peer_gid;	/* the other process's GID */
};

/* Who holds what: both QPs here, or A here and B in the peer process. */
enum role { ROLE_LOCAL, ROLE_CLIENT, ROLE_SERVER };

/* Side-channel messages (client -> server unless noted). */
enum {
	VM_HELLO = 1,		/* both ways: version, path MTU, GID */
	VM_SETUP,		/* a combination: QP type, op, A's QPN/PSN */
	VM_SETUP_OK,		/* server: B's QPN/PSN/GID, rkey, address */
	VM_BATCH,		/* B's side of a data batch */
	VM_ATOMIC,		/* B's side of an atomic batch */
	VM_READY,		/* server: B is prepared, post the sends */
	VM_DONE,		/* A's sends completed */
	VM_RESULT,		/* server: u32 status, then a message */
	VM_END,		/* combination over: check quiet CQs, tear down */
	VM_BYE,		/* u32 failures: the server exits */
};
#define PROTO_VERSION	2	/* 2: SETUP_OK carries the XRC SRQ number */
#define VM_MAX		(64u << 10)

/* A piece of a message in memory: one SGE. */
struct piece {
	uint8_t *addr;
	uint32_t len;
};

/* One work request of a batch and what must come of it. */
struct wr_plan {
	size_t len;
	uint8_t *exp;			/* expected message bytes */
	struct ibv_sge lsge[MAX_SGE];	/* A's gather (or READ scatter) list */
	int nl;
	struct ibv_sge rsge[MAX_SGE];	/* B's receive scatter list */
	int nr;
	uint8_t *remote;		/* RDMA target/source in B's memory */
	uint8_t *dst_slot;		/* where the data lands */
	struct piece dst[MAX_SGE];	/* ... piece by piece */
	int ndst;
	size_t dontcare;		/* bytes at dst[0] not checked (GRH) */
	uint8_t poison;
	uint32_t imm;
	uint64_t seed;			/* the message bytes come from it */
	bool signaled, inl;
	uint64_t wr_id;
	/* atomics */
	uint64_t *result;
	uint64_t compare_add, swap, expect_ret;
};

struct run {
	struct vt_dev *d;
	const struct options *o;
	enum ibv_qp_type type;
	enum vop op;
	struct vt_qp a, b;
	struct ibv_srq *srq;	/* XRC: the XRC SRQ B's requests name */
	struct ibv_xrcd *xrcd;	/* XRC: B's domain */
	uint32_t xsrqn;		/* XRC: the SRQ number (A's WRs carry it) */
	void *abase, *bbase;
	uint8_t *abuf, *bbuf;
	size_t buf_len, slot, max_size;
	struct ibv_mr *amr, *bmr;
	uint8_t *expect;
	uint32_t max_sge_send, max_sge_recv;
	unsigned int depth;	/* slots, and so WRs per batch */
	unsigned int iter;
	struct wr_plan plan[MAX_DEPTH];
	int n;
	/* statistics */
	uint64_t msgs, bytes;
	char err[512];
	/* two processes */
	enum role role;
	int sock;			/* side channel (-1: one process) */
	int wait_ms;
	size_t boff;			/* misalignment of bbuf */
	uint32_t blkey, brkey;		/* keys of B's memory */
	uint64_t braddr;		/* B's bbuf in B's address space */
	uint32_t src_qpn;		/* A's QPN as B sees it */
	uint32_t dst_qpn;		/* B's QPN as A sees it */
	union ibv_gid peer_gid;		/* the other side's GID */
	/* atomics on the server: the target and its expected final value */
	uint64_t *atgt, afinal;
	/* the server's copy of the client's choices */
	struct options own_o;
	uint64_t t0;
};

#define FAIL(r, ...) \
	(snprintf((r)->err, sizeof((r)->err), __VA_ARGS__), -1)

/* ---- sizes -------------------------------------------------------- */

static size_t size_cap(struct run *r)
{
	size_t cap = r->max_size;

	if (r->type == IBV_QPT_UD && cap > r->d->mtu_bytes)
		cap = r->d->mtu_bytes;
	if (ops[r->op].atomic)
		cap = 8;
	return cap;
}

static size_t random_size(size_t cap)
{
	unsigned int bits = 0;
	size_t hi;

	while (bits < 63 && ((size_t)1 << (bits + 1)) <= cap)
		bits++;
	hi = (size_t)1 << vt_rand_range(0, bits);
	if (hi > cap)
		hi = cap;
	return vt_rand_range(1, hi);
}

/* Iteration i < number of fixed sizes walks the list; then random sizes. */
static size_t schedule_size(struct run *r, unsigned int i)
{
	const size_t m = r->d->mtu_bytes;
	const size_t list[] = {
		1, 2, 3, 4, 5, 7, 8, 13, 16, 63, 64, 255, 256, 1000, 1023,
		m - 1, m, m + 1, 2 * m, 3 * m + 5, 4093, 4096, 4097, 8191,
		65539, 262147, 1048575, 1048576, 777777,
	};
	const unsigned int n = sizeof(list) / sizeof(list[0]);
	size_t cap = size_cap(r);

	if (i < n && list[i] <= cap)
		return list[i];
	return random_size(cap);
}

/* ---- layout ------------------------------------------------------- */

/*
 * Lay @len bytes out at @slot as @nsge pieces separated by random gaps,
 * starting at a random misalignment.  @lead extra bytes go in front of
 * the first piece (the UD GRH).  Returns the number of pieces.
 */
static int layout(uint8_t *slot, size_t len, int nsge, uint32_t lead,
		  uint32_t lkey, struct ibv_sge *sge, struct piece *pc)
{
	uint8_t *p = slot + vt_rand_range(0, 7);
	size_t left = len;
	int k;

	if ((size_t)nsge > len)
		nsge = (int)len;
	if (nsge < 1)
		nsge = 1;
	for (k = 0; k < nsge; k++) {
		size_t piece = k == nsge - 1 ? left :
			vt_rand_range(1, left - (size_t)(nsge - 1 - k));
		uint32_t extra = k == 0 ? lead : 0;

		sge[k].addr = (uintptr_t)p;
		sge[k].length = (uint32_t)(piece + extra);
		sge[k].lkey = lkey;
		pc[k].addr = p + extra;
		pc[k].len = (uint32_t)piece;
		p += piece + extra + vt_rand_range(0, 15);
		left -= piece;
	}
	return nsge;
}

static void scatter(const struct piece *pc, int n, const uint8_t *src)
{
	int k;

	for (k = 0; k < n; k++) {
		memcpy(pc[k].addr, src, pc[k].len);
		src += pc[k].len;
	}
}

/* ---- plans -------------------------------------------------------- */

static int rand_nsge(uint32_t max, size_t len)
{
	uint64_t hi = max < MAX_SGE ? max : MAX_SGE;

	if (hi > len)
		hi = len;
	return (int)vt_rand_range(1, hi ? hi : 1);
}

static void plan_data(struct run *r, int i, size_t len)
{
	struct wr_plan *w = &r->plan[i];
	const struct op_info *oi = &ops[r->op];
	uint8_t *aslot = r->abuf + (size_t)i * r->slot;
	uint8_t *bslot = r->bbuf + (size_t)i * r->slot;
	struct piece lp[MAX_SGE];
	uint64_t wr_id = w->wr_id;
	bool signaled = w->signaled;

	memset(w, 0, sizeof(*w));
	w->wr_id = wr_id;
	w->signaled = signaled;
	w->len = len;
	w->exp = r->expect + (size_t)i * r->max_size;
	w->seed = vt_rand();
	vt_fill_seeded(w->exp, len, w->seed);
	w->poison = (uint8_t)vt_rand();
	w->imm = (uint32_t)vt_rand();
	w->dontcare = 0;
	if (oi->to_remote) {
		/* A gathers, B receives (SEND) or is written (WRITE) */
		w->nl = layout(aslot, len, rand_nsge(r->max_sge_send, len), 0,
			       r->amr->lkey, w->lsge, lp);
		scatter(lp, w->nl, w->exp);
		memset(bslot, w->poison, r->slot);
		w->dst_slot = bslot;
		if (oi->rdma) {
			w->remote = bslot + vt_rand_range(0, 7);
			w->dst[0].addr = w->remote;
			w->dst[0].len = (uint32_t)len;
			w->ndst = 1;
		} else {
			uint32_t lead = r->type == IBV_QPT_UD ? GRH_LEN : 0;

			w->nr = layout(bslot, len,
				       rand_nsge(r->max_sge_recv, len), lead,
				       r->blkey, w->rsge, w->dst);
			w->ndst = w->nr;
			if (lead) {
				/* the GRH lands in front of the data */
				w->dst[0].addr -= lead;
				w->dst[0].len += lead;
				w->dontcare = lead;
			}
		}
	} else {
		/* READ: B holds the data, A's scatter list receives it */
		w->remote = bslot + vt_rand_range(0, 7);
		memcpy(w->remote, w->exp, len);
		memset(aslot, w->poison, r->slot);
		w->nl = layout(aslot, len, rand_nsge(r->max_sge_send, len), 0,
			       r->amr->lkey, w->lsge, w->dst);
		w->ndst = w->nl;
		w->dst_slot = aslot;
	}
	w->inl = oi->to_remote && len <= r->a.cap.max_inline_data &&
		(vt_rand() & 1);
}

/* ---- posting ------------------------------------------------------ */

static int post_recvs(struct run *r, bool marker)
{
	struct ibv_recv_wr rw[MAX_DEPTH + 1], *bad;
	int i, n = marker ? 1 : r->n, ret;

	memset(rw, 0, sizeof(rw));
	for (i = 0; i < n; i++) {
		struct wr_plan *w = &r->plan[i];

		rw[i].wr_id = marker ? UINT64_MAX : w->wr_id;
		/* WRITE_IMM and the marker carry no payload: no SGE */
		rw[i].num_sge = marker || ops[r->op].rdma ? 0 : w->nr;
		rw[i].sg_list = rw[i].num_sge ? w->rsge : NULL;
		rw[i].next = i + 1 < n ? &rw[i + 1] : NULL;
	}
	if (r->srq)
		ret = ibv_post_srq_recv(r->srq, rw, &bad);
	else
		ret = ibv_post_recv(r->b.qp, rw, &bad);
	if (ret)
		return FAIL(r, "ibv_post_%srecv failed: %s",
			    r->srq ? "srq_" : "", strerror(ret));
	return 0;
}

/* B's address of a byte of bbuf (the client plans in a local shadow). */
static uint64_t b_addr(const struct run *r, const uint8_t *p)
{
	if (r->role == ROLE_CLIENT)
		return r->braddr + (uint64_t)(p - r->bbuf);
	return (uintptr_t)p;
}

static void fill_send_wr(struct run *r, struct wr_plan *w,
			 struct ibv_send_wr *sw)
{
	const struct op_info *oi = &ops[r->op];

	memset(sw, 0, sizeof(*sw));
	sw->wr_id = w->wr_id;
	sw->opcode = oi->wr;
	sw->send_flags = (w->signaled ? IBV_SEND_SIGNALED : 0) |
		(w->inl ? IBV_SEND_INLINE : 0);
	sw->sg_list = w->lsge;
	sw->num_sge = w->nl;
	if (oi->imm)
		sw->imm_data = htonl(w->imm);
	if (oi->atomic) {
		sw->wr.atomic.remote_addr = b_addr(r, w->remote);
		sw->wr.atomic.rkey = r->brkey;
		sw->wr.atomic.compare_add = w->compare_add;
		sw->wr.atomic.swap = w->swap;
	} else if (oi->rdma) {
		sw->wr.rdma.remote_addr = b_addr(r, w->remote);
		sw->wr.rdma.rkey = r->brkey;
	}
	if (r->type == IBV_QPT_XRC_SEND)
		sw->qp_type.xrc.remote_srqn = r->xsrqn;
	if (r->type == IBV_QPT_UD) {
		sw->wr.ud.ah = r->a.ah;
		sw->wr.ud.remote_qpn = r->dst_qpn;
		sw->wr.ud.remote_qkey = VT_QKEY;
	}
}

static int post_sends(struct run *r)
{
	struct ibv_send_wr sw[MAX_DEPTH], *bad = NULL;
	int i, k, ret;

	for (i = 0; i < r->n; i++) {
		fill_send_wr(r, &r->plan[i], &sw[i]);
		sw[i].next = i + 1 < r->n ? &sw[i + 1] : NULL;
	}
	ret = ibv_post_send(r->a.qp, sw, &bad);
	if (ret)
		return FAIL(r, "ibv_post_send failed: %s (bad_wr index %ld)",
			    strerror(ret), bad ? (long)(bad - sw) : -1L);
	/* inline data was copied at post time: the buffers are free again */
	for (i = 0; i < r->n; i++) {
		if (!r->plan[i].inl)
			continue;
		for (k = 0; k < r->plan[i].nl; k++)
			memset((void *)(uintptr_t)r->plan[i].lsge[k].addr, 0xee,
			       r->plan[i].lsge[k].length);
	}
	return 0;
}

/* A zero-length SEND after UC WRITEs: when it arrives, the writes did.
 * The receive for it is post_recvs(r, true), on B's side. */
static int post_marker(struct run *r)
{
	struct ibv_send_wr sw, *bad;
	int ret;

	memset(&sw, 0, sizeof(sw));
	sw.wr_id = UINT64_MAX;
	sw.opcode = IBV_WR_SEND;
	sw.send_flags = IBV_SEND_SIGNALED;
	ret = ibv_post_send(r->a.qp, &sw, &bad);
	if (ret)
		return FAIL(r, "ibv_post_send(marker) failed: %s",
			    strerror(ret));
	return 0;
}

/* ---- completions -------------------------------------------------- */

static const char *wc_str(enum ibv_wc_status s)
{
	return ibv_wc_status_str(s);
}

static int check_send_wc(struct run *r, struct ibv_wc *wc, struct wr_plan *w)
{
	const struct op_info *oi = &ops[r->op];

	if (wc->status != IBV_WC_SUCCESS)
		return FAIL(r, "send completion wr_id %#" PRIx64 ": status %s (%d), vendor_err %#x",
			    wc->wr_id, wc_str(wc->status), wc->status,
			    wc->vendor_err);
	if (wc->wr_id != w->wr_id)
		return FAIL(r, "send completion out of order: wr_id %#" PRIx64 ", expected %#" PRIx64,
			    wc->wr_id, w->wr_id);
	if (wc->opcode != oi->swc)
		return FAIL(r, "send completion wr_id %#" PRIx64 ": opcode %d, expected %d",
			    wc->wr_id, wc->opcode, oi->swc);
	if (wc->qp_num != r->a.qp->qp_num)
		return FAIL(r, "send completion qp_num %u, expected %u",
			    wc->qp_num, r->a.qp->qp_num);
	/* byte_len is defined on the send queue for READ and atomics */
	if ((r->op == OP_READ && wc->byte_len != w->len) ||
	    (oi->atomic && wc->byte_len != 8))
		return FAIL(r, "send completion wr_id %#" PRIx64 ": byte_len %u, expected %zu",
			    wc->wr_id, wc->byte_len, oi->atomic ? 8 : w->len);
	return 0;
}

static int wait_sends(struct run *r)
{
	struct ibv_wc wc;
	int i, got;

	for (i = 0; i < r->n; i++) {
		struct wr_plan *w = &r->plan[i];

		if (!w->signaled)
			continue;
		got = vt_poll(r->a.scq, &wc, 1, VT_WAIT_MS);
		if (got != 1)
			return FAIL(r, "timeout (%d ms) waiting for send completion of wr %d/%d (wr_id %#" PRIx64 ", %zu bytes)",
				    VT_WAIT_MS, i + 1, r->n, w->wr_id, w->len);
		if (check_send_wc(r, &wc, w))
			return -1;
	}
	return 0;
}

static int check_recv_wc(struct run *r, struct ibv_wc *wc, struct wr_plan *w)
{
	const struct op_info *oi = &ops[r->op];
	enum ibv_wc_opcode op = oi->rdma ? IBV_WC_RECV_RDMA_WITH_IMM :
		IBV_WC_RECV;
	size_t blen = w->len + (r->type == IBV_QPT_UD ? GRH_LEN : 0);

	if (wc->status != IBV_WC_SUCCESS)
		return FAIL(r, "recv completion wr_id %#" PRIx64 ": status %s (%d), vendor_err %#x",
			    wc->wr_id, wc_str(wc->status), wc->status,
			    wc->vendor_err);
	if (wc->wr_id != w->wr_id)
		return FAIL(r, "recv completion out of order: wr_id %#" PRIx64 ", expected %#" PRIx64,
			    wc->wr_id, w->wr_id);
	if (wc->opcode != op)
		return FAIL(r, "recv completion wr_id %#" PRIx64 ": opcode %d, expected %d",
			    wc->wr_id, wc->opcode, op);
	if (wc->byte_len != blen)
		return FAIL(r, "recv completion wr_id %#" PRIx64 ": byte_len %u, expected %zu",
			    wc->wr_id, wc->byte_len, blen);
	if (wc->qp_num != r->b.qp->qp_num)
		return FAIL(r, "recv completion qp_num %u, expected %u",
			    wc->qp_num, r->b.qp->qp_num);
	if (oi->imm && !(wc->wc_flags & IBV_WC_WITH_IMM))
		return FAIL(r, "recv completion wr_id %#" PRIx64 ": IBV_WC_WITH_IMM not set",
			    wc->wr_id);
	if (!oi->imm && (wc->wc_flags & IBV_WC_WITH_IMM))
		return FAIL(r, "recv completion wr_id %#" PRIx64 ": IBV_WC_WITH_IMM set without immediate",
			    wc->wr_id);
	if (oi->imm && ntohl(wc->imm_data) != w->imm)
		return FAIL(r, "recv completion wr_id %#" PRIx64 ": imm_data %#x, expected %#x",
			    wc->wr_id, ntohl(wc->imm_data), w->imm);
	if (r->type != IBV_QPT_UD)
		return 0;
	if (wc->src_qp != r->src_qpn)
		return FAIL(r, "UD recv completion: src_qp %u, expected %u",
			    wc->src_qp, r->src_qpn);
	if (!(wc->wc_flags & IBV_WC_GRH))
		return FAIL(r, "UD recv completion: IBV_WC_GRH not set (RoCE always carries a GRH)");
	return 0;
}

static int wait_recvs(struct run *r, bool marker)
{
	struct ibv_wc wc;
	int i, got, n = marker ? 1 : r->n;

	for (i = 0; i < n; i++) {
		got = vt_poll(r->b.rcq, &wc, 1, VT_WAIT_MS);
		if (got != 1)
			return FAIL(r, "timeout (%d ms) waiting for %s completion %d/%d at the receiver",
				    VT_WAIT_MS, marker ? "marker" : "recv",
				    i + 1, n);
		if (marker) {
			if (wc.status != IBV_WC_SUCCESS ||
			    wc.wr_id != UINT64_MAX)
				return FAIL(r, "marker recv: status %s wr_id %#" PRIx64,
					    wc_str(wc.status), wc.wr_id);
			continue;
		}
		if (check_recv_wc(r, &wc, &r->plan[i]))
			return -1;
	}
	return 0;
}

/* The marker's send completion, on A's side. */
static int wait_marker_send(struct run *r)
{
	struct ibv_wc wc;
	int got;

	got = vt_poll(r->a.scq, &wc, 1, VT_WAIT_MS);
	if (got != 1 || wc.status != IBV_WC_SUCCESS || wc.wr_id != UINT64_MAX)
		return FAIL(r, "marker send completion missing or bad (got %d, status %s)",
			    got, got == 1 ? wc_str(wc.status) : "-");
	return 0;
}

/* ---- data check --------------------------------------------------- */

/* Message offset of @p in the pieces, or -1 when @p is outside them. */
static long msg_offset(const struct wr_plan *w, const uint8_t *p, int *sge,
		       size_t skip)
{
	long base = 0;
	int k;

	for (k = 0; k < w->ndst; k++) {
		const uint8_t *a = w->dst[k].addr + (k == 0 ? skip : 0);
		size_t l = w->dst[k].len - (k == 0 ? skip : 0);

		if (p >= a && p < a + l) {
			*sge = k;
			return base + (long)(p - a);
		}
		base += (long)l;
	}
	return -1;
}

/*
 * The 40 bytes in front of a UD message hold the GRH.  On RoCEv2 with an
 * IPv4-mapped GID they hold the IPv4 header in their last 20 bytes
 * (rxe_recv.c / mlx5 do this), otherwise the IPv6 header; either way the
 * source and destination are our own GID here.
 */
static int check_grh(struct run *r, const struct wr_plan *w)
{
	const uint8_t *g = w->dst[0].addr;
	const uint8_t *gid = r->d->gid.raw;		/* destination: us */
	const uint8_t *sgid = r->peer_gid.raw;		/* source: the sender */
	static const uint8_t v4map[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					   0xff, 0xff };

	if (!memcmp(gid, v4map, sizeof(v4map))) {
		if ((g[20] >> 4) != 4 || memcmp(g + 32, sgid + 12, 4) ||
		    memcmp(g + 36, gid + 12, 4))
			return FAIL(r, "UD GRH area: expected an IPv4 header at offset 20 from %u.%u.%u.%u to %u.%u.%u.%u; got version %u, src %u.%u.%u.%u, dst %u.%u.%u.%u",
				    sgid[12], sgid[13], sgid[14], sgid[15],
				    gid[12], gid[13], gid[14], gid[15],
				    g[20] >> 4, g[32], g[33], g[34], g[35],
				    g[36], g[37], g[38], g[39]);
		return 0;
	}
	if ((g[0] >> 4) != 6 || memcmp(g + 8, sgid, 16) ||
	    memcmp(g + 24, gid, 16))
		return FAIL(r, "UD GRH area: expected an IPv6 header (version 6, sgid = the sender's GID, dgid = ours); got version %u",
			    g[0] >> 4);
	return 0;
}

/* Fast path: pieces equal the message and everything around is poison. */
static bool data_ok(const struct wr_plan *w, const uint8_t *end)
{
	const uint8_t *p = w->dst_slot, *src = w->exp;
	size_t skip = w->dontcare;
	int k;

	for (k = 0; k < w->ndst; k++) {
		const uint8_t *a = w->dst[k].addr + (k == 0 ? skip : 0);
		size_t l = w->dst[k].len - (k == 0 ? skip : 0);

		for (; p < w->dst[k].addr; p++)
			if (*p != w->poison)
				return false;
		if (memcmp(a, src, l))
			return false;
		src += l;
		p = a + l;
	}
	for (; p < end; p++)
		if (*p != w->poison)
			return false;
	return true;
}

static int check_data(struct run *r, int i)
{
	struct wr_plan *w = &r->plan[i];
	const struct piece *last = &w->dst[w->ndst - 1];
	const uint8_t *end = last->addr + last->len + GUARD;
	const uint8_t *gstart = w->dst[0].addr;
	const uint8_t *p;
	size_t skip = w->dontcare;

	if (end > w->dst_slot + r->slot)
		end = w->dst_slot + r->slot;
	if (w->dontcare && check_grh(r, w))
		return -1;
	if (data_ok(w, end))
		return 0;
	for (p = w->dst_slot; p < end; p++) {
		int sge = 0;
		long off;
		uint8_t want;

		if (p >= gstart && p < gstart + skip)
			continue;
		off = msg_offset(w, p, &sge, skip);
		want = off >= 0 ? w->exp[off] : w->poison;
		if (*p == want)
			continue;
		if (off >= 0)
			return FAIL(r, "data mismatch in wr %d (%zu bytes, %d sge): byte %ld of %zu (sge %d): expected 0x%02x got 0x%02x",
				    i, w->len, w->ndst, off, w->len, sge,
				    want, *p);
		return FAIL(r, "wr %d (%zu bytes): byte outside the message overwritten at %+ld from its first byte: expected 0x%02x got 0x%02x",
			    i, w->len, (long)(p - (w->dst[0].addr + skip)),
			    want, *p);
	}
	return 0;
}

/* ---- side channel (two processes) --------------------------------- */

/* Offsets in bbuf travel instead of pointers (the client plans in a shadow). */
static uint64_t b_off(const struct run *r, const uint8_t *p)
{
	return (uint64_t)(p - r->bbuf);
}

static int chan_send(struct run *r, uint32_t type, const struct vt_wbuf *b)
{
	if (b && b->err)
		return FAIL(r, "side channel: message %u too large", type);
	if (vt_msg_send(r->sock, type, b ? b->p : NULL,
			b ? (uint32_t)b->len : 0))
		return FAIL(r, "side channel: cannot send message %u", type);
	return 0;
}

/*
 * Wait for message @want from the server into @b.  A RESULT carrying an
 * error (whatever was awaited) fails with the server's words.
 */
static int chan_wait(struct run *r, uint32_t want, struct vt_wbuf *b)
{
	uint32_t type, status;
	int len;

	len = vt_msg_recv(r->sock, &type, b->p, (uint32_t)b->cap - 1,
			  r->wait_ms);
	if (len < 0)
		return FAIL(r, "side channel: no answer from the server within %d ms",
			    r->wait_ms);
	b->len = (size_t)len;
	b->pos = 0;
	b->err = false;
	if (type == VM_RESULT) {
		status = vt_get32(b);
		b->p[b->len] = '\0';
		if (b->err)
			return FAIL(r, "side channel: short RESULT");
		if (status)
			return FAIL(r, "server: %s", (char *)b->p + b->pos);
	}
	if (type != want)
		return FAIL(r, "side channel: message %u, expected %u", type,
			    want);
	return 0;
}

static int chan_result(struct run *r)
{
	uint8_t buf[1024];
	struct vt_wbuf b = { .p = buf, .cap = sizeof(buf) };

	return chan_wait(r, VM_RESULT, &b);
}

/* Client: B's side of a data batch, then wait until the server is ready. */
static int client_send_batch(struct run *r)
{
	const struct op_info *oi = &ops[r->op];
	static uint8_t buf[VM_MAX];
	struct vt_wbuf b = { .p = buf, .cap = sizeof(buf) };
	int i, k;

	vt_put32(&b, r->iter);
	vt_put32(&b, (uint32_t)r->n);
	for (i = 0; i < r->n; i++) {
		const struct wr_plan *w = &r->plan[i];

		vt_put64(&b, w->wr_id);
		vt_put64(&b, w->len);
		vt_put64(&b, w->seed);
		vt_put8(&b, w->poison);
		vt_put32(&b, w->imm);
		vt_put64(&b, oi->to_remote ? b_off(r, w->dst_slot) : 0);
		vt_put64(&b, w->remote ? b_off(r, w->remote) : 0);
		vt_put32(&b, (uint32_t)w->nr);
		for (k = 0; k < w->nr; k++) {
			vt_put64(&b, b_off(r, (uint8_t *)(uintptr_t)w->rsge[k].addr));
			vt_put32(&b, w->rsge[k].length);
		}
		vt_put32(&b, oi->to_remote ? (uint32_t)w->ndst : 0);
		for (k = 0; oi->to_remote && k < w->ndst; k++) {
			vt_put64(&b, b_off(r, w->dst[k].addr));
			vt_put32(&b, w->dst[k].len);
		}
		vt_put32(&b, (uint32_t)w->dontcare);
	}
	if (chan_send(r, VM_BATCH, &b))
		return -1;
	b.cap = 1024;
	return chan_wait(r, VM_READY, &b);
}

/* Server: a range of bbuf named by the client must lie inside it. */
static uint8_t *srv_ptr(struct run *r, uint64_t off, uint64_t len)
{
	if (off > r->buf_len || len > r->buf_len - off)
		return NULL;
	return r->bbuf + off;
}

/* Server: prepare B for a data batch (memory, receives). */
static int server_batch(struct run *r, struct vt_wbuf *b)
{
	const struct op_info *oi = &ops[r->op];
	uint32_t n;
	int i, k;

	r->iter = vt_get32(b);
	n = vt_get32(b);
	if (n < 1 || n > r->depth)
		return FAIL(r, "protocol: batch of %u WRs", n);
	for (i = 0; i < (int)n; i++) {
		struct wr_plan *w = &r->plan[i];
		uint64_t dslot, remote, off;
		uint32_t len;

		memset(w, 0, sizeof(*w));
		w->wr_id = vt_get64(b);
		w->len = vt_get64(b);
		w->seed = vt_get64(b);
		w->poison = vt_get8(b);
		w->imm = vt_get32(b);
		dslot = vt_get64(b);
		remote = vt_get64(b);
		w->nr = (int)vt_get32(b);
		if (b->err || w->len > r->max_size || w->nr < 0 ||
		    w->nr > MAX_SGE)
			return FAIL(r, "protocol: bad WR %d", i);
		for (k = 0; k < w->nr; k++) {
			off = vt_get64(b);
			len = vt_get32(b);
			w->rsge[k].addr = (uintptr_t)srv_ptr(r, off, len);
			w->rsge[k].length = len;
			w->rsge[k].lkey = r->blkey;
			if (!w->rsge[k].addr)
				return FAIL(r, "protocol: receive SGE outside the buffer");
		}
		w->ndst = (int)vt_get32(b);
		if (w->ndst < 0 || w->ndst > MAX_SGE)
			return FAIL(r, "protocol: bad WR %d", i);
		for (k = 0; k < w->ndst; k++) {
			off = vt_get64(b);
			len = vt_get32(b);
			w->dst[k].addr = srv_ptr(r, off, len);
			w->dst[k].len = len;
			if (!w->dst[k].addr)
				return FAIL(r, "protocol: piece outside the buffer");
		}
		w->dontcare = vt_get32(b);
		if (b->err)
			return FAIL(r, "protocol: short batch");
		w->exp = r->expect + (size_t)i * r->max_size;
		vt_fill_seeded(w->exp, w->len, w->seed);
		if (oi->to_remote) {
			w->dst_slot = srv_ptr(r, dslot, r->slot);
			if (!w->dst_slot || !w->ndst)
				return FAIL(r, "protocol: bad destination slot");
			memset(w->dst_slot, w->poison, r->slot);
		} else {
			/* READ: B holds the bytes A reads */
			w->remote = srv_ptr(r, remote, w->len);
			if (!w->remote)
				return FAIL(r, "protocol: READ source outside the buffer");
			memcpy(w->remote, w->exp, w->len);
		}
	}
	r->n = (int)n;
	if (oi->recv && post_recvs(r, false))
		return -1;
	if (r->type == IBV_QPT_UC && r->op == OP_WRITE && post_recvs(r, true))
		return -1;
	return 0;
}

static void corrupt_one(struct run *r)
{
	struct wr_plan *w = &r->plan[r->n - 1];
	size_t mid = w->dontcare + (w->dst[0].len - w->dontcare) / 2;

	w->dst[0].addr[mid] ^= 0x40;
}

/* Server: A's sends completed; check B's completions and bytes. */
static int server_check(struct run *r)
{
	const struct op_info *oi = &ops[r->op];
	int i;

	if (oi->recv && wait_recvs(r, false))
		return -1;
	if (r->type == IBV_QPT_UC && r->op == OP_WRITE && wait_recvs(r, true))
		return -1;
	if (!oi->to_remote)
		return 0;
	if (r->o->corrupt && r->iter == 2)
		corrupt_one(r);
	for (i = 0; i < r->n; i++) {
		if (check_data(r, i))
			return -1;
		r->msgs++;
		r->bytes += r->plan[i].len;
	}
	return 0;
}

/* ---- one batch ---------------------------------------------------- */

static void plan_batch(struct run *r)
{
	size_t total = 0, len;
	int i, n = (int)vt_rand_range(1, r->depth);

	for (i = 0; i < n; i++) {
		len = i == 0 ? schedule_size(r, r->iter) :
			random_size(size_cap(r));
		if (i > 0 && total + len > BATCH_BYTES)
			break;
		total += len;
		r->plan[i].wr_id = ((uint64_t)r->iter << 8) | (uint64_t)i;
		r->plan[i].signaled = i == n - 1 || (vt_rand() & 1);
		plan_data(r, i, len);
	}
	r->n = i;
	r->plan[r->n - 1].signaled = true;
}

static int run_data_batch(struct run *r)
{
	const struct op_info *oi = &ops[r->op];
	bool uc_marker = r->type == IBV_QPT_UC && r->op == OP_WRITE;
	bool local = r->role == ROLE_LOCAL;
	int i;

	plan_batch(r);
	if (!local) {
		if (client_send_batch(r))
			return -1;
	} else if (oi->recv && post_recvs(r, false)) {
		return -1;
	}
	if (post_sends(r) || wait_sends(r))
		return -1;
	if (local && oi->recv && wait_recvs(r, false))
		return -1;
	if (uc_marker) {
		if (local && post_recvs(r, true))
			return -1;
		if (post_marker(r) || (local && wait_recvs(r, true)) ||
		    wait_marker_send(r))
			return -1;
	}
	if (!local && chan_send(r, VM_DONE, NULL))
		return -1;
	/* the bytes that landed here: all of them, or what A read */
	if (local || !oi->to_remote) {
		if (r->o->corrupt && r->iter == 2)
			corrupt_one(r);
		for (i = 0; i < r->n; i++)
			if (check_data(r, i))
				return -1;
	}
	if (!local && chan_result(r))
		return -1;
	for (i = 0; i < r->n; i++) {
		r->msgs++;
		r->bytes += r->plan[i].len;
	}
	return 0;
}

/*
 * Atomics: every WR of a batch targets one 8-byte word.  FETCH_ADD of
 * known addends must return the running sums in post order; a CMP_SWAP
 * chain (some compares made to fail) must return the current value each
 * time and swap only on a match.  Replayed or lost atomics break the chain.
 */
static int check_atomic_target(struct run *r, volatile uint64_t *tgt,
			       uint64_t want, int n)
{
	uint64_t got = *tgt;

	if (got != want)
		return FAIL(r, "%s: final value %#" PRIx64 " after %d ops, expected %#" PRIx64,
			    ops[r->op].name, got, n, want);
	if (tgt[-1] != 0x5a5a5a5a5a5a5a5aull || tgt[1] != 0x5a5a5a5a5a5a5a5aull)
		return FAIL(r, "%s: memory next to the target word overwritten",
			    ops[r->op].name);
	return 0;
}

static int run_atomic_batch(struct run *r)
{
	uint8_t *area = r->bbuf + 64 + 8 * vt_rand_range(0, 31);
	volatile uint64_t *tgt = (uint64_t *)(void *)
		(((uintptr_t)area + 7) & ~(uintptr_t)7);
	uint64_t cur = vt_rand(), initial = cur;
	uint64_t *res = (uint64_t *)(void *)
		(((uintptr_t)r->abuf + 64 + 7) & ~(uintptr_t)7);
	int i;

	r->n = (int)vt_rand_range(1, r->depth);
	memset((void *)(tgt - 4), 0x5a, 72);
	*tgt = cur;
	for (i = 0; i < r->n; i++) {
		struct wr_plan *w = &r->plan[i];

		memset(w, 0, sizeof(*w));
		w->wr_id = ((uint64_t)r->iter << 8) | (uint64_t)i;
		w->signaled = i == r->n - 1 || (vt_rand() & 1);
		w->len = 8;
		w->remote = (uint8_t *)(uintptr_t)tgt;
		w->result = res + 2 * i;
		w->result[0] = w->result[1] = 0xa5a5a5a5a5a5a5a5ull;
		w->lsge[0].addr = (uintptr_t)w->result;
		w->lsge[0].length = 8;
		w->lsge[0].lkey = r->amr->lkey;
		w->nl = 1;
		w->expect_ret = cur;
		if (r->op == OP_FAA) {
			w->compare_add = vt_rand();
			cur += w->compare_add;
		} else if ((vt_rand() & 3) == 0) {
			w->compare_add = cur ^ (vt_rand() | 1);
			w->swap = vt_rand();
		} else {
			w->compare_add = cur;
			w->swap = vt_rand();
			cur = w->swap;
		}
	}
	if (r->role == ROLE_CLIENT) {
		uint8_t buf[1024];
		struct vt_wbuf b = { .p = buf, .cap = sizeof(buf) };

		vt_put32(&b, r->iter);
		vt_put32(&b, (uint32_t)r->n);
		vt_put64(&b, b_off(r, (uint8_t *)(uintptr_t)tgt));
		vt_put64(&b, initial);
		vt_put64(&b, cur);
		if (chan_send(r, VM_ATOMIC, &b) || chan_wait(r, VM_READY, &b))
			return -1;
	}
	if (post_sends(r) || wait_sends(r))
		return -1;
	if (r->role == ROLE_CLIENT && chan_send(r, VM_DONE, NULL))
		return -1;
	if (r->o->corrupt && r->iter == 2)
		r->plan[r->n - 1].result[0] ^= 1;
	for (i = 0; i < r->n; i++) {
		struct wr_plan *w = &r->plan[i];

		if (w->result[0] != w->expect_ret)
			return FAIL(r, "%s %d/%d: returned original %#" PRIx64 ", expected %#" PRIx64 " (compare_add %#" PRIx64 ")",
				    ops[r->op].name, i + 1, r->n, w->result[0],
				    w->expect_ret, w->compare_add);
		if (w->result[1] != 0xa5a5a5a5a5a5a5a5ull)
			return FAIL(r, "%s %d/%d: local bytes after the 8-byte result overwritten",
				    ops[r->op].name, i + 1, r->n);
	}
	if (r->role == ROLE_CLIENT ? chan_result(r) :
	    check_atomic_target(r, tgt, cur, r->n))
		return -1;
	r->msgs += (uint64_t)r->n;
	r->bytes += 8u * (uint64_t)r->n;
	return 0;
}

/* Server: the atomic target of a batch, set to its initial value. */
static int server_atomic(struct run *r, struct vt_wbuf *b)
{
	uint64_t off, initial;
	uint8_t *p;

	r->iter = vt_get32(b);
	r->n = (int)vt_get32(b);
	off = vt_get64(b);
	initial = vt_get64(b);
	r->afinal = vt_get64(b);
	p = srv_ptr(r, off - 32, 72);
	if (b->err || off < 32 || !p || ((uintptr_t)(r->bbuf + off) & 7) ||
	    r->n < 1 || r->n > (int)r->depth)
		return FAIL(r, "protocol: bad atomic batch");
	r->atgt = (uint64_t *)(void *)(r->bbuf + off);
	memset(p, 0x5a, 72);
	*(volatile uint64_t *)r->atgt = initial;
	return 0;
}

/* ---- setup -------------------------------------------------------- */

static int alloc_buffers(struct run *r)
{
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	size_t off_a = 0, off_b = r->boff;

	/* the server takes B's misalignment from the client (atomics need
	 * the same alignment on both sides) and draws nothing */
	if (r->role != ROLE_SERVER) {
		off_a = vt_rand_range(0, 63);
		off_b = vt_rand_range(0, 63);
		r->boff = off_b;
	}
	r->depth = r->max_size > BIG_SIZE ? BIG_DEPTH : MAX_DEPTH;
	r->slot = r->max_size + SLOT_PAD;
	r->buf_len = r->slot * r->depth;
	if (r->role != ROLE_SERVER)
		r->abase = malloc(r->buf_len + 64);
	r->bbase = malloc(r->buf_len + 64);
	r->expect = malloc(r->max_size * r->depth);
	if ((r->role != ROLE_SERVER && !r->abase) || !r->bbase || !r->expect)
		return FAIL(r, "out of memory");
	/* MRs start at arbitrary (unaligned) addresses */
	r->bbuf = (uint8_t *)r->bbase + off_b;
	memset(r->bbuf, 0, r->buf_len);
	if (r->role != ROLE_SERVER) {
		r->abuf = (uint8_t *)r->abase + off_a;
		memset(r->abuf, 0, r->buf_len);
		r->amr = ibv_reg_mr(r->d->pd, r->abuf, r->buf_len, access);
		if (!r->amr)
			return FAIL(r, "ibv_reg_mr(%zu bytes): %s", r->buf_len,
				    strerror(errno));
	}
	/* the client's bbuf is only a shadow it plans in */
	if (r->role != ROLE_CLIENT) {
		r->bmr = ibv_reg_mr(r->d->pd, r->bbuf, r->buf_len, access);
		if (!r->bmr)
			return FAIL(r, "ibv_reg_mr(%zu bytes): %s", r->buf_len,
				    strerror(errno));
		r->blkey = r->bmr->lkey;
		r->brkey = r->bmr->rkey;
	}
	return 0;
}

static void qp_opts(struct run *r, struct vt_qp_opts *qo)
{
	struct vt_dev *d = r->d;
	uint32_t sge = d->attr.max_sge < MAX_SGE ? (uint32_t)d->attr.max_sge :
		MAX_SGE;

	memset(qo, 0, sizeof(*qo));
	qo->type = r->type;
	qo->max_send_wr = 64;
	qo->max_recv_wr = 64;
	qo->max_send_sge = sge;
	qo->max_recv_sge = sge;
	qo->max_inline = 220;
	qo->cqe = 256;
}

static int create_srq(struct run *r, struct vt_qp_opts *qo)
{
	struct ibv_srq_init_attr sa = {
		.attr = { .max_wr = 64, .max_sge = qo->max_recv_sge },
	};

	r->srq = ibv_create_srq(r->d->pd, &sa);
	if (!r->srq)
		return FAIL(r, "ibv_create_srq: %s", strerror(errno));
	qo->srq = r->srq;
	return 0;
}

/* XRC: B is a TGT QP of a private domain, its receives come from an XRC
 * SRQ completing on B's receive CQ. */
static int create_b_xrc(struct run *r, struct vt_qp_opts *qo)
{
	struct ibv_xrcd_init_attr xa = {
		.comp_mask = IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS,
		.fd = -1,
		.oflags = O_CREAT,
	};
	struct ibv_srq_init_attr_ex sa = {
		.attr = { .max_wr = 64, .max_sge = qo->max_recv_sge },
		.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD |
			     IBV_SRQ_INIT_ATTR_XRCD | IBV_SRQ_INIT_ATTR_CQ,
		.srq_type = IBV_SRQT_XRC,
		.pd = r->d->pd,
	};

	r->xrcd = ibv_open_xrcd(r->d->ctx, &xa);
	if (!r->xrcd)
		return FAIL(r, "ibv_open_xrcd: %s", strerror(errno));
	qo->type = IBV_QPT_XRC_RECV;
	qo->xrcd = r->xrcd;
	qo->srq = NULL;
	if (vt_qp_create(r->d, &r->b, qo))
		return FAIL(r, "cannot create the XRC TGT QP");
	sa.xrcd = r->xrcd;
	sa.cq = r->b.rcq;
	r->srq = ibv_create_srq_ex(r->d->ctx, &sa);
	if (!r->srq)
		return FAIL(r, "ibv_create_srq_ex(XRC): %s", strerror(errno));
	if (ibv_get_srq_num(r->srq, &r->xsrqn))
		return FAIL(r, "ibv_get_srq_num failed");
	return 0;
}

/* B, the responder, with its SRQ (--srq) or XRC SRQ.  Sets max_sge_recv. */
static int create_b(struct run *r, struct vt_qp_opts *qo)
{
	if (r->type == IBV_QPT_XRC_SEND) {
		if (create_b_xrc(r, qo))
			return -1;
	} else {
		if (r->o->srq && create_srq(r, qo))
			return -1;
		if (vt_qp_create(r->d, &r->b, qo))
			return FAIL(r, "cannot create QP B");
	}
	r->max_sge_recv = r->srq ? qo->max_recv_sge : r->b.cap.max_recv_sge;
	return 0;
}

/* A device may refuse an inline size above its limit: step down. */
static int create_a(struct run *r, struct vt_qp_opts *qo)
{
	while (vt_qp_create(r->d, &r->a, qo)) {
		if (!qo->max_inline)
			return FAIL(r, "cannot create QP A");
		qo->max_inline = qo->max_inline > 64 ? 64 : 0;
	}
	return 0;
}

/* Two processes: bring one QP to RTS towards the peer's. */
static int connect_remote(struct run *r, struct vt_qp *q, uint32_t dest_qpn,
			  uint32_t my_psn, uint32_t peer_psn)
{
	struct vt_conn_opts co = {
		.dgid = &r->peer_gid, .set_psn = true,
		.sq_psn = my_psn, .rq_psn = peer_psn,
	};
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;

	if (q->type == IBV_QPT_RC || q->type == IBV_QPT_XRC_RECV)
		access |= IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	if (vt_qp_to_init(r->d, q, access) ||
	    vt_qp_to_rtr(r->d, q, dest_qpn, &co) ||
	    vt_qp_to_rts(r->d, q, &co))
		return FAIL(r, "cannot connect QP %#x to the peer's %#x",
			    q->qp->qp_num, dest_qpn);
	if (q->type == IBV_QPT_UD && q == &r->a) {
		struct ibv_ah_attr ah;

		vt_fill_ah_attr(r->d, &ah);
		ah.grh.dgid = r->peer_gid;
		q->ah = ibv_create_ah(r->d->pd, &ah);
		if (!q->ah)
			return FAIL(r, "ibv_create_ah: %s", strerror(errno));
	}
	return 0;
}

/* Client: create A, tell the server about the combination, connect. */
static int create_qps_client(struct run *r)
{
	struct vt_qp_opts qo;
	uint8_t buf[1024];
	struct vt_wbuf b = { .p = buf, .cap = sizeof(buf) };
	uint32_t psn = (uint32_t)vt_rand() & 0xffffff, bqpn, bpsn;

	qp_opts(r, &qo);
	if (create_a(r, &qo))
		return -1;
	vt_put8(&b, (uint8_t)r->type);
	vt_put8(&b, (uint8_t)r->op);
	vt_put8(&b, r->o->srq);
	vt_put8(&b, r->o->corrupt);
	vt_put64(&b, r->max_size);
	vt_put64(&b, r->boff);
	vt_put32(&b, r->a.qp->qp_num);
	vt_put32(&b, psn);
	if (chan_send(r, VM_SETUP, &b) || chan_wait(r, VM_SETUP_OK, &b))
		return -1;
	bqpn = vt_get32(&b);
	bpsn = vt_get32(&b);
	r->brkey = vt_get32(&b);
	r->braddr = vt_get64(&b);
	r->max_sge_recv = vt_get32(&b);
	r->xsrqn = vt_get32(&b);
	if (b.err || !r->max_sge_recv)
		return FAIL(r, "protocol: short SETUP_OK");
	r->max_sge_send = r->a.cap.max_send_sge;
	r->src_qpn = r->a.qp->qp_num;
	r->dst_qpn = bqpn;
	if (connect_remote(r, &r->a, bqpn, psn, bpsn))
		return -1;
	if (vt_verbose)
		fprintf(stderr, "QP %#x -> server QP %#x (psn %#x/%#x), rkey %#x addr %#" PRIx64 ", send_sge %u recv_sge %u inline %u; depth %u\n",
			r->a.qp->qp_num, bqpn, psn, bpsn, r->brkey, r->braddr,
			r->max_sge_send, r->max_sge_recv,
			r->a.cap.max_inline_data, r->depth);
	return 0;
}

static int create_qps(struct run *r)
{
	struct vt_dev *d = r->d;
	struct vt_qp_opts qo, bo;

	if (r->role == ROLE_CLIENT)
		return create_qps_client(r);
	qp_opts(r, &qo);
	bo = qo;
	if (create_b(r, &bo))
		return -1;
	qo.srq = bo.srq;	/* --srq: A receives through it too */
	if (create_a(r, &qo))
		return -1;
	r->max_sge_send = r->a.cap.max_send_sge;
	r->src_qpn = r->a.qp->qp_num;
	r->dst_qpn = r->b.qp->qp_num;
	r->peer_gid = d->gid;
	if (vt_connect(d, &r->a, &r->b, NULL))
		return FAIL(r, "cannot connect the QPs");
	if (vt_verbose)
		fprintf(stderr, "QP caps: send_wr %u recv_wr %u send_sge %u recv_sge %u inline %u%s; depth %u\n",
			r->a.cap.max_send_wr, r->a.cap.max_recv_wr,
			r->max_sge_send, r->max_sge_recv,
			r->a.cap.max_inline_data, r->srq ? " (srq)" : "",
			r->depth);
	return 0;
}

static void teardown(struct run *r)
{
	vt_qp_destroy(&r->a);
	/* B's QP, then the SRQ (an XRC SRQ completes on B's CQ), then the
	 * rest of B, then the domain */
	if (r->b.qp && ibv_destroy_qp(r->b.qp))
		fprintf(stderr, "warning: ibv_destroy_qp(B) failed\n");
	r->b.qp = NULL;
	if (r->srq)
		ibv_destroy_srq(r->srq);
	vt_qp_destroy(&r->b);
	if (r->xrcd)
		ibv_close_xrcd(r->xrcd);
	if (r->amr)
		ibv_dereg_mr(r->amr);
	if (r->bmr)
		ibv_dereg_mr(r->bmr);
	free(r->abase);
	free(r->bbase);
	free(r->expect);
}

/* Nothing may complete that was not posted (each side checks its CQs). */
static int check_quiet(struct run *r)
{
	struct ibv_wc wc;
	bool a = r->role != ROLE_SERVER, b = r->role != ROLE_CLIENT;

	if ((a && !vt_cq_quiet(r->a.scq, 20, &wc)) ||
	    (b && !vt_cq_quiet(r->b.rcq, 20, &wc)) ||
	    (a && !vt_cq_quiet(r->a.rcq, 1, &wc)) ||
	    (b && !vt_cq_quiet(r->b.scq, 1, &wc)))
		return FAIL(r, "unexpected extra completion: wr_id %#" PRIx64 " status %s opcode %d",
			    wc.wr_id, wc_str(wc.status), wc.opcode);
	return 0;
}

static void print_combo(struct run *r, int ret, uint64_t t0)
{
	printf("%s %s %-9s%s iters=%u msgs=%" PRIu64 " bytes=%" PRIu64 " %.2fs%s%s\n",
	       ret ? "FAIL" : "PASS", vt_qpt_str(r->type), ops[r->op].name,
	       r->o->srq ? " srq" : "", r->iter, r->msgs, r->bytes,
	       (double)(vt_now_ms() - t0) / 1000.0, ret ? ": " : "", r->err);
	if (ret && r->role != ROLE_SERVER)
		printf("     at iteration %u, seed %" PRIu64 "\n", r->iter,
		       r->o->seed);
	fflush(stdout);
}

static int run_combo(struct vt_dev *d, const struct options *o,
		     enum ibv_qp_type type, enum vop op)
{
	struct run *r = calloc(1, sizeof(*r));
	uint64_t t0 = vt_now_ms();
	int ret = -1;

	if (!r) {
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	r->d = d;
	r->o = o;
	r->type = type;
	r->op = op;
	r->role = o->client ? ROLE_CLIENT : ROLE_LOCAL;
	r->sock = o->sock;
	r->wait_ms = o->wait_ms;
	r->peer_gid = o->peer_gid;
	r->max_size = ops[op].atomic ? 8 : o->max_size;
	if (type == IBV_QPT_UD && r->max_size > d->mtu_bytes)
		r->max_size = d->mtu_bytes;
	if (alloc_buffers(r) || create_qps(r))
		goto out;
	for (r->iter = 0; r->iter < o->iters; r->iter++) {
		if (ops[op].atomic ? run_atomic_batch(r) : run_data_batch(r))
			goto out;
	}
	ret = check_quiet(r);
	if (!ret && r->role == ROLE_CLIENT &&
	    (chan_send(r, VM_END, NULL) || chan_result(r)))
		ret = -1;
out:
	print_combo(r, ret, t0);
	teardown(r);
	free(r);
	return ret;
}

/* ---- the server --------------------------------------------------- */

static int reply(int fd, uint32_t type, int status, const char *msg)
{
	uint8_t buf[1024];
	struct vt_wbuf b = { .p = buf, .cap = sizeof(buf) };

	if (type == VM_RESULT) {
		vt_put32(&b, status ? 1 : 0);
		vt_putmem(&b, msg, strnlen(msg, 900));
	}
	return vt_msg_send(fd, type, buf, (uint32_t)b.len);
}

/* SETUP: create B for a combination and connect it to the client's A. */
static struct run *server_setup(struct vt_dev *d, const struct options *o,
				struct vt_wbuf *b, int fd, int *fails)
{
	struct run *r = calloc(1, sizeof(*r));
	uint8_t out[256];
	struct vt_wbuf ob = { .p = out, .cap = sizeof(out) };
	uint32_t aqpn, apsn, psn = (uint32_t)vt_rand() & 0xffffff;
	struct vt_qp_opts qo;
	unsigned int type, op;

	if (!r) {
		reply(fd, VM_RESULT, 1, "server out of memory");
		(*fails)++;
		return NULL;
	}
	r->d = d;
	r->own_o = *o;
	r->o = &r->own_o;
	r->role = ROLE_SERVER;
	r->sock = fd;
	r->peer_gid = o->peer_gid;
	r->t0 = vt_now_ms();
	type = vt_get8(b);
	op = vt_get8(b);
	r->own_o.srq = vt_get8(b);
	r->own_o.corrupt = vt_get8(b);
	r->max_size = vt_get64(b);
	r->boff = vt_get64(b);
	aqpn = vt_get32(b);
	apsn = vt_get32(b);
	r->type = (enum ibv_qp_type)type;
	r->op = (enum vop)op;
	if (b->err || op >= OP_NUM || r->boff > 63 || !r->max_size ||
	    r->max_size > (1u << 30) || type >= 32 || !(T_ALL & (1u << type)) ||
	    !(ops[op].types & (1u << type))) {
		r->type = IBV_QPT_RC;
		r->op = OP_SEND;
		(void)FAIL(r, "protocol: bad SETUP");
		goto err;
	}
	r->src_qpn = aqpn;
	if (alloc_buffers(r))
		goto err;
	qp_opts(r, &qo);
	qo.max_inline = 0;
	if (create_b(r, &qo))
		goto err;
	r->dst_qpn = r->b.qp->qp_num;
	if (connect_remote(r, &r->b, aqpn, psn, apsn))
		goto err;
	vt_put32(&ob, r->b.qp->qp_num);
	vt_put32(&ob, psn);
	vt_put32(&ob, r->brkey);
	vt_put64(&ob, (uintptr_t)r->bbuf);
	vt_put32(&ob, r->max_sge_recv);
	vt_put32(&ob, r->xsrqn);
	if (vt_msg_send(fd, VM_SETUP_OK, out, (uint32_t)ob.len)) {
		(void)FAIL(r, "side channel: cannot answer SETUP");
		goto err;
	}
	if (vt_verbose)
		fprintf(stderr, "server QP %#x <- client QP %#x (psn %#x/%#x)\n",
			r->b.qp->qp_num, aqpn, psn, apsn);
	return r;
err:
	reply(fd, VM_RESULT, 1, r->err);
	print_combo(r, -1, r->t0);
	(*fails)++;
	teardown(r);
	free(r);
	return NULL;
}

static void server_end(struct run **rp, int ret)
{
	struct run *r = *rp;

	if (!r)
		return;
	print_combo(r, ret, r->t0);
	teardown(r);
	free(r);
	*rp = NULL;
}

/*
 * The server: one client, its combinations one after the other, until
 * BYE.  Returns 0 when nothing failed here or at the client.
 */
static int serve(struct vt_dev *d, struct options *o)
{
	static uint8_t buf[VM_MAX + 1];
	struct vt_wbuf b = { .p = buf, .cap = VM_MAX };
	struct run *r = NULL;
	bool atomic_batch = false, failed = false;
	int lfd, fd, len, fails = 0, ret;
	uint32_t type, status = 1;

	lfd = vt_tcp_listen(o->server);
	if (lfd < 0)
		return 2;
	printf("verify: server waiting on TCP port %s\n", o->server);
	fd = vt_tcp_accept(lfd, o->wait_ms);
	close(lfd);
	if (fd < 0)
		return 2;
	o->sock = fd;
	for (;;) {
		len = vt_msg_recv(fd, &type, buf, VM_MAX, o->wait_ms);
		if (len < 0) {
			fprintf(stderr, "verify: server: the client went away\n");
			fails++;
			break;
		}
		b.len = (size_t)len;
		b.pos = 0;
		b.err = false;
		if (type == VM_BYE) {
			status = vt_get32(&b);
			break;
		}
		if (type == VM_HELLO) {
			/* version, path MTU, GID; answered in kind */
			char g[64];
			uint32_t ver = vt_get32(&b);
			enum ibv_mtu mtu = (enum ibv_mtu)vt_get32(&b);
			struct vt_wbuf ob = { .p = buf, .cap = VM_MAX };

			vt_getmem(&b, o->peer_gid.raw, 16);
			if (b.err || ver != PROTO_VERSION || mtu < IBV_MTU_256 ||
			    mtu > IBV_MTU_4096) {
				reply(fd, VM_RESULT, 1, "protocol: bad HELLO");
				fails++;
				break;
			}
			if (mtu < d->mtu) {
				d->mtu = mtu;
				d->mtu_bytes = 128u << mtu;
			}
			printf("verify: client GID %s, path MTU %u\n",
			       vt_gid_str(&o->peer_gid, g, sizeof(g)),
			       d->mtu_bytes);
			vt_put32(&ob, PROTO_VERSION);
			vt_put32(&ob, d->mtu);
			vt_putmem(&ob, d->gid.raw, 16);
			if (vt_msg_send(fd, VM_HELLO, buf, (uint32_t)ob.len)) {
				fails++;
				break;
			}
			continue;
		}
		if (type == VM_SETUP) {
			server_end(&r, -1);
			failed = false;
			r = server_setup(d, o, &b, fd, &fails);
			continue;
		}
		if (!r || failed) {
			/* after a failure only END/BYE make sense */
			if (type == VM_END) {
				server_end(&r, -1);
				reply(fd, VM_RESULT, 1, "an earlier step failed");
				continue;
			}
			reply(fd, VM_RESULT, 1, "protocol: no combination set up");
			fails++;
			continue;
		}
		switch (type) {
		case VM_BATCH:
		case VM_ATOMIC:
			atomic_batch = type == VM_ATOMIC;
			ret = atomic_batch ? server_atomic(r, &b) :
				server_batch(r, &b);
			if (ret)
				break;
			if (vt_msg_send(fd, VM_READY, NULL, 0))
				ret = FAIL(r, "side channel: cannot send READY");
			continue;
		case VM_DONE:
			ret = atomic_batch ?
				check_atomic_target(r, r->atgt, r->afinal, r->n) :
				server_check(r);
			if (!ret && atomic_batch) {
				r->msgs += (uint64_t)r->n;
				r->bytes += 8u * (uint64_t)r->n;
			}
			if (!ret) {
				reply(fd, VM_RESULT, 0, "");
				continue;
			}
			break;
		case VM_END:
			r->iter++;	/* iterations done, as the client counts */
			ret = check_quiet(r);
			reply(fd, VM_RESULT, ret, r->err);
			if (ret)
				fails++;
			server_end(&r, ret);
			continue;
		default:
			ret = FAIL(r, "protocol: unexpected message %u", type);
			break;
		}
		/* a check failed here: tell the client; reported at the end */
		reply(fd, VM_RESULT, 1, r->err);
		fails++;
		failed = true;
	}
	if (r && !failed)
		(void)FAIL(r, "the combination did not finish (see the client)");
	server_end(&r, -1);
	close(fd);
	if (status)
		printf("verify: the client reported failures\n");
	return fails || status ? 1 : 0;
}

/* ---- main --------------------------------------------------------- */

static bool op_possible(struct vt_dev *d, enum ibv_qp_type t, enum vop op)
{
	if (!(ops[op].types & (1u << t)))
		return false;
	if (t == IBV_QPT_XRC_SEND &&
	    !(d->attr.device_cap_flags & IBV_DEVICE_XRC)) {
		printf("SKIP %s %s: device has no XRC\n", vt_qpt_str(t),
		       ops[op].name);
		return false;
	}
	if (ops[op].atomic && d->attr.atomic_cap == IBV_ATOMIC_NONE) {
		printf("SKIP %s %s: device has no atomics\n", vt_qpt_str(t),
		       ops[op].name);
		return false;
	}
	return true;
}

static int run_all(struct vt_dev *d, struct options *o)
{
	int srq_pass, ti, op, fails = 0;

	for (srq_pass = 0; srq_pass < 2; srq_pass++) {
		if (srq_pass == 1 && !o->all)
			break;
		if (o->all)
			o->srq = srq_pass;
		for (ti = 0; ti < (int)NUM_TYPES; ti++) {
			if (!(o->type_mask & (1u << all_types[ti])))
				continue;
			/* XRC always receives through its XRC SRQ */
			if (o->all && o->srq &&
			    all_types[ti] == IBV_QPT_XRC_SEND)
				continue;
			for (op = 0; op < OP_NUM; op++) {
				if (!(o->op_mask & (1u << op)) ||
				    !op_possible(d, all_types[ti], op))
					continue;
				/* SRQ changes only receive-consuming ops */
				if (o->all && o->srq && !ops[op].recv)
					continue;
				if (run_combo(d, o, all_types[ti], op)) {
					fails++;
					return fails;
				}
			}
		}
	}
	return fails;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [options]\n"
		"  --type T[,T..]|all    QP types rc, uc, ud, xrc (default all)\n"
		"  --op NAME[,..]|all    send send_imm write write_imm read cmp_swap fetch_add\n"
		"  --iters N             batches per combination (default 100)\n"
		"  --max-size BYTES      largest message (default 1048576; UD caps at the MTU)\n"
		"  --seed S              random seed (default: time based, printed)\n"
		"  --srq                 receive through a shared receive queue\n"
		"  --all                 every valid combination of the selected types and\n"
		"                        ops, with and without SRQ\n"
		"  -d DEV                device (default: the first)\n"
		"  -g IDX                GID index (default: first IPv4-mapped RoCE v2 GID)\n"
		"  -v                    verbose\n"
		"  --corrupt             self-test: flip one received byte in the third\n"
		"                        batch; the run must then FAIL (exit 1)\n"
		"two processes (e.g. two hosts):\n"
		"  --server PORT         hold the responder side for one client; the\n"
		"                        client's options decide what runs\n"
		"  --client HOST:PORT    the requester side; HOST may be [IPv6]\n"
		"  --wait SEC            bound on every side-channel wait (default 120)\n",
		argv0);
}

/* "all", or a comma-separated list of QP types. */
static int parse_type(const char *s, unsigned int *mask)
{
	static const struct {
		const char *name;
		unsigned int mask;
	} names[] = {
		{ "all", T_ALL }, { "rc", T_RC }, { "uc", T_UC },
		{ "ud", T_UD }, { "xrc", T_XRC },
	};
	char buf[128], *tok, *save = NULL;
	size_t i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*mask = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(tok, names[i].name))
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return -1;
		*mask |= names[i].mask;
	}
	return *mask ? 0 : -1;
}

/* "all", or a comma-separated list of operation names. */
static int parse_op(const char *s, unsigned int *mask)
{
	char buf[128], *tok, *save = NULL;
	int i;

	if (!strcmp(s, "all")) {
		*mask = (1u << OP_NUM) - 1;
		return 0;
	}
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -1;
	*mask = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < OP_NUM && strcmp(tok, ops[i].name); i++)
			;
		if (i == OP_NUM)
			return -1;
		*mask |= 1u << i;
	}
	return *mask ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option lo[] = {
		{ "type", required_argument, NULL, 't' },
		{ "op", required_argument, NULL, 'o' },
		{ "iters", required_argument, NULL, 'n' },
		{ "max-size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "srq", no_argument, NULL, 'q' },
		{ "all", no_argument, NULL, 'a' },
		{ "corrupt", no_argument, NULL, 'C' },
		{ "server", required_argument, NULL, 'P' },
		{ "client", required_argument, NULL, 'c' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	o->type_mask = T_ALL;
	o->op_mask = (1u << OP_NUM) - 1;
	o->iters = 100;
	o->max_size = 1u << 20;
	o->seed = vt_now_ms() ^ ((uint64_t)getpid() << 32);
	o->gid = -1;
	o->wait_ms = 120000;
	o->sock = -1;
	while ((c = getopt_long(argc, argv, "d:g:vh", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_type(optarg, &o->type_mask))
				return -1;
			break;
		case 'o':
			if (parse_op(optarg, &o->op_mask))
				return -1;
			break;
		case 'n':
			o->iters = (unsigned int)strtoul(optarg, &end, 0);
			if (*end || !o->iters)
				return -1;
			break;
		case 's':
			o->max_size = strtoull(optarg, &end, 0);
			if (*end || !o->max_size || o->max_size > (1u << 30))
				return -1;
			break;
		case 'S':
			o->seed = strtoull(optarg, &end, 0);
			if (*end)
				return -1;
			break;
		case 'q':
			o->srq = true;
			break;
		case 'C':
			o->corrupt = true;
			break;
		case 'P':
			o->server = optarg;
			break;
		case 'c':
			o->client = optarg;
			break;
		case 'w':
			o->wait_ms = (int)strtoul(optarg, &end, 0) * 1000;
			if (*end || o->wait_ms <= 0)
				return -1;
			break;
		case 'a':
			/* types and ops default to all; --type/--op narrow */
			o->all = true;
			break;
		case 'd':
			o->dev = optarg;
			break;
		case 'g':
			o->gid = atoi(optarg);
			break;
		case 'v':
			vt_verbose++;
			break;
		default:
			return -1;
		}
	}
	if (o->server && o->client)
		return -1;
	return optind == argc ? 0 : -1;
}

/* Client: connect to the server and agree on version, path MTU, GIDs. */
static int client_hello(struct vt_dev *d, struct options *o)
{
	uint8_t buf[256];
	struct vt_wbuf b = { .p = buf, .cap = sizeof(buf) - 1 };
	uint32_t type, ver;
	enum ibv_mtu mtu;
	char g[64];
	int len;

	o->sock = vt_tcp_connect(o->client, o->wait_ms);
	if (o->sock < 0)
		return -1;
	vt_put32(&b, PROTO_VERSION);
	vt_put32(&b, d->mtu);
	vt_putmem(&b, d->gid.raw, 16);
	if (vt_msg_send(o->sock, VM_HELLO, buf, (uint32_t)b.len))
		return -1;
	len = vt_msg_recv(o->sock, &type, buf, sizeof(buf) - 1, o->wait_ms);
	if (len < 0)
		return -1;
	b.len = (size_t)len;
	b.pos = 0;
	ver = vt_get32(&b);
	mtu = (enum ibv_mtu)vt_get32(&b);
	vt_getmem(&b, o->peer_gid.raw, 16);
	if (type != VM_HELLO || b.err || ver != PROTO_VERSION ||
	    mtu < IBV_MTU_256 || mtu > IBV_MTU_4096) {
		fprintf(stderr, "verify: the server at %s does not speak this protocol\n",
			o->client);
		return -1;
	}
	if (mtu < d->mtu) {
		d->mtu = mtu;
		d->mtu_bytes = 128u << mtu;
	}
	printf("verify: server %s GID %s, path MTU %u\n", o->client,
	       vt_gid_str(&o->peer_gid, g, sizeof(g)), d->mtu_bytes);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct vt_dev d;
	int fails;

	if (parse_args(argc, argv, &o)) {
		usage(argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("verify: seed %" PRIu64 "\n", o.seed);
	vt_rand_seed(o.seed);
	if (vt_open(&d, o.dev, o.gid))
		return 2;
	printf("verify: device %s gid[%d] mtu %u max_size %zu iters %u\n",
	       ibv_get_device_name(d.ctx->device), d.gid_index, d.mtu_bytes,
	       o.max_size, o.iters);
	if (o.server) {
		fails = serve(&d, &o);
		vt_close(&d);
		printf("verify: server %s\n", fails ? "FAILED" : "all passed");
		return fails;
	}
	if (o.client && client_hello(&d, &o)) {
		vt_close(&d);
		return 2;
	}
	fails = run_all(&d, &o);
	if (o.client) {
		uint32_t st = htonl((uint32_t)fails);

		vt_msg_send(o.sock, VM_BYE, &st, sizeof(st));
		/* the server closes after BYE: wait for that (bounded) */
		shutdown(o.sock, SHUT_WR);
		{
			struct pollfd p = { .fd = o.sock, .events = POLLIN };
			uint8_t junk[64];

			while (poll(&p, 1, 5000) > 0 &&
			       recv(o.sock, junk, sizeof(junk), 0) > 0)
				;
		}
		close(o.sock);
	}
	vt_close(&d);
	if (fails) {
		printf("verify: FAILED (rerun with --seed %" PRIu64 ")\n", o.seed);
		return 1;
	}
	printf("verify: all passed\n");
	return 0;
}
