// SPDX-License-Identifier: MIT
/*
 * Memory windows (docs/design.md "Memory windows"): a window grants remote
 * access to a sub-range of an MR under its own rkey, while bound.
 *
 * Windows have their own handle space (IPD_MW_HANDLE_BASE and up), so a
 * window rkey never names an MR and is never accepted as an lkey.  Binding
 * and local invalidation are control requests: the provider drains the
 * QP's send queue first and the daemon posts the completion, so the
 * operation is ordered after every earlier work request of the QP.  Remote
 * access goes through ipd_mw_rkey_ptr (called by the engine when an rkey
 * is not an MR's), remote invalidation through ipd_mw_remote_inv.
 */
#include <errno.h>
#include <stdlib.h>

#include "objects.h"

#define IPD_MW_HANDLE_BASE 0x800000u
#define IPD_MAX_MW 65536u

struct ipd_mw {
	uint32_t handle;
	uint32_t rkey;             /* handle << 8 | key byte */
	struct ipd_client *client;
	struct ipd_pd *pd;
	enum ibv_mw_type type;
	struct ipd_mr *mr;         /* bound MR (holds a reference), or NULL */
	uint32_t qpn;              /* type 2: the QP it was bound through */
	uint64_t addr, length;     /* window in the MR's iova space */
	uint32_t access;           /* IBV_ACCESS_REMOTE_* | ZERO_BASED */
};

bool ipd_mw_key(uint32_t key)
{
	return (key >> 8) >= IPD_MW_HANDLE_BASE;
}

static struct ipd_mw *mw_by_key(struct ipd_dev *dev, uint32_t key)
{
	struct ipd_mw *mw;

	if (!dev->mws || !ipd_mw_key(key))
		return NULL;
	mw = ipd_table_get(dev->mws, key >> 8);
	return mw && mw->rkey == key ? mw : NULL;
}

static struct ipd_mw *mw_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_mw *mw = c->dev->mws ?
			    ipd_table_get(c->dev->mws, handle) : NULL;

	return mw && mw->client == c ? mw : NULL;
}

static void mw_unbind(struct ipd_mw *mw)
{
	if (mw->mr)
		mw->mr->refcnt--;
	mw->mr = NULL;
	mw->length = 0;
	mw->access = 0;
}

static void mw_free(struct ipd_dev *dev, struct ipd_mw *mw)
{
	ipd_table_remove(dev->mws, mw->handle);
	mw->pd->refcnt--;
	free(mw);
	/* The table exists only while windows do. */
	if (!dev->mws->count) {
		ipd_table_fini(dev->mws);
		free(dev->mws);
		dev->mws = NULL;
	}
}

void *ipd_mw_rkey_ptr(const struct ipd_qp *qp, struct ipd_pd *pd,
		      uint32_t rkey, uint64_t va, uint64_t len, uint32_t access)
{
	struct ipd_mw *mw = mw_by_key(qp->dev, rkey);
	uint64_t off;

	/* IBA 10.6.7: a window grants exactly its range and rights, and
	 * only while bound; the PD must be the requesting QP's, and a type
	 * 2 window is associated with the QP it was bound through (10.6.1:
	 * its R_Key is valid on that QP only; Linux rxe checks the same). */
	if (!mw || !mw->mr || mw->pd != pd)
		return NULL;
	if (mw->type == IBV_MW_TYPE_2 && mw->qpn != qp->qpn)
		return NULL;
	if ((mw->access & access) != access)
		return NULL;
	off = (mw->access & IBV_ACCESS_ZERO_BASED) ? va : va - mw->addr;
	if (!(mw->access & IBV_ACCESS_ZERO_BASED) && va < mw->addr)
		return NULL;
	if (off > mw->length || len > mw->length - off)
		return NULL;
	return ipd_mr_ptr(mw->mr, mw->addr + off, len, ipd_access_rw(access));
}

