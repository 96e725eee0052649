// SPDX-License-Identifier: MIT
/*
 * The stubs' side of the control socket (proto/ipathd_ctl.proto): the same
 * requests the verbs provider sends (HELLO, ALLOC_PD, CREATE_CQ/QP,
 * MODIFY_QP, DESTROY, STATUS) plus KSTUB_ATTACH, which hands the daemon
 * the kernel's physical memory and IOMMU page table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kstub_priv.h"

static void close_fds(int *fds, int n)
{
	while (n-- > 0)
		if (fds[n] >= 0)
			close(fds[n]);
}

/* One request, one response; NULL with errno set on any failure (the
 * daemon's err included).  Descriptors of a failed call are closed. */
Ipd__Response *kstub_call(struct ib_device *dev, Ipd__Request *req,
			  const int *fds, int nfds, int *rfds, int *nrfds,
			  int maxrfds)
{
	int tmp[IPD_CTL_MAX_FDS], ntmp = 0;
	Ipd__Response *r;

	if (!rfds) {
		rfds = tmp;
		nrfds = &ntmp;
		maxrfds = IPD_CTL_MAX_FDS;
	}
	*nrfds = 0;
	r = ipd_ctl_call(dev->sock, req, fds, nfds, rfds, nrfds, maxrfds);
	if (!r) {
		if (!errno)
			errno = EIO;
		return NULL;
	}
	if (r->err) {
		if (getenv("KSTUB_DEBUG"))
			fprintf(stderr, "kstub: request %d: %s (%s)\n",
				(int)req->op_case, strerror(r->err),
				r->msg ? r->msg : "");
		errno = r->err > 0 ? r->err : EIO;
		close_fds(rfds, *nrfds);
		ipd__response__free_unpacked(r, NULL);
		return NULL;
	}
	if (rfds == tmp)
		close_fds(tmp, ntmp);
	return r;
}

int kstub_ring_map(struct kstub_ring *r, int fd, uint32_t size,
		   uint32_t slot_size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *p;

	if (!size || (size & (size - 1)) || slot_size < IPD_CACHELINE) {
		close(fd);
		return -EPROTO;
	}
	r->map_len = (ipd_ring_bytes(size, slot_size) + pg - 1) & ~(pg - 1);
	p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	r->hdr = p;
	r->size = size;
	r->slot_size = slot_size;
	r->idx = 0;
	return 0;
}

void kstub_ring_unmap(struct kstub_ring *r)
{
	if (r->hdr)
		munmap(r->hdr, r->map_len);
	r->hdr = NULL;
}

int kstub_destroy_obj(struct ib_device *dev, Ipd__ObjType type,
		      uint32_t handle)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Destroy d = IPD__DESTROY__INIT;
	Ipd__Response *r;

	d.type = type;
	d.handle = handle;
	req.op_case = IPD__REQUEST__OP_DESTROY;
	req.destroy = &d;
	r = kstub_call(dev, &req, NULL, 0, NULL, NULL, 0);
	if (!r)
		return -errno;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

static int stub_connect(struct ib_device *dev, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (!path || !*path)
		path = getenv(IPD_ENV_SOCKET);
	if (!path || !*path)
		path = IPD_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	dev->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (dev->sock < 0)
		return -errno;
	if (connect(dev->sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -errno;
	return 0;
}

static int stub_hello(struct ib_device *dev)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Hello hello = IPD__HELLO__INIT;
	Ipd__Response *r;
	int pfd[2], rfds[2], nrfds = 0;
	void *page;

	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	hello.abi_version = IPD_CTL_ABI_VERSION;
	hello.client_name = (char *)"kstub";
	req.op_case = IPD__REQUEST__OP_HELLO;
	req.hello = &hello;
	r = kstub_call(dev, &req, &pfd[1], 1, rfds, &nrfds, 2);
	close(pfd[1]);
	dev->async_rd = pfd[0];
	if (!r)
		return -errno;
	if (nrfds != 2 || r->op_case != IPD__RESPONSE__OP_HELLO) {
		close_fds(rfds, nrfds);
		ipd__response__free_unpacked(r, NULL);
		return -EPROTO;
	}
	ipd__response__free_unpacked(r, NULL);
	dev->page_len = dev->pg;
	page = mmap(NULL, dev->page_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		    rfds[0], 0);
	close(rfds[0]);
	dev->doorbell_fd = rfds[1];
	if (page == MAP_FAILED)
		return -errno;
	dev->page = page;
	return 0;
}

static int stub_alloc_pd(struct ib_device *dev)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__AllocPd a = IPD__ALLOC_PD__INIT;
	Ipd__Response *r;

	req.op_case = IPD__REQUEST__OP_ALLOC_PD;
	req.alloc_pd = &a;
	r = kstub_call(dev, &req, NULL, 0, NULL, NULL, 0);
	if (!r)
		return -errno;
	dev->pd = r->alloc_pd ? r->alloc_pd->handle : 0;
	ipd__response__free_unpacked(r, NULL);
	return dev->pd ? 0 : -EPROTO;
}

