// SPDX-License-Identifier: MIT
/*
 * Queue pairs: create, modify (the transition rules are in qp_state.c),
 * query, destroy.  The transport itself is the engine's (engine.h); this
 * file owns the QP's attributes, rings and references.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "engine.h"
#include "objects.h"
#include "qp_state.h"

#define IPD_PORT_NUM 1
#define IPD_PSN_MASK 0xffffffu
#define IPD_QPN_MASK 0xffffffu

struct ipd_qp *ipd_qp_lookup(struct ipd_dev *dev, uint32_t qpn)
{
	return ipd_table_get(&dev->qps, qpn);
}

struct ipd_qp *ipd_qp_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_qp *qp = ipd_table_get(&c->dev->qps, handle);

	return qp && qp->client == c ? qp : NULL;
}

/* For modify and query: the client's QP, or a TGT QP of a domain the
 * client has open (ibv_open_qp gives such a QP to other processes). */
static struct ipd_qp *qp_get_shared(struct ipd_client *c, uint32_t qpn)
{
	struct ipd_qp *qp = ipd_table_get(&c->dev->qps, qpn);

	if (!qp)
		return NULL;
	if (qp->client == c)
		return qp;
	if (qp->type == IBV_QPT_XRC_RECV &&
	    ipd_xrcd_client_has(c, qp->xrc_dom))
		return qp;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Create                                                              */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint32_t qp_sge_limit(const struct ipd_config *cfg)
{
	return min_u32(cfg->max_sge, IPD_MAX_SGE);
}

struct qp_create_refs {
	struct ipd_pd *pd;
	struct ipd_cq *scq, *rcq;
	struct ipd_srq *srq;
	struct ipd_xrcd *xrcd;
};

/* Which queues a QP type has: an XRC_RECV (TGT) QP has none, it only
 * answers; an XRC_SEND (INI) QP only sends (IBA 11.2.x XRC). */
static bool qpt_has_sq(uint32_t type)
{
	return type != IBV_QPT_XRC_RECV;
}

static bool qp_has_rq(const struct ipd_qp *qp)
{
	return !qp->srq && qp->type != IBV_QPT_XRC_SEND &&
	       qp->type != IBV_QPT_XRC_RECV;
}

static int qp_create_lookup_tgt(struct ipd_req_ctx *ctx,
				const Ipd__CreateQp *m,
				struct qp_create_refs *refs)
{
	refs->xrcd = ipd_xrcd_get(ctx->client, m->xrcd);
	if (!refs->xrcd)
		return ipd_req_fail(ctx, EINVAL, "create_qp: no XRCD %u",
				    m->xrcd);
	return 0;
}

static int qp_create_lookup(struct ipd_req_ctx *ctx, const Ipd__CreateQp *m,
			    struct qp_create_refs *refs)
{
	struct ipd_client *c = ctx->client;
	bool ini = m->qp_type == IBV_QPT_XRC_SEND;

