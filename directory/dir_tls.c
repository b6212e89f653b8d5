/*
 * dir_tls.c - options, TLS and the plaintext-password rule for every LDAP
 * handle (dir_tls.h).
 *
 * libldap on Debian uses GnuTLS (notes 1.2): the TLS options are set per
 * handle and only take effect once LDAP_OPT_X_TLS_NEWCTX builds the
 * handle's own context, which also reads the CA and key files (so they
 * must be readable by the user ternd runs as). With tls_verify (the
 * default) libldap demands a chain to the configured CAs and checks the
 * URI's host against the certificate's names.
 *
 * One TLS context is shared by every handle with the same TLS settings:
 * libldap 2.5's GnuTLS code leaks the client certificate and key each
 * time it builds a context (tlsg_ctx_init), so a context per connection
 * would grow the process with every reconnect. The files are therefore
 * read once, by the first connection (XXX: a renewed client certificate
 * or CA file needs a restart; a changed setting leaks the old context).
 *
 * How it fails: a setting libldap refuses is an error for the caller
 * (the handle is not used); a TLS failure is described by dir_tls_error;
 * a password that would travel unencrypted to another machine is not
 * sent, and the refusal is logged.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compat.h"
#include "core/log.h"
#include "directory/dir_tls.h"

char **
dir_tls_split_uris(const char *s, size_t *n_r)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap, sizeof(*v));

	while (s != NULL && *s != '\0') {
		s += strspn(s, " \t,");
		size_t len = strcspn(s, " \t,");
		if (len == 0)
			break;
		if (n + 1 >= cap) {
			cap *= 2;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = xstrndup(s, len);
		s += len;
	}
	v[n] = NULL;
	if (n_r != NULL)
		*n_r = n;
	return v;
}

void
dir_tls_free_uris(char **uris)
{
	if (uris == NULL)
		return;
	for (char **p = uris; *p != NULL; p++)
		free(*p);
	free(uris);
}

static bool
scheme_is(const char *uri, const char *scheme)
{
	size_t n = strlen(scheme);

	return strncasecmp(uri, scheme, n) == 0 && strncmp(uri + n, "://", 3) == 0;
}

bool
dir_tls_uri_is_local(const char *uri)
{
	LDAPURLDesc *lud = NULL;
	bool local = false;

	if (scheme_is(uri, "ldapi"))
		return true;
	if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS)
		return false;
	/* An empty host means libldap's default host (ldap.conf), which we
	 * cannot vouch for. */
	const char *h = lud->lud_host != NULL ? lud->lud_host : "";
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(h, "localhost") == 0 || strcasecmp(h, "localhost.") == 0)
		local = true;
	else if (inet_pton(AF_INET, h, &a4) == 1)
		local = (ntohl(a4.s_addr) >> 24) == 127;
	else if (inet_pton(AF_INET6, h, &a6) == 1)
		local = IN6_IS_ADDR_LOOPBACK(&a6) ||
			(IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	ldap_free_urldesc(lud);
	return local;
}

bool
dir_tls_uri_is_encrypted(const char *uri, bool starttls)
{
	if (scheme_is(uri, "ldaps"))
		return true;
	return starttls && scheme_is(uri, "ldap");
}

bool
dir_tls_password_allowed(const char *uri, bool tls_active, bool allow_plaintext)
{
	return tls_active || allow_plaintext || dir_tls_uri_is_local(uri);
}

int
dir_tls_check_password(LDAP *ld, const char *uri, const struct directory_config *dc,
		       const char *what)
{
	if (dir_tls_password_allowed(uri, ld != NULL && ldap_tls_inplace(ld),
				     dc->allow_plaintext_passwords))
		return 0;
	log_error(0, "dir",
		  "plaintext-password-refused uri=%s what=\"%s\" reason=\"the connection is not "
		  "encrypted and the directory is not on this machine; use ldaps://, starttls = "
		  "yes, or allow_plaintext_passwords = yes\"",
		  uri, what);
	return -1;
}

