/*
 * admin_mailboxes.c - the mailbox lifecycle in tern-admind
 * (docs/openapi.yaml, tag mailboxes): usage of every mailbox owner, one
 * user's mailbox list, orphans (store users whose stable id the directory
 * no longer has: marked with the time first seen missing, unmarked when
 * back), and purge, export and import as jobs (admin/admin_job.h).
 *
 * The store is held through admin_store.c; the directory is read through
 * the pooled dir_admin handles of admin_dir.c. {user} in a path is a
 * stable id the store knows, a login or any address.
 * Orphans are marked by the same scan (orphan_scan) when
 * GET /api/v1/mailboxes/orphans is called and on a timer of its own
 * thread ([admin] orphan_scan_interval), so that the retention counts
 * from about when a user left the directory; nothing is purged by it.
 * After an import or a purge, the running ternd is told
 * ("mailbox.changed" on its control socket) so that its IMAP sessions of
 * that user see the change at once; a ternd that is not running is fine.
 *
 * How it fails: 404 unknown user, 409 purge of a live user or before the
 * retention has passed, 400 bad fields (named), 503 when the store or the
 * directory cannot answer (or too many jobs run); a job that fails says
 * why in its "error".
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
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
#include "directory/dir_admin.h"
#include "storage/store_admin.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define XFER_PROGRESS_EVERY 100
#define CONTROL_TIMEOUT_MS 5000

json_t *
admin_json_time(time_t t)
{
	struct tm tm;
	char s[32];

	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

void
admin_notify_mailbox_changed(const struct config *cfg, const char *user_id)
{
	json_t *req = json_pack("{s:s, s:s}", "cmd", "mailbox.changed", "user", user_id);
	json_t *reply = NULL;
	char *err = NULL;
	int rc = control_call(cfg->state_dir, req, CONTROL_TIMEOUT_MS, &reply, &err);

	if (rc != CONTROL_OK && rc != CONTROL_NOT_RUNNING)
		log_warn(0, "admin", "mailbox-changed user=%s error=\"%s\"", user_id,
			 err != NULL ? err : "?");
	json_decref(reply);
	json_decref(req);
	free(err);
}

/* ---- the directory's users ---- */

/* Every directory user into *users_r (in a), through a pooled writer
 * handle (admin_dir.c). 0, or -1 with *http_r (503 the directory cannot
 * answer, 500 another error) and *error_r (in a). */
static int
dir_list(struct arena *a, struct dir_admin_user **users_r, size_t *n_r, int *http_r,
	 const char **error_r)
{
	struct dir_admin *h = NULL;
	struct dir_admin_error e = {0};
	char *err = NULL;

	if (admin_dir_acquire(&h, &err) < 0) {
		*http_r = 503;
		*error_r = arena_printf(a, "directory: %s", err);
		free(err);
		return -1;
	}
	int st = dir_admin_user_list(h, a, users_r, n_r, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		*http_r = st == DIR_ADMIN_UNAVAILABLE ? 503 : 500;
		*error_r = arena_printf(a, "directory: %s",
					e.message != NULL ? e.message : dir_admin_strerror(st));
		return -1;
	}
	return 0;
}

static void
reply_failure(struct admin_req *r, int http, const char *error)
{
	admin_reply_error(r, http, http == 503 ? "unavailable" : "directory", NULL, "%s", error);
}

/* dir_list for a request: on failure answers 503 (or 500), returns -1. */
static int
dir_users(struct admin_req *r, struct dir_admin_user **users_r, size_t *n_r)
{
	const char *err;
	int http;

	if (dir_list(r->arena, users_r, n_r, &http, &err) < 0) {
		reply_failure(r, http, err);
		return -1;
	}
	return 0;
}

static const struct dir_admin_user *
find_id(const struct dir_admin_user *users, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (users[i].id[0] != '\0' && strcmp(users[i].id, id) == 0)
			return &users[i];
	return NULL;
}

/* A login or address in the directory: its entry, or NULL (the reply is
 * set only for a directory failure, *failed_r then true). */
