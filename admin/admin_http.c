/*
 * admin_http.c - tern-admind's HTTP(S) server: one evhttp per request
 * thread (core/worker.h), each on its own SO_REUSEPORT socket of every
 * [admin] listen address, TLS through evhttp_set_bevcb and the shared
 * context of core/tls.c. A request goes: route match (404/405) ->
 * credentials (401/403/503, unless the route is public) -> JSON body
 * (400) -> handler -> reply, audit line, log line.
 *
 * Credentials: HTTP Basic (login:password, checked through the
 * authenticator with a short cache) or a bearer token from
 * POST /api/v1/login. A failed check is answered only after the
 * failed-auth delay of the peer's address (protocols/sasl/mech.h), on a
 * timer, so a request thread is never put to sleep by a guesser.
 * How it fails: every error is a JSON body {"error": {...}}, except a
 * body over [admin] max_body, which libevent 2.1 itself answers with 413
 * and its own text (XXX: no hook to write that reply before 2.2).
 * Passwords and tokens never reach a log line or the audit log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "admin/admin_internal.h"
#include "core/base64.h"
#include "core/log.h"
#include "core/server.h"
#include "core/tls.h"
#include "core/worker.h"
#include "protocols/sasl/mech.h"

#define AUTH_HEADER_MAX 4096
#define AUDIT_LINE_MAX (256u << 10)

/* One request thread's server. */
struct hthread {
	struct worker *w;     /* borrowed */
	struct evhttp *http;  /* owned */
	struct hreq *pending; /* delayed replies (failed auth), owned */
};

/* A request in flight. */
struct hreq {
	struct admin_req r; /* first: handlers get &h->r */
	struct evhttp_request *ev;
	struct hthread *t;
	struct evkeyvalq query;
	bool query_parsed;
	struct admin_identity id; /* owned when authenticated */
	const char *claimed;	  /* login from the Basic header (arena), for audit */
	const char *token;	  /* the bearer token used (arena), wiped at free */
	const char *allow;	  /* 405: Allow */
	unsigned delay_ms;	  /* answer only after this */
	uint64_t t0;
	struct event *timer; /* delayed reply */
	struct hreq *next;
	unsigned route_flags;
};

static struct hthread *threads; /* owned, one per worker */
static unsigned nthreads;
static bool use_tls;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- replies ---- */

void
admin_reply_json(struct admin_req *r, int status, json_t *body)
{
	if (r->reply != NULL)
		json_decref(r->reply);
	r->reply = body != NULL ? body : json_object();
	r->status = status;
}

void
admin_reply_error(struct admin_req *r, int status, const char *code, const char *field,
		  const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	json_t *err = json_object();
	json_object_set_new(err, "code", json_string(code));
	json_t *m = json_string(msg);
	json_object_set_new(err, "message", m != NULL ? m : json_string("(not UTF-8)"));
	json_object_set_new(err, "field", field != NULL ? json_string(field) : json_null());
	json_t *body = json_object();
	json_object_set_new(body, "error", err);
	admin_reply_json(r, status, body);
	r->summary = arena_printf(r->arena, "%s: %s", code, msg);
	free(msg);
}

int
admin_body_string(struct admin_req *r, const char *field, bool required, const char **value_r)
{
	json_t *v = r->body != NULL ? json_object_get(r->body, field) : NULL;

	*value_r = NULL;
	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		admin_reply_error(r, 400, "missing_field", field, "%s is required", field);
		return -1;
	}
	if (!json_is_string(v)) {
		admin_reply_error(r, 400, "bad_field", field, "%s must be a string", field);
		return -1;
	}
	*value_r = json_string_value(v);
	return 0;
}

int
admin_body_require(struct admin_req *r, const char *const *allowed)
{
	const char *key;
	json_t *v;

	if (r->body == NULL) {
		admin_reply_error(r, 400, "missing_body", NULL, "a JSON object body is required");
		return -1;
	}
	json_object_foreach(r->body, key, v)
	{
		bool known = false;
		for (size_t i = 0; allowed != NULL && allowed[i] != NULL && !known; i++)
			known = strcmp(allowed[i], key) == 0;
		if (!known) {
			/* A typo ("qouta") must not pass as "nothing to change". */
			json_t *k = json_string(key);
			admin_reply_error(r, 400, "unknown_field", k != NULL ? key : NULL,
					  "unknown field %s", k != NULL ? key : "(not UTF-8)");
			json_decref(k);
			return -1;
		}
	}
	return 0;
}

