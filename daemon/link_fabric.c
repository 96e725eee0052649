// SPDX-License-Identifier: MIT
/*
 * The libfabric link: the engine's RoCEv2 packets (BTH .. pad, exactly as
 * the UDP link carries them) as messages of one reliable-datagram
 * endpoint (FI_EP_RDM, FI_MSG) of the provider named by
 * cfg->fabric_provider ("udp;ofi_rxd" by default, "tcp;ofi_rxm", "shm",
 * or whatever fabric libfabric reaches).  The engine does not change.
 *
 * Addressing.  The endpoint is bound to the first IPv4 GID's address and
 * cfg->udp_port, on the provider's own transport (UDP for udp;ofi_rxd, TCP
 * for tcp;ofi_rxm): every daemon uses the same port, so a peer's fabric
 * address is its GID's IPv4 address and that port.  It is inserted into
 * the address vector the first time a packet goes there and cached.  shm
 * has no IP addresses: the endpoint is named "ipathd_<ip>_<port>" with
 * fi_setname and peers are inserted by that name, so shm joins daemons of
 * one machine (the lab's namespaces included: they share /dev/shm).
 *
 * The prefix.  Every message starts with a 40-byte link header (struct
 * fab_hdr) written into the packet's headroom: magic, version, the UDP
 * source port the engine chose (flow entropy), and the source and
 * destination IP of the packet as 16-byte IPv4-mapped addresses.  FI_SOURCE
 * could name the sender only as a provider address (and only once it is in
 * the address vector), never as the GID the engine checks against the QP's
 * path, nor which of our addresses was meant; the prefix works the same
 * for every provider, shm included.  A peer could lie in it as easily as
 * it could spoof a UDP source address.
 *
 * No ICRC.  The ICRC covers IP and UDP headers that do not exist here, and
 * every provider we run on is itself checked: TCP and UDP checksums (the
 * udp provider leaves the kernel's checksum on), shared memory for shm.
 * Messages are never split or merged (RDM keeps boundaries), so the link
 * only checks the prefix and the length.
 *
 * Completions.  One CQ (FI_WAIT_FD) for sends and receives; its wait fd
 * (fi_control FI_GETWAIT) is an ev_io on dev->loop.  Most providers here
 * progress manually (rxd, rxm), so the CQ is drained with fi_cq_read and
 * fi_trywait is asked before libev may sleep; while sends are outstanding
 * or the provider is busy a 1 ms timer keeps progressing (rxd's own
 * retransmissions run only inside progress calls) and it stops after
 * FAB_IDLE_TICKS quiet ticks.  A provider without wait fds (shm) is
 * polled by that timer only: every 100 us while there is traffic, down to
 * every 10 ms after a second of quiet.
 *
 * Back-pressure.  fi_send/fi_inject answering -FI_EAGAIN makes the link
 * progress the CQ and retry up to FAB_TX_RETRIES times; a packet that
 * still finds no room waits in a backlog (in order, later packets behind
 * it) that every progress call flushes, so that a connection being set up
 * (rxm, shm) loses nothing.  Beyond FAB_BACKLOG_MAX packets the link drops
 * and counts: the transport's retransmission covers drops as it does for
 * a lossy wire.  Receive completions seen during such a retry
 * are queued and handed to the engine from the next callback, never from
 * inside the engine's own xmit call.
 *
 * Peer restarts.  rxm (tcp) reconnects by itself.  shm maps a peer's
 * region when the peer is inserted, so a restarted peer (new region, same
 * name) would never hear from us again: a peer silent for FAB_STALE_S
 * while we send to it is inserted again.  libfabric 1.17's rxd keeps its
 * peer state across a peer's restart, traffic to the restarted daemon
 * stalls and the restarted rxd can crash in progress when the old state
 * reaches it; re-inserting the peer does not help, so nothing is tried
 * there: use tcp;ofi_rxm where daemons restart.
 *
 * Limits: IPv4 GIDs only (the endpoint is bound to one IPv4 address; a
 * packet for an IPv6 destination is dropped); one endpoint per daemon;
 * the link's drops and errors are counters (fabric_*, ipathctl counters)
 * and logged when it is destroyed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

#include "engine.h"
#include "ipathd/icrc.h"   /* IPD_BTH_BYTES, IPD_ROCE_UDP_PORT */
#include "ipathd.h"

#define FAB_API_VERSION FI_VERSION(1, 10)
#define FAB_RX_DEPTH 256u       /* posted receive buffers (at most) */
#define FAB_TX_DEPTH 512u       /* sends in flight (at most) */
#define FAB_CQ_BATCH 32         /* completions per fi_cq_read */
#define FAB_DRAIN_ROUNDS 16     /* fi_cq_read calls per wake-up */
#define FAB_TX_RETRIES 8        /* progress+retry on -FI_EAGAIN, then queue */
#define FAB_BACKLOG_MAX 1024u   /* packets queued for the provider, then drop */
#define FAB_TICK_S 0.001        /* progress timer while busy */
#define FAB_IDLE_TICKS 100      /* quiet ticks before the timer stops */
/* Without a wait fd: poll every 100 us until 0.1 s after the last
 * traffic, then every FAB_TICK_S, and after 1 s of quiet every 10 ms. */
