/*
 * auth_int.h - what auth.c and auth_cyrus.c share inside protocols/sasl:
 * the login attempt (pause, throttle, log line, outcome) and the Cyrus
 * exchange entry points. Not for the protocols: they use auth.h.
 */
#ifndef TERN_AUTH_INT_H
#define TERN_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "directory/dir.h"
#include "protocols/sasl/auth.h"

/* auth_sasl states from here on belong to auth_cyrus.c. */
#define X_CYRUS 16

/* One login attempt: created with the conn paused and referenced; ends
 * in exactly one of fail/tempfail/ok, which runs done (unless the conn
 * closed) and releases the conn. "now" delivers from inside the call
 * (only from a directory callback); otherwise from the next loop turn. */
struct attempt;
struct attempt *auth_attempt_new(struct conn *c, const struct config *cfg, const char *mech,
				 const char *login, auth_done_fn *done);
void auth_attempt_fail(struct attempt *at, const char *why); /* after the throttle delay */
void auth_attempt_tempfail(struct attempt *at, const char *why, bool now);
void auth_attempt_ok(struct attempt *at, const struct dir_user *u, bool now);
/* Ends the attempt with a directory answer, from its callback: ok,
 * tempfail, or a failure logged with why (NULL: the directory's error). */
void auth_attempt_dir(struct attempt *at, enum dir_status status, const struct dir_user *u,
		      const char *error, const char *why);

/* Decodes a client response into x->secret (wiped first); "=" is the
 * empty initial response. 0, or -1 for invalid base64. */
int auth_sasl_decode(struct auth_sasl *x, const char *text, size_t len, bool initial);

/* Cyrus mechanisms (auth_cyrus.c). */
bool auth_cyrus_runs(const char *mech);
void auth_cyrus_mechanisms(const struct auth_sasl *x, struct buf *out, bool sep);
enum auth_sasl_step auth_cyrus_start(struct auth_sasl *x, const char *mech, const char *initial,
				     size_t initial_len, const char **challenge_r);
enum auth_sasl_step auth_cyrus_continue(struct auth_sasl *x, const char *line, size_t len,
					const char **challenge_r);
void auth_cyrus_check(struct auth_sasl *x, auth_done_fn *done);
void auth_cyrus_reset(struct auth_sasl *x);

#endif
