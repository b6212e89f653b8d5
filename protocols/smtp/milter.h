/*
 * milter.h - the milter client: one SMTP session talks to every milter
 * of [milter] milters (in that order) over its own connection to each,
 * non-blocking on the session's worker loop. A stage (connect, HELO,
 * MAIL, RCPT, DATA, the message) goes through the chain and ends with
 * one verdict, delivered to the callback from the loop (never from
 * inside the call that started it). One stage at a time per session.
 *
 * A milter that cannot be reached, times out (connect_timeout,
 * command_timeout; PROGRESS restarts the clock) or breaks the protocol
 * is down for the rest of the SMTP session: its default_action applies
 * (accept: it is skipped; tempfail: 451 4.7.1).
 */
#ifndef TERN_MILTER_H
#define TERN_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"

struct worker;
struct milter_session;

enum milter_action {
	MILTER_CONTINUE = 0, /* go on (the chain said nothing against) */
	MILTER_REJECT,	     /* 5xx */
	MILTER_TEMPFAIL,     /* 4xx */
	MILTER_DISCARD,	     /* accept and drop the message */
};

struct milter_verdict {
	enum milter_action action;
	const char *reply;  /* REPLYCODE text (checked), or NULL: the default */
	const char *milter; /* name of the milter that decided, or NULL */
	bool down;	    /* the verdict is a milter's default_action */
	/* The message stage only: */
	bool quarantine;	       /* SMFIR_QUARANTINE from some milter */
	const char *quarantine_reason; /* its reason */
	bool spam;		       /* a milter added a spam header (spam_headers) */
	bool modified;		       /* the message was changed in place */
	/* Envelope changes asked for at the end of the message, in the order
	 * the milters sent them (the caller applies them); addresses
	 * without <>. */
	const struct milter_envop *env;
	size_t nenv;
};

/* The wire's own letters (SMFIR_CHGFROM, SMFIR_ADDRCPT, SMFIR_DELRCPT);
 * ADDRCPT_PAR is reported as MILTER_ENV_ADD. */
enum milter_env_op {
	MILTER_ENV_FROM = 'e', /* new envelope sender, "" for <> */
	MILTER_ENV_ADD = '+',  /* add a recipient */
	MILTER_ENV_DEL = '-',  /* remove a recipient */
};

struct milter_envop {
	char op; /* enum milter_env_op */
	const char *addr;
};

typedef void milter_cb(void *arg, const struct milter_verdict *v);

/* A client for cfg's milters on worker w (cfg is borrowed and must live
 * as long as the session); id and service prefix the log lines. */
struct milter_session *milter_session_new(struct worker *w, const struct config *cfg, uint64_t id,
					  const char *service);
/* Says QUIT to every milter and frees everything; no callback runs
 * after. Sets *m to NULL. */
void milter_session_free(struct milter_session **m);

/* A macro value for the stages to come ("j", "{client_addr}", ...);
 * NULL or "" removes it. Copied. */
void milter_macro(struct milter_session *m, const char *name, const char *value);

/* The stages. Each calls cb(arg, verdict) later, from the loop. */
void milter_connect(struct milter_session *m, const char *hostname, const char *ip, int port,
		    milter_cb *cb, void *arg);
void milter_helo(struct milter_session *m, const char *helo, milter_cb *cb, void *arg);
/* argv[0] is "<address>", then ESMTP parameters as given. */
void milter_mail(struct milter_session *m, const char *const *argv, size_t argc, milter_cb *cb,
		 void *arg);
void milter_rcpt(struct milter_session *m, const char *const *argv, size_t argc, milter_cb *cb,
		 void *arg);
void milter_data(struct milter_session *m, milter_cb *cb, void *arg);
/* The message (headers and body, CRLF) through each milter in turn: its
 * modifications (headers added, inserted, changed or deleted; the body
 * replaced) are applied to msg before the next milter sees it. msg is
 * borrowed until cb runs. */
void milter_message(struct milter_session *m, struct buf *msg, milter_cb *cb, void *arg);
/* The transaction ended before the message stage (RSET, a reject):
 * SMFIC_ABORT to the milters that saw its MAIL. No callback. */
void milter_abort(struct milter_session *m);

/* Applies one milter's header modification to the header block of msg
 * (exposed for the unit tests): op is SMFIR_ADDHEADER, SMFIR_INSHEADER
 * or SMFIR_CHGHEADER (index 1-based among headers of that name; an empty
 * value deletes). value uses LF between folded lines, as milters send
 * it. 0, or -1 if msg's cap is hit. */
int milter_edit_header(struct buf *msg, char op, uint32_t index, const char *name,
		       const char *value, bool leadspc);
/* Replaces the body of msg (after the blank line) with body. */
int milter_replace_body(struct buf *msg, const char *body, size_t len);

#endif
