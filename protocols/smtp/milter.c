/*
 * milter.c - the milter client (milter.h): per SMTP session, one
 * connection to each configured milter (inet or unix socket), opened at
 * the connect stage, negotiated at version 6 (SMFIC_OPTNEG), driven
 * command by command on the worker's loop with bufferevents. Postfix's
 * order: each stage goes to the milters in the configured order; the
 * first REJECT/TEMPFAIL/DISCARD (or REPLYCODE) ends it. At the end of the
 * message each milter sees the message as the milters before it left it.
 *
 * How it fails: a milter that is unreachable, slow past its timeout or
 * that breaks the protocol is closed and marked down for this session;
 * its default_action decides (accept: skipped; tempfail: 451 4.7.1).
 * Envelope changes (CHGFROM, ADDRCPT, ADDRCPT_PAR, DELRCPT) are checked
 * and handed to the caller in the verdict, in order; ESMTP arguments
 * that come with them are logged and not used.
 */
#include "milter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "core/worker.h"
#include "milter_wire.h"

#define OUR_ACTIONS                                                                                \
	(SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_CHGHDRS |           \
	 SMFIF_QUARANTINE | SMFIF_CHGFROM | SMFIF_ADDRCPT_PAR | SMFIF_SETSYMLIST)
/* Every stage may be skipped and every reply left out; no RCPT_REJ (we
 * never show a milter a refused recipient). */
#define OUR_PROTOCOL                                                                               \
	(SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY |             \
	 SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | \
	 SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA |           \
	 SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_HDR_LEADSPC)

enum stage_kind { K_NONE, K_CONNECT, K_HELO, K_MAIL, K_RCPT, K_DATA, K_MSG };

enum mc_state { MC_NEW, MC_CONNECTING, MC_NEGOTIATING, MC_READY, MC_DOWN };

/* Where one milter is in the message stage. */
enum eom_step { E_DATA, E_HEADERS, E_EOH, E_BODY, E_EOB, E_FINAL };

struct hdr {
	size_t start, end; /* the header's bytes, CRLFs included */
	size_t name_len;
};

struct mod {
	char op;
	uint32_t index;
	char *name, *value;
};

struct mc {
	struct milter_session *ms;
	const struct config_milter *cfg; /* borrowed from ms->cfg */
	struct bufferevent *bev;
	struct milter_wire_dec dec;
	enum mc_state state;
	uint32_t actions, protocol; /* negotiated */
	bool waiting;		    /* a reply is due */
	bool accepted_session;	    /* ACCEPT at connect */
	bool accepted_tx;	    /* ACCEPT in this transaction */
	bool in_tx;		    /* MAIL sent, no EOB or ABORT yet */
	char *symlist[SMFIM_COUNT]; /* SETSYMLIST, malloc'd; NULL: the defaults */
	/* message stage */
	enum eom_step step;
	struct hdr *hdrs; /* malloc'd */
	size_t nhdrs, hdr_i, body_off, body_end;
	struct mod *mods; /* malloc'd, strings malloc'd */
	size_t nmods, mods_cap;
	struct buf replbody;
	bool replaced;
};

struct macro {
	char *name, *value; /* malloc'd */
};

struct milter_session {
	struct worker *w;
	const struct config *cfg;
	uint64_t id;
	const char *service;
	struct arena *arena;
	struct mc *mcs;
	size_t n;
	struct macro *macros;
	size_t nmacros;
	struct event *done_ev;
	struct buf out; /* encoding scratch */
	/* the stage running */
	enum stage_kind kind;
	milter_cb *cb;
	void *arg;
	size_t cur;
	const char **argv; /* stage arguments, malloc'd copies */
	size_t argc;
	int port;
	struct buf *msg;
	bool data_sent; /* DATA went out at the DATA command */
	struct milter_verdict v;
	char *reply;		  /* REPLYCODE of the verdict, malloc'd */
	char *quarantine;	  /* malloc'd */
	struct milter_envop *env; /* envelope changes, in arena (cleared per stage) */
	size_t nenv, env_cap;
};

static void stage_next(struct milter_session *ms);
static void mc_fail(struct mc *mc, const char *why, bool resume);

/* ---- macros ---- */

void
milter_macro(struct milter_session *m, const char *name, const char *value)
{
	for (size_t i = 0; i < m->nmacros; i++) {
		if (strcmp(m->macros[i].name, name) == 0) {
			free(m->macros[i].value);
			m->macros[i].value = value != NULL ? xstrdup(value) : NULL;
			return;
		}
	}
	if (value == NULL)
		return;
	m->macros = xrealloc(m->macros, (m->nmacros + 1) * sizeof(*m->macros));
	m->macros[m->nmacros].name = xstrdup(name);
	m->macros[m->nmacros].value = xstrdup(value);
	m->nmacros++;
}

static const char *
macro_get(struct milter_session *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->nmacros; i++) {
		const char *n = m->macros[i].name;
		/* "{x}" and "x" name the same macro for multi-letter names */
		size_t nl = strlen(n);
		bool same = (nl == len && memcmp(n, name, len) == 0) ||
			    (nl == len + 2 && n[0] == '{' && memcmp(n + 1, name, len) == 0) ||
			    (len == nl + 2 && name[0] == '{' && memcmp(name + 1, n, nl) == 0);
		if (same && m->macros[i].value != NULL && m->macros[i].value[0] != '\0')
			return m->macros[i].value;
	}
	return NULL;
}

