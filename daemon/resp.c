// SPDX-License-Identifier: MIT
/*
 * The responder: request packets become memory writes, receive completions,
 * READ responses and ACKs (IBA 9.7.4, 9.7.5.1).  One state per check, in the
 * order of the IBA responder flow: PSN, opcode sequence, opcode validity,
 * resources (receive WQE), R_Key, execute, acknowledge, complete (the ACK
 * first, as a NIC's leaves when the data is placed: resp_acknowledge).  Errors
 * become NAKs on RC and silent drops on UC/UD.
 */
#include <string.h>

#include "engine_priv.h"

enum resp_state {
	RESP_CHECK_PSN,
	RESP_CHECK_OP_SEQ,
	RESP_CHECK_XRC,
	RESP_CHECK_OP_VALID,
	RESP_CHECK_RESOURCE,
	RESP_CHECK_RKEY,
	RESP_EXECUTE,
	RESP_ACKNOWLEDGE,
	RESP_COMPLETE,
	RESP_DUPLICATE,
	RESP_NAK_SEQ,
	RESP_RNR,
	RESP_ERR_INV_REQ,
	RESP_ERR_ACCESS,
	RESP_ERR_LENGTH,
	RESP_ERR_LOCAL,
	RESP_DROP,
	RESP_DONE,
};

struct resp_ctx {
	struct ipd_qp *qp;
	struct ipd_engine_qp *e;
	struct ipd_pkt *pkt;
	void *mem;          /* resolved remote address (atomics) */
	bool held;          /* pkt was kept out of order (ooo.c) */
};

static bool is_rc(const struct ipd_qp *qp)
{
	return ipd_qpt_reliable(qp->type);
}

static bool is_xrc_tgt(const struct ipd_qp *qp)
{
	return qp->type == IBV_QPT_XRC_RECV;
}

/* The PD remote access is checked in: an XRC TGT QP has none of its own,
 * the XRC SRQ of the message lends its PD (IBA 9.8.4 XRC protection). */
static struct ipd_pd *resp_pd(const struct ipd_qp *qp)
{
	if (is_xrc_tgt(qp))
		return qp->eng->xsrq ? qp->eng->xsrq->pd : NULL;
	return qp->pd;
}

/* The PD of a request identified by its XRC SRQ number srqn (ignored
 * unless qp is a TGT QP): READ responses are built, and duplicates
 * checked, apart from the message in progress, so they look the SRQ up
 * again; NULL when it is gone or not of the QP's domain. */
static struct ipd_pd *resp_srqn_pd(struct ipd_qp *qp, uint32_t srqn)
{
	struct ipd_srq *srq;

	if (!is_xrc_tgt(qp))
		return qp->pd;
	srq = ipd_srq_xrc_lookup(qp->dev, srqn, qp->xrc_dom);
	return srq ? srq->pd : NULL;
}

/* The XRC SRQ number a request names (0 on other transports). */
static uint32_t pkt_srqn(const struct ipd_pkt *pkt)
{
	return pkt->mask & IPD_XRCETH_MASK ? ipd_xrceth_srqn(pkt->hdr) : 0;
}

/* ---- sending responses ------------------------------------------- */

static struct ipd_pkt *resp_pkt(struct ipd_qp *qp, uint8_t op, uint32_t psn,
				uint32_t paylen)
{
	return ipd_eng_pkt_new(qp, &qp->av, ipd_qpt_opcode_base(qp->type) | op,
			       qp->attr.dest_qp_num, psn, paylen, false,
			       false);
}

static uint32_t read_npsn(const struct ipd_qp *qp, uint32_t len)
{
	unsigned int mtu = ipd_eng_mtu(qp);

	return len ? (len + mtu - 1) / mtu : 1;
}

/* ---- the response queue ------------------------------------------- */

static bool rsp_empty(const struct ipd_engine_qp *e)
{
	return e->rsp_head == e->rsp_tail;
}

bool ipd_resp_quiet(const struct ipd_qp *qp)
{
	return rsp_empty(qp->eng);
}

static struct ipd_resp_item *rsp_at(struct ipd_engine_qp *e, uint32_t i)
{
	return &e->rsp[i % IPD_RESP_QUEUE];
}

static bool is_plain_ack(const struct ipd_pkt *pkt)
{
	return pkt && (pkt->opcode == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE) ||
		       pkt->opcode == (IPD_OP_XRC | IPD_OP_ACKNOWLEDGE));
}

/* Send now when nothing is queued, else queue behind the READ data.  ACKs
 * and NAKs are cumulative: a newer one replaces a queued one at the tail.
 * While the client may send this QP's next request itself (app_tx.c), a
 * response leaves at once, not at the end of the batch: the client may
 * post that request as soon as it sees the completion (which, under the
 * ACK flag, may show just before: resp_acknowledge), and a peer must see
 * the ACK before it (as from a NIC; perftest's latency tests in event
 * mode depend on it). */
static void resp_send(struct ipd_qp *qp, struct ipd_pkt *pkt)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_resp_item *tail;

	if (rsp_empty(e)) {
		ipd_net_xmit(qp->dev, pkt, &qp->av);
		ipd_app_tx_responded(qp);
		return;
	}
	/* behind READ data: no client request before it (published again
	 * once the queue drained) */
	ipd_app_tx_clear(qp);
	tail = rsp_at(e, e->rsp_tail - 1);
	if (is_plain_ack(pkt) && is_plain_ack(tail->pkt)) {
		ipd_pkt_free(qp->dev, tail->pkt);
		tail->pkt = pkt;
		return;
	}
	if (e->rsp_tail - e->rsp_head >= IPD_RESP_QUEUE) {
		/* The requester's timer recovers what is dropped here. */
		ipd_pkt_free(qp->dev, pkt);
		return;
	}
	tail = rsp_at(e, e->rsp_tail++);
	tail->pkt = pkt;
}

