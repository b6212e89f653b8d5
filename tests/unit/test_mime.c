/*
 * test_mime.c - the MIME structure parser (storage/mime*.c): a corpus of
 * real-world-shaped messages in tests/data/mime/ with BODYSTRUCTURE, BODY
 * and ENVELOPE written by hand from RFC 9051; every message parsed whole,
 * one byte at a time and in odd chunks with identical results; section
 * lookups checked against the raw bytes; the stored encoding round-tripped
 * and rejected when truncated or corrupted; 1000-deep nesting, NUL bytes,
 * header caps and part limits.
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
#include "storage/mime.h"

#define OUT_MAX (16u * 1024u * 1024u)

/* ---- helpers ------------------------------------------------------------ */

static char *
data_path(const char *file)
{
	/* __FILE__ is tests/unit/test_mime.c as given to the compiler */
	const char *src = __FILE__;
	const char *slash = strrchr(src, '/');
	size_t dir = slash != NULL ? (size_t)(slash - src) : 0;
	size_t n = dir + strlen("/../data/mime/") + strlen(file) + 1;
	char *p = malloc(n);
	snprintf(p, n, "%.*s/../data/mime/%s", (int)dir, src, file);
	return p;
}

static char *
read_file(const char *file, size_t *len_r)
{
	char *path = data_path(file);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	free(path);
	size_t cap = 4096, len = 0;
	char *d = malloc(cap);
	size_t n;
	while ((n = fread(d + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			d = realloc(d, cap *= 2);
	}
	fclose(f);
	*len_r = len;
	return d;
}

/* Parses with the given chunk size (0 = all at once). */
static struct mime_part *
parse_chunked(struct arena *a, const struct mime_limits *lim, const char *msg, size_t len,
	      size_t chunk)
{
	struct mime_parser *p = mime_parser_new(a, lim);
	if (chunk == 0) {
		mime_parser_feed(p, msg, len);
	} else {
		for (size_t off = 0; off < len; off += chunk)
			mime_parser_feed(p, msg + off, chunk < len - off ? chunk : len - off);
	}
	mime_parser_feed(p, "", 0);
	struct mime_part *root = NULL;
	assert_int_equal(mime_parser_finish(p, &root), 0);
	assert_non_null(root);
	return root;
}

static void
render_all(const struct mime_part *root, struct buf *bs, struct buf *body, struct buf *env)
{
	buf_init(bs, OUT_MAX);
	buf_init(body, OUT_MAX);
	buf_init(env, OUT_MAX);
	assert_int_equal(mime_render_bodystructure(root, true, bs), 0);
	assert_int_equal(mime_render_bodystructure(root, false, body), 0);
	assert_int_equal(mime_render_envelope(root, env), 0);
}

static void
encode(const struct mime_part *root, struct buf *enc)
{
	buf_init(enc, OUT_MAX);
	assert_int_equal(mime_encode(root, enc), 0);
	assert_int_equal(mime_encoded_check(enc->data, enc->len), 0);
}

static void
free_bufs(struct buf *a, struct buf *b, struct buf *c)
{
	buf_free(a);
	buf_free(b);
	buf_free(c);
}

/* ---- the corpus ----------------------------------------------------------- */

struct corpus_case {
	const char *file;
	const char *bodystructure;
	const char *body;
	const char *envelope;
};

#define ALICE "((\"Alice Example\" NIL \"alice\" \"example.org\"))"
#define CAROL "((NIL NIL \"carol\" \"example.org\"))"
#define DAN "((\"Dan\" NIL \"dan\" \"example.org\"))"
#define JOHN "((\"Smith, John\" NIL \"john\" \"example.com\"))"
#define FWD "((NIL NIL \"fwd\" \"example.org\"))"
#define INNER "((\"Inner Sender\" NIL \"in\" \"example.net\"))"
#define LIST "((NIL NIL \"list\" \"example.org\"))"
#define A_ORG "((NIL NIL \"a\" \"example.org\"))"
#define B_ORG "((NIL NIL \"b\" \"example.org\"))"
#define JOERG "((\"=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=\" NIL \"joerg\" \"example.de\"))"
#define BOSS "((NIL NIL \"boss\" \"example.com\"))"
#define LF_FROM "((NIL NIL \"lf\" \"example.org\"))"
#define JOERG8 "(({5}\r\nJ\xc3\xb6rg NIL \"joerg\" \"example.de\"))"
#define X_ORG "((NIL NIL \"x\" \"example.org\"))"
#define DEFAULT_TEXT(size, lines)                                                                  \
	"\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" " #size " " #lines

static const struct corpus_case corpus[] = {
    {"01_simple.eml",
     "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 26 2 NIL NIL NIL NIL)",
     "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 26 2)",
     "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" " ALICE " " ALICE " " ALICE
     " ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<1@example.org>\")"},
    {"02_no_content_type.eml", "(" DEFAULT_TEXT(11, 1) " NIL NIL NIL NIL)",
     "(" DEFAULT_TEXT(11, 1) ")",
     "(NIL \"no type\" " CAROL " " CAROL " " CAROL " NIL NIL NIL NIL NIL)"},
    {"03_alternative.eml",
     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)"
     "(\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"QUOTED-PRINTABLE\" 12 1 NIL NIL NIL "
     "NIL)"
     " \"ALTERNATIVE\" (\"BOUNDARY\" \"XX\") NIL NIL NIL)",
     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1)"
     "(\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"QUOTED-PRINTABLE\" 12 1) "
     "\"ALTERNATIVE\")",
     "(NIL \"alt\" " DAN " " DAN " " DAN
     " ((\"Eve\" NIL \"eve\" \"example.org\")) NIL NIL NIL NIL)"},
    {"04_mixed_nested.eml",
     "(((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL)"
     "(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 20 1 NIL NIL NIL NIL)"
     " \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL)"
     "(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") NIL \"The report\" \"BASE64\" 12 NIL"
     " (\"ATTACHMENT\" (\"FILENAME\" \"r.pdf\")) NIL NIL)"
     " \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)",
     "(((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 13 1)(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 20 "
     "1) \"ALTERNATIVE\")"
     "(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") NIL \"The report\" \"BASE64\" 12) \"MIXED\")",
     "(\"Tue, 1 Jan 2030 10:00:00 +0000\" \"Report\" " JOHN " " JOHN " " JOHN
     " ((NIL NIL \"a\" \"example.com\")(\"B Person\" NIL \"b\" \"example.com\"))"
     " ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL \"<rep@example.com>\")"},
    {"05_rfc822_attachment.eml",
     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL)"
     "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 324"
     " (NIL \"inner\" " INNER " " INNER " " INNER
     " ((NIL NIL \"Group\" NIL)(NIL NIL \"m1\" \"example.net\")(\"M Two\" NIL \"m2\" "
     "\"example.net\")(NIL NIL NIL NIL))"
     " NIL NIL \"<prev@example.net>\" \"<inner@example.net>\")"
     " ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL)"
     "(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 12 1 NIL NIL NIL NIL)"
     " \"ALTERNATIVE\" (\"BOUNDARY\" \"b2\") NIL NIL NIL)"
     " 16 NIL NIL NIL NIL)"
     " \"MIXED\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)",
     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 1)"
     "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 324"
     " (NIL \"inner\" " INNER " " INNER " " INNER
     " ((NIL NIL \"Group\" NIL)(NIL NIL \"m1\" \"example.net\")(\"M Two\" NIL \"m2\" "
     "\"example.net\")(NIL NIL NIL NIL))"
     " NIL NIL \"<prev@example.net>\" \"<inner@example.net>\")"
     " ((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 10 1)(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 12 "
     "1) \"ALTERNATIVE\")"
     " 16) \"MIXED\")",
     "(NIL \"Fwd: inner\" " FWD " " FWD " " FWD " " X_ORG " NIL NIL NIL NIL)"},
    {"06_digest.eml",
     "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 42"
     " (NIL \"one\" " A_ORG " " A_ORG " " A_ORG " NIL NIL NIL NIL NIL)"
     " (" DEFAULT_TEXT(5, 1) " NIL NIL NIL NIL) 4 NIL NIL NIL NIL)"
			     "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 43"
			     " (NIL \"two\" " B_ORG " " B_ORG " " B_ORG " NIL NIL NIL NIL NIL)"
			     " (" DEFAULT_TEXT(6,
					       1) " NIL NIL NIL NIL) 4 NIL NIL NIL NIL)"
						  " \"DIGEST\" (\"BOUNDARY\" \"d\") NIL NIL NIL)",
     "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 42"
     " (NIL \"one\" " A_ORG " " A_ORG " " A_ORG " NIL NIL NIL NIL NIL)"
     " (" DEFAULT_TEXT(5, 1) ") 4)"
			     "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 43"
			     " (NIL \"two\" " B_ORG " " B_ORG " " B_ORG " NIL NIL NIL NIL NIL)"
			     " (" DEFAULT_TEXT(6, 1) ") 4) \"DIGEST\")",
     "(NIL \"digest\" " LIST " " LIST " " LIST " NIL NIL NIL NIL NIL)"},
    {"07_rfc2047.eml",
     "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"BASE64\" 18 1 NIL NIL NIL NIL)",
     "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"BASE64\" 18 1)",
     "(NIL \"=?UTF-8?B?SGVsbG8gV29ybGQ=?= continued\" " JOERG
     " ((\"The Sender\" NIL \"sender\" \"example.de\")) ((NIL NIL \"reply\" \"example.de\"))"
     " ((\"=?ISO-8859-1?Q?Andr=E9?=\" NIL \"andre\" \"example.fr\")(\"Quoted \\\"Name\\\"\" NIL "
     "\"q\" \"example.fr\"))"
     " NIL NIL NIL NIL)"},
    {"08_groups.eml", "(" DEFAULT_TEXT(3, 1) " NIL NIL NIL NIL)", "(" DEFAULT_TEXT(3, 1) ")",
     "(NIL \"groups\" " BOSS " " BOSS " " BOSS
     " ((NIL NIL \"Team\" NIL)(NIL NIL \"alice\" \"example.com\")(\"Bob\" NIL \"bob\" "
     "\"example.com\")(NIL NIL NIL NIL)"
     "(NIL NIL \"solo\" \"example.com\")(NIL NIL \"Empty Group\" NIL)(NIL NIL NIL NIL))"
     " ((NIL NIL \"routed\" \"example.com\")(NIL NIL \"broken\" \".MISSING-HOST-NAME.\"))"
     " ((NIL NIL \"hidden\" \"example.com\")) NIL NIL)"},
    {"09_missing_close.eml",
     "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 8 1 NIL NIL NIL NIL)(\"TEXT\" \"PLAIN\" NIL NIL "
     "NIL \"7BIT\" 24 1 NIL NIL NIL "
     "NIL) \"MIXED\" (\"BOUNDARY\" \"zz\") NIL NIL NIL)",
     "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 8 1)(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 24 1) "
     "\"MIXED\")",
     "(NIL \"truncated\" " A_ORG " " A_ORG " " A_ORG " NIL NIL NIL NIL NIL)"},
    {"10_no_boundary.eml",
     "((" DEFAULT_TEXT(43, 4) " NIL NIL NIL NIL) \"MIXED\" (\"BOUNDARY\" \"never\") NIL NIL NIL)",
     "((" DEFAULT_TEXT(43, 4) ") \"MIXED\")",
     "(NIL \"nobound\" " A_ORG " " A_ORG " " A_ORG " NIL NIL NIL NIL NIL)"},
    {"11_bare_lf.eml",
     "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 18 2 NIL NIL NIL NIL)"
     "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"QUOTED-PRINTABLE\" 11 2 NIL NIL NIL NIL) \"MIXED\" "
     "(\"BOUNDARY\" \"L\") NIL NIL "
     "NIL)",
     "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 18 2)(\"TEXT\" \"PLAIN\" NIL NIL NIL "
     "\"QUOTED-PRINTABLE\" 11 2) \"MIXED\")",
     "(NIL \"lf\" " LF_FROM " " LF_FROM " " LF_FROM " NIL NIL NIL NIL NIL)"},
    {"12_8bit_headers.eml",
     "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") \"<cid@x>\" NIL \"8BIT\" 9 1 NIL (\"INLINE\" "
     "NIL) (\"de\" \"en\") NIL)",
     "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") \"<cid@x>\" NIL \"8BIT\" 9 1)",
     "(NIL {7}\r\nGr\xc3\xbc\xc3\x9f"
     "e " JOERG8 " " JOERG8 " " JOERG8 " NIL NIL NIL NIL NIL)"},
    {"13_empty.eml", "(" DEFAULT_TEXT(0, 0) " NIL NIL NIL NIL)", "(" DEFAULT_TEXT(0, 0) ")",
     "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"},
    {"14_no_separator.eml", "(" DEFAULT_TEXT(0, 0) " NIL NIL NIL NIL)", "(" DEFAULT_TEXT(0, 0) ")",
     "(NIL \"only a header\" " X_ORG " " X_ORG " " X_ORG " NIL NIL NIL NIL NIL)"},
};

