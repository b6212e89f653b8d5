/*
 * store.c - opening and closing the mail store, and the read side
 * (mailbox listing, CONDSTORE/QRESYNC changes, whole and ranged message
 * reads, the stored MIME structure, quota usage).
 *
 * Reads run on the caller's thread in a short read transaction (MDB_NOTLS,
 * so any thread may hold one) taken under the shared map lock, copy out
 * what they return and end the transaction before returning: no read
 * transaction outlives a call, so none is held across client I/O.
 * Failures: LMDB and system errors are STORE_TEMPFAIL, records that do not
 * decode are STORE_PERMFAIL; store_open() reports errors naming the path.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/mime.h"
#include "storage/store_internal.h"

struct store_state *store_g;

#define DEFAULT_MAP_SIZE (1ull << 30)
/* Growth on MDB_MAP_FULL stops here: address space, not disk (the file
 * only grows by the pages in use). */
#define MAP_CAP (1ull << 40)

const char *
store_strerror(int status)
{
	switch (status) {
	case STORE_OK:
		return "success";
	case STORE_NOTFOUND:
		return "no such mailbox or message";
	case STORE_TEMPFAIL:
		return "temporary storage failure";
	case STORE_PERMFAIL:
		return "permanent storage failure";
	case STORE_OVERQUOTA:
		return "mailbox is over quota";
	case STORE_TOOBIG:
		return "message exceeds the mailbox quota";
	case STORE_EXISTS:
		return "mailbox already exists";
	case STORE_NOTALLOWED:
		return "not allowed for this mailbox";
	case STORE_LIMIT:
		return "a storage limit was reached";
	default:
		return "unknown storage status";
	}
}

int
store_rc_status(int rc)
{
	if (rc == 0)
		return STORE_OK;
	if (rc <= STORE_NOTFOUND && rc >= STORE_LIMIT)
		return rc;
	switch (rc) {
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_VALSIZE:
		return STORE_PERMFAIL;
	default:
		/* EIO, ENOSPC, ENOMEM, MDB_MAP_FULL, MDB_READERS_FULL,
		 * MDB_TXN_FULL, ...: the next attempt may work. */
		return STORE_TEMPFAIL;
	}
}

const char *
store_rc_str(int rc)
{
	if (rc <= STORE_NOTFOUND && rc >= STORE_LIMIT)
		return store_strerror(rc);
	return mdb_strerror(rc);
}

static int
mkdir_0700(const char *path, char **error_r)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	*error_r = xstrfmt("store: cannot create directory %s: %s", path, strerror(errno));
	return -1;
}

