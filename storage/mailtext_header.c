/*
 * mailtext_header.c - header field text: RFC 2047 decoding (with the
 * RFC 2231 language suffix) and the RFC 5256 base subject for SORT and
 * THREAD. Malformed encoded words are kept as text; the only failure is
 * the output cap, and then the output buffer is left as it was.
 */
#include <string.h>
#include <strings.h>

#include "storage/mailtext.h"
#include "storage/mailtext_internal.h"

/* A charset name in an encoded word longer than this is not one. */
#define EW_CHARSET_MAX 64

struct ew {
	const char *charset; /* borrowed from the input */
	size_t charset_len;
	char enc; /* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t total; /* bytes from "=?" to "?=" inclusive */
};

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

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
	if (c == '/')
		return 63;
	return -1;
}

/* RFC 2047 section 2 syntax, at s (which starts with "=?"). Every scan
 * stops at the next '?', so trying each "=?" stays linear overall. */
static bool
ew_parse(const char *s, size_t n, struct ew *ew)
{
	size_t i = 2;
	while (i < n && s[i] != '?') {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\"/[]=", c) != NULL)
			return false;
		i++;
	}
	if (i == 2 || i - 2 > EW_CHARSET_MAX || i + 2 >= n || s[i + 2] != '?')
		return false;
	ew->charset = s + 2;
	ew->charset_len = i - 2;
	char e = s[i + 1];
	if (e == 'b' || e == 'B')
		ew->enc = 'B';
	else if (e == 'q' || e == 'Q')
		ew->enc = 'Q';
	else
		return false;
	size_t t = i + 3;
	size_t j = t;
	while (j < n && s[j] != '?') {
		unsigned char c = (unsigned char)s[j];
		if (c <= 0x20 || c >= 0x7f)
			return false;
		j++;
	}
	if (j + 1 >= n || s[j + 1] != '=')
		return false;
	ew->text = s + t;
	ew->text_len = j - t;
	ew->total = j + 2;
	if (ew->enc == 'B') {
		/* only the alphabet, with '=' padding at the end */
		bool pad = false;
		for (size_t k = 0; k < ew->text_len; k++) {
			unsigned char c = (unsigned char)ew->text[k];
			if (c == '=')
				pad = true;
			else if (pad || b64val(c) < 0)
				return false;
		}
	}
	return true;
}

/* Appends the encoded word's octets to raw (which has room: the decoded
 * form is never longer than the text). */
static int
ew_decode(const struct ew *ew, struct buf *raw)
{
	const unsigned char *p = (const unsigned char *)ew->text;
	size_t n = ew->text_len;
	if (ew->enc == 'Q') {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = p[i];
			int h, l;
			if (c == '_') {
				c = ' ';
			} else if (c == '=' && i + 2 < n && (h = hexval(p[i + 1])) >= 0 &&
				   (l = hexval(p[i + 2])) >= 0) {
				c = (unsigned char)(h << 4 | l);
				i += 2;
			}
			/* a stray '=' stays literal */
			if (buf_putc(raw, (char)c) < 0)
				return -1;
		}
		return 0;
	}
	uint32_t acc = 0;
	unsigned nbits = 0;
	for (size_t i = 0; i < n && p[i] != '='; i++) {
		acc = (acc << 6 | (uint32_t)b64val(p[i])) & 0xffffff;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			if (buf_putc(raw, (char)(acc >> nbits & 0xff)) < 0)
				return -1;
		}
	}
	return 0;
}

static bool
charset_eq(const char *a, size_t an, const char *b, size_t bn)
{
	const char *s = memchr(a, '*', an);
	if (s != NULL)
		an = (size_t)(s - a);
	s = memchr(b, '*', bn);
	if (s != NULL)
		bn = (size_t)(s - b);
	return an == bn && strncasecmp(a, b, an) == 0;
}

static int
convert(const char *charset, size_t clen, const char *in, size_t len, struct buf *out)
{
	struct mt_conv c;
	mt_conv_init(&c, charset, clen, mt_emit_buf, out);
	int rc = mt_conv_feed(&c, in, len);
	int rc2 = mt_conv_finish(&c);
	return rc < 0 || rc2 < 0 ? -1 : 0;
}

/* CRLF/LF + WSP -> the WSP; other line breaks -> SP; trailing ones go. */
static int
unfold(const char *in, size_t len, struct buf *u)
{
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c != '\r' && c != '\n') {
			if (buf_putc(u, c) < 0)
				return -1;
			continue;
		}
		if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
			i++;
		if (i + 1 < len && !is_wsp(in[i + 1]) && buf_putc(u, ' ') < 0)
			return -1;
	}
	return 0;
}

