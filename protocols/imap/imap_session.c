/*
 * imap_session.c - the IMAP server's session: input framing (lines and
 * literals through imap_parser), the command table and its state rules,
 * replies, and the commands of any state and of authentication
 * (CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE, ENABLE, ID,
 * NAMESPACE, IDLE). Mailbox and message commands live in the other files
 * of this folder (imap_internal.h).
 *
 * How it fails: a malformed command gets "<tag> BAD" (or "* BAD" without a
 * tag), and any non-synchronizing literal that was announced for it is
 * read and thrown away, with the rest of the command after it, so that
 * literal data never runs as commands;
 * IMAP_MAX_ERRORS of them, an over-long line or an unframeable literal end
 * the session with "* BYE". A literal over the limit gets "NO [TOOBIG]"
 * and, for a synchronizing one, no "+", as RFC 9051 7.5 and RFC 7888 ask.
 * Commands over [limits] imap_command_rate wait for their turn (input
 * paused); a connection kept over it for imap_flood_time gets "* BYE".
 * The directory being down answers "NO [UNAVAILABLE]"; wrong credentials
 * "NO [AUTHENTICATIONFAILED]" after the growing delay of protocols/sasl.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "core/tls.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_session.h"
#include "protocols/imap/imap_utf7.h"
#include "protocols/sasl/mech.h"

#define IMAP_DEFAULT_MAX_LINE 65536
#define IMAP_OUT_MAX (1u << 20)
#define IMAP_ID_FIELDS_MAX 30

static _Atomic unsigned active_sessions[SVC_COUNT];

static void finish_command(struct imap_session *s);

/* ---- replies ---- */

static void
vqueue(struct imap_session *s, const char *prefix, const char *fmt, va_list ap)
{
	buf_reset(&s->out);
	buf_append_str(&s->out, prefix);
	if (buf_vprintf(&s->out, fmt, ap) < 0) {
		/* Only our own text goes through here; a cap hit is a bug. */
		log_error(s->conn.id, s->conn.service, "reply-too-long");
		buf_reset(&s->out);
		buf_append_str(&s->out, prefix);
		buf_append_str(&s->out, "NO [SERVERBUG] Response too long");
	}
	buf_append(&s->out, "\r\n", 2);
	conn_write(&s->conn, s->out.data, s->out.len);
}

void
imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vqueue(s, "* ", fmt, ap);
	va_end(ap);
}

void
imap_write(struct imap_session *s, const void *data, size_t len)
{
	conn_write(&s->conn, data, len);
}

static void
vtagged(struct imap_session *s, const char *tag, const char *status, const char *fmt, va_list ap)
{
	buf_reset(&s->out);
	buf_printf(&s->out, "%s %s ", tag != NULL ? tag : "*", status);
	if (buf_vprintf(&s->out, fmt, ap) < 0) {
		log_error(s->conn.id, s->conn.service, "reply-too-long");
		buf_reset(&s->out);
		buf_printf(&s->out, "%s NO [SERVERBUG] Response too long", tag != NULL ? tag : "*");
	}
	buf_append(&s->out, "\r\n", 2);
	conn_write(&s->conn, s->out.data, s->out.len);
}

void
imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vtagged(s, s->cmd != NULL ? s->cmd->tag : NULL, status, fmt, ap);
	va_end(ap);
	s->cmd = NULL;
	if (!s->async)
		finish_command(s);
}

static void
count_error(struct imap_session *s)
{
	if (++s->errors < IMAP_MAX_ERRORS)
		return;
	log_info(s->conn.id, s->conn.service, "too-many-errors ip=%s errors=%u", s->conn.peer_ip,
		 s->errors);
	imap_untagged(s, "BYE Too many invalid commands");
	conn_close(&s->conn, "too many errors");
}

void
imap_bad(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vtagged(s, s->cmd != NULL ? s->cmd->tag : NULL, "BAD", fmt, ap);
	va_end(ap);
	s->cmd = NULL;
	count_error(s);
	if (!s->async)
		finish_command(s);
}

void
imap_async_begin(struct imap_session *s)
{
	s->async = true;
	conn_pause(&s->conn);
	conn_ref(&s->conn);
}

void
imap_async_end(struct imap_session *s)
{
	s->async = false;
	if (s->cmd == NULL)
		finish_command(s);
	conn_resume(&s->conn);
	conn_unref(&s->conn); /* may free s */
}

void
imap_tagged_store_status(struct imap_session *s, int status, const char *what)
{
	switch (status) {
	case STORE_OK:
		imap_tagged(s, "OK", "%s completed", what);
		break;
	case STORE_NOTFOUND:
		imap_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
		break;
	case STORE_EXISTS:
		imap_tagged(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
		break;
	case STORE_OVERQUOTA:
	case STORE_TOOBIG:
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded");
		break;
	case STORE_LIMIT:
		imap_tagged(s, "NO", "[LIMIT] %s", store_strerror(status));
		break;
	case STORE_NOTALLOWED:
		imap_tagged(s, "NO", "[CANNOT] %s", store_strerror(status));
		break;
	case STORE_PERMFAIL:
		imap_tagged(s, "NO", "[CANNOT] %s failed", what);
		break;
	default:
		imap_tagged(s, "NO", "[UNAVAILABLE] %s failed, try again later", what);
		break;
	}
}

/* ---- strings ---- */

static bool
quotable(const char *str, size_t len, bool utf8)
{
	if (len > 1024)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)str[i];
		if (c == '\0' || c == '\r' || c == '\n' || (c >= 0x80 && !utf8))
			return false;
	}
	return true;
}

