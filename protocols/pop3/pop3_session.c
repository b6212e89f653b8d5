/*
 * pop3_session.c - the POP3 server (RFC 1939) with CAPA and response codes
 * (RFC 2449, 3206), STLS (RFC 2595) and AUTH PLAIN/LOGIN (RFC 5034), for
 * [pop3] and [pop3s] (implicit TLS comes from the conn).
 *
 * One session per connection, on its worker thread. A line goes through
 * pop3_parser, then the command table (which states allow it), then its
 * handler; during an AUTH exchange lines are SASL responses instead. While
 * the directory checks a password or the store expunges, the conn is
 * paused (pipelined commands wait, replies stay in order) and referenced
 * (the session outlives a peer that hangs up meanwhile).
 *
 * The maildrop: after a successful login the user's INBOX is locked (one
 * POP3 session per user across all workers, keyed by the directory's
 * stable id) and listed once; message numbers refer to that snapshot.
 * DELE only marks; QUIT expunges the marked UIDs through the store writer
 * and answers +OK only after the commit is durable. Any other end of the
 * session (peer gone, timeout, errors) deletes nothing.
 *
 * Failure: every peer mistake gets one -ERR; ten of them close the
 * session. A wrong password is answered after a growing delay
 * (mech_fail_delay_ms) and max_auth_failures of them close it. The
 * directory or store being down answers -ERR [SYS/TEMP]. Passwords and
 * AUTH payloads are wiped after use and never logged.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/arena.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "protocols/sasl/auth.h"
#include "protocols/sasl/mech.h"
#include "storage/store.h"
#include "pop3_parser.h"
#include "pop3_session.h"

#define POP3_MAX_ERRORS 10
#define POP3_DEFAULT_MAX_LINE 1024
#define POP3_REPLY_MAX 4096
#define POP3_LOGIN_MAX 256
/* RETR reads into a buffer capped at the listed size plus this, so a
 * message that changed size cannot make us allocate without bound. */
#define POP3_READ_HEADROOM (64 * 1024)
#define POP3_MAILBOX "INBOX"

enum pop3_state {
	ST_AUTHZ = 1 << 0, /* AUTHORIZATION */
	ST_TRANS = 1 << 1, /* TRANSACTION */
};

struct pop3_msg {
	uint32_t uid;
	uint64_t size;
	bool deleted;
};

struct pop3_session {
	struct conn conn;    /* first: the conn pointer is the session pointer */
	struct arena *arena; /* owns this struct */
	struct config *cfg;  /* owned reference, released on free */
	enum service svc;
	unsigned state;
	unsigned errors;	/* peer mistakes */
	unsigned auth_failures; /* wrong passwords on this connection */
	struct buf reply;	/* formatting scratch for one reply */
	struct buf user;	/* USER argument */
	bool have_user;		/* USER accepted, PASS may follow */
	struct auth_sasl sasl;	/* an AUTH exchange (protocols/sasl/auth.h) */
	bool in_sasl;		/* lines are SASL responses */
	struct buf logname;	/* scratch for log_safe() */

	/* The maildrop, from login until the end of the session. */
	char *user_id;	  /* owned: stable id, the lock key */
	char *user_login; /* owned: for logs */
	bool locked;
	struct arena *mbox;    /* owned: the snapshot */
	struct pop3_msg *msgs; /* mbox arena */
	size_t nmsgs;
	uint32_t uidvalidity;
	size_t nlive; /* not marked deleted */
	uint64_t live_bytes;
	unsigned nretr, ndele;
	bool logged_out;	      /* the logout line has been written */
	struct store_expunge expunge; /* in flight during QUIT */
};

static _Atomic unsigned active_sessions[SVC_COUNT];

/* ---- the maildrop lock ---- */

/* Shared by every worker: RFC 1939 wants an exclusive-access lock on the
 * maildrop, and two sessions of one user may land on different workers.
 * The only other global state here is the session counter above. */
struct lock_entry {
	struct lock_entry *next;
	char id[];
};

#define LOCK_BUCKETS 256
static pthread_mutex_t maildrop_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct lock_entry *maildrop_locks[LOCK_BUCKETS];

static size_t
lock_bucket(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = id; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % LOCK_BUCKETS;
}

