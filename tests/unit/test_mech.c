/*
 * test_mech.c - the SASL glue (protocols/sasl/mech.c): PLAIN message
 * splitting (RFC 4616), the advertised mechanism list, failed-auth
 * throttling, and the Cyrus SASL set-up: with Tern's auxprop pinned a
 * password check can never succeed through Cyrus (no sasldb fallback),
 * and Cyrus offers exactly the configured mech_list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sasl/sasl.h>

#include "core/config.h"
#include "protocols/sasl/mech.h"

struct plain_case {
	const char *msg; /* with embedded NULs */
	size_t len;
	int r;
	const char *authzid, *authcid, *passwd;
};

#define P(s) s, sizeof(s) - 1

static const struct plain_case plain_cases[] = {
    {P("\0alice\0secret"), 0, "", "alice", "secret"},
    {P("alice\0alice\0pw with spaces"), 0, "alice", "alice", "pw with spaces"},
    {P("admin\0alice\0pw"), 0, "admin", "alice", "pw"},
    /* missing NULs */
    {P("alicesecret"), -1, NULL, NULL, NULL},
    {P("alice\0secret"), -1, NULL, NULL, NULL},
    /* an extra NUL */
    {P("\0alice\0sec\0ret"), -1, NULL, NULL, NULL},
    {P("\0alice\0secret\0"), -1, NULL, NULL, NULL},
    {P("\0\0alice\0secret"), -1, NULL, NULL, NULL},
    /* empty authcid or password */
    {P("\0\0secret"), -1, NULL, NULL, NULL},
    {P("\0alice\0"), -1, NULL, NULL, NULL},
    {P("\0\0"), -1, NULL, NULL, NULL},
    {"", 0, -1, NULL, NULL, NULL},
};

static void
test_plain_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		const struct plain_case *c = &plain_cases[i];
		char *msg = malloc(c->len + 1);
		memcpy(msg, c->msg, c->len);
		msg[c->len] = 'X'; /* the parser must not read past len */
		const char *z = NULL, *a = NULL, *p = NULL;
		size_t pwlen = 0;
		print_message("plain case %zu\n", i);
		assert_int_equal(mech_plain_parse(msg, c->len, &z, &a, &p, &pwlen), c->r);
		if (c->r == 0) {
			assert_string_equal(z, c->authzid);
			assert_string_equal(a, c->authcid);
			assert_int_equal(pwlen, strlen(c->passwd));
			assert_memory_equal(p, c->passwd, pwlen);
			/* the pointers point into msg */
			assert_true(a > msg && a < msg + c->len);
		}
		free(msg);
	}
}

/* "\0" + authcid of n bytes + "\0" + password of m bytes */
static int
plain_sized(size_t zlen, size_t clen, size_t plen)
{
	size_t len = zlen + clen + plen + 2;
	char *msg = malloc(len);
	memset(msg, 'z', zlen);
	msg[zlen] = '\0';
	memset(msg + zlen + 1, 'c', clen);
	msg[zlen + 1 + clen] = '\0';
	memset(msg + zlen + clen + 2, 'p', plen);
	const char *z, *a, *p;
	size_t pwlen;
	int r = mech_plain_parse(msg, len, &z, &a, &p, &pwlen);
	free(msg);
	return r;
}

static void
test_plain_limits(void **state)
{
	(void)state;
	assert_int_equal(plain_sized(0, 255, 1024), 0);
	assert_int_equal(plain_sized(255, 255, 1), 0);
	assert_int_equal(plain_sized(0, 256, 10), -1);
	assert_int_equal(plain_sized(256, 5, 10), -1);
	assert_int_equal(plain_sized(0, 5, 1025), -1);
}

static void
test_advertised(void **state)
{
	(void)state;
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.sasl_mechanisms = "";
	assert_string_equal(mech_advertised(&cfg, false), "");
	assert_string_equal(mech_advertised(&cfg, true), "PLAIN LOGIN");
	cfg.sasl_mechanisms = "scram-sha-256, PLAIN";
	assert_string_equal(mech_advertised(&cfg, true), "PLAIN LOGIN SCRAM-SHA-256");
	assert_string_equal(mech_advertised(&cfg, false), "");
	cfg.sasl_mechanisms = "";
	assert_string_equal(mech_advertised(&cfg, true), "PLAIN LOGIN");
}

static void
test_check_config(void **state)
{
	(void)state;
	struct config cfg;
	char *err = NULL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.sasl_mechanisms = "";
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	cfg.sasl_mechanisms = " plain, LOGIN ";
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	/* Advertising a mechanism no protocol can run would offer a login
	 * that never succeeds: refused at start-up, naming it. */
	cfg.sasl_mechanisms = "PLAIN, scram-sha-256";
	assert_int_equal(mech_check_config(&cfg, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "scram-sha-256"));
	free(err);
	err = NULL;
	cfg.sasl_mechanisms = "PLAINX";
	assert_int_equal(mech_check_config(&cfg, &err), -1);
	free(err);
}

