// SPDX-License-Identifier: MIT
/*
 * xrc_share - XRC across two device contexts (two clients of the daemon,
 * as two processes would be): both open the XRC domain through the same
 * file and so share it.  Context A owns the TGT QP, context B the XRC SRQ,
 * its CQ and the INI QP; a SEND from B's INI QP lands, through A's TGT QP,
 * in B's SRQ (completion on B's CQ naming A's QP).  Then ibv_open_qp: B
 * opens A's TGT QP by number and queries it; an error of the QP reaches
 * both as an async event naming each one's own ibv_qp; A's destroy
 * succeeds and B's handle keeps the QP working (modify, receive) until B
 * closes it, which ends the QP.  Domain opening rules: O_EXCL on an
 * existing domain fails (EEXIST).
 *
 *   xrc_share [-d DEV] [-g GID_INDEX]       exit 0 = every check passed
 *
 * Only the public libibverbs API is used (means the same on any device
 * with XRC).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtest_common.h"

#define SIZE  4096
#define PSN_A 0x123
#define PSN_B 0x456

static int failures;

#define CHECK(cond)                                                     \
	do {                                                            \
		if (!(cond)) {                                          \
			fprintf(stderr,                                 \
				"%s:%d: check failed: %s (errno %d)\n", \
				__FILE__, __LINE__, #cond, errno);      \
			failures++;                                     \
		}                                                       \
	} while (0)

struct side {
	struct vt_dev d;
	struct ibv_xrcd *xrcd;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	uint8_t *buf;
};

static struct ibv_xrcd *open_xrcd(struct side *s, int fd, int oflags)
{
	struct ibv_xrcd_init_attr a = {
		.comp_mask = IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS,
		.fd = fd,
		.oflags = oflags,
	};

	return ibv_open_xrcd(s->d.ctx, &a);
}

static int side_open(struct side *s, const char *dev, int gid, int fd,
		     int oflags)
{
	if (vt_open(&s->d, dev, gid))
		return -1;
	s->xrcd = open_xrcd(s, fd, oflags);
	s->cq = ibv_create_cq(s->d.ctx, 16, NULL, NULL, 0);
	s->buf = calloc(1, SIZE);
	s->mr = s->buf ? ibv_reg_mr(s->d.pd, s->buf, SIZE,
				    IBV_ACCESS_LOCAL_WRITE)
		       : NULL;
	return s->xrcd && s->cq && s->mr ? 0 : -1;
}

static void side_close(struct side *s)
{
	if (s->mr)
		CHECK(ibv_dereg_mr(s->mr) == 0);
	if (s->xrcd)
		CHECK(ibv_close_xrcd(s->xrcd) == 0);
	if (s->cq)
		CHECK(ibv_destroy_cq(s->cq) == 0);
	free(s->buf);
	vt_close(&s->d);
}

/* RESET -> RTS with the XRC masks (those ibv_xsrq_pingpong uses). */
static int xrc_connect(struct vt_dev *d, struct ibv_qp *qp, uint32_t dqpn,
		       bool tgt)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_INIT,
				.port_num = d->port,
				.qp_access_flags = 0};
	int rtr = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
		  IBV_QP_RQ_PSN;
	int rts = IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_SQ_PSN;

	if (ibv_modify_qp(qp, &a,
			  IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				  IBV_QP_ACCESS_FLAGS))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = d->mtu;
	a.dest_qp_num = dqpn;
	a.rq_psn = tgt ? PSN_B : PSN_A;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 1;
	vt_fill_ah_attr(d, &a.ah_attr);
	if (tgt)
		rtr |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	if (ibv_modify_qp(qp, &a, rtr))
		return -1;
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	a.sq_psn = tgt ? PSN_A : PSN_B;
	if (!tgt)
		rts |= IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
		       IBV_QP_MAX_QP_RD_ATOMIC;
	return ibv_modify_qp(qp, &a, rts);
}

static struct ibv_srq *xrc_srq(struct side *s)
{
	struct ibv_srq_init_attr_ex a = {
		.attr = {.max_wr = 8, .max_sge = 1},
		.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_XRCD |
			     IBV_SRQ_INIT_ATTR_CQ | IBV_SRQ_INIT_ATTR_PD,
		.srq_type = IBV_SRQT_XRC,
		.xrcd = s->xrcd,
		.cq = s->cq,
		.pd = s->d.pd,
	};

	return ibv_create_srq_ex(s->d.ctx, &a);
}

static struct ibv_qp *tgt_qp(struct side *s)
{
	struct ibv_qp_init_attr_ex a = {
		.qp_type = IBV_QPT_XRC_RECV,
		.comp_mask = IBV_QP_INIT_ATTR_XRCD,
		.xrcd = s->xrcd,
	};

