/*
 * test_dir_range.c - AD ranged attribute retrieval (directory/
 * dir_range.c): parsing "member;range=lo-hi", the step that decides the
 * next request (good, bad, overflow, out-of-order, empty range, loop
 * guard, value cap), and the walk over canned entries as a server that
 * splits values in ranges would return them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "directory/dir_range.h"

struct parse_case {
	const char *in;
	int rc;
	uint32_t lo, hi;
	bool last;
	const char *base;
};

static const struct parse_case parse_cases[] = {
    {"member", 0, 0, 0, false, NULL},
    {"member;binary", 0, 0, 0, false, NULL},
    {"member;ranged", 0, 0, 0, false, NULL},
    {"member;range=0-1499", 1, 0, 1499, false, "member"},
    {"member;range=1500-2999", 1, 1500, 2999, false, "member"},
    {"member;range=3000-*", 1, 3000, 0, true, "member"},
    {"Member;RANGE=0-*", 1, 0, 0, true, "Member"},
    {"objectGUID;binary;range=0-9", 1, 0, 9, false, "objectGUID;binary"},
    {"member;range=5-5;binary", 1, 5, 5, false, "member;binary"},
    {"member;range=0-4294967295", 1, 0, 4294967295u, false, "member"},
    /* Malformed. */
    {"member;range=", -1, 0, 0, false, NULL},
    {"member;range=-5", -1, 0, 0, false, NULL},
    {"member;range=5-", -1, 0, 0, false, NULL},
    {"member;range=5", -1, 0, 0, false, NULL},
    {"member;range=10-9", -1, 0, 0, false, NULL},
    {"member;range=a-9", -1, 0, 0, false, NULL},
    {"member;range=+1-9", -1, 0, 0, false, NULL},
    {"member;range=0-**", -1, 0, 0, false, NULL},
    {"member;range=0-4294967296", -1, 0, 0, false, NULL},
    {"member;range=99999999999999999999-*", -1, 0, 0, false, NULL},
    {"member;range=0-1;range=2-3", -1, 0, 0, false, NULL},
};

static void
test_parse(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);

	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct dir_range_desc d;
		int rc = dir_range_parse(c->in, &d);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->in, rc, c->rc);
		if (rc != 1)
			continue;
		assert_int_equal(d.lo, c->lo);
		assert_int_equal(d.last, c->last);
		if (!c->last)
			assert_int_equal(d.hi, c->hi);
		assert_string_equal(dir_range_base(a, c->in, &d), c->base);
	}
	arena_destroy(&a);
}

static void
test_step(void **state)
{
	(void)state;
	const char *why = NULL;

	/* Good: three parts. */
	struct dir_range st = {0};
	assert_int_equal(dir_range_step(&st, "member;range=0-1499", 1500, &why), DIR_RANGE_MORE);
	assert_int_equal(st.next, 1500);
	assert_int_equal(dir_range_step(&st, "member;range=1500-2999", 1500, &why), DIR_RANGE_MORE);
	assert_int_equal(st.next, 3000);
	assert_int_equal(dir_range_step(&st, "member;range=3000-*", 12, &why), DIR_RANGE_DONE);
	assert_int_equal(st.total, 3012);

	/* A final part without values (asked exactly at the end): done. */
	st = (struct dir_range){.next = 1500};
	assert_int_equal(dir_range_step(&st, "member;range=1500-*", 0, &why), DIR_RANGE_DONE);

	/* Out of order: the answer does not start where we asked. */
	st = (struct dir_range){.next = 1500};
	assert_int_equal(dir_range_step(&st, "member;range=0-1499", 1500, &why), DIR_RANGE_BAD);
	assert_non_null(strstr(why, "out of order"));
	st = (struct dir_range){.next = 1500};
	assert_int_equal(dir_range_step(&st, "member;range=1600-*", 3, &why), DIR_RANGE_BAD);

	/* An empty non-final range would have us ask for ever. */
	st = (struct dir_range){.next = 1500};
	assert_int_equal(dir_range_step(&st, "member;range=1500-2999", 0, &why), DIR_RANGE_BAD);
	assert_non_null(strstr(why, "empty range"));

	/* Overflow: a range ending at 2^32-1 cannot be followed. */
	st = (struct dir_range){.next = 0};
	assert_int_equal(dir_range_step(&st, "member;range=0-4294967295", 5, &why), DIR_RANGE_BAD);
	assert_non_null(strstr(why, "2^32"));

	/* Bad answers. */
	st = (struct dir_range){0};
	assert_int_equal(dir_range_step(&st, NULL, 0, &why), DIR_RANGE_BAD);
	st = (struct dir_range){0};
	assert_int_equal(dir_range_step(&st, "member", 10, &why), DIR_RANGE_BAD);
	st = (struct dir_range){0};
	assert_int_equal(dir_range_step(&st, "member;range=9-1", 10, &why), DIR_RANGE_BAD);
	assert_non_null(strstr(why, "malformed"));

	/* Loop guard: a server giving one value at a time is asked at most
	 * DIR_RANGE_MAX_ROUNDS times. */
	st = (struct dir_range){0};
	unsigned rounds = 0;
	enum dir_range_step s;
	char desc[64];
	do {
		snprintf(desc, sizeof(desc), "member;range=%u-%u", st.next, st.next);
		s = dir_range_step(&st, desc, 1, &why);
		rounds++;
	} while (s == DIR_RANGE_MORE && rounds < 100000);
	assert_int_equal(s, DIR_RANGE_BAD);
	assert_int_equal(rounds, DIR_RANGE_MAX_ROUNDS);
	assert_non_null(strstr(why, "too many"));

	/* Value cap. */
	st = (struct dir_range){.next = 100, .total = DIR_RANGE_MAX_VALUES - 10};
	assert_int_equal(dir_range_step(&st, "member;range=100-199", 100, &why), DIR_RANGE_CAP);
	assert_int_equal(st.total, DIR_RANGE_MAX_VALUES - 10);
	st = (struct dir_range){.next = 100, .total = DIR_RANGE_MAX_VALUES - 10};
	assert_int_equal(dir_range_step(&st, "member;range=100-*", 10, &why), DIR_RANGE_DONE);
}