/* hole: a PSN sequence NAK's missing PSNs for a selective peer (hdr.h). */
static void resp_send_ack_hole(struct ipd_qp *qp, uint8_t syn, uint32_t psn,
			       uint32_t hole)
{
	struct ipd_pkt *pkt = resp_pkt(qp, IPD_OP_ACKNOWLEDGE, psn, 0);

	if (!pkt)
		return;
	ipd_aeth_set(pkt->hdr, syn, qp->eng->msn);
	if ((syn & IPD_AETH_TYPE_MASK) == IPD_AETH_NAK)
		qp->dev->cnt.naks_sent++;
	if (hole)
		ipd_bth_set_resv7(pkt->hdr, hole);
	resp_send(qp, pkt);
}

static void resp_send_ack(struct ipd_qp *qp, uint8_t syn, uint32_t psn)
{
	resp_send_ack_hole(qp, syn, psn, 0);
}

static void resp_send_atomic_ack(struct ipd_qp *qp, uint32_t psn,
				 uint64_t orig)
{
	struct ipd_pkt *pkt = resp_pkt(qp, IPD_OP_ATOMIC_ACK, psn, 0);

	if (!pkt)
		return;
	ipd_aeth_set(pkt->hdr, IPD_AETH_ACK_NO_CREDIT, qp->eng->msn);
	ipd_atmack_set(pkt->hdr, orig);
	resp_send(qp, pkt);
}

static uint8_t read_resp_op(bool started, bool last)
{
	if (!started)
		return last ? IPD_OP_READ_RESP_ONLY : IPD_OP_READ_RESP_FIRST;
	return last ? IPD_OP_READ_RESP_LAST : IPD_OP_READ_RESP_MIDDLE;
}

/* A direct READ response (docs/design.md "Direct loopback"): npsn
 * responses' worth of the READ's memory, read by the requester on arrival
 * through the same R_Key checks. */
static struct ipd_pkt *resp_read_direct(struct ipd_qp *qp,
					struct ipd_resp_item *it,
					struct ipd_pd *pd, uint8_t op,
					uint32_t chunk, uint32_t npsn)
{
	struct ipd_pkt *pkt = ipd_eng_pkt_new_ref(
		qp, &qp->av, ipd_qpt_opcode_base(qp->type) | op,
		qp->attr.dest_qp_num, it->psn, npsn, chunk, false, false);

	if (pkt) {
		pkt->ref->src = (struct ipd_mem){ .access = IBV_ACCESS_REMOTE_READ,
						  .rkey = it->rkey,
						  .va = it->va };
		ipd_pkt_ref_bind(pkt->ref, pd, qp);
	}
	return pkt;
}

/* IBA 9.7.5.1.3: one response packet per MTU, PSNs from the request's;
 * FIRST, LAST and ONLY carry an AETH (a direct packet: up to
 * IPD_DIRECT_PSNS of them at once).  Memory is read when the packet is
 * built (a direct one: delivered), so the MR is checked again.  False
 * when the item is finished. */
static bool resp_read_pkt(struct ipd_qp *qp, struct ipd_resp_item *it)
{
	unsigned int mtu = ipd_eng_mtu(qp);
	bool direct = it->resid && ipd_eng_direct_ok(qp, &qp->av);
	uint32_t max = direct ? mtu * IPD_DIRECT_PSNS : mtu;
	uint32_t chunk = it->resid < max ? it->resid : max;
	uint32_t npsn = chunk > mtu ? (chunk + mtu - 1) / mtu : 1;
	bool last = it->resid <= max;
	struct ipd_pd *pd = resp_srqn_pd(qp, it->srqn);
	uint8_t op = read_resp_op(it->started, last);
	const uint8_t *src = NULL;
	struct ipd_pkt *pkt;

	if (chunk) {
		src = ipd_rkey_ptr(qp, pd, it->rkey, it->va,
				   chunk < mtu ? chunk : mtu,
				   IBV_ACCESS_REMOTE_READ);
		if (!src)
			return false; /* MR gone: the requester times out */
	}
	pkt = direct ? resp_read_direct(qp, it, pd, op, chunk, npsn) :
		       resp_pkt(qp, op, it->psn, chunk);
	if (!pkt)
		return true; /* out of packets: try again next round */
	if (pkt->mask & IPD_AETH_MASK)
		ipd_aeth_set(pkt->hdr, IPD_AETH_ACK_NO_CREDIT, qp->eng->msn);
	if (chunk && !direct)
		memcpy(pkt->payload, src, chunk);
	ipd_net_xmit(qp->dev, pkt, &qp->av);
	it->started = true;
	it->va += chunk;
	it->resid -= chunk;
	it->psn = ipd_psn_add(it->psn, npsn);
	return !last;
}

bool ipd_resp_pump(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	unsigned int budget = IPD_READ_BUDGET;
	bool any = !rsp_empty(e);

	while (!rsp_empty(e) && budget) {
		struct ipd_resp_item *it = rsp_at(e, e->rsp_head);

		if (it->pkt) {
			ipd_net_xmit(qp->dev, it->pkt, &qp->av);
			it->pkt = NULL;
			e->rsp_head++;
			continue;
		}
		budget--;
		if (!resp_read_pkt(qp, it))
			e->rsp_head++;
	}
	return any;
}

void ipd_resp_drain(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	ipd_ooo_flush(qp);
	for (; !rsp_empty(e); e->rsp_head++) {
		struct ipd_resp_item *it = rsp_at(e, e->rsp_head);

		ipd_pkt_free(qp->dev, it->pkt);
		it->pkt = NULL;
	}
}

/* Queue the responses of the READ request pkt (sent by ipd_resp_pump,
 * in order). */