/* Postfix's default macro lists per stage. */
static const char *const default_macros[SMFIM_COUNT] = {
    [SMFIM_CONNECT] = "j {daemon_name} {daemon_addr} {if_name} {if_addr} v _ {client_addr} "
		      "{client_name} {client_port} {client_ptr}",
    [SMFIM_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    [SMFIM_ENVFROM] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
		      "{mail_mailer}",
    [SMFIM_ENVRCPT] = "{rcpt_addr} {rcpt_host} {rcpt_mailer}",
    [SMFIM_DATA] = "i",
    [SMFIM_EOM] = "i",
    [SMFIM_EOH] = "i",
};

static int
put_macros(struct mc *mc, enum milter_wire_stage stage, char cmd)
{
	struct milter_session *ms = mc->ms;
	const char *list = mc->symlist[stage] != NULL ? mc->symlist[stage] : default_macros[stage];
	const char *pairs[64];
	size_t n = 0;

	for (const char *p = list; *p != '\0' && n + 2 <= ARRAY_SIZE(pairs);) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t len = strcspn(p, " ,");
		if (len == 0)
			break;
		const char *v = macro_get(ms, p, len);
		if (v != NULL) {
			pairs[n++] = arena_strndup(ms->arena, p, len);
			pairs[n++] = v;
		}
		p += len;
	}
	if (n == 0)
		return 0;
	return milter_wire_macro(&ms->out, cmd, pairs, n / 2);
}

/* ---- I/O ---- */

static void
mc_close(struct mc *mc)
{
	if (mc->bev != NULL) {
		bufferevent_free(mc->bev);
		mc->bev = NULL;
	}
	mc->waiting = false;
}

/* Sends ms->out; a reply is due if want_reply. */
static void
mc_send(struct mc *mc, bool want_reply)
{
	struct milter_session *ms = mc->ms;

	bufferevent_write(mc->bev, ms->out.data, ms->out.len);
	buf_reset(&ms->out);
	mc->waiting = want_reply;
	if (want_reply) {
		struct timeval tv = {.tv_sec = mc->cfg->command_timeout};
		bufferevent_set_timeouts(mc->bev, &tv, NULL);
	} else {
		bufferevent_set_timeouts(mc->bev, NULL, NULL);
	}
}

static void mc_on_packet(struct mc *mc);

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct mc *mc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (mc->bev == bev && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		int r = milter_wire_feed(&mc->dec, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (r < 0) {
			mc_fail(mc, milter_wire_strerror(r), true);
			return;
		}
		if (r == MILTER_WIRE_PACKET)
			mc_on_packet(mc);
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mc *mc = arg;

	if (what & BEV_EVENT_CONNECTED) {
		struct milter_session *ms = mc->ms;
		mc->state = MC_NEGOTIATING;
		if (milter_wire_optneg(&ms->out, MILTER_WIRE_VERSION, OUR_ACTIONS, OUR_PROTOCOL) <
		    0) {
			mc_fail(mc, "encoding", true);
			return;
		}
		mc_send(mc, true);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		mc_fail(mc, mc->state == MC_CONNECTING ? "connect timeout" : "timeout", true);
	else if (what & BEV_EVENT_EOF)
		mc_fail(mc, "closed by the milter", true);
	else
		mc_fail(mc, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), true);
}

/* Starts connecting; -1 if it failed at once. */
static int
mc_open(struct mc *mc)
{
	struct milter_session *ms = mc->ms;
	const char *s = mc->cfg->socket;
	struct sockaddr_storage ss;
	socklen_t sl;

	memset(&ss, 0, sizeof(ss));
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", s + 5);
		sl = sizeof(*un);
	} else {
		char *host = NULL;
		unsigned port = 0;
		if (config_parse_hostport(s + 5, 0, &host, &port) < 0)
			return -1;
		struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
		if (inet_pton(AF_INET, h, &in4->sin_addr) == 1) {
			in4->sin_family = AF_INET;
			in4->sin_port = htons((uint16_t)port);
			sl = sizeof(*in4);
		} else if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			sl = sizeof(*in6);
		} else {
			free(host);
			return -1;
		}
		free(host);
	}
	mc->bev = bufferevent_socket_new(worker_base(ms->w), -1, BEV_OPT_CLOSE_ON_FREE);
	if (mc->bev == NULL)
		return -1;
	bufferevent_setcb(mc->bev, read_cb, NULL, event_cb, mc);
	struct timeval ct = {.tv_sec = mc->cfg->connect_timeout};
	bufferevent_set_timeouts(mc->bev, &ct, &ct);
	bufferevent_enable(mc->bev, EV_READ | EV_WRITE);
	mc->state = MC_CONNECTING;
	mc->waiting = true;
	if (bufferevent_socket_connect(mc->bev, (struct sockaddr *)&ss, (int)sl) < 0) {
		mc_close(mc);
		return -1;
	}
	return 0;
}

/* ---- the verdict ---- */

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_session *ms = arg;
	milter_cb *cb = ms->cb;
	void *cbarg = ms->arg;
	struct milter_verdict v = ms->v;

	ms->kind = K_NONE;
	ms->cb = NULL;
	if (cb != NULL)
		cb(cbarg, &v);
}

