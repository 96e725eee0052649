// SPDX-License-Identifier: MIT
/* Verbs structures as control-protocol messages: see ipathd/verbs_msg.h. */
#include <string.h>

#include "ipathd/verbs_msg.h"

Ipd__QpCap *ipd_qp_cap_to_msg(Ipd__QpCap *m, const struct ibv_qp_cap *c)
{
	ipd__qp_cap__init(m);
	m->max_send_wr = c->max_send_wr;
	m->max_recv_wr = c->max_recv_wr;
	m->max_send_sge = c->max_send_sge;
	m->max_recv_sge = c->max_recv_sge;
	m->max_inline_data = c->max_inline_data;
	return m;
}

void ipd_qp_cap_from_msg(struct ibv_qp_cap *c, const Ipd__QpCap *m)
{
	if (!m)
		return;
	c->max_send_wr = m->max_send_wr;
	c->max_recv_wr = m->max_recv_wr;
	c->max_send_sge = m->max_send_sge;
	c->max_recv_sge = m->max_recv_sge;
	c->max_inline_data = m->max_inline_data;
}

void ipd_ah_attr_to_msg(Ipd__AhAttr *m, Ipd__GlobalRoute *g,
			const struct ibv_ah_attr *a)
{
	ipd__ah_attr__init(m);
	m->dlid = a->dlid;
	m->sl = a->sl;
	m->src_path_bits = a->src_path_bits;
	m->static_rate = a->static_rate;
	m->is_global = a->is_global;
	m->port_num = a->port_num;
	if (!a->is_global)
		return;
	ipd__global_route__init(g);
	g->dgid.data = (uint8_t *)a->grh.dgid.raw;
	g->dgid.len = sizeof(a->grh.dgid.raw);
	g->flow_label = a->grh.flow_label;
	g->sgid_index = a->grh.sgid_index;
	g->hop_limit = a->grh.hop_limit;
	g->traffic_class = a->grh.traffic_class;
	m->grh = g;
}

void ipd_ah_attr_from_msg(struct ibv_ah_attr *a, const Ipd__AhAttr *m)
{
	memset(a, 0, sizeof(*a));
	if (!m)
		return;
	a->dlid = (uint16_t)m->dlid;
	a->sl = (uint8_t)m->sl;
	a->src_path_bits = (uint8_t)m->src_path_bits;
	a->static_rate = (uint8_t)m->static_rate;
	a->port_num = (uint8_t)m->port_num;
	if (!m->is_global || !m->grh ||
	    m->grh->dgid.len != sizeof(a->grh.dgid.raw))
		return;
	a->is_global = 1;
	memcpy(a->grh.dgid.raw, m->grh->dgid.data, sizeof(a->grh.dgid.raw));
	a->grh.flow_label = m->grh->flow_label;
	a->grh.sgid_index = (uint8_t)m->grh->sgid_index;
	a->grh.hop_limit = (uint8_t)m->grh->hop_limit;
	a->grh.traffic_class = (uint8_t)m->grh->traffic_class;
}