/* ---- the walk, fed canned answers ---- */

/* An attribute named name with values prefix<lo>..prefix<hi>. */
static void
make_attr(struct arena *a, struct dir_ldap_attr *at, const char *name, unsigned lo, unsigned hi)
{
	at->name = arena_printf(a, "%s", name);
	at->nvals = hi >= lo ? hi - lo + 1 : 0;
	at->vals = arena_alloc(a, (at->nvals + 1) * sizeof(*at->vals));
	at->lens = arena_alloc(a, (at->nvals + 1) * sizeof(*at->lens));
	for (size_t i = 0; i < at->nvals; i++) {
		at->vals[i] = arena_printf(a, "cn=u%zu", lo + i);
		at->lens[i] = strlen(at->vals[i]);
	}
}

/* What a server with MaxValRange = page answers for "member;range=lo-*"
 * of a group of total members. */
static void
server_answer(struct arena *a, struct dir_ldap_entry *e, unsigned lo, unsigned total, unsigned page)
{
	e->dn = "cn=big";
	e->nattrs = 1;
	e->attrs = arena_alloc(a, sizeof(*e->attrs));
	if (lo + page >= total) {
		make_attr(a, e->attrs, arena_printf(a, "member;range=%u-*", lo), lo,
			  total > 0 ? total - 1 : 0);
		if (total == 0 || lo >= total)
			e->attrs->nvals = 0;
	} else {
		make_attr(a, e->attrs, arena_printf(a, "member;range=%u-%u", lo, lo + page - 1), lo,
			  lo + page - 1);
	}
}

static void
assert_members(const struct dir_ldap_attr *at, unsigned total)
{
	assert_string_equal(at->name, "member");
	assert_int_equal(at->nvals, total);
	for (unsigned i = 0; i < total; i++) {
		char want[32];
		snprintf(want, sizeof(want), "cn=u%u", i);
		assert_string_equal(at->vals[i], want);
	}
}

static void
test_walk_fetches_every_part(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct dir_ldap_entry entries[3] = {0};

	/* A small group (plain member), a big one (3200 in parts of 1500),
	 * and one whose first part is already the last. */
	entries[0].dn = "cn=small";
	entries[0].nattrs = 2;
	entries[0].attrs = arena_alloc(a, 2 * sizeof(struct dir_ldap_attr));
	make_attr(a, &entries[0].attrs[0], "cn", 0, 0);
	make_attr(a, &entries[0].attrs[1], "member", 0, 4);
	server_answer(a, &entries[1], 0, 3200, 1500);
	entries[1].dn = "cn=big";
	entries[2].dn = "cn=exact";
	entries[2].nattrs = 1;
	entries[2].attrs = arena_alloc(a, sizeof(struct dir_ldap_attr));
	make_attr(a, entries[2].attrs, "member;range=0-*", 0, 6);

	struct dir_range_walk w = {0};
	enum dir_range_step s = dir_range_walk_next(a, entries, 3, &w);
	unsigned requests = 0;
	while (s == DIR_RANGE_MORE) {
		assert_int_equal(w.entry, 1);
		requests++;
		const char *want = requests == 1 ? "member;range=1500-*" : "member;range=3000-*";
		assert_string_equal(w.request, want);
		struct dir_ldap_entry reply;
		server_answer(a, &reply, w.st.next, 3200, 1500);
		s = dir_range_walk_answer(a, entries, &w, &reply);
		if (s != DIR_RANGE_MORE)
			s = dir_range_walk_next(a, entries, 3, &w);
	}
	assert_int_equal(s, DIR_RANGE_DONE);
	assert_int_equal(requests, 2);
	assert_members(&entries[0].attrs[1], 5);
	assert_members(&entries[1].attrs[0], 3200);
	assert_members(&entries[2].attrs[0], 7);
	arena_destroy(&a);
}