static void
stage_finish(struct milter_session *ms, enum milter_action action, const char *milter, bool down)
{
	ms->v.action = action;
	ms->v.milter = milter;
	ms->v.down = down;
	ms->v.reply = action == MILTER_REJECT || action == MILTER_TEMPFAIL ? ms->reply : NULL;
	ms->v.quarantine_reason = ms->quarantine;
	ms->v.env = ms->env;
	ms->v.nenv = ms->nenv;
	event_active(ms->done_ev, EV_TIMEOUT, 0);
}

static void
mc_fail(struct mc *mc, const char *why, bool resume)
{
	struct milter_session *ms = mc->ms;
	bool was_current = mc->waiting && ms->kind != K_NONE && &ms->mcs[ms->cur] == mc;

	log_warn(ms->id, ms->service, "milter-down name=%s socket=%s reason=\"%s\" default=%s",
		 mc->cfg->name, mc->cfg->socket, why,
		 mc->cfg->default_tempfail ? "tempfail" : "accept");
	mc_close(mc);
	mc->state = MC_DOWN;
	if (was_current && resume)
		stage_next(ms);
}

/* ---- header editing ---- */

static bool
wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Indexes the header block of msg; *body_r is where the body starts
 * (after the blank line), *end_r where the header block ends. */
static void
scan_headers(const char *p, size_t len, struct hdr **h_r, size_t *n_r, size_t *end_r,
	     size_t *body_r)
{
	struct hdr *h = NULL;
	size_t n = 0, cap = 0, off = 0;

	while (off < len) {
		const char *eol = memchr(p + off, '\n', len - off);
		size_t next = eol != NULL ? (size_t)(eol - p) + 1 : len;
		if (next - off <= 2 && (p[off] == '\r' || p[off] == '\n')) {
			*end_r = off;
			*body_r = next;
			goto out;
		}
		if (wsp(p[off]) && n > 0) {
			h[n - 1].end = next;
		} else {
			const char *colon = memchr(p + off, ':', next - off);
			if (colon == NULL)
				break; /* not a header: the body starts here */
			if (n == cap) {
				cap = cap == 0 ? 32 : cap * 2;
				h = xrealloc(h, cap * sizeof(*h));
			}
			size_t nl = (size_t)(colon - (p + off));
			while (nl > 0 && wsp(p[off + nl - 1]))
				nl--;
			h[n++] = (struct hdr){.start = off, .end = next, .name_len = nl};
		}
		off = next;
	}
	*end_r = off;
	*body_r = off;
out:
	*h_r = h;
	*n_r = n;
}

/* "name: value\r\n" with the milter's LF line breaks as CRLF and every
 * continuation line starting with white space. */
static int
format_header(struct buf *b, const char *name, const char *value, bool leadspc)
{
	int rc = buf_printf(b, "%s:%s", name, leadspc || wsp(value[0]) ? "" : " ");
	for (const char *q = value; rc == 0 && *q != '\0'; q++) {
		if (*q == '\r' && q[1] == '\n')
			continue;
		if (*q == '\n') {
			rc = buf_append(b, "\r\n", 2);
			if (rc == 0 && q[1] != '\0' && !wsp(q[1]))
				rc = buf_putc(b, '\t');
		} else {
			rc = buf_putc(b, *q);
		}
	}
	return rc == 0 ? buf_append(b, "\r\n", 2) : -1;
}

int
milter_edit_header(struct buf *msg, char op, uint32_t index, const char *name, const char *value,
		   bool leadspc)
{
	struct hdr *h;
	size_t n, end, body;
	size_t at, cut_end;
	struct buf out;
	int rc = 0;

	scan_headers(msg->data != NULL ? msg->data : "", msg->len, &h, &n, &end, &body);
	at = cut_end = end; /* ADDHEADER: after the last header */
	bool insert = true;
	if (op == SMFIR_INSHEADER) {
		at = cut_end = index < n ? h[index].start : end;
	} else if (op == SMFIR_CHGHEADER) {
		uint32_t seen = 0, want = index == 0 ? 1 : index;
		size_t nl = strlen(name);
		size_t i;
		for (i = 0; i < n; i++) {
			if (h[i].name_len == nl &&
			    strncasecmp(msg->data + h[i].start, name, nl) == 0 && ++seen == want)
				break;
		}
		if (i < n) {
			at = h[i].start;
			cut_end = h[i].end;
			insert = value[0] != '\0';
		} else if (value[0] == '\0') {
			free(h);
			return 0; /* deleting what is not there */
		}
	}
	free(h);
	buf_init(&out, msg->max);
	if (buf_append(&out, msg->data, at) < 0)
		rc = -1;
	if (rc == 0 && insert)
		rc = format_header(&out, name, value, leadspc);
	if (rc == 0 && msg->len > cut_end)
		rc = buf_append(&out, msg->data + cut_end, msg->len - cut_end);
	if (rc == 0 && end == body && end == msg->len && op != SMFIR_CHGHEADER)
		rc = 0; /* a message of headers only stays without a body */
	if (rc < 0) {
		buf_free(&out);
		return -1;
	}
	buf_free(msg);
	*msg = out;
	return 0;
}

