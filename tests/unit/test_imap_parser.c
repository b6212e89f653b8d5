/*
 * test_imap_parser.c - the IMAP command parser (protocols/imap/
 * imap_parser.c). Each case is the client's wire bytes for one command;
 * a small model of core/conn cuts them into lines (at LF, CR stripped)
 * and, when the parser asks for a literal, into raw bytes. Every case is
 * delivered in one read, in two reads split at every byte position, and
 * one byte per read (lines are whole units for the parser, literals come
 * in whatever pieces the reads make). The result, the rendered command
 * tree, the error, the tag, the number of "+" continuations and the bytes
 * to skip must match in every delivery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/imap/imap_parser.h"

static const struct imap_parser_limits test_limits = {
    .max_literal = 100,
    .max_message_literal = 1000,
    .max_literal_total = 2000,
    .max_depth = 4,
    .max_args = 30,
};

/* ---- rendering a command as text ---- */

static void
render_bytes(struct buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_putc(b, (char)c);
	}
}

static void
render_args(struct buf *b, const struct imap_arg *args, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		if (i > 0)
			buf_putc(b, ' ');
		switch (a->type) {
		case IMAP_ARG_ATOM:
			buf_append_str(b, "A:");
			break;
		case IMAP_ARG_STRING:
			buf_append_str(b, "S:");
			break;
		case IMAP_ARG_LITERAL:
			buf_append_str(b, a->binary ? "L8:" : "L:");
			break;
		case IMAP_ARG_NIL:
			buf_append_str(b, "NIL:");
			break;
		case IMAP_ARG_LIST:
			buf_putc(b, '(');
			render_args(b, a->list, a->count);
			buf_putc(b, ')');
			continue;
		}
		assert_non_null(a->str);
		assert_int_equal(a->str[a->len], '\0');
		render_bytes(b, a->str, a->len);
	}
}

static void
render_cmd(struct buf *b, const struct imap_cmd *cmd)
{
	buf_printf(b, "%s %s%s", cmd->tag, cmd->uid ? "UID " : "", cmd->name);
	if (cmd->count > 0) {
		buf_putc(b, ' ');
		render_args(b, cmd->args, cmd->count);
	}
}

/* ---- a model of core/conn feeding the parser ---- */

struct feeder {
	struct imap_parser *p;
	struct buf line;
	uint64_t raw_left; /* literal bytes still due */
	int result;	   /* last final result, or 1000 while running */
	int syncs;	   /* "+" continuations the server would send */
	bool stop;
};

static void
feeder_result(struct feeder *f, int r)
{
	if (r == IMAP_PARSE_DONE || r == IMAP_PARSE_BAD || r == IMAP_PARSE_TOOBIG) {
		f->result = r;
		f->stop = true;
	} else if (r == IMAP_PARSE_LITERAL) {
		uint64_t size;
		bool nonsync, binary;
		imap_parser_literal(f->p, &size, &nonsync, &binary);
		if (!nonsync)
			f->syncs++;
		f->raw_left = size;
		if (size == 0) {
			size_t used = 99;
			int r2 = imap_parser_feed_literal(f->p, NULL, 0, &used);
			assert_int_equal(used, 0);
			assert_int_equal(r2, IMAP_PARSE_LINE_NEXT);
		}
	} else {
		fail_msg("unexpected result %d from feed_line", r);
	}
}

static void
feeder_feed(struct feeder *f, const char *data, size_t len)
{
	size_t i = 0;

	while (i < len && !f->stop) {
		if (f->raw_left > 0) {
			size_t n = len - i < f->raw_left ? len - i : (size_t)f->raw_left;
			size_t used;
			int r = imap_parser_feed_literal(f->p, data + i, n, &used);
			assert_int_equal(used, n);
			f->raw_left -= n;
			i += n;
			if (f->raw_left > 0) {
				assert_int_equal(r, IMAP_PARSE_NEED_MORE);
			} else if (r == IMAP_PARSE_BAD) {
				f->result = r;
				f->stop = true;
			} else {
				assert_int_equal(r, IMAP_PARSE_LINE_NEXT);
			}
			continue;
		}
		const char *nl = memchr(data + i, '\n', len - i);
		size_t n = nl != NULL ? (size_t)(nl - (data + i)) : len - i;
		assert_int_equal(buf_append(&f->line, data + i, n), 0);
		i += n;
		if (nl == NULL)
			break;
		i++;
		size_t l = f->line.len;
		if (l > 0 && f->line.data[l - 1] == '\r')
			l--;
		/* The line handed over is writable and NUL-terminated, as conn
		 * gives it; scribble after the call to catch kept pointers. */
		char *copy = malloc(l + 1);
		memcpy(copy, buf_cstr(&f->line), l);
		copy[l] = '\0';
		buf_reset(&f->line);
		int r = imap_parser_feed_line(f->p, copy, l);
		memset(copy, 'Z', l);
		free(copy);
		feeder_result(f, r);
	}
}

