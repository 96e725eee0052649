// SPDX-License-Identifier: MIT
/*
 * ipathctl: show what ipathd is doing.  Sends one STATUS request (no HELLO
 * needed) and prints the device, its GIDs, the QP table and the non-zero
 * counters; or has the daemon capture its packets to a pcap file.
 *
 *   ipathctl [--socket PATH] [status|qps|counters]
 *   ipathctl [--socket PATH] capture FILE [--count N] [--duration S]
 *            [--qp QPN]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipathd/ctl.h"

enum { SHOW_DEVICE = 1, SHOW_QPS = 2, SHOW_COUNTERS = 4, CAPTURE = 8 };

/* ipathctl capture's options. */
struct capture_opts {
	const char *file;
	unsigned long long count;   /* 0 = no limit */
	double duration;            /* seconds, 0 = until Ctrl-C */
	bool has_qpn;
	unsigned long qpn;
};

static const struct {
	const char *word;
	unsigned int what;
} commands[] = {
	{ "status", SHOW_DEVICE | SHOW_QPS | SHOW_COUNTERS },
	{ "qps", SHOW_QPS },
	{ "counters", SHOW_COUNTERS },
	{ "capture", CAPTURE },
};

/* enum ibv_qp_type and enum ibv_qp_state values, as the daemon reports them. */
static const char *const qp_types[] = { [2] = "RC", [3] = "UC", [4] = "UD",
					[9] = "XRC_INI", [10] = "XRC_TGT" };
static const char *const qp_states[] = { "RESET", "INIT", "RTR", "RTS",
					 "SQD", "SQE", "ERR" };

#define NAME_OF(tbl, i)                                                    \
	((i) < sizeof(tbl) / sizeof(tbl[0]) && tbl[i] ? tbl[i] : "?")

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [--socket PATH] [status|qps|counters]\n"
		"       %s [--socket PATH] capture FILE [--count N] "
		"[--duration S] [--qp QPN]\n"
		"  --socket PATH   control socket (default $%s or %s)\n"
		"  capture FILE    write every packet the daemon sends and receives to\n"
		"                  the pcap FILE until Ctrl-C, N packets or S seconds\n"
		"  --qp QPN        only packets of local QP QPN (and its peer's)\n",
		prog, prog, IPD_ENV_SOCKET, IPD_DEFAULT_SOCKET);
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "ipathctl: socket path too long\n");
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "ipathctl: %s: %s (is ipathd running?)\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void print_device(const Ipd__StatusResp *st)
{
	size_t i;

	printf("device %s, %u client%s\n", st->dev_name, st->clients,
	       st->clients == 1 ? "" : "s");
	for (i = 0; i < st->n_gids; i++)
		printf("  gid %2zu  %s\n", i, st->gids[i]);
	/* capability exchange (daemon/peer.c, docs/address-forms.md) */
	for (i = 0; i < st->n_peers; i++)
		printf("  peer    %s\n", st->peers[i]);
}

static void print_qps(const Ipd__StatusResp *st)
{
	size_t i;

	printf("%-8s %-4s %-5s %-8s %-8s %-8s %-28s %-6s %s\n", "QPN", "TYPE",
	       "STATE", "SQ_PSN", "RQ_PSN", "DEST_QPN", "PEER", "ADDR", "CLIENT");
	for (i = 0; i < st->n_qps; i++) {
		const Ipd__QpStatus *q = st->qps[i];

		printf("%#-8x %-4s %-5s %-8u %-8u %#-8x %-28s %-6s %u\n", q->qpn,
		       NAME_OF(qp_types, q->qp_type),
		       NAME_OF(qp_states, q->state), q->sq_psn, q->rq_psn,
		       q->dest_qpn, q->peer[0] ? q->peer : "-",
		       q->addr_form[0] ? q->addr_form : "-", q->client_id);
	}
	if (!st->n_qps)
		printf("(no QPs)\n");
}

static void print_counters(const Ipd__StatusResp *st)
{
	size_t i, shown = 0;

	for (i = 0; i < st->n_counters; i++) {
		if (!st->counters[i]->value)
			continue;
		printf("%-24s %llu\n", st->counters[i]->name,
		       (unsigned long long)st->counters[i]->value);
		shown++;
	}
	if (!shown)
		printf("(all counters are zero)\n");
}

