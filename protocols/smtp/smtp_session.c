/*
 * smtp_session.c - the inbound SMTP server (RFC 5321) on port 25, with
 * PIPELINING (2920), SIZE (1870), 8BITMIME (6152), ENHANCEDSTATUSCODES
 * (2034, codes from 5248) and STARTTLS (3207). Mail is accepted only for
 * the local domains ([server] domains); recipients are resolved through
 * the directory and the message is handed to the store writer.
 *
 * One session per connection, on its worker thread. Lines arrive through
 * the embedded conn; a command goes through the parser, then the command
 * table (state rules), then its handler. While the directory or the store
 * works, the conn is paused (replies stay in order under pipelining) and
 * referenced (the session outlives a peer that hangs up meanwhile).
 *
 * Failure: every peer mistake gets a reply (4xx/5xx); ten of them end the
 * session with 421. A store failure answers 4xx so the sender retries;
 * 250 goes out only from the store's callback, after the commit is
 * durable. A failure for some recipients of a message that others already
 * got is answered 4xx as well: a duplicate is better than a loss.
 *
 * Choices where the RFCs leave room: DATA without an accepted recipient
 * is 503 5.5.1 (whether or not some RCPT was refused); a message line
 * over 1 MiB fails the message with 554 5.6.0 after reading to the end;
 * MAIL and RCPT syntax errors are 501 5.1.7 / 501 5.1.3 with the parser's
 * reason; HELO/EHLO arguments must be an RFC 5321 Domain or address
 * literal. The end of data must be <CR><LF>.<CR><LF> (see smtp_data.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "storage/store.h"
#include "smtp_data.h"
#include "smtp_parser.h"
#include "smtp_session.h"

#define SMTP_MAX_ERRORS 10
#define SMTP_DEFAULT_MAX_LINE 2048
/* DATA lines may be far longer than commands (RFC 5321 says 998, real
 * mail breaks it); beyond this the message fails but is read to the end. */
#define SMTP_DATA_MAX_LINE (1024 * 1024)
/* Room in the body buffer for our Received header. */
#define SMTP_BODY_HEADROOM 8192
#define SMTP_REPLY_MAX 4096

enum smtp_state {
	ST_CONNECTED = 1 << 0, /* before HELO/EHLO (again after STARTTLS) */
	ST_GREETED = 1 << 1,   /* no transaction */
	ST_MAIL = 1 << 2,      /* MAIL accepted, no recipient yet */
	ST_RCPT = 1 << 3,      /* at least one recipient accepted */
	ST_DATA = 1 << 4,      /* reading the message; lines bypass the table */
};
#define ST_COMMAND (ST_CONNECTED | ST_GREETED | ST_MAIL | ST_RCPT)

/* One mailbox that gets the message: each user once, however reached. */
struct smtp_target {
	const char *user_id; /* owned by the tx arena */
	uint64_t quota;
	const char *rcpt; /* the RCPT address that reached it first (tx arena) */
};

struct smtp_session {
	struct conn conn;    /* first: the conn pointer is the session pointer */
	struct arena *arena; /* owns this struct */
	struct config *cfg;  /* owned reference, released on free */
	enum service svc;
	unsigned state;
	bool esmtp;
	struct buf helo;  /* the HELO/EHLO argument */
	struct buf reply; /* formatting scratch for one reply */
	unsigned errors;
	unsigned msgs;	      /* messages accepted */
	unsigned rcpts_total; /* recipients accepted, all transactions */

	/* ---- the transaction; everything below is reset together ---- */
	struct arena *tx; /* owned; cleared by reset_transaction() */
	uint64_t msg_id;
	const char *sender; /* tx arena; "" for <> */
	unsigned nrcpts;    /* RCPT commands accepted */
	const char *first_rcpt;
	struct smtp_target *targets; /* tx arena */
	size_t ntargets, targets_cap;
	uint32_t *index; /* open addressing over targets, 1-based, tx arena */
	size_t index_cap;
	struct buf body; /* Received header + message, CRLF */
	struct smtp_data data;
	struct store_delivery *delivery; /* tx arena; in flight until done() */

	/* The RCPT being resolved (directory callback pending). */
	struct buf pending_given;
	struct buf pending_lower;
};

