/*
 * admin_internal.h - internal to admin/: the pieces the HTTP server
 * (admin_http.c) shares with the route table, the credential store and
 * the health and metrics handlers. Every function here is thread-safe
 * unless it says otherwise.
 */
#ifndef TERN_ADMIN_INTERNAL_H
#define TERN_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "admin/admin.h"

/* The registered routes as one array (valid until the next register). */
const struct admin_route *admin_routes_table(size_t *n_r);
void admin_routes_clear(void);

/* ---- credentials (admin_session.c) ---- */

/* Checks login/password through the authenticator, with the short-lived
 * cache of successful checks (keyed by a salted hash of both; [admin]
 * auth_cache_ttl). */
int admin_session_check_basic(const struct config *cfg, const char *login, const char *password,
			      struct admin_identity *id_r);
/* Mints a token (64 hex digits) for id, valid for ttl seconds. The token
 * text goes to *token_r (malloc'd: wipe and free it); *expires_r is its
 * Unix expiry. */
void admin_session_token_new(const struct admin_identity *id, unsigned ttl, char **token_r,
			     time_t *expires_r);
/* 0 with a copy of the token's identity, or -1 (unknown or expired). */
int admin_session_token_check(const char *token, struct admin_identity *id_r);
/* Forgets a token. 0, or -1 if it was not known. */
int admin_session_token_drop(const char *token);
/* Drops every cached credential and token (shutdown). */
void admin_session_clear(void);

/* ---- handlers of the core routes (admin_health.c) ---- */
void admin_handle_healthz(struct admin_req *r);
void admin_handle_metrics(struct admin_req *r);
/* Main thread at start and stop: the read-only store is opened lazily on
 * first use, closed here. */
void admin_health_close(void);

/* Lists and their members (admin_lists.c), registered by
 * admin_provision_routes(). */
void admin_list_routes(void);

/* ---- the queue's list filter (admin_queue.c, no I/O) ---- */
struct queue_filter;
/* The query parameters of GET /api/v1/queue (NULL: absent) into *f
 * (borrowing the strings). 0, or -1 with the field at fault and a
 * message (static strings). */
int admin_queue_filter_parse(const char *sender, const char *recipient, const char *domain,
			     const char *state, const char *older_than, struct queue_filter *f,
			     const char **field_r, const char **error_r);

/* True for 127.0.0.0/8 and ::1 (and v4-mapped loopback). */
bool admin_is_loopback(const char *ip);

#endif
