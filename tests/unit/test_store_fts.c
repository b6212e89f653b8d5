/*
 * test_store_fts.c - the pure parts of the full-text index: trigram
 * extraction (store_fts_grams: distinct, sorted, byte windows of UTF-8),
 * posting-list intersection, and the shared text extraction
 * (mailtext_msg_body / mailtext_header_canon) the index and the scan both
 * read: HTML stripped, charsets and transfer encodings decoded, binary
 * attachments skipped, attached messages' headers included.
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
#include "storage/mailtext.h"
#include "storage/mime.h"
#include "storage/store_internal.h"

static uint32_t
gram(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static void
test_grams(void **state)
{
	uint32_t g[32];
	(void)state;

	assert_int_equal(store_fts_grams("ab", 2, g), 0);
	/* "abcabc": abc, bca, cab, abc -> 3 distinct, sorted */
	assert_int_equal(store_fts_grams("abcabc", 6, g), 3);
	assert_int_equal(g[0], gram("abc"));
	assert_int_equal(g[1], gram("bca"));
	assert_int_equal(g[2], gram("cab"));
	/* UTF-8 bytes: "é" is 2 bytes, so "aé" is one gram */
	assert_int_equal(store_fts_grams("a\xc3\xa9", 3, g), 1);
	assert_int_equal(g[0], gram("a\xc3\xa9"));
	/* every window of a needle is a window of a text holding it */
	const char *text = "the quick brown fox", *needle = "ck bro";
	uint32_t tg[32], ng[32];
	size_t nt = store_fts_grams(text, strlen(text), tg);
	size_t nn = store_fts_grams(needle, strlen(needle), ng);
	assert_int_equal(store_fts_intersect(ng, nn, tg, nt), nn);
}

static void
test_intersect(void **state)
{
	uint32_t a[] = {1, 3, 5, 7, 9, 11};
	uint32_t b[] = {2, 3, 4, 9, 11, 12};
	uint32_t c[] = {100};
	(void)state;

	assert_int_equal(store_fts_intersect(a, 6, b, 6), 3);
	assert_int_equal(a[0], 3);
	assert_int_equal(a[1], 9);
	assert_int_equal(a[2], 11);
	assert_int_equal(store_fts_intersect(a, 3, c, 1), 0);
	assert_int_equal(store_fts_intersect(a, 0, b, 6), 0);
}

struct mem {
	const char *p;
	size_t len;
};

static int
mem_read(void *arg, uint64_t off, uint64_t len, struct buf *out)
{
	struct mem *m = arg;
	if (off >= m->len)
		return 0;
	if (len > m->len - off)
		len = m->len - off;
	return buf_append(out, m->p + off, (size_t)len) < 0 ? -1 : 0;
}

static void
body_text(const char *msg, struct buf *canon)
{
	struct arena *a = arena_new(0);
	struct mime_part *root;
	struct buf enc;
	struct mem m = {msg, strlen(msg)};

	buf_init(&enc, 1u << 20);
	mime_parse(a, NULL, msg, strlen(msg), &root);
	assert_int_equal(mime_encode(root, &enc), 0);
	mailtext_msg_body(enc.data, enc.len, 0, mem_read, &m, a, canon);
	buf_free(&enc);
	arena_destroy(&a);
}

static void
test_msg_body(void **state)
{
	struct buf c;
	(void)state;

	const char *msg = "Subject: x\r\nMIME-Version: 1.0\r\n"
			  "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			  "--b\r\nContent-Type: text/html; charset=utf-8\r\n"
			  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			  "<p>Split<b>Word</b> &eacute;t=C3=A9<style>hidden</style></p>\r\n"
			  "--b\r\nContent-Type: text/plain; charset=koi8-r\r\n"
			  "Content-Transfer-Encoding: base64\r\n\r\n"
			  "0NLJ18XU\r\n" /* "привет" in KOI8-R */
			  "--b\r\nContent-Type: application/octet-stream\r\n\r\nbinaryword\r\n"
			  "--b\r\nContent-Type: message/rfc822\r\n\r\n"
			  "Subject: InnerSubject\r\n\r\ninner body\r\n"
			  "--b--\r\n";
	buf_init(&c, 1u << 20);
	body_text(msg, &c);
	const char *t = buf_cstr(&c);
	struct buf n;
	buf_init(&n, 1024);
	/* canonical forms: compare through the same casemap */
	static const char *in[] = {"splitword", "ÉTÉ", "ПРИВЕТ", "innersubject", "inner body"};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		buf_reset(&n);
		assert_int_equal(mailtext_casemap(in[i], strlen(in[i]), &n), 0);
		assert_true(mailtext_contains(t, c.len, buf_cstr(&n), n.len));
	}
	static const char *out[] = {"binaryword", "hidden", "<b>", "x\r\n"};
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		buf_reset(&n);
		assert_int_equal(mailtext_casemap(out[i], strlen(out[i]), &n), 0);
		assert_false(mailtext_contains(t, c.len, buf_cstr(&n), n.len));
	}
	buf_free(&n);
	buf_free(&c);
}

static void
test_header_canon(void **state)
{
	struct buf c, n;
	(void)state;
	const char *h = "Subject: =?ISO-8859-1?Q?Caf=E9?=\r\n folded\r\nFrom: a@b\r\n";

	buf_init(&c, 4096);
	buf_init(&n, 64);
	mailtext_header_canon(h, strlen(h), &c);
	assert_int_equal(mailtext_casemap("CAFÉ FOLDED", 12, &n), 0);
	assert_true(mailtext_contains(buf_cstr(&c), c.len, buf_cstr(&n), n.len));
	buf_free(&c);
	buf_free(&n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grams),
	    cmocka_unit_test(test_intersect),
	    cmocka_unit_test(test_msg_body),
	    cmocka_unit_test(test_header_canon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
