// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the RoCEv2 receive path.  The input is one UDP payload as
 * it arrives on port 4791 (BTH .. pad, then the ICRC).  It is sent from a
 * real UDP socket to the device's real UDP link (daemon/link_udp.c, on a
 * free port here, so an input's own ICRC never matches), which
 * checks it and hands it to the engine (daemon/net.c rx_parse, then the
 * responder or completer) -- twice: as it is (almost always an ICRC drop),
 * and with its last 4 bytes replaced by the right ICRC, so that mutations
 * get past the CRC into the parser.  The same bytes also go through the
 * packet-socket parser ipd_icrc_verify_ip (an IPv4/IPv6 datagram).
 *
 * The device has two connected RC QPs (0x11 <-> 0x12), two UC QPs
 * (0x13 <-> 0x14) and a UD QP 0x15 (Q_Key 0x11111111), one MR of 64 KiB at
 * IOVA 0x100000 with every access right and its R_Key pinned to 0x15a (so
 * the corpus can name it), and receive WQEs posted on every receive queue.
 * A QP the input moved to the error state is reset and reconnected.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_priv.h"
#include "fuzz_dev.h"
#include "ipathd/icrc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MR_IOVA	     0x100000u
#define MR_PAGES     16u
#define MR_RKEY_BYTE 0x5au
#define UD_QKEY	     0x11111111u
#define SPORT	     0xc001u
#define NQP	     5

static const struct {
	enum ibv_qp_type type;
	int peer; /* index of the QP it is connected to, or -1 */
} qp_plan[NQP] = {
	{IBV_QPT_RC, 1}, {IBV_QPT_RC, 0},  {IBV_QPT_UC, 3},
	{IBV_QPT_UC, 2}, {IBV_QPT_UD, -1},
};

static struct {
	struct ipd_dev *dev;
	uint32_t pd, cq, mr_handle;
	uint32_t qpn[NQP];
	uint32_t sgid_index;
	int tx;			     /* our UDP socket, bound to SPORT */
	struct sockaddr_in to, from; /* the device's link, our socket */
	uint64_t completions;	     /* CQEs the inputs caused */
} px;

static Ipd__Response *call_ok(Ipd__Request *req, int fd)
{
	Ipd__Response *resp = fz_ctl_call(req, &fd, fd >= 0 ? 1 : 0);

	if (resp->err)
		fprintf(stderr, "fuzz_pkt setup: request %d: %s\n",
			(int)req->op_case, resp->msg);
	FZ_ASSERT(resp->err == 0);
	return resp;
}

static void setup_pd_cq_mr(void)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__AllocPd apd = IPD__ALLOC_PD__INIT;
	Ipd__CreateCq ccq = IPD__CREATE_CQ__INIT;
	Ipd__RegMr rmr = IPD__REG_MR__INIT;
	Ipd__PageRun run = IPD__PAGE_RUN__INIT, *runs[1] = {&run};
	Ipd__Response *resp;
	struct ipd_mr *mr;
	int memfd;

	req.op_case = IPD__REQUEST__OP_ALLOC_PD;
	req.alloc_pd = &apd;
	resp = call_ok(&req, -1);
	px.pd = resp->alloc_pd->handle;
	ipd__response__free_unpacked(resp, NULL);

	ccq.cqe = 1024;
	req.op_case = IPD__REQUEST__OP_CREATE_CQ;
	req.create_cq = &ccq;
	resp = call_ok(&req, -1);
	px.cq = resp->create_cq->handle;
	ipd__response__free_unpacked(resp, NULL);

	memfd = memfd_create("fuzz-mr", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	FZ_ASSERT(memfd >= 0 && !ftruncate(memfd, MR_PAGES * 4096));
	run.npages = MR_PAGES;
	rmr.pd = px.pd;
	rmr.addr = rmr.iova = MR_IOVA;
	rmr.length = MR_PAGES * 4096;
	rmr.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		     IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	rmr.n_runs = 1;
	rmr.runs = runs;
	req.op_case = IPD__REQUEST__OP_REG_MR;
	req.reg_mr = &rmr;
	resp = call_ok(&req, memfd);
	close(memfd);
	px.mr_handle = resp->reg_mr->handle;
	ipd__response__free_unpacked(resp, NULL);
	/* Pin the key byte (mr.c picks a random one) so seeds can name it. */
	mr = ipd_table_get(&px.dev->mrs, px.mr_handle);
	FZ_ASSERT(mr);
	mr->lkey = mr->rkey = px.mr_handle << 8 | MR_RKEY_BYTE;
}

