// SPDX-License-Identifier: MIT
/*
 * event_stress: completion channels under load and at their edges.
 *
 *   empty     channels created and destroyed with no CQ; no descriptor
 *             leaks, stdin/stdout/stderr and cmd_fd/async_fd survive
 *   stress    8 CQs on one channel, 8 RC pairs, 4 threads that post and
 *             take events (non-blocking channel fd + poll) and re-arm;
 *             every message completes, every event is acked
 *   blocking  a thread blocked in ibv_get_cq_event is woken by traffic
 *   solicited ibv_req_notify_cq(cq, 1) ignores plain sends, fires on a
 *             SOLICITED one and on an error completion
 *   stale     a CQ destroyed with an unread event: the event is never
 *             handed out; the channel goes on serving the other CQs
 *   fork      a child inherits the channel and exits; the parent's events
 *             keep working; a child cannot create a channel on the
 *             parent's context (its control socket is the parent's)
 *   two-ctx   a channel of one context is refused for another's CQ
 *
 * Only public libibverbs calls; every wait is bounded.  Exit 0 = pass,
 * 1 = failure, 77 = no device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "vtest_common.h"

#define NCQ 8
#define NTHREADS 4
#define WINDOW 8
#define MSG 256
#define DEADLINE_MS 60000

static struct vt_dev dev;
static _Atomic int failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", \
				__FILE__, __LINE__, #cond, errno,            \
				strerror(errno));                            \
			failures++;                                          \
		}                                                            \
	} while (0)

static int count_fds(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* ------------------------------------------------------------------ */
/* A pair of RC QPs in this context, both completing on one CQ.        */

struct pair {
	struct ibv_cq *cq;
	struct vt_qp a, b;	/* a sends to b */
	struct ibv_mr *mr;
	char *buf;		/* [0, MSG): send, then recv slots */
	pthread_mutex_t lock;	/* serialises poll + re-arm of cq */
	_Atomic unsigned int sent, send_done, recv_done, events;
	unsigned int target;
	atomic_bool failed;
};

static int post_recv(struct pair *p)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)p->buf + MSG, .length = MSG,
		.lkey = p->mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = 2, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	return ibv_post_recv(p->b.qp, &wr, &bad);
}

static int post_send(struct pair *p, unsigned int flags)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)p->buf, .length = MSG, .lkey = p->mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED | flags,
	};
	struct ibv_send_wr *bad;

	return ibv_post_send(p->a.qp, &wr, &bad);
}

static struct ibv_qp *make_qp(struct ibv_cq *cq)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 64, .max_recv_wr = 64,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};

	return ibv_create_qp(dev.pd, &ia);
}

static int pair_init(struct pair *p, struct ibv_comp_channel *ch, int cqe)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->cq = ibv_create_cq(dev.ctx, cqe, p, ch, 0);
	if (!p->cq)
		return -1;
	p->buf = calloc(1, 2 * MSG);
	p->mr = p->buf ? ibv_reg_mr(dev.pd, p->buf, 2 * MSG,
				    IBV_ACCESS_LOCAL_WRITE) : NULL;
	p->a.qp = make_qp(p->cq);
	p->b.qp = make_qp(p->cq);
	if (!p->mr || !p->a.qp || !p->b.qp)
		return -1;
	p->a.type = p->b.type = IBV_QPT_RC;
	return vt_connect(&dev, &p->a, &p->b, NULL);
}

static void pair_fini(struct pair *p)
{
	if (p->a.qp)
		ibv_destroy_qp(p->a.qp);
	if (p->b.qp)
		ibv_destroy_qp(p->b.qp);
	if (p->mr)
		ibv_dereg_mr(p->mr);
	free(p->buf);
	if (p->cq)
		CHECK(ibv_destroy_cq(p->cq) == 0);
	pthread_mutex_destroy(&p->lock);
}