#define FAB_POLL_FAST_S 0.0001
#define FAB_POLL_FAST_FOR_S 0.1
#define FAB_POLL_SLOW_AFTER_S 1.0
#define FAB_POLL_SLOW_S 0.01
#define FAB_SHM_NAME_MAX 256    /* shm's address length (SMR_NAME_MAX) */
#define FAB_STALE_S 2.0         /* shm: re-resolve a peer silent this long */

#define FAB_MAGIC0 'i'
#define FAB_MAGIC1 'F'
#define FAB_VERSION 1

/* The link header in front of the BTH (see the top).  Kept as bytes on
 * the wire; this struct only documents the layout. */
struct fab_hdr {
	uint8_t magic[2];
	uint8_t version;
	uint8_t flags;          /* 0 */
	uint8_t sport[2];       /* big-endian */
	uint8_t rsvd[2];
	uint8_t src[16];        /* IPv4-mapped or IPv6 */
	uint8_t dst[16];
};
#define FAB_HDR_BYTES ((uint32_t)sizeof(struct fab_hdr))
_Static_assert(sizeof(struct fab_hdr) == 40, "fab_hdr is packed by layout");
_Static_assert(sizeof(struct fab_hdr) <= IPD_PKT_HEADROOM,
	       "the link header fits in the packet headroom");

#ifndef container_of   /* libfabric's headers have one */
#define container_of(ptr, type, member)                                     \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

/* One posted operation.  The provider may use ctx as scratch (FI_CONTEXT
 * and FI_CONTEXT2 modes), so it lives until the completion. */
struct fab_op {
	struct fi_context2 ctx;
	struct ipd_pkt *pkt;
	struct fab_op *next_free;
	bool rx;
	bool posted;
};

struct fab_peer {
	uint32_t ip;            /* network order; 0 = free slot */
	fi_addr_t fa;
	ev_tstamp last_rx;      /* last packet from it (or its insertion) */
	ev_tstamp inserted;
};

struct fab_link {
	struct ipd_link link;
	struct ipd_dev *dev;
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_wait *waitset;  /* when the CQ has no wait fd of its own */
	struct fid *wait_fid;      /* what fi_trywait is asked about */
	struct fid_ep *ep;
	int wait_fd;            /* -1: the timer polls */
	ev_io wait_w;
	ev_timer tick_w;
	unsigned int idle_ticks;
	ev_tstamp last_active;  /* polled providers: last traffic */
	bool shm_names;         /* FI_ADDR_STR addressing (shm) */
	struct in_addr self;
	uint16_t port;
	size_t inject_max;      /* whole message incl. fab_hdr */

	struct fab_op rx_ops[FAB_RX_DEPTH];
	unsigned int nrx, rx_unposted;
	struct fab_op tx_ops[FAB_TX_DEPTH];
	struct fab_op *tx_free;
	unsigned int tx_outstanding;

	/* packets the provider had no room for yet, in order */
	TAILQ_HEAD(, ipd_pkt) backlog;
	unsigned int nbacklog;

	/* receives completed while the engine was inside xmit */
	TAILQ_HEAD(, ipd_pkt) rx_pending;
	unsigned int in_xmit;

	/* address vector cache: open addressing on the IPv4 address */
	struct fab_peer *peers;
	unsigned int npeers, peer_cap;

	int last_err;
};

static void tick_kick(struct fab_link *fl);
static void tick_set(struct fab_link *fl, ev_tstamp every);
static void backlog_flush(struct fab_link *fl);

/* ---- addresses ----------------------------------------------------- */

/* The IPv4 address of ss (plain or IPv4-mapped); false otherwise. */
static bool addr_v4(const struct sockaddr_storage *ss, struct in_addr *out)
{
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		*out = s4->sin_addr;
		return out->s_addr != htonl(INADDR_ANY);
	}
	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(&out->s_addr, s6->sin6_addr.s6_addr + 12, 4);
		return out->s_addr != htonl(INADDR_ANY);
	}
	return false;
}

/* An address as the 16 bytes of the prefix (IPv4 in mapped form). */
static void addr_to16(const struct sockaddr_storage *ss, uint8_t out[16])
{
	const struct sockaddr_in6 *s6 = (const void *)ss;
	struct in_addr a;

	memset(out, 0, 16);
	if (addr_v4(ss, &a)) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a.s_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(out, &s6->sin6_addr, 16);
	}
}

/* The prefix's 16 bytes as the sockaddr the engine compares (AF_INET for
 * mapped IPv4, like the UDP link delivers). */
static void addr_from16(const uint8_t in[16], struct sockaddr_storage *ss)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct sockaddr_in *s4 = (void *)ss;
	struct sockaddr_in6 *s6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (!memcmp(in, mapped, 12)) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, in + 12, 4);
	} else {
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, in, 16);
	}
}

/* Is ss one of our GIDs' addresses? */
static bool addr_is_ours(const struct ipd_dev *dev,
			 const struct sockaddr_storage *ss)
{
	uint8_t a[16], b[16];
	int i;

	addr_to16(ss, a);
	for (i = 0; i < dev->ngids; i++) {
		addr_to16(&dev->gids[i].addr, b);
		if (!memcmp(a, b, 16))
			return true;
	}
	return false;
}

