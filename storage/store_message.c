/*
 * store_message.c - the writer-side operations on messages: delivery and
 * expunge (run by store_writer.c inside one child transaction each).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/store_internal.h"

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
deliver_one(MDB_txn *txn, struct store_delivery *d, int64_t internal_date,
	    const uint8_t hash[STORE_HASH_LEN], struct store_rcpt *r, struct store_wctx *wc)
{
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
	    .internal_date = internal_date,
	    .size = size,
	    .trace = r->trace,
	    .trace_len = (uint32_t)r->trace_len,
	};
	uint32_t uid = mr.uidnext++;
	memcpy(m.hash, hash, STORE_HASH_LEN);
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
	store_touch(wc, r->user_id, mbox, mr.highestmodseq);
	r->uid = uid;
	return 0;
}

static bool
is_decision(int rc)
{
	return rc <= STORE_NOTFOUND && rc >= STORE_TOOBIG;
}

int
store_apply_deliver(MDB_txn *txn, struct store_delivery *d, const uint8_t hash[STORE_HASH_LEN],
		    int64_t internal_date, struct store_wctx *wc)
{
	uint32_t ok = 0;

	if (d->body == NULL && d->body_len > 0)
		return STORE_PERMFAIL;
	for (size_t i = 0; i < d->nrcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		int rc = deliver_one(txn, d, internal_date, hash, r, wc);

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
	return store_blob_put(txn, hash, d->body, d->body_len, ok, wc->zc, wc->level, wc->scratch,
			      wc->scratch_len);
}

int
store_apply_expunge(MDB_txn *txn, struct store_expunge *e, struct store_wctx *wc)
{
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
	store_touch(wc, e->user_id, mbox, mr.highestmodseq);
	return put_quota(txn, user, qbytes, qmsgs);
}
