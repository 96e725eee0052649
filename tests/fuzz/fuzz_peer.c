// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the peer capability exchange (daemon/peer.c).  The input is
 * one UDP datagram to the device's peer port, sent from a real socket on
 * 127.0.0.1; the daemon unpacks it as a Hello, learns or ignores it and
 * may answer.  Answers are read and must be well-formed replies.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_dev.h"
#include "ipathd_peer.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sock = -1;
static struct sockaddr_in to;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in me = {.sin_family = AF_INET};

	to.sin_family = AF_INET;
	to.sin_addr.s_addr = me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons(fz_peer_port());
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_ASSERT(sock >= 0);
	FZ_ASSERT(!bind(sock, (struct sockaddr *)&me, sizeof(me)));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[2048];
	ssize_t n;

	if (sock < 0)
		LLVMFuzzerInitialize(NULL, NULL);
	FZ_ASSERT(sendto(sock, data, size, 0, (struct sockaddr *)&to,
			 sizeof(to)) == (ssize_t)size);
	fz_pump();
	while ((n = recv(sock, buf, sizeof(buf), 0)) >= 0) {
		Ipd__Peer__Hello *h =
			ipd__peer__hello__unpack(NULL, (size_t)n, buf);

		FZ_ASSERT(h && h->reply && h->caps);
		ipd__peer__hello__free_unpacked(h, NULL);
	}
	return 0;
}
