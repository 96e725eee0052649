// SPDX-License-Identifier: MIT
/*
 * The opcode tables.  Header offsets are derived from each opcode's mask in
 * the one order headers may appear (IBA 9.2: BTH, then XRCETH for XRC
 * requests or DETH for datagrams,
 * RETH or AtomicETH, then ImmDt or IETH; responses carry AETH and, for
 * atomics, AtomicAckETH), so an offset can never disagree with the mask.
 */
#include <infiniband/verbs.h>

#include "ipathd/opcode.h"

#define HLEN(m, bit, len) (((m) & (bit)) ? (len) : 0)
#define O_XRCETH(m) IPD_BTH_BYTES
#define O_DETH(m) (O_XRCETH(m) + HLEN(m, IPD_XRCETH_MASK, IPD_XRCETH_BYTES))
#define O_RETH(m) (O_DETH(m) + HLEN(m, IPD_DETH_MASK, IPD_DETH_BYTES))
#define O_AETH(m) (O_RETH(m) + HLEN(m, IPD_RETH_MASK, IPD_RETH_BYTES))
#define O_ATMETH(m) (O_AETH(m) + HLEN(m, IPD_AETH_MASK, IPD_AETH_BYTES))
#define O_ATMACK(m) (O_ATMETH(m) + HLEN(m, IPD_ATMETH_MASK, IPD_ATMETH_BYTES))
#define O_IMMDT(m) (O_ATMACK(m) + HLEN(m, IPD_ATMACK_MASK, IPD_ATMACK_BYTES))
#define O_IETH(m) (O_IMMDT(m) + HLEN(m, IPD_IMMDT_MASK, IPD_IMMDT_BYTES))
#define O_PAYLOAD(m) (O_IETH(m) + HLEN(m, IPD_IETH_MASK, IPD_IETH_BYTES))
#define AT(m, bit, off) (((m) & (bit)) ? (off) : 0)

#define OP(n, m)                                                         \
	{                                                                \
		.name = (n), .mask = (m), .length = O_PAYLOAD(m),        \
		.offset = {                                              \
			[IPD_HDR_BTH] = 0,                               \
			[IPD_HDR_XRCETH] =                               \
				AT(m, IPD_XRCETH_MASK, O_XRCETH(m)),     \
			[IPD_HDR_DETH] = AT(m, IPD_DETH_MASK, O_DETH(m)), \
			[IPD_HDR_RETH] = AT(m, IPD_RETH_MASK, O_RETH(m)), \
			[IPD_HDR_AETH] = AT(m, IPD_AETH_MASK, O_AETH(m)), \
			[IPD_HDR_ATMETH] =                               \
				AT(m, IPD_ATMETH_MASK, O_ATMETH(m)),     \
			[IPD_HDR_ATMACK] =                               \
				AT(m, IPD_ATMACK_MASK, O_ATMACK(m)),     \
			[IPD_HDR_IMMDT] =                                \
				AT(m, IPD_IMMDT_MASK, O_IMMDT(m)),       \
			[IPD_HDR_IETH] = AT(m, IPD_IETH_MASK, O_IETH(m)), \
			[IPD_HDR_PAYLOAD] = O_PAYLOAD(m),                \
		},                                                       \
	}

/* Request opcodes shared by RC and UC (IBA 9.2.1 table 35). */
#define M_SEND (IPD_REQ_MASK | IPD_SEND_MASK | IPD_PAYLOAD_MASK)
#define M_WRITE (IPD_REQ_MASK | IPD_WRITE_MASK | IPD_PAYLOAD_MASK)
#define M_SEND_FIRST (M_SEND | IPD_RWR_MASK | IPD_FIRST_MASK)
#define M_SEND_MIDDLE (M_SEND | IPD_MIDDLE_MASK)
#define M_SEND_LAST (M_SEND | IPD_COMP_MASK | IPD_LAST_MASK)
#define M_SEND_ONLY (M_SEND | IPD_RWR_MASK | IPD_COMP_MASK | IPD_ONLY_MASK)
#define M_WRITE_FIRST (M_WRITE | IPD_RETH_MASK | IPD_FIRST_MASK)
#define M_WRITE_MIDDLE (M_WRITE | IPD_MIDDLE_MASK)
#define M_WRITE_LAST (M_WRITE | IPD_LAST_MASK)
/* RDMA WRITE with immediate consumes a receive WQE (IBA 9.4.4). */
#define M_WRITE_LAST_IMM                                                 \
	(M_WRITE | IPD_IMMDT_MASK | IPD_RWR_MASK | IPD_COMP_MASK |       \
	 IPD_LAST_MASK)
