/* SPDX-License-Identifier: MIT */
/*
 * Control-socket framing shared by ipathd and its clients: one protobuf-c
 * message per SOCK_SEQPACKET packet, file descriptors in SCM_RIGHTS.
 * Implemented in proto/ctl_io.c (built into both the daemon and clients).
 */
#ifndef IPATHD_CTL_H
#define IPATHD_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include "ipathd_ctl.pb-c.h"

/* 2: the SQ ring header's app_tx_sport and app_tx_ack_owed (a provider
 * that ignores the flag would break the order of ACKs and requests). */
#define IPD_CTL_ABI_VERSION 2
#define IPD_CTL_MAX_MSG (256u * 1024u)
#define IPD_CTL_MAX_FDS 4
#define IPD_DEFAULT_SOCKET "/run/ipathd/ipathd.sock"
#define IPD_DEFAULT_SYSFS "/run/ipathd/sysfs"
/* Environment variable naming the control socket for clients. */
#define IPD_ENV_SOCKET "IPATHD_SOCKET"

/*
 * Send one packet of len bytes with nfds descriptors (SCM_RIGHTS),
 * retrying on EINTR.  Returns the bytes sent or -errno.
 */
ssize_t ipd_ctl_send_raw(int sock, const void *buf, size_t len,
			 const int *fds, int nfds);

/* Pack msg and send it with nfds descriptors.  0 or -errno. */
int ipd_ctl_send(int sock, const ProtobufCMessage *msg, const int *fds,
		 int nfds);

/*
 * Receive one packet into buf (capacity cap).  Received descriptors are
 * stored in fds (at most maxfds; extra ones are closed) and counted in
 * *nfds.  Returns the packet length, 0 on orderly close, or -errno
 * (-EMSGSIZE for a truncated packet; the descriptors of a truncated or
 * empty packet are closed).
 */
ssize_t ipd_ctl_recv(int sock, void *buf, size_t cap, int *fds, int *nfds,
		     int maxfds);

/*
 * Client side: send req (with fds), wait for the response and unpack it.
 * Returns the response (free with ipd__response__free_unpacked(r, NULL)) or
 * NULL with errno set.  Descriptors attached to the response go to rfds.
 */
Ipd__Response *ipd_ctl_call(int sock, const Ipd__Request *req, const int *fds,
			    int nfds, int *rfds, int *nrfds, int maxrfds);

#endif
