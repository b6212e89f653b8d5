/*
 * dir_check.c - `ternd check-directory` (dir_check.h): the config against
 * the live directory, as ternd will see it.
 *
 * What it checks, in order: every [directory] uri connects (TLS included)
 * and accepts the service account's bind; base exists; user_filter
 * matches someone; every enabled user has the id, login and an address
 * (the profile's attributes, as the service account can read them); every
 * member DN (member_attr) and memberUid of an enabled list names an
 * entry / a login; every dynamic list's member URL is one ternd follows
 * and it (and member_query_attr's filter) finds an enabled entry; no
 * address (mail, alias, proxy SMTP address) is claimed by two enabled
 * entries, which ternd refuses at delivery (DIR_CONFLICT); every member
 * address (rfc822MailMember) and routing address (mailRoutingAddress) in
 * a local domain belongs to an enabled entry; routing addresses do not
 * loop (A to B, B to A); with SCRAM-SHA-256 in [sasl] mechanisms, how
 * many users have a usable verifier in scram_attribute (never printing
 * one). Ranged AD attributes are read in full (dir_range.h, through
 * dir_admin_search). The searches are dir_admin's (paged, RFC 2696) on a
 * handle bound as the service account: no second LDAP client.
 *
 * How it fails: each problem is one "problem: ..." line on stdout naming
 * the entry and what to fix; a search the directory refuses is a problem
 * too. "ok: ..." lines say what was fine, and a "summary: ..." line ends
 * the output. Exit 0 clean, 1 problems, 2 usage or config error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ldap.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compat.h"
#include "core/config.h"
#include "core/log.h"
#include "directory/dir.h"
#include "directory/dir_admin_int.h"
#include "directory/dir_check.h"
#include "directory/dir_scram.h"
#include "directory/dir_shape.h"
#include "directory/dir_tls.h"

#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2
#define MAX_ATTRS 24

/* One address and the entry that claims it. */
struct claim {
	const char *addr; /* lower-case */
	const char *dn;
	bool list;
};

/* A user's routing address (routing_attr), lower-case. */
struct route {
	const char *dn;
	const char *to;
};

/* A list's member address (member_address_attr) in a local domain. */
struct member_addr {
	const char *list;
	const char *value; /* as written */
	const char *addr;  /* lower-case */
};

struct check {
	const struct config *cfg;
	const struct directory_config *dc;
	struct arena *a;
	FILE *out;
	unsigned problems;
	struct dir_admin *h;
	char *attrs[MAX_ATTRS]; /* read for users and lists */
	struct claim *claims;
	size_t nclaims, capclaims;
	const char **dns; /* normalised DNs of every user and list, sorted */
	size_t ndns;
	const char **logins; /* every user's login, lower-case, sorted */
	size_t nlogins;
	size_t nusers, ndisabled, nlists;
	/* [sasl] mechanisms has SCRAM-SHA-256(-PLUS): enabled users with a
	 * usable verifier in scram_attribute, and with a malformed one. */
	bool scram;
	size_t nscram, nscram_bad;
	struct route *routes;
	size_t nroutes, caproutes;
	struct member_addr *maddrs;
	size_t nmaddrs, capmaddrs;
};

static void PRINTF_LIKE(2, 3) problem(struct check *c, const char *fmt, ...)
{
	va_list ap;

	fputs("problem: ", c->out);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
	c->problems++;
}

static void PRINTF_LIKE(2, 3) ok(struct check *c, const char *fmt, ...)
{
	va_list ap;

	fputs("ok: ", c->out);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

static char *
lower(struct arena *a, const char *s, size_t len)
{
	char *d = arena_alloc(a, len + 1);

	for (size_t i = 0; i < len; i++)
		d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	d[len] = '\0';
	return d;
}

/* A DN in one spelling (RFC 4514 normal form, lower-cased), so that
 * "uid=Bob, ou=People" and "uid=bob,ou=people" compare equal. */
static const char *
norm_dn(struct arena *a, const char *dn)
{
	char *out = NULL;

	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAPV3, &out, LDAP_DN_FORMAT_LDAPV3) ==
		LDAP_SUCCESS &&
	    out != NULL) {
		const char *n = lower(a, out, strlen(out));
		ldap_memfree(out);
		return n;
	}
	return lower(a, dn, strlen(dn));
}

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static bool
sorted_has(const char **v, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, v, n, sizeof(*v), cmp_str) != NULL;
}

