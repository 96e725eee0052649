// SPDX-License-Identifier: MIT
/*
 * The UDP link: RoCEv2 (IBA annex A17) packets in UDP datagrams to port
 * cfg->udp_port (4791, A17.2.1), over IPv4 and IPv6.  The only file that
 * knows about the sockets of the wire.
 *
 * Sending.  The ICRC covers the IP and UDP headers the kernel will write
 * (icrc.c), so every field of them must be predictable:
 *  - IPv4 identification: Linux writes ID 0 for a datagram with DF set
 *    from an *unconnected* socket (a connected one gets a per-socket
 *    counter), so every socket here is unconnected with
 *    IP_MTU_DISCOVER = IP_PMTUDISC_DO.  That also honours the path MTU:
 *    a datagram too big for the route fails with EMSGSIZE instead of
 *    being fragmented.
 *  - source address: chosen per datagram with IP_PKTINFO/IPV6_PKTINFO
 *    from pkt->src (the GID the address vector names).
 *  - UDP source port: A17.2.1 lets it carry flow entropy; the engine
 *    derives pkt->sport as rxe does (0xC000 | flow label or QP numbers).
 *    A UDP socket cannot pick its source port per datagram, so the link
 *    keeps one unconnected socket bound to each source port in use (up
 *    to UDP_SPORT_MAX per family, opened on first use) and the port on
 *    the wire is exactly pkt->sport, as with rxe.  When the table is
 *    full, the socket unused longest goes if it has been unused for
 *    UDP_SPORT_IDLE and no client may be sending from it (its flow gets
 *    one again when it sends and room can be made), so a daemon that
 *    runs for months keeps exact ports for the flows of now.  These
 *    sockets set SO_REUSEPORT so that a client's application transmit
 *    (app_tx.c) can bind the same port and a QP's packets keep one flow
 *    whoever sends them (udp_flow_port, which holds the socket open while
 *    the port is published to the client).  When a port cannot be bound
 *    (taken by another program) or more flows than the table holds are
 *    busy, the packet leaves from one of UDP_TX_SOCKS sockets on
 *    ephemeral ports chosen by hashing pkt->sport: the daemon's packets
 *    of a QP still stay in one flow, and those sockets set SO_REUSEPORT
 *    too, so that the client sends from that port as well.
 *    Receivers accept any source port.
 *  - UDP checksum: computed when udp_gso is on (the default: GSO needs
 *    it, see below); otherwise 0 on IPv4 (SO_NO_CHECK) and IPv6
 *    (UDP_NO_CHECK6_TX, RFC 6935), as rxe sends: the ICRC protects the
 *    packet, and a corrupted packet then reaches us and is counted in
 *    drop_icrc.
 * Datagrams are queued and handed to the kernel with sendmmsg when the
 * queue fills or before libev goes back to poll (an ev_prepare watcher),
 * so a burst from the engine costs one system call.
 *
 * UDP GSO ([link] udp_gso, on by default).  A multi-packet message is a
 * run of equal-size packets to one peer from one socket (only the last
 * may be shorter).  With GSO such a run leaves as one datagram with a
 * UDP_SEGMENT control message: the kernel cuts the payload every
 * gso_size bytes, so each segment is exactly one RoCEv2 packet with its
 * own ICRC, built from the packets in place (one iovec each, no copy).
 * The super-datagram crosses the stack, veth and bridge once instead of
 * once per packet.  The kernel refuses GSO without a UDP checksum, so
 * with udp_gso the sockets send checksums (the ICRC masks that field;
 * receiving kernels check it and drop a corrupted packet before us, so
 * it shows in UDP InCsumErrors, not in drop_icrc).
 *   The IPv4 ID of a segment: the datagram gets ID 0 (unconnected, DF)
 * and where it is cut (the kernel's software GSO or a NIC), segment k
 * gets ID k (inet_gso_segment counts up from the datagram's ID; seen on
 * the wire of Linux 6.18 with a veth whose gso_max_segs is 1).  The ICRC
 * covers the ID, so a packet's run index k is chosen as it is queued
 * (udp_xmit: the runs are fixed then, not at flush time) and its ICRC is
 * computed for ID k.  A datagram that arrives uncut (veth, bridge and
 * loopback pass GSO datagrams whole) carries ID 0 and is cut by the
 * receiver, by GRO splitting below or by the packet socket path, which
 * gives segment k ID k as the kernel would.  IPv6 has no ID.  A kernel
 * that refuses GSO (EIO, EINVAL) turns it off with a warning and the run
 * is sent datagram by datagram, each ICRC first corrected back to ID 0.
 *
 * Receiving.  recvmmsg drains up to UDP_RX_BATCH datagrams per call and a
 * bounded number of calls per wake-up; IP_PKTINFO tells which of our
 * addresses the datagram was sent to.  The ICRC is checked before the
 * engine sees the packet.  With UDP GRO ([link] udp_gro, on by default)
 * the kernel may hand over several datagrams of one flow as one buffer
 * with their size in a UDP_GRO control message (a GSO super-datagram
 * from a peer arrives so, uncut); the buffer is split back into packets
 * (the first stays in place, the others are copied out of a spill area)
 * and each is checked on its own.
 *
 * IPv4 and the IP identification.  A UDP socket never sees the IP header,
 * so the UDP receive path recomputes the ICRC assuming DF and ID 0, and
 * when that fails accepts any ID below IPD_ICRC_IDS (a GSO segment's):
 * the ICRCs of one packet for two IDs differ by a delta that depends only
 * on the packet's length (CRC-32 is linear), so the difference between
 * the ICRC computed for ID 0 and the one received is looked up among
 * cached deltas (icrc.c) instead of computing a CRC per candidate ID.
 * One CRC pass per packet either way; the ID found goes into pkt->ip_id
 * (captures show it).  A Linux rxe peer builds its own IPv4 header with
 * an ID from a per-destination counter (__ip_select_ident), seldom in
 * that range, so its packets fail the check (drop_icrc).  With [link] udp_rx =
 * packet (--udp-rx packet; the environment variable IPATHD_UDP_RX=udp|packet
 * overrides it, see env_word) and root or CAP_NET_RAW, IPv4 is received
 * instead through an AF_PACKET socket (SOCK_RAW, for PACKET_VNET_HDR:
 * its virtio_net_hdr gives the segment size of an uncut GSO datagram) with
 * a BPF filter for UDP to our port: the ICRC is then checked over the IP
 * header as it arrived, whatever its ID.  The UDP socket stays bound (so
 * the kernel sends no port-unreachable) with a drop-everything filter and
 * without UDP GRO.  It costs an extra copy per packet in the kernel, hence
 * not the default.  IPv6 has no such field: rxe peers over IPv6 work
 * either way.
 */
#include <endian.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_arp.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "ipathd/icrc.h"
#include "ipathd/sockopt.h"
#include "ipathd.h"

#ifndef UDP_NO_CHECK6_TX
#define UDP_NO_CHECK6_TX 101
#endif
#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* Linux 4.18; older headers lack it */
#endif

