// SPDX-License-Identifier: MIT
/*
 * negative - verbs calls and work requests that must fail, and how.
 *
 * Sources: tests/negative.c, tests/vtest_common.c (+ vtest_common.h);
 * links libibverbs.
 *
 * Each case prints "PASS name" or "FAIL name: why"; the exit status is
 * the number of failed cases (capped at 100), 2 on a setup error.
 * The expected errno or completion status of each case is the one Linux
 * rxe (kernel drivers/infiniband/sw/rxe and rdma-core providers/rxe, v44)
 * or the ib_core checks in front of every driver produce; the source is
 * named next to each case.
 *
 *   negative [-d DEV] [-g IDX] [-v] [-l] [CASE...]
 *     -l        list the cases
 *     CASE...   run only these cases
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "vtest_common.h"

#define BUF_LEN	4096

static struct vt_dev dev;
static char why[512];

/* Record why a case failed; evaluates to 1 so that "return fail(...)" works. */
__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return 1;
}

/* ---- fixtures ----------------------------------------------------- */

/* A connected pair, A sending to B, with one buffer and MR each. */
struct pair {
	struct vt_qp a, b;
	void *abuf, *bbuf;
	struct ibv_mr *amr, *bmr;
};

static const int full_access = IBV_ACCESS_LOCAL_WRITE |
	IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
	IBV_ACCESS_REMOTE_ATOMIC;

static void pair_destroy(struct pair *p)
{
	vt_qp_destroy(&p->a);
	vt_qp_destroy(&p->b);
	if (p->amr)
		ibv_dereg_mr(p->amr);
	if (p->bmr)
		ibv_dereg_mr(p->bmr);
	free(p->abuf);
	free(p->bbuf);
	memset(p, 0, sizeof(*p));
}

static int pair_create(struct pair *p, enum ibv_qp_type type, int b_access,
		       const struct vt_conn_opts *co)
{
	struct vt_qp_opts qo = { .type = type, .max_send_sge = 2,
				 .max_recv_sge = 2, .cqe = 64 };

	memset(p, 0, sizeof(*p));
	p->abuf = calloc(1, BUF_LEN);
	p->bbuf = calloc(1, BUF_LEN);
	if (!p->abuf || !p->bbuf)
		return fail("out of memory");
	p->amr = ibv_reg_mr(dev.pd, p->abuf, BUF_LEN, full_access);
	p->bmr = ibv_reg_mr(dev.pd, p->bbuf, BUF_LEN, b_access);
	if (!p->amr || !p->bmr)
		return fail("setup: ibv_reg_mr: %s", strerror(errno));
	if (vt_qp_create(&dev, &p->a, &qo) || vt_qp_create(&dev, &p->b, &qo))
		return fail("setup: cannot create QPs");
	if (vt_connect(&dev, &p->a, &p->b, co))
		return fail("setup: cannot connect QPs");
	return 0;
}

static int post_one_send(struct vt_qp *q, enum ibv_wr_opcode op,
			 uint64_t wr_id, void *addr, uint32_t len,
			 uint32_t lkey, uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge sge = { (uintptr_t)addr, len, lkey };
	struct ibv_send_wr wr, *bad;

	memset(&wr, 0, sizeof(wr));
	wr.wr_id = wr_id;
	wr.opcode = op;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	if (op == IBV_WR_ATOMIC_FETCH_AND_ADD ||
	    op == IBV_WR_ATOMIC_CMP_AND_SWP) {
		wr.wr.atomic.remote_addr = raddr;
		wr.wr.atomic.rkey = rkey;
		wr.wr.atomic.compare_add = 1;
	} else {
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
	}
	return ibv_post_send(q->qp, &wr, &bad);
}

static int post_one_recv(struct vt_qp *q, uint64_t wr_id, void *addr,
			 uint32_t len, uint32_t lkey)
{
	struct ibv_sge sge = { (uintptr_t)addr, len, lkey };
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &sge,
				  .num_sge = 1 };
	struct ibv_recv_wr *bad;

	return ibv_post_recv(q->qp, &wr, &bad);
}

/* Wait for one completion on @cq and compare its status with @want. */
static int expect_wc(struct ibv_cq *cq, const char *who, uint64_t wr_id,
		     enum ibv_wc_status want)
{
	struct ibv_wc wc;
	int n = vt_poll(cq, &wc, 1, VT_WAIT_MS);

	if (n != 1)
		return fail("%s: no completion within %d ms (expected %s)",
			    who, VT_WAIT_MS, ibv_wc_status_str(want));
	if (wc.status != want)
		return fail("%s: completion status %s (%d), expected %s (%d)",
			    who, ibv_wc_status_str(wc.status), wc.status,
			    ibv_wc_status_str(want), want);
	if (wc.wr_id != wr_id)
		return fail("%s: completion wr_id %#" PRIx64 ", expected %#" PRIx64,
			    who, wc.wr_id, wr_id);
	return 0;
}

static int expect_state(struct vt_qp *q, const char *who,
			enum ibv_qp_state want)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int ret = ibv_query_qp(q->qp, &a, IBV_QP_STATE, &ia);

	if (ret)
		return fail("%s: ibv_query_qp: %s", who, strerror(ret));
	if (a.qp_state != want)
		return fail("%s: QP state %s, expected %s", who,
			    vt_state_str(a.qp_state), vt_state_str(want));
	return 0;
}

/* @q's send WR @wr_id failed with @want and took the QP to ERR. */
static int expect_send_error(struct vt_qp *q, const char *who, uint64_t wr_id,
			     enum ibv_wc_status want)
{
	char what[128];

