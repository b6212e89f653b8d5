/*
 * store_message.c - the writer-side operations on messages: delivery,
 * APPEND, STORE (flags and keywords), COPY/MOVE and expunge. Each runs
 * inside one child transaction of the writer's batch (store_writer.c), so
 * a failure rolls that operation back whole; results go into the
 * request (and its arena). Delivery alone makes per-recipient decisions:
 * a recipient refused for quota or a bad id is skipped before anything of
 * it is written, and the others still get the message.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/queue.h"
#include "storage/store_internal.h"

static bool
is_decision(int rc)
{
	return rc <= STORE_NOTFOUND && rc >= STORE_LIMIT;
}

/* ---- delivery ---- */

/* The user's selectable mailbox with the special-use bit (the lowest id
 * if several), else a new one named after it ("Junk" for JUNK; a mailbox
 * already holding that name is used as it is). */
static int
special_target(MDB_txn *txn, struct store_user_w *u, uint32_t special, struct store_mbox_w *mb)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur;
	uint32_t found = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->mbox, &cur)) != 0)
		return rc;
	store_key_mbox(key, u->user, 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec r;
		if (k.mv_size != STORE_MBOX_KEY_LEN || be_get64(k.mv_data) != u->user)
			break;
		if (store_mbox_decode(v.mv_data, v.mv_size, &r) == 0 && (r.special_use & special) &&
		    !(r.flags & MBOX_F_NOSELECT)) {
			found = be_get32((const uint8_t *)k.mv_data + 8);
			break;
		}
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (found != 0)
		return store_txn_mbox_load(txn, u->user, found, mb);
	const char *name = special == STORE_SPECIAL_JUNK ? "Junk" : "INBOX";
	rc = store_txn_mbox_find(txn, u->user, name, mb);
	if (rc == MDB_NOTFOUND)
		rc = store_txn_mbox_create(txn, u, name, special, 0, true, mb);
	return rc;
}

/* The folder a recipient's copy goes to: rcpt->mailbox when it exists and
 * holds messages, else the special-use one asked for, else INBOX (created
 * if a v1 user lacks it). */
static int
delivery_target(MDB_txn *txn, struct store_user_w *u, const char *mailbox, uint32_t special,
		struct store_mbox_w *mb)
{
	int rc;

	if (mailbox == NULL && special != 0)
		return special_target(txn, u, special, mb);
	if (mailbox != NULL) {
		char *name = store_name_canon(mailbox);
		rc = store_txn_mbox_find(txn, u->user, name, mb);
		free(name);
		if (rc == 0 && !(mb->r.flags & MBOX_F_NOSELECT))
			return 0;
		store_mbox_w_free(mb);
		if (rc != 0 && rc != MDB_NOTFOUND && rc != STORE_NOTFOUND)
			return rc;
	}
	rc = store_txn_mbox_find(txn, u->user, "INBOX", mb);
	if (rc == MDB_NOTFOUND)
		rc = store_txn_mbox_create(txn, u, "INBOX", 0, 0, true, mb);
	return rc;
}

/* Checks and quota for one recipient; returns a STORE_* decision for this
 * recipient alone, or an LMDB code that must abort the delivery. Nothing
 * is written before every check has passed. */
static int
deliver_one(MDB_txn *txn, struct store_delivery *d, int64_t internal_date,
	    const uint8_t hash[STORE_HASH_LEN], uint64_t *email_id, struct store_rcpt *r,
	    struct store_wctx *wc, bool *wrote_r, uint64_t *user_r, uint32_t *mbox_r)
{
	uint64_t size = (uint64_t)r->trace_len + d->body_len;
	uint64_t qbytes = 0, qmsgs = 0;
	struct store_user_w u;
	struct store_mbox_w mb;
	int rc;

