// SPDX-License-Identifier: MIT
/*
 * daemon/link_udp.c over the loopback interface, with the engine replaced
 * by a recorder: packets come back byte for byte with their addresses,
 * the datagram on the wire carries an ICRC that an independent check of
 * the full IP datagram accepts (so the kernel really sent IP ID 0 + DF),
 * runts, odd lengths and bad ICRCs are counted and dropped, and a burst
 * arrives complete and in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "ipathd/icrc.h"
#include "ipathd.h"

static int failures;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			failures++;                                       \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                     \
			fputc('\n', stderr);                              \
		}                                                         \
	} while (0)

/* ---- stub engine --------------------------------------------------- */

#define MAX_RX 256
static struct ipd_pkt *rx[MAX_RX];
static int nrx, npkts;

struct ipd_pkt *ipd_pkt_alloc(struct ipd_dev *dev)
{
	struct ipd_pkt *p = calloc(1, sizeof(*p));

	if (p) {
		p->hdr = p->buf + IPD_PKT_HEADROOM;
		npkts++;
	}
	return p;
}

void ipd_pkt_free(struct ipd_dev *dev, struct ipd_pkt *pkt)
{
	npkts--;
	free(pkt);
}

void ipd_engine_rx(struct ipd_dev *dev, struct ipd_pkt *pkt)
{
	if (nrx < MAX_RX)
		rx[nrx++] = pkt;
	else
		ipd_pkt_free(dev, pkt);
}

/* The link captures what it sends itself (link->tx_capture); nothing runs
 * a capture here. */
void ipd_capture_pkt(struct ipd_dev *dev, const struct ipd_pkt *pkt, bool tx)
{
}

static void rx_reset(struct ipd_dev *dev)
{
	while (nrx)
		ipd_pkt_free(dev, rx[--nrx]);
}

/* ---- helpers ------------------------------------------------------- */

static bool timed_out;

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	timed_out = true;
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until want packets arrived or a drop counter moved, at
 * most 2 s. */
static void run_until(struct ipd_dev *dev, int want)
{
	ev_timer t;
	int i;

	timed_out = false;
	ev_timer_init(&t, timeout_cb, 2.0, 0);
	ev_timer_start(dev->loop, &t);
	for (i = 0; i < 20000 && nrx < want && !timed_out; i++)
		ev_run(dev->loop, EVRUN_ONCE);
	ev_timer_stop(dev->loop, &t);
}

static void settle(struct ipd_dev *dev)
{
	int i;

	for (i = 0; i < 50; i++) {
		ev_run(dev->loop, EVRUN_NOWAIT);
		usleep(1000);
	}
}

static void set_addr(struct sockaddr_storage *ss, int family, const char *ip)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	if (family == AF_INET)
		inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr);
	else
		inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr);
}

/* A SEND_ONLY to QP 0x123 with n payload bytes (n % 4 == 0). */
static struct ipd_pkt *make_pkt(int family, const char *ip, uint32_t psn,
				uint32_t n)
{
	struct ipd_pkt *p = ipd_pkt_alloc(NULL);
	uint8_t *b = p->hdr;
	uint32_t i;

	b[0] = 0x04;
	b[2] = b[3] = 0xff;
	b[5] = 0x00, b[6] = 0x01, b[7] = 0x23;
	b[8] = 0x80 | 0, b[9] = psn >> 16, b[10] = psn >> 8, b[11] = psn;
	for (i = 0; i < n; i++)
		b[12 + i] = (uint8_t)(i * 7 + psn);
	p->len = 12 + n;
	set_addr(&p->src, family, ip);
	set_addr(&p->dst, family, ip);
	p->sport = (uint16_t)(0xc000 | psn);
	return p;
}

/* The raw view: the datagram with its IP header as the kernel sent it. */
static int raw_open(void)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_UDP);
	int sz = 8 << 20;

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	else
		printf("  (no raw socket: %s; wire check skipped)\n",
		       strerror(errno));
	return fd;
}