	if (expect_wc(q->scq, who, wr_id, want))
		return 1;
	snprintf(what, sizeof(what), "%s after the error", who);
	return expect_state(q, what, IBV_QPS_ERR);
}

/*
 * Run @body on a fresh connected pair (pair_create's arguments) and
 * destroy the pair whatever happened.  0, or 1 with why set.
 */
static int with_pair(enum ibv_qp_type type, int b_access,
		     const struct vt_conn_opts *co,
		     int (*body)(struct pair *p, const void *arg),
		     const void *arg)
{
	struct pair p;
	int ret = pair_create(&p, type, b_access, co) || body(&p, arg);

	pair_destroy(&p);
	return ret;
}

/* ---- QP state machine ---------------------------------------------
 * Expected EINVAL: ib_modify_qp_is_ok() and its qp_state_table
 * (kernel drivers/infiniband/core/verbs.c), called by rxe_qp_chk_attr()
 * (drivers/infiniband/sw/rxe/rxe_qp.c); IBA 10.3.1 / 11.2.4.
 */

static int bare_qp(struct vt_qp *q, enum ibv_qp_type type)
{
	struct vt_qp_opts qo = { .type = type, .cqe = 16 };

	if (vt_qp_create(&dev, q, &qo))
		return fail("setup: cannot create QP");
	return 0;
}

/* A bare QP of @type moved to INIT with @access (destroyed on failure). */
static int init_qp(struct vt_qp *q, enum ibv_qp_type type, int access)
{
	if (bare_qp(q, type))
		return 1;
	if (vt_qp_to_init(&dev, q, access)) {
		vt_qp_destroy(q);
		return fail("setup: RESET->INIT failed");
	}
	return 0;
}

static int expect_modify_einval(struct vt_qp *q, struct ibv_qp_attr *a,
				int mask, const char *what,
				enum ibv_qp_state stays)
{
	int ret = ibv_modify_qp(q->qp, a, mask);

	if (ret != EINVAL)
		return fail("%s: ibv_modify_qp returned %d (%s), expected EINVAL",
			    what, ret, ret ? strerror(ret) : "success");
	return expect_state(q, what, stays);
}

static void rtr_attr(struct ibv_qp_attr *a, int *mask, uint32_t dest)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = IBV_QPS_RTR;
	vt_fill_ah_attr(&dev, &a->ah_attr);
	a->path_mtu = dev.mtu;
	a->dest_qp_num = dest;
	a->rq_psn = 1;
	a->max_dest_rd_atomic = 1;
	a->min_rnr_timer = 1;
	*mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
		IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
		IBV_QP_MIN_RNR_TIMER;
}

static void rts_attr(struct ibv_qp_attr *a, int *mask)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = IBV_QPS_RTS;
	a->sq_psn = 1;
	a->timeout = 14;
	a->retry_cnt = 7;
	a->rnr_retry = 7;
	a->max_rd_atomic = 1;
	*mask = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
		IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
}

static int case_reset_to_rtr(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a;
	int mask, ret;

	if (bare_qp(&q, IBV_QPT_RC))
		return 1;
	rtr_attr(&a, &mask, q.qp->qp_num);
	ret = expect_modify_einval(&q, &a, mask, "RC RESET->RTR", IBV_QPS_RESET);
	vt_qp_destroy(&q);
	return ret;
}

static int case_init_to_rts(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a;
	int mask, ret;

	if (init_qp(&q, IBV_QPT_RC, full_access))
		return 1;
	rts_attr(&a, &mask);
	ret = expect_modify_einval(&q, &a, mask, "RC INIT->RTS", IBV_QPS_INIT);
	vt_qp_destroy(&q);
	return ret;
}

/* qp_state_table[RESET] allows only RESET and INIT: RESET->ERR is illegal. */
static int case_reset_to_err(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
	int ret;

	if (bare_qp(&q, IBV_QPT_RC))
		return 1;
	ret = expect_modify_einval(&q, &a, IBV_QP_STATE, "RC RESET->ERR",
				   IBV_QPS_RESET);
	vt_qp_destroy(&q);
	return ret;
}

static int case_rtr_missing_dest_qpn(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a;
	int mask, ret;

	if (init_qp(&q, IBV_QPT_RC, full_access))
		return 1;
	rtr_attr(&a, &mask, q.qp->qp_num);
	mask &= ~IBV_QP_DEST_QPN;
	ret = expect_modify_einval(&q, &a, mask,
				   "RC INIT->RTR without DEST_QPN", IBV_QPS_INIT);
	vt_qp_destroy(&q);
	return ret;
}

static int case_rts_missing_retry_cnt(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a;
	int mask, ret = 1;

	if (bare_qp(&q, IBV_QPT_RC))
		return 1;
	rtr_attr(&a, &mask, q.qp->qp_num);
	if (vt_qp_to_init(&dev, &q, full_access) ||
	    ibv_modify_qp(q.qp, &a, mask)) {
		fail("setup: RESET->INIT->RTR failed");
		goto out;
	}
	rts_attr(&a, &mask);
	mask &= ~IBV_QP_RETRY_CNT;
	ret = expect_modify_einval(&q, &a, mask,
				   "RC RTR->RTS without RETRY_CNT", IBV_QPS_RTR);
out:
	vt_qp_destroy(&q);
	return ret;
}

