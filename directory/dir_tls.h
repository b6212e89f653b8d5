/*
 * dir_tls.h - what every LDAP handle Tern opens gets: the options of
 * [directory] (timeouts, referrals, TLS with CA, host name and client
 * certificate), the URI list in order of preference, and the rule that
 * no password travels unencrypted to a directory off this machine.
 *
 * Shared by ternd's directory thread (dir_ldap.c, asynchronous) and by
 * tern-admind's synchronous connections (dir_admin_conn.c,
 * admin/admin_auth.c), so the settings are written once. Nothing here
 * keeps state; any thread may call it on a handle it owns.
 */
#ifndef TERN_DIR_TLS_H
#define TERN_DIR_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <ldap.h>

#include "core/config.h"

/* [directory] uri split on spaces, tabs and commas: a NULL-terminated
 * malloc'd vector of malloc'd strings, first = preferred. *n_r may be
 * NULL. Free with dir_tls_free_uris. */
char **dir_tls_split_uris(const char *s, size_t *n_r);
void dir_tls_free_uris(char **uris);

/* Sets version 3, referrals, the connect timeout ([directory] timeout),
 * TCP keepalive and the TLS options (CA file/dir, verification and host
 * name check, client certificate, TLS 1.2 at least) on a fresh handle,
 * then makes a TLS context of its own for it (LDAP_OPT_X_TLS_NEWCTX).
 * 0, or -1 with *error_r (malloc'd) when libldap refuses a setting. */
int dir_tls_setup(LDAP *ld, const struct directory_config *dc, char **error_r);

/* True if uri names this machine: ldapi://, or a host that is
 * localhost or a loopback address (127.0.0.0/8, ::1). Pure. */
bool dir_tls_uri_is_local(const char *uri);
/* True if uri's connections are encrypted by configuration: ldaps://,
 * or ldap:// with starttls. Pure. */
bool dir_tls_uri_is_encrypted(const char *uri, bool starttls);
/* The plaintext-password rule: a password may be sent on a connection
 * to uri if it is encrypted (tls_active), or the directory is local, or
 * the admin allowed plaintext passwords. Pure. */
bool dir_tls_password_allowed(const char *uri, bool tls_active, bool allow_plaintext);

/* The rule applied to a live handle connected to uri: 0, or -1 after
 * logging why `what` (e.g. "user bind") was refused. */
int dir_tls_check_password(LDAP *ld, const char *uri, const struct directory_config *dc,
			   const char *what);

/* Logs, once at start-up, each URI to which passwords will not be sent
 * and a warning when tls_verify is off. who: "ternd", "tern-admind". */
void dir_tls_log_config(const struct directory_config *dc, const char *who);

/* A text for a failed TLS set-up on ld (StartTLS or ldaps://) to uri:
 * what OpenSSL finds wrong with the server's certificate when the probe
 * (dir_tls_probe) can tell, else libldap's diagnostic and a hint naming
 * the usual causes. Malloc'd. */
char *dir_tls_error(LDAP *ld, int rc, const struct directory_config *dc, const char *uri);
/* dir_tls_probe.c: connects to uri again with OpenSSL and the same TLS
 * settings, and says what is wrong with the certificate (malloc'd), or
 * NULL (nothing found, or a probe ran less than 10 s ago). Blocks up to
 * [directory] timeout. */
char *dir_tls_probe(const struct directory_config *dc, const char *uri);

/* tern-admind's synchronous connection: tries the URIs in order
 * (preferred first) until one connects, with StartTLS when configured and
 * LDAP_OPT_TIMEOUT on every call. *uri_index_r (may be NULL) says which.
 * The handle is not bound. 0, or an LDAP error code with *error_r
 * (malloc'd) naming the last failure. */
int dir_tls_open_sync(const struct directory_config *dc, LDAP **ld_r, size_t *uri_index_r,
		      char **error_r);
/* A simple bind on a handle from dir_tls_open_sync, after the password
 * rule: when it refuses, nothing is sent and the answer is
 * LDAP_UNAVAILABLE (temporary: the configuration's fault, not the
 * user's) with the reason as the handle's diagnostic message. */
int dir_tls_bind_sync(LDAP *ld, const struct directory_config *dc, const char *dn,
		      const char *password, const char *what);

#endif
