/*
 * dsn.c - composes RFC 3464 delivery status notifications (see dsn.h):
 * the report's header (From MAILER-DAEMON, Auto-Submitted: auto-replied
 * per RFC 3834 so that autoresponders stay quiet), a text/plain part for
 * people, the delivery-status part for programs, and the original or its
 * header. Long values are folded at spaces so no line passes 78 columns
 * when it can be helped, and never 998 (RFC 5322 2.1.1).
 *
 * Pure and allocation-free beyond out: every value is cleaned and folded
 * straight into out. Fails (-1) only when out's cap is reached or the
 * parameters are unusable.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outbound/dsn.h"

#define FOLD_AT 78
/* A word longer than this is cut: a line must stay under 998 bytes. */
#define WORD_MAX 900

/* Sticky error: the first failing append makes the whole compose fail. */
struct out {
	struct buf *b;
	int err;
	bool utf8; /* 8-bit bytes of values may pass (SMTPUTF8) */
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->err == 0 && buf_append(o->b, s, n) < 0)
		o->err = -1;
}

static void
puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void oprintf(struct out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
oprintf(struct out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->err != 0)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(o->b, fmt, ap) < 0)
		o->err = -1;
	va_end(ap);
}

/* What a value byte becomes: controls are spaces (no CR/LF can start a
 * new field), 8-bit is '?' unless the report is UTF-8. */
static char
clean_byte(const struct out *o, unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return ' ';
	if (c >= 0x80 && !o->utf8)
		return '?';
	return (char)c;
}

/* Appends value cleaned and folded; col is the column it starts at and
 * cont what a continuation line starts with (" " in a header, an indent
 * in text). Runs of white space become one space. */
static void
fold(struct out *o, size_t col, const char *value, const char *cont)
{
	const char *p = value;
	size_t cont_len = strlen(cont);
	bool first = true;

	while (*p != '\0') {
		while (*p != '\0' && clean_byte(o, (unsigned char)*p) == ' ')
			p++;
		if (*p == '\0')
			break;
		const char *w = p;
		while (*p != '\0' && clean_byte(o, (unsigned char)*p) != ' ')
			p++;
		size_t wl = (size_t)(p - w);
		if (!first) {
			if (col + 1 + wl > FOLD_AT) {
				put(o, "\r\n", 2);
				put(o, cont, cont_len);
				col = cont_len;
			} else {
				put(o, " ", 1);
				col++;
			}
		}
		first = false;
		while (wl > 0) {
			size_t take = wl > WORD_MAX ? WORD_MAX : wl;
			for (size_t i = 0; i < take; i++) {
				char c = clean_byte(o, (unsigned char)w[i]);
				put(o, &c, 1);
			}
			col += take;
			w += take;
			wl -= take;
			if (wl > 0) {
				put(o, "\r\n", 2);
				put(o, cont, cont_len);
				col = cont_len;
			}
		}
	}
}

/* "Name: value" folded, CRLF-terminated. */
static void
field(struct out *o, const char *name, const char *value)
{
	oprintf(o, "%s: ", name);
	fold(o, strlen(name) + 2, value, " ");
	put(o, "\r\n", 2);
}

/* RFC 5322 date in UTC; day and month names from tables, not the
 * locale. */
static void
date_field(struct out *o, const char *name, time_t t)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		o->err = -1;
		return;
	}
	oprintf(o, "%s: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", name, days[tm.tm_wday % 7],
		tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		tm.tm_sec);
}

static bool
has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

static bool
str_8bit(const char *s)
{
	return s != NULL && has_8bit(s, strlen(s));
}

/* An enhanced status code at p ("5.1.1" then a space or the end):
 * its length, or 0. */
static size_t
enhanced_at(const char *p)
{
	size_t i = 0;

	if (p[0] != '2' && p[0] != '4' && p[0] != '5')
		return 0;
	if (p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (isdigit((unsigned char)p[i]) && i - start < 3)
			i++;
		if (i == start || isdigit((unsigned char)p[i]))
			return 0;
		if (part == 0) {
			if (p[i] != '.')
				return 0;
			i++;
		}
	}
	return p[i] == '\0' || p[i] == ' ' || p[i] == '\t' ? i : 0;
}