static void resp_send_read(struct ipd_qp *qp, const struct ipd_pkt *pkt)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_resp_item *it;
	uint32_t len = ipd_reth_len(pkt->hdr), psn = pkt->psn;

	if (e->rsp_tail - e->rsp_head >= IPD_RESP_QUEUE)
		return; /* the requester retries the READ */
	it = rsp_at(e, e->rsp_tail++);
	*it = (struct ipd_resp_item){ .va = ipd_reth_va(pkt->hdr),
				      .rkey = ipd_reth_rkey(pkt->hdr),
				      .srqn = pkt_srqn(pkt), .resid = len,
				      .psn = psn, .first_psn = psn };
	it->last_psn = ipd_psn_add(psn, read_npsn(qp, len) - 1);
	ipd_resp_pump(qp);
}

/* The queued READ whose PSN range holds psn, or NULL. */
static struct ipd_resp_item *rsp_find_read(struct ipd_engine_qp *e,
					   uint32_t psn)
{
	uint32_t i;

	for (i = e->rsp_head; i != e->rsp_tail; i++) {
		struct ipd_resp_item *it = rsp_at(e, i);

		if (!it->pkt && ipd_psn_cmp(psn, it->first_psn) >= 0 &&
		    ipd_psn_cmp(psn, it->last_psn) <= 0)
			return it;
	}
	return NULL;
}

/* A READ asked again from psn (va) while responses of it are still
 * queued (IBA 9.7.5.1.4: the repeated request may start anywhere in the
 * original).  The queued sequence is stretched to cover the part asked
 * for: it restarts at psn (a new FIRST) if that was sent already, and
 * runs to the later of the two ends. */
static void resp_restart_read(struct ipd_qp *qp, struct ipd_resp_item *it,
			      uint64_t va, uint32_t len, uint32_t psn)
{
	uint64_t end = it->va + it->resid;
	uint32_t last = ipd_psn_add(psn, read_npsn(qp, len) - 1);

	if (va + len > end)
		end = va + len;
	if (ipd_psn_cmp(last, it->last_psn) > 0)
		it->last_psn = last;
	if (ipd_psn_cmp(psn, it->psn) < 0) {
		it->va = va;
		it->psn = psn;
		it->started = false;
	}
	it->resid = (uint32_t)(end - it->va);
	ipd_resp_pump(qp);
}

/* ---- the READ/atomic resource cache -------------------------------- */

static struct ipd_resp_res *res_new(struct ipd_engine_qp *e,
				    enum ipd_res_type type, uint32_t first,
				    uint32_t last)
{
	struct ipd_resp_res *res = &e->res[e->res_next++ % IPD_RESP_RES];

	res->type = type;
	res->first_psn = first;
	res->last_psn = last;
	res->orig = 0;
	return res;
}

static struct ipd_resp_res *res_find(struct ipd_engine_qp *e,
				     enum ipd_res_type type, uint32_t psn)
{
	unsigned int i;

	for (i = 0; i < IPD_RESP_RES; i++) {
		struct ipd_resp_res *res = &e->res[i];

		if (res->type == type &&
		    ipd_psn_cmp(psn, res->first_psn) >= 0 &&
		    ipd_psn_cmp(psn, res->last_psn) <= 0)
			return res;
	}
	return NULL;
}

/* ---- receive WQEs ---------------------------------------------------- */

static struct ipd_pd *rwqe_pd(const struct ipd_qp *qp)
{
	return qp->srq ? qp->srq->pd : resp_pd(qp);
}

static int rq_take(struct ipd_qp *qp, struct ipd_rwqe *out)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_recv_wqe *r = (struct ipd_recv_wqe *)(void *)e->rq_slot;
	uint32_t max;

	if (!qp->rq.size || !ipd_queue_ready(&qp->rq))
		return -1;
	ipd_queue_copy_next(&qp->rq, r);
	max = (qp->rq.slot_size - (uint32_t)sizeof(*r)) / sizeof(r->sge[0]);
	if (max > IPD_MAX_SGE)
		max = IPD_MAX_SGE;
	out->wr_id = r->wr_id;
	/* A corrupt count leaves no buffer: the data gets a length error. */
	out->num_sge = r->num_sge <= max ? r->num_sge : 0;
	memcpy(out->sge, r->sge, out->num_sge * sizeof(r->sge[0]));
	return 0;
}

static bool rwqe_get(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	struct ipd_srq *srq = is_xrc_tgt(qp) ? e->xsrq : qp->srq;

	if (e->have_rwqe)
		return true;
	if (srq) {
		if (ipd_srq_take(srq, &e->rwqe))
			return false;
		if (e->rwqe.num_sge > IPD_MAX_SGE)
			e->rwqe.num_sge = 0;
	} else if (rq_take(qp, &e->rwqe)) {
		return false;
	}
	e->have_rwqe = true;
	e->rwqe_from_srq = srq != NULL;
	e->recv_off = 0;
	return true;
}

static void rwqe_release(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!e->have_rwqe)
		return;
	e->have_rwqe = false;
	e->recv_off = 0;
	if (!e->rwqe_from_srq)
		ipd_queue_release(&qp->rq, qp->rq.cons);
}

