/*
 * test_dsn.c - the RFC 3464 composer (outbound/dsn.c): each report is
 * parsed back with the store's MIME parser (storage/mime.c), whole and one
 * byte at a time, and its structure and fields are checked exactly:
 * multipart/report with the three parts, the delivery-status fields per
 * recipient, headers-only and full originals (8-bit kept), the RFC 6533
 * types under SMTPUTF8, folding of long replies, and replies that try to
 * add fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "outbound/dsn.h"
#include "storage/mime.h"

static const char orig_msg[] = "From: Alice <alice@local.test>\r\n"
			       "To: bob@remote.test\r\n"
			       "Subject: hello\r\n"
			       "Message-ID: <m1@local.test>\r\n"
			       "\r\n"
			       "Hi Bob,\r\n"
			       "see you.\r\n";

/* 1700000000 = Tue, 14 Nov 2023 22:13:20 +0000 */
#define T0 1700000000

static struct dsn_params
params(void)
{
	struct dsn_params p = {
	    .hostname = "mx.local.test",
	    .sender = "alice@local.test",
	    .envid = "QQ314159",
	    .received_from = "[127.0.0.1] (client.test)",
	    .arrival = T0,
	    .now = T0 + 3600,
	    .id = 0xabcdef,
	    .ret = QUEUE_RET_DEFAULT,
	};
	return p;
}

static char *
compose(const struct dsn_params *p, const struct dsn_rcpt *r, size_t n, const char *orig,
	size_t orig_len, size_t *len_r)
{
	struct buf b;

	buf_init(&b, 1u << 20);
	assert_int_equal(dsn_compose(p, r, n, orig, orig_len, &b), 0);
	char *s = strndup(b.data, b.len);
	*len_r = b.len;
	buf_free(&b);
	return s;
}

/* Parses msg whole and byte by byte; the two trees must agree. */
static struct mime_part *
parse(struct arena *a, const char *msg, size_t len)
{
	struct mime_part *whole, *bytes;
	struct mime_parser *mp = mime_parser_new(a, NULL);

	assert_int_equal(mime_parse(a, NULL, msg, len, &whole), 0);
	for (size_t i = 0; i < len; i++)
		mime_parser_feed(mp, msg + i, 1);
	assert_int_equal(mime_parser_finish(mp, &bytes), 0);
	/* Same shape and offsets. */
	const struct mime_part *x = whole, *y = bytes;
	assert_int_equal(x->nchildren, y->nchildren);
	for (x = x->children, y = y->children; x != NULL; x = x->next, y = y->next) {
		assert_non_null(y);
		assert_int_equal(x->hdr_off, y->hdr_off);
		assert_int_equal(x->body_off, y->body_off);
		assert_int_equal(x->body_len, y->body_len);
		assert_string_equal(x->subtype, y->subtype);
	}
	return whole;
}

static const char *
param(const struct mime_part *p, const char *name)
{
	for (unsigned i = 0; i < p->nparams; i++)
		if (strcasecmp(p->params[i].name, name) == 0)
			return p->params[i].value;
	return NULL;
}

static const struct mime_part *
child(const struct mime_part *p, unsigned i)
{
	const struct mime_part *c = p->children;

	while (c != NULL && i-- > 0)
		c = c->next;
	assert_non_null(c);
	return c;
}

static char *
body_of(const char *msg, const struct mime_part *p)
{
	return strndup(msg + p->body_off, (size_t)p->body_len);
}

/* The value of header field name in the top-level header, or NULL. */
static bool
has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = msg; (p = strstr(p, line)) != NULL; p++)
		if ((p == msg || p[-1] == '\n') && (p[n] == '\r'))
			return true;
	return false;
}

