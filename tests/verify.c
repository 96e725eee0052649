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
 *   verify [--type rc|uc|ud|all] [--op NAME|all] [--iters N]
 *          [--max-size BYTES] [--seed S] [--srq] [--all] [-d DEV] [-g IDX] [-v]
 *          [--corrupt]
 *
 * Exit status 0 when every combination passed, 1 at the first mismatch,
 * 2 on a usage or setup error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

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
		      T_RC | T_UC | T_UD, true, false, false, true, false },
	[OP_SEND_IMM] = { "send_imm", IBV_WR_SEND_WITH_IMM, IBV_WC_SEND,
			  T_RC | T_UC | T_UD, true, true, false, true, false },
	[OP_WRITE] = { "write", IBV_WR_RDMA_WRITE, IBV_WC_RDMA_WRITE,
		       T_RC | T_UC, false, false, true, true, false },
	[OP_WRITE_IMM] = { "write_imm", IBV_WR_RDMA_WRITE_WITH_IMM,
			   IBV_WC_RDMA_WRITE, T_RC | T_UC, true, true, true,
			   true, false },
	[OP_READ] = { "read", IBV_WR_RDMA_READ, IBV_WC_RDMA_READ,
		      T_RC, false, false, true, false, false },
	[OP_CAS] = { "cmp_swap", IBV_WR_ATOMIC_CMP_AND_SWP, IBV_WC_COMP_SWAP,
		     T_RC, false, false, true, false, true },
	[OP_FAA] = { "fetch_add", IBV_WR_ATOMIC_FETCH_AND_ADD,
		     IBV_WC_FETCH_ADD, T_RC, false, false, true, false, true },
};

