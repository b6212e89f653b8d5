/*
 * store_backup.c - hot backup, verification and verified restore of the
 * mail store, shared by `ternd store backup|restore` (store_tool.c) and
 * tern-admind's backup jobs (admin/admin_backups.c); docs/store-tool.md
 * describes the on-disk result.
 *
 * backup: a copy (mdb_env_copy2, compacted by default) of one read
 * snapshot into DIR/mail, fsynced, then checked, and DIR/MANIFEST saying
 * format, time, origin and the check's result. The copy runs on a helper
 * thread so that the caller's thread can report progress (bytes written
 * so far) without LMDB offering a callback. In a process that has the
 * store open (tern-admind) the copy is taken from that environment: LMDB
 * forbids opening one environment twice in a process (closing the second
 * handle would drop the first one's fcntl locks).
 *
 * restore: copies DIR/mail into a staging directory next to the store,
 * checks that copy, refuses while any process has the store open (the
 * fcntl lock LMDB holds on lock.mdb), then swaps it in with one atomic
 * rename and keeps the old store as mail.replaced-TIMESTAMP. Nothing is
 * ever deleted but the staging copy of a refused restore.
 *
 * How it fails: STORE_NOTALLOWED (the target exists and is not empty, or
 * the store is in use), STORE_PERMFAIL (the backup is not usable: no
 * manifest, failed check, wrong format), STORE_TEMPFAIL (system or LMDB
 * error); each with a malloc'd *error_r naming the path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"

#define MANIFEST_MAGIC "tern-store-backup 1"
#define PROGRESS_POLL_MS 250

static int
fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* "20260101T000000Z" */
void
store_backup_stamp(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y%m%dT%H%M%SZ", &tm);
}

/* 1 if path is a directory with entries, 0 if empty or absent, -1 error. */
static int
dir_nonempty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int r = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			r = 1;
			break;
		}
	}
	closedir(d);
	return r;
}

static int
write_file_synced(const char *path, const char *text)
{
	char *tmp = xstrfmt("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = strlen(text), off = 0;
	int rc = -1;

	if (fd < 0)
		goto out;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto close;
		off += (size_t)n;
	}
	if (fsync(fd) == 0)
		rc = 0;
close:
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -1;
out:
	free(tmp);
	return rc;
}

/* ---- the copy, on a helper thread ---- */

struct copy_run {
	MDB_env *env;
	const char *dst;
	unsigned flags;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done; /* under lock */
	int rc;
};

static void *
copy_thread(void *arg)
{
	struct copy_run *c = arg;
	int rc = mdb_env_copy2(c->env, c->dst, c->flags);

	pthread_mutex_lock(&c->lock);
	c->rc = rc;
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* mdb_env_copy2 of env into dst; progress every PROGRESS_POLL_MS with the
 * bytes written so far of an estimated total (the pages in use). */
static int
copy_env(MDB_env *env, const char *dst, unsigned flags, const struct store_backup_opts *o)
{
	struct copy_run c = {.env = env, .dst = dst, .flags = flags};
	char *data = xstrfmt("%s/data.mdb", dst);
	uint64_t total = 0;
	MDB_envinfo info;
	MDB_stat st;
	pthread_t t;
	int rc;

	if (mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &st) == 0)
		total = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	if ((rc = pthread_create(&t, NULL, copy_thread, &c)) != 0) {
		free(data);
		return rc;
	}
	pthread_mutex_lock(&c.lock);
	while (!c.done) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += PROGRESS_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c.cond, &c.lock, &ts);
		if (!c.done && o != NULL && o->progress != NULL) {
			struct stat fst;
			uint64_t done = stat(data, &fst) == 0 ? (uint64_t)fst.st_size : 0;
			pthread_mutex_unlock(&c.lock);
			o->progress(o->arg, "copy", done, total > done ? total : done);
			pthread_mutex_lock(&c.lock);
		}
	}
	pthread_mutex_unlock(&c.lock);
	pthread_join(t, NULL);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	free(data);
	return c.rc;
}

