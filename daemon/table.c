// SPDX-License-Identifier: MIT
/*
 * Handle tables: small integers naming daemon objects (PD, MR, CQ, SRQ,
 * QP, AH).  A handle is base + slot index.  Allocation moves a cursor
 * forward and wraps, so a freed handle is not handed out again until the
 * cursor comes round: a stale handle (a client's destroyed QP, a late
 * packet for an old QPN) finds nothing rather than a new object.
 */
#include <errno.h>
#include <stdlib.h>

#include "ipathd.h"

/* Handles must fit the 24-bit QPN and the 24-bit key index of lkey/rkey. */
#define IPD_TABLE_HANDLE_LIMIT (1u << 24)
#define IPD_TABLE_INITIAL 64u

/* Slot count the table may grow to: twice the limit, so that handles are
 * spread before they are reused, within the 24-bit handle space. */
static uint32_t table_cap(const struct ipd_table *t)
{
	uint64_t cap = (uint64_t)t->max * 2;

	if (cap > IPD_TABLE_HANDLE_LIMIT - t->base)
		cap = IPD_TABLE_HANDLE_LIMIT - t->base;
	return (uint32_t)cap;
}

int ipd_table_init(struct ipd_table *t, uint32_t base, uint32_t max)
{
	/* Handle 0 means "none" in the protocol and in ipd_table_insert. */
	if (base == 0 || base >= IPD_TABLE_HANDLE_LIMIT || max == 0)
		return -EINVAL;
	t->slots = NULL;
	t->nslots = 0;
	t->count = 0;
	t->base = base;
	t->max = max;
	if (t->max > table_cap(t))
		t->max = table_cap(t);
	t->next = 0;
	return 0;
}

void ipd_table_fini(struct ipd_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->nslots = 0;
	t->count = 0;
}

static int table_grow(struct ipd_table *t)
{
	uint32_t cap = table_cap(t);
	uint32_t n = t->nslots ? t->nslots * 2 : IPD_TABLE_INITIAL;
	void **slots;

	if (n > cap)
		n = cap;
	if (n <= t->nslots)
		return -ENOMEM;
	slots = realloc(t->slots, n * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint32_t i = t->nslots; i < n; i++)
		slots[i] = NULL;
	t->slots = slots;
	t->nslots = n;
	return 0;
}

/* First free slot at or after the cursor, wrapping; UINT32_MAX if none. */
static uint32_t table_find_free(const struct ipd_table *t)
{
	for (uint32_t n = 0; n < t->nslots; n++) {
		uint32_t i = (t->next + n) % t->nslots;

		if (!t->slots[i])
			return i;
	}
	return UINT32_MAX;
}

uint32_t ipd_table_insert(struct ipd_table *t, void *obj)
{
	uint32_t i;

	if (!obj || t->count >= t->max) {
		errno = obj ? ENOMEM : EINVAL;
		return 0;
	}
	/* Prefer fresh slots at the end while the table may still grow. */
	if (t->next >= t->nslots && t->nslots < table_cap(t))
		table_grow(t); /* on failure, fall back to a freed slot */
	i = table_find_free(t);
	if (i == UINT32_MAX) {
		errno = ENOMEM;
		return 0;
	}
	t->slots[i] = obj;
	t->count++;
	t->next = i + 1;
	if (t->next >= t->nslots && t->nslots >= table_cap(t))
		t->next = 0;
	return t->base + i;
}

void *ipd_table_get(const struct ipd_table *t, uint32_t handle)
{
	if (handle < t->base || handle - t->base >= t->nslots)
		return NULL;
	return t->slots[handle - t->base];
}

void ipd_table_remove(struct ipd_table *t, uint32_t handle)
{
	if (!ipd_table_get(t, handle))
		return;
	t->slots[handle - t->base] = NULL;
	t->count--;
}