static const enum ibv_qp_type all_types[] = { IBV_QPT_RC, IBV_QPT_UC,
					      IBV_QPT_UD };

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
};

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
	struct ibv_srq *srq;
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
	vt_rand_fill(w->exp, len);
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
				       r->bmr->lkey, w->rsge, w->dst);
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
		sw->wr.atomic.remote_addr = (uintptr_t)w->remote;
		sw->wr.atomic.rkey = r->bmr->rkey;
		sw->wr.atomic.compare_add = w->compare_add;
		sw->wr.atomic.swap = w->swap;
	} else if (oi->rdma) {
		sw->wr.rdma.remote_addr = (uintptr_t)w->remote;
		sw->wr.rdma.rkey = r->bmr->rkey;
	}
	if (r->type == IBV_QPT_UD) {
		sw->wr.ud.ah = r->a.ah;
		sw->wr.ud.remote_qpn = r->b.qp->qp_num;
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

/* A zero-length SEND after UC WRITEs: when it arrives, the writes did. */
static int post_marker(struct run *r)
{
	struct ibv_send_wr sw, *bad;
	int ret;

	if (post_recvs(r, true))
		return -1;
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
	if (wc->src_qp != r->a.qp->qp_num)
		return FAIL(r, "UD recv completion: src_qp %u, expected %u",
			    wc->src_qp, r->a.qp->qp_num);
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
	if (!marker)
		return 0;
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
	const uint8_t *gid = r->d->gid.raw;
	static const uint8_t v4map[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					   0xff, 0xff };

	if (!memcmp(gid, v4map, sizeof(v4map))) {
		if ((g[20] >> 4) != 4 || memcmp(g + 32, gid + 12, 4) ||
		    memcmp(g + 36, gid + 12, 4))
			return FAIL(r, "UD GRH area: expected an IPv4 header at offset 20 from %u.%u.%u.%u to itself; got version %u, src %u.%u.%u.%u, dst %u.%u.%u.%u",
				    gid[12], gid[13], gid[14], gid[15],
				    g[20] >> 4, g[32], g[33], g[34], g[35],
				    g[36], g[37], g[38], g[39]);
		return 0;
	}
	if ((g[0] >> 4) != 6 || memcmp(g + 8, gid, 16) ||
	    memcmp(g + 24, gid, 16))
		return FAIL(r, "UD GRH area: expected an IPv6 header (version 6, sgid = dgid = our GID); got version %u",
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
	int i;

	plan_batch(r);
	if (oi->recv && post_recvs(r, false))
		return -1;
	if (post_sends(r) || wait_sends(r))
		return -1;
	if (oi->recv && wait_recvs(r, false))
		return -1;
	if (r->type == IBV_QPT_UC && r->op == OP_WRITE &&
	    (post_marker(r) || wait_recvs(r, true)))
		return -1;
	if (r->o->corrupt && r->iter == 2) {
		struct wr_plan *w = &r->plan[r->n - 1];
		size_t mid = w->dontcare + (w->dst[0].len - w->dontcare) / 2;

		w->dst[0].addr[mid] ^= 0x40;
	}
	for (i = 0; i < r->n; i++) {
		if (check_data(r, i))
			return -1;
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
static int run_atomic_batch(struct run *r)
{
	uint8_t *area = r->bbuf + 64 + 8 * vt_rand_range(0, 31);
	volatile uint64_t *tgt = (uint64_t *)(void *)
		(((uintptr_t)area + 7) & ~(uintptr_t)7);
	uint64_t cur = vt_rand(), got;
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
	if (post_sends(r) || wait_sends(r))
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
	got = *tgt;
	if (got != cur)
		return FAIL(r, "%s: final value %#" PRIx64 " after %d ops, expected %#" PRIx64,
			    ops[r->op].name, got, r->n, cur);
	if (tgt[-1] != 0x5a5a5a5a5a5a5a5aull || tgt[1] != 0x5a5a5a5a5a5a5a5aull)
		return FAIL(r, "%s: memory next to the target word overwritten",
			    ops[r->op].name);
	r->msgs += (uint64_t)r->n;
	r->bytes += 8u * (uint64_t)r->n;
	return 0;
}

/* ---- setup -------------------------------------------------------- */

static int alloc_buffers(struct run *r)
{
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	size_t off_a = vt_rand_range(0, 63), off_b = vt_rand_range(0, 63);

	r->depth = r->max_size > BIG_SIZE ? BIG_DEPTH : MAX_DEPTH;
	r->slot = r->max_size + SLOT_PAD;
	r->buf_len = r->slot * r->depth;
	r->abase = malloc(r->buf_len + 64);
	r->bbase = malloc(r->buf_len + 64);
	r->expect = malloc(r->max_size * r->depth);
	if (!r->abase || !r->bbase || !r->expect)
		return FAIL(r, "out of memory");
	/* MRs start at arbitrary (unaligned) addresses */
	r->abuf = (uint8_t *)r->abase + off_a;
	r->bbuf = (uint8_t *)r->bbase + off_b;
	memset(r->abuf, 0, r->buf_len);
	memset(r->bbuf, 0, r->buf_len);
	r->amr = ibv_reg_mr(r->d->pd, r->abuf, r->buf_len, access);
	r->bmr = ibv_reg_mr(r->d->pd, r->bbuf, r->buf_len, access);
	if (!r->amr || !r->bmr)
		return FAIL(r, "ibv_reg_mr(%zu bytes): %s", r->buf_len,
			    strerror(errno));
	return 0;
}

static int create_qps(struct run *r)
{
	struct vt_dev *d = r->d;
	struct vt_qp_opts qo = {
		.type = r->type,
		.max_send_wr = 64, .max_recv_wr = 64,
		.max_send_sge = d->attr.max_sge < MAX_SGE ?
			(uint32_t)d->attr.max_sge : MAX_SGE,
		.max_recv_sge = d->attr.max_sge < MAX_SGE ?
			(uint32_t)d->attr.max_sge : MAX_SGE,
		.max_inline = 220,
		.cqe = 256,
	};

	if (r->o->srq) {
		struct ibv_srq_init_attr sa = {
			.attr = { .max_wr = 64, .max_sge = qo.max_recv_sge },
		};

		r->srq = ibv_create_srq(d->pd, &sa);
		if (!r->srq)
			return FAIL(r, "ibv_create_srq: %s", strerror(errno));
		qo.srq = r->srq;
	}
	/* a device may refuse an inline size above its limit: step down */
	while (vt_qp_create(d, &r->a, &qo)) {
		if (!qo.max_inline)
			return FAIL(r, "cannot create QP A");
		qo.max_inline = qo.max_inline > 64 ? 64 : 0;
	}
	if (vt_qp_create(d, &r->b, &qo))
		return FAIL(r, "cannot create QP B");
	r->max_sge_send = r->a.cap.max_send_sge;
	r->max_sge_recv = r->srq ? qo.max_recv_sge : r->b.cap.max_recv_sge;
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
	vt_qp_destroy(&r->b);
	if (r->srq)
		ibv_destroy_srq(r->srq);
	if (r->amr)
		ibv_dereg_mr(r->amr);
	if (r->bmr)
		ibv_dereg_mr(r->bmr);
	free(r->abase);
	free(r->bbase);
	free(r->expect);
}

/* Nothing may complete that was not posted. */
static int check_quiet(struct run *r)
{
	struct ibv_wc wc;

	if (!vt_cq_quiet(r->a.scq, 20, &wc) || !vt_cq_quiet(r->b.rcq, 20, &wc) ||
	    !vt_cq_quiet(r->a.rcq, 1, &wc) || !vt_cq_quiet(r->b.scq, 1, &wc))
		return FAIL(r, "unexpected extra completion: wr_id %#" PRIx64 " status %s opcode %d",
			    wc.wr_id, wc_str(wc.status), wc.opcode);
	return 0;
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
out:
	printf("%s %s %-9s%s iters=%u msgs=%" PRIu64 " bytes=%" PRIu64 " %.2fs%s%s\n",
	       ret ? "FAIL" : "PASS", vt_qpt_str(type), ops[op].name,
	       o->srq ? " srq" : "", r->iter, r->msgs, r->bytes,
	       (double)(vt_now_ms() - t0) / 1000.0, ret ? ": " : "", r->err);
	if (ret)
		printf("     at iteration %u, seed %" PRIu64 "\n", r->iter,
		       o->seed);
	fflush(stdout);
	teardown(r);
	free(r);
	return ret;
}

/* ---- main --------------------------------------------------------- */

static bool op_possible(struct vt_dev *d, enum ibv_qp_type t, enum vop op)
{
	if (!(ops[op].types & (1u << t)))
		return false;
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
		for (ti = 0; ti < 3; ti++) {
			if (!(o->type_mask & (1u << all_types[ti])))
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
		"  --type rc|uc|ud|all   QP type(s) (default all)\n"
		"  --op NAME|all         send send_imm write write_imm read cmp_swap fetch_add\n"
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
		"                        batch; the run must then FAIL (exit 1)\n", argv0);
}

static int parse_type(const char *s, unsigned int *mask)
{
	if (!strcmp(s, "all"))
		*mask = T_RC | T_UC | T_UD;
	else if (!strcmp(s, "rc"))
		*mask = T_RC;
	else if (!strcmp(s, "uc"))
		*mask = T_UC;
	else if (!strcmp(s, "ud"))
		*mask = T_UD;
	else
		return -1;
	return 0;
}

static int parse_op(const char *s, unsigned int *mask)
{
	int i;

	if (!strcmp(s, "all")) {
		*mask = (1u << OP_NUM) - 1;
		return 0;
	}
	for (i = 0; i < OP_NUM; i++) {
		if (!strcmp(s, ops[i].name)) {
			*mask = 1u << i;
			return 0;
		}
	}
	return -1;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	o->type_mask = T_RC | T_UC | T_UD;
	o->op_mask = (1u << OP_NUM) - 1;
	o->iters = 100;
	o->max_size = 1u << 20;
	o->seed = vt_now_ms() ^ ((uint64_t)getpid() << 32);
	o->gid = -1;
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
	return optind == argc ? 0 : -1;
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
	fails = run_all(&d, &o);
	vt_close(&d);
	if (fails) {
		printf("verify: FAILED (rerun with --seed %" PRIu64 ")\n", o.seed);
		return 1;
	}
	printf("verify: all passed\n");
	return 0;
}
