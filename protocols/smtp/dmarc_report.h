/*
 * dmarc_report.h - DMARC aggregate reports (RFC 7489 7.2, Appendix C):
 * the pure parts. What one message contributes (a row), how rows and
 * published policies are kept as bytes in the store (storage/
 * store_dmarc.h), the rua= mailto: destinations, the XML feedback
 * document, and the report message (RFC 7489 7.2.1.1: a gzipped XML
 * attachment named receiver!policy-domain!begin!end.xml.gz).
 *
 * No I/O, no clock: the caller passes times and ids. Any thread.
 * Decoded strings point into the bytes decoded (borrowed). How it
 * fails: -1 when out's cap is reached or the bytes are not a row or
 * policy this build wrote; text from the network is escaped for XML
 * and cleaned of control characters, so it can never add an element or
 * a header field.
 */
#ifndef TERN_DMARC_REPORT_H
#define TERN_DMARC_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/smtp/dmarc.h"
#include "storage/store_dmarc.h"

#define DMARC_ROW_DKIM_MAX 5 /* signatures verified (SMTP_DKIM_SIGS_MAX) */
#define DMARC_RUA_MAX 4	     /* mailto: destinations used per policy */

/* A DKIM result of the message (<auth_results><dkim>). */
struct dmarc_row_dkim {
	const char *domain, *selector;
	const char *result; /* RFC 7489 DKIMResultType: "pass", "fail"... */
};

/* Everything a report's <record> says of a message, apart from the count. */
struct dmarc_row {
	const char *source_ip;
	const char *header_from;
	const char *envelope_from; /* RFC5321.MailFrom domain, "" for <> */
	const char *disposition;   /* "none", "quarantine", "reject" */
	bool dkim_pass, spf_pass;  /* policy_evaluated: aligned passes */
	const char *reason;	   /* "" or a PolicyOverrideType ("sampled_out",
				      "local_policy") */
	const char *spf_domain;	   /* the domain SPF checked ("" if none) */
	const char *spf_scope;	   /* "mfrom" or "helo" */
	const char *spf_result;	   /* SPFResultType: "none", "pass"... */
	struct dmarc_row_dkim dkim[DMARC_ROW_DKIM_MAX];
	size_t ndkim;
};

/* Rows and policies as stored: NUL-terminated strings one after the
 * other. decode points r's strings into p. 0 or -1. */
int dmarc_row_encode(const struct dmarc_row *r, struct buf *out);
int dmarc_row_decode(const void *p, size_t len, struct dmarc_row *r);

/* <policy_published> as last seen. */
struct dmarc_published {
	const char *p, *sp;	  /* sp: what applies to subdomains (p if absent) */
	const char *adkim, *aspf; /* "r" or "s" */
	unsigned pct;
	const char *rua; /* the rua= value as published */
};
int dmarc_policy_encode(const struct dmarc_record *rec, struct buf *out);
int dmarc_policy_decode(const void *p, size_t len, struct dmarc_published *r);

/* The mailto: addresses of a rua= value (RFC 7489 6.2, 6.3): up to max,
 * percent-decoded, without a "!size" limit suffix (sizes are not
 * honoured: every report is sent whole) and without "?" headers;
 * other schemes and addresses without a domain are skipped. Copies in
 * a; the number found. */
size_t dmarc_rua_mailto(const char *rua, struct arena *a, const char **addrs, size_t max);

/* Who reports, and the period. */
struct dmarc_report_meta {
	const char *org_name;  /* <org_name> */
	const char *email;     /* <email>, From: (the report address) */
	const char *receiver;  /* our domain: filename and Submitter */
	const char *report_id; /* unique per report, a msg-id without <>
				  (7.2.1.1: Subject's Report-ID, and the
				  report's Message-ID) */
	int64_t begin, end;    /* <date_range>, UTC seconds */
};

/* The whole XML document for d (rows that do not decode are left out,
 * *skipped_r counts them; may be NULL). 0, or -1 when out's cap is hit
 * or no row decodes. */
int dmarc_report_xml(const struct dmarc_report_meta *m, const struct store_dmarc_domain *d,
		     struct buf *out, size_t *skipped_r);

/* The attachment's file name (7.2.1.1): receiver!domain!begin!end.xml.gz. */
int dmarc_report_filename(const struct dmarc_report_meta *m, const char *domain, struct buf *out);

/* The report message (header and body, CRLF): a text part and the XML
 * gzipped as application/gzip, to the addresses in to. 0 or -1. */
int dmarc_report_message(const struct dmarc_report_meta *m, const char *domain,
			 const char *const *to, size_t nto, const char *xml, size_t xml_len,
			 struct buf *out);

#endif