	if (r->user_id == NULL || r->user_id[0] == '\0' || strlen(r->user_id) > STORE_MAX_ID_LEN ||
	    (r->trace == NULL && r->trace_len > 0) || r->trace_len > UINT32_MAX)
		return STORE_PERMFAIL;
	rc = store_txn_user(txn, r->user_id, false, &u, NULL);
	if (rc == 0)
		rc = store_quota_get(txn, u.user, &qbytes, &qmsgs);
	else if (rc != MDB_NOTFOUND)
		return rc;
	else
		rc = 0;
	if (rc != 0)
		return rc;
	if ((rc = store_quota_check(r->quota, r->quota_messages, qbytes, qmsgs, size, 1)) != 0)
		return rc;
	/* Every check passed: from here on, writes. */
	*wrote_r = true;
	if ((rc = store_txn_user(txn, r->user_id, true, &u, NULL)) != 0)
		return rc;
	if ((rc = delivery_target(txn, &u, r->mailbox, r->special_use, &mb)) != 0)
		return rc;
	if (*email_id == 0 && (rc = store_txn_email_id(txn, email_id)) != 0)
		goto out;

	struct msg_rec m = {
	    .flags = r->flags & STORE_FLAGS_ALL,
	    .internal_date = internal_date,
	    .save_date = (int64_t)time(NULL),
	    .size = size,
	    .email_id = *email_id,
	    .trace = r->trace,
	    .trace_len = (uint32_t)r->trace_len,
	    .kw = {.p = (const uint8_t *)"", .len = 0, .n = 0},
	};
	memcpy(m.hash, hash, STORE_HASH_LEN);
	uint32_t uid;
	if ((rc = store_txn_msg_add(txn, u.user, &mb, &m, &uid)) != 0)
		goto out;
	if ((rc = store_txn_mbox_save(txn, u.user, &mb)) != 0)
		goto out;
	if ((rc = store_txn_quota_put(txn, u.user, qbytes + size, qmsgs + 1)) != 0)
		goto out;
	store_touch(wc, r->user_id, mb.id, mb.r.highestmodseq);
	r->uid = uid;
	*user_r = u.user;
	*mbox_r = mb.id;
out:
	store_mbox_w_free(&mb);
	return rc;
}

int
store_apply_deliver(MDB_txn *txn, struct store_delivery *d, const uint8_t hash[STORE_HASH_LEN],
		    int64_t internal_date, struct store_wctx *wc)
{
	uint64_t email_id = 0;
	uint32_t ok = 0, queued = 0;
	struct {
		uint64_t user;
		uint32_t mbox;
	} *where = NULL;
	int rc = 0;

	if (d->outbound != NULL)
		d->outbound->queue_id = 0;
	if (d->body == NULL && d->body_len > 0)
		return STORE_PERMFAIL;
	if (d->nrcpts > 0)
		where = xcalloc(d->nrcpts, sizeof(*where));
	for (size_t i = 0; i < d->nrcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		bool wrote = false;
		rc = deliver_one(txn, d, internal_date, hash, &email_id, r, wc, &wrote,
				 &where[i].user, &where[i].mbox);

		/* After writes, any failure aborts the whole delivery. */
		if (is_decision(rc) && !wrote) {
			/* This recipient only; nothing of it was written. */
			r->status = rc;
			r->uid = 0;
			rc = 0;
			continue;
		}
		if (rc != 0)
			goto out;
		r->status = STORE_OK;
		ok++;
	}
	/* Remote recipients in the same child txn: the queue entry holds one
	 * more reference to the same blob (storage/queue.c). */
	if (d->outbound != NULL) {
		rc = store_queue_put(txn, d->outbound, hash, d->body_len, (int64_t)time(NULL), wc,
				     &queued);
		if (rc != 0)
			goto out;
	}
	if (ok + queued == 0)
		goto out;
	rc = store_blob_put(txn, hash, d->body, d->body_len, ok + queued, wc->zc, wc->level,
			    wc->scratch, wc->scratch_len);
	/* Full-text indexed later by the writer, in batches, not in this
	 * transaction (storage/store_fts.c). */
	for (size_t i = 0; rc == 0 && i < d->nrcpts; i++)
		if (d->rcpts[i].status == STORE_OK && d->rcpts[i].uid != 0)
			store_fts_note(where[i].user, where[i].mbox);
out:
	free(where);
	return rc;
}