/* Poll everything on p->cq; re-post receives. */
static void pair_drain(struct pair *p)
{
	struct ibv_wc wc[16];
	int n, i;

	while ((n = ibv_poll_cq(p->cq, 16, wc)) > 0) {
		for (i = 0; i < n; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				fprintf(stderr, "completion error %s\n",
					ibv_wc_status_str(wc[i].status));
				p->failed = true;
				continue;
			}
			if (wc[i].opcode == IBV_WC_RECV) {
				p->recv_done++;
				if (post_recv(p))
					p->failed = true;
			} else {
				p->send_done++;
			}
		}
	}
	if (n < 0)
		p->failed = true;
}

/* One event taken from the channel: ack, re-arm, then poll (no lost
 * wake-up: a completion after the poll fires the new arming). */
static void handle_event(struct ibv_cq *cq, void *cq_ctx)
{
	struct pair *p = cq_ctx;

	if (!p || p->cq != cq) {
		fprintf(stderr, "event for an unknown CQ %p\n", (void *)cq);
		failures++;
		return;
	}
	p->events++;
	ibv_ack_cq_events(cq, 1);
	pthread_mutex_lock(&p->lock);
	if (ibv_req_notify_cq(cq, 0))
		p->failed = true;
	pair_drain(p);
	pthread_mutex_unlock(&p->lock);
}

/* ------------------------------------------------------------------ */

static void test_empty_channels(void)
{
	int before = count_fds(), i;
	bool std_open[3];

	for (i = 0; i < 3; i++)
		std_open[i] = fd_open(i);
	for (i = 0; i < 100; i++) {
		struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);

		CHECK(ch != NULL);
		if (!ch)
			return;
		CHECK(ch->fd > 2 && ch->fd != dev.ctx->cmd_fd &&
		      ch->fd != dev.ctx->async_fd && fd_open(ch->fd));
		CHECK(ibv_destroy_comp_channel(ch) == 0);
	}
	CHECK(count_fds() == before);
	for (i = 0; i < 3; i++)
		CHECK(!std_open[i] || fd_open(i));
	CHECK(fd_open(dev.ctx->cmd_fd) && fd_open(dev.ctx->async_fd));
}

struct stress {
	struct ibv_comp_channel *ch;
	struct pair pairs[NCQ];
	unsigned int per_pair;
	atomic_bool stop;
	uint64_t deadline;
};

static bool stress_done(struct stress *s)
{
	for (int i = 0; i < NCQ; i++)
		if (s->pairs[i].recv_done < s->per_pair ||
		    s->pairs[i].send_done < s->per_pair)
			return false;
	return true;
}

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	static _Atomic int next_id;
	int id = next_id++, i;
	struct pollfd pfd = { .fd = s->ch->fd, .events = POLLIN };

	while (!s->stop) {
		/* Post on this thread's pairs up to the window. */
		for (i = id; i < NCQ; i += NTHREADS) {
			struct pair *p = &s->pairs[i];

			while (p->sent < s->per_pair &&
			       p->sent - p->send_done < WINDOW) {
				/* Every fourth send is solicited: no effect
				 * on a CQ armed for any completion. */
				if (post_send(p, p->sent % 4 ? 0 :
						 IBV_SEND_SOLICITED)) {
					p->failed = true;
					break;
				}
				p->sent++;
			}
		}
		if (poll(&pfd, 1, 50) > 0) {
			struct ibv_cq *cq;
			void *ctx;

			/* Another thread may have taken it: EAGAIN. */
			if (ibv_get_cq_event(s->ch, &cq, &ctx) == 0)
				handle_event(cq, ctx);
			else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				fprintf(stderr, "ibv_get_cq_event: %s\n",
					strerror(errno));
				failures++;
				s->stop = true;
			}
		}
		if (stress_done(s) || vt_now_ms() > s->deadline)
			s->stop = true;
		for (i = 0; i < NCQ; i++)
			if (s->pairs[i].failed)
				s->stop = true;
	}
	return NULL;
}

