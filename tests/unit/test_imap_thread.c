/*
 * test_imap_thread.c - the pure pieces of SORT and THREAD: the RFC 5256
 * threading algorithms (protocols/imap/imap_thread.c) on hand-built keys
 * (missing parents, References loops, duplicate Message-IDs, subject
 * merging, dummy roots, a long reply chain, the output cap) and the
 * store's sort-key records (storage/store_sortkey.c): dates in every zone
 * form, base subjects through RFC 2047, addresses and display values,
 * Message-ID and References extraction, the caps, and decoding.
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
#include "protocols/imap/imap_thread.h"
#include "storage/store_internal.h"

#define M(num, sent, subj, reply, id, refs)                                                        \
	{                                                                                          \
		num, num, sent, subj, reply, id, refs                                              \
	}

static void
expect_thread(enum imap_thread_alg alg, const struct imap_thread_msg *m, size_t n, const char *want)
{
	struct arena *a = arena_new(0);
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(imap_thread(alg, m, n, a, &b), 0);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
	arena_destroy(&a);
}

static void
test_references(void **state)
{
	(void)state;
	const struct imap_thread_msg m[] = {
	    M(1, 100, "A", false, "<a@x>", ""),
	    M(2, 300, "A", true, "<b@x>", "<a@x>"),
	    M(3, 400, "A", true, "<c@x>", "<a@x> <b@x>"),
	    M(4, 200, "A", true, "<d@x>", "<a@x> <missing@x>"),
	};
	expect_thread(IMAP_THREAD_REFERENCES, m, 4, "(1 (4)(2 3))");
	/* Input order does not matter. */
	const struct imap_thread_msg r[] = {m[3], m[1], m[2], m[0]};
	expect_thread(IMAP_THREAD_REFERENCES, r, 4, "(1 (4)(2 3))");
	/* Without the root: a dummy keeps the two branches together. */
	expect_thread(IMAP_THREAD_REFERENCES, m + 1, 3, "((4)(2 3))");
}

static void
test_loops_and_duplicates(void **state)
{
	(void)state;
	/* g says h is its parent, h says g is; and one that references
	 * itself. */
	const struct imap_thread_msg loop[] = {
	    M(1, 100, "G", false, "<g@x>", "<h@x>"),
	    M(2, 200, "G", false, "<h@x>", "<g@x>"),
	    M(3, 300, "S", false, "<s@x>", "<s@x>"),
	};
	expect_thread(IMAP_THREAD_REFERENCES, loop, 3, "(2 1)(3)");
	/* A References chain that loops on itself: a -> b -> a. */
	const struct imap_thread_msg chain[] = {
	    M(1, 100, "C", false, "<c@x>", "<a@x> <b@x> <a@x>"),
	};
	expect_thread(IMAP_THREAD_REFERENCES, chain, 1, "(1)");
	/* The second message with an id is threaded as unique. */
	const struct imap_thread_msg dup[] = {
	    M(1, 100, "X", false, "<same@x>", ""),
	    M(2, 200, "Y", false, "<same@x>", ""),
	    M(3, 300, "Z", true, "<r@x>", "<same@x>"),
	};
	expect_thread(IMAP_THREAD_REFERENCES, dup, 3, "(1 3)(2)");
}

static void
test_subject_merge(void **state)
{
	(void)state;
	const struct imap_thread_msg m[] = {
	    M(1, 200, "delta", true, "<i@x>", ""), /* "Re: Delta" */
	    M(2, 100, "delta", false, "<j@x>", ""),
	    M(3, 300, "eps", false, "<k@x>", ""),
	    M(4, 400, "eps", false, "<l@x>", ""),
	    M(5, 500, "", false, "<m@x>", ""),
	    M(6, 600, "", false, "<n@x>", ""), /* empty subjects never merge */
	    /* a dummy root and a lone message with its subject */
	    M(7, 700, "zeta", true, "<o@x>", "<gone@x>"),
	    M(8, 800, "zeta", true, "<p@x>", "<gone@x>"),
	    M(9, 650, "zeta", false, "<q@x>", ""),
	};
	expect_thread(IMAP_THREAD_REFERENCES, m, 9, "(2 1)((3)(4))(5)(6)((9)(7)(8))");
}

