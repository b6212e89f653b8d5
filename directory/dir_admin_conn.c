/*
 * dir_admin_conn.c - the admin handle (dir_admin.h): opening and closing
 * it, its one writer connection, and the synchronous LDAP operations and
 * small builders (filters, modifications) the other dir_admin*.c files
 * share (dir_admin_int.h).
 *
 * The connection uses libldap's synchronous calls with [directory]
 * timeout as both the network and the API timeout, so no call hangs on a
 * server that accepts and never answers; it is opened by dir_tls.c, like
 * ternd's, so TLS, StartTLS, the URI order and the plaintext-password
 * rule are the same. A writer connection on a later URI is dropped after
 * failback_interval so that the next call tries the first again. How it
 * fails: a server that
 * went away (LDAP_SERVER_DOWN and friends) drops the connection; the
 * next operation connects and binds again. Searches are retried once at
 * once on a fresh connection, since a connection the server closed while
 * idle is the usual case; writes are not, as it is unknown whether the
 * server applied them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "core/log.h"
#include "directory/dir.h"
#include "directory/dir_admin_int.h"
#include "directory/dir_range.h"
#include "directory/dir_tls.h"

const char *
dir_admin_strerror(int status)
{
	switch (status) {
	case DIR_ADMIN_OK:
		return "ok";
	case DIR_ADMIN_INVALID:
		return "invalid input";
	case DIR_ADMIN_EXISTS:
		return "already exists";
	case DIR_ADMIN_NOTFOUND:
		return "not found";
	case DIR_ADMIN_DENIED:
		return "permission denied by the directory";
	case DIR_ADMIN_AUTHFAIL:
		return "authentication failed";
	case DIR_ADMIN_UNAVAILABLE:
		return "directory unavailable";
	case DIR_ADMIN_UNSUPPORTED:
		return "not supported by the configuration";
	case DIR_ADMIN_ERROR:
		return "directory error";
	default:
		return "unknown status";
	}
}

int
dir_admin_ldap_fail(struct arena *a, struct dir_admin_error *err, int rc, const char *diag,
		    const char *field, const char *what)
{
	int status;

	switch (rc) {
	case LDAP_SUCCESS:
		status = DIR_ADMIN_OK;
		break;
	case LDAP_NO_SUCH_OBJECT:
		status = DIR_ADMIN_NOTFOUND;
		break;
	case LDAP_ALREADY_EXISTS:
	case LDAP_TYPE_OR_VALUE_EXISTS:
		status = DIR_ADMIN_EXISTS;
		break;
	case LDAP_INSUFFICIENT_ACCESS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_STRONG_AUTH_REQUIRED:
	case LDAP_CONFIDENTIALITY_REQUIRED:
	case LDAP_UNWILLING_TO_PERFORM:
		status = DIR_ADMIN_DENIED;
		break;
	default:
		status = dir_ldap_rc_is_temporary(rc) ? DIR_ADMIN_UNAVAILABLE : DIR_ADMIN_ERROR;
		break;
	}
	if (status == DIR_ADMIN_OK)
		return status;
	return dir_admin_fail(a, err, status, field, "%s: %s%s%s%s", what, ldap_err2string(rc),
			      diag != NULL && diag[0] != '\0' ? " (" : "", diag != NULL ? diag : "",
			      diag != NULL && diag[0] != '\0' ? ")" : "");
}

/* ---- lists of names ---- */