static uint32_t create_qp(enum ibv_qp_type type)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateQp cqp = IPD__CREATE_QP__INIT;
	Ipd__QpCap cap = IPD__QP_CAP__INIT;
	Ipd__Response *resp;
	uint32_t qpn;

	cap.max_send_wr = cap.max_recv_wr = 64;
	cap.max_send_sge = cap.max_recv_sge = 2;
	cqp.pd = px.pd;
	cqp.qp_type = type;
	cqp.send_cq = cqp.recv_cq = px.cq;
	cqp.cap = &cap;
	req.op_case = IPD__REQUEST__OP_CREATE_QP;
	req.create_qp = &cqp;
	resp = call_ok(&req, -1);
	qpn = resp->create_qp->qpn;
	ipd__response__free_unpacked(resp, NULL);
	return qpn;
}

static void modify_qp(uint32_t qpn, uint32_t mask, Ipd__QpAttr *attr)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__ModifyQp mq = IPD__MODIFY_QP__INIT;

	mq.qpn = qpn;
	mq.attr_mask = mask;
	mq.attr = attr;
	req.op_case = IPD__REQUEST__OP_MODIFY_QP;
	req.modify_qp = &mq;
	ipd__response__free_unpacked(call_ok(&req, -1), NULL);
}

/* RESET -> INIT -> RTR -> RTS with the IBA-required attributes. */
static void connect_qp(int i)
{
	enum ibv_qp_type t = qp_plan[i].type;
	Ipd__QpAttr a = IPD__QP_ATTR__INIT;
	Ipd__AhAttr ah = IPD__AH_ATTR__INIT;
	Ipd__GlobalRoute grh = IPD__GLOBAL_ROUTE__INIT;
	uint8_t dgid[16] = {[10] = 0xff, [11] = 0xff, 127, 0, 0, 1};
	uint32_t mask;

	a.qp_state = IBV_QPS_RESET;
	modify_qp(px.qpn[i], IBV_QP_STATE, &a);
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qkey = UD_QKEY;
	a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
			    IBV_ACCESS_REMOTE_ATOMIC;
	mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
	mask |= t == IBV_QPT_UD ? IBV_QP_QKEY : IBV_QP_ACCESS_FLAGS;
	modify_qp(px.qpn[i], mask, &a);

	a.qp_state = IBV_QPS_RTR;
	mask = IBV_QP_STATE;
	if (t != IBV_QPT_UD) {
		grh.dgid.data = dgid;
		grh.dgid.len = sizeof(dgid);
		grh.sgid_index = px.sgid_index;
		grh.hop_limit = 64;
		ah.grh = &grh;
		ah.is_global = true;
		ah.port_num = 1;
		a.ah_attr = &ah;
		a.path_mtu = IBV_MTU_1024;
		a.dest_qp_num = px.qpn[qp_plan[i].peer];
		a.rq_psn = 0;
		mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			IBV_QP_RQ_PSN;
	}
	if (t == IBV_QPT_RC) {
		a.max_dest_rd_atomic = 16;
		a.min_rnr_timer = 1;
		mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	}
	modify_qp(px.qpn[i], mask, &a);

	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = 0;
	mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
	if (t == IBV_QPT_RC) {
		a.timeout = 14;
		a.retry_cnt = 7;
		a.rnr_retry = 7;
		a.max_rd_atomic = 16;
		mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			IBV_QP_MAX_QP_RD_ATOMIC;
	}
	modify_qp(px.qpn[i], mask, &a);
}

