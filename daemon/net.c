// SPDX-License-Identifier: MIT
/*
 * The engine's edges: lifetime, the main-loop poll, the QP hooks, packet
 * construction, and received packets checked and dispatched to the
 * responder (requests) or the completer (responses).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "engine_priv.h"

/* ---- lifetime ------------------------------------------------------- */

int ipd_engine_init(struct ipd_dev *dev)
{
	const char *type = dev->cfg->link_type;

	dev->engine = calloc(1, sizeof(*dev->engine));
	if (!dev->engine)
		return -ENOMEM;
	TAILQ_INIT(&dev->engine->free_pkts);
	dev->loop_link = ipd_link_loop_create(dev);
	if (!dev->loop_link)
		goto err_engine;
	if (!strcmp(type, "udp")) {
		dev->net_link = ipd_link_udp_create(dev);
		if (!dev->net_link)
			goto err_loop;
	} else if (!strcmp(type, "fabric")) {
		dev->net_link = ipd_link_fabric_create(dev);
		if (!dev->net_link)
			goto err_loop;
	} else if (strcmp(type, "loopback") && strcmp(type, "")) {
		ipd_warn("engine: link type '%s' not available, loopback only",
			 type);
	}
	return 0;

err_loop:
	dev->loop_link->ops->destroy(dev->loop_link);
	dev->loop_link = NULL;
err_engine:
	free(dev->engine);
	dev->engine = NULL;
	return -ENOMEM;
}

void ipd_engine_fini(struct ipd_dev *dev)
{
	if (!dev->engine)
		return;
	if (dev->net_link)
		dev->net_link->ops->destroy(dev->net_link);
	if (dev->loop_link)
		dev->loop_link->ops->destroy(dev->loop_link);
	dev->net_link = dev->loop_link = NULL;
	ipd_pkt_pool_drain(dev);
	free(dev->engine);
	dev->engine = NULL;
}

/* ---- packets out ------------------------------------------------------ */

static const uint32_t mtu_bytes[] = {
	[IBV_MTU_256] = 256, [IBV_MTU_512] = 512, [IBV_MTU_1024] = 1024,
	[IBV_MTU_2048] = 2048, [IBV_MTU_4096] = 4096,
};

unsigned int ipd_eng_mtu(const struct ipd_qp *qp)
{
	unsigned int mtu = qp->mtu;

	if (!mtu && qp->attr.path_mtu >= IBV_MTU_256 &&
	    qp->attr.path_mtu <= IBV_MTU_4096)
		mtu = mtu_bytes[qp->attr.path_mtu];
	if (!mtu || qp->type == IBV_QPT_UD)
		mtu = qp->dev->active_mtu;
	if (mtu < 256)
		mtu = 256;
	return mtu > 4096 ? 4096 : mtu;
}

/* A packet with a BTH for opcode from lqpn: paylen bytes follow the
 * headers (pad zeroed), or with npsn set stay in the sender's memory
 * (direct). */
static struct ipd_pkt *eng_pkt_init(struct ipd_dev *dev, uint32_t lqpn,
				    const struct ipd_av *av, uint8_t opcode,
				    uint32_t dqpn, uint32_t psn, uint32_t npsn,
				    uint32_t paylen, bool ackreq, bool se)
{
	const struct ipd_opcode_info *info = &ipd_opcode_info[opcode];
	struct ipd_pkt *pkt = ipd_pkt_alloc(dev);
	uint8_t pad = (uint8_t)(-paylen & 3);

	if (!pkt)
		return NULL;
	memset(pkt->hdr, 0, info->length);
	ipd_bth_init(pkt->hdr, opcode, se, pad, IPD_DEFAULT_PKEY, dqpn, ackreq,
		     psn);
	pkt->opcode = opcode;
	pkt->mask = info->mask;
	pkt->psn = psn;
	pkt->qpn = dqpn;
	pkt->payload = pkt->hdr + info->length;
	pkt->paylen = paylen;
	if (npsn) {
		pkt->npsn = npsn;
		ipd_pkt_ref_init(pkt);
	} else {
		/* IBA 9.2.3: pad bytes are 0 */
		memset(pkt->payload + paylen, 0, pad);
	}
	pkt->len = info->length + paylen + pad;
	pkt->src = av->src;
	pkt->dst = av->dst;
	pkt->sport = ipd_udp_sport(av->flow_label, lqpn, dqpn);
	return pkt;
}

