/*
 * test_dir_shape.c - directory shapes (directory/dir_shape.c): AD
 * proxyAddresses parsing, userAccountControl bits, objectGUID formatting,
 * the in-chain filter, member URLs, and the nested-list walk's cycle,
 * depth and size caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <ldap.h>

#include "core/arena.h"
#include "core/buf.h"
#include "directory/dir_shape.h"

struct proxy_case {
	const char *in;
	int rc;
	const char *addr; /* when rc == 1 */
	bool primary;
};

static const struct proxy_case proxy_cases[] = {
    {"SMTP:alice@example.test", 1, "alice@example.test", true},
    {"smtp:a.smith@example.test", 1, "a.smith@example.test", false},
    /* Mixed case: an SMTP address, but only "SMTP" marks the primary. */
    {"Smtp:x@example.test", 1, "x@example.test", false},
    {"sMTP:x@example.test", 1, "x@example.test", false},
    {"smtp: padded@example.test ", 1, "padded@example.test", false},
    /* The address keeps its case (compared without case by the caller). */
    {"smtp:Alice.Smith@Example.NET", 1, "Alice.Smith@Example.NET", false},
    /* Other types are not mail addresses for us. */
    {"X500:/o=Example/ou=Exchange/cn=Recipients/cn=alice", 0, NULL, false},
    {"X400:c=US;a= ;p=Example;o=Exchange;s=Smith;g=Alice;", 0, NULL, false},
    {"SIP:alice@example.test", 0, NULL, false},
    {"sip:alice@example.test", 0, NULL, false},
    {"EUM:1234;phone-context=x@example.test", 0, NULL, false},
    {"smtps:alice@example.test", 0, NULL, false},
    {"SMT:alice@example.test", 0, NULL, false},
    /* Broken values. */
    {"alice@example.test", 0, NULL, false},
    {"SMTP:", 0, NULL, false},
    {"SMTP:alice", 0, NULL, false},
    {"SMTP:@example.test", 0, NULL, false},
    {"SMTP:alice@", 0, NULL, false},
    {"", 0, NULL, false},
};

static void
test_proxy_addresses(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(proxy_cases) / sizeof(proxy_cases[0]); i++) {
		const struct proxy_case *c = &proxy_cases[i];
		const char *addr = (const char *)1;
		size_t len = 99;
		bool primary = true;
		int rc = dir_shape_proxy_address(c->in, strlen(c->in), &addr, &len, &primary);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->in, rc, c->rc);
		if (rc == 1) {
			assert_int_equal(len, strlen(c->addr));
			assert_memory_equal(addr, c->addr, len);
			if (primary != c->primary)
				fail_msg("%s: primary %d", c->in, primary);
		} else {
			assert_null(addr);
			assert_false(primary);
		}
	}
	/* A NUL inside the value is no address. */
	static const char nul[] = "smtp:a\0b@example.test";
	const char *addr;
	size_t len;
	bool primary;
	assert_int_equal(dir_shape_proxy_address(nul, sizeof(nul) - 1, &addr, &len, &primary), 0);
}