static const struct dir_admin_user *
dir_user_by_key(struct admin_req *r, const char *key, bool *failed_r)
{
	struct dir_admin *h = NULL;
	struct dir_admin_error e = {0};
	struct dir_admin_user *u = NULL;
	char *err = NULL;

	*failed_r = false;
	if (admin_dir_acquire(&h, &err) < 0) {
		admin_reply_error(r, 503, "unavailable", NULL, "directory: %s", err);
		free(err);
		*failed_r = true;
		return NULL;
	}
	int st = dir_admin_user_get(h, r->arena, key, &u, &e);
	admin_dir_release(h);
	if (st == DIR_ADMIN_OK)
		return u;
	if (st == DIR_ADMIN_NOTFOUND || st == DIR_ADMIN_INVALID)
		return NULL;
	reply_failure(r, st == DIR_ADMIN_UNAVAILABLE ? 503 : 500,
		      arena_printf(r->arena, "directory: %s",
				   e.message != NULL ? e.message : dir_admin_strerror(st)));
	*failed_r = true;
	return NULL;
}

/* Who {user} is. */
struct who {
	const char *id;			  /* stable id */
	bool in_store;			  /* the store has a record */
	struct store_user_summary sum;	  /* when in_store */
	const struct dir_admin_user *dir; /* the directory entry, NULL if none */
};

/* Resolves {user}: a stable id the store knows, else a login or an
 * address in the directory. With need_dir, the directory entry of a
 * store id is looked up too (one listing). 0, or -1 with the reply set
 * (404 unknown, 503). */
static int
resolve_user(struct admin_req *r, const char *key, bool need_dir, struct who *w)
{
	bool failed;
	int rc;

	memset(w, 0, sizeof(*w));
	rc = store_user_get(key, r->arena, &w->sum);
	if (rc == STORE_OK) {
		w->id = w->sum.user_id;
		w->in_store = true;
		if (need_dir) {
			struct dir_admin_user *users;
			size_t n;
			if (dir_users(r, &users, &n) < 0)
				return -1;
			w->dir = find_id(users, n, w->id);
		}
		return 0;
	}
	if (rc != STORE_NOTFOUND && rc != STORE_PERMFAIL) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
		return -1;
	}
	w->dir = dir_user_by_key(r, key, &failed);
	if (failed)
		return -1;
	if (w->dir == NULL || w->dir->id[0] == '\0') {
		admin_reply_error(r, 404, "not_found", "user",
				  "no mailbox owner and no directory user \"%s\"", key);
		return -1;
	}
	w->id = w->dir->id;
	rc = store_user_get(w->id, r->arena, &w->sum);
	if (rc == STORE_OK)
		w->in_store = true;
	else if (rc != STORE_NOTFOUND) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
		return -1;
	}
	return 0;
}

/* Holds the store for a request; 503 if it cannot be opened. */
static int
hold_store(struct admin_req *r)
{
	char *err = NULL;

	if (admin_store_acquire(r->cfg, &err) < 0) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", err);
		free(err);
		return -1;
	}
	return 0;
}

static json_t *
usage_json(const struct config *cfg, const struct store_user_summary *s,
	   const struct dir_admin_user *d)
{
	json_t *o = json_object();

	json_object_set_new(o, "user", json_string(s->user_id));
	json_object_set_new(o, "id", json_string(s->user_id));
	if (d != NULL) {
		json_object_set_new(o, "login", json_string(d->login));
		json_object_set_new(o, "mail", json_string(d->mail));
		json_object_set_new(
		    o, "quota", d->quota > 0 ? json_integer((json_int_t)d->quota) : json_null());
	} else {
		json_object_set_new(o, "quota", json_null());
	}
	json_object_set_new(o, "in_directory", json_boolean(d != NULL));
	json_object_set_new(o, "messages", json_integer((json_int_t)s->messages));
	json_object_set_new(o, "bytes", json_integer((json_int_t)s->bytes));
	json_object_set_new(o, "unseen", json_integer((json_int_t)s->unseen));
	json_object_set_new(o, "mailbox_count", json_integer((json_int_t)s->mailboxes));
	json_object_set_new(o, "created", admin_json_time(s->created));
	json_object_set_new(o, "last_arrival", admin_json_time(s->last_arrival));
	json_object_set_new(o, "orphaned_since", admin_json_time(s->orphaned_at));
	json_object_set_new(o, "purge_after",
			    s->orphaned_at != 0
				? admin_json_time(s->orphaned_at + (time_t)cfg->orphan_retention)
				: json_null());
	return o;
}

