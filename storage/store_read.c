/*
 * store_read.c - reads of chosen messages: the records of a list of UIDs
 * (FETCH, STORE's replies) without listing the whole mailbox.
 *
 * One short read transaction and one cursor per call. The sorted UID list
 * is walked in step with the cursor: the cursor steps (MDB_NEXT) across
 * UIDs that follow each other closely and seeks (MDB_SET_RANGE) across
 * gaps, so "1:*" of a big mailbox costs one pass over its records and a
 * single UID costs one B-tree lookup.
 *
 * How it fails: LMDB errors are STORE_TEMPFAIL, a record that does not
 * decode is STORE_PERMFAIL (nothing is returned then); UIDs that do not
 * exist are simply absent from the result.
 */
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "storage/store_internal.h"

/* Wanted UIDs at most this far past the cursor are reached by stepping:
 * a few MDB_NEXT are cheaper than a seek from the root. */
#define STEP_MAX 8

int
store_message_infos(const char *user_id, const char *mailbox, const uint32_t *uids, size_t n,
		    struct arena *a, struct store_msg_info **infos_r, size_t *count_r)
{
	struct store_msg_info *list = NULL;
	size_t found = 0, cap = 0, i = 0;
	struct mbox_rec mr;
	uint64_t user;
	uint32_t mbox;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	int rc;

	*infos_r = NULL;
	*count_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_resolve_mailbox(txn, user_id, mailbox, &user, &mbox);
	if (rc == MDB_NOTFOUND) {
		/* Never got mail: an empty INBOX; any other name is absent. */
		store_read_end(txn);
		return strcmp(store_mbox_canon(mailbox), "INBOX") == 0 ? STORE_OK : STORE_NOTFOUND;
	}
	if (rc == 0)
		rc = store_mbox_get(txn, user, mbox, &mr);
	if (rc == MDB_NOTFOUND)
		rc = STORE_PERMFAIL; /* a name without its mailbox */
	if (rc != 0 || n == 0 || mr.messages == 0)
		goto out;
	/* No more can exist than the mailbox holds, whatever was asked. */
	cap = n < mr.messages ? n : mr.messages;
	list = arena_alloc(a, cap * sizeof(*list));

	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		goto out;
	store_key_msg(key, user, mbox, uids[0]);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break; /* past the mailbox's last message */
		uint32_t at = be_get32((const uint8_t *)k.mv_data + 12);
		while (i < n && uids[i] < at)
			i++; /* asked for, not there */
		if (i == n)
			break;
		if (uids[i] == at) {
			struct msg_rec r;
			if (store_msg_decode(v.mv_data, v.mv_size, &r) < 0 || found == cap) {
				rc = STORE_PERMFAIL; /* undecodable, or more than counted */
				goto out;
			}
			store_info_fill(a, at, &r, &list[found++]);
			if (++i == n)
				break;
		}
		if (uids[i] - at <= STEP_MAX) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		} else {
			k.mv_size = sizeof(key);
			k.mv_data = key;
			store_key_msg(key, user, mbox, uids[i]);
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		}
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc != 0) {
		log_error(0, "store", "infos-failed user=%s error=\"%s\"", user_id,
			  store_rc_str(rc));
		return store_rc_status(rc);
	}
	if (found > 0) {
		*infos_r = list;
		*count_r = found;
	}
	return STORE_OK;
}
