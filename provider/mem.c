// SPDX-License-Identifier: MIT
/*
 * The memory arena (see mem.h and docs/design.md "Memory registration").
 *
 * The arena is one memfd per process.  Registered virtual pages are tracked
 * as segments: runs of consecutive virtual pages backed by consecutive arena
 * pages with one reference count.  Segments never overlap and are kept
 * sorted by address, so registering splits segments at the new range's
 * edges, fills the holes with fresh arena pages and counts a reference on
 * every segment inside.  Arena space is handed out by a bump pointer; space
 * of released pages is punched out of the memfd, so the file stays sparse.
 * Segments of shared file mappings are "direct": never moved, their file
 * is opened again from /proc/self/maps at each registration.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "mem_wp.h"

struct mem_seg {
	uintptr_t start;	/* page aligned */
	size_t npages;
	uint64_t off;		/* arena offset of the first page */
	unsigned int refs;
	int prot;		/* the application's protection */
	bool direct;		/* a shared file mapping left in place (no
				 * arena space, off unused) */
	size_t page;		/* the mapping's page size (hugetlb) */
	unsigned int file;	/* arena file (arena.f[]) of a moved one */
};

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* One mapping of /proc/self/maps that a registration touches. */
struct mem_vma {
	uintptr_t start, end;
	int prot;
	bool shared;
	uint64_t pgoff;		/* file offset of start */
	dev_t dev;
	ino_t ino;
	int fd;			/* the mapped file, -1 if not opened */
	size_t page;		/* page size: huge page size on hugetlbfs */
	bool arena;		/* our own arena mapping */
};

/*
 * One memfd of the arena: f[0] holds base pages; private hugetlb mappings
 * move onto a hugetlb memfd of their huge page size (MFD_HUGETLB), so that
 * they keep their huge pages.
 */
struct arena_file {
	int fd;
	uint64_t end;		/* bump pointer: bytes handed out */
	size_t page;
	dev_t dev;
	ino_t ino;
};

#define ARENA_FILES 3		/* base pages and two huge page sizes */

static struct {
	pthread_mutex_t lock;
	struct arena_file f[ARENA_FILES];
	size_t page;
	struct mem_seg *segs;
	size_t nsegs, cap;
} arena = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.f = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 } },
};

static size_t seg_bytes(const struct mem_seg *s)
{
	return s->npages * arena.page;
}

static uintptr_t seg_end(const struct mem_seg *s)
{
	return s->start + seg_bytes(s);
}

/*
 * The arena file for pages of size page (creating it): *idx its index.
 * A hugetlb one is sealed against shrinking at once (the daemon seals the
 * base one): a truncated file would SIGBUS the daemon.
 */