/* ---- GET /api/v1/mailboxes ---- */

static void
handle_list(struct admin_req *r)
{
	const char *ls = admin_query(r, "limit"), *cursor = admin_query(r, "cursor");
	unsigned long limit = LIST_LIMIT_DEFAULT;
	struct store_user_summary *su;
	struct dir_admin_user *users;
	size_t n, nd;

	if (ls != NULL) {
		char *end;
		errno = 0;
		limit = strtoul(ls, &end, 10);
		if (errno != 0 || *end != '\0' || ls[0] == '-' || limit == 0 ||
		    limit > LIST_LIMIT_MAX) {
			admin_reply_error(r, 400, "bad_field", "limit",
					  "limit must be a number from 1 to %d", LIST_LIMIT_MAX);
			return;
		}
	}
	if (hold_store(r) < 0)
		return;
	int rc = store_user_list(r->arena, &su, &n);
	admin_store_release();
	if (rc != STORE_OK) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
		return;
	}
	if (dir_users(r, &users, &nd) < 0)
		return;
	json_t *arr = json_array();
	const char *last = NULL;
	bool more = false;
	/* store_user_list is ordered by stable id: the cursor is the last id
	 * of the previous page. */
	for (size_t i = 0; i < n; i++) {
		if (cursor != NULL && strcmp(su[i].user_id, cursor) <= 0)
			continue;
		if (json_array_size(arr) == limit) {
			more = true;
			break;
		}
		json_array_append_new(
		    arr, usage_json(r->cfg, &su[i], find_id(users, nd, su[i].user_id)));
		last = su[i].user_id;
	}
	admin_reply_json(r, 200,
			 json_pack("{s:o, s:o}", "mailboxes", arr, "next_cursor",
				   more && last != NULL ? json_string(last) : json_null()));
	r->summary = arena_printf(r->arena, "%zu mailbox owners", json_array_size(arr));
}

/* ---- GET /api/v1/mailboxes/{user} ---- */

static const char *
special_name(uint32_t s)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
	    {STORE_SPECIAL_ALL, "\\All"},	{STORE_SPECIAL_ARCHIVE, "\\Archive"},
	    {STORE_SPECIAL_DRAFTS, "\\Drafts"}, {STORE_SPECIAL_FLAGGED, "\\Flagged"},
	    {STORE_SPECIAL_JUNK, "\\Junk"},	{STORE_SPECIAL_SENT, "\\Sent"},
	    {STORE_SPECIAL_TRASH, "\\Trash"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (s == names[i].bit)
			return names[i].name;
	return NULL;
}

static void
handle_get(struct admin_req *r)
{
	struct who w;
	struct store_mailbox *boxes = NULL;
	const char **subs;
	size_t nb = 0, ns;

	if (hold_store(r) < 0)
		return;
	if (resolve_user(r, admin_param(r, "user"), true, &w) < 0) {
		admin_store_release();
		return;
	}
	int rc =
	    w.in_store ? store_mailbox_list_all(w.id, r->arena, &boxes, &nb, &subs, &ns) : STORE_OK;
	admin_store_release();
	if (rc != STORE_OK) {
		admin_reply_error(r, 503, "unavailable", NULL, "store: %s", store_strerror(rc));
		return;
	}
	if (!w.in_store) {
		/* In the directory, no mail yet: the store learns of a user
		 * at the first delivery or login. */
		memset(&w.sum, 0, sizeof(w.sum));
		w.sum.user_id = w.id;
	}
	json_t *o = usage_json(r->cfg, &w.sum, w.dir);
	json_object_set_new(o, "in_store", json_boolean(w.in_store));
	json_t *arr = json_array();
	for (size_t i = 0; i < nb; i++) {
		const char *su = special_name(boxes[i].special_use);
		json_array_append_new(
		    arr,
		    json_pack("{s:s, s:I, s:I, s:I, s:o, s:b, s:b}", "name", boxes[i].name,
			      "messages", (json_int_t)boxes[i].messages, "bytes",
			      (json_int_t)boxes[i].bytes, "unseen", (json_int_t)boxes[i].unseen,
			      "special_use", su != NULL ? json_string(su) : json_null(),
			      "subscribed", boxes[i].subscribed, "noselect", boxes[i].noselect));
	}
	json_object_set_new(o, "mailboxes", arr);
	admin_reply_json(r, 200, o);
	r->summary = arena_printf(r->arena, "user=%s", w.id);
}

