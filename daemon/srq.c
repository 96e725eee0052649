// SPDX-License-Identifier: MIT
/*
 * Shared receive queues: a client-produced ring of receive WQEs that any
 * QP attached to the SRQ consumes from.  An XRC SRQ (IBV_SRQT_XRC) belongs
 * to an XRC domain instead: TGT QPs of the domain take its WQEs when
 * XRCETH names its number, and its completions go to its own CQ.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "objects.h"

struct ipd_srq *ipd_srq_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_srq *srq = ipd_table_get(&c->dev->srqs, handle);

	return srq && srq->client == c ? srq : NULL;
}

struct ipd_srq *ipd_srq_xrc_lookup(struct ipd_dev *dev, uint32_t srqn,
				   const struct ipd_xrcd_dom *dom)
{
	struct ipd_srq *srq = ipd_table_get(&dev->srqs, srqn);

	return srq && srq->xrcd && srq->xrcd->dom == dom ? srq : NULL;
}

static uint32_t srq_max_sge(const struct ipd_config *cfg)
{
	return cfg->max_sge < IPD_MAX_SGE ? cfg->max_sge : IPD_MAX_SGE;
}

int ipd_srq_take(struct ipd_srq *srq, struct ipd_rwqe *out)
{
	/* The largest slot: IPD_MAX_SGE scatter entries, cache-line rounded
	 * as ipd_recv_slot_size() does. */
	union {
		struct ipd_recv_wqe w;
		uint8_t raw[(sizeof(struct ipd_recv_wqe) +
			     IPD_MAX_SGE * sizeof(struct ipd_sge) +
			     IPD_CACHELINE - 1) & ~(IPD_CACHELINE - 1)];
	} slot;
	struct ipd_queue *q = &srq->q;
	uint32_t left;

	if (ipd_queue_ready(q) == 0)
		return -EAGAIN;
	if (q->slot_size > sizeof(slot))
		return -EINVAL;
	ipd_queue_copy_next(q, &slot);
	ipd_queue_release(q, q->cons);
	left = ipd_queue_ready(q);

	/* IBA 10.2.9.3 (SRQ limit): one affiliated event when the number of
	 * posted WQEs drops below the armed limit; the limit then disarms. */
	if (srq->limit_armed && left < srq->limit) {
		srq->limit_armed = false;
		srq->limit = 0;
		ipd_async_event(srq->client, srq->user_handle,
				IBV_EVENT_SRQ_LIMIT_REACHED);
	}
	/* The slot is client memory: never trust its scatter count. */
	if (slot.w.num_sge > srq->max_sge)
		return -EINVAL;
	out->wr_id = slot.w.wr_id;
	out->num_sge = slot.w.num_sge;
	memcpy(out->sge, slot.w.sge, slot.w.num_sge * sizeof(struct ipd_sge));
	return 0;
}

static int srq_reply_attr(struct ipd_req_ctx *ctx, struct ipd_srq *srq,
			  Ipd__SrqAttr **out)
{
	Ipd__SrqAttr *a = ipd_req_alloc(ctx, sizeof(*a));

	if (!a)
		return ipd_req_fail(ctx, ENOMEM, "srq: out of memory");
	ipd__srq_attr__init(a);
	a->max_wr = srq->max_wr;
	a->max_sge = srq->max_sge;
	a->srq_limit = srq->limit;
	*out = a;
	return 0;
}

static int srq_check_create(struct ipd_req_ctx *ctx, const Ipd__SrqAttr *a)
{
	const struct ipd_config *cfg = ctx->client->dev->cfg;

	if (!a || a->max_wr == 0 || a->max_wr > cfg->max_srq_wr)
		return ipd_req_fail(ctx, EINVAL, "create_srq: max_wr not in 1..%u",
				    cfg->max_srq_wr);
	if (a->max_sge == 0 || a->max_sge > srq_max_sge(cfg))
		return ipd_req_fail(ctx, EINVAL, "create_srq: max_sge not in 1..%u",
				    srq_max_sge(cfg));
	return 0;
}

/* XRC SRQs name their domain and CQ (ibv_create_srq_ex). */
static int srq_xrc_lookup(struct ipd_req_ctx *ctx, const Ipd__CreateSrq *m,
			  struct ipd_xrcd **xrcd, struct ipd_cq **cq)
{
	*xrcd = NULL;
	*cq = NULL;
	if (m->srq_type == IBV_SRQT_BASIC)
		return 0;
	if (m->srq_type != IBV_SRQT_XRC)
		return ipd_req_fail(ctx, EOPNOTSUPP,
				    "create_srq: SRQ type %u not supported",
				    m->srq_type);
	*xrcd = ipd_xrcd_get(ctx->client, m->xrcd);
	*cq = ipd_cq_get(ctx->client, m->cq);
	if (!*xrcd || !*cq)
		return ipd_req_fail(ctx, EINVAL, "create_srq: no XRCD %u or CQ %u",
				    m->xrcd, m->cq);
	return 0;
}