int
imap_append_string(struct buf *out, const char *str, size_t len, bool utf8)
{
	if (!quotable(str, len, utf8)) {
		if (buf_printf(out, "{%zu}\r\n", len) < 0)
			return -1;
		return buf_append(out, str, len);
	}
	if (buf_append(out, "\"", 1) < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if ((str[i] == '"' || str[i] == '\\') && buf_append(out, "\\", 1) < 0)
			return -1;
		if (buf_append(out, &str[i], 1) < 0)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

int
imap_append_mailbox(struct imap_session *s, struct buf *out, const char *name)
{
	size_t len = strlen(name);

	if (s->utf8)
		return imap_append_string(out, name, len, true);
	struct buf tmp;
	buf_init(&tmp, 4 * len + 16);
	int r = imap_utf8_to_utf7(name, len, &tmp);
	if (r == 0)
		r = imap_append_string(out, tmp.data != NULL ? tmp.data : "", tmp.len, false);
	buf_free(&tmp);
	return r;
}

const char *
imap_arg_mailbox(struct imap_session *s, const struct imap_arg *arg)
{
	const char *str;
	size_t len;

	if (!imap_arg_astring(arg, &str, &len) || memchr(str, '\0', len) != NULL) {
		imap_bad(s, "Invalid mailbox name");
		return NULL;
	}
	if (len == 5 && strncasecmp(str, "INBOX", 5) == 0)
		return "INBOX";
	if (s->utf8 || len == 0)
		return arena_strndup(s->cmd_arena, str, len);
	struct buf tmp;
	buf_init(&tmp, 4 * len + 16);
	if (imap_utf7_to_utf8(str, len, &tmp) < 0) {
		buf_free(&tmp);
		imap_bad(s, "Mailbox name is not valid modified UTF-7");
		return NULL;
	}
	const char *r = arena_strndup(s->cmd_arena, tmp.data != NULL ? tmp.data : "", tmp.len);
	buf_free(&tmp);
	if (strncasecmp(r, "INBOX", 5) == 0 && (r[5] == '\0' || r[5] == '/')) {
		/* "inbox/x" is INBOX's child. */
		char *c = arena_strdup(s->cmd_arena, r);
		memcpy(c, "INBOX", 5);
		r = c;
	}
	return r;
}

/* ---- capabilities ---- */

static bool
password_auth_allowed(const struct imap_session *s)
{
	return s->conn.tls || s->cfg->listeners[s->svc].plaintext_auth;
}

static bool
starttls_available(const struct imap_session *s)
{
	if (s->conn.tls)
		return false;
	SSL_CTX *ctx = tls_ctx_acquire();
	if (ctx == NULL)
		return false;
	SSL_CTX_free(ctx);
	return true;
}

/* The CAPABILITY list for the session's current state. */
static const char *
capabilities(struct imap_session *s)
{
	struct buf *b = &s->out;
	static __thread char text[1024];

	buf_reset(b);
	buf_append_str(b, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE");
	if (s->state == IMAP_ST_NOTAUTH) {
		if (starttls_available(s))
			buf_append_str(b, " STARTTLS");
		if (password_auth_allowed(s)) {
			struct buf mechs;
			buf_init(&mechs, 512);
			auth_sasl_mechanisms(&s->sasl, true, &mechs);
			for (const char *m = buf_cstr(&mechs); *m != '\0';) {
				size_t n = strcspn(m, " ");
				buf_printf(b, " AUTH=%.*s", (int)n, m);
				m += n;
				m += strspn(m, " ");
			}
			buf_free(&mechs);
		} else {
			buf_append_str(b, " LOGINDISABLED");
		}
	} else {
		/* Only what is implemented in full (docs/compliance.md). */
		buf_append_str(b, " IDLE NAMESPACE UNSELECT CHILDREN UIDPLUS MOVE MULTIAPPEND"
				  " LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE"
				  " ESEARCH SEARCHRES BINARY STATUS=SIZE UTF8=ACCEPT"
				  " CONDSTORE QRESYNC OBJECTID SAVEDATE WITHIN PREVIEW"
				  " UNAUTHENTICATE REPLACE");
		buf_append_str(b, " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE COMPRESS=DEFLATE");
		/* RFC 5256, RFC 5267, RFC 5957 (protocols/imap/imap_sort.c). */
		buf_append_str(b, " SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT"
				  " THREAD=REFERENCES I18NLEVEL=1");
		/* RFC 5464 (protocols/imap/imap_metadata.c). */
		buf_append_str(b, " METADATA METADATA-SERVER");
		buf_printf(b, " APPENDLIMIT=%" PRIu64, s->cfg->message_size_max);
		buf_append_str(b, " NOTIFY");			     /* RFC 5465 (imap_notify.c) */
		buf_append_str(b, " ACL RIGHTS=texk LIST-MYRIGHTS"); /* RFC 4314, 8440 */
	}
	snprintf(text, sizeof(text), "%s", buf_cstr(b));
	return text;
}

/* ---- any state ---- */

static void
cmd_capability(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "CAPABILITY takes no arguments");
		return;
	}
	imap_untagged(s, "CAPABILITY %s", capabilities(s));
	imap_tagged(s, "OK", "CAPABILITY completed");
}

void
imap_cmd_noop(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "%s takes no arguments", cmd->name);
		return;
	}
	if (s->view != NULL)
		imap_view_sync(s, true);
	imap_tagged(s, "OK", "%s completed", cmd->name);
}