static void
test_walk_bad_answers(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct dir_ldap_entry e = {0}, reply = {0};

	/* The entry comes back without the attribute. */
	server_answer(a, &e, 0, 5000, 1500);
	struct dir_range_walk w = {0};
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_MORE);
	assert_int_equal(dir_range_walk_answer(a, &e, &w, NULL), DIR_RANGE_BAD);
	assert_non_null(strstr(w.why, "missing"));
	assert_int_equal(e.attrs[0].nvals, 1500);
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_DONE);

	/* The server sends the first part again: out of order. */
	memset(&e, 0, sizeof(e));
	server_answer(a, &e, 0, 5000, 1500);
	w = (struct dir_range_walk){0};
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_MORE);
	server_answer(a, &reply, 0, 5000, 1500);
	assert_int_equal(dir_range_walk_answer(a, &e, &w, &reply), DIR_RANGE_BAD);
	assert_int_equal(e.attrs[0].nvals, 1500); /* nothing appended */

	/* A server that answers with an empty non-final range. */
	memset(&e, 0, sizeof(e));
	server_answer(a, &e, 0, 5000, 1500);
	w = (struct dir_range_walk){0};
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_MORE);
	reply.nattrs = 1;
	reply.attrs = arena_alloc(a, sizeof(*reply.attrs));
	make_attr(a, reply.attrs, "member;range=1500-2999", 1, 0);
	assert_int_equal(dir_range_walk_answer(a, &e, &w, &reply), DIR_RANGE_BAD);

	/* An answer that ignores the range and sends plain member. */
	memset(&e, 0, sizeof(e));
	server_answer(a, &e, 0, 5000, 1500);
	w = (struct dir_range_walk){0};
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_MORE);
	make_attr(a, reply.attrs, "member", 0, 4999);
	assert_int_equal(dir_range_walk_answer(a, &e, &w, &reply), DIR_RANGE_BAD);

	/* A malformed first part: BAD, then the walk goes on. */
	memset(&e, 0, sizeof(e));
	e.dn = "cn=x";
	e.nattrs = 1;
	e.attrs = arena_alloc(a, sizeof(*e.attrs));
	make_attr(a, e.attrs, "member;range=7-3", 0, 3);
	w = (struct dir_range_walk){0};
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_BAD);
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_DONE);

	/* A server that never stops: the walk gives up after the loop
	 * guard, not after DIR_RANGE_MAX_VALUES requests. */
	memset(&e, 0, sizeof(e));
	server_answer(a, &e, 0, 1000000, 10);
	w = (struct dir_range_walk){0};
	enum dir_range_step s = dir_range_walk_next(a, &e, 1, &w);
	unsigned requests = 0;
	while (s == DIR_RANGE_MORE && requests < 100000) {
		requests++;
		server_answer(a, &reply, w.st.next, 1000000, 10);
		s = dir_range_walk_answer(a, &e, &w, &reply);
	}
	assert_int_equal(s, DIR_RANGE_BAD);
	assert_true(requests < DIR_RANGE_MAX_ROUNDS);
	arena_destroy(&a);
}

static void
test_walk_cap(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct dir_ldap_entry e = {0};
	unsigned total = DIR_RANGE_MAX_VALUES + 3000;

	server_answer(a, &e, 0, total, 1500);
	struct dir_range_walk w = {0};
	enum dir_range_step s = dir_range_walk_next(a, &e, 1, &w);
	while (s == DIR_RANGE_MORE) {
		struct dir_ldap_entry reply;
		server_answer(a, &reply, w.st.next, total, 1500);
		s = dir_range_walk_answer(a, &e, &w, &reply);
	}
	assert_int_equal(s, DIR_RANGE_CAP);
	assert_non_null(strstr(w.why, "DIR_RANGE_MAX_VALUES"));
	assert_int_equal(e.attrs[0].nvals, DIR_RANGE_MAX_VALUES);
	assert_int_equal(dir_range_walk_next(a, &e, 1, &w), DIR_RANGE_DONE);
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_step),
	    cmocka_unit_test(test_walk_fetches_every_part),
	    cmocka_unit_test(test_walk_bad_answers),
	    cmocka_unit_test(test_walk_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