/* Opens the named databases and checks (or writes) the format version. */
static int
open_dbs(struct store_state *s, char **error_r)
{
	static const struct {
		const char *name;
		size_t off;
	} dbs[] = {
	    {"meta", offsetof(struct store_state, meta)},
	    {"users", offsetof(struct store_state, users)},
	    {"mbox", offsetof(struct store_state, mbox)},
	    {"mboxname", offsetof(struct store_state, mboxname)},
	    {"msg", offsetof(struct store_state, msg)},
	    {"modseq", offsetof(struct store_state, modseq)},
	    {"blob", offsetof(struct store_state, blob)},
	    {"blobref", offsetof(struct store_state, blobref)},
	    {"quota", offsetof(struct store_state, quota)},
	    {"subs", offsetof(struct store_state, subs)},
	    {"mime", offsetof(struct store_state, mime)},
	    /* The outbound queue: created empty in an older format-2
	     * environment, an absent database being an empty queue. */
	    {"queue", offsetof(struct store_state, queue)},
	    {"queue_rcpt", offsetof(struct store_state, queue_rcpt)},
	    {"queue_due", offsetof(struct store_state, queue_due)},
	    /* Orphan marks: created empty in an older environment too. */
	    {"orphans", offsetof(struct store_state, orphans)},
	    /* SORT/THREAD keys: created empty and filled below. */
	    {"sortkey", offsetof(struct store_state, sortkey)},
	    /* Annotations (IMAP METADATA): created empty likewise. */
	    {"annot", offsetof(struct store_state, annot)},
	    /* ACLs (storage/store_acl.c): created empty, no format bump. */
	    {"acl", offsetof(struct store_state, acl)},
	    {"aclidx", offsetof(struct store_state, aclidx)},
	    /* DMARC report counts (storage/store_dmarc.c): created empty. */
	    {"dmarc", offsetof(struct store_state, dmarc)},
	    /* Bodies' top headers (storage/store_blob.c): created empty;
	     * bodies stored before it are read the old way. */
	    {"hdr", offsetof(struct store_state, hdr)},
	};
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);

	if (rc != 0) {
		*error_r =
		    xstrfmt("store: %s: cannot begin a transaction: %s", s->path, mdb_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);
		rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbi);
		if (rc != 0) {
			*error_r = xstrfmt("store: %s: cannot open database %s: %s", s->path,
					   dbs[i].name, mdb_strerror(rc));
			goto fail;
		}
	}
	/* The full-text index: created empty in an older environment (its
	 * mailboxes then have no "complete" mark and are scanned until
	 * `ternd store check --rebuild-index`). */
	rc = mdb_dbi_open(txn, "fts", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &s->fts);
	if (rc != 0) {
		*error_r =
		    xstrfmt("store: %s: cannot open database fts: %s", s->path, mdb_strerror(rc));
		goto fail;
	}

	MDB_val k = {.mv_size = 6, .mv_data = (void *)"format"}, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		uint8_t ver[4];
		be_put32(ver, STORE_FORMAT);
		v.mv_size = sizeof(ver);
		v.mv_data = ver;
		rc = mdb_put(txn, s->meta, &k, &v, 0);
		if (rc != 0) {
			*error_r = xstrfmt("store: %s: cannot write the format version: %s",
					   s->path, mdb_strerror(rc));
			goto fail;
		}
	} else if (rc != 0) {
		*error_r = xstrfmt("store: %s: cannot read the format version: %s", s->path,
				   mdb_strerror(rc));
		goto fail;
	} else if (v.mv_size != 4) {
		*error_r = xstrfmt("store: %s: the format version record is corrupt", s->path);
		goto fail;
	} else {
		uint32_t ver = be_get32(v.mv_data);
		if (ver > STORE_FORMAT) {
			*error_r = xstrfmt("store: %s: store format version %u is newer than this "
					   "ternd supports (%u); run a newer ternd",
					   s->path, ver, STORE_FORMAT);
			goto fail;
		}
		if (ver < 1) {
			*error_r =
			    xstrfmt("store: %s: unknown store format version %u", s->path, ver);
			goto fail;
		}
		if (ver == 1) {
			/* In this transaction: a crash or a failed check leaves
			 * the format-1 store as it was. */
			char *merr = NULL;
			uint8_t nv[4];
			log_info(0, "store", "migrate path=%s from=1 to=%u", s->path, STORE_FORMAT);
			if (store_migrate_v1(txn, &merr) < 0) {
				*error_r = xstrfmt("store: %s: cannot migrate from format 1: %s",
						   s->path, merr != NULL ? merr : "unknown error");
				free(merr);
				goto fail;
			}
			be_put32(nv, STORE_FORMAT);
			v.mv_size = sizeof(nv);
			v.mv_data = nv;
			if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0) {
				*error_r = xstrfmt("store: %s: cannot write the format version: %s",
						   s->path, mdb_strerror(rc));
				goto fail;
			}
		}
	}
	if ((rc = store_sortkey_fill(txn)) != 0) {
		*error_r =
		    xstrfmt("store: %s: cannot fill the sort keys: %s", s->path, store_rc_str(rc));
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		*error_r = xstrfmt("store: %s: cannot commit: %s", s->path, mdb_strerror(rc));
		return -1;
	}
	return 0;
fail:
	mdb_txn_abort(txn);
	return -1;
}

static void
state_free(struct store_state *s)
{
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->maplock);
	pthread_cond_destroy(&s->qcond);
	pthread_mutex_destroy(&s->qlock);
	free(s->path);
	free(s);
}