void
dir_tls_log_config(const struct directory_config *dc, const char *who)
{
	char **uris = dir_tls_split_uris(dc->uri, NULL);

	for (char **u = uris; *u != NULL; u++) {
		bool enc = dir_tls_uri_is_encrypted(*u, dc->starttls);
		if (dir_tls_password_allowed(*u, enc, dc->allow_plaintext_passwords)) {
			if (!enc && !dir_tls_uri_is_local(*u))
				log_warn(0, "dir",
					 "plaintext-passwords uri=%s program=%s reason=\"passwords "
					 "are sent unencrypted to this directory "
					 "(allow_plaintext_passwords = yes)\"",
					 *u, who);
			continue;
		}
		log_error(0, "dir",
			  "plaintext-passwords-refused uri=%s program=%s reason=\"ldap:// to a "
			  "directory that is not on this machine without starttls: no password "
			  "(user logins, the service account, the admin writer) will be sent to "
			  "it; use ldaps://, set [directory] starttls = yes, or "
			  "allow_plaintext_passwords = yes\"",
			  *u, who);
	}
	if (!dc->tls_verify)
		log_warn(0, "dir",
			 "tls-verify-off program=%s reason=\"[directory] tls_verify = no: the "
			 "directory's certificate and name are not checked\"",
			 who);
	dir_tls_free_uris(uris);
}

/* The shared context and the settings it was made with. */
static struct {
	pthread_mutex_t lock;
	void *ctx; /* one reference held here, never dropped */
	char *key; /* the settings, as one string */
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char *
ctx_key(const struct directory_config *dc)
{
	char *k = NULL;

	if (asprintf(&k, "%d\n%s\n%s\n%s\n%s", dc->tls_verify,
		     dc->tls_ca_file ? dc->tls_ca_file : "", dc->tls_ca_dir ? dc->tls_ca_dir : "",
		     dc->tls_cert ? dc->tls_cert : "", dc->tls_key ? dc->tls_key : "") < 0)
		fatal("out of memory");
	return k;
}

static int
opt_fail(char **error_r, const char *what, int rc)
{
	if (asprintf(error_r, "[directory] %s: %s", what, ldap_err2string(rc)) < 0)
		*error_r = NULL;
	return -1;
}

int
dir_tls_setup(LDAP *ld, const struct directory_config *dc, char **error_r)
{
	int v3 = LDAP_VERSION3;
	struct timeval tv = {.tv_sec = dc->timeout > 0 ? dc->timeout : 5};
	/* A peer that vanishes without a FIN: give up after twice the
	 * operation timeout instead of the kernel's 15 minutes. */
	unsigned user_timeout = (dc->timeout > 0 ? dc->timeout : 5) * 2000;
	int idle = 30, probes = 3, interval = 10;
	int rc;

	*error_r = NULL;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, dc->follow_referrals ? LDAP_OPT_ON : LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TCP_USER_TIMEOUT, &user_timeout);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &interval);

	int req = dc->tls_verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
	int min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
	if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req)) != LDAP_OPT_SUCCESS)
		return opt_fail(error_r, "tls_verify", rc);
	if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min)) != LDAP_OPT_SUCCESS)
		return opt_fail(error_r, "TLS 1.2 minimum", rc);
	if (dc->tls_ca_file != NULL && dc->tls_ca_file[0] != '\0' &&
	    (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, dc->tls_ca_file)) !=
		LDAP_OPT_SUCCESS)
		return opt_fail(error_r, "tls_ca_file", rc);
	if (dc->tls_ca_dir != NULL && dc->tls_ca_dir[0] != '\0' &&
	    (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTDIR, dc->tls_ca_dir)) !=
		LDAP_OPT_SUCCESS)
		return opt_fail(error_r, "tls_ca_dir", rc);
	if (dc->tls_cert != NULL && dc->tls_cert[0] != '\0') {
		if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE, dc->tls_cert)) !=
		    LDAP_OPT_SUCCESS)
			return opt_fail(error_r, "tls_cert", rc);
		if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE, dc->tls_key)) !=
		    LDAP_OPT_SUCCESS)
			return opt_fail(error_r, "tls_key", rc);
	}
	char *key = ctx_key(dc);
	pthread_mutex_lock(&shared.lock);
	if (shared.ctx != NULL && strcmp(shared.key, key) == 0) {
		/* libldap takes its own reference. */
		rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CTX, shared.ctx);
		pthread_mutex_unlock(&shared.lock);
		free(key);
		return rc == LDAP_OPT_SUCCESS ? 0 : opt_fail(error_r, "TLS context", rc);
	}
	/* Only now do the options above apply to this handle (notes 1.2);
	 * this reads the files, so a bad CA or key shows up here. */
	int server = 0;
	if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &server)) != LDAP_OPT_SUCCESS) {
		pthread_mutex_unlock(&shared.lock);
		free(key);
		return opt_fail(error_r, "TLS context (tls_ca_file, tls_ca_dir, tls_cert, tls_key)",
				rc);
	}
	void *ctx = NULL;
	if (ldap_get_option(ld, LDAP_OPT_X_TLS_CTX, &ctx) == LDAP_OPT_SUCCESS && ctx != NULL) {
		/* The get took a reference for us. */
		free(shared.key);
		shared.key = key;
		shared.ctx = ctx;
		key = NULL;
	}
	pthread_mutex_unlock(&shared.lock);
	free(key);
	return 0;
}