/* ---- expunge ---- */

int
store_apply_expunge(MDB_txn *txn, struct store_expunge *e, struct store_wctx *wc)
{
	struct store_user_w u;
	struct store_mbox_w mb;
	uint64_t qbytes, qmsgs;
	char *name;
	int rc;

	e->expunged = 0;
	if (e->mailbox == NULL)
		return STORE_PERMFAIL;
	rc = store_txn_user(txn, e->user_id, false, &u, NULL);
	if (rc == MDB_NOTFOUND)
		/* Nobody's INBOX exists before the first delivery. */
		return strcasecmp(e->mailbox, "INBOX") == 0 ? 0 : STORE_NOTFOUND;
	if (rc != 0)
		return rc;
	name = store_name_canon(e->mailbox);
	rc = store_txn_mbox_find(txn, u.user, name, &mb);
	free(name);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc != 0)
		return rc;
	if ((rc = store_quota_get(txn, u.user, &qbytes, &qmsgs)) != 0)
		goto out;
	for (size_t i = 0; i < e->nuids; i++) {
		bool found;
		uint64_t size;

		if ((rc = store_txn_msg_expunge(txn, u.user, &mb, e->uids[i], &found, &size)) != 0)
			goto out;
		if (!found)
			continue;
		qmsgs = qmsgs > 0 ? qmsgs - 1 : 0;
		qbytes = qbytes > size ? qbytes - size : 0;
		e->expunged++;
	}
	if (e->expunged == 0)
		goto out;
	if ((rc = store_txn_mbox_save(txn, u.user, &mb)) != 0)
		goto out;
	if ((rc = store_txn_quota_put(txn, u.user, qbytes, qmsgs)) != 0)
		goto out;
	store_touch(wc, e->user_id, mb.id, mb.r.highestmodseq);
out:
	store_mbox_w_free(&mb);
	if (rc != 0)
		e->expunged = 0;
	return rc;
}

/* ---- keywords of a request ---- */

/* A run of the request's keywords, deduplicated (first spelling kept):
 * STORE_PERMFAIL for one that is not an atom, STORE_LIMIT past the
 * per-message cap or the length limit. *buf_r is malloc'd. */
static int
kw_run_build(const char *const *kws, size_t n, uint8_t **buf_r, struct kw_run *run)
{
	size_t total = 0;

	*buf_r = NULL;
	memset(run, 0, sizeof(*run));
	if (n > 0 && kws == NULL)
		return STORE_PERMFAIL;
	for (size_t i = 0; i < n; i++) {
		size_t l = kws[i] != NULL ? strlen(kws[i]) : 0;
		if (l > STORE_KEYWORD_MAX)
			return STORE_LIMIT;
		if (!store_keyword_valid(kws[i], l))
			return STORE_PERMFAIL;
		total += 1 + l;
	}
	*buf_r = xmalloc(total + 1);
	run->p = *buf_r;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(kws[i]);
		if (store_kw_index(run, kws[i], l) >= 0)
			continue;
		if (run->n >= STORE_KEYWORDS_PER_MESSAGE)
			return STORE_LIMIT;
		(*buf_r)[run->len] = (uint8_t)l;
		memcpy(*buf_r + run->len + 1, kws[i], l);
		run->len += 1 + l;
		run->n++;
	}
	return 0;
}

/* Appends a's keywords that b lacks (ADD) into out, or keeps a's keywords
 * b lacks (REMOVE). out->p must have room for a.len + b.len bytes. */
static void
kw_merge(const struct kw_run *a, const struct kw_run *b, bool add, uint8_t *obuf,
	 struct kw_run *out)
{
	size_t pos = 0, kl;
	const char *k;