/* ---- the table ---- */

struct pcase {
	const char *wire;
	size_t wirelen; /* 0: strlen(wire) */
	int result;
	const char *want; /* DONE: the rendered command; else a substring of the error */
	const char *tag;  /* BAD/TOOBIG: the tag, or NULL */
	int syncs;
	uint64_t skip;
};

#define LINE(s) s "\r\n"
/* wire text holding NUL bytes */
#define BIN(s) s, sizeof(s) - 1

static const struct pcase cases[] = {
    {LINE("a NOOP"), 0, IMAP_PARSE_DONE, "a NOOP", NULL, 0, 0},
    {LINE("a1 noop"), 0, IMAP_PARSE_DONE, "a1 NOOP", NULL, 0, 0},
    {"x Capability\n", 0, IMAP_PARSE_DONE, "x CAPABILITY", NULL, 0, 0},
    {LINE("a]b.c!~ NOOP"), 0, IMAP_PARSE_DONE, "a]b.c!~ NOOP", NULL, 0, 0},
    {LINE("A001 LOGIN alice secret"), 0, IMAP_PARSE_DONE, "A001 LOGIN A:alice A:secret", NULL, 0,
     0},
    {LINE("a LOGIN \"a\\\"b\" {3}") "x\"y\r\n", 0, IMAP_PARSE_DONE, "a LOGIN S:a\"b L:x\"y", NULL,
     1, 0},
    {LINE("a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)])"), 0, IMAP_PARSE_DONE,
     "a UID FETCH A:1:* (A:FLAGS A:BODY.PEEK[HEADER.FIELDS (DATE FROM)])", NULL, 0, 0},
    {LINE("a uid fetch 1 FLAGS"), 0, IMAP_PARSE_DONE, "a UID FETCH A:1 A:FLAGS", NULL, 0, 0},
    {LINE("a APPEND INBOX (\\Seen) \"01-Jan-2026 00:00:00 +0000\" {5+}") "hello\r\n", 0,
     IMAP_PARSE_DONE, "a APPEND A:INBOX (A:\\Seen) S:01-Jan-2026 00:00:00 +0000 L:hello", NULL, 0,
     0},
    {LINE("a SEARCH CHARSET UTF-8 TEXT {6}") "caf\xc3\xa9!\r\n", 0, IMAP_PARSE_DONE,
     "a SEARCH A:CHARSET A:UTF-8 A:TEXT L:caf\\xc3\\xa9!", NULL, 1, 0},
    {LINE("a FETCH 1 BODY[HEADER.FIELDS (From To)]<0.100>"), 0, IMAP_PARSE_DONE,
     "a FETCH A:1 A:BODY[HEADER.FIELDS (From To)]<0.100>", NULL, 0, 0},
    {LINE("a FETCH 1 (BODY.PEEK[1.2] BODY[] UID)"), 0, IMAP_PARSE_DONE,
     "a FETCH A:1 (A:BODY.PEEK[1.2] A:BODY[] A:UID)", NULL, 0, 0},
    {LINE("a FETCH 1 BODY[1.HEADER.FIELDS.NOT (\"X-A\" Y)]"), 0, IMAP_PARSE_DONE,
     "a FETCH A:1 A:BODY[1.HEADER.FIELDS.NOT (\"X-A\" Y)]", NULL, 0, 0},
    {LINE("a STORE 1:3,5 +FLAGS.SILENT (\\Seen \\Deleted $Junk)"), 0, IMAP_PARSE_DONE,
     "a STORE A:1:3,5 A:+FLAGS.SILENT (A:\\Seen A:\\Deleted A:$Junk)", NULL, 0, 0},
    {LINE("a SELECT NIL"), 0, IMAP_PARSE_DONE, "a SELECT NIL:NIL", NULL, 0, 0},
    {LINE("a X nIl nils"), 0, IMAP_PARSE_DONE, "a X NIL:nIl A:nils", NULL, 0, 0},
    {LINE("a LIST \"\" *"), 0, IMAP_PARSE_DONE, "a LIST S: A:*", NULL, 0, 0},
    {LINE("a LIST \"\" INBOX.%"), 0, IMAP_PARSE_DONE, "a LIST S: A:INBOX.%", NULL, 0, 0},
    {LINE("a X ()"), 0, IMAP_PARSE_DONE, "a X ()", NULL, 0, 0},
    {LINE("a X ((a) (b (c)))"), 0, IMAP_PARSE_DONE, "a X ((A:a) (A:b (A:c)))", NULL, 0, 0},
    {LINE("a X ((((a))))"), 0, IMAP_PARSE_DONE, "a X ((((A:a))))", NULL, 0, 0},
    {LINE("a X a]b foo[bar \\* ~abc }"), 0, IMAP_PARSE_DONE, "a X A:a]b A:foo[bar A:\\* A:~abc A:}",
     NULL, 0, 0},
    {LINE("a X \"\\\\\" \"\x01\x7f\""), 0, IMAP_PARSE_DONE, "a X S:\\ S:\\x01\\x7f", NULL, 0, 0},
    {LINE("a SEARCH SUBJECT \"caf\xc3\xa9 \xf0\x9f\x98\x80\""), 0, IMAP_PARSE_DONE,
     "a SEARCH A:SUBJECT S:caf\\xc3\\xa9 \\xf0\\x9f\\x98\\x80", NULL, 0, 0},
    {BIN(LINE("a APPEND INBOX ~{5}") "a\0b\r\n\r\n"), IMAP_PARSE_DONE,
     "a APPEND A:INBOX L8:a\\x00b\\x0d\\x0a", NULL, 1, 0},
    {LINE("a APPEND INBOX ~{3+}") "xyz\r\n", 0, IMAP_PARSE_DONE, "a APPEND A:INBOX L8:xyz", NULL, 0,
     0},
    {LINE("a LOGIN {0}") LINE(" {0+}") "\r\n", 0, IMAP_PARSE_DONE, "a LOGIN L: L:", NULL, 1, 0},
    {LINE("a LOGIN {05}") "alice" LINE(" {3+}") "pw1\r\n", 0, IMAP_PARSE_DONE,
     "a LOGIN L:alice L:pw1", NULL, 1, 0},
    {LINE("a X {4}") "(\r\n)\r\n", 0, IMAP_PARSE_DONE, "a X L:(\\x0d\\x0a)", NULL, 1, 0},
    {LINE("a X (a {1}") LINE("bc)"), 0, IMAP_PARSE_BAD, "Missing space", "a", 1, 0},
    {LINE("a X (a {1}") "b" LINE(" c)"), 0, IMAP_PARSE_DONE, "a X (A:a L:b A:c)", NULL, 1, 0},
    {LINE("a X ({1}") "b" LINE(")"), 0, IMAP_PARSE_DONE, "a X (L:b)", NULL, 1, 0},
    {LINE("a APPEND INBOX {1000}"), 0, 1000, NULL, NULL, 1, 0},

    /* tags and command names */
    {"\r\n", 0, IMAP_PARSE_BAD, "Empty", NULL, 0, 0},
    {LINE(" a NOOP"), 0, IMAP_PARSE_BAD, "Invalid tag", NULL, 0, 0},
    {LINE("+ NOOP"), 0, IMAP_PARSE_BAD, "Invalid tag", NULL, 0, 0},
    {LINE("a+b NOOP"), 0, IMAP_PARSE_BAD, "Invalid tag", NULL, 0, 0},
    {LINE("a*b NOOP"), 0, IMAP_PARSE_BAD, "Invalid tag", NULL, 0, 0},
    {LINE("a\x80 NOOP"), 0, IMAP_PARSE_BAD, "Invalid tag", NULL, 0, 0},
    {LINE("a\tNOOP"), 0, IMAP_PARSE_BAD, "Invalid tag", NULL, 0, 0},
    {LINE("a"), 0, IMAP_PARSE_BAD, "Missing command", "a", 0, 0},
    {LINE("a "), 0, IMAP_PARSE_BAD, "Missing command", "a", 0, 0},
    {LINE("a  NOOP"), 0, IMAP_PARSE_BAD, "Missing command", "a", 0, 0},
    {LINE("a (NOOP)"), 0, IMAP_PARSE_BAD, "Missing command", "a", 0, 0},
    {LINE("a NOOP("), 0, IMAP_PARSE_BAD, "Missing space", "a", 0, 0},
    {LINE("a UID"), 0, IMAP_PARSE_BAD, "after UID", "a", 0, 0},
    {LINE("a UID "), 0, IMAP_PARSE_BAD, "after UID", "a", 0, 0},
    {LINE("a UID  FETCH"), 0, IMAP_PARSE_BAD, "after UID", "a", 0, 0},

    /* spaces and lists */
    {LINE("a NOOP "), 0, IMAP_PARSE_BAD, "space at end", "a", 0, 0},
    {LINE("a X b "), 0, IMAP_PARSE_BAD, "space at end", "a", 0, 0},
    {LINE("a X  b"), 0, IMAP_PARSE_BAD, "double space", "a", 0, 0},
    {LINE("a X (b )"), 0, IMAP_PARSE_BAD, "space before ')'", "a", 0, 0},
    {LINE("a X ( b)"), 0, IMAP_PARSE_BAD, "space after '('", "a", 0, 0},
    {LINE("a X (b"), 0, IMAP_PARSE_BAD, "Missing ')'", "a", 0, 0},
    {LINE("a X ("), 0, IMAP_PARSE_BAD, "Missing ')'", "a", 0, 0},
    {LINE("a X b)"), 0, IMAP_PARSE_BAD, "Unexpected ')'", "a", 0, 0},
    {LINE("a X (b)c"), 0, IMAP_PARSE_BAD, "Missing space", "a", 0, 0},
    {LINE("a X (b)(c)"), 0, IMAP_PARSE_BAD, "Missing space", "a", 0, 0},
    {LINE("a X (((((a)))))"), 0, IMAP_PARSE_BAD, "nested", "a", 0, 0},
    {LINE("a X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 "
	  "30"),
     0, IMAP_PARSE_DONE, NULL, NULL, 0, 0},
    {LINE("a X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 "
	  "30 31"),
     0, IMAP_PARSE_BAD, "Too many", "a", 0, 0},
    {LINE("a X ((((1)))) 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27"), 0,
     IMAP_PARSE_BAD, "Too many", "a", 0, 0},

    /* atoms */
    {LINE("a X abc\"def\""), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X a{5}"), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X caf\xc3\xa9"), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X a\tb"), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X \\"), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X \\\\Seen"), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X a\\b"), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    /* an unclosed "[" is a plain character: FETCH will refuse the atom */
    {LINE("a X BODY[HEADER.FIELDS (From To)"), 0, IMAP_PARSE_DONE,
     "a X A:BODY[HEADER.FIELDS (A:From A:To)", NULL, 0, 0},
    {LINE("a X BODY[HEADER.FIELDS (From To"), 0, IMAP_PARSE_BAD, "Missing ')'", "a", 0, 0},
    {LINE("a X BODY[HEADER.FIELDS ((From)]"), 0, IMAP_PARSE_BAD, "Missing space", "a", 0, 0},
    {LINE("a X BODY[1] x"), 0, IMAP_PARSE_DONE, "a X A:BODY[1] A:x", NULL, 0, 0},

    /* quoted strings */
    {LINE("a X \"abc"), 0, IMAP_PARSE_BAD, "Missing '\"'", "a", 0, 0},
    {LINE("a X \"a\\\""), 0, IMAP_PARSE_BAD, "Missing '\"'", "a", 0, 0},
    {LINE("a X \"a\\b\""), 0, IMAP_PARSE_BAD, "Invalid escape", "a", 0, 0},
    {LINE("a X \"a\\n\""), 0, IMAP_PARSE_BAD, "Invalid escape", "a", 0, 0},
    {LINE("a X \"a\rb\""), 0, IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {BIN(LINE("a X \"a\0b\"")), IMAP_PARSE_BAD, "Invalid character", "a", 0, 0},
    {LINE("a X \"\xc3\""), 0, IMAP_PARSE_BAD, "UTF-8", "a", 0, 0},
    {LINE("a X \"\xc0\xaf\""), 0, IMAP_PARSE_BAD, "UTF-8", "a", 0, 0},
    {LINE("a X \"\xed\xa0\x80\""), 0, IMAP_PARSE_BAD, "UTF-8", "a", 0, 0},
    {LINE("a X \"\xf4\x90\x80\x80\""), 0, IMAP_PARSE_BAD, "UTF-8", "a", 0, 0},
    {LINE("a X \"\xa9\""), 0, IMAP_PARSE_BAD, "UTF-8", "a", 0, 0},
    {LINE("a X \"a\"b"), 0, IMAP_PARSE_BAD, "Missing space", "a", 0, 0},

    /* literal announcements */
    {LINE("a X {}"), 0, IMAP_PARSE_BAD, "Invalid literal size", "a", 0, 0},
    {LINE("a X {+}"), 0, IMAP_PARSE_BAD, "Invalid literal size", "a", 0, 0},
    {LINE("a X {-1}"), 0, IMAP_PARSE_BAD, "Invalid literal size", "a", 0, 0},
    {LINE("a X {5-}"), 0, IMAP_PARSE_BAD, "Invalid literal", "a", 0, 0},
    {LINE("a X {5++}"), 0, IMAP_PARSE_BAD, "Invalid literal", "a", 0, 0},
    {LINE("a X {5"), 0, IMAP_PARSE_BAD, "Invalid literal", "a", 0, 0},
    {LINE("a X {5 }"), 0, IMAP_PARSE_BAD, "Invalid literal", "a", 0, 0},
    {LINE("a X ~{x}"), 0, IMAP_PARSE_BAD, "Invalid literal size", "a", 0, 0},
    {LINE("a X {5} "), 0, IMAP_PARSE_BAD, "end the line", "a", 0, 0},
    {LINE("a X {5}x"), 0, IMAP_PARSE_BAD, "end the line", "a", 0, 0},
    {LINE("a X {5} {6+}"), 0, IMAP_PARSE_BAD, "end the line", "a", 0, 6},
    {LINE("a X  {7+}"), 0, IMAP_PARSE_BAD, "double space", "a", 0, 7},
    {LINE("a X  {7}"), 0, IMAP_PARSE_BAD, "double space", "a", 0, 0},
    {LINE("a X \"\\q\" ~{12+}"), 0, IMAP_PARSE_BAD, "Invalid escape", "a", 0, 12},
    {LINE("a X {100}") "0123456789012345678901234567890123456789012345678901234567890123456789"
		       "012345678901234567890123456789\r\n",
     0, IMAP_PARSE_DONE, NULL, NULL, 1, 0},
    {LINE("a X {101}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0, 0},
    {LINE("a X {101+}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0, 101},
    {LINE("a X ~{0000000000000000000101+}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0, 101},
    {LINE("a APPEND INBOX {1001}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0, 0},
    {LINE("a X {18446744073709551615}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0, 0},
    {LINE("a X {18446744073709551616}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0, 0},
    {LINE("a X {99999999999999999999999999+}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0,
     IMAP_PARSER_SKIP_CLOSE},
    {LINE("a X {18446744073709551614+}"), 0, IMAP_PARSE_TOOBIG, "too big", "a", 0,
     18446744073709551614u},

    /* literal contents and what follows them */
    {BIN(LINE("a X {3}") "a\0b\r\n"), IMAP_PARSE_BAD, "NUL in literal", "a", 1, 0},
    {LINE("a X {1}") LINE("bc"), 0, IMAP_PARSE_BAD, "Missing space", "a", 1, 0},
    {LINE("a X {1}") LINE("b "), 0, IMAP_PARSE_BAD, "space at end", "a", 1, 0},
    {LINE("a X {1}") LINE("b)"), 0, IMAP_PARSE_BAD, "Unexpected ')'", "a", 1, 0},
    {LINE("a X ({1}") LINE("b"), 0, IMAP_PARSE_BAD, "Missing ')'", "a", 1, 0},
    {LINE("a X {1}") LINE("bc {2+}") "cd\r\n", 0, IMAP_PARSE_BAD, "Missing space", "a", 1, 2},
};

/* Builds the ~1000-byte APPEND case lazily (the table has a marker). */
static size_t
case_wire(const struct pcase *c, char **wire_r)
{
	if (c->result == 1000) {
		/* "a APPEND INBOX {1000}" with its 1000 bytes: the message
		 * limit, not the normal one, applies. */
		size_t hl = strlen(c->wire);
		char *w = malloc(hl + 1000 + 2);
		memcpy(w, c->wire, hl);
		memset(w + hl, 'm', 1000);
		memcpy(w + hl + 1000, "\r\n", 2);
		*wire_r = w;
		return hl + 1002;
	}
	size_t len = c->wirelen != 0 ? c->wirelen : strlen(c->wire);
	*wire_r = malloc(len);
	memcpy(*wire_r, c->wire, len);
	return len;
}

/* Delivers wire in reads of the given sizes (0-terminated list; the rest
 * in one read) and checks the case. */
static void
run_case(const struct pcase *c, size_t idx, const char *wire, size_t len, size_t split,
	 bool bytewise)
{
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &test_limits);
	struct feeder f = {.p = p, .result = 1000};

	buf_init(&f.line, 100000);
	if (bytewise) {
		for (size_t i = 0; i < len; i++)
			feeder_feed(&f, wire + i, 1);
	} else {
		feeder_feed(&f, wire, split);
		feeder_feed(&f, wire + split, len - split);
	}
	int want = c->result == 1000 ? IMAP_PARSE_DONE : c->result;
	if (f.result != want)
		fail_msg("case %zu (%s) split %zu bytewise %d: result %d, want %d (%s)", idx,
			 c->wire, split, bytewise, f.result, want, imap_parser_error(p));
	assert_int_equal(f.syncs, c->syncs);
	if (want == IMAP_PARSE_DONE) {
		const struct imap_cmd *cmd = imap_parser_command(p);
		assert_non_null(cmd);
		assert_string_equal(imap_parser_tag(p), cmd->tag);
		if (c->want != NULL) {
			struct buf r;
			buf_init(&r, 100000);
			render_cmd(&r, cmd);
			if (strcmp(buf_cstr(&r), c->want) != 0)
				fail_msg("case %zu: got \"%s\", want \"%s\"", idx, buf_cstr(&r),
					 c->want);
			buf_free(&r);
		}
		assert_int_equal(imap_parser_skip(p), 0);
	} else {
		assert_null(imap_parser_command(p));
		if (strcasestr(imap_parser_error(p), c->want) == NULL)
			fail_msg("case %zu: error \"%s\", want \"%s\"", idx, imap_parser_error(p),
				 c->want);
		if (c->tag == NULL)
			assert_null(imap_parser_tag(p));
		else
			assert_string_equal(imap_parser_tag(p), c->tag);
		assert_true(imap_parser_skip(p) == c->skip);
	}
	buf_free(&f.line);
	imap_parser_destroy(&p);
	assert_null(p);
	arena_destroy(&a);
}

static void
test_table(void **state)
{
	(void)state;
	size_t runs = 0;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *wire;
		size_t len = case_wire(&cases[i], &wire);
		run_case(&cases[i], i, wire, len, len, false);
		run_case(&cases[i], i, wire, len, 0, true);
		for (size_t k = 1; k < len; k++)
			run_case(&cases[i], i, wire, len, k, false);
		runs += len + 1;
		free(wire);
	}
	print_message("%zu cases, %zu deliveries\n", ARRAY_SIZE(cases), runs);
}

/* Several commands through one parser, as a session would run them:
 * arena cleared and parser reset after each reply; after a BAD the
 * announced non-synchronizing bytes are skipped, so a command hidden in
 * a literal is never run. */
static void
test_session_recovery(void **state)
{
	(void)state;
	static const char wire[] = "a LOGIN \"\\q\" {14+}\r\n"
				   "c DELETE INBOX\r\n"
				   "b NOOP\r\n"
				   "d LOGIN {3}\r\n"
				   "e SELECT x\r\n";
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &test_limits);
	struct buf out;
	size_t i = 0, len = sizeof(wire) - 1;

	buf_init(&out, 10000);
	while (i < len) {
		const char *nl = memchr(wire + i, '\n', len - i);
		assert_non_null(nl);
		size_t l = (size_t)(nl - (wire + i));
		char *line = strndup(wire + i, l - 1);
		i += l + 1;
		int r = imap_parser_feed_line(p, line, l - 1);
		free(line);
		const char *tag = imap_parser_tag(p) != NULL ? imap_parser_tag(p) : "*";
		if (r == IMAP_PARSE_DONE) {
			buf_printf(&out, "%s OK %s|", tag, imap_parser_command(p)->name);
		} else if (r == IMAP_PARSE_BAD || r == IMAP_PARSE_TOOBIG) {
			buf_printf(&out, "%s BAD|", tag);
			i += imap_parser_skip(p);
		} else if (r == IMAP_PARSE_LITERAL) {
			uint64_t size;
			bool nonsync, binary;
			imap_parser_literal(p, &size, &nonsync, &binary);
			/* "d LOGIN {3}" waits for "+"; we decline it here with a
			 * NO, as a server would for a command it refuses early. */
			assert_false(nonsync);
			buf_printf(&out, "%s NO|", tag);
		} else {
			fail();
		}
		arena_clear(a);
		imap_parser_reset(p);
	}
	assert_string_equal(buf_cstr(&out), "a BAD|* BAD|b OK NOOP|d NO|e OK SELECT|");
	buf_free(&out);
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

/* Literal bytes offered in bigger pieces than the literal: only its own
 * bytes are taken. */
static void
test_literal_used(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &test_limits);
	size_t used;

	assert_int_equal(imap_parser_feed_line(p, "t LOGIN {3}", 11), IMAP_PARSE_LITERAL);
	assert_int_equal(imap_parser_feed_literal(p, "a", 1, &used), IMAP_PARSE_NEED_MORE);
	assert_int_equal(used, 1);
	assert_int_equal(imap_parser_feed_literal(p, "bcdef", 5, &used), IMAP_PARSE_LINE_NEXT);
	assert_int_equal(used, 2);
	assert_int_equal(imap_parser_feed_line(p, " b", 2), IMAP_PARSE_DONE);
	const struct imap_cmd *cmd = imap_parser_command(p);
	assert_int_equal(cmd->count, 2);
	assert_string_equal(cmd->args[0].str, "abc");

	/* reset: the same parser takes the next command */
	arena_clear(a);
	imap_parser_reset(p);
	assert_null(imap_parser_tag(p));
	assert_int_equal(imap_parser_feed_line(p, "u NOOP", 6), IMAP_PARSE_DONE);
	assert_string_equal(imap_parser_command(p)->tag, "u");
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

/* The limit on all literals of one command, and max_message_literal. */
static void
test_literal_total(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &test_limits);
	char data[1000];
	size_t used;
	uint64_t size;
	bool nonsync, binary;

	memset(data, 'x', sizeof(data));
	assert_int_equal(imap_parser_feed_line(p, "t APPEND INBOX {1000+}", 22),
			 IMAP_PARSE_LITERAL);
	assert_int_equal(imap_parser_feed_literal(p, data, 1000, &used), IMAP_PARSE_LINE_NEXT);
	assert_int_equal(imap_parser_feed_line(p, " {1000+}", 8), IMAP_PARSE_LITERAL);
	assert_int_equal(imap_parser_feed_literal(p, data, 1000, &used), IMAP_PARSE_LINE_NEXT);
	assert_int_equal(imap_parser_feed_line(p, " {1}", 4), IMAP_PARSE_TOOBIG);
	assert_non_null(strstr(imap_parser_error(p), "total"));
	imap_parser_literal(p, &size, &nonsync, &binary);
	assert_true(size == 1 && !nonsync && !binary);
	assert_int_equal(imap_parser_skip(p), 0);

	/* a normal command keeps the small limit */
	arena_clear(a);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed_line(p, "t LOGIN {1000+}", 15), IMAP_PARSE_TOOBIG);
	imap_parser_literal(p, &size, &nonsync, &binary);
	assert_true(size == 1000 && nonsync);
	assert_true(imap_parser_skip(p) == 1000);
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

/* LITERAL- (RFC 7888): non-synchronizing literals up to 4096 bytes only;
 * a bigger one is BAD [TOOBIG] and its bytes are skipped. */
static void
test_literal_minus(void **state)
{
	(void)state;
	struct imap_parser_limits lim = test_limits;
	lim.max_literal = 100000;
	lim.max_literal_total = 0;
	lim.literal_minus = true;
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &lim);
	uint64_t size;
	bool nonsync, binary;

	assert_int_equal(imap_parser_feed_line(p, "t X {4096+}", 11), IMAP_PARSE_LITERAL);
	arena_clear(a);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed_line(p, "t X {4097}", 10), IMAP_PARSE_LITERAL);
	imap_parser_literal(p, &size, &nonsync, &binary);
	assert_true(size == 4097 && !nonsync);
	arena_clear(a);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed_line(p, "t X {4097+}", 11), IMAP_PARSE_BAD);
	assert_non_null(strstr(imap_parser_error(p), "[TOOBIG]"));
	assert_string_equal(imap_parser_tag(p), "t");
	assert_true(imap_parser_skip(p) == 4097);
	arena_clear(a);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed_line(p, "t X ~{5000+}", 12), IMAP_PARSE_BAD);
	assert_true(imap_parser_skip(p) == 5000);
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

static void
test_trailing_space_option(void **state)
{
	(void)state;
	struct imap_parser_limits lim = test_limits;
	lim.allow_trailing_space = true;
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &lim);

	assert_int_equal(imap_parser_feed_line(p, "t NOOP ", 7), IMAP_PARSE_DONE);
	arena_clear(a);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed_line(p, "t X a ", 6), IMAP_PARSE_DONE);
	assert_int_equal(imap_parser_command(p)->count, 1);
	arena_clear(a);
	imap_parser_reset(p);
	/* still only one, and not inside a list */
	assert_int_equal(imap_parser_feed_line(p, "t X a  ", 7), IMAP_PARSE_BAD);
	arena_clear(a);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed_line(p, "t X (a ", 7), IMAP_PARSE_BAD);
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

/* The accessors command handlers use. */
static void
test_arg_helpers(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct imap_parser *p = imap_parser_new(a, &test_limits);
	size_t used;
	const char *s;
	size_t len;

	const char *line = "t X Flags \"q s\" NIL foo[bar] INBOX.* \\Seen a]b {3}";
	assert_int_equal(imap_parser_feed_line(p, line, strlen(line)), IMAP_PARSE_LITERAL);
	assert_int_equal(imap_parser_feed_literal(p, "lit", 3, &used), IMAP_PARSE_LINE_NEXT);
	assert_int_equal(imap_parser_feed_line(p, " ~{2}", 5), IMAP_PARSE_LITERAL);
	assert_int_equal(imap_parser_feed_literal(p, "\0b", 2, &used), IMAP_PARSE_LINE_NEXT);
	assert_int_equal(imap_parser_feed_line(p, " ()", 3), IMAP_PARSE_DONE);
	const struct imap_cmd *cmd = imap_parser_command(p);
	assert_int_equal(cmd->count, 10);
	const struct imap_arg *g = cmd->args;

	assert_true(imap_arg_is_atom_ci(&g[0], "FLAGS"));
	assert_false(imap_arg_is_atom_ci(&g[0], "FLAG"));
	assert_false(imap_arg_is_atom_ci(&g[1], "q s"));
	assert_true(imap_arg_is_atom_ci(&g[2], "nil"));

	assert_true(imap_arg_astring(&g[0], &s, &len) && len == 5 && memcmp(s, "Flags", 5) == 0);
	assert_true(imap_arg_astring(&g[1], &s, &len) && len == 3 && memcmp(s, "q s", 3) == 0);
	assert_true(imap_arg_astring(&g[2], &s, &len) && strcmp(s, "NIL") == 0);
	assert_true(imap_arg_astring(&g[3], &s, &len) && strcmp(s, "foo[bar]") == 0);
	assert_false(imap_arg_astring(&g[4], &s, &len)); /* "*" is no ASTRING-CHAR */
	assert_false(imap_arg_astring(&g[5], &s, &len)); /* nor "\" */
	assert_true(imap_arg_astring(&g[6], &s, &len) && strcmp(s, "a]b") == 0);
	assert_true(imap_arg_astring(&g[7], &s, &len) && len == 3 && strcmp(s, "lit") == 0);
	assert_false(imap_arg_astring(&g[8], &s, &len)); /* literal8 */
	assert_false(imap_arg_astring(&g[9], &s, &len)); /* list */

	assert_false(imap_arg_nstring(&g[0], &s, &len));
	assert_true(imap_arg_nstring(&g[1], &s, &len) && len == 3);
	assert_true(imap_arg_nstring(&g[2], &s, &len) && s == NULL && len == 0);
	assert_true(imap_arg_nstring(&g[7], &s, &len) && len == 3);
	assert_false(imap_arg_nstring(&g[8], &s, &len));

	assert_false(imap_arg_string(&g[8], false, &s, &len));
	assert_true(imap_arg_string(&g[8], true, &s, &len) && len == 2 && s[0] == '\0');
	assert_int_equal(g[9].type, IMAP_ARG_LIST);
	assert_int_equal(g[9].count, 0);

	/* a section with spaces is no astring */
	arena_clear(a);
	imap_parser_reset(p);
	line = "t X BODY[HEADER.FIELDS (A)]";
	assert_int_equal(imap_parser_feed_line(p, line, strlen(line)), IMAP_PARSE_DONE);
	assert_false(imap_arg_astring(&imap_parser_command(p)->args[0], &s, &len));
	imap_parser_destroy(&p);
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),	  cmocka_unit_test(test_session_recovery),
	    cmocka_unit_test(test_literal_used),  cmocka_unit_test(test_literal_total),
	    cmocka_unit_test(test_literal_minus), cmocka_unit_test(test_trailing_space_option),
	    cmocka_unit_test(test_arg_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
