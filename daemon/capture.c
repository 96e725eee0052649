// SPDX-License-Identifier: MIT
/*
 * Packet capture to a pcap file (ipathctl capture).
 *
 * The engine's two funnels (ipd_net_xmit, ipd_engine_rx in net.c) hand
 * every packet to ipd_capture_pkt while dev->captures is non-NULL.  A
 * packet there is BTH .. pad: the links add the IP/UDP headers (or the
 * fabric header) and the ICRC on the way out and strip them on the way
 * in.  So each frame is rebuilt as it would look on a RoCEv2 wire:
 *
 *   Linux cooked header (LINKTYPE_LINUX_SLL: direction, ethertype)
 *   IPv4 (DF, TTL 64, the ID the UDP link gave the packet: 0, or 1, 2..
 *     for the later segments of a GSO datagram) or IPv6 header, real
 *     addresses (the loopback
 *     link's are those of the GIDs the QPs use)
 *   UDP to port 4791 (whatever --udp-port is, so that decoders know it),
 *     source port the packet's flow port; checksum 0 on IPv4, computed
 *     on IPv6 (zero is not allowed there)
 *   the packet, and the ICRC computed for exactly these headers (icrc.c)
 *
 * The caller (ipathctl) opens the file and passes the descriptor, so the
 * file belongs to the caller and the daemon needs no right to create it.
 * libpcap writes it (pcap_dump_fopen on the descriptor).  Frames go out
 * through stdio's buffer; a write error ends the capture.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "ipathd/hdr.h"
#include "ipathd/icrc.h"
#include "objects.h"
#include "ipathd/opcode.h"

#define SLL_HDR_BYTES	  16u
#define SLL_HOST	  0 /* "to us" */
#define SLL_OUTGOING	  4 /* "sent by us" */
#define SLL_ARPHRD_NONE	  0xfffe
#define CAPTURE_SNAPLEN	  65535
#define CAPTURE_STDIO_BUF (256u * 1024u)
#define FRAME_MAX                                                 \
	(SLL_HDR_BYTES + IPD_IPV6_HDR_BYTES + IPD_UDP_HDR_BYTES + \
	 sizeof(((struct ipd_pkt *)0)->buf) + IPD_ICRC_BYTES)

struct ipd_capture {
	struct ipd_capture *next; /* dev->captures, while running */
	struct ipd_client *client;
	pcap_t *pcap; /* a "dead" handle: link type, snaplen */
	pcap_dumper_t *dumper;
	FILE *file;
	char *stdio_buf;
	int done_fd; /* pipe write end, closed at the end */
	bool running;
	bool has_qpn;
	uint32_t qpn;
	uint64_t max_packets; /* 0 = no limit */
	uint64_t packets, bytes;
	char error[128];
	uint8_t frame[FRAME_MAX];
};

/* ---- addresses ------------------------------------------------------ */

/* A packet address as AF_INET (IPv4-mapped IPv6 folded) or AF_INET6;
 * an unset one stays AF_UNSPEC. */
static int addr_fold(const struct sockaddr_storage *in,
		     struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *s6 = (const void *)in;

	memset(out, 0, sizeof(*out));
	if (in->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		struct sockaddr_in *s4 = (void *)out;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
	} else if (in->ss_family == AF_INET || in->ss_family == AF_INET6) {
		memcpy(out, in,
		       in->ss_family == AF_INET ? sizeof(struct sockaddr_in)
						: sizeof(struct sockaddr_in6));
	}
	return out->ss_family;
}

static const void *addr_bytes(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET
		       ? (const void *)&((const struct sockaddr_in *)ss)
				 ->sin_addr
		       : (const void *)&((const struct sockaddr_in6 *)ss)
				 ->sin6_addr;
}

static bool addr_same(const struct sockaddr_storage *a,
		      const struct sockaddr_storage *b)
{
	struct sockaddr_storage fa, fb;
	int fam = addr_fold(a, &fa);

	if (fam == AF_UNSPEC || addr_fold(b, &fb) != fam)
		return false;
	return !memcmp(addr_bytes(&fa), addr_bytes(&fb),
		       fam == AF_INET ? 4 : 16);
}

/* ---- which packets ------------------------------------------------- */

/*
 * --qp N: packets for local QP N (BTH DestQP), packets it exchanges with
 * its connected peer (DestQP its dest_qp_num towards its peer's address:
 * what it sends, and on the loopback link what its peer receives), and
 * UD packets whose DETH names N as the source QP.
 */
