// SPDX-License-Identifier: MIT
/*
 * The data path: work requests into the SQ/RQ/SRQ rings, completions out of
 * the CQ ring.  Nothing here talks to the socket; the only system call is
 * the doorbell write when the daemon said it is asleep (ipathd/ring.h).
 *
 * Validation is what hardware does before accepting a work request: QP
 * state, opcode for the QP type, SGE count and inline size against the
 * QP's capabilities, queue space.  The rest (keys, bounds, permissions) is
 * the daemon's, reported as completion errors.
 */
#include <endian.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipathd.h"

#define OPBIT(op) (1u << (op))

/* Send opcodes each QP type accepts (IBA 9.4.x; UD: SEND only). */
static const uint32_t legal_send_ops[] = {
	[IBV_QPT_RC] = OPBIT(IBV_WR_SEND) | OPBIT(IBV_WR_SEND_WITH_IMM) |
		       OPBIT(IBV_WR_SEND_WITH_INV) | OPBIT(IBV_WR_RDMA_WRITE) |
		       OPBIT(IBV_WR_RDMA_WRITE_WITH_IMM) |
		       OPBIT(IBV_WR_RDMA_READ) |
		       OPBIT(IBV_WR_ATOMIC_CMP_AND_SWP) |
		       OPBIT(IBV_WR_ATOMIC_FETCH_AND_ADD),
	[IBV_QPT_UC] = OPBIT(IBV_WR_SEND) | OPBIT(IBV_WR_SEND_WITH_IMM) |
		       OPBIT(IBV_WR_RDMA_WRITE) |
		       OPBIT(IBV_WR_RDMA_WRITE_WITH_IMM),
	[IBV_QPT_UD] = OPBIT(IBV_WR_SEND) | OPBIT(IBV_WR_SEND_WITH_IMM),
	/* XRC INI: what RC offers; XRC_RECV (TGT) QPs have no send queue. */
	[IBV_QPT_XRC_SEND] = OPBIT(IBV_WR_SEND) | OPBIT(IBV_WR_SEND_WITH_IMM) |
			     OPBIT(IBV_WR_SEND_WITH_INV) |
			     OPBIT(IBV_WR_RDMA_WRITE) |
			     OPBIT(IBV_WR_RDMA_WRITE_WITH_IMM) |
			     OPBIT(IBV_WR_RDMA_READ) |
			     OPBIT(IBV_WR_ATOMIC_CMP_AND_SWP) |
			     OPBIT(IBV_WR_ATOMIC_FETCH_AND_ADD),
};

/* Opcodes that may carry inline data (they read local memory only). */
static const uint32_t inline_ops =
	OPBIT(IBV_WR_SEND) | OPBIT(IBV_WR_SEND_WITH_IMM) |
	OPBIT(IBV_WR_SEND_WITH_INV) | OPBIT(IBV_WR_RDMA_WRITE) |
	OPBIT(IBV_WR_RDMA_WRITE_WITH_IMM);

static bool op_legal(enum ibv_qp_type type, unsigned int op)
{
	if ((unsigned int)type >= sizeof(legal_send_ops) /
				  sizeof(legal_send_ops[0]) || op >= 32)
		return false;
	return legal_send_ops[type] & OPBIT(op);
}

/* A send queue accepts work once the QP is ready to send (IBA 10.8.2). */
static bool sq_accepts(const struct ibv_qp *qp)
{
	return qp->state != IBV_QPS_RESET && qp->state != IBV_QPS_INIT &&
	       qp->state != IBV_QPS_RTR;
}

/* XRC_RECV (TGT) QPs, and QPs of ibv_open_qp, have no send queue. */
static bool has_sq(const struct ipd_qp *qp)
{
	return qp->sq.hdr != NULL;
}

static void ring_doorbell_ctx(struct ipd_context *ctx)
{
	uint64_t one = 1;

	if (!ipd_need_doorbell(ctx->page))
		return;
	if (write(ctx->doorbell_fd, &one, sizeof(one)) != sizeof(one)) {
		/* Counter saturated: the daemon is awake anyway. */
	}
}

static void ring_doorbell(struct ipd_qp *qp)
{
	ring_doorbell_ctx(to_ictx(qp->vqp.qp.context));
}

