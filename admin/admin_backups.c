/*
 * admin_backups.c - backups in tern-admind (docs/openapi.yaml, tag
 * backups): start a hot backup, list, verify, restore, and scheduled
 * backups with retention ([backup] dir, schedule, keep).
 *
 * Each backup is a directory [backup] dir/ID (ID = UTC time of the start
 * and its origin, "20260101T030000Z-manual") written by store_backup()
 * (storage/store_admin.h: a compacted mdb_env_copy2 of one snapshot,
 * checked, with a MANIFEST); a later verify writes ID/VERIFIED ("ok
 * TIME" or "problems N TIME"). Only scheduled backups are ever removed by
 * tern-admind: after each scheduled backup, the oldest scheduled ones
 * beyond `keep`. One backup runs at a time.
 *
 * Restore needs ternd stopped (its control socket must not answer) and
 * no process with the store open: tern-admind closes its own handle for
 * the time of the restore (admin_store_lock_closed), which waits for
 * running mailbox jobs.
 * How it fails: 404 unknown backup, 409 a backup already running, a
 * restore while ternd runs or of a backup that did not pass its check;
 * a job that fails says why and leaves no half-written backup behind.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/admin_job.h"
#include "core/compat.h"
#include "core/control.h"
#include "core/log.h"
#include "storage/store_admin.h"

#define ID_MAX 100
#define PING_TIMEOUT_MS 2000
#define PROBLEMS_SHOWN 20
#define SCHED_RECHECK_S 30 /* config reloads reach the scheduler within this */

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;
static bool backup_running; /* guarded by run_lock */

/* [backup] dir, or STATE_DIR/backups; malloc'd. */
static char *
backup_root(const struct config *cfg)
{
	char *s;

	if (cfg->backup_dir != NULL && cfg->backup_dir[0] != '\0')
		return xstrdup(cfg->backup_dir);
	xasprintf(&s, "%s/backups", cfg->state_dir);
	return s;
}

static bool
valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > ID_MAX || id[0] == '.')
		return false;
	for (const char *p = id; *p != '\0'; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Reads DIR/VERIFIED: 1 ok, 0 problems, -1 none; *at_r its time. */
static int
read_verified(const char *dir, time_t *at_r)
{
	char *path, line[128];
	long long at = 0;
	int n = -1, ret = -1;

	*at_r = 0;
	xasprintf(&path, "%s/VERIFIED", dir);
	FILE *f = fopen(path, "re");
	free(path);
	if (f == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "ok %lld", &at) == 1)
			ret = 1;
		else if (sscanf(line, "problems %d %lld", &n, &at) == 2)
			ret = 0;
	}
	fclose(f);
	*at_r = (time_t)at;
	return ret;
}

static void
write_verified(const char *dir, int problems)
{
	char *path, *tmp;

	xasprintf(&path, "%s/VERIFIED", dir);
	xasprintf(&tmp, "%s/VERIFIED.tmp", dir);
	FILE *f = fopen(tmp, "we");
	if (f != NULL) {
		if (problems == 0)
			fprintf(f, "ok %lld\n", (long long)time(NULL));
		else
			fprintf(f, "problems %d %lld\n", problems, (long long)time(NULL));
		if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0)
			rename(tmp, path);
		else
			unlink(tmp);
	}
	free(path);
	free(tmp);
}

/* Removes a backup directory: only the files a backup consists of, so
 * that a directory holding anything else is left alone (and logged). */
static int
remove_backup(const char *dir)
{
	static const char *const files[] = {"mail/data.mdb", "mail/lock.mdb", "MANIFEST",
					    "MANIFEST.tmp",  "VERIFIED",      "VERIFIED.tmp"};
	char *p;
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		xasprintf(&p, "%s/%s", dir, files[i]);
		unlink(p);
		free(p);
	}
	xasprintf(&p, "%s/mail", dir);
	rmdir(p);
	free(p);
	rc = rmdir(dir);
	if (rc < 0 && errno != ENOENT)
		log_warn(0, "admin", "backup-remove dir=%s error=\"%s\"", dir, strerror(errno));
	return rc;
}