static void
test_throttle(void **state)
{
	(void)state;
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.auth_fail_delay_ms = 100;
	const char *ip = "192.0.2.7", *other = "2001:db8::1";

	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 100);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 200);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 400);
	/* another address is not affected */
	assert_int_equal(mech_fail_delay_ms(&cfg, other), 100);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 800);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 1600);
	/* grows, then stays at the cap: 16 times the base ... */
	for (int i = 0; i < 20; i++)
		mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 1600);
	/* ... but never more than 16 s */
	cfg.auth_fail_delay_ms = 2000;
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 16000);
	cfg.auth_fail_delay_ms = 30000; /* a base over the cap is kept */
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 30000);
	cfg.auth_fail_delay_ms = 100;
	/* success resets */
	mech_record_result(ip, true);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 100);
	/* a zero base means no delay at all */
	mech_record_result(ip, false);
	cfg.auth_fail_delay_ms = 0;
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 0);
	mech_record_result(ip, true);

	/* many addresses: the table stays bounded and still works */
	cfg.auth_fail_delay_ms = 10;
	char buf[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		mech_record_result(buf, false);
	}
	assert_int_equal(mech_fail_delay_ms(&cfg, "10.0.19.135"), 20); /* the last one */
	mech_record_result("10.0.19.135", true);
	assert_int_equal(mech_fail_delay_ms(&cfg, "10.0.19.135"), 10);
}

/* Every mechanism Cyrus would offer, or "" (SASL_NOMECH). */
static char *
cyrus_mechs(sasl_conn_t *conn)
{
	const char *out = NULL;
	unsigned outlen = 0;
	int count = 0;
	int r = sasl_listmech(conn, NULL, "", " ", "", &out, &outlen, &count);
	if (r == SASL_NOMECH)
		return strdup("");
	assert_int_equal(r, SASL_OK);
	return strndup(out, outlen);
}

static void
test_cyrus_no_fallback(void **state)
{
	(void)state;
	struct config cfg;
	char *err = NULL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.sasl_mechanisms = "";

	/* An empty mech_list: Cyrus offers nothing (out of the box it
	 * would offer ANONYMOUS, CRAM-MD5, DIGEST-MD5, PLAIN...). */
	assert_int_equal(mech_cyrus_init(&cfg, &err), 0);
	sasl_conn_t *conn = NULL;
	assert_int_equal(sasl_server_new("pop", "localhost", NULL, NULL, NULL, NULL, 0, &conn),
			 SASL_OK);
	char *m = cyrus_mechs(conn);
	assert_string_equal(m, "");
	free(m);
	/* A password check through Cyrus cannot succeed: pwcheck_method is
	 * auxprop, and the only auxprop is ours, which knows nobody. */
	int r = sasl_checkpass(conn, "alice", 5, "alicepw", 7);
	assert_int_not_equal(r, SASL_OK);
	assert_true(r == SASL_NOUSER || r == SASL_NOMECH || r == SASL_BADAUTH);
	r = sasl_checkpass(conn, "root", 4, "", 0);
	assert_int_not_equal(r, SASL_OK);
	/* A PLAIN exchange run by Cyrus is not offered either. */
	const char *out;
	unsigned outlen;
	static const char plain[] = "\0alice\0alicepw";
	r = sasl_server_start(conn, "PLAIN", plain, sizeof(plain) - 1, &out, &outlen);
	assert_int_not_equal(r, SASL_OK);
	sasl_dispose(&conn);
	mech_cyrus_done();

	/* Exactly the configured mechanism, and still no way in. */
	cfg.sasl_mechanisms = "SCRAM-SHA-256";
	assert_int_equal(mech_cyrus_init(&cfg, &err), 0);
	assert_int_equal(sasl_server_new("pop", "localhost", NULL, NULL, NULL, NULL, 0, &conn),
			 SASL_OK);
	m = cyrus_mechs(conn);
	assert_string_equal(m, "SCRAM-SHA-256");
	free(m);
	r = sasl_checkpass(conn, "alice", 5, "alicepw", 7);
	assert_int_not_equal(r, SASL_OK);
	static const char first[] = "n,,n=alice,r=abcdefghijklmnop";
	r = sasl_server_start(conn, "SCRAM-SHA-256", first, sizeof(first) - 1, &out, &outlen);
	assert_int_not_equal(r, SASL_OK);
	assert_int_not_equal(r, SASL_CONTINUE); /* no verifier: fails at once */
	sasl_dispose(&conn);
	mech_cyrus_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_table), cmocka_unit_test(test_plain_limits),
	    cmocka_unit_test(test_advertised),	cmocka_unit_test(test_check_config),
	    cmocka_unit_test(test_throttle),	cmocka_unit_test(test_cyrus_no_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
