/*
 * dmarc.h - DMARC (RFC 7489) without DNS: the RFC5322.From domain of a
 * message, policy records, organizational domains (the public suffix
 * list through libpsl, which reads Debian's publicsuffix package),
 * identifier alignment, and the evaluation of one message.
 *
 * The caller (smtp_inauth.c) looks up _dmarc.<From domain>, then
 * _dmarc.<organizational domain> (RFC 7489 6.6.3) and hands the TXT
 * records to dmarc_select(). rua= is kept for aggregate reports
 * (dmarc_report.h); failure reports (ruf) are never sent.
 *
 * Pure apart from the suffix list, loaded once and read-only afterwards
 * (any thread). How it fails: without a suffix list (libpsl cannot load
 * one) a domain is its own organizational domain, so relaxed alignment
 * degrades to strict (a false fail, never a false pass); logged once.
 */
#ifndef TERN_DMARC_H
#define TERN_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/dns.h"

enum dmarc_policy {
	DMARC_P_UNSET = 0, /* sp= absent */
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};
const char *dmarc_policy_name(enum dmarc_policy p);

struct dmarc_record {
	enum dmarc_policy p;
	enum dmarc_policy sp; /* DMARC_P_UNSET: p applies to subdomains */
	unsigned pct;	      /* 0..100, default 100 */
	bool adkim_strict;    /* adkim=s */
	bool aspf_strict;     /* aspf=s */
	bool has_rua;	      /* rua= named at least one valid URI */
	const char *rua;      /* rua='s value, borrowed from the parsed text
				 (not NUL-terminated), or NULL */
	size_t rua_len;
};

/* Parses one TXT record. 0 with *r; -1 when it is not a DMARC record
 * (no "v=DMARC1" first: RFC 7489 6.6.3 discards it); -2 when it is one
 * but has no valid p= (or an invalid sp=) and no valid rua= (6.6.3 step
 * 6: no DMARC processing). With a valid rua, a bad p= reads as p=none.
 * Bad values of other tags keep their defaults; unknown tags are
 * ignored (6.3). */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r);

enum dmarc_select {
	DMARC_SEL_FOUND,   /* *r holds the one record */
	DMARC_SEL_NONE,	   /* no DMARC record among them: try the next name */
	DMARC_SEL_NOPOLICY /* several records, or one unusable: no DMARC */
};
/* Picks the policy record out of a TXT answer (6.6.3 steps 3-6). */
enum dmarc_select dmarc_select(const struct dns_result *res, struct dmarc_record *r);

/* The organizational domain of a lower-case domain (RFC 7489 3.2): the
 * public suffix plus one label; the domain itself when it is a suffix
 * or shorter. Returns a pointer into domain. */
const char *dmarc_org_domain(const char *domain);

/* Identifier alignment (3.1): strict is equality, relaxed equal
 * organizational domains. Case-insensitive, a trailing dot ignored. */
bool dmarc_aligned(const char *a, const char *b, bool strict);

enum dmarc_from {
	DMARC_FROM_OK = 0,
	DMARC_FROM_NONE = -1,	 /* no From field */
	DMARC_FROM_MULTI = -2,	 /* several From fields or addresses (6.6.1) */
	DMARC_FROM_INVALID = -3, /* unparsable, or an address without domain */
};
/* The domain of the single From address of msg (header, blank line,
 * body; CRLF), lower-cased into out[cap]. */
enum dmarc_from dmarc_from_domain(const char *msg, size_t len, char *out, size_t cap);

/* What the checks gave, for dmarc_evaluate. */
struct dmarc_input {
	const char *from_domain;
	const char *spf_domain; /* the domain SPF checked, with its result */
	bool spf_pass;
	const char **dkim_pass_d; /* d= of every signature that passed */
	size_t ndkim_pass;
	const struct dmarc_record *rec;
	bool at_org;	 /* the record came from _dmarc.<organizational domain> */
	unsigned sample; /* 0..99, uniformly random: pct (6.6.4) */
};

struct dmarc_outcome {
	bool pass;
	bool dkim_aligned;	   /* an aligned DKIM pass (reports' <dkim>) */
	bool spf_aligned;	   /* an aligned SPF pass (reports' <spf>) */
	enum dmarc_policy policy;  /* the record's policy for the From domain */
	enum dmarc_policy applied; /* on fail, after pct; DMARC_P_NONE on pass */
	const char *reason;	   /* static, for the A-R comment */
};
void dmarc_evaluate(const struct dmarc_input *in, struct dmarc_outcome *out);

#endif
