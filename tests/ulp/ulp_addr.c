// SPDX-License-Identifier: MIT
/*
 * Model kernel ULPs on the ipath kernel-driver stubs (include/ipathd/kstub.h,
 * docs/address-forms.md), as two peers:
 *
 *   initiator  an IPoIB-like sender of kmalloc()ed buffers (SEND, SEND with
 *              immediate), then an SRP/iSER-like initiator: it maps
 *              scatter-gather lists of pages (highmem pages included) with
 *              ib_dma_map_sg() and sends their descriptors in a SEND;
 *   target     receives the IPoIB packets, then, like an SRP target, RDMA
 *              READs the data-out list and RDMA WRITEs (the last one with
 *              immediate) the data-in list, runs CMP_SWAP and FETCH_ADD on
 *              the initiator's memory, and answers with a SEND.  Then it
 *              tries the bad addresses the initiator handed it (wrong
 *              form, out of bounds, unmapped, used after unmap), each on a
 *              QP of its own, and expects IBV_WC_REM_ACCESS_ERR.
 *
 * So the RDMA requester is the target and the responder the initiator: the
 * pair <target bit, initiator bit> is the one exercised.  Both sides check
 * that the daemon's status shows that pair for their QP and print
 * "RESULT <name> <digest>" lines of the bytes that arrived, which do not
 * depend on the address forms (tests/ulp/addr_forms.sh compares them).
 *
 *   ulp_addr self [--legacy]             both peers, forked, on one daemon
 *   ulp_addr target --listen PORT        wait for an initiator
 *   ulp_addr initiator --connect IP:PORT
 *   common: --gid-index N (default: the first IPv4-mapped GID)
 *
 * Exit status 0 only when every check passed.  Every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipathd/kstub.h"
#include "ulp_common.h"

#define NQP 8                /* 0: data; 1..7: one per bad-address case */

/* NEG_TO_DEV / NEG_FROM_DEV: a page the initiator mapped DMA_TO_DEVICE
 * (the device may only read it) / DMA_FROM_DEVICE (only write it). */
enum neg_case { NEG_WRONG_FORM, NEG_OOB, NEG_UNMAPPED, NEG_UAF, NEG_TO_DEV,
		NEG_FROM_DEV, NNEG };

struct hello {
	uint32_t magic;
	uint32_t qpn[NQP];
	uint32_t psn;
	uint8_t gid[16];
	uint32_t dma_capable;
};

struct desc {
	uint64_t addr;
	uint32_t len;
	uint32_t pad;
};

/* The SRP_CMD-like message: what the target may touch and how. */
struct srp_cmd {
	uint32_t magic;
	uint32_t rkey;
	uint32_t ndout, ndin;    /* segments (an IOMMU merges pages) */
	struct desc dout[NSG];   /* target READs these */
	struct desc din[NSG];    /* target WRITEs these */
	uint64_t atomic_addr;    /* 8 bytes, initial value ATOMIC_INIT */
	struct desc neg[NNEG];   /* addr 0: case not applicable */
};

struct srp_rsp {
	uint32_t magic;
	uint32_t status;
	uint64_t cas_orig, fadd_orig;
};

struct ctx {
	struct ib_device *dev;
	struct ib_cq *cq;
	struct ib_qp *qp[NQP];
	int sock;
	bool initiator;
	struct hello me, peer;
	int failures;
	const char *role;
};

static void msg(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "[%s] ", c->role);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void check(struct ctx *c, bool ok, const char *what)
{
	msg(c, "%s: %s", ok ? "ok" : "FAIL", what);
	if (!ok)
		c->failures++;
}

/* One completion (any QP), or status -1 on timeout. */
static struct ibv_wc wait_wc(struct ctx *c)
{
	struct ibv_wc wc = { .status = (enum ibv_wc_status)-1 };
	long end = now_ms() + WAIT_MS;

	while (now_ms() < end) {
		if (ib_poll_cq(c->cq, 1, &wc) == 1)
			return wc;
		usleep(50);
	}
	msg(c, "no completion after %d ms", WAIT_MS);
	wc.status = (enum ibv_wc_status)-1;
	return wc;
}

static int sync_step(struct ctx *c, uint8_t say, uint8_t *heard)
{
	if (xfer(c->sock, &say, 1, true))
		return -1;
	return xfer(c->sock, heard, 1, false);
}

static int pick_gid(struct ctx *c, int gid_index, union ibv_gid *gid)
{
	static const uint8_t v4map[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					   0xff, 0xff };

	if (gid_index >= 0)
		return kstub_query_gid(c->dev, gid_index, gid) ? -1 : gid_index;
	for (int i = 0; i < 16; i++)
		if (!kstub_query_gid(c->dev, i, gid) &&
		    !memcmp(gid->raw, v4map, sizeof(v4map)))
			return i;
	return -1;
}