/* ---- the list ---- */

struct backup_entry {
	char *id;
	char *dir;
	struct store_backup_info info;
	int verified; /* read_verified() */
	time_t verified_at;
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct backup_entry *x = a, *y = b;

	if (x->info.created != y->info.created)
		return x->info.created < y->info.created ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void
entries_free(struct backup_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		free(v[i].dir);
	}
	free(v);
}

/* Every backup under root with a readable manifest, oldest first. */
static int
list_backups(const char *root, struct backup_entry **v_r, size_t *n_r)
{
	DIR *d = opendir(root);
	struct dirent *de;
	struct backup_entry *v = NULL;
	size_t n = 0, cap = 0;

	*v_r = NULL;
	*n_r = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		struct backup_entry e = {0};
		char *err = NULL;
		if (!valid_id(de->d_name))
			continue;
		xasprintf(&e.dir, "%s/%s", root, de->d_name);
		if (store_backup_manifest(e.dir, &e.info, &err) != STORE_OK) {
			/* Not a backup, or one still being written. */
			free(err);
			free(e.dir);
			continue;
		}
		e.id = xstrdup(de->d_name);
		e.verified = read_verified(e.dir, &e.verified_at);
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = e;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), entry_cmp);
	*v_r = v;
	*n_r = n;
	return 0;
}

static json_t *
entry_json(const struct backup_entry *e)
{
	char *data;
	xasprintf(&data, "%s/mail/data.mdb", e->dir);
	uint64_t bytes = file_size(data);
	free(data);
	/* Verified: the check at backup time passed, and a later verify (if
	 * any) did not find problems. */
	bool verified = e->info.check_ok && e->verified != 0;

	return json_pack(
	    "{s:s, s:s, s:o, s:I, s:s, s:I, s:I, s:I, s:I, s:b, s:b, s:o}", "id", e->id, "path",
	    e->dir, "created", admin_json_time(e->info.created), "bytes", (json_int_t)bytes,
	    "origin", e->info.origin[0] != '\0' ? e->info.origin : "manual", "format",
	    (json_int_t)e->info.format, "users", (json_int_t)e->info.users, "mailboxes",
	    (json_int_t)e->info.mailboxes, "messages", (json_int_t)e->info.messages, "check_ok",
	    e->info.check_ok, "verified", verified, "verified_at", admin_json_time(e->verified_at));
}

static void
handle_list(struct admin_req *r)
{
	char *root = backup_root(r->cfg);
	struct backup_entry *v;
	size_t n;

	if (list_backups(root, &v, &n) < 0) {
		admin_reply_error(r, 500, "error", NULL, "%s: %s", root, strerror(errno));
		free(root);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, entry_json(&v[i]));
	entries_free(v, n);
	admin_reply_json(r, 200, json_pack("{s:o, s:s}", "backups", arr, "dir", root));
	r->summary = arena_printf(r->arena, "%zu backups", n);
	free(root);
}

/* ---- backup ---- */

struct backup_job {
	char *dir;
	char *id;
	char *root;
	bool scheduled;
	bool no_compact;
	unsigned keep;
	struct admin_job *job;
};

static void
backup_job_free(void *arg)
{
	struct backup_job *b = arg;

	pthread_mutex_lock(&run_lock);
	backup_running = false;
	pthread_mutex_unlock(&run_lock);
	free(b->dir);
	free(b->id);
	free(b->root);
	free(b);
}

static void
backup_progress(void *arg, const char *step, uint64_t done, uint64_t total)
{
	struct backup_job *b = arg;

	if (strcmp(step, "copy") == 0)
		admin_job_progress(b->job, done, total, "bytes", "copying the store");
	else
		admin_job_progress(b->job, 0, 0, "bytes", "checking the copy");
}