#define UDP_TX_SOCKS 8          /* fallback source ports per family */
#define UDP_SPORT_MAX 64        /* exact source ports per family */
#define UDP_SPORT_IDLE 1.0      /* s unused before a port's socket may go */
#define UDP_TX_BATCH 64         /* datagrams per sendmmsg */
#define UDP_RX_BATCH 32         /* datagrams per recvmmsg */
#define UDP_RX_ROUNDS 8         /* recvmmsg calls per wake-up, then yield */
#define UDP_SOCK_BUF (4 << 20)  /* socket buffers: a few hundred MTUs */
/* GSO: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.10) and the
 * largest UDP payload of an IPv4 datagram. */
#define UDP_GSO_MAX_SEGS 64
#define UDP_GSO_MAX_BYTES (65535 - 20 - 8)
/* GRO: a coalesced buffer holds at most 64 KiB in at most UDP_GRO_CNT_MAX
 * (64) segments; a peer's GSO datagram up to UDP_MAX_SEGMENTS (128 since
 * Linux 6.10). */
#define UDP_GRO_BYTES 65536
#define UDP_GRO_SEGS_MAX 128
/* The smallest RoCEv2 payload: a BTH and an ICRC (IBA 9.2: every packet
 * is a multiple of 4 bytes long). */
#define UDP_MIN_PAYLOAD (IPD_BTH_BYTES + IPD_ICRC_BYTES)

#define container_of(ptr, type, member)                                     \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* IP_PKTINFO/IPV6_PKTINFO, then UDP_SEGMENT (send) or UDP_GRO (receive) */
union udp_cmsg {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
		 CMSG_SPACE(sizeof(int))];
};

struct udp_family {
	int family;                /* AF_INET or AF_INET6; 0 = unused */
	int rx_fd;                 /* bound to cfg->udp_port */
	ev_io rx_w;
	int tx_fd[UDP_TX_SOCKS];   /* bound to ephemeral ports */
	uint16_t tx_port[UDP_TX_SOCKS];
	/* sockets bound to exact source ports: open addressing on port;
	 * port 0 = free slot, fd -1 = that port could not be bound; used =
	 * when a packet or a client last asked for it; holds = QPs whose
	 * clients may send from it now (udp_flow_port) */
	struct udp_sport {
		uint16_t port;
		int fd;
		unsigned int holds;
		ev_tstamp used;
	} sport[UDP_SPORT_MAX];
	unsigned int nsport;
	ev_tstamp evict_after;     /* none idle before (sport_evict) */
	struct udp_link *ul;
};

struct udp_tx_slot {
	struct ipd_pkt *pkt;
	struct sockaddr_storage to;
	union udp_cmsg cmsg;
	struct iovec iov;
	unsigned int seg; /* index in its GSO run, 0 = starts one */
};

struct udp_link {
	struct ipd_link link;
	struct ipd_dev *dev;
	uint16_t port;
	struct udp_family fam[2];  /* [0] IPv4, [1] IPv6 */
	ev_prepare flush_w;
	bool gso, gro;             /* see the top */

	/* transmit queue, one queue per socket would reorder nothing: a
	 * flush walks the queue in order and batches runs to one socket */
	struct udp_tx_slot tx[UDP_TX_BATCH];
	int tx_fd[UDP_TX_BATCH];
	unsigned int ntx;
	unsigned int run; /* slot where the last GSO run starts */
	size_t run_bytes; /* and its bytes so far */
	uint64_t tx_errors;
	int last_tx_errno;

	/* receive batch: packets stay allocated between wake-ups */
	struct ipd_pkt *rx_pkt[UDP_RX_BATCH];
	struct mmsghdr rx_msg[UDP_RX_BATCH];
	struct iovec rx_iov[UDP_RX_BATCH][2];   /* packet, GRO spill */
	uint8_t *rx_spill;         /* UDP_RX_BATCH * UDP_GRO_BYTES, with gro */
	struct sockaddr_storage rx_from[UDP_RX_BATCH];
	union udp_cmsg rx_cmsg[UDP_RX_BATCH];

	/* ICRC deltas of IPv4 IDs 1, 2.. per packet length (see the top) */
	struct ipd_icrc_ids ids;

	/* one-entry cache: source address for packets without pkt->src */
	struct sockaddr_storage route_dst, route_src;

	/* udp_rx = packet: IPv4 through a packet socket (see top) */
	int raw_fd;
	ev_io raw_w;
};

/* IPv4 + UDP headers in front of the BTH on the packet-socket path; in
 * front of them the link-layer header (a SOCK_RAW packet socket: Ethernet
 * and loopback have 14 bytes, devices without link-layer headers none)
 * and the virtio_net_hdr (PACKET_VNET_HDR, SOCK_RAW only) that tells
 * whether the frame is a GSO datagram still uncut, and its segment size. */
#define RAW_HDRS (IPD_IPV4_HDR_BYTES + IPD_UDP_HDR_BYTES)
#define RAW_VNET  sizeof(struct virtio_net_hdr)
#define RAW_L2	  ETH_HLEN
#define RAW_FRONT (RAW_VNET + RAW_L2 + RAW_HDRS)

/* ---- addresses ----------------------------------------------------- */

/* Plain AF_INET for IPv4 (also from a v4-mapped AF_INET6), AF_INET6
 * otherwise; port 0, no scope.  AF_UNSPEC when there is no address. */
static int addr_normalize(const struct sockaddr_storage *in,
			  struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *s6 = (const void *)in;
	struct sockaddr_in *o4 = (void *)out;
	struct sockaddr_in6 *o6 = (void *)out;

	memset(out, 0, sizeof(*out));
	if (in->ss_family == AF_INET) {
		o4->sin_family = AF_INET;
		o4->sin_addr = ((const struct sockaddr_in *)(const void *)in)->sin_addr;
		return AF_INET;
	}
	if (in->ss_family != AF_INET6)
		return AF_UNSPEC;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		o4->sin_family = AF_INET;
		memcpy(&o4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		return AF_INET;
	}
	o6->sin6_family = AF_INET6;
	o6->sin6_addr = s6->sin6_addr;
	return AF_INET6;
}

static bool addr_is_any(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)ss)
			->sin_addr.s_addr == htonl(INADDR_ANY);
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
			&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
	return true;
}

static socklen_t addr_len(int family)
{
	return family == AF_INET ? sizeof(struct sockaddr_in)
				 : sizeof(struct sockaddr_in6);
}

static void addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

/* The source address the routing table picks for dst (a packet whose
 * address vector did not name one): ask the kernel with a connected
 * throw-away socket.  Cached for the last destination. */
static int route_source(struct udp_link *ul, const struct sockaddr_storage *dst,
			struct sockaddr_storage *src)
{
	struct sockaddr_storage to = *dst, got;
	socklen_t len = sizeof(got);
	int fd, ret = 0;

	if (!memcmp(&ul->route_dst, dst, sizeof(*dst))) {
		*src = ul->route_src;
		return 0;
	}
	fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	addr_set_port(&to, ul->port);
	if (connect(fd, (struct sockaddr *)&to, addr_len(to.ss_family)) ||
	    getsockname(fd, (struct sockaddr *)&got, &len))
		ret = -errno;
	close(fd);
	if (ret)
		return ret;
	addr_normalize(&got, src);
	ul->route_dst = *dst;
	ul->route_src = *src;
	return 0;
}

/* ---- sockets ------------------------------------------------------- */

