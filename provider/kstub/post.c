// SPDX-License-Identifier: MIT
/*
 * Queues and work requests of the stubs: CQs and RC QPs are created with
 * the provider's control requests, and posting/polling touch only the
 * shared rings (include/ipathd/ring.h), with the same doorbell rule.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kstub_priv.h"

struct ib_cq *ib_create_cq(struct ib_device *dev, int cqe)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateCq c = IPD__CREATE_CQ__INIT;
	struct ib_cq *cq = calloc(1, sizeof(*cq));
	Ipd__Response *r;
	int rfds[1], nrfds = 0, err;

	if (!cq)
		return NULL;
	c.cqe = (uint32_t)cqe;
	c.user_handle = (uint64_t)(uintptr_t)cq;
	req.op_case = IPD__REQUEST__OP_CREATE_CQ;
	req.create_cq = &c;
	r = kstub_call(dev, &req, NULL, 0, rfds, &nrfds, 1);
	if (!r)
		goto err_free;
	if (r->op_case != IPD__RESPONSE__OP_CREATE_CQ || nrfds != 1) {
		if (nrfds)
			close(rfds[0]);
		ipd__response__free_unpacked(r, NULL);
		errno = EPROTO;
		goto err_free;
	}
	cq->dev = dev;
	cq->handle = r->create_cq->handle;
	err = kstub_ring_map(&cq->ring, rfds[0], r->create_cq->ring_size,
			     sizeof(struct ipd_cqe));
	ipd__response__free_unpacked(r, NULL);
	if (err) {
		kstub_destroy_obj(dev, IPD__OBJ_TYPE__OBJ_CQ, cq->handle);
		errno = -err;
		goto err_free;
	}
	return cq;

err_free:
	free(cq);
	return NULL;
}

int ib_destroy_cq(struct ib_cq *cq)
{
	int err = kstub_destroy_obj(cq->dev, IPD__OBJ_TYPE__OBJ_CQ, cq->handle);

	if (err)
		return err;
	kstub_ring_unmap(&cq->ring);
	free(cq);
	return 0;
}

struct ib_qp *ib_create_qp(struct ib_device *dev, struct ib_cq *send_cq,
			   struct ib_cq *recv_cq, uint32_t max_wr,
			   uint32_t max_sge)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateQp c = IPD__CREATE_QP__INIT;
	Ipd__QpCap cap = IPD__QP_CAP__INIT;
	struct ib_qp *qp = calloc(1, sizeof(*qp));
	Ipd__CreateQpResp *cr;
	Ipd__Response *r;
	int rfds[2] = { -1, -1 }, nrfds = 0, err;

	if (!qp)
		return NULL;
	cap.max_send_wr = cap.max_recv_wr = max_wr;
	cap.max_send_sge = cap.max_recv_sge = max_sge;
	c.pd = dev->pd;
	c.qp_type = IBV_QPT_RC;
	c.send_cq = send_cq->handle;
	c.recv_cq = recv_cq->handle;
	c.cap = &cap;
	c.user_handle = (uint64_t)(uintptr_t)qp;
	req.op_case = IPD__REQUEST__OP_CREATE_QP;
	req.create_qp = &c;
	r = kstub_call(dev, &req, NULL, 0, rfds, &nrfds, 2);
	if (!r)
		goto err_free;
	cr = r->create_qp;
	if (r->op_case != IPD__RESPONSE__OP_CREATE_QP || nrfds != 2) {
		while (nrfds--)
			close(rfds[nrfds]);
		ipd__response__free_unpacked(r, NULL);
		errno = EPROTO;
		goto err_free;
	}
	qp->dev = dev;
	qp->qpn = cr->qpn;
	qp->max_sge = cr->cap ? cr->cap->max_send_sge : max_sge;
	err = kstub_ring_map(&qp->sq, rfds[0], cr->sq_size, cr->sq_slot_size);
	rfds[0] = -1;
	if (!err)
		err = kstub_ring_map(&qp->rq, rfds[1], cr->rq_size,
				     cr->rq_slot_size);
	else
		close(rfds[1]);
	ipd__response__free_unpacked(r, NULL);
	if (err) {
		kstub_ring_unmap(&qp->sq);
		kstub_destroy_obj(dev, IPD__OBJ_TYPE__OBJ_QP, qp->qpn);
		errno = -err;
		goto err_free;
	}
	return qp;

err_free:
	free(qp);
	return NULL;
}

int ib_destroy_qp(struct ib_qp *qp)
{
	int err = kstub_destroy_obj(qp->dev, IPD__OBJ_TYPE__OBJ_QP, qp->qpn);

	if (err)
		return err;
	kstub_ring_unmap(&qp->sq);
	kstub_ring_unmap(&qp->rq);
	free(qp);
	return 0;
}

uint32_t ib_qp_num(const struct ib_qp *qp)
{
	return qp->qpn;
}

static int qp_modify(struct ib_qp *qp, uint32_t mask, Ipd__QpAttr *attr)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__ModifyQp m = IPD__MODIFY_QP__INIT;
	Ipd__Response *r;

	m.qpn = qp->qpn;
	m.attr_mask = mask;
	m.attr = attr;
	req.op_case = IPD__REQUEST__OP_MODIFY_QP;
	req.modify_qp = &m;
	r = kstub_call(qp->dev, &req, NULL, 0, NULL, NULL, 0);
	if (!r)
		return -errno;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

int ib_qp_connect(struct ib_qp *qp, const union ibv_gid *dgid, int sgid_index,
		  uint32_t dqpn, uint32_t my_psn, uint32_t peer_psn)
{
	Ipd__QpAttr a = IPD__QP_ATTR__INIT;
	Ipd__AhAttr ah = IPD__AH_ATTR__INIT;
	Ipd__GlobalRoute grh = IPD__GLOBAL_ROUTE__INIT;
	int err;

	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			    IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	err = qp_modify(qp, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			    IBV_QP_ACCESS_FLAGS, &a);
	if (err)
		return err;

	grh.dgid.data = (uint8_t *)dgid->raw;
	grh.dgid.len = sizeof(dgid->raw);
	grh.sgid_index = (uint32_t)sgid_index;
	grh.hop_limit = 64;
	ah.grh = &grh;
	ah.is_global = true;
	ah.port_num = 1;
	a.qp_state = IBV_QPS_RTR;
	a.ah_attr = &ah;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = dqpn;
	a.rq_psn = peer_psn;
	a.max_dest_rd_atomic = 4;
	a.min_rnr_timer = 12;
	err = qp_modify(qp, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			    IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			    IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
			&a);
	if (err)
		return err;

	a.qp_state = IBV_QPS_RTS;
	a.ah_attr = NULL;
	a.sq_psn = my_psn;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 4;
	return qp_modify(qp, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
			     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			     IBV_QP_MAX_QP_RD_ATOMIC, &a);
}

static void *ring_slot(struct kstub_ring *r, uint32_t idx)
{
	return ipd_ring_slot(r->hdr, r->size, r->slot_size, idx);
}

static bool opcode_ok(enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
	case IBV_WR_RDMA_READ:
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return true;
	default:
		return false;
	}
}

static void wqe_fill(struct ipd_send_wqe *w, const struct ibv_send_wr *wr)
{
	struct ipd_sge *s = ipd_send_wqe_sge(w);

	memset(w, 0, sizeof(*w));
	w->wr_id = wr->wr_id;
	w->opcode = (uint8_t)wr->opcode;
	w->send_flags = wr->send_flags & ~(unsigned int)IBV_SEND_INLINE;
	w->num_sge = (uint16_t)wr->num_sge;
	for (int i = 0; i < wr->num_sge; i++) {
		s[i].addr = wr->sg_list[i].addr;
		s[i].length = wr->sg_list[i].length;
		s[i].lkey = wr->sg_list[i].lkey;
	}
	if (wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
	    wr->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		w->wr.atomic.remote_addr = wr->wr.atomic.remote_addr;
		w->wr.atomic.compare_add = wr->wr.atomic.compare_add;
		w->wr.atomic.swap = wr->wr.atomic.swap;
		w->wr.atomic.rkey = wr->wr.atomic.rkey;
	} else {
		w->wr.rdma.remote_addr = wr->wr.rdma.remote_addr;
		w->wr.rdma.rkey = wr->wr.rdma.rkey;
	}
	if (wr->opcode == IBV_WR_SEND_WITH_IMM ||
	    wr->opcode == IBV_WR_RDMA_WRITE_WITH_IMM)
		w->imm_data = wr->imm_data;
}

static void doorbell(struct ib_device *dev)
{
	uint64_t one = 1;

	if (ipd_need_doorbell(dev->page) &&
	    write(dev->doorbell_fd, &one, sizeof(one)) != sizeof(one)) {
		/* A full eventfd counter still wakes the daemon. */
	}
}

