// SPDX-License-Identifier: MIT
/*
 * The whole transport engine over the loopback link, in one process: real
 * engine files, table.c, queue.c and log.c; recording test doubles (below)
 * stand in for the MR table, CQ posting, SRQs, QP lookup and the UDP link,
 * so no client or socket is involved.  Run twice by meson: clean, and with
 * 5% loss + 5% duplication + 5% reordering, where RC must still deliver
 * every byte exactly once and in order.  "read" runs scripted READ
 * recovery instead: READ responses reordered and lost on purpose (a wire
 * double wraps the loopback link), every byte right, and only what is
 * missing asked for again.  "probe" runs scripted tail losses of WRITEs:
 * the tail loss probe must repair them well before the ACK timeout.
 * "timewait" destroys a responder QP whose last ACKs were lost.
 *
 *   test_engine_loopback [impairment-percent [iterations]] | read | probe |
 *                        timewait
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>

#include "engine_priv.h"
#include "ipathd/icrc.h"

static struct ipd_dev dev;
static struct ipd_config cfg;
static struct ipd_client client;
static struct ipd_pd pd;
static struct ipd_mr *mrs[64];
static struct ipd_qp *qps[64];

/* ---- test doubles for what the engine calls outside itself ---- */
struct ipd_mr *ipd_mr_lookup(struct ipd_dev *d, uint32_t key)
{
	struct ipd_mr *mr = (key >> 8) < 64 ? mrs[key >> 8] : NULL;
	return mr && mr->lkey == key ? mr : NULL;
}
void *ipd_mr_ptr(struct ipd_mr *mr, uint64_t iova, uint64_t len, unsigned int rw)
{
	if (iova < mr->iova || iova + len > mr->iova + mr->length)
		return NULL;
	return mr->map + (iova - mr->iova);
}
int ipd_cq_post(struct ipd_cq *cq, const struct ipd_cqe *cqe)
{
	uint32_t cons = atomic_load(&cq->q.hdr->cons);
	if (cq->q.prod - cons >= cq->q.size) {
		fprintf(stderr, "CQ overflow\n");
		return -ENOSPC;
	}
	memcpy(ipd_ring_slot(cq->q.hdr, cq->q.size, cq->q.slot_size, cq->q.prod), cqe, sizeof(*cqe));
	cq->q.prod++;
	ipd_ring_publish(cq->q.hdr, cq->q.prod);
	return 0;
}
int ipd_srq_take(struct ipd_srq *srq, struct ipd_rwqe *out) { return -EAGAIN; }
struct ipd_srq *ipd_srq_xrc_lookup(struct ipd_dev *d, uint32_t srqn,
				   const struct ipd_xrcd_dom *dom) { return NULL; }
bool ipd_mw_key(uint32_t key) { return false; }
void *ipd_mw_rkey_ptr(const struct ipd_qp *qp, struct ipd_pd *p,
		      uint32_t rkey, uint64_t va, uint64_t len,
		      uint32_t access) { return NULL; }
int ipd_mw_remote_inv(struct ipd_qp *qp, struct ipd_pd *p, uint32_t rkey)
{
	return -EINVAL;
}
struct ipd_qp *ipd_qp_lookup(struct ipd_dev *d, uint32_t qpn)
{
	return qpn < 64 ? qps[qpn] : NULL;
}
struct ipd_pd *ipd_pd_lookup(struct ipd_dev *d, uint32_t handle)
{
	return handle == pd.handle ? &pd : NULL;
}
void ipd_qp_set_error(struct ipd_qp *qp, enum ibv_event_type ev)
{
	enum ibv_qp_state old = qp->attr.qp_state;
	if (old == IBV_QPS_ERR)
		return;
	qp->attr.qp_state = IBV_QPS_ERR;
	ipd_engine_qp_modified(qp, old, IBV_QP_STATE);
}
struct ipd_link *ipd_link_udp_create(struct ipd_dev *d) { return NULL; }
/* No peer is asked: selective recovery towards another host only where a
 * test says the peer has it. */
static bool peer_selective;
bool ipd_peer_selective(struct ipd_dev *d, const struct ipd_av *av) { return peer_selective; }
struct ipd_link *ipd_link_fabric_create(struct ipd_dev *d) { return NULL; }
/* No capture runs here (dev.captures stays NULL). */
void ipd_capture_pkt(struct ipd_dev *d, const struct ipd_pkt *p, bool tx) {}
static int async_events;
void ipd_async_event(struct ipd_client *c, uint64_t element,
		     enum ibv_event_type type)
{
	async_events++;
}
void ipd_qp_async_event(struct ipd_qp *qp, enum ibv_event_type ev)
{
	ipd_async_event(qp->client, qp->user_handle, ev);
}

/* ---- helpers ---- */
static struct ipd_mr *mk_mr(uint32_t h, size_t len, uint32_t access)
{
	struct ipd_mr *mr = calloc(1, sizeof(*mr));
	mr->handle = h;
	mr->lkey = mr->rkey = h << 8 | 0x5a;
	mr->client = &client;
	mr->pd = &pd;
	mr->access = access;
	mr->map = aligned_alloc(4096, (len + 4095) & ~4095ul);
	memset(mr->map, 0, len);
	mr->addr = mr->iova = (uint64_t)(uintptr_t)mr->map;
	mr->length = len;
	mrs[h] = mr;
	return mr;
}
static struct ipd_cq *mk_cq(void)
{
	struct ipd_cq *cq = calloc(1, sizeof(*cq));
	int fd;
	assert(!ipd_queue_create(&cq->q, 4096, 64, "cq", &fd));
	close(fd);
	return cq;
}
static struct ipd_qp *mk_qp(uint32_t qpn, enum ibv_qp_type t, struct ipd_cq *cq)
{
	struct ipd_qp *qp = calloc(1, sizeof(*qp));
	int fd;
	qp->qpn = qpn;
	qp->serial = ++dev.obj_serial;
	qp->client = &client;
	qp->dev = &dev;
	qp->pd = &pd;
	qp->scq = qp->rcq = cq;
	qp->type = t;
	assert(!ipd_queue_create(&qp->sq, 256, ipd_send_slot_size(4, 256), "sq", &fd));
	close(fd);
	assert(!ipd_queue_create(&qp->rq, 256, ipd_recv_slot_size(4), "rq", &fd));
	close(fd);
	qp->av.local = true;
	qp->av.src.ss_family = AF_INET;
	((struct sockaddr_in *)&qp->av.src)->sin_addr.s_addr = htonl(0x7f000001);
	qp->av.dst = qp->av.src;
	assert(!ipd_engine_qp_init(qp));
	qps[qpn] = qp;
	TAILQ_INSERT_TAIL(&dev.qps_list, qp, dev_link);
	return qp;
}
static void qp_connect(struct ipd_qp *qp, uint32_t dqpn, unsigned mtu)
{
	qp->attr.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_LOCAL_WRITE;
	qp->attr.qp_state = IBV_QPS_INIT;
	ipd_engine_qp_modified(qp, IBV_QPS_RESET, IBV_QP_STATE);
	qp->attr.dest_qp_num = dqpn;
	qp->attr.rq_psn = 0xfffff0 + dqpn; /* near the wrap */
	qp->mtu = mtu;
	qp->attr.min_rnr_timer = 1;
	qp->attr.max_dest_rd_atomic = 16;
	qp->attr.qp_state = IBV_QPS_RTR;
	ipd_engine_qp_modified(qp, IBV_QPS_INIT, IBV_QP_STATE | IBV_QP_RQ_PSN);
	qp->attr.sq_psn = 0xfffff0 + qp->qpn;
	qp->attr.timeout = 8;
	qp->attr.retry_cnt = 7;
	qp->attr.rnr_retry = 7;
	qp->attr.max_rd_atomic = 16;
	qp->attr.qkey = 0x11111111;
	qp->attr.qp_state = IBV_QPS_RTS;
	ipd_engine_qp_modified(qp, IBV_QPS_RTR, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY);
}
static uint32_t sq_prod(struct ipd_qp *qp) { return atomic_load(&qp->sq.hdr->prod); }
/* The next send queue slot, cleared and headed; sq_publish posts it. */
static struct ipd_send_wqe *sq_next(struct ipd_qp *qp, uint64_t id, int op,
				    uint32_t flags, int nsge)
{
	uint32_t p = sq_prod(qp);
	struct ipd_send_wqe *w = ipd_ring_slot(qp->sq.hdr, qp->sq.size, qp->sq.slot_size, p);
	assert(p - atomic_load(&qp->sq.hdr->cons) < qp->sq.size);
	memset(w, 0, qp->sq.slot_size);
	w->wr_id = id;
	w->opcode = op;
	w->send_flags = flags | IBV_SEND_SIGNALED;
	w->num_sge = (uint32_t)nsge;
	return w;
}
static void sq_publish(struct ipd_qp *qp)
{
	ipd_ring_publish(qp->sq.hdr, sq_prod(qp) + 1);
}
static void post_send(struct ipd_qp *qp, uint64_t id, int op, struct ipd_mr *mr, uint64_t off, uint32_t len,
		      uint64_t raddr, uint32_t rkey, uint32_t flags)
{
	struct ipd_send_wqe *w = sq_next(qp, id, op, flags, 1);
	w->imm_data = htonl(0xabc00000 | (uint32_t)id);
	w->wr.rdma.remote_addr = raddr;
	w->wr.rdma.rkey = rkey;
	struct ipd_sge *s = ipd_send_wqe_sge(w);
	s->addr = mr->iova + off;
	s->length = len;
	s->lkey = mr->lkey;
	sq_publish(qp);
}
static void post_atomic(struct ipd_qp *qp, uint64_t id, int op, struct ipd_mr *mr, uint64_t off,
			uint64_t raddr, uint32_t rkey, uint64_t ca, uint64_t sw)
{
	struct ipd_send_wqe *w = sq_next(qp, id, op, 0, 1);
	w->wr.atomic.remote_addr = raddr;
	w->wr.atomic.rkey = rkey;
	w->wr.atomic.compare_add = ca;
	w->wr.atomic.swap = sw;
	struct ipd_sge *s = ipd_send_wqe_sge(w);
	s->addr = mr->iova + off;
	s->length = 8;
	s->lkey = mr->lkey;
	sq_publish(qp);
}
static void post_recv(struct ipd_qp *qp, uint64_t id, struct ipd_mr *mr, uint64_t off, uint32_t len)
{
	uint32_t p = atomic_load(&qp->rq.hdr->prod);
	struct ipd_recv_wqe *w = ipd_ring_slot(qp->rq.hdr, qp->rq.size, qp->rq.slot_size, p);
	assert(p - atomic_load(&qp->rq.hdr->cons) < qp->rq.size);
	w->wr_id = id;
	w->num_sge = 1;
	w->sge[0].addr = mr->iova + off;
	w->sge[0].length = len;
	w->sge[0].lkey = mr->lkey;
	ipd_ring_publish(qp->rq.hdr, p + 1);
}
static uint32_t cq_cons[8];
/* Called when the engine is idle; true when it made work. */
static bool (*idle_hook)(void);
static int poll_cq(struct ipd_cq *cq, int ci, struct ipd_cqe *out, double tmo)
{
	double t0 = ev_time();
	for (;;) {
		if (atomic_load(&cq->q.hdr->prod) != cq_cons[ci]) {
			memcpy(out, ipd_ring_slot(cq->q.hdr, cq->q.size, cq->q.slot_size, cq_cons[ci]), sizeof(*out));
			cq_cons[ci]++;
			ipd_ring_release(cq->q.hdr, cq_cons[ci]);
			return 1;
		}
		if (!ipd_engine_poll(&dev) && !(idle_hook && idle_hook()))
			ev_run(dev.loop, EVRUN_NOWAIT);
		ev_now_update(dev.loop);
		if (ev_time() - t0 > tmo)
			return 0;
	}
}
#define EXPECT(c) do { if (!(c)) { fprintf(stderr, "%s:%d FAIL %s\n", __FILE__, __LINE__, #c); exit(1);} } while (0)

static void expect_wc(struct ipd_cq *cq, int ci, uint64_t id, int status, int opcode, uint32_t len)
{
	struct ipd_cqe c;
	EXPECT(poll_cq(cq, ci, &c, 10.0));
	if (c.wr_id != id || (int)c.status != status || (opcode >= 0 && (int)c.opcode != opcode) || (len != ~0u && c.byte_len != len)) {
		fprintf(stderr, "wc mismatch: id %lu/%lu status %u/%d opcode %u/%d len %u/%u\n",
			(unsigned long)c.wr_id, (unsigned long)id, c.status, status, c.opcode, opcode, c.byte_len, len);
		exit(1);
	}
}

