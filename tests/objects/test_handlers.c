// SPDX-License-Identifier: MIT
/*
 * The object request handlers (pd.c mr.c cq.c srq.c ah.c qp.c objects.c
 * device.c status.c) driven directly, without a socket or a transport
 * engine.  The functions those files call in ctl.c, sysfs.c and the
 * engine are replaced by the test doubles below, which record what they
 * were asked to do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"

/* ---- test doubles --------------------------------------------------- */

static struct {
	int n_events, last_event;
	uint64_t last_element;
	int qp_init, qp_fini, qp_modified;
	enum ibv_qp_state qp_old;
} seen;

/* Response memory, freed when the next request starts (like ctl.c does
 * after sending). */
static void *allocs[1024];
static int n_allocs;

void *ipd_req_alloc(struct ipd_req_ctx *ctx, size_t size)
{
	void *p;

	if (n_allocs == (int)(sizeof(allocs) / sizeof(allocs[0])))
		return NULL;
	p = calloc(1, size);
	if (p)
		allocs[n_allocs++] = p;
	return p;
}

static void free_allocs(void)
{
	while (n_allocs)
		free(allocs[--n_allocs]);
}

int ipd_req_fail(struct ipd_req_ctx *ctx, int err, const char *fmt, ...)
{
	ctx->resp->err = err;
	(void)fmt;
	return -err;
}

void ipd_async_event(struct ipd_client *client, uint64_t element,
		     enum ibv_event_type type)
{
	seen.n_events++;
	seen.last_element = element;
	seen.last_event = type;
}

int ipd_gid_find(const struct ipd_dev *dev, const union ibv_gid *gid)
{
	for (int i = 0; i < dev->ngids; i++)
		if (!memcmp(&dev->gids[i].gid, gid, sizeof(*gid)))
			return i;
	return -1;
}

int ipd_engine_qp_init(struct ipd_qp *qp)
{
	seen.qp_init++;
	return 0;
}

void ipd_engine_qp_fini(struct ipd_qp *qp)
{
	seen.qp_fini++;
}

void ipd_engine_qp_modified(struct ipd_qp *qp, enum ibv_qp_state old,
			    int attr_mask)
{
	seen.qp_modified++;
	seen.qp_old = old;
}

void ipd_engine_srq_gone(struct ipd_dev *d, struct ipd_srq *srq)
{
	(void)d;
	(void)srq;
}

void ipd_engine_qp_psns(struct ipd_qp *qp, uint32_t *sq_psn, uint32_t *rq_psn)
{
	*sq_psn = 111;
	*rq_psn = 222;
}

/* ---- fixture -------------------------------------------------------- */

static struct ipd_config cfg;
static struct ipd_dev dev;
static struct ipd_client client, other, third;
static Ipd__Request req;
static Ipd__Response resp;
static struct ipd_req_ctx ctx;

static void setup(void)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&dev.gids[1].addr;

	cfg.max_qp = cfg.max_cq = cfg.max_pd = cfg.max_mr = 64;
	cfg.max_srq = cfg.max_ah = 64;
	cfg.max_qp_wr = cfg.max_srq_wr = 1024;
	cfg.max_cqe = 4096;
	cfg.max_sge = IPD_MAX_SGE;
	cfg.max_inline = 256;
	cfg.max_qp_rd_atom = 16;
	cfg.max_mr_size = 1ull << 32;
	cfg.udp_port = 4791;
	strcpy(cfg.dev_name, "ipathtest0");
	dev.cfg = &cfg;
	dev.active_mtu = 1500;
	TAILQ_INIT(&dev.qps_list);
	TAILQ_INIT(&dev.clients);
	ipd_table_init(&dev.pds, 1, cfg.max_pd);
	ipd_table_init(&dev.mrs, 1, cfg.max_mr);
	ipd_table_init(&dev.cqs, 1, cfg.max_cq);
	ipd_table_init(&dev.srqs, 1, cfg.max_srq);
	ipd_table_init(&dev.qps, 16, cfg.max_qp);
	ipd_table_init(&dev.ahs, 1, cfg.max_ah);
	ipd_table_init(&dev.xrcds, 1, cfg.max_pd);
	/* GID 1 = ::ffff:10.0.0.1 */
	dev.ngids = 2;
	dev.gids[1].gid.raw[10] = dev.gids[1].gid.raw[11] = 0xff;
	dev.gids[1].gid.raw[12] = 10;
	dev.gids[1].gid.raw[15] = 1;
	dev.gids[1].family = AF_INET;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x0a000001);
	client.dev = other.dev = third.dev = &dev;
	client.id = 1;
	other.id = 2;
	third.id = 3;
}