/* The basic reply code at p ("550" then space, '-' or end): its class
 * digit, or 0. */
static char
basic_at(const char *p)
{
	if ((p[0] < '2' || p[0] > '5') || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]))
		return 0;
	if (p[3] != '\0' && p[3] != ' ' && p[3] != '-')
		return 0;
	return p[0];
}

void
dsn_status_of(const char *reply, char fallback, char out[DSN_STATUS_MAX])
{
	const char *p = reply != NULL ? reply : "";
	char cls;
	size_t n;

	while (*p == ' ')
		p++;
	if ((cls = basic_at(p)) != 0) {
		const char *q = p + 3;
		while (*q == ' ' || *q == '-')
			q++;
		if ((n = enhanced_at(q)) != 0 && n < DSN_STATUS_MAX) {
			memcpy(out, q, n);
			out[n] = '\0';
			return;
		}
	} else if ((n = enhanced_at(p)) != 0 && n < DSN_STATUS_MAX) {
		memcpy(out, p, n);
		out[n] = '\0';
		return;
	}
	if (cls == 0)
		cls = fallback == '2' || fallback == '4' ? fallback : '5';
	/* 3 is not a final class for a recipient: treat as failure. */
	if (cls == '3')
		cls = '5';
	out[0] = cls;
	memcpy(out + 1, ".0.0", 5);
}

static const char *
action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_ACTION_FAILED:
		return "failed";
	case DSN_ACTION_DELAYED:
		return "delayed";
	case DSN_ACTION_DELIVERED:
		return "delivered";
	case DSN_ACTION_RELAYED:
		return "relayed";
	case DSN_ACTION_EXPANDED:
		return "expanded";
	}
	return NULL;
}

static char
action_class(enum dsn_action a)
{
	return a == DSN_ACTION_FAILED ? '5' : a == DSN_ACTION_DELAYED ? '4' : '2';
}

/* The address type of an address: utf-8 (RFC 6533) for a non-ASCII one
 * in a UTF-8 report. */
static const char *
addr_type(const struct out *o, const char *addr)
{
	return o->utf8 && str_8bit(addr) ? "utf-8" : "rfc822";
}

/* Original-Recipient from ORCPT as given: "type;xtext", the xtext's
 * "+HH" decoded (RFC 3461 4.2); kept as is when it has no type. */
static void
orcpt_field(struct out *o, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *dec;
	size_t n = 0, len = strlen(orcpt);

	if (semi == NULL) {
		field(o, "Original-Recipient", orcpt);
		return;
	}
	/* Decoding only shrinks: len + 2 ("; ") bytes are enough. */
	struct buf tmp;
	buf_init(&tmp, len + 16);
	if ((dec = buf_reserve(&tmp, len + 2)) == NULL) {
		o->err = -1;
		return;
	}
	memcpy(dec, orcpt, (size_t)(semi - orcpt));
	n = (size_t)(semi - orcpt);
	dec[n++] = ';';
	dec[n++] = ' ';
	for (const char *p = semi + 1; *p != '\0'; p++) {
		if (*p == '+' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
			char hx[3] = {p[1], p[2], '\0'};
			dec[n++] = (char)strtol(hx, NULL, 16);
			p += 2;
		} else {
			dec[n++] = *p;
		}
	}
	buf_commit(&tmp, n);
	field(o, "Original-Recipient", buf_cstr(&tmp));
	buf_free(&tmp);
}

/* The original's header: up to and including the line end of its last
 * field (the empty line and the body left out). */
static size_t
header_len(const char *orig, size_t len)
{
	if (len >= 2 && orig[0] == '\r' && orig[1] == '\n')
		return 0;
	if (len >= 1 && orig[0] == '\n')
		return 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (orig[i] != '\n')
			continue;
		if (orig[i + 1] == '\n')
			return i + 1;
		if (i + 2 < len && orig[i + 1] == '\r' && orig[i + 2] == '\n')
			return i + 1;
	}
	return len;
}

