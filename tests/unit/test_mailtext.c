/*
 * test_mailtext.c - storage/mailtext*.c: charset conversion (built-in
 * and iconv, invalid input), RFC 2047 decoding (every example of RFC 2047
 * section 8, RFC 2231 languages, malformed words), i;unicode-casemap
 * (RFC 5051), the RFC 5256 base subject, the streaming body decoder
 * (quoted-printable, base64, HTML) fed whole, one byte at a time and in
 * other chunkings, the output cap, and the index tokeniser.
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
#include "storage/mailtext.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* inputs may hold NULs: len -1 means strlen */
static size_t
slen(const char *s, int len)
{
	return len < 0 ? strlen(s) : (size_t)len;
}

static void
assert_buf_eq(const struct buf *b, const char *want, const char *what)
{
	if (b->len != strlen(want) || memcmp(buf_cstr(b), want, b->len) != 0) {
		print_error("%s: got \"%s\" (%zu bytes), want \"%s\"\n", what, buf_cstr(b), b->len,
			    want);
		fail();
	}
}

/* ---- charsets ---- */

static const struct {
	const char *charset;
	const char *in;
	int len;
	const char *want;
} charset_cases[] = {
    {"ISO-8859-1", "caf\xe9", -1, "café"},
    {"latin1",
     "\xa3"
     "5 \xd7 2",
     -1, "£5 × 2"},
    /* Latin-1 labels decode as windows-1252 (WHATWG) */
    {"iso-8859-1",
     "\x80"
     "5",
     -1, "€5"},
    {"windows-1252", "\x93quoted\x94 \x96 x", -1, "“quoted” – x"},
    {"cp1252", "\x81", -1, "\xc2\x81"}, /* a hole: the C1 control */
    {"UTF-8", "caf\xc3\xa9", -1, "café"},
    {"utf8",
     "a\xff"
     "b",
     -1,
     "a\xef\xbf\xbd"
     "b"},
    /* one U+FFFD per maximal ill-formed subpart */
    {"UTF-8", "\xe2\x82x", -1, "\xef\xbf\xbdx"},
    {"UTF-8", "\xed\xa0\x80", -1, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"UTF-8", "\xc0\xaf", -1, "\xef\xbf\xbd\xef\xbf\xbd"},
    {"UTF-8", "abc\xf0\x9f\x98", -1, "abc\xef\xbf\xbd"},
    {"UTF-8", "nul\0byte", 8, "nul\0byte"},
    /* "auto": UTF-8 sequences as such, other bytes windows-1252 */
    {"us-ascii", "caf\xc3\xa9", -1, "café"},
    {"us-ascii", "caf\xe9", -1, "café"},
    {NULL, "\xe9t\xe9 \xe2\x82\xac", -1, "été €"},
    {"", "\xe9t\xe9", -1, "été"},
    {"x-unknown", "na\xefve", -1, "naïve"},
    {"unknown-8bit", "\xc3\xa9", -1, "é"},
    {"no-such-charset", "caf\xe9", -1, "café"},
    {"../../etc/passwd", "caf\xe9", -1, "café"},
    {"UTF-8//TRANSLIT", "caf\xe9", -1, "café"},
    {"x1234567890123456789012345678901234567890", "\xe9", -1, "é"},
    /* trimming, quotes, RFC 2231 language, case */
    {" \"utf-8\" ", "caf\xc3\xa9", -1, "café"},
    {"UTF-8*en", "\xc3\xa9", -1, "é"},
    {"Iso-8859-2", "\xb1\xe6", -1, "ąć"},
    /* iconv */
    {"KOI8-R", "\xf0\xd2\xc9\xd7\xc5\xd4\x2c\x20\xcd\xc9\xd2", -1, "Привет, мир"},
    {"Shift_JIS", "\x93\xfa\x96\x7b\x8c\xea\x83\x65\x83\x4c\x83\x58\x83\x67", -1, "日本語テキスト"},
    {"ISO-2022-JP",
     "\x1b\x24\x42\x46\x7c\x4b\x5c\x38\x6c\x24\x47\x24\x39\x1b\x28\x42"
     "!",
     -1, "日本語です!"},
    {"gb2312", "\xd6\xd0\xce\xc4\xd3\xca\xbc\xfe", -1, "中文邮件"},
    {"euc-kr", "\xc7\xd1\xb1\xb9\xbe\xee", -1, "한국어"},
    {"UTF-16LE", "h\0i\0", 4, "hi"},
    /* iconv rejects: U+FFFD per byte skipped, or for a cut character */
    {"Shift_JIS", "\x93\xfa\x93", -1, "日\xef\xbf\xbd"},
    {"KOI8-R", "ok", -1, "ok"},
};

