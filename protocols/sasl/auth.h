/*
 * auth.h - logins shared by every protocol (POP3, IMAP, SMTP AUTH): the
 * SASL PLAIN and LOGIN exchanges decoded here and checked through the
 * directory bind; SCRAM-SHA-256(-PLUS), GSSAPI and EXTERNAL run by Cyrus
 * SASL (auth_cyrus.c) with the user found in the directory; failure
 * throttling and one log line per attempt for all of them.
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
	AUTH_SASL_CHECK,     /* exchange over: call auth_sasl_check() */
	AUTH_SASL_BAD,	     /* malformed response: fail the exchange */
	AUTH_SASL_CANCEL,    /* the client sent "*" */
	AUTH_SASL_UNKNOWN,   /* not a mechanism we run */
	/* The exchange waits for the directory: the conn is paused; the
	 * next step arrives through the resume function given to
	 * auth_sasl_attach(). Send nothing now. */
	AUTH_SASL_WAIT,
};

/* Delivers a step that came after AUTH_SASL_WAIT, exactly as if
 * auth_sasl_start/continue had returned it. Not called if the conn
 * closed meanwhile. */
typedef void auth_resume_fn(struct conn *c, enum auth_sasl_step step, const char *challenge);

struct auth_sasl {
	const char *mech; /* static: the mechanism name, upper case */
	int state;
	struct buf user;      /* owned: authcid (wiped on reset) */
	struct buf secret;    /* owned: decoded response / password (wiped) */
	const char *reason;   /* static: why AUTH_SASL_BAD or a refused authzid */
	bool authzid_differs; /* PLAIN asked to act as someone else */

	/* From auth_sasl_attach(), kept across resets. */
	struct conn *c;
	const struct config *cfg;
	const char *service; /* "imap", "pop", "smtp": the GSSAPI service */
	auth_resume_fn *resume;

	/* A Cyrus exchange (auth_cyrus.c); all owned, wiped on reset. */
	void *cyrus;	      /* sasl_conn_t */
	struct buf challenge; /* base64 of the last challenge */
	int result;	      /* enum auth_outcome once a Cyrus exchange ended */
	const char *fail_why; /* static or NULL: for the log line */
	bool doomed;	      /* no such user / no verifier: must fail */
	bool pending;	      /* a directory lookup is running */
	char *found[4];	      /* id, dn, login, mail of the user found */
	uint64_t found_quota;
	uint64_t found_quota_messages;
};

void auth_sasl_init(struct auth_sasl *x);
/* Binds the exchange to its connection (after auth_sasl_init, once):
 * Cyrus needs the addresses, TLS session and service name, and steps
 * that wait for the directory come back through resume. */
void auth_sasl_attach(struct auth_sasl *x, struct conn *c, const struct config *cfg,
		      const char *service, auth_resume_fn *resume);
/* Wipes and frees what the exchange holds (the attachment stays). */
void auth_sasl_reset(struct auth_sasl *x);

/* Appends the mechanisms this connection may use now, space-separated:
 * PLAIN and LOGIN when password_ok (TLS, or plaintext allowed), and the
 * configured Cyrus ones that can work here (-PLUS only with a TLS
 * channel binding, EXTERNAL only with a verified client certificate). */
void auth_sasl_mechanisms(const struct auth_sasl *x, bool password_ok, struct buf *out);

/* Starts mech (case-insensitive) with an optional initial response
 * (NULL: none; "=" is the empty one, RFC 4954/5034/9051). The challenge
 * to send (base64, possibly empty) goes to *challenge_r (static). */
enum auth_sasl_step auth_sasl_start(struct auth_sasl *x, const char *mech, const char *initial,
				    size_t initial_len, const char **challenge_r);
/* A response line from the client. */
enum auth_sasl_step auth_sasl_continue(struct auth_sasl *x, const char *line, size_t len,
				       const char **challenge_r);
/* After AUTH_SASL_CHECK of PLAIN or LOGIN: the credentials (valid until
 * reset). */
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

/* After AUTH_SASL_CHECK: ends the exchange like auth_check() does (the
 * password check of PLAIN/LOGIN, or the outcome of a Cyrus mechanism
 * with its user looked up), then done runs later. Everything needed is
 * copied: the caller may reset x right after. */
void auth_sasl_check(struct auth_sasl *x, auth_done_fn *done);

#endif