	memset(refs, 0, sizeof(*refs));
	if (m->qp_type == IBV_QPT_XRC_RECV)
		return qp_create_lookup_tgt(ctx, m, refs);
	refs->pd = ipd_pd_get(c, m->pd);
	refs->scq = ipd_cq_get(c, m->send_cq);
	/* An INI QP receives nothing: its receive CQ and SRQ are ignored. */
	refs->rcq = ini ? NULL : ipd_cq_get(c, m->recv_cq);
	refs->srq = m->srq && !ini ? ipd_srq_get(c, m->srq) : NULL;
	if (!refs->pd)
		return ipd_req_fail(ctx, EINVAL, "create_qp: no PD %u", m->pd);
	if (!refs->scq || (!ini && !refs->rcq))
		return ipd_req_fail(ctx, EINVAL, "create_qp: no CQ %u/%u",
				    m->send_cq, m->recv_cq);
	if (m->srq && !ini && !refs->srq)
		return ipd_req_fail(ctx, EINVAL, "create_qp: no SRQ %u", m->srq);
	/* A QP's SRQ is a basic one; XRC SRQs are reached through XRCETH. */
	if (refs->srq && refs->srq->xrcd)
		return ipd_req_fail(ctx, EINVAL,
				    "create_qp: SRQ %u is an XRC SRQ", m->srq);
	return 0;
}

static int qp_create_check_caps(struct ipd_req_ctx *ctx, const Ipd__CreateQp *m)
{
	const struct ipd_config *cfg = ctx->client->dev->cfg;
	const Ipd__QpCap *cap = m->cap;
	uint32_t sge = qp_sge_limit(cfg);

	if (m->qp_type != IBV_QPT_RC && m->qp_type != IBV_QPT_UC &&
	    m->qp_type != IBV_QPT_UD && m->qp_type != IBV_QPT_XRC_SEND &&
	    m->qp_type != IBV_QPT_XRC_RECV)
		return ipd_req_fail(ctx, EINVAL, "create_qp: QP type %u not supported",
				    m->qp_type);
	if (m->qp_type == IBV_QPT_XRC_RECV)
		return 0;   /* no queues of its own */
	if (!cap)
		return ipd_req_fail(ctx, EINVAL, "create_qp: no capabilities");
	if (cap->max_send_wr > cfg->max_qp_wr || cap->max_send_sge > sge ||
	    cap->max_inline_data > cfg->max_inline)
		return ipd_req_fail(ctx, EINVAL,
				    "create_qp: send caps over limits (wr %u, sge %u, inline %u)",
				    cfg->max_qp_wr, sge, cfg->max_inline);
	if (m->srq || m->qp_type == IBV_QPT_XRC_SEND)
		return 0;   /* receive caps are the SRQ's, or there is no RQ */
	if (cap->max_recv_wr > cfg->max_qp_wr || cap->max_recv_sge > sge)
		return ipd_req_fail(ctx, EINVAL,
				    "create_qp: receive caps over limits (wr %u, sge %u)",
				    cfg->max_qp_wr, sge);
	return 0;
}

/* Create the rings and record the capabilities they really give. */
static int qp_create_rings(struct ipd_qp *qp, const Ipd__QpCap *cap,
			   int *sq_fd, int *rq_fd)
{
	const struct ipd_config *cfg = qp->dev->cfg;
	uint32_t sge = qp_sge_limit(cfg), body;
	int err;

	*sq_fd = *rq_fd = -1;
	if (!qpt_has_sq(qp->type))
		return 0;
	err = ipd_queue_create(&qp->sq, cap->max_send_wr,
			       ipd_send_slot_size(cap->max_send_sge,
						  cap->max_inline_data),
			       "ipathd-sq", sq_fd);
	if (err)
		return err;
	body = qp->sq.slot_size - (uint32_t)sizeof(struct ipd_send_wqe);
	qp->cap.max_send_wr = qp->sq.size;
	qp->cap.max_send_sge = min_u32(sge, body / sizeof(struct ipd_sge));
	qp->cap.max_inline_data = min_u32(cfg->max_inline, body);
	if (!qp_has_rq(qp))
		return 0;
	err = ipd_queue_create(&qp->rq, cap->max_recv_wr,
			       ipd_recv_slot_size(cap->max_recv_sge),
			       "ipathd-rq", rq_fd);
	if (err) {
		close(*sq_fd);
		ipd_queue_destroy(&qp->sq);
		return err;
	}
	body = qp->rq.slot_size - (uint32_t)sizeof(struct ipd_recv_wqe);
	qp->cap.max_recv_wr = qp->rq.size;
	qp->cap.max_recv_sge = min_u32(sge, body / sizeof(struct ipd_sge));
	return 0;
}

/* References on what the QP uses (each may be absent for XRC). */
static void qp_refs_add(struct ipd_qp *qp, int d)
{
	if (qp->pd)
		qp->pd->refcnt += d;
	if (qp->scq)
		qp->scq->refcnt += d;
	if (qp->rcq)
		qp->rcq->refcnt += d;
	if (qp->srq)
		qp->srq->refcnt += d;
	if (qp->xrcd)
		qp->xrcd->refcnt += d;
}

static int qp_create_reply(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
			   int sq_fd, int rq_fd)
{
	Ipd__CreateQpResp *r = ipd_req_alloc(ctx, sizeof(*r));
	Ipd__QpCap *cap = ipd_req_alloc(ctx, sizeof(*cap));

	if (!r || !cap)
		return -ENOMEM;
	ipd__create_qp_resp__init(r);
	ipd_qp_cap_to_msg(cap, &qp->cap);
	r->qpn = qp->qpn;
	r->cap = cap;
	r->sq_size = qp->sq.size;
	r->sq_slot_size = qp->sq.slot_size;
	if (qp_has_rq(qp)) {
		r->rq_size = qp->rq.size;
		r->rq_slot_size = qp->rq.slot_size;
	}
	if (sq_fd >= 0)
		ctx->out_fds[ctx->n_out_fds++] = sq_fd;
	if (rq_fd >= 0)
		ctx->out_fds[ctx->n_out_fds++] = rq_fd;
	ctx->resp->op_case = IPD__RESPONSE__OP_CREATE_QP;
	ctx->resp->create_qp = r;
	return 0;
}

static void qp_free_rings(struct ipd_qp *qp)
{
	if (qpt_has_sq(qp->type))
		ipd_queue_destroy(&qp->sq);
	if (qp_has_rq(qp))
		ipd_queue_destroy(&qp->rq);
}

static void qp_close_fds(int sq_fd, int rq_fd)
{
	if (sq_fd >= 0)
		close(sq_fd);
	if (rq_fd >= 0)
		close(rq_fd);
}

int ipd_handle_create_qp(struct ipd_req_ctx *ctx)
{
	const Ipd__CreateQp *m = ctx->req->create_qp;
	struct ipd_dev *dev = ctx->client->dev;
	struct qp_create_refs refs;
	struct ipd_qp *qp;
	int sq_fd, rq_fd, err;

	err = qp_create_lookup(ctx, m, &refs);
	if (!err)
		err = qp_create_check_caps(ctx, m);
	if (err)
		return err;
	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return ipd_req_fail(ctx, ENOMEM, "create_qp: out of memory");
	qp->client = ctx->client;
	qp->dev = dev;
	qp->serial = ++dev->obj_serial;
	qp->pd = refs.pd;
	qp->scq = refs.scq;
	qp->rcq = refs.rcq;
	qp->srq = refs.srq;
	qp->xrcd = refs.xrcd;
	qp->xrc_dom = refs.xrcd ? refs.xrcd->dom : NULL;
	LIST_INIT(&qp->opens);
	qp->type = (enum ibv_qp_type)m->qp_type;
	qp->sq_sig_all = m->sq_sig_all;
	qp->user_handle = m->user_handle;
	err = qp_create_rings(qp, m->cap, &sq_fd, &rq_fd);
	if (err)
		goto err_free;
	qp->attr.qp_state = IBV_QPS_RESET;
	qp->attr.cur_qp_state = IBV_QPS_RESET;
	qp->attr.cap = qp->cap;
	qp->qpn = ipd_table_insert(&dev->qps, qp);
	if (!qp->qpn) {
		err = -ENOMEM;
		goto err_rings;
	}
	err = ipd_engine_qp_init(qp);
	if (err)
		goto err_remove;
	qp_refs_add(qp, 1);
	TAILQ_INSERT_TAIL(&dev->qps_list, qp, dev_link);
	if (qp_create_reply(ctx, qp, sq_fd, rq_fd)) {
		ipd_qp_destroy(qp);
		qp_close_fds(sq_fd, rq_fd);
		return ipd_req_fail(ctx, ENOMEM, "create_qp: out of memory");
	}
	return 0;

err_remove:
	ipd_table_remove(&dev->qps, qp->qpn);
err_rings:
	qp_close_fds(sq_fd, rq_fd);
	qp_free_rings(qp);
err_free:
	free(qp);
	return ipd_req_fail(ctx, -err, "create_qp: cannot create the QP");
}

/* ------------------------------------------------------------------ */
/* Modify                                                              */

/* Attribute ranges (IBA 9.7.5.2.8 timeout 5 bits, 9.7.6.1 retry 3 bits,
 * 9.7.5.2.8 RNR timer 5 bits; one P_Key, one port). */
static const struct qp_attr_range {
	unsigned int mask;
	size_t off;            /* in Ipd__QpAttr */
	uint32_t max;
	const char *name;
} qp_attr_ranges[] = {
	{ IBV_QP_PKEY_INDEX, offsetof(Ipd__QpAttr, pkey_index), 0, "pkey_index" },
	{ IBV_QP_TIMEOUT, offsetof(Ipd__QpAttr, timeout), 31, "timeout" },
	{ IBV_QP_RETRY_CNT, offsetof(Ipd__QpAttr, retry_cnt), 7, "retry_cnt" },
	{ IBV_QP_RNR_RETRY, offsetof(Ipd__QpAttr, rnr_retry), 7, "rnr_retry" },
	{ IBV_QP_MIN_RNR_TIMER, offsetof(Ipd__QpAttr, min_rnr_timer), 31,
	  "min_rnr_timer" },
	{ IBV_QP_DEST_QPN, offsetof(Ipd__QpAttr, dest_qp_num), IPD_QPN_MASK,
	  "dest_qp_num" },
	{ IBV_QP_PATH_MIG_STATE, offsetof(Ipd__QpAttr, path_mig_state),
	  IBV_MIG_ARMED, "path_mig_state" },
	{ IBV_QP_EN_SQD_ASYNC_NOTIFY, offsetof(Ipd__QpAttr, en_sqd_async_notify),
	  1, "en_sqd_async_notify" },
	{ IBV_QP_ALT_PATH, offsetof(Ipd__QpAttr, alt_timeout), 31, "alt_timeout" },
	{ IBV_QP_ALT_PATH, offsetof(Ipd__QpAttr, alt_pkey_index), 0,
	  "alt_pkey_index" },
};

static int qp_check_ranges(struct ipd_req_ctx *ctx, const Ipd__QpAttr *a,
			   unsigned int mask)
{
	for (size_t i = 0; i < sizeof(qp_attr_ranges) / sizeof(qp_attr_ranges[0]); i++) {
		const struct qp_attr_range *r = &qp_attr_ranges[i];
		uint32_t v;

		if (!(mask & r->mask))
			continue;
		memcpy(&v, (const uint8_t *)a + r->off, sizeof(v));
		if (v > r->max)
			return ipd_req_fail(ctx, EINVAL,
					    "modify_qp: %s %u > %u", r->name,
					    v, r->max);
	}
	return 0;
}

static int qp_check_values(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
			   const Ipd__QpAttr *a, unsigned int mask)
{
	struct ipd_dev *dev = qp->dev;
	uint32_t active = ipd_mtu_enum(dev->active_mtu);
	uint32_t rd_max = dev->cfg->max_qp_rd_atom;

	if (!active)
		active = IBV_MTU_1024;
	if (qp_check_ranges(ctx, a, mask))
		return -EINVAL;
	if ((mask & IBV_QP_PORT) && a->port_num != IPD_PORT_NUM)
		return ipd_req_fail(ctx, EINVAL, "modify_qp: no port %u",
				    a->port_num);
	if ((mask & IBV_QP_ALT_PATH) && a->alt_port_num != IPD_PORT_NUM)
		return ipd_req_fail(ctx, EINVAL, "modify_qp: no port %u",
				    a->alt_port_num);
	if ((mask & IBV_QP_PATH_MTU) &&
	    (a->path_mtu < IBV_MTU_256 || a->path_mtu > active))
		return ipd_req_fail(ctx, EINVAL,
				    "modify_qp: path_mtu %u not in 1..%u (port MTU)",
				    a->path_mtu, active);
	if ((mask & IBV_QP_MAX_QP_RD_ATOMIC) && a->max_rd_atomic > rd_max)
		return ipd_req_fail(ctx, EINVAL, "modify_qp: max_rd_atomic %u > %u",
				    a->max_rd_atomic, rd_max);
	if ((mask & IBV_QP_MAX_DEST_RD_ATOMIC) && a->max_dest_rd_atomic > rd_max)
		return ipd_req_fail(ctx, EINVAL,
				    "modify_qp: max_dest_rd_atomic %u > %u",
				    a->max_dest_rd_atomic, rd_max);
	if ((mask & IBV_QP_ACCESS_FLAGS) &&
	    ipd_access_flags_check(a->qp_access_flags, false))
		return ipd_req_fail(ctx, EINVAL, "modify_qp: access flags 0x%x",
				    a->qp_access_flags);
	return 0;
}

/* Resolve the address vectors the modify carries (before changing
 * anything, so that a bad AV leaves the QP as it was). */
static int qp_check_avs(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
			const Ipd__QpAttr *a, unsigned int mask,
			struct ibv_ah_attr *ah, struct ipd_av *av)
{
	struct ibv_ah_attr alt;
	struct ipd_av alt_av;