static void
test_corpus(void **state)
{
	static const size_t chunks[] = {0, 1, 2, 3, 7, 64};
	for (size_t i = 0; i < ARRAY_SIZE(corpus); i++) {
		const struct corpus_case *c = &corpus[i];
		size_t len;
		char *msg = read_file(c->file, &len);
		struct buf ref_enc;
		for (size_t k = 0; k < ARRAY_SIZE(chunks); k++) {
			struct arena *a = arena_new(0);
			struct mime_part *root = parse_chunked(a, NULL, msg, len, chunks[k]);
			struct buf bs, body, env, enc;
			render_all(root, &bs, &body, &env);
			if (strcmp(bs.data, c->bodystructure) != 0 ||
			    strcmp(body.data, c->body) != 0 || strcmp(env.data, c->envelope) != 0)
				print_error("%s chunk %zu:\n BS  %s\n exp %s\n BODY %s\n exp  %s\n "
					    "ENV %s\n exp %s\n",
					    c->file, chunks[k], bs.data, c->bodystructure,
					    body.data, c->body, env.data, c->envelope);
			assert_string_equal(bs.data, c->bodystructure);
			assert_string_equal(body.data, c->body);
			assert_string_equal(env.data, c->envelope);
			/* the whole message is covered */
			assert_int_equal(root->hdr_off, 0);
			assert_int_equal(root->hdr_len + root->body_len, len);
			/* every offset and size agrees with the whole-message parse */
			encode(root, &enc);
			if (k == 0) {
				ref_enc = enc;
			} else {
				assert_int_equal(enc.len, ref_enc.len);
				assert_memory_equal(enc.data, ref_enc.data, enc.len);
				buf_free(&enc);
			}
			free_bufs(&bs, &body, &env);
			arena_destroy(&a);
		}
		/* the stored renderings are the ones above */
		const char *s;
		size_t sl;
		assert_int_equal(mime_encoded_bodystructure(ref_enc.data, ref_enc.len, &s, &sl), 0);
		assert_int_equal(sl, strlen(c->bodystructure));
		assert_memory_equal(s, c->bodystructure, sl);
		assert_int_equal(mime_encoded_body(ref_enc.data, ref_enc.len, &s, &sl), 0);
		assert_int_equal(sl, strlen(c->body));
		assert_memory_equal(s, c->body, sl);
		assert_int_equal(mime_encoded_envelope(ref_enc.data, ref_enc.len, &s, &sl), 0);
		assert_int_equal(sl, strlen(c->envelope));
		assert_memory_equal(s, c->envelope, sl);
		uint64_t size;
		assert_int_equal(mime_encoded_msg_size(ref_enc.data, ref_enc.len, &size), 0);
		assert_int_equal(size, len);
		buf_free(&ref_enc);
		free(msg);
	}
}

