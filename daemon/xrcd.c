// SPDX-License-Identifier: MIT
/*
 * XRC domains (ibv_open_xrcd, ibv_close_xrcd) and ibv_open_qp.
 *
 * A domain opened with a file is named by that file's identity (device,
 * inode), as the kernel names it by inode: every client of the daemon that
 * opens the same file gets the same domain, so its XRC SRQs and TGT QPs are
 * one pool.  A domain opened without a file is private to that open.  Each
 * open is a client object (struct ipd_xrcd, closed with DESTROY OBJ_XRCD);
 * the domain lives while any open of it does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "objects.h"

struct ipd_xrcd_dom {
	bool has_file;
	dev_t st_dev;
	ino_t st_ino;
	unsigned int opens;
	LIST_ENTRY(ipd_xrcd_dom) link; /* dev->xrcd_doms, when has_file */
};

struct ipd_xrcd *ipd_xrcd_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_xrcd *x = ipd_table_get(&c->dev->xrcds, handle);

	return x && x->client == c ? x : NULL;
}

bool ipd_xrcd_client_has(struct ipd_client *c, const struct ipd_xrcd_dom *dom)
{
	const struct ipd_table *t = &c->dev->xrcds;

	for (uint32_t i = 0; i < t->nslots; i++) {
		const struct ipd_xrcd *x = t->slots[i];

		if (x && x->client == c && x->dom == dom)
			return true;
	}
	return false;
}

static struct ipd_xrcd_dom *dom_find(struct ipd_dev *dev, const struct stat *st)
{
	struct ipd_xrcd_dom *d;

	LIST_FOREACH(d, &dev->xrcd_doms, link)
		if (d->st_dev == st->st_dev && d->st_ino == st->st_ino)
			return d;
	return NULL;
}

/* The domain for this open: the file's existing one (unless O_EXCL), a
 * new one (with O_CREAT, or without a file), or NULL with *err set. */
static struct ipd_xrcd_dom *dom_open(struct ipd_req_ctx *ctx,
				     const Ipd__OpenXrcd *m, int *err)
{
	struct ipd_dev *dev = ctx->client->dev;
	struct ipd_xrcd_dom *d = NULL;
	struct stat st;

	if (m->has_fd) {
		if (ctx->n_in_fds != 1 || fstat(ctx->in_fds[0], &st) < 0) {
			*err = ipd_req_fail(ctx, EBADF,
					    "open_xrcd: no usable file");
			return NULL;
		}
		d = dom_find(dev, &st);
		/* ibv_open_xrcd(3): O_EXCL fails on an existing domain,
		 * a missing one needs O_CREAT. */
		if (d && (m->oflags & O_EXCL)) {
			*err = ipd_req_fail(ctx, EEXIST,
					    "open_xrcd: domain exists");
			return NULL;
		}
		if (d)
			return d;
		if (!(m->oflags & O_CREAT)) {
			*err = ipd_req_fail(ctx, ENOENT,
					    "open_xrcd: no domain for the file "
					    "(no O_CREAT)");
			return NULL;
		}
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		*err = ipd_req_fail(ctx, ENOMEM, "open_xrcd: out of memory");
		return NULL;
	}
	if (m->has_fd) {
		d->has_file = true;
		d->st_dev = st.st_dev;
		d->st_ino = st.st_ino;
		LIST_INSERT_HEAD(&dev->xrcd_doms, d, link);
	}
	return d;
}

static void dom_put(struct ipd_xrcd_dom *d)
{
	if (--d->opens)
		return;
	if (d->has_file)
		LIST_REMOVE(d, link);
	free(d);
}