static void
add_attr(struct check *c, const char *name)
{
	size_t n = 0;

	if (name == NULL || name[0] == '\0')
		return;
	for (; c->attrs[n] != NULL; n++)
		if (strcasecmp(c->attrs[n], name) == 0)
			return;
	if (n + 1 < MAX_ATTRS)
		c->attrs[n] = arena_strdup(c->a, name);
}

/* Disabled by [directory] disabled_flags_attr (AD's userAccountControl
 * 0x2), which ternd checks itself rather than in the filter (dir.c): such
 * an entry neither logs in nor claims an address. */
static bool
flags_disabled(const struct check *c, const struct dir_ldap_entry *e)
{
	const char *attr = c->dc->disabled_flags_attr;
	const struct dir_ldap_attr *at =
	    attr != NULL && attr[0] != '\0' ? dir_admin_attr(e, attr) : NULL;

	return at != NULL && dir_shape_flags_set(at->vals[0], c->dc->disabled_flags_mask) != 0;
}

/* 1. Every URI on its own: connect, then the service account's bind. */
static size_t
check_uris(struct check *c)
{
	size_t n = 0, good = 0;
	char **uris = dir_tls_split_uris(c->dc->uri, &n);

	if (n == 0)
		problem(c, "[directory] uri is empty: there is no directory to connect to");
	for (size_t i = 0; i < n; i++) {
		struct directory_config one = *c->dc;
		LDAP *ld = NULL;
		char *why = NULL;

		one.uri = uris[i];
		int rc = dir_tls_open_sync(&one, &ld, NULL, &why);
		if (rc != LDAP_SUCCESS) {
			/* dir_tls_open_sync's text starts with the URI again. */
			const char *reason = why != NULL ? why : ldap_err2string(rc);
			size_t ul = strlen(uris[i]);
			if (strncmp(reason, uris[i], ul) == 0 && strncmp(reason + ul, ": ", 2) == 0)
				reason += ul + 2;
			problem(c, "cannot connect to %s: %s", uris[i], reason);
			free(why);
			continue;
		}
		const char *dn = c->dc->bind_dn != NULL ? c->dc->bind_dn : "";
		rc = dir_tls_bind_sync(ld, &one, dn, c->dc->bind_password, "service bind");
		if (rc != LDAP_SUCCESS) {
			char *diag = NULL;
			ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
			const char *hint = "";
			if (rc == LDAP_INVALID_CREDENTIALS)
				hint = " - the password in [directory] bind_password_file is wrong "
				       "for this DN, or the DN does not exist";
			problem(c, "cannot bind to %s as %s ([directory] bind_dn): %s%s%s%s",
				uris[i], dn[0] != '\0' ? dn : "(anonymous)", ldap_err2string(rc),
				diag != NULL && diag[0] != '\0' ? " (" : "",
				diag != NULL && diag[0] != '\0' ? diag : "",
				diag != NULL && diag[0] != '\0' ? ")" : "");
			if (hint[0] != '\0')
				fprintf(c->out, "  hint:%s\n", hint);
			ldap_memfree(diag);
		} else {
			ok(c, "%s: connected and bound as %s", uris[i],
			   dn[0] != '\0' ? dn : "(anonymous)");
			good++;
		}
		ldap_unbind_ext_s(ld, NULL, NULL);
	}
	dir_tls_free_uris(uris);
	return good;
}

/* A paged search on the reader handle; a refusal is reported as a
 * problem and gives false. */
static bool
search(struct check *c, const char *base, int scope, const char *filter, char **attrs,
       int sizelimit, struct dir_ldap_entry **e_r, size_t *n_r, const char *what)
{
	struct dir_admin_error err = {0};
	size_t nseen;

	if (dir_admin_search(c->h, c->a, base, scope, filter, attrs, sizelimit, e_r, n_r, &nseen,
			     &err) != DIR_ADMIN_OK) {
		problem(c, "%s: the search failed: %s", what, err.message);
		return false;
	}
	return true;
}