static _Atomic unsigned active_sessions[SVC_COUNT];

static void reply(struct smtp_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	buf_reset(&s->reply);
	va_start(ap, fmt);
	int r = buf_vprintf(&s->reply, fmt, ap);
	va_end(ap);
	if (r < 0 || buf_append(&s->reply, "\r\n", 2) < 0) {
		/* Our bug (peer text is cut with %.Ns); never a crash. */
		log_error(s->conn.id, s->conn.service, "reply-too-long");
		buf_reset(&s->reply);
		buf_append_str(&s->reply, "451 4.3.0 Internal error\r\n");
	}
	conn_write(&s->conn, s->reply.data, s->reply.len);
}

static const char *
svc_name(const struct smtp_session *s)
{
	return s->conn.service;
}

static void
reset_transaction(struct smtp_session *s)
{
	arena_clear(s->tx);
	s->msg_id = 0;
	s->sender = NULL;
	s->nrcpts = 0;
	s->first_rcpt = NULL;
	s->targets = NULL;
	s->ntargets = s->targets_cap = 0;
	s->index = NULL;
	s->index_cap = 0;
	buf_free(&s->body);
	s->delivery = NULL;
	if (s->state != ST_CONNECTED)
		s->state = ST_GREETED;
}

/* A peer mistake; the tenth ends the session. Call after its reply. */
static void
bad_command(struct smtp_session *s)
{
	if (++s->errors < SMTP_MAX_ERRORS)
		return;
	reply(s, "421 4.7.0 Too many errors");
	log_info(s->conn.id, svc_name(s), "too-many-errors ip=%s errors=%u", s->conn.peer_ip,
		 s->errors);
	conn_close(&s->conn, "too many errors");
}

/* ---- recipients: each mailbox once ---- */

static uint32_t
hash_str(const char *p)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

static void
index_insert(struct smtp_session *s, size_t target)
{
	size_t mask = s->index_cap - 1;
	size_t i = hash_str(s->targets[target].user_id) & mask;

	while (s->index[i] != 0)
		i = (i + 1) & mask;
	s->index[i] = (uint32_t)(target + 1);
}

/* Adds a mailbox unless it is already a target. */
static void
add_target(struct smtp_session *s, const struct dir_user *u, const char *rcpt)
{
	if (s->index_cap > 0) {
		size_t mask = s->index_cap - 1;
		for (size_t i = hash_str(u->id) & mask; s->index[i] != 0; i = (i + 1) & mask) {
			if (strcmp(s->targets[s->index[i] - 1].user_id, u->id) == 0)
				return;
		}
	}
	if (s->ntargets == s->targets_cap) {
		/* Arena memory is not reallocated; doubling bounds the waste. */
		size_t cap = s->targets_cap == 0 ? 8 : s->targets_cap * 2;
		struct smtp_target *t = arena_alloc(s->tx, cap * sizeof(*t));
		if (s->ntargets > 0)
			memcpy(t, s->targets, s->ntargets * sizeof(*t));
		s->targets = t;
		s->targets_cap = cap;
		s->index_cap = cap * 2; /* load factor at most 1/2 */
		s->index = arena_alloc(s->tx, s->index_cap * sizeof(*s->index));
		for (size_t k = 0; k < s->ntargets; k++)
			index_insert(s, k);
	}
	struct smtp_target *t = &s->targets[s->ntargets];
	t->user_id = arena_strdup(s->tx, u->id);
	t->quota = u->quota;
	t->rcpt = rcpt;
	index_insert(s, s->ntargets);
	s->ntargets++;
}

/* ---- command handlers ---- */

