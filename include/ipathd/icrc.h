/* SPDX-License-Identifier: MIT */
/*
 * The RoCEv2 invariant CRC (IBA annex A17.3.3 "ICRC" with the IB 7.8.1
 * variant-field rules): CRC-32 over a masked pseudo header (8 bytes of
 * 0xff standing in for the LRH, the IP and UDP headers with their
 * variant fields masked), the BTH with its variant byte masked, and the
 * rest of the packet up to and including the pad.  Stored little-endian
 * right after the pad.  Only icrc.c knows the masking rules.
 */
#ifndef IPATHD_ICRC_H
#define IPATHD_ICRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define IPD_ICRC_BYTES 4u
#define IPD_BTH_BYTES 12u
#define IPD_IPV4_HDR_BYTES 20u
#define IPD_IPV6_HDR_BYTES 40u
#define IPD_UDP_HDR_BYTES 8u
#define IPD_ROCE_UDP_PORT 4791u

/*
 * The IP and UDP header fields of one packet as they are (or will be) on
 * the wire.  Only the fields the ICRC covers are here: TOS/traffic class,
 * TTL/hop limit, flow label and both checksums are masked (annex A17.3.3).
 * src and dst are AF_INET, AF_INET6 or IPv4-mapped AF_INET6 (treated as
 * IPv4); their ports are ignored.
 */
struct ipd_icrc_flow {
	const struct sockaddr *src;
	const struct sockaddr *dst;
	uint16_t sport;     /* UDP source port, host order */
	uint16_t dport;     /* UDP destination port, host order (4791) */
	uint16_t ip_id;     /* IPv4 identification (ipathd sends 0) */
	bool ip_df;         /* IPv4 "don't fragment" (ipathd sets it) */
};

/* ICRC of the packet whose BTH is at bth, len bytes from the BTH to the
 * end of the pad (no ICRC), sent with the headers of flow, into *icrc.
 * 0, or -EAFNOSUPPORT for unusable or mixed address families, -EINVAL
 * for a packet shorter than a BTH. */
int ipd_icrc_compute(const struct ipd_icrc_flow *flow, const uint8_t *bth,
		     uint32_t len, uint32_t *icrc);
/* Compute and append the ICRC at bth + len (4 bytes of room needed). */
int ipd_icrc_append(const struct ipd_icrc_flow *flow, uint8_t *bth,
		    uint32_t len);
/* Check a received packet: len counts the ICRC.  True when it matches. */
bool ipd_icrc_verify(const struct ipd_icrc_flow *flow, const uint8_t *bth,
		     uint32_t len);

/*
 * The same over a packet exactly as captured from the wire (raw or
 * packet sockets): ip points at an IPv4 header (any IHL) or an IPv6
 * header directly followed by UDP, len is the IP datagram length
 * including the ICRC.  -EINVAL when it is not a RoCEv2-shaped datagram,
 * 0 when the ICRC is wrong, 1 when it is right.
 */
int ipd_icrc_verify_ip(const uint8_t *ip, size_t len);

/*
 * IPv4 identification of UDP GSO segments (link_udp.c): the kernel writes
 * IDs 0, 1, 2.. into the segments of a datagram sent with ID 0.  The
 * ICRCs for two IDs differ by a delta that depends only on the packet's
 * length (icrc.c explains why); struct ipd_icrc_ids caches those deltas
 * for IPD_ICRC_IDS_LENGTHS lengths (direct-mapped) and IDs below
 * IPD_ICRC_IDS (the kernel's UDP_MAX_SEGMENTS, 128 since Linux 6.10).
 * Zero-initialise it; it belongs to one thread.
 */
#define IPD_ICRC_ID_BITS     7u
#define IPD_ICRC_IDS	     (1u << IPD_ICRC_ID_BITS)
#define IPD_ICRC_IDS_LENGTHS 64u
struct ipd_icrc_ids_ent {
	uint32_t len;			/* packet length, 0 = empty */
	uint32_t bit[IPD_ICRC_ID_BITS]; /* delta of ID 1 << i */
};
struct ipd_icrc_ids {
	struct ipd_icrc_ids_ent ent[IPD_ICRC_IDS_LENGTHS];
	uint64_t builds; /* entries (re)computed, for tests */
};

/* ICRC(ID id) ^ ICRC(ID 0) of an IPv4 packet of len bytes (no ICRC);
 * id < IPD_ICRC_IDS, else 0. */
uint32_t ipd_icrc_id_delta(struct ipd_icrc_ids *ids, uint32_t len, uint16_t id);
/* Check a received packet (len counts the ICRC) whose IPv4 ID is not
 * known (a UDP socket does not see it): flow->ip_id is the first guess;
 * with guess 0, any ID below IPD_ICRC_IDS is accepted, found from the
 * difference of the ICRCs with one CRC pass.  The ID that matches, or -1
 * (IPv6: only a match counts). */
int ipd_icrc_verify_ids(const struct ipd_icrc_flow *flow, const uint8_t *bth,
			uint32_t len, struct ipd_icrc_ids *ids);

/* Which CRC-32 implementation this build uses (for logs and tests). */
const char *ipd_icrc_impl(void);

/* Little-endian store/load of the ICRC (IBA: it goes out LSB first). */
void ipd_icrc_store(uint8_t *p, uint32_t icrc);
uint32_t ipd_icrc_load(const uint8_t *p);

#endif
