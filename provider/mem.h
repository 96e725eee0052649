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
	uint64_t npages;	/* base (sysconf) pages */
	unsigned int fd;	/* index into ipd_mem_reg.fds (0: the arena) */
};

/* Descriptors one MR needs: the arena and up to 3 application files. */
#define IPD_MEM_MAX_FDS 4

/*
 * What the daemon needs to map a registration: runs laid out back to back
 * from map_start (page aligned; hugetlb pieces aligned to their huge page),
 * each backed by fds[run.fd].  fds[0] is the arena (not owned), the others
 * are the application's shared files, opened for this registration: close
 * them with ipd_mem_reg_release() once sent.
 */
struct ipd_mem_reg {
	uint64_t map_start;
	struct ipd_mem_run *runs;
	size_t nruns;
	int fds[IPD_MEM_MAX_FDS];
	size_t nfds;
};

/*
 * Register [addr, addr + len): private pages are moved onto the arena
 * (contents and protection kept); pages of MAP_SHARED file, shm, memfd or
 * hugetlb mappings stay where they are and are passed as their file.
 * write: the registration asks for write access (LOCAL_WRITE,
 * REMOTE_WRITE, REMOTE_ATOMIC, MW_BIND); a mapping without PROT_WRITE then
 * fails with EFAULT, as pinning it for writing does in the kernel.
 * Returns 0 or a positive errno (EFAULT: not mapped or not accessible).
 */
int ipd_mem_register_reg(void *addr, size_t len, bool dontfork, bool write,
			 struct ipd_mem_reg *reg);

/* Free the runs and close the files of a registration (not the arena). */
void ipd_mem_reg_release(struct ipd_mem_reg *reg);

/*
 * ipd_mem_register_reg() with write access, for callers that expect only
 * arena runs (other files are closed): make the pages of [addr, addr + len)
 * arena pages (shared, contents kept) and take a reference on each.
 * dontfork: mark pages that become arena pages MADV_DONTFORK (what
 * libibverbs did to the old pages after ibv_fork_init(); the new mapping
 * does not inherit it).  On success *runs (malloc'ed, free() it) holds the
 * runs backing those pages in address order, *nruns their count (0 when
 * len is 0), and *fd the arena memfd (owned by the arena, do not close).
 * Returns 0 or a positive errno.
 */
int ipd_mem_register(void *addr, size_t len, bool dontfork,
		     struct ipd_mem_run **runs, size_t *nruns, int *fd);

/*
 * Drop the references ipd_mem_register took.  Moved pages whose count
 * reaches 0 become private anonymous memory again, with their contents and
 * protection, and their arena space is released.  Returns 0 or a positive errno.
 */
int ipd_mem_unregister(void *addr, size_t len);

/* Pages of the arena currently referenced (for tests and diagnostics). */
size_t ipd_mem_pages_in_use(void);

#endif