void
dir_admin_free_list(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

bool
dir_admin_list_has(char *const *v, const char *s)
{
	for (; v != NULL && *v != NULL; v++)
		if (strcasecmp(*v, s) == 0)
			return true;
	return false;
}

static void
push_unique(char ***v, const char *s)
{
	size_t n = 0;

	if (s == NULL || s[0] == '\0' || dir_admin_list_has(*v, s))
		return;
	while ((*v)[n] != NULL)
		n++;
	*v = xrealloc(*v, (n + 2) * sizeof(**v));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

/* ---- entries ---- */

const struct dir_ldap_attr *
dir_admin_attr(const struct dir_ldap_entry *e, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return NULL;
	for (size_t i = 0; i < e->nattrs; i++)
		if (strcasecmp(e->attrs[i].name, name) == 0 && e->attrs[i].nvals > 0)
			return &e->attrs[i];
	return NULL;
}

const char *
dir_admin_attr1(const struct dir_ldap_entry *e, const char *name)
{
	const struct dir_ldap_attr *at = dir_admin_attr(e, name);

	return at != NULL ? at->vals[0] : "";
}

bool
dir_admin_has_value(const struct dir_ldap_entry *e, const char *name, const char *value)
{
	const struct dir_ldap_attr *at = dir_admin_attr(e, name);

	for (size_t i = 0; at != NULL && i < at->nvals; i++)
		if (strcasecmp(at->vals[i], value) == 0)
			return true;
	return false;
}

bool
dir_admin_is_list(const struct dir_admin *h, const struct dir_ldap_entry *e)
{
	const struct dir_ldap_attr *oc = dir_admin_attr(e, "objectClass");

	for (size_t i = 0; oc != NULL && i < oc->nvals; i++)
		if (dir_admin_list_has(h->list_classes, oc->vals[i]))
			return true;
	return false;
}

/* ---- filters ---- */

const char *
dir_admin_filter(struct arena *a, const char *tmpl, char key, const char *value)
{
	struct buf b;
	const char *f = NULL;

	buf_init(&b, DIR_ADMIN_FILTER_MAX);
	bool wrap = tmpl[0] != '(';
	if ((!wrap || buf_putc(&b, '(') == 0) && dir_filter_expand(tmpl, key, value, &b) == 0 &&
	    (!wrap || buf_putc(&b, ')') == 0))
		f = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return f;
}

const char *
dir_admin_eq(struct arena *a, const char *attr, const char *value)
{
	struct buf b;
	const char *f = NULL;

	buf_init(&b, DIR_ADMIN_FILTER_MAX);
	if (buf_printf(&b, "(%s=", attr) == 0 &&
	    dir_escape_filter_value(value, strlen(value), &b) == 0 && buf_putc(&b, ')') == 0)
		f = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return f;
}

const char *
dir_admin_enabled(const struct dir_admin *h, struct arena *a, const char *f)
{
	const char *d = h->dc->disabled_filter;

	if (f == NULL || d == NULL || d[0] == '\0')
		return f;
	bool wrap = d[0] != '(';
	return arena_printf(a, "(&%s(!%s%s%s))", f, wrap ? "(" : "", d, wrap ? ")" : "");
}

/* ---- modifications ---- */

void
dir_admin_mods_init(struct dir_admin_mods *m, struct arena *a)
{
	memset(m, 0, sizeof(*m));
	m->a = a;
}

void
dir_admin_mod(struct dir_admin_mods *m, int op, const char *attr, const char *const *vals,
	      size_t nvals)
{
	if (m->n + 1 >= m->cap) {
		size_t ncap = m->cap == 0 ? 8 : m->cap * 2;
		LDAPMod **nv = arena_alloc(m->a, ncap * sizeof(*nv));
		if (m->n > 0)
			memcpy(nv, m->v, m->n * sizeof(*nv));
		m->v = nv;
		m->cap = ncap;
	}
	LDAPMod *mod = arena_alloc(m->a, sizeof(*mod));
	mod->mod_op = op;
	mod->mod_type = arena_strdup(m->a, attr);
	if (nvals > 0) {
		mod->mod_values = arena_alloc(m->a, (nvals + 1) * sizeof(char *));
		for (size_t i = 0; i < nvals; i++)
			mod->mod_values[i] = arena_strdup(m->a, vals[i]);
	}
	m->v[m->n++] = mod;
	m->v[m->n] = NULL;
}

void
dir_admin_mod1(struct dir_admin_mods *m, int op, const char *attr, const char *val)
{
	dir_admin_mod(m, op, attr, &val, val != NULL ? 1 : 0);
}

/* ---- the connection ---- */

static void
drop_connection(struct dir_admin *h)
{
	if (h->ld != NULL)
		ldap_unbind_ext_s(h->ld, NULL, NULL);
	h->ld = NULL;
}

static bool
rc_lost(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT;
}

static uint64_t
mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Simple bind of dn on a fresh handle (dir_tls_open_sync: the first URI
 * that answers); the handle is kept on success. *uri_index_r may be NULL. */
static int
bind_as(const struct dir_admin *h, const char *dn, const char *password, const char *what,
	LDAP **ld_r, size_t *uri_index_r, char **diag_r)
{
	LDAP *ld;
	char *why = NULL;
	int rc = dir_tls_open_sync(h->dc, &ld, uri_index_r, &why);

	*diag_r = NULL;
	if (rc != LDAP_SUCCESS) {
		/* The reason (TLS, refused...) travels as the diagnostic. */
		if (why != NULL) {
			*diag_r = ldap_strdup(why);
			free(why);
		}
		return rc;
	}
	rc = dir_tls_bind_sync(ld, h->dc, dn, password, what);
	if (rc != LDAP_SUCCESS) {
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, diag_r);
		ldap_unbind_ext_s(ld, NULL, NULL);
		return rc;
	}
	*ld_r = ld;
	return LDAP_SUCCESS;
}

int
dir_admin_bind_check(const struct dir_admin *h, const char *dn, const char *password, char **diag_r)
{
	LDAP *ld = NULL;
	int rc = bind_as(h, dn, password, "admin login bind", &ld, NULL, diag_r);

	if (rc == LDAP_SUCCESS)
		ldap_unbind_ext_s(ld, NULL, NULL);
	return rc;
}

int
dir_admin_connect(struct dir_admin *h, struct arena *a, struct dir_admin_error *err)
{
	char *diag = NULL;

	if (h->ld != NULL && h->uri_index > 0 &&
	    mono_seconds() - h->connected_at >= h->dc->failback_interval) {
		/* On a later URI for a while: see whether the first is back. */
		drop_connection(h);
	}
	if (h->ld != NULL)
		return DIR_ADMIN_OK;
	int rc =
	    bind_as(h, h->bind_dn, h->bind_password, h->bind_what, &h->ld, &h->uri_index, &diag);
	h->connected_at = mono_seconds();
	if (rc != LDAP_SUCCESS) {
		const char *what =
		    arena_printf(a, "%s as %s to %s", h->bind_what, h->bind_dn, h->uri);
		int status = dir_admin_ldap_fail(a, err, rc, diag, NULL, what);
		ldap_memfree(diag);
		log_warn(0, "diradmin",
			 "bind-failed what=\"%s\" uri=\"%s\" dn=\"%s\" rc=%d error=\"%s\" "
			 "diag=\"%s\"",
			 h->bind_what, h->uri, h->bind_dn, rc, ldap_err2string(rc),
			 err->message != NULL ? err->message : "");
		h->ld = NULL;
		return status;
	}
	return DIR_ADMIN_OK;
}

struct entry_vec {
	struct dir_ldap_entry *v;
	size_t n, cap;
};

static void
collect(struct dir_admin *h, struct arena *a, LDAPMessage *res, struct entry_vec *ev, int sizelimit)
{
	for (LDAPMessage *m = ldap_first_entry(h->ld, res); m != NULL;
	     m = ldap_next_entry(h->ld, m)) {
		if (sizelimit > 0 && ev->n >= (size_t)sizelimit)
			break;
		if (ev->n == ev->cap) {
			ev->cap = ev->cap == 0 ? 16 : ev->cap * 2;
			ev->v = xrealloc(ev->v, ev->cap * sizeof(*ev->v));
		}
		dir_ldap_copy_entry(h->ld, m, a, &ev->v[ev->n++]);
	}
}

/* Completes the AD ranged attributes (dir_range.h) of n entries with
 * follow-up base reads, one at a time. LDAP_SUCCESS, the read's error,
 * or LDAP_OTHER when the server broke the range protocol: a caller never
 * sees part of a big group as if it were all of it. Too many values are
 * logged and the rest left out. */
static int
fill_ranges(struct dir_admin *h, struct arena *a, struct dir_ldap_entry *v, size_t n)
{
	struct dir_range_walk w = {0};
	struct timeval tv = {.tv_sec = h->dc->timeout > 0 ? h->dc->timeout : 5};
	enum dir_range_step s = dir_range_walk_next(a, v, n, &w);
	bool after_next = true;

	for (;;) {
		const char *dn = w.entry < n ? v[w.entry].dn : "";
		if (s == DIR_RANGE_MORE) {
			char *attrs[] = {(char *)w.request, NULL};
			LDAPMessage *res = NULL;
			int rc = ldap_search_ext_s(h->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)",
						   attrs, 0, NULL, NULL, &tv, 1, &res);
			LDAPMessage *m = rc == LDAP_SUCCESS ? ldap_first_entry(h->ld, res) : NULL;
			struct dir_ldap_entry reply;
			if (m != NULL)
				dir_ldap_copy_entry(h->ld, m, a, &reply);
			ldap_msgfree(res);
			if (rc != LDAP_SUCCESS) {
				log_warn(0, "diradmin",
					 "range-failed dn=\"%s\" attr=%s rc=%d error=\"%s\"", dn,
					 w.base, rc, ldap_err2string(rc));
				return dir_ldap_rc_is_temporary(rc) ? rc : LDAP_OTHER;
			}
			s = dir_range_walk_answer(a, v, &w, m != NULL ? &reply : NULL);
			after_next = false;
			continue;
		}
		if (s == DIR_RANGE_BAD) {
			log_warn(0, "diradmin", "range-failed dn=\"%s\" attr=%s reason=\"%s\"", dn,
				 w.base, w.why);
			return LDAP_OTHER;
		}
		if (s == DIR_RANGE_CAP)
			log_error(0, "diradmin",
				  "range-cap dn=\"%s\" attr=%s values=%zu reason=\"%s\": the rest "
				  "of the values are left out",
				  dn, w.base, w.st.total, w.why);
		if (s == DIR_RANGE_DONE && after_next)
			return LDAP_SUCCESS;
		s = dir_range_walk_next(a, v, n, &w);
		after_next = true;
	}
}