static void
test_failed_headers_only(void **state)
{
	(void)state;
	struct dsn_params p = params();
	struct dsn_rcpt r[2] = {
	    {.address = "bob@remote.test",
	     .orcpt = "rfc822;Bob+2Bx@remote.test",
	     .action = DSN_ACTION_FAILED,
	     .remote_mta = "mx.remote.test",
	     .diagnostic = "550 5.1.1 <bob@remote.test>: Recipient address rejected: User "
			   "unknown in virtual mailbox table",
	     .last_attempt = T0 + 60},
	    {.address = "carol@gone.test",
	     .action = DSN_ACTION_FAILED,
	     .diagnostic = "domain has a null MX"},
	};
	size_t len;
	char *msg = compose(&p, r, 2, orig_msg, strlen(orig_msg), &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, msg, len);

	assert_true(has_line(msg, "From: Mail Delivery System <MAILER-DAEMON@mx.local.test>"));
	assert_true(has_line(msg, "To: <alice@local.test>"));
	assert_true(has_line(msg, "Subject: Undelivered Mail Returned to Sender"));
	assert_true(has_line(msg, "Date: Tue, 14 Nov 2023 23:13:20 +0000"));
	assert_true(has_line(msg, "Message-ID: <1700003600.0000000000abcdef.dsn@mx.local.test>"));
	assert_true(has_line(msg, "Auto-Submitted: auto-replied"));
	assert_true(has_line(msg, "MIME-Version: 1.0"));
	assert_true(has_line(msg, "Content-Transfer-Encoding: 7bit"));
	assert_non_null(root->envelope);
	assert_string_equal(root->envelope->subject, "Undelivered Mail Returned to Sender");

	assert_int_equal(root->kind, MIME_KIND_MULTIPART);
	assert_string_equal(root->type, "multipart");
	assert_string_equal(root->subtype, "report");
	assert_string_equal(param(root, "report-type"), "delivery-status");
	assert_string_equal(param(root, "boundary"), "=_tern-dsn-0000000000abcdef-0");
	assert_int_equal(root->nchildren, 3);

	const struct mime_part *t = child(root, 0);
	assert_string_equal(t->type, "text");
	assert_string_equal(t->subtype, "plain");
	assert_string_equal(param(t, "charset"), "us-ascii");
	char *text = body_of(msg, t);
	assert_non_null(strstr(text, "This is the mail system at host mx.local.test."));
	assert_non_null(strstr(text, "<bob@remote.test>: failed\r\n    550 5.1.1 "));
	assert_non_null(strstr(text, "<carol@gone.test>: failed\r\n    domain has a null MX\r\n"));
	free(text);

	const struct mime_part *ds = child(root, 1);
	assert_string_equal(ds->type, "message");
	assert_string_equal(ds->subtype, "delivery-status");
	char *status = body_of(msg, ds);
	assert_string_equal(status, "Reporting-MTA: dns; mx.local.test\r\n"
				    "Original-Envelope-Id: QQ314159\r\n"
				    "Received-From-MTA: dns; [127.0.0.1] (client.test)\r\n"
				    "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
				    "\r\n"
				    "Original-Recipient: rfc822; Bob+x@remote.test\r\n"
				    "Final-Recipient: rfc822; bob@remote.test\r\n"
				    "Action: failed\r\n"
				    "Status: 5.1.1\r\n"
				    "Remote-MTA: dns; mx.remote.test\r\n"
				    "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: Recipient "
				    "address\r\n"
				    " rejected: User unknown in virtual mailbox table\r\n"
				    "Last-Attempt-Date: Tue, 14 Nov 2023 22:14:20 +0000\r\n"
				    "\r\n"
				    "Final-Recipient: rfc822; carol@gone.test\r\n"
				    "Action: failed\r\n"
				    "Status: 5.0.0\r\n"
				    "Diagnostic-Code: X-Tern; domain has a null MX\r\n");
	free(status);

	const struct mime_part *o = child(root, 2);
	assert_string_equal(o->type, "text");
	assert_string_equal(o->subtype, "rfc822-headers");
	char *hdrs = body_of(msg, o);
	assert_string_equal(hdrs, "From: Alice <alice@local.test>\r\n"
				  "To: bob@remote.test\r\n"
				  "Subject: hello\r\n"
				  "Message-ID: <m1@local.test>\r\n");
	free(hdrs);
	/* The close delimiter ends the message. */
	assert_int_equal(root->flags & MIME_PART_NO_END, 0);
	free(msg);
	arena_destroy(&a);
}