	return ibv_create_qp_ex(s->d.ctx, &a);
}

static struct ibv_qp *ini_qp(struct side *s)
{
	struct ibv_qp_init_attr_ex a = {
		.qp_type = IBV_QPT_XRC_SEND,
		.send_cq = s->cq,
		.cap = {.max_send_wr = 4, .max_send_sge = 1},
		.comp_mask = IBV_QP_INIT_ATTR_PD,
		.pd = s->d.pd,
	};

	return ibv_create_qp_ex(s->d.ctx, &a);
}

/* B's INI -> A's TGT -> B's SRQ: completion on B's CQ, data intact. */
static void test_cross_client(struct side *A, struct side *B,
			      struct ibv_qp *tgt, struct ibv_qp *ini,
			      struct ibv_srq *srq)
{
	struct ibv_sge rs = {(uintptr_t)B->buf + 2048, 1024, B->mr->lkey};
	struct ibv_sge ss = {(uintptr_t)B->buf, 700, B->mr->lkey};
	struct ibv_recv_wr rwr = {.wr_id = 1, .sg_list = &rs, .num_sge = 1};
	struct ibv_send_wr swr = {.wr_id = 2,
				  .sg_list = &ss,
				  .num_sge = 1,
				  .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED};
	struct ibv_recv_wr *bad_r;
	struct ibv_send_wr *bad_s;
	struct ibv_wc wc[2];
	uint32_t srqn = 0;

	CHECK(ibv_get_srq_num(srq, &srqn) == 0 && srqn);
	swr.qp_type.xrc.remote_srqn = srqn;
	vt_rand_fill(B->buf, 700);
	CHECK(ibv_post_srq_recv(srq, &rwr, &bad_r) == 0);
	CHECK(ibv_post_send(ini, &swr, &bad_s) == 0);
	CHECK(vt_poll(B->cq, wc, 2, VT_WAIT_MS) == 2);
	for (int i = 0; i < 2; i++) {
		CHECK(wc[i].status == IBV_WC_SUCCESS);
		if (wc[i].wr_id != 1)
			continue;
		CHECK(wc[i].opcode == IBV_WC_RECV && wc[i].byte_len == 700);
		CHECK(wc[i].qp_num == tgt->qp_num);
	}
	CHECK(!memcmp(B->buf, B->buf + 2048, 700));
	/* Nothing went to the TGT QP owner's CQ. */
	CHECK(vt_cq_quiet(A->cq, 50, NULL));
}

/* The next async event of d naming element and of type ev (bounded). */
static bool async_event_for(struct vt_dev *d, void *element,
			    enum ibv_event_type ev)
{
	struct pollfd p = {.fd = d->ctx->async_fd, .events = POLLIN};
	struct ibv_async_event e;
	bool found = false;

	for (int i = 0; i < 8 && !found; i++) {
		if (poll(&p, 1, VT_WAIT_MS) != 1 ||
		    ibv_get_async_event(d->ctx, &e))
			return false;
		found = e.element.qp == element && e.event_type == ev;
		ibv_ack_async_event(&e);
	}
	return found;
}

/* A request naming no XRC SRQ of the domain: the INI side completes with
 * an invalid-request error and the TGT QP goes to the error state. */
static void fail_tgt(struct side *B, struct ibv_qp *ini)
{
	struct ibv_sge ss = {(uintptr_t)B->buf, 8, B->mr->lkey};
	struct ibv_send_wr swr = {.wr_id = 3,
				  .sg_list = &ss,
				  .num_sge = 1,
				  .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED};
	struct ibv_send_wr *bad;
	struct ibv_wc wc;

	swr.qp_type.xrc.remote_srqn = 0xfffff;
	CHECK(ibv_post_send(ini, &swr, &bad) == 0);
	CHECK(vt_poll(B->cq, &wc, 1, VT_WAIT_MS) == 1 &&
	      wc.status == IBV_WC_REM_INV_REQ_ERR);
}

/* Both back to RTS, the TGT QP through qp (the creator's or an opened
 * one: modify works on either). */
static void reconnect(struct side *B, struct ibv_qp *qp, struct ibv_qp *ini)
{
	struct ibv_qp_attr r = {.qp_state = IBV_QPS_RESET};

	CHECK(ibv_modify_qp(qp, &r, IBV_QP_STATE) == 0);
	CHECK(ibv_modify_qp(ini, &r, IBV_QP_STATE) == 0);
	CHECK(xrc_connect(&B->d, qp, ini->qp_num, true) == 0);
	CHECK(xrc_connect(&B->d, ini, qp->qp_num, false) == 0);
}

