// SPDX-License-Identifier: MIT
/*
 * The completer: ACKs, NAKs and responses become send completions
 * (IBA 9.7.5.2, 9.9).  A response is matched against the oldest
 * outstanding WQE; a coalesced ACK completes every WQE it covers.  The
 * ACK timer and the RNR timer drive retransmission.
 */
#include "engine_priv.h"

enum comp_state {
	COMP_GET_WQE,
	COMP_CHECK_PSN,
	COMP_CHECK_ACK,
	COMP_READ,
	COMP_ATOMIC,
	COMP_WRITE_SEND,
	COMP_COMPLETE_WQE,
	COMP_ERROR_RETRY,
	COMP_RNR_RETRY,
	COMP_ERROR,
	COMP_DONE,
};

struct comp_ctx {
	struct ipd_qp *qp;
	struct ipd_engine_qp *e;
	struct ipd_pkt *pkt;
	struct ipd_swqe *swqe;
	int status;
	bool progress;
};

/* min_rnr_timer / RNR NAK timer codes in microseconds (IBA table 45). */
static const uint32_t rnr_timer_us[32] = {
	655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960,
	1280, 1920, 2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720,
	40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520,
};

/* AETH NAK codes to send-completion status (IBA 9.7.5.2.x, 11.6.2). */
static int nak_status(uint8_t syn)
{
	switch (syn) {
	case IPD_AETH_NAK_INV_REQ:
		return IBV_WC_REM_INV_REQ_ERR;
	case IPD_AETH_NAK_REM_ACCESS:
		return IBV_WC_REM_ACCESS_ERR;
	case IPD_AETH_NAK_INV_RD_REQ:
		return IBV_WC_REM_INV_RD_REQ_ERR;
	default:
		return IBV_WC_REM_OP_ERR;
	}
}

/* ---- completions ---------------------------------------------------- */

static void comp_post(struct ipd_qp *qp, struct ipd_swqe *swqe, int status)
{
	struct ipd_cqe cqe = { 0 };

	/* Errors are always reported (IBA 10.7.2.2 / 11.4.2.1). */
	if (!status && !swqe->signaled)
		return;
	cqe.wr_id = swqe->wr->wr_id;
	cqe.status = (uint32_t)status;
	cqe.opcode = swqe->info ? swqe->info->wc_opcode : IBV_WC_SEND;
	cqe.byte_len = swqe->length;
	cqe.qp_num = qp->qpn;
	ipd_eng_cq_post(qp, qp->scq, &cqe);
}

/* The ring slot is freed before the completion is posted: a client that
 * sees the completion may post again at once and must find room.  The
 * engine's private copy of the WQE stays valid until the next fetch. */
void ipd_comp_retire(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	while (e->comp_idx != e->sq_head) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, e->comp_idx);
		bool error = swqe->state == IPD_SWQE_ERROR;

		if (swqe->state != IPD_SWQE_DONE && !error)
			break;
		/* A local error stops the requester at the failed WQE. */
		if (e->req_idx == e->comp_idx)
			e->req_idx++;
		e->comp_idx++;
		/* comp_post posts for errors and signaled WQEs only. */
		ipd_queue_retire_begin(&qp->sq, e->comp_idx, swqe->wr->wr_id,
				       (error || swqe->signaled) && qp->scq ?
					       &qp->scq->q : NULL);
		ipd_queue_release(&qp->sq, e->comp_idx);
		comp_post(qp, swqe, error ? swqe->status : IBV_WC_SUCCESS);
		ipd_queue_retire_end(&qp->sq);
		if (error) {
			ipd_eng_qp_error(qp, IBV_EVENT_QP_FATAL);
			break;
		}
	}
}

/* ---- timers -------------------------------------------------------- */

/* IBA 9.7.6.1.3: 4.096 us * 2^timeout; 0 means no timer. */
static double comp_timeout_s(const struct ipd_qp *qp)
{
	unsigned int t = qp->attr.timeout & 31;
	double s;

	if (!t)
		return 0;
	s = 4.096e-6 * (double)(1ull << t);
	return s < IPD_MIN_TIMEOUT_S ? IPD_MIN_TIMEOUT_S : s;
}

static bool comp_outstanding(const struct ipd_engine_qp *e)
{
	return e->req_psn != e->comp_psn || e->comp_idx != e->req_idx;
}