static int setup(struct ctx *c, int gid_index, bool legacy)
{
	struct kstub_opts o = { .phys_pages = 512, .lowmem_pages = 256,
				.legacy_ipath_ops = legacy };
	union ibv_gid gid;
	int sgid;

	c->dev = kstub_open(&o);
	if (!c->dev)
		return errno == EOPNOTSUPP ? -EOPNOTSUPP : -1;
	msg(c, "device: %s, DMA ops '%s'",
	    kstub_dma_capable(c->dev) ? "DMA-capable (IOMMU)" : "software",
	    kstub_dma_ops(c->dev)->name);
	c->cq = ib_create_cq(c->dev, 256);
	if (!c->cq)
		return -1;
	for (int i = 0; i < NQP; i++) {
		c->qp[i] = ib_create_qp(c->dev, c->cq, c->cq, 64, NSG);
		if (!c->qp[i])
			return -1;
		c->me.qpn[i] = ib_qp_num(c->qp[i]);
	}
	sgid = pick_gid(c, gid_index, &gid);
	if (sgid < 0) {
		msg(c, "no usable GID");
		return -1;
	}
	c->me.magic = MAGIC;
	c->me.psn = c->initiator ? 0x1000 : 0x2000;
	memcpy(c->me.gid, gid.raw, 16);
	c->me.dma_capable = kstub_dma_capable(c->dev);
	if (xfer(c->sock, &c->me, sizeof(c->me), true) ||
	    xfer(c->sock, &c->peer, sizeof(c->peer), false) ||
	    c->peer.magic != MAGIC) {
		msg(c, "bootstrap exchange failed");
		return -1;
	}
	memcpy(gid.raw, c->peer.gid, 16);
	for (int i = 0; i < NQP; i++)
		if (ib_qp_connect(c->qp[i], &gid, sgid, c->peer.qpn[i],
				  c->me.psn, c->peer.psn)) {
			msg(c, "connect QP %u: %s", c->me.qpn[i], strerror(errno));
			return -1;
		}
	return 0;
}

/* The daemon's status must show <my bit, peer's bit> for QP 0. */
static void check_addr_form(struct ctx *c)
{
	char want[16], got[16] = "";
	long end = now_ms() + 5000;

	snprintf(want, sizeof(want), "<%u,%u>", c->me.dma_capable,
		 c->peer.dma_capable);
	while (now_ms() < end) {
		if (kstub_qp_addr_form(c->dev, c->me.qpn[0], got, sizeof(got)))
			break;
		if (!strchr(got, '?'))
			break;
		usleep(20000);
	}
	msg(c, "status addr_form of QP %u: %s", c->me.qpn[0], got);
	check(c, !strcmp(got, want), "negotiated pair in status");
}

/* ---- the initiator ------------------------------------------------------ */

struct recv_buf {
	void *kva;
	dma_addr_t dma;
};

static int post_recv_buf(struct ctx *c, struct ib_qp *qp, struct recv_buf *b,
			 uint64_t wr_id)
{
	struct ibv_sge sge = { .addr = b->dma, .length = PKT_MAX,
			       .lkey = kstub_lkey(c->dev) };
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &sge,
				  .num_sge = 1 };

	return ib_post_recv(qp, &wr, NULL);
}

static int alloc_recv_bufs(struct ctx *c, struct recv_buf *b, int n)
{
	for (int i = 0; i < n; i++) {
		b[i].kva = kmalloc(c->dev, PKT_MAX);
		if (!b[i].kva)
			return -1;
		b[i].dma = ib_dma_map_single(c->dev, b[i].kva, PKT_MAX,
					     DMA_FROM_DEVICE);
		if (ib_dma_mapping_error(c->dev, b[i].dma) ||
		    post_recv_buf(c, c->qp[0], &b[i], (uint64_t)i))
			return -1;
	}
	return 0;
}

/* IPoIB-like: kmalloc, fill, ib_dma_map_single, SEND, unmap on completion. */
static void ipoib_send(struct ctx *c)
{
	for (int i = 0; i < NPKT; i++) {
		size_t n = pkt_len(i);
		void *buf = kmalloc(c->dev, n);
		dma_addr_t dma;
		struct ibv_sge sge;
		struct ibv_send_wr wr = { 0 };
		struct ibv_wc wc;

		if (!buf) {
			check(c, false, "kmalloc");
			return;
		}
		pattern(buf, n, (uint32_t)i + 1);
		dma = ib_dma_map_single(c->dev, buf, n, DMA_TO_DEVICE);
		if (ib_dma_mapping_error(c->dev, dma)) {
			check(c, false, "ib_dma_map_single");
			return;
		}
		sge = (struct ibv_sge){ dma, (uint32_t)n, kstub_lkey(c->dev) };
		wr.wr_id = 1000 + (uint64_t)i;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = i == NPKT - 1 ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
		wr.imm_data = htonl(0xfeed0000u + (uint32_t)i);
		wr.send_flags = IBV_SEND_SIGNALED;
		if (ib_post_send(c->qp[0], &wr, NULL)) {
			check(c, false, "ib_post_send");
			return;
		}
		wc = wait_wc(c);
		if (wc.status != IBV_WC_SUCCESS || wc.wr_id != wr.wr_id) {
			msg(c, "SEND %d: status %d", i, wc.status);
			check(c, false, "IPoIB SEND completion");
		}
		ib_dma_unmap_single(c->dev, dma, n, DMA_TO_DEVICE);
		kfree(c->dev, buf);
	}
	check(c, true, "IPoIB: 6 kmalloc buffers sent");
}

