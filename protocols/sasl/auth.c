/*
 * auth.c - SASL PLAIN/LOGIN exchanges and the asynchronous password check
 * shared by the protocols (auth.h).
 *
 * How it fails: a malformed response is AUTH_SASL_BAD with a reason; a
 * wrong password, an unknown or disabled user, or an authzid we do not
 * allow is AUTH_FAILED, answered only after the throttle delay of the
 * peer's address (mech.c), so guessing is slow and every failure looks
 * the same; a directory that cannot answer is AUTH_TEMPFAIL at once.
 * Secrets are wiped as soon as they have been handed on and never logged.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "core/base64.h"
#include "core/compat.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "protocols/sasl/auth.h"
#include "protocols/sasl/auth_int.h"
#include "protocols/sasl/mech.h"

/* RFC 4616: authcid and authzid up to 255 bytes, passwd up to 255 too,
 * but directories allow longer passwords; mech.c's parser takes 1024. */
#define AUTH_RESPONSE_MAX 4096
#define AUTH_LOGIN_MAX 255

enum { X_IDLE, X_PLAIN, X_LOGIN_USER, X_LOGIN_PASS, X_DONE };
/* Cyrus states (auth_cyrus.c) are X_CYRUS and above. */

void
auth_sasl_init(struct auth_sasl *x)
{
	memset(x, 0, sizeof(*x));
	buf_init(&x->user, AUTH_LOGIN_MAX + 1);
	buf_init(&x->secret, AUTH_RESPONSE_MAX);
	buf_init(&x->challenge, AUTH_RESPONSE_MAX * 2);
}

void
auth_sasl_attach(struct auth_sasl *x, struct conn *c, const struct config *cfg, const char *service,
		 auth_resume_fn *resume)
{
	x->c = c;
	x->cfg = cfg;
	x->service = service;
	x->resume = resume;
}

void
auth_sasl_reset(struct auth_sasl *x)
{
	struct conn *c = x->c;
	const struct config *cfg = x->cfg;
	const char *service = x->service;
	auth_resume_fn *resume = x->resume;

	auth_cyrus_reset(x);
	buf_wipe(&x->user);
	buf_wipe(&x->secret);
	buf_free(&x->user);
	buf_free(&x->secret);
	buf_free(&x->challenge);
	auth_sasl_init(x);
	auth_sasl_attach(x, c, cfg, service, resume);
}

void
auth_sasl_mechanisms(const struct auth_sasl *x, bool password_ok, struct buf *out)
{
	size_t start = out->len;

	if (password_ok)
		buf_append_str(out, "PLAIN LOGIN");
	if (x->c != NULL && password_ok)
		auth_cyrus_mechanisms(x, out, out->len > start);
}

int
auth_sasl_decode(struct auth_sasl *x, const char *text, size_t len, bool initial)
{
	buf_wipe(&x->secret);
	if (initial && len == 1 && text[0] == '=')
		return 0;
	return base64_decode(text, len, &x->secret);
}

static enum auth_sasl_step
bad(struct auth_sasl *x, const char *why)
{
	buf_wipe(&x->secret);
	buf_wipe(&x->user);
	x->state = X_DONE;
	x->reason = why;
	return AUTH_SASL_BAD;
}

static enum auth_sasl_step
plain(struct auth_sasl *x, const char *text, size_t len, bool initial)
{
	const char *authzid, *authcid, *passwd;
	size_t pwlen;

	if (auth_sasl_decode(x, text, len, initial) < 0)
		return bad(x, "invalid base64");
	if (x->secret.len == 0 || mech_plain_parse(x->secret.data, x->secret.len, &authzid,
						   &authcid, &passwd, &pwlen) < 0)
		return bad(x, "malformed PLAIN message");
	/* No proxy authorisation: acting as someone else fails like a wrong
	 * password (auth_check with force_fail). */
	x->authzid_differs = authzid[0] != '\0' && strcmp(authzid, authcid) != 0;
	if (x->authzid_differs)
		x->reason = "authzid differs from authcid";
	buf_wipe(&x->user);
	if (buf_append_str(&x->user, authcid) < 0)
		return bad(x, "login too long");
	/* Keep only the password in secret, at its start. */
	memmove(x->secret.data, passwd, pwlen);
	explicit_bzero(x->secret.data + pwlen, x->secret.len - pwlen);
	x->secret.len = pwlen;
	x->secret.data[pwlen] = '\0';
	x->state = X_DONE;
	return AUTH_SASL_CHECK;
}

