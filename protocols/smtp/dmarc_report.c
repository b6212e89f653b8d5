/*
 * dmarc_report.c - the pure parts of DMARC aggregate reports (see
 * dmarc_report.h): rows and policies as bytes, rua= mailto: addresses,
 * the XML feedback document (RFC 7489 Appendix C) and the report
 * message with its gzipped attachment (7.2.1.1).
 *
 * How it fails: -1 on a full buffer, bytes that are not a row or a
 * policy, or a zlib error; nothing is written to the network from here.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <zlib.h>

#include "core/base64.h"
#include "protocols/smtp/dmarc_report.h"

#define ROW_FIXED 10 /* strings before the DKIM triples */

/* ---- rows and policies as bytes ---- */

static int
put_str(struct buf *out, const char *s)
{
	return buf_append(out, s != NULL ? s : "", strlen(s != NULL ? s : "") + 1);
}

int
dmarc_row_encode(const struct dmarc_row *r, struct buf *out)
{
	const char *f[ROW_FIXED] = {
	    r->source_ip,
	    r->header_from,
	    r->envelope_from,
	    r->disposition,
	    r->dkim_pass ? "pass" : "fail",
	    r->spf_pass ? "pass" : "fail",
	    r->reason,
	    r->spf_domain,
	    r->spf_scope,
	    r->spf_result,
	};
	for (size_t i = 0; i < ROW_FIXED; i++)
		if (put_str(out, f[i]) < 0)
			return -1;
	for (size_t i = 0; i < r->ndkim && i < DMARC_ROW_DKIM_MAX; i++)
		if (put_str(out, r->dkim[i].domain) < 0 || put_str(out, r->dkim[i].selector) < 0 ||
		    put_str(out, r->dkim[i].result) < 0)
			return -1;
	return 0;
}

/* Splits p into NUL-terminated strings; their number, or -1 when p does
 * not end with a NUL. */
static int
split(const void *p, size_t len, const char **v, size_t max)
{
	const char *s = p, *end = s + len;
	size_t n = 0;

	if (len == 0 || end[-1] != '\0')
		return -1;
	while (s < end) {
		if (n == max)
			return -1;
		v[n++] = s;
		s += strlen(s) + 1;
	}
	return (int)n;
}

int
dmarc_row_decode(const void *p, size_t len, struct dmarc_row *r)
{
	const char *v[ROW_FIXED + 3 * DMARC_ROW_DKIM_MAX];
	int n = split(p, len, v, sizeof(v) / sizeof(v[0]));

	memset(r, 0, sizeof(*r));
	if (n < ROW_FIXED || (n - ROW_FIXED) % 3 != 0)
		return -1;
	r->source_ip = v[0];
	r->header_from = v[1];
	r->envelope_from = v[2];
	r->disposition = v[3];
	r->dkim_pass = strcmp(v[4], "pass") == 0;
	r->spf_pass = strcmp(v[5], "pass") == 0;
	r->reason = v[6];
	r->spf_domain = v[7];
	r->spf_scope = v[8];
	r->spf_result = v[9];
	for (int i = ROW_FIXED; i < n; i += 3) {
		struct dmarc_row_dkim *k = &r->dkim[r->ndkim++];
		k->domain = v[i];
		k->selector = v[i + 1];
		k->result = v[i + 2];
	}
	return 0;
}

int
dmarc_policy_encode(const struct dmarc_record *rec, struct buf *out)
{
	enum dmarc_policy sp = rec->sp != DMARC_P_UNSET ? rec->sp : rec->p;
	char pct[8];

	snprintf(pct, sizeof(pct), "%u", rec->pct);
	if (put_str(out, dmarc_policy_name(rec->p)) < 0 ||
	    put_str(out, dmarc_policy_name(sp)) < 0 || put_str(out, pct) < 0 ||
	    put_str(out, rec->adkim_strict ? "s" : "r") < 0 ||
	    put_str(out, rec->aspf_strict ? "s" : "r") < 0)
		return -1;
	if (buf_append(out, rec->rua != NULL ? rec->rua : "", rec->rua_len) < 0 ||
	    buf_putc(out, '\0') < 0)
		return -1;
	return 0;
}