void ipd_comp_timer_kick(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	double tmo;

	if (ev_is_active(&e->retrans_timer) || e->rnr_wait)
		return;
	tmo = comp_timeout_s(qp);
	if (!tmo)
		return;
	e->retrans_timer.repeat = tmo;
	ev_timer_again(qp->dev->loop, &e->retrans_timer);
}

/* Progress was made: restart the ACK timer, or stop it when idle. */
static void comp_timer_update(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!comp_outstanding(e) || e->rnr_wait) {
		ev_timer_stop(qp->dev->loop, &e->retrans_timer);
		return;
	}
	e->retrans_timer.repeat = comp_timeout_s(qp);
	if (e->retrans_timer.repeat > 0)
		ev_timer_again(qp->dev->loop, &e->retrans_timer);
}

void ipd_comp_reset_retries(struct ipd_qp *qp)
{
	qp->eng->retry_left = qp->attr.retry_cnt;
	qp->eng->rnr_left = qp->attr.rnr_retry;
}

/* The oldest WQE fails with status; the QP goes to the error state. */
static void comp_fail_oldest(struct ipd_qp *qp, int status)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_swqe *swqe;

	if (e->comp_idx == e->req_idx) {
		if (e->req_idx == e->sq_head)
			return;
		e->req_idx++;
	}
	swqe = ipd_swqe_at(e, qp, e->comp_idx);
	swqe->status = status;
	swqe->state = IPD_SWQE_ERROR;
	ipd_comp_retire(qp);
}

static bool comp_qp_active(const struct ipd_qp *qp)
{
	enum ibv_qp_state s = qp->attr.qp_state;

	return s == IBV_QPS_RTS || s == IBV_QPS_SQD;
}

static void comp_retrans_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipd_qp *qp = w->data;
	struct ipd_engine_qp *e = qp->eng;

	if (!comp_qp_active(qp) || !comp_outstanding(e) || e->rnr_wait) {
		ev_timer_stop(loop, w);
		return;
	}
	qp->dev->cnt.timeouts++;
	/* rxe treats retry_cnt 7 as infinite, as IBA does for rnr_retry. */
	if (!e->retry_left) {
		ev_timer_stop(loop, w);
		comp_fail_oldest(qp, IBV_WC_RETRY_EXC_ERR);
		ipd_eng_apply_error(qp);
		return;
	}
	if (qp->attr.retry_cnt != 7)
		e->retry_left--;
	ipd_req_retry(qp);
	ipd_req_run(qp);
}

static void comp_rnr_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipd_qp *qp = w->data;

	qp->eng->rnr_wait = false;
	if (comp_qp_active(qp))
		ipd_req_run(qp);
}

void ipd_comp_timers_init(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	ev_init(&e->retrans_timer, comp_retrans_cb);
	e->retrans_timer.data = qp;
	ev_init(&e->rnr_timer, comp_rnr_cb);
	e->rnr_timer.data = qp;
}

void ipd_comp_timers_stop(struct ipd_qp *qp)
{
	ev_timer_stop(qp->dev->loop, &qp->eng->retrans_timer);
	ev_timer_stop(qp->dev->loop, &qp->eng->rnr_timer);
	qp->eng->rnr_wait = false;
}

/* ---- the state machine ---------------------------------------------- */

static enum comp_state comp_get_wqe(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;

	if (e->comp_idx != e->req_idx) {
		c->swqe = ipd_swqe_at(e, c->qp, e->comp_idx);
		return COMP_CHECK_PSN;
	}
	/* A long message still being sent gets ACKs for its first part. */
	if (e->req_idx != e->sq_head) {
		c->swqe = ipd_swqe_at(e, c->qp, e->req_idx);
		if (c->swqe->sent && c->swqe->state == IPD_SWQE_POSTED)
			return COMP_CHECK_PSN;
	}
	return COMP_DONE;
}

static enum comp_state comp_check_psn(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	struct ipd_swqe *swqe = c->swqe;
	uint32_t psn = c->pkt->psn;

	/* Never acknowledge what was never sent. */
	if (ipd_psn_cmp(psn, e->req_psn) >= 0)
		return COMP_DONE;
	if (ipd_psn_cmp(psn, swqe->last_psn) > 0) {
		if (swqe->state != IPD_SWQE_PENDING)
			return COMP_DONE;
		/* IBA 9.7.5.2.x: a later response implies the READ or
		 * atomic response was lost. */
		if (swqe->info->mask & IPD_WR_READ_OR_ATOMIC)
			return COMP_ERROR_RETRY;
		return COMP_COMPLETE_WQE;
	}
	if (ipd_psn_cmp(psn, e->comp_psn) < 0)
		return COMP_DONE; /* duplicate */
	if (ipd_psn_cmp(psn, e->comp_psn) > 0 &&
	    swqe->info->mask & IPD_WR_READ_OR_ATOMIC) {
		/* A gap in READ responses: ask again, once per gap. */
		if (e->gap_retried && e->gap_retry_psn == e->comp_psn)
			return COMP_DONE;
		e->gap_retried = true;
		e->gap_retry_psn = e->comp_psn;
		return COMP_ERROR_RETRY;
	}
	return COMP_CHECK_ACK;
}