static void
test_ordered_subject(void **state)
{
	(void)state;
	const struct imap_thread_msg m[] = {
	    M(1, 300, "b", false, "", ""), M(2, 100, "a", false, "", ""),
	    M(3, 200, "b", true, "", ""),  M(4, 50, "b", false, "", ""),
	    M(5, 100, "a", false, "", ""), M(6, 400, "c", false, "", ""),
	};
	/* b: 4 (50) first; a: 2 and 5 tie on date, message order. */
	expect_thread(IMAP_THREAD_ORDEREDSUBJECT, m, 6, "(4 (3)(1))(2 5)(6)");
	expect_thread(IMAP_THREAD_ORDEREDSUBJECT, m, 0, "");
}

static void
test_long_chain_and_cap(void **state)
{
	(void)state;
	enum { N = 20000 };
	static struct imap_thread_msg m[N];
	static char ids[N][24], refs[N][24];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "<%d@x>", i);
		snprintf(refs[i], sizeof(refs[i]), i > 0 ? "<%d@x>" : "", i - 1);
		m[i] = (struct imap_thread_msg){(uint32_t)i + 1, (uint32_t)i + 1, i,	  "s",
						i > 0,		 ids[i],	  refs[i]};
	}
	struct arena *a = arena_new(0);
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(imap_thread(IMAP_THREAD_REFERENCES, m, N, a, &b), 0);
	assert_true(strncmp(buf_cstr(&b), "(1 2 3 4 ", 9) == 0);
	assert_string_equal(buf_cstr(&b) + b.len - 12, "19999 20000)");
	buf_free(&b);
	buf_init(&b, 100);
	assert_int_equal(imap_thread(IMAP_THREAD_REFERENCES, m, N, a, &b), -1);
	buf_free(&b);
	arena_destroy(&a);
}

static void
build(const char *hdr, struct arena *a, struct store_sortkey *k)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(store_sortkey_build(hdr, strlen(hdr), &b), 0);
	memset(k, 0, sizeof(*k));
	assert_int_equal(store_sortkey_decode(b.data, b.len, a, k), 0);
	buf_free(&b);
}

static void
test_sortkey_dates(void **state)
{
	(void)state;
	static const struct {
		const char *date;
		bool ok;
		int64_t t;
	} cases[] = {
	    {"Mon, 02 Mar 2026 10:00:00 +0000", true, 1772445600},
	    {"2 Mar 2026 11:00:00 +0100", true, 1772445600},
	    {"Mon, 2 Mar 2026 05:00 EST", true, 1772445600},
	    {"Mon (Monday), 2 Mar 2026 (x) 02:00:00 PST", true, 1772445600},
	    {"02 Mar 26 10:00:00 GMT", true, 1772445600},
	    {"Mon, 02 Mar 2026 10:00:00 -0130", true, 1772445600 + 5400},
	    {"Mon, 02 Mar 2026 10:00:00 Z", true, 1772445600},
	    {"Mon, 02 Mar 2026", false, 0},
	    {"not a date", false, 0},
	    {"32 Mar 2026 10:00:00 +0000", false, 0},
	};
	struct arena *a = arena_new(0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char hdr[200];
		struct store_sortkey k;
		snprintf(hdr, sizeof(hdr), "Date: %s\r\n\r\n", cases[i].date);
		build(hdr, a, &k);
		assert_int_equal(k.has_sent, cases[i].ok);
		if (cases[i].ok)
			assert_int_equal(k.sent, cases[i].t);
	}
	arena_destroy(&a);
}

