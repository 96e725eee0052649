// SPDX-License-Identifier: MIT
/*
 * Address handles and address vectors.  On RoCEv2 an address vector is a
 * GRH: the destination GID is an IPv4-mapped or IPv6 address and the
 * source GID index picks the local address packets leave from.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "objects.h"

#define IPD_PORT_NUM 1

static bool gid_is_v4mapped(const union ibv_gid *gid)
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return memcmp(gid->raw, prefix, sizeof(prefix)) == 0;
}

static bool gid_is_zero(const union ibv_gid *gid)
{
	static const union ibv_gid zero;

	return memcmp(gid, &zero, sizeof(zero)) == 0;
}

/* The UDP/IP destination a destination GID stands for. */
static void av_dst_from_gid(const union ibv_gid *gid, uint16_t port,
			    struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (gid_is_v4mapped(gid)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, gid->raw + 12, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, gid->raw, 16);
	}
}

int ipd_av_resolve(struct ipd_dev *dev, const struct ibv_ah_attr *attr,
		   struct ipd_av *av)
{
	const struct ibv_global_route *grh = &attr->grh;
	const struct ipd_gid *sgid;

	/* RoCE has no LIDs: every address vector must carry a GRH. */
	if (!attr->is_global || attr->port_num != IPD_PORT_NUM)
		return -EINVAL;
	/* GID 0 is the link-local GID made from the node GUID: it has no
	 * IP address to send from. */
	if (grh->sgid_index == 0 || grh->sgid_index >= dev->ngids)
		return -EINVAL;
	sgid = &dev->gids[grh->sgid_index];
	if (sgid->addr.ss_family != AF_INET && sgid->addr.ss_family != AF_INET6)
		return -EINVAL;
	/* No multicast; the zero GID names nobody. */
	if (gid_is_zero(&grh->dgid) || grh->dgid.raw[0] == 0xff)
		return -EINVAL;
	if ((sgid->addr.ss_family == AF_INET) != gid_is_v4mapped(&grh->dgid))
		return -EINVAL;

	memset(av, 0, sizeof(*av));
	av->dgid = grh->dgid;
	av->sgid_index = grh->sgid_index;
	av->hop_limit = grh->hop_limit;
	av->traffic_class = grh->traffic_class;
	av->flow_label = grh->flow_label & 0xfffff;
	av->sl = attr->sl;
	av_dst_from_gid(&grh->dgid, (uint16_t)dev->cfg->udp_port, &av->dst);
	av->src = sgid->addr;
	av->local = ipd_gid_find(dev, &grh->dgid) >= 0;
	return 0;
}

struct ipd_ah *ipd_ah_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_ah *ah = ipd_table_get(&c->dev->ahs, handle);

	return ah && ah->client == c ? ah : NULL;
}

int ipd_handle_create_ah(struct ipd_req_ctx *ctx)
{
	const Ipd__CreateAh *m = ctx->req->create_ah;
	struct ipd_dev *dev = ctx->client->dev;
	struct ibv_ah_attr attr;
	Ipd__CreateAhResp *r;
	struct ipd_ah *ah;
	struct ipd_pd *pd;
	struct ipd_av av;

	pd = ipd_pd_get(ctx->client, m->pd);
	if (!pd)
		return ipd_req_fail(ctx, EINVAL, "create_ah: no PD %u", m->pd);
	ipd_ah_attr_from_msg(&attr, m->attr);
	if (ipd_av_resolve(dev, &attr, &av))
		return ipd_req_fail(ctx, EINVAL,
				    "create_ah: unusable address (GRH required, sgid index 1..%d)",
				    dev->ngids - 1);
	r = ipd_req_alloc(ctx, sizeof(*r));
	ah = calloc(1, sizeof(*ah));
	if (!r || !ah)
		goto err_nomem;
	ah->handle = ipd_table_insert(&dev->ahs, ah);
	if (!ah->handle)
		goto err_nomem;
	ah->client = ctx->client;
	ah->pd = pd;
	ah->av = av;
	pd->refcnt++;

	ipd__create_ah_resp__init(r);
	r->handle = ah->handle;
	ctx->resp->op_case = IPD__RESPONSE__OP_CREATE_AH;
	ctx->resp->create_ah = r;
	return 0;

err_nomem:
	free(ah);
	return ipd_req_fail(ctx, ENOMEM, "create_ah: out of AHs or memory");
}

int ipd_ah_destroy(struct ipd_ah *ah)
{
	ipd_table_remove(&ah->client->dev->ahs, ah->handle);
	ah->pd->refcnt--;
	free(ah);
	return 0;
}
