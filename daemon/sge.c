// SPDX-License-Identifier: MIT
/*
 * Moving bytes between packets and registered memory.  Every access is
 * checked: the key must name an MR of the QP's PD (IBA 10.6.3.1), the MR
 * must grant the access, and the range must lie inside it.  The memory is
 * shared with the client process; a bad request never touches it.
 */
#include <string.h>

#include "addr.h"
#include "engine_priv.h"

static struct ipd_mr *sge_mr(struct ipd_dev *dev, struct ipd_pd *pd,
			     uint32_t key, uint32_t access)
{
	struct ipd_mr *mr = ipd_mr_lookup(dev, key);

	if (!mr || mr->pd != pd)
		return NULL;
	if ((mr->access & access) != access)
		return NULL;
	return mr;
}

int ipd_sge_check(struct ipd_dev *dev, struct ipd_pd *pd,
		  const struct ipd_sge *sge, uint32_t num_sge,
		  uint32_t access, uint32_t *total)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < num_sge; i++) {
		struct ipd_mr *mr;

		sum += sge[i].length;
		if (!sge[i].length)
			continue;
		mr = sge_mr(dev, pd, sge[i].lkey, access);
		if (!mr || !ipd_mr_ptr(mr, sge[i].addr, sge[i].length,
				       ipd_access_rw(access)))
			return IBV_WC_LOC_PROT_ERR;
	}
	/* IBA 10.8.3: a message is at most 2^31 bytes. */
	if (sum > (1u << 31))
		return IBV_WC_LOC_LEN_ERR;
	*total = (uint32_t)sum;
	return IBV_WC_SUCCESS;
}

int ipd_sge_copy(struct ipd_dev *dev, struct ipd_pd *pd,
		 const struct ipd_sge *sge, uint32_t num_sge, uint32_t off,
		 void *buf, uint32_t len, enum ipd_copy_dir dir)
{
	uint32_t access = dir == IPD_TO_MEM ? IBV_ACCESS_LOCAL_WRITE : 0;
	uint8_t *p = buf;
	uint32_t i;

	for (i = 0; i < num_sge && len; i++) {
		struct ipd_mr *mr;
		uint32_t n;
		uint8_t *mem;

		if (off >= sge[i].length) {
			off -= sge[i].length;
			continue;
		}
		n = sge[i].length - off;
		if (n > len)
			n = len;
		mr = sge_mr(dev, pd, sge[i].lkey, access);
		mem = mr ? ipd_mr_ptr(mr, sge[i].addr + off, n,
				      ipd_access_rw(access)) : NULL;
		if (!mem)
			return IBV_WC_LOC_PROT_ERR;
		if (dir == IPD_TO_MEM)
			memcpy(mem, p, n);
		else
			memcpy(p, mem, n);
		p += n;
		len -= n;
		off = 0;
	}
	return len ? IBV_WC_LOC_LEN_ERR : IBV_WC_SUCCESS;
}

void *ipd_rkey_ptr(const struct ipd_qp *qp, struct ipd_pd *pd, uint32_t rkey,
		   uint64_t va, uint64_t len, uint32_t access)
{
	struct ipd_mr *mr = ipd_mr_lookup(qp->dev, rkey);

	if (!mr && ipd_mw_key(rkey))
		return ipd_mw_rkey_ptr(qp, pd, rkey, va, len, access);
	/* The rkey must be the MR's remote key, not just its handle. */
	if (!mr || mr->rkey != rkey || mr->pd != pd)
		return NULL;
	if ((mr->access & access) != access)
		return NULL;
	if (va + len < va)
		return NULL;
	return ipd_mr_ptr(mr, va, len, ipd_access_rw(access));
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* The daemon pointer to the next bytes of m, at most want of them (at most
 * mtu_left where m is not one linear map); *got says how many.  NULL when
 * m does not resolve, with *got 0 when an SGE list ran out. */
static uint8_t *mem_ptr(struct ipd_dev *dev, struct ipd_mem *m, uint32_t want,
			uint32_t mtu_left, uint32_t *got)
{
	struct ipd_mr *mr;
	uint32_t n;

	if (!m->sge) {
		/* A window or the kernel's memory: per-MTU ranges. */
		mr = ipd_mr_lookup(dev, m->rkey);
		if (!mr || mr->rkey != m->rkey || ipd_mr_is_kmem(mr))
			want = min_u32(want, mtu_left);
		*got = want;
		return ipd_rkey_ptr(m->qp, m->pd, m->rkey, m->va, want,
				    m->access);
	}
	while (m->num_sge && m->off >= m->sge->length) {
		m->off -= m->sge->length;
		m->sge++;
		m->num_sge--;
	}
	*got = 0;
	if (!m->num_sge)
		return NULL;
	n = min_u32(want, m->sge->length - m->off);
	mr = sge_mr(dev, m->pd, m->sge->lkey, m->access);
	if (!mr)
		return NULL;
	if (ipd_mr_is_kmem(mr))
		n = min_u32(n, mtu_left);
	*got = n;
	return ipd_mr_ptr(mr, m->sge->addr + m->off, n,
			  ipd_access_rw(m->access));
}

void ipd_mem_skip(struct ipd_mem *m, uint32_t n)
{
	if (m->sge)
		m->off += n;
	else
		m->va += n;
}

int ipd_mem_copy(struct ipd_dev *dev, struct ipd_mem *dst, struct ipd_mem *src,
		 uint32_t len, uint32_t msg_off, unsigned int mtu)
{
	while (len) {
		uint32_t mtu_left = mtu - msg_off % mtu, n, m;
		const uint8_t *s = mem_ptr(dev, src, len, mtu_left, &n);
		uint8_t *d;

		if (!s)
			return -1;
		d = mem_ptr(dev, dst, n, mtu_left, &m);
		if (!d)
			return dst->sge && !dst->num_sge ? IBV_WC_LOC_LEN_ERR :
							   IBV_WC_LOC_PROT_ERR;
		/* a WRITE from an MR into itself may overlap */
		memmove(d, s, m);
		ipd_mem_skip(src, m);
		ipd_mem_skip(dst, m);
		len -= m;
		msg_off += m;
	}
	return IBV_WC_SUCCESS;
}
