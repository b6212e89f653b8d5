/*
 * store_txn.c - write helpers shared by the store's operations (users and
 * their default folders, mailbox records, subscriptions, quota, message
 * records with their modseq entries, keyword runs). Everything here runs
 * on the writer thread inside one operation's child transaction, so a
 * failure half-way is rolled back by the writer aborting that child.
 * Failures: LMDB codes pass through; records that do not decode are
 * STORE_PERMFAIL; STORE_EXISTS / STORE_LIMIT are decisions for the caller.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/mime.h"
#include "storage/store_internal.h"

/* The folders every new user gets (RFC 6154 special use). */
static const struct {
	const char *name;
	uint32_t special;
} default_boxes[] = {
    {"Sent", STORE_SPECIAL_SENT},	{"Drafts", STORE_SPECIAL_DRAFTS},
    {"Trash", STORE_SPECIAL_TRASH},	{"Junk", STORE_SPECIAL_JUNK},
    {"Archive", STORE_SPECIAL_ARCHIVE},
};

/* Highest UIDVALIDITY handed out by this process (writer thread only), so
 * a name deleted and re-created within the same second still gets a new
 * one. XXX: not persisted; a restart within that same second could hand
 * out a deleted mailbox's UIDVALIDITY again. */
static uint32_t uidvalidity_last;

static int
user_save(MDB_txn *txn, const struct store_user_w *u)
{
	uint8_t val[STORE_USER_LEN];
	struct user_rec r = {.user_id = u->user, .next_mbox = u->next_mbox};
	MDB_val k = {.mv_size = strlen(u->id), .mv_data = (void *)u->id};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};

	store_user_encode(val, &r);
	return mdb_put(txn, store_g->users, &k, &v, 0);
}

/* A v1 user record has no next mailbox id: one past the highest in use. */
static int
derive_next_mbox(MDB_txn *txn, uint64_t user, uint32_t *next_r)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_cursor *cur;
	uint32_t max = STORE_INBOX_ID;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->mbox, &cur)) != 0)
		return rc;
	store_key_mbox(key, user, 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MBOX_KEY_LEN || be_get64(k.mv_data) != user)
			break;
		uint32_t id = be_get32((const uint8_t *)k.mv_data + 8);
		if (id > max)
			max = id;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	*next_r = max + 1;
	return 0;
}

int
store_txn_user(MDB_txn *txn, const char *id, bool create, struct store_user_w *u, bool *created_r)
{
	size_t n = id != NULL ? strlen(id) : 0;
	MDB_val k = {.mv_size = n, .mv_data = (void *)id}, v;
	struct user_rec r;
	int rc;

	if (created_r != NULL)
		*created_r = false;
	if (n == 0 || n > STORE_MAX_ID_LEN)
		return STORE_PERMFAIL;
	u->id = id;
	rc = mdb_get(txn, store_g->users, &k, &v);
	if (rc == 0) {
		if (store_user_decode(v.mv_data, v.mv_size, &r) < 0)
			return STORE_PERMFAIL;
		u->user = r.user_id;
		u->next_mbox = r.next_mbox;
		if (u->next_mbox == 0)
			return derive_next_mbox(txn, u->user, &u->next_mbox);
		return 0;
	}
	if (rc != MDB_NOTFOUND || !create)
		return rc;

	/* A new user: the next user_id, then INBOX (id 1) and the defaults. */
	MDB_val mk = {.mv_size = 12, .mv_data = (void *)"next_user_id"}, mv;
	uint8_t cnt[8];
	uint64_t next = 1;
	rc = mdb_get(txn, store_g->meta, &mk, &mv);
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
	u->user = next;
	u->next_mbox = STORE_INBOX_ID;
	if ((rc = store_txn_mbox_create(txn, u, "INBOX", 0, 0, true, NULL)) != 0)
		return rc;
	for (size_t i = 0; i < ARRAY_SIZE(default_boxes); i++) {
		rc = store_txn_mbox_create(txn, u, default_boxes[i].name, default_boxes[i].special,
					   0, true, NULL);
		if (rc != 0)
			return rc;
	}
	if (created_r != NULL)
		*created_r = true;
	return 0;
}

/* ---- names ---- */

char *
store_name_canon(const char *name)
{
	char *c = xstrdup(name);

	if (strncasecmp(c, "INBOX", 5) == 0 && (c[5] == '\0' || c[5] == '/'))
		memcpy(c, "INBOX", 5);
	return c;
}