static void test_stress(unsigned int per_pair)
{
	struct stress s = { .per_pair = per_pair };
	pthread_t th[NTHREADS];
	int i, j, before = count_fds();
	unsigned int events = 0;

	s.ch = ibv_create_comp_channel(dev.ctx);
	CHECK(s.ch != NULL);
	if (!s.ch)
		return;
	CHECK(fcntl(s.ch->fd, F_SETFL,
		    fcntl(s.ch->fd, F_GETFL) | O_NONBLOCK) == 0);
	for (i = 0; i < NCQ; i++) {
		CHECK(pair_init(&s.pairs[i], s.ch, 4 * WINDOW + 64) == 0);
		for (j = 0; j < 32; j++)
			CHECK(post_recv(&s.pairs[i]) == 0);
		CHECK(ibv_req_notify_cq(s.pairs[i].cq, 0) == 0);
	}
	if (failures)
		goto out;
	s.deadline = vt_now_ms() + DEADLINE_MS;
	for (i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&th[i], NULL, stress_thread, &s) == 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NCQ; i++) {
		struct pair *p = &s.pairs[i];

		CHECK(!p->failed);
		if (p->recv_done != per_pair || p->send_done != per_pair)
			fprintf(stderr, "pair %d: %u/%u sends, %u/%u receives completed\n",
				i, p->send_done, per_pair, p->recv_done, per_pair);
		CHECK(p->recv_done == per_pair && p->send_done == per_pair);
		CHECK(p->events > 0);
		events += p->events;
	}
	if (vt_verbose)
		fprintf(stderr, "stress: %u events for %u messages\n", events,
			NCQ * per_pair * 2);
out:
	for (i = 0; i < NCQ; i++)
		pair_fini(&s.pairs[i]);
	CHECK(ibv_destroy_comp_channel(s.ch) == 0);
	CHECK(count_fds() == before);
}

/* Wait (bounded) for the channel to become readable. */
static bool channel_ready(struct ibv_comp_channel *ch, int ms)
{
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

/* ibv_get_cq_event, but never blocking longer than VT_WAIT_MS. */
static bool get_event(struct ibv_comp_channel *ch, struct ibv_cq **cq,
		      void **ctx)
{
	*cq = NULL;
	*ctx = NULL;
	return channel_ready(ch, VT_WAIT_MS) &&
	       ibv_get_cq_event(ch, cq, ctx) == 0;
}

static bool wait_cqes(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	return vt_poll(cq, wc, n, VT_WAIT_MS) == n;
}

struct blocker {
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	int ret;
};

static void *block_thread(void *arg)
{
	struct blocker *b = arg;
	void *ctx;

	b->ret = ibv_get_cq_event(b->ch, &b->cq, &ctx);
	return NULL;
}

static void test_blocking(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);
	struct blocker b = { .ch = ch, .ret = -2 };
	struct ibv_wc wc[2];
	struct pair p;
	pthread_t th;

	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(pair_init(&p, ch, 16) == 0);
	CHECK(post_recv(&p) == 0);
	CHECK(ibv_req_notify_cq(p.cq, 0) == 0);
	CHECK(pthread_create(&th, NULL, block_thread, &b) == 0);
	usleep(100000);
	CHECK(b.ret == -2);	/* still blocked: nothing happened yet */
	CHECK(post_send(&p, 0) == 0);
	for (int i = 0; i < 100 && b.ret == -2; i++)
		usleep(50000);
	CHECK(b.ret == 0);
	if (b.ret == -2) {
		/* Unblock with a second arming and message before joining. */
		CHECK(ibv_req_notify_cq(p.cq, 0) == 0);
		CHECK(post_recv(&p) == 0);
		CHECK(post_send(&p, 0) == 0);
	}
	pthread_join(th, NULL);
	CHECK(b.cq == p.cq);
	if (b.ret == 0)
		ibv_ack_cq_events(p.cq, 1);
	CHECK(wait_cqes(p.cq, 2, wc));
	pair_fini(&p);
	CHECK(ibv_destroy_comp_channel(ch) == 0);
}