static void
test_sortkey_fields(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct store_sortkey k;

	build("From: =?ISO-8859-1?Q?=C9mile?= <Dave@Ex.test>, b@x\r\n"
	      "To: undisclosed-recipients:;, \"Zo\\\"e\" <zoe@x>\r\n"
	      "Cc: (nobody)\r\n"
	      "Subject: =?UTF-8?Q?Re=3A_=5Bl=5D_Fwd=3A_caf=C3=A9?= (fwd)\r\n"
	      "Message-ID: junk <id1@x> <id2@x>\r\n"
	      "In-Reply-To: <irt@x>\r\n"
	      "References: <r1@x> bogus <no-at> (c <c@x>) <r2@x>\r\n"
	      "\r\nbody <body@x>\r\n",
	      a, &k);
	assert_string_equal(k.subject, "CAFE\xcc\x81");
	assert_true(k.subj_reply);
	assert_string_equal(k.from, "DAVE");
	assert_string_equal(k.from_disp, "E\xcc\x81MILE");
	assert_string_equal(k.to, "ZOE");
	assert_string_equal(k.to_disp, "ZO\"E");
	assert_string_equal(k.cc, "");
	assert_string_equal(k.msgid, "<id1@x>");
	assert_string_equal(k.refs, "<r1@x> <r2@x>");
	assert_false(k.has_sent);

	/* No References: In-Reply-To's first id; no name: mailbox@host. */
	build("From: <solo@Host.test>\r\nIn-Reply-To: <a@x> <b@x>\r\nSubject: plain\r\n\r\n", a,
	      &k);
	assert_string_equal(k.refs, "<a@x>");
	assert_string_equal(k.from_disp, "SOLO@HOST.TEST");
	assert_string_equal(k.subject, "PLAIN");
	assert_false(k.subj_reply);
	assert_string_equal(k.msgid, "");

	/* Nothing at all. */
	build("\r\n", a, &k);
	assert_string_equal(k.subject, "");
	assert_string_equal(k.from, "");
	assert_string_equal(k.refs, "");
	arena_destroy(&a);
}

static void
test_sortkey_caps(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct store_sortkey k;
	struct buf h;

	buf_init(&h, 1 << 20);
	buf_append_str(&h, "Subject: ");
	for (int i = 0; i < 400; i++)
		buf_append_str(&h, "\xc3\xa9"); /* é: NFKD makes 3 bytes each */
	buf_append_str(&h, "\r\nReferences:");
	for (int i = 0; i < 500; i++)
		buf_printf(&h, " <%d@example.test>", i);
	buf_append_str(&h, "\r\n\r\n");
	build(buf_cstr(&h), a, &k);
	assert_true(strlen(k.subject) <= STORE_SORTKEY_STR_MAX);
	assert_true(strlen(k.subject) % 3 == 0); /* whole characters */
	assert_true(strlen(k.refs) <= STORE_SORTKEY_REFS_MAX);
	assert_true(k.refs[0] == '<');
	const char *last = "<499@example.test>";
	assert_string_equal(k.refs + strlen(k.refs) - strlen(last), last);
	buf_free(&h);

	/* Records this build does not know are refused. */
	uint8_t bad[40] = {2};
	assert_int_equal(store_sortkey_decode(bad, sizeof(bad), a, &k), -1);
	bad[0] = 1;
	assert_int_equal(store_sortkey_decode(bad, 10, a, &k), -1);
	assert_int_equal(store_sortkey_decode(bad, sizeof(bad), a, &k), -1); /* 8 bytes left */
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_references),	       cmocka_unit_test(test_loops_and_duplicates),
	    cmocka_unit_test(test_subject_merge),      cmocka_unit_test(test_ordered_subject),
	    cmocka_unit_test(test_long_chain_and_cap), cmocka_unit_test(test_sortkey_dates),
	    cmocka_unit_test(test_sortkey_fields),     cmocka_unit_test(test_sortkey_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