static void
cmd_helo(struct smtp_session *s, struct smtp_cmd *cmd)
{
	const struct config *cfg = s->cfg;

	reset_transaction(s);
	buf_reset(&s->helo);
	buf_append_str(&s->helo, cmd->arg); /* a valid domain fits the cap */
	s->esmtp = cmd->verb == SMTP_VERB_EHLO;
	s->state = ST_GREETED;
	log_info(s->conn.id, svc_name(s), "helo name=%s esmtp=%s", buf_cstr(&s->helo),
		 s->esmtp ? "yes" : "no");
	if (!s->esmtp) {
		reply(s, "250 %s", cfg->hostname);
		return;
	}

	bool starttls = false;
	if (!s->conn.tls) {
		SSL_CTX *ctx = tls_ctx_acquire();
		if (ctx != NULL) {
			starttls = true;
			SSL_CTX_free(ctx);
		}
	}
	reply(s, "250-%s Hello %s [%s]", cfg->hostname, cmd->arg, s->conn.peer_ip);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %" PRIu64, cfg->message_size_max);
	reply(s, "250-8BITMIME");
	if (starttls) {
		reply(s, "250-ENHANCEDSTATUSCODES");
		reply(s, "250 STARTTLS");
	} else {
		reply(s, "250 ENHANCEDSTATUSCODES");
	}
}

/* Decimal, overflow-checked. */
static int
parse_u64(const char *p, uint64_t *v_r)
{
	uint64_t v = 0;

	if (*p == '\0')
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*v_r = v;
	return 0;
}