static void
cmd_logout(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "LOGOUT takes no arguments");
		return;
	}
	imap_untagged(s, "BYE Logging out");
	s->state = IMAP_ST_LOGOUT;
	imap_tagged(s, "OK", "LOGOUT completed");
	conn_close(&s->conn, "logout");
}

static void
cmd_starttls(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "STARTTLS takes no arguments");
		return;
	}
	if (!starttls_available(s)) {
		imap_bad(s, s->conn.tls ? "TLS is already active" : "TLS is not available");
		return;
	}
	imap_tagged(s, "OK", "Begin TLS negotiation now");
	if (conn_starttls(&s->conn) < 0) {
		log_warn(s->conn.id, s->conn.service, "starttls-failed ip=%s", s->conn.peer_ip);
		conn_close(&s->conn, "STARTTLS failed");
	}
}

static void
cmd_id(struct imap_session *s, const struct imap_cmd *cmd)
{
	/* RFC 2971: ID NIL or ID ("key" "value" ...); logged, answered. */
	if (cmd->count != 1 ||
	    (cmd->args[0].type != IMAP_ARG_NIL && cmd->args[0].type != IMAP_ARG_LIST)) {
		imap_bad(s, "Usage: ID NIL | ID (field value ...)");
		return;
	}
	const struct imap_arg *l = &cmd->args[0];
	if (l->type == IMAP_ARG_LIST) {
		if (l->count % 2 != 0 || l->count > 2 * IMAP_ID_FIELDS_MAX) {
			imap_bad(s, "ID takes at most 30 field-value pairs");
			return;
		}
		struct buf logl;
		buf_init(&logl, 512);
		for (size_t i = 0; i < l->count; i += 2) {
			const char *k, *v;
			size_t kl, vl;
			if (!imap_arg_string(&l->list[i], false, &k, &kl) ||
			    !imap_arg_nstring(&l->list[i + 1], &v, &vl) || kl > 30 || vl > 1024) {
				buf_free(&logl);
				imap_bad(s,
					 "ID fields are strings of at most 30 bytes, values 1024");
				return;
			}
			buf_printf(&logl, " %.*s=\"", (int)kl, k);
			for (size_t j = 0; j < vl && j < 64; j++) {
				char c = v[j];
				buf_append(&logl,
					   c < 0x20 || c == '"' || c == '\\' || c > 0x7e ? "?" : &c,
					   1);
			}
			buf_append(&logl, "\"", 1);
		}
		log_info(s->conn.id, s->conn.service, "id%s", buf_cstr(&logl));
		buf_free(&logl);
	}
	imap_untagged(s, "ID (\"name\" \"Tern\" \"vendor\" \"Tern\")");
	imap_tagged(s, "OK", "ID completed");
}

static void
cmd_enable(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct buf en;

	if (cmd->count == 0) {
		imap_bad(s, "ENABLE needs at least one capability");
		return;
	}
	buf_init(&en, 256);
	for (size_t i = 0; i < cmd->count; i++) {
		const struct imap_arg *a = &cmd->args[i];
		if (a->type != IMAP_ARG_ATOM) {
			buf_free(&en);
			imap_bad(s, "ENABLE takes capability names");
			return;
		}
		/* RFC 5161: report only what this command newly enabled. */
		if (imap_arg_is_atom_ci(a, "IMAP4rev2") && !s->rev2) {
			s->rev2 = true;
			buf_append_str(&en, " IMAP4rev2");
		} else if (imap_arg_is_atom_ci(a, "UTF8=ACCEPT") && !s->utf8) {
			s->utf8 = true;
			buf_append_str(&en, " UTF8=ACCEPT");
		} else if (imap_arg_is_atom_ci(a, "CONDSTORE") && !s->condstore) {
			imap_condstore_enable(s);
			buf_append_str(&en, " CONDSTORE");
		} else if (imap_arg_is_atom_ci(a, "QRESYNC") && !s->qresync) {
			/* RFC 7162 3.2.3: QRESYNC implies CONDSTORE. */
			imap_condstore_enable(s);
			s->qresync = true;
			buf_append_str(&en, " QRESYNC");
		}
	}
	imap_untagged(s, "ENABLED%s", buf_cstr(&en));
	buf_free(&en);
	imap_tagged(s, "OK", "ENABLE completed");
}

