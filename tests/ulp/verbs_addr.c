// SPDX-License-Identifier: MIT
/*
 * The verbs twin of ulp_addr.c: the same IPoIB-like SENDs (the last with
 * immediate), SRP-like RDMA READ of the data-out list and RDMA WRITE (the
 * last with immediate) of the data-in list, CMP_SWAP and FETCH_ADD, made
 * by an ordinary libibverbs application on registered user memory.  It
 * prints the same "RESULT <name> <digest>" lines as the model ULPs, so a
 * test can require byte-identical results from both in every address-form
 * pair (tests/ulp/addr_forms_pairs.sh).
 *
 *   verbs_addr target --listen PORT -d DEV -g GID_INDEX
 *   verbs_addr initiator --connect IP:PORT -d DEV -g GID_INDEX
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <infiniband/verbs.h>

#include "ulp_common.h"

#define PAGE 4096

struct vhello {
	uint32_t magic, qpn, psn;
	uint8_t gid[16];
};

struct vdesc {
	uint64_t addr;
	uint32_t len, pad;
};

struct vcmd {
	uint32_t magic, rkey;
	struct vdesc dout[NSG], din[NSG];
	uint64_t atomic_addr;
};

struct vrsp {
	uint32_t magic, status;
	uint64_t cas_orig, fadd_orig;
};

/* One registered region, carved up. */
struct layout {
	uint8_t *recv;            /* RECV_SLOTS * PKT_MAX */
	uint8_t *send;            /* PKT_MAX */
	uint8_t *list_a, *list_b; /* NSG pages each */
	uint64_t *word;           /* atomics: target word / results */
	uint8_t *msg;             /* PAGE: command / response */
	size_t len;
};

struct vctx {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	struct layout m;
	uint8_t *base;
	int sock, failures;
	const char *role;
};

static void check(struct vctx *c, bool ok, const char *what)
{
	fprintf(stderr, "[verbs %s] %s: %s\n", c->role, ok ? "ok" : "FAIL", what);
	if (!ok)
		c->failures++;
}

static struct ibv_wc wait_wc(struct vctx *c)
{
	struct ibv_wc wc = { .status = (enum ibv_wc_status)-1 };
	long end = now_ms() + WAIT_MS;

	while (now_ms() < end) {
		if (ibv_poll_cq(c->cq, 1, &wc) == 1)
			return wc;
		usleep(50);
	}
	wc.status = (enum ibv_wc_status)-1;
	return wc;
}

static int open_dev(struct vctx *c, const char *name)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_device *dev = NULL;
	size_t pg = PAGE;
	uint8_t *p;

	for (int i = 0; list && list[i]; i++)
		if (!name || !strcmp(ibv_get_device_name(list[i]), name))
			dev = dev ? dev : list[i];
	c->ctx = dev ? ibv_open_device(dev) : NULL;
	if (list)
		ibv_free_device_list(list);
	if (!c->ctx)
		return -1;
	c->m.len = RECV_SLOTS * PKT_MAX + PKT_MAX + 2 * NSG * pg + pg + pg;
	c->m.len = (c->m.len + pg - 1) & ~(pg - 1);
	if (posix_memalign((void **)&c->base, pg, c->m.len))
		return -1;
	memset(c->base, 0, c->m.len);
	p = c->base;
	c->m.recv = p;
	p += RECV_SLOTS * PKT_MAX;
	c->m.send = p;
	p += PKT_MAX;
	p = c->base + ((size_t)(p - c->base) + pg - 1) / pg * pg;
	c->m.list_a = p;
	p += NSG * pg;
	c->m.list_b = p;
	p += NSG * pg;
	c->m.word = (uint64_t *)(void *)p;
	p += pg;
	c->m.msg = p;
	c->pd = ibv_alloc_pd(c->ctx);
	c->cq = c->pd ? ibv_create_cq(c->ctx, 256, NULL, NULL, 0) : NULL;
	c->mr = c->cq ? ibv_reg_mr(c->pd, c->base, c->m.len,
				   IBV_ACCESS_LOCAL_WRITE |
				   IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ |
				   IBV_ACCESS_REMOTE_ATOMIC) : NULL;
	return c->mr ? 0 : -1;
}