static void
cmd_mail(struct smtp_session *s, struct smtp_cmd *cmd)
{
	uint64_t size = 0;
	bool have_size = false, have_body = false;

	for (size_t i = 0; i < cmd->nparams; i++) {
		const struct smtp_param *p = &cmd->params[i];
		if (strcasecmp(p->keyword, "SIZE") == 0) {
			if (have_size || p->value == NULL || parse_u64(p->value, &size) < 0) {
				reply(s, "501 5.5.4 Bad SIZE parameter");
				bad_command(s);
				return;
			}
			have_size = true;
		} else if (strcasecmp(p->keyword, "BODY") == 0) {
			if (have_body || p->value == NULL) {
				reply(s, "501 5.5.4 Bad BODY parameter");
				bad_command(s);
				return;
			}
			if (strcasecmp(p->value, "7BIT") != 0 &&
			    strcasecmp(p->value, "8BITMIME") != 0) {
				reply(s, "555 5.5.4 Unsupported BODY type: %.64s", p->value);
				bad_command(s);
				return;
			}
			have_body = true;
		} else {
			reply(s, "555 5.5.4 Unsupported option: %.64s", p->keyword);
			bad_command(s);
			return;
		}
	}
	if (have_size && size > s->cfg->message_size_max) {
		log_info(s->conn.id, svc_name(s), "mail from=<%s> size=%" PRIu64 " result=too-big",
			 cmd->address, size);
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	reset_transaction(s);
	s->sender = arena_strdup(s->tx, cmd->address);
	s->msg_id = log_new_id();
	s->state = ST_MAIL;
	log_info(s->conn.id, svc_name(s), "mail from=<%s> size=%" PRIu64 " id=%016" PRIx64,
		 s->sender, size, s->msg_id);
	reply(s, "250 2.1.0 Ok");
}

static void
log_rcpt(struct smtp_session *s, const char *addr, const char *result)
{
	log_info(s->conn.id, svc_name(s), "rcpt to=<%s> result=%s", addr, result);
}

static void
rcpt_done(void *arg, const struct dir_rcpt_result *res)
{
	struct smtp_session *s = arg;
	struct conn *c = &s->conn;
	const char *given = buf_cstr(&s->pending_given);

	if (c->closed) {
		conn_unref(c);
		return;
	}
	switch (res->status) {
	case DIR_OK:
		if (res->nusers > 0) {
			const char *rcpt = arena_strdup(s->tx, given);
			for (size_t i = 0; i < res->nusers; i++)
				add_target(s, &res->users[i], rcpt);
			if (s->nrcpts++ == 0)
				s->first_rcpt = rcpt;
			s->rcpts_total++;
			s->state = ST_RCPT;
			if (res->nforwards > 0)
				/* XXX: forwards need the outbound queue. */
				log_warn(c->id, svc_name(s),
					 "rcpt to=<%s> forwards=%zu reason=\"forwarding not "
					 "supported yet, delivered locally only\"",
					 given, res->nforwards);
			log_info(c->id, svc_name(s), "rcpt to=<%s> result=ok mailboxes=%zu", given,
				 res->nusers);
			reply(s, "250 2.1.5 Ok");
		} else if (res->nforwards > 0) {
			log_rcpt(s, given, "not-local");
			reply(s, "551 5.1.6 User not local; please try <%s>", res->forwards[0]);
		} else {
			log_rcpt(s, given, "no-mailbox");
			reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", given);
		}
		break;
	case DIR_TEMPFAIL:
		log_info(c->id, svc_name(s), "rcpt to=<%s> result=tempfail reason=\"%s\"", given,
			 res->error != NULL ? res->error : dir_strerror(res->status));
		reply(s, "451 4.4.3 Directory temporarily unavailable, try again later");
		break;
	case DIR_NOTFOUND:
		log_rcpt(s, given, "unknown");
		reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", given);
		break;
	default:
		log_warn(c->id, svc_name(s), "rcpt to=<%s> result=permfail reason=\"%s\"", given,
			 res->error != NULL ? res->error : dir_strerror(res->status));
		reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", given);
		break;
	}
	conn_resume(c);
	conn_unref(c);
}

static void
cmd_rcpt(struct smtp_session *s, struct smtp_cmd *cmd)
{
	const struct config *cfg = s->cfg;

	if (cmd->nparams > 0) {
		reply(s, "555 5.5.4 Unsupported option: %.64s", cmd->params[0].keyword);
		bad_command(s);
		return;
	}
	buf_reset(&s->pending_given);
	buf_reset(&s->pending_lower);
	if (cmd->postmaster) {
		/* RFC 5321 4.5.1: <Postmaster> is the postmaster of our
		 * primary domain. */
		if (cfg->ndomains == 0) {
			reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown",
			      cmd->address);
			return;
		}
		buf_printf(&s->pending_given, "postmaster@%s", cfg->domains[0]);
	} else {
		buf_append_str(&s->pending_given, cmd->address);
	}
	const char *given = buf_cstr(&s->pending_given);
	for (const char *p = given; *p != '\0'; p++)
		buf_putc(&s->pending_lower, (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p));
	const char *lower = buf_cstr(&s->pending_lower);
	const char *domain = strrchr(lower, '@');
	domain = domain != NULL ? domain + 1 : "";

	if (cmd->domain_literal || !config_is_local_domain(cfg, domain)) {
		log_rcpt(s, given, "relay-denied");
		reply(s, "550 5.7.1 Relaying denied");
		return;
	}
	if (cfg->max_recipients > 0 && s->nrcpts >= cfg->max_recipients) {
		log_rcpt(s, given, "too-many");
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	conn_pause(&s->conn);
	conn_ref(&s->conn);
	dir_resolve_rcpt(s->conn.worker, lower, rcpt_done, s);
}

static void
write_received(struct smtp_session *s)
{
	char date[64];
	struct tm tm;
	time_t now = time(NULL);
	const char *with = s->esmtp ? (s->conn.tls ? "ESMTPS" : "ESMTP") : "SMTP";

	localtime_r(&now, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		date[0] = '\0';
	buf_printf(&s->body, "Received: from %s ([%s]) by %s (Tern) with %s id %016" PRIx64,
		   buf_cstr(&s->helo), s->conn.peer_ip, s->cfg->hostname, with, s->msg_id);
	if (s->nrcpts == 1)
		buf_printf(&s->body, " for <%s>", s->first_rcpt);
	buf_printf(&s->body, "; %s\r\n", date);
}

static void
cmd_data(struct smtp_session *s, struct smtp_cmd *cmd)
{
	uint64_t max = s->cfg->message_size_max;
	size_t cap =
	    max > SIZE_MAX - SMTP_BODY_HEADROOM ? SIZE_MAX : (size_t)max + SMTP_BODY_HEADROOM;

	buf_init(&s->body, cap);
	write_received(s);
	smtp_data_init(&s->data, &s->body, max);
	s->state = ST_DATA;
	conn_set_max_line(&s->conn, SMTP_DATA_MAX_LINE);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reset_transaction(s);
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "221 2.0.0 Bye");
	conn_close(&s->conn, "quit");
}

static void
cmd_vrfy(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct smtp_session *s, struct smtp_cmd *cmd)
{
	/* Mailing list membership is not for strangers. */
	reply(s, "502 5.5.1 EXPN not available");
}

static void
cmd_help(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS");
}

static void
cmd_starttls(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (s->conn.tls) {
		reply(s, "503 5.5.1 Error: TLS already active");
		bad_command(s);
		return;
	}
	SSL_CTX *ctx = tls_ctx_acquire();
	if (ctx == NULL) {
		reply(s, "454 4.7.0 TLS not available");
		return;
	}
	SSL_CTX_free(ctx);
	reply(s, "220 2.0.0 Ready to start TLS");
	if (conn_starttls(&s->conn) < 0) {
		log_warn(s->conn.id, svc_name(s), "starttls-failed ip=%s", s->conn.peer_ip);
		conn_close(&s->conn, "STARTTLS failed");
		return;
	}
	/* RFC 3207 4.2: forget everything learnt in the clear. */
	s->state = ST_CONNECTED;
	reset_transaction(s);
	buf_reset(&s->helo);
	s->esmtp = false;
	log_info(s->conn.id, svc_name(s), "starttls ip=%s", s->conn.peer_ip);
}

/* The command table (STYLE rule 15): where each command may come, what a
 * command out of place is told, and what a malformed one is told. */
struct smtp_command {
	enum smtp_verb verb;
	unsigned states;
	void (*handler)(struct smtp_session *s, struct smtp_cmd *cmd);
	const char *out_of_sequence; /* 503 text in a wrong state */
	const char *before_helo;     /* 503 text before HELO, if different */
	const char *syntax;	     /* 501 reply */
	bool explain;		     /* add the parser's reason to the 501 */
};

static const struct smtp_command commands[] = {
    {SMTP_VERB_HELO, ST_COMMAND, cmd_helo, NULL, NULL, "501 5.5.4 Syntax: HELO hostname", false},
    {SMTP_VERB_EHLO, ST_COMMAND, cmd_helo, NULL, NULL, "501 5.5.4 Syntax: EHLO hostname", false},
    {SMTP_VERB_MAIL, ST_GREETED, cmd_mail, "503 5.5.1 Error: nested MAIL command",
     "503 5.5.1 Error: send HELO/EHLO first", "501 5.1.7 Bad sender address syntax", true},
    {SMTP_VERB_RCPT, ST_MAIL | ST_RCPT, cmd_rcpt, "503 5.5.1 Error: need MAIL command", NULL,
     "501 5.1.3 Bad recipient address syntax", true},
    {SMTP_VERB_DATA, ST_RCPT, cmd_data, "503 5.5.1 Error: need RCPT command", NULL,
     "501 5.5.4 Syntax: DATA", false},
    {SMTP_VERB_RSET, ST_COMMAND, cmd_rset, NULL, NULL, "501 5.5.4 Syntax: RSET", false},
    {SMTP_VERB_NOOP, ST_COMMAND, cmd_noop, NULL, NULL, "501 5.5.4 Syntax: NOOP", false},
    {SMTP_VERB_QUIT, ST_COMMAND, cmd_quit, NULL, NULL, "501 5.5.4 Syntax: QUIT", false},
    {SMTP_VERB_VRFY, ST_COMMAND, cmd_vrfy, NULL, NULL, "501 5.5.4 Syntax: VRFY address", false},
    {SMTP_VERB_EXPN, ST_COMMAND, cmd_expn, NULL, NULL, "501 5.5.4 Syntax: EXPN list", false},
    {SMTP_VERB_HELP, ST_COMMAND, cmd_help, NULL, NULL, "501 5.5.4 Syntax: HELP", false},
    {SMTP_VERB_STARTTLS, ST_CONNECTED | ST_GREETED, cmd_starttls,
     "503 5.5.1 Error: MAIL transaction in progress", NULL,
     "501 5.5.4 Syntax: STARTTLS (no parameters allowed)", false},
};

static const struct smtp_command *
find_command(enum smtp_verb verb)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (commands[i].verb == verb)
			return &commands[i];
	}
	return NULL;
}