static void reset_and_connect(struct ipd_qp *qp, uint32_t dqpn)
{
	enum ibv_qp_state old = qp->attr.qp_state;

	qp->attr.qp_state = IBV_QPS_RESET;
	ipd_engine_qp_modified(qp, old, IBV_QP_STATE);
	qp_connect(qp, dqpn, 1024);
}

/* ---- odd SGE layouts: several MRs, unaligned, a zero-length entry ---- */
struct lsge { struct ipd_mr *mr; uint64_t off; uint32_t len; };

static void post_send_sges(struct ipd_qp *qp, uint64_t id, int op, const struct lsge *l, int n,
			   uint64_t raddr, uint32_t rkey)
{
	struct ipd_send_wqe *w = sq_next(qp, id, op, 0, n);
	w->wr.rdma.remote_addr = raddr;
	w->wr.rdma.rkey = rkey;
	struct ipd_sge *s = ipd_send_wqe_sge(w);
	for (int i = 0; i < n; i++) {
		s[i].addr = l[i].mr->iova + l[i].off;
		s[i].length = l[i].len;
		s[i].lkey = l[i].mr->lkey;
	}
	sq_publish(qp);
}
static void post_recv_sges(struct ipd_qp *qp, uint64_t id, const struct lsge *l, int n)
{
	uint32_t p = atomic_load(&qp->rq.hdr->prod);
	struct ipd_recv_wqe *w = ipd_ring_slot(qp->rq.hdr, qp->rq.size, qp->rq.slot_size, p);
	w->wr_id = id;
	w->num_sge = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		w->sge[i].addr = l[i].mr->iova + l[i].off;
		w->sge[i].length = l[i].len;
		w->sge[i].lkey = l[i].mr->lkey;
	}
	ipd_ring_publish(qp->rq.hdr, p + 1);
}
/* The bytes of an SGE list, gathered. */
static uint8_t *gather(const struct lsge *l, int n, uint32_t *total)
{
	uint32_t t = 0;
	for (int i = 0; i < n; i++)
		t += l[i].len;
	uint8_t *g = malloc(t ? t : 1), *p = g;
	for (int i = 0; i < n; i++) {
		memcpy(p, l[i].mr->map + l[i].off, l[i].len);
		p += l[i].len;
	}
	*total = t;
	return g;
}
static void fill(struct ipd_mr *mr, uint8_t seed)
{
	for (size_t i = 0; i < mr->length; i++)
		mr->map[i] = (uint8_t)(i * 13 + seed + (i >> 12));
}

/* Multi-MiB WRITE, SEND and READ between SGE lists spread over four MRs
 * at odd offsets: every byte lands where it should (with [loopback]
 * direct these are the by-reference copies). */
static void test_layouts(struct ipd_qp *a, struct ipd_qp *b, struct ipd_cq *ca, struct ipd_cq *cb)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	struct ipd_mr *m1 = mk_mr(11, 5 << 20, acc), *m2 = mk_mr(12, 5 << 20, acc);
	struct ipd_mr *m3 = mk_mr(13, 5 << 20, acc), *m4 = mk_mr(14, 9 << 20, acc);
	const struct lsge src[] = {
		{ m1, 1, (1 << 20) + 3 }, { m2, 5, 0 }, { m2, 7, 1000 },
		{ m3, (2 << 20) + 11, (2 << 20) + 1 },
	};
	const struct lsge dst[] = {
		{ m4, 3, 4097 }, { m1, (3 << 20) + 1, (1 << 20) - 5 },
		{ m4, (5 << 20) + 9, (3 << 20) + 777 },
	};
	uint32_t n, n2;
	uint8_t *want, *got;

	for (int round = 0; round < 3; round++) {
		fill(m1, (uint8_t)(round + 1)); fill(m2, (uint8_t)(round + 2));
		fill(m3, (uint8_t)(round + 3)); memset(m4->map, 0, m4->length);
		want = gather(src, 4, &n);
		/* WRITE with immediate into m4 at an odd address */
		post_recv(b, 6000 + round, m4, 0, 16);
		post_send_sges(a, 6100 + round, IBV_WR_RDMA_WRITE_WITH_IMM, src, 4, m4->iova + 4099, m4->rkey);
		expect_wc(ca, 0, 6100 + round, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, ~0u);
		expect_wc(cb, 1, 6000 + round, IBV_WC_SUCCESS, IBV_WC_RECV_RDMA_WITH_IMM, n);
		EXPECT(!memcmp(m4->map + 4099, want, n));
		EXPECT(m4->map[4098] == 0 && m4->map[4099 + n] == 0);
		/* SEND scattered over m4, m1, m4 */
		memset(m4->map, 0, m4->length);
		post_recv_sges(b, 6200 + round, dst, 3);
		post_send_sges(a, 6300 + round, IBV_WR_SEND, src, 4, 0, 0);
		expect_wc(ca, 0, 6300 + round, IBV_WC_SUCCESS, IBV_WC_SEND, ~0u);
		expect_wc(cb, 1, 6200 + round, IBV_WC_SUCCESS, IBV_WC_RECV, n);
		got = gather(dst, 3, &n2);
		EXPECT(n2 >= n && !memcmp(got, want, n));
		free(got);
		EXPECT(m4->map[2] == 0 && m4->map[(5 << 20) + 8] == 0);
		/* READ from m2 (odd address) scattered into m4, m1, m4 */
		fill(m2, (uint8_t)(round + 40));
		memset(m4->map, 0, m4->length);
		post_send_sges(a, 6400 + round, IBV_WR_RDMA_READ, dst, 3, m2->iova + 12345, m2->rkey);
		expect_wc(ca, 0, 6400 + round, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, n2);
		got = gather(dst, 3, &n2);
		EXPECT(!memcmp(got, m2->map + 12345, n2));
		free(got);
		free(want);
	}
	printf("layouts ok (%u-byte messages over 4 MRs)\n", n);
}

/* ---- a direct packet whose reference went stale ---- */
static const struct ipd_link_ops *stale_real_ops;
static int stale_left;
/* Send, then make the packet stale for the first stale_left direct
 * packets: its source PD (or, for a READ response, QP) is replaced by
 * another under the same handle before it is delivered. */
static int stale_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	struct ipd_pkt_ref *r = pkt->ref;
	uint64_t *serial = NULL;
	int rc;

	if (r && stale_left > 0) {
		stale_left--;
		serial = r->qp_serial ? &qps[r->qpn]->serial : &pd.serial;
	}
	rc = stale_real_ops->xmit(link, pkt);
	if (serial)
		*serial = ++dev.obj_serial;
	return rc;
}

/* Stale direct packets (WRITE, SEND, READ responses) are dropped like
 * lost ones and the transport repairs them: same data, same completions. */
static void test_stale(struct ipd_qp *a, struct ipd_qp *b, struct ipd_cq *ca, struct ipd_cq *cb,
		       struct ipd_mr *ma, struct ipd_mr *mb)
{
	struct ipd_link_ops ops = *dev.loop_link->ops;
	uint64_t st = dev.cnt.loop_direct_stale, op0;

	stale_real_ops = dev.loop_link->ops;
	ops.xmit = stale_xmit;
	dev.loop_link->ops = &ops;
	for (int i = 0; i < (1 << 22); i++)
		ma->map[i] = (uint8_t)(i * 29 + 1);
	memset(mb->map, 0, 1 << 22);
	/* each operation has at least one stale packet (the next one, out of
	 * sequence, is NAKed before its payload is looked at): the WRITE's
	 * and SEND's through their PD, the READ responses' through the
	 * responder QP */
	stale_left = 2;
	post_send(a, 7000, IBV_WR_RDMA_WRITE, ma, 1, 300000, mb->iova + 5, mb->rkey, 0);
	expect_wc(ca, 0, 7000, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 300000);
	EXPECT(!memcmp(mb->map + 5, ma->map + 1, 300000) && mb->map[300005] == 0);
	EXPECT(dev.cnt.loop_direct_stale - st >= 1);
	op0 = dev.cnt.loop_direct_stale;
	stale_left = 2;
	post_recv(b, 7001, mb, 1000000, 300000);
	post_send(a, 7002, IBV_WR_SEND, ma, 3, 250000, 0, 0, 0);
	expect_wc(ca, 0, 7002, IBV_WC_SUCCESS, IBV_WC_SEND, 250000);
	expect_wc(cb, 1, 7001, IBV_WC_SUCCESS, IBV_WC_RECV, 250000);
	EXPECT(!memcmp(mb->map + 1000000, ma->map + 3, 250000));
	EXPECT(dev.cnt.loop_direct_stale - op0 >= 1);
	op0 = dev.cnt.loop_direct_stale;
	stale_left = 2;
	memset(ma->map, 0, 1 << 22);
	post_send(a, 7003, IBV_WR_RDMA_READ, ma, 7, 280000, mb->iova + 11, mb->rkey, 0);
	expect_wc(ca, 0, 7003, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, 280000);
	EXPECT(!memcmp(ma->map + 7, mb->map + 11, 280000) && ma->map[6] == 0);
	EXPECT(dev.cnt.loop_direct_stale - op0 >= 1);
	dev.loop_link->ops = stale_real_ops;
	EXPECT(dev.cnt.loop_direct_stale - st >= 3);
	printf("stale ok (%lu stale direct packets dropped)\n",
	       (unsigned long)(dev.cnt.loop_direct_stale - st));
}

/* Another QP destroyed and created again (under the same QPN, with a new
 * serial) while direct packets are in flight: they are not stale (only
 * their own PD and QP matter), nothing is sent again. */
static struct ipd_qp *churn_qp;
static int churn_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	bool direct = pkt->ref != NULL;
	int rc = stale_real_ops->xmit(link, pkt);

	if (direct) {
		ipd_engine_qp_fini(churn_qp);
		qps[churn_qp->qpn] = NULL;
		churn_qp->serial = ++dev.obj_serial;
		qps[churn_qp->qpn] = churn_qp;
		EXPECT(!ipd_engine_qp_init(churn_qp));
	}
	return rc;
}

static void test_churn(struct ipd_qp *a, struct ipd_qp *b, struct ipd_cq *ca,
		       struct ipd_cq *cb, struct ipd_mr *ma, struct ipd_mr *mb)
{
	struct ipd_link_ops ops = *dev.loop_link->ops;
	struct ipd_counters c0 = dev.cnt;

	churn_qp = mk_qp(60, IBV_QPT_RC, ca);
	stale_real_ops = dev.loop_link->ops;
	ops.xmit = churn_xmit;
	dev.loop_link->ops = &ops;
	memset(mb->map, 0, 1 << 22);
	post_send(a, 7100, IBV_WR_RDMA_WRITE, ma, 1, 600000, mb->iova + 3, mb->rkey, 0);
	expect_wc(ca, 0, 7100, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 600000);
	post_recv(b, 7101, mb, 1000000, 300000);
	post_send(a, 7102, IBV_WR_SEND, ma, 5, 250000, 0, 0, 0);
	expect_wc(ca, 0, 7102, IBV_WC_SUCCESS, IBV_WC_SEND, 250000);
	expect_wc(cb, 1, 7101, IBV_WC_SUCCESS, IBV_WC_RECV, 250000);
	memset(ma->map + (1 << 21), 0, 300000);
	post_send(a, 7103, IBV_WR_RDMA_READ, ma, 1 << 21, 280000, mb->iova + 7, mb->rkey, 0);
	expect_wc(ca, 0, 7103, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, 280000);
	dev.loop_link->ops = stale_real_ops;
	printf("churn: %lu direct packets, each followed by another QP replaced: %lu stale, %lu retransmissions\n",
	       (unsigned long)(dev.cnt.loop_direct_pkts - c0.loop_direct_pkts),
	       (unsigned long)(dev.cnt.loop_direct_stale - c0.loop_direct_stale),
	       (unsigned long)(dev.cnt.retransmits - c0.retransmits));
	EXPECT(!memcmp(mb->map + 3, ma->map + 1, 600000));
	EXPECT(!memcmp(mb->map + 1000000, ma->map + 5, 250000));
	EXPECT(!memcmp(ma->map + (1 << 21), mb->map + 7, 280000));
	EXPECT(dev.cnt.loop_direct_pkts - c0.loop_direct_pkts >= 6);
	EXPECT(dev.cnt.loop_direct_stale == c0.loop_direct_stale);
	EXPECT(dev.cnt.retransmits == c0.retransmits);
}