static void
test_charset(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(charset_cases); i++) {
		struct buf b;
		buf_init(&b, 1024);
		const char *in = charset_cases[i].in;
		assert_int_equal(mailtext_charset_to_utf8(charset_cases[i].charset, in,
							  slen(in, charset_cases[i].len), &b),
				 0);
		const char *want = charset_cases[i].want;
		size_t wl = charset_cases[i].len == 8 ? 8 : strlen(want);
		if (b.len != wl || memcmp(buf_cstr(&b), want, wl) != 0) {
			print_error("charset case %zu (%s): got \"%s\"\n", i,
				    charset_cases[i].charset ? charset_cases[i].charset : "NULL",
				    buf_cstr(&b));
			fail();
		}
		buf_free(&b);
	}
}

static void
test_charset_cap(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 6);
	assert_int_equal(buf_append_str(&b, "ab"), 0);
	/* "café!" is 6 bytes: 2 + 6 > 6 */
	assert_int_equal(mailtext_charset_to_utf8("latin1", "caf\xe9!", 5, &b), -1);
	assert_buf_eq(&b, "ab", "cap leaves out unchanged");
	assert_int_equal(mailtext_charset_to_utf8("latin1", "\xe9", 1, &b), 0);
	assert_buf_eq(&b, "abé", "fits");
	buf_free(&b);
}

/* ---- RFC 2047 ---- */