int
milter_replace_body(struct buf *msg, const char *body, size_t len)
{
	struct hdr *h;
	size_t n, end, start;
	struct buf out;

	scan_headers(msg->data != NULL ? msg->data : "", msg->len, &h, &n, &end, &start);
	free(h);
	buf_init(&out, msg->max);
	if (buf_append(&out, msg->data, end) < 0 || buf_append(&out, "\r\n", 2) < 0 ||
	    (len > 0 && buf_append(&out, body, len) < 0)) {
		buf_free(&out);
		return -1;
	}
	buf_free(msg);
	*msg = out;
	return 0;
}

/* ---- stages ---- */

static bool
tx_stage(enum stage_kind k)
{
	return k == K_MAIL || k == K_RCPT || k == K_DATA || k == K_MSG;
}

static void
mods_clear(struct mc *mc)
{
	for (size_t i = 0; i < mc->nmods; i++) {
		free(mc->mods[i].name);
		free(mc->mods[i].value);
	}
	mc->nmods = 0;
	buf_reset(&mc->replbody);
	mc->replaced = false;
	free(mc->hdrs);
	mc->hdrs = NULL;
	mc->nhdrs = 0;
}

/* Sends the message stage's packets until one needs a reply; true when
 * waiting, false when this milter is done with the message. */
static bool
eom_pump(struct mc *mc)
{
	struct milter_session *ms = mc->ms;
	const char *p = ms->msg->data;
	uint32_t pr = mc->protocol;

	for (;;) {
		switch (mc->step) {
		case E_DATA:
			mc->step = E_HEADERS;
			if (pr & SMFIP_NODATA)
				break;
			if (put_macros(mc, SMFIM_DATA, SMFIC_DATA) < 0 ||
			    milter_wire_put(&ms->out, SMFIC_DATA, NULL, 0) < 0)
				goto bad;
			mc_send(mc, !(pr & SMFIP_NR_DATA));
			if (mc->waiting)
				return true;
			break;
		case E_HEADERS:
			if ((pr & SMFIP_NOHDRS) || mc->hdr_i >= mc->nhdrs) {
				mc->step = E_EOH;
				break;
			} else {
				const struct hdr *h = &mc->hdrs[mc->hdr_i++];
				char *name = arena_strndup(ms->arena, p + h->start, h->name_len);
				const char *v = memchr(p + h->start, ':', h->end - h->start) + 1;
				size_t vl = (size_t)(p + h->end - v);
				if (!(pr & SMFIP_HDR_LEADSPC) && vl > 0 && *v == ' ') {
					v++;
					vl--;
				}
				/* Folded lines joined by LF, the final CRLF dropped,
				 * as sendmail hands them over. */
				char *val = arena_alloc(ms->arena, vl + 1);
				size_t o = 0;
				for (size_t i = 0; i < vl; i++)
					if (!(v[i] == '\r' && i + 1 < vl && v[i + 1] == '\n'))
						val[o++] = v[i];
				while (o > 0 && (val[o - 1] == '\n' || val[o - 1] == '\r'))
					o--;
				val[o] = '\0';
				if (milter_wire_header(&ms->out, name, val) < 0)
					goto bad;
				mc_send(mc, !(pr & SMFIP_NR_HDR));
				if (mc->waiting)
					return true;
			}
			break;
		case E_EOH:
			mc->step = E_BODY;
			if (pr & SMFIP_NOEOH)
				break;
			if (put_macros(mc, SMFIM_EOH, SMFIC_EOH) < 0 ||
			    milter_wire_put(&ms->out, SMFIC_EOH, NULL, 0) < 0)
				goto bad;
			mc_send(mc, !(pr & SMFIP_NR_EOH));
			if (mc->waiting)
				return true;
			break;
		case E_BODY:
			if ((pr & SMFIP_NOBODY) || mc->body_off >= mc->body_end) {
				mc->step = E_EOB;
				break;
			} else {
				size_t n = mc->body_end - mc->body_off;
				if (n > MILTER_WIRE_CHUNK)
					n = MILTER_WIRE_CHUNK;
				if (milter_wire_put(&ms->out, SMFIC_BODY, p + mc->body_off, n) < 0)
					goto bad;
				mc->body_off += n;
				mc_send(mc, !(pr & SMFIP_NR_BODY));
				if (mc->waiting)
					return true;
			}
			break;
		case E_EOB:
			mc->step = E_FINAL;
			if (put_macros(mc, SMFIM_EOM, SMFIC_BODYEOB) < 0 ||
			    milter_wire_put(&ms->out, SMFIC_BODYEOB, NULL, 0) < 0)
				goto bad;
			mc_send(mc, true);
			return true;
		case E_FINAL:
			return false;
		}
	}
bad:
	buf_reset(&ms->out);
	mc_fail(mc, "message too big to encode", false);
	return false;
}