static void
add_claim(struct check *c, const char *addr, size_t len, const char *dn, bool list)
{
	if (len == 0 || memchr(addr, '@', len) == NULL)
		return;
	const char *l = lower(c->a, addr, len);
	/* The same address twice on one entry (mail and alias) is no
	 * conflict: only keep one claim per entry. */
	for (size_t i = c->nclaims; i > 0 && c->claims[i - 1].dn == dn; i--)
		if (strcmp(c->claims[i - 1].addr, l) == 0)
			return;
	if (c->nclaims == c->capclaims) {
		c->capclaims = c->capclaims == 0 ? 256 : c->capclaims * 2;
		c->claims = xrealloc(c->claims, c->capclaims * sizeof(*c->claims));
	}
	c->claims[c->nclaims++] = (struct claim){.addr = l, .dn = dn, .list = list};
}

/* The addresses of e: mail_attr, alias_attr and the SMTP ones of
 * proxy_attr; how many. */
static size_t
claim_addresses(struct check *c, const struct dir_ldap_entry *e, bool list)
{
	const char *names[] = {c->dc->mail_attr, c->dc->alias_attr};
	size_t n = 0;

	for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
		if (names[k] == NULL || names[k][0] == '\0')
			continue;
		const struct dir_ldap_attr *at = dir_admin_attr(e, names[k]);
		for (size_t i = 0; at != NULL && i < at->nvals; i++, n++)
			add_claim(c, at->vals[i], strlen(at->vals[i]), e->dn, list);
	}
	if (c->dc->proxy_attr != NULL && c->dc->proxy_attr[0] != '\0') {
		const struct dir_ldap_attr *at = dir_admin_attr(e, c->dc->proxy_attr);
		for (size_t i = 0; at != NULL && i < at->nvals; i++) {
			const char *p;
			size_t len;
			bool primary;
			if (dir_shape_proxy_address(at->vals[i], at->lens[i], &p, &len, &primary) ==
			    1) {
				add_claim(c, p, len, e->dn, list);
				n++;
			}
		}
	}
	return n;
}

static bool
is_local(const struct check *c, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && at != addr && at[1] != '\0' && config_is_local_domain(c->cfg, at + 1);
}

/* Remembers an enabled user's routing address in a local domain: where
 * it leads is checked once every address is known (check_routes). */
static void
add_route(struct check *c, const struct dir_ldap_entry *e)
{
	const char *attr = c->dc->routing_attr;
	const struct dir_ldap_attr *at =
	    attr != NULL && attr[0] != '\0' ? dir_admin_attr(e, attr) : NULL;

	if (at == NULL || at->vals[0][0] == '\0')
		return;
	const char *to = lower(c->a, at->vals[0], strlen(at->vals[0]));
	if (!is_local(c, to))
		return; /* forwarded out: not ours to check */
	if (c->nroutes == c->caproutes) {
		c->caproutes = c->caproutes == 0 ? 16 : c->caproutes * 2;
		c->routes = xrealloc(c->routes, c->caproutes * sizeof(*c->routes));
	}
	c->routes[c->nroutes++] = (struct route){.dn = e->dn, .to = to};
}

/* 3. Users: user_filter with every %u a wildcard. */
/* Does [sasl] mechanisms offer SCRAM-SHA-256 (or its -PLUS variant)? */
static bool
scram_offered(const struct config *cfg)
{
	char **mechs = dir_split_list(cfg->sasl_mechanisms != NULL ? cfg->sasl_mechanisms : "");
	bool yes = false;

	for (char **m = mechs; *m != NULL; m++) {
		/* The list may be blank-separated too. */
		for (char *t = strtok(*m, " \t"); t != NULL; t = strtok(NULL, " \t"))
			if (strcasecmp(t, "SCRAM-SHA-256") == 0 ||
			    strcasecmp(t, "SCRAM-SHA-256-PLUS") == 0)
				yes = true;
		free(*m);
	}
	free(mechs);
	return yes;
}

/* A user's verifier, the way dir_find_user reads it (never printed). */
static void
count_scram(struct check *c, const struct dir_ldap_entry *e)
{
	const struct dir_ldap_attr *a = dir_admin_attr(e, c->dc->scram_attr);
	bool userpassword = strcasecmp(c->dc->scram_attr, "userPassword") == 0;
	bool good = false, bad = false;

	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		const char *out, *why;
		int rc = dir_scram_parse(c->a, a->vals[i], a->lens[i], userpassword, &out, &why);
		good |= rc == 1;
		bad |= rc < 0;
		explicit_bzero(a->vals[i], a->lens[i]);
	}
	if (good)
		c->nscram++;
	else if (bad)
		c->nscram_bad++;
}