int
store_open(const struct config *cfg, char **error_r)
{
	struct store_state *s;
	pthread_rwlockattr_t rwa;
	pthread_condattr_t ca;
	int rc, dead = 0;

	*error_r = NULL;
	if (store_g != NULL) {
		*error_r = xstrdup("store: already open");
		return -1;
	}
	if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
		*error_r = xstrdup("store: [server] state_dir is not set");
		return -1;
	}
	if (mkdir_0700(cfg->state_dir, error_r) < 0)
		return -1;

	s = xcalloc(1, sizeof(*s));
	s->path = xstrfmt("%s/mail", cfg->state_dir);
	/* Writers must not starve behind a steady stream of readers, or a
	 * map resize could wait forever. */
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->maplock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	pthread_mutex_init(&s->qlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->qcond, &ca);
	pthread_condattr_destroy(&ca);

	s->group_commit = cfg->group_commit;
	store_fts_background(cfg->search_indexer);
	s->batch_max_ops = cfg->batch_max_ops > 0 ? cfg->batch_max_ops : 64;
	s->batch_max_bytes = cfg->batch_max_bytes > 0 ? cfg->batch_max_bytes : 8u << 20;
	s->batch_max_ms = cfg->batch_max_ms;
	s->zstd_level = cfg->zstd_level > 0 ? (int)cfg->zstd_level : ZSTD_CLEVEL_DEFAULT;
	if (s->zstd_level > ZSTD_maxCLevel())
		s->zstd_level = ZSTD_maxCLevel();
	s->map_size = cfg->map_size > 0 ? cfg->map_size : DEFAULT_MAP_SIZE;
	s->map_cap = s->map_size > MAP_CAP ? s->map_size : MAP_CAP;

	if (mkdir_0700(s->path, error_r) < 0)
		goto fail;
	if ((rc = mdb_env_create(&s->env)) != 0) {
		*error_r = xstrfmt("store: %s: %s", s->path, mdb_strerror(rc));
		goto fail;
	}
	mdb_env_set_maxdbs(s->env, 32); /* 22 named dbs in use: room for more */
	mdb_env_set_maxreaders(s->env, 512);
	if ((rc = mdb_env_set_mapsize(s->env, (size_t)s->map_size)) != 0) {
		*error_r = xstrfmt("store: %s: map size %llu: %s", s->path,
				   (unsigned long long)s->map_size, mdb_strerror(rc));
		goto fail;
	}
	/* Full sync (no MDB_NOSYNC/NOMETASYNC): a committed delivery has
	 * been acknowledged and must survive a crash. No WRITEMAP: nested
	 * transactions need it off. */
	if ((rc = mdb_env_open(s->env, s->path, MDB_NOTLS, 0600)) != 0) {
		*error_r = xstrfmt("store: cannot open %s: %s", s->path, mdb_strerror(rc));
		goto fail;
	}
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
		s->map_size = info.me_mapsize;
	if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
		*error_r = xstrfmt("store: %s: reader check: %s", s->path, mdb_strerror(rc));
		goto fail;
	}
	if (dead > 0)
		log_warn(0, "store", "stale-readers path=%s cleared=%d", s->path, dead);
	/* The migration uses the shared helpers, which find the databases
	 * through store_g; nothing else runs before the writer starts. */
	store_g = s;
	if (open_dbs(s, error_r) < 0) {
		store_g = NULL;
		goto fail;
	}
	s->stats.map_size = s->map_size;

	if (store_writer_start(error_r) < 0) {
		store_g = NULL;
		goto fail;
	}
	log_info(0, "store", "open path=%s map_size=%llu group_commit=%s", s->path,
		 (unsigned long long)s->map_size, s->group_commit ? "yes" : "no");
	return 0;
fail:
	state_free(s);
	return -1;
}

void
store_close(void)
{
	struct store_state *s = store_g;

	if (s == NULL)
		return;
	store_writer_stop();
	store_g = NULL;
	state_free(s);
}

void
store_stats(struct store_stats *r)
{
	struct store_state *s = store_g;

	memset(r, 0, sizeof(*r));
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->qlock);
	*r = s->stats;
	pthread_mutex_unlock(&s->qlock);
}

