/*
 * smtp_internal.h - internal to protocols/smtp/: the session struct that
 * smtp_session.c (commands, DATA/BDAT, delivery, LMTP) and smtp_auth.c
 * (AUTH and the submission sender checks) share. One session per
 * connection, touched only on its worker thread.
 */
#ifndef TERN_SMTP_INTERNAL_H
#define TERN_SMTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compat.h"
#include "core/config.h"
#include "core/conn.h"
#include "protocols/sasl/auth.h"
#include "storage/queue.h"
#include "storage/store.h"
#include "authres.h"
#include "milter.h"
#include "dkim.h"
#include "dmarc.h"
#include "dmarc_report.h"
#include "dnsbl.h"
#include "smtp_data.h"
#include "smtp_parser.h"
#include "spf.h"

/* DKIM signatures verified per message; the rest are skipped (logged). */
#define SMTP_DKIM_SIGS_MAX 5

/* Where the DMARC policy lookup stands (smtp_inauth.c). */
enum smtp_dmarc_state {
	SMTP_DMARC_OFF = 0,   /* not checked */
	SMTP_DMARC_FOUND,     /* a policy record: evaluate */
	SMTP_DMARC_NONE,      /* no (usable) policy record */
	SMTP_DMARC_TEMPERROR, /* DNS failure */
	SMTP_DMARC_PERMERROR, /* no single From domain */
};

struct smtp_inauth;
struct dir_user;

enum smtp_state {
	ST_CONNECTED = 1 << 0, /* before HELO/EHLO (again after STARTTLS) */
	ST_GREETED = 1 << 1,   /* no transaction */
	ST_MAIL = 1 << 2,      /* MAIL accepted, no recipient yet */
	ST_RCPT = 1 << 3,      /* at least one recipient accepted */
	ST_DATA = 1 << 4,      /* reading the message; lines bypass the table */
	ST_BDAT = 1 << 5,      /* between BDAT chunks (RFC 3030) */
	ST_AUTH = 1 << 6,      /* a SASL exchange; lines are responses */
};
#define ST_COMMAND (ST_CONNECTED | ST_GREETED | ST_MAIL | ST_RCPT)

/* One mailbox that gets the message: each user once, however reached. */
struct smtp_target {
	const char *user_id; /* owned by the tx arena */
	uint64_t quota;
	uint64_t quota_messages;
	const char *rcpt; /* the RCPT address that reached it first (tx arena) */
	bool no_junk;	  /* the user's junk_attr: spam to INBOX */
};

/* LMTP: an accepted RCPT and the targets it reached, for its own reply. */
struct smtp_lrcpt {
	const char *address; /* tx arena */
	size_t *targets;     /* indexes into targets, tx arena */
	size_t ntargets;
	bool remote; /* reached forwards (queued) */
};

struct smtp_session {
	struct conn conn;    /* first: the conn pointer is the session pointer */
	struct arena *arena; /* owns this struct */
	struct config *cfg;  /* owned reference, released on free */
	enum service svc;
	bool submission; /* [submission]/[submissions]: AUTH before MAIL */
	bool lmtp;	 /* [lmtp] (RFC 2033) */
	unsigned state;
	bool esmtp;
	struct buf helo;  /* the HELO/EHLO argument */
	struct buf reply; /* formatting scratch for one reply */
	unsigned errors;
	unsigned msgs;	      /* messages accepted */
	unsigned rcpts_total; /* recipients accepted, all transactions */

	/* ---- AUTH (smtp_auth.c); strings in the session arena ---- */
	struct auth_sasl sasl;
	unsigned auth_failures;
	const char *auth_id; /* stable id once authenticated, else NULL */
	const char *auth_login;
	const char *auth_dn;
	const char **own; /* the user's addresses, lower-case */
	size_t nown;
	const char **sendas; /* addresses they may send as (lists owned) */
	size_t nsendas;

