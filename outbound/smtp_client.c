/*
 * smtp_client.c - one outbound SMTP connection on the runner's libevent
 * loop (bufferevents; an OpenSSL filter after STARTTLS).
 *
 * It walks the targets (MX hosts in order) until one greets, says EHLO
 * (HELO when EHLO gets a 5xx), STARTTLS when offered (policy "may") or
 * required, AUTH to a smarthost, then carries transactions one after the
 * other (RSET between), MAIL/RCPT/DATA pipelined when offered, one reply
 * per RCPT, the message dot-stuffed. Every wait has a timeout (RFC 5321
 * 4.5.3.2, from [outbound]).
 *
 * Failure: a target that cannot be reached, greets with 4xx/5xx or fails
 * TLS that was required is skipped for the next; when none is left the
 * owner's closed() gets OB_TEMP. A connection lost mid-transaction gives
 * each of its recipients a 4xx. What the server answers is passed on
 * per recipient; a message this server cannot take as it is (8-bit
 * without 8BITMIME, UTF-8 envelope without SMTPUTF8, REQUIRETLS without
 * verified TLS, over SIZE) fails with the RFC's 5xx without being sent.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/base64.h"
#include "core/log.h"
#include "outbound/outbound_internal.h"

enum cstate {
	CS_CONNECT,
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_HANDSHAKE,
	CS_AUTH,      /* AUTH PLAIN, or AUTH LOGIN's first step */
	CS_AUTH_USER, /* AUTH LOGIN: the user name was sent */
	CS_AUTH_PASS, /* AUTH LOGIN: the password was sent */
	CS_IDLE,      /* ready for a transaction */
	CS_RSET,
	CS_TXN, /* MAIL, RCPTs, DATA: replies counted by step */
	CS_DOT, /* the message went out; the final reply */
	CS_QUIT,
};

struct ob_client {
	struct event_base *base;
	struct bufferevent *bev; /* owned */
	struct ob_client_params p;
	struct ob_client_events ev;
	void *arg;
	size_t target; /* index into p.targets */
	enum cstate state;
	struct ob_reply reply;
	struct ob_caps caps;
	bool tls, verified, used, dead, in_cb;
	struct event *kill_ev; /* owned: frees a dead client from the loop */
	struct arena *a;       /* per connection: reply lines for logs */
	const char *last_error;
	struct ob_txn *txn; /* in flight, or NULL */
	size_t step;	    /* CS_TXN: 0 MAIL, 1..n RCPT, n+1 DATA */
	bool mail_ok;
	size_t accepted;
	bool pipelined;
	struct buf out; /* scratch for commands and the stuffed message */
};

static SSL_CTX *client_ctx; /* the runner thread's only */
static char *client_ctx_ca;

/* ---- helpers ---- */

static const char *
target_name(const struct ob_client *c)
{
	return c->target < c->p.ntargets ? c->p.targets[c->target].host : "?";
}

const char *
ob_client_host(const struct ob_client *c)
{
	return target_name(c);
}

static void send_cmd(struct ob_client *c, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
send_cmd(struct ob_client *c, const char *fmt, ...)
{
	va_list ap;
	buf_reset(&c->out);
	va_start(ap, fmt);
	int r = buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	if (r < 0 || buf_append(&c->out, "\r\n", 2) < 0)
		panic("outbound: command too long");
	bufferevent_write(c->bev, c->out.data, c->out.len);
}

static void
set_read_timeout(struct ob_client *c, unsigned secs)
{
	struct timeval r = {.tv_sec = secs}, w = {.tv_sec = c->p.data_timeout};
	bufferevent_set_timeouts(c->bev, &r, &w);
}

static void
drop_bev(struct ob_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->tls = c->verified = false;
	ob_reply_reset(&c->reply);
}

/* Every recipient of the transaction without a final code gets code and
 * text; then the owner hears of it. */
static void
txn_finish(struct ob_client *c, int code, const char *text)
{
	struct ob_txn *t = c->txn;
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrcpts; i++) {
		struct ob_rcpt *r = &t->rcpts[i];
		if (r->code != 0)
			continue;
		r->code = code != 0 ? code : 451;
		r->reply =
		    arena_strdup(t->a, code != 0 ? text : "451 4.4.2 no reply for this recipient");
	}
	c->txn = NULL;
	c->state = CS_IDLE;
	set_read_timeout(c, 0);
	t->remote_host = arena_strdup(t->a, target_name(c));
	t->done(t, t->arg);
}

