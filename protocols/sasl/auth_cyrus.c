/*
 * auth_cyrus.c - the SASL mechanisms Cyrus SASL runs for Tern:
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 7677, channel binding
 * tls-exporter, RFC 9266) with the verifier stored in the directory,
 * GSSAPI (RFC 4752) with the keytab from [sasl], and EXTERNAL (RFC 4422)
 * with a verified TLS client certificate mapped to a directory attribute.
 *
 * Cyrus's callbacks are synchronous, so nothing here lets Cyrus wait on
 * the network: what a step needs from the directory is fetched first
 * (asynchronously, AUTH_SASL_WAIT) and handed to Cyrus through Tern's
 * auxprop plugin (mech.c) for the one call that needs it.
 *
 * How it fails: every failure of a mechanism (wrong proof, unknown user,
 * no verifier, a principal from a realm not accepted, a certificate that
 * matches nobody) ends as one AUTH_FAILED after the throttle delay, the
 * same for all, with the reason only in the log. An unknown user gets a
 * fake verifier derived from the name, so SCRAM answers exactly as for a
 * real one and the name cannot be probed. A directory that cannot answer
 * is AUTH_TEMPFAIL. No SASL security layer is ever negotiated.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sasl/sasl.h>

#include "core/base64.h"
#include "core/compat.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/tls.h"
#include "directory/dir.h"
#include "protocols/sasl/auth.h"
#include "protocols/sasl/auth_int.h"
#include "protocols/sasl/mech.h"

enum {
	X_CY_FIRST = X_CYRUS, /* SCRAM: waiting for the client-first message */
	X_CY_WAIT,	      /* a directory lookup runs */
	X_CY_STEP,	      /* Cyrus runs the exchange */
	X_CY_END,	      /* over: x->result says how */
};

/* What a Cyrus exchange owns; x->cyrus points here. Cyrus keeps the
 * channel binding by pointer, so it lives as long as the sasl_conn_t. */
struct cy {
	sasl_conn_t *conn;
	sasl_channel_binding_t cb;
	unsigned char cb_data[TLS_EXPORTER_LEN];
	bool has_ir; /* EXTERNAL: the client sent an initial response */
};

static const struct {
	const char *name;
	unsigned flag;
} mechs[] = {
    {"SCRAM-SHA-256-PLUS", MECH_SCRAM_PLUS},
    {"SCRAM-SHA-256", MECH_SCRAM},
    {"GSSAPI", MECH_GSSAPI},
    {"EXTERNAL", MECH_EXTERNAL},
};
#define NMECHS (sizeof(mechs) / sizeof(mechs[0]))

static const char *
static_name(const char *mech, unsigned *flag_r)
{
	for (size_t i = 0; i < NMECHS; i++) {
		if (strcasecmp(mech, mechs[i].name) == 0) {
			*flag_r = mechs[i].flag;
			return mechs[i].name;
		}
	}
	return NULL;
}

bool
auth_cyrus_runs(const char *mech)
{
	unsigned f;

	return static_name(mech, &f) != NULL;
}

static bool
has_binding(const struct auth_sasl *x)
{
	unsigned char tmp[TLS_EXPORTER_LEN];
	struct ssl_st *ssl = conn_ssl(x->c);
	bool ok = ssl != NULL && tls_exporter_binding(ssl, tmp) == 0;

	explicit_bzero(tmp, sizeof(tmp));
	return ok;
}

static int
cert_identity(const struct auth_sasl *x, char *out, size_t cap)
{
	struct ssl_st *ssl = conn_ssl(x->c);

	if (ssl == NULL)
		return -1;
	return tls_peer_identity(ssl, x->cfg->sasl_external_field, out, cap);
}

/* Whether this connection can run the mechanism now. */
static bool
usable(const struct auth_sasl *x, unsigned flag)
{
	char id[512];

	if (x->c == NULL || !(mech_cyrus_configured(x->cfg) & flag))
		return false;
	switch (flag) {
	case MECH_SCRAM_PLUS:
		return has_binding(x);
	case MECH_EXTERNAL:
		return cert_identity(x, id, sizeof(id)) == 0;
	default:
		return true;
	}
}

void
auth_cyrus_mechanisms(const struct auth_sasl *x, struct buf *out, bool sep)
{
	for (size_t i = 0; i < NMECHS; i++) {
		if (!usable(x, mechs[i].flag))
			continue;
		if (sep)
			buf_putc(out, ' ');
		buf_append_str(out, mechs[i].name);
		sep = true;
	}
}

