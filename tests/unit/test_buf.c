/*
 * test_buf.c - the capped buffer (core/buf.c): appends up to the cap and
 * not one byte past it, NUL termination, reserve/commit, consume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void
test_empty(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 16);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	buf_free(&b);
	buf_free(&b); /* twice is fine */
}

struct cap_case {
	size_t max;
	const char *pieces[4];
	int results[4];
	const char *text;
};

static const struct cap_case cap_cases[] = {
    {5, {"ab", "cd", "e", "f"}, {0, 0, 0, -1}, "abcde"},
    {5, {"abcdef", "abcde", "x", NULL}, {-1, 0, -1, 0}, "abcde"},
    {0, {"", "a", NULL, NULL}, {0, -1, 0, 0}, ""},
    {3, {"abc", "", "d", NULL}, {0, 0, -1, 0}, "abc"},
    {100, {"hello", ", ", "world", NULL}, {0, 0, 0, 0}, "hello, world"},
};

static void
test_cap_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cap_cases) / sizeof(cap_cases[0]); i++) {
		const struct cap_case *c = &cap_cases[i];
		struct buf b;
		buf_init(&b, c->max);
		for (size_t k = 0; k < 4 && c->pieces[k] != NULL; k++)
			assert_int_equal(buf_append_str(&b, c->pieces[k]), c->results[k]);
		assert_string_equal(buf_cstr(&b), c->text);
		assert_int_equal(b.len, strlen(c->text));
		assert_true(b.len <= b.max);
		buf_free(&b);
	}
}

static void
test_putc_and_growth(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), 0);
	assert_int_equal(buf_putc(&b, 'x'), -1);
	assert_int_equal(b.len, 1000);
	assert_true(b.cap <= 1001); /* never holds more than the cap allows */
	assert_int_equal(b.data[1000], '\0');
	assert_int_equal(b.data[999], 'a' + 999 % 26);
	buf_free(&b);
}

static void
test_printf(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 12);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "ab"), 0);
	assert_string_equal(buf_cstr(&b), "42-ab");
	assert_int_equal(buf_printf(&b, "%s", "1234567"), 0);
	assert_string_equal(buf_cstr(&b), "42-ab1234567");
	/* one over: refused, unchanged */
	assert_int_equal(buf_printf(&b, "%c", 'z'), -1);
	assert_string_equal(buf_cstr(&b), "42-ab1234567");
	buf_free(&b);
}

static void
test_reserve_commit(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 10);
	char *p = buf_reserve(&b, 8);
	assert_non_null(p);
	memcpy(p, "abc", 3);
	buf_commit(&b, 3);
	assert_string_equal(buf_cstr(&b), "abc");
	assert_null(buf_reserve(&b, 8)); /* 3 + 8 > 10 */
	assert_non_null(buf_reserve(&b, 7));
	assert_null(buf_reserve(&b, SIZE_MAX)); /* no wrap-around */
	assert_int_equal(buf_append(&b, "x", SIZE_MAX), -1);
	assert_string_equal(buf_cstr(&b), "abc");
	buf_free(&b);
}

static void
test_consume_reset(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 64);
	assert_int_equal(buf_append_str(&b, "hello world"), 0);
	buf_consume(&b, 6);
	assert_string_equal(buf_cstr(&b), "world");
	assert_int_equal(b.len, 5);
	buf_consume(&b, 0);
	assert_string_equal(buf_cstr(&b), "world");
	buf_consume(&b, 100);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_append_str(&b, "again"), 0);
	buf_reset(&b);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_append_str(&b, "x"), 0);
	assert_string_equal(buf_cstr(&b), "x");
	buf_wipe(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	/* usable after wipe */
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),	    cmocka_unit_test(test_cap_table),
	    cmocka_unit_test(test_putc_and_growth), cmocka_unit_test(test_printf),
	    cmocka_unit_test(test_reserve_commit),  cmocka_unit_test(test_consume_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
