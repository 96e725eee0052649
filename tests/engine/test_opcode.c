// SPDX-License-Identifier: MIT
/* The opcode tables: offsets agree with masks, masks agree with IBA. */
#include <infiniband/verbs.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "ipathd/opcode.h"

static const unsigned int hdr_len[IPD_NUM_HDR_TYPES] = {
	[IPD_HDR_BTH] = IPD_BTH_BYTES,     [IPD_HDR_XRCETH] = IPD_XRCETH_BYTES,
	[IPD_HDR_DETH] = IPD_DETH_BYTES,
	[IPD_HDR_RETH] = IPD_RETH_BYTES,   [IPD_HDR_AETH] = IPD_AETH_BYTES,
	[IPD_HDR_ATMETH] = IPD_ATMETH_BYTES,
	[IPD_HDR_ATMACK] = IPD_ATMACK_BYTES,
	[IPD_HDR_IMMDT] = IPD_IMMDT_BYTES, [IPD_HDR_IETH] = IPD_IETH_BYTES,
};

static bool has(const struct ipd_opcode_info *o, enum ipd_hdr_type h)
{
	return o->mask & (1u << h);
}

/* Headers tile the space from the BTH to the payload without gaps. */
static void check_offsets(int op, const struct ipd_opcode_info *o)
{
	unsigned int end = IPD_BTH_BYTES;
	int h;

	CHECK(o->offset[IPD_HDR_BTH] == 0, "%s", o->name);
	for (h = IPD_HDR_BTH + 1; h < IPD_HDR_PAYLOAD; h++) {
		if (!has(o, h)) {
			CHECK(o->offset[h] == 0, "%s hdr %d", o->name, h);
			continue;
		}
		CHECK(o->offset[h] == end, "%s hdr %d at %u, expected %u",
		      o->name, h, o->offset[h], end);
		end += hdr_len[h];
	}
	CHECK(o->length == end, "%s length %u != %u", o->name, o->length, end);
	CHECK(o->offset[IPD_HDR_PAYLOAD] == o->length, "%s", o->name);
	CHECK(o->length <= 64, "%s", o->name);
	(void)op;
}

static bool name_has(const struct ipd_opcode_info *o, const char *s)
{
	return strstr(o->name, s) != NULL;
}

/* IBA 9.2.1 table 35 / 9.3: which opcodes carry which headers. */
static void check_masks(int op, const struct ipd_opcode_info *o)
{
	uint32_t m = o->mask;
	uint32_t qpt = m & IPD_QPT_MASK;
	bool read_req = name_has(o, "READ_REQUEST");
	bool read_resp = name_has(o, "READ_RESPONSE");
	bool atomic_req = name_has(o, "COMPARE_SWAP") ||
			  name_has(o, "FETCH_ADD");

	CHECK(!!(m & IPD_REQ_MASK) != !!(m & IPD_ACK_MASK), "%s", o->name);
	CHECK(qpt == IPD_RC_MASK || qpt == IPD_UC_MASK || qpt == IPD_UD_MASK ||
	      qpt == IPD_XRC_MASK, "%s", o->name);
	CHECK((op >> 5) == (qpt == IPD_RC_MASK ? 0 : qpt == IPD_UC_MASK ? 1 :
			    qpt == IPD_UD_MASK ? 3 : 5), "%s", o->name);
	CHECK(has(o, IPD_HDR_DETH) == (qpt == IPD_UD_MASK), "%s", o->name);
	/* IBA 9.3.9: XRCETH on every XRC request, on nothing else. */
	CHECK(has(o, IPD_HDR_XRCETH) ==
		      (qpt == IPD_XRC_MASK && (m & IPD_REQ_MASK)), "%s", o->name);
	CHECK(has(o, IPD_HDR_IMMDT) == name_has(o, "IMMEDIATE"), "%s", o->name);
	CHECK(has(o, IPD_HDR_IETH) == name_has(o, "INVALIDATE"), "%s", o->name);
	CHECK(has(o, IPD_HDR_RETH) ==
		      (read_req || ((m & IPD_WRITE_MASK) &&
				    (m & IPD_FIRST_MASK))), "%s", o->name);
	CHECK(has(o, IPD_HDR_ATMETH) == atomic_req, "%s", o->name);
	CHECK(has(o, IPD_HDR_ATMACK) == name_has(o, "ATOMIC_ACK"), "%s",
	      o->name);
	CHECK(has(o, IPD_HDR_AETH) ==
		      ((m & IPD_ACK_MASK) && !(m & IPD_MIDDLE_MASK)), "%s",
	      o->name);
	CHECK(has(o, IPD_HDR_PAYLOAD) ==
		      !!(m & (IPD_SEND_MASK | IPD_WRITE_MASK) || read_resp),
	      "%s", o->name);
	/* position in a message */
	CHECK(m & (IPD_FIRST_MASK | IPD_MIDDLE_MASK | IPD_LAST_MASK), "%s",
	      o->name);
	if (m & IPD_MIDDLE_MASK)
		CHECK(!(m & IPD_ONLY_MASK), "%s", o->name);
	if (name_has(o, "ONLY"))
		CHECK((m & IPD_ONLY_MASK) == IPD_ONLY_MASK, "%s", o->name);
	CHECK(!!(m & IPD_MIDDLE_MASK) == name_has(o, "MIDDLE"), "%s", o->name);
	CHECK(!!(m & IPD_FIRST_MASK) == (name_has(o, "FIRST") ||
		name_has(o, "ONLY") || read_req || atomic_req ||
		name_has(o, "ACKNOWLEDGE")), "%s", o->name);
	/* receive WQEs: consumed by SEND FIRST/ONLY and WRITE with imm */
	if (m & IPD_RWR_MASK)
		CHECK((m & IPD_SEND_MASK && m & IPD_FIRST_MASK) ||
			      (m & IPD_WRITE_MASK && has(o, IPD_HDR_IMMDT)),
		      "%s", o->name);
	if (m & IPD_COMP_MASK)
		CHECK(m & IPD_LAST_MASK, "%s", o->name);
	if (m & IPD_SEND_MASK && m & IPD_LAST_MASK)
		CHECK(m & IPD_COMP_MASK, "%s", o->name);
}

