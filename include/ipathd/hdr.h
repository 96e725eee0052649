/* SPDX-License-Identifier: MIT */
/*
 * IBA transport header accessors (IBA 9.2 - 9.5), big-endian on the wire.
 * Every accessor takes the BTH pointer; extension headers are found through
 * the opcode table, so a header is only touched where its opcode has it.
 */
#ifndef IPATHD_HDR_H
#define IPATHD_HDR_H

#include <stdbool.h>
#include <stdint.h>

#include "opcode.h"

/* ---- byte order --------------------------------------------------- */

static inline uint16_t ipd_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t ipd_get24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static inline uint32_t ipd_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t ipd_get64(const uint8_t *p)
{
	return (uint64_t)ipd_get32(p) << 32 | ipd_get32(p + 4);
}

static inline void ipd_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void ipd_put24(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 16);
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)v;
}

static inline void ipd_put32(uint8_t *p, uint32_t v)
{
	ipd_put16(p, (uint16_t)(v >> 16));
	ipd_put16(p + 2, (uint16_t)v);
}

static inline void ipd_put64(uint8_t *p, uint64_t v)
{
	ipd_put32(p, (uint32_t)(v >> 32));
	ipd_put32(p + 4, (uint32_t)v);
}

/* ---- PSN arithmetic (24-bit sequence space, IBA 9.7.1) ------------- */

#define IPD_PSN_MASK 0xffffffu

static inline uint32_t ipd_psn_add(uint32_t psn, uint32_t n)
{
	return (psn + n) & IPD_PSN_MASK;
}

/* <0, 0, >0 as a is before, equal to, after b (modulo 2^24). */
static inline int32_t ipd_psn_cmp(uint32_t a, uint32_t b)
{
	return (int32_t)((a - b) << 8);
}

/* Distance from b forward to a, in PSNs (a assumed not before b). */
static inline uint32_t ipd_psn_diff(uint32_t a, uint32_t b)
{
	return (a - b) & IPD_PSN_MASK;
}

/* ---- UDP source port (flow entropy), as Linux rxe computes it ------ */

static inline uint32_t ipd_flow_label_from_qpns(uint32_t lqpn, uint32_t rqpn)
{
	uint64_t fl = (uint64_t)lqpn * rqpn;

	fl ^= fl >> 20;
	fl ^= fl >> 40;
	return (uint32_t)(fl & 0xfffff);
}

static inline uint16_t ipd_udp_sport(uint32_t flow_label, uint32_t lqpn,
				     uint32_t rqpn)
{
	uint32_t fl = flow_label & 0xfffff;

	if (!fl)
		fl = ipd_flow_label_from_qpns(lqpn, rqpn);
	return (uint16_t)(0xC000 | ((fl & 0x3FFF) ^ ((fl & 0xFC000) >> 14)));
}

/* ---- locating headers ---------------------------------------------- */

static inline const struct ipd_opcode_info *ipd_bth_info(const uint8_t *bth)
{
	return &ipd_opcode_info[bth[0]];
}

static inline uint8_t *ipd_hdr_at(uint8_t *bth, enum ipd_hdr_type h)
{
	return bth + ipd_opcode_info[bth[0]].offset[h];
}

static inline const uint8_t *ipd_chdr_at(const uint8_t *bth,
					 enum ipd_hdr_type h)
{
	return bth + ipd_opcode_info[bth[0]].offset[h];
}

/* ---- BTH (IBA 9.2) ------------------------------------------------- */

enum {
	IPD_BTH_SE = 0x80,
	IPD_BTH_MIG = 0x40,
	IPD_BTH_PAD_SHIFT = 4,
	IPD_BTH_PAD_MASK = 0x30,
	IPD_BTH_TVER_MASK = 0x0f,
	IPD_BTH_ACKREQ = 0x80,
	IPD_DEFAULT_PKEY = 0xffff,
};

static inline uint8_t ipd_bth_opcode(const uint8_t *bth) { return bth[0]; }
static inline bool ipd_bth_se(const uint8_t *bth) { return bth[1] & IPD_BTH_SE; }
static inline uint8_t ipd_bth_pad(const uint8_t *bth)
{
	return (bth[1] & IPD_BTH_PAD_MASK) >> IPD_BTH_PAD_SHIFT;
}
static inline uint8_t ipd_bth_tver(const uint8_t *bth)
{
	return bth[1] & IPD_BTH_TVER_MASK;
}
static inline uint16_t ipd_bth_pkey(const uint8_t *bth) { return ipd_get16(bth + 2); }
static inline uint32_t ipd_bth_qpn(const uint8_t *bth) { return ipd_get24(bth + 5); }
static inline bool ipd_bth_ackreq(const uint8_t *bth) { return bth[8] & IPD_BTH_ACKREQ; }
static inline uint32_t ipd_bth_psn(const uint8_t *bth) { return ipd_get24(bth + 9); }