static void raw_check(int fd, uint16_t port)
{
	uint8_t b[9000];
	int seen = 0, good = 0;
	ssize_t n;

	while ((n = recv(fd, b, sizeof(b), 0)) > 0) {
		if (n < 28 || ((b[22] << 8) | b[23]) != port)
			continue;
		seen++;
		CHECK(b[4] == 0 && b[5] == 0, "IP ID %02x%02x, want 0", b[4], b[5]);
		CHECK(b[6] & 0x40, "DF not set");
		CHECK(b[26] == 0 && b[27] == 0, "UDP checksum not 0");
		good += ipd_icrc_verify_ip(b, (size_t)n) == 1;
	}
	CHECK(seen > 0 && good == seen, "wire ICRC: %d of %d good", good, seen);
	printf("  wire: %d datagrams, ICRC verified from the IP header\n", seen);
}

/* ---- tests --------------------------------------------------------- */

static void test_roundtrip(struct ipd_dev *dev, struct ipd_link *link,
			   int family, const char *ip)
{
	struct ipd_pkt *p = make_pkt(family, ip, 1, 64);
	uint8_t want[128];
	uint32_t len = p->len;

	memcpy(want, p->hdr, len);
	CHECK(link->ops->xmit(link, p) == 0, "xmit");
	run_until(dev, 1);
	CHECK(nrx == 1, "%s: got %d packets", ip, nrx);
	if (nrx != 1)
		return;
	CHECK(rx[0]->len == len && !memcmp(rx[0]->hdr, want, len),
	      "%s: packet differs (len %u)", ip, rx[0]->len);
	CHECK(rx[0]->src.ss_family == family && rx[0]->dst.ss_family == family,
	      "%s: address family", ip);
	CHECK(rx[0]->sport == 0xc001,
	      "%s: source port %#x, want the flow's 0xc001", ip, rx[0]->sport);
	rx_reset(dev);
}

/* A source port some other socket holds: the packet still goes out, from
 * a fallback port. */
static void test_sport_taken(struct ipd_dev *dev, struct ipd_link *link)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(0xc0aa) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct ipd_pkt *p;

	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return;   /* someone else has it: fine, same situation */
	}
	p = make_pkt(AF_INET, "127.0.0.1", 0xaa, 16);
	CHECK(p->sport == 0xc0aa, "make_pkt sport");
	link->ops->xmit(link, p);
	run_until(dev, 1);
	CHECK(nrx == 1 && rx[0]->sport != 0xc0aa && rx[0]->sport != 0,
	      "taken source port: got %d packets, sport %#x", nrx,
	      nrx ? rx[0]->sport : 0);
	rx_reset(dev);
	close(fd);
}

/* n flows from sport base on, one packet each (PSN i for flow base + i):
 * how many left from their own port; all must arrive. */
static int flows_own(struct ipd_dev *dev, struct ipd_link *link, uint16_t base,
		     int n)
{
	struct ipd_pkt *p;
	uint32_t psn;
	int i, own = 0;

	for (i = 0; i < n; i++) {
		p = make_pkt(AF_INET, "127.0.0.1", (uint32_t)i, 16);
		p->sport = (uint16_t)(base + i);
		link->ops->xmit(link, p);
		link->ops->flush(link);
	}
	run_until(dev, n);
	CHECK(nrx == n, "flows from %#x: got %d of %d", base, nrx, n);
	for (i = 0; i < nrx; i++) {
		psn = (uint32_t)rx[i]->hdr[9] << 16 | rx[i]->hdr[10] << 8 |
		      rx[i]->hdr[11];
		own += rx[i]->sport == base + psn;
	}
	rx_reset(dev);
	return own;
}

static uint64_t evictions(struct ipd_dev *dev)
{
	return dev->cnt.udp_sport_evictions;
}

/* More flows than the link keeps sockets of their own ports for (63):
 * the rest leave from a shared port, which flow_port names so that a
 * client sends from it too; once sockets have been idle for
 * UDP_SPORT_IDLE, new flows get ports of their own again, except from a
 * socket a client may be sending from (held by flow_port). */
