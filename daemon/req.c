// SPDX-License-Identifier: MIT
/*
 * The requester: send work requests become packets (IBA 9.7.5.1).
 *
 * WQEs are copied out of the shared send ring (ipd_req_fetch) and checked
 * once; the requester then walks them in order, one state per step:
 * pick the next WQE, check the limits that may stop it (fence, READ/atomic
 * credits, the unacknowledged-PSN window, an RNR pause), build one packet,
 * send it.  The ring slot is released only when the completer retires the
 * WQE, so the client sees the queue full while work is outstanding.
 */
#include <string.h>

#include "engine_priv.h"

enum req_state {
	REQ_NEXT_WQE,
	REQ_CHECK_LIMITS,
	REQ_SEND_PKT,
	REQ_LOCAL_ERROR,
	REQ_DONE,
};

struct req_ctx {
	struct ipd_qp *qp;
	struct ipd_engine_qp *e;
	struct ipd_swqe *swqe;
	bool sent;
};

static bool qpt_is_rc(const struct ipd_qp *qp)
{
	return ipd_qpt_reliable(qp->type);
}

/* ---- taking WQEs from the ring ----------------------------------- */

static uint32_t wqe_npkts(const struct ipd_swqe *swqe, unsigned int mtu)
{
	if (swqe->info->mask & IPD_WR_ATOMIC)
		return 1;
	return swqe->length ? (swqe->length + mtu - 1) / mtu : 1;
}

static int wqe_check_ud(struct ipd_qp *qp, struct ipd_swqe *swqe)
{
	struct ipd_ah *ah = ipd_table_get(&qp->dev->ahs, swqe->wr->wr.ud.ah);

	/* The AH must be one of this client's, on the QP's PD. */
	if (!ah || ah->client != qp->client || ah->pd != qp->pd)
		return IBV_WC_LOC_QP_OP_ERR;
	if (swqe->length > ipd_eng_mtu(qp))
		return IBV_WC_LOC_LEN_ERR;
	return IBV_WC_SUCCESS;
}

static int wqe_check_data(struct ipd_qp *qp, struct ipd_swqe *swqe)
{
	struct ipd_send_wqe *wr = swqe->wr;
	uint32_t room = qp->sq.slot_size - (uint32_t)sizeof(*wr);
	uint32_t access = 0;

	if (wr->send_flags & IBV_SEND_INLINE &&
	    swqe->info->mask & IPD_WR_INLINE_OK) {
		if (wr->inline_len > room)
			return IBV_WC_LOC_LEN_ERR;
		swqe->length = wr->inline_len;
		return IBV_WC_SUCCESS;
	}
	if (wr->num_sge > room / sizeof(struct ipd_sge))
		return IBV_WC_LOC_LEN_ERR;
	/* READ and atomic responses are written into the local buffers. */
	if (swqe->info->mask & IPD_WR_READ_OR_ATOMIC)
		access = IBV_ACCESS_LOCAL_WRITE;
	return ipd_sge_check(qp->dev, qp->pd, ipd_send_wqe_sge(wr),
			     wr->num_sge, access, &swqe->length);
}

static int wqe_check(struct ipd_qp *qp, struct ipd_swqe *swqe)
{
	int status;

	if (!swqe->info)
		return IBV_WC_LOC_QP_OP_ERR;
	status = wqe_check_data(qp, swqe);
	if (status)
		return status;
	/* IBA 9.4.5: atomics operate on exactly 8 bytes. */
	if (swqe->info->mask & IPD_WR_ATOMIC && swqe->length != 8)
		return IBV_WC_LOC_LEN_ERR;
	if (qp->type == IBV_QPT_UD)
		return wqe_check_ud(qp, swqe);
	return IBV_WC_SUCCESS;
}

static void wqe_init(struct ipd_qp *qp, struct ipd_swqe *swqe)
{
	struct ipd_send_wqe *wr = swqe->wr;

	swqe->info = ipd_wr_opcode_get(wr->opcode, qp->type);
	swqe->signaled = qp->sq_sig_all || (wr->send_flags & IBV_SEND_SIGNALED);
	swqe->length = 0;
	swqe->sent = 0;
	swqe->rcvd_psns = 0;
	swqe->rerequested = false;
	swqe->status = wqe_check(qp, swqe);
	swqe->state = swqe->status ? IPD_SWQE_ERROR : IPD_SWQE_POSTED;
}