int
dmarc_policy_decode(const void *p, size_t len, struct dmarc_published *r)
{
	const char *v[6];

	memset(r, 0, sizeof(*r));
	if (split(p, len, v, 6) != 6)
		return -1;
	r->p = v[0];
	r->sp = v[1];
	r->pct = (unsigned)strtoul(v[2], NULL, 10);
	r->adkim = v[3];
	r->aspf = v[4];
	r->rua = v[5];
	return 0;
}

/* ---- rua= ---- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t
dmarc_rua_mailto(const char *rua, struct arena *a, const char **addrs, size_t max)
{
	const char *p = rua;
	size_t n = 0;

	while (*p != '\0' && n < max) {
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		while (len > 0 && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len > 7 && strncasecmp(p, "mailto:", 7) == 0) {
			/* 6.2: a "!" ends the URI before an optional size */
			const char *q = p + 7, *qe = p + len;
			const char *bang = memchr(q, '!', (size_t)(qe - q));
			const char *quest = memchr(q, '?', (size_t)(qe - q));
			if (bang != NULL)
				qe = bang;
			if (quest != NULL && quest < qe)
				qe = quest;
			char *d = arena_alloc(a, (size_t)(qe - q) + 1), *o = d;
			bool ok = true;
			for (; q < qe; q++) {
				if (*q == '%' && qe - q >= 3 && hexval(q[1]) >= 0 &&
				    hexval(q[2]) >= 0) {
					*o++ = (char)(hexval(q[1]) * 16 + hexval(q[2]));
					q += 2;
				} else {
					*o++ = *q;
				}
				if ((unsigned char)o[-1] <= ' ' || o[-1] == '<' || o[-1] == '>' ||
				    o[-1] == ',' || o[-1] == 0x7f)
					ok = false;
			}
			*o = '\0';
			const char *at = strrchr(d, '@');
			if (ok && at != NULL && at > d && at[1] != '\0') {
				for (char *c = (char *)at + 1; *c != '\0'; c++)
					*c = (char)tolower((unsigned char)*c);
				addrs[n++] = d;
			}
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return n;
}

/* ---- XML ---- */

/* Appends s escaped for XML character data; control characters (not
 * allowed in XML 1.0) and 8-bit bytes become '?'. */
