// SPDX-License-Identifier: MIT
/*
 * Kernel (stub) memory and the address forms of docs/address-forms.md.
 *
 * A kernel-driver stub attaches its "physical memory" (a memfd) and, for a
 * DMA-capable device, its IOMMU page table.  The daemon answers with one
 * DMA MR covering all of it, the model of ib_get_dma_mr(): its keys are
 * checked like any MR's (PD, access), but an address is not an offset
 * into a registered range, it is interpreted in the device's own form:
 *
 *   DMA-capable (bit 1): an IOVA, translated by the device's IOMMU
 *                        (iommu.c); anything else is the wrong form.
 *   software (bit 0):    a kernel VA in the direct map (lowmem), or the
 *                        page form of a page without a kernel mapping,
 *                        reached through a small kmap window.
 *
 * Every resolution is bounds checked; NULL makes the engine answer with
 * the remote access NAK (AETH syndrome 0x62, IBA 9.7.5.1: NAK code 2),
 * or a local protection error for the requester's own SGEs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "objects.h"

/* Pages in the daemon's kmap window: more than one operation ever holds
 * at once (a WRITE is checked, then copied, packet by packet). */
#define KMAP_SLOTS 16
/* Bounds on what a stub may attach (daemon memory and address space). */
#define KMEM_MAX_PAGES (1ull << 20)   /* 4 GiB of 4 KiB pages */

#define KMEM_ACCESS                                                         \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |                 \
	 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC)

struct ipd_kmem {
	struct ipd_mr mr;          /* first: the table holds &kmem->mr */
	bool dma_capable;
	uint64_t kva_base;
	uint64_t phys_pages, low_pages;
	int phys_fd;
	uint8_t *lowmap;           /* the direct map: phys [0, low_pages) */
	uint8_t *kmap_win;         /* KMAP_SLOTS pages */
	unsigned int kmap_next;
	struct ipd_iommu iommu;
};

/* One device per daemon process (main.c), so these are per device. */
static struct ipd_addr_counters addr_cnt;

const struct ipd_addr_counters *ipd_addr_counters(void)
{
	return &addr_cnt;
}