static void test_sport_evict(struct ipd_dev *dev, struct ipd_link *link)
{
	struct sockaddr_storage dst;
	struct ipd_pkt *p;
	uint64_t ev;
	uint16_t port;
	bool held;
	int own;

	set_addr(&dst, AF_INET, "127.0.0.1");
	own = flows_own(dev, link, 0xd000, 70);
	CHECK(own <= 63 && own >= 50,
	      "70 flows at once: %d left from their own port", own);
	/* a flow beyond the table of busy sockets: flow_port names the
	 * shared port it leaves from */
	ev = evictions(dev);
	port = link->ops->flow_port(link, &dst, 0xd100, &held);
	p = make_pkt(AF_INET, "127.0.0.1", 1, 16);
	p->sport = 0xd100;
	link->ops->xmit(link, p);
	run_until(dev, 1);
	CHECK(nrx == 1 && port && rx[0]->sport == port,
	      "flow beyond the table: flow_port %#x, left from %#x", port,
	      nrx ? rx[0]->sport : 0);
	/* (unless a socket of the earlier tests went idle meanwhile) */
	CHECK(evictions(dev) != ev || (port != 0xd100 && !held),
	      "flow beyond the table got port %#x, held %d", port, held);
	if (held)
		link->ops->flow_release(link, &dst, 0xd100);
	rx_reset(dev);

	/* a client's port: held while everything else goes idle */
	usleep(1100 * 1000);
	ev_now_update(dev->loop);
	port = link->ops->flow_port(link, &dst, 0xf000, &held);
	CHECK(port == 0xf000 && held, "flow_port %#x held %d, want 0xf000",
	      port, held);
	usleep(1100 * 1000);
	ev_now_update(dev->loop);
	ev = evictions(dev);
	own = flows_own(dev, link, 0xe000, 70);
	CHECK(own >= 60, "70 new flows after 1.1 s idle: %d own ports", own);
	CHECK(evictions(dev) - ev >= 60,
	      "after 1.1 s idle: %" PRIu64 " sockets closed",
	      evictions(dev) - ev);
	printf("  source ports: 70 new flows after 1.1 s idle, %d own, %" PRIu64
	       " idle sockets closed\n",
	       own, evictions(dev) - ev);
	/* the held one stayed (all others are busy now: it could not be
	 * reopened), and flows that survived the table's rebuilds are found
	 * without closing anything */
	ev = evictions(dev);
	CHECK(flows_own(dev, link, 0xf000, 1) == 1, "the held port was closed");
	CHECK(flows_own(dev, link, 0xe000, 10) == 10,
	      "flows kept through the rebuilds left from other ports");
	CHECK(evictions(dev) == ev, "%" PRIu64 " sockets closed for kept flows",
	      evictions(dev) - ev);
	link->ops->flow_release(link, &dst, 0xf000);
}

static void test_burst(struct ipd_dev *dev, struct ipd_link *link)
{
	int i, inorder = 1;

	for (i = 0; i < 200; i++)
		link->ops->xmit(link, make_pkt(AF_INET, "127.0.0.1", 100,
					       1024));
	run_until(dev, 200);
	CHECK(nrx == 200, "burst: got %d of 200", nrx);
	for (i = 1; i < nrx; i++)
		if (rx[i]->sport != rx[0]->sport)
			inorder = 0;
	CHECK(inorder, "one flow must use one source port");
	rx_reset(dev);
}

/* Runs of equal-size packets (GSO on send, GRO on receive when cfg asks
 * for them): every packet arrives once, in order, byte for byte; the
 * short last packet of a run, a second flow and a lone packet in between
 * break runs where they must.  The packets' IPv4 IDs (pkt->ip_id, which
 * the ICRC check found) must be 0 without GSO and count up within each
 * GSO datagram with it (IPv6: always 0). */
