// SPDX-License-Identifier: MIT
/*
 * Unit test of the provider's memory arena (provider/mem.c): registered
 * pages must become shared with the arena memfd in place, keep their
 * contents, be shared between overlapping registrations, and turn back into
 * private memory with the same contents when the last reference goes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mem.h"

static int failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n",         \
				__FILE__, __LINE__, #cond);                  \
			failures++;                                          \
		}                                                            \
	} while (0)

static size_t pg;

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

static int same(const uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + seed))
			return 0;
	return 1;
}

/* Map the arena pages of a run somewhere else, as the daemon would. */
static uint8_t *alias(int fd, const struct ipd_mem_run *r)
{
	void *p = mmap(NULL, r->npages * pg, PROT_READ | PROT_WRITE,
		       MAP_SHARED, fd, (off_t)r->file_offset);

	return p == MAP_FAILED ? NULL : p;
}

/* Unaligned registration: contents kept, both views see each other. */
static void test_unaligned(uint8_t *buf)
{
	struct ipd_mem_run *runs, *runs2;
	size_t nruns, nruns2;
	uint8_t *view;
	int fd, fd2;

	fill(buf, 4 * pg, 1);
	CHECK(ipd_mem_register(buf + 100, pg + 200, true, &runs, &nruns,
			       &fd) == 0);
	CHECK(nruns == 1 && runs[0].npages == 2);
	CHECK(runs[0].file_offset % pg == 0);
	CHECK(same(buf, 4 * pg, 1));
	CHECK(ipd_mem_pages_in_use() == 2);

	view = alias(fd, &runs[0]);
	CHECK(view != NULL);
	CHECK(view && same(view, 2 * pg, 1));
	if (view) {
		view[150] = 0xAB;	/* "daemon" writes */
		CHECK(buf[150] == 0xAB);
		buf[pg + 5] = 0xCD;	/* application writes */
		CHECK(view[pg + 5] == 0xCD);
		view[150] = (uint8_t)(150 * 7 + 1);
		buf[pg + 5] = (uint8_t)((pg + 5) * 7 + 1);
	}

	/* Overlapping MR: page 1 reused, pages 2-3 new. */
	CHECK(ipd_mem_register(buf + pg + 10, 2 * pg, true, &runs2, &nruns2,
			       &fd2) == 0);
	CHECK(fd2 == fd);
	CHECK(nruns2 >= 1);
	CHECK(nruns2 && runs2[0].file_offset == runs[0].file_offset + pg);
	CHECK(ipd_mem_pages_in_use() == 4);
	CHECK(same(buf, 4 * pg, 1));

	/* First MR gone: page 1 is still shared through the second one. */
	CHECK(ipd_mem_unregister(buf + 100, pg + 200) == 0);
	CHECK(ipd_mem_pages_in_use() == 3);
	if (view) {
		view[pg + 9] = 0x11;
		CHECK(buf[pg + 9] == 0x11);
		buf[pg + 9] = (uint8_t)((pg + 9) * 7 + 1);
	}
	/* Page 0 is private again: the old arena page no longer sees it. */
	buf[3] = 0x77;
	CHECK(!view || view[3] != 0x77);
	buf[3] = (uint8_t)(3 * 7 + 1);

	CHECK(ipd_mem_unregister(buf + pg + 10, 2 * pg) == 0);
	CHECK(ipd_mem_pages_in_use() == 0);
	CHECK(same(buf, 4 * pg, 1));
	buf[pg + 1] = 0x55;
	CHECK(!view || view[pg + 1] != 0x55);
	buf[pg + 1] = (uint8_t)((pg + 1) * 7 + 1);

	if (view)
		munmap(view, 2 * pg);
	free(runs);
	free(runs2);
}