int ipd_mw_remote_inv(struct ipd_qp *qp, struct ipd_pd *pd, uint32_t rkey)
{
	struct ipd_mw *mw = mw_by_key(qp->dev, rkey);

	/* Only type 2 windows of this PD can be invalidated remotely. */
	if (!mw || mw->type != IBV_MW_TYPE_2 || !pd || mw->pd != pd || !mw->mr)
		return -EINVAL;
	mw_unbind(mw);
	return 0;
}

int ipd_handle_alloc_mw(struct ipd_req_ctx *ctx)
{
	const Ipd__AllocMw *m = ctx->req->alloc_mw;
	struct ipd_dev *dev = ctx->client->dev;
	struct ipd_pd *pd = ipd_pd_get(ctx->client, m->pd);
	Ipd__AllocMwResp *r;
	struct ipd_mw *mw;

	if (!pd)
		return ipd_req_fail(ctx, EINVAL, "alloc_mw: no PD %u", m->pd);
	if (m->type != IBV_MW_TYPE_1 && m->type != IBV_MW_TYPE_2)
		return ipd_req_fail(ctx, EINVAL, "alloc_mw: type %u", m->type);
	if (!dev->mws) {
		dev->mws = calloc(1, sizeof(*dev->mws));
		if (!dev->mws || ipd_table_init(dev->mws, IPD_MW_HANDLE_BASE,
						IPD_MAX_MW)) {
			free(dev->mws);
			dev->mws = NULL;
			return ipd_req_fail(ctx, ENOMEM, "alloc_mw: no memory");
		}
	}
	r = ipd_req_alloc(ctx, sizeof(*r));
	mw = r ? calloc(1, sizeof(*mw)) : NULL;
	if (!mw)
		goto err_nomem;
	mw->handle = ipd_table_insert(dev->mws, mw);
	if (!mw->handle) {
		free(mw);
		goto err_nomem;
	}
	mw->rkey = mw->handle << 8 | (uint32_t)(random() & 0xff);
	mw->client = ctx->client;
	mw->pd = pd;
	mw->type = (enum ibv_mw_type)m->type;
	pd->refcnt++;
	ipd__alloc_mw_resp__init(r);
	r->handle = mw->handle;
	r->rkey = mw->rkey;
	ctx->resp->op_case = IPD__RESPONSE__OP_ALLOC_MW;
	ctx->resp->alloc_mw = r;
	return 0;

err_nomem:
	if (!dev->mws->count) {
		ipd_table_fini(dev->mws);
		free(dev->mws);
		dev->mws = NULL;
	}
	return ipd_req_fail(ctx, ENOMEM, "alloc_mw: out of memory");
}

int ipd_handle_dealloc_mw(struct ipd_req_ctx *ctx)
{
	struct ipd_mw *mw = mw_get(ctx->client, ctx->req->dealloc_mw->handle);

	if (!mw)
		return ipd_req_fail(ctx, EINVAL, "dealloc_mw: no MW %u",
				    ctx->req->dealloc_mw->handle);
	mw_unbind(mw);
	mw_free(ctx->client->dev, mw);
	return 0;
}

