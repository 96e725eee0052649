// SPDX-License-Identifier: MIT
/*
 * daemon/icrc.c against packets checksummed by scapy's RoCE layer
 * (icrc_vectors.h, see gen_icrc_vectors.py): every vector verifies, the
 * ICRC recomputed from the header fields matches, every variant field
 * of annex A17.3.3 may change without effect and every other bit flip
 * is detected.  The IPv4 ID deltas (UDP GSO segments) against brute
 * force: ICRC(ID 0) ^ delta == the ICRC computed for the ID.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ipathd/icrc.h"
#include "icrc_vectors.h"

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

struct parsed {
	struct sockaddr_storage src, dst;
	struct ipd_icrc_flow flow;
	size_t iplen;         /* 20 or 40 */
	const uint8_t *bth;
	uint32_t len;         /* BTH .. ICRC inclusive */
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void parse(const uint8_t *b, size_t n, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	if (b[0] >> 4 == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)&p->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&p->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, b + 12, 4);
		memcpy(&d->sin_addr, b + 16, 4);
		p->iplen = 20;
		p->flow.ip_id = be16(b + 4);
		p->flow.ip_df = be16(b + 6) & 0x4000;
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&p->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, b + 8, 16);
		memcpy(&d->sin6_addr, b + 24, 16);
		p->iplen = 40;
	}
	p->flow.src = (struct sockaddr *)&p->src;
	p->flow.dst = (struct sockaddr *)&p->dst;
	p->flow.sport = be16(b + p->iplen);
	p->flow.dport = be16(b + p->iplen + 2);
	p->bth = b + p->iplen + 8;
	p->len = (uint32_t)(n - p->iplen - 8);
}

/* Offsets (in the IP datagram) of bytes the ICRC must ignore. */
static bool variant_bit(size_t iplen, size_t off, int bit)
{
	size_t bth = iplen + 8;

	if (off == iplen + 6 || off == iplen + 7)       /* UDP checksum */
		return true;
	if (off == bth + 4)                             /* FECN|BECN|resv6 */
		return true;
	if (iplen == 20)
		return off == 1 || off == 8 || off == 10 || off == 11;
	if (off == 0)                                   /* traffic class hi */
		return bit < 4;
	return off == 1 || off == 2 || off == 3 || off == 7;
}

/* Lengths must stay consistent for ipd_icrc_verify_ip to accept the
 * packet at all; a flipped length field is "not RoCEv2", also a reject. */
static void check_bit_flips(const struct icrc_vector *v, size_t iplen)
{
	uint8_t *b = malloc(v->len);
	int caught = 0, ignored = 0;
	size_t off;
	int bit;

	memcpy(b, v->bytes, v->len);
	for (off = 0; off < v->len; off++) {
		for (bit = 0; bit < 8; bit++) {
			int r;

			b[off] ^= 1u << bit;
			r = ipd_icrc_verify_ip(b, v->len);
			if (variant_bit(iplen, off, bit)) {
				CHECK(r == 1, "%s: variant byte %zu bit %d changed the ICRC",
				      v->name, off, bit);
				ignored++;
			} else {
				CHECK(r != 1, "%s: flip at byte %zu bit %d not detected",
				      v->name, off, bit);
				caught++;
			}
			b[off] ^= 1u << bit;
		}
	}
	free(b);
	printf("  %s: %d flips detected, %d variant bits ignored\n",
	       v->name, caught, ignored);
}

static void check_vector(const struct icrc_vector *v)
{
	struct parsed p;
	uint32_t icrc = 0;
	uint8_t copy[8192];

	parse(v->bytes, v->len, &p);
	CHECK(ipd_icrc_verify_ip(v->bytes, v->len) == 1, "%s: verify_ip",
	      v->name);
	CHECK(ipd_icrc_verify(&p.flow, p.bth, p.len), "%s: verify", v->name);
	CHECK(ipd_icrc_compute(&p.flow, p.bth, p.len - 4, &icrc) == 0 &&
	      icrc == ipd_icrc_load(p.bth + p.len - 4),
	      "%s: compute %08x", v->name, icrc);

	/* append writes the same four bytes in the same (LE) order */
	memcpy(copy, p.bth, p.len);
	memset(copy + p.len - 4, 0, 4);
	CHECK(ipd_icrc_append(&p.flow, copy, p.len - 4) == 0 &&
	      !memcmp(copy + p.len - 4, p.bth + p.len - 4, 4),
	      "%s: append", v->name);

	/* the wrong port, the wrong IP ID or no DF must fail */
	p.flow.sport ^= 1;
	CHECK(!ipd_icrc_verify(&p.flow, p.bth, p.len), "%s: sport", v->name);
	p.flow.sport ^= 1;
	if (p.iplen == 20) {
		p.flow.ip_id ^= 0x100;
		CHECK(!ipd_icrc_verify(&p.flow, p.bth, p.len), "%s: id",
		      v->name);
		p.flow.ip_id ^= 0x100;
		p.flow.ip_df = !p.flow.ip_df;
		CHECK(!ipd_icrc_verify(&p.flow, p.bth, p.len), "%s: df",
		      v->name);
		p.flow.ip_df = !p.flow.ip_df;
	}
	check_bit_flips(v, p.iplen);
}