/* After a scheduled backup: removes the oldest scheduled backups beyond
 * keep. Manual ones are never counted nor removed. */
static json_t *
apply_retention(const char *root, unsigned keep)
{
	struct backup_entry *v;
	size_t n, sched = 0;
	json_t *removed = json_array();

	if (list_backups(root, &v, &n) < 0)
		return removed;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].info.origin, "scheduled") == 0)
			sched++;
	for (size_t i = 0; i < n && sched > keep; i++) {
		if (strcmp(v[i].info.origin, "scheduled") != 0)
			continue;
		if (remove_backup(v[i].dir) == 0) {
			log_info(0, "admin", "backup-expired id=%s keep=%u", v[i].id, keep);
			json_array_append_new(removed, json_string(v[i].id));
		}
		sched--;
	}
	entries_free(v, n);
	return removed;
}

static int
backup_job(struct admin_job *job, void *arg)
{
	struct backup_job *b = arg;
	struct store_backup_opts o = {.no_compact = b->no_compact,
				      .origin = b->scheduled ? "scheduled" : "manual",
				      .progress = backup_progress,
				      .arg = b};
	struct store_backup_info bi;
	char *err = NULL;
	int rc;

	b->job = job;
	if (admin_store_acquire(admin_job_config(job), &err) < 0) {
		admin_job_fail(job, "store: %s", err);
		free(err);
		remove_backup(b->dir);
		return -1;
	}
	rc = store_backup(admin_job_config(job)->state_dir, b->dir, &o, &bi, &err);
	admin_store_release();
	if (rc != STORE_OK) {
		admin_job_fail(job, "backup %s: %s", b->id, err);
		log_error(0, "admin", "backup-failed id=%s error=\"%s\"", b->id, err);
		free(err);
		remove_backup(b->dir);
		return -1;
	}
	if (!bi.check_ok) {
		/* Kept for inspection, but never restorable (its manifest says
		 * so) and reported as a failure. */
		admin_job_fail(job,
			       "backup %s: the copy has %d problems (ternd store check lists "
			       "them); it cannot be restored",
			       b->id, bi.problems);
		return -1;
	}
	log_info(0, "admin", "backup-done id=%s origin=%s messages=%" PRIu64, b->id, o.origin,
		 bi.messages);
	json_t *res =
	    json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:b}", "id", b->id, "path", b->dir,
		      "origin", o.origin, "created", admin_json_time(bi.created), "users",
		      (json_int_t)bi.users, "mailboxes", (json_int_t)bi.mailboxes, "messages",
		      (json_int_t)bi.messages, "check_ok", bi.check_ok);
	if (b->scheduled)
		json_object_set_new(res, "removed", apply_retention(b->root, b->keep));
	admin_job_set_result(job, res);
	return 0;
}

/* Starts a backup job. 0 with *id_r (the job's id), or -1 with *status_r
 * (409 one runs, 503 too many jobs, 500) and a malloc'd *error_r. */