static int
decode_unfolded(const char *u, size_t n, struct buf *out, struct buf *raw)
{
	size_t text_start = 0; /* start of text not yet written */
	bool in_ew_run = false;
	const char *run_cs = NULL;
	size_t run_cs_len = 0;
	size_t i = 0;
	while (i < n) {
		struct ew ew;
		if (u[i] == '=' && i + 1 < n && u[i + 1] == '?' && ew_parse(u + i, n - i, &ew)) {
			if (in_ew_run &&
			    !charset_eq(run_cs, run_cs_len, ew.charset, ew.charset_len)) {
				if (convert(run_cs, run_cs_len, raw->data, raw->len, out) < 0)
					return -1;
				buf_reset(raw);
			}
			if (!in_ew_run && convert(NULL, 0, u + text_start, i - text_start, out) < 0)
				return -1;
			/* white space between two encoded words is dropped */
			in_ew_run = true;
			run_cs = ew.charset;
			run_cs_len = ew.charset_len;
			if (ew_decode(&ew, raw) < 0)
				return -1;
			i += ew.total;
			text_start = i;
			continue;
		}
		if (in_ew_run && !is_wsp(u[i])) {
			if (convert(run_cs, run_cs_len, raw->data, raw->len, out) < 0)
				return -1;
			buf_reset(raw);
			in_ew_run = false;
		}
		i++;
	}
	if (in_ew_run && convert(run_cs, run_cs_len, raw->data, raw->len, out) < 0)
		return -1;
	return convert(NULL, 0, u + text_start, n - text_start, out);
}

int
mailtext_decode_header(const char *in, size_t len, struct buf *out)
{
	size_t start = out->len;
	struct buf u, raw;
	buf_init(&u, len + 1);
	buf_init(&raw, len + 1);
	int rc = unfold(in, len, &u);
	if (rc == 0)
		rc = decode_unfolded(buf_cstr(&u), u.len, out, &raw);
	buf_free(&u);
	buf_free(&raw);
	if (rc < 0)
		mt_buf_truncate(out, start);
	return rc;
}

/* ---- RFC 5256 base subject ---- */

struct subj {
	char *s; /* owned by the caller's buf */
	size_t off, len;
};

static bool
ci_prefix(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && strncasecmp(s, lit, l) == 0;
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP; BLOBCHAR widened to any byte but
 * '[' and ']' (see mailtext.h). Length, or 0. */
static size_t
blob_len(const char *s, size_t n)
{
	if (n == 0 || s[0] != '[')
		return 0;
	size_t i = 1;
	while (i < n && s[i] != '[' && s[i] != ']')
		i++;
	if (i >= n || s[i] != ']')
		return 0;
	i++;
	while (i < n && is_wsp(s[i]))
		i++;
	return i;
}

/* subj-leader's first branch: *subj-blob subj-refwd, where
 * subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":". Length, or 0. */
static size_t
refwd_leader_len(const char *s, size_t n)
{
	size_t i = 0, b;
	while ((b = blob_len(s + i, n - i)) > 0)
		i += b;
	if (ci_prefix(s + i, n - i, "re")) {
		i += 2;
	} else if (ci_prefix(s + i, n - i, "fw")) {
		i += 2;
		if (i < n && (s[i] == 'd' || s[i] == 'D'))
			i++;
	} else {
		return 0;
	}
	while (i < n && is_wsp(s[i]))
		i++;
	i += blob_len(s + i, n - i);
	if (i < n && s[i] == ':')
		return i + 1;
	return 0;
}

static void
base_subject(struct subj *sj, bool *reply)
{
	for (;;) {
		/* (2) trailers: "(fwd)" or WSP, repeatedly */
		for (;;) {
			const char *e = sj->s + sj->off + sj->len;
			if (sj->len >= 1 && is_wsp(e[-1])) {
				sj->len--;
			} else if (sj->len >= 5 && strncasecmp(e - 5, "(fwd)", 5) == 0) {
				sj->len -= 5;
				*reply = true;
			} else {
				break;
			}
		}
		bool changed;
		do {
			changed = false;
			/* (3) leaders: WSP or blobs + re/fw/fwd ':' */
			for (;;) {
				const char *p = sj->s + sj->off;
				size_t l;
				if (sj->len >= 1 && is_wsp(p[0])) {
					l = 1;
				} else if ((l = refwd_leader_len(p, sj->len)) > 0) {
					*reply = true;
				} else {
					break;
				}
				sj->off += l;
				sj->len -= l;
				changed = true;
			}
			/* (4) one leading blob, if something is left after it */
			size_t b = blob_len(sj->s + sj->off, sj->len);
			if (b > 0 && b < sj->len) {
				sj->off += b;
				sj->len -= b;
				changed = true;
			}
		} while (changed); /* (5) */
		/* (6) "[fwd:" subject "]" */
		const char *p = sj->s + sj->off;
		if (sj->len >= 6 && ci_prefix(p, sj->len, "[fwd:") && p[sj->len - 1] == ']') {
			sj->off += 5;
			sj->len -= 6;
			*reply = true;
			continue;
		}
		return;
	}
}

int
mailtext_base_subject(const char *subject_utf8, size_t len, struct buf *out, bool *is_reply_r)
{
	bool reply = false;
	/* (1) tabs and line breaks to SP, runs of SP to one; the input is
	 * already RFC 2047-decoded (mailtext.h) */
	struct buf w;
	buf_init(&w, len + 1);
	char *s = buf_reserve(&w, len + 1);
	if (s == NULL)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = subject_utf8[i];
		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		if (c == ' ' && n > 0 && s[n - 1] == ' ')
			continue;
		s[n++] = c;
	}
	struct subj sj = {s, 0, n};
	base_subject(&sj, &reply);
	int rc = buf_append(out, s + sj.off, sj.len);
	buf_free(&w);
	if (is_reply_r != NULL)
		*is_reply_r = reply;
	return rc;
}