/* Deterministic error paths (clean link only): each pair starts fresh. */
static void test_more_errors(struct ipd_mr *ma, struct ipd_mr *mb)
{
	struct ipd_cq *c1 = mk_cq(), *c2 = mk_cq();
	struct ipd_qp *p = mk_qp(30, IBV_QPT_RC, c1), *q = mk_qp(31, IBV_QPT_RC, c2);
	struct ipd_cqe c;

	/* receive buffer too small: LOC_LEN_ERR there, REM_INV_REQ_ERR here */
	reset_and_connect(p, 31);
	reset_and_connect(q, 30);
	post_recv(q, 1, mb, 0, 10);
	post_send(p, 2, IBV_WR_SEND, ma, 0, 3000, 0, 0, 0);
	expect_wc(c1, 4, 2, IBV_WC_REM_INV_REQ_ERR, -1, ~0u);
	expect_wc(c2, 5, 1, IBV_WC_LOC_LEN_ERR, -1, ~0u);
	EXPECT(p->attr.qp_state == IBV_QPS_ERR && q->attr.qp_state == IBV_QPS_ERR);

	/* RESET forgets everything: the pair works again */
	reset_and_connect(p, 31);
	reset_and_connect(q, 30);
	post_recv(q, 3, mb, 0, 4096);
	post_send(p, 4, IBV_WR_SEND, ma, 7, 4000, 0, 0, 0);
	expect_wc(c1, 4, 4, IBV_WC_SUCCESS, IBV_WC_SEND, 4000);
	expect_wc(c2, 5, 3, IBV_WC_SUCCESS, IBV_WC_RECV, 4000);
	EXPECT(!memcmp(mb->map, ma->map + 7, 4000));

	/* READ with a bad rkey: REM_ACCESS_ERR */
	post_send(p, 5, IBV_WR_RDMA_READ, ma, 0, 100, mb->iova, mb->rkey + 1, 0);
	expect_wc(c1, 4, 5, IBV_WC_REM_ACCESS_ERR, -1, ~0u);

	/* local errors: bad lkey, then an atomic with a 4-byte buffer */
	reset_and_connect(p, 31);
	reset_and_connect(q, 30);
	{
		uint32_t prod = sq_prod(p);
		struct ipd_send_wqe *w = ipd_ring_slot(p->sq.hdr, p->sq.size,
						       p->sq.slot_size, prod);

		post_send(p, 6, IBV_WR_RDMA_WRITE, ma, 0, 100, mb->iova,
			  mb->rkey, 0);
		ipd_send_wqe_sge(w)->lkey ^= 0x80;
		post_send(p, 7, IBV_WR_SEND, ma, 0, 1, 0, 0, 0);
		expect_wc(c1, 4, 6, IBV_WC_LOC_PROT_ERR, -1, ~0u);
		expect_wc(c1, 4, 7, IBV_WC_WR_FLUSH_ERR, -1, ~0u);
	}
	/* a local error behind an outstanding WQE: nothing after it is sent */
	reset_and_connect(p, 31);
	reset_and_connect(q, 30);
	post_recv(q, 20, mb, 0, 4096);
	post_recv(q, 21, mb, 4096, 4096);
	post_send(p, 22, IBV_WR_SEND, ma, 0, 100, 0, 0, 0);
	{
		uint32_t prod = sq_prod(p);
		struct ipd_send_wqe *w = ipd_ring_slot(p->sq.hdr, p->sq.size,
						       p->sq.slot_size, prod);

		post_send(p, 23, IBV_WR_SEND, ma, 0, 100, 0, 0, 0);
		ipd_send_wqe_sge(w)->lkey ^= 0x80;
	}
	post_send(p, 24, IBV_WR_SEND, ma, 0, 100, 0, 0, 0);
	expect_wc(c1, 4, 22, IBV_WC_SUCCESS, IBV_WC_SEND, 100);
	expect_wc(c1, 4, 23, IBV_WC_LOC_PROT_ERR, -1, ~0u);
	expect_wc(c1, 4, 24, IBV_WC_WR_FLUSH_ERR, -1, ~0u);
	expect_wc(c2, 5, 20, IBV_WC_SUCCESS, IBV_WC_RECV, 100);
	EXPECT(!poll_cq(c2, 5, &c, 0.05));

	reset_and_connect(p, 31);
	reset_and_connect(q, 30);
	post_send(p, 8, IBV_WR_ATOMIC_FETCH_AND_ADD, ma, 0, 4, mb->iova,
		  mb->rkey, 0);
	expect_wc(c1, 4, 8, IBV_WC_LOC_LEN_ERR, -1, ~0u);

	/* misaligned atomic: the responder NAKs invalid request */
	reset_and_connect(p, 31);
	reset_and_connect(q, 30);
	post_atomic(p, 9, IBV_WR_ATOMIC_FETCH_AND_ADD, ma, 0, mb->iova + 4,
		    mb->rkey, 1, 0);
	expect_wc(c1, 4, 9, IBV_WC_REM_INV_REQ_ERR, -1, ~0u);

	/* UC: RDMA READ is not a UC operation */
	{
		struct ipd_qp *u = mk_qp(32, IBV_QPT_UC, c1);

		qp_connect(u, 33, 1024);
		post_send(u, 10, IBV_WR_RDMA_READ, ma, 0, 8, mb->iova,
			  mb->rkey, 0);
		expect_wc(c1, 4, 10, IBV_WC_LOC_QP_OP_ERR, -1, ~0u);
	}

	/* UD: a wrong Q_Key is dropped and counted */
	{
		struct ipd_qp *u1 = qps[10], *u2 = qps[11];
		uint64_t before = dev.cnt.drop_bad_qkey;
		uint32_t prod = sq_prod(u1);
		struct ipd_send_wqe *w = ipd_ring_slot(u1->sq.hdr, u1->sq.size,
						       u1->sq.slot_size, prod);

		post_recv(u2, 11, mb, 0, 4096);
		memset(w, 0, u1->sq.slot_size);
		w->wr_id = 12;
		w->opcode = IBV_WR_SEND;
		w->send_flags = IBV_SEND_SIGNALED;
		w->wr.ud.ah = 1;
		w->wr.ud.remote_qpn = 11;
		w->wr.ud.remote_qkey = 0x2222;
		ipd_ring_publish(u1->sq.hdr, prod + 1);
		expect_wc(qps[10]->scq, 0, 12, IBV_WC_SUCCESS, IBV_WC_SEND, 0);
		EXPECT(!poll_cq(u2->rcq, 1, &c, 0.05));
		EXPECT(dev.cnt.drop_bad_qkey == before + 1);
	}
	printf("more errors ok\n");
}

/* ---- scripted READ recovery ---- */

/* The wire double: READ responses pass, vanish or are held back and
 * released in reverse order (when 16 are held, or the engine is idle). */
enum wire_verdict { WIRE_PASS, WIRE_DROP, WIRE_HOLD };
/* The wire double: xmit in front of the loopback link's own. */
static const struct ipd_link_ops *wire_link_ops;
static void wire_wrap(int (*xmit)(struct ipd_link *, struct ipd_pkt *))
{
	static struct ipd_link_ops ops;

	wire_link_ops = dev.loop_link->ops;
	ops = *wire_link_ops;
	ops.xmit = xmit;
	dev.loop_link->ops = &ops;
}

/* p and q connected to each other (path MTU 1024); p with perftest's ACK
 * timeout 14 (67 ms) and, unless -1, retry_cnt. */
static void pair_connect(struct ipd_qp *p, struct ipd_qp *q, int retry_cnt)
{
	int mask = IBV_QP_TIMEOUT;

	qp_connect(p, q->qpn, 1024);
	qp_connect(q, p->qpn, 1024);
	p->attr.timeout = 14;
	if (retry_cnt >= 0) {
		p->attr.retry_cnt = (uint8_t)retry_cnt;
		mask |= IBV_QP_RETRY_CNT;
	}
	ipd_engine_qp_modified(p, IBV_QPS_RTS, mask);
}
static enum wire_verdict (*wire_policy)(uint32_t off, unsigned int nth);
static uint32_t wire_base_psn;        /* offsets count from here */
static unsigned int wire_sent[4096];  /* READ responses sent per offset */
static struct ipd_pkt *wire_held[16];
static unsigned int wire_nheld, wire_read_reqs, wire_read_resps;

static bool wire_release(void)
{
	if (!wire_nheld)
		return false;
	while (wire_nheld)
		wire_link_ops->xmit(dev.loop_link, wire_held[--wire_nheld]);
	return true;
}
static int wire_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	uint8_t op = pkt->hdr[0];
	uint32_t off = ipd_psn_diff(pkt->psn, wire_base_psn);

	if (op == (IPD_OP_RC | IPD_OP_READ_REQUEST))
		wire_read_reqs++;
	if (op < (IPD_OP_RC | IPD_OP_READ_RESP_FIRST) ||
	    op > (IPD_OP_RC | IPD_OP_READ_RESP_ONLY) || off >= 4096)
		return wire_link_ops->xmit(link, pkt);
	wire_read_resps++;
	switch (wire_policy(off, ++wire_sent[off])) {
	case WIRE_DROP:
		ipd_pkt_free(&dev, pkt);
		return 0;
	case WIRE_HOLD:
		wire_held[wire_nheld++] = pkt;
		if (wire_nheld == 16)
			wire_release();
		return 0;
	default:
		return wire_link_ops->xmit(link, pkt);
	}
}
static enum wire_verdict policy_reverse(uint32_t off, unsigned int nth)
{
	return WIRE_HOLD;
}
/* Lose the first copy of every 13th response, the whole first copy of
 * the fourth READ's tail, and the repeated copy of offset 5 too (a second
 * loss: only the timer finds it). */
static uint32_t read_npkts = 64;
static enum wire_verdict policy_loss(uint32_t off, unsigned int nth)
{
	if (nth == 1 && (off % 13 == 5 || off == 4 * read_npkts - 1))
		return WIRE_DROP;
	if (nth == 2 && off == 5)
		return WIRE_DROP;
	return off % 5 == 1 ? WIRE_HOLD : WIRE_PASS;
}

static void read_round(struct ipd_qp *p, struct ipd_cq *cq, int ci,
		       struct ipd_mr *ma, struct ipd_mr *mb, const char *name,
		       enum wire_verdict (*policy)(uint32_t, unsigned int))
{
	static const uint32_t len[8] = { 65536, 65536, 65536, 65536, 65536,
					 65536, 65536, 65000 };
	struct ipd_counters c0 = dev.cnt;
	unsigned int reqs0 = wire_read_reqs, resps0 = wire_read_resps;
	uint32_t pkts = 0;

	memset(ma->map, 0, 8 << 16);
	memset(wire_sent, 0, sizeof(wire_sent));
	wire_base_psn = p->eng->req_psn;
	wire_policy = policy;
	for (int i = 0; i < 8; i++) {
		post_send(p, 2000 + i, IBV_WR_RDMA_READ, ma, (uint64_t)i << 16,
			  len[i], mb->iova + 3 + ((uint64_t)i << 16), mb->rkey, 0);
		pkts += (len[i] + 1023) / 1024;
	}
	for (int i = 0; i < 8; i++) {
		expect_wc(cq, ci, 2000 + i, IBV_WC_SUCCESS, IBV_WC_RDMA_READ,
			  len[i]);
		EXPECT(!memcmp(ma->map + ((uint64_t)i << 16),
			       mb->map + 3 + ((uint64_t)i << 16), len[i]));
		EXPECT(ma->map[((uint64_t)i << 16) + len[i]] == 0 || len[i] == 65536);
	}
	uint64_t rereq = dev.cnt.read_rerequests - c0.read_rerequests;
	uint64_t dups = dev.cnt.dup_responses - c0.dup_responses;
	printf("%s: %u responses for %u packets, %u READ requests (%lu asked again), %lu duplicates, %lu timeouts\n",
	       name, wire_read_resps - resps0, pkts, wire_read_reqs - reqs0,
	       (unsigned long)rereq, (unsigned long)dups,
	       (unsigned long)(dev.cnt.timeouts - c0.timeouts));
	/* Executed READs are never sent again whole: every READ request
	 * beyond the 8 asks for missing responses only. */
	EXPECT(wire_read_reqs - reqs0 == 8 + rereq);
	/* No storm: at most one duplicate per response of the READs. */
	EXPECT(dups <= pkts);
	EXPECT(wire_read_resps - resps0 <= 2 * pkts);
}

static int test_read_recovery(void)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ;
	struct ipd_mr *ma = mk_mr(5, 1 << 20, acc), *mb = mk_mr(6, 1 << 20, acc);
	struct ipd_cq *c1 = mk_cq(), *c2 = mk_cq();
	struct ipd_qp *p = mk_qp(40, IBV_QPT_RC, c1), *q = mk_qp(41, IBV_QPT_RC, c2);

	qp_connect(p, 41, 1024);
	qp_connect(q, 40, 1024);
	for (size_t i = 0; i < (1 << 20); i++)
		mb->map[i] = (uint8_t)(i * 13 + 5);
	wire_wrap(wire_xmit);
	idle_hook = wire_release;

	uint64_t t0 = dev.cnt.timeouts;
	read_round(p, c1, 6, ma, mb, "reversed", policy_reverse);
	read_round(p, c1, 6, ma, mb, "lossy", policy_loss);
	/* the repeated copy of offset 5 was lost too: the timer asked */
	EXPECT(dev.cnt.timeouts > t0);
	printf("test_engine_loopback read: ok\n");
	return 0;
}

