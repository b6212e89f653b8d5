/*
 * mailtext_msg.c - the searchable text of a stored message, shared by
 * IMAP SEARCH's scan (protocols/imap/imap_search.c) and the full-text
 * index (storage/store_fts.c), so both see exactly the same text: the
 * decoded header (RFC 2047, unfolded) and the decoded text of the text/...
 * leaves (transfer and charset decoding, HTML stripped) plus the headers
 * of attached messages, each in i;unicode-casemap canonical form.
 *
 * The message is read through a caller's callback (offsets over trace +
 * body, as the store serves them), so the same code runs in a session's
 * read transaction and in the writer's transaction. A failed read stops
 * that part (the text so far stays); caps (MAILTEXT_*_MAX) cut the text,
 * the same way for both users.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "storage/mailtext.h"
#include "storage/mime.h"

#define MSG_CHUNK (64u * 1024u) /* body bytes read at a time */

const char *
mailtext_skip_cfws(const char *p, const char *end)
{
	int depth = 0;
	while (p < end) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			break;
		p++;
	}
	return p;
}

bool
mailtext_each_field(const char *h, size_t len, const char *name, size_t nlen,
		    bool (*fn)(void *arg, const char *v, size_t vlen), void *arg)
{
	const char *p = h, *end = h + len;

	while (p < end) {
		const char *line = p;
		/* The field runs to the first line end not followed by WSP. */
		const char *fe = p;
		for (;;) {
			const char *nl = memchr(fe, '\n', (size_t)(end - fe));
			if (nl == NULL) {
				fe = end;
				break;
			}
			fe = nl + 1;
			if (fe >= end || (*fe != ' ' && *fe != '\t'))
				break;
		}
		p = fe;
		const char *colon = memchr(line, ':', (size_t)(fe - line));
		if (colon == NULL || line[0] == ' ' || line[0] == '\t')
			continue;
		size_t klen = (size_t)(colon - line);
		while (klen > 0 && (line[klen - 1] == ' ' || line[klen - 1] == '\t'))
			klen--;
		if (klen != nlen || strncasecmp(line, name, nlen) != 0)
			continue;
		const char *v = colon + 1;
		const char *ve = fe;
		while (ve > v && (ve[-1] == '\n' || ve[-1] == '\r'))
			ve--;
		if (fn(arg, v, (size_t)(ve - v)))
			return true;
	}
	return false;
}

struct first {
	const char *v;
	size_t len;
};

static bool
first_value(void *arg, const char *v, size_t len)
{
	struct first *f = arg;
	f->v = v;
	f->len = len;
	return true;
}

bool
mailtext_first_field(const char *h, size_t len, const char *name, const char **v_r, size_t *vlen_r)
{
	struct first f = {NULL, 0};
	bool found = mailtext_each_field(h, len, name, strlen(name), first_value, &f);
	*v_r = f.v;
	*vlen_r = f.len;
	return found;
}

void
mailtext_canon_append(const char *t, size_t len, struct buf *out)
{
	while (len > 0) {
		size_t n = len < MSG_CHUNK ? len : MSG_CHUNK;
		while (n < len && n > 0 && ((unsigned char)t[n] & 0xc0) == 0x80)
			n--;
		if (n == 0)
			n = len;
		if (mailtext_casemap(t, n, out) < 0)
			return;
		t += n;
		len -= n;
	}
}

void
mailtext_header_canon(const char *h, size_t len, struct buf *out)
{
	struct buf d;
	buf_init(&d, 4 * (size_t)len + 64);
	if (mailtext_decode_header(h, len, &d) == 0 && d.len > 0)
		mailtext_canon_append(d.data, d.len, out);
	buf_free(&d);
	buf_append(out, " ", 1); /* no match across the header/body seam */
}

struct ctype {
	char type[32], subtype[64], charset[48];
};