/* ---- the orphan scan ---- */

/* One comparison of the store's users with the directory. */
struct orphan_scan {
	struct store_user_summary *users; /* every store user, orphaned_at after the scan */
	bool *live;			  /* per user: in the directory */
	size_t n;
	const char **unmarked; /* users found back (and unmarked) */
	size_t n_unmarked;
	unsigned marked; /* newly marked */
	/* on failure */
	int http;
	const char *error;
};

/* Marks the store users the directory no longer has orphan (keeping an
 * existing mark's time) and unmarks the ones back, logging each
 * (orphan-marked, orphan-unmarked). Used by GET
 * /api/v1/mailboxes/orphans and by the periodic scan, so both follow the
 * same rules. 0, or -1 with s->http and s->error (in a); marks made
 * before a store error stay. */
static int
orphan_scan(const struct config *cfg, struct arena *a, struct orphan_scan *s)
{
	struct dir_admin_user *dusers;
	size_t nd;
	char *err = NULL;
	int rc;

	memset(s, 0, sizeof(*s));
	/* The directory first: nothing is marked unless it answered. */
	if (dir_list(a, &dusers, &nd, &s->http, &s->error) < 0)
		return -1;
	if (admin_store_acquire(cfg, &err) < 0) {
		s->http = 503;
		s->error = arena_printf(a, "store: %s", err);
		free(err);
		return -1;
	}
	rc = store_user_list(a, &s->users, &s->n);
	if (rc != STORE_OK) {
		admin_store_release();
		s->http = 503;
		s->error = arena_printf(a, "store: %s", store_strerror(rc));
		return -1;
	}
	if (nd == 0 && s->n > 0) {
		/* A directory that lists nobody is far more likely a wrong
		 * base or filter than everyone gone: mark nothing. */
		admin_store_release();
		s->http = 503;
		s->error =
		    arena_printf(a,
				 "the directory lists no users at all; not marking %zu mailbox "
				 "owners orphan (check [directory] base and user_filter)",
				 s->n);
		return -1;
	}
	s->live = arena_alloc(a, (s->n + 1) * sizeof(*s->live));
	s->unmarked = arena_alloc(a, (s->n + 1) * sizeof(*s->unmarked));
	for (size_t i = 0; i < s->n; i++) {
		struct store_user_summary *u = &s->users[i];
		s->live[i] = find_id(dusers, nd, u->user_id) != NULL;
		if (s->live[i] && u->orphaned_at != 0) {
			rc = store_user_unmark_orphan(u->user_id);
			if (rc == STORE_OK || rc == STORE_NOTFOUND) {
				u->orphaned_at = 0;
				s->unmarked[s->n_unmarked++] = u->user_id;
				log_info(0, "admin", "orphan-unmarked user=%s", u->user_id);
			}
			continue;
		}
		if (s->live[i] || u->orphaned_at != 0)
			continue;
		time_t at = 0;
		rc = store_user_mark_orphan(u->user_id, 0, &at);
		if (rc == STORE_NOTFOUND) { /* purged meanwhile */
			s->live[i] = true;  /* not listed as an orphan */
			continue;
		}
		if (rc != STORE_OK) {
			admin_store_release();
			s->http = 503;
			s->error = arena_printf(a, "store: marking %s: %s", u->user_id,
						store_strerror(rc));
			return -1;
		}
		u->orphaned_at = at;
		s->marked++;
		log_info(0, "admin", "orphan-marked user=%s", u->user_id);
	}
	admin_store_release();
	return 0;
}

/* ---- GET /api/v1/mailboxes/orphans ---- */