static void check_known_lengths(void)
{
	static const struct {
		int op;
		unsigned int len;
	} known[] = {
		{ IPD_OP_RC | IPD_OP_SEND_ONLY, 12 },
		{ IPD_OP_RC | IPD_OP_WRITE_ONLY_IMM, 32 },
		{ IPD_OP_UD | IPD_OP_SEND_ONLY_IMM, 24 },
		{ IPD_OP_RC | IPD_OP_COMPARE_SWAP, 40 },
		{ IPD_OP_RC | IPD_OP_ATOMIC_ACK, 24 },
		{ IPD_OP_RC | IPD_OP_READ_RESP_MIDDLE, 12 },
		{ IPD_OP_RC | IPD_OP_ACKNOWLEDGE, 16 },
		{ IPD_OP_RC | IPD_OP_READ_REQUEST, 28 },
		{ IPD_OP_RC | IPD_OP_SEND_ONLY_INV, 16 },
		{ IPD_OP_UC | IPD_OP_WRITE_FIRST, 28 },
		{ IPD_OP_XRC | IPD_OP_SEND_ONLY, 16 },
		{ IPD_OP_XRC | IPD_OP_WRITE_ONLY_IMM, 36 },
		{ IPD_OP_XRC | IPD_OP_ACKNOWLEDGE, 16 },
		{ IPD_OP_XRC | IPD_OP_READ_REQUEST, 32 },
		{ IPD_OP_XRC | IPD_OP_READ_RESP_FIRST, 16 },
		{ IPD_OP_XRC | IPD_OP_READ_RESP_MIDDLE, 12 },
		{ IPD_OP_XRC | IPD_OP_FETCH_ADD, 44 },
		{ IPD_OP_XRC | IPD_OP_ATOMIC_ACK, 24 },
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const struct ipd_opcode_info *o = &ipd_opcode_info[known[i].op];

		CHECK(o->name && o->length == known[i].len, "op 0x%02x",
		      known[i].op);
	}
	/* RD is not implemented; the reserved RC code 0x15 neither. */
	CHECK(!ipd_opcode_info[0x40].name);
	CHECK(!ipd_opcode_info[0x15].name);
	CHECK(!ipd_opcode_info[0x2c].name);
}

static void check_wr_op(unsigned int wr, int qpt)
{
	const struct ipd_wr_opcode_info *w = ipd_wr_opcode_get(wr, qpt);
	uint8_t base = ipd_qpt_opcode_base(qpt);
	const uint8_t ops[4] = { w->op_first, w->op_middle, w->op_last,
				 w->op_only };
	const uint32_t pos[4] = { IPD_FIRST_MASK, IPD_MIDDLE_MASK,
				  IPD_LAST_MASK, IPD_ONLY_MASK };
	int i;

	for (i = 0; i < 4; i++) {
		const struct ipd_opcode_info *o = &ipd_opcode_info[base | ops[i]];
		bool single = w->mask & IPD_WR_READ_OR_ATOMIC;

		/* UD sends are single packets: only "only" must exist. */
		if (qpt == IBV_QPT_UD && i != 3)
			continue;
		CHECK(o->name, "%s qpt %d pos %d", w->name, qpt, i);
		if (!o->name)
			continue;
		CHECK(o->mask & IPD_REQ_MASK, "%s", o->name);
		CHECK(o->mask & ipd_qpt_op_mask(qpt), "%s", o->name);
		if (!single)
			CHECK((o->mask & IPD_ONLY_MASK) == pos[i] ||
				      (pos[i] == IPD_MIDDLE_MASK &&
				       o->mask & IPD_MIDDLE_MASK),
			      "%s pos %d", o->name, i);
		if (w->mask & IPD_WR_SEND)
			CHECK(o->mask & IPD_SEND_MASK, "%s", o->name);
		if (w->mask & IPD_WR_WRITE)
			CHECK(o->mask & IPD_WRITE_MASK, "%s", o->name);
		if (w->mask & IPD_WR_READ)
			CHECK(o->mask & IPD_READ_MASK, "%s", o->name);
		if (w->mask & IPD_WR_ATOMIC)
			CHECK(o->mask & IPD_ATOMIC_MASK, "%s", o->name);
		if (i >= 2 && w->mask & IPD_WR_IMM)
			CHECK(o->mask & IPD_IMMDT_MASK, "%s", o->name);
		if (i >= 2 && w->mask & IPD_WR_INV)
			CHECK(o->mask & IPD_IETH_MASK, "%s", o->name);
	}
}

