/*
 * test_imap_qresync.c - the pure parts of CONDSTORE/QRESYNC (protocols/
 * imap/imap_qresync.c): mod-sequence numbers at their limits, the QRESYNC
 * select parameter (parsed from real command lines by the IMAP parser),
 * every malformed form refused, and the VANISHED (EARLIER) set with a
 * complete expunge history and without one (known-uids, seq-match-data,
 * the UIDNEXT clip), rendered as sequence sets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/imap/imap_parser.h"
#include "protocols/imap/imap_qresync.h"

static const struct imap_parser_limits limits = {
    .max_literal = 100, .max_depth = 8, .max_args = 1000};

/* The list after QRESYNC in "a SELECT INBOX (QRESYNC <param>)". */
static const struct imap_arg *
qresync_arg(struct arena *a, struct imap_parser **p, const char *param)
{
	char line[512];

	*p = imap_parser_new(a, &limits);
	snprintf(line, sizeof(line), "a SELECT INBOX (QRESYNC %s)", param);
	assert_int_equal(imap_parser_feed_line(*p, line, strlen(line)), IMAP_PARSE_DONE);
	const struct imap_cmd *cmd = imap_parser_command(*p);
	assert_int_equal(cmd->count, 2);
	assert_int_equal(cmd->args[1].count, 2);
	return &cmd->args[1].list[1];
}

