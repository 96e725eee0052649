// SPDX-License-Identifier: MIT
/*
 * Provider smoke test against a running daemon (SYSFS_PATH, RDMAV_DRIVERS
 * and LD_LIBRARY_PATH set by the caller; exits 77 = skipped without a
 * device).  Checks the control verbs, the validation post_send/post_recv
 * do before touching a ring, that completion channels are clean, and
 * with --data an RC SEND and RDMA WRITE between two QPs of one context.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

static int failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d)\n", \
				__FILE__, __LINE__, #cond, errno);           \
			failures++;                                          \
		}                                                            \
	} while (0)

static int count_fds(void)
{
	int fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/*
 * A channel is a fresh descriptor (tests/events has the event-mode tests);
 * where channels are unavailable (IPATHD_NO_CHANNELS, or a daemon without
 * them) creation fails with EINVAL.  Never a garbage or foreign fd.
 */
static void test_comp_channel(struct ibv_context *ctx)
{
	struct ibv_comp_channel *ch;
	int before = count_fds();

	errno = 0;
	ch = ibv_create_comp_channel(ctx);
	if (getenv("IPATHD_NO_CHANNELS"))
		CHECK(ch == NULL);
	if (ch) {
		CHECK(ch->fd > 2 && ch->fd != ctx->cmd_fd &&
		      ch->fd != ctx->async_fd && fcntl(ch->fd, F_GETFD) >= 0);
		CHECK(count_fds() == before + 1);
		CHECK(ibv_destroy_comp_channel(ch) == 0);
	} else {
		CHECK(errno == EINVAL);
	}
	CHECK(count_fds() == before);
	CHECK(fcntl(ctx->cmd_fd, F_GETFD) >= 0);
	CHECK(fcntl(ctx->async_fd, F_GETFD) >= 0);
}

static struct ibv_qp *make_qp(struct ibv_pd *pd, struct ibv_cq *cq,
			      enum ibv_qp_type type)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = type,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16,
			 .max_send_sge = 2, .max_recv_sge = 2,
			 .max_inline_data = 64 },
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);

	CHECK(qp != NULL);
	if (qp) {
		CHECK(qp->state == IBV_QPS_RESET);
		CHECK(ia.cap.max_send_wr >= 16 && ia.cap.max_send_sge >= 2);
	}
	return qp;
}

static int to_init(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE |
				   IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ |
				   IBV_ACCESS_REMOTE_ATOMIC,
	};

	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				     IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
}

/* Work requests hardware would refuse are refused before the ring. */
static void test_post_checks(struct ibv_qp *qp, struct ibv_mr *mr)
{
	struct ibv_sge sge[4] = { { (uintptr_t)mr->addr, 16, mr->lkey } };
	struct ibv_send_wr wr = { .wr_id = 1, .sg_list = sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND }, *bad = NULL;
	struct ibv_recv_wr rwr = { .wr_id = 2, .sg_list = sge, .num_sge = 1 },
			   *rbad = NULL;

	/* RESET: neither queue accepts work. */
	CHECK(ibv_post_send(qp, &wr, &bad) == EINVAL && bad == &wr);
	CHECK(ibv_post_recv(qp, &rwr, &rbad) == EINVAL && rbad == &rwr);
	CHECK(to_init(qp) == 0);
	CHECK(qp->state == IBV_QPS_INIT);
	/* INIT: receives yes, sends no. */
	CHECK(ibv_post_recv(qp, &rwr, &rbad) == 0);
	bad = NULL;
	CHECK(ibv_post_send(qp, &wr, &bad) == EINVAL && bad == &wr);
	rwr.num_sge = 4;
	rbad = NULL;
	CHECK(ibv_post_recv(qp, &rwr, &rbad) == EINVAL && rbad == &rwr);
}