/* 0 if we got the lock, -1 if another session holds it. */
static int
maildrop_lock(const char *id)
{
	size_t b = lock_bucket(id);
	int r = 0;

	pthread_mutex_lock(&maildrop_mutex);
	for (struct lock_entry *e = maildrop_locks[b]; e != NULL; e = e->next) {
		if (strcmp(e->id, id) == 0) {
			r = -1;
			break;
		}
	}
	if (r == 0) {
		size_t n = strlen(id);
		struct lock_entry *e = xmalloc(sizeof(*e) + n + 1);
		memcpy(e->id, id, n + 1);
		e->next = maildrop_locks[b];
		maildrop_locks[b] = e;
	}
	pthread_mutex_unlock(&maildrop_mutex);
	return r;
}

static void
maildrop_unlock(const char *id)
{
	size_t b = lock_bucket(id);

	pthread_mutex_lock(&maildrop_mutex);
	for (struct lock_entry **pp = &maildrop_locks[b]; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			struct lock_entry *e = *pp;
			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&maildrop_mutex);
}

static void
maildrop_release(struct pop3_session *s)
{
	if (s->locked)
		maildrop_unlock(s->user_id);
	s->locked = false;
}

/* ---- replies and helpers ---- */

static void reply(struct pop3_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	buf_reset(&s->reply);
	va_start(ap, fmt);
	int r = buf_vprintf(&s->reply, fmt, ap);
	va_end(ap);
	if (r < 0 || buf_append(&s->reply, "\r\n", 2) < 0) {
		/* Our bug (peer text is never echoed); never a crash. */
		log_error(s->conn.id, s->conn.service, "reply-too-long");
		buf_reset(&s->reply);
		buf_append_str(&s->reply, "-ERR [SYS/TEMP] Internal error\r\n");
	}
	conn_write(&s->conn, s->reply.data, s->reply.len);
}

static void
write_str(struct pop3_session *s, const char *text)
{
	conn_write(&s->conn, text, strlen(text));
}

/* A peer-supplied name made safe for one key="value" in a log line
 * (valid until the next call: one per log line). */
static const char *
log_safe(struct pop3_session *s, const char *text)
{
	buf_reset(&s->logname);
	buf_append(&s->logname, text, strnlen(text, 128));
	for (size_t i = 0; i < s->logname.len; i++) {
		unsigned char ch = (unsigned char)s->logname.data[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			s->logname.data[i] = '?';
	}
	return buf_cstr(&s->logname);
}

/* A peer mistake; the tenth closes the session. Call after its reply. */
static void
bad_command(struct pop3_session *s)
{
	if (++s->errors < POP3_MAX_ERRORS)
		return;
	log_info(s->conn.id, s->conn.service, "too-many-errors ip=%s errors=%u", s->conn.peer_ip,
		 s->errors);
	conn_close(&s->conn, "too many errors");
}

/* Password auth needs TLS unless the listener allows it in the clear. */
static bool
password_auth_allowed(const struct pop3_session *s)
{
	return s->conn.tls || s->cfg->listeners[s->svc].plaintext_auth;
}

static bool
stls_available(const struct pop3_session *s)
{
	if (s->conn.tls)
		return false;
	SSL_CTX *ctx = tls_ctx_acquire();
	if (ctx == NULL)
		return false;
	SSL_CTX_free(ctx);
	return true;
}

static void
reply_plaintext_disallowed(struct pop3_session *s)
{
	reply(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; "
		 "use STLS");
}

/* ---- authentication ---- */

static void
login_ok(struct pop3_session *s, const struct dir_user *u)
{
	const char *who = u->login != NULL && u->login[0] != '\0' ? u->login : u->id;

	if (maildrop_lock(u->id) < 0) {
		log_info(s->conn.id, s->conn.service, "maildrop user=\"%s\" result=in-use ip=%s",
			 log_safe(s, who), s->conn.peer_ip);
		reply(s, "-ERR [IN-USE] Mailbox locked by another session");
		return;
	}
	s->user_id = xstrdup(u->id);
	s->locked = true;

	struct store_mailbox_info info;
	struct store_msg_info *m = NULL;
	size_t n = 0;
	int r = store_mailbox_list(s->user_id, POP3_MAILBOX, s->mbox, &info, &m, &n);
	if (r != STORE_OK) {
		log_warn(s->conn.id, s->conn.service,
			 "maildrop user=\"%s\" result=tempfail ip=%s reason=\"store: %s\"",
			 log_safe(s, who), s->conn.peer_ip, store_strerror(r));
		maildrop_release(s);
		free(s->user_id);
		s->user_id = NULL;
		arena_clear(s->mbox);
		reply(s, "-ERR [SYS/TEMP] Mailbox temporarily unavailable, try again later");
		return;
	}
	s->user_login = xstrdup(who);
	s->uidvalidity = info.uidvalidity;
	s->msgs = arena_alloc(s->mbox, (n > 0 ? n : 1) * sizeof(*s->msgs));
	s->nmsgs = n;
	s->nlive = n;
	s->live_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		s->msgs[i].uid = m[i].uid;
		s->msgs[i].size = m[i].size;
		s->live_bytes += m[i].size;
	}
	s->state = ST_TRANS;
	log_info(s->conn.id, s->conn.service,
		 "maildrop user=\"%s\" result=ok messages=%zu octets=%" PRIu64, log_safe(s, who), n,
		 s->live_bytes);
	reply(s, "+OK Logged in, %zu messages (%" PRIu64 " octets)", s->nlive, s->live_bytes);
}

