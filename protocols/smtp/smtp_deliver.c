/*
 * smtp_deliver.c - the end of a message (DATA's final dot or BDAT LAST):
 * the size and line checks, the submission From: check, then one store
 * transaction holding the local deliveries and, on the same
 * store_delivery, the remote recipients for the outbound queue
 * (storage/queue.h). The reply is sent from the store's callback, after
 * the commit is synced: one reply for SMTP, one per accepted RCPT for
 * LMTP (RFC 2033 4.2), so a recipient over quota gets its own 452.
 *
 * Submitted mail leaving the organisation is DKIM-signed here, before
 * the store, so the queued copy and every retry carry one signature.
 *
 * How it fails: a store failure answers 4xx so the sender retries (those
 * who got the message keep it: a duplicate beats a loss); a queued part
 * that did not commit fails the whole message with 451.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "dkim_internal.h"
#include "smtp_internal.h"

/* The store's status for one local target. */
static int
target_status(const struct store_delivery *d, size_t i)
{
	return d->status != STORE_OK ? d->status : d->rcpts[i].status;
}

static const char *
status_reply(int st)
{
	switch (st) {
	case STORE_OK:
		return "250 2.1.5 Ok";
	case STORE_OVERQUOTA:
		return "452 4.2.2 Mailbox full";
	case STORE_TOOBIG:
		return "552 5.2.2 Mailbox full: message exceeds the quota";
	case STORE_PERMFAIL:
		return "554 5.3.0 Error: delivery failed";
	default:
		return "451 4.3.0 Error: local delivery failed, try again later";
	}
}

/* LMTP (RFC 2033 4.2): one reply per accepted RCPT, in order. */
static void
lmtp_replies(struct smtp_session *s, const struct store_delivery *d)
{
	for (size_t i = 0; i < s->nlrcpts; i++) {
		const struct smtp_lrcpt *l = &s->lrcpts[i];
		int st = STORE_OK;
		for (size_t k = 0; k < l->ntargets && st == STORE_OK; k++)
			st = target_status(d, l->targets[k]);
		if (st == STORE_OK && l->remote && d->status != STORE_OK)
			st = d->status;
		if (st == STORE_OK)
			smtp_reply(s, "250 2.1.5 <%s> delivered, id=%016" PRIx64, l->address,
				   s->msg_id);
		else
			smtp_reply(s, "%s <%s>", status_reply(st), l->address);
	}
}