static int
start_backup(const struct config *cfg, bool scheduled, bool no_compact, const char *admin,
	     const char **job_r, int *status_r, char **error_r)
{
	char stamp[32];

	pthread_mutex_lock(&run_lock);
	if (backup_running) {
		pthread_mutex_unlock(&run_lock);
		*status_r = 409;
		*error_r = xstrdup("a backup is running already");
		return -1;
	}
	backup_running = true;
	pthread_mutex_unlock(&run_lock);

	struct backup_job *b = xcalloc(1, sizeof(*b));
	b->root = backup_root(cfg);
	b->scheduled = scheduled;
	b->no_compact = no_compact;
	b->keep = cfg->backup_keep;
	if (mkdir(b->root, 0700) < 0 && errno != EEXIST) {
		*status_r = 500;
		xasprintf(error_r, "cannot create %s: %s", b->root, strerror(errno));
		backup_job_free(b);
		return -1;
	}
	/* The id is reserved by creating its directory now (an empty one is
	 * what store_backup wants). */
	store_backup_stamp(time(NULL), stamp);
	for (int i = 0; i < 100; i++) {
		free(b->id);
		free(b->dir);
		if (i == 0)
			xasprintf(&b->id, "%s-%s", stamp, scheduled ? "scheduled" : "manual");
		else
			xasprintf(&b->id, "%s-%s-%d", stamp, scheduled ? "scheduled" : "manual", i);
		xasprintf(&b->dir, "%s/%s", b->root, b->id);
		if (mkdir(b->dir, 0700) == 0)
			break;
		if (errno != EEXIST || i == 99) {
			*status_r = 500;
			xasprintf(error_r, "cannot create %s: %s", b->dir, strerror(errno));
			backup_job_free(b);
			return -1;
		}
	}
	char *summary;
	xasprintf(&summary, "%s backup %s", scheduled ? "scheduled" : "manual", b->id);
	char *dir = xstrdup(b->dir);
	const char *id = admin_job_start("backup", admin, summary, backup_job, b, backup_job_free);
	free(summary);
	if (id == NULL) {
		remove_backup(dir);
		backup_job_free(b);
		free(dir);
		*status_r = 503;
		xasprintf(error_r, "%d jobs are running already; try later", ADMIN_JOB_MAX_RUNNING);
		return -1;
	}
	free(dir);
	*job_r = id;
	return 0;
}

/* POST /api/v1/backups {"compact": bool} */
static void
handle_start(struct admin_req *r)
{
	json_t *cv = r->body != NULL ? json_object_get(r->body, "compact") : NULL;
	const char *job;
	char *err = NULL;
	int status;

	if (cv != NULL && !json_is_boolean(cv)) {
		admin_reply_error(r, 400, "bad_field", "compact", "compact must be true or false");
		return;
	}
	if (r->body != NULL && json_object_get(r->body, "path") != NULL) {
		/* Backups live under [backup] dir so that they can be listed,
		 * verified and restored by id. */
		admin_reply_error(r, 400, "bad_field", "path",
				  "path is not accepted: backups go to [backup] dir");
		return;
	}
	if (start_backup(r->cfg, false, cv != NULL && json_is_false(cv),
			 r->admin != NULL ? r->admin->login : NULL, &job, &status, &err) < 0) {
		admin_reply_error(r, status, status == 409 ? "conflict" : "busy", NULL, "%s", err);
		free(err);
		return;
	}
	admin_reply_job(r, job);
	r->summary = arena_printf(r->arena, "job %s: backup", job);
}

/* ---- verify and restore ---- */

struct id_job {
	char *id;
	char *dir;
	struct admin_job *job;
};

static void
id_job_free(void *arg)
{
	struct id_job *j = arg;

	free(j->id);
	free(j->dir);
	free(j);
}

/* The backup {id}: its directory (arena) and manifest; 404 when absent. */
static const char *
find_backup(struct admin_req *r, struct store_backup_info *info)
{
	const char *id = admin_param(r, "id");
	char *root = backup_root(r->cfg), *err = NULL;

	if (id == NULL || !valid_id(id)) {
		admin_reply_error(r, 404, "not_found", "id", "no backup \"%s\"", id ? id : "");
		free(root);
		return NULL;
	}
	const char *dir = arena_printf(r->arena, "%s/%s", root, id);
	free(root);
	if (store_backup_manifest(dir, info, &err) != STORE_OK) {
		admin_reply_error(r, 404, "not_found", "id", "no backup \"%s\" (%s)", id, err);
		free(err);
		return NULL;
	}
	return dir;
}

struct problems {
	json_t *list;
	unsigned n;
};

static void
collect_problem(void *arg, const char *problem)
{
	struct problems *p = arg;

	if (p->n++ < PROBLEMS_SHOWN)
		json_array_append_new(p->list, json_string(problem));
}

