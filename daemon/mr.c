// SPDX-License-Identifier: MIT
/*
 * Memory regions (docs/design.md "Memory registration: the memfd arena").
 * The client sends its arena memfd (and the files of shared mappings it
 * left in place) and the page runs that back [addr, addr + length); the
 * daemon maps the runs back to back into one
 * reserved range, so that an MR is one daemon pointer and the passive side
 * of a transfer needs no help from its application.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "addr.h"
#include "objects.h"

#define IPD_ACCESS_MR_VALID                                                \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |                \
	 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC |               \
	 IBV_ACCESS_MW_BIND | IBV_ACCESS_ZERO_BASED | IBV_ACCESS_HUGETLB |  \
	 IBV_ACCESS_OPTIONAL_RANGE)
#define IPD_ACCESS_QP_VALID                                                \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |                \
	 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC |               \
	 IBV_ACCESS_MW_BIND)

int ipd_access_flags_check(uint32_t access, bool is_mr)
{
	if (access & ~(uint32_t)(is_mr ? IPD_ACCESS_MR_VALID :
					 IPD_ACCESS_QP_VALID))
		return -EINVAL;
	/* Verbs spec (ibv_reg_mr): remote write or remote atomic access
	 * requires local write access. */
	if (is_mr &&
	    (access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) &&
	    !(access & IBV_ACCESS_LOCAL_WRITE))
		return -EINVAL;
	return 0;
}

static uint64_t page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint8_t mr_key_byte(void)
{
	uint8_t b = 0;

	/* Unpredictable keys make a stale or guessed R_Key unlikely to hit
	 * a new MR that reuses the handle. */
	if (getrandom(&b, 1, GRND_NONBLOCK) != 1)
		b = (uint8_t)(uintptr_t)&b;
	return b;
}

struct ipd_mr *ipd_mr_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_mr *mr = ipd_table_get(&c->dev->mrs, handle);

	return mr && mr->client == c ? mr : NULL;
}

struct ipd_mr *ipd_mr_lookup(struct ipd_dev *dev, uint32_t key)
{
	struct ipd_mr *mr = ipd_table_get(&dev->mrs, key >> 8);

	return mr && mr->lkey == key ? mr : NULL;
}

/*
 * The application's own files cannot be sealed: a client that truncates
 * one under an MR makes the daemon's next access to those pages SIGBUS.
 * Hardware keeps the pinned pages (DMA lands in orphaned pages); here the
 * handler puts an anonymous page in place of the lost one (writes land
 * there, reads see zeros) and the interrupted copy goes on.  Every access
 * to MR memory is a copy on the event-loop thread (the daemon has no
 * other thread and hands no MR memory to the kernel), so SIGBUS only
 * comes from such a copy, never while the guard table below changes:
 * the handler reads it without a lock.
 */
struct mr_guard {
	uintptr_t start, end; /* a client file's pages in an MR's map */
	uintptr_t align;      /* that file's page size */
	struct ipd_mr *mr;
};

static struct mr_guard *guards;
static size_t n_guards, cap_guards;
static struct sigaction guard_prev;
static bool guard_installed;

static void mr_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	(void)sig;
	(void)uc;
	for (size_t i = 0; si->si_code == BUS_ADRERR && i < n_guards; i++) {
		const struct mr_guard *g = &guards[i];
		uintptr_t pg = a & ~(g->align - 1);

		if (a < g->start || a >= g->end)
			continue;
		/* Over a hugetlb range this needs the huge page's alignment
		 * and size, which pg and g->align have. */
		if (pg < g->start || pg + g->align > g->end ||
		    mmap((void *)pg, g->align, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			 0) == MAP_FAILED)
			break;
		g->mr->truncated_faults++;
		g->mr->client->dev->cnt.mr_truncated_faults++;
		return;
	}
	/* Not ours: the access faults again, under the previous handler
	 * (the default, a sanitizer's, or the backtrace printer that
	 * libinfinipath installs when libfabric loads it); a signal someone
	 * sent is sent again, to be delivered on return. */
	sigaction(SIGBUS, &guard_prev, NULL);
	if (si->si_code <= 0)
		raise(SIGBUS);
}