/* Parses "type/subtype; charset=..." (best effort; comments ignored). */
static void
parse_content_type(const char *v, size_t len, struct ctype *ct)
{
	const char *p = v, *end = v + len;
	size_t n;

	memset(ct, 0, sizeof(*ct));
	p = mailtext_skip_cfws(p, end);
	for (n = 0; p < end && *p != '/' && *p != ';' && *p != ' ' && *p != '\t' && *p != '('; p++)
		if (n + 1 < sizeof(ct->type))
			ct->type[n++] = *p;
	p = mailtext_skip_cfws(p, end);
	if (p < end && *p == '/') {
		p = mailtext_skip_cfws(p + 1, end);
		for (n = 0; p < end && *p != ';' && *p != ' ' && *p != '\t' && *p != '(' &&
			    *p != '\r' && *p != '\n';
		     p++)
			if (n + 1 < sizeof(ct->subtype))
				ct->subtype[n++] = *p;
	}
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			break;
		p = mailtext_skip_cfws(semi + 1, end);
		const char *name = p;
		while (p < end && *p != '=' && *p != ';')
			p++;
		size_t nl = (size_t)(p - name);
		while (nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
			nl--;
		if (p >= end || *p != '=')
			continue;
		p = mailtext_skip_cfws(p + 1, end);
		if (nl != 7 || strncasecmp(name, "charset", 7) != 0)
			continue;
		bool q = p < end && *p == '"';
		p += q;
		for (n = 0; p < end && (q ? *p != '"'
					  : (*p != ';' && *p != ' ' && *p != '\t' && *p != '\r' &&
					     *p != '\n'));
		     p++)
			if (n + 1 < sizeof(ct->charset))
				ct->charset[n++] = *p;
		ct->charset[n] = '\0';
	}
}

struct walk {
	const void *mime;
	size_t mime_len;
	uint64_t trace_len;
	mailtext_read_fn *rd;
	void *arg;
	struct arena *a;
	unsigned budget;
};

/* A leaf's content type ("text/plain" when it has none) into full, its
 * charset into ct; *attachment_r when its Content-Disposition says
 * "attachment". -1 when its header cannot be read. */
static int
leaf_type(struct walk *w, const struct mime_section *sec, struct ctype *ct, char full[100],
	  bool *attachment_r)
{
	struct buf h;
	const char *v = NULL, *d = NULL;
	size_t vlen = 0, dlen = 0;

	buf_init(&h, MAILTEXT_HEADER_MAX);
	uint64_t hlen = sec->hdr_len < MAILTEXT_HEADER_MAX ? sec->hdr_len : MAILTEXT_HEADER_MAX;
	if (hlen > 0 && w->rd(w->arg, w->trace_len + sec->hdr_off, hlen, &h) < 0) {
		buf_free(&h);
		return -1;
	}
	if (h.len > 0) {
		mailtext_first_field(h.data, h.len, "content-type", &v, &vlen);
		mailtext_first_field(h.data, h.len, "content-disposition", &d, &dlen);
	}
	parse_content_type(v != NULL ? v : "", vlen, ct);
	*attachment_r = false;
	if (d != NULL) {
		const char *p = mailtext_skip_cfws(d, d + dlen);
		*attachment_r =
		    (size_t)(d + dlen - p) >= 10 && strncasecmp(p, "attachment", 10) == 0;
	}
	buf_free(&h);
	if (v == NULL || ct->type[0] == '\0')
		snprintf(full, 100, "text/plain");
	else
		snprintf(full, 100, "%s/%s", ct->type, ct->subtype);
	return 0;
}

/* Decodes up to max_in bytes of a leaf's body into text. */
static void
leaf_decode(struct walk *w, const struct mime_section *sec, const char *full,
	    const struct ctype *ct, uint64_t max_in, struct buf *text)
{
	const char *te = sec->encoding == MIME_ENC_BASE64 ? "base64"
			 : sec->encoding == MIME_ENC_QP	  ? "quoted-printable"
							  : NULL;
	struct mailtext_body *dec =
	    mailtext_body_new(w->a, full, ct->charset[0] != '\0' ? ct->charset : NULL, te, text);
	struct buf chunk;
	uint64_t len = sec->body_len < max_in ? sec->body_len : max_in;

	buf_init(&chunk, MSG_CHUNK);
	for (uint64_t off = 0; off < len; off += MSG_CHUNK) {
		uint64_t n = len - off < MSG_CHUNK ? len - off : MSG_CHUNK;
		buf_reset(&chunk);
		if (w->rd(w->arg, w->trace_len + sec->body_off + off, n, &chunk) < 0)
			break;
		if (mailtext_body_feed(dec, chunk.data, chunk.len) < 0)
			break; /* XXX text past MAILTEXT_TEXT_MAX is not searched */
	}
	buf_free(&chunk);
	(void)mailtext_body_finish(dec);
}

