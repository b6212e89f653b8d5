/*
 * store_annot.c - annotations (IMAP METADATA, RFC 5464) in the `annot` db:
 * setting and removing entries on the writer thread, reading them on the
 * caller's thread, and what mailbox and user removal do to them.
 *
 * Key: owner u64 | mailbox_id u32 | accessor u64 | entry name (layout in
 * store_schema.h). owner is the store's number of the mailbox's owner;
 * mailbox_id 0 holds a user's server entries ("" in IMAP); accessor is 0
 * for a /shared entry and the number of the user whose /private entry it
 * is (the owner for now; another user once mailboxes are shared). Shared
 * server entries (mailbox_id 0) live under the reserved owner 0, which no
 * user has (user numbers start at 1).
 *
 * A set that changes an entry tells the watches of the mailbox's owner
 * which (store_touch_annot: STORE_CHANGED_METADATA), once committed.
 *
 * Failure: STORE_NOTFOUND for a mailbox that is gone, STORE_LIMIT when a
 * new entry would pass the per-scope count, STORE_PERMFAIL for a name or
 * record this build does not accept; LMDB errors are STORE_TEMPFAIL. A
 * set is one child transaction: any failure leaves every entry as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/store_internal.h"

#define ANNOT_PREFIX_LEN STORE_ANNOT_PREFIX_LEN
#define ANNOT_VERSION 1

static bool
is_shared(const char *name)
{
	return strncmp(name, "/shared", 7) == 0 && (name[7] == '\0' || name[7] == '/');
}

static void
key_prefix(uint8_t k[ANNOT_PREFIX_LEN], uint64_t owner, uint32_t mbox, uint64_t accessor)
{
	be_put64(k, owner);
	be_put32(k + 8, mbox);
	be_put64(k + 12, accessor);
}

/* The key of name as seen by accessor on (owner, mbox): shared server
 * entries go to the reserved owner 0. k has room for the longest name. */
static size_t
annot_key(uint8_t *k, uint64_t owner, uint32_t mbox, uint64_t accessor, const char *name)
{
	size_t n = strlen(name);
	bool shared = is_shared(name);

	if (shared && mbox == 0)
		owner = 0;
	key_prefix(k, owner, mbox, shared ? 0 : accessor);
	memcpy(k + ANNOT_PREFIX_LEN, name, n);
	return ANNOT_PREFIX_LEN + n;
}

bool
store_annot_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 7 || n > STORE_ANNOT_NAME_MAX || name[n - 1] == '/')
		return false;
	if (!is_shared(name) &&
	    !(strncmp(name, "/private", 8) == 0 && (name[8] == '\0' || name[8] == '/')))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c >= 0x7f || c == '*' || c == '%' || (c >= 'A' && c <= 'Z'))
			return false;
		if (c == '/' && name[i + 1] == '/')
			return false;
	}
	return true;
}

const char *
store_annot_check(const void *key, size_t klen, const void *val, size_t vlen, uint64_t *owner_r,
		  uint32_t *mbox_r, uint64_t *accessor_r)
{
	const uint8_t *k = key;
	char name[STORE_ANNOT_NAME_MAX + 1];
	size_t nl = klen - ANNOT_PREFIX_LEN;

	if (klen <= ANNOT_PREFIX_LEN || nl > STORE_ANNOT_NAME_MAX)
		return "a key of the wrong length";
	*owner_r = be_get64(k);
	*mbox_r = be_get32(k + 8);
	*accessor_r = be_get64(k + 12);
	memcpy(name, k + ANNOT_PREFIX_LEN, nl);
	name[nl] = '\0';
	if (memchr(name, '\0', nl) != NULL || !store_annot_name_ok(name) ||
	    strchr(name + 1, '/') == NULL)
		return "an invalid entry name";
	if (is_shared(name) != (*accessor_r == 0))
		return "a /shared entry private to a user, or a /private one to none";
	if (*owner_r == 0 && (*mbox_r != 0 || *accessor_r != 0))
		return "the reserved owner 0 holding more than shared server entries";
	if (*owner_r != 0 && *mbox_r == 0 && *accessor_r == 0)
		return "a shared server entry outside the reserved owner 0";
	if (vlen < 1 || *(const uint8_t *)val != ANNOT_VERSION)
		return "a record that does not decode";
	return NULL;
}