static inline void ipd_bth_init(uint8_t *bth, uint8_t opcode, bool se,
				uint8_t pad, uint16_t pkey, uint32_t qpn,
				bool ackreq, uint32_t psn)
{
	bth[0] = opcode;
	/* MigReq set: no path migration (as rxe); TVer 0. */
	bth[1] = (uint8_t)((se ? IPD_BTH_SE : 0) | IPD_BTH_MIG |
			   ((pad & 3) << IPD_BTH_PAD_SHIFT));
	ipd_put16(bth + 2, pkey);
	bth[4] = 0; /* FECN, BECN, resv6 */
	ipd_put24(bth + 5, qpn & IPD_PSN_MASK);
	bth[8] = ackreq ? IPD_BTH_ACKREQ : 0;
	ipd_put24(bth + 9, psn & IPD_PSN_MASK);
}

static inline void ipd_bth_set_ackreq(uint8_t *bth, bool ackreq)
{
	bth[8] = ackreq ? IPD_BTH_ACKREQ : 0;
}

/* BTH resv7 (byte 8 below AckReq): reserved by IBA, sent as 0 and ignored.
 * Between ipathd peers that agreed on selective recovery (daemon/ooo.c) a
 * PSN sequence NAK carries there how many PSNs from the NAKed one are
 * missing before the first packet the responder kept (0: not known). */
#define IPD_BTH_RESV7_MASK 0x7fu
static inline uint8_t ipd_bth_resv7(const uint8_t *bth)
{
	return bth[8] & IPD_BTH_RESV7_MASK;
}
static inline void ipd_bth_set_resv7(uint8_t *bth, uint32_t v)
{
	if (v > IPD_BTH_RESV7_MASK)
		v = IPD_BTH_RESV7_MASK;
	bth[8] = (uint8_t)((bth[8] & ~IPD_BTH_RESV7_MASK) | v);
}

/* ---- XRCETH (IBA 9.3.9): 8 reserved bits, the 24-bit XRC SRQ number -- */

static inline uint32_t ipd_xrceth_srqn(const uint8_t *bth)
{
	return ipd_get24(ipd_chdr_at(bth, IPD_HDR_XRCETH) + 1);
}
static inline void ipd_xrceth_set(uint8_t *bth, uint32_t srqn)
{
	uint8_t *p = ipd_hdr_at(bth, IPD_HDR_XRCETH);

	p[0] = 0;
	ipd_put24(p + 1, srqn);
}

/* ---- DETH (IBA 9.3.3): Q_Key, source QP ----------------------------- */

static inline uint32_t ipd_deth_qkey(const uint8_t *bth)
{
	return ipd_get32(ipd_chdr_at(bth, IPD_HDR_DETH));
}
static inline uint32_t ipd_deth_sqp(const uint8_t *bth)
{
	return ipd_get24(ipd_chdr_at(bth, IPD_HDR_DETH) + 5);
}
static inline void ipd_deth_set(uint8_t *bth, uint32_t qkey, uint32_t sqp)
{
	uint8_t *p = ipd_hdr_at(bth, IPD_HDR_DETH);

	ipd_put32(p, qkey);
	p[4] = 0;
	ipd_put24(p + 5, sqp);
}

/* ---- RETH (IBA 9.3.4): VA, R_Key, DMA length ------------------------ */

static inline uint64_t ipd_reth_va(const uint8_t *bth)
{
	return ipd_get64(ipd_chdr_at(bth, IPD_HDR_RETH));
}
static inline uint32_t ipd_reth_rkey(const uint8_t *bth)
{
	return ipd_get32(ipd_chdr_at(bth, IPD_HDR_RETH) + 8);
}
static inline uint32_t ipd_reth_len(const uint8_t *bth)
{
	return ipd_get32(ipd_chdr_at(bth, IPD_HDR_RETH) + 12);
}
static inline void ipd_reth_set(uint8_t *bth, uint64_t va, uint32_t rkey,
				uint32_t len)
{
	uint8_t *p = ipd_hdr_at(bth, IPD_HDR_RETH);

	ipd_put64(p, va);
	ipd_put32(p + 8, rkey);
	ipd_put32(p + 12, len);
}