uint32_t ipd_req_fetch(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t n = 0;

	if (!qp->sq.size)
		return 0;
	while (ipd_queue_ready(&qp->sq) &&
	       e->sq_head - e->comp_idx < qp->sq.size) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, e->sq_head);

		ipd_queue_copy_next(&qp->sq, swqe->wr);
		wqe_init(qp, swqe);
		e->sq_head++;
		n++;
	}
	return n;
}

/* ---- building packets --------------------------------------------- */

static uint8_t pkt_opcode(struct ipd_qp *qp, const struct ipd_swqe *swqe,
			  bool first, bool last)
{
	const struct ipd_wr_opcode_info *info = swqe->info;
	uint8_t op;

	if (first && last)
		op = info->op_only;
	else if (first)
		op = info->op_first;
	else if (last)
		op = info->op_last;
	else
		op = info->op_middle;
	return ipd_qpt_opcode_base(qp->type) | op;
}

static int pkt_fill_payload(struct ipd_qp *qp, struct ipd_swqe *swqe,
			    struct ipd_pkt *pkt, uint32_t off)
{
	struct ipd_send_wqe *wr = swqe->wr;

	if (!pkt->paylen)
		return IBV_WC_SUCCESS;
	if (wr->send_flags & IBV_SEND_INLINE &&
	    swqe->info->mask & IPD_WR_INLINE_OK) {
		memcpy(pkt->payload, wr->payload + off, pkt->paylen);
		return IBV_WC_SUCCESS;
	}
	return ipd_sge_copy(qp->dev, qp->pd, ipd_send_wqe_sge(wr),
			    wr->num_sge, off, pkt->payload, pkt->paylen,
			    IPD_FROM_MEM);
}

/* A direct packet's payload: the WQE's SGE list trimmed to the packet's
 * bytes (pkt->paylen from offset off), read in the QP's PD on arrival. */
static void pkt_fill_ref(struct ipd_qp *qp, struct ipd_swqe *swqe,
			 struct ipd_pkt *pkt, uint32_t off)
{
	const struct ipd_sge *sge = ipd_send_wqe_sge(swqe->wr);
	struct ipd_pkt_ref *r = pkt->ref;
	uint32_t i, n = 0, len = pkt->paylen;

	for (i = 0; i < swqe->wr->num_sge && len; i++) {
		struct ipd_sge s = sge[i];

		if (off >= s.length) {
			off -= s.length;
			continue;
		}
		s.addr += off;
		s.length -= off;
		off = 0;
		if (s.length > len)
			s.length = len;
		len -= s.length;
		r->sge[n++] = s;
	}
	ipd_pkt_ref_bind(r, qp->pd, NULL);
	r->src.sge = r->sge;
	r->src.num_sge = n;
}

static void pkt_fill_headers(struct ipd_qp *qp, struct ipd_swqe *swqe,
			     struct ipd_pkt *pkt, uint32_t off)
{
	struct ipd_send_wqe *wr = swqe->wr;
	uint32_t mask = ipd_opcode_info[pkt->opcode].mask;
	uint32_t qkey;

	/* IBA 9.3.9: every XRC request names the remote XRC SRQ. */
	if (mask & IPD_XRCETH_MASK)
		ipd_xrceth_set(pkt->hdr, wr->xrc_srqn);
	if (mask & IPD_DETH_MASK) {
		/* IBA 10.2.5: a Q_Key with the high bit set means "use the
		 * QP's own Q_Key". */
		qkey = wr->wr.ud.remote_qkey;
		if (qkey & 0x80000000u)
			qkey = qp->attr.qkey;
		ipd_deth_set(pkt->hdr, qkey, qp->qpn);
	}
	if (mask & IPD_RETH_MASK)
		ipd_reth_set(pkt->hdr, wr->wr.rdma.remote_addr + off,
			     wr->wr.rdma.rkey, swqe->length - off);
	if (mask & IPD_ATMETH_MASK) {
		bool cas = wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP;

		ipd_atmeth_set(pkt->hdr, wr->wr.atomic.remote_addr,
			       wr->wr.atomic.rkey,
			       cas ? wr->wr.atomic.swap :
				     wr->wr.atomic.compare_add,
			       wr->wr.atomic.compare_add);
	}
	if (mask & IPD_IMMDT_MASK)
		ipd_immdt_set_raw(pkt->hdr, wr->imm_data);
	if (mask & IPD_IETH_MASK)
		__builtin_memcpy(ipd_hdr_at(pkt->hdr, IPD_HDR_IETH),
				 &wr->imm_data, 4);
}