static const struct {
	const char *in;
	const char *want;
} header_cases[] = {
    /* RFC 2047 section 8, every example */
    {"=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", "Keith Moore <moore@cs.utk.edu>"},
    {"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>", "Keld Jørn Simonsen <keld@dkuug.dk>"},
    {"=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
     "André Pirard <PIRARD@vm1.ulg.ac.be>"},
    {"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
     "    =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
     "If you can read this you understand the example."},
    {"=?ISO-8859-1?Q?Olle_J=E4rnefors?= <ojarnef@admin.kth.se>",
     "Olle Järnefors <ojarnef@admin.kth.se>"},
    {"ietf-822@dimacs.rutgers.edu, ojarnef@admin.kth.se",
     "ietf-822@dimacs.rutgers.edu, ojarnef@admin.kth.se"},
    {"Time for ISO 10646?", "Time for ISO 10646?"},
    {"Dave Crocker <dcrocker@mordor.stanford.edu>", "Dave Crocker <dcrocker@mordor.stanford.edu>"},
    {"=?ISO-8859-1?Q?Patrik_F=E4ltstr=F6m?= <paf@nada.kth.se>",
     "Patrik Fältström <paf@nada.kth.se>"},
    {"Re: RFC-HDR care and feeding", "Re: RFC-HDR care and feeding"},
    {"Nathaniel Borenstein <nsb@thumper.bellcore.com>\r\n"
     "    (=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)",
     "Nathaniel Borenstein <nsb@thumper.bellcore.com>    ("
     "\xd7\x9d\xd7\x95\xd7\x9c\xd7\xa9\x20\xd7\x9f\xd7\x91\x20\xd7\x99\xd7\x9c\xd7\x98\xd7\xa4"
     "\xd7\xa0)"},
    {"Greg Vaudreuil <gvaudre@NRI.Reston.VA.US>, Ned Freed\r\n   <ned@innosoft.com>",
     "Greg Vaudreuil <gvaudre@NRI.Reston.VA.US>, Ned Freed   <ned@innosoft.com>"},
    {"(=?ISO-8859-1?Q?a?=)", "(a)"},
    {"(=?ISO-8859-1?Q?a?= b)", "(a b)"},
    {"(a =?ISO-8859-1?Q?b?=)", "(a b)"},
    {"(a\r\n =?ISO-8859-1?Q?b?=)", "(a b)"},
    {"(=?ISO-8859-1?Q?a?=\r\n b)", "(a b)"},
    {"(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"},
    {"(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)"},
    {"(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"},
    {"(=?ISO-8859-1?Q?a_b?=)", "(a b)"},
    {"(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"},
    /* RFC 2231 section 5 language suffix */
    {"=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"},
    {"=?utf-8*de-DE?q?Gr=C3=BC=C3=9Fe?=", "Grüße"},
    /* case, encodings, other charsets */
    {"=?utf-8?b?w6k=?=", "é"},
    {"=?UTF-8?Q?=c3=a9t=C3=A9?=", "été"},
    {"=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "日本語"},
    {"=?koi8-r?b?8NLJ18XU?=", "Привет"},
    {"=?utf-8?q?"
     "?=x",
     "x"},
    /* a character split across two words in the same charset survives */
    {"=?UTF-8?B?4oI=?= =?UTF-8?B?rA==?=", "€"},
    {"=?UTF-8?Q?=E2=82?=\r\n =?utf-8?Q?=AC_!?=", "€ !"},
    /* but not across charsets */
    {"=?UTF-8?Q?=E2=82?= =?ISO-8859-1?Q?=AC?=", "\xef\xbf\xbd¬"},
    /* text around words keeps its white space */
    {"Hello  =?utf-8?q?W=C3=B6rld?= !", "Hello  Wörld !"},
    {"foo=?utf-8?q?bar?=baz", "foobarbaz"},
    {"\"=?utf-8?q?Jos=C3=A9?=\" <j@example.org>", "\"José\" <j@example.org>"},
    /* malformed words stay as they are */
    {"=?utf-8?q?broken", "=?utf-8?q?broken"},
    {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
    {"=?utf-8?b?w6k*?=", "=?utf-8?b?w6k*?="},
    {"=?utf-8?b?w=6k?=", "=?utf-8?b?w=6k?="},
    {"=?"
     "?q?a?=",
     "=?"
     "?q?a?="},
    {"=?utf-8?q?a b?=", "=?utf-8?q?a b?="},
    {"=?utf 8?q?ab?=", "=?utf 8?q?ab?="},
    {"=?=?utf-8?q?ok?=", "=?ok"},
    {"=?utf-8?q?a=zb=4?=", "a=zb=4"},
    {"a ?= b =? c", "a ?= b =? c"},
    /* an unknown charset decodes as "auto" */
    {"=?x-foo?q?caf=E9?=", "café"},
    /* raw 8-bit text: UTF-8 where valid, else Latin-1 / cp1252 */
    {"caf\xe9 \xc3\xa9t\xc3\xa9", "café été"},
    /* unfolding */
    {"a\r\n b", "a b"},
    {"a\r\n\tb", "a\tb"},
    {"a\n b\r\n", "a b"},
    {"a\r\nb", "a b"},
    {"", ""},
};

static void
test_decode_header(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(header_cases); i++) {
		struct buf b;
		buf_init(&b, 4096);
		assert_int_equal(
		    mailtext_decode_header(header_cases[i].in, strlen(header_cases[i].in), &b), 0);
		char what[64];
		snprintf(what, sizeof(what), "header case %zu", i);
		assert_buf_eq(&b, header_cases[i].want, what);
		buf_free(&b);
	}
}

static void
test_decode_header_cap(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_append_str(&b, "x"), 0);
	const char *h = "=?utf-8?q?=C3=A9=C3=A9=C3=A9=C3=A9?=";
	assert_int_equal(mailtext_decode_header(h, strlen(h), &b), -1);
	assert_buf_eq(&b, "x", "cap leaves out unchanged");
	buf_free(&b);
}