static bool capture_match(struct ipd_dev *dev, const struct ipd_capture *cap,
			  const struct ipd_pkt *pkt)
{
	const struct ipd_opcode_info *info;
	struct ipd_qp *qp;
	uint32_t dqpn;

	if (!cap->has_qpn)
		return true;
	if (pkt->len < IPD_BTH_BYTES)
		return false;
	dqpn = ipd_bth_qpn(pkt->hdr);
	if (dqpn == cap->qpn)
		return true;
	info = ipd_bth_info(pkt->hdr);
	if ((info->mask & IPD_DETH_MASK) && pkt->len >= info->length)
		return ipd_deth_sqp(pkt->hdr) == cap->qpn;
	qp = ipd_qp_lookup(dev, cap->qpn);
	return qp && qp->type != IBV_QPT_UD &&
	       qp->attr.qp_state != IBV_QPS_RESET &&
	       qp->attr.qp_state != IBV_QPS_INIT &&
	       dqpn == qp->attr.dest_qp_num &&
	       addr_same(&pkt->dst, &qp->av.dst);
}

/* ---- building the frame --------------------------------------------- */

/* RFC 1071 one's complement sum, folded. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Writes the IP header at ip; returns its length. */
static size_t frame_ip(uint8_t *ip, int fam, const struct sockaddr_storage *src,
		       const struct sockaddr_storage *dst, size_t udp_len,
		       uint16_t id)
{
	if (fam == AF_INET) {
		ip[0] = 0x45;
		ipd_put16(ip + 2, (uint16_t)(IPD_IPV4_HDR_BYTES + udp_len));
		ipd_put16(ip + 4, id);	   /* as link_udp.c sends */
		ipd_put16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = IPPROTO_UDP;
		memcpy(ip + 12, addr_bytes(src), 4);
		memcpy(ip + 16, addr_bytes(dst), 4);
		ipd_put16(ip + 10,
			  csum_fold(csum_add(0, ip, IPD_IPV4_HDR_BYTES)));
		return IPD_IPV4_HDR_BYTES;
	}
	ip[0] = 0x60;
	ipd_put16(ip + 4, (uint16_t)udp_len);
	ip[6] = IPPROTO_UDP;
	ip[7] = 64;
	memcpy(ip + 8, addr_bytes(src), 16);
	memcpy(ip + 24, addr_bytes(dst), 16);
	return IPD_IPV6_HDR_BYTES;
}

/* RFC 8200 8.1: the UDP checksum over the IPv6 pseudo header. */
static void frame_udp6_csum(const uint8_t *ip6, uint8_t *udp, size_t udp_len)
{
	uint32_t sum = csum_add(0, ip6 + 8, 32);
	uint16_t c;

	sum += (uint32_t)udp_len + IPPROTO_UDP;
	c = csum_fold(csum_add(sum, udp, udp_len));
	ipd_put16(udp + 6, c ? c : 0xffff);
}

/* The frame for pkt in cap->frame; its length. */
static size_t frame_build(struct ipd_capture *cap, const struct ipd_pkt *pkt,
			  bool tx)
{
	uint8_t *f = cap->frame, *ip = f + SLL_HDR_BYTES, *udp, *bth;
	struct sockaddr_storage src, dst;
	uint32_t len = pkt->len, icrc;
	int fam = addr_fold(&pkt->dst, &dst);
	size_t iplen, udp_len;

	if (len > sizeof(pkt->buf))
		len = sizeof(pkt->buf);
	if (fam == AF_UNSPEC)
		fam = dst.ss_family = AF_INET; /* 0.0.0.0: unknown */
	if (addr_fold(&pkt->src, &src) != fam) {
		memset(&src, 0, sizeof(src));
		src.ss_family = (sa_family_t)fam;
	}
	memset(f, 0, SLL_HDR_BYTES + IPD_IPV6_HDR_BYTES + IPD_UDP_HDR_BYTES);
	ipd_put16(f, tx ? SLL_OUTGOING : SLL_HOST);
	ipd_put16(f + 2, SLL_ARPHRD_NONE);
	ipd_put16(f + 14, fam == AF_INET ? 0x0800 : 0x86dd);

	udp_len = IPD_UDP_HDR_BYTES + len +
		  (len >= IPD_BTH_BYTES ? IPD_ICRC_BYTES : 0);
	iplen = frame_ip(ip, fam, &src, &dst, udp_len, pkt->ip_id);
	udp = ip + iplen;
	ipd_put16(udp, pkt->sport);
	ipd_put16(udp + 2, IPD_ROCE_UDP_PORT);
	ipd_put16(udp + 4, (uint16_t)udp_len);
	bth = udp + IPD_UDP_HDR_BYTES;
	memcpy(bth, pkt->hdr, len);
	if (len >= IPD_BTH_BYTES) {
		const struct ipd_icrc_flow flow = {
			.src = (const struct sockaddr *)&src,
			.dst = (const struct sockaddr *)&dst,
			.sport = pkt->sport,
			.dport = IPD_ROCE_UDP_PORT,
			.ip_id = fam == AF_INET ? pkt->ip_id : 0,
			.ip_df = true,
		};

		if (ipd_icrc_compute(&flow, bth, len, &icrc))
			icrc = 0;
		ipd_icrc_store(bth + len, icrc);
	}
	if (fam == AF_INET6)
		frame_udp6_csum(ip, udp, udp_len);
	return SLL_HDR_BYTES + iplen + udp_len;
}