static const struct ipd_av *req_dest(struct ipd_qp *qp,
				     struct ipd_swqe *swqe, uint32_t *dqpn)
{
	struct ipd_ah *ah;

	if (qp->type != IBV_QPT_UD) {
		*dqpn = qp->attr.dest_qp_num;
		return &qp->av;
	}
	ah = ipd_table_get(&qp->dev->ahs, swqe->wr->wr.ud.ah);
	if (!ah || ah->client != qp->client || ah->pd != qp->pd)
		return NULL;
	*dqpn = swqe->wr->wr.ud.remote_qpn;
	return &ah->av;
}

/* SEND/WRITE payload may go direct (docs/design.md "Direct loopback"):
 * not inline (that payload lives in the WQE copy), SGEs a reference
 * holds. */
static bool req_direct(struct ipd_qp *qp, const struct ipd_swqe *swqe)
{
	const struct ipd_send_wqe *wr = swqe->wr;

	if (swqe->info->mask & IPD_WR_READ_OR_ATOMIC || !swqe->length ||
	    wr->num_sge > IPD_MAX_SGE ||
	    (wr->send_flags & IBV_SEND_INLINE &&
	     swqe->info->mask & IPD_WR_INLINE_OK))
		return false;
	return ipd_eng_direct_ok(qp, &qp->av);
}

/* The unacknowledged-PSN window for swqe's packets. */
static uint32_t req_window(struct ipd_qp *qp, const struct ipd_swqe *swqe)
{
	return req_direct(qp, swqe) ? IPD_DIRECT_WINDOW : IPD_MAX_UNACKED_PSNS;
}

/* The PSNs a direct packet may stand for: within the window.  One of 64
 * PSNs or more carries an AckReq (req_ackreq). */
static uint32_t req_direct_psns(struct ipd_engine_qp *e)
{
	uint32_t used = ipd_psn_diff(e->req_psn, e->comp_psn);
	uint32_t n = IPD_DIRECT_PSNS;

	if (used >= IPD_DIRECT_WINDOW)
		return 1;
	if (n > IPD_DIRECT_WINDOW - used)
		n = IPD_DIRECT_WINDOW - used;
	return n;
}

/* Bytes this packet carries and the PSNs it uses; a SEND/WRITE packet
 * carries up to max_psns MTUs (more than one: a direct packet). */
static void pkt_extent(struct ipd_swqe *swqe, unsigned int mtu,
		       uint32_t max_psns, uint32_t *paylen, uint32_t *npsn,
		       bool *last)
{
	uint32_t rem = swqe->length - swqe->sent;

	if (swqe->info->mask & IPD_WR_READ) {
		/* IBA 9.7.5.1.3: a READ uses one PSN per response packet. */
		*paylen = 0;
		*npsn = rem ? (rem + mtu - 1) / mtu : 1;
		*last = true;
	} else if (swqe->info->mask & IPD_WR_ATOMIC) {
		*paylen = 0;
		*npsn = 1;
		*last = true;
	} else {
		uint32_t max = mtu * max_psns;

		*paylen = rem < max ? rem : max;
		*npsn = *paylen > mtu ? (*paylen + mtu - 1) / mtu : 1;
		*last = rem <= max;
	}
}

static bool req_ackreq(struct ipd_qp *qp, struct ipd_engine_qp *e, bool last,
		       uint32_t npsn)
{
	if (!qpt_is_rc(qp))
		return false;
	e->noack_pkts += npsn;
	if (last || e->noack_pkts >= IPD_ACKREQ_EVERY) {
		e->noack_pkts = 0;
		return true;
	}
	return false;
}

