/*
 * store_internal.h - state shared by the storage files, and counters for
 * tests (internal to storage/ and tests/unit/test_store.c).
 *
 * The store is a process singleton (store_open() has no handle): one
 * environment and one writer thread per process, as in DESIGN.md.
 * Return codes inside storage/ are "rc" values: 0, an LMDB code
 * (MDB_NOTFOUND, MDB_MAP_FULL...), a positive errno, or a STORE_* status
 * (-1..-8); store_rc_status() turns any of them into a STORE_* status.
 */
#ifndef TERN_STORE_INTERNAL_H
#define TERN_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <zstd.h>

#include "core/buf.h"
#include "storage/store.h"
#include "storage/store_schema.h"

struct store_stats {
	uint64_t ops;	    /* operations completed by the writer */
	uint64_t commits;   /* parent transactions committed */
	uint64_t batches;   /* batches started (retries not counted) */
	uint64_t map_grows; /* successful mdb_env_set_mapsize calls */
	uint64_t map_size;  /* current map size */
	uint64_t reader_checks;
};
/* A snapshot of the writer's counters. Any thread. */
void store_stats(struct store_stats *r);

struct store_op;

struct store_state {
	MDB_env *env; /* owned */
	char *path;   /* owned: the environment directory, for messages */
	MDB_dbi meta, users, mbox, mboxname, msg, modseq, blob, blobref, quota;
	MDB_dbi subs, mime;		      /* format 2 */
	MDB_dbi queue, queue_rcpt, queue_due; /* outbound queue (storage/queue.c) */
	MDB_dbi orphans;		      /* orphan marks (storage/store_admin.c) */
	MDB_dbi sortkey;     /* SORT/THREAD keys per body (storage/store_sortkey.c) */
	MDB_dbi fts;	     /* full-text index (storage/store_fts.c) */
	MDB_dbi annot;	     /* annotations, IMAP METADATA (storage/store_annot.c) */
	MDB_dbi acl, aclidx; /* mailbox ACLs and their reverse index (store_acl.c) */
	MDB_dbi dmarc;	     /* DMARC aggregate report counts (store_dmarc.c) */
	MDB_dbi hdr;	     /* raw top header of each body (store_blob.c) */

	/* mdb_env_set_mapsize() may only run while no transaction of this
	 * process is active: readers hold this shared for the length of a
	 * read txn, the writer takes it exclusive to resize. */
	pthread_rwlock_t maplock;
	uint64_t map_size; /* protected by maplock (written exclusive) */
	uint64_t map_cap;

	/* [storage] settings copied at open (config reloads do not reach a
	 * running store). */
	bool group_commit;
	unsigned batch_max_ops;
	uint64_t batch_max_bytes;
	unsigned batch_max_ms;
	int zstd_level;

	/* The writer's queue. */
	pthread_t writer;
	bool writer_running;
	pthread_mutex_t qlock; /* protects head, tail, stopping, stats */
	pthread_cond_t qcond;  /* CLOCK_MONOTONIC */
	struct store_op *head, *tail;
	bool stopping;
	struct store_stats stats;
};

extern struct store_state *store_g; /* set by store_open(), NULL when closed */

int store_rc_status(int rc);
const char *store_rc_str(int rc);

/* A short read transaction under the shared map lock (handles
 * MDB_MAP_RESIZED from another process). */
int store_read_begin(MDB_txn **txn_r);
void store_read_end(MDB_txn *txn);

/* Lookups usable in any transaction. MDB_NOTFOUND when absent. */
int store_user_lookup(MDB_txn *txn, const char *id, uint64_t *user_r);
/* The canonical spelling of a mailbox name ("inbox" -> "INBOX"). */
const char *store_mbox_canon(const char *name);
int store_mbox_lookup(MDB_txn *txn, uint64_t user, const char *name, uint32_t *mbox_r);
/* Both lookups for a client's mailbox name (canonicalised: INBOX in any
 * case). MDB_NOTFOUND for a user who never got mail or has no such
 * mailbox. */
int store_resolve_mailbox(MDB_txn *txn, const char *user_id, const char *mailbox, uint64_t *user_r,
			  uint32_t *mbox_r);
int store_mbox_get(MDB_txn *txn, uint64_t user, uint32_t mbox, struct mbox_rec *r);
int store_quota_get(MDB_txn *txn, uint64_t user, uint64_t *bytes_r, uint64_t *messages_r);