static uint32_t ring_prod(struct ipd_uring *r)
{
	/* Only this side writes prod (under r->lock). */
	return atomic_load_explicit(&r->hdr->prod, memory_order_relaxed);
}

static struct ipd_send_wqe *sq_slot(struct ipd_qp *qp, uint32_t idx)
{
	return ipd_ring_slot(qp->sq.hdr, qp->sq.size, qp->sq.slot_size, idx);
}

static void wqe_start(struct ipd_qp *qp, struct ipd_send_wqe *w,
		      uint64_t wr_id, unsigned int opcode, unsigned int flags)
{
	memset(w, 0, sizeof(*w));
	w->wr_id = wr_id;
	w->opcode = (uint8_t)opcode;
	w->send_flags = flags | (qp->sq_sig_all ? IBV_SEND_SIGNALED : 0);
}

/* Copy the SGEs' bytes into the slot (IBV_SEND_INLINE). */
static int wqe_inline_sges(struct ipd_qp *qp, struct ipd_send_wqe *w,
			   const struct ibv_sge *sg, int num_sge)
{
	uint32_t len = 0;
	int i;

	for (i = 0; i < num_sge; i++) {
		if (sg[i].length > qp->cap.max_inline_data - len)
			return EINVAL;
		memcpy(w->payload + len, (void *)(uintptr_t)sg[i].addr,
		       sg[i].length);
		len += sg[i].length;
	}
	w->inline_len = len;
	w->num_sge = 0;
	return 0;
}

static void wqe_sges(struct ipd_send_wqe *w, const struct ibv_sge *sg,
		     int num_sge)
{
	struct ipd_sge *s = ipd_send_wqe_sge(w);
	int i;

	for (i = 0; i < num_sge; i++) {
		s[i].addr = sg[i].addr;
		s[i].length = sg[i].length;
		s[i].lkey = sg[i].lkey;
	}
	w->num_sge = (uint16_t)num_sge;
}

static void wqe_remote(struct ipd_send_wqe *w, const struct ibv_send_wr *wr)
{
	switch (wr->opcode) {
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
	case IBV_WR_RDMA_READ:
		w->wr.rdma.remote_addr = wr->wr.rdma.remote_addr;
		w->wr.rdma.rkey = wr->wr.rdma.rkey;
		break;
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		w->wr.atomic.remote_addr = wr->wr.atomic.remote_addr;
		w->wr.atomic.compare_add = wr->wr.atomic.compare_add;
		w->wr.atomic.swap = wr->wr.atomic.swap;
		w->wr.atomic.rkey = wr->wr.atomic.rkey;
		break;
	default:
		break;
	}
	if (wr->opcode == IBV_WR_SEND_WITH_INV)
		w->imm_data = htobe32(wr->invalidate_rkey);
	else if (wr->opcode == IBV_WR_SEND_WITH_IMM ||
		 wr->opcode == IBV_WR_RDMA_WRITE_WITH_IMM)
		w->imm_data = wr->imm_data;
}

static int check_send_wr(struct ipd_qp *qp, const struct ibv_send_wr *wr)
{
	const struct ibv_qp *q = &qp->vqp.qp;

	if (!op_legal(q->qp_type, wr->opcode) || wr->num_sge < 0)
		return EINVAL;
	if (wr->send_flags & IBV_SEND_INLINE) {
		if (!(inline_ops & OPBIT(wr->opcode)))
			return EINVAL;
	} else if ((uint32_t)wr->num_sge > qp->cap.max_send_sge) {
		return EINVAL;
	}
	if (q->qp_type == IBV_QPT_UD && !wr->wr.ud.ah)
		return EINVAL;
	return 0;
}

static int build_send(struct ipd_qp *qp, struct ipd_send_wqe *w,
		      const struct ibv_send_wr *wr)
{
	int err = check_send_wr(qp, wr);

	if (err)
		return err;
	wqe_start(qp, w, wr->wr_id, wr->opcode, wr->send_flags);
	if (wr->send_flags & IBV_SEND_INLINE)
		err = wqe_inline_sges(qp, w, wr->sg_list, wr->num_sge);
	else
		wqe_sges(w, wr->sg_list, wr->num_sge);
	if (err)
		return err;
	wqe_remote(w, wr);
	if (qp->vqp.qp.qp_type == IBV_QPT_XRC_SEND)
		w->xrc_srqn = wr->qp_type.xrc.remote_srqn;
	if (qp->vqp.qp.qp_type == IBV_QPT_UD) {
		w->wr.ud.ah = wr->wr.ud.ah->handle;
		w->wr.ud.remote_qpn = wr->wr.ud.remote_qpn;
		w->wr.ud.remote_qkey = wr->wr.ud.remote_qkey;
	}
	return 0;
}