static void
cmd_namespace(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "NAMESPACE takes no arguments");
		return;
	}
	/* Other users' mailboxes shared with this one (RFC 4314) are in the
	 * shared namespace (RFC 2342 5). */
	imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL ((\"%s/\" \"/\"))", IMAP_SHARED_PREFIX);
	imap_tagged(s, "OK", "NAMESPACE completed");
}

/* UNAUTHENTICATE (RFC 8437): back to the not authenticated state on the
 * same connection (TLS and COMPRESS stay): the selected mailbox is closed
 * without an expunge, and everything the login brought (the user, its
 * groups, ENABLEd extensions, NOTIFY, the saved search) is forgotten. */
static void
cmd_unauthenticate(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "UNAUTHENTICATE takes no arguments");
		return;
	}
	log_info(s->conn.id, s->conn.service, "unauthenticate user=\"%s\"", s->login);
	imap_notify_free(s);
	if (s->view != NULL)
		imap_view_close(s);
	auth_sasl_reset(&s->sasl);
	free(s->user_id);
	free(s->login);
	free(s->dn);
	s->user_id = s->login = s->dn = NULL;
	for (size_t i = 0; i < s->ngroups; i++)
		free(s->groups[i]);
	free(s->groups);
	s->groups = NULL;
	s->ngroups = 0;
	s->quota = s->quota_messages = 0;
	s->rev2 = s->utf8 = s->condstore = s->qresync = false;
	s->state = IMAP_ST_NOTAUTH;
	imap_tagged(s, "OK", "UNAUTHENTICATE completed");
}

/* ---- authentication ---- */

static void
plaintext_refused(struct imap_session *s)
{
	imap_tagged(s, "NO", "[PRIVACYREQUIRED] Use STARTTLS before logging in");
}

static void
login_done(struct conn *c, enum auth_outcome outcome, const struct dir_user *u)
{
	struct imap_session *s = (struct imap_session *)c;

	if (outcome == AUTH_OK) {
		s->user_id = xstrdup(u->id);
		s->login = xstrdup(u->login != NULL && u->login[0] != '\0' ? u->login : u->id);
		s->dn = u->dn != NULL && u->dn[0] != '\0' ? xstrdup(u->dn) : NULL;
		s->quota = u->quota;
		s->quota_messages = u->quota_messages;
		s->state = IMAP_ST_AUTH;
		imap_tagged(s, "OK", "[CAPABILITY %s] Logged in", capabilities(s));
	} else if (outcome == AUTH_TEMPFAIL) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Directory temporarily unavailable, try again");
	} else {
		imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		unsigned max = s->cfg->max_auth_failures;
		if (max > 0 && ++s->auth_failures >= max) {
			log_info(c->id, c->service, "too-many-auth-failures ip=%s failures=%u",
				 c->peer_ip, s->auth_failures);
			imap_untagged(s, "BYE Too many authentication failures");
			conn_close(c, "too many authentication failures");
		}
	}
	imap_async_end(s);
}

/* auth_check pauses and references the conn itself; the session's own
 * async marker keeps the command (and its arena) alive until login_done. */
static void
start_check(struct imap_session *s, const char *mech, const char *login, const char *pw,
	    size_t pwlen, bool force_fail)
{
	imap_async_begin(s);
	auth_check(&s->conn, s->cfg, mech, login, pw, pwlen, force_fail, login_done);
}

