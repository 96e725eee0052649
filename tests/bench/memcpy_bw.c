/*
 * memcpy_bw: single-thread memcpy bandwidth, the floor for ipathd's
 * one-host bandwidth (the daemon moves every payload byte with one copy).
 *
 *   memcpy_bw [-t SECONDS] [SIZE...]
 *
 * For each block SIZE (bytes, suffixes K/M allowed; default 4K 64K 1M) two
 * figures are printed, one line each:
 *
 *   memcpy mode=hot  size=N bytes_per_sec=X
 *       the same SIZE-byte source copied to the same destination again and
 *       again (what perftest does: it reuses one buffer, so it stays in cache)
 *   memcpy mode=cold size=N bytes_per_sec=X
 *       SIZE-byte blocks copied from and to successive offsets of two 256 MiB
 *       arrays (caches do not help: the DRAM-bound figure)
 *
 * Each figure is the best of 3 timed runs of about SECONDS/6 each (default
 * total about 1 s per size).  Build: cc -O2 -o memcpy_bw memcpy_bw.c
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COLD_BYTES (256UL << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end || v == 0 || v > COLD_BYTES) {
		fprintf(stderr, "memcpy_bw: bad size '%s' (1..256M)\n", s);
		exit(2);
	}
	return (size_t)v;
}

/* Keeps the compiler from dropping copies whose result is never read. */
static volatile unsigned char sink;

static double run(unsigned char *src, unsigned char *dst, size_t span,
		  size_t size, double secs)
{
	double best = 0;

	for (int rep = 0; rep < 3; rep++) {
		size_t off = 0, bytes = 0;
		double t0 = now(), t;
		unsigned long n = 0;

		do {
			for (int k = 0; k < 64; k++) {
				memcpy(dst + off, src + off, size);
				__asm__ __volatile__("" ::: "memory");
				bytes += size;
				off += size;
				if (off + size > span)
					off = 0;
			}
			n++;
			t = now() - t0;
		} while (t < secs);
		sink = dst[off];
		if (bytes / t > best)
			best = bytes / t;
	}
	return best;
}

int main(int argc, char **argv)
{
	double secs = 1.0;
	int first = 1;
	static const char *defaults[] = { "4K", "64K", "1M" };
	const char **sizes;
	int nsizes;
	unsigned char *src, *dst;

	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		secs = atof(argv[2]);
		if (secs <= 0 || secs > 60) {
			fprintf(stderr, "memcpy_bw: -t wants 0..60 seconds\n");
			return 2;
		}
		first = 3;
	}
	if (argc > first) {
		sizes = (const char **)&argv[first];
		nsizes = argc - first;
	} else {
		sizes = defaults;
		nsizes = 3;
	}
	src = aligned_alloc(4096, COLD_BYTES);
	dst = aligned_alloc(4096, COLD_BYTES);
	if (!src || !dst) {
		perror("memcpy_bw: aligned_alloc");
		return 1;
	}
	/* Touch every page so that page faults stay out of the timing. */
	memset(src, 0x5a, COLD_BYTES);
	memset(dst, 0xa5, COLD_BYTES);
	for (int i = 0; i < nsizes; i++) {
		size_t size = parse_size(sizes[i]);

		printf("memcpy mode=hot size=%zu bytes_per_sec=%.0f\n", size,
		       run(src, dst, size, size, secs / 6));
		printf("memcpy mode=cold size=%zu bytes_per_sec=%.0f\n", size,
		       run(src, dst, COLD_BYTES, size, secs / 6));
		fflush(stdout);
	}
	free(src);
	free(dst);
	return 0;
}