/* ---- scripted tail losses: the tail loss probe ---- */

/* The first copy of the WRITE packets at the offsets in probe_drop (from
 * the message's first PSN) vanishes, the second copy of probe_drop2's
 * too (of every packet with probe_drop2_all), and with probe_drop_ack the
 * first ACK of the message's last PSN. */
static uint32_t probe_drop[4], probe_ndrop, probe_last_off, probe_drop2;
static bool probe_drop_ack, probe_drop_nak, probe_drop2_all;
static unsigned int probe_copies[64];

static int probe_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	uint8_t op = pkt->hdr[0];
	uint32_t off = ipd_psn_diff(pkt->psn, wire_base_psn);

	if (op == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE) && probe_drop_ack &&
	    off == probe_last_off) {
		probe_drop_ack = false;
		ipd_pkt_free(&dev, pkt);
		return 0;
	}
	if (op == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE) && probe_drop_nak &&
	    (ipd_aeth_syn(pkt->hdr) & IPD_AETH_TYPE_MASK) == IPD_AETH_NAK) {
		probe_drop_nak = false;
		ipd_pkt_free(&dev, pkt);
		return 0;
	}
	if (op >= (IPD_OP_RC | IPD_OP_WRITE_FIRST) &&
	    op <= (IPD_OP_RC | IPD_OP_WRITE_ONLY_IMM) && off < 64) {
		unsigned int nth = ++probe_copies[off];
		bool drop = nth == 2 && (off == probe_drop2 || probe_drop2_all);

		for (uint32_t i = 0; i < probe_ndrop && nth == 1; i++)
			drop |= probe_drop[i] == off;
		if (drop) {
			ipd_pkt_free(&dev, pkt);
			return 0;
		}
	}
	return wire_link_ops->xmit(link, pkt);
}

/* A 64-packet WRITE with the given tail losses; returns the seconds it
 * took to complete, data checked byte for byte. */
static double probe_round(struct ipd_qp *p, struct ipd_cq *cq,
			  struct ipd_mr *ma, struct ipd_mr *mb, uint32_t ndrop,
			  bool drop_ack, uint32_t drop2, uint64_t id)
{
	uint32_t len = 64 * 1024;
	double t0;

	memset(mb->map, 0, len + 16);
	memset(probe_copies, 0, sizeof(probe_copies));
	wire_base_psn = p->eng->req_psn;
	probe_last_off = 63;
	probe_ndrop = ndrop;
	for (uint32_t i = 0; i < ndrop; i++)
		probe_drop[i] = 63 - i;
	probe_drop_ack = drop_ack;
	probe_drop2 = drop2 & 63 ? drop2 & 63 : 64;
	probe_drop_nak = drop2 & 64;
	probe_drop2_all = drop2 & 128;
	t0 = ev_time();
	post_send(p, id, IBV_WR_RDMA_WRITE, ma, id % 7, len, mb->iova + 5,
		  mb->rkey, 0);
	expect_wc(cq, 6, id, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, len);
	t0 = ev_time() - t0;
	EXPECT(!memcmp(mb->map + 5, ma->map + id % 7, len));
	EXPECT(mb->map[4] == 0 && mb->map[5 + len] == 0);
	return t0;
}

static int test_tail_probe(void)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	struct ipd_mr *ma = mk_mr(7, 1 << 20, acc), *mb = mk_mr(8, 1 << 20, acc);
	struct ipd_cq *c1 = mk_cq(), *c2 = mk_cq();
	struct ipd_qp *p = mk_qp(42, IBV_QPT_RC, c1), *q = mk_qp(43, IBV_QPT_RC, c2);
	/* perftest's timeout 14: 4.096 us * 2^14 = 67 ms */
	const double ack_tmo = 4.096e-6 * (1 << 14);
	static const struct {
		uint32_t ndrop;
		bool drop_ack;
		uint32_t drop2; /* its second copy lost too (0: none); +64:
				 * the NAK too; 128: every second copy */
		const char *what;
		unsigned int min_probes;
	} cases[] = {
		{ 1, false, 0, "last packet lost" },
		{ 3, false, 0, "last 3 packets lost" },
		{ 0, true, 0, "last ACK lost" },
		{ 2, true, 0, "last 2 packets and the ACK lost" },
		/* the responder NAKs a gap once, then is silent until the
		 * PSN it named arrives: lost again, or the NAK lost */
		{ 2, false, 62, "last 2 packets lost, the first again" },
		{ 2, false, 64 + 0, "last 2 packets and the NAK lost" },
		/* the first probe's packets lost as well: more probes, each
		 * later, before the ACK timeout */
		{ 1, false, 128, "last packet lost, and the first probe", 2 },
	};

	pair_connect(p, q, 2);
	for (size_t i = 0; i < (1 << 20); i++)
		ma->map[i] = (uint8_t)(i * 17 + 9);
	wire_wrap(probe_xmit);

	/* lossless: an RTT sample, no probe */
	struct ipd_counters c0 = dev.cnt;
	probe_round(p, c1, ma, mb, 0, false, 0, 1);
	EXPECT(p->eng->srtt > 0);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		c0 = dev.cnt;
		double t = probe_round(p, c1, ma, mb, cases[k].ndrop,
				       cases[k].drop_ack, cases[k].drop2, 10 + k);
		uint64_t probes = dev.cnt.tail_probes - c0.tail_probes;
		uint64_t tmos = dev.cnt.timeouts - c0.timeouts;
		uint64_t dups = dev.cnt.dup_requests - c0.dup_requests;

		printf("probe on, %s: %.1f ms, %lu probes, %lu timeouts, %lu duplicates, srtt %.3f ms\n",
		       cases[k].what, t * 1e3, (unsigned long)probes,
		       (unsigned long)tmos, (unsigned long)dups,
		       p->eng->srtt * 1e3);
		/* repaired by the probe, not by the ACK timer */
		EXPECT(probes >= 1 && probes >= cases[k].min_probes &&
		       tmos == 0 && t < ack_tmo);
		/* the lost ACK: the probe was a duplicate, answered */
		EXPECT(!cases[k].drop_ack || cases[k].ndrop || dups >= 1);
		EXPECT(p->eng->retry_left == 2);
	}
	/* the same losses without the probe: the ACK timer repairs them */
	cfg.tail_probe = false;
	c0 = dev.cnt;
	double t = probe_round(p, c1, ma, mb, 2, false, 0, 20);
	printf("probe off, last 2 packets lost: %.1f ms, %lu timeouts\n",
	       t * 1e3, (unsigned long)(dev.cnt.timeouts - c0.timeouts));
	EXPECT(dev.cnt.tail_probes == c0.tail_probes);
	EXPECT(dev.cnt.timeouts > c0.timeouts && t >= ack_tmo * 0.9);
	cfg.tail_probe = true;

	/* A dead peer: probes go out, yet RETRY_EXC_ERR comes after
	 * retry_cnt + 1 ACK timeouts as without them. */
	c0 = dev.cnt;
	q->attr.qp_state = IBV_QPS_ERR;
	ipd_engine_qp_modified(q, IBV_QPS_RTS, IBV_QP_STATE);
	double t1 = ev_time();
	post_send(p, 30, IBV_WR_RDMA_WRITE, ma, 0, 4096, mb->iova, mb->rkey, 0);
	expect_wc(c1, 6, 30, IBV_WC_RETRY_EXC_ERR, -1, ~0u);
	t1 = ev_time() - t1;
	printf("dead peer: RETRY_EXC_ERR after %.1f ms, %lu timeouts, %lu probes\n",
	       t1 * 1e3, (unsigned long)(dev.cnt.timeouts - c0.timeouts),
	       (unsigned long)(dev.cnt.tail_probes - c0.tail_probes));
	EXPECT(dev.cnt.timeouts - c0.timeouts == 3);
	EXPECT(t1 >= 3 * ack_tmo * 0.95);
	/* probes repeat and back off: the delays double from at least
	 * IPD_PROBE_MIN_S up to half the ACK timeout, so an ACK timeout
	 * period has at most 1 + log2(ack_tmo / 2 / IPD_PROBE_MIN_S) (6
	 * here), and at most IPD_PROBE_MAX; at least two per period */
	uint64_t per_period = 1;
	for (double d = 2 * IPD_PROBE_MIN_S; d <= ack_tmo / 2; d *= 2)
		per_period++;
	if (per_period > IPD_PROBE_MAX)
		per_period = IPD_PROBE_MAX;
	EXPECT(dev.cnt.tail_probes - c0.tail_probes >= 3 * 2 &&
	       dev.cnt.tail_probes - c0.tail_probes <= 3 * per_period);
	EXPECT(p->attr.qp_state == IBV_QPS_ERR);
	EXPECT(!ev_is_active(&p->eng->probe_timer));
	printf("test_engine_loopback probe: ok\n");
	return 0;
}

/* Drops every ACK to tw_victim while tw_drop_acks is set. */
static bool tw_drop_acks;
static uint32_t tw_victim;
static int tw_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	if (tw_drop_acks && pkt->qpn == tw_victim &&
	    pkt->hdr[0] == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE)) {
		ipd_pkt_free(&dev, pkt);
		return 0;
	}
	return wire_link_ops->xmit(link, pkt);
}

/* ---- scripted losses: selective recovery (ooo.c) ---- */

/* A burst of SENDs, WRITEs (with and without immediate), a READ and an
 * atomic, 117 request PSNs, with the first copies of the requests at
 * sel_drop (from the burst's first PSN) lost, and the second copy of
 * offset 41 too.  Request packets sent are counted per offset. */
static const uint32_t sel_drop[] = { 3, 17, 18, 40, 41, 42, 64, 70, 84, 90,
				     116 };
static unsigned int sel_copies[128];
/* The burst round instead: the first copies of offsets 68..99 (a WRITE's
 * and a SEND's packets, an atomic between) lost in one run. */
static bool sel_burst_loss;
/* Or only the first copy of offset 0 lost (sel_first_only). */
static bool sel_first_only;
/* Copies after the first that asked for an ACK (AckReq). */
static unsigned int sel_resent_ackreq;

static int sel_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	uint32_t off = ipd_psn_diff(pkt->psn, wire_base_psn);
	unsigned int nth;
	bool drop;

	if (!(ipd_opcode_info[pkt->hdr[0]].mask & IPD_REQ_MASK) || off >= 128)
		return wire_link_ops->xmit(link, pkt);
	nth = ++sel_copies[off];
	if (nth > 1 && ipd_bth_ackreq(pkt->hdr))
		sel_resent_ackreq++;
	if (sel_first_only) {
		drop = nth == 1 && off == 0;
	} else if (sel_burst_loss) {
		drop = nth == 1 && off >= 68 && off <= 99;
	} else {
		drop = nth == 2 && off == 41;
		for (size_t i = 0; i < sizeof(sel_drop) / sizeof(sel_drop[0]); i++)
			drop |= nth == 1 && sel_drop[i] == off;
	}
	if (drop) {
		ipd_pkt_free(&dev, pkt);
		return 0;
	}
	return wire_link_ops->xmit(link, pkt);
}

/*
 * timewait.c: the responder QP is destroyed after it executed a WRITE
 * whose ACKs were all lost.  The requester's retransmission must get the
 * ACK from the tombstone (success, not RETRY_EXC_ERR); a new WRITE to the
 * dead QP must not be executed nor acknowledged (RETRY_EXC_ERR).
 */