int ipd_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr,
		  struct ibv_send_wr **bad_wr)
{
	struct ipd_qp *qp = to_iqp(ibqp);
	struct ipd_app_pkt pkt;
	bool app_tx = false, app_ok;
	uint32_t prod, start;
	int err = 0;

	if (!has_sq(qp)) {
		*bad_wr = wr;
		return EINVAL;
	}
	app_ok = ipd_app_tx_ack_wait(qp);
	pthread_spin_lock(&qp->sq.lock);
	if (!sq_accepts(ibqp)) {
		err = EINVAL;
		goto out;
	}
	prod = start = ring_prod(&qp->sq);
	for (; wr; wr = wr->next) {
		if (wr->opcode == IBV_WR_BIND_MW ||
		    wr->opcode == IBV_WR_LOCAL_INV) {
			/* Control-path operations (mw.c): publish what came
			 * before, let go of the ring while waiting for it. */
			if (prod != start) {
				ipd_ring_publish(qp->sq.hdr, prod);
				ring_doorbell(qp);
			}
			pthread_spin_unlock(&qp->sq.lock);
			err = ipd_mw_post(qp, wr, prod);
			pthread_spin_lock(&qp->sq.lock);
			prod = start = ring_prod(&qp->sq);
			if (err)
				break;
			continue;
		}
		if (ipd_ring_full(qp->sq.hdr, qp->sq.size, prod)) {
			err = ENOMEM;
			break;
		}
		err = build_send(qp, sq_slot(qp, prod), wr);
		if (err)
			break;
		if (app_ok && prod == start && !wr->next)
			app_tx = ipd_app_tx_prepare(qp, sq_slot(qp, prod), prod,
						    &pkt);
		prod++;
	}
	if (prod != start) {
		ipd_ring_publish(qp->sq.hdr, prod);
		if (app_tx)
			ipd_app_tx_send(qp, &pkt);
		ring_doorbell(qp);
	}
out:
	pthread_spin_unlock(&qp->sq.lock);
	if (err)
		*bad_wr = wr;
	return err;
}

/* ------------------------------------------------------------------ */
/* Receive queues                                                      */

static int post_recv_ring(struct ipd_uring *r, uint32_t max_sge,
			  struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr)
{
	uint32_t prod, start;
	int err = 0, i;

	pthread_spin_lock(&r->lock);
	prod = start = ring_prod(r);
	for (; wr; wr = wr->next) {
		struct ipd_recv_wqe *w;

		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > max_sge) {
			err = EINVAL;
			break;
		}
		if (ipd_ring_full(r->hdr, r->size, prod)) {
			err = ENOMEM;
			break;
		}
		w = ipd_ring_slot(r->hdr, r->size, r->slot_size, prod);
		w->wr_id = wr->wr_id;
		w->num_sge = (uint32_t)wr->num_sge;
		w->reserved = 0;
		for (i = 0; i < wr->num_sge; i++) {
			w->sge[i].addr = wr->sg_list[i].addr;
			w->sge[i].length = wr->sg_list[i].length;
			w->sge[i].lkey = wr->sg_list[i].lkey;
		}
		prod++;
	}
	if (prod != start)
		ipd_ring_publish(r->hdr, prod);
	pthread_spin_unlock(&r->lock);
	if (err)
		*bad_wr = wr;
	return err;
}

int ipd_post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr,
		  struct ibv_recv_wr **bad_wr)
{
	struct ipd_qp *qp = to_iqp(ibqp);
	int err;

	/* A QP attached to an SRQ has no receive queue of its own. */
	if (ibqp->state == IBV_QPS_RESET || !qp->rq.hdr) {
		*bad_wr = wr;
		return EINVAL;
	}
	err = post_recv_ring(&qp->rq, qp->cap.max_recv_sge, wr, bad_wr);
	/* Data arriving wakes the daemon anyway; the doorbell (only when it
	 * sleeps) is for a QP the daemon moved to ERR, whose new receives
	 * must be flushed, and for a peer waiting out an RNR timer. */
	ring_doorbell(qp);
	return err;
}

