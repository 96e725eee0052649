// SPDX-License-Identifier: MIT
/*
 * failover - RC reliability when a peer goes away, across two or three
 * hosts (tests/multihost/failover.sh drives it in the lab).
 *
 *   failover --server PORT [-d DEV] [-g IDX] [--wait SEC]
 *       Serves one client: as many RC QPs as it asks for, one 1 MiB MR
 *       (remote read/write), byte checks on request.
 *
 *   failover --client kill --peer HOST:PORT --other HOST:PORT
 *            --fail-cmd CMD [-d DEV] [-g IDX]
 *       QPs to the peer: A (timeout 14, retry_cnt 3), B (timeout 16,
 *       retry_cnt 1) and I (idle); QP O to the other host.  After a
 *       warm-up on every QP, CMD runs (it kills the peer's daemon); A and
 *       B each post an RDMA WRITE, while O keeps writing and reading back
 *       the whole time.  A and B must complete with IBV_WC_RETRY_EXC_ERR
 *       within a generous bound of 4.096 us * 2^timeout * (retry_cnt + 1)
 *       (at least half of it, at most twice it plus 0.5 s), A before B,
 *       each move to the error state with an IBV_EVENT_QP_FATAL event and
 *       flush a later WR with IBV_WC_WR_FLUSH_ERR; I stays in RTS; O keeps
 *       completing with correct bytes (checked at the other host too).
 *
 *   failover --client heal --peer HOST:PORT --fail-cmd CMD --heal-cmd CMD
 *            [--heal-after MS]
 *       One QP (timeout 16, retry_cnt 6: 7 * 268 ms = 1.9 s before retries
 *       run out).  After a warm-up, CMD cuts the link; 8 WRITEs of 16 KiB
 *       and a READ are posted; HEAL runs after MS (default 700) ms; every
 *       WR must then succeed, no sooner than the heal, and the bytes must
 *       be right at both ends.
 *
 * Exit 0 = pass, 1 = a check failed, 2 = usage or setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "vtest_common.h"

#define MR_LEN		(1u << 20)
#define REGION		(MR_LEN / 4)	/* per QP */
#define MAX_QPS		4
#define HEAL_WRITES	8
#define HEAL_LEN	(16u << 10)	/* 8 x 16 KiB = REGION / 2 */

enum { M_HELLO = 1, M_HELLO_OK, M_CHECK, M_RESULT, M_BYE };

struct conn {
	struct vt_qp q;
	uint8_t timeout, retry;
	uint32_t rqpn, rkey;
	uint64_t raddr;		/* the peer's region for this QP */
	const char *name;
};

struct peer {
	int sock;
	union ibv_gid gid;
	int nqp;
	struct conn *c[MAX_QPS];
};

static struct vt_dev dev;
static uint8_t *buf;
static struct ibv_mr *mr;
static int wait_ms = 120000;
static int failures;

__attribute__((format(printf, 1, 2)))
static void check_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	failures++;
}

static void die(const char *what)
{
	fprintf(stderr, "failover: %s\n", what);
	exit(2);
}

