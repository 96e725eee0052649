// SPDX-License-Identifier: MIT
/*
 * ibv_query_device / ibv_query_port answers: what the device claims, from
 * the configured limits.
 */
#include <errno.h>
#include <string.h>

#include "objects.h"

/* PCI IDs of QLogic/PathScale InfiniPath, the ipath heritage. */
#define IPD_VENDOR_ID 0x1fc1
#define IPD_VENDOR_PART_ID 0x10
#define IPD_FW_VER "0.1.0"
#define IPD_PORT_NUM 1
#define IPD_GID_TBL_LEN 16
/* 4 KiB pages and every larger power of two. */
#define IPD_PAGE_SIZE_CAP 0xfffff000ull
/* IBA 14.2.5.6: ack delay 4.096 us * 2^15 ~ 134 ms covers a busy daemon. */
#define IPD_LOCAL_CA_ACK_DELAY 15
#define IPD_DEVICE_CAPS                                                    \
	(IBV_DEVICE_RC_RNR_NAK_GEN | IBV_DEVICE_PORT_ACTIVE_EVENT |         \
	 IBV_DEVICE_SYS_IMAGE_GUID | IBV_DEVICE_N_NOTIFY_CQ |               \
	 IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_XRC)
/* As Linux rxe: the port supports connection management only. */
#define IPD_PORT_CAPS IBV_PORT_CM_SUP
#define IPD_PORT_PHYS_LINKUP 5
#define IPD_WIDTH_1X 1
#define IPD_SPEED_EDR 32        /* 25 Gb/s per lane */
#define IPD_MAX_MSG_SZ (1u << 31)

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void device_attr_fill(const struct ipd_dev *dev, Ipd__DeviceAttr *a)
{
	const struct ipd_config *cfg = dev->cfg;
	uint32_t sge = min_u32(cfg->max_sge, IPD_MAX_SGE);

	a->node_guid = dev->node_guid;
	a->sys_image_guid = dev->node_guid;
	a->max_mr_size = cfg->max_mr_size;
	a->page_size_cap = IPD_PAGE_SIZE_CAP;
	a->vendor_id = IPD_VENDOR_ID;
	a->vendor_part_id = IPD_VENDOR_PART_ID;
	a->max_qp = cfg->max_qp;
	a->max_qp_wr = cfg->max_qp_wr;
	a->device_cap_flags = IPD_DEVICE_CAPS;
	a->max_sge = sge;
	a->max_sge_rd = sge;
	a->max_cq = cfg->max_cq;
	a->max_cqe = cfg->max_cqe;
	a->max_mr = cfg->max_mr;
	a->max_pd = cfg->max_pd;
	a->max_qp_rd_atom = cfg->max_qp_rd_atom;
	a->max_qp_init_rd_atom = cfg->max_qp_rd_atom;
	a->max_res_rd_atom = (uint32_t)min_u64((uint64_t)cfg->max_qp_rd_atom *
					       cfg->max_qp, UINT32_MAX);
	a->atomic_cap = IBV_ATOMIC_HCA;
	a->max_srq = cfg->max_srq;
	a->max_srq_wr = cfg->max_srq_wr;
	a->max_srq_sge = sge;
	a->max_ah = cfg->max_ah;
	a->max_pkeys = 1;
	a->local_ca_ack_delay = IPD_LOCAL_CA_ACK_DELAY;
	a->phys_port_cnt = 1;
	a->max_inline_data = cfg->max_inline;
	a->max_mw = 65536;
}

int ipd_handle_query_device(struct ipd_req_ctx *ctx)
{
	Ipd__QueryDeviceResp *r = ipd_req_alloc(ctx, sizeof(*r));
	Ipd__DeviceAttr *a = ipd_req_alloc(ctx, sizeof(*a));

	if (!r || !a)
		return ipd_req_fail(ctx, ENOMEM, "query_device: out of memory");
	ipd__query_device_resp__init(r);
	ipd__device_attr__init(a);
	device_attr_fill(ctx->client->dev, a);
	a->fw_ver = ipd_req_strdup(ctx, IPD_FW_VER);
	if (!a->fw_ver)
		return ipd_req_fail(ctx, ENOMEM, "query_device: out of memory");
	r->attr = a;
	ctx->resp->op_case = IPD__RESPONSE__OP_QUERY_DEVICE;
	ctx->resp->query_device = r;
	return 0;
}

static void port_attr_fill(const struct ipd_dev *dev, Ipd__PortAttr *a)
{
	uint32_t active = ipd_mtu_enum(dev->active_mtu);

	a->state = IBV_PORT_ACTIVE;
	a->max_mtu = IBV_MTU_4096;
	a->active_mtu = active ? active : IBV_MTU_1024;
	a->gid_tbl_len = IPD_GID_TBL_LEN;
	a->port_cap_flags = IPD_PORT_CAPS;
	a->max_msg_sz = IPD_MAX_MSG_SZ;
	a->pkey_tbl_len = 1;
	a->lid = 0;                /* RoCE: no LIDs */
	a->sm_lid = 0;
	a->lmc = 0;
	a->max_vl_num = 1;
	a->active_width = IPD_WIDTH_1X;
	a->active_speed = IPD_SPEED_EDR;
	a->phys_state = IPD_PORT_PHYS_LINKUP;
	a->link_layer = IBV_LINK_LAYER_ETHERNET;
	a->port_cap_flags2 = 0;
}

int ipd_handle_query_port(struct ipd_req_ctx *ctx)
{
	const Ipd__QueryPort *m = ctx->req->query_port;
	Ipd__QueryPortResp *r;
	Ipd__PortAttr *a;

	if (m->port_num != IPD_PORT_NUM)
		return ipd_req_fail(ctx, EINVAL, "query_port: no port %u",
				    m->port_num);
	r = ipd_req_alloc(ctx, sizeof(*r));
	a = ipd_req_alloc(ctx, sizeof(*a));
	if (!r || !a)
		return ipd_req_fail(ctx, ENOMEM, "query_port: out of memory");
	ipd__query_port_resp__init(r);
	ipd__port_attr__init(a);
	port_attr_fill(ctx->client->dev, a);
	r->attr = a;
	ctx->resp->op_case = IPD__RESPONSE__OP_QUERY_PORT;
	ctx->resp->query_port = r;
	return 0;
}