/* A packet of swqe at byte offset off with PSN psn, headers and payload
 * filled; with direct_psns, a direct packet of that many PSNs.  Returns
 * an ibv_wc_status, or -1 when out of packets. */
static int req_pkt_build(struct ipd_qp *qp, struct ipd_swqe *swqe, uint32_t psn,
			 uint32_t off, uint32_t paylen, uint32_t direct_psns,
			 bool first, bool last, bool ackreq,
			 struct ipd_pkt **out, const struct ipd_av **av)
{
	uint8_t op = pkt_opcode(qp, swqe, first, last);
	bool se = last && (swqe->wr->send_flags & IBV_SEND_SOLICITED);
	struct ipd_pkt *pkt;
	uint32_t dqpn;
	int status;

	*av = req_dest(qp, swqe, &dqpn);
	if (!*av)
		return IBV_WC_LOC_QP_OP_ERR;
	if (direct_psns)
		pkt = ipd_eng_pkt_new_ref(qp, *av, op, dqpn, psn, direct_psns,
					  paylen, ackreq, se);
	else
		pkt = ipd_eng_pkt_new(qp, *av, op, dqpn, psn, paylen, ackreq,
				      se);
	if (!pkt)
		return -1;
	pkt_fill_headers(qp, swqe, pkt, off);
	if (direct_psns) {
		pkt_fill_ref(qp, swqe, pkt, off);
		*out = pkt;
		return IBV_WC_SUCCESS;
	}
	status = pkt_fill_payload(qp, swqe, pkt, off);
	if (status) {
		ipd_pkt_free(qp->dev, pkt);
		return status;
	}
	*out = pkt;
	return IBV_WC_SUCCESS;
}

/* The length of swqe's only packet, as the client built it (app_tx.c). */
static uint32_t req_only_pkt_len(struct ipd_qp *qp, struct ipd_swqe *swqe,
				 uint32_t paylen)
{
	uint8_t op = pkt_opcode(qp, swqe, true, true);

	return ipd_opcode_info[op].length + paylen + ((4 - (paylen & 3)) & 3);
}

/* Build and send the next packet of swqe (or, when the client sent it,
 * account for it only).  Returns an ibv_wc_status. */
static int req_send_pkt(struct ipd_qp *qp, struct ipd_engine_qp *e,
			struct ipd_swqe *swqe)
{
	unsigned int mtu = ipd_eng_mtu(qp);
	uint32_t off = swqe->sent, paylen, npsn, psn = e->req_psn;
	const struct ipd_av *av = NULL;
	struct ipd_pkt *pkt = NULL;
	bool first = off == 0, last, ackreq;
	bool direct = req_direct(qp, swqe);
	enum ipd_app_tx_verdict app = IPD_APP_TX_NONE;
	int status;

	pkt_extent(swqe, mtu, direct ? req_direct_psns(e) : 1, &paylen, &npsn,
		   &last);
	ackreq = req_ackreq(qp, e, last, npsn);
	if (first && last)
		app = ipd_app_tx_judge(qp, swqe, e->req_idx, psn);
	if (app != IPD_APP_TX_TAKE) {
		status = req_pkt_build(qp, swqe, psn, off, paylen,
				       direct ? npsn : 0, first, last, ackreq,
				       &pkt, &av);
		if (status)
			return status;
	}
	ipd_app_tx_settle(qp, app);
	if (first) {
		swqe->first_psn = psn;
		swqe->last_psn = ipd_psn_add(psn, wqe_npkts(swqe, mtu) - 1);
	}
	swqe->sent = (swqe->info->mask & IPD_WR_READ_OR_ATOMIC) ?
			     swqe->length : off + paylen;
	e->req_psn = ipd_psn_add(psn, npsn);
	if (last) {
		swqe->state = qpt_is_rc(qp) ? IPD_SWQE_PENDING : IPD_SWQE_DONE;
		if (swqe->info->mask & IPD_WR_READ_OR_ATOMIC)
			e->rd_outstanding++;
		e->req_idx++;
	}
	if (app == IPD_APP_TX_TAKE) {
		/* the client sent it (app_tx.c), earlier than now: count it
		 * as ours, but take no RTT sample from it */
		qp->dev->cnt.pkts_sent++;
		qp->dev->cnt.bytes_sent += req_only_pkt_len(qp, swqe, paylen);
		ackreq = false;
	} else {
		ipd_net_xmit(qp->dev, pkt, av);
	}
	if (qpt_is_rc(qp))
		ipd_comp_timer_kick(
			qp, direct ? ipd_psn_add(psn, npsn - 1) : psn, ackreq);
	return IBV_WC_SUCCESS;
}

