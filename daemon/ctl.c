// SPDX-License-Identifier: MIT
/*
 * The control server: a SOCK_SEQPACKET Unix socket, one protobuf request per
 * packet and exactly one response per request, in order (proto/ipathd_ctl.proto).
 *
 * A client is anything that connects: the verbs provider, the driver stubs,
 * ipathctl.  It must say HELLO (passing its async-event pipe) before any
 * verb; STATUS is allowed before HELLO so that ipathctl needs no pipe.
 * A client that sends something we cannot parse, an oversized packet, or
 * whose socket fails is cut off; that never affects other clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "ipathd.h"

#define container_of(ptr, type, member)                                     \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Requests served per wake-up of one client before yielding to others. */
#define CTL_BATCH 16
#define CLIENT_PAGE_SIZE 4096u
/* ipd_req_ctx.scratch: the last slot heads a list of further blocks. */
#define SCRATCH_DIRECT (int)(sizeof(((struct ipd_req_ctx *)0)->scratch) / \
			     sizeof(void *) - 1)

struct ipd_ctl_server {
	struct ipd_dev *dev;
	int fd;
	ev_io listen_w;
	unsigned int nclients;
	uint8_t *rxbuf;              /* IPD_CTL_MAX_MSG, one request at a time */
};

/* Async event record read by the provider (docs/design.md "Async events"). */
struct ipd_async_record {
	uint64_t element;
	uint32_t event_type;
	uint32_t reserved;
};
_Static_assert(sizeof(struct ipd_async_record) == 16, "async record");

static int ctl_hello(struct ipd_req_ctx *ctx);

static const struct ctl_op {
	const char *name;
	int (*handler)(struct ipd_req_ctx *ctx);
	bool before_hello;          /* allowed before HELLO */
} ctl_ops[] = {
	[IPD__REQUEST__OP_HELLO] = { "hello", ctl_hello, true },
	[IPD__REQUEST__OP_QUERY_DEVICE] = { "query_device", ipd_handle_query_device },
	[IPD__REQUEST__OP_QUERY_PORT] = { "query_port", ipd_handle_query_port },
	[IPD__REQUEST__OP_ALLOC_PD] = { "alloc_pd", ipd_handle_alloc_pd },
	[IPD__REQUEST__OP_REG_MR] = { "reg_mr", ipd_handle_reg_mr },
	[IPD__REQUEST__OP_CREATE_CQ] = { "create_cq", ipd_handle_create_cq },
	[IPD__REQUEST__OP_RESIZE_CQ] = { "resize_cq", ipd_handle_resize_cq },
	[IPD__REQUEST__OP_CREATE_SRQ] = { "create_srq", ipd_handle_create_srq },
	[IPD__REQUEST__OP_MODIFY_SRQ] = { "modify_srq", ipd_handle_modify_srq },
	[IPD__REQUEST__OP_QUERY_SRQ] = { "query_srq", ipd_handle_query_srq },
	[IPD__REQUEST__OP_CREATE_AH] = { "create_ah", ipd_handle_create_ah },
	[IPD__REQUEST__OP_CREATE_QP] = { "create_qp", ipd_handle_create_qp },
	[IPD__REQUEST__OP_MODIFY_QP] = { "modify_qp", ipd_handle_modify_qp },
	[IPD__REQUEST__OP_QUERY_QP] = { "query_qp", ipd_handle_query_qp },
	[IPD__REQUEST__OP_DESTROY] = { "destroy", ipd_handle_destroy },
	[IPD__REQUEST__OP_STATUS] = { "status", ipd_handle_status, true },
	[IPD__REQUEST__OP_KSTUB_ATTACH] = { "kstub_attach", ipd_handle_kstub_attach },
	[IPD__REQUEST__OP_IOMMU_INVAL] = { "iommu_inval", ipd_handle_iommu_inval },
	[IPD__REQUEST__OP_CREATE_CHANNEL] = { "create_channel", ipd_handle_create_channel },
	[IPD__REQUEST__OP_ALLOC_MW] = { "alloc_mw", ipd_handle_alloc_mw },
	[IPD__REQUEST__OP_DEALLOC_MW] = { "dealloc_mw", ipd_handle_dealloc_mw },
	[IPD__REQUEST__OP_BIND_MW] = { "bind_mw", ipd_handle_bind_mw },
	[IPD__REQUEST__OP_OPEN_XRCD] = { "open_xrcd", ipd_handle_open_xrcd },
	[IPD__REQUEST__OP_OPEN_QP] = { "open_qp", ipd_handle_open_qp },
	[IPD__REQUEST__OP_CAPTURE_START] = { "capture_start", ipd_handle_capture_start, true },
	[IPD__REQUEST__OP_CAPTURE_STOP] = { "capture_stop", ipd_handle_capture_stop, true },
};