static void test_runs(struct ipd_dev *dev, struct ipd_link *link,
		      int family, const char *ip, const char *what)
{
	bool gso = dev->cfg->udp_gso && family == AF_INET;
	int ids = 0, idbad = 0;
	static const uint32_t sizes[] = { 1024, 1024, 1024, 1024, 512, 1024,
					  1024, 64, 1024, 1024, 1024, 1024 };
	uint8_t *want[MAX_RX];
	uint32_t wlen[MAX_RX], wsport[MAX_RX];
	int i, n = 0, ok = 1, rounds, last[2] = { 0, 0 };
	uint64_t mal = dev->cnt.drop_malformed, bad = dev->cnt.drop_icrc;
	uint64_t txe = dev->cnt.udp_tx_errors;

	for (rounds = 0; rounds < 20; rounds++) {
		for (i = 0; i < (int)(sizeof(sizes) / sizeof(sizes[0])); i++) {
			/* two flows: every fourth packet on another port */
			uint32_t psn = (uint32_t)n + (i % 4 == 3 ? 0x100 : 0);
			struct ipd_pkt *p = make_pkt(family, ip, psn,
						     sizes[i]);

			p->sport = i % 4 == 3 ? 0xc100 : 0xc001;
			want[n] = malloc(p->len);
			memcpy(want[n], p->hdr, p->len);
			wlen[n] = p->len;
			wsport[n] = p->sport;
			link->ops->xmit(link, p);
			n++;
		}
		if (rounds % 7 == 6)
			ev_run(dev->loop, EVRUN_NOWAIT);   /* flush */
	}
	run_until(dev, n);
	CHECK(nrx == n, "%s: got %d of %d packets", what, nrx, n);
	/* each received packet is one that was sent, after the ones of
	 * its flow received before it */
	for (i = 0; i < nrx && ok; i++) {
		int j, flow;

		for (j = 0; j < n; j++)
			if (want[j] && rx[i]->len == wlen[j] &&
			    !memcmp(rx[i]->hdr, want[j], wlen[j]))
				break;
		flow = j < n && wsport[j] == 0xc100;
		if (j == n || j < last[flow]) {
			ok = 0;
			break;
		}
		last[flow] = j;
		ids += rx[i]->ip_id != 0;
		/* a segment's ID is one more than its flow's previous
		 * packet's, or 0 where a datagram starts */
		if (rx[i]->ip_id && (!gso || rx[i]->ip_id >= 64))
			idbad++;
		free(want[j]);
		want[j] = NULL;
	}
	CHECK(ok, "%s: packet %d differs or is out of its flow's order", what,
	      i);
	CHECK(!idbad && (!gso || ids > 0),
	      "%s: %d packets with a non-zero IP ID, %d unexpected", what, ids,
	      idbad);
	CHECK(dev->cnt.drop_malformed == mal && dev->cnt.drop_icrc == bad &&
		      dev->cnt.udp_tx_errors == txe,
	      "%s: drops malformed %llu icrc %llu, tx errors %llu", what,
	      (unsigned long long)(dev->cnt.drop_malformed - mal),
	      (unsigned long long)(dev->cnt.drop_icrc - bad),
	      (unsigned long long)(dev->cnt.udp_tx_errors - txe));
	for (i = 0; i < n; i++)
		free(want[i]);
	rx_reset(dev);
}

static bool have_ipv6_lo(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6,
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	bool ok = fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a));

	if (fd >= 0)
		close(fd);
	return ok;
}

/* A device on its own event loop whose UDP link also has the IPv6
 * loopback address when the host has one; the link or NULL. */
static struct ipd_link *dev_link_create(struct ipd_dev *dev,
					 struct ipd_config *cfg)
{
	dev->cfg = cfg;
	dev->loop = ev_loop_new(EVFLAG_AUTO);
	if (have_ipv6_lo()) {
		dev->ngids = 1;
		dev->gids[0].family = AF_INET6;
		set_addr(&dev->gids[0].addr, AF_INET6, "::1");
	}
	return ipd_link_udp_create(dev);
}

/* The same runs through links with GSO and/or GRO on. */
static void test_gso_gro(bool gso, bool gro)
{
	struct ipd_config cfg = { 0 };
	struct ipd_dev dev = { 0 };
	struct ipd_link *link;
	char what[32];

	snprintf(what, sizeof(what), "gso %s, gro %s", gso ? "on" : "off",
		 gro ? "on" : "off");
	cfg.udp_port = 30000 + (unsigned int)((getpid() + 7 * gso + 13 * gro) %
					      10000);
	cfg.udp_gso = gso;
	cfg.udp_gro = gro;
	link = dev_link_create(&dev, &cfg);
	CHECK(link != NULL, "%s: create: %s", what, strerror(errno));
	if (link) {
		test_roundtrip(&dev, link, AF_INET, "127.0.0.1");
		test_runs(&dev, link, AF_INET, "127.0.0.1", what);
		if (dev.ngids)
			test_runs(&dev, link, AF_INET6, "::1", what);
		link->ops->destroy(link);
		printf("  %s: runs of packets arrive whole and in order\n",
		       what);
	}
	ev_loop_destroy(dev.loop);
}

