/*
 * admin_auth.c - admin identities, and the health probe of the directory:
 * a bind as ternd's service account ([directory] bind_dn, with the shared
 * TLS settings of directory/dir_tls.h) with synchronous libldap calls on
 * the request thread (tern-admind's threads may block; ternd's never do).
 * The admin login itself goes through the directory writer library
 * (admin_dir.c, dir_admin_authenticate).
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
#include "directory/dir_tls.h"

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