	out->p = obuf;
	out->len = 0;
	out->n = 0;
	while (store_kw_next(a, &pos, &k, &kl) == 1) {
		if (!add && store_kw_index(b, k, kl) >= 0)
			continue;
		obuf[out->len] = (uint8_t)kl;
		memcpy(obuf + out->len + 1, k, kl);
		out->len += 1 + kl;
		out->n++;
	}
	if (!add)
		return;
	pos = 0;
	while (store_kw_next(b, &pos, &k, &kl) == 1) {
		if (store_kw_index(a, k, kl) >= 0)
			continue;
		obuf[out->len] = (uint8_t)kl;
		memcpy(obuf + out->len + 1, k, kl);
		out->len += 1 + kl;
		out->n++;
	}
}

/* Same set of keywords (ignoring case and order)? */
static bool
kw_same(const struct kw_run *a, const struct kw_run *b)
{
	size_t pos = 0, kl;
	const char *k;

	if (a->n != b->n)
		return false;
	while (store_kw_next(a, &pos, &k, &kl) == 1)
		if (store_kw_index(b, k, kl) < 0)
			return false;
	return true;
}

/* ---- requests that find a user's mailbox ---- */

/* User (created when create) and mailbox by name; STORE_NOTFOUND when
 * absent, STORE_NOTALLOWED for a \Noselect one. */
static int
find_box(MDB_txn *txn, const char *user_id, const char *mailbox, bool create,
	 struct store_user_w *u, struct store_mbox_w *mb)
{
	int rc;

	memset(mb, 0, sizeof(*mb));
	if (mailbox == NULL)
		return STORE_PERMFAIL;
	rc = store_txn_user(txn, user_id, create, u, NULL);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc != 0)
		return rc;
	char *name = store_name_canon(mailbox);
	rc = store_txn_mbox_find(txn, u->user, name, mb);
	free(name);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc == 0 && (mb->r.flags & MBOX_F_NOSELECT)) {
		store_mbox_w_free(mb);
		return STORE_NOTALLOWED;
	}
	return rc;
}

/* ---- STORE ---- */

static int
apply_flags(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_flags *f = (struct store_flags *)req;
	struct store_msg_info *changed = NULL;
	uint32_t *modified = NULL;
	size_t nchanged = 0, nmodified = 0, nupdated = 0;
	struct store_user_w u;
	struct store_mbox_w mb;
	struct kw_run req_kw;
	uint8_t *req_kw_buf = NULL, *nbuf = NULL;
	int rc;

	f->changed = NULL;
	f->nchanged = 0;
	f->modified = NULL;
	f->nmodified = 0;
	if (f->mode != STORE_FLAGS_ADD && f->mode != STORE_FLAGS_REMOVE &&
	    f->mode != STORE_FLAGS_SET)
		return STORE_PERMFAIL;
	if ((f->flags & ~(uint32_t)STORE_FLAGS_ALL) != 0 || (f->nuids > 0 && f->uids == NULL))
		return STORE_PERMFAIL;
	if ((rc = kw_run_build(f->keywords, f->nkeywords, &req_kw_buf, &req_kw)) != 0) {
		free(req_kw_buf);
		return rc;
	}
	if ((rc = find_box(txn, f->user_id, f->mailbox, true, &u, &mb)) != 0)
		goto done;
	if (f->nuids > 0) {
		changed = xcalloc(f->nuids, sizeof(*changed));
		modified = xcalloc(f->nuids, sizeof(*modified));
	}
	for (size_t i = 0; i < f->nuids; i++) {
		struct store_msg_w m;
		struct kw_run nkw;
		uint32_t nflags;

		rc = store_txn_msg_load(txn, u.user, mb.id, f->uids[i], &m);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc != 0)
			goto done;
		if (f->unchangedsince > 0 && m.r.modseq > f->unchangedsince) {
			modified[nmodified++] = m.uid;
			store_msg_w_free(&m);
			continue;
		}
		free(nbuf);
		nbuf = xmalloc(m.r.kw.len + req_kw.len + 1);
		if (f->mode == STORE_FLAGS_ADD) {
			nflags = m.r.flags | f->flags;
			kw_merge(&m.r.kw, &req_kw, true, nbuf, &nkw);
		} else if (f->mode == STORE_FLAGS_REMOVE) {
			nflags = m.r.flags & ~f->flags;
			kw_merge(&m.r.kw, &req_kw, false, nbuf, &nkw);
		} else {
			nflags = f->flags;
			nkw = req_kw;
		}
		if (nflags == m.r.flags && kw_same(&nkw, &m.r.kw)) {
			store_msg_w_free(&m); /* no change: no new MODSEQ */
			continue;
		}
		if (nkw.n > STORE_KEYWORDS_PER_MESSAGE)
			rc = STORE_LIMIT;
		else
			rc = store_txn_msg_update(txn, u.user, &mb, &m, nflags, &nkw);
		if (rc == 0)
			nupdated++;
		if (rc == 0 && req->a != NULL)
			store_info_fill(req->a, m.uid, &m.r, &changed[nchanged++]);
		store_msg_w_free(&m);
		if (rc != 0)
			goto done;
	}
	if (nupdated > 0) {
		if ((rc = store_txn_mbox_save(txn, u.user, &mb)) != 0)
			goto done;
		store_touch(wc, f->user_id, mb.id, mb.r.highestmodseq);
	}
	if (req->a != NULL && nchanged > 0) {
		f->changed = arena_memdup(req->a, changed, nchanged * sizeof(*changed));
		f->nchanged = nchanged;
	}
	if (req->a != NULL && nmodified > 0) {
		f->modified = arena_memdup(req->a, modified, nmodified * sizeof(*modified));
		f->nmodified = nmodified;
	}
