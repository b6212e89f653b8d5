/*
 * test_outbound_text.c - the pure parts of outbound/: the SMTP reply
 * parser (fed whole and one byte at a time), EHLO capabilities,
 * dot-stuffing, Received counting, xtext, the retry schedule, MX
 * records (decoding, null MX, preference order with shuffled equals),
 * and the [outbound]/[routes]/[dns] config keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "outbound/outbound_internal.h"

/* ---- replies ---- */

struct reply_case {
	const char *wire;
	int result; /* OB_PARSE_DONE / ERROR / LIMIT */
	int code;
	const char *oneline; /* for DONE */
	size_t used;	     /* bytes taken (0: all) */
};

static const struct reply_case reply_cases[] = {
    {"250 ok\r\n", OB_PARSE_DONE, 250, "250 ok", 0},
    {"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n", OB_PARSE_DONE, 250,
     "250 mx.example PIPELINING SIZE 100", 0},
    {"550 5.1.1 no such user\n", OB_PARSE_DONE, 550, "550 5.1.1 no such user", 0},
    {"354\r\n", OB_PARSE_DONE, 354, "354", 0},
    /* stops right after the reply; the next one is left */
    {"250 a\r\n250 b\r\n", OB_PARSE_DONE, 250, "250 a", 7},
    /* control bytes and quotes never reach logs */
    {"421 bad\x01 \"x\"\r\n", OB_PARSE_DONE, 421, "421 bad x", 0},
    {"25 short\r\n", OB_PARSE_ERROR, 0, NULL, 0},
    {"abc hello\r\n", OB_PARSE_ERROR, 0, NULL, 0},
    {"250x\r\n", OB_PARSE_ERROR, 0, NULL, 0},
    {"650 no such class\r\n", OB_PARSE_ERROR, 0, NULL, 0},
    {"250-a\r\n251 b\r\n", OB_PARSE_ERROR, 0, NULL, 0},
};

static void
check_reply(const struct reply_case *c, bool bytewise)
{
	struct ob_reply r;
	struct arena *a = arena_new(0);
	size_t len = strlen(c->wire), off = 0;
	enum ob_parse st = OB_PARSE_MORE;

	ob_reply_init(&r);
	while (off < len && st == OB_PARSE_MORE) {
		size_t n = bytewise ? 1 : len - off, used = 0;
		st = ob_reply_feed(&r, c->wire + off, n, &used);
		assert_true(used <= n);
		off += used;
		if (st == OB_PARSE_MORE)
			assert_int_equal(used, n);
	}
	assert_int_equal(st, c->result);
	if (c->result == OB_PARSE_DONE) {
		assert_int_equal(r.code, c->code);
		assert_string_equal(ob_reply_oneline(&r, a), c->oneline);
		assert_int_equal(off, c->used != 0 ? c->used : len);
	}
	ob_reply_free(&r);
	arena_destroy(&a);
}

static void
test_reply_whole(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++)
		check_reply(&reply_cases[i], false);
}

static void
test_reply_bytewise(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++)
		check_reply(&reply_cases[i], true);
}

static void
test_reply_incomplete_and_reset(void **state)
{
	struct ob_reply r;
	size_t used;
	ob_reply_init(&r);
	assert_int_equal(ob_reply_feed(&r, "250-a\r\n250", 10, &used), OB_PARSE_MORE);
	assert_int_equal(used, 10);
	assert_int_equal(ob_reply_feed(&r, " b\r\n", 4, &used), OB_PARSE_DONE);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 2);
	ob_reply_reset(&r);
	assert_int_equal(ob_reply_feed(&r, "451 later\r\n", 11, &used), OB_PARSE_DONE);
	assert_int_equal(r.code, 451);
	assert_string_equal(buf_cstr(&r.text), "later\n");
	ob_reply_free(&r);
}

static void
test_reply_limits(void **state)
{
	struct ob_reply r;
	size_t used;
	struct buf b;

	/* one line over the limit */
	ob_reply_init(&r);
	buf_init(&b, SIZE_MAX);
	buf_append_str(&b, "250 ");
	for (int i = 0; i < OB_REPLY_LINE_MAX; i++)
		buf_putc(&b, 'x');
	assert_int_equal(ob_reply_feed(&r, b.data, b.len, &used), OB_PARSE_LIMIT);
	ob_reply_free(&r);

	/* too many lines */
	ob_reply_init(&r);
	buf_reset(&b);
	for (int i = 0; i <= OB_REPLY_LINES_MAX; i++)
		buf_append_str(&b, "250-x\r\n");
	assert_int_equal(ob_reply_feed(&r, b.data, b.len, &used), OB_PARSE_LIMIT);
	ob_reply_free(&r);
	buf_free(&b);
}

