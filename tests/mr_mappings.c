// SPDX-License-Identifier: MIT
/*
 * mr_mappings - registering memory of every kind of mapping an unmodified
 * application uses, with the data checked byte for byte through real RDMA
 * WRITE, READ and SEND between two RC QPs of one device.
 *
 * Sources: tests/mr_mappings.c, tests/vtest_common.c; links libibverbs.
 *
 *   mr_mappings [-d DEV] [-g IDX] [-t DIR] CASE...
 *     hugetlb   MAP_HUGETLB (shared and private), MFD_HUGETLB memfd and
 *               SHM_HUGETLB SysV memory (needs reserved huge pages)
 *     shared    MAP_SHARED file, shm_open, own memfd: RDMA writes reach
 *               the file; MAP_SHARED anonymous memory stays shared with a
 *               fork()ed child; a SysV shm segment attached twice (segment
 *               0 with IPD_EXPECT_SHM_ID0=1), and one whose id is the
 *               provider's arena memfd's inode number (as root)
 *     readonly  read-only mappings stay read-only; write access is
 *               refused with EFAULT (ib_umem_get pins with FOLL_WRITE),
 *               read access works
 *     race      a thread writes every word of a buffer once while another
 *               registers it: no write may be lost (needs userfaultfd
 *               write protection: root or vm.unprivileged_userfaultfd=1)
 *     truncate  a MAP_SHARED file, memfd and hugetlb memfd (skipped without
 *               free huge pages) truncated to 0 under their MR: RDMA
 *               READ gets zeros, WRITE completes, as with hardware's
 *               pinned pages; the daemon survives (the script checks it
 *               and its mr_truncated_faults counter)
 * Prints "PASS name" / "FAIL name: why"; exit status: failures (0: all
 * passed, at most 100), 2 on a setup error (also printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vtest_common.h"

#define LEN  (3 * 4096 + 500) /* crosses pages, not page aligned */
#define HUGE (2u << 20)

static struct vt_dev dev;
static struct vt_qp qa, qb;
static char why[512];
static const char *tmpdir = "/tmp";
static uint64_t seed = 1;

static const int full = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			IBV_ACCESS_REMOTE_READ;

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return 1;
}

/* A's local buffer (plain memory) for every transfer. */
static uint8_t *lbuf;
static struct ibv_mr *lmr;