/* One search (all pages when sizelimit is 0); the LDAP code. */
static int
search_once(struct dir_admin *h, struct arena *a, const char *base, int scope, const char *filter,
	    char **attrs, int sizelimit, struct entry_vec *ev, size_t *nseen_r, char **diag_r)
{
	struct berval cookie = {0};
	struct timeval tv = {.tv_sec = h->dc->timeout > 0 ? h->dc->timeout : 5};
	int rc;

	*nseen_r = 0;
	do {
		LDAPControl *page = NULL;
		LDAPControl *sctrls[2] = {NULL, NULL};
		LDAPMessage *res = NULL;

		if (sizelimit == 0) {
			rc = ldap_create_page_control(h->ld, (ber_int_t)h->dc->page_size, &cookie,
						      0, &page);
			if (rc != LDAP_SUCCESS)
				break;
			sctrls[0] = page;
		}
		rc = ldap_search_ext_s(h->ld, base, scope, filter, attrs, 0, sctrls, NULL, &tv,
				       sizelimit, &res);
		if (page != NULL)
			ldap_control_free(page);
		if (cookie.bv_val != NULL) {
			ber_memfree(cookie.bv_val);
			cookie.bv_val = NULL;
			cookie.bv_len = 0;
		}
		if (res == NULL) {
			if (rc == LDAP_SUCCESS)
				rc = LDAP_OTHER;
			ldap_get_option(h->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, diag_r);
			break;
		}
		int count = ldap_count_entries(h->ld, res);
		*nseen_r += count > 0 ? (size_t)count : 0;
		int range_rc = LDAP_SUCCESS;
		if (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED) {
			size_t first = ev->n;
			collect(h, a, res, ev, sizelimit);
			range_rc = fill_ranges(h, a, ev->v + first, ev->n - first);
		}
		int err = rc;
		LDAPControl **rctrls = NULL;
		if (ldap_parse_result(h->ld, res, &err, NULL, diag_r, NULL, &rctrls, 0) ==
		    LDAP_SUCCESS) {
			LDAPControl *pr =
			    ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
			ber_int_t estimate;
			if (pr != NULL && sizelimit == 0 && rc == LDAP_SUCCESS)
				(void)ldap_parse_pageresponse_control(h->ld, pr, &estimate,
								      &cookie);
			ldap_controls_free(rctrls);
		}
		ldap_msgfree(res);
		if (range_rc != LDAP_SUCCESS) {
			rc = range_rc;
			break;
		}
		if (rc == LDAP_SIZELIMIT_EXCEEDED) {
			/* More than sizelimit matched: say so through nseen. */
			*nseen_r = (size_t)sizelimit + 1;
			rc = LDAP_SUCCESS;
			break;
		}
		if (rc != LDAP_SUCCESS)
			break;
		if (cookie.bv_len > 0 && *diag_r != NULL) {
			ldap_memfree(*diag_r);
			*diag_r = NULL;
		}
	} while (cookie.bv_len > 0);
	if (cookie.bv_val != NULL)
		ber_memfree(cookie.bv_val);
	return rc;
}

