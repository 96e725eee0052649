// SPDX-License-Identifier: MIT
/*
 * The loopback link: packets between QPs of this daemon.  xmit only queues;
 * ipd_engine_poll delivers, so a responder never runs inside the requester
 * that sent to it.  Optional impairment (loss, duplication, reordering, in
 * percent, from the [loopback] config) exercises the reliability code.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_priv.h"

struct loop_link {
	struct ipd_link link;
	TAILQ_HEAD(, ipd_pkt) queue;
	uint64_t rng;
};

static double loop_rand_pct(struct loop_link *l)
{
	/* xorshift64*: cheap, good enough for test impairment */
	l->rng ^= l->rng >> 12;
	l->rng ^= l->rng << 25;
	l->rng ^= l->rng >> 27;
	return (double)((l->rng * 0x2545F4914F6CDD1DULL) >> 11) /
	       (double)(1ULL << 53) * 100.0;
}

static struct ipd_pkt *loop_clone(struct ipd_dev *dev,
				  const struct ipd_pkt *pkt)
{
	struct ipd_pkt *c = ipd_pkt_alloc(dev);

	if (!c)
		return NULL;
	memcpy(c->hdr, pkt->hdr, pkt->len);
	c->len = pkt->len;
	c->src = pkt->src;
	c->dst = pkt->dst;
	c->sport = pkt->sport;
	return c;
}

static int loop_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	struct loop_link *l = link->priv;
	struct ipd_dev *dev = link->dev;
	const struct ipd_config *cfg = dev->cfg;
	struct ipd_pkt *dup;

	if (cfg->loop_loss > 0 && loop_rand_pct(l) < cfg->loop_loss) {
		dev->cnt.loop_dropped++;
		ipd_pkt_free(dev, pkt);
		return 0;
	}
	if (cfg->loop_dup > 0 && loop_rand_pct(l) < cfg->loop_dup) {
		dup = loop_clone(dev, pkt);
		if (dup) {
			dev->cnt.loop_duplicated++;
			TAILQ_INSERT_TAIL(&l->queue, dup, link);
		}
	}
	if (cfg->loop_reorder > 0 && !TAILQ_EMPTY(&l->queue) &&
	    loop_rand_pct(l) < cfg->loop_reorder) {
		/* Overtake everything still queued. */
		dev->cnt.loop_reordered++;
		TAILQ_INSERT_HEAD(&l->queue, pkt, link);
		return 0;
	}
	TAILQ_INSERT_TAIL(&l->queue, pkt, link);
	return 0;
}

static void loop_destroy(struct ipd_link *link)
{
	struct loop_link *l = link->priv;
	struct ipd_pkt *pkt;

	while ((pkt = TAILQ_FIRST(&l->queue))) {
		TAILQ_REMOVE(&l->queue, pkt, link);
		ipd_pkt_free(link->dev, pkt);
	}
	free(l);
}

static const struct ipd_link_ops loop_ops = {
	.name = "loopback",
	.xmit = loop_xmit,
	.destroy = loop_destroy,
};

struct ipd_link *ipd_link_loop_create(struct ipd_dev *dev)
{
	struct loop_link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->link.ops = &loop_ops;
	l->link.dev = dev;
	l->link.priv = l;
	TAILQ_INIT(&l->queue);
	l->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL | 1;
	return &l->link;
}

bool ipd_link_loop_poll(struct ipd_link *link)
{
	struct loop_link *l = link->priv;
	TAILQ_HEAD(, ipd_pkt) batch = TAILQ_HEAD_INITIALIZER(batch);
	struct ipd_pkt *pkt;

	if (TAILQ_EMPTY(&l->queue))
		return false;
	/* Deliver this batch only: answers it causes go out next round. */
	TAILQ_CONCAT(&batch, &l->queue, link);
	while ((pkt = TAILQ_FIRST(&batch))) {
		TAILQ_REMOVE(&batch, pkt, link);
		ipd_engine_rx(link->dev, pkt);
	}
	return true;
}