static enum comp_state comp_check_nak(struct comp_ctx *c, uint8_t syn)
{
	struct ipd_engine_qp *e = c->e;

	c->qp->dev->cnt.naks_rcvd++;
	if (syn == IPD_AETH_NAK_PSN_SEQ) {
		/* Everything before the NAK'd PSN arrived (IBA 9.7.5.2.2). */
		if (e->comp_psn != c->pkt->psn) {
			e->comp_psn = c->pkt->psn;
			c->progress = true;
		} else if (e->nak_retried && e->nak_retry_psn == c->pkt->psn) {
			/* The responder NAKs a gap once: the same NAK again
			 * with no progress is a copy; we already went back. */
			return COMP_DONE;
		}
		e->nak_retried = true;
		e->nak_retry_psn = c->pkt->psn;
		return COMP_ERROR_RETRY;
	}
	c->status = nak_status(syn);
	return COMP_ERROR;
}

static enum comp_state comp_check_ack(struct comp_ctx *c)
{
	struct ipd_pkt *pkt = c->pkt;
	uint32_t wmask = c->swqe->info->mask;
	uint8_t syn;

	if (pkt->mask & IPD_READ_MASK) {
		if (!(wmask & IPD_WR_READ))
			return COMP_DONE;
		/* MIDDLE/LAST continue a sequence; FIRST/ONLY (re)start one:
		 * a responder answering a repeated READ restarts at the PSN
		 * asked for, and the PSN fixes the offset either way. */
		if (!(pkt->mask & IPD_FIRST_MASK) && !c->e->read_started)
			return COMP_DONE;
		return COMP_READ;
	}
	if (pkt->mask & IPD_ATOMIC_MASK)
		return wmask & IPD_WR_ATOMIC ? COMP_ATOMIC : COMP_DONE;
	syn = ipd_aeth_syn(pkt->hdr);
	switch (syn & IPD_AETH_TYPE_MASK) {
	case IPD_AETH_ACK:
		/* A bare ACK inside a READ/atomic carries no data. */
		if (wmask & IPD_WR_READ_OR_ATOMIC)
			return COMP_DONE;
		return COMP_WRITE_SEND;
	case IPD_AETH_RNR_NAK:
		return COMP_RNR_RETRY;
	case IPD_AETH_NAK:
		return comp_check_nak(c, syn);
	default:
		return COMP_DONE;
	}
}

static enum comp_state comp_read(struct comp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_swqe *swqe = c->swqe;
	struct ipd_pkt *pkt = c->pkt;
	bool last = pkt->mask & IPD_LAST_MASK;
	uint32_t len = pkt->paylen;

	/* IBA 9.7.5.1.3: FIRST/MIDDLE responses carry exactly one MTU. */
	if (!last && len != ipd_eng_mtu(qp))
		return COMP_DONE;
	if (swqe->rcvd + len > swqe->length ||
	    (last && swqe->rcvd + len != swqe->length))
		return COMP_DONE;
	c->status = ipd_sge_copy(qp->dev, qp->pd, ipd_send_wqe_sge(swqe->wr),
				 swqe->wr->num_sge, swqe->rcvd, pkt->payload,
				 len, IPD_TO_MEM);
	if (c->status)
		return COMP_ERROR;
	swqe->rcvd += len;
	c->e->comp_psn = ipd_psn_add(pkt->psn, 1);
	c->e->read_started = !last;
	c->progress = true;
	ipd_comp_reset_retries(qp);
	return last ? COMP_COMPLETE_WQE : COMP_DONE;
}

