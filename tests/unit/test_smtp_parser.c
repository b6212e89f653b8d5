/*
 * test_smtp_parser.c - the SMTP command parser and the DATA reader.
 * Input always goes through core/linereader.h one byte at a time, as it
 * would from a slow network, then into the parser or the reader.
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
#include "protocols/smtp/smtp_data.h"
#include "protocols/smtp/smtp_parser.h"

/* Feeds text one byte at a time; returns the first line (copied into
 * out, which must be large enough), asserting that it ends exactly at the
 * end of text. */
static void
one_line(const char *text, size_t textlen, size_t max, char *out, size_t outsz, size_t *len_r)
{
	struct linereader lr;
	bool got = false;

	lr_init(&lr, max);
	for (size_t i = 0; i < textlen; i++) {
		size_t used = 0;
		char *line;
		size_t len;
		enum lr_result r = lr_feed(&lr, text + i, 1, &used, &line, &len);
		assert_int_equal(used, 1);
		assert_int_not_equal(r, LR_TOO_LONG);
		if (r == LR_LINE) {
			assert_false(got);
			assert_int_equal(i, textlen - 1); /* only at the final LF */
			assert_true(len < outsz);
			memcpy(out, line, len + 1);
			*len_r = len;
			got = true;
		}
	}
	assert_true(got);
	lr_free(&lr);
}

struct cmd_case {
	const char *text; /* with its line terminator */
	int result;
	enum smtp_verb verb;
	const char *address; /* expected address, or arg for HELO/EHLO */
	size_t nparams;
};

