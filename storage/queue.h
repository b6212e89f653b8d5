/*
 * queue.h - the outbound queue: mail for non-local recipients (submitted
 * mail, forwards, bounces), kept in the store's LMDB environment so that
 * one synced transaction holds both the local deliveries and the queued
 * remote recipients of a message (a 250 covers both), and the body is the
 * same refcounted blob the mailboxes use.
 *
 * This file is the contract between the SMTP front end (which fills a
 * queue_envelope and hangs it on its store_delivery) and the outbound
 * engine (outbound/: the runner, DNS, the SMTP client, bounces), which
 * reads due recipients and records what happened to them.
 *
 * Each recipient has its own state; a message leaves the queue (and drops
 * its body reference) when every recipient is final (delivered, failed
 * and bounced, or expired). Times are Unix seconds.
 *
 * How it fails: every call returns a STORE_* status; a queue whose records
 * cannot be decoded reports STORE_PERMFAIL and the entry is left for
 * `ternd store check`, never silently dropped.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "storage/store.h"

/* DSN NOTIFY (RFC 3461 4.1) bits; 0 means "not given" (default rules:
 * failure notices only). */
#define QUEUE_NOTIFY_NEVER 0x01
#define QUEUE_NOTIFY_SUCCESS 0x02
#define QUEUE_NOTIFY_FAILURE 0x04
#define QUEUE_NOTIFY_DELAY 0x08

/* DSN RET (RFC 3461 4.3). */
enum queue_ret {
	QUEUE_RET_DEFAULT = 0, /* not given: the server chooses (HDRS) */
	QUEUE_RET_FULL,
	QUEUE_RET_HDRS,
};

/* Where the mail came from, for logs, rate limits and bounces. */
enum queue_origin {
	QUEUE_ORIGIN_SUBMISSION = 1, /* an authenticated user */
	QUEUE_ORIGIN_FORWARD,	     /* mailRoutingAddress of a local user */
	QUEUE_ORIGIN_BOUNCE,	     /* a DSN Tern generated (null sender) */
	QUEUE_ORIGIN_LIST,	     /* expansion of a list with remote members */
	QUEUE_ORIGIN_REPORT,	     /* a DMARC aggregate report Tern generated */
};

/* One remote recipient, as accepted at RCPT. */
struct queue_rcpt_in {
	const char *address; /* the envelope address (UTF-8 allowed when
				envelope->smtputf8), domain lower-cased */
	const char *orcpt;   /* DSN ORCPT as given ("rfc822;x@y"), or NULL */
	uint8_t notify;	     /* QUEUE_NOTIFY_* or 0 */
};

/* Hung on a store_delivery (its `outbound` field) by the front end: the
 * remote recipients of that message, queued in the same transaction as
 * its local deliveries. Everything is borrowed until done() has run. */
struct queue_envelope {
	const char *sender; /* reverse path without <>; "" = null sender */
	enum queue_origin origin;
	const char *auth_user; /* stable id of the submitting user, or NULL */
	const char *envid;     /* DSN ENVID (xtext-decoded), or NULL */
	enum queue_ret ret;
	bool smtputf8;	    /* SMTPUTF8 was given (RFC 6531) */
	bool eightbit;	    /* BODY=8BITMIME or 8-bit content */
	bool requiretls;    /* REQUIRETLS (RFC 8689): deliver only over
			       verified TLS, else bounce */
	const char *client; /* "[ip] (helo)" of the submitter, for the
			       DSN's Received-From-MTA / logs */
	const struct queue_rcpt_in *rcpts;
	size_t nrcpts;
	uint64_t queue_id; /* out: the id the message got (0 if none) */
};

/* ---- the runner's side (outbound/) ---- */