int ib_post_send(struct ib_qp *qp, const struct ibv_send_wr *wr,
		 const struct ibv_send_wr **bad_wr)
{
	uint32_t prod = qp->sq.idx, start = prod;
	int err = 0;

	for (; wr; wr = wr->next) {
		if (!opcode_ok(wr->opcode) || wr->num_sge < 0 ||
		    (uint32_t)wr->num_sge > qp->max_sge) {
			err = -EINVAL;
			break;
		}
		if (ipd_ring_full(qp->sq.hdr, qp->sq.size, prod)) {
			err = -ENOMEM;
			break;
		}
		wqe_fill(ring_slot(&qp->sq, prod), wr);
		prod++;
	}
	if (err && bad_wr)
		*bad_wr = wr;
	if (prod != start) {
		qp->sq.idx = prod;
		ipd_ring_publish(qp->sq.hdr, prod);
		doorbell(qp->dev);
	}
	return err;
}

int ib_post_recv(struct ib_qp *qp, const struct ibv_recv_wr *wr,
		 const struct ibv_recv_wr **bad_wr)
{
	uint32_t prod = qp->rq.idx, start = prod;
	int err = 0;

	for (; wr; wr = wr->next) {
		struct ipd_recv_wqe *w;

		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > qp->max_sge) {
			err = -EINVAL;
			break;
		}
		if (ipd_ring_full(qp->rq.hdr, qp->rq.size, prod)) {
			err = -ENOMEM;
			break;
		}
		w = ring_slot(&qp->rq, prod++);
		w->wr_id = wr->wr_id;
		w->num_sge = (uint32_t)wr->num_sge;
		w->reserved = 0;
		for (int i = 0; i < wr->num_sge; i++) {
			w->sge[i].addr = wr->sg_list[i].addr;
			w->sge[i].length = wr->sg_list[i].length;
			w->sge[i].lkey = wr->sg_list[i].lkey;
		}
	}
	if (err && bad_wr)
		*bad_wr = wr;
	/* No doorbell: the daemon reads receive queues when data arrives. */
	if (prod != start) {
		qp->rq.idx = prod;
		ipd_ring_publish(qp->rq.hdr, prod);
	}
	return err;
}

int ib_poll_cq(struct ib_cq *cq, int num_entries, struct ibv_wc *wc)
{
	uint32_t avail = ipd_ring_avail(cq->ring.hdr, cq->ring.idx);
	int n = 0;

	for (; n < num_entries && (uint32_t)n < avail; n++) {
		const struct ipd_cqe *e = ring_slot(&cq->ring, cq->ring.idx + (uint32_t)n);

		memset(&wc[n], 0, sizeof(wc[n]));
		wc[n].wr_id = e->wr_id;
		wc[n].status = (enum ibv_wc_status)e->status;
		wc[n].opcode = (enum ibv_wc_opcode)e->opcode;
		wc[n].vendor_err = e->vendor_err;
		wc[n].byte_len = e->byte_len;
		wc[n].imm_data = e->imm_data;
		wc[n].qp_num = e->qp_num;
		wc[n].src_qp = e->src_qp;
		wc[n].wc_flags = e->wc_flags;
	}
	if (n) {
		cq->ring.idx += (uint32_t)n;
		ipd_ring_release(cq->ring.hdr, cq->ring.idx);
	}
	return n;
}