#define M_WRITE_ONLY (M_WRITE | IPD_RETH_MASK | IPD_ONLY_MASK)
#define M_WRITE_ONLY_IMM (M_WRITE_ONLY | IPD_IMMDT_MASK | IPD_RWR_MASK |  \
			  IPD_COMP_MASK)
#define M_ACK IPD_ACK_MASK

#define SENDS_AND_WRITES(B, T, TM)                                        \
	[B | IPD_OP_SEND_FIRST] = OP(T "_SEND_FIRST", TM | M_SEND_FIRST),  \
	[B | IPD_OP_SEND_MIDDLE] = OP(T "_SEND_MIDDLE", TM | M_SEND_MIDDLE), \
	[B | IPD_OP_SEND_LAST] = OP(T "_SEND_LAST", TM | M_SEND_LAST),     \
	[B | IPD_OP_SEND_LAST_IMM] = OP(T "_SEND_LAST_WITH_IMMEDIATE",     \
		TM | M_SEND_LAST | IPD_IMMDT_MASK),                        \
	[B | IPD_OP_SEND_ONLY] = OP(T "_SEND_ONLY", TM | M_SEND_ONLY),     \
	[B | IPD_OP_SEND_ONLY_IMM] = OP(T "_SEND_ONLY_WITH_IMMEDIATE",     \
		TM | M_SEND_ONLY | IPD_IMMDT_MASK),                        \
	[B | IPD_OP_WRITE_FIRST] = OP(T "_RDMA_WRITE_FIRST",               \
		TM | M_WRITE_FIRST),                                       \
	[B | IPD_OP_WRITE_MIDDLE] = OP(T "_RDMA_WRITE_MIDDLE",             \
		TM | M_WRITE_MIDDLE),                                      \
	[B | IPD_OP_WRITE_LAST] = OP(T "_RDMA_WRITE_LAST",                 \
		TM | M_WRITE_LAST),                                        \
	[B | IPD_OP_WRITE_LAST_IMM] = OP(T "_RDMA_WRITE_LAST_WITH_IMMEDIATE", \
		TM | M_WRITE_LAST_IMM),                                    \
	[B | IPD_OP_WRITE_ONLY] = OP(T "_RDMA_WRITE_ONLY",                 \
		TM | M_WRITE_ONLY),                                        \
	[B | IPD_OP_WRITE_ONLY_IMM] = OP(T "_RDMA_WRITE_ONLY_WITH_IMMEDIATE", \
		TM | M_WRITE_ONLY_IMM)

/* READ, atomics and their responses (IBA 9.2.1 table 35); TQ marks the
 * requests (XRC: XRCETH), TM every packet of the transport.  Responses
 * never carry an XRCETH (IBA 9.3.9). */
#define READS_AND_ATOMICS(B, T, TM, TQ)                                   \
	[B | IPD_OP_READ_REQUEST] = OP(T "_RDMA_READ_REQUEST",             \
		TM | TQ | IPD_REQ_MASK | IPD_READ_MASK | IPD_RETH_MASK |   \
		IPD_ONLY_MASK),                                            \
	[B | IPD_OP_READ_RESP_FIRST] = OP(T "_RDMA_READ_RESPONSE_FIRST",   \
		TM | M_ACK | IPD_READ_MASK | IPD_AETH_MASK |               \
		IPD_PAYLOAD_MASK | IPD_FIRST_MASK),                        \
	/* IBA 9.5: middle read responses carry no AETH. */               \
	[B | IPD_OP_READ_RESP_MIDDLE] = OP(T "_RDMA_READ_RESPONSE_MIDDLE", \
		TM | M_ACK | IPD_READ_MASK | IPD_PAYLOAD_MASK |            \
		IPD_MIDDLE_MASK),                                          \
	[B | IPD_OP_READ_RESP_LAST] = OP(T "_RDMA_READ_RESPONSE_LAST",     \
		TM | M_ACK | IPD_READ_MASK | IPD_AETH_MASK |               \
		IPD_PAYLOAD_MASK | IPD_LAST_MASK),                         \
	[B | IPD_OP_READ_RESP_ONLY] = OP(T "_RDMA_READ_RESPONSE_ONLY",     \
		TM | M_ACK | IPD_READ_MASK | IPD_AETH_MASK |               \
		IPD_PAYLOAD_MASK | IPD_ONLY_MASK),                         \
	[B | IPD_OP_ATOMIC_ACK] = OP(T "_ATOMIC_ACKNOWLEDGE",              \
		TM | M_ACK | IPD_ATOMIC_MASK | IPD_AETH_MASK |             \
		IPD_ATMACK_MASK | IPD_ONLY_MASK),                          \
	[B | IPD_OP_COMPARE_SWAP] = OP(T "_COMPARE_SWAP",                  \
		TM | TQ | IPD_REQ_MASK | IPD_ATOMIC_MASK |                 \
		IPD_ATMETH_MASK | IPD_ONLY_MASK),                          \
	[B | IPD_OP_FETCH_ADD] = OP(T "_FETCH_ADD",                        \
		TM | TQ | IPD_REQ_MASK | IPD_ATOMIC_MASK |                 \
		IPD_ATMETH_MASK | IPD_ONLY_MASK)

