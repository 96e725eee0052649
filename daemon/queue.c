// SPDX-License-Identifier: MIT
/*
 * Shared-memory rings as the daemon sees them (layout in ipathd/ring.h).
 * The daemon creates every ring, keeps its own copy of size and slot_size,
 * and reads only the producer index of a client-produced ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ipathd.h"

#define IPD_QUEUE_MAX_SLOTS (1u << 20)

static uint32_t roundup_pow2(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) & ~(pg - 1);
}

int ipd_queue_create(struct ipd_queue *q, uint32_t min_slots,
		     uint32_t slot_size, const char *name, int *memfd_out)
{
	uint32_t size;
	size_t len;
	void *map;
	int fd, err;

	if (min_slots > IPD_QUEUE_MAX_SLOTS || slot_size == 0 ||
	    slot_size % IPD_CACHELINE)
		return -EINVAL;
	size = roundup_pow2(min_slots ? min_slots : 1);
	len = page_round(ipd_ring_bytes(size, slot_size));

	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0)
		goto err_errno;
	/* A client must not be able to shrink the ring under the daemon's
	 * mapping (that would turn daemon reads into SIGBUS). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto err_errno;
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		goto err_errno;

	memset(q, 0, sizeof(*q));
	q->hdr = map;
	q->map_len = len;
	q->size = size;
	q->slot_size = slot_size;
	q->hdr->size = size;
	q->hdr->slot_size = slot_size;
	*memfd_out = fd;
	return 0;

err_errno:
	err = -errno;
	close(fd);
	return err;
}

void ipd_queue_destroy(struct ipd_queue *q)
{
	if (q->hdr)
		munmap(q->hdr, q->map_len);
	q->hdr = NULL;
	q->map_len = 0;
}

uint32_t ipd_queue_ready(struct ipd_queue *q)
{
	uint32_t n = ipd_ring_avail(q->hdr, q->cons);

	/* The daemon's cons never passes the shared one the client sees, so
	 * an honest client never has more than size slots ahead of it. */
	if (n > q->size) {
		ipd_dbg("ring %p: bogus producer index (%u ahead of %u slots)",
			(void *)q->hdr, n, q->size);
		return 0;
	}
	return n;
}

void ipd_queue_copy_next(struct ipd_queue *q, void *dst)
{
	memcpy(dst, ipd_ring_slot(q->hdr, q->size, q->slot_size, q->cons),
	       q->slot_size);
	q->cons++;
}

void ipd_queue_release(struct ipd_queue *q, uint32_t new_cons)
{
	ipd_ring_release(q->hdr, new_cons);
}

void ipd_queue_retire_begin(struct ipd_queue *q, uint32_t new_cons,
			    uint64_t wr_id, const struct ipd_queue *cq)
{
	struct ipd_ring_hdr *h = q->hdr;

	if (!cq)
		return;
	h->retire_cons = new_cons;
	h->retire_cq_prod = cq->prod;
	h->retire_wr_id = wr_id;
	atomic_store_explicit(&h->retiring, 1, memory_order_release);
}

void ipd_queue_retire_end(struct ipd_queue *q)
{
	atomic_store_explicit(&q->hdr->retiring, 0, memory_order_release);
}
