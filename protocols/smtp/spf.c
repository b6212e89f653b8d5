/*
 * spf.c - check_host() of RFC 7208 as a small state machine over
 * core/dns.h: one DNS query in flight at a time; include and redirect
 * push or replace a frame on a bounded stack (the 10-lookup limit of
 * 4.6.4 bounds its depth).
 *
 * How it fails: a DNS failure where the RFC wants an answer is
 * temperror (never a pass, never a fail); a record that does not parse,
 * two records, more than 10 DNS-querying terms, more than 2 void
 * lookups or more than 10 MX names is permerror. The check owns its
 * arena and frees itself after its callback, or, once cancelled, when
 * its DNS answer is back.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/dns.h"
#include "core/worker.h"
#include "protocols/smtp/spf.h"

#define SPF_LOOKUP_MAX 10 /* 4.6.4 */
#define SPF_VOID_MAX 2	  /* 4.6.4 */
#define SPF_NAMES_MAX 10  /* MX and PTR names, 4.6.4 */
#define SPF_DEPTH (SPF_LOOKUP_MAX + 2)
#define SPF_DOMAIN_MAX 253

enum frame_kind { F_TOP, F_INCLUDE };

struct frame {
	enum frame_kind kind;
	bool redirected; /* reached by redirect=: "none" is permerror */
	const char *domain;
	struct spf_record rec;
	size_t i; /* the term being evaluated */
};

enum wait { W_NONE, W_TXT, W_A, W_MX, W_MXADDR, W_PTR, W_PTRADDR, W_EXISTS };

struct spf_check {
	struct arena *a; /* owns the check */
	struct worker *w;
	struct spf_request req; /* strings in a */
	const char *sender;	/* <sender> of check_host() */
	spf_done_cb *cb;
	void *arg;
	bool pending;	/* a DNS answer (or the start post) is due */
	bool cancelled; /* free when it comes; no callback */
	unsigned lookups, voids;
	struct frame stack[SPF_DEPTH];
	size_t depth;
	enum wait wait;
	const char *target; /* the expanded domain of the current term */
	const char **names; /* MX hosts or PTR names still to look up */
	size_t nnames, ni;
	const char *first_domain;
};

static void run(struct spf_check *c);

static void
check_free(struct spf_check *c)
{
	struct arena *a = c->a;
	arena_destroy(&a);
}

static void
finish(struct spf_check *c, enum spf_result r, const char *reason)
{
	struct spf_outcome out = {.result = r, .domain = c->first_domain, .reason = reason};
	c->cb(c->arg, &out);
	check_free(c);
}

static void dns_done(void *arg, const struct dns_result *res);

static void
ask(struct spf_check *c, enum wait w, const char *name, int type)
{
	c->wait = w;
	c->pending = true;
	dns_lookup(c->w, name, type, dns_done, c);
}

static int
addr_type(const struct spf_check *c)
{
	return c->req.ip.family == AF_INET ? DNS_T_A : DNS_T_AAAA;
}

/* 4.3: a multi-label name with sane labels. */
static bool
domain_ok(const char *d)
{
	size_t len = strlen(d), label = 0, labels = 0;
	if (len == 0 || len > SPF_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || d[i] == '.') {
			if (label == 0 && !(i == len && i > 0))
				return false;
			if (label > 63)
				return false;
			if (label > 0)
				labels++;
			label = 0;
		} else {
			label++;
		}
	}
	return labels >= 2;
}

/* Expands a domain-spec (NULL: the current domain) for a query: no
 * trailing dot, cut from the left to 253 characters (4.8). */
static int
expand_target(struct spf_check *c, const char *spec, size_t len, const char **out_r)
{
	struct frame *f = &c->stack[c->depth - 1];
	const char *t;

	if (spec == NULL) {
		*out_r = f->domain;
		return 0;
	}
	if (spf_expand(spec, len, &c->req, c->sender, f->domain, false, c->a, &t) < 0)
		return -1;
	size_t n = strlen(t);
	if (n > 0 && t[n - 1] == '.')
		t = arena_strndup(c->a, t, --n);
	while (n > SPF_DOMAIN_MAX) {
		const char *dot = strchr(t, '.');
		if (dot == NULL)
			return -1;
		n -= (size_t)(dot + 1 - t);
		t = dot + 1;
	}
	if (n == 0)
		return -1;
	*out_r = t;
	return 0;
}