static void
human_text(struct out *o, const struct dsn_params *p, const struct dsn_rcpt *rcpts, size_t n,
	   enum dsn_action kind)
{
	oprintf(o, "This is the mail system at host %s.\r\n\r\n", p->hostname);
	if (kind == DSN_ACTION_FAILED)
		puts_(o, "Your message could not be delivered to one or more recipients.\r\n"
			 "The reasons are listed below; the original is attached.\r\n");
	else if (kind == DSN_ACTION_DELAYED)
		puts_(o, "Your message has not been delivered yet to one or more\r\n"
			 "recipients. The mail system will keep trying; you do not need\r\n"
			 "to send it again.\r\n");
	else
		puts_(o, "Your message was delivered to the recipients listed below.\r\n");
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &rcpts[i];
		put(o, "\r\n<", 3);
		fold(o, 1, r->address, "    ");
		oprintf(o, ">: %s\r\n", action_name(r->action));
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			put(o, "    ", 4);
			fold(o, 4, r->diagnostic, "    ");
			put(o, "\r\n", 2);
		}
	}
}

static void
status_part(struct out *o, const struct dsn_params *p, const struct dsn_rcpt *rcpts, size_t n)
{
	oprintf(o, "Reporting-MTA: dns; %s\r\n", p->hostname);
	if (p->envid != NULL && p->envid[0] != '\0')
		field(o, "Original-Envelope-Id", p->envid);
	if (p->received_from != NULL && p->received_from[0] != '\0') {
		put(o, "Received-From-MTA: dns; ", 24);
		fold(o, 24, p->received_from, " ");
		put(o, "\r\n", 2);
	}
	if (p->arrival != 0)
		date_field(o, "Arrival-Date", p->arrival);
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &rcpts[i];
		char st[DSN_STATUS_MAX];

		put(o, "\r\n", 2);
		if (r->orcpt != NULL && r->orcpt[0] != '\0')
			orcpt_field(o, r->orcpt);
		oprintf(o, "Final-Recipient: %s; ", addr_type(o, r->address));
		fold(o, strlen("Final-Recipient: ; ") + strlen(addr_type(o, r->address)),
		     r->address, " ");
		put(o, "\r\n", 2);
		oprintf(o, "Action: %s\r\n", action_name(r->action));
		if (r->status != NULL && enhanced_at(r->status) == strlen(r->status) &&
		    strlen(r->status) < DSN_STATUS_MAX)
			oprintf(o, "Status: %s\r\n", r->status);
		else {
			dsn_status_of(r->diagnostic, action_class(r->action), st);
			oprintf(o, "Status: %s\r\n", st);
		}
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			put(o, "Remote-MTA: dns; ", 17);
			fold(o, 17, r->remote_mta, " ");
			put(o, "\r\n", 2);
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			const char *d = r->diagnostic;
			while (*d == ' ')
				d++;
			/* An SMTP reply is typed smtp; Tern's own words are not. */
			const char *type = basic_at(d) != 0 ? "smtp" : "X-Tern";
			oprintf(o, "Diagnostic-Code: %s; ", type);
			fold(o, strlen("Diagnostic-Code: ; ") + strlen(type), d, " ");
			put(o, "\r\n", 2);
		}
		if (r->last_attempt != 0)
			date_field(o, "Last-Attempt-Date", r->last_attempt);
		if (r->action == DSN_ACTION_DELAYED && r->will_retry_until != 0)
			date_field(o, "Will-Retry-Until", r->will_retry_until);
	}
}