const struct ipd_opcode_info ipd_opcode_info[256] = {
	SENDS_AND_WRITES(IPD_OP_RC, "RC", IPD_RC_MASK),
	READS_AND_ATOMICS(IPD_OP_RC, "RC", IPD_RC_MASK, 0),
	[IPD_OP_RC | IPD_OP_ACKNOWLEDGE] = OP("RC_ACKNOWLEDGE",
		IPD_RC_MASK | M_ACK | IPD_AETH_MASK | IPD_ONLY_MASK),
	[IPD_OP_RC | IPD_OP_SEND_LAST_INV] = OP("RC_SEND_LAST_WITH_INVALIDATE",
		IPD_RC_MASK | M_SEND_LAST | IPD_IETH_MASK),
	[IPD_OP_RC | IPD_OP_SEND_ONLY_INV] = OP("RC_SEND_ONLY_WITH_INVALIDATE",
		IPD_RC_MASK | M_SEND_ONLY | IPD_IETH_MASK),

	SENDS_AND_WRITES(IPD_OP_UC, "UC", IPD_UC_MASK),

	/* XRC (IBA 9.2.1 table 35, transport 101b; 9.3.9 XRCETH on every
	 * request). */
	SENDS_AND_WRITES(IPD_OP_XRC, "XRC", IPD_XRC_MASK | IPD_XRCETH_MASK),
	READS_AND_ATOMICS(IPD_OP_XRC, "XRC", IPD_XRC_MASK, IPD_XRCETH_MASK),
	[IPD_OP_XRC | IPD_OP_SEND_LAST_INV] = OP("XRC_SEND_LAST_WITH_INVALIDATE",
		IPD_XRC_MASK | IPD_XRCETH_MASK | M_SEND_LAST | IPD_IETH_MASK),
	[IPD_OP_XRC | IPD_OP_SEND_ONLY_INV] = OP("XRC_SEND_ONLY_WITH_INVALIDATE",
		IPD_XRC_MASK | IPD_XRCETH_MASK | M_SEND_ONLY | IPD_IETH_MASK),
	[IPD_OP_XRC | IPD_OP_ACKNOWLEDGE] = OP("XRC_ACKNOWLEDGE",
		IPD_XRC_MASK | M_ACK | IPD_AETH_MASK | IPD_ONLY_MASK),

	[IPD_OP_UD | IPD_OP_SEND_ONLY] = OP("UD_SEND_ONLY",
		IPD_UD_MASK | M_SEND_ONLY | IPD_DETH_MASK),
	[IPD_OP_UD | IPD_OP_SEND_ONLY_IMM] = OP("UD_SEND_ONLY_WITH_IMMEDIATE",
		IPD_UD_MASK | M_SEND_ONLY | IPD_DETH_MASK | IPD_IMMDT_MASK),
};

#define QP_ALL (IPD_WR_RC | IPD_WR_UC | IPD_WR_UD)
#define QP_RCUC (IPD_WR_RC | IPD_WR_UC)
#define QP_CONN (IPD_WR_RC | IPD_WR_UC | IPD_WR_XRC)