int
store_name_check(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t len = name != NULL ? strlen(name) : 0;
	unsigned depth = 1;

	if (len == 0 || p[0] == '/' || p[len - 1] == '/')
		return STORE_PERMFAIL;
	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		size_t n;
		uint32_t cp;

		if (c < 0x20 || c == 0x7f)
			return STORE_PERMFAIL;
		if (c == '/') {
			if (p[i + 1] == '/')
				return STORE_PERMFAIL;
			depth++;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		/* UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return STORE_PERMFAIL;
		}
		if (i + n >= len + 1 || len - i - 1 < n)
			return STORE_PERMFAIL;
		for (size_t j = 1; j <= n; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return STORE_PERMFAIL;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return STORE_PERMFAIL;
		i += n + 1;
	}
	if (len > STORE_MAILBOX_NAME_MAX || depth > STORE_MAILBOX_DEPTH_MAX)
		return STORE_LIMIT;
	return 0;
}

/* ---- mailboxes ---- */

void
store_mbox_w_free(struct store_mbox_w *m)
{
	free(m->name);
	free(m->kw);
	m->name = NULL;
	m->kw = NULL;
}

/* Takes copies of what r points to (r is borrowed from a page). */
static void
mbox_w_own(struct store_mbox_w *m, uint32_t id, const struct mbox_rec *r)
{
	m->id = id;
	m->r = *r;
	m->name = xmalloc(r->name_len + 1);
	memcpy(m->name, r->name, r->name_len);
	m->name[r->name_len] = '\0';
	m->kw = xmalloc(r->kw.len + 1);
	if (r->kw.len > 0)
		memcpy(m->kw, r->kw.p, r->kw.len);
	m->r.name = m->name;
	m->r.kw.p = m->kw;
}

int
store_txn_mbox_load(MDB_txn *txn, uint64_t user, uint32_t id, struct store_mbox_w *m)
{
	struct mbox_rec r;
	int rc = store_mbox_get(txn, user, id, &r);

	memset(m, 0, sizeof(*m));
	if (rc != 0)
		return rc;
	mbox_w_own(m, id, &r);
	return 0;
}

int
store_txn_mbox_find(MDB_txn *txn, uint64_t user, const char *name, struct store_mbox_w *m)
{
	uint32_t id;
	int rc = store_mbox_lookup(txn, user, name, &id);

	memset(m, 0, sizeof(*m));
	if (rc != 0)
		return rc;
	rc = store_txn_mbox_load(txn, user, id, m);
	return rc == MDB_NOTFOUND ? STORE_PERMFAIL : rc; /* a name without its mailbox */
}

int
store_txn_mbox_save(MDB_txn *txn, uint64_t user, const struct store_mbox_w *m)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = store_mbox_size(&m->r), .mv_data = NULL};
	int rc;

	store_key_mbox(key, user, m->id);
	if ((rc = mdb_put(txn, store_g->mbox, &k, &v, MDB_RESERVE)) != 0)
		return rc;
	store_mbox_encode(v.mv_data, &m->r);
	return 0;
}

static void
name_key(uint8_t *key, uint64_t user, const char *name, size_t n)
{
	be_put64(key, user);
	memcpy(key + 8, name, n);
}

