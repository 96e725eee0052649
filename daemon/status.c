// SPDX-License-Identifier: MIT
/*
 * The STATUS request (ipathctl): device, GIDs, every QP and the counters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#include "addr.h"
#include "engine.h"
#include "objects.h"
#include "qp_state.h"

/* Every field of struct ipd_counters, by name.  A counter added to
 * ipathd.h shows up in ipathctl once it has a line here. */
#define CNT(f) { #f, offsetof(struct ipd_counters, f) }
static const struct counter_name {
	const char *name;
	size_t off;
} counter_names[] = {
	CNT(pkts_sent), CNT(pkts_rcvd), CNT(bytes_sent), CNT(bytes_rcvd),
	CNT(drop_malformed), CNT(drop_icrc), CNT(drop_no_qp),
	CNT(drop_bad_state), CNT(drop_bad_pkey), CNT(drop_bad_qkey),
	CNT(drop_seq),
	CNT(retransmits), CNT(rnr_naks_sent), CNT(rnr_naks_rcvd),
	CNT(naks_sent), CNT(naks_rcvd), CNT(dup_requests), CNT(timeouts),
	CNT(read_rerequests), CNT(dup_responses), CNT(tail_probes),
	CNT(timewait_acks),
	CNT(ooo_held), CNT(ooo_dropped), CNT(ooo_executed),
	CNT(selective_resends),
	CNT(loop_dropped), CNT(loop_duplicated), CNT(loop_reordered),
	CNT(loop_direct_pkts), CNT(loop_direct_stale),
	CNT(app_tx_pkts), CNT(app_tx_refused),
	CNT(bad_ring_index), CNT(clients_cut_off),
	CNT(udp_tx_errors), CNT(udp_gso_sends), CNT(udp_gso_pkts),
	CNT(udp_sport_evictions),
	CNT(fabric_tx_dropped), CNT(fabric_tx_errors), CNT(fabric_rx_errors),
	CNT(fabric_rx_bad),
	CNT(mr_truncated_faults),
};
#undef CNT
#define N_COUNTERS (sizeof(counter_names) / sizeof(counter_names[0]))

/* "ip:port" / "[ip6]:port", or "" when there is no address. */
static char *addr_text(struct ipd_req_ctx *ctx, const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 16];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		buf[0] = '\0';
	}
	return ipd_req_strdup(ctx, buf);
}

static int status_gids(struct ipd_req_ctx *ctx, struct ipd_dev *dev,
		       Ipd__StatusResp *r)
{
	char buf[INET6_ADDRSTRLEN];

	r->gids = ipd_req_alloc(ctx, (size_t)(dev->ngids + 1) * sizeof(char *));
	if (!r->gids)
		return -ENOMEM;
	for (int i = 0; i < dev->ngids; i++) {
		inet_ntop(AF_INET6, dev->gids[i].gid.raw, buf, sizeof(buf));
		r->gids[i] = ipd_req_strdup(ctx, buf);
		if (!r->gids[i])
			return -ENOMEM;
		r->n_gids++;
	}
	return 0;
}

static int status_qp(struct ipd_req_ctx *ctx, struct ipd_qp *qp,
		     Ipd__QpStatus *s)
{
	char form[16];

	ipd__qp_status__init(s);
	s->qpn = qp->qpn;
	s->qp_type = qp->type;
	s->state = qp->attr.qp_state;
	s->sq_psn = qp->attr.sq_psn;
	s->rq_psn = qp->attr.rq_psn;
	if (qp->attr.qp_state != IBV_QPS_RESET &&
	    qp->attr.qp_state != IBV_QPS_INIT)
		ipd_engine_qp_psns(qp, &s->sq_psn, &s->rq_psn);
	s->dest_qpn = qp->attr.dest_qp_num;
	/* 0: a TGT QP whose creator is gone, held by its openers. */
	s->client_id = qp->client ? qp->client->id : 0;
	s->peer = addr_text(ctx, &qp->av.dst);
	/* The negotiated <local, peer> DMA-capable pair (peer.c). */
	ipd_peer_addr_form(qp->dev, qp, form, sizeof(form));
	s->addr_form = ipd_req_strdup(ctx, form);
	return s->peer && s->addr_form ? 0 : -ENOMEM;
}

