/*
 * store_migrate.c - rewrites a format-1 store as format 2, inside the one
 * write transaction store_open() runs at start-up: either every record is
 * rewritten and the format says 2, or (crash, error, failed check) nothing
 * is and the store is still a valid format-1 store that the next start
 * migrates again. Nothing is deleted: every message, body and mailbox
 * keeps its key, only the records grow their v2 fields.
 *
 * What it does: verifies the store first (store_check_txn; any problem
 * and it refuses, naming the first ones), then: user records get their
 * next mailbox id; mailbox records get unseen and \Deleted counted from
 * their messages, the special-use attribute of the default folder names,
 * a subscription; message records get an EMAILID each (meta
 * next_email_id); bodies get their parsed MIME structure; format = 2.
 * Then it checks again, and compares the counts of users, mailboxes,
 * messages and bodies before and after, so a migration that would lose
 * or break anything fails instead (-1, malloc'd *error_r) and the caller
 * aborts the transaction.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/store_internal.h"

/* The first few problems the check reports, for the error message. */
struct collect {
	struct buf b;
	int n;
};

static void
collect_report(void *arg, const char *problem)
{
	struct collect *c = arg;

	if (c->n++ < 3) {
		if (c->b.len > 0)
			buf_append_str(&c->b, "; ");
		buf_append_str(&c->b, problem);
	}
}

static const struct {
	const char *name;
	uint8_t special;
} special_names[] = {
    {"Sent", STORE_SPECIAL_SENT},	{"Drafts", STORE_SPECIAL_DRAFTS},
    {"Trash", STORE_SPECIAL_TRASH},	{"Junk", STORE_SPECIAL_JUNK},
    {"Archive", STORE_SPECIAL_ARCHIVE},
};

static int
migrate_users(MDB_txn *txn)
{
	MDB_cursor *cur, *mc;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->users, &cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, store_g->mbox, &mc)) != 0) {
		mdb_cursor_close(cur);
		return rc;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct user_rec r;
		uint8_t val[STORE_USER_LEN], mkey[STORE_MBOX_KEY_LEN];
		MDB_val mk = {.mv_size = sizeof(mkey), .mv_data = mkey}, mv;
		uint32_t max = STORE_INBOX_ID;

		if (store_user_decode(v.mv_data, v.mv_size, &r) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (r.next_mbox != 0)
			continue; /* already v2 */
		/* Next mailbox id: one past the highest in use. */
		store_key_mbox(mkey, r.user_id, 0);
		for (rc = mdb_cursor_get(mc, &mk, &mv, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT)) {
			if (mk.mv_size != STORE_MBOX_KEY_LEN || be_get64(mk.mv_data) != r.user_id)
				break;
			uint32_t id = be_get32((const uint8_t *)mk.mv_data + 8);
			if (id > max)
				max = id;
		}
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		r.next_mbox = max + 1;
		store_user_encode(val, &r);
		MDB_val nv = {.mv_size = sizeof(val), .mv_data = val};
		/* MDB_CURRENT rewrites the record under the cursor (the key
		 * is compared, so pass it as found). */
		if ((rc = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT)) != 0)
			break;
	}
	mdb_cursor_close(mc);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