static void rwqe_complete(struct ipd_qp *qp, struct ipd_pkt *pkt, int status)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_cqe cqe = { 0 };
	uint32_t mask = pkt ? pkt->mask : 0;
	/* An XRC SRQ has its own CQ (ibv_create_srq_ex). */
	struct ipd_cq *cq = is_xrc_tgt(qp) ? e->xsrq->cq : qp->rcq;
	bool own_rq;

	cqe.wr_id = e->rwqe.wr_id;
	cqe.status = (uint32_t)status;
	cqe.opcode = IBV_WC_RECV;
	cqe.byte_len = e->recv_off;
	cqe.qp_num = qp->qpn;
	cqe.src_qp = qp->attr.dest_qp_num;
	if (mask & IPD_WRITE_MASK) {
		cqe.opcode = IBV_WC_RECV_RDMA_WITH_IMM;
		cqe.byte_len = e->write_len;
	}
	if (mask & IPD_IMMDT_MASK) {
		cqe.imm_data = ipd_immdt_raw(pkt->hdr);
		cqe.wc_flags |= IBV_WC_WITH_IMM;
	}
	if (mask & IPD_IETH_MASK) {
		memcpy(&cqe.imm_data, ipd_chdr_at(pkt->hdr, IPD_HDR_IETH), 4);
		cqe.wc_flags |= IBV_WC_WITH_INV;
		if (status == IBV_WC_SUCCESS)
			ipd_mw_remote_inv(qp, resp_pd(qp),
					  be32toh(cqe.imm_data));
	}
	/* IBA 11.4.2.2: SE on the last packet makes the completion
	 * solicited (for CQs armed with solicited_only). */
	if (pkt && ipd_bth_se(pkt->hdr))
		cqe.flags |= IPD_CQE_F_SOLICITED;
	if (mask & IPD_DETH_MASK) {
		cqe.src_qp = ipd_deth_sqp(pkt->hdr);
		cqe.wc_flags |= IBV_WC_GRH;
		cqe.pkey_index = (uint16_t)qp->attr.pkey_index;
	}
	/* Free the slot first: the client may repost as soon as it sees
	 * the completion. */
	own_rq = e->have_rwqe && !e->rwqe_from_srq;
	if (own_rq)
		ipd_queue_retire_begin(&qp->rq, qp->rq.cons, e->rwqe.wr_id,
				       cq ? &cq->q : NULL);
	rwqe_release(qp);
	ipd_eng_cq_post(qp, cq, &cqe);
	if (own_rq)
		ipd_queue_retire_end(&qp->rq);
}

/* ---- UD: the 40-byte GRH in front of the data (IBA 11.4.1.2) -------- */

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += ipd_get16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* As Linux rxe: an IPv4 peer's header fills the last 20 bytes. */
static void grh_build(const struct ipd_pkt *pkt, uint8_t grh[40])
{
	const struct sockaddr_in *s4 = (const void *)&pkt->src;
	const struct sockaddr_in *d4 = (const void *)&pkt->dst;
	const struct sockaddr_in6 *s6 = (const void *)&pkt->src;
	const struct sockaddr_in6 *d6 = (const void *)&pkt->dst;
	uint32_t ulen = 8 + pkt->len + 4; /* UDP + BTH.. + ICRC */

	memset(grh, 0, 40);
	if (pkt->src.ss_family == AF_INET6) {
		ipd_put32(grh, 6u << 28);
		ipd_put16(grh + 4, (uint16_t)ulen);
		grh[6] = IPPROTO_UDP;
		grh[7] = 64;
		memcpy(grh + 8, &s6->sin6_addr, 16);
		if (pkt->dst.ss_family == AF_INET6)
			memcpy(grh + 24, &d6->sin6_addr, 16);
		return;
	}
	if (pkt->src.ss_family != AF_INET)
		return;
	grh[20] = 0x45;
	ipd_put16(grh + 22, (uint16_t)(20 + ulen));
	ipd_put16(grh + 26, 0x4000); /* DF */
	grh[28] = 64;
	grh[29] = IPPROTO_UDP;
	memcpy(grh + 32, &s4->sin_addr, 4);
	if (pkt->dst.ss_family == AF_INET)
		memcpy(grh + 36, &d4->sin_addr, 4);
	ipd_put16(grh + 30, ip_csum(grh + 20, 20));
}

/* ---- the state machine -------------------------------------------- */

static void resp_abort_msg(struct ipd_engine_qp *e)
{
	e->in_send = false;
	e->in_write = false;
	e->recv_off = 0;
}

static enum resp_state resp_check_psn_uc(struct resp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;

	/* IBA 9.8.3: UC drops a message with a missing packet and waits for
	 * the next FIRST/ONLY. */
	if (!e->drop_msg && c->pkt->psn == e->rq_psn)
		return RESP_CHECK_OP_SEQ;
	resp_abort_msg(e);
	if (c->pkt->mask & IPD_FIRST_MASK) {
		e->drop_msg = false;
		return RESP_CHECK_OP_SEQ;
	}
	e->drop_msg = true;
	return RESP_DROP;
}

static enum resp_state resp_check_psn(struct resp_ctx *c)
{
	int32_t d;

	if (c->qp->type == IBV_QPT_UD)
		return RESP_CHECK_OP_SEQ;
	if (c->qp->type == IBV_QPT_UC)
		return resp_check_psn_uc(c);
	d = ipd_psn_cmp(c->pkt->psn, c->e->rq_psn);
	if (d > 0)
		return RESP_NAK_SEQ;
	if (d < 0)
		return RESP_DUPLICATE;
	return RESP_CHECK_OP_SEQ;
}

/* IBA 9.8.4: a TGT QP places an XRC message in the SRQ its XRCETH names,
 * which must be an XRC SRQ of the QP's own domain, and one message keeps
 * one SRQ; anything else is an invalid request. */
static enum resp_state resp_check_xrc(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_srq *srq;

	if (!is_xrc_tgt(qp))
		return RESP_CHECK_OP_VALID;
	srq = ipd_srq_xrc_lookup(qp->dev,
				 ipd_xrceth_srqn(c->pkt->hdr), qp->xrc_dom);
	if (!srq || (e->have_rwqe && srq != e->xsrq))
		return RESP_ERR_INV_REQ;
	e->xsrq = srq;
	return RESP_CHECK_OP_VALID;
}

