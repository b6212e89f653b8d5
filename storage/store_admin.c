/*
 * store_admin.c - the users the store knows and their usage, orphan marks,
 * and purging a user (storage/store_admin.h), plus the blocking helper the
 * admin side uses to wait for a write.
 *
 * Reads run in one short read transaction each and copy into the caller's
 * arena. Writes are writer-thread operations (store_submit) in their own
 * child transaction, so a failure rolls that step back whole. A purge is
 * several such steps, each leaving a store that checks clean: messages
 * first (ordinary expunges, bodies freed with their last reference), then
 * everything else of the user in one last step.
 * Failures: STORE_NOTFOUND for an unknown user or missing mark, records
 * that do not decode STORE_PERMFAIL, LMDB errors STORE_TEMPFAIL.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"

#define PURGE_STEP_DEFAULT 1000

/* ---- blocking requests ---- */

static void
sync_done(void *req, void *arg)
{
	struct store_sync *s = arg;

	(void)req;
	pthread_mutex_lock(&s->m);
	s->done = true;
	pthread_cond_signal(&s->c);
	pthread_mutex_unlock(&s->m);
}

void
store_sync_prepare(struct store_sync *s, struct store_req *req)
{
	pthread_mutex_init(&s->m, NULL);
	pthread_cond_init(&s->c, NULL);
	s->done = false;
	req->worker = NULL;
	req->done = sync_done;
	req->arg = s;
}

void
store_sync_wait(struct store_sync *s)
{
	pthread_mutex_lock(&s->m);
	while (!s->done)
		pthread_cond_wait(&s->c, &s->m);
	pthread_mutex_unlock(&s->m);
	pthread_mutex_destroy(&s->m);
	pthread_cond_destroy(&s->c);
}

/* ---- users ---- */

static int
orphan_get(MDB_txn *txn, const void *id, size_t idlen, int64_t *when_r)
{
	MDB_val k = {.mv_size = idlen, .mv_data = (void *)id}, v;
	int rc = mdb_get(txn, store_g->orphans, &k, &v);

	if (rc != 0)
		return rc;
	return store_orphan_decode(v.mv_data, v.mv_size, when_r) < 0 ? STORE_PERMFAIL : 0;
}

/* The save date of the highest UID of a mailbox: the last message that
 * arrived in it (UIDs only grow). */
static int
last_save_date(MDB_txn *txn, MDB_cursor *mc, uint64_t user, uint32_t mbox, int64_t *when_r)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct msg_rec r;
	int rc;

	(void)txn;
	*when_r = 0;
	store_key_msg(key, user, mbox, UINT32_MAX);
	rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE);
	if (rc == 0)
		rc = mdb_cursor_get(mc, &k, &v, MDB_PREV);
	else if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(mc, &k, &v, MDB_LAST);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
		return 0; /* no message in this mailbox */
	if (store_msg_decode(v.mv_data, v.mv_size, &r) < 0)
		return STORE_PERMFAIL;
	*when_r = r.save_date;
	return 0;
}