int
store_read_begin(MDB_txn **txn_r)
{
	struct store_state *s = store_g;
	int rc;

	if (s == NULL)
		return STORE_TEMPFAIL;
	pthread_rwlock_rdlock(&s->maplock);
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn_r);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size, which needs
		 * every transaction of ours to be closed. */
		pthread_rwlock_unlock(&s->maplock);
		pthread_rwlock_wrlock(&s->maplock);
		mdb_env_set_mapsize(s->env, 0);
		pthread_rwlock_unlock(&s->maplock);
		pthread_rwlock_rdlock(&s->maplock);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn_r);
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->maplock);
		log_error(0, "store", "read-begin path=%s error=\"%s\"", s->path, mdb_strerror(rc));
	}
	return rc;
}

void
store_read_end(MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&store_g->maplock);
}

int
store_user_lookup(MDB_txn *txn, const char *id, uint64_t *user_r)
{
	size_t n = id != NULL ? strlen(id) : 0;
	MDB_val k = {.mv_size = n, .mv_data = (void *)id}, v;
	int rc;

	if (n == 0 || n > STORE_MAX_ID_LEN)
		return STORE_PERMFAIL;
	struct user_rec r;

	rc = mdb_get(txn, store_g->users, &k, &v);
	if (rc != 0)
		return rc;
	if (store_user_decode(v.mv_data, v.mv_size, &r) < 0)
		return STORE_PERMFAIL;
	*user_r = r.user_id;
	return 0;
}

const char *
store_mbox_canon(const char *name)
{
	/* RFC 3501: INBOX is case-insensitive; other names are exact. */
	if (name == NULL || strcasecmp(name, "INBOX") == 0)
		return "INBOX";
	return name;
}

int
store_mbox_lookup(MDB_txn *txn, uint64_t user, const char *name, uint32_t *mbox_r)
{
	size_t n = strlen(name);
	uint8_t key[8 + STORE_MAX_NAME_LEN]; /* n is checked against it below */
	MDB_val k, v;
	int rc;

	if (n == 0 || n > STORE_MAX_NAME_LEN)
		return STORE_NOTFOUND;
	be_put64(key, user);
	memcpy(key + 8, name, n);
	/* "inbox/x" is "INBOX/x": the first component is case-insensitive. */
	if (n >= 5 && strncasecmp(name, "INBOX", 5) == 0 && (n == 5 || name[5] == '/'))
		memcpy(key + 8, "INBOX", 5);
	k.mv_size = 8 + n;
	k.mv_data = key;
	rc = mdb_get(txn, store_g->mboxname, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != 4)
		return STORE_PERMFAIL;
	*mbox_r = be_get32(v.mv_data);
	return 0;
}

int
store_mbox_get(MDB_txn *txn, uint64_t user, uint32_t mbox, struct mbox_rec *r)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	int rc;

	store_key_mbox(key, user, mbox);
	rc = mdb_get(txn, store_g->mbox, &k, &v);
	if (rc != 0)
		return rc;
	return store_mbox_decode(v.mv_data, v.mv_size, r) < 0 ? STORE_PERMFAIL : 0;
}

int
store_quota_get(MDB_txn *txn, uint64_t user, uint64_t *bytes_r, uint64_t *messages_r)
{
	uint8_t key[8];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	int rc;

	be_put64(key, user);
	rc = mdb_get(txn, store_g->quota, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*bytes_r = *messages_r = 0;
		return 0;
	}
	if (rc != 0)
		return rc;
	if (v.mv_size != 16)
		return STORE_PERMFAIL;
	*bytes_r = be_get64(v.mv_data);
	*messages_r = be_get64((const uint8_t *)v.mv_data + 8);
	return 0;
}

/* ---- reads ---- */

int
store_resolve_mailbox(MDB_txn *txn, const char *user_id, const char *mailbox, uint64_t *user_r,
		      uint32_t *mbox_r)
{
	int rc = store_user_lookup(txn, user_id, user_r);

	if (rc != 0)
		return rc;
	return store_mbox_lookup(txn, *user_r, store_mbox_canon(mailbox), mbox_r);
}

