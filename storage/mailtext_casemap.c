/*
 * mailtext_casemap.c - the i;unicode-casemap collation (RFC 5051) for
 * SEARCH and SORT, and the full-text index tokeniser. Invalid UTF-8 is
 * taken as U+FFFD; the only failure is the output cap (or the 64 MiB
 * bound of mailtext_match), with the output left as it was.
 */
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "storage/mailtext.h"
#include "storage/mailtext_internal.h"

#define MATCH_CANON_MAX (64u * 1024u * 1024u)

/* Next code point of s[0..n) (n > 0); invalid -> U+FFFD over the
 * maximal ill-formed subpart. Returns its length (>= 1). */
static size_t
next_cp(const uint8_t *s, size_t n, ucs4_t *cp)
{
	int r = u8_mbtoucr(cp, s, n);
	if (r > 0)
		return (size_t)r;
	*cp = 0xfffd;
	if (r == -2)
		return n; /* truncated at the end */
	size_t k = n < 3 ? n : 3;
	for (; k >= 2; k--) {
		ucs4_t dummy;
		if (u8_mbtoucr(&dummy, s, k) == -2)
			return k;
	}
	return 1;
}

static int
casemap_ascii(const char *s, size_t len, struct buf *out)
{
	char *d = buf_reserve(out, len);
	if (d == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		d[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
	}
	buf_commit(out, len);
	return 0;
}

int
mailtext_casemap(const char *utf8, size_t len, struct buf *out)
{
	size_t i;
	for (i = 0; i < len && (unsigned char)utf8[i] < 0x80; i++)
		;
	if (i == len) /* ASCII: titlecase is upper case, NFKD is identity */
		return casemap_ascii(utf8, len, out);

	/* 1: simple titlecase mapping of each character */
	struct buf t;
	buf_init(&t, (size_t)-2);
	const uint8_t *s = (const uint8_t *)utf8;
	for (i = 0; i < len;) {
		ucs4_t cp;
		i += next_cp(s + i, len - i, &cp);
		if (mt_emit_buf(&t, uc_totitle(cp)) < 0) {
			buf_free(&t);
			return -1;
		}
	}
	/* 2: NFKD (full decomposition and canonical ordering) */
	size_t nlen = 0;
	uint8_t *nfkd =
	    u8_normalize(UNINORM_NFKD, (const uint8_t *)buf_cstr(&t), t.len, NULL, &nlen);
	buf_free(&t);
	if (nfkd == NULL)
		return -1;
	/* 3: titlecase again: a decomposition can yield lowercase letters */
	size_t start = out->len;
	int rc = 0;
	for (i = 0; i < nlen;) {
		ucs4_t cp;
		i += next_cp(nfkd + i, nlen - i, &cp);
		if (mt_emit_buf(out, uc_totitle(cp)) < 0) {
			mt_buf_truncate(out, start);
			rc = -1;
			break;
		}
	}
	free(nfkd);
	return rc;
}

bool
mailtext_contains(const char *haystack_canon, size_t hlen, const char *needle_canon, size_t nlen)
{
	if (nlen == 0)
		return true;
	if (nlen > hlen)
		return false;
	/* UTF-8 is self-synchronising: a match of a valid needle starts and
	 * ends on character boundaries */
	return memmem(haystack_canon, hlen, needle_canon, nlen) != NULL;
}

int
mailtext_match(const char *haystack, size_t hlen, const char *needle, size_t nlen)
{
	struct buf h, n;
	buf_init(&h, MATCH_CANON_MAX);
	buf_init(&n, MATCH_CANON_MAX);
	int rc = -1;
	if (mailtext_casemap(haystack, hlen, &h) == 0 && mailtext_casemap(needle, nlen, &n) == 0)
		rc = mailtext_contains(buf_cstr(&h), h.len, buf_cstr(&n), n.len) ? 1 : 0;
	buf_free(&h);
	buf_free(&n);
	return rc;
}

/* ---- tokeniser ---- */

/* Scripts written without spaces between words: indexed as pairs. */
static bool
is_cjk(ucs4_t cp)
{
	return uc_is_property_ideographic(cp) || (cp >= 0x3040 && cp <= 0x30ff) ||
	       (cp >= 0x31f0 && cp <= 0x31ff);
}

static bool
is_mark(ucs4_t cp)
{
	return uc_is_general_category(cp, UC_CATEGORY_M);
}

/* End of the character at i plus the combining marks after it. */
static size_t
unit_end(const uint8_t *s, size_t len, size_t i)
{
	ucs4_t cp;
	i += next_cp(s + i, len - i, &cp);
	while (i < len) {
		size_t l = next_cp(s + i, len - i, &cp);
		if (!is_mark(cp))
			break;
		i += l;
	}
	return i;
}

/* The longest prefix of [a, b) of at most MAILTEXT_TOKEN_MAX bytes that
 * ends on a character boundary. */
static size_t
cut_len(const uint8_t *s, size_t a, size_t b)
{
	if (b - a <= MAILTEXT_TOKEN_MAX)
		return b - a;
	size_t e = a + MAILTEXT_TOKEN_MAX;
	while (e > a && (s[e] & 0xc0) == 0x80)
		e--;
	return e - a;
}

size_t
mailtext_tokens(const char *canon_utf8, size_t len,
		void (*fn)(void *arg, const char *tok, size_t toklen), void *arg)
{
	const uint8_t *s = (const uint8_t *)canon_utf8;
	size_t count = 0;
	size_t i = 0;
	while (i < len) {
		ucs4_t cp;
		size_t l = next_cp(s + i, len - i, &cp);
		if (!uc_is_alnum(cp)) {
			i += l;
			continue;
		}
		if (is_cjk(cp)) {
			/* overlapping pairs of units over the run */
			size_t prev = i;
			size_t prev_end = unit_end(s, len, i);
			size_t j = prev_end;
			bool paired = false;
			for (;;) {
				if (j >= len)
					break;
				next_cp(s + j, len - j, &cp);
				if (!uc_is_alnum(cp) || !is_cjk(cp))
					break;
				size_t e = unit_end(s, len, j);
				fn(arg, canon_utf8 + prev, cut_len(s, prev, e));
				count++;
				paired = true;
				prev = j;
				j = e;
			}
			if (!paired) {
				fn(arg, canon_utf8 + prev, cut_len(s, prev, prev_end));
				count++;
			}
			i = j;
			continue;
		}
		/* an ordinary word: letters, digits and their marks */
		size_t start = i, units = 0;
		while (i < len) {
			l = next_cp(s + i, len - i, &cp);
			if (uc_is_alnum(cp) && !is_cjk(cp))
				units++;
			else if (!is_mark(cp))
				break;
			i += l;
		}
		if (units >= 2) {
			fn(arg, canon_utf8 + start, cut_len(s, start, i));
			count++;
		}
	}
	return count;
}
