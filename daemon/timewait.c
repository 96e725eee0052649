// SPDX-License-Identifier: MIT
/*
 * Time-wait for destroyed RC QPs (an ipathd addition; IBA has no such
 * state, TCP's TIME-WAIT is the model).
 *
 * The last ACK of a connection can be lost after its sender destroyed the
 * QP: ibv_rc_pingpong's client exits as soon as its last receive
 * completes, while the server still waits for the ACK of that last SEND.
 * The server's requester then retransmits to a QPN nobody answers; with
 * retry_cnt 7 (endless, as rxe treats it) it waits forever, with fewer
 * retries it fails with RETRY_EXC_ERR although every message arrived.
 *
 * So the daemon keeps, for IPD_TIMEWAIT_SEC after an RC or XRC TGT QP is
 * destroyed, what its responder had acknowledged (next expected PSN, MSN,
 * the peer's address and QPN).  A retransmitted SEND or WRITE packet it
 * had already executed (PSN before the expected one) gets the same
 * cumulative ACK the live QP would have sent (IBA 9.7.5.1.1, duplicate
 * requests); nothing is executed again.  Anything else (new PSNs, READ and
 * atomic requests, whose answers need memory that is gone) is dropped as
 * for any unknown QPN.  A QPN given to a new QP is found alive first, so
 * its tombstone is not consulted.  The table is a small ring: the oldest
 * entry makes room.
 */
#include <string.h>

#include "engine_priv.h"

#define IPD_TIMEWAIT_SEC 10.0

void ipd_timewait_add(struct ipd_qp *qp)
{
	struct ipd_engine *eng = qp->dev->engine;
	struct ipd_timewait *tw;

	if (!eng || !qp->eng ||
	    (qp->type != IBV_QPT_RC && qp->type != IBV_QPT_XRC_RECV))
		return;
	switch (qp->attr.qp_state) {
	case IBV_QPS_RTR:
	case IBV_QPS_RTS:
	case IBV_QPS_SQD:
	case IBV_QPS_SQE:
		break;
	default:
		return;
	}
	tw = &eng->tw[eng->tw_next++ % IPD_TIMEWAIT_MAX];
	tw->qpn = qp->qpn;
	tw->dqpn = qp->attr.dest_qp_num;
	tw->type = qp->type;
	tw->rq_psn = qp->eng->rq_psn;
	tw->msn = qp->eng->msn;
	tw->av = qp->av;
	tw->expires = ev_now(qp->dev->loop) + IPD_TIMEWAIT_SEC;
}

static struct ipd_timewait *tw_find(struct ipd_engine *eng, uint32_t qpn,
				    double now)
{
	uint32_t i;

	/* newest first: a QPN can have been destroyed twice */
	for (i = 1; i <= IPD_TIMEWAIT_MAX; i++) {
		struct ipd_timewait *tw =
			&eng->tw[(eng->tw_next - i) % IPD_TIMEWAIT_MAX];

		if (tw->expires > now && tw->qpn == qpn)
			return tw;
	}
	return NULL;
}

bool ipd_timewait_rx(struct ipd_dev *dev, const struct ipd_pkt *pkt)
{
	struct ipd_engine *eng = dev->engine;
	struct ipd_timewait *tw;
	struct ipd_pkt *ack;
	uint32_t last;

	if (!eng || !(pkt->mask & IPD_WRITE_OR_SEND_MASK) ||
	    !(pkt->mask & IPD_REQ_MASK))
		return false;
	tw = tw_find(eng, pkt->qpn, ev_now(dev->loop));
	if (!tw || !(pkt->mask & ipd_qpt_op_mask(tw->type)) ||
	    !ipd_eng_src_ok(&tw->av.dst, pkt) ||
	    ipd_psn_cmp(pkt->psn, tw->rq_psn) >= 0)
		return false;
	last = (tw->rq_psn - 1) & IPD_PSN_MASK;
	ack = ipd_eng_pkt_build(dev, tw->qpn, &tw->av,
				ipd_qpt_opcode_base(tw->type) |
					IPD_OP_ACKNOWLEDGE,
				tw->dqpn, last, 0, false, false);
	if (!ack)
		return false;
	ipd_aeth_set(ack->hdr, IPD_AETH_ACK_NO_CREDIT, tw->msn);
	dev->cnt.timewait_acks++;
	ipd_net_xmit(dev, ack, &tw->av);
	return true;
}