static const struct cmd_case cmd_cases[] = {
    /* HELO/EHLO */
    {"EHLO client.example.org\r\n", SMTP_PARSE_OK, SMTP_VERB_EHLO, "client.example.org", 0},
    {"ehlo [127.0.0.1]\r\n", SMTP_PARSE_OK, SMTP_VERB_EHLO, "[127.0.0.1]", 0},
    {"Helo localhost\n", SMTP_PARSE_OK, SMTP_VERB_HELO, "localhost", 0},
    {"EHLO [IPv6:::1]\r\n", SMTP_PARSE_OK, SMTP_VERB_EHLO, "[IPv6:::1]", 0},
    {"EHLO x.example   \r\n", SMTP_PARSE_OK, SMTP_VERB_EHLO, "x.example", 0},
    {"HELO\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_HELO, NULL, 0},
    {"EHLO \r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO a b\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO bad..name\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO -bad.example\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO bad-.example\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO trailing.dot.\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO [999.1.1.1]\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_EHLO, NULL, 0},
    {"EHLO under_score.example\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_EHLO, NULL, 0},

    /* MAIL FROM */
    {"MAIL FROM:<alice@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "alice@example.org", 0},
    {"mail from:<Alice@Example.ORG>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "Alice@Example.ORG", 0},
    {"MAIL FROM:<>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "", 0},
    {"MAIL FROM: <bob@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "bob@example.org", 0},
    {"MAIL FROM:<@a.example,@b.example:bob@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL,
     "bob@example.org", 0},
    {"MAIL FROM:<x@y.example> SIZE=1000 BODY=8BITMIME\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL,
     "x@y.example", 2},
    {"MAIL FROM:<x@y.example>  SIZE=1  \r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "x@y.example", 1},
    {"MAIL FROM:<\"john doe\"@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL,
     "\"john doe\"@example.org", 0},
    {"MAIL FROM:<\"a\\\"b>c\"@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL,
     "\"a\\\"b>c\"@example.org", 0},
    {"MAIL FROM:<a@[192.0.2.1]>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "a@[192.0.2.1]", 0},
    {"MAIL FROM:<a@[IPv6:2001:db8::1]>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL, "a@[IPv6:2001:db8::1]",
     0},
    {"MAIL FROM:<a+tag.x!y@sub-1.example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_MAIL,
     "a+tag.x!y@sub-1.example.org", 0},
    {"MAIL FROM:<a@[300.1.1.1]>\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@[IPv7:1]>\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@[192.0.2.1>\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:alice@example.org\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<alice@example.org\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<alice>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a..b@example.org>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<.a@example.org>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a.@example.org>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a b@example.org>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<\"open@example.org>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@>\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b@c.example>\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<@a.example:>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<@a.example,b@example.org>\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<@:b@example.org>\r\n", SMTP_PARSE_DOMAIN, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL TO:<a@example.org>\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b.example>SIZE=1\r\n", SMTP_PARSE_PATH, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b.example> =x\r\n", SMTP_PARSE_PARAM, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b.example> SIZE=\r\n", SMTP_PARSE_PARAM, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b.example> SI_ZE=1\r\n", SMTP_PARSE_PARAM, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b.example> A=b=c\r\n", SMTP_PARSE_PARAM, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a@b.example> -A=1\r\n", SMTP_PARSE_PARAM, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<a\x01@b.example>\r\n", SMTP_PARSE_BAD_CHAR, SMTP_VERB_MAIL, NULL, 0},
    {"MAIL FROM:<\xc3\xa9@b.example>\r\n", SMTP_PARSE_UTF8, SMTP_VERB_MAIL, NULL, 0},

    /* RCPT TO */
    {"RCPT TO:<bob@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_RCPT, "bob@example.org", 0},
    {"rcpt to:<bob@example.org> NOTIFY=NEVER\r\n", SMTP_PARSE_OK, SMTP_VERB_RCPT, "bob@example.org",
     1},
    {"RCPT TO:<@relay.example:bob@example.org>\r\n", SMTP_PARSE_OK, SMTP_VERB_RCPT,
     "bob@example.org", 0},
    {"RCPT TO:<Postmaster>\r\n", SMTP_PARSE_OK, SMTP_VERB_RCPT, "Postmaster", 0},
    {"RCPT TO:<>\r\n", SMTP_PARSE_PATH, SMTP_VERB_RCPT, NULL, 0},
    {"RCPT TO:<bob>\r\n", SMTP_PARSE_PATH, SMTP_VERB_RCPT, NULL, 0},
    {"RCPT TO:<@relay.example:Postmaster>\r\n", SMTP_PARSE_PATH, SMTP_VERB_RCPT, NULL, 0},
    {"RCPT FROM:<bob@example.org>\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_RCPT, NULL, 0},

    /* the rest */
    {"DATA\r\n", SMTP_PARSE_OK, SMTP_VERB_DATA, NULL, 0},
    {"data\n", SMTP_PARSE_OK, SMTP_VERB_DATA, NULL, 0},
    {"DATA now\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_DATA, NULL, 0},
    {"RSET\r\n", SMTP_PARSE_OK, SMTP_VERB_RSET, NULL, 0},
    {"QUIT   \r\n", SMTP_PARSE_OK, SMTP_VERB_QUIT, NULL, 0},
    {"NOOP hello there\r\n", SMTP_PARSE_OK, SMTP_VERB_NOOP, NULL, 0},
    {"VRFY bob\r\n", SMTP_PARSE_OK, SMTP_VERB_VRFY, NULL, 0},
    {"VRFY\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_VRFY, NULL, 0},
    {"EXPN staff\r\n", SMTP_PARSE_OK, SMTP_VERB_EXPN, NULL, 0},
    {"HELP\r\n", SMTP_PARSE_OK, SMTP_VERB_HELP, NULL, 0},
    {"StartTLS\r\n", SMTP_PARSE_OK, SMTP_VERB_STARTTLS, NULL, 0},
    {"STARTTLS now\r\n", SMTP_PARSE_SYNTAX, SMTP_VERB_STARTTLS, NULL, 0},
    {"FOO\r\n", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL, 0},
    {"MAILFROM:<a@b.example>\r\n", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL, 0},
    {"\r\n", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL, 0},
    {"AUTH PLAIN AGFsaWNl\r\n", SMTP_PARSE_OK, SMTP_VERB_AUTH, NULL, 0},
    {"XAUTH PLAIN\r\n", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL, 0},
};

static int
parse_text(const char *text, size_t textlen, struct smtp_cmd *cmd, char *line, size_t linesz)
{
	size_t len = 0;

	one_line(text, textlen, 1000, line, linesz, &len);
	return smtp_parse_command(line, len, cmd);
}

static void
test_command_table(void **state)
{
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *tc = &cmd_cases[i];
		struct smtp_cmd cmd;
		char line[1024];
		int r = parse_text(tc->text, strlen(tc->text), &cmd, line, sizeof(line));
		if (r != tc->result || cmd.verb != tc->verb)
			fail_msg("case %zu \"%s\": got %d (%s) verb %d, want %d verb %d", i,
				 tc->text, r, smtp_parse_strerror(r), cmd.verb, tc->result,
				 tc->verb);
		if (r != SMTP_PARSE_OK || tc->address == NULL)
			continue;
		const char *got = (cmd.verb == SMTP_VERB_HELO || cmd.verb == SMTP_VERB_EHLO)
				      ? cmd.arg
				      : cmd.address;
		assert_non_null(got);
		if (strcmp(got, tc->address) != 0)
			fail_msg("case %zu \"%s\": address \"%s\", want \"%s\"", i, tc->text, got,
				 tc->address);
		assert_int_equal(cmd.nparams, tc->nparams);
	}
}

static void
test_mail_fields(void **state)
{
	struct smtp_cmd cmd;
	char line[1024];
	const char *t =
	    "MAIL FROM:<@a.example:Bob.Smith@Mail.Example.ORG> SIZE=12345 BODY=8BITMIME "
	    "X-FLAG\r\n";

	assert_int_equal(parse_text(t, strlen(t), &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_false(cmd.null_path);
	assert_string_equal(cmd.address, "Bob.Smith@Mail.Example.ORG");
	assert_int_equal(cmd.local_len, 9);
	assert_string_equal(cmd.domain, "Mail.Example.ORG");
	assert_false(cmd.domain_literal);
	assert_int_equal(cmd.nparams, 3);
	assert_string_equal(cmd.params[0].keyword, "SIZE");
	assert_string_equal(cmd.params[0].value, "12345");
	assert_string_equal(cmd.params[1].keyword, "BODY");
	assert_string_equal(cmd.params[1].value, "8BITMIME");
	assert_string_equal(cmd.params[2].keyword, "X-FLAG");
	assert_null(cmd.params[2].value);

	t = "MAIL FROM:<>\r\n";
	assert_int_equal(parse_text(t, strlen(t), &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_true(cmd.null_path);
	assert_string_equal(cmd.address, "");

	t = "RCPT TO:<\"x y\"@[10.1.2.3]>\r\n";
	assert_int_equal(parse_text(t, strlen(t), &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_int_equal(cmd.local_len, 5);
	assert_string_equal(cmd.domain, "[10.1.2.3]");
	assert_true(cmd.domain_literal);

	t = "RCPT TO:<POSTMASTER>\r\n";
	assert_int_equal(parse_text(t, strlen(t), &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_true(cmd.postmaster);

	t = "EHLO mail.example.org\r\n";
	assert_int_equal(parse_text(t, strlen(t), &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_string_equal(cmd.arg, "mail.example.org");
	t = "HELP me\r\n";
	assert_int_equal(parse_text(t, strlen(t), &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_string_equal(cmd.arg, "me");
}

/* Parses "MAIL FROM:<" local "@" domain ">" where the local part has
 * local bytes and the domain dlen bytes with a dot every period bytes. */
static int
parse_lengths(size_t local, size_t dlen, size_t period, struct buf *b)
{
	struct smtp_cmd cmd;
	char line[2048];

	buf_reset(b);
	buf_append_str(b, "MAIL FROM:<");
	for (size_t i = 0; i < local; i++)
		buf_putc(b, 'l');
	buf_putc(b, '@');
	for (size_t i = 0; i < dlen; i++)
		buf_putc(b, (i + 1) % period == 0 ? '.' : 'd');
	buf_append_str(b, ">\r\n");
	return parse_text(b->data, b->len, &cmd, line, sizeof(line));
}

static void
test_lengths(void **state)
{
	struct buf b;

	buf_init(&b, 4096);
	/* local part: 64 ok, 65 not (4.5.3.1.1) */
	assert_int_equal(parse_lengths(64, 10, 1000, &b), SMTP_PARSE_OK);
	assert_int_equal(parse_lengths(65, 10, 1000, &b), SMTP_PARSE_LOCAL_TOO_LONG);
	/* labels: 63 ok, 64 not */
	assert_int_equal(parse_lengths(1, 63, 1000, &b), SMTP_PARSE_OK);
	assert_int_equal(parse_lengths(1, 64, 1000, &b), SMTP_PARSE_DOMAIN);
	assert_int_equal(parse_lengths(1, 63 + 1 + 63, 64, &b), SMTP_PARSE_OK);
	assert_int_equal(parse_lengths(1, 64 + 1 + 63, 65, &b), SMTP_PARSE_DOMAIN);
	/* domain: over 255 (4.5.3.1.2); 255 itself cannot fit in a path */
	assert_int_equal(parse_lengths(1, 256, 60, &b), SMTP_PARSE_DOMAIN_TOO_LONG);
	assert_int_equal(parse_lengths(1, 255, 60, &b), SMTP_PARSE_PATH_TOO_LONG);
	/* path with its brackets: 256 ok, 257 not (4.5.3.1.3) */
	assert_int_equal(parse_lengths(64, 189, 60, &b), SMTP_PARSE_OK);
	assert_int_equal(parse_lengths(64, 190, 60, &b), SMTP_PARSE_PATH_TOO_LONG);
	assert_int_equal(parse_lengths(63, 190, 60, &b), SMTP_PARSE_OK);
	buf_free(&b);
}

static void
test_too_many_params(void **state)
{
	struct buf b;
	struct smtp_cmd cmd;
	char line[2048];

	buf_init(&b, 4096);
	buf_append_str(&b, "MAIL FROM:<a@b.example>");
	for (int i = 0; i < SMTP_PARAMS_MAX; i++)
		buf_printf(&b, " P%d=%d", i, i);
	buf_append_str(&b, "\r\n");
	assert_int_equal(parse_text(b.data, b.len, &cmd, line, sizeof(line)), SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, SMTP_PARAMS_MAX);
	assert_string_equal(cmd.params[SMTP_PARAMS_MAX - 1].value, "15");
	b.len -= 2;
	buf_append_str(&b, " ONE-MORE\r\n");
	assert_int_equal(parse_text(b.data, b.len, &cmd, line, sizeof(line)),
			 SMTP_PARSE_TOO_MANY_PARAMS);
	buf_free(&b);
}

static void
test_domain_valid(void **state)
{
	assert_true(smtp_domain_valid("a", 1, false));
	assert_true(smtp_domain_valid("1a-b.example", 12, false));
	assert_false(smtp_domain_valid("[127.0.0.1]", 11, false));
	assert_true(smtp_domain_valid("[127.0.0.1]", 11, true));
	assert_false(smtp_domain_valid("[127.0.0.01]", 12, true));
	assert_false(smtp_domain_valid("[IPv6:1::2::3]", 14, true));
	assert_false(smtp_domain_valid("", 0, true));
	assert_false(smtp_domain_valid(".a", 2, true));
	assert_false(smtp_domain_valid("[]", 2, true));

	/* 255 octets is the most (4.5.3.1.2) */
	struct buf b;
	buf_init(&b, 512);
	for (int i = 0; i < 256; i++)
		buf_putc(&b, (i + 1) % 50 == 0 ? '.' : 'd');
	assert_true(smtp_domain_valid(b.data, 255, false));
	assert_false(smtp_domain_valid(b.data, 256, false));
	buf_free(&b);
}

/* ---- DATA reader ---- */

struct data_run {
	struct buf out;
	struct smtp_data d;
	size_t end_at; /* offset just after the end-of-data line, or 0 */
	size_t too_long;
};

/* Feeds text one byte at a time through a line reader (max bytes a line)
 * into the DATA reader until the end of data. */
static void
run_data(struct data_run *run, const char *text, size_t textlen, size_t lrmax, uint64_t max)
{
	struct linereader lr;

	memset(run, 0, sizeof(*run));
	buf_init(&run->out, 1 << 20);
	smtp_data_init(&run->d, &run->out, max);
	lr_init(&lr, lrmax);
	for (size_t i = 0; i < textlen; i++) {
		size_t used = 0;
		char *line;
		size_t len;
		enum lr_result r = lr_feed(&lr, text + i, 1, &used, &line, &len);
		assert_int_equal(used, 1);
		if (r == LR_TOO_LONG) {
			run->too_long++;
			smtp_data_line_too_long(&run->d);
		} else if (r == LR_LINE) {
			if (smtp_data_line(&run->d, line, len, lr.had_cr) == SMTP_DATA_END) {
				run->end_at = i + 1;
				break;
			}
		}
	}
	lr_free(&lr);
}

struct data_case {
	const char *in;
	const char *stored; /* NULL: not checked */
	int error;
	const char *after; /* what must remain after the end ("" = nothing) */
};

static const struct data_case data_cases[] = {
    /* plain message; the end line is consumed, nothing else */
    {"Subject: hi\r\n\r\nbody\r\n.\r\n", "Subject: hi\r\n\r\nbody\r\n", SMTP_DATA_OK, ""},
    /* dot-unstuffing */
    {"..leading\r\n..\r\n...\r\n.\r\n", ".leading\r\n.\r\n..\r\n", SMTP_DATA_OK, ""},
    /* a dot that is not alone at the start of a line does not end it */
    {"a . b\r\nend.\r\n.x\r\n .\r\n.\r\n", "a . b\r\nend.\r\nx\r\n .\r\n", SMTP_DATA_OK, ""},
    /* bare LF lines are stored with CRLF */
    {"one\ntwo\r\nthree\n\r\n.\r\n", "one\r\ntwo\r\nthree\r\n\r\n", SMTP_DATA_OK, ""},
    /* <LF>.<LF> and <LF>.<CR><LF> do not end the message (smuggling) */
    {"a\n.\nMAIL FROM:<x@y.example>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y.example>\r\n",
     SMTP_DATA_OK, ""},
    {"a\n.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", SMTP_DATA_OK, ""},
    {"a\r\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", SMTP_DATA_OK, ""},
    /* an empty message */
    {".\r\n", "", SMTP_DATA_OK, ""},
    /* pipelined command after the end stays for the command reader */
    {"x\r\n.\r\nQUIT\r\n", "x\r\n", SMTP_DATA_OK, "QUIT\r\n"},
    /* 8-bit and NUL bytes pass through */
    {"caf\xc3\xa9\r\n.\r\n", "caf\xc3\xa9\r\n", SMTP_DATA_OK, ""},
    /* size: exactly at the limit (40, CRLFs counted) is fine, one more
     * is not, and the reading still goes on to the end */
    {"012345678901234567890123456789012345\r\n\r\n.\r\n",
     "012345678901234567890123456789012345\r\n\r\n", SMTP_DATA_OK, ""},
    {"0123456789012345678901234567890123456\r\n\r\n.\r\nNOOP\r\n", NULL, SMTP_DATA_TOO_BIG,
     "NOOP\r\n"},
    /* unstuffed bytes are what counts */
    {"..12345678901234567890123456789012345\r\n\r\n.\r\n",
     ".12345678901234567890123456789012345\r\n\r\n", SMTP_DATA_OK, ""},
    /* a line over the reader's limit (64) fails the message; reading
     * goes on to the end */
    {"short\r\n"
     "01234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
     "after\r\n.\r\nRSET\r\n",
     NULL, SMTP_DATA_LINE_TOO_LONG, "RSET\r\n"},
};

static void
test_data_table(void **state)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *tc = &data_cases[i];
		struct data_run run;
		size_t inlen = strlen(tc->in);

		run_data(&run, tc->in, inlen, 64, 40);
		if (run.end_at == 0)
			fail_msg("data case %zu: no end of data", i);
		if (run.d.error != tc->error)
			fail_msg("data case %zu: error %d, want %d", i, run.d.error, tc->error);
		if (strcmp(tc->in + run.end_at, tc->after) != 0)
			fail_msg("data case %zu: left \"%s\"", i, tc->in + run.end_at);
		if (tc->stored != NULL) {
			assert_int_equal(run.out.len, strlen(tc->stored));
			assert_memory_equal(buf_cstr(&run.out), tc->stored, run.out.len);
			assert_int_equal(run.d.size, run.out.len);
		}
		buf_free(&run.out);
	}
}

static void
test_data_details(void **state)
{
	struct data_run run;
	const char *t;

	/* no end: the reader keeps asking for more */
	t = "a\r\nb\r\n.b\r\n";
	run_data(&run, t, strlen(t), 1000, 1000);
	assert_int_equal(run.end_at, 0);
	assert_string_equal(buf_cstr(&run.out), "a\r\nb\r\nb\r\n");
	buf_free(&run.out);

	/* bare LF is noticed; a NUL byte is kept */
	t = "x\ny\r\n.\r\n";
	run_data(&run, t, strlen(t), 1000, 1000);
	assert_true(run.d.bare_lf);
	assert_int_equal(run.d.lines, 2);
	buf_free(&run.out);
	static const char nul[] = "a\0b\r\n.\r\n";
	run_data(&run, nul, sizeof(nul) - 1, 1000, 1000);
	assert_int_equal(run.out.len, 5);
	assert_memory_equal(run.out.data, "a\0b\r\n", 5);
	buf_free(&run.out);

	/* over the size: nothing more is stored, the size is still counted */
	t = "0123456789\r\n0123456789\r\n0123456789\r\n.\r\n";
	run_data(&run, t, strlen(t), 1000, 24);
	assert_int_equal(run.d.error, SMTP_DATA_TOO_BIG);
	assert_int_equal(run.d.size, 36);
	assert_int_equal(run.out.len, 24);
	buf_free(&run.out);

	/* the output buffer's cap is a second guard */
	struct buf small;
	struct smtp_data d;
	buf_init(&small, 8);
	smtp_data_init(&d, &small, 1000);
	assert_int_equal(smtp_data_line(&d, "0123456789", 10, true), SMTP_DATA_MORE);
	assert_int_equal(d.error, SMTP_DATA_TOO_BIG);
	assert_int_equal(smtp_data_line(&d, ".", 1, true), SMTP_DATA_END);
	buf_free(&small);

	/* existing content (the Received header) is kept, not counted */
	struct buf out;
	buf_init(&out, 100);
	buf_append_str(&out, "Received: x\r\n");
	smtp_data_init(&d, &out, 5);
	smtp_data_line(&d, "abc", 3, true);
	assert_int_equal(smtp_data_line(&d, ".", 1, true), SMTP_DATA_END);
	assert_int_equal(d.error, SMTP_DATA_OK);
	assert_string_equal(buf_cstr(&out), "Received: x\r\nabc\r\n");
	buf_free(&out);

	/* the too-long line is reported once and does not end the data */
	t = "0123456789012345678901234567890123456789\n.\r\n";
	run_data(&run, t, strlen(t), 16, 1000);
	assert_int_equal(run.too_long, 1);
	assert_int_equal(run.end_at, strlen(t));
	assert_int_equal(run.d.error, SMTP_DATA_LINE_TOO_LONG);
	buf_free(&run.out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_command_table), cmocka_unit_test(test_mail_fields),
	    cmocka_unit_test(test_lengths),	  cmocka_unit_test(test_too_many_params),
	    cmocka_unit_test(test_domain_valid),  cmocka_unit_test(test_data_table),
	    cmocka_unit_test(test_data_details),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
