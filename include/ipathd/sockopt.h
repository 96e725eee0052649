/* SPDX-License-Identifier: MIT */
/*
 * The socket options every RoCEv2 sender here shares, the daemon's UDP
 * link (daemon/link_udp.c) and the provider's application transmit
 * (provider/app_tx.c): don't fragment (IPv4 ID 0, as rxe sends, and the
 * path MTU honoured) and, for IPv6, IPv6 only.
 */
#ifndef IPATHD_SOCKOPT_H
#define IPATHD_SOCKOPT_H

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* 0, or -errno of the option that failed. */
static inline int ipd_sock_roce_opts(int fd, int family)
{
	int one = 1, pmtu;

	if (family == AF_INET) {
		pmtu = IP_PMTUDISC_DO;
		if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu,
			       sizeof(pmtu)))
			return -errno;
		return 0;
	}
	pmtu = IPV6_PMTUDISC_DO;
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu,
		       sizeof(pmtu)))
		return -errno;
	return 0;
}

#endif
