/* SPDX-License-Identifier: MIT */
/*
 * What the model ULPs (ulp_addr.c) and their verbs twin (verbs_addr.c)
 * share: the data they move, its digest, and the TCP bootstrap.  The
 * RESULT digests depend only on the bytes, so both programs print the
 * same lines when the transfers are right.
 */
#ifndef ULP_COMMON_H
#define ULP_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSG 4                /* entries in each SRP list */
#define NPKT 6               /* IPoIB packets */
#define PKT_MAX 9000
#define RECV_SLOTS 16
#define WAIT_MS 15000
#define MAGIC 0x69706164u

#define ATOMIC_INIT 0x1122334455667788ull
#define CAS_SWAP 0x0badc0ffee000001ull
#define FADD_ADD 0x1000000000000001ull

/* The SRP lists: page, offset, length; odd entries are highmem. */
static const struct {
	unsigned int offset, length;
	bool high;
} sg_shape[NSG] = {
	{ 100, 3996, false }, { 0, 4096, true }, { 0, 4096, false },
	{ 8, 1000, true },
};

/* FNV-1a 64: a digest of what arrived, independent of addresses. */
static inline uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

static inline void pattern(void *p, size_t n, uint32_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((seed * 131u + i * 7u + (i >> 8)) ^ (seed >> 3));
}

static inline long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- out-of-band bootstrap (QPNs, GID), like the pingpongs' TCP ----- */

static inline int xfer(int fd, void *buf, size_t n, bool out)
{
	uint8_t *p = buf;
	long end = now_ms() + WAIT_MS;

	while (n) {
		struct pollfd pfd = { fd, out ? POLLOUT : POLLIN, 0 };
		ssize_t r;

		if (now_ms() > end || poll(&pfd, 1, 1000) < 0)
			return -ETIMEDOUT;
		if (!pfd.revents)
			continue;
		r = out ? write(fd, p, n) : read(fd, p, n);
		if (r <= 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static inline size_t pkt_len(int i)
{
	static const size_t len[NPKT] = { 1, 64, 1500, 4096, 4097, PKT_MAX };

	return len[i];
}

static inline int tcp_listen_accept(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, s;
	struct pollfd pfd;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1))
		return -1;
	pfd = (struct pollfd){ fd, POLLIN, 0 };
	if (poll(&pfd, 1, 60000) != 1)
		return -1;
	s = accept(fd, NULL, NULL);
	close(fd);
	return s;
}

static inline int tcp_connect(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	a.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -1;
	/* The target may still be starting: retry for a while. */
	for (int i = 0; i < 100; i++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (!connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return fd;
		close(fd);
		usleep(100000);
	}
	return -1;
}

#endif