/* ---- i;unicode-casemap ---- */

static const struct {
	const char *in;
	const char *want;
} casemap_cases[] = {
    {"Hello, World 42", "HELLO, WORLD 42"},
    {"", ""},
    /* titlecase, not uppercase: U+01C4..U+01C6 map to U+01C5 "Dž",
     * whose NFKD is D, z, caron; the final titlecase gives D Z caron */
    {"ǆ", "DZ\xcc\x8c"},
    {"Ǆ", "DZ\xcc\x8c"},
    {"ǅ", "DZ\xcc\x8c"},
    {"dž", "DZ\xcc\x8c"},
    /* simple mappings: ß stays ß, U+1E9E has no titlecase mapping */
    {"Straße", "STRAßE"},
    {"ẞ", "ẞ"},
    /* NFKD: compatibility forms and decomposed accents */
    {"ＨＥＬＬＯ ｈｅｌｌｏ", "HELLO HELLO"},
    {"café", "CAFE\xcc\x81"},
    {"cafe\xcc\x81", "CAFE\xcc\x81"},
    {"ﬁle", "FILE"},
    {"㎏", "KG"},
    {"İi", "I\xcc\x87I"},
    {"ς σ Σ", "Σ Σ Σ"},
    {"ガ", "カ\xe3\x82\x99"},
    /* invalid UTF-8 is U+FFFD */
    {"a\xff"
     "b",
     "A\xef\xbf\xbd"
     "B"},
    {"\xe2\x82", "\xef\xbf\xbd"},
};

static void
test_casemap(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(casemap_cases); i++) {
		struct buf b, again;
		buf_init(&b, 1024);
		buf_init(&again, 1024);
		const char *in = casemap_cases[i].in;
		assert_int_equal(mailtext_casemap(in, strlen(in), &b), 0);
		char what[64];
		snprintf(what, sizeof(what), "casemap case %zu", i);
		assert_buf_eq(&b, casemap_cases[i].want, what);
		/* the canonical form is a fixed point */
		assert_int_equal(mailtext_casemap(buf_cstr(&b), b.len, &again), 0);
		assert_buf_eq(&again, casemap_cases[i].want, "idempotent");
		buf_free(&b);
		buf_free(&again);
	}
}

static const struct {
	const char *hay;
	const char *needle;
	int want;
} match_cases[] = {
    {"Hello World", "world", 1},
    {"Hello World", "WORLD!", 0},
    {"Hello World", "", 1},
    {"", "", 1},
    {"", "a", 0},
    {"Straße", "STRASSE", 0}, /* simple case mapping: no ß -> SS */
    {"STRAßE", "straße", 1},
    {"Straße", "strasse", 0},
    {"ẞ", "ß", 0},
    {"ＨＥＬＬＯ", "hello", 1}, /* fullwidth via NFKD */
    {"hello", "ｈｅｌｌｏ", 1},
    {"Café crème", "CAFÉ", 1},
    {"cafe\xcc\x81", "café", 1},
    {"café", "cafe", 1}, /* NFKD: base letters match inside É */
    {"Σίσυφος", "ΣΊΣΥΦΟΣ", 1},
    {"ǆungla", "Džungla", 1},
    {"ﬁnancial report", "FINANCIAL", 1},
    {"10 ㎏", "kg", 1},
    {"日本語のテキスト", "テキスト", 1},
    {"日本語", "中文", 0},
};

static void
test_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(match_cases); i++) {
		int r = mailtext_match(match_cases[i].hay, strlen(match_cases[i].hay),
				       match_cases[i].needle, strlen(match_cases[i].needle));
		if (r != match_cases[i].want) {
			print_error("match case %zu: %d\n", i, r);
			fail();
		}
	}
	assert_true(mailtext_contains("ABC", 3, "", 0));
	assert_true(mailtext_contains("ABC", 3, "BC", 2));
	assert_false(mailtext_contains("ABC", 3, "ABCD", 4));
	assert_false(mailtext_contains("", 0, "A", 1));
}