static int show(int fd, unsigned int what)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Status status = IPD__STATUS__INIT;
	Ipd__Response *resp;
	int ret = 0;

	req.op_case = IPD__REQUEST__OP_STATUS;
	req.status = &status;
	resp = ipd_ctl_call(fd, &req, NULL, 0, NULL, NULL, 0);
	if (!resp) {
		fprintf(stderr, "ipathctl: status: %s\n", strerror(errno));
		return 1;
	}
	if (resp->err || resp->op_case != IPD__RESPONSE__OP_STATUS ||
	    !resp->status) {
		fprintf(stderr, "ipathctl: status: %s%s%s\n",
			strerror(resp->err ? resp->err : EPROTO),
			resp->msg[0] ? ": " : "", resp->msg);
		ret = 1;
		goto out;
	}
	if (what & SHOW_DEVICE)
		print_device(resp->status);
	if (what & SHOW_QPS) {
		if (what != SHOW_QPS)
			printf("\n");
		print_qps(resp->status);
	}
	if (what & SHOW_COUNTERS) {
		if (what != SHOW_COUNTERS)
			printf("\n");
		print_counters(resp->status);
	}
out:
	ipd__response__free_unpacked(resp, NULL);
	return ret;
}

/* ---- capture ---------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Wait until the capture should end: Ctrl-C (SIGINT, SIGTERM, SIGHUP), the
 * duration, or the daemon closing the pipe (count reached or write
 * error).  The signals are blocked except inside ppoll, so none is lost.
 * 0, or -1 when the daemon went away.
 */
static int capture_wait(int sock, int done_fd, double duration)
{
	const struct sigaction sa = { .sa_handler = on_stop_signal };
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	double deadline = duration > 0 ? now_s() + duration : 0;
	sigset_t block, orig;
	size_t i;
	int ret = 0;

	sigemptyset(&block);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(&block, sigs[i]);
		sigaction(sigs[i], &sa, NULL);
	}
	sigprocmask(SIG_BLOCK, &block, &orig);
	while (!stop_signal) {
		struct pollfd pfd[2] = { { .fd = done_fd, .events = POLLIN },
					 { .fd = sock, .events = POLLIN } };
		struct timespec ts, *tsp = NULL;
		double left;

		if (deadline) {
			left = deadline - now_s();
			if (left <= 0)
				break;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			tsp = &ts;
		}
		if (ppoll(pfd, 2, tsp, &orig) < 0) {
			if (errno == EINTR)
				continue;
			perror("ipathctl: poll");
			ret = -1;
			break;
		}
		if (pfd[0].revents)
			break;          /* the daemon ended the capture */
		if (pfd[1].revents) {
			/* No request is outstanding: only a close wakes us. */
			fprintf(stderr,
				"ipathctl: the daemon closed the connection\n");
			ret = -1;
			break;
		}
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return ret;
}

static Ipd__Response *capture_call(int sock, Ipd__Request *req, const int *fds,
				   int nfds, const char *what)
{
	Ipd__Response *resp = ipd_ctl_call(sock, req, fds, nfds, NULL, NULL, 0);

	if (!resp) {
		fprintf(stderr, "ipathctl: %s: %s\n", what, strerror(errno));
		return NULL;
	}
	if (resp->err || resp->op_case != IPD__RESPONSE__OP_CAPTURE ||
	    !resp->capture) {
		fprintf(stderr, "ipathctl: %s: %s%s%s\n", what,
			strerror(resp->err ? resp->err : EPROTO),
			resp->msg[0] ? ": " : "", resp->msg);
		ipd__response__free_unpacked(resp, NULL);
		return NULL;
	}
	return resp;
}

