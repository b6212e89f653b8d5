/*
 * smtp_auth.c - SMTP AUTH (RFC 4954) for the submission listeners, with
 * PLAIN and LOGIN through the shared exchange and throttled directory
 * check (protocols/sasl/auth.h), and the sender checks of submission:
 * the envelope sender and every From: address must be one of the
 * authenticated user's addresses or one the directory lets them send as.
 *
 * Password AUTH needs TLS (STARTTLS on 587, implicit on 465) unless the
 * listener sets plaintext_auth = yes: before TLS AUTH is not advertised
 * and refused with 530 5.7.0. After a successful bind the user's
 * addresses are read from the directory before the 235 goes out, so a
 * session is either fully authenticated or not at all.
 *
 * How it fails: wrong credentials 535 5.7.8 (after the throttle delay),
 * max_auth_failures of them end the session with 421; directory down
 * 454 4.7.0; a malformed exchange 501; an unknown mechanism 504.
 * Nothing secret reaches a log line.
 */
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/tls.h"
#include "directory/dir.h"
#include "smtp_internal.h"

bool
smtp_auth_offered(const struct smtp_session *s)
{
	return s->submission && s->auth_id == NULL &&
	       (s->conn.tls || s->cfg->listeners[s->svc].plaintext_auth);
}

static const char *
lower_dup(struct arena *a, const char *src)
{
	char *d = arena_strdup(a, src);

	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

static void
addrs_done(void *arg, const struct dir_addr_result *res)
{
	struct smtp_session *s = arg;
	struct conn *c = &s->conn;

	if (c->closed) {
		conn_unref(c);
		return;
	}
	if (res->status != DIR_OK) {
		log_warn(c->id, c->service, "auth-addresses user=\"%s\" result=%s reason=\"%s\"",
			 s->auth_login, dir_strerror(res->status),
			 res->error != NULL ? res->error : "");
		s->auth_id = s->auth_login = s->auth_dn = NULL;
		if (res->status == DIR_TEMPFAIL)
			smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		else
			smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	} else {
		s->own = arena_alloc(s->arena, (res->naddresses + 1) * sizeof(*s->own));
		for (size_t i = 0; i < res->naddresses; i++)
			s->own[i] = lower_dup(s->arena, res->addresses[i]);
		s->nown = res->naddresses;
		s->sendas = arena_alloc(s->arena, (res->nsendas + 1) * sizeof(*s->sendas));
		for (size_t i = 0; i < res->nsendas; i++)
			s->sendas[i] = lower_dup(s->arena, res->sendas[i]);
		s->nsendas = res->nsendas;
		log_info(c->id, c->service, "auth user=\"%s\" addresses=%zu sendas=%zu",
			 s->auth_login, s->nown, s->nsendas);
		smtp_reply(s, "235 2.7.0 Authentication successful");
	}
	conn_resume(c);
	conn_unref(c);
}

static void
check_done(struct conn *c, enum auth_outcome outcome, const struct dir_user *user)
{
	struct smtp_session *s = (struct smtp_session *)c;

	auth_sasl_reset(&s->sasl);
	switch (outcome) {
	case AUTH_OK:
		s->auth_id = arena_strdup(s->arena, user->id);
		s->auth_login = arena_strdup(s->arena, user->login);
		s->auth_dn = arena_strdup(s->arena, user->dn);
		/* Held until the addresses are known (addrs_done). */
		conn_pause(c);
		conn_ref(c);
		dir_user_addresses(c->worker, s->auth_dn, addrs_done, s);
		return;
	case AUTH_TEMPFAIL:
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	case AUTH_FAILED:
		break;
	}
	smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	if (++s->auth_failures >= s->cfg->max_auth_failures) {
		smtp_reply(s, "421 4.7.0 Too many failed authentications");
		conn_close(c, "too many failed authentications");
	}
}

/* Acts on one step of the exchange. */
static void
auth_step(struct smtp_session *s, enum auth_sasl_step step, const char *challenge)
{
	switch (step) {
	case AUTH_SASL_CHALLENGE:
		s->state = ST_AUTH;
		smtp_reply(s, "334 %s", challenge);
		return;
	case AUTH_SASL_CHECK:
		s->state = ST_GREETED;
		auth_sasl_check(&s->sasl, check_done);
		return;
	case AUTH_SASL_WAIT:
		/* The directory answers later, through smtp_auth_resume. */
		s->state = ST_AUTH;
		return;
	case AUTH_SASL_BAD:
		s->state = ST_GREETED;
		smtp_reply(s, "501 5.5.2 %s",
			   s->sasl.reason != NULL ? s->sasl.reason : "Bad response");
		auth_sasl_reset(&s->sasl);
		smtp_bad_command(s);
		return;
	case AUTH_SASL_CANCEL:
		s->state = ST_GREETED;
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		auth_sasl_reset(&s->sasl);
		return;
	case AUTH_SASL_UNKNOWN:
		s->state = ST_GREETED;
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		auth_sasl_reset(&s->sasl);
		smtp_bad_command(s);
		return;
	}
}

void
smtp_auth_resume(struct conn *c, enum auth_sasl_step step, const char *challenge)
{
	auth_step((struct smtp_session *)c, step, challenge);
}

void
smtp_cmd_auth(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (!s->submission) {
		smtp_reply(s, "502 5.5.1 AUTH not available on this port");
		smtp_bad_command(s);
		return;
	}
	if (!s->esmtp) {
		smtp_reply(s, "503 5.5.1 Error: send EHLO first");
		smtp_bad_command(s);
		return;
	}
	if (s->auth_id != NULL) {
		smtp_reply(s, "503 5.5.1 Error: already authenticated");
		smtp_bad_command(s);
		return;
	}
	if (!s->conn.tls && !s->cfg->listeners[s->svc].plaintext_auth) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		smtp_bad_command(s);
		return;
	}
	const char *challenge = "";
	auth_sasl_reset(&s->sasl);
	enum auth_sasl_step step =
	    auth_sasl_start(&s->sasl, cmd->arg, cmd->initial,
			    cmd->initial != NULL ? strlen(cmd->initial) : 0, &challenge);
	auth_step(s, step, challenge);
}

