// SPDX-License-Identifier: MIT
/*
 * Control verbs: each becomes one request to the daemon.  The daemon
 * checks everything (it cannot trust a client); the provider checks only
 * what it needs to build its own structures.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ipathd.h"
#include "ipathd/verbs_msg.h"
#include "mem.h"

static struct ipd_context *pd_ctx(struct ibv_pd *pd)
{
	return to_ictx(pd->context);
}

/* ------------------------------------------------------------------ */
/* PD                                                                  */

struct ibv_pd *ipd_alloc_pd(struct ibv_context *context)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__AllocPd ap = IPD__ALLOC_PD__INIT;
	Ipd__Response *resp;
	struct ibv_pd *pd;
	int err;

	pd = calloc(1, sizeof(*pd));
	if (!pd) {
		errno = ENOMEM;
		return NULL;
	}
	req.op_case = IPD__REQUEST__OP_ALLOC_PD;
	req.alloc_pd = &ap;
	err = ipd_ctl_request(to_ictx(context), &req, NULL, 0, &resp, NULL,
			      NULL, 0);
	if (err)
		goto err_free;
	if (resp->op_case != IPD__RESPONSE__OP_ALLOC_PD) {
		err = EPROTO;
		ipd_ctl_free(resp);
		goto err_free;
	}
	pd->handle = resp->alloc_pd->handle;
	ipd_ctl_free(resp);
	return pd;

err_free:
	free(pd);
	errno = err;
	return NULL;
}

int ipd_dealloc_pd(struct ibv_pd *pd)
{
	int err = ipd_ctl_destroy(pd_ctx(pd), IPD__OBJ_TYPE__OBJ_PD,
				  pd->handle);

	if (!err)
		free(pd);
	return err;
}

/* ------------------------------------------------------------------ */
/* MR                                                                  */

static int send_reg_mr(struct ibv_pd *pd, struct ipd_mr *mr, void *addr,
		       size_t length, uint64_t iova, int access,
		       const struct ipd_mem_reg *reg)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__RegMr rm = IPD__REG_MR__INIT;
	Ipd__PageRun *pr, **prp;
	Ipd__Response *resp;
	size_t i, nruns = reg->nruns;
	int err;

	pr = calloc(nruns ? nruns : 1, sizeof(*pr));
	prp = calloc(nruns ? nruns : 1, sizeof(*prp));
	if (!pr || !prp) {
		err = ENOMEM;
		goto out;
	}
	for (i = 0; i < nruns; i++) {
		ipd__page_run__init(&pr[i]);
		pr[i].file_offset = reg->runs[i].file_offset;
		pr[i].npages = reg->runs[i].npages;
		pr[i].fd = reg->runs[i].fd;
		prp[i] = &pr[i];
	}
	rm.pd = pd->handle;
	rm.addr = (uintptr_t)addr;
	rm.length = length;
	rm.iova = iova;
	rm.access = (uint32_t)access;
	rm.n_runs = nruns;
	rm.runs = prp;
	rm.map_start = reg->map_start;
	req.op_case = IPD__REQUEST__OP_REG_MR;
	req.reg_mr = &rm;
	err = ipd_ctl_request(pd_ctx(pd), &req, reg->fds, (int)reg->nfds, &resp,
			      NULL, NULL, 0);
	if (err)
		goto out;
	if (resp->op_case != IPD__RESPONSE__OP_REG_MR) {
		err = EPROTO;
		/* The daemon may hold an MR we cannot name: nothing to do. */
	} else {
		mr->vmr.ibv_mr.handle = resp->reg_mr->handle;
		mr->vmr.ibv_mr.lkey = resp->reg_mr->lkey;
		mr->vmr.ibv_mr.rkey = resp->reg_mr->rkey;
	}
	ipd_ctl_free(resp);
out:
	free(pr);
	free(prp);
	return err;
}

/* The access flags for which ib_umem_get() pins pages for writing. */
#define IPD_ACCESS_WRITABLE                                              \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |              \
	 IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND)

struct ibv_mr *ipd_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
			  uint64_t hca_va, int access)
{
	struct ipd_mem_reg reg;
	struct ipd_mr *mr;
	int err;

	mr = calloc(1, sizeof(*mr));
	if (!mr) {
		errno = ENOMEM;
		return NULL;
	}
	err = ipd_mem_register_reg(addr, length,
				   ibv_is_fork_initialized() == IBV_FORK_ENABLED,
				   access & IPD_ACCESS_WRITABLE, &reg);
	if (err)
		goto err_free;
	err = send_reg_mr(pd, mr, addr, length, hca_va, access, &reg);
	ipd_mem_reg_release(&reg);
	if (err)
		goto err_mem;
	mr->vmr.mr_type = IBV_MR_TYPE_MR;
	mr->vmr.access = access;
	mr->pd = pd;
	mr->addr = addr;
	mr->length = length;
	mr->iova = hca_va;
	ipd_app_tx_mr_add(pd_ctx(pd), mr);
	return &mr->vmr.ibv_mr;

err_mem:
	ipd_mem_unregister(addr, length);
err_free:
	free(mr);
	errno = err;
	return NULL;
}