/* Sends this stage to mc; true if a reply is awaited. */
static bool
stage_send(struct mc *mc)
{
	struct milter_session *ms = mc->ms;
	uint32_t pr = mc->protocol;
	int rc = 0;
	bool want = false;

	switch (ms->kind) {
	case K_CONNECT: {
		if (pr & SMFIP_NOCONNECT)
			return false;
		char host[300];
		snprintf(host, sizeof(host), "[%s]", ms->argv[1]);
		char fam = strchr(ms->argv[1], ':') != NULL ? '6' : '4';
		rc = put_macros(mc, SMFIM_CONNECT, SMFIC_CONNECT);
		if (rc == 0)
			rc = milter_wire_connect(&ms->out,
						 ms->argv[0][0] != '\0' ? ms->argv[0] : host, fam,
						 (uint16_t)ms->port, ms->argv[1]);
		want = !(pr & SMFIP_NR_CONN);
		break;
	}
	case K_HELO:
		if (pr & SMFIP_NOHELO)
			return false;
		rc = put_macros(mc, SMFIM_HELO, SMFIC_HELO);
		if (rc == 0)
			rc = milter_wire_strings(&ms->out, SMFIC_HELO, ms->argv, 1);
		want = !(pr & SMFIP_NR_HELO);
		break;
	case K_MAIL:
		mc->in_tx = true;
		if (pr & SMFIP_NOMAIL)
			return false;
		rc = put_macros(mc, SMFIM_ENVFROM, SMFIC_MAIL);
		if (rc == 0)
			rc = milter_wire_strings(&ms->out, SMFIC_MAIL, ms->argv, ms->argc);
		want = !(pr & SMFIP_NR_MAIL);
		break;
	case K_RCPT:
		if (pr & SMFIP_NORCPT)
			return false;
		rc = put_macros(mc, SMFIM_ENVRCPT, SMFIC_RCPT);
		if (rc == 0)
			rc = milter_wire_strings(&ms->out, SMFIC_RCPT, ms->argv, ms->argc);
		want = !(pr & SMFIP_NR_RCPT);
		break;
	case K_DATA:
		if (pr & SMFIP_NODATA)
			return false;
		rc = put_macros(mc, SMFIM_DATA, SMFIC_DATA);
		if (rc == 0)
			rc = milter_wire_put(&ms->out, SMFIC_DATA, NULL, 0);
		want = !(pr & SMFIP_NR_DATA);
		break;
	case K_MSG: {
		size_t end;
		mods_clear(mc);
		scan_headers(ms->msg->data != NULL ? ms->msg->data : "", ms->msg->len, &mc->hdrs,
			     &mc->nhdrs, &end, &mc->body_off);
		mc->body_end = ms->msg->len;
		mc->hdr_i = 0;
		/* DATA went out at the DATA command unless BDAT was used. */
		mc->step = ms->argc > 0 ? E_DATA : E_HEADERS;
		return eom_pump(mc);
	}
	default:
		return false;
	}
	if (rc < 0) {
		buf_reset(&ms->out);
		mc_fail(mc, "command too long to encode", false);
		return false;
	}
	mc_send(mc, want);
	return want;
}

static void
stage_next(struct milter_session *ms)
{
	while (ms->cur < ms->n) {
		struct mc *mc = &ms->mcs[ms->cur];
		if (mc->state == MC_DOWN) {
			if (mc->cfg->default_tempfail) {
				stage_finish(ms, MILTER_TEMPFAIL, mc->cfg->name, true);
				return;
			}
			ms->cur++;
			continue;
		}
		if (mc->accepted_session || (mc->accepted_tx && tx_stage(ms->kind))) {
			ms->cur++;
			continue;
		}
		if (mc->state == MC_NEW) {
			if (mc_open(mc) == 0)
				return;
			mc_fail(mc, "cannot connect", false);
			continue;
		}
		if (mc->state != MC_READY)
			return; /* connecting or negotiating: resumes from there */
		if (stage_send(mc))
			return;
		if (mc->state == MC_DOWN)
			continue; /* failed while sending: its default */
		if (ms->kind == K_MSG)
			mc->in_tx = false;
		ms->cur++;
	}
	stage_finish(ms, MILTER_CONTINUE, NULL, false);
}

/* Applies a milter's modifications after its final CONTINUE/ACCEPT. */
static int
apply_mods(struct mc *mc)
{
	struct milter_session *ms = mc->ms;
	bool leadspc = (mc->protocol & SMFIP_HDR_LEADSPC) != 0;
	int rc = 0;

	for (size_t i = 0; i < mc->nmods && rc == 0; i++) {
		const struct mod *m = &mc->mods[i];
		rc = milter_edit_header(ms->msg, m->op, m->index, m->name, m->value, leadspc);
		log_info(ms->id, ms->service, "milter-header name=%s op=%s header=%s index=%u",
			 mc->cfg->name,
			 m->op == SMFIR_ADDHEADER   ? "add"
			 : m->op == SMFIR_INSHEADER ? "insert"
			 : m->value[0] == '\0'	    ? "delete"
						    : "change",
			 m->name, m->index);
		ms->v.modified = true;
		if (m->value[0] != '\0' && ms->cfg->milter_spam_headers != NULL) {
			/* A spam header set by a milter: "Yes", "YES", "Yes, score=..." */
			const char *list = ms->cfg->milter_spam_headers;
			size_t nl = strlen(m->name);
			for (const char *p = list; *p != '\0';) {
				while (*p == ' ' || *p == ',')
					p++;
				size_t len = strcspn(p, " ,");
				const char *v = m->value;
				while (wsp(*v))
					v++;
				if (len == nl && strncasecmp(p, m->name, nl) == 0 &&
				    strncasecmp(v, "yes", 3) == 0 &&
				    (v[3] == '\0' || v[3] == ',' || wsp(v[3]) || v[3] == ';'))
					ms->v.spam = true;
				p += len;
			}
		}
	}
	if (rc == 0 && mc->replaced) {
		rc = milter_replace_body(ms->msg, mc->replbody.data, mc->replbody.len);
		log_info(ms->id, ms->service, "milter-body name=%s op=replace size=%zu",
			 mc->cfg->name, mc->replbody.len);
		ms->v.modified = true;
	}
	mods_clear(mc);
	return rc;
}