/* ---- sections ------------------------------------------------------------- */

struct section_case {
	const char *file, *section;
	int rc;
	const char *body;	/* BODY[section] exactly, or NULL */
	const char *mime;	/* BODY[section.MIME] exactly, or NULL */
	const char *msg_header; /* BODY[section.HEADER] begins with, or NULL */
	const char *msg_text;	/* BODY[section.TEXT] begins with, or NULL */
	enum mime_encoding enc;
	int64_t decoded; /* -1: not checked */
};

static const struct section_case sections[] = {
    {"01_simple.eml", "", 0, "Hello Bob,\r\nHow are you?\r\n", NULL, "From: Alice", "Hello Bob",
     MIME_ENC_7BIT, 26},
    {"01_simple.eml", "1", 0, "Hello Bob,\r\nHow are you?\r\n", NULL, NULL, NULL, MIME_ENC_7BIT,
     26},
    {"01_simple.eml", "2", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"01_simple.eml", "1.1", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"01_simple.eml", "0", MIME_ERR_SYNTAX, NULL, NULL, NULL, NULL, 0, -1},
    {"01_simple.eml", "1.", MIME_ERR_SYNTAX, NULL, NULL, NULL, NULL, 0, -1},
    {"01_simple.eml", "1.TEXT", MIME_ERR_SYNTAX, NULL, NULL, NULL, NULL, 0, -1},
    {"01_simple.eml", "99999999999999999999", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"03_alternative.eml", "1", 0, "Plain", "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
     NULL, NULL, MIME_ENC_7BIT, 5},
    {"03_alternative.eml", "2", 0, "<p>Hi=3D</p>",
     "Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: "
     "quoted-printable\r\n\r\n",
     NULL, NULL, MIME_ENC_QP, 10},
    {"03_alternative.eml", "3", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"04_mixed_nested.eml", "1.1", 0, "See attached.", "Content-Type: text/plain\r\n\r\n", NULL,
     NULL, MIME_ENC_7BIT, 13},
    {"04_mixed_nested.eml", "1.2", 0, "<b>See attached.</b>", "Content-Type: text/html\r\n\r\n",
     NULL, NULL, MIME_ENC_7BIT, 20},
    {"04_mixed_nested.eml", "2", 0, "JVBERi0xLjQK", NULL, NULL, NULL, MIME_ENC_BASE64, 9},
    {"04_mixed_nested.eml", "1.3", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"04_mixed_nested.eml", "2.1", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"05_rfc822_attachment.eml", "1", 0, "See below.", NULL, NULL, NULL, MIME_ENC_7BIT, 10},
    {"05_rfc822_attachment.eml", "2", 0, NULL, "Content-Type: message/rfc822\r\n\r\n",
     "From: Inner Sender", "--b2\r\nContent-Type: text/plain", MIME_ENC_7BIT, 324},
    {"05_rfc822_attachment.eml", "2.1", 0, "inner text", "Content-Type: text/plain\r\n\r\n", NULL,
     NULL, MIME_ENC_7BIT, 10},
    {"05_rfc822_attachment.eml", "2.2", 0, "<i>inner</i>", "Content-Type: text/html\r\n\r\n", NULL,
     NULL, MIME_ENC_7BIT, 12},
    {"05_rfc822_attachment.eml", "2.3", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"06_digest.eml", "1", 0, "From: a@example.org\r\nSubject: one\r\n\r\nfirst", "\r\n",
     "From: a@example.org", "first", MIME_ENC_7BIT, 42},
    /* a non-multipart encapsulated message: N.1 is its body */
    {"06_digest.eml", "1.1", 0, "first", NULL, NULL, NULL, MIME_ENC_7BIT, 5},
    {"06_digest.eml", "2.1", 0, "second", NULL, NULL, NULL, MIME_ENC_7BIT, 6},
    {"06_digest.eml", "1.2", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"06_digest.eml", "1.1.1", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"07_rfc2047.eml", "1", 0, "SGVsbG8gV29ybGQK\r\n", NULL, NULL, NULL, MIME_ENC_BASE64, 12},
    {"09_missing_close.eml", "2", 0, "part two, never closed\r\n",
     "Content-Type: text/plain\r\n\r\n", NULL, NULL, MIME_ENC_7BIT, 24},
    {"10_no_boundary.eml", "1", 0, "--other\r\nContent-Type: text/plain\r\n\r\ntext\r\n", "", NULL,
     NULL, MIME_ENC_7BIT, 43},
    {"11_bare_lf.eml", "1", 0, "line one\r\nline two", "Content-Type: text/plain\n\n", NULL, NULL,
     MIME_ENC_7BIT, 18},
    {"11_bare_lf.eml", "2", 0, "a=3Db =\nc  ", NULL, NULL, NULL, MIME_ENC_QP, 5},
    {"13_empty.eml", "", 0, "", NULL, "", "", MIME_ENC_7BIT, 0},
    {"13_empty.eml", "1", 0, "", "", NULL, NULL, MIME_ENC_7BIT, 0},
    {"13_empty.eml", "2", MIME_ERR_NOT_FOUND, NULL, NULL, NULL, NULL, 0, -1},
    {"14_no_separator.eml", "1", 0, "", "Subject: only a header\r\nFrom: x@example.org\r\n", NULL,
     NULL, MIME_ENC_7BIT, 0},
};