/* Post one WR on A (and a receive on B for SEND), wait for it. */
static int xfer(enum ibv_wr_opcode op, void *remote, struct ibv_mr *rmr,
		size_t len)
{
	struct ibv_sge sge = {(uintptr_t)lbuf, (uint32_t)len, lmr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge,
				 .num_sge = 1,
				 .opcode = op,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;
	struct ibv_sge rsge = {(uintptr_t)remote, (uint32_t)len, rmr->lkey};
	struct ibv_recv_wr rwr = {.sg_list = &rsge, .num_sge = 1}, *rbad;
	struct ibv_wc wc;

	if (op == IBV_WR_SEND && ibv_post_recv(qb.qp, &rwr, &rbad))
		return fail("post_recv: %s", strerror(errno));
	wr.wr.rdma.remote_addr = (uintptr_t)remote;
	wr.wr.rdma.rkey = rmr->rkey;
	if (ibv_post_send(qa.qp, &wr, &bad))
		return fail("post_send: %s", strerror(errno));
	if (vt_poll(qa.scq, &wc, 1, VT_WAIT_MS) != 1 ||
	    wc.status != IBV_WC_SUCCESS)
		return fail("opcode %d: no successful completion", op);
	if (op == IBV_WR_SEND && (vt_poll(qb.rcq, &wc, 1, VT_WAIT_MS) != 1 ||
				  wc.status != IBV_WC_SUCCESS))
		return fail("SEND: no successful receive");
	return 0;
}

/*
 * Register buf+off (len bytes) with full access, RDMA WRITE fresh bytes into
 * it and check them in buf; then change them locally and RDMA READ them
 * back; then SEND into it.  view (may be NULL): another view of the same
 * memory that must show the written bytes too.
 */
static int rw_check(uint8_t *buf, const uint8_t *view, size_t len)
{
	struct ibv_mr *mr = ibv_reg_mr(dev.pd, buf, len, full);
	int err = 0;

	if (!mr)
		return fail("ibv_reg_mr: %s", strerror(errno));
	vt_fill_seeded(lbuf, len, seed++);
	if (xfer(IBV_WR_RDMA_WRITE, buf, mr, len))
		goto out;
	if (memcmp(buf, lbuf, len)) {
		err = fail("RDMA WRITE: the buffer differs");
		goto out;
	}
	if (view && memcmp(view, lbuf, len)) {
		err = fail("RDMA WRITE: not seen through the other view");
		goto out;
	}
	vt_fill_seeded(buf, len, seed++);
	memset(lbuf, 0, len);
	if (xfer(IBV_WR_RDMA_READ, buf, mr, len))
		goto out;
	if (memcmp(buf, lbuf, len)) {
		err = fail("RDMA READ: got other bytes");
		goto out;
	}
	vt_fill_seeded(lbuf, len, seed++);
	if (xfer(IBV_WR_SEND, buf, mr, len))
		goto out;
	if (memcmp(buf, lbuf, len))
		err = fail("SEND: the buffer differs");
out:
	if (why[0])
		err = 1;
	if (ibv_dereg_mr(mr) && !err)
		err = fail("ibv_dereg_mr: %s", strerror(errno));
	/* The contents survive deregistration. */
	if (!err && memcmp(buf, lbuf, len))
		err = fail("contents lost at dereg_mr");
	return err;
}

/* The mapping holding p, from /proc/self/smaps: perms and KernelPageSize. */
static int mapping_of(const void *p, char perms[5], unsigned long *kps)
{
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "re");
	bool in = false;
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char pr[5];

		if (sscanf(line, "%lx-%lx %4s", &s, &e, pr) == 3) {
			in = s <= (uintptr_t)p && (uintptr_t)p < e;
			if (in)
				memcpy(perms, pr, 5);
		} else if (in &&
			   sscanf(line, "KernelPageSize: %lu kB", kps) == 1) {
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int report(const char *name, int r)
{
	if (r)
		printf("FAIL %s: %s\n", name, why);
	else
		printf("PASS %s\n", name);
	why[0] = '\0';
	fflush(stdout);
	return r;
}

/* ---- files truncated under an MR ----------------------------------- */

/*
 * Fill sz bytes of fd through a shared mapping, register LEN bytes of it
 * at off, truncate the file to 0 and never touch the mapping again (it
 * would SIGBUS here).  The lost pages read as zeros, a WRITE completes
 * and a READ returns what it wrote.
 */
static int trunc_case(int fd, size_t sz, size_t off)
{
	uint8_t *p, *want = malloc(LEN);
	struct ibv_mr *mr = NULL;
	int err = 0;

	if (!want || ftruncate(fd, (off_t)sz))
		return fail("setup: %s", strerror(errno));
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap: %s", strerror(errno));
	memset(p, 0xa5, sz);
	mr = ibv_reg_mr(dev.pd, p + off, LEN, full);
	if (!mr) {
		err = fail("ibv_reg_mr: %s", strerror(errno));
		goto out;
	}
	if (ftruncate(fd, 0)) {
		err = fail("ftruncate to 0: %s", strerror(errno));
		goto out;
	}
	memset(lbuf, 0x5a, LEN);
	memset(want, 0, LEN);
	if (xfer(IBV_WR_RDMA_READ, p + off, mr, LEN))
		goto out;
	if (memcmp(lbuf, want, LEN)) {
		err = fail("RDMA READ of truncated pages: not zeros");
		goto out;
	}
	vt_fill_seeded(lbuf, LEN, seed++);
	memcpy(want, lbuf, LEN);
	if (xfer(IBV_WR_RDMA_WRITE, p + off, mr, LEN))
		goto out;
	memset(lbuf, 0, LEN);
	if (xfer(IBV_WR_RDMA_READ, p + off, mr, LEN))
		goto out;
	if (memcmp(lbuf, want, LEN))
		err = fail("RDMA READ after WRITE: other bytes");
out:
	if (why[0])
		err = 1;
	if (mr && ibv_dereg_mr(mr) && !err)
		err = fail("ibv_dereg_mr: %s", strerror(errno));
	munmap(p, sz);
	free(want);
	return err;
}

static int run_truncate(void)
{
	char path[512];
	int fails = 0, fd;
	void *p;

	snprintf(path, sizeof(path), "%s/mr_mappings.XXXXXX", tmpdir);
	fd = mkstemp(path);
	if (fd < 0)
		return -2;
	unlink(path);
	fails += report("truncate-file", trunc_case(fd, 4 * 4096, 100));
	close(fd);
	fd = memfd_create("mm-trunc", MFD_CLOEXEC);
	if (fd < 0)
		return -2;
	fails += report("truncate-memfd", trunc_case(fd, 4 * 4096, 100));
	close(fd);
	/* Huge pages, with the MR across a huge page boundary (the hugetlb
	 * memfd must be passed as a file: needs /proc/self/map_files). */
	fd = memfd_create("mm-trunc-huge", MFD_CLOEXEC | MFD_HUGETLB);
	p = fd < 0 || ftruncate(fd, 2 * HUGE)
		    ? MAP_FAILED
		    : mmap(NULL, 2 * HUGE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("SKIP truncate-hugetlb-memfd: %s\n", strerror(errno));
	} else {
		munmap(p, 2 * HUGE);
		fails += report("truncate-hugetlb-memfd",
				trunc_case(fd, 2 * HUGE, HUGE - 1000));
	}
	if (fd >= 0)
		close(fd);
	return fails;
}

/* SysV shm: a segment of len bytes; with IPD_EXPECT_SHM_ID0=1 (when
 * mr-mappings.sh set kernel.shm_next_id to 0) it must be segment 0, whose
 * /proc/self/maps line shows inode 0 as anonymous memory does. */
static int sysv_get(size_t len, int flags, int *id)
{
	const char *want0 = getenv("IPD_EXPECT_SHM_ID0");

	*id = shmget(IPC_PRIVATE, len, flags | IPC_CREAT | 0600);
	if (*id < 0)
		return fail("shmget: %s", strerror(errno));
	printf("SysV shm segment id %d\n", *id);
	if (want0 && !strcmp(want0, "1") && *id != 0) {
		shmctl(*id, IPC_RMID, NULL);
		return fail("SysV shm segment %d, not 0 as set", *id);
	}
	return 0;
}

/* ---- hugetlb ------------------------------------------------------ */

/*
 * Register inside a 2-huge-page buffer, while another MR covers all of it
 * (pages registered twice); it must stay on huge pages.
 */
static int huge_case(uint8_t *buf)
{
	struct ibv_mr *all = ibv_reg_mr(dev.pd, buf + 8, 2 * HUGE - 8, full);
	unsigned long kps = 0;
	char perms[5];
	int err;

	if (!all)
		return fail("ibv_reg_mr of the whole buffer: %s",
			    strerror(errno));
	err = rw_check(buf + HUGE - 1000, NULL, LEN);
	if (ibv_dereg_mr(all) && !err)
		err = fail("ibv_dereg_mr: %s", strerror(errno));
	if (!err && memcmp(buf + HUGE - 1000, lbuf, LEN))
		err = fail("contents lost at the last dereg_mr");
	if (!err && (mapping_of(buf, perms, &kps) || kps != HUGE >> 10))
		err = fail("no longer on huge pages (KernelPageSize %lu kB)",
			   kps);
	return err;
}

static int run_hugetlb(void)
{
	static const struct {
		const char *name;
		int flags;
	} maps[] = {
		{"hugetlb-map-shared", MAP_SHARED},
		{"hugetlb-map-private", MAP_PRIVATE},
	};
	int fails = 0, fd, id;
	uint8_t *p;

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		p = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE,
			 maps[i].flags | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "MAP_HUGETLB: %s\n", strerror(errno));
			return -2;
		}
		fails += report(maps[i].name, huge_case(p));
		munmap(p, 2 * HUGE);
	}
	fd = memfd_create("mm-huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (fd < 0 || ftruncate(fd, 2 * HUGE))
		return -2;
	p = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -2;
	fails += report("hugetlb-memfd", huge_case(p));
	munmap(p, 2 * HUGE);
	close(fd);
	/* What perftest --use_hugepages does. */
	if (sysv_get(2 * HUGE, SHM_HUGETLB, &id))
		return fails + report("hugetlb-sysv-shm", 1);
	p = shmat(id, NULL, 0);
	shmctl(id, IPC_RMID, NULL);
	if (p == (void *)-1)
		return -2;
	fails += report("hugetlb-sysv-shm", huge_case(p));
	shmdt(p);
	return fails;
}