static void test_solicited(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);
	struct ibv_cq *cq;
	struct ibv_wc wc[2];
	struct pair p;
	void *ctx;

	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(pair_init(&p, ch, 16) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(post_recv(&p) == 0);
	/* Plain send on a solicited-only CQ: completions, no event. */
	CHECK(ibv_req_notify_cq(p.cq, 1) == 0);
	CHECK(post_send(&p, 0) == 0);
	CHECK(wait_cqes(p.cq, 2, wc));
	CHECK(!channel_ready(ch, 300));
	/* A solicited send fires it. */
	CHECK(post_send(&p, IBV_SEND_SOLICITED) == 0);
	CHECK(get_event(ch, &cq, &ctx) && cq == p.cq && ctx == &p);
	if (cq)
		ibv_ack_cq_events(cq, 1);
	CHECK(wait_cqes(p.cq, 2, wc));
	/* Disarmed after firing: the next solicited send is quiet. */
	CHECK(post_send(&p, IBV_SEND_SOLICITED) == 0);
	CHECK(wait_cqes(p.cq, 2, wc));
	CHECK(!channel_ready(ch, 300));
	/* An error completion fires a solicited-only arming: a receive
	 * flushed by moving the QP to the error state. */
	CHECK(ibv_req_notify_cq(p.cq, 1) == 0);
	{
		struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

		CHECK(ibv_modify_qp(p.b.qp, &a, IBV_QP_STATE) == 0);
	}
	CHECK(get_event(ch, &cq, &ctx) && cq == p.cq);
	if (cq)
		ibv_ack_cq_events(cq, 1);
	CHECK(vt_poll(p.cq, wc, 1, VT_WAIT_MS) == 1 &&
	      wc[0].status == IBV_WC_WR_FLUSH_ERR);
	pair_fini(&p);
	CHECK(ibv_destroy_comp_channel(ch) == 0);
}

static void test_stale_event(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);
	struct pair gone, live;
	struct ibv_wc wc[2];
	struct ibv_cq *cq;
	void *ctx;

	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(pair_init(&gone, ch, 16) == 0);
	CHECK(pair_init(&live, ch, 16) == 0);
	CHECK(post_recv(&gone) == 0 && post_recv(&live) == 0);
	CHECK(ibv_req_notify_cq(gone.cq, 0) == 0);
	CHECK(post_send(&gone, 0) == 0);
	CHECK(wait_cqes(gone.cq, 2, wc));
	CHECK(channel_ready(ch, VT_WAIT_MS));
	/* Destroy with the event unread: it must never come out. */
	pair_fini(&gone);
	CHECK(ibv_req_notify_cq(live.cq, 0) == 0);
	CHECK(post_send(&live, 0) == 0);
	CHECK(wait_cqes(live.cq, 2, wc));
	CHECK(get_event(ch, &cq, &ctx));
	CHECK(cq == live.cq && ctx == &live);
	if (cq == live.cq)
		ibv_ack_cq_events(live.cq, 1);
	pair_fini(&live);
	CHECK(ibv_destroy_comp_channel(ch) == 0);
}

/* ibv_create_cq_ex with a channel: the same event path. */
static void test_cq_ex(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);
	struct ibv_cq_init_attr_ex ia = {
		.cqe = 16, .channel = ch, .wc_flags = IBV_WC_STANDARD_FLAGS,
	};
	struct ibv_cq_ex *cqx;
	struct ibv_cq *cq = NULL, *got;
	struct ibv_wc wc[2];
	struct pair p;
	void *ctx;

	CHECK(ch != NULL);
	if (!ch)
		return;
	ia.cq_context = &p;
	cqx = ibv_create_cq_ex(dev.ctx, &ia);
	CHECK(cqx != NULL);
	if (cqx) {
		cq = ibv_cq_ex_to_cq(cqx);
		memset(&p, 0, sizeof(p));
		pthread_mutex_init(&p.lock, NULL);
		p.cq = cq;
		p.buf = calloc(1, 2 * MSG);
		p.mr = ibv_reg_mr(dev.pd, p.buf, 2 * MSG,
				  IBV_ACCESS_LOCAL_WRITE);
		p.a.qp = make_qp(cq);
		p.b.qp = make_qp(cq);
		p.a.type = p.b.type = IBV_QPT_RC;
		CHECK(p.mr && p.a.qp && p.b.qp &&
		      vt_connect(&dev, &p.a, &p.b, NULL) == 0);
		CHECK(post_recv(&p) == 0);
		CHECK(ibv_req_notify_cq(cq, 0) == 0);
		CHECK(post_send(&p, 0) == 0);
		CHECK(get_event(ch, &got, &ctx) && got == cq && ctx == &p);
		if (got)
			ibv_ack_cq_events(got, 1);
		CHECK(wait_cqes(cq, 2, wc));
		pair_fini(&p);	/* destroys cq too */
	}
	CHECK(ibv_destroy_comp_channel(ch) == 0);
}