/* ---- AETH (IBA 9.3.5): syndrome, MSN --------------------------------- */

enum ipd_aeth_syndrome {
	IPD_AETH_TYPE_MASK = 0xe0,
	IPD_AETH_ACK = 0x00,
	IPD_AETH_RNR_NAK = 0x20,
	IPD_AETH_NAK = 0x60,
	IPD_AETH_ACK_NO_CREDIT = 0x1f, /* rxe never advertises credits */
	IPD_AETH_NAK_PSN_SEQ = 0x60,
	IPD_AETH_NAK_INV_REQ = 0x61,
	IPD_AETH_NAK_REM_ACCESS = 0x62,
	IPD_AETH_NAK_REM_OP = 0x63,
	IPD_AETH_NAK_INV_RD_REQ = 0x64,
};

static inline uint8_t ipd_aeth_syn(const uint8_t *bth)
{
	return *ipd_chdr_at(bth, IPD_HDR_AETH);
}
static inline uint32_t ipd_aeth_msn(const uint8_t *bth)
{
	return ipd_get24(ipd_chdr_at(bth, IPD_HDR_AETH) + 1);
}
static inline void ipd_aeth_set(uint8_t *bth, uint8_t syn, uint32_t msn)
{
	uint8_t *p = ipd_hdr_at(bth, IPD_HDR_AETH);

	p[0] = syn;
	ipd_put24(p + 1, msn);
}

/* ---- AtomicETH (IBA 9.3.7): VA, R_Key, swap/add, compare ------------- */

static inline uint64_t ipd_atmeth_va(const uint8_t *bth)
{
	return ipd_get64(ipd_chdr_at(bth, IPD_HDR_ATMETH));
}
static inline uint32_t ipd_atmeth_rkey(const uint8_t *bth)
{
	return ipd_get32(ipd_chdr_at(bth, IPD_HDR_ATMETH) + 8);
}
static inline uint64_t ipd_atmeth_swap_add(const uint8_t *bth)
{
	return ipd_get64(ipd_chdr_at(bth, IPD_HDR_ATMETH) + 12);
}
static inline uint64_t ipd_atmeth_comp(const uint8_t *bth)
{
	return ipd_get64(ipd_chdr_at(bth, IPD_HDR_ATMETH) + 20);
}
static inline void ipd_atmeth_set(uint8_t *bth, uint64_t va, uint32_t rkey,
				  uint64_t swap_add, uint64_t comp)
{
	uint8_t *p = ipd_hdr_at(bth, IPD_HDR_ATMETH);

	ipd_put64(p, va);
	ipd_put32(p + 8, rkey);
	ipd_put64(p + 12, swap_add);
	ipd_put64(p + 20, comp);
}

/* ---- AtomicAckETH (IBA 9.5.3): original remote data ------------------ */

static inline uint64_t ipd_atmack_orig(const uint8_t *bth)
{
	return ipd_get64(ipd_chdr_at(bth, IPD_HDR_ATMACK));
}
static inline void ipd_atmack_set(uint8_t *bth, uint64_t orig)
{
	ipd_put64(ipd_hdr_at(bth, IPD_HDR_ATMACK), orig);
}

/* ---- ImmDt and IETH (IBA 9.3.6, 9.3.8): kept in network order -------- */

static inline uint32_t ipd_immdt_raw(const uint8_t *bth)
{
	uint32_t v;

	__builtin_memcpy(&v, ipd_chdr_at(bth, IPD_HDR_IMMDT), 4);
	return v;
}
static inline void ipd_immdt_set_raw(uint8_t *bth, uint32_t be)
{
	__builtin_memcpy(ipd_hdr_at(bth, IPD_HDR_IMMDT), &be, 4);
}
static inline uint32_t ipd_ieth_rkey(const uint8_t *bth)
{
	return ipd_get32(ipd_chdr_at(bth, IPD_HDR_IETH));
}
static inline void ipd_ieth_set(uint8_t *bth, uint32_t rkey)
{
	ipd_put32(ipd_hdr_at(bth, IPD_HDR_IETH), rkey);
}

#endif