struct ipd_pkt *ipd_eng_pkt_new(struct ipd_qp *qp, const struct ipd_av *av,
				uint8_t opcode, uint32_t dqpn, uint32_t psn,
				uint32_t paylen, bool ackreq, bool se)
{
	return ipd_eng_pkt_build(qp->dev, qp->qpn, av, opcode, dqpn, psn,
				 paylen, ackreq, se);
}

struct ipd_pkt *ipd_eng_pkt_build(struct ipd_dev *dev, uint32_t lqpn,
				  const struct ipd_av *av, uint8_t opcode,
				  uint32_t dqpn, uint32_t psn, uint32_t paylen,
				  bool ackreq, bool se)
{
	return eng_pkt_init(dev, lqpn, av, opcode, dqpn, psn, 0, paylen, ackreq,
			    se);
}

struct ipd_pkt *ipd_eng_pkt_new_ref(struct ipd_qp *qp, const struct ipd_av *av,
				    uint8_t opcode, uint32_t dqpn, uint32_t psn,
				    uint32_t npsn, uint32_t paylen, bool ackreq,
				    bool se)
{
	return eng_pkt_init(qp->dev, qp->qpn, av, opcode, dqpn, psn, npsn,
			    paylen, ackreq, se);
}

int ipd_net_xmit(struct ipd_dev *dev, struct ipd_pkt *pkt,
		 const struct ipd_av *av)
{
	struct ipd_link *link = av->local ? dev->loop_link : dev->net_link;

	if (!link) {
		dev->cnt.drop_no_qp++;
		ipd_pkt_free(dev, pkt);
		return -ENETUNREACH;
	}
	/* A direct packet counts as the npsn packets it stands for. */
	dev->cnt.pkts_sent += pkt->npsn;
	dev->cnt.loop_direct_pkts += pkt->ref != NULL;
	dev->cnt.bytes_sent += pkt->len;
	/* Direct packets are made only while nothing captures (one sent
	 * before a capture began is not in it, as if it began later). */
	if (__builtin_expect(dev->captures != NULL, 0) && !link->tx_capture &&
	    !pkt->ref)
		ipd_capture_pkt(dev, pkt, true);
	return link->ops->xmit(link, pkt);
}

void ipd_net_flush(struct ipd_dev *dev)
{
	struct ipd_link *link = dev->net_link;

	if (link && link->ops->flush)
		link->ops->flush(link);
}

/* ---- packets in ------------------------------------------------------ */

/* Checks every receiver makes before looking at the QP (IBA 9.6.1,
 * FACTS.md: TVer 0, known opcode, headers present, pad within payload). */
static bool rx_parse(struct ipd_pkt *pkt)
{
	const struct ipd_opcode_info *info;
	uint8_t *bth = pkt->hdr;
	uint32_t pad;

	if (pkt->len < IPD_BTH_BYTES || ipd_bth_tver(bth))
		return false;
	info = ipd_bth_info(bth);
	if (!info->name || pkt->len < info->length)
		return false;
	pad = ipd_bth_pad(bth);
	if (pkt->len - info->length < pad)
		return false;
	if (!(info->mask & IPD_PAYLOAD_MASK) && pkt->len - info->length != pad)
		return false;
	pkt->opcode = bth[0];
	pkt->mask = info->mask;
	pkt->psn = ipd_bth_psn(bth);
	pkt->qpn = ipd_bth_qpn(bth);
	pkt->payload = bth + info->length;
	pkt->paylen = pkt->len - info->length - pad;
	return true;
}

/* P_Key 0xFFFF (full member default) or its limited form 0x7FFF. */
static bool rx_pkey_ok(const struct ipd_pkt *pkt)
{
	return (ipd_bth_pkey(pkt->hdr) & 0x7fff) == 0x7fff;
}

bool ipd_eng_addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;

	if (ss->ss_family == AF_INET6) {
		memcpy(key, &s6->sin6_addr, 16);
		return true;
	}
	if (ss->ss_family != AF_INET)
		return false;
	memset(key, 0, 10);
	key[10] = key[11] = 0xff;
	memcpy(key + 12, &s4->sin_addr, 4);
	return true;
}

/* IBA 9.6.1.5 / rxe: a connected QP only hears from its peer. */
bool ipd_eng_src_ok(const struct sockaddr_storage *peer,
		    const struct ipd_pkt *pkt)
{
	uint8_t a[16], b[16];

	/* Same family (every packet of a healthy flow): compare in place;
	 * the byte-wise keys below cost a store-forwarding stall per packet. */
	if (pkt->src.ss_family == AF_INET && peer->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)&pkt->src)
			       ->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)(const void *)peer)
			       ->sin_addr.s_addr;
	if (!ipd_eng_addr_key(&pkt->src, a) || !ipd_eng_addr_key(peer, b))
		return true;
	return !memcmp(a, b, 16);
}