#define N_CTL_OPS (sizeof(ctl_ops) / sizeof(ctl_ops[0]))

/* ---- per-request scratch memory ------------------------------------ */

void *ipd_req_alloc(struct ipd_req_ctx *ctx, size_t size)
{
	void **blk;

	if (ctx->n_scratch < SCRATCH_DIRECT) {
		void *p = calloc(1, size ? size : 1);

		if (p)
			ctx->scratch[ctx->n_scratch++] = p;
		return p;
	}
	/* Beyond the direct slots: a chain of blocks, each prefixed by the
	 * pointer to the previous one, headed by the last slot. */
	blk = calloc(1, sizeof(max_align_t) + size);
	if (!blk)
		return NULL;
	*blk = ctx->scratch[SCRATCH_DIRECT];
	ctx->scratch[SCRATCH_DIRECT] = blk;
	return (char *)blk + sizeof(max_align_t);
}

static void req_free_scratch(struct ipd_req_ctx *ctx)
{
	void **blk = ctx->n_scratch >= SCRATCH_DIRECT ?
			     ctx->scratch[SCRATCH_DIRECT] : NULL;
	int i;

	for (i = 0; i < ctx->n_scratch; i++)
		free(ctx->scratch[i]);
	while (blk) {
		void **prev = *blk;

		free(blk);
		blk = prev;
	}
	ctx->n_scratch = 0;
}

int ipd_req_fail(struct ipd_req_ctx *ctx, int err, const char *fmt, ...)
{
	char *msg = ipd_req_alloc(ctx, 256);
	va_list ap;

	if (err < 0)
		err = -err;
	if (!err)
		err = EIO;
	ctx->resp->err = err;
	if (msg) {
		va_start(ap, fmt);
		vsnprintf(msg, 256, fmt, ap);
		va_end(ap);
		ctx->resp->msg = msg;
	}
	return -err;
}

/* ---- async events -------------------------------------------------- */

void ipd_async_event(struct ipd_client *client, uint64_t element,
		     enum ibv_event_type type)
{
	const struct ipd_async_record rec = {
		.element = element,
		.event_type = (uint32_t)type,
	};
	ssize_t n;

	if (client->async_fd < 0) {
		client->async_dropped++;
		return;
	}
	/* 16 bytes <= PIPE_BUF: the write is atomic, all or nothing. */
	n = write(client->async_fd, &rec, sizeof(rec));
	if (n != (ssize_t)sizeof(rec)) {
		client->async_dropped++;
		ipd_dbg("client %u: async event %d dropped (%s)", client->id,
			type, n < 0 ? strerror(errno) : "short write");
		return;
	}
	ipd_dbg("client %u: async event %d element %#llx", client->id, type,
		(unsigned long long)element);
}

/* ---- client lifetime ----------------------------------------------- */

static void client_free(struct ipd_client *c)
{
	struct ipd_dev *dev = c->dev;

	ipd_client_release_capture(c);
	ipd_client_release_mws(c);
	ipd_client_release_objects(c);
	ipd_client_release_channels(c);
	ev_io_stop(dev->loop, &c->sock_w);
	if (c->doorbell_fd >= 0) {
		ev_io_stop(dev->loop, &c->doorbell_w);
		close(c->doorbell_fd);
	}
	if (c->page)
		munmap(c->page, CLIENT_PAGE_SIZE);
	if (c->page_fd >= 0)
		close(c->page_fd);
	if (c->async_fd >= 0)
		close(c->async_fd);
	close(c->sock);
	TAILQ_REMOVE(&dev->clients, c, link);
	dev->ctl->nclients--;
	if (c->async_dropped)
		ipd_info("client %u (%s): %llu async events were dropped",
			 c->id, c->name, (unsigned long long)c->async_dropped);
	free(c);
}

static void client_disconnect(struct ipd_client *c)
{
	ipd_info("client %u (%s) disconnected", c->id, c->name);
	client_free(c);
}

static void client_cut_off(struct ipd_client *c, const char *why)
{
	c->dev->cnt.clients_cut_off++;
	ipd_warn("client %u (%s): cut off: %s", c->id, c->name, why);
	client_free(c);
}

