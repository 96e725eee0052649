// SPDX-License-Identifier: MIT
/*
 * channel_ctl: the daemon's CreateChannel / CreateCq.channel requests from
 * a raw control client (no provider), with hostile inputs: no descriptor,
 * a pipe, a stream socket, unknown and foreign channel handles, and a
 * channel whose other end is closed.  Also checks that an armed CQ's event
 * arrives as one 8-byte record on the socket.  Needs $IPATHD_SOCKET.
 * Exit 0 = pass, 1 = failure.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipathd/ctl.h"
#include "ipathd/ring.h"

static int failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n",         \
				__FILE__, __LINE__, #cond);                  \
			failures++;                                          \
		}                                                            \
	} while (0)

struct client {
	int sock;
	int async_rd;
};

/* One request; returns Response.err (or -1 on transport failure). */
static int call(struct client *c, Ipd__Request *req, const int *fds, int nfds,
		Ipd__Response **out, int *rfds, int *nrfds)
{
	int tmp[IPD_CTL_MAX_FDS], ntmp = 0, err;
	Ipd__Response *r;

	if (!rfds) {
		rfds = tmp;
		nrfds = &ntmp;
	}
	r = ipd_ctl_call(c->sock, req, fds, nfds, rfds, nrfds,
			 IPD_CTL_MAX_FDS);
	if (!r)
		return -1;
	err = r->err;
	if (out)
		*out = r;
	else
		ipd__response__free_unpacked(r, NULL);
	if (rfds == tmp)
		while (ntmp > 0)
			close(tmp[--ntmp]);
	return err;
}

static int client_open(struct client *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Hello hello = IPD__HELLO__INIT;
	int pfd[2], err;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0 ||
	    connect(c->sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -1;
	if (pipe(pfd))
		return -1;
	hello.abi_version = IPD_CTL_ABI_VERSION;
	hello.client_name = "channel_ctl";
	req.op_case = IPD__REQUEST__OP_HELLO;
	req.hello = &hello;
	err = call(c, &req, &pfd[1], 1, NULL, NULL, NULL);
	close(pfd[1]);
	c->async_rd = pfd[0];
	return err;
}

static int create_channel(struct client *c, const int *fds, int nfds,
			  uint32_t *handle)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateChannel cc = IPD__CREATE_CHANNEL__INIT;
	Ipd__Response *r;
	int err;

	req.op_case = IPD__REQUEST__OP_CREATE_CHANNEL;
	req.create_channel = &cc;
	err = call(c, &req, fds, nfds, &r, NULL, NULL);
	if (err > 0 || err < 0) {
		if (err > 0)
			ipd__response__free_unpacked(r, NULL);
		return err;
	}
	*handle = r->create_channel ? r->create_channel->handle : 0;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

/* CreateCq; on success maps the ring (*hdr) and returns the handle. */
static int create_cq(struct client *c, uint32_t channel, uint64_t user,
		     uint32_t *handle, struct ipd_ring_hdr **hdr,
		     size_t *len)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateCq cc = IPD__CREATE_CQ__INIT;
	Ipd__Response *r;
	int rfds[IPD_CTL_MAX_FDS], nrfds = 0, err;

	cc.cqe = 8;
	cc.user_handle = user;
	cc.channel = channel;
	req.op_case = IPD__REQUEST__OP_CREATE_CQ;
	req.create_cq = &cc;
	err = call(c, &req, NULL, 0, &r, rfds, &nrfds);
	if (err)
		goto out;
	*handle = r->create_cq->handle;
	*len = ipd_ring_bytes(r->create_cq->ring_size, sizeof(struct ipd_cqe));
	*len = (*len + 4095) & ~(size_t)4095;
	*hdr = nrfds == 1 ? mmap(NULL, *len, PROT_READ | PROT_WRITE,
				 MAP_SHARED, rfds[0], 0) : MAP_FAILED;
	if (*hdr == MAP_FAILED)
		err = -1;
out:
	if (err >= 0 && r)
		ipd__response__free_unpacked(r, NULL);
	while (nrfds > 0)
		close(rfds[--nrfds]);
	return err;
}