static void
auth_done(struct conn *c, enum auth_outcome outcome, const struct dir_user *u)
{
	struct pop3_session *s = (struct pop3_session *)c;

	if (outcome == AUTH_OK) {
		login_ok(s, u);
		return;
	}
	if (outcome == AUTH_TEMPFAIL) {
		reply(s, "-ERR [SYS/TEMP] Directory temporarily unavailable, try again later");
		return;
	}
	reply(s, "-ERR [AUTH] Authentication failed");
	unsigned max = s->cfg->max_auth_failures;
	if (max > 0 && ++s->auth_failures >= max) {
		log_info(c->id, c->service, "too-many-auth-failures ip=%s failures=%u", c->peer_ip,
			 s->auth_failures);
		conn_close(c, "too many authentication failures");
	}
}

/* Acts on one step of an AUTH exchange. */
static void
sasl_step(struct pop3_session *s, enum auth_sasl_step step, const char *challenge)
{
	s->in_sasl = false;
	switch (step) {
	case AUTH_SASL_CHALLENGE:
		s->in_sasl = true;
		conn_printf(&s->conn, "+ %s\r\n", challenge);
		return;
	case AUTH_SASL_CHECK:
		auth_sasl_check(&s->sasl, auth_done);
		auth_sasl_reset(&s->sasl);
		return;
	case AUTH_SASL_WAIT:
		return; /* the directory answers later, through sasl_resume */
	case AUTH_SASL_CANCEL:
		reply(s, "-ERR [AUTH] Authentication cancelled");
		break;
	case AUTH_SASL_UNKNOWN:
		reply(s, "-ERR [AUTH] Unsupported mechanism");
		bad_command(s);
		break;
	case AUTH_SASL_BAD:
		reply(s, "-ERR [AUTH] Invalid SASL response");
		bad_command(s);
		break;
	}
	auth_sasl_reset(&s->sasl);
}

static void
sasl_resume(struct conn *c, enum auth_sasl_step step, const char *challenge)
{
	sasl_step((struct pop3_session *)c, step, challenge);
}

/* ---- AUTHORIZATION commands ---- */

static void
cmd_user(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!password_auth_allowed(s)) {
		reply_plaintext_disallowed(s);
		return;
	}
	buf_wipe(&s->user);
	s->have_user = false;
	if (strlen(cmd->args[0]) > POP3_LOGIN_MAX || buf_append_str(&s->user, cmd->args[0]) < 0) {
		reply(s, "-ERR [AUTH] User name too long");
		bad_command(s);
		return;
	}
	s->have_user = true;
	reply(s, "+OK");
}

static void
cmd_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!password_auth_allowed(s)) {
		reply_plaintext_disallowed(s);
		return;
	}
	if (!s->have_user) {
		reply(s, "-ERR Send USER first");
		bad_command(s);
		return;
	}
	/* RFC 1939: after PASS, right or wrong, USER starts over. */
	s->have_user = false;
	auth_check(&s->conn, s->cfg, "USER", buf_cstr(&s->user), cmd->args[0], strlen(cmd->args[0]),
		   false, auth_done);
	buf_wipe(&s->user);
}