static void
add_mod(struct mc *mc, const struct milter_reply *r)
{
	if (mc->nmods == mc->mods_cap) {
		mc->mods_cap = mc->mods_cap == 0 ? 8 : mc->mods_cap * 2;
		mc->mods = xrealloc(mc->mods, mc->mods_cap * sizeof(*mc->mods));
	}
	mc->mods[mc->nmods++] = (struct mod){
	    .op = r->cmd, .index = r->index, .name = xstrdup(r->name), .value = xstrdup(r->value)};
}

/* SETSYMLIST data: (stage u32, "names\0") pairs. */
static void
take_symlists(struct mc *mc, const char *p, size_t len)
{
	while (len >= 5) {
		uint32_t st = (uint32_t)(uint8_t)p[0] << 24 | (uint32_t)(uint8_t)p[1] << 16 |
			      (uint32_t)(uint8_t)p[2] << 8 | (uint8_t)p[3];
		const char *z = memchr(p + 4, '\0', len - 4);
		if (z == NULL)
			return;
		if (st < SMFIM_COUNT) {
			free(mc->symlist[st]);
			mc->symlist[st] = xstrdup(p + 4);
		}
		len -= (size_t)(z + 1 - p);
		p = z + 1;
	}
}

/* An envelope address as a milter sends it ("<a@b>", "a@b", "<>" for
 * the null sender): the bare address in the stage arena, or NULL when it
 * is not one we would accept on the wire (RFC 5321 4.5.3.1.3: 254 bytes;
 * no blanks or controls, no <>, one '@' with something on each side). */
static const char *
env_address(struct milter_session *ms, const char *given, bool null_ok)
{
	size_t len = strlen(given);

	if (len >= 2 && given[0] == '<' && given[len - 1] == '>') {
		given++;
		len -= 2;
	}
	if (len == 0)
		return null_ok ? "" : NULL;
	if (len > 254)
		return NULL;
	const char *at = memchr(given, '@', len);
	if (at == NULL || at == given || at == given + len - 1 ||
	    memchr(at + 1, '@', len - (size_t)(at + 1 - given)) != NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)given[i];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>')
			return NULL;
	}
	return arena_strndup(ms->arena, given, len);
}

/* CHGFROM, ADDRCPT(_PAR), DELRCPT: recorded for the verdict. NULL, or
 * why the milter broke the protocol. */
static const char *
env_change(struct mc *mc, const struct milter_reply *r, bool eob)
{
	struct milter_session *ms = mc->ms;
	uint32_t need = r->cmd == SMFIR_CHGFROM	  ? SMFIF_CHGFROM
			: r->cmd == SMFIR_DELRCPT ? SMFIF_DELRCPT
			: r->cmd == SMFIR_ADDRCPT ? SMFIF_ADDRCPT
						  : SMFIF_ADDRCPT_PAR;

	if (!eob)
		return "envelope change before end of message";
	if (!(mc->actions & need))
		return "envelope change not negotiated";
	const char *addr = env_address(ms, r->name, r->cmd == SMFIR_CHGFROM);
	if (addr == NULL)
		return "envelope change with a bad address";
	if (r->value != NULL && r->value[0] != '\0')
		log_info(ms->id, ms->service,
			 "milter-envelope name=%s action=%c args=\"%.200s\" "
			 "(ignored)",
			 mc->cfg->name, r->cmd, r->value);
	if (ms->nenv == ms->env_cap) {
		size_t cap = ms->env_cap == 0 ? 8 : ms->env_cap * 2;
		struct milter_envop *v = arena_alloc(ms->arena, cap * sizeof(*v));
		if (ms->nenv > 0)
			memcpy(v, ms->env, ms->nenv * sizeof(*v));
		ms->env = v;
		ms->env_cap = cap;
	}
	ms->env[ms->nenv].op = r->cmd == SMFIR_ADDRCPT_PAR ? SMFIR_ADDRCPT : r->cmd;
	ms->env[ms->nenv].addr = addr;
	ms->nenv++;
	return NULL;
}

