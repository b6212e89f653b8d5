/*
 * store_readonly.c - opens the store's environment read-only, for a
 * process that only looks (tern-admind's health check and queue metrics)
 * while ternd owns the writes: MDB_RDONLY, no writer thread, no
 * migration, no database created. The read helpers (store_read_begin,
 * queue_stats...) work on it as on a normal open; anything that writes
 * fails, since there is no writer.
 *
 * Also store_open_existing(): the read-write open for tools and
 * tern-admind, which must never create or migrate a store.
 *
 * How it fails: -1 with a message when the environment does not exist
 * yet (ternd never ran), a database is missing, or the format is newer
 * than this build; the caller may simply try again later.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"

static int
open_dbs_readonly(struct store_state *s, char **error_r)
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
	    {"queue", offsetof(struct store_state, queue)},
	    {"queue_rcpt", offsetof(struct store_state, queue_rcpt)},
	    {"queue_due", offsetof(struct store_state, queue_due)},
	};
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0) {
		*error_r = xstrfmt("store: %s: cannot begin a read transaction: %s", s->path,
				   mdb_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);
		if ((rc = mdb_dbi_open(txn, dbs[i].name, 0, dbi)) != 0) {
			*error_r = xstrfmt("store: %s: database %s: %s", s->path, dbs[i].name,
					   mdb_strerror(rc));
			mdb_txn_abort(txn);
			return -1;
		}
	}
	MDB_val k = {.mv_size = 6, .mv_data = (void *)"format"}, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc != 0 || v.mv_size != 4 || be_get32(v.mv_data) != STORE_FORMAT) {
		*error_r = xstrfmt("store: %s: format version is not %u (run ternd once)", s->path,
				   STORE_FORMAT);
		mdb_txn_abort(txn);
		return -1;
	}
	/* Committing a read-only transaction is what makes the handles
	 * usable by later transactions. */
	if ((rc = mdb_txn_commit(txn)) != 0) {
		*error_r = xstrfmt("store: %s: %s", s->path, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

int
store_open_readonly(const struct config *cfg, char **error_r)
{
	struct store_state *s;
	int rc;

	*error_r = NULL;
	if (store_g != NULL) {
		*error_r = xstrdup("store: already open");
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->path = xstrfmt("%s/mail", cfg->state_dir);
	pthread_rwlock_init(&s->maplock, NULL);
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	if ((rc = mdb_env_create(&s->env)) != 0) {
		*error_r = xstrfmt("store: %s: %s", s->path, mdb_strerror(rc));
		goto fail;
	}
	/* The same settings as the writer's process (notes 4.1: never mix
	 * flags); map size 0 adopts the size the file has. */
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_maxreaders(s->env, 512);
	if ((rc = mdb_env_open(s->env, s->path, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
		*error_r =
		    xstrfmt("store: cannot open %s read-only: %s", s->path, mdb_strerror(rc));
		goto fail;
	}
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0)
		s->map_size = info.me_mapsize;
	if (open_dbs_readonly(s, error_r) < 0)
		goto fail;
	store_g = s;
	return 0;
fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->maplock);
	pthread_cond_destroy(&s->qcond);
	pthread_mutex_destroy(&s->qlock);
	free(s->path);
	free(s);
	return -1;
}

int
store_env_sizes(uint64_t *file_bytes_r, uint64_t *map_bytes_r, uint64_t *used_bytes_r)
{
	struct store_state *s = store_g;
	MDB_envinfo info;
	MDB_stat st;

	if (s == NULL)
		return STORE_TEMPFAIL;
	pthread_rwlock_rdlock(&s->maplock);
	int rc = mdb_env_info(s->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(s->env, &st);
	pthread_rwlock_unlock(&s->maplock);
	if (rc != 0)
		return store_rc_status(rc);
	char *data = xstrfmt("%s/data.mdb", s->path);
	struct stat fst;
	*file_bytes_r = stat(data, &fst) == 0 ? (uint64_t)fst.st_size : 0;
	free(data);
	*map_bytes_r = (uint64_t)info.me_mapsize;
	*used_bytes_r = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	return STORE_OK;
}

int
store_read_probe(char **error_r)
{
	MDB_txn *txn;
	int rc = store_read_begin(&txn);

	if (rc != 0) {
		*error_r = xstrfmt("read transaction: %s", store_rc_str(rc));
		return -1;
	}
	store_read_end(txn);
	return 0;
}

int
store_write_probe(uint64_t min_free, uint64_t *free_r, char **error_r)
{
	struct statvfs vfs;
	MDB_txn *txn;

	*free_r = 0;
	if (store_g == NULL) {
		*error_r = xstrdup("store: not open");
		return -1;
	}
	int rc = mdb_txn_begin(store_g->env, NULL, 0, &txn);
	if (rc != 0) {
		*error_r = xstrfmt("write transaction: %s", mdb_strerror(rc));
		return -1;
	}
	mdb_txn_abort(txn);
	if (statvfs(store_g->path, &vfs) < 0) {
		*error_r = xstrfmt("%s: %s", store_g->path, strerror(errno));
		return -1;
	}
	*free_r = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (*free_r <= min_free) {
		*error_r = xstrfmt("%s: only %llu bytes free on its file system", store_g->path,
				   (unsigned long long)*free_r);
		return -1;
	}
	return 0;
}

int
store_open_existing(const struct config *cfg, char **error_r)
{
	char *path, *err = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	uint32_t format = 0;
	int rc;

	*error_r = NULL;
	if (store_g != NULL) {
		*error_r = xstrdup("store: already open");
		return -1;
	}
	path = xstrfmt("%s/mail", cfg->state_dir);
	/* A look first, read-only: store_open() would create a missing store
	 * and migrate an old one, which only ternd may do. The environment
	 * is closed again before store_open() (one MDB_env per process). */
	if (store_env_open_rdonly(path, false, &env, &err) < 0) {
		*error_r = err;
		free(path);
		return -1;
	}
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(env, 0);
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	}
	if (rc == 0) {
		MDB_val k = {.mv_size = 6, .mv_data = (void *)"format"}, v;
		if (mdb_dbi_open(txn, "meta", 0, &meta) == 0 && mdb_get(txn, meta, &k, &v) == 0 &&
		    v.mv_size == 4)
			format = be_get32(v.mv_data);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (format != STORE_FORMAT) {
		*error_r =
		    xstrfmt("%s: store format %u, this build writes %u: start ternd once (it "
			    "migrates older formats) or use a matching ternd",
			    path, format, STORE_FORMAT);
		free(path);
		return -1;
	}
	free(path);
	return store_open(cfg, error_r);
}
