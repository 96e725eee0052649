// SPDX-License-Identifier: MIT
/*
 * The QP transition table against the rules as FACTS.md and IBA 11.2.4.2
 * state them, written out independently of daemon/qp_state.c.
 */
#include <errno.h>

#include "check.h"
#include "qp_state.h"

static const enum ibv_qp_type types[] = { IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD,
					  IBV_QPT_XRC_SEND, IBV_QPT_XRC_RECV };

/* XRC (kernel ib_modify_qp_is_ok): the INI half sends like RC and has no
 * responder attributes; the TGT half answers like RC and never retries. */
static bool is_xrc(enum ibv_qp_type t)
{
	return t == IBV_QPT_XRC_SEND || t == IBV_QPT_XRC_RECV;
}

/* Required attributes, by hand from the spec. */
static unsigned int req_reset_init(enum ibv_qp_type t)
{
	return IBV_QP_PKEY_INDEX | IBV_QP_PORT |
	       (t == IBV_QPT_UD ? IBV_QP_QKEY : IBV_QP_ACCESS_FLAGS);
}

static unsigned int req_init_rtr(enum ibv_qp_type t)
{
	unsigned int uc = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			  IBV_QP_RQ_PSN;

	if (t == IBV_QPT_UD)
		return 0;
	if (t == IBV_QPT_UC || t == IBV_QPT_XRC_SEND)
		return uc;
	return uc | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
}

static unsigned int req_rtr_rts(enum ibv_qp_type t)
{
	if (t == IBV_QPT_XRC_RECV)
		return IBV_QP_SQ_PSN | IBV_QP_TIMEOUT;
	if (t != IBV_QPT_RC && t != IBV_QPT_XRC_SEND)
		return IBV_QP_SQ_PSN;
	return IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
	       IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
}

static int step(enum ibv_qp_type t, enum ibv_qp_state cur,
		enum ibv_qp_state next, unsigned int attrs)
{
	return ipd_qp_state_check(t, cur, next, IBV_QP_STATE | attrs);
}

/* A transition with its required attributes succeeds; dropping any one
 * of them fails. */
static void check_required(enum ibv_qp_type t, enum ibv_qp_state cur,
			   enum ibv_qp_state next, unsigned int req)
{
	CHECK_MSG(step(t, cur, next, req) == 0, "type %d %s->%s", t,
		  ipd_qp_state_name(cur), ipd_qp_state_name(next));
	for (unsigned int bit = 1; bit && bit <= req; bit <<= 1) {
		if (!(req & bit))
			continue;
		CHECK_MSG(step(t, cur, next, req & ~bit) == -EINVAL,
			  "type %d %s->%s without 0x%x", t,
			  ipd_qp_state_name(cur), ipd_qp_state_name(next), bit);
	}
}

static void test_legal_path(enum ibv_qp_type t)
{
	check_required(t, IBV_QPS_RESET, IBV_QPS_INIT, req_reset_init(t));
	check_required(t, IBV_QPS_INIT, IBV_QPS_INIT, 0);
	check_required(t, IBV_QPS_INIT, IBV_QPS_RTR, req_init_rtr(t));
	check_required(t, IBV_QPS_RTR, IBV_QPS_RTS, req_rtr_rts(t));
	check_required(t, IBV_QPS_RTS, IBV_QPS_RTS, 0);
	check_required(t, IBV_QPS_RTS, IBV_QPS_SQD, 0);
	check_required(t, IBV_QPS_SQD, IBV_QPS_SQD, 0);
	check_required(t, IBV_QPS_SQD, IBV_QPS_RTS, 0);
	/* A modify without IBV_QP_STATE keeps the state. */
	CHECK(ipd_qp_state_check(t, IBV_QPS_RTS, IBV_QPS_RESET, 0) == 0);
	CHECK(ipd_qp_state_check(t, IBV_QPS_RESET, IBV_QPS_INIT, 0) == 0);
}