static bool rx_src_ok(const struct ipd_qp *qp, const struct ipd_pkt *pkt)
{
	return qp->type == IBV_QPT_UD || ipd_eng_src_ok(&qp->av.dst, pkt);
}

/* The XRC halves (IBA 9.8.4): requests go to TGT QPs, responses to INI
 * QPs, never the other way round. */
static bool rx_xrc_half_ok(const struct ipd_qp *qp, const struct ipd_pkt *pkt)
{
	if (qp->type == IBV_QPT_XRC_SEND)
		return pkt->mask & IPD_ACK_MASK;
	if (qp->type == IBV_QPT_XRC_RECV)
		return pkt->mask & IPD_REQ_MASK;
	return true;
}

void ipd_engine_rx(struct ipd_dev *dev, struct ipd_pkt *pkt)
{
	struct ipd_qp *qp;

	dev->cnt.pkts_rcvd += pkt->npsn;
	dev->cnt.bytes_rcvd += pkt->len;
	if (__builtin_expect(dev->captures != NULL, 0) && !pkt->ref)
		ipd_capture_pkt(dev, pkt, false);
	if (!rx_parse(pkt)) {
		dev->cnt.drop_malformed++;
		goto out;
	}
	if (!rx_pkey_ok(pkt)) {
		dev->cnt.drop_bad_pkey++;
		goto out;
	}
	qp = ipd_qp_lookup(dev, pkt->qpn);
	if (!qp || !qp->eng) {
		if (!qp && ipd_timewait_rx(dev, pkt))
			goto out;
		dev->cnt.drop_no_qp++;
		goto out;
	}
	if (!(pkt->mask & ipd_qpt_op_mask(qp->type)) ||
	    !rx_xrc_half_ok(qp, pkt) || !rx_src_ok(qp, pkt)) {
		dev->cnt.drop_bad_state++;
		goto out;
	}
	if (pkt->mask & IPD_ACK_MASK)
		ipd_comp_rx(qp, pkt);
	else if (ipd_resp_rx(qp, pkt))
		return; /* kept out of order (ooo.c) */
out:
	ipd_pkt_free(dev, pkt);
}

/* ---- completions and errors -------------------------------------------- */

/*
 * Tests only: $IPATHD_TEST_DIE_AT_CQE=N makes the daemon SIGKILL itself
 * just before posting its Nth completion, after the WQE's slot was freed:
 * the window docs/design.md "Daemon failure" closes with the retire record.
 */
static void test_die_at_cqe(void)
{
	static long left = -1;
	const char *env;

	if (left == -1) {
		env = getenv("IPATHD_TEST_DIE_AT_CQE");
		left = env && *env ? strtol(env, NULL, 10) : 0;
		if (left <= 0)
			left = 0;
	}
	if (left > 0 && --left == 0)
		raise(SIGKILL);
}

void ipd_eng_cq_post(struct ipd_qp *qp, struct ipd_cq *cq,
		     const struct ipd_cqe *cqe)
{
	if (!cq)
		return;
	test_die_at_cqe();
	/* A full CQ is fatal for the QP (IBA 11.4.2.1); not while flushing,
	 * the QP is in error already. */
	if (ipd_cq_post(cq, cqe) && !qp->eng->flushing)
		ipd_eng_qp_error(qp, IBV_EVENT_QP_FATAL);
}

void ipd_eng_qp_error(struct ipd_qp *qp, enum ibv_event_type ev)
{
	struct ipd_engine_qp *e = qp->eng;

	if (e->err_pending || qp->attr.qp_state == IBV_QPS_ERR)
		return;
	e->err_pending = true;
	e->err_event = ev;
	ipd_app_tx_clear(qp);
}

void ipd_eng_apply_error(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!e->err_pending)
		return;
	e->err_pending = false;
	ipd_qp_set_error(qp, e->err_event);
}

/* IBA 10.3.1 (Error state): every outstanding and newly posted WQE
 * completes with IBV_WC_WR_FLUSH_ERR. */