static void
assert_span(const char *msg, size_t len, uint64_t off, uint64_t n, const char *expect, bool prefix)
{
	assert_true(off <= len && n <= len - off);
	if (prefix) {
		assert_true(n >= strlen(expect));
		assert_memory_equal(msg + off, expect, strlen(expect));
	} else {
		if (n != strlen(expect) || memcmp(msg + off, expect, n) != 0)
			print_error("got [%.*s] expected [%s]\n", (int)n, msg + off, expect);
		assert_int_equal(n, strlen(expect));
		assert_memory_equal(msg + off, expect, n);
	}
}

static void
test_sections(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
		const struct section_case *c = &sections[i];
		size_t len;
		char *msg = read_file(c->file, &len);
		struct arena *a = arena_new(0);
		struct mime_part *root = parse_chunked(a, NULL, msg, len, 0);
		struct buf enc;
		encode(root, &enc);
		struct mime_section s;
		int rc = mime_section_find(enc.data, enc.len, c->section, &s);
		if (rc != c->rc)
			print_error("%s [%s]: rc %d\n", c->file, c->section, rc);
		assert_int_equal(rc, c->rc);
		if (rc == 0) {
			if (c->body != NULL)
				assert_span(msg, len, s.body_off, s.body_len, c->body, false);
			if (c->mime != NULL)
				assert_span(msg, len, s.hdr_off, s.hdr_len, c->mime, false);
			assert_int_equal(s.has_message, c->msg_header != NULL);
			if (c->msg_header != NULL) {
				assert_span(msg, len, s.msg_hdr_off, s.msg_hdr_len, c->msg_header,
					    true);
				assert_span(msg, len, s.msg_body_off, s.msg_body_len, c->msg_text,
					    true);
				/* the header ends with its empty line, text follows it */
				assert_int_equal(s.msg_hdr_off + s.msg_hdr_len, s.msg_body_off);
			}
			assert_int_equal(s.encoding, c->enc);
			if (c->decoded >= 0)
				assert_int_equal(s.decoded_size, (uint64_t)c->decoded);
			/* only the root's header is the top-level one */
			assert_int_equal(s.hdr_is_top, s.hdr_off == 0);
		}
		buf_free(&enc);
		arena_destroy(&a);
		free(msg);
	}
}

