/*
 * store_writer.c - the writer thread: owns every write transaction of the
 * store and commits in groups (DESIGN.md, Concurrency).
 *
 * Callers queue operations (deliveries, expunges) on a mutex+condvar
 * queue. The writer takes them in batches, closed at batch_max_ops
 * operations, batch_max_bytes bytes or batch_max_ms after the first
 * operation was queued; a batch is one parent transaction with one nested
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
#include "core/worker.h"
#include "storage/store_internal.h"

#define READER_CHECK_NS (60ull * 1000000000ull)
#define NS_PER_MS 1000000ull

enum op_type { OP_DELIVER, OP_EXPUNGE };

struct store_op {
	struct store_op *next;
	enum op_type type;
	struct store_delivery *d; /* borrowed from the caller until done() */
	struct store_expunge *e;  /* same */
	uint64_t bytes;		  /* counted against batch_max_bytes */
	uint64_t queued_ns;	  /* CLOCK_MONOTONIC, when queued */
	uint8_t hash[STORE_HASH_LEN];
	bool hash_failed;
	int64_t internal_date; /* the delivery's, or the time it was queued */
	int rc;		       /* the operation's result (see store_internal.h) */
};

/* Things only the writer thread touches. */
struct writer_ctx {
	ZSTD_CCtx *zc; /* owned */
	void *scratch; /* owned: one compressed chunk */
	size_t scratch_len;
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

static void
complete_op(void *arg)
{
	struct store_op *op = arg;

	if (op->type == OP_DELIVER)
		op->d->done(op->d, op->d->arg);
	else
		op->e->done(op->e, op->e->arg);
	free(op);
}

static void
post_op(struct store_op *op)
{
	struct worker *w = op->type == OP_DELIVER ? op->d->worker : op->e->worker;

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
		if (op->type == OP_DELIVER)
			fail_delivery(op->d, STORE_TEMPFAIL);
		else
			op->e->status = STORE_TEMPFAIL;
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

/* ---- operations (writer thread, inside a child transaction) ---- */

static int
put_quota(MDB_txn *txn, uint64_t user, uint64_t bytes, uint64_t messages)
{
	uint8_t key[8], val[16];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};

	be_put64(key, user);
	be_put64(val, bytes);
	be_put64(val + 8, messages);
	return mdb_put(txn, store_g->quota, &k, &v, 0);
}

static int
put_mbox(MDB_txn *txn, uint64_t user, uint32_t mbox, const struct mbox_rec *r)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = store_mbox_size(r), .mv_data = NULL};
	int rc;

	store_key_mbox(key, user, mbox);
	if ((rc = mdb_put(txn, store_g->mbox, &k, &v, MDB_RESERVE)) != 0)
		return rc;
	store_mbox_encode(v.mv_data, r);
	return 0;
}

/* Allocates the next user_id (meta "next_user_id") for a new stable id. */
static int
user_create(MDB_txn *txn, const char *id, uint64_t *user_r)
{
	MDB_val mk = {.mv_size = 12, .mv_data = (void *)"next_user_id"}, mv;
	uint8_t cnt[8], uval[8];
	uint64_t next = 1;
	int rc = mdb_get(txn, store_g->meta, &mk, &mv);

	if (rc == 0) {
		if (mv.mv_size != 8)
			return STORE_PERMFAIL;
		next = be_get64(mv.mv_data);
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	be_put64(cnt, next + 1);
	mv.mv_size = sizeof(cnt);
	mv.mv_data = cnt;
	if ((rc = mdb_put(txn, store_g->meta, &mk, &mv, 0)) != 0)
		return rc;

	MDB_val k = {.mv_size = strlen(id), .mv_data = (void *)id};
	MDB_val v = {.mv_size = sizeof(uval), .mv_data = uval};
	be_put64(uval, next);
	if ((rc = mdb_put(txn, store_g->users, &k, &v, MDB_NOOVERWRITE)) != 0)
		return rc;
	*user_r = next;
	return 0;
}

/* Creates the user's INBOX (mailbox_id 1, UIDVALIDITY from the clock). */
static int
inbox_create(MDB_txn *txn, uint64_t user, struct mbox_rec *r)
{
	uint8_t key[8 + 5], val[4];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};
	time_t now = time(NULL);
	int rc;

	be_put64(key, user);
	memcpy(key + 8, "INBOX", 5);
	be_put32(val, STORE_INBOX_ID);
	if ((rc = mdb_put(txn, store_g->mboxname, &k, &v, MDB_NOOVERWRITE)) != 0)
		return rc;
	memset(r, 0, sizeof(*r));
	r->uidvalidity = (uint32_t)now != 0 ? (uint32_t)now : 1;
	r->uidnext = 1;
	r->name = "INBOX";
	r->name_len = 5;
	return 0;
}