static void
test_modseq(void **state)
{
	uint64_t v = 42;

	(void)state;
	assert_int_equal(imap_modseq_parse("1", 1, false, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(imap_modseq_parse("9223372036854775807", 19, false, &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(imap_modseq_parse("0", 1, true, &v), 0);
	assert_int_equal(v, 0);
	v = 42;
	assert_int_equal(imap_modseq_parse("0", 1, false, &v), -1);
	assert_int_equal(imap_modseq_parse("9223372036854775808", 19, true, &v), -1);
	assert_int_equal(imap_modseq_parse("99999999999999999999", 20, true, &v), -1);
	assert_int_equal(imap_modseq_parse("", 0, true, &v), -1);
	assert_int_equal(imap_modseq_parse("-1", 2, true, &v), -1);
	assert_int_equal(imap_modseq_parse("1x", 2, true, &v), -1);
	assert_int_equal(v, 42); /* untouched on failure */
}

static void
test_parse_ok(void **state)
{
	struct arena *a = arena_new(0);
	struct imap_parser *p;
	struct imap_qresync q;
	const char *err = NULL;

	(void)state;
	assert_int_equal(
	    imap_qresync_parse(a, qresync_arg(a, &p, "(67890007 90060115194045000)"), &q, &err), 0);
	assert_int_equal(q.uidvalidity, 67890007);
	assert_true(q.modseq == 90060115194045000ull);
	assert_false(q.have_known);
	assert_int_equal(q.nmatch, 0);
	imap_parser_destroy(&p);

	/* known-uids sorted and merged; seq-match-data kept pairwise, as
	 * sent, ranges expanded (descending ones too). */
	assert_int_equal(
	    imap_qresync_parse(a, qresync_arg(a, &p, "(1 2 9,41,43:116,1:3 (1:2,10:8 5,7,20:22))"),
			       &q, &err),
	    0);
	assert_true(q.have_known);
	assert_int_equal(q.nknown, 4);
	assert_int_equal(q.known[0].lo, 1);
	assert_int_equal(q.known[0].hi, 3);
	assert_int_equal(q.known[1].lo, 9);
	assert_int_equal(q.known[3].hi, 116);
	assert_int_equal(q.nmatch, 5);
	const uint32_t seqs[] = {1, 2, 10, 9, 8}, uids[] = {5, 7, 20, 21, 22};
	assert_memory_equal(q.match_seq, seqs, sizeof(seqs));
	assert_memory_equal(q.match_uid, uids, sizeof(uids));
	imap_parser_destroy(&p);

	/* seq-match-data without known-uids. */
	assert_int_equal(
	    imap_qresync_parse(a, qresync_arg(a, &p, "(4294967295 1 (3 30))"), &q, &err), 0);
	assert_int_equal(q.uidvalidity, 4294967295u);
	assert_false(q.have_known);
	assert_int_equal(q.nmatch, 1);
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

static void
test_parse_bad(void **state)
{
	static const char *const bad[] = {
	    "()",
	    "(1)",
	    "(0 1)",
	    "(1 0)",
	    "(01 1)",
	    "(x 1)",
	    "(1 x)",
	    "(4294967296 1)",
	    "(1 9223372036854775808)",
	    "(1 1 1:*)",
	    "(1 1 *)",
	    "(1 1 $)",
	    "(1 1 0)",
	    "(1 1 1,)",
	    "(1 1 (1 1) 2)",
	    "(1 1 2 (1))",
	    "(1 1 2 (1 2 3))",
	    "(1 1 2 (1:2 5))",
	    "(1 1 2 (1,2 5:7))",
	    "(1 1 2 (1:* 5))",
	    "(1 1 2 (1 5) 3)",
	    "(1 1 2 3)",
	    "(1 1 2 (1:65537 1:65537))",
	    "(1 \"1\")",
	    "((1) 1)",
	    "(1 1 NIL)",
	};
	struct arena *a = arena_new(0);

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_parser *p;
		struct imap_qresync q;
		const char *err = NULL;
		if (imap_qresync_parse(a, qresync_arg(a, &p, bad[i]), &q, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(err);
		imap_parser_destroy(&p);
	}
	/* Not a list at all. */
	struct imap_arg atom = {.type = IMAP_ARG_ATOM, .str = "1", .len = 1};
	struct imap_qresync q;
	const char *err = NULL;
	assert_int_equal(imap_qresync_parse(a, &atom, &q, &err), -1);
	arena_destroy(&a);
}

/* The VANISHED set as text. */
static const char *
vanished(struct arena *a, const struct imap_range *known, size_t nknown, uint32_t uidnext,
	 const uint32_t *present, size_t npresent, const uint32_t *gone, size_t ngone,
	 bool complete, const uint32_t *mseq, const uint32_t *muid, size_t nmatch)
{
	struct imap_range *r;
	size_t n;
	struct buf b;

	assert_int_equal(imap_qresync_vanished(a, known, nknown, uidnext, present, npresent, gone,
					       ngone, complete, mseq, muid, nmatch, &r, &n),
			 0);
	buf_init(&b, 4096);
	assert_int_equal(imap_ranges_append(&b, r, n), 0);
	char *s = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void
test_vanished_complete(void **state)
{
	struct arena *a = arena_new(0);
	const uint32_t present[] = {1, 3, 4, 6, 8, 9};
	const uint32_t gone[] = {2, 5, 7, 10, 11};
	const struct imap_range known[] = {{1, 4}, {7, 7}};

	(void)state;
	/* Every remembered expunge below UIDNEXT (10 and 11 cannot be). */
	assert_string_equal(vanished(a, NULL, 0, 10, present, 6, gone, 5, true, NULL, NULL, 0),
			    "2,5,7");
	assert_string_equal(vanished(a, NULL, 0, 12, present, 6, gone, 5, true, NULL, NULL, 0),
			    "2,5,7,10:11");
	assert_string_equal(vanished(a, known, 2, 12, present, 6, gone, 5, true, NULL, NULL, 0),
			    "2,7");
	/* One still present (expunged after the view was made) waits. */
	const uint32_t gone2[] = {2, 3};
	assert_string_equal(vanished(a, NULL, 0, 10, present, 6, gone2, 2, true, NULL, NULL, 0),
			    "2");
	assert_string_equal(vanished(a, NULL, 0, 10, present, 6, NULL, 0, true, NULL, NULL, 0), "");
	assert_string_equal(vanished(a, NULL, 0, 1, NULL, 0, gone, 5, true, NULL, NULL, 0), "");
	arena_destroy(&a);
}

static void
test_vanished_incomplete(void **state)
{
	struct arena *a = arena_new(0);
	const uint32_t present[] = {1, 3, 4, 6, 8, 9};
	const struct imap_range known[] = {{1, 4}, {6, UINT32_MAX}};

	(void)state;
	/* Everything known that is not present, clipped below UIDNEXT. */
	assert_string_equal(vanished(a, NULL, 0, 12, present, 6, NULL, 0, false, NULL, NULL, 0),
			    "2,5,7,10:11");
	assert_string_equal(vanished(a, known, 2, 12, present, 6, NULL, 0, false, NULL, NULL, 0),
			    "2,7,10:11");
	/* seq-match-data: message 2 is still UID 3 and 4 is still 6, so
	 * nothing up to 6 went; 5 is not 9 any more, so the rest is open. */
	const uint32_t mseq[] = {2, 4, 5}, muid[] = {3, 6, 9};
	assert_string_equal(vanished(a, NULL, 0, 12, present, 6, NULL, 0, false, mseq, muid, 3),
			    "7,10:11");
	/* A first pair that does not match proves nothing. */
	const uint32_t mseq2[] = {1, 4}, muid2[] = {2, 6};
	assert_string_equal(vanished(a, NULL, 0, 12, present, 6, NULL, 0, false, mseq2, muid2, 2),
			    "2,5,7,10:11");
	/* A message number past the end does not match either. */
	const uint32_t mseq3[] = {9}, muid3[] = {9};
	assert_string_equal(vanished(a, NULL, 0, 12, present, 6, NULL, 0, false, mseq3, muid3, 1),
			    "2,5,7,10:11");
	/* An empty mailbox: everything below UIDNEXT is gone. */
	assert_string_equal(vanished(a, NULL, 0, 5, NULL, 0, NULL, 0, false, NULL, NULL, 0), "1:4");
	/* A huge known range does not get expanded. */
	const struct imap_range big[] = {{1, 4000000000u}};
	assert_string_equal(
	    vanished(a, big, 1, 4000000001u, present, 6, NULL, 0, false, NULL, NULL, 0),
	    "2,5,7,10:4000000000");
	arena_destroy(&a);
}

static void
test_ranges_has(void **state)
{
	const struct imap_range r[] = {{2, 4}, {9, 9}, {20, UINT32_MAX}};

	(void)state;
	assert_false(imap_ranges_has(r, 3, 1));
	assert_true(imap_ranges_has(r, 3, 2));
	assert_true(imap_ranges_has(r, 3, 4));
	assert_false(imap_ranges_has(r, 3, 5));
	assert_true(imap_ranges_has(r, 3, 9));
	assert_true(imap_ranges_has(r, 3, UINT32_MAX));
	assert_true(imap_ranges_has(NULL, 0, 7));
	assert_false(imap_ranges_has(r, 0, 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_modseq),
	    cmocka_unit_test(test_parse_ok),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_vanished_complete),
	    cmocka_unit_test(test_vanished_incomplete),
	    cmocka_unit_test(test_ranges_has),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