/* What SCRAM-SHA-256 logins will meet: users without a verifier fail
 * them (PLAIN still works). None at all is a problem: the attribute name
 * or the service account's read access is wrong. */
static void
report_scram(struct check *c)
{
	const char *attr = c->dc->scram_attr;

	if (!c->scram || c->nusers == 0)
		return;
	if (attr[0] == '\0') {
		problem(c, "[sasl] mechanisms offers SCRAM-SHA-256 but [directory] scram_attribute "
			   "is empty: every SCRAM login fails");
		return;
	}
	if (c->nscram_bad > 0)
		fprintf(c->out,
			"note: %zu user(s) have a malformed SCRAM-SHA-256 verifier in %s "
			"(ternd logs which)\n",
			c->nscram_bad, attr);
	if (c->nscram == c->nusers) {
		ok(c, "all %zu users have a SCRAM-SHA-256 verifier in %s", c->nusers, attr);
		return;
	}
	if (c->nscram == 0)
		problem(c,
			"0 of %zu users have a SCRAM-SHA-256 verifier readable by the service "
			"account in %s ([directory] scram_attribute): SCRAM logins will fail for "
			"them; they can still use PLAIN over TLS",
			c->nusers, attr);
	else
		fprintf(c->out,
			"note: %zu of %zu users have a SCRAM-SHA-256 verifier readable by the "
			"service account in %s ([directory] scram_attribute): SCRAM logins will "
			"fail for the others; they can still use PLAIN over TLS\n",
			c->nscram, c->nusers, attr);
}

static void
check_users(struct check *c, const char *ufilter)
{
	struct dir_ldap_entry *all = NULL, *en = NULL;
	size_t nall = 0, nen = 0;
	char *login_only[] = {(char *)c->dc->login_attr, NULL};

	if (!search(c, c->dc->base, LDAP_SCOPE_SUBTREE, ufilter, login_only, 0, &all, &nall,
		    "[directory] user_filter"))
		return;
	if (nall == 0) {
		problem(c,
			"[directory] user_filter %s matches no entry under %s ([directory] base): "
			"no one can log in",
			ufilter, c->dc->base);
		return;
	}
	c->logins = xcalloc(nall, sizeof(*c->logins));
	for (size_t i = 0; i < nall; i++) {
		const char *l = dir_admin_attr1(&all[i], c->dc->login_attr);
		if (l[0] != '\0')
			c->logins[c->nlogins++] = lower(c->a, l, strlen(l));
	}
	qsort(c->logins, c->nlogins, sizeof(*c->logins), cmp_str);

	if (!search(c, c->dc->base, LDAP_SCOPE_SUBTREE, dir_admin_enabled(c->h, c->a, ufilter),
		    c->attrs, 0, &en, &nen, "[directory] user_filter (enabled users)"))
		return;
	c->ndisabled = nall > nen ? nall - nen : 0;
	size_t no_id = 0, no_login = 0, no_addr = 0;
	for (size_t i = 0; i < nen; i++) {
		const struct dir_ldap_entry *e = &en[i];
		if (dir_admin_is_list(c->h, e))
			continue;
		if (flags_disabled(c, e)) {
			c->ndisabled++;
			continue;
		}
		c->nusers++;
		add_route(c, e);
		if (dir_admin_attr(e, c->dc->id_attr) == NULL)
			no_id++;
		if (dir_admin_attr(e, c->dc->login_attr) == NULL)
			no_login++;
		if (c->scram)
			count_scram(c, e);
		if (claim_addresses(c, e, false) == 0 &&
		    (c->dc->routing_attr[0] == '\0' ||
		     dir_admin_attr(e, c->dc->routing_attr) == NULL))
			no_addr++;
	}
	if (c->nusers == 0)
		return;
	/* Missing on every user: the attribute name is wrong or the service
	 * account may not read it. One line says so, not one per user. */
	if (no_id == c->nusers)
		problem(c,
			"no user has a readable %s ([directory] id_attr, the mailbox key): the "
			"name is wrong or the service account may not read it; every delivery "
			"and login fails",
			c->dc->id_attr);
	if (no_login == c->nusers)
		problem(c,
			"no user has a readable %s ([directory] login_attr): the name is wrong or "
			"the service account may not read it",
			c->dc->login_attr);
	if (no_addr == c->nusers)
		problem(c,
			"no user has an address in %s%s%s: the names are wrong or the service "
			"account may not read them; no mail can be delivered",
			c->dc->mail_attr, c->dc->alias_attr[0] != '\0' ? " or " : "",
			c->dc->alias_attr);
	for (size_t i = 0; i < nen; i++) {
		const struct dir_ldap_entry *e = &en[i];
		if (dir_admin_is_list(c->h, e) || flags_disabled(c, e))
			continue;
		if (no_id < c->nusers && dir_admin_attr(e, c->dc->id_attr) == NULL)
			problem(c,
				"user %s has no %s ([directory] id_attr): mail to it and its "
				"logins are refused",
				e->dn, c->dc->id_attr);
		if (no_login < c->nusers && dir_admin_attr(e, c->dc->login_attr) == NULL)
			problem(c, "user %s has no %s ([directory] login_attr): it cannot log in",
				e->dn, c->dc->login_attr);
	}
	if (no_addr > 0 && no_addr < c->nusers)
		fprintf(c->out,
			"note: %zu enabled user(s) have no address (%s, %s): they can log in but "
			"receive no mail\n",
			no_addr, c->dc->mail_attr, c->dc->alias_attr);
	/* Every user, disabled ones too: a member naming one is no dangling
	 * DN. check_lists adds the lists and sorts. */
	c->dns = xcalloc(nall, sizeof(*c->dns));
	for (size_t i = 0; i < nall; i++)
		c->dns[c->ndns++] = norm_dn(c->a, all[i].dn);
}