static void
test_full_8bit_original(void **state)
{
	(void)state;
	static const char orig8[] = "From: a@local.test\r\n"
				    "Subject: caf\xc3\xa9\r\n"
				    "Content-Type: text/plain; charset=utf-8\r\n"
				    "Content-Transfer-Encoding: 8bit\r\n"
				    "\r\n"
				    "Gr\xc3\xbc\xc3\x9f"
				    "e\r\n";
	struct dsn_params p = params();
	p.ret = QUEUE_RET_FULL;
	p.envid = NULL;
	p.received_from = NULL;
	struct dsn_rcpt r = {.address = "bob@remote.test",
			     .action = DSN_ACTION_FAILED,
			     .status = "5.7.1",
			     .diagnostic = "554 no thanks"};
	size_t len;
	char *msg = compose(&p, &r, 1, orig8, strlen(orig8), &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, msg, len);

	assert_true(has_line(msg, "Content-Transfer-Encoding: 8bit"));
	assert_int_equal(root->nchildren, 3);
	char *status = body_of(msg, child(root, 1));
	assert_string_equal(status, "Reporting-MTA: dns; mx.local.test\r\n"
				    "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
				    "\r\n"
				    "Final-Recipient: rfc822; bob@remote.test\r\n"
				    "Action: failed\r\n"
				    "Status: 5.7.1\r\n"
				    "Diagnostic-Code: smtp; 554 no thanks\r\n");
	free(status);
	const struct mime_part *o = child(root, 2);
	assert_int_equal(o->kind, MIME_KIND_MESSAGE);
	assert_string_equal(o->type, "message");
	assert_string_equal(o->subtype, "rfc822");
	assert_int_equal(o->encoding, MIME_ENC_8BIT);
	assert_int_equal(o->body_len, strlen(orig8));
	assert_memory_equal(msg + o->body_off, orig8, strlen(orig8));
	assert_non_null(o->children);
	assert_string_equal(o->children->envelope->subject, "caf\xc3\xa9");
	free(msg);
	arena_destroy(&a);
}

static void
test_delayed_and_success(void **state)
{
	(void)state;
	struct dsn_params p = params();
	p.envid = NULL;
	p.received_from = NULL;
	p.arrival = 0;
	struct dsn_rcpt r = {.address = "bob@remote.test",
			     .action = DSN_ACTION_DELAYED,
			     .diagnostic = "421 mx busy",
			     .last_attempt = T0,
			     .will_retry_until = T0 + 5 * 86400};
	size_t len;
	char *msg = compose(&p, &r, 1, orig_msg, strlen(orig_msg), &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, msg, len);

	assert_string_equal(root->envelope->subject, "Delayed Mail (still being retried)");
	char *status = body_of(msg, child(root, 1));
	assert_string_equal(status, "Reporting-MTA: dns; mx.local.test\r\n"
				    "\r\n"
				    "Final-Recipient: rfc822; bob@remote.test\r\n"
				    "Action: delayed\r\n"
				    "Status: 4.0.0\r\n"
				    "Diagnostic-Code: smtp; 421 mx busy\r\n"
				    "Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
				    "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n");
	free(status);
	free(msg);

	r.action = DSN_ACTION_DELIVERED;
	r.diagnostic = "250 2.0.0 Ok: queued as 1234";
	msg = compose(&p, &r, 1, orig_msg, strlen(orig_msg), &len);
	root = parse(a, msg, len);
	assert_string_equal(root->envelope->subject, "Successful Mail Delivery Report");
	status = body_of(msg, child(root, 1));
	assert_non_null(strstr(status, "Action: delivered\r\nStatus: 2.0.0\r\n"));
	/* Will-Retry-Until is for delayed recipients only. */
	assert_null(strstr(status, "Will-Retry-Until"));
	free(status);
	free(msg);
	arena_destroy(&a);
}