int ipd_post_srq_recv(struct ibv_srq *ibsrq, struct ibv_recv_wr *wr,
		      struct ibv_recv_wr **bad_wr)
{
	struct ipd_srq *srq = to_isrq(ibsrq);
	int err;

	err = post_recv_ring(&srq->ring, srq->max_sge, wr, bad_wr);
	ring_doorbell_ctx(to_ictx(ibsrq->context));
	return err;
}

/* ------------------------------------------------------------------ */
/* Completions                                                         */

static struct ipd_cqe *cq_slot(struct ipd_cq *cq, uint32_t idx)
{
	return ipd_ring_slot(cq->ring.hdr, cq->ring.size, cq->ring.slot_size,
			     idx);
}

static uint32_t cq_cons(struct ipd_cq *cq)
{
	/* Only this side writes cons (under the CQ lock). */
	return atomic_load_explicit(&cq->ring.hdr->cons, memory_order_relaxed);
}

/* Completions ready at cons; with the daemon gone, the flushes it can no
 * longer write come after the last of its own (fatal.c). */
static uint32_t cq_avail(struct ipd_cq *cq, uint32_t cons)
{
	uint32_t avail = ipd_ring_avail(cq->ring.hdr, cons);

	if (!avail && ipd_fatal_flush(cq))
		avail = ipd_ring_avail(cq->ring.hdr, cons);
	return avail;
}

static void cqe_to_wc(struct ibv_wc *wc, const struct ipd_cqe *e)
{
	wc->wr_id = e->wr_id;
	wc->status = (enum ibv_wc_status)e->status;
	wc->opcode = (enum ibv_wc_opcode)e->opcode;
	wc->vendor_err = e->vendor_err;
	wc->byte_len = e->byte_len;
	if (e->wc_flags & IBV_WC_WITH_INV)
		wc->invalidated_rkey = be32toh(e->imm_data);
	else
		wc->imm_data = e->imm_data;
	wc->qp_num = e->qp_num;
	wc->src_qp = e->src_qp;
	wc->wc_flags = e->wc_flags;
	wc->pkey_index = e->pkey_index;
	wc->slid = e->slid;
	wc->sl = e->sl;
	wc->dlid_path_bits = e->dlid_path_bits;
}

/*
 * An application polling an empty CQ is waiting for the daemon, which needs
 * a CPU to make progress.  Verbs applications busy-poll; on a machine with
 * no CPU to spare they would hold the daemon off for a whole scheduler
 * slice, so after CQ_SPIN_POLLS empty polls in a row the thread yields on
 * every empty poll.  The first empty polls only spin: with a CPU free for
 * the daemon the completion usually comes within them, and a yield (a
 * system call, a fraction of a microsecond) would only delay seeing it.
 */
#define CQ_SPIN_POLLS 64

static _Thread_local unsigned int cq_empty_polls;

static void cq_poll_pace(int n)
{
	if (n) {
		cq_empty_polls = 0;
		return;
	}
	if (cq_empty_polls < CQ_SPIN_POLLS) {
		cq_empty_polls++;
		return;
	}
	sched_yield();
}

int ipd_poll_cq(struct ibv_cq *ibcq, int num_entries, struct ibv_wc *wc)
{
	struct ipd_cq *cq = to_icq(ibcq);
	uint32_t cons, avail;
	int n;

	if (num_entries < 0)
		return -1;
	pthread_spin_lock(&cq->ring.lock);
	cons = cq_cons(cq);
	avail = cq_avail(cq, cons);
	for (n = 0; (uint32_t)n < avail && n < num_entries; n++)
		cqe_to_wc(&wc[n], cq_slot(cq, cons + (uint32_t)n));
	if (n)
		ipd_ring_release(cq->ring.hdr, cons + (uint32_t)n);
	pthread_spin_unlock(&cq->ring.lock);
	cq_poll_pace(n);
	return n;
}