/*
 * More pending events than the channel socket holds (a few hundred 8-byte
 * records): the daemon queues the rest and sends them as the reader
 * drains; every CQ's event arrives exactly once.  Each CQ gets one
 * completion by flushing a receive (QP moved to the error state).
 */
#define MANY 512
static void test_many_pending(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);
	static struct ibv_cq *cqs[MANY];
	static struct ibv_qp *qps[MANY];
	static unsigned char seen[MANY];
	static char buf[64];	/* not on the stack: see the arena notes */
	struct ibv_mr *mr;
	struct ibv_wc wc;
	int i, n = 0, events = 0;

	CHECK(ch != NULL);
	mr = ibv_reg_mr(dev.pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	CHECK(mr != NULL);
	if (!ch || !mr)
		goto out;
	memset(seen, 0, sizeof(seen));
	for (n = 0; n < MANY; n++) {
		struct ibv_sge sge = { (uintptr_t)buf, sizeof(buf), mr->lkey };
		struct ibv_recv_wr wr = { .wr_id = (uint64_t)n, .sg_list = &sge,
					  .num_sge = 1 }, *bad;
		struct vt_qp q = { .type = IBV_QPT_RC };

		cqs[n] = ibv_create_cq(dev.ctx, 2, (void *)(uintptr_t)n, ch, 0);
		qps[n] = cqs[n] ? make_qp(cqs[n]) : NULL;
		if (!qps[n]) {
			CHECK(qps[n] != NULL);
			if (cqs[n])
				ibv_destroy_cq(cqs[n]);
			break;
		}
		q.qp = qps[n];
		CHECK(vt_qp_to_init(&dev, &q, IBV_ACCESS_LOCAL_WRITE) == 0);
		CHECK(ibv_post_recv(qps[n], &wr, &bad) == 0);
		CHECK(ibv_req_notify_cq(cqs[n], 0) == 0);
	}
	for (i = 0; i < n; i++) {
		struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

		CHECK(ibv_modify_qp(qps[i], &a, IBV_QP_STATE) == 0);
	}
	while (events < n) {
		struct ibv_cq *cq;
		void *ctx;

		if (!get_event(ch, &cq, &ctx))
			break;
		i = (int)(uintptr_t)ctx;
		CHECK(i >= 0 && i < n && cqs[i] == cq && !seen[i]);
		if (i >= 0 && i < n)
			seen[i] = 1;
		ibv_ack_cq_events(cq, 1);
		events++;
	}
	CHECK(events == n);
	CHECK(!channel_ready(ch, 100));
	for (i = 0; i < n; i++) {
		CHECK(vt_poll(cqs[i], &wc, 1, VT_WAIT_MS) == 1 &&
		      wc.status == IBV_WC_WR_FLUSH_ERR);
		ibv_destroy_qp(qps[i]);
		CHECK(ibv_destroy_cq(cqs[i]) == 0);
	}
out:
	if (mr)
		ibv_dereg_mr(mr);
	if (ch)
		CHECK(ibv_destroy_comp_channel(ch) == 0);
}