/* Keep every receive queue full of 4 KiB buffers in the MR. */
static void post_recvs(struct ipd_qp *qp)
{
	struct ipd_ring_hdr *h = qp->rq.hdr;
	uint32_t prod = atomic_load(&h->prod);

	while (!ipd_ring_full(h, qp->rq.size, prod)) {
		struct ipd_recv_wqe *w =
			ipd_ring_slot(h, qp->rq.size, qp->rq.slot_size, prod);

		w->wr_id = prod;
		w->num_sge = 1;
		w->sge[0].addr = MR_IOVA + (prod % MR_PAGES) * 4096;
		w->sge[0].length = 4096;
		w->sge[0].lkey = px.mr_handle << 8 | MR_RKEY_BYTE;
		ipd_ring_publish(h, ++prod);
	}
}

/* Consume every completion, refill receives, revive QPs in error. */
static void tidy(void)
{
	struct ipd_cq *cq = ipd_table_get(&px.dev->cqs, px.cq);
	int i;

	FZ_ASSERT(cq);
	px.completions += cq->q.prod - atomic_load(&cq->q.hdr->cons);
	ipd_ring_release(cq->q.hdr, cq->q.prod);
	for (i = 0; i < NQP; i++) {
		struct ipd_qp *qp = ipd_qp_lookup(px.dev, px.qpn[i]);

		FZ_ASSERT(qp);
		if (qp->attr.qp_state != IBV_QPS_RTS)
			connect_qp(i);
		post_recvs(qp);
	}
	fz_pump();
	px.completions += cq->q.prod - atomic_load(&cq->q.hdr->cons);
	ipd_ring_release(cq->q.hdr, cq->q.prod);
}

static void setup_udp(void)
{
	socklen_t len = sizeof(px.from);
	int i;

	px.tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	FZ_ASSERT(px.tx >= 0);
	px.from.sin_family = AF_INET;
	px.from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 64; i++) {
		px.from.sin_port = htons((uint16_t)(SPORT + i));
		if (!bind(px.tx, (struct sockaddr *)&px.from, len))
			break;
	}
	FZ_ASSERT(i < 64);
	px.to.sin_family = AF_INET;
	px.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	px.to.sin_port = htons((uint16_t)px.dev->cfg->udp_port);
}

/* Make the last 4 of len bytes the right ICRC for our flow. */
static void icrc_fix(uint8_t *buf, size_t len)
{
	struct ipd_icrc_flow flow = {
		.src = (struct sockaddr *)&px.from,
		.dst = (struct sockaddr *)&px.to,
		.sport = ntohs(px.from.sin_port),
		.dport = ntohs(px.to.sin_port),
		.ip_df = true,
	};

	if (len >= IPD_BTH_BYTES + IPD_ICRC_BYTES)
		ipd_icrc_append(&flow, buf, (uint32_t)(len - IPD_ICRC_BYTES));
}

/* Send len bytes (BTH .. ICRC) to the device and let it digest them;
 * with fix_icrc the last 4 bytes become the right ICRC first. */
static void deliver(uint8_t *buf, size_t len, bool fix_icrc)
{
	if (fix_icrc)
		icrc_fix(buf, len);
	FZ_ASSERT(sendto(px.tx, buf, len, 0, (struct sockaddr *)&px.to,
			 sizeof(px.to)) == (ssize_t)len);
	fz_pump();
}

/* A SEND ONLY to the RC responder with a correct ICRC, len bytes. */
static size_t good_send(uint8_t *buf, uint32_t payload)
{
	memset(buf, 0, IPD_BTH_BYTES + payload + IPD_ICRC_BYTES);
	ipd_bth_init(buf, IPD_OP_RC | IPD_OP_SEND_ONLY, false, 0,
		     IPD_DEFAULT_PKEY, px.qpn[1], true, 0);
	return IPD_BTH_BYTES + payload + IPD_ICRC_BYTES;
}