static int
xml_text(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		int r;
		if (c == '<')
			r = buf_append_str(out, "&lt;");
		else if (c == '>')
			r = buf_append_str(out, "&gt;");
		else if (c == '&')
			r = buf_append_str(out, "&amp;");
		else if (c == '"')
			r = buf_append_str(out, "&quot;");
		else if (c == '\'')
			r = buf_append_str(out, "&apos;");
		else
			r = buf_putc(out, c < 0x20 || c >= 0x7f ? '?' : (char)c);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* <name>text</name> at an indent. */
static int
elem(struct buf *out, int indent, const char *name, const char *text)
{
	if (buf_printf(out, "%*s<%s>", indent, "", name) < 0 || xml_text(out, text) < 0 ||
	    buf_printf(out, "</%s>\n", name) < 0)
		return -1;
	return 0;
}

static int
xml_row(struct buf *out, const struct dmarc_row *r, uint64_t count)
{
	char n[24];

	snprintf(n, sizeof(n), "%" PRIu64, count);
	if (buf_append_str(out, "  <record>\n    <row>\n") < 0 ||
	    elem(out, 6, "source_ip", r->source_ip) < 0 || elem(out, 6, "count", n) < 0 ||
	    buf_append_str(out, "      <policy_evaluated>\n") < 0 ||
	    elem(out, 8, "disposition", r->disposition) < 0 ||
	    elem(out, 8, "dkim", r->dkim_pass ? "pass" : "fail") < 0 ||
	    elem(out, 8, "spf", r->spf_pass ? "pass" : "fail") < 0)
		return -1;
	if (r->reason[0] != '\0' && (buf_append_str(out, "        <reason>\n") < 0 ||
				     elem(out, 10, "type", r->reason) < 0 ||
				     buf_append_str(out, "        </reason>\n") < 0))
		return -1;
	if (buf_append_str(out, "      </policy_evaluated>\n    </row>\n"
				"    <identifiers>\n") < 0 ||
	    elem(out, 6, "envelope_from", r->envelope_from) < 0 ||
	    elem(out, 6, "header_from", r->header_from) < 0 ||
	    buf_append_str(out, "    </identifiers>\n    <auth_results>\n") < 0)
		return -1;
	for (size_t i = 0; i < r->ndkim; i++) {
		const struct dmarc_row_dkim *k = &r->dkim[i];
		if (buf_append_str(out, "      <dkim>\n") < 0 ||
		    elem(out, 8, "domain", k->domain) < 0 ||
		    (k->selector[0] != '\0' && elem(out, 8, "selector", k->selector) < 0) ||
		    elem(out, 8, "result", k->result) < 0 ||
		    buf_append_str(out, "      </dkim>\n") < 0)
			return -1;
	}
	/* Appendix C: at least one <spf>, even when SPF was not checked */
	if (buf_append_str(out, "      <spf>\n") < 0 || elem(out, 8, "domain", r->spf_domain) < 0 ||
	    elem(out, 8, "scope", r->spf_scope) < 0 || elem(out, 8, "result", r->spf_result) < 0 ||
	    buf_append_str(out, "      </spf>\n    </auth_results>\n  </record>\n") < 0)
		return -1;
	return 0;
}

int
dmarc_report_xml(const struct dmarc_report_meta *m, const struct store_dmarc_domain *d,
		 struct buf *out, size_t *skipped_r)
{
	struct dmarc_published pub;
	char b[24], e[24], pct[8];
	size_t rows = 0, skipped = 0;

	if (dmarc_policy_decode(d->policy, d->policy_len, &pub) < 0)
		return -1;
	snprintf(b, sizeof(b), "%" PRId64, m->begin);
	snprintf(e, sizeof(e), "%" PRId64, m->end);
	snprintf(pct, sizeof(pct), "%u", pub.pct);
	if (buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n"
				"  <version>1.0</version>\n  <report_metadata>\n") < 0 ||
	    elem(out, 4, "org_name", m->org_name) < 0 || elem(out, 4, "email", m->email) < 0 ||
	    elem(out, 4, "report_id", m->report_id) < 0 ||
	    buf_append_str(out, "    <date_range>\n") < 0 || elem(out, 6, "begin", b) < 0 ||
	    elem(out, 6, "end", e) < 0 ||
	    buf_append_str(out, "    </date_range>\n  </report_metadata>\n"
				"  <policy_published>\n") < 0 ||
	    elem(out, 4, "domain", d->domain) < 0 || elem(out, 4, "adkim", pub.adkim) < 0 ||
	    elem(out, 4, "aspf", pub.aspf) < 0 || elem(out, 4, "p", pub.p) < 0 ||
	    elem(out, 4, "sp", pub.sp) < 0 || elem(out, 4, "pct", pct) < 0 ||
	    buf_append_str(out, "  </policy_published>\n") < 0)
		return -1;
	for (size_t i = 0; i < d->nrows; i++) {
		struct dmarc_row r;
		if (dmarc_row_decode(d->rows[i].row, d->rows[i].row_len, &r) < 0) {
			skipped++;
			continue;
		}
		if (xml_row(out, &r, d->rows[i].count) < 0)
			return -1;
		rows++;
	}
	if (skipped_r != NULL)
		*skipped_r = skipped;
	if (rows == 0 || buf_append_str(out, "</feedback>\n") < 0)
		return -1;
	return 0;
}

/* ---- the message ---- */

int
dmarc_report_filename(const struct dmarc_report_meta *m, const char *domain, struct buf *out)
{
	/* 7.2.1.1: filename = receiver "!" policy-domain "!" begin "!" end
	 * "." extension; the names are domains, nothing to quote */
	return buf_printf(out, "%s!%s!%" PRId64 "!%" PRId64 ".xml.gz", m->receiver, domain,
			  m->begin, m->end);
}

static int
gzip_into(const char *in, size_t len, struct buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper (RFC 1952) */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	int r = Z_OK;
	while (r == Z_OK) {
		size_t room = deflateBound(&z, (uLong)len) + 64;
		char *p = buf_reserve(out, room);
		if (p == NULL)
			break;
		z.next_out = (Bytef *)p;
		z.avail_out = (uInt)room;
		r = deflate(&z, Z_FINISH);
		buf_commit(out, room - z.avail_out);
	}
	deflateEnd(&z);
	return r == Z_STREAM_END ? 0 : -1;
}

