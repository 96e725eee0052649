// SPDX-License-Identifier: MIT
/*
 * Memory windows (docs/design.md "Memory windows"): alloc/dealloc, type 1
 * binds (ibv_bind_mw), and the IBV_WR_BIND_MW / IBV_WR_LOCAL_INV work
 * requests of post_send.
 *
 * A bind or local invalidate changes the daemon's key tables, so it is a
 * control request rather than a ring slot.  To keep it ordered after the
 * QP's earlier work requests (IBA 10.6.7: a bind takes effect in order),
 * the provider first waits until the daemon retired every WQE posted
 * before it; the daemon then posts the completion itself.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "ipathd.h"

/* Bound on waiting for earlier work requests to retire. */
#define MW_DRAIN_MS 30000

struct ipd_mw {
	struct ibv_mw ibv_mw;		/* ibv_mw.handle = daemon handle */
};

struct ibv_mw *ipd_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__AllocMw am = IPD__ALLOC_MW__INIT;
	Ipd__Response *resp;
	struct ipd_mw *mw;
	int err;

	mw = calloc(1, sizeof(*mw));
	if (!mw) {
		errno = ENOMEM;
		return NULL;
	}
	am.pd = pd->handle;
	am.type = type;
	req.op_case = IPD__REQUEST__OP_ALLOC_MW;
	req.alloc_mw = &am;
	err = ipd_ctl_request(to_ictx(pd->context), &req, NULL, 0, &resp,
			      NULL, NULL, 0);
	if (err)
		goto err_free;
	if (resp->op_case != IPD__RESPONSE__OP_ALLOC_MW) {
		ipd_ctl_free(resp);
		err = EPROTO;
		goto err_free;
	}
	mw->ibv_mw.context = pd->context;
	mw->ibv_mw.pd = pd;
	mw->ibv_mw.type = type;
	mw->ibv_mw.handle = resp->alloc_mw->handle;
	mw->ibv_mw.rkey = resp->alloc_mw->rkey;
	ipd_ctl_free(resp);
	return &mw->ibv_mw;

err_free:
	free(mw);
	errno = err;
	return NULL;
}

int ipd_dealloc_mw(struct ibv_mw *mw)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__DeallocMw dm = IPD__DEALLOC_MW__INIT;
	int err;

	dm.handle = mw->handle;
	req.op_case = IPD__REQUEST__OP_DEALLOC_MW;
	req.dealloc_mw = &dm;
	err = ipd_ctl_request(to_ictx(mw->context), &req, NULL, 0, NULL, NULL,
			      NULL, 0);
	if (!err)
		free((struct ipd_mw *)(void *)mw);
	return err;
}

/* Wait until the daemon retired every WQE before index prod. */
static int sq_drain(struct ipd_qp *qp, uint32_t prod)
{
	struct timespec t0, now, nap = { 0, 50000 };
	int spins = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load_explicit(&qp->sq.hdr->cons,
				    memory_order_acquire) != prod) {
		if (++spins < 1000) {
			sched_yield();
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 +
		    (now.tv_nsec - t0.tv_nsec) / 1000000 > MW_DRAIN_MS)
			return ETIMEDOUT;
		nanosleep(&nap, NULL);
	}
	return 0;
}

static int mw_request(struct ipd_qp *qp, Ipd__BindMw *bm)
{
	Ipd__Request req = IPD__REQUEST__INIT;

	bm->qpn = qp->vqp.qp.qp_num;
	req.op_case = IPD__REQUEST__OP_BIND_MW;
	req.bind_mw = bm;
	return ipd_ctl_request(to_ictx(qp->vqp.qp.context), &req, NULL, 0,
			       NULL, NULL, NULL, 0);
}

static void fill_bind(Ipd__BindMw *bm, struct ibv_mw *mw, uint32_t rkey,
		      const struct ibv_mw_bind_info *bi)
{
	bm->mw = mw->handle;
	bm->rkey = rkey;
	bm->mr = bi->mr ? bi->mr->handle : 0;
	bm->addr = bi->addr;
	bm->length = bi->length;
	bm->access = bi->mw_access_flags;
}

static uint32_t sq_prod(struct ipd_qp *qp)
{
	uint32_t prod;

	pthread_spin_lock(&qp->sq.lock);
	prod = atomic_load_explicit(&qp->sq.hdr->prod, memory_order_relaxed);
	pthread_spin_unlock(&qp->sq.lock);
	return prod;
}

int ipd_bind_mw(struct ibv_qp *ibqp, struct ibv_mw *mw,
		struct ibv_mw_bind *mw_bind)
{
	struct ipd_qp *qp = to_iqp(ibqp);
	Ipd__BindMw bm = IPD__BIND_MW__INIT;
	uint32_t rkey = ibv_inc_rkey(mw->rkey);
	int err;

	if (mw->type != IBV_MW_TYPE_1 || ibqp->context != mw->context)
		return EINVAL;
	err = sq_drain(qp, sq_prod(qp));
	if (err)
		return err;
	fill_bind(&bm, mw, rkey, &mw_bind->bind_info);
	bm.wr_id = mw_bind->wr_id;
	bm.signaled = (mw_bind->send_flags & IBV_SEND_SIGNALED) ||
		      qp->sq_sig_all;
	err = mw_request(qp, &bm);
	if (!err)
		mw->rkey = rkey;
	return err;
}

int ipd_mw_post(struct ipd_qp *qp, const struct ibv_send_wr *wr,
		uint32_t prod)
{
	Ipd__BindMw bm = IPD__BIND_MW__INIT;
	struct ibv_mw *mw = wr->bind_mw.mw;
	int err;

	if (qp->vqp.qp.qp_type != IBV_QPT_RC &&
	    qp->vqp.qp.qp_type != IBV_QPT_UC)
		return EINVAL;
	if (wr->opcode == IBV_WR_BIND_MW) {
		/* Type 1 windows are bound with ibv_bind_mw only. */
		if (!mw || mw->type != IBV_MW_TYPE_2 ||
		    mw->context != qp->vqp.qp.context)
			return EINVAL;
		fill_bind(&bm, mw, wr->bind_mw.rkey, &wr->bind_mw.bind_info);
	} else {
		bm.invalidate = true;
		bm.rkey = wr->invalidate_rkey;
	}
	bm.wr_id = wr->wr_id;
	bm.signaled = (wr->send_flags & IBV_SEND_SIGNALED) || qp->sq_sig_all;
	err = sq_drain(qp, prod);
	if (err)
		return err;
	err = mw_request(qp, &bm);
	if (!err && wr->opcode == IBV_WR_BIND_MW)
		mw->rkey = wr->bind_mw.rkey;
	return err;
}
