// SPDX-License-Identifier: MIT
/*
 * The completer: ACKs, NAKs and responses become send completions
 * (IBA 9.7.5.2, 9.9).  A response is matched by its PSN to the WQE it
 * answers; READ responses are placed in any order (a bit per PSN says
 * which arrived) and a WQE finishes when all its responses are in.  A
 * coalesced ACK finishes every SEND/WRITE it covers.  Completions are
 * posted oldest first.  Recovery is selective: what is missing of READs
 * and atomics the responder executed is asked for again by itself; only
 * the requests not known to be executed are sent again (go back N from
 * exec_psn).  The ACK timer and the RNR timer drive retransmission.
 */
#include <string.h>

#include "engine_priv.h"

enum comp_state {
	COMP_CHECK_PSN,
	COMP_CHECK_ACK,
	COMP_READ,
	COMP_ATOMIC,
	COMP_ACK,
	COMP_ADVANCE,
	COMP_ERROR_RETRY,
	COMP_RNR_RETRY,
	COMP_NAK_ERROR,
	COMP_DONE,
};

struct comp_ctx {
	struct ipd_qp *qp;
	struct ipd_engine_qp *e;
	struct ipd_pkt *pkt;
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

static bool wqe_is(const struct ipd_swqe *swqe, uint32_t wr_mask)
{
	return swqe->info && swqe->info->mask & wr_mask;
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
		/* IBA 9.5: a READ/atomic holds its credit until it completes
		 * in order, so that the responder still has the resource a
		 * repeated request of the oldest one needs. */
		else if (wqe_is(swqe, IPD_WR_READ_OR_ATOMIC) &&
			 e->rd_outstanding)
			e->rd_outstanding--;
		e->comp_idx++;
		/* Idle now: tell the client before it sees the completion
		 * and posts again (app_tx.c). */
		if (!error && e->comp_idx == e->sq_head)
			ipd_app_tx_publish(qp);
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

/* ---- tail loss probe (after RFC 8985's TLP) ---------------------------
 * When the last packets of a burst are lost no later packet makes the
 * responder NAK, and only the ACK timeout would recover.  A probe timeout
 * (PTO) after the last send or progress, much shorter than the ACK
 * timeout, the last packet sent goes once more (and the oldest one not
 * known to be executed, see comp_probe_cb): the responder re-ACKs a
 * duplicate or NAKs the gap before it, and recovery starts at once.
 * Only SEND/WRITE packets are probed; READs and atomics wait for the ACK
 * timer as before.  The RTT is timed from ACKs of AckReq packets, never
 * across a packet sent again (Karn).
 * A probe is no retry: retry_left and the ACK timer are left alone, so a
 * dead peer still fails with RETRY_EXC_ERR when the QP attributes say.
 * A probe without progress is followed by another after twice the delay
 * (PTO, 2 PTO, 4 PTO, ...) while that delay is at most half the ACK
 * timeout, at most IPD_PROBE_MAX per period: a probe or its answer can be
 * lost too (with one probe per ACK timeout period, 20 lab runs of
 * ib_write_bw at 1 % loss had 4 ACK timeouts for 113 probes).  Without an
 * RTT sample the PTO is half the ACK timeout, so only one probe goes.
 * Progress or a timeout starts over at one PTO. */

static bool comp_probe_on(const struct ipd_qp *qp)
{
	return qp->dev->cfg->tail_probe;
}

static double comp_pto_s(const struct ipd_qp *qp, double tmo)
{
	const struct ipd_engine_qp *e = qp->eng;
	double pto = 2 * e->srtt;

	if (!e->srtt)
		return tmo / 2;
	if (pto < e->srtt + 4 * e->rttvar)
		pto = e->srtt + 4 * e->rttvar;
	if (pto < IPD_PROBE_MIN_S)
		pto = IPD_PROBE_MIN_S;
	return pto > tmo / 2 ? tmo / 2 : pto;
}

static void comp_probe_arm(struct ipd_qp *qp, double tmo)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!comp_probe_on(qp) || e->probes || e->rnr_wait || !tmo)
		return;
	e->probe_timer.repeat = comp_pto_s(qp, tmo);
	ev_timer_again(qp->dev->loop, &e->probe_timer);
}