void
store_info_fill(struct arena *a, uint32_t uid, const struct msg_rec *r, struct store_msg_info *info)
{
	memset(info, 0, sizeof(*info));
	info->uid = uid;
	info->size = r->size;
	info->internal_date = (time_t)r->internal_date;
	info->save_date = (time_t)r->save_date;
	info->flags = r->flags;
	info->modseq = r->modseq;
	/* v1 records have none: one derived from the body, stable across
	 * reads and the same for every copy (top bit set so it never meets
	 * an allocated one). */
	info->email_id = r->email_id != 0 ? r->email_id : (be_get64(r->hash) | (1ull << 63));
	if (r->kw.n > 0 && a != NULL) {
		const char **kws = arena_alloc(a, r->kw.n * sizeof(*kws));
		size_t pos = 0, kl, i = 0;
		const char *k;
		while (i < r->kw.n && store_kw_next(&r->kw, &pos, &k, &kl) == 1)
			kws[i++] = arena_strndup(a, k, kl);
		info->keywords = kws;
		info->nkeywords = i;
	}
}

int
store_mailbox_list(const char *user_id, const char *mailbox, struct arena *a,
		   struct store_mailbox_info *info_r, struct store_msg_info **msgs_r,
		   size_t *count_r)
{
	struct store_msg_info *list = NULL;
	size_t n = 0;
	struct mbox_rec mr;
	uint64_t user;
	uint32_t mbox;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	int rc;

	memset(info_r, 0, sizeof(*info_r));
	*msgs_r = NULL;
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
	if (rc != 0)
		goto out;
	info_r->uidvalidity = mr.uidvalidity;
	info_r->uidnext = mr.uidnext;
	info_r->highestmodseq = mr.highestmodseq;
	info_r->messages = mr.messages;
	info_r->bytes = mr.bytes;

	/* Straight into the arena: the count is known (and checked). */
	if (mr.messages > 0)
		list = arena_alloc(a, (size_t)mr.messages * sizeof(*list));
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	store_key_msg(key, user, mbox, 0);
	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct msg_rec r;
		if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break;
		if (store_msg_decode(v.mv_data, v.mv_size, &r) < 0 || n >= mr.messages) {
			rc = STORE_PERMFAIL; /* undecodable, or more than counted */
			goto out;
		}
		store_info_fill(a, be_get32((const uint8_t *)k.mv_data + 12), &r, &list[n]);
		n++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc == 0 && n > 0) {
		*msgs_r = list;
		*count_r = n;
	}
	if (rc != 0) {
		memset(info_r, 0, sizeof(*info_r));
		log_error(0, "store", "list-failed user=%s error=\"%s\"", user_id,
			  store_rc_str(rc));
	}
	return store_rc_status(rc);
}