static int stub_attach(struct ib_device *dev)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__KstubAttach a = IPD__KSTUB_ATTACH__INIT;
	int fds[2] = { dev->phys_fd, dev->pt_fd };
	Ipd__Response *r;

	a.pd = dev->pd;
	a.phys_pages = dev->phys_pages;
	a.lowmem_pages = dev->low_pages;
	a.iova_pages = dev->iova_pages;
	a.kva_base = IPD_KVA_BASE;
	req.op_case = IPD__REQUEST__OP_KSTUB_ATTACH;
	req.kstub_attach = &a;
	r = kstub_call(dev, &req, fds, 2, NULL, NULL, 0);
	if (!r)
		return -errno;
	if (r->op_case != IPD__RESPONSE__OP_KSTUB_ATTACH ||
	    r->kstub_attach->iova_base != IPD_IOVA_BASE ||
	    r->kstub_attach->page_tag != IPD_PAGE_TAG) {
		ipd__response__free_unpacked(r, NULL);
		return -EPROTO;
	}
	dev->mr = r->kstub_attach->mr;
	dev->lkey = r->kstub_attach->lkey;
	dev->rkey = r->kstub_attach->rkey;
	dev->dma_capable = r->kstub_attach->dma_capable;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

struct ib_device *kstub_open(const struct kstub_opts *opts)
{
	struct kstub_opts o = opts ? *opts : (struct kstub_opts){ 0 };
	struct ib_device *dev = calloc(1, sizeof(*dev));
	int err;

	if (!dev)
		return NULL;
	dev->sock = dev->async_rd = dev->doorbell_fd = -1;
	dev->phys_fd = dev->pt_fd = -1;
	dev->pg = (size_t)sysconf(_SC_PAGESIZE);
	if (!o.phys_pages)
		o.phys_pages = 1024;
	if (!o.lowmem_pages || o.lowmem_pages > o.phys_pages)
		o.lowmem_pages = o.phys_pages / 2;
	if (!o.iova_pages)
		o.iova_pages = o.phys_pages * 2;
	err = stub_connect(dev, o.socket);
	if (!err)
		err = stub_hello(dev);
	if (!err)
		err = stub_alloc_pd(dev);
	if (!err)
		err = kstub_mem_init(dev, o.phys_pages, o.lowmem_pages);
	if (!err)
		err = kstub_dma_init(dev, o.iova_pages);
	if (!err)
		err = stub_attach(dev);
	if (err) {
		fprintf(stderr, "kstub: open: %s\n", strerror(-err));
		kstub_close(dev);
		errno = -err;
		return NULL;
	}
	kstub_dma_select(dev, o.legacy_ipath_ops);
	return dev;
}

void kstub_close(struct ib_device *dev)
{
	if (!dev)
		return;
	/* Closing the socket releases every object the daemon holds. */
	if (dev->sock >= 0)
		close(dev->sock);
	kstub_dma_fini(dev);
	kstub_mem_fini(dev);
	if (dev->page)
		munmap(dev->page, dev->page_len);
	if (dev->doorbell_fd >= 0)
		close(dev->doorbell_fd);
	if (dev->async_rd >= 0)
		close(dev->async_rd);
	free(dev);
}

bool kstub_dma_capable(const struct ib_device *dev)
{
	return dev->dma_capable;
}

const struct ib_dma_mapping_ops *kstub_dma_ops(const struct ib_device *dev)
{
	return dev->ops;
}

uint32_t kstub_lkey(const struct ib_device *dev)
{
	return dev->lkey;
}

uint32_t kstub_rkey(const struct ib_device *dev)
{
	return dev->rkey;
}

static Ipd__Response *stub_status(struct ib_device *dev)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__Status s = IPD__STATUS__INIT;
	Ipd__Response *r;

	req.op_case = IPD__REQUEST__OP_STATUS;
	req.status = &s;
	r = kstub_call(dev, &req, NULL, 0, NULL, NULL, 0);
	if (r && r->op_case != IPD__RESPONSE__OP_STATUS) {
		ipd__response__free_unpacked(r, NULL);
		errno = EPROTO;
		return NULL;
	}
	return r;
}

int kstub_query_gid(struct ib_device *dev, int index, union ibv_gid *gid)
{
	Ipd__Response *r = stub_status(dev);
	int ret = -ENOENT;

	if (!r)
		return -errno;
	if (index >= 0 && (size_t)index < r->status->n_gids &&
	    inet_pton(AF_INET6, r->status->gids[index], gid->raw) == 1)
		ret = 0;
	ipd__response__free_unpacked(r, NULL);
	return ret;
}

int kstub_qp_addr_form(struct ib_device *dev, uint32_t qpn, char *buf,
		       size_t cap)
{
	Ipd__Response *r = stub_status(dev);
	int ret = -ENOENT;

	if (!r)
		return -errno;
	for (size_t i = 0; i < r->status->n_qps; i++) {
		if (r->status->qps[i]->qpn != qpn)
			continue;
		snprintf(buf, cap, "%s", r->status->qps[i]->addr_form);
		ret = 0;
	}
	ipd__response__free_unpacked(r, NULL);
	return ret;
}
