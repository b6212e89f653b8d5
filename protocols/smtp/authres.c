/*
 * authres.c - Authentication-Results (RFC 8601): rendering the header
 * from a transaction's results, and dropping forged ones that claim
 * our authserv-id. Pure, unit-tested.
 *
 * How it fails: a full buffer is -1 (the caller keeps the message
 * without the header rather than losing it); a field it cannot parse is
 * left alone (it cannot be claiming our id in a way a reader would
 * accept).
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "protocols/smtp/authres.h"

#define FIELD "Authentication-Results"

void
authres_add(struct authres *ar, const char *method, const char *result, const char *reason,
	    const char *prop, const char *value)
{
	if (ar->n == AUTHRES_MAX)
		return;
	ar->e[ar->n++] = (struct authres_entry){method, result, reason, prop, value, {{0}}, 0};
}

void
authres_add_prop(struct authres *ar, const char *prop, const char *value)
{
	if (ar->n == 0)
		return;
	struct authres_entry *e = &ar->e[ar->n - 1];
	if (e->nmore < AUTHRES_PROPS - 1)
		e->more[e->nmore++] = (struct authres_prop){prop, value};
}

/* A pvalue (RFC 8601 2.2): [local-part "@"] domain, or a quoted-string
 * when it holds anything a token (RFC 2045 5.1) may not: a header.b
 * prefix (RFC 6008) may hold "/". */
static int
put_value(struct buf *out, const char *v)
{
	bool plain = v[0] != '\0';
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    strchr("()<>,;:\\\"[]/?=", *p) != NULL)
			plain = false;
	if (plain)
		return buf_append_str(out, v);
	if (buf_putc(out, '"') < 0)
		return -1;
	for (const char *p = v; *p != '\0'; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			continue;
		if ((*p == '"' || *p == '\\') && buf_putc(out, '\\') < 0)
			return -1;
		if (buf_putc(out, *p) < 0)
			return -1;
	}
	return buf_putc(out, '"');
}

/* A comment: parentheses and backslashes escaped, controls dropped. */
static int
put_comment(struct buf *out, const char *c)
{
	if (buf_append_str(out, " (") < 0)
		return -1;
	for (const char *p = c; *p != '\0'; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			continue;
		if ((*p == '(' || *p == ')' || *p == '\\') && buf_putc(out, '\\') < 0)
			return -1;
		if (buf_putc(out, *p) < 0)
			return -1;
	}
	return buf_putc(out, ')');
}

int
authres_render(const struct authres *ar, const char *authserv_id, struct buf *out)
{
	if (buf_printf(out, FIELD ": %s;", authserv_id) < 0)
		return -1;
	if (ar->n == 0)
		return buf_append_str(out, " none\r\n");
	for (size_t i = 0; i < ar->n; i++) {
		const struct authres_entry *e = &ar->e[i];
		/* one result per folded line, ";" between them */
		if (buf_printf(out, "%s\r\n\t%s=%s", i > 0 ? ";" : "", e->method, e->result) < 0)
			return -1;
		if (e->reason != NULL && put_comment(out, e->reason) < 0)
			return -1;
		if (e->prop != NULL && (buf_printf(out, " %s=", e->prop) < 0 ||
					put_value(out, e->value != NULL ? e->value : "") < 0))
			return -1;
		for (size_t j = 0; j < e->nmore; j++)
			if (buf_printf(out, " %s=", e->more[j].prop) < 0 ||
			    put_value(out, e->more[j].value != NULL ? e->more[j].value : "") < 0)
				return -1;
	}
	return buf_append_str(out, "\r\n");
}

/* Skips CFWS (folding white space and nested comments). */
static const char *
skip_cfws(const char *p, const char *end)
{
	int depth = 0;
	while (p < end) {
		if (*p == '\\' && depth > 0 && p + 1 < end)
			p += 2;
		else if (*p == '(')
			depth++, p++;
		else if (*p == ')' && depth > 0)
			depth--, p++;
		else if (depth > 0 || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		else
			break;
	}
	return p;
}

/* True if the field (name through its last continuation line) names
 * authserv_id as its authserv-id. */
static bool
claims(const char *f, const char *end, const char *authserv_id)
{
	size_t nl = strlen(FIELD);
	if ((size_t)(end - f) <= nl || strncasecmp(f, FIELD, nl) != 0)
		return false;
	const char *p = f + nl;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p != ':')
		return false;
	p = skip_cfws(p + 1, end);
	char id[256];
	size_t n = 0;
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (n < sizeof(id) - 1)
				id[n++] = *p;
		}
	} else {
		while (p < end && *p != ';' && *p != '(' && !isspace((unsigned char)*p)) {
			if (n < sizeof(id) - 1)
				id[n++] = *p;
			p++;
		}
	}
	id[n] = '\0';
	return strcasecmp(id, authserv_id) == 0;
}

size_t
authres_strip(char *hdr, size_t len, const char *authserv_id, unsigned *removed_r)
{
	size_t i = 0;
	*removed_r = 0;
	while (i < len) {
		/* the empty line ends the header section */
		if (hdr[i] == '\r' || hdr[i] == '\n')
			break;
		/* the field: this line and the continuation lines after it */
		size_t e = i;
		for (;;) {
			char *nl = memchr(hdr + e, '\n', len - e);
			e = nl == NULL ? len : (size_t)(nl - hdr) + 1;
			if (e >= len || (hdr[e] != ' ' && hdr[e] != '\t'))
				break;
		}
		if (claims(hdr + i, hdr + e, authserv_id)) {
			memmove(hdr + i, hdr + e, len - e);
			len -= e - i;
			(*removed_r)++;
			continue;
		}
		i = e;
	}
	return len;
}