int ipd_dereg_mr(struct verbs_mr *vmr)
{
	struct ibv_mr *mr = &vmr->ibv_mr;
	struct ipd_mr *imr = (struct ipd_mr *)vmr;
	int err;

	ipd_app_tx_mr_del(pd_ctx(mr->pd), imr);
	err = ipd_ctl_destroy(pd_ctx(mr->pd), IPD__OBJ_TYPE__OBJ_MR,
			      mr->handle);
	if (err) {
		ipd_app_tx_mr_add(pd_ctx(mr->pd), imr);
		return err;
	}
	/* Only now that the daemon dropped its mapping. */
	ipd_mem_unregister(mr->addr, mr->length);
	free(vmr);
	return 0;
}

/* ------------------------------------------------------------------ */
/* CQ                                                                  */

static int cq_create_ring(struct ibv_context *context, struct ipd_cq *cq,
			  int cqe, uint32_t channel)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateCq cc = IPD__CREATE_CQ__INIT;
	Ipd__Response *resp;
	int rfds[1], nrfds, err;

	if (cqe < 1)
		return EINVAL;
	cc.cqe = (uint32_t)cqe;
	/* Also the record the channel delivers (ibv_get_cq_event). */
	cc.user_handle = (uintptr_t)&cq->vcq.cq;
	cc.channel = channel;
	req.op_case = IPD__REQUEST__OP_CREATE_CQ;
	req.create_cq = &cc;
	err = ipd_ctl_request(to_ictx(context), &req, NULL, 0, &resp, rfds,
			      &nrfds, 1);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_CREATE_CQ || nrfds != 1) {
		if (nrfds)
			close(rfds[0]);
		err = EPROTO;
		goto out;
	}
	cq->vcq.cq.handle = resp->create_cq->handle;
	cq->vcq.cq.cqe = (int)resp->create_cq->cqe;
	err = ipd_uring_map(&cq->ring, rfds[0], resp->create_cq->ring_size,
			    sizeof(struct ipd_cqe));
	if (err)
		ipd_ctl_destroy(to_ictx(context), IPD__OBJ_TYPE__OBJ_CQ,
				cq->vcq.cq.handle);
out:
	ipd_ctl_free(resp);
	return err;
}

/* The daemon's CQ, bound to channel (NULL: none) when one is given. */
static int cq_create(struct ibv_context *context, struct ipd_cq *cq, int cqe,
		     struct ibv_comp_channel *channel)
{
	struct ipd_chan *ch = NULL;
	uint32_t handle = 0;
	int err;

	if (channel) {
		err = ipd_chan_bind_begin(to_ictx(context), channel, &ch,
					  &handle);
		if (err)
			return err;
	}
	err = cq_create_ring(context, cq, cqe, handle);
	if (ch) {
		if (err)
			ipd_chan_bind_abort(ch);
		else
			ipd_chan_bind_end(ch, cq);
	}
	return err;
}

struct ibv_cq *ipd_create_cq(struct ibv_context *context, int cqe,
			     struct ibv_comp_channel *channel, int comp_vector)
{
	struct ipd_cq *cq;
	int err;

	if (comp_vector < 0 || comp_vector >= context->num_comp_vectors) {
		errno = EINVAL;
		return NULL;
	}
	cq = calloc(1, sizeof(*cq));
	if (!cq) {
		errno = ENOMEM;
		return NULL;
	}
	err = cq_create(context, cq, cqe, channel);
	if (err) {
		free(cq);
		errno = err;
		return NULL;
	}
	ipd_cq_ex_init(cq);
	return &cq->vcq.cq;
}

struct ibv_cq_ex *ipd_create_cq_ex(struct ibv_context *context,
				   struct ibv_cq_init_attr_ex *attr)
{
	struct ipd_cq *cq;
	int err;