int
dir_admin_search(struct dir_admin *h, struct arena *a, const char *base, int scope,
		 const char *filter, char **attrs, int sizelimit, struct dir_ldap_entry **entries_r,
		 size_t *n_r, size_t *nseen_r, struct dir_admin_error *err)
{
	struct entry_vec ev = {0};
	size_t nseen = 0;
	int rc = LDAP_SERVER_DOWN;
	char *diag = NULL;

	*entries_r = NULL;
	*n_r = 0;
	if (filter == NULL)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, NULL,
				      "a value is too long for an LDAP filter");
	for (int attempt = 0; attempt < 2; attempt++) {
		int status = dir_admin_connect(h, a, err);
		if (status != DIR_ADMIN_OK) {
			free(ev.v);
			return status;
		}
		ev.n = 0;
		ldap_memfree(diag);
		diag = NULL;
		rc = search_once(h, a, base, scope, filter, attrs, sizelimit, &ev, &nseen, &diag);
		if (!rc_lost(rc))
			break;
		drop_connection(h);
	}
	if (rc == LDAP_NO_SUCH_OBJECT) {
		ev.n = 0;
		nseen = 0;
		rc = LDAP_SUCCESS;
	}
	if (rc != LDAP_SUCCESS) {
		if (rc_lost(rc))
			drop_connection(h);
		const char *what = arena_printf(a, "search %s under %s", filter, base);
		int status = dir_admin_ldap_fail(a, err, rc, diag, NULL, what);
		ldap_memfree(diag);
		free(ev.v);
		return status;
	}
	ldap_memfree(diag);
	if (ev.n > 0)
		*entries_r = arena_memdup(a, ev.v, ev.n * sizeof(*ev.v));
	*n_r = ev.n;
	if (nseen_r != NULL)
		*nseen_r = nseen;
	free(ev.v);
	return DIR_ADMIN_OK;
}

