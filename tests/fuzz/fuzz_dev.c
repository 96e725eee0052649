// SPDX-License-Identifier: MIT
/*
 * The fuzz fixture (fuzz_dev.h): main.c's device setup without sysfs,
 * signals or privilege dropping, plus a control client.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "engine.h"
#include "fuzz_dev.h"

#define FZ_FIRST_QPN   0x11 /* as main.c */
#define FZ_PUMP_ROUNDS 64

static struct {
	struct ipd_config cfg;
	struct ipd_dev dev;
	bool started;
	char dir[64];
	int sock;     /* the client's control socket */
	int async_rd; /* read end of the client's async-event pipe */
	uint16_t peer_port;
} fz = {.sock = -1, .async_rd = -1};

_Noreturn void fz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: fuzz fixture check failed: %s\n", file, line,
		what);
	abort();
}

static void fz_cleanup(void)
{
	if (!fz.started)
		return;
	if (fz.sock >= 0)
		close(fz.sock);
	ipd_ctl_fini(&fz.dev);
	ipd_loop_fini(&fz.dev);
	ipd_peer_fini(&fz.dev);
	ipd_engine_fini(&fz.dev);
	rmdir(fz.dir);
}

static void fz_tables_init(struct ipd_dev *dev, const struct ipd_config *c)
{
	FZ_ASSERT(!ipd_table_init(&dev->pds, 1, c->max_pd));
	FZ_ASSERT(!ipd_table_init(&dev->mrs, 1, c->max_mr));
	FZ_ASSERT(!ipd_table_init(&dev->cqs, 1, c->max_cq));
	FZ_ASSERT(!ipd_table_init(&dev->srqs, 1, c->max_srq));
	FZ_ASSERT(!ipd_table_init(&dev->qps, FZ_FIRST_QPN, c->max_qp));
	FZ_ASSERT(!ipd_table_init(&dev->ahs, 1, c->max_ah));
}

/* The UDP link on a free port, never 4791: tests running next to this
 * one may start daemons there. */
static void fz_engine_start(struct ipd_dev *dev)
{
	int i;

	for (i = 0; i < 32; i++) {
		fz.cfg.udp_port =
			20000u +
			(unsigned int)(getpid() * 13 + i * 257) % 30000u;
		if (!ipd_engine_init(dev) && dev->net_link)
			return;
		ipd_engine_fini(dev);
	}
	fz_fail(__FILE__, __LINE__, "no free UDP port for the link");
}

/* A free port for the peer exchange (other test runs share the host). */
static void fz_peer_start(struct ipd_dev *dev)
{
	char port[16];
	int i;

	for (i = 0; i < 32; i++) {
		fz.peer_port =
			(uint16_t)(20000 + (getpid() * 7 + i * 131) % 30000);
		snprintf(port, sizeof(port), "%u", fz.peer_port);
		setenv("IPATHD_PEER_PORT", port, 1);
		if (!ipd_peer_init(dev))
			return;
	}
	fz_fail(__FILE__, __LINE__, "no free UDP port for the peer exchange");
}

struct ipd_dev *fz_dev(void)
{
	char sock[128];
	char *argv[] = {"fuzz",	    "--netdev", "lo",	       "--link", "udp",
			"--socket", sock,	"--log-level", "err",	 NULL};
	const char *cfg_path = NULL;

	if (fz.started)
		return &fz.dev;
	snprintf(fz.dir, sizeof(fz.dir), "/tmp/ipathd-fuzz.XXXXXX");
	FZ_ASSERT(mkdtemp(fz.dir));
	snprintf(sock, sizeof(sock), "%s/sock", fz.dir);
	ipd_config_defaults(&fz.cfg);
	FZ_ASSERT(!ipd_config_args(&fz.cfg, 9, argv, &cfg_path));
	ipd_log_level = getenv("FUZZ_VERBOSE") ? IPD_LOG_DEBUG : IPD_LOG_ERR;
	signal(SIGPIPE, SIG_IGN);

	fz.dev.cfg = &fz.cfg;
	fz.dev.loop = ev_default_loop(EVFLAG_AUTO);
	FZ_ASSERT(fz.dev.loop);
	TAILQ_INIT(&fz.dev.qps_list);
	TAILQ_INIT(&fz.dev.clients);
	fz_tables_init(&fz.dev, &fz.cfg);
	FZ_ASSERT(!ipd_gids_discover(&fz.dev));
	fz_engine_start(&fz.dev);
	fz_peer_start(&fz.dev);
	FZ_ASSERT(!ipd_ctl_init(&fz.dev));
	FZ_ASSERT(!ipd_loop_init(&fz.dev));
	fz.started = true;
	atexit(fz_cleanup);
	fz_client_connect();
	return &fz.dev;
}