static void
cmd_login(struct imap_session *s, const struct imap_cmd *cmd)
{
	const char *user, *pw;
	size_t ulen, pwlen;

	if (cmd->count != 2 || !imap_arg_astring(&cmd->args[0], &user, &ulen) ||
	    !imap_arg_astring(&cmd->args[1], &pw, &pwlen)) {
		imap_bad(s, "Usage: LOGIN user password");
		return;
	}
	if (!password_auth_allowed(s)) {
		plaintext_refused(s);
		return;
	}
	if (memchr(user, '\0', ulen) != NULL || ulen > 255) {
		imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	start_check(s, "LOGIN", user, pw, pwlen, false);
	explicit_bzero((char *)pw, pwlen); /* the arena copy of the password */
}

static void
sasl_step(struct imap_session *s, enum auth_sasl_step step, const char *challenge)
{
	s->in_sasl = false;
	switch (step) {
	case AUTH_SASL_CHALLENGE:
		/* The command stays open across the response lines (like
		 * IDLE): no tagged reply yet, and the arena is kept. */
		s->in_sasl = true;
		s->async = true;
		conn_printf(&s->conn, "+ %s\r\n", challenge);
		return;
	case AUTH_SASL_CHECK:
		imap_async_begin(s);
		auth_sasl_check(&s->sasl, login_done);
		auth_sasl_reset(&s->sasl);
		return;
	case AUTH_SASL_WAIT:
		/* The directory answers later, through sasl_resume. */
		s->async = true;
		return;
	case AUTH_SASL_CANCEL:
		imap_tagged(s, "BAD", "Authentication cancelled");
		break;
	case AUTH_SASL_UNKNOWN:
		imap_tagged(s, "NO", "[CANNOT] Unsupported authentication mechanism");
		break;
	case AUTH_SASL_BAD:
		imap_bad(s, "Invalid SASL response");
		break;
	}
	auth_sasl_reset(&s->sasl);
}

static void
sasl_resume(struct conn *c, enum auth_sasl_step step, const char *challenge)
{
	struct imap_session *s = (struct imap_session *)c;

	s->async = false;
	sasl_step(s, step, challenge);
}

static void
cmd_authenticate(struct imap_session *s, const struct imap_cmd *cmd)
{
	const char *ir = NULL;
	size_t irlen = 0;
	const char *challenge;

	if (cmd->count < 1 || cmd->count > 2 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    (cmd->count == 2 && cmd->args[1].type != IMAP_ARG_ATOM)) {
		imap_bad(s, "Usage: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	if (!password_auth_allowed(s)) {
		plaintext_refused(s);
		return;
	}
	if (cmd->count == 2) {
		/* SASL-IR (RFC 4959): "=" is an empty initial response. */
		ir = cmd->args[1].str;
		irlen = cmd->args[1].len;
	}
	enum auth_sasl_step step =
	    auth_sasl_start(&s->sasl, cmd->args[0].str, ir, irlen, &challenge);
	sasl_step(s, step, challenge);
}

/* ---- IDLE (RFC 2177) ---- */

static void
imap_cmd_idle(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "IDLE takes no arguments");
		return;
	}
	s->idling = true;
	/* The command stays open (no tagged reply) until DONE, which may be
	 * half an hour away: its tag moves out of the command arena, which
	 * is given back with the scratch buffer. */
	s->async = true;
	s->idle_cmd.tag = s->idle_tag = xstrdup(cmd->tag);
	s->idle_cmd.name = "IDLE";
	s->cmd = &s->idle_cmd;
	conn_write(&s->conn, "+ idling\r\n", 10);
	if (s->view != NULL)
		imap_view_sync(s, true);
	arena_trim(s->cmd_arena);
	buf_free(&s->out);
}

/* Called by imap_view when the store reports a change during IDLE. */
static void
idle_line(struct imap_session *s, const char *line, size_t len)
{
	s->idling = false;
	s->async = false;
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0) {
		if (s->view != NULL)
			imap_view_sync(s, true);
		imap_tagged(s, "OK", "IDLE terminated");
	} else {
		imap_bad(s, "Expected DONE");
	}
	free(s->idle_tag);
	s->idle_tag = NULL;
}

/* ---- the command table ---- */

static const struct imap_command session_cmds[] = {
    {"CAPABILITY", IMAP_ST_ANY, false, cmd_capability},
    {"NOOP", IMAP_ST_ANY, false, imap_cmd_noop},
    {"LOGOUT", IMAP_ST_ANY, false, cmd_logout},
    {"STARTTLS", IMAP_ST_NOTAUTH, false, cmd_starttls},
    {"AUTHENTICATE", IMAP_ST_NOTAUTH, false, cmd_authenticate},
    {"LOGIN", IMAP_ST_NOTAUTH, false, cmd_login},
    {"ID", IMAP_ST_ANY, false, cmd_id},
    {"ENABLE", IMAP_ST_AUTH, false, cmd_enable},
    {"NAMESPACE", IMAP_ST_AUTHED, false, cmd_namespace},
    {"UNAUTHENTICATE", IMAP_ST_AUTHED, false, cmd_unauthenticate},
    {"IDLE", IMAP_ST_AUTHED, false, imap_cmd_idle},
    {NULL, 0, false, NULL},
};

static const struct imap_command *const tables[] = {
    session_cmds,  imap_mailbox_cmds, imap_fetch_cmds,	  imap_search_cmds, imap_sort_cmds,
    imap_msg_cmds, imap_quota_cmds,   imap_compress_cmds, imap_notify_cmds, imap_metadata_cmds,
    imap_acl_cmds, imap_replace_cmds, imap_append_cmds,	  imap_list_cmds,
};

/* Runs a command whose state was checked (with the session's groups
 * fresh when it may reach a shared mailbox). */
static void
run_command(struct imap_session *s, const struct imap_command *c, const struct imap_cmd *cmd)
{
	if (!imap_acl_recheck(s) && !(c->states & s->state)) {
		imap_tagged(s, "NO", "[NOPERM] Access to the selected mailbox was revoked");
		return;
	}
	/* A keyword another session added must be in FLAGS before this
	 * command's FETCH responses can show it. */
	if (s->view != NULL)
		imap_view_keywords_refresh(s);
	c->fn(s, cmd);
	if (s->cmd == cmd && !s->async) {
		/* A handler that neither answered nor went asynchronous. */
		log_error(s->conn.id, s->conn.service, "no-reply command=%s", cmd->name);
		imap_tagged(s, "NO", "[SERVERBUG] Internal error");
	}
}