/* ---- the Cyrus connection ---- */

static struct cy *
cy_new(struct auth_sasl *x)
{
	const struct config *cfg = x->cfg;
	struct conn *c = x->c;
	char local[INET6_ADDRSTRLEN + 8], remote[INET6_ADDRSTRLEN + 8];
	const char *fqdn =
	    cfg->sasl_gssapi_hostname[0] != '\0' ? cfg->sasl_gssapi_hostname : cfg->hostname;
	struct cy *cy = xcalloc(1, sizeof(*cy));

	snprintf(local, sizeof(local), "%s;%d", c->local_ip, c->local_port);
	snprintf(remote, sizeof(remote), "%s;%d", c->peer_ip, c->peer_port);
	int r = sasl_server_new(x->service, fqdn, NULL, local, remote, NULL, 0, &cy->conn);
	if (r != SASL_OK) {
		log_warn(c->id, c->service, "sasl-error reason=\"sasl_server_new: %s\"",
			 sasl_errstring(r, NULL, NULL));
		free(cy);
		return NULL;
	}
	/* No security layer, ever: TLS is the protection, and a layer would
	 * need Tern to wrap every byte (max_ssf 0 leaves GSSAPI's "none"). */
	sasl_security_properties_t sp = {
	    .min_ssf = 0,
	    .max_ssf = 0,
	    .maxbufsize = 0,
	    .security_flags = SASL_SEC_NOANONYMOUS,
	};
	sasl_setprop(cy->conn, SASL_SEC_PROPS, &sp);
	struct ssl_st *ssl = conn_ssl(c);
	if (ssl != NULL) {
		sasl_ssf_t ssf = (sasl_ssf_t)SSL_get_cipher_bits(ssl, NULL);
		sasl_setprop(cy->conn, SASL_SSF_EXTERNAL, &ssf);
		if (tls_exporter_binding(ssl, cy->cb_data) == 0) {
			cy->cb.name = "tls-exporter";
			cy->cb.critical = 0;
			cy->cb.len = TLS_EXPORTER_LEN;
			cy->cb.data = cy->cb_data;
			sasl_setprop(cy->conn, SASL_CHANNEL_BINDING, &cy->cb);
		}
	}
	return cy;
}

void
auth_cyrus_reset(struct auth_sasl *x)
{
	struct cy *cy = x->cyrus;

	if (cy != NULL) {
		sasl_dispose(&cy->conn);
		explicit_bzero(cy, sizeof(*cy));
		free(cy);
		x->cyrus = NULL;
	}
	for (size_t i = 0; i < 4; i++) {
		free(x->found[i]);
		x->found[i] = NULL;
	}
	buf_wipe(&x->challenge);
}

/* ---- ends of an exchange ---- */

static enum auth_sasl_step
end_fail(struct auth_sasl *x, const char *why)
{
	x->state = X_CY_END;
	x->result = AUTH_FAILED;
	x->fail_why = why;
	return AUTH_SASL_CHECK;
}

static enum auth_sasl_step
end_tempfail(struct auth_sasl *x, const char *why)
{
	x->state = X_CY_END;
	x->result = AUTH_TEMPFAIL;
	x->fail_why = why;
	return AUTH_SASL_CHECK;
}

static void
keep_found(struct auth_sasl *x, const struct dir_user *u)
{
	const char *src[4] = {u->id, u->dn, u->login, u->mail};

	for (size_t i = 0; i < 4; i++) {
		free(x->found[i]);
		x->found[i] = xstrdup(src[i] != NULL ? src[i] : "");
	}
	x->found_quota = u->quota;
	x->found_quota_messages = u->quota_messages;
}

/* GSSAPI: "name@REALM" with REALM one of [sasl] realms gives the login
 * "name"; a principal from any other realm is nobody here. Cyrus has
 * already cut the realm when it is the default one of krb5.conf. A
 * principal with an instance ("alice/admin") is not alice. */
static int
principal_login(struct auth_sasl *x, const char *principal)
{
	const char *at = strrchr(principal, '@');
	size_t n = at != NULL ? (size_t)(at - principal) : strlen(principal);

	if (n == 0 || memchr(principal, '/', n) != NULL || memchr(principal, '@', n) != NULL)
		return -1;
	if (at != NULL) {
		char **realms = dir_split_list(x->cfg->sasl_realms);
		bool ok = false;
		for (char **r = realms; *r != NULL; r++) {
			ok = ok || strcmp(*r, at + 1) == 0;
			free(*r);
		}
		free(realms);
		if (!ok)
			return -1;
	}
	buf_wipe(&x->user);
	return buf_append(&x->user, principal, n);
}