/* ---- writes ---- */

/* Entries under one key prefix (one mailbox, one scope). */
static int
count_prefix(MDB_txn *txn, const uint8_t *prefix, size_t *n_r)
{
	MDB_val k = {.mv_size = ANNOT_PREFIX_LEN, .mv_data = (void *)prefix}, v;
	MDB_cursor *cur;
	size_t n = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->annot, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < ANNOT_PREFIX_LEN ||
		    memcmp(k.mv_data, prefix, ANNOT_PREFIX_LEN) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	*n_r = n;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Puts or removes one entry; *added_r when the key is new, *changed_r
 * when the entry is not what it was (its watchers are told). */
static int
put_one(MDB_txn *txn, const uint8_t *key, size_t klen, const struct store_annot *e, bool *added_r,
	bool *changed_r)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
	int rc = mdb_get(txn, store_g->annot, &k, &v);

	*added_r = false;
	*changed_r = false;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (e->value == NULL) {
		if (rc == MDB_NOTFOUND)
			return 0;
		*changed_r = true;
		return mdb_del(txn, store_g->annot, &k, NULL);
	}
	*added_r = rc == MDB_NOTFOUND;
	*changed_r = rc == MDB_NOTFOUND || v.mv_size != 1 + e->len ||
		     (e->len > 0 && memcmp((const uint8_t *)v.mv_data + 1, e->value, e->len) != 0);
	if (!*changed_r)
		return 0;
	v.mv_size = 1 + e->len;
	if ((rc = mdb_put(txn, store_g->annot, &k, &v, MDB_RESERVE)) != 0)
		return rc;
	((uint8_t *)v.mv_data)[0] = ANNOT_VERSION;
	if (e->len > 0)
		memcpy((uint8_t *)v.mv_data + 1, e->value, e->len);
	return 0;
}

static int
apply_annot_set(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_annot_set *s = (struct store_annot_set *)req;
	struct store_user_w u;
	uint64_t accessor;
	uint8_t key[ANNOT_PREFIX_LEN + STORE_ANNOT_NAME_MAX];
	uint8_t grown[2][ANNOT_PREFIX_LEN]; /* the scopes that got a new entry */
	bool grew[2] = {false, false};
	int rc;

	/* The owner's record is made if the store has never seen them (their
	 * INBOX exists for IMAP from the first login). */
	if ((rc = store_txn_user(txn, s->owner_id, true, &u, NULL)) != 0)
		return rc;
	if (strcmp(s->owner_id, s->user_id) == 0) {
		accessor = u.user;
	} else {
		/* A reader of a shared mailbox keeps private entries on it
		 * before the store has ever seen them: made likewise. */
		struct store_user_w a;
		if ((rc = store_txn_user(txn, s->user_id, true, &a, NULL)) != 0)
			return rc;
		accessor = a.user;
	}
	if (s->mailbox_id != 0) {
		struct mbox_rec mr;
		rc = store_mbox_get(txn, u.user, s->mailbox_id, &mr);
		if (rc != 0)
			return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct store_annot *e = &s->entries[i];
		bool added, changed;
		if (!store_annot_name_ok(e->name) || strchr(e->name + 1, '/') == NULL)
			return STORE_PERMFAIL;
		size_t kl = annot_key(key, u.user, s->mailbox_id, accessor, e->name);
		if ((rc = put_one(txn, key, kl, e, &added, &changed)) != 0)
			return rc;
		/* The owner's watches hear of it (a /private entry with the
		 * user it belongs to); the writer forgets it if this fails. */
		if (changed)
			store_touch_annot(wc, s->owner_id, s->mailbox_id,
					  is_shared(e->name) ? NULL : s->user_id, e->name);
		if (added) {
			int sc = is_shared(e->name) ? 0 : 1;
			memcpy(grown[sc], key, ANNOT_PREFIX_LEN);
			grew[sc] = true;
		}
	}
	/* Only a new entry can pass the count: replacing or removing one
	 * always works, even in a scope over a lowered limit. */
	for (int sc = 0; sc < 2 && s->max_entries != 0; sc++) {
		size_t n;
		if (!grew[sc])
			continue;
		if ((rc = count_prefix(txn, grown[sc], &n)) != 0)
			return rc;
		if (n > s->max_entries)
			return STORE_LIMIT;
	}
	return 0;
}

