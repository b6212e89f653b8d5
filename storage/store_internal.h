/*
 * store_internal.h - state shared by the storage files, and counters for
 * tests (internal to storage/ and tests/unit/test_store.c).
 *
 * The store is a process singleton (store_open() has no handle): one
 * environment and one writer thread per process, as in DESIGN.md.
 * Return codes inside storage/ are "rc" values: 0, an LMDB code
 * (MDB_NOTFOUND, MDB_MAP_FULL...), a positive errno, or a STORE_* status
 * (-1..-5); store_rc_status() turns any of them into a STORE_* status.
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
int store_mbox_get(MDB_txn *txn, uint64_t user, uint32_t mbox, struct mbox_rec *r);
int store_quota_get(MDB_txn *txn, uint64_t user, uint64_t *bytes_r, uint64_t *messages_r);

/* Blobs (store_blob.c). put: if the blob exists add refs to its count,
 * else write its chunks with refcount refs; zc/scratch are the writer's
 * compression context and a buffer of ZSTD_compressBound(CHUNK) bytes.
 * unref: drop one reference; at zero delete the chunks and the count.
 * read: append the decompressed body to out (STORE_TEMPFAIL over its cap). */
int store_blob_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body, size_t len,
		   uint32_t refs, ZSTD_CCtx *zc, int level, void *scratch, size_t scratch_len);
int store_blob_unref(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN]);
int store_blob_read(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint64_t expect_len,
		    struct buf *out);
/* Reference count of a blob (0 if absent), and how many chunk records it
 * has in `blob`: for tests. */
int store_blob_refcount(const uint8_t hash[STORE_HASH_LEN], uint32_t *refs_r, uint32_t *chunks_r);
/* Number of records in `blob` and `blobref`: for tests. */
int store_blob_counts(uint64_t *chunks_r, uint64_t *blobs_r);

/* ---- the writer (store_writer.c) ---- */

int store_writer_start(char **error_r);
void store_writer_stop(void);

/* A mailbox changed by the operation being applied. */
struct store_touched {
	char *user_id; /* owned */
	uint32_t mbox;
	uint64_t highestmodseq;
};

/* What an operation may use on the writer thread. */
struct store_wctx {
	ZSTD_CCtx *zc; /* owned */
	void *scratch; /* owned: one compressed chunk */
	size_t scratch_len;
	int level; /* zstd level */
	struct store_touched *touches; /* owned; this batch's changes */
	size_t ntouches, touch_cap;
	size_t op_touch_start; /* first touch of the operation being applied */
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
void store_touch(struct store_wctx *wc, const char *user_id, uint32_t mbox,
		 uint64_t highestmodseq);

/* The two operations with their own request types (store_message.c). */
int store_apply_deliver(MDB_txn *txn, struct store_delivery *d, const uint8_t hash[STORE_HASH_LEN],
			int64_t internal_date, struct store_wctx *wc);
int store_apply_expunge(MDB_txn *txn, struct store_expunge *e, struct store_wctx *wc);

/* Tells the watchers of those mailboxes (store_watch.c); writer thread,
 * after a commit. */
void store_watch_notify(const struct store_touched *t, size_t n);

#endif
