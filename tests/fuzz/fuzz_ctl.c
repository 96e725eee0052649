// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the control protocol.  The input is one SOCK_SEQPACKET
 * packet from a client that said HELLO, after one byte that chooses the
 * descriptors sent with it (bits 0-1: how many, 0..3; then two bits per
 * descriptor: a sealable 64 KiB memfd, a pipe's write end, a socket,
 * /dev/null -- what REG_MR, KSTUB_ATTACH and CREATE_CHANNEL take, and
 * what they must refuse).  The daemon receives it
 * (proto/ctl_io.c), unpacks it and dispatches it to the request handlers
 * (daemon/ctl.c and the object files), which must answer or cut the
 * client off -- never crash, hang or answer garbage.  A client that was
 * cut off is replaced by a new one.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_dev.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A success that carries nothing (destroy, modify) packs to zero bytes;
 * the framing must still send a packet that is not mistaken for EOF and
 * unpacks to err 0.
 */
static void check_empty_response(void)
{
	Ipd__Response empty = IPD__RESPONSE__INIT, *r;
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__AllocPd apd = IPD__ALLOC_PD__INIT;
	Ipd__Destroy d = IPD__DESTROY__INIT;
	uint8_t buf[64];
	int sv[2], nfds;
	ssize_t n;

	FZ_ASSERT(!socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	FZ_ASSERT(!ipd_ctl_send(sv[0], &empty.base, NULL, 0));
	n = ipd_ctl_recv(sv[1], buf, sizeof(buf), NULL, &nfds, 0);
	FZ_ASSERT(n > 0);
	r = ipd__response__unpack(NULL, (size_t)n, buf);
	FZ_ASSERT(r && r->err == 0 && r->op_case == IPD__RESPONSE__OP__NOT_SET);
	ipd__response__free_unpacked(r, NULL);
	close(sv[0]);
	close(sv[1]);

	/* The same through the daemon: ALLOC_PD, then DESTROY it (after a
	 * first PD that stays: the corpus names PD 1). */
	req.op_case = IPD__REQUEST__OP_ALLOC_PD;
	req.alloc_pd = &apd;
	r = fz_ctl_call(&req, NULL, 0);
	FZ_ASSERT(r->err == 0 && r->alloc_pd->handle == 1);
	ipd__response__free_unpacked(r, NULL);
	r = fz_ctl_call(&req, NULL, 0);
	FZ_ASSERT(r->err == 0 && r->op_case == IPD__RESPONSE__OP_ALLOC_PD);
	d.type = IPD__OBJ_TYPE__OBJ_PD;
	d.handle = r->alloc_pd->handle;
	ipd__response__free_unpacked(r, NULL);
	req.op_case = IPD__REQUEST__OP_DESTROY;
	req.destroy = &d;
	r = fz_ctl_call(&req, NULL, 0);
	FZ_ASSERT(r->err == 0 && r->op_case == IPD__RESPONSE__OP__NOT_SET);
	ipd__response__free_unpacked(r, NULL);
}

static bool ready;
static const char *verbose;

/* A fresh descriptor of the given kind (see the top of the file). */
static int make_fd(unsigned int kind)
{
	int fd = -1, p[2];

	switch (kind & 3) {
	case 0:
		fd = memfd_create("fuzz-ctl", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		FZ_ASSERT(fd >= 0 && !ftruncate(fd, 64 * 1024));
		break;
	case 1:
		FZ_ASSERT(!pipe2(p, O_CLOEXEC | O_NONBLOCK));
		close(p[0]);
		fd = p[1];
		break;
	case 2:
		FZ_ASSERT(!socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				      p));
		close(p[1]);
		fd = p[0];
		break;
	default:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	}
	FZ_ASSERT(fd >= 0);
	return fd;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	FZ_ASSERT(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * An empty packet is the client's close; descriptors sent with it must
 * not stay open in the daemon (found by this target: they leaked).
 */
static void check_empty_packet_fds(void)
{
	int before = count_fds(), fds[3], i, k;

	for (k = 0; k < 8; k++) {
		for (i = 0; i < 3; i++)
			fds[i] = make_fd(0);
		FZ_ASSERT(fz_ctl_raw(NULL, 0, fds, 3, NULL) == 0);
		for (i = 0; i < 3; i++)
			close(fds[i]);
	}
	FZ_ASSERT(count_fds() == before);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_dev();
	check_empty_response();
	check_empty_packet_fds();
	verbose = getenv("FUZZ_VERBOSE");
	ready = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Ipd__Response *r = NULL;
	int fds[3], nfds = 0, i;

	if (!ready)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size) {
		nfds = data[0] & 3;
		for (i = 0; i < nfds; i++)
			fds[i] = make_fd((unsigned int)data[0] >> (2 + 2 * i));
		data++;
		size--;
	}
	if (fz_ctl_raw(data, size, fds, nfds, &r) == 1) {
		/* An answer is a well-formed Response with a sane errno. */
		FZ_ASSERT(r->err >= 0 && r->err < 4096);
		FZ_ASSERT(!r->err || r->msg);
		if (verbose)
			fprintf(stderr, "response: err %d %s (op %d)\n", r->err,
				r->msg, (int)r->op_case);
		ipd__response__free_unpacked(r, NULL);
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return 0;
}