/* A new ACK timeout period: a probe may go out again. */
static void comp_probe_reset(struct ipd_qp *qp)
{
	qp->eng->probes = 0;
	ev_timer_stop(qp->dev->loop, &qp->eng->probe_timer);
}

static void comp_rtt_start(struct ipd_engine_qp *e, uint32_t psn)
{
	if (e->rtt_timing)
		return;
	e->rtt_timing = true;
	e->rtt_psn = psn;
	e->rtt_start = ev_time();
}

void ipd_comp_rtt_cancel(struct ipd_qp *qp)
{
	qp->eng->rtt_timing = false;
}

/* Progress: the timed PSN's answer arrived (RFC 6298 smoothing). */
static void comp_rtt_sample(struct ipd_engine_qp *e)
{
	double r;

	if (!e->rtt_timing || ipd_psn_cmp(e->exec_psn, e->rtt_psn) <= 0)
		return;
	e->rtt_timing = false;
	r = ev_time() - e->rtt_start;
	if (!e->srtt) {
		e->srtt = r;
		e->rttvar = r / 2;
		return;
	}
	e->rttvar += ((r > e->srtt ? r - e->srtt : e->srtt - r) - e->rttvar) / 4;
	e->srtt += (r - e->srtt) / 8;
}

void ipd_comp_timer_kick(struct ipd_qp *qp, uint32_t psn, bool ackreq)
{
	struct ipd_engine_qp *e = qp->eng;
	double tmo;

	if (e->rnr_wait)
		return;
	tmo = comp_timeout_s(qp);
	if (comp_probe_on(qp)) {
		if (ackreq)
			comp_rtt_start(e, psn);
		comp_probe_arm(qp, tmo);
	}
	if (ev_is_active(&e->retrans_timer) || !tmo)
		return;
	e->retrans_timer.repeat = tmo;
	ev_timer_again(qp->dev->loop, &e->retrans_timer);
}

/* Progress was made: restart the ACK timer, or stop it when idle. */
static void comp_timer_update(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	comp_probe_reset(qp);
	if (!comp_outstanding(e) || e->rnr_wait) {
		ev_timer_stop(qp->dev->loop, &e->retrans_timer);
		return;
	}
	e->retrans_timer.repeat = comp_timeout_s(qp);
	if (e->retrans_timer.repeat > 0)
		ev_timer_again(qp->dev->loop, &e->retrans_timer);
	comp_probe_arm(qp, e->retrans_timer.repeat);
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

static void comp_retry(struct ipd_qp *qp);

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
	comp_probe_reset(qp);
	comp_retry(qp);
	ipd_req_run(qp);
}

static void comp_probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipd_qp *qp = w->data;
	struct ipd_engine_qp *e = qp->eng;
	double tmo = comp_timeout_s(qp), next;
	uint32_t last;
	bool sent;

	ev_timer_stop(loop, w);
	if (!comp_qp_active(qp) || !comp_outstanding(e) || e->rnr_wait)
		return;
	/* The oldest packet not known to be executed, then the last one
	 * sent.  The responder NAKs a gap once and is then silent until the
	 * PSN it named arrives: if that NAK or the packet sent again for it
	 * was lost, the first is that packet, accepted, and the second
	 * finds the rest's gap (a new NAK).  After a tail loss the second
	 * reveals the gap; when only ACKs were lost both are duplicates,
	 * which the responder ACKs again. */
	last = ipd_psn_add(e->req_psn, IPD_PSN_MASK);
	sent = ipd_req_probe(qp, e->exec_psn);
	if (last != e->exec_psn)
		sent |= ipd_req_probe(qp, last);
	if (!sent)
		return;
	qp->dev->cnt.tail_probes++;
	_Static_assert(IPD_PROBE_MAX < 31, "the delay's shift");
	next = comp_pto_s(qp, tmo) * (double)(2u << e->probes);
	e->probes++;
	if (next <= tmo / 2 && e->probes < IPD_PROBE_MAX) {
		w->repeat = next;
		ev_timer_again(loop, w);
	}
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
	ev_init(&e->probe_timer, comp_probe_cb);
	e->probe_timer.data = qp;
}

void ipd_comp_timers_stop(struct ipd_qp *qp)
{
	ev_timer_stop(qp->dev->loop, &qp->eng->retrans_timer);
	ev_timer_stop(qp->dev->loop, &qp->eng->rnr_timer);
	comp_probe_reset(qp);
	qp->eng->rnr_wait = false;
	qp->eng->rtt_timing = false;
}