done:
	store_mbox_w_free(&mb);
	free(changed);
	free(modified);
	free(req_kw_buf);
	free(nbuf);
	if (rc != 0) {
		f->changed = NULL;
		f->nchanged = 0;
		f->modified = NULL;
		f->nmodified = 0;
	}
	return rc;
}

void
store_flags(struct store_flags *f)
{
	f->nchanged = f->nmodified = 0;
	store_submit(&f->req, apply_flags, 64 * (uint64_t)f->nuids);
}

/* ---- COPY / MOVE ---- */

static int
apply_copy(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_copy *c = (struct store_copy *)req;
	struct store_user_w u, du;
	struct store_mbox_w src, dst_own, *dst = &dst_own;
	struct store_msg_w *msgs = NULL;
	uint32_t *dest_uids = NULL;
	size_t n = 0;
	uint64_t add_bytes = 0, qbytes, qmsgs, sbytes = 0, smsgs = 0;
	const char *duid = c->dest_user_id != NULL ? c->dest_user_id : c->user_id;
	bool cross = strcmp(duid, c->user_id) != 0;
	int rc;

	c->dest_uidvalidity = 0;
	c->src_uids = c->dest_uids = NULL;
	c->ncopied = 0;
	memset(&dst_own, 0, sizeof(dst_own));
	if ((c->nuids > 0 && c->uids == NULL) || c->dest == NULL)
		return STORE_PERMFAIL;
	if ((rc = find_box(txn, c->user_id, c->mailbox, true, &u, &src)) != 0)
		return rc;
	du = u;
	if (cross && (rc = store_txn_user(txn, duid, false, &du, NULL)) != 0) {
		store_mbox_w_free(&src);
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	}
	char *dname = store_name_canon(c->dest);
	rc = store_txn_mbox_find(txn, du.user, dname, &dst_own);
	free(dname);
	if (rc == MDB_NOTFOUND)
		rc = STORE_NOTFOUND;
	else if (rc == 0 && (dst_own.r.flags & MBOX_F_NOSELECT))
		rc = STORE_NOTALLOWED;
	if (rc != 0)
		goto out;
	if (!cross && dst_own.id == src.id)
		dst = &src; /* one record: both sides change it */
	if ((rc = store_quota_get(txn, du.user, &qbytes, &qmsgs)) != 0)
		goto out;
	if (cross && (rc = store_quota_get(txn, u.user, &sbytes, &smsgs)) != 0)
		goto out;

	if (c->nuids > 0)
		msgs = xcalloc(c->nuids, sizeof(*msgs));
	for (size_t i = 0; i < c->nuids; i++) {
		if (i > 0 && c->uids[i] <= c->uids[i - 1])
			continue; /* not ascending: a repeat at best */
		rc = store_txn_msg_load(txn, u.user, src.id, c->uids[i], &msgs[n]);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			goto out;
		add_bytes += msgs[n].r.size;
		n++;
	}
	/* MOVE within the user's mailboxes leaves the usage as it is, so it
	 * is never refused for quota (RFC 9208 4.3 counts a mailbox set). */
	if ((!c->move || cross) &&
	    (rc = store_quota_check(c->quota, c->quota_messages, qbytes, qmsgs, add_bytes, n)) != 0)
		goto out;
	if (n > 0)
		dest_uids = xcalloc(n, sizeof(*dest_uids));
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct msg_rec r = msgs[i].r;
		bool found;
		uint64_t size;

		r.save_date = now;
		r.flags &= ~c->strip_flags;
		if (c->strip_keywords)
			memset(&r.kw, 0, sizeof(r.kw));
		if ((rc = store_blob_addref(txn, r.hash, 1)) != 0)
			goto out;
		if ((rc = store_txn_msg_add(txn, du.user, dst, &r, &dest_uids[i])) != 0)
			goto out;
		if (c->move) {
			rc = store_txn_msg_expunge(txn, u.user, &src, msgs[i].uid, &found, &size);
			if (rc != 0)
				goto out;
		}
	}
	if (n > 0) {
		if ((rc = store_txn_mbox_save(txn, u.user, &src)) != 0)
			goto out;
		if (dst != &src && (rc = store_txn_mbox_save(txn, du.user, dst)) != 0)
			goto out;
		if ((!c->move || cross) &&
		    (rc = store_txn_quota_put(txn, du.user, qbytes + add_bytes, qmsgs + n)) != 0)
			goto out;
		/* A MOVE to another user's mailbox moves the usage too. */
		if (c->move && cross &&
		    (rc = store_txn_quota_put(txn, u.user,
					      sbytes > add_bytes ? sbytes - add_bytes : 0,
					      smsgs > n ? smsgs - n : 0)) != 0)
			goto out;
		if (c->move)
			store_touch(wc, c->user_id, src.id, src.r.highestmodseq);
		store_touch(wc, duid, dst->id, dst->r.highestmodseq);
		store_fts_note(du.user, dst->id); /* indexed later */
	}
	c->dest_uidvalidity = dst->r.uidvalidity;
	if (n > 0 && req->a != NULL) {
		uint32_t *s = arena_alloc(req->a, n * sizeof(*s));
		for (size_t i = 0; i < n; i++)
			s[i] = msgs[i].uid;
		c->src_uids = s;
		c->dest_uids = arena_memdup(req->a, dest_uids, n * sizeof(*dest_uids));
	}
	c->ncopied = n;