/* The code of a write, its diagnostic copied into a. */
static int
write_done(struct dir_admin *h, struct arena *a, int rc, const char **diag_r)
{
	char *diag = NULL;

	if (diag_r != NULL)
		*diag_r = NULL;
	if (rc != LDAP_SUCCESS && h->ld != NULL) {
		ldap_get_option(h->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
		if (diag != NULL && diag_r != NULL)
			*diag_r = arena_strdup(a, diag);
		ldap_memfree(diag);
	}
	if (rc_lost(rc))
		drop_connection(h);
	return rc;
}

int
dir_admin_ldap_modify(struct dir_admin *h, struct arena *a, const char *dn,
		      const struct dir_admin_mods *m, const char **diag_r)
{
	struct dir_admin_error err;

	if (dir_admin_connect(h, a, &err) != DIR_ADMIN_OK)
		return write_done(h, a, LDAP_SERVER_DOWN, diag_r);
	if (m->n == 0)
		return LDAP_SUCCESS;
	return write_done(h, a, ldap_modify_ext_s(h->ld, dn, m->v, NULL, NULL), diag_r);
}

int
dir_admin_ldap_add(struct dir_admin *h, struct arena *a, const char *dn,
		   const struct dir_admin_mods *m, const char **diag_r)
{
	struct dir_admin_error err;

	if (dir_admin_connect(h, a, &err) != DIR_ADMIN_OK)
		return write_done(h, a, LDAP_SERVER_DOWN, diag_r);
	/* An add takes the same LDAPMod array with LDAP_MOD_ADD ops. */
	return write_done(h, a, ldap_add_ext_s(h->ld, dn, m->v, NULL, NULL), diag_r);
}

int
dir_admin_ldap_delete(struct dir_admin *h, struct arena *a, const char *dn, const char **diag_r)
{
	struct dir_admin_error err;

	if (dir_admin_connect(h, a, &err) != DIR_ADMIN_OK)
		return write_done(h, a, LDAP_SERVER_DOWN, diag_r);
	return write_done(h, a, ldap_delete_ext_s(h->ld, dn, NULL, NULL), diag_r);
}

int
dir_admin_ldap_passwd(struct dir_admin *h, struct arena *a, const char *dn, const char *password,
		      const char **diag_r)
{
	struct dir_admin_error err;

	if (dir_admin_connect(h, a, &err) != DIR_ADMIN_OK)
		return write_done(h, a, LDAP_SERVER_DOWN, diag_r);
	struct berval user = {.bv_val = (char *)dn, .bv_len = strlen(dn)};
	struct berval pw = {.bv_val = (char *)password, .bv_len = strlen(password)};
	struct berval gen = {0};
	/* RFC 3062: no old password (the writer has the right to reset),
	 * the new one given, so the server generates none. */
	int rc = ldap_passwd_s(h->ld, &user, NULL, &pw, &gen, NULL, NULL);
	if (gen.bv_val != NULL) {
		explicit_bzero(gen.bv_val, gen.bv_len);
		ber_memfree(gen.bv_val);
	}
	return write_done(h, a, rc, diag_r);
}

int
dir_admin_entry_disabled(struct dir_admin *h, struct arena *a, const char *dn, bool *disabled_r,
			 struct dir_admin_error *err)
{
	const char *d = h->dc->disabled_filter;
	static char *no_attrs[] = {LDAP_NO_ATTRS, NULL};
	struct dir_ldap_entry *e;
	size_t n;

	*disabled_r = false;
	if (d == NULL || d[0] == '\0')
		return DIR_ADMIN_OK;
	bool wrap = d[0] != '(';
	const char *f = arena_printf(a, "%s%s%s", wrap ? "(" : "", d, wrap ? ")" : "");
	int status = dir_admin_search(h, a, dn, LDAP_SCOPE_BASE, f, no_attrs, 1, &e, &n, NULL, err);
	if (status == DIR_ADMIN_OK)
		*disabled_r = n > 0;
	return status;
}

/* ---- open and close ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "(attr=value)" with a plain value: what disabling writes. */
static void
parse_disabled_filter(struct dir_admin *h)
{
	const char *f = h->dc->disabled_filter;
	size_t len = f != NULL ? strlen(f) : 0;

	if (len < 5 || f[0] != '(' || f[len - 1] != ')')
		return;
	const char *eq = memchr(f, '=', len);
	if (eq == NULL || eq == f + 1)
		return;
	for (const char *p = f + 1; p < eq; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == ';'))
			return; /* also "~=", ">=", "<=", ":=" and nested filters */
	}
	struct buf v;
	buf_init(&v, len);
	for (const char *p = eq + 1; p < f + len - 1; p++) {
		if (*p == '*' || *p == '(' || *p == ')' || *p == '=') {
			buf_free(&v);
			return; /* presence, substring or not one assertion */
		}
		if (*p == '\\') {
			int hi = p + 2 < f + len - 1 ? hexval(p[1]) : -1;
			int lo = hi >= 0 ? hexval(p[2]) : -1;
			if (lo < 0) {
				buf_free(&v);
				return;
			}
			(void)buf_putc(&v, (char)(hi << 4 | lo));
			p += 2;
			continue;
		}
		(void)buf_putc(&v, *p);
	}
	if (v.len == 0 || memchr(v.data, '\0', v.len) != NULL) {
		buf_free(&v);
		return;
	}
	h->disable_attr = xstrndup(f + 1, (size_t)(eq - f - 1));
	h->disable_value = xstrdup(buf_cstr(&v));
	buf_free(&v);
}

