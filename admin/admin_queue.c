/*
 * admin_queue.c - the outbound queue in tern-admind (docs/openapi.yaml,
 * tag queue): a filtered, paged list, one message in detail, and retry
 * now, hold, release, delete and bounce.
 *
 * Reads go straight to the store (storage/queue.h, through
 * admin_store.c): they need nothing that only ternd holds, they work
 * while ternd is down (an admin looking at a stuck queue is exactly when
 * ternd may not be running), and a long list never squeezes through the
 * control socket's one-line answers. Changes go to the running ternd
 * ("queue.*" on its control socket, outbound/ob_control.c), whose runner
 * keeps the delivery schedule in memory and must see them at once; with
 * no ternd they answer 503, since writing behind the runner's back could
 * race a delivery in flight.
 *
 * How it fails: 400 with the field named (bad filter, limit, cursor or
 * id), 404 no such message, 409 (release of a message that is not held,
 * retry of a held one, delete or bounce during a delivery attempt), 503
 * store not there yet or ternd not running.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin/admin.h"
#include "admin/admin_internal.h"
#include "core/compat.h"
#include "core/control.h"
#include "storage/queue.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define ADDRESS_MAX 320
/* A bounce may wait for a directory lookup of the sender and a commit. */
#define CONTROL_TIMEOUT_MS 30000

/* ---- the filter (no I/O) ---- */