static void
test_casemap_cap(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 5);
	assert_int_equal(buf_append_str(&b, "x"), 0);
	assert_int_equal(mailtext_casemap("hello", 5, &b), -1);
	assert_int_equal(mailtext_casemap("café", strlen("café"), &b), -1);
	assert_buf_eq(&b, "x", "cap leaves out unchanged");
	assert_int_equal(mailtext_casemap("abcd", 4, &b), 0);
	assert_buf_eq(&b, "xABCD", "fits");
	buf_free(&b);
}

/* ---- RFC 5256 base subject ---- */

static const struct {
	const char *in;
	const char *want;
	bool reply;
} subject_cases[] = {
    /* (1) collapse, (2) "(fwd)", (3) "Re:", (6) "[fwd: ...]", again (3) */
    {"Re: [fwd: Re:  Hello]  (fwd)", "Hello", true},
    {"Hello", "Hello", false},
    {"", "", false},
    {"Re: Hello", "Hello", true},
    {"RE: re: Fwd: hello", "hello", true},
    {"FW: hello", "hello", true},
    {"Fwd : hello", "hello", true},
    {"Fwd:Re:Fw: x", "x", true},
    {"Re[2]: hello", "hello", true},
    {"Re [2]: hello", "hello", true},
    {"[list] Re: hello", "hello", true},
    {"[a][b] Re: hello", "hello", true},
    {"[list] hello", "hello", false},
    {"[a][b] x", "x", false},
    {"[a] [b]", "[b]", false},
    {"[list]", "[list]", false},
    {"hello (fwd)", "hello", true},
    {"hello (FWD) (fwd)  ", "hello", true},
    {"(fwd)", "", true},
    {"Re:", "", true},
    {"re: re", "re", true},
    {"Ref: hello", "Ref: hello", false},
    {"Reply: hello", "Reply: hello", false},
    {"  hello \t  world\t ", "hello world", false},
    {"hello\r\n world", "hello world", false},
    {"[fwd: hello]", "hello", true},
    {"[FWD: Re: [list] hi (fwd)]", "hi", true},
    {"[fwd: x] y", "y", false},
    {"[fwd: [fwd: nested]]", "nested", true},
    {"Re: [fwd: ]", "", true}, /* the wrapper goes, then the blank */
    {"[Liste-Café] Re: Grüße", "Grüße", true},
    {"Re:Re:Re:", "", true},
    {"hello(fwd)", "hello", true},
    {"[unclosed Re: x", "[unclosed Re: x", false},
};

static void
test_base_subject(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(subject_cases); i++) {
		struct buf b;
		buf_init(&b, 1024);
		bool reply = !subject_cases[i].reply;
		assert_int_equal(mailtext_base_subject(subject_cases[i].in,
						       strlen(subject_cases[i].in), &b, &reply),
				 0);
		char what[64];
		snprintf(what, sizeof(what), "subject case %zu", i);
		assert_buf_eq(&b, subject_cases[i].want, what);
		if (reply != subject_cases[i].reply) {
			print_error("subject case %zu: reply %d\n", i, reply);
			fail();
		}
		buf_free(&b);
	}
	struct buf b;
	buf_init(&b, 3);
	assert_int_equal(mailtext_base_subject("Re: hello", 9, &b, NULL), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* ---- body text ---- */

/* Decodes in with the given chunk size (0 = whole); returns the rc of
 * finish, the text in out. */
static int
body_run(const char *ct, const char *cs, const char *te, const char *in, size_t len, size_t chunk,
	 struct buf *out)
{
	struct arena *a = arena_new(0);
	struct mailtext_body *b = mailtext_body_new(a, ct, cs, te, out);
	int frc = 0;
	if (chunk == 0)
		chunk = len > 0 ? len : 1;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		if (mailtext_body_feed(b, in + off, n) < 0)
			frc = -1;
	}
	int rc = mailtext_body_finish(b);
	assert_int_equal(rc, frc == 0 ? rc : -1);
	arena_destroy(&a);
	return rc;
}