int ipd_handle_create_srq(struct ipd_req_ctx *ctx)
{
	const Ipd__CreateSrq *m = ctx->req->create_srq;
	struct ipd_dev *dev = ctx->client->dev;
	Ipd__CreateSrqResp *r;
	struct ipd_xrcd *xrcd;
	struct ipd_srq *srq;
	struct ipd_cq *cq;
	struct ipd_pd *pd;
	int fd, err;

	pd = ipd_pd_get(ctx->client, m->pd);
	if (!pd)
		return ipd_req_fail(ctx, EINVAL, "create_srq: no PD %u", m->pd);
	err = srq_xrc_lookup(ctx, m, &xrcd, &cq);
	if (!err)
		err = srq_check_create(ctx, m->attr);
	if (err)
		return err;
	r = ipd_req_alloc(ctx, sizeof(*r));
	srq = calloc(1, sizeof(*srq));
	if (!r || !srq) {
		free(srq);
		return ipd_req_fail(ctx, ENOMEM, "create_srq: out of memory");
	}
	err = ipd_queue_create(&srq->q, m->attr->max_wr,
			       ipd_recv_slot_size(m->attr->max_sge),
			       "ipathd-srq", &fd);
	if (err)
		goto err_free;
	srq->handle = ipd_table_insert(&dev->srqs, srq);
	if (!srq->handle) {
		err = -ENOMEM;
		goto err_queue;
	}
	srq->client = ctx->client;
	srq->pd = pd;
	srq->user_handle = m->user_handle;
	/* The ring holds exactly size WQEs; srq_limit is ignored at create
	 * (verbs: ibv_create_srq) and the limit starts disarmed. */
	srq->max_wr = srq->q.size;
	srq->max_sge = m->attr->max_sge;
	pd->refcnt++;
	srq->xrcd = xrcd;
	srq->cq = cq;
	if (xrcd) {
		xrcd->refcnt++;
		cq->refcnt++;
	}

	ipd__create_srq_resp__init(r);
	r->handle = srq->handle;
	r->ring_size = srq->q.size;
	r->slot_size = srq->q.slot_size;
	r->srq_num = xrcd ? srq->handle : 0;
	if (srq_reply_attr(ctx, srq, &r->attr)) {
		close(fd);
		ipd_srq_destroy(srq);
		return -ENOMEM;
	}
	ctx->out_fds[ctx->n_out_fds++] = fd;
	ctx->resp->op_case = IPD__RESPONSE__OP_CREATE_SRQ;
	ctx->resp->create_srq = r;
	return 0;

err_queue:
	close(fd);
	ipd_queue_destroy(&srq->q);
err_free:
	free(srq);
	return ipd_req_fail(ctx, -err, "create_srq: cannot create the ring");
}

int ipd_handle_modify_srq(struct ipd_req_ctx *ctx)
{
	const Ipd__ModifySrq *m = ctx->req->modify_srq;
	struct ipd_srq *srq = ipd_srq_get(ctx->client, m->handle);
	uint32_t mask = m->attr_mask;

	if (!srq)
		return ipd_req_fail(ctx, EINVAL, "modify_srq: no SRQ %u", m->handle);
	if (mask & ~(uint32_t)(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT) || !m->attr)
		return ipd_req_fail(ctx, EINVAL, "modify_srq: bad mask 0x%x", mask);
	/* The ring cannot grow in place; a request that fits it is
	 * satisfied as it stands. */
	if ((mask & IBV_SRQ_MAX_WR) &&
	    (m->attr->max_wr == 0 || m->attr->max_wr > srq->q.size))
		return ipd_req_fail(ctx, EINVAL,
				    "modify_srq: max_wr %u (ring has %u slots)",
				    m->attr->max_wr, srq->q.size);
	if (mask & IBV_SRQ_LIMIT) {
		if (m->attr->srq_limit > srq->max_wr)
			return ipd_req_fail(ctx, EINVAL,
					    "modify_srq: limit %u > max_wr %u",
					    m->attr->srq_limit, srq->max_wr);
		srq->limit = m->attr->srq_limit;
		srq->limit_armed = srq->limit != 0;
	}
	return 0;
}

int ipd_handle_query_srq(struct ipd_req_ctx *ctx)
{
	const Ipd__QuerySrq *m = ctx->req->query_srq;
	struct ipd_srq *srq = ipd_srq_get(ctx->client, m->handle);
	Ipd__QuerySrqResp *r;

	if (!srq)
		return ipd_req_fail(ctx, EINVAL, "query_srq: no SRQ %u", m->handle);
	r = ipd_req_alloc(ctx, sizeof(*r));
	if (!r)
		return ipd_req_fail(ctx, ENOMEM, "query_srq: out of memory");
	ipd__query_srq_resp__init(r);
	ctx->resp->op_case = IPD__RESPONSE__OP_QUERY_SRQ;
	ctx->resp->query_srq = r;
	return srq_reply_attr(ctx, srq, &r->attr);
}

int ipd_srq_destroy(struct ipd_srq *srq)
{
	if (srq->refcnt)
		return -EBUSY;
	if (srq->xrcd) {
		/* TGT QPs may be inside a message to it. */
		ipd_engine_srq_gone(srq->client->dev, srq);
		srq->xrcd->refcnt--;
		srq->cq->refcnt--;
	}
	ipd_table_remove(&srq->client->dev->srqs, srq->handle);
	ipd_queue_destroy(&srq->q);
	srq->pd->refcnt--;
	free(srq);
	return 0;
}