int ipd_req_notify_cq(struct ibv_cq *ibcq, int solicited_only)
{
	struct ipd_cq *cq = to_icq(ibcq);

	/*
	 * The daemon reads the arm word after publishing each completion
	 * (daemon/cq.c); the fence orders our store before the caller's next
	 * poll, so a completion is either polled or fires the event.
	 */
	atomic_store_explicit(&cq->ring.hdr->arm,
			      solicited_only ? IPD_CQ_ARM_SOLICITED :
					       IPD_CQ_ARM_NEXT,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

/* ibv_cq_ex: the lock is held from a successful start_poll to end_poll. */

static void cq_ex_load(struct ipd_cq *cq, struct ipd_cqe *e)
{
	cq->cur = e;
	cq->vcq.cq_ex.wr_id = e->wr_id;
	cq->vcq.cq_ex.status = (enum ibv_wc_status)e->status;
}

static int cq_start_poll(struct ibv_cq_ex *ibcq, struct ibv_poll_cq_attr *attr)
{
	struct ipd_cq *cq = cqex_to_icq(ibcq);
	uint32_t cons;

	if (attr->comp_mask)
		return EINVAL;
	pthread_spin_lock(&cq->ring.lock);
	cons = cq_cons(cq);
	if (!cq_avail(cq, cons)) {
		pthread_spin_unlock(&cq->ring.lock);
		return ENOENT;
	}
	cq_ex_load(cq, cq_slot(cq, cons));
	return 0;
}

static int cq_next_poll(struct ibv_cq_ex *ibcq)
{
	struct ipd_cq *cq = cqex_to_icq(ibcq);
	uint32_t cons = cq_cons(cq);

	if (cq->cur) {
		cq->cur = NULL;
		ipd_ring_release(cq->ring.hdr, ++cons);
	}
	if (!cq_avail(cq, cons))
		return ENOENT;
	cq_ex_load(cq, cq_slot(cq, cons));
	return 0;
}

static void cq_end_poll(struct ibv_cq_ex *ibcq)
{
	struct ipd_cq *cq = cqex_to_icq(ibcq);

	if (cq->cur) {
		cq->cur = NULL;
		ipd_ring_release(cq->ring.hdr, cq_cons(cq) + 1);
	}
	pthread_spin_unlock(&cq->ring.lock);
}

static enum ibv_wc_opcode cq_read_opcode(struct ibv_cq_ex *ibcq)
{
	return (enum ibv_wc_opcode)cqex_to_icq(ibcq)->cur->opcode;
}

static uint32_t cq_read_vendor_err(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->vendor_err;
}

static uint32_t cq_read_byte_len(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->byte_len;
}

/* Immediate data or (IBV_WC_WITH_INV) the invalidated rkey, big-endian. */
static __be32 cq_read_imm_data(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->imm_data;
}

static uint32_t cq_read_qp_num(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->qp_num;
}

static uint32_t cq_read_src_qp(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->src_qp;
}

static unsigned int cq_read_wc_flags(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->wc_flags;
}

static uint32_t cq_read_slid(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->slid;
}

static uint8_t cq_read_sl(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->sl;
}

static uint8_t cq_read_dlid_path_bits(struct ibv_cq_ex *ibcq)
{
	return cqex_to_icq(ibcq)->cur->dlid_path_bits;
}

/* Not offered (create_cq_ex refuses these flags); here so none is NULL. */
static uint64_t cq_read_zero64(struct ibv_cq_ex *ibcq)
{
	return 0;
}

static uint16_t cq_read_cvlan(struct ibv_cq_ex *ibcq)
{
	return 0;
}

static uint32_t cq_read_flow_tag(struct ibv_cq_ex *ibcq)
{
	return 0;
}

static void cq_read_tm_info(struct ibv_cq_ex *ibcq, struct ibv_wc_tm_info *tm)
{
	memset(tm, 0, sizeof(*tm));
}

void ipd_cq_ex_init(struct ipd_cq *cq)
{
	struct ibv_cq_ex *c = &cq->vcq.cq_ex;

	c->start_poll = cq_start_poll;
	c->next_poll = cq_next_poll;
	c->end_poll = cq_end_poll;
	c->read_opcode = cq_read_opcode;
	c->read_vendor_err = cq_read_vendor_err;
	c->read_byte_len = cq_read_byte_len;
	c->read_imm_data = cq_read_imm_data;
	c->read_qp_num = cq_read_qp_num;
	c->read_src_qp = cq_read_src_qp;
	c->read_wc_flags = cq_read_wc_flags;
	c->read_slid = cq_read_slid;
	c->read_sl = cq_read_sl;
	c->read_dlid_path_bits = cq_read_dlid_path_bits;
	c->read_completion_ts = cq_read_zero64;
	c->read_cvlan = cq_read_cvlan;
	c->read_flow_tag = cq_read_flow_tag;
	c->read_tm_info = cq_read_tm_info;
	c->read_completion_wallclock_ns = cq_read_zero64;
}

/* ------------------------------------------------------------------ */
/* ibv_qp_ex work request builders: the SQ lock is held from wr_start to  */
/* wr_complete/wr_abort; the first error sticks and fails wr_complete.   */

static void wr_fail(struct ipd_qp *qp, int err)
{
	if (!qp->wr_err)
		qp->wr_err = err;
	qp->wr_cur = NULL;
}

static void wr_start(struct ibv_qp_ex *ibqp)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);

	pthread_spin_lock(&qp->sq.lock);
	qp->wr_prod = has_sq(qp) ? ring_prod(&qp->sq) : 0;
	qp->wr_cur = NULL;
	qp->ndefer = 0;
	qp->wr_err = has_sq(qp) && sq_accepts(&qp->vqp.qp) ? 0 : EINVAL;
}