static void
handle_command(struct smtp_session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	int r = smtp_parse_command(line, len, &cmd);
	const struct smtp_command *def = find_command(cmd.verb);

	if (def == NULL) {
		reply(s, "500 5.5.2 Command unrecognized");
		bad_command(s);
		return;
	}
	if ((def->states & s->state) == 0) {
		const char *text = def->out_of_sequence;
		if (s->state == ST_CONNECTED && def->before_helo != NULL)
			text = def->before_helo;
		reply(s, "%s", text);
		bad_command(s);
		return;
	}
	if (r < 0) {
		if (def->explain)
			reply(s, "%s (%s)", def->syntax, smtp_parse_strerror(r));
		else
			reply(s, "%s", def->syntax);
		bad_command(s);
		return;
	}
	def->handler(s, &cmd);
}

/* ---- DATA and delivery ---- */

static void
delivery_done(struct store_delivery *d, void *arg)
{
	struct smtp_session *s = arg;
	struct conn *c = &s->conn;
	size_t ok = 0, tempfail = 0, overquota = 0, toobig = 0, permfail = 0;

	for (size_t i = 0; i < d->nrcpts; i++) {
		int st = d->status != STORE_OK ? d->status : d->rcpts[i].status;
		switch (st) {
		case STORE_OK:
			ok++;
			break;
		case STORE_OVERQUOTA:
			overquota++;
			break;
		case STORE_TOOBIG:
			toobig++;
			break;
		case STORE_PERMFAIL:
			permfail++;
			break;
		default: /* TEMPFAIL, and NOTFOUND, which a retry may cure */
			tempfail++;
			break;
		}
	}
	if (ok == d->nrcpts) {
		log_info(c->id, svc_name(s), "delivered id=%016" PRIx64 " size=%zu rcpts=%zu",
			 s->msg_id, d->body_len, d->nrcpts);
	} else {
		/* Those who got it keep it; a 4xx makes the sender retry and
		 * they get a second copy. Say so for the admin. */
		log_warn(c->id, svc_name(s),
			 "delivery-failed id=%016" PRIx64 " size=%zu ok=%zu tempfail=%zu "
			 "overquota=%zu toobig=%zu permfail=%zu status=\"%s\"",
			 s->msg_id, d->body_len, ok, tempfail, overquota, toobig, permfail,
			 store_strerror(d->status));
	}
	if (c->closed) {
		conn_unref(c);
		return;
	}
	if (ok == d->nrcpts) {
		s->msgs++;
		reply(s, "250 2.0.0 Ok: queued as %016" PRIx64, s->msg_id);
	} else if (tempfail > 0) {
		reply(s, "451 4.3.0 Error: local delivery failed, try again later");
	} else if (overquota > 0) {
		reply(s, "452 4.2.2 Mailbox full");
	} else if (permfail == 0) {
		reply(s, "552 5.2.2 Mailbox full: message exceeds the quota");
	} else {
		reply(s, "554 5.3.0 Error: delivery failed");
	}
	reset_transaction(s);
	conn_resume(c);
	conn_unref(c);
}

