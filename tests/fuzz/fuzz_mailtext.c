/*
 * fuzz_mailtext.c - libFuzzer target for storage/mailtext*.c: arbitrary
 * bytes through every function. Checks: output is always valid UTF-8;
 * the casemap form is a fixed point and contains itself; the base subject
 * is a piece of its input; tokens are slices of at most 64 bytes; the
 * body decoder gives the same text (and the same cap result) whole and in
 * a chunking taken from the input, for each transfer encoding, with
 * charsets built in and from iconv, plain and HTML.
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_mailtext.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <unistr.h>

#include "core/arena.h"
#include "core/buf.h"
#include "storage/mailtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (1u << 20)

static const char *const charsets[] = {
    NULL,     "utf-8",	"iso-8859-1", "us-ascii", "Shift_JIS", "ISO-2022-JP",
    "koi8-r", "gb2312", "UTF-16",     "UTF-7",	  "big5",      "euc-kr",
};
static const char *const encodings[] = {NULL, "base64", "quoted-printable", "8bit"};
static const char *const types[] = {"text/plain", "text/html"};

static void
check_utf8(const struct buf *b)
{
	assert(u8_check((const uint8_t *)buf_cstr(b), b->len) == NULL);
}

struct tok_ctx {
	const char *base;
	size_t len;
	size_t n;
};

static void
tok_cb(void *arg, const char *tok, size_t len)
{
	struct tok_ctx *t = arg;
	assert(len > 0 && len <= MAILTEXT_TOKEN_MAX);
	assert(tok >= t->base && tok + len <= t->base + t->len);
	t->n++;
}

static int
body(const char *ct, const char *cs, const char *te, const char *in, size_t len, unsigned seed,
     size_t cap, struct buf *out)
{
	struct arena *a = arena_new(0);
	buf_init(out, cap);
	struct mailtext_body *b = mailtext_body_new(a, ct, cs, te, out);
	size_t off = 0;
	while (off < len) {
		size_t n = seed == 0 ? len - off : (seed = seed * 1103515245u + 12345u) >> 16 & 31;
		if (n == 0)
			n = 1;
		if (n > len - off)
			n = len - off;
		(void)mailtext_body_feed(b, in + off, n);
		off += n;
	}
	int rc = mailtext_body_finish(b);
	arena_destroy(&a);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned pick = data[0];
	unsigned seed = data[1] | 1u;
	const char *in = (const char *)data + 2;
	size_t len = size - 2;
	const char *cs = charsets[pick % (sizeof(charsets) / sizeof(charsets[0]))];

	struct buf conv, hdr, canon, again, subj;
	buf_init(&conv, OUT_MAX);
	assert(mailtext_charset_to_utf8(cs, in, len, &conv) == 0);
	check_utf8(&conv);

	buf_init(&hdr, OUT_MAX);
	assert(mailtext_decode_header(in, len, &hdr) == 0);
	check_utf8(&hdr);

	buf_init(&canon, OUT_MAX);
	buf_init(&again, OUT_MAX);
	if (mailtext_casemap(in, len, &canon) == 0) {
		check_utf8(&canon);
		assert(mailtext_casemap(buf_cstr(&canon), canon.len, &again) == 0);
		assert(again.len == canon.len &&
		       memcmp(buf_cstr(&again), buf_cstr(&canon), canon.len) == 0);
		assert(mailtext_contains(buf_cstr(&canon), canon.len, buf_cstr(&canon), canon.len));
		struct tok_ctx t = {buf_cstr(&canon), canon.len, 0};
		assert(mailtext_tokens(buf_cstr(&canon), canon.len, tok_cb, &t) == t.n);
		size_t half = len / 2;
		int m = mailtext_match(in, len, in + half, len - half);
		assert(m == 0 || m == 1);
	}

	bool reply;
	buf_init(&subj, OUT_MAX);
	assert(mailtext_base_subject(buf_cstr(&hdr), hdr.len, &subj, &reply) == 0);
	assert(subj.len <= hdr.len);
	check_utf8(&subj);

	/* body: whole vs chunked, with and without a tight cap */
	const char *te = encodings[(pick >> 4) % 4];
	const char *ct = types[(pick >> 6) & 1];
	size_t cap = (pick & 8) ? (size_t)data[1] : OUT_MAX;
	struct buf whole, parts;
	int r1 = body(ct, cs, te, in, len, 0, cap, &whole);
	int r2 = body(ct, cs, te, in, len, seed, cap, &parts);
	assert(r1 == r2);
	assert(whole.len == parts.len &&
	       memcmp(buf_cstr(&whole), buf_cstr(&parts), whole.len) == 0);
	check_utf8(&whole);
	assert(whole.len <= cap);

	buf_free(&conv);
	buf_free(&hdr);
	buf_free(&canon);
	buf_free(&again);
	buf_free(&subj);
	buf_free(&whole);
	buf_free(&parts);
	return 0;
}