struct sglist {
	struct scatterlist sg[NSG];
};

static int sg_build(struct ctx *c, struct sglist *l, uint32_t seed,
		    bool fill)
{
	for (int i = 0; i < NSG; i++) {
		struct page *pg = alloc_page(c->dev, sg_shape[i].high ?
						     GFP_HIGHUSER : GFP_KERNEL);
		uint8_t *p;

		if (!pg)
			return -1;
		l->sg[i] = (struct scatterlist){ .page = pg,
						 .offset = sg_shape[i].offset,
						 .length = sg_shape[i].length };
		/* Highmem pages are only reachable through kmap. */
		p = kmap(c->dev, pg);
		if (!p)
			return -1;
		if (fill)
			pattern(p + sg_shape[i].offset, sg_shape[i].length,
				seed + (uint32_t)i);
		else
			memset(p, 0, 4096);
		kunmap(c->dev, pg);
	}
	return 0;
}

static uint64_t sg_digest(struct ctx *c, struct sglist *l)
{
	uint64_t h = FNV_INIT;

	for (int i = 0; i < NSG; i++) {
		uint8_t *p = kmap(c->dev, l->sg[i].page);

		h = fnv(h, p + l->sg[i].offset, l->sg[i].length);
		kunmap(c->dev, l->sg[i].page);
	}
	return h;
}

static void send_abort(struct ctx *c)
{
	uint32_t *w = kmalloc(c->dev, sizeof(*w));
	dma_addr_t dma;
	struct ibv_sge sge;
	struct ibv_send_wr wr = { 0 };

	if (!w)
		return;
	*w = 0;
	dma = ib_dma_map_single(c->dev, w, sizeof(*w), DMA_TO_DEVICE);
	sge = (struct ibv_sge){ dma, sizeof(*w), kstub_lkey(c->dev) };
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	if (!ib_post_send(c->qp[0], &wr, NULL))
		wait_wc(c);
}

/* Addresses in the form the initiator's device does NOT use. */
static uint64_t wrong_form_of(struct ctx *c, void *kva, dma_addr_t dma)
{
	if (kstub_dma_capable(c->dev))
		return (uint64_t)(uintptr_t)kva; /* what ipath would have sent */
	return IPD_IOVA_BASE + (dma & 4095);     /* an IOVA, no IOMMU here */
}