/* One recipient whose next attempt is due, copied out of the queue. */
struct queue_item {
	uint64_t queue_id;
	uint32_t rcpt_idx;  /* index among the message's remote recipients */
	const char *sender; /* "" = null sender */
	const char *address;
	const char *orcpt; /* or NULL */
	const char *envid; /* or NULL */
	uint8_t notify;
	enum queue_ret ret;
	enum queue_origin origin;
	bool smtputf8, eightbit, requiretls;
	bool delay_warned; /* a delay DSN was already sent */
	time_t created;	   /* when the message was queued */
	time_t next_attempt;
	uint32_t attempts;
	const char *last_error; /* the last attempt's reason, or NULL */
	uint64_t size;		/* bytes of the message */
};

/* Up to max recipients due at `now` (next_attempt <= now), oldest due
 * first, skipping those whose (queue_id, rcpt_idx) the runner says are
 * in flight. Short read txn; results in a. */
int queue_due(time_t now, size_t max, bool (*in_flight)(void *arg, uint64_t id, uint32_t idx),
	      void *arg, struct arena *a, struct queue_item **items_r, size_t *n_r);

/* The earliest next_attempt of any pending recipient (STORE_NOTFOUND when
 * the queue is empty), for the runner's timer. */
int queue_next_due(time_t *when_r);

/* Appends the message as it will be sent (the stored body; the queue keeps
 * no per-recipient trace) to out. STORE_NOTFOUND if the entry is gone. */
int queue_message_read(uint64_t queue_id, struct buf *out);

/* What happened to one recipient. */
enum queue_outcome {
	QUEUE_DELIVERED = 1, /* final: the far side said 250 */
	QUEUE_DEFERRED,	     /* try again at next_attempt */
	QUEUE_FAILED,	     /* final: permanent failure or lifetime over */
	QUEUE_DELAY_WARNED,  /* still pending; a delay DSN went out */
};

struct queue_result {
	uint64_t queue_id;
	uint32_t rcpt_idx;
	enum queue_outcome outcome;
	time_t next_attempt; /* QUEUE_DEFERRED / QUEUE_DELAY_WARNED */
	const char *reason;  /* the remote reply or Tern's reason, one line */
};

/* Records results and, in the same transaction, queues or delivers the
 * DSN messages the runner composed for them (outbound/dsn.c), so a crash
 * can neither lose a bounce nor send it twice. A message whose recipients
 * are all final leaves the queue and drops its body reference. */
struct queue_update {
	struct store_req req; /* head: worker, done, arg, a, status */
	const struct queue_result *results;
	size_t nresults;
	/* Optional DSNs: each is a full store_delivery (local sender: rcpts
	 * set; remote sender: outbound set with a null sender and
	 * QUEUE_ORIGIN_BOUNCE); their own worker/done fields are ignored. */
	struct store_delivery *dsns;
	size_t ndsns;
};
void queue_update(struct queue_update *u);

/* Called on the writer thread after a commit that added recipients to the
 * queue, so the runner does not wait for its timer. Set once at start-up
 * by the runner; NULL (default) means nobody is told. */
void queue_set_notify(void (*fn)(void *arg), void *arg);

/* Counts for health and metrics (issue 6): pending recipients and the age
 * of the oldest message. */
int queue_stats(uint64_t *recipients_r, uint64_t *messages_r, time_t *oldest_r);

/* ---- the admin's side (storage/queue_admin.c) ---- */

/* What a queued message is doing, for lists and filters. */
enum queue_msg_state {
	QUEUE_MSG_QUEUED = 1, /* no attempt yet */
	QUEUE_MSG_DEFERRED,   /* at least one attempt failed temporarily */
	QUEUE_MSG_HELD,	      /* held by an admin: no attempts until released */
};
/* "queued", "deferred", "held"; and back (0 for an unknown word). */
const char *queue_msg_state_name(enum queue_msg_state s);
enum queue_msg_state queue_msg_state_parse(const char *s);

enum queue_rcpt_state { QUEUE_RCPT_PENDING, QUEUE_RCPT_DELIVERED, QUEUE_RCPT_FAILED };

