/*
 * store_mailbox.c - a user's mailboxes: CREATE, DELETE, RENAME, SUBSCRIBE
 * and UNSUBSCRIBE (RFC 9051 6.3.4-6.3.8) on the writer thread, and the
 * read side (one mailbox, or all of them with their subscription state).
 * A mailbox's annotations (store_annot.c) go when it is deleted, stay
 * through RENAME (the id stays) and are copied by RENAME INBOX.
 * Names are checked (store_name_check) and "INBOX" canonicalised before
 * anything is looked up. Failures: STORE_NOTFOUND, STORE_EXISTS,
 * STORE_NOTALLOWED, STORE_LIMIT and STORE_PERMFAIL are answers to the
 * request; LMDB errors are STORE_TEMPFAIL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/store_internal.h"

struct name_ent {
	char *name; /* owned */
	uint32_t id;
};

/* Every mailbox whose name is prefix itself (exact, when self) or below
 * prefix + "/"; names copied. */
static int
names_below(MDB_txn *txn, uint64_t user, const char *prefix, bool self, struct name_ent **list_r,
	    size_t *n_r)
{
	size_t pl = strlen(prefix), n = 0, cap = 0;
	uint8_t key[8 + STORE_MAX_NAME_LEN + 1]; /* pl is checked below */
	MDB_val k, v;
	MDB_cursor *cur;
	struct name_ent *list = NULL;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (pl > STORE_MAX_NAME_LEN)
		return STORE_LIMIT;
	be_put64(key, user);
	memcpy(key + 8, prefix, pl);
	if ((rc = mdb_cursor_open(txn, store_g->mboxname, &cur)) != 0)
		return rc;
	k.mv_size = 8 + pl;
	k.mv_data = key;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const char *kn = (const char *)k.mv_data + 8;
		size_t kl = k.mv_size - 8;
		if (k.mv_size < 8 + pl || memcmp(k.mv_data, key, 8 + pl) != 0)
			break;
		bool exact = kl == pl;
		if (!(exact && self) && !(kl > pl + 1 && kn[pl] == '/'))
			continue;
		if (v.mv_size != 4) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (n == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			list = xrealloc(list, cap * sizeof(*list));
		}
		list[n].name = xmalloc(kl + 1);
		memcpy(list[n].name, kn, kl);
		list[n].name[kl] = '\0';
		list[n].id = be_get32(v.mv_data);
		n++;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	*list_r = list;
	*n_r = n;
	return rc;
}

static void
names_free(struct name_ent *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].name);
	free(list);
}

static int
mboxname_del(MDB_txn *txn, uint64_t user, const char *name)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN]; /* n is checked below */
	MDB_val k = {.mv_size = 8 + n, .mv_data = key};

	if (n > STORE_MAX_NAME_LEN)
		return STORE_LIMIT;
	be_put64(key, user);
	memcpy(key + 8, name, n);
	return mdb_del(txn, store_g->mboxname, &k, NULL);
}

static int
mboxname_put(MDB_txn *txn, uint64_t user, const char *name, uint32_t id)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN], val[4]; /* n is checked below */
	MDB_val k = {.mv_size = 8 + n, .mv_data = key};
	MDB_val v = {.mv_size = 4, .mv_data = val};
	int rc;

	if (n > STORE_MAX_NAME_LEN)
		return STORE_LIMIT;
	be_put64(key, user);
	memcpy(key + 8, name, n);
	be_put32(val, id);
	rc = mdb_put(txn, store_g->mboxname, &k, &v, MDB_NOOVERWRITE);
	return rc == MDB_KEYEXIST ? STORE_EXISTS : rc;
}

/* Creates every missing parent of name as an ordinary mailbox. */
static int
create_parents(MDB_txn *txn, struct store_user_w *u, const char *name)
{
	char *p = xstrdup(name);
	int rc = 0;

	for (char *s = strchr(p, '/'); s != NULL && rc == 0; s = strchr(s + 1, '/')) {
		uint32_t id;
		*s = '\0';
		rc = store_mbox_lookup(txn, u->user, p, &id);
		if (rc == MDB_NOTFOUND)
			rc = store_txn_mbox_create(txn, u, p, 0, 0, false, NULL);
		*s = '/';
	}
	free(p);
	return rc;
}