static enum resp_state resp_check_op_seq(struct resp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	uint32_t mask = c->pkt->mask;
	bool cont = !(mask & IPD_FIRST_MASK);
	bool ok;

	if (c->qp->type == IBV_QPT_UC && !cont)
		resp_abort_msg(e); /* a new message ends a broken one */
	if (mask & IPD_SEND_MASK)
		ok = cont == e->in_send && !e->in_write;
	else if (mask & IPD_WRITE_MASK)
		ok = cont == e->in_write && !e->in_send;
	else
		ok = !e->in_send && !e->in_write;
	if (ok)
		return RESP_CHECK_XRC;
	if (is_rc(c->qp))
		return RESP_ERR_INV_REQ;
	e->drop_msg = true;
	resp_abort_msg(e);
	return RESP_DROP;
}

/* IBA 9.7.4.1.x: no packet exceeds the path MTU; FIRST and MIDDLE packets
 * carry exactly one MTU.  A direct packet is held to what the npsn packets
 * it stands for would carry: full MTUs but for the last one. */
static bool pkt_len_ok(const struct ipd_pkt *pkt, unsigned int mtu)
{
	uint64_t full = (uint64_t)pkt->npsn * mtu;

	if (pkt->paylen > full || (pkt->npsn > 1 && pkt->paylen <= full - mtu))
		return false;
	return !(pkt->mask & IPD_WRITE_OR_SEND_MASK &&
		 !(pkt->mask & IPD_LAST_MASK) && pkt->paylen != full);
}

/* Remote access the QP itself must allow (IBA 10.2.4.x, QP attributes). */
static const struct {
	uint32_t op_mask;
	uint32_t access;
} qp_access_needed[] = {
	{ IPD_WRITE_MASK, IBV_ACCESS_REMOTE_WRITE },
	{ IPD_READ_MASK, IBV_ACCESS_REMOTE_READ },
	{ IPD_ATOMIC_MASK, IBV_ACCESS_REMOTE_ATOMIC },
};

static enum resp_state resp_check_op_valid(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	uint32_t mask = c->pkt->mask;
	size_t i;

	if (!pkt_len_ok(c->pkt, ipd_eng_mtu(qp))) {
		if (is_rc(qp))
			return RESP_ERR_INV_REQ;
		if (qp->type == IBV_QPT_UC) {
			c->e->drop_msg = true;
			resp_abort_msg(c->e);
		}
		return RESP_DROP;
	}
	if (qp->type == IBV_QPT_UD) {
		if (ipd_deth_qkey(c->pkt->hdr) != qp->attr.qkey) {
			qp->dev->cnt.drop_bad_qkey++;
			return RESP_DONE;
		}
		return RESP_CHECK_RESOURCE;
	}
	for (i = 0; i < sizeof(qp_access_needed) / sizeof(qp_access_needed[0]);
	     i++) {
		if (!(mask & qp_access_needed[i].op_mask))
			continue;
		if (qp->attr.qp_access_flags & qp_access_needed[i].access)
			continue;
		if (is_rc(qp))
			return RESP_ERR_INV_REQ;
		c->e->drop_msg = true;
		return RESP_DROP;
	}
	return RESP_CHECK_RESOURCE;
}

static enum resp_state resp_check_resource(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;

	if (!(c->pkt->mask & IPD_RWR_MASK) || rwqe_get(qp))
		return RESP_CHECK_RKEY;
	if (is_rc(qp))
		return RESP_RNR;
	/* UC/UD: no receive WQE, the message is dropped (IBA 9.8.3). */
	if (qp->type == IBV_QPT_UC) {
		c->e->drop_msg = true;
		resp_abort_msg(c->e);
	}
	return RESP_DROP;
}

static enum resp_state resp_check_write(struct resp_ctx *c)
{
	struct ipd_engine_qp *e = c->e;
	struct ipd_pkt *pkt = c->pkt;

	if (pkt->mask & IPD_RETH_MASK) {
		e->write_va = ipd_reth_va(pkt->hdr);
		e->write_rkey = ipd_reth_rkey(pkt->hdr);
		e->write_resid = e->write_len = ipd_reth_len(pkt->hdr);
		/* A zero-length RDMA needs no valid R_Key (IBA 9.7.4.1.5). */
		if (e->write_len &&
		    !ipd_rkey_ptr(c->qp, resp_pd(c->qp), e->write_rkey,
				  e->write_va, e->write_len,
				  IBV_ACCESS_REMOTE_WRITE))
			return RESP_ERR_ACCESS;
	}
	/* FIRST/MIDDLE carry exactly npsn MTUs (pkt_len_ok); the total
	 * matches the RETH. */
	if (pkt->paylen > e->write_resid ||
	    (pkt->mask & IPD_LAST_MASK && pkt->paylen != e->write_resid))
		return RESP_ERR_INV_REQ;
	return RESP_EXECUTE;
}

static enum resp_state resp_check_rkey(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_pkt *pkt = c->pkt;

	if (pkt->mask & IPD_WRITE_MASK)
		return resp_check_write(c);
	if (pkt->mask & IPD_READ_MASK) {
		uint32_t len = ipd_reth_len(pkt->hdr);

		c->mem = len ? ipd_rkey_ptr(qp, resp_srqn_pd(qp, pkt_srqn(pkt)),
					    ipd_reth_rkey(pkt->hdr),
					    ipd_reth_va(pkt->hdr), len,
					    IBV_ACCESS_REMOTE_READ) :
			       NULL;
		return (len && !c->mem) ? RESP_ERR_ACCESS : RESP_EXECUTE;
	}
	if (pkt->mask & IPD_ATOMIC_MASK) {
		uint64_t va = ipd_atmeth_va(pkt->hdr);

		/* IBA 9.4.5: atomics need an 8-byte aligned address. */
		if (va & 7)
			return RESP_ERR_INV_REQ;
		c->mem = ipd_rkey_ptr(qp, resp_srqn_pd(qp, pkt_srqn(pkt)),
				      ipd_atmeth_rkey(pkt->hdr), va, 8,
				      IBV_ACCESS_REMOTE_ATOMIC);
		return c->mem ? RESP_EXECUTE : RESP_ERR_ACCESS;
	}
	return RESP_EXECUTE;
}

