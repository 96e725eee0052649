// SPDX-License-Identifier: MIT
/*
 * libipathd-rdmav34.so: registration with libibverbs, the device, the
 * context and the ops table, and the query verbs.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ipathd.h"

/* The daemon writes device/modalias = "ipathd:<dev>". */
static const struct verbs_match_ent ipd_match_table[] = {
	{ .u.modalias = "ipathd:*", .kind = VERBS_MATCH_MODALIAS },
	{ .kind = VERBS_MATCH_SENTINEL },
};

static int ipd_query_device_ex(struct ibv_context *context,
			       const struct ibv_query_device_ex_input *input,
			       struct ibv_device_attr_ex *attr,
			       size_t attr_size)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__QueryDevice qd = IPD__QUERY_DEVICE__INIT;
	struct ibv_device_attr_ex ex = { 0 };
	struct ibv_device_attr *a = &ex.orig_attr;
	Ipd__Response *resp;
	Ipd__DeviceAttr *d;
	int err;

	if (input && input->comp_mask)
		return EINVAL;
	if (attr_size < sizeof(*a))
		return EINVAL;
	req.op_case = IPD__REQUEST__OP_QUERY_DEVICE;
	req.query_device = &qd;
	err = ipd_ctl_request(to_ictx(context), &req, NULL, 0, &resp, NULL,
			      NULL, 0);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_QUERY_DEVICE ||
	    !resp->query_device->attr) {
		ipd_ctl_free(resp);
		return EPROTO;
	}
	d = resp->query_device->attr;
	snprintf(a->fw_ver, sizeof(a->fw_ver), "%s", d->fw_ver ? d->fw_ver : "");
	/* The protocol carries GUIDs as numbers; verbs wants them big-endian. */
	a->node_guid = htobe64(d->node_guid);
	a->sys_image_guid = htobe64(d->sys_image_guid);
	a->max_mr_size = d->max_mr_size;
	a->page_size_cap = d->page_size_cap;
	a->vendor_id = d->vendor_id;
	a->vendor_part_id = d->vendor_part_id;
	a->hw_ver = d->hw_ver;
	a->max_qp = (int)d->max_qp;
	a->max_qp_wr = (int)d->max_qp_wr;
	a->device_cap_flags = d->device_cap_flags;
	a->max_sge = (int)d->max_sge;
	a->max_sge_rd = (int)d->max_sge_rd;
	a->max_cq = (int)d->max_cq;
	a->max_cqe = (int)d->max_cqe;
	a->max_mr = (int)d->max_mr;
	a->max_pd = (int)d->max_pd;
	a->max_qp_rd_atom = (int)d->max_qp_rd_atom;
	a->max_ee_rd_atom = 0;
	a->max_res_rd_atom = (int)d->max_res_rd_atom;
	a->max_qp_init_rd_atom = (int)d->max_qp_init_rd_atom;
	a->atomic_cap = (enum ibv_atomic_cap)d->atomic_cap;
	a->max_mw = (int)d->max_mw;
	a->max_srq = (int)d->max_srq;
	a->max_srq_wr = (int)d->max_srq_wr;
	a->max_srq_sge = (int)d->max_srq_sge;
	a->max_ah = (int)d->max_ah;
	a->max_pkeys = (uint16_t)d->max_pkeys;
	a->local_ca_ack_delay = (uint8_t)d->local_ca_ack_delay;
	a->phys_port_cnt = (uint8_t)d->phys_port_cnt;
	ipd_ctl_free(resp);
	/* Extended attributes: nothing beyond the basic set is offered. */
	memcpy(attr, &ex, attr_size < sizeof(ex) ? attr_size : sizeof(ex));
	return 0;
}

static int ipd_query_port(struct ibv_context *context, uint8_t port_num,
			  struct ibv_port_attr *attr)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__QueryPort qp = IPD__QUERY_PORT__INIT;
	Ipd__Response *resp;
	Ipd__PortAttr *p;
	int err;

	qp.port_num = port_num;
	req.op_case = IPD__REQUEST__OP_QUERY_PORT;
	req.query_port = &qp;
	err = ipd_ctl_request(to_ictx(context), &req, NULL, 0, &resp, NULL,
			      NULL, 0);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_QUERY_PORT ||
	    !resp->query_port->attr) {
		ipd_ctl_free(resp);
		return EPROTO;
	}
	p = resp->query_port->attr;
	memset(attr, 0, sizeof(*attr));
	attr->state = (enum ibv_port_state)p->state;
	attr->max_mtu = (enum ibv_mtu)p->max_mtu;
	attr->active_mtu = (enum ibv_mtu)p->active_mtu;
	attr->gid_tbl_len = (int)p->gid_tbl_len;
	attr->port_cap_flags = p->port_cap_flags;
	attr->max_msg_sz = p->max_msg_sz;
	attr->pkey_tbl_len = (uint16_t)p->pkey_tbl_len;
	attr->lid = (uint16_t)p->lid;
	attr->sm_lid = (uint16_t)p->sm_lid;
	attr->lmc = (uint8_t)p->lmc;
	attr->max_vl_num = (uint8_t)p->max_vl_num;
	attr->active_width = (uint8_t)p->active_width;
	attr->active_speed = (uint8_t)p->active_speed;
	attr->phys_state = (uint8_t)p->phys_state;
	attr->link_layer = (uint8_t)p->link_layer;
	attr->port_cap_flags2 = (uint16_t)p->port_cap_flags2;
	ipd_ctl_free(resp);
	return 0;
}