/* A fresh response for the next request (closing fds of the last one). */
static void next(void)
{
	for (int i = 0; i < ctx.n_out_fds; i++)
		close(ctx.out_fds[i]);
	free_allocs();
	ipd__response__init(&resp);
	memset(&ctx, 0, sizeof(ctx));
	ctx.client = &client;
	ctx.req = &req;
	ctx.resp = &resp;
}

static uint32_t alloc_pd(void)
{
	next();
	CHECK(ipd_handle_alloc_pd(&ctx) == 0);
	return resp.alloc_pd ? resp.alloc_pd->handle : 0;
}

static int create_cq(uint32_t cqe, uint32_t *handle)
{
	Ipd__CreateCq m = IPD__CREATE_CQ__INIT;
	int ret;

	m.cqe = cqe;
	m.user_handle = 0xc0;
	req.create_cq = &m;
	next();
	ret = ipd_handle_create_cq(&ctx);
	*handle = ret ? 0 : resp.create_cq->handle;
	return ret;
}

static int destroy_by(struct ipd_client *c, Ipd__ObjType type,
		      uint32_t handle)
{
	Ipd__Destroy m = IPD__DESTROY__INIT;

	m.type = type;
	m.handle = handle;
	req.destroy = &m;
	next();
	ctx.client = c;
	return ipd_handle_destroy(&ctx);
}

static int destroy(Ipd__ObjType type, uint32_t handle)
{
	return destroy_by(&client, type, handle);
}

/* ---- tests ---------------------------------------------------------- */

/* A counter of a STATUS response by name; -1 when it is not listed. */
static long long status_counter(const Ipd__StatusResp *st, const char *name)
{
	for (size_t i = 0; i < st->n_counters; i++)
		if (!strcmp(st->counters[i]->name, name))
			return (long long)st->counters[i]->value;
	return -1;
}

static void test_device(void)
{
	Ipd__QueryPort qp = IPD__QUERY_PORT__INIT;

	next();
	CHECK(ipd_handle_query_device(&ctx) == 0);
	CHECK(resp.query_device->attr->vendor_id == 0x1fc1);
	CHECK(resp.query_device->attr->max_qp_rd_atom > 0);
	CHECK(resp.query_device->attr->atomic_cap == IBV_ATOMIC_HCA);
	req.query_port = &qp;
	qp.port_num = 2;
	next();
	CHECK(ipd_handle_query_port(&ctx) == -EINVAL);
	qp.port_num = 1;
	next();
	CHECK(ipd_handle_query_port(&ctx) == 0);
	CHECK(resp.query_port->attr->state == IBV_PORT_ACTIVE);
	CHECK(resp.query_port->attr->active_mtu == IBV_MTU_1024); /* 1500 */
	CHECK(resp.query_port->attr->link_layer == IBV_LINK_LAYER_ETHERNET);
}