static void
handle_orphans(struct admin_req *r)
{
	struct orphan_scan s;
	time_t now = time(NULL);

	if (orphan_scan(r->cfg, r->arena, &s) < 0) {
		admin_reply_error(r, s.http, s.http == 503 ? "unavailable" : "directory", NULL,
				  "%s", s.error);
		return;
	}
	json_t *arr = json_array(), *back = json_array();
	for (size_t i = 0; i < s.n; i++) {
		const struct store_user_summary *u = &s.users[i];
		if (s.live[i])
			continue;
		time_t due = u->orphaned_at + (time_t)r->cfg->orphan_retention;
		json_array_append_new(
		    arr, json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:b}", "user", u->user_id,
				   "messages", (json_int_t)u->messages, "bytes",
				   (json_int_t)u->bytes, "mailboxes", (json_int_t)u->mailboxes,
				   "orphaned_since", admin_json_time(u->orphaned_at), "purge_after",
				   admin_json_time(due), "due", due <= now));
	}
	for (size_t i = 0; i < s.n_unmarked; i++)
		json_array_append_new(back, json_string(s.unmarked[i]));
	size_t norphans = json_array_size(arr);
	admin_reply_json(r, 200,
			 json_pack("{s:o, s:o, s:I}", "orphans", arr, "unmarked", back, "retention",
				   (json_int_t)r->cfg->orphan_retention));
	r->summary = arena_printf(r->arena, "%zu orphans, %u newly marked", norphans, s.marked);
}

/* ---- the periodic scan ([admin] orphan_scan_interval) ---- */

#define SCAN_RECHECK_S 30 /* config reloads reach the scanner within this */

static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scan_cond = PTHREAD_COND_INITIALIZER;
static bool scan_stop;	  /* guarded by scan_lock */
static bool scan_started; /* main thread only */
static pthread_t scan_thread;

/* One scan from the timer; a failure is logged once until it changes or
 * a scan succeeds (an interval of seconds must not flood the log). */
static void
scan_once(const struct config *cfg, char **last_error)
{
	struct arena *a = arena_new(0);
	struct orphan_scan s;

	if (orphan_scan(cfg, a, &s) < 0) {
		if (*last_error == NULL || strcmp(*last_error, s.error) != 0) {
			log_warn(0, "admin", "orphan-scan-failed error=\"%s\"", s.error);
			free(*last_error);
			*last_error = xstrdup(s.error);
		}
	} else {
		if (*last_error != NULL)
			log_info(0, "admin", "orphan-scan-recovered");
		free(*last_error);
		*last_error = NULL;
		if (s.marked > 0 || s.n_unmarked > 0)
			log_info(0, "admin", "orphan-scan users=%zu marked=%u unmarked=%zu", s.n,
				 s.marked, s.n_unmarked);
	}
	arena_destroy(&a);
}

static void *
scan_main(void *arg)
{
	(void)arg;
	time_t last = 0; /* the last scan's end; 0: none yet, so the first is at start */
	char *last_error = NULL;

	pthread_mutex_lock(&scan_lock);
	while (!scan_stop) {
		struct config *cfg = config_acquire();
		time_t every = cfg != NULL ? (time_t)cfg->admin_orphan_scan_interval : 0;
		time_t now = time(NULL);

		if (every != 0 && now >= last + every) {
			pthread_mutex_unlock(&scan_lock);
			scan_once(cfg, &last_error);
			pthread_mutex_lock(&scan_lock);
			last = now = time(NULL);
		}
		config_release(cfg);
		if (scan_stop)
			break;
		time_t wake = now + SCAN_RECHECK_S;
		if (every != 0 && last + every < wake)
			wake = last + every;
		if (wake <= now)
			wake = now + 1;
		struct timespec ts = {.tv_sec = wake, .tv_nsec = 0};
		pthread_cond_timedwait(&scan_cond, &scan_lock, &ts);
	}
	pthread_mutex_unlock(&scan_lock);
	free(last_error);
	return NULL;
}

void
admin_orphan_scanner_start(void)
{
	if (pthread_create(&scan_thread, NULL, scan_main, NULL) != 0)
		fatal("admin: cannot start the orphan scan thread");
	scan_started = true;
}

void
admin_orphan_scanner_stop(void)
{
	if (!scan_started)
		return;
	pthread_mutex_lock(&scan_lock);
	scan_stop = true;
	pthread_cond_signal(&scan_cond);
	pthread_mutex_unlock(&scan_lock);
	pthread_join(scan_thread, NULL);
	scan_started = false;
}

/* ---- jobs: purge, export, import ---- */

struct mbox_job {
	char *user_id;
	char *path;
	char *mailbox; /* NULL: all */
	enum store_mail_format format;
	/* progress across mailboxes (the store reports per mailbox) */
	struct admin_job *job;
	const char *what;
	char *cur_mailbox;
	uint64_t base, last, total;
};