static int
verify_job(struct admin_job *job, void *arg)
{
	struct id_job *j = arg;
	struct problems p = {.list = json_array()};
	struct store_backup_info bi;
	char *err = NULL;

	admin_job_progress(job, 0, 0, "bytes", "checking %s", j->id);
	int rc = store_backup_verify(j->dir, collect_problem, &p, &bi, &err);
	if (rc != STORE_OK) {
		write_verified(j->dir, p.n > 0 ? (int)p.n : 1);
		admin_job_fail(job, "verify %s: %s", j->id, err);
		free(err);
		json_decref(p.list);
		return -1;
	}
	write_verified(j->dir, bi.problems);
	admin_job_set_result(job, json_pack("{s:s, s:b, s:i, s:o, s:I, s:I, s:I}", "id", j->id,
					    "ok", bi.check_ok, "problems", bi.problems,
					    "problem_lines", p.list, "users", (json_int_t)bi.users,
					    "mailboxes", (json_int_t)bi.mailboxes, "messages",
					    (json_int_t)bi.messages));
	if (!bi.check_ok) {
		admin_job_fail(job, "backup %s has %d problems", j->id, bi.problems);
		return -1;
	}
	return 0;
}

static void
start_id_job(struct admin_req *r, const char *kind, admin_job_fn *fn, const char *dir)
{
	struct id_job *j = xcalloc(1, sizeof(*j));
	j->id = xstrdup(admin_param(r, "id"));
	j->dir = xstrdup(dir);
	const char *summary = arena_printf(r->arena, "%s backup %s", kind, j->id);
	const char *id = admin_job_start(kind, r->admin != NULL ? r->admin->login : NULL, summary,
					 fn, j, id_job_free);
	if (id == NULL) {
		id_job_free(j);
		admin_reply_error(r, 503, "busy", NULL, "%d jobs are running already; try later",
				  ADMIN_JOB_MAX_RUNNING);
		return;
	}
	admin_reply_job(r, id);
	r->summary = arena_printf(r->arena, "job %s: %s", id, summary);
}

static void
handle_verify(struct admin_req *r)
{
	struct store_backup_info info;
	const char *dir = find_backup(r, &info);

	if (dir != NULL)
		start_id_job(r, "verify", verify_job, dir);
}

/* Whether the ternd of this state dir answers on its control socket. */
static bool
ternd_running(const struct config *cfg)
{
	json_t *req = json_pack("{s:s}", "cmd", "ping"), *reply = NULL;
	char *err = NULL;
	int rc = control_call(cfg->state_dir, req, PING_TIMEOUT_MS, &reply, &err);

	json_decref(req);
	json_decref(reply);
	free(err);
	/* Only "nobody listens" means stopped: a ternd too busy to answer
	 * in time is still running. */
	return rc != CONTROL_NOT_RUNNING;
}

static int
restore_job(struct admin_job *job, void *arg)
{
	struct id_job *j = arg;
	const struct config *cfg = admin_job_config(job);
	struct store_backup_info bi;
	char *err = NULL, *replaced = NULL;

	admin_job_progress(job, 0, 0, "bytes", "waiting for other store users");
	admin_store_lock_closed();
	if (ternd_running(cfg)) {
		admin_store_unlock_closed();
		admin_job_fail(job, "ternd is running: stop it first; nothing was changed");
		return -1;
	}
	admin_job_progress(job, 0, 0, "bytes", "restoring %s", j->id);
	int rc = store_restore(cfg->state_dir, j->dir, NULL, &bi, &replaced, &err);
	admin_store_unlock_closed();
	if (rc != STORE_OK) {
		admin_job_fail(job, "restore %s: %s", j->id, err);
		log_error(0, "admin", "restore-failed id=%s error=\"%s\"", j->id, err);
		free(err);
		return -1;
	}
	log_info(0, "admin", "restored id=%s replaced=%s", j->id, replaced ? replaced : "-");
	admin_job_set_result(job, json_pack("{s:s, s:o, s:I, s:I, s:I}", "id", j->id, "replaced",
					    replaced != NULL ? json_string(replaced) : json_null(),
					    "users", (json_int_t)bi.users, "mailboxes",
					    (json_int_t)bi.mailboxes, "messages",
					    (json_int_t)bi.messages));
	free(replaced);
	return 0;
}

