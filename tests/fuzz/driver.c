// SPDX-License-Identifier: MIT
/*
 * A standalone driver for the LLVMFuzzerTestOneInput targets, for
 * compilers without libFuzzer (and for CI): replay every file of the seed
 * corpus, then a bounded number of deterministic mutations of them (bit
 * flips, byte and word overwrites with boundary values, length tweaks,
 * truncation, extension, deletion, duplication, splicing).  A crash or a
 * sanitizer report fails the test; so does a target's own check.
 *
 *   fuzz_<target> [-n ITERATIONS] [-s SEED] [-t SECONDS] CORPUS_DIR|FILE...
 *
 * The mutation sequence depends only on the corpus and SEED; -t stops
 * early (slow machines), never changes what a given iteration runs.
 * FUZZ_VERBOSE=1 prints each mutant's number so a failure can be replayed
 * with -n.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define FZ_MAX_INPUT 8192u
#define MAX_SEEDS    1024u

struct seed {
	uint8_t *data;
	size_t len;
};

static struct seed seeds[MAX_SEEDS];
static unsigned int nseeds;
static uint64_t rng_state;

/* xorshift64*: fixed sequence for a given seed. */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static int add_file(const char *path)
{
	struct seed *s = &seeds[nseeds];
	FILE *f;

	if (nseeds == MAX_SEEDS)
		return 0;
	f = fopen(path, "rb");
	if (!f)
		return -errno;
	s->data = malloc(FZ_MAX_INPUT);
	if (!s->data) {
		fclose(f);
		return -ENOMEM;
	}
	s->len = fread(s->data, 1, FZ_MAX_INPUT, f);
	fclose(f);
	nseeds++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files of a directory in name order (readdir order is not stable). */
static int add_path(const char *path)
{
	char *names[MAX_SEEDS], full[4096];
	struct dirent *de;
	struct stat st;
	unsigned int n = 0, i;
	int ret = 0;
	DIR *d;

	if (stat(path, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return add_file(path);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < MAX_SEEDS)
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (i = 0; i < n; i++) {
		snprintf(full, sizeof(full), "%s/%s", path, names[i]);
		if (!ret)
			ret = add_file(full);
		free(names[i]);
	}
	return ret;
}

static const uint32_t interesting[] = {
	0,	1,	2,	 3,	   4,	       0x7f,	   0x80,
	0xff,	0x100,	0x3ff,	 0x400,	   0xfff,      0x1000,	   0x7fff,
	0x8000, 0xffff, 0x10000, 0xffffff, 0x7fffffff, 0x80000000, 0xffffffff,
};

/* Overwrite 1, 2 or 4 bytes at off with v, either byte order. */
static void put_word(uint8_t *b, size_t len, size_t off, uint32_t v)
{
	size_t w = (size_t)1 << below(3), i;
	bool big = rnd() & 1;

	if (off + w > len)
		return;
	for (i = 0; i < w; i++)
		b[off + i] = (uint8_t)(v >> (8 * (big ? w - 1 - i : i)));
}

static size_t mutate_once(uint8_t *b, size_t len)
{
	size_t off = below(len), n, src;

	switch (below(9)) {
	case 0: /* bit flip */
		if (len)
			b[off] ^= (uint8_t)(1u << below(8));
		break;
	case 1: /* random byte */
		if (len)
			b[off] = (uint8_t)rnd();
		break;
	case 2: /* boundary value */
		put_word(b, len, off,
			 interesting[below(sizeof(interesting) /
					   sizeof(interesting[0]))]);
		break;
	case 3: /* length field tweak: +-1..4 on a byte or word */
		if (len)
			b[off] =
				(uint8_t)(b[off] + (rnd() & 1 ? 1 : -1) *
							   (int)(1 + below(4)));
		break;
	case 4: /* truncate */
		return below(len + 1);
	case 5: /* extend with random bytes */
		n = 1 + below(64);
		if (len + n > FZ_MAX_INPUT)
			n = FZ_MAX_INPUT - len;
		for (size_t i = 0; i < n; i++)
			b[len + i] = (uint8_t)rnd();
		return len + n;
	case 6: /* delete a range */
		n = below(len - off + 1);
		memmove(b + off, b + off + n, len - off - n);
		return len - n;
	case 7: /* duplicate a range */
		n = below(len - off + 1);
		if (len + n > FZ_MAX_INPUT)
			n = FZ_MAX_INPUT - len;
		memmove(b + off + n, b + off, len - off);
		return len + n;
	default: { /* splice in part of another seed */
		const struct seed *s = &seeds[below(nseeds)];

		src = below(s->len);
		n = below(s->len - src + 1);
		if (off + n > FZ_MAX_INPUT)
			n = FZ_MAX_INPUT - off;
		memcpy(b + off, s->data + src, n);
		return off + n > len ? off + n : len;
	}
	}
	return len;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long iters = 5000, seed = 1, i;
	double limit = 30, start;
	bool verbose = getenv("FUZZ_VERBOSE") != NULL;
	uint8_t *buf;
	int c, ret;

	while ((c = getopt(argc, argv, "n:s:t:")) != -1) {
		switch (c) {
		case 'n':
			iters = strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = strtoul(optarg, NULL, 0);
			break;
		case 't':
			limit = strtod(optarg, NULL);
			break;
		default:
			fprintf(stderr,
				"usage: %s [-n N] [-s SEED] [-t SECONDS] "
				"CORPUS...\n",
				argv[0]);
			return 2;
		}
	}
	for (; optind < argc; optind++) {
		ret = add_path(argv[optind]);
		if (ret) {
			fprintf(stderr, "%s: %s\n", argv[optind],
				strerror(-ret));
			return 2;
		}
	}
	if (!nseeds) {
		fprintf(stderr, "no seed inputs\n");
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 0; i < nseeds; i++)
		LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);

	buf = malloc(FZ_MAX_INPUT);
	if (!buf)
		return 1;
	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	start = now_s();
	for (i = 0; i < iters; i++) {
		const struct seed *s = &seeds[i % nseeds];
		size_t len = s->len;
		unsigned int k, n = 1 + (unsigned int)below(4);

		memcpy(buf, s->data, len);
		for (k = 0; k < n; k++)
			len = mutate_once(buf, len);
		if (verbose)
			fprintf(stderr, "mutant %lu (%zu bytes)\n", i, len);
		LLVMFuzzerTestOneInput(buf, len);
		if (now_s() - start > limit) {
			i++;
			break;
		}
	}
	printf("%u seeds, %lu mutants (seed %lu, %.1f s): no crash\n", nseeds,
	       i, seed, now_s() - start);
	free(buf);
	for (i = 0; i < nseeds; i++)
		free(seeds[i].data);
	return 0;
}
