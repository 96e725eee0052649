// SPDX-License-Identifier: MIT
/*
 * QP state transitions per IBA 11.2.4.2 and the verbs ibv_modify_qp
 * rules: one table indexed by current state, next state and QP type.
 * Only the types ipathd implements (RC, UC, UD, and XRC's INI = XRC_SEND
 * and TGT = XRC_RECV halves) have columns; the XRC masks are those of the
 * kernel's ib_modify_qp_is_ok table (IBA 11.2.4.2 with the XRC annex).
 */
#include <errno.h>

#include "qp_state.h"

enum { QPT_RC, QPT_UC, QPT_UD, QPT_INI, QPT_TGT, QPT_N };

#define ST_N (IBV_QPS_ERR + 1)
#define ALL_TYPES                                                          \
	((1u << QPT_RC) | (1u << QPT_UC) | (1u << QPT_UD) |                \
	 (1u << QPT_INI) | (1u << QPT_TGT))

struct qp_transition {
	unsigned int types;          /* bit per QPT_* that may take it */
	unsigned int req[QPT_N];
	unsigned int opt[QPT_N];
};

/* Attribute groups that recur in the table. */
#define PATH_OPT (IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PATH_MIG_STATE)
#define RTS_OPT_UD (IBV_QP_CUR_STATE | IBV_QP_QKEY)
#define RTS_OPT_UC (IBV_QP_CUR_STATE | PATH_OPT)
#define RTS_OPT_RC (IBV_QP_CUR_STATE | PATH_OPT | IBV_QP_MIN_RNR_TIMER)
/* What a move into RTS from RTR, RTS or SQD may change (an XRC INI QP
 * receives nothing, so no RNR timer; a TGT QP receives as RC does). */
#define RTS_OPTS                                                           \
	{                                                                  \
		[QPT_RC] = RTS_OPT_RC, [QPT_UC] = RTS_OPT_UC,              \
		[QPT_UD] = RTS_OPT_UD, [QPT_INI] = RTS_OPT_UC,             \
		[QPT_TGT] = RTS_OPT_RC,                                    \
	}
#define INIT_ATTRS (IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
#define RTR_REQ_UC                                                         \
	(IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN)
#define RTR_REQ_RC                                                         \
	(RTR_REQ_UC | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)
#define RTR_OPT (IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX)

/* Any state may go to RESET or ERR with no other attribute (IBA
 * 11.2.4.2), except RESET -> ERR, which the table does not allow. */
#define TO_RESET_OR_ERR                                                    \
	[IBV_QPS_RESET] = { .types = ALL_TYPES },                          \
	[IBV_QPS_ERR] = { .types = ALL_TYPES }

