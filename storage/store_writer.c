/*
 * store_writer.c - the writer thread: owns every write transaction of the
 * store and commits in groups (DESIGN.md, Concurrency).
 *
 * Callers queue operations (deliveries, expunges, generic requests) on a
 * mutex+condvar queue. The writer takes them in batches of what is queued,
 * closed at batch_max_ops operations or batch_max_bytes bytes; with
 * batch_max_ms > 0 it also waits that long after the first operation for
 * more to join. The default 0 waits for nothing: operations that arrive
 * while one batch is being synced form the next (leader/follower group
 * commit), which keeps a lone delivery's latency at one fsync and still
 * fills batches under load. A batch is one parent transaction with one nested
 * transaction per operation (a failing operation aborts only its child and
 * gets its own error), then one mdb_txn_commit with full sync, and only
 * then is each caller completed by worker_post() to its worker, so a
 * success reply sent from a completion is durable. group_commit = no makes
 * every operation its own commit (benchmarks).
 *
 * Hashing and compression run here, not on the caller's worker: a worker
 * loop must stay light, and a 500-recipient message still costs one hash
 * and one compression. Hashing happens before the batch's transaction
 * begins; compression only for a body not already stored (so duplicates
 * cost nothing), inside the child transaction. A helper thread pool would
 * overlap compression with the fsync of the previous batch; not needed
 * on two cores yet.
 *
 * Failures: MDB_MAP_FULL aborts the batch, grows the map (doubling, capped)
 * with no transaction of ours active (readers are held off by the map
 * lock) and retries the batch once; LMDB and system errors complete the
 * operations with STORE_TEMPFAIL, corrupt records with STORE_PERMFAIL.
 * mdb_reader_check runs at start-up (store_open) and every 60 s here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/compat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "storage/queue.h"
#include "storage/store_internal.h"

#define READER_CHECK_NS (60ull * 1000000000ull)
#define NS_PER_MS 1000000ull

enum op_type { OP_DELIVER, OP_EXPUNGE, OP_REQ };

struct store_op {
	struct store_op *next;
	enum op_type type;
	struct store_delivery *d; /* borrowed from the caller until done() */
	struct store_expunge *e;  /* same */
	struct store_req *req;	  /* same (OP_REQ) */
	store_apply_fn *apply;	  /* OP_REQ */
	uint64_t bytes;		  /* counted against batch_max_bytes */
	uint64_t queued_ns;	  /* CLOCK_MONOTONIC, when queued */
	uint8_t hash[STORE_HASH_LEN];
	bool hash_failed;
	int64_t internal_date; /* the delivery's, or the time it was queued */
	int rc;		       /* the operation's result (see store_internal.h) */
};

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
timedwait_until(struct store_state *s, uint64_t when_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(when_ns / 1000000000ull),
			      .tv_nsec = (long)(when_ns % 1000000000ull)};

	pthread_cond_timedwait(&s->qcond, &s->qlock, &ts);
}

/* ---- queueing (any thread) ---- */

static void fail_delivery(struct store_delivery *d, int status);

static void
complete_op(void *arg)
{
	struct store_op *op = arg;

	if (op->type == OP_DELIVER)
		op->d->done(op->d, op->d->arg);
	else if (op->type == OP_EXPUNGE)
		op->e->done(op->e, op->e->arg);
	else
		op->req->done(op->req, op->req->arg);
	free(op);
}

static struct worker *
op_worker(const struct store_op *op)
{
	if (op->type == OP_DELIVER)
		return op->d->worker;
	if (op->type == OP_EXPUNGE)
		return op->e->worker;
	return op->req->worker;
}

/* Sets the outcome of a request that was not (or not fully) applied. */
static void
set_status(struct store_op *op, int status)
{
	if (op->type == OP_DELIVER)
		fail_delivery(op->d, status);
	else if (op->type == OP_EXPUNGE)
		op->e->status = status;
	else
		op->req->status = status;
}

static void
post_op(struct store_op *op)
{
	struct worker *w = op_worker(op);

	/* No worker (tools, tests without a loop): complete right here. */
	if (w == NULL)
		complete_op(op);
	else
		worker_post(w, complete_op, op);
}

static void
fail_delivery(struct store_delivery *d, int status)
{
	d->status = status;
	if (d->outbound != NULL)
		d->outbound->queue_id = 0; /* nothing was queued */
	for (size_t i = 0; i < d->nrcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		/* Per-recipient answers (quota, bad id) were decided without
		 * writing anything, so they stand; the others were not stored. */
		if (r->status == STORE_OK)
			r->status = status;
		r->uid = 0;
	}
}

