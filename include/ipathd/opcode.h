/* SPDX-License-Identifier: MIT */
/*
 * Facts about IBA transport opcodes (IBA 9.2.1, table 35) and about work
 * request opcodes per QP type.  The engine asks these tables instead of
 * switching on opcode numbers.
 */
#ifndef IPATHD_OPCODE_H
#define IPATHD_OPCODE_H

#include <stdbool.h>
#include <stdint.h>

/* Extension headers, in the order they may appear after the BTH. */
enum ipd_hdr_type {
	IPD_HDR_BTH,
	IPD_HDR_XRCETH,
	IPD_HDR_DETH,
	IPD_HDR_RETH,
	IPD_HDR_AETH,
	IPD_HDR_ATMETH,
	IPD_HDR_ATMACK,
	IPD_HDR_IMMDT,
	IPD_HDR_IETH,
	IPD_HDR_PAYLOAD,
	IPD_NUM_HDR_TYPES
};

/* Header lengths in bytes (IBA 9.2 .. 9.5). */
enum {
	IPD_BTH_BYTES = 12,
	IPD_XRCETH_BYTES = 4,
	IPD_DETH_BYTES = 8,
	IPD_RETH_BYTES = 16,
	IPD_AETH_BYTES = 4,
	IPD_ATMETH_BYTES = 28,
	IPD_ATMACK_BYTES = 8,
	IPD_IMMDT_BYTES = 4,
	IPD_IETH_BYTES = 4,
};

/* Properties of a packet opcode. */
enum ipd_op_mask {
	IPD_XRCETH_MASK = 1u << IPD_HDR_XRCETH,
	IPD_DETH_MASK = 1u << IPD_HDR_DETH,
	IPD_RETH_MASK = 1u << IPD_HDR_RETH,
	IPD_AETH_MASK = 1u << IPD_HDR_AETH,
	IPD_ATMETH_MASK = 1u << IPD_HDR_ATMETH,
	IPD_ATMACK_MASK = 1u << IPD_HDR_ATMACK,
	IPD_IMMDT_MASK = 1u << IPD_HDR_IMMDT,
	IPD_IETH_MASK = 1u << IPD_HDR_IETH,
	IPD_PAYLOAD_MASK = 1u << IPD_HDR_PAYLOAD,

	IPD_REQ_MASK = 1u << 10,    /* sent by a requester */
	IPD_ACK_MASK = 1u << 11,    /* sent by a responder (ACK, read resp) */
	IPD_SEND_MASK = 1u << 12,
	IPD_WRITE_MASK = 1u << 13,
	IPD_READ_MASK = 1u << 14,
	IPD_ATOMIC_MASK = 1u << 15,
	IPD_RWR_MASK = 1u << 16,    /* consumes a receive WQE */
	IPD_COMP_MASK = 1u << 17,   /* completes a receive WQE */
	IPD_FIRST_MASK = 1u << 18,  /* starts a message */
	IPD_MIDDLE_MASK = 1u << 19,
	IPD_LAST_MASK = 1u << 20,   /* ends a message */
	IPD_RC_MASK = 1u << 21,
	IPD_UC_MASK = 1u << 22,
	IPD_UD_MASK = 1u << 23,
	IPD_XRC_MASK = 1u << 24,

	IPD_ONLY_MASK = IPD_FIRST_MASK | IPD_LAST_MASK,
	IPD_READ_OR_ATOMIC_MASK = IPD_READ_MASK | IPD_ATOMIC_MASK,
	IPD_WRITE_OR_SEND_MASK = IPD_WRITE_MASK | IPD_SEND_MASK,
	IPD_QPT_MASK = IPD_RC_MASK | IPD_UC_MASK | IPD_UD_MASK | IPD_XRC_MASK,
};

struct ipd_opcode_info {
	const char *name;      /* NULL: opcode not supported */
	uint32_t mask;
	uint8_t length;        /* BTH + extension headers */
	uint8_t offset[IPD_NUM_HDR_TYPES]; /* from the BTH; 0 = absent */
};

extern const struct ipd_opcode_info ipd_opcode_info[256];