static void test_cq(void)
{
	struct ipd_cqe cqe = { .wr_id = 7 };
	Ipd__ResizeCq rz = IPD__RESIZE_CQ__INIT;
	struct ipd_cq *cq;
	uint32_t h;

	CHECK(create_cq(0, &h) == -EINVAL);
	CHECK(create_cq(cfg.max_cqe + 1, &h) == -EINVAL);
	CHECK(create_cq(10, &h) == 0);
	CHECK(resp.create_cq->ring_size == 16 && resp.create_cq->cqe == 15);
	CHECK(ctx.n_out_fds == 1);
	cq = ipd_table_get(&dev.cqs, h);
	for (int i = 0; i < 16; i++)
		CHECK(ipd_cq_post(cq, &cqe) == 0);
	/* Overrun: -ENOSPC and one CQ_ERR event, not one per completion. */
	seen.n_events = 0;
	CHECK(ipd_cq_post(cq, &cqe) == -ENOSPC);
	CHECK(ipd_cq_post(cq, &cqe) == -ENOSPC);
	CHECK(seen.n_events == 1 && seen.last_event == IBV_EVENT_CQ_ERR &&
	      seen.last_element == 0xc0);

	/* Resize below the outstanding count fails; above keeps them. */
	rz.handle = h;
	rz.cqe = 8;
	req.resize_cq = &rz;
	next();
	CHECK(ipd_handle_resize_cq(&ctx) == -EINVAL);
	atomic_store(&cq->q.hdr->cons, 10);   /* the client polled 10 */
	next();
	CHECK(ipd_handle_resize_cq(&ctx) == 0);
	CHECK(resp.resize_cq->ring_size == 16 && ctx.n_out_fds == 1);
	CHECK(cq->q.prod == 6 && atomic_load(&cq->q.hdr->prod) == 6);
	CHECK(ipd_cq_post(cq, &cqe) == 0);

	/* Another client cannot destroy it. */
	ctx.client = &other;
	{
		Ipd__Destroy m = IPD__DESTROY__INIT;

		m.type = IPD__OBJ_TYPE__OBJ_CQ;
		m.handle = h;
		req.destroy = &m;
		CHECK(ipd_handle_destroy(&ctx) == -EINVAL);
	}
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_CQ, h) == 0);
	CHECK(ipd_table_get(&dev.cqs, h) == NULL);
}

static int reg_mr(Ipd__RegMr *m, int fd)
{
	req.reg_mr = m;
	next();
	ctx.in_fds[0] = fd;
	ctx.n_in_fds = 1;
	return ipd_handle_reg_mr(&ctx);
}