/* Datagrams that must never reach the engine. */
static void test_drops(struct ipd_dev *dev, uint16_t port)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	struct ipd_pkt *p = make_pkt(AF_INET, "127.0.0.1", 7, 16);
	uint64_t mal = dev->cnt.drop_malformed, bad = dev->cnt.drop_icrc;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int pmtu = IP_PMTUDISC_DO;
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	struct ipd_icrc_flow flow;

	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
	bind(fd, (struct sockaddr *)&(struct sockaddr_in){
		.sin_family = AF_INET }, sizeof(to));
	getsockname(fd, (struct sockaddr *)&me, &ml);

	/* runt: 8 bytes */
	sendto(fd, p->hdr, 8, 0, (struct sockaddr *)&to, sizeof(to));
	/* odd length: 12 + 16 + 4 + 1 */
	sendto(fd, p->hdr, p->len + 5, 0, (struct sockaddr *)&to, sizeof(to));
	/* a good ICRC from this socket is accepted... */
	flow = (struct ipd_icrc_flow){
		.src = (struct sockaddr *)&p->src,
		.dst = (struct sockaddr *)&p->dst,
		.sport = ntohs(me.sin_port), .dport = port, .ip_df = true,
	};
	ipd_icrc_append(&flow, p->hdr, p->len);
	sendto(fd, p->hdr, p->len + 4, 0, (struct sockaddr *)&to, sizeof(to));
	/* ...a corrupted payload byte is not */
	p->hdr[20] ^= 0x10;
	sendto(fd, p->hdr, p->len + 4, 0, (struct sockaddr *)&to, sizeof(to));
	/* nor is a packet whose ICRC covered another source port (rxe's
	 * case is the same with another IP ID: see link_udp.c) */
	p->hdr[20] ^= 0x10;
	flow.sport ^= 1;
	ipd_icrc_append(&flow, p->hdr, p->len);
	sendto(fd, p->hdr, p->len + 4, 0, (struct sockaddr *)&to, sizeof(to));
	settle(dev);
	CHECK(dev->cnt.drop_malformed - mal == 2, "malformed: %llu",
	      (unsigned long long)(dev->cnt.drop_malformed - mal));
	CHECK(dev->cnt.drop_icrc - bad == 2, "icrc drops: %llu",
	      (unsigned long long)(dev->cnt.drop_icrc - bad));
	CHECK(nrx == 1, "accepted %d of 1 good packets", nrx);
	rx_reset(dev);
	ipd_pkt_free(dev, p);
	close(fd);
}

/* IPATHD_UDP_RX=packet: a packet whose IPv4 header has a non-zero ID (as
 * Linux rxe sends) is accepted when its ICRC covers that ID, and a wrong
 * ICRC is still dropped.  Sent with IP_HDRINCL so the ID is ours. */
static void send_hdrincl(int fd, uint16_t port, uint16_t id, bool good)
{
	struct ipd_pkt *p = make_pkt(AF_INET, "127.0.0.1", 9, 32);
	struct sockaddr_in to = { .sin_family = AF_INET };
	uint8_t b[256] = { 0x45 };
	uint32_t n = 28 + p->len + 4;
	struct ipd_icrc_flow flow = {
		.src = (struct sockaddr *)&p->src,
		.dst = (struct sockaddr *)&p->dst,
		.sport = 0xc321, .dport = port, .ip_id = id, .ip_df = true,
	};

	ipd_icrc_append(&flow, p->hdr, p->len);
	if (!good)
		p->hdr[p->len] ^= 1;
	b[2] = n >> 8, b[3] = n & 0xff;
	b[4] = id >> 8, b[5] = id & 0xff;
	b[6] = 0x40;
	b[8] = 64;
	b[9] = IPPROTO_UDP;
	inet_pton(AF_INET, "127.0.0.1", b + 12);
	inet_pton(AF_INET, "127.0.0.1", b + 16);
	b[20] = 0xc3, b[21] = 0x21;
	b[22] = port >> 8, b[23] = port & 0xff;
	b[24] = (n - 20) >> 8, b[25] = (n - 20) & 0xff;
	memcpy(b + 28, p->hdr, p->len + 4);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(sendto(fd, b, n, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)n,
	      "hdrincl send: %s", strerror(errno));
	ipd_pkt_free(NULL, p);
}