/* ---- which READ responses arrived ------------------------------------ */

static bool map_test(const struct ipd_engine_qp *e, uint32_t psn)
{
	uint32_t bit = psn % IPD_READ_WINDOW;

	return e->read_map[bit / 64] >> (bit % 64) & 1;
}

static void map_set(struct ipd_engine_qp *e, uint32_t psn)
{
	uint32_t bit = psn % IPD_READ_WINDOW;

	e->read_map[bit / 64] |= 1ull << (bit % 64);
}

/* psn arrived: before comp_psn everything has, beyond the window nothing
 * is known. */
static bool comp_psn_arrived(const struct ipd_engine_qp *e, uint32_t psn)
{
	if (ipd_psn_cmp(psn, e->comp_psn) < 0)
		return true;
	if (ipd_psn_diff(psn, e->comp_psn) >= IPD_READ_WINDOW)
		return false;
	return map_test(e, psn);
}

/* comp_psn moves forward only; the bits it passes are forgotten so that
 * the window can hold the PSNs it reaches next. */
static void comp_psn_move(struct ipd_engine_qp *e, uint32_t psn)
{
	uint32_t n, bit;

	if (ipd_psn_cmp(psn, e->comp_psn) <= 0)
		return;
	n = ipd_psn_diff(psn, e->comp_psn);
	if (n >= IPD_READ_WINDOW) {
		memset(e->read_map, 0, sizeof(e->read_map));
	} else {
		for (; n; n--, e->comp_psn = ipd_psn_add(e->comp_psn, 1)) {
			bit = e->comp_psn % IPD_READ_WINDOW;
			e->read_map[bit / 64] &= ~(1ull << (bit % 64));
		}
	}
	e->comp_psn = psn;
}

static void psn_raise(uint32_t *psn, uint32_t to)
{
	if (ipd_psn_cmp(to, *psn) > 0)
		*psn = to;
}

void ipd_comp_set_psn(struct ipd_qp *qp, uint32_t psn)
{
	struct ipd_engine_qp *e = qp->eng;

	e->comp_psn = e->exec_psn = psn;
	e->resp_high_psn = ipd_psn_add(psn, IPD_PSN_MASK);
	memset(e->read_map, 0, sizeof(e->read_map));
}

static uint32_t wqe_npsn(const struct ipd_swqe *swqe)
{
	return ipd_psn_diff(swqe->last_psn, swqe->first_psn) + 1;
}

/* Offset (in PSNs) of the first response of a READ at or after off
 * whose arrival is as asked; the READ's length if none is. */
static uint32_t read_next(const struct ipd_engine_qp *e,
			  const struct ipd_swqe *swqe, uint32_t off,
			  bool arrived)
{
	uint32_t n = wqe_npsn(swqe);

	while (off < n && comp_psn_arrived(e, ipd_psn_add(swqe->first_psn,
							  off)) != arrived)
		off++;
	return off;
}

/* The first response of a READ that did not arrive (the READ's end
 * when all did).  Everything before comp_psn arrived. */
static uint32_t read_first_missing(const struct ipd_engine_qp *e,
				   const struct ipd_swqe *swqe)
{
	uint32_t off = 0;

	if (ipd_psn_cmp(e->comp_psn, swqe->first_psn) > 0)
		off = ipd_psn_diff(e->comp_psn, swqe->first_psn);
	return ipd_psn_add(swqe->first_psn, read_next(e, swqe, off, false));
}

/* Ask for the missing responses of a READ again, a READ request per run
 * of missing PSNs (the last one takes all remaining runs). */
static void read_rerequest(struct ipd_qp *qp, struct ipd_swqe *swqe)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t n = wqe_npsn(swqe), runs = 0, lo, hi, last;

	lo = ipd_psn_diff(read_first_missing(e, swqe), swqe->first_psn);
	if (lo >= n)
		return;
	for (last = n - 1; last > lo; last--)
		if (!comp_psn_arrived(e, ipd_psn_add(swqe->first_psn, last)))
			break;
	while (lo <= last) {
		hi = ++runs < IPD_REREQ_RUNS ? read_next(e, swqe, lo, true) - 1
					     : last;
		ipd_req_rerequest(qp, swqe, ipd_psn_add(swqe->first_psn, lo),
				  hi - lo + 1);
		qp->dev->cnt.read_rerequests++;
		lo = read_next(e, swqe, hi + 1, false);
	}
	swqe->rerequested = true;
}