/* ---- shared mappings ---------------------------------------------- */

/* Two views a and b of the same pages: RDMA through a shows in b, and
 * they stay the same pages (a write through b shows in a). */
static int views_case(uint8_t *a, uint8_t *b)
{
	int err = rw_check(a + 100, b + 100, LEN);

	if (!err) {
		b[5] ^= 0x5a;
		if (a[5] != b[5])
			err = fail("the mapping is no longer the file's");
	}
	return err;
}

/* A file of 4 pages mapped shared twice: RDMA lands in the file. */
static int file_case(int fd)
{
	size_t sz = 4 * 4096;
	uint8_t *a, *b, *back;
	int err;

	if (ftruncate(fd, (off_t)sz))
		return fail("ftruncate: %s", strerror(errno));
	a = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	back = malloc(sz);
	if (a == MAP_FAILED || b == MAP_FAILED || !back)
		return fail("mmap: %s", strerror(errno));
	err = views_case(a, b);
	if (!err &&
	    (pread(fd, back, LEN, 100) != LEN || memcmp(back, lbuf, LEN)))
		err = fail("read(2) of the file does not show the data");
	munmap(a, sz);
	munmap(b, sz);
	free(back);
	return err;
}

static int fork_case(void)
{
	size_t sz = 4 * 4096;
	uint8_t *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int go[2], done[2], st, err;
	pid_t pid;
	char c;

	if (p == MAP_FAILED || pipe(go) || pipe(done))
		return fail("setup: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		/* The child: wait, then check what the parent left. */
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(memcmp(p + 100, lbuf, LEN) ? 1 : 0);
	}
	err = rw_check(p + 100, NULL, LEN);
	if (write(go[1], "x", 1) != 1 || waitpid(pid, &st, 0) != pid)
		return fail("child: %s", strerror(errno));
	if (!err && (!WIFEXITED(st) || WEXITSTATUS(st)))
		err = fail("the child does not see the RDMA data (status %d)",
			   st);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
	munmap(p, sz);
	return err;
}

