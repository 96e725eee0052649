/* SPDX-License-Identifier: MIT */
/*
 * The IBTA QP state transition table (IBA 11.2.4.2 / verbs ibv_modify_qp):
 * which transitions each QP type may take and which attributes each one
 * requires and allows.  Pure data and checks: no daemon dependencies, so
 * the unit tests link qp_state.c alone.
 */
#ifndef IPATHD_QP_STATE_H
#define IPATHD_QP_STATE_H

#include <infiniband/verbs.h>
#include <stdbool.h>

/*
 * Is the modify legal?  cur is the QP's state; the next state is
 * attr_next when mask has IBV_QP_STATE, else cur (a modify that keeps
 * the state).  Checks the transition for the QP type, that every
 * required attribute is present and that nothing outside required +
 * optional (+ IBV_QP_STATE) is.  0 or -EINVAL.
 */
int ipd_qp_state_check(enum ibv_qp_type type, enum ibv_qp_state cur,
		       enum ibv_qp_state attr_next, unsigned int mask);

/*
 * The table itself, for callers that explain a failure and for tests:
 * false when the transition is illegal for the type; otherwise *req and
 * *opt get the required and optional masks (IBV_QP_STATE not included).
 */
bool ipd_qp_transition(enum ibv_qp_type type, enum ibv_qp_state cur,
		       enum ibv_qp_state next, unsigned int *req,
		       unsigned int *opt);

/* "RESET", "INIT", ... for messages and status. */
const char *ipd_qp_state_name(enum ibv_qp_state s);

#endif