void
smtp_auth_line(struct smtp_session *s, const char *line, size_t len)
{
	const char *challenge = "";
	enum auth_sasl_step step = auth_sasl_continue(&s->sasl, line, len, &challenge);

	auth_step(s, step, challenge);
}

/* ---- sender checks ---- */

static bool
in_list(const char *const *v, size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i], addr) == 0)
			return true;
	return false;
}

bool
smtp_sender_allowed(const struct smtp_session *s, const char *address)
{
	if (s->auth_id == NULL)
		return false;
	return in_list(s->own, s->nown, address) || in_list(s->sendas, s->nsendas, address);
}

/* Case-insensitive "name:" at the start of a header line. */
static bool
field_is(const char *p, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && strncasecmp(p, name, n) == 0 && p[n] == ':';
}

bool
smtp_from_allowed(const struct smtp_session *s, const char *msg, size_t len, const char **why_r)
{
	const char *p = msg, *end = msg + len;
	struct buf addrs;
	bool ok = true;

	*why_r = NULL;
	buf_init(&addrs, 64 * 1024);
	while (p < end && ok) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol != NULL ? eol : end;
		size_t ll = (size_t)(le - p);
		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break; /* end of the header */
		if (!field_is(p, ll, "From")) {
			p = eol != NULL ? eol + 1 : end;
			continue;
		}
		/* The field and its continuation lines. */
		const char *vs = p + 5, *ve = eol != NULL ? eol + 1 : end;
		while (ve < end && (*ve == ' ' || *ve == '\t')) {
			const char *n = memchr(ve, '\n', (size_t)(end - ve));
			ve = n != NULL ? n + 1 : end;
		}
		buf_reset(&addrs);
		int n = smtp_address_list(vs, (size_t)(ve - vs), &addrs);
		if (n <= 0) {
			*why_r = "unparsable From header";
			ok = false;
			break;
		}
		for (size_t off = 0; off < addrs.len;) {
			const char *a = addrs.data + off;
			if (!smtp_sender_allowed(s, a)) {
				*why_r = "From address not owned by the authenticated user";
				ok = false;
				break;
			}
			off += strlen(a) + 1;
		}
		p = ve;
	}
	buf_free(&addrs);
	return ok;
}