/* ---- finishing WQEs in any order, retiring them in order -------------- */

static void comp_wqe_finish(struct ipd_swqe *swqe, int status)
{
	swqe->status = status;
	swqe->state = status ? IPD_SWQE_ERROR : IPD_SWQE_DONE;
}

/* The WQE sent whose PSN range holds psn, or NULL. */
static struct ipd_swqe *comp_find(struct ipd_qp *qp, uint32_t psn)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t idx;

	for (idx = e->comp_idx; idx != e->req_idx; idx++) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, idx);

		if (ipd_psn_cmp(psn, swqe->first_psn) < 0)
			return NULL;
		if (ipd_psn_cmp(psn, swqe->last_psn) <= 0)
			return swqe;
	}
	return NULL;
}

/* SEND/WRITE WQEs the responder executed are done; comp_psn moves to
 * the oldest PSN still missing (a READ's first missing response, an
 * atomic's, or the first request not executed); done WQEs are retired
 * oldest first. */
static void comp_advance(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t idx, end = e->req_idx, psn = e->req_psn;

	/* A long message still being sent gets ACKs for its first part. */
	if (end != e->sq_head && ipd_swqe_at(e, qp, end)->sent)
		end++;
	for (idx = e->comp_idx; idx != end; idx++) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, idx);
		if (swqe->state == IPD_SWQE_DONE)
			continue;
		psn = swqe->first_psn;
		if (swqe->state == IPD_SWQE_ERROR ||
		    wqe_is(swqe, IPD_WR_ATOMIC))
			break;
		if (wqe_is(swqe, IPD_WR_READ)) {
			psn = read_first_missing(e, swqe);
			break;
		}
		if (swqe->state == IPD_SWQE_PENDING &&
		    ipd_psn_cmp(e->exec_psn, swqe->last_psn) > 0) {
			comp_wqe_finish(swqe, IBV_WC_SUCCESS);
			continue;
		}
		if (ipd_psn_cmp(e->exec_psn, psn) > 0)
			psn = e->exec_psn;
		break;
	}
	/* Every WQE sent finished: nothing is missing before req_psn (else
	 * comp_psn stayed at the last one's first PSN and the idle QP kept
	 * its ACK timer running, spending retries on nothing). */
	if (idx == end)
		psn = e->req_psn;
	comp_psn_move(e, psn);
	psn_raise(&e->exec_psn, e->comp_psn);
	ipd_comp_retire(qp);
}

/* READs and atomics the responder executed whose responses are (partly)
 * missing: ask again for exactly that part (IBA 9.7.5.1.x: a repeated
 * READ request may start at any PSN of the original, with the RETH
 * adjusted).  After a timeout every such WQE.  Otherwise only those
 * whose responses were all sent by now (a response with a later PSN
 * arrived: the responder answers in PSN order, so the rest is lost or
 * reordered), once per WQE: a late original cannot be told from a
 * repeated response, and asking again on every arrival would make a
 * storm of requests and duplicates on a reordering path.  What this
 * misses, the timer asks for. */
static void comp_repair(struct ipd_qp *qp, bool timeout)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t idx;

	for (idx = e->comp_idx; idx != e->req_idx; idx++) {
		struct ipd_swqe *swqe = ipd_swqe_at(e, qp, idx);
		bool read = wqe_is(swqe, IPD_WR_READ);
		int32_t after = ipd_psn_cmp(e->resp_high_psn, swqe->last_psn);

		if (ipd_psn_cmp(swqe->first_psn, e->exec_psn) >= 0)
			break; /* not executed: ipd_req_rewind sends it */
		if (!timeout &&
		    ipd_psn_cmp(swqe->first_psn, e->resp_high_psn) > 0)
			break;
		if (!wqe_is(swqe, IPD_WR_READ_OR_ATOMIC) ||
		    swqe->state != IPD_SWQE_PENDING)
			continue;
		/* a READ's own last response, or a later one, was sent */
		if (!timeout &&
		    (swqe->rerequested || after < 0 || (!read && after == 0)))
			continue;
		if (read) {
			read_rerequest(qp, swqe);
			continue;
		}
		swqe->rerequested = true;
		ipd_req_rerequest(qp, swqe, swqe->first_psn, 1);
	}
}