/* Does dn name an entry? Users and lists seen are known; anything else
 * is read (a base search). */
static int
dn_exists(struct check *c, const char *dn, const char *what)
{
	if (sorted_has(c->dns, c->ndns, norm_dn(c->a, dn)))
		return 1;
	struct dir_ldap_entry *e = NULL;
	size_t n = 0;
	char *none[] = {"1.1", NULL};
	if (!search(c, dn, LDAP_SCOPE_BASE, "(objectClass=*)", none, 1, &e, &n, what))
		return -1;
	return n > 0;
}

/* Member addresses (nisMailAlias rfc822MailMember) in a local domain:
 * checked against every address once all are known (check_addresses).
 * Others are forwarded out, as they should be. */
static void
add_member_addrs(struct check *c, const struct dir_ldap_entry *e)
{
	const char *attr = c->dc->member_address_attr;
	const struct dir_ldap_attr *at =
	    attr != NULL && attr[0] != '\0' ? dir_admin_attr(e, attr) : NULL;

	for (size_t k = 0; at != NULL && k < at->nvals; k++) {
		const char *addr = lower(c->a, at->vals[k], strlen(at->vals[k]));
		if (!is_local(c, addr))
			continue;
		if (c->nmaddrs == c->capmaddrs) {
			c->capmaddrs = c->capmaddrs == 0 ? 16 : c->capmaddrs * 2;
			c->maddrs = xrealloc(c->maddrs, c->capmaddrs * sizeof(*c->maddrs));
		}
		c->maddrs[c->nmaddrs++] =
		    (struct member_addr){.list = e->dn, .value = at->vals[k], .addr = addr};
	}
}

/* One dynamic list search (a member URL's, or member_query_attr's
 * filter): it must work and find at least one enabled entry, as ternd
 * runs it (limited to enabled entries). */
static void
check_dynamic_search(struct check *c, const struct dir_ldap_entry *e, const char *attr,
		     const char *value, const char *base, int scope, const char *filter)
{
	struct dir_ldap_entry *found = NULL;
	size_t n = 0, nseen = 0;
	struct dir_admin_error err = {0};
	char *none[] = {"1.1", NULL};
	bool wrap = filter[0] != '(';
	const char *f = arena_printf(c->a, "%s%s%s", wrap ? "(" : "", filter, wrap ? ")" : "");

	if (dir_admin_search(c->h, c->a, base, scope, dir_admin_enabled(c->h, c->a, f), none, 1,
			     &found, &n, &nseen, &err) != DIR_ADMIN_OK)
		problem(c,
			"list %s: %s %s does not work: %s; the list gets no members from it - fix "
			"it",
			e->dn, attr, value, err.message);
	else if (nseen == 0)
		problem(c,
			"list %s: %s %s matches no enabled entry; the list gets no members from it",
			e->dn, attr, value);
}