static void test_fork(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(dev.ctx);
	struct ibv_wc wc[2];
	struct ibv_cq *cq;
	struct pair p;
	void *ctx;
	pid_t pid;
	int st = -1;

	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(pair_init(&p, ch, 16) == 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* The parent's context is not usable here: refused cleanly. */
		struct ibv_comp_channel *c2 = ibv_create_comp_channel(dev.ctx);

		_exit(c2 == NULL && errno == EINVAL ? 0 : 3);
	}
	CHECK(pid > 0);
	if (pid > 0) {
		for (int i = 0; i < 200; i++) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			usleep(50000);
		}
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* The child's copy of the channel closed: ours still works. */
	CHECK(post_recv(&p) == 0);
	CHECK(ibv_req_notify_cq(p.cq, 0) == 0);
	CHECK(post_send(&p, 0) == 0);
	CHECK(get_event(ch, &cq, &ctx) && cq == p.cq);
	if (cq)
		ibv_ack_cq_events(cq, 1);
	CHECK(wait_cqes(p.cq, 2, wc));
	pair_fini(&p);
	CHECK(ibv_destroy_comp_channel(ch) == 0);
}

static void test_two_contexts(void)
{
	struct ibv_context *other = ibv_open_device(dev.ctx->device);
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;

	CHECK(other != NULL);
	if (!other)
		return;
	ch = ibv_create_comp_channel(other);
	CHECK(ch != NULL);
	if (ch) {
		errno = 0;
		cq = ibv_create_cq(dev.ctx, 4, NULL, ch, 0);
		CHECK(cq == NULL && errno == EINVAL);
		if (cq)
			ibv_destroy_cq(cq);
		cq = ibv_create_cq(other, 4, NULL, ch, 0);
		CHECK(cq != NULL);
		if (cq)
			CHECK(ibv_destroy_cq(cq) == 0);
		CHECK(ibv_destroy_comp_channel(ch) == 0);
	}
	CHECK(ibv_close_device(other) == 0);
}

/* A channel the provider never made (a pipe, a closed or absurd fd) is
 * refused for a CQ, and the descriptor is left alone. */
static void test_foreign_channel(void)
{
	struct ibv_comp_channel fake = { .context = dev.ctx };
	int pfd[2], bad[] = { -1, 9999 };
	struct ibv_cq *cq;

	CHECK(pipe(pfd) == 0);
	fake.fd = pfd[0];
	errno = 0;
	cq = ibv_create_cq(dev.ctx, 4, NULL, &fake, 0);
	CHECK(cq == NULL && errno == EINVAL);
	CHECK(fd_open(pfd[0]) && fd_open(pfd[1]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fake.fd = bad[i];
		errno = 0;
		cq = ibv_create_cq(dev.ctx, 4, NULL, &fake, 0);
		CHECK(cq == NULL && errno == EINVAL);
	}
	close(pfd[0]);
	close(pfd[1]);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "empty", test_empty_channels },
	{ "blocking", test_blocking },
	{ "solicited", test_solicited },
	{ "stale", test_stale_event },
	{ "cq_ex", test_cq_ex },
	{ "many", test_many_pending },
	{ "fork", test_fork },
	{ "two-ctx", test_two_contexts },
	{ "foreign", test_foreign_channel },
};

int main(int argc, char **argv)
{
	const char *devname = NULL;
	unsigned int per_pair = 2000;
	int gid = -1, c;

	while ((c = getopt(argc, argv, "d:g:n:v")) != -1) {
		switch (c) {
		case 'd': devname = optarg; break;
		case 'g': gid = atoi(optarg); break;
		case 'n': per_pair = (unsigned int)atoi(optarg); break;
		case 'v': vt_verbose = 1; break;
		default:
			fprintf(stderr, "usage: %s [-d dev] [-g gid] [-n msgs per CQ] [-v]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (vt_open(&dev, devname, gid))
		return 77;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int f = failures;

		cases[i].fn();
		printf("%s %s\n", failures == f ? "ok  " : "FAIL", cases[i].name);
	}
	{
		int f = failures;

		test_stress(per_pair);
		printf("%s stress (%d CQs, %d threads, %u messages per CQ)\n",
		       failures == f ? "ok  " : "FAIL", NCQ, NTHREADS, per_pair);
	}
	/* (No global descriptor count: the provider keeps its memory arena
	 * memfd from the first registration on; each case counts its own.) */
	vt_close(&dev);
	printf("%s\n", failures ? "FAILED" : "PASSED");
	return failures ? 1 : 0;
}