static const struct {
	const char *ct, *cs, *te;
	const char *in;
	const char *want;
} body_cases[] = {
    /* quoted-printable */
    {"text/plain", "utf-8", "quoted-printable",
     "caf=C3=A9 soft=\r\nbreak =3D done  \r\nline2\t\r\nend",
     "café softbreak = done\r\nline2\r\nend"},
    {"text/plain", "utf-8", "Quoted-Printable", "lower =c3=a9 bad =ZZ =4", "lower é bad =ZZ =4"},
    {"text/plain", NULL, "quoted-printable", "a=\nb= \t\r\nc=  \nd", "abcd"},
    {"text/plain", NULL, "quoted-printable", "a = b\n=\r", "a = b\n"},
    {"text/plain", NULL, "quoted-printable", "trail   \nx\t \r\ny  ", "trail\nx\r\ny"},
    {"text/plain", NULL, "quoted-printable", "cr\rx=\rq", "cr\rx=\rq"},
    {"text/plain", NULL, "quoted-printable", "x=", "x"},
    {"text/plain", "iso-8859-1", "quoted-printable", "Gr=FC=DFe =80", "Grüße €"},
    /* base64: line breaks and garbage skipped, padding restarts */
    {"text/plain", "utf-8", "base64", "SGVs\r\nbG8g\r\nV29y bGQ=\r\n", "Hello World"},
    {"text/plain", "utf-8", "base64", "SG!!Vs*bG8=", "Hello"},
    {"text/plain", "utf-8", "base64", "SGk=SGk=", "HiHi"},
    {"text/plain", "utf-8", "base64", "SGk", "Hi"},
    {"text/plain", "utf-8", "base64", "4oKs", "€"},
    {"text/plain", "iso-8859-1", "base64", "Y2Fm6Q==", "café"},
    {"text/plain", "Shift_JIS", "base64", "k/qWe4zqg2WDTINYg2c=", "日本語テキスト"},
    {"text/plain", "ISO-2022-JP", "7bit",
     "\x1b\x24\x42\x46\x7c\x4b\x5c\x38\x6c\x24\x47\x24\x39\x1b\x28\x42 ok", "日本語です ok"},
    {"text/plain", "koi8-r", "8bit", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"},
    {"text/plain", "utf-8", NULL, "bad \xff and cut \xe2\x82",
     "bad \xef\xbf\xbd and cut \xef\xbf\xbd"},
    {"text/plain", NULL, NULL, "auto caf\xe9 caf\xc3\xa9", "auto café café"},
    {"text/plain", NULL, "x-uuencode", "begin 644", "begin 644"},
    {"text/plain", NULL, NULL, "nul\0", "nul "},
    /* HTML */
    {"text/html", "utf-8", NULL,
     "<html><head><title>T</title><style>p{color:red}</style>"
     "<script type=\"text/javascript\">if(a<b)x='</p>';</script></head>"
     "<body><p>Hello&nbsp;<b>W</b>orld &amp; caf&eacute; &#233;&#xE9; &lt;tag&gt;</p>"
     "<br>Next<!-- comment > still --> line &unknown; a < b &copy</body></html>",
     "T Hello World & café éé <tag> Next line &unknown; a < b &copy"},
    {"text/html; charset=utf-8", "utf-8", NULL, "<p>  a \n\n b  </p>  <p>c</p>\n", "a b c"},
    {"TEXT/HTML", NULL, NULL, "<a title=\"x>y\" href='z'>link</a><img alt=\">\">!", "link !"},
    {"text/html", NULL, NULL, "&#150; &#x2014; &#0; &#xD800; &#99999999999; &#; &# x",
     "– — \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd &#; &# x"},
    {"text/html", NULL, NULL, "&amp &lt 3 &copy; &Eacute;t&eacute;&hellip;", "& < 3 © Été…"},
    {"text/html", NULL, NULL, "<!DOCTYPE html><?xml x?>a<!>b<!-x->c", "abc"},
    {"text/html", NULL, NULL, "<STYLE>x</STYLE >y<ScRiPt>z</sCrIpT>w", "y w"},
    {"text/html", NULL, NULL, "<script>never closed", ""},
    {"text/html", NULL, NULL, "tail <", "tail <"},
    {"text/html", NULL, NULL, "tail &eacute", "tail &eacute"},
    {"text/html", "iso-8859-1", "quoted-printable", "<p>caf=E9 =\r\n<b>cr=E8me</b></p>",
     "café crème"},
    {"text/html", "utf-8", "base64", "PHA+SGVsbG8gPGk+V29ybGQ8L2k+PC9wPg==", "Hello World"},
    {"text/html", NULL, NULL, "<div>one</div><div>two</div><span>th</span>ree", "one two three"},
};

static const size_t chunkings[] = {0, 1, 2, 3, 5, 7, 13, 64};

static void
test_body(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(body_cases); i++) {
		const char *in = body_cases[i].in;
		size_t len = strlen(in);
		if (strcmp(in, "nul") == 0)
			len = 4;
		for (size_t c = 0; c < N_ELEM(chunkings); c++) {
			struct buf out;
			buf_init(&out, 4096);
			assert_int_equal(body_run(body_cases[i].ct, body_cases[i].cs,
						  body_cases[i].te, in, len, chunkings[c], &out),
					 0);
			char what[64];
			snprintf(what, sizeof(what), "body case %zu chunk %zu", i, chunkings[c]);
			assert_buf_eq(&out, body_cases[i].want, what);
			buf_free(&out);
		}
	}
}