static void test_mr(uint32_t pd)
{
	long pg = sysconf(_SC_PAGESIZE);
	Ipd__PageRun r1 = IPD__PAGE_RUN__INIT, r2 = IPD__PAGE_RUN__INIT;
	Ipd__PageRun *runs[2] = { &r1, &r2 };
	Ipd__RegMr m = IPD__REG_MR__INIT;
	struct ipd_mr *mr;
	char *arena, *p;
	int fd;

	/* An arena the daemon cannot seal against shrinking is refused. */
	fd = memfd_create("arena", MFD_CLOEXEC);
	CHECK(fd >= 0 && ftruncate(fd, pg) == 0);
	m.pd = pd;
	m.addr = 0x70000000;
	m.length = pg;
	m.iova = m.addr;
	r1.npages = 1;
	m.n_runs = 1;
	m.runs = runs;
	CHECK(reg_mr(&m, fd) == -EINVAL);
	close(fd);

	/* The arena: pages 1 and 3 back the MR's two pages, in order. */
	fd = memfd_create("arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0 && ftruncate(fd, 4 * pg) == 0);
	arena = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(arena != MAP_FAILED);
	if (arena == MAP_FAILED)
		return;
	strcpy(arena + pg + 100, "first");
	strcpy(arena + 3 * pg, "second");
	r1.file_offset = pg;
	r1.npages = 1;
	r2.file_offset = 3 * pg;
	r2.npages = 1;
	m.pd = pd;
	m.addr = 0x70000000 + 100;
	m.length = 2 * pg - 100;
	m.iova = m.addr;
	m.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	m.n_runs = 2;
	m.runs = runs;
	CHECK(reg_mr(&m, fd) == 0);
	mr = resp.reg_mr ? ipd_mr_lookup(&dev, resp.reg_mr->lkey) : NULL;
	CHECK(mr != NULL);
	if (!mr)
		return;
	CHECK(resp.reg_mr->lkey == resp.reg_mr->rkey);
	CHECK(ipd_mr_lookup(&dev, mr->lkey ^ 1) == NULL);   /* key byte */
	CHECK(!strcmp(ipd_mr_ptr(mr, m.addr, 6, 0), "first"));
	CHECK(!strcmp(ipd_mr_ptr(mr, 0x70000000 + pg, 7, 0), "second"));
	CHECK(ipd_mr_ptr(mr, m.addr + m.length, 0, 0) != NULL);
	CHECK(ipd_mr_ptr(mr, m.addr + m.length, 1, 0) == NULL);
	CHECK(ipd_mr_ptr(mr, m.addr - 1, 1, 0) == NULL);
	CHECK(ipd_mr_ptr(mr, m.addr, m.length + 1, 0) == NULL);
	p = ipd_mr_ptr(mr, m.addr, 1, 0);
	*p = 'F';
	CHECK(arena[pg + 100] == 'F');      /* zero-copy: same pages */

	/* Remote write without local write (verbs rule). */
	m.access = IBV_ACCESS_REMOTE_WRITE;
	CHECK(reg_mr(&m, fd) == -EINVAL);
	m.access = 0;
	r2.npages = 2;                       /* runs cover too much */
	CHECK(reg_mr(&m, fd) == -EINVAL);
	r2.npages = 1;
	r2.file_offset = 4 * pg;             /* past the end of the arena */
	CHECK(reg_mr(&m, fd) == -EINVAL);
	r2.file_offset = 3 * pg;
	m.length = 0;
	CHECK(reg_mr(&m, fd) == -EINVAL);
	m.length = 2 * pg - 100;
	m.pd = 999;
	CHECK(reg_mr(&m, fd) == -EINVAL);
	m.pd = pd;
	req.reg_mr = &m;
	next();                              /* no fd attached */
	CHECK(ipd_handle_reg_mr(&ctx) == -EINVAL);

	CHECK(destroy(IPD__OBJ_TYPE__OBJ_PD, pd) == -EBUSY);
	munmap(arena, 4 * pg);
	close(fd);

	/* A sealable arena can no longer shrink under a registered MR. */
	fd = memfd_create("arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0 && ftruncate(fd, 4 * pg) == 0);
	CHECK(reg_mr(&m, fd) == 0);
	CHECK(ftruncate(fd, pg) < 0 && errno == EPERM);
	CHECK(ftruncate(fd, 8 * pg) == 0);  /* growing stays allowed */
	close(fd);
}

static void test_srq(uint32_t pd, uint32_t *srq_handle)
{
	Ipd__SrqAttr attr = IPD__SRQ_ATTR__INIT, mattr = IPD__SRQ_ATTR__INIT;
	Ipd__CreateSrq cs = IPD__CREATE_SRQ__INIT;
	Ipd__ModifySrq ms = IPD__MODIFY_SRQ__INIT;
	struct ipd_rwqe wqe;
	struct ipd_srq *srq;

	attr.max_wr = 5;
	attr.max_sge = 2;
	cs.pd = pd;
	cs.attr = &attr;
	cs.user_handle = 0x5e;
	req.create_srq = &cs;
	next();
	CHECK(ipd_handle_create_srq(&ctx) == 0);
	CHECK(resp.create_srq->attr->max_wr == 8);
	*srq_handle = resp.create_srq->handle;
	srq = ipd_table_get(&dev.srqs, *srq_handle);

	mattr.srq_limit = 9;                 /* above max_wr */
	ms.handle = *srq_handle;
	ms.attr_mask = IBV_SRQ_LIMIT;
	ms.attr = &mattr;
	req.modify_srq = &ms;
	next();
	CHECK(ipd_handle_modify_srq(&ctx) == -EINVAL);
	mattr.srq_limit = 3;
	next();
	CHECK(ipd_handle_modify_srq(&ctx) == 0);

	for (uint32_t i = 0; i < 5; i++) {
		struct ipd_recv_wqe *w = ipd_ring_slot(srq->q.hdr, srq->q.size,
						       srq->q.slot_size, i);

		w->wr_id = i;
		w->num_sge = i == 4 ? 3 : 1;   /* the last one lies */
		w->sge[0].length = 10;
	}
	ipd_ring_publish(srq->q.hdr, 5);
	seen.n_events = 0;
	CHECK(ipd_srq_take(srq, &wqe) == 0 && wqe.wr_id == 0);
	CHECK(ipd_srq_take(srq, &wqe) == 0 && wqe.wr_id == 1);
	CHECK(seen.n_events == 0);           /* 3 left: not below 3 */
	CHECK(ipd_srq_take(srq, &wqe) == 0 && wqe.sge[0].length == 10);
	CHECK(seen.n_events == 1 &&
	      seen.last_event == IBV_EVENT_SRQ_LIMIT_REACHED &&
	      seen.last_element == 0x5e);
	CHECK(ipd_srq_take(srq, &wqe) == 0 && seen.n_events == 1);
	CHECK(ipd_srq_take(srq, &wqe) == -EINVAL);
	CHECK(ipd_srq_take(srq, &wqe) == -EAGAIN);
	CHECK(atomic_load(&srq->q.hdr->cons) == 5);
}

static void test_ah(uint32_t pd, Ipd__AhAttr *ah)
{
	Ipd__CreateAh ca = IPD__CREATE_AH__INIT;
	struct sockaddr_in *dst;
	struct ipd_ah *a;

	ca.pd = pd;
	ca.attr = ah;
	req.create_ah = &ca;
	next();
	CHECK(ipd_handle_create_ah(&ctx) == 0);
	a = ipd_table_get(&dev.ahs, resp.create_ah->handle);
	dst = (struct sockaddr_in *)&a->av.dst;
	CHECK(dst->sin_family == AF_INET && ntohs(dst->sin_port) == 4791);
	CHECK(ntohl(dst->sin_addr.s_addr) == 0x0a000002 && !a->av.local);

	ah->grh->sgid_index = 0;             /* no address behind GID 0 */
	next();
	CHECK(ipd_handle_create_ah(&ctx) == -EINVAL);
	ah->grh->sgid_index = 2;             /* beyond the table */
	next();
	CHECK(ipd_handle_create_ah(&ctx) == -EINVAL);
	ah->grh->sgid_index = 1;
	ah->is_global = 0;                   /* RoCE needs a GRH */
	next();
	CHECK(ipd_handle_create_ah(&ctx) == -EINVAL);
	ah->is_global = 1;
}

static int modify(uint32_t qpn, unsigned int mask, Ipd__QpAttr *a)
{
	Ipd__ModifyQp m = IPD__MODIFY_QP__INIT;
	int ret;

	m.qpn = qpn;
	m.attr_mask = mask;
	m.attr = a;
	req.modify_qp = &m;
	next();
	ret = ipd_handle_modify_qp(&ctx);
	req.modify_qp = NULL;
	return ret;
}

/* One RC QP through RESET -> INIT -> RTR -> RTS with bad values on the
 * way, then to ERR and back to RESET. */
static void test_qp_rc(uint32_t pd, uint32_t cq, Ipd__AhAttr *ah)
{
	const unsigned int init = IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
	const unsigned int rtr = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
				 IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	const unsigned int rts = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
				 IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				 IBV_QP_MAX_QP_RD_ATOMIC;
	Ipd__QpCap cap = IPD__QP_CAP__INIT;
	Ipd__CreateQp cm = IPD__CREATE_QP__INIT;
	Ipd__QpAttr at = IPD__QP_ATTR__INIT;
	Ipd__QueryQp qm = IPD__QUERY_QP__INIT;
	struct ipd_qp *qp;
	uint32_t qpn;

	cap.max_send_wr = cap.max_recv_wr = 10;
	cap.max_send_sge = cap.max_recv_sge = 2;
	cap.max_inline_data = 64;
	cm.pd = pd;
	cm.qp_type = IBV_QPT_RC;
	cm.send_cq = cm.recv_cq = cq;
	cm.cap = &cap;
	cm.user_handle = 0x9b;
	req.create_qp = &cm;
	next();
	CHECK(ipd_handle_create_qp(&ctx) == 0);
	qpn = resp.create_qp->qpn;
	CHECK(qpn >= 16 && ctx.n_out_fds == 2);
	CHECK(resp.create_qp->sq_size == 16 && resp.create_qp->cap->max_send_wr == 16);
	CHECK(resp.create_qp->cap->max_send_sge >= 2);
	CHECK(resp.create_qp->cap->max_inline_data >= 64);
	CHECK(seen.qp_init == 1);
	cm.qp_type = IBV_QPT_RAW_PACKET;
	next();
	CHECK(ipd_handle_create_qp(&ctx) == -EINVAL);
	cm.qp_type = IBV_QPT_RC;
	cap.max_send_wr = cfg.max_qp_wr + 1;
	next();
	CHECK(ipd_handle_create_qp(&ctx) == -EINVAL);
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_CQ, cq) == -EBUSY);
	qp = ipd_qp_lookup(&dev, qpn);

	at.qp_state = IBV_QPS_INIT;
	at.port_num = 1;
	at.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	CHECK(modify(qpn, init & ~IBV_QP_ACCESS_FLAGS, &at) == -EINVAL);
	at.port_num = 2;
	CHECK(modify(qpn, init, &at) == -EINVAL);
	at.port_num = 1;
	at.pkey_index = 1;
	CHECK(modify(qpn, init, &at) == -EINVAL);
	at.pkey_index = 0;
	CHECK(qp->attr.qp_state == IBV_QPS_RESET && seen.qp_modified == 0);
	CHECK(modify(qpn, init, &at) == 0);
	CHECK(seen.qp_modified == 1 && seen.qp_old == IBV_QPS_RESET);

	at.qp_state = IBV_QPS_RTR;
	at.path_mtu = IBV_MTU_1024;
	at.dest_qp_num = 17;
	at.rq_psn = 0x1234567;
	at.max_dest_rd_atomic = 1;
	at.min_rnr_timer = 12;
	at.ah_attr = ah;
	at.path_mtu = IBV_MTU_4096;          /* above the port's 1024 */
	CHECK(modify(qpn, rtr, &at) == -EINVAL);
	at.path_mtu = IBV_MTU_1024;
	at.min_rnr_timer = 32;
	CHECK(modify(qpn, rtr, &at) == -EINVAL);
	at.min_rnr_timer = 12;
	at.max_dest_rd_atomic = cfg.max_qp_rd_atom + 1;
	CHECK(modify(qpn, rtr, &at) == -EINVAL);
	at.max_dest_rd_atomic = 1;
	ah->grh->sgid_index = 0;
	CHECK(modify(qpn, rtr, &at) == -EINVAL);
	ah->grh->sgid_index = 1;
	CHECK(qp->attr.qp_state == IBV_QPS_INIT);
	CHECK(modify(qpn, rtr, &at) == 0);
	CHECK(qp->mtu == 1024 && qp->attr.rq_psn == 0x234567);
	CHECK(qp->av.dst.ss_family == AF_INET);

	at.qp_state = IBV_QPS_RTS;
	at.sq_psn = 5;
	at.timeout = 14;
	at.retry_cnt = 7;
	at.rnr_retry = 7;
	at.max_rd_atomic = 1;
	at.retry_cnt = 8;
	CHECK(modify(qpn, rts, &at) == -EINVAL);
	at.retry_cnt = 7;
	at.timeout = 32;
	CHECK(modify(qpn, rts, &at) == -EINVAL);
	at.timeout = 14;
	at.cur_qp_state = IBV_QPS_INIT;      /* not the QP's state */
	CHECK(modify(qpn, rts | IBV_QP_CUR_STATE, &at) == -EINVAL);
	at.cur_qp_state = IBV_QPS_RTR;
	CHECK(modify(qpn, rts | IBV_QP_CUR_STATE, &at) == 0);

	qm.qpn = qpn;
	req.query_qp = &qm;
	next();
	CHECK(ipd_handle_query_qp(&ctx) == 0);
	CHECK(resp.query_qp->attr->qp_state == IBV_QPS_RTS);
	CHECK(resp.query_qp->attr->sq_psn == 111);     /* from the engine */
	CHECK(resp.query_qp->attr->timeout == 14);
	CHECK(resp.query_qp->attr->ah_attr->grh->sgid_index == 1);
	CHECK(resp.query_qp->attr->ah_attr->grh->dgid.len == 16);

	dev.cnt.fabric_tx_dropped = 7;       /* link_fabric.c's counters */
	dev.cnt.fabric_rx_bad = 3;
	next();
	CHECK(ipd_handle_status(&ctx) == 0);
	CHECK(status_counter(resp.status, "fabric_tx_dropped") == 7);
	CHECK(status_counter(resp.status, "fabric_rx_bad") == 3);
	CHECK(status_counter(resp.status, "fabric_tx_errors") == 0);
	CHECK(resp.status->n_qps == 1 && resp.status->qps[0]->qpn == qpn);
	CHECK(!strcmp(resp.status->qps[0]->peer, "10.0.0.2:4791"));
	CHECK(!strcmp(resp.status->gids[1], "::ffff:10.0.0.1"));
	CHECK(resp.status->n_counters > 20);

	ipd_qp_set_error(qp, IBV_EVENT_QP_FATAL);
	CHECK(qp->attr.qp_state == IBV_QPS_ERR);
	CHECK(seen.last_event == IBV_EVENT_QP_FATAL && seen.last_element == 0x9b);
	at.qp_state = IBV_QPS_RTS;
	CHECK(modify(qpn, IBV_QP_STATE, &at) == -EINVAL);
	at.qp_state = IBV_QPS_RESET;
	CHECK(modify(qpn, IBV_QP_STATE, &at) == 0);
}