/* Dynamic lists: every member URL (groupOfURLs memberURL) must be one
 * ternd accepts, and it and every member_query_attr filter must find
 * someone. */
static void
check_dynamic(struct check *c, const struct dir_ldap_entry *e)
{
	const char *attr = c->dc->member_url_attr;
	const struct dir_ldap_attr *at =
	    attr != NULL && attr[0] != '\0' ? dir_admin_attr(e, attr) : NULL;

	for (size_t k = 0; at != NULL && k < at->nvals; k++) {
		const char *base, *filter, *why;
		int scope;
		if (dir_shape_member_url(c->a, at->vals[k], c->dc->base, &base, &scope, &filter,
					 &why) < 0)
			problem(c,
				"list %s: %s %s is not usable (%s); the list gets no members from "
				"it - fix it",
				e->dn, attr, at->vals[k], why);
		else
			check_dynamic_search(c, e, attr, at->vals[k], base, scope, filter);
	}
	attr = c->dc->member_query_attr;
	at = attr != NULL && attr[0] != '\0' ? dir_admin_attr(e, attr) : NULL;
	for (size_t k = 0; at != NULL && k < at->nvals; k++)
		check_dynamic_search(c, e, attr, at->vals[k], c->dc->base, LDAP_SCOPE_SUBTREE,
				     at->vals[k]);
}

/* 4. Lists: every entry of list_classes under base. */
static void
check_lists(struct check *c)
{
	struct buf f;
	struct dir_ldap_entry *lists = NULL;
	size_t n = 0;

	if (c->h->list_classes[0] == NULL)
		return; /* no entry is a list */
	buf_init(&f, DIR_ADMIN_FILTER_MAX);
	(void)buf_append_str(&f, "(|");
	for (char **cl = c->h->list_classes; *cl != NULL; cl++) {
		const char *eq = dir_admin_eq(c->a, "objectClass", *cl);
		if (eq != NULL)
			(void)buf_append_str(&f, eq);
	}
	(void)buf_append_str(&f, ")");
	const char *filter = dir_admin_enabled(c->h, c->a, arena_strdup(c->a, buf_cstr(&f)));
	buf_free(&f);
	if (!search(c, c->dc->base, LDAP_SCOPE_SUBTREE, filter, c->attrs, 0, &lists, &n,
		    "[directory] list_classes"))
		return;
	/* Lists are members too: known DNs include them. */
	c->dns = xrealloc(c->dns, (c->ndns + n + 1) * sizeof(*c->dns));
	for (size_t i = 0; i < n; i++)
		c->dns[c->ndns++] = norm_dn(c->a, lists[i].dn);
	qsort(c->dns, c->ndns, sizeof(*c->dns), cmp_str);

	for (size_t i = 0; i < n; i++) {
		const struct dir_ldap_entry *e = &lists[i];
		const char *self = norm_dn(c->a, e->dn);
		if (flags_disabled(c, e))
			continue;
		c->nlists++;
		(void)claim_addresses(c, e, true);
		for (char **m = c->h->member_attrs; *m != NULL; m++) {
			const struct dir_ldap_attr *at = dir_admin_attr(e, *m);
			for (size_t k = 0; at != NULL && k < at->nvals; k++) {
				const char *dn = at->vals[k];
				/* groupOfNames needs a member: an empty list holds
				 * its own DN (dir_admin), which ternd skips. */
				if (strcmp(norm_dn(c->a, dn), self) == 0)
					continue;
				if (dn_exists(c, dn, e->dn) == 0)
					problem(c,
						"list %s: member %s names no entry (deleted?); it "
						"is skipped at delivery - remove it from %s",
						e->dn, dn, *m);
			}
		}
		const char *uid = c->dc->member_uid_attr;
		const struct dir_ldap_attr *at =
		    uid != NULL && uid[0] != '\0' ? dir_admin_attr(e, uid) : NULL;
		for (size_t k = 0; at != NULL && k < at->nvals; k++) {
			const char *l = lower(c->a, at->vals[k], strlen(at->vals[k]));
			if (!sorted_has(c->logins, c->nlogins, l))
				problem(c,
					"list %s: %s %s matches no user's %s; it is skipped at "
					"delivery",
					e->dn, uid, at->vals[k], c->dc->login_attr);
		}
		add_member_addrs(c, e);
		check_dynamic(c, e);
	}
}