/* The cap cuts the text at a character boundary, the same way for any
 * chunking. */
static void
test_body_cap(void **state)
{
	(void)state;
	const char *in = "<p>éééééééééé</p>";
	for (size_t cap = 0; cap < 24; cap++) {
		struct buf whole, bytes;
		buf_init(&whole, cap);
		buf_init(&bytes, cap);
		int r1 = body_run("text/html", "utf-8", "8bit", in, strlen(in), 0, &whole);
		int r2 = body_run("text/html", "utf-8", "8bit", in, strlen(in), 1, &bytes);
		assert_int_equal(r1, r2);
		assert_int_equal(r1, cap >= 20 ? 0 : -1);
		assert_int_equal(whole.len, (cap / 2) * 2 > 20 ? 20 : (cap / 2) * 2);
		assert_int_equal(whole.len, bytes.len);
		assert_memory_equal(buf_cstr(&whole), buf_cstr(&bytes), whole.len);
		buf_free(&whole);
		buf_free(&bytes);
	}
	/* later feeds are no-ops; finish reports the cut */
	struct arena *a = arena_new(0);
	struct buf out;
	buf_init(&out, 3);
	struct mailtext_body *b = mailtext_body_new(a, "text/plain", "utf-8", NULL, &out);
	assert_int_equal(mailtext_body_feed(b, "abc", 3), 0);
	assert_int_equal(mailtext_body_feed(b, "d", 1), -1);
	assert_int_equal(mailtext_body_feed(b, "e", 1), -1);
	assert_int_equal(mailtext_body_finish(b), -1);
	assert_int_equal(mailtext_body_finish(b), -1);
	assert_buf_eq(&out, "abc", "capped");
	buf_free(&out);
	/* an iconv decoder abandoned mid-way is released by finish */
	buf_init(&out, 100);
	b = mailtext_body_new(a, "text/plain", "Shift_JIS", "base64", &out);
	assert_int_equal(mailtext_body_feed(b, "k/qW", 4), 0);
	assert_int_equal(mailtext_body_finish(b), 0);
	assert_buf_eq(&out, "日\xef\xbf\xbd", "cut Shift_JIS");
	buf_free(&out);
	arena_destroy(&a);
}