/* The connection is unusable: fail what is in flight, tell the owner,
 * free at the end of the current callback. */
static void
client_fail(struct ob_client *c, const char *why)
{
	if (c->dead)
		return;
	c->last_error = arena_strdup(c->a, why);
	if (c->txn != NULL) {
		struct ob_txn *t = c->txn;
		/* The accepted recipients have no final answer: temporary. */
		for (size_t i = 0; i < t->nrcpts; i++) {
			if (t->rcpts[i].code / 100 == 2)
				t->rcpts[i].code = 0;
		}
		txn_finish(c, 451, arena_printf(c->a, "451 4.4.2 %s: %s", target_name(c), why));
	}
	c->dead = true;
}

static void
client_destroy(struct ob_client *c, bool notify)
{
	drop_bev(c);
	event_free(c->kill_ev);
	if (notify)
		c->ev.closed(c, c->arg, c->last_error != NULL ? OB_TEMP : OB_OK, c->last_error);
	ob_reply_free(&c->reply);
	buf_free(&c->out);
	struct arena *a = c->a;
	free(c);
	arena_destroy(&a);
}

static void connect_next(struct ob_client *c);

/* This target failed before the connection was ready: the next one. */
static void
target_failed(struct ob_client *c, const char *why)
{
	c->last_error = arena_printf(c->a, "%s: %s", target_name(c), why);
	log_info(c->p.id, "outbound", "connect-failed host=%s reason=\"%s\"", target_name(c), why);
	drop_bev(c);
	c->target++;
	connect_next(c);
}

/* ---- TLS ---- */

static SSL_CTX *
get_client_ctx(const char *ca_file)
{
	if (client_ctx != NULL && strcmp(client_ctx_ca, ca_file) == 0)
		return client_ctx;
	ob_client_cleanup_tls();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Verification always runs, never aborts the handshake: whether a
	 * connection was verified is decided per message (REQUIRETLS) or
	 * per route (verify). */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
			log_warn(0, "outbound", "tls-ca error=\"cannot load %s\"", ca_file);
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		log_warn(0, "outbound", "tls-ca error=\"no system CA store\"");
	}
	client_ctx = ctx;
	client_ctx_ca = xstrdup(ca_file);
	return ctx;
}