	/* ---- the transaction; everything below is reset together ---- */
	struct arena *tx; /* owned; cleared by smtp_reset_transaction() */
	uint64_t msg_id;
	const char *sender; /* tx arena; "" for <> */
	unsigned nrcpts;    /* RCPT commands accepted */
	const char *first_rcpt;
	struct smtp_target *targets; /* tx arena */
	size_t ntargets, targets_cap;
	uint32_t *index; /* open addressing over targets, 1-based, tx arena */
	size_t index_cap;
	struct buf body; /* Received header + message, CRLF */
	size_t msg_off;	 /* where the message starts in body (after Received) */
	struct smtp_data data;
	struct store_delivery *delivery; /* tx arena; in flight until done() */
	/* ESMTP parameters of MAIL (RFC 6531, 6152, 3461, 8689) */
	bool smtputf8, eightbit, requiretls;
	enum queue_ret ret;
	const char *envid; /* decoded, tx arena */
	/* Remote recipients (authenticated submission, forwards), tx arena */
	struct queue_rcpt_in *remote;
	size_t nremote, remote_cap;
	/* LMTP: the accepted RCPTs in order */
	struct smtp_lrcpt *lrcpts;
	size_t nlrcpts, lrcpts_cap;
	/* BDAT (RFC 3030) */
	bool bdat;		/* this transaction uses BDAT */
	bool bdat_last;		/* the chunk being read is the last */
	bool bdat_discard;	/* the chunk being read is thrown away */
	const char *bdat_error; /* reply for a chunk read in a wrong state */
	uint64_t bdat_chunk;	/* size of the chunk being read */
	uint64_t bdat_size;	/* message bytes so far */
	bool bdat_too_big;

	/* ---- milters (smtp_milter.c) ---- */
	struct milter_session *milter;	 /* owned; NULL: no milters here */
	int milter_conn_action;		 /* the connect stage's verdict, for MAIL */
	const char *milter_conn_reply;	 /* session arena */
	bool milter_discard;		 /* a milter said DISCARD (tx) */
	bool milter_junk;		 /* spam verdict: Junk folders (tx) */
	bool pending_local;		 /* the RCPT being checked is local */
	const char *delivery_received;	 /* our Received header while milters
					    edit the message (tx arena) */
	struct milter_envop *milter_env; /* envelope changes to apply (tx) */
	size_t milter_nenv, milter_env_i;

	/* The RCPT being resolved (directory callback pending). */
	struct buf pending_given;
	struct buf pending_lower;
	uint8_t pending_notify;
	const char *pending_orcpt; /* tx arena */

	/* Sender authentication of inbound mail (smtp_spf.c) */
	struct spf_check *spf; /* in flight, or NULL; cancelled by reset */
	bool spf_wait;	       /* the message is complete and waits for checks */
	bool spf_done;
	enum spf_result spf_result;
	const char *spf_domain; /* the domain SPF checked, tx arena */
	struct authres authres; /* results for the A-R header; tx arena strings */
	/* DKIM and DMARC (smtp_inauth.c) */
	struct smtp_inauth *inauth; /* lookups in flight, or NULL */
	const char **dkim_pass_d;   /* d= of passing signatures, tx arena */
	size_t ndkim_pass;
	struct dmarc_row_dkim *dkim_res; /* every verified signature (DMARC
					    reports), tx arena */
	size_t ndkim_res;
	enum smtp_dmarc_state dmarc_state;
	const char *dmarc_from;	  /* the From domain, tx arena */
	const char *dmarc_reason; /* tx arena or static */
	struct dmarc_record dmarc_rec;
	bool dmarc_at_org;
	/* Set by smtp_tx_quarantine: the message belongs in Junk (why). */
	const char *quarantine;

	/* DNSBL, for the whole connection (smtp_inauth.c) */
	struct dnsbl_check *dnsbl; /* in flight, or NULL */
	const char *dnsbl_listed;  /* "zone, zone" listing the client, or NULL */
	const char *dnsbl_first;   /* the first of them */
	struct buf dnsbl_held;	   /* a MAIL line waiting for the answer */
};