static int
cmp_info_uid(const void *x, const void *y)
{
	const struct store_msg_info *a = x, *b = y;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

static int
cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

int
store_changes_since(const char *user_id, const char *mailbox, uint64_t since, struct arena *a,
		    struct store_msg_info **changed_r, size_t *nchanged_r, uint32_t **vanished_r,
		    size_t *nvanished_r, bool *complete_r)
{
	uint64_t top;

	return store_changes_since_top(user_id, mailbox, since, a, changed_r, nchanged_r,
				       vanished_r, nvanished_r, complete_r, &top);
}

int
store_changes_since_top(const char *user_id, const char *mailbox, uint64_t since, struct arena *a,
			struct store_msg_info **changed_r, size_t *nchanged_r,
			uint32_t **vanished_r, size_t *nvanished_r, bool *complete_r,
			uint64_t *highestmodseq_r)
{
	struct store_msg_info *changed = NULL;
	uint32_t *vanished = NULL;
	size_t nc = 0, cc = 0, nv = 0, vc = 0;
	struct mbox_rec mr;
	uint64_t user;
	uint32_t mbox;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	int rc;

	*changed_r = NULL;
	*nchanged_r = 0;
	*vanished_r = NULL;
	*nvanished_r = 0;
	*complete_r = true;
	*highestmodseq_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_resolve_mailbox(txn, user_id, mailbox, &user, &mbox);
	if (rc == MDB_NOTFOUND) {
		store_read_end(txn);
		return strcmp(store_mbox_canon(mailbox), "INBOX") == 0 ? STORE_OK : STORE_NOTFOUND;
	}
	if (rc == 0)
		rc = store_mbox_get(txn, user, mbox, &mr);
	if (rc == MDB_NOTFOUND)
		rc = STORE_PERMFAIL;
	if (rc != 0)
		goto out;
	*complete_r = since >= mr.vanished_floor;
	*highestmodseq_r = mr.highestmodseq;
	if (since == UINT64_MAX)
		goto out;

	uint8_t key[STORE_MODSEQ_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	store_key_modseq(key, user, mbox, since + 1);
	if ((rc = mdb_cursor_open(txn, store_g->modseq, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *vp = v.mv_data;
		if (k.mv_size != STORE_MODSEQ_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break;
		if (v.mv_size != 4 && v.mv_size != 5) {
			rc = STORE_PERMFAIL;
			break;
		}
		uint32_t uid = be_get32(vp);
		int kind = v.mv_size == 5 ? vp[4] : STORE_MODSEQ_LIVE;
		if (kind == STORE_MODSEQ_EXPUNGED) {
			if (nv == vc) {
				vc = vc == 0 ? 64 : vc * 2;
				vanished = xrealloc(vanished, vc * sizeof(*vanished));
			}
			vanished[nv++] = uid;
			continue;
		}
		if (kind != STORE_MODSEQ_LIVE) {
			rc = STORE_PERMFAIL;
			break;
		}
		uint8_t mkey[STORE_MSG_KEY_LEN];
		MDB_val mk = {.mv_size = sizeof(mkey), .mv_data = mkey}, mv;
		struct msg_rec r;
		store_key_msg(mkey, user, mbox, uid);
		if ((rc = mdb_get(txn, store_g->msg, &mk, &mv)) != 0) {
			if (rc == MDB_NOTFOUND)
				rc = STORE_PERMFAIL; /* an entry without its message */
			break;
		}
		if (store_msg_decode(mv.mv_data, mv.mv_size, &r) < 0) {
			rc = STORE_PERMFAIL;
			break;
		}
		if (nc == cc) {
			cc = cc == 0 ? 64 : cc * 2;
			changed = xrealloc(changed, cc * sizeof(*changed));
		}
		store_info_fill(a, uid, &r, &changed[nc++]);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc == 0) {
		if (nc > 0) {
			qsort(changed, nc, sizeof(*changed), cmp_info_uid);
			*changed_r = arena_memdup(a, changed, nc * sizeof(*changed));
			*nchanged_r = nc;
		}
		if (nv > 0) {
			qsort(vanished, nv, sizeof(*vanished), cmp_u32);
			*vanished_r = arena_memdup(a, vanished, nv * sizeof(*vanished));
			*nvanished_r = nv;
		}
	} else {
		log_error(0, "store", "changes-failed user=%s error=\"%s\"", user_id,
			  store_rc_str(rc));
	}
	free(changed);
	free(vanished);
	return store_rc_status(rc);
}

/* The message's record (borrowed from txn). */
static int
msg_lookup(MDB_txn *txn, const char *user_id, const char *mailbox, uint32_t uid, struct msg_rec *r)
{
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	uint64_t user;
	uint32_t mbox;
	int rc = store_resolve_mailbox(txn, user_id, mailbox, &user, &mbox);

	if (rc != 0)
		return rc;
	store_key_msg(key, user, mbox, uid);
	if ((rc = mdb_get(txn, store_g->msg, &k, &v)) != 0)
		return rc;
	return store_msg_decode(v.mv_data, v.mv_size, r) < 0 ? STORE_PERMFAIL : 0;
}

int
store_txn_msg_read_range(MDB_txn *txn, const struct msg_rec *r, uint64_t offset, uint64_t len,
			 struct buf *out)
{
	if (offset >= r->size)
		return 0;
	if (len > r->size - offset)
		len = r->size - offset;
	/* The trace prefix first, then the body's part of the range. */
	if (offset < r->trace_len) {
		uint64_t t = r->trace_len - offset < len ? r->trace_len - offset : len;
		if (buf_append(out, r->trace + offset, (size_t)t) < 0)
			return STORE_TEMPFAIL;
		offset += t;
		len -= t;
	}
	if (len > 0)
		return store_blob_read_range(txn, r->hash, r->size - r->trace_len,
					     offset - r->trace_len, len, out);
	return 0;
}

int
store_message_read_range(const char *user_id, const char *mailbox, uint32_t uid, uint64_t offset,
			 uint64_t len, struct buf *out)
{
	size_t len0 = out->len;
	struct msg_rec r;
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = msg_lookup(txn, user_id, mailbox, uid, &r)) == 0)
		rc = store_txn_msg_read_range(txn, &r, offset, len, out);
	store_read_end(txn);
	if (rc != 0 && out->len != len0) {
		out->len = len0;
		out->data[len0] = '\0';
	}
	if (rc != 0 && rc != MDB_NOTFOUND && rc != STORE_TEMPFAIL)
		log_error(0, "store", "read-failed user=%s uid=%u error=\"%s\"", user_id, uid,
			  store_rc_str(rc));
	return store_rc_status(rc);
}

int
store_txn_msg_mime(MDB_txn *txn, const struct msg_rec *r, struct arena *a, const void **mime_r,
		   size_t *mime_len_r)
{
	const void *p;
	size_t plen;
	struct buf body;
	int rc = store_blob_mime(txn, r->hash, &p, &plen);

	if (rc == 0) {
		*mime_r = arena_memdup(a, p, plen);
		*mime_len_r = plen;
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return rc;
	/* A body stored before format 2 (or whose structure was too big to
	 * keep): parse it now rather than fail. */
	buf_init(&body, SIZE_MAX);
	rc = store_blob_read(txn, r->hash, r->size - r->trace_len, &body);
	if (rc == 0) {
		struct arena *pa = arena_new(0);
		struct mime_part *root;
		struct buf enc;
		buf_init(&enc, 64u << 20);
		mime_parse(pa, NULL, body.data != NULL ? body.data : "", body.len, &root);
		if (mime_encode(root, &enc) != 0) {
			rc = STORE_TEMPFAIL;
		} else {
			*mime_r = arena_memdup(a, enc.data, enc.len);
			*mime_len_r = enc.len;
		}
		buf_free(&enc);
		arena_destroy(&pa);
	}
	buf_free(&body);
	return rc;
}

int
store_message_mime(const char *user_id, const char *mailbox, uint32_t uid, struct arena *a,
		   const void **mime_r, size_t *mime_len_r, size_t *trace_len_r)
{
	struct msg_rec r;
	MDB_txn *txn;
	int rc;

	*mime_r = NULL;
	*mime_len_r = 0;
	*trace_len_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = msg_lookup(txn, user_id, mailbox, uid, &r)) == 0) {
		*trace_len_r = r.trace_len;
		rc = store_txn_msg_mime(txn, &r, a, mime_r, mime_len_r);
	}
	store_read_end(txn);
	if (rc != 0) {
		*mime_r = NULL;
		*mime_len_r = 0;
	}
	return store_rc_status(rc);
}

int
store_message_read(const char *user_id, const char *mailbox, uint32_t uid, struct buf *out)
{
	return store_message_read_range(user_id, mailbox, uid, 0, UINT64_MAX, out);
}

int
store_usage(const char *user_id, uint64_t *bytes_r, uint64_t *messages_r)
{
	MDB_txn *txn;
	uint64_t user;
	int rc;

	*bytes_r = *messages_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_user_lookup(txn, user_id, &user);
	if (rc == 0)
		rc = store_quota_get(txn, user, bytes_r, messages_r);
	store_read_end(txn);
	if (rc == MDB_NOTFOUND)
		return STORE_OK;
	return store_rc_status(rc);
}

int
store_quota_check(uint64_t limit_bytes, uint64_t limit_msgs, uint64_t used_bytes,
		  uint64_t used_msgs, uint64_t add_bytes, uint64_t add_msgs)
{
	if (limit_bytes != 0) {
		if (add_bytes > limit_bytes)
			return STORE_TOOBIG;
		/* used may already be above a lowered limit: no wrap-around */
		if (used_bytes > limit_bytes || add_bytes > limit_bytes - used_bytes)
			return STORE_OVERQUOTA;
	}
	if (limit_msgs != 0 && (used_msgs > limit_msgs || add_msgs > limit_msgs - used_msgs))
		return STORE_OVERQUOTA;
	return STORE_OK;
}