/* The checks of IBA 10.6.7.2 (bind) that concern the daemon's objects. */
static int bind_check(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
		      struct ipd_mw *mw, struct ipd_mr *mr,
		      const Ipd__BindMw *m)
{
	const uint32_t rights = IBV_ACCESS_REMOTE_READ |
				IBV_ACCESS_REMOTE_WRITE |
				IBV_ACCESS_REMOTE_ATOMIC |
				IBV_ACCESS_ZERO_BASED;

	if (qp->type != IBV_QPT_RC && qp->type != IBV_QPT_UC)
		return ipd_req_fail(ctx, EINVAL, "bind_mw: QP type");
	if (qp->attr.qp_state != IBV_QPS_RTS)
		return ipd_req_fail(ctx, EINVAL, "bind_mw: QP not in RTS");
	if (qp->pd != mw->pd || (m->rkey >> 8) != mw->handle)
		return ipd_req_fail(ctx, EINVAL, "bind_mw: PD or rkey");
	if (!mr)
		return mw->type == IBV_MW_TYPE_1 ? 0 :
		       ipd_req_fail(ctx, EINVAL, "bind_mw: no MR");
	if (mr->pd != mw->pd || !(mr->access & IBV_ACCESS_MW_BIND) ||
	    (m->access & ~rights))
		return ipd_req_fail(ctx, EINVAL, "bind_mw: MR or access");
	/* Remote write/atomic through a window needs local write on the MR. */
	if ((m->access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
	    !(mr->access & IBV_ACCESS_LOCAL_WRITE))
		return ipd_req_fail(ctx, EINVAL, "bind_mw: MR lacks local write");
	if (m->addr + m->length < m->addr || m->length > mr->length ||
	    !ipd_mr_ptr(mr, m->addr, m->length, 0))
		return ipd_req_fail(ctx, EINVAL, "bind_mw: range outside the MR");
	/* A type 2 window is bound once, then invalidated before rebinding. */
	if (mw->type == IBV_MW_TYPE_2 && mw->mr)
		return ipd_req_fail(ctx, EINVAL, "bind_mw: type 2 still bound");
	return 0;
}

static void bind_complete(struct ipd_qp *qp, const Ipd__BindMw *m)
{
	struct ipd_cqe cqe = { 0 };

	if (!m->signaled || !qp->scq)
		return;
	cqe.wr_id = m->wr_id;
	cqe.status = IBV_WC_SUCCESS;
	cqe.opcode = m->invalidate ? IBV_WC_LOCAL_INV : IBV_WC_BIND_MW;
	cqe.qp_num = qp->qpn;
	ipd_cq_post(qp->scq, &cqe);
}

static int local_inv(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
		     const Ipd__BindMw *m)
{
	struct ipd_mw *mw = mw_by_key(qp->dev, m->rkey);

	if (!mw || mw->client != ctx->client || mw->pd != qp->pd ||
	    mw->type != IBV_MW_TYPE_2)
		return ipd_req_fail(ctx, EINVAL, "local_inv: rkey %#x",
				    m->rkey);
	mw_unbind(mw);
	bind_complete(qp, m);
	return 0;
}

int ipd_handle_bind_mw(struct ipd_req_ctx *ctx)
{
	const Ipd__BindMw *m = ctx->req->bind_mw;
	struct ipd_qp *qp = ipd_qp_get(ctx->client, m->qpn);
	struct ipd_mw *mw;
	struct ipd_mr *mr = NULL;

	if (!qp)
		return ipd_req_fail(ctx, EINVAL, "bind_mw: no QP %u", m->qpn);
	if (m->invalidate)
		return local_inv(ctx, qp, m);
	mw = mw_get(ctx->client, m->mw);
	if (!mw)
		return ipd_req_fail(ctx, EINVAL, "bind_mw: no MW %u", m->mw);
	if (m->mr) {
		mr = ipd_mr_get(ctx->client, m->mr);
		if (!mr)
			return ipd_req_fail(ctx, EINVAL, "bind_mw: no MR %u",
					    m->mr);
	}
	if (bind_check(ctx, qp, mw, mr, m))
		return -EINVAL;
	mw_unbind(mw);
	mw->rkey = m->rkey;
	if (mr) {
		mw->mr = mr;
		mr->refcnt++;
		mw->addr = m->addr;
		mw->length = m->length;
		mw->access = m->access;
		mw->qpn = qp->qpn;
	}
	bind_complete(qp, m);
	return 0;
}

/* Before the client's other objects go: drops the MR and PD references. */
void ipd_client_release_mws(struct ipd_client *client)
{
	struct ipd_dev *dev = client->dev;

	for (uint32_t i = 0; dev->mws && i < dev->mws->nslots; i++) {
		struct ipd_mw *mw = dev->mws->slots[i];

		if (!mw || mw->client != client)
			continue;
		mw_unbind(mw);
		mw_free(dev, mw);	/* may free the table: loop re-checks */
	}
}