static void sock_bufs(int fd)
{
	int sz = UDP_SOCK_BUF;

	/* The FORCE variants pass the sysctl limits when we are root. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/* Options every socket of a family gets: see the comment at the top.
 * csum: send UDP checksums (GSO needs them). */
static int sock_setup(int fd, int family, bool csum)
{
	int one = 1, ret = ipd_sock_roce_opts(fd, family);

	if (ret)
		return ret;
	if (family == AF_INET) {
		if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) ||
		    (!csum && setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one,
					 sizeof(one))))
			return -errno;
	} else {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
			       sizeof(one)))
			return -errno;
		/* Zero checksums out and in (rxe sends zero); not fatal on
		 * kernels without the options. */
		if (!csum)
			setsockopt(fd, IPPROTO_UDP, UDP_NO_CHECK6_TX, &one,
				   sizeof(one));
		setsockopt(fd, IPPROTO_UDP, UDP_NO_CHECK6_RX, &one, sizeof(one));
	}
	sock_bufs(fd);
	return 0;
}

/* A socket of family bound to port (0 = ephemeral); *bound gets the port.
 * shared: other sockets of the daemon's user may bind the port too.  An
 * ephemeral port is chosen before SO_REUSEPORT is set: with it set, the
 * kernel may pick a port another socket of the same user holds. */
static int sock_open(int family, uint16_t port, uint16_t *bound, bool csum,
		     bool shared)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	socklen_t len = sizeof(ss);
	int fd, ret, one = 1;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = sock_setup(fd, family, csum);
	if (!ret && shared && port &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		ret = -errno;
	if (ret)
		goto err_close;
	addr_set_port(&ss, port);
	if (bind(fd, (struct sockaddr *)&ss, addr_len(family)) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    (shared && !port &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))) {
		ret = -errno;
		goto err_close;
	}
	if (bound)
		*bound = addr_port(&ss);
	return fd;

err_close:
	close(fd);
	return ret;
}

/* ---- transmit ------------------------------------------------------ */

static void tx_count_error(struct udp_link *ul, int err)
{
	ul->tx_errors++;
	ul->dev->cnt.udp_tx_errors++;
	/* Log each new kind of failure once; EAGAIN/ENOBUFS are plain
	 * congestion and the transport's retransmission answers them. */
	if (err != ul->last_tx_errno && err != EAGAIN && err != ENOBUFS)
		ipd_warn("udp: send failed: %s%s", strerror(err),
			 err == EMSGSIZE ? " (packet larger than the path MTU)"
					 : "");
	ul->last_tx_errno = err;
}

static socklen_t pktinfo_space(int family)
{
	return family == AF_INET ? CMSG_SPACE(sizeof(struct in_pktinfo))
				 : CMSG_SPACE(sizeof(struct in6_pktinfo));
}

/* Does queued datagram j extend the GSO run that starts at g (bytes so
 * far)?  Same socket, destination and source address; every segment but
 * the last exactly as long as the first. */
static bool tx_gso_joins(const struct udp_link *ul, unsigned int g,
			 unsigned int j, size_t bytes)
{
	const struct udp_tx_slot *a = &ul->tx[g], *b = &ul->tx[j];
	size_t seg = a->iov.iov_len;

	return ul->gso && ul->tx_fd[j] == ul->tx_fd[g] &&
	       j - g < UDP_GSO_MAX_SEGS && ul->tx[j - 1].iov.iov_len == seg &&
	       b->iov.iov_len <= seg &&
	       bytes + b->iov.iov_len <= UDP_GSO_MAX_BYTES &&
	       !memcmp(&a->to, &b->to, sizeof(a->to)) &&
	       !memcmp(a->cmsg.buf, b->cmsg.buf,
		       pktinfo_space(a->to.ss_family));
}

/* Slot j, its fields set, joins the GSO run being queued or starts one:
 * its index in the run.  Decided here, not at flush time, because the
 * index is the segment's IPv4 ID and so part of its ICRC. */
static unsigned int tx_gso_seg(struct udp_link *ul, unsigned int j)
{
	if (j && tx_gso_joins(ul, ul->run, j, ul->run_bytes))
		return j - ul->run;
	ul->run = j;
	ul->run_bytes = 0;
	return 0;
}

/* Append UDP_SEGMENT (the segment size) after the PKTINFO message. */
static socklen_t tx_gso_cmsg(union udp_cmsg *cm, socklen_t off, size_t seg)
{
	struct cmsghdr *c = (struct cmsghdr *)(void *)(cm->buf + off);
	uint16_t size = (uint16_t)seg;

	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(size));
	memcpy(CMSG_DATA(c), &size, sizeof(size));
	return CMSG_SPACE(sizeof(size));
}

/* Rewrite the ICRC at the end of iov, computed for IPv4 ID id, for ID 0
 * (a segment that leaves as a datagram of its own). */
static void tx_icrc_id_fix(struct udp_link *ul, const struct iovec *iov,
			   uint16_t id)
{
	uint8_t *icrc =
		(uint8_t *)iov->iov_base + iov->iov_len - IPD_ICRC_BYTES;
	uint32_t len = (uint32_t)iov->iov_len - IPD_ICRC_BYTES;

	ipd_icrc_store(icrc, ipd_icrc_load(icrc) ^
				     ipd_icrc_id_delta(&ul->ids, len, id));
}

/* A message the kernel refused.  A GSO run it refused as such is sent
 * again datagram by datagram, and GSO stays off from now on. */
static void tx_failed(struct udp_link *ul, int fd, const struct msghdr *mh,
		      int err)
{
	int family = ((const struct sockaddr *)mh->msg_name)->sa_family;
	struct msghdr one = *mh;
	size_t k;

	if (mh->msg_iovlen > 1 && (err == EIO || err == EINVAL ||
				   err == ENOPROTOOPT || err == EOPNOTSUPP)) {
		if (ul->gso)
			ipd_warn("udp: the kernel refused UDP GSO (%s): sending datagram by datagram",
				 strerror(err));
		ul->gso = false;
		one.msg_controllen = pktinfo_space(family);
		one.msg_iovlen = 1;
		for (k = 0; k < mh->msg_iovlen; k++) {
			one.msg_iov = &mh->msg_iov[k];
			/* alone it leaves with IPv4 ID 0, not k */
			if (k && family == AF_INET)
				tx_icrc_id_fix(ul, &mh->msg_iov[k],
					       (uint16_t)k);
			if (sendmsg(fd, &one, 0) < 0)
				tx_count_error(ul, errno);
		}
		return;
	}
	for (k = 0; k < mh->msg_iovlen; k++)
		tx_count_error(ul, err);
}

static void tx_count_gso(struct udp_link *ul, const struct mmsghdr *msg,
			 unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (msg[i].msg_hdr.msg_iovlen > 1) {
			ul->dev->cnt.udp_gso_sends++;
			ul->dev->cnt.udp_gso_pkts += msg[i].msg_hdr.msg_iovlen;
		}
	}
}

/* Hand the queued datagrams to the kernel: GSO runs as one message each,
 * one sendmmsg per run of messages for the same socket. */