/* ---- stored encoding: corruption -------------------------------------------- */

static void
put_le64(char *d, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		d[i] = (char)(v >> (8 * i));
}

static void
test_corrupt_encoding(void **state)
{
	size_t len;
	char *msg = read_file("05_rfc822_attachment.eml", &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, NULL, msg, len, 0);
	struct buf enc;
	encode(root, &enc);
	struct mime_section s;
	const char *str;
	size_t sl;

	/* every truncation, and one byte too many, are rejected */
	for (size_t n = 0; n < enc.len; n++) {
		assert_int_equal(mime_encoded_check(enc.data, n), MIME_ERR_CORRUPT);
		assert_int_equal(mime_section_find(enc.data, n, "2.1", &s), MIME_ERR_CORRUPT);
		assert_int_equal(mime_encoded_bodystructure(enc.data, n, &str, &sl),
				 MIME_ERR_CORRUPT);
	}
	char *copy = malloc(enc.len + 1);
	memcpy(copy, enc.data, enc.len);
	copy[enc.len] = 0;
	assert_int_equal(mime_encoded_check(copy, enc.len + 1), MIME_ERR_CORRUPT);

	/* layout knowledge: header 32 bytes, strings, then 52-byte records */
	uint32_t slen = 0;
	for (int i = 0; i < 3; i++)
		slen += (uint8_t)enc.data[16 + 4 * i] |
			(uint32_t)(uint8_t)enc.data[17 + 4 * i] << 8 |
			(uint32_t)(uint8_t)enc.data[18 + 4 * i] << 16;
	size_t table = 32 + slen;
	assert_int_equal((enc.len - table) % 52, 0);

	struct {
		size_t off;
		int what; /* 0: u64 value, 1: byte */
		uint64_t v;
	} bad[] = {
	    {0, 1, 'X'},		      /* magic */
	    {3, 1, 2},			      /* version */
	    {table + 52 + 16, 0, len + 1},    /* body past the message */
	    {table + 52 + 24, 0, UINT64_MAX}, /* length wraps */
	    {table + 52 + 40, 1, 1},	      /* first child = itself */
	    {table + 52 + 44, 1, 0},	      /* sibling pointing backwards */
	    {table + 48, 1, 7},		      /* kind */
	    {table + 49, 1, 99},	      /* encoding */
	    {table + 40, 1, 0},		      /* multipart root without children */
	    {8, 0, 10},			      /* message size too small */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memcpy(copy, enc.data, enc.len);
		if (bad[i].what == 0)
			put_le64(copy + bad[i].off, bad[i].v);
		else
			copy[bad[i].off] = (char)bad[i].v;
		if (bad[i].off == table + 52 + 44) {
			/* record 1's sibling: make it point at record 1 itself */
			copy[bad[i].off] = 1;
		}
		assert_int_equal(mime_encoded_check(copy, enc.len), MIME_ERR_CORRUPT);
		assert_int_equal(mime_section_find(copy, enc.len, "2.1", &s), MIME_ERR_CORRUPT);
	}

	/* random single-byte damage: an error, or offsets inside the message */
	srand(42);
	for (int i = 0; i < 20000; i++) {
		memcpy(copy, enc.data, enc.len);
		size_t at = (size_t)rand() % enc.len;
		copy[at] = (char)(copy[at] ^ (1 + rand() % 255));
		static const char *const secs[] = {"", "1", "2", "2.1", "2.2", "1.1"};
		int rc = mime_section_find(copy, enc.len, secs[i % 6], &s);
		if (rc == 0) {
			uint64_t size;
			assert_int_equal(mime_encoded_msg_size(copy, enc.len, &size), 0);
			assert_true(s.body_off <= size && s.body_len <= size - s.body_off);
			assert_true(s.hdr_off <= size && s.hdr_len <= size - s.hdr_off);
		} else {
			assert_true(rc == MIME_ERR_CORRUPT || rc == MIME_ERR_NOT_FOUND);
		}
	}
	free(copy);
	buf_free(&enc);
	arena_destroy(&a);
	free(msg);
}

/* ---- generated messages --------------------------------------------------- */

