// SPDX-License-Identifier: MIT
/*
 * daemon_kill - what an application sees when the device dies under load
 * (docs/design.md "Daemon failure"; tests/integration/daemon-kill.sh kills
 * the daemon while this runs).
 *
 * Two RC QPs on one device, connected to each other.  QP a keeps a window
 * of signaled RDMA WRITEs and SENDs in flight to QP b, which keeps
 * receives posted; a also has receives posted that nothing consumes.
 * Once enough work completed, "RUNNING" goes to stdout: the script kills
 * the daemon then.  The program must then, by itself and within a bound:
 *   - get IBV_EVENT_DEVICE_FATAL from ibv_get_async_event;
 *   - see every posted wr_id complete exactly once, success or
 *     IBV_WC_WR_FLUSH_ERR, and no success after a flush on the same queue;
 *   - see work posted after the failure flushed, not refused;
 *   - get an error, not a hang, from control verbs;
 *   - destroy everything successfully.
 * usage: daemon_kill [-d DEV] [-g GID_INDEX] [-e] [-w WINDOW] [-t SECONDS]
 *   -e  wait for completions on a completion channel instead of polling
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtest_common.h"

#define MAX_WR	   (1u << 22) /* wr_ids tracked per queue */
#define MSG_SIZE   4096u
#define RUN_AFTER  2000u /* successes before "RUNNING" */
#define LATE_POSTS 4u	 /* sends posted after DEVICE_FATAL */

enum { WR_POSTED = 1, WR_OK, WR_FLUSHED };

/* One work queue as the application tracks it. */
struct wq {
	const char *name;
	uint8_t *state; /* per wr_id */
	uint32_t posted, ok, flushed;
	bool saw_flush;
};

static struct {
	struct vt_dev d;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq[4]; /* a send, a recv, b send, b recv */
	struct vt_qp a, b;
	struct ibv_mr *mr;
	uint8_t *buf;
	struct wq sq_a, rq_a, rq_b;
	bool fatal, failed;
	unsigned int window;
} t;

static void fail(const char *fmt, const char *what, unsigned long v)
{
	fprintf(stderr, "FAIL: ");
	fprintf(stderr, fmt, what, v);
	fputc('\n', stderr);
	t.failed = true;
}

static int wq_init(struct wq *q, const char *name)
{
	q->name = name;
	q->state = calloc(MAX_WR, 1);
	return q->state ? 0 : -1;
}

static uint32_t wq_outstanding(const struct wq *q)
{
	return q->posted - q->ok - q->flushed;
}

static void wq_complete(struct wq *q, const struct ibv_wc *wc)
{
	uint8_t *s;

	if (wc->wr_id >= q->posted) {
		fail("%s: completion for wr_id %lu never posted", q->name,
		     (unsigned long)wc->wr_id);
		return;
	}
	s = &q->state[wc->wr_id];
	if (*s != WR_POSTED) {
		fail("%s: wr_id %lu completed twice", q->name,
		     (unsigned long)wc->wr_id);
		return;
	}
	if (wc->status == IBV_WC_SUCCESS) {
		if (q->saw_flush)
			fail("%s: success (wr_id %lu) after a flush", q->name,
			     (unsigned long)wc->wr_id);
		*s = WR_OK;
		q->ok++;
	} else if (wc->status == IBV_WC_WR_FLUSH_ERR) {
		*s = WR_FLUSHED;
		q->saw_flush = true;
		q->flushed++;
	} else {
		fprintf(stderr, "%s: wr_id %lu: %s\n", q->name,
			(unsigned long)wc->wr_id,
			ibv_wc_status_str(wc->status));
		fail("%s: unexpected status (wr_id %lu)", q->name,
		     (unsigned long)wc->wr_id);
		*s = WR_FLUSHED;
		q->saw_flush = true;
		q->flushed++;
	}
}