/* An IPv4-mapped IPv6 sockaddr (a RoCEv2 GID of an IPv4 host) means IPv4. */
static void check_v4_mapped(void)
{
	const struct icrc_vector *v = &icrc_vectors[0];
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in6 d6 = { .sin6_family = AF_INET6 };
	struct parsed p;

	parse(v->bytes, v->len, &p);
	s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
	d6.sin6_addr = s6.sin6_addr;
	memcpy(s6.sin6_addr.s6_addr + 12,
	       &((struct sockaddr_in *)&p.src)->sin_addr, 4);
	memcpy(d6.sin6_addr.s6_addr + 12,
	       &((struct sockaddr_in *)&p.dst)->sin_addr, 4);
	p.flow.src = (struct sockaddr *)&s6;
	p.flow.dst = (struct sockaddr *)&d6;
	CHECK(ipd_icrc_verify(&p.flow, p.bth, p.len), "v4-mapped verify");

	/* mixed families cannot be one packet */
	p.flow.src = (struct sockaddr *)&p.src;
	d6.sin6_addr.s6_addr[10] = 0;
	CHECK(!ipd_icrc_verify(&p.flow, p.bth, p.len), "mixed families");
}

static void check_rejects(void)
{
	const struct icrc_vector *v = &icrc_vectors[0];
	uint8_t b[256];

	memcpy(b, v->bytes, v->len);
	CHECK(ipd_icrc_verify_ip(b, 0) == -EINVAL, "empty");
	CHECK(ipd_icrc_verify_ip(b, v->len - 1) == -EINVAL, "truncated");
	b[0] = 0x46;    /* IP options */
	CHECK(ipd_icrc_verify_ip(b, v->len) == -EINVAL, "options");
	b[0] = 0x45;
	b[9] = IPPROTO_TCP;
	CHECK(ipd_icrc_verify_ip(b, v->len) == -EINVAL, "not UDP");
}

/* The build's CRC (zlib or ISA-L) against zlib itself on odd lengths and
 * alignments, through the public API: a packet's ICRC must not depend on
 * the implementation. */
static void check_impl_vs_zlib(void)
{
	static uint8_t buf[4200 + 16];
	struct sockaddr_in s = { .sin_family = AF_INET }, d = s;
	struct ipd_icrc_flow f = { .src = (struct sockaddr *)&s,
				   .dst = (struct sockaddr *)&d,
				   .sport = 0xc000, .dport = 4791, .ip_df = true };
	uint8_t ps[8 + 20 + 8 + 12];
	uint32_t len, off, got;
	uLong want;
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	s.sin_addr.s_addr = htonl(0x0a000001);
	d.sin_addr.s_addr = htonl(0x0a000002);
	for (off = 0; off < 8; off += 3) {
		for (len = 12; len <= 4200; len += 4 * 97) {
			const uint8_t *bth = buf + off;
			uint32_t ulen = 8 + len + 4;

			/* the pseudo header, written out for this check */
			memset(ps, 0xff, 8);
			memset(ps + 8, 0, 28);
			ps[8] = 0x45, ps[9] = 0xff;
			ps[10] = (uint8_t)((20 + ulen) >> 8), ps[11] = (uint8_t)(20 + ulen);
			ps[14] = 0x40, ps[16] = 0xff, ps[17] = IPPROTO_UDP;
			ps[18] = ps[19] = 0xff;
			memcpy(ps + 20, &s.sin_addr, 4);
			memcpy(ps + 24, &d.sin_addr, 4);
			ps[28] = 0xc0, ps[29] = 0x00, ps[30] = 0x12, ps[31] = 0xb7;
			ps[32] = (uint8_t)(ulen >> 8), ps[33] = (uint8_t)ulen;
			ps[34] = ps[35] = 0xff;
			memcpy(ps + 36, bth, 12);
			ps[36 + 4] = 0xff;
			want = crc32(0L, ps, sizeof(ps));
			want = crc32(want, bth + 12, len - 12);
			CHECK(ipd_icrc_compute(&f, bth, len, &got) == 0 &&
			      got == (uint32_t)want,
			      "%s vs zlib: len %u off %u: %08x != %08lx",
			      ipd_icrc_impl(), len, off, got, want);
		}
	}
}

/* ipd_icrc_id_delta and ipd_icrc_verify_ids against ICRCs computed for
 * each ID from scratch, over several lengths (more than the cache holds,
 * so entries are evicted and rebuilt). */