static int case_init_missing_access(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT,
				 .port_num = dev.port };
	int ret;

	if (bare_qp(&q, IBV_QPT_RC))
		return 1;
	ret = expect_modify_einval(&q, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				   IBV_QP_PORT,
				   "RC RESET->INIT without ACCESS_FLAGS",
				   IBV_QPS_RESET);
	vt_qp_destroy(&q);
	return ret;
}

/* SQ_PSN is neither required nor optional in RESET->INIT. */
static int case_init_with_sq_psn(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT,
				 .port_num = dev.port,
				 .qp_access_flags = full_access,
				 .sq_psn = 5 };
	int ret;

	if (bare_qp(&q, IBV_QPT_RC))
		return 1;
	ret = expect_modify_einval(&q, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				   IBV_QP_PORT | IBV_QP_ACCESS_FLAGS |
				   IBV_QP_SQ_PSN,
				   "RC RESET->INIT with SQ_PSN", IBV_QPS_RESET);
	vt_qp_destroy(&q);
	return ret;
}

/* UD RESET->INIT takes PKEY_INDEX, PORT, QKEY; ACCESS_FLAGS is RC/UC only. */
static int case_ud_init_with_access(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT,
				 .port_num = dev.port, .qkey = VT_QKEY,
				 .qp_access_flags = IBV_ACCESS_REMOTE_WRITE };
	int ret;

	if (bare_qp(&q, IBV_QPT_UD))
		return 1;
	ret = expect_modify_einval(&q, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				   IBV_QP_PORT | IBV_QP_QKEY |
				   IBV_QP_ACCESS_FLAGS,
				   "UD RESET->INIT with ACCESS_FLAGS",
				   IBV_QPS_RESET);
	vt_qp_destroy(&q);
	return ret;
}

/* UC INIT->RTR: MAX_DEST_RD_ATOMIC and MIN_RNR_TIMER are RC-only. */
static int case_uc_rtr_with_rd_atomic(void)
{
	struct vt_qp q;
	struct ibv_qp_attr a;
	int mask, ret;

	if (init_qp(&q, IBV_QPT_UC, IBV_ACCESS_REMOTE_WRITE))
		return 1;
	rtr_attr(&a, &mask, q.qp->qp_num);
	ret = expect_modify_einval(&q, &a, mask,
				   "UC INIT->RTR with MAX_DEST_RD_ATOMIC",
				   IBV_QPS_INIT);
	vt_qp_destroy(&q);
	return ret;
}

/* Control: legal transitions still work (RTS->ERR, ERR->RESET, RESET->INIT). */
static int legal_err_reset(struct pair *p, const void *arg)
{
	struct ibv_qp_attr a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_ERR;
	ret = ibv_modify_qp(p->a.qp, &a, IBV_QP_STATE);
	if (ret)
		return fail("RTS->ERR: %s", strerror(ret));
	if (expect_state(&p->a, "after RTS->ERR", IBV_QPS_ERR))
		return 1;
	a.qp_state = IBV_QPS_RESET;
	ret = ibv_modify_qp(p->a.qp, &a, IBV_QP_STATE);
	if (ret)
		return fail("ERR->RESET: %s", strerror(ret));
	if (expect_state(&p->a, "after ERR->RESET", IBV_QPS_RESET))
		return 1;
	if (vt_qp_to_init(&dev, &p->a, full_access))
		return fail("RESET->INIT after a reset failed");
	return expect_state(&p->a, "after RESET->INIT", IBV_QPS_INIT);
}

static int case_legal_err_reset(void)
{
	return with_pair(IBV_QPT_RC, full_access, NULL, legal_err_reset, NULL);
}

/* ---- protection and length errors ---------------------------------- */

/*
 * A local SGE with an invalid lkey: the requester fails to read the
 * payload -> IBV_WC_LOC_PROT_ERR (rxe_req.c finish_packet: copy fails,
 * wqe->status = IB_WC_LOC_PROT_ERR); the QP goes to ERR.
 * Then (IBA 10.8.3.3, rxe_comp.c flush_send_queue / rxe_resp.c
 * flush_recv_queue) every outstanding and later WR completes with
 * IBV_WC_WR_FLUSH_ERR.
 */
static int bad_lkey_then_flush(struct pair *p, const void *arg)
{
	int ret;

	if (post_one_recv(&p->a, 7, p->abuf, 64, p->amr->lkey) ||
	    post_one_recv(&p->b, 8, p->bbuf, 64, p->bmr->lkey))
		return fail("setup: post_recv failed");
	ret = post_one_send(&p->a, IBV_WR_SEND, 1, p->abuf, 64,
			    p->amr->lkey ^ 0x5a5a00, 0, 0);
	if (ret)
		return fail("post_send with a bad lkey returned %s; expected success and a completion error",
			    strerror(ret));
	if (expect_send_error(&p->a, "sender", 1, IBV_WC_LOC_PROT_ERR))
		return 1;
	/* the receive posted before the error is flushed */
	if (expect_wc(p->a.rcq, "receive posted before the error", 7,
		      IBV_WC_WR_FLUSH_ERR))
		return 1;
	/* IBA C10-42 / C10-97.2.1: posting in ERR is allowed and flushes */
	ret = post_one_send(&p->a, IBV_WR_SEND, 2, p->abuf, 16, p->amr->lkey,
			    0, 0);
	if (ret)
		return fail("post_send in ERR returned %s, expected success + flush",
			    strerror(ret));
	if (expect_wc(p->a.scq, "send posted in ERR", 2, IBV_WC_WR_FLUSH_ERR))
		return 1;
	ret = post_one_recv(&p->a, 3, p->abuf, 16, p->amr->lkey);
	if (ret)
		return fail("post_recv in ERR returned %s, expected success + flush",
			    strerror(ret));
	return expect_wc(p->a.rcq, "recv posted in ERR", 3,
			 IBV_WC_WR_FLUSH_ERR);
}

