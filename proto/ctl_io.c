// SPDX-License-Identifier: MIT
/* Control-socket framing: see include/ipathd/ctl.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipathd/ctl.h"

/* Field 2047 (unused in every message), varint 0. */
static const uint8_t empty_msg[] = { 0xf8, 0x7f, 0x00 };

ssize_t ipd_ctl_send_raw(int sock, const void *buf, size_t len,
			 const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPD_CTL_MAX_FDS)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds < 0 || nfds > IPD_CTL_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctrl, 0, sizeof(ctrl));
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int ipd_ctl_send(int sock, const ProtobufCMessage *msg, const int *fds,
		 int nfds)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;
	ssize_t n;
	int err = 0;

	if (len > IPD_CTL_MAX_MSG || nfds < 0 || nfds > IPD_CTL_MAX_FDS)
		return -EMSGSIZE;
	buf = malloc(len ? len : sizeof(empty_msg));
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(msg, buf);
	/*
	 * A message with every field at its default (a plain success
	 * Response) packs to nothing, and a zero-length SOCK_SEQPACKET packet
	 * reads like EOF on the other side.  Send an unknown field instead,
	 * which every protobuf parser skips.
	 */
	if (!len) {
		memcpy(buf, empty_msg, sizeof(empty_msg));
		len = sizeof(empty_msg);
	}
	n = ipd_ctl_send_raw(sock, buf, len, fds, nfds);
	if (n < 0)
		err = (int)n;
	else if ((size_t)n != len)
		err = -EIO;
	free(buf);
	return err;
}

ssize_t ipd_ctl_recv(int sock, void *buf, size_t cap, int *fds, int *nfds,
		     int maxfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPD_CTL_MAX_FDS)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctrl.buf,
		.msg_controllen = sizeof(ctrl.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*nfds = 0;
	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		int cnt, i;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*nfds < maxfds)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		while (*nfds)
			close(fds[--(*nfds)]);
		return -EMSGSIZE;
	}
	/* An empty packet reads as the peer's close: nobody takes the
	 * descriptors that came with it. */
	if (n == 0)
		while (*nfds)
			close(fds[--(*nfds)]);
	return n;
}

Ipd__Response *ipd_ctl_call(int sock, const Ipd__Request *req, const int *fds,
			    int nfds, int *rfds, int *nrfds, int maxrfds)
{
	int dummy_fds[IPD_CTL_MAX_FDS];
	int dummy_n = 0;
	Ipd__Response *resp;
	uint8_t *buf;
	ssize_t n;
	int err;

	if (!rfds) {
		rfds = dummy_fds;
		nrfds = &dummy_n;
		maxrfds = IPD_CTL_MAX_FDS;
	}
	err = ipd_ctl_send(sock, &req->base, fds, nfds);
	if (err) {
		errno = -err;
		return NULL;
	}
	buf = malloc(IPD_CTL_MAX_MSG);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	n = ipd_ctl_recv(sock, buf, IPD_CTL_MAX_MSG, rfds, nrfds, maxrfds);
	if (n <= 0) {
		free(buf);
		errno = n == 0 ? ECONNRESET : (int)-n;
		return NULL;
	}
	resp = ipd__response__unpack(NULL, (size_t)n, buf);
	free(buf);
	if (!resp) {
		while (*nrfds)
			close(rfds[--(*nrfds)]);
		errno = EPROTO;
		return NULL;
	}
	if (rfds == dummy_fds)
		while (dummy_n)
			close(dummy_fds[--dummy_n]);
	return resp;
}