/* ---- capture lifetime ----------------------------------------------- */

static void capture_unlink(struct ipd_dev *dev, struct ipd_capture *cap)
{
	struct ipd_capture **pp;

	for (pp = &dev->captures; *pp; pp = &(*pp)->next) {
		if (*pp == cap) {
			*pp = cap->next;
			break;
		}
	}
	cap->next = NULL;
}

/* Flush (0, or -1 when that failed) and close the file. */
static int capture_close_file(struct ipd_capture *cap)
{
	int ret = 0;

	if (cap->dumper) {
		ret = pcap_dump_flush(cap->dumper);
		pcap_dump_close(cap->dumper); /* closes the FILE and the fd */
	} else if (cap->file) {
		fclose(cap->file);
	}
	cap->dumper = NULL;
	cap->file = NULL;
	if (cap->done_fd >= 0)
		close(cap->done_fd);
	cap->done_fd = -1;
	return ret;
}

/* Stop writing: flush and close the file, tell the caller through the
 * pipe.  why is NULL for a plain stop. */
static void capture_end(struct ipd_dev *dev, struct ipd_capture *cap,
			const char *why)
{
	if (!cap->running)
		return;
	cap->running = false;
	capture_unlink(dev, cap);
	if (capture_close_file(cap) && !why)
		why = "flushing the file failed";
	if (why && !cap->error[0])
		snprintf(cap->error, sizeof(cap->error), "%s", why);
	ipd_info("capture for client %u ended: %llu packets%s%s",
		 cap->client->id, (unsigned long long)cap->packets,
		 cap->error[0] ? ": " : "", cap->error);
}

static void capture_free(struct ipd_dev *dev, struct ipd_capture *cap)
{
	capture_end(dev, cap, NULL);
	capture_close_file(cap); /* one that never ran */
	if (cap->pcap)
		pcap_close(cap->pcap);
	free(cap->stdio_buf);
	free(cap);
}

void ipd_capture_pkt(struct ipd_dev *dev, const struct ipd_pkt *pkt, bool tx)
{
	struct ipd_capture *cap, *next;
	struct pcap_pkthdr ph;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ph.ts.tv_sec = ts.tv_sec;
	ph.ts.tv_usec = ts.tv_nsec / 1000;
	for (cap = dev->captures; cap; cap = next) {
		next = cap->next; /* capture_end unlinks cap */
		if (!capture_match(dev, cap, pkt))
			continue;
		ph.caplen = ph.len = (bpf_u_int32)frame_build(cap, pkt, tx);
		pcap_dump((u_char *)cap->dumper, &ph, cap->frame);
		if (ferror(cap->file)) {
			capture_end(dev, cap, "writing the file failed");
			continue;
		}
		cap->packets++;
		cap->bytes += ph.len;
		if (cap->max_packets && cap->packets >= cap->max_packets)
			capture_end(dev, cap, NULL);
	}
}

/* ---- requests ---------------------------------------------------------- */

/* Capturing shows every client's data: root and the daemon's own user
 * only, as a packet socket needs CAP_NET_RAW. */
static bool capture_allowed(const struct ipd_client *c)
{
	return c->uid == 0 || c->uid == geteuid();
}