/* ---- tokeniser ---- */

struct toks {
	char all[1024];
	size_t n;
};

static void
tok_cb(void *arg, const char *tok, size_t len)
{
	struct toks *t = arg;
	size_t used = strlen(t->all);
	assert_true(used + len + 2 < sizeof(t->all));
	assert_true(len > 0 && len <= MAILTEXT_TOKEN_MAX);
	memcpy(t->all + used, tok, len);
	t->all[used + len] = '|';
	t->all[used + len + 1] = '\0';
	t->n++;
}

static const struct {
	const char *in; /* raw text: canonicalised first */
	const char *want;
	size_t n;
} token_cases[] = {
    {"Hello, world! a b 42 x1 7", "HELLO|WORLD|42|X1|", 4},
    {"", "", 0},
    {"café naïve é", "CAFE\xcc\x81|NAI\xcc\x88VE|", 2},
    {"e-mail O'Brien foo_bar", "MAIL|BRIEN|FOO|BAR|", 4},
    {"日本語", "日本|本語|", 2},
    {"日", "日|", 1},
    {"abc日本 x", "ABC|日本|", 2},
    {"ガギ", "カ\xe3\x82\x99キ\xe3\x82\x99|", 1},
    {"ＡＢＣ１２", "ABC12|", 1},
    {"AB\xff"
     "CD",
     "AB|CD|", 2},
};

static void
test_tokens(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEM(token_cases); i++) {
		struct buf c;
		buf_init(&c, 4096);
		assert_int_equal(mailtext_casemap(token_cases[i].in, strlen(token_cases[i].in), &c),
				 0);
		struct toks t = {.all = "", .n = 0};
		size_t n = mailtext_tokens(buf_cstr(&c), c.len, tok_cb, &t);
		if (strcmp(t.all, token_cases[i].want) != 0 || n != token_cases[i].n || t.n != n) {
			print_error("token case %zu: got \"%s\" (%zu)\n", i, t.all, n);
			fail();
		}
		buf_free(&c);
	}
	/* long words: the first 64 bytes, cut at a character boundary */
	struct buf w;
	buf_init(&w, 4096);
	for (int i = 0; i < 81; i++)
		assert_int_equal(buf_append_str(&w, "A"), 0);
	assert_int_equal(buf_append_str(&w, " end ЖЖ "), 0);
	for (int i = 0; i < 40; i++) /* 80 bytes of two-byte letters */
		assert_int_equal(buf_append_str(&w, "Ж"), 0);
	struct toks lt = {.all = "", .n = 0};
	assert_int_equal(mailtext_tokens(buf_cstr(&w), w.len, tok_cb, &lt), 4);
	const char *p = lt.all;
	assert_int_equal(strcspn(p, "|"), 64);
	assert_memory_equal(p, buf_cstr(&w), 64);
	p += 65;
	assert_memory_equal(p, "end|ЖЖ|", strlen("end|ЖЖ|"));
	p += strlen("end|ЖЖ|");
	assert_int_equal(strcspn(p, "|"), 64);
	assert_memory_equal(p, "ЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ", 64);
	buf_free(&w);
	/* invalid bytes in "canonical" text are separators, never a crash */
	struct toks t = {.all = "", .n = 0};
	assert_int_equal(mailtext_tokens("AB\xe2\x82", 4, tok_cb, &t), 1);
	assert_string_equal(t.all, "AB|");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_charset),	  cmocka_unit_test(test_charset_cap),
	    cmocka_unit_test(test_decode_header), cmocka_unit_test(test_decode_header_cap),
	    cmocka_unit_test(test_casemap),	  cmocka_unit_test(test_match),
	    cmocka_unit_test(test_casemap_cap),	  cmocka_unit_test(test_base_subject),
	    cmocka_unit_test(test_body),	  cmocka_unit_test(test_body_cap),
	    cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
