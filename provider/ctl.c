// SPDX-License-Identifier: MIT
/*
 * The provider's side of the control socket: finding and connecting to the
 * daemon, HELLO, and one request/response at a time per context (verbs may
 * be called from many threads on one context).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipathd.h"

/*
 * Where the daemon listens: $IPATHD_SOCKET, else what the daemon wrote in
 * the device's sysfs directory, else the default path.
 */
static void socket_path(const char *sysfs_dir, char *buf, size_t cap)
{
	const char *env = getenv(IPD_ENV_SOCKET);
	char file[IBV_SYSFS_PATH_MAX + 32];
	FILE *f;

	if (env && *env) {
		snprintf(buf, cap, "%s", env);
		return;
	}
	snprintf(buf, cap, "%s", IPD_DEFAULT_SOCKET);
	if (!sysfs_dir || !*sysfs_dir)
		return;
	snprintf(file, sizeof(file), "%s/ipathd_socket", sysfs_dir);
	f = fopen(file, "re");
	if (!f)
		return;
	if (fgets(file, sizeof(file), f)) {
		file[strcspn(file, "\r\n")] = 0;
		if (file[0])
			snprintf(buf, cap, "%s", file);
	}
	fclose(f);
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

void ipd_ctl_free(Ipd__Response *resp)
{
	if (resp)
		ipd__response__free_unpacked(resp, NULL);
}

static void close_fds(int *fds, int *n)
{
	while (*n > 0)
		close(fds[--(*n)]);
}

int ipd_ctl_request(struct ipd_context *ctx, Ipd__Request *req,
		    const int *fds, int nfds, Ipd__Response **resp,
		    int *rfds, int *nrfds, int maxrfds)
{
	int tmp[IPD_CTL_MAX_FDS], ntmp = 0;
	Ipd__Response *r;
	int err = 0;

	if (!rfds) {
		rfds = tmp;
		nrfds = &ntmp;
		maxrfds = IPD_CTL_MAX_FDS;
	}
	*nrfds = 0;
	/* A dead device answers nothing (docs/design.md "Daemon failure"). */
	if (ipd_fatal_dead(ctx))
		return EIO;
	pthread_mutex_lock(&ctx->ctl_lock);
	if (ctx->sock < 0) {
		pthread_mutex_unlock(&ctx->ctl_lock);
		return ENOTCONN;
	}
	r = ipd_ctl_call(ctx->sock, req, fds, nfds, rfds, nrfds, maxrfds);
	if (!r)
		err = errno ? errno : EIO;
	pthread_mutex_unlock(&ctx->ctl_lock);
	if (err == EPIPE || err == ECONNRESET) {
		/* The daemon went away under this request. */
		ipd_fatal_mark(ctx);
		return EIO;
	}
	if (!err && r->err) {
		err = r->err > 0 ? r->err : EIO;
		if (getenv("IPATHD_DEBUG"))
			fprintf(stderr, IPD_PFX "request %d failed: %s (%s)\n",
				(int)req->op_case, strerror(err),
				r->msg ? r->msg : "");
	}
	if (err || rfds == tmp)
		close_fds(rfds, nrfds);
	if (err) {
		ipd_ctl_free(r);
		return err;
	}
	if (resp)
		*resp = r;
	else
		ipd_ctl_free(r);
	return 0;
}

int ipd_ctl_destroy(struct ipd_context *ctx, Ipd__ObjType type,
		    uint32_t handle)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Destroy d = IPD__DESTROY__INIT;
	int err;

	d.type = type;
	d.handle = handle;
	req.op_case = IPD__REQUEST__OP_DESTROY;
	req.destroy = &d;
	err = ipd_ctl_request(ctx, &req, NULL, 0, NULL, NULL, NULL, 0);
	/* The object died with the daemon: destroying it frees our side. */
	if (err && ipd_fatal_dead(ctx))
		err = 0;
	return err;
}

/*
 * HELLO: hand the daemon the write end of the async event pipe; get the
 * client page and the doorbell back.
 */