/* ibv_open_qp: B uses A's TGT QP.  As in the kernel, both get its async
 * events (each naming its own ibv_qp), A's destroy succeeds while B holds
 * it, and the QP lives on until B lets go.  *tgt is NULL afterwards. */
static void test_open_qp(struct side *A, struct side *B, struct ibv_qp **tgt,
			 struct ibv_qp *ini, struct ibv_srq *srq)
{
	struct ibv_qp_open_attr oa = {
		.comp_mask = IBV_QP_OPEN_ATTR_NUM | IBV_QP_OPEN_ATTR_XRCD |
			     IBV_QP_OPEN_ATTR_TYPE,
		.qp_num = (*tgt)->qp_num,
		.xrcd = B->xrcd,
		.qp_type = IBV_QPT_XRC_RECV,
	};
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr;
	struct ibv_qp *qp = ibv_open_qp(B->d.ctx, &oa);

	CHECK(qp && qp->qp_num == (*tgt)->qp_num);
	if (!qp)
		return;
	CHECK(ibv_query_qp(qp, &attr, IBV_QP_STATE, &init) == 0 &&
	      attr.qp_state == IBV_QPS_RTS);
	fail_tgt(B, ini);
	CHECK(async_event_for(&A->d, *tgt, IBV_EVENT_QP_REQ_ERR));
	CHECK(async_event_for(&B->d, qp, IBV_EVENT_QP_REQ_ERR));
	CHECK(ibv_destroy_qp(*tgt) == 0);
	*tgt = NULL;
	/* Not in the domain: a private XRCD cannot open it. */
	{
		struct ibv_xrcd *priv = open_xrcd(B, -1, 0);

		oa.xrcd = priv;
		errno = 0;
		CHECK(priv && !ibv_open_qp(B->d.ctx, &oa) && errno == EINVAL);
		if (priv)
			CHECK(ibv_close_xrcd(priv) == 0);
		oa.xrcd = B->xrcd;
	}
	/* The creator is gone; B's handle still modifies and receives. */
	reconnect(B, qp, ini);
	test_cross_client(A, B, qp, ini, srq);
	fail_tgt(B, ini);
	CHECK(async_event_for(&B->d, qp, IBV_EVENT_QP_REQ_ERR));
	CHECK(ibv_destroy_qp(qp) == 0);
	/* B's was the last use: the QP is gone. */
	errno = 0;
	CHECK(!ibv_open_qp(B->d.ctx, &oa) && errno == EINVAL);
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/ipd-xrc-share-XXXXXX";
	struct side A = {0}, B = {0};
	struct ibv_qp *tgt = NULL, *ini = NULL;
	struct ibv_srq *srq = NULL;
	const char *dev = NULL;
	int gid = -1, fd, c;

	while ((c = getopt(argc, argv, "d:g:")) != -1) {
		if (c == 'd')
			dev = optarg;
		else if (c == 'g')
			gid = atoi(optarg);
		else
			return 2;
	}
	fd = mkstemp(path);
	if (fd < 0)
		return 2;
	unlink(path);
	if (side_open(&A, dev, gid, fd, O_CREAT) ||
	    side_open(&B, dev, gid, fd, 0)) {
		fprintf(stderr,
			"xrc_share: cannot open both sides (errno %d)\n",
			errno);
		return 1;
	}
	errno = 0;
	CHECK(!open_xrcd(&B, fd, O_CREAT | O_EXCL) && errno == EEXIST);

	tgt = tgt_qp(&A);
	srq = xrc_srq(&B);
	ini = ini_qp(&B);
	CHECK(tgt && srq && ini);
	if (tgt && srq && ini) {
		CHECK(xrc_connect(&A.d, tgt, ini->qp_num, true) == 0);
		CHECK(xrc_connect(&B.d, ini, tgt->qp_num, false) == 0);
		test_cross_client(&A, &B, tgt, ini, srq);
		test_open_qp(&A, &B, &tgt, ini, srq);
	}
	if (ini)
		CHECK(ibv_destroy_qp(ini) == 0);
	if (tgt)
		CHECK(ibv_destroy_qp(tgt) == 0);
	if (srq)
		CHECK(ibv_destroy_srq(srq) == 0);
	side_close(&B);
	side_close(&A);
	close(fd);
	if (failures) {
		fprintf(stderr, "xrc_share: %d check(s) failed\n", failures);
		return 1;
	}
	printf("xrc_share: ok\n");
	return 0;
}
