/*
 * control.h - ternd's control socket: how tern-admind (or an admin's
 * script) asks the running ternd to act at once, for the things only the
 * process that holds them can do: drop cached directory answers after a
 * provisioning write, wake the IMAP sessions of a user whose mail was
 * changed by another process, queue operations the runner must see.
 *
 * The socket is STATE_DIR/control, a unix stream socket created by ternd
 * with mode 0600 (so only ternd's user, and root, can connect); a peer
 * whose SO_PEERCRED uid is neither ternd's nor 0 is refused as well.
 *
 * Protocol: each request is one line holding one JSON object with a
 * "cmd" member ({"cmd": "directory.flush"}), answered by one line:
 * {"ok": true, ...results} or {"ok": false, "error": "plain words",
 * "code": "not_found"|"bad_request"|"conflict"|"unavailable"|"error"}.
 * A connection may carry several requests, one after another; lines are
 * at most CONTROL_LINE_MAX bytes.
 *
 * Commands built in: "ping" (answers {"ok": true, "pid": N, "version":
 * "..."}). Modules add theirs with control_register() before
 * control_start().
 *
 * Threads: the server runs on its own thread and serves one request at a
 * time; a handler may block (it can post to a worker and wait for the
 * answer) but must be thread-safe with respect to everything else in
 * ternd.
 */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#include <jansson.h>

#include "core/config.h"

#define CONTROL_LINE_MAX (1024 * 1024)
#define CONTROL_SOCKET_NAME "control"

/* Answer codes of a failed request (the "code" member). */
#define CONTROL_E_NOT_FOUND "not_found"
#define CONTROL_E_BAD_REQUEST "bad_request"
#define CONTROL_E_CONFLICT "conflict"
#define CONTROL_E_UNAVAILABLE "unavailable"
#define CONTROL_E_ERROR "error"

/* A request handler. req is the whole request object (borrowed). On
 * success return a new object with the results (or NULL for none): the
 * server adds "ok": true. On failure set *code_r to one of CONTROL_E_*
 * and *error_r to a malloc'd message, and return NULL. */
typedef json_t *control_handler_fn(void *ctx, json_t *req, const char **code_r, char **error_r);

/* Adds a command; main thread, before control_start(). A name registered
 * twice is a bug (abort). */
void control_register(const char *cmd, control_handler_fn *fn, void *ctx);

/* Creates STATE_DIR/control, replacing a stale socket left by a dead
 * ternd and refusing if a live one answers: called early, before the
 * store is opened, it is also what keeps two ternds off one state
 * directory. Requests wait in the backlog until control_start(). 0, or
 * -1 with a malloc'd *error_r. */
int control_listen(const struct config *cfg, char **error_r);
/* Starts the server thread (calling control_listen first if it was not).
 * 0, or -1 with a malloc'd *error_r. */
int control_start(const struct config *cfg, char **error_r);
/* Stops the thread and removes the socket. */
void control_stop(void);

/* ---- the client side (tern-admind, tests) ---- */

enum control_call_result {
	CONTROL_OK = 0,		  /* *reply_r: the answer object, "ok" true */
	CONTROL_REFUSED = -1,	  /* ternd answered "ok": false: *reply_r holds
				   * the answer, *error_r its "error" */
	CONTROL_NOT_RUNNING = -2, /* no socket, or nobody listening on it */
	CONTROL_FAILED = -3	  /* I/O error, timeout or a malformed answer */
};

/* Sends one request to the ternd whose state directory is state_dir and
 * waits up to timeout_ms for the answer. req is borrowed. *reply_r (when
 * set) is owned by the caller; *error_r is malloc'd for every result but
 * CONTROL_OK. Blocking; any thread. */
int control_call(const char *state_dir, json_t *req, unsigned timeout_ms, json_t **reply_r,
		 char **error_r);

#endif