/* A timeout (IBA 9.7.6.1.3): ask again for what is missing of executed
 * READs and atomics, and send every request not known to be executed. */
static void comp_retry(struct ipd_qp *qp)
{
	comp_repair(qp, true);
	ipd_req_rewind(qp);
}

/* ---- the state machine ---------------------------------------------- */

/* psn is beyond everything sent, even after taking the WQEs the client
 * sent itself and we have not taken yet (app_tx.c). */
static bool comp_psn_unsent(struct comp_ctx *c, uint32_t psn)
{
	if (ipd_psn_cmp(psn, c->e->req_psn) < 0)
		return false;
	if (!ipd_app_tx_catch_up(c->qp))
		return true;
	return ipd_psn_cmp(psn, c->e->req_psn) >= 0;
}

static enum comp_state comp_check_psn(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	uint32_t psn = c->pkt->psn;

	/* Never acknowledge what was never sent. */
	if (comp_psn_unsent(c, psn))
		return COMP_DONE;
	if (ipd_psn_cmp(psn, e->comp_psn) < 0) {
		if (c->pkt->mask & (IPD_READ_MASK | IPD_ATOMIC_MASK))
			c->qp->dev->cnt.dup_responses++;
		return COMP_DONE;
	}
	psn_raise(&e->resp_high_psn, ipd_psn_add(psn, c->pkt->npsn - 1));
	return COMP_CHECK_ACK;
}

static enum comp_state comp_check_nak(struct comp_ctx *c, uint8_t syn)
{
	struct ipd_engine_qp *e = c->e;
	uint32_t psn = c->pkt->psn;

	c->qp->dev->cnt.naks_rcvd++;
	/* Everything before the NAK'd PSN was executed (IBA 9.7.5.2.2). */
	if (ipd_psn_cmp(psn, e->exec_psn) > 0) {
		e->exec_psn = psn;
		c->progress = true;
	}
	if (syn != IPD_AETH_NAK_PSN_SEQ)
		return COMP_NAK_ERROR;
	/* The responder NAKs a gap once: the same NAK again with no
	 * progress is a copy; we already went back. */
	if (!c->progress && e->nak_retried && e->nak_retry_psn == psn)
		return COMP_ADVANCE;
	e->nak_retried = true;
	e->nak_retry_psn = psn;
	comp_advance(c->qp);
	return COMP_ERROR_RETRY;
}

static enum comp_state comp_check_ack(struct comp_ctx *c)
{
	struct ipd_pkt *pkt = c->pkt;
	uint8_t syn;

	if (pkt->mask & IPD_READ_MASK)
		return COMP_READ;
	if (pkt->mask & IPD_ATOMIC_MASK)
		return COMP_ATOMIC;
	syn = ipd_aeth_syn(pkt->hdr);
	switch (syn & IPD_AETH_TYPE_MASK) {
	case IPD_AETH_ACK:
		return COMP_ACK;
	case IPD_AETH_RNR_NAK:
		return COMP_RNR_RETRY;
	case IPD_AETH_NAK:
		return comp_check_nak(c, syn);
	default:
		return COMP_DONE;
	}
}

/* Place len bytes of a READ response, from byte skip of its payload, at
 * byte off of the READ's local buffers.  An ibv_wc_status, or -1: a
 * direct response whose source is gone (dropped as lost). */
static int read_place(struct ipd_qp *qp, struct ipd_swqe *swqe,
		      const struct ipd_pkt *pkt, uint32_t off, uint32_t skip,
		      uint32_t len)
{
	struct ipd_mem dst = { .pd = qp->pd, .access = IBV_ACCESS_LOCAL_WRITE,
			       .sge = ipd_send_wqe_sge(swqe->wr),
			       .num_sge = swqe->wr->num_sge, .off = off };

	if (!pkt->ref)
		return ipd_sge_copy(qp->dev, qp->pd, dst.sge, dst.num_sge, off,
				    pkt->payload + skip, len, IPD_TO_MEM);
	return ipd_pkt_ref_copy_out(qp->dev, pkt, skip, len, &dst, off,
				    ipd_eng_mtu(qp));
}

