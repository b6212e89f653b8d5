/*
 * test_dir_cache.c - the directory answer cache (directory/dir_cache.c):
 * positive and negative TTLs against a fake clock, TEMPFAIL never stored,
 * copies that do not alias the cache, flush generations and eviction of
 * the oldest entry when full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "directory/dir_cache.h"

static uint64_t fake_now;

static uint64_t
fake_clock(void)
{
	return fake_now;
}

static const struct dir_user alice = {
    .id = "6c0e7966-7f4e-1041-9570-ddd4c5e0f85d",
    .dn = "uid=alice,ou=people,dc=example,dc=test",
    .login = "alice",
    .mail = "alice@example.test",
    .quota = 1048576,
};

static struct dir_cache *
new_cache(size_t max)
{
	fake_now = 1000000;
	return dir_cache_new(max, 60, 10, fake_clock);
}

static void
test_positive_ttl(void **state)
{
	(void)state;
	struct dir_cache *c = new_cache(100);
	struct dir_cache_value *v = NULL;
	const char *fw[] = {"bob@elsewhere.test"};

	assert_int_equal(dir_cache_get(c, "r:alice@example.test", &v), 0);
	assert_null(v);
	dir_cache_put(c, dir_cache_generation(c), "r:alice@example.test", DIR_OK, &alice, 1, fw, 1);
	fake_now += 59999;
	assert_int_equal(dir_cache_get(c, "r:alice@example.test", &v), 1);
	assert_int_equal(v->status, DIR_OK);
	assert_int_equal(v->nusers, 1);
	assert_string_equal(v->users[0].id, alice.id);
	assert_string_equal(v->users[0].dn, alice.dn);
	assert_string_equal(v->users[0].login, "alice");
	assert_string_equal(v->users[0].mail, "alice@example.test");
	assert_int_equal(v->users[0].quota, 1048576);
	assert_int_equal(v->nforwards, 1);
	assert_string_equal(v->forwards[0], "bob@elsewhere.test");
	/* The copy is ours: changing it does not change the cache. */
	v->forwards[0][0] = 'X';
	dir_cache_value_free(v);
	assert_int_equal(dir_cache_get(c, "r:alice@example.test", &v), 1);
	assert_string_equal(v->forwards[0], "bob@elsewhere.test");
	dir_cache_value_free(v);

	fake_now += 1; /* 60 s after the put */
	assert_int_equal(dir_cache_get(c, "r:alice@example.test", &v), 0);
	assert_null(v);
	assert_int_equal(dir_cache_count(c), 0); /* expired entries go */
	dir_cache_destroy(&c);
	assert_null(c);
}

static void
test_negative_ttl(void **state)
{
	(void)state;
	struct dir_cache *c = new_cache(100);
	struct dir_cache_value *v = NULL;

	dir_cache_put(c, dir_cache_generation(c), "r:nobody@example.test", DIR_NOTFOUND, NULL, 0,
		      NULL, 0);
	dir_cache_put(c, dir_cache_generation(c), "r:dup@example.test", DIR_PERMFAIL, NULL, 0, NULL,
		      0);
	fake_now += 9999;
	assert_int_equal(dir_cache_get(c, "r:nobody@example.test", &v), 1);
	assert_int_equal(v->status, DIR_NOTFOUND);
	assert_int_equal(v->nusers, 0);
	assert_null(v->users);
	dir_cache_value_free(v);
	assert_int_equal(dir_cache_get(c, "r:dup@example.test", &v), 1);
	assert_int_equal(v->status, DIR_PERMFAIL);
	dir_cache_value_free(v);
	fake_now += 1;
	assert_int_equal(dir_cache_get(c, "r:nobody@example.test", &v), 0);
	assert_int_equal(dir_cache_get(c, "r:dup@example.test", &v), 0);
	dir_cache_destroy(&c);
}

static void
test_tempfail_never_cached(void **state)
{
	(void)state;
	struct dir_cache *c = new_cache(100);
	struct dir_cache_value *v = NULL;

	dir_cache_put(c, dir_cache_generation(c), "r:alice@example.test", DIR_TEMPFAIL, NULL, 0,
		      NULL, 0);
	assert_int_equal(dir_cache_count(c), 0);
	assert_int_equal(dir_cache_get(c, "r:alice@example.test", &v), 0);
	dir_cache_destroy(&c);
}

static void
test_zero_ttl_disables(void **state)
{
	(void)state;
	struct dir_cache_value *v = NULL;
	fake_now = 5;
	struct dir_cache *c = dir_cache_new(100, 0, 0, fake_clock);

	dir_cache_put(c, 0, "u:alice", DIR_OK, &alice, 1, NULL, 0);
	dir_cache_put(c, 0, "u:nobody", DIR_NOTFOUND, NULL, 0, NULL, 0);
	assert_int_equal(dir_cache_count(c), 0);
	assert_int_equal(dir_cache_get(c, "u:alice", &v), 0);
	dir_cache_destroy(&c);
}

