/*
 * store.h - the mail store in LMDB (DESIGN.md, Storage).
 *
 * One environment under [server] state_dir. Users are keyed by the
 * directory's stable id (entryUUID), never by login or address. One writer
 * thread owns every write transaction and commits in groups (one fsync
 * for many deliveries); a change's callback runs on the caller's worker
 * only after its transaction has been committed and synced, so a success
 * reply sent from the callback is durable. Reads run on the caller's
 * thread in short read transactions and copy out what they return.
 */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"

struct worker;

enum store_status {
	STORE_OK = 0,
	STORE_NOTFOUND = -1,  /* no such mailbox or message */
	STORE_TEMPFAIL = -2,  /* retry later (I/O error, map full and could not grow) */
	STORE_PERMFAIL = -3,  /* will never work (corrupt data, bad argument) */
	STORE_OVERQUOTA = -4, /* temporary: the user is over quota */
	STORE_TOOBIG = -5,    /* permanent: the message alone exceeds the quota */
};
const char *store_strerror(int status);

/* Opens (creating if needed) the environment in cfg->state_dir, clears
 * stale readers, starts the writer thread. 0 or -1 with a malloc'd
 * *error_r. Main thread, before the workers start. */
int store_open(const struct config *cfg, char **error_r);
/* Finishes queued writes, stops the writer, closes the environment. */
void store_close(void);

/* ---- delivery ---- */

struct store_rcpt {
	const char *user_id;  /* in: stable id */
	const char *trace;    /* in: per-recipient header lines (Return-Path,
				 Delivered-To...), CRLF-terminated; may be NULL */
	size_t trace_len;
	uint64_t quota;	      /* in: bytes, 0 = unlimited */
	int status;	      /* out: enum store_status */
	uint32_t uid;	      /* out: UID in the user's INBOX */
};

struct store_delivery {
	/* All in-fields are borrowed until done() has run. */
	const char *body; /* the message as received (headers + body), CRLF */
	size_t body_len;
	time_t internal_date;
	struct store_rcpt *rcpts;
	size_t nrcpts;
	struct worker *worker; /* where done() runs */
	void (*done)(struct store_delivery *d, void *arg);
	void *arg;
	int status; /* out: STORE_OK if the batch committed (see each rcpt) */
};

/* Queues d for the writer: one copy of the body however many recipients,
 * each recipient's INBOX gets a message record. done() runs on d->worker
 * after the commit has been synced (or failed). Any worker thread. */
void store_deliver(struct store_delivery *d);

/* ---- reading (POP3 now, IMAP later) ---- */

struct store_msg_info {
	uint32_t uid;
	uint64_t size;	   /* bytes of the whole message: trace + body, CRLF */
	time_t internal_date;
	uint32_t flags;	   /* STORE_FLAG_* */
};

#define STORE_FLAG_SEEN 0x01
#define STORE_FLAG_ANSWERED 0x02
#define STORE_FLAG_FLAGGED 0x04
#define STORE_FLAG_DELETED 0x08
#define STORE_FLAG_DRAFT 0x10

struct store_mailbox_info {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint64_t bytes;
};

/* Lists the messages of a user's mailbox ("INBOX" for now) in UID order,
 * allocated in a. A user who never got mail has an empty INBOX (STORE_OK,
 * zero messages, *info_r uidvalidity 0). Any thread; short read txn. */
int store_mailbox_list(const char *user_id, const char *mailbox, struct arena *a,
		       struct store_mailbox_info *info_r, struct store_msg_info **msgs_r,
		       size_t *count_r);

/* Appends the whole message (trace + body) to out. STORE_NOTFOUND if the
 * UID is gone; STORE_TEMPFAIL if out's cap is hit. Any thread. */
int store_message_read(const char *user_id, const char *mailbox, uint32_t uid, struct buf *out);

/* ---- changes ---- */

struct store_expunge {
	const char *user_id;  /* borrowed until done() */
	const char *mailbox;
	const uint32_t *uids;
	size_t nuids;
	struct worker *worker;
	void (*done)(struct store_expunge *e, void *arg);
	void *arg;
	int status;	      /* out */
	size_t expunged;      /* out: how many existed and were removed */
};

/* Removes those messages (bodies freed when no mailbox references them
 * any more, quota usage updated) in one transaction. done() after sync. */
void store_expunge(struct store_expunge *e);

/* Quota usage of a user (0s for a user who never got mail). */
int store_usage(const char *user_id, uint64_t *bytes_r, uint64_t *messages_r);

#endif