int
admin_body_strings(struct admin_req *r, const char *field, const char *const **v_r, size_t *n_r)
{
	json_t *v = r->body != NULL ? json_object_get(r->body, field) : NULL;
	size_t i;
	json_t *item;

	*v_r = NULL;
	*n_r = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		admin_reply_error(r, 400, "bad_field", field, "%s must be an array of strings",
				  field);
		return -1;
	}
	const char **out = arena_alloc(r->arena, (json_array_size(v) + 1) * sizeof(*out));
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item)) {
			admin_reply_error(r, 400, "bad_field", field,
					  "%s must be an array of strings (item %zu is not)", field,
					  i);
			return -1;
		}
		out[i] = json_string_value(item);
	}
	out[json_array_size(v)] = NULL;
	*v_r = out;
	*n_r = json_array_size(v);
	return 0;
}

int
admin_body_bool(struct admin_req *r, const char *field, bool def, bool *v_r)
{
	json_t *v = r->body != NULL ? json_object_get(r->body, field) : NULL;

	*v_r = def;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		admin_reply_error(r, 400, "bad_field", field, "%s must be true or false", field);
		return -1;
	}
	*v_r = json_is_true(v);
	return 0;
}

const char *
admin_param(const struct admin_req *r, const char *name)
{
	for (size_t i = 0; i < r->nparams; i++) {
		if (strcmp(r->params[i].name, name) == 0)
			return r->params[i].value;
	}
	return NULL;
}

const char *
admin_query(const struct admin_req *r, const char *name)
{
	if (r->query == NULL)
		return NULL;
	return evhttp_find_header(r->query, name);
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}

/* ---- finishing a request ---- */

static json_t *
query_json(struct hreq *h)
{
	json_t *q = json_object();

	if (!h->query_parsed)
		return q;
	for (struct evkeyval *kv = h->query.tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		json_t *v = json_string(kv->value);
		if (v != NULL)
			json_object_set_new(q, kv->key, v);
	}
	return q;
}

static void
audit(struct hreq *h)
{
	struct admin_req *r = &h->r;

	if (r->cfg == NULL)
		return;
	/* Probes and scrapes that succeed would drown the log. */
	if ((h->route_flags & ADMIN_ROUTE_NO_AUDIT) && r->status < 400)
		return;
	const char *who = h->id.login != NULL ? h->id.login : h->claimed;
	const char *result = r->summary != NULL ? r->summary : (r->status < 400 ? "ok" : "error");
	struct buf line;
	buf_init(&line, AUDIT_LINE_MAX);
	json_t *q = query_json(h);
	if (admin_audit_format(&line, (long long)time(NULL), who, r->peer_ip, r->method, r->path, q,
			       r->body, r->status, result) < 0) {
		buf_reset(&line);
		/* Too big to audit whole: keep the who/what/result. */
		json_t *short_params =
		    json_pack("{s:s}", "note", "params too large for the audit log");
		(void)admin_audit_format(&line, (long long)time(NULL), who, r->peer_ip, r->method,
					 r->path, NULL, short_params, r->status, result);
		json_decref(short_params);
	}
	json_decref(q);
	char *path = NULL;
	if (r->cfg->admin_audit_log[0] != '\0')
		path = xstrdup(r->cfg->admin_audit_log);
	else if (asprintf(&path, "%s/audit.log", r->cfg->state_dir) < 0)
		fatal("out of memory");
	(void)admin_audit_append(path, &line);
	free(path);
	buf_free(&line);
}