static void tx_flush(struct udp_link *ul)
{
	struct mmsghdr msg[UDP_TX_BATCH];
	struct iovec iov[UDP_TX_BATCH];
	int fd[UDP_TX_BATCH];
	unsigned int i, j, m = 0, start, n;
	int sent;

	/* the runs were chosen as the packets were queued (udp_xmit) */
	for (i = 0; i < ul->ntx; i = j, m++) {
		struct udp_tx_slot *s = &ul->tx[i];
		struct msghdr *mh = &msg[m].msg_hdr;

		iov[i] = s->iov;
		for (j = i + 1; j < ul->ntx && ul->tx[j].seg; j++)
			iov[j] = ul->tx[j].iov;
		memset(&msg[m], 0, sizeof(msg[m]));
		mh->msg_name = &s->to;
		mh->msg_namelen = addr_len(s->to.ss_family);
		mh->msg_iov = &iov[i];
		mh->msg_iovlen = j - i;
		mh->msg_control = s->cmsg.buf;
		mh->msg_controllen = pktinfo_space(s->to.ss_family);
		if (j - i > 1)
			mh->msg_controllen += tx_gso_cmsg(
				&s->cmsg, (socklen_t)mh->msg_controllen,
				s->iov.iov_len);
		fd[m] = ul->tx_fd[i];
	}
	for (start = 0; start < m; start += (unsigned int)sent) {
		n = 1;
		while (start + n < m && fd[start + n] == fd[start])
			n++;
		sent = sendmmsg(fd[start], &msg[start], n, 0);
		if (sent < 0) {
			/* The first message failed: drop it, go on. */
			tx_failed(ul, fd[start], &msg[start].msg_hdr, errno);
			sent = 1;
			continue;
		}
		tx_count_gso(ul, &msg[start], (unsigned int)sent);
	}
	for (i = 0; i < ul->ntx; i++)
		ipd_pkt_free(ul->dev, ul->tx[i].pkt);
	ul->ntx = 0;
}

static void udp_flush(struct ipd_link *link)
{
	struct udp_link *ul = link->priv;

	if (ul->ntx)
		tx_flush(ul);
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct udp_link *ul = container_of(w, struct udp_link, flush_w);

	udp_flush(&ul->link);
}

static void tx_pktinfo(union udp_cmsg *cm, const struct sockaddr_storage *src)
{
	struct cmsghdr *c = &cm->align;

	memset(cm, 0, sizeof(*cm));
	if (src->ss_family == AF_INET) {
		struct in_pktinfo pi = { 0 };

		pi.ipi_spec_dst =
			((const struct sockaddr_in *)(const void *)src)->sin_addr;
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	} else {
		struct in6_pktinfo pi = { 0 };

		pi.ipi6_addr =
			((const struct sockaddr_in6 *)(const void *)src)->sin6_addr;
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	}
}

/* The slot for port in the open-addressing table: the one holding it, or
 * the free one where it would go; NULL when neither (full). */
static struct udp_sport *sport_slot(struct udp_family *uf, uint16_t port)
{
	unsigned int h = (port * 2654435761u) >> 26, i; /* 0..63 */
	struct udp_sport *e;

	for (i = 0; i < UDP_SPORT_MAX; i++) {
		e = &uf->sport[(h + i) % UDP_SPORT_MAX];
		if (e->port == port || !e->port)
			return e;
	}
	return NULL;
}

/* Idle: unused for UDP_SPORT_IDLE (or stamped in the future: the wall
 * clock went back), held by no client, no queued datagram leaving from
 * it. */
static bool sport_idle(const struct udp_family *uf, const struct udp_sport *e,
		       ev_tstamp now)
{
	unsigned int i;

	if (e->holds || (now - e->used < UDP_SPORT_IDLE && now >= e->used))
		return false;
	for (i = 0; e->fd >= 0 && i < uf->ul->ntx; i++)
		if (uf->ul->tx_fd[i] == e->fd)
			return false;
	return true;
}

/* Make room for one more port: close the idle socket unused longest,
 * then put the others back where lookups find them.  A full scan that
 * finds none idle is not repeated until the oldest could be. */
static bool sport_evict(struct udp_family *uf, ev_tstamp now)
{
	struct udp_sport old[UDP_SPORT_MAX], *v = NULL, *e;
	ev_tstamp oldest = now;
	unsigned int i;

	if (now < uf->evict_after && uf->evict_after - now <= UDP_SPORT_IDLE)
		return false;
	for (i = 0; i < UDP_SPORT_MAX; i++) {
		e = &uf->sport[i];
		if (!e->port)
			continue;
		if (!e->holds && e->used < oldest)
			oldest = e->used;
		if (sport_idle(uf, e, now) && (!v || e->used < v->used))
			v = e;
	}
	if (!v) {
		uf->evict_after = oldest + UDP_SPORT_IDLE;
		return false;
	}
	if (v->fd >= 0) {
		close(v->fd);
		uf->ul->dev->cnt.udp_sport_evictions++;
	}
	v->port = 0;
	memcpy(old, uf->sport, sizeof(old));
	memset(uf->sport, 0, sizeof(uf->sport));
	for (i = 0; i < UDP_SPORT_MAX; i++)
		if (old[i].port)
			*sport_slot(uf, old[i].port) = old[i];
	uf->nsport--;
	return true;
}

/* The socket bound to sport itself, opened at first use (see the top);
 * NULL when it cannot be had. */
static struct udp_sport *sport_get(struct udp_family *uf, uint16_t sport)
{
	ev_tstamp now = ev_now(uf->ul->dev->loop);
	struct udp_sport *e = sport ? sport_slot(uf, sport) : NULL;
	int fd;

	/* Keep one slot free so that lookups always terminate. */
	if (e && !e->port && uf->nsport + 1 >= UDP_SPORT_MAX)
		e = sport_evict(uf, now) ? sport_slot(uf, sport) : NULL;
	if (e && !e->port) {
		fd = sock_open(uf->family, sport, NULL, uf->ul->gso, true);
		*e = (struct udp_sport){.port = sport, .fd = fd < 0 ? -1 : fd};
		uf->nsport++;
	}
	if (!e || e->fd < 0)
		return NULL;
	e->used = now;
	return e;
}

/* The shared socket of a flow without its own, and its port. */
static int tx_shared(const struct udp_family *uf, uint16_t sport,
		     uint16_t *wire)
{
	unsigned int idx = (unsigned int)(sport ^ (sport >> 8)) % UDP_TX_SOCKS;

	*wire = uf->tx_port[idx];
	return uf->tx_fd[idx];
}

/* The socket a flow leaves from and the source port it gets on the wire:
 * a socket bound to sport itself when possible. */
static int tx_sock(struct udp_family *uf, uint16_t sport, uint16_t *wire)
{
	struct udp_sport *e = sport_get(uf, sport);

	if (!e)
		return tx_shared(uf, sport, wire);
	*wire = sport;
	return e->fd;
}

/* The sockets of the family of an address normalized to family. */
static struct udp_family *udp_fam(struct udp_link *ul, int family)
{
	struct udp_family *uf = family == AF_INET    ? &ul->fam[0]
			      : family == AF_INET6 ? &ul->fam[1]
						   : NULL;

	return uf && uf->family ? uf : NULL;
}