/* A format-1 environment is rewritten to format 2 inside the open
 * transaction (storage/store_migrate.c): every record to its v2 form,
 * unseen/deleted recounted. It verifies the environment before rewriting
 * anything and fails (-1, malloc'd *error_r) rather than migrate a store
 * that does not check out; store_open() then refuses to open. */
int store_migrate_v1(MDB_txn *txn, char **error_r);

/* ---- maintenance (store_check.c; used by store_migrate.c, store_tool.c) ---- */

struct store_check_stats {
	uint32_t format;
	uint64_t users, mailboxes, messages, bodies, body_bytes;
};
typedef void store_report_fn(void *arg, const char *problem);

/* Verifies every invariant of store_schema.h in txn (read or write; the
 * databases are opened by name, so no store_g is needed). Returns the
 * number of problems reported, or -1 with a malloc'd *error_r when it
 * could not run (LMDB error, newer format). st may be NULL. */
int store_check_txn(MDB_txn *txn, store_report_fn *report, void *arg, struct store_check_stats *st,
		    char **error_r);
/* Opens the environment directory `path` read-only beside a possibly
 * running ternd (nolock: for a private copy nobody else uses). Never
 * creates data.mdb. 0 or -1 with *error_r naming the path. */
int store_env_open_rdonly(const char *path, bool nolock, MDB_env **env_r, char **error_r);
/* store_check() on an environment directory, with statistics. */
int store_check_path(const char *path, bool nolock, store_report_fn *report, void *arg,
		     struct store_check_stats *st, char **error_r);

/* Blobs (store_blob.c). put: if the blob exists add refs to its count,
 * else write its chunks with refcount refs; zc/scratch are the writer's
 * compression context and a buffer of ZSTD_compressBound(CHUNK) bytes.
 * unref: drop one reference; at zero delete the chunks and the count.
 * read: append the decompressed body to out (STORE_TEMPFAIL over its cap). */
int store_blob_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body, size_t len,
		   uint32_t refs, ZSTD_CCtx *zc, int level, void *scratch, size_t scratch_len);
int store_blob_unref(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN]);
/* Adds refs references to a blob that must exist (COPY). */
int store_blob_addref(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint32_t refs);
/* Appends bytes [off, off + len) of the body (already cut to its length)
 * decompressing only the chunks that hold them. */
int store_blob_read_range(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint64_t expect_len,
			  uint64_t off, uint64_t len, struct buf *out);
/* The body's stored MIME encoding (`mime` db), borrowed from txn;
 * MDB_NOTFOUND for a body stored before format 2. */
int store_blob_mime(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const void **p_r,
		    size_t *len_r);
int store_blob_read(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint64_t expect_len,
		    struct buf *out);
/* Reference count of a blob (0 if absent), and how many chunk records it
 * has in `blob`: for tests. */
int store_blob_refcount(const uint8_t hash[STORE_HASH_LEN], uint32_t *refs_r, uint32_t *chunks_r);
/* Number of records in `blob` and `blobref`: for tests. */
int store_blob_counts(uint64_t *chunks_r, uint64_t *blobs_r);

/* ---- write helpers shared by the operations (store_txn.c) ----
 * All run on the writer thread inside an operation's transaction. The
 * *_w structures own copies of what they decoded (a record's bytes in a
 * write transaction may move when anything else is written). */

struct store_user_w {
	const char *id; /* borrowed stable id */
	uint64_t user;
	uint32_t next_mbox;
};

struct store_mbox_w {
	uint32_t id;
	struct mbox_rec r; /* name and kw point into the owned copies below */
	char *name;	   /* owned, NUL-terminated */
	uint8_t *kw;	   /* owned keyword run */
};

struct store_msg_w {
	uint32_t uid;
	struct msg_rec r; /* trace and kw point into the owned copies below */
	char *trace;	  /* owned */
	uint8_t *kw;	  /* owned */
};

/* Looks up the user; with create, a new one is made with INBOX and the
 * special-use folders, subscribed (*created_r set). MDB_NOTFOUND when
 * absent and !create. */
int store_txn_user(MDB_txn *txn, const char *id, bool create, struct store_user_w *u,
		   bool *created_r);
/* Name validity (store.h): 0, STORE_PERMFAIL or STORE_LIMIT. */
int store_name_check(const char *name);
/* Copies name into a malloc'd string with a leading "inbox" component
 * spelt "INBOX". */