struct queue_rcpt_info {
	uint32_t idx; /* among the message's recipients (queue_result.rcpt_idx) */
	const char *address;
	const char *orcpt; /* or NULL */
	enum queue_rcpt_state state;
	uint8_t notify;
	bool delay_warned;
	uint32_t attempts;
	time_t next_attempt;	/* meaningful for pending ones */
	const char *last_error; /* or NULL */
};

/* One queued message as an admin sees it; strings in the caller's arena. */
struct queue_info {
	uint64_t queue_id;
	const char *sender; /* "" = null sender */
	enum queue_origin origin;
	const char *auth_user, *envid, *client; /* or NULL */
	enum queue_ret ret;
	bool smtputf8, eightbit, requiretls;
	time_t created;
	uint64_t size;
	bool held;
	enum queue_msg_state state;
	struct queue_rcpt_info *rcpts;
	size_t nrcpts;
};

/* A list filter; every member set narrows the list (all must match). */
struct queue_filter {
	const char *sender;	    /* NULL: any; "" the null sender; else the
				       address, compared case-insensitively */
	const char *recipient;	    /* NULL, or an address one recipient has */
	const char *domain;	    /* NULL, or the domain of one recipient */
	enum queue_msg_state state; /* 0: any */
	uint64_t older_than;	    /* 0: any; else queued at least this many
				       seconds before `now` */
};

/* Pure: true if m passes f at time now. */
bool queue_filter_match(const struct queue_filter *f, const struct queue_info *m, time_t now);

/* Messages passing f, in queue id order, starting after queue id `after`
 * (0: from the start), at most limit; *more_r when more would follow.
 * Short read txn; results in a. */
int queue_list(const struct queue_filter *f, uint64_t after, size_t limit, time_t now,
	       struct arena *a, struct queue_info **items_r, size_t *n_r, bool *more_r);
/* One message, STORE_NOTFOUND if it is not queued. */
int queue_get(uint64_t queue_id, struct arena *a, struct queue_info *info_r);

/* A few header fields of a message, unfolded and RFC 2047-decoded (NULL
 * when absent), for showing a queued message. */
struct queue_headers {
	const char *from, *to, *cc, *subject, *date, *message_id;
};
/* Pure: reads the header section of msg (up to the first empty line). */
void queue_headers_parse(const char *msg, size_t len, struct arena *a, struct queue_headers *h);

/* State changes an admin asks for (through ternd's runner, which keeps
 * the in-memory schedule: see outbound/outbound.h). */
enum queue_admin_op {
	QUEUE_OP_HOLD = 1, /* held: its pending recipients leave the due index */
	QUEUE_OP_RELEASE,  /* not held: its pending recipients are due now */
	QUEUE_OP_RETRY,	   /* its pending recipients are due now */
	QUEUE_OP_DELETE,   /* gone without a bounce, body reference dropped */
};

/* Outcome of a queue_admin request beside req.status (STORE_NOTFOUND:
 * not queued). */
enum queue_admin_result {
	QUEUE_ADMIN_DONE = 0,
	QUEUE_ADMIN_UNCHANGED, /* hold of a held message: nothing to do */
	QUEUE_ADMIN_NOT_HELD,  /* release of a message that is not held */
	QUEUE_ADMIN_IS_HELD,   /* retry of a held message (release it) */
};

struct queue_admin {
	struct store_req req; /* head: worker, done, arg, status */
	enum queue_admin_op op;
	uint64_t queue_id;
	time_t now;			/* "due now" for release and retry */
	enum queue_admin_result result; /* out */
};
/* Runs op through the store's writer, one transaction. */
void queue_admin(struct queue_admin *q);

/* Pure: a queue id as written in lists ("00000000000004d2", any case, 1
 * to 16 hex digits) into *id_r. 0, or -1 if it is not one (or is 0). */
int queue_id_parse(const char *s, uint64_t *id_r);

#endif