uint16_t fz_peer_port(void)
{
	fz_dev();
	return fz.peer_port;
}

void fz_pump(void)
{
	char junk[256];
	int i;

	for (i = 0; i < FZ_PUMP_ROUNDS; i++) {
		ev_run(fz.dev.loop, EVRUN_NOWAIT);
		if (!ipd_engine_poll(&fz.dev))
			break;
	}
	/* Async events for the client: nobody reads them here. */
	while (fz.async_rd >= 0 && read(fz.async_rd, junk, sizeof(junk)) > 0)
		;
}

static void close_all(int *fds, int n)
{
	while (n--)
		close(fds[n]);
}

/* Wait (bounded) for the daemon's answer to what we just sent. */
static ssize_t fz_recv(uint8_t *buf, size_t cap)
{
	int fds[IPD_CTL_MAX_FDS], nfds, i;
	ssize_t n = -EAGAIN;

	for (i = 0; i < 100 && n == -EAGAIN; i++) {
		fz_pump();
		n = ipd_ctl_recv(fz.sock, buf, cap, fds, &nfds,
				 IPD_CTL_MAX_FDS);
		if (n >= 0)
			close_all(fds, nfds);
	}
	return n;
}

void fz_client_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Hello hello = IPD__HELLO__INIT;
	Ipd__Response *resp;
	int pfd[2], fl;

	if (fz.sock >= 0)
		close(fz.sock);
	if (fz.async_rd >= 0)
		close(fz.async_rd);
	fz.sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	FZ_ASSERT(fz.sock >= 0);
	FZ_ASSERT(strlen(fz.cfg.socket_path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, fz.cfg.socket_path, strlen(fz.cfg.socket_path));
	FZ_ASSERT(!connect(fz.sock, (struct sockaddr *)&sa, sizeof(sa)));
	fl = fcntl(fz.sock, F_GETFL);
	FZ_ASSERT(fcntl(fz.sock, F_SETFL, fl | O_NONBLOCK) == 0);
	FZ_ASSERT(!pipe2(pfd, O_CLOEXEC | O_NONBLOCK));
	fz.async_rd = pfd[0];
	fz_pump(); /* accept */

	hello.abi_version = IPD_CTL_ABI_VERSION;
	hello.client_name = (char *)"fuzz";
	req.op_case = IPD__REQUEST__OP_HELLO;
	req.hello = &hello;
	resp = fz_ctl_call(&req, &pfd[1], 1);
	close(pfd[1]);
	FZ_ASSERT(resp->err == 0 && resp->op_case == IPD__RESPONSE__OP_HELLO);
	ipd__response__free_unpacked(resp, NULL);
}

int fz_ctl_raw(const uint8_t *buf, size_t len, const int *fds, int nfds,
	       Ipd__Response **resp)
{
	static uint8_t rx[IPD_CTL_MAX_MSG];
	ssize_t n;

	fz_dev();
	FZ_ASSERT(nfds >= 0 && nfds <= IPD_CTL_MAX_FDS);
	n = ipd_ctl_send_raw(fz.sock, buf, len, fds, nfds);
	FZ_ASSERT(n == (ssize_t)len || n == -EMSGSIZE);
	if (n < 0)
		return -1; /* the kernel refused it: nothing reached the daemon
			    */
	n = fz_recv(rx, sizeof(rx));
	if (n <= 0) {
		/* Cut off (0 or ECONNRESET); anything else is a hang. */
		FZ_ASSERT(n == 0 || n == -ECONNRESET);
		fz_client_connect();
		return 0;
	}
	if (resp) {
		*resp = ipd__response__unpack(NULL, (size_t)n, rx);
		FZ_ASSERT(*resp);
	}
	return 1;
}

Ipd__Response *fz_ctl_call(const Ipd__Request *req, const int *fds, int nfds)
{
	static uint8_t buf[IPD_CTL_MAX_MSG];
	Ipd__Response *resp;
	ssize_t n;

	FZ_ASSERT(!ipd_ctl_send(fz.sock, &req->base, fds, nfds));
	n = fz_recv(buf, sizeof(buf));
	FZ_ASSERT(n > 0);
	resp = ipd__response__unpack(NULL, (size_t)n, buf);
	FZ_ASSERT(resp);
	return resp;
}