/* The device and inode number /proc/self/maps gives a mapping. */
struct map_file {
	unsigned int maj, min;
	unsigned long ino;
};

static int file_of(const void *p, struct map_file *mf)
{
	char line[4096 + 128];
	FILE *f = fopen("/proc/self/maps", "re");
	int ret = -1;

	if (!f)
		return -1;
	while (ret && fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx %*s %*x %x:%x %lu", &s, &e, &mf->maj,
			   &mf->min, &mf->ino) == 5 &&
		    s <= (uintptr_t)p && (uintptr_t)p < e)
			ret = 0;
	}
	fclose(f);
	return ret;
}

/* Segment id attached twice and removed: views_case on the two views;
 * with want, only once the segment is found to be that file. */
static int sysv_views(int id, const struct map_file *want)
{
	uint8_t *a = shmat(id, NULL, 0), *b = shmat(id, NULL, 0);
	struct map_file got = {0};
	int err;

	shmctl(id, IPC_RMID, NULL);
	if (a == (void *)-1 || b == (void *)-1)
		err = fail("shmat: %s", strerror(errno));
	else if (want && (file_of(a, &got) || got.maj != want->maj ||
			  got.min != want->min || got.ino != want->ino))
		err = fail("segment %d is %u:%u %lu, the arena %u:%u %lu: "
			   "nothing staged",
			   id, got.maj, got.min, got.ino, want->maj, want->min,
			   want->ino);
	else
		err = views_case(a, b);
	if (a != (void *)-1)
		shmdt(a);
	if (b != (void *)-1)
		shmdt(b);
	return err;
}

