/*
 * admin_auth.c - the minimal built-in admin credential check, with
 * synchronous libldap calls on the request thread (tern-admind's threads
 * may block; ternd's never do). The directory write library replaces it
 * through admin_set_authenticator(); keep it small.
 *
 * Steps: bind as the service account; find the user with [directory]
 * user_filter (and not disabled_filter) under base, exactly one entry;
 * bind as that DN with the password on a fresh connection (the directory
 * checks it and applies its policy); look for the DN in the admin_group
 * entry's member attributes with a base search. Every value put in a
 * filter is escaped (dir_filter_expand / dir_escape_filter_value).
 * How it fails: a wrong password, an unknown, ambiguous or disabled login
 * is ADMIN_AUTH_BAD; a directory that cannot be reached, times out or
 * errs is ADMIN_AUTH_UNAVAILABLE; the password is never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "admin/admin.h"
#include "core/log.h"
#include "directory/dir.h"
#include "directory/dir_tls.h"

#define FILTER_MAX 8192

void
admin_identity_clear(struct admin_identity *id)
{
	free(id->login);
	free(id->dn);
	id->login = id->dn = NULL;
}

void
admin_identity_copy(struct admin_identity *dst, const struct admin_identity *src)
{
	dst->login = src->login != NULL ? xstrdup(src->login) : NULL;
	dst->dn = src->dn != NULL ? xstrdup(src->dn) : NULL;
}

/* A connected handle to the first [directory] uri that answers, with
 * the shared options, TLS and timeouts (directory/dir_tls.h); not bound. */
static LDAP *
open_ldap(const struct config *cfg, char **error_r)
{
	LDAP *ld = NULL;

	if (dir_tls_open_sync(&cfg->dir, &ld, NULL, error_r) != LDAP_SUCCESS)
		return NULL;
	return ld;
}

static bool
unavailable(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
	       rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE || rc == LDAP_TIMELIMIT_EXCEEDED ||
	       rc == LDAP_ADMINLIMIT_EXCEEDED || rc == LDAP_OTHER || rc == LDAP_LOCAL_ERROR ||
	       rc == LDAP_NO_MEMORY;
}

static LDAP *
service_conn(const struct config *cfg, char **error_r)
{
	LDAP *ld = open_ldap(cfg, error_r);

	if (ld == NULL)
		return NULL;
	int rc = dir_tls_bind_sync(ld, &cfg->dir, cfg->dir.bind_dn, cfg->dir.bind_password,
				   "service account bind");
	if (rc != LDAP_SUCCESS) {
		if (asprintf(error_r, "service bind: %s", ldap_err2string(rc)) < 0)
			fatal("out of memory");
		ldap_unbind_ext_s(ld, NULL, NULL);
		return NULL;
	}
	return ld;
}

int
admin_ldap_ping(const struct config *cfg, char **error_r)
{
	LDAP *ld = service_conn(cfg, error_r);

	if (ld == NULL)
		return -1;
	ldap_unbind_ext_s(ld, NULL, NULL);
	return 0;
}

/* The one entry the user filter finds: its DN and login attribute. */
static int
find_user(LDAP *ld, const struct config *cfg, const char *login, char **dn_r, char **login_r)
{
	struct buf f, user;
	int result = ADMIN_AUTH_BAD;

	buf_init(&f, FILTER_MAX);
	buf_init(&user, FILTER_MAX);
	if (dir_filter_expand(cfg->dir.user_filter, 'u', login, &user) < 0)
		goto out; /* a NUL byte or an absurd length: no such user */
	if (cfg->dir.disabled_filter[0] != '\0')
		(void)buf_printf(&f, "(&%s(!%s))", buf_cstr(&user), cfg->dir.disabled_filter);
	else
		(void)buf_append_str(&f, buf_cstr(&user));
	char *attrs[] = {cfg->dir.login_attr, NULL};
	LDAPMessage *res = NULL;
	struct timeval tv = {.tv_sec = cfg->dir.timeout, .tv_usec = 0};
	int rc = ldap_search_ext_s(ld, cfg->dir.base, LDAP_SCOPE_SUBTREE, buf_cstr(&f), attrs, 0,
				   NULL, NULL, &tv, 2, &res);
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		result = ADMIN_AUTH_BAD; /* two entries: ambiguous */
	} else if (rc != LDAP_SUCCESS) {
		log_warn(0, "admin", "auth-search-failed error=\"%s\"", ldap_err2string(rc));
		result = unavailable(rc) || rc < 0 ? ADMIN_AUTH_UNAVAILABLE : ADMIN_AUTH_BAD;
	} else if (ldap_count_entries(ld, res) == 1) {
		LDAPMessage *e = ldap_first_entry(ld, res);
		char *dn = ldap_get_dn(ld, e);
		struct berval **vals = ldap_get_values_len(ld, e, cfg->dir.login_attr);
		if (dn != NULL) {
			*dn_r = xstrdup(dn);
			*login_r = vals != NULL && vals[0] != NULL
				       ? xstrndup(vals[0]->bv_val, vals[0]->bv_len)
				       : xstrdup(login);
			result = ADMIN_AUTH_OK;
		}
		ldap_value_free_len(vals);
		ldap_memfree(dn);
	}
	ldap_msgfree(res);