/* levels nested multiparts, each with boundary b<i>, a text leaf inside. */
static char *
deep_message(unsigned levels, size_t *len_r)
{
	struct buf b;
	buf_init(&b, OUT_MAX);
	buf_append_str(&b, "Subject: deep\r\n");
	for (unsigned i = 0; i < levels; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%u\r\n\r\n--b%u\r\n", i,
			   i);
	buf_append_str(&b, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	for (unsigned i = levels; i-- > 0;)
		buf_printf(&b, "--b%u--\r\n", i);
	*len_r = b.len;
	return b.data;
}

static void
test_deep_nesting(void **state)
{
	size_t len;
	char *msg = deep_message(1000, &len);

	/* default depth limit: the part at depth 64 is a leaf */
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, NULL, msg, len, 0);
	struct mime_part *p = root;
	unsigned depth = 0;
	while (p->kind == MIME_KIND_MULTIPART) {
		assert_int_equal(p->nchildren, 1);
		p = p->children;
		depth++;
	}
	assert_int_equal(depth, MIME_DEFAULT_MAX_DEPTH);
	assert_true(p->flags & MIME_PART_DEPTH_LIMIT);
	assert_string_equal(p->type, "multipart");
	struct buf bs, body, env;
	render_all(root, &bs, &body, &env);
	/* 64 opening parentheses, then the leaf of its declared type */
	for (unsigned i = 0; i <= MIME_DEFAULT_MAX_DEPTH; i++)
		assert_int_equal(bs.data[i], '(');
	const char *leaf64 = "\"MULTIPART\" \"MIXED\" (\"BOUNDARY\" \"b64\") NIL NIL \"7BIT\" ";
	assert_memory_equal(bs.data + MIME_DEFAULT_MAX_DEPTH + 1, leaf64, strlen(leaf64));
	/* the leaf's body runs to the CRLF before --b63-- */
	const char *close63 = strstr(msg, "\r\n--b63--\r\n");
	assert_non_null(close63);
	assert_int_equal(p->body_off + p->body_len, (uint64_t)(close63 - msg));
	struct buf enc, enc1;
	encode(root, &enc);
	free_bufs(&bs, &body, &env);

	/* byte by byte: the same */
	struct arena *a1 = arena_new(0);
	encode(parse_chunked(a1, NULL, msg, len, 1), &enc1);
	assert_int_equal(enc.len, enc1.len);
	assert_memory_equal(enc.data, enc1.data, enc.len);
	buf_free(&enc1);
	arena_destroy(&a1);

	/* section 1.1.1...(64 times) is the leaf; one more level does not exist */
	struct buf sec;
	buf_init(&sec, 4096);
	for (unsigned i = 0; i < MIME_DEFAULT_MAX_DEPTH; i++)
		buf_append_str(&sec, i == 0 ? "1" : ".1");
	struct mime_section s;
	assert_int_equal(mime_section_find(enc.data, enc.len, sec.data, &s), 0);
	assert_int_equal(s.body_off, p->body_off);
	buf_append_str(&sec, ".1");
	assert_int_equal(mime_section_find(enc.data, enc.len, sec.data, &s), MIME_ERR_NOT_FOUND);
	buf_free(&sec);
	buf_free(&enc);
	arena_destroy(&a);

	/* a limit above the nesting: 1000 real levels, rendered recursively */
	struct mime_limits lim;
	mime_limits_default(&lim);
	lim.max_depth = 2000;
	a = arena_new(0);
	root = parse_chunked(a, &lim, msg, len, 0);
	render_all(root, &bs, &body, &env);
	const char *leaf = "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 4 1)";
	assert_int_equal(strncmp(body.data + 1000, leaf, strlen(leaf)), 0);
	assert_int_equal(strspn(body.data, "("), 1001);
	assert_string_equal(body.data + body.len - strlen(" \"MIXED\")"), " \"MIXED\")");
	free_bufs(&bs, &body, &env);
	arena_destroy(&a);
	free(msg);
}

static void
test_nul_cr_and_garbage(void **state)
{
	/* NUL in a header and in the body, a bare CR, a header line without
	 * a colon, a continuation line first */
	static const char msg[] =
	    " folded first\r\n"
	    "Subject: a\0b\r\n"
	    "garbage line\r\n"
	    "Content-Type: text/plain; charset=\"x\\\"y\"; ;=; bad; format=flowed\r\n"
	    "\r\n"
	    "x\0y\rz\r\n"
	    "\r";
	size_t len = sizeof(msg) - 1;
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, NULL, msg, len, 0);
	struct buf bs, body, env;
	render_all(root, &bs, &body, &env);
	assert_string_equal(
	    bs.data, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"x\\\"y\" \"FORMAT\" \"flowed\") NIL NIL "
		     "\"7BIT\" 8 2 NIL NIL NIL NIL)");
	assert_string_equal(env.data, "(NIL \"a b\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	free_bufs(&bs, &body, &env);
	struct buf e0, e1;
	encode(root, &e0);
	encode(parse_chunked(a, NULL, msg, len, 1), &e1);
	assert_memory_equal(e0.data, e1.data, e0.len);
	free_bufs(&e0, &e1, &bs);
	arena_destroy(&a);
}

struct addr_case {
	const char *from;
	const char *expect; /* the rendered From list */
};