int
store_backup(const char *state_dir, const char *dir, const struct store_backup_opts *o,
	     struct store_backup_info *r, char **error_r)
{
	char *src = xstrfmt("%s/mail", state_dir);
	char *dst = xstrfmt("%s/mail", dir);
	char *data = xstrfmt("%s/data.mdb", dst);
	char *manifest = xstrfmt("%s/MANIFEST", dir);
	struct store_check_stats st;
	char *err = NULL, *text = NULL, stamp[32];
	MDB_env *env = NULL;
	bool own_env = false, maplocked = false;
	struct store_state *s = store_g;
	int ret = STORE_TEMPFAIL, rc, n;

	*error_r = NULL;
	memset(r, 0, sizeof(*r));
	n = dir_nonempty(dir);
	if (n != 0) {
		if (n > 0) {
			*error_r =
			    xstrfmt("%s is not empty; back up into a new or empty directory", dir);
			ret = STORE_NOTALLOWED;
		} else {
			*error_r = xstrfmt("%s: %s", dir, strerror(errno));
		}
		goto out;
	}
	/* The source first: a failed backup leaves no directory behind. */
	if (s != NULL && strcmp(s->path, src) == 0) {
		/* Adopt a map grown by another process before copying. */
		MDB_txn *probe;
		if ((rc = store_read_begin(&probe)) != 0) {
			*error_r = xstrfmt("%s: %s", src, store_rc_str(rc));
			goto out;
		}
		store_read_end(probe);
		pthread_rwlock_rdlock(&s->maplock);
		maplocked = true;
		env = s->env;
	} else {
		if (store_env_open_rdonly(src, false, &env, &err) < 0) {
			*error_r = err;
			err = NULL;
			goto out;
		}
		own_env = true;
	}
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || mkdir(dst, 0700) < 0) {
		*error_r = xstrfmt("cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	time_t started = time(NULL);
	/* One read snapshot, written compacted: free pages dropped, so the
	 * copy is as small as the live data. */
	rc = copy_env(env, dst, o->no_compact ? 0 : MDB_CP_COMPACT, o);
	if (maplocked) {
		pthread_rwlock_unlock(&s->maplock);
		maplocked = false;
	}
	if (own_env) {
		mdb_env_close(env);
		own_env = false;
	}
	if (rc != 0) {
		*error_r = xstrfmt("copying %s to %s failed: %s", src, dst, mdb_strerror(rc));
		goto out;
	}
	if (fsync_path(data) < 0 || fsync_path(dst) < 0 || fsync_path(dir) < 0) {
		*error_r = xstrfmt("cannot sync %s: %s", data, strerror(errno));
		goto out;
	}
	if (o->progress != NULL)
		o->progress(o->arg, "check", 0, 0);
	/* The copy is checked, not the live store: what the manifest vouches
	 * for is exactly what a restore would put back. */
	n = store_check_path(dst, true, o->problem, o->problem_arg, &st, &err);
	if (n < 0) {
		*error_r = xstrfmt("the copy in %s does not check: %s", dst, err);
		goto out;
	}
	store_backup_stamp(started, stamp);
	text = xstrfmt("%s\nformat %u\ncreated %s %lld\nsource %s\n%s%s%s"
		       "users %" PRIu64 "\nmailboxes %" PRIu64 "\nmessages %" PRIu64
		       "\nbodies %" PRIu64 "\ncheck %s %d\n",
		       MANIFEST_MAGIC, st.format, stamp, (long long)started, src,
		       o->origin != NULL ? "origin " : "", o->origin != NULL ? o->origin : "",
		       o->origin != NULL ? "\n" : "", st.users, st.mailboxes, st.messages,
		       st.bodies, n == 0 ? "ok" : "problems", n);
	if (write_file_synced(manifest, text) < 0 || fsync_path(dir) < 0) {
		*error_r = xstrfmt("cannot write %s: %s", manifest, strerror(errno));
		goto out;
	}
	r->format = st.format;
	r->created = started;
	r->users = st.users;
	r->mailboxes = st.mailboxes;
	r->messages = st.messages;
	r->bodies = st.bodies;
	r->problems = n;
	r->check_ok = n == 0;
	snprintf(r->origin, sizeof(r->origin), "%s", o->origin != NULL ? o->origin : "");
	ret = STORE_OK;
out:
	if (maplocked)
		pthread_rwlock_unlock(&s->maplock);
	if (own_env)
		mdb_env_close(env);
	free(err);
	free(text);
	free(src);
	free(dst);
	free(data);
	free(manifest);
	return ret;
}

/* ---- manifest and verification ---- */

int
store_backup_manifest(const char *dir, struct store_backup_info *r, char **error_r)
{
	char *path = xstrfmt("%s/MANIFEST", dir);
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	bool magic = false, have_format = false;

	*error_r = NULL;
	memset(r, 0, sizeof(*r));
	r->problems = -1;
	if (f == NULL) {
		*error_r = xstrfmt("%s: %s (not a Tern backup?)", path, strerror(errno));
		free(path);
		return errno == ENOENT ? STORE_NOTFOUND : STORE_TEMPFAIL;
	}
	for (int lineno = 0; getline(&line, &cap, f) > 0; lineno++) {
		unsigned fmt;
		long long t;
		char stamp[32];
		uint64_t v;
		int np;

		line[strcspn(line, "\n")] = '\0';
		if (lineno == 0)
			magic = strcmp(line, MANIFEST_MAGIC) == 0;
		else if (sscanf(line, "format %u", &fmt) == 1) {
			r->format = fmt;
			have_format = true;
		} else if (sscanf(line, "created %31s %lld", stamp, &t) == 2)
			r->created = (time_t)t;
		else if (strncmp(line, "origin ", 7) == 0)
			snprintf(r->origin, sizeof(r->origin), "%s", line + 7);
		else if (sscanf(line, "users %" SCNu64, &v) == 1)
			r->users = v;
		else if (sscanf(line, "mailboxes %" SCNu64, &v) == 1)
			r->mailboxes = v;
		else if (sscanf(line, "messages %" SCNu64, &v) == 1)
			r->messages = v;
		else if (sscanf(line, "bodies %" SCNu64, &v) == 1)
			r->bodies = v;
		else if (strncmp(line, "check ", 6) == 0) {
			r->check_ok = strcmp(line, "check ok 0") == 0;
			r->problems = sscanf(line + 6, "%*s %d", &np) == 1 ? np : -1;
		}
	}
	free(line);
	fclose(f);
	if (!magic || !have_format) {
		*error_r = xstrfmt("%s is not a Tern backup manifest", path);
		free(path);
		return STORE_PERMFAIL;
	}
	free(path);
	return STORE_OK;
}

int
store_backup_verify(const char *dir, store_backup_problem_fn *problem, void *arg,
		    struct store_backup_info *r, char **error_r)
{
	struct store_check_stats st;
	char *mail = xstrfmt("%s/mail", dir);
	char *err = NULL;
	int rc = store_backup_manifest(dir, r, error_r);

	if (rc != STORE_OK) {
		free(mail);
		return rc;
	}
	/* nolock: the copy is private to the backup directory. */
	int n = store_check_path(mail, true, problem, arg, &st, &err);
	if (n < 0) {
		*error_r = xstrfmt("%s does not check: %s", mail, err);
		free(err);
		free(mail);
		return STORE_PERMFAIL;
	}
	free(mail);
	r->problems = n;
	if (n == 0 && st.format != r->format) {
		*error_r = xstrfmt("%s/MANIFEST says format %u but the copy is format %u", dir,
				   r->format, st.format);
		r->check_ok = false;
		return STORE_PERMFAIL;
	}
	r->check_ok = n == 0;
	r->users = st.users;
	r->mailboxes = st.mailboxes;
	r->messages = st.messages;
	r->bodies = st.bodies;
	return STORE_OK;
}

/* ---- restore ---- */

/* Copies src to dst (created, must not exist) and fsyncs it. */
static int
copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = -1, rc = -1;
	size_t cap = 1u << 20;
	char *chunk = NULL;

	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		goto done;
	chunk = xmalloc(cap);
	for (;;) {
		ssize_t n = read(in, chunk, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto done;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, chunk + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto done;
			off += w;
		}
	}
	rc = fsync(out);
done:
	free(chunk);
	if (out >= 0 && close(out) < 0)
		rc = -1;
	close(in);
	return rc;
}

