/*
 * smtp_session.c - the SMTP server (RFC 5321) for [smtp] (port 25),
 * [submission] (587, RFC 6409), [submissions] (465, implicit TLS, RFC
 * 8314) and [lmtp] (RFC 2033), with PIPELINING (2920), SIZE (1870),
 * 8BITMIME (6152), SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034, codes from
 * 5248), CHUNKING/BDAT (3030), DSN (3461), REQUIRETLS (8689), STARTTLS
 * (3207) and AUTH (4954, smtp_auth.c).
 *
 * Relay control: mail for the local domains ([server] domains) is
 * resolved through the directory and handed to the store writer; mail
 * for anything else is accepted only from an authenticated submission
 * session and goes into the outbound queue in the same store transaction
 * (store_delivery.outbound, storage/queue.h). An address literal is
 * never local. Forwards (mailRoutingAddress) are queued with the
 * envelope sender kept (no SRS, XXX: SPF at the far side may fail them).
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
#include "storage/queue.h"
#include "storage/store.h"
#include "smtp_data.h"
#include "smtp_internal.h"
#include "smtp_parser.h"
#include "smtp_rate.h"
#include "smtp_session.h"

_Static_assert(SMTP_NOTIFY_NEVER == QUEUE_NOTIFY_NEVER &&
		   SMTP_NOTIFY_SUCCESS == QUEUE_NOTIFY_SUCCESS &&
		   SMTP_NOTIFY_FAILURE == QUEUE_NOTIFY_FAILURE &&
		   SMTP_NOTIFY_DELAY == QUEUE_NOTIFY_DELAY,
	       "NOTIFY bits differ");

#define SMTP_MAX_ERRORS 10
#define SMTP_DEFAULT_MAX_LINE 2048
/* DATA lines may be far longer than commands (RFC 5321 says 998, real
 * mail breaks it); beyond this the message fails but is read to the end. */
#define SMTP_DATA_MAX_LINE (1024 * 1024)
/* Room in the body buffer for our Received header. */
#define SMTP_BODY_HEADROOM 8192
#define SMTP_REPLY_MAX 4096

static _Atomic unsigned active_sessions[SVC_COUNT];

void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
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

void
smtp_reset_transaction(struct smtp_session *s)
{
	spf_check_cancel(s->spf);
	s->spf = NULL;
	s->spf_wait = s->spf_done = false;
	s->spf_result = SPF_NONE;
	s->spf_domain = NULL;
	memset(&s->authres, 0, sizeof(s->authres));
	smtp_inauth_cancel(s);
	s->dkim_pass_d = NULL;
	s->ndkim_pass = 0;
	s->dkim_res = NULL;
	s->ndkim_res = 0;
	s->dmarc_state = SMTP_DMARC_OFF;
	s->dmarc_from = s->dmarc_reason = NULL;
	memset(&s->dmarc_rec, 0, sizeof(s->dmarc_rec));
	s->dmarc_at_org = false;
	s->quarantine = NULL;
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
	s->msg_off = 0;
	s->delivery = NULL;
	s->smtputf8 = s->eightbit = s->requiretls = false;
	s->ret = QUEUE_RET_DEFAULT;
	s->envid = NULL;
	s->remote = NULL;
	s->nremote = s->remote_cap = 0;
	s->lrcpts = NULL;
	s->nlrcpts = s->lrcpts_cap = 0;
	s->bdat = s->bdat_last = s->bdat_discard = s->bdat_too_big = false;
	s->bdat_error = NULL;
	s->bdat_chunk = s->bdat_size = 0;
	s->pending_orcpt = NULL;
	s->pending_notify = 0;
	if (s->milter != NULL)
		milter_abort(s->milter);
	s->milter_discard = s->milter_junk = false;
	s->delivery_received = NULL;
	if (s->state != ST_CONNECTED)
		s->state = ST_GREETED;
}

