// SPDX-License-Identifier: MIT
/*
 * Application transmit (docs/design.md "Application transmit").
 *
 * While an RC send queue is idle (every WQE sent and acknowledged), the
 * daemon publishes in the ring header the ring index and the PSN the next
 * WQE will get, and where its packet goes.  The provider may then send a
 * single-packet SEND or WRITE (inline or from its SGEs) itself, from a UDP
 * socket of its own bound to the QP's source port where it can (the flow
 * stays one, whoever sends), and post the WQE marked with the PSN it used:
 * the daemon takes that WQE like any other but does not transmit it again.
 * Everything else (ACKs, retransmission, completions) stays here.  The
 * round trip loses one hand-over (application to daemon) per message.
 *
 * The daemon trusts nothing of it: a WQE marked sent is taken as sent only
 * when its index and PSN are the ones published; otherwise it is sent as
 * usual and whatever the client sent is a stray packet for the peer.
 */
#include <stdatomic.h>
#include <string.h>

#include "engine_priv.h"
#include "ipathd/icrc.h"

/* The QP's packets may go out from its client: RC over the UDP link to
 * another host, nothing capturing (a capture shows what the daemon sends),
 * an ACK timeout set (a packet the client could not send is sent again
 * only by the retransmission timer). */
static bool app_tx_eligible(const struct ipd_qp *qp)
{
	const struct ipd_dev *dev = qp->dev;

	return dev->cfg->app_tx && qp->type == IBV_QPT_RC && qp->sq.size &&
	       qp->sq.hdr && !qp->av.local && dev->net_link &&
	       dev->net_link->app_tx && !dev->captures &&
	       qp->attr.qp_state == IBV_QPS_RTS && qp->attr.timeout;
}

/* Idle: every WQE sent and acknowledged, and no response of the
 * responder waiting behind READ data (the client's request must not
 * overtake it, resp.c resp_send). */
static bool app_tx_idle(struct ipd_qp *qp, const struct ipd_engine_qp *e)
{
	return e->comp_idx == e->sq_head && e->req_idx == e->sq_head &&
	       e->req_psn == e->comp_psn && !e->rnr_wait && !e->err_pending &&
	       qp->sq.cons == e->sq_head && !ipd_queue_ready(&qp->sq) &&
	       ipd_resp_quiet(qp);
}

/* The source port the daemon's packets of the QP leave from, which the
 * client may bind too (net.c derives each packet's); the link keeps it
 * for the flow until app_tx_release. */
static uint16_t app_tx_flow_port(struct ipd_qp *qp)
{
	struct ipd_link *link = qp->dev->net_link;
	struct ipd_engine_qp *e = qp->eng;
	uint16_t sport =
		ipd_udp_sport(qp->av.flow_label, qp->qpn, qp->attr.dest_qp_num);
	uint16_t port;

	if (!link->ops->flow_port)
		return 0;
	port = link->ops->flow_port(link, &qp->av.dst, sport, &e->app_tx_held);
	if (e->app_tx_held) {
		e->app_tx_held_sport = sport;
		e->app_tx_held_dst = qp->av.dst;
	}
	return port;
}

static void app_tx_release(struct ipd_qp *qp)
{
	struct ipd_link *link = qp->dev->net_link;
	struct ipd_engine_qp *e = qp->eng;

	if (!e->app_tx_held)
		return;
	e->app_tx_held = false;
	link->ops->flow_release(link, &e->app_tx_held_dst,
				e->app_tx_held_sport);
}

static void app_tx_store(struct ipd_qp *qp, uint64_t w)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_ring_hdr *h = qp->sq.hdr;

	if (e->app_tx_pub == w)
		return;
	if (w && !e->app_tx_pub) {
		/* responses queued earlier leave first (resp.c resp_send) */
		ipd_net_flush(qp->dev);
		ipd_eng_addr_key(&qp->av.src, h->app_tx_src);
		ipd_eng_addr_key(&qp->av.dst, h->app_tx_dst);
		h->app_tx_dqpn = qp->attr.dest_qp_num;
		h->app_tx_mtu = (uint16_t)ipd_eng_mtu(qp);
		h->app_tx_dport = qp->dev->cfg->udp_port
					  ? (uint16_t)qp->dev->cfg->udp_port
					  : IPD_ROCE_UDP_PORT;
		h->app_tx_sport = app_tx_flow_port(qp);
	}
	atomic_store_explicit(&h->app_tx, w, memory_order_release);
	e->app_tx_pub = w;
	if (w)
		e->app_tx_last = w;
	else
		app_tx_release(qp);
}

void ipd_app_tx_publish(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!e || !qp->sq.hdr)
		return;
	if (app_tx_eligible(qp) && app_tx_idle(qp, e))
		app_tx_store(qp, ipd_app_tx_word(e->sq_head, e->req_psn));
	else
		app_tx_store(qp, 0);
}

void ipd_app_tx_clear(struct ipd_qp *qp)
{
	if (qp->eng && qp->sq.hdr)
		app_tx_store(qp, 0);
}

void ipd_app_tx_responded(struct ipd_qp *qp)
{
	if (qp->eng->app_tx_pub)
		ipd_net_flush(qp->dev);
}

/* The receive completion may show before its ACK is handed to the kernel,
 * and the client react to it at once, while the ACK's sendto runs: the
 * client waits for the flag to drop before it sends (provider/app_tx.c),
 * so its next request still leaves after the ACK, as from a NIC. */
bool ipd_app_tx_owe_ack(struct ipd_qp *qp)
{
	/* Behind queued READ data the ACK waits, and resp_send withdraws
	 * the word before the completion shows. */
	if (!qp->eng->app_tx_pub || !ipd_resp_quiet(qp))
		return false;
	/* published to the client by the completion's release */
	atomic_store_explicit(&qp->sq.hdr->app_tx_ack_owed, 1,
			      memory_order_relaxed);
	return true;
}

void ipd_app_tx_ack_paid(struct ipd_qp *qp)
{
	ipd_net_flush(qp->dev);
	atomic_store_explicit(&qp->sq.hdr->app_tx_ack_owed, 0,
			      memory_order_release);
}

enum ipd_app_tx_verdict ipd_app_tx_judge(const struct ipd_qp *qp,
					 const struct ipd_swqe *swqe,
					 uint32_t idx, uint32_t psn)
{
	uint64_t w = qp->eng->app_tx_last;

	if (!(swqe->wr->flags & IPD_WQE_F_APP_SENT))
		return IPD_APP_TX_NONE;
	if (!w || ipd_app_tx_idx(w) != idx || ipd_app_tx_psn(w) != psn ||
	    swqe->wr->app_psn != psn)
		return IPD_APP_TX_REFUSE;
	return IPD_APP_TX_TAKE;
}

void ipd_app_tx_settle(struct ipd_qp *qp, enum ipd_app_tx_verdict v)
{
	if (v == IPD_APP_TX_NONE)
		return;
	/* One WQE per publication: the next needs a new one. */
	qp->eng->app_tx_last = 0;
	if (v == IPD_APP_TX_TAKE)
		qp->dev->cnt.app_tx_pkts++;
	else
		qp->dev->cnt.app_tx_refused++;
}

bool ipd_app_tx_catch_up(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	/* posted since, or taken but not sent yet (out of packets) */
	if (!e->app_tx_last ||
	    (!ipd_queue_ready(&qp->sq) && e->req_idx == e->sq_head))
		return false;
	return ipd_req_run(qp);
}