int ipd_mr_guard_init(void)
{
	struct sigaction sa = {.sa_sigaction = mr_sigbus,
			       .sa_flags = SA_SIGINFO};

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &guard_prev) < 0)
		return -errno;
	guard_installed = true;
	return 0;
}

void ipd_mr_guard_fini(void)
{
	if (guard_installed)
		sigaction(SIGBUS, &guard_prev, NULL);
	guard_installed = false;
	free(guards);
	guards = NULL;
	n_guards = cap_guards = 0;
}

/* Room for n more guards, before the table is used. */
static int mr_guard_reserve(size_t n)
{
	struct mr_guard *g;
	size_t cap = cap_guards ? cap_guards : 16;

	if (cap_guards - n_guards >= n)
		return 0;
	while (cap - n_guards < n)
		cap *= 2;
	g = realloc(guards, cap * sizeof(*g));
	if (!g)
		return -ENOMEM;
	guards = g;
	cap_guards = cap;
	return 0;
}

/* Guard [p, p+len) of mr, a client file with pages of align bytes;
 * room was reserved.  Joins the previous guard where it continues it. */
static void mr_guard_add(struct ipd_mr *mr, uint8_t *p, size_t len,
			 uint64_t align)
{
	struct mr_guard *last = n_guards ? &guards[n_guards - 1] : NULL;

	if (last && last->mr == mr && last->end == (uintptr_t)p &&
	    last->align == align) {
		last->end += len;
		return;
	}
	guards[n_guards++] = (struct mr_guard){(uintptr_t)p, (uintptr_t)p + len,
					       (uintptr_t)align, mr};
}

static void mr_guard_remove(struct ipd_mr *mr)
{
	size_t j = 0;

	for (size_t i = 0; i < n_guards; i++)
		if (guards[i].mr != mr)
			guards[j++] = guards[i];
	n_guards = j;
}

/* Say once per MR that its client truncated a file under it. */
static void mr_truncated_note(struct ipd_mr *mr)
{
	if (!mr->truncated_faults || mr->truncated_logged)
		return;
	mr->truncated_logged = true;
	ipd_warn("client %u: MR %u: a registered file was truncated; its "
		 "lost pages now read as zeros (%d so far)",
		 mr->client->id, mr->handle, (int)mr->truncated_faults);
}

void *ipd_mr_ptr(struct ipd_mr *mr, uint64_t iova, uint64_t len,
		 unsigned int rw)
{
	uint64_t off;

	mr_truncated_note(mr);

	/* The kernel stubs' DMA MR: addresses in the device's own form
	 * (addr.c, docs/address-forms.md). */
	if (ipd_mr_is_kmem(mr))
		return ipd_kmem_ptr(mr, iova, len, rw);
	if (iova < mr->iova)
		return NULL;
	off = iova - mr->iova;
	if (off > mr->length || len > mr->length - off)
		return NULL;
	return mr->map + mr->page_off + off;
}

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
/* The largest page a run's file may need its mapping aligned to. */
#define IPD_MR_MAX_ALIGN (1ull << 30)

/* What the daemon knows of one attached file. */
struct mr_file {
	uint64_t size;
	uint64_t align;		/* huge page size on hugetlbfs, else page */
	bool writable;		/* opened for writing */
};