static void shm_name(char *buf, size_t len, struct in_addr ip, uint16_t port)
{
	char ipstr[INET_ADDRSTRLEN];

	memset(buf, 0, len);
	inet_ntop(AF_INET, &ip, ipstr, sizeof(ipstr));
	snprintf(buf, len, "ipathd_%s_%u", ipstr, port);
}

/* ---- address vector cache ------------------------------------------- */

static unsigned int peer_hash(uint32_t ip, unsigned int cap)
{
	return (ip * 2654435761u) & (cap - 1);
}

static int peer_grow(struct fab_link *fl)
{
	unsigned int cap = fl->peer_cap ? fl->peer_cap * 2 : 64, i, h;
	struct fab_peer *np = calloc(cap, sizeof(*np));

	if (!np)
		return -ENOMEM;
	for (i = 0; i < fl->peer_cap; i++) {
		if (!fl->peers[i].ip)
			continue;
		for (h = peer_hash(fl->peers[i].ip, cap); np[h].ip;
		     h = (h + 1) & (cap - 1))
			;
		np[h] = fl->peers[i];
	}
	free(fl->peers);
	fl->peers = np;
	fl->peer_cap = cap;
	return 0;
}

static struct fab_peer *peer_find(struct fab_link *fl, uint32_t ip)
{
	unsigned int h;

	if (!fl->peer_cap)
		return NULL;
	for (h = peer_hash(ip, fl->peer_cap); fl->peers[h].ip;
	     h = (h + 1) & (fl->peer_cap - 1))
		if (fl->peers[h].ip == ip)
			return &fl->peers[h];
	return NULL;
}

static int peer_insert(struct fab_link *fl, struct in_addr ip, fi_addr_t *fa)
{
	char name[FAB_SHM_NAME_MAX];
	struct sockaddr_in sin;
	const void *addr;
	int ret;

	if (fl->shm_names) {
		shm_name(name, sizeof(name), ip, fl->port);
		addr = name;
	} else {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(fl->port);
		sin.sin_addr = ip;
		addr = &sin;
	}
	ret = fi_av_insert(fl->av, addr, 1, fa, 0, NULL);
	if (ret != 1) {
		char ipstr[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &ip, ipstr, sizeof(ipstr));
		ipd_warn("fabric: cannot add peer %s to the address vector: %s",
			 ipstr, fi_strerror(ret < 0 ? -ret : FI_EINVAL));
		return -EHOSTUNREACH;
	}
	return 0;
}

/* shm maps a peer's memory region when it is inserted: a peer daemon
 * that restarted has a new region under the same name, and the old
 * mapping swallows everything sent to it.  A peer silent for FAB_STALE_S
 * while we send to it is therefore removed and inserted again (harmless
 * for a live peer: the same region is mapped again).  Providers with
 * connections or handshakes (rxm, rxd) notice restarts themselves or not
 * at all; they are left alone. */
static void peer_refresh(struct fab_link *fl, struct fab_peer *p)
{
	ev_tstamp now = ev_now(fl->dev->loop);
	fi_addr_t fa;

	if (!fl->shm_names || now - p->last_rx < FAB_STALE_S ||
	    now - p->inserted < FAB_STALE_S)
		return;
	p->inserted = now;
	fi_av_remove(fl->av, &p->fa, 1, 0);
	if (!peer_insert(fl, (struct in_addr){ p->ip }, &fa))
		p->fa = fa;
	else
		p->fa = FI_ADDR_NOTAVAIL;
	ipd_dbg("fabric: peer silent for %.1f s: inserted again",
		now - p->last_rx);
}

/* The fabric address of the daemon at ip: cached, else inserted now. */
static int peer_addr(struct fab_link *fl, struct in_addr ip, fi_addr_t *fa)
{
	struct fab_peer *p = peer_find(fl, ip.s_addr);
	unsigned int h;
	int ret;

	if (p) {
		peer_refresh(fl, p);
		*fa = p->fa;
		return p->fa == FI_ADDR_NOTAVAIL ? -EHOSTUNREACH : 0;
	}
	/* keep the table at most half full so probes stay short */
	if (2 * (fl->npeers + 1) > fl->peer_cap) {
		ret = peer_grow(fl);
		if (ret)
			return ret;
	}
	ret = peer_insert(fl, ip, fa);
	if (ret)
		return ret;
	for (h = peer_hash(ip.s_addr, fl->peer_cap); fl->peers[h].ip;
	     h = (h + 1) & (fl->peer_cap - 1))
		;
	fl->peers[h].ip = ip.s_addr;
	fl->peers[h].fa = *fa;
	fl->peers[h].last_rx = fl->peers[h].inserted = ev_now(fl->dev->loop);
	fl->npeers++;
	return 0;
}

/* ---- receive ------------------------------------------------------- */

static uint8_t *rx_buf(struct ipd_pkt *pkt)
{
	return pkt->buf + IPD_PKT_HEADROOM - FAB_HDR_BYTES;
}

/* Post op's buffer (allocating a packet when it has none).  A provider
 * that is out of room (-FI_EAGAIN) or a packet pool that is empty leaves
 * the op unposted: the timer tries again. */