void
ob_client_cleanup_tls(void)
{
	if (client_ctx != NULL)
		SSL_CTX_free(client_ctx);
	client_ctx = NULL;
	free(client_ctx_ca);
	client_ctx_ca = NULL;
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void
start_tls(struct ob_client *c)
{
	SSL_CTX *ctx = get_client_ctx(c->p.ca_file);
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	if (ssl == NULL) {
		client_fail(c, "4.7.5 cannot set up TLS");
		return;
	}
	const char *host = target_name(c);
	SSL_set_tlsext_host_name(ssl, host);
	SSL_set1_host(ssl, host);
	/* Anything the server sent after its 220 came in the clear. */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	struct bufferevent *tb = bufferevent_openssl_filter_new(
	    c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		client_fail(c, "4.7.5 cannot set up TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	c->bev = tb;
	c->state = CS_HANDSHAKE;
	bufferevent_setcb(tb, read_cb, NULL, event_cb, c);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	set_read_timeout(c, c->p.command_timeout);
}

static void
tls_done(struct ob_client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	c->tls = true;
	c->verified = ssl != NULL && SSL_get_verify_result(ssl) == X509_V_OK &&
		      SSL_get0_peer_certificate(ssl) != NULL;
	log_info(c->p.id, "outbound", "tls host=%s version=%s verified=%s", target_name(c),
		 ssl != NULL ? SSL_get_version(ssl) : "?", c->verified ? "yes" : "no");
	if (c->p.tls == CONFIG_TLS_VERIFY && !c->verified) {
		target_failed(c, "4.7.5 TLS certificate verification failed");
		return;
	}
	c->state = CS_EHLO;
	send_cmd(c, "EHLO %s", c->p.helo);
}

/* ---- the session up to "ready" ---- */

static void
become_ready(struct ob_client *c)
{
	c->state = CS_IDLE;
	set_read_timeout(c, 0);
	log_info(c->p.id, "outbound", "connected host=%s tls=%s verified=%s pipelining=%s",
		 target_name(c), c->tls ? "yes" : "no", c->verified ? "yes" : "no",
		 c->caps.pipelining ? "yes" : "no");
	c->ev.ready(c, c->arg);
}

static void
after_ehlo(struct ob_client *c)
{
	if (!c->tls && c->p.tls != CONFIG_TLS_NONE && c->caps.starttls) {
		c->state = CS_STARTTLS;
		send_cmd(c, "STARTTLS");
		return;
	}
	if (!c->tls && (c->p.tls == CONFIG_TLS_REQUIRE || c->p.tls == CONFIG_TLS_VERIFY)) {
		target_failed(c, "4.7.4 STARTTLS required but not offered");
		return;
	}
	if (c->p.auth != NULL) {
		/* Never a password in the clear unless TLS was turned off on
		 * purpose (relayhost_tls = none). */
		if (!c->tls && c->p.tls != CONFIG_TLS_NONE) {
			client_fail(c, "4.7.0 no TLS for AUTH to the relayhost");
			return;
		}
		const char *colon = strchr(c->p.auth, ':');
		struct buf raw, enc;
		buf_init(&raw, 4096);
		buf_init(&enc, 8192);
		if (c->caps.auth_plain) {
			(void)buf_putc(&raw, '\0');
			(void)buf_append(&raw, c->p.auth, (size_t)(colon - c->p.auth));
			(void)buf_putc(&raw, '\0');
			(void)buf_append_str(&raw, colon + 1);
			(void)base64_encode(raw.data, raw.len, &enc);
			c->state = CS_AUTH;
			send_cmd(c, "AUTH PLAIN %s", buf_cstr(&enc));
		} else if (c->caps.auth_login) {
			c->state = CS_AUTH;
			send_cmd(c, "AUTH LOGIN");
		} else {
			buf_wipe(&raw);
			buf_wipe(&enc);
			client_fail(c, "4.7.0 the relayhost offers no AUTH PLAIN or LOGIN");
			return;
		}
		buf_wipe(&raw);
		buf_wipe(&enc);
		buf_wipe(&c->out);
		return;
	}
	become_ready(c);
}

static void
send_login_part(struct ob_client *c, bool user)
{
	const char *colon = strchr(c->p.auth, ':');
	struct buf enc;
	buf_init(&enc, 8192);
	if (user)
		(void)base64_encode(c->p.auth, (size_t)(colon - c->p.auth), &enc);
	else
		(void)base64_encode(colon + 1, strlen(colon + 1), &enc);
	send_cmd(c, "%s", buf_cstr(&enc));
	buf_wipe(&enc);
	buf_wipe(&c->out);
}

/* ---- transactions ---- */

static void send_rcpt(struct ob_client *c, size_t i);

static void
send_mail(struct ob_client *c)
{
	struct ob_txn *t = c->txn;
	struct buf *b = &c->out;
	buf_reset(b);
	(void)buf_printf(b, "MAIL FROM:<%s>", t->sender);
	if (c->caps.size)
		(void)buf_printf(b, " SIZE=%zu", t->msg_len);
	if (t->eightbit && c->caps.eightbitmime)
		(void)buf_append_str(b, " BODY=8BITMIME");
	if (t->smtputf8)
		(void)buf_append_str(b, " SMTPUTF8");
	if (c->caps.dsn) {
		if (t->ret == QUEUE_RET_FULL)
			(void)buf_append_str(b, " RET=FULL");
		else if (t->ret == QUEUE_RET_HDRS)
			(void)buf_append_str(b, " RET=HDRS");
		if (t->envid != NULL) {
			(void)buf_append_str(b, " ENVID=");
			(void)ob_xtext(t->envid, b);
		}
	}
	if (t->requiretls)
		(void)buf_append_str(b, " REQUIRETLS");
	if (buf_append(b, "\r\n", 2) < 0)
		panic("outbound: MAIL too long");
	bufferevent_write(c->bev, b->data, b->len);
}

static void
send_rcpt(struct ob_client *c, size_t i)
{
	struct ob_txn *t = c->txn;
	struct ob_rcpt *r = &t->rcpts[i];
	struct buf *b = &c->out;
	buf_reset(b);
	(void)buf_printf(b, "RCPT TO:<%s>", r->address);
	if (c->caps.dsn && r->notify != 0) {
		(void)buf_append_str(b, " NOTIFY=");
		if (r->notify & QUEUE_NOTIFY_NEVER) {
			(void)buf_append_str(b, "NEVER");
		} else {
			const char *sep = "";
			if (r->notify & QUEUE_NOTIFY_SUCCESS) {
				(void)buf_append_str(b, "SUCCESS");
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_FAILURE) {
				(void)buf_printf(b, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_DELAY)
				(void)buf_printf(b, "%sDELAY", sep);
		}
	}
	if (c->caps.dsn && r->orcpt != NULL)
		(void)buf_printf(b, " ORCPT=%s", r->orcpt);
	if (buf_append(b, "\r\n", 2) < 0)
		panic("outbound: RCPT too long");
	bufferevent_write(c->bev, b->data, b->len);
}

static void
send_message(struct ob_client *c)
{
	struct ob_txn *t = c->txn;
	buf_reset(&c->out);
	if (ob_dot_stuff(t->msg, t->msg_len, &c->out) < 0) {
		client_fail(c, "4.3.0 message too large to send");
		return;
	}
	bufferevent_write(c->bev, c->out.data, c->out.len);
	buf_free(&c->out); /* the copy now lives in the output buffer */
	buf_init(&c->out, SIZE_MAX);
	c->state = CS_DOT;
	set_read_timeout(c, c->p.data_timeout);
}

/* Checks that need no round trip; true if the txn was answered. */
static bool
txn_precheck(struct ob_client *c)
{
	struct ob_txn *t = c->txn;
	if (t->requiretls && !(c->tls && c->verified && c->caps.requiretls)) {
		txn_finish(c, 550,
			   arena_printf(t->a,
					"550 5.7.30 REQUIRETLS: %s offers no verified TLS with "
					"REQUIRETLS",
					target_name(c)));
		return true;
	}
	if (t->smtputf8 && !c->caps.smtputf8) {
		txn_finish(
		    c, 553,
		    arena_printf(t->a, "553 5.6.7 %s does not support SMTPUTF8", target_name(c)));
		return true;
	}
	if (t->eightbit && !c->caps.eightbitmime) {
		/* XXX no 7-bit downgrade (RFC 6152 conversion): refused instead. */
		txn_finish(c, 554,
			   arena_printf(t->a,
					"554 5.6.3 %s does not support 8BITMIME and the message "
					"has 8-bit content",
					target_name(c)));
		return true;
	}
	if (c->caps.size && c->caps.size_max > 0 && t->msg_len > c->caps.size_max) {
		txn_finish(c, 552,
			   arena_printf(t->a, "552 5.3.4 message larger than %s's limit of %llu",
					target_name(c), (unsigned long long)c->caps.size_max));
		return true;
	}
	return false;
}

static void
start_txn(struct ob_client *c)
{
	struct ob_txn *t = c->txn;
	if (txn_precheck(c))
		return;
	c->used = true;
	c->state = CS_TXN;
	c->step = 0;
	c->mail_ok = false;
	c->accepted = 0;
	c->pipelined = c->caps.pipelining;
	set_read_timeout(c, c->p.command_timeout);
	send_mail(c);
	if (c->pipelined) {
		for (size_t i = 0; i < t->nrcpts; i++)
			send_rcpt(c, i);
		send_cmd(c, "DATA");
	}
}

int
ob_client_send(struct ob_client *c, struct ob_txn *t)
{
	if (c->state != CS_IDLE || c->txn != NULL || c->dead)
		return -1;
	c->txn = t;
	for (size_t i = 0; i < t->nrcpts; i++) {
		t->rcpts[i].code = 0;
		t->rcpts[i].reply = NULL;
	}
	if (c->used) {
		c->state = CS_RSET;
		set_read_timeout(c, c->p.command_timeout);
		send_cmd(c, "RSET");
		return 0;
	}
	start_txn(c);
	return 0;
}

/* A reply during MAIL/RCPT/DATA. */
static void
txn_reply(struct ob_client *c, int code, const char *line)
{
	struct ob_txn *t = c->txn;
	size_t n = t->nrcpts;
	size_t step = c->step++;

	if (step == 0) {
		c->mail_ok = code / 100 == 2;
		if (!c->mail_ok) {
			for (size_t i = 0; i < n; i++) {
				t->rcpts[i].code = code;
				t->rcpts[i].reply = arena_strdup(t->a, line);
			}
			if (!c->pipelined) {
				txn_finish(c, code, line);
				return;
			}
		} else if (!c->pipelined) {
			send_rcpt(c, 0);
		}
		return;
	}
	if (step <= n) {
		struct ob_rcpt *r = &t->rcpts[step - 1];
		if (c->mail_ok) {
			r->code = code;
			r->reply = arena_strdup(t->a, line);
			if (code / 100 == 2)
				c->accepted++;
		}
		if (!c->pipelined) {
			if (step < n)
				send_rcpt(c, step);
			else if (c->accepted > 0)
				send_cmd(c, "DATA");
			else
				txn_finish(c, 0, "");
		}
		return;
	}
	/* DATA */
	if (code == 354) {
		if (c->mail_ok && c->accepted > 0) {
			send_message(c);
		} else {
			/* RFC 2920 3.1: a 354 after every RCPT failed gets an
			 * empty message we then throw away. */
			bufferevent_write(c->bev, ".\r\n", 3);
			c->state = CS_DOT;
			c->accepted = 0;
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (t->rcpts[i].code / 100 == 2) {
			t->rcpts[i].code = code;
			t->rcpts[i].reply = arena_strdup(t->a, line);
		}
	}
	txn_finish(c, 0, "");
}

/* ---- replies ---- */

static void
handle_reply(struct ob_client *c)
{
	int code = c->reply.code;
	const char *line = ob_reply_oneline(&c->reply, c->a);
	int cls = code / 100;

	switch (c->state) {
	case CS_GREETING:
		if (cls != 2) {
			target_failed(c, line);
			return;
		}
		c->state = CS_EHLO;
		send_cmd(c, "EHLO %s", c->p.helo);
		return;
	case CS_EHLO:
		if (cls == 2) {
			ob_caps_parse(buf_cstr(&c->reply.text), &c->caps);
			after_ehlo(c);
		} else if (cls == 5) {
			c->state = CS_HELO;
			send_cmd(c, "HELO %s", c->p.helo);
		} else {
			target_failed(c, line);
		}
		return;
	case CS_HELO:
		if (cls != 2) {
			target_failed(c, line);
			return;
		}
		memset(&c->caps, 0, sizeof(c->caps));
		after_ehlo(c);
		return;
	case CS_STARTTLS:
		if (code != 220) {
			if (c->p.tls == CONFIG_TLS_MAY) {
				/* Offered, then refused: carry on in the clear. */
				c->caps.starttls = false;
				after_ehlo(c);
			} else {
				target_failed(c, line);
			}
			return;
		}
		start_tls(c);
		return;
	case CS_AUTH:
		if (code == 235) {
			become_ready(c);
		} else if (code == 334 && !c->caps.auth_plain) {
			c->state = CS_AUTH_USER;
			send_login_part(c, true);
		} else {
			client_fail(c, arena_printf(c->a, "4.7.0 AUTH refused: %s", line));
		}
		return;
	case CS_AUTH_USER:
		if (code != 334) {
			client_fail(c, arena_printf(c->a, "4.7.0 AUTH refused: %s", line));
			return;
		}
		c->state = CS_AUTH_PASS;
		send_login_part(c, false);
		return;
	case CS_AUTH_PASS:
		if (code != 235) {
			client_fail(c, arena_printf(c->a, "4.7.0 AUTH refused: %s", line));
			return;
		}
		become_ready(c);
		return;
	case CS_RSET:
		if (cls != 2) {
			client_fail(c, arena_printf(c->a, "RSET refused: %s", line));
			return;
		}
		start_txn(c);
		return;
	case CS_TXN:
		txn_reply(c, code, line);
		return;
	case CS_DOT:
		if (c->accepted > 0) {
			/* The reply to the dot is the answer for every
			 * recipient RCPT accepted. */
			struct ob_txn *t = c->txn;
			for (size_t i = 0; i < t->nrcpts; i++) {
				if (t->rcpts[i].code / 100 == 2) {
					t->rcpts[i].code = code;
					t->rcpts[i].reply = arena_strdup(t->a, line);
				}
			}
		}
		txn_finish(c, 0, "");
		return;
	case CS_QUIT:
		c->dead = true;
		return;
	case CS_IDLE:
		/* A 421 out of the blue: the server is closing. */
		c->last_error = arena_strdup(c->a, line);
		c->dead = true;
		return;
	case CS_CONNECT:
	case CS_HANDSHAKE:
		client_fail(c, "unexpected reply");
		return;
	}
}

/* Ends a callback: frees the client if it died meanwhile. */
static void
cb_exit(struct ob_client *c)
{
	c->in_cb = false;
	if (c->dead)
		client_destroy(c, true);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct ob_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->in_cb = true;
	while (!c->dead && c->bev == bev && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t used = 0;
		enum ob_parse st = ob_reply_feed(&c->reply, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (st == OB_PARSE_MORE)
			continue;
		if (st != OB_PARSE_DONE) {
			if (c->state <= CS_HANDSHAKE)
				target_failed(c, "not an SMTP server (bad reply)");
			else
				client_fail(c, "bad reply from the server");
			break;
		}
		handle_reply(c);
		ob_reply_reset(&c->reply);
		if (c->state == CS_HANDSHAKE)
			break; /* the rest belongs to the TLS filter */
	}
	cb_exit(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ob_client *c = arg;

	c->in_cb = true;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_CONNECT) {
			c->state = CS_GREETING;
			set_read_timeout(c, c->p.command_timeout);
		} else if (c->state == CS_HANDSHAKE) {
			tls_done(c);
		}
		cb_exit(c);
		return;
	}
	const char *why = (what & BEV_EVENT_TIMEOUT) ? "timeout"
			  : (what & BEV_EVENT_EOF)   ? "connection closed by the server"
						     : NULL;
	char errbuf[160];
	if (why == NULL) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e != 0) {
			ERR_error_string_n(e, errbuf, sizeof(errbuf));
			why = errbuf;
		} else {
			why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
		}
	}
	if (c->state == CS_QUIT || c->state == CS_IDLE) {
		c->dead = true; /* done, or the server hung up while idle */
	} else if (c->state == CS_HANDSHAKE) {
		/* XXX a failed opportunistic handshake could retry in the clear;
		 * the next target is tried instead. */
		target_failed(c, arena_printf(c->a, "TLS handshake failed: %s", why));
	} else if (c->state < CS_HANDSHAKE) {
		target_failed(c, why);
	} else {
		client_fail(c, why);
	}
	cb_exit(c);
}

static void
connect_next(struct ob_client *c)
{
	while (c->target < c->p.ntargets) {
		const struct ob_target *t = &c->p.targets[c->target];
		c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL)
			fatal("libevent: cannot create a bufferevent");
		bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
		struct timeval ct = {.tv_sec = c->p.connect_timeout};
		bufferevent_set_timeouts(c->bev, &ct, &ct);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		c->state = CS_CONNECT;
		memset(&c->caps, 0, sizeof(c->caps));
		c->used = false;
		if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)&t->addr,
					       (int)t->addrlen) == 0)
			return;
		c->last_error = arena_printf(c->a, "%s: cannot connect", t->host);
		drop_bev(c);
		c->target++;
	}
	/* Nothing left to try. */
	if (c->last_error == NULL)
		c->last_error = "no address to connect to";
	c->dead = true;
	if (!c->in_cb)
		event_active(c->kill_ev, EV_TIMEOUT, 0);
}