static int case_bad_lkey_then_flush(void)
{
	return with_pair(IBV_QPT_RC, full_access, NULL, bad_lkey_then_flush,
			 NULL);
}

/*
 * RDMA to B's MR that the responder must refuse: rxe_resp.c check_rkey()
 * -> RESPST_ERR_RKEY_VIOLATION -> NAK "remote access error" (AETH 0x62)
 * -> requester IBV_WC_REM_ACCESS_ERR (rxe_comp.c), QP to ERR.
 */
struct rdma_req {
	enum ibv_wr_opcode op;
	uint64_t roff;
	uint32_t len, rkey_xor;
};

static int access_err(struct pair *p, const void *arg)
{
	const struct rdma_req *r = arg;
	uint64_t raddr = (uintptr_t)p->bbuf + r->roff;

	if (post_one_send(&p->a, r->op, 1, p->abuf, r->len, p->amr->lkey,
			  raddr, p->bmr->rkey ^ r->rkey_xor))
		return fail("post_send failed; expected success and a completion error");
	return expect_send_error(&p->a, "requester", 1, IBV_WC_REM_ACCESS_ERR);
}

static int rdma_expect_access_err(int b_access, enum ibv_wr_opcode op,
				  uint64_t roff, uint32_t len, uint32_t rkey_xor)
{
	const struct rdma_req r = { op, roff, len, rkey_xor };

	return with_pair(IBV_QPT_RC, b_access, NULL, access_err, &r);
}

static int case_bad_rkey_write(void)
{
	return rdma_expect_access_err(full_access, IBV_WR_RDMA_WRITE, 0, 64,
				      0x00a5a500);
}

static int case_bad_rkey_read(void)
{
	return rdma_expect_access_err(full_access, IBV_WR_RDMA_READ, 0, 64,
				      0x00a5a500);
}

static int case_write_out_of_bounds(void)
{
	/* 64 bytes starting 32 bytes before the end of the MR */
	return rdma_expect_access_err(full_access, IBV_WR_RDMA_WRITE,
				      BUF_LEN - 32, 64, 0);
}

static int case_read_out_of_bounds(void)
{
	return rdma_expect_access_err(full_access, IBV_WR_RDMA_READ,
				      BUF_LEN - 32, 64, 0);
}

static int case_write_without_remote_write(void)
{
	return rdma_expect_access_err(IBV_ACCESS_LOCAL_WRITE |
				      IBV_ACCESS_REMOTE_READ,
				      IBV_WR_RDMA_WRITE, 0, 64, 0);
}

static int case_read_without_remote_read(void)
{
	return rdma_expect_access_err(IBV_ACCESS_LOCAL_WRITE |
				      IBV_ACCESS_REMOTE_WRITE,
				      IBV_WR_RDMA_READ, 0, 64, 0);
}

static int case_atomic_bad_rkey(void)
{
	return rdma_expect_access_err(full_access, IBV_WR_ATOMIC_FETCH_AND_ADD,
				      0, 8, 0x00a5a500);
}

static int case_atomic_without_remote_atomic(void)
{
	return rdma_expect_access_err(IBV_ACCESS_LOCAL_WRITE |
				      IBV_ACCESS_REMOTE_WRITE |
				      IBV_ACCESS_REMOTE_READ,
				      IBV_WR_ATOMIC_CMP_AND_SWP, 0, 8, 0);
}

static int case_atomic_out_of_bounds(void)
{
	/* the last aligned word is inside; one past the end is not */
	return rdma_expect_access_err(full_access, IBV_WR_ATOMIC_FETCH_AND_ADD,
				      BUF_LEN, 8, 0);
}

/*
 * SEND longer than the receive buffer: rxe_resp.c check_length() ->
 * RESPST_ERR_LENGTH -> receiver IBV_WC_LOC_LEN_ERR and NAK "invalid
 * request" (AETH 0x61) -> sender IBV_WC_REM_INV_REQ_ERR.
 */
static int send_too_long(struct pair *p, const void *arg)
{
	if (post_one_recv(&p->b, 9, p->bbuf, 16, p->bmr->lkey) ||
	    post_one_send(&p->a, IBV_WR_SEND, 1, p->abuf, 64, p->amr->lkey, 0,
			  0))
		return fail("post_recv or post_send failed");
	return expect_wc(p->b.rcq, "receiver", 9, IBV_WC_LOC_LEN_ERR) ||
	       expect_wc(p->a.scq, "sender", 1, IBV_WC_REM_INV_REQ_ERR);
}

static int case_send_too_long(void)
{
	return with_pair(IBV_QPT_RC, full_access, NULL, send_too_long, NULL);
}

/*
 * SEND with no receive posted, rnr_retry 0: the responder answers RNR NAK
 * (rxe_resp.c get_rq: RESPST_ERR_RNR) and the requester gives up at once
 * with IBV_WC_RNR_RETRY_EXC_ERR (rxe_comp.c, COMPST_RNR_RETRY with
 * rnr_retry exhausted).
 */