static uint64_t pg(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static struct ipd_kmem *to_kmem(struct ipd_mr *mr)
{
	return (struct ipd_kmem *)(void *)((char *)mr -
					   offsetof(struct ipd_kmem, mr));
}

/*
 * kmap: map one physical page into the next window slot.  The slot's
 * previous page is unmapped by the same call (kunmap happens when the
 * window wraps, after the operation that used it finished: the engine
 * uses a resolved pointer at once and never keeps it across packets).
 */
static void *kmem_kmap(struct ipd_kmem *k, uint64_t pfn)
{
	uint8_t *slot = k->kmap_win + (k->kmap_next++ % KMAP_SLOTS) * pg();

	if (mmap(slot, pg(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 k->phys_fd, (off_t)(pfn * pg())) == MAP_FAILED)
		return NULL;
	addr_cnt.addr_kmaps++;
	return slot;
}

/* Software device: direct map, or kmap of a page-form address. */
static void *kmem_sw_ptr(struct ipd_kmem *k, enum ipd_addr_form form,
			 uint64_t addr, uint64_t len)
{
	uint64_t low_len = k->low_pages * pg(), phys, pfn, off;
	uint8_t *p;

	if (form == IPD_FORM_KVA) {
		off = addr - k->kva_base;
		if (len > low_len - off) {
			addr_cnt.addr_out_of_bounds++;
			return NULL;
		}
		return k->lowmap + off;
	}
	phys = addr & ~IPD_PAGE_TAG_MASK;
	pfn = phys / pg();
	off = phys % pg();
	/* A page-form address names one page: a range may not leave it. */
	if (pfn >= k->phys_pages || len > pg() - off) {
		addr_cnt.addr_out_of_bounds++;
		return NULL;
	}
	if (pfn < k->low_pages)
		return k->lowmap + phys;
	p = kmem_kmap(k, pfn);
	return p ? p + off : NULL;
}

void *ipd_kmem_ptr(struct ipd_mr *mr, uint64_t addr, uint64_t len,
		   unsigned int rw)
{
	struct ipd_kmem *k = to_kmem(mr);
	enum ipd_addr_form form;
	void *p;

	if (addr + len < addr) {
		addr_cnt.addr_out_of_bounds++;
		return NULL;
	}
	form = ipd_addr_form_of(addr, k->kva_base, k->low_pages * pg(),
				k->dma_capable ? k->iommu.npages * pg() : 0);
	if (k->dma_capable) {
		if (form != IPD_FORM_IOVA) {
			addr_cnt.addr_wrong_form++;
			return NULL;
		}
		p = ipd_iommu_ptr(&k->iommu, addr, len, rw);
		if (!p)
			addr_cnt.addr_iommu_fault++;
		return p;
	}
	if (form != IPD_FORM_KVA && form != IPD_FORM_PAGE) {
		/* An IOVA (or garbage) sent to a device without an IOMMU. */
		addr_cnt.addr_wrong_form++;
		return NULL;
	}
	return kmem_sw_ptr(k, form, addr, len);
}

static void kmem_free(struct ipd_kmem *k)
{
	ipd_iommu_fini(&k->iommu);
	if (k->kmap_win)
		munmap(k->kmap_win, KMAP_SLOTS * pg());
	if (k->lowmap && k->low_pages)
		munmap(k->lowmap, k->low_pages * pg());
	if (k->phys_fd >= 0)
		close(k->phys_fd);
	free(k);
}

void ipd_kmem_destroy(struct ipd_mr *mr)
{
	kmem_free(to_kmem(mr));
}

static int kmem_check(struct ipd_req_ctx *ctx, const Ipd__KstubAttach *m)
{
	struct stat st;

	if (ctx->n_in_fds != 2 || ctx->in_fds[0] < 0 || ctx->in_fds[1] < 0)
		return ipd_req_fail(ctx, EINVAL, "kstub_attach: expected the "
				    "physical memory and page table memfds");
	if (!m->phys_pages || m->phys_pages > KMEM_MAX_PAGES ||
	    m->lowmem_pages > m->phys_pages ||
	    m->iova_pages > KMEM_MAX_PAGES)
		return ipd_req_fail(ctx, EINVAL, "kstub_attach: bad sizes");
	/* The direct map must not overlap the other two forms. */
	if (m->kva_base % pg() || m->kva_base < IPD_IOVA_BASE + KMEM_MAX_PAGES * pg() ||
	    (m->kva_base & IPD_PAGE_TAG_MASK) ||
	    m->kva_base + m->lowmem_pages * pg() < m->kva_base)
		return ipd_req_fail(ctx, EINVAL, "kstub_attach: bad kva_base");
	/* A memory that could shrink under the daemon's mappings would make
	 * it SIGBUS: both must be sealable memfds, sealed against it. */
	if (fcntl(ctx->in_fds[0], F_ADD_SEALS, F_SEAL_SHRINK) < 0 ||
	    fcntl(ctx->in_fds[1], F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return ipd_req_fail(ctx, EINVAL, "kstub_attach: memory and page "
				    "table must be sealable memfds");
	if (fstat(ctx->in_fds[0], &st) < 0 ||
	    (uint64_t)st.st_size < m->phys_pages * pg())
		return ipd_req_fail(ctx, EINVAL,
				    "kstub_attach: physical memory too small");
	return 0;
}

static int kmem_map(struct ipd_kmem *k, const Ipd__KstubAttach *m, int pt_fd)
{
	k->kmap_win = mmap(NULL, KMAP_SLOTS * pg(), PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (k->kmap_win == MAP_FAILED) {
		k->kmap_win = NULL;
		return -ENOMEM;
	}
	if (k->low_pages) {
		k->lowmap = mmap(NULL, k->low_pages * pg(),
				 PROT_READ | PROT_WRITE, MAP_SHARED,
				 k->phys_fd, 0);
		if (k->lowmap == MAP_FAILED) {
			k->lowmap = NULL;
			return -ENOMEM;
		}
	}
	if (!k->dma_capable)
		return 0;
	return ipd_iommu_init(&k->iommu, pt_fd, m->iova_pages ? m->iova_pages : 1,
			      k->phys_fd, k->phys_pages);
}

static uint8_t key_byte(void)
{
	uint8_t b = 0;

	if (getrandom(&b, 1, GRND_NONBLOCK) != 1)
		b = (uint8_t)(uintptr_t)&b;
	return b;
}

int ipd_handle_kstub_attach(struct ipd_req_ctx *ctx)
{
	const Ipd__KstubAttach *m = ctx->req->kstub_attach;
	struct ipd_dev *dev = ctx->client->dev;
	Ipd__KstubAttachResp *r;
	struct ipd_kmem *k;
	struct ipd_pd *pd;
	int err;

	pd = ipd_pd_get(ctx->client, m->pd);
	if (!pd)
		return ipd_req_fail(ctx, EINVAL, "kstub_attach: no PD %u", m->pd);
	err = kmem_check(ctx, m);
	if (err)
		return err;
	r = ipd_req_alloc(ctx, sizeof(*r));
	k = calloc(1, sizeof(*k));
	if (!r || !k) {
		free(k);
		return ipd_req_fail(ctx, ENOMEM, "kstub_attach: out of memory");
	}
	k->dma_capable = dev->cfg->dma_capable;
	k->kva_base = m->kva_base;
	k->phys_pages = m->phys_pages;
	k->low_pages = m->lowmem_pages;
	k->phys_fd = ctx->in_fds[0];
	ctx->in_fds[0] = -1;             /* kept */
	err = kmem_map(k, m, ctx->in_fds[1]);
	if (err) {
		kmem_free(k);
		return ipd_req_fail(ctx, -err, "kstub_attach: cannot map: %s",
				    strerror(-err));
	}
	k->mr.handle = ipd_table_insert(&dev->mrs, &k->mr);
	if (!k->mr.handle) {
		kmem_free(k);
		return ipd_req_fail(ctx, ENOMEM, "kstub_attach: too many MRs");
	}
	k->mr.lkey = k->mr.rkey = k->mr.handle << 8 | key_byte();
	k->mr.client = ctx->client;
	k->mr.pd = pd;
	k->mr.access = KMEM_ACCESS;
	k->mr.length = k->phys_pages * pg();
	pd->refcnt++;

	ipd__kstub_attach_resp__init(r);
	r->mr = k->mr.handle;
	r->lkey = k->mr.lkey;
	r->rkey = k->mr.rkey;
	r->dma_capable = k->dma_capable;
	r->iova_base = IPD_IOVA_BASE;
	r->page_tag = IPD_PAGE_TAG;
	ctx->resp->op_case = IPD__RESPONSE__OP_KSTUB_ATTACH;
	ctx->resp->kstub_attach = r;
	ipd_info("client %u: kernel memory attached (%llu pages, %llu lowmem, "
		 "%s)", ctx->client->id, (unsigned long long)k->phys_pages,
		 (unsigned long long)k->low_pages,
		 k->dma_capable ? "IOMMU" : "software addressing");
	return 0;
}

int ipd_handle_iommu_inval(struct ipd_req_ctx *ctx)
{
	const Ipd__IommuInval *m = ctx->req->iommu_inval;
	struct ipd_mr *mr = ipd_mr_get(ctx->client, m->mr);
	struct ipd_kmem *k;
	int err;

	if (!mr || !ipd_mr_is_kmem(mr))
		return ipd_req_fail(ctx, EINVAL, "iommu_inval: no DMA MR %u",
				    m->mr);
	k = to_kmem(mr);
	if (!k->dma_capable)
		return ipd_req_fail(ctx, EOPNOTSUPP,
				    "iommu_inval: the device has no IOMMU");
	err = ipd_iommu_inval(&k->iommu, m->first_page, m->npages);
	if (err)
		return ipd_req_fail(ctx, -err, "iommu_inval: pages %llu+%llu",
				    (unsigned long long)m->first_page,
				    (unsigned long long)m->npages);
	addr_cnt.addr_iotlb_invals++;
	return 0;
}