static void initiator_run(struct ctx *c)
{
	struct recv_buf rb[RECV_SLOTS];
	struct sglist dout, din, ref;
	struct srp_cmd *cmd;
	struct srp_rsp rsp;
	uint64_t *atom, h;
	dma_addr_t cmd_dma, atom_dma, neg_dma, uaf_dma, to_dma, from_dma;
	void *neg_buf, *uaf_buf, *to_buf, *from_buf;
	struct ibv_sge sge;
	struct ibv_send_wr wr = { 0 };
	struct ibv_wc wc;
	bool got_imm = false, got_rsp = false;
	uint8_t heard;
	int nout, nin;

	if (alloc_recv_bufs(c, rb, RECV_SLOTS)) {
		check(c, false, "receive buffers");
		return;
	}
	check_addr_form(c);
	ipoib_send(c);

	/* SRP: build and map the lists, send their descriptors. */
	if (sg_build(c, &dout, 100, true) || sg_build(c, &din, 0, false) ||
	    sg_build(c, &ref, 200, true)) {
		check(c, false, "page allocation / kmap");
		return;
	}
	nout = ib_dma_map_sg(c->dev, dout.sg, NSG, DMA_TO_DEVICE);
	nin = nout ? ib_dma_map_sg(c->dev, din.sg, NSG, DMA_FROM_DEVICE) : 0;
	if (!nout || !nin) {
		/* ipath's 2006 ops end here: highmem pages have no address.
		 * Tell the target (a short message) instead of letting it
		 * wait for a command that never comes. */
		check(c, false, "ib_dma_map_sg (highmem pages included)");
		send_abort(c);
		return;
	}
	msg(c, "ib_dma_map_sg: %d pages -> %d/%d segments", NSG, nout, nin);
	check(c, true, "ib_dma_map_sg of lowmem and highmem pages");
	cmd = kmalloc(c->dev, sizeof(*cmd));
	atom = kmalloc(c->dev, 4096);
	neg_buf = kmalloc(c->dev, 4096);
	uaf_buf = kmalloc(c->dev, 4096);
	to_buf = kmalloc(c->dev, 4096);
	from_buf = kmalloc(c->dev, 4096);
	if (!cmd || !atom || !neg_buf || !uaf_buf || !to_buf || !from_buf) {
		check(c, false, "kmalloc");
		return;
	}
	*atom = ATOMIC_INIT;
	pattern(uaf_buf, 4096, 77);
	atom_dma = ib_dma_map_single(c->dev, atom, 8, DMA_BIDIRECTIONAL);
	neg_dma = ib_dma_map_single(c->dev, neg_buf, 4096, DMA_BIDIRECTIONAL);
	uaf_dma = ib_dma_map_single(c->dev, uaf_buf, 4096, DMA_BIDIRECTIONAL);
	memset(cmd, 0, sizeof(*cmd));
	cmd->magic = MAGIC;
	cmd->rkey = kstub_rkey(c->dev);
	cmd->ndout = (uint32_t)nout;
	cmd->ndin = (uint32_t)nin;
	for (int i = 0; i < nout; i++)
		cmd->dout[i] = (struct desc){ dout.sg[i].dma_address,
					      dout.sg[i].dma_length, 0 };
	for (int i = 0; i < nin; i++)
		cmd->din[i] = (struct desc){ din.sg[i].dma_address,
					     din.sg[i].dma_length, 0 };
	cmd->atomic_addr = atom_dma;
	cmd->neg[NEG_WRONG_FORM] = (struct desc){
		wrong_form_of(c, neg_buf, neg_dma), 64, 0 };
	/* In form, but running past what the address names. */
	if (kstub_dma_capable(c->dev))
		cmd->neg[NEG_OOB] = (struct desc){ neg_dma + 4096 - 32, 4096, 0 };
	else
		cmd->neg[NEG_OOB] = (struct desc){
			din.sg[1].dma_address + 4000, 4096, 0 };
	/* In form, never mapped / no such page. */
	if (kstub_dma_capable(c->dev))
		cmd->neg[NEG_UNMAPPED] = (struct desc){
			IPD_IOVA_BASE + 1000 * 4096ull, 64, 0 };
	else
		cmd->neg[NEG_UNMAPPED] = (struct desc){
			IPD_PAGE_TAG | (100000ull * 4096), 64, 0 };
	/* Only an IOMMU can take an address away again (unmap is a no-op
	 * for the software device: its addresses are the kernel's own). */
	if (kstub_dma_capable(c->dev))
		cmd->neg[NEG_UAF] = (struct desc){ uaf_dma, 4096, 0 };
	/* Only an IOMMU has direction bits to enforce. */
	to_dma = ib_dma_map_single(c->dev, to_buf, 4096, DMA_TO_DEVICE);
	from_dma = ib_dma_map_single(c->dev, from_buf, 4096, DMA_FROM_DEVICE);
	if (kstub_dma_capable(c->dev)) {
		cmd->neg[NEG_TO_DEV] = (struct desc){ to_dma, 64, 0 };
		cmd->neg[NEG_FROM_DEV] = (struct desc){ from_dma, 64, 0 };
	}
	cmd_dma = ib_dma_map_single(c->dev, cmd, sizeof(*cmd), DMA_TO_DEVICE);
	sge = (struct ibv_sge){ cmd_dma, sizeof(*cmd), kstub_lkey(c->dev) };
	wr.wr_id = 2000;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	if (ib_post_send(c->qp[0], &wr, NULL)) {
		check(c, false, "post SRP_CMD");
		return;
	}
	/* The SEND completes; WRITE_WITH_IMM and the response arrive. */
	for (int n = 0; n < 3 && !(got_imm && got_rsp); n++) {
		wc = wait_wc(c);
		if (wc.status != IBV_WC_SUCCESS) {
			msg(c, "completion wr_id %" PRIu64 " status %d",
			    wc.wr_id, wc.status);
			check(c, false, "SRP completions");
			return;
		}
		if (wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
			got_imm = ntohl(wc.imm_data) == 0xd1d1d1d1u;
			post_recv_buf(c, c->qp[0], &rb[wc.wr_id], wc.wr_id);
		} else if (wc.opcode == IBV_WC_RECV) {
			ib_dma_sync_single_for_cpu(c->dev, rb[wc.wr_id].dma,
						   PKT_MAX, DMA_FROM_DEVICE);
			memcpy(&rsp, rb[wc.wr_id].kva, sizeof(rsp));
			got_rsp = rsp.magic == MAGIC;
		}
	}
	check(c, got_imm, "RDMA WRITE with immediate (data-in done)");
	check(c, got_rsp && rsp.status == 0, "SRP response");
	ib_dma_unmap_sg(c->dev, din.sg, NSG, DMA_FROM_DEVICE);
	ib_dma_unmap_sg(c->dev, dout.sg, NSG, DMA_TO_DEVICE);
	/* data-in = the target's pattern 300.. */
	if (sg_build(c, &ref, 300, true) == 0)
		check(c, sg_digest(c, &din) == sg_digest(c, &ref),
		      "data-in pages (highmem via kmap) hold what the target wrote");
	printf("RESULT data_in %016" PRIx64 "\n", sg_digest(c, &din));
	ib_dma_sync_single_for_cpu(c->dev, atom_dma, 8, DMA_FROM_DEVICE);
	check(c, rsp.cas_orig == ATOMIC_INIT &&
		 rsp.fadd_orig == CAS_SWAP &&
		 *atom == CAS_SWAP + FADD_ADD, "atomics on the initiator's word");
	h = fnv(FNV_INIT, atom, 8);
	h = fnv(h, &rsp.cas_orig, 8);
	h = fnv(h, &rsp.fadd_orig, 8);
	printf("RESULT atomics %016" PRIx64 "\n", h);

	/* use after unmap: the target read the page once; take it away. */
	if (sync_step(c, 'r', &heard) || heard != 'R') {
		check(c, false, "sync before unmap");
		return;
	}
	ib_dma_unmap_single(c->dev, uaf_dma, 4096, DMA_BIDIRECTIONAL);
	if (sync_step(c, 'u', &heard) || heard != 'D') {
		check(c, false, "sync after unmap");
		return;
	}
	/* Stay (QPs alive, responder side) until the target is done. */
	if (xfer(c->sock, &heard, 1, false) || heard != 'F')
		check(c, false, "final sync");
	fflush(stdout);
}