	if (mask & IBV_QP_AV) {
		ipd_ah_attr_from_msg(ah, a->ah_attr);
		if (ipd_av_resolve(qp->dev, ah, av))
			return ipd_req_fail(ctx, EINVAL,
					    "modify_qp: bad AV (needs a GRH, sgid index 1..%d)",
					    qp->dev->ngids - 1);
	}
	if (mask & IBV_QP_ALT_PATH) {
		/* Path migration is not implemented; the alternate path is
		 * checked and remembered for query only. */
		ipd_ah_attr_from_msg(&alt, a->alt_ah_attr);
		if (ipd_av_resolve(qp->dev, &alt, &alt_av))
			return ipd_req_fail(ctx, EINVAL,
					    "modify_qp: unusable alternate path");
	}
	return 0;
}

static void qp_apply(struct ipd_qp *qp, const Ipd__QpAttr *a, unsigned int mask,
		     const struct ibv_ah_attr *ah, const struct ipd_av *av)
{
	struct ibv_qp_attr *q = &qp->attr;

	if (mask & IBV_QP_STATE)
		q->qp_state = (enum ibv_qp_state)a->qp_state;
	q->cur_qp_state = q->qp_state;
	if (mask & IBV_QP_EN_SQD_ASYNC_NOTIFY)
		q->en_sqd_async_notify = (uint8_t)a->en_sqd_async_notify;
	if (mask & IBV_QP_ACCESS_FLAGS)
		q->qp_access_flags = a->qp_access_flags;
	if (mask & IBV_QP_PKEY_INDEX)
		q->pkey_index = (uint16_t)a->pkey_index;
	if (mask & IBV_QP_PORT)
		q->port_num = (uint8_t)a->port_num;
	if (mask & IBV_QP_QKEY)
		q->qkey = a->qkey;
	if (mask & IBV_QP_AV) {
		q->ah_attr = *ah;
		qp->av = *av;
	}
	if (mask & IBV_QP_PATH_MTU) {
		q->path_mtu = (enum ibv_mtu)a->path_mtu;
		qp->mtu = ipd_mtu_bytes(a->path_mtu);
	}
	if (mask & IBV_QP_TIMEOUT)
		q->timeout = (uint8_t)a->timeout;
	if (mask & IBV_QP_RETRY_CNT)
		q->retry_cnt = (uint8_t)a->retry_cnt;
	if (mask & IBV_QP_RNR_RETRY)
		q->rnr_retry = (uint8_t)a->rnr_retry;
	/* PSNs are 24 bits; like rxe, higher bits are ignored. */
	if (mask & IBV_QP_RQ_PSN)
		q->rq_psn = a->rq_psn & IPD_PSN_MASK;
	if (mask & IBV_QP_SQ_PSN)
		q->sq_psn = a->sq_psn & IPD_PSN_MASK;
	if (mask & IBV_QP_MAX_QP_RD_ATOMIC)
		q->max_rd_atomic = (uint8_t)a->max_rd_atomic;
	if (mask & IBV_QP_MAX_DEST_RD_ATOMIC)
		q->max_dest_rd_atomic = (uint8_t)a->max_dest_rd_atomic;
	if (mask & IBV_QP_ALT_PATH) {
		ipd_ah_attr_from_msg(&q->alt_ah_attr, a->alt_ah_attr);
		q->alt_pkey_index = (uint16_t)a->alt_pkey_index;
		q->alt_port_num = (uint8_t)a->alt_port_num;
		q->alt_timeout = (uint8_t)a->alt_timeout;
	}
	if (mask & IBV_QP_MIN_RNR_TIMER)
		q->min_rnr_timer = (uint8_t)a->min_rnr_timer;
	if (mask & IBV_QP_PATH_MIG_STATE)
		q->path_mig_state = (enum ibv_mig_state)a->path_mig_state;
	if (mask & IBV_QP_DEST_QPN)
		q->dest_qp_num = a->dest_qp_num;
}

/* Name the attributes a failed transition misses or has too many of. */
static int qp_state_fail(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
			 enum ibv_qp_state next, unsigned int mask)
{
	enum ibv_qp_state cur = qp->attr.qp_state;
	unsigned int req, opt;