/* A SysV shm segment attached twice (run first: segment 0, see above). */
static int sysv_case(void)
{
	int id, err = sysv_get(4 * 4096, 0, &id);

	return err ? err : sysv_views(id, NULL);
}

/*
 * A SysV shm segment whose id, hence inode number, is that of the
 * provider's arena memfd (same internal shmem mount): it is still the
 * application's memory, not arena pages.  Needs root to set
 * kernel.shm_next_id; 1 when it could not be staged (skipped).
 */
static int sysv_arena_ino_case(int *err)
{
	size_t sz = 4 * 4096;
	uint8_t *priv = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *mr;
	struct map_file arena_mf = {0};
	unsigned long ino;
	const char *skip = NULL;
	FILE *f;
	int id, werr;

	*err = 0;
	if (priv == MAP_FAILED)
		return *err = fail("mmap: %s", strerror(errno)), 0;
	/* Registering a private mapping moves it onto the arena. */
	mr = ibv_reg_mr(dev.pd, priv, sz, full);
	if (!mr || file_of(priv, &arena_mf) || !arena_mf.ino) {
		*err = fail("a registered private mapping is not on the arena");
		goto out;
	}
	ino = arena_mf.ino;
	f = fopen("/proc/sys/kernel/shm_next_id", "we");
	if (!f)
		skip = strerror(errno);
	else if (ino > INT_MAX)
		skip = "the inode number is no SysV shm id";
	if (f) {
		werr = fprintf(f, "%lu", ino) < 0;
		werr |= fclose(f) != 0;
		if (werr && !skip)
			skip = strerror(errno);
	}
	if (skip) {
		printf("SKIP shared-sysv-shm-arena-inode: segment %lu: %s\n",
		       ino, skip);
		ibv_dereg_mr(mr);
		munmap(priv, sz);
		return 1;
	}
	id = shmget(IPC_PRIVATE, sz, IPC_CREAT | 0600);
	if (id < 0 || (unsigned long)id != ino) {
		*err = fail("shmget gave segment %d, not %lu (%s)", id, ino,
			    strerror(errno));
		if (id >= 0)
			shmctl(id, IPC_RMID, NULL);
		goto out;
	}
	*err = sysv_views(id, &arena_mf);
out:
	if (mr)
		ibv_dereg_mr(mr);
	munmap(priv, sz);
	return 0;
}

static int run_shared(void)
{
	char path[512];
	int fails = report("shared-sysv-shm", sysv_case()), fd;

	snprintf(path, sizeof(path), "%s/mr_mappings.XXXXXX", tmpdir);
	fd = mkstemp(path);
	if (fd < 0)
		return -2;
	unlink(path);
	fails += report("shared-file", file_case(fd));
	close(fd);
	snprintf(path, sizeof(path), "/mr_mappings.%d", (int)getpid());
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -2;
	shm_unlink(path);
	fails += report("shared-shm-open", file_case(fd));
	close(fd);
	fd = memfd_create("mm-app", MFD_CLOEXEC);
	if (fd < 0)
		return -2;
	fails += report("shared-memfd", file_case(fd));
	close(fd);
	fails += report("shared-anon-fork", fork_case());
	int err;

	if (!sysv_arena_ino_case(&err))
		fails += report("shared-sysv-shm-arena-inode", err);
	return fails;
}

/* ---- read-only mappings ------------------------------------------- */

/*
 * buf (LEN bytes, read-only, holding expect): write access is refused
 * with EFAULT; REMOTE_READ and SEND-source registrations work; the
 * mapping stays read-only.
 */