static void
push(struct spf_check *c, enum frame_kind kind, const char *domain)
{
	struct frame *f = &c->stack[c->depth++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->domain = domain;
	ask(c, W_TXT, domain, DNS_T_TXT);
}

/* The current frame ended with r. */
static void
frame_result(struct spf_check *c, enum spf_result r, const char *reason)
{
	struct frame *f = &c->stack[c->depth - 1];

	if (r == SPF_NONE && (f->redirected || f->kind == F_INCLUDE)) {
		/* 5.2 and 6.1: the target has no SPF record */
		r = SPF_PERMERROR;
		reason = arena_printf(c->a, "no SPF record at %s", f->domain);
	}
	if (f->kind == F_TOP || r == SPF_TEMPERROR || r == SPF_PERMERROR) {
		finish(c, r, reason);
		return;
	}
	/* include: pass matches the include term; fail, softfail, neutral
	 * do not (5.2) */
	c->depth--;
	struct frame *p = &c->stack[c->depth - 1];
	if (r == SPF_PASS) {
		const struct spf_term *t = &p->rec.terms[p->i];
		static const char q[] = "+-~?";
		static const enum spf_result qr[] = {SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_NEUTRAL};
		frame_result(c, qr[strchr(q, t->qualifier) - q],
			     arena_printf(c->a, "include:%s matched", f->domain));
		return;
	}
	p->i++;
	run(c);
}

static void
match(struct spf_check *c)
{
	struct frame *f = &c->stack[c->depth - 1];
	const struct spf_term *t = &f->rec.terms[f->i];
	static const char *const mech[] = {"all", "include", "a",   "mx",
					   "ptr", "ip4",     "ip6", "exists"};
	enum spf_result r = t->qualifier == '-'	  ? SPF_FAIL
			    : t->qualifier == '~' ? SPF_SOFTFAIL
			    : t->qualifier == '?' ? SPF_NEUTRAL
						  : SPF_PASS;
	frame_result(c, r, arena_printf(c->a, "%s matched in %s", mech[t->mech], f->domain));
}

static void
next_term(struct spf_check *c)
{
	c->stack[c->depth - 1].i++;
	run(c);
}

/* Counts a void lookup (4.6.4); true if the limit is now exceeded (and
 * the check is finished). */
static bool
void_lookup(struct spf_check *c)
{
	if (++c->voids > SPF_VOID_MAX) {
		finish(c, SPF_PERMERROR, "too many void DNS lookups");
		return true;
	}
	return false;
}

/* Evaluates terms from the current one until one needs DNS or the
 * frame ends. */
static void
run(struct spf_check *c)
{
	struct frame *f = &c->stack[c->depth - 1];

	while (f->i < f->rec.nterms) {
		const struct spf_term *t = &f->rec.terms[f->i];
		switch (t->mech) {
		case SPF_M_ALL:
			match(c);
			return;
		case SPF_M_IP4:
		case SPF_M_IP6:
			if (spf_cidr_match(&c->req.ip, &t->net,
					   t->mech == SPF_M_IP4 ? t->cidr4 : t->cidr6)) {
				match(c);
				return;
			}
			f->i++;
			continue;
		default:
			break;
		}
		if (++c->lookups > SPF_LOOKUP_MAX) {
			finish(c, SPF_PERMERROR, "too many DNS lookups");
			return;
		}
		if (expand_target(c, t->spec, t->spec_len, &c->target) < 0) {
			finish(c, SPF_PERMERROR, "bad macro in a domain-spec");
			return;
		}
		switch (t->mech) {
		case SPF_M_INCLUDE:
			if (c->depth == SPF_DEPTH) {
				finish(c, SPF_PERMERROR, "includes nested too deep");
				return;
			}
			push(c, F_INCLUDE, c->target);
			return;
		case SPF_M_A:
			ask(c, W_A, c->target, addr_type(c));
			return;
		case SPF_M_MX:
			ask(c, W_MX, c->target, DNS_T_MX);
			return;
		case SPF_M_EXISTS:
			/* 5.7: always an A query, whatever the connection */
			ask(c, W_EXISTS, c->target, DNS_T_A);
			return;
		case SPF_M_PTR: {
			const unsigned char *b = c->req.ip.addr;
			const char *rev;
			if (c->req.ip.family == AF_INET) {
				rev = arena_printf(c->a, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2],
						   b[1], b[0]);
			} else {
				char *r = arena_alloc(c->a, 64 + 9);
				for (int i = 0; i < 32; i++) {
					unsigned nib =
					    (i % 2 == 0) ? b[15 - i / 2] & 15 : b[15 - i / 2] >> 4;
					r[i * 2] = "0123456789abcdef"[nib];
					r[i * 2 + 1] = '.';
				}
				memcpy(r + 64, "ip6.arpa", 9);
				rev = r;
			}
			ask(c, W_PTR, rev, DNS_T_PTR);
			return;
		}
		default:
			return;
		}
	}
	if (f->rec.redirect != NULL) {
		const char *target;
		if (++c->lookups > SPF_LOOKUP_MAX) {
			finish(c, SPF_PERMERROR, "too many DNS lookups");
			return;
		}
		if (expand_target(c, f->rec.redirect, f->rec.redirect_len, &target) < 0) {
			finish(c, SPF_PERMERROR, "bad macro in redirect=");
			return;
		}
		/* 6.1: the redirect's result is this frame's result */
		enum frame_kind kind = f->kind;
		c->depth--;
		push(c, kind, target);
		c->stack[c->depth - 1].redirected = true;
		return;
	}
	frame_result(c, SPF_NEUTRAL, "no mechanism matched");
}

