/*
 * smtp_milter.c - where the SMTP session meets its milters (milter.h):
 * [smtp] always, [submission]/[submissions] too with [milter] apply_to =
 * all; never LMTP. Each hook pauses the conn, runs a stage through the
 * chain and resumes the SMTP step from the verdict, as Postfix does:
 *
 *   connect  the greeting waits for it; a REJECT/TEMPFAIL is answered at
 *            every MAIL of the session (550 5.7.1 / 451 4.7.1)
 *   HELO     answered 550 5.7.1 / 451 4.7.1, the client may try again
 *   MAIL     the sender is refused, the transaction does not start
 *   RCPT     that recipient alone is refused
 *   DATA     the DATA command is refused (BDAT: sent with the message)
 *   message  after the final dot: the reply to the message; changes to
 *            headers and body are made before the store sees it
 *
 * DISCARD anywhere in a transaction: the message is accepted (250) and
 * dropped, with a log line. QUARANTINE or a spam header added by a milter
 * ([milter] spam_headers with a value starting "Yes"): delivered to each
 * recipient's \Junk mailbox unless the user's [directory] junk_attr says
 * FALSE. A custom reply (SMFIR_REPLYCODE) replaces the default text.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/conn.h"
#include "core/log.h"
#include "core/tls.h"
#include "directory/dir.h"
#include "smtp_internal.h"

static bool
applies(const struct smtp_session *s)
{
	if (s->cfg->nmilters == 0 || s->lmtp)
		return false;
	if (s->svc == SVC_SMTP)
		return true;
	return s->submission && strcmp(s->cfg->milter_apply_to, "all") == 0;
}

/* The reply for a refusal: the milter's own, else Postfix's texts. */
static const char *
refusal(const struct milter_verdict *v)
{
	if (v->reply != NULL)
		return v->reply;
	if (v->action == MILTER_REJECT)
		return "550 5.7.1 Command rejected";
	return "451 4.7.1 Service unavailable - try again later";
}

/* Common start of a stage's callback: false if the session is gone. */
static bool
resume_begin(struct smtp_session *s)
{
	if (s->conn.closed) {
		conn_unref(&s->conn);
		return false;
	}
	return true;
}

static void
resume_end(struct smtp_session *s)
{
	conn_resume(&s->conn);
	conn_unref(&s->conn);
}

static void
hold(struct smtp_session *s)
{
	conn_pause(&s->conn);
	conn_ref(&s->conn);
}

/* ---- connect ---- */

static void
connect_done(void *arg, const struct milter_verdict *v)
{
	struct smtp_session *s = arg;

	if (!resume_begin(s))
		return;
	s->milter_conn_action = v->action;
	if (v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL) {
		s->milter_conn_reply = arena_strdup(s->arena, refusal(v));
		log_info(s->conn.id, s->conn.service, "milter-connect ip=%s result=%s milter=%s",
			 s->conn.peer_ip, v->action == MILTER_REJECT ? "reject" : "tempfail",
			 v->milter != NULL ? v->milter : "-");
	}
	smtp_greet(s);
	resume_end(s);
}

bool
smtp_milter_connect(struct smtp_session *s)
{
	if (!applies(s))
		return false;
	struct milter_session *m =
	    milter_session_new(s->conn.worker, s->cfg, s->conn.id, s->conn.service);
	char port[16], ident[600];
	s->milter = m;
	snprintf(port, sizeof(port), "%d", s->conn.peer_port);
	snprintf(ident, sizeof(ident), "[%s]", s->conn.peer_ip);
	milter_macro(m, "j", s->cfg->hostname);
	milter_macro(m, "{daemon_name}", s->conn.service);
	milter_macro(m, "{daemon_addr}", s->conn.local_ip);
	milter_macro(m, "{if_name}", s->cfg->hostname);
	milter_macro(m, "{if_addr}", s->conn.local_ip);
	milter_macro(m, "v", "Tern");
	milter_macro(m, "_", ident);
	milter_macro(m, "{client_addr}", s->conn.peer_ip);
	milter_macro(m, "{client_port}", port);
	/* No reverse DNS here: Postfix's word for a client without a name. */
	milter_macro(m, "{client_name}", "unknown");
	milter_macro(m, "{client_ptr}", "unknown");
	hold(s);
	milter_connect(m, ident, s->conn.peer_ip, s->conn.peer_port, connect_done, s);
	return true;
}

/* ---- HELO ---- */

