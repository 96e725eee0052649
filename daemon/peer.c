// SPDX-License-Identifier: MIT
/*
 * Peer capability exchange (SPEC.md item 4, proto/ipathd_peer.proto,
 * docs/address-forms.md).  When a QP first needs a remote host (INIT->RTR
 * with a non-local address vector) the daemon sends that host a Hello on
 * the peer port and caches the answer: version, feature bits and the
 * DMA-capable bit, which with our own bit makes the QP's address-form
 * pair.  Every Hello carries the sender's boot id, so a restarted peer is
 * noticed (and its entry replaced) the next time either side talks.
 *
 * The exchange never blocks the data path: until a peer answered its bit
 * shows as "?" and nothing waits for it, because a responder resolves
 * RETH addresses in its own form whatever the requester believes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "ipathd_peer.pb-c.h"

#define IPD_PEER_VERSION 1
#define PEER_MAX 256              /* cached peers (oldest unused replaced) */
#define PEER_RETRY_S 0.25         /* resend an unanswered Hello */
#define PEER_TRIES 12             /* then give up until the next need */
#define PEER_MSG_MAX 512
#define PEER_FEATURES                                                       \
	(IPD__PEER__FEATURE__FEATURE_RC | IPD__PEER__FEATURE__FEATURE_UC |   \
	 IPD__PEER__FEATURE__FEATURE_UD | IPD__PEER__FEATURE__FEATURE_ATOMICS | \
	 IPD__PEER__FEATURE__FEATURE_IMM |                                  \
	 IPD__PEER__FEATURE__FEATURE_ADDR_FORMS)

enum peer_state { PEER_UNKNOWN, PEER_KNOWN, PEER_INCOMPATIBLE };

struct peer {
	struct in6_addr ip;           /* IPv4 as v4-mapped */
	enum peer_state state;
	bool pending;                 /* a Hello of ours is unanswered */
	uint64_t nonce;
	unsigned int tries;
	uint32_t version;
	uint64_t features, boot_id, node_guid;
	bool dma_capable;
	unsigned int restarts;        /* boot id changes seen */
	char dev_name[32];
	ev_tstamp used;               /* last need or answer (replacement) */
};

struct ipd_peers {
	struct ipd_dev *dev;
	int fd;
	int family;                   /* of fd: AF_INET6 (dual stack) or AF_INET */
	uint16_t port;
	uint64_t boot_id;
	ev_io io_w;
	ev_timer retry_w;
	struct peer peer[PEER_MAX];
	int npeers;
};

/* One device per daemon process (main.c). */
static struct ipd_peers *peers;