static void
test_replace_and_flush(void **state)
{
	(void)state;
	struct dir_cache *c = new_cache(100);
	struct dir_cache_value *v = NULL;

	uint64_t gen = dir_cache_generation(c);
	dir_cache_put(c, gen, "u:alice", DIR_NOTFOUND, NULL, 0, NULL, 0);
	dir_cache_put(c, gen, "u:alice", DIR_OK, &alice, 1, NULL, 0);
	assert_int_equal(dir_cache_count(c), 1);
	assert_int_equal(dir_cache_get(c, "u:alice", &v), 1);
	assert_int_equal(v->status, DIR_OK);
	dir_cache_value_free(v);

	dir_cache_clear(c);
	assert_int_equal(dir_cache_count(c), 0);
	assert_int_equal(dir_cache_get(c, "u:alice", &v), 0);
	/* An answer fetched before the flush is not stored after it. */
	dir_cache_put(c, gen, "u:alice", DIR_OK, &alice, 1, NULL, 0);
	assert_int_equal(dir_cache_get(c, "u:alice", &v), 0);
	assert_int_not_equal(dir_cache_generation(c), gen);
	dir_cache_put(c, dir_cache_generation(c), "u:alice", DIR_OK, &alice, 1, NULL, 0);
	assert_int_equal(dir_cache_get(c, "u:alice", &v), 1);
	dir_cache_value_free(v);
	dir_cache_destroy(&c);
}

static void
test_eviction_oldest(void **state)
{
	(void)state;
	struct dir_cache *c = new_cache(3);
	struct dir_cache_value *v = NULL;
	uint64_t gen = dir_cache_generation(c);

	dir_cache_put(c, gen, "r:a", DIR_NOTFOUND, NULL, 0, NULL, 0);
	fake_now++;
	dir_cache_put(c, gen, "r:b", DIR_OK, &alice, 1, NULL, 0);
	fake_now++;
	dir_cache_put(c, gen, "r:c", DIR_NOTFOUND, NULL, 0, NULL, 0);
	assert_int_equal(dir_cache_count(c), 3);
	/* Replacing b makes it the newest; a is now the oldest. */
	dir_cache_put(c, gen, "r:b", DIR_OK, &alice, 1, NULL, 0);
	dir_cache_put(c, gen, "r:d", DIR_NOTFOUND, NULL, 0, NULL, 0);
	assert_int_equal(dir_cache_count(c), 3);
	assert_int_equal(dir_cache_get(c, "r:a", &v), 0);
	assert_int_equal(dir_cache_get(c, "r:b", &v), 1);
	dir_cache_value_free(v);
	assert_int_equal(dir_cache_get(c, "r:c", &v), 1);
	dir_cache_value_free(v);
	dir_cache_put(c, gen, "r:e", DIR_NOTFOUND, NULL, 0, NULL, 0);
	assert_int_equal(dir_cache_get(c, "r:c", &v), 0);
	assert_int_equal(dir_cache_get(c, "r:b", &v), 1);
	dir_cache_value_free(v);
	assert_int_equal(dir_cache_get(c, "r:d", &v), 1);
	dir_cache_value_free(v);
	assert_int_equal(dir_cache_get(c, "r:e", &v), 1);
	dir_cache_value_free(v);
	dir_cache_destroy(&c);
}

static void
test_many_keys(void **state)
{
	(void)state;
	struct dir_cache *c = new_cache(1000);
	struct dir_cache_value *v = NULL;
	char key[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "r:user%d@example.test", i);
		dir_cache_put(c, 0, key, DIR_NOTFOUND, NULL, 0, NULL, 0);
	}
	assert_int_equal(dir_cache_count(c), 1000);
	assert_int_equal(dir_cache_get(c, "r:user3999@example.test", &v), 0);
	assert_int_equal(dir_cache_get(c, "r:user4000@example.test", &v), 1);
	dir_cache_value_free(v);
	assert_int_equal(dir_cache_get(c, "r:user4999@example.test", &v), 1);
	dir_cache_value_free(v);
	dir_cache_destroy(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_positive_ttl),
	    cmocka_unit_test(test_negative_ttl),
	    cmocka_unit_test(test_tempfail_never_cached),
	    cmocka_unit_test(test_zero_ttl_disables),
	    cmocka_unit_test(test_replace_and_flush),
	    cmocka_unit_test(test_eviction_oldest),
	    cmocka_unit_test(test_many_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