static int setup_mem(void)
{
	buf = aligned_alloc(4096, MR_LEN);
	if (!buf)
		return -1;
	memset(buf, 0, MR_LEN);
	mr = ibv_reg_mr(dev.pd, buf, MR_LEN, IBV_ACCESS_LOCAL_WRITE |
			IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	return mr ? 0 : -1;
}

static int make_qp(struct conn *c)
{
	struct vt_qp_opts qo = { .type = IBV_QPT_RC, .max_send_wr = 32,
				 .max_recv_wr = 4, .cqe = 64 };

	return vt_qp_create(&dev, &c->q, &qo);
}

static int connect_qp(struct conn *c, const union ibv_gid *gid,
		      uint32_t my_psn, uint32_t peer_psn)
{
	struct vt_conn_opts co = {
		.dgid = gid, .set_psn = true, .sq_psn = my_psn,
		.rq_psn = peer_psn, .timeout = c->timeout,
		.retry_cnt = c->retry,
	};
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		IBV_ACCESS_REMOTE_READ;

	/* vt_conn_opts: retry_cnt 0 means the default (7); 1..6 are ours */
	if (vt_qp_to_init(&dev, &c->q, access) ||
	    vt_qp_to_rtr(&dev, &c->q, c->rqpn, &co) ||
	    vt_qp_to_rts(&dev, &c->q, &co))
		return -1;
	return 0;
}

/* ---- server ----------------------------------------------------------- */

static int serve(const char *port)
{
	uint8_t m[4096];
	struct vt_wbuf b = { .p = m, .cap = sizeof(m) };
	struct conn c[MAX_QPS];
	union ibv_gid cgid;
	uint32_t type, n, i;
	int lfd, fd, len;

	memset(c, 0, sizeof(c));
	if (setup_mem())
		die("cannot register memory");
	lfd = vt_tcp_listen(port);
	if (lfd < 0)
		return 2;
	printf("failover: server waiting on TCP port %s\n", port);
	fflush(stdout);
	fd = vt_tcp_accept(lfd, wait_ms);
	close(lfd);
	if (fd < 0)
		return 2;
	len = vt_msg_recv(fd, &type, m, sizeof(m), wait_ms);
	if (len < 0 || type != M_HELLO)
		die("no HELLO");
	b.len = (size_t)len;
	vt_getmem(&b, cgid.raw, 16);
	n = vt_get32(&b);
	if (b.err || n < 1 || n > MAX_QPS)
		die("bad HELLO");
	{
		uint8_t o[1024];
		struct vt_wbuf ob = { .p = o, .cap = sizeof(o) };
		uint32_t psn[MAX_QPS];

		vt_putmem(&ob, dev.gid.raw, 16);
		for (i = 0; i < n; i++) {
			uint32_t cpsn;

			c[i].rqpn = vt_get32(&b);
			cpsn = vt_get32(&b);
			c[i].timeout = 14;
			c[i].retry = 7;
			psn[i] = (uint32_t)vt_rand() & 0xffffff;
			if (make_qp(&c[i]) || connect_qp(&c[i], &cgid, psn[i], cpsn))
				die("cannot set up a QP");
			vt_put32(&ob, c[i].q.qp->qp_num);
			vt_put32(&ob, psn[i]);
			vt_put32(&ob, mr->rkey);
			vt_put64(&ob, (uintptr_t)(buf + (size_t)i * REGION));
		}
		if (vt_msg_send(fd, M_HELLO_OK, o, (uint32_t)ob.len))
			return 2;
	}
	for (;;) {
		uint64_t off, seed, l;
		uint8_t *exp;
		uint32_t ok;

		len = vt_msg_recv(fd, &type, m, sizeof(m), wait_ms);
		if (len < 0)
			return 1;
		b.len = (size_t)len;
		b.pos = 0;
		if (type == M_BYE) {
			if (vt_get32(&b)) {
				/* our daemon is gone: nothing to tear down */
				printf("failover: server done (daemon gone)\n");
				fflush(stdout);
				_exit(0);
			}
			break;
		}
		if (type != M_CHECK)
			die("unexpected message");
		i = vt_get32(&b);
		off = vt_get64(&b);
		l = vt_get64(&b);
		seed = vt_get64(&b);
		ok = 0;
		if (!b.err && i < n && off + l <= REGION) {
			exp = malloc(l);
			if (exp) {
				vt_fill_seeded(exp, l, seed);
				ok = !memcmp(buf + (size_t)i * REGION + off, exp, l);
				free(exp);
			}
		}
		printf("failover: check QP %u: %" PRIu64 " bytes %s\n", i, l,
		       ok ? "right" : "WRONG");
		fflush(stdout);
		ok = htonl(ok);
		if (vt_msg_send(fd, M_RESULT, &ok, sizeof(ok)))
			return 1;
	}
	for (i = 0; i < n; i++)
		vt_qp_destroy(&c[i].q);
	ibv_dereg_mr(mr);
	close(fd);
	printf("failover: server done\n");
	return 0;
}

/* ---- client ----------------------------------------------------------- */

static struct peer *peer_connect(const char *hostport, struct conn **cs,
				 int n)
{
	struct peer *p = calloc(1, sizeof(*p));
	uint8_t m[1024];
	struct vt_wbuf b = { .p = m, .cap = sizeof(m) };
	uint32_t psn[MAX_QPS], type, spsn;
	int i, len;

	if (!p)
		die("out of memory");
	p->sock = vt_tcp_connect(hostport, wait_ms);
	if (p->sock < 0)
		die("cannot reach a server");
	p->nqp = n;
	vt_putmem(&b, dev.gid.raw, 16);
	vt_put32(&b, (uint32_t)n);
	for (i = 0; i < n; i++) {
		p->c[i] = cs[i];
		if (make_qp(cs[i]))
			die("cannot create a QP");
		psn[i] = (uint32_t)vt_rand() & 0xffffff;
		vt_put32(&b, cs[i]->q.qp->qp_num);
		vt_put32(&b, psn[i]);
	}
	if (vt_msg_send(p->sock, M_HELLO, m, (uint32_t)b.len))
		die("side channel");
	len = vt_msg_recv(p->sock, &type, m, sizeof(m), wait_ms);
	if (len < 0 || type != M_HELLO_OK)
		die("no answer from a server");
	b.len = (size_t)len;
	b.pos = 0;
	vt_getmem(&b, p->gid.raw, 16);
	for (i = 0; i < n; i++) {
		cs[i]->rqpn = vt_get32(&b);
		spsn = vt_get32(&b);
		cs[i]->rkey = vt_get32(&b);
		cs[i]->raddr = vt_get64(&b);
		if (b.err || connect_qp(cs[i], &p->gid, psn[i], spsn))
			die("cannot connect a QP");
	}
	return p;
}

static int peer_check(struct peer *p, int qi, uint64_t off, uint64_t len,
		      uint64_t seed)
{
	uint8_t m[64];
	struct vt_wbuf b = { .p = m, .cap = sizeof(m) };
	uint32_t type, ok = 0;

	vt_put32(&b, (uint32_t)qi);
	vt_put64(&b, off);
	vt_put64(&b, len);
	vt_put64(&b, seed);
	if (vt_msg_send(p->sock, M_CHECK, m, (uint32_t)b.len) ||
	    vt_msg_recv(p->sock, &type, &ok, sizeof(ok), wait_ms) != 4 ||
	    type != M_RESULT)
		return -1;
	return ntohl(ok) ? 0 : -1;
}

static void peer_bye(struct peer *p, bool abandon)
{
	uint32_t v = htonl(abandon);

	vt_msg_send(p->sock, M_BYE, &v, sizeof(v));
	close(p->sock);
}

/* Local memory of a QP: its quarter of our MR. */
static uint8_t *local(int qi)
{
	return buf + (size_t)qi * REGION;
}

static int post_rdma(struct conn *c, int qi, enum ibv_wr_opcode op,
		     uint64_t wr_id, uint32_t off, uint32_t len, bool signaled)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(local(qi) + off + (op == IBV_WR_RDMA_READ ?
							 REGION / 2 : 0)),
		.length = len, .lkey = mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = signaled ? IBV_SEND_SIGNALED : 0,
		.wr.rdma = { .remote_addr = c->raddr + off, .rkey = c->rkey },
	}, *bad;

	return ibv_post_send(c->q.qp, &wr, &bad);
}