/* ---- the target ----------------------------------------------------------- */

/* One RDMA READ/WRITE with a local scatter-gather list, waited for. */
static bool rdma_sgl(struct ctx *c, struct ib_qp *qp, enum ibv_wr_opcode op,
		     struct ibv_sge *sgl, int nsge, uint64_t raddr,
		     uint32_t rkey, enum ibv_wc_status want, const char *what)
{
	struct ibv_send_wr wr = { 0 };
	struct ibv_wc wc;
	char buf[160];

	wr.wr_id = 3000;
	wr.sg_list = sgl;
	wr.num_sge = nsge;
	wr.opcode = op;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	wr.imm_data = htonl(0xd1d1d1d1u);
	if (ib_post_send(qp, &wr, NULL)) {
		check(c, false, "post RDMA");
		return false;
	}
	wc = wait_wc(c);
	snprintf(buf, sizeof(buf), "%s (%d SGEs): status %s (%d), want %s",
		 what, nsge,
		 (int)wc.status >= 0 ? ibv_wc_status_str(wc.status) : "timeout",
		 wc.status, ibv_wc_status_str(want));
	check(c, wc.status == want, buf);
	return wc.status == want;
}

static bool rdma(struct ctx *c, struct ib_qp *qp, enum ibv_wr_opcode op,
		 uint64_t local, uint32_t len, uint64_t raddr, uint32_t rkey,
		 enum ibv_wc_status want, const char *what)
{
	struct ibv_sge sge = { local, len, kstub_lkey(c->dev) };

	return rdma_sgl(c, qp, op, &sge, 1, raddr, rkey, want, what);
}

/* A walk over the DMA segments of a mapped list. */
struct seg_cursor {
	const struct scatterlist *sg;
	int n, idx;
	uint32_t off;
};

/* The local SGEs for the next len bytes of the list; count or -1. */
static int take_sges(struct ctx *c, struct seg_cursor *cur, uint32_t len,
		     struct ibv_sge *out, int max)
{
	int m = 0;

	while (len && cur->idx < cur->n && m < max) {
		const struct scatterlist *s = &cur->sg[cur->idx];
		uint32_t n = s->dma_length - cur->off;

		if (n > len)
			n = len;
		out[m++] = (struct ibv_sge){ s->dma_address + cur->off, n,
					     kstub_lkey(c->dev) };
		cur->off += n;
		len -= n;
		if (cur->off == s->dma_length) {
			cur->idx++;
			cur->off = 0;
		}
	}
	return len ? -1 : m;
}

/* RDMA the remote segments against the local list, in order; the last
 * WRITE carries an immediate. */
static bool rdma_lists(struct ctx *c, enum ibv_wr_opcode op,
		       const struct desc *remote, uint32_t nremote,
		       uint32_t rkey, const struct scatterlist *local,
		       int nlocal, const char *what)
{
	struct seg_cursor cur = { local, nlocal, 0, 0 };
	struct ibv_sge sgl[NSG];

	if (nremote > NSG)
		return false;
	for (uint32_t i = 0; i < nremote; i++) {
		enum ibv_wr_opcode o = op;
		int n = take_sges(c, &cur, remote[i].len, sgl, NSG);

		if (n < 0) {
			check(c, false, "local list shorter than the remote");
			return false;
		}
		if (op == IBV_WR_RDMA_WRITE && i == nremote - 1)
			o = IBV_WR_RDMA_WRITE_WITH_IMM;
		if (!rdma_sgl(c, c->qp[0], o, sgl, n, remote[i].addr, rkey,
			      IBV_WC_SUCCESS, what))
			return false;
	}
	return true;
}