static enum auth_sasl_step
end_ok(struct auth_sasl *x)
{
	struct cy *cy = x->cyrus;
	const void *name = NULL;
	unsigned flag = 0;

	if (x->doomed)
		return end_fail(x, "no such user, or no SCRAM verifier readable in the directory");
	static_name(x->mech, &flag);
	if (flag == MECH_GSSAPI) {
		if (sasl_getprop(cy->conn, SASL_USERNAME, &name) != SASL_OK || name == NULL)
			return end_fail(x, "no Kerberos principal");
		if (principal_login(x, name) < 0) {
			log_info(
			    x->c->id, x->c->service,
			    "login-gssapi principal-refused reason=\"realm not in [sasl] realms\"");
			return end_fail(x, "principal from a realm not accepted");
		}
	} else if (x->found[0] == NULL) {
		return end_fail(x, "no user found");
	}
	x->state = X_CY_END;
	x->result = AUTH_OK;
	return AUTH_SASL_CHECK;
}

static const char *
cyrus_why(int r)
{
	switch (r) {
	case SASL_BADAUTH:
		return "wrong credentials";
	case SASL_NOUSER:
		return "no such user";
	case SASL_BADPROT:
		return "protocol error or channel binding mismatch";
	case SASL_NOAUTHZ:
		return "authorization identity refused";
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		return "mechanism not allowed here";
	default:
		return "SASL failure";
	}
}

/* One call into Cyrus: the start (first) or a later step. */
static enum auth_sasl_step
run(struct auth_sasl *x, bool first, const char *data, size_t len, bool present,
    const char **challenge_r)
{
	struct cy *cy = x->cyrus;
	const char *out = NULL;
	unsigned outlen = 0;
	int r;

	if (first)
		r = sasl_server_start(cy->conn, x->mech, present ? data : NULL, (unsigned)len, &out,
				      &outlen);
	else
		r = sasl_server_step(cy->conn, data, (unsigned)len, &out, &outlen);
	buf_wipe(&x->secret);
	x->state = X_CY_STEP;
	if (r == SASL_CONTINUE) {
		buf_wipe(&x->challenge);
		if (base64_encode(out != NULL ? out : "", outlen, &x->challenge) < 0)
			return end_fail(x, "challenge too long");
		*challenge_r = buf_cstr(&x->challenge);
		return AUTH_SASL_CHALLENGE;
	}
	if (r == SASL_OK)
		return end_ok(x);
	return end_fail(x, cyrus_why(r));
}

/* ---- the directory lookups in the middle of an exchange ---- */

/* Delivers a step decided in a lookup callback and lets the conn go. */
static void
deliver(struct auth_sasl *x, enum auth_sasl_step step)
{
	struct conn *c = x->c;

	x->resume(c, step, buf_cstr(&x->challenge));
	conn_resume(c);
	conn_unref(c);
}

static bool
lookup_begin(struct auth_sasl *x)
{
	x->state = X_CY_WAIT;
	x->pending = true;
	conn_pause(x->c);
	conn_ref(x->c);
	return true;
}

/* The conn closed while the lookup ran: x may have been reset; touch
 * nothing but the conn. */
static bool
lookup_abandoned(struct auth_sasl *x)
{
	struct conn *c = x->c;

	x->pending = false;
	if (!c->closed)
		return false;
	conn_resume(c);
	conn_unref(c);
	return true;
}

/* A verifier for a user who has none: derived from the name with a
 * per-process key, so the same name always gets the same salt and the
 * exchange looks like a real one; nobody can know its keys. */
static unsigned char fake_key[32];
static pthread_once_t fake_key_once = PTHREAD_ONCE_INIT;

static void
fake_key_init(void)
{
	if (RAND_bytes(fake_key, sizeof(fake_key)) != 1)
		fatal("RAND_bytes failed");
}