/* A client sends the QP's packets from this port too (app_tx.c): opening
 * the socket here, ahead of the client, keeps the port the daemon's.  It
 * is the flow's own port, held open until udp_flow_release, or, when that
 * cannot be had, the shared one the daemon sends the flow's packets from
 * (*held false). */
static uint16_t udp_flow_port(struct ipd_link *link,
			      const struct sockaddr_storage *dst,
			      uint16_t sport, bool *held)
{
	struct udp_link *ul = link->priv;
	struct sockaddr_storage to;
	struct udp_family *uf = udp_fam(ul, addr_normalize(dst, &to));
	struct udp_sport *e;
	uint16_t wire;

	*held = false;
	if (!uf)
		return 0;
	e = sport_get(uf, sport);
	if (!e) {
		tx_shared(uf, sport, &wire);
		return wire;
	}
	e->holds++;
	*held = true;
	return sport;
}

static void udp_flow_release(struct ipd_link *link,
			     const struct sockaddr_storage *dst, uint16_t sport)
{
	struct udp_link *ul = link->priv;
	struct sockaddr_storage to;
	struct udp_family *uf = udp_fam(ul, addr_normalize(dst, &to));
	struct udp_sport *e = uf && sport ? sport_slot(uf, sport) : NULL;

	if (e && e->port == sport && e->holds) {
		e->holds--;
		e->used = ev_now(ul->dev->loop);
	}
}

static int udp_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	struct udp_link *ul = link->priv;
	struct udp_tx_slot *s = &ul->tx[ul->ntx];
	struct sockaddr_storage src;
	struct udp_family *uf;
	struct ipd_icrc_flow flow;
	uint16_t wire_sport;
	int family, ret, fd;

	family = addr_normalize(&pkt->dst, &s->to);
	uf = udp_fam(ul, family);
	if (!uf) {
		ret = -EAFNOSUPPORT;
		goto err_drop;
	}
	if (pkt->hdr + pkt->len + IPD_ICRC_BYTES > pkt->buf + sizeof(pkt->buf) ||
	    pkt->len < IPD_BTH_BYTES) {
		ret = -EMSGSIZE;
		goto err_drop;
	}
	if (addr_normalize(&pkt->src, &src) != family || addr_is_any(&src)) {
		ret = route_source(ul, &s->to, &src);
		if (ret)
			goto err_drop;
	}
	fd = tx_sock(uf, pkt->sport, &wire_sport);
	addr_set_port(&s->to, ul->port);
	tx_pktinfo(&s->cmsg, &src);
	s->iov.iov_base = pkt->hdr;
	s->iov.iov_len = pkt->len + IPD_ICRC_BYTES;
	ul->tx_fd[ul->ntx] = fd;
	s->seg = tx_gso_seg(ul, ul->ntx);
	/* Unconnected socket + DF: ID 0, and segment k of a GSO datagram
	 * gets ID k from the kernel (see the top). */
	pkt->ip_id = family == AF_INET ? (uint16_t)s->seg : 0;
	flow = (struct ipd_icrc_flow){
		.src = (struct sockaddr *)&src,
		.dst = (struct sockaddr *)&s->to,
		.sport = wire_sport,
		.dport = ul->port,
		.ip_id = pkt->ip_id,
		.ip_df = true,
	};
	ret = ipd_icrc_append(&flow, pkt->hdr, pkt->len);
	if (ret)
		goto err_drop;
	if (__builtin_expect(ul->dev->captures != NULL, 0))
		ipd_capture_pkt(ul->dev, pkt, true);
	s->pkt = pkt;
	ul->run_bytes += s->iov.iov_len;
	if (++ul->ntx == UDP_TX_BATCH)
		tx_flush(ul);
	return 0;

err_drop:
	if (__builtin_expect(ul->dev->captures != NULL, 0))
		ipd_capture_pkt(ul->dev, pkt, true); /* counted as sent */
	tx_count_error(ul, -ret);
	ipd_pkt_free(ul->dev, pkt);
	return ret;
}

/* ---- receive ------------------------------------------------------- */

/* Fill empty batch slots with fresh packets; false when none is left.
 * raw: the datagram starts with the IPv4 and UDP headers, received into
 * the headroom so that the BTH still lands at IPD_PKT_HEADROOM.  With
 * GRO a slot's second iovec is its spill area (see the top). */
static bool rx_refill(struct udp_link *ul, unsigned int *n, bool raw)
{
	size_t front = raw ? RAW_FRONT : 0;
	bool spill = ul->rx_spill != NULL;
	unsigned int i;

	for (i = 0; i < UDP_RX_BATCH; i++) {
		struct mmsghdr *m = &ul->rx_msg[i];

		if (!ul->rx_pkt[i]) {
			ul->rx_pkt[i] = ipd_pkt_alloc(ul->dev);
			if (!ul->rx_pkt[i])
				break;
		}
		ul->rx_iov[i][0].iov_base =
			ul->rx_pkt[i]->buf + IPD_PKT_HEADROOM - front;
		ul->rx_iov[i][0].iov_len = IPD_PKT_DATA_MAX + front;
		memset(m, 0, sizeof(*m));
		m->msg_hdr.msg_name = &ul->rx_from[i];
		m->msg_hdr.msg_namelen = sizeof(ul->rx_from[i]);
		m->msg_hdr.msg_iov = ul->rx_iov[i];
		m->msg_hdr.msg_iovlen = 1;
		if (spill) {
			ul->rx_iov[i][1].iov_base =
				ul->rx_spill + (size_t)i * UDP_GRO_BYTES;
			ul->rx_iov[i][1].iov_len = UDP_GRO_BYTES;
			m->msg_hdr.msg_iovlen = 2;
		}
		m->msg_hdr.msg_control = ul->rx_cmsg[i].buf;
		m->msg_hdr.msg_controllen = sizeof(ul->rx_cmsg[i].buf);
	}
	*n = i;
	return i > 0;
}

/* The local address the datagram was sent to (IP_PKTINFO) and, when the
 * kernel coalesced datagrams (UDP_GRO), their size in *gso (else 0). */
static bool rx_dst_addr(struct msghdr *mh, int family,
			struct sockaddr_storage *dst, uint32_t *gso)
{
	struct cmsghdr *c;
	bool found = false;
	int size;

	memset(dst, 0, sizeof(*dst));
	*gso = 0;
	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (family == AF_INET && c->cmsg_level == IPPROTO_IP &&
		    c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			struct sockaddr_in *d = (void *)dst;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			d->sin_family = AF_INET;
			d->sin_addr = pi.ipi_addr;  /* header destination */
			found = true;
		} else if (family == AF_INET6 &&
			   c->cmsg_level == IPPROTO_IPV6 &&
			   c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			struct sockaddr_in6 *d = (void *)dst;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			d->sin6_family = AF_INET6;
			d->sin6_addr = pi.ipi6_addr;
			found = true;
		} else if (c->cmsg_level == SOL_UDP &&
			   c->cmsg_type == UDP_GRO) {
			memcpy(&size, CMSG_DATA(c), sizeof(size));
			*gso = size > 0 ? (uint32_t)size : 0;
		}
	}
	return found;
}

/* Check one RoCEv2 datagram of len bytes at pkt->hdr whose addresses
 * are set; true when it goes to the engine. */