static int connect_qp(struct vctx *c, int gid_index, bool initiator)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = c->cq, .recv_cq = c->cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 64, .max_recv_wr = 64,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = { 0 };
	struct vhello me = { MAGIC, 0, initiator ? 0x1000 : 0x2000, { 0 } },
		      peer;
	union ibv_gid gid;

	c->qp = ibv_create_qp(c->pd, &ia);
	if (!c->qp || ibv_query_gid(c->ctx, 1, gid_index, &gid))
		return -1;
	me.qpn = c->qp->qp_num;
	memcpy(me.gid, gid.raw, 16);
	if (xfer(c->sock, &me, sizeof(me), true) ||
	    xfer(c->sock, &peer, sizeof(peer), false) || peer.magic != MAGIC)
		return -1;
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			    IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				     IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = peer.qpn;
	a.rq_psn = peer.psn;
	a.max_dest_rd_atomic = 4;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.grh.sgid_index = (uint8_t)gid_index;
	a.ah_attr.grh.hop_limit = 64;
	memcpy(a.ah_attr.grh.dgid.raw, peer.gid, 16);
	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_AV |
				     IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				     IBV_QP_MIN_RNR_TIMER))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = me.psn;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 4;
	return ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN |
					IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					IBV_QP_RNR_RETRY |
					IBV_QP_MAX_QP_RD_ATOMIC) ? -1 : 0;
}

static int post_recv(struct vctx *c, uint64_t slot)
{
	struct ibv_sge sge = {
		(uint64_t)(uintptr_t)(c->m.recv + slot * PKT_MAX), PKT_MAX,
		c->mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = slot, .sg_list = &sge,
				  .num_sge = 1 }, *bad;

	return ibv_post_recv(c->qp, &wr, &bad);
}

/* One WR, waited for.  Returns the completion status. */
static int post_wait(struct vctx *c, enum ibv_wr_opcode op, void *local,
		     uint32_t len, uint64_t raddr, uint32_t rkey,
		     uint64_t cmp_add, uint64_t swap, uint32_t imm)
{
	struct ibv_sge sge = { (uint64_t)(uintptr_t)local, len, c->mr->lkey };
	struct ibv_send_wr wr = { 0 }, *bad;

	wr.wr_id = 7;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = op;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.imm_data = htonl(imm);
	if (op == IBV_WR_ATOMIC_CMP_AND_SWP ||
	    op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		wr.wr.atomic.remote_addr = raddr;
		wr.wr.atomic.rkey = rkey;
		wr.wr.atomic.compare_add = cmp_add;
		wr.wr.atomic.swap = swap;
	} else {
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
	}
	if (ibv_post_send(c->qp, &wr, &bad))
		return -1;
	return (int)wait_wc(c).status;
}

static uint64_t list_digest(uint8_t *list)
{
	uint64_t h = FNV_INIT;

	for (int i = 0; i < NSG; i++)
		h = fnv(h, list + i * PAGE + sg_shape[i].offset,
			sg_shape[i].length);
	return h;
}

static void list_fill(uint8_t *list, uint32_t seed)
{
	for (int i = 0; i < NSG; i++)
		pattern(list + i * PAGE + sg_shape[i].offset,
			sg_shape[i].length, seed + (uint32_t)i);
}

