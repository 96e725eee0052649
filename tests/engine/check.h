/* SPDX-License-Identifier: MIT */
/* Assertions for the engine unit tests: report every failure, then fail. */
#ifndef IPD_ENGINE_TEST_CHECK_H
#define IPD_ENGINE_TEST_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: FAILED: %s", __FILE__,    \
				__LINE__, #cond);                          \
			fprintf(stderr, " " __VA_ARGS__);                   \
			fputc('\n', stderr);                               \
			check_failures++;                                  \
		}                                                          \
	} while (0)

static inline int check_done(const char *name)
{
	if (check_failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name,
			check_failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

#endif
