// SPDX-License-Identifier: MIT
/*
 * Selective recovery between ipathd peers (docs/design.md "Selective
 * recovery").  IBA 9.7.5.1.2 lets an RC responder accept only the PSN it
 * expects: everything after a lost packet is dropped and the requester
 * sends it all again (go back N).  When both ends are ipathd daemons that
 * agreed on it (FEATURE_SELECTIVE in the capability exchange, or the same
 * daemon for a loopback QP), the responder instead keeps the SEND/WRITE
 * packets that arrive ahead of the expected PSN, still NAKs the first
 * missing PSN once, and when that packet arrives runs the kept ones in
 * PSN order through the ordinary responder steps (resp.c), as if they
 * had just arrived in order.  A further hole behind them is NAKed at once.
 * The NAK says in the BTH's reserved bits how many PSNs are missing
 * (hdr.h), and the requester (req.c, comp.c) sends those again, nothing
 * else.
 *
 * READ and atomic requests are never kept: one arriving early is dropped
 * as before and NAKed in turn, so their execution order and the
 * responder's resources are those of go back N.  What is kept is bounded
 * per QP (the PSN window) and per device; beyond that packets are
 * dropped as before and counted (ooo_dropped).
 */
#include "addr.h"
#include "engine_priv.h"

bool ipd_ooo_on(const struct ipd_qp *qp)
{
	if (!ipd_qpt_reliable(qp->type) || !qp->dev->cfg->selective_retransmit)
		return false;
	/* Both ends are this daemon, with this configuration. */
	if (qp->av.local)
		return true;
	return ipd_peer_selective(qp->dev, &qp->av);
}

static struct ipd_pkt **ooo_slot(struct ipd_engine_qp *e, uint32_t psn)
{
	/* 2^24 PSNs are a multiple of the window: slots survive the wrap. */
	return &e->ooo[psn % IPD_OOO_WINDOW];
}

static void ooo_forget(struct ipd_qp *qp, struct ipd_pkt **slot)
{
	ipd_pkt_free(qp->dev, *slot);
	*slot = NULL;
	qp->eng->ooo_count--;
	qp->dev->engine->ooo_held--;
}

bool ipd_ooo_hold(struct ipd_qp *qp, struct ipd_pkt *pkt)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_engine *eng = qp->dev->engine;
	struct ipd_pkt **slot;

	if (!ipd_ooo_on(qp))
		return false;
	if (!(pkt->mask & IPD_WRITE_OR_SEND_MASK)) {
		e->ooo_lost = true; /* READ/atomic: resent by going back N */
		return false;
	}
	slot = ooo_slot(e, pkt->psn);
	if (*slot && (*slot)->psn == pkt->psn)
		return false; /* kept already: this copy goes */
	if (ipd_psn_diff(pkt->psn, e->rq_psn) >= IPD_OOO_WINDOW ||
	    (!*slot && eng->ooo_held >= IPD_OOO_DEV_MAX)) {
		qp->dev->cnt.ooo_dropped++;
		e->ooo_lost = true;
		return false;
	}
	if (*slot)
		ooo_forget(qp, slot); /* left behind by a READ's PSN range */
	*slot = pkt;
	e->ooo_count++;
	eng->ooo_held++;
	qp->dev->cnt.ooo_held++;
	return true;
}

struct ipd_pkt *ipd_ooo_take(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_pkt **slot, *pkt;

	if (!e->ooo_count)
		return NULL;
	slot = ooo_slot(e, e->rq_psn);
	pkt = *slot;
	if (!pkt || pkt->psn != e->rq_psn)
		return NULL;
	*slot = NULL;
	e->ooo_count--;
	qp->dev->engine->ooo_held--;
	qp->dev->cnt.ooo_executed++;
	return pkt;
}

/* Kept packets the expected PSN has passed (a READ's range covered them:
 * not a packet the requester sent) are freed. */
static void ooo_purge_passed(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	unsigned int i;

	for (i = 0; i < IPD_OOO_WINDOW && e->ooo_count; i++)
		if (e->ooo[i] && ipd_psn_cmp(e->ooo[i]->psn, e->rq_psn) < 0)
			ooo_forget(qp, &e->ooo[i]);
}

/* PSNs missing from the expected one to the first kept packet. */
static uint32_t ooo_hole(struct ipd_engine_qp *e)
{
	uint32_t d;

	for (d = 1; d < IPD_OOO_WINDOW; d++) {
		struct ipd_pkt *pkt = *ooo_slot(e, ipd_psn_add(e->rq_psn, d));

		if (pkt && pkt->psn == ipd_psn_add(e->rq_psn, d))
			return d;
	}
	return 0;
}

bool ipd_ooo_defer_ack(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!e->ooo_count)
		return false;
	e->ooo_ack_owed = true;
	/* completions come before that ACK: no client request may overtake
	 * it (app_tx.c; published again, after a flush, by the next poll) */
	ipd_app_tx_clear(qp);
	return true;
}

void ipd_ooo_settle(struct ipd_qp *qp, bool ran, bool stalled)
{
	struct ipd_engine_qp *e = qp->eng;
	bool owed = e->ooo_ack_owed;

	e->ooo_ack_owed = false;
	ooo_purge_passed(qp);
	/* An RNR or error NAK went out for the packet that stopped the
	 * run; it acknowledges everything before it. */
	if (stalled)
		return;
	if (e->ooo_count && ran) {
		/* IBA 9.7.5.1.2 for the next hole behind the kept packets
		 * that ran: NAK it once now (it also acknowledges them), not
		 * when a later packet comes: the requester may have nothing
		 * more to send.  A hole before any kept packet is the one
		 * the last NAK named: its packets may be on their way. */
		if (!e->nak_sent) {
			e->nak_sent = true;
			ipd_resp_nak_seq(qp, ooo_hole(e));
		}
		return;
	}
	/* Everything kept ran, but a request behind the hole was dropped
	 * (a READ/atomic, or no room): the requester resent only the hole,
	 * so NAK what follows with no hole length, which sends it back N
	 * from here now instead of after its ACK timeout.  The NAK also
	 * acknowledges what ran. */
	if (!e->ooo_count && e->ooo_lost) {
		e->ooo_lost = false;
		e->nak_sent = true;
		ipd_resp_nak_seq(qp, 0);
		return;
	}
	if (owed)
		ipd_resp_ack_last(qp);
}

void ipd_ooo_flush(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	unsigned int i;

	for (i = 0; i < IPD_OOO_WINDOW && e->ooo_count; i++)
		if (e->ooo[i])
			ooo_forget(qp, &e->ooo[i]);
	e->ooo_ack_owed = false;
	e->ooo_lost = false;
}