static bool atomic_op(struct ctx *c, struct ib_qp *qp, enum ibv_wr_opcode op,
		      uint64_t local, uint64_t raddr, uint32_t rkey,
		      uint64_t cmp_add, uint64_t swap,
		      enum ibv_wc_status want, const char *what)
{
	struct ibv_sge sge = { local, 8, kstub_lkey(c->dev) };
	struct ibv_send_wr wr = { 0 };
	struct ibv_wc wc;
	char buf[128];

	wr.wr_id = 4000;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = op;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.wr.atomic.remote_addr = raddr;
	wr.wr.atomic.rkey = rkey;
	wr.wr.atomic.compare_add = cmp_add;
	wr.wr.atomic.swap = swap;
	if (ib_post_send(qp, &wr, NULL)) {
		check(c, false, "post atomic");
		return false;
	}
	wc = wait_wc(c);
	snprintf(buf, sizeof(buf), "%s: status %s (%d)", what,
		 (int)wc.status >= 0 ? ibv_wc_status_str(wc.status) : "timeout",
		 wc.status);
	check(c, wc.status == want, buf);
	return wc.status == want;
}

static void target_ipoib(struct ctx *c, struct recv_buf *rb)
{
	uint64_t h = FNV_INIT;
	bool ok = true;

	for (int i = 0; i < NPKT; i++) {
		struct ibv_wc wc = wait_wc(c);
		uint8_t *ref;

		if (wc.status != IBV_WC_SUCCESS || wc.byte_len != pkt_len(i)) {
			msg(c, "packet %d: status %d len %u", i, wc.status,
			    wc.byte_len);
			ok = false;
			break;
		}
		ref = malloc(pkt_len(i));
		pattern(ref, pkt_len(i), (uint32_t)i + 1);
		if (memcmp(ref, rb[wc.wr_id].kva, pkt_len(i)))
			ok = false;
		if (i == NPKT - 1 && (!(wc.wc_flags & IBV_WC_WITH_IMM) ||
				      ntohl(wc.imm_data) != 0xfeed0005u))
			ok = false;
		h = fnv(h, rb[wc.wr_id].kva, wc.byte_len);
		free(ref);
		post_recv_buf(c, c->qp[0], &rb[wc.wr_id], wc.wr_id);
	}
	check(c, ok, "IPoIB: packets (SEND, SEND with immediate) intact");
	printf("RESULT ipoib %016" PRIx64 "\n", h);
}

/*
 * IOMMU direction (docs/address-forms.md 3.4): the responder refuses a
 * WRITE into the initiator's DMA_TO_DEVICE page and a READ from its
 * DMA_FROM_DEVICE page (remote access error), after the allowed direction
 * worked on the same QP; the requester refuses to READ into its own
 * DMA_TO_DEVICE page (local protection error).
 */
static void target_direction_cases(struct ctx *c, const struct srp_cmd *cmd,
				   dma_addr_t scratch_dma, void *scratch)
{
	/* Per page: the allowed direction, then the refused one, on one QP
	 * (5 and 6: the refusal leaves it in the error state). */
	static const struct {
		enum neg_case page;
		enum ibv_wr_opcode op;
		enum ibv_wc_status want;
		const char *what;
	} cases[] = {
		{ NEG_TO_DEV, IBV_WR_RDMA_READ, IBV_WC_SUCCESS,
		  "READ of a DMA_TO_DEVICE page" },
		{ NEG_TO_DEV, IBV_WR_RDMA_WRITE, IBV_WC_REM_ACCESS_ERR,
		  "WRITE into a DMA_TO_DEVICE page" },
		{ NEG_FROM_DEV, IBV_WR_RDMA_WRITE, IBV_WC_SUCCESS,
		  "WRITE into a DMA_FROM_DEVICE page" },
		{ NEG_FROM_DEV, IBV_WR_RDMA_READ, IBV_WC_REM_ACCESS_ERR,
		  "READ of a DMA_FROM_DEVICE page" },
	};
	const struct desc *to = &cmd->neg[NEG_TO_DEV];
	dma_addr_t ro_dma;

	if (!to->addr) {
		msg(c, "n/a: DMA directions (software responder: no IOMMU)");
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct desc *d = &cmd->neg[cases[i].page];

		rdma(c, c->qp[5 + i / 2], cases[i].op, scratch_dma, d->len,
		     d->addr, cmd->rkey, cases[i].want, cases[i].what);
	}
	if (!kstub_dma_capable(c->dev)) {
		msg(c, "n/a: local DMA direction (software requester)");
		return;
	}
	ro_dma = ib_dma_map_single(c->dev, (uint8_t *)scratch + 4096, 4096,
				   DMA_TO_DEVICE);
	rdma(c, c->qp[7], IBV_WR_RDMA_READ, ro_dma, to->len, to->addr,
	     cmd->rkey, IBV_WC_LOC_PROT_ERR,
	     "READ into a local DMA_TO_DEVICE page");
	ib_dma_unmap_single(c->dev, ro_dma, 4096, DMA_TO_DEVICE);
}