/* Checks and quota for one recipient; returns a STORE_* decision for this
 * recipient alone, or an LMDB code that must abort the delivery. Nothing
 * is written before every check has passed. */
static int
deliver_one(MDB_txn *txn, struct store_op *op, struct store_rcpt *r)
{
	struct store_delivery *d = op->d;
	uint64_t size = (uint64_t)r->trace_len + d->body_len;
	uint64_t user = 0, qbytes = 0, qmsgs = 0;
	bool new_user = false;
	struct mbox_rec mr;
	uint32_t mbox = STORE_INBOX_ID;
	int rc;

	if (r->user_id == NULL || r->user_id[0] == '\0' || strlen(r->user_id) > STORE_MAX_ID_LEN ||
	    (r->trace == NULL && r->trace_len > 0) || r->trace_len > UINT32_MAX)
		return STORE_PERMFAIL;
	rc = store_user_lookup(txn, r->user_id, &user);
	if (rc == MDB_NOTFOUND)
		new_user = true;
	else if (rc != 0)
		return rc;
	if (!new_user && (rc = store_quota_get(txn, user, &qbytes, &qmsgs)) != 0)
		return rc;
	if (r->quota != 0) {
		if (size > r->quota)
			return STORE_TOOBIG;
		if (qbytes + size > r->quota)
			return STORE_OVERQUOTA;
	}
	if (!new_user) {
		rc = store_mbox_lookup(txn, user, "INBOX", &mbox);
		if (rc == 0) {
			rc = store_mbox_get(txn, user, mbox, &mr);
			if (rc == MDB_NOTFOUND)
				rc = STORE_PERMFAIL; /* a name without its mailbox */
		} else if (rc == MDB_NOTFOUND) {
			rc = inbox_create(txn, user, &mr);
			mbox = STORE_INBOX_ID;
		}
		if (rc != 0)
			return rc;
	} else {
		if ((rc = user_create(txn, r->user_id, &user)) != 0)
			return rc;
		if ((rc = inbox_create(txn, user, &mr)) != 0)
			return rc;
	}
	if (mr.uidnext == UINT32_MAX)
		return STORE_PERMFAIL; /* XXX: needs a new UIDVALIDITY */

	struct msg_rec m = {
	    .flags = 0,
	    .modseq = ++mr.highestmodseq,
	    .internal_date = op->internal_date,
	    .size = size,
	    .trace = r->trace,
	    .trace_len = (uint32_t)r->trace_len,
	};
	uint32_t uid = mr.uidnext++;
	memcpy(m.hash, op->hash, STORE_HASH_LEN);
	mr.messages++;
	mr.bytes += size;
	mr.name = "INBOX"; /* the decoded name pointed into a page */
	mr.name_len = 5;

	uint8_t key[STORE_MODSEQ_KEY_LEN], uval[4];
	MDB_val k = {.mv_size = STORE_MSG_KEY_LEN, .mv_data = key};
	MDB_val v = {.mv_size = store_msg_size(&m), .mv_data = NULL};
	store_key_msg(key, user, mbox, uid);
	if ((rc = mdb_put(txn, store_g->msg, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE)) != 0)
		return rc == MDB_KEYEXIST ? STORE_PERMFAIL : rc;
	store_msg_encode(v.mv_data, &m);

	store_key_modseq(key, user, mbox, m.modseq);
	k.mv_size = STORE_MODSEQ_KEY_LEN;
	be_put32(uval, uid);
	v.mv_size = sizeof(uval);
	v.mv_data = uval;
	if ((rc = mdb_put(txn, store_g->modseq, &k, &v, 0)) != 0)
		return rc;
	if ((rc = put_mbox(txn, user, mbox, &mr)) != 0)
		return rc;
	if ((rc = put_quota(txn, user, qbytes + size, qmsgs + 1)) != 0)
		return rc;
	r->uid = uid;
	return 0;
}

static bool
is_decision(int rc)
{
	return rc <= STORE_NOTFOUND && rc >= STORE_TOOBIG;
}

static int
apply_deliver(MDB_txn *txn, struct store_op *op, struct writer_ctx *wc)
{
	struct store_delivery *d = op->d;
	uint32_t ok = 0;

	if (d->body == NULL && d->body_len > 0)
		return STORE_PERMFAIL;
	for (size_t i = 0; i < d->nrcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		int rc = deliver_one(txn, op, r);

		if (is_decision(rc)) {
			/* This recipient only; nothing of it was written. */
			r->status = rc;
			r->uid = 0;
			continue;
		}
		if (rc != 0)
			return rc;
		r->status = STORE_OK;
		ok++;
	}
	if (ok == 0)
		return 0;
	return store_blob_put(txn, op->hash, d->body, d->body_len, ok, wc->zc, store_g->zstd_level,
			      wc->scratch, wc->scratch_len);
}