static void check_id_deltas(void)
{
	static uint8_t pkt[4200 + 4];
	static struct ipd_icrc_ids ids;
	struct sockaddr_in s = {.sin_family = AF_INET}, d = s;
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6}, d6 = s6;
	struct ipd_icrc_flow f = {.src = (struct sockaddr *)&s,
				  .dst = (struct sockaddr *)&d,
				  .sport = 0xc123,
				  .dport = 4791,
				  .ip_df = true};
	const uint32_t lens[] = {12, 16, 44, 300, 1052, 1064, 2076, 4124, 4140};
	const uint16_t idv[] = {1, 2, 3, 7, 63, 64, 100, 127};
	uint32_t icrc0, icrc, len;
	size_t li, k, i;
	int got, round;

	for (i = 0; i < sizeof(pkt); i++)
		pkt[i] = (uint8_t)(i * 37 + 11);
	s.sin_addr.s_addr = htonl(0x0a4e0001);
	d.sin_addr.s_addr = htonl(0x0a4e0002);
	for (round = 0; round < 2; round++) { /* 2nd: from the cache */
		for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			len = lens[li];
			f.ip_id = 0;
			ipd_icrc_compute(&f, pkt, len, &icrc0);
			for (k = 0; k < sizeof(idv) / sizeof(idv[0]); k++) {
				f.ip_id = idv[k];
				ipd_icrc_compute(&f, pkt, len, &icrc);
				CHECK((icrc0 ^
				       ipd_icrc_id_delta(&ids, len, idv[k])) ==
					      icrc,
				      "len %u id %u: delta", len, idv[k]);
				/* a receiver that assumes ID 0 finds the ID */
				ipd_icrc_store(pkt + len, icrc);
				f.ip_id = 0;
				got = ipd_icrc_verify_ids(&f, pkt, len + 4,
							  &ids);
				CHECK(got == idv[k], "len %u id %u: found %d",
				      len, idv[k], got);
			}
			/* ID 0 is the fast path; an ID out of range, a wrong
			 * packet, IPv6 and a wrong first guess are refused */
			ipd_icrc_store(pkt + len, icrc0);
			CHECK(ipd_icrc_verify_ids(&f, pkt, len + 4, &ids) == 0,
			      "len %u: id 0", len);
			f.ip_id = 128;
			ipd_icrc_compute(&f, pkt, len, &icrc);
			ipd_icrc_store(pkt + len, icrc);
			f.ip_id = 0;
			CHECK(ipd_icrc_verify_ids(&f, pkt, len + 4, &ids) == -1,
			      "len %u: id 128 accepted", len);
			CHECK(ipd_icrc_id_delta(&ids, len, 128) == 0,
			      "len %u: delta of id 128", len);
			f.ip_id = 5;
			ipd_icrc_compute(&f, pkt, len, &icrc);
			ipd_icrc_store(pkt + len, icrc);
			f.ip_id = 0;
			pkt[len - 1] ^= 0x10;
			CHECK(ipd_icrc_verify_ids(&f, pkt, len + 4, &ids) == -1,
			      "len %u: corrupted packet accepted", len);
			pkt[len - 1] ^= 0x10;
			f.ip_id = 4;
			CHECK(ipd_icrc_verify_ids(&f, pkt, len + 4, &ids) == -1,
			      "len %u: guess 4 took id 5", len);
			f.ip_id = 0;
		}
	}
	/* a length sharing a cache slot with another evicts it */
	CHECK(ids.builds > 0 &&
		      ids.builds <= 2 * sizeof(lens) / sizeof(lens[0]),
	      "cache builds %llu", (unsigned long long)ids.builds);

	/* IPv6: no ID, nothing but an exact match */
	s6.sin6_addr.s6_addr[0] = d6.sin6_addr.s6_addr[0] = 0xfd;
	d6.sin6_addr.s6_addr[15] = 2;
	f.src = (struct sockaddr *)&s6;
	f.dst = (struct sockaddr *)&d6;
	ipd_icrc_compute(&f, pkt, 1052, &icrc);
	ipd_icrc_store(pkt + 1052, icrc);
	CHECK(ipd_icrc_verify_ids(&f, pkt, 1056, &ids) == 0, "ipv6 exact");
	ipd_icrc_store(pkt + 1052, icrc ^ ipd_icrc_id_delta(&ids, 1052, 1));
	CHECK(ipd_icrc_verify_ids(&f, pkt, 1056, &ids) == -1, "ipv6 delta");
}

int main(void)
{
	size_t i;

	printf("icrc implementation: %s\n", ipd_icrc_impl());
	check_impl_vs_zlib();
	check_id_deltas();

	for (i = 0; i < sizeof(icrc_vectors) / sizeof(icrc_vectors[0]); i++)
		check_vector(&icrc_vectors[i]);
	check_v4_mapped();
	check_rejects();
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("icrc: all checks passed\n");
	return 0;
}