static bool
addr_matches(const struct spf_check *c, const struct dns_result *res, unsigned c4, unsigned c6)
{
	for (size_t i = 0; i < res->n; i++) {
		struct spf_ip net = {.family = res->rr[i].family};
		memcpy(net.addr, res->rr[i].addr, sizeof(net.addr));
		if (spf_cidr_match(&c->req.ip, &net, c->req.ip.family == AF_INET ? c4 : c6))
			return true;
	}
	return false;
}

/* The name is the target or a subdomain of it (5.5). */
static bool
under_target(const char *name, const char *target)
{
	size_t n = strlen(name), t = strlen(target);
	if (t > 0 && target[t - 1] == '.')
		t--;
	if (n == t)
		return strncasecmp(name, target, t) == 0;
	return n > t && name[n - t - 1] == '.' && strncasecmp(name + n - t, target, t) == 0;
}

static void
on_txt(struct spf_check *c, const struct dns_result *res)
{
	struct frame *f = &c->stack[c->depth - 1];

	if (res->status == DNS_TEMPFAIL) {
		frame_result(c, SPF_TEMPERROR,
			     arena_printf(c->a, "DNS failure for %s TXT", f->domain));
		return;
	}
	const struct dns_rr *rec = NULL;
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++) {
		if (!spf_is_record(res->rr[i].text, res->rr[i].len))
			continue;
		if (rec != NULL) {
			frame_result(c, SPF_PERMERROR,
				     arena_printf(c->a, "several SPF records at %s", f->domain));
			return;
		}
		rec = &res->rr[i];
	}
	if (rec == NULL) {
		frame_result(c, SPF_NONE, arena_printf(c->a, "no SPF record at %s", f->domain));
		return;
	}
	const char *err;
	const char *text = arena_strndup(c->a, rec->text, rec->len);
	if (strlen(text) != rec->len || spf_parse_record(text, rec->len, c->a, &f->rec, &err) < 0) {
		frame_result(c, SPF_PERMERROR,
			     arena_printf(c->a, "bad SPF record at %s: %s", f->domain,
					  strlen(text) != rec->len ? "NUL byte" : err));
		return;
	}
	run(c);
}