static void ip_of(const struct sockaddr_storage *ss, struct in6_addr *ip)
{
	if (ss->ss_family == AF_INET6) {
		*ip = ((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
		return;
	}
	memset(ip, 0, sizeof(*ip));
	ip->s6_addr[10] = ip->s6_addr[11] = 0xff;
	memcpy(&ip->s6_addr[12],
	       &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
}

static struct peer *peer_find(const struct in6_addr *ip)
{
	for (int i = 0; i < peers->npeers; i++)
		if (!memcmp(&peers->peer[i].ip, ip, sizeof(*ip)))
			return &peers->peer[i];
	return NULL;
}

static struct peer *peer_get(const struct in6_addr *ip)
{
	struct peer *p = peer_find(ip), *old;

	if (p)
		return p;
	if (peers->npeers < PEER_MAX) {
		p = &peers->peer[peers->npeers++];
	} else {
		old = &peers->peer[0];
		for (int i = 1; i < PEER_MAX; i++)
			if (peers->peer[i].used < old->used)
				old = &peers->peer[i];
		p = old;
	}
	memset(p, 0, sizeof(*p));
	p->ip = *ip;
	return p;
}

static void peer_text(const struct in6_addr *ip, char *buf, size_t cap)
{
	if (IN6_IS_ADDR_V4MAPPED(ip))
		inet_ntop(AF_INET, &ip->s6_addr[12], buf, (socklen_t)cap);
	else
		inet_ntop(AF_INET6, ip, buf, (socklen_t)cap);
}

/* Pack our Hello and send it to sa. */
static int peer_sendto(const struct sockaddr *sa, socklen_t salen, bool reply,
		       uint64_t nonce)
{
	struct ipd_dev *dev = peers->dev;
	Ipd__Peer__Caps caps = IPD__PEER__CAPS__INIT;
	Ipd__Peer__Hello hello = IPD__PEER__HELLO__INIT;
	uint8_t buf[PEER_MSG_MAX];
	size_t len;

	caps.version = IPD_PEER_VERSION;
	caps.features = PEER_FEATURES;
	if (dev->cfg->selective_retransmit)
		caps.features |= IPD__PEER__FEATURE__FEATURE_SELECTIVE;
	caps.dma_capable = dev->cfg->dma_capable;
	caps.boot_id = peers->boot_id;
	caps.node_guid = dev->node_guid;
	caps.roce_port = dev->cfg->udp_port;
	caps.dev_name = dev->cfg->dev_name;
	hello.caps = &caps;
	hello.reply = reply;
	hello.nonce = nonce;
	len = ipd__peer__hello__get_packed_size(&hello);
	if (len > sizeof(buf))
		return -EMSGSIZE;
	ipd__peer__hello__pack(&hello, buf);
	if (sendto(peers->fd, buf, len, MSG_DONTWAIT, sa, salen) < 0)
		return -errno;
	return 0;
}

/* A request to the peer port of ip. */
static int peer_ask(const struct in6_addr *ip, uint64_t nonce)
{
	struct sockaddr_in6 to6 = { .sin6_family = AF_INET6,
				    .sin6_addr = *ip,
				    .sin6_port = htons(peers->port) };
	struct sockaddr_in to4 = { .sin_family = AF_INET,
				   .sin_port = htons(peers->port) };

	if (peers->family == AF_INET6)
		return peer_sendto((struct sockaddr *)&to6, sizeof(to6), false,
				   nonce);
	/* An IPv4-only socket reaches IPv4 peers only. */
	if (!IN6_IS_ADDR_V4MAPPED(ip))
		return -EAFNOSUPPORT;
	memcpy(&to4.sin_addr, &ip->s6_addr[12], 4);
	return peer_sendto((struct sockaddr *)&to4, sizeof(to4), false, nonce);
}

static void peer_learn(struct peer *p, const Ipd__Peer__Caps *c)
{
	char ip[INET6_ADDRSTRLEN];

	peer_text(&p->ip, ip, sizeof(ip));
	if (p->state != PEER_UNKNOWN && p->boot_id != c->boot_id) {
		p->restarts++;
		ipd_info("peer %s restarted (boot id %016llx -> %016llx)", ip,
			 (unsigned long long)p->boot_id,
			 (unsigned long long)c->boot_id);
	}
	if (p->state == PEER_UNKNOWN || p->boot_id != c->boot_id ||
	    p->dma_capable != c->dma_capable)
		ipd_info("peer %s: version %u, features 0x%llx, dma_capable %d",
			 ip, c->version, (unsigned long long)c->features,
			 c->dma_capable);
	p->version = c->version;
	p->features = c->features;
	p->boot_id = c->boot_id;
	p->node_guid = c->node_guid;
	p->dma_capable = c->dma_capable;
	snprintf(p->dev_name, sizeof(p->dev_name), "%s",
		 c->dev_name ? c->dev_name : "");
	/* Same major version or nothing: the address forms are version 1. */
	p->state = c->version == IPD_PEER_VERSION ? PEER_KNOWN :
						    PEER_INCOMPATIBLE;
	p->used = ev_now(peers->dev->loop);
}

static void peer_rx_one(const uint8_t *buf, size_t len,
			const struct sockaddr_storage *from, socklen_t fromlen)
{
	Ipd__Peer__Hello *h = ipd__peer__hello__unpack(NULL, len, buf);
	struct in6_addr ip;
	struct peer *p;

	if (!h)
		return;
	if (!h->caps || h->caps->boot_id == peers->boot_id)
		goto out;   /* malformed, or our own Hello looped back */
	ip_of(from, &ip);
	if (h->reply) {
		p = peer_find(&ip);
		/* Only the answer to our outstanding Hello counts. */
		if (!p || !p->pending || h->nonce != p->nonce)
			goto out;
		p->pending = false;
		peer_learn(p, h->caps);
	} else {
		/* A peer that needs us tells us about itself: learn it too. */
		p = peer_get(&ip);
		peer_learn(p, h->caps);
		/* Answer where the request came from. */
		peer_sendto((const struct sockaddr *)from, fromlen, true,
			    h->nonce);
	}
out:
	ipd__peer__hello__free_unpacked(h, NULL);
}

static void peer_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	uint8_t buf[PEER_MSG_MAX];
	struct sockaddr_storage from;

	/* Bounded: a flood is served a batch at a time. */
	for (int i = 0; i < 64; i++) {
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(peers->fd, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);

		if (n <= 0)
			return;
		peer_rx_one(buf, (size_t)n, &from, fl);
	}
}

static void peer_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	bool any = false;

	for (int i = 0; i < peers->npeers; i++) {
		struct peer *p = &peers->peer[i];

		if (!p->pending)
			continue;
		if (++p->tries >= PEER_TRIES) {
			char ip[INET6_ADDRSTRLEN];

			p->pending = false;
			peer_text(&p->ip, ip, sizeof(ip));
			ipd_warn("peer %s: no answer to the capability "
				 "exchange", ip);
			continue;
		}
		peer_ask(&p->ip, p->nonce);
		any = true;
	}
	if (!any)
		ev_timer_stop(loop, w);
}

void ipd_peer_need(struct ipd_dev *dev, const struct ipd_av *av)
{
	struct in6_addr ip;
	struct peer *p;

	if (!peers || av->local || !av->dst.ss_family)
		return;
	ip_of(&av->dst, &ip);
	p = peer_get(&ip);
	p->used = ev_now(dev->loop);
	/* Known peers are asked again: that is how a restart is noticed
	 * by the side whose QPs outlived nothing. */
	if (p->pending)
		return;
	p->pending = true;
	p->tries = 0;
	if (getrandom(&p->nonce, sizeof(p->nonce), GRND_NONBLOCK) !=
	    sizeof(p->nonce))
		p->nonce = (uint64_t)(uintptr_t)p ^ (uint64_t)ev_now(dev->loop);
	peer_ask(&ip, p->nonce);
	if (!ev_is_active(&peers->retry_w))
		ev_timer_again(dev->loop, &peers->retry_w);
}

void ipd_peer_addr_form(struct ipd_dev *dev, struct ipd_qp *qp, char *buf,
			size_t cap)
{
	int l = dev->cfg->dma_capable;
	struct in6_addr ip;
	struct peer *p;

	buf[0] = '\0';
	if (qp->type == IBV_QPT_UD) {
		/* Per destination; UD carries no RETH/AtomicETH anyway. */
		snprintf(buf, cap, "<%d,*>", l);
		return;
	}
	if (qp->attr.qp_state == IBV_QPS_RESET ||
	    qp->attr.qp_state == IBV_QPS_INIT || !qp->av.dst.ss_family)
		return;
	if (qp->av.local) {
		snprintf(buf, cap, "<%d,%d>", l, l);
		return;
	}
	if (!peers) {
		snprintf(buf, cap, "<%d,?>", l);
		return;
	}
	ip_of(&qp->av.dst, &ip);
	p = peer_find(&ip);
	if (!p || p->state == PEER_UNKNOWN || p->pending) {
		/* Nobody asked yet: ask now.  While a (re)fresh is in flight
		 * the cached bit may be a restarted peer's old one: shown
		 * only once this round confirmed it. */
		if (!p || !p->pending)
			ipd_peer_need(dev, &qp->av);
		snprintf(buf, cap, "<%d,?>", l);
	} else if (p->state == PEER_INCOMPATIBLE) {
		snprintf(buf, cap, "<%d,!>", l);
	} else {
		snprintf(buf, cap, "<%d,%d>", l, p->dma_capable);
	}
}

bool ipd_peer_selective(struct ipd_dev *dev, const struct ipd_av *av)
{
	struct in6_addr ip;
	struct peer *p;

	if (!peers || !av->dst.ss_family)
		return false;
	ip_of(&av->dst, &ip);
	p = peer_find(&ip);
	/* A refresh in flight keeps the cached bits: a restarted peer's
	 * new ones replace them when its answer comes (boot id). */
	return p && p->state == PEER_KNOWN &&
	       p->features & IPD__PEER__FEATURE__FEATURE_SELECTIVE;
}

int ipd_peer_count(void)
{
	return peers ? peers->npeers : 0;
}

int ipd_peer_describe(int i, char *buf, size_t cap)
{
	static const char *const st[] = { "unknown", "known", "incompatible" };
	const struct peer *p;
	char ip[INET6_ADDRSTRLEN];

	if (!peers || i < 0 || i >= peers->npeers)
		return -ENOENT;
	p = &peers->peer[i];
	peer_text(&p->ip, ip, sizeof(ip));
	snprintf(buf, cap, "%s %s dev=%s version=%u features=0x%llx "
		 "dma_capable=%d boot_id=%016llx restarts=%u%s", ip, st[p->state],
		 p->dev_name, p->version, (unsigned long long)p->features,
		 p->dma_capable, (unsigned long long)p->boot_id, p->restarts,
		 p->pending ? " (asking)" : "");
	return 0;
}

static int peer_port(const struct ipd_config *cfg)
{
	const char *env = getenv("IPATHD_PEER_PORT");

	if (env && *env) {
		long v = strtol(env, NULL, 10);

		return v > 0 && v < 65536 ? (int)v : -EINVAL;
	}
	if (cfg->peer_port)
		return (int)cfg->peer_port;
	return (int)(cfg->udp_port + 1) & 0xffff;
}

static int peer_socket(uint16_t port, int *family)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
				   .sin6_addr = IN6ADDR_ANY_INIT,
				   .sin6_port = htons(port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_ANY),
				  .sin_port = htons(port) };
	int fd, off = 0, err;

	/* Dual stack when the namespace has IPv6, else IPv4 only. */
	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		if (!bind(fd, (struct sockaddr *)&a6, sizeof(a6))) {
			*family = AF_INET6;
			return fd;
		}
		close(fd);
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a4, sizeof(a4))) {
		err = errno;
		close(fd);
		return -err;
	}
	*family = AF_INET;
	return fd;
}