	if (attr->wc_flags & ~(uint64_t)IPD_SUPPORTED_WC_FLAGS ||
	    attr->comp_mask & ~(uint32_t)IBV_CQ_INIT_ATTR_MASK_FLAGS ||
	    ((attr->comp_mask & IBV_CQ_INIT_ATTR_MASK_FLAGS) && attr->flags)) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (attr->comp_vector >= (uint32_t)context->num_comp_vectors ||
	    attr->cqe > INT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	cq = calloc(1, sizeof(*cq));
	if (!cq) {
		errno = ENOMEM;
		return NULL;
	}
	err = cq_create(context, cq, (int)attr->cqe, attr->channel);
	if (err) {
		free(cq);
		errno = err;
		return NULL;
	}
	cq->wc_flags = attr->wc_flags;
	ipd_cq_ex_init(cq);
	return &cq->vcq.cq_ex;
}

int ipd_resize_cq(struct ibv_cq *ibcq, int cqe)
{
	struct ipd_cq *cq = to_icq(ibcq);
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__ResizeCq rc = IPD__RESIZE_CQ__INIT;
	struct ipd_uring old, nr = { 0 };
	Ipd__Response *resp;
	int rfds[1], nrfds, err;

	if (cqe < 1)
		return EINVAL;
	rc.handle = ibcq->handle;
	rc.cqe = (uint32_t)cqe;
	req.op_case = IPD__REQUEST__OP_RESIZE_CQ;
	req.resize_cq = &rc;
	/*
	 * Hold the CQ while the daemon moves unpolled entries to the new
	 * ring, so no poller reads the old one meanwhile.
	 */
	pthread_spin_lock(&cq->ring.lock);
	err = ipd_ctl_request(to_ictx(ibcq->context), &req, NULL, 0, &resp,
			      rfds, &nrfds, 1);
	if (err)
		goto out_unlock;
	if (resp->op_case != IPD__RESPONSE__OP_RESIZE_CQ || nrfds != 1) {
		if (nrfds)
			close(rfds[0]);
		err = EPROTO;
		goto out_free;
	}
	err = ipd_uring_map(&nr, rfds[0], resp->resize_cq->ring_size,
			    sizeof(struct ipd_cqe));
	if (err)
		goto out_free;
	old = cq->ring;
	cq->ring.hdr = nr.hdr;
	cq->ring.map_len = nr.map_len;
	cq->ring.size = nr.size;
	ibcq->cqe = (int)resp->resize_cq->cqe;
	munmap(old.hdr, old.map_len);
	pthread_spin_destroy(&nr.lock);
out_free:
	ipd_ctl_free(resp);
out_unlock:
	pthread_spin_unlock(&cq->ring.lock);
	return err;
}

int ipd_destroy_cq(struct ibv_cq *ibcq)
{
	struct ipd_cq *cq = to_icq(ibcq);
	int err;

	err = ipd_ctl_destroy(to_ictx(ibcq->context), IPD__OBJ_TYPE__OBJ_CQ,
			      ibcq->handle);
	if (err)
		return err;
	ipd_chan_unbind(cq);
	ipd_uring_unmap(&cq->ring);
	free(cq);
	return 0;
}

/* ------------------------------------------------------------------ */
/* XRC domains                                                         */

/* ibv_open_xrcd(3): fd -1 opens a private domain; otherwise the daemon
 * names the domain by the file, so processes opening the same file share
 * it.  Only O_CREAT and O_EXCL mean anything in oflags. */
struct ibv_xrcd *ipd_open_xrcd(struct ibv_context *context,
			       struct ibv_xrcd_init_attr *attr)
{
	const uint32_t need = IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS;
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__OpenXrcd ox = IPD__OPEN_XRCD__INIT;
	Ipd__Response *resp;
	struct verbs_xrcd *x;
	int err;

	if (attr->comp_mask & ~need) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if ((attr->comp_mask & need) != need ||
	    attr->oflags & ~(O_CREAT | O_EXCL)) {
		errno = EINVAL;
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		errno = ENOMEM;
		return NULL;
	}
	ox.has_fd = attr->fd >= 0;
	ox.oflags = (uint32_t)attr->oflags;
	req.op_case = IPD__REQUEST__OP_OPEN_XRCD;
	req.open_xrcd = &ox;
	err = ipd_ctl_request(to_ictx(context), &req, &attr->fd,
			      ox.has_fd ? 1 : 0, &resp, NULL, NULL, 0);
	if (err)
		goto err_free;
	if (resp->op_case != IPD__RESPONSE__OP_OPEN_XRCD) {
		ipd_ctl_free(resp);
		err = EPROTO;
		goto err_free;
	}
	x->handle = resp->open_xrcd->handle;
	x->comp_mask = 0;
	x->xrcd.context = context;
	ipd_ctl_free(resp);
	return &x->xrcd;

err_free:
	free(x);
	errno = err;
	return NULL;
}

int ipd_close_xrcd(struct ibv_xrcd *xrcd)
{
	struct verbs_xrcd *x = to_vxrcd(xrcd);
	int err;

	err = ipd_ctl_destroy(to_ictx(xrcd->context), IPD__OBJ_TYPE__OBJ_XRCD,
			      x->handle);
	if (err)
		return err;
	free(x);
	return 0;
}

/* ------------------------------------------------------------------ */
/* SRQ                                                                 */

static Ipd__SrqAttr *srq_attr_to_msg(Ipd__SrqAttr *m,
				     const struct ibv_srq_attr *a)
{
	ipd__srq_attr__init(m);
	m->max_wr = a->max_wr;
	m->max_sge = a->max_sge;
	m->srq_limit = a->srq_limit;
	return m;
}

static void srq_attr_from_msg(struct ibv_srq_attr *a, const Ipd__SrqAttr *m)
{
	if (!m)
		return;
	a->max_wr = m->max_wr;
	a->max_sge = m->max_sge;
	a->srq_limit = m->srq_limit;
}

/* A basic SRQ (xrcd NULL) or an XRC SRQ of xrcd completing on cq. */
static struct ibv_srq *srq_create(struct ibv_pd *pd, struct ibv_srq_attr *attr,
				  struct verbs_xrcd *xrcd, struct ibv_cq *cq)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateSrq cs = IPD__CREATE_SRQ__INIT;
	Ipd__SrqAttr sa;
	Ipd__Response *resp;
	Ipd__CreateSrqResp *r;
	int rfds[1], nrfds, err;
	struct ipd_srq *srq;