static void
delivery_done(struct store_delivery *d, void *arg)
{
	struct smtp_session *s = arg;
	struct conn *c = &s->conn;
	size_t ok = 0, tempfail = 0, overquota = 0, toobig = 0, permfail = 0;

	for (size_t i = 0; i < d->nrcpts; i++) {
		switch (target_status(d, i)) {
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
	/* The queued part has no per-recipient status: the transaction's. */
	bool queued_ok = d->outbound == NULL || d->status == STORE_OK;
	if (!queued_ok)
		tempfail++;
	bool all_ok = ok == d->nrcpts && queued_ok;
	if (all_ok) {
		log_info(c->id, c->service,
			 "delivered id=%016" PRIx64
			 " size=%zu rcpts=%zu queued=%zu queue_id=%" PRIu64,
			 s->msg_id, d->body_len, d->nrcpts, s->nremote,
			 d->outbound != NULL ? d->outbound->queue_id : 0);
	} else {
		/* Those who got it keep it; a 4xx makes the sender retry and
		 * they get a second copy. Say so for the admin. */
		log_warn(c->id, c->service,
			 "delivery-failed id=%016" PRIx64 " size=%zu ok=%zu tempfail=%zu "
			 "overquota=%zu toobig=%zu permfail=%zu queued=%zu status=\"%s\"",
			 s->msg_id, d->body_len, ok, tempfail, overquota, toobig, permfail,
			 s->nremote, store_strerror(d->status));
	}
	if (c->closed) {
		conn_unref(c);
		return;
	}
	if (s->lmtp) {
		lmtp_replies(s, d);
		if (all_ok)
			s->msgs++;
	} else if (all_ok) {
		s->msgs++;
		smtp_reply(s, "250 2.0.0 Ok: queued as %016" PRIx64, s->msg_id);
	} else if (tempfail > 0) {
		smtp_reply(s, "451 4.3.0 Error: local delivery failed, try again later");
	} else if (overquota > 0) {
		smtp_reply(s, "452 4.2.2 Mailbox full");
	} else if (permfail == 0) {
		smtp_reply(s, "552 5.2.2 Mailbox full: message exceeds the quota");
	} else {
		smtp_reply(s, "554 5.3.0 Error: delivery failed");
	}
	smtp_reset_transaction(s);
	conn_resume(c);
	conn_unref(c);
}

/* One final reply for the message: per recipient under LMTP. */
static void
message_reply(struct smtp_session *s, const char *text)
{
	size_t n = s->lmtp ? s->nlrcpts : 1;

	for (size_t i = 0; i < n; i++)
		smtp_reply(s, "%s", text);
}

static bool
has_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* The domain of the first From address, in the tx arena; NULL if none. */
static const char *
from_domain(struct smtp_session *s, const char *msg, size_t len)
{
	struct dkim_field *f;
	size_t nf, body_off;
	const char *dom = NULL;
	struct buf addrs;

	if (dkim_split_header(msg, len, &f, &nf, &body_off) < 0)
		return NULL;
	buf_init(&addrs, 64 * 1024);
	for (size_t i = 0; i < nf && dom == NULL; i++) {
		if (!dkim_field_is(&f[i], "From", 4))
			continue;
		const char *colon = memchr(f[i].p, ':', f[i].len);
		if (colon == NULL ||
		    smtp_address_list(colon + 1, (size_t)(f[i].p + f[i].len - colon - 1), &addrs) <=
			0)
			break;
		const char *at = strrchr(addrs.data, '@');
		if (at != NULL && at[1] != '\0')
			dom = arena_strdup(s->tx, at + 1);
	}
	buf_free(&addrs);
	free(f);
	return dom;
}

/* RFC 6376: sign with the From domain's key ([dkim] key_dir), putting
 * DKIM-Signature in front of the message (after our Received). Without
 * a key, or when signing fails, the message goes unsigned: one log line. */
static void
dkim_sign_submission(struct smtp_session *s)
{
	struct conn *c = &s->conn;
	const char *msg = s->body.data + s->msg_off;
	size_t msg_len = s->body.len - s->msg_off;
	const char *dom = from_domain(s, msg, msg_len), *d = NULL, *why = NULL;
	const struct dkim_key *k = dkim_keyset_find(s->cfg->dkim_keys, dom != NULL ? dom : "", &d);

	if (k == NULL) {
		log_info(c->id, c->service,
			 "dkim-unsigned id=%016" PRIx64 " domain=%s reason=no-key", s->msg_id,
			 dom != NULL ? dom : "-");
		return;
	}
	struct dkim_sign_params p = {
	    .domain = d, .selector = s->cfg->dkim_selector, .t = time(NULL)};
	struct buf sig;
	buf_init(&sig, 16 * 1024);
	int r = dkim_sign(k, &p, msg, msg_len, &sig, &why);
	char *at = r == 0 ? buf_reserve(&s->body, sig.len) : NULL;
	if (at == NULL) {
		log_warn(c->id, c->service,
			 "dkim-unsigned id=%016" PRIx64 " domain=%s reason=\"%s\"", s->msg_id, d,
			 why != NULL ? why : "message too big");
	} else {
		/* body may have moved: the message is re-read from it. */
		char *m = s->body.data + s->msg_off;
		memmove(m + sig.len, m, msg_len);
		memcpy(m, sig.data, sig.len);
		buf_commit(&s->body, sig.len);
		log_info(c->id, c->service, "dkim-signed id=%016" PRIx64 " d=%s s=%s a=%s",
			 s->msg_id, d, p.selector,
			 dkim_key_alg(k) == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
	}
	buf_free(&sig);
}

/* The end of DATA or of the last BDAT chunk: checks, then the store. */
void
smtp_finish_message(struct smtp_session *s, bool too_big, bool line_too_long)
{
	struct conn *c = &s->conn;

	s->state = ST_GREETED; /* the transaction ends whatever happens */
	if (too_big) {
		log_info(c->id, c->service, "rejected id=%016" PRIx64 " reason=too-big", s->msg_id);
		message_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		smtp_reset_transaction(s);
		return;
	}
	if (line_too_long) {
		log_info(c->id, c->service, "rejected id=%016" PRIx64 " reason=line-too-long",
			 s->msg_id);
		message_reply(s, "554 5.6.0 Message line too long");
		smtp_reset_transaction(s);
		return;
	}
	const char *msg = s->body.data + s->msg_off;
	size_t msg_len = s->body.len - s->msg_off;
	const char *why = NULL;
	if (s->submission && !smtp_from_allowed(s, msg, msg_len, &why)) {
		log_info(c->id, c->service,
			 "rejected id=%016" PRIx64 " user=\"%s\" reason=from-denied detail=\"%s\"",
			 s->msg_id, s->auth_login, why);
		smtp_reply(s, "553 5.7.1 %s", why);
		smtp_reset_transaction(s);
		return;
	}
	/* Mail leaving the organisation: submitted, with remote recipients.
	 * Signed before anything else may wait, so the stored and queued
	 * copies carry the same signature. */
	if (s->submission && s->auth_id != NULL && s->nremote > 0 && s->cfg->dkim_keys != NULL)
		dkim_sign_submission(s);
	/* Inbound ([smtp]): DKIM keys and the DMARC record, in parallel
	 * with each other and with SPF, which started at MAIL. */
	smtp_inauth_start(s);
	if (smtp_spf_wait(s))
		return;
	smtp_message_milters(s);
}

/* SPF is in (or not asked): the milters see the message, then it is
 * stored (smtp_milter.c calls smtp_store_message when they are done). */
void
smtp_message_milters(struct smtp_session *s)
{
	if (smtp_milter_message(s))
		return;
	smtp_store_message(s);
}

/* The message passed every check (and the milters): one store
 * transaction; the reply comes from its callback. */
void
smtp_store_message(struct smtp_session *s)
{
	struct conn *c = &s->conn;

	if (!smtp_authres_apply(s))
		return;
	const char *msg = s->body.data + s->msg_off;
	size_t msg_len = s->body.len - s->msg_off;
	struct store_delivery *d = arena_alloc(s->tx, sizeof(*d));
	d->body = s->body.data;
	d->body_len = s->body.len;
	d->internal_date = time(NULL);
	d->nrcpts = s->ntargets;
	d->rcpts = arena_alloc(s->tx, (s->ntargets + 1) * sizeof(*d->rcpts));
	for (size_t i = 0; i < s->ntargets; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		char *trace = arena_printf(s->tx, "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
					   s->sender, s->targets[i].rcpt);
		r->user_id = s->targets[i].user_id;
		r->trace = trace;
		r->trace_len = strlen(trace);
		r->quota = s->targets[i].quota;
		r->quota_messages = s->targets[i].quota_messages;
		r->status = STORE_TEMPFAIL;
		/* A spam verdict of the milters: the Junk folder, unless the
		 * user's junk_attr turns that off. A quarantine (DMARC
		 * p=quarantine) always goes there: it is the sender domain's
		 * policy, not a filter the user may opt out of. */
		if ((s->milter_junk && !s->targets[i].no_junk) || s->quarantine != NULL)
			r->special_use = STORE_SPECIAL_JUNK;
	}
	d->outbound = NULL;
	if (s->nremote > 0) {
		struct queue_envelope *e = arena_alloc(s->tx, sizeof(*e));
		e->sender = s->sender;
		e->origin = s->auth_id != NULL ? QUEUE_ORIGIN_SUBMISSION : QUEUE_ORIGIN_FORWARD;
		e->auth_user = s->auth_id;
		e->envid = s->envid;
		e->ret = s->ret;
		e->smtputf8 = s->smtputf8;
		e->eightbit = s->eightbit || has_8bit(msg, msg_len);
		e->requiretls = s->requiretls;
		e->client = arena_printf(s->tx, "[%s] (%s)", s->conn.peer_ip, buf_cstr(&s->helo));
		e->rcpts = s->remote;
		e->nrcpts = s->nremote;
		e->queue_id = 0;
		d->outbound = e;
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