static void
hreq_free(struct hreq *h)
{
	if (h->timer != NULL)
		event_free(h->timer);
	if (h->query_parsed)
		evhttp_clear_headers(&h->query);
	if (h->r.body != NULL)
		json_decref(h->r.body);
	if (h->r.reply != NULL)
		json_decref(h->r.reply);
	buf_free(&h->r.text);
	if (h->token != NULL)
		explicit_bzero((char *)h->token, strlen(h->token));
	admin_identity_clear(&h->id);
	config_release((struct config *)h->r.cfg);
	arena_destroy(&h->r.arena);
	free(h);
}

static void
send_reply(struct hreq *h)
{
	struct admin_req *r = &h->r;
	struct evkeyvalq *hdrs = evhttp_request_get_output_headers(h->ev);
	struct evbuffer *out = evbuffer_new();

	if (out == NULL)
		fatal("out of memory");
	if (r->status == 0)
		admin_reply_error(r, 500, "internal", NULL, "the handler gave no reply");
	evhttp_add_header(hdrs, "Cache-Control", "no-store");
	if (r->reply != NULL) {
		char *text = json_dumps(r->reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text != NULL) {
			evbuffer_add(out, text, strlen(text));
			evbuffer_add(out, "\n", 1);
			free(text);
		}
		evhttp_add_header(hdrs, "Content-Type", "application/json");
	} else {
		evbuffer_add(out, r->text.data != NULL ? r->text.data : "", r->text.len);
		evhttp_add_header(hdrs, "Content-Type",
				  r->content_type != NULL ? r->content_type : "text/plain");
	}
	if (r->status == 401) {
		evhttp_add_header(hdrs, "WWW-Authenticate", "Basic realm=\"tern\"");
		evhttp_add_header(hdrs, "WWW-Authenticate", "Bearer realm=\"tern\"");
	}
	if (r->status == 405 && h->allow != NULL)
		evhttp_add_header(hdrs, "Allow", h->allow);
	if (r->location != NULL)
		evhttp_add_header(hdrs, "Location", r->location);
	evhttp_send_reply(h->ev, r->status, reason_phrase(r->status), out);
	evbuffer_free(out);

	audit(h);
	log_info(0, "admin", "request method=%s path=\"%s\" status=%d admin=\"%s\" ip=%s ms=%llu",
		 r->method, r->path != NULL ? r->path : "", r->status,
		 h->id.login != NULL ? h->id.login : "-", r->peer_ip != NULL ? r->peer_ip : "-",
		 (unsigned long long)(mono_ms() - h->t0));
	hreq_free(h);
}

static void
unlink_pending(struct hreq *h)
{
	for (struct hreq **p = &h->t->pending; *p != NULL; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			return;
		}
	}
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hreq *h = arg;

	(void)fd;
	(void)what;
	unlink_pending(h);
	send_reply(h);
}

/* Sends now, or after h->delay_ms. evhttp stops reading a connection
 * while its request waits for a reply, so the connection cannot go away
 * under the timer; shutdown sends every pending reply first. */
static void
finish(struct hreq *h)
{
	if (h->delay_ms == 0) {
		send_reply(h);
		return;
	}
	h->timer = evtimer_new(worker_base(h->t->w), delay_cb, h);
	if (h->timer == NULL) {
		send_reply(h);
		return;
	}
	struct timeval tv = {.tv_sec = h->delay_ms / 1000, .tv_usec = (h->delay_ms % 1000) * 1000};
	h->next = h->t->pending;
	h->t->pending = h;
	evtimer_add(h->timer, &tv);
}

/* ---- credentials ---- */

static void
refuse_bad_credentials(struct hreq *h, const char *why)
{
	h->delay_ms = mech_fail_delay_ms(h->r.cfg, h->r.peer_ip);
	mech_record_result(h->r.peer_ip, false);
	admin_reply_error(&h->r, 401, "unauthorized", NULL, "%s", why);
}

