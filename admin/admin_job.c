/*
 * admin_job.c - long work in tern-admind (admin_job.h): a table of jobs
 * under one mutex, one detached thread per running job, and the
 * /api/v1/jobs routes.
 *
 * A job record is shared by the table and the job's thread (two
 * references); whichever lets go last frees it. A job thread that cannot
 * start fails the job at once; nothing else in here can fail but memory,
 * which is fatal as everywhere in Tern.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "admin/admin_job.h"
#include "core/compat.h"
#include "core/log.h"

enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct admin_job {
	struct admin_job *next; /* table chain, newest first */
	int refs;		/* table + running thread */
	char id[17];
	char *kind, *admin, *summary;
	enum job_state state;
	time_t started, finished;
	uint64_t done, total;
	char *unit, *message;
	json_t *result;
	char *error;
	struct config *cfg; /* a reference for the job's life */
	admin_job_fn *fn;
	void *arg;
	admin_job_free_fn *free_fn;
};

static pthread_mutex_t jlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jcond = PTHREAD_COND_INITIALIZER;
static struct admin_job *jobs;
static unsigned nrunning;

static void
job_unref_locked(struct admin_job *j, struct admin_job **free_r)
{
	*free_r = --j->refs == 0 ? j : NULL;
}

static void
job_free(struct admin_job *j)
{
	if (j == NULL)
		return;
	free(j->kind);
	free(j->admin);
	free(j->summary);
	free(j->unit);
	free(j->message);
	free(j->error);
	json_decref(j->result);
	free(j);
}

/* Drops finished jobs older than ADMIN_JOB_KEEP. Under jlock; returns the
 * records to free outside it. */
static struct admin_job *
prune_locked(time_t now)
{
	struct admin_job *dead = NULL;

	for (struct admin_job **pp = &jobs; *pp != NULL;) {
		struct admin_job *j = *pp;
		if (j->state != JOB_RUNNING && now - j->finished > ADMIN_JOB_KEEP) {
			*pp = j->next;
			struct admin_job *f;
			job_unref_locked(j, &f);
			if (f != NULL) {
				f->next = dead;
				dead = f;
			}
			continue;
		}
		pp = &j->next;
	}
	return dead;
}

static void
free_list(struct admin_job *l)
{
	while (l != NULL) {
		struct admin_job *n = l->next;
		job_free(l);
		l = n;
	}
}

static void *
job_thread(void *arg)
{
	struct admin_job *j = arg;

	int rc = j->fn(j, j->arg);
	if (j->free_fn != NULL)
		j->free_fn(j->arg);
	config_release(j->cfg);

	pthread_mutex_lock(&jlock);
	j->cfg = NULL;
	j->finished = time(NULL);
	if (rc < 0 || j->error != NULL) {
		j->state = JOB_FAILED;
		if (j->error == NULL)
			j->error = xstrdup("failed without a reason (a bug)");
	} else {
		j->state = JOB_DONE;
	}
	log_info(0, "admin", "job end id=%s kind=%s state=%s admin=\"%s\"%s%s%s", j->id, j->kind,
		 j->state == JOB_DONE ? "done" : "failed", j->admin,
		 j->error != NULL ? " error=\"" : "", j->error != NULL ? j->error : "",
		 j->error != NULL ? "\"" : "");
	nrunning--;
	pthread_cond_broadcast(&jcond);
	struct admin_job *f;
	job_unref_locked(j, &f);
	pthread_mutex_unlock(&jlock);
	job_free(f);
	return NULL;
}

const char *
admin_job_start(const char *kind, const char *admin, const char *summary, admin_job_fn *fn,
		void *arg, admin_job_free_fn *free_fn)
{
	struct admin_job *j = xcalloc(1, sizeof(*j));
	unsigned char rnd[8];

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("admin: no random bytes for a job id");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(j->id + 2 * i, 3, "%02x", rnd[i]);
	j->kind = xstrdup(kind);
	j->admin = xstrdup(admin != NULL ? admin : "-");
	j->summary = xstrdup(summary != NULL ? summary : kind);
	j->state = JOB_RUNNING;
	j->started = time(NULL);
	j->fn = fn;
	j->arg = arg;
	j->free_fn = free_fn;
	j->refs = 2; /* the table's and the thread's */

	pthread_mutex_lock(&jlock);
	struct admin_job *dead = prune_locked(j->started);
	if (nrunning >= ADMIN_JOB_MAX_RUNNING) {
		pthread_mutex_unlock(&jlock);
		free_list(dead);
		job_free(j);
		return NULL;
	}
	j->cfg = config_acquire();
	j->next = jobs;
	jobs = j;
	nrunning++;

	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &attr, job_thread, j);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		config_release(j->cfg);
		j->cfg = NULL;
		j->state = JOB_FAILED;
		j->finished = j->started;
		j->error = xstrdup("cannot start a thread for the job");
		j->refs--;
		nrunning--;
		if (free_fn != NULL)
			free_fn(arg);
	}
	const char *id = j->id;
	pthread_mutex_unlock(&jlock);
	free_list(dead);
	log_info(0, "admin", "job start id=%s kind=%s admin=\"%s\" summary=\"%s\"", id, kind,
		 admin != NULL ? admin : "-", summary != NULL ? summary : kind);
	return id;
}