/* Place the responses of pkt (npsn of them when direct) not placed yet;
 * fresh: how many those are.  Returns what read_place does. */
static int read_place_fresh(struct ipd_qp *qp, struct ipd_swqe *swqe,
			    const struct ipd_pkt *pkt, uint32_t off,
			    uint32_t fresh)
{
	unsigned int mtu = ipd_eng_mtu(qp);
	uint32_t k, n;
	int status;

	if (fresh == pkt->npsn)
		return read_place(qp, swqe, pkt, off, 0, pkt->paylen);
	for (k = 0; k < pkt->npsn; k++) {
		if (map_test(qp->eng, ipd_psn_add(pkt->psn, k)))
			continue;
		n = pkt->paylen - k * mtu < mtu ? pkt->paylen - k * mtu : mtu;
		status = read_place(qp, swqe, pkt, off + k * mtu, k * mtu, n);
		if (status)
			return status;
	}
	return IBV_WC_SUCCESS;
}

/* IBA 9.7.5.1.3: a READ response's PSN fixes its offset in the READ, so
 * responses are placed in any order; FIRST/MIDDLE carry exactly one MTU,
 * the READ's last response the rest.  A direct response stands for npsn
 * consecutive ones (some may have arrived already). */
static enum comp_state comp_read(struct comp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_pkt *pkt = c->pkt;
	struct ipd_swqe *swqe = comp_find(qp, pkt->psn);
	unsigned int mtu = ipd_eng_mtu(qp);
	uint32_t end = ipd_psn_add(pkt->psn, pkt->npsn - 1);
	uint32_t full = pkt->npsn * mtu, off, want, k, fresh = 0;
	int status;

	if (!swqe || !wqe_is(swqe, IPD_WR_READ) ||
	    swqe->state != IPD_SWQE_PENDING)
		return COMP_DONE;
	off = ipd_psn_diff(pkt->psn, swqe->first_psn) * mtu;
	want = swqe->length - off < full ? swqe->length - off : full;
	if (pkt->paylen != want || (pkt->npsn > 1 && want <= full - mtu) ||
	    (end == swqe->last_psn && !(pkt->mask & IPD_LAST_MASK)))
		return COMP_DONE;
	if (ipd_psn_diff(end, e->comp_psn) >= IPD_READ_WINDOW) {
		qp->dev->cnt.drop_seq++; /* asked again once nearer */
		return COMP_DONE;
	}
	for (k = 0; k < pkt->npsn; k++)
		fresh += !map_test(e, ipd_psn_add(pkt->psn, k));
	if (!fresh) {
		qp->dev->cnt.dup_responses++;
		return COMP_DONE;
	}
	status = read_place_fresh(qp, swqe, pkt, off, fresh);
	if (status < 0)
		return COMP_DONE;
	if (status) {
		comp_wqe_finish(swqe, status);
		return COMP_ADVANCE;
	}
	for (k = 0; k < pkt->npsn; k++)
		map_set(e, ipd_psn_add(pkt->psn, k));
	psn_raise(&e->exec_psn, ipd_psn_add(swqe->last_psn, 1));
	swqe->rcvd_psns += fresh;
	if (swqe->rcvd_psns == wqe_npsn(swqe))
		comp_wqe_finish(swqe, IBV_WC_SUCCESS);
	c->progress = true;
	return COMP_ADVANCE;
}

static enum comp_state comp_atomic(struct comp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_swqe *swqe = comp_find(qp, c->pkt->psn);
	uint64_t orig = ipd_atmack_orig(c->pkt->hdr);
	int status;

	if (!swqe || !wqe_is(swqe, IPD_WR_ATOMIC) ||
	    swqe->state != IPD_SWQE_PENDING)
		return COMP_DONE;
	/* The original value lands in the local 8-byte buffer, host order. */
	status = ipd_sge_copy(qp->dev, qp->pd, ipd_send_wqe_sge(swqe->wr),
			      swqe->wr->num_sge, 0, &orig, sizeof(orig),
			      IPD_TO_MEM);
	psn_raise(&c->e->exec_psn, ipd_psn_add(c->pkt->psn, 1));
	comp_wqe_finish(swqe, status);
	c->progress = true;
	return COMP_ADVANCE;
}

