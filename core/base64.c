/*
 * base64.c - RFC 4648 section 4 base64, strict.
 * Failure: -1 on any byte outside the alphabet, misplaced or missing '='
 * padding, non-zero bits in the final padding, a length that is not a
 * multiple of 4, or when out's cap would be passed. On failure out keeps
 * its old length (the partial output is dropped).
 */
#include "core/base64.h"

#include <stdbool.h>
#include <stdint.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
base64_encode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *p = in;
	size_t groups = len / 3 + (len % 3 != 0);
	if (groups > SIZE_MAX / 4)
		return -1;
	char *dst = buf_reserve(out, groups * 4);
	if (dst == NULL)
		return -1;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = '=';
	}
	buf_commit(out, o);
	return 0;
}

/* The 6-bit value of c, or -1 if c is not in the alphabet. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t len, struct buf *out)
{
	if (len % 4 != 0)
		return -1;
	size_t start = out->len;
	/* The output size is known up front: check the cap once. */
	char *dst = buf_reserve(out, len / 4 * 3);
	if (dst == NULL)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		const unsigned char *q = (const unsigned char *)in + i;
		bool last = i + 4 == len;
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			if (q[k] == '=') {
				/* '=' only in the last group, only in its last two
				 * places, and nothing but '=' after it. */
				if (!last || k < 2)
					goto bad;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0)
				goto bad;
			v[k] = b64_value(q[k]);
			if (v[k] < 0)
				goto bad;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		/* Canonical form: the bits under the padding must be zero
		 * (RFC 4648 section 3.5), so each input has one encoding. */
		if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
			goto bad;
		dst[o++] = (char)(w >> 16);
		if (pad < 2)
			dst[o++] = (char)(w >> 8);
		if (pad < 1)
			dst[o++] = (char)w;
	}
	buf_commit(out, o);
	return 0;
bad:
	/* Nothing was committed: the buffer still ends at start. */
	out->data[start] = '\0';
	return -1;
}
