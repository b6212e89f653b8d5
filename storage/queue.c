/*
 * queue.c - the LMDB side of the outbound queue (storage/queue.h): remote
 * recipients queued in the same child transaction as a delivery's local
 * copies (store_queue_put, called by store_apply_deliver), the runner's
 * reads (due recipients, the next due time, the body, counts) in short
 * read transactions, and its results written through the store's writer
 * (queue_update) together with the DSNs they cause.
 *
 * Layout (store_schema.h): `queue` holds one record per message with the
 * envelope and the body's hash, `queue_rcpt` one per remote recipient with
 * its state, and `queue_due` indexes the pending recipients by next
 * attempt, so "what is due" is a range scan from the start. The body is a
 * blob shared with the mailboxes: a queue entry holds one reference,
 * dropped when its last recipient becomes final and the entry leaves.
 *
 * Failures: LMDB errors are STORE_TEMPFAIL, records that do not decode
 * STORE_PERMFAIL (left in place for `ternd store check`); a bad envelope
 * (no address, a string longer than a record can hold) is STORE_PERMFAIL
 * and fails the delivery it came with.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/queue.h"
#include "storage/store_internal.h"

/* A reason longer than this is cut: it is one line of a remote reply. */
#define QUEUE_REASON_MAX 1000

/* ---- the runner's wake-up ---- */

/* The mutex is held while fn runs, so queue_set_notify(NULL, NULL) returns
 * only once no call is in progress and the runner may free arg. */
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*notify_fn)(void *arg);
static void *notify_arg;

void
queue_set_notify(void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&notify_lock);
	notify_fn = fn;
	notify_arg = arg;
	pthread_mutex_unlock(&notify_lock);
}

void
store_queue_notify(void)
{
	pthread_mutex_lock(&notify_lock);
	if (notify_fn != NULL)
		notify_fn(notify_arg);
	pthread_mutex_unlock(&notify_lock);
}

/* ---- writing (writer thread, inside a child transaction) ---- */

static int
next_queue_id(MDB_txn *txn, uint64_t *id_r)
{
	return store_txn_counter(txn, "next_queue_id", id_r);
}

/* Length of an optional string that must fit a u16 length field. */
static int
str_len16(const char *s, uint16_t *len_r)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n > UINT16_MAX)
		return STORE_PERMFAIL;
	*len_r = (uint16_t)n;
	return 0;
}

