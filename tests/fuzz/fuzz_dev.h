/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets' fixture: one real ipathd device in this process (every
 * daemon file but main.c; loopback link, control socket and peer port in a
 * private directory and port), and one real control client talking to it
 * over the socket.  Nothing is replaced by test doubles: the targets feed
 * untrusted bytes to exactly the code the daemon runs.
 */
#ifndef IPATHD_FUZZ_DEV_H
#define IPATHD_FUZZ_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "ipathd/ctl.h"
#include "ipathd.h"

/* Start the device (once; later calls return the same one).  Aborts on
 * failure: a fixture that cannot start is a broken test. */
struct ipd_dev *fz_dev(void);

/* Run the daemon's event loop and engine until nothing progresses
 * (bounded). */
void fz_pump(void);

/* (Re)connect the client and say HELLO.  Aborts on failure. */
void fz_client_connect(void);

/*
 * Send one control packet of len bytes as it is, with nfds descriptors,
 * let the daemon serve it and read its answer.  Returns 1 when a response
 * came (unpacked into *resp if resp is not NULL; free it with
 * ipd__response__free_unpacked), 0 when the daemon cut the client off
 * (reconnected before returning), -1 when the packet was too large to
 * send.
 */
int fz_ctl_raw(const uint8_t *buf, size_t len, const int *fds, int nfds,
	       Ipd__Response **resp);

/* Pack and send req with nfds descriptors; the response (never NULL,
 * aborts otherwise). */
Ipd__Response *fz_ctl_call(const Ipd__Request *req, const int *fds, int nfds);

/* UDP port of the device's peer-exchange socket. */
uint16_t fz_peer_port(void);

/* Abort with a message when cond is false (also in release builds). */
#define FZ_ASSERT(cond)                                     \
	do {                                                \
		if (!(cond))                                \
			fz_fail(__FILE__, __LINE__, #cond); \
	} while (0)
_Noreturn void fz_fail(const char *file, int line, const char *what);

#endif