/* IBA opcodes: transport in bits 7..5, operation in bits 4..0. */
enum ipd_ib_opcode {
	IPD_OP_RC = 0x00,
	IPD_OP_UC = 0x20,
	IPD_OP_RD = 0x40,
	IPD_OP_UD = 0x60,
	IPD_OP_XRC = 0xa0,
	IPD_OP_OPERATION_MASK = 0x1f, /* the operation bits under the base */

	IPD_OP_SEND_FIRST = 0x00,
	IPD_OP_SEND_MIDDLE = 0x01,
	IPD_OP_SEND_LAST = 0x02,
	IPD_OP_SEND_LAST_IMM = 0x03,
	IPD_OP_SEND_ONLY = 0x04,
	IPD_OP_SEND_ONLY_IMM = 0x05,
	IPD_OP_WRITE_FIRST = 0x06,
	IPD_OP_WRITE_MIDDLE = 0x07,
	IPD_OP_WRITE_LAST = 0x08,
	IPD_OP_WRITE_LAST_IMM = 0x09,
	IPD_OP_WRITE_ONLY = 0x0a,
	IPD_OP_WRITE_ONLY_IMM = 0x0b,
	IPD_OP_READ_REQUEST = 0x0c,
	IPD_OP_READ_RESP_FIRST = 0x0d,
	IPD_OP_READ_RESP_MIDDLE = 0x0e,
	IPD_OP_READ_RESP_LAST = 0x0f,
	IPD_OP_READ_RESP_ONLY = 0x10,
	IPD_OP_ACKNOWLEDGE = 0x11,
	IPD_OP_ATOMIC_ACK = 0x12,
	IPD_OP_COMPARE_SWAP = 0x13,
	IPD_OP_FETCH_ADD = 0x14,
	IPD_OP_SEND_LAST_INV = 0x16,
	IPD_OP_SEND_ONLY_INV = 0x17,
};

/* Work request opcodes (enum ibv_wr_opcode) and what they become. */
enum ipd_wr_mask {
	IPD_WR_INLINE_OK = 1u << 0,  /* carries local data: inline allowed */
	IPD_WR_IMM = 1u << 1,        /* ImmDt on the last packet */
	IPD_WR_INV = 1u << 2,        /* IETH on the last packet */
	IPD_WR_SEND = 1u << 3,
	IPD_WR_WRITE = 1u << 4,
	IPD_WR_READ = 1u << 5,
	IPD_WR_ATOMIC = 1u << 6,
	IPD_WR_RC = 1u << 8,         /* legal on this QP type */
	IPD_WR_UC = 1u << 9,
	IPD_WR_UD = 1u << 10,
	IPD_WR_XRC = 1u << 11,       /* XRC_SEND (INI) QPs */
	IPD_WR_READ_OR_ATOMIC = IPD_WR_READ | IPD_WR_ATOMIC,
};

struct ipd_wr_opcode_info {
	const char *name;    /* NULL: not supported by ipathd */
	uint32_t mask;
	uint8_t wc_opcode;   /* enum ibv_wc_opcode of the send completion */
	/* packet opcode within a transport (OR with IPD_OP_RC/UC/UD) */
	uint8_t op_first, op_middle, op_last, op_only;
};

#define IPD_NUM_WR_OPCODES 12
extern const struct ipd_wr_opcode_info ipd_wr_opcode_info[IPD_NUM_WR_OPCODES];

/* Transport bits of opcodes for a QP type (enum ibv_qp_type); 0xff = none. */
uint8_t ipd_qpt_opcode_base(int qp_type);
/* IPD_WR_RC/UC/UD/XRC (or 0) for a QP type. */
uint32_t ipd_qpt_wr_mask(int qp_type);
/* IPD_RC/UC/UD/XRC_MASK (or 0) for a QP type. */
uint32_t ipd_qpt_op_mask(int qp_type);
/* Reliable connected service: RC and both XRC halves (IBA 9.7, 9.8.4):
 * PSNs, ACKs, retries. */
bool ipd_qpt_reliable(int qp_type);

/* The WR opcode info when opcode is legal on qp_type, else NULL. */
const struct ipd_wr_opcode_info *ipd_wr_opcode_get(unsigned int opcode,
						    int qp_type);

#endif