static bool
has_ctl_or_space(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

int
admin_queue_filter_parse(const char *sender, const char *recipient, const char *domain,
			 const char *state, const char *older_than, struct queue_filter *f,
			 const char **field_r, const char **error_r)
{
	memset(f, 0, sizeof(*f));
	*field_r = NULL;
	*error_r = NULL;
	if (sender != NULL) {
		if (strcmp(sender, "<>") == 0) {
			f->sender = "";
		} else if (sender[0] == '\0' || strlen(sender) > ADDRESS_MAX ||
			   has_ctl_or_space(sender)) {
			*field_r = "sender";
			*error_r = "sender must be an address, or <> for the null sender";
			return -1;
		} else {
			f->sender = sender;
		}
	}
	if (recipient != NULL) {
		if (strchr(recipient, '@') == NULL || strlen(recipient) > ADDRESS_MAX ||
		    has_ctl_or_space(recipient)) {
			*field_r = "recipient";
			*error_r = "recipient must be an address (local@domain)";
			return -1;
		}
		f->recipient = recipient;
	}
	if (domain != NULL) {
		if (domain[0] == '\0' || strchr(domain, '@') != NULL || strlen(domain) > 255 ||
		    has_ctl_or_space(domain)) {
			*field_r = "domain";
			*error_r = "domain must be a domain name (the part after @)";
			return -1;
		}
		f->domain = domain;
	}
	if (state != NULL) {
		f->state = queue_msg_state_parse(state);
		if (f->state == 0) {
			*field_r = "state";
			*error_r = "state must be one of queued, deferred, held";
			return -1;
		}
	}
	if (older_than != NULL) {
		if (config_parse_duration(older_than, &f->older_than) < 0 || f->older_than == 0) {
			*field_r = "older_than";
			*error_r = "older_than must be a duration above 0 (90, 30s, 15m, 2h, 3d)";
			return -1;
		}
	}
	return 0;
}

/* ---- JSON ---- */

static const char *
origin_name(enum queue_origin o)
{
	switch (o) {
	case QUEUE_ORIGIN_SUBMISSION:
		return "submission";
	case QUEUE_ORIGIN_FORWARD:
		return "forward";
	case QUEUE_ORIGIN_BOUNCE:
		return "bounce";
	case QUEUE_ORIGIN_LIST:
		return "list";
	case QUEUE_ORIGIN_REPORT:
		return "report";
	}
	return "?";
}

static const char *
rcpt_state_name(enum queue_rcpt_state s)
{
	return s == QUEUE_RCPT_DELIVERED ? "delivered"
	       : s == QUEUE_RCPT_FAILED	 ? "failed"
					 : "pending";
}

static json_t *
opt_string(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* A string that may hold bytes that are not UTF-8 (an address or a
 * remote reply): jansson refuses those, so they become '?'. */
static json_t *
safe_string(struct arena *a, const char *s)
{
	if (s == NULL)
		return json_null();
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	char *c = arena_strdup(a, s);
	for (char *p = c; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(c);
}

static json_t *
item_json(struct arena *a, const struct queue_info *m, bool detail)
{
	json_t *o = json_object();
	json_t *rcpts = json_array();
	time_t next = 0;
	uint32_t attempts = 0;
	const char *last_error = NULL;

	json_object_set_new(o, "id", json_string(arena_printf(a, "%016" PRIx64, m->queue_id)));
	json_object_set_new(o, "sender", safe_string(a, m->sender));
	json_object_set_new(o, "size", json_integer((json_int_t)m->size));
	json_object_set_new(o, "created", admin_json_time(m->created));
	json_object_set_new(o, "held", json_boolean(m->held));
	json_object_set_new(o, "state", json_string(queue_msg_state_name(m->state)));
	json_object_set_new(o, "origin", json_string(origin_name(m->origin)));
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt_info *ri = &m->rcpts[i];
		bool pending = ri->state == QUEUE_RCPT_PENDING;
		json_t *r = json_object();
		json_object_set_new(r, "address", safe_string(a, ri->address));
		json_object_set_new(r, "state", json_string(rcpt_state_name(ri->state)));
		json_object_set_new(r, "attempts", json_integer(ri->attempts));
		json_object_set_new(r, "next_attempt",
				    pending && !m->held ? admin_json_time(ri->next_attempt)
							: json_null());
		json_object_set_new(r, "last_error", safe_string(a, ri->last_error));
		if (detail) {
			json_object_set_new(r, "orcpt", safe_string(a, ri->orcpt));
			json_object_set_new(r, "delay_warned", json_boolean(ri->delay_warned));
		}
		json_array_append_new(rcpts, r);
		if (pending && (next == 0 || ri->next_attempt < next))
			next = ri->next_attempt;
		if (ri->attempts > attempts) {
			attempts = ri->attempts;
			last_error = ri->last_error;
		}
	}
	json_object_set_new(o, "attempts", json_integer(attempts));
	json_object_set_new(o, "next_attempt",
			    m->held || next == 0 ? json_null() : admin_json_time(next));
	json_object_set_new(o, "last_error", safe_string(a, last_error));
	json_object_set_new(o, "recipients", rcpts);
	if (detail) {
		json_object_set_new(o, "auth_user", opt_string(m->auth_user));
		json_object_set_new(o, "client", safe_string(a, m->client));
		json_object_set_new(o, "envid", safe_string(a, m->envid));
		json_object_set_new(o, "ret",
				    json_string(m->ret == QUEUE_RET_FULL   ? "FULL"
						: m->ret == QUEUE_RET_HDRS ? "HDRS"
									   : "default"));
		json_object_set_new(o, "smtputf8", json_boolean(m->smtputf8));
		json_object_set_new(o, "requiretls", json_boolean(m->requiretls));
	}
	return o;
}

static json_t *
headers_json(struct arena *a, const struct queue_headers *h)
{
	json_t *o = json_object();

	json_object_set_new(o, "from", safe_string(a, h->from));
	json_object_set_new(o, "to", safe_string(a, h->to));
	json_object_set_new(o, "cc", safe_string(a, h->cc));
	json_object_set_new(o, "subject", safe_string(a, h->subject));
	json_object_set_new(o, "date", safe_string(a, h->date));
	json_object_set_new(o, "message_id", safe_string(a, h->message_id));
	return o;
}

/* ---- handlers ---- */

static int
hold_store(struct admin_req *r)
{
	char *err = NULL;

	if (admin_store_acquire(r->cfg, &err) < 0) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", err);
		free(err);
		return -1;
	}
	return 0;
}

static void
handle_list(struct admin_req *r)
{
	const char *ls = admin_query(r, "limit"), *cursor = admin_query(r, "cursor");
	const char *field, *error;
	struct queue_filter f;
	unsigned long limit = LIST_LIMIT_DEFAULT;
	uint64_t after = 0;

	if (admin_queue_filter_parse(admin_query(r, "sender"), admin_query(r, "recipient"),
				     admin_query(r, "domain"), admin_query(r, "state"),
				     admin_query(r, "older_than"), &f, &field, &error) < 0) {
		admin_reply_error(r, 400, "bad_field", field, "%s", error);
		return;
	}
	if (ls != NULL) {
		char *end;
		errno = 0;
		limit = strtoul(ls, &end, 10);
		if (errno != 0 || *end != '\0' || ls[0] == '-' || ls[0] == '\0' || limit == 0 ||
		    limit > LIST_LIMIT_MAX) {
			admin_reply_error(r, 400, "bad_field", "limit",
					  "limit must be a number from 1 to %d", LIST_LIMIT_MAX);
			return;
		}
	}
	/* The cursor is the id of the last message of the previous page. */
	if (cursor != NULL && queue_id_parse(cursor, &after) < 0) {
		admin_reply_error(r, 400, "bad_field", "cursor",
				  "cursor must be the next_cursor of a previous page");
		return;
	}
	if (hold_store(r) < 0)
		return;
	struct queue_info *items;
	size_t n;
	bool more;
	int rc = queue_list(&f, after, limit, time(NULL), r->arena, &items, &n, &more);
	admin_store_release();
	if (rc != STORE_OK) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, item_json(r->arena, &items[i], false));
	json_t *next =
	    more && n > 0
		? json_string(arena_printf(r->arena, "%016" PRIx64, items[n - 1].queue_id))
		: json_null();
	admin_reply_json(r, 200, json_pack("{s:o, s:o}", "messages", arr, "next_cursor", next));
	r->summary = arena_printf(r->arena, "%zu queued messages", n);
}