static void test_qp_srq(uint32_t pd, uint32_t cq, uint32_t srq)
{
	Ipd__QpCap cap = IPD__QP_CAP__INIT;
	Ipd__CreateQp cm = IPD__CREATE_QP__INIT;

	cap.max_send_wr = 4;
	cap.max_recv_wr = 100000;            /* ignored with an SRQ */
	cm.pd = pd;
	cm.qp_type = IBV_QPT_UD;
	cm.send_cq = cm.recv_cq = cq;
	cm.srq = srq;
	cm.cap = &cap;
	req.create_qp = &cm;
	next();
	CHECK(ipd_handle_create_qp(&ctx) == 0);
	CHECK(ctx.n_out_fds == 1 && resp.create_qp->cap->max_recv_wr == 0);
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_SRQ, srq) == -EBUSY);
}

/* XRC (xrcd.c): domains shared by file across clients, XRC SRQs, TGT
 * and INI QPs, ibv_open_qp uses, and what refuses to go while used. */
static int open_xrcd(struct ipd_client *c, int fd, uint32_t oflags,
		     uint32_t *handle)
{
	Ipd__OpenXrcd m = IPD__OPEN_XRCD__INIT;
	int ret;

	m.has_fd = fd >= 0;
	m.oflags = oflags;
	req.open_xrcd = &m;
	next();
	ctx.client = c;
	ctx.in_fds[0] = fd;
	ctx.n_in_fds = fd >= 0;
	ret = ipd_handle_open_xrcd(&ctx);
	*handle = ret ? 0 : resp.open_xrcd->handle;
	return ret;
}