static bool rx_check(struct udp_link *ul, struct ipd_pkt *pkt, uint32_t len)
{
	struct ipd_counters *cnt = &ul->dev->cnt;
	struct ipd_icrc_flow flow;
	int id;

	if (len < UDP_MIN_PAYLOAD || len % 4 || len > IPD_PKT_DATA_MAX) {
		cnt->drop_malformed++;
		return false;
	}
	flow = (struct ipd_icrc_flow){
		.src = (struct sockaddr *)&pkt->src,
		.dst = (struct sockaddr *)&pkt->dst,
		.sport = pkt->sport,
		.dport = ul->port,
		.ip_id = 0, /* a guess: any GSO segment's ID matches */
		.ip_df = true,
	};
	id = ipd_icrc_verify_ids(&flow, pkt->hdr, len, &ul->ids);
	if (id < 0) {
		cnt->drop_icrc++;
		return false;
	}
	pkt->ip_id = (uint16_t)id;
	pkt->len = len - IPD_ICRC_BYTES;
	return true;
}

/* Copy len bytes at off of slot i's buffer (packet area, then spill;
 * off counts from the start of the packet area's iovec). */
static void rx_gather(struct udp_link *ul, unsigned int i, uint32_t off,
		      uint8_t *dst, uint32_t len)
{
	const uint8_t *head = ul->rx_iov[i][0].iov_base;
	const uint8_t *spill = ul->rx_iov[i][1].iov_base;
	uint32_t nhead = (uint32_t)ul->rx_iov[i][0].iov_len, c;

	if (off < nhead) {
		c = len < nhead - off ? len : nhead - off;
		memcpy(dst, head + off, c);
		dst += c;
		off += c;
		len -= c;
	}
	if (len)
		memcpy(dst, spill + (off - nhead), len);
}

/* One received message of slot i: a datagram, or with GRO several of one
 * size (the last may be shorter), each a packet for the engine. */
static void rx_one(struct udp_link *ul, struct udp_family *uf, unsigned int i)
{
	struct mmsghdr *m = &ul->rx_msg[i];
	struct ipd_pkt *pkt = ul->rx_pkt[i], *seg[UDP_GRO_SEGS_MAX];
	uint32_t total = m->msg_len, size, nseg, k, off;

	if (!total || (m->msg_hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    addr_normalize(&ul->rx_from[i], &pkt->src) != uf->family ||
	    !rx_dst_addr(&m->msg_hdr, uf->family, &pkt->dst, &size)) {
		ul->dev->cnt.drop_malformed++;
		return;
	}
	pkt->sport = addr_port(&ul->rx_from[i]);
	pkt->hdr = pkt->buf + IPD_PKT_HEADROOM;
	if (!size || size >= total)
		size = total;
	nseg = (total + size - 1) / size;
	if (size > IPD_PKT_DATA_MAX || nseg > UDP_GRO_SEGS_MAX) {
		ul->dev->cnt.drop_malformed++;
		return;
	}
	/* Copy the later segments out before the first one reaches the
	 * engine (which may reuse its buffer). */
	seg[0] = pkt;
	for (k = 1, off = size; k < nseg; k++, off += size) {
		seg[k] = ipd_pkt_alloc(ul->dev);
		if (!seg[k]) {
			ul->dev->cnt.drop_malformed++;
			nseg = k;
			break;
		}
		seg[k]->src = pkt->src;
		seg[k]->dst = pkt->dst;
		seg[k]->sport = pkt->sport;
		seg[k]->len = total - off < size ? total - off : size;
		rx_gather(ul, i, off, seg[k]->hdr, seg[k]->len);
	}
	for (k = 0; k < nseg; k++) {
		if (rx_check(ul, seg[k], k ? seg[k]->len : size)) {
			ipd_engine_rx(ul->dev, seg[k]);
			if (!k)
				ul->rx_pkt[i] = NULL;
		} else if (k) {
			ipd_pkt_free(ul->dev, seg[k]);
		}
		/* a rejected first segment stays in the slot */
	}
}

static void rx_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct udp_family *uf = container_of(w, struct udp_family, rx_w);
	struct udp_link *ul = uf->ul;
	unsigned int round, i, n;
	int got;

	for (round = 0; round < UDP_RX_ROUNDS; round++) {
		if (!rx_refill(ul, &n, false))
			return;   /* out of packets: level-triggered, retry */
		got = recvmmsg(uf->rx_fd, ul->rx_msg, n, MSG_DONTWAIT, NULL);
		if (got <= 0) {
			if (got < 0 && errno != EAGAIN && errno != EINTR)
				ipd_warn("udp: recvmmsg: %s", strerror(errno));
			return;
		}
		for (i = 0; i < (unsigned int)got; i++)
			rx_one(ul, uf, i);
		if ((unsigned int)got < n)
			return;   /* drained */
	}
}

/* ---- IPv4 receive through a packet socket ---------------------------- */

_Static_assert(RAW_FRONT <= IPD_PKT_HEADROOM,
	       "headroom holds virtio_net_hdr, Ethernet, IPv4 and UDP");

/* Bytes of link-layer header in front of the IP header of a SOCK_RAW
 * packet socket's frame (the kernel keeps the header of devices that
 * have header operations). */
static uint32_t raw_l2_len(const struct sockaddr_ll *ll)
{
	if (ll->sll_hatype == ARPHRD_ETHER || ll->sll_hatype == ARPHRD_LOOPBACK)
		return RAW_L2;
	return 0;
}

static bool raw_dst_is_ours(const struct ipd_dev *dev, const uint8_t *daddr)
{
	int i;

	for (i = 0; i < dev->ngids; i++) {
		const struct sockaddr_in *a = (const void *)&dev->gids[i].addr;

		if (a->sin_family == AF_INET && !memcmp(&a->sin_addr, daddr, 4))
			return true;
	}
	return false;
}

static uint16_t be16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Check one IPv4 packet from the packet socket, its headers at ip in
 * front of its BTH at pkt->buf + IPD_PKT_HEADROOM, len bytes from the IP
 * header to the ICRC; true = to the engine. */
static bool raw_check(struct udp_link *ul, struct ipd_pkt *pkt,
		      const uint8_t *ip, uint32_t len)
{
	struct ipd_counters *cnt = &ul->dev->cnt;
	struct sockaddr_in *src = (void *)&pkt->src, *dst = (void *)&pkt->dst;
	int ok = ipd_icrc_verify_ip(ip, len);

	if (ok != 1) {
		if (ok < 0)
			cnt->drop_malformed++;
		else
			cnt->drop_icrc++;
		return false;
	}
	memset(&pkt->src, 0, sizeof(pkt->src));
	memset(&pkt->dst, 0, sizeof(pkt->dst));
	src->sin_family = dst->sin_family = AF_INET;
	memcpy(&src->sin_addr, ip + 12, 4);
	memcpy(&dst->sin_addr, ip + 16, 4);
	pkt->sport = be16_at(ip + IPD_IPV4_HDR_BYTES);
	pkt->ip_id = be16_at(ip + 4);
	pkt->hdr = pkt->buf + IPD_PKT_HEADROOM;
	pkt->len = len - RAW_HDRS - IPD_ICRC_BYTES;
	return true;
}