static enum resp_state resp_exec_send(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_pkt *pkt = c->pkt;
	int status;

	if (qp->type == IBV_QPT_UD) {
		uint8_t grh[IPD_UD_GRH_BYTES];

		grh_build(pkt, grh);
		status = ipd_sge_copy(qp->dev, rwqe_pd(qp), e->rwqe.sge,
				      e->rwqe.num_sge, 0, grh, sizeof(grh),
				      IPD_TO_MEM);
		if (status)
			return status == IBV_WC_LOC_LEN_ERR ? RESP_ERR_LENGTH :
							      RESP_ERR_LOCAL;
		e->recv_off = IPD_UD_GRH_BYTES;
	}
	if (pkt->ref) {
		struct ipd_mem dst = { .pd = rwqe_pd(qp),
				       .access = IBV_ACCESS_LOCAL_WRITE,
				       .sge = e->rwqe.sge,
				       .num_sge = e->rwqe.num_sge,
				       .off = e->recv_off };

		status = ipd_pkt_ref_copy_out(qp->dev, pkt, 0, pkt->paylen,
					      &dst, e->recv_off,
					      ipd_eng_mtu(qp));
		if (status < 0)
			return RESP_DONE; /* stale: lost, sent again */
	} else {
		status = ipd_sge_copy(qp->dev, rwqe_pd(qp), e->rwqe.sge,
				      e->rwqe.num_sge, e->recv_off,
				      pkt->payload, pkt->paylen, IPD_TO_MEM);
	}
	if (status)
		return status == IBV_WC_LOC_LEN_ERR ? RESP_ERR_LENGTH :
						      RESP_ERR_LOCAL;
	e->recv_off += pkt->paylen;
	e->in_send = !(pkt->mask & IPD_LAST_MASK);
	return RESP_ACKNOWLEDGE;
}

static enum resp_state resp_exec_write(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_pkt *pkt = c->pkt;
	void *dst;

	if (pkt->paylen && pkt->ref) {
		struct ipd_mem mem = { .pd = resp_pd(qp),
				       .access = IBV_ACCESS_REMOTE_WRITE,
				       .qp = qp,
				       .rkey = e->write_rkey,
				       .va = e->write_va };
		int status = ipd_pkt_ref_copy_out(
			qp->dev, pkt, 0, pkt->paylen, &mem,
			e->write_len - e->write_resid, ipd_eng_mtu(qp));

		if (status < 0)
			return RESP_DONE; /* stale: lost, sent again */
		if (status)
			return RESP_ERR_ACCESS;
	} else if (pkt->paylen) {
		/* Looked up per packet: the MR may be gone meanwhile. */
		dst = ipd_rkey_ptr(qp, resp_pd(qp), e->write_rkey,
				   e->write_va, pkt->paylen,
				   IBV_ACCESS_REMOTE_WRITE);
		if (!dst)
			return RESP_ERR_ACCESS;
		memcpy(dst, pkt->payload, pkt->paylen);
	}
	e->write_va += pkt->paylen;
	e->write_resid -= pkt->paylen;
	e->in_write = !(pkt->mask & IPD_LAST_MASK);
	return RESP_ACKNOWLEDGE;
}

static enum resp_state resp_exec_read(struct resp_ctx *c)
{
	struct ipd_pkt *pkt = c->pkt;
	uint32_t len = ipd_reth_len(pkt->hdr);
	uint32_t n = read_npsn(c->qp, len);

	res_new(c->e, IPD_RES_READ, pkt->psn, ipd_psn_add(pkt->psn, n - 1));
	c->e->msn++;
	resp_send_read(c->qp, pkt);
	return RESP_ACKNOWLEDGE;
}

/* Executed exactly once; duplicates replay the cached original value. */
static enum resp_state resp_exec_atomic(struct resp_ctx *c)
{
	struct ipd_pkt *pkt = c->pkt;
	uint64_t *p = c->mem, orig;

	if ((pkt->opcode & IPD_OP_OPERATION_MASK) == IPD_OP_COMPARE_SWAP) {
		orig = ipd_atmeth_comp(pkt->hdr);
		__atomic_compare_exchange_n(p, &orig,
					    ipd_atmeth_swap_add(pkt->hdr),
					    false, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
	} else {
		orig = __atomic_fetch_add(p, ipd_atmeth_swap_add(pkt->hdr),
					  __ATOMIC_SEQ_CST);
	}
	res_new(c->e, IPD_RES_ATOMIC, pkt->psn, pkt->psn)->orig = orig;
	c->e->msn++;
	resp_send_atomic_ack(c->qp, pkt->psn, orig);
	return RESP_ACKNOWLEDGE;
}

static enum resp_state resp_execute(struct resp_ctx *c)
{
	uint32_t mask = c->pkt->mask;