static int test_timewait(void)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	struct ipd_mr *ma = mk_mr(9, 1 << 16, acc), *mb = mk_mr(10, 1 << 16, acc);
	struct ipd_cq *c1 = mk_cq(), *c2 = mk_cq();
	struct ipd_qp *r = mk_qp(46, IBV_QPT_RC, c1), *s = mk_qp(47, IBV_QPT_RC, c2);
	struct ipd_counters c0;
	double t0;

	pair_connect(r, s, 2);
	for (size_t i = 0; i < (1 << 16); i++)
		ma->map[i] = (uint8_t)(i * 13 + 5);
	wire_wrap(tw_xmit);
	tw_victim = 46;

	/* a WRITE executed at s, every ACK lost */
	tw_drop_acks = true;
	c0 = dev.cnt;
	post_send(r, 1, IBV_WR_RDMA_WRITE, ma, 0, 8192, mb->iova, mb->rkey, 0);
	t0 = ev_time();
	while (memcmp(mb->map, ma->map, 8192) && ev_time() - t0 < 5) {
		ipd_engine_poll(&dev);
		ev_run(dev.loop, EVRUN_NOWAIT);
		ev_now_update(dev.loop);
	}
	EXPECT(!memcmp(mb->map, ma->map, 8192));
	/* s goes away (its application exited), the ACKs flow again */
	qps[47] = NULL;
	TAILQ_REMOVE(&dev.qps_list, s, dev_link);
	ipd_engine_qp_fini(s);
	tw_drop_acks = false;
	expect_wc(c1, 7, 1, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 8192);
	printf("timewait: WRITE acknowledged by the destroyed QP's tombstone (%lu ACKs, %lu timeouts)\n",
	       (unsigned long)(dev.cnt.timewait_acks - c0.timewait_acks),
	       (unsigned long)(dev.cnt.timeouts - c0.timeouts));
	EXPECT(dev.cnt.timewait_acks > c0.timewait_acks);

	/* a new request is not executed and gets no answer */
	memset(mb->map, 0, 8192);
	c0 = dev.cnt;
	post_send(r, 2, IBV_WR_RDMA_WRITE, ma, 0, 4096, mb->iova, mb->rkey, 0);
	expect_wc(c1, 7, 2, IBV_WC_RETRY_EXC_ERR, -1, ~0u);
	EXPECT(dev.cnt.timewait_acks == c0.timewait_acks);
	EXPECT(dev.cnt.drop_no_qp > c0.drop_no_qp);
	for (size_t i = 0; i < 8192; i++)
		EXPECT(mb->map[i] == 0);
	ipd_queue_destroy(&s->sq);
	ipd_queue_destroy(&s->rq);
	free(s);
	ipd_queue_destroy(&c2->q);
	free(c2);
	printf("test_engine_loopback timewait: ok\n");
	return 0;
}

/* ---- app_tx.c: WQEs the client marked as sent by itself ---- */

/* The network link double: the loopback link's delivery, counting the
 * request packets with PSN at_psn the daemon sends. */
static struct ipd_link at_link;
static struct ipd_link_ops at_ops;
static uint32_t at_psn;
static unsigned int at_sent;

/* An ACK handed to the link, and the receive CQ's producer index when
 * the first flush after it came. */
static bool at_ack_xmit, at_ack_flushed;
static struct ipd_cq *at_cq;
static uint32_t at_prod_at_flush;
static struct ipd_qp *at_qp;         /* and its word and ACK flag then */
static uint64_t at_word_at_flush;
static uint16_t at_owed_at_flush;

/* ACKs/NAKs of at_watch handed to the link after a completion of
 * at_watch_cq showed (since at_step began), and how often at_watch's word
 * was found published while such a completion showed and no ACK of
 * at_watch had been flushed yet (checked at those hand-overs and after
 * every delivered batch; a publication withdrawn again within one batch
 * would go unseen): a client could have answered that completion from its
 * own socket ahead of the ACK. */
static struct ipd_qp *at_watch;
static struct ipd_cq *at_watch_cq;
static uint32_t at_step_prod;
static unsigned int at_late_acks, at_late_bad, at_watch_xmit;
static bool at_watch_flushed;

static bool at_watch_exposed(void)
{
	return atomic_load(&at_watch_cq->q.hdr->prod) != at_step_prod &&
	       !at_watch_flushed &&
	       atomic_load(&at_watch->sq.hdr->app_tx) & IPD_APP_TX_VALID &&
	       !atomic_load(&at_watch->sq.hdr->app_tx_ack_owed);
}

static int at_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	if (at_watch && pkt->opcode == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE) &&
	    pkt->qpn == at_watch->attr.dest_qp_num &&
	    atomic_load(&at_watch_cq->q.hdr->prod) != at_step_prod) {
		at_late_acks++;
		at_late_bad += at_watch_exposed();
	}
	if (at_watch && pkt->opcode == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE) &&
	    pkt->qpn == at_watch->attr.dest_qp_num)
		at_watch_xmit++;
	if (ipd_opcode_info[pkt->hdr[0]].mask & IPD_REQ_MASK &&
	    pkt->psn == at_psn)
		at_sent++;
	if (pkt->opcode == (IPD_OP_RC | IPD_OP_ACKNOWLEDGE))
		at_ack_xmit = true;
	return dev.loop_link->ops->xmit(dev.loop_link, pkt);
}

static void at_flush(struct ipd_link *link)
{
	/* The ACK flag comes down right after a flush (app_tx.c): the ACK
	 * it stood for must be in the link by then, not queued. */
	if (at_watch && atomic_load(&at_watch->sq.hdr->app_tx_ack_owed) &&
	    !at_watch_xmit)
		at_late_bad++;
	if (at_watch && at_watch_xmit)
		at_watch_flushed = true;
	if (at_ack_xmit && !at_ack_flushed && at_cq) {
		at_ack_flushed = true;
		at_prod_at_flush = atomic_load(&at_cq->q.hdr->prod);
		if (at_qp) {
			at_word_at_flush = atomic_load(&at_qp->sq.hdr->app_tx);
			at_owed_at_flush =
				atomic_load(&at_qp->sq.hdr->app_tx_ack_owed);
		}
	}
}

/* A SEND_ONLY of len bytes from src, as from's client or peer would put
 * it straight onto the wire (no requester involved); its length. */
static struct ipd_pkt *at_pkt(struct ipd_qp *from, uint8_t op, uint32_t dqpn,
			      uint32_t psn, uint32_t len)
{
	struct ipd_pkt *sp = ipd_eng_pkt_new(from, &from->av, IPD_OP_RC | op,
					     dqpn, psn, len, true, false);

	EXPECT(sp);
	return sp;
}

static uint32_t at_inject(struct ipd_qp *from, uint32_t dqpn, uint32_t psn,
			  const uint8_t *src, uint32_t len)
{
	struct ipd_pkt *sp = at_pkt(from, IPD_OP_SEND_ONLY, dqpn, psn, len);
	uint32_t plen;

	memcpy(sp->payload, src, len);
	plen = sp->len;
	EXPECT(!dev.loop_link->ops->xmit(dev.loop_link, sp));
	return plen;
}

/* The word in qp's SQ header after a few polls of the engine. */
static uint64_t at_word(struct ipd_qp *qp)
{
	for (int i = 0; i < 8; i++) {
		ipd_engine_poll(&dev);
		ev_run(dev.loop, EVRUN_NOWAIT);
	}
	return atomic_load(&qp->sq.hdr->app_tx);
}

/* Deliveries and polls with at_watch = qp, completions on cq counted from
 * now. */
static void at_step(struct ipd_qp *qp, struct ipd_cq *cq)
{
	at_watch = qp;
	at_watch_cq = cq;
	at_step_prod = atomic_load(&cq->q.hdr->prod);
	at_late_acks = at_late_bad = at_watch_xmit = 0;
	at_watch_flushed = false;
	for (int i = 0; i < 16; i++) {
		ipd_engine_poll(&dev);
		ipd_link_loop_poll(dev.loop_link);
		at_late_bad += at_watch_exposed();
		ev_run(dev.loop, EVRUN_NOWAIT);
	}
	/* the ACK flag never stays raised */
	EXPECT(!atomic_load(&qp->sq.hdr->app_tx_ack_owed));
}

/* Where a responder's ACK must follow completions (behind READ data,
 * deferred for kept out-of-order packets, the NAK after an error
 * completion), the word is withdrawn first (a new pair, r responding to
 * s, after the cases above). */
static void test_app_tx_withdraw(void)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		       IBV_ACCESS_REMOTE_READ;
	uint32_t rlen = 256 * 1024, e;
	struct ipd_mr *mr = mk_mr(13, 1 << 20, acc), *ms = mk_mr(14, 1 << 20, acc);
	struct ipd_cq *cr = mk_cq(), *cs = mk_cq();
	struct ipd_qp *r = mk_qp(54, IBV_QPT_RC, cr), *s = mk_qp(55, IBV_QPT_RC, cs);

	for (size_t i = 0; i < (1 << 20); i++) {
		mr->map[i] = (uint8_t)(i * 13 + 7);
		ms->map[i] = (uint8_t)(i * 5 + 3);
	}
	pair_connect(r, s, 7);
	r->av.local = s->av.local = false;
	post_recv(r, 4001, mr, 900 * 1024, 1024);

	/* s READs 256 KiB of r and SENDs: r's ACK of the SEND waits behind
	 * the READ data, after the receive completion */
	EXPECT(at_word(r) & IPD_APP_TX_VALID);
	post_send(s, 5001, IBV_WR_RDMA_READ, ms, 0, rlen, mr->iova, mr->rkey, 0);
	post_send(s, 5002, IBV_WR_SEND, ms, 512 * 1024, 32, 0, 0, 0);
	at_step(r, cr);
	printf("app_tx: ACK behind READ data: %u after the completion, word published %u times while exposed\n",
	       at_late_acks, at_late_bad);
	EXPECT(at_late_acks >= 1 && at_late_bad == 0);
	expect_wc(cs, 3, 5001, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, rlen);
	expect_wc(cs, 3, 5002, IBV_WC_SUCCESS, IBV_WC_SEND, 32);
	expect_wc(cr, 2, 4001, IBV_WC_SUCCESS, IBV_WC_RECV, 32);
	EXPECT(!memcmp(ms->map, mr->map, rlen));
	EXPECT(!memcmp(mr->map + 900 * 1024, ms->map + 512 * 1024, 32));

	/* the same with the READ request and the SEND in one batch (one
	 * recvmmsg): the word is still published when the SEND's ACK is
	 * queued behind the READ data (s's requester never learns of
	 * either: the cases below inject at r's expected PSN) */
	post_recv(r, 4005, mr, 904 * 1024, 1024);
	EXPECT(at_word(r) & IPD_APP_TX_VALID);
	e = r->eng->rq_psn;
	{
		struct ipd_pkt *rd = at_pkt(s, IPD_OP_READ_REQUEST, r->qpn, e, 0);

		ipd_reth_set(rd->hdr, mr->iova, mr->rkey, rlen);
		EXPECT(!dev.loop_link->ops->xmit(dev.loop_link, rd));
	}
	at_inject(s, r->qpn, ipd_psn_add(e, rlen / 1024), ms->map + 700 * 1024, 24);
	at_step(r, cr);
	printf("app_tx: ACK behind READ data, one batch: %u after the completion, word published %u times while exposed\n",
	       at_late_acks, at_late_bad);
	EXPECT(at_late_acks >= 1 && at_late_bad == 0);
	expect_wc(cr, 2, 4005, IBV_WC_SUCCESS, IBV_WC_RECV, 24);
	EXPECT(!memcmp(mr->map + 904 * 1024, ms->map + 700 * 1024, 24));

	/* kept out of order (selective recovery with this peer): PSN e+1
	 * first, then e; both complete before the one ACK for them */
	peer_selective = true;
	post_recv(r, 4002, mr, 901 * 1024, 1024);
	post_recv(r, 4003, mr, 902 * 1024, 1024);
	EXPECT(at_word(r) & IPD_APP_TX_VALID);
	e = r->eng->rq_psn;
	at_inject(s, r->qpn, ipd_psn_add(e, 1), ms->map + 600 * 1024, 48);
	at_step(r, cr);
	EXPECT(r->eng->ooo_count == 1);
	at_inject(s, r->qpn, e, ms->map + 601 * 1024, 40);
	at_step(r, cr);
	printf("app_tx: ACK deferred for kept packets: %u after the completions, word published %u times while exposed\n",
	       at_late_acks, at_late_bad);
	EXPECT(at_late_acks >= 1 && at_late_bad == 0);
	expect_wc(cr, 2, 4002, IBV_WC_SUCCESS, IBV_WC_RECV, 40);
	expect_wc(cr, 2, 4003, IBV_WC_SUCCESS, IBV_WC_RECV, 48);
	EXPECT(!memcmp(mr->map + 901 * 1024, ms->map + 601 * 1024, 40));
	EXPECT(!memcmp(mr->map + 902 * 1024, ms->map + 600 * 1024, 48));
	peer_selective = false;

	/* a SEND longer than the receive buffer: the error completion, then
	 * the NAK */
	post_recv(r, 4004, mr, 903 * 1024, 16);
	EXPECT(at_word(r) & IPD_APP_TX_VALID);
	at_inject(s, r->qpn, ipd_psn_add(e, 2), ms->map, 100);
	at_step(r, cr);
	printf("app_tx: NAK after an error completion: %u after the completion, word published %u times while exposed\n",
	       at_late_acks, at_late_bad);
	EXPECT(at_late_acks >= 1 && at_late_bad == 0);
	expect_wc(cr, 2, 4004, IBV_WC_LOC_LEN_ERR, -1, ~0u);
	EXPECT(r->attr.qp_state == IBV_QPS_ERR);
	at_watch = NULL;
}

