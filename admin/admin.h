/*
 * admin.h - the core of tern-admind, the admin daemon: an HTTPS JSON API
 * (libevent's evhttp over OpenSSL, jansson) with a route table, admin
 * authentication against the directory, an audit log, /healthz and
 * /metrics. Feature modules (directory provisioning, mailbox lifecycle,
 * queue, backups) plug in by registering routes; see docs/openapi.yaml.
 *
 * Threads: admin_threads request threads (core/worker.h workers), each
 * with its own evhttp on an SO_REUSEPORT socket. A handler runs on one of
 * them and may block (synchronous LDAP, LMDB reads): the others keep
 * serving. Handlers fill the reply in the request and return; the core
 * sends it, audits it and frees the request's arena.
 *
 * Errors are JSON {"error": {"code", "message", "field"}} with 400 (bad
 * JSON or a bad field, named), 401 (no or bad credentials), 403 (not in
 * [admin] admin_group), 404, 405, 409, 413, 500, 503 (directory down).
 */
#ifndef TERN_ADMIN_H
#define TERN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compat.h"
#include "core/config.h"
#include "directory/dir_admin.h"

/* ---- authentication: the interface the directory library plugs into ---- */

/* Who made a request. Strings are owned by the identity
 * (admin_identity_clear frees them). */
struct admin_identity {
	char *login; /* the directory's login_attr value (or the login given) */
	char *dn;    /* the admin's entry */
};
void admin_identity_clear(struct admin_identity *id);
void admin_identity_copy(struct admin_identity *dst, const struct admin_identity *src);

enum admin_auth_result {
	ADMIN_AUTH_OK = 0,	    /* *id_r filled */
	ADMIN_AUTH_BAD = -1,	    /* unknown login, wrong password, disabled: 401 */
	ADMIN_AUTH_NOT_ADMIN = -2,  /* right password, not in admin_group: 403 */
	ADMIN_AUTH_UNAVAILABLE = -3 /* the directory cannot answer now: 503 */
};

/* Checks login/password and admin_group membership; blocking (runs on a
 * request thread). Must never log the password. */
typedef int admin_auth_fn(void *ctx, const struct config *cfg, const char *login,
			  const char *password, struct admin_identity *id_r);

/* Replaces the checker (default: admin_dir_authenticate). Call before
 * admin_server_start. */
void admin_set_authenticator(admin_auth_fn *fn, void *ctx);

/* The checker (admin_dir.c): dir_admin_authenticate on a pooled writer
 * handle: the user found by login or address (enabled), a bind as the
 * entry with the password, then the DN looked up in admin_group's
 * member attributes. ctx and cfg are unused (the pool follows the
 * current config). */
int admin_dir_authenticate(void *ctx, const struct config *cfg, const char *login,
			   const char *password, struct admin_identity *id_r);
/* A service-account bind within [directory] timeout (health: the account
 * ternd uses). 0, or -1 with a malloc'd *error_r. */
int admin_ldap_ping(const struct config *cfg, char **error_r);

/* ---- requests and replies ---- */

struct admin_param {
	const char *name;  /* from the pattern, "{id}" -> "id" */
	const char *value; /* percent-decoded path segment */
};

struct admin_req {
	struct arena *arena;		    /* the request's; freed after the reply */
	const struct config *cfg;	    /* a reference held for the request */
	const struct admin_identity *admin; /* NULL on public routes */
	const char *method;		    /* "GET", "POST", ... */
	const char *path;		    /* decoded path without the query */
	const char *peer_ip;
	json_t *body; /* the parsed JSON object, or NULL (no body) */
	const struct admin_param *params;
	size_t nparams;
	void *query; /* struct evkeyvalq *: use admin_query() */

	/* The reply, set by the handler through admin_reply_*. */
	int status;
	json_t *reply;		  /* owned */
	struct buf text;	  /* a non-JSON reply (metrics) */
	const char *content_type; /* static, for text */
	const char *summary;	  /* one line for the audit log (arena or static) */
	const char *www_auth;	  /* 401: add WWW-Authenticate */
	const char *location;	  /* a Location header (202 for a job), or NULL */
};