/* IBA 10.7.3 / verbs: which work requests each transport accepts. */
const struct ipd_wr_opcode_info ipd_wr_opcode_info[IPD_NUM_WR_OPCODES] = {
	[IBV_WR_RDMA_WRITE] = {
		"RDMA_WRITE", QP_CONN | IPD_WR_WRITE | IPD_WR_INLINE_OK,
		IBV_WC_RDMA_WRITE, IPD_OP_WRITE_FIRST, IPD_OP_WRITE_MIDDLE,
		IPD_OP_WRITE_LAST, IPD_OP_WRITE_ONLY },
	[IBV_WR_RDMA_WRITE_WITH_IMM] = {
		"RDMA_WRITE_WITH_IMM",
		QP_CONN | IPD_WR_WRITE | IPD_WR_IMM | IPD_WR_INLINE_OK,
		IBV_WC_RDMA_WRITE, IPD_OP_WRITE_FIRST, IPD_OP_WRITE_MIDDLE,
		IPD_OP_WRITE_LAST_IMM, IPD_OP_WRITE_ONLY_IMM },
	[IBV_WR_SEND] = {
		"SEND", QP_ALL | IPD_WR_XRC | IPD_WR_SEND | IPD_WR_INLINE_OK,
		IBV_WC_SEND, IPD_OP_SEND_FIRST, IPD_OP_SEND_MIDDLE,
		IPD_OP_SEND_LAST, IPD_OP_SEND_ONLY },
	[IBV_WR_SEND_WITH_IMM] = {
		"SEND_WITH_IMM",
		QP_ALL | IPD_WR_XRC | IPD_WR_SEND | IPD_WR_IMM |
			IPD_WR_INLINE_OK,
		IBV_WC_SEND, IPD_OP_SEND_FIRST, IPD_OP_SEND_MIDDLE,
		IPD_OP_SEND_LAST_IMM, IPD_OP_SEND_ONLY_IMM },
	[IBV_WR_RDMA_READ] = {
		"RDMA_READ", IPD_WR_RC | IPD_WR_XRC | IPD_WR_READ,
		IBV_WC_RDMA_READ, IPD_OP_READ_REQUEST, IPD_OP_READ_REQUEST,
		IPD_OP_READ_REQUEST, IPD_OP_READ_REQUEST },
	[IBV_WR_ATOMIC_CMP_AND_SWP] = {
		"ATOMIC_CMP_AND_SWP", IPD_WR_RC | IPD_WR_XRC | IPD_WR_ATOMIC,
		IBV_WC_COMP_SWAP, IPD_OP_COMPARE_SWAP, IPD_OP_COMPARE_SWAP,
		IPD_OP_COMPARE_SWAP, IPD_OP_COMPARE_SWAP },
	[IBV_WR_ATOMIC_FETCH_AND_ADD] = {
		"ATOMIC_FETCH_AND_ADD",
		IPD_WR_RC | IPD_WR_XRC | IPD_WR_ATOMIC,
		IBV_WC_FETCH_ADD, IPD_OP_FETCH_ADD, IPD_OP_FETCH_ADD,
		IPD_OP_FETCH_ADD, IPD_OP_FETCH_ADD },
	[IBV_WR_SEND_WITH_INV] = {
		"SEND_WITH_INV",
		IPD_WR_RC | IPD_WR_XRC | IPD_WR_SEND | IPD_WR_INV |
			IPD_WR_INLINE_OK,
		IBV_WC_SEND, IPD_OP_SEND_FIRST, IPD_OP_SEND_MIDDLE,
		IPD_OP_SEND_LAST_INV, IPD_OP_SEND_ONLY_INV },
	/* LOCAL_INV, BIND_MW, TSO, DRIVER1: not supported (name NULL). */
};

uint8_t ipd_qpt_opcode_base(int qp_type)
{
	switch (qp_type) {
	case IBV_QPT_RC:
		return IPD_OP_RC;
	case IBV_QPT_UC:
		return IPD_OP_UC;
	case IBV_QPT_UD:
		return IPD_OP_UD;
	case IBV_QPT_XRC_SEND:
	case IBV_QPT_XRC_RECV:
		return IPD_OP_XRC;
	default:
		return 0xff;
	}
}

uint32_t ipd_qpt_wr_mask(int qp_type)
{
	switch (qp_type) {
	case IBV_QPT_RC:
		return IPD_WR_RC;
	case IBV_QPT_UC:
		return IPD_WR_UC;
	case IBV_QPT_UD:
		return IPD_WR_UD;
	case IBV_QPT_XRC_SEND:
		return IPD_WR_XRC;
	default:
		return 0;
	}
}

uint32_t ipd_qpt_op_mask(int qp_type)
{
	switch (qp_type) {
	case IBV_QPT_RC:
		return IPD_RC_MASK;
	case IBV_QPT_UC:
		return IPD_UC_MASK;
	case IBV_QPT_UD:
		return IPD_UD_MASK;
	case IBV_QPT_XRC_SEND:
	case IBV_QPT_XRC_RECV:
		return IPD_XRC_MASK;
	default:
		return 0;
	}
}

bool ipd_qpt_reliable(int qp_type)
{
	return qp_type == IBV_QPT_RC || qp_type == IBV_QPT_XRC_SEND ||
	       qp_type == IBV_QPT_XRC_RECV;
}

const struct ipd_wr_opcode_info *ipd_wr_opcode_get(unsigned int opcode,
						    int qp_type)
{
	const struct ipd_wr_opcode_info *info;

	if (opcode >= IPD_NUM_WR_OPCODES)
		return NULL;
	info = &ipd_wr_opcode_info[opcode];
	if (!info->name || !(info->mask & ipd_qpt_wr_mask(qp_type)))
		return NULL;
	return info;
}