static void test_to_reset_and_err(enum ibv_qp_type t)
{
	for (int s = IBV_QPS_RESET; s <= IBV_QPS_ERR; s++) {
		enum ibv_qp_state cur = (enum ibv_qp_state)s;

		/* SQE is only reachable by UC/UD, but leaving it is still
		 * checked for every type by the table. */
		CHECK_MSG(step(t, cur, IBV_QPS_RESET, 0) == 0, "%s->RESET",
			  ipd_qp_state_name(cur));
		CHECK_MSG(step(t, cur, IBV_QPS_RESET, IBV_QP_QKEY) == -EINVAL,
			  "%s->RESET with an attribute", ipd_qp_state_name(cur));
		if (cur == IBV_QPS_RESET) {
			CHECK(step(t, cur, IBV_QPS_ERR, 0) == -EINVAL);
			continue;
		}
		CHECK_MSG(step(t, cur, IBV_QPS_ERR, 0) == 0, "%s->ERR",
			  ipd_qp_state_name(cur));
		CHECK(step(t, cur, IBV_QPS_ERR, IBV_QP_SQ_PSN) == -EINVAL);
	}
}

static void test_extra_attrs(enum ibv_qp_type t)
{
	unsigned int ri = req_reset_init(t);

	CHECK(step(t, IBV_QPS_RESET, IBV_QPS_INIT, ri | IBV_QP_SQ_PSN) == -EINVAL);
	CHECK(step(t, IBV_QPS_RESET, IBV_QPS_INIT, ri | IBV_QP_CUR_STATE) == -EINVAL);
	CHECK(step(t, IBV_QPS_RESET, IBV_QPS_INIT, ri | IBV_QP_CAP) == -EINVAL);
	CHECK(step(t, IBV_QPS_INIT, IBV_QPS_RTR, req_init_rtr(t) | IBV_QP_SQ_PSN) == -EINVAL);
	CHECK(step(t, IBV_QPS_RTR, IBV_QPS_RTS, req_rtr_rts(t) | IBV_QP_RQ_PSN) == -EINVAL);
	CHECK(step(t, IBV_QPS_RTS, IBV_QPS_SQD, IBV_QP_SQ_PSN) == -EINVAL);
	CHECK(step(t, IBV_QPS_RTS, IBV_QPS_RTS, IBV_QP_DEST_QPN) == -EINVAL);
	/* QKEY belongs to UD only, ACCESS_FLAGS to RC/UC only. */
	if (t == IBV_QPT_UD) {
		CHECK(step(t, IBV_QPS_RESET, IBV_QPS_INIT, ri | IBV_QP_ACCESS_FLAGS) == -EINVAL);
		CHECK(step(t, IBV_QPS_INIT, IBV_QPS_RTR, IBV_QP_AV) == -EINVAL);
		CHECK(step(t, IBV_QPS_INIT, IBV_QPS_RTR, IBV_QP_QKEY | IBV_QP_PKEY_INDEX) == 0);
		CHECK(step(t, IBV_QPS_RTS, IBV_QPS_RTS, IBV_QP_QKEY) == 0);
	} else {
		CHECK(step(t, IBV_QPS_RESET, IBV_QPS_INIT, ri | IBV_QP_QKEY) == -EINVAL);
		CHECK(step(t, IBV_QPS_INIT, IBV_QPS_RTR, req_init_rtr(t) | IBV_QP_QKEY) == -EINVAL);
		CHECK(step(t, IBV_QPS_INIT, IBV_QPS_RTR, req_init_rtr(t) |
			   IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX | IBV_QP_ALT_PATH) == 0);
		CHECK(step(t, IBV_QPS_RTS, IBV_QPS_RTS, IBV_QP_ACCESS_FLAGS) == 0);
	}
	/* MIN_RNR_TIMER may change in RTS on RC only (it is an RC responder
	 * parameter). */
	CHECK(step(t, IBV_QPS_RTS, IBV_QPS_RTS, IBV_QP_MIN_RNR_TIMER) ==
	      (t == IBV_QPT_RC || t == IBV_QPT_XRC_RECV ? 0 : -EINVAL));
	/* CUR_STATE is an optional attribute from RTR on. */
	CHECK(step(t, IBV_QPS_RTR, IBV_QPS_RTS, req_rtr_rts(t) | IBV_QP_CUR_STATE) == 0);
	CHECK(step(t, IBV_QPS_INIT, IBV_QPS_INIT, IBV_QP_CUR_STATE) == -EINVAL);
	CHECK(step(t, IBV_QPS_RTS, IBV_QPS_SQD, IBV_QP_EN_SQD_ASYNC_NOTIFY) == 0);
}