/* ---- the state machine -------------------------------------------- */

static enum req_state req_next_wqe(struct req_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;

	if (e->req_idx == e->sq_head)
		ipd_req_fetch(qp);
	if (e->req_idx == e->sq_head)
		return REQ_DONE;
	c->swqe = ipd_swqe_at(e, qp, e->req_idx);
	if (c->swqe->state == IPD_SWQE_ERROR)
		return REQ_LOCAL_ERROR;
	/* IBA 10.8.4.3 (SQD): finish the message in progress, start no new one. */
	if (qp->attr.qp_state == IBV_QPS_SQD && c->swqe->sent == 0)
		return REQ_DONE;
	return REQ_CHECK_LIMITS;
}

static enum req_state req_check_limits(struct req_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_swqe *swqe = c->swqe;
	uint32_t credits = qp->attr.max_rd_atomic ? qp->attr.max_rd_atomic : 1;

	if (!qpt_is_rc(qp))
		return REQ_SEND_PKT;
	if (e->rnr_wait)
		return REQ_DONE;
	if (ipd_psn_diff(e->req_psn, e->comp_psn) >= req_window(qp, swqe))
		return REQ_DONE;
	if (swqe->sent)
		return REQ_SEND_PKT;
	/* IBA 10.8.3.3: a fenced WQE waits for earlier READs/atomics. */
	if (swqe->wr->send_flags & IBV_SEND_FENCE && e->rd_outstanding)
		return REQ_DONE;
	if (swqe->info->mask & IPD_WR_READ_OR_ATOMIC &&
	    e->rd_outstanding >= credits)
		return REQ_DONE;
	return REQ_SEND_PKT;
}

static enum req_state req_send(struct req_ctx *c)
{
	int status = req_send_pkt(c->qp, c->e, c->swqe);

	if (status < 0)
		return REQ_DONE; /* out of packet memory: try again later */
	if (status) {
		c->swqe->status = status;
		c->swqe->state = IPD_SWQE_ERROR;
		return REQ_LOCAL_ERROR;
	}
	c->sent = true;
	if (!qpt_is_rc(c->qp))
		ipd_comp_retire(c->qp);
	return REQ_DONE;
}

/* The WQE completes with its error once everything before it has; until
 * then the requester stays at it and sends nothing after it (the QP then
 * goes to the error state). */
static enum req_state req_local_error(struct req_ctx *c)
{
	ipd_comp_retire(c->qp);
	return REQ_DONE;
}

static enum req_state (*const req_steps[])(struct req_ctx *) = {
	[REQ_NEXT_WQE] = req_next_wqe,
	[REQ_CHECK_LIMITS] = req_check_limits,
	[REQ_SEND_PKT] = req_send,
	[REQ_LOCAL_ERROR] = req_local_error,
};

static bool req_step(struct ipd_qp *qp)
{
	struct req_ctx c = { .qp = qp, .e = qp->eng };
	enum req_state s = REQ_NEXT_WQE;

	while (s != REQ_DONE)
		s = req_steps[s](&c);
	return c.sent;
}

static bool req_can_send(const struct ipd_qp *qp)
{
	enum ibv_qp_state s = qp->attr.qp_state;

	return s == IBV_QPS_RTS || s == IBV_QPS_SQD;
}

bool ipd_req_run(struct ipd_qp *qp)
{
	bool any = false;
	int i;

	if (!qp->sq.size || !req_can_send(qp))
		return false;
	for (i = 0; i < IPD_REQ_BUDGET; i++) {
		if (!req_step(qp))
			break;
		any = true;
		if (qp->eng->err_pending || !req_can_send(qp))
			break;
	}
	ipd_eng_apply_error(qp);
	return any;
}

/* ---- retransmission --------------------------------------------------- */