/* Maps an authenticator result to the reply; 0 if authenticated. */
static int
auth_outcome(struct hreq *h, int rc)
{
	switch (rc) {
	case ADMIN_AUTH_OK:
		mech_record_result(h->r.peer_ip, true);
		h->r.admin = &h->id;
		return 0;
	case ADMIN_AUTH_NOT_ADMIN:
		/* The password was right: no delay, but no entry either. */
		mech_record_result(h->r.peer_ip, true);
		admin_reply_error(&h->r, 403, "forbidden", NULL, "not a member of the admin group");
		return -1;
	case ADMIN_AUTH_UNAVAILABLE:
		admin_reply_error(&h->r, 503, "directory_unavailable", NULL,
				  "the directory cannot check credentials now");
		return -1;
	default:
		refuse_bad_credentials(h, "invalid credentials");
		return -1;
	}
}

/* 0 when the request carries valid admin credentials; else the reply is
 * set. */
static int
authenticate(struct hreq *h)
{
	const char *hdr =
	    evhttp_find_header(evhttp_request_get_input_headers(h->ev), "Authorization");

	if (hdr == NULL) {
		admin_reply_error(&h->r, 401, "unauthorized", NULL,
				  "credentials required (Basic or Bearer)");
		return -1;
	}
	if (strlen(hdr) > AUTH_HEADER_MAX) {
		refuse_bad_credentials(h, "Authorization header too long");
		return -1;
	}
	if (strncasecmp(hdr, "Bearer ", 7) == 0) {
		const char *tok = hdr + 7;
		while (*tok == ' ')
			tok++;
		h->token = arena_strdup(h->r.arena, tok);
		if (admin_session_token_check(tok, &h->id) < 0) {
			refuse_bad_credentials(h, "unknown or expired token");
			return -1;
		}
		h->r.admin = &h->id;
		return 0;
	}
	if (strncasecmp(hdr, "Basic ", 6) != 0) {
		admin_reply_error(&h->r, 401, "unauthorized", NULL,
				  "unsupported authorization scheme");
		return -1;
	}
	const char *b64 = hdr + 6;
	while (*b64 == ' ')
		b64++;
	struct buf dec;
	buf_init(&dec, AUTH_HEADER_MAX);
	char *colon = NULL;
	if (base64_decode(b64, strlen(b64), &dec) < 0 || dec.len == 0 ||
	    memchr(dec.data, '\0', dec.len) != NULL ||
	    (colon = memchr(dec.data, ':', dec.len)) == NULL) {
		buf_wipe(&dec);
		buf_free(&dec);
		refuse_bad_credentials(h, "malformed Basic credentials");
		return -1;
	}
	*colon = '\0';
	const char *login = dec.data, *password = colon + 1;
	h->claimed = arena_strdup(h->r.arena, login);
	int rc = admin_session_check_basic(h->r.cfg, login, password, &h->id);
	buf_wipe(&dec);
	buf_free(&dec);
	return auth_outcome(h, rc);
}

/* ---- core handlers that need the request internals ---- */