bool ipd_eng_flush(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	struct ipd_cqe cqe = { .status = IBV_WC_WR_FLUSH_ERR,
			       .qp_num = qp->qpn };
	bool any = false;

	e->flushing = true;
	ipd_comp_timers_stop(qp);
	for (;;) {
		ipd_req_fetch(qp);
		if (e->comp_idx == e->sq_head)
			break;
		while (e->comp_idx != e->sq_head) {
			struct ipd_swqe *swqe = ipd_swqe_at(e, qp, e->comp_idx);

			/* slot first, then the completion (see comp.c) */
			ipd_queue_retire_begin(&qp->sq, ++e->comp_idx,
					       swqe->wr->wr_id,
					       qp->scq ? &qp->scq->q : NULL);
			ipd_queue_release(&qp->sq, e->comp_idx);
			cqe.wr_id = swqe->wr->wr_id;
			cqe.opcode = swqe->info ? swqe->info->wc_opcode :
						  IBV_WC_SEND;
			ipd_eng_cq_post(qp, qp->scq, &cqe);
			ipd_queue_retire_end(&qp->sq);
		}
		any = true;
	}
	e->req_idx = e->comp_idx;
	e->rd_outstanding = 0;
	if (e->have_rwqe || (!qp->srq && qp->rq.size &&
			     ipd_queue_ready(&qp->rq))) {
		ipd_resp_flush(qp);
		any = true;
	}
	e->flushing = false;
	return any;
}

/* ---- QP hooks ----------------------------------------------------------- */

/* Posting a receive rings no doorbell (docs/design.md), so a sleeping
 * daemon would never flush receive WQEs posted in ERR: look now and then. */
static void err_rq_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipd_qp *qp = w->data;

	if (qp->attr.qp_state != IBV_QPS_ERR) {
		ev_timer_stop(loop, w);
		return;
	}
	if (ipd_queue_ready(&qp->rq))
		ipd_eng_flush(qp);
}

static void err_rq_timer_set(struct ipd_qp *qp, bool on)
{
	ev_timer *w = &qp->eng->err_rq_timer;

	if (!on || qp->srq || !qp->rq.size) {
		ev_timer_stop(qp->dev->loop, w);
		return;
	}
	if (!ev_is_active(w)) {
		w->repeat = IPD_ERR_RQ_POLL_S;
		ev_timer_again(qp->dev->loop, w);
	}
}

int ipd_engine_qp_init(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = calloc(1, sizeof(*e));
	uint32_t i;

	if (!e)
		return -ENOMEM;
	e->qp = qp;
	if (qp->sq.size) {
		e->swqe = calloc(qp->sq.size, sizeof(*e->swqe));
		e->sq_copy = calloc(qp->sq.size, qp->sq.slot_size);
		if (!e->swqe || !e->sq_copy)
			goto err_free;
		for (i = 0; i < qp->sq.size; i++)
			e->swqe[i].wr = (struct ipd_send_wqe *)(void *)
				(e->sq_copy + (size_t)i * qp->sq.slot_size);
	}
	if (qp->rq.size) {
		e->rq_slot = calloc(1, qp->rq.slot_size);
		if (!e->rq_slot)
			goto err_free;
	}
	qp->eng = e;
	ipd_comp_timers_init(qp);
	ev_init(&e->err_rq_timer, err_rq_cb);
	e->err_rq_timer.data = qp;
	ipd_req_reset(qp);
	ipd_resp_reset(qp);
	return 0;

err_free:
	free(e->swqe);
	free(e->sq_copy);
	free(e);
	return -ENOMEM;
}

void ipd_engine_qp_fini(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!e)
		return;
	ipd_app_tx_clear(qp);
	ipd_timewait_add(qp);
	ipd_comp_timers_stop(qp);
	err_rq_timer_set(qp, false);
	ipd_resp_drain(qp);
	free(e->swqe);
	free(e->sq_copy);
	free(e->rq_slot);
	free(e);
	qp->eng = NULL;
}

/* IBA 10.3.1 (Reset): the work queues are emptied without completions. */
static void qp_discard_posted(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	while (qp->sq.size && ipd_queue_ready(&qp->sq))
		ipd_queue_copy_next(&qp->sq, e->sq_copy);
	if (qp->sq.size)
		ipd_queue_release(&qp->sq, qp->sq.cons);
	while (!qp->srq && qp->rq.size && ipd_queue_ready(&qp->rq))
		ipd_queue_copy_next(&qp->rq, e->rq_slot);
	if (!qp->srq && qp->rq.size)
		ipd_queue_release(&qp->rq, qp->rq.cons);
}

static void qp_load_attrs(struct ipd_qp *qp, int mask)
{
	struct ipd_engine_qp *e = qp->eng;

	if (mask & IBV_QP_RQ_PSN) {
		e->rq_psn = qp->attr.rq_psn & IPD_PSN_MASK;
		e->nak_sent = false;
	}
	if (mask & IBV_QP_SQ_PSN) {
		e->req_psn = qp->attr.sq_psn & IPD_PSN_MASK;
		ipd_comp_set_psn(qp, e->req_psn);
	}
	if (mask & (IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY))
		ipd_comp_reset_retries(qp);
}