static void
finish_data(struct smtp_session *s)
{
	struct conn *c = &s->conn;
	size_t max_line = s->cfg->listeners[s->svc].max_line;

	conn_set_max_line(c, max_line > 0 ? max_line : SMTP_DEFAULT_MAX_LINE);
	s->state = ST_GREETED; /* the transaction ends whatever happens */
	if (s->data.error == SMTP_DATA_TOO_BIG) {
		log_info(c->id, svc_name(s),
			 "rejected id=%016" PRIx64 " size=%" PRIu64 " reason=too-big", s->msg_id,
			 s->data.size);
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		reset_transaction(s);
		return;
	}
	if (s->data.error == SMTP_DATA_LINE_TOO_LONG) {
		log_info(c->id, svc_name(s), "rejected id=%016" PRIx64 " reason=line-too-long",
			 s->msg_id);
		reply(s, "554 5.6.0 Message line too long");
		reset_transaction(s);
		return;
	}

	struct store_delivery *d = arena_alloc(s->tx, sizeof(*d));
	d->body = s->body.data;
	d->body_len = s->body.len;
	d->internal_date = time(NULL);
	d->nrcpts = s->ntargets;
	d->rcpts = arena_alloc(s->tx, s->ntargets * sizeof(*d->rcpts));
	for (size_t i = 0; i < s->ntargets; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		char *trace = arena_printf(s->tx, "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
					   s->sender, s->targets[i].rcpt);
		r->user_id = s->targets[i].user_id;
		r->trace = trace;
		r->trace_len = strlen(trace);
		r->quota = s->targets[i].quota;
		r->status = STORE_TEMPFAIL;
	}
	d->worker = c->worker;
	d->done = delivery_done;
	d->arg = s;
	d->status = STORE_TEMPFAIL;
	s->delivery = d;
	conn_pause(c);
	conn_ref(c);
	store_deliver(d);
}