char *store_name_canon(const char *name);
/* Loads a mailbox by id or by name (MDB_NOTFOUND when absent). */
int store_txn_mbox_load(MDB_txn *txn, uint64_t user, uint32_t id, struct store_mbox_w *m);
int store_txn_mbox_find(MDB_txn *txn, uint64_t user, const char *name, struct store_mbox_w *m);
int store_txn_mbox_save(MDB_txn *txn, uint64_t user, const struct store_mbox_w *m);
void store_mbox_w_free(struct store_mbox_w *m);
/* Creates a mailbox (new id, new UIDVALIDITY) and saves the user record;
 * STORE_EXISTS if the name is taken. m may be NULL. */
int store_txn_mbox_create(MDB_txn *txn, struct store_user_w *u, const char *name,
			  uint32_t special_use, uint16_t flags, bool subscribe,
			  struct store_mbox_w *m);
/* Whether any mailbox has a name below name + "/". */
int store_txn_has_children(MDB_txn *txn, uint64_t user, const char *name, bool *r);
int store_txn_subscribe(MDB_txn *txn, uint64_t user, const char *name, bool on);
int store_txn_quota_put(MDB_txn *txn, uint64_t user, uint64_t bytes, uint64_t messages);
/* Allocates the next number of the counter named name in meta (from 1). */
int store_txn_counter(MDB_txn *txn, const char *name, uint64_t *id_r);
/* Allocates the next EMAILID (meta next_email_id). */
int store_txn_email_id(MDB_txn *txn, uint64_t *id_r);

int store_txn_msg_load(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t uid,
		       struct store_msg_w *m);
void store_msg_w_free(struct store_msg_w *m);
/* Stores m->r as a new message of mb: next UID, next MODSEQ, counters of
 * mb updated (the caller saves mb); the body's reference is the caller's. */
int store_txn_msg_add(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb, struct msg_rec *r,
		      uint32_t *uid_r);
/* Rewrites an existing message with a new MODSEQ (flags changed). */
int store_txn_msg_update(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb,
			 struct store_msg_w *m, uint32_t new_flags, const struct kw_run *kw);
/* Expunges uid from mb: record and live modseq entry removed, tombstone
 * at a new MODSEQ, body unreferenced, counters of mb updated; *size_r its
 * size (0 and no change when absent). */
int store_txn_msg_expunge(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb, uint32_t uid,
			  bool *found_r, uint64_t *size_r);
/* Whether kw is a valid flag keyword (RFC 9051 atom, length limit). */
bool store_keyword_valid(const char *kw, size_t len);
/* Index of kw in run (ASCII case-insensitive), or -1. */
int store_kw_index(const struct kw_run *run, const char *kw, size_t len);
/* Adds keywords to the mailbox's list (STORE_LIMIT past its cap). */
int store_txn_mbox_kw_add(struct store_mbox_w *mb, const struct kw_run *kw);
/* The next MODSEQ of a mailbox (raises highestmodseq). */
uint64_t store_txn_modseq_next(struct store_mbox_w *mb);
/* Parses body's MIME structure and writes it to the `mime` db. */
int store_txn_mime_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body,
		       size_t len);

/* Bytes [offset, offset + len) of a message (trace + body, cut at its
 * size) appended to out, in any transaction (store.c). */
int store_txn_msg_read_range(MDB_txn *txn, const struct msg_rec *r, uint64_t offset, uint64_t len,
			     struct buf *out);
/* The message's MIME structure copied into a (parsed from the body when
 * it has no `mime` record). */
int store_txn_msg_mime(MDB_txn *txn, const struct msg_rec *r, struct arena *a, const void **mime_r,
		       size_t *mime_len_r);

/* ---- the full-text index (store_fts.c; layout in store_schema.h) ---- */

/* Indexes message uid of mailbox mbox (its record and body must be in
 * txn): its header and body trigrams, or its UID in the mailbox's
 * "unindexed" list when its text cannot be read. */
int store_fts_add(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t uid);
/* Indexes up to max_msgs messages of a mailbox above its watermark
 * (stopping early past deadline_ns, a CLOCK_MONOTONIC time, unless 0) and
 * moves the watermark to the last; *done_r when none is left above it. */
int store_fts_catch_up(MDB_txn *txn, uint64_t user, uint32_t mbox, unsigned max_msgs,
		       uint64_t deadline_ns, unsigned *indexed_r, bool *done_r);