static void test_query_qp(struct ibv_qp *qp)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	CHECK(ibv_query_qp(qp, &a, IBV_QP_STATE | IBV_QP_CAP, &ia) == 0);
	CHECK(a.qp_state == IBV_QPS_INIT);
	CHECK(ia.qp_type == IBV_QPT_RC);
	CHECK(ia.cap.max_send_sge >= 2);
}

static void test_illegal_modify(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_RTS };

	/* INIT -> RTS is not a transition (IBA 10.3.1). */
	CHECK(ibv_modify_qp(qp, &a, IBV_QP_STATE) == EINVAL);
	CHECK(qp->state == IBV_QPS_INIT);
}

static void test_srq(struct ibv_pd *pd, struct ibv_mr *mr)
{
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = 8, .max_sge = 1 } };
	struct ibv_sge sge = { (uintptr_t)mr->addr, 16, mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = 3, .sg_list = &sge, .num_sge = 1 },
			   *bad;
	struct ibv_srq_attr q;
	struct ibv_srq *srq = ibv_create_srq(pd, &sa);

	CHECK(srq != NULL);
	if (!srq)
		return;
	CHECK(ibv_post_srq_recv(srq, &wr, &bad) == 0);
	CHECK(ibv_query_srq(srq, &q) == 0 && q.max_wr >= 8);
	CHECK(ibv_destroy_srq(srq) == 0);
}

static void test_cq_ex(struct ibv_context *ctx)
{
	struct ibv_cq_init_attr_ex ca = {
		.cqe = 16,
		.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_QP_NUM,
	};
	struct ibv_poll_cq_attr pa = { 0 };
	struct ibv_cq_ex *cq = ibv_create_cq_ex(ctx, &ca);

	CHECK(cq != NULL);
	if (!cq)
		return;
	CHECK(ibv_start_poll(cq, &pa) == ENOENT);
	CHECK(ibv_req_notify_cq(ibv_cq_ex_to_cq(cq), 0) == 0);
	CHECK(ibv_resize_cq(ibv_cq_ex_to_cq(cq), 64) == 0 ||
	      errno == EOPNOTSUPP);
	CHECK(ibv_destroy_cq(ibv_cq_ex_to_cq(cq)) == 0);
	ca.wc_flags = IBV_WC_EX_WITH_COMPLETION_TIMESTAMP;
	errno = 0;
	CHECK(ibv_create_cq_ex(ctx, &ca) == NULL && errno == EOPNOTSUPP);
}

struct thread_arg {
	struct ibv_pd *pd;
	char *mem;
	int id, errors;
};

/* Control requests from many threads share one socket; MRs share pages. */
static void *thread_body(void *p)
{
	struct thread_arg *t = p;
	int i;

	for (i = 0; i < 50; i++) {
		char *at = t->mem + t->id * 1000 + i;
		struct ibv_mr *mr = ibv_reg_mr(t->pd, at, 3000,
					       IBV_ACCESS_LOCAL_WRITE);
		struct ibv_cq *cq = ibv_create_cq(t->pd->context, 4, NULL,
						  NULL, 0);

		if (!mr || !cq)
			t->errors++;
		if (mr && ibv_dereg_mr(mr))
			t->errors++;
		if (cq && ibv_destroy_cq(cq))
			t->errors++;
	}
	return NULL;
}

static void test_threads(struct ibv_pd *pd)
{
	struct thread_arg t[4];
	pthread_t th[4];
	char *mem;
	int i;

	if (posix_memalign((void **)&mem, 4096, 16384))
		return;
	for (i = 0; i < 16384; i++)
		mem[i] = (char)i;
	for (i = 0; i < 4; i++) {
		t[i] = (struct thread_arg){ .pd = pd, .mem = mem, .id = i };
		CHECK(pthread_create(&th[i], NULL, thread_body, &t[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(t[i].errors == 0);
	}
	for (i = 0; i < 16384; i++)
		if (mem[i] != (char)i)
			break;
	CHECK(i == 16384);
	free(mem);
}

static int gid_index(struct ibv_context *ctx)
{
	union ibv_gid gid;
	int i;

	/* Prefer an IPv4-mapped GID, as perftest does. */
	for (i = 1; i < 16; i++)
		if (!ibv_query_gid(ctx, 1, i, &gid) &&
		    gid.raw[10] == 0xff && gid.raw[11] == 0xff)
			return i;
	return 0;
}

static int connect_qp(struct ibv_qp *qp, uint32_t dqpn, union ibv_gid *gid,
		      int sgid)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024,
		.dest_qp_num = dqpn, .rq_psn = 100, .max_dest_rd_atomic = 1,
		.min_rnr_timer = 1,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = *gid, .sgid_index = (uint8_t)sgid,
				      .hop_limit = 1 } },
	};
	int err = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV |
				IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				IBV_QP_MIN_RNR_TIMER);

	if (err)
		return err;
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = 100;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN |
			     IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			     IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC);
}