static int
cmp_claim(const void *x, const void *y)
{
	const struct claim *p = x, *q = y;
	int r = strcmp(p->addr, q->addr);

	return r != 0 ? r : strcmp(p->dn, q->dn);
}

/* 5. An address two enabled entries claim: ternd refuses it (451). */
static size_t
check_duplicates(struct check *c)
{
	size_t distinct = 0;

	qsort(c->claims, c->nclaims, sizeof(*c->claims), cmp_claim);
	for (size_t i = 0; i < c->nclaims;) {
		size_t j = i + 1;
		while (j < c->nclaims && strcmp(c->claims[j].addr, c->claims[i].addr) == 0)
			j++;
		distinct++;
		if (j - i > 1) {
			const struct claim *p = &c->claims[i], *q = &c->claims[i + 1];
			problem(c,
				"address %s is claimed by two entries: %s %s and %s %s%s; mail to "
				"it is refused (451 4.3.0) until one of them drops it",
				p->addr, p->list ? "list" : "user", p->dn,
				q->list ? "list" : "user", q->dn,
				j - i > 2 ? arena_printf(c->a, " (and %zu more)", j - i - 2) : "");
		}
		i = j;
	}
	return distinct;
}

/* The claims of addr (claims sorted): the first, and how many. */
static const struct claim *
find_claims(const struct check *c, const char *addr, size_t *n_r)
{
	size_t lo = 0, hi = c->nclaims;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(c->claims[mid].addr, addr) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*n_r = 0;
	while (lo + *n_r < c->nclaims && strcmp(c->claims[lo + *n_r].addr, addr) == 0)
		(*n_r)++;
	return *n_r > 0 ? &c->claims[lo] : NULL;
}

/* 6. Member addresses in a local domain that no enabled entry has. */
static void
check_member_addrs(struct check *c)
{
	for (size_t i = 0; i < c->nmaddrs; i++) {
		const struct member_addr *m = &c->maddrs[i];
		size_t n;
		if (find_claims(c, m->addr, &n) == NULL)
			problem(c,
				"list %s: %s %s is in a local domain but no enabled entry has that "
				"address; it is skipped at delivery - fix or remove it",
				m->list, c->dc->member_address_attr, m->value);
	}
}

/* Where a routing address leads: the DN of the one user claiming it
 * (NULL if none, a list, or several: reported elsewhere). */
static const char *
route_target(const struct check *c, const char *to)
{
	size_t n;
	const struct claim *cl = find_claims(c, to, &n);

	return n == 1 && !cl->list ? cl->dn : NULL;
}

static const struct route *
route_of(const struct check *c, const char *dn)
{
	/* XXX linear: routes within the directory are few. */
	for (size_t i = 0; i < c->nroutes; i++)
		if (c->routes[i].dn == dn)
			return &c->routes[i];
	return NULL;
}

/* 7. Routing addresses (routing_attr) into a local domain: someone must
 * have the address, and following them must not come back. */
