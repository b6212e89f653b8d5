/*
 * test_milter_wire.c - the milter packet codec (protocols/smtp/
 * milter_wire.c) byte for byte, the decoder fed one byte at a time, the
 * reply checks, REPLYCODE validation, and the header/body edits of
 * milter.c (index semantics, delete, insert, folding).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/smtp/milter.h"
#include "protocols/smtp/milter_wire.h"

static void
test_encode(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 20);

	assert_int_equal(milter_wire_optneg(&b, 6, 0x1ff, 0x1fffff), 0);
	static const uint8_t optneg[] = {0, 0, 0, 13,	'O', 0,	   0,	 0,   6,
					 0, 0, 1, 0xff, 0,   0x1f, 0xff, 0xff};
	assert_int_equal(b.len, sizeof(optneg));
	assert_memory_equal(b.data, optneg, sizeof(optneg));

	buf_reset(&b);
	assert_int_equal(milter_wire_connect(&b, "[1.2.3.4]", '4', 25, "1.2.3.4"), 0);
	static const char conn[] = "\0\0\0\x16"
				   "C[1.2.3.4]\0"
				   "4\0\x19"
				   "1.2.3.4";
	assert_int_equal(b.len, sizeof(conn)); /* the final NUL is the address's */
	assert_memory_equal(b.data, conn, sizeof(conn));

	buf_reset(&b);
	const char *argv[] = {"<a@b>", "SIZE=10"};
	assert_int_equal(milter_wire_strings(&b, SMFIC_MAIL, argv, 2), 0);
	assert_int_equal(b.len, 5 + 6 + 8);
	assert_memory_equal(b.data, "\0\0\0\x0fM<a@b>\0SIZE=10\0", 19);

	buf_reset(&b);
	const char *pairs[] = {"i", "42", "{client_addr}", "::1"};
	assert_int_equal(milter_wire_macro(&b, SMFIC_CONNECT, pairs, 2), 0);
	assert_memory_equal(b.data,
			    "\0\0\0\x19"
			    "DCi\0"
			    "42\0{client_addr}\0::1\0",
			    29);

	buf_reset(&b);
	assert_int_equal(milter_wire_header(&b, "Subject", "hi"), 0);
	assert_memory_equal(b.data, "\0\0\0\x0cLSubject\0hi\0", 16);
	buf_reset(&b);
	assert_int_equal(milter_wire_put(&b, SMFIC_BODYEOB, NULL, 0), 0);
	assert_memory_equal(b.data,
			    "\0\0\0\x01"
			    "E",
			    5);
	/* the cap holds */
	struct buf small;
	buf_init(&small, 8);
	assert_int_equal(milter_wire_header(&small, "Subject", "hi"), -1);
	buf_free(&small);
	buf_free(&b);
}

/* Feeds p one byte at a time; returns the reply of the one packet. */
static int
feed_bytewise(struct milter_wire_dec *d, const char *p, size_t n, struct milter_reply *r)
{
	int got = 0;
	for (size_t i = 0; i < n; i++) {
		size_t used;
		int rc = milter_wire_feed(d, p + i, 1, &used);
		if (rc < 0)
			return rc;
		assert_int_equal(used, 1);
		if (rc == MILTER_WIRE_PACKET) {
			assert_int_equal(i, n - 1); /* only at the last byte */
			got = 1;
		}
	}
	assert_int_equal(got, 1);
	return milter_wire_reply(d, r);
}

