// SPDX-License-Identifier: MIT
/* Header encode/decode, PSN arithmetic across the 24-bit wrap, UDP sport. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ipathd/hdr.h"

static void test_bth(void)
{
	uint8_t b[64];
	/* IBA 9.2: the exact bytes of a BTH. */
	static const uint8_t want[12] = { 0x04, 0x40 | 0x20 | 0x80, 0xff, 0xff,
					  0x00, 0x12, 0x34, 0x56,
					  0x80, 0xab, 0xcd, 0xef };

	memset(b, 0xee, sizeof(b));
	ipd_bth_init(b, IPD_OP_RC | IPD_OP_SEND_ONLY, true, 2, 0xffff,
		     0x123456, true, 0xabcdef);
	CHECK(!memcmp(b, want, 12));
	CHECK(ipd_bth_opcode(b) == 0x04);
	CHECK(ipd_bth_se(b));
	CHECK(ipd_bth_pad(b) == 2);
	CHECK(ipd_bth_tver(b) == 0);
	CHECK(ipd_bth_pkey(b) == 0xffff);
	CHECK(ipd_bth_qpn(b) == 0x123456);
	CHECK(ipd_bth_ackreq(b));
	CHECK(ipd_bth_psn(b) == 0xabcdef);
	ipd_bth_set_ackreq(b, false);
	CHECK(!ipd_bth_ackreq(b) && ipd_bth_psn(b) == 0xabcdef);
	/* QPN and PSN are 24 bits: higher bits never leak into neighbours. */
	ipd_bth_init(b, 0, false, 0, 0x7fff, 0xff000001, false, 0xff000002);
	CHECK(b[4] == 0 && ipd_bth_qpn(b) == 1 && ipd_bth_psn(b) == 2);
	CHECK(!ipd_bth_se(b) && ipd_bth_pad(b) == 0 && b[8] == 0);
}

static void test_ext_headers(void)
{
	uint8_t b[64];

	memset(b, 0, sizeof(b));
	b[0] = IPD_OP_UD | IPD_OP_SEND_ONLY_IMM;
	ipd_deth_set(b, 0x80010002, 0x00abcdef);
	ipd_immdt_set_raw(b, 0x11223344);
	CHECK(ipd_deth_qkey(b) == 0x80010002);
	CHECK(ipd_deth_sqp(b) == 0xabcdef);
	CHECK(b[12] == 0x80 && b[16] == 0 && b[17] == 0xab);
	CHECK(ipd_immdt_raw(b) == 0x11223344);
	CHECK(!memcmp(b + 20, &(uint32_t){ 0x11223344 }, 4));

	memset(b, 0, sizeof(b));
	b[0] = IPD_OP_RC | IPD_OP_WRITE_ONLY_IMM;
	ipd_reth_set(b, 0x0102030405060708ull, 0xa1b2c3d4, 0x10000);
	CHECK(ipd_reth_va(b) == 0x0102030405060708ull);
	CHECK(ipd_reth_rkey(b) == 0xa1b2c3d4);
	CHECK(ipd_reth_len(b) == 0x10000);
	CHECK(b[12] == 0x01 && b[19] == 0x08 && b[20] == 0xa1);
	CHECK(ipd_hdr_at(b, IPD_HDR_IMMDT) == b + 28);

	memset(b, 0, sizeof(b));
	b[0] = IPD_OP_RC | IPD_OP_COMPARE_SWAP;
	ipd_atmeth_set(b, 0x1000, 0x55, 0xdeadbeefcafef00dull, 42);
	CHECK(ipd_atmeth_va(b) == 0x1000 && ipd_atmeth_rkey(b) == 0x55);
	CHECK(ipd_atmeth_swap_add(b) == 0xdeadbeefcafef00dull);
	CHECK(ipd_atmeth_comp(b) == 42);
	CHECK(b[24] == 0xde && b[39] == 42);

	memset(b, 0, sizeof(b));
	b[0] = IPD_OP_RC | IPD_OP_ATOMIC_ACK;
	ipd_aeth_set(b, IPD_AETH_ACK_NO_CREDIT, 0x123456);
	ipd_atmack_set(b, 0x8877665544332211ull);
	CHECK(ipd_aeth_syn(b) == 0x1f && ipd_aeth_msn(b) == 0x123456);
	CHECK(ipd_atmack_orig(b) == 0x8877665544332211ull);
	CHECK(b[12] == 0x1f && b[16] == 0x88);

	memset(b, 0, sizeof(b));
	b[0] = IPD_OP_RC | IPD_OP_SEND_LAST_INV;
	ipd_ieth_set(b, 0xcafe0001);
	CHECK(ipd_ieth_rkey(b) == 0xcafe0001 && b[12] == 0xca);
}

static void test_psn(void)
{
	CHECK(ipd_psn_cmp(5, 5) == 0);
	CHECK(ipd_psn_cmp(6, 5) > 0);
	CHECK(ipd_psn_cmp(5, 6) < 0);
	/* across the wrap 0xffffff -> 0 */
	CHECK(ipd_psn_cmp(0, 0xffffff) > 0);
	CHECK(ipd_psn_cmp(0xffffff, 0) < 0);
	CHECK(ipd_psn_cmp(3, 0xfffffd) > 0);
	CHECK(ipd_psn_cmp(0x7fffff, 0) > 0);  /* just under half the space */
	CHECK(ipd_psn_cmp(0x800001, 0) < 0);  /* more than half: behind */
	/* bits above 24 are ignored */
	CHECK(ipd_psn_cmp(0x1000005, 5) == 0);
	CHECK(ipd_psn_add(0xffffff, 1) == 0);
	CHECK(ipd_psn_add(0xfffffe, 5) == 3);
	CHECK(ipd_psn_add(0xffffff, IPD_PSN_MASK) == 0xfffffe);
	CHECK(ipd_psn_diff(2, 0xfffffe) == 4);
	CHECK(ipd_psn_diff(7, 7) == 0);
}

/* rxe: 0xC000 | ((fl & 0x3FFF) ^ ((fl & 0xFC000) >> 14)). */
static uint16_t ref_sport(uint32_t fl)
{
	return (uint16_t)(0xC000 | ((fl & 0x3FFF) ^ ((fl & 0xFC000) >> 14)));
}

static void test_sport(void)
{
	uint32_t fl, q;

	CHECK(ipd_udp_sport(0xfffff, 1, 2) == 0xffc0);
	CHECK(ipd_udp_sport(0x4001, 1, 2) == 0xc000);
	for (fl = 1; fl < 0x100000; fl += 0x1357)
		CHECK(ipd_udp_sport(fl, 9, 9) == ref_sport(fl), "fl %x", fl);
	/* flow label 0: lqpn * rqpn folded to 20 bits */
	CHECK(ipd_flow_label_from_qpns(0x11, 0x12) == 0x132);
	CHECK(ipd_udp_sport(0, 0x11, 0x12) == 0xc132);
	CHECK(ipd_flow_label_from_qpns(0x100000, 1) == 0x1);
	for (q = 1; q < 5000; q += 37) {
		uint16_t sp = ipd_udp_sport(0, q, q + 1);

		CHECK(sp >= 0xc000, "q %u", q);
		CHECK(ipd_flow_label_from_qpns(q, q + 1) < 0x100000);
	}
	/* only the 20-bit label counts */
	CHECK(ipd_udp_sport(0xfff00001, 3, 4) == ipd_udp_sport(1, 3, 4));
}

int main(void)
{
	test_bth();
	test_ext_headers();
	test_psn();
	test_sport();
	return check_done("engine_hdr");
}