static int open_qp(struct ipd_client *c, uint32_t xrcd, uint32_t qpn,
		   bool close)
{
	Ipd__OpenQp m = IPD__OPEN_QP__INIT;

	m.xrcd = xrcd;
	m.qpn = qpn;
	m.close = close;
	req.open_qp = &m;
	next();
	ctx.client = c;
	return ipd_handle_open_qp(&ctx);
}

static void test_xrc(uint32_t pd, uint32_t cq)
{
	Ipd__CreateSrq sm = IPD__CREATE_SRQ__INIT;
	Ipd__SrqAttr sa = IPD__SRQ_ATTR__INIT;
	Ipd__CreateQp cm = IPD__CREATE_QP__INIT;
	Ipd__QpCap cap = IPD__QP_CAP__INIT;
	char path[] = "/tmp/ipd-xrcd-XXXXXX";
	uint32_t x1, x2, x3, srq, tgt;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	unlink(path);
	CHECK(open_xrcd(&client, fd, 0, &x1) == -ENOENT);   /* no O_CREAT */
	CHECK(open_xrcd(&client, fd, O_CREAT, &x1) == 0);
	CHECK(open_xrcd(&other, fd, O_CREAT | O_EXCL, &x2) == -EEXIST);
	CHECK(open_xrcd(&other, fd, 0, &x2) == 0);          /* shared */
	CHECK(open_xrcd(&other, -1, 0, &x3) == 0);          /* private */

	sa.max_wr = 8;
	sa.max_sge = 1;
	sm.pd = pd;
	sm.attr = &sa;
	sm.srq_type = IBV_SRQT_XRC;
	sm.xrcd = x1;
	sm.cq = cq;
	req.create_srq = &sm;
	next();
	CHECK(ipd_handle_create_srq(&ctx) == 0);
	srq = resp.create_srq->handle;
	CHECK(resp.create_srq->srq_num == srq && ctx.n_out_fds == 1);
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_XRCD, x1) == -EBUSY);
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_CQ, cq) == -EBUSY);

	/* TGT: only an XRCD, no rings. */
	cm.qp_type = IBV_QPT_XRC_RECV;
	cm.xrcd = x1;
	req.create_qp = &cm;
	next();
	CHECK(ipd_handle_create_qp(&ctx) == 0);
	tgt = resp.create_qp->qpn;
	CHECK(ctx.n_out_fds == 0 && resp.create_qp->sq_size == 0);
	/* Another client of the domain may use it; outside it, nobody. */
	CHECK(open_qp(&other, x3, tgt, false) == -EINVAL);
	CHECK(open_qp(&other, x2, tgt, false) == 0);
	/* As the kernel: the creator's destroy succeeds, the QP lives on
	 * (creator gone) while opened, and ends with the last open. */
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_QP, tgt) == 0);
	CHECK(ipd_qp_lookup(&dev, tgt) && !ipd_qp_lookup(&dev, tgt)->client);
	CHECK(destroy(IPD__OBJ_TYPE__OBJ_QP, tgt) == -EINVAL);
	CHECK(open_qp(&other, x3, tgt, true) == -EINVAL);   /* not its open */
	CHECK(destroy_by(&other, IPD__OBJ_TYPE__OBJ_XRCD, x2) == -EBUSY);
	CHECK(open_qp(&other, x2, tgt, true) == 0);
	CHECK(!ipd_qp_lookup(&dev, tgt));
	CHECK(open_qp(&other, x2, tgt, false) == -EINVAL);

	/* INI: a PD and a send CQ, only a send ring. */
	cap.max_send_wr = 4;
	cap.max_send_sge = 1;
	cm.qp_type = IBV_QPT_XRC_SEND;
	cm.xrcd = 0;
	cm.pd = pd;
	cm.send_cq = cq;
	cm.cap = &cap;
	req.create_qp = &cm;   /* req.op is a union */
	next();
	CHECK(ipd_handle_create_qp(&ctx) == 0);
	CHECK(ctx.n_out_fds == 1 && resp.create_qp->rq_size == 0);
	/* An XRC SRQ is no QP's SRQ. */
	cm.qp_type = IBV_QPT_RC;
	cm.recv_cq = cq;
	cm.srq = srq;
	next();
	CHECK(ipd_handle_create_qp(&ctx) == -EINVAL);
	/* A departing creator leaves a TGT QP others opened to them. */
	CHECK(open_xrcd(&third, fd, 0, &x3) == 0);
	cm.qp_type = IBV_QPT_XRC_RECV;
	cm.xrcd = x3;
	cm.pd = 0;
	cm.send_cq = cm.recv_cq = 0;
	cm.srq = 0;
	cm.cap = NULL;
	req.create_qp = &cm;
	next();
	ctx.client = &third;
	CHECK(ipd_handle_create_qp(&ctx) == 0);
	tgt = resp.create_qp->qpn;
	CHECK(open_qp(&other, x2, tgt, false) == 0);
	ipd_client_release_objects(&third);
	CHECK(ipd_qp_lookup(&dev, tgt) && !ipd_qp_lookup(&dev, tgt)->client);
	/* The other client's opens end with it, and so does that QP. */
	ipd_client_release_objects(&other);
	CHECK(!ipd_qp_lookup(&dev, tgt));
	close(fd);
}

