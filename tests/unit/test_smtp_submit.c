/*
 * test_smtp_submit.c - the pure parts of submission: xtext, NOTIFY and
 * ORCPT (RFC 3461), UTF-8 addresses (RFC 6531), AUTH and BDAT command
 * lines, RFC 5322 address lists, the relay table of classic tricks, and
 * the rate limiter's sliding window. Command lines go through the line
 * reader one byte at a time, as from a slow network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/linereader.h"
#include "protocols/smtp/smtp_parser.h"
#include "protocols/smtp/smtp_rate.h"

/* Feeds text one byte at a time; the single line it holds goes to out. */
static size_t
one_line(const char *text, char *out, size_t outsz)
{
	struct linereader lr;
	size_t got = SIZE_MAX;
	size_t textlen = strlen(text);

	lr_init(&lr, 4096);
	for (size_t i = 0; i < textlen; i++) {
		size_t used = 0;
		char *line;
		size_t len;
		enum lr_result r = lr_feed(&lr, text + i, 1, &used, &line, &len);
		assert_int_equal(used, 1);
		if (r == LR_LINE) {
			assert_int_equal(i, textlen - 1);
			assert_true(len < outsz);
			memcpy(out, line, len + 1);
			got = len;
		}
	}
	assert_true(got != SIZE_MAX);
	lr_free(&lr);
	return got;
}

static int
parse(const char *text, unsigned flags, struct smtp_cmd *cmd, char *line, size_t cap)
{
	size_t len = one_line(text, line, cap);
	return smtp_parse_command_ex(line, len, flags, cmd);
}

/* ---- xtext ---- */

static void
test_xtext(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: invalid */
	} cases[] = {
	    {"abc", "abc"},
	    {"a+2Bb", "a+b"},
	    {"+3D", "="},
	    {"x+20y", "x y"},
	    {"+E2+82+AC", "\xe2\x82\xac"},
	    {"", NULL},
	    {"a+2b", NULL}, /* lower-case hex */
	    {"a+2", NULL},
	    {"a+", NULL},
	    {"a+GG", NULL},
	    {"a=b", NULL},
	    {"a b", NULL},
	    {"+00", NULL},
	    {"\xc3\xa9", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		int r = smtp_xtext_decode(cases[i].in, &b);
		if (cases[i].out == NULL) {
			assert_int_equal(r, -1);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(buf_cstr(&b), cases[i].out);
		}
		buf_free(&b);
	}
	/* the cap holds */
	struct buf small;
	buf_init(&small, 3);
	assert_int_equal(smtp_xtext_decode("abcdef", &small), -1);
	buf_free(&small);
}

static void
test_notify(void **state)
{
	static const struct {
		const char *in;
		int r;
		uint8_t bits;
	} cases[] = {
	    {"NEVER", 0, SMTP_NOTIFY_NEVER},
	    {"success", 0, SMTP_NOTIFY_SUCCESS},
	    {"SUCCESS,FAILURE", 0, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE},
	    {"DELAY,FAILURE,SUCCESS", 0,
	     SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY},
	    {"NEVER,SUCCESS", -1, 0},
	    {"FAILURE,NEVER", -1, 0},
	    {"SUCCESS,SUCCESS", -1, 0},
	    {"SUCCESS,", -1, 0},
	    {",SUCCESS", -1, 0},
	    {"", -1, 0},
	    {"ALWAYS", -1, 0},
	    {"SUCCESS FAILURE", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t bits = 0xff;
		assert_int_equal(smtp_dsn_notify(cases[i].in, &bits), cases[i].r);
		if (cases[i].r == 0)
			assert_int_equal(bits, cases[i].bits);
	}
	uint8_t bits;
	assert_int_equal(smtp_dsn_notify(NULL, &bits), -1);
}

static void
test_orcpt(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"rfc822;alice@example.org", "alice@example.org"},
	    {"RFC822;a+2Bb@example.org", "a+b@example.org"},
	    {"x-local;anything", "anything"},
	    {"rfc822;no-at", NULL},
	    {"rfc822;", NULL},
	    {";a@b", NULL},
	    {"rfc822", NULL},
	    {"rfc 822;a@b", NULL},
	    {"rfc822;a@b+zz", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		int r = smtp_dsn_orcpt(cases[i].in, &b);
		if (cases[i].out == NULL) {
			assert_int_equal(r, -1);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(buf_cstr(&b), cases[i].out);
		}
		buf_free(&b);
	}
	/* over 500 octets */
	char big[600];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "rfc822;b@", 9);
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(smtp_dsn_orcpt(big, &b), -1);
	buf_free(&b);
}