/* A peer mistake; the tenth ends the session. Call after its reply. */
void
smtp_bad_command(struct smtp_session *s)
{
	if (++s->errors < SMTP_MAX_ERRORS)
		return;
	smtp_reply(s, "421 4.7.0 Too many errors");
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

/* Adds a mailbox unless it is already a target; returns its index. */
size_t
smtp_add_target(struct smtp_session *s, const struct dir_user *u, const char *rcpt)
{
	if (s->index_cap > 0) {
		size_t mask = s->index_cap - 1;
		for (size_t i = hash_str(u->id) & mask; s->index[i] != 0; i = (i + 1) & mask) {
			if (strcmp(s->targets[s->index[i] - 1].user_id, u->id) == 0)
				return s->index[i] - 1;
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
	t->no_junk = u->no_junk;
	t->quota_messages = u->quota_messages;
	t->rcpt = rcpt;
	index_insert(s, s->ntargets);
	return s->ntargets++;
}

/* Removes every target the RCPT address reached (compared without
 * regard to case) and that address among the remote recipients. The
 * number removed. Not for LMTP (its replies follow the targets). */
size_t
smtp_remove_rcpt(struct smtp_session *s, const char *address)
{
	size_t removed = 0, k = 0;

	for (size_t i = 0; i < s->ntargets; i++) {
		if (strcasecmp(s->targets[i].rcpt, address) == 0)
			removed++;
		else
			s->targets[k++] = s->targets[i];
	}
	if (k != s->ntargets) {
		s->ntargets = k;
		memset(s->index, 0, s->index_cap * sizeof(*s->index));
		for (size_t i = 0; i < s->ntargets; i++)
			index_insert(s, i);
	}
	k = 0;
	for (size_t i = 0; i < s->nremote; i++) {
		if (strcasecmp(s->remote[i].address, address) == 0)
			removed++;
		else
			s->remote[k++] = s->remote[i];
	}
	s->nremote = k;
	return removed;
}

/* A remote recipient for the outbound queue (tx arena). */
void
smtp_add_remote(struct smtp_session *s, const char *address, const char *orcpt, uint8_t notify)
{
	for (size_t i = 0; i < s->nremote; i++)
		if (strcmp(s->remote[i].address, address) == 0)
			return;
	if (s->nremote == s->remote_cap) {
		size_t cap = s->remote_cap == 0 ? 8 : s->remote_cap * 2;
		struct queue_rcpt_in *v = arena_alloc(s->tx, cap * sizeof(*v));
		if (s->nremote > 0)
			memcpy(v, s->remote, s->nremote * sizeof(*v));
		s->remote = v;
		s->remote_cap = cap;
	}
	struct queue_rcpt_in *r = &s->remote[s->nremote++];
	r->address = address;
	r->orcpt = orcpt;
	r->notify = notify;
}

/* LMTP: records an accepted RCPT (tx arena). */
static struct smtp_lrcpt *
add_lrcpt(struct smtp_session *s, const char *address, size_t ntargets)
{
	if (s->nlrcpts == s->lrcpts_cap) {
		size_t cap = s->lrcpts_cap == 0 ? 8 : s->lrcpts_cap * 2;
		struct smtp_lrcpt *v = arena_alloc(s->tx, cap * sizeof(*v));
		if (s->nlrcpts > 0)
			memcpy(v, s->lrcpts, s->nlrcpts * sizeof(*v));
		s->lrcpts = v;
		s->lrcpts_cap = cap;
	}
	struct smtp_lrcpt *l = &s->lrcpts[s->nlrcpts++];
	l->address = address;
	l->targets = ntargets > 0 ? arena_alloc(s->tx, ntargets * sizeof(*l->targets)) : NULL;
	l->ntargets = 0;
	l->remote = false;
	return l;
}

/* Lower-cases ASCII letters of the domain (after the last '@'): the
 * queue keeps domains lower-case, local parts as given. */
char *
smtp_lower_domain(struct arena *a, const char *address)
{
	char *d = arena_strdup(a, address);
	char *at = strrchr(d, '@');

	for (char *p = at != NULL ? at : d + strlen(d); *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* ---- rate limits ---- */

/* Takes n from the user's and the IP's allowance of kind ("messages" or
 * "recipients"); false (and a log line) if either is used up. */
static bool
rate_take(struct smtp_session *s, bool messages, uint32_t n)
{
	const struct config *cfg = s->cfg;
	struct smtp_rate *r = smtp_rate_shared();
	time_t now = time(NULL);
	uint32_t ulim = messages ? cfg->user_messages_per_hour : cfg->user_recipients_per_hour;
	uint32_t ilim = messages ? cfg->ip_messages_per_hour : cfg->ip_recipients_per_hour;
	char key[600];

	if (s->lmtp)
		return true; /* trusted local MTAs */
	snprintf(key, sizeof(key), "%c:ip:%s", messages ? 'm' : 'r', s->conn.peer_ip);
	enum smtp_rate_result ri = smtp_rate_take(r, key, n, ilim, now);
	if (ri == SMTP_RATE_EXCEEDED) {
		log_info(s->conn.id, svc_name(s), "rate-limited ip=%s kind=%s limit=%u",
			 s->conn.peer_ip, messages ? "messages" : "recipients", ilim);
		return false;
	}
	if (s->auth_id != NULL) {
		snprintf(key, sizeof(key), "%c:u:%.500s", messages ? 'm' : 'r', s->auth_id);
		enum smtp_rate_result ru = smtp_rate_take(r, key, n, ulim, now);
		if (ru == SMTP_RATE_EXCEEDED) {
			log_info(s->conn.id, svc_name(s),
				 "rate-limited user=\"%s\" kind=%s limit=%u", s->auth_login,
				 messages ? "messages" : "recipients", ulim);
			/* XXX the IP's count keeps this attempt; a
			 * refund would need a second call under the lock. */
			return false;
		}
	}
	if (ri == SMTP_RATE_FULL)
		log_warn(s->conn.id, svc_name(s), "rate-table-full ip=%s", s->conn.peer_ip);
	return true;
}

/* ---- command handlers ---- */

static void
cmd_helo(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (s->lmtp != (cmd->verb == SMTP_VERB_LHLO)) {
		/* RFC 2033 4.1: LMTP has LHLO only; SMTP has no LHLO. */
		smtp_reply(s, "500 5.5.1 Command unrecognized: use %s", s->lmtp ? "LHLO" : "EHLO");
		smtp_bad_command(s);
		return;
	}
	smtp_reset_transaction(s);
	buf_reset(&s->helo);
	buf_append_str(&s->helo, cmd->arg); /* a valid domain fits the cap */
	s->esmtp = cmd->verb != SMTP_VERB_HELO;
	s->state = ST_GREETED;
	log_info(s->conn.id, svc_name(s), "helo name=%s esmtp=%s", buf_cstr(&s->helo),
		 s->esmtp ? "yes" : "no");
	if (smtp_milter_helo(s))
		return;
	smtp_helo_reply(s);
}

/* The reply to HELO/EHLO/LHLO (after the milters, if any). */
void
smtp_helo_reply(struct smtp_session *s)
{
	const struct config *cfg = s->cfg;

	if (!s->esmtp) {
		smtp_reply(s, "250 %s", cfg->hostname);
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
	smtp_reply(s, "250-%s Hello %s [%s]", cfg->hostname, buf_cstr(&s->helo), s->conn.peer_ip);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %" PRIu64, cfg->message_size_max);
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-CHUNKING");
	smtp_reply(s, "250-DSN");
	/* RFC 8689 4: offered only on a TLS session. */
	if (s->conn.tls)
		smtp_reply(s, "250-REQUIRETLS");
	if (smtp_auth_offered(s)) {
		struct buf mechs;
		buf_init(&mechs, 512);
		auth_sasl_mechanisms(&s->sasl, true, &mechs);
		smtp_reply(s, "250-AUTH %s", buf_cstr(&mechs));
		buf_free(&mechs);
	}
	if (starttls) {
		smtp_reply(s, "250-ENHANCEDSTATUSCODES");
		smtp_reply(s, "250 STARTTLS");
	} else {
		smtp_reply(s, "250 ENHANCEDSTATUSCODES");
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
mail_param_error(struct smtp_session *s, const char *text)
{
	smtp_reply(s, "%s", text);
	smtp_bad_command(s);
}

static void
cmd_mail(struct smtp_session *s, struct smtp_cmd *cmd)
{
	uint64_t size = 0;
	bool have_size = false, have_body = false, smtputf8 = false, eightbit = false;
	bool requiretls = false, have_ret = false, have_auth = false;
	enum queue_ret ret = QUEUE_RET_DEFAULT;
	const char *envid = NULL;
	struct buf dec;

	if (s->submission && s->auth_id == NULL) {
		smtp_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (smtp_dnsbl_refuse(s))
		return;
	buf_init(&dec, SMTP_ENVID_MAX + 1);
	for (size_t i = 0; i < cmd->nparams; i++) {
		const struct smtp_param *p = &cmd->params[i];
		if (strcasecmp(p->keyword, "SIZE") == 0) {
			if (have_size || p->value == NULL || parse_u64(p->value, &size) < 0) {
				mail_param_error(s, "501 5.5.4 Bad SIZE parameter");
				goto out;
			}
			have_size = true;
		} else if (strcasecmp(p->keyword, "BODY") == 0) {
			if (have_body || p->value == NULL) {
				mail_param_error(s, "501 5.5.4 Bad BODY parameter");
				goto out;
			}
			/* BINARYMIME (RFC 3030 3) is not offered. */
			if (strcasecmp(p->value, "8BITMIME") == 0) {
				eightbit = true;
			} else if (strcasecmp(p->value, "7BIT") != 0) {
				smtp_reply(s, "555 5.5.4 Unsupported BODY type: %.64s", p->value);
				smtp_bad_command(s);
				goto out;
			}
			have_body = true;
		} else if (strcasecmp(p->keyword, "SMTPUTF8") == 0) {
			if (smtputf8 || p->value != NULL) {
				mail_param_error(s, "501 5.5.4 Bad SMTPUTF8 parameter");
				goto out;
			}
			smtputf8 = true;
		} else if (strcasecmp(p->keyword, "RET") == 0) {
			if (have_ret || p->value == NULL) {
				mail_param_error(s, "501 5.5.4 Bad RET parameter");
				goto out;
			}
			if (strcasecmp(p->value, "FULL") == 0) {
				ret = QUEUE_RET_FULL;
			} else if (strcasecmp(p->value, "HDRS") == 0) {
				ret = QUEUE_RET_HDRS;
			} else {
				mail_param_error(s, "501 5.5.4 Bad RET parameter");
				goto out;
			}
			have_ret = true;
		} else if (strcasecmp(p->keyword, "ENVID") == 0) {
			if (envid != NULL || p->value == NULL ||
			    strlen(p->value) > SMTP_ENVID_MAX ||
			    smtp_xtext_decode(p->value, &dec) < 0) {
				mail_param_error(s, "501 5.5.4 Bad ENVID parameter");
				goto out;
			}
			envid = buf_cstr(&dec);
		} else if (strcasecmp(p->keyword, "REQUIRETLS") == 0) {
			if (requiretls || p->value != NULL) {
				mail_param_error(s, "501 5.5.4 Bad REQUIRETLS parameter");
				goto out;
			}
			if (!s->conn.tls) {
				/* RFC 8689 4.1 */
				smtp_reply(s, "530 5.7.10 REQUIRETLS needs a TLS session");
				goto out;
			}
			requiretls = true;
		} else if (strcasecmp(p->keyword, "AUTH") == 0) {
			/* RFC 4954 5: checked, then not trusted (we relay
			 * nobody's claim about who submitted). */
			struct buf tmp;
			buf_init(&tmp, 1024);
			int bad =
			    have_auth || p->value == NULL ||
			    (strcmp(p->value, "<>") != 0 && smtp_xtext_decode(p->value, &tmp) < 0);
			buf_free(&tmp);
			if (bad) {
				mail_param_error(s, "501 5.5.4 Bad AUTH parameter");
				goto out;
			}
			have_auth = true;
		} else {
			smtp_reply(s, "555 5.5.4 Unsupported option: %.64s", p->keyword);
			smtp_bad_command(s);
			goto out;
		}
	}
	if (have_size && size > s->cfg->message_size_max) {
		log_info(s->conn.id, svc_name(s), "mail from=<%s> size=%" PRIu64 " result=too-big",
			 cmd->address, size);
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		goto out;
	}
	if (s->submission && !cmd->null_path) {
		const char *lower = smtp_lower_domain(s->tx, cmd->address);
		if (!smtp_sender_allowed(s, lower)) {
			log_info(s->conn.id, svc_name(s),
				 "mail from=<%s> user=\"%s\" result=sender-denied", cmd->address,
				 s->auth_login);
			smtp_reply(s, "553 5.7.1 <%s>: Sender address not owned by user %s",
				   cmd->address, s->auth_login);
			goto out;
		}
	}
	if (!rate_take(s, true, 1)) {
		smtp_reply(s, "451 4.7.1 Message rate limit exceeded, try again later");
		goto out;
	}
	smtp_reset_transaction(s);
	s->sender = arena_strdup(s->tx, cmd->address);
	s->smtputf8 = smtputf8;
	s->eightbit = eightbit;
	s->requiretls = requiretls;
	s->ret = ret;
	s->envid = envid != NULL ? arena_strdup(s->tx, envid) : NULL;
	s->msg_id = log_new_id();
	s->state = ST_MAIL;
	log_info(s->conn.id, svc_name(s),
		 "mail from=<%s> size=%" PRIu64 " id=%016" PRIx64 " smtputf8=%s requiretls=%s",
		 s->sender, size, s->msg_id, smtputf8 ? "yes" : "no", requiretls ? "yes" : "no");
	smtp_spf_start(s);
	if (smtp_milter_mail(s, cmd))
		goto out;
	smtp_reply(s, "250 2.1.0 Ok");
out:
	buf_free(&dec);
}

static void
log_rcpt(struct smtp_session *s, const char *addr, const char *result)
{
	log_info(s->conn.id, svc_name(s), "rcpt to=<%s> result=%s", addr, result);
}

static bool
user_in(const struct dir_rcpt_result *res, const char *id)
{
	for (size_t i = 0; i < res->nusers; i++)
		if (strcmp(res->users[i].id, id) == 0)
			return true;
	return false;
}

/* [directory] list_post for a list address: NULL if the session may post,
 * else the reason. An unauthenticated sender proves nothing about who
 * they are, so restricted lists take posts only from submission. */
static const char *
list_post_denied(struct smtp_session *s, const struct dir_rcpt_result *res, const char *lower)
{
	const char *rule = s->cfg->dir.list_post;

	if (!res->is_list || strcmp(rule, "anyone") == 0)
		return NULL;
	if (s->auth_id == NULL)
		return "list accepts posts from authenticated users only";
	if (strcmp(rule, "members") == 0) {
		if (user_in(res, s->auth_id) || smtp_sender_allowed(s, lower))
			return NULL;
		return "only members may post to this list";
	}
	if (smtp_sender_allowed(s, lower)) /* send-as: the lists they own */
		return NULL;
	return "only owners may post to this list";
}

static void
rcpt_done(void *arg, const struct dir_rcpt_result *res)
{
	struct smtp_session *s = arg;
	struct conn *c = &s->conn;
	const char *given = buf_cstr(&s->pending_given);
	const char *lower = buf_cstr(&s->pending_lower);

	if (c->closed) {
		conn_unref(c);
		return;
	}
	const char *denied = res->status == DIR_OK ? list_post_denied(s, res, lower) : NULL;
	switch (res->status) {
	case DIR_OK:
		if (denied != NULL) {
			log_info(c->id, svc_name(s), "rcpt to=<%s> result=list-denied rule=%s",
				 given, s->cfg->dir.list_post);
			smtp_reply(s, "550 5.7.1 <%s>: %s", given, denied);
		} else if (res->nusers > 0 || res->nforwards > 0) {
			const char *rcpt = arena_strdup(s->tx, given);
			struct smtp_lrcpt *l = s->lmtp ? add_lrcpt(s, rcpt, res->nusers) : NULL;
			for (size_t i = 0; i < res->nusers; i++) {
				size_t t = smtp_add_target(s, &res->users[i], rcpt);
				if (l != NULL)
					l->targets[l->ntargets++] = t;
			}
			/* Forwards keep the envelope sender and the DSN
			 * parameters of the RCPT that reached them. */
			for (size_t i = 0; i < res->nforwards; i++)
				smtp_add_remote(s, smtp_lower_domain(s->tx, res->forwards[i]),
						s->pending_orcpt, s->pending_notify);
			if (l != NULL && res->nforwards > 0)
				l->remote = true;
			if (s->nrcpts++ == 0)
				s->first_rcpt = rcpt;
			s->rcpts_total++;
			s->state = ST_RCPT;
			log_info(c->id, svc_name(s),
				 "rcpt to=<%s> result=ok mailboxes=%zu forwards=%zu", given,
				 res->nusers, res->nforwards);
			smtp_reply(s, "250 2.1.5 Ok");
		} else {
			log_rcpt(s, given, "no-mailbox");
			smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown",
				   given);
		}
		break;
	case DIR_TEMPFAIL:
		log_info(c->id, svc_name(s), "rcpt to=<%s> result=tempfail reason=\"%s\"", given,
			 res->error != NULL ? res->error : dir_strerror(res->status));
		smtp_reply(s, "451 4.4.3 Directory temporarily unavailable, try again later");
		break;
	case DIR_CONFLICT:
		/* Temporary on purpose: the directory is wrong, not the
		 * address; the sender retries while the admin fixes it, and
		 * the mail reaches its owner instead of bouncing. The DNs go
		 * to the log (dir.c), never to the client. */
		log_warn(c->id, svc_name(s), "rcpt to=<%s> result=conflict reason=\"%s\"", given,
			 res->error != NULL ? res->error : dir_strerror(res->status));
		smtp_reply(s,
			   "451 4.3.0 <%s>: address is ambiguous in the directory, try again later",
			   given);
		break;
	case DIR_NOTFOUND:
		log_rcpt(s, given, "unknown");
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", given);
		break;
	default:
		log_warn(c->id, svc_name(s), "rcpt to=<%s> result=permfail reason=\"%s\"", given,
			 res->error != NULL ? res->error : dir_strerror(res->status));
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", given);
		break;
	}
	conn_resume(c);
	conn_unref(c);
}

static void
cmd_rcpt(struct smtp_session *s, struct smtp_cmd *cmd)
{
	const struct config *cfg = s->cfg;
	uint8_t notify = 0;
	const char *orcpt = NULL;
	bool have_notify = false;

	for (size_t i = 0; i < cmd->nparams; i++) {
		const struct smtp_param *p = &cmd->params[i];
		if (strcasecmp(p->keyword, "NOTIFY") == 0) {
			if (have_notify || smtp_dsn_notify(p->value, &notify) < 0) {
				smtp_reply(s, "501 5.5.4 Bad NOTIFY parameter");
				smtp_bad_command(s);
				return;
			}
			have_notify = true;
		} else if (strcasecmp(p->keyword, "ORCPT") == 0) {
			struct buf dec;
			buf_init(&dec, SMTP_ORCPT_MAX + 1);
			int r = smtp_dsn_orcpt(p->value, &dec);
			buf_free(&dec);
			if (orcpt != NULL || r < 0) {
				smtp_reply(s, "501 5.5.4 Bad ORCPT parameter");
				smtp_bad_command(s);
				return;
			}
			orcpt = p->value; /* kept as given (queue.h) */
		} else {
			smtp_reply(s, "555 5.5.4 Unsupported option: %.64s", p->keyword);
			smtp_bad_command(s);
			return;
		}
	}
	buf_reset(&s->pending_given);
	buf_reset(&s->pending_lower);
	if (cmd->postmaster) {
		/* RFC 5321 4.5.1: <Postmaster> is the postmaster of our
		 * primary domain. */
		if (cfg->ndomains == 0) {
			smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown",
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
	bool local =
	    cmd->postmaster
		? config_is_local_domain(cfg, domain)
		: smtp_rcpt_domain_local(cmd, (const char *const *)cfg->domains, cfg->ndomains);

	if (!local && (s->auth_id == NULL || cmd->domain_literal)) {
		/* Only an authenticated user relays, and never to an
		 * address literal (the queue routes by domain). */
		log_rcpt(s, given, "relay-denied");
		smtp_reply(s, "550 5.7.1 Relaying denied");
		return;
	}
	if (cfg->max_recipients > 0 && s->nrcpts >= cfg->max_recipients) {
		log_rcpt(s, given, "too-many");
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (!rate_take(s, false, 1)) {
		log_rcpt(s, given, "rate-limited");
		smtp_reply(s, "451 4.7.1 Recipient rate limit exceeded, try again later");
		return;
	}
	s->pending_notify = notify;
	s->pending_orcpt = orcpt != NULL ? arena_strdup(s->tx, orcpt) : NULL;
	s->pending_local = local;
	if (smtp_milter_rcpt(s))
		return;
	smtp_rcpt_proceed(s);
}

/* An RCPT that passed the checks (and the milters): queued if remote,
 * else resolved through the directory. */
void
smtp_rcpt_proceed(struct smtp_session *s)
{
	const char *given = buf_cstr(&s->pending_given);
	const char *lower = buf_cstr(&s->pending_lower);

	if (!s->pending_local) {
		smtp_add_remote(s, smtp_lower_domain(s->tx, given), s->pending_orcpt,
				s->pending_notify);
		if (s->nrcpts++ == 0)
			s->first_rcpt = arena_strdup(s->tx, given);
		s->rcpts_total++;
		s->state = ST_RCPT;
		log_rcpt(s, given, "queued");
		smtp_reply(s, "250 2.1.5 Ok");
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
	/* RFC 3848 / RFC 6531 3.7.3 protocol names */
	const char *base = s->lmtp	 ? "LMTP"
			   : s->smtputf8 ? "UTF8SMTP"
			   : s->esmtp	 ? "ESMTP"
					 : "SMTP";
	const char *sfx =
	    s->conn.tls ? (s->auth_id != NULL ? "SA" : "S") : (s->auth_id != NULL ? "A" : "");

	if (!s->esmtp && !s->lmtp)
		sfx = "";
	localtime_r(&now, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		date[0] = '\0';
	buf_printf(&s->body, "Received: from %s ([%s]) by %s (Tern) with %s%s id %016" PRIx64,
		   buf_cstr(&s->helo), s->conn.peer_ip, s->cfg->hostname, base, sfx, s->msg_id);
	if (s->nrcpts == 1)
		buf_printf(&s->body, " for <%s>", s->first_rcpt);
	buf_printf(&s->body, "; %s\r\n", date);
	s->msg_off = s->body.len;
}

static void
start_body(struct smtp_session *s)
{
	uint64_t max = s->cfg->message_size_max;
	size_t cap =
	    max > SIZE_MAX - SMTP_BODY_HEADROOM ? SIZE_MAX : (size_t)max + SMTP_BODY_HEADROOM;

	buf_init(&s->body, cap);
	write_received(s);
}

static void
cmd_data(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (s->bdat) {
		/* RFC 3030 2: no DATA in a BDAT transaction */
		smtp_reply(s, "503 5.5.1 Error: DATA not allowed after BDAT");
		smtp_bad_command(s);
		return;
	}
	if (smtp_milter_data(s))
		return;
	smtp_data_go(s);
}

/* DATA accepted (by the milters too): 354 and read the message. */
void
smtp_data_go(struct smtp_session *s)
{
	start_body(s);
	smtp_data_init(&s->data, &s->body, s->cfg->message_size_max);
	s->state = ST_DATA;
	conn_set_max_line(&s->conn, SMTP_DATA_MAX_LINE);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct smtp_session *s, struct smtp_cmd *cmd)
{
	smtp_reset_transaction(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, struct smtp_cmd *cmd)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, struct smtp_cmd *cmd)
{
	smtp_reply(s, "221 2.0.0 Bye");
	conn_close(&s->conn, "quit");
}

static void
cmd_vrfy(struct smtp_session *s, struct smtp_cmd *cmd)
{
	smtp_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct smtp_session *s, struct smtp_cmd *cmd)
{
	/* Mailing list membership is not for strangers. */
	smtp_reply(s, "502 5.5.1 EXPN not available");
}

static void
cmd_help(struct smtp_session *s, struct smtp_cmd *cmd)
{
	smtp_reply(s, "214 2.0.0 Commands: %s MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS%s",
		   s->lmtp ? "LHLO" : "HELO EHLO", s->submission ? " AUTH" : "");
}

static void
cmd_starttls(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (s->conn.tls) {
		smtp_reply(s, "503 5.5.1 Error: TLS already active");
		smtp_bad_command(s);
		return;
	}
	SSL_CTX *ctx = tls_ctx_acquire();
	if (ctx == NULL) {
		smtp_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	SSL_CTX_free(ctx);
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	if (conn_starttls(&s->conn) < 0) {
		log_warn(s->conn.id, svc_name(s), "starttls-failed ip=%s", s->conn.peer_ip);
		conn_close(&s->conn, "STARTTLS failed");
		return;
	}
	/* RFC 3207 4.2: forget everything learnt in the clear. */
	s->state = ST_CONNECTED;
	smtp_reset_transaction(s);
	buf_reset(&s->helo);
	s->esmtp = false;
	/* ...including an AUTH done in the clear (plaintext_auth). */
	s->auth_id = s->auth_login = s->auth_dn = NULL;
	s->own = s->sendas = NULL;
	s->nown = s->nsendas = 0;
	log_info(s->conn.id, svc_name(s), "starttls ip=%s", s->conn.peer_ip);
}

/* A BDAT chunk has been read (or thrown away): its reply. */
static void
bdat_chunk_end(struct smtp_session *s)
{
	if (s->bdat_discard) {
		smtp_reply(s, "%s", s->bdat_error);
		smtp_bad_command(s);
	} else if (s->bdat_last) {
		smtp_finish_message(s, s->bdat_too_big, false);
	} else {
		smtp_reply(s, "250 2.0.0 %" PRIu64 " octets received", s->bdat_chunk);
	}
}

/* BDAT (RFC 3030): the chunk follows the command line at once, so it is
 * read (or thrown away) whatever the state; the reply comes after it. */
static void
cmd_bdat(struct smtp_session *s, struct smtp_cmd *cmd)
{
	s->bdat_error = NULL;
	if ((s->state & (ST_RCPT | ST_BDAT)) == 0)
		s->bdat_error = s->state == ST_CONNECTED ? "503 5.5.1 Error: send HELO/EHLO first"
				: s->state == ST_MAIL	 ? "503 5.5.1 Error: need RCPT command"
							 : "503 5.5.1 Error: need MAIL command";
	s->bdat_discard = s->bdat_error != NULL;
	s->bdat_last = cmd->last;
	s->bdat_chunk = cmd->chunk_size;
	if (!s->bdat_discard) {
		if (!s->bdat) {
			s->bdat = true;
			s->bdat_size = 0;
			start_body(s);
		}
		s->state = ST_BDAT;
	}
	if (cmd->chunk_size == 0)
		bdat_chunk_end(s);
	else
		conn_read_bytes(&s->conn, cmd->chunk_size);
}

static void
smtp_on_data(struct conn *c, const char *data, size_t len, bool last)
{
	struct smtp_session *s = (struct smtp_session *)c;

	if (!s->bdat_discard) {
		/* Over the limit: keep reading, store nothing more, fail at
		 * LAST (one clean reply, as for DATA). */
		if (s->bdat_too_big || len > s->cfg->message_size_max - s->bdat_size ||
		    buf_append(&s->body, data, len) < 0)
			s->bdat_too_big = true;
		s->bdat_size += len;
	}
	if (last)
		bdat_chunk_end(s);
}

static void
cmd_auth(struct smtp_session *s, struct smtp_cmd *cmd)
{
	smtp_cmd_auth(s, cmd);
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
    {SMTP_VERB_HELO, ST_COMMAND, cmd_helo, "503 5.5.1 Error: BDAT transaction in progress", NULL,
     "501 5.5.4 Syntax: HELO hostname", false},
    {SMTP_VERB_EHLO, ST_COMMAND, cmd_helo, "503 5.5.1 Error: BDAT transaction in progress", NULL,
     "501 5.5.4 Syntax: EHLO hostname", false},
    {SMTP_VERB_LHLO, ST_COMMAND, cmd_helo, "503 5.5.1 Error: BDAT transaction in progress", NULL,
     "501 5.5.4 Syntax: LHLO hostname", false},
    {SMTP_VERB_MAIL, ST_GREETED, cmd_mail, "503 5.5.1 Error: nested MAIL command",
     "503 5.5.1 Error: send HELO/EHLO first", "501 5.1.7 Bad sender address syntax", true},
    {SMTP_VERB_RCPT, ST_MAIL | ST_RCPT, cmd_rcpt, "503 5.5.1 Error: need MAIL command", NULL,
     "501 5.1.3 Bad recipient address syntax", true},
    {SMTP_VERB_DATA, ST_RCPT | ST_BDAT, cmd_data, "503 5.5.1 Error: need RCPT command", NULL,
     "501 5.5.4 Syntax: DATA", false},
    {SMTP_VERB_BDAT, ~0u, cmd_bdat, NULL, NULL, "501 5.5.4 Syntax: BDAT size [LAST]", false},
    {SMTP_VERB_RSET, ST_COMMAND | ST_BDAT, cmd_rset, NULL, NULL, "501 5.5.4 Syntax: RSET", false},
    {SMTP_VERB_NOOP, ST_COMMAND | ST_BDAT, cmd_noop, NULL, NULL, "501 5.5.4 Syntax: NOOP", false},
    {SMTP_VERB_QUIT, ST_COMMAND | ST_BDAT, cmd_quit, NULL, NULL, "501 5.5.4 Syntax: QUIT", false},
    {SMTP_VERB_VRFY, ST_COMMAND, cmd_vrfy, "503 5.5.1 Error: BDAT transaction in progress", NULL,
     "501 5.5.4 Syntax: VRFY address", false},
    {SMTP_VERB_EXPN, ST_COMMAND, cmd_expn, "503 5.5.1 Error: BDAT transaction in progress", NULL,
     "501 5.5.4 Syntax: EXPN list", false},
    {SMTP_VERB_HELP, ST_COMMAND | ST_BDAT, cmd_help, NULL, NULL, "501 5.5.4 Syntax: HELP", false},
    {SMTP_VERB_STARTTLS, ST_CONNECTED | ST_GREETED, cmd_starttls,
     "503 5.5.1 Error: MAIL transaction in progress", NULL,
     "501 5.5.4 Syntax: STARTTLS (no parameters allowed)", false},
    {SMTP_VERB_AUTH, ST_GREETED, cmd_auth, "503 5.5.1 Error: MAIL transaction in progress",
     "503 5.5.1 Error: send EHLO first", "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
     false},
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
	int r = smtp_parse_command_ex(line, len, s->smtputf8 ? SMTP_PARSE_F_UTF8 : 0, &cmd);
	const struct smtp_command *def = find_command(cmd.verb);

	if (def == NULL) {
		smtp_reply(s, "500 5.5.2 Command unrecognized");
		smtp_bad_command(s);
		return;
	}
	if (cmd.verb == SMTP_VERB_BDAT && r < 0) {
		/* We cannot know how many bytes follow: the stream is
		 * lost (RFC 3030 2 lets us close). */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_reply(s, "421 4.5.0 BDAT stream out of sync, closing");
		conn_close(&s->conn, "bad BDAT");
		return;
	}
	if ((def->states & s->state) == 0) {
		const char *text = def->out_of_sequence;
		if (s->state == ST_CONNECTED && def->before_helo != NULL)
			text = def->before_helo;
		if (s->state == ST_BDAT && def->verb == SMTP_VERB_MAIL)
			text = "503 5.5.1 Error: BDAT transaction in progress";
		if (text == NULL)
			text = "503 5.5.1 Error: bad sequence of commands";
		smtp_reply(s, "%s", text);
		smtp_bad_command(s);
		return;
	}
	if (r == SMTP_PARSE_UTF8) {
		/* RFC 6531 3.5 */
		smtp_reply(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8");
		smtp_bad_command(s);
		return;
	}
	if (r < 0) {
		if (def->explain)
			smtp_reply(s, "%s (%s)", def->syntax, smtp_parse_strerror(r));
		else
			smtp_reply(s, "%s", def->syntax);
		smtp_bad_command(s);
		return;
	}
	def->handler(s, &cmd);
}

static void
finish_data(struct smtp_session *s)
{
	size_t max_line = s->cfg->listeners[s->svc].max_line;

	conn_set_max_line(&s->conn, max_line > 0 ? max_line : SMTP_DEFAULT_MAX_LINE);
	smtp_finish_message(s, s->data.error == SMTP_DATA_TOO_BIG,
			    s->data.error == SMTP_DATA_LINE_TOO_LONG);
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
	if (s->state == ST_AUTH) {
		smtp_auth_line(s, line, len);
		explicit_bzero(line, len);
		return;
	}
	if (smtp_dnsbl_hold(s, line, len))
		return;
	handle_command(s, line, len);
}

void
smtp_replay_line(struct smtp_session *s, struct buf *line)
{
	handle_command(s, line->data, line->len);
}

static void
smtp_on_line_too_long(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	if (s->state == ST_DATA) {
		smtp_data_line_too_long(&s->data);
		return;
	}
	if (s->state == ST_AUTH) {
		auth_sasl_reset(&s->sasl);
		s->state = ST_GREETED;
		smtp_reply(s, "500 5.5.6 Authentication exchange line is too long");
		smtp_bad_command(s);
		return;
	}
	smtp_reply(s, "500 5.5.2 Line too long");
	smtp_bad_command(s);
}

static void
smtp_on_timeout(struct conn *c)
{
	struct smtp_session *s = (struct smtp_session *)c;

	log_info(c->id, svc_name(s), "timeout ip=%s", c->peer_ip);
	smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
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

	auth_sasl_reset(&s->sasl);
	buf_free(&s->sasl.user);
	buf_free(&s->sasl.secret);
	buf_free(&s->helo);
	buf_free(&s->reply);
	buf_free(&s->body);
	buf_free(&s->pending_given);
	buf_free(&s->pending_lower);
	spf_check_cancel(s->spf);
	milter_session_free(&s->milter);
	smtp_inauth_cancel(s);
	dnsbl_check_cancel(s->dnsbl);
	buf_free(&s->dnsbl_held);
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
    .on_data = smtp_on_data,
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
	s->submission = svc == SVC_SUBMISSION || svc == SVC_SUBMISSIONS;
	s->lmtp = svc == SVC_LMTP;
	s->state = ST_CONNECTED;
	s->tx = arena_new(0);
	auth_sasl_init(&s->sasl);
	auth_sasl_attach(&s->sasl, &s->conn, cfg, "smtp", smtp_auth_resume);
	buf_init(&s->helo, 512);
	buf_init(&s->reply, SMTP_REPLY_MAX);
	buf_init(&s->body, 0);
	buf_init(&s->pending_given, 1024);
	buf_init(&s->pending_lower, 1024);
	buf_init(&s->dnsbl_held, SMTP_REPLY_MAX);

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
		smtp_reply(s, "421 4.7.0 %s Too many connections, try again later", cfg->hostname);
		conn_close(&s->conn, "too many connections");
		return;
	}
	smtp_dnsbl_start(s);
	if (smtp_milter_connect(s))
		return;
	smtp_greet(s);
}

void
smtp_greet(struct smtp_session *s)
{
	smtp_reply(s, "220 %s %s Tern", s->cfg->hostname, s->lmtp ? "LMTP" : "ESMTP");
}