static void
enqueue(struct store_op *op)
{
	struct store_state *s = store_g;

	if (s == NULL) {
		/* Not open (or closing): nothing can be written. */
		set_status(op, STORE_TEMPFAIL);
		post_op(op);
		return;
	}
	op->queued_ns = mono_ns();
	pthread_mutex_lock(&s->qlock);
	if (s->tail != NULL)
		s->tail->next = op;
	else
		s->head = op;
	s->tail = op;
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

void
store_deliver(struct store_delivery *d)
{
	struct store_op *op = xcalloc(1, sizeof(*op));

	op->type = OP_DELIVER;
	op->d = d;
	op->bytes = d->body_len;
	op->internal_date = d->internal_date != 0 ? (int64_t)d->internal_date : (int64_t)time(NULL);
	for (size_t i = 0; i < d->nrcpts; i++) {
		d->rcpts[i].status = STORE_OK;
		d->rcpts[i].uid = 0;
		op->bytes += d->rcpts[i].trace_len;
	}
	d->status = STORE_OK;
	enqueue(op);
}

void
store_expunge(struct store_expunge *e)
{
	struct store_op *op = xcalloc(1, sizeof(*op));

	op->type = OP_EXPUNGE;
	op->e = e;
	op->bytes = 64 * (uint64_t)e->nuids; /* a few small records each */
	e->status = STORE_OK;
	e->expunged = 0;
	enqueue(op);
}

void
store_submit(struct store_req *req, store_apply_fn *apply, uint64_t bytes)
{
	struct store_op *op = xcalloc(1, sizeof(*op));

	op->type = OP_REQ;
	op->req = req;
	op->apply = apply;
	op->bytes = bytes;
	req->status = STORE_OK;
	enqueue(op);
}

/* ---- change notification, collected per batch ---- */

static struct store_touched *
touch_new(struct store_wctx *wc, const char *user_id, uint32_t mbox, uint64_t highestmodseq,
	  unsigned changed)
{
	if (wc->ntouches == wc->touch_cap) {
		wc->touch_cap = wc->touch_cap == 0 ? 64 : wc->touch_cap * 2;
		wc->touches = xrealloc(wc->touches, wc->touch_cap * sizeof(*wc->touches));
	}
	struct store_touched *t = &wc->touches[wc->ntouches++];
	memset(t, 0, sizeof(*t));
	t->user_id = xstrdup(user_id);
	t->mbox = mbox;
	t->highestmodseq = highestmodseq;
	t->changed = changed;
	return t;
}

static void
touch(struct store_wctx *wc, const char *user_id, uint32_t mbox, uint64_t highestmodseq,
      unsigned changed)
{
	for (size_t i = wc->op_touch_start; i < wc->ntouches; i++) {
		struct store_touched *t = &wc->touches[i];
		if (t->mbox == mbox && strcmp(t->user_id, user_id) == 0 && t->entry.name == NULL) {
			if (highestmodseq > t->highestmodseq)
				t->highestmodseq = highestmodseq;
			t->changed |= changed;
			return;
		}
	}
	touch_new(wc, user_id, mbox, highestmodseq, changed);
}

void
store_touch(struct store_wctx *wc, const char *user_id, uint32_t mbox, uint64_t highestmodseq)
{
	touch(wc, user_id, mbox, highestmodseq, STORE_CHANGED_MESSAGES);
}

void
store_touch_user(struct store_wctx *wc, const char *user_id, unsigned changed)
{
	/* Mailbox 0 and MODSEQ 0: every watch of the user hears of it, and
	 * a selected-mailbox view finds nothing new for itself. */
	touch(wc, user_id, 0, 0, changed);
}

void
store_touch_annot(struct store_wctx *wc, const char *owner_id, uint32_t mbox,
		  const char *private_to, const char *name)
{
	/* One touch per entry, merged with no other: its watchers are told
	 * each name. MODSEQ 0: a view finds no message change in it. */
	struct store_touched *t = touch_new(wc, owner_id, mbox, 0, STORE_CHANGED_METADATA);

	t->entry.mailbox_id = mbox;
	t->entry.user_id = private_to != NULL ? xstrdup(private_to) : NULL;
	t->entry.name = xstrdup(name);
}

/* Forgets the touches from index `from` on (an aborted operation). */
static void
touches_truncate(struct store_wctx *wc, size_t from)
{
	for (size_t i = from; i < wc->ntouches; i++) {
		free(wc->touches[i].user_id);
		free(wc->touches[i].entry.user_id);
		free(wc->touches[i].entry.name);
	}
	wc->ntouches = from;
}

/* ---- batches ---- */

static bool
is_map_full(int rc)
{
	return rc == MDB_MAP_FULL;
}

/* Grows the map so that at least `need` more bytes fit. Needs no
 * transaction of this process active: the writer has none open, and the
 * exclusive map lock waits out the readers. */
static int
grow_map(struct store_state *s, uint64_t need)
{
	uint64_t cur = s->map_size, want = cur * 2;
	int rc;

	if (want < cur + 2 * need + (1u << 20))
		want = cur + 2 * need + (1u << 20);
	want = (want + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	if (want > s->map_cap)
		want = s->map_cap;
	if (want <= cur) {
		log_error(0, "store", "map-full path=%s map_size=%llu cap reached", s->path,
			  (unsigned long long)cur);
		return MDB_MAP_FULL;
	}
	pthread_rwlock_wrlock(&s->maplock);
	rc = mdb_env_set_mapsize(s->env, (size_t)want);
	if (rc == 0)
		s->map_size = want;
	pthread_rwlock_unlock(&s->maplock);
	if (rc != 0) {
		log_error(0, "store", "map-grow-failed path=%s size=%llu error=\"%s\"", s->path,
			  (unsigned long long)want, mdb_strerror(rc));
		return rc;
	}
	log_info(0, "store", "map-grow path=%s from=%llu to=%llu", s->path, (unsigned long long)cur,
		 (unsigned long long)want);
	pthread_mutex_lock(&s->qlock);
	s->stats.map_grows++;
	s->stats.map_size = want;
	pthread_mutex_unlock(&s->qlock);
	return 0;
}

static int
begin_parent(struct store_state *s, MDB_txn **txn_r)
{
	int rc = mdb_txn_begin(s->env, NULL, 0, txn_r);

	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size. */
		pthread_rwlock_wrlock(&s->maplock);
		rc = mdb_env_set_mapsize(s->env, 0);
		if (rc == 0) {
			MDB_envinfo info;
			if (mdb_env_info(s->env, &info) == 0)
				s->map_size = info.me_mapsize;
		}
		pthread_rwlock_unlock(&s->maplock);
		if (rc == 0)
			rc = mdb_txn_begin(s->env, NULL, 0, txn_r);
	}
	return rc;
}

static void
reset_op(struct store_op *op)
{
	op->rc = 0;
	if (op->type == OP_DELIVER) {
		op->d->status = STORE_OK;
		for (size_t i = 0; i < op->d->nrcpts; i++) {
			op->d->rcpts[i].status = STORE_OK;
			op->d->rcpts[i].uid = 0;
		}
	} else if (op->type == OP_EXPUNGE) {
		op->e->status = STORE_OK;
		op->e->expunged = 0;
	} else {
		op->req->status = STORE_OK;
	}
}

/* Runs the batch; leaves each operation's result in op->rc (and in its
 * request for the parts that committed). Returns the commit's rc. */
static int
run_batch(struct store_state *s, struct store_wctx *wc, struct store_op *batch, uint64_t bytes)
{
	int rc = 0;

	for (struct store_op *op = batch; op != NULL; op = op->next) {
		/* A NULL body is refused by apply_deliver(); do not read it. */
		if (op->type != OP_DELIVER || (op->d->body == NULL && op->d->body_len > 0))
			continue;
		/* Outside any transaction: the hash does not need one. */
		if (EVP_Digest(op->d->body != NULL ? op->d->body : "", op->d->body_len, op->hash,
			       NULL, EVP_sha256(), NULL) != 1)
			op->hash_failed = true;
	}

	for (int attempt = 0; attempt < 2; attempt++) {
		MDB_txn *parent;
		bool map_full = false;

		touches_truncate(wc, 0);
		wc->queued = false;
		for (struct store_op *op = batch; op != NULL; op = op->next) {
			reset_op(op);
			if (op->hash_failed)
				op->rc = STORE_TEMPFAIL;
		}
		if ((rc = begin_parent(s, &parent)) != 0)
			break;
		for (struct store_op *op = batch; op != NULL; op = op->next) {
			MDB_txn *child;

			if (op->rc != 0)
				continue;
			if ((rc = mdb_txn_begin(s->env, parent, 0, &child)) != 0) {
				op->rc = rc;
				continue;
			}
			wc->op_touch_start = wc->ntouches;
			if (op->type == OP_DELIVER)
				rc = store_apply_deliver(child, op->d, op->hash, op->internal_date,
							 wc);
			else if (op->type == OP_EXPUNGE)
				rc = store_apply_expunge(child, op->e, wc);
			else
				rc = op->apply(child, op->req, wc);
			if (rc == 0)
				rc = mdb_txn_commit(child);
			else
				mdb_txn_abort(child);
			if (rc != 0)
				touches_truncate(wc, wc->op_touch_start);
			op->rc = rc;
			if (is_map_full(rc) && attempt == 0) {
				map_full = true;
				break;
			}
		}
		if (!map_full) {
			rc = mdb_txn_commit(parent);
			pthread_mutex_lock(&s->qlock);
			s->stats.commits++;
			pthread_mutex_unlock(&s->qlock);
			if (!is_map_full(rc) || attempt > 0)
				break;
		} else {
			mdb_txn_abort(parent);
		}
		/* No transaction of ours is open now: grow, retry once. */
		if ((rc = grow_map(s, bytes)) != 0)
			break;
		rc = 0;
	}
	if (rc != 0)
		log_error(0, "store", "commit-failed path=%s error=\"%s\"", s->path,
			  mdb_strerror(rc));
	return rc;
}

/* The user an operation is about, for log lines. */
static const char *
op_user(const struct store_op *op)
{
	const char *u = NULL;

	if (op->type == OP_DELIVER && op->d->nrcpts > 0)
		u = op->d->rcpts[0].user_id;
	else if (op->type == OP_EXPUNGE)
		u = op->e->user_id;
	return u != NULL ? u : "-";
}

static const char *
op_name(const struct store_op *op)
{
	if (op->type == OP_DELIVER)
		return "deliver";
	if (op->type == OP_EXPUNGE)
		return "expunge";
	return "change";
}

/* Fills in each request's outcome after the batch's commit (commit_rc). */
static void
finish_op(struct store_op *op, int commit_rc)
{
	int status = store_rc_status(op->rc != 0 ? op->rc : commit_rc);

	if (op->rc != 0 && (status == STORE_TEMPFAIL || status == STORE_PERMFAIL))
		log_error(0, "store", "%s-failed user=%s error=\"%s\"", op_name(op), op_user(op),
			  store_rc_str(op->rc));
	if (op->type == OP_DELIVER) {
		if (status != STORE_OK) {
			fail_delivery(op->d, status);
		} else {
			op->d->status = STORE_OK;
			if (op->d->nrcpts > 0) {
				metric_inc(M_DELIVERED_MESSAGES);
				metric_add(M_DELIVERED_RCPTS, op->d->nrcpts);
			}
		}
	} else if (op->type == OP_EXPUNGE) {
		op->e->status = status;
		if (status != STORE_OK)
			op->e->expunged = 0;
	} else {
		op->req->status = status;
	}
}

static void
reader_check(struct store_state *s)
{
	int dead = 0, rc = mdb_reader_check(s->env, &dead);

	if (rc != 0)
		log_error(0, "store", "reader-check path=%s error=\"%s\"", s->path,
			  mdb_strerror(rc));
	else if (dead > 0)
		log_warn(0, "store", "stale-readers path=%s cleared=%d", s->path, dead);
	pthread_mutex_lock(&s->qlock);
	s->stats.reader_checks++;
	pthread_mutex_unlock(&s->qlock);
}

/* One batch of the background full-text indexer (store_fts.c) in its own
 * transaction, between operation batches: short (FTS_BATCH_MSGS messages,
 * about FTS_BATCH_NS), so a delivery queued meanwhile waits little. */
static void
index_batch(struct store_state *s)
{
	MDB_txn *txn;
	unsigned indexed = 0;
	size_t finished = 0;
	uint64_t t0 = mono_ns();
	int rc = begin_parent(s, &txn);

	if (rc == 0) {
		rc = store_fts_index_batch(txn, &indexed, &finished);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	store_fts_index_done(finished, rc == 0);
	if (rc == 0) {
		log_debug(0, "store", "fts-indexed messages=%u mailboxes_done=%zu ms=%llu", indexed,
			  finished, (unsigned long long)((mono_ns() - t0) / NS_PER_MS));
		return;
	}
	log_error(0, "store", "fts-index-failed path=%s error=\"%s\"", s->path, mdb_strerror(rc));
	/* Everything stays pending (retried a second later); a full map is
	 * grown now, while no transaction of ours is open. */
	if (rc == MDB_MAP_FULL)
		grow_map(s, 1u << 20);
}

static void *
writer_main(void *arg)
{
	struct store_state *s = arg;
	struct store_wctx wc = {.scratch_len = ZSTD_compressBound(STORE_CHUNK_SIZE),
				.level = s->zstd_level};
	uint64_t next_check = mono_ns() + READER_CHECK_NS;
	unsigned max_ops = s->group_commit ? s->batch_max_ops : 1;

	wc.zc = ZSTD_createCCtx();
	wc.scratch = xmalloc(wc.scratch_len);
	if (wc.zc == NULL)
		fatal("store: cannot create a zstd context");

	pthread_mutex_lock(&s->qlock);
	for (;;) {
		uint64_t due;
		for (;;) {
			/* The indexer's batches are the only writer work that
			 * waits for the queue to be empty. */
			due = store_fts_due();
			uint64_t wake = due != 0 && due < next_check ? due : next_check;
			if (s->head != NULL || s->stopping || mono_ns() >= wake)
				break;
			timedwait_until(s, wake);
		}
		if (due != 0 && !s->stopping &&
		    (s->head == NULL ? mono_ns() >= due : mono_ns() >= due + FTS_STARVE_NS)) {
			pthread_mutex_unlock(&s->qlock);
			index_batch(s);
			pthread_mutex_lock(&s->qlock);
			continue;
		}
		if (mono_ns() >= next_check) {
			pthread_mutex_unlock(&s->qlock);
			reader_check(s);
			pthread_mutex_lock(&s->qlock);
			next_check = mono_ns() + READER_CHECK_NS;
		}
		if (s->head == NULL) {
			if (s->stopping)
				break;
			continue;
		}

		/* Collect a batch. */
		struct store_op *batch = NULL, **tailp = &batch;
		uint64_t deadline = s->head->queued_ns + (uint64_t)s->batch_max_ms * NS_PER_MS;
		uint64_t bytes = 0;
		unsigned n = 0;
		for (;;) {
			while (s->head != NULL && n < max_ops && bytes < s->batch_max_bytes) {
				struct store_op *op = s->head;
				s->head = op->next;
				if (s->head == NULL)
					s->tail = NULL;
				op->next = NULL;
				*tailp = op;
				tailp = &op->next;
				n++;
				bytes += op->bytes;
			}
			if (n >= max_ops || bytes >= s->batch_max_bytes || s->stopping ||
			    !s->group_commit || mono_ns() >= deadline)
				break;
			timedwait_until(s, deadline);
		}
		s->stats.batches++;
		pthread_mutex_unlock(&s->qlock);

		int rc = run_batch(s, &wc, batch, bytes);
		pthread_mutex_lock(&s->qlock);
		s->stats.ops += n;
		pthread_mutex_unlock(&s->qlock);
		metrics_observe_batch(n);
		/* Watchers hear of a change only once it is durable. */
		if (rc == 0)
			store_watch_notify(wc.touches, wc.ntouches);
		if (rc == 0 && wc.queued)
			store_queue_notify(); /* the outbound runner */
		wc.queued = false;
		touches_truncate(&wc, 0);
		struct store_op *op = batch;
		while (op != NULL) {
			struct store_op *next = op->next;
			finish_op(op, rc);
			post_op(op); /* op may be freed from here on */
			op = next;
		}

		pthread_mutex_lock(&s->qlock);
	}
	pthread_mutex_unlock(&s->qlock);
	ZSTD_freeCCtx(wc.zc);
	free(wc.scratch);
	free(wc.touches);
	return NULL;
}

int
store_writer_start(char **error_r)
{
	struct store_state *s = store_g;
	int rc = pthread_create(&s->writer, NULL, writer_main, s);

	if (rc != 0) {
		*error_r = xstrdup("store: cannot start the writer thread");
		return -1;
	}
	s->writer_running = true;
	return 0;
}

void
store_writer_stop(void)
{
	struct store_state *s = store_g;

	if (!s->writer_running)
		return;
	pthread_mutex_lock(&s->qlock);
	s->stopping = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	pthread_join(s->writer, NULL);
	s->writer_running = false;
}