int
store_txn_mbox_create(MDB_txn *txn, struct store_user_w *u, const char *name, uint32_t special_use,
		      uint16_t flags, bool subscribe, struct store_mbox_w *out)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN], val[4]; /* n is checked below */
	MDB_val k = {.mv_size = 8 + n, .mv_data = key};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};
	struct store_mbox_w m;
	uint32_t now = (uint32_t)time(NULL);
	int rc;

	if (n == 0 || n > STORE_MAX_NAME_LEN)
		return STORE_LIMIT;
	if (u->next_mbox == UINT32_MAX)
		return STORE_LIMIT;
	name_key(key, u->user, name, n);
	memset(&m, 0, sizeof(m));
	m.id = u->next_mbox++;
	be_put32(val, m.id);
	rc = mdb_put(txn, store_g->mboxname, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return STORE_EXISTS;
	if (rc != 0)
		return rc;

	/* Time-based, but strictly above any UIDVALIDITY this user has (and
	 * this process gave out), even for several mailboxes a second. */
	uint32_t uv = now > uidvalidity_last ? now : uidvalidity_last + 1;
	MDB_cursor *cur;
	uint8_t mk[STORE_MBOX_KEY_LEN];
	MDB_val ck = {.mv_size = sizeof(mk), .mv_data = mk}, cv;
	if ((rc = mdb_cursor_open(txn, store_g->mbox, &cur)) != 0)
		return rc;
	store_key_mbox(mk, u->user, 0);
	for (rc = mdb_cursor_get(cur, &ck, &cv, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT)) {
		struct mbox_rec r;
		if (ck.mv_size != STORE_MBOX_KEY_LEN || be_get64(ck.mv_data) != u->user)
			break;
		if (store_mbox_decode(cv.mv_data, cv.mv_size, &r) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (r.uidvalidity >= uv)
			uv = r.uidvalidity + 1;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (uv == 0)
		uv = 1;
	uidvalidity_last = uv;

	m.r.special_use = (uint8_t)special_use;
	m.r.flags = flags;
	m.r.uidvalidity = uv;
	m.r.uidnext = 1;
	m.r.name = name;
	m.r.name_len = n;
	m.r.kw.p = (const uint8_t *)"";
	/* An mbox key that exists already is a mailbox id handed out twice. */
	uint8_t bkey[STORE_MBOX_KEY_LEN];
	MDB_val bk = {.mv_size = sizeof(bkey), .mv_data = bkey}, bv;
	store_key_mbox(bkey, u->user, m.id);
	rc = mdb_get(txn, store_g->mbox, &bk, &bv);
	if (rc == 0)
		return STORE_PERMFAIL;
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = store_txn_mbox_save(txn, u->user, &m)) != 0)
		return rc;
	if ((rc = user_save(txn, u)) != 0)
		return rc;
	if (subscribe && (rc = store_txn_subscribe(txn, u->user, name, true)) != 0)
		return rc;
	if (out != NULL) {
		mbox_w_own(out, m.id, &m.r);
		out->r.kw.len = 0;
	}
	return 0;
}

int
store_txn_has_children(MDB_txn *txn, uint64_t user, const char *name, bool *r)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN + 1]; /* n is checked below */
	MDB_val k = {.mv_size = 8 + n + 1, .mv_data = key}, v;
	MDB_cursor *cur;
	int rc;

	*r = false;
	if (n > STORE_MAX_NAME_LEN)
		return 0;
	name_key(key, user, name, n);
	key[8 + n] = '/';
	if ((rc = mdb_cursor_open(txn, store_g->mboxname, &cur)) != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size > 8 + n + 1 && memcmp(k.mv_data, key, 8 + n + 1) == 0)
		*r = true;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_txn_subscribe(MDB_txn *txn, uint64_t user, const char *name, bool on)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN]; /* n is checked below */
	MDB_val k = {.mv_size = 8 + n, .mv_data = key};
	MDB_val v = {.mv_size = 0, .mv_data = key};
	int rc;

	if (n == 0 || n > STORE_MAX_NAME_LEN)
		return STORE_LIMIT;
	name_key(key, user, name, n);
	if (on)
		return mdb_put(txn, store_g->subs, &k, &v, 0);
	rc = mdb_del(txn, store_g->subs, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_txn_quota_put(MDB_txn *txn, uint64_t user, uint64_t bytes, uint64_t messages)
{
	uint8_t key[8], val[16];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};

	be_put64(key, user);
	be_put64(val, bytes);
	be_put64(val + 8, messages);
	return mdb_put(txn, store_g->quota, &k, &v, 0);
}

int
store_txn_counter(MDB_txn *txn, const char *name, uint64_t *id_r)
{
	MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name}, v;
	uint8_t cnt[8];
	uint64_t next = 1;
	int rc = mdb_get(txn, store_g->meta, &k, &v);

	if (rc == 0) {
		if (v.mv_size != 8)
			return STORE_PERMFAIL;
		next = be_get64(v.mv_data);
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	if (next == 0 || next == UINT64_MAX)
		return STORE_PERMFAIL;
	be_put64(cnt, next + 1);
	v.mv_size = sizeof(cnt);
	v.mv_data = cnt;
	if ((rc = mdb_put(txn, store_g->meta, &k, &v, 0)) != 0)
		return rc;
	*id_r = next;
	return 0;
}

int
store_txn_email_id(MDB_txn *txn, uint64_t *id_r)
{
	return store_txn_counter(txn, "next_email_id", id_r);
}

/* ---- messages ---- */

void
store_msg_w_free(struct store_msg_w *m)
{
	free(m->trace);
	free(m->kw);
	m->trace = NULL;
	m->kw = NULL;
}