static int rnr_retry_exceeded(struct pair *p, const void *arg)
{
	if (post_one_send(&p->a, IBV_WR_SEND, 1, p->abuf, 32, p->amr->lkey, 0,
			  0))
		return fail("post_send failed");
	return expect_send_error(&p->a, "sender", 1, IBV_WC_RNR_RETRY_EXC_ERR);
}

static int case_rnr_retry_exceeded(void)
{
	struct vt_conn_opts co = { .rnr_retry = 0, .set_rnr_retry = true,
				   .min_rnr_timer = 1 };

	return with_pair(IBV_QPT_RC, full_access, &co, rnr_retry_exceeded,
			 NULL);
}

/*
 * The peer QP is gone: requests go unanswered, the requester retransmits
 * retry_cnt times after each ACK timeout (4.096 us * 2^timeout) and then
 * completes with IBV_WC_RETRY_EXC_ERR (rxe_comp.c: COMPST_ERROR_RETRY
 * when qp->comp.retry_cnt is used up), QP to ERR.
 */
static int retry_exceeded_dead_peer(struct pair *p, const void *arg)
{
	vt_qp_destroy(&p->b);
	if (post_one_send(&p->a, IBV_WR_RDMA_WRITE, 1, p->abuf, 32,
			  p->amr->lkey, (uintptr_t)p->bbuf, p->bmr->rkey))
		return fail("post_send failed");
	return expect_send_error(&p->a, "requester", 1, IBV_WC_RETRY_EXC_ERR);
}

static int case_retry_exceeded_dead_peer(void)
{
	struct vt_conn_opts co = { .timeout = 10, .retry_cnt = 1 };

	return with_pair(IBV_QPT_RC, full_access, &co,
			 retry_exceeded_dead_peer, NULL);
}

/*
 * UC has no NAKs: an RDMA WRITE with a bad R_Key is silently dropped by
 * the responder (rxe_resp.c RESPST_ERR_RKEY_VIOLATION on a non-SRQ UC QP:
 * drop_msg, "class E"), the requester completes successfully, and both
 * QPs keep working: a following WRITE_WITH_IMM lands and completes.
 */
static int uc_bad_rkey_dropped(struct pair *p, const void *arg)
{
	struct ibv_sge sge;
	struct ibv_send_wr wr, *bad;
	struct ibv_wc wc;
	uint8_t *b;
	int i;

	memset(p->abuf, 0x11, BUF_LEN);
	if (post_one_send(&p->a, IBV_WR_RDMA_WRITE, 1, p->abuf, 64,
			  p->amr->lkey, (uintptr_t)p->bbuf,
			  p->bmr->rkey ^ 0x00a5a500))
		return fail("post_send failed");
	if (expect_wc(p->a.scq, "requester (bad rkey)", 1, IBV_WC_SUCCESS))
		return 1;
	if (post_one_recv(&p->b, 4, p->bbuf + 1024, 16, p->bmr->lkey))
		return fail("post_recv failed");
	sge = (struct ibv_sge){ (uintptr_t)p->abuf, 64, p->amr->lkey };
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = 2;
	wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.imm_data = htonl(0x1234);
	wr.wr.rdma.remote_addr = (uintptr_t)p->bbuf + 128;
	wr.wr.rdma.rkey = p->bmr->rkey;
	if (ibv_post_send(p->a.qp, &wr, &bad))
		return fail("post_send (WRITE_WITH_IMM) failed");
	if (expect_wc(p->a.scq, "requester (good write)", 2, IBV_WC_SUCCESS) ||
	    expect_wc(p->b.rcq, "responder (good write)", 4, IBV_WC_SUCCESS))
		return 1;
	b = p->bbuf;
	for (i = 0; i < 64; i++) {
		if (b[i] != 0)
			return fail("the dropped write changed byte %d of the target (0x%02x)",
				    i, b[i]);
		if (b[128 + i] != 0x11)
			return fail("the good write did not land: byte %d is 0x%02x",
				    i, b[128 + i]);
	}
	if (!vt_cq_quiet(p->b.rcq, 50, &wc))
		return fail("unexpected responder completion (status %s)",
			    ibv_wc_status_str(wc.status));
	return 0;
}

static int case_uc_bad_rkey_dropped(void)
{
	return with_pair(IBV_QPT_UC, full_access, NULL, uc_bad_rkey_dropped,
			 NULL);
}

/*
 * UD with the wrong Q_Key: the receiver silently drops the datagram
 * (IBA 10.2.5; rxe_recv.c check_keys) and the posted receive stays for
 * the next datagram with the right key; the sender completes normally.
 */
static int ud_wrong_qkey_dropped(struct pair *p, const void *arg)
{
	struct ibv_sge sge;
	struct ibv_send_wr wr, *bad;
	struct ibv_wc wc;
	int i;

	if (post_one_recv(&p->b, 5, p->bbuf, 40 + 64, p->bmr->lkey))
		return fail("post_recv failed");
	for (i = 0; i < 2; i++) {
		sge = (struct ibv_sge){ (uintptr_t)p->abuf, 16, p->amr->lkey };
		memset(&wr, 0, sizeof(wr));
		wr.wr_id = (uint64_t)i + 1;
		wr.opcode = IBV_WR_SEND;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.wr.ud.ah = p->a.ah;
		wr.wr.ud.remote_qpn = p->b.qp->qp_num;
		wr.wr.ud.remote_qkey = i == 0 ? VT_QKEY ^ 0x10101 : VT_QKEY;
		if (ibv_post_send(p->a.qp, &wr, &bad))
			return fail("post_send failed");
		if (expect_wc(p->a.scq, i == 0 ? "sender (wrong qkey)" :
			      "sender (right qkey)", wr.wr_id, IBV_WC_SUCCESS))
			return 1;
		if (i == 0 && !vt_cq_quiet(p->b.rcq, 200, &wc))
			return fail("datagram with a wrong Q_Key was delivered (status %s)",
				    ibv_wc_status_str(wc.status));
	}
	return expect_wc(p->b.rcq, "receiver (right qkey)", 5, IBV_WC_SUCCESS);
}

