/* SPDX-License-Identifier: MIT */
/*
 * Verbs structures as control-protocol messages and back
 * (proto/verbs_msg.c), the same conversion on both sides of the control
 * socket: the provider sends what the daemon reads and the other way.
 */
#ifndef IPATHD_VERBS_MSG_H
#define IPATHD_VERBS_MSG_H

#include <infiniband/verbs.h>

#include "ipathd_ctl.pb-c.h"

/* m filled from c; returns m. */
Ipd__QpCap *ipd_qp_cap_to_msg(Ipd__QpCap *m, const struct ibv_qp_cap *c);
/* c from m; a missing m leaves c as it was. */
void ipd_qp_cap_from_msg(struct ibv_qp_cap *c, const Ipd__QpCap *m);
/* m filled from a; with a GRH, g holds it and points at a's dgid (a must
 * outlive m). */
void ipd_ah_attr_to_msg(Ipd__AhAttr *m, Ipd__GlobalRoute *g,
			const struct ibv_ah_attr *a);
/* a from m, zeroed first; a GRH without a 16-byte dgid is no GRH
 * (is_global 0), a missing m all zero. */
void ipd_ah_attr_from_msg(struct ibv_ah_attr *a, const Ipd__AhAttr *m);

#endif