int ipd_handle_open_xrcd(struct ipd_req_ctx *ctx)
{
	const Ipd__OpenXrcd *m = ctx->req->open_xrcd;
	struct ipd_dev *dev = ctx->client->dev;
	Ipd__OpenXrcdResp *r = ipd_req_alloc(ctx, sizeof(*r));
	struct ipd_xrcd *x = calloc(1, sizeof(*x));
	struct ipd_xrcd_dom *d;
	int err;

	if (!r || !x) {
		free(x);
		return ipd_req_fail(ctx, ENOMEM, "open_xrcd: out of memory");
	}
	d = dom_open(ctx, m, &err);
	if (!d) {
		free(x);
		return err;
	}
	d->opens++;
	x->handle = ipd_table_insert(&dev->xrcds, x);
	if (!x->handle) {
		dom_put(d);
		free(x);
		return ipd_req_fail(ctx, ENOMEM, "open_xrcd: too many XRCDs");
	}
	x->client = ctx->client;
	x->dom = d;
	ipd__open_xrcd_resp__init(r);
	r->handle = x->handle;
	ctx->resp->op_case = IPD__RESPONSE__OP_OPEN_XRCD;
	ctx->resp->open_xrcd = r;
	return 0;
}

int ipd_xrcd_destroy(struct ipd_xrcd *x)
{
	/* As uverbs: not while SRQs or QPs of this open use it. */
	if (x->refcnt)
		return -EBUSY;
	ipd_table_remove(&x->client->dev->xrcds, x->handle);
	dom_put(x->dom);
	free(x);
	return 0;
}

/* An ibv_open_qp use ends; the QP goes with the last one once its
 * creator destroyed it. */
static void qp_open_end(struct ipd_qp *qp, struct ipd_qp_open *o)
{
	LIST_REMOVE(o, link);
	o->xrcd->refcnt--;
	free(o);
	if (!qp->client && LIST_EMPTY(&qp->opens))
		ipd_qp_free(qp);
}

static struct ipd_qp_open *qp_open_find(struct ipd_qp *qp,
					const struct ipd_xrcd *x)
{
	struct ipd_qp_open *o;

	LIST_FOREACH(o, &qp->opens, link)
		if (o->xrcd == x)
			return o;
	return NULL;
}

/* ibv_open_qp: another process of the domain shares a TGT QP (modify,
 * query, async events); the QP lives while its creator or any such use
 * does. */
int ipd_handle_open_qp(struct ipd_req_ctx *ctx)
{
	const Ipd__OpenQp *m = ctx->req->open_qp;
	struct ipd_xrcd *x = ipd_xrcd_get(ctx->client, m->xrcd);
	struct ipd_qp *qp = ipd_qp_lookup(ctx->client->dev, m->qpn);
	struct ipd_qp_open *o;

	if (!x)
		return ipd_req_fail(ctx, EINVAL, "open_qp: no XRCD %u",
				    m->xrcd);
	if (!qp || qp->type != IBV_QPT_XRC_RECV || qp->xrc_dom != x->dom)
		return ipd_req_fail(
			ctx, EINVAL,
			"open_qp: no XRC_RECV QP %u in the XRCD's domain",
			m->qpn);
	if (m->close) {
		o = qp_open_find(qp, x);
		if (!o)
			return ipd_req_fail(ctx, EINVAL,
					    "open_qp: QP %u not open through "
					    "XRCD %u",
					    m->qpn, m->xrcd);
		qp_open_end(qp, o);
		return 0;
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return ipd_req_fail(ctx, ENOMEM, "open_qp: out of memory");
	o->client = ctx->client;
	o->xrcd = x;
	o->user_handle = m->user_handle;
	LIST_INSERT_HEAD(&qp->opens, o, link);
	x->refcnt++;
	return 0;
}

void ipd_xrcd_release_opens(struct ipd_client *c)
{
	struct ipd_qp *qp, *next;
	struct ipd_qp_open *o, *onext;

	for (qp = TAILQ_FIRST(&c->dev->qps_list); qp; qp = next) {
		next = TAILQ_NEXT(qp, dev_link);
		/* qp_open_end frees qp only with its last use (onext NULL). */
		for (o = LIST_FIRST(&qp->opens); o; o = onext) {
			onext = LIST_NEXT(o, link);
			if (o->client == c)
				qp_open_end(qp, o);
		}
	}
}