static void
fake_verifier(const char *user, struct buf *out)
{
	unsigned char mac[3][32];
	static const char *const what[3] = {"salt:", "stored:", "server:"};

	pthread_once(&fake_key_once, fake_key_init);
	for (int i = 0; i < 3; i++) {
		unsigned len = 32;
		unsigned char msg[300];
		size_t wl = strlen(what[i]), ul = strnlen(user, 255);
		memcpy(msg, what[i], wl);
		memcpy(msg + wl, user, ul);
		HMAC(EVP_sha256(), fake_key, sizeof(fake_key), msg, wl + ul, mac[i], &len);
	}
	struct buf b64;
	buf_init(&b64, 256);
	buf_wipe(out);
	buf_append_str(out, "SCRAM-SHA-256$4096:");
	base64_encode(mac[0], 16, &b64);
	buf_append_str(out, buf_cstr(&b64));
	buf_putc(out, '$');
	buf_reset(&b64);
	base64_encode(mac[1], 32, &b64);
	buf_append_str(out, buf_cstr(&b64));
	buf_putc(out, ':');
	buf_reset(&b64);
	base64_encode(mac[2], 32, &b64);
	buf_append_str(out, buf_cstr(&b64));
	buf_free(&b64);
	explicit_bzero(mac, sizeof(mac));
}

static void
scram_found(void *arg, const struct dir_find_result *res)
{
	struct auth_sasl *x = arg;
	struct buf v;
	const char *challenge = "";

	if (lookup_abandoned(x))
		return;
	buf_init(&v, 1024);
	switch (res->status) {
	case DIR_OK:
		keep_found(x, res->user);
		if (res->scram != NULL) {
			buf_append_str(&v, res->scram);
		} else {
			log_info(x->c->id, x->c->service,
				 "login-scram no-verifier user=\"%s\" reason=\"no SCRAM-SHA-256 "
				 "verifier readable in the directory\"",
				 res->user->login);
			x->doomed = true;
		}
		break;
	case DIR_TEMPFAIL:
		buf_free(&v);
		deliver(x, end_tempfail(x, "directory unavailable"));
		return;
	default:
		x->doomed = true;
		break;
	}
	if (x->doomed)
		fake_verifier(buf_cstr(&x->user), &v);
	mech_set_verifier(buf_cstr(&x->user), buf_cstr(&v));
	enum auth_sasl_step step = run(x, true, x->secret.data, x->secret.len, true, &challenge);
	mech_set_verifier(NULL, NULL);
	buf_wipe(&v);
	buf_free(&v);
	deliver(x, step);
}

/* RFC 5802 client-first-message: gs2-header "n=" saslname ",r=" ...;
 * the user name with "=2C" and "=3D" decoded into x->user. */
static int
scram_user(struct auth_sasl *x)
{
	const char *m = buf_cstr(&x->secret);
	size_t len = x->secret.len;

	if (memchr(m, '\0', len) != NULL)
		return -1;
	/* gs2-cbind-flag "," [authzid] "," */
	const char *p = strchr(m, ',');
	if (p == NULL)
		return -1;
	p = strchr(p + 1, ',');
	if (p == NULL || strncmp(p + 1, "n=", 2) != 0)
		return -1;
	p += 3;
	buf_wipe(&x->user);
	for (; *p != '\0' && *p != ','; p++) {
		char ch = *p;
		if (ch == '=') {
			if (strncmp(p, "=2C", 3) == 0)
				ch = ',';
			else if (strncmp(p, "=3D", 3) == 0)
				ch = '=';
			else
				return -1;
			p += 2;
		}
		if (buf_putc(&x->user, ch) < 0)
			return -1;
	}
	return *p == ',' && x->user.len > 0 ? 0 : -1;
}

static enum auth_sasl_step
bad(struct auth_sasl *x, const char *why)
{
	buf_wipe(&x->secret);
	x->state = X_CY_END;
	x->reason = why;
	return AUTH_SASL_BAD;
}

static enum auth_sasl_step
scram_first(struct auth_sasl *x, const char *text, size_t len, bool initial)
{
	if (auth_sasl_decode(x, text, len, initial) < 0)
		return bad(x, "invalid base64");
	if (scram_user(x) < 0)
		return bad(x, "malformed SCRAM client-first message");
	lookup_begin(x);
	dir_find_user(x->c->worker, NULL, buf_cstr(&x->user), true, scram_found, x);
	return AUTH_SASL_WAIT;
}