static void check_wr_table(void)
{
	static const int qpts[] = { IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD,
				    IBV_QPT_XRC_SEND };
	unsigned int wr;
	size_t q;

	for (wr = 0; wr < IPD_NUM_WR_OPCODES; wr++)
		for (q = 0; q < sizeof(qpts) / sizeof(qpts[0]); q++)
			if (ipd_wr_opcode_get(wr, qpts[q]))
				check_wr_op(wr, qpts[q]);
	/* IBA 10.7.3.1 / verbs: what each transport accepts. */
	CHECK(ipd_wr_opcode_get(IBV_WR_SEND, IBV_QPT_UD));
	CHECK(ipd_wr_opcode_get(IBV_WR_SEND_WITH_IMM, IBV_QPT_UD));
	CHECK(!ipd_wr_opcode_get(IBV_WR_RDMA_WRITE, IBV_QPT_UD));
	CHECK(ipd_wr_opcode_get(IBV_WR_RDMA_WRITE, IBV_QPT_UC));
	CHECK(!ipd_wr_opcode_get(IBV_WR_RDMA_READ, IBV_QPT_UC));
	CHECK(!ipd_wr_opcode_get(IBV_WR_ATOMIC_FETCH_AND_ADD, IBV_QPT_UC));
	CHECK(ipd_wr_opcode_get(IBV_WR_ATOMIC_CMP_AND_SWP, IBV_QPT_RC));
	CHECK(!ipd_wr_opcode_get(IBV_WR_SEND_WITH_INV, IBV_QPT_UD));
	CHECK(!ipd_wr_opcode_get(IBV_WR_LOCAL_INV, IBV_QPT_RC));
	/* XRC carries every RC operation; a TGT QP sends nothing. */
	CHECK(ipd_wr_opcode_get(IBV_WR_SEND_WITH_INV, IBV_QPT_XRC_SEND));
	CHECK(ipd_wr_opcode_get(IBV_WR_RDMA_WRITE_WITH_IMM, IBV_QPT_XRC_SEND));
	CHECK(ipd_wr_opcode_get(IBV_WR_RDMA_READ, IBV_QPT_XRC_SEND));
	CHECK(ipd_wr_opcode_get(IBV_WR_ATOMIC_FETCH_AND_ADD, IBV_QPT_XRC_SEND));
	CHECK(!ipd_wr_opcode_get(IBV_WR_SEND, IBV_QPT_XRC_RECV));
	CHECK(ipd_qpt_reliable(IBV_QPT_XRC_SEND) &&
	      ipd_qpt_reliable(IBV_QPT_XRC_RECV) &&
	      !ipd_qpt_reliable(IBV_QPT_UC));
	CHECK(!ipd_wr_opcode_get(200, IBV_QPT_RC));
	CHECK(ipd_wr_opcode_get(IBV_WR_RDMA_READ, IBV_QPT_RC)->wc_opcode ==
	      IBV_WC_RDMA_READ);
	CHECK(ipd_wr_opcode_get(IBV_WR_RDMA_WRITE_WITH_IMM, IBV_QPT_RC)
		      ->wc_opcode == IBV_WC_RDMA_WRITE);
}

int main(void)
{
	int op, n = 0;

	for (op = 0; op < 256; op++) {
		const struct ipd_opcode_info *o = &ipd_opcode_info[op];

		if (!o->name) {
			CHECK(o->mask == 0 && o->length == 0, "op 0x%02x", op);
			continue;
		}
		n++;
		check_offsets(op, o);
		check_masks(op, o);
	}
	/* RC 23 + UC 12 + UD 2 + XRC 23 (as RC but RD's reserved 0x15) */
	CHECK(n == 60, "%d opcodes", n);
	check_known_lengths();
	check_wr_table();
	return check_done("engine_opcode");
}