/* A (coalesced) ACK: every request up to its PSN was executed. */
static enum comp_state comp_ack(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	uint32_t next = ipd_psn_add(c->pkt->psn, 1);

	if (ipd_psn_cmp(next, e->exec_psn) > 0) {
		e->exec_psn = next;
		c->progress = true;
	}
	return COMP_ADVANCE;
}

static enum comp_state comp_advance_step(struct comp_ctx *c)
{
	comp_advance(c->qp);
	if (c->progress)
		ipd_comp_reset_retries(c->qp);
	comp_repair(c->qp, false);
	return COMP_DONE;
}

static enum comp_state comp_error_retry(struct comp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	uint32_t hole;

	if (!e->retry_left) {
		comp_fail_oldest(c->qp, IBV_WC_RETRY_EXC_ERR);
		return COMP_DONE;
	}
	if (c->qp->attr.retry_cnt != 7)
		e->retry_left--;
	/* A responder that keeps later packets says how many PSNs it lacks
	 * (ooo.c); a hole of 0 (it kept nothing, or dropped a request
	 * behind the hole) or a peer without the feature: go back N. */
	hole = ipd_bth_resv7(c->pkt->hdr);
	if (!hole || !ipd_ooo_on(c->qp) ||
	    !ipd_req_resend(c->qp, c->pkt->psn, hole))
		ipd_req_rewind(c->qp);
	return COMP_DONE;
}

static enum comp_state comp_rnr_retry(struct comp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	uint8_t code = ipd_aeth_syn(c->pkt->hdr) & 0x1f;

	qp->dev->cnt.rnr_naks_rcvd++;
	if (!e->rnr_left) {
		comp_fail_oldest(qp, IBV_WC_RNR_RETRY_EXC_ERR);
		return COMP_DONE;
	}
	/* IBA 9.7.5.2.8: rnr_retry 7 retries forever. */
	if (qp->attr.rnr_retry != 7)
		e->rnr_left--;
	/* Everything before the RNR NAK'd request was executed. */
	psn_raise(&e->exec_psn, c->pkt->psn);
	comp_advance(qp);
	ipd_req_rewind(qp);
	e->rnr_wait = true;
	ev_timer_stop(qp->dev->loop, &e->retrans_timer);
	comp_probe_reset(qp);
	ev_timer_stop(qp->dev->loop, &e->rnr_timer);
	ev_timer_set(&e->rnr_timer, rnr_timer_us[code] * 1e-6, 0.);
	ev_timer_start(qp->dev->loop, &e->rnr_timer);
	return COMP_DONE;
}

/* A NAK for an error (IBA 9.7.5.2.x): the request it names fails; it
 * completes with the error once everything before it has. */
static enum comp_state comp_nak_error(struct comp_ctx *c)
{
	struct ipd_swqe *swqe = comp_find(c->qp, c->pkt->psn);

	if (swqe && swqe->state == IPD_SWQE_PENDING)
		comp_wqe_finish(swqe, nak_status(ipd_aeth_syn(c->pkt->hdr)));
	return COMP_ADVANCE;
}

static enum comp_state (*const comp_steps[])(struct comp_ctx *) = {
	[COMP_CHECK_PSN] = comp_check_psn,
	[COMP_CHECK_ACK] = comp_check_ack,
	[COMP_READ] = comp_read,
	[COMP_ATOMIC] = comp_atomic,
	[COMP_ACK] = comp_ack,
	[COMP_ADVANCE] = comp_advance_step,
	[COMP_ERROR_RETRY] = comp_error_retry,
	[COMP_RNR_RETRY] = comp_rnr_retry,
	[COMP_NAK_ERROR] = comp_nak_error,
};

void ipd_comp_rx(struct ipd_qp *qp, struct ipd_pkt *pkt)
{
	struct comp_ctx c = { .qp = qp, .e = qp->eng, .pkt = pkt };
	enum comp_state s = COMP_CHECK_PSN;

	if (!ipd_qpt_reliable(qp->type) || !comp_qp_active(qp) ||
	    !qp->sq.size) {
		qp->dev->cnt.drop_bad_state++;
		return;
	}
	while (s != COMP_DONE)
		s = comp_steps[s](&c);
	if (c.progress) {
		comp_rtt_sample(c.e);
		comp_timer_update(qp);
	}
	ipd_eng_apply_error(qp);
}