static void
mc_on_packet(struct mc *mc)
{
	struct milter_session *ms = mc->ms;
	struct milter_reply r;
	int rc = milter_wire_reply(&mc->dec, &r);

	if (rc < 0) {
		mc_fail(mc, milter_wire_strerror(rc), true);
		return;
	}
	if (mc->state == MC_NEGOTIATING) {
		if (r.cmd != SMFIC_OPTNEG || r.version < 2 || r.version > MILTER_WIRE_VERSION) {
			mc_fail(mc, "bad option negotiation", true);
			return;
		}
		mc->actions = r.actions & OUR_ACTIONS;
		mc->protocol = r.protocol & OUR_PROTOCOL;
		take_symlists(mc, r.data, r.len);
		mc->state = MC_READY;
		mc->waiting = false;
		bufferevent_set_timeouts(mc->bev, NULL, NULL);
		log_debug(ms->id, ms->service,
			  "milter-ready name=%s version=%u actions=0x%x "
			  "protocol=0x%x",
			  mc->cfg->name, r.version, mc->actions, mc->protocol);
		if (ms->kind != K_NONE && &ms->mcs[ms->cur] == mc)
			stage_next(ms);
		return;
	}
	if (!mc->waiting || ms->kind == K_NONE || &ms->mcs[ms->cur] != mc) {
		mc_fail(mc, "reply out of turn", true);
		return;
	}
	bool eob = ms->kind == K_MSG && mc->step == E_FINAL;
	switch (r.cmd) {
	case SMFIR_PROGRESS:
		return; /* the read restarted the timeout */
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (!eob) {
			mc_fail(mc, "header change before end of message", true);
			return;
		}
		if (!(mc->actions & (r.cmd == SMFIR_CHGHEADER ? SMFIF_CHGHDRS : SMFIF_ADDHDRS))) {
			mc_fail(mc, "header change not negotiated", true);
			return;
		}
		add_mod(mc, &r);
		return;
	case SMFIR_REPLBODY:
		if (!eob || !(mc->actions & SMFIF_CHGBODY)) {
			mc_fail(mc, "body replacement out of place", true);
			return;
		}
		if (buf_append(&mc->replbody, r.data, r.len) < 0) {
			mc_fail(mc, "replaced body too big", true);
			return;
		}
		mc->replaced = true;
		return;
	case SMFIR_QUARANTINE:
		if (!eob) {
			mc_fail(mc, "quarantine before end of message", true);
			return;
		}
		log_info(ms->id, ms->service, "milter-quarantine name=%s reason=\"%.200s\"",
			 mc->cfg->name, r.value);
		ms->v.quarantine = true;
		free(ms->quarantine);
		ms->quarantine = xstrdup(r.value);
		return;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_DELRCPT:
	case SMFIR_CHGFROM: {
		const char *why = env_change(mc, &r, eob);
		if (why != NULL)
			mc_fail(mc, why, true);
		return;
	}
	case SMFIR_SETSYMLIST:
		free(mc->symlist[r.stage]);
		mc->symlist[r.stage] = xstrdup(r.value);
		return;
	default:
		break;
	}
	/* A decision for this command. */
	mc->waiting = false;
	bufferevent_set_timeouts(mc->bev, NULL, NULL);
	switch (r.cmd) {
	case SMFIR_CONTINUE:
		if (ms->kind == K_MSG && !eob) {
			if (eom_pump(mc))
				return;
			if (mc->state == MC_DOWN) {
				stage_next(ms);
				return;
			}
		}
		break;
	case SMFIR_SKIP:
		if (ms->kind == K_MSG && mc->step == E_BODY) {
			mc->body_off = mc->body_end;
			if (eom_pump(mc))
				return;
		}
		break;
	case SMFIR_ACCEPT:
		if (ms->kind == K_CONNECT)
			mc->accepted_session = true;
		else if (!(ms->kind == K_MSG && eob))
			mc->accepted_tx = true;
		if (ms->kind == K_MSG && !eob) {
			/* No more of this message for it; nothing to apply. */
			mc->in_tx = false;
			mods_clear(mc);
		}
		break;
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_DISCARD:
	case SMFIR_REPLYCODE:
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL: {
		enum milter_action a = r.cmd == SMFIR_REJECT	? MILTER_REJECT
				       : r.cmd == SMFIR_DISCARD ? MILTER_DISCARD
				       : r.cmd == SMFIR_REPLYCODE
					   ? (r.value[0] == '5' ? MILTER_REJECT : MILTER_TEMPFAIL)
					   : MILTER_TEMPFAIL;
		free(ms->reply);
		ms->reply = r.cmd == SMFIR_REPLYCODE ? xstrdup(r.value) : NULL;
		if (ms->kind == K_MSG)
			mc->in_tx = false;
		mods_clear(mc);
		log_info(ms->id, ms->service, "milter-verdict name=%s stage=%d action=%s%s%.200s%s",
			 mc->cfg->name, (int)ms->kind,
			 a == MILTER_REJECT    ? "reject"
			 : a == MILTER_DISCARD ? "discard"
					       : "tempfail",
			 ms->reply != NULL ? " reply=\"" : "", ms->reply != NULL ? ms->reply : "",
			 ms->reply != NULL ? "\"" : "");
		if (r.cmd == SMFIR_SHUTDOWN || r.cmd == SMFIR_CONN_FAIL) {
			mc_close(mc);
			mc->state = MC_DOWN;
		}
		stage_finish(ms, a, mc->cfg->name, false);
		return;
	}
	default:
		mc_fail(mc, "unexpected reply", true);
		return;
	}
	if (ms->kind == K_MSG) {
		if (eob && apply_mods(mc) < 0) {
			log_warn(ms->id, ms->service, "milter-edit-failed name=%s reason=too-big",
				 mc->cfg->name);
			stage_finish(ms, MILTER_TEMPFAIL, mc->cfg->name, false);
			return;
		}
		mc->in_tx = false;
	}
	ms->cur++;
	stage_next(ms);
}

/* ---- public ---- */