static void
handle_login(struct admin_req *r)
{
	struct hreq *h = (struct hreq *)r;
	const char *login, *password;

	if (r->body == NULL) {
		admin_reply_error(r, 400, "missing_body", NULL,
				  "a JSON object {\"login\", \"password\"} is required");
		return;
	}
	if (admin_body_string(r, "login", true, &login) < 0 ||
	    admin_body_string(r, "password", true, &password) < 0)
		return;
	if (login[0] == '\0') {
		admin_reply_error(r, 400, "bad_field", "login", "login must not be empty");
		return;
	}
	if (password[0] == '\0') {
		admin_reply_error(r, 400, "bad_field", "password", "password must not be empty");
		return;
	}
	h->claimed = arena_strdup(r->arena, login);
	if (auth_outcome(h, admin_session_check_basic(r->cfg, login, password, &h->id)) < 0)
		return;
	char *token;
	time_t expires;
	char when[32];
	struct tm tm;
	admin_session_token_new(&h->id, r->cfg->admin_token_ttl, &token, &expires);
	gmtime_r(&expires, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *body = json_object();
	json_object_set_new(body, "token", json_string(token));
	json_object_set_new(body, "expires", json_string(when));
	json_object_set_new(body, "login", json_string(h->id.login));
	explicit_bzero(token, strlen(token));
	free(token);
	admin_reply_json(r, 200, body);
	r->summary = "token issued";
}

static void
handle_logout(struct admin_req *r)
{
	struct hreq *h = (struct hreq *)r;

	if (h->token == NULL) {
		admin_reply_error(r, 400, "no_token", NULL,
				  "logout ends a token session; this request used Basic "
				  "credentials");
		return;
	}
	(void)admin_session_token_drop(h->token);
	admin_reply_json(r, 200, json_pack("{s:b}", "logged_out", 1));
	r->summary = "token dropped";
}

static void
handle_whoami(struct admin_req *r)
{
	admin_reply_json(r, 200,
			 json_pack("{s:s, s:s}", "login",
				   r->admin->login != NULL ? r->admin->login : "", "dn",
				   r->admin->dn != NULL ? r->admin->dn : ""));
}

static const struct admin_route core_routes[] = {
    {"POST", "/api/v1/login", handle_login, ADMIN_ROUTE_PUBLIC},
    {"POST", "/api/v1/logout", handle_logout, 0},
    {"GET", "/api/v1/whoami", handle_whoami, 0},
    {"GET", "/healthz", admin_handle_healthz, ADMIN_ROUTE_PUBLIC | ADMIN_ROUTE_NO_AUDIT},
    {"GET", "/metrics", admin_handle_metrics, ADMIN_ROUTE_METRICS | ADMIN_ROUTE_NO_AUDIT},
};

void
admin_core_routes(void)
{
	admin_routes_register(core_routes, ARRAY_SIZE(core_routes));
}

/* ---- dispatch ---- */

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "OTHER";
	}
}

/* Parses the body (if any) into r->body; 0, or -1 with a 400 set. */
static int
parse_body(struct hreq *h)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(h->ev);
	size_t len = evbuffer_get_length(in);

	if (len == 0)
		return 0;
	const char *data = (const char *)evbuffer_pullup(in, -1);
	json_error_t jerr;
	json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL) {
		admin_reply_error(&h->r, 400, "malformed_json", NULL,
				  "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
				  jerr.text);
		return -1;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		admin_reply_error(&h->r, 400, "malformed_json", NULL,
				  "the body must be a JSON object");
		return -1;
	}
	h->r.body = v;
	return 0;
}

static void
handle_request(struct evhttp_request *ev, void *arg)
{
	struct hthread *t = arg;
	struct hreq *h = xcalloc(1, sizeof(*h));
	struct admin_req *r = &h->r;

	h->ev = ev;
	h->t = t;
	h->t0 = mono_ms();
	r->arena = arena_new(0);
	r->cfg = config_acquire();
	buf_init(&r->text, 1);
	r->method = method_name(evhttp_request_get_command(ev));
	char *peer = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(ev), &peer, &port);
	r->peer_ip = arena_strdup(r->arena, peer != NULL ? peer : "");

	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *qs = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	r->path = arena_strdup(r->arena, path != NULL && path[0] != '\0' ? path : "/");
	if (qs != NULL) {
		if (evhttp_parse_query_str(qs, &h->query) < 0) {
			admin_reply_error(r, 400, "bad_query", NULL, "malformed query string");
			finish(h);
			return;
		}
		h->query_parsed = true;
		r->query = &h->query;
	}

	size_t nroutes;
	const struct admin_route *routes = admin_routes_table(&nroutes), *route;
	struct admin_param *params;
	switch (admin_route_match(routes, nroutes, r->method, r->path, r->arena, &route, &params,
				  &r->nparams, &h->allow)) {
	case ADMIN_MATCH_NO_PATH:
		admin_reply_error(r, 404, "not_found", NULL, "no such endpoint: %s", r->path);
		finish(h);
		return;
	case ADMIN_MATCH_NO_METHOD:
		admin_reply_error(r, 405, "method_not_allowed", NULL, "%s is not allowed here (%s)",
				  r->method, h->allow);
		finish(h);
		return;
	case ADMIN_MATCH_OK:
		break;
	}
	r->params = params;
	h->route_flags = route->flags;

	bool public = (route->flags & ADMIN_ROUTE_PUBLIC) != 0 ||
		      ((route->flags & ADMIN_ROUTE_METRICS) && r->cfg->admin_metrics_public &&
		       admin_is_loopback(r->peer_ip));
	if (!public && authenticate(h) < 0) {
		finish(h);
		return;
	}
	if (parse_body(h) < 0) {
		finish(h);
		return;
	}
	route->handler(r);
	finish(h);
}