int main(void)
{
	uint8_t dgid[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 2 };
	Ipd__GlobalRoute grh = IPD__GLOBAL_ROUTE__INIT;
	Ipd__AhAttr ah = IPD__AH_ATTR__INIT;
	uint32_t pd, cq, srq;

	setup();
	grh.dgid.data = dgid;
	grh.dgid.len = 16;
	grh.sgid_index = 1;
	ah.grh = &grh;
	ah.is_global = 1;
	ah.port_num = 1;

	test_device();
	test_cq();
	pd = alloc_pd();
	CHECK(pd != 0);
	CHECK(create_cq(100, &cq) == 0);
	test_mr(pd);
	test_srq(pd, &srq);
	test_ah(pd, &ah);
	test_qp_rc(pd, cq, &ah);
	test_qp_srq(pd, cq, srq);
	test_xrc(pd, cq);

	/* A departing client leaves nothing behind. */
	ipd_client_release_objects(&client);
	CHECK(dev.pds.count == 0 && dev.mrs.count == 0 && dev.cqs.count == 0);
	CHECK(dev.srqs.count == 0 && dev.qps.count == 0 && dev.ahs.count == 0);
	CHECK(dev.xrcds.count == 0);
	CHECK(seen.qp_init == 5 && seen.qp_fini == 5);
	CHECK(TAILQ_EMPTY(&dev.qps_list));
	next();
	ipd_table_fini(&dev.pds);
	ipd_table_fini(&dev.mrs);
	ipd_table_fini(&dev.cqs);
	ipd_table_fini(&dev.srqs);
	ipd_table_fini(&dev.qps);
	ipd_table_fini(&dev.ahs);
	ipd_table_fini(&dev.xrcds);
	return check_done("handlers");
}