static enum auth_sasl_step
login_user(struct auth_sasl *x, const char *text, size_t len, bool initial,
	   const char **challenge_r)
{
	if (auth_sasl_decode(x, text, len, initial) < 0)
		return bad(x, "invalid base64");
	if (x->secret.len == 0 || x->secret.len > AUTH_LOGIN_MAX ||
	    memchr(x->secret.data, '\0', x->secret.len) != NULL)
		return bad(x, "malformed user name");
	buf_wipe(&x->user);
	buf_append(&x->user, x->secret.data, x->secret.len);
	buf_wipe(&x->secret);
	x->state = X_LOGIN_PASS;
	*challenge_r = "UGFzc3dvcmQ6"; /* "Password:" */
	return AUTH_SASL_CHALLENGE;
}

enum auth_sasl_step
auth_sasl_start(struct auth_sasl *x, const char *mech, const char *initial, size_t initial_len,
		const char **challenge_r)
{
	*challenge_r = "";
	buf_wipe(&x->user);
	buf_wipe(&x->secret);
	x->reason = NULL;
	x->authzid_differs = false;
	if (auth_cyrus_runs(mech))
		return auth_cyrus_start(x, mech, initial, initial_len, challenge_r);
	if (strcasecmp(mech, "PLAIN") == 0) {
		x->mech = "PLAIN";
		if (initial != NULL)
			return plain(x, initial, initial_len, true);
		x->state = X_PLAIN;
		return AUTH_SASL_CHALLENGE;
	}
	if (strcasecmp(mech, "LOGIN") == 0) {
		x->mech = "LOGIN";
		if (initial != NULL)
			return login_user(x, initial, initial_len, true, challenge_r);
		x->state = X_LOGIN_USER;
		*challenge_r = "VXNlcm5hbWU6"; /* "Username:" */
		return AUTH_SASL_CHALLENGE;
	}
	x->state = X_DONE;
	return AUTH_SASL_UNKNOWN;
}

enum auth_sasl_step
auth_sasl_continue(struct auth_sasl *x, const char *line, size_t len, const char **challenge_r)
{
	*challenge_r = "";
	if (len == 1 && line[0] == '*') {
		buf_wipe(&x->user);
		buf_wipe(&x->secret);
		x->state = X_DONE;
		return AUTH_SASL_CANCEL;
	}
	if (x->cyrus != NULL || x->state >= X_CYRUS)
		return auth_cyrus_continue(x, line, len, challenge_r);
	switch (x->state) {
	case X_PLAIN:
		return plain(x, line, len, false);
	case X_LOGIN_USER:
		return login_user(x, line, len, false, challenge_r);
	case X_LOGIN_PASS:
		if (auth_sasl_decode(x, line, len, false) < 0)
			return bad(x, "invalid base64");
		x->state = X_DONE;
		return AUTH_SASL_CHECK;
	default:
		return bad(x, "no exchange in progress");
	}
}

const char *
auth_sasl_login(const struct auth_sasl *x)
{
	return buf_cstr(&x->user);
}

const char *
auth_sasl_password(const struct auth_sasl *x, size_t *len_r)
{
	*len_r = x->secret.len;
	return buf_cstr(&x->secret);
}

/* ---- the check ---- */

struct attempt {
	struct conn *c;
	const struct config *cfg;	    /* borrowed: the session holds it */
	const char *mech;		    /* static */
	char login[2 * AUTH_LOGIN_MAX + 2]; /* log-safe copy */
	auth_done_fn *done;
	struct event *delay_ev; /* owned */
	/* A success or temporary failure decided before anything was asked
	 * (a Cyrus mechanism): delivered from the loop, never from inside
	 * the caller's own call. */
	enum auth_outcome outcome;
	struct dir_user user;
	char *user_strs[4];
};

static void
safe_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

static void
finish(struct attempt *at, enum auth_outcome outcome, const struct dir_user *u)
{
	struct conn *c = at->c;

	if (!c->closed)
		at->done(c, outcome, u);
	if (at->delay_ev != NULL)
		event_free(at->delay_ev);
	for (size_t i = 0; i < 4; i++)
		free(at->user_strs[i]);
	free(at);
	conn_resume(c);
	conn_unref(c);
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *at = arg;

	(void)fd;
	(void)what;
	finish(at, at->outcome, at->outcome == AUTH_OK ? &at->user : NULL);
}

/* Runs delay_cb after ms (0: on the next loop turn). */
static void
later(struct attempt *at, unsigned ms)
{
	if (!at->c->closed)
		at->delay_ev = evtimer_new(worker_base(at->c->worker), delay_cb, at);
	if (at->delay_ev == NULL) {
		delay_cb(-1, 0, at);
		return;
	}
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(at->delay_ev, &tv);
}