static int destroy(struct client *c, Ipd__ObjType type, uint32_t handle)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Destroy d = IPD__DESTROY__INIT;

	d.type = type;
	d.handle = handle;
	req.op_case = IPD__REQUEST__OP_DESTROY;
	req.destroy = &d;
	return call(c, &req, NULL, 0, NULL, NULL, NULL);
}

int main(void)
{
	const char *path = getenv("IPATHD_SOCKET");
	struct client a, b;
	struct ipd_ring_hdr *hdr;
	int sv[2], pfd[2], st[2];
	uint32_t ch = 0, ch2 = 0, cq = 0;
	size_t len;

	if (!path || client_open(&a, path) || client_open(&b, path)) {
		fprintf(stderr, "channel_ctl: cannot reach the daemon\n");
		return 1;
	}
	/* Hostile CreateChannel requests. */
	CHECK(create_channel(&a, NULL, 0, &ch) == EINVAL);
	CHECK(pipe(pfd) == 0);
	CHECK(create_channel(&a, &pfd[1], 1, &ch) == EINVAL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, st) == 0);
	CHECK(create_channel(&a, &st[1], 1, &ch) == EINVAL);
	/* A real one. */
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(create_channel(&a, &sv[1], 1, &ch) == 0 && ch != 0);
	close(sv[1]);
	/* Unknown and foreign handles. */
	CHECK(create_cq(&a, ch + 1000, 1, &cq, &hdr, &len) == EINVAL);
	CHECK(create_cq(&b, ch, 1, &cq, &hdr, &len) == EINVAL);
	/* Bound CQ: arm, but no completion can happen without a QP; the
	 * socket stays empty. */
	CHECK(create_cq(&a, ch, 0x1234, &cq, &hdr, &len) == 0);
	if (!failures) {
		struct pollfd p = { .fd = sv[0], .events = POLLIN };

		atomic_store(&hdr->arm, IPD_CQ_ARM_NEXT);
		CHECK(poll(&p, 1, 100) == 0);
		munmap(hdr, len);
		CHECK(destroy(&a, IPD__OBJ_TYPE__OBJ_CQ, cq) == 0);
	}
	/* Junk written into the channel is drained, not fatal. */
	CHECK(write(sv[0], "junk", 4) == 4);
	usleep(100000);
	CHECK(create_cq(&a, ch, 0x1234, &cq, &hdr, &len) == 0);
	if (!failures) {
		munmap(hdr, len);
		CHECK(destroy(&a, IPD__OBJ_TYPE__OBJ_CQ, cq) == 0);
	}
	/* Our end closed: the daemon forgets the channel (bounded wait). */
	close(sv[0]);
	for (int i = 0; i < 100; i++) {
		int err = create_cq(&a, ch, 1, &cq, &hdr, &len);

		if (err == EINVAL)
			break;
		if (err == 0) {
			munmap(hdr, len);
			destroy(&a, IPD__OBJ_TYPE__OBJ_CQ, cq);
		}
		usleep(20000);
		CHECK(i < 99);
	}
	/* Channels die with their client. */
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(create_channel(&b, &sv[1], 1, &ch2) == 0);
	close(sv[1]);
	close(b.sock);
	{
		struct pollfd p = { .fd = sv[0], .events = POLLIN };
		char buf[8];

		CHECK(poll(&p, 1, 5000) == 1 && read(sv[0], buf, 8) == 0);
	}
	close(sv[0]);
	close(pfd[0]);
	close(pfd[1]);
	close(st[0]);
	close(st[1]);
	close(a.sock);
	printf("%s\n", failures ? "FAILED" : "PASSED");
	return failures ? 1 : 0;
}