static int case_ud_wrong_qkey_dropped(void)
{
	return with_pair(IBV_QPT_UD, full_access, NULL, ud_wrong_qkey_dropped,
			 NULL);
}

/* ---- immediate (return-value) errors ------------------------------- */

/*
 * REMOTE_WRITE or REMOTE_ATOMIC need LOCAL_WRITE: ib_check_mr_access()
 * (kernel include/rdma/ib_verbs.h, run by ib_uverbs_reg_mr for every
 * driver) -> EINVAL from ibv_reg_mr.
 */
static int case_reg_mr_remote_write_no_local(void)
{
	static const int bad[] = { IBV_ACCESS_REMOTE_WRITE,
				   IBV_ACCESS_REMOTE_ATOMIC };
	char *buf = malloc(BUF_LEN);
	struct ibv_mr *mr;
	unsigned int i;

	if (!buf)
		return fail("out of memory");
	for (i = 0; i < 2; i++) {
		errno = 0;
		mr = ibv_reg_mr(dev.pd, buf, BUF_LEN, bad[i]);
		if (mr) {
			ibv_dereg_mr(mr);
			free(buf);
			return fail("ibv_reg_mr(access %#x) succeeded", bad[i]);
		}
		if (errno != EINVAL) {
			free(buf);
			return fail("ibv_reg_mr(access %#x): errno %d (%s), expected EINVAL",
				    bad[i], errno, strerror(errno));
		}
	}
	free(buf);
	return 0;
}

/* A post refused for num_sge > max: EINVAL (ENOMEM tolerated), bad_wr at
 * the rejected WR. */
static int expect_sge_refused(const char *what, int ret, bool bad_ok,
			      int num_sge, uint32_t max)
{
	if (ret != EINVAL && ret != ENOMEM)
		return fail("%s with num_sge %d > max %u returned %d (%s), expected EINVAL",
			    what, num_sge, max, ret,
			    ret ? strerror(ret) : "success");
	if (!bad_ok)
		return fail("%s: bad_wr does not point at the rejected WR", what);
	return 0;
}

/*
 * num_sge above the QP's max: rdma-core providers/rxe/rxe.c
 * validate_send_wr() / rxe_post_one_recv() return EINVAL (mlx5 returns
 * ENOMEM; both are accepted), with *bad_wr at the offending WR.
 */
/* Post one send and one receive WR with one SGE too many each. */
static int post_too_many_sge(struct pair *p, struct ibv_sge *sge)
{
	struct ibv_send_wr wr, *bad = NULL;
	struct ibv_recv_wr rwr, *rbad = NULL;
	struct ibv_wc wc;
	int ret;

	memset(&wr, 0, sizeof(wr));
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.sg_list = sge;
	wr.num_sge = (int)p->a.cap.max_send_sge + 1;
	ret = ibv_post_send(p->a.qp, &wr, &bad);
	if (expect_sge_refused("post_send", ret, bad == &wr, wr.num_sge,
			       p->a.cap.max_send_sge))
		return 1;
	memset(&rwr, 0, sizeof(rwr));
	rwr.sg_list = sge;
	rwr.num_sge = (int)p->a.cap.max_recv_sge + 1;
	ret = ibv_post_recv(p->a.qp, &rwr, &rbad);
	if (expect_sge_refused("post_recv", ret, rbad == &rwr, rwr.num_sge,
			       p->a.cap.max_recv_sge))
		return 1;
	if (!vt_cq_quiet(p->a.scq, 100, &wc) || !vt_cq_quiet(p->b.rcq, 1, &wc))
		return fail("a rejected WR produced a completion (status %s)",
			    ibv_wc_status_str(wc.status));
	return 0;
}

static int too_many_sge(struct pair *p, const void *arg)
{
	uint32_t n, i;
	struct ibv_sge *sge;
	int ret;

	n = (p->a.cap.max_send_sge > p->a.cap.max_recv_sge ?
	     p->a.cap.max_send_sge : p->a.cap.max_recv_sge) + 1;
	sge = calloc(n, sizeof(*sge));
	if (!sge)
		return fail("out of memory");
	for (i = 0; i < n; i++) {
		sge[i].addr = (uintptr_t)p->abuf + i;
		sge[i].length = 1;
		sge[i].lkey = p->amr->lkey;
	}
	ret = post_too_many_sge(p, sge);
	free(sge);
	return ret;
}

static int case_too_many_sge(void)
{
	return with_pair(IBV_QPT_RC, full_access, NULL, too_many_sge, NULL);
}

/*
 * Posting to a RESET QP: receive -> EINVAL (rdma-core providers/rxe/rxe.c
 * rxe_post_recv, "see C10-97.2.1"); send -> EINVAL (kernel rxe_verbs.c
 * rxe_post_send: "qp not ready to send" while state < RTS).
 */