static int poll_one(struct ibv_cq *cq, struct ibv_wc *wc)
{
	struct timespec t0, t;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		n = ibv_poll_cq(cq, 1, wc);
		if (n)
			return n;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 5);
	return 0;
}

/* The async event pipe delivers records ibv_get_async_event decodes. */
static void test_async(struct ibv_context *ctx, struct ibv_qp *qp)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;

	CHECK(poll(&p, 1, 5000) == 1);
	if (!(p.revents & POLLIN))
		return;
	CHECK(ibv_get_async_event(ctx, &ev) == 0);
	CHECK(ev.element.qp == qp);
	CHECK(ev.event_type == IBV_EVENT_QP_ACCESS_ERR ||
	      ev.event_type == IBV_EVENT_QP_FATAL);
	ibv_ack_async_event(&ev);
}

/* SEND and RDMA WRITE between two RC QPs of this context (loopback). */
static void test_data(struct ibv_context *ctx, struct ibv_pd *pd,
		      struct ibv_cq *cq, struct ibv_mr *mr)
{
	struct ibv_qp *a = make_qp(pd, cq, IBV_QPT_RC);
	struct ibv_qp *b = make_qp(pd, cq, IBV_QPT_RC);
	char *buf = mr->addr;
	int sgid = gid_index(ctx);
	union ibv_gid gid;
	struct ibv_sge ss = { (uintptr_t)buf, 32, mr->lkey };
	struct ibv_sge rs = { (uintptr_t)buf + 256, 64, mr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 20, .sg_list = &rs, .num_sge = 1 },
			   *rbad;
	struct ibv_send_wr wr = { .wr_id = 10, .sg_list = &ss, .num_sge = 1,
				  .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	struct ibv_wc wc;
	int got_send = 0, got_recv = 0, i;

	if (!a || !b)
		return;
	CHECK(ibv_query_gid(ctx, 1, sgid, &gid) == 0);
	CHECK(to_init(a) == 0 && to_init(b) == 0);
	CHECK(connect_qp(a, b->qp_num, &gid, sgid) == 0);
	CHECK(connect_qp(b, a->qp_num, &gid, sgid) == 0);
	strcpy(buf, "hello through ipathd");
	CHECK(ibv_post_recv(b, &rwr, &rbad) == 0);
	CHECK(ibv_post_send(a, &wr, &bad) == 0);
	for (i = 0; i < 2 && poll_one(cq, &wc); i++) {
		CHECK(wc.status == IBV_WC_SUCCESS);
		if (wc.wr_id == 10)
			got_send = wc.opcode == IBV_WC_SEND;
		if (wc.wr_id == 20)
			got_recv = wc.opcode == IBV_WC_RECV &&
				   wc.byte_len == 32 && wc.qp_num == b->qp_num;
	}
	CHECK(got_send && got_recv);
	CHECK(strcmp(buf + 256, "hello through ipathd") == 0);