typedef void admin_handler_fn(struct admin_req *r);

/* Route flags. */
#define ADMIN_ROUTE_PUBLIC 0x01	  /* no credentials needed (healthz, login) */
#define ADMIN_ROUTE_METRICS 0x02  /* public from loopback if metrics_public */
#define ADMIN_ROUTE_NO_AUDIT 0x04 /* not audited when it succeeds (scrapes, probes) */

struct admin_route {
	const char *method;  /* "GET", "POST", "PATCH", "PUT", "DELETE" */
	const char *pattern; /* "/api/v1/users/{id}/disable": {name} is one segment */
	admin_handler_fn *handler;
	unsigned flags;
};

/* Adds routes (the array must outlive the server). Main thread, before
 * admin_server_start. */
void admin_routes_register(const struct admin_route *routes, size_t n);

/* A path parameter or a query parameter, or NULL. */
const char *admin_param(const struct admin_req *r, const char *name);
const char *admin_query(const struct admin_req *r, const char *name);

/* A JSON reply; takes ownership of body (NULL: an empty object). */
void admin_reply_json(struct admin_req *r, int status, json_t *body);
/* An error reply: code is a short machine word ("bad_field", "exists"),
 * field the JSON field at fault or NULL. */
void admin_reply_error(struct admin_req *r, int status, const char *code, const char *field,
		       const char *fmt, ...) PRINTF_LIKE(5, 6);
/* For handlers: a required (or optional, *value_r NULL when absent)
 * string field of the body. On a missing or non-string value replies 400
 * naming the field and returns -1. */
int admin_body_string(struct admin_req *r, const char *field, bool required, const char **value_r);

/* A body must be there (400 missing_body) and hold only the keys in
 * allowed (NULL-terminated); an unknown key is 400 unknown_field naming
 * it. 0, or -1 with the reply set. */
int admin_body_require(struct admin_req *r, const char *const *allowed);
/* An optional array of strings (*v_r NULL-terminated, in the request's
 * arena; NULL and 0 when absent or null). -1 with a 400 naming the field
 * for anything else. */
int admin_body_strings(struct admin_req *r, const char *field, const char *const **v_r,
		       size_t *n_r);
/* An optional boolean (def when absent or null); -1 with a 400 otherwise. */
int admin_body_bool(struct admin_req *r, const char *field, bool def, bool *v_r);

/* ---- the server (admin_http.c) ---- */

/* Registers the core routes (login, logout, healthz, metrics, whoami). */
void admin_core_routes(void);
/* Binds [admin] listen and starts the request threads: TLS from [tls],
 * or plain HTTP only with [admin] plaintext_auth = yes and no [tls]
 * cert. 0 or -1 with a malloc'd *error_r. Main thread. */
int admin_server_start(const struct config *cfg, char **error_r);
/* Stops the threads (pending delayed replies are sent first). */
void admin_server_stop(void);

/* ---- the mail store (admin_store.c) ----
 * Opened for writing on first use (it must exist: ternd creates it),
 * shared by requests and jobs, closed only for a restore. */

/* Holds the store open for the caller until admin_store_release(). 0, or
 * -1 with a malloc'd *error_r (not there yet, a restore running): 503. */
int admin_store_acquire(const struct config *cfg, char **error_r);
void admin_store_release(void);
/* Waits for every holder to release, closes the store and keeps it closed
 * (acquire fails) until admin_store_unlock_closed(). For a restore. */
void admin_store_lock_closed(void);
void admin_store_unlock_closed(void);
/* At stop: closes the store (waits for holders). */
void admin_store_close(void);

/* ---- feature modules ---- */

/* Mailbox lifecycle (admin_mailboxes.c) and backups (admin_backups.c):
 * route registration, main thread before admin_server_start. */