	srq = calloc(1, sizeof(*srq));
	if (!srq) {
		errno = ENOMEM;
		return NULL;
	}
	cs.pd = pd->handle;
	cs.attr = srq_attr_to_msg(&sa, attr);
	cs.user_handle = (uintptr_t)&srq->vsrq.srq;
	if (xrcd) {
		cs.srq_type = IBV_SRQT_XRC;
		cs.xrcd = xrcd->handle;
		cs.cq = cq->handle;
	}
	req.op_case = IPD__REQUEST__OP_CREATE_SRQ;
	req.create_srq = &cs;
	err = ipd_ctl_request(pd_ctx(pd), &req, NULL, 0, &resp, rfds, &nrfds, 1);
	if (err)
		goto err_free;
	if (resp->op_case != IPD__RESPONSE__OP_CREATE_SRQ || nrfds != 1) {
		if (nrfds)
			close(rfds[0]);
		err = EPROTO;
		goto err_resp;
	}
	r = resp->create_srq;
	srq->vsrq.srq.handle = r->handle;
	srq->vsrq.srq_type = xrcd ? IBV_SRQT_XRC : IBV_SRQT_BASIC;
	srq->vsrq.xrcd = xrcd;
	srq->vsrq.cq = cq;
	srq->vsrq.srq_num = r->srq_num;
	srq_attr_from_msg(attr, r->attr);
	srq->max_sge = attr->max_sge;
	err = ipd_uring_map(&srq->ring, rfds[0], r->ring_size, r->slot_size);
	if (err) {
		ipd_ctl_destroy(pd_ctx(pd), IPD__OBJ_TYPE__OBJ_SRQ, r->handle);
		goto err_resp;
	}
	if (ipd_recv_slot_size(srq->max_sge) > srq->ring.slot_size)
		srq->max_sge = (srq->ring.slot_size -
				sizeof(struct ipd_recv_wqe)) /
			       sizeof(struct ipd_sge);
	ipd_ctl_free(resp);
	return &srq->vsrq.srq;

err_resp:
	ipd_ctl_free(resp);
err_free:
	free(srq);
	errno = err;
	return NULL;
}

struct ibv_srq *ipd_create_srq(struct ibv_pd *pd,
			       struct ibv_srq_init_attr *attr)
{
	return srq_create(pd, &attr->attr, NULL, NULL);
}

/* ibv_create_srq_ex: the core does nothing for the provider here, so the
 * ibv_srq fields it would set for ibv_create_srq are set here. */
struct ibv_srq *ipd_create_srq_ex(struct ibv_context *context,
				  struct ibv_srq_init_attr_ex *attr)
{
	const uint32_t known = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD |
			       IBV_SRQ_INIT_ATTR_XRCD | IBV_SRQ_INIT_ATTR_CQ;
	uint32_t mask = attr->comp_mask;
	bool xrc = (mask & IBV_SRQ_INIT_ATTR_TYPE) &&
		   attr->srq_type == IBV_SRQT_XRC;
	struct ibv_srq *srq;

	if (mask & ~known || ((mask & IBV_SRQ_INIT_ATTR_TYPE) &&
			      attr->srq_type != IBV_SRQT_BASIC && !xrc)) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (!(mask & IBV_SRQ_INIT_ATTR_PD) || !attr->pd ||
	    (xrc && (!(mask & IBV_SRQ_INIT_ATTR_XRCD) || !attr->xrcd ||
		     !(mask & IBV_SRQ_INIT_ATTR_CQ) || !attr->cq))) {
		errno = EINVAL;
		return NULL;
	}
	srq = srq_create(attr->pd, &attr->attr,
			 xrc ? to_vxrcd(attr->xrcd) : NULL,
			 xrc ? attr->cq : NULL);
	if (!srq)
		return NULL;
	srq->context = context;
	srq->srq_context = attr->srq_context;
	srq->pd = attr->pd;
	srq->events_completed = 0;
	pthread_mutex_init(&srq->mutex, NULL);
	pthread_cond_init(&srq->cond, NULL);
	return srq;
}

int ipd_get_srq_num(struct ibv_srq *srq, uint32_t *srq_num)
{
	struct ipd_srq *s = to_isrq(srq);

	if (s->vsrq.srq_type != IBV_SRQT_XRC)
		return EINVAL;
	*srq_num = s->vsrq.srq_num;
	return 0;
}

int ipd_modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr, int mask)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__ModifySrq ms = IPD__MODIFY_SRQ__INIT;
	Ipd__SrqAttr sa;

	ms.handle = srq->handle;
	ms.attr_mask = (uint32_t)mask;
	ms.attr = srq_attr_to_msg(&sa, attr);
	req.op_case = IPD__REQUEST__OP_MODIFY_SRQ;
	req.modify_srq = &ms;
	return ipd_ctl_request(to_ictx(srq->context), &req, NULL, 0, NULL,
			       NULL, NULL, 0);
}