static int rx_post(struct fab_link *fl, struct fab_op *op)
{
	ssize_t ret;

	if (!op->pkt) {
		op->pkt = ipd_pkt_alloc(fl->dev);
		if (!op->pkt)
			goto later;
	}
	ret = fi_recv(fl->ep, rx_buf(op->pkt),
		      FAB_HDR_BYTES + IPD_PKT_DATA_MAX, NULL, FI_ADDR_UNSPEC,
		      &op->ctx);
	if (ret == 0) {
		op->posted = true;
		return 0;
	}
	if (ret != -FI_EAGAIN && ret != fl->last_err) {
		ipd_warn("fabric: fi_recv: %s", fi_strerror((int)-ret));
		fl->last_err = (int)ret;
	}
later:
	fl->rx_unposted++;
	return -EAGAIN;
}

static void rx_repost_all(struct fab_link *fl)
{
	unsigned int i, n = fl->rx_unposted;

	if (!n)
		return;
	fl->rx_unposted = 0;
	for (i = 0; i < fl->nrx; i++)
		if (!fl->rx_ops[i].posted && rx_post(fl, &fl->rx_ops[i]))
			break;
	/* ops not looked at are still unposted */
	for (i++; i < fl->nrx; i++)
		if (!fl->rx_ops[i].posted)
			fl->rx_unposted++;
}

/* Check a received message and turn it into an engine packet. */
static bool rx_accept(struct fab_link *fl, struct ipd_pkt *pkt, size_t len)
{
	const uint8_t *h = rx_buf(pkt);

	if (len < FAB_HDR_BYTES + IPD_BTH_BYTES ||
	    len > FAB_HDR_BYTES + IPD_PKT_DATA_MAX ||
	    h[0] != FAB_MAGIC0 || h[1] != FAB_MAGIC1 || h[2] != FAB_VERSION ||
	    (len - FAB_HDR_BYTES) % 4)
		return false;
	addr_from16(h + offsetof(struct fab_hdr, src), &pkt->src);
	addr_from16(h + offsetof(struct fab_hdr, dst), &pkt->dst);
	if (!addr_is_ours(fl->dev, &pkt->dst))
		return false;
	pkt->sport = (uint16_t)(h[4] << 8 | h[5]);
	if (fl->shm_names) {
		struct in_addr a;
		struct fab_peer *p;

		if (addr_v4(&pkt->src, &a) && (p = peer_find(fl, a.s_addr)))
			p->last_rx = ev_now(fl->dev->loop);
	}
	pkt->hdr = pkt->buf + IPD_PKT_HEADROOM;
	pkt->len = (uint32_t)(len - FAB_HDR_BYTES);
	return true;
}

static void rx_complete(struct fab_link *fl, struct fab_op *op, size_t len)
{
	struct ipd_pkt *pkt = op->pkt;

	op->posted = false;
	if (!rx_accept(fl, pkt, len)) {
		fl->dev->cnt.fabric_rx_bad++;
		fl->dev->cnt.drop_malformed++;
		rx_post(fl, op);        /* same buffer again */
		return;
	}
	op->pkt = NULL;
	rx_post(fl, op);
	/* Never re-enter the engine from inside its own xmit. */
	if (fl->in_xmit || !TAILQ_EMPTY(&fl->rx_pending)) {
		TAILQ_INSERT_TAIL(&fl->rx_pending, pkt, link);
		ev_feed_event(fl->dev->loop, &fl->tick_w, EV_TIMER);
		return;
	}
	ipd_engine_rx(fl->dev, pkt);
}

static void rx_deliver_pending(struct fab_link *fl)
{
	struct ipd_pkt *pkt;

	while (!fl->in_xmit && (pkt = TAILQ_FIRST(&fl->rx_pending))) {
		TAILQ_REMOVE(&fl->rx_pending, pkt, link);
		ipd_engine_rx(fl->dev, pkt);
	}
}

/* ---- completions ----------------------------------------------------- */

static void tx_op_put(struct fab_link *fl, struct fab_op *op)
{
	ipd_pkt_free(fl->dev, op->pkt);
	op->pkt = NULL;
	op->posted = false;
	op->next_free = fl->tx_free;
	fl->tx_free = op;
	fl->tx_outstanding--;
}

static void cq_error(struct fab_link *fl)
{
	struct fi_cq_err_entry err = { 0 };
	struct fab_op *op;
	ssize_t ret;

	ret = fi_cq_readerr(fl->cq, &err, 0);
	if (ret < 0 || !err.op_context)
		return;
	op = container_of(err.op_context, struct fab_op, ctx);
	if (err.err != FI_ECANCELED && err.err != fl->last_err) {
		ipd_warn("fabric: %s failed: %s (provider: %s)",
			 op->rx ? "receive" : "send", fi_strerror(err.err),
			 fi_cq_strerror(fl->cq, err.prov_errno, err.err_data,
					NULL, 0));
		fl->last_err = err.err;
	}
	if (op->rx) {
		fl->dev->cnt.fabric_rx_errors++;
		op->posted = false;
		if (err.err != FI_ECANCELED)
			rx_post(fl, op);
	} else {
		fl->dev->cnt.fabric_tx_errors++;
		tx_op_put(fl, op);
	}
}