void smtp_reply(struct smtp_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* A peer mistake; the tenth ends the session. Call after its reply. */
void smtp_bad_command(struct smtp_session *s);
void smtp_reset_transaction(struct smtp_session *s);

/* smtp_deliver.c: the message is complete (or failed): check, store,
 * reply (from the store's callback). */
void smtp_finish_message(struct smtp_session *s, bool too_big, bool line_too_long);
/* The message passed every check: into the store. */
void smtp_store_message(struct smtp_session *s);

/* smtp_session.c: the transaction's recipients. A mailbox is a target
 * once however it is reached (the index of the existing one is
 * returned); rcpt is the address that reached it, kept. */
size_t smtp_add_target(struct smtp_session *s, const struct dir_user *u, const char *rcpt);
/* A remote recipient for the outbound queue (strings kept). */
void smtp_add_remote(struct smtp_session *s, const char *address, const char *orcpt,
		     uint8_t notify);
size_t smtp_remove_rcpt(struct smtp_session *s, const char *address);
/* A copy of address with its domain lower-cased (local part as given). */
char *smtp_lower_domain(struct arena *a, const char *address);

/* smtp_session.c: the steps a milter stage resumes. */
void smtp_greet(struct smtp_session *s);
void smtp_helo_reply(struct smtp_session *s);
void smtp_rcpt_proceed(struct smtp_session *s);
void smtp_data_go(struct smtp_session *s);

/* smtp_milter.c: each returns true when it took over (the conn is paused
 * and the step resumes from the milters' verdict), false to go on. */
bool smtp_milter_connect(struct smtp_session *s);
bool smtp_milter_helo(struct smtp_session *s);
bool smtp_milter_mail(struct smtp_session *s, const struct smtp_cmd *cmd);
bool smtp_milter_rcpt(struct smtp_session *s);
bool smtp_milter_data(struct smtp_session *s);
bool smtp_milter_message(struct smtp_session *s);
/* After SPF: the milters, then smtp_store_message. */
void smtp_message_milters(struct smtp_session *s);

/* smtp_spf.c: starts SPF for the transaction's sender ([smtp] only). */
void smtp_spf_start(struct smtp_session *s);
/* The message is complete: true if it must wait for SPF (the session is
 * paused and smtp_message_milters() runs when the result is in). */
bool smtp_spf_wait(struct smtp_session *s);
/* Policy and the A-R header, just before storing: false if the message
 * was refused (reply sent, transaction reset). */
bool smtp_authres_apply(struct smtp_session *s);

/* smtp_inauth.c: DKIM and DMARC lookups at the end of the message
 * ([smtp] only); smtp_spf_wait() waits for them too. */
void smtp_inauth_start(struct smtp_session *s);
void smtp_inauth_cancel(struct smtp_session *s);
/* A check finished: stores the message if it waited and all are in. */
void smtp_checks_continue(struct smtp_session *s);
/* DMARC evaluation and policy: false if refused (reply sent, reset). */
bool smtp_dmarc_apply(struct smtp_session *s);
/* Marks the transaction's message for the Junk folder (reason kept in
 * s->quarantine, logged). */
void smtp_tx_quarantine(struct smtp_session *s, const char *reason);
/* DNSBL: asked at connect; a MAIL line before the answer is held (true:
 * the session is paused and the line replayed later); refuse replies 554
 * and returns true for a listed client when [dnsbl] reject is on. */
void smtp_dnsbl_start(struct smtp_session *s);
bool smtp_dnsbl_hold(struct smtp_session *s, const char *line, size_t len);
bool smtp_dnsbl_refuse(struct smtp_session *s);
/* smtp_session.c: runs a command line held earlier. */
void smtp_replay_line(struct smtp_session *s, struct buf *line);

/* smtp_auth.c */
/* AUTH is offered on this session now (submission, EHLO, TLS or
 * plaintext_auth). */
bool smtp_auth_offered(const struct smtp_session *s);
void smtp_cmd_auth(struct smtp_session *s, struct smtp_cmd *cmd);
/* A line while ST_AUTH. */
void smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
/* Steps of an AUTH exchange that waited for the directory. */
void smtp_auth_resume(struct conn *c, enum auth_sasl_step step, const char *challenge);
/* True if the lower-case address is one the authenticated user may use
 * as a sender (own or send-as). */
bool smtp_sender_allowed(const struct smtp_session *s, const char *address);
/* True if every address of every From: header of the message (at
 * msg..msg+len) passes smtp_sender_allowed; *why_r says what failed. */
bool smtp_from_allowed(const struct smtp_session *s, const char *msg, size_t len,
		       const char **why_r);

#endif
