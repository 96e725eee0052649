/* SPDX-License-Identifier: MIT */
/*
 * The memory arena (docs/design.md "Memory registration"): registered pages
 * are moved, in place and with their contents, onto one process-wide memfd
 * so that the daemon can map them too.  Independent of libibverbs so that
 * it can be unit tested (tests/provider/test_arena.c).
 */
#ifndef IPATHD_PROVIDER_MEM_H
#define IPATHD_PROVIDER_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One run of arena pages backing consecutive virtual pages. */
struct ipd_mem_run {
	uint64_t file_offset;	/* bytes, page aligned */
	uint64_t npages;
};

/*
 * Make the pages of [addr, addr + len) arena pages (shared, contents kept)
 * and take a reference on each.  dontfork: mark pages that become arena
 * pages MADV_DONTFORK (what libibverbs did to the old pages after
 * ibv_fork_init(); the new mapping does not inherit it).  On success *runs (malloc'ed, free() it)
 * holds the arena runs backing those pages in address order, *nruns their
 * count (0 when len is 0), and *fd the arena memfd (owned by the arena, do
 * not close).  Returns 0 or a positive errno.
 */
int ipd_mem_register(void *addr, size_t len, bool dontfork,
		     struct ipd_mem_run **runs, size_t *nruns, int *fd);

/*
 * Drop the references ipd_mem_register took.  Pages whose count reaches 0
 * become private anonymous memory again, with their contents, and their
 * arena space is released.  Returns 0 or a positive errno.
 */
int ipd_mem_unregister(void *addr, size_t len);

/* Pages of the arena currently referenced (for tests and diagnostics). */
size_t ipd_mem_pages_in_use(void);

#endif