static struct ipd_send_wqe *wr_new(struct ibv_qp_ex *ibqp, unsigned int op)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);
	struct ipd_send_wqe *w;

	qp->wr_cur = NULL;
	if (qp->wr_err)
		return NULL;
	if (!op_legal(qp->vqp.qp.qp_type, op)) {
		wr_fail(qp, EINVAL);
		return NULL;
	}
	if (ipd_ring_full(qp->sq.hdr, qp->sq.size, qp->wr_prod)) {
		wr_fail(qp, ENOMEM);
		return NULL;
	}
	w = sq_slot(qp, qp->wr_prod++);
	wqe_start(qp, w, ibqp->wr_id, op, ibqp->wr_flags);
	qp->wr_cur = w;
	return w;
}

static void wr_send(struct ibv_qp_ex *ibqp)
{
	wr_new(ibqp, IBV_WR_SEND);
}

static void wr_send_imm(struct ibv_qp_ex *ibqp, __be32 imm)
{
	struct ipd_send_wqe *w = wr_new(ibqp, IBV_WR_SEND_WITH_IMM);

	if (w)
		w->imm_data = imm;
}

static void wr_send_inv(struct ibv_qp_ex *ibqp, uint32_t rkey)
{
	struct ipd_send_wqe *w = wr_new(ibqp, IBV_WR_SEND_WITH_INV);

	if (w)
		w->imm_data = htobe32(rkey);
}

static void wr_rdma(struct ibv_qp_ex *ibqp, unsigned int op, uint32_t rkey,
		    uint64_t raddr, __be32 imm)
{
	struct ipd_send_wqe *w = wr_new(ibqp, op);

	if (!w)
		return;
	w->wr.rdma.remote_addr = raddr;
	w->wr.rdma.rkey = rkey;
	w->imm_data = imm;
}

static void wr_rdma_write(struct ibv_qp_ex *ibqp, uint32_t rkey,
			  uint64_t raddr)
{
	wr_rdma(ibqp, IBV_WR_RDMA_WRITE, rkey, raddr, 0);
}

static void wr_rdma_write_imm(struct ibv_qp_ex *ibqp, uint32_t rkey,
			      uint64_t raddr, __be32 imm)
{
	wr_rdma(ibqp, IBV_WR_RDMA_WRITE_WITH_IMM, rkey, raddr, imm);
}

static void wr_rdma_read(struct ibv_qp_ex *ibqp, uint32_t rkey,
			 uint64_t raddr)
{
	wr_rdma(ibqp, IBV_WR_RDMA_READ, rkey, raddr, 0);
}

static void wr_atomic(struct ibv_qp_ex *ibqp, unsigned int op, uint32_t rkey,
		      uint64_t raddr, uint64_t compare_add, uint64_t swap)
{
	struct ipd_send_wqe *w = wr_new(ibqp, op);

	if (!w)
		return;
	w->wr.atomic.remote_addr = raddr;
	w->wr.atomic.rkey = rkey;
	w->wr.atomic.compare_add = compare_add;
	w->wr.atomic.swap = swap;
}

static void wr_atomic_cmp_swp(struct ibv_qp_ex *ibqp, uint32_t rkey,
			      uint64_t raddr, uint64_t compare, uint64_t swap)
{
	wr_atomic(ibqp, IBV_WR_ATOMIC_CMP_AND_SWP, rkey, raddr, compare, swap);
}

