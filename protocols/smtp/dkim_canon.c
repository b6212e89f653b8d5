/*
 * dkim_canon.c - DKIM's byte-exact parts (RFC 6376): the simple and relaxed
 * canonicalisations of header fields and body (3.4) and the tag-list
 * syntax (3.2). Pure functions; they never fail except on a buffer cap.
 */
#include <string.h>

#include "dkim.h"

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int
dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out)
{
	if (c == DKIM_CANON_SIMPLE) {
		if (buf_append(out, field, len) < 0 || buf_append(out, "\r\n", 2) < 0)
			return -1;
		return 0;
	}
	/* 3.4.2: lower-case name, no WSP around the colon, unfolded, WSP
	 * runs as one SP, none at the end of the value. */
	const char *colon = memchr(field, ':', len);
	size_t nlen = colon != NULL ? (size_t)(colon - field) : len;
	while (nlen > 0 && is_wsp(field[nlen - 1]))
		nlen--;
	for (size_t i = 0; i < nlen; i++) {
		char ch = field[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (buf_putc(out, ch) < 0)
			return -1;
	}
	if (colon == NULL)
		return buf_append(out, "\r\n", 2);
	if (buf_putc(out, ':') < 0)
		return -1;
	bool pending_sp = false, started = false;
	for (const char *p = colon + 1; p < field + len; p++) {
		if (*p == '\r' || *p == '\n')
			continue; /* unfold */
		if (is_wsp(*p)) {
			pending_sp = started;
			continue;
		}
		if (pending_sp && buf_putc(out, ' ') < 0)
			return -1;
		pending_sp = false;
		started = true;
		if (buf_putc(out, *p) < 0)
			return -1;
	}
	return buf_append(out, "\r\n", 2);
}

/* Emits up to the limit; counts everything. */
struct body_out {
	void (*emit)(void *arg, const char *p, size_t n);
	void *arg;
	size_t limit;
	size_t total;
};

static void
body_put(struct body_out *o, const char *p, size_t n)
{
	if (o->total < o->limit) {
		size_t k = o->limit - o->total < n ? o->limit - o->total : n;
		if (k > 0)
			o->emit(o->arg, p, k);
	}
	o->total += n;
}

/* One relaxed body line (without its CRLF): WSP runs become one SP, WSP
 * at the end goes. */
static void
relaxed_line(struct body_out *o, const char *p, size_t n)
{
	size_t end = n;
	while (end > 0 && is_wsp(p[end - 1]))
		end--;
	size_t i = 0;
	while (i < end) {
		size_t run = i;
		while (run < end && !is_wsp(p[run]))
			run++;
		body_put(o, p + i, run - i);
		if (run == end)
			break;
		body_put(o, " ", 1);
		i = run;
		while (i < end && is_wsp(p[i]))
			i++;
	}
}

size_t
dkim_canon_body(enum dkim_canon c, const char *body, size_t len, size_t limit,
		void (*emit)(void *arg, const char *p, size_t n), void *arg)
{
	struct body_out o = {.emit = emit, .arg = arg, .limit = limit, .total = 0};
	/* Empty lines are held back until a non-empty one follows: the
	 * trailing ones are dropped (3.4.3, 3.4.4). */
	size_t held_empty = 0;
	bool any = false;
	const char *p = body, *end = body + len;

	while (p < end) {
		/* A line ends at CRLF; a bare CR or LF is line content. */
		const char *nl = NULL, *q = p;
		while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
			if (q > p && q[-1] == '\r') {
				nl = q - 1;
				break;
			}
			q++;
		}
		const char *le = nl != NULL ? nl : end;
		size_t ll = (size_t)(le - p);
		bool empty = ll == 0;
		if (c == DKIM_CANON_RELAXED && !empty) {
			empty = true;
			for (size_t i = 0; i < ll && empty; i++)
				empty = is_wsp(p[i]);
		}
		if (empty) {
			held_empty++;
		} else {
			for (; held_empty > 0; held_empty--)
				body_put(&o, "\r\n", 2);
			if (c == DKIM_CANON_RELAXED)
				relaxed_line(&o, p, ll);
			else
				body_put(&o, p, ll);
			body_put(&o, "\r\n", 2); /* a last line without CRLF gets one */
			any = true;
		}
		p = nl != NULL ? nl + 2 : end;
	}
	/* 3.4.3: an empty body is one CRLF under simple; 3.4.4 (erratum
	 * 1384): nothing under relaxed. */
	if (!any && c == DKIM_CANON_SIMPLE)
		body_put(&o, "\r\n", 2);
	return o.total;
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_alnumpunc(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* FWS: WSP, or CRLF followed by WSP. Returns where it stops. */
static const char *
skip_fws(const char *p, const char *end)
{
	for (;;) {
		if (p < end && is_wsp(*p)) {
			p++;
		} else if (p + 2 < end && p[0] == '\r' && p[1] == '\n' && is_wsp(p[2])) {
			p += 3;
		} else {
			return p;
		}
	}
}

int
dkim_tag_list_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max, size_t *n_r)
{
	const char *p = s, *end = s + len;
	size_t n = 0;

	*n_r = 0;
	for (;;) {
		p = skip_fws(p, end);
		if (p == end)
			break; /* empty list, or a trailing ';' */
		const char *name = p;
		if (!is_alpha(*p))
			return -1;
		while (p < end && is_alnumpunc(*p))
			p++;
		size_t name_len = (size_t)(p - name);
		p = skip_fws(p, end);
		if (p == end || *p != '=')
			return -1;
		p = skip_fws(p + 1, end);
		const char *value = p, *vend = p;
		/* tag-value: tval *(1*(WSP / FWS) tval), VALCHAR = %x21-3A / %x3C-7E */
		while (p < end && *p != ';') {
			unsigned char ch = (unsigned char)*p;
			if (ch > 0x20 && ch < 0x7f) {
				p++;
				vend = p;
				continue;
			}
			const char *q = skip_fws(p, end);
			if (q == p)
				return -1; /* a control or 8-bit byte, or a bare CR/LF */
			p = q;
		}
		if (n == max)
			return -3;
		for (size_t i = 0; i < n; i++)
			if (tags[i].name_len == name_len &&
			    memcmp(tags[i].name, name, name_len) == 0)
				return -2;
		tags[n].name = name;
		tags[n].name_len = name_len;
		tags[n].value = value;
		tags[n].value_len = (size_t)(vend - value);
		tags[n].raw_end = p;
		n++;
		if (p == end)
			break;
		p++; /* ';' */
	}
	*n_r = n;
	return 0;
}