int ipd_query_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__QuerySrq qs = IPD__QUERY_SRQ__INIT;
	Ipd__Response *resp;
	int err;

	qs.handle = srq->handle;
	req.op_case = IPD__REQUEST__OP_QUERY_SRQ;
	req.query_srq = &qs;
	err = ipd_ctl_request(to_ictx(srq->context), &req, NULL, 0, &resp,
			      NULL, NULL, 0);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_QUERY_SRQ)
		err = EPROTO;
	else
		srq_attr_from_msg(attr, resp->query_srq->attr);
	ipd_ctl_free(resp);
	return err;
}

int ipd_destroy_srq(struct ibv_srq *ibsrq)
{
	struct ipd_srq *srq = to_isrq(ibsrq);
	int err;

	err = ipd_ctl_destroy(to_ictx(ibsrq->context), IPD__OBJ_TYPE__OBJ_SRQ,
			      ibsrq->handle);
	if (err)
		return err;
	ipd_uring_unmap(&srq->ring);
	free(srq);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Address handles                                                     */

struct ibv_ah *ipd_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateAh ca = IPD__CREATE_AH__INIT;
	Ipd__AhAttr aa;
	Ipd__GlobalRoute gr;
	Ipd__Response *resp;
	struct ipd_ah *ah;
	int err;

	ah = calloc(1, sizeof(*ah));
	if (!ah) {
		errno = ENOMEM;
		return NULL;
	}
	ipd_ah_attr_to_msg(&aa, &gr, attr);
	ca.pd = pd->handle;
	ca.attr = &aa;
	req.op_case = IPD__REQUEST__OP_CREATE_AH;
	req.create_ah = &ca;
	err = ipd_ctl_request(pd_ctx(pd), &req, NULL, 0, &resp, NULL, NULL, 0);
	if (err)
		goto err_free;
	if (resp->op_case != IPD__RESPONSE__OP_CREATE_AH) {
		ipd_ctl_free(resp);
		err = EPROTO;
		goto err_free;
	}
	ah->ibv_ah.handle = resp->create_ah->handle;
	ipd_ctl_free(resp);
	return &ah->ibv_ah;

err_free:
	free(ah);
	errno = err;
	return NULL;
}

int ipd_destroy_ah(struct ibv_ah *ah)
{
	int err = ipd_ctl_destroy(to_ictx(ah->context), IPD__OBJ_TYPE__OBJ_AH,
				  ah->handle);

	if (!err)
		free(ah);
	return err;
}

/* ------------------------------------------------------------------ */
/* QP                                                                  */

/* Which rings a QP gets: XRC_RECV (TGT) none, XRC_SEND (INI) and QPs on
 * an SRQ only the send queue. */
static bool qpt_has_sq(enum ibv_qp_type t)
{
	return t != IBV_QPT_XRC_RECV;
}

static bool qp_attr_has_rq(const struct ibv_qp_init_attr_ex *attr)
{
	return !attr->srq && attr->qp_type != IBV_QPT_XRC_SEND &&
	       attr->qp_type != IBV_QPT_XRC_RECV;
}

/* Map the rings of a new QP and clamp caps to what the slots can hold. */
static int qp_map_rings(struct ipd_qp *qp, const Ipd__CreateQpResp *r,
			int *rfds, int nrfds, bool has_sq, bool has_rq)
{
	uint32_t body;
	int err;

	if (nrfds != (int)has_sq + (int)has_rq)
		return EPROTO;
	if (!has_sq)
		return 0;
	err = ipd_uring_map(&qp->sq, rfds[0], r->sq_size, r->sq_slot_size);
	rfds[0] = -1;
	if (err)
		return err;
	body = qp->sq.slot_size - (uint32_t)sizeof(struct ipd_send_wqe);
	if (qp->cap.max_send_sge > body / sizeof(struct ipd_sge))
		qp->cap.max_send_sge = body / sizeof(struct ipd_sge);
	if (qp->cap.max_inline_data > body)
		qp->cap.max_inline_data = body;
	if (!has_rq)
		return 0;
	err = ipd_uring_map(&qp->rq, rfds[1], r->rq_size, r->rq_slot_size);
	rfds[1] = -1;
	if (err)
		return err;
	body = qp->rq.slot_size - (uint32_t)sizeof(struct ipd_recv_wqe);
	if (qp->cap.max_recv_sge > body / sizeof(struct ipd_sge))
		qp->cap.max_recv_sge = body / sizeof(struct ipd_sge);
	return 0;
}

static void qp_init_ibv(struct ipd_qp *qp, struct ibv_context *context,
			const struct ibv_qp_init_attr_ex *attr, uint32_t qpn)
{
	struct ibv_qp *q = &qp->vqp.qp;

	q->context = context;
	q->qp_context = attr->qp_context;
	q->pd = attr->pd;
	q->send_cq = attr->send_cq;
	q->recv_cq = attr->recv_cq;
	q->srq = attr->srq;
	q->handle = qpn;
	q->qp_num = qpn;
	q->state = IBV_QPS_RESET;
	q->qp_type = attr->qp_type;
	q->events_completed = 0;
	pthread_mutex_init(&q->mutex, NULL);
	pthread_cond_init(&q->cond, NULL);
	qp->sq_sig_all = attr->sq_sig_all;
}