static bool
is_textual(const char *full)
{
	return strncasecmp(full, "text/", 5) == 0 || strcasecmp(full, "application/xhtml+xml") == 0;
}

/* The decoded text of one leaf, appended to text, if it is text. */
static void
leaf_text(struct walk *w, const struct mime_section *sec, struct buf *text)
{
	struct ctype ct;
	char full[100];
	bool attachment;

	if (leaf_type(w, sec, &ct, full, &attachment) < 0 || !is_textual(full))
		return; /* attachments, images: not text to search */
	leaf_decode(w, sec, full, &ct, sec->body_len, text);
	buf_append(text, " ", 1);
}

static void
walk_parts(struct walk *w, const char *path, unsigned depth, struct buf *text)
{
	struct mime_section sec;

	if (depth > MIME_DEFAULT_MAX_DEPTH + 1 || w->budget == 0 || text->len >= text->max)
		return;
	w->budget--;
	if (mime_section_find(w->mime, w->mime_len, path, &sec) < 0)
		return;
	if (sec.kind == MIME_KIND_LEAF) {
		leaf_text(w, &sec, text);
		return;
	}
	if (sec.kind == MIME_KIND_MESSAGE && sec.has_message && path[0] != '\0') {
		/* An attached message's header is text of the outer body. */
		struct buf h;
		buf_init(&h, MAILTEXT_HEADER_MAX);
		uint64_t n =
		    sec.msg_hdr_len < MAILTEXT_HEADER_MAX ? sec.msg_hdr_len : MAILTEXT_HEADER_MAX;
		if (n > 0 && w->rd(w->arg, w->trace_len + sec.msg_hdr_off, n, &h) == 0) {
			struct buf d;
			buf_init(&d, 4 * (size_t)n + 64);
			if (mailtext_decode_header(h.data, h.len, &d) == 0)
				buf_append(text, d.data != NULL ? d.data : "", d.len);
			buf_free(&d);
			buf_append(text, " ", 1);
		}
		buf_free(&h);
	}
	/* Part numbers of a multipart, or of the message inside a
	 * message/rfc822 part (whose 1 is its body when not multipart). */
	for (unsigned i = 1;; i++) {
		const char *sub = path[0] != '\0' ? arena_printf(w->a, "%s.%u", path, i)
						  : arena_printf(w->a, "%u", i);
		struct mime_section c;
		if (mime_section_find(w->mime, w->mime_len, sub, &c) < 0 || w->budget == 0)
			break;
		walk_parts(w, sub, depth + 1, text);
	}
}

void
mailtext_msg_body(const void *mime, size_t mime_len, uint64_t trace_len, mailtext_read_fn *rd,
		  void *arg, struct arena *a, struct buf *canon)
{
	struct walk w = {mime, mime_len, trace_len, rd, arg, a, MAILTEXT_PARTS_MAX};
	struct buf text;

	buf_init(&text, MAILTEXT_TEXT_MAX);
	walk_parts(&w, "", 0, &text);
	mailtext_canon_append(buf_cstr(&text), text.len, canon);
	buf_free(&text);
}

/* ---- preview (RFC 8970) ---- */

#define PREVIEW_IN_MAX (64u * 1024u) /* body bytes decoded for a preview */

/* The first text/plain leaf and the first text/html one that are not
 * attachments, outside attached messages. */
struct preview_pick {
	bool have_plain, have_html;
	struct mime_section plain, html;
	struct ctype plain_ct, html_ct;
	char plain_full[100], html_full[100];
};