/* The doorbell only has to wake the loop; loop.c resumes polling.  One
 * read empties the eventfd's counter; a write after it makes the fd
 * readable again for the next epoll_wait (a second read here would only
 * find EAGAIN, a system call per wake-up). */
static void doorbell_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipd_client *c = container_of(w, struct ipd_client, doorbell_w);
	uint64_t v;

	if (read(c->doorbell_fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
		/* EAGAIN: a spurious wake-up; nothing to empty. */
	}
}

static void set_client_name(struct ipd_client *c, const char *name)
{
	size_t i;

	snprintf(c->name, sizeof(c->name), "%.40s[%d]",
		 name && *name ? name : "?", (int)c->pid);
	for (i = 0; c->name[i]; i++)
		if ((unsigned char)c->name[i] < 0x20 ||
		    (unsigned char)c->name[i] >= 0x7f)
			c->name[i] = '?';
}

static int client_page_create(struct ipd_client *c)
{
	int fd, ret;

	fd = memfd_create("ipathd-client", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, CLIENT_PAGE_SIZE) < 0)
		goto err_fd;
	/* A client must not be able to shrink the page under us (SIGBUS). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto err_fd;
	c->page = mmap(NULL, CLIENT_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_SHARED, fd, 0);
	if (c->page == MAP_FAILED) {
		c->page = NULL;
		goto err_fd;
	}
	c->page_fd = fd;
	return 0;
err_fd:
	ret = -errno;
	close(fd);
	return ret;
}

static int ctl_hello_check(struct ipd_req_ctx *ctx)
{
	const Ipd__Hello *h = ctx->req->hello;
	struct stat st;

	if (ctx->client->hello_done)
		return ipd_req_fail(ctx, EPROTO, "HELLO was already done");
	if (h->abi_version != IPD_CTL_ABI_VERSION)
		return ipd_req_fail(ctx, EPROTO,
				    "control ABI %u, daemon speaks %u",
				    h->abi_version, IPD_CTL_ABI_VERSION);
	if (ctx->n_in_fds != 1)
		return ipd_req_fail(ctx, EPROTO,
				    "HELLO needs exactly 1 descriptor (got %d)",
				    ctx->n_in_fds);
	if (fstat(ctx->in_fds[0], &st) < 0 ||
	    !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return ipd_req_fail(ctx, EINVAL,
				    "the async descriptor must be a pipe or socket");
	return 0;
}

static int ctl_hello(struct ipd_req_ctx *ctx)
{
	struct ipd_client *c = ctx->client;
	struct ipd_dev *dev = c->dev;
	Ipd__HelloResp *hr;
	int fl, ret;

	ret = ctl_hello_check(ctx);
	if (ret)
		return ret;
	hr = ipd_req_alloc(ctx, sizeof(*hr));
	if (!hr)
		return ipd_req_fail(ctx, ENOMEM, "out of memory");
	fl = fcntl(ctx->in_fds[0], F_GETFL);
	if (fl < 0 || fcntl(ctx->in_fds[0], F_SETFL, fl | O_NONBLOCK) < 0)
		return ipd_req_fail(ctx, errno, "async descriptor: %s",
				    strerror(errno));
	ret = client_page_create(c);
	if (ret)
		return ipd_req_fail(ctx, -ret, "client page: %s", strerror(-ret));
	c->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->doorbell_fd < 0)
		goto err_page;
	ctx->out_fds[0] = fcntl(c->page_fd, F_DUPFD_CLOEXEC, 0);
	ctx->out_fds[1] = fcntl(c->doorbell_fd, F_DUPFD_CLOEXEC, 0);
	ctx->n_out_fds = 2;
	if (ctx->out_fds[0] < 0 || ctx->out_fds[1] < 0)
		goto err_page;   /* out_fds are closed by the caller */
	ev_io_init(&c->doorbell_w, doorbell_cb, c->doorbell_fd, EV_READ);
	ev_io_start(dev->loop, &c->doorbell_w);

	c->async_fd = ctx->in_fds[0];
	ctx->in_fds[0] = -1;
	c->hello_done = true;
	set_client_name(c, ctx->req->hello->client_name);
	ipd__hello_resp__init(hr);
	hr->client_id = c->id;
	hr->dev_name = dev->cfg->dev_name;
	ctx->resp->op_case = IPD__RESPONSE__OP_HELLO;
	ctx->resp->hello = hr;
	ipd_info("client %u: hello from %s (uid %u)", c->id, c->name,
		 (unsigned)c->uid);
	return 0;