static void target_run(struct ctx *c)
{
	struct recv_buf rb[RECV_SLOTS];
	struct sglist rd, wsrc;
	struct srp_cmd cmd;
	struct srp_rsp *rsp;
	uint64_t *res;
	dma_addr_t res_dma, rsp_dma, scratch_dma;
	void *scratch;
	struct ibv_wc wc;
	uint8_t heard;
	bool ok = true;
	int nrd, nws;

	if (alloc_recv_bufs(c, rb, RECV_SLOTS)) {
		check(c, false, "receive buffers");
		return;
	}
	check_addr_form(c);
	target_ipoib(c, rb);

	wc = wait_wc(c);
	if (wc.status != IBV_WC_SUCCESS || wc.byte_len != sizeof(cmd)) {
		/* (a 4-byte message: the initiator could not map its lists) */
		check(c, false, "SRP_CMD received");
		return;
	}
	memcpy(&cmd, rb[wc.wr_id].kva, sizeof(cmd));
	post_recv_buf(c, c->qp[0], &rb[wc.wr_id], wc.wr_id);
	/* Local lists: highmem pages too, mapped by this device's ops. */
	if (sg_build(c, &rd, 0, false) || sg_build(c, &wsrc, 300, true)) {
		check(c, false, "target lists");
		return;
	}
	nrd = ib_dma_map_sg(c->dev, rd.sg, NSG, DMA_FROM_DEVICE);
	nws = nrd ? ib_dma_map_sg(c->dev, wsrc.sg, NSG, DMA_TO_DEVICE) : 0;
	if (!nrd || !nws) {
		check(c, false, "target lists mapped");
		return;
	}
	msg(c, "remote %u/%u segments, local %d/%d", cmd.ndout, cmd.ndin, nrd,
	    nws);
	ok = rdma_lists(c, IBV_WR_RDMA_READ, cmd.dout, cmd.ndout, cmd.rkey,
			rd.sg, nrd, "RDMA READ of a data-out segment");
	ok = ok && rdma_lists(c, IBV_WR_RDMA_WRITE, cmd.din, cmd.ndin,
			      cmd.rkey, wsrc.sg, nws,
			      "RDMA WRITE (last: with immediate) of a data-in segment");
	ib_dma_unmap_sg(c->dev, rd.sg, NSG, DMA_FROM_DEVICE);
	ib_dma_unmap_sg(c->dev, wsrc.sg, NSG, DMA_TO_DEVICE);
	if (ok) {
		struct sglist ref;

		if (sg_build(c, &ref, 100, true) == 0)
			check(c, sg_digest(c, &rd) == sg_digest(c, &ref),
			      "data-out read into local pages (highmem via kmap)");
		printf("RESULT data_out %016" PRIx64 "\n", sg_digest(c, &rd));
	}

	res = kmalloc(c->dev, 4096);
	rsp = kmalloc(c->dev, 4096);
	scratch = kmalloc(c->dev, 8192);
	res_dma = ib_dma_map_single(c->dev, res, 16, DMA_FROM_DEVICE);
	rsp_dma = ib_dma_map_single(c->dev, rsp, sizeof(*rsp), DMA_TO_DEVICE);
	/* READ into it and WRITE from it: both directions. */
	scratch_dma = ib_dma_map_single(c->dev, scratch, 8192,
					DMA_BIDIRECTIONAL);
	memset(rsp, 0, sizeof(*rsp));
	rsp->magic = MAGIC;
	if (ok)
		ok = atomic_op(c, c->qp[0], IBV_WR_ATOMIC_CMP_AND_SWP, res_dma,
			       cmd.atomic_addr, cmd.rkey, ATOMIC_INIT, CAS_SWAP,
			       IBV_WC_SUCCESS, "CMP_SWAP");
	if (ok)
		ok = atomic_op(c, c->qp[0], IBV_WR_ATOMIC_FETCH_AND_ADD,
			       res_dma + 8, cmd.atomic_addr, cmd.rkey, FADD_ADD,
			       0, IBV_WC_SUCCESS, "FETCH_ADD");
	ib_dma_sync_single_for_cpu(c->dev, res_dma, 16, DMA_FROM_DEVICE);
	rsp->cas_orig = res[0];
	rsp->fadd_orig = res[1];
	rsp->status = ok ? 0 : 1;
	{
		struct ibv_sge sge = { rsp_dma, sizeof(*rsp), kstub_lkey(c->dev) };
		struct ibv_send_wr wr = { .wr_id = 5000, .sg_list = &sge,
					  .num_sge = 1, .opcode = IBV_WR_SEND,
					  .send_flags = IBV_SEND_SIGNALED };

		if (ib_post_send(c->qp[0], &wr, NULL) ||
		    wait_wc(c).status != IBV_WC_SUCCESS)
			check(c, false, "SRP response sent");
	}

	/* Bad addresses, each on its own QP: the responder must NAK
	 * (remote access error), never touch memory. */
	rdma(c, c->qp[1], IBV_WR_RDMA_READ, scratch_dma, cmd.neg[0].len,
	     cmd.neg[0].addr, cmd.rkey, IBV_WC_REM_ACCESS_ERR,
	     "READ of a wrong-form address");
	rdma(c, c->qp[2], IBV_WR_RDMA_WRITE, scratch_dma, cmd.neg[1].len,
	     cmd.neg[1].addr, cmd.rkey, IBV_WC_REM_ACCESS_ERR,
	     "WRITE out of bounds");
	atomic_op(c, c->qp[3], IBV_WR_ATOMIC_FETCH_AND_ADD, res_dma,
		  cmd.neg[2].addr, cmd.rkey, 1, 0, IBV_WC_REM_ACCESS_ERR,
		  "FETCH_ADD at an unmapped address");
	if (cmd.neg[NEG_UAF].addr)
		rdma(c, c->qp[4], IBV_WR_RDMA_READ, scratch_dma, 4096,
		     cmd.neg[NEG_UAF].addr, cmd.rkey, IBV_WC_SUCCESS,
		     "READ while mapped");
	target_direction_cases(c, &cmd, scratch_dma, scratch);
	if (sync_step(c, 'R', &heard) || heard != 'r' ||
	    sync_step(c, 'D', &heard) || heard != 'u') {
		check(c, false, "unmap sync");
		return;
	}
	if (cmd.neg[NEG_UAF].addr)
		rdma(c, c->qp[4], IBV_WR_RDMA_READ, scratch_dma, 4096,
		     cmd.neg[NEG_UAF].addr, cmd.rkey, IBV_WC_REM_ACCESS_ERR,
		     "READ after ib_dma_unmap_single");
	else
		msg(c, "n/a: use after unmap (software responder: ipath "
		    "addresses stay the kernel's)");
	heard = 'F';
	if (xfer(c->sock, &heard, 1, true))
		check(c, false, "final sync");
	fflush(stdout);
}