static const struct qp_transition qp_table[ST_N][ST_N] = {
	[IBV_QPS_RESET] = {
		[IBV_QPS_RESET] = { .types = ALL_TYPES },
		[IBV_QPS_INIT] = {
			.types = ALL_TYPES,
			.req = {
				[QPT_RC] = IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					   IBV_QP_ACCESS_FLAGS,
				[QPT_UC] = IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					   IBV_QP_ACCESS_FLAGS,
				[QPT_UD] = IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					   IBV_QP_QKEY,
				[QPT_INI] = INIT_ATTRS,
				[QPT_TGT] = INIT_ATTRS,
			},
		},
	},
	[IBV_QPS_INIT] = {
		TO_RESET_OR_ERR,
		[IBV_QPS_INIT] = {
			.types = ALL_TYPES,
			.opt = {
				[QPT_RC] = IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					   IBV_QP_ACCESS_FLAGS,
				[QPT_UC] = IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					   IBV_QP_ACCESS_FLAGS,
				[QPT_UD] = IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					   IBV_QP_QKEY,
				[QPT_INI] = INIT_ATTRS,
				[QPT_TGT] = INIT_ATTRS,
			},
		},
		[IBV_QPS_RTR] = {
			.types = ALL_TYPES,
			.req = {
				[QPT_RC] = IBV_QP_AV | IBV_QP_PATH_MTU |
					   IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
					   IBV_QP_MAX_DEST_RD_ATOMIC |
					   IBV_QP_MIN_RNR_TIMER,
				[QPT_UC] = IBV_QP_AV | IBV_QP_PATH_MTU |
					   IBV_QP_DEST_QPN | IBV_QP_RQ_PSN,
				[QPT_INI] = RTR_REQ_UC,
				[QPT_TGT] = RTR_REQ_RC,
			},
			.opt = {
				[QPT_RC] = IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS |
					   IBV_QP_PKEY_INDEX,
				[QPT_UC] = IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS |
					   IBV_QP_PKEY_INDEX,
				[QPT_UD] = IBV_QP_PKEY_INDEX | IBV_QP_QKEY,
				[QPT_INI] = RTR_OPT,
				[QPT_TGT] = RTR_OPT,
			},
		},
	},
	[IBV_QPS_RTR] = {
		TO_RESET_OR_ERR,
		[IBV_QPS_RTS] = {
			.types = ALL_TYPES,
			.req = {
				[QPT_RC] = IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
					   IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
					   IBV_QP_MAX_QP_RD_ATOMIC,
				[QPT_UC] = IBV_QP_SQ_PSN,
				[QPT_UD] = IBV_QP_SQ_PSN,
				/* the TGT side only answers: no retries */
				[QPT_INI] = IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
					    IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
					    IBV_QP_MAX_QP_RD_ATOMIC,
				[QPT_TGT] = IBV_QP_SQ_PSN | IBV_QP_TIMEOUT,
			},
			.opt = RTS_OPTS,
		},
	},
	[IBV_QPS_RTS] = {
		TO_RESET_OR_ERR,
		[IBV_QPS_RTS] = {
			.types = ALL_TYPES,
			.opt = RTS_OPTS,
		},
		[IBV_QPS_SQD] = {
			.types = ALL_TYPES,
			.opt = {
				[QPT_RC] = IBV_QP_EN_SQD_ASYNC_NOTIFY,
				[QPT_UC] = IBV_QP_EN_SQD_ASYNC_NOTIFY,
				[QPT_UD] = IBV_QP_EN_SQD_ASYNC_NOTIFY,
				[QPT_INI] = IBV_QP_EN_SQD_ASYNC_NOTIFY,
				[QPT_TGT] = IBV_QP_EN_SQD_ASYNC_NOTIFY,
			},
		},
	},
	[IBV_QPS_SQD] = {
		TO_RESET_OR_ERR,
		[IBV_QPS_RTS] = {
			.types = ALL_TYPES,
			.opt = RTS_OPTS,
		},
		/* While drained, the path itself may change (IBA 11.2.4.2). */
		[IBV_QPS_SQD] = {
			.types = ALL_TYPES,
			.opt = {
				[QPT_RC] = IBV_QP_PORT | IBV_QP_AV |
					   IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					   IBV_QP_RNR_RETRY |
					   IBV_QP_MAX_QP_RD_ATOMIC |
					   IBV_QP_MAX_DEST_RD_ATOMIC |
					   IBV_QP_PKEY_INDEX |
					   IBV_QP_MIN_RNR_TIMER | PATH_OPT,
				[QPT_UC] = IBV_QP_AV | IBV_QP_PKEY_INDEX |
					   PATH_OPT,
				[QPT_UD] = IBV_QP_PKEY_INDEX | IBV_QP_QKEY,
				[QPT_INI] = IBV_QP_PORT | IBV_QP_AV |
					    IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					    IBV_QP_RNR_RETRY |
					    IBV_QP_MAX_QP_RD_ATOMIC |
					    IBV_QP_PKEY_INDEX | PATH_OPT,
				[QPT_TGT] = IBV_QP_PORT | IBV_QP_AV |
					    IBV_QP_TIMEOUT |
					    IBV_QP_MAX_DEST_RD_ATOMIC |
					    IBV_QP_PKEY_INDEX |
					    IBV_QP_MIN_RNR_TIMER | PATH_OPT,
			},
		},
	},
	/* Only unreliable QPs enter SQE (a send error that leaves the
	 * receive side working); RC goes to ERR instead. */
	[IBV_QPS_SQE] = {
		TO_RESET_OR_ERR,
		[IBV_QPS_RTS] = {
			.types = (1u << QPT_UC) | (1u << QPT_UD),
			.opt = {
				[QPT_UC] = IBV_QP_CUR_STATE |
					   IBV_QP_ACCESS_FLAGS,
				[QPT_UD] = RTS_OPT_UD,
			},
		},
	},
	[IBV_QPS_ERR] = {
		TO_RESET_OR_ERR,
	},
};

static int qpt_index(enum ibv_qp_type type)
{
	switch (type) {
	case IBV_QPT_RC:
		return QPT_RC;
	case IBV_QPT_UC:
		return QPT_UC;
	case IBV_QPT_UD:
		return QPT_UD;
	case IBV_QPT_XRC_SEND:
		return QPT_INI;
	case IBV_QPT_XRC_RECV:
		return QPT_TGT;
	default:
		return -1;
	}
}

bool ipd_qp_transition(enum ibv_qp_type type, enum ibv_qp_state cur,
		       enum ibv_qp_state next, unsigned int *req,
		       unsigned int *opt)
{
	const struct qp_transition *t;
	int qt = qpt_index(type);

	if (qt < 0 || (unsigned int)cur >= ST_N || (unsigned int)next >= ST_N)
		return false;
	t = &qp_table[cur][next];
	if (!(t->types & (1u << qt)))
		return false;
	*req = t->req[qt];
	*opt = t->opt[qt];
	return true;
}

int ipd_qp_state_check(enum ibv_qp_type type, enum ibv_qp_state cur,
		       enum ibv_qp_state attr_next, unsigned int mask)
{
	enum ibv_qp_state next = (mask & IBV_QP_STATE) ? attr_next : cur;
	unsigned int req, opt;

	if (!ipd_qp_transition(type, cur, next, &req, &opt))
		return -EINVAL;
	if ((mask & req) != req)
		return -EINVAL;
	if (mask & ~(req | opt | IBV_QP_STATE))
		return -EINVAL;
	return 0;
}

static const char *const qp_state_names[ST_N] = {
	[IBV_QPS_RESET] = "RESET",
	[IBV_QPS_INIT] = "INIT",
	[IBV_QPS_RTR] = "RTR",
	[IBV_QPS_RTS] = "RTS",
	[IBV_QPS_SQD] = "SQD",
	[IBV_QPS_SQE] = "SQE",
	[IBV_QPS_ERR] = "ERR",
};

const char *ipd_qp_state_name(enum ibv_qp_state s)
{
	return (unsigned int)s < ST_N ? qp_state_names[s] : "UNKNOWN";
}