static enum comp_state comp_atomic(struct comp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_swqe *swqe = c->swqe;
	uint64_t orig = ipd_atmack_orig(c->pkt->hdr);

	/* The original value lands in the local 8-byte buffer, host order. */
	c->status = ipd_sge_copy(qp->dev, qp->pd, ipd_send_wqe_sge(swqe->wr),
				 swqe->wr->num_sge, 0, &orig, sizeof(orig),
				 IPD_TO_MEM);
	if (c->status)
		return COMP_ERROR;
	c->e->comp_psn = ipd_psn_add(c->pkt->psn, 1);
	return COMP_COMPLETE_WQE;
}

static enum comp_state comp_write_send(struct comp_ctx *c)
{
	struct ipd_swqe *swqe = c->swqe;

	c->e->comp_psn = ipd_psn_add(c->pkt->psn, 1);
	c->progress = true;
	ipd_comp_reset_retries(c->qp);
	if (c->pkt->psn == swqe->last_psn && swqe->state == IPD_SWQE_PENDING)
		return COMP_COMPLETE_WQE;
	return COMP_DONE;
}

static enum comp_state comp_complete_wqe(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	struct ipd_swqe *swqe = c->swqe;
	uint32_t next = ipd_psn_add(swqe->last_psn, 1);

	swqe->state = IPD_SWQE_DONE;
	if (swqe->info->mask & IPD_WR_READ_OR_ATOMIC && e->rd_outstanding)
		e->rd_outstanding--;
	if (ipd_psn_cmp(e->comp_psn, next) < 0)
		e->comp_psn = next;
	e->read_started = false;
	e->gap_retried = false;
	c->progress = true;
	ipd_comp_reset_retries(c->qp);
	ipd_comp_retire(c->qp);
	/* A coalesced ACK may cover later WQEs too. */
	if (ipd_psn_cmp(c->pkt->psn, swqe->last_psn) > 0)
		return COMP_GET_WQE;
	return COMP_DONE;
}

static enum comp_state comp_error_retry(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;

	if (!e->retry_left) {
		c->status = IBV_WC_RETRY_EXC_ERR;
		return COMP_ERROR;
	}
	if (c->qp->attr.retry_cnt != 7)
		e->retry_left--;
	ipd_req_retry(c->qp);
	return COMP_DONE;
}

static enum comp_state comp_rnr_retry(struct comp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	uint8_t code = ipd_aeth_syn(c->pkt->hdr) & 0x1f;

	qp->dev->cnt.rnr_naks_rcvd++;
	if (!e->rnr_left) {
		c->status = IBV_WC_RNR_RETRY_EXC_ERR;
		return COMP_ERROR;
	}
	/* IBA 9.7.5.2.8: rnr_retry 7 retries forever. */
	if (qp->attr.rnr_retry != 7)
		e->rnr_left--;
	e->comp_psn = c->pkt->psn;
	ipd_req_retry(qp);
	e->rnr_wait = true;
	ev_timer_stop(qp->dev->loop, &e->retrans_timer);
	ev_timer_stop(qp->dev->loop, &e->rnr_timer);
	ev_timer_set(&e->rnr_timer, rnr_timer_us[code] * 1e-6, 0.);
	ev_timer_start(qp->dev->loop, &e->rnr_timer);
	return COMP_DONE;
}

static enum comp_state comp_error(struct comp_ctx *c)
{
	comp_fail_oldest(c->qp, c->status);
	return COMP_DONE;
}

static enum comp_state (*const comp_steps[])(struct comp_ctx *) = {
	[COMP_GET_WQE] = comp_get_wqe,
	[COMP_CHECK_PSN] = comp_check_psn,
	[COMP_CHECK_ACK] = comp_check_ack,
	[COMP_READ] = comp_read,
	[COMP_ATOMIC] = comp_atomic,
	[COMP_WRITE_SEND] = comp_write_send,
	[COMP_COMPLETE_WQE] = comp_complete_wqe,
	[COMP_ERROR_RETRY] = comp_error_retry,
	[COMP_RNR_RETRY] = comp_rnr_retry,
	[COMP_ERROR] = comp_error,
};

void ipd_comp_rx(struct ipd_qp *qp, struct ipd_pkt *pkt)
{
	struct comp_ctx c = { .qp = qp, .e = qp->eng, .pkt = pkt };
	enum comp_state s = COMP_GET_WQE;

	if (!ipd_qpt_reliable(qp->type) || !comp_qp_active(qp) ||
	    !qp->sq.size) {
		qp->dev->cnt.drop_bad_state++;
		return;
	}
	while (s != COMP_DONE)
		s = comp_steps[s](&c);
	if (c.progress)
		comp_timer_update(qp);
	ipd_eng_apply_error(qp);
}