static void
helo_done(void *arg, const struct milter_verdict *v)
{
	struct smtp_session *s = arg;

	if (!resume_begin(s))
		return;
	if (v->down && v->action == MILTER_TEMPFAIL) {
		/* A milter down: like one down at connect, answered at MAIL. */
		if (s->milter_conn_action == MILTER_CONTINUE) {
			s->milter_conn_action = MILTER_TEMPFAIL;
			s->milter_conn_reply = arena_strdup(s->arena, refusal(v));
		}
		smtp_helo_reply(s);
	} else if (v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL) {
		log_info(s->conn.id, s->conn.service, "milter-helo name=%s result=%s",
			 buf_cstr(&s->helo), v->action == MILTER_REJECT ? "reject" : "tempfail");
		smtp_reply(s, "%s", refusal(v));
		s->state = ST_CONNECTED;
		buf_reset(&s->helo);
	} else {
		smtp_helo_reply(s);
	}
	resume_end(s);
}

bool
smtp_milter_helo(struct smtp_session *s)
{
	if (s->milter == NULL)
		return false;
	if (s->conn.tls) {
		SSL *ssl = (SSL *)conn_ssl(&s->conn);
		if (ssl != NULL) {
			milter_macro(s->milter, "{tls_version}", SSL_get_version(ssl));
			milter_macro(s->milter, "{cipher}", SSL_get_cipher_name(ssl));
		}
	}
	hold(s);
	milter_helo(s->milter, buf_cstr(&s->helo), helo_done, s);
	return true;
}

/* ---- MAIL ---- */

static void
mail_done(void *arg, const struct milter_verdict *v)
{
	struct smtp_session *s = arg;

	if (!resume_begin(s))
		return;
	if (v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL) {
		log_info(s->conn.id, s->conn.service, "milter-mail from=<%s> result=%s milter=%s",
			 s->sender, v->action == MILTER_REJECT ? "reject" : "tempfail",
			 v->milter != NULL ? v->milter : "-");
		smtp_reply(s, "%s", refusal(v));
		smtp_reset_transaction(s);
	} else {
		if (v->action == MILTER_DISCARD)
			s->milter_discard = true;
		smtp_reply(s, "250 2.1.0 Ok");
	}
	resume_end(s);
}

bool
smtp_milter_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (s->milter == NULL)
		return false;
	if (s->milter_conn_action == MILTER_REJECT || s->milter_conn_action == MILTER_TEMPFAIL) {
		smtp_reply(s, "%s", s->milter_conn_reply);
		smtp_reset_transaction(s);
		return true;
	}
	char id[32];
	snprintf(id, sizeof(id), "%016" PRIx64, s->msg_id);
	milter_macro(s->milter, "i", id);
	milter_macro(s->milter, "{mail_addr}", s->sender);
	milter_macro(s->milter, "{mail_mailer}", "smtp");
	milter_macro(s->milter, "{auth_authen}", s->auth_login);
	milter_macro(s->milter, "{auth_type}", s->auth_login != NULL ? s->sasl.mech : NULL);
	const char *argv[1 + SMTP_PARAMS_MAX];
	size_t argc = 0;
	argv[argc++] = arena_printf(s->tx, "<%s>", s->sender);
	for (size_t i = 0; i < cmd->nparams; i++)
		argv[argc++] =
		    cmd->params[i].value != NULL
			? arena_printf(s->tx, "%s=%s", cmd->params[i].keyword, cmd->params[i].value)
			: cmd->params[i].keyword;
	hold(s);
	milter_mail(s->milter, argv, argc, mail_done, s);
	return true;
}

/* ---- RCPT ---- */

static void
rcpt_done(void *arg, const struct milter_verdict *v)
{
	struct smtp_session *s = arg;

	if (!resume_begin(s))
		return;
	if (v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL) {
		log_info(s->conn.id, s->conn.service, "rcpt to=<%s> result=milter-%s milter=%s",
			 buf_cstr(&s->pending_given),
			 v->action == MILTER_REJECT ? "reject" : "tempfail",
			 v->milter != NULL ? v->milter : "-");
		smtp_reply(s, "%s", refusal(v));
		resume_end(s);
		return;
	}
	if (v->action == MILTER_DISCARD)
		s->milter_discard = true;
	/* smtp_rcpt_proceed pauses again for the directory if it needs to. */
	smtp_rcpt_proceed(s);
	resume_end(s);
}