int
queue_due_put(MDB_txn *txn, int64_t when, uint64_t qid, uint32_t idx)
{
	uint8_t key[QUEUE_DUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v = {.mv_size = 0, .mv_data = key};

	queue_key_due(key, when, qid, idx);
	return mdb_put(txn, store_g->queue_due, &k, &v, 0);
}

int
queue_due_del(MDB_txn *txn, int64_t when, uint64_t qid, uint32_t idx)
{
	uint8_t key[QUEUE_DUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	int rc;

	queue_key_due(key, when, qid, idx);
	rc = mdb_del(txn, store_g->queue_due, &k, NULL);
	/* Already absent: the index is repaired by this very update (and
	 * `ternd store check` reports how it got that way). */
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
queue_rcpt_put(MDB_txn *txn, uint64_t qid, uint32_t idx, const struct queue_rcpt_rec *r)
{
	uint8_t key[QUEUE_RCPT_KEY_LEN];
	size_t n = queue_rcpt_size(r);
	uint8_t *val = xmalloc(n);
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v = {.mv_size = n, .mv_data = val};
	int rc;

	queue_key_rcpt(key, qid, idx);
	queue_rcpt_encode(val, r);
	rc = mdb_put(txn, store_g->queue_rcpt, &k, &v, 0);
	free(val);
	return rc;
}

int
store_queue_put(MDB_txn *txn, struct queue_envelope *env, const uint8_t hash[STORE_HASH_LEN],
		uint64_t body_len, int64_t created, struct store_wctx *wc, uint32_t *refs_r)
{
	struct queue_msg_rec m = {0};
	uint64_t qid;
	int rc;

	*refs_r = 0;
	env->queue_id = 0;
	if (env->nrcpts == 0)
		return 0;
	if (env->rcpts == NULL || env->nrcpts > UINT32_MAX || env->ret > QUEUE_RET_HDRS ||
	    env->origin < QUEUE_ORIGIN_SUBMISSION || env->origin > QUEUE_ORIGIN_REPORT)
		return STORE_PERMFAIL;
	if ((rc = str_len16(env->sender, &m.sender_len)) != 0 ||
	    (rc = str_len16(env->envid, &m.envid_len)) != 0 ||
	    (rc = str_len16(env->auth_user, &m.auth_user_len)) != 0 ||
	    (rc = str_len16(env->client, &m.client_len)) != 0)
		return rc;
	for (size_t i = 0; i < env->nrcpts; i++) {
		uint16_t l;
		if (env->rcpts[i].address == NULL || env->rcpts[i].address[0] == '\0')
			return STORE_PERMFAIL;
		if ((rc = str_len16(env->rcpts[i].address, &l)) != 0 ||
		    (rc = str_len16(env->rcpts[i].orcpt, &l)) != 0)
			return rc;
	}
	if ((rc = next_queue_id(txn, &qid)) != 0)
		return rc;

	m.ret = (uint8_t)env->ret;
	m.origin = (uint8_t)env->origin;
	m.flags = (env->smtputf8 ? QUEUE_F_SMTPUTF8 : 0) | (env->eightbit ? QUEUE_F_8BIT : 0) |
		  (env->requiretls ? QUEUE_F_REQUIRETLS : 0);
	m.nrcpts = (uint32_t)env->nrcpts;
	m.created = created;
	m.size = body_len;
	memcpy(m.hash, hash, STORE_HASH_LEN);
	m.sender = env->sender;
	m.envid = env->envid;
	m.auth_user = env->auth_user;
	m.client = env->client;

	uint8_t key[QUEUE_KEY_LEN];
	size_t n = queue_msg_size(&m);
	uint8_t *val = xmalloc(n);
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v = {.mv_size = n, .mv_data = val};
	be_put64(key, qid);
	queue_msg_encode(val, &m);
	rc = mdb_put(txn, store_g->queue, &k, &v, MDB_NOOVERWRITE);
	free(val);
	if (rc == MDB_KEYEXIST)
		return STORE_PERMFAIL; /* next_queue_id went back: corruption */
	if (rc != 0)
		return rc;

	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt_in *in = &env->rcpts[i];
		struct queue_rcpt_rec r = {
		    .state = QUEUE_R_PENDING,
		    .notify = in->notify,
		    .next_attempt = created, /* due at once */
		    .address = in->address,
		    .address_len = (uint16_t)strlen(in->address),
		    .orcpt = in->orcpt,
		    .orcpt_len = in->orcpt != NULL ? (uint16_t)strlen(in->orcpt) : 0,
		};
		if ((rc = queue_rcpt_put(txn, qid, (uint32_t)i, &r)) != 0)
			return rc;
		if ((rc = queue_due_put(txn, created, qid, (uint32_t)i)) != 0)
			return rc;
	}
	/* Set even if this child is later aborted: at worst the runner scans
	 * once for nothing. */
	wc->queued = true;
	env->queue_id = qid;
	*refs_r = 1;
	return 0;
}

/* Removes the entry qid if every recipient is final: its recipient
 * records, its record, and its reference to the body. */
int
queue_finish_if_done(MDB_txn *txn, uint64_t qid)
{
	uint8_t key[QUEUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct queue_msg_rec m;
	int rc;

	be_put64(key, qid);
	if ((rc = mdb_get(txn, store_g->queue, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (queue_msg_decode(v.mv_data, v.mv_size, &m) < 0)
		return STORE_PERMFAIL;
	uint32_t nrcpts = m.nrcpts;
	uint8_t hash[STORE_HASH_LEN];
	memcpy(hash, m.hash, STORE_HASH_LEN); /* v may move when we write */

	for (uint32_t i = 0; i < nrcpts; i++) {
		uint8_t rk[QUEUE_RCPT_KEY_LEN];
		MDB_val rkv = {.mv_size = sizeof(rk), .mv_data = rk}, rv;
		struct queue_rcpt_rec r;

		queue_key_rcpt(rk, qid, i);
		rc = mdb_get(txn, store_g->queue_rcpt, &rkv, &rv);
		if (rc == MDB_NOTFOUND)
			continue; /* missing: store check reports it; nothing pends */
		if (rc != 0)
			return rc;
		if (queue_rcpt_decode(rv.mv_data, rv.mv_size, &r) < 0)
			return STORE_PERMFAIL;
		if (r.state == QUEUE_R_PENDING)
			return 0;
	}
	for (uint32_t i = 0; i < nrcpts; i++) {
		uint8_t rk[QUEUE_RCPT_KEY_LEN];
		MDB_val rkv = {.mv_size = sizeof(rk), .mv_data = rk};

		queue_key_rcpt(rk, qid, i);
		rc = mdb_del(txn, store_g->queue_rcpt, &rkv, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	if ((rc = mdb_del(txn, store_g->queue, &k, NULL)) != 0)
		return rc;
	return store_blob_unref(txn, hash);
}

int
queue_held(MDB_txn *txn, uint64_t qid, bool *held_r)
{
	uint8_t key[QUEUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct queue_msg_rec m;
	int rc;

	*held_r = false;
	be_put64(key, qid);
	if ((rc = mdb_get(txn, store_g->queue, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (queue_msg_decode(v.mv_data, v.mv_size, &m) < 0)
		return STORE_PERMFAIL;
	*held_r = (m.flags & QUEUE_F_HELD) != 0;
	return 0;
}

/* Applies one result; *touched_r when it changed a recipient. */
static int
apply_result(MDB_txn *txn, const struct queue_result *res, bool *touched_r)
{
	uint8_t key[QUEUE_RCPT_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct queue_rcpt_rec r;
	int rc;

	*touched_r = false;
	if (res->outcome < QUEUE_DELIVERED || res->outcome > QUEUE_DELAY_WARNED)
		return STORE_PERMFAIL;
	queue_key_rcpt(key, res->queue_id, res->rcpt_idx);
	rc = mdb_get(txn, store_g->queue_rcpt, &k, &v);
	if (rc == MDB_NOTFOUND) {
		/* Gone already (a second update for the same attempt): what
		 * it says was recorded before. */
		log_warn(0, "store", "queue-result-stale queue_id=%016llx rcpt=%u",
			 (unsigned long long)res->queue_id, res->rcpt_idx);
		return 0;
	}
	if (rc != 0)
		return rc;
	if (queue_rcpt_decode(v.mv_data, v.mv_size, &r) < 0)
		return STORE_PERMFAIL;
	if (r.state != QUEUE_R_PENDING)
		return 0; /* final stays final */

	int64_t old_due = r.next_attempt;
	size_t rlen = res->reason != NULL ? strlen(res->reason) : 0;
	if (rlen > QUEUE_REASON_MAX)
		rlen = QUEUE_REASON_MAX;
	r.last_error = res->reason;
	r.last_error_len = (uint16_t)rlen;
	if (r.attempts < UINT32_MAX)
		r.attempts++;
	switch (res->outcome) {
	case QUEUE_DELIVERED:
		r.state = QUEUE_R_DELIVERED;
		break;
	case QUEUE_FAILED:
		r.state = QUEUE_R_FAILED;
		break;
	case QUEUE_DELAY_WARNED:
		r.flags |= QUEUE_RF_DELAY_WARNED;
		/* fall through */
	case QUEUE_DEFERRED:
		r.next_attempt = (int64_t)res->next_attempt;
		break;
	}
	/* r's strings point into v, which the writes below may move: encode
	 * it (rcpt_put copies) before anything else is written. */
	if ((rc = queue_rcpt_put(txn, res->queue_id, res->rcpt_idx, &r)) != 0)
		return rc;
	if ((rc = queue_due_del(txn, old_due, res->queue_id, res->rcpt_idx)) != 0)
		return rc;
	/* An admin may have held the message while this attempt ran: a held
	 * entry's recipients stay out of the due index until released. */
	bool held = false;
	if (r.state == QUEUE_R_PENDING && (rc = queue_held(txn, res->queue_id, &held)) != 0)
		return rc;
	if (r.state == QUEUE_R_PENDING && !held &&
	    (rc = queue_due_put(txn, r.next_attempt, res->queue_id, res->rcpt_idx)) != 0)
		return rc;
	*touched_r = true;
	return 0;
}

static int
apply_update(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct queue_update *u = (struct queue_update *)req;
	uint64_t *qids = NULL;
	size_t nq = 0;
	int rc = 0;

	if ((u->nresults > 0 && u->results == NULL) || (u->ndsns > 0 && u->dsns == NULL))
		return STORE_PERMFAIL;
	if (u->nresults > 0)
		qids = xcalloc(u->nresults, sizeof(*qids));
	for (size_t i = 0; i < u->nresults; i++) {
		bool touched;
		if ((rc = apply_result(txn, &u->results[i], &touched)) != 0)
			goto out;
		if (!touched)
			continue;
		size_t j = 0;
		while (j < nq && qids[j] != u->results[i].queue_id)
			j++;
		if (j == nq)
			qids[nq++] = u->results[i].queue_id;
	}
	for (size_t i = 0; i < nq; i++)
		if ((rc = queue_finish_if_done(txn, qids[i])) != 0)
			goto out;

	/* The DSNs go through the delivery path in this same transaction:
	 * committed with the results that caused them, or not at all. */
	for (size_t i = 0; i < u->ndsns; i++) {
		struct store_delivery *d = &u->dsns[i];
		uint8_t hash[STORE_HASH_LEN];

		if (d->body == NULL && d->body_len > 0) {
			rc = STORE_PERMFAIL;
			goto out;
		}
		if (EVP_Digest(d->body != NULL ? d->body : "", d->body_len, hash, NULL,
			       EVP_sha256(), NULL) != 1) {
			rc = STORE_TEMPFAIL;
			goto out;
		}
		d->status = STORE_OK;
		for (size_t j = 0; j < d->nrcpts; j++) {
			d->rcpts[j].status = STORE_OK;
			d->rcpts[j].uid = 0;
		}
		int64_t date =
		    d->internal_date != 0 ? (int64_t)d->internal_date : (int64_t)time(NULL);
		if ((rc = store_apply_deliver(txn, d, hash, date, wc)) != 0)
			goto out;
	}
out:
	free(qids);
	return rc;
}

void
queue_update(struct queue_update *u)
{
	uint64_t bytes = 64 * (uint64_t)u->nresults;

	for (size_t i = 0; i < u->ndsns; i++)
		bytes += u->dsns[i].body_len;
	store_submit(&u->req, apply_update, bytes);
}

/* ---- reading (any thread, short read transactions) ---- */

static const char *
dup_opt(struct arena *a, const char *s, size_t n)
{
	return n > 0 ? arena_strndup(a, s, n) : NULL;
}

static int
msg_get(MDB_txn *txn, uint64_t qid, struct queue_msg_rec *m)
{
	uint8_t key[QUEUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	int rc;

	be_put64(key, qid);
	if ((rc = mdb_get(txn, store_g->queue, &k, &v)) != 0)
		return rc;
	return queue_msg_decode(v.mv_data, v.mv_size, m) < 0 ? STORE_PERMFAIL : 0;
}

int
queue_due(time_t now, size_t max, bool (*in_flight)(void *arg, uint64_t id, uint32_t idx),
	  void *arg, struct arena *a, struct queue_item **items_r, size_t *n_r)
{
	struct queue_item *items = NULL;
	struct queue_msg_rec m;
	uint64_t m_qid = 0;
	uint64_t limit = now < 0 ? 0 : (uint64_t)now;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_stat st;
	MDB_val k, v;
	size_t n = 0;
	int rc;

	*items_r = NULL;
	*n_r = 0;
	if (max == 0)
		return STORE_OK;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_stat(txn, store_g->queue_due, &st)) != 0)
		goto out;
	if (st.ms_entries < max)
		max = st.ms_entries;
	if (max == 0)
		goto out;
	items = arena_alloc(a, max * sizeof(*items));
	if ((rc = mdb_cursor_open(txn, store_g->queue_due, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_rcpt_rec r;

		if (k.mv_size != QUEUE_DUE_KEY_LEN) {
			rc = STORE_PERMFAIL;
			break;
		}
		uint64_t when = be_get64(k.mv_data);
		uint64_t qid = be_get64((const uint8_t *)k.mv_data + 8);
		uint32_t idx = be_get32((const uint8_t *)k.mv_data + 16);
		if (when > limit)
			break;
		if (in_flight != NULL && in_flight(arg, qid, idx))
			continue;

		uint8_t rk[QUEUE_RCPT_KEY_LEN];
		MDB_val rkv = {.mv_size = sizeof(rk), .mv_data = rk}, rv;
		queue_key_rcpt(rk, qid, idx);
		if ((rc = mdb_get(txn, store_g->queue_rcpt, &rkv, &rv)) != 0 ||
		    queue_rcpt_decode(rv.mv_data, rv.mv_size, &r) < 0) {
			/* An index entry without its recipient: skip it, so one
			 * bad entry does not stop every delivery. */
			log_error(0, "store",
				  "queue-corrupt queue_id=%016llx rcpt=%u what=recipient",
				  (unsigned long long)qid, idx);
			if (rc != 0 && rc != MDB_NOTFOUND)
				break;
			rc = 0;
			continue;
		}
		if (m_qid != qid) {
			if ((rc = msg_get(txn, qid, &m)) != 0) {
				log_error(0, "store",
					  "queue-corrupt queue_id=%016llx rcpt=%u what=message",
					  (unsigned long long)qid, idx);
				if (rc != MDB_NOTFOUND && rc != STORE_PERMFAIL)
					break;
				m_qid = 0;
				rc = 0;
				continue;
			}
			m_qid = qid;
		}
		struct queue_item *it = &items[n++];
		it->queue_id = qid;
		it->rcpt_idx = idx;
		it->sender = arena_strndup(a, m.sender, m.sender_len);
		it->address = arena_strndup(a, r.address, r.address_len);
		it->orcpt = dup_opt(a, r.orcpt, r.orcpt_len);
		it->envid = dup_opt(a, m.envid, m.envid_len);
		it->notify = r.notify;
		it->ret = (enum queue_ret)m.ret;
		it->origin = (enum queue_origin)m.origin;
		it->smtputf8 = (m.flags & QUEUE_F_SMTPUTF8) != 0;
		it->eightbit = (m.flags & QUEUE_F_8BIT) != 0;
		it->requiretls = (m.flags & QUEUE_F_REQUIRETLS) != 0;
		it->delay_warned = (r.flags & QUEUE_RF_DELAY_WARNED) != 0;
		it->created = (time_t)m.created;
		it->next_attempt = (time_t)r.next_attempt;
		it->attempts = r.attempts;
		it->last_error = dup_opt(a, r.last_error, r.last_error_len);
		it->size = m.size;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc != 0)
		return store_rc_status(rc);
	*items_r = n > 0 ? items : NULL;
	*n_r = n;
	return STORE_OK;
}

int
queue_next_due(time_t *when_r)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_cursor_open(txn, store_g->queue_due, &cur)) == 0) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		if (rc == 0 && k.mv_size != QUEUE_DUE_KEY_LEN)
			rc = STORE_PERMFAIL;
		if (rc == 0)
			*when_r = (time_t)be_get64(k.mv_data);
		mdb_cursor_close(cur);
	}
	store_read_end(txn);
	return store_rc_status(rc);
}

int
queue_message_read(uint64_t queue_id, struct buf *out)
{
	struct queue_msg_rec m;
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = msg_get(txn, queue_id, &m)) == 0)
		rc = store_blob_read(txn, m.hash, m.size, out);
	store_read_end(txn);
	return store_rc_status(rc);
}

int
queue_stats(uint64_t *recipients_r, uint64_t *messages_r, time_t *oldest_r)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_stat st;
	MDB_val k, v;
	int rc;

	*recipients_r = *messages_r = 0;
	*oldest_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_stat(txn, store_g->queue_due, &st)) != 0)
		goto out;
	*recipients_r = st.ms_entries;
	if ((rc = mdb_stat(txn, store_g->queue, &st)) != 0)
		goto out;
	*messages_r = st.ms_entries;
	/* Queue ids grow with time, so the first entry is the oldest. */
	if ((rc = mdb_cursor_open(txn, store_g->queue, &cur)) != 0)
		goto out;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == 0) {
		struct queue_msg_rec m;
		if (queue_msg_decode(v.mv_data, v.mv_size, &m) < 0)
			rc = STORE_PERMFAIL;
		else
			*oldest_r = (time_t)m.created;
	} else if (rc == MDB_NOTFOUND) {
		rc = 0;
	}
	mdb_cursor_close(cur);
out:
	store_read_end(txn);
	return store_rc_status(rc);
}