static void
check_routes(struct check *c)
{
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		size_t n;
		const struct claim *cl = find_claims(c, r->to, &n);
		if (cl == NULL) {
			problem(c,
				"user %s: %s %s is in a local domain but no enabled entry has that "
				"address; mail to the user is refused (550) - fix or remove it",
				r->dn, c->dc->routing_attr, r->to);
			continue;
		}
		/* Follow the hops: a loop is reported once, at the smallest DN in
		 * it (dir.c delivers where the loop closes, not where meant). */
		struct buf path;
		buf_init(&path, 4096);
		(void)buf_append_str(&path, r->dn);
		const char *dn = r->dn;
		bool loop = false, smallest = true;
		for (int hop = 0; hop < 16; hop++) {
			const struct route *h = route_of(c, dn);
			const char *next = h != NULL ? route_target(c, h->to) : NULL;
			if (next == NULL || next == dn)
				break; /* delivered here, or reported elsewhere */
			(void)buf_printf(&path, " -> %s", next);
			if (next == r->dn) {
				loop = true;
				break;
			}
			if (strcmp(next, r->dn) < 0)
				smallest = false;
			dn = next;
		}
		if (loop && smallest)
			problem(
			    c,
			    "user %s: %s leads back to it (%s): a routing loop; ternd delivers to "
			    "the entry where the loop closes instead - fix the %s values",
			    r->dn, c->dc->routing_attr, buf_cstr(&path), c->dc->routing_attr);
		buf_free(&path);
	}
}

static int
run(struct check *c)
{
	size_t good = check_uris(c);
	if (good == 0) {
		fprintf(c->out, "summary: the directory could not be reached; %u problem(s)\n",
			c->problems);
		return EXIT_PROBLEMS;
	}
	char *err = NULL;
	if (dir_admin_open_reader(c->cfg, &c->h, &err) < 0) {
		problem(c, "%s", err);
		free(err);
		fprintf(c->out, "summary: %u problem(s)\n", c->problems);
		return EXIT_PROBLEMS;
	}
	const char *attrs[] = {"objectClass",
			       c->dc->id_attr,
			       c->dc->login_attr,
			       c->dc->mail_attr,
			       c->dc->alias_attr,
			       c->dc->proxy_attr,
			       c->dc->routing_attr,
			       c->dc->member_uid_attr,
			       c->dc->disabled_flags_attr,
			       c->dc->member_address_attr,
			       c->dc->member_url_attr,
			       c->dc->member_query_attr};
	for (size_t i = 0; i < ARRAY_SIZE(attrs); i++)
		add_attr(c, attrs[i]);
	for (char **m = c->h->member_attrs; *m != NULL; m++)
		add_attr(c, *m);
	c->scram = scram_offered(c->cfg);
	if (c->scram)
		add_attr(c, c->dc->scram_attr);

	struct dir_ldap_entry *e = NULL;
	size_t n = 0;
	char *none[] = {"1.1", NULL};
	if (search(c, c->dc->base, LDAP_SCOPE_BASE, "(objectClass=*)", none, 1, &e, &n,
		   "[directory] base") &&
	    n == 0)
		problem(c,
			"[directory] base %s does not exist, or the service account may not "
			"read it",
			c->dc->base);

	struct buf uf;
	buf_init(&uf, DIR_ADMIN_FILTER_MAX);
	if (dir_filter_expand_any(c->dc->user_filter, 'u', &uf) < 0)
		problem(c, "[directory] user_filter %s does not expand", c->dc->user_filter);
	else
		check_users(c, arena_strdup(c->a, buf_cstr(&uf)));
	buf_free(&uf);
	report_scram(c);
	check_lists(c);
	size_t naddr = check_duplicates(c);
	check_member_addrs(c);
	check_routes(c);
	fprintf(c->out,
		"summary: %zu users (%zu disabled), %zu lists, %zu addresses; %u problem(s)\n",
		c->nusers, c->ndisabled, c->nlists, naddr, c->problems);
	return c->problems > 0 ? EXIT_PROBLEMS : 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: ternd check-directory -c FILE\n"
		   "  checks [directory] against the live directory; exit 0 clean,\n"
		   "  1 problems found, 2 usage or configuration error\n");
}

int
dir_check_main(int argc, char **argv)
{
	const char *path = NULL;
	char *err = NULL;
	int ch;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:h")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* Warnings only on stderr: the report is stdout. */
	log_init(LOGL_WARN);
	struct config *cfg = config_load(path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "ternd: %s\n", err);
		free(err);
		return EXIT_USAGE;
	}
	struct check c = {.cfg = cfg, .dc = &cfg->dir, .a = arena_new(0), .out = stdout};
	int rc = run(&c);
	fflush(stdout);
	dir_admin_close(&c.h);
	free(c.claims);
	free(c.routes);
	free(c.maddrs);
	free(c.dns);
	free(c.logins);
	arena_destroy(&c.a);
	config_free(cfg);
	return rc;
}
