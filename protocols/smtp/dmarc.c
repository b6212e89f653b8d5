/*
 * dmarc.c - the pure parts of DMARC (RFC 7489): record parsing, policy
 * record selection, organizational domains (libpsl), alignment, the
 * From domain and the evaluation. See dmarc.h; unit-tested.
 *
 * How it fails: a record that does not parse is not a policy (RFC 7489
 * 6.6.3); a missing suffix list makes every domain its own
 * organizational domain (logged once).
 */
#include <ctype.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "protocols/smtp/dkim_internal.h"
#include "protocols/smtp/dmarc.h"
#include "protocols/smtp/smtp_parser.h"

#define DMARC_TAGS_MAX 32

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_NONE:
		return "none";
	case DMARC_P_QUARANTINE:
		return "quarantine";
	case DMARC_P_REJECT:
		return "reject";
	default:
		return "unset";
	}
}

static bool
tag_is(const struct dkim_tag *t, const char *name)
{
	size_t n = strlen(name);
	return t->name_len == n && memcmp(t->name, name, n) == 0;
}

static bool
value_is(const struct dkim_tag *t, const char *v)
{
	size_t n = strlen(v);
	return t->value_len == n && strncasecmp(t->value, v, n) == 0;
}

static enum dmarc_policy
parse_policy(const struct dkim_tag *t)
{
	if (value_is(t, "none"))
		return DMARC_P_NONE;
	if (value_is(t, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (value_is(t, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* 6.3 rua: a comma-separated list of URIs; one "scheme:rest" will do. */
static bool
has_valid_uri(const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma != NULL ? comma : end;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		const char *s = p;
		while (p < e && (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'))
			p++;
		if (p > s && isalpha((unsigned char)*s) && p < e && *p == ':' && p + 1 < e)
			return true;
		p = comma != NULL ? comma + 1 : end;
	}
	return false;
}

static bool
starts_dmarc1(const char *txt, size_t len)
{
	/* 6.3: v= first, exactly "DMARC1" (FWS allowed around "=") */
	const char *p = txt, *end = txt + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p < 1 || *p != 'v')
		return false;
	for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	if (p == end || *p != '=')
		return false;
	for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	if (end - p < 6 || memcmp(p, "DMARC1", 6) != 0)
		return false;
	for (p += 6; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	return p == end || *p == ';';
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r)
{
	struct dkim_tag tags[DMARC_TAGS_MAX];
	size_t n = 0;
	bool p_ok = false, sp_bad = false;

	memset(r, 0, sizeof(*r));
	r->pct = 100;
	if (!starts_dmarc1(txt, len))
		return -1;
	if (dkim_tag_list_parse(txt, len, tags, DMARC_TAGS_MAX, &n) < 0)
		return -2;
	for (size_t i = 1; i < n; i++) {
		const struct dkim_tag *t = &tags[i];
		if (tag_is(t, "p")) {
			r->p = parse_policy(t);
			p_ok = r->p != DMARC_P_UNSET;
		} else if (tag_is(t, "sp")) {
			r->sp = parse_policy(t);
			sp_bad = r->sp == DMARC_P_UNSET;
		} else if (tag_is(t, "pct")) {
			unsigned v = 0;
			size_t k = 0;
			for (; k < t->value_len && isdigit((unsigned char)t->value[k]) && v <= 100;
			     k++)
				v = v * 10 + (unsigned)(t->value[k] - '0');
			if (k > 0 && k == t->value_len && v <= 100)
				r->pct = v;
		} else if (tag_is(t, "adkim")) {
			r->adkim_strict = value_is(t, "s");
		} else if (tag_is(t, "aspf")) {
			r->aspf_strict = value_is(t, "s");
		} else if (tag_is(t, "rua")) {
			r->has_rua = has_valid_uri(t->value, t->value_len);
			r->rua = r->has_rua ? t->value : NULL;
			r->rua_len = r->has_rua ? t->value_len : 0;
		}
		/* ruf, fo, rf, ri: failure reports are not sent; unknown tags
		 * ignored */
	}
	if (!p_ok || sp_bad) {
		/* 6.6.3 step 6 */
		if (!r->has_rua)
			return -2;
		r->p = DMARC_P_NONE;
		if (sp_bad)
			r->sp = DMARC_P_UNSET;
	}
	return 0;
}

enum dmarc_select
dmarc_select(const struct dns_result *res, struct dmarc_record *r)
{
	size_t found = 0;
	int last = -1;

	if (res->status != DNS_OK)
		return DMARC_SEL_NONE;
	for (size_t i = 0; i < res->n; i++) {
		struct dmarc_record tmp;
		int k = dmarc_record_parse(res->rr[i].text, res->rr[i].len, &tmp);
		if (k == -1)
			continue;
		found++;
		last = k;
		if (k == 0)
			*r = tmp;
	}
	if (found == 0)
		return DMARC_SEL_NONE;
	if (found > 1 || last != 0)
		return DMARC_SEL_NOPOLICY;
	return DMARC_SEL_FOUND;
}

static const psl_ctx_t *psl;
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;

static void
psl_load(void)
{
	/* The newer of the built-in list and Debian's publicsuffix file. */
	psl = psl_latest(NULL);
	if (psl == NULL)
		psl = psl_builtin();
	if (psl == NULL)
		log_warn(0, "dmarc", "no public suffix list: relaxed alignment is strict");
}

const char *
dmarc_org_domain(const char *domain)
{
	pthread_once(&psl_once, psl_load);
	if (psl == NULL)
		return domain;
	const char *r = psl_registrable_domain(psl, domain);
	return r != NULL ? r : domain;
}

/* Equal domains, case-insensitive, a trailing dot ignored. */
static bool
same_domain(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

bool
dmarc_aligned(const char *a, const char *b, bool strict)
{
	if (strict)
		return same_domain(a, b);
	char la[256], lb[256];
	size_t i;
	for (i = 0; a[i] != '\0' && i < sizeof(la) - 1; i++)
		la[i] = (char)tolower((unsigned char)a[i]);
	la[i] = '\0';
	if (i > 0 && la[i - 1] == '.')
		la[i - 1] = '\0';
	for (i = 0; b[i] != '\0' && i < sizeof(lb) - 1; i++)
		lb[i] = (char)tolower((unsigned char)b[i]);
	lb[i] = '\0';
	if (i > 0 && lb[i - 1] == '.')
		lb[i - 1] = '\0';
	return same_domain(dmarc_org_domain(la), dmarc_org_domain(lb));
}

enum dmarc_from
dmarc_from_domain(const char *msg, size_t len, char *out, size_t cap)
{
	struct dkim_field *f;
	size_t nf, body_off, nfrom = 0;
	enum dmarc_from r = DMARC_FROM_NONE;

	if (dkim_split_header(msg, len, &f, &nf, &body_off) < 0)
		return DMARC_FROM_INVALID;
	struct buf addrs;
	buf_init(&addrs, 64 * 1024);
	for (size_t i = 0; i < nf; i++) {
		if (!dkim_field_is(&f[i], "From", 4))
			continue;
		if (++nfrom > 1) {
			r = DMARC_FROM_MULTI;
			break;
		}
		const char *colon = memchr(f[i].p, ':', f[i].len);
		buf_reset(&addrs);
		int n = colon == NULL
			    ? -1
			    : smtp_address_list(colon + 1, (size_t)(f[i].p + f[i].len - colon - 1),
						&addrs);
		if (n > 1) {
			r = DMARC_FROM_MULTI;
			continue;
		}
		const char *at = n == 1 ? strrchr(addrs.data, '@') : NULL;
		size_t dl = at != NULL ? strlen(at + 1) : 0;
		if (dl > 0 && at[dl] == '.')
			dl--;
		if (dl == 0 || dl >= cap) {
			r = DMARC_FROM_INVALID;
			continue;
		}
		for (size_t k = 0; k < dl; k++)
			out[k] = (char)tolower((unsigned char)at[1 + k]);
		out[dl] = '\0';
		r = DMARC_FROM_OK;
	}
	buf_free(&addrs);
	free(f);
	return r;
}

void
dmarc_evaluate(const struct dmarc_input *in, struct dmarc_outcome *out)
{
	const struct dmarc_record *rec = in->rec;

	memset(out, 0, sizeof(*out));
	/* 6.6.3: sp= is for subdomains found through the org domain */
	out->policy = in->at_org && rec->sp != DMARC_P_UNSET ? rec->sp : rec->p;
	for (size_t i = 0; i < in->ndkim_pass && !out->dkim_aligned; i++)
		out->dkim_aligned =
		    dmarc_aligned(in->dkim_pass_d[i], in->from_domain, rec->adkim_strict);
	out->spf_aligned = in->spf_pass && in->spf_domain != NULL &&
			   dmarc_aligned(in->spf_domain, in->from_domain, rec->aspf_strict);
	if (out->dkim_aligned || out->spf_aligned) {
		out->pass = true;
		out->reason = out->dkim_aligned ? "aligned DKIM pass" : "aligned SPF pass";
	}
	if (out->pass) {
		out->applied = DMARC_P_NONE;
		return;
	}
	out->reason = "no aligned SPF or DKIM pass";
	out->applied = out->policy;
	/* 6.6.4: pct; the rest get the next policy down */
	if (in->sample >= rec->pct) {
		if (out->applied == DMARC_P_REJECT)
			out->applied = DMARC_P_QUARANTINE;
		else if (out->applied == DMARC_P_QUARANTINE)
			out->applied = DMARC_P_NONE;
	}
}