static void
dns_done(void *arg, const struct dns_result *res)
{
	struct spf_check *c = arg;
	struct frame *f = &c->stack[c->depth - 1];
	const struct spf_term *t = f->i < f->rec.nterms ? &f->rec.terms[f->i] : NULL;

	c->pending = false;
	if (c->cancelled) {
		check_free(c);
		return;
	}
	if (c->wait == W_TXT) {
		on_txt(c, res);
		return;
	}
	if (res->status == DNS_TEMPFAIL && c->wait != W_PTR && c->wait != W_PTRADDR) {
		finish(c, SPF_TEMPERROR, arena_printf(c->a, "DNS failure for %s", res->name));
		return;
	}
	bool none = res->status != DNS_OK;
	switch (c->wait) {
	case W_A:
		if (none && void_lookup(c))
			return;
		if (!none && addr_matches(c, res, t->cidr4, t->cidr6)) {
			match(c);
			return;
		}
		next_term(c);
		return;
	case W_EXISTS:
		if (none) {
			if (!void_lookup(c))
				next_term(c);
			return;
		}
		match(c);
		return;
	case W_MX:
		if (none) {
			if (!void_lookup(c))
				next_term(c);
			return;
		}
		if (res->n > SPF_NAMES_MAX) {
			finish(c, SPF_PERMERROR,
			       arena_printf(c->a, "more than %d MX records for %s", SPF_NAMES_MAX,
					    res->name));
			return;
		}
		c->names = arena_alloc(c->a, (res->n + 1) * sizeof(*c->names));
		c->nnames = c->ni = 0;
		for (size_t i = 0; i < res->n; i++)
			if (res->rr[i].text[0] != '\0') /* "." (null MX) is no host */
				c->names[c->nnames++] = arena_strdup(c->a, res->rr[i].text);
		break;
	case W_MXADDR:
		if (!none && addr_matches(c, res, t->cidr4, t->cidr6)) {
			match(c);
			return;
		}
		c->ni++;
		break;
	case W_PTR:
		c->names = NULL;
		c->nnames = c->ni = 0;
		if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) {
			if (void_lookup(c))
				return;
		} else if (res->status == DNS_OK) {
			/* 5.5: only the first 10 names; the ones under the
			 * target are the only ones worth validating */
			size_t n = res->n < SPF_NAMES_MAX ? res->n : SPF_NAMES_MAX;
			c->names = arena_alloc(c->a, (n + 1) * sizeof(*c->names));
			for (size_t i = 0; i < n; i++)
				if (under_target(res->rr[i].text, c->target))
					c->names[c->nnames++] = arena_strdup(c->a, res->rr[i].text);
		}
		break;
	case W_PTRADDR:
		/* a name is validated if one of its addresses is the client's */
		if (res->status == DNS_OK) {
			for (size_t i = 0; i < res->n; i++)
				if (res->rr[i].family == c->req.ip.family &&
				    memcmp(res->rr[i].addr, c->req.ip.addr,
					   c->req.ip.family == AF_INET ? 4 : 16) == 0) {
					match(c);
					return;
				}
		}
		c->ni++;
		break;
	default:
		finish(c, SPF_TEMPERROR, "internal state");
		return;
	}
	/* MX and PTR: the next name's addresses */
	if (c->ni < c->nnames) {
		ask(c, c->wait == W_MX || c->wait == W_MXADDR ? W_MXADDR : W_PTRADDR,
		    c->names[c->ni], addr_type(c));
		return;
	}
	next_term(c);
}

/* The identity could not be checked at all (4.3): none, from the loop. */
static void
start_none(void *arg)
{
	struct spf_check *c = arg;
	c->pending = false;
	if (c->cancelled) {
		check_free(c);
		return;
	}
	finish(c, SPF_NONE, "no valid domain to check");
}

struct spf_check *
spf_check_start(struct worker *w, const struct spf_request *req, spf_done_cb *cb, void *arg)
{
	struct arena *a = arena_new(0);
	struct spf_check *c = arena_alloc(a, sizeof(*c));

	memset(c, 0, sizeof(*c));
	c->a = a;
	c->w = w;
	c->cb = cb;
	c->arg = arg;
	c->req = *req;
	c->req.sender = arena_strdup(a, req->sender != NULL ? req->sender : "");
	c->req.helo = arena_strdup(a, req->helo != NULL ? req->helo : "");
	c->req.receiver = arena_strdup(a, req->receiver != NULL ? req->receiver : "");
	const char *domain;
	if (c->req.sender[0] == '\0') {
		/* 2.4: the null path uses the HELO identity */
		domain = c->req.helo;
		c->sender = arena_printf(a, "postmaster@%s", domain);
	} else {
		const char *at = strrchr(c->req.sender, '@');
		domain = at != NULL ? at + 1 : "";
		/* 4.3: no local-part means "postmaster" */
		c->sender =
		    at == c->req.sender ? arena_printf(a, "postmaster%s", at) : c->req.sender;
	}
	size_t n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		domain = arena_strndup(a, domain, n - 1);
	c->first_domain = domain;
	if (!domain_ok(domain) || domain[0] == '[') {
		c->pending = true;
		worker_post(w, start_none, c);
		return c;
	}
	push(c, F_TOP, domain);
	return c;
}

void
spf_check_cancel(struct spf_check *c)
{
	if (c == NULL)
		return;
	if (c->pending)
		c->cancelled = true;
	else
		check_free(c);
}