static void
test_decode(void **state)
{
	(void)state;
	struct milter_wire_dec d;
	struct milter_reply r;
	milter_wire_dec_init(&d);

	assert_int_equal(feed_bytewise(&d,
				       "\0\0\0\x01"
				       "c",
				       5, &r),
			 0);
	assert_int_equal(r.cmd, SMFIR_CONTINUE);

	static const char opt[] = "\0\0\0\x15O\0\0\0\x06\0\0\0\x21\0\0\0\x10"
				  "\0\0\0\x05"
				  "i j\0";
	assert_int_equal(feed_bytewise(&d, opt, sizeof(opt) - 1, &r), 0);
	assert_int_equal(r.cmd, SMFIC_OPTNEG);
	assert_int_equal(r.version, 6);
	assert_int_equal(r.actions, 0x21);
	assert_int_equal(r.protocol, 0x10);
	assert_int_equal(r.len, 8);

	static const char chg[] = "\0\0\0\x0fm\0\0\0\x02X-Y\0value\0";
	assert_int_equal(feed_bytewise(&d, chg, sizeof(chg) - 1, &r), 0);
	assert_int_equal(r.cmd, SMFIR_CHGHEADER);
	assert_int_equal(r.index, 2);
	assert_string_equal(r.name, "X-Y");
	assert_string_equal(r.value, "value");

	static const char yc[] = "\0\0\0\x13y550 5.7.1 go away\0";
	assert_int_equal(feed_bytewise(&d, yc, sizeof(yc) - 1, &r), 0);
	assert_string_equal(r.value, "550 5.7.1 go away");

	/* two packets in one feed: the first stops after its own bytes */
	static const char two[] = "\0\0\0\x01"
				  "a\0\0\0\x01"
				  "r";
	size_t used;
	assert_int_equal(milter_wire_feed(&d, two, 10, &used), MILTER_WIRE_PACKET);
	assert_int_equal(used, 5);
	assert_int_equal(milter_wire_reply(&d, &r), 0);
	assert_int_equal(r.cmd, SMFIR_ACCEPT);
	assert_int_equal(milter_wire_feed(&d, two + 5, 5, &used), MILTER_WIRE_PACKET);
	assert_int_equal(milter_wire_reply(&d, &r), 0);
	assert_int_equal(r.cmd, SMFIR_REJECT);

	/* malformed */
	static const char badhdr[] = "\0\0\0\x05hX-Y\0"; /* no value */
	assert_int_equal(feed_bytewise(&d, badhdr, sizeof(badhdr) - 1, &r), MILTER_WIRE_BAD_REPLY);
	static const char colon[] = "\0\0\0\x06hX:\0v\0";
	assert_int_equal(feed_bytewise(&d, colon, sizeof(colon) - 1, &r), MILTER_WIRE_BAD_REPLY);
	static const char badyc[] = "\0\0\0\x0by250 ok it\0";
	assert_int_equal(feed_bytewise(&d, badyc, sizeof(badyc) - 1, &r), MILTER_WIRE_BAD_REPLY);
	static const char unk[] = "\0\0\0\x01Z";
	assert_int_equal(feed_bytewise(&d, unk, sizeof(unk) - 1, &r), MILTER_WIRE_UNKNOWN);
	static const char shortchg[] = "\0\0\0\x03m\0\0";
	assert_int_equal(feed_bytewise(&d, shortchg, sizeof(shortchg) - 1, &r),
			 MILTER_WIRE_BAD_REPLY);
	milter_wire_dec_free(&d);

	milter_wire_dec_init(&d);
	assert_int_equal(milter_wire_feed(&d, "\0\0\0\0", 4, &used), MILTER_WIRE_EMPTY);
	milter_wire_dec_free(&d);
	milter_wire_dec_init(&d);
	assert_int_equal(milter_wire_feed(&d, "\x7f\0\0\0", 4, &used), MILTER_WIRE_TOO_BIG);
	milter_wire_dec_free(&d);
}