/* ---- EHLO ---- */

static void
test_caps(void **state)
{
	struct ob_caps c;
	ob_caps_parse("mx.example greets you\nPIPELINING\n8BITMIME\nSIZE 1048576\nsmtputf8\n"
		      "DSN\nSTARTTLS\nAUTH LOGIN PLAIN\nREQUIRETLS\nENHANCEDSTATUSCODES\n",
		      &c);
	assert_true(c.pipelining);
	assert_true(c.eightbitmime);
	assert_true(c.size);
	assert_int_equal(c.size_max, 1048576);
	assert_true(c.smtputf8);
	assert_true(c.dsn);
	assert_true(c.starttls);
	assert_true(c.auth_plain);
	assert_true(c.auth_login);
	assert_true(c.requiretls);
	assert_true(c.enhanced);
	assert_false(c.chunking);

	/* the greeting line is not a keyword; AUTH=LOGIN old style; SIZE
	 * without a number */
	ob_caps_parse("PIPELINING\nAUTH=LOGIN\nSIZE\n", &c);
	assert_false(c.pipelining);
	assert_true(c.auth_login);
	assert_false(c.auth_plain);
	assert_true(c.size);
	assert_int_equal(c.size_max, 0);

	ob_caps_parse("only a greeting\n", &c);
	assert_false(c.starttls || c.dsn || c.size || c.pipelining);
}

/* ---- message text ---- */

static void
test_dot_stuff(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"a\r\n", "a\r\n.\r\n"},
	    {"a", "a\r\n.\r\n"},
	    {".a\r\n..b\r\nc.\r\n", "..a\r\n...b\r\nc.\r\n.\r\n"},
	    {"x\n.\ny", "x\r\n..\r\ny\r\n.\r\n"},
	    {"x\r.y\r\n", "x\r\n..y\r\n.\r\n"},
	    {"", ".\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 1000);
		assert_int_equal(ob_dot_stuff(cases[i].in, strlen(cases[i].in), &b), 0);
		assert_string_equal(buf_cstr(&b), cases[i].out);
		buf_free(&b);
	}
	struct buf small;
	buf_init(&small, 4);
	assert_int_equal(ob_dot_stuff("abcdef\r\n", 8, &small), -1);
	buf_free(&small);
}

/* The byte-at-a-time rule the line-at-a-time code must match: a '.'
 * first on a line doubled; CRLF, bare CR and bare LF each one CRLF; a
 * last line without an end gets one; then the ".\r\n" terminator. */