	if (mask & IPD_SEND_MASK)
		return resp_exec_send(c);
	if (mask & IPD_WRITE_MASK)
		return resp_exec_write(c);
	if (mask & IPD_READ_MASK)
		return resp_exec_read(c);
	return resp_exec_atomic(c);
}

static enum resp_state resp_complete(struct resp_ctx *c)
{
	rwqe_complete(c->qp, c->pkt, IBV_WC_SUCCESS);
	return RESP_DONE;
}

/* A client sending from its own socket (app_tx.c) once it sees the
 * receive completion must not overtake the ACK (as from a NIC; resp_send).
 * While it may (the word published) the completion shows first, under
 * the client-visible flag that holds its packets back until the ACK is
 * handed to the kernel, so that the ACK's sendto overlaps the client's
 * reaction; otherwise the ACK is queued first. */
static enum resp_state resp_acknowledge(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_pkt *pkt = c->pkt;
	enum resp_state next =
		pkt->mask & IPD_COMP_MASK ? RESP_COMPLETE : RESP_DONE;
	uint32_t n = pkt->npsn;

	if (qp->type == IBV_QPT_UD)
		return next;
	if (pkt->mask & IPD_READ_MASK)
		n = read_npsn(qp, ipd_reth_len(pkt->hdr));
	e->rq_psn = ipd_psn_add(pkt->psn, n);
	e->nak_sent = false;
	if (!is_rc(qp) || !(pkt->mask & IPD_WRITE_OR_SEND_MASK))
		return next;
	if (pkt->mask & IPD_LAST_MASK)
		e->msn++;
	/* IBA 9.7.5.1.1: coalesce, acknowledge when asked (after the
	 * packets kept out of order that run next, ooo.c). */
	if (!ipd_bth_ackreq(pkt->hdr) || ipd_ooo_defer_ack(qp))
		return next;
	if (next == RESP_COMPLETE && ipd_app_tx_owe_ack(qp)) {
		next = resp_complete(c);
		resp_send_ack(qp, IPD_AETH_ACK_NO_CREDIT,
			      ipd_psn_add(pkt->psn, n - 1));
		ipd_app_tx_ack_paid(qp);
		return next;
	}
	resp_send_ack(qp, IPD_AETH_ACK_NO_CREDIT, ipd_psn_add(pkt->psn, n - 1));
	return next;
}

/* IBA 9.7.5.1.4 / 9.7.5.2.x: duplicates are answered, never re-executed
 * except READs, which are re-read from memory. */
static enum resp_state resp_duplicate(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;
	struct ipd_pkt *pkt = c->pkt;
	struct ipd_resp_item *item;
	struct ipd_resp_res *res;

	qp->dev->cnt.dup_requests++;
	if (pkt->mask & IPD_WRITE_OR_SEND_MASK) {
		/* Re-ACK where the requester asked; acknowledging every
		 * duplicate of a go-back-N burst only floods the link. */
		if (ipd_bth_ackreq(pkt->hdr))
			resp_send_ack(qp, IPD_AETH_ACK_NO_CREDIT,
				      ipd_psn_add(e->rq_psn, IPD_PSN_MASK));
		return RESP_DONE;
	}
	if (pkt->mask & IPD_ATOMIC_MASK) {
		res = res_find(e, IPD_RES_ATOMIC, pkt->psn);
		if (res && res->first_psn == pkt->psn)
			resp_send_atomic_ack(qp, pkt->psn, res->orig);
		return RESP_DONE;
	}
	res = res_find(e, IPD_RES_READ, pkt->psn);
	if (!res)
		return RESP_DONE;
	if (resp_check_rkey(c) != RESP_EXECUTE)
		return RESP_DONE;
	item = rsp_find_read(e, pkt->psn);
	if (item && item->rkey == ipd_reth_rkey(pkt->hdr) &&
	    item->srqn == pkt_srqn(pkt) &&
	    ipd_reth_va(pkt->hdr) <= item->va + item->resid) {
		resp_restart_read(qp, item, ipd_reth_va(pkt->hdr),
				  ipd_reth_len(pkt->hdr), pkt->psn);
		return RESP_DONE;
	}
	/* Its responses went out: send the part asked for again, behind
	 * what is queued (still wanted: a requester asks only for what it
	 * lacks, and a go-back-N one drops the duplicates). */
	resp_send_read(qp, pkt);
	return RESP_DONE;
}

void ipd_resp_nak_seq(struct ipd_qp *qp, uint32_t hole)
{
	resp_send_ack_hole(qp, IPD_AETH_NAK_PSN_SEQ, qp->eng->rq_psn, hole);
}

void ipd_resp_ack_last(struct ipd_qp *qp)
{
	resp_send_ack(qp, IPD_AETH_ACK_NO_CREDIT,
		      ipd_psn_add(qp->eng->rq_psn, IPD_PSN_MASK));
}

static enum resp_state resp_nak_seq(struct resp_ctx *c)
{
	/* Kept for later (selective recovery, ooo.c), else dropped. */
	c->held = ipd_ooo_hold(c->qp, c->pkt);
	if (!c->held)
		c->qp->dev->cnt.drop_seq++;
	/* IBA 9.7.5.1.2: one NAK per gap, then silence until it is filled. */
	if (!c->e->nak_sent) {
		c->e->nak_sent = true;
		/* the first packet past the gap: all before it are missing */
		ipd_resp_nak_seq(c->qp, ipd_ooo_on(c->qp) ?
					       ipd_psn_diff(c->pkt->psn,
							    c->e->rq_psn) :
					       0);
	}
	return RESP_DONE;
}

static enum resp_state resp_rnr(struct resp_ctx *c)
{
	struct ipd_qp *qp = c->qp;