/* A header value from configuration or DNS: controls become spaces. */
static int
hdr_text(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++)
		if (buf_putc(out, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s) < 0)
			return -1;
	return 0;
}

static int
message_head(const struct dmarc_report_meta *m, const char *domain, const char *const *to,
	     size_t nto, const char *boundary, struct buf *out)
{
	char date[64];
	struct tm tm;
	time_t t = (time_t)m->end;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (buf_append_str(out, "From: <") < 0 || hdr_text(out, m->email) < 0 ||
	    buf_append_str(out, ">\r\nTo: ") < 0)
		return -1;
	for (size_t i = 0; i < nto; i++)
		if (buf_printf(out, "%s<", i > 0 ? ",\r\n " : "") < 0 || hdr_text(out, to[i]) < 0 ||
		    buf_putc(out, '>') < 0)
			return -1;
	/* 7.2.1.1: the Subject names the domain, the submitter and the id;
	 * folded between the parts, as in the RFC's example */
	if (buf_printf(out, "\r\nDate: %s\r\nSubject: Report Domain: ", date) < 0 ||
	    hdr_text(out, domain) < 0 || buf_append_str(out, "\r\n Submitter: ") < 0 ||
	    hdr_text(out, m->receiver) < 0 || buf_append_str(out, "\r\n Report-ID: <") < 0 ||
	    hdr_text(out, m->report_id) < 0 ||
	    buf_printf(out,
		       ">\r\nMessage-ID: <%s>\r\n"
		       "MIME-Version: 1.0\r\n"
		       "Auto-Submitted: auto-generated\r\n"
		       "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n"
		       "This is a multipart message in MIME format.\r\n",
		       m->report_id, boundary) < 0)
		return -1;
	return 0;
}

int
dmarc_report_message(const struct dmarc_report_meta *m, const char *domain, const char *const *to,
		     size_t nto, const char *xml, size_t xml_len, struct buf *out)
{
	struct buf gz, b64, fname;
	char boundary[96];
	int rc = -1;

	if (nto == 0)
		return -1;
	/* the id's left part: '@' is not a boundary character (RFC 2046) */
	snprintf(boundary, sizeof(boundary), "=_tern-dmarc-%.*s", (int)strcspn(m->report_id, "@"),
		 m->report_id);
	buf_init(&gz, out->max > 0 ? out->max : 64u << 20);
	buf_init(&b64, out->max > 0 ? out->max : 64u << 20);
	buf_init(&fname, 4096);
	if (gzip_into(xml, xml_len, &gz) < 0 || base64_encode(gz.data, gz.len, &b64) < 0 ||
	    dmarc_report_filename(m, domain, &fname) < 0 ||
	    message_head(m, domain, to, nto, boundary, out) < 0)
		goto out;
	if (buf_printf(out,
		       "\r\n--%s\r\n"
		       "Content-Type: text/plain; charset=us-ascii\r\n"
		       "Content-Transfer-Encoding: 7bit\r\n\r\n"
		       "This is a DMARC aggregate report (RFC 7489) for ",
		       boundary) < 0 ||
	    hdr_text(out, domain) < 0 || buf_append_str(out, " from ") < 0 ||
	    hdr_text(out, m->org_name) < 0 ||
	    buf_printf(out,
		       ".\r\n\r\n--%s\r\n"
		       "Content-Type: application/gzip\r\n"
		       "Content-Transfer-Encoding: base64\r\n"
		       "Content-Disposition: attachment;\r\n filename=\"%s\"\r\n\r\n",
		       boundary, buf_cstr(&fname)) < 0)
		goto out;
	for (size_t off = 0; off < b64.len; off += 76) {
		size_t n = b64.len - off < 76 ? b64.len - off : 76;
		if (buf_append(out, b64.data + off, n) < 0 || buf_append_str(out, "\r\n") < 0)
			goto out;
	}
	if (buf_printf(out, "\r\n--%s--\r\n", boundary) < 0)
		goto out;
	rc = 0;
out:
	buf_free(&gz);
	buf_free(&b64);
	buf_free(&fname);
	return rc;
}