struct groups_wait {
	struct imap_session *s;
	const struct imap_command *c;
	const struct imap_cmd *cmd;
};

static void
groups_done(void *arg, const struct dir_groups_result *res)
{
	struct groups_wait *gw = arg;
	struct imap_session *s = gw->s;

	imap_acl_set_groups(s, res);
	s->async = false; /* the command runs now, and may go async itself */
	if (!s->conn.closed && s->cmd == gw->cmd)
		run_command(s, gw->c, gw->cmd);
	if (!s->async && s->cmd != NULL) {
		s->cmd = NULL;
		finish_command(s);
	}
	conn_resume(&s->conn);
	conn_unref(&s->conn); /* may free s */
}

static void
dispatch(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_command *c = NULL;

	s->cmd = cmd;
	for (size_t t = 0; t < ARRAY_SIZE(tables) && c == NULL; t++) {
		for (const struct imap_command *e = tables[t]; e->name != NULL; e++) {
			if (strcmp(e->name, cmd->name) == 0) {
				c = e;
				break;
			}
		}
	}
	if (c == NULL || (cmd->uid && !c->uid_ok)) {
		imap_bad(s, "Unknown command %s%s", cmd->uid ? "UID " : "", cmd->name);
		return;
	}
	if (!(c->states & s->state)) {
		if (s->state == IMAP_ST_NOTAUTH)
			imap_bad(s, "%s needs authentication first", cmd->name);
		else if (c->states == IMAP_ST_SELECTED)
			imap_bad(s, "%s needs a selected mailbox", cmd->name);
		else
			imap_bad(s, "%s is not valid in this state", cmd->name);
		return;
	}
	if (imap_acl_wants_groups(s, cmd)) {
		struct groups_wait *gw = arena_alloc(s->cmd_arena, sizeof(*gw));
		gw->s = s;
		gw->c = c;
		gw->cmd = cmd;
		imap_async_begin(s);
		dir_user_groups(s->conn.worker, s->dn, s->login, groups_done, gw);
		return;
	}
	run_command(s, c, cmd);
}

static void
finish_command(struct imap_session *s)
{
	/* What NOTIFY held while the command ran (imap_notify.c). */
	imap_notify_flush(s);
	/* A client that waits for the reply before its next command (most
	 * of them, and every idle one) holds no per-command memory until
	 * then: idle connections are what an IMAP server has most of. */
	if (conn_input_pending(&s->conn)) {
		arena_clear(s->cmd_arena);
	} else {
		arena_trim(s->cmd_arena);
		buf_free(&s->out);
	}
	imap_parser_reset(s->parser);
	s->in_literal = false;
}

/* ---- input ---- */

static void
parse_failed(struct imap_session *s, int r)
{
	const char *tag = imap_parser_tag(s->parser);
	uint64_t skip = imap_parser_skip(s->parser);

	buf_reset(&s->out);
	buf_printf(&s->out, "%s %s %s\r\n", tag != NULL ? tag : "*",
		   r == IMAP_PARSE_TOOBIG ? "NO [TOOBIG]" : "BAD", imap_parser_error(s->parser));
	conn_write(&s->conn, s->out.data, s->out.len);
	if (r != IMAP_PARSE_TOOBIG)
		count_error(s);
	finish_command(s);
	if (skip == IMAP_PARSER_SKIP_CLOSE) {
		imap_untagged(s, "BYE Cannot follow the command's framing");
		conn_close(&s->conn, "unframeable literal");
	} else if (skip > 0) {
		/* The literal, then the rest of the command it was in: none
		 * of it may run as a command (RFC 7888 4). */
		s->skip = skip;
		s->skip_rest = true;
		conn_read_bytes(&s->conn, skip);
	}
}

/* The line after a skipped literal: if it continues the failed command
 * (after a literal comes SP, ")" or the end of the command; a new
 * command starts with its tag), it is thrown away with the next
 * non-synchronizing literal it announces. false: a command of its own. */
static bool
skip_line(struct imap_session *s, const char *line, size_t len)
{
	s->skip_rest = false;
	if (len > 0 && line[0] != ' ' && line[0] != ')')
		return false;
	uint64_t n = imap_parser_trailing_nonsync(line, len);
	if (n == IMAP_PARSER_SKIP_CLOSE) {
		imap_untagged(s, "BYE Cannot follow the command's framing");
		conn_close(&s->conn, "unframeable literal");
	} else if (n > 0) {
		s->skip = n;
		s->skip_rest = true;
		conn_read_bytes(&s->conn, n);
	} else if (len >= 4 && memcmp(line + len - 4, "{0+}", 4) == 0) {
		s->skip_rest = true;
	}
	return true;
}