static void
mbox_job_free(void *arg)
{
	struct mbox_job *m = arg;

	free(m->user_id);
	free(m->path);
	free(m->mailbox);
	free(m->cur_mailbox);
	free(m);
}

static int
job_hold_store(struct admin_job *job)
{
	char *err = NULL;

	if (admin_store_acquire(admin_job_config(job), &err) < 0) {
		admin_job_fail(job, "store: %s", err);
		free(err);
		return -1;
	}
	return 0;
}

static void
purge_progress(void *arg, uint64_t messages)
{
	struct mbox_job *m = arg;

	admin_job_progress(m->job, messages, m->total, "messages", "%" PRIu64 " messages removed",
			   messages);
}

static int
purge_job(struct admin_job *job, void *arg)
{
	struct mbox_job *m = arg;
	struct store_user_summary s;
	uint64_t msgs = 0, bytes = 0;
	struct arena *a = arena_new(0);
	int rc;

	m->job = job;
	if (job_hold_store(job) < 0) {
		arena_destroy(&a);
		return -1;
	}
	if (store_user_get(m->user_id, a, &s) == STORE_OK)
		m->total = s.messages;
	arena_destroy(&a);
	rc = store_user_purge(m->user_id, purge_progress, m, &msgs, &bytes);
	admin_store_release();
	if (rc != STORE_OK) {
		admin_job_fail(
		    job, "purge of %s: %s after %" PRIu64 " messages (run it again to finish)",
		    m->user_id, store_strerror(rc), msgs);
		return -1;
	}
	admin_notify_mailbox_changed(admin_job_config(job), m->user_id);
	log_info(0, "admin", "purged user=%s messages=%" PRIu64 " bytes=%" PRIu64, m->user_id, msgs,
		 bytes);
	admin_job_set_result(job,
			     json_pack("{s:s, s:I, s:I, s:b}", "user", m->user_id, "messages",
				       (json_int_t)msgs, "bytes", (json_int_t)bytes, "purged", 1));
	return 0;
}

static void
xfer_progress(void *arg, const char *mailbox, uint64_t done)
{
	struct mbox_job *m = arg;

	if (m->cur_mailbox == NULL || strcmp(m->cur_mailbox, mailbox) != 0) {
		m->base += m->last;
		free(m->cur_mailbox);
		m->cur_mailbox = xstrdup(mailbox);
	}
	m->last = done;
	admin_job_progress(m->job, m->base + done, m->total, "messages", "%s: %s: %" PRIu64,
			   m->what, mailbox, done);
}

static void
xfer_warn(void *arg, const char *text)
{
	struct mbox_job *m = arg;

	log_warn(0, "admin", "%s-warning user=%s msg=\"%s\"", m->what, m->user_id, text);
}

static int
xfer_job(struct admin_job *job, void *arg, bool export)
{
	struct mbox_job *m = arg;
	struct store_xfer_opts o = {.format = m->format,
				    .mailbox = m->mailbox,
				    .progress = xfer_progress,
				    .progress_arg = m,
				    .progress_every = XFER_PROGRESS_EVERY,
				    .warn = xfer_warn};
	struct store_xfer_stats st = {0};
	char *err = NULL;
	int rc;

	m->job = job;
	m->what = export ? "export" : "import";
	if (job_hold_store(job) < 0)
		return -1;
	if (export) {
		struct arena *a = arena_new(0);
		struct store_user_summary s;
		if (store_user_get(m->user_id, a, &s) == STORE_OK)
			m->total = s.messages;
		arena_destroy(&a);
		rc = store_export(m->user_id, m->path, &o, &st, &err);
	} else {
		rc = store_import(m->user_id, m->path, &o, &st, &err);
	}
	admin_store_release();
	if (!export && st.messages > 0)
		admin_notify_mailbox_changed(admin_job_config(job), m->user_id);
	if (rc != STORE_OK) {
		if (!export && st.messages > 0)
			admin_job_fail(job,
				       "%s (%" PRIu64 " messages in %" PRIu64
				       " mailboxes were imported before the error and stay)",
				       err != NULL ? err : store_strerror(rc), st.messages,
				       st.mailboxes);
		else
			admin_job_fail(job, "%s", err != NULL ? err : store_strerror(rc));
		free(err);
		return -1;
	}
	admin_job_progress(job, st.messages, st.messages, "messages", "%s done", m->what);
	admin_job_set_result(
	    job, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "user", m->user_id, "path", m->path,
			   "format", m->format == STORE_FORMAT_MBOX ? "mbox" : "maildir",
			   "mailboxes", (json_int_t)st.mailboxes, "messages",
			   (json_int_t)st.messages, "bytes", (json_int_t)st.bytes));
	return 0;
}