/* Whether a process has the environment in dir open: LMDB holds a shared
 * fcntl lock on byte 0 of lock.mdb for as long as an environment is open,
 * and a dead process holds none. 0 free (*fd_r keeps our exclusive lock
 * until it is closed, so no ternd opens the old store meanwhile), 1 in use
 * (*pid_r the holder), -1 error. The caller's process must not have the
 * store open itself (its own lock would not show, and closing fd would
 * drop it). */
static int
store_in_use(const char *dir, int *fd_r, pid_t *pid_r)
{
	char *lock = xstrfmt("%s/lock.mdb", dir);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	int fd = open(lock, O_RDWR | O_CLOEXEC);

	*fd_r = -1;
	*pid_r = 0;
	free(lock);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fcntl(fd, F_SETLK, &fl) == 0) {
		*fd_r = fd;
		return 0;
	}
	if (errno != EAGAIN && errno != EACCES) {
		close(fd);
		return -1;
	}
	fl.l_type = F_WRLCK;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
		*pid_r = fl.l_pid;
	close(fd);
	return 1;
}

static void
remove_staging(const char *staging)
{
	char *data = xstrfmt("%s/data.mdb", staging);

	unlink(data);
	free(data);
	rmdir(staging);
}

int
store_restore(const char *state_dir, const char *dir, const struct store_backup_opts *o,
	      struct store_backup_info *r, char **replaced_r, char **error_r)
{
	char *bdir = xstrfmt("%s/mail", dir);
	char *bdata = xstrfmt("%s/data.mdb", bdir);
	char *target = xstrfmt("%s/mail", state_dir);
	char *staging = NULL, *sdata = NULL, *replaced = NULL, *err = NULL, stamp[32];
	struct store_check_stats st;
	struct stat sst;
	int ret = STORE_TEMPFAIL, lockfd = -1, n, rc;
	pid_t pid;