static int case_post_on_reset_qp(void)
{
	struct vt_qp q;
	static char buf[64];
	struct ibv_mr *mr = NULL;
	int ret, rc = 1;

	if (bare_qp(&q, IBV_QPT_RC))
		return 1;
	mr = ibv_reg_mr(dev.pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	if (!mr) {
		fail("setup: ibv_reg_mr: %s", strerror(errno));
		goto out;
	}
	ret = post_one_recv(&q, 1, buf, sizeof(buf), mr->lkey);
	if (ret != EINVAL) {
		fail("post_recv on a RESET QP returned %d (%s), expected EINVAL",
		     ret, ret ? strerror(ret) : "success");
		goto out;
	}
	ret = post_one_send(&q, IBV_WR_SEND, 2, buf, sizeof(buf), mr->lkey, 0, 0);
	if (ret != EINVAL) {
		fail("post_send on a RESET QP returned %d (%s), expected EINVAL",
		     ret, ret ? strerror(ret) : "success");
		goto out;
	}
	rc = 0;
out:
	vt_qp_destroy(&q);
	if (mr)
		ibv_dereg_mr(mr);
	return rc;
}

/* ---- resources ----------------------------------------------------- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/*
 * ibv_create_comp_channel: ipathd has no event mode yet (issue 2: "must
 * fail cleanly with a clear errno — never hand out a garbage fd"); a device
 * that has one must hand out a fresh descriptor.  Either way no descriptor
 * may leak and stdin/stdout/stderr must survive create + destroy.
 */
static int case_comp_channel(void)
{
	bool std_open[3];
	struct ibv_comp_channel *ch;
	int i, before, after, fd;

	for (i = 0; i < 3; i++)
		std_open[i] = fd_open(i);
	before = count_fds();
	errno = 0;
	ch = ibv_create_comp_channel(dev.ctx);
	if (!ch) {
		if (!errno)
			return fail("ibv_create_comp_channel: NULL with errno 0");
		if (vt_verbose)
			fprintf(stderr, "comp channel refused: %s\n",
				strerror(errno));
	} else {
		fd = ch->fd;
		if (fd <= 2 || !fd_open(fd) || fd == dev.ctx->cmd_fd ||
		    fd == dev.ctx->async_fd)
			return fail("ibv_create_comp_channel returned fd %d, which is not a fresh descriptor",
				    fd);
		if (ibv_destroy_comp_channel(ch))
			return fail("ibv_destroy_comp_channel failed");
	}
	after = count_fds();
	if (before != after)
		return fail("descriptor count %d before, %d after (%s)", before,
			    after, ch ? "create+destroy" : "failed create");
	for (i = 0; i < 3; i++)
		if (std_open[i] && !fd_open(i))
			return fail("descriptor %d was closed", i);
	return 0;
}

/* ib_dealloc_pd with objects on it: uverbs refuses with EBUSY. */
static int case_dealloc_pd_busy(void)
{
	struct ibv_pd *pd = ibv_alloc_pd(dev.ctx);
	char *buf = malloc(BUF_LEN);
	struct ibv_mr *mr = NULL;
	int ret, rc = 1;

	if (!pd || !buf) {
		fail("setup: %s", strerror(errno));
		goto out;
	}
	mr = ibv_reg_mr(pd, buf, BUF_LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!mr) {
		fail("setup: ibv_reg_mr: %s", strerror(errno));
		goto out;
	}
	ret = ibv_dealloc_pd(pd);
	if (ret != EBUSY) {
		fail("ibv_dealloc_pd with an MR returned %d (%s), expected EBUSY",
		     ret, ret ? strerror(ret) : "success");
		if (!ret)
			pd = NULL;
		goto out;
	}
	ret = ibv_dereg_mr(mr);
	mr = NULL;
	if (ret) {
		fail("ibv_dereg_mr: %s", strerror(ret));
		goto out;
	}
	ret = ibv_dealloc_pd(pd);
	pd = NULL;
	if (ret) {
		fail("ibv_dealloc_pd after dereg: %s", strerror(ret));
		goto out;
	}
	rc = 0;
out:
	if (mr)
		ibv_dereg_mr(mr);
	if (pd)
		ibv_dealloc_pd(pd);
	free(buf);
	return rc;
}

/* rxe_cq.c rxe_cq_chk_attr(): cqe > max_cqe -> EINVAL. */
static int case_create_cq_too_big(void)
{
	struct ibv_cq *cq;

	if (dev.attr.max_cqe <= 0 || dev.attr.max_cqe == 0x7fffffff)
		return fail("device max_cqe %d leaves no room for the test",
			    dev.attr.max_cqe);
	errno = 0;
	cq = ibv_create_cq(dev.ctx, dev.attr.max_cqe + 1, NULL, NULL, 0);
	if (cq) {
		ibv_destroy_cq(cq);
		return fail("ibv_create_cq(max_cqe + 1 = %d) succeeded",
			    dev.attr.max_cqe + 1);
	}
	if (errno != EINVAL)
		return fail("ibv_create_cq(max_cqe + 1): errno %d (%s), expected EINVAL",
			    errno, strerror(errno));
	return 0;
}

/* rxe_qp.c rxe_qp_chk_cap(): max_send_wr > max_qp_wr -> EINVAL. */
static int case_create_qp_too_big(void)
{
	struct ibv_cq *cq = ibv_create_cq(dev.ctx, 16, NULL, NULL, 0);
	struct ibv_qp_init_attr ia;
	struct ibv_qp *qp;
	int rc = 0;

	if (!cq)
		return fail("setup: ibv_create_cq: %s", strerror(errno));
	memset(&ia, 0, sizeof(ia));
	ia.send_cq = cq;
	ia.recv_cq = cq;
	ia.qp_type = IBV_QPT_RC;
	ia.cap.max_send_wr = (uint32_t)dev.attr.max_qp_wr + 1;
	ia.cap.max_recv_wr = 1;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	errno = 0;
	qp = ibv_create_qp(dev.pd, &ia);
	if (qp) {
		ibv_destroy_qp(qp);
		rc = fail("ibv_create_qp(max_send_wr = max_qp_wr + 1 = %u) succeeded",
			  ia.cap.max_send_wr);
	} else if (errno != EINVAL) {
		rc = fail("ibv_create_qp(max_send_wr > max_qp_wr): errno %d (%s), expected EINVAL",
			  errno, strerror(errno));
	}
	ibv_destroy_cq(cq);
	return rc;
}

/*
 * Not an error case, but a trap for a provider that remaps registered
 * pages: a buffer on the stack (the page this very frame lives on) may be
 * registered, used and deregistered like any other memory.  Runs last,
 * because a broken provider kills the process here.
 */
static int case_reg_mr_stack_buffer(void)
{
	volatile char buf[256];
	struct ibv_mr *mr;
	unsigned int i;
	int ret;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)i;
	mr = ibv_reg_mr(dev.pd, (void *)buf, sizeof(buf),
			IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!mr)
		return fail("ibv_reg_mr(stack buffer): %s", strerror(errno));
	ret = ibv_dereg_mr(mr);
	if (ret)
		return fail("ibv_dereg_mr(stack buffer): %s", strerror(ret));
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i] != (char)i)
			return fail("stack buffer byte %u changed by reg/dereg", i);
	return 0;
}

