/*
 * admin_job.h - long work in tern-admind (backups, verify, restore,
 * export, import, purge): started by a request that answers 202 with the
 * job, run on a thread of its own, followed with GET /api/v1/jobs/{id}
 * (docs/openapi.yaml) so that ternctl can print progress.
 *
 * A job's record (kind, state, progress, result) is kept in memory for
 * ADMIN_JOB_KEEP seconds after it ends; a restart of tern-admind forgets
 * finished jobs, and a running one is lost with the process (the work
 * functions must leave nothing half-done that a retry cannot redo).
 */
#ifndef TERN_ADMIN_JOB_H
#define TERN_ADMIN_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "admin/admin.h"

#define ADMIN_JOB_KEEP (24 * 3600)
#define ADMIN_JOB_MAX_RUNNING 4

struct admin_job;

/* The work. Runs on the job's thread with its own reference to the
 * config it was started under. Returns a result object (owned by the
 * job, shown as "result") and 0, or -1 with admin_job_fail() called. */
typedef int admin_job_fn(struct admin_job *job, void *arg);
/* Frees arg once the job is over (may be NULL). */
typedef void admin_job_free_fn(void *arg);

/* Starts a job: kind is a short word ("backup", "export"), admin the
 * login that asked (audit), summary a line describing it. Returns the
 * job id (a short string owned by the job table), or NULL when
 * ADMIN_JOB_MAX_RUNNING run already (the caller answers 503). */
const char *admin_job_start(const char *kind, const char *admin, const char *summary,
			    admin_job_fn *fn, void *arg, admin_job_free_fn *free_fn);

/* From inside fn: the config the job runs under. */
const struct config *admin_job_config(struct admin_job *job);
/* From inside fn: progress so far (done of total units, total 0 when
 * unknown; unit is a word: "messages", "bytes"); message is one line. */
void admin_job_progress(struct admin_job *job, uint64_t done, uint64_t total, const char *unit,
			const char *fmt, ...) PRINTF_LIKE(5, 6);
/* From inside fn: the result object (takes ownership). */
void admin_job_set_result(struct admin_job *job, json_t *result);
/* From inside fn: the reason it failed (plain words). */
void admin_job_fail(struct admin_job *job, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* The job as JSON for GET /api/v1/jobs/{id} and the 202 answers:
 * {"id", "kind", "state": "running"|"done"|"failed", "admin", "summary",
 * "started", "finished", "progress": {"done", "total", "unit",
 * "message"}, "result", "error"}; NULL if there is no such job. */
json_t *admin_job_json(const char *id);
/* Answers 202 with admin_job_json(id) and a Location header. */
void admin_reply_job(struct admin_req *r, const char *id);

/* Registers GET /api/v1/jobs and /api/v1/jobs/{id}. */
void admin_job_routes(void);
/* Waits for running jobs to end (at stop). */
void admin_job_shutdown(void);

#endif