bool
smtp_milter_rcpt(struct smtp_session *s)
{
	if (s->milter == NULL)
		return false;
	const char *given = buf_cstr(&s->pending_given);
	const char *argv[1] = {arena_printf(s->tx, "<%s>", given)};
	milter_macro(s->milter, "{rcpt_addr}", given);
	milter_macro(s->milter, "{rcpt_mailer}", s->pending_local ? "local" : "smtp");
	hold(s);
	milter_rcpt(s->milter, argv, 1, rcpt_done, s);
	return true;
}

/* ---- DATA ---- */

static void
data_done(void *arg, const struct milter_verdict *v)
{
	struct smtp_session *s = arg;

	if (!resume_begin(s))
		return;
	if (v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL) {
		log_info(s->conn.id, s->conn.service, "data id=%016" PRIx64 " result=milter-%s",
			 s->msg_id, v->action == MILTER_REJECT ? "reject" : "tempfail");
		smtp_reply(s, "%s", refusal(v));
		smtp_reset_transaction(s);
	} else {
		if (v->action == MILTER_DISCARD)
			s->milter_discard = true;
		smtp_data_go(s);
	}
	resume_end(s);
}

bool
smtp_milter_data(struct smtp_session *s)
{
	if (s->milter == NULL || s->milter_discard)
		return false;
	hold(s);
	milter_data(s->milter, data_done, s);
	return true;
}

/* ---- the message ---- */

static void
message_dropped(struct smtp_session *s, const char *milter)
{
	log_info(s->conn.id, s->conn.service,
		 "discarded id=%016" PRIx64 " from=<%s> rcpts=%u milter=%s", s->msg_id, s->sender,
		 s->nrcpts, milter != NULL ? milter : "-");
	s->msgs++;
	smtp_reply(s, "250 2.0.0 Ok: queued as %016" PRIx64, s->msg_id);
	smtp_reset_transaction(s);
}

/* ---- envelope changes (CHGFROM, ADDRCPT, DELRCPT) ----
 *
 * Applied in the order the milters sent them, after every milter has
 * seen the message, as Postfix does: a new sender for the Return-Path
 * and the queue; a removed recipient loses every mailbox its RCPT
 * reached; an added one is resolved like an RCPT (the directory for our
 * domains, else the outbound queue) but without the relay and rate
 * checks, since the milter is trusted. An added local address the
 * directory does not know is logged and dropped; a directory that is
 * down fails the message with 451. No recipient left: the message is
 * accepted and dropped, as a DISCARD. */

static void envelope_next(struct smtp_session *s);

static void
envelope_rcpt_done(void *arg, const struct dir_rcpt_result *res)
{
	struct smtp_session *s = arg;

	if (!resume_begin(s))
		return;
	const char *addr = s->milter_env[s->milter_env_i].addr;
	switch (res->status) {
	case DIR_OK:
		for (size_t i = 0; i < res->nusers; i++)
			smtp_add_target(s, &res->users[i], addr);
		for (size_t i = 0; i < res->nforwards; i++)
			smtp_add_remote(s, smtp_lower_domain(s->tx, res->forwards[i]), NULL, 0);
		log_info(s->conn.id, s->conn.service,
			 "milter-addrcpt id=%016" PRIx64 " to=<%s> mailboxes=%zu forwards=%zu",
			 s->msg_id, addr, res->nusers, res->nforwards);
		break;
	case DIR_TEMPFAIL:
	case DIR_CONFLICT:
		log_info(s->conn.id, s->conn.service,
			 "rejected id=%016" PRIx64 " reason=milter-addrcpt-tempfail to=<%s>",
			 s->msg_id, addr);
		smtp_reply(s, "451 4.4.3 Directory temporarily unavailable, try again later");
		smtp_reset_transaction(s);
		resume_end(s);
		return;
	default:
		log_warn(s->conn.id, s->conn.service,
			 "milter-addrcpt id=%016" PRIx64 " to=<%s> result=unknown (dropped)",
			 s->msg_id, addr);
		break;
	}
	s->milter_env_i++;
	envelope_next(s);
	resume_end(s);
}