err_page:
	ret = errno;
	if (c->doorbell_fd >= 0)
		close(c->doorbell_fd);
	c->doorbell_fd = -1;
	munmap(c->page, CLIENT_PAGE_SIZE);
	c->page = NULL;
	close(c->page_fd);
	c->page_fd = -1;
	return ipd_req_fail(ctx, ret, "doorbell: %s", strerror(ret));
}

/* ---- request dispatch ---------------------------------------------- */

static void req_dispatch(struct ipd_req_ctx *ctx)
{
	const Ipd__Request *req = ctx->req;
	const struct ctl_op *op = NULL;
	int ret;

	if ((size_t)req->op_case < N_CTL_OPS && ctl_ops[req->op_case].handler)
		op = &ctl_ops[req->op_case];
	if (!op) {
		ipd_req_fail(ctx, EOPNOTSUPP, "unknown request %d",
			     (int)req->op_case);
		return;
	}
	if (!ctx->client->hello_done && !op->before_hello) {
		ipd_req_fail(ctx, EPROTO, "%s before HELLO", op->name);
		return;
	}
	ret = op->handler(ctx);
	if (ret < 0 && !ctx->resp->err)
		ctx->resp->err = -ret;
	if (ctx->resp->err)
		ipd_dbg("client %u: %s: %s (%s)", ctx->client->id, op->name,
			strerror(ctx->resp->err), ctx->resp->msg);
}

static void close_fds(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Send ctx->resp.  A failed verb sends no descriptors. */
static int req_respond(struct ipd_req_ctx *ctx)
{
	Ipd__Response fallback = IPD__RESPONSE__INIT;
	int ret;

	if (ctx->resp->err)
		close_fds(ctx->out_fds, ctx->n_out_fds);
	ret = ipd_ctl_send(ctx->client->sock, &ctx->resp->base,
			   ctx->resp->err ? NULL : ctx->out_fds,
			   ctx->resp->err ? 0 : ctx->n_out_fds);
	if (ret == -EMSGSIZE) {
		/* Our answer does not fit a packet: say so instead. */
		fallback.err = EMSGSIZE;
		fallback.msg = (char *)"response too large";
		ret = ipd_ctl_send(ctx->client->sock, &fallback.base, NULL, 0);
	}
	return ret;
}

/* Serve one received packet.  0, or -errno to cut the client off. */
static int client_serve(struct ipd_client *c, const uint8_t *buf, size_t len,
			int *fds, int nfds)
{
	Ipd__Response resp = IPD__RESPONSE__INIT;
	struct ipd_req_ctx ctx = { .client = c, .resp = &resp };
	Ipd__Request *req;
	int i, ret;

	req = ipd__request__unpack(NULL, len, buf);
	if (!req) {
		close_fds(fds, nfds);
		return -EBADMSG;
	}
	ctx.req = req;
	for (i = 0; i < nfds; i++)
		ctx.in_fds[i] = fds[i];
	ctx.n_in_fds = nfds;
	for (i = 0; i < IPD_CTL_MAX_FDS; i++)
		ctx.out_fds[i] = -1;

	req_dispatch(&ctx);
	ret = req_respond(&ctx);

	close_fds(ctx.out_fds, IPD_CTL_MAX_FDS);
	close_fds(ctx.in_fds, ctx.n_in_fds);
	req_free_scratch(&ctx);
	ipd__request__free_unpacked(req, NULL);
	return ret;
}

static void client_sock_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipd_client *c = container_of(w, struct ipd_client, sock_w);
	struct ipd_ctl_server *srv = c->dev->ctl;
	int fds[IPD_CTL_MAX_FDS], nfds, i, ret;
	char why[96];
	ssize_t n;

	for (i = 0; i < CTL_BATCH; i++) {
		n = ipd_ctl_recv(c->sock, srv->rxbuf, IPD_CTL_MAX_MSG, fds,
				 &nfds, IPD_CTL_MAX_FDS);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return;
		/* SOCK_SEQPACKET: 0 is the peer's close (an empty packet looks
		 * the same; no valid request is empty, so nothing is lost). */
		if (n == 0) {
			client_disconnect(c);
			return;
		}
		if (n < 0) {
			snprintf(why, sizeof(why), "receive: %s",
				 n == -EMSGSIZE ? "oversized packet" :
						  strerror((int)-n));
			client_cut_off(c, why);
			return;
		}
		ret = client_serve(c, srv->rxbuf, (size_t)n, fds, nfds);
		if (ret) {
			snprintf(why, sizeof(why), "%s",
				 ret == -EBADMSG ? "malformed request" :
						   strerror(-ret));
			client_cut_off(c, why);
			return;
		}
	}
}