static int qp_create(struct ibv_context *context, struct ipd_qp *qp,
		     struct ibv_qp_init_attr_ex *attr)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateQp cq = IPD__CREATE_QP__INIT;
	Ipd__QpCap cap;
	Ipd__Response *resp;
	int rfds[2] = { -1, -1 }, nrfds, err, i;

	cq.pd = attr->pd ? attr->pd->handle : 0;
	cq.qp_type = attr->qp_type;
	cq.send_cq = attr->send_cq ? attr->send_cq->handle : 0;
	cq.recv_cq = attr->recv_cq ? attr->recv_cq->handle : 0;
	cq.srq = attr->srq ? attr->srq->handle : 0;
	if (attr->qp_type == IBV_QPT_XRC_RECV)
		cq.xrcd = to_vxrcd(attr->xrcd)->handle;
	cq.cap = ipd_qp_cap_to_msg(&cap, &attr->cap);
	cq.sq_sig_all = attr->sq_sig_all != 0;
	cq.user_handle = (uintptr_t)&qp->vqp.qp;
	req.op_case = IPD__REQUEST__OP_CREATE_QP;
	req.create_qp = &cq;
	err = ipd_ctl_request(to_ictx(context), &req, NULL, 0, &resp, rfds,
			      &nrfds, 2);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_CREATE_QP) {
		err = EPROTO;
		goto out;
	}
	qp->cap = attr->cap;
	ipd_qp_cap_from_msg(&qp->cap, resp->create_qp->cap);
	err = qp_map_rings(qp, resp->create_qp, rfds, nrfds,
			   qpt_has_sq(attr->qp_type), qp_attr_has_rq(attr));
	if (err) {
		ipd_uring_unmap(&qp->sq);
		ipd_uring_unmap(&qp->rq);
		ipd_ctl_destroy(to_ictx(context), IPD__OBJ_TYPE__OBJ_QP,
				resp->create_qp->qpn);
		goto out;
	}
	qp_init_ibv(qp, context, attr, resp->create_qp->qpn);
	if (attr->qp_type == IBV_QPT_XRC_RECV) {
		qp->vqp.xrcd = to_vxrcd(attr->xrcd);
		qp->vqp.comp_mask |= VERBS_QP_XRCD;
	}
	attr->cap = qp->cap;
out:
	for (i = 0; i < nrfds; i++)
		if (rfds[i] >= 0)
			close(rfds[i]);
	ipd_ctl_free(resp);
	return err;
}

/* What each QP type needs at create: 0, or -1 with errno set.  An XRC
 * TGT QP belongs to its XRCD alone; an INI QP has no receive side. */
static int qp_new_check(const struct ibv_qp_init_attr_ex *attr)
{
	bool ok;

	switch (attr->qp_type) {
	case IBV_QPT_RC:
	case IBV_QPT_UC:
	case IBV_QPT_UD:
		ok = attr->send_cq && attr->recv_cq && attr->pd;
		break;
	case IBV_QPT_XRC_SEND:
		ok = attr->send_cq && attr->pd;
		break;
	case IBV_QPT_XRC_RECV:
		ok = (attr->comp_mask & IBV_QP_INIT_ATTR_XRCD) && attr->xrcd;
		break;
	default:
		errno = EOPNOTSUPP;
		return -1;
	}
	if (!ok)
		errno = EINVAL;
	return ok ? 0 : -1;
}

static struct ibv_qp *qp_new(struct ibv_context *context,
			     struct ibv_qp_init_attr_ex *attr, bool ex)
{
	struct ipd_qp *qp;
	int err;

	if (qp_new_check(attr))
		return NULL;
	qp = calloc(1, sizeof(*qp));
	if (!qp) {
		errno = ENOMEM;
		return NULL;
	}
	err = qp_create(context, qp, attr);
	if (err) {
		free(qp);
		errno = err;
		return NULL;
	}
	ipd_qp_ex_init(qp);
	if (ex)
		qp->vqp.comp_mask |= VERBS_QP_EX;
	ipd_fatal_qp_add(qp);
	return &qp->vqp.qp;
}

struct ibv_qp *ipd_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct ibv_qp_init_attr_ex ex = { 0 };
	struct ibv_qp *qp;

	memcpy(&ex, attr, sizeof(*attr));
	ex.comp_mask = IBV_QP_INIT_ATTR_PD;
	ex.pd = pd;
	qp = qp_new(pd->context, &ex, false);
	if (qp)
		attr->cap = ex.cap;
	return qp;
}

