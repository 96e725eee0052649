// SPDX-License-Identifier: MIT
/*
 * RoCEv2 ICRC (IBA annex A17.3.3, IB 7.8.1).  The CRC is the standard
 * CRC-32 (zlib's crc32: reflected polynomial 0x04C11DB7, initial value
 * and final XOR all ones; ISA-L's crc32_gzip_refl computes the same with
 * carry-less multiplication and is used when built with it) over
 *
 *   8 bytes of 0xff                  the LRH that RoCEv2 does not carry
 *   IPv4 header: TOS, TTL, header checksum set to all ones
 *   IPv6 header: traffic class, flow label, hop limit set to all ones
 *   UDP header: checksum set to all ones
 *   BTH: byte 4 (FECN, BECN, resv6 — the IBA 1.0 "resv8a" byte) set to
 *        all ones; Linux rxe ORs ~BTH_QPN_MASK into the QPN word, scapy
 *        sets fecn/becn/resv6 — the same byte
 *   the rest of the packet, extension headers, payload and pad
 *
 * and it is transmitted least significant byte first.  Every other field
 * is invariant, notably the IPv4 identification and flags: a receiver
 * must know them exactly (see link_udp.c on why that matters).
 *
 * IP identification deltas.  CRC-32 is affine: for two messages of one
 * length, crc(a) ^ crc(b) is the linear CRC (no initial value, no final
 * XOR) of a ^ b.  Two ICRCs of one packet computed for IPv4 IDs 0 and id
 * differ only in the 16 ID bits, followed by the same number of bytes
 * (the rest of the headers and the packet, so a function of the packet's
 * length only): ICRC(id) = ICRC(0) ^ delta(len, id), and delta is linear
 * in id, the XOR of one delta per set bit.  A bit's delta is the linear
 * CRC of the 2-byte ID field moved over the bytes after it, which zlib's
 * crc32_combine_gen/crc32_combine_op do in GF(2) (multiplication by
 * x^(8n) modulo the polynomial); the CRC is the same whichever of zlib
 * and ISA-L computes the packets.  struct ipd_icrc_ids caches the bit
 * deltas per length.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <zlib.h>
#ifdef IPD_HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "ipathd/icrc.h"

#define PSEUDO_LRH_BYTES 8u
#define PSEUDO_MAX (PSEUDO_LRH_BYTES + IPD_IPV6_HDR_BYTES + \
		    IPD_UDP_HDR_BYTES + IPD_BTH_BYTES)
#define BTH_VARIANT_BYTE 4u   /* FECN | BECN | resv6, before DestQP */
/* The IPv4 identification: bytes 4-5 of the IP header in the pseudo
 * header, which is followed by the UDP header and the packet. */
#define IPV4_ID_END (PSEUDO_LRH_BYTES + 6u)

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void ipd_icrc_store(uint8_t *p, uint32_t icrc)
{
	p[0] = icrc & 0xff;
	p[1] = (icrc >> 8) & 0xff;
	p[2] = (icrc >> 16) & 0xff;
	p[3] = icrc >> 24;
}

uint32_t ipd_icrc_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Variant fields of the IPv4 header (A17.3.3): TOS, TTL, checksum. */
static void mask_ipv4(uint8_t *h)
{
	h[1] = 0xff;            /* TOS (DSCP + ECN) */
	h[8] = 0xff;            /* TTL */
	h[10] = h[11] = 0xff;   /* header checksum */
}

/* Variant fields of the IPv6 header: traffic class, flow label, hop limit.
 * The version nibble stays. */
static void mask_ipv6(uint8_t *h)
{
	h[0] |= 0x0f;
	h[1] = h[2] = h[3] = 0xff;
	h[7] = 0xff;            /* hop limit */
}

static void mask_udp(uint8_t *h)
{
	h[6] = h[7] = 0xff;     /* UDP checksum */
}

/* CRC-32 continued from crc (0 to start), zlib's convention. */
static uint32_t crc32_more(uint32_t crc, const uint8_t *p, size_t n)
{
#ifdef IPD_HAVE_ISAL
	return crc32_gzip_refl(crc, p, (uint64_t)n);
#else
	return (uint32_t)crc32_z(crc, p, n);
#endif
}

const char *ipd_icrc_impl(void)
{
#ifdef IPD_HAVE_ISAL
	return "ISA-L crc32_gzip_refl";
#else
	return "zlib crc32";
#endif
}

/* crc32 over the pseudo header already built in ps (IP + UDP at ps + 8,
 * BTH copied after them), then over the packet beyond the BTH. */
