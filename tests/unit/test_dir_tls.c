/*
 * test_dir_tls.c - the plaintext-password rule and the URI list of
 * directory/dir_tls.c: which directories may receive a password over a
 * connection without TLS (only this machine's, unless the admin says
 * otherwise), and how [directory] uri splits into an order of preference.
 * The integration tests cannot reach a directory off loopback, so the
 * decision is pinned down here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "directory/dir_tls.h"

struct local_case {
	const char *uri;
	bool local;
};

static const struct local_case local_cases[] = {
    {"ldap://127.0.0.1:389/", true},
    {"ldap://127.0.0.1", true},
    {"ldap://127.1.2.3:1389/", true},
    {"ldap://localhost/", true},
    {"ldap://LOCALHOST:389", true},
    {"ldap://[::1]:389/", true},
    {"ldap://[::ffff:127.0.0.1]/", true},
    {"ldapi:///", true},
    {"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", true},
    {"ldaps://127.0.0.1:636/", true},
    {"ldap://192.0.2.10/", false},
    {"ldap://10.0.0.1:389/", false},
    {"ldap://128.0.0.1/", false},
    {"ldap://[2001:db8::1]/", false},
    {"ldap://[::ffff:192.0.2.1]/", false},
    {"ldap://ldap.example.org/", false},
    {"ldap://localhost.example.org/", false},
    {"ldap://127.0.0.1.example.org/", false},
    {"ldap:///", false}, /* libldap's default host: not ours to vouch for */
    {"not a uri", false},
};

static void
test_uri_is_local(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(local_cases) / sizeof(local_cases[0]); i++) {
		bool got = dir_tls_uri_is_local(local_cases[i].uri);
		if (got != local_cases[i].local)
			fail_msg("%s: local=%d, want %d", local_cases[i].uri, got,
				 local_cases[i].local);
	}
}

static void
test_uri_is_encrypted(void **state)
{
	(void)state;
	assert_true(dir_tls_uri_is_encrypted("ldaps://ldap.example.org/", false));
	assert_true(dir_tls_uri_is_encrypted("LDAPS://ldap.example.org/", false));
	assert_true(dir_tls_uri_is_encrypted("ldap://ldap.example.org/", true));
	assert_false(dir_tls_uri_is_encrypted("ldap://ldap.example.org/", false));
	/* StartTLS is not sent on ldapi:// (it is local anyway). */
	assert_false(dir_tls_uri_is_encrypted("ldapi:///", true));
	assert_false(dir_tls_uri_is_encrypted("ldapx://h/", true));
}

struct rule_case {
	const char *uri;
	bool tls_active, allow, want;
};

static const struct rule_case rule_cases[] = {
    /* Off this machine: only over TLS, or when explicitly allowed. */
    {"ldap://192.0.2.10/", false, false, false},
    {"ldap://192.0.2.10/", true, false, true},
    {"ldap://192.0.2.10/", false, true, true},
    {"ldap://ldap.example.org/", false, false, false},
    {"ldaps://ldap.example.org/", true, false, true},
    /* A URI says ldaps:// but the handle has no TLS: still refused. */
    {"ldaps://ldap.example.org/", false, false, false},
    /* This machine: always. */
    {"ldap://127.0.0.1:389/", false, false, true},
    {"ldap://[::1]/", false, false, true},
    {"ldapi:///", false, false, true},
};

static void
test_password_rule(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *c = &rule_cases[i];
		bool got = dir_tls_password_allowed(c->uri, c->tls_active, c->allow);
		if (got != c->want)
			fail_msg("%s tls=%d allow=%d: %d, want %d", c->uri, c->tls_active, c->allow,
				 got, c->want);
	}
}

static void
test_split_uris(void **state)
{
	size_t n = 99;
	char **v = dir_tls_split_uris(" ldap://a/, ldaps://b:636/\tldapi:///,,ldap://c ", &n);

	(void)state;
	assert_int_equal(n, 4);
	assert_string_equal(v[0], "ldap://a/");
	assert_string_equal(v[1], "ldaps://b:636/");
	assert_string_equal(v[2], "ldapi:///");
	assert_string_equal(v[3], "ldap://c");
	assert_null(v[4]);
	dir_tls_free_uris(v);

	v = dir_tls_split_uris("", &n);
	assert_int_equal(n, 0);
	assert_null(v[0]);
	dir_tls_free_uris(v);
	v = dir_tls_split_uris(NULL, NULL);
	assert_null(v[0]);
	dir_tls_free_uris(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uri_is_local),
	    cmocka_unit_test(test_uri_is_encrypted),
	    cmocka_unit_test(test_password_rule),
	    cmocka_unit_test(test_split_uris),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