/* The background indexer (store_fts.c), run by the writer thread only. A
 * mailbox got messages: index it FTS_INDEX_DELAY_MS from the first note
 * (a burst is indexed together). */
#define FTS_INDEX_DELAY_MS 500
#define FTS_BATCH_MSGS 200		  /* messages a transaction, at most */
#define FTS_BATCH_NS (50ull * 1000000ull) /* and about this long */
/* Past this much after it was due, a batch runs between two delivery
 * batches even when deliveries keep the queue full (the bound). */
#define FTS_STARVE_NS (2000ull * 1000000ull)
void store_fts_note(uint64_t user, uint32_t mbox);
/* [storage] search_indexer: off, nothing is noted and the indexer never
 * runs (store_open, before the writer starts). */
void store_fts_background(bool on);
/* When the indexer should run next (CLOCK_MONOTONIC ns), 0 if it has
 * nothing to do. */
uint64_t store_fts_due(void);
/* One batch in txn (the first also finds the mailboxes left behind before
 * a restart): the messages indexed, the pending mailboxes finished. */
int store_fts_index_batch(MDB_txn *txn, unsigned *indexed_r, size_t *finished_r);
/* After the batch's commit (or abort: everything stays pending). */
void store_fts_index_done(size_t finished, bool committed);
uint64_t store_fts_mono_ns(void);
/* The distinct trigrams of t (len bytes) sorted, into out (room for len
 * entries), as 24-bit numbers; their count. For tests too. */
size_t store_fts_grams(const char *t, size_t len, uint32_t *out);
/* a := a AND b for sorted lists; the new length of a. */
size_t store_fts_intersect(uint32_t *a, size_t na, const uint32_t *b, size_t nb);
/* Drops the index of one mailbox, or of all the user's (all). */
int store_fts_drop(MDB_txn *txn, uint64_t user, uint32_t mbox, bool all);

/* ---- annotations (store_annot.c), writer thread ---- */

/* Drops every annotation of a mailbox (DELETE; a \Noselect placeholder
 * left for its children keeps none either, RFC 5464 4.1). */
int store_annot_drop_mailbox(MDB_txn *txn, uint64_t user, uint32_t mbox);
/* Drops every annotation on the user's mailboxes and server entries, and
 * the user's private ones on anybody's mailboxes (purge). */
int store_annot_drop_user(MDB_txn *txn, uint64_t user);
#define STORE_ANNOT_PREFIX_LEN 20 /* owner | mailbox_id | accessor */
/* Why an `annot` record is not valid (NULL: it is), with the key's
 * numbers (store_check). Pure. */
const char *store_annot_check(const void *key, size_t klen, const void *val, size_t vlen,
			      uint64_t *owner_r, uint32_t *mbox_r, uint64_t *accessor_r);
/* Copies the annotations of mailbox from to mailbox to (RENAME INBOX,
 * RFC 5464 4.1: INBOX keeps its own, the new mailbox gets a copy). */
int store_annot_copy_mailbox(MDB_txn *txn, uint64_t user, uint32_t from, uint32_t to);
/* Drops the ACL of a mailbox and its reverse index entries (DELETE,
 * purge) (store_acl.c). */
int store_acl_drop(MDB_txn *txn, uint64_t user, uint32_t mbox);
/* Gives mailbox `to` a copy of the ACL of mailbox `from` (replacing any
 * it had), index entries included; nothing if `from` has none (CREATE's
 * inheritance, RFC 4314 4). */
int store_acl_copy(MDB_txn *txn, uint64_t user, uint32_t from, uint32_t to);
/* The check tool: every acl record decodes, names an existing mailbox
 * (mbox_exists) and has an aclidx key for each positive entry; every
 * aclidx key names an acl record that has the identifier. Each finding
 * goes to problem. 0 or an LMDB error. */
int store_acl_check(MDB_txn *txn, MDB_dbi acl, MDB_dbi aclidx,
		    bool (*mbox_exists)(void *arg, uint64_t user, uint32_t mbox),
		    void (*problem)(void *arg, const char *text), void *arg);

/* Fills a message's info from its record, keywords copied into a (and
 * EMAILID derived from the hash for a v1 record) (store.c). */
void store_info_fill(struct arena *a, uint32_t uid, const struct msg_rec *r,
		     struct store_msg_info *info);