/* Read completions until the CQ is empty or the budget is spent; true
 * when anything completed. */
static bool cq_drain(struct fab_link *fl)
{
	struct fi_cq_msg_entry ent[FAB_CQ_BATCH];
	bool any = false;
	ssize_t n, i;
	int round;

	for (round = 0; round < FAB_DRAIN_ROUNDS; round++) {
		n = fi_cq_read(fl->cq, ent, FAB_CQ_BATCH);
		if (n == -FI_EAVAIL) {
			cq_error(fl);
			any = true;
			continue;
		}
		if (n <= 0) {
			if (n < 0 && n != -FI_EAGAIN && n != fl->last_err) {
				ipd_warn("fabric: fi_cq_read: %s",
					 fi_strerror((int)-n));
				fl->last_err = (int)n;
			}
			break;
		}
		any = true;
		for (i = 0; i < n; i++) {
			struct fab_op *op = container_of(ent[i].op_context,
							 struct fab_op, ctx);

			if (op->rx)
				rx_complete(fl, op, ent[i].len);
			else
				tx_op_put(fl, op);
		}
		if (n < FAB_CQ_BATCH)
			break;
	}
	return any;
}

/* Drain, repost, then ask whether libev may sleep on the wait fd.  The
 * tick timer keeps progress going while the provider has work of its own
 * (sends not yet acknowledged, a busy trywait). */
static void progress(struct fab_link *fl)
{
	struct fid *fids[1] = { fl->wait_fid };
	bool busy;

	rx_deliver_pending(fl);
	busy = cq_drain(fl);
	if (fl->nbacklog) {
		backlog_flush(fl);
		busy = true;
	}
	rx_deliver_pending(fl);
	rx_repost_all(fl);
	if (fl->wait_fd < 0) {
		/* Nothing will wake us: poll fast while there is traffic,
		 * slower as the link stays quiet (the first packet after a
		 * long pause waits at most FAB_POLL_SLOW_S). */
		ev_tstamp now = ev_now(fl->dev->loop), quiet;

		if (busy)
			fl->last_active = now;
		quiet = now - fl->last_active;
		tick_set(fl, quiet < FAB_POLL_FAST_FOR_S ? FAB_POLL_FAST_S :
			     quiet < FAB_POLL_SLOW_AFTER_S ? FAB_TICK_S :
			     FAB_POLL_SLOW_S);
		return;
	}
	busy |= fl->tx_outstanding || fl->rx_unposted || fl->nbacklog ||
		!TAILQ_EMPTY(&fl->rx_pending);
	if (fi_trywait(fl->fabric, fids, 1) == -FI_EAGAIN)
		busy = true;
	if (busy) {
		fl->idle_ticks = 0;
		tick_kick(fl);
	} else if (++fl->idle_ticks > FAB_IDLE_TICKS) {
		ev_timer_stop(fl->dev->loop, &fl->tick_w);
	}
}

static void wait_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	progress(container_of(w, struct fab_link, wait_w));
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	progress(container_of(w, struct fab_link, tick_w));
}

static void tick_kick(struct fab_link *fl)
{
	if (!ev_is_active(&fl->tick_w))
		ev_timer_again(fl->dev->loop, &fl->tick_w);
}

static void tick_set(struct fab_link *fl, ev_tstamp every)
{
	if (fl->tick_w.repeat != every || !ev_is_active(&fl->tick_w)) {
		fl->tick_w.repeat = every;
		ev_timer_again(fl->dev->loop, &fl->tick_w);
	}
}

/* ---- transmit ------------------------------------------------------ */

static void tx_drop(struct fab_link *fl, struct ipd_pkt *pkt, int err)
{
	fl->dev->cnt.fabric_tx_dropped++;
	if (err != fl->last_err && err != -FI_EAGAIN)
		ipd_warn("fabric: packet dropped: %s", fi_strerror(-err));
	fl->last_err = err;
	ipd_pkt_free(fl->dev, pkt);
}

/* Progress from inside xmit: completions free send slots; receives are
 * queued for later (in_xmit is set). */
static void tx_progress(struct fab_link *fl)
{
	cq_drain(fl);
}

/* Hand pkt (prefix written) to the provider, progressing and retrying up
 * to retries times while it answers -FI_EAGAIN.  0: sent (a send op owns
 * pkt until its completion, an inject freed it); -FI_EAGAIN: still no
 * room, pkt is the caller's; another error: pkt is the caller's. */
static ssize_t tx_try(struct fab_link *fl, struct ipd_pkt *pkt, int retries)
{
	uint8_t *h = pkt->hdr - FAB_HDR_BYTES;
	size_t len = FAB_HDR_BYTES + pkt->len;
	struct fab_op *op = NULL;
	struct in_addr dst;
	fi_addr_t fa;
	ssize_t ret = 0;
	int tries;

	if (!addr_v4(&pkt->dst, &dst) || peer_addr(fl, dst, &fa))
		return -FI_EHOSTUNREACH;
	fl->in_xmit++;
	for (tries = 0; tries <= retries; tries++) {
		if (tries)
			tx_progress(fl);
		if (len <= fl->inject_max) {
			/* copied by the provider: no completion, free now */
			ret = fi_inject(fl->ep, h, len, fa);
			if (ret == 0) {
				ipd_pkt_free(fl->dev, pkt);
				break;
			}
		} else {
			if (!op && !(op = fl->tx_free)) {
				ret = -FI_EAGAIN;
				continue;
			}
			ret = fi_send(fl->ep, h, len, NULL, fa, &op->ctx);
			if (ret == 0) {
				fl->tx_free = op->next_free;
				op->pkt = pkt;
				op->posted = true;
				fl->tx_outstanding++;
				break;
			}
			op = NULL;   /* the free list may change meanwhile */
		}
		if (ret != -FI_EAGAIN)
			break;
	}
	fl->in_xmit--;
	return ret;
}

