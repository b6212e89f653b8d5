/*
 * test_auth.c - the SASL PLAIN and LOGIN exchanges of protocols/sasl/auth.c
 * (the pure part; the directory check is covered by the integration
 * tests): initial responses and continuations, "=" as the empty initial
 * response, cancel, malformed input, and authzid handling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"
#include "core/buf.h"
#include "protocols/sasl/auth.h"

/* base64 of s, with embedded NULs written as '|'; eight results live at
 * once (a ring), enough for any one test step. */
static const char *
b64(const char *s)
{
	static struct buf ring[8];
	static unsigned next;
	struct buf *out = &ring[next++ % 8];
	char raw[512];
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		raw[i] = s[i] == '|' ? '\0' : s[i];
	buf_free(out);
	buf_init(out, 4096);
	assert_int_equal(base64_encode(raw, n, out), 0);
	return buf_cstr(out);
}

static void
expect_creds(struct auth_sasl *x, const char *login, const char *pw)
{
	size_t len;
	assert_string_equal(auth_sasl_login(x), login);
	assert_string_equal(auth_sasl_password(x, &len), pw);
	assert_int_equal(len, strlen(pw));
}

static void
test_plain_initial(void **state)
{
	(void)state;
	struct auth_sasl x;
	const char *ch;
	auth_sasl_init(&x);
	const char *ir = b64("|alice|secret pw");
	assert_int_equal(auth_sasl_start(&x, "plain", ir, strlen(ir), &ch), AUTH_SASL_CHECK);
	assert_string_equal(x.mech, "PLAIN");
	assert_false(x.authzid_differs);
	expect_creds(&x, "alice", "secret pw");
	auth_sasl_reset(&x);
	assert_string_equal(auth_sasl_login(&x), "");
}

static void
test_plain_continuation(void **state)
{
	(void)state;
	struct auth_sasl x;
	const char *ch;
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "PLAIN", NULL, 0, &ch), AUTH_SASL_CHALLENGE);
	assert_string_equal(ch, "");
	const char *r = b64("alice|alice|pw");
	assert_int_equal(auth_sasl_continue(&x, r, strlen(r), &ch), AUTH_SASL_CHECK);
	assert_false(x.authzid_differs); /* authzid equal to authcid is fine */
	expect_creds(&x, "alice", "pw");
	auth_sasl_reset(&x);
}

static void
test_plain_authzid_differs(void **state)
{
	(void)state;
	struct auth_sasl x;
	const char *ch;
	auth_sasl_init(&x);
	const char *ir = b64("bob|alice|pw");
	assert_int_equal(auth_sasl_start(&x, "PLAIN", ir, strlen(ir), &ch), AUTH_SASL_CHECK);
	assert_true(x.authzid_differs);
	auth_sasl_reset(&x);
}

static void
test_plain_bad(void **state)
{
	(void)state;
	static const char *bad[] = {"!!notbase64", "", "|alice|", "||pw", "alice"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct auth_sasl x;
		const char *ch;
		auth_sasl_init(&x);
		const char *r = i == 0 ? bad[0] : b64(bad[i]);
		assert_int_equal(auth_sasl_start(&x, "PLAIN", NULL, 0, &ch), AUTH_SASL_CHALLENGE);
		assert_int_equal(auth_sasl_continue(&x, r, strlen(r), &ch), AUTH_SASL_BAD);
		assert_non_null(x.reason);
		auth_sasl_reset(&x);
	}
	/* "=" is the empty initial response: an empty PLAIN message is bad. */
	struct auth_sasl x;
	const char *ch;
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "PLAIN", "=", 1, &ch), AUTH_SASL_BAD);
	auth_sasl_reset(&x);
}

static void
test_login_exchange(void **state)
{
	(void)state;
	struct auth_sasl x;
	const char *ch;
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "LOGIN", NULL, 0, &ch), AUTH_SASL_CHALLENGE);
	assert_string_equal(ch, "VXNlcm5hbWU6");
	const char *u = b64("alice");
	assert_int_equal(auth_sasl_continue(&x, u, strlen(u), &ch), AUTH_SASL_CHALLENGE);
	assert_string_equal(ch, "UGFzc3dvcmQ6");
	const char *p = b64("alice-pw-1");
	assert_int_equal(auth_sasl_continue(&x, p, strlen(p), &ch), AUTH_SASL_CHECK);
	expect_creds(&x, "alice", "alice-pw-1");
	auth_sasl_reset(&x);

	/* With the user name as initial response. */
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "login", u, strlen(u), &ch), AUTH_SASL_CHALLENGE);
	assert_string_equal(ch, "UGFzc3dvcmQ6");
	assert_int_equal(auth_sasl_continue(&x, p, strlen(p), &ch), AUTH_SASL_CHECK);
	expect_creds(&x, "alice", "alice-pw-1");
	auth_sasl_reset(&x);

	/* An empty password is passed on (the check refuses it, unbound). */
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "LOGIN", u, strlen(u), &ch), AUTH_SASL_CHALLENGE);
	assert_int_equal(auth_sasl_continue(&x, "", 0, &ch), AUTH_SASL_CHECK);
	expect_creds(&x, "alice", "");
	auth_sasl_reset(&x);
}

static void
test_cancel_unknown_and_nul_user(void **state)
{
	(void)state;
	struct auth_sasl x;
	const char *ch;
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "LOGIN", NULL, 0, &ch), AUTH_SASL_CHALLENGE);
	assert_int_equal(auth_sasl_continue(&x, "*", 1, &ch), AUTH_SASL_CANCEL);
	auth_sasl_reset(&x);

	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_start(&x, "CRAM-MD5", NULL, 0, &ch), AUTH_SASL_UNKNOWN);
	auth_sasl_reset(&x);

	auth_sasl_init(&x);
	const char *u = b64("ali|ce");
	assert_int_equal(auth_sasl_start(&x, "LOGIN", u, strlen(u), &ch), AUTH_SASL_BAD);
	auth_sasl_reset(&x);

	/* A response with no exchange running. */
	auth_sasl_init(&x);
	assert_int_equal(auth_sasl_continue(&x, "AAAA", 4, &ch), AUTH_SASL_BAD);
	auth_sasl_reset(&x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_initial),
	    cmocka_unit_test(test_plain_continuation),
	    cmocka_unit_test(test_plain_authzid_differs),
	    cmocka_unit_test(test_plain_bad),
	    cmocka_unit_test(test_login_exchange),
	    cmocka_unit_test(test_cancel_unknown_and_nul_user),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