/* ---- accepting ----------------------------------------------------- */

static void client_new(struct ipd_ctl_server *srv, int fd)
{
	struct ipd_dev *dev = srv->dev;
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1 };
	socklen_t clen = sizeof(cred);
	struct ipd_client *c;

	if (srv->nclients >= dev->cfg->max_clients) {
		ipd_warn("refusing a client: max_clients (%u) reached",
			 dev->cfg->max_clients);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		ipd_err("out of memory for a client");
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		ipd_warn("SO_PEERCRED: %s", strerror(errno));
	c->id = ++dev->next_client_id;
	c->dev = dev;
	c->sock = fd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->page_fd = -1;
	c->doorbell_fd = -1;
	c->async_fd = -1;
	snprintf(c->name, sizeof(c->name), "[%d]", (int)cred.pid);
	TAILQ_INSERT_TAIL(&dev->clients, c, link);
	srv->nclients++;
	ev_io_init(&c->sock_w, client_sock_cb, fd, EV_READ);
	ev_io_start(dev->loop, &c->sock_w);
	ipd_dbg("client %u connected (pid %d uid %u)", c->id, (int)c->pid,
		(unsigned)c->uid);
}

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipd_ctl_server *srv = container_of(w, struct ipd_ctl_server,
						  listen_w);
	int i, fd;

	for (i = 0; i < CTL_BATCH; i++) {
		fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				ipd_warn("accept: %s", strerror(errno));
			return;
		}
		client_new(srv, fd);
	}
}

/* Create the directories above the socket path. */
static int mkdir_parents(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	return ipd_mkdir_p(dir, 0755);
}

/* Remove a socket left by a daemon that died; refuse if one answers. */
static int remove_stale_socket(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
		ipd_err("%s: another ipathd is running", sun->sun_path);
		ret = -EADDRINUSE;
	} else if (errno == ECONNREFUSED) {
		unlink(sun->sun_path);
	}
	close(fd);
	return ret;
}

static int ctl_listen(struct ipd_ctl_server *srv, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ret;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	ret = mkdir_parents(path);
	if (ret)
		return ret;
	ret = remove_stale_socket(&sun);
	if (ret)
		return ret;
	srv->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0)
		return -errno;
	if (bind(srv->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto err;
	/* Any local user may use the device, as with /dev/infiniband/uverbs*. */
	if (chmod(path, 0666) < 0)
		goto err_unlink;
	if (listen(srv->fd, 64) < 0)
		goto err_unlink;
	return 0;
err_unlink:
	ret = -errno;
	unlink(path);
	errno = -ret;
err:
	ret = -errno;
	close(srv->fd);
	srv->fd = -1;
	return ret;
}

int ipd_ctl_init(struct ipd_dev *dev)
{
	struct ipd_ctl_server *srv;
	int ret;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->rxbuf = malloc(IPD_CTL_MAX_MSG);
	if (!srv->rxbuf) {
		ret = -ENOMEM;
		goto err_srv;
	}
	srv->dev = dev;
	ret = ctl_listen(srv, dev->cfg->socket_path);
	if (ret) {
		ipd_err("control socket %s: %s", dev->cfg->socket_path,
			strerror(-ret));
		goto err_buf;
	}
	ev_io_init(&srv->listen_w, listen_cb, srv->fd, EV_READ);
	ev_io_start(dev->loop, &srv->listen_w);
	dev->ctl = srv;
	ipd_info("listening on %s", dev->cfg->socket_path);
	return 0;

err_buf:
	free(srv->rxbuf);
err_srv:
	free(srv);
	return ret;
}

void ipd_ctl_fini(struct ipd_dev *dev)
{
	struct ipd_ctl_server *srv = dev->ctl;
	struct ipd_client *c;

	if (!srv)
		return;
	ev_io_stop(dev->loop, &srv->listen_w);
	close(srv->fd);
	while ((c = TAILQ_FIRST(&dev->clients)))
		client_disconnect(c);
	if (unlink(dev->cfg->socket_path) < 0 && errno != ENOENT)
		ipd_warn("%s: %s", dev->cfg->socket_path, strerror(errno));
	free(srv->rxbuf);
	free(srv);
	dev->ctl = NULL;
}