static void initiator(struct vctx *c)
{
	struct vcmd *cmd = (struct vcmd *)(void *)c->m.msg;
	struct vrsp rsp = { 0 };
	bool got_imm = false, got_rsp = false;
	uint64_t h;
	uint8_t heard;

	for (int i = 0; i < NPKT; i++) {
		pattern(c->m.send, pkt_len(i), (uint32_t)i + 1);
		if (post_wait(c, i == NPKT - 1 ? IBV_WR_SEND_WITH_IMM :
						 IBV_WR_SEND,
			      c->m.send, (uint32_t)pkt_len(i), 0, 0, 0, 0,
			      0xfeed0000u + (uint32_t)i) != IBV_WC_SUCCESS)
			check(c, false, "SEND");
	}
	list_fill(c->m.list_a, 100);          /* data-out */
	*c->m.word = ATOMIC_INIT;
	memset(cmd, 0, sizeof(*cmd));
	cmd->magic = MAGIC;
	cmd->rkey = c->mr->rkey;
	for (int i = 0; i < NSG; i++) {
		cmd->dout[i] = (struct vdesc){
			(uint64_t)(uintptr_t)(c->m.list_a + i * PAGE +
					      sg_shape[i].offset),
			sg_shape[i].length, 0 };
		cmd->din[i] = (struct vdesc){
			(uint64_t)(uintptr_t)(c->m.list_b + i * PAGE +
					      sg_shape[i].offset),
			sg_shape[i].length, 0 };
	}
	cmd->atomic_addr = (uint64_t)(uintptr_t)c->m.word;
	if (post_wait(c, IBV_WR_SEND, cmd, sizeof(*cmd), 0, 0, 0, 0, 0) !=
	    IBV_WC_SUCCESS)
		check(c, false, "SRP_CMD");
	for (int n = 0; n < 3 && !(got_imm && got_rsp); n++) {
		struct ibv_wc wc = wait_wc(c);

		if (wc.status != IBV_WC_SUCCESS)
			break;
		if (wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
			got_imm = ntohl(wc.imm_data) == 0xd1d1d1d1u;
		} else if (wc.opcode == IBV_WC_RECV) {
			memcpy(&rsp, c->m.recv + wc.wr_id * PKT_MAX, sizeof(rsp));
			got_rsp = rsp.magic == MAGIC;
		}
		post_recv(c, wc.wr_id);
	}
	check(c, got_imm && got_rsp && !rsp.status, "data-in and response");
	printf("RESULT data_in %016" PRIx64 "\n", list_digest(c->m.list_b));
	h = fnv(FNV_INIT, c->m.word, 8);
	h = fnv(h, &rsp.cas_orig, 8);
	h = fnv(h, &rsp.fadd_orig, 8);
	printf("RESULT atomics %016" PRIx64 "\n", h);
	if (xfer(c->sock, &heard, 1, false) || heard != 'F')
		check(c, false, "final sync");
}