static int
apply_expunge(MDB_txn *txn, struct store_op *op)
{
	struct store_expunge *e = op->e;
	const char *name = store_mbox_canon(e->mailbox);
	uint64_t user, qbytes, qmsgs;
	struct mbox_rec mr;
	uint32_t mbox;
	int rc;

	e->expunged = 0;
	rc = store_user_lookup(txn, e->user_id, &user);
	if (rc == 0)
		rc = store_mbox_lookup(txn, user, name, &mbox);
	if (rc == MDB_NOTFOUND)
		/* Nobody's INBOX exists before the first delivery. */
		return strcmp(name, "INBOX") == 0 ? 0 : STORE_NOTFOUND;
	if (rc == 0)
		rc = store_mbox_get(txn, user, mbox, &mr);
	if (rc == 0)
		rc = store_quota_get(txn, user, &qbytes, &qmsgs);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_PERMFAIL : rc;
	mr.name = name;
	mr.name_len = strlen(name);

	for (size_t i = 0; i < e->nuids; i++) {
		uint8_t key[STORE_MODSEQ_KEY_LEN];
		MDB_val k = {.mv_size = STORE_MSG_KEY_LEN, .mv_data = key}, v;
		struct msg_rec m;

		store_key_msg(key, user, mbox, e->uids[i]);
		rc = mdb_get(txn, store_g->msg, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue; /* already gone (or listed twice) */
		if (rc != 0)
			return rc;
		/* m's hash is copied; its trace pointer is not used after
		 * the delete below invalidates it. */
		if (store_msg_decode(v.mv_data, v.mv_size, &m) < 0)
			return STORE_PERMFAIL;
		if ((rc = mdb_del(txn, store_g->msg, &k, NULL)) != 0)
			return rc;
		store_key_modseq(key, user, mbox, m.modseq);
		k.mv_size = STORE_MODSEQ_KEY_LEN;
		rc = mdb_del(txn, store_g->modseq, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if ((rc = store_blob_unref(txn, m.hash)) != 0)
			return rc;
		mr.messages = mr.messages > 0 ? mr.messages - 1 : 0;
		mr.bytes = mr.bytes > m.size ? mr.bytes - m.size : 0;
		qmsgs = qmsgs > 0 ? qmsgs - 1 : 0;
		qbytes = qbytes > m.size ? qbytes - m.size : 0;
		e->expunged++;
	}
	if (e->expunged == 0)
		return 0;
	/* The mailbox changed: CONDSTORE clients must see a new MODSEQ. */
	mr.highestmodseq++;
	if ((rc = put_mbox(txn, user, mbox, &mr)) != 0)
		return rc;
	return put_quota(txn, user, qbytes, qmsgs);
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
	} else {
		op->e->status = STORE_OK;
		op->e->expunged = 0;
	}
}

/* Runs the batch; leaves each operation's result in op->rc (and in its
 * request for the parts that committed). Returns the commit's rc. */
static int
run_batch(struct store_state *s, struct writer_ctx *wc, struct store_op *batch, uint64_t bytes)
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
			if (op->type == OP_DELIVER)
				rc = apply_deliver(child, op, wc);
			else
				rc = apply_expunge(child, op);
			if (rc == 0)
				rc = mdb_txn_commit(child);
			else
				mdb_txn_abort(child);
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

/* Fills in each request's outcome after the batch's commit (commit_rc). */
static void
finish_op(struct store_op *op, int commit_rc)
{
	int status = store_rc_status(op->rc != 0 ? op->rc : commit_rc);

	if (op->rc != 0 && (status == STORE_TEMPFAIL || status == STORE_PERMFAIL))
		log_error(0, "store", "%s-failed user=%s error=\"%s\"",
			  op->type == OP_DELIVER ? "deliver" : "expunge", op_user(op),
			  store_rc_str(op->rc));
	if (op->type == OP_DELIVER) {
		if (status != STORE_OK)
			fail_delivery(op->d, status);
		else
			op->d->status = STORE_OK;
	} else {
		op->e->status = status;
		if (status != STORE_OK)
			op->e->expunged = 0;
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

static void *
writer_main(void *arg)
{
	struct store_state *s = arg;
	struct writer_ctx wc = {.scratch_len = ZSTD_compressBound(STORE_CHUNK_SIZE)};
	uint64_t next_check = mono_ns() + READER_CHECK_NS;
	unsigned max_ops = s->group_commit ? s->batch_max_ops : 1;

	wc.zc = ZSTD_createCCtx();
	wc.scratch = xmalloc(wc.scratch_len);
	if (wc.zc == NULL)
		fatal("store: cannot create a zstd context");

	pthread_mutex_lock(&s->qlock);
	for (;;) {
		while (s->head == NULL && !s->stopping && mono_ns() < next_check)
			timedwait_until(s, next_check);
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