int
store_txn_msg_load(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t uid, struct store_msg_w *m)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	int rc;

	memset(m, 0, sizeof(*m));
	store_key_msg(key, user, mbox, uid);
	if ((rc = mdb_get(txn, store_g->msg, &k, &v)) != 0)
		return rc;
	if (store_msg_decode(v.mv_data, v.mv_size, &m->r) < 0)
		return STORE_PERMFAIL;
	m->uid = uid;
	m->trace = xmalloc(m->r.trace_len + 1);
	if (m->r.trace_len > 0)
		memcpy(m->trace, m->r.trace, m->r.trace_len);
	m->kw = xmalloc(m->r.kw.len + 1);
	if (m->r.kw.len > 0)
		memcpy(m->kw, m->r.kw.p, m->r.kw.len);
	m->r.trace = m->trace;
	m->r.kw.p = m->kw;
	return 0;
}

static int
msg_put(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t uid, const struct msg_rec *r,
	unsigned flags)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = store_msg_size(r), .mv_data = NULL};
	int rc;

	store_key_msg(key, user, mbox, uid);
	rc = mdb_put(txn, store_g->msg, &k, &v, flags | MDB_RESERVE);
	if (rc != 0)
		return rc == MDB_KEYEXIST ? STORE_PERMFAIL : rc;
	store_msg_encode(v.mv_data, r);
	return 0;
}

static int
modseq_put(MDB_txn *txn, uint64_t user, uint32_t mbox, uint64_t modseq, uint32_t uid, int kind)
{
	uint8_t key[STORE_MODSEQ_KEY_LEN], val[5];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val v = {.mv_size = kind == STORE_MODSEQ_LIVE ? 4 : 5, .mv_data = val};

	store_key_modseq(key, user, mbox, modseq);
	be_put32(val, uid);
	val[4] = (uint8_t)kind;
	return mdb_put(txn, store_g->modseq, &k, &v, MDB_NOOVERWRITE);
}

static int
modseq_del(MDB_txn *txn, uint64_t user, uint32_t mbox, uint64_t modseq)
{
	uint8_t key[STORE_MODSEQ_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};

	store_key_modseq(key, user, mbox, modseq);
	int rc = mdb_del(txn, store_g->modseq, &k, NULL);
	/* Missing: the index was already short; nothing to remove. */
	return rc == MDB_NOTFOUND ? 0 : rc;
}

uint64_t
store_txn_modseq_next(struct store_mbox_w *mb)
{
	return ++mb->r.highestmodseq;
}

int
store_txn_msg_add(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb, struct msg_rec *r,
		  uint32_t *uid_r)
{
	int rc;

	if (mb->r.uidnext == UINT32_MAX || mb->r.messages == UINT32_MAX)
		return STORE_LIMIT; /* XXX: would need a new UIDVALIDITY */
	if ((rc = store_txn_mbox_kw_add(mb, &r->kw)) != 0)
		return rc;
	uint32_t uid = mb->r.uidnext++;
	r->modseq = store_txn_modseq_next(mb);
	if ((rc = msg_put(txn, user, mb->id, uid, r, MDB_NOOVERWRITE)) != 0)
		return rc;
	if ((rc = modseq_put(txn, user, mb->id, r->modseq, uid, STORE_MODSEQ_LIVE)) != 0)
		return rc == MDB_KEYEXIST ? STORE_PERMFAIL : rc;
	mb->r.messages++;
	mb->r.bytes += r->size;
	if (!(r->flags & STORE_FLAG_SEEN))
		mb->r.unseen++;
	if (r->flags & STORE_FLAG_DELETED)
		mb->r.deleted++;
	*uid_r = uid;
	return 0;
}

static void
count_flags(struct store_mbox_w *mb, uint32_t flags, int dir)
{
	if (!(flags & STORE_FLAG_SEEN))
		mb->r.unseen =
		    dir > 0 ? mb->r.unseen + 1 : (mb->r.unseen > 0 ? mb->r.unseen - 1 : 0);
	if (flags & STORE_FLAG_DELETED)
		mb->r.deleted =
		    dir > 0 ? mb->r.deleted + 1 : (mb->r.deleted > 0 ? mb->r.deleted - 1 : 0);
}

int
store_txn_msg_update(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb, struct store_msg_w *m,
		     uint32_t new_flags, const struct kw_run *kw)
{
	int rc;

	if ((rc = store_txn_mbox_kw_add(mb, kw)) != 0)
		return rc;
	if ((rc = modseq_del(txn, user, mb->id, m->r.modseq)) != 0)
		return rc;
	count_flags(mb, m->r.flags, -1);
	count_flags(mb, new_flags, 1);
	m->r.flags = new_flags;
	m->r.kw = *kw;
	m->r.modseq = store_txn_modseq_next(mb);
	if ((rc = msg_put(txn, user, mb->id, m->uid, &m->r, 0)) != 0)
		return rc;
	rc = modseq_put(txn, user, mb->id, m->r.modseq, m->uid, STORE_MODSEQ_LIVE);
	return rc == MDB_KEYEXIST ? STORE_PERMFAIL : rc;
}