/* The whole matrix: exactly these (cur, next) pairs are legal. */
static bool expect_legal(enum ibv_qp_type t, int cur, int next)
{
	if (cur > IBV_QPS_ERR || next > IBV_QPS_ERR)
		return false;
	if (next == IBV_QPS_RESET)
		return true;
	if (next == IBV_QPS_ERR)
		return cur != IBV_QPS_RESET;
	switch (cur) {
	case IBV_QPS_RESET:
		return next == IBV_QPS_INIT;
	case IBV_QPS_INIT:
		return next == IBV_QPS_INIT || next == IBV_QPS_RTR;
	case IBV_QPS_RTR:
		return next == IBV_QPS_RTS;
	case IBV_QPS_RTS:
		return next == IBV_QPS_RTS || next == IBV_QPS_SQD;
	case IBV_QPS_SQD:
		return next == IBV_QPS_RTS || next == IBV_QPS_SQD;
	case IBV_QPS_SQE:
		/* RC never enters SQE (FACTS.md); SQE -> RTS is UC/UD. */
		return next == IBV_QPS_RTS && t != IBV_QPT_RC && !is_xrc(t);
	default:
		return false;
	}
}

static void test_matrix(enum ibv_qp_type t)
{
	for (int cur = IBV_QPS_RESET; cur <= IBV_QPS_UNKNOWN; cur++)
		for (int next = IBV_QPS_RESET; next <= IBV_QPS_UNKNOWN; next++) {
			unsigned int req = 0, opt = 0;
			bool legal = ipd_qp_transition(t, (enum ibv_qp_state)cur,
						       (enum ibv_qp_state)next,
						       &req, &opt);

			CHECK_MSG(legal == expect_legal(t, cur, next),
				  "type %d %s->%s", t,
				  ipd_qp_state_name((enum ibv_qp_state)cur),
				  ipd_qp_state_name((enum ibv_qp_state)next));
			if (!legal)
				CHECK(step(t, (enum ibv_qp_state)cur,
					   (enum ibv_qp_state)next, 0) == -EINVAL);
			/* Required and optional never overlap, and
			 * IBV_QP_STATE is implicit. */
			CHECK(!(req & opt));
			CHECK(!((req | opt) & IBV_QP_STATE));
		}
}

int main(void)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		test_legal_path(types[i]);
		test_to_reset_and_err(types[i]);
		test_extra_attrs(types[i]);
		test_matrix(types[i]);
	}
	/* QP types ipathd does not implement have no transitions at all. */
	CHECK(ipd_qp_state_check(IBV_QPT_RAW_PACKET, IBV_QPS_RESET, IBV_QPS_INIT,
				 IBV_QP_STATE | IBV_QP_PORT) == -EINVAL);
	CHECK(ipd_qp_state_check(IBV_QPT_DRIVER, IBV_QPS_RESET, IBV_QPS_RESET,
				 IBV_QP_STATE) == -EINVAL);
	/* ibv_xsrq_pingpong's masks, and what each XRC half must not get. */
	CHECK(step(IBV_QPT_XRC_SEND, IBV_QPS_INIT, IBV_QPS_RTR,
		   req_init_rtr(IBV_QPT_XRC_SEND) |
		   IBV_QP_MAX_DEST_RD_ATOMIC) == -EINVAL);
	CHECK(step(IBV_QPT_XRC_RECV, IBV_QPS_RTR, IBV_QPS_RTS,
		   IBV_QP_TIMEOUT | IBV_QP_SQ_PSN | IBV_QP_RETRY_CNT) == -EINVAL);
	CHECK(step(IBV_QPT_XRC_RECV, IBV_QPS_RTR, IBV_QPS_RTS,
		   IBV_QP_TIMEOUT | IBV_QP_SQ_PSN) == 0);
	CHECK(ipd_qp_state_check(IBV_QPT_RC, (enum ibv_qp_state)42,
				 IBV_QPS_RESET, IBV_QP_STATE) == -EINVAL);
	return check_done("qp_state");
}
