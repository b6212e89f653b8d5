/*
 * test_queue_admin.c - the pure parts of the queue's admin side: list
 * filters (storage/queue_admin.c queue_filter_match), their parsing from
 * query parameters (admin/admin_queue.c), queue ids, and the header
 * summary of a queued message (fed whole and cut at every length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "admin/admin_internal.h"
#include "core/arena.h"
#include "storage/queue.h"

static void
test_id_parse(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t id;
	} cases[] = {
	    {"00000000000004d2", 0, 0x4d2},
	    {"4D2", 0, 0x4d2},
	    {"ffffffffffffffff", 0, UINT64_MAX},
	    {"0", -1, 0},
	    {"", -1, 0},
	    {"10000000000000000", -1, 0}, /* 17 digits */
	    {"12g4", -1, 0},
	    {"-1", -1, 0},
	    {" 12", -1, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t id = 7;
		assert_int_equal(queue_id_parse(cases[i].s, &id), cases[i].rc);
		assert_int_equal(id, cases[i].rc == 0 ? cases[i].id : 7);
	}
	assert_int_equal(queue_id_parse(NULL, &(uint64_t){0}), -1);
}

static void
test_filter_match(void **state)
{
	struct queue_rcpt_info rc[] = {
	    {.address = "bob@Remote.test", .state = QUEUE_RCPT_PENDING},
	    {.address = "carol@other.test", .state = QUEUE_RCPT_DELIVERED},
	};
	struct queue_info m = {.sender = "Alice@local.test",
			       .created = 1000,
			       .state = QUEUE_MSG_DEFERRED,
			       .rcpts = rc,
			       .nrcpts = 2};
	struct queue_info bounce = {
	    .sender = "", .created = 1000, .state = QUEUE_MSG_HELD, .rcpts = rc, .nrcpts = 1};
	static const struct {
		struct queue_filter f;
		bool m, bounce;
	} cases[] = {
	    {{0}, true, true},
	    {{.sender = "alice@LOCAL.test"}, true, false},
	    {{.sender = "alice@local"}, false, false}, /* whole address, not a part */
	    {{.sender = ""}, false, true},	       /* the null sender */
	    {{.recipient = "BOB@remote.test"}, true, true},
	    {{.recipient = "carol@other.test"}, true, false},
	    {{.recipient = "dan@remote.test"}, false, false},
	    {{.domain = "remote.TEST"}, true, true},
	    {{.domain = "test"}, false, false},
	    {{.domain = "other.test", .recipient = "bob@remote.test"}, true, false},
	    {{.state = QUEUE_MSG_DEFERRED}, true, false},
	    {{.state = QUEUE_MSG_HELD}, false, true},
	    {{.state = QUEUE_MSG_QUEUED}, false, false},
	    {{.older_than = 500}, true, true}, /* now 1500: queued 500 s ago */
	    {{.older_than = 501}, false, false},
	    {{.older_than = 100000}, false, false}, /* before the epoch */
	    {{.sender = "alice@local.test", .state = QUEUE_MSG_HELD}, false, false},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (queue_filter_match(&cases[i].f, &m, 1500) != cases[i].m)
			fail_msg("case %zu: message", i);
		if (queue_filter_match(&cases[i].f, &bounce, 1500) != cases[i].bounce)
			fail_msg("case %zu: bounce", i);
	}
}

static void
test_filter_parse(void **state)
{
	static const struct {
		const char *sender, *rcpt, *domain, *st, *older;
		const char *bad_field; /* NULL: accepted */
	} cases[] = {
	    {NULL, NULL, NULL, NULL, NULL, NULL},
	    {"a@b.test", "c@d.test", "d.test", "held", "2h", NULL},
	    {"<>", NULL, NULL, "DEFERRED", "90", NULL},
	    {"", NULL, NULL, NULL, NULL, "sender"},
	    {"a b@c", NULL, NULL, NULL, NULL, "sender"},
	    {NULL, "nodomain", NULL, NULL, NULL, "recipient"},
	    {NULL, "a@b\r\n", NULL, NULL, NULL, "recipient"},
	    {NULL, NULL, "a@b", NULL, NULL, "domain"},
	    {NULL, NULL, "", NULL, NULL, "domain"},
	    {NULL, NULL, NULL, "frozen", NULL, "state"},
	    {NULL, NULL, NULL, NULL, "soon", "older_than"},
	    {NULL, NULL, NULL, NULL, "0", "older_than"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct queue_filter f;
		const char *field, *error;
		int rc = admin_queue_filter_parse(cases[i].sender, cases[i].rcpt, cases[i].domain,
						  cases[i].st, cases[i].older, &f, &field, &error);
		if (cases[i].bad_field == NULL) {
			if (rc != 0)
				fail_msg("case %zu refused: %s", i, error);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(field, cases[i].bad_field);
			assert_non_null(error);
		}
	}
	struct queue_filter f;
	const char *field, *error;
	assert_int_equal(
	    admin_queue_filter_parse("<>", NULL, "x.test", "held", "2h", &f, &field, &error), 0);
	assert_string_equal(f.sender, "");
	assert_string_equal(f.domain, "x.test");
	assert_int_equal(f.state, QUEUE_MSG_HELD);
	assert_int_equal(f.older_than, 7200);
}

static const char msg[] = "Received: from x\r\n\tby y\r\n"
			  "From: =?UTF-8?B?w4lsb2RpZQ==?= <e@x.test>\r\n"
			  "To: a@b.test,\r\n c@d.test\r\n"
			  "subject: Hello\r\n   world \r\n"
			  "Message-ID: <id1@x.test>\r\n"
			  "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
			  "X-Subject: not this one\r\n"
			  "\r\n"
			  "Subject: in the body\r\n";

static void
test_headers(void **state)
{
	struct arena *a = arena_new(0);
	struct queue_headers h;

	(void)state;
	queue_headers_parse(msg, strlen(msg), a, &h);
	assert_string_equal(h.from, "\xc3\x89lodie <e@x.test>");
	assert_string_equal(h.to, "a@b.test, c@d.test");
	assert_string_equal(h.subject, "Hello   world"); /* RFC 5322 2.2.3: CRLF removed */
	assert_string_equal(h.message_id, "<id1@x.test>");
	assert_string_equal(h.date, "Thu, 01 Jan 2026 00:00:00 +0000");
	assert_null(h.cc);
	/* Bare LF line ends, and no body at all. */
	queue_headers_parse("Subject: x\nFrom: y\n", 19, a, &h);
	assert_string_equal(h.subject, "x");
	assert_string_equal(h.from, "y");
	/* Cut anywhere: never reads past len, never crashes. */
	for (size_t n = 0; n <= strlen(msg); n++) {
		char *copy = malloc(n + 1);
		memcpy(copy, msg, n);
		queue_headers_parse(copy, n, a, &h);
		if (h.subject != NULL)
			assert_true(strncmp(h.subject, "Hello   world", strlen(h.subject)) == 0);
		free(copy);
	}
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_id_parse),
	    cmocka_unit_test(test_filter_match),
	    cmocka_unit_test(test_filter_parse),
	    cmocka_unit_test(test_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