/* The IPv4 and UDP headers of segment k (seg bytes of UDP payload) of
 * the datagram whose headers are at ip, as the kernel writes them when it
 * cuts a GSO datagram (inet_gso_segment: the ID counts up from the
 * datagram's); the checksums are left as they are (the ICRC masks them). */
static void raw_seg_hdrs(uint8_t *to, const uint8_t *ip, uint32_t k,
			 uint32_t seg)
{
	uint16_t id = (uint16_t)(be16_at(ip + 4) + k);
	uint16_t udp_len = (uint16_t)(IPD_UDP_HDR_BYTES + seg);

	if (to != ip)
		memcpy(to, ip, RAW_HDRS);
	to[2] = (uint8_t)((IPD_IPV4_HDR_BYTES + udp_len) >> 8);
	to[3] = (uint8_t)(IPD_IPV4_HDR_BYTES + udp_len);
	to[4] = (uint8_t)(id >> 8);
	to[5] = (uint8_t)id;
	to[IPD_IPV4_HDR_BYTES + 4] = (uint8_t)(udp_len >> 8);
	to[IPD_IPV4_HDR_BYTES + 5] = (uint8_t)udp_len;
}

/* One IPv4 frame of slot i from the packet socket: a datagram, or a GSO
 * datagram not cut on its way here (veth, bridge and loopback pass them
 * whole), which is cut here as the kernel would have: each segment is a
 * packet with the IP ID it would have had. */
static void raw_one(struct udp_link *ul, unsigned int i)
{
	const struct sockaddr_ll *ll = (const void *)&ul->rx_from[i];
	struct ipd_pkt *pkt = ul->rx_pkt[i], *seg[UDP_GRO_SEGS_MAX];
	struct ipd_counters *cnt = &ul->dev->cnt;
	uint8_t *front = ul->rx_iov[i][0].iov_base;
	uint8_t *ip = pkt->buf + IPD_PKT_HEADROOM - RAW_HDRS;
	uint32_t got = ul->rx_msg[i].msg_len, l2 = raw_l2_len(ll), start;
	uint32_t len, paylen, size, nseg, k, n;
	struct virtio_net_hdr vh;

	/* Frames for other hosts (promiscuous interfaces) and our own. */
	start = (uint32_t)RAW_VNET + l2; /* the IP header in the iovecs */
	if (ll->sll_pkttype != PACKET_HOST || got < start + RAW_HDRS)
		return;
	got -= start;
	if (front[start] != 0x45)
		goto malformed; /* the filter let only these through */
	if (!raw_dst_is_ours(ul->dev, front + start + 16))
		return;
	memcpy(&vh, front, sizeof(vh));
	len = be16_at(front + start + 2); /* frames may carry padding */
	if ((ul->rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC) || len > got ||
	    len < RAW_HDRS + UDP_MIN_PAYLOAD ||
	    be16_at(front + start + IPD_IPV4_HDR_BYTES + 4) !=
		    len - IPD_IPV4_HDR_BYTES)
		goto malformed;
	paylen = len - RAW_HDRS;
	size = paylen;
	if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		/* virtio fields are little-endian for packet sockets */
		size = le16toh(vh.gso_size);
		if ((vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) !=
			    VIRTIO_NET_HDR_GSO_UDP_L4 ||
		    !size)
			goto malformed;
		if (size > paylen)
			size = paylen; /* one segment */
	}
	nseg = (paylen + size - 1) / size;
	if (size > IPD_PKT_DATA_MAX || nseg > UDP_GRO_SEGS_MAX)
		goto malformed;
	/* Copy the later segments out before the first one reaches the
	 * engine (which may reuse its buffer). */
	seg[0] = pkt;
	for (k = 1; k < nseg; k++) {
		seg[k] = ipd_pkt_alloc(ul->dev);
		if (!seg[k]) {
			cnt->drop_malformed++;
			nseg = k;
			break;
		}
		n = paylen - k * size < size ? paylen - k * size : size;
		raw_seg_hdrs(seg[k]->buf + IPD_PKT_HEADROOM - RAW_HDRS,
			     front + start, k, n);
		rx_gather(ul, i, start + RAW_HDRS + k * size,
			  seg[k]->buf + IPD_PKT_HEADROOM, n);
	}
	/* The first segment's BTH goes to IPD_PKT_HEADROOM (it is already
	 * there behind an Ethernet header; it fits in the packet area). */
	if (front + start != ip)
		memmove(ip, front + start, RAW_HDRS + size);
	if (nseg > 1)
		raw_seg_hdrs(ip, ip, 0, size);
	for (k = 0; k < nseg; k++) {
		uint8_t *h = seg[k]->buf + IPD_PKT_HEADROOM - RAW_HDRS;

		if (raw_check(ul, seg[k], h, be16_at(h + 2))) {
			ipd_engine_rx(ul->dev, seg[k]);
			if (!k)
				ul->rx_pkt[i] = NULL;
		} else if (k) {
			ipd_pkt_free(ul->dev, seg[k]);
		}
		/* a rejected first segment stays in the slot */
	}
	return;

malformed:
	cnt->drop_malformed++;
}

static void raw_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct udp_link *ul = container_of(w, struct udp_link, raw_w);
	unsigned int round, i, n;
	int got;

	for (round = 0; round < UDP_RX_ROUNDS; round++) {
		if (!rx_refill(ul, &n, true))
			return;
		got = recvmmsg(ul->raw_fd, ul->rx_msg, n, MSG_DONTWAIT, NULL);
		if (got <= 0) {
			if (got < 0 && errno != EAGAIN && errno != EINTR)
				ipd_warn("udp: packet socket: %s", strerror(errno));
			return;
		}
		for (i = 0; i < (unsigned int)got; i++)
			raw_one(ul, i);
		if ((unsigned int)got < n)
			return;
	}
}

/* IPv4, no options, UDP, not a fragment, to our port (classic BPF over
 * the network header, SKF_NET_OFF: the frame starts with the link-layer
 * header). */
static int raw_filter(int fd, uint16_t port)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF + 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x45, 0, 7),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF + 9),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 5),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, SKF_NET_OFF + 6),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 3, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS,
			 SKF_NET_OFF + IPD_IPV4_HDR_BYTES + 2),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]),
				   .filter = code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
			  sizeof(prog)) ? -errno : 0;
}

/* The UDP socket keeps the port but hands nothing to us. */
static int udp_drop_all(int fd)
{
	struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { .len = 1, .filter = code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
			  sizeof(prog)) ? -errno : 0;
}