int
store_txn_msg_expunge(MDB_txn *txn, uint64_t user, struct store_mbox_w *mb, uint32_t uid,
		      bool *found_r, uint64_t *size_r)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct msg_rec r;
	uint8_t hash[STORE_HASH_LEN];
	int rc;

	*found_r = false;
	*size_r = 0;
	store_key_msg(key, user, mb->id, uid);
	rc = mdb_get(txn, store_g->msg, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0; /* already gone (or listed twice) */
	if (rc != 0)
		return rc;
	if (store_msg_decode(v.mv_data, v.mv_size, &r) < 0)
		return STORE_PERMFAIL;
	/* r's borrowed pointers die with the delete: keep what is needed. */
	memcpy(hash, r.hash, STORE_HASH_LEN);
	if ((rc = mdb_del(txn, store_g->msg, &k, NULL)) != 0)
		return rc;
	if ((rc = modseq_del(txn, user, mb->id, r.modseq)) != 0)
		return rc;
	rc = modseq_put(txn, user, mb->id, store_txn_modseq_next(mb), uid, STORE_MODSEQ_EXPUNGED);
	if (rc != 0)
		return rc == MDB_KEYEXIST ? STORE_PERMFAIL : rc;
	if ((rc = store_blob_unref(txn, hash)) != 0)
		return rc;
	mb->r.messages = mb->r.messages > 0 ? mb->r.messages - 1 : 0;
	mb->r.bytes = mb->r.bytes > r.size ? mb->r.bytes - r.size : 0;
	count_flags(mb, r.flags, -1);
	*found_r = true;
	*size_r = r.size;
	return 0;
}

/* ---- keywords ---- */

bool
store_keyword_valid(const char *kw, size_t len)
{
	if (len == 0 || len > STORE_KEYWORD_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)kw[i];
		/* atom-char: CHAR minus atom-specials (RFC 9051 9). */
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

int
store_kw_index(const struct kw_run *run, const char *kw, size_t len)
{
	size_t pos = 0, kl;
	const char *k;
	int i = 0;

	while (store_kw_next(run, &pos, &k, &kl) == 1) {
		if (kl == len && strncasecmp(k, kw, len) == 0)
			return i;
		i++;
	}
	return -1;
}

int
store_txn_mbox_kw_add(struct store_mbox_w *mb, const struct kw_run *kw)
{
	size_t pos = 0, kl;
	const char *k;

	while (store_kw_next(kw, &pos, &k, &kl) == 1) {
		if (store_kw_index(&mb->r.kw, k, kl) >= 0)
			continue;
		if (mb->r.kw.n >= STORE_KEYWORDS_PER_MAILBOX)
			return STORE_LIMIT;
		mb->kw = xrealloc(mb->kw, mb->r.kw.len + 1 + kl);
		mb->kw[mb->r.kw.len] = (uint8_t)kl;
		memcpy(mb->kw + mb->r.kw.len + 1, k, kl);
		mb->r.kw.len += 1 + kl;
		mb->r.kw.n++;
		mb->r.kw.p = mb->kw;
	}
	return 0;
}

/* ---- MIME ---- */

#define MIME_ENC_MAX (64u << 20)

int
store_txn_mime_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body, size_t len)
{
	struct arena *a = arena_new(0);
	struct mime_part *root;
	struct buf out;
	int rc = 0;

	buf_init(&out, MIME_ENC_MAX);
	mime_parse(a, NULL, body != NULL ? body : "", len, &root);
	if (mime_encode(root, &out) != 0) {
		/* Only a pathological structure gets here; reads then parse
		 * on the fly rather than refuse the message. */
		log_warn(0, "store", "mime-encode-too-big size=%zu", len);
	} else {
		MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash};
		MDB_val v = {.mv_size = out.len, .mv_data = out.data};
		rc = mdb_put(txn, store_g->mime, &k, &v, 0);
	}
	if (rc == 0)
		rc = store_sortkey_put(txn, hash, body != NULL ? body : "", (size_t)root->hdr_len);
	if (rc == 0)
		rc = store_blob_hdr_put(txn, hash, body != NULL ? body : "", (size_t)root->hdr_len);
	buf_free(&out);
	arena_destroy(&a);
	return rc;
}
