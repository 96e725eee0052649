// SPDX-License-Identifier: MIT
/*
 * Packet buffers: a per-device free list, so the data path never calls
 * malloc once warm.
 */
#include <stdlib.h>

#include "engine_priv.h"

struct ipd_pkt *ipd_pkt_alloc(struct ipd_dev *dev)
{
	struct ipd_engine *eng = dev->engine;
	struct ipd_pkt *pkt = TAILQ_FIRST(&eng->free_pkts);

	if (pkt) {
		TAILQ_REMOVE(&eng->free_pkts, pkt, link);
		eng->nfree--;
	} else {
		pkt = malloc(sizeof(*pkt));
		if (!pkt)
			return NULL;
	}
	pkt->hdr = pkt->buf + IPD_PKT_HEADROOM;
	pkt->len = 0;
	pkt->mask = 0;
	pkt->payload = NULL;
	pkt->paylen = 0;
	pkt->npsn = 1;
	pkt->ref = NULL;
	pkt->sport = 0;
	pkt->ip_id = 0;
	pkt->src.ss_family = AF_UNSPEC;
	pkt->dst.ss_family = AF_UNSPEC;
	return pkt;
}

void ipd_pkt_free(struct ipd_dev *dev, struct ipd_pkt *pkt)
{
	struct ipd_engine *eng = dev->engine;

	if (!pkt)
		return;
	if (eng->nfree >= IPD_PKT_FREE_MAX) {
		free(pkt);
		return;
	}
	TAILQ_INSERT_HEAD(&eng->free_pkts, pkt, link);
	eng->nfree++;
}

void ipd_pkt_pool_drain(struct ipd_dev *dev)
{
	struct ipd_engine *eng = dev->engine;
	struct ipd_pkt *pkt;

	while ((pkt = TAILQ_FIRST(&eng->free_pkts))) {
		TAILQ_REMOVE(&eng->free_pkts, pkt, link);
		free(pkt);
	}
	eng->nfree = 0;
}
