/*
 * mailtext_charset.c - charset names and the streaming converter to
 * Unicode (see mailtext.h for the rules, mailtext_internal.h for the
 * converter). Never fails on input: unknown charsets decode as "auto",
 * rejected bytes become U+FFFD. The only failure is the emit callback
 * refusing (output cap), after which the converter stops.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <unistr.h>

#include "storage/mailtext.h"
#include "storage/mailtext_internal.h"

#define CHARSET_NAME_MAX 40

/* windows-1252 0x80-0x9f; the five holes map to the C1 controls, as in
 * the WHATWG encoding standard. 0xa0-0xff are Latin-1. */
static const uint16_t cp1252_hi[32] = {
    0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008d, 0x017d, 0x008f, 0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
};

uint32_t
mt_cp1252(unsigned char c)
{
	if (c >= 0x80 && c < 0xa0)
		return cp1252_hi[c - 0x80];
	return c;
}

static const char *const utf8_names[] = {"utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8",
					 NULL};
static const char *const cp1252_names[] = {
    "iso-8859-1", "iso8859-1", "iso_8859-1",  "iso_8859-1:1987",
    "latin1",	  "latin-1",   "l1",	      "iso-ir-100",
    "cp819",	  "ibm819",    "csisolatin1", "windows-1252",
    "cp1252",	  "x-cp1252",  "ms-ansi",     NULL};
static const char *const auto_names[] = {
    "us-ascii",	 "ascii",	 "us_ascii",	   "ansi_x3.4-1968",
    "iso646-us", "us",		 "csascii",	   "x-unknown",
    "unknown",	 "unknown-8bit", "x-user-defined", "default",
    "7bit",	 "8bit",	 "binary",	   "none",
    NULL};

static const struct {
	const char *alias;
	const char *iconv_name;
} aliases[] = {
    {"shift_jis", "CP932"},	  {"shift-jis", "CP932"},      {"sjis", "CP932"},
    {"x-sjis", "CP932"},	  {"ms_kanji", "CP932"},       {"csshiftjis", "CP932"},
    {"windows-31j", "CP932"},	  {"ms932", "CP932"},	       {"gb2312", "GB18030"},
    {"gbk", "GB18030"},		  {"x-gbk", "GB18030"},	       {"cp936", "GB18030"},
    {"euc-cn", "GB18030"},	  {"csgb2312", "GB18030"},     {"gb_2312-80", "GB18030"},
    {"euc-kr", "CP949"},	  {"ks_c_5601-1987", "CP949"}, {"ks_c_5601", "CP949"},
    {"ksc5601", "CP949"},	  {"windows-949", "CP949"},    {"big5", "BIG5-HKSCS"},
    {"x-big5", "BIG5-HKSCS"},	  {"cn-big5", "BIG5-HKSCS"},   {"tis-620", "CP874"},
    {"windows-874", "CP874"},	  {"iso-8859-11", "CP874"},    {"iso-8859-8-i", "ISO-8859-8"},
    {"x-mac-roman", "MACINTOSH"}, {"mac", "MACINTOSH"},
};

static bool
in_list(const char *name, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* Lower-cased, trimmed name into out (CHARSET_NAME_MAX + 1 bytes); false
 * if it is empty or not a plausible charset name. */
static bool
charset_normalise(const char *s, size_t n, char *out)
{
	while (n > 0 && (*s == ' ' || *s == '\t' || *s == '"' || *s == '\''))
		s++, n--;
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '"' || s[n - 1] == '\''))
		n--;
	const char *star = memchr(s, '*', n);
	if (star != NULL)
		n = (size_t)(star - s); /* RFC 2231 "charset*lang" */
	if (n == 0 || n > CHARSET_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isascii(c) || !(isalnum(c) || strchr("._:+-", c) != NULL) || c == '\0')
			return false;
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	return true;
}

void
mt_conv_init(struct mt_conv *c, const char *charset, size_t n, mt_emit_fn emit, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->cd = (iconv_t)-1;
	c->emit = emit;
	c->arg = arg;
	c->mode = MT_AUTO;

	char name[CHARSET_NAME_MAX + 1];
	if (charset == NULL || !charset_normalise(charset, n, name))
		return;
	if (in_list(name, utf8_names)) {
		c->mode = MT_UTF8;
		return;
	}
	if (in_list(name, cp1252_names)) {
		c->mode = MT_CP1252;
		return;
	}
	if (in_list(name, auto_names))
		return;
	const char *iname = name;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(name, aliases[i].alias) == 0)
			iname = aliases[i].iconv_name;
	c->cd = iconv_open("UTF-8", iname);
	if (c->cd != (iconv_t)-1)
		c->mode = MT_ICONV;
	/* else: a charset nobody knows; "auto" is the best guess */
}

static int
put(struct mt_conv *c, uint32_t cp)
{
	if (c->stopped)
		return -1;
	if (c->emit(c->arg, cp) < 0) {
		c->stopped = true;
		return -1;
	}
	return 0;
}

/* Length of the maximal ill-formed subpart at s: the longest prefix that
 * could still begin a well-formed sequence, at least 1. */
static size_t
utf8_bad_len(const unsigned char *s, size_t n)
{
	ucs4_t cp;
	for (size_t k = n < 3 ? n : 3; k >= 2; k--)
		if (u8_mbtoucr(&cp, s, k) == -2)
			return k;
	return 1;
}

/*
 * Decodes pend[] as far as it goes. Without final, an incomplete but so
 * far well-formed sequence stays in pend for the next byte.
 */