static void
test_smtputf8_types(void **state)
{
	(void)state;
	struct dsn_params p = params();
	p.smtputf8 = true;
	p.sender = "j\xc3\xb6rg@local.test";
	struct dsn_rcpt r = {.address = "\xc3\xa9lise@remote.test",
			     .action = DSN_ACTION_FAILED,
			     .diagnostic = "550 5.1.1 unknown"};
	size_t len;
	char *msg = compose(&p, &r, 1, orig_msg, strlen(orig_msg), &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, msg, len);

	assert_int_equal(root->nchildren, 3);
	assert_string_equal(param(child(root, 0), "charset"), "utf-8");
	assert_string_equal(child(root, 1)->subtype, "global-delivery-status");
	assert_string_equal(child(root, 2)->type, "message");
	assert_string_equal(child(root, 2)->subtype, "global-headers");
	assert_true(has_line(msg, "To: <j\xc3\xb6rg@local.test>"));
	char *status = body_of(msg, child(root, 1));
	assert_non_null(strstr(status, "\r\nFinal-Recipient: utf-8; \xc3\xa9lise@remote.test\r\n"));
	free(status);
	free(msg);

	p.ret = QUEUE_RET_FULL;
	msg = compose(&p, &r, 1, orig_msg, strlen(orig_msg), &len);
	root = parse(a, msg, len);
	assert_string_equal(child(root, 2)->subtype, "global");
	assert_int_equal(child(root, 2)->kind, MIME_KIND_MESSAGE);
	free(msg);
	arena_destroy(&a);
}

/* Every line of s at most max bytes (without CRLF). */
static void
assert_lines_within(const char *s, size_t max)
{
	for (const char *p = s; *p != '\0';) {
		const char *e = strstr(p, "\r\n");
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n > max)
			fail_msg("line of %zu bytes: %.40s...", n, p);
		p += n + (e != NULL ? 2 : 0);
	}
}

/* Unfolds s (CRLF + white space -> one space). */
static char *
unfold(const char *s)
{
	char *o = malloc(strlen(s) + 1), *q = o;
	for (const char *p = s; *p != '\0'; p++) {
		if (p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t')) {
			p += 2;
			while (p[1] == ' ')
				p++;
		}
		*q++ = *p;
	}
	*q = '\0';
	return o;
}

static void
test_folding_and_injection(void **state)
{
	(void)state;
	struct buf diag, word;
	buf_init(&diag, 1u << 16);
	buf_init(&word, 1u << 16);
	buf_append_str(&diag, "550-5.7.1 [192.0.2.1] Our system has detected that this message");
	for (int i = 0; i < 12; i++)
		buf_printf(&diag, " is likely unsolicited mail number %d, see policy", i);
	buf_append_str(&word, "550 ");
	for (int i = 0; i < 2500; i++)
		buf_putc(&word, (char)('a' + i % 26));

	struct dsn_params p = params();
	struct dsn_rcpt r[3] = {
	    {.address = "bob@remote.test", .action = DSN_ACTION_FAILED, .diagnostic = diag.data},
	    {.address = "eve@remote.test",
	     .action = DSN_ACTION_FAILED,
	     .diagnostic = "550 no\r\nX-Evil: injected\r\n\r\n--=_tern-dsn-x caf\xc3\xa9"},
	    {.address = "w@remote.test", .action = DSN_ACTION_FAILED, .diagnostic = word.data},
	};
	size_t len;
	char *msg = compose(&p, r, 3, orig_msg, strlen(orig_msg), &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, msg, len);

	assert_int_equal(root->nchildren, 3);
	char *status = body_of(msg, child(root, 1));
	/* The long reply: folded under 78 columns, the same text unfolded,
	 * and its enhanced code found after the "550-" continuation. */
	const char *dc = strstr(status, "Diagnostic-Code: smtp; 550-5.7.1");
	assert_non_null(dc);
	const char *end = strstr(dc, "\r\nStatus:");
	(void)end;
	char *un = unfold(status);
	assert_non_null(strstr(un, diag.data));
	assert_non_null(strstr(status, "Status: 5.7.1\r\n"));
	/* No field can be added, 8-bit does not leak into a 7-bit report. */
	assert_non_null(strstr(un, "Diagnostic-Code: smtp; 550 no X-Evil: injected --=_tern-dsn-x "
				   "caf??\r\n"));
	assert_false(has_line(msg, "X-Evil: injected"));
	/* The 2500-byte word: cut, every line under 998. */
	assert_lines_within(msg, 997);
	/* A word too long for one line is cut (the cut unfolds to a space:
	 * nothing else could keep lines under 998). */
	char *head = strndup(word.data + 4, 880);
	assert_non_null(strstr(un, head));
	free(head);
	free(un);

	/* Everything but that word stays within 78. */
	struct dsn_rcpt r2[2] = {r[0], r[1]};
	free(msg);
	msg = compose(&p, r2, 2, orig_msg, strlen(orig_msg), &len);
	assert_lines_within(msg, 78);
	free(status);
	free(msg);
	buf_free(&diag);
	buf_free(&word);
	arena_destroy(&a);
}