/* WRITE @len seeded bytes to the peer, READ them back, compare. */
static int round_trip(struct conn *c, int qi, uint32_t len, uint64_t seed,
		      int ms)
{
	struct ibv_wc wc[2];
	int got;

	vt_fill_seeded(local(qi), len, seed);
	memset(local(qi) + REGION / 2, 0, len);
	if (post_rdma(c, qi, IBV_WR_RDMA_WRITE, 1, 0, len, false) ||
	    post_rdma(c, qi, IBV_WR_RDMA_READ, 2, 0, len, true))
		return -1;
	got = vt_poll(c->q.scq, wc, 1, ms);
	if (got != 1 || wc[0].status != IBV_WC_SUCCESS || wc[0].wr_id != 2) {
		printf("     %s: round trip: %s\n", c->name, got == 1 ?
		       ibv_wc_status_str(wc[0].status) : "no completion");
		return -1;
	}
	return memcmp(local(qi), local(qi) + REGION / 2, len) ? -1 : 0;
}

static enum ibv_qp_state qp_state(struct conn *c)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	if (ibv_query_qp(c->q.qp, &a, IBV_QP_STATE, &ia))
		return (enum ibv_qp_state)-1;
	return a.qp_state;
}

static int run_cmd(const char *what, const char *cmd)
{
	int st;

	printf("failover: %s: %s\n", what, cmd);
	fflush(stdout);
	st = system(cmd);
	if (st) {
		check_fail("%s command exited with status %d", what, st);
		return -1;
	}
	return 0;
}