#define EXPECT_DROP(counter, buf, len, fix)                                   \
	do {                                                                  \
		uint64_t before = px.dev->cnt.counter;                        \
		deliver(buf, len, fix);                                       \
		if (px.dev->cnt.counter != before + 1)                        \
			fz_fail(__FILE__, __LINE__, #counter " not counted"); \
	} while (0)

/* Malformed packets are dropped and counted where they are dropped. */
static void check_drop_counters(void)
{
	uint8_t buf[64];
	size_t len;

	len = good_send(buf, 8);
	icrc_fix(buf, len);
	buf[IPD_BTH_BYTES] ^= 1; /* the ICRC no longer matches */
	EXPECT_DROP(drop_icrc, buf, len, false);

	len = good_send(buf, 0); /* 12-byte datagram: no ICRC */
	EXPECT_DROP(drop_malformed, buf, len - 4, false);

	len = good_send(buf, 0); /* WRITE ONLY without its RETH */
	buf[0] = IPD_OP_RC | IPD_OP_WRITE_ONLY;
	EXPECT_DROP(drop_malformed, buf, len, true);

	len = good_send(buf, 4);
	buf[1] |= 1; /* TVer 1 */
	EXPECT_DROP(drop_malformed, buf, len, true);

	len = good_send(buf, 4);
	buf[1] |= 3 << IPD_BTH_PAD_SHIFT; /* pad longer than the payload */
	len -= 4;
	EXPECT_DROP(drop_malformed, buf, len, true);

	len = good_send(buf, 4);
	ipd_put24(buf + 5, 0x7777); /* no such QP */
	EXPECT_DROP(drop_no_qp, buf, len, true);

	len = good_send(buf, 4);
	ipd_put16(buf + 2, 0x1234); /* foreign P_Key */
	EXPECT_DROP(drop_bad_pkey, buf, len, true);

	len = good_send(buf, 4); /* and the good one is taken */
	deliver(buf, len, true);
	FZ_ASSERT(ipd_qp_lookup(px.dev, px.qpn[1])->eng->rq_psn == 1);
}

/* What the inputs did, to show that they reach past the checks. */
static void print_counters(void)
{
	const struct ipd_counters *c = &px.dev->cnt;

	printf("fuzz_pkt: %llu packets in, %llu out; dropped: %llu ICRC, "
	       "%llu malformed, %llu no QP, %llu state, %llu P_Key, "
	       "%llu Q_Key, %llu sequence; %llu NAKs, %llu RNR NAKs, "
	       "%llu completions; %llu kept out of order, %llu ran late\n",
	       (unsigned long long)c->pkts_rcvd,
	       (unsigned long long)c->pkts_sent,
	       (unsigned long long)c->drop_icrc,
	       (unsigned long long)c->drop_malformed,
	       (unsigned long long)c->drop_no_qp,
	       (unsigned long long)c->drop_bad_state,
	       (unsigned long long)c->drop_bad_pkey,
	       (unsigned long long)c->drop_bad_qkey,
	       (unsigned long long)c->drop_seq,
	       (unsigned long long)c->naks_sent,
	       (unsigned long long)c->rnr_naks_sent,
	       (unsigned long long)px.completions,
	       (unsigned long long)c->ooo_held,
	       (unsigned long long)c->ooo_executed);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int i;

	px.dev = fz_dev();
	FZ_ASSERT(px.dev->net_link);
	for (i = 0; i < px.dev->ngids; i++) {
		const struct sockaddr_in *a =
			(const void *)&px.dev->gids[i].addr;

		if (a->sin_family == AF_INET &&
		    a->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
			px.sgid_index = (uint32_t)i;
	}
	FZ_ASSERT(px.sgid_index);
	setup_pd_cq_mr();
	for (i = 0; i < NQP; i++)
		px.qpn[i] = create_qp(qp_plan[i].type);
	tidy();
	setup_udp();
	check_drop_counters();
	tidy();
	atexit(print_counters);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[IPD_PKT_DATA_MAX + 64];

	if (!px.dev)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size > sizeof(buf))
		size = sizeof(buf);
	/* The packet-socket parser takes the same bytes as an IP datagram. */
	(void)ipd_icrc_verify_ip(data, size);
	memcpy(buf, data, size);
	deliver(buf, size, false);
	deliver(buf, size, true);
	tidy();
	return 0;
}