static void wr_atomic_fetch_add(struct ibv_qp_ex *ibqp, uint32_t rkey,
				uint64_t raddr, uint64_t add)
{
	wr_atomic(ibqp, IBV_WR_ATOMIC_FETCH_AND_ADD, rkey, raddr, add, 0);
}

static void wr_set_ud_addr(struct ibv_qp_ex *ibqp, struct ibv_ah *ah,
			   uint32_t remote_qpn, uint32_t remote_qkey)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);
	struct ipd_send_wqe *w = qp->wr_cur;

	if (!w)
		return;
	if (!ah) {
		wr_fail(qp, EINVAL);
		return;
	}
	w->wr.ud.ah = ah->handle;
	w->wr.ud.remote_qpn = remote_qpn;
	w->wr.ud.remote_qkey = remote_qkey;
}

static void wr_set_sge_list(struct ibv_qp_ex *ibqp, size_t num_sge,
			    const struct ibv_sge *sg)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);
	struct ipd_send_wqe *w = qp->wr_cur;

	if (!w)
		return;
	if (num_sge > qp->cap.max_send_sge) {
		wr_fail(qp, EINVAL);
		return;
	}
	wqe_sges(w, sg, (int)num_sge);
}

static void wr_set_sge(struct ibv_qp_ex *ibqp, uint32_t lkey, uint64_t addr,
		       uint32_t length)
{
	struct ibv_sge sge = { .addr = addr, .length = length, .lkey = lkey };

	wr_set_sge_list(ibqp, 1, &sge);
}

static void wr_set_inline_data_list(struct ibv_qp_ex *ibqp, size_t num_buf,
				    const struct ibv_data_buf *buf)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);
	struct ipd_send_wqe *w = qp->wr_cur;
	size_t len = 0, i;

	if (!w)
		return;
	if (!(inline_ops & OPBIT(w->opcode))) {
		wr_fail(qp, EINVAL);
		return;
	}
	for (i = 0; i < num_buf; i++) {
		if (buf[i].length > qp->cap.max_inline_data - len) {
			wr_fail(qp, EINVAL);
			return;
		}
		memcpy(w->payload + len, buf[i].addr, buf[i].length);
		len += buf[i].length;
	}
	w->inline_len = (uint32_t)len;
	w->num_sge = 0;
	w->send_flags |= IBV_SEND_INLINE;
}

static void wr_set_inline_data(struct ibv_qp_ex *ibqp, void *addr,
			       size_t length)
{
	struct ibv_data_buf b = { .addr = addr, .length = length };

	wr_set_inline_data_list(ibqp, 1, &b);
}

/* ---- wr_bind_mw / wr_local_inv ----------------------------------------
 * They change the daemon's key tables, so they are control requests, as
 * in post_send (mw.c): noted here in their place in the batch and run by
 * wr_complete once the WQEs before them are published and retired. */

#define IPD_WR_DEFER_MAX 16

struct ipd_wr_defer {
	uint32_t pos;                /* WQEs before it: ring index */
	struct ibv_send_wr wr;       /* IBV_WR_BIND_MW or IBV_WR_LOCAL_INV */
};

static void wr_defer(struct ibv_qp_ex *ibqp, struct ibv_send_wr *wr)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);
	struct ipd_wr_defer *d;

	qp->wr_cur = NULL;
	if (qp->wr_err)
		return;
	if (!qp->defer)
		qp->defer = calloc(IPD_WR_DEFER_MAX, sizeof(*qp->defer));
	if (!qp->defer || qp->ndefer == IPD_WR_DEFER_MAX) {
		wr_fail(qp, ENOMEM);
		return;
	}
	wr->wr_id = ibqp->wr_id;
	wr->send_flags = ibqp->wr_flags;
	d = &qp->defer[qp->ndefer++];
	d->pos = qp->wr_prod;
	d->wr = *wr;
}

static void wr_bind_mw(struct ibv_qp_ex *ibqp, struct ibv_mw *mw,
		       uint32_t rkey, const struct ibv_mw_bind_info *info)
{
	struct ibv_send_wr wr = { .opcode = IBV_WR_BIND_MW };

	wr.bind_mw.mw = mw;
	wr.bind_mw.rkey = rkey;
	wr.bind_mw.bind_info = *info;
	wr_defer(ibqp, &wr);
}