static void
cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!password_auth_allowed(s)) {
		reply_plaintext_disallowed(s);
		return;
	}
	s->have_user = false;
	if (cmd->nargs == 0) {
		/* The mechanism list, one per line (RFC 5034 clients use
		 * CAPA, older ones send a bare AUTH). */
		struct buf list;
		buf_init(&list, 512);
		auth_sasl_mechanisms(&s->sasl, true, &list);
		write_str(s, "+OK\r\n");
		for (const char *p = buf_cstr(&list); *p != '\0';) {
			size_t n = strcspn(p, " ");
			if (n > 0) {
				conn_write(&s->conn, p, n);
				write_str(s, "\r\n");
			}
			p += n;
			p += strspn(p, " ");
		}
		buf_free(&list);
		write_str(s, ".\r\n");
		return;
	}
	const char *ir = cmd->nargs > 1 ? cmd->args[1] : NULL;
	const char *challenge;
	enum auth_sasl_step step =
	    auth_sasl_start(&s->sasl, cmd->args[0], ir, ir != NULL ? strlen(ir) : 0, &challenge);
	sasl_step(s, step, challenge);
}

static void
cmd_stls(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	if (s->conn.tls) {
		reply(s, "-ERR Already using TLS");
		bad_command(s);
		return;
	}
	if (!stls_available(s)) {
		reply(s, "-ERR TLS not available");
		bad_command(s);
		return;
	}
	reply(s, "+OK Begin TLS negotiation");
	if (conn_starttls(&s->conn) < 0) {
		log_warn(s->conn.id, s->conn.service, "starttls-failed ip=%s", s->conn.peer_ip);
		conn_close(&s->conn, "STLS failed");
		return;
	}
	/* Nothing said in the clear carries over (RFC 2595 section 4). */
	s->have_user = false;
	buf_wipe(&s->user);
	log_info(s->conn.id, s->conn.service, "starttls ip=%s", s->conn.peer_ip);
}

/* ---- commands in both states ---- */

static void
cmd_capa(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	write_str(s, "+OK Capability list follows\r\n"
		     "TOP\r\n"
		     "UIDL\r\n"
		     "RESP-CODES\r\n"
		     "AUTH-RESP-CODE\r\n"
		     "PIPELINING\r\n");
	if (s->state == ST_AUTHZ) {
		if (password_auth_allowed(s)) {
			write_str(s, "USER\r\n");
			struct buf mechs;
			buf_init(&mechs, 512);
			auth_sasl_mechanisms(&s->sasl, true, &mechs);
			conn_printf(&s->conn, "SASL %s\r\n", buf_cstr(&mechs));
			buf_free(&mechs);
		}
		if (stls_available(s))
			write_str(s, "STLS\r\n");
	}
	write_str(s, "IMPLEMENTATION Tern\r\n.\r\n");
}

static void
log_logout(struct pop3_session *s, size_t deleted)
{
	s->logged_out = true;
	log_info(s->conn.id, s->conn.service, "logout user=\"%s\" retr=%u dele=%u deleted=%zu",
		 log_safe(s, s->user_login != NULL ? s->user_login : ""), s->nretr, s->ndele,
		 deleted);
}

static void
expunge_done(struct store_expunge *e, void *arg)
{
	struct pop3_session *s = arg;

	if (e->status == STORE_OK) {
		log_logout(s, e->expunged);
		if (!s->conn.closed)
			reply(s, "+OK Bye");
	} else {
		log_warn(s->conn.id, s->conn.service, "expunge-failed user=\"%s\" reason=\"%s\"",
			 log_safe(s, s->user_login), store_strerror(e->status));
		if (!s->conn.closed)
			reply(s, "-ERR [SYS/TEMP] Could not delete messages, none were deleted");
	}
	/* The maildrop is finished: a new session may have it now. */
	maildrop_release(s);
	conn_close(&s->conn, "quit");
	conn_resume(&s->conn);
	conn_unref(&s->conn);
}

