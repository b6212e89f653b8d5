/*
 * test_arena.c - the region allocator (core/arena.c): alignment, zero
 * fill, big allocations, clear and reuse, string helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"

static const size_t sizes[] = {1, 2, 7, 15, 16, 17, 100, 1000, 1024, 1025, 4000, 5000, 70000};

static void
test_alloc_table(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	unsigned char *prev[sizeof(sizes) / sizeof(sizes[0])];
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = arena_alloc(a, sizes[i]);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(p[k], 0);
		memset(p, (int)(i + 1), sizes[i]);
		prev[i] = p;
	}
	/* nothing overlapped: each block still holds its own byte */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(prev[i][k], i + 1);
	}
	arena_destroy(&a);
	assert_null(a);
	arena_destroy(&a); /* NULL is fine */
}

static void
test_small_chunk(void **state)
{
	(void)state;
	/* A chunk of 64: most requests spill into new or own chunks. */
	struct arena *a = arena_new(64);
	for (int round = 0; round < 3; round++) {
		char *ptrs[50];
		for (int i = 0; i < 50; i++) {
			ptrs[i] = arena_printf(a, "item-%d-%d", round, i);
		}
		for (int i = 0; i < 50; i++) {
			char want[32];
			snprintf(want, sizeof(want), "item-%d-%d", round, i);
			assert_string_equal(ptrs[i], want);
		}
		char *big = arena_alloc(a, 1000);
		memset(big, 'x', 1000);
		assert_string_equal(ptrs[0], round == 0	  ? "item-0-0"
					     : round == 1 ? "item-1-0"
							  : "item-2-0");
		arena_clear(a);
		/* after clear, memory is zero-filled again */
		unsigned char *z = arena_alloc(a, 48);
		for (int k = 0; k < 48; k++)
			assert_int_equal(z[k], 0);
	}
	arena_destroy(&a);
}

static void
test_lazy_and_trim(void **state)
{
	(void)state;
	struct arena *a = arena_new(256);
	arena_clear(a); /* nothing allocated yet */
	arena_trim(a);
	/* A big request first: its own chunk, with no usual chunk yet. */
	char *big = arena_alloc(a, 1000);
	memset(big, 'b', 1000);
	char *s1 = arena_strdup(a, "after the big one");
	assert_string_equal(s1, "after the big one");
	assert_int_equal(big[999], 'b');
	arena_clear(a);
	for (int round = 0; round < 4; round++) {
		char *p[20];
		for (int i = 0; i < 20; i++)
			p[i] = arena_printf(a, "r%d-i%d", round, i);
		for (int i = 0; i < 20; i++) {
			char want[32];
			snprintf(want, sizeof(want), "r%d-i%d", round, i);
			assert_string_equal(p[i], want);
		}
		/* Alternate: keep the first chunk, or give every chunk back. */
		if (round % 2 == 0)
			arena_clear(a);
		else
			arena_trim(a);
		unsigned char *z = arena_alloc(a, 40);
		for (int k = 0; k < 40; k++)
			assert_int_equal(z[k], 0);
	}
	arena_trim(a);
	arena_destroy(&a); /* ASan: nothing leaked, nothing freed twice */
}

static void
test_strings(void **state)
{
	(void)state;
	struct arena *a = arena_new(128);
	char *s = arena_strdup(a, "hello");
	assert_string_equal(s, "hello");
	char *t = arena_strndup(a, "abcdef", 3);
	assert_string_equal(t, "abc");
	char *e = arena_strndup(a, "", 0);
	assert_string_equal(e, "");
	const unsigned char bytes[] = {0, 1, 2, 255};
	unsigned char *m = arena_memdup(a, bytes, sizeof(bytes));
	assert_memory_equal(m, bytes, sizeof(bytes));
	char *long_s = arena_printf(a, "%0500d", 7);
	assert_int_equal(strlen(long_s), 500);
	assert_int_equal(long_s[499], '7');
	assert_string_equal(s, "hello");
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_table),
	    cmocka_unit_test(test_small_chunk),
	    cmocka_unit_test(test_lazy_and_trim),
	    cmocka_unit_test(test_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