static void
preview_walk(struct walk *w, const char *path, unsigned depth, struct preview_pick *pk)
{
	struct mime_section sec;

	if (depth > MIME_DEFAULT_MAX_DEPTH + 1 || w->budget == 0 || pk->have_plain)
		return;
	w->budget--;
	if (mime_section_find(w->mime, w->mime_len, path, &sec) < 0)
		return;
	if (sec.kind == MIME_KIND_LEAF) {
		struct ctype ct;
		char full[100];
		bool attachment;
		if (leaf_type(w, &sec, &ct, full, &attachment) < 0 || attachment)
			return;
		if (strcasecmp(full, "text/plain") == 0) {
			pk->have_plain = true;
			pk->plain = sec;
			pk->plain_ct = ct;
			memcpy(pk->plain_full, full, sizeof(full));
		} else if (!pk->have_html && (strcasecmp(full, "text/html") == 0 ||
					      strcasecmp(full, "application/xhtml+xml") == 0)) {
			pk->have_html = true;
			pk->html = sec;
			pk->html_ct = ct;
			memcpy(pk->html_full, full, sizeof(full));
		}
		return;
	}
	if (sec.kind == MIME_KIND_MESSAGE && path[0] != '\0')
		return; /* a forwarded message is not this one's text */
	for (unsigned i = 1; !pk->have_plain; i++) {
		const char *sub = path[0] != '\0' ? arena_printf(w->a, "%s.%u", path, i)
						  : arena_printf(w->a, "%u", i);
		struct mime_section c;
		if (mime_section_find(w->mime, w->mime_len, sub, &c) < 0 || w->budget == 0)
			break;
		preview_walk(w, sub, depth + 1, pk);
	}
}

/* Length in bytes of the UTF-8 sequence starting with byte c (1 for a
 * stray continuation byte: the decoder output is valid UTF-8 anyway). */
static size_t
utf8_len(unsigned char c)
{
	return c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

void
mailtext_msg_preview(const void *mime, size_t mime_len, uint64_t trace_len, mailtext_read_fn *rd,
		     void *arg, struct arena *a, size_t max_chars, struct buf *out)
{
	struct walk w = {mime, mime_len, trace_len, rd, arg, a, MAILTEXT_PARTS_MAX};
	struct preview_pick pk;
	struct buf text;

	memset(&pk, 0, sizeof(pk));
	preview_walk(&w, "", 0, &pk);
	if (!pk.have_plain && !pk.have_html)
		return;
	buf_init(&text, 4 * PREVIEW_IN_MAX);
	if (pk.have_plain)
		leaf_decode(&w, &pk.plain, pk.plain_full, &pk.plain_ct, PREVIEW_IN_MAX, &text);
	else
		leaf_decode(&w, &pk.html, pk.html_full, &pk.html_ct, PREVIEW_IN_MAX, &text);
	/* Line by line: quoted lines (">") and a signature (from "-- ")
	 * are left out; white space runs become one space. */
	const char *p = text.data != NULL ? text.data : "", *end = p + text.len;
	size_t chars = 0;
	bool space = false;
	while (p < end && chars < max_chars) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		const char *q = p;
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if ((size_t)(le - p) >= 3 && memcmp(p, "-- ", 3) == 0 &&
		    (le - p == 3 || (le - p == 4 && p[3] == '\r')))
			break;
		if (q < le && *q == '>') {
			p = nl != NULL ? nl + 1 : end;
			continue;
		}
		for (; q < le && chars < max_chars;) {
			unsigned char c = (unsigned char)*q;
			if (c == ' ' || c == '\t' || c == '\r' || c < 0x20 || c == 0x7f) {
				space = out->len > 0;
				q++;
				continue;
			}
			size_t n = utf8_len(c);
			if (n > (size_t)(le - q))
				n = (size_t)(le - q);
			if (space) {
				if (chars + 1 >= max_chars || buf_putc(out, ' ') < 0)
					goto done; /* no trailing space */
				chars++;
			}
			space = false;
			if (buf_append(out, q, n) < 0)
				goto done;
			q += n;
			chars++;
		}
		space = out->len > 0;
		p = nl != NULL ? nl + 1 : end;
	}
done:
	buf_free(&text);
}