/* {id} as a queue id; 400 naming "id" when it is not one. */
static int
path_id(struct admin_req *r, uint64_t *id_r)
{
	if (queue_id_parse(admin_param(r, "id"), id_r) < 0) {
		admin_reply_error(r, 400, "bad_field", "id",
				  "id must be a queue id (up to 16 hex digits)");
		return -1;
	}
	return 0;
}

/* Reads message id (the store held by the caller): 0, or -1 with 404 or
 * 503 answered. */
static int
load(struct admin_req *r, uint64_t id, struct queue_info *m)
{
	int rc = queue_get(id, r->arena, m);

	if (rc == STORE_OK)
		return 0;
	if (rc == STORE_NOTFOUND)
		admin_reply_error(r, 404, "not_found", "id",
				  "no message %016" PRIx64 " in the queue", id);
	else
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
	return -1;
}

static void
handle_get(struct admin_req *r)
{
	struct queue_info m;
	uint64_t id;

	if (path_id(r, &id) < 0 || hold_store(r) < 0)
		return;
	if (load(r, id, &m) < 0) {
		admin_store_release();
		return;
	}
	json_t *o = item_json(r->arena, &m, true);
	/* The header summary costs a read of the body: for show only. */
	struct buf b;
	buf_init(&b, r->cfg->message_size_max * 2 + (1 << 20));
	int rc = queue_message_read(id, &b);
	admin_store_release();
	if (rc == STORE_OK) {
		struct queue_headers h;
		queue_headers_parse(b.data != NULL ? b.data : "", b.len, r->arena, &h);
		json_object_set_new(o, "headers", headers_json(r->arena, &h));
	} else {
		json_object_set_new(o, "headers", json_null());
	}
	buf_free(&b);
	admin_reply_json(r, 200, o);
	r->summary = arena_printf(r->arena, "queue %016" PRIx64, id);
}

/* Asks the running ternd to act on message id: 0 with *reply_r (owned),
 * or -1 with the error answered. */
static int
ternd_call(struct admin_req *r, const char *cmd, uint64_t id, json_t **reply_r)
{
	char hex[17];
	char *err = NULL;
	json_t *reply = NULL;

	snprintf(hex, sizeof(hex), "%016" PRIx64, id);
	json_t *req = json_pack("{s:s, s:s}", "cmd", cmd, "id", hex);
	int rc = control_call(r->cfg->state_dir, req, CONTROL_TIMEOUT_MS, &reply, &err);
	json_decref(req);
	if (rc == CONTROL_OK) {
		free(err);
		*reply_r = reply;
		return 0;
	}
	const char *code = json_string_value(json_object_get(reply, "code"));
	switch (rc) {
	case CONTROL_NOT_RUNNING:
		admin_reply_error(r, 503, "ternd_not_running", NULL,
				  "ternd is not running: queue changes are made by its queue "
				  "runner; start ternd and try again");
		break;
	case CONTROL_REFUSED:
		if (code != NULL && strcmp(code, CONTROL_E_NOT_FOUND) == 0)
			admin_reply_error(r, 404, "not_found", "id", "%s", err);
		else if (code != NULL && strcmp(code, CONTROL_E_CONFLICT) == 0)
			admin_reply_error(r, 409, "conflict", NULL, "%s", err);
		else if (code != NULL && strcmp(code, CONTROL_E_BAD_REQUEST) == 0)
			admin_reply_error(r, 400, "bad_field", "id", "%s", err);
		else if (code != NULL && strcmp(code, CONTROL_E_UNAVAILABLE) == 0)
			admin_reply_error(r, 503, "unavailable", NULL, "ternd: %s", err);
		else
			admin_reply_error(r, 500, "error", NULL, "ternd: %s", err);
		break;
	default:
		admin_reply_error(r, 503, "unavailable", NULL, "ternd did not answer: %s",
				  err != NULL ? err : "?");
		break;
	}
	json_decref(reply);
	free(err);
	return -1;
}