/* IBA 9.7.5.2.x: requests from the first one the responder may not have
 * executed on are sent again (go back N from e->exec_psn; a message
 * resumes at that packet).  READs and atomics before it were executed:
 * the completer asks for their missing responses (ipd_req_rerequest)
 * and they keep their credits. */
void ipd_req_rewind(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	unsigned int mtu = ipd_eng_mtu(qp);
	uint32_t idx, start, end = e->req_idx, rd = 0, psn = e->req_psn;

	/* Include a partially sent message at req_idx. */
	if (end != e->sq_head && ipd_swqe_at(e, qp, end)->sent)
		end++;
	for (start = e->comp_idx; start != end; start++) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, start);
		bool rd_atomic;

		if (swqe->state == IPD_SWQE_ERROR)
			return;
		rd_atomic = swqe->info->mask & IPD_WR_READ_OR_ATOMIC;
		if (rd_atomic ? ipd_psn_cmp(swqe->first_psn, e->exec_psn) >= 0 :
				ipd_psn_cmp(swqe->last_psn, e->exec_psn) >= 0)
			break;
		rd += rd_atomic; /* credits come back at retirement */
	}
	if (start == end)
		return; /* every request was executed */
	for (idx = start; idx != end; idx++) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, idx);

		if (swqe->state == IPD_SWQE_ERROR)
			break;
		swqe->state = IPD_SWQE_POSTED;
		swqe->sent = 0;
		if (idx != start)
			continue;
		psn = swqe->first_psn;
		if (!(swqe->info->mask & IPD_WR_READ_OR_ATOMIC) &&
		    ipd_psn_cmp(e->exec_psn, swqe->first_psn) > 0) {
			psn = e->exec_psn;
			swqe->sent = ipd_psn_diff(psn, swqe->first_psn) * mtu;
		}
	}
	e->req_idx = start;
	e->req_psn = psn;
	e->rd_outstanding = rd;
	e->noack_pkts = 0;
	ipd_comp_rtt_cancel(qp);
	qp->dev->cnt.retransmits++;
}

/* Send a READ's or atomic's request again for npsn of its responses from
 * psn on.  False when out of packets. */
static bool req_rerequest_xmit(struct ipd_qp *qp, struct ipd_swqe *swqe,
			       uint32_t psn, uint32_t npsn)
{
	unsigned int mtu = ipd_eng_mtu(qp);
	uint32_t off = ipd_psn_diff(psn, swqe->first_psn) * mtu;
	const struct ipd_av *av;
	struct ipd_pkt *pkt;
	uint64_t len;

	if (off > swqe->length)
		return false;
	if (req_pkt_build(qp, swqe, psn, off, 0, 0, true, true, true, &pkt,
			  &av))
		return false;
	if (swqe->info->mask & IPD_WR_READ) {
		len = (uint64_t)npsn * mtu;
		if (len > swqe->length - off)
			len = swqe->length - off;
		ipd_reth_set(pkt->hdr, swqe->wr->wr.rdma.remote_addr + off,
			     swqe->wr->wr.rdma.rkey, (uint32_t)len);
	}
	ipd_net_xmit(qp->dev, pkt, av);
	return true;
}

void ipd_req_rerequest(struct ipd_qp *qp, struct ipd_swqe *swqe,
		       uint32_t psn, uint32_t npsn)
{
	/* out of packets: the next timeout asks again */
	if (!req_rerequest_xmit(qp, swqe, psn, npsn))
		return;
	qp->dev->cnt.retransmits++;
	ipd_comp_rtt_cancel(qp);
	ipd_comp_timer_kick(qp, psn, false);
}

/* The WQE a packet sent with PSN psn belongs to (the message in progress
 * included), or NULL. */
static struct ipd_swqe *req_sent_wqe(struct ipd_qp *qp, uint32_t psn)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t idx, end = e->req_idx;

	if (ipd_psn_cmp(psn, e->req_psn) >= 0)
		return NULL;
	if (end != e->sq_head && ipd_swqe_at(e, qp, end)->sent)
		end++;
	for (idx = e->comp_idx; idx != end; idx++) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, idx);

		if (!swqe->info || swqe->state == IPD_SWQE_ERROR)
			return NULL;
		if (ipd_psn_cmp(psn, swqe->first_psn) < 0)
			return NULL;
		if (ipd_psn_cmp(psn, swqe->last_psn) > 0)
			continue;
		return swqe;
	}
	return NULL;
}

