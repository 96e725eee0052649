// SPDX-License-Identifier: MIT
/*
 * ipathctl: show what ipathd is doing.  Sends one STATUS request (no HELLO
 * needed) and prints the device, its GIDs, the QP table and the non-zero
 * counters.
 *
 *   ipathctl [--socket PATH] [status|qps|counters]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipathd/ctl.h"

enum { SHOW_DEVICE = 1, SHOW_QPS = 2, SHOW_COUNTERS = 4 };

static const struct {
	const char *word;
	unsigned int what;
} commands[] = {
	{ "status", SHOW_DEVICE | SHOW_QPS | SHOW_COUNTERS },
	{ "qps", SHOW_QPS },
	{ "counters", SHOW_COUNTERS },
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
	fprintf(out, "usage: %s [--socket PATH] [status|qps|counters]\n"
		     "  --socket PATH  control socket (default $%s or %s)\n",
		prog, IPD_ENV_SOCKET, IPD_DEFAULT_SOCKET);
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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = getenv(IPD_ENV_SOCKET);
	unsigned int what = commands[0].what;
	size_t i;
	int c, fd, ret;

	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
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
		if (i == sizeof(commands) / sizeof(commands[0]) ||
		    optind + 1 < argc) {
			usage(stderr, argv[0]);
			return 2;
		}
		what = commands[i].what;
	}
	if (!path || !*path)
		path = IPD_DEFAULT_SOCKET;
	fd = connect_daemon(path);
	if (fd < 0)
		return 1;
	ret = show(fd, what);
	close(fd);
	return ret;
}