static int
export_job(struct admin_job *job, void *arg)
{
	return xfer_job(job, arg, true);
}

static int
import_job(struct admin_job *job, void *arg)
{
	return xfer_job(job, arg, false);
}

static void
start_job(struct admin_req *r, const char *kind, admin_job_fn *fn, struct mbox_job *m,
	  const char *summary)
{
	const char *id = admin_job_start(kind, r->admin != NULL ? r->admin->login : NULL, summary,
					 fn, m, mbox_job_free);

	if (id == NULL) {
		mbox_job_free(m);
		admin_reply_error(r, 503, "busy", NULL, "%d jobs are running already; try later",
				  ADMIN_JOB_MAX_RUNNING);
		return;
	}
	admin_reply_job(r, id);
	r->summary = arena_printf(r->arena, "job %s: %s", id, summary);
}

/* POST /api/v1/mailboxes/{user}/purge {"force": bool} */
static void
handle_purge(struct admin_req *r)
{
	json_t *fv = r->body != NULL ? json_object_get(r->body, "force") : NULL;
	struct dir_admin_user *users;
	struct who w;
	size_t nd;
	time_t now = time(NULL);

	if (fv != NULL && !json_is_boolean(fv)) {
		admin_reply_error(r, 400, "bad_field", "force", "force must be true or false");
		return;
	}
	bool force = fv != NULL && json_is_true(fv);
	/* The directory's word is fresh (not ternd's cache): a user who
	 * exists is never purged, force or not. */
	if (dir_users(r, &users, &nd) < 0)
		return;
	if (hold_store(r) < 0)
		return;
	if (resolve_user(r, admin_param(r, "user"), false, &w) < 0) {
		admin_store_release();
		return;
	}
	const struct dir_admin_user *d = w.dir != NULL ? w.dir : find_id(users, nd, w.id);
	if (d != NULL) {
		admin_store_release();
		admin_reply_error(r, 409, "live_user", "user",
				  "%s is a user in the directory (%s); only the mail of users "
				  "removed from the directory is purged",
				  w.id, d->dn);
		return;
	}
	if (!w.in_store) {
		admin_store_release();
		admin_reply_error(r, 404, "not_found", "user", "the store has no mail of %s", w.id);
		return;
	}
	if (w.sum.orphaned_at == 0) {
		/* Gone from the directory but never seen so: the retention
		 * starts now. */
		time_t at = 0;
		if (store_user_mark_orphan(w.id, 0, &at) == STORE_OK)
			w.sum.orphaned_at = at;
		else
			w.sum.orphaned_at = now;
	}
	admin_store_release();
	time_t due = w.sum.orphaned_at + (time_t)r->cfg->orphan_retention;
	if (!force && due > now) {
		char when[32];
		struct tm tm;
		gmtime_r(&due, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		admin_reply_error(r, 409, "retention", "force",
				  "%s is kept until %s ([storage] orphan_retention); add "
				  "\"force\": true to purge it now",
				  w.id, when);
		return;
	}
	struct mbox_job *m = xcalloc(1, sizeof(*m));
	m->user_id = xstrdup(w.id);
	start_job(r, "purge", purge_job, m,
		  arena_printf(r->arena, "purge %s%s", w.id, force ? " (forced)" : ""));
}

/* format, path and mailbox of an export or import body. 0 or -1 (400
 * sent). */
static int
xfer_body(struct admin_req *r, enum store_mail_format *fmt_r, const char **path_r,
	  const char **mailbox_r)
{
	const char *format;

	if (r->body == NULL) {
		admin_reply_error(r, 400, "missing_field", "format",
				  "a JSON body with format and path is required");
		return -1;
	}
	if (admin_body_string(r, "format", true, &format) < 0 ||
	    admin_body_string(r, "path", true, path_r) < 0 ||
	    admin_body_string(r, "mailbox", false, mailbox_r) < 0)
		return -1;
	if (strcmp(format, "mbox") == 0)
		*fmt_r = STORE_FORMAT_MBOX;
	else if (strcmp(format, "maildir") == 0)
		*fmt_r = STORE_FORMAT_MAILDIR;
	else {
		admin_reply_error(r, 400, "bad_field", "format",
				  "format must be \"mbox\" or \"maildir\"");
		return -1;
	}
	if ((*path_r)[0] != '/' || strstr(*path_r, "/../") != NULL ||
	    (strlen(*path_r) >= 3 && strcmp(*path_r + strlen(*path_r) - 3, "/..") == 0)) {
		admin_reply_error(r, 400, "bad_field", "path",
				  "path must be an absolute path on the server without \"..\"");
		return -1;
	}
	if (*mailbox_r != NULL && (*mailbox_r)[0] == '\0') {
		admin_reply_error(r, 400, "bad_field", "mailbox", "mailbox must not be empty");
		return -1;
	}
	return 0;
}

/* POST /api/v1/mailboxes/{user}/export {"format", "path", "mailbox"?} */
static void
handle_export(struct admin_req *r)
{
	enum store_mail_format fmt;
	const char *path, *mailbox;
	struct stat st;
	struct who w;

	if (xfer_body(r, &fmt, &path, &mailbox) < 0)
		return;
	char *parent = arena_strdup(r->arena, path);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
		admin_reply_error(r, 400, "bad_field", "path",
				  "%s: the directory %s does not exist", path, parent);
		return;
	}
	if (hold_store(r) < 0)
		return;
	int rc = resolve_user(r, admin_param(r, "user"), false, &w);
	admin_store_release();
	if (rc < 0)
		return;
	if (!w.in_store) {
		admin_reply_error(r, 404, "not_found", "user", "the store has no mail of %s", w.id);
		return;
	}
	struct mbox_job *m = xcalloc(1, sizeof(*m));
	m->user_id = xstrdup(w.id);
	m->path = xstrdup(path);
	m->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	m->format = fmt;
	start_job(r, "export", export_job, m,
		  arena_printf(r->arena, "export %s to %s (%s)", w.id, path,
			       fmt == STORE_FORMAT_MBOX ? "mbox" : "maildir"));
}