migrate_mboxes(MDB_txn *txn)
{
	MDB_cursor *cur, *mc;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->mbox, &cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, store_g->msg, &mc)) != 0) {
		mdb_cursor_close(cur);
		return rc;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec r;
		uint8_t key[STORE_MBOX_KEY_LEN], mkey[STORE_MSG_KEY_LEN];
		MDB_val mk = {.mv_size = sizeof(mkey), .mv_data = mkey}, mv;

		if (k.mv_size != STORE_MBOX_KEY_LEN ||
		    store_mbox_decode(v.mv_data, v.mv_size, &r) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (((const uint8_t *)v.mv_data)[0] != 1)
			continue;
		memcpy(key, k.mv_data, sizeof(key));
		uint64_t user = be_get64(key);
		uint32_t id = be_get32(key + 8);

		/* v1 did not count these. */
		r.unseen = r.deleted = 0;
		store_key_msg(mkey, user, id, 0);
		for (rc = mdb_cursor_get(mc, &mk, &mv, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT)) {
			struct msg_rec m;
			if (mk.mv_size != STORE_MSG_KEY_LEN || memcmp(mk.mv_data, key, 12) != 0)
				break;
			if (store_msg_decode(mv.mv_data, mv.mv_size, &m) < 0) {
				rc = STORE_PERMFAIL;
				break;
			}
			if (!(m.flags & STORE_FLAG_SEEN))
				r.unseen++;
			if (m.flags & STORE_FLAG_DELETED)
				r.deleted++;
		}
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		for (size_t i = 0; i < ARRAY_SIZE(special_names); i++)
			if (r.name_len == strlen(special_names[i].name) &&
			    memcmp(r.name, special_names[i].name, r.name_len) == 0)
				r.special_use = special_names[i].special;

		/* Encode before writing: r.name points into the old record. */
		size_t n = store_mbox_size(&r);
		uint8_t *val = xmalloc(n);
		store_mbox_encode(val, &r);

		/* Format 1 had no subscriptions: every existing mailbox is. */
		uint8_t *skey = xmalloc(8 + r.name_len);
		be_put64(skey, user);
		memcpy(skey + 8, r.name, r.name_len);
		MDB_val sk = {.mv_size = 8 + r.name_len, .mv_data = skey}, sv = {0, NULL};
		rc = mdb_put(txn, store_g->subs, &sk, &sv, 0);
		free(skey);

		MDB_val kk = {.mv_size = sizeof(key), .mv_data = key};
		MDB_val nv = {.mv_size = n, .mv_data = val};
		if (rc == 0)
			rc = mdb_cursor_put(cur, &kk, &nv, MDB_CURRENT);
		free(val);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(mc);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
migrate_msgs(MDB_txn *txn, uint64_t *next_email_id)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct msg_rec r;
		uint8_t key[STORE_MSG_KEY_LEN];

		if (k.mv_size != STORE_MSG_KEY_LEN ||
		    store_msg_decode(v.mv_data, v.mv_size, &r) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (((const uint8_t *)v.mv_data)[0] != 1)
			continue;
		memcpy(key, k.mv_data, sizeof(key));
		/* save date = internal date (the decoder's default); every
		 * message its own EMAILID, as deliveries now get. */
		r.email_id = (*next_email_id)++;
		size_t n = store_msg_size(&r);
		uint8_t *val = xmalloc(n);
		store_msg_encode(val, &r);
		MDB_val kk = {.mv_size = sizeof(key), .mv_data = key};
		MDB_val nv = {.mv_size = n, .mv_data = val};
		rc = mdb_cursor_put(cur, &kk, &nv, MDB_CURRENT);
		free(val);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Bodies stored before format 2 get their MIME structure now, so FETCH
 * never parses them (DESIGN.md). XXX: the whole store is decompressed in
 * the start-up transaction; a very large format-1 store makes for a slow
 * first start (once). */
static int
migrate_mime(MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->blobref, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint8_t hash[STORE_HASH_LEN];
		struct blobref_rec br;
		const void *p;
		size_t plen;
		struct buf body;

		if (k.mv_size != STORE_HASH_LEN ||
		    store_blobref_decode(v.mv_data, v.mv_size, &br) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		memcpy(hash, k.mv_data, sizeof(hash));
		rc = store_blob_mime(txn, hash, &p, &plen);
		if (rc == 0)
			continue;
		if (rc != MDB_NOTFOUND)
			break;
		buf_init(&body, (size_t)br.length + 1);
		rc = store_blob_read(txn, hash, br.length, &body);
		if (rc == 0)
			rc = store_txn_mime_put(txn, hash, body.data != NULL ? body.data : "",
						body.len);
		buf_free(&body);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
meta_put_u64(MDB_txn *txn, const char *key, uint64_t value)
{
	uint8_t val[8];
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};

	be_put64(val, value);
	return mdb_put(txn, store_g->meta, &k, &v, 0);
}

int
store_migrate_v1(MDB_txn *txn, char **error_r)
{
	struct store_check_stats before, after;
	struct collect col = {.n = 0};
	char *err = NULL;
	uint64_t next_email_id = 1;
	bool have;
	int n, rc;

	*error_r = NULL;
	buf_init(&col.b, 4096);
	n = store_check_txn(txn, collect_report, &col, &before, &err);
	if (n < 0) {
		*error_r = xstrfmt("the check before migrating could not run: %s", err);
		goto fail;
	}
	if (n > 0) {
		*error_r = xstrfmt("the format-1 store has %d problem%s (%s); it was not migrated; "
				   "'ternd store check' lists them",
				   n, n == 1 ? "" : "s", col.b.data != NULL ? col.b.data : "");
		goto fail;
	}
	if (before.format != 1) {
		*error_r = xstrfmt("expected a format-1 store, found format %u", before.format);
		goto fail;
	}

	/* A format-1 store may already hold next_email_id (never, in
	 * practice): keep whichever is higher. */
	{
		MDB_val k = {.mv_size = 13, .mv_data = (void *)"next_email_id"}, v;
		rc = mdb_get(txn, store_g->meta, &k, &v);
		have = rc == 0 && v.mv_size == 8;
		if (have && be_get64(v.mv_data) > next_email_id)
			next_email_id = be_get64(v.mv_data);
	}
	if ((rc = migrate_users(txn)) != 0 || (rc = migrate_mboxes(txn)) != 0 ||
	    (rc = migrate_msgs(txn, &next_email_id)) != 0 || (rc = migrate_mime(txn)) != 0 ||
	    (rc = meta_put_u64(txn, "next_email_id", next_email_id)) != 0) {
		*error_r = xstrfmt("rewriting the records failed: %s", store_rc_str(rc));
		goto fail;
	}
	uint8_t ver[4];
	MDB_val fk = {.mv_size = 6, .mv_data = (void *)"format"};
	MDB_val fv = {.mv_size = sizeof(ver), .mv_data = ver};
	be_put32(ver, STORE_FORMAT);
	if ((rc = mdb_put(txn, store_g->meta, &fk, &fv, 0)) != 0) {
		*error_r = xstrfmt("cannot write the format version: %s", mdb_strerror(rc));
		goto fail;
	}

	/* The result must check out and hold everything the original held. */
	buf_reset(&col.b);
	col.n = 0;
	n = store_check_txn(txn, collect_report, &col, &after, &err);
	if (n != 0) {
		*error_r = xstrfmt("the migrated store does not check out (%s); rolled back",
				   n < 0		? err
				   : col.b.data != NULL ? col.b.data
							: "");
		goto fail;
	}
	if (after.users != before.users || after.mailboxes != before.mailboxes ||
	    after.messages != before.messages || after.bodies != before.bodies ||
	    after.body_bytes != before.body_bytes) {
		*error_r = xstrfmt(
		    "the migrated store lost records (users %llu/%llu, mailboxes "
		    "%llu/%llu, messages %llu/%llu, bodies %llu/%llu); rolled back",
		    (unsigned long long)before.users, (unsigned long long)after.users,
		    (unsigned long long)before.mailboxes, (unsigned long long)after.mailboxes,
		    (unsigned long long)before.messages, (unsigned long long)after.messages,
		    (unsigned long long)before.bodies, (unsigned long long)after.bodies);
		goto fail;
	}
	log_info(0, "store", "migrated from=1 to=%u users=%llu mailboxes=%llu messages=%llu",
		 STORE_FORMAT, (unsigned long long)after.users, (unsigned long long)after.mailboxes,
		 (unsigned long long)after.messages);
	buf_free(&col.b);
	return 0;
fail:
	free(err);
	buf_free(&col.b);
	return -1;
}