/* Two small buffers on one page (malloc'ed): one arena page, refcounted. */
static void test_shared_page(uint8_t *buf)
{
	struct ipd_mem_run *a, *b;
	size_t na, nb;
	int fd;

	fill(buf, pg, 9);
	CHECK(ipd_mem_register(buf + 64, 100, true, &a, &na, &fd) == 0);
	CHECK(ipd_mem_register(buf + 1024, 100, true, &b, &nb, &fd) == 0);
	CHECK(na == 1 && nb == 1 && a[0].file_offset == b[0].file_offset);
	CHECK(ipd_mem_pages_in_use() == 1);
	CHECK(ipd_mem_unregister(buf + 64, 100) == 0);
	CHECK(ipd_mem_pages_in_use() == 1);
	CHECK(ipd_mem_unregister(buf + 1024, 100) == 0);
	CHECK(ipd_mem_pages_in_use() == 0);
	CHECK(same(buf, pg, 9));
	free(a);
	free(b);
}

static void test_errors(uint8_t *buf)
{
	struct ipd_mem_run *runs = NULL;
	size_t nruns;
	void *hole;
	int fd;

	CHECK(ipd_mem_unregister(buf, 10) == EINVAL);
	CHECK(ipd_mem_register(buf, 0, true, &runs, &nruns, &fd) == 0);
	CHECK(nruns == 0);
	free(runs);

	/* Unmapped memory is refused, not a crash. */
	hole = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	CHECK(hole != MAP_FAILED);
	munmap((uint8_t *)hole + pg, pg);
	CHECK(ipd_mem_register(hole, 3 * pg, true, &runs, &nruns,
			       &fd) == EFAULT);
	CHECK(ipd_mem_pages_in_use() == 0);
	munmap(hole, 3 * pg);
}

/* Many MRs over a larger buffer, released in another order. */
static void test_many(void)
{
	const size_t len = 64 * pg;
	struct ipd_mem_run *runs;
	uint8_t *buf = NULL;
	size_t nruns, i;
	int fd;

	if (posix_memalign((void **)&buf, 64, len + 64)) {
		CHECK(!"posix_memalign");
		return;
	}
	fill(buf, len, 3);
	for (i = 0; i < 16; i++) {
		CHECK(ipd_mem_register(buf + i * 3 * pg + 17, 5 * pg, true,
				       &runs, &nruns, &fd) == 0);
		free(runs);
	}
	for (i = 16; i-- > 0;)
		if (i % 2)
			CHECK(ipd_mem_unregister(buf + i * 3 * pg + 17,
						 5 * pg) == 0);
	CHECK(same(buf, len, 3));
	for (i = 0; i < 16; i += 2)
		CHECK(ipd_mem_unregister(buf + i * 3 * pg + 17, 5 * pg) == 0);
	CHECK(ipd_mem_pages_in_use() == 0);
	CHECK(same(buf, len, 3));
	free(buf);
}

/*
 * Without MADV_DONTFORK (no ibv_fork_init()) a child shares registered
 * pages instead of copying them: the documented limitation, checked so
 * that a change of behaviour is noticed.
 */
static void test_fork(uint8_t *buf)
{
	struct ipd_mem_run *runs;
	size_t nruns;
	int fd, status;
	pid_t pid;

	fill(buf, pg, 5);
	CHECK(ipd_mem_register(buf, pg, false, &runs, &nruns, &fd) == 0);
	pid = fork();
	if (pid == 0) {
		buf[7] = 0x42;
		_exit(buf[100] == (uint8_t)(100 * 7 + 5) ? 0 : 1);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(buf[7] == 0x42);
	buf[7] = (uint8_t)(7 * 7 + 5);
	CHECK(ipd_mem_unregister(buf, pg) == 0);
	CHECK(same(buf, pg, 5));
	free(runs);
}

int main(void)
{
	uint8_t *buf;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	buf = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 1;
	test_unaligned(buf);
	test_shared_page(buf);
	test_errors(buf);
	test_many();
	test_fork(buf);
	munmap(buf, 4 * pg);
	if (failures) {
		fprintf(stderr, "test_arena: %d failures\n", failures);
		return 1;
	}
	printf("test_arena: ok\n");
	return 0;
}