static void
kill_cb(evutil_socket_t fd, short what, void *arg)
{
	client_destroy(arg, true);
}

struct ob_client *
ob_client_new(struct event_base *base, const struct ob_client_params *p,
	      const struct ob_client_events *ev, void *arg)
{
	struct ob_client *c = xcalloc(1, sizeof(*c));
	c->a = arena_new(0);
	c->base = base;
	c->p = *p;
	c->ev = *ev;
	c->arg = arg;
	ob_reply_init(&c->reply);
	buf_init(&c->out, SIZE_MAX);
	c->kill_ev = evtimer_new(base, kill_cb, c);
	if (c->kill_ev == NULL)
		fatal("libevent: cannot create a timer");
	/* A failure right away is reported from the loop, not to an owner
	 * still setting up. */
	c->in_cb = true;
	connect_next(c);
	c->in_cb = false;
	if (c->dead)
		event_active(c->kill_ev, EV_TIMEOUT, 0);
	return c;
}

void
ob_client_close(struct ob_client *c)
{
	if (c->dead || c->state == CS_QUIT)
		return;
	if (c->state == CS_IDLE && c->bev != NULL) {
		c->state = CS_QUIT;
		set_read_timeout(c, 10);
		send_cmd(c, "QUIT");
		return;
	}
	/* Mid-conversation: hang up now. */
	client_fail(c, "closed");
	if (!c->in_cb)
		event_active(c->kill_ev, EV_TIMEOUT, 0);
}

void
ob_client_abort(struct ob_client *c)
{
	client_destroy(c, false);
}
