/*
 * mime_imap.c - RFC 9051 7.5.2 renderings of a parsed part tree:
 * BODYSTRUCTURE (extensible), BODY (basic) and ENVELOPE.
 * Conventions: NIL for absent values; media types, subtypes, parameter
 * names, transfer encodings and disposition types upper-case; values as
 * given; a string with CR, LF or 8-bit bytes becomes a literal.
 * Failure: MIME_ERR_LIMIT when the output buffer's cap is reached (the
 * buffer then holds a partial rendering the caller must discard).
 */
#include "storage/mime.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

#define TRY(x)                                                                                     \
	do {                                                                                       \
		if ((x) < 0)                                                                       \
			return MIME_ERR_LIMIT;                                                     \
	} while (0)

static char
upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* A quoted string, or a literal when quoting cannot carry the bytes. */
static int
put_string(struct buf *out, const char *s, bool up)
{
	size_t n = strlen(s);
	bool literal = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n' || c >= 0x80)
			literal = true;
	}
	if (literal) {
		TRY(buf_printf(out, "{%zu}\r\n", n));
		char *d = buf_reserve(out, n);
		if (d == NULL)
			return MIME_ERR_LIMIT;
		for (size_t i = 0; i < n; i++)
			d[i] = up ? upper(s[i]) : s[i];
		buf_commit(out, n);
		return 0;
	}
	TRY(buf_putc(out, '"'));
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			TRY(buf_putc(out, '\\'));
		TRY(buf_putc(out, up ? upper(s[i]) : s[i]));
	}
	TRY(buf_putc(out, '"'));
	return 0;
}

int
mime_render_nstring(const char *s, struct buf *out)
{
	if (s == NULL)
		return buf_append_str(out, "NIL") < 0 ? MIME_ERR_LIMIT : 0;
	return put_string(out, s, false);
}

static int
put_params(struct buf *out, const struct mime_param *p, unsigned n)
{
	if (n == 0)
		return buf_append_str(out, "NIL") < 0 ? MIME_ERR_LIMIT : 0;
	TRY(buf_putc(out, '('));
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			TRY(buf_putc(out, ' '));
		TRY(put_string(out, p[i].name, true));
		TRY(buf_putc(out, ' '));
		TRY(put_string(out, p[i].value, false));
	}
	TRY(buf_putc(out, ')'));
	return 0;
}

static int
put_addresses(struct buf *out, const struct mime_address *a)
{
	if (a == NULL)
		return buf_append_str(out, "NIL") < 0 ? MIME_ERR_LIMIT : 0;
	TRY(buf_putc(out, '('));
	for (; a != NULL; a = a->next) {
		TRY(buf_putc(out, '('));
		TRY(mime_render_nstring(a->name, out));
		TRY(buf_append_str(out, " NIL "));
		TRY(mime_render_nstring(a->mailbox, out));
		TRY(buf_putc(out, ' '));
		TRY(mime_render_nstring(a->host, out));
		TRY(buf_putc(out, ')'));
	}
	TRY(buf_putc(out, ')'));
	return 0;
}

