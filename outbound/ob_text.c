/*
 * ob_text.c - the pure parts of outbound delivery: the SMTP reply parser,
 * EHLO capabilities, dot-stuffing, Received counting, xtext, the retry
 * schedule and MX record handling. No I/O, so each is unit-tested alone
 * (tests/unit/test_outbound_text.c), the parser byte by byte.
 * Failure: the reply parser says ERROR or LIMIT for what is not a reply
 * (the caller drops the connection); the others cannot fail except on a
 * buffer's cap (-1).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/dns.h"
#include "core/log.h"
#include "outbound/outbound_internal.h"

/* ---- replies ---- */

void
ob_reply_init(struct ob_reply *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->text, OB_REPLY_LINE_MAX * OB_REPLY_LINES_MAX);
	buf_init(&r->line, OB_REPLY_LINE_MAX);
}

void
ob_reply_free(struct ob_reply *r)
{
	buf_free(&r->text);
	buf_free(&r->line);
}

void
ob_reply_reset(struct ob_reply *r)
{
	buf_reset(&r->text);
	buf_reset(&r->line);
	r->code = 0;
	r->nlines = 0;
}

/* One complete line (without CRLF) into the reply. */
static enum ob_parse
reply_line(struct ob_reply *r)
{
	const char *l = r->line.data != NULL ? r->line.data : "";
	size_t n = r->line.len;

	if (n < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
	    !isdigit((unsigned char)l[2]) || l[0] < '2' || l[0] > '5')
		return OB_PARSE_ERROR;
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return OB_PARSE_ERROR;
	int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return OB_PARSE_ERROR; /* RFC 5321 4.2.1: one code per reply */
	if (++r->nlines > OB_REPLY_LINES_MAX)
		return OB_PARSE_LIMIT;
	r->code = code;
	if (buf_append(&r->text, n > 4 ? l + 4 : "", n > 4 ? n - 4 : 0) < 0 ||
	    buf_putc(&r->text, '\n') < 0)
		return OB_PARSE_LIMIT;
	bool last = n == 3 || l[3] == ' ';
	buf_reset(&r->line);
	return last ? OB_PARSE_DONE : OB_PARSE_MORE;
}

enum ob_parse
ob_reply_feed(struct ob_reply *r, const char *p, size_t n, size_t *used_r)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\n') {
			/* CRLF, or a bare LF from a sloppy server */
			if (r->line.len > 0 && r->line.data[r->line.len - 1] == '\r')
				r->line.data[--r->line.len] = '\0';
			enum ob_parse st = reply_line(r);
			if (st != OB_PARSE_MORE) {
				*used_r = i + 1;
				return st;
			}
			continue;
		}
		if (buf_putc(&r->line, c) < 0) {
			*used_r = i + 1;
			return OB_PARSE_LIMIT;
		}
	}
	*used_r = n;
	return OB_PARSE_MORE;
}

const char *
ob_reply_oneline(const struct ob_reply *r, struct arena *a)
{
	struct buf b;
	buf_init(&b, 1000);
	(void)buf_printf(&b, "%03d", r->code);
	const char *t = buf_cstr(&r->text);
	bool space = true;
	for (; *t != '\0'; t++) {
		unsigned char c = (unsigned char)*t;
		if (c == '\n' || c == '\t' || c == ' ') {
			space = true;
			continue;
		}
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			continue; /* the line goes into logs and DSN fields */
		if (space && buf_putc(&b, ' ') < 0)
			break;
		space = false;
		if (buf_putc(&b, (char)c) < 0)
			break;
	}
	const char *res = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return res;
}

/* ---- EHLO ---- */

static bool
word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

void
ob_caps_parse(const char *text, struct ob_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	const char *line = strchr(text, '\n');
	/* The first line is the server's greeting name, not a keyword. */
	while (line != NULL && line[1] != '\0') {
		const char *p = line + 1;
		const char *end = strchr(p, '\n');
		if (end == NULL)
			end = p + strlen(p);
		const char *kw_end = p;
		while (kw_end < end && *kw_end != ' ' && *kw_end != '=')
			kw_end++;
		size_t kn = (size_t)(kw_end - p);
		if (word_is(p, kn, "PIPELINING"))
			caps->pipelining = true;
		else if (word_is(p, kn, "8BITMIME"))
			caps->eightbitmime = true;
		else if (word_is(p, kn, "SMTPUTF8"))
			caps->smtputf8 = true;
		else if (word_is(p, kn, "DSN"))
			caps->dsn = true;
		else if (word_is(p, kn, "STARTTLS"))
			caps->starttls = true;
		else if (word_is(p, kn, "REQUIRETLS"))
			caps->requiretls = true;
		else if (word_is(p, kn, "ENHANCEDSTATUSCODES"))
			caps->enhanced = true;
		else if (word_is(p, kn, "CHUNKING"))
			caps->chunking = true;
		else if (word_is(p, kn, "SIZE")) {
			caps->size = true;
			uint64_t v = 0;
			const char *q = kw_end;
			while (q < end && *q == ' ')
				q++;
			for (; q < end && *q >= '0' && *q <= '9'; q++) {
				if (v > (UINT64_MAX - 9) / 10) {
					v = 0; /* absurd: treat as no limit */
					break;
				}
				v = v * 10 + (uint64_t)(*q - '0');
			}
			caps->size_max = v;
		} else if (word_is(p, kn, "AUTH")) {
			/* "AUTH PLAIN LOGIN" (and the old "AUTH=PLAIN") */
			const char *q = kw_end;
			while (q < end) {
				while (q < end && (*q == ' ' || *q == '='))
					q++;
				const char *w = q;
				while (q < end && *q != ' ')
					q++;
				if (word_is(w, (size_t)(q - w), "PLAIN"))
					caps->auth_plain = true;
				else if (word_is(w, (size_t)(q - w), "LOGIN"))
					caps->auth_login = true;
			}
		}
		line = *end == '\n' ? end : NULL;
	}
}