/* ---- main ------------------------------------------------------------------- */

static int run_role(bool initiator, int sock, int gid_index, bool legacy)
{
	struct ctx c = { .sock = sock, .initiator = initiator,
			 .role = initiator ? "initiator" : "target" };

	switch (setup(&c, gid_index, legacy)) {
	case 0:
		break;
	case -EOPNOTSUPP:
		/* A daemon without the kernel-stub requests: skip (77). */
		msg(&c, "SKIP: the daemon does not serve kernel stubs");
		return 77;
	default:
		msg(&c, "setup failed");
		return 1;
	}
	msg(&c, "pair <requester,responder> for RDMA = <%u,%u>",
	    initiator ? c.peer.dma_capable : c.me.dma_capable,
	    initiator ? c.me.dma_capable : c.peer.dma_capable);
	if (initiator)
		initiator_run(&c);
	else
		target_run(&c);
	for (int i = 0; i < NQP; i++)
		if (c.qp[i] && ib_destroy_qp(c.qp[i]))
			check(&c, false, "ib_destroy_qp");
	if (c.cq && ib_destroy_cq(c.cq))
		check(&c, false, "ib_destroy_cq");
	kstub_close(c.dev);
	msg(&c, "%s (%d failures)", c.failures ? "FAILED" : "passed",
	    c.failures);
	return c.failures ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: ulp_addr self [--legacy] [--gid-index N]\n"
			"       ulp_addr target --listen PORT [--gid-index N]\n"
			"       ulp_addr initiator --connect IP:PORT [--gid-index N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *listen_port = NULL, *connect_to = NULL;
	int gid_index = -1, sv[2], st1, st2;
	bool legacy = false;
	pid_t pid;

	if (argc < 2)
		return usage();
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--legacy"))
			legacy = true;
		else if (!strcmp(argv[i], "--gid-index") && i + 1 < argc)
			gid_index = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--listen") && i + 1 < argc)
			listen_port = argv[++i];
		else if (!strcmp(argv[i], "--connect") && i + 1 < argc)
			connect_to = argv[++i];
		else
			return usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A peer that gave up closes the bootstrap socket: fail, not die. */
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[1], "target") && listen_port) {
		int s = tcp_listen_accept(atoi(listen_port));

		return s < 0 ? 1 : run_role(false, s, gid_index, legacy);
	}
	if (!strcmp(argv[1], "initiator") && connect_to) {
		int s = tcp_connect(connect_to);

		return s < 0 ? 1 : run_role(true, s, gid_index, legacy);
	}
	if (strcmp(argv[1], "self"))
		return usage();
	/* Both peers on one daemon: two processes, like two kernels. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(sv[0]);
		_exit(run_role(false, sv[1], gid_index, legacy));
	}
	close(sv[1]);
	st1 = run_role(true, sv[0], gid_index, legacy);
	close(sv[0]);
	if (waitpid(pid, &st2, 0) != pid || !WIFEXITED(st2))
		return 1;
	if (st1 == 77 && WEXITSTATUS(st2) == 77)
		return 77;
	return st1 || WEXITSTATUS(st2);
}