static int ro_case(uint8_t *buf, const uint8_t *expect)
{
	static const int writes[] = {IBV_ACCESS_LOCAL_WRITE, full,
				     IBV_ACCESS_LOCAL_WRITE |
					     IBV_ACCESS_REMOTE_ATOMIC};
	struct ibv_mr *mr;
	char perms[5];
	unsigned long kps;
	uint8_t *rbuf;
	struct ibv_mr *rmr;
	int err = 0;

	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		errno = 0;
		mr = ibv_reg_mr(dev.pd, buf, LEN, writes[i]);
		if (mr) {
			ibv_dereg_mr(mr);
			return fail(
				"access 0x%x registered on read-only memory",
				writes[i]);
		}
		if (errno != EFAULT)
			return fail("access 0x%x: errno %d, not EFAULT",
				    writes[i], errno);
	}
	mr = ibv_reg_mr(dev.pd, buf, LEN, IBV_ACCESS_REMOTE_READ);
	if (!mr)
		return fail("REMOTE_READ registration: %s", strerror(errno));
	memset(lbuf, 0, LEN);
	if (xfer(IBV_WR_RDMA_READ, buf, mr, LEN))
		err = 1;
	else if (memcmp(lbuf, expect, LEN))
		err = fail("RDMA READ from read-only memory: other bytes");
	if (!err && (mapping_of(buf, perms, &kps) || perms[1] != '-'))
		err = fail("the mapping became writable (%s)", perms);
	/* SEND from it (a local-read-only lkey), into B's plain buffer. */
	rbuf = calloc(1, LEN);
	rmr = rbuf ? ibv_reg_mr(dev.pd, rbuf, LEN, IBV_ACCESS_LOCAL_WRITE)
		   : NULL;
	if (!err && rmr) {
		struct ibv_sge sge = {(uintptr_t)buf, LEN, mr->lkey};
		struct ibv_sge rs = {(uintptr_t)rbuf, LEN, rmr->lkey};
		struct ibv_send_wr wr = {.sg_list = &sge,
					 .num_sge = 1,
					 .opcode = IBV_WR_SEND,
					 .send_flags = IBV_SEND_SIGNALED},
				   *bad;
		struct ibv_recv_wr rwr = {.sg_list = &rs, .num_sge = 1}, *rb;
		struct ibv_wc wc;

		if (ibv_post_recv(qb.qp, &rwr, &rb) ||
		    ibv_post_send(qa.qp, &wr, &bad) ||
		    vt_poll(qa.scq, &wc, 1, VT_WAIT_MS) != 1 ||
		    wc.status != IBV_WC_SUCCESS ||
		    vt_poll(qb.rcq, &wc, 1, VT_WAIT_MS) != 1 ||
		    wc.status != IBV_WC_SUCCESS)
			err = fail("SEND from read-only memory failed");
		else if (memcmp(rbuf, expect, LEN))
			err = fail("SEND from read-only memory: other bytes");
	} else if (!err) {
		err = fail("setup: %s", strerror(errno));
	}
	if (rmr)
		ibv_dereg_mr(rmr);
	free(rbuf);
	if (ibv_dereg_mr(mr) && !err)
		err = fail("ibv_dereg_mr: %s", strerror(errno));
	if (!err && (mapping_of(buf, perms, &kps) || perms[1] != '-' ||
		     memcmp(buf, expect, LEN)))
		err = fail("after dereg_mr: %s or contents changed", perms);
	return err;
}

static int run_readonly(void)
{
	uint8_t *expect = malloc(LEN), *p;
	char path[512];
	int fails = 0, fd;

	if (!expect)
		return -2;
	vt_fill_seeded(expect, LEN, 77);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return -2;
	memcpy(p, expect, LEN);
	mprotect(p, LEN, PROT_READ);
	fails += report("readonly-anon", ro_case(p, expect));
	munmap(p, LEN);

	snprintf(path, sizeof(path), "%s/mr_mappings.XXXXXX", tmpdir);
	fd = mkstemp(path);
	if (fd < 0 || write(fd, expect, LEN) != LEN)
		return -2;
	close(fd);
	fd = open(path, O_RDONLY);
	unlink(path);
	if (fd < 0)
		return -2;
	p = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return -2;
	fails += report("readonly-file-private", ro_case(p, expect));
	munmap(p, LEN);
	p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -2;
	fails += report("readonly-file-shared", ro_case(p, expect));
	munmap(p, LEN);
	close(fd);
	free(expect);
	return fails;
}