void ipd_engine_qp_modified(struct ipd_qp *qp, enum ibv_qp_state old,
			    int attr_mask)
{
	struct ipd_engine_qp *e = qp->eng;

	if (!e)
		return;
	/* Withdrawn on every change, published again (with the new path)
	 * by the next poll of an idle RTS QP; a WQE the client marked with
	 * the old publication is sent again (a duplicate for the peer). */
	ipd_app_tx_clear(qp);
	e->app_tx_last = 0;
	err_rq_timer_set(qp, qp->attr.qp_state == IBV_QPS_ERR);
	switch (qp->attr.qp_state) {
	case IBV_QPS_RESET:
		/* IBA 10.3.1: RESET forgets all state. */
		ipd_comp_timers_stop(qp);
		ipd_resp_reset(qp);
		qp_discard_posted(qp);
		ipd_req_reset(qp);
		e->err_pending = false;
		break;
	case IBV_QPS_ERR:
		e->err_pending = false;
		ipd_resp_drain(qp);
		ipd_eng_flush(qp);
		/* IBA 11.6.3.4: a QP on an SRQ tells its owner that no more
		 * receive WQEs will be consumed for it. */
		if (qp->srq && old != IBV_QPS_ERR)
			ipd_qp_async_event(qp, IBV_EVENT_QP_LAST_WQE_REACHED);
		break;
	default:
		qp_load_attrs(qp, attr_mask);
		if (qp->attr.qp_state == IBV_QPS_SQD && old != IBV_QPS_SQD)
			e->sqd_notified = false;
		if (old != IBV_QPS_RTS && qp->attr.qp_state == IBV_QPS_RTS)
			ipd_comp_reset_retries(qp);
		break;
	}
}

void ipd_engine_srq_gone(struct ipd_dev *dev, struct ipd_srq *srq)
{
	struct ipd_qp *qp;

	TAILQ_FOREACH(qp, &dev->qps_list, dev_link)
		if (qp->type == IBV_QPT_XRC_RECV && qp->eng)
			ipd_resp_srq_gone(qp, srq);
}

void ipd_engine_qp_psns(struct ipd_qp *qp, uint32_t *sq_psn,
			uint32_t *rq_psn)
{
	*sq_psn = qp->eng ? qp->eng->req_psn : qp->attr.sq_psn;
	*rq_psn = qp->eng ? qp->eng->rq_psn : qp->attr.rq_psn;
}

/* ---- the main-loop poll ------------------------------------------------- */

/* IBA 11.6.3 (SQ Drained): once every message started before SQD has
 * been acknowledged, tell a client that asked. */
static void qp_check_drained(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;

	if (e->sqd_notified || e->comp_idx != e->req_idx ||
	    e->req_psn != e->comp_psn)
		return;
	if (e->req_idx != e->sq_head && ipd_swqe_at(e, qp, e->req_idx)->sent)
		return;
	e->sqd_notified = true;
	if (qp->attr.en_sqd_async_notify)
		ipd_qp_async_event(qp, IBV_EVENT_SQ_DRAINED);
}

static bool qp_poll(struct ipd_qp *qp)
{
	struct ipd_engine_qp *e = qp->eng;
	bool progress;

	if (!e)
		return false;
	switch (qp->attr.qp_state) {
	case IBV_QPS_RTR:
		return ipd_resp_pump(qp);
	case IBV_QPS_RTS:
	case IBV_QPS_SQD:
		/* both run: responses and requests share the poll round */
		progress = ipd_resp_pump(qp);
		progress |= ipd_req_run(qp);
		ipd_app_tx_publish(qp);
		if (qp->attr.qp_state == IBV_QPS_SQD && qp->sq.size)
			qp_check_drained(qp);
		return progress;
	case IBV_QPS_ERR:
		/* Keep flushing what the client posts meanwhile. */
		if ((qp->sq.size && ipd_queue_ready(&qp->sq)) ||
		    (!qp->srq && qp->rq.size && ipd_queue_ready(&qp->rq)))
			return ipd_eng_flush(qp);
		return false;
	default:
		return false;
	}
}

bool ipd_engine_poll(struct ipd_dev *dev)
{
	struct ipd_qp *qp;
	bool progress = false;

	TAILQ_FOREACH(qp, &dev->qps_list, dev_link)
		progress |= qp_poll(qp);
	if (dev->loop_link)
		progress |= ipd_link_loop_poll(dev->loop_link);
	return progress;
}