static int arena_file(size_t page, unsigned int *idx)
{
	unsigned int flags = MFD_CLOEXEC | MFD_ALLOW_SEALING, i;
	struct arena_file *af = NULL;
	struct stat st;

	for (i = 0; i < ARENA_FILES; i++) {
		if (arena.f[i].fd >= 0 && arena.f[i].page == page) {
			*idx = i;
			return 0;
		}
		if (arena.f[i].fd < 0 && (i == 0) == (page == arena.page)) {
			af = &arena.f[i];
			break;
		}
	}
	if (!af)
		return EOPNOTSUPP;	/* a third huge page size */
	/* MFD_HUGE_SHIFT (linux/memfd.h, which clashes with glibc's
	 * declarations) is the same hugetlb encoding as MAP_HUGE_SHIFT. */
	if (page != arena.page)
		flags |= MFD_HUGETLB | (unsigned int)(__builtin_ctzll(page)
						      << MAP_HUGE_SHIFT);
	af->fd = memfd_create("ipathd-arena", flags);
	if (af->fd < 0)
		return errno;
	if (fstat(af->fd, &st) < 0 ||
	    (i && fcntl(af->fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)) {
		close(af->fd);
		af->fd = -1;
		return EIO;
	}
	af->page = page;
	af->dev = st.st_dev;
	af->ino = st.st_ino;
	*idx = i;
	return 0;
}

static int arena_open(void)
{
	unsigned int idx;

	if (!arena.page)
		arena.page = (size_t)sysconf(_SC_PAGESIZE);
	return arena_file(arena.page, &idx);
}

/*
 * Open the file a shared mapping maps: /proc/self/map_files needs
 * CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE); otherwise the path maps
 * names, if it still is the same file.  Learns the page size too.
 */
static void vma_open(struct mem_vma *v, const char *path)
{
	char mf[64];
	struct statfs sfs;
	struct stat st;
	int acc = v->shared && v->prot & PROT_WRITE ? O_RDWR : O_RDONLY;
	bool by_path = false;

	snprintf(mf, sizeof(mf), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)v->start, (unsigned long)v->end);
	v->fd = open(mf, acc | O_CLOEXEC);
	if (v->fd >= 0) {
		by_path = false;
	} else if (path[0] == '/') {
		v->fd = open(path, acc | O_CLOEXEC);
		by_path = true;
	}
	if (v->fd < 0)
		return;
	/* map_files is the mapping's file even when maps names another
	 * inode (SysV shm shows its shm file's); a path must match. */
	if (fstat(v->fd, &st) < 0 ||
	    (by_path && (st.st_dev != v->dev || st.st_ino != v->ino))) {
		close(v->fd);
		v->fd = -1;
		return;
	}
	v->dev = st.st_dev;	/* what reg_fd() compares */
	v->ino = st.st_ino;
	if (fstatfs(v->fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC)
		v->page = (size_t)sfs.f_bsize;
}

/*
 * The KernelPageSize /proc/self/smaps gives the mapping at start: how a
 * hugetlb mapping whose file we cannot open is recognised (slower: smaps
 * walks the page tables of every mapping).
 */
static size_t smaps_page(uintptr_t start)
{
	char line[512], perms[5];
	unsigned long s, e, kb;
	size_t page = arena.page;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return page;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) == 3)
			in = s == start;
		else if (in && sscanf(line, "KernelPageSize: %lu kB", &kb) == 1) {
			page = (size_t)kb << 10;
			break;
		}
	}
	fclose(f);
	return page;
}

/*
 * A mapping of a file: device 0 and inode 0 is anonymous memory.  The inode
 * alone does not tell: a SysV shm segment's inode number is its id, and
 * the first segment a machine creates has id 0.
 */
static bool vma_has_file(const struct mem_vma *v)
{
	return v->dev || v->ino;
}

static size_t seg_lower_bound(uintptr_t addr);

/*
 * The page size of our own arena pages at v, 0 if v is not ours: a segment
 * of moved pages holds v's start, and v maps that segment's arena file at
 * its offset.  The file alone does not tell: a SysV shm segment's inode
 * number (its id) may equal an arena memfd's on the same internal mount.
 */
static size_t vma_arena_page(const struct mem_vma *v)
{
	size_t i = seg_lower_bound(v->start);
	const struct mem_seg *sg;
	const struct arena_file *af;

	if (i == arena.nsegs)
		return 0;
	sg = &arena.segs[i];
	if (sg->start > v->start || sg->direct)
		return 0;
	af = &arena.f[sg->file];
	if (af->fd < 0 || af->dev != v->dev || af->ino != v->ino ||
	    v->pgoff != sg->off + (v->start - sg->start))
		return 0;
	return af->page;
}

/* Parse one line of /proc/self/maps; false if it is not one. */
static bool vma_parse(const char *line, struct mem_vma *v, char *path,
		      size_t pathlen)
{
	unsigned long start, end, pgoff, ino;
	unsigned int maj, min;
	char perms[5];
	size_t page;
	int n = 0;

	if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &start, &end, perms,
		   &pgoff, &maj, &min, &ino, &n) < 7)
		return false;
	snprintf(path, pathlen, "%s", line + n);
	path[strcspn(path, "\n")] = '\0';
	/* A deleted file's path is no use; map_files still opens it. */
	if (strstr(path, " (deleted)"))
		path[0] = '\0';
	*v = (struct mem_vma){
		.start = start, .end = end, .pgoff = pgoff,
		.dev = makedev(maj, min), .ino = (ino_t)ino, .fd = -1,
		.page = arena.page, .shared = perms[3] == 's',
		.prot = (perms[0] == 'r' ? PROT_READ : 0) |
			(perms[1] == 'w' ? PROT_WRITE : 0) |
			(perms[2] == 'x' ? PROT_EXEC : 0),
	};
	/* Pages moved earlier: hugetlb ones keep their huge page size. */
	page = vma_arena_page(v);
	if (page) {
		v->arena = true;
		v->page = page;
	}
	return true;
}

