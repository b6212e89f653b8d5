/*
 * auth.h - password logins shared by every protocol (POP3, IMAP, SMTP
 * AUTH): the SASL PLAIN and LOGIN exchanges decoded from the client's
 * base64 responses, and the asynchronous check of a login and password
 * through the directory bind with failure throttling and one log line.
 *
 * A protocol only frames: it sends the challenge auth_sasl_* hands it in
 * its own syntax ("+ ..." for IMAP and POP3, "334 ..." for SMTP), feeds
 * back each response line, and answers the outcome in its own words.
 * Everything here runs on the connection's worker thread.
 */
#ifndef TERN_AUTH_H
#define TERN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"

struct conn;
struct dir_user;

/* ---- the SASL exchange (pure: no I/O) ---- */

enum auth_sasl_step {
	AUTH_SASL_CHALLENGE, /* send the challenge (base64, may be "") and wait */
	AUTH_SASL_CHECK,     /* credentials complete: call auth_check() */
	AUTH_SASL_BAD,	     /* malformed response: fail the exchange */
	AUTH_SASL_CANCEL,    /* the client sent "*" */
	AUTH_SASL_UNKNOWN,   /* not a mechanism we run */
};

struct auth_sasl {
	const char *mech; /* static: "PLAIN" or "LOGIN" */
	int state;
	struct buf user;   /* owned: authcid (wiped on reset) */
	struct buf secret; /* owned: decoded response / password (wiped) */
	const char *reason; /* static: why AUTH_SASL_BAD or a refused authzid */
	bool authzid_differs; /* PLAIN asked to act as someone else */
};

void auth_sasl_init(struct auth_sasl *x);
/* Wipes and frees what the exchange holds. */
void auth_sasl_reset(struct auth_sasl *x);

/* Starts mech (case-insensitive) with an optional initial response
 * (NULL: none; "=" is the empty one, RFC 4954/5034/9051). The challenge
 * to send (base64, possibly empty) goes to *challenge_r (static). */
enum auth_sasl_step auth_sasl_start(struct auth_sasl *x, const char *mech, const char *initial,
				    size_t initial_len, const char **challenge_r);
/* A response line from the client. */
enum auth_sasl_step auth_sasl_continue(struct auth_sasl *x, const char *line, size_t len,
				       const char **challenge_r);
/* After AUTH_SASL_CHECK: the credentials (valid until reset). */
const char *auth_sasl_login(const struct auth_sasl *x);
const char *auth_sasl_password(const struct auth_sasl *x, size_t *len_r);

/* ---- the check ---- */

enum auth_outcome {
	AUTH_OK,       /* user is set */
	AUTH_FAILED,   /* wrong credentials (already delayed) */
	AUTH_TEMPFAIL, /* the directory is unavailable */
};

/* Called on the conn's worker, with the conn paused and referenced; they
 * are released right after the callback returns, so the callback may
 * reply and close. user (on AUTH_OK) is valid during the call only. Not
 * called if the conn closed meanwhile. */
typedef void auth_done_fn(struct conn *c, enum auth_outcome outcome, const struct dir_user *user);

/* Checks login/password with a directory bind (DESIGN.md, Directory):
 * pauses and references c until done runs; a failure is answered only
 * after the throttle delay for the peer's address; one log line
 * "login user=... result=ok|fail|tempfail mech=... ip=... tls=...".
 * force_fail (e.g. a PLAIN authzid we do not allow) fails without asking
 * the directory, with the same delay. The password is not kept. */
void auth_check(struct conn *c, const struct config *cfg, const char *mech, const char *login,
		const char *password, size_t pwlen, bool force_fail, auth_done_fn *done);

#endif