static void target(struct vctx *c)
{
	struct vcmd cmd;
	struct vrsp *rsp = (struct vrsp *)(void *)c->m.msg;
	uint64_t h = FNV_INIT;
	struct ibv_wc wc;
	bool ok = true;
	uint8_t f = 'F';

	for (int i = 0; i < NPKT; i++) {
		wc = wait_wc(c);
		if (wc.status != IBV_WC_SUCCESS || wc.byte_len != pkt_len(i)) {
			check(c, false, "IPoIB receive");
			return;
		}
		h = fnv(h, c->m.recv + wc.wr_id * PKT_MAX, wc.byte_len);
		post_recv(c, wc.wr_id);
	}
	printf("RESULT ipoib %016" PRIx64 "\n", h);
	wc = wait_wc(c);
	if (wc.status != IBV_WC_SUCCESS || wc.byte_len != sizeof(cmd)) {
		check(c, false, "SRP_CMD");
		return;
	}
	memcpy(&cmd, c->m.recv + wc.wr_id * PKT_MAX, sizeof(cmd));
	post_recv(c, wc.wr_id);
	list_fill(c->m.list_b, 300);          /* what we write (data-in) */
	for (int i = 0; i < NSG && ok; i++)
		ok = post_wait(c, IBV_WR_RDMA_READ,
			       c->m.list_a + i * PAGE + sg_shape[i].offset,
			       cmd.dout[i].len, cmd.dout[i].addr, cmd.rkey, 0,
			       0, 0) == IBV_WC_SUCCESS;
	for (int i = 0; i < NSG && ok; i++)
		ok = post_wait(c, i == NSG - 1 ? IBV_WR_RDMA_WRITE_WITH_IMM :
						 IBV_WR_RDMA_WRITE,
			       c->m.list_b + i * PAGE + sg_shape[i].offset,
			       cmd.din[i].len, cmd.din[i].addr, cmd.rkey, 0,
			       0, 0xd1d1d1d1u) == IBV_WC_SUCCESS;
	check(c, ok, "RDMA READ/WRITE lists");
	printf("RESULT data_out %016" PRIx64 "\n", list_digest(c->m.list_a));
	memset(rsp, 0, sizeof(*rsp));
	rsp->magic = MAGIC;
	ok = ok && post_wait(c, IBV_WR_ATOMIC_CMP_AND_SWP, &c->m.word[0], 8,
			     cmd.atomic_addr, cmd.rkey, ATOMIC_INIT, CAS_SWAP,
			     0) == IBV_WC_SUCCESS;
	ok = ok && post_wait(c, IBV_WR_ATOMIC_FETCH_AND_ADD, &c->m.word[1], 8,
			     cmd.atomic_addr, cmd.rkey, FADD_ADD, 0,
			     0) == IBV_WC_SUCCESS;
	check(c, ok, "atomics");
	rsp->cas_orig = c->m.word[0];
	rsp->fadd_orig = c->m.word[1];
	rsp->status = ok ? 0 : 1;
	if (post_wait(c, IBV_WR_SEND, rsp, sizeof(*rsp), 0, 0, 0, 0, 0) !=
	    IBV_WC_SUCCESS)
		check(c, false, "response");
	if (xfer(c->sock, &f, 1, true))
		check(c, false, "final sync");
}

int main(int argc, char **argv)
{
	const char *listen_port = NULL, *connect_to = NULL, *dev = NULL;
	struct vctx c = { .sock = -1 };
	int gid_index = 0;

	if (argc < 2)
		goto usage;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc)
			listen_port = argv[++i];
		else if (!strcmp(argv[i], "--connect") && i + 1 < argc)
			connect_to = argv[++i];
		else if (!strcmp(argv[i], "-d") && i + 1 < argc)
			dev = argv[++i];
		else if (!strcmp(argv[i], "-g") && i + 1 < argc)
			gid_index = atoi(argv[++i]);
		else
			goto usage;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A peer that gave up closes the bootstrap socket: fail, not die. */
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[1], "target") && listen_port) {
		c.role = "target";
		c.sock = tcp_listen_accept(atoi(listen_port));
	} else if (!strcmp(argv[1], "initiator") && connect_to) {
		c.role = "initiator";
		c.sock = tcp_connect(connect_to);
	} else {
		goto usage;
	}
	if (c.sock < 0 || open_dev(&c, dev) ||
	    connect_qp(&c, gid_index, *c.role == 'i')) {
		fprintf(stderr, "[verbs %s] setup failed: %s\n", c.role,
			strerror(errno));
		return 1;
	}
	for (uint64_t i = 0; i < RECV_SLOTS; i++)
		post_recv(&c, i);
	if (*c.role == 'i')
		initiator(&c);
	else
		target(&c);
	ibv_destroy_qp(c.qp);
	ibv_dereg_mr(c.mr);
	ibv_destroy_cq(c.cq);
	ibv_dealloc_pd(c.pd);
	ibv_close_device(c.ctx);
	free(c.base);
	return c.failures ? 1 : 0;

usage:
	fprintf(stderr, "usage: verbs_addr target --listen PORT [-d DEV] [-g N]\n"
			"       verbs_addr initiator --connect IP:PORT [-d DEV] [-g N]\n");
	return 2;
}