/* ---- command rate ([limits] imap_command_rate) ---- */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
rate_refill(struct imap_session *s, uint64_t now)
{
	double rate = s->cfg->imap_command_rate;

	s->rate_tokens += (double)(now - s->rate_at_ms) * rate / 1000.0;
	if (s->rate_tokens > rate)
		s->rate_tokens = rate;
	s->rate_at_ms = now;
}

static void
rate_wait_done(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;
	const struct imap_cmd *cmd = s->rate_cmd;

	(void)fd;
	(void)what;
	s->rate_cmd = NULL;
	conn_resume(&s->conn);
	if (s->conn.closed)
		return;
	rate_refill(s, now_ms());
	s->rate_tokens = s->rate_tokens >= 1.0 ? s->rate_tokens - 1.0 : 0.0;
	dispatch(s, cmd);
}

/* May cmd run now? If not, it waits for its token with the input paused
 * (false), or the connection has been over the rate for too long and is
 * closed (false too). */
static bool
rate_admit(struct imap_session *s, const struct imap_cmd *cmd)
{
	unsigned rate = s->cfg->imap_command_rate;
	uint64_t now;

	if (rate == 0)
		return true;
	now = now_ms();
	rate_refill(s, now);
	if (s->rate_tokens >= 1.0) {
		s->rate_tokens -= 1.0;
		s->throttled_since_ms = 0;
		return true;
	}
	if (s->throttled_since_ms == 0) {
		s->throttled_since_ms = now;
	} else if (now - s->throttled_since_ms >= (uint64_t)s->cfg->imap_flood_time * 1000u) {
		log_info(s->conn.id, s->conn.service, "command-flood ip=%s user=\"%s\" rate=%u",
			 s->conn.peer_ip, s->login != NULL ? s->login : "", rate);
		imap_untagged(s, "BYE Too many commands; slow down");
		conn_close(&s->conn, "command flood");
		return false;
	}
	if (s->rate_ev == NULL)
		s->rate_ev = evtimer_new(worker_base(s->conn.worker), rate_wait_done, s);
	if (s->rate_ev == NULL)
		return true; /* out of memory: better unthrottled than stuck */
	uint64_t wait_us = (uint64_t)((1.0 - s->rate_tokens) * 1e6 / rate) + 1;
	struct timeval tv = {.tv_sec = (time_t)(wait_us / 1000000u),
			     .tv_usec = (suseconds_t)(wait_us % 1000000u)};
	s->rate_cmd = cmd;
	conn_pause(&s->conn);
	evtimer_add(s->rate_ev, &tv);
	return false;
}

static void
handle_result(struct imap_session *s, int r)
{
	switch (r) {
	case IMAP_PARSE_DONE: {
		const struct imap_cmd *cmd = imap_parser_command(s->parser);
		s->in_literal = false;
		if (rate_admit(s, cmd))
			dispatch(s, cmd);
		return;
	}
	case IMAP_PARSE_LITERAL: {
		uint64_t size;
		bool nonsync, binary;
		imap_parser_literal(s->parser, &size, &nonsync, &binary);
		if (!nonsync)
			conn_write(&s->conn, "+ Ready for literal data\r\n", 26);
		s->in_literal = true;
		if (size == 0) {
			size_t used;
			handle_result(s, imap_parser_feed_literal(s->parser, "", 0, &used));
		} else {
			conn_read_bytes(&s->conn, size);
		}
		return;
	}
	case IMAP_PARSE_NEED_MORE:
		return;
	case IMAP_PARSE_LINE_NEXT:
		s->in_literal = false;
		return;
	default:
		s->in_literal = false;
		parse_failed(s, r);
		return;
	}
}

static void
imap_on_line(struct conn *c, char *line, size_t len)
{
	struct imap_session *s = (struct imap_session *)c;

	if (s->in_sasl) {
		const char *challenge;
		s->async = false;
		enum auth_sasl_step step = auth_sasl_continue(&s->sasl, line, len, &challenge);
		explicit_bzero(line, len);
		sasl_step(s, step, challenge);
		return;
	}
	if (s->idling) {
		idle_line(s, line, len);
		return;
	}
	if (s->state == IMAP_ST_LOGOUT)
		return;
	if (s->skip_rest && skip_line(s, line, len))
		return;
	handle_result(s, imap_parser_feed_line(s->parser, line, len));
	/* LOGIN's password was in the line. */
	explicit_bzero(line, len);
}

static void
imap_on_data(struct conn *c, const char *data, size_t len, bool last)
{
	struct imap_session *s = (struct imap_session *)c;

	if (s->skip > 0) {
		s->skip -= len;
		return;
	}
	(void)last;
	while (len > 0 && s->in_literal) {
		size_t used = 0;
		int r = imap_parser_feed_literal(s->parser, data, len, &used);
		data += used;
		len -= used;
		handle_result(s, r);
		if (r != IMAP_PARSE_NEED_MORE)
			break;
	}
}

