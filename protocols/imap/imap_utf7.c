/*
 * imap_utf7.c - modified UTF-7 (RFC 3501 section 5.1.3) and a strict
 * UTF-8 decoder (see imap_utf7.h).
 *
 * Modified UTF-7: printable ASCII 0x20-0x7e other than "&" stands for
 * itself; "&-" is "&"; anything else is UTF-16BE in base64 (with ","
 * for "/") between "&" and "-". Failure: every function returns -1 (or
 * false) on input that is not the canonical form, and leaves out as it
 * was; nothing here can crash on any input.
 */
#include "imap_utf7.h"

#include <string.h>

#include "core/buf.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

size_t
imap_utf8_decode(const char *s, size_t len, uint32_t *cp_r)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp, min;
	size_t n;

	if (len == 0)
		return 0;
	if (u[0] < 0x80) {
		*cp_r = u[0];
		return 1;
	}
	if (u[0] >= 0xc2 && u[0] <= 0xdf) {
		n = 2;
		cp = u[0] & 0x1f;
		min = 0x80;
	} else if (u[0] >= 0xe0 && u[0] <= 0xef) {
		n = 3;
		cp = u[0] & 0x0f;
		min = 0x800;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		n = 4;
		cp = u[0] & 0x07;
		min = 0x10000;
	} else {
		return 0; /* continuation byte, or 0xc0/0xc1/0xf5+ (never valid) */
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (u[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

static int
put_utf8(struct buf *out, uint32_t cp)
{
	char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		s[0] = (char)(0xf0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return out == NULL ? 0 : buf_append(out, s, n);
}

/* Puts out back as it was before a failed conversion. */
static int
undo(struct buf *out, size_t len)
{
	if (out != NULL && out->data != NULL) {
		out->len = len;
		out->data[len] = '\0';
	}
	return -1;
}

/* Decodes one shifted run in[0..len) (between "&" and "-", not empty).
 * out may be NULL (validation only). */
static int
decode_shift(const char *in, size_t len, struct buf *out)
{
	uint32_t bits = 0;
	unsigned nbits = 0;
	uint32_t high = 0; /* a pending high surrogate */

	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t unit = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (high != 0) {
			if (unit < 0xdc00 || unit > 0xdfff)
				return -1;
			uint32_t cp = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
			high = 0;
			if (put_utf8(out, cp) < 0)
				return -1;
			continue;
		}
		if (unit >= 0xd800 && unit <= 0xdbff) {
			high = unit;
			continue;
		}
		if (unit >= 0xdc00 && unit <= 0xdfff)
			return -1;
		/* Printable ASCII must stand for itself; NUL has no place in a
		 * name. Other controls are legal (and only encodable here). */
		if (unit == 0 || (unit >= 0x20 && unit <= 0x7e))
			return -1;
		if (put_utf8(out, unit) < 0)
			return -1;
	}
	/* Canonical: the leftover is padding of fewer than 6 bits, all 0. */
	if (high != 0 || nbits >= 6 || bits != 0)
		return -1;
	return 0;
}

static int
utf7_decode(const char *in, size_t len, struct buf *out)
{
	size_t start = out != NULL ? out->len : 0;
	size_t i = 0;
	bool after_shift = false;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c > 0x7e)
			return undo(out, start);
		if (c != '&') {
			if (out != NULL && buf_putc(out, (char)c) < 0)
				return undo(out, start);
			after_shift = false;
			i++;
			continue;
		}
		const char *end = memchr(in + i + 1, '-', len - i - 1);
		if (end == NULL)
			return undo(out, start); /* unterminated shift */
		size_t n = (size_t)(end - (in + i + 1));
		if (n == 0) {
			if (out != NULL && buf_putc(out, '&') < 0)
				return undo(out, start);
			after_shift = false;
		} else {
			/* Two shifts in a row would be one in canonical form. */
			if (after_shift || decode_shift(in + i + 1, n, out) < 0)
				return undo(out, start);
			after_shift = true;
		}
		i += n + 2;
	}
	return 0;
}

int
imap_utf7_to_utf8(const char *in, size_t len, struct buf *out)
{
	return utf7_decode(in, len, out);
}

bool
imap_utf7_is_valid(const char *in, size_t len)
{
	return utf7_decode(in, len, NULL) == 0;
}

/* Appends the UTF-16 unit to the pending base64 bits, writing out every
 * complete sextet. */
static int
put_unit(struct buf *out, uint32_t unit, uint32_t *bits, unsigned *nbits)
{
	*bits = (*bits << 16) | unit;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		if (buf_putc(out, b64chars[(*bits >> *nbits) & 0x3f]) < 0)
			return -1;
	}
	*bits &= (1u << *nbits) - 1;
	return 0;
}

int
imap_utf8_to_utf7(const char *in, size_t len, struct buf *out)
{
	size_t start = out->len;
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x20 && c <= 0x7e) {
			if (buf_append(out, c == '&' ? "&-" : (const char *)&in[i],
				       c == '&' ? 2 : 1) < 0)
				return undo(out, start);
			i++;
			continue;
		}
		/* A run of characters that need base64, in one shift. */
		uint32_t bits = 0;
		unsigned nbits = 0;
		if (buf_putc(out, '&') < 0)
			return undo(out, start);
		while (i < len) {
			c = (unsigned char)in[i];
			if (c >= 0x20 && c <= 0x7e)
				break;
			uint32_t cp;
			size_t n = imap_utf8_decode(in + i, len - i, &cp);
			if (n == 0 || cp == 0)
				return undo(out, start);
			i += n;
			int r;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				r = put_unit(out, 0xd800 | (cp >> 10), &bits, &nbits);
				if (r == 0)
					r = put_unit(out, 0xdc00 | (cp & 0x3ff), &bits, &nbits);
			} else {
				r = put_unit(out, cp, &bits, &nbits);
			}
			if (r < 0)
				return undo(out, start);
		}
		if (nbits > 0 && buf_putc(out, b64chars[(bits << (6 - nbits)) & 0x3f]) < 0)
			return undo(out, start);
		if (buf_putc(out, '-') < 0)
			return undo(out, start);
	}
	return 0;
}
