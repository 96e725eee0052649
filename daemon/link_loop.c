// SPDX-License-Identifier: MIT
/*
 * The loopback link: packets between QPs of this daemon.  xmit only queues;
 * ipd_engine_poll delivers, so a responder never runs inside the requester
 * that sent to it.  Optional impairment (loss, duplication, reordering, in
 * percent, from the [loopback] config) exercises the reliability code.
 *
 * Direct packets (docs/design.md "Direct loopback"): an RC message's
 * payload stays in the sender's memory and the receiver copies it from
 * there, once, straight into its own; one such packet may stand for many
 * path-MTU packets.  The helpers for them live here, beside the only link
 * that carries them.
 */
#include <stddef.h>
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

/* ---- direct packets ------------------------------------------------ */

/* The reference sits after the largest headers, where a payload would. */
#define LOOP_REF_OFF (IPD_PKT_HEADROOM + IPD_PKT_HDR_MAX)
_Static_assert(LOOP_REF_OFF % 8 == 0 &&
		       LOOP_REF_OFF + sizeof(struct ipd_pkt_ref) <=
			       sizeof(((struct ipd_pkt *)0)->buf),
	       "a packet buffer holds a direct packet's reference");

struct ipd_pkt_ref *ipd_pkt_ref_init(struct ipd_pkt *pkt)
{
	pkt->ref = (struct ipd_pkt_ref *)(void *)(pkt->buf + LOOP_REF_OFF);
	memset(pkt->ref, 0, offsetof(struct ipd_pkt_ref, sge));
	return pkt->ref;
}

void ipd_pkt_ref_copy(struct ipd_pkt *c, const struct ipd_pkt *pkt)
{
	struct ipd_pkt_ref *r = ipd_pkt_ref_init(c);

	*r = *pkt->ref;
	if (r->src.sge)
		r->src.sge = r->sge + (pkt->ref->src.sge - pkt->ref->sge);
	c->npsn = pkt->npsn;
	c->paylen = pkt->paylen;
}

bool ipd_eng_direct_ok(const struct ipd_qp *qp, const struct ipd_av *av)
{
	return av->local && qp->dev->cfg->loop_direct && !qp->dev->captures &&
	       ipd_qpt_reliable(qp->type);
}

/* Serials start at 1 (++dev->obj_serial), so qp_serial 0 means "no QP". */
void ipd_pkt_ref_bind(struct ipd_pkt_ref *r, const struct ipd_pd *pd,
		      const struct ipd_qp *qp)
{
	r->pd_handle = pd->handle;
	r->pd_serial = pd->serial;
	r->qpn = qp ? qp->qpn : 0;
	r->qp_serial = qp ? qp->serial : 0;
}

/* The source objects of r as they were when it was sent, or false. */
static bool ref_resolve(struct ipd_dev *dev, const struct ipd_pkt_ref *r,
			struct ipd_mem *src)
{
	struct ipd_pd *pd = ipd_pd_lookup(dev, r->pd_handle);
	struct ipd_qp *qp = NULL;

	if (!pd || pd->serial != r->pd_serial)
		return false;
	if (r->qp_serial) {
		qp = ipd_qp_lookup(dev, r->qpn);
		if (!qp || qp->serial != r->qp_serial)
			return false;
	}
	src->pd = pd;
	src->qp = qp;
	return true;
}

int ipd_pkt_ref_copy_out(struct ipd_dev *dev, const struct ipd_pkt *pkt,
			 uint32_t skip, uint32_t len, struct ipd_mem *dst,
			 uint32_t msg_off, unsigned int mtu)
{
	struct ipd_mem src = pkt->ref->src;
	int status = -1;

	if (ref_resolve(dev, pkt->ref, &src)) {
		ipd_mem_skip(&src, skip);
		status = ipd_mem_copy(dev, dst, &src, len, msg_off, mtu);
	}
	if (status < 0)
		dev->cnt.loop_direct_stale++;
	return status;
}

/* ---- the link ------------------------------------------------------- */

static struct ipd_pkt *loop_clone(struct ipd_dev *dev,
				  const struct ipd_pkt *pkt)
{
	struct ipd_pkt *c = ipd_pkt_alloc(dev);

	if (!c)
		return NULL;
	if (pkt->ref) {
		/* headers only: the payload is referenced */
		memcpy(c->hdr, pkt->hdr, ipd_opcode_info[pkt->opcode].length);
		ipd_pkt_ref_copy(c, pkt);
	} else {
		memcpy(c->hdr, pkt->hdr, pkt->len);
	}
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