	qp->dev->cnt.rnr_naks_sent++;
	resp_send_ack(qp, IPD_AETH_RNR_NAK | (qp->attr.min_rnr_timer & 0x1f),
		      c->pkt->psn);
	return RESP_DONE;
}

/* Class C/D errors (IBA 10.7.3.1): NAK on RC, the responder QP fails;
 * a receive WQE in hand completes with wc_status. */
static enum resp_state resp_fail(struct resp_ctx *c, uint8_t nak,
				 int wc_status, enum ibv_event_type ev)
{
	struct ipd_qp *qp = c->qp;
	struct ipd_engine_qp *e = c->e;

	/* the QP errs: the client must not send past the NAK that follows
	 * the error completion (resp_send) */
	if (is_rc(qp))
		ipd_app_tx_clear(qp);
	if (e->have_rwqe)
		rwqe_complete(qp, NULL, wc_status);
	resp_abort_msg(e);
	if (is_rc(qp)) {
		resp_send_ack(qp, nak, c->pkt->psn);
		ipd_eng_qp_error(qp, ev);
	} else if (qp->type == IBV_QPT_UC) {
		e->drop_msg = true;
	}
	return RESP_DONE;
}

static enum resp_state resp_err_inv_req(struct resp_ctx *c)
{
	return resp_fail(c, IPD_AETH_NAK_INV_REQ, IBV_WC_REM_INV_REQ_ERR,
			 IBV_EVENT_QP_REQ_ERR);
}

static enum resp_state resp_err_access(struct resp_ctx *c)
{
	return resp_fail(c, IPD_AETH_NAK_REM_ACCESS, IBV_WC_REM_ACCESS_ERR,
			 IBV_EVENT_QP_ACCESS_ERR);
}

static enum resp_state resp_err_length(struct resp_ctx *c)
{
	return resp_fail(c, IPD_AETH_NAK_INV_REQ, IBV_WC_LOC_LEN_ERR,
			 IBV_EVENT_QP_REQ_ERR);
}

static enum resp_state resp_err_local(struct resp_ctx *c)
{
	return resp_fail(c, IPD_AETH_NAK_REM_OP, IBV_WC_LOC_PROT_ERR,
			 IBV_EVENT_QP_FATAL);
}

static enum resp_state resp_drop(struct resp_ctx *c)
{
	c->qp->dev->cnt.drop_seq++;
	return RESP_DONE;
}

static enum resp_state (*const resp_steps[])(struct resp_ctx *) = {
	[RESP_CHECK_PSN] = resp_check_psn,
	[RESP_CHECK_OP_SEQ] = resp_check_op_seq,
	[RESP_CHECK_XRC] = resp_check_xrc,
	[RESP_CHECK_OP_VALID] = resp_check_op_valid,
	[RESP_CHECK_RESOURCE] = resp_check_resource,
	[RESP_CHECK_RKEY] = resp_check_rkey,
	[RESP_EXECUTE] = resp_execute,
	[RESP_ACKNOWLEDGE] = resp_acknowledge,
	[RESP_COMPLETE] = resp_complete,
	[RESP_DUPLICATE] = resp_duplicate,
	[RESP_NAK_SEQ] = resp_nak_seq,
	[RESP_RNR] = resp_rnr,
	[RESP_ERR_INV_REQ] = resp_err_inv_req,
	[RESP_ERR_ACCESS] = resp_err_access,
	[RESP_ERR_LENGTH] = resp_err_length,
	[RESP_ERR_LOCAL] = resp_err_local,
	[RESP_DROP] = resp_drop,
};

/* IBA 10.3.1: RTR, RTS and SQD (and SQE for UC/UD) receive. */
static bool resp_state_ok(const struct ipd_qp *qp)
{
	switch (qp->attr.qp_state) {
	case IBV_QPS_RTR:
	case IBV_QPS_RTS:
	case IBV_QPS_SQD:
		return true;
	case IBV_QPS_SQE:
		return !is_rc(qp);
	default:
		return false;
	}
}

static bool resp_run(struct ipd_qp *qp, struct ipd_pkt *pkt)
{
	struct resp_ctx c = { .qp = qp, .e = qp->eng, .pkt = pkt };
	enum resp_state s = RESP_CHECK_PSN;

	while (s != RESP_DONE)
		s = resp_steps[s](&c);
	return c.held;
}

/* Packets kept out of order whose turn came run as if they arrived now,
 * in PSN order, until a hole, an error or an RNR NAK stops them. */
static void resp_run_kept(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	bool ran = false, stalled = false;
	struct ipd_pkt *pkt;
	uint32_t psn;

	while (resp_state_ok(qp) && !e->err_pending &&
	       (pkt = ipd_ooo_take(qp))) {
		psn = e->rq_psn;
		resp_run(qp, pkt);
		ipd_pkt_free(qp->dev, pkt);
		ran = true;
		stalled = e->rq_psn == psn;
		if (stalled)
			break;
	}
	ipd_ooo_settle(qp, ran, stalled || e->err_pending);
}

bool ipd_resp_rx(struct ipd_qp *qp, struct ipd_pkt *pkt)
{
	struct ipd_engine_qp *e = qp->eng;
	uint32_t psn = e->rq_psn;
	bool held;

	if (!resp_state_ok(qp)) {
		qp->dev->cnt.drop_bad_state++;
		return false;
	}
	held = resp_run(qp, pkt);
	if (e->rq_psn != psn &&
	    (e->ooo_count || e->ooo_ack_owed || e->ooo_lost))
		resp_run_kept(qp);
	ipd_eng_apply_error(qp);
	return held;
}

void ipd_resp_flush(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (e->have_rwqe)
		rwqe_complete(qp, NULL, IBV_WC_WR_FLUSH_ERR);
	if (qp->srq)
		return;
	while (!rq_take(qp, &e->rwqe)) {
		e->have_rwqe = true;
		e->rwqe_from_srq = false;
		e->recv_off = 0;
		rwqe_complete(qp, NULL, IBV_WC_WR_FLUSH_ERR);
	}
}

void ipd_resp_srq_gone(struct ipd_qp *qp, struct ipd_srq *srq)
{
	struct ipd_engine_qp *e = qp->eng;

	if (e->xsrq != srq)
		return;
	if (e->have_rwqe)
		rwqe_complete(qp, NULL, IBV_WC_WR_FLUSH_ERR);
	resp_abort_msg(e);
	e->xsrq = NULL;
}

void ipd_resp_reset(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	rwqe_release(qp);
	ipd_resp_drain(qp);
	e->rq_psn = qp->attr.rq_psn & IPD_PSN_MASK;
	e->msn = 0;
	e->nak_sent = false;
	e->drop_msg = false;
	resp_abort_msg(e);
	memset(e->res, 0, sizeof(e->res));
	e->res_next = 0;
}