static void
cmd_quit(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	if (s->state != ST_TRANS) {
		reply(s, "+OK Bye");
		conn_close(&s->conn, "quit");
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < s->nmsgs; i++)
		n += s->msgs[i].deleted;
	if (n == 0) {
		log_logout(s, 0);
		maildrop_release(s);
		reply(s, "+OK Bye");
		conn_close(&s->conn, "quit");
		return;
	}
	/* UPDATE state (RFC 1939 section 6). */
	uint32_t *uids = arena_alloc(s->mbox, n * sizeof(*uids));
	size_t k = 0;
	for (size_t i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			uids[k++] = s->msgs[i].uid;
	}
	struct store_expunge *e = &s->expunge;
	memset(e, 0, sizeof(*e));
	e->user_id = s->user_id;
	e->mailbox = POP3_MAILBOX;
	e->uids = uids;
	e->nuids = n;
	e->worker = s->conn.worker;
	e->done = expunge_done;
	e->arg = s;
	conn_pause(&s->conn);
	conn_ref(&s->conn);
	store_expunge(e);
}

/* ---- TRANSACTION commands ---- */

/* The message a number argument names, or NULL after replying -ERR. */
static struct pop3_msg *
msg_arg(struct pop3_session *s, const char *arg, uint64_t *num_r)
{
	uint64_t n;

	if (pop3_parse_number(arg, UINT32_MAX, &n) < 0 || n == 0 || n > s->nmsgs) {
		reply(s, "-ERR no such message");
		return NULL;
	}
	struct pop3_msg *m = &s->msgs[n - 1];
	if (m->deleted) {
		reply(s, "-ERR Message %" PRIu64 " already deleted", n);
		return NULL;
	}
	*num_r = n;
	return m;
}

static void
cmd_stat(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	reply(s, "+OK %zu %" PRIu64, s->nlive, s->live_bytes);
}

static void
cmd_list(struct pop3_session *s, const struct pop3_command *cmd)
{
	uint64_t n;

	if (cmd->nargs == 1) {
		struct pop3_msg *m = msg_arg(s, cmd->args[0], &n);
		if (m != NULL)
			reply(s, "+OK %" PRIu64 " %" PRIu64, n, m->size);
		return;
	}
	reply(s, "+OK %zu messages (%" PRIu64 " octets)", s->nlive, s->live_bytes);
	for (size_t i = 0; i < s->nmsgs; i++) {
		if (!s->msgs[i].deleted)
			conn_printf(&s->conn, "%zu %" PRIu64 "\r\n", i + 1, s->msgs[i].size);
	}
	write_str(s, ".\r\n");
}

static void
cmd_uidl(struct pop3_session *s, const struct pop3_command *cmd)
{
	uint64_t n;

	/* UIDVALIDITY.UID never repeats within a mailbox (RFC 1939 wants the
	 * unique-id to be 1-70 characters 0x21-0x7E, persistent). */
	if (cmd->nargs == 1) {
		struct pop3_msg *m = msg_arg(s, cmd->args[0], &n);
		if (m != NULL)
			reply(s, "+OK %" PRIu64 " %" PRIu32 ".%" PRIu32, n, s->uidvalidity, m->uid);
		return;
	}
	write_str(s, "+OK\r\n");
	for (size_t i = 0; i < s->nmsgs; i++) {
		if (!s->msgs[i].deleted)
			conn_printf(&s->conn, "%zu %" PRIu32 ".%" PRIu32 "\r\n", i + 1,
				    s->uidvalidity, s->msgs[i].uid);
	}
	write_str(s, ".\r\n");
}

static void
emit_conn(void *arg, const void *data, size_t len)
{
	conn_write(arg, data, len);
}

/* RETR and TOP: body_lines < 0 for the whole message. */
static void
send_message(struct pop3_session *s, const char *arg, int64_t body_lines)
{
	uint64_t n;
	struct pop3_msg *m = msg_arg(s, arg, &n);
	if (m == NULL)
		return;
	struct buf out;
	uint64_t cap = m->size + POP3_READ_HEADROOM;
	buf_init(&out, cap > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)cap);
	int r = store_message_read(s->user_id, POP3_MAILBOX, m->uid, &out);
	if (r == STORE_NOTFOUND) {
		buf_free(&out);
		reply(s, "-ERR Message %" PRIu64 " no longer exists", n);
		return;
	}
	if (r != STORE_OK) {
		buf_free(&out);
		log_warn(s->conn.id, s->conn.service, "read-failed uid=%" PRIu32 " reason=\"%s\"",
			 m->uid, store_strerror(r));
		reply(s, "-ERR [SYS/TEMP] Cannot read message %" PRIu64 ", try again later", n);
		return;
	}
	if (body_lines < 0) {
		reply(s, "+OK %" PRIu64 " octets", m->size);
		s->nretr++;
	} else {
		reply(s, "+OK Top of message follows");
	}
	pop3_write_message(out.data != NULL ? out.data : "", out.len, body_lines, emit_conn,
			   &s->conn);
	buf_free(&out);
}