static const struct addr_case addr_cases[] = {
    {"a@b", "((NIL NIL \"a\" \"b\"))"},
    {"  John Q. Public <jqp@x.org>", "((\"John Q. Public\" NIL \"jqp\" \"x.org\"))"},
    {"\"a\\\\b\" <c@d>", "((\"a\\\\b\" NIL \"c\" \"d\"))"},
    {"\"quoted local\"@example.org", "((NIL NIL \"\\\"quoted local\\\"\" \"example.org\"))"},
    {"x@[127.0.0.1]", "((NIL NIL \"x\" \"[127.0.0.1]\"))"},
    {"Name (comment) <a@b> (trailing), c@d", "((\"Name\" NIL \"a\" \"b\")(NIL NIL \"c\" \"d\"))"},
    {"a@b (Real Name)", "((\"Real Name\" NIL \"a\" \"b\"))"},
    {"<@r1,@r2:x@y>", "((NIL NIL \"x\" \"y\"))"},
    {"G:a@b", "((NIL NIL \"G\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL))"},
    {"G:;", "((NIL NIL \"G\" NIL)(NIL NIL NIL NIL))"},
    {"just-a-name", "((NIL NIL \"just-a-name\" \".MISSING-HOST-NAME.\"))"},
    {"Name <unterminated@x", "((\"Name\" NIL \"unterminated\" \"x\"))"},
    {",,,", "NIL"},
    {"", "NIL"},
    {"<>", "NIL"},
    {"\"unterminated", "((NIL NIL \"\\\"unterminated\" \".MISSING-HOST-NAME.\"))"},
    {"(((", "NIL"},
    {"a@b, c@d, e@f", "((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")(NIL NIL \"e\" \"f\"))"},
    {"Foo Bar <foo@bar> garbage, x@y", "((\"Foo Bar\" NIL \"foo\" \"bar\")(NIL NIL \"x\" \"y\"))"},
};

static void
test_addresses(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(addr_cases); i++) {
		struct buf m, env, expect;
		buf_init(&m, 4096);
		buf_init(&expect, 4096);
		buf_printf(&m, "From: %s\r\n\r\n", addr_cases[i].from);
		const char *e = addr_cases[i].expect;
		buf_printf(&expect, "(NIL NIL %s %s %s NIL NIL NIL NIL NIL)", e, e, e);
		struct arena *a = arena_new(0);
		for (size_t chunk = 0; chunk < 2; chunk++) {
			struct mime_part *root = parse_chunked(a, NULL, m.data, m.len, chunk);
			buf_init(&env, 4096);
			assert_int_equal(mime_render_envelope(root, &env), 0);
			if (strcmp(env.data, expect.data) != 0)
				print_error("From: %s\n got %s\n exp %s\n", addr_cases[i].from,
					    env.data, expect.data);
			assert_string_equal(env.data, expect.data);
			buf_free(&env);
		}
		arena_destroy(&a);
		buf_free(&m);
		buf_free(&expect);
	}
}

struct decode_case {
	const char *cte;
	const char *body; /* the part body (a delimiter follows) */
	uint64_t decoded;
};

static const struct decode_case decode_cases[] = {
    {"base64", "QQ==", 1},
    {"base64", "QUI=\r\nQUJD", 5},
    {"base64", "QUJD\r\n\r\n", 3},
    {"BASE64", "Q U\r\nJ D !", 3},
    {"quoted-printable", "a=\r\nb", 2},
    {"quoted-printable", "a  \r\nb", 4},   /* trailing blanks go, CRLF stays */
    {"quoted-printable", "=41=4", 3},	   /* a broken escape is literal */
    {"quoted-printable", "a=\r\n", 1},	   /* soft break before the delimiter */
    {"quoted-printable", "a\r\n\r\n", 5},  /* the last CRLF belongs to the delimiter */
    {"quoted-printable", "x= \t\r\ny", 2}, /* soft break with padding */
    {"quoted-printable", "x= y", 4},	   /* '=' blank inside a line is literal */
    {"quoted-printable", "=zz", 3},
    {"7bit", "abc\r\n", 5},
    {"x-unknown", "abc", 3},
};

static void
test_decoded_sizes(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(decode_cases); i++) {
		const struct decode_case *c = &decode_cases[i];
		struct buf m;
		buf_init(&m, 4096);
		buf_printf(&m,
			   "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
			   "Content-Transfer-Encoding: %s\r\n\r\n%s\r\n--q--\r\n",
			   c->cte, c->body);
		struct arena *a = arena_new(0);
		for (size_t chunk = 0; chunk < 3; chunk++) {
			struct mime_part *root = parse_chunked(a, NULL, m.data, m.len, chunk);
			const struct mime_part *p = root->children;
			assert_non_null(p);
			assert_int_equal(p->body_len, strlen(c->body));
			if (p->decoded_size != c->decoded)
				print_error("%s [%s]: %llu\n", c->cte, c->body,
					    (unsigned long long)p->decoded_size);
			assert_int_equal(p->decoded_size, c->decoded);
		}
		arena_destroy(&a);
		buf_free(&m);
	}
	/* at the end of input the last line break is part of the body */
	static const char qp[] = "Content-Transfer-Encoding: quoted-printable\r\n\r\na\r\nb\r\n";
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, NULL, qp, sizeof(qp) - 1, 0);
	assert_int_equal(root->decoded_size, 6);
	assert_int_equal(root->encoding, MIME_ENC_QP);
	arena_destroy(&a);
}