static int post_send(void)
{
	struct ibv_sge sge = {.addr = (uintptr_t)t.buf, .lkey = t.mr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge,
				 .num_sge = 1,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;
	uint32_t id = t.sq_a.posted;
	int err;

	if (id >= MAX_WR)
		return 0;
	wr.wr_id = id;
	if (id % 2) {
		wr.opcode = IBV_WR_SEND;
		sge.length = MSG_SIZE / 4;
	} else {
		wr.opcode = IBV_WR_RDMA_WRITE;
		sge.length = MSG_SIZE;
		wr.wr.rdma.remote_addr = (uintptr_t)t.buf + 2 * MSG_SIZE;
		wr.wr.rdma.rkey = t.mr->rkey;
	}
	err = ibv_post_send(t.a.qp, &wr, &bad);
	if (err) {
		fail("%s: ibv_post_send: error %lu", "a", (unsigned long)err);
		return -1;
	}
	t.sq_a.state[id] = WR_POSTED;
	t.sq_a.posted++;
	return 0;
}

static int post_recv(struct vt_qp *q, struct wq *w, uint64_t off)
{
	struct ibv_sge sge = {.addr = (uintptr_t)t.buf + off,
			      .length = MSG_SIZE,
			      .lkey = t.mr->lkey};
	struct ibv_recv_wr wr = {.sg_list = &sge, .num_sge = 1}, *bad;
	int err;

	if (w->posted >= MAX_WR)
		return 0;
	wr.wr_id = w->posted;
	err = ibv_post_recv(q->qp, &wr, &bad);
	if (err) {
		fail("%s: ibv_post_recv: error %lu", w->name,
		     (unsigned long)err);
		return -1;
	}
	w->state[w->posted++] = WR_POSTED;
	return 0;
}

/* Drain one CQ into q; returns completions seen. */
static int drain(struct ibv_cq *cq, struct wq *q)
{
	struct ibv_wc wc[32];
	int n, i, total = 0;

	do {
		n = ibv_poll_cq(cq, 32, wc);
		if (n < 0) {
			fail("%s: ibv_poll_cq failed (%lu)", q ? q->name : "?",
			     0);
			return total;
		}
		for (i = 0; i < n; i++) {
			if (!q) {
				fail("%s: completion on an idle CQ (wr_id %lu)",
				     "b send", (unsigned long)wc[i].wr_id);
				continue;
			}
			wq_complete(q, &wc[i]);
			/* b keeps its receive queue full while alive. */
			if (q == &t.rq_b && wc[i].status == IBV_WC_SUCCESS &&
			    !t.fatal)
				post_recv(&t.b, &t.rq_b, MSG_SIZE);
		}
		total += n;
	} while (n == 32);
	return total;
}

static void check_async(void)
{
	struct ibv_async_event ev;

	while (!ibv_get_async_event(t.d.ctx, &ev)) {
		fprintf(stderr, "async event: %s\n",
			ibv_event_type_str(ev.event_type));
		if (ev.event_type == IBV_EVENT_DEVICE_FATAL) {
			fprintf(stderr, "IBV_EVENT_DEVICE_FATAL received\n");
			t.fatal = true;
		}
		ibv_ack_async_event(&ev);
	}
}

static uint32_t outstanding(void)
{
	return wq_outstanding(&t.sq_a) + wq_outstanding(&t.rq_a) +
	       wq_outstanding(&t.rq_b);
}

/* Completion channel: arm all, re-poll, then block for one event. */
static int wait_event(void)
{
	struct ibv_cq *cq;
	void *cq_ctx;
	int i, n = 0;

	for (i = 0; i < 4; i++)
		ibv_req_notify_cq(t.cq[i], 0);
	n += drain(t.cq[0], &t.sq_a) + drain(t.cq[1], &t.rq_a) +
	     drain(t.cq[3], &t.rq_b);
	if (n)
		return n;
	if (ibv_get_cq_event(t.ch, &cq, &cq_ctx)) {
		/* The dead device woke us with nothing left to poll. */
		fprintf(stderr, "ibv_get_cq_event: no event (device gone)\n");
		return 0;
	}
	ibv_ack_cq_events(cq, 1);
	return 0;
}

static int run(unsigned int seconds)
{
	uint64_t deadline = vt_now_ms() + seconds * 1000ull;
	unsigned int late = 0;
	bool said = false;
	int n;

	while (!t.fatal || outstanding() || late < LATE_POSTS) {
		if (vt_now_ms() > deadline) {
			fprintf(stderr,
				"FAIL: still waiting after %u s: fatal %d, "
				"outstanding sq %u rq_a %u rq_b %u\n",
				seconds, t.fatal, wq_outstanding(&t.sq_a),
				wq_outstanding(&t.rq_a),
				wq_outstanding(&t.rq_b));
			return -1;
		}
		check_async();
		while (!t.fatal && wq_outstanding(&t.sq_a) < t.window)
			if (post_send())
				return -1;
		/* Hardware in the error state flushes new work: so must we. */
		while (t.fatal && late < LATE_POSTS &&
		       wq_outstanding(&t.sq_a) < t.window &&
		       wq_outstanding(&t.rq_a) < t.window) {
			if (post_send() || post_recv(&t.a, &t.rq_a, 0))
				return -1;
			late++;
		}
		n = drain(t.cq[0], &t.sq_a) + drain(t.cq[1], &t.rq_a) +
		    drain(t.cq[2], NULL) + drain(t.cq[3], &t.rq_b);
		if (!n && t.ch && !t.fatal)
			wait_event();
		if (!said && t.sq_a.ok >= RUN_AFTER) {
			printf("RUNNING\n");
			fflush(stdout);
			said = true;
		}
	}
	if (!said)
		fail("%s: the device died before %lu successes", "a",
		     RUN_AFTER);
	return 0;
}

static int setup(const char *dev, int gid, bool events, unsigned int window)
{
	struct ibv_qp_init_attr ia = {.qp_type = IBV_QPT_RC};
	int i, cqe = (int)window * 4 + 64;

	if (vt_open(&t.d, dev, gid))
		return -1;
	t.window = window;
	if (events) {
		t.ch = ibv_create_comp_channel(t.d.ctx);
		if (!t.ch) {
			perror("ibv_create_comp_channel");
			return -1;
		}
	}
	for (i = 0; i < 4; i++) {
		t.cq[i] = ibv_create_cq(t.d.ctx, cqe, NULL, t.ch, 0);
		if (!t.cq[i]) {
			perror("ibv_create_cq");
			return -1;
		}
	}
	ia.cap.max_send_wr = window;
	ia.cap.max_recv_wr = window;
	ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
	for (i = 0; i < 2; i++) {
		struct vt_qp *q = i ? &t.b : &t.a;

		ia.send_cq = t.cq[2 * i];
		ia.recv_cq = t.cq[2 * i + 1];
		q->type = IBV_QPT_RC;
		q->scq = ia.send_cq;
		q->rcq = ia.recv_cq;
		q->qp = ibv_create_qp(t.d.pd, &ia);
		if (!q->qp) {
			perror("ibv_create_qp");
			return -1;
		}
		q->cap = ia.cap;
	}
	t.buf = calloc(4, MSG_SIZE);
	if (!t.buf)
		return -1;
	t.mr = ibv_reg_mr(t.d.pd, t.buf, 4 * MSG_SIZE,
			  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!t.mr) {
		perror("ibv_reg_mr");
		return -1;
	}
	if (vt_connect(&t.d, &t.a, &t.b, NULL))
		return -1;
	for (i = 0; i < (int)window; i++)
		if (post_recv(&t.b, &t.rq_b, MSG_SIZE) ||
		    (i < 8 && post_recv(&t.a, &t.rq_a, 0)))
			return -1;
	/* Async events are checked between polls. */
	i = fcntl(t.d.ctx->async_fd, F_GETFL);
	if (i < 0 || fcntl(t.d.ctx->async_fd, F_SETFL, i | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

/* After the failure: control verbs fail, they do not hang. */
static void check_dead_control(void)
{
	struct ibv_port_attr pa;
	struct ibv_cq *cq;
	int err;

	err = ibv_query_port(t.d.ctx, 1, &pa);
	if (!err)
		fail("%s: ibv_query_port succeeded on a dead device (%lu)",
		     "ctx", 0);
	else
		fprintf(stderr, "ibv_query_port after the failure: %s\n",
			strerror(err));
	cq = ibv_create_cq(t.d.ctx, 16, NULL, NULL, 0);
	if (cq) {
		fail("%s: ibv_create_cq succeeded on a dead device (%lu)",
		     "ctx", 0);
		ibv_destroy_cq(cq);
	} else {
		fprintf(stderr, "ibv_create_cq after the failure: %s\n",
			strerror(errno));
	}
}

static void teardown(void)
{
	int i;

	if (ibv_destroy_qp(t.a.qp) || ibv_destroy_qp(t.b.qp))
		fail("%s: ibv_destroy_qp failed (%lu)", "teardown", 0);
	if (ibv_dereg_mr(t.mr))
		fail("%s: ibv_dereg_mr failed (%lu)", "teardown", 0);
	for (i = 0; i < 4; i++)
		if (ibv_destroy_cq(t.cq[i]))
			fail("%s: ibv_destroy_cq failed (%lu)", "teardown", 0);
	if (t.ch && ibv_destroy_comp_channel(t.ch))
		fail("%s: ibv_destroy_comp_channel failed (%lu)", "teardown",
		     0);
	vt_close(&t.d);
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	unsigned int window = 64, seconds = 60;
	bool events = false;
	int gid = -1, c;

	while ((c = getopt(argc, argv, "d:g:ew:t:")) != -1) {
		switch (c) {
		case 'd':
			dev = optarg;
			break;
		case 'g':
			gid = atoi(optarg);
			break;
		case 'e':
			events = true;
			break;
		case 'w':
			window = (unsigned int)atoi(optarg);
			break;
		case 't':
			seconds = (unsigned int)atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s [-d DEV] [-g GID] [-e] "
				"[-w WINDOW] [-t SECONDS]\n",
				argv[0]);
			return 2;
		}
	}
	if (!window || window > 1024)
		return 2;
	if (wq_init(&t.sq_a, "a send") || wq_init(&t.rq_a, "a recv") ||
	    wq_init(&t.rq_b, "b recv") || setup(dev, gid, events, window))
		return 1;
	if (run(seconds))
		return 1;
	printf("a send: %u posted, %u ok, %u flushed\n", t.sq_a.posted,
	       t.sq_a.ok, t.sq_a.flushed);
	printf("a recv: %u posted, %u ok, %u flushed\n", t.rq_a.posted,
	       t.rq_a.ok, t.rq_a.flushed);
	printf("b recv: %u posted, %u ok, %u flushed\n", t.rq_b.posted,
	       t.rq_b.ok, t.rq_b.flushed);
	if (t.sq_a.flushed < LATE_POSTS || t.rq_a.flushed < 8 + LATE_POSTS)
		fail("%s: too few flushes (%lu)", "a",
		     (unsigned long)t.sq_a.flushed);
	check_dead_control();
	teardown();
	if (t.failed)
		return 1;
	printf("PASS\n");
	return 0;
}