static void vmas_free(struct mem_vma *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].fd >= 0)
			close(v[i].fd);
	free(v);
}

/*
 * The mappings covering [begin, end), which must be covered without a gap
 * (EFAULT otherwise, as for pinning unmapped memory).  File mappings are
 * opened (to learn hugetlb page sizes and to pass shared ones on).
 */
static int vmas_read(uintptr_t begin, uintptr_t end, struct mem_vma **out,
		     size_t *nout)
{
	struct mem_vma *v = NULL, cur;
	size_t n = 0, cap = 0;
	uintptr_t next = begin;
	char line[4096 + 128], path[4096];
	int err = EFAULT;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return errno;
	while (next < end && fgets(line, sizeof(line), f)) {
		if (!vma_parse(line, &cur, path, sizeof(path)) ||
		    cur.end <= next)
			continue;
		if (cur.start > next)
			break;		/* a hole */
		if (n == cap) {
			struct mem_vma *nv;

			cap = cap ? 2 * cap : 8;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = ENOMEM;
				break;
			}
			v = nv;
		}
		if (vma_has_file(&cur) && !cur.arena)
			vma_open(&cur, path);
		if (vma_has_file(&cur) && !cur.arena && cur.fd < 0)
			cur.page = smaps_page(cur.start);
		v[n++] = cur;
		next = cur.end;
	}
	fclose(f);
	if (next < end) {
		vmas_free(v, n);
		return err;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* The mapping holding addr (which the walk covers). */
static struct mem_vma *vma_at(struct mem_vma *v, size_t n, uintptr_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].start <= addr && addr < v[i].end)
			return &v[i];
	return NULL;
}

/* Left in place and passed as its file: any shared file mapping we could
 * open (an app memfd, shm_open, SysV shm, hugetlbfs, MAP_SHARED anonymous
 * memory, a plain file). */
static bool vma_direct(const struct mem_vma *v)
{
	return v->shared && !v->arena && v->fd >= 0;
}