int ipd_peer_init(struct ipd_dev *dev)
{
	int port = peer_port(dev->cfg), fd, family = AF_INET;

	if (peers)
		return -EBUSY;
	if (port <= 0) {
		ipd_warn("peer exchange: bad $IPATHD_PEER_PORT");
		return -EINVAL;
	}
	fd = peer_socket((uint16_t)port, &family);
	if (fd < 0) {
		ipd_warn("peer exchange: cannot bind UDP port %d: %s; address "
			 "forms of remote peers stay unknown", port,
			 strerror(-fd));
		return fd;
	}
	peers = calloc(1, sizeof(*peers));
	if (!peers) {
		close(fd);
		return -ENOMEM;
	}
	peers->dev = dev;
	peers->fd = fd;
	peers->family = family;
	peers->port = (uint16_t)port;
	if (getrandom(&peers->boot_id, sizeof(peers->boot_id), 0) !=
	    sizeof(peers->boot_id))
		peers->boot_id = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	ev_io_init(&peers->io_w, peer_io_cb, fd, EV_READ);
	ev_io_start(dev->loop, &peers->io_w);
	ev_init(&peers->retry_w, peer_retry_cb);
	peers->retry_w.repeat = PEER_RETRY_S;
	ipd_info("peer exchange on UDP port %d (dma_capable %d, boot id "
		 "%016llx)", port, dev->cfg->dma_capable,
		 (unsigned long long)peers->boot_id);
	return 0;
}

void ipd_peer_fini(struct ipd_dev *dev)
{
	if (!peers)
		return;
	ev_io_stop(dev->loop, &peers->io_w);
	ev_timer_stop(dev->loop, &peers->retry_w);
	close(peers->fd);
	free(peers);
	peers = NULL;
}