/* ---- threads ---- */

static struct bufferevent *
tls_bevcb(struct event_base *base, void *arg)
{
	(void)arg;
	SSL_CTX *ctx = tls_ctx_acquire();
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;

	if (ctx != NULL)
		SSL_CTX_free(ctx); /* the SSL keeps its own reference */
	if (ssl == NULL) {
		log_error(0, "admin", "tls-error reason=\"cannot create TLS session\"");
		return NULL;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	else
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

int
admin_server_start(const struct config *cfg, char **error_r)
{
	const struct listener_config *lc = &cfg->listeners[SVC_ADMIN];

	if (!lc->present) {
		if (asprintf(error_r, "%s: no [admin] section: nothing to serve", cfg->path) < 0)
			fatal("out of memory");
		return -1;
	}
	use_tls = cfg->tls_cert[0] != '\0';
	if (!use_tls && !lc->plaintext_auth) {
		if (asprintf(error_r,
			     "%s:%d: [admin]: needs [tls] cert and key (or plaintext_auth = yes "
			     "for loopback tests)",
			     cfg->path, lc->line) < 0)
			fatal("out of memory");
		return -1;
	}
	if (use_tls && tls_init(cfg->tls_cert, cfg->tls_key, NULL, error_r) < 0)
		return -1;
	nthreads = worker_pool_size();
	threads = xcalloc(nthreads, sizeof(*threads));
	for (unsigned i = 0; i < nthreads; i++) {
		struct hthread *t = &threads[i];
		t->w = worker_get(i);
		t->http = evhttp_new(worker_base(t->w));
		if (t->http == NULL)
			fatal("libevent: cannot create an HTTP server");
		evhttp_set_gencb(t->http, handle_request, t);
		evhttp_set_max_body_size(t->http, (ev_ssize_t)cfg->admin_max_body);
		evhttp_set_max_headers_size(t->http, 16384);
		evhttp_set_timeout(t->http, (int)lc->idle_timeout);
		evhttp_set_allowed_methods(t->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
							EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
							EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
		if (use_tls)
			evhttp_set_bevcb(t->http, tls_bevcb, NULL);
	}
	int *fds = xcalloc(nthreads, sizeof(*fds));
	for (size_t a = 0; a < lc->naddrs; a++) {
		char *text = NULL;
		if (server_bind_spec(lc->addrs[a], SVC_ADMIN, nthreads, fds, &text, error_r) < 0) {
			free(fds);
			return -1;
		}
		for (unsigned i = 0; i < nthreads; i++) {
			if (evhttp_accept_socket(threads[i].http, fds[i]) < 0)
				fatal("libevent: cannot accept on %s", text);
		}
		if (!use_tls && !admin_is_loopback(text))
			log_warn(0, "admin",
				 "plaintext listen=%s note=\"passwords cross the "
				 "network in the clear\"",
				 text);
		log_info(0, "admin", "listen addr=%s tls=%s", text, use_tls ? "yes" : "no");
		free(text);
	}
	free(fds);
	return 0;
}

/* On each request thread: answer what waits, then close the server. */
static void
stop_here(void *arg)
{
	struct worker *self = worker_current();

	(void)arg;
	for (unsigned i = 0; i < nthreads; i++) {
		struct hthread *t = &threads[i];
		if (t->w != self && self != NULL)
			continue;
		while (t->pending != NULL) {
			struct hreq *h = t->pending;
			t->pending = h->next;
			send_reply(h);
		}
		if (t->http != NULL) {
			evhttp_free(t->http);
			t->http = NULL;
		}
	}
}

void
admin_server_stop(void)
{
	if (threads == NULL)
		return;
	worker_pool_run_everywhere(stop_here, NULL);
	free(threads);
	threads = NULL;
	nthreads = 0;
	admin_session_clear();
	if (use_tls)
		tls_shutdown();
}