static uint32_t icrc_finish(uint8_t *ps, size_t iphdr_len,
			    const uint8_t *bth, uint32_t len)
{
	size_t bth_off = PSEUDO_LRH_BYTES + iphdr_len + IPD_UDP_HDR_BYTES;
	uint32_t crc;

	memset(ps, 0xff, PSEUDO_LRH_BYTES);
	memcpy(ps + bth_off, bth, IPD_BTH_BYTES);
	ps[bth_off + BTH_VARIANT_BYTE] = 0xff;
	crc = crc32_more(0, ps, bth_off + IPD_BTH_BYTES);
	return crc32_more(crc, bth + IPD_BTH_BYTES, len - IPD_BTH_BYTES);
}

/* An IPv4-mapped IPv6 address counts as IPv4 (RoCEv2 GIDs of IPv4 hosts). */
static int addr_family(const struct sockaddr *sa, const uint8_t **addr)
{
	const struct sockaddr_in6 *s6;

	if (sa->sa_family == AF_INET) {
		*addr = (const uint8_t *)
			&((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return AF_UNSPEC;
	s6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		*addr = s6->sin6_addr.s6_addr + 12;
		return AF_INET;
	}
	*addr = s6->sin6_addr.s6_addr;
	return AF_INET6;
}

/* The IPv4 header the kernel sends for a UDP datagram of udp_len bytes;
 * TOS, TTL and checksum are written masked right away. */
static void build_ipv4(uint8_t *h, const struct ipd_icrc_flow *f,
		       const uint8_t *src, const uint8_t *dst,
		       uint32_t udp_len)
{
	h[0] = 0x45;            /* version 4, IHL 5: no options */
	put_be16(h + 2, (uint16_t)(IPD_IPV4_HDR_BYTES + udp_len));
	put_be16(h + 4, f->ip_id);
	put_be16(h + 6, f->ip_df ? 0x4000 : 0);
	h[9] = IPPROTO_UDP;
	memcpy(h + 12, src, 4);
	memcpy(h + 16, dst, 4);
	mask_ipv4(h);
}

static void build_ipv6(uint8_t *h, const uint8_t *src, const uint8_t *dst,
		       uint32_t udp_len)
{
	h[0] = 0x60;
	put_be16(h + 4, (uint16_t)udp_len);
	h[6] = IPPROTO_UDP;
	memcpy(h + 8, src, 16);
	memcpy(h + 24, dst, 16);
	mask_ipv6(h);
}

static void build_udp(uint8_t *h, const struct ipd_icrc_flow *f,
		      uint32_t udp_len)
{
	put_be16(h, f->sport);
	put_be16(h + 2, f->dport);
	put_be16(h + 4, (uint16_t)udp_len);
	mask_udp(h);
}

int ipd_icrc_compute(const struct ipd_icrc_flow *flow, const uint8_t *bth,
		     uint32_t len, uint32_t *icrc)
{
	uint8_t ps[PSEUDO_MAX] = { 0 };
	const uint8_t *src = NULL, *dst = NULL;
	uint32_t udp_len = IPD_UDP_HDR_BYTES + len + IPD_ICRC_BYTES;
	int fs = addr_family(flow->src, &src);
	int fd = addr_family(flow->dst, &dst);
	size_t iplen;

	if (fs == AF_UNSPEC || fs != fd)
		return -EAFNOSUPPORT;
	if (len < IPD_BTH_BYTES)
		return -EINVAL;
	if (fs == AF_INET) {
		iplen = IPD_IPV4_HDR_BYTES;
		build_ipv4(ps + PSEUDO_LRH_BYTES, flow, src, dst, udp_len);
	} else {
		iplen = IPD_IPV6_HDR_BYTES;
		build_ipv6(ps + PSEUDO_LRH_BYTES, src, dst, udp_len);
	}
	build_udp(ps + PSEUDO_LRH_BYTES + iplen, flow, udp_len);
	*icrc = icrc_finish(ps, iplen, bth, len);
	return 0;
}

int ipd_icrc_append(const struct ipd_icrc_flow *flow, uint8_t *bth,
		    uint32_t len)
{
	uint32_t icrc;
	int ret;

	ret = ipd_icrc_compute(flow, bth, len, &icrc);
	if (ret)
		return ret;
	ipd_icrc_store(bth + len, icrc);
	return 0;
}

bool ipd_icrc_verify(const struct ipd_icrc_flow *flow, const uint8_t *bth,
		     uint32_t len)
{
	uint32_t icrc;

	if (len < IPD_BTH_BYTES + IPD_ICRC_BYTES)
		return false;
	len -= IPD_ICRC_BYTES;
	if (ipd_icrc_compute(flow, bth, len, &icrc))
		return false;
	return icrc == ipd_icrc_load(bth + len);
}

int ipd_icrc_verify_ip(const uint8_t *ip, size_t len)
{
	uint8_t ps[PSEUDO_MAX];
	size_t iplen, hdrs;
	const uint8_t *udp;

	if (len < 1)
		return -EINVAL;
	if ((ip[0] >> 4) == 4) {
		/* rxe copies a fixed 20-byte header: options are not
		 * RoCEv2 packets we can agree on. */
		if (ip[0] != 0x45 || len < IPD_IPV4_HDR_BYTES ||
		    ip[9] != IPPROTO_UDP || get_be16(ip + 2) != len)
			return -EINVAL;
		iplen = IPD_IPV4_HDR_BYTES;
	} else if ((ip[0] >> 4) == 6) {
		if (len < IPD_IPV6_HDR_BYTES || ip[6] != IPPROTO_UDP ||
		    get_be16(ip + 4) + IPD_IPV6_HDR_BYTES != len)
			return -EINVAL;
		iplen = IPD_IPV6_HDR_BYTES;
	} else {
		return -EINVAL;
	}
	hdrs = iplen + IPD_UDP_HDR_BYTES;
	if (len < hdrs + IPD_BTH_BYTES + IPD_ICRC_BYTES)
		return -EINVAL;
	udp = ip + iplen;
	if (get_be16(udp + 4) != len - iplen)
		return -EINVAL;
	memcpy(ps + PSEUDO_LRH_BYTES, ip, hdrs);
	if (iplen == IPD_IPV4_HDR_BYTES)
		mask_ipv4(ps + PSEUDO_LRH_BYTES);
	else
		mask_ipv6(ps + PSEUDO_LRH_BYTES);
	mask_udp(ps + PSEUDO_LRH_BYTES + iplen);
	len -= hdrs + IPD_ICRC_BYTES;
	return icrc_finish(ps, iplen, udp + IPD_UDP_HDR_BYTES,
			   (uint32_t)len) ==
	       ipd_icrc_load(udp + IPD_UDP_HDR_BYTES + len);
}

/* ---- IPv4 identification deltas (see the top) ------------------------ */

/* The bit deltas for packets of len bytes (no ICRC), from the cache. */
static const uint32_t *id_bits(struct ipd_icrc_ids *ids, uint32_t len)
{
	struct ipd_icrc_ids_ent *e =
		&ids->ent[(len / 4) % IPD_ICRC_IDS_LENGTHS];
	static const uint8_t zero[2];
	uint8_t id[2];
	uint32_t lin;
	uLong op;
	unsigned int b;

	if (e->len == len)
		return e->bit;
	ids->builds++;
	op = crc32_combine_gen((z_off_t)(PSEUDO_LRH_BYTES + IPD_IPV4_HDR_BYTES +
					 IPD_UDP_HDR_BYTES + len -
					 IPV4_ID_END));
	for (b = 0; b < IPD_ICRC_ID_BITS; b++) {
		put_be16(id, (uint16_t)(1u << b));
		/* the linear CRC of the ID field alone... */
		lin = (uint32_t)(crc32(0, id, 2) ^ crc32(0, zero, 2));
		/* ...followed by the bytes after it (zeros in a ^ b) */
		e->bit[b] = (uint32_t)crc32_combine_op(lin, 0, op);
	}
	e->len = len;
	return e->bit;
}

uint32_t ipd_icrc_id_delta(struct ipd_icrc_ids *ids, uint32_t len, uint16_t id)
{
	const uint32_t *bit = id_bits(ids, len);
	uint32_t d = 0;
	unsigned int b;

	for (b = 0; b < IPD_ICRC_ID_BITS && id; b++, id >>= 1)
		if (id & 1)
			d ^= bit[b];
	return id ? 0 : d; /* an ID beyond the cached bits: no delta */
}

int ipd_icrc_verify_ids(const struct ipd_icrc_flow *flow, const uint8_t *bth,
			uint32_t len, struct ipd_icrc_ids *ids)
{
	const uint32_t *bit;
	const uint8_t *a;
	uint32_t icrc, syn, d = 0;
	unsigned int i;

	if (len < IPD_BTH_BYTES + IPD_ICRC_BYTES)
		return -1;
	len -= IPD_ICRC_BYTES;
	if (ipd_icrc_compute(flow, bth, len, &icrc))
		return -1;
	syn = icrc ^ ipd_icrc_load(bth + len);
	if (!syn)
		return flow->ip_id; /* the fast path */
	if (addr_family(flow->src, &a) != AF_INET || flow->ip_id)
		return -1; /* IPv6 has no ID */
	/* Walk the IDs 1..IPD_ICRC_IDS-1 in Gray code order: each step
	 * flips one bit, so one XOR per candidate. */
	bit = id_bits(ids, len);
	for (i = 1; i < IPD_ICRC_IDS; i++) {
		d ^= bit[__builtin_ctz(i)];
		if (d == syn)
			return (int)(i ^ (i >> 1));
	}
	return -1;
}
