/*
 * test_admin_job.c - tern-admind's job table (admin/admin_job.c): a job
 * shows as running with the progress it reported, then done with its
 * result; a failing job shows failed with its reason; no more than
 * ADMIN_JOB_MAX_RUNNING run at once; unknown ids give NULL; shutdown waits
 * for running jobs.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "admin/admin_job.h"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int freed;

static void
gate_set(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static int
gated_job(struct admin_job *job, void *arg)
{
	admin_job_progress(job, 3, 10, "messages", "copied %d of %d", 3, 10);
	pthread_mutex_lock(&gate_lock);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	if (arg != NULL) {
		admin_job_fail(job, "disk full at %s", (const char *)arg);
		return -1;
	}
	admin_job_progress(job, 10, 10, "messages", "done");
	admin_job_set_result(job, json_pack("{s:i}", "messages", 10));
	return 0;
}

static void
count_free(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&freed, 1, __ATOMIC_SEQ_CST);
}

/* Polls the job until it leaves "running" (at most ~5 s). */
static json_t *
wait_end(const char *id)
{
	for (int i = 0; i < 500; i++) {
		json_t *j = admin_job_json(id);
		assert_non_null(j);
		if (strcmp(json_string_value(json_object_get(j, "state")), "running") != 0)
			return j;
		json_decref(j);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fail_msg("job %s did not end", id);
	return NULL;
}

static void
test_progress_then_done(void **state)
{
	(void)state;
	gate_set(false);
	const char *id =
	    admin_job_start("export", "alice", "export user01", gated_job, NULL, count_free);
	assert_non_null(id);
	assert_int_equal(strlen(id), 16);
	/* Progress becomes visible while the job still runs. */
	json_t *j = NULL;
	for (int i = 0; i < 500; i++) {
		j = admin_job_json(id);
		if (json_integer_value(json_object_get(json_object_get(j, "progress"), "done")) ==
		    3)
			break;
		json_decref(j);
		j = NULL;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "export");
	assert_string_equal(json_string_value(json_object_get(j, "admin")), "alice");
	json_t *p = json_object_get(j, "progress");
	assert_int_equal(json_integer_value(json_object_get(p, "total")), 10);
	assert_string_equal(json_string_value(json_object_get(p, "unit")), "messages");
	assert_string_equal(json_string_value(json_object_get(p, "message")), "copied 3 of 10");
	assert_true(json_is_null(json_object_get(j, "finished")));
	json_decref(j);

	gate_set(true);
	j = wait_end(id);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "result"), "messages")), 10);
	assert_true(json_is_string(json_object_get(j, "finished")));
	assert_true(json_is_null(json_object_get(j, "error")));
	json_decref(j);
	assert_int_equal(__atomic_load_n(&freed, __ATOMIC_SEQ_CST), 1);
}

static void
test_failure_reported(void **state)
{
	(void)state;
	gate_set(true);
	const char *id =
	    admin_job_start("backup", "bob", "backup", gated_job, (void *)"/var/backups", NULL);
	assert_non_null(id);
	json_t *j = wait_end(id);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "failed");
	assert_string_equal(json_string_value(json_object_get(j, "error")),
			    "disk full at /var/backups");
	json_decref(j);
}

static void
test_running_limit_and_unknown(void **state)
{
	(void)state;
	const char *ids[ADMIN_JOB_MAX_RUNNING];

	gate_set(false);
	for (int i = 0; i < ADMIN_JOB_MAX_RUNNING; i++) {
		ids[i] = admin_job_start("import", "alice", NULL, gated_job, NULL, NULL);
		assert_non_null(ids[i]);
	}
	assert_null(admin_job_start("import", "alice", NULL, gated_job, NULL, count_free));
	assert_null(admin_job_json("0000000000000000"));
	gate_set(true);
	for (int i = 0; i < ADMIN_JOB_MAX_RUNNING; i++)
		json_decref(wait_end(ids[i]));
	/* Room again once they ended. */
	const char *id = admin_job_start("import", "alice", NULL, gated_job, NULL, NULL);
	assert_non_null(id);
	admin_job_shutdown(); /* waits for it */
	assert_null(admin_job_json(id));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_progress_then_done),
	    cmocka_unit_test(test_failure_reported),
	    cmocka_unit_test(test_running_limit_and_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
