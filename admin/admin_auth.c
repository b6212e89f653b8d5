/*
 * admin_auth.c - admin identities, and the health probe of the directory:
 * a bind as ternd's service account ([directory] bind_dn) with synchronous
 * libldap calls on the request thread (tern-admind's threads may block;
 * ternd's never do). The admin login itself goes through the directory
 * writer library (admin_dir.c, dir_admin_authenticate).
 * How it fails: a directory that cannot be reached, times out or refuses
 * the service bind is reported with libldap's words; the password is
 * never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "admin/admin.h"
#include "core/log.h"

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

/* A handle to [directory] uri with the configured timeouts; not bound. */
static LDAP *
open_ldap(const struct config *cfg, char **error_r)
{
	LDAP *ld = NULL;
	/* libldap wants a space-separated list; the config allows commas. */
	char *uris = xstrdup(cfg->dir.uri);
	for (char *p = uris; *p != '\0'; p++)
		if (*p == ',')
			*p = ' ';
	int rc = ldap_initialize(&ld, uris);
	free(uris);
	if (rc != LDAP_SUCCESS) {
		if (asprintf(error_r, "ldap_initialize: %s", ldap_err2string(rc)) < 0)
			fatal("out of memory");
		return NULL;
	}
	int version = LDAP_VERSION3;
	struct timeval tv = {.tv_sec = cfg->dir.timeout, .tv_usec = 0};
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	return ld;
}

static int
simple_bind(LDAP *ld, const char *dn, const char *password)
{
	struct berval cred = {.bv_len = strlen(password), .bv_val = (char *)password};

	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

static LDAP *
service_conn(const struct config *cfg, char **error_r)
{
	LDAP *ld = open_ldap(cfg, error_r);

	if (ld == NULL)
		return NULL;
	int rc = simple_bind(ld, cfg->dir.bind_dn, cfg->dir.bind_password);
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