struct milter_session *
milter_session_new(struct worker *w, const struct config *cfg, uint64_t id, const char *service)
{
	struct milter_session *ms = xcalloc(1, sizeof(*ms));

	ms->w = w;
	ms->cfg = cfg;
	ms->id = id;
	ms->service = service;
	ms->arena = arena_new(0);
	ms->n = cfg->nmilters;
	ms->mcs = xcalloc(ms->n > 0 ? ms->n : 1, sizeof(*ms->mcs));
	for (size_t i = 0; i < ms->n; i++) {
		struct mc *mc = &ms->mcs[i];
		mc->ms = ms;
		mc->cfg = &cfg->milters[i];
		milter_wire_dec_init(&mc->dec);
		buf_init(&mc->replbody, cfg->message_size_max + 65536);
	}
	buf_init(&ms->out, MILTER_WIRE_MAX + 64 * 1024);
	ms->done_ev = event_new(worker_base(w), -1, 0, done_cb, ms);
	return ms;
}

void
milter_session_free(struct milter_session **mp)
{
	struct milter_session *ms = *mp;

	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++) {
		struct mc *mc = &ms->mcs[i];
		if (mc->bev != NULL && mc->state == MC_READY) {
			/* Best effort: the milter frees its context at once. */
			uint8_t quit[5] = {0, 0, 0, 1, SMFIC_QUIT};
			evutil_socket_t fd = bufferevent_getfd(mc->bev);
			if (evbuffer_get_length(bufferevent_get_output(mc->bev)) == 0 && fd >= 0)
				(void)send(fd, quit, sizeof(quit), MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		mc_close(mc);
		mods_clear(mc);
		for (int s = 0; s < SMFIM_COUNT; s++)
			free(mc->symlist[s]);
		free(mc->mods);
		buf_free(&mc->replbody);
		milter_wire_dec_free(&mc->dec);
	}
	for (size_t i = 0; i < ms->nmacros; i++) {
		free(ms->macros[i].name);
		free(ms->macros[i].value);
	}
	for (size_t i = 0; i < ms->argc; i++)
		free((char *)ms->argv[i]);
	free(ms->argv);
	free(ms->macros);
	free(ms->mcs);
	free(ms->reply);
	free(ms->quarantine);
	buf_free(&ms->out);
	event_free(ms->done_ev);
	arena_destroy(&ms->arena);
	free(ms);
	*mp = NULL;
}

static void
stage_start(struct milter_session *ms, enum stage_kind kind, const char *const *argv, size_t argc,
	    milter_cb *cb, void *arg)
{
	for (size_t i = 0; i < ms->argc; i++)
		free((char *)ms->argv[i]);
	free(ms->argv);
	ms->argv = argc > 0 ? xcalloc(argc, sizeof(*ms->argv)) : NULL;
	for (size_t i = 0; i < argc; i++)
		ms->argv[i] = xstrdup(argv[i]);
	ms->argc = argc;
	ms->kind = kind;
	ms->cb = cb;
	ms->arg = arg;
	ms->cur = 0;
	memset(&ms->v, 0, sizeof(ms->v));
	free(ms->reply);
	ms->reply = NULL;
	free(ms->quarantine);
	ms->quarantine = NULL;
	ms->env = NULL;
	ms->nenv = ms->env_cap = 0;
	arena_clear(ms->arena);
	if (kind == K_MAIL)
		ms->data_sent = false;
	else if (kind == K_DATA)
		ms->data_sent = true;
	stage_next(ms);
}

void
milter_connect(struct milter_session *m, const char *hostname, const char *ip, int port,
	       milter_cb *cb, void *arg)
{
	const char *argv[2] = {hostname != NULL ? hostname : "", ip};

	m->port = port;
	stage_start(m, K_CONNECT, argv, 2, cb, arg);
}

void
milter_helo(struct milter_session *m, const char *helo, milter_cb *cb, void *arg)
{
	stage_start(m, K_HELO, &helo, 1, cb, arg);
}

void
milter_mail(struct milter_session *m, const char *const *argv, size_t argc, milter_cb *cb,
	    void *arg)
{
	for (size_t i = 0; i < m->n; i++)
		m->mcs[i].accepted_tx = false;
	stage_start(m, K_MAIL, argv, argc, cb, arg);
}

void
milter_rcpt(struct milter_session *m, const char *const *argv, size_t argc, milter_cb *cb,
	    void *arg)
{
	stage_start(m, K_RCPT, argv, argc, cb, arg);
}

void
milter_data(struct milter_session *m, milter_cb *cb, void *arg)
{
	stage_start(m, K_DATA, NULL, 0, cb, arg);
}

void
milter_message(struct milter_session *m, struct buf *msg, milter_cb *cb, void *arg)
{
	const char *with_data = "data";

	m->msg = msg;
	/* argc 1: DATA was not sent at a DATA command (BDAT): send it here. */
	stage_start(m, K_MSG, &with_data, m->data_sent ? 0 : 1, cb, arg);
}

void
milter_abort(struct milter_session *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mc *mc = &m->mcs[i];
		if (mc->in_tx && mc->state == MC_READY && mc->bev != NULL && !mc->waiting) {
			if (milter_wire_put(&m->out, SMFIC_ABORT, NULL, 0) == 0)
				mc_send(mc, false);
		}
		mc->in_tx = false;
		mc->accepted_tx = false;
	}
}
