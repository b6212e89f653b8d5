/*
 * store_acl.c - access control lists of mailboxes (RFC 4314) and the
 * reverse index that finds what is shared with an identifier (store.h,
 * layout in store_schema.h: `acl` and `aclidx`).
 *
 * The `acl` record of a mailbox is keyed like the mailbox (user | id), so
 * RENAME keeps it and DELETE drops it (store_acl_drop, called from the
 * mailbox and purge operations); CREATE copies the nearest existing
 * parent's to the new mailbox and the parents it makes (store_acl_copy). Every positive entry has
 * an `aclidx` key (lower-case identifier, NUL, user, mailbox), kept exact in the same transaction,
 * so a user's LIST reads only the shares naming one of its identifiers. Writes run on the writer
 * thread (store_submit).
 *
 * How it fails: a record this build cannot decode is STORE_PERMFAIL (the
 * check tool reports it); LMDB errors become STORE_TEMPFAIL through
 * store_rc_status; an identifier that is empty, too long or holds a NUL
 * or a control character is STORE_PERMFAIL.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "core/compat.h"
#include "storage/store_internal.h"

#define ACL_VERSION 1
#define ACL_MAX_ENTRIES 200

/* A decoded record: strings point into the value (read) or a copy. */
struct acl_rec {
	const char *owner_id, *owner_login;
	size_t n;
	const char *ident[ACL_MAX_ENTRIES];
	const char *rights[ACL_MAX_ENTRIES];
};

static int
acl_decode(const void *p, size_t len, struct acl_rec *r)
{
	const char *s = p, *end = s + len;
	const char *strs[2 + 2 * ACL_MAX_ENTRIES];
	size_t n = 0;

	if (len < 1 || (uint8_t)s[0] != ACL_VERSION || s[len - 1] != '\0')
		return -1;
	for (s++; s < end; s += strlen(s) + 1) {
		if (n == ARRAY_SIZE(strs))
			return -1;
		strs[n++] = s;
	}
	if (n < 2 || n % 2 != 0)
		return -1;
	r->owner_id = strs[0];
	r->owner_login = strs[1];
	r->n = (n - 2) / 2;
	for (size_t i = 0; i < r->n; i++) {
		r->ident[i] = strs[2 + 2 * i];
		r->rights[i] = strs[3 + 2 * i];
	}
	return 0;
}

/* The record as bytes (malloc'd). */
static void *
acl_encode(const struct acl_rec *r, size_t *len_r)
{
	size_t len = 1 + strlen(r->owner_id) + 1 + strlen(r->owner_login) + 1;
	for (size_t i = 0; i < r->n; i++)
		len += strlen(r->ident[i]) + 1 + strlen(r->rights[i]) + 1;
	char *p = xmalloc(len), *q = p;
	*q++ = ACL_VERSION;
	q = stpcpy(q, r->owner_id) + 1;
	q = stpcpy(q, r->owner_login) + 1;
	for (size_t i = 0; i < r->n; i++) {
		q = stpcpy(q, r->ident[i]) + 1;
		q = stpcpy(q, r->rights[i]) + 1;
	}
	*len_r = len;
	return p;
}

int
store_acl_ident_check(const char *ident)
{
	size_t n = ident != NULL ? strlen(ident) : 0;

	if (n == 0 || n > STORE_ACL_IDENT_MAX)
		return STORE_PERMFAIL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)ident[i] < 0x20 || ident[i] == 0x7f)
			return STORE_PERMFAIL;
	return 0;
}

/* aclidx key: lower-case ident, NUL, user u64, mailbox u32. */
static size_t
idx_key(uint8_t *k, const char *ident, uint64_t user, uint32_t mbox)
{
	size_t n = strlen(ident);

	for (size_t i = 0; i < n; i++)
		k[i] = (uint8_t)tolower((unsigned char)ident[i]);
	k[n] = 0;
	store_key_mbox(k + n + 1, user, mbox);
	return n + 1 + STORE_MBOX_KEY_LEN;
}