static void
cmd_retr(struct pop3_session *s, const struct pop3_command *cmd)
{
	send_message(s, cmd->args[0], -1);
}

static void
cmd_top(struct pop3_session *s, const struct pop3_command *cmd)
{
	uint64_t lines;

	if (pop3_parse_number(cmd->args[1], INT64_MAX, &lines) < 0) {
		reply(s, "-ERR Invalid number of lines");
		bad_command(s);
		return;
	}
	send_message(s, cmd->args[0], (int64_t)lines);
}

static void
cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
	uint64_t n;
	struct pop3_msg *m = msg_arg(s, cmd->args[0], &n);
	if (m == NULL)
		return;
	m->deleted = true;
	s->nlive--;
	s->live_bytes -= m->size;
	s->ndele++;
	reply(s, "+OK Message %" PRIu64 " deleted", n);
}

static void
cmd_rset(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	s->nlive = s->nmsgs;
	s->live_bytes = 0;
	for (size_t i = 0; i < s->nmsgs; i++) {
		s->msgs[i].deleted = false;
		s->live_bytes += s->msgs[i].size;
	}
	reply(s, "+OK Maildrop has %zu messages (%" PRIu64 " octets)", s->nlive, s->live_bytes);
}

static void
cmd_noop(struct pop3_session *s, const struct pop3_command *cmd)
{
	(void)cmd;
	reply(s, "+OK");
}

/* ---- dispatch ---- */

typedef void pop3_handler(struct pop3_session *s, const struct pop3_command *cmd);

/* The state rules live here (STYLE rule 15). */
static const struct {
	enum pop3_cmd cmd;
	unsigned states;
	pop3_handler *handler;
} commands[] = {
    {POP3_CMD_CAPA, ST_AUTHZ | ST_TRANS, cmd_capa},
    {POP3_CMD_QUIT, ST_AUTHZ | ST_TRANS, cmd_quit},
    {POP3_CMD_USER, ST_AUTHZ, cmd_user},
    {POP3_CMD_PASS, ST_AUTHZ, cmd_pass},
    {POP3_CMD_AUTH, ST_AUTHZ, cmd_auth},
    {POP3_CMD_STLS, ST_AUTHZ, cmd_stls},
    {POP3_CMD_STAT, ST_TRANS, cmd_stat},
    {POP3_CMD_LIST, ST_TRANS, cmd_list},
    {POP3_CMD_UIDL, ST_TRANS, cmd_uidl},
    {POP3_CMD_RETR, ST_TRANS, cmd_retr},
    {POP3_CMD_TOP, ST_TRANS, cmd_top},
    {POP3_CMD_DELE, ST_TRANS, cmd_dele},
    {POP3_CMD_RSET, ST_TRANS, cmd_rset},
    {POP3_CMD_NOOP, ST_TRANS, cmd_noop},
};

static void
pop3_on_line(struct conn *c, char *line, size_t len)
{
	struct pop3_session *s = (struct pop3_session *)c;
	struct pop3_command cmd;

	if (s->in_sasl) {
		const char *challenge;
		enum auth_sasl_step step = auth_sasl_continue(&s->sasl, line, len, &challenge);
		explicit_bzero(line, len);
		sasl_step(s, step, challenge);
		return;
	}
	int r = pop3_parse(line, len, &cmd);
	if (r == POP3_PARSE_OK) {
		size_t i;
		for (i = 0; i < ARRAY_SIZE(commands); i++) {
			if (commands[i].cmd == cmd.cmd)
				break;
		}
		if (i == ARRAY_SIZE(commands) || !(commands[i].states & s->state)) {
			reply(s, "-ERR Command not valid in this state");
			bad_command(s);
		} else {
			commands[i].handler(s, &cmd);
		}
	} else if (r == POP3_PARSE_ARGS) {
		reply(s, "-ERR Invalid arguments to %s", cmd.name);
		bad_command(s);
	} else {
		reply(s, "-ERR Unknown command");
		bad_command(s);
	}
	/* PASS and AUTH lines carry secrets; the line buffer is reused. */
	if (cmd.cmd == POP3_CMD_PASS || cmd.cmd == POP3_CMD_AUTH)
		explicit_bzero(line, len);
}