struct ibv_qp *ipd_create_qp_ex(struct ibv_context *context,
				struct ibv_qp_init_attr_ex *attr)
{
	const uint32_t known = IBV_QP_INIT_ATTR_PD |
			       IBV_QP_INIT_ATTR_XRCD |
			       IBV_QP_INIT_ATTR_CREATE_FLAGS |
			       IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
	bool ex = attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
	/* A TGT QP has an XRCD and no PD; every other QP has a PD. */
	uint32_t owner = attr->qp_type == IBV_QPT_XRC_RECV ?
				 IBV_QP_INIT_ATTR_XRCD : IBV_QP_INIT_ATTR_PD;

	if (attr->comp_mask & ~known || !(attr->comp_mask & owner) ||
	    ((attr->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) &&
	     attr->create_flags) ||
	    (ex && attr->send_ops_flags & ~(uint64_t)IPD_SUPPORTED_SEND_OPS)) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	return qp_new(context, attr, ex);
}

/* Only the attributes named in mask are meaningful to the daemon. */
static void qp_attr_to_msg(Ipd__QpAttr *m, Ipd__QpCap *cap, Ipd__AhAttr *ah,
			   Ipd__GlobalRoute *g, Ipd__AhAttr *alt,
			   Ipd__GlobalRoute *altg, const struct ibv_qp_attr *a,
			   int mask)
{
	ipd__qp_attr__init(m);
	m->qp_state = a->qp_state;
	m->cur_qp_state = a->cur_qp_state;
	m->path_mtu = a->path_mtu;
	m->path_mig_state = a->path_mig_state;
	m->qkey = a->qkey;
	m->rq_psn = a->rq_psn;
	m->sq_psn = a->sq_psn;
	m->dest_qp_num = a->dest_qp_num;
	m->qp_access_flags = (uint32_t)a->qp_access_flags;
	if (mask & IBV_QP_CAP)
		m->cap = ipd_qp_cap_to_msg(cap, &a->cap);
	if (mask & IBV_QP_AV) {
		ipd_ah_attr_to_msg(ah, g, &a->ah_attr);
		m->ah_attr = ah;
	}
	if (mask & IBV_QP_ALT_PATH) {
		ipd_ah_attr_to_msg(alt, altg, &a->alt_ah_attr);
		m->alt_ah_attr = alt;
	}
	m->pkey_index = a->pkey_index;
	m->alt_pkey_index = a->alt_pkey_index;
	m->en_sqd_async_notify = a->en_sqd_async_notify;
	m->sq_draining = a->sq_draining;
	m->max_rd_atomic = a->max_rd_atomic;
	m->max_dest_rd_atomic = a->max_dest_rd_atomic;
	m->min_rnr_timer = a->min_rnr_timer;
	m->port_num = a->port_num;
	m->timeout = a->timeout;
	m->retry_cnt = a->retry_cnt;
	m->rnr_retry = a->rnr_retry;
	m->alt_port_num = a->alt_port_num;
	m->alt_timeout = a->alt_timeout;
	m->rate_limit = a->rate_limit;
}

int ipd_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__ModifyQp mq = IPD__MODIFY_QP__INIT;
	Ipd__QpAttr qa;
	Ipd__QpCap cap;
	Ipd__AhAttr ah, alt;
	Ipd__GlobalRoute g, altg;
	int err;

	qp_attr_to_msg(&qa, &cap, &ah, &g, &alt, &altg, attr, mask);
	mq.qpn = qp->qp_num;
	mq.attr_mask = (uint32_t)mask;
	mq.attr = &qa;
	req.op_case = IPD__REQUEST__OP_MODIFY_QP;
	req.modify_qp = &mq;
	err = ipd_ctl_request(to_ictx(qp->context), &req, NULL, 0, NULL, NULL,
			      NULL, 0);
	if (!err && (mask & IBV_QP_STATE))
		qp->state = attr->qp_state;
	return err;
}

static void qp_attr_from_msg(struct ibv_qp_attr *a, const Ipd__QpAttr *m)
{
	if (!m)
		return;
	a->qp_state = (enum ibv_qp_state)m->qp_state;
	a->cur_qp_state = (enum ibv_qp_state)m->cur_qp_state;
	a->path_mtu = (enum ibv_mtu)m->path_mtu;
	a->path_mig_state = (enum ibv_mig_state)m->path_mig_state;
	a->qkey = m->qkey;
	a->rq_psn = m->rq_psn;
	a->sq_psn = m->sq_psn;
	a->dest_qp_num = m->dest_qp_num;
	a->qp_access_flags = (unsigned int)m->qp_access_flags;
	ipd_qp_cap_from_msg(&a->cap, m->cap);
	ipd_ah_attr_from_msg(&a->ah_attr, m->ah_attr);
	ipd_ah_attr_from_msg(&a->alt_ah_attr, m->alt_ah_attr);
	a->pkey_index = (uint16_t)m->pkey_index;
	a->alt_pkey_index = (uint16_t)m->alt_pkey_index;
	a->en_sqd_async_notify = (uint8_t)m->en_sqd_async_notify;
	a->sq_draining = (uint8_t)m->sq_draining;
	a->max_rd_atomic = (uint8_t)m->max_rd_atomic;
	a->max_dest_rd_atomic = (uint8_t)m->max_dest_rd_atomic;
	a->min_rnr_timer = (uint8_t)m->min_rnr_timer;
	a->port_num = (uint8_t)m->port_num;
	a->timeout = (uint8_t)m->timeout;
	a->retry_cnt = (uint8_t)m->retry_cnt;
	a->rnr_retry = (uint8_t)m->rnr_retry;
	a->alt_port_num = (uint8_t)m->alt_port_num;
	a->alt_timeout = (uint8_t)m->alt_timeout;
	a->rate_limit = m->rate_limit;
}