const struct config *
admin_job_config(struct admin_job *job)
{
	return job->cfg;
}

void
admin_job_progress(struct admin_job *job, uint64_t done, uint64_t total, const char *unit,
		   const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		if (vasprintf(&msg, fmt, ap) < 0)
			fatal("out of memory");
		va_end(ap);
	}
	pthread_mutex_lock(&jlock);
	job->done = done;
	job->total = total;
	if (unit != NULL && (job->unit == NULL || strcmp(job->unit, unit) != 0)) {
		free(job->unit);
		job->unit = xstrdup(unit);
	}
	if (msg != NULL) {
		free(job->message);
		job->message = msg;
	}
	pthread_mutex_unlock(&jlock);
}

void
admin_job_set_result(struct admin_job *job, json_t *result)
{
	pthread_mutex_lock(&jlock);
	json_decref(job->result);
	job->result = result;
	pthread_mutex_unlock(&jlock);
}

void
admin_job_fail(struct admin_job *job, const char *fmt, ...)
{
	char *msg;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	pthread_mutex_lock(&jlock);
	free(job->error);
	job->error = msg;
	pthread_mutex_unlock(&jlock);
}

static json_t *
time_json(time_t t)
{
	char s[32];
	struct tm tm;

	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

static const char *
state_name(enum job_state s)
{
	return s == JOB_RUNNING ? "running" : s == JOB_DONE ? "done" : "failed";
}

/* Under jlock. */
static json_t *
job_json_locked(const struct admin_job *j)
{
	json_t *p = json_pack("{s:I, s:I, s:s?, s:s?}", "done", (json_int_t)j->done, "total",
			      (json_int_t)j->total, "unit", j->unit, "message", j->message);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:O?, s:s?}", "id", j->id,
			 "kind", j->kind, "state", state_name(j->state), "admin", j->admin,
			 "summary", j->summary, "started", time_json(j->started), "finished",
			 time_json(j->state == JOB_RUNNING ? 0 : j->finished), "progress", p,
			 "result", j->result, "error", j->error);
}

json_t *
admin_job_json(const char *id)
{
	json_t *out = NULL;

	pthread_mutex_lock(&jlock);
	for (struct admin_job *j = jobs; j != NULL; j = j->next) {
		if (strcmp(j->id, id) == 0) {
			out = job_json_locked(j);
			break;
		}
	}
	pthread_mutex_unlock(&jlock);
	return out;
}

void
admin_reply_job(struct admin_req *r, const char *id)
{
	json_t *j = admin_job_json(id);

	if (j == NULL) {
		admin_reply_error(r, 500, "internal", NULL, "the job %s vanished", id);
		return;
	}
	r->location = arena_printf(r->arena, "/api/v1/jobs/%s", id);
	r->summary = arena_printf(r->arena, "job %s started", id);
	admin_reply_json(r, 202, j);
}

static void
handle_job_get(struct admin_req *r)
{
	const char *id = admin_param(r, "id");
	json_t *j = admin_job_json(id);

	if (j == NULL) {
		admin_reply_error(r, 404, "not_found", "id",
				  "no job %s (finished jobs are kept %d hours)", id,
				  ADMIN_JOB_KEEP / 3600);
		return;
	}
	admin_reply_json(r, 200, j);
}

static void
handle_job_list(struct admin_req *r)
{
	json_t *list = json_array();

	pthread_mutex_lock(&jlock);
	for (struct admin_job *j = jobs; j != NULL; j = j->next)
		json_array_append_new(list, job_json_locked(j));
	pthread_mutex_unlock(&jlock);
	admin_reply_json(r, 200, json_pack("{s:o}", "jobs", list));
}

static const struct admin_route job_routes[] = {
    {"GET", "/api/v1/jobs", handle_job_list, ADMIN_ROUTE_NO_AUDIT},
    {"GET", "/api/v1/jobs/{id}", handle_job_get, ADMIN_ROUTE_NO_AUDIT},
};

void
admin_job_routes(void)
{
	admin_routes_register(job_routes, ARRAY_SIZE(job_routes));
}

void
admin_job_shutdown(void)
{
	struct timespec until;

	/* A job may take long (a big export): give running ones a bounded
	 * time, then leave; a restarted job redoes its work (admin_job.h). */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&jlock);
	while (nrunning > 0) {
		if (pthread_cond_timedwait(&jcond, &jlock, &until) != 0) {
			log_warn(0, "admin", "stop: %u jobs still running are abandoned", nrunning);
			break;
		}
	}
	struct admin_job *dead = NULL;
	if (nrunning == 0) {
		for (struct admin_job *j = jobs; j != NULL;) {
			struct admin_job *n = j->next, *f;
			job_unref_locked(j, &f);
			if (f != NULL) {
				f->next = dead;
				dead = f;
			}
			j = n;
		}
		jobs = NULL;
	}
	pthread_mutex_unlock(&jlock);
	free_list(dead);
}