int
mime_render_envelope(const struct mime_part *part, struct buf *out)
{
	const struct mime_envelope *e = part->envelope;
	if (e == NULL && part->kind == MIME_KIND_MESSAGE && part->children != NULL)
		e = part->children->envelope;
	if (e == NULL) {
		TRY(buf_append_str(out, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"));
		return 0;
	}
	TRY(buf_putc(out, '('));
	TRY(mime_render_nstring(e->date, out));
	TRY(buf_putc(out, ' '));
	TRY(mime_render_nstring(e->subject, out));
	const struct mime_address *lists[6] = {e->from, e->sender, e->reply_to,
					       e->to,	e->cc,	   e->bcc};
	for (size_t i = 0; i < 6; i++) {
		TRY(buf_putc(out, ' '));
		TRY(put_addresses(out, lists[i]));
	}
	TRY(buf_putc(out, ' '));
	TRY(mime_render_nstring(e->in_reply_to, out));
	TRY(buf_putc(out, ' '));
	TRY(mime_render_nstring(e->message_id, out));
	TRY(buf_putc(out, ')'));
	return 0;
}

/* disposition language location */
static int
put_ext_tail(struct buf *out, const struct mime_part *p)
{
	TRY(buf_putc(out, ' '));
	if (p->disposition == NULL) {
		TRY(buf_append_str(out, "NIL"));
	} else {
		TRY(buf_putc(out, '('));
		TRY(put_string(out, p->disposition, true));
		TRY(buf_putc(out, ' '));
		TRY(put_params(out, p->disp_params, p->ndisp_params));
		TRY(buf_putc(out, ')'));
	}
	TRY(buf_putc(out, ' '));
	if (p->nlanguages == 0) {
		TRY(buf_append_str(out, "NIL"));
	} else if (p->nlanguages == 1) {
		TRY(put_string(out, p->languages[0], false));
	} else {
		TRY(buf_putc(out, '('));
		for (unsigned i = 0; i < p->nlanguages; i++) {
			if (i > 0)
				TRY(buf_putc(out, ' '));
			TRY(put_string(out, p->languages[i], false));
		}
		TRY(buf_putc(out, ')'));
	}
	TRY(buf_putc(out, ' '));
	TRY(mime_render_nstring(p->location, out));
	return 0;
}

static bool
is_message_type(const struct mime_part *p)
{
	return strcmp(p->type, "message") == 0 &&
	       (strcmp(p->subtype, "rfc822") == 0 || strcmp(p->subtype, "global") == 0);
}

int
mime_render_bodystructure(const struct mime_part *p, bool ext, struct buf *out)
{
	TRY(buf_putc(out, '('));
	if (p->kind == MIME_KIND_MULTIPART) {
		for (const struct mime_part *c = p->children; c != NULL; c = c->next)
			TRY(mime_render_bodystructure(c, ext, out));
		TRY(buf_putc(out, ' '));
		TRY(put_string(out, p->subtype, true));
		if (ext) {
			TRY(buf_putc(out, ' '));
			TRY(put_params(out, p->params, p->nparams));
			TRY(put_ext_tail(out, p));
		}
		TRY(buf_putc(out, ')'));
		return 0;
	}

	/* MESSAGE/RFC822 promises an envelope and a body: one we did not
	 * descend into is announced as opaque data instead */
	if (p->kind != MIME_KIND_MESSAGE && is_message_type(p)) {
		TRY(buf_append_str(out, "\"APPLICATION\" \"OCTET-STREAM\""));
	} else {
		TRY(put_string(out, p->type, true));
		TRY(buf_putc(out, ' '));
		TRY(put_string(out, p->subtype, true));
	}
	TRY(buf_putc(out, ' '));
	TRY(put_params(out, p->params, p->nparams));
	TRY(buf_putc(out, ' '));
	TRY(mime_render_nstring(p->id, out));
	TRY(buf_putc(out, ' '));
	TRY(mime_render_nstring(p->description, out));
	TRY(buf_putc(out, ' '));
	TRY(put_string(out, p->encoding_raw != NULL ? p->encoding_raw : "7bit", true));
	TRY(buf_printf(out, " %" PRIu64, p->body_len));
	if (p->kind == MIME_KIND_MESSAGE && p->children != NULL) {
		TRY(buf_putc(out, ' '));
		TRY(mime_render_envelope(p->children, out));
		TRY(buf_putc(out, ' '));
		TRY(mime_render_bodystructure(p->children, ext, out));
		TRY(buf_printf(out, " %" PRIu64, p->body_lines));
	} else if (strcmp(p->type, "text") == 0) {
		TRY(buf_printf(out, " %" PRIu64, p->body_lines));
	}
	if (ext) {
		TRY(buf_putc(out, ' '));
		TRY(mime_render_nstring(p->md5, out));
		TRY(put_ext_tail(out, p));
	}
	TRY(buf_putc(out, ')'));
	return 0;
}