/* Async events within @ms: is there an IBV_EVENT_QP_FATAL for @qp? */
static bool fatal_event(struct ibv_qp *qp, int ms)
{
	uint64_t deadline = vt_now_ms() + (uint64_t)ms;
	int fl = fcntl(dev.ctx->async_fd, F_GETFL);
	bool seen = false;

	fcntl(dev.ctx->async_fd, F_SETFL, fl | O_NONBLOCK);
	while (!seen && vt_now_ms() < deadline) {
		struct pollfd p = { .fd = dev.ctx->async_fd, .events = POLLIN };
		struct ibv_async_event ev;

		if (poll(&p, 1, 100) <= 0 || ibv_get_async_event(dev.ctx, &ev))
			continue;
		if (ev.event_type == IBV_EVENT_QP_FATAL && ev.element.qp == qp)
			seen = true;
		else
			printf("     async event %s\n",
			       ibv_event_type_str(ev.event_type));
		ibv_ack_async_event(&ev);
	}
	fcntl(dev.ctx->async_fd, F_SETFL, fl);
	return seen;
}

static double expected_s(const struct conn *c)
{
	return 4.096e-6 * (double)(1u << c->timeout) * (c->retry + 1);
}

static int client_kill(const char *peer_addr, const char *other_addr,
		       const char *fail_cmd)
{
	struct conn ca = { .timeout = 14, .retry = 3, .name = "A" };
	struct conn cb = { .timeout = 16, .retry = 1, .name = "B" };
	struct conn ci = { .timeout = 14, .retry = 3, .name = "I (idle)" };
	struct conn co = { .timeout = 14, .retry = 3, .name = "O (other host)" };
	struct conn *pcs[] = { &ca, &cb, &ci }, *ocs[] = { &co };
	struct conn *fails[] = { &ca, &cb };
	struct peer *p, *o;
	double done_s[2] = { 0, 0 };
	uint64_t t0, deadline, seed = 1000;
	unsigned int rounds = 0, bad_rounds = 0;
	int i, left = 2;

	p = peer_connect(peer_addr, pcs, 3);
	o = peer_connect(other_addr, ocs, 1);
	/* warm-up: every QP moves bytes both ways */
	for (i = 0; i < 3; i++) {
		if (round_trip(pcs[i], i, 65536, ++seed, VT_WAIT_MS) ||
		    peer_check(p, i, 0, 65536, seed))
			check_fail("warm-up on QP %s", pcs[i]->name);
	}
	if (round_trip(&co, 3, 65536, ++seed, VT_WAIT_MS) ||
	    peer_check(o, 0, 0, 65536, seed))
		check_fail("warm-up on QP %s", co.name);
	if (failures)
		return 1;
	printf("failover: warm-up passed on all four QPs\n");
	if (run_cmd("fail", fail_cmd))
		return 1;
	t0 = vt_now_ms();
	for (i = 0; i < 2; i++)
		if (post_rdma(fails[i], i, IBV_WR_RDMA_WRITE, 100 + (uint64_t)i,
			      0, 4096, true))
			check_fail("post on QP %s", fails[i]->name);
	deadline = t0 + (uint64_t)(1000 * (2 * expected_s(&cb) + 0.5)) + 5000;
	while (left > 0 && vt_now_ms() < deadline) {
		for (i = 0; i < 2; i++) {
			struct ibv_wc wc;

			if (done_s[i] || ibv_poll_cq(fails[i]->q.scq, 1, &wc) != 1)
				continue;
			done_s[i] = (double)(vt_now_ms() - t0) / 1000.0;
			left--;
			printf("failover: QP %s (timeout %u, retry_cnt %u): %s after %.3f s (attributes imply %.3f s)\n",
			       fails[i]->name, fails[i]->timeout,
			       fails[i]->retry, ibv_wc_status_str(wc.status),
			       done_s[i], expected_s(fails[i]));
			if (wc.status != IBV_WC_RETRY_EXC_ERR ||
			    wc.wr_id != 100 + (uint64_t)i)
				check_fail("QP %s: status %s wr_id %" PRIu64 ", expected %s",
					   fails[i]->name,
					   ibv_wc_status_str(wc.status),
					   wc.wr_id,
					   ibv_wc_status_str(IBV_WC_RETRY_EXC_ERR));
		}
		/* meanwhile the QP to the other host keeps working */
		rounds++;
		if (round_trip(&co, 3, 16384, ++seed, VT_WAIT_MS))
			bad_rounds++;
	}
	for (i = 0; i < 2; i++) {
		double e = expected_s(fails[i]);

		if (!done_s[i]) {
			check_fail("QP %s: no completion within %.1f s of the failure",
				   fails[i]->name,
				   (double)(deadline - t0) / 1000.0);
			continue;
		}
		if (done_s[i] < 0.5 * e || done_s[i] > 2 * e + 0.5)
			check_fail("QP %s: RETRY_EXC_ERR after %.3f s, outside [%.3f, %.3f] s for timeout %u, retry_cnt %u",
				   fails[i]->name, done_s[i], 0.5 * e,
				   2 * e + 0.5, fails[i]->timeout,
				   fails[i]->retry);
	}
	if (done_s[0] && done_s[1] && done_s[0] >= done_s[1])
		check_fail("QP A (%.3f s implied) failed after QP B (%.3f s implied)",
			   expected_s(&ca), expected_s(&cb));
	for (i = 0; i < 2; i++) {
		struct ibv_wc wc;

		if (qp_state(fails[i]) != IBV_QPS_ERR)
			check_fail("QP %s: state %s after RETRY_EXC_ERR, expected ERR",
				   fails[i]->name,
				   vt_state_str(qp_state(fails[i])));
		if (!fatal_event(fails[i]->q.qp, 3000))
			check_fail("QP %s: no IBV_EVENT_QP_FATAL", fails[i]->name);
		/* a WR posted now is flushed */
		if (post_rdma(fails[i], i, IBV_WR_RDMA_WRITE, 200, 0, 64, true) ||
		    vt_poll(fails[i]->q.scq, &wc, 1, 5000) != 1 ||
		    wc.status != IBV_WC_WR_FLUSH_ERR)
			check_fail("QP %s: a WR posted in ERR was not flushed with WR_FLUSH_ERR",
				   fails[i]->name);
	}
	if (qp_state(&ci) != IBV_QPS_RTS)
		check_fail("idle QP I to the dead peer: state %s, expected RTS (no work, no error)",
			   vt_state_str(qp_state(&ci)));
	if (qp_state(&co) != IBV_QPS_RTS)
		check_fail("QP O to the other host: state %s, expected RTS",
			   vt_state_str(qp_state(&co)));
	printf("failover: QP O: %u round trips during the failure, %u bad\n",
	       rounds, bad_rounds);
	if (!rounds || bad_rounds)
		check_fail("QP O to the other host was disturbed (%u of %u round trips bad)",
			   bad_rounds, rounds);
	if (round_trip(&co, 3, 65536, ++seed, VT_WAIT_MS) ||
	    peer_check(o, 0, 0, 65536, seed))
		check_fail("QP O after the failure: bytes wrong at one end");
	peer_bye(p, true);
	peer_bye(o, false);
	for (i = 0; i < 3; i++)
		vt_qp_destroy(&pcs[i]->q);
	vt_qp_destroy(&co.q);
	return failures ? 1 : 0;
}