void admin_mailbox_routes(void);
void admin_backup_routes(void);
/* The outbound queue (admin_queue.c): list and show from the store,
 * changes through the running ternd's control socket. */
void admin_queue_routes(void);
/* Scheduled backups ([backup] schedule): a thread started after the
 * server, stopped before admin_job_shutdown(). */
void admin_backup_scheduler_start(void);
void admin_backup_scheduler_stop(void);
/* The periodic orphan scan ([admin] orphan_scan_interval, 0 = off; the
 * first scan at start): a thread started after the server, stopped
 * before admin_job_shutdown(). */
void admin_orphan_scanner_start(void);
void admin_orphan_scanner_stop(void);
/* Provisioning: users and aliases (admin_users.c), lists
 * (admin_lists.c). Main thread before admin_server_start. */
void admin_provision_routes(void);

/* ---- the directory writer (admin_dir.c) ---- */

/* A writer handle from the pool (opened, or reopened after a reload, as
 * needed); give it back with admin_dir_release. 0, or -1 with a malloc'd
 * *error_r when it cannot be opened (directory down, writer refused). */
int admin_dir_acquire(struct dir_admin **h_r, char **error_r);
void admin_dir_release(struct dir_admin *h);
/* admin_dir_acquire for a handler: NULL with a 503 reply set. */
struct dir_admin *admin_dir_get(struct admin_req *r);
/* At stop: closes every pooled handle (none may be in use). */
void admin_dir_close_all(void);
/* The reply for a failed dir_admin call: INVALID 400 bad_field, EXISTS
 * 409, NOTFOUND 404, DENIED 502 (the directory refused the writer
 * account: an access-control problem on the server side), AUTHFAIL and
 * UNAVAILABLE 503, UNSUPPORTED 501, ERROR 500; error.field from e. */
void admin_dir_reply(struct admin_req *r, int status, const struct dir_admin_error *e);
/* Tells a running ternd to drop its cached directory answers (control
 * socket "directory.flush"), after a successful write. A ternd that is
 * not running is fine; any other failure is logged. */
void admin_dir_flush(const struct config *cfg);

/* An RFC 3339 UTC string for t, JSON null for 0. */
json_t *admin_json_time(time_t t);
/* Tells a running ternd that user_id's mail was changed by this process
 * (control socket "mailbox.changed"); a ternd not running is fine. */
void admin_notify_mailbox_changed(const struct config *cfg, const char *user_id);

/* ---- pieces with no I/O, for unit tests ---- */

enum admin_match {
	ADMIN_MATCH_OK,
	ADMIN_MATCH_NO_PATH,   /* 404 */
	ADMIN_MATCH_NO_METHOD, /* 405: the path exists with other methods */
};
/* Finds method + path in routes. On OK, *route_r and the parameters
 * (copied into a) are set; on NO_METHOD, *allow_r lists the methods
 * ("GET, POST", in a). Empty segments ("//"), "." and ".." never match. */
enum admin_match admin_route_match(const struct admin_route *routes, size_t n, const char *method,
				   const char *path, struct arena *a,
				   const struct admin_route **route_r,
				   struct admin_param **params_r, size_t *nparams_r,
				   const char **allow_r);

/* A deep copy of v with the value of every key containing "password",
 * "secret" or "token" (any case) replaced by "***". NULL stays NULL. */
json_t *admin_audit_redact(const json_t *v);
/* One audit line (JSON, no newline) into out: time (RFC 3339, UTC),
 * admin, ip, method, path, query, params (redacted body), status,
 * result. 0 or -1 (cap). */
int admin_audit_format(struct buf *out, long long unix_time, const char *admin, const char *ip,
		       const char *method, const char *path, const json_t *query,
		       const json_t *body, int status, const char *result);
/* Appends one line to path with a single write(2). 0 or -1 (logged). */
int admin_audit_append(const char *path, const struct buf *line);

#endif
