/*
 * store_existing.c - opening an existing store from a process that is
 * not ternd: store_open_existing(), the read-write open for `ternd store`
 * tools and tern-admind, which must never create or migrate a store
 * (ternd does that); and the health probes (store_read_probe,
 * store_write_probe).
 *
 * How it fails: -1 with a message when the environment does not exist
 * yet (ternd never ran), a database is missing, or the format is not
 * this build's; the caller may simply try again later.
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