static int ctl_hello(struct ipd_context *ctx, int *async_rd)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Hello hello = IPD__HELLO__INIT;
	Ipd__Response *resp;
	int pfd[2], rfds[2], nrfds, err;
	void *page;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return errno;
	hello.abi_version = IPD_CTL_ABI_VERSION;
	hello.client_name = program_invocation_short_name;
	req.op_case = IPD__REQUEST__OP_HELLO;
	req.hello = &hello;
	err = ipd_ctl_request(ctx, &req, &pfd[1], 1, &resp, rfds, &nrfds, 2);
	if (err)
		goto err_pipe;
	if (nrfds != 2 || resp->op_case != IPD__RESPONSE__OP_HELLO) {
		err = EPROTO;
		goto err_resp;
	}
	ctx->page_len = (size_t)sysconf(_SC_PAGESIZE);
	page = mmap(NULL, ctx->page_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		    rfds[0], 0);
	if (page == MAP_FAILED) {
		err = errno;
		goto err_resp;
	}
	close(rfds[0]);
	ctx->page = page;
	ctx->doorbell_fd = rfds[1];
	ctx->client_id = resp->hello->client_id;
	ipd_ctl_free(resp);
	*async_rd = pfd[0];
	/* Kept for IBV_EVENT_DEVICE_FATAL when the daemon's end is gone. */
	ctx->async_wr = pfd[1];
	return 0;

err_resp:
	close_fds(rfds, &nrfds);
	ipd_ctl_free(resp);
err_pipe:
	close(pfd[0]);
	close(pfd[1]);
	return err;
}

int ipd_ctl_connect(struct ipd_context *ctx, const char *sysfs_dir)
{
	char path[IBV_SYSFS_PATH_MAX + 32];
	int fd, err, async_rd = -1;

	ctx->sock = -1;
	ctx->doorbell_fd = -1;
	ctx->async_wr = -1;
	ctx->mon_stop = -1;
	ctx->pid = getpid();
	pthread_mutex_init(&ctx->ctl_lock, NULL);
	socket_path(sysfs_dir, path, sizeof(path));
	fd = connect_socket(path);
	if (fd < 0) {
		fprintf(stderr, IPD_PFX "cannot connect to the daemon at %s: %s\n",
			path, strerror(-fd));
		return -fd;
	}
	ctx->sock = fd;
	err = ctl_hello(ctx, &async_rd);
	if (err) {
		fprintf(stderr, IPD_PFX "HELLO to the daemon at %s failed: %s\n",
			path, strerror(err));
		close(ctx->sock);
		ctx->sock = -1;
		return err;
	}
	ctx->vctx.context.async_fd = async_rd;
	err = ipd_fatal_start(ctx);
	if (err) {
		fprintf(stderr, IPD_PFX "cannot start the daemon monitor: %s\n",
			strerror(err));
		ipd_ctl_disconnect(ctx);
		close(async_rd);
		ctx->vctx.context.async_fd = -1;
		return err;
	}
	return 0;
}

void ipd_ctl_disconnect(struct ipd_context *ctx)
{
	ipd_fatal_stop(ctx);
	if (ctx->async_wr >= 0)
		close(ctx->async_wr);
	ctx->async_wr = -1;
	if (ctx->page)
		munmap(ctx->page, ctx->page_len);
	ctx->page = NULL;
	if (ctx->doorbell_fd >= 0)
		close(ctx->doorbell_fd);
	ctx->doorbell_fd = -1;
	if (ctx->sock >= 0)
		close(ctx->sock);
	ctx->sock = -1;
	pthread_mutex_destroy(&ctx->ctl_lock);
}

int ipd_uring_map(struct ipd_uring *r, int fd, uint32_t size,
		  uint32_t slot_size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *p;

	if (!size || (size & (size - 1)) || slot_size < IPD_CACHELINE ||
	    slot_size % IPD_CACHELINE) {
		close(fd);
		return EPROTO;
	}
	r->map_len = (ipd_ring_bytes(size, slot_size) + pg - 1) & ~(pg - 1);
	p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return errno;
	r->hdr = p;
	r->size = size;
	r->slot_size = slot_size;
	pthread_spin_init(&r->lock, PTHREAD_PROCESS_PRIVATE);
	return 0;
}

void ipd_uring_unmap(struct ipd_uring *r)
{
	if (!r->hdr)
		return;
	munmap(r->hdr, r->map_len);
	r->hdr = NULL;
	pthread_spin_destroy(&r->lock);
}