/* POST /api/v1/mailboxes/{user}/import {"format", "path", "mailbox"?} */
static void
handle_import(struct admin_req *r)
{
	enum store_mail_format fmt;
	const char *path, *mailbox;
	struct stat st;
	struct who w;

	if (xfer_body(r, &fmt, &path, &mailbox) < 0)
		return;
	if (stat(path, &st) < 0) {
		admin_reply_error(r, 400, "bad_field", "path", "%s: %s", path, strerror(errno));
		return;
	}
	if (hold_store(r) < 0)
		return;
	int rc = resolve_user(r, admin_param(r, "user"), true, &w);
	admin_store_release();
	if (rc < 0)
		return;
	if (w.dir == NULL) {
		/* Mail for someone the directory does not know could never
		 * be read: import into a live user only. */
		admin_reply_error(r, 404, "not_found", "user", "%s is not a user in the directory",
				  w.id);
		return;
	}
	struct mbox_job *m = xcalloc(1, sizeof(*m));
	m->user_id = xstrdup(w.id);
	m->path = xstrdup(path);
	m->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	m->format = fmt;
	start_job(r, "import", import_job, m,
		  arena_printf(r->arena, "import %s into %s (%s)", path, w.id,
			       fmt == STORE_FORMAT_MBOX ? "mbox" : "maildir"));
}

void
admin_mailbox_routes(void)
{
	/* The literal /orphans before /{user}: the first match wins. */
	static const struct admin_route routes[] = {
	    {"GET", "/api/v1/mailboxes", handle_list, 0},
	    {"GET", "/api/v1/mailboxes/orphans", handle_orphans, 0},
	    {"GET", "/api/v1/mailboxes/{user}", handle_get, 0},
	    {"POST", "/api/v1/mailboxes/{user}/purge", handle_purge, 0},
	    {"POST", "/api/v1/mailboxes/{user}/export", handle_export, 0},
	    {"POST", "/api/v1/mailboxes/{user}/import", handle_import, 0},
	};
	admin_routes_register(routes, ARRAY_SIZE(routes));
}