static void
test_flags(void **state)
{
	(void)state;
	/* userAccountControl: 512 NORMAL_ACCOUNT, 514 = 512|ACCOUNTDISABLE,
	 * 66048 = 512|DONT_EXPIRE_PASSWORD, 66050 = that and disabled. */
	assert_int_equal(dir_shape_flags_set("512", 2), 0);
	assert_int_equal(dir_shape_flags_set("514", 2), 1);
	assert_int_equal(dir_shape_flags_set("66048", 2), 0);
	assert_int_equal(dir_shape_flags_set("66050", 2), 1);
	assert_int_equal(dir_shape_flags_set("2", 2), 1);
	assert_int_equal(dir_shape_flags_set("0", 2), 0);
	/* Another mask: 0x10 LOCKOUT. */
	assert_int_equal(dir_shape_flags_set("528", 0x10), 1);
	assert_int_equal(dir_shape_flags_set("514", 0x10), 0);
	/* Signed 32-bit values (bit 31 set) are the same bits. */
	assert_int_equal(dir_shape_flags_set("-2147483646", 2), 1);
	assert_int_equal(dir_shape_flags_set("-2147483648", 2), 0);
	assert_int_equal(dir_shape_flags_set("4294967295", 2), 1);
	/* Not an integer: -1, the caller fails closed. */
	assert_int_equal(dir_shape_flags_set("", 2), -1);
	assert_int_equal(dir_shape_flags_set("abc", 2), -1);
	assert_int_equal(dir_shape_flags_set("51 4", 2), -1);
	assert_int_equal(dir_shape_flags_set("0x2", 2), -1);
	assert_int_equal(dir_shape_flags_set("4294967296", 2), -1);
	assert_int_equal(dir_shape_flags_set("-2147483649", 2), -1);
	assert_int_equal(dir_shape_flags_set("99999999999999999999999", 2), -1);
}

static void
test_guid(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	/* The GUID {6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8} as AD stores it:
	 * Data1, Data2, Data3 little-endian, Data4 as bytes. */
	static const char bin[16] =
	    "\x3c\x2b\x1a\x6f\x5e\x4d\x70\x6f\x81\x92\xa3\xb4\xc5\xd6\xe7\xf8";
	assert_string_equal(dir_shape_format_id(a, "objectGUID", bin, 16),
			    "6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8");
	assert_string_equal(dir_shape_format_id(a, "OBJECTGUID", bin, 16),
			    "6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8");
	/* Sixteen printable bytes are still a GUID when the attribute is
	 * objectGUID: the id of an entry must not change form. */
	assert_string_equal(dir_shape_format_id(a, "objectGUID", "ABCDEFGHIJKLMNOP", 16),
			    "44434241-4645-4847-494a-4b4c4d4e4f50");
	/* entryUUID is text and stays as it is. */
	const char *uuid = "0b5a0b5c-1f2e-103f-8f1a-5d3c2b1a0f9e";
	assert_string_equal(dir_shape_format_id(a, "entryUUID", uuid, strlen(uuid)), uuid);
	/* Binary of another length: hex. */
	assert_string_equal(dir_shape_format_id(a, "objectSid", "\x01\x02\xff", 3), "0102ff");
	arena_destroy(&a);
}

static void
test_inchain_filter(void **state)
{
	(void)state;
	struct buf b;
	char *classes[] = {"group", "groupOfURLs", NULL};
	char *none[] = {NULL};

	buf_init(&b, 4096);
	assert_int_equal(
	    dir_shape_inchain_filter(&b, "memberOf", "CN=Staff (all),OU=Groups,DC=ex", classes), 0);
	assert_string_equal(buf_cstr(&b),
			    "(&(memberOf:1.2.840.113556.1.4.1941:=CN=Staff \\28all\\29,OU=Groups,"
			    "DC=ex)(!(|(objectClass=group)(objectClass=groupOfURLs))))");
	buf_reset(&b);
	assert_int_equal(dir_shape_inchain_filter(&b, "memberOf", "cn=x", none), 0);
	assert_string_equal(buf_cstr(&b), "(&(memberOf:1.2.840.113556.1.4.1941:=cn=x))");
	buf_free(&b);

	/* Too long for the cap: -1 and nothing half-written. */
	buf_init(&b, 40);
	assert_int_equal(buf_append_str(&b, "keep"), 0);
	assert_int_equal(dir_shape_inchain_filter(&b, "memberOf", "cn=a-rather-long-dn", classes),
			 -1);
	assert_string_equal(buf_cstr(&b), "keep");
	buf_free(&b);
}