/* ---- a write racing with the registration ---------------------------- */

#define RACE_LEN (64u << 20)

static atomic_int race_go;

static void *race_writer(void *arg)
{
	volatile uint64_t *w = arg;

	while (!atomic_load(&race_go))
		;
	for (size_t i = 0; i < RACE_LEN / 8; i++)
		w[i] = i + 1;
	return NULL;
}

static int race_case(void)
{
	uint64_t *w = mmap(NULL, RACE_LEN, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *mr = NULL;
	pthread_t t;
	size_t lost = 0;
	int err = 0;

	if (w == MAP_FAILED)
		return fail("mmap: %s", strerror(errno));
	memset(w, 0, RACE_LEN); /* populated: the copy takes a while */
	atomic_store(&race_go, 0);
	if (pthread_create(&t, NULL, race_writer, w))
		return fail("pthread_create");
	atomic_store(&race_go, 1);
	mr = ibv_reg_mr(dev.pd, w, RACE_LEN, full);
	if (!mr)
		err = fail("ibv_reg_mr: %s", strerror(errno));
	pthread_join(t, NULL);
	for (size_t i = 0; i < RACE_LEN / 8; i++)
		lost += w[i] != i + 1;
	if (!err && lost)
		err = fail("%zu of %u words written during ibv_reg_mr lost",
			   lost, RACE_LEN / 8);
	if (mr && ibv_dereg_mr(mr) && !err)
		err = fail("ibv_dereg_mr: %s", strerror(errno));
	munmap(w, RACE_LEN);
	return err;
}

static int run_race(void)
{
	int fails = 0, fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);

	/* The protection needs userfaultfd with kernel-mode faults. */
	if (fd < 0) {
		printf("SKIP race-write-during-reg: userfaultfd: %s\n",
		       strerror(errno));
		return 0;
	}
	close(fd);

	/* Several tries: the writer must overlap the copy at least once. */
	for (int i = 0; i < 5; i++)
		fails += report("race-write-during-reg", race_case());
	return fails;
}

int main(int argc, char **argv)
{
	struct vt_qp_opts o = {.type = IBV_QPT_RC};
	const char *name = NULL;
	int gid = -1, opt, fails = 0;

	while ((opt = getopt(argc, argv, "d:g:t:v")) != -1) {
		switch (opt) {
		case 'd':
			name = optarg;
			break;
		case 'g':
			gid = atoi(optarg);
			break;
		case 't':
			tmpdir = optarg;
			break;
		case 'v':
			vt_verbose = 1;
			break;
		default:
			return 2;
		}
	}
	if (vt_open(&dev, name, gid) || vt_qp_create(&dev, &qa, &o) ||
	    vt_qp_create(&dev, &qb, &o) || vt_connect(&dev, &qa, &qb, NULL))
		return 2;
	lbuf = calloc(1, LEN);
	lmr = lbuf ? ibv_reg_mr(dev.pd, lbuf, LEN, full) : NULL;
	if (!lmr)
		return 2;
	for (int i = optind; i < argc; i++) {
		int r = !strcmp(argv[i], "hugetlb")    ? run_hugetlb()
			: !strcmp(argv[i], "shared")   ? run_shared()
			: !strcmp(argv[i], "readonly") ? run_readonly()
			: !strcmp(argv[i], "race")     ? run_race()
			: !strcmp(argv[i], "truncate") ? run_truncate()
						       : -1;

		if (r < 0) {
			fprintf(stderr, "%s: %s\n", argv[i],
				r == -1 ? "unknown case" : "setup failed");
			return 2;
		}
		fails += r;
	}
	ibv_dereg_mr(lmr);
	vt_qp_destroy(&qa);
	vt_qp_destroy(&qb);
	vt_close(&dev);
	return fails > 100 ? 100 : fails;
}