static int raw_open(struct udp_link *ul)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_protocol = htons(ETH_P_IP) };
	int one = 1, zero = 0, fd, ret;

	/* GSO datagrams arrive uncut (see raw_one): room for 64 KiB */
	if (!ul->rx_spill) {
		ul->rx_spill = malloc((size_t)UDP_RX_BATCH * UDP_GRO_BYTES);
		if (!ul->rx_spill)
			return -ENOMEM;
	}
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    htons(ETH_P_IP));
	if (fd < 0)
		return -errno;
	ret = raw_filter(fd, ul->port);
	if (!ret &&
	    (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one,
			sizeof(one)) ||
	     setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ||
	     bind(fd, (struct sockaddr *)&sll, sizeof(sll))))
		ret = -errno;
	if (!ret)
		ret = udp_drop_all(ul->fam[0].rx_fd);
	if (ret) {
		close(fd);
		return ret;
	}
	/* No UDP GRO for the UDP socket: GRO would merge datagrams of
	 * other senders into one frame under the first one's IP ID. */
	setsockopt(ul->fam[0].rx_fd, SOL_UDP, UDP_GRO, &zero, sizeof(zero));
	sock_bufs(fd);
	ev_io_stop(ul->dev->loop, &ul->fam[0].rx_w);
	ul->raw_fd = fd;
	ev_io_init(&ul->raw_w, raw_cb, fd, EV_READ);
	ev_io_start(ul->dev->loop, &ul->raw_w);
	return 0;
}

/* ---- lifetime ------------------------------------------------------ */

static void family_close(struct udp_link *ul, struct udp_family *uf)
{
	int i;

	if (!uf->family)
		return;
	ev_io_stop(ul->dev->loop, &uf->rx_w);
	if (uf->rx_fd >= 0)
		close(uf->rx_fd);
	for (i = 0; i < UDP_TX_SOCKS; i++)
		if (uf->tx_fd[i] >= 0)
			close(uf->tx_fd[i]);
	for (i = 0; i < UDP_SPORT_MAX; i++)
		if (uf->sport[i].port && uf->sport[i].fd >= 0)
			close(uf->sport[i].fd);
	memset(uf->sport, 0, sizeof(uf->sport));
	uf->nsport = 0;
	uf->family = 0;
}

static int family_open(struct udp_link *ul, struct udp_family *uf, int family)
{
	int i, fd, one = 1;

	uf->ul = ul;
	uf->rx_fd = -1;
	for (i = 0; i < UDP_TX_SOCKS; i++)
		uf->tx_fd[i] = -1;
	uf->family = family;
	fd = sock_open(family, ul->port, NULL, ul->gso, false);
	if (fd < 0)
		goto err;
	uf->rx_fd = fd;
	if (ul->gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one))) {
		ipd_warn("udp: UDP_GRO: %s; receiving datagram by datagram",
			 strerror(errno));
		ul->gro = false;
	}
	for (i = 0; i < UDP_TX_SOCKS; i++) {
		fd = sock_open(family, 0, &uf->tx_port[i], ul->gso, true);
		if (fd < 0)
			goto err;
		uf->tx_fd[i] = fd;
	}
	ev_io_init(&uf->rx_w, rx_cb, uf->rx_fd, EV_READ);
	ev_io_start(ul->dev->loop, &uf->rx_w);
	return 0;

err:
	ipd_err("udp: %s socket on port %u: %s",
		family == AF_INET ? "IPv4" : "IPv6", ul->port, strerror(-fd));
	family_close(ul, uf);
	return fd;
}

/* IPv6 sockets only when some GID is a routable IPv6 address (GID 0, the
 * link-local one made from the node GUID, names no address to send from). */
static bool dev_has_ipv6(const struct ipd_dev *dev)
{
	const struct sockaddr_in6 *s6;
	int i;

	for (i = 0; i < dev->ngids; i++) {
		s6 = (const void *)&dev->gids[i].addr;
		if (s6->sin6_family == AF_INET6 &&
		    !IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) &&
		    !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			return true;
	}
	return false;
}

static void udp_destroy(struct ipd_link *link)
{
	struct udp_link *ul = link->priv;
	int i;

	udp_flush(link);
	ev_prepare_stop(ul->dev->loop, &ul->flush_w);
	if (ul->raw_fd >= 0) {
		ev_io_stop(ul->dev->loop, &ul->raw_w);
		close(ul->raw_fd);
	}
	family_close(ul, &ul->fam[0]);
	family_close(ul, &ul->fam[1]);
	for (i = 0; i < UDP_RX_BATCH; i++)
		if (ul->rx_pkt[i])
			ipd_pkt_free(ul->dev, ul->rx_pkt[i]);
	free(ul->rx_spill);
	if (ul->tx_errors)
		ipd_info("udp: %llu datagrams could not be sent",
			 (unsigned long long)ul->tx_errors);
	free(ul);
}

static const struct ipd_link_ops udp_link_ops = {
	.name = "udp",
	.xmit = udp_xmit,
	.flush = udp_flush,
	.flow_port = udp_flow_port,
	.flow_release = udp_flow_release,
	.destroy = udp_destroy,
};

/* The daemon's environment overrides the configuration of the link
 * (for test harnesses that start daemons they cannot pass flags to):
 * IPATHD_UDP_RX=udp|packet, IPATHD_UDP_GSO=yes|no, IPATHD_UDP_GRO=yes|no. */
static bool env_word(const char *name, const char *yes, bool dflt)
{
	const char *env = getenv(name);

	if (!env || !*env)
		return dflt;
	return !strcmp(env, yes) || !strcmp(env, "1") || !strcmp(env, "on");
}

struct ipd_link *ipd_link_udp_create(struct ipd_dev *dev)
{
	struct udp_link *ul;
	int ret;

	ul = calloc(1, sizeof(*ul));
	if (!ul)
		return NULL;
	ul->dev = dev;
	ul->raw_fd = -1;
	ul->port = dev->cfg->udp_port ? (uint16_t)dev->cfg->udp_port
				      : IPD_ROCE_UDP_PORT;
	ul->link = (struct ipd_link){
		.ops = &udp_link_ops,
		.dev = dev,
		.priv = ul,
		.tx_capture = true,
		.app_tx = true,
	};
	ul->gso = env_word("IPATHD_UDP_GSO", "yes", dev->cfg->udp_gso);
	ul->gro = env_word("IPATHD_UDP_GRO", "yes", dev->cfg->udp_gro);
	if (ul->gro) {
		ul->rx_spill = malloc((size_t)UDP_RX_BATCH * UDP_GRO_BYTES);
		if (!ul->rx_spill)
			ul->gro = false;
	}
	ret = family_open(ul, &ul->fam[0], AF_INET);
	if (ret)
		goto err_free;
	if (dev_has_ipv6(dev) && family_open(ul, &ul->fam[1], AF_INET6))
		ipd_warn("udp: continuing with IPv4 only");
	if (env_word("IPATHD_UDP_RX", "packet",
		     !strcmp(dev->cfg->udp_rx, "packet"))) {
		ret = raw_open(ul);
		if (ret)
			ipd_warn("udp: udp_rx = packet: %s; IPv4 stays on the UDP socket (peers must send IP ID 0)",
				 strerror(-ret));
		else
			ipd_info("udp: IPv4 received through a packet socket (any IP ID)");
	}
	ev_prepare_init(&ul->flush_w, flush_cb);
	ev_prepare_start(dev->loop, &ul->flush_w);
	ipd_info("udp: RoCEv2 on UDP port %u (IPv4%s), per-flow source ports, ICRC by %s, GSO %s, GRO %s",
		 ul->port, ul->fam[1].family ? ", IPv6" : "", ipd_icrc_impl(),
		 ul->gso ? "on" : "off", ul->gro ? "on" : "off");
	return &ul->link;

err_free:
	free(ul->rx_spill);
	free(ul);
	errno = -ret;
	return NULL;
}
