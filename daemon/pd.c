// SPDX-License-Identifier: MIT
/*
 * Protection domains.  A PD is only a name and a count of the objects
 * created on it; the checks that an MR, SRQ, AH and QP share a PD are the
 * engine's (IBA 10.2.3: an lkey/rkey is valid only on the QP's PD).
 */
#include <errno.h>
#include <stdlib.h>

#include "objects.h"

struct ipd_pd *ipd_pd_lookup(struct ipd_dev *dev, uint32_t handle)
{
	return ipd_table_get(&dev->pds, handle);
}

struct ipd_pd *ipd_pd_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_pd *pd = ipd_pd_lookup(c->dev, handle);

	return pd && pd->client == c ? pd : NULL;
}

int ipd_handle_alloc_pd(struct ipd_req_ctx *ctx)
{
	struct ipd_dev *dev = ctx->client->dev;
	Ipd__AllocPdResp *r = ipd_req_alloc(ctx, sizeof(*r));
	struct ipd_pd *pd = calloc(1, sizeof(*pd));

	if (!r || !pd)
		goto err_nomem;
	pd->handle = ipd_table_insert(&dev->pds, pd);
	if (!pd->handle)
		goto err_nomem;
	pd->client = ctx->client;
	pd->serial = ++dev->obj_serial;

	ipd__alloc_pd_resp__init(r);
	r->handle = pd->handle;
	ctx->resp->op_case = IPD__RESPONSE__OP_ALLOC_PD;
	ctx->resp->alloc_pd = r;
	return 0;

err_nomem:
	free(pd);
	return ipd_req_fail(ctx, ENOMEM, "alloc_pd: out of PDs or memory");
}

int ipd_pd_destroy(struct ipd_pd *pd)
{
	/* Verbs: ibv_dealloc_pd fails with EBUSY while objects use the PD. */
	if (pd->refcnt)
		return -EBUSY;
	ipd_table_remove(&pd->client->dev->pds, pd->handle);
	free(pd);
	return 0;
}
