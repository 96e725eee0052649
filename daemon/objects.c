// SPDX-License-Identifier: MIT
/*
 * Object lifetime across types: the DESTROY request and freeing what a
 * departing client left behind.  One table says, per object type, where
 * its handles live, who owns an object and how it is destroyed.
 */
#include <errno.h>
#include <stddef.h>

#include "objects.h"

struct obj_kind {
	const char *name;
	size_t table;                       /* offsetof(struct ipd_dev, ...) */
	struct ipd_client *(*owner)(void *obj);
	int (*destroy)(void *obj);
};

#define OBJ_GLUE(type)                                                      \
	static struct ipd_client *type##_owner(void *obj)                  \
	{                                                                  \
		return ((struct ipd_##type *)obj)->client;                 \
	}                                                                  \
	static int type##_destroy(void *obj)                               \
	{                                                                  \
		return ipd_##type##_destroy(obj);                          \
	}

OBJ_GLUE(pd)
OBJ_GLUE(mr)
OBJ_GLUE(cq)
OBJ_GLUE(srq)
OBJ_GLUE(qp)
OBJ_GLUE(ah)
OBJ_GLUE(xrcd)

#define OBJ_KIND(type, tbl)                                                 \
	{ #type, offsetof(struct ipd_dev, tbl), type##_owner, type##_destroy }

/* Indexed by enum ipd_obj_type, which has the values of ObjType. */
static const struct obj_kind obj_kinds[] = {
	[IPD_OBJ_PD] = OBJ_KIND(pd, pds),
	[IPD_OBJ_MR] = OBJ_KIND(mr, mrs),
	[IPD_OBJ_CQ] = OBJ_KIND(cq, cqs),
	[IPD_OBJ_SRQ] = OBJ_KIND(srq, srqs),
	[IPD_OBJ_QP] = OBJ_KIND(qp, qps),
	[IPD_OBJ_AH] = OBJ_KIND(ah, ahs),
	[IPD_OBJ_XRCD] = OBJ_KIND(xrcd, xrcds),
};

_Static_assert((int)IPD_OBJ_PD == IPD__OBJ_TYPE__OBJ_PD &&
	       (int)IPD_OBJ_XRCD == IPD__OBJ_TYPE__OBJ_XRCD,
	       "ipd_obj_type follows ObjType");

/* Dependants before what they depend on (ipathd.h). */
static const enum ipd_obj_type release_order[] = {
	IPD_OBJ_QP, IPD_OBJ_SRQ, IPD_OBJ_XRCD, IPD_OBJ_CQ, IPD_OBJ_AH,
	IPD_OBJ_MR, IPD_OBJ_PD,
};

static struct ipd_table *kind_table(struct ipd_dev *dev,
				    const struct obj_kind *k)
{
	return (struct ipd_table *)((char *)dev + k->table);
}

int ipd_handle_destroy(struct ipd_req_ctx *ctx)
{
	const Ipd__Destroy *m = ctx->req->destroy;
	const struct obj_kind *k;
	void *obj;
	int err;

	if ((int)m->type < (int)IPD_OBJ_PD || (int)m->type > (int)IPD_OBJ_XRCD)
		return ipd_req_fail(ctx, EINVAL, "destroy: bad object type %d",
				    (int)m->type);
	k = &obj_kinds[m->type];
	obj = ipd_table_get(kind_table(ctx->client->dev, k), m->handle);
	/* Another client's handle is as good as none (design.md). */
	if (!obj || k->owner(obj) != ctx->client)
		return ipd_req_fail(ctx, EINVAL, "destroy: no %s %u", k->name,
				    m->handle);
	err = k->destroy(obj);
	if (err)
		return ipd_req_fail(ctx, -err, "destroy: %s %u is in use",
				    k->name, m->handle);
	return 0;
}

static void release_kind(struct ipd_client *client, enum ipd_obj_type type)
{
	const struct obj_kind *k = &obj_kinds[type];
	struct ipd_table *t = kind_table(client->dev, k);

	for (uint32_t i = 0; i < t->nslots; i++) {
		void *obj = t->slots[i];

		if (!obj || k->owner(obj) != client)
			continue;
		/* The engine dropped its MR references with the QPs. */
		if (type == IPD_OBJ_MR)
			((struct ipd_mr *)obj)->refcnt = 0;
		if (k->destroy(obj))
			ipd_warn("client %u: %s %u still busy at release",
				 client->id, k->name, t->base + i);
	}
}

void ipd_client_release_objects(struct ipd_client *client)
{
	/* Its ibv_open_qp uses first: they hold its XRCDs. */
	ipd_xrcd_release_opens(client);
	for (size_t i = 0; i < sizeof(release_order) / sizeof(release_order[0]); i++)
		release_kind(client, release_order[i]);
}