/* UIDs of every message of the mailbox, ascending. */
static int
mbox_uids(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t **uids_r, size_t *n_r)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	store_key_msg(key, user, mbox, 0);
	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[n++] = be_get32((const uint8_t *)k.mv_data + 12);
	}
	mdb_cursor_close(cur);
	*uids_r = uids;
	*n_r = n;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Expunges every message of mb (tombstones kept), quota updated. */
static int
expunge_all(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb)
{
	uint32_t *uids;
	size_t n;
	uint64_t qbytes, qmsgs;
	int rc = mbox_uids(txn, user, mb->id, &uids, &n);

	if (rc == 0)
		rc = store_quota_get(txn, user, &qbytes, &qmsgs);
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool found;
		uint64_t size;
		rc = store_txn_msg_expunge(txn, user, mb, uids[i], &found, &size);
		if (rc == 0 && found) {
			qmsgs = qmsgs > 0 ? qmsgs - 1 : 0;
			qbytes = qbytes > size ? qbytes - size : 0;
		}
	}
	if (rc == 0 && n > 0)
		rc = store_txn_quota_put(txn, user, qbytes, qmsgs);
	free(uids);
	return rc;
}

/* Removes a mailbox without messages: its modseq entries (tombstones),
 * record and name. */
static int
mbox_remove(MDB_txn *txn, uint64_t user, const struct store_mbox_w *mb)
{
	uint8_t key[STORE_MODSEQ_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur;
	int rc;

	store_key_modseq(key, user, mb->id, 0);
	if ((rc = mdb_cursor_open(txn, store_g->modseq, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MODSEQ_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	/* Its annotations go with it (RFC 5464 4.1). */
	if ((rc = store_annot_drop_mailbox(txn, user, mb->id)) != 0)
		return rc;
	uint8_t mk[STORE_MBOX_KEY_LEN];
	MDB_val bk = {.mv_size = sizeof(mk), .mv_data = mk};
	store_key_mbox(mk, user, mb->id);
	if ((rc = mdb_del(txn, store_g->mbox, &bk, NULL)) != 0)
		return rc;
	return mboxname_del(txn, user, mb->name);
}

/* The nearest existing parent of name: its length (0: none, a top-level
 * name) and id. */
static int
nearest_parent(MDB_txn *txn, uint64_t user, const char *name, size_t *len_r, uint32_t *id_r)
{
	char *p = xstrdup(name);
	int rc = MDB_NOTFOUND;

	*len_r = 0;
	for (char *s = strrchr(p, '/'); s != NULL && rc == MDB_NOTFOUND; s = strrchr(p, '/')) {
		*s = '\0';
		rc = store_mbox_lookup(txn, user, p, id_r);
		if (rc == 0)
			*len_r = (size_t)(s - p);
	}
	free(p);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* RFC 4314 4: a new mailbox inherits the ACL of its nearest existing
 * parent; so do the parents made for it (every level below plen). */
static int
inherit_acl(MDB_txn *txn, uint64_t user, const char *name, size_t plen, uint32_t parent)
{
	char *p = xstrdup(name);
	char *at = p + plen; /* the delimiter after the parent */
	int rc = 0;

	while (rc == 0 && at != NULL) {
		char *next = strchr(at + 1, '/');
		uint32_t id;
		if (next != NULL)
			*next = '\0';
		rc = store_mbox_lookup(txn, user, p, &id);
		if (rc == 0)
			rc = store_acl_copy(txn, user, parent, id);
		if (next != NULL)
			*next = '/';
		at = next;
	}
	free(p);
	return rc;
}

static int
op_create(MDB_txn *txn, struct store_mailbox_change *m, struct store_user_w *u, const char *name,
	  struct store_wctx *wc)
{
	struct store_mbox_w mb;
	int rc;

	if ((m->special_use & ~(uint32_t)0x7f) != 0)
		return STORE_PERMFAIL;
	rc = store_txn_mbox_find(txn, u->user, name, &mb);
	if (rc == 0) {
		bool placeholder = (mb.r.flags & MBOX_F_NOSELECT) != 0;
		/* A \Noselect placeholder becomes a real mailbox: a new one
		 * (new id, new UIDVALIDITY) in its place. */
		if (placeholder)
			rc = mbox_remove(txn, u->user, &mb);
		else
			rc = STORE_EXISTS;
		store_mbox_w_free(&mb);
		if (rc != 0)
			return rc;
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	size_t plen;
	uint32_t parent;
	if ((rc = nearest_parent(txn, u->user, name, &plen, &parent)) != 0)
		return rc;
	if ((rc = create_parents(txn, u, name)) != 0)
		return rc;
	if ((rc = store_txn_mbox_create(txn, u, name, m->special_use, 0, false, &mb)) != 0)
		return rc;
	if (plen > 0 && (rc = inherit_acl(txn, u->user, name, plen, parent)) != 0) {
		store_mbox_w_free(&mb);
		return rc;
	}
	m->id = mb.id;
	store_touch(wc, m->user_id, mb.id, mb.r.highestmodseq);
	store_touch_user(wc, m->user_id, STORE_CHANGED_NAMES);
	store_mbox_w_free(&mb);
	return 0;
}

static int
op_delete(MDB_txn *txn, struct store_mailbox_change *m, struct store_user_w *u, const char *name,
	  struct store_wctx *wc)
{
	struct store_mbox_w mb;
	bool children;
	int rc;

	if (strcmp(name, "INBOX") == 0)
		return STORE_NOTALLOWED;
	rc = store_txn_mbox_find(txn, u->user, name, &mb);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc != 0)
		return rc;
	m->id = mb.id;
	if ((rc = store_txn_has_children(txn, u->user, name, &children)) != 0)
		goto out;
	if (children && (mb.r.flags & MBOX_F_NOSELECT)) {
		rc = STORE_NOTALLOWED;
		goto out;
	}
	if ((rc = expunge_all(txn, u->user, &mb)) != 0)
		goto out;
	/* Its postings go (a placeholder has no messages to index). */
	if ((rc = store_fts_drop(txn, u->user, mb.id, false)) != 0)
		goto out;
	/* So does its ACL: a mailbox created later under the name starts
	 * unshared (a placeholder cannot be selected anyway). */
	if ((rc = store_acl_drop(txn, u->user, mb.id)) != 0)
		goto out;
	if (children) {
		/* Kept as a placeholder for its children; its messages are
		 * gone (with tombstones, for sessions that have it open). */
		mb.r.flags |= MBOX_F_NOSELECT;
		mb.r.highestmodseq++;
		rc = store_annot_drop_mailbox(txn, u->user, mb.id);
		if (rc == 0)
			rc = store_txn_mbox_save(txn, u->user, &mb);
	} else {
		rc = mbox_remove(txn, u->user, &mb);
	}
	if (rc == 0) {
		store_touch(wc, m->user_id, mb.id, mb.r.highestmodseq);
		store_touch_user(wc, m->user_id, STORE_CHANGED_NAMES);
	}
out:
	store_mbox_w_free(&mb);
	return rc;
}

/* RENAME INBOX: its messages move to a new mailbox; INBOX stays, empty. */
static int
rename_inbox(MDB_txn *txn, struct store_mailbox_change *m, struct store_user_w *u, const char *to,
	     struct store_wctx *wc)
{
	struct store_mbox_w inbox, dst;
	uint32_t *uids = NULL;
	size_t n = 0;
	int rc;

	memset(&dst, 0, sizeof(dst));
	if ((rc = store_txn_mbox_find(txn, u->user, "INBOX", &inbox)) != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	if ((rc = create_parents(txn, u, to)) != 0)
		goto out;
	if ((rc = store_txn_mbox_create(txn, u, to, 0, 0, false, &dst)) != 0)
		goto out;
	if ((rc = mbox_uids(txn, u->user, inbox.id, &uids, &n)) != 0)
		goto out;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct store_msg_w msg;
		uint32_t uid;
		bool found;
		uint64_t size;

		if ((rc = store_txn_msg_load(txn, u->user, inbox.id, uids[i], &msg)) != 0)
			goto out;
		msg.r.save_date = now;
		rc = store_blob_addref(txn, msg.r.hash, 1);
		if (rc == 0)
			rc = store_txn_msg_add(txn, u->user, &dst, &msg.r, &uid);
		store_msg_w_free(&msg);
		if (rc == 0)
			rc = store_txn_msg_expunge(txn, u->user, &inbox, uids[i], &found, &size);
		if (rc != 0)
			goto out;
	}
	store_fts_note(u->user, dst.id); /* indexed later, off this txn */
	/* RFC 5464 4.1: INBOX keeps its annotations, the new one a copy. */
	if ((rc = store_annot_copy_mailbox(txn, u->user, inbox.id, dst.id)) != 0)
		goto out;
	if ((rc = store_txn_mbox_save(txn, u->user, &inbox)) != 0)
		goto out;
	if ((rc = store_txn_mbox_save(txn, u->user, &dst)) != 0)
		goto out;
	m->id = dst.id;
	store_touch(wc, m->user_id, inbox.id, inbox.r.highestmodseq);
	store_touch(wc, m->user_id, dst.id, dst.r.highestmodseq);
	store_touch_user(wc, m->user_id, STORE_CHANGED_NAMES);
out:
	free(uids);
	store_mbox_w_free(&inbox);
	store_mbox_w_free(&dst);
	return rc;
}

static int
op_rename(MDB_txn *txn, struct store_mailbox_change *m, struct store_user_w *u, const char *from,
	  const char *to, struct store_wctx *wc)
{
	struct name_ent *list = NULL;
	size_t n = 0, fl = strlen(from), tl = strlen(to);
	uint32_t id, from_id;
	int rc;

	rc = store_mbox_lookup(txn, u->user, from, &from_id);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc != 0)
		return rc;
	rc = store_mbox_lookup(txn, u->user, to, &id);
	if (rc == 0)
		return STORE_EXISTS;
	if (rc != MDB_NOTFOUND)
		return rc;
	if (strcmp(from, "INBOX") == 0)
		return rename_inbox(txn, m, u, to, wc);
	if (tl > fl && strncmp(to, from, fl) == 0 && to[fl] == '/')
		return STORE_NOTALLOWED; /* into itself */

	if ((rc = names_below(txn, u->user, from, true, &list, &n)) != 0)
		goto out;
	/* Check every new name before changing anything. */
	for (size_t i = 0; i < n; i++) {
		char *nn = xmalloc(tl + strlen(list[i].name) - fl + 1);
		sprintf(nn, "%s%s", to, list[i].name + fl);
		rc = store_name_check(nn);
		if (rc == 0) {
			uint32_t other;
			rc = store_mbox_lookup(txn, u->user, nn, &other);
			rc = rc == 0 ? STORE_EXISTS : rc == MDB_NOTFOUND ? 0 : rc;
		}
		free(nn);
		if (rc != 0)
			goto out;
	}
	if ((rc = create_parents(txn, u, to)) != 0)
		goto out;
	store_touch_user(wc, m->user_id, STORE_CHANGED_NAMES);
	for (size_t i = 0; i < n; i++) {
		struct store_mbox_w mb;
		char *nn = xmalloc(tl + strlen(list[i].name) - fl + 1);

		sprintf(nn, "%s%s", to, list[i].name + fl);
		rc = store_txn_mbox_load(txn, u->user, list[i].id, &mb);
		if (rc == MDB_NOTFOUND)
			rc = STORE_PERMFAIL;
		if (rc == 0)
			rc = mboxname_del(txn, u->user, list[i].name);
		if (rc == 0)
			rc = mboxname_put(txn, u->user, nn, list[i].id);
		if (rc == 0) {
			/* The id and UIDVALIDITY stay: the messages are the same. */
			mb.r.name = nn;
			mb.r.name_len = strlen(nn);
			rc = store_txn_mbox_save(txn, u->user, &mb);
			store_touch(wc, m->user_id, mb.id, mb.r.highestmodseq);
		}
		if (list[i].id == from_id)
			m->id = from_id;
		store_mbox_w_free(&mb);
		free(nn);
		if (rc != 0)
			goto out;
	}
out:
	names_free(list, n);
	return rc;
}

static int
apply_mailbox(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_mailbox_change *m = (struct store_mailbox_change *)req;
	struct store_user_w u;
	char *name = NULL, *to = NULL;
	int rc;

	m->id = 0;
	if (m->name == NULL || (m->op == STORE_MBOX_RENAME && m->new_name == NULL))
		return STORE_PERMFAIL;
	if ((rc = store_name_check(m->name)) != 0)
		return rc;
	if (m->op == STORE_MBOX_RENAME && (rc = store_name_check(m->new_name)) != 0)
		return rc;
	if ((rc = store_txn_user(txn, m->user_id, true, &u, NULL)) != 0)
		return rc;
	name = store_name_canon(m->name);
	switch (m->op) {
	case STORE_MBOX_CREATE:
		rc = op_create(txn, m, &u, name, wc);
		break;
	case STORE_MBOX_DELETE:
		rc = op_delete(txn, m, &u, name, wc);
		break;
	case STORE_MBOX_RENAME:
		to = store_name_canon(m->new_name);
		rc = op_rename(txn, m, &u, name, to, wc);
		break;
	case STORE_MBOX_SUBSCRIBE:
	case STORE_MBOX_UNSUBSCRIBE:
		rc = store_txn_subscribe(txn, u.user, name, m->op == STORE_MBOX_SUBSCRIBE);
		if (rc == 0)
			store_touch_user(wc, m->user_id, STORE_CHANGED_SUBSCRIPTIONS);
		break;
	default:
		rc = STORE_PERMFAIL;
	}
	free(name);
	free(to);
	if (rc != 0)
		m->id = 0;
	return rc;
}

void
store_mailbox_change(struct store_mailbox_change *m)
{
	m->id = 0;
	store_submit(&m->req, apply_mailbox, 256);
}

/* ---- reads ---- */

static bool
is_subscribed(MDB_txn *txn, uint64_t user, const char *name)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN]; /* n is checked below */
	MDB_val k = {.mv_size = 8 + n, .mv_data = key}, v;

	if (n > STORE_MAX_NAME_LEN)
		return false;
	be_put64(key, user);
	memcpy(key + 8, name, n);
	return mdb_get(txn, store_g->subs, &k, &v) == 0;
}

/* Fills r from a mailbox record (everything copied into a). */
static int
mbox_fill(MDB_txn *txn, struct arena *a, uint64_t user, uint32_t id, const struct mbox_rec *mr,
	  struct store_mailbox *r)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->id = id;
	r->name = arena_strndup(a, mr->name, mr->name_len);
	r->special_use = mr->special_use;
	r->noselect = (mr->flags & MBOX_F_NOSELECT) != 0;
	r->subscribed = is_subscribed(txn, user, r->name);
	if ((rc = store_txn_has_children(txn, user, r->name, &r->has_children)) != 0)
		return rc;
	r->uidvalidity = mr->uidvalidity;
	r->uidnext = mr->uidnext;
	r->messages = mr->messages;
	r->unseen = mr->unseen;
	r->deleted = mr->deleted;
	r->highestmodseq = mr->highestmodseq;
	r->bytes = mr->bytes;
	if (mr->kw.n > 0) {
		const char **kws = arena_alloc(a, mr->kw.n * sizeof(*kws));
		size_t pos = 0, kl, i = 0;
		const char *k;
		while (i < mr->kw.n && store_kw_next(&mr->kw, &pos, &k, &kl) == 1)
			kws[i++] = arena_strndup(a, k, kl);
		r->keywords = kws;
		r->nkeywords = i;
	}
	snprintf(r->objectid, sizeof(r->objectid), "M%016llx%08x", (unsigned long long)user, id);
	return 0;
}

/* INBOX of a user never seen: existing and empty. */
static void
empty_inbox(struct arena *a, struct store_mailbox *r)
{
	memset(r, 0, sizeof(*r));
	r->id = STORE_INBOX_ID;
	r->name = arena_strdup(a, "INBOX");
	r->uidnext = 1;
}

int
store_mailbox_get(const char *user_id, const char *name, struct arena *a, struct store_mailbox *r)
{
	MDB_txn *txn;
	struct mbox_rec mr;
	uint64_t user;
	uint32_t id;
	char *canon;
	int rc;

	memset(r, 0, sizeof(*r));
	if (name == NULL || name[0] == '\0')
		return STORE_NOTFOUND;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	canon = store_name_canon(name);
	rc = store_user_lookup(txn, user_id, &user);
	if (rc == MDB_NOTFOUND) {
		if (strcmp(canon, "INBOX") == 0) {
			empty_inbox(a, r);
			rc = 0;
		}
		goto out;
	}
	if (rc == 0)
		rc = store_mbox_lookup(txn, user, canon, &id);
	if (rc == 0) {
		rc = store_mbox_get(txn, user, id, &mr);
		if (rc == MDB_NOTFOUND)
			rc = STORE_PERMFAIL;
	}
	if (rc == 0)
		rc = mbox_fill(txn, a, user, id, &mr, r);
out:
	store_read_end(txn);
	free(canon);
	return store_rc_status(rc);
}

int
store_mailbox_list_all(const char *user_id, struct arena *a, struct store_mailbox **boxes_r,
		       size_t *count_r, const char ***subs_r, size_t *nsubs_r)
{
	struct store_mailbox *boxes = NULL;
	const char **subs = NULL;
	size_t n = 0, cap = 0, ns = 0, scap = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	uint64_t user;
	uint8_t key[8];
	MDB_val k, v;
	int rc;

	*boxes_r = NULL;
	*count_r = 0;
	if (subs_r != NULL)
		*subs_r = NULL;
	if (nsubs_r != NULL)
		*nsubs_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_user_lookup(txn, user_id, &user);
	if (rc == MDB_NOTFOUND) {
		boxes = arena_alloc(a, sizeof(*boxes));
		empty_inbox(a, boxes);
		n = 1;
		rc = 0;
		goto out;
	}
	if (rc != 0)
		goto out;
	be_put64(key, user);
	if ((rc = mdb_cursor_open(txn, store_g->mboxname, &cur)) != 0)
		goto out;
	k.mv_size = sizeof(key);
	k.mv_data = key;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec mr;
		uint32_t id;
		if (k.mv_size <= 8 || memcmp(k.mv_data, key, 8) != 0)
			break;
		if (v.mv_size != 4) {
			rc = STORE_PERMFAIL;
			break;
		}
		id = be_get32(v.mv_data);
		if ((rc = store_mbox_get(txn, user, id, &mr)) != 0) {
			if (rc == MDB_NOTFOUND)
				rc = STORE_PERMFAIL;
			break;
		}
		if (n == cap) {
			struct store_mailbox *nb;
			cap = cap == 0 ? 16 : cap * 2;
			nb = arena_alloc(a, cap * sizeof(*nb));
			if (n > 0)
				memcpy(nb, boxes, n * sizeof(*nb));
			boxes = nb;
		}
		if ((rc = mbox_fill(txn, a, user, id, &mr, &boxes[n])) != 0)
			break;
		n++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cur);
	cur = NULL;
	if (rc != 0)
		goto out;
	/* INBOX first, the rest in bytewise order as the keys come. */
	for (size_t i = 1; i < n; i++) {
		if (strcmp(boxes[i].name, "INBOX") == 0) {
			struct store_mailbox t = boxes[i];
			memmove(&boxes[1], &boxes[0], i * sizeof(*boxes));
			boxes[0] = t;
			break;
		}
	}
	if (subs_r == NULL)
		goto out;
	if ((rc = mdb_cursor_open(txn, store_g->subs, &cur)) != 0)
		goto out;
	k.mv_size = sizeof(key);
	k.mv_data = key;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= 8 || memcmp(k.mv_data, key, 8) != 0)
			break;
		if (ns == scap) {
			const char **nsb;
			scap = scap == 0 ? 16 : scap * 2;
			nsb = arena_alloc(a, scap * sizeof(*nsb));
			if (ns > 0)
				memcpy(nsb, subs, ns * sizeof(*nsb));
			subs = nsb;
		}
		subs[ns++] = arena_strndup(a, (const char *)k.mv_data + 8, k.mv_size - 8);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc != 0) {
		log_error(0, "store", "list-mailboxes-failed user=%s error=\"%s\"", user_id,
			  store_rc_str(rc));
		return store_rc_status(rc);
	}
	*boxes_r = boxes;
	*count_r = n;
	if (subs_r != NULL)
		*subs_r = subs;
	if (nsubs_r != NULL)
		*nsubs_r = ns;
	return STORE_OK;
}