void
store_annot_set(struct store_annot_set *s)
{
	uint64_t bytes = 64;

	for (size_t i = 0; i < s->n; i++)
		bytes += s->entries[i].len + 64;
	store_submit(&s->req, apply_annot_set, bytes);
}

/* ---- reads ---- */

bool
store_annot_in_scope(const char *name, size_t nlen, const char *req, int depth)
{
	size_t rl = strlen(req);

	if (nlen < rl || memcmp(name, req, rl) != 0)
		return false;
	if (nlen == rl)
		return true;
	/* Below it: "/a/b" for "/a", not "/ab". */
	if (name[rl] != '/' || depth == 0)
		return false;
	return depth != 1 || memchr(name + rl + 1, '/', nlen - rl - 1) == NULL;
}

struct annot_list {
	struct store_annot *e; /* in the arena */
	size_t n, cap;
};

/* Appends the entries of the key range starting at key (klen bytes) that
 * names[i] selects at depth, leaving out those an earlier name selected. */
static int
read_range(MDB_txn *txn, const uint8_t *key, size_t klen, const char *const *names, size_t i,
	   int depth, struct arena *a, struct annot_list *l)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
	MDB_cursor *cur;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->annot, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const char *kn = (const char *)k.mv_data + ANNOT_PREFIX_LEN;
		size_t kl = k.mv_size - ANNOT_PREFIX_LEN, j;
		if (k.mv_size < klen || memcmp(k.mv_data, key, klen) != 0)
			break;
		if (!store_annot_in_scope(kn, kl, names[i], depth))
			continue;
		for (j = 0; j < i && !store_annot_in_scope(kn, kl, names[j], depth); j++)
			;
		if (j < i)
			continue; /* listed already */
		if (v.mv_size < 1 || ((const uint8_t *)v.mv_data)[0] != ANNOT_VERSION) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (l->n == l->cap) {
			struct store_annot *nl;
			l->cap = l->cap == 0 ? 8 : l->cap * 2;
			nl = arena_alloc(a, l->cap * sizeof(*nl));
			if (l->n > 0)
				memcpy(nl, l->e, l->n * sizeof(*nl));
			l->e = nl;
		}
		l->e[l->n].name = arena_strndup(a, kn, kl);
		l->e[l->n].len = v.mv_size - 1;
		/* NUL-terminated for convenience; values may hold NULs. */
		char *val = arena_alloc(a, v.mv_size);
		memcpy(val, (const uint8_t *)v.mv_data + 1, v.mv_size - 1);
		val[v.mv_size - 1] = '\0';
		l->e[l->n].value = val;
		l->n++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_annot_get(const char *owner_id, const char *user_id, uint32_t mailbox_id,
		const char *const *names, size_t nnames, int depth, struct arena *a,
		struct store_annot **list_r, size_t **starts_r)
{
	uint8_t key[ANNOT_PREFIX_LEN + STORE_ANNOT_NAME_MAX];
	struct annot_list l = {0};
	size_t *starts = arena_alloc(a, (nnames + 1) * sizeof(*starts));
	uint64_t owner, accessor = 0;
	MDB_txn *txn;
	int rc;