/* ---- driver -------------------------------------------------------- */

static const struct tcase {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "qp_reset_to_rtr", case_reset_to_rtr },
	{ "qp_init_to_rts", case_init_to_rts },
	{ "qp_reset_to_err", case_reset_to_err },
	{ "qp_rtr_missing_dest_qpn", case_rtr_missing_dest_qpn },
	{ "qp_rts_missing_retry_cnt", case_rts_missing_retry_cnt },
	{ "qp_init_missing_access_flags", case_init_missing_access },
	{ "qp_init_with_sq_psn", case_init_with_sq_psn },
	{ "qp_ud_init_with_access_flags", case_ud_init_with_access },
	{ "qp_uc_rtr_with_max_dest_rd_atomic", case_uc_rtr_with_rd_atomic },
	{ "qp_legal_err_reset_init", case_legal_err_reset },
	{ "bad_lkey_then_flush", case_bad_lkey_then_flush },
	{ "bad_rkey_write", case_bad_rkey_write },
	{ "bad_rkey_read", case_bad_rkey_read },
	{ "write_out_of_bounds", case_write_out_of_bounds },
	{ "read_out_of_bounds", case_read_out_of_bounds },
	{ "write_without_remote_write", case_write_without_remote_write },
	{ "read_without_remote_read", case_read_without_remote_read },
	{ "atomic_bad_rkey", case_atomic_bad_rkey },
	{ "atomic_without_remote_atomic", case_atomic_without_remote_atomic },
	{ "atomic_out_of_bounds", case_atomic_out_of_bounds },
	{ "send_too_long", case_send_too_long },
	{ "rnr_retry_exceeded", case_rnr_retry_exceeded },
	{ "retry_exceeded_dead_peer", case_retry_exceeded_dead_peer },
	{ "ud_wrong_qkey_dropped", case_ud_wrong_qkey_dropped },
	{ "uc_bad_rkey_dropped", case_uc_bad_rkey_dropped },
	{ "reg_mr_remote_without_local_write", case_reg_mr_remote_write_no_local },
	{ "post_too_many_sge", case_too_many_sge },
	{ "post_on_reset_qp", case_post_on_reset_qp },
	{ "comp_channel_clean", case_comp_channel },
	{ "dealloc_pd_busy", case_dealloc_pd_busy },
	{ "create_cq_too_big", case_create_cq_too_big },
	{ "create_qp_too_big", case_create_qp_too_big },
	{ "reg_mr_stack_buffer", case_reg_mr_stack_buffer },	/* keep last */
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static bool selected(const char *name, int argc, char **argv)
{
	int i;

	if (optind >= argc)
		return true;
	for (i = optind; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const char *devname = NULL;
	int gid = -1, c, failed = 0, ran = 0;
	unsigned int i;

	while ((c = getopt(argc, argv, "d:g:vlh")) != -1) {
		switch (c) {
		case 'd':
			devname = optarg;
			break;
		case 'g':
			gid = atoi(optarg);
			break;
		case 'v':
			vt_verbose++;
			break;
		case 'l':
			for (i = 0; i < NCASES; i++)
				printf("%s\n", cases[i].name);
			return 0;
		default:
			fprintf(stderr, "usage: %s [-d DEV] [-g IDX] [-v] [-l] [CASE...]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (vt_open(&dev, devname, gid))
		return 2;
	for (i = 0; i < NCASES; i++) {
		if (!selected(cases[i].name, argc, argv))
			continue;
		why[0] = '\0';
		ran++;
		if (vt_verbose)
			printf("RUN  %s\n", cases[i].name);
		if (cases[i].fn()) {
			failed++;
			printf("FAIL %s: %s\n", cases[i].name, why);
		} else {
			printf("PASS %s\n", cases[i].name);
		}
	}
	vt_close(&dev);
	printf("negative: %d of %d cases failed\n", failed, ran);
	return failed > 100 ? 100 : failed;
}