/* ---- command lines: UTF-8, AUTH, BDAT, LHLO ---- */

static void
test_utf8_addresses(void **state)
{
	static const struct {
		const char *text;
		unsigned flags;
		int r;
		const char *address;
	} cases[] = {
	    /* MAIL with SMTPUTF8 on the same line may be UTF-8 */
	    {"MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc"
	     "cher.example> SMTPUTF8\r\n",
	     0, SMTP_PARSE_OK,
	     "j\xc3\xb6rg@b\xc3\xbc"
	     "cher.example"},
	    {"MAIL FROM:<j\xc3\xb6rg@example.org>\r\n", 0, SMTP_PARSE_UTF8, NULL},
	    /* RCPT follows the transaction's flag */
	    {"RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example>\r\n",
	     SMTP_PARSE_F_UTF8, SMTP_PARSE_OK,
	     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example"},
	    {"RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>\r\n", 0, SMTP_PARSE_UTF8, NULL},
	    {"RCPT TO:<\"j\xc3\xb6 rg\"@example.org>\r\n", SMTP_PARSE_F_UTF8, SMTP_PARSE_OK,
	     "\"j\xc3\xb6 rg\"@example.org"},
	    /* not UTF-8: overlong, lone continuation, surrogate, truncated */
	    {"RCPT TO:<\xc0\xaf@example.org>\r\n", SMTP_PARSE_F_UTF8, SMTP_PARSE_BAD_CHAR, NULL},
	    {"RCPT TO:<\x80@example.org>\r\n", SMTP_PARSE_F_UTF8, SMTP_PARSE_BAD_CHAR, NULL},
	    {"RCPT TO:<\xed\xa0\x80@example.org>\r\n", SMTP_PARSE_F_UTF8, SMTP_PARSE_BAD_CHAR,
	     NULL},
	    {"RCPT TO:<a@example.or\xc3>\r\n", SMTP_PARSE_F_UTF8, SMTP_PARSE_BAD_CHAR, NULL},
	    /* 8-bit outside MAIL/RCPT, or in a parameter */
	    {"EHLO b\xc3\xbc"
	     "cher.example\r\n",
	     SMTP_PARSE_F_UTF8, SMTP_PARSE_BAD_CHAR, NULL},
	    {"RCPT TO:<a@example.org> ORCPT=rfc822;\xc3\xb6@x\r\n", SMTP_PARSE_F_UTF8,
	     SMTP_PARSE_PARAM, NULL},
	    /* the UTF-8 domain is still a domain: no empty label */
	    {"RCPT TO:<a@b\xc3\xbc..example>\r\n", SMTP_PARSE_F_UTF8, SMTP_PARSE_DOMAIN, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[1024];
		struct smtp_cmd cmd;
		int r = parse(cases[i].text, cases[i].flags, &cmd, line, sizeof(line));
		if (r != cases[i].r)
			fail_msg("case %zu (%s): got %d want %d", i, cases[i].text, r, cases[i].r);
		if (cases[i].address != NULL) {
			assert_string_equal(cmd.address, cases[i].address);
			assert_true(cmd.utf8_address);
		}
	}
}

static void
test_auth_bdat_lhlo(void **state)
{
	char line[1024];
	struct smtp_cmd cmd;

	assert_int_equal(parse("AUTH PLAIN AGFsaWNlAHB3\r\n", 0, &cmd, line, sizeof(line)), 0);
	assert_int_equal(cmd.verb, SMTP_VERB_AUTH);
	assert_string_equal(cmd.arg, "PLAIN");
	assert_string_equal(cmd.initial, "AGFsaWNlAHB3");
	assert_int_equal(parse("auth login\r\n", 0, &cmd, line, sizeof(line)), 0);
	assert_string_equal(cmd.arg, "login");
	assert_null(cmd.initial);
	assert_int_equal(parse("AUTH PLAIN =\r\n", 0, &cmd, line, sizeof(line)), 0);
	assert_string_equal(cmd.initial, "=");
	assert_int_equal(parse("AUTH\r\n", 0, &cmd, line, sizeof(line)), SMTP_PARSE_SYNTAX);
	assert_int_equal(parse("AUTH PLAIN a b\r\n", 0, &cmd, line, sizeof(line)),
			 SMTP_PARSE_SYNTAX);
	assert_int_equal(parse("AUTH PL*IN\r\n", 0, &cmd, line, sizeof(line)), SMTP_PARSE_SYNTAX);

	assert_int_equal(parse("BDAT 1000\r\n", 0, &cmd, line, sizeof(line)), 0);
	assert_int_equal(cmd.verb, SMTP_VERB_BDAT);
	assert_int_equal(cmd.chunk_size, 1000);
	assert_false(cmd.last);
	assert_int_equal(parse("bdat 0 last\r\n", 0, &cmd, line, sizeof(line)), 0);
	assert_int_equal(cmd.chunk_size, 0);
	assert_true(cmd.last);
	assert_int_equal(parse("BDAT 18446744073709551615 LAST\r\n", 0, &cmd, line, sizeof(line)),
			 0);
	assert_int_equal(cmd.chunk_size, UINT64_MAX);
	static const char *const bad_bdat[] = {
	    "BDAT\r\n",		 "BDAT x\r\n",	       "BDAT -1\r\n",
	    "BDAT 10 FIRST\r\n", "BDAT 10 LAST x\r\n", "BDAT 18446744073709551616\r\n",
	    "BDAT 1x\r\n",
	};
	for (size_t i = 0; i < sizeof(bad_bdat) / sizeof(bad_bdat[0]); i++) {
		int r = parse(bad_bdat[i], 0, &cmd, line, sizeof(line));
		assert_int_equal(r, SMTP_PARSE_SYNTAX);
		assert_int_equal(cmd.verb, SMTP_VERB_BDAT);
	}

	assert_int_equal(parse("LHLO mta.example\r\n", 0, &cmd, line, sizeof(line)), 0);
	assert_int_equal(cmd.verb, SMTP_VERB_LHLO);
	assert_string_equal(cmd.arg, "mta.example");
}

/* ---- From: address lists ---- */

static void
test_address_list(void **state)
{
	static const struct {
		const char *in;
		int n;
		const char *first, *second;
	} cases[] = {
	    {" alice@example.org", 1, "alice@example.org", NULL},
	    {" Alice <alice@example.org>", 1, "alice@example.org", NULL},
	    {" \"Smith, Alice\" <alice@example.org>, bob@example.org", 2, "alice@example.org",
	     "bob@example.org"},
	    {" (comment) alice@example.org (more (nested))", 1, "alice@example.org", NULL},
	    {" Alice\r\n <alice@example.org>", 1, "alice@example.org", NULL},
	    {" <@route.example:alice@example.org>", 1, "alice@example.org", NULL},
	    {" team: a@x.example, b@y.example;", 2, "a@x.example", "b@y.example"},
	    {" \"a<b>c@evil\" <alice@example.org>", 1, "alice@example.org", NULL},
	    {" \"quoted local\"@example.org", 1, "\"quoted local\"@example.org", NULL},
	    {" Alice <alice@example.org", -1, NULL, NULL},
	    {" no-address-here", -1, NULL, NULL},
	    {" \"unterminated <a@b>", -1, NULL, NULL},
	    {" (unclosed a@b", -1, NULL, NULL},
	    {" ", 0, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 4096);
		int n = smtp_address_list(cases[i].in, strlen(cases[i].in), &b);
		if (n != cases[i].n)
			fail_msg("case %zu (%s): got %d want %d", i, cases[i].in, n, cases[i].n);
		if (cases[i].first != NULL)
			assert_string_equal(b.data, cases[i].first);
		if (cases[i].second != NULL)
			assert_string_equal(b.data + strlen(b.data) + 1, cases[i].second);
		/* every prefix parses or fails cleanly (no reads past len) */
		for (size_t k = 0; k <= strlen(cases[i].in); k++) {
			char *copy = malloc(k + 1);
			memcpy(copy, cases[i].in, k);
			buf_reset(&b);
			(void)smtp_address_list(copy, k, &b);
			free(copy);
		}
		buf_free(&b);
	}
}

/* ---- relay tricks on port 25 ---- */

enum relay_outcome {
	R_SYNTAX, /* 501 5.1.3 */
	R_REMOTE, /* 550 5.7.1 relaying denied */
	R_LOCAL,  /* looked up in the directory as exactly `lookup` */
};

static void
test_relay_table(void **state)
{
	static const char *const domains[] = {"example.test", "example.net"};
	static const struct {
		const char *rcpt;
		enum relay_outcome outcome;
		const char *lookup; /* R_LOCAL: the address the directory sees */
	} cases[] = {
	    {"user01@remote.example", R_REMOTE, NULL},
	    {"user01%remote.example@example.test", R_LOCAL, "user01%remote.example@example.test"},
	    {"user01%remote.example%example.test@example.test", R_LOCAL,
	     "user01%remote.example%example.test@example.test"},
	    {"@remote.example:user01@example.test", R_LOCAL, "user01@example.test"},
	    {"@a.example,@b.example:user01@example.test", R_LOCAL, "user01@example.test"},
	    {"@example.test:user01@remote.example", R_REMOTE, NULL},
	    {"\"user01@remote.example\"@example.test", R_LOCAL,
	     "\"user01@remote.example\"@example.test"},
	    {"\"user01%remote.example\"@example.test", R_LOCAL,
	     "\"user01%remote.example\"@example.test"},
	    {"user01@example.test@remote.example", R_SYNTAX, NULL},
	    {"user01@remote.example@example.test", R_SYNTAX, NULL},
	    {"remote.example!user01@example.test", R_LOCAL, "remote.example!user01@example.test"},
	    {"example.test!remote.example!user01", R_SYNTAX, NULL},
	    {"user01@example.test.", R_SYNTAX, NULL},
	    {"user01@remote.example.", R_SYNTAX, NULL},
	    {"user01@[127.0.0.1]", R_REMOTE, NULL},
	    {"user01@[IPv6:::1]", R_REMOTE, NULL},
	    {"user01@[192.0.2.1]", R_REMOTE, NULL},
	    {"USER01@EXAMPLE.TEST", R_LOCAL, "USER01@EXAMPLE.TEST"},
	    {"user01@Example.Net", R_LOCAL, "user01@Example.Net"},
	    {"user01@sub.example.test", R_REMOTE, NULL},
	    {"user01@example.test.remote.example", R_REMOTE, NULL},
	    {"user01@localhost", R_REMOTE, NULL},
	    {"user01@example.testx", R_REMOTE, NULL},
	    {"user01@ example.test", R_SYNTAX, NULL},
	    {"user01@remote.example%example.test", R_SYNTAX, NULL},
	    {"user01@remote.example\\@example.test", R_SYNTAX, NULL},
	    {"<user01@remote.example>", R_SYNTAX, NULL},
	    {"user01", R_SYNTAX, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[600], line[600];
		struct smtp_cmd cmd;
		snprintf(text, sizeof(text), "RCPT TO:<%s>\r\n", cases[i].rcpt);
		int r = parse(text, 0, &cmd, line, sizeof(line));
		enum relay_outcome got;
		if (r < 0)
			got = R_SYNTAX;
		else if (smtp_rcpt_domain_local(&cmd, domains, 2))
			got = R_LOCAL;
		else
			got = R_REMOTE;
		if (got != cases[i].outcome)
			fail_msg("relay case %zu <%s>: got %d want %d", i, cases[i].rcpt, got,
				 cases[i].outcome);
		if (got == R_LOCAL)
			assert_string_equal(cmd.address, cases[i].lookup);
	}
}

/* ---- the rate limiter ---- */

static void
test_rate_window(void **state)
{
	struct smtp_rate *r = smtp_rate_new(16);
	time_t t0 = 1700000040; /* on a minute boundary */

	/* limit 0: off */
	assert_int_equal(smtp_rate_take(r, "k", 1000, 0, t0), SMTP_RATE_OK);
	assert_int_equal(smtp_rate_count(r, "k", t0), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(smtp_rate_take(r, "k", 1, 10, t0 + i * 60), SMTP_RATE_OK);
	assert_int_equal(smtp_rate_take(r, "k", 1, 10, t0 + 600), SMTP_RATE_EXCEEDED);
	assert_int_equal(smtp_rate_count(r, "k", t0 + 600), 10);
	/* another key is separate */
	assert_int_equal(smtp_rate_take(r, "other", 5, 10, t0), SMTP_RATE_OK);
	/* n larger than what is left fails without counting */
	assert_int_equal(smtp_rate_take(r, "other", 6, 10, t0), SMTP_RATE_EXCEEDED);
	assert_int_equal(smtp_rate_count(r, "other", t0), 5);
	assert_int_equal(smtp_rate_take(r, "other", 5, 10, t0), SMTP_RATE_OK);
	/* the first minute slides out after an hour */
	assert_int_equal(smtp_rate_take(r, "k", 1, 10, t0 + 3599), SMTP_RATE_EXCEEDED);
	assert_int_equal(smtp_rate_count(r, "k", t0 + 3600), 9);
	assert_int_equal(smtp_rate_take(r, "k", 1, 10, t0 + 3600), SMTP_RATE_OK);
	assert_int_equal(smtp_rate_take(r, "k", 1, 10, t0 + 3601), SMTP_RATE_EXCEEDED);
	/* two hours later everything is forgotten */
	assert_int_equal(smtp_rate_count(r, "k", t0 + 3 * 3600), 0);
	assert_int_equal(smtp_rate_take(r, "k", 10, 10, t0 + 3 * 3600), SMTP_RATE_OK);
	smtp_rate_destroy(&r);
	assert_null(r);
}

static void
test_rate_table_full(void **state)
{
	struct smtp_rate *r = smtp_rate_new(4);
	time_t t0 = 1700000040; /* on a minute boundary */
	char key[32];

	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "ip-%d", i);
		assert_int_equal(smtp_rate_take(r, key, 1, 5, t0), SMTP_RATE_OK);
	}
	/* full of live keys: a new one passes uncounted */
	assert_int_equal(smtp_rate_take(r, "new", 1, 5, t0), SMTP_RATE_FULL);
	assert_int_equal(smtp_rate_count(r, "new", t0), 0);
	/* old keys still counted */
	assert_int_equal(smtp_rate_take(r, "ip-0", 1, 5, t0), SMTP_RATE_OK);
	/* once their hour is over, they are swept for the new one */
	assert_int_equal(smtp_rate_take(r, "new", 1, 5, t0 + 7200), SMTP_RATE_OK);
	assert_int_equal(smtp_rate_count(r, "new", t0 + 7200), 1);
	smtp_rate_destroy(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xtext),	    cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_orcpt),	    cmocka_unit_test(test_utf8_addresses),
	    cmocka_unit_test(test_auth_bdat_lhlo),  cmocka_unit_test(test_address_list),
	    cmocka_unit_test(test_relay_table),	    cmocka_unit_test(test_rate_window),
	    cmocka_unit_test(test_rate_table_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