/* Send what waits in the backlog, in order, until the provider is full
 * again. */
static void backlog_flush(struct fab_link *fl)
{
	struct ipd_pkt *pkt;
	ssize_t ret;

	while ((pkt = TAILQ_FIRST(&fl->backlog))) {
		/* off the list first: a sent packet may be freed at once */
		TAILQ_REMOVE(&fl->backlog, pkt, link);
		ret = tx_try(fl, pkt, 0);
		if (ret == -FI_EAGAIN) {
			TAILQ_INSERT_HEAD(&fl->backlog, pkt, link);
			return;
		}
		fl->nbacklog--;
		if (ret)
			tx_drop(fl, pkt, (int)ret);
	}
}

static int fab_xmit(struct ipd_link *link, struct ipd_pkt *pkt)
{
	struct fab_link *fl = link->priv;
	struct sockaddr_storage src;
	struct in_addr dst;
	uint8_t *h;
	ssize_t ret = 0;

	if (!addr_v4(&pkt->dst, &dst)) {
		tx_drop(fl, pkt, -FI_EADDRNOTAVAIL);
		return -EAFNOSUPPORT;
	}
	if (pkt->hdr < pkt->buf + FAB_HDR_BYTES || pkt->len < IPD_BTH_BYTES ||
	    pkt->hdr + pkt->len > pkt->buf + sizeof(pkt->buf)) {
		tx_drop(fl, pkt, -FI_EMSGSIZE);
		return -EMSGSIZE;
	}
	h = pkt->hdr - FAB_HDR_BYTES;
	memset(h, 0, FAB_HDR_BYTES);
	h[0] = FAB_MAGIC0;
	h[1] = FAB_MAGIC1;
	h[2] = FAB_VERSION;
	h[4] = (uint8_t)(pkt->sport >> 8);
	h[5] = (uint8_t)pkt->sport;
	/* a packet without a source GID leaves from our own address */
	src = pkt->src;
	if (!addr_v4(&src, &(struct in_addr){ 0 }) && src.ss_family != AF_INET6) {
		struct sockaddr_in *s4 = (void *)&src;

		memset(&src, 0, sizeof(src));
		s4->sin_family = AF_INET;
		s4->sin_addr = fl->self;
	}
	addr_to16(&src, h + offsetof(struct fab_hdr, src));
	addr_to16(&pkt->dst, h + offsetof(struct fab_hdr, dst));

	/* Packets keep their order: nothing overtakes the backlog. */
	backlog_flush(fl);
	if (TAILQ_EMPTY(&fl->backlog)) {
		ret = tx_try(fl, pkt, FAB_TX_RETRIES);
		if (ret && ret != -FI_EAGAIN) {
			tx_drop(fl, pkt, (int)ret);
			ret = ret == -FI_EHOSTUNREACH ? -EHOSTUNREACH : -EIO;
			goto out;
		}
	} else {
		ret = -FI_EAGAIN;
	}
	if (ret == -FI_EAGAIN) {
		if (fl->nbacklog >= FAB_BACKLOG_MAX) {
			tx_drop(fl, pkt, -FI_EAGAIN);
			ret = -ENOBUFS;
			goto out;
		}
		TAILQ_INSERT_TAIL(&fl->backlog, pkt, link);
		fl->nbacklog++;
		ret = 0;
	}
out:
	/* the provider has work now (acknowledgements, retransmissions) */
	fl->idle_ticks = 0;
	fl->last_active = ev_now(fl->dev->loop);
	if (fl->wait_fd < 0)
		tick_set(fl, FAB_POLL_FAST_S);
	else
		tick_kick(fl);
	return (int)ret;
}

/* ---- lifetime ------------------------------------------------------ */