/* ---- conn callbacks ---- */

static void
smtp_on_line(struct conn *c, char *line, size_t len)
{
	struct smtp_session *s = (struct smtp_session *)c;

	if (s->state == ST_DATA) {
		/* had_cr belongs to the line just delivered (conn.c calls us
		 * straight after lr_feed). */
		if (smtp_data_line(&s->data, line, len, c->lr.had_cr) == SMTP_DATA_END)
			finish_data(s);
		return;
	}
	handle_command(s, line, len);
}

static void
smtp_on_line_too_long(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	if (s->state == ST_DATA) {
		smtp_data_line_too_long(&s->data);
		return;
	}
	reply(s, "500 5.5.2 Line too long");
	bad_command(s);
}

static void
smtp_on_timeout(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	log_info(c->id, svc_name(s), "timeout ip=%s", c->peer_ip);
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
}

static void
smtp_on_close(struct conn *c, const char *reason)
{
	struct smtp_session *s = (struct smtp_session *)c;

	atomic_fetch_sub(&active_sessions[s->svc], 1);
	log_info(c->id, svc_name(s), "disconnect ip=%s reason=\"%s\" msgs=%u rcpts=%u errors=%u",
		 c->peer_ip, reason, s->msgs, s->rcpts_total, s->errors);
}

static void
session_free(struct smtp_session *s)
{
	struct arena *a = s->arena;

	buf_free(&s->helo);
	buf_free(&s->reply);
	buf_free(&s->body);
	buf_free(&s->pending_given);
	buf_free(&s->pending_lower);
	arena_destroy(&s->tx);
	config_release(s->cfg);
	arena_destroy(&a); /* s itself lives in it */
}

static void
smtp_on_free(struct conn *c)
{
	session_free((struct smtp_session *)c);
}

static const struct conn_ops smtp_conn_ops = {
    .on_line = smtp_on_line,
    .on_line_too_long = smtp_on_line_too_long,
    .on_timeout = smtp_on_timeout,
    .on_close = smtp_on_close,
    .on_free = smtp_on_free,
};

void
smtp_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen, enum service svc)
{
	struct arena *a = arena_new(0);
	struct smtp_session *s = arena_alloc(a, sizeof(*s));
	struct config *cfg = config_acquire();
	const struct listener_config *lc = &cfg->listeners[svc];

	s->arena = a;
	s->cfg = cfg;
	s->svc = svc;
	s->state = ST_CONNECTED;
	s->tx = arena_new(0);
	buf_init(&s->helo, 512);
	buf_init(&s->reply, SMTP_REPLY_MAX);
	buf_init(&s->body, 0);
	buf_init(&s->pending_given, 1024);
	buf_init(&s->pending_lower, 1024);

	struct conn_params params = {
	    .max_line = lc->max_line > 0 ? lc->max_line : SMTP_DEFAULT_MAX_LINE,
	    .idle_timeout = lc->idle_timeout,
	    .implicit_tls = lc->implicit_tls,
	};
	if (conn_init(&s->conn, w, fd, sa, salen, config_service_name(svc), &smtp_conn_ops,
		      &params) < 0) {
		log_error(0, config_service_name(svc), "accept-failed reason=\"conn_init\"");
		session_free(s);
		return;
	}
	unsigned n = atomic_fetch_add(&active_sessions[svc], 1) + 1;
	log_info(s->conn.id, svc_name(s), "connect ip=%s port=%d tls=%s", s->conn.peer_ip,
		 s->conn.peer_port, s->conn.tls ? "yes" : "no");
	if (lc->max_connections > 0 && n > lc->max_connections) {
		log_warn(s->conn.id, svc_name(s), "too-many-connections ip=%s limit=%u",
			 s->conn.peer_ip, lc->max_connections);
		reply(s, "421 4.7.0 %s Too many connections, try again later", cfg->hostname);
		conn_close(&s->conn, "too many connections");
		return;
	}
	reply(s, "220 %s ESMTP Tern", cfg->hostname);
}