int
dsn_compose(const struct dsn_params *p, const struct dsn_rcpt *rcpts, size_t n, const char *orig,
	    size_t orig_len, struct buf *out)
{
	struct out o = {.b = out, .utf8 = p->smtputf8};
	enum dsn_action kind = DSN_ACTION_DELIVERED;

	if (p->hostname == NULL || p->hostname[0] == '\0' || n == 0 || rcpts == NULL ||
	    (orig == NULL && orig_len > 0))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (rcpts[i].address == NULL || action_name(rcpts[i].action) == NULL)
			return -1;
		if (rcpts[i].action == DSN_ACTION_FAILED)
			kind = DSN_ACTION_FAILED;
		else if (rcpts[i].action == DSN_ACTION_DELAYED && kind != DSN_ACTION_FAILED)
			kind = DSN_ACTION_DELAYED;
	}
	if (orig == NULL)
		orig = "";

	bool full = p->ret == QUEUE_RET_FULL;
	size_t incl = full ? orig_len : header_len(orig, orig_len);
	bool orig8 = has_8bit(orig, incl);
	bool eight = orig8;
	if (p->smtputf8) {
		eight = eight || str_8bit(p->sender) || str_8bit(p->envid);
		for (size_t i = 0; i < n; i++)
			eight = eight || str_8bit(rcpts[i].address) || str_8bit(rcpts[i].orcpt) ||
				str_8bit(rcpts[i].diagnostic);
	}

	/* A boundary that the original does not contain; "=_" cannot occur
	 * in base64 or quoted-printable text either. */
	struct buf bnd;
	buf_init(&bnd, 256);
	for (unsigned try = 0;; try++) {
		buf_reset(&bnd);
		if (buf_printf(&bnd, "--=_tern-dsn-%016llx-%u", (unsigned long long)p->id, try) <
		    0) {
			buf_free(&bnd);
			return -1;
		}
		if (incl < bnd.len || memmem(orig, incl, bnd.data, bnd.len) == NULL)
			break;
	}
	const char *delim = bnd.data; /* "--" boundary */

	const char *subject = kind == DSN_ACTION_FAILED	   ? "Undelivered Mail Returned to Sender"
			      : kind == DSN_ACTION_DELAYED ? "Delayed Mail (still being retried)"
							   : "Successful Mail Delivery Report";
	oprintf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", p->hostname);
	if (p->sender != NULL && p->sender[0] != '\0') {
		put(&o, "To: <", 5);
		fold(&o, 5, p->sender, " ");
		put(&o, ">\r\n", 3);
	}
	oprintf(&o, "Subject: %s\r\n", subject);
	date_field(&o, "Date", p->now);
	oprintf(&o, "Message-ID: <%lld.%016llx.dsn@%s>\r\n", (long long)p->now,
		(unsigned long long)p->id, p->hostname);
	puts_(&o, "Auto-Submitted: auto-replied\r\n");
	puts_(&o, "MIME-Version: 1.0\r\n");
	oprintf(&o,
		"Content-Type: multipart/report; report-type=delivery-status;\r\n"
		"\tboundary=\"%s\"\r\n",
		delim + 2);
	oprintf(&o, "Content-Transfer-Encoding: %s\r\n", eight ? "8bit" : "7bit");
	puts_(&o, "\r\nThis is a MIME-encapsulated message.\r\n");

	/* 1: for people */
	oprintf(&o, "\r\n%s\r\n", delim);
	oprintf(&o, "Content-Type: text/plain; charset=%s\r\n", p->smtputf8 ? "utf-8" : "us-ascii");
	if (p->smtputf8 && eight)
		puts_(&o, "Content-Transfer-Encoding: 8bit\r\n");
	puts_(&o, "Content-Description: Notification\r\n\r\n");
	human_text(&o, p, rcpts, n, kind);

	/* 2: for programs */
	oprintf(&o, "\r\n%s\r\n", delim);
	oprintf(&o, "Content-Type: message/%sdelivery-status\r\n", p->smtputf8 ? "global-" : "");
	if (p->smtputf8 && eight)
		puts_(&o, "Content-Transfer-Encoding: 8bit\r\n");
	puts_(&o, "Content-Description: Delivery report\r\n\r\n");
	status_part(&o, p, rcpts, n);

	/* 3: the original, or its header */
	oprintf(&o, "\r\n%s\r\n", delim);
	if (full)
		oprintf(&o, "Content-Type: message/%s\r\n", p->smtputf8 ? "global" : "rfc822");
	else if (p->smtputf8)
		puts_(&o, "Content-Type: message/global-headers\r\n");
	else
		puts_(&o, "Content-Type: text/rfc822-headers\r\n");
	if (orig8)
		puts_(&o, "Content-Transfer-Encoding: 8bit\r\n");
	oprintf(&o, "Content-Description: %s\r\n\r\n",
		full ? "Original message" : "Original message header");
	put(&o, orig, incl);
	oprintf(&o, "\r\n%s--\r\n", delim);
	buf_free(&bnd);
	return o.err;
}