static int capture_check(struct ipd_req_ctx *ctx)
{
	struct ipd_client *c = ctx->client;
	struct stat st;
	int fl;

	if (!capture_allowed(c))
		return ipd_req_fail(
			ctx, EPERM,
			"capture: only root or the daemon's user may capture");
	if (c->capture)
		return ipd_req_fail(
			ctx, EBUSY,
			"capture: this connection already captures");
	if (ctx->n_in_fds != 2)
		return ipd_req_fail(ctx, EINVAL,
				    "capture: needs the file and a pipe (got "
				    "%d descriptors)",
				    ctx->n_in_fds);
	if (fstat(ctx->in_fds[0], &st) < 0 || !S_ISREG(st.st_mode))
		return ipd_req_fail(
			ctx, EINVAL,
			"capture: the output must be a regular file");
	fl = fcntl(ctx->in_fds[0], F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
		return ipd_req_fail(
			ctx, EBADF,
			"capture: the file is not open for writing");
	if (fstat(ctx->in_fds[1], &st) < 0 || !S_ISFIFO(st.st_mode))
		return ipd_req_fail(
			ctx, EINVAL,
			"capture: the second descriptor must be a pipe");
	return 0;
}

/* Open the pcap stream on the caller's descriptor. */
static int capture_open(struct ipd_capture *cap, int fd)
{
	cap->pcap = pcap_open_dead(DLT_LINUX_SLL, CAPTURE_SNAPLEN);
	if (!cap->pcap)
		return -ENOMEM;
	cap->file = fdopen(fd, "w");
	if (!cap->file)
		return -errno;
	cap->stdio_buf = malloc(CAPTURE_STDIO_BUF);
	if (cap->stdio_buf)
		setvbuf(cap->file, cap->stdio_buf, _IOFBF, CAPTURE_STDIO_BUF);
	cap->dumper = pcap_dump_fopen(cap->pcap, cap->file);
	if (!cap->dumper)
		return -EIO;
	/* The file header now, so that even an empty capture is valid. */
	return pcap_dump_flush(cap->dumper) ? -EIO : 0;
}

int ipd_handle_capture_start(struct ipd_req_ctx *ctx)
{
	const Ipd__CaptureStart *m = ctx->req->capture_start;
	struct ipd_client *c = ctx->client;
	struct ipd_dev *dev = c->dev;
	struct ipd_capture *cap;
	Ipd__CaptureStats *r;
	int ret;

	ret = capture_check(ctx);
	if (ret)
		return ret;
	r = ipd_req_alloc(ctx, sizeof(*r));
	cap = calloc(1, sizeof(*cap));
	if (!r || !cap) {
		free(cap);
		return ipd_req_fail(ctx, ENOMEM, "capture: out of memory");
	}
	cap->client = c;
	cap->done_fd = -1;
	ret = capture_open(cap, ctx->in_fds[0]);
	if (cap->file)
		ctx->in_fds[0] = -1; /* the FILE owns it now */
	if (ret) {
		capture_free(dev, cap);
		return ipd_req_fail(ctx, -ret, "capture: %s", strerror(-ret));
	}
	cap->done_fd = ctx->in_fds[1];
	ctx->in_fds[1] = -1;
	cap->has_qpn = m->has_qpn;
	cap->qpn = m->qpn & 0xffffff;
	cap->max_packets = m->max_packets;
	cap->running = true;
	cap->next = dev->captures;
	dev->captures = cap;
	c->capture = cap;
	ipd_info("client %u (%s): capture started%s", c->id, c->name,
		 cap->has_qpn ? " (one QP)" : "");
	ipd__capture_stats__init(r);
	ctx->resp->op_case = IPD__RESPONSE__OP_CAPTURE;
	ctx->resp->capture = r;
	return 0;
}

int ipd_handle_capture_stop(struct ipd_req_ctx *ctx)
{
	struct ipd_client *c = ctx->client;
	struct ipd_capture *cap = c->capture;
	Ipd__CaptureStats *r;

	if (!cap)
		return ipd_req_fail(ctx, ENOENT,
				    "capture: none on this connection");
	r = ipd_req_alloc(ctx, sizeof(*r));
	if (!r)
		return ipd_req_fail(ctx, ENOMEM, "capture: out of memory");
	capture_end(c->dev, cap, NULL);
	ipd__capture_stats__init(r);
	r->packets = cap->packets;
	r->bytes = cap->bytes;
	r->error = ipd_req_strdup(ctx, cap->error);
	if (!r->error)
		return ipd_req_fail(ctx, ENOMEM, "capture: out of memory");
	c->capture = NULL;
	capture_free(c->dev, cap);
	ctx->resp->op_case = IPD__RESPONSE__OP_CAPTURE;
	ctx->resp->capture = r;
	return 0;
}

void ipd_client_release_capture(struct ipd_client *client)
{
	if (!client->capture)
		return;
	capture_free(client->dev, client->capture);
	client->capture = NULL;
}