static void wr_local_inv(struct ibv_qp_ex *ibqp, uint32_t rkey)
{
	struct ibv_send_wr wr = { .opcode = IBV_WR_LOCAL_INV };

	wr.invalidate_rkey = rkey;
	wr_defer(ibqp, &wr);
}

/* Under the SQ lock, which each request lets go of while it waits.  The
 * WQEs before a failing operation are already posted (as post_send's
 * bad_wr); those after it are not. */
static int wr_run_deferred(struct ipd_qp *qp)
{
	int err = 0;

	for (unsigned int i = 0; i < qp->ndefer && !err; i++) {
		struct ipd_wr_defer *d = &qp->defer[i];

		if (d->pos != ring_prod(&qp->sq)) {
			ipd_ring_publish(qp->sq.hdr, d->pos);
			ring_doorbell(qp);
		}
		pthread_spin_unlock(&qp->sq.lock);
		err = ipd_mw_post(qp, &d->wr, d->pos);
		pthread_spin_lock(&qp->sq.lock);
	}
	qp->ndefer = 0;
	return err;
}

static int wr_complete(struct ibv_qp_ex *ibqp)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);
	int err = qp->wr_err;

	if (!err && qp->ndefer)
		err = wr_run_deferred(qp);
	/* All or nothing (but for bind/invalidate, above): a failed batch
	 * publishes none of its WQEs. */
	if (!err && qp->wr_prod != ring_prod(&qp->sq)) {
		ipd_ring_publish(qp->sq.hdr, qp->wr_prod);
		ring_doorbell(qp);
	}
	qp->wr_cur = NULL;
	pthread_spin_unlock(&qp->sq.lock);
	return err;
}

static void wr_abort(struct ibv_qp_ex *ibqp)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);

	qp->wr_cur = NULL;
	qp->ndefer = 0;
	pthread_spin_unlock(&qp->sq.lock);
}

/* Builders for operations ipathd does not offer; create_qp_ex refuses them. */

static void wr_send_tso(struct ibv_qp_ex *ibqp, void *hdr, uint16_t hdr_sz,
			uint16_t mss)
{
	wr_fail(qpex_to_iqp(ibqp), EOPNOTSUPP);
}

static void wr_set_xrc_srqn(struct ibv_qp_ex *ibqp, uint32_t srqn)
{
	struct ipd_qp *qp = qpex_to_iqp(ibqp);

	if (!qp->wr_cur)
		return;
	if (qp->vqp.qp.qp_type != IBV_QPT_XRC_SEND) {
		wr_fail(qp, EINVAL);
		return;
	}
	qp->wr_cur->xrc_srqn = srqn;
}

static void wr_atomic_write(struct ibv_qp_ex *ibqp, uint32_t rkey,
			    uint64_t raddr, const void *atomic_wr)
{
	wr_fail(qpex_to_iqp(ibqp), EOPNOTSUPP);
}

void ipd_qp_ex_init(struct ipd_qp *qp)
{
	struct ibv_qp_ex *x = &qp->vqp.qp_ex;

	x->wr_atomic_cmp_swp = wr_atomic_cmp_swp;
	x->wr_atomic_fetch_add = wr_atomic_fetch_add;
	x->wr_bind_mw = wr_bind_mw;
	x->wr_local_inv = wr_local_inv;
	x->wr_rdma_read = wr_rdma_read;
	x->wr_rdma_write = wr_rdma_write;
	x->wr_rdma_write_imm = wr_rdma_write_imm;
	x->wr_send = wr_send;
	x->wr_send_imm = wr_send_imm;
	x->wr_send_inv = wr_send_inv;
	x->wr_send_tso = wr_send_tso;
	x->wr_set_ud_addr = wr_set_ud_addr;
	x->wr_set_xrc_srqn = wr_set_xrc_srqn;
	x->wr_set_inline_data = wr_set_inline_data;
	x->wr_set_inline_data_list = wr_set_inline_data_list;
	x->wr_set_sge = wr_set_sge;
	x->wr_set_sge_list = wr_set_sge_list;
	x->wr_start = wr_start;
	x->wr_complete = wr_complete;
	x->wr_abort = wr_abort;
	x->wr_atomic_write = wr_atomic_write;
}
