// SPDX-License-Identifier: MIT
/* Handle tables: base offset, limits, no immediate reuse, lookups. */
#include <errno.h>

#include "check.h"
#include "ipathd.h"

static int objs[64];

static void test_init(void)
{
	struct ipd_table t;

	/* Handle 0 means "none": a table cannot start there. */
	CHECK(ipd_table_init(&t, 0, 4) == -EINVAL);
	CHECK(ipd_table_init(&t, 1, 0) == -EINVAL);
	CHECK(ipd_table_init(&t, 1u << 24, 4) == -EINVAL);
	CHECK(ipd_table_init(&t, 16, 4) == 0);
	CHECK(ipd_table_get(&t, 16) == NULL);
	CHECK(ipd_table_get(&t, 0) == NULL);
	ipd_table_fini(&t);
}

static void test_limit(void)
{
	struct ipd_table t;
	uint32_t h[3];

	CHECK(ipd_table_init(&t, 16, 3) == 0);
	for (int i = 0; i < 3; i++) {
		h[i] = ipd_table_insert(&t, &objs[i]);
		CHECK(h[i] == 16u + (uint32_t)i);
		CHECK(ipd_table_get(&t, h[i]) == &objs[i]);
	}
	errno = 0;
	CHECK(ipd_table_insert(&t, &objs[3]) == 0);
	CHECK(errno == ENOMEM);
	CHECK(t.count == 3);
	ipd_table_remove(&t, h[1]);
	CHECK(ipd_table_get(&t, h[1]) == NULL);
	CHECK(t.count == 2);
	/* Removing twice or an unknown handle changes nothing. */
	ipd_table_remove(&t, h[1]);
	ipd_table_remove(&t, 9999);
	CHECK(t.count == 2);
	ipd_table_fini(&t);
}

/* A freed handle is not handed out again by the next allocation. */
static void test_no_immediate_reuse(void)
{
	struct ipd_table t;
	uint32_t h, prev = 0;

	CHECK(ipd_table_init(&t, 1, 4) == 0);
	for (int i = 0; i < 40; i++) {
		h = ipd_table_insert(&t, &objs[i]);
		CHECK(h != 0);
		CHECK(h != prev);
		CHECK(h >= 1 && h < 1 + 2 * 4);  /* within twice the limit */
		CHECK(ipd_table_get(&t, h) == &objs[i]);
		ipd_table_remove(&t, h);
		prev = h;
	}
	CHECK(t.count == 0);
	ipd_table_fini(&t);
}

/* Live handles are unique while the cursor wraps around. */
static void test_wrap_unique(void)
{
	struct ipd_table t;
	uint32_t live[3] = { 0 };

	CHECK(ipd_table_init(&t, 100, 3) == 0);
	for (int i = 0; i < 30; i++) {
		int k = i % 3;

		if (live[k])
			ipd_table_remove(&t, live[k]);
		live[k] = ipd_table_insert(&t, &objs[i]);
		CHECK(live[k] != 0);
		for (int j = 0; j < 3; j++)
			if (j != k && live[j])
				CHECK(live[j] != live[k]);
		CHECK(ipd_table_get(&t, live[k]) == &objs[i]);
	}
	ipd_table_fini(&t);
}

/* Handles fit 24 bits (QPNs, MR key indices) even with a huge limit. */
static void test_handle_space(void)
{
	struct ipd_table t;

	CHECK(ipd_table_init(&t, (1u << 24) - 2, 1000) == 0);
	CHECK(t.max <= 2);
	CHECK(ipd_table_insert(&t, &objs[0]) == (1u << 24) - 2);
	CHECK(ipd_table_insert(&t, &objs[1]) == (1u << 24) - 1);
	CHECK(ipd_table_insert(&t, &objs[2]) == 0);
	ipd_table_fini(&t);
}

int main(void)
{
	test_init();
	test_limit();
	test_no_immediate_reuse();
	test_wrap_unique();
	test_handle_space();
	return check_done("table");
}