/* Send the SEND/WRITE packet of swqe with PSN psn once more, with AckReq. */
/* ackreq: ask for an ACK (the last packet of a run sent again; a probe). */
static bool req_resend_pkt(struct ipd_qp *qp, struct ipd_swqe *swqe,
			   uint32_t psn, bool ackreq)
{
	unsigned int mtu = ipd_eng_mtu(qp);
	const struct ipd_av *av;
	struct ipd_pkt *pkt;
	uint32_t off, paylen;

	off = ipd_psn_diff(psn, swqe->first_psn) * mtu;
	if (off > swqe->length)
		return false;
	paylen = swqe->length - off < mtu ? swqe->length - off : mtu;
	if (req_pkt_build(qp, swqe, psn, off, paylen, 0, off == 0,
			  psn == swqe->last_psn,
			  ackreq || psn == swqe->last_psn, &pkt, &av))
		return false;
	ipd_comp_rtt_cancel(qp);
	ipd_net_xmit(qp->dev, pkt, av);
	return true;
}

bool ipd_req_probe(struct ipd_qp *qp, uint32_t psn)
{
	struct ipd_swqe *swqe = req_sent_wqe(qp, psn);

	/* A READ or atomic is not probed: its repair (comp.c) waits for
	 * the ACK timer. */
	if (!swqe || swqe->info->mask & IPD_WR_READ_OR_ATOMIC ||
	    ipd_psn_cmp(psn, qp->eng->exec_psn) < 0)
		return false;
	return req_resend_pkt(qp, swqe, psn, true);
}

/* Send the request at psn again: a SEND/WRITE packet, or a whole READ or
 * atomic request (not executed: the NAK says so) when psn is its first
 * PSN.  Returns the PSN after it, or psn when nothing was sent. */
static uint32_t req_resend_one(struct ipd_qp *qp, uint32_t psn, bool ackreq)
{
	struct ipd_swqe *swqe = req_sent_wqe(qp, psn);

	if (!swqe)
		return psn;
	if (!(swqe->info->mask & IPD_WR_READ_OR_ATOMIC))
		return req_resend_pkt(qp, swqe, psn, ackreq) ?
			       ipd_psn_add(psn, 1) : psn;
	/* one retransmission with the rest of the run (ipd_req_resend) */
	if (psn != swqe->first_psn ||
	    !req_rerequest_xmit(qp, swqe, psn,
				ipd_psn_diff(swqe->last_psn, psn) + 1))
		return psn;
	return ipd_psn_add(swqe->last_psn, 1);
}

bool ipd_req_resend(struct ipd_qp *qp, uint32_t psn, uint32_t hole)
{
	uint32_t p = psn, next;

	/* The NAK says how many PSNs (>= 1) are missing before the first
	 * packet the responder kept (a lost burst: one GSO datagram is up to
	 * 64 packets).  One ACK for the run: AckReq on its last packet (and
	 * on message ends, as when they were first sent). */
	while (ipd_psn_diff(p, psn) < hole) {
		next = req_resend_one(qp, p, ipd_psn_diff(p, psn) + 1 == hole);
		if (next == p)
			break;
		qp->dev->cnt.selective_resends++;
		p = next;
	}
	if (p == psn)
		return false;
	qp->dev->cnt.retransmits++;
	ipd_comp_rtt_cancel(qp);
	ipd_comp_timer_kick(qp, psn, false);
	return true;
}

void ipd_req_reset(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	e->sq_head = e->req_idx = e->comp_idx = qp->sq.cons;
	e->req_psn = qp->attr.sq_psn & IPD_PSN_MASK;
	ipd_comp_set_psn(qp, e->req_psn);
	e->rd_outstanding = 0;
	e->noack_pkts = 0;
	e->nak_retried = false;
	e->rnr_wait = false;
	e->srtt = e->rttvar = 0; /* the peer may be another one */
	ipd_comp_rtt_cancel(qp);
}