static int
utf8_drain(struct mt_conv *c, bool final)
{
	while (c->npend > 0) {
		ucs4_t cp;
		int r = u8_mbtoucr(&cp, c->pend, c->npend);
		size_t used;
		if (r > 0) {
			if (put(c, cp) < 0)
				return -1;
			used = (size_t)r;
		} else if (r == -2 && !final) {
			return 0;
		} else if (c->mode == MT_AUTO) {
			/* not UTF-8: this byte is windows-1252 */
			if (put(c, mt_cp1252(c->pend[0])) < 0)
				return -1;
			used = 1;
		} else {
			used = r == -2 ? c->npend : utf8_bad_len(c->pend, c->npend);
			if (put(c, 0xfffd) < 0)
				return -1;
		}
		memmove(c->pend, c->pend + used, c->npend - used);
		c->npend -= used;
	}
	return 0;
}

static int
utf8_feed(struct mt_conv *c, const unsigned char *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (c->npend == 0 && in[i] < 0x80) {
			if (put(c, in[i]) < 0)
				return -1;
			continue;
		}
		/* pend never holds more than one sequence's worth: utf8_drain
		 * leaves at most 3 bytes of a valid prefix */
		c->pend[c->npend++] = in[i];
		if (utf8_drain(c, false) < 0)
			return -1;
	}
	return 0;
}

/* Emits iconv's UTF-8 output (always whole, valid characters). */
static int
emit_utf8(struct mt_conv *c, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	while (n > 0) {
		ucs4_t cp;
		int r = u8_mbtoucr(&cp, p, n);
		if (r <= 0) /* cannot happen with glibc; be safe */
			r = 1, cp = 0xfffd;
		if (put(c, cp) < 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * Converts work[0..n); an incomplete tail goes to pend unless final.
 * EILSEQ skips one byte with a U+FFFD, like iconv -c but visible.
 */
static int
iconv_run(struct mt_conv *c, char *work, size_t n, bool final)
{
	char obuf[1024];
	char *ip = work;
	size_t il = n;
	while (il > 0) {
		char *op = obuf;
		size_t ol = sizeof(obuf);
		size_t r = iconv(c->cd, &ip, &il, &op, &ol);
		int err = r == (size_t)-1 ? errno : 0;
		if (emit_utf8(c, obuf, (size_t)(op - obuf)) < 0)
			return -1;
		if (err == 0 || err == E2BIG)
			continue;
		if (err == EINVAL && !final && il <= MT_PEND_MAX) {
			memcpy(c->pend, ip, il);
			c->npend = il;
			return 0;
		}
		if (err == EINVAL && final) {
			/* an incomplete character at the very end */
			il = 0;
		} else {
			ip++;
			il--;
		}
		if (put(c, 0xfffd) < 0)
			return -1;
	}
	return 0;
}

static int
iconv_feed(struct mt_conv *c, const unsigned char *in, size_t len)
{
	/* The carried tail and new bytes must be contiguous for iconv: go
	 * through a small window, pend first. */
	char work[MT_PEND_MAX + 496];
	while (len > 0) {
		size_t k = c->npend;
		memcpy(work, c->pend, k);
		size_t take = sizeof(work) - k;
		if (take > len)
			take = len;
		memcpy(work + k, in, take);
		in += take;
		len -= take;
		c->npend = 0;
		if (iconv_run(c, work, k + take, false) < 0)
			return -1;
	}
	return 0;
}

int
mt_conv_feed(struct mt_conv *c, const void *in, size_t len)
{
	const unsigned char *p = in;
	if (c->stopped)
		return -1;
	switch (c->mode) {
	case MT_UTF8:
	case MT_AUTO:
		return utf8_feed(c, p, len);
	case MT_CP1252:
		for (size_t i = 0; i < len; i++)
			if (put(c, mt_cp1252(p[i])) < 0)
				return -1;
		return 0;
	case MT_ICONV:
		return iconv_feed(c, p, len);
	}
	return 0;
}

int
mt_conv_finish(struct mt_conv *c)
{
	int rc = 0;
	if (!c->stopped) {
		if (c->mode == MT_ICONV) {
			char work[MT_PEND_MAX];
			size_t k = c->npend;
			memcpy(work, c->pend, k);
			c->npend = 0;
			if (k > 0)
				rc = iconv_run(c, work, k, true);
		} else if (c->mode != MT_CP1252) {
			rc = utf8_drain(c, true);
		}
	}
	c->npend = 0;
	if (c->cd != (iconv_t)-1) {
		iconv_close(c->cd);
		c->cd = (iconv_t)-1;
	}
	return c->stopped ? -1 : rc;
}

int
mt_emit_buf(void *arg, uint32_t cp)
{
	struct buf *b = arg;

	/* Called once per character of every text searched: ASCII with
	 * room to spare goes straight in (the NUL after it included). */
	if (cp < 0x80 && b->cap > 0 && b->len + 1 < b->cap && b->len < b->max) {
		b->data[b->len++] = (char)cp;
		b->data[b->len] = '\0';
		return 0;
	}
	uint8_t tmp[6];
	int n = u8_uctomb(tmp, cp, sizeof(tmp));
	if (n <= 0) /* not a scalar value: cannot come from the decoders */
		n = u8_uctomb(tmp, 0xfffd, sizeof(tmp));
	return buf_append(arg, tmp, (size_t)n);
}

void
mt_buf_truncate(struct buf *b, size_t len)
{
	if (b->len > len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

int
mailtext_charset_to_utf8(const char *charset, const char *in, size_t len, struct buf *out)
{
	size_t start = out->len;
	struct mt_conv c;
	mt_conv_init(&c, charset, charset != NULL ? strlen(charset) : 0, mt_emit_buf, out);
	int rc = mt_conv_feed(&c, in, len);
	if (mt_conv_finish(&c) < 0 || rc < 0) {
		mt_buf_truncate(out, start);
		return -1;
	}
	return 0;
}