char *
dir_tls_error(LDAP *ld, int rc, const struct directory_config *dc, const char *uri)
{
	char *diag = NULL;
	char *out = NULL;
	char *probe = dir_tls_probe(dc, uri);

	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	/* GnuTLS's own text is often "(unknown error code)": leave it out
	 * when the probe says more. */
	bool use_diag = probe == NULL && diag != NULL && diag[0] != '\0';
	if (asprintf(&out, "%s%s%s (%s)", ldap_err2string(rc), use_diag ? ": " : "",
		     use_diag ? diag : "",
		     probe != NULL
			 ? probe
			 : "TLS failed: the certificate is not signed by "
			   "tls_ca_file/tls_ca_dir, does not name the host of the URI, the "
			   "server wants a client certificate, or it does not speak TLS "
			   "there") < 0)
		out = NULL;
	ldap_memfree(diag);
	free(probe);
	return out != NULL ? out : xstrdup("TLS failed");
}

int
dir_tls_open_sync(const struct directory_config *dc, LDAP **ld_r, size_t *uri_index_r,
		  char **error_r)
{
	char **uris = dir_tls_split_uris(dc->uri, NULL);
	struct timeval tv = {.tv_sec = dc->timeout > 0 ? dc->timeout : 5};
	int rc = LDAP_PARAM_ERROR;

	*ld_r = NULL;
	*error_r = NULL;
	for (size_t i = 0; uris[i] != NULL; i++) {
		LDAP *ld = NULL;
		char *why = NULL;

		free(*error_r);
		*error_r = NULL;
		rc = ldap_initialize(&ld, uris[i]);
		if (rc != LDAP_SUCCESS) {
			if (asprintf(error_r, "%s: %s", uris[i], ldap_err2string(rc)) < 0)
				*error_r = NULL;
			continue;
		}
		if (dir_tls_setup(ld, dc, &why) < 0) {
			rc = LDAP_PARAM_ERROR;
			if (asprintf(error_r, "%s: %s", uris[i], why != NULL ? why : "") < 0)
				*error_r = NULL;
			free(why);
			ldap_unbind_ext_s(ld, NULL, NULL);
			continue;
		}
		/* Every synchronous call, not only connect, is bounded. */
		ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
		rc = ldap_connect(ld);
		bool tls = scheme_is(uris[i], "ldaps");
		if (rc == LDAP_SUCCESS && dc->starttls && scheme_is(uris[i], "ldap")) {
			rc = ldap_start_tls_s(ld, NULL, NULL);
			tls = true;
		}
		if (rc != LDAP_SUCCESS) {
			char *msg =
			    tls ? dir_tls_error(ld, rc, dc, uris[i]) : xstrdup(ldap_err2string(rc));
			if (asprintf(error_r, "%s: %s", uris[i], msg) < 0)
				*error_r = NULL;
			log_warn(0, "dir", "connect-failed uri=%s error=\"%s\"", uris[i], msg);
			free(msg);
			ldap_unbind_ext_s(ld, NULL, NULL);
			continue;
		}
		if (uri_index_r != NULL)
			*uri_index_r = i;
		*ld_r = ld;
		dir_tls_free_uris(uris);
		return LDAP_SUCCESS;
	}
	if (*error_r == NULL)
		*error_r = xstrdup("[directory] uri: no LDAP URI");
	dir_tls_free_uris(uris);
	return rc != LDAP_SUCCESS ? rc : LDAP_SERVER_DOWN;
}

int
dir_tls_bind_sync(LDAP *ld, const struct directory_config *dc, const char *dn, const char *password,
		  const char *what)
{
	char *uri = NULL;

	if (password != NULL && password[0] != '\0') {
		ldap_get_option(ld, LDAP_OPT_URI, &uri);
		int ok = dir_tls_check_password(ld, uri != NULL ? uri : "", dc, what);
		ldap_memfree(uri);
		if (ok < 0) {
			/* Callers read the reason like a server's diagnostic. */
			ldap_set_option(
			    ld, LDAP_OPT_DIAGNOSTIC_MESSAGE,
			    "Tern does not send passwords unencrypted to a directory on "
			    "another machine: use ldaps://, starttls = yes, or "
			    "allow_plaintext_passwords = yes");
			return LDAP_UNAVAILABLE;
		}
	}
	struct berval cred = {.bv_val = (char *)(password != NULL ? password : ""),
			      .bv_len = password != NULL ? strlen(password) : 0};
	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}