int ipd_query_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int mask,
		 struct ibv_qp_init_attr *init_attr)
{
	struct ipd_qp *qp = to_iqp(ibqp);
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__QueryQp qq = IPD__QUERY_QP__INIT;
	Ipd__Response *resp;
	Ipd__QueryQpResp *r;
	int err;

	qq.qpn = ibqp->qp_num;
	qq.attr_mask = (uint32_t)mask;
	req.op_case = IPD__REQUEST__OP_QUERY_QP;
	req.query_qp = &qq;
	err = ipd_ctl_request(to_ictx(ibqp->context), &req, NULL, 0, &resp,
			      NULL, NULL, 0);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_QUERY_QP) {
		ipd_ctl_free(resp);
		return EPROTO;
	}
	r = resp->query_qp;
	memset(attr, 0, sizeof(*attr));
	qp_attr_from_msg(attr, r->attr);
	/* The daemon may have moved the QP (to the error state). */
	if (r->attr)
		ibqp->state = attr->qp_state;
	memset(init_attr, 0, sizeof(*init_attr));
	init_attr->qp_context = ibqp->qp_context;
	init_attr->send_cq = ibqp->send_cq;
	init_attr->recv_cq = ibqp->recv_cq;
	init_attr->srq = ibqp->srq;
	init_attr->qp_type = ibqp->qp_type;
	init_attr->cap = qp->cap;
	ipd_qp_cap_from_msg(&init_attr->cap, r->init_cap);
	init_attr->sq_sig_all = r->sq_sig_all;
	ipd_ctl_free(resp);
	return 0;
}

/* ibv_open_qp's use of a TGT QP begins (close false) or ends; while it
 * lasts, the QP's async events name this process's ibqp. */
static int qp_open_req(struct ibv_context *context, struct verbs_xrcd *xrcd,
		       uint32_t qpn, struct ibv_qp *ibqp, bool close)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__OpenQp oq = IPD__OPEN_QP__INIT;

	oq.xrcd = xrcd->handle;
	oq.qpn = qpn;
	oq.close = close;
	oq.user_handle = (uintptr_t)ibqp;
	req.op_case = IPD__REQUEST__OP_OPEN_QP;
	req.open_qp = &oq;
	return ipd_ctl_request(to_ictx(context), &req, NULL, 0, NULL, NULL,
			       NULL, 0);
}

struct ibv_qp *ipd_open_qp(struct ibv_context *context,
			   struct ibv_qp_open_attr *attr)
{
	const uint32_t need = IBV_QP_OPEN_ATTR_NUM | IBV_QP_OPEN_ATTR_XRCD |
			      IBV_QP_OPEN_ATTR_TYPE;
	struct ibv_qp_init_attr_ex ia = { 0 };
	struct ipd_qp *qp;
	int err;

	if (attr->comp_mask & ~(need | IBV_QP_OPEN_ATTR_CONTEXT) ||
	    (attr->comp_mask & need) != need || !attr->xrcd ||
	    attr->qp_type != IBV_QPT_XRC_RECV) {
		errno = EINVAL;
		return NULL;
	}
	qp = calloc(1, sizeof(*qp));
	if (!qp) {
		errno = ENOMEM;
		return NULL;
	}
	err = qp_open_req(context, to_vxrcd(attr->xrcd), attr->qp_num,
			  &qp->vqp.qp, false);
	if (err) {
		free(qp);
		errno = err;
		return NULL;
	}
	ia.qp_type = IBV_QPT_XRC_RECV;
	ia.qp_context = attr->qp_context;
	qp_init_ibv(qp, context, &ia, attr->qp_num);
	qp->vqp.xrcd = to_vxrcd(attr->xrcd);
	qp->vqp.comp_mask |= VERBS_QP_XRCD;
	qp->opened = true;
	return &qp->vqp.qp;
}

int ipd_destroy_qp(struct ibv_qp *ibqp)
{
	struct ipd_qp *qp = to_iqp(ibqp);
	int err;

	if (qp->opened)
		err = qp_open_req(ibqp->context, qp->vqp.xrcd, ibqp->qp_num,
				  ibqp, true);
	else
		err = ipd_ctl_destroy(to_ictx(ibqp->context),
				      IPD__OBJ_TYPE__OBJ_QP, ibqp->qp_num);
	if (err)
		return err;
	ipd_fatal_qp_del(qp);
	ipd_app_tx_qp_fini(qp);
	ipd_uring_unmap(&qp->sq);
	ipd_uring_unmap(&qp->rq);
	free(qp->defer);
	free(qp);
	return 0;
}