static void
test_boundary_avoids_original(void **state)
{
	(void)state;
	static const char tricky[] = "Subject: x\r\n\r\n--=_tern-dsn-0000000000abcdef-0\r\n";
	struct dsn_params p = params();
	p.ret = QUEUE_RET_FULL;
	struct dsn_rcpt r = {.address = "b@r.test", .action = DSN_ACTION_FAILED};
	size_t len;
	char *msg = compose(&p, &r, 1, tricky, strlen(tricky), &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, msg, len);

	assert_string_equal(param(root, "boundary"), "=_tern-dsn-0000000000abcdef-1");
	assert_int_equal(root->nchildren, 3);
	assert_int_equal(child(root, 2)->body_len, strlen(tricky));
	free(msg);
	arena_destroy(&a);
}

static void
test_status_of_and_errors(void **state)
{
	(void)state;
	static const struct {
		const char *reply;
		char fallback;
		const char *want;
	} cases[] = {
	    {"550 5.1.1 user unknown", '5', "5.1.1"},
	    {"550-5.7.1 policy", '5', "5.7.1"},
	    {"451 4.4.2 timeout", '5', "4.4.2"},
	    {"421 busy", '5', "4.0.0"},
	    {"554", '4', "5.0.0"},
	    {"4.4.7 delivery time expired", '5', "4.4.7"},
	    {"550 5.1.1000 too long", '5', "5.0.0"},
	    {"550 5.1 short", '5', "5.0.0"},
	    {"no code at all", '4', "4.0.0"},
	    {NULL, '2', "2.0.0"},
	    {"5500 odd", '5', "5.0.0"},
	    {"354 go ahead", '2', "5.0.0"},
	    {"  250 2.1.5 ok", '5', "2.1.5"},
	};
	char st[DSN_STATUS_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dsn_status_of(cases[i].reply, cases[i].fallback, st);
		if (strcmp(st, cases[i].want) != 0)
			fail_msg("\"%s\": %s, want %s", cases[i].reply ? cases[i].reply : "(null)",
				 st, cases[i].want);
	}

	struct dsn_params p = params();
	struct dsn_rcpt r = {.address = "b@r.test", .action = DSN_ACTION_FAILED};
	struct buf b;
	buf_init(&b, 200); /* too small for any report */
	assert_int_equal(dsn_compose(&p, &r, 1, orig_msg, strlen(orig_msg), &b), -1);
	buf_free(&b);
	buf_init(&b, 1u << 20);
	assert_int_equal(dsn_compose(&p, &r, 0, orig_msg, strlen(orig_msg), &b), -1);
	p.hostname = NULL;
	assert_int_equal(dsn_compose(&p, &r, 1, orig_msg, strlen(orig_msg), &b), -1);
	p = params();
	r.action = 0;
	assert_int_equal(dsn_compose(&p, &r, 1, orig_msg, strlen(orig_msg), &b), -1);
	/* An original without a body separator is all header. */
	r.action = DSN_ACTION_FAILED;
	buf_reset(&b);
	assert_int_equal(dsn_compose(&p, &r, 1, "Subject: x\r\n", 12, &b), 0);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse(a, b.data, b.len);
	assert_int_equal(child(root, 2)->body_len, 12);
	arena_destroy(&a);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed_headers_only),
	    cmocka_unit_test(test_full_8bit_original),
	    cmocka_unit_test(test_delayed_and_success),
	    cmocka_unit_test(test_smtputf8_types),
	    cmocka_unit_test(test_folding_and_injection),
	    cmocka_unit_test(test_boundary_avoids_original),
	    cmocka_unit_test(test_status_of_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