/* Start the capture: the file and the pipe's write end go to the daemon. */
static int capture_start(int sock, const struct capture_opts *o, int *done_fd)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CaptureStart start = IPD__CAPTURE_START__INIT;
	Ipd__Response *resp;
	int fds[2], pfd[2];

	fds[0] = open(o->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fds[0] < 0) {
		fprintf(stderr, "ipathctl: %s: %s\n", o->file, strerror(errno));
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("ipathctl: pipe");
		close(fds[0]);
		return -1;
	}
	fds[1] = pfd[1];
	start.max_packets = o->count;
	start.has_qpn = o->has_qpn;
	start.qpn = (uint32_t)o->qpn;
	req.op_case = IPD__REQUEST__OP_CAPTURE_START;
	req.capture_start = &start;
	resp = capture_call(sock, &req, fds, 2, "capture");
	close(fds[0]);
	close(pfd[1]);          /* the daemon holds the only write end now */
	if (!resp) {
		close(pfd[0]);
		return -1;
	}
	ipd__response__free_unpacked(resp, NULL);
	*done_fd = pfd[0];
	return 0;
}

static int capture(int sock, const struct capture_opts *o)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CaptureStop stop = IPD__CAPTURE_STOP__INIT;
	Ipd__Response *resp;
	int done_fd, ret;

	if (capture_start(sock, o, &done_fd))
		return 1;
	fprintf(stderr, "ipathctl: capturing to %s", o->file);
	if (o->has_qpn)
		fprintf(stderr, ", QP %#lx", o->qpn);
	if (o->count)
		fprintf(stderr, ", %llu packets", o->count);
	if (o->duration > 0)
		fprintf(stderr, ", %g s", o->duration);
	fprintf(stderr, " (Ctrl-C stops)\n");
	ret = capture_wait(sock, done_fd, o->duration);
	close(done_fd);
	if (ret)
		return 1;
	req.op_case = IPD__REQUEST__OP_CAPTURE_STOP;
	req.capture_stop = &stop;
	resp = capture_call(sock, &req, NULL, 0, "capture stop");
	if (!resp)
		return 1;
	printf("%llu packets (%llu bytes) captured to %s\n",
	       (unsigned long long)resp->capture->packets,
	       (unsigned long long)resp->capture->bytes, o->file);
	ret = 0;
	if (resp->capture->error[0]) {
		fprintf(stderr, "ipathctl: capture ended early: %s\n",
			resp->capture->error);
		ret = 1;
	}
	ipd__response__free_unpacked(resp, NULL);
	return ret;
}

/* ---- command line ------------------------------------------------------ */

static bool parse_number(const char *s, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end && *s != '-';
}

/* A capture option into o; false when its value is bad. */
static bool capture_option(int c, const char *arg, struct capture_opts *o)
{
	unsigned long long v;
	char *end;

	switch (c) {
	case 'n':
		return parse_number(arg, &o->count) && o->count;
	case 't':
		o->duration = strtod(arg, &end);
		return end != arg && !*end && o->duration > 0 &&
		       o->duration < 1e9;
	case 'q':
		if (!parse_number(arg, &v) || v > 0xffffff)
			return false;
		o->has_qpn = true;
		o->qpn = (unsigned long)v;
		return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 't' },
		{ "qp", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = getenv(IPD_ENV_SOCKET);
	unsigned int what = commands[0].what;
	struct capture_opts copts = { 0 };
	bool capture_opts_given = false;
	size_t i;
	int c, fd, ret;

	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'n':
		case 't':
		case 'q':
			if (!capture_option(c, optarg, &copts)) {
				fprintf(stderr, "ipathctl: bad value '%s'\n",
					optarg);
				return 2;
			}
			capture_opts_given = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (!strcmp(argv[optind], commands[i].word))
				break;
		if (i == sizeof(commands) / sizeof(commands[0])) {
			usage(stderr, argv[0]);
			return 2;
		}
		what = commands[i].what;
		optind++;
	}
	if (what == CAPTURE && optind < argc)
		copts.file = argv[optind++];
	if (optind < argc || (what == CAPTURE && !copts.file) ||
	    (what != CAPTURE && capture_opts_given)) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (!path || !*path)
		path = IPD_DEFAULT_SOCKET;
	fd = connect_daemon(path);
	if (fd < 0)
		return 1;
	ret = what == CAPTURE ? capture(fd, &copts) : show(fd, what);
	close(fd);
	return ret;
}