/* An inline SEND of len bytes of mr, marked (mark) as sent with psn. */
static void at_post(struct ipd_qp *qp, uint64_t id, struct ipd_mr *mr,
		    uint32_t len, bool mark, uint32_t psn)
{
	struct ipd_send_wqe *w = sq_next(qp, id, IBV_WR_SEND, IBV_SEND_INLINE, 0);

	memcpy(w->payload, mr->map + id, len);
	w->inline_len = len;
	if (mark) {
		w->flags = IPD_WQE_F_APP_SENT;
		w->app_psn = psn;
	}
	sq_publish(qp);
}

/* The daemon skips only the packet of a WQE marked with exactly the index
 * and PSN it published, sends every other one itself, recovers a skipped
 * one the client failed to deliver by its timers, and takes a WQE whose
 * ACK comes before it took it (catch-up). */
static int test_app_tx(void)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	struct ipd_mr *ma = mk_mr(11, 1 << 16, acc), *mb = mk_mr(12, 1 << 16, acc);
	struct ipd_cq *c1 = mk_cq(), *c2 = mk_cq();
	struct ipd_qp *p = mk_qp(50, IBV_QPT_RC, c1), *q = mk_qp(51, IBV_QPT_RC, c2);
	struct ipd_counters c0;
	uint64_t w;
	uint32_t idx, cp_len, prod;
	double t0;

	cfg.app_tx = true;
	for (size_t i = 0; i < (1 << 16); i++)
		ma->map[i] = (uint8_t)(i * 11 + 1);
	at_ops = *dev.loop_link->ops;
	at_ops.xmit = at_xmit;
	at_ops.flush = at_flush;
	at_link = (struct ipd_link){ .ops = &at_ops, .dev = &dev, .app_tx = true };
	dev.net_link = &at_link;
	pair_connect(p, q, 7);
	p->av.local = false; /* another host: through dev.net_link */
	for (int i = 1; i <= 4; i++)
		post_recv(q, 1000 + i, mb, (uint64_t)i * 1024, 1024);

	/* idle: the next WQE's index and PSN, and where its packet goes */
	w = at_word(p);
	EXPECT(w & IPD_APP_TX_VALID);
	EXPECT(ipd_app_tx_idx(w) == sq_prod(p));
	EXPECT(ipd_app_tx_psn(w) == p->eng->req_psn);
	EXPECT(p->sq.hdr->app_tx_dqpn == 51 && p->sq.hdr->app_tx_mtu == 1024 &&
	       p->sq.hdr->app_tx_dport == IPD_ROCE_UDP_PORT);
	EXPECT(!(atomic_load(&q->sq.hdr->app_tx) & IPD_APP_TX_VALID)); /* loopback */

	/* marked as published: the daemon does not send it; the client's
	 * packet is lost here, the daemon's timers send it again */
	c0 = dev.cnt;
	at_psn = ipd_app_tx_psn(w);
	at_sent = 0;
	idx = p->eng->req_idx;
	at_post(p, 1, ma, 64, true, at_psn);
	t0 = ev_time();
	while (p->eng->req_idx == idx && ev_time() - t0 < 2) {
		ipd_engine_poll(&dev);
		ev_run(dev.loop, EVRUN_NOWAIT);
	}
	EXPECT(p->eng->req_idx == idx + 1);
	EXPECT(at_sent == 0 && dev.cnt.app_tx_pkts == c0.app_tx_pkts + 1);
	EXPECT(!(atomic_load(&p->sq.hdr->app_tx) & IPD_APP_TX_VALID));
	expect_wc(c1, 0, 1, IBV_WC_SUCCESS, IBV_WC_SEND, 64);
	expect_wc(c2, 1, 1001, IBV_WC_SUCCESS, IBV_WC_RECV, 64);
	EXPECT(at_sent >= 1 && !memcmp(mb->map + 1024, ma->map + 1, 64));
	printf("app_tx: a WQE marked as published is not sent by the daemon; lost, it is recovered (%u resent, %lu probes, %lu timeouts)\n",
	       at_sent, (unsigned long)(dev.cnt.tail_probes - c0.tail_probes),
	       (unsigned long)(dev.cnt.timeouts - c0.timeouts));

	/* marked with another PSN: refused, sent at once */
	w = at_word(p);
	EXPECT(w & IPD_APP_TX_VALID);
	c0 = dev.cnt;
	at_psn = ipd_app_tx_psn(w);
	at_sent = 0;
	at_post(p, 2, ma, 100, true, ipd_psn_add(at_psn, 1));
	expect_wc(c1, 0, 2, IBV_WC_SUCCESS, IBV_WC_SEND, 100);
	expect_wc(c2, 1, 1002, IBV_WC_SUCCESS, IBV_WC_RECV, 100);
	EXPECT(at_sent == 1 && dev.cnt.app_tx_refused == c0.app_tx_refused + 1);
	EXPECT(dev.cnt.timeouts == c0.timeouts && dev.cnt.tail_probes == c0.tail_probes);
	EXPECT(!memcmp(mb->map + 2048, ma->map + 2, 100));

	/* marked at another index (behind an unmarked WQE): refused */
	w = at_word(p);
	c0 = dev.cnt;
	at_psn = ipd_psn_add(ipd_app_tx_psn(w), 1);
	at_sent = 0;
	at_post(p, 3, ma, 10, false, 0);
	at_post(p, 4, ma, 20, true, at_psn);
	expect_wc(c1, 0, 3, IBV_WC_SUCCESS, IBV_WC_SEND, 10);
	expect_wc(c1, 0, 4, IBV_WC_SUCCESS, IBV_WC_SEND, 20);
	expect_wc(c2, 1, 1003, IBV_WC_SUCCESS, IBV_WC_RECV, 10);
	expect_wc(c2, 1, 1004, IBV_WC_SUCCESS, IBV_WC_RECV, 20);
	printf("app_tx: behind an unmarked WQE: %u sent, %lu refused, %lu taken, %lu probes\n", at_sent,
	       (unsigned long)(dev.cnt.app_tx_refused - c0.app_tx_refused),
	       (unsigned long)(dev.cnt.app_tx_pkts - c0.app_tx_pkts),
	       (unsigned long)(dev.cnt.tail_probes - c0.tail_probes));
	EXPECT(at_sent == 1 && dev.cnt.app_tx_refused == c0.app_tx_refused + 1);

	/* a publication read before a modify is void after it */
	w = at_word(p);
	EXPECT(w & IPD_APP_TX_VALID);
	ipd_engine_qp_modified(p, IBV_QPS_RTS, IBV_QP_TIMEOUT);
	EXPECT(atomic_load(&p->sq.hdr->app_tx) == 0);
	post_recv(q, 1005, mb, 5 * 1024, 1024);
	c0 = dev.cnt;
	at_psn = ipd_app_tx_psn(w);
	at_sent = 0;
	at_post(p, 5, ma, 30, true, at_psn);
	expect_wc(c1, 0, 5, IBV_WC_SUCCESS, IBV_WC_SEND, 30);
	expect_wc(c2, 1, 1005, IBV_WC_SUCCESS, IBV_WC_RECV, 30);
	EXPECT(at_sent == 1 && dev.cnt.app_tx_refused == c0.app_tx_refused + 1);

	/* the client was faster: the peer's ACK arrives before the daemon
	 * took the WQE (no engine poll in between, only deliveries); the
	 * completer takes it first instead of ignoring an ACK for a PSN
	 * never sent, sends nothing itself, and completes it */
	w = at_word(p);
	EXPECT(w & IPD_APP_TX_VALID);
	post_recv(q, 1006, mb, 6 * 1024, 1024);
	c0 = dev.cnt;
	at_psn = ipd_app_tx_psn(w);
	at_sent = 0;
	idx = p->eng->req_idx;
	at_post(p, 6, ma, 40, true, at_psn);
	cp_len = at_inject(p, 51, at_psn, ma->map + 6, 40); /* the client's */
	for (int i = 0; i < 8 && p->eng->req_idx == idx; i++)
		ipd_link_loop_poll(dev.loop_link);
	EXPECT(p->eng->req_idx == idx + 1);
	EXPECT(dev.cnt.app_tx_pkts == c0.app_tx_pkts + 1);
	expect_wc(c1, 0, 6, IBV_WC_SUCCESS, IBV_WC_SEND, 40);
	expect_wc(c2, 1, 1006, IBV_WC_SUCCESS, IBV_WC_RECV, 40);
	EXPECT(!memcmp(mb->map + 6 * 1024, ma->map + 6, 40));
	EXPECT(at_sent == 0 && dev.cnt.timeouts == c0.timeouts &&
	       dev.cnt.tail_probes == c0.tail_probes);
	/* the taken WQE counts as the packet the client sent (the only
	 * other packet is q's ACK) */
	EXPECT(dev.cnt.pkts_sent == c0.pkts_sent + 2);
	EXPECT(dev.cnt.bytes_sent ==
	       c0.bytes_sent + cp_len +
		       ipd_opcode_info[IPD_OP_RC | IPD_OP_ACKNOWLEDGE].length);
	printf("app_tx: an ACK before the daemon took the WQE: taken by the completer, %u sent by the daemon, %lu bytes counted\n",
	       at_sent, (unsigned long)(dev.cnt.bytes_sent - c0.bytes_sent));

	/* while p is published, the receive completion of a SEND it
	 * receives shows before the ACK is handed to the medium, but under
	 * the ACK flag, raised before the completion showed and lowered once
	 * the ACK was flushed: a client posting upon that completion from its
	 * own socket waits for the flag (provider/app_tx.c), so it sends after
	 * the ACK */
	w = at_word(p);
	EXPECT(w & IPD_APP_TX_VALID);
	post_recv(p, 2001, ma, 60 * 1024, 1024);
	at_cq = c1;
	at_qp = p;
	at_ack_xmit = at_ack_flushed = false;
	prod = atomic_load(&c1->q.hdr->prod);
	{
		struct ipd_send_wqe *sw =
			sq_next(q, 3001, IBV_WR_SEND, IBV_SEND_INLINE, 0);

		memcpy(sw->payload, mb->map + 100, 24);
		sw->inline_len = 24;
		sq_publish(q);
	}
	expect_wc(c1, 0, 2001, IBV_WC_SUCCESS, IBV_WC_RECV, 24);
	expect_wc(c2, 1, 3001, IBV_WC_SUCCESS, IBV_WC_SEND, 24);
	EXPECT(!memcmp(ma->map + 60 * 1024, mb->map + 100, 24));
	printf("app_tx: p's receive completion showed before its ACK was flushed, under the ACK flag: %s (CQ producer %u at the flush, %u before; flag %u then, %u after)\n",
	       at_ack_flushed && at_prod_at_flush == prod + 1 &&
			       at_owed_at_flush == 1 ? "yes" : "NO",
	       at_prod_at_flush, prod, at_owed_at_flush,
	       atomic_load(&p->sq.hdr->app_tx_ack_owed));
	EXPECT(at_ack_flushed && at_prod_at_flush == prod + 1 &&
	       at_owed_at_flush == 1);
	EXPECT(!atomic_load(&p->sq.hdr->app_tx_ack_owed));

	/* an ACK sent while the word was withdrawn is flushed before the
	 * word turns valid again (the peer's SEND injected straight onto
	 * the wire, delivered without an engine poll; q's requester never
	 * learns of it, so this case comes last) */
	w = at_word(p);
	EXPECT(w & IPD_APP_TX_VALID);
	ipd_app_tx_clear(p);
	EXPECT(atomic_load(&p->sq.hdr->app_tx) == 0);
	post_recv(p, 2002, ma, 61 * 1024, 1024);
	at_qp = p;
	at_ack_xmit = at_ack_flushed = false;
	at_inject(q, p->qpn, q->eng->req_psn, mb->map + 200, 16);
	for (int i = 0; i < 8 && !at_ack_xmit; i++)
		ipd_link_loop_poll(dev.loop_link);
	EXPECT(at_ack_xmit && !at_ack_flushed);
	expect_wc(c1, 0, 2002, IBV_WC_SUCCESS, IBV_WC_RECV, 16);
	ipd_app_tx_publish(p);
	printf("app_tx: an ACK sent while withdrawn is flushed before the word is published again: %s\n",
	       at_ack_flushed && at_word_at_flush == 0 ? "yes" : "NO");
	EXPECT(at_ack_flushed && at_word_at_flush == 0);
	EXPECT(atomic_load(&p->sq.hdr->app_tx) & IPD_APP_TX_VALID);
	EXPECT(!memcmp(ma->map + 61 * 1024, mb->map + 200, 16));
	at_cq = NULL;
	at_qp = NULL;
	test_app_tx_withdraw();

	/* nothing published without an ACK timeout, towards loopback, or
	 * with app_tx off */
	p->attr.timeout = 0;
	ipd_engine_qp_modified(p, IBV_QPS_RTS, IBV_QP_TIMEOUT);
	EXPECT(at_word(p) == 0);
	p->attr.timeout = 14;
	ipd_engine_qp_modified(p, IBV_QPS_RTS, IBV_QP_TIMEOUT);
	EXPECT(at_word(p) & IPD_APP_TX_VALID);
	p->av.local = true;
	EXPECT(at_word(p) == 0);
	p->av.local = false;
	EXPECT(at_word(p) & IPD_APP_TX_VALID);
	cfg.app_tx = false;
	EXPECT(at_word(p) == 0);
	printf("test_engine_loopback app_tx: ok\n");
	return 0;
}