/* hold, release, retry: the change, then the message as it is now. */
static void
change(struct admin_req *r, const char *verb)
{
	struct queue_info m;
	json_t *reply;
	uint64_t id;

	if (path_id(r, &id) < 0)
		return;
	r->summary = arena_printf(r->arena, "%s %016" PRIx64, verb, id);
	if (hold_store(r) < 0)
		return;
	/* 404 for an unknown id even when ternd is down. */
	int rc = load(r, id, &m);
	admin_store_release();
	if (rc < 0)
		return;
	if (ternd_call(r, arena_printf(r->arena, "queue.%s", verb), id, &reply) < 0)
		return;
	bool changed = json_is_true(json_object_get(reply, "changed"));
	bool in_flight = json_is_true(json_object_get(reply, "in_flight"));
	json_decref(reply);
	if (hold_store(r) < 0)
		return;
	rc = queue_get(id, r->arena, &m);
	admin_store_release();
	json_t *o;
	if (rc == STORE_OK) {
		o = item_json(r->arena, &m, false);
	} else if (rc == STORE_NOTFOUND) {
		/* Delivered (or failed) already, between the change and now. */
		o = json_pack("{s:s, s:b}", "id", arena_printf(r->arena, "%016" PRIx64, id),
			      "queued", 0);
	} else {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
		return;
	}
	json_object_set_new(o, "changed", json_boolean(changed));
	json_object_set_new(o, "in_flight", json_boolean(in_flight));
	admin_reply_json(r, 200, o);
	r->summary =
	    arena_printf(r->arena, "%s %016" PRIx64 "%s", verb, id, changed ? "" : " (unchanged)");
}

static void
handle_retry(struct admin_req *r)
{
	change(r, "retry");
}

static void
handle_hold(struct admin_req *r)
{
	change(r, "hold");
}

static void
handle_release(struct admin_req *r)
{
	change(r, "release");
}

static void
handle_delete(struct admin_req *r)
{
	struct queue_info m;
	json_t *reply;
	uint64_t id;

	if (path_id(r, &id) < 0)
		return;
	r->summary = arena_printf(r->arena, "delete %016" PRIx64, id);
	if (hold_store(r) < 0)
		return;
	int rc = load(r, id, &m);
	admin_store_release();
	if (rc < 0 || ternd_call(r, "queue.delete", id, &reply) < 0)
		return;
	json_decref(reply);
	admin_reply_json(
	    r, 200,
	    json_pack("{s:b, s:s}", "deleted", 1, "id", arena_printf(r->arena, "%016" PRIx64, id)));
	r->summary = arena_printf(r->arena, "deleted %016" PRIx64 " from <%s>, %zu recipients", id,
				  m.sender, m.nrcpts);
}

static void
handle_bounce(struct admin_req *r)
{
	struct queue_info m;
	json_t *reply;
	uint64_t id;

	if (path_id(r, &id) < 0)
		return;
	r->summary = arena_printf(r->arena, "bounce %016" PRIx64, id);
	if (hold_store(r) < 0)
		return;
	int rc = load(r, id, &m);
	admin_store_release();
	if (rc < 0 || ternd_call(r, "queue.bounce", id, &reply) < 0)
		return;
	bool dsn = json_is_true(json_object_get(reply, "dsn"));
	json_int_t n = json_integer_value(json_object_get(reply, "recipients"));
	json_decref(reply);
	admin_reply_json(r, 200,
			 json_pack("{s:b, s:s, s:b, s:I}", "bounced", 1, "id",
				   arena_printf(r->arena, "%016" PRIx64, id), "dsn", dsn,
				   "recipients", n));
	r->summary = arena_printf(r->arena, "bounced %016" PRIx64 " from <%s>, %lld recipients%s",
				  id, m.sender, (long long)n, dsn ? ", DSN sent" : ", no DSN");
}

static const struct admin_route routes[] = {
    {"GET", "/api/v1/queue", handle_list, 0},
    {"GET", "/api/v1/queue/{id}", handle_get, 0},
    {"DELETE", "/api/v1/queue/{id}", handle_delete, 0},
    {"POST", "/api/v1/queue/{id}/retry", handle_retry, 0},
    {"POST", "/api/v1/queue/{id}/hold", handle_hold, 0},
    {"POST", "/api/v1/queue/{id}/release", handle_release, 0},
    {"POST", "/api/v1/queue/{id}/bounce", handle_bounce, 0},
};

void
admin_queue_routes(void)
{
	admin_routes_register(routes, ARRAY_SIZE(routes));
}