static void test_packet_rx(bool gso)
{
	struct ipd_config cfg = { 0 };
	struct ipd_dev dev = { 0 };
	struct ipd_link *link;
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);

	if (fd < 0) {
		printf("  (no raw socket: packet receive path not tested)\n");
		return;
	}
	cfg.udp_port = 40000 + (unsigned int)((getpid() + gso) % 20000);
	cfg.udp_gso = gso;
	dev.cfg = &cfg;
	dev.loop = ev_loop_new(EVFLAG_AUTO);
	dev.ngids = 1;
	dev.gids[0].family = AF_INET;
	set_addr(&dev.gids[0].addr, AF_INET, "127.0.0.1");
	strcpy(cfg.udp_rx, "packet");
	link = ipd_link_udp_create(&dev);
	CHECK(link != NULL, "create with udp_rx = packet");
	if (!link)
		goto out;
	send_hdrincl(fd, (uint16_t)cfg.udp_port, 0x1234, true);
	send_hdrincl(fd, (uint16_t)cfg.udp_port, 0x1235, false);
	settle(&dev);
	CHECK(nrx == 1 && rx[0]->sport == 0xc321 && rx[0]->len == 12 + 32,
	      "packet path: %d packets accepted (want 1 with ID 0x1234)", nrx);
	CHECK(dev.cnt.drop_icrc == 1, "packet path: %llu ICRC drops",
	      (unsigned long long)dev.cnt.drop_icrc);
	rx_reset(&dev);
	/* our own sends (ID 0) go through it as well, each seen once */
	test_roundtrip(&dev, link, AF_INET, "127.0.0.1");
	test_burst(&dev, link);
	/* GSO datagrams reach a packet socket on lo uncut: cut here, each
	 * segment checked with the ID the kernel would have given it */
	test_runs(&dev, link, AF_INET, "127.0.0.1",
		  gso ? "packet rx, gso on" : "packet rx, gso off");
	printf("  packet receive path (gso %s): non-zero IP ID accepted, bad "
	       "ICRC dropped\n",
	       gso ? "on" : "off");
	link->ops->destroy(link);
out:
	ev_loop_destroy(dev.loop);
	close(fd);
}

int main(void)
{
	struct ipd_config cfg = { 0 };
	struct ipd_dev dev = { 0 };
	struct ipd_link *link;
	int raw;

	cfg.udp_port = 20000 + (unsigned int)(getpid() % 20000);
	link = dev_link_create(&dev, &cfg);
	if (!link) {
		fprintf(stderr, "FAIL: ipd_link_udp_create: %s\n",
			strerror(errno));
		return 1;
	}
	raw = raw_open();
	test_roundtrip(&dev, link, AF_INET, "127.0.0.1");
	test_burst(&dev, link);
	test_runs(&dev, link, AF_INET, "127.0.0.1", "gso off, gro off");
	test_sport_taken(&dev, link);
	test_sport_evict(&dev, link);
	if (raw >= 0) {
		settle(&dev);
		raw_check(raw, (uint16_t)cfg.udp_port);
		close(raw);
	}
	if (dev.ngids)
		test_roundtrip(&dev, link, AF_INET6, "::1");
	test_drops(&dev, (uint16_t)cfg.udp_port);
	link->ops->destroy(link);
	ev_loop_destroy(dev.loop);
	test_packet_rx(false);
	test_packet_rx(true);
	test_gso_gro(true, true);
	test_gso_gro(true, false);
	test_gso_gro(false, true);
	CHECK(npkts == 0, "%d packets leaked", npkts);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("link_udp: all checks passed\n");
	return 0;
}