static int client_heal(const char *peer_addr, const char *fail_cmd,
		       const char *heal_cmd, int heal_after_ms)
{
	struct conn c = { .timeout = 16, .retry = 6, .name = "X" };
	struct conn *cs[] = { &c };
	struct ibv_wc wc[HEAL_WRITES + 1];
	struct peer *p;
	uint64_t t0, t_heal, deadline, seed = 77;
	double budget = expected_s(&c), took;
	int i, got = 0, r;

	if (heal_after_ms >= budget * 1000 * 0.75)
		die("--heal-after must be well inside the retry budget");
	p = peer_connect(peer_addr, cs, 1);
	if (round_trip(&c, 0, 65536, seed, VT_WAIT_MS) ||
	    peer_check(p, 0, 0, 65536, seed)) {
		check_fail("warm-up");
		return 1;
	}
	printf("failover: warm-up passed; retry budget %.3f s (timeout %u, retry_cnt %u)\n",
	       budget, c.timeout, c.retry);
	if (run_cmd("partition", fail_cmd))
		return 1;
	t0 = vt_now_ms();
	seed = 4242;
	vt_fill_seeded(local(0), HEAL_WRITES * HEAL_LEN, seed);
	memset(local(0) + REGION / 2, 0, HEAL_WRITES * HEAL_LEN);
	for (i = 0; i < HEAL_WRITES; i++)
		if (post_rdma(&c, 0, IBV_WR_RDMA_WRITE, (uint64_t)i,
			      (uint32_t)i * HEAL_LEN, HEAL_LEN, true))
			check_fail("post WRITE %d", i);
	if (post_rdma(&c, 0, IBV_WR_RDMA_READ, HEAL_WRITES, 0,
		      HEAL_WRITES * HEAL_LEN, true))
		check_fail("post READ");
	usleep((useconds_t)heal_after_ms * 1000);
	if (vt_poll(c.q.scq, wc, 1, 0) > 0)
		check_fail("a completion (%s) arrived during the partition",
			   ibv_wc_status_str(wc[0].status));
	if (run_cmd("heal", heal_cmd))
		return 1;
	t_heal = vt_now_ms();
	deadline = t0 + (uint64_t)(budget * 2000) + 5000;
	while (got < HEAL_WRITES + 1 && vt_now_ms() < deadline) {
		r = ibv_poll_cq(c.q.scq, HEAL_WRITES + 1 - got, wc + got);
		if (r < 0)
			break;
		got += r;
		if (!r)
			usleep(200);
	}
	took = (double)(vt_now_ms() - t0) / 1000.0;
	printf("failover: %d of %d completions %.3f s after the partition (healed at %.3f s)\n",
	       got, HEAL_WRITES + 1, took, (double)(t_heal - t0) / 1000.0);
	if (got != HEAL_WRITES + 1)
		check_fail("only %d of %d WRs completed", got, HEAL_WRITES + 1);
	for (i = 0; i < got; i++)
		if (wc[i].status != IBV_WC_SUCCESS || wc[i].wr_id != (uint64_t)i)
			check_fail("WR %d: status %s wr_id %" PRIu64, i,
				   ibv_wc_status_str(wc[i].status), wc[i].wr_id);
	if (took * 1000 < heal_after_ms)
		check_fail("the transfer completed before the heal: was the link cut?");
	if (qp_state(&c) != IBV_QPS_RTS)
		check_fail("QP state %s after the heal, expected RTS",
			   vt_state_str(qp_state(&c)));
	if (memcmp(local(0), local(0) + REGION / 2, HEAL_WRITES * HEAL_LEN))
		check_fail("the READ after the heal returned wrong bytes");
	if (peer_check(p, 0, 0, HEAL_WRITES * HEAL_LEN, seed))
		check_fail("bytes wrong at the peer after the heal");
	/* and the QP goes on working */
	if (round_trip(&c, 0, 65536, ++seed, VT_WAIT_MS) ||
	    peer_check(p, 0, 0, 65536, seed))
		check_fail("round trip after the heal");
	peer_bye(p, false);
	vt_qp_destroy(&c.q);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 'S' },
		{ "client", required_argument, NULL, 'C' },
		{ "peer", required_argument, NULL, 'p' },
		{ "other", required_argument, NULL, 'o' },
		{ "fail-cmd", required_argument, NULL, 'f' },
		{ "heal-cmd", required_argument, NULL, 'H' },
		{ "heal-after", required_argument, NULL, 'a' },
		{ "wait", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *mode = NULL, *peer = NULL, *other = NULL;
	const char *fail_cmd = NULL, *heal_cmd = NULL, *devname = NULL;
	int heal_after = 700, gid = -1, c, ret;

	while ((c = getopt_long(argc, argv, "d:g:v", lo, NULL)) != -1) {
		switch (c) {
		case 'S': server = optarg; break;
		case 'C': mode = optarg; break;
		case 'p': peer = optarg; break;
		case 'o': other = optarg; break;
		case 'f': fail_cmd = optarg; break;
		case 'H': heal_cmd = optarg; break;
		case 'a': heal_after = atoi(optarg); break;
		case 'w': wait_ms = atoi(optarg) * 1000; break;
		case 'd': devname = optarg; break;
		case 'g': gid = atoi(optarg); break;
		case 'v': vt_verbose++; break;
		default: die("usage: see the comment at the top of failover.c");
		}
	}
	if (!server == !mode || optind != argc || wait_ms <= 0)
		die("usage: failover --server PORT | --client kill|heal ...");
	setvbuf(stdout, NULL, _IOLBF, 0);
	vt_rand_seed(vt_now_ms() ^ (uint64_t)getpid() << 32);
	if (vt_open(&dev, devname, gid))
		return 2;
	if (server)
		return serve(server);
	if (setup_mem())
		die("cannot register memory");
	if (!strcmp(mode, "kill")) {
		if (!peer || !other || !fail_cmd)
			die("kill needs --peer, --other and --fail-cmd");
		ret = client_kill(peer, other, fail_cmd);
	} else if (!strcmp(mode, "heal")) {
		if (!peer || !fail_cmd || !heal_cmd)
			die("heal needs --peer, --fail-cmd and --heal-cmd");
		ret = client_heal(peer, fail_cmd, heal_cmd, heal_after);
	} else {
		die("--client kill|heal");
	}
	printf("failover: %s %s\n", mode, ret ? "FAILED" : "passed");
	ibv_dereg_mr(mr);
	vt_close(&dev);
	return ret;
}