/* Index of the first segment ending after addr (nsegs if none). */
static size_t seg_lower_bound(uintptr_t addr)
{
	size_t lo = 0, hi = arena.nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (seg_end(&arena.segs[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int seg_insert(size_t idx, const struct mem_seg *s)
{
	if (arena.nsegs == arena.cap) {
		size_t cap = arena.cap ? arena.cap * 2 : 64;
		struct mem_seg *n = realloc(arena.segs, cap * sizeof(*n));

		if (!n)
			return ENOMEM;
		arena.segs = n;
		arena.cap = cap;
	}
	memmove(&arena.segs[idx + 1], &arena.segs[idx],
		(arena.nsegs - idx) * sizeof(*s));
	arena.segs[idx] = *s;
	arena.nsegs++;
	return 0;
}

static void seg_remove(size_t idx)
{
	arena.nsegs--;
	memmove(&arena.segs[idx], &arena.segs[idx + 1],
		(arena.nsegs - idx) * sizeof(arena.segs[0]));
}

/* Make addr a segment boundary (splitting the segment that spans it). */
static int seg_split_at(uintptr_t addr)
{
	size_t idx = seg_lower_bound(addr);
	struct mem_seg *s, tail;
	size_t head_pages;

	if (idx == arena.nsegs)
		return 0;
	s = &arena.segs[idx];
	if (s->start >= addr)
		return 0;
	head_pages = (addr - s->start) / arena.page;
	tail = *s;
	tail.start = addr;
	tail.npages -= head_pages;
	tail.off += head_pages * arena.page;
	s->npages = head_pages;
	return seg_insert(idx + 1, &tail);
}

/*
 * Copy len bytes from src to dst where src may not be mapped: a process's
 * own memory read through process_vm_readv faults with EFAULT instead of
 * SIGSEGV, which turns registering an unmapped buffer into an error.
 */
static int copy_checked(void *dst, const void *src, size_t len)
{
	struct iovec local = { .iov_base = dst, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)src, .iov_len = len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
		/* Sandboxed (seccomp): fall back to a plain copy. */
		memcpy(dst, src, len);
		return 0;
	}
	return EFAULT;
}

/* Move [start, start + bytes) onto fresh arena space at *off. */
static int arena_map_new_here(uintptr_t start, size_t bytes, bool dontfork,
			      int prot, struct arena_file *af, uint64_t *off)
{
	uint64_t o = af->end;
	struct ipd_wp wp;
	struct stat st;
	void *tmp, *p;
	int err;

	/* Grow only: the file is sealed against shrinking; space past end
	 * left by a failed move is simply reused. */
	if (fstat(af->fd, &st) < 0)
		return errno;
	if ((uint64_t)st.st_size < o + bytes &&
	    ftruncate(af->fd, (off_t)(o + bytes)) < 0)
		return errno;
	tmp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, af->fd,
		   (off_t)o);
	if (tmp == MAP_FAILED)
		return errno == EINVAL ? ENOMEM : errno; /* no huge pages */
	/* Writes by other threads wait from here until the new pages are
	 * in place, so none lands in a page already copied. */
	ipd_wp_begin(&wp, start, bytes);
	err = copy_checked(tmp, (void *)start, bytes);
	/* mremap replaces the old pages in one step: no moment without
	 * memory at start (another thread may be running there). */
	p = err ? MAP_FAILED :
		  mremap(tmp, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
			 (void *)start);
	if (p == MAP_FAILED && !err)
		err = errno;
	ipd_wp_end(&wp);
	if (err) {
		munmap(tmp, bytes);
		return err;
	}
	/* The new mapping lost the MADV_DONTFORK ibv_reg_mr applied. */
	if (dontfork)
		madvise((void *)start, bytes, MADV_DONTFORK);
	/* Keep a read-only or executable mapping as the application had it. */
	if (prot != (PROT_READ | PROT_WRITE))
		mprotect((void *)start, bytes, prot);
	af->end = o + bytes;
	*off = o;
	return 0;
}

/* Give a segment's pages back as private memory with their contents. */
static void arena_unmap_here(const struct mem_seg *s)
{
	size_t bytes = seg_bytes(s);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	struct ipd_wp wp;
	void *tmp, *p = MAP_FAILED;
	bool copied;

	if (s->page != arena.page)
		flags |= MAP_HUGETLB |
			 (__builtin_ctzll(s->page) << MAP_HUGE_SHIFT);
	tmp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
	/* Without memory to give the pages back in, they stay arena pages
	 * (their space is not released: the data is still there). */
	if (tmp == MAP_FAILED)
		return;
	/*
	 * If the application already unmapped the range there is nothing to
	 * give back; never map over what is there now.
	 */
	ipd_wp_begin(&wp, s->start, bytes);
	copied = !copy_checked(tmp, (void *)s->start, bytes);
	if (copied)
		p = mremap(tmp, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
			   (void *)s->start);
	ipd_wp_end(&wp);
	if (p == MAP_FAILED)
		munmap(tmp, bytes);
	if (copied && p == MAP_FAILED)
		return;
	if (p != MAP_FAILED && s->prot != (PROT_READ | PROT_WRITE))
		mprotect((void *)s->start, bytes, s->prot);
	fallocate(arena.f[s->file].fd,
		  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)s->off,
		  (off_t)bytes);
}

/*
 * Moving pages copies them and then swaps the mapping.  Other threads'
 * writes in between wait (mem_wp.h, where userfaultfd allows).  Anything
 * the calling thread writes to those pages in between is lost, and when the
 * range holds the caller's own stack (a stack buffer registered) that is
 * the return addresses and canaries of the very functions doing the move.
 * So when the range overlaps this thread's stack, another thread does the
 * move, and only once this one is parked inside a blocking read() (seen in
 * /proc/self/task/<tid>/syscall): in the kernel it writes nothing to its
 * stack.  A signal handler running on that stack meanwhile waits in the
 * write protection (mem_wp.h); without it, its writes may be lost.
 */
struct page_move {
	uintptr_t start;
	size_t bytes;
	bool dontfork;
	int prot;
	struct arena_file *af;
	uint64_t *off;
	const struct mem_seg *unmap;	/* non-NULL: give pages back */
	int err;
	pid_t waiter;			/* thread parked in read(park[0]) */
	int park[2];
};

static void page_move_run(struct page_move *m)
{
	if (m->unmap)
		arena_unmap_here(m->unmap);
	else
		m->err = arena_map_new_here(m->start, m->bytes, m->dontfork,
					    m->prot, m->af, m->off);
}

/* True once thread tid is blocked in read(fd, ...). */
static bool parked_in_read(pid_t tid, int fd)
{
	char path[64], buf[128];
	long nr, arg0;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return sscanf(buf, "%ld %lx", &nr, &arg0) == 2 && nr == SYS_read &&
	       arg0 == fd;
}

static void *page_move_thread(void *arg)
{
	struct page_move *m = arg;
	struct timespec nap = { 0, 50000 };
	char c = 0;
	int i;

	/* Bounded: about two seconds, then fail rather than corrupt. */
	for (i = 0; i < 40000 && !parked_in_read(m->waiter, m->park[0]); i++)
		nanosleep(&nap, NULL);
	if (i < 40000)
		page_move_run(m);
	else
		m->err = EAGAIN;
	if (write(m->park[1], &c, 1) != 1)
		m->err = m->err ? m->err : EIO;
	return NULL;
}

/*
 * Does [start, start + bytes) hold live frames of this thread?  Judged from
 * the stack pointer, not pthread_getattr_np(): for the main thread that
 * reads the [stack] mapping in /proc/self/maps, which our own remapping of
 * a registered stack page splits.  Live frames lie above the stack pointer;
 * the window below covers frames the move itself will push.  A false
 * positive only costs a thread.
 */
static bool on_own_stack(uintptr_t start, size_t bytes)
{
	const uintptr_t below = 256u << 10, above = 64u << 20;
	volatile char probe;
	uintptr_t sp = (uintptr_t)&probe;
	uintptr_t lo = sp > below ? sp - below : 0;
	uintptr_t hi = UINTPTR_MAX - sp > above ? sp + above : UINTPTR_MAX;

	return start < hi && lo < start + bytes;
}

/*
 * Does [start, start + bytes) come near this thread's TLS (errno, the
 * thread control block)?  While the range is write-protected (mem_wp.h)
 * a failing system call would then wait on itself, so the move goes to
 * another thread as for the stack.  The static TLS block sits below the
 * thread pointer; 64 KiB either side covers it in practice.
 */
static bool own_tls_near(uintptr_t start, size_t bytes)
{
	const uintptr_t margin = 64u << 10;
	uintptr_t p[] = { (uintptr_t)&errno, (uintptr_t)pthread_self() };

	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (start < p[i] + margin && p[i] < start + bytes + margin)
			return true;
	return false;
}

static int page_move(struct page_move *m)
{
	uintptr_t start = m->unmap ? m->unmap->start : m->start;
	size_t bytes = m->unmap ? seg_bytes(m->unmap) : m->bytes;
	pthread_t t;
	ssize_t n;
	char c;

	if (!on_own_stack(start, bytes) && !own_tls_near(start, bytes)) {
		page_move_run(m);
		return m->err;
	}
	if (pipe2(m->park, O_CLOEXEC))
		return errno;
	m->waiter = (pid_t)syscall(SYS_gettid);
	if (pthread_create(&t, NULL, page_move_thread, m)) {
		close(m->park[0]);
		close(m->park[1]);
		return EAGAIN;
	}
	do {
		n = read(m->park[0], &c, 1);
	} while (n < 0 && errno == EINTR);
	pthread_join(t, NULL);
	close(m->park[0]);
	close(m->park[1]);
	return m->err;
}

static int arena_map_new(uintptr_t start, size_t bytes, bool dontfork,
			 int prot, struct arena_file *af, uint64_t *off)
{
	struct page_move m = { .start = start, .bytes = bytes,
			       .dontfork = dontfork, .prot = prot, .af = af,
			       .off = off };

	return page_move(&m);
}

static void arena_unmap(const struct mem_seg *s)
{
	struct page_move m = { .unmap = s };

	page_move(&m);
}

/* Release the unreferenced segments in [begin, end) (error unwinding). */
static void release_unused(uintptr_t begin, uintptr_t end)
{
	size_t i = seg_lower_bound(begin);

	while (i < arena.nsegs && arena.segs[i].start < end) {
		if (arena.segs[i].refs == 0) {
			if (!arena.segs[i].direct)
				arena_unmap(&arena.segs[i]);
			seg_remove(i);
		} else {
			i++;
		}
	}
}

/*
 * A new segment for [cur, hole_end) that lies within the mapping v: a
 * shared file mapping stays in place, anything else moves to the arena.
 */
static int seg_new(uintptr_t cur, uintptr_t hole_end, const struct mem_vma *v,
		   bool dontfork, struct mem_seg *s)
{
	int err;

	*s = (struct mem_seg){ .start = cur,
			       .npages = (hole_end - cur) / arena.page,
			       .prot = v->prot, .direct = vma_direct(v),
			       .page = v->page };
	if (s->direct)
		return 0;
	/* A private hugetlb mapping moves onto hugetlb arena pages. */
	err = arena_file(v->page, &s->file);
	if (err)
		return err;
	return arena_map_new(cur, hole_end - cur, dontfork, v->prot,
			     &arena.f[s->file], &s->off);
}

/* Give every page of [begin, end) a segment (refs 0 for new ones). */
static int fill_holes(uintptr_t begin, uintptr_t end, bool dontfork,
		      struct mem_vma *vmas, size_t nvmas)
{
	uintptr_t cur = begin;
	size_t i = seg_lower_bound(begin);
	int err;

	while (cur < end) {
		uintptr_t hole_end = end;
		struct mem_seg s;

		if (i < arena.nsegs && arena.segs[i].start == cur) {
			cur = seg_end(&arena.segs[i++]);
			continue;
		}
		const struct mem_vma *v = vma_at(vmas, nvmas, cur);

		if (i < arena.nsegs && arena.segs[i].start < end)
			hole_end = arena.segs[i].start;
		if (!v)
			return EFAULT;
		if (hole_end > v->end)
			hole_end = v->end;	/* one mapping per segment */
		err = seg_new(cur, hole_end, v, dontfork, &s);
		if (err)
			return err;
		err = seg_insert(i, &s);
		if (err) {
			if (!s.direct)
				arena_unmap(&s);
			return err;
		}
		i++;
		cur = hole_end;
	}
	return 0;
}

/*
 * Index in reg->fds of file dev:ino, taking *fd over (and setting it to -1)
 * when the file is not there yet: several mappings of one file share one
 * entry.
 */
static int reg_fd(struct ipd_mem_reg *reg, dev_t dev, ino_t ino, int *fd,
		  unsigned int *idx)
{
	struct stat st;
	size_t i;

	for (i = 1; i < reg->nfds; i++) {
		if (fstat(reg->fds[i], &st) == 0 && st.st_dev == dev &&
		    st.st_ino == ino) {
			*idx = (unsigned int)i;
			return 0;
		}
	}
	if (*fd < 0)
		return EFAULT; /* a shared mapping we can no longer open */
	if (reg->nfds == IPD_MEM_MAX_FDS)
		return EINVAL; /* more files than one message carries */
	*idx = (unsigned int)reg->nfds;
	reg->fds[reg->nfds++] = *fd;
	*fd = -1;
	return 0;
}

/* The run (file, offset) backing segment s. */
static int seg_run(const struct mem_seg *s, struct mem_vma *vmas, size_t nvmas,
		   struct ipd_mem_reg *reg, struct ipd_mem_run *r)
{
	struct mem_vma *v;
	int err;

	r->npages = s->npages;
	r->fd = 0;
	r->file_offset = s->off;
	if (!s->direct && s->file) {
		const struct arena_file *af = &arena.f[s->file];
		int fd = dup(af->fd);

		err = fd < 0 ? errno
			     : reg_fd(reg, af->dev, af->ino, &fd, &r->fd);
		if (fd >= 0)
			close(fd);
		return err;
	}
	if (!s->direct)
		return 0;
	v = vma_at(vmas, nvmas, s->start);
	if (!v || seg_end(s) > v->end)
		return EFAULT;	/* remapped since it was registered */
	err = reg_fd(reg, v->dev, v->ino, &v->fd, &r->fd);
	if (err)
		return err;
	r->file_offset = v->pgoff + (s->start - v->start);
	return 0;
}

static int collect_runs(uintptr_t begin, uintptr_t end, struct mem_vma *vmas,
			size_t nvmas, struct ipd_mem_reg *reg)
{
	size_t first = seg_lower_bound(begin), i, n = 0;
	struct ipd_mem_run *r, cur;
	int err;

	for (i = first; i < arena.nsegs && arena.segs[i].start < end; i++)
		;
	r = calloc(i - first ? i - first : 1, sizeof(*r));
	if (!r)
		return ENOMEM;
	for (i = first; i < arena.nsegs && arena.segs[i].start < end; i++) {
		err = seg_run(&arena.segs[i], vmas, nvmas, reg, &cur);
		if (err) {
			free(r);
			return err;
		}
		if (n && r[n - 1].fd == cur.fd &&
		    r[n - 1].file_offset + r[n - 1].npages * arena.page ==
			    cur.file_offset) {
			r[n - 1].npages += cur.npages;
			continue;
		}
		r[n++] = cur;
	}
	reg->runs = r;
	reg->nruns = n;
	return 0;
}

static int page_range(void *addr, size_t len, uintptr_t *begin, uintptr_t *end)
{
	uintptr_t a = (uintptr_t)addr;

	if (len > UINTPTR_MAX - a - arena.page)
		return EINVAL;
	*begin = a & ~(uintptr_t)(arena.page - 1);
	*end = (a + len + arena.page - 1) & ~(uintptr_t)(arena.page - 1);
	return 0;
}

/* Merge neighbours around [begin, end) that split_at made needlessly. */
static void coalesce(uintptr_t begin, uintptr_t end)
{
	size_t i = seg_lower_bound(begin);

	if (i)
		i--;
	while (i + 1 < arena.nsegs && arena.segs[i].start <= end) {
		struct mem_seg *a = &arena.segs[i], *b = a + 1;

		if (seg_end(a) == b->start && a->refs == b->refs &&
		    !a->direct && !b->direct && a->prot == b->prot &&
		    a->file == b->file &&
		    a->off + seg_bytes(a) == b->off) {
			a->npages += b->npages;
			seg_remove(i + 1);
		} else {
			i++;
		}
	}
}

static void take_refs(uintptr_t begin, uintptr_t end)
{
	size_t i;

	for (i = seg_lower_bound(begin);
	     i < arena.nsegs && arena.segs[i].start < end; i++)
		arena.segs[i].refs++;
}

void ipd_mem_reg_release(struct ipd_mem_reg *reg)
{
	for (size_t i = 1; i < reg->nfds; i++)
		close(reg->fds[i]);
	reg->nfds = 0;
	free(reg->runs);
	reg->runs = NULL;
	reg->nruns = 0;
}

/*
 * Check access against the mappings (EFAULT: unreadable, or read-only when
 * write access is asked for) and widen [*begin, *end) to the huge pages of
 * hugetlb mappings at its ends.
 */
static int vmas_check(struct mem_vma *v, size_t n, bool write,
		      uintptr_t *begin, uintptr_t *end)
{
	for (size_t i = 0; i < n; i++)
		if (!(v[i].prot & PROT_READ) ||
		    (write && !(v[i].prot & PROT_WRITE)))
			return EFAULT;
	*begin &= ~(uintptr_t)(v[0].page - 1);
	*end = (*end + v[n - 1].page - 1) & ~(uintptr_t)(v[n - 1].page - 1);
	return 0;
}

int ipd_mem_register_reg(void *addr, size_t len, bool dontfork, bool write,
			 struct ipd_mem_reg *reg)
{
	struct mem_vma *vmas = NULL;
	uintptr_t begin, end;
	size_t nvmas = 0;
	int err;

	*reg = (struct ipd_mem_reg){ .nfds = 1, .fds[0] = -1 };
	pthread_mutex_lock(&arena.lock);
	err = arena_open();
	if (err)
		goto out;
	reg->fds[0] = arena.f[0].fd;
	if (!len)
		goto out;
	err = page_range(addr, len, &begin, &end);
	if (!err)
		err = vmas_read(begin, end, &vmas, &nvmas);
	if (!err)
		err = vmas_check(vmas, nvmas, write, &begin, &end);
	if (err)
		goto out;
	reg->map_start = begin;
	err = seg_split_at(begin);
	if (!err)
		err = seg_split_at(end);
	if (!err)
		err = fill_holes(begin, end, dontfork, vmas, nvmas);
	if (!err)
		err = collect_runs(begin, end, vmas, nvmas, reg);
	if (err) {
		release_unused(begin, end);
		ipd_mem_reg_release(reg);
		goto out;
	}
	take_refs(begin, end);
	coalesce(begin, end);
out:
	vmas_free(vmas, nvmas);
	pthread_mutex_unlock(&arena.lock);
	return err;
}

int ipd_mem_register(void *addr, size_t len, bool dontfork,
		     struct ipd_mem_run **runs, size_t *nruns, int *fd)
{
	struct ipd_mem_reg reg;
	int err = ipd_mem_register_reg(addr, len, dontfork, true, &reg);

	if (err)
		return err;
	*runs = reg.runs;
	*nruns = reg.nruns;
	*fd = reg.fds[0];
	reg.runs = NULL;
	ipd_mem_reg_release(&reg);
	return 0;
}

/* Widen [*begin, *end) as registering did: to the huge pages at its ends. */
static void widen_to_segs(uintptr_t *begin, uintptr_t *end)
{
	size_t i = seg_lower_bound(*begin);

	if (i < arena.nsegs && arena.segs[i].start <= *begin)
		*begin &= ~(uintptr_t)(arena.segs[i].page - 1);
	i = seg_lower_bound(*end - 1);
	if (i < arena.nsegs && arena.segs[i].start < *end)
		*end = (*end + arena.segs[i].page - 1) &
		       ~(uintptr_t)(arena.segs[i].page - 1);
}

/* Every page of [begin, end) is in a referenced segment. */
static bool range_registered(uintptr_t begin, uintptr_t end)
{
	uintptr_t cur = begin;
	size_t i;

	for (i = seg_lower_bound(begin); cur < end; i++) {
		if (i == arena.nsegs || arena.segs[i].start > cur ||
		    !arena.segs[i].refs)
			return false;
		cur = seg_end(&arena.segs[i]);
	}
	return true;
}

int ipd_mem_unregister(void *addr, size_t len)
{
	uintptr_t begin, end;
	size_t i;
	int err;

	if (!len)
		return 0;
	pthread_mutex_lock(&arena.lock);
	err = arena.f[0].fd < 0 ? EINVAL : page_range(addr, len, &begin, &end);
	if (err)
		goto out;
	widen_to_segs(&begin, &end);
	if (!range_registered(begin, end)) {
		err = EINVAL;
		goto out;
	}
	err = seg_split_at(begin);
	if (!err)
		err = seg_split_at(end);
	if (err)
		goto out;
	for (i = seg_lower_bound(begin);
	     i < arena.nsegs && arena.segs[i].start < end; i++)
		arena.segs[i].refs--;
	release_unused(begin, end);
	coalesce(begin, end);
out:
	pthread_mutex_unlock(&arena.lock);
	return err;
}

size_t ipd_mem_pages_in_use(void)
{
	size_t i, n = 0;

	pthread_mutex_lock(&arena.lock);
	for (i = 0; i < arena.nsegs; i++)
		n += arena.segs[i].npages;
	pthread_mutex_unlock(&arena.lock);
	return n;
}