static void
test_limits(void **state)
{
	/* a header far past the cap: offsets exact, later fields ignored */
	struct buf m;
	buf_init(&m, OUT_MAX);
	buf_append_str(&m, "Subject: big\r\nX-Pad: ");
	for (int i = 0; i < 2000; i++)
		buf_append_str(&m, "0123456789012345678901234567890123456789\r\n ");
	buf_append_str(&m, "x\r\nContent-Type: image/png\r\n\r\nbody\r\n");
	struct mime_limits lim;
	mime_limits_default(&lim);
	lim.max_header = 1024;
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, &lim, m.data, m.len, 0);
	assert_true(root->flags & MIME_PART_HEADER_TRUNCATED);
	assert_string_equal(root->type, "text"); /* Content-Type was past the cap */
	assert_string_equal(root->envelope->subject, "big");
	assert_int_equal(root->body_len, 6);
	assert_memory_equal(m.data + root->body_off, "body\r\n", 6);
	arena_destroy(&a);
	buf_free(&m);

	/* parts: after max_parts, delimiters are body text */
	buf_init(&m, OUT_MAX);
	buf_append_str(&m, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 0; i < 10; i++)
		buf_printf(&m, "--p\r\n\r\npart %d\r\n", i);
	buf_append_str(&m, "--p--\r\n");
	lim.max_parts = 4;
	a = arena_new(0);
	root = parse_chunked(a, &lim, m.data, m.len, 0);
	assert_int_equal(root->nchildren, 3);
	const struct mime_part *last = root->children->next->next;
	assert_int_equal(last->body_off + last->body_len,
			 (uint64_t)(strstr(m.data, "\r\n--p--") - m.data));
	arena_destroy(&a);
	buf_free(&m);
}

static void
test_edge_boundaries(void **state)
{
	static const struct {
		const char *msg;
		const char *body; /* BODY */
	} cases[] = {
	    /* empty boundary parameter: one synthetic child */
	    {"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\nx\r\n",
	     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 7 2) \"MIXED\")"},
	    /* no boundary parameter at all */
	    {"Content-Type: multipart/mixed\r\n\r\nabc",
	     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3 1) \"MIXED\")"},
	    /* boundary with padding, a longer lookalike, and an outer close
	     * that ends an unclosed inner multipart */
	    {"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a \t\r\n\r\n1\r\n--ab\r\n--a\r\n"
	     "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\n2\r\n--a--",
	     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 7 2)"
	     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1 1) "
	     "\"ALTERNATIVE\") \"MIXED\")"},
	    /* a delimiter straight after a delimiter: an empty part; a
	     * delimiter inside a header */
	    {"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a\r\nContent-Type: "
	     "text/html\r\n--a--\r\n",
	     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0)"
	     "(\"TEXT\" \"HTML\" NIL NIL NIL \"7BIT\" 0 0) \"MIXED\")"},
	    /* message/rfc822 cut short in its header, and base64 encoded */
	    {"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: "
	     "message/rfc822\r\n--a\r\n"
	     "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: "
	     "base64\r\n\r\nAAAA\r\n--a--\r\n",
	     "((\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" 0)"
	     "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4) \"MIXED\")"},
	    /* message/rfc822 whose body is empty */
	    {"Content-Type: message/rfc822\r\n\r\n",
	     "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL "
	     "NIL)"
	     " (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) 0)"},
	    /* the plain case, for contrast */
	    {"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n",
	     "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1 1) \"MIXED\")"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = strlen(cases[i].msg);
		struct arena *a = arena_new(0);
		struct buf ref;
		for (size_t chunk = 0; chunk < 4; chunk++) {
			struct mime_part *root = parse_chunked(a, NULL, cases[i].msg, len, chunk);
			struct buf bs, body, env;
			render_all(root, &bs, &body, &env);
			if (strcmp(body.data, cases[i].body) != 0)
				print_error("case %zu chunk %zu: %s\n", i, chunk, body.data);
			assert_string_equal(body.data, cases[i].body);
			free_bufs(&bs, &body, &env);
			struct buf enc;
			encode(root, &enc);
			if (chunk == 0) {
				ref = enc;
			} else {
				assert_memory_equal(ref.data, enc.data, ref.len);
				buf_free(&enc);
			}
		}
		buf_free(&ref);
		arena_destroy(&a);
	}

	/* a long line beginning with the delimiter is not one */
	struct buf m;
	buf_init(&m, OUT_MAX);
	buf_append_str(&m, "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a");
	for (int i = 0; i < 2000; i++)
		buf_putc(&m, ' ');
	buf_append_str(&m, "\r\n--a--\r\n");
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, NULL, m.data, m.len, 0);
	assert_int_equal(root->nchildren, 1);
	assert_int_equal(root->children->body_lines, 2);
	arena_destroy(&a);
	buf_free(&m);
}

static void
test_render_limit(void **state)
{
	size_t len;
	char *msg = read_file("05_rfc822_attachment.eml", &len);
	struct arena *a = arena_new(0);
	struct mime_part *root = parse_chunked(a, NULL, msg, len, 0);
	struct buf small;
	buf_init(&small, 40);
	assert_int_equal(mime_render_bodystructure(root, true, &small), MIME_ERR_LIMIT);
	buf_free(&small);
	buf_init(&small, 40);
	assert_int_equal(mime_encode(root, &small), MIME_ERR_LIMIT);
	assert_int_equal(small.len, 0);
	buf_free(&small);
	assert_string_equal(mime_strerror(MIME_ERR_CORRUPT), "corrupt MIME structure record");
	arena_destroy(&a);
	free(msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_corpus),
	    cmocka_unit_test(test_sections),
	    cmocka_unit_test(test_corrupt_encoding),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_nul_cr_and_garbage),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_decoded_sizes),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_edge_boundaries),
	    cmocka_unit_test(test_render_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