static void
free_handle(struct dir_admin *h)
{
	drop_connection(h);
	free(h->uri);
	dir_admin_free_list(h->user_attrs);
	dir_admin_free_list(h->list_attrs);
	dir_admin_free_list(h->member_attrs);
	dir_admin_free_list(h->list_classes);
	dir_admin_free_list(h->user_classes);
	dir_admin_free_list(h->new_list_classes);
	free(h->disable_attr);
	free(h->disable_value);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int
open_fail(struct dir_admin *h, char **error_r, const char *msg)
{
	*error_r = xstrdup(msg);
	free_handle(h);
	return -1;
}

/* What the writer needs from [admin]: NULL, or a malloc'd reason. */
static char *
writer_config_error(const struct config *cfg, const struct dir_admin *h)
{
	if (cfg->admin_writer_dn == NULL || cfg->admin_writer_dn[0] == '\0')
		return xstrdup("[admin] writer_bind_dn is not set");
	if (cfg->admin_writer_password == NULL || cfg->admin_writer_password[0] == '\0')
		return xstrdup("[admin] writer_password_file is not set");
	if (h->user_classes[0] == NULL || h->new_list_classes[0] == NULL)
		return xstrdup("[admin] user_object_classes and list_object_classes must not "
			       "be empty");
	const char *bases[] = {cfg->admin_user_base, cfg->admin_group_base};
	for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
		LDAPDN dn = NULL;
		if (bases[i] == NULL ||
		    ldap_str2dn(bases[i], &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) {
			char *msg = NULL;
			if (asprintf(&msg, "[admin] %s: \"%s\" is not a DN",
				     i == 0 ? "user_base" : "group_base",
				     bases[i] != NULL ? bases[i] : "") < 0)
				fatal("out of memory");
			return msg;
		}
		ldap_dnfree(dn);
	}
	return NULL;
}

static int
open_handle(const struct config *cfg, bool reader, struct dir_admin **h_r, char **error_r)
{
	const struct directory_config *dc = &cfg->dir;
	struct dir_admin *h = xcalloc(1, sizeof(*h));

	*h_r = NULL;
	*error_r = NULL;
	h->cfg = cfg;
	h->dc = dc;
	pthread_mutex_init(&h->lock, NULL);
	h->ad = dc->profile != NULL && strcmp(dc->profile, "ad") == 0;

	/* libldap takes a space-separated list; the config allows commas. */
	h->uri = xstrdup(dc->uri != NULL ? dc->uri : "");
	for (char *p = h->uri; *p != '\0'; p++)
		if (*p == ',')
			*p = ' ';

	h->member_attrs = dir_split_list(dc->member_attr);
	h->list_classes = dir_split_list(dc->list_classes);
	h->user_classes = dir_split_list(cfg->admin_user_classes);
	h->new_list_classes = dir_split_list(cfg->admin_list_classes);
	parse_disabled_filter(h);

	h->user_attrs = dir_split_list("objectClass, displayName, cn, sn");
	const char *uattrs[] = {dc->id_attr,
				dc->login_attr,
				dc->mail_attr,
				dc->alias_attr,
				dc->quota_attr,
				h->disable_attr,
				h->ad ? "userAccountControl" : NULL};
	for (size_t i = 0; i < ARRAY_SIZE(uattrs); i++)
		push_unique(&h->user_attrs, uattrs[i]);
	h->list_attrs = dir_split_list("objectClass, cn");
	const char *lattrs[] = {dc->id_attr, dc->mail_attr, dc->alias_attr};
	for (size_t i = 0; i < ARRAY_SIZE(lattrs); i++)
		push_unique(&h->list_attrs, lattrs[i]);
	for (char **m = h->member_attrs; *m != NULL; m++)
		push_unique(&h->list_attrs, *m);

	if (reader) {
		/* ternd's service account: [admin] plays no part. */
		h->bind_dn = dc->bind_dn != NULL ? dc->bind_dn : "";
		h->bind_password = dc->bind_password != NULL ? dc->bind_password : "";
		h->bind_what = "service bind";
	} else {
		h->bind_dn = cfg->admin_writer_dn;
		h->bind_password = cfg->admin_writer_password;
		h->bind_what = "writer bind";
		char *why = writer_config_error(cfg, h);
		if (why != NULL) {
			open_fail(h, error_r, why);
			free(why);
			return -1;
		}
	}

	struct arena *a = arena_new(0);
	struct dir_admin_error err;
	if (dir_admin_connect(h, a, &err) != DIR_ADMIN_OK) {
		open_fail(h, error_r, err.message);
		arena_destroy(&a);
		return -1;
	}
	arena_destroy(&a);
	if (reader)
		log_info(0, "diradmin", "open uri=\"%s\" reader=\"%s\"", h->uri, h->bind_dn);
	else
		log_info(0, "diradmin",
			 "open uri=\"%s\" writer=\"%s\" user_base=\"%s\" group_base=\"%s\"", h->uri,
			 cfg->admin_writer_dn, cfg->admin_user_base, cfg->admin_group_base);
	*h_r = h;
	return 0;
}

int
dir_admin_open(const struct config *cfg, struct dir_admin **h_r, char **error_r)
{
	return open_handle(cfg, false, h_r, error_r);
}

int
dir_admin_open_reader(const struct config *cfg, struct dir_admin **h_r, char **error_r)
{
	return open_handle(cfg, true, h_r, error_r);
}

void
dir_admin_close(struct dir_admin **hp)
{
	if (hp == NULL || *hp == NULL)
		return;
	free_handle(*hp);
	*hp = NULL;
}