static int status_qps(struct ipd_req_ctx *ctx, struct ipd_dev *dev,
		      Ipd__StatusResp *r)
{
	size_t n = 0;
	struct ipd_qp *qp;

	TAILQ_FOREACH(qp, &dev->qps_list, dev_link)
		n++;
	r->qps = ipd_req_alloc(ctx, (n + 1) * sizeof(*r->qps));
	if (!r->qps)
		return -ENOMEM;
	TAILQ_FOREACH(qp, &dev->qps_list, dev_link) {
		Ipd__QpStatus *s = ipd_req_alloc(ctx, sizeof(*s));

		if (!s || status_qp(ctx, qp, s))
			return -ENOMEM;
		r->qps[r->n_qps++] = s;
	}
	return 0;
}

/* Address-form counters (addr.c), after the device's own. */
#define ACNT(f) { #f, offsetof(struct ipd_addr_counters, f) }
static const struct counter_name addr_counter_names[] = {
	ACNT(addr_wrong_form), ACNT(addr_out_of_bounds),
	ACNT(addr_iommu_fault), ACNT(addr_kmaps), ACNT(addr_iotlb_invals),
};
#undef ACNT
#define N_ADDR_COUNTERS \
	(sizeof(addr_counter_names) / sizeof(addr_counter_names[0]))

static void status_addr_counters(Ipd__Counter *c, Ipd__StatusResp *r)
{
	const struct ipd_addr_counters *ac = ipd_addr_counters();

	for (size_t i = 0; i < N_ADDR_COUNTERS; i++) {
		ipd__counter__init(&c[i]);
		c[i].name = (char *)addr_counter_names[i].name;
		c[i].value = *(const uint64_t *)((const char *)ac +
						 addr_counter_names[i].off);
		r->counters[r->n_counters++] = &c[i];
	}
}

static int status_peers(struct ipd_req_ctx *ctx, Ipd__StatusResp *r)
{
	int n = ipd_peer_count();
	char buf[256];

	r->peers = ipd_req_alloc(ctx, (size_t)(n + 1) * sizeof(char *));
	if (!r->peers)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		if (ipd_peer_describe(i, buf, sizeof(buf)))
			continue;
		r->peers[r->n_peers] = ipd_req_strdup(ctx, buf);
		if (!r->peers[r->n_peers])
			return -ENOMEM;
		r->n_peers++;
	}
	return 0;
}

static int status_counters(struct ipd_req_ctx *ctx, struct ipd_dev *dev,
			   Ipd__StatusResp *r)
{
	Ipd__Counter *c = ipd_req_alloc(ctx, (N_COUNTERS + N_ADDR_COUNTERS) *
					     sizeof(*c));

	r->counters = ipd_req_alloc(ctx, (N_COUNTERS + N_ADDR_COUNTERS) *
					     sizeof(*r->counters));
	if (!c || !r->counters)
		return -ENOMEM;
	for (size_t i = 0; i < N_COUNTERS; i++) {
		ipd__counter__init(&c[i]);
		c[i].name = (char *)counter_names[i].name;
		c[i].value = *(const uint64_t *)((const char *)&dev->cnt +
						 counter_names[i].off);
		r->counters[i] = &c[i];
	}
	r->n_counters = N_COUNTERS;
	status_addr_counters(c + N_COUNTERS, r);
	return 0;
}

int ipd_handle_status(struct ipd_req_ctx *ctx)
{
	struct ipd_dev *dev = ctx->client->dev;
	Ipd__StatusResp *r = ipd_req_alloc(ctx, sizeof(*r));
	struct ipd_client *c;

	if (!r)
		return ipd_req_fail(ctx, ENOMEM, "status: out of memory");
	ipd__status_resp__init(r);
	r->dev_name = ipd_req_strdup(ctx, dev->cfg->dev_name);
	if (!r->dev_name || status_gids(ctx, dev, r) ||
	    status_qps(ctx, dev, r) || status_counters(ctx, dev, r) ||
	    status_peers(ctx, r))
		return ipd_req_fail(ctx, ENOMEM, "status: out of memory");
	TAILQ_FOREACH(c, &dev->clients, link)
		r->clients++;
	ctx->resp->op_case = IPD__RESPONSE__OP_STATUS;
	ctx->resp->status = r;
	return 0;
}