/* Fills r for the user whose record is ur (stable id id). */
static int
summarize(MDB_txn *txn, struct arena *a, const char *id, size_t idlen, const struct user_rec *ur,
	  struct store_user_summary *r)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur = NULL, *mc = NULL;
	int64_t orphaned = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	r->user_id = arena_strndup(a, id, idlen);
	r->internal_id = ur->user_id;
	if ((rc = store_quota_get(txn, ur->user_id, &r->bytes, &r->messages)) != 0)
		return rc;
	rc = orphan_get(txn, id, idlen, &orphaned);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	r->orphaned_at = (time_t)orphaned;
	if ((rc = mdb_cursor_open(txn, store_g->mbox, &cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, store_g->msg, &mc)) != 0)
		goto out;
	store_key_mbox(key, ur->user_id, 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec mr;
		if (k.mv_size != STORE_MBOX_KEY_LEN || be_get64(k.mv_data) != ur->user_id)
			break;
		uint32_t id32 = be_get32((const uint8_t *)k.mv_data + 8);
		if (store_mbox_decode(v.mv_data, v.mv_size, &mr) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		r->mailboxes++;
		r->unseen += mr.unseen;
		if (id32 == STORE_INBOX_ID)
			r->created = (time_t)mr.uidvalidity;
		if (mr.messages > 0) {
			int64_t when;
			if ((rc = last_save_date(txn, mc, ur->user_id, id32, &when)) != 0)
				break;
			if ((time_t)when > r->last_arrival)
				r->last_arrival = (time_t)when;
		}
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (mc != NULL)
		mdb_cursor_close(mc);
	mdb_cursor_close(cur);
	return rc;
}

int
store_user_list(struct arena *a, struct store_user_summary **users_r, size_t *count_r)
{
	struct store_user_summary *list = NULL;
	size_t n = 0, cap = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*users_r = NULL;
	*count_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_cursor_open(txn, store_g->users, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct user_rec ur;
		if (store_user_decode(v.mv_data, v.mv_size, &ur) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			list = xrealloc(list, cap * sizeof(*list));
		}
		/* k and v stay valid: summarize() uses other cursors. */
		if ((rc = summarize(txn, a, k.mv_data, k.mv_size, &ur, &list[n])) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	store_read_end(txn);
	if (rc == 0 && n > 0) {
		*users_r = arena_memdup(a, list, n * sizeof(*list));
		*count_r = n;
	}
	free(list);
	if (rc != 0)
		log_error(0, "store", "user-list-failed error=\"%s\"", store_rc_str(rc));
	return store_rc_status(rc);
}

int
store_user_get(const char *user_id, struct arena *a, struct store_user_summary *r)
{
	size_t n = user_id != NULL ? strlen(user_id) : 0;
	MDB_val k = {.mv_size = n, .mv_data = (void *)user_id}, v;
	struct user_rec ur;
	MDB_txn *txn;
	int rc;

	memset(r, 0, sizeof(*r));
	if (n == 0 || n > STORE_MAX_ID_LEN)
		return STORE_NOTFOUND;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = mdb_get(txn, store_g->users, &k, &v);
	if (rc == 0)
		rc = store_user_decode(v.mv_data, v.mv_size, &ur) < 0 ? STORE_PERMFAIL : 0;
	if (rc == 0)
		rc = summarize(txn, a, user_id, n, &ur, r);
	store_read_end(txn);
	if (rc != 0)
		memset(r, 0, sizeof(*r));
	return store_rc_status(rc);
}

/* ---- orphan marks ---- */

int
store_orphan_list(struct arena *a, struct store_orphan **list_r, size_t *count_r)
{
	struct store_orphan *list = NULL;
	size_t n = 0, cap = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_cursor_open(txn, store_g->orphans, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int64_t when;
		if (store_orphan_decode(v.mv_data, v.mv_size, &when) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			list = xrealloc(list, cap * sizeof(*list));
		}
		list[n].user_id = arena_strndup(a, k.mv_data, k.mv_size);
		list[n].marked_at = (time_t)when;
		n++;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	store_read_end(txn);
	if (rc == 0 && n > 0) {
		*list_r = arena_memdup(a, list, n * sizeof(*list));
		*count_r = n;
	}
	free(list);
	return store_rc_status(rc);
}

static int
apply_orphan(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_orphan_change *o = (struct store_orphan_change *)req;
	size_t n = o->user_id != NULL ? strlen(o->user_id) : 0;
	MDB_val k = {.mv_size = n, .mv_data = (void *)o->user_id}, v;
	uint8_t val[STORE_ORPHAN_LEN];
	uint64_t user;
	int64_t when;
	int rc;

	(void)wc;
	o->marked_at = 0;
	if (n == 0 || n > STORE_MAX_ID_LEN)
		return STORE_PERMFAIL;
	if (!o->mark) {
		rc = mdb_del(txn, store_g->orphans, &k, NULL);
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	}
	if ((rc = store_user_lookup(txn, o->user_id, &user)) != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	rc = orphan_get(txn, o->user_id, n, &when);
	if (rc == 0) {
		o->marked_at = (time_t)when; /* the first mark stands */
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	when = o->when != 0 ? (int64_t)o->when : (int64_t)time(NULL);
	store_orphan_encode(val, when);
	v.mv_size = sizeof(val);
	v.mv_data = val;
	if ((rc = mdb_put(txn, store_g->orphans, &k, &v, 0)) != 0)
		return rc;
	o->marked_at = (time_t)when;
	return 0;
}

void
store_orphan_change(struct store_orphan_change *o)
{
	o->marked_at = 0;
	store_submit(&o->req, apply_orphan, 64);
}

static int
orphan_sync(const char *user_id, bool mark, time_t when, time_t *marked_at_r)
{
	struct store_orphan_change o = {.user_id = user_id, .mark = mark, .when = when};
	struct store_sync s;

	store_sync_prepare(&s, &o.req);
	store_orphan_change(&o);
	store_sync_wait(&s);
	if (marked_at_r != NULL)
		*marked_at_r = o.marked_at;
	return o.req.status;
}

int
store_user_mark_orphan(const char *user_id, time_t when, time_t *marked_at_r)
{
	return orphan_sync(user_id, true, when, marked_at_r);
}

int
store_user_unmark_orphan(const char *user_id)
{
	return orphan_sync(user_id, false, 0, NULL);
}

/* ---- purge ---- */

/* Deletes every entry of dbi whose key starts with prefix. */
static int
del_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen)
{
	MDB_val k = {.mv_size = plen, .mv_data = (void *)prefix}, v;
	MDB_cursor *cur;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		/* After a delete the cursor stands on the next entry, and
		 * MDB_NEXT returns that one (LMDB's C_DEL). */
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The ids of every mailbox of user. */
static int
mbox_ids(MDB_txn *txn, uint64_t user, uint32_t **ids_r, size_t *n_r)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur;
	uint32_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*ids_r = NULL;
	*n_r = 0;
	store_key_mbox(key, user, 0);
	if ((rc = mdb_cursor_open(txn, store_g->mbox, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MBOX_KEY_LEN || be_get64(k.mv_data) != user)
			break;
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = be_get32((const uint8_t *)k.mv_data + 8);
	}
	mdb_cursor_close(cur);
	*ids_r = ids;
	*n_r = n;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Up to max UIDs of a mailbox, ascending, into uids (room for max). */
static int
some_uids(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t *uids, size_t max, size_t *n_r)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur;
	size_t n = 0;
	int rc;

	*n_r = 0;
	store_key_msg(key, user, mbox, 0);
	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break;
		uids[n++] = be_get32((const uint8_t *)k.mv_data + 12);
	}
	mdb_cursor_close(cur);
	*n_r = n;
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Expunges up to *budget messages of the user; *left_r whether any
 * message remains after that. */
static int
purge_messages(MDB_txn *txn, struct store_purge *p, uint64_t user, const uint32_t *ids, size_t nids,
	       size_t budget, bool *left_r, struct store_wctx *wc)
{
	uint64_t qbytes, qmsgs;
	uint32_t *uids = xmalloc(budget * sizeof(*uids));
	int rc = store_quota_get(txn, user, &qbytes, &qmsgs);

	*left_r = false;
	for (size_t i = 0; i < nids && rc == 0; i++) {
		struct store_mbox_w mb;
		size_t n;

		if (budget == 0) {
			/* Out of budget: is there anything left here? */
			uint32_t one;
			rc = some_uids(txn, user, ids[i], &one, 1, &n);
			if (n > 0)
				*left_r = true;
			if (*left_r)
				break;
			continue;
		}
		if ((rc = some_uids(txn, user, ids[i], uids, budget, &n)) != 0 || n == 0)
			continue;
		if ((rc = store_txn_mbox_load(txn, user, ids[i], &mb)) != 0) {
			rc = rc == MDB_NOTFOUND ? STORE_PERMFAIL : rc;
			break;
		}
		for (size_t j = 0; j < n && rc == 0; j++) {
			bool found;
			uint64_t size;
			rc = store_txn_msg_expunge(txn, user, &mb, uids[j], &found, &size);
			if (rc == 0 && found) {
				qmsgs = qmsgs > 0 ? qmsgs - 1 : 0;
				qbytes = qbytes > size ? qbytes - size : 0;
				p->messages++;
				p->bytes += size;
			}
		}
		budget -= n;
		if (rc == 0)
			rc = store_txn_mbox_save(txn, user, &mb);
		if (rc == 0)
			store_touch(wc, p->user_id, mb.id, mb.r.highestmodseq);
		store_mbox_w_free(&mb);
		if (rc == 0 && budget == 0) {
			/* Exactly used up: look again from this mailbox. */
			uint32_t one;
			rc = some_uids(txn, user, ids[i], &one, 1, &n);
			if (n > 0)
				*left_r = true;
			if (*left_r)
				break;
		}
	}
	if (rc == 0 && p->messages > 0)
		rc = store_txn_quota_put(txn, user, qbytes, qmsgs);
	free(uids);
	return rc;
}

static int
apply_purge(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_purge *p = (struct store_purge *)req;
	size_t n = p->user_id != NULL ? strlen(p->user_id) : 0;
	size_t budget = p->max_messages != 0 ? p->max_messages : PURGE_STEP_DEFAULT;
	MDB_val k = {.mv_size = n, .mv_data = (void *)p->user_id};
	uint32_t *ids = NULL;
	size_t nids = 0;
	uint8_t prefix[8];
	uint64_t user;
	bool left;
	int rc;

	p->messages = p->bytes = 0;
	p->finished = false;
	if ((rc = store_user_lookup(txn, p->user_id, &user)) != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	if ((rc = mbox_ids(txn, user, &ids, &nids)) != 0)
		goto out;
	if ((rc = purge_messages(txn, p, user, ids, nids, budget, &left, wc)) != 0 || left)
		goto out;
	for (size_t i = 0; i < nids; i++)
		if ((rc = store_acl_drop(txn, user, ids[i])) != 0)
			goto out;

	/* No message left: the rest of the user goes in this transaction.
	 * Every key of these databases starts with the user's number. */
	be_put64(prefix, user);
	if ((rc = del_prefix(txn, store_g->msg, prefix, 8)) != 0 ||
	    (rc = del_prefix(txn, store_g->modseq, prefix, 8)) != 0 ||
	    (rc = del_prefix(txn, store_g->mbox, prefix, 8)) != 0 ||
	    (rc = del_prefix(txn, store_g->mboxname, prefix, 8)) != 0 ||
	    (rc = del_prefix(txn, store_g->subs, prefix, 8)) != 0 ||
	    (rc = store_fts_drop(txn, user, 0, true)) != 0 ||
	    (rc = store_annot_drop_user(txn, user)) != 0)
		goto out;
	MDB_val qk = {.mv_size = 8, .mv_data = prefix};
	rc = mdb_del(txn, store_g->quota, &qk, NULL);
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, store_g->orphans, &k, NULL);
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, store_g->users, &k, NULL);
	if (rc != 0)
		goto out;
	/* Sessions of this process that watch the user re-read and find
	 * their mailboxes gone. */
	for (size_t i = 0; i < nids; i++)
		store_touch(wc, p->user_id, ids[i], UINT64_MAX);
	store_touch_user(wc, p->user_id, STORE_CHANGED_ALL);
	p->finished = true;
out:
	free(ids);
	if (rc != 0) {
		p->messages = p->bytes = 0;
		p->finished = false;
	}
	return rc;
}

void
store_purge_step(struct store_purge *p)
{
	size_t per = p->max_messages != 0 ? p->max_messages : PURGE_STEP_DEFAULT;

	p->messages = p->bytes = 0;
	p->finished = false;
	store_submit(&p->req, apply_purge, 64 * (uint64_t)per);
}

int
store_user_purge(const char *user_id, void (*progress)(void *arg, uint64_t messages), void *arg,
		 uint64_t *messages_r, uint64_t *bytes_r)
{
	uint64_t msgs = 0, bytes = 0;
	int status;

	for (;;) {
		struct store_purge p = {.user_id = user_id};
		struct store_sync s;

		store_sync_prepare(&s, &p.req);
		store_purge_step(&p);
		store_sync_wait(&s);
		status = p.req.status;
		if (status != STORE_OK)
			break;
		msgs += p.messages;
		bytes += p.bytes;
		if (progress != NULL)
			progress(arg, msgs);
		if (p.finished)
			break;
	}
	if (status == STORE_OK)
		log_info(0, "store", "purge user=%s messages=%llu bytes=%llu", user_id,
			 (unsigned long long)msgs, (unsigned long long)bytes);
	if (messages_r != NULL)
		*messages_r = msgs;
	if (bytes_r != NULL)
		*bytes_r = bytes;
	return status;
}