static int
idx_set(MDB_txn *txn, const char *ident, uint64_t user, uint32_t mbox, bool on)
{
	uint8_t key[STORE_ACL_IDENT_MAX + 1 + STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = idx_key(key, ident, user, mbox), .mv_data = key};
	MDB_val v = {.mv_size = 0, .mv_data = (void *)""};
	int rc;

	if (ident[0] == '-') /* negative rights grant nothing to find */
		return 0;
	rc =
	    on ? mdb_put(txn, store_g->aclidx, &k, &v, 0) : mdb_del(txn, store_g->aclidx, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_acl_drop(MDB_txn *txn, uint64_t user, uint32_t mbox)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct acl_rec r;
	int rc;

	store_key_mbox(key, user, mbox);
	if ((rc = mdb_get(txn, store_g->acl, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	/* The index deletions do not touch `acl`: v stays valid. */
	if (acl_decode(v.mv_data, v.mv_size, &r) < 0)
		return STORE_PERMFAIL;
	for (size_t i = 0; i < r.n; i++)
		if ((rc = idx_set(txn, r.ident[i], user, mbox, false)) != 0)
			return rc;
	return mdb_del(txn, store_g->acl, &k, NULL);
}

int
store_acl_copy(MDB_txn *txn, uint64_t user, uint32_t from, uint32_t to)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct acl_rec r;
	int rc;

	if ((rc = store_acl_drop(txn, user, to)) != 0)
		return rc;
	store_key_mbox(key, user, from);
	if ((rc = mdb_get(txn, store_g->acl, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	/* Copied: the writes below may move the record's bytes. */
	void *copy = xmalloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	v.mv_data = copy;
	rc = acl_decode(copy, v.mv_size, &r) < 0 ? STORE_PERMFAIL : 0;
	store_key_mbox(key, user, to);
	if (rc == 0)
		rc = mdb_put(txn, store_g->acl, &k, &v, 0);
	for (size_t i = 0; rc == 0 && i < r.n; i++)
		rc = idx_set(txn, r.ident[i], user, to, true);
	free(copy);
	return rc;
}

/* Rights in canonical order: cur with add's letters (mode '+'), without
 * rem's ('-'), or exactly new ('='). */
static void
rights_merge(char *out, const char *cur, const char *arg, char mode)
{
	static const char order[] = STORE_ACL_RIGHTS;
	size_t n = 0;

	for (const char *o = order; *o != '\0'; o++) {
		bool had = strchr(cur, *o) != NULL, in = strchr(arg, *o) != NULL;
		bool on = mode == '+' ? had || in : mode == '-' ? had && !in : in;
		if (on)
			out[n++] = *o;
	}
	out[n] = '\0';
}

static int
apply_acl(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct store_acl_change *c = (struct store_acl_change *)req;
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct acl_rec r = {0};
	char *copy = NULL, newr[sizeof(STORE_ACL_RIGHTS)];
	uint64_t user;
	uint32_t mbox;
	int rc;

	(void)wc;
	if (store_acl_ident_check(c->ident) != 0 || c->owner_login == NULL ||
	    (c->mode != '=' && c->mode != '+' && c->mode != '-'))
		return STORE_PERMFAIL;
	rc = store_resolve_mailbox(txn, c->owner_id, c->mailbox, &user, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : rc;
	store_key_mbox(key, user, mbox);
	rc = mdb_get(txn, store_g->acl, &k, &v);
	if (rc == 0) {
		/* Copied: writing below may move the record's bytes. */
		copy = xmalloc(v.mv_size);
		memcpy(copy, v.mv_data, v.mv_size);
		if (acl_decode(copy, v.mv_size, &r) < 0) {
			free(copy);
			return STORE_PERMFAIL;
		}
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	r.owner_id = c->owner_id;
	r.owner_login = c->owner_login;
	size_t at = r.n;
	for (size_t i = 0; i < r.n; i++)
		if (strcasecmp(r.ident[i], c->ident) == 0)
			at = i;
	rights_merge(newr, at < r.n ? r.rights[at] : "", c->rights != NULL ? c->rights : "",
		     c->rights != NULL ? c->mode : '=');
	if (newr[0] == '\0') { /* the entry goes */
		if (at < r.n) {
			memmove(&r.ident[at], &r.ident[at + 1],
				(r.n - at - 1) * sizeof(r.ident[0]));
			memmove(&r.rights[at], &r.rights[at + 1],
				(r.n - at - 1) * sizeof(r.rights[0]));
			r.n--;
		}
	} else {
		if (at == r.n && r.n == ACL_MAX_ENTRIES) {
			free(copy);
			return STORE_LIMIT;
		}
		r.ident[at] = c->ident;
		r.rights[at] = newr;
		if (at == r.n)
			r.n++;
	}
	if ((rc = idx_set(txn, c->ident, user, mbox, newr[0] != '\0')) != 0)
		goto out;
	if (r.n == 0) {
		rc = mdb_del(txn, store_g->acl, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	} else {
		size_t len;
		void *p = acl_encode(&r, &len);
		v.mv_size = len;
		v.mv_data = p;
		rc = mdb_put(txn, store_g->acl, &k, &v, 0);
		free(p);
	}
out:
	free(copy);
	return rc;
}

void
store_acl_change(struct store_acl_change *c)
{
	store_submit(&c->req, apply_acl, 256);
}

/* Copies a record's entries into a. */
static void
acl_fill(struct arena *a, const struct acl_rec *r, struct store_acl *out)
{
	out->owner_login = arena_strdup(a, r->owner_login);
	out->n = r->n;
	out->entries = r->n > 0 ? arena_alloc(a, r->n * sizeof(*out->entries)) : NULL;
	for (size_t i = 0; i < r->n; i++) {
		out->entries[i].ident = arena_strdup(a, r->ident[i]);
		out->entries[i].rights = arena_strdup(a, r->rights[i]);
	}
}

int
store_acl_get(const char *owner_id, const char *mailbox, struct arena *a, struct store_acl *r)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct acl_rec rec;
	MDB_txn *txn;
	uint64_t user;
	uint32_t mbox;
	int rc;

	memset(r, 0, sizeof(*r));
	r->owner_login = "";
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_resolve_mailbox(txn, owner_id, mailbox, &user, &mbox);
	if (rc == 0) {
		store_key_mbox(key, user, mbox);
		rc = mdb_get(txn, store_g->acl, &k, &v);
		if (rc == 0)
			rc = acl_decode(v.mv_data, v.mv_size, &rec) < 0 ? STORE_PERMFAIL : 0;
		if (rc == 0)
			acl_fill(a, &rec, r);
		else if (rc == MDB_NOTFOUND)
			rc = 0;
	} else if (rc == MDB_NOTFOUND) {
		rc = STORE_NOTFOUND;
	}
	store_read_end(txn);
	return store_rc_status(rc);
}

/* Adds the share (user, mbox) unless listed already. */
static int
share_add(MDB_txn *txn, struct arena *a, uint64_t user, uint32_t mbox,
	  struct store_acl_share **list, size_t *n, size_t *cap)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct mbox_rec mr;
	struct acl_rec rec;
	int rc;

	for (size_t i = 0; i < *n; i++)
		if ((*list)[i].user == user && (*list)[i].mailbox_id == mbox)
			return 0;
	store_key_mbox(key, user, mbox);
	if ((rc = mdb_get(txn, store_g->acl, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc; /* an index without record: skipped */
	if (acl_decode(v.mv_data, v.mv_size, &rec) < 0)
		return STORE_PERMFAIL;
	if ((rc = store_mbox_get(txn, user, mbox, &mr)) != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 8 : *cap * 2;
		struct store_acl_share *nl = arena_alloc(a, ncap * sizeof(*nl));
		if (*n > 0)
			memcpy(nl, *list, *n * sizeof(*nl));
		*list = nl;
		*cap = ncap;
	}
	struct store_acl_share *sh = &(*list)[(*n)++];
	memset(sh, 0, sizeof(*sh));
	sh->user = user;
	sh->mailbox_id = mbox;
	sh->owner_id = arena_strdup(a, rec.owner_id);
	char *name = arena_alloc(a, mr.name_len + 1);
	memcpy(name, mr.name, mr.name_len);
	name[mr.name_len] = '\0';
	sh->mailbox = name;
	sh->noselect = (mr.flags & MBOX_F_NOSELECT) != 0;
	acl_fill(a, &rec, &sh->acl);
	return 0;
}

int
store_acl_shared(const char *const *idents, size_t nidents, struct arena *a,
		 struct store_acl_share **shares_r, size_t *n_r)
{
	uint8_t key[STORE_ACL_IDENT_MAX + 1 + STORE_MBOX_KEY_LEN];
	struct store_acl_share *list = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	int rc;

	*shares_r = NULL;
	*n_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = mdb_cursor_open(txn, store_g->aclidx, &cur);
	for (size_t i = 0; rc == 0 && i < nidents; i++) {
		if (store_acl_ident_check(idents[i]) != 0 || idents[i][0] == '-')
			continue;
		size_t plen = idx_key(key, idents[i], 0, 0) - STORE_MBOX_KEY_LEN;
		MDB_val k = {.mv_size = plen, .mv_data = key}, v;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			const uint8_t *kd = k.mv_data;
			if (k.mv_size != plen + STORE_MBOX_KEY_LEN || memcmp(kd, key, plen) != 0)
				break;
			rc = share_add(txn, a, be_get64(kd + plen), be_get32(kd + plen + 8), &list,
				       &n, &cap);
			if (rc != 0)
				break;
		}
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc == 0) {
		*shares_r = list;
		*n_r = n;
	}
	return store_rc_status(rc);
}

/* ---- the check tool (store_check.c) ---- */

/* Whether the acl record of (user, mbox) has a positive entry for the
 * lower-case ident. */
static bool
acl_has(MDB_txn *txn, MDB_dbi acl, uint64_t user, uint32_t mbox, const char *ident, size_t ilen)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct acl_rec r;

	store_key_mbox(key, user, mbox);
	if (mdb_get(txn, acl, &k, &v) != 0 || acl_decode(v.mv_data, v.mv_size, &r) < 0)
		return false;
	for (size_t i = 0; i < r.n; i++)
		if (strlen(r.ident[i]) == ilen && strncasecmp(r.ident[i], ident, ilen) == 0)
			return true;
	return false;
}

int
store_acl_check(MDB_txn *txn, MDB_dbi acl, MDB_dbi aclidx,
		bool (*mbox_exists)(void *arg, uint64_t user, uint32_t mbox),
		void (*problem)(void *arg, const char *text), void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	char text[600];
	int rc;

	if ((rc = mdb_cursor_open(txn, acl, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct acl_rec r;
		if (k.mv_size != STORE_MBOX_KEY_LEN) {
			snprintf(text, sizeof(text), "acl: a key of %zu bytes, not %d", k.mv_size,
				 STORE_MBOX_KEY_LEN);
			problem(arg, text);
			continue;
		}
		uint64_t user = be_get64(k.mv_data);
		uint32_t mbox = be_get32((const uint8_t *)k.mv_data + 8);
		if (acl_decode(v.mv_data, v.mv_size, &r) < 0) {
			snprintf(text, sizeof(text), "acl of user %llu mailbox %u: does not decode",
				 (unsigned long long)user, mbox);
			problem(arg, text);
			continue;
		}
		if (!mbox_exists(arg, user, mbox)) {
			snprintf(text, sizeof(text),
				 "acl of user %llu mailbox %u: the mailbox does not exist",
				 (unsigned long long)user, mbox);
			problem(arg, text);
		}
		for (size_t i = 0; i < r.n; i++) {
			uint8_t key[STORE_ACL_IDENT_MAX + 1 + STORE_MBOX_KEY_LEN];
			MDB_val ik, iv;
			if (store_acl_ident_check(r.ident[i]) != 0) {
				snprintf(text, sizeof(text),
					 "acl of user %llu mailbox %u: a bad identifier",
					 (unsigned long long)user, mbox);
				problem(arg, text);
				continue;
			}
			if (r.ident[i][0] == '-')
				continue;
			ik.mv_size = idx_key(key, r.ident[i], user, mbox);
			ik.mv_data = key;
			int grc = mdb_get(txn, aclidx, &ik, &iv);
			if (grc == MDB_NOTFOUND) {
				snprintf(text, sizeof(text),
					 "acl of user %llu mailbox %u: \"%.255s\" is not in aclidx",
					 (unsigned long long)user, mbox, r.ident[i]);
				problem(arg, text);
			} else if (grc != 0) {
				mdb_cursor_close(cur);
				return grc;
			}
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(txn, aclidx, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;
		const uint8_t *nul = memchr(p, 0, k.mv_size);
		if (nul == NULL || nul == p ||
		    (size_t)(p + k.mv_size - nul) != 1 + STORE_MBOX_KEY_LEN) {
			snprintf(text, sizeof(text), "aclidx: a malformed key of %zu bytes",
				 k.mv_size);
			problem(arg, text);
			continue;
		}
		uint64_t user = be_get64(nul + 1);
		uint32_t mbox = be_get32(nul + 9);
		size_t ilen = (size_t)(nul - p);
		if (!acl_has(txn, acl, user, mbox, (const char *)p, ilen)) {
			snprintf(text, sizeof(text),
				 "aclidx: \"%.*s\" for user %llu mailbox %u, whose acl does not "
				 "name it",
				 (int)(ilen > 255 ? 255 : ilen), (const char *)p,
				 (unsigned long long)user, mbox);
			problem(arg, text);
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}