static void
imap_on_line_too_long(struct conn *c)
{
	struct imap_session *s = (struct imap_session *)c;

	/* The rest of the command cannot be framed: RFC 9051 7.1.5. */
	imap_untagged(s, "BYE Command line too long");
	conn_close(c, "line too long");
}

static void
imap_on_timeout(struct conn *c)
{
	struct imap_session *s = (struct imap_session *)c;

	log_info(c->id, c->service, "timeout ip=%s", c->peer_ip);
	imap_untagged(s, "BYE Autologout; idle for too long");
}

static void
imap_on_close(struct conn *c, const char *reason)
{
	struct imap_session *s = (struct imap_session *)c;

	atomic_fetch_sub(&active_sessions[s->svc], 1);
	log_info(c->id, c->service, "disconnect ip=%s user=\"%s\" reason=\"%s\"", c->peer_ip,
		 s->login != NULL ? s->login : "", reason);
}

static void
session_free(struct imap_session *s)
{
	struct arena *a = s->arena;

	if (s->rate_ev != NULL)
		event_free(s->rate_ev);
	free(s->idle_tag);
	imap_notify_free(s);
	if (s->view != NULL)
		imap_view_close(s);
	auth_sasl_reset(&s->sasl);
	imap_parser_destroy(&s->parser);
	arena_destroy(&s->cmd_arena);
	free(s->user_id);
	free(s->dn);
	for (size_t i = 0; i < s->ngroups; i++)
		free(s->groups[i]);
	free(s->groups);
	free(s->login);
	buf_free(&s->out);
	config_release(s->cfg);
	arena_destroy(&a); /* s lives in it */
}

static void
imap_on_free(struct conn *c)
{
	session_free((struct imap_session *)c);
}

static void
greet(struct imap_session *s)
{
	s->greet_pending = false;
	imap_untagged(s, "OK [CAPABILITY %s] %s Tern IMAP ready", capabilities(s),
		      s->cfg->hostname);
}

static void
imap_on_tls_ready(struct conn *c)
{
	struct imap_session *s = (struct imap_session *)c;

	if (s->greet_pending)
		greet(s);
}

static const struct conn_ops imap_conn_ops = {
    .on_line = imap_on_line,
    .on_line_too_long = imap_on_line_too_long,
    .on_timeout = imap_on_timeout,
    .on_close = imap_on_close,
    .on_free = imap_on_free,
    .on_tls_ready = imap_on_tls_ready,
    .on_data = imap_on_data,
};

void
imap_done(void)
{
	imap_recent_free_all();
}

void
imap_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen, enum service svc)
{
	/* The session is the arena's only allocation: one chunk its size. */
	struct arena *a = arena_new(sizeof(struct imap_session));
	struct imap_session *s = arena_alloc(a, sizeof(*s));
	struct config *cfg = config_acquire();
	const struct listener_config *lc = &cfg->listeners[svc];

	s->arena = a;
	s->cfg = cfg;
	s->svc = svc;
	s->state = IMAP_ST_NOTAUTH;
	s->cmd_arena = arena_new(0);
	buf_init(&s->out, IMAP_OUT_MAX);
	s->rate_tokens = cfg->imap_command_rate;
	s->rate_at_ms = now_ms();
	auth_sasl_init(&s->sasl);
	auth_sasl_attach(&s->sasl, &s->conn, cfg, "imap", sasl_resume);
	struct imap_parser_limits lim = {
	    .max_literal = cfg->imap_literal_max,
	    .max_message_literal = cfg->message_size_max,
	    .max_literal_total = cfg->message_size_max + cfg->imap_literal_max,
	    .max_depth = cfg->imap_max_depth,
	    .max_args = IMAP_MAX_ARGS,
	};
	s->parser = imap_parser_new(s->cmd_arena, &lim);

	struct conn_params params = {
	    .max_line = lc->max_line > 0 ? lc->max_line : IMAP_DEFAULT_MAX_LINE,
	    .idle_timeout = lc->idle_timeout,
	    .implicit_tls = lc->implicit_tls,
	};
	if (conn_init(&s->conn, w, fd, sa, salen, config_service_name(svc), &imap_conn_ops,
		      &params) < 0) {
		log_error(0, config_service_name(svc), "accept-failed reason=\"conn_init\"");
		session_free(s);
		return;
	}
	unsigned n = atomic_fetch_add(&active_sessions[svc], 1) + 1;
	log_info(s->conn.id, s->conn.service, "connect ip=%s port=%d tls=%s", s->conn.peer_ip,
		 s->conn.peer_port, s->conn.tls ? "yes" : "no");
	if (lc->max_connections > 0 && n > lc->max_connections) {
		imap_untagged(s, "BYE Too many connections, try again later");
		conn_close(&s->conn, "too many connections");
		return;
	}
	/* On implicit TLS the greeting waits for the handshake: its
	 * capabilities depend on it (SCRAM-SHA-256-PLUS needs the channel
	 * binding, AUTH=EXTERNAL a verified client certificate), and clients
	 * take the greeting's list without asking again. */
	if (s->conn.tls)
		s->greet_pending = true;
	else
		greet(s);
}