/* Async events carry everything already; nothing to translate. */
static void ipd_async_event(struct ibv_context *context,
			    struct ibv_async_event *event)
{
}

static void ipd_free_context(struct ibv_context *ibctx)
{
	struct ipd_context *ctx = to_ictx(ibctx);

	ipd_chan_ctx_del(ctx);
	ipd_ctl_disconnect(ctx);
	ipd_app_tx_ctx_fini(ctx);
	verbs_uninit_context(&ctx->vctx);
	free(ctx);
}

static const struct verbs_context_ops ipd_ctx_ops = {
	.alloc_mw = ipd_alloc_mw,
	.alloc_pd = ipd_alloc_pd,
	.bind_mw = ipd_bind_mw,
	.close_xrcd = ipd_close_xrcd,
	.async_event = ipd_async_event,
	.create_ah = ipd_create_ah,
	.create_cq = ipd_create_cq,
	.create_cq_ex = ipd_create_cq_ex,
	.create_qp = ipd_create_qp,
	.create_qp_ex = ipd_create_qp_ex,
	.create_srq = ipd_create_srq,
	.create_srq_ex = ipd_create_srq_ex,
	.dealloc_mw = ipd_dealloc_mw,
	.dealloc_pd = ipd_dealloc_pd,
	.dereg_mr = ipd_dereg_mr,
	.destroy_ah = ipd_destroy_ah,
	.destroy_cq = ipd_destroy_cq,
	.destroy_qp = ipd_destroy_qp,
	.destroy_srq = ipd_destroy_srq,
	.free_context = ipd_free_context,
	.get_srq_num = ipd_get_srq_num,
	.modify_qp = ipd_modify_qp,
	.modify_srq = ipd_modify_srq,
	.open_qp = ipd_open_qp,
	.open_xrcd = ipd_open_xrcd,
	.poll_cq = ipd_poll_cq,
	.post_recv = ipd_post_recv,
	.post_send = ipd_post_send,
	.post_srq_recv = ipd_post_srq_recv,
	.query_device_ex = ipd_query_device_ex,
	.query_port = ipd_query_port,
	.query_qp = ipd_query_qp,
	.query_srq = ipd_query_srq,
	.reg_mr = ipd_reg_mr,
	.req_notify_cq = ipd_req_notify_cq,
	.resize_cq = ipd_resize_cq,
};

/*
 * cmd_fd becomes an eventfd: it answers ioctl with ENOTTY like /dev/null
 * (libibverbs then uses write() commands) but refuses every write (EINVAL:
 * not 8 bytes).  libibverbs' one write command, CREATE_COMP_CHANNEL, is
 * answered by channel.c's hook before it gets here; without the hook it
 * fails cleanly instead of handing out a garbage descriptor
 * (docs/design.md "Completion channels").  Keep the descriptor number
 * libibverbs gave us.
 */
static int replace_cmd_fd(int cmd_fd)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	int err;

	if (efd < 0)
		return -errno;
	if (cmd_fd < 0)
		return efd;
	if (dup3(efd, cmd_fd, O_CLOEXEC) < 0) {
		err = errno;
		close(efd);
		return -err;
	}
	close(efd);
	return cmd_fd;
}

static struct verbs_context *ipd_alloc_context(struct ibv_device *ibdev,
					       int cmd_fd, void *private_data)
{
	struct verbs_device *vdev = (struct verbs_device *)ibdev;
	struct ipd_context *ctx;
	int fd, err;

	fd = replace_cmd_fd(cmd_fd);
	if (fd < 0) {
		if (cmd_fd >= 0)
			close(cmd_fd);
		errno = -fd;
		return NULL;
	}
	/* Takes fd; closes it on failure. */
	ctx = _verbs_init_and_alloc_context(ibdev, fd, sizeof(*ctx),
		&((struct ipd_context *)NULL)->vctx, RDMA_DRIVER_UNKNOWN);
	if (!ctx)
		return NULL;
	ipd_app_tx_ctx_init(ctx);
	err = ipd_ctl_connect(ctx, vdev->sysfs ? vdev->sysfs->ibdev_path :
				   ibdev->ibdev_path);
	if (err)
		goto err_uninit;
	ctx->vctx.context.num_comp_vectors = 1;
	verbs_set_ops(&ctx->vctx, &ipd_ctx_ops);
	ipd_chan_init();
	ipd_chan_ctx_add(ctx);
	return &ctx->vctx;

err_uninit:
	ipd_app_tx_ctx_fini(ctx);
	verbs_uninit_context(&ctx->vctx);
	free(ctx);
	errno = err;
	return NULL;
}

static struct verbs_device *ipd_alloc_device(struct verbs_sysfs_dev *sysfs_dev)
{
	struct ipd_device *dev = calloc(1, sizeof(*dev));

	return dev ? &dev->vdev : NULL;
}

static void ipd_uninit_device(struct verbs_device *vdev)
{
	free((struct ipd_device *)(void *)vdev);
}

static const struct verbs_device_ops ipd_dev_ops = {
	.name = "ipathd",
	.match_min_abi_version = 1,
	.match_max_abi_version = 6,
	.match_table = ipd_match_table,
	.alloc_device = ipd_alloc_device,
	.uninit_device = ipd_uninit_device,
	.alloc_context = ipd_alloc_context,
};

__attribute__((constructor)) static void ipd_register_driver(void)
{
	verbs_register_driver_34(&ipd_dev_ops);
}