static void
envelope_next(struct smtp_session *s)
{
	for (; s->milter_env_i < s->milter_nenv; s->milter_env_i++) {
		const struct milter_envop *e = &s->milter_env[s->milter_env_i];
		if (e->op == MILTER_ENV_FROM) {
			log_info(s->conn.id, s->conn.service,
				 "milter-chgfrom id=%016" PRIx64 " from=<%s> new=<%s>", s->msg_id,
				 s->sender, e->addr);
			s->sender = e->addr;
		} else if (e->op == MILTER_ENV_DEL) {
			size_t n = smtp_remove_rcpt(s, e->addr);
			log_info(s->conn.id, s->conn.service,
				 "milter-delrcpt id=%016" PRIx64 " to=<%s> removed=%zu", s->msg_id,
				 e->addr, n);
		} else {
			const char *at = strrchr(e->addr, '@');
			char *lower = smtp_lower_domain(s->tx, e->addr);
			if (!config_is_local_domain(s->cfg, at + 1)) {
				smtp_add_remote(s, lower, NULL, 0);
				log_info(s->conn.id, s->conn.service,
					 "milter-addrcpt id=%016" PRIx64 " to=<%s> result=queued",
					 s->msg_id, e->addr);
				continue;
			}
			/* The directory takes addresses in lower case. */
			for (char *p = lower; *p != '\0'; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			hold(s);
			dir_resolve_rcpt(s->conn.worker, lower, envelope_rcpt_done, s);
			return;
		}
	}
	if (s->ntargets == 0 && s->nremote == 0) {
		message_dropped(s, "(every recipient removed)");
		return;
	}
	smtp_store_message(s);
}

static void
message_done(void *arg, const struct milter_verdict *v)
{
	struct smtp_session *s = arg;
	struct buf msg;

	if (!resume_begin(s))
		return;
	if (v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL) {
		log_info(s->conn.id, s->conn.service,
			 "rejected id=%016" PRIx64 " reason=milter-%s milter=%s", s->msg_id,
			 v->action == MILTER_REJECT ? "reject" : "tempfail",
			 v->milter != NULL ? v->milter : "-");
		smtp_reply(s, "%s", refusal(v));
		smtp_reset_transaction(s);
		resume_end(s);
		return;
	}
	if (v->action == MILTER_DISCARD) {
		message_dropped(s, v->milter);
		resume_end(s);
		return;
	}
	/* The milters edited the message alone (s->body after msg_off was
	 * moved into it): put our Received header back in front. */
	msg = s->body;
	buf_init(&s->body, msg.max);
	/* Received went to the tx arena copy: see smtp_milter_message. */
	const char *received = s->delivery_received;
	if (buf_append_str(&s->body, received) < 0 || buf_append(&s->body, msg.data, msg.len) < 0) {
		buf_free(&msg);
		log_warn(s->conn.id, s->conn.service, "rejected id=%016" PRIx64 " reason=too-big",
			 s->msg_id);
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		smtp_reset_transaction(s);
		resume_end(s);
		return;
	}
	s->msg_off = strlen(received);
	buf_free(&msg);
	if (v->quarantine || v->spam) {
		s->milter_junk = true;
		log_info(s->conn.id, s->conn.service,
			 "spam id=%016" PRIx64 " verdict=%s milter=%s reason=\"%.200s\"", s->msg_id,
			 v->quarantine ? "quarantine" : "header",
			 v->milter != NULL ? v->milter : "-",
			 v->quarantine_reason != NULL ? v->quarantine_reason : "");
	}
	if (v->nenv > 0) {
		s->milter_env = arena_alloc(s->tx, v->nenv * sizeof(*s->milter_env));
		for (size_t i = 0; i < v->nenv; i++) {
			s->milter_env[i].op = v->env[i].op;
			s->milter_env[i].addr = arena_strdup(s->tx, v->env[i].addr);
		}
		s->milter_nenv = v->nenv;
		s->milter_env_i = 0;
		envelope_next(s);
	} else {
		smtp_store_message(s);
	}
	resume_end(s);
}

bool
smtp_milter_message(struct smtp_session *s)
{
	if (s->milter == NULL)
		return false;
	if (s->milter_discard) {
		message_dropped(s, NULL);
		return true;
	}
	/* The milters see the message without our Received header (its
	 * edits cannot touch our trace); it goes back in front after. */
	s->delivery_received = arena_strndup(s->tx, s->body.data, s->msg_off);
	struct buf msg;
	buf_init(&msg, s->body.max);
	if (buf_append(&msg, s->body.data + s->msg_off, s->body.len - s->msg_off) < 0) {
		buf_free(&msg);
		return false;
	}
	buf_free(&s->body);
	s->body = msg;
	s->msg_off = 0;
	char id[32];
	snprintf(id, sizeof(id), "%016" PRIx64, s->msg_id);
	milter_macro(s->milter, "i", id);
	hold(s);
	milter_message(s->milter, &s->body, message_done, s);
	return true;
}