struct attempt *
auth_attempt_new(struct conn *c, const struct config *cfg, const char *mech, const char *login,
		 auth_done_fn *done)
{
	struct attempt *at = xcalloc(1, sizeof(*at));

	at->c = c;
	at->cfg = cfg;
	at->mech = mech;
	at->done = done;
	safe_copy(at->login, sizeof(at->login), login);
	conn_pause(c);
	conn_ref(c);
	return at;
}

void
auth_attempt_fail(struct attempt *at, const char *why)
{
	struct conn *c = at->c;
	unsigned delay = mech_fail_delay_ms(at->cfg, c->peer_ip);

	mech_record_result(c->peer_ip, false);
	metric_inc_svc(M_LOGIN_FAILED, c->service);
	log_info(c->id, c->service,
		 "login user=\"%s\" result=fail mech=%s ip=%s tls=%s delay_ms=%u reason=\"%s\"",
		 at->login, at->mech, c->peer_ip, c->tls ? "yes" : "no", delay, why);
	at->outcome = AUTH_FAILED;
	later(at, delay);
}

void
auth_attempt_tempfail(struct attempt *at, const char *why, bool now)
{
	struct conn *c = at->c;

	metric_inc_svc(M_LOGIN_TEMPFAIL, c->service);
	log_warn(c->id, c->service, "login user=\"%s\" result=tempfail mech=%s ip=%s reason=\"%s\"",
		 at->login, at->mech, c->peer_ip, why != NULL ? why : "directory unavailable");
	at->outcome = AUTH_TEMPFAIL;
	if (now)
		finish(at, AUTH_TEMPFAIL, NULL);
	else
		later(at, 0);
}

void
auth_attempt_ok(struct attempt *at, const struct dir_user *u, bool now)
{
	struct conn *c = at->c;

	mech_record_result(c->peer_ip, true);
	metric_inc_svc(M_LOGIN_OK, c->service);
	if (u->login != NULL && u->login[0] != '\0')
		safe_copy(at->login, sizeof(at->login), u->login);
	log_info(c->id, c->service, "login user=\"%s\" result=ok mech=%s ip=%s tls=%s", at->login,
		 at->mech, c->peer_ip, c->tls ? "yes" : "no");
	if (now) {
		finish(at, AUTH_OK, u);
		return;
	}
	const char *src[4] = {u->id, u->dn, u->login, u->mail};
	for (size_t i = 0; i < 4; i++)
		at->user_strs[i] = xstrdup(src[i] != NULL ? src[i] : "");
	at->user = (struct dir_user){.id = at->user_strs[0],
				     .dn = at->user_strs[1],
				     .login = at->user_strs[2],
				     .mail = at->user_strs[3],
				     .quota = u->quota,
				     .quota_messages = u->quota_messages};
	at->outcome = AUTH_OK;
	later(at, 0);
}

void
auth_attempt_dir(struct attempt *at, enum dir_status status, const struct dir_user *u,
		 const char *error, const char *why)
{
	switch (status) {
	case DIR_OK:
		auth_attempt_ok(at, u, true);
		return;
	case DIR_TEMPFAIL:
		auth_attempt_tempfail(at, error, true);
		return;
	default:
		auth_attempt_fail(at, why != NULL     ? why
				      : error != NULL ? error
						      : dir_strerror(status));
		return;
	}
}

static void
dir_done(void *arg, const struct dir_auth_result *res)
{
	auth_attempt_dir(arg, res->status, res->user, res->error, NULL);
}

void
auth_check(struct conn *c, const struct config *cfg, const char *mech, const char *login,
	   const char *password, size_t pwlen, bool force_fail, auth_done_fn *done)
{
	struct attempt *at = auth_attempt_new(c, cfg, mech, login, done);

	if (force_fail) {
		auth_attempt_fail(at, "authzid differs from authcid");
		return;
	}
	/* An empty password fails inside dir_authenticate without a bind. */
	dir_authenticate(c->worker, login, password, pwlen, dir_done, at);
}

void
auth_sasl_check(struct auth_sasl *x, auth_done_fn *done)
{
	if (x->cyrus != NULL || x->state >= X_CYRUS) {
		auth_cyrus_check(x, done);
		return;
	}
	size_t pwlen;
	const char *pw = auth_sasl_password(x, &pwlen);
	auth_check(x->c, x->cfg, x->mech, auth_sasl_login(x), pw, pwlen, x->authzid_differs, done);
}