	*list_r = NULL;
	*starts_r = NULL;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_user_lookup(txn, owner_id, &owner);
	if (rc == MDB_NOTFOUND) {
		owner = UINT64_MAX; /* nobody: only shared server entries */
		rc = 0;
	}
	if (rc == 0 && strcmp(owner_id, user_id) == 0)
		accessor = owner;
	else if (rc == 0 && (rc = store_user_lookup(txn, user_id, &accessor)) == MDB_NOTFOUND) {
		accessor = UINT64_MAX;
		rc = 0;
	}
	for (size_t i = 0; i < nnames && rc == 0; i++) {
		starts[i] = l.n;
		if (strlen(names[i]) > STORE_ANNOT_NAME_MAX) {
			rc = STORE_PERMFAIL;
			break;
		}
		size_t kl = annot_key(key, owner, mailbox_id, accessor, names[i]);
		if (be_get64(key) == UINT64_MAX || be_get64(key + 12) == UINT64_MAX)
			continue; /* a user the store has never seen has none */
		rc = read_range(txn, key, kl, names, i, depth, a, &l);
	}
	starts[nnames] = l.n;
	store_read_end(txn);
	if (rc != 0) {
		log_error(0, "store", "annot-read-failed user=%s error=\"%s\"", user_id,
			  store_rc_str(rc));
		return store_rc_status(rc);
	}
	*list_r = l.e;
	*starts_r = starts;
	return STORE_OK;
}

/* ---- removal with their mailbox or user (writer thread) ---- */

static int
del_range(MDB_txn *txn, const uint8_t *prefix, size_t plen, uint64_t accessor_only)
{
	MDB_val k = {.mv_size = plen, .mv_data = (void *)prefix}, v;
	MDB_cursor *cur;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->annot, &cur)) != 0)
		return rc;
	rc = plen > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
		      : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (accessor_only == 0 ||
		    (k.mv_size >= ANNOT_PREFIX_LEN &&
		     be_get64((const uint8_t *)k.mv_data + 12) == accessor_only)) {
			/* After a delete the cursor stands on the next entry
			 * (LMDB's C_DEL), and MDB_NEXT returns that one. */
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_annot_drop_mailbox(MDB_txn *txn, uint64_t user, uint32_t mbox)
{
	uint8_t prefix[12];

	be_put64(prefix, user);
	be_put32(prefix + 8, mbox);
	return del_range(txn, prefix, sizeof(prefix), 0);
}

int
store_annot_drop_user(MDB_txn *txn, uint64_t user)
{
	uint8_t prefix[8];
	int rc;

	be_put64(prefix, user);
	if ((rc = del_range(txn, prefix, sizeof(prefix), 0)) != 0)
		return rc;
	/* Their private entries on other users' mailboxes: a whole pass,
	 * which a purge can afford (the db holds small records only). */
	return del_range(txn, NULL, 0, user);
}

int
store_annot_copy_mailbox(MDB_txn *txn, uint64_t user, uint32_t from, uint32_t to)
{
	uint8_t prefix[12];
	MDB_val k, v;
	MDB_cursor *cur;
	struct buf keys, vals;
	size_t *offs = NULL, n = 0, cap = 0;
	int rc;

	be_put64(prefix, user);
	be_put32(prefix + 8, from);
	k.mv_size = sizeof(prefix);
	k.mv_data = prefix;
	if ((rc = mdb_cursor_open(txn, store_g->annot, &cur)) != 0)
		return rc;
	/* Copied out first: a put while the cursor walks may move pages. */
	buf_init(&keys, 1 << 30);
	buf_init(&vals, 1 << 30);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < ANNOT_PREFIX_LEN || memcmp(k.mv_data, prefix, 12) != 0)
			break;
		if (n + 2 > cap) {
			cap = cap == 0 ? 16 : cap * 2;
			offs = xrealloc(offs, 2 * cap * sizeof(*offs));
		}
		offs[2 * n] = k.mv_size;
		offs[2 * n + 1] = v.mv_size;
		buf_append(&keys, k.mv_data, k.mv_size);
		buf_append(&vals, v.mv_data, v.mv_size);
		n++;
	}
	mdb_cursor_close(cur);
	rc = rc == MDB_NOTFOUND ? 0 : rc;
	size_t ko = 0, vo = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint8_t *kp = (uint8_t *)keys.data + ko;
		MDB_val nk = {.mv_size = offs[2 * i], .mv_data = kp};
		MDB_val nv = {.mv_size = offs[2 * i + 1], .mv_data = (uint8_t *)vals.data + vo};
		be_put32(kp + 8, to);
		rc = mdb_put(txn, store_g->annot, &nk, &nv, 0);
		ko += offs[2 * i];
		vo += offs[2 * i + 1];
	}
	free(offs);
	buf_free(&keys);
	buf_free(&vals);
	return rc;
}