static void
test_member_url(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	const char *base, *filter, *why;
	int scope;

	assert_int_equal(dir_shape_member_url(a, "ldap:///ou=people,dc=ex??sub?(ou=sales)", "dc=ex",
					      &base, &scope, &filter, &why),
			 0);
	assert_string_equal(base, "ou=people,dc=ex");
	assert_int_equal(scope, LDAP_SCOPE_SUBTREE);
	assert_string_equal(filter, "(ou=sales)");

	/* Empty base: the configured one; no scope: base (RFC 4516). */
	assert_int_equal(dir_shape_member_url(a, "ldap:///", "dc=ex", &base, &scope, &filter, &why),
			 0);
	assert_string_equal(base, "dc=ex");
	assert_int_equal(scope, LDAP_SCOPE_BASE);
	assert_string_equal(filter, "(objectClass=*)");

	assert_int_equal(dir_shape_member_url(a, "ldap:///ou=p,dc=ex??one?(%28x=1)", "dc=ex", &base,
					      &scope, &filter, &why),
			 0);
	assert_int_equal(scope, LDAP_SCOPE_ONELEVEL);
	assert_string_equal(filter, "((x=1)");

	/* A server named in the data is never contacted. */
	assert_int_equal(dir_shape_member_url(a, "ldap://evil.example/dc=ex??sub?(uid=*)", "dc=ex",
					      &base, &scope, &filter, &why),
			 -1);
	assert_non_null(strstr(why, "server"));
	assert_int_equal(
	    dir_shape_member_url(a, "http://example/", "dc=ex", &base, &scope, &filter, &why), -1);
	assert_int_equal(dir_shape_member_url(a, "ldap:///dc=ex??sub?(x=1)?!e-critical", "dc=ex",
					      &base, &scope, &filter, &why),
			 -1);
	arena_destroy(&a);
}

static void
test_walk(void **state)
{
	(void)state;
	struct dir_walk w;

	/* A -> B -> C -> A: the second A is a cycle. */
	dir_walk_init(&w, 8, 100);
	assert_int_equal(dir_walk_enter(&w, "cn=A,ou=g", 0), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=B,ou=g", 1), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=C,ou=g", 2), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=A,ou=g", 3), DIR_WALK_CYCLE);
	/* The same DN written in another case is the same list. */
	assert_int_equal(dir_walk_enter(&w, "CN=b,OU=G", 1), DIR_WALK_CYCLE);
	/* A list reached twice (diamond) is expanded once. */
	assert_int_equal(dir_walk_enter(&w, "cn=C,ou=g", 1), DIR_WALK_CYCLE);
	dir_walk_free(&w);

	/* Depth: max_depth 3 expands depths 0, 1 and 2. */
	dir_walk_init(&w, 3, 0);
	assert_int_equal(dir_walk_enter(&w, "cn=l0", 0), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=l1", 1), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=l2", 2), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=l3", 3), DIR_WALK_TOO_DEEP);
	/* Too deep is not remembered: the same list nearer the top is fine. */
	assert_int_equal(dir_walk_enter(&w, "cn=l3", 1), DIR_WALK_ENTER);
	dir_walk_free(&w);

	/* Size: at most max_lists lists, however they nest. */
	dir_walk_init(&w, 8, 3);
	assert_int_equal(dir_walk_enter(&w, "cn=1", 0), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=2", 1), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=3", 1), DIR_WALK_ENTER);
	assert_int_equal(dir_walk_enter(&w, "cn=4", 1), DIR_WALK_FULL);
	/* A cycle is still a cycle once full. */
	assert_int_equal(dir_walk_enter(&w, "cn=1", 2), DIR_WALK_CYCLE);
	dir_walk_free(&w);

	/* A long chain of 1000 distinct lists ends at the depth cap. */
	struct arena *a = arena_new(0);
	dir_walk_init(&w, 8, 0);
	unsigned entered = 0;
	for (unsigned d = 0; d < 1000; d++)
		if (dir_walk_enter(&w, arena_printf(a, "cn=chain%u", d), d) == DIR_WALK_ENTER)
			entered++;
	assert_int_equal(entered, 8);
	dir_walk_free(&w);
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_proxy_addresses),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_guid),
	    cmocka_unit_test(test_inchain_filter),
	    cmocka_unit_test(test_member_url),
	    cmocka_unit_test(test_walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