	*error_r = NULL;
	*replaced_r = NULL;
	if (store_g != NULL) {
		*error_r = xstrdup("restore: this process has the store open; close it first");
		free(bdir);
		free(bdata);
		free(target);
		return STORE_NOTALLOWED;
	}
	if ((rc = store_backup_manifest(dir, r, &err)) != STORE_OK) {
		*error_r = err;
		err = NULL;
		ret = rc == STORE_NOTFOUND ? STORE_PERMFAIL : rc;
		goto out;
	}
	if (!r->check_ok) {
		*error_r = xstrfmt("%s/MANIFEST says the backup did not pass its check", dir);
		ret = STORE_PERMFAIL;
		goto out;
	}
	if (stat(bdata, &sst) < 0) {
		*error_r = xstrfmt("%s: %s", bdata, strerror(errno));
		ret = STORE_PERMFAIL;
		goto out;
	}
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
		*error_r = xstrfmt("cannot create %s: %s", state_dir, strerror(errno));
		goto out;
	}
	n = store_in_use(target, &lockfd, &pid);
	if (n < 0) {
		*error_r = xstrfmt("%s/lock.mdb: %s", target, strerror(errno));
		goto out;
	}
	if (n > 0) {
		*error_r = xstrfmt("%s is in use by process %ld (a running ternd?); stop it first, "
				   "nothing was changed",
				   target, (long)pid);
		ret = STORE_NOTALLOWED;
		goto out;
	}

	/* Copy first, check the copy: what is checked is what goes in. */
	store_backup_stamp(time(NULL), stamp);
	staging = xstrfmt("%s/mail.restore-%s", state_dir, stamp);
	int mk, tries = 0;
	while ((mk = mkdir(staging, 0700)) < 0 && errno == EEXIST && ++tries < 100) {
		free(staging);
		staging = xstrfmt("%s/mail.restore-%s-%d", state_dir, stamp, tries);
	}
	sdata = xstrfmt("%s/data.mdb", staging);
	if (mk < 0) {
		*error_r = xstrfmt("cannot create %s: %s", staging, strerror(errno));
		free(staging);
		staging = NULL;
		goto out;
	}
	if (o != NULL && o->progress != NULL)
		o->progress(o->arg, "copy", 0, (uint64_t)sst.st_size);
	if (copy_file(bdata, sdata) < 0 || fsync_path(staging) < 0) {
		*error_r = xstrfmt("copying %s to %s failed: %s", bdata, sdata, strerror(errno));
		remove_staging(staging);
		goto out;
	}
	if (o != NULL && o->progress != NULL)
		o->progress(o->arg, "check", 0, 0);
	n = store_check_path(staging, true, o != NULL ? o->problem : NULL,
			     o != NULL ? o->problem_arg : NULL, &st, &err);
	if (n != 0) {
		if (n < 0)
			*error_r = xstrfmt("the backup %s is not usable: %s", bdir, err);
		else
			*error_r = xstrfmt("the backup %s has %d problem%s; nothing was changed",
					   bdir, n, n == 1 ? "" : "s");
		remove_staging(staging);
		ret = STORE_PERMFAIL;
		goto out;
	}
	if (st.format != r->format) {
		*error_r = xstrfmt("%s/MANIFEST says format %u but the backup is format %u; "
				   "nothing was changed",
				   dir, r->format, st.format);
		remove_staging(staging);
		ret = STORE_PERMFAIL;
		goto out;
	}
	/* ternd drops to [server] user: the store must stay theirs. */
	struct stat own;
	if (stat(state_dir, &own) == 0 && geteuid() == 0 &&
	    (chown(staging, own.st_uid, own.st_gid) < 0 ||
	     chown(sdata, own.st_uid, own.st_gid) < 0)) {
		*error_r = xstrfmt("cannot give %s to uid %ld: %s", staging, (long)own.st_uid,
				   strerror(errno));
		remove_staging(staging);
		goto out;
	}

	struct stat tst;
	if (stat(target, &tst) == 0) {
		/* Never deleted: the current store is kept beside. */
		replaced = xstrfmt("%s.replaced-%s", target, stamp);
		for (int i = 1; access(replaced, F_OK) == 0; i++) {
			free(replaced);
			replaced = xstrfmt("%s.replaced-%s-%d", target, stamp, i);
		}
		/* One atomic exchange, so the state dir never lacks a store
		 * (a missing one would be created empty at the next start). */
		if (renameat2(AT_FDCWD, staging, AT_FDCWD, target, RENAME_EXCHANGE) < 0) {
			*error_r = xstrfmt("cannot swap %s and %s: %s; nothing was changed",
					   staging, target, strerror(errno));
			remove_staging(staging);
			goto out;
		}
		if (rename(staging, replaced) < 0) {
			*error_r =
			    xstrfmt("the backup is in place at %s, but the previous store is "
				    "at %s (renaming it to %s failed: %s)",
				    target, staging, replaced, strerror(errno));
			goto out;
		}
	} else if (rename(staging, target) < 0) {
		*error_r = xstrfmt("cannot rename %s to %s: %s", staging, target, strerror(errno));
		remove_staging(staging);
		goto out;
	}
	if (fsync_path(state_dir) < 0) {
		*error_r = xstrfmt("cannot sync %s: %s", state_dir, strerror(errno));
		goto out;
	}
	r->users = st.users;
	r->mailboxes = st.mailboxes;
	r->messages = st.messages;
	r->bodies = st.bodies;
	*replaced_r = replaced;
	replaced = NULL;
	ret = STORE_OK;
out:
	if (lockfd >= 0)
		close(lockfd);
	free(err);
	free(bdir);
	free(bdata);
	free(target);
	free(staging);
	free(sdata);
	free(replaced);
	return ret;
}
