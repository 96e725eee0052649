// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the control protocol.  The input is one SOCK_SEQPACKET
 * packet from a client that said HELLO: the daemon receives it
 * (proto/ctl_io.c), unpacks it and dispatches it to the request handlers
 * (daemon/ctl.c and the object files), which must answer or cut the
 * client off -- never crash, hang or answer garbage.  A client that was
 * cut off is replaced by a new one.
 */
#include <string.h>
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

	/* The same through the daemon: ALLOC_PD, then DESTROY it. */
	req.op_case = IPD__REQUEST__OP_ALLOC_PD;
	req.alloc_pd = &apd;
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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_dev();
	check_empty_response();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	Ipd__Response *r = NULL;

	if (!ready)
		ready = !LLVMFuzzerInitialize(NULL, NULL);
	if (fz_ctl_raw(data, size, &r) == 1) {
		/* An answer is a well-formed Response with a sane errno. */
		FZ_ASSERT(r->err >= 0 && r->err < 4096);
		FZ_ASSERT(!r->err || r->msg);
		ipd__response__free_unpacked(r, NULL);
	}
	return 0;
}