static void
test_replycode(void **state)
{
	(void)state;
	assert_true(milter_wire_replycode_ok("550 5.7.1 no"));
	assert_true(milter_wire_replycode_ok("451 4.7.1 later"));
	assert_true(milter_wire_replycode_ok("550"));
	assert_true(milter_wire_replycode_ok("550-5.7.1 one\r\n550 5.7.1 two"));
	assert_false(milter_wire_replycode_ok("250 ok"));
	assert_false(milter_wire_replycode_ok("550 4.7.1 class mismatch"));
	assert_false(milter_wire_replycode_ok("550-a\r\n551 b"));
	assert_false(milter_wire_replycode_ok("550 a\r\n550 b"));
	assert_false(milter_wire_replycode_ok("550 bare\nLF"));
	assert_false(milter_wire_replycode_ok("55"));
	assert_false(milter_wire_replycode_ok("5500 x"));
}

static void
edit(struct buf *b, const char *in, char op, uint32_t idx, const char *name, const char *value,
     const char *want)
{
	buf_reset(b);
	buf_append_str(b, in);
	assert_int_equal(milter_edit_header(b, op, idx, name, value, false), 0);
	assert_string_equal(buf_cstr(b), want);
}

static void
test_edits(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4096);
	const char *m = "A: 1\r\nB: x\r\n y\r\nA: 2\r\n\r\nbody\r\n";

	edit(&b, m, SMFIR_ADDHEADER, 0, "C", "3",
	     "A: 1\r\nB: x\r\n y\r\nA: 2\r\nC: 3\r\n\r\nbody\r\n");
	edit(&b, m, SMFIR_INSHEADER, 0, "C", "3",
	     "C: 3\r\nA: 1\r\nB: x\r\n y\r\nA: 2\r\n\r\nbody\r\n");
	edit(&b, m, SMFIR_INSHEADER, 2, "C", "3",
	     "A: 1\r\nB: x\r\n y\r\nC: 3\r\nA: 2\r\n\r\nbody\r\n");
	edit(&b, m, SMFIR_INSHEADER, 99, "C", "3",
	     "A: 1\r\nB: x\r\n y\r\nA: 2\r\nC: 3\r\n\r\nbody\r\n");
	/* CHGHEADER counts headers of that name from 1, case-insensitively */
	edit(&b, m, SMFIR_CHGHEADER, 2, "a", "two", "A: 1\r\nB: x\r\n y\r\na: two\r\n\r\nbody\r\n");
	edit(&b, m, SMFIR_CHGHEADER, 1, "B", "", "A: 1\r\nA: 2\r\n\r\nbody\r\n");
	edit(&b, m, SMFIR_CHGHEADER, 3, "A", "", m);
	edit(&b, m, SMFIR_CHGHEADER, 3, "A", "new",
	     "A: 1\r\nB: x\r\n y\r\nA: 2\r\nA: new\r\n\r\nbody\r\n");
	/* LF between folded lines becomes CRLF, a continuation gets a tab */
	edit(&b, m, SMFIR_ADDHEADER, 0, "F", "a\n b\nc",
	     "A: 1\r\nB: x\r\n y\r\nA: 2\r\nF: a\r\n b\r\n\tc\r\n\r\nbody\r\n");
	/* a message of headers only */
	edit(&b, "A: 1\r\n", SMFIR_ADDHEADER, 0, "C", "3", "A: 1\r\nC: 3\r\n");

	buf_reset(&b);
	buf_append_str(&b, m);
	assert_int_equal(milter_replace_body(&b, "new\r\n", 5), 0);
	assert_string_equal(buf_cstr(&b), "A: 1\r\nB: x\r\n y\r\nA: 2\r\n\r\nnew\r\n");
	/* the cap holds */
	struct buf small;
	buf_init(&small, 16);
	buf_append_str(&small, "A: 1\r\n\r\nx");
	assert_int_equal(
	    milter_edit_header(&small, SMFIR_ADDHEADER, 0, "Long", "valuevalue", false), -1);
	assert_string_equal(buf_cstr(&small), "A: 1\r\n\r\nx");
	buf_free(&small);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode),
	    cmocka_unit_test(test_decode),
	    cmocka_unit_test(test_replycode),
	    cmocka_unit_test(test_edits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