static void fab_close(struct fab_link *fl)
{
	struct ipd_pkt *pkt;
	unsigned int i;

	if (fl->wait_fd >= 0)
		ev_io_stop(fl->dev->loop, &fl->wait_w);
	ev_timer_stop(fl->dev->loop, &fl->tick_w);
	/* Closing the endpoint first: the provider forgets every posted
	 * buffer, then the packets can go. */
	if (fl->ep)
		fi_close(&fl->ep->fid);
	if (fl->av)
		fi_close(&fl->av->fid);
	if (fl->cq)
		fi_close(&fl->cq->fid);
	if (fl->waitset)
		fi_close(&fl->waitset->fid);
	if (fl->domain)
		fi_close(&fl->domain->fid);
	if (fl->fabric)
		fi_close(&fl->fabric->fid);
	if (fl->info)
		fi_freeinfo(fl->info);
	for (i = 0; i < FAB_RX_DEPTH; i++)
		ipd_pkt_free(fl->dev, fl->rx_ops[i].pkt);
	for (i = 0; i < FAB_TX_DEPTH; i++)
		if (fl->tx_ops[i].posted)
			ipd_pkt_free(fl->dev, fl->tx_ops[i].pkt);
	while ((pkt = TAILQ_FIRST(&fl->rx_pending))) {
		TAILQ_REMOVE(&fl->rx_pending, pkt, link);
		ipd_pkt_free(fl->dev, pkt);
	}
	while ((pkt = TAILQ_FIRST(&fl->backlog))) {
		TAILQ_REMOVE(&fl->backlog, pkt, link);
		ipd_pkt_free(fl->dev, pkt);
	}
	free(fl->peers);
}

static void fab_destroy(struct ipd_link *link)
{
	struct fab_link *fl = link->priv;
	const struct ipd_counters *cnt = &fl->dev->cnt;

	if (cnt->fabric_tx_dropped || cnt->fabric_tx_errors ||
	    cnt->fabric_rx_errors || cnt->fabric_rx_bad)
		ipd_info("fabric: %llu sends dropped, %llu failed, %llu receive errors, %llu malformed",
			 (unsigned long long)cnt->fabric_tx_dropped,
			 (unsigned long long)cnt->fabric_tx_errors,
			 (unsigned long long)cnt->fabric_rx_errors,
			 (unsigned long long)cnt->fabric_rx_bad);
	fab_close(fl);
	free(fl);
}

static const struct ipd_link_ops fab_link_ops = {
	.name = "fabric",
	.xmit = fab_xmit,
	.destroy = fab_destroy,
};

/* The address the endpoint binds: the first IPv4 GID's. */
static int self_addr(struct ipd_dev *dev, struct in_addr *out)
{
	int i;

	for (i = 0; i < dev->ngids; i++)
		if (dev->gids[i].family == AF_INET &&
		    addr_v4(&dev->gids[i].addr, out))
			return 0;
	return -EADDRNOTAVAIL;
}

/* fi_getinfo for the configured provider, bound to our address and port
 * (shm: any, named later); the first usable answer wins. */
static int fab_getinfo(struct fab_link *fl, const char *prov)
{
	char node[INET_ADDRSTRLEN], service[8];
	struct fi_info *hints, *list = NULL, *fi;
	int ret;

	hints = fi_allocinfo();
	if (!hints)
		return -ENOMEM;
	hints->caps = FI_MSG;
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->ep_attr->type = FI_EP_RDM;
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	/* the link posts plain buffers: no FI_MR_LOCAL */
	hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup(prov);
	if (!hints->fabric_attr->prov_name) {
		fi_freeinfo(hints);
		return -ENOMEM;
	}
	if (fl->shm_names) {
		hints->addr_format = FI_ADDR_STR;
		ret = fi_getinfo(FAB_API_VERSION, NULL, NULL, 0, hints, &list);
	} else {
		hints->addr_format = FI_SOCKADDR_IN;
		inet_ntop(AF_INET, &fl->self, node, sizeof(node));
		snprintf(service, sizeof(service), "%u", fl->port);
		ret = fi_getinfo(FAB_API_VERSION, node, service, FI_SOURCE,
				 hints, &list);
	}
	fi_freeinfo(hints);
	if (ret) {
		ipd_err("fabric: no provider '%s' for RDM messages: %s", prov,
			fi_strerror(-ret));
		return -ENODEV;
	}
	for (fi = list; fi; fi = fi->next)
		if (!(fi->domain_attr->mr_mode & FI_MR_LOCAL))
			break;
	if (!fi) {
		fi_freeinfo(list);
		ipd_err("fabric: provider '%s' needs registered buffers", prov);
		return -ENODEV;
	}
	fl->info = fi_dupinfo(fi);
	fi_freeinfo(list);
	return fl->info ? 0 : -ENOMEM;
}

/* The CQ and the descriptor libev watches.  Providers differ: some hand
 * out the CQ's own wait fd (FI_WAIT_FD + FI_GETWAIT), rxd only through a
 * wait set the CQ is bound to; without either the tick timer polls. */
static int cq_open(struct fab_link *fl)
{
	struct fi_cq_attr attr = {
		.format = FI_CQ_FORMAT_MSG,
		.size = FAB_RX_DEPTH + FAB_TX_DEPTH,
		.wait_obj = FI_WAIT_FD,
	};
	struct fi_wait_attr wattr = { .wait_obj = FI_WAIT_FD };
	int ret;

	ret = fi_cq_open(fl->domain, &attr, &fl->cq, NULL);
	if (!ret) {
		ret = fi_control(&fl->cq->fid, FI_GETWAIT, &fl->wait_fd);
		if (!ret) {
			fl->wait_fid = &fl->cq->fid;
			return 0;
		}
		fi_close(&fl->cq->fid);
		fl->cq = NULL;
	}
	ret = fi_wait_open(fl->fabric, &wattr, &fl->waitset);
	if (!ret) {
		attr.wait_obj = FI_WAIT_SET;
		attr.wait_set = fl->waitset;
		ret = fi_cq_open(fl->domain, &attr, &fl->cq, NULL);
		if (!ret && !fi_control(&fl->waitset->fid, FI_GETWAIT,
					&fl->wait_fd)) {
			fl->wait_fid = &fl->waitset->fid;
			return 0;
		}
		if (!ret)
			fi_close(&fl->cq->fid);
		fi_close(&fl->waitset->fid);
		fl->cq = NULL;
		fl->waitset = NULL;
	}
	fl->wait_fd = -1;
	ipd_info("fabric: %s offers no wait fd: polling", fl->info->fabric_attr->prov_name);
	attr.wait_obj = FI_WAIT_NONE;
	attr.wait_set = NULL;
	return fi_cq_open(fl->domain, &attr, &fl->cq, NULL);
}