/* Blocking use of a request (store_admin.c): store_sync_prepare() points
 * req's completion at s (worker NULL: done() runs on the writer thread),
 * the caller submits, store_sync_wait() returns once done() has run.
 * Never on a worker's loop. */
struct store_sync {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
};
void store_sync_prepare(struct store_sync *s, struct store_req *req);
void store_sync_wait(struct store_sync *s);

/* Export and import (store_export.c, store_import.c): o->warn with a
 * formatted line; o->progress when the count goes from before to done past
 * a multiple of progress_every, and at the end of a mailbox (end) unless
 * that count was just reported. *last: the count reported last
 * (UINT64_MAX before the first). */
struct store_xfer_opts;
void store_xfer_warn(const struct store_xfer_opts *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
void store_xfer_progress(const struct store_xfer_opts *o, const char *mailbox, uint64_t before,
			 uint64_t done, bool end, uint64_t *last);

/* ---- the writer (store_writer.c) ---- */

int store_writer_start(char **error_r);
void store_writer_stop(void);

/* A mailbox changed by the operation being applied. */
struct store_touched {
	char *user_id; /* owned */
	uint32_t mbox;
	uint64_t highestmodseq;
	unsigned changed;		/* STORE_CHANGED_* */
	struct store_watch_entry entry; /* STORE_CHANGED_METADATA: owned; else zero */
};

/* What an operation may use on the writer thread. */
struct store_wctx {
	ZSTD_CCtx *zc; /* owned */
	void *scratch; /* owned: one compressed chunk */
	size_t scratch_len;
	int level;		       /* zstd level */
	struct store_touched *touches; /* owned; this batch's changes */
	size_t ntouches, touch_cap;
	size_t op_touch_start; /* first touch of the operation being applied */
	bool queued;	       /* this batch added recipients to the outbound queue */
};

/* Applies one request inside its own child transaction: returns 0 (the
 * writer commits the child), a STORE_* decision or an LMDB/errno code
 * (the child is aborted, and that becomes req->status). It may run twice
 * for one request (a batch retried after growing the map), so it sets
 * every output afresh; results go into req->a. */
typedef int store_apply_fn(MDB_txn *txn, struct store_req *req, struct store_wctx *wc);

/* Queues a request for the writer; bytes counts against batch_max_bytes. */
void store_submit(struct store_req *req, store_apply_fn *apply, uint64_t bytes);

/* From inside an apply function: that mailbox changed; its watchers are
 * told once the batch is committed (nothing is told if it aborts). */
void store_touch(struct store_wctx *wc, const char *user_id, uint32_t mbox, uint64_t highestmodseq);
/* The same for what is not one mailbox's messages: the user's mailbox
 * names or subscriptions (STORE_CHANGED_NAMES / _SUBSCRIPTIONS). */
void store_touch_user(struct store_wctx *wc, const char *user_id, unsigned changed);
/* The annotation `name` of owner_id's mailbox (0: user_id's server entry)
 * was set or removed; private_to is the user whose /private entry it is,
 * NULL for a /shared one (STORE_CHANGED_METADATA, store_watch_entries()). */
void store_touch_annot(struct store_wctx *wc, const char *owner_id, uint32_t mbox,
		       const char *private_to, const char *name);

/* The two operations with their own request types (store_message.c). */
int store_apply_deliver(MDB_txn *txn, struct store_delivery *d, const uint8_t hash[STORE_HASH_LEN],
			int64_t internal_date, struct store_wctx *wc);
int store_apply_expunge(MDB_txn *txn, struct store_expunge *e, struct store_wctx *wc);

/* ---- the outbound queue (queue.c, queue_schema.c) ---- */

struct queue_envelope;

/* Queues env's recipients (if any) for the body with that hash, which the
 * caller stores: adds one reference to the blob when it queued anything
 * (*refs_r 1, else 0) and sets env->queue_id (0 when nothing queued). */
int store_queue_put(MDB_txn *txn, struct queue_envelope *env, const uint8_t hash[STORE_HASH_LEN],
		    uint64_t body_len, int64_t created, struct store_wctx *wc, uint32_t *refs_r);
/* Writer thread, after a commit of a batch with wc->queued: tells the
 * runner (queue_set_notify). */
void store_queue_notify(void);

/* Queue records (layout in store_schema.h). Strings are borrowed from the
 * record's bytes, NOT NUL-terminated; a zero length means "none". */
#define QUEUE_MSG_FIXED 64
#define QUEUE_RCPT_FIXED 24
#define QUEUE_KEY_LEN 8
#define QUEUE_RCPT_KEY_LEN 12
#define QUEUE_DUE_KEY_LEN 20
#define QUEUE_F_SMTPUTF8 0x01
#define QUEUE_F_8BIT 0x02
#define QUEUE_F_REQUIRETLS 0x04
#define QUEUE_F_HELD 0x08 /* an admin held it: pending recipients not in queue_due */
#define QUEUE_RF_DELAY_WARNED 0x01
enum queue_rstate { QUEUE_R_PENDING = 0, QUEUE_R_DELIVERED = 1, QUEUE_R_FAILED = 2 };

struct queue_msg_rec {
	uint8_t ret, origin, flags;
	uint32_t nrcpts;
	int64_t created;
	uint64_t size; /* body length */
	uint8_t hash[STORE_HASH_LEN];
	const char *sender, *envid, *auth_user, *client;
	uint16_t sender_len, envid_len, auth_user_len, client_len;
};

struct queue_rcpt_rec {
	uint8_t state; /* enum queue_rstate */
	uint8_t notify, flags;
	uint32_t attempts;
	int64_t next_attempt;
	const char *address, *orcpt, *last_error;
	uint16_t address_len, orcpt_len, last_error_len;
};

size_t queue_msg_size(const struct queue_msg_rec *r);
void queue_msg_encode(uint8_t *p, const struct queue_msg_rec *r);
int queue_msg_decode(const void *p, size_t len, struct queue_msg_rec *r);
size_t queue_rcpt_size(const struct queue_rcpt_rec *r);
void queue_rcpt_encode(uint8_t *p, const struct queue_rcpt_rec *r);
int queue_rcpt_decode(const void *p, size_t len, struct queue_rcpt_rec *r);
void queue_key_rcpt(uint8_t k[QUEUE_RCPT_KEY_LEN], uint64_t qid, uint32_t idx);
/* Whether entry qid is held (false when it is gone). */
int queue_held(MDB_txn *txn, uint64_t qid, bool *held_r);
/* Removes the entry qid if every recipient is final (queue.c). */
int queue_finish_if_done(MDB_txn *txn, uint64_t qid);
/* Adds or removes one queue_due entry (absent on removal is fine). */
int queue_due_put(MDB_txn *txn, int64_t when, uint64_t qid, uint32_t idx);
int queue_due_del(MDB_txn *txn, int64_t when, uint64_t qid, uint32_t idx);
/* Writes one recipient record (r's strings are copied first). */
int queue_rcpt_put(MDB_txn *txn, uint64_t qid, uint32_t idx, const struct queue_rcpt_rec *r);
/* next_attempt below 0 is kept as 0: the key is unsigned. */
void queue_key_due(uint8_t k[QUEUE_DUE_KEY_LEN], int64_t when, uint64_t qid, uint32_t idx);

/* Tells the watchers of those mailboxes (store_watch.c); writer thread,
 * after a commit. */
void store_watch_notify(const struct store_touched *t, size_t n);

/* Keeps a body's top header raw in `hdr` (store_schema.h) when it is at
 * most STORE_HDR_MAX bytes, so store_blob_read_range serves ranges
 * inside it without decompressing. 0 or an rc. (store_blob.c) */
int store_blob_hdr_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body,
		       size_t hdr_len);

/* ---- sort keys (store_sortkey.c) ---- */

/* The sortkey record (layout in store_schema.h) of a message whose top
 * header block is hdr (the body's first hdr_len bytes), appended to out.
 * Pure. 0, or -1 when out's cap is hit. */
int store_sortkey_build(const char *hdr, size_t hdr_len, struct buf *out);
/* Decodes a record into k's strings (allocated in a) and flags; uid,
 * size, internal_date and the sent fallback are the caller's. 0 or -1
 * (not a record this build knows). */
int store_sortkey_decode(const void *p, size_t len, struct arena *a, struct store_sortkey *k);
/* Writes the record of a new body (writer thread, with its blob). */
int store_sortkey_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *hdr,
		      size_t hdr_len);
/* At open: gives every body stored before `sortkey` existed its record
 * (once; meta "sortkeys" remembers it). 0 or an rc. */
int store_sortkey_fill(MDB_txn *txn);

#endif