static void
pop3_on_line_too_long(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	if (s->in_sasl) {
		s->in_sasl = false;
		auth_sasl_reset(&s->sasl);
	}
	reply(s, "-ERR Line too long");
	bad_command(s);
}

static void
pop3_on_timeout(struct conn *c)
{
	struct pop3_session *s = (struct pop3_session *)c;

	log_info(c->id, c->service, "timeout ip=%s", c->peer_ip);
	reply(s, "-ERR Timeout, closing");
}

static void
pop3_on_close(struct conn *c, const char *reason)
{
	struct pop3_session *s = (struct pop3_session *)c;

	atomic_fetch_sub(&active_sessions[s->svc], 1);
	if (s->state == ST_TRANS && !s->logged_out && s->expunge.done == NULL)
		log_logout(s, 0); /* no QUIT: nothing deleted (RFC 1939 section 6) */
	log_info(c->id, c->service, "disconnect ip=%s reason=\"%s\"", c->peer_ip, reason);
}

static void
session_free(struct pop3_session *s)
{
	struct arena *a = s->arena;

	maildrop_release(s);
	auth_sasl_reset(&s->sasl); /* leaves nothing allocated */
	free(s->user_id);
	free(s->user_login);
	buf_free(&s->reply);
	buf_wipe(&s->user);
	buf_free(&s->logname);
	arena_destroy(&s->mbox);
	config_release(s->cfg);
	arena_destroy(&a); /* s lives in it */
}

static void
pop3_on_free(struct conn *c)
{
	session_free((struct pop3_session *)c);
}

static const struct conn_ops pop3_conn_ops = {
    .on_line = pop3_on_line,
    .on_line_too_long = pop3_on_line_too_long,
    .on_timeout = pop3_on_timeout,
    .on_close = pop3_on_close,
    .on_free = pop3_on_free,
};

void
pop3_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen, enum service svc)
{
	struct arena *a = arena_new(0);
	struct pop3_session *s = arena_alloc(a, sizeof(*s));
	struct config *cfg = config_acquire();
	const struct listener_config *lc = &cfg->listeners[svc];

	s->arena = a;
	s->cfg = cfg;
	s->svc = svc;
	s->state = ST_AUTHZ;
	s->mbox = arena_new(0);
	buf_init(&s->reply, POP3_REPLY_MAX);
	buf_init(&s->user, POP3_LOGIN_MAX + 1);
	auth_sasl_init(&s->sasl);
	auth_sasl_attach(&s->sasl, &s->conn, cfg, "pop", sasl_resume);
	buf_init(&s->logname, 256);

	struct conn_params params = {
	    .max_line = lc->max_line > 0 ? lc->max_line : POP3_DEFAULT_MAX_LINE,
	    .idle_timeout = lc->idle_timeout,
	    .implicit_tls = lc->implicit_tls,
	};
	if (conn_init(&s->conn, w, fd, sa, salen, config_service_name(svc), &pop3_conn_ops,
		      &params) < 0) {
		log_error(0, config_service_name(svc), "accept-failed reason=\"conn_init\"");
		session_free(s);
		return;
	}
	unsigned n = atomic_fetch_add(&active_sessions[svc], 1) + 1;
	log_info(s->conn.id, s->conn.service, "connect ip=%s port=%d tls=%s", s->conn.peer_ip,
		 s->conn.peer_port, s->conn.tls ? "yes" : "no");
	if (lc->max_connections > 0 && n > lc->max_connections) {
		log_warn(s->conn.id, s->conn.service, "too-many-connections ip=%s limit=%u",
			 s->conn.peer_ip, lc->max_connections);
		reply(s, "-ERR [SYS/TEMP] Too many connections, try again later");
		conn_close(&s->conn, "too many connections");
		return;
	}
	reply(s, "+OK Tern POP3 server ready");
}