out:
	buf_free(&f);
	buf_free(&user);
	return result;
}

/* OK if dn is a member of cfg->admin_group, else NOT_ADMIN. */
static int
check_group(LDAP *ld, const struct config *cfg, const char *dn)
{
	struct buf f, esc;
	int result = ADMIN_AUTH_NOT_ADMIN;

	if (cfg->admin_group[0] == '\0')
		return ADMIN_AUTH_NOT_ADMIN; /* nobody is admin until it is set */
	buf_init(&f, FILTER_MAX);
	buf_init(&esc, FILTER_MAX);
	if (dir_escape_filter_value(dn, strlen(dn), &esc) < 0)
		goto out;
	/* member_attr is "member, uniqueMember": one equality per name. */
	(void)buf_append_str(&f, "(|");
	const char *p = cfg->dir.member_attr;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		size_t n = strcspn(p, ", ");
		if (n > 0)
			(void)buf_printf(&f, "(%.*s=%s)", (int)n, p, buf_cstr(&esc));
		p += n;
	}
	if (buf_append_str(&f, ")") < 0)
		goto out;
	char *attrs[] = {"1.1", NULL};
	LDAPMessage *res = NULL;
	struct timeval tv = {.tv_sec = cfg->dir.timeout, .tv_usec = 0};
	int rc = ldap_search_ext_s(ld, cfg->admin_group, LDAP_SCOPE_BASE, buf_cstr(&f), attrs, 0,
				   NULL, NULL, &tv, 1, &res);
	if (rc == LDAP_SUCCESS && ldap_count_entries(ld, res) == 1)
		result = ADMIN_AUTH_OK;
	else if (rc == LDAP_NO_SUCH_OBJECT)
		log_warn(0, "admin", "admin-group-missing dn=\"%s\"", cfg->admin_group);
	else if (rc != LDAP_SUCCESS && (unavailable(rc) || rc < 0))
		result = ADMIN_AUTH_UNAVAILABLE;
	ldap_msgfree(res);
out:
	buf_free(&f);
	buf_free(&esc);
	return result;
}

int
admin_ldap_authenticate(void *ctx, const struct config *cfg, const char *login,
			const char *password, struct admin_identity *id_r)
{
	char *err = NULL, *dn = NULL, *found_login = NULL;
	int result;

	(void)ctx;
	memset(id_r, 0, sizeof(*id_r));
	/* Some servers take an empty password as an anonymous bind. */
	if (login[0] == '\0' || password[0] == '\0')
		return ADMIN_AUTH_BAD;
	LDAP *svc = service_conn(cfg, &err);
	if (svc == NULL) {
		log_warn(0, "admin", "directory-unavailable error=\"%s\"", err);
		free(err);
		return ADMIN_AUTH_UNAVAILABLE;
	}
	result = find_user(svc, cfg, login, &dn, &found_login);
	if (result != ADMIN_AUTH_OK)
		goto out;

	LDAP *user = open_ldap(cfg, &err);
	if (user == NULL) {
		log_warn(0, "admin", "directory-unavailable error=\"%s\"", err);
		free(err);
		result = ADMIN_AUTH_UNAVAILABLE;
		goto out;
	}
	int rc = dir_tls_bind_sync(user, &cfg->dir, dn, password, "admin login bind");
	ldap_unbind_ext_s(user, NULL, NULL);
	if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH ||
	    rc == LDAP_UNWILLING_TO_PERFORM) {
		result = ADMIN_AUTH_BAD;
		goto out;
	}
	if (rc != LDAP_SUCCESS) {
		log_warn(0, "admin", "auth-bind-failed error=\"%s\"", ldap_err2string(rc));
		result = unavailable(rc) || rc < 0 ? ADMIN_AUTH_UNAVAILABLE : ADMIN_AUTH_BAD;
		goto out;
	}
	result = check_group(svc, cfg, dn);
	if (result == ADMIN_AUTH_OK) {
		id_r->dn = dn;
		id_r->login = found_login;
		dn = found_login = NULL;
	}
out:
	ldap_unbind_ext_s(svc, NULL, NULL);
	free(dn);
	free(found_login);
	return result;
}