static int mr_file_probe(int fd, bool arena, struct mr_file *f)
{
	struct statfs sfs;
	struct stat st;
	int fl;

	/* A client that truncated its arena under a mapped MR would make
	 * the daemon's accesses SIGBUS: forbid shrinking from now on.  This
	 * needs an arena created with MFD_ALLOW_SEALING (an unsealable one
	 * is refused); holes punched later read as zeros and are harmless.
	 * The application's own files cannot be sealed (see the design's
	 * Limits). */
	if (arena && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return errno == EPERM ? -EINVAL : -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return -errno;
	/* The page holding EOF can be mapped whole (reads past EOF as 0). */
	f->size = ((uint64_t)st.st_size + page_size() - 1) & ~(page_size() - 1);
	f->writable = (fl & O_ACCMODE) == O_RDWR;
	f->align = page_size();
	if (sfs.f_type == HUGETLBFS_MAGIC && (uint64_t)sfs.f_bsize > f->align) {
		if ((uint64_t)sfs.f_bsize > IPD_MR_MAX_ALIGN)
			return -EINVAL;
		f->align = (uint64_t)sfs.f_bsize;
	}
	return 0;
}

/* Check the runs against the span of [addr, addr+length) from map_start
 * and the sizes of their files; returns the number of pages, or 0 with
 * *err set. */
static uint64_t mr_check_runs(const Ipd__RegMr *m, const int *fds, size_t nfds,
			      struct mr_file *files, int *err)
{
	uint64_t pg = page_size(), first, last, npages = 0;
	bool writes = m->access & (IBV_ACCESS_LOCAL_WRITE |
				   IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_ATOMIC |
				   IBV_ACCESS_MW_BIND);

	*err = -EINVAL;
	if (m->length == 0 || m->addr + m->length + pg - 1 < m->addr)
		return 0;
	first = m->map_start ? m->map_start : m->addr & ~(pg - 1);
	last = (m->addr + m->length + pg - 1) & ~(pg - 1);
	if (first % pg || first > m->addr ||
	    m->addr - first >= IPD_MR_MAX_ALIGN)
		return 0;
	for (size_t i = 0; i < nfds; i++) {
		*err = mr_file_probe(fds[i], i == 0, &files[i]);
		if (*err)
			return 0;
		*err = -EINVAL;
	}
	for (size_t i = 0; i < m->n_runs; i++) {
		const Ipd__PageRun *r = m->runs[i];
		const struct mr_file *f;

		if (r->fd >= nfds || r->npages == 0 ||
		    r->npages > (last - first) / pg + IPD_MR_MAX_ALIGN / pg)
			return 0;
		f = &files[r->fd];
		if (r->file_offset % f->align)
			return 0;
		/* Writing through a read-only file: what pinning the pages
		 * for writing answers. */
		if (writes && !f->writable) {
			*err = -EFAULT;
			return 0;
		}
		/* Mapping past EOF would make daemon accesses SIGBUS. */
		if (r->file_offset > f->size ||
		    r->npages * pg > f->size - r->file_offset)
			return 0;
		npages += r->npages;
	}
	/* The runs cover the span, plus at most a huge page's rounding. */
	if (npages < (last - first) / pg ||
	    npages - (last - first) / pg >= IPD_MR_MAX_ALIGN / pg)
		return 0;
	return npages;
}

/* Reserve one range and map every run into it, in order.  The range has
 * map_start's offset within the largest alignment any file needs, so that
 * hugetlb runs land on huge page boundaries as they do in the client. */
static int mr_map(struct ipd_mr *mr, const Ipd__RegMr *m, const int *fds,
		  const struct mr_file *files, uint64_t npages)
{
	uint64_t pg = page_size(), align = pg, first, lead;
	uint8_t *raw, *base, *p;
	size_t raw_len;

	for (size_t i = 0; i < m->n_runs; i++)
		if (files[m->runs[i]->fd].align > align)
			align = files[m->runs[i]->fd].align;
	/* Guards for the runs of the client's files (files[0] is the
	 * sealed arena). */
	if (mr_guard_reserve(m->n_runs))
		return -ENOMEM;
	first = m->map_start ? m->map_start : m->addr & ~(pg - 1);
	mr->map_len = npages * pg;
	raw_len = mr->map_len + align;
	raw = mmap(NULL, raw_len, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return -ENOMEM;
	lead = (first % align - (uintptr_t)raw % align + align) % align;
	base = raw + lead;
	if (lead)
		munmap(raw, lead);
	if (raw_len - lead > mr->map_len)
		munmap(base + mr->map_len, raw_len - lead - mr->map_len);
	p = base;
	for (size_t i = 0; i < m->n_runs; i++) {
		const Ipd__PageRun *r = m->runs[i];
		size_t len = r->npages * pg;
		int prot = PROT_READ |
			   (files[r->fd].writable ? PROT_WRITE : 0);

		if (mmap(p, len, prot, MAP_SHARED | MAP_FIXED, fds[r->fd],
			 (off_t)r->file_offset) == MAP_FAILED) {
			mr_guard_remove(mr);
			munmap(base, mr->map_len);
			return -ENOMEM;
		}
		if (r->fd)
			mr_guard_add(mr, p, len, files[r->fd].align);
		p += len;
	}
	mr->map = base;
	mr->page_off = (uint32_t)(m->addr - first);
	return 0;
}

static int mr_check(struct ipd_req_ctx *ctx, const Ipd__RegMr *m)
{
	const struct ipd_config *cfg = ctx->client->dev->cfg;

	if (ipd_access_flags_check(m->access, true))
		return ipd_req_fail(ctx, EINVAL, "reg_mr: bad access flags 0x%x",
				    m->access);
	if (m->length == 0 || m->length > cfg->max_mr_size)
		return ipd_req_fail(ctx, EINVAL,
				    "reg_mr: length %llu not in 1..%llu",
				    (unsigned long long)m->length,
				    cfg->max_mr_size);
	if (ctx->n_in_fds < 1 || ctx->n_in_fds > IPD_CTL_MAX_FDS)
		return ipd_req_fail(ctx, EINVAL,
				    "reg_mr: expected the arena memfd");
	for (size_t i = 0; i < (size_t)ctx->n_in_fds; i++)
		if (ctx->in_fds[i] < 0)
			return ipd_req_fail(ctx, EINVAL,
					    "reg_mr: descriptor %zu missing", i);
	return 0;
}

int ipd_handle_reg_mr(struct ipd_req_ctx *ctx)
{
	const Ipd__RegMr *m = ctx->req->reg_mr;
	struct ipd_dev *dev = ctx->client->dev;
	struct mr_file files[IPD_CTL_MAX_FDS];
	Ipd__RegMrResp *r;
	struct ipd_mr *mr;
	struct ipd_pd *pd;
	uint64_t npages;
	int err;

	pd = ipd_pd_get(ctx->client, m->pd);
	if (!pd)
		return ipd_req_fail(ctx, EINVAL, "reg_mr: no PD %u", m->pd);
	err = mr_check(ctx, m);
	if (err)
		return err;
	npages = mr_check_runs(m, ctx->in_fds, (size_t)ctx->n_in_fds, files,
			       &err);
	if (!npages)
		return ipd_req_fail(ctx, -err,
				    "reg_mr: page runs do not map the range");
	r = ipd_req_alloc(ctx, sizeof(*r));
	mr = calloc(1, sizeof(*mr));
	if (!r || !mr)
		goto err_nomem;
	err = mr_map(mr, m, ctx->in_fds, files, npages);
	if (err)
		goto err_free;
	mr->handle = ipd_table_insert(&dev->mrs, mr);
	if (!mr->handle)
		goto err_unmap;
	mr->lkey = mr->rkey = mr->handle << 8 | mr_key_byte();
	mr->client = ctx->client;
	mr->pd = pd;
	mr->access = m->access;
	mr->addr = m->addr;
	mr->iova = m->iova;
	mr->length = m->length;
	pd->refcnt++;

	ipd__reg_mr_resp__init(r);
	r->handle = mr->handle;
	r->lkey = mr->lkey;
	r->rkey = mr->rkey;
	ctx->resp->op_case = IPD__RESPONSE__OP_REG_MR;
	ctx->resp->reg_mr = r;
	return 0;

err_unmap:
	mr_guard_remove(mr);
	munmap(mr->map, mr->map_len);
	free(mr);
	return ipd_req_fail(ctx, ENOMEM, "reg_mr: too many MRs");
err_free:
	free(mr);
	return ipd_req_fail(ctx, -err, "reg_mr: cannot map the arena");
err_nomem:
	free(mr);
	return ipd_req_fail(ctx, ENOMEM, "reg_mr: out of memory");
}

int ipd_mr_destroy(struct ipd_mr *mr)
{
	/* The engine holds references while an operation uses the MR. */
	if (mr->refcnt)
		return -EBUSY;
	ipd_table_remove(&mr->client->dev->mrs, mr->handle);
	mr->pd->refcnt--;
	if (ipd_mr_is_kmem(mr)) {
		ipd_kmem_destroy(mr);
		return 0;
	}
	/* The replacement pages lie in the map: one munmap takes all. */
	mr_truncated_note(mr);
	mr_guard_remove(mr);
	munmap(mr->map, mr->map_len);
	free(mr);
	return 0;
}