	/* Inline SEND from unregistered memory. */
	{
		char msg[] = "inline!";
		struct ibv_sge is = { (uintptr_t)msg, sizeof(msg), 0 };
		struct ibv_send_wr iw = { .wr_id = 12, .sg_list = &is,
					  .num_sge = 1, .opcode = IBV_WR_SEND,
					  .send_flags = IBV_SEND_SIGNALED |
							IBV_SEND_INLINE };

		rwr.wr_id = 21;
		CHECK(ibv_post_recv(b, &rwr, &rbad) == 0);
		CHECK(ibv_post_send(a, &iw, &bad) == 0);
		for (i = 0; i < 2 && poll_one(cq, &wc); i++)
			CHECK(wc.status == IBV_WC_SUCCESS);
		CHECK(i == 2);
		CHECK(strcmp(buf + 256, "inline!") == 0);
		is.length = 4096;	/* over max_inline_data */
		CHECK(ibv_post_send(a, &iw, &bad) == EINVAL && bad == &iw);
	}

	/* RDMA WRITE: the target makes no verbs call; the daemon writes. */
	wr.opcode = IBV_WR_RDMA_WRITE;
	wr.wr_id = 11;
	wr.wr.rdma.remote_addr = (uintptr_t)buf + 1024;
	wr.wr.rdma.rkey = mr->rkey;
	strcpy(buf, "written remotely");
	CHECK(ibv_post_send(a, &wr, &bad) == 0);
	CHECK(poll_one(cq, &wc) == 1 && wc.status == IBV_WC_SUCCESS &&
	      wc.wr_id == 11);
	CHECK(strcmp(buf + 1024, "written remotely") == 0);

	/* A bad rkey: completion error here, async event for the target. */
	wr.wr_id = 13;
	wr.wr.rdma.rkey = mr->rkey ^ 0x80;
	CHECK(ibv_post_send(a, &wr, &bad) == 0);
	CHECK(poll_one(cq, &wc) == 1 && wc.wr_id == 13 &&
	      wc.status == IBV_WC_REM_ACCESS_ERR);
	test_async(ctx, b);
	CHECK(ibv_destroy_qp(a) == 0);
	CHECK(ibv_destroy_qp(b) == 0);
}

int main(int argc, char **argv)
{
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	struct ibv_qp *qp;
	char *mem;
	int n;

	list = ibv_get_device_list(&n);
	if (!list || !n) {
		fprintf(stderr, "test_verbs: no device, skipped\n");
		return 77;
	}
	ctx = ibv_open_device(list[0]);
	CHECK(ctx != NULL);
	if (!ctx)
		return 1;
	test_comp_channel(ctx);
	pd = ibv_alloc_pd(ctx);
	CHECK(pd != NULL);
	if (posix_memalign((void **)&mem, 4096, 1 << 16))
		return 1;
	memset(mem, 0, 1 << 16);
	/* Unaligned on purpose. */
	mr = ibv_reg_mr(pd, mem + 100, 8192,
			IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			IBV_ACCESS_REMOTE_READ);
	CHECK(mr != NULL);
	cq = ibv_create_cq(ctx, 32, NULL, NULL, 0);
	CHECK(cq != NULL);
	if (!pd || !mr || !cq)
		return 1;
	qp = make_qp(pd, cq, IBV_QPT_RC);
	if (qp) {
		test_post_checks(qp, mr);
		test_query_qp(qp);
		test_illegal_modify(qp);
		CHECK(ibv_destroy_qp(qp) == 0);
	}
	test_srq(pd, mr);
	test_cq_ex(ctx);
	test_threads(pd);
	if (argc > 1 && !strcmp(argv[1], "--data"))
		test_data(ctx, pd, cq, mr);
	CHECK(ibv_destroy_cq(cq) == 0);
	CHECK(ibv_dereg_mr(mr) == 0);
	CHECK(ibv_dealloc_pd(pd) == 0);
	CHECK(ibv_close_device(ctx) == 0);
	ibv_free_device_list(list);
	free(mem);
	if (failures) {
		fprintf(stderr, "test_verbs: %d failures\n", failures);
		return 1;
	}
	printf("test_verbs: ok\n");
	return 0;
}