/* One burst; returns the request packets sent.  Every byte, immediate
 * and completion is checked. */
static unsigned int sel_round(struct ipd_qp *p, struct ipd_qp *q,
			      struct ipd_cq *cp, struct ipd_cq *cq,
			      struct ipd_mr *ma, struct ipd_mr *mb, uint64_t id)
{
	static const int ops[9] = {
		IBV_WR_RDMA_WRITE, IBV_WR_SEND_WITH_IMM,
		IBV_WR_RDMA_WRITE_WITH_IMM, IBV_WR_SEND, IBV_WR_RDMA_READ,
		IBV_WR_RDMA_WRITE, IBV_WR_ATOMIC_FETCH_AND_ADD, IBV_WR_SEND,
		IBV_WR_RDMA_WRITE,
	};
	const uint32_t len = 16384;
	uint64_t *target = (uint64_t *)(mb->map + (1 << 19));
	unsigned int total = 0, nrecv = 0;
	struct ipd_cqe c;

	memset(mb->map, 0, 1 << 19);
	memset(ma->map + (1 << 19), 0, 1 << 19);
	for (size_t i = 0; i < 4096; i++)
		mb->map[(1 << 19) + 8 + i] = (uint8_t)(i * 5 + id);
	*target = 1000;
	memset(sel_copies, 0, sizeof(sel_copies));
	wire_base_psn = p->eng->req_psn;
	for (int i = 0; i < 4; i++)
		post_recv(q, id * 100 + 50 + i, mb, (uint64_t)(12 + i) << 15, 1 << 15);
	for (int i = 0; i < 9; i++) {
		uint64_t off = (uint64_t)i << 15;

		if (ops[i] == IBV_WR_ATOMIC_FETCH_AND_ADD)
			post_atomic(p, id * 100 + i, ops[i], ma, (1 << 19) + off,
				    mb->iova + (1 << 19), mb->rkey, 7, 0);
		else if (ops[i] == IBV_WR_RDMA_READ)
			post_send(p, id * 100 + i, ops[i], ma, (1 << 19) + off,
				  4096, mb->iova + (1 << 19) + 8, mb->rkey, 0);
		else
			post_send(p, id * 100 + i, ops[i], ma, off + i, len,
				  mb->iova + off, mb->rkey, 0);
	}
	for (int i = 0; i < 9; i++) {
		uint64_t off = (uint64_t)i << 15;

		expect_wc(cp, 7, id * 100 + i, IBV_WC_SUCCESS, -1, ~0u);
		if (ops[i] == IBV_WR_RDMA_READ)
			EXPECT(!memcmp(ma->map + (1 << 19) + off,
				       mb->map + (1 << 19) + 8, 4096));
		else if (ops[i] == IBV_WR_ATOMIC_FETCH_AND_ADD)
			EXPECT(*(uint64_t *)(ma->map + (1 << 19) + off) == 1000);
		else if (ops[i] == IBV_WR_RDMA_WRITE ||
			 ops[i] == IBV_WR_RDMA_WRITE_WITH_IMM)
			EXPECT(!memcmp(mb->map + off, ma->map + off + i, len));
	}
	EXPECT(*target == 1007);
	/* receives complete in order: SEND_IMM, WRITE_IMM, SEND, SEND */
	for (int i = 0; i < 9; i++) {
		uint64_t off;

		if (ops[i] != IBV_WR_SEND && ops[i] != IBV_WR_SEND_WITH_IMM &&
		    ops[i] != IBV_WR_RDMA_WRITE_WITH_IMM)
			continue;
		if (ops[i] == IBV_WR_RDMA_WRITE_WITH_IMM) {
			EXPECT(poll_cq(cq, 5, &c, 10));
			EXPECT(c.status == 0 && c.opcode == IBV_WC_RECV_RDMA_WITH_IMM &&
			       c.wr_id == id * 100 + 50 + nrecv && c.byte_len == len &&
			       c.imm_data == htonl(0xabc00000 | (uint32_t)(id * 100 + i)));
			nrecv++;
			continue;
		}
		EXPECT(poll_cq(cq, 5, &c, 10));
		off = (uint64_t)(12 + nrecv) << 15;
		EXPECT(c.status == 0 && c.opcode == IBV_WC_RECV &&
		       c.wr_id == id * 100 + 50 + nrecv && c.byte_len == len);
		EXPECT(!(ops[i] == IBV_WR_SEND_WITH_IMM) ||
		       ((c.wc_flags & IBV_WC_WITH_IMM) &&
			c.imm_data == htonl(0xabc00000 | (uint32_t)(id * 100 + i))));
		EXPECT(!memcmp(mb->map + off, ma->map + ((uint64_t)i << 15) + i, len));
		nrecv++;
	}
	EXPECT(!poll_cq(cq, 5, &c, 0.01));
	for (int i = 0; i < 128; i++)
		total += sel_copies[i];
	return total;
}