	if (!ipd_qp_transition(qp->type, cur, next, &req, &opt))
		return ipd_req_fail(ctx, EINVAL, "modify_qp: %s -> %s not allowed",
				    ipd_qp_state_name(cur), ipd_qp_state_name(next));
	return ipd_req_fail(ctx, EINVAL,
			    "modify_qp: %s -> %s: missing attrs 0x%x, not allowed 0x%x",
			    ipd_qp_state_name(cur), ipd_qp_state_name(next),
			    req & ~mask, mask & ~(req | opt | IBV_QP_STATE));
}

int ipd_handle_modify_qp(struct ipd_req_ctx *ctx)
{
	const Ipd__ModifyQp *m = ctx->req->modify_qp;
	struct ipd_qp *qp = qp_get_shared(ctx->client, m->qpn);
	const Ipd__QpAttr *a = m->attr;
	unsigned int mask = m->attr_mask;
	enum ibv_qp_state old, next;
	struct ibv_ah_attr ah;
	struct ipd_av av;

	if (!qp)
		return ipd_req_fail(ctx, EINVAL, "modify_qp: no QP %u", m->qpn);
	if (!a)
		return ipd_req_fail(ctx, EINVAL, "modify_qp: no attributes");
	old = qp->attr.qp_state;
	next = (mask & IBV_QP_STATE) ? (enum ibv_qp_state)a->qp_state : old;
	/* The consumer's idea of the current state must be the real one. */
	if ((mask & IBV_QP_CUR_STATE) && a->cur_qp_state != old)
		return ipd_req_fail(ctx, EINVAL,
				    "modify_qp: cur_qp_state %u but QP is %s",
				    a->cur_qp_state, ipd_qp_state_name(old));
	if (ipd_qp_state_check(qp->type, old, next, mask))
		return qp_state_fail(ctx, qp, next, mask);
	if (qp_check_values(ctx, qp, a, mask) ||
	    qp_check_avs(ctx, qp, a, mask, &ah, &av))
		return -EINVAL;
	qp_apply(qp, a, mask, &ah, &av);
	ipd_engine_qp_modified(qp, old, (int)mask);
	if (mask & IBV_QP_AV)
		ipd_peer_need(qp->dev, &qp->av);   /* daemon/peer.c */
	return 0;
}

/* ------------------------------------------------------------------ */
/* Query, destroy, errors                                              */

static bool qp_has_psns(enum ibv_qp_state s)
{
	return s != IBV_QPS_RESET && s != IBV_QPS_INIT;
}

static int qp_attr_to_msg(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
			  Ipd__QpAttr *m)
{
	const struct ibv_qp_attr *q = &qp->attr;
	Ipd__AhAttr *ah = ipd_req_alloc(ctx, 2 * sizeof(*ah));
	Ipd__GlobalRoute *g = ipd_req_alloc(ctx, 2 * sizeof(*g));
	Ipd__QpCap *cap = ipd_req_alloc(ctx, sizeof(*cap));

	if (!ah || !g || !cap)
		return -ENOMEM;
	ipd_ah_attr_to_msg(&ah[0], &g[0], &q->ah_attr);
	ipd_ah_attr_to_msg(&ah[1], &g[1], &q->alt_ah_attr);
	ipd__qp_attr__init(m);
	ipd_qp_cap_to_msg(cap, &qp->cap);
	m->qp_state = q->qp_state;
	m->cur_qp_state = q->qp_state;
	m->path_mtu = q->path_mtu;
	m->path_mig_state = q->path_mig_state;
	m->qkey = q->qkey;
	m->rq_psn = q->rq_psn;
	m->sq_psn = q->sq_psn;
	if (qp_has_psns(q->qp_state))
		ipd_engine_qp_psns(qp, &m->sq_psn, &m->rq_psn);
	m->dest_qp_num = q->dest_qp_num;
	m->qp_access_flags = q->qp_access_flags;
	m->cap = cap;
	m->ah_attr = &ah[0];
	m->alt_ah_attr = &ah[1];
	m->pkey_index = q->pkey_index;
	m->alt_pkey_index = q->alt_pkey_index;
	m->en_sqd_async_notify = q->en_sqd_async_notify;
	m->sq_draining = 0;
	m->max_rd_atomic = q->max_rd_atomic;
	m->max_dest_rd_atomic = q->max_dest_rd_atomic;
	m->min_rnr_timer = q->min_rnr_timer;
	m->port_num = q->port_num;
	m->timeout = q->timeout;
	m->retry_cnt = q->retry_cnt;
	m->rnr_retry = q->rnr_retry;
	m->alt_port_num = q->alt_port_num;
	m->alt_timeout = q->alt_timeout;
	return 0;
}

int ipd_handle_query_qp(struct ipd_req_ctx *ctx)
{
	const Ipd__QueryQp *m = ctx->req->query_qp;
	struct ipd_qp *qp = qp_get_shared(ctx->client, m->qpn);
	Ipd__QueryQpResp *r;
	Ipd__QpAttr *a;
	Ipd__QpCap *cap;

	if (!qp)
		return ipd_req_fail(ctx, EINVAL, "query_qp: no QP %u", m->qpn);
	r = ipd_req_alloc(ctx, sizeof(*r));
	a = ipd_req_alloc(ctx, sizeof(*a));
	cap = ipd_req_alloc(ctx, sizeof(*cap));
	if (!r || !a || !cap || qp_attr_to_msg(ctx, qp, a))
		return ipd_req_fail(ctx, ENOMEM, "query_qp: out of memory");
	ipd__query_qp_resp__init(r);
	ipd_qp_cap_to_msg(cap, &qp->cap);
	r->attr = a;
	r->init_cap = cap;
	r->sq_sig_all = qp->sq_sig_all;
	ctx->resp->op_case = IPD__RESPONSE__OP_QUERY_QP;
	ctx->resp->query_qp = r;
	return 0;
}

void ipd_qp_free(struct ipd_qp *qp)
{
	struct ipd_dev *dev = qp->dev;

	ipd_engine_qp_fini(qp);
	TAILQ_REMOVE(&dev->qps_list, qp, dev_link);
	ipd_table_remove(&dev->qps, qp->qpn);
	qp_refs_add(qp, -1);
	qp_free_rings(qp);
	free(qp);
}

int ipd_qp_destroy(struct ipd_qp *qp)
{
	/* A TGT QP that other processes opened outlives its creator's
	 * destroy, as in the kernel (ib_destroy_qp of a shared XRC TGT QP
	 * closes that handle only): it goes with its last opener
	 * (xrcd.c).  Its creator's references go now; its domain stays,
	 * held by the openers' XRCDs. */
	if (!LIST_EMPTY(&qp->opens)) {
		qp_refs_add(qp, -1);
		qp->xrcd = NULL;
		qp->client = NULL;
		return 0;
	}
	ipd_qp_free(qp);
	return 0;
}

void ipd_qp_async_event(struct ipd_qp *qp, enum ibv_event_type ev)
{
	struct ipd_qp_open *o;

	if (qp->client)
		ipd_async_event(qp->client, qp->user_handle, ev);
	LIST_FOREACH(o, &qp->opens, link)
		ipd_async_event(o->client, o->user_handle, ev);
}

void ipd_qp_set_error(struct ipd_qp *qp, enum ibv_event_type ev)
{
	enum ibv_qp_state old = qp->attr.qp_state;

	if (old == IBV_QPS_ERR)
		return;
	qp->attr.qp_state = IBV_QPS_ERR;
	qp->attr.cur_qp_state = IBV_QPS_ERR;
	ipd_engine_qp_modified(qp, old, IBV_QP_STATE);
	ipd_qp_async_event(qp, ev);
}
