// SPDX-License-Identifier: MIT
/*
 * Completion queues: a daemon-produced ring of struct ipd_cqe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objects.h"

struct ipd_cq *ipd_cq_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_cq *cq = ipd_table_get(&c->dev->cqs, handle);

	return cq && cq->client == c ? cq : NULL;
}

/* Ring slots for cqe entries: a power of two with one spare slot, as
 * many verbs devices report (the reported cqe is ring - 1). */
static int cq_ring_slots(const struct ipd_config *cfg, uint32_t cqe,
			 uint32_t *slots)
{
	/* rxe: cqe must be positive and within the device's max_cqe. */
	if (cqe == 0 || cqe > cfg->max_cqe)
		return -EINVAL;
	*slots = ipd_roundup_pow2(cqe + 1);
	return 0;
}

int ipd_cq_post(struct ipd_cq *cq, const struct ipd_cqe *cqe)
{
	struct ipd_queue *q = &cq->q;

	if (cq->overflowed)
		return -ENOSPC;
	if (ipd_ring_full(q->hdr, q->size, q->prod)) {
		/* IBA 11.4.2.1 / verbs: a CQ overrun is an affiliated
		 * asynchronous error (IBV_EVENT_CQ_ERR), raised once. */
		cq->overflowed = true;
		ipd_async_event(cq->client, cq->user_handle, IBV_EVENT_CQ_ERR);
		return -ENOSPC;
	}
	memcpy(ipd_ring_slot(q->hdr, q->size, q->slot_size, q->prod), cqe,
	       sizeof(*cqe));
	q->prod++;
	ipd_ring_publish(q->hdr, q->prod);
	return 0;
}

/* Fill the preallocated response r for cq and attach its ring. */
static void cq_reply(struct ipd_req_ctx *ctx, struct ipd_cq *cq,
		    Ipd__CreateCqResp *r, int fd, bool resize)
{
	ipd__create_cq_resp__init(r);
	r->handle = cq->handle;
	r->cqe = cq->cqe;
	r->ring_size = cq->q.size;
	ctx->out_fds[ctx->n_out_fds++] = fd;
	if (resize) {
		ctx->resp->op_case = IPD__RESPONSE__OP_RESIZE_CQ;
		ctx->resp->resize_cq = r;
	} else {
		ctx->resp->op_case = IPD__RESPONSE__OP_CREATE_CQ;
		ctx->resp->create_cq = r;
	}
}

int ipd_handle_create_cq(struct ipd_req_ctx *ctx)
{
	const Ipd__CreateCq *m = ctx->req->create_cq;
	struct ipd_dev *dev = ctx->client->dev;
	Ipd__CreateCqResp *r;
	struct ipd_cq *cq;
	uint32_t slots;
	int fd, err;

	if (cq_ring_slots(dev->cfg, m->cqe, &slots))
		return ipd_req_fail(ctx, EINVAL, "create_cq: cqe %u not in 1..%u",
				    m->cqe, dev->cfg->max_cqe);
	r = ipd_req_alloc(ctx, sizeof(*r));
	cq = r ? calloc(1, sizeof(*cq)) : NULL;
	if (!cq)
		return ipd_req_fail(ctx, ENOMEM, "create_cq: out of memory");
	err = ipd_queue_create(&cq->q, slots, sizeof(struct ipd_cqe), "ipathd-cq",
			       &fd);
	if (err)
		goto err_free;
	cq->handle = ipd_table_insert(&dev->cqs, cq);
	if (!cq->handle) {
		err = -ENOMEM;
		goto err_queue;
	}
	cq->client = ctx->client;
	cq->user_handle = m->user_handle;
	cq->cqe = cq->q.size - 1;
	cq_reply(ctx, cq, r, fd, false);
	return 0;

err_queue:
	close(fd);
	ipd_queue_destroy(&cq->q);
err_free:
	free(cq);
	return ipd_req_fail(ctx, -err, "create_cq: cannot create the ring");
}

/*
 * Resize: a new ring holding the completions the client has not polled
 * yet, at indices 0..n-1 (cons 0, prod n).  The client must map the new
 * ring and restart its consumer index at the new header's cons.
 */
int ipd_handle_resize_cq(struct ipd_req_ctx *ctx)
{
	const Ipd__ResizeCq *m = ctx->req->resize_cq;
	struct ipd_cq *cq = ipd_cq_get(ctx->client, m->handle);
	struct ipd_queue nq, *oq;
	Ipd__CreateCqResp *r;
	uint32_t slots, cons, n;
	int fd, err;

	if (!cq)
		return ipd_req_fail(ctx, EINVAL, "resize_cq: no CQ %u", m->handle);
	if (cq_ring_slots(ctx->client->dev->cfg, m->cqe, &slots))
		return ipd_req_fail(ctx, EINVAL, "resize_cq: cqe %u out of range",
				    m->cqe);
	oq = &cq->q;
	cons = atomic_load_explicit(&oq->hdr->cons, memory_order_acquire);
	n = oq->prod - cons;
	if (n > oq->size)        /* bogus consumer index: nothing to keep */
		n = 0;
	if (m->cqe < n)
		return ipd_req_fail(ctx, EINVAL,
				    "resize_cq: %u completions outstanding", n);
	r = ipd_req_alloc(ctx, sizeof(*r));
	if (!r)
		return ipd_req_fail(ctx, ENOMEM, "resize_cq: out of memory");
	err = ipd_queue_create(&nq, slots, sizeof(struct ipd_cqe), "ipathd-cq",
			       &fd);
	if (err)
		return ipd_req_fail(ctx, -err, "resize_cq: cannot create the ring");
	for (uint32_t i = 0; i < n; i++)
		memcpy(ipd_ring_slot(nq.hdr, nq.size, nq.slot_size, i),
		       ipd_ring_slot(oq->hdr, oq->size, oq->slot_size, cons + i),
		       sizeof(struct ipd_cqe));
	nq.prod = n;
	ipd_ring_publish(nq.hdr, n);
	atomic_store(&nq.hdr->arm, atomic_load(&oq->hdr->arm));
	ipd_queue_destroy(oq);
	cq->q = nq;
	cq->cqe = nq.size - 1;
	cq->overflowed = false;
	cq_reply(ctx, cq, r, fd, true);
	return 0;
}

int ipd_cq_destroy(struct ipd_cq *cq)
{
	if (cq->refcnt)
		return -EBUSY;
	ipd_table_remove(&cq->client->dev->cqs, cq->handle);
	ipd_queue_destroy(&cq->q);
	free(cq);
	return 0;
}