static int test_selective(void)
{
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		       IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	struct ipd_mr *ma = mk_mr(9, 1 << 20, acc), *mb = mk_mr(10, 1 << 20, acc);
	struct ipd_cq *c1 = mk_cq(), *c2 = mk_cq();
	struct ipd_qp *p = mk_qp(44, IBV_QPT_RC, c1), *q = mk_qp(45, IBV_QPT_RC, c2);
	const unsigned int npsn = 117, ndrop = sizeof(sel_drop) / sizeof(sel_drop[0]);
	unsigned int sent[2];
	struct ipd_counters c0;

	pair_connect(p, q, -1);
	for (size_t i = 0; i < (1 << 19); i++)
		ma->map[i] = (uint8_t)(i * 19 + 7);
	wire_wrap(sel_xmit);

	for (int k = 0; k < 2; k++) {
		bool on = k == 0;

		cfg.selective_retransmit = on;
		c0 = dev.cnt;
		sent[k] = sel_round(p, q, c1, c2, ma, mb, 1 + k);
		printf("selective %s: %u request packets for %u PSNs, %lu kept, %lu ran late, %lu dropped, %lu resent alone, %lu go-back/re-requests, %lu probes, %lu timeouts, %lu duplicates\n",
		       on ? "on" : "off", sent[k], npsn,
		       (unsigned long)(dev.cnt.ooo_held - c0.ooo_held),
		       (unsigned long)(dev.cnt.ooo_executed - c0.ooo_executed),
		       (unsigned long)(dev.cnt.ooo_dropped - c0.ooo_dropped),
		       (unsigned long)(dev.cnt.selective_resends - c0.selective_resends),
		       (unsigned long)(dev.cnt.retransmits - c0.retransmits),
		       (unsigned long)(dev.cnt.tail_probes - c0.tail_probes),
		       (unsigned long)(dev.cnt.timeouts - c0.timeouts),
		       (unsigned long)(dev.cnt.dup_requests - c0.dup_requests));
		if (on) {
			/* every hole repaired alone: the losses, a probe or
			 * two (two packets each), nothing else */
			EXPECT(dev.cnt.ooo_held > c0.ooo_held);
			EXPECT(dev.cnt.ooo_executed - c0.ooo_executed ==
			       dev.cnt.ooo_held - c0.ooo_held);
			EXPECT(dev.cnt.selective_resends - c0.selective_resends >= ndrop - 2);
			EXPECT(sent[k] <= npsn + ndrop + 1 +
			       2 * (dev.cnt.tail_probes - c0.tail_probes));
			EXPECT(dev.cnt.timeouts == c0.timeouts);
		} else {
			EXPECT(dev.cnt.ooo_held == c0.ooo_held);
			EXPECT(dev.cnt.selective_resends == c0.selective_resends);
		}
		EXPECT(!p->eng->ooo_count && !q->eng->ooo_count &&
		       !dev.engine->ooo_held);
	}
	EXPECT(sent[0] < sent[1]);
	cfg.selective_retransmit = true;

	/* 32 request PSNs lost in a row (as one lost GSO datagram). */
	sel_burst_loss = true;
	sel_resent_ackreq = 0;
	c0 = dev.cnt;
	sent[0] = sel_round(p, q, c1, c2, ma, mb, 3);
	uint64_t rounds = dev.cnt.retransmits - c0.retransmits;
	printf("selective, 32 lost in a row: %u request packets, %lu resend rounds, %lu resent alone (%u asking for an ACK), %lu probes, %lu timeouts\n",
	       sent[0], (unsigned long)rounds,
	       (unsigned long)(dev.cnt.selective_resends - c0.selective_resends),
	       sel_resent_ackreq,
	       (unsigned long)(dev.cnt.tail_probes - c0.tail_probes),
	       (unsigned long)(dev.cnt.timeouts - c0.timeouts));
	/* one ACK asked for per resent run and message end, not per packet */
	EXPECT(sel_resent_ackreq <= 2 * rounds + 3);
	/* the NAKs name the missing run (BTH resv7): the WRITE's part, the
	 * atomic, the SEND's part; not a round per packet, and one round per
	 * NAK (the atomic re-requested in it is not a round of its own) */
	EXPECT(rounds <= 4 && dev.cnt.timeouts == c0.timeouts);
	EXPECT(dev.cnt.tail_probes != c0.tail_probes ||
	       rounds == dev.cnt.naks_rcvd - c0.naks_rcvd);
	EXPECT(sent[0] <= npsn - 3 + 2 * 32 + 2 * (dev.cnt.tail_probes - c0.tail_probes));
	sel_burst_loss = false;

	/* A WRITE lost, the next WRITE kept, a READ behind them dropped (READs
	 * are never kept): once the resent WRITE and the kept one ran, the
	 * responder NAKs the READ's PSN with no hole length, and the
	 * requester goes back N from there at once, not after its ACK
	 * timeout (the tail probe never resends READs). */
	sel_first_only = true;
	memset(sel_copies, 0, sizeof(sel_copies));
	memset(ma->map + (1 << 19), 0, 4096);
	wire_base_psn = p->eng->req_psn;
	c0 = dev.cnt;
	double t0 = ev_time();
	post_send(p, 400, IBV_WR_RDMA_WRITE, ma, 0, 1024, mb->iova, mb->rkey, 0);
	post_send(p, 401, IBV_WR_RDMA_WRITE, ma, 1024, 1024, mb->iova + 1024, mb->rkey, 0);
	post_send(p, 402, IBV_WR_RDMA_READ, ma, 1 << 19, 4096, mb->iova + 8192, mb->rkey, 0);
	expect_wc(c1, 7, 400, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 1024);
	expect_wc(c1, 7, 401, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 1024);
	expect_wc(c1, 7, 402, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, 4096);
	t0 = ev_time() - t0;
	printf("selective, READ dropped behind a kept WRITE: %.1f ms, %lu kept, %lu timeouts\n",
	       t0 * 1e3, (unsigned long)(dev.cnt.ooo_held - c0.ooo_held),
	       (unsigned long)(dev.cnt.timeouts - c0.timeouts));
	EXPECT(!memcmp(mb->map, ma->map, 2048));
	EXPECT(!memcmp(ma->map + (1 << 19), mb->map + 8192, 4096));
	EXPECT(dev.cnt.ooo_held > c0.ooo_held);
	EXPECT(dev.cnt.timeouts == c0.timeouts);
	sel_first_only = false;
	printf("test_engine_loopback selective: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	double loss = argc > 1 ? atof(argv[1]) : 0;
	int iters = argc > 2 ? atoi(argv[2]) : 200;
	cfg.loop_loss = loss; cfg.loop_dup = loss; cfg.loop_reorder = loss;
	/* argv[3] "direct": payloads by reference ([loopback] direct) */
	cfg.loop_direct = argc > 3 && !strcmp(argv[3], "direct");
	strcpy(cfg.link_type, "loopback");
	cfg.tail_probe = true; /* the daemon's defaults */
	cfg.selective_retransmit = true;
	dev.cfg = &cfg;
	pd.handle = 1;
	pd.serial = ++dev.obj_serial;
	dev.loop = ev_default_loop(0);
	dev.active_mtu = 4096;
	TAILQ_INIT(&dev.qps_list);
	ipd_table_init(&dev.ahs, 1, 100);
	EXPECT(!ipd_engine_init(&dev));

	if (argc > 1 && !strcmp(argv[1], "read"))
		return test_read_recovery();
	if (argc > 1 && !strcmp(argv[1], "probe"))
		return test_tail_probe();
	if (argc > 1 && !strcmp(argv[1], "timewait"))
		return test_timewait();
	if (argc > 1 && !strcmp(argv[1], "selective"))
		return test_selective();
	if (argc > 1 && !strcmp(argv[1], "app_tx"))
		return test_app_tx();
	/* "gbn": the impaired run with go back N only */
	if (argc > 3 && !strcmp(argv[3], "gbn"))
		cfg.selective_retransmit = false;
	struct ipd_cq *ca = mk_cq(), *cb = mk_cq();
	struct ipd_qp *a = mk_qp(2, IBV_QPT_RC, ca), *b = mk_qp(3, IBV_QPT_RC, cb);
	uint32_t acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	struct ipd_mr *ma = mk_mr(1, 1 << 22, acc), *mb = mk_mr(2, 1 << 22, acc);
	qp_connect(a, 3, 1024);
	qp_connect(b, 2, 1024);
	for (size_t i = 0; i < (1 << 22); i++)
		ma->map[i] = (uint8_t)(i * 7 + 3);

	/* SEND/RECV in order with various sizes */
	static const uint32_t sizes[] = { 0, 1, 1023, 1024, 1025, 4096, 70001 };
	for (int it = 0; it < iters; it++) {
		uint32_t sz = sizes[it % 7];
		post_recv(b, 1000 + it, mb, 0, 1 << 20);
		post_send(a, it, IBV_WR_SEND, ma, it, sz, 0, 0, 0);
		expect_wc(ca, 0, it, IBV_WC_SUCCESS, IBV_WC_SEND, sz);
		expect_wc(cb, 1, 1000 + it, IBV_WC_SUCCESS, IBV_WC_RECV, sz);
		EXPECT(!memcmp(mb->map, ma->map + it, sz));
	}
	printf("send/recv ok\n");
	/* pipelined sends: 64 in flight */
	for (int it = 0; it < 64; it++)
		post_recv(b, 5000 + it, mb, (uint64_t)it * 8192, 8192);
	for (int it = 0; it < 64; it++)
		post_send(a, 500 + it, IBV_WR_SEND_WITH_IMM, ma, it * 13, 5000 + it, 0, 0, 0);
	for (int it = 0; it < 64; it++) {
		struct ipd_cqe c;
		expect_wc(ca, 0, 500 + it, IBV_WC_SUCCESS, IBV_WC_SEND, 5000 + it);
		EXPECT(poll_cq(cb, 1, &c, 10));
		EXPECT(c.wr_id == 5000u + it && c.status == 0 && c.byte_len == 5000u + it && (c.wc_flags & IBV_WC_WITH_IMM) && c.imm_data == htonl(0xabc00000 | (500 + it)));
		EXPECT(!memcmp(mb->map + (uint64_t)it * 8192, ma->map + it * 13, 5000 + it));
	}
	printf("pipelined send ok\n");
	/* RDMA WRITE large + write with imm */
	memset(mb->map, 0, 1 << 22);
	post_send(a, 700, IBV_WR_RDMA_WRITE, ma, 5, 1000000, mb->iova + 3, mb->rkey, 0);
	expect_wc(ca, 0, 700, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 1000000);
	EXPECT(!memcmp(mb->map + 3, ma->map + 5, 1000000));
	post_recv(b, 701, mb, 0, 16);
	post_send(a, 702, IBV_WR_RDMA_WRITE_WITH_IMM, ma, 100, 3000, mb->iova + 2000000, mb->rkey, 0);
	expect_wc(ca, 0, 702, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, 3000);
	expect_wc(cb, 1, 701, IBV_WC_SUCCESS, IBV_WC_RECV_RDMA_WITH_IMM, 3000);
	EXPECT(!memcmp(mb->map + 2000000, ma->map + 100, 3000));
	printf("write ok\n");
	/* RDMA READ */
	for (size_t i = 0; i < (1 << 22); i++)
		mb->map[i] = (uint8_t)(i * 11 + 1);
	memset(ma->map, 0, 1 << 22);
	for (int it = 0; it < 8; it++)
		post_send(a, 800 + it, IBV_WR_RDMA_READ, ma, it * 300000, 300000 - it, mb->iova + it * 7, mb->rkey, 0);
	for (int it = 0; it < 8; it++) {
		expect_wc(ca, 0, 800 + it, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, 300000 - it);
		EXPECT(!memcmp(ma->map + it * 300000, mb->map + it * 7, 300000 - it));
	}
	post_send(a, 810, IBV_WR_RDMA_READ, ma, 0, 0, 0, 0, 0);
	expect_wc(ca, 0, 810, IBV_WC_SUCCESS, IBV_WC_RDMA_READ, 0);
	printf("read ok\n");
	/* atomics */
	uint64_t *target = (uint64_t *)(mb->map + 4096);
	*target = 100;
	for (int it = 0; it < 100; it++)
		post_atomic(a, 900 + it, IBV_WR_ATOMIC_FETCH_AND_ADD, ma, 8 * it, mb->iova + 4096, mb->rkey, 1, 0);
	for (int it = 0; it < 100; it++) {
		expect_wc(ca, 0, 900 + it, IBV_WC_SUCCESS, IBV_WC_FETCH_ADD, 8);
		EXPECT(((uint64_t *)ma->map)[it] == 100u + it);
	}
	EXPECT(*target == 200);
	post_atomic(a, 1001, IBV_WR_ATOMIC_CMP_AND_SWP, ma, 0, mb->iova + 4096, mb->rkey, 200, 7);
	expect_wc(ca, 0, 1001, IBV_WC_SUCCESS, IBV_WC_COMP_SWAP, 8);
	EXPECT(*(uint64_t *)ma->map == 200 && *target == 7);
	post_atomic(a, 1002, IBV_WR_ATOMIC_CMP_AND_SWP, ma, 0, mb->iova + 4096, mb->rkey, 200, 9);
	expect_wc(ca, 0, 1002, IBV_WC_SUCCESS, IBV_WC_COMP_SWAP, 8);
	EXPECT(*(uint64_t *)ma->map == 7 && *target == 7);
	printf("atomics ok\n");
	/* RNR: send before the recv is posted */
	post_send(a, 1100, IBV_WR_SEND, ma, 0, 100, 0, 0, 0);
	for (int k = 0; k < 1000; k++) { ipd_engine_poll(&dev); ev_run(dev.loop, EVRUN_NOWAIT); }
	post_recv(b, 1101, mb, 0, 100);
	expect_wc(ca, 0, 1100, IBV_WC_SUCCESS, IBV_WC_SEND, 100);
	expect_wc(cb, 1, 1101, IBV_WC_SUCCESS, IBV_WC_RECV, 100);
	printf("rnr ok (rnr naks sent %lu)\n", (unsigned long)dev.cnt.rnr_naks_sent);
	test_layouts(a, b, ca, cb);
	if (cfg.loop_direct && loss == 0) {
		test_stale(a, b, ca, cb, ma, mb);
		test_churn(a, b, ca, cb, ma, mb);
	}

	/* UD */
	struct ipd_qp *u1 = mk_qp(10, IBV_QPT_UD, ca), *u2 = mk_qp(11, IBV_QPT_UD, cb);
	qp_connect(u1, 0, 0);
	qp_connect(u2, 0, 0);
	struct ipd_ah *ah = calloc(1, sizeof(*ah));
	ah->client = &client; ah->pd = &pd; ah->av = u1->av;
	uint32_t ahh = ipd_table_insert(&dev.ahs, ah);
	post_recv(u2, 1200, mb, 0, 4096 + 40);
	{
		uint32_t p = sq_prod(u1);
		struct ipd_send_wqe *w = ipd_ring_slot(u1->sq.hdr, u1->sq.size, u1->sq.slot_size, p);
		memset(w, 0, u1->sq.slot_size);
		w->wr_id = 1201; w->opcode = IBV_WR_SEND; w->send_flags = IBV_SEND_SIGNALED; w->num_sge = 1;
		w->wr.ud.ah = ahh; w->wr.ud.remote_qpn = 11; w->wr.ud.remote_qkey = 0x11111111;
		struct ipd_sge *s = ipd_send_wqe_sge(w);
		s->addr = ma->iova; s->length = 2000; s->lkey = ma->lkey;
		ipd_ring_publish(u1->sq.hdr, p + 1);
	}
	expect_wc(ca, 0, 1201, IBV_WC_SUCCESS, IBV_WC_SEND, 2000);
	if (loss == 0) {
		struct ipd_cqe c;
		EXPECT(poll_cq(cb, 1, &c, 5));
		EXPECT(c.wr_id == 1200 && c.status == 0 && c.byte_len == 2040 && c.src_qp == 10 && (c.wc_flags & IBV_WC_GRH));
		EXPECT(!memcmp(mb->map + 40, ma->map, 2000) && mb->map[20] == 0x45);
		printf("ud ok\n");
	}

	/* UC: sends and writes; with loss some messages vanish, never corrupt */
	{
		struct ipd_cq *cu1 = mk_cq(), *cu2 = mk_cq();
		struct ipd_qp *c1 = mk_qp(20, IBV_QPT_UC, cu1), *c2 = mk_qp(21, IBV_QPT_UC, cu2);
		int got = 0;
		qp_connect(c1, 21, 1024);
		qp_connect(c2, 20, 1024);
		for (int it = 0; it < 50; it++)
			post_recv(c2, 3000 + it, mb, (uint64_t)it * 8192, 8192);
		for (int it = 0; it < 50; it++)
			post_send(c1, 3100 + it, IBV_WR_SEND, ma, it, 3000 + it, 0, 0, 0);
		for (int it = 0; it < 50; it++)
			expect_wc(cu1, 2, 3100 + it, IBV_WC_SUCCESS, IBV_WC_SEND, 3000 + it);
		struct ipd_cqe c;
		uint64_t last = 0;
		while (poll_cq(cu2, 3, &c, 0.2)) {
			EXPECT(c.status == 0 && (c.wr_id > last || !last));
			uint32_t k = (uint32_t)(c.wr_id - 3000);
			EXPECT(c.byte_len >= 3000 && c.byte_len < 3050);
			EXPECT(!memcmp(mb->map + (uint64_t)k * 8192, ma->map + (c.byte_len - 3000), c.byte_len));
			last = c.wr_id;
			got++;
		}
		EXPECT(loss > 0 || got == 50);
		printf("uc ok (%d/50 delivered)\n", got);
	}
	/* error: bad rkey -> REM_ACCESS_ERR, then flush */
	/* The NAK may be lost, and the failed responder then stays silent:
	 * a finite retry count ends that with RETRY_EXC_ERR. */
	a->attr.retry_cnt = 2;
	ipd_engine_qp_modified(a, IBV_QPS_RTS, IBV_QP_RETRY_CNT);
	post_send(a, 1300, IBV_WR_RDMA_WRITE, ma, 0, 100, mb->iova, mb->rkey ^ 1, 0);
	post_send(a, 1301, IBV_WR_SEND, ma, 0, 100, 0, 0, 0);
	{
		struct ipd_cqe c;
		EXPECT(poll_cq(ca, 0, &c, 10.0));
		EXPECT(c.wr_id == 1300);
		EXPECT(c.status == IBV_WC_REM_ACCESS_ERR ||
		       (loss > 0 && c.status == IBV_WC_RETRY_EXC_ERR));
	}
	expect_wc(ca, 0, 1301, IBV_WC_WR_FLUSH_ERR, -1, ~0u);
	EXPECT(a->attr.qp_state == IBV_QPS_ERR && b->attr.qp_state == IBV_QPS_ERR);
	post_send(a, 1302, IBV_WR_SEND, ma, 0, 100, 0, 0, 0);
	expect_wc(ca, 0, 1302, IBV_WC_WR_FLUSH_ERR, -1, ~0u);
	printf("errors ok\n");
	if (loss == 0)
		test_more_errors(ma, mb);
	printf("test_engine_loopback: ok; counters: sent %lu rcvd %lu retrans %lu timeouts %lu dup %lu naks %lu drop_seq %lu loopdrop %lu direct %lu stale %lu ooo_held %lu ooo_dropped %lu selective_resends %lu\n",
	       (unsigned long)dev.cnt.pkts_sent, (unsigned long)dev.cnt.pkts_rcvd, (unsigned long)dev.cnt.retransmits,
	       (unsigned long)dev.cnt.timeouts, (unsigned long)dev.cnt.dup_requests, (unsigned long)dev.cnt.naks_sent,
	       (unsigned long)dev.cnt.drop_seq, (unsigned long)dev.cnt.loop_dropped,
	       (unsigned long)dev.cnt.loop_direct_pkts, (unsigned long)dev.cnt.loop_direct_stale,
	       (unsigned long)dev.cnt.ooo_held, (unsigned long)dev.cnt.ooo_dropped,
	       (unsigned long)dev.cnt.selective_resends);
	return 0;
}