static int fab_open(struct fab_link *fl)
{
	struct fi_info *fi = fl->info;
	struct fi_av_attr av_attr = { 0 };
	char name[FAB_SHM_NAME_MAX];
	unsigned int i;
	int ret;

	ret = fi_fabric(fi->fabric_attr, &fl->fabric, NULL);
	if (ret)
		goto err;
	ret = fi_domain(fl->fabric, fi, &fl->domain, NULL);
	if (ret)
		goto err;
	av_attr.type = FI_AV_UNSPEC;
	av_attr.count = 64;
	ret = fi_av_open(fl->domain, &av_attr, &fl->av, NULL);
	if (ret)
		goto err;
	fl->nrx = FAB_RX_DEPTH;
	if (fi->rx_attr->size && fi->rx_attr->size < fl->nrx)
		fl->nrx = (unsigned int)fi->rx_attr->size;
	ret = cq_open(fl);
	if (ret)
		goto err;
	ret = fi_endpoint(fl->domain, fi, &fl->ep, NULL);
	if (ret)
		goto err;
	ret = fi_ep_bind(fl->ep, &fl->av->fid, 0);
	if (ret)
		goto err;
	ret = fi_ep_bind(fl->ep, &fl->cq->fid, FI_TRANSMIT | FI_RECV);
	if (ret)
		goto err;
	if (fl->shm_names) {
		shm_name(name, sizeof(name), fl->self, fl->port);
		ret = fi_setname(&fl->ep->fid, name, strlen(name) + 1);
		if (ret)
			goto err;
	}
	ret = fi_enable(fl->ep);
	if (ret)
		goto err;
	for (i = 0; i < fl->nrx; i++) {
		fl->rx_ops[i].rx = true;
		rx_post(fl, &fl->rx_ops[i]);
	}
	for (i = 0; i < FAB_TX_DEPTH; i++) {
		fl->tx_ops[i].next_free = fl->tx_free;
		fl->tx_free = &fl->tx_ops[i];
	}
	fl->inject_max = fi->tx_attr->inject_size;
	return 0;

err:
	ipd_err("fabric: setting up %s: %s", fi->fabric_attr->prov_name,
		fi_strerror(-ret));
	return -EIO;
}

struct ipd_link *ipd_link_fabric_create(struct ipd_dev *dev)
{
	const char *prov = dev->cfg->fabric_provider[0]
				   ? dev->cfg->fabric_provider
				   : "udp;ofi_rxd";
	struct fab_link *fl;
	char ipstr[INET_ADDRSTRLEN];
	int ret;

	fl = calloc(1, sizeof(*fl));
	if (!fl)
		return NULL;
	fl->dev = dev;
	fl->wait_fd = -1;
	TAILQ_INIT(&fl->rx_pending);
	TAILQ_INIT(&fl->backlog);
	fl->port = dev->cfg->udp_port ? (uint16_t)dev->cfg->udp_port
				      : IPD_ROCE_UDP_PORT;
	fl->shm_names = !strncmp(prov, "shm", 3);
	fl->link = (struct ipd_link){
		.ops = &fab_link_ops, .dev = dev, .priv = fl,
	};
	ev_init(&fl->tick_w, tick_cb);
	fl->tick_w.repeat = FAB_TICK_S;
	ret = self_addr(dev, &fl->self);
	if (ret) {
		ipd_err("fabric: the device has no IPv4 address to bind");
		goto err_free;
	}
	ret = fab_getinfo(fl, prov);
	if (ret)
		goto err_free;
	ret = fab_open(fl);
	if (ret)
		goto err_close;
	if (fl->wait_fd >= 0) {
		ev_io_init(&fl->wait_w, wait_cb, fl->wait_fd, EV_READ);
		ev_io_start(dev->loop, &fl->wait_w);
	}
	tick_kick(fl);
	inet_ntop(AF_INET, &fl->self, ipstr, sizeof(ipstr));
	ipd_info("fabric: %s endpoint at %s port %u (%s), %u receive buffers, inject <= %zu bytes, %s",
		 fl->info->fabric_attr->prov_name, ipstr, fl->port,
		 fl->shm_names ? "shm name" : "sockaddr", fl->nrx,
		 fl->inject_max,
		 fl->wait_fd >= 0 ? "wait fd" : "polled (no wait fd)");
	return &fl->link;

err_close:
	fab_close(fl);
err_free:
	free(fl);
	errno = ENODEV;
	return NULL;
}