static size_t
dot_stuff_ref(const char *in, size_t len, char *out)
{
	size_t o = 0;
	int bol = 1;
	for (size_t i = 0; i < len; i++) {
		if (bol && in[i] == '.')
			out[o++] = '.';
		bol = 0;
		if (in[i] == '\r' || in[i] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			bol = 1;
		} else {
			out[o++] = in[i];
		}
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

static void
test_dot_stuff_matches_reference(void **state)
{
	static const char alphabet[] = {'.', '\r', '\n', 'a', '\0'};
	char in[40], want[200];
	unsigned seed = 12345;

	(void)state;
	for (int n = 0; n < 20000; n++) {
		size_t len = (size_t)(n % 40);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		size_t wlen = dot_stuff_ref(in, len, want);
		struct buf b;
		buf_init(&b, 1000);
		assert_int_equal(ob_dot_stuff(in, len, &b), 0);
		assert_int_equal(b.len, wlen);
		assert_memory_equal(b.data, want, wlen);
		buf_free(&b);
	}
}

static void
test_received(void **state)
{
	const char *m = "Received: from a\r\n by b\r\nreceived: x\r\nSubject: Received: no\r\n"
			"RECEIVED:y\r\n\r\nReceived: in the body\r\n";
	assert_int_equal(ob_count_received(m, strlen(m)), 3);
	assert_int_equal(ob_count_received("", 0), 0);
	const char *lf = "Received: a\nReceived: b\n\nReceived: c\n";
	assert_int_equal(ob_count_received(lf, strlen(lf)), 2);
}

static void
test_8bit_xtext(void **state)
{
	assert_false(ob_has_8bit("plain\r\n", 7));
	assert_true(ob_has_8bit("caf\xc3\xa9", 5));
	struct buf b;
	buf_init(&b, 100);
	assert_int_equal(ob_xtext("a+b=c d\x01", &b), 0);
	assert_string_equal(buf_cstr(&b), "a+2Bb+3Dc+20d+01");
	buf_free(&b);
}

static void
test_backoff(void **state)
{
	assert_int_equal(ob_backoff(1, 300, 3600), 300);
	assert_int_equal(ob_backoff(2, 300, 3600), 600);
	assert_int_equal(ob_backoff(3, 300, 3600), 1200);
	assert_int_equal(ob_backoff(4, 300, 3600), 2400);
	assert_int_equal(ob_backoff(5, 300, 3600), 3600);
	assert_int_equal(ob_backoff(500, 300, 3600), 3600);
	assert_int_equal(ob_backoff(0, 1, 10), 1);
}

/* ---- MX ---- */

static void
test_mx_decode(void **state)
{
	struct arena *a = arena_new(0);
	struct ob_mx mx;
	static const unsigned char rd[] = {0, 10, 3, 'M', 'x', '1', 4, 's', 'i', 'n', 'k', 0};
	assert_int_equal(ob_mx_decode(rd, sizeof(rd), a, &mx), 0);
	assert_int_equal(mx.pref, 10);
	assert_string_equal(mx.name, "mx1.sink");

	static const unsigned char null_mx[] = {0, 0, 0};
	assert_int_equal(ob_mx_decode(null_mx, sizeof(null_mx), a, &mx), 0);
	assert_string_equal(mx.name, "");
	assert_true(ob_mx_is_null(&mx, 1));
	struct ob_mx two[2] = {mx, mx};
	assert_false(ob_mx_is_null(two, 2));
	mx.pref = 5;
	assert_false(ob_mx_is_null(&mx, 1));

	static const unsigned char ptr[] = {0, 1, 0xc0, 12};
	assert_int_equal(ob_mx_decode(ptr, sizeof(ptr), a, &mx), -1);
	static const unsigned char trunc[] = {0, 1, 5, 'a', 'b'};
	assert_int_equal(ob_mx_decode(trunc, sizeof(trunc), a, &mx), -1);
	static const unsigned char trail[] = {0, 1, 1, 'a', 0, 9};
	assert_int_equal(ob_mx_decode(trail, sizeof(trail), a, &mx), -1);
	assert_int_equal(ob_mx_decode(rd, 2, a, &mx), -1);
	arena_destroy(&a);
}

static unsigned
seq_rnd(void *arg)
{
	unsigned *s = arg;
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void
test_mx_sort(void **state)
{
	/* Sorted by preference whatever the shuffle; equal preferences come
	 * out in more than one order over many runs. */
	bool b_first = false, c_first = false;
	unsigned seed = 1;
	for (int run = 0; run < 64; run++) {
		struct ob_mx mx[] = {{"d", 30}, {"b", 10}, {"a", 5}, {"c", 10}, {"e", 30}};
		ob_mx_sort(mx, 5, seq_rnd, &seed);
		assert_string_equal(mx[0].name, "a");
		assert_int_equal(mx[1].pref, 10);
		assert_int_equal(mx[2].pref, 10);
		assert_int_equal(mx[3].pref, 30);
		assert_int_equal(mx[4].pref, 30);
		if (strcmp(mx[1].name, "b") == 0)
			b_first = true;
		else
			c_first = true;
	}
	assert_true(b_first && c_first);
}

/* ---- config ---- */

static char *
write_conf(const char *extra)
{
	char *path = strdup("/tmp/test_outbound_conf_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f,
		"[server]\nhostname = mx.example.test\ndomains = example.test\n"
		"state_dir = /tmp/x\n[directory]\nuri = ldap://127.0.0.1:1\n"
		"base = dc=example,dc=test\n%s",
		extra);
	fclose(f);
	return path;
}

static struct config *
load(const char *extra, char **err_r)
{
	char *path = write_conf(extra);
	struct config *cfg = config_load(path, err_r);
	unlink(path);
	free(path);
	return cfg;
}

static void
test_config_defaults(void **state)
{
	char *err = NULL;
	struct config *cfg = load("", &err);
	assert_non_null(cfg);
	assert_int_equal(cfg->outbound_retry_initial_s, 300);
	assert_int_equal(cfg->outbound_retry_max, 3600);
	assert_int_equal(cfg->outbound_lifetime, 5 * 86400);
	assert_int_equal(cfg->outbound_delay_warning, 4 * 3600);
	assert_int_equal(cfg->outbound_max_received, 50);
	assert_int_equal(cfg->outbound_port, 25);
	assert_string_equal(cfg->outbound_relay_host, "");
	assert_int_equal(cfg->outbound_relayhost_tls, CONFIG_TLS_MAY);
	assert_string_equal(cfg->outbound_relayhost_auth, "");
	assert_string_equal(cfg->dns_resolver_host, "");
	assert_int_equal(cfg->nroutes, 0);
	config_free(cfg);
}

static void
test_config_values(void **state)
{
	char *err = NULL;
	char auth[] = "/tmp/test_outbound_auth_XXXXXX";
	int fd = mkstemp(auth);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "relay:s3cret\n", 13), 13);
	close(fd);
	chmod(auth, 0600);
	char extra[1024];
	snprintf(extra, sizeof(extra),
		 "[outbound]\nrelayhost = smart.example:2525\nrelayhost_auth_file = %s\n"
		 "relayhost_tls = verify\nretry_initial = 1s\nretry_max = 4s\nport = 2526\n"
		 "[dns]\nresolver = 127.0.0.1:5353\n[routes]\nPartner.Example = gw.partner:26\n"
		 "other.example = [::1]\n",
		 auth);
	struct config *cfg = load(extra, &err);
	assert_non_null(cfg);
	assert_string_equal(cfg->outbound_relay_host, "smart.example");
	assert_int_equal(cfg->outbound_relay_port, 2525);
	assert_string_equal(cfg->outbound_relayhost_auth, "relay:s3cret");
	assert_int_equal(cfg->outbound_relayhost_tls, CONFIG_TLS_VERIFY);
	assert_int_equal(cfg->outbound_retry_initial_s, 1);
	assert_string_equal(cfg->dns_resolver_host, "127.0.0.1");
	assert_int_equal(cfg->dns_resolver_port, 5353);
	assert_int_equal(cfg->nroutes, 2);
	const struct config_route *r = config_route_for(cfg, "partner.example");
	assert_non_null(r);
	assert_string_equal(r->host, "gw.partner");
	assert_int_equal(r->port, 26);
	r = config_route_for(cfg, "OTHER.example");
	assert_non_null(r);
	assert_string_equal(r->host, "::1");
	assert_int_equal(r->port, 2526); /* [outbound] port */
	assert_null(config_route_for(cfg, "example.org"));
	config_free(cfg);

	/* a password file others can read is refused */
	chmod(auth, 0644);
	snprintf(extra, sizeof(extra),
		 "[outbound]\nrelayhost = smart.example\nrelayhost_auth_file = %s\n", auth);
	assert_null(load(extra, &err));
	assert_non_null(strstr(err, "readable by others"));
	free(err);
	unlink(auth);
}

static void
test_config_errors(void **state)
{
	static const struct {
		const char *extra, *want;
	} cases[] = {
	    {"[outbound]\nretry_initial = soon\n", ":9: [outbound] retry_initial"},
	    {"[outbound]\nretry_initial = 2h\nretry_max = 1h\n", ":10: [outbound] retry_max"},
	    {"[outbound]\nrelayhost = a:b:c\n", ":9: [outbound] relayhost"},
	    {"[outbound]\nrelayhost = host:0\n", ":9: [outbound] relayhost"},
	    {"[outbound]\nrelayhost_tls = maybe\n", ":9: [outbound] relayhost_tls"},
	    {"[outbound]\nport = 0\n", ":9: [outbound] port"},
	    {"[outbound]\nlifetime = forever\n", ":9: [outbound] lifetime"},
	    {"[dns]\nresolver = dns.example\n", ":9: [dns] resolver"},
	    {"[dns]\nresolver = 127.0.0.1:99999\n", ":9: [dns] resolver"},
	    {"[routes]\nbad domain! = host\n", ":9: [routes]"},
	    {"[routes]\na.example = host:x\n", ":9: [routes] a.example"},
	    {"[routes]\na.example = h1\nA.example = h2\n", ":10: [routes] A.example: duplicate"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL;
		struct config *cfg = load(cases[i].extra, &err);
		assert_null(cfg);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
		free(err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_whole),
	    cmocka_unit_test(test_reply_bytewise),
	    cmocka_unit_test(test_reply_incomplete_and_reset),
	    cmocka_unit_test(test_reply_limits),
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_dot_stuff),
	    cmocka_unit_test(test_dot_stuff_matches_reference),
	    cmocka_unit_test(test_received),
	    cmocka_unit_test(test_8bit_xtext),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_mx_decode),
	    cmocka_unit_test(test_mx_sort),
	    cmocka_unit_test(test_config_defaults),
	    cmocka_unit_test(test_config_values),
	    cmocka_unit_test(test_config_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