/* ---- message text ---- */

int
ob_dot_stuff(const char *msg, size_t len, struct buf *out)
{
	/* A line at a time (memchr finds the ends): copying byte by byte
	 * was a few percent of outbound CPU. The next CR and LF are kept and
	 * looked for again only once passed. */
	const char *cr = memchr(msg, '\r', len), *lf = memchr(msg, '\n', len);
	size_t i = 0;
	bool bol = true;

	while (i < len) {
		if (bol && msg[i] == '.' && buf_putc(out, '.') < 0)
			return -1;
		if (cr != NULL && cr < msg + i)
			cr = memchr(msg + i, '\r', len - i);
		if (lf != NULL && lf < msg + i)
			lf = memchr(msg + i, '\n', len - i);
		const char *e = cr == NULL ? lf : lf == NULL ? cr : cr < lf ? cr : lf;
		size_t end = e != NULL ? (size_t)(e - msg) : len;
		if (buf_append(out, msg + i, end - i) < 0)
			return -1;
		if (e == NULL) {
			bol = false;
			break;
		}
		/* CRLF, a bare CR and a bare LF all end a line: CRLF on the wire. */
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
		i = end + 1;
		if (*e == '\r' && i < len && msg[i] == '\n')
			i++;
		bol = true;
	}
	if (!bol && buf_append(out, "\r\n", 2) < 0)
		return -1;
	return buf_append(out, ".\r\n", 3);
}

unsigned
ob_count_received(const char *msg, size_t len)
{
	unsigned n = 0;
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - msg) : len;
		size_t ll = end - i;
		if (ll > 0 && msg[end - 1] == '\r')
			ll--;
		if (ll == 0)
			break; /* the end of the header section */
		if (ll >= 9 && strncasecmp(msg + i, "Received:", 9) == 0)
			n++;
		i = end + 1;
	}
	return n;
}

bool
ob_has_8bit(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)msg[i] >= 0x80)
			return true;
	}
	return false;
}

int
ob_xtext(const char *s, struct buf *out)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		int r = c >= 33 && c <= 126 && c != '+' && c != '=' ? buf_putc(out, (char)c)
								    : buf_printf(out, "+%02X", c);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* ---- retries ---- */

unsigned
ob_backoff(unsigned attempts, unsigned initial, unsigned max)
{
	uint64_t d = initial;
	for (unsigned i = 1; i < attempts && d < max; i++)
		d *= 2;
	return d > max ? max : (unsigned)d;
}

/* ---- MX records ---- */

int
ob_mx_decode(const unsigned char *rd, size_t len, struct arena *a, struct ob_mx *mx_r)
{
	size_t off = 2;
	const char *name;

	if (len < 3)
		return -1;
	mx_r->pref = (unsigned)rd[0] << 8 | rd[1];
	if (dns_name_decode(rd, len, &off, a, &name) < 0 || off != len)
		return -1;
	mx_r->name = (char *)name; /* "" is the root */
	return 0;
}

bool
ob_mx_is_null(const struct ob_mx *mx, size_t n)
{
	return n == 1 && mx[0].pref == 0 && mx[0].name[0] == '\0';
}

void
ob_mx_sort(struct ob_mx *mx, size_t n, unsigned (*rnd)(void *arg), void *arg)
{
	/* Shuffle first (Fisher-Yates), then a stable insertion sort by
	 * preference keeps the random order among equals (RFC 5321 5.1). */
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd(arg) % i;
		struct ob_mx t = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = t;
	}
	for (size_t i = 1; i < n; i++) {
		struct ob_mx t = mx[i];
		size_t j = i;
		while (j > 0 && mx[j - 1].pref > t.pref) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = t;
	}
}