static void
external_found(void *arg, const struct dir_find_result *res)
{
	struct auth_sasl *x = arg;
	struct cy *cy;
	const char *challenge = "";

	if (lookup_abandoned(x))
		return;
	cy = x->cyrus;
	switch (res->status) {
	case DIR_OK:
		keep_found(x, res->user);
		buf_wipe(&x->user);
		buf_append_str(&x->user, res->user->login);
		break;
	case DIR_TEMPFAIL:
		deliver(x, end_tempfail(x, "directory unavailable"));
		return;
	default:
		deliver(x, end_fail(x, "the certificate matches no directory user"));
		return;
	}
	/* Cyrus's EXTERNAL takes the identity from here and accepts an
	 * empty authzid or this same one. */
	sasl_setprop(cy->conn, SASL_AUTH_EXTERNAL, x->found[2]);
	enum auth_sasl_step step =
	    run(x, true, x->secret.data, x->secret.len, cy->has_ir, &challenge);
	deliver(x, step);
}

/* ---- the exchange ---- */

enum auth_sasl_step
auth_cyrus_start(struct auth_sasl *x, const char *mech, const char *initial, size_t initial_len,
		 const char **challenge_r)
{
	unsigned flag;
	const char *name = static_name(mech, &flag);
	char id[512];

	*challenge_r = "";
	x->state = X_CY_END;
	if (name == NULL || !usable(x, flag))
		return AUTH_SASL_UNKNOWN;
	x->mech = name;
	x->doomed = false;
	auth_cyrus_reset(x); /* a protocol that did not reset after the last one */
	x->cyrus = cy_new(x);
	if (x->cyrus == NULL)
		return end_fail(x, "SASL unavailable");
	switch (flag) {
	case MECH_SCRAM:
	case MECH_SCRAM_PLUS:
		if (initial == NULL) {
			x->state = X_CY_FIRST;
			return AUTH_SASL_CHALLENGE;
		}
		return scram_first(x, initial, initial_len, true);
	case MECH_GSSAPI:
		if (initial != NULL && auth_sasl_decode(x, initial, initial_len, true) < 0)
			return bad(x, "invalid base64");
		return run(x, true, x->secret.data, x->secret.len, initial != NULL, challenge_r);
	case MECH_EXTERNAL: {
		struct cy *cy = x->cyrus;
		if (initial != NULL && auth_sasl_decode(x, initial, initial_len, true) < 0)
			return bad(x, "invalid base64");
		cy->has_ir = initial != NULL;
		if (cert_identity(x, id, sizeof(id)) < 0)
			return end_fail(x, "no verified client certificate");
		buf_wipe(&x->user);
		buf_append_str(&x->user, id);
		lookup_begin(x);
		dir_find_user(x->c->worker, x->cfg->sasl_external_attr, id, false, external_found,
			      x);
		return AUTH_SASL_WAIT;
	}
	default:
		return AUTH_SASL_UNKNOWN;
	}
}

enum auth_sasl_step
auth_cyrus_continue(struct auth_sasl *x, const char *line, size_t len, const char **challenge_r)
{
	*challenge_r = "";
	switch (x->state) {
	case X_CY_FIRST:
		return scram_first(x, line, len, false);
	case X_CY_STEP:
		if (auth_sasl_decode(x, line, len, false) < 0)
			return bad(x, "invalid base64");
		return run(x, false, x->secret.data, x->secret.len, true, challenge_r);
	default:
		return bad(x, "no exchange in progress");
	}
}

/* ---- the outcome ---- */

static void
gssapi_found(void *arg, const struct dir_find_result *res)
{
	auth_attempt_dir(arg, res->status, res->user, res->error,
			 "the principal maps to no directory user");
}

void
auth_cyrus_check(struct auth_sasl *x, auth_done_fn *done)
{
	const char *login = x->found[2] != NULL ? x->found[2] : buf_cstr(&x->user);
	struct attempt *at = auth_attempt_new(x->c, x->cfg, x->mech, login, done);

	if (x->state != X_CY_END || x->result == AUTH_FAILED) {
		auth_attempt_fail(at, x->fail_why != NULL ? x->fail_why : "exchange not finished");
		return;
	}
	if (x->result == AUTH_TEMPFAIL) {
		auth_attempt_tempfail(at, x->fail_why, false);
		return;
	}
	if (x->found[0] != NULL) {
		struct dir_user u = {.id = x->found[0],
				     .dn = x->found[1],
				     .login = x->found[2],
				     .mail = x->found[3],
				     .quota = x->found_quota,
				     .quota_messages = x->found_quota_messages};
		auth_attempt_ok(at, &u, false);
		return;
	}
	/* GSSAPI: the principal's login, looked up now. */
	dir_find_user(x->c->worker, NULL, buf_cstr(&x->user), false, gssapi_found, at);
}