static void
handle_restore(struct admin_req *r)
{
	struct store_backup_info info;
	const char *dir = find_backup(r, &info);
	time_t at;

	if (dir == NULL)
		return;
	if (!info.check_ok || read_verified(dir, &at) == 0) {
		admin_reply_error(r, 409, "not_verified", "id",
				  "backup %s did not pass its check; it cannot be restored",
				  admin_param(r, "id"));
		return;
	}
	if (ternd_running(r->cfg)) {
		admin_reply_error(r, 409, "ternd_running", NULL,
				  "ternd is running (its control socket in %s answers): stop it "
				  "before a restore",
				  r->cfg->state_dir);
		return;
	}
	start_id_job(r, "restore", restore_job, dir);
}

void
admin_backup_routes(void)
{
	static const struct admin_route routes[] = {
	    {"GET", "/api/v1/backups", handle_list, 0},
	    {"POST", "/api/v1/backups", handle_start, 0},
	    {"POST", "/api/v1/backups/{id}/verify", handle_verify, 0},
	    {"POST", "/api/v1/backups/{id}/restore", handle_restore, 0},
	};
	admin_routes_register(routes, ARRAY_SIZE(routes));
}

/* ---- the schedule ---- */

static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sched_cond = PTHREAD_COND_INITIALIZER;
static bool sched_stop;	   /* guarded by sched_lock */
static bool sched_started; /* main thread only */
static pthread_t sched_thread;

static void *
sched_main(void *arg)
{
	(void)arg;
	time_t base = time(NULL); /* "every": counted from the start or the last run */
	time_t next = 0;
	struct config_schedule cur = {0};

	pthread_mutex_lock(&sched_lock);
	while (!sched_stop) {
		struct config *cfg = config_acquire();
		struct config_schedule sch = cfg->backup_schedule;
		time_t now = time(NULL);

		if (sch.kind != cur.kind || sch.every != cur.every || sch.at != cur.at) {
			/* A new schedule (start or reload): plan afresh. */
			cur = sch;
			next = config_schedule_next(&cur,
						    cur.kind == CONFIG_SCHEDULE_EVERY ? base : now);
			if (next != 0)
				log_info(0, "admin", "backup-schedule next=%lld", (long long)next);
		}
		if (next != 0 && now >= next) {
			const char *job;
			char *err = NULL;
			int status;
			pthread_mutex_unlock(&sched_lock);
			if (start_backup(cfg, true, false, "scheduler", &job, &status, &err) < 0) {
				log_warn(0, "admin", "backup-scheduled-skipped error=\"%s\"", err);
				free(err);
			}
			pthread_mutex_lock(&sched_lock);
			base = now;
			next = config_schedule_next(&cur, now);
		}
		config_release(cfg);
		if (sched_stop)
			break;
		time_t wake = now + SCHED_RECHECK_S;
		if (next != 0 && next < wake)
			wake = next;
		struct timespec ts = {.tv_sec = wake, .tv_nsec = 0};
		if (wake <= now)
			ts.tv_sec = now + 1;
		pthread_cond_timedwait(&sched_cond, &sched_lock, &ts);
	}
	pthread_mutex_unlock(&sched_lock);
	return NULL;
}

void
admin_backup_scheduler_start(void)
{
	if (pthread_create(&sched_thread, NULL, sched_main, NULL) != 0)
		fatal("admin: cannot start the backup scheduler thread");
	sched_started = true;
}

void
admin_backup_scheduler_stop(void)
{
	if (!sched_started)
		return;
	pthread_mutex_lock(&sched_lock);
	sched_stop = true;
	pthread_cond_signal(&sched_cond);
	pthread_mutex_unlock(&sched_lock);
	pthread_join(sched_thread, NULL);
	sched_started = false;
}