out:
	for (size_t i = 0; i < n; i++)
		store_msg_w_free(&msgs[i]);
	free(msgs);
	free(dest_uids);
	store_mbox_w_free(&src);
	store_mbox_w_free(&dst_own);
	if (rc != 0) {
		c->src_uids = c->dest_uids = NULL;
		c->ncopied = 0;
	}
	return rc;
}

void
store_copy(struct store_copy *c)
{
	c->ncopied = 0;
	store_submit(&c->req, apply_copy, 64 * (uint64_t)c->nuids);
}

/* ---- APPEND ---- */

static int
apply_append(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_append *ap = (struct store_append *)req;
	struct store_user_w u;
	struct store_mbox_w mb;
	uint64_t total = 0, qbytes, qmsgs;
	uint8_t *kwbuf = NULL;
	int rc;

	ap->uidvalidity = 0;
	for (size_t i = 0; i < ap->nmsgs; i++)
		ap->msgs[i].uid = 0;
	if (ap->nmsgs == 0 || ap->msgs == NULL)
		return STORE_PERMFAIL;
	for (size_t i = 0; i < ap->nmsgs; i++) {
		const struct store_append_msg *m = &ap->msgs[i];
		struct kw_run run;
		if (m->body == NULL && m->body_len > 0)
			return STORE_PERMFAIL;
		if ((m->flags & ~(uint32_t)STORE_FLAGS_ALL) != 0)
			return STORE_PERMFAIL;
		rc = kw_run_build(m->keywords, m->nkeywords, &kwbuf, &run);
		free(kwbuf);
		kwbuf = NULL;
		if (rc != 0)
			return rc;
		total += m->body_len;
	}
	ap->replace_missing = false;
	if (ap->replace_uid != 0) {
		/* First, so its bytes leave the quota; the nested txn of
		 * this request undoes it if the append then fails. */
		struct store_expunge e = {.user_id = ap->replace_user_id,
					  .mailbox = ap->replace_mailbox,
					  .uids = &ap->replace_uid,
					  .nuids = 1};
		if ((rc = store_apply_expunge(txn, &e, wc)) != 0)
			return rc;
		if (e.expunged == 0) {
			ap->replace_missing = true;
			return STORE_NOTFOUND;
		}
	}
	if ((rc = find_box(txn, ap->user_id, ap->mailbox, true, &u, &mb)) != 0)
		return rc;
	if ((rc = store_quota_get(txn, u.user, &qbytes, &qmsgs)) != 0)
		goto out;
	if ((rc = store_quota_check(ap->quota, ap->quota_messages, qbytes, qmsgs, total,
				    ap->nmsgs)) != 0)
		goto out;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < ap->nmsgs; i++) {
		struct store_append_msg *am = &ap->msgs[i];
		const char *body = am->body != NULL ? am->body : "";
		struct msg_rec r = {
		    .flags = am->flags,
		    .internal_date = am->internal_date != 0 ? (int64_t)am->internal_date : now,
		    .save_date = now,
		    .size = am->body_len,
		    .trace = "",
		};
		if (EVP_Digest(body, am->body_len, r.hash, NULL, EVP_sha256(), NULL) != 1) {
			rc = STORE_TEMPFAIL;
			goto out;
		}
		if ((rc = kw_run_build(am->keywords, am->nkeywords, &kwbuf, &r.kw)) != 0)
			goto out;
		if ((rc = store_txn_email_id(txn, &r.email_id)) != 0)
			goto out;
		rc = store_blob_put(txn, r.hash, body, am->body_len, 1, wc->zc, wc->level,
				    wc->scratch, wc->scratch_len);
		if (rc != 0)
			goto out;
		if ((rc = store_txn_msg_add(txn, u.user, &mb, &r, &am->uid)) != 0)
			goto out;
		free(kwbuf);
		kwbuf = NULL;
	}
	if ((rc = store_txn_mbox_save(txn, u.user, &mb)) != 0)
		goto out;
	if ((rc = store_txn_quota_put(txn, u.user, qbytes + total, qmsgs + ap->nmsgs)) != 0)
		goto out;
	store_touch(wc, ap->user_id, mb.id, mb.r.highestmodseq);
	store_fts_note(u.user, mb.id); /* indexed later (store_fts.c) */
	ap->uidvalidity = mb.r.uidvalidity;
out:
	free(kwbuf);
	store_mbox_w_free(&mb);
	if (rc != 0) {
		ap->uidvalidity = 0;
		for (size_t i = 0; i < ap->nmsgs; i++)
			ap->msgs[i].uid = 0;
	}
	return rc;
}

void
store_append(struct store_append *ap)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < ap->nmsgs; i++)
		bytes += ap->msgs[i].body_len;
	store_submit(&ap->req, apply_append, bytes);
}
