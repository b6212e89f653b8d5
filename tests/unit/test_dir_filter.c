/*
 * test_dir_filter.c - RFC 4515 escaping and filter template expansion
 * (directory/dir_filter.c): the one gate between user input and LDAP
 * filters, so injection attempts must come out inert.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "directory/dir.h"

struct escape_case {
	const char *in;
	size_t len;
	const char *out;
};

#define CASE(s, o)                                                                                 \
	{                                                                                          \
		s, sizeof(s) - 1, o                                                                \
	}

static const struct escape_case escape_cases[] = {
    CASE("alice", "alice"),
    CASE("", ""),
    CASE("*", "\\2A"),
    CASE("*)(uid=*", "\\2A\\29\\28uid=\\2A"),
    CASE("a.example@example.test)(|(uid=*", "a.example@example.test\\29\\28|\\28uid=\\2A"),
    CASE("back\\slash", "back\\5Cslash"),
    CASE("(", "\\28"),
    CASE(")", "\\29"),
    CASE("alice)(|(uid=*", "alice\\29\\28|\\28uid=\\2A"),
    /* Not special in RFC 4515: pass through untouched (UTF-8 too). */
    CASE("a=b&c|d!e~f<g>h", "a=b&c|d!e~f<g>h"),
    CASE("\xc3\xa5lice", "\xc3\xa5lice"),
};

static void
test_escape_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
		const struct escape_case *c = &escape_cases[i];
		struct buf b;
		buf_init(&b, 1024);
		assert_int_equal(dir_escape_filter_value(c->in, c->len, &b), 0);
		assert_string_equal(buf_cstr(&b), c->out);
		buf_free(&b);
	}
}

static void
test_escape_appends(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(buf_append_str(&b, "(uid="), 0);
	assert_int_equal(dir_escape_filter_value("x*", 2, &b), 0);
	assert_string_equal(buf_cstr(&b), "(uid=x\\2A");
	buf_free(&b);
}

static void
test_escape_rejects_nul(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(buf_append_str(&b, "pre"), 0);
	assert_int_equal(dir_escape_filter_value("ali\0ce", 6, &b), -1);
	/* Nothing half-escaped is left behind. */
	assert_string_equal(buf_cstr(&b), "pre");
	assert_int_equal(dir_escape_filter_value("\0", 1, &b), -1);
	assert_int_equal(b.len, 3);
	buf_free(&b);
}

static void
test_escape_cap(void **state)
{
	(void)state;
	struct buf b;
	/* "***" needs 9 bytes. */
	buf_init(&b, 8);
	assert_int_equal(dir_escape_filter_value("***", 3, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_init(&b, 9);
	assert_int_equal(dir_escape_filter_value("***", 3, &b), 0);
	assert_string_equal(buf_cstr(&b), "\\2A\\2A\\2A");
	buf_free(&b);
}

struct expand_case {
	const char *tmpl;
	char key;
	const char *value;
	int rc;
	const char *out;
};

static const struct expand_case expand_cases[] = {
    {"(uid=%u)", 'u', "alice", 0, "(uid=alice)"},
    {"(&(objectClass=inetOrgPerson)(uid=%u))", 'u', "*", 0,
     "(&(objectClass=inetOrgPerson)(uid=\\2A))"},
    {"(|(mail=%a)(mailLocalAddress=%a))", 'a', "a.example@example.test)(|(uid=*", 0,
     "(|(mail=a.example@example.test\\29\\28|\\28uid=\\2A)"
     "(mailLocalAddress=a.example@example.test\\29\\28|\\28uid=\\2A))"},
    {"(cn=100%%)", 'u', "x", 0, "(cn=100%)"},
    {"(uid=%u%%%u)", 'u', "a", 0, "(uid=a%a)"},
    {"(uid=%x)", 'u', "a", -1, NULL},
    {"(mail=%u)", 'a', "a", -1, NULL}, /* wrong key for this template */
    {"(uid=%u)%", 'u', "a", -1, NULL}, /* lone % at the end */
    {"(objectClass=*)", 'u', "a", 0, "(objectClass=*)"},
};

static void
test_expand_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
		const struct expand_case *c = &expand_cases[i];
		struct buf b;
		buf_init(&b, 4096);
		assert_int_equal(buf_append_str(&b, "<"), 0);
		int rc = dir_filter_expand(c->tmpl, c->key, c->value, &b);
		assert_int_equal(rc, c->rc);
		if (rc == 0) {
			assert_string_equal(buf_cstr(&b) + 1, c->out);
		} else {
			/* A failed expansion leaves the buffer as it was. */
			assert_string_equal(buf_cstr(&b), "<");
		}
		buf_free(&b);
	}
}

/* Two keys (group_filter's %d and %u): each escaped, unknown ones and a
 * lone '%' refused. */
static void
test_expand_two_keys(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(dir_filter_expand2("(|(member=%d)(memberUid=%u)(x=50%%))", 'd',
					    "uid=a(1),dc=t", 'u', "a*", &b),
			 0);
	assert_string_equal(buf_cstr(&b),
			    "(|(member=uid=a\\281\\29,dc=t)(memberUid=a\\2A)(x=50%))");
	buf_reset(&b);
	assert_int_equal(dir_filter_expand2("(member=%d)(cn=%x)", 'd', "x", 'u', "y", &b), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(dir_filter_expand2("(member=%d)%", 'd', "x", 'u', "y", &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_expand_cap(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 10);
	assert_int_equal(dir_filter_expand("(uid=%u)", 'u', "abcdefgh", &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_table),       cmocka_unit_test(test_escape_appends),
	    cmocka_unit_test(test_escape_rejects_nul), cmocka_unit_test(test_escape_cap),
	    cmocka_unit_test(test_expand_table),       cmocka_unit_test(test_expand_cap),
	    cmocka_unit_test(test_expand_two_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
