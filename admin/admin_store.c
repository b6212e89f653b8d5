/*
 * admin_store.c - the mail store as tern-admind holds it: opened for
 * writing (store_open_existing: a writer thread of our own beside ternd's,
 * LMDB serialising the two processes' write transactions) on first use,
 * shared by every request and job, and closed only for a restore, which
 * needs no process at all to have the store open.
 *
 * Holders take a shared lock for as long as they use the store; a restore
 * takes it exclusive, so it waits for running jobs, and new holders are
 * turned away meanwhile (a writer-preferring lock, tried, not waited on)
 * with "a restore is running".
 * How it fails: -1 with a malloc'd reason (ternd never ran, a newer
 * format, a restore running); the next call tries again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "admin/admin.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/store_admin.h"

#define CLOSE_WAIT_S 5

static pthread_rwlock_t use_lock;
static pthread_once_t use_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static bool is_open; /* guarded by open_lock; changes only under use_lock shared
			(open) or exclusive (close) */

static void
use_init(void)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&use_lock, &a);
	pthread_rwlockattr_destroy(&a);
}

int
admin_store_acquire(const struct config *cfg, char **error_r)
{
	int rc = 0;

	*error_r = NULL;
	pthread_once(&use_once, use_init);
	if (pthread_rwlock_tryrdlock(&use_lock) != 0) {
		*error_r = xstrdup("a restore of the store is running");
		return -1;
	}
	pthread_mutex_lock(&open_lock);
	if (!is_open) {
		rc = store_open_existing(cfg, error_r);
		is_open = rc == 0;
		if (is_open)
			log_info(0, "tern-admind", "store-open state_dir=%s", cfg->state_dir);
	}
	pthread_mutex_unlock(&open_lock);
	if (rc != 0)
		pthread_rwlock_unlock(&use_lock);
	return rc;
}

void
admin_store_release(void)
{
	pthread_rwlock_unlock(&use_lock);
}

void
admin_store_lock_closed(void)
{
	pthread_once(&use_once, use_init);
	pthread_rwlock_wrlock(&use_lock);
	pthread_mutex_lock(&open_lock);
	if (is_open) {
		store_close();
		is_open = false;
		log_info(0, "tern-admind", "store-closed reason=restore");
	}
	pthread_mutex_unlock(&open_lock);
}

void
admin_store_unlock_closed(void)
{
	pthread_rwlock_unlock(&use_lock);
}

void
admin_store_close(void)
{
	struct timespec ts;

	pthread_once(&use_once, use_init);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += CLOSE_WAIT_S;
	/* A job that outlived admin_job_shutdown() still holds the store:
	 * leave it open rather than hang the exit (what it committed is
	 * durable; the process ends anyway). */
	if (pthread_rwlock_timedwrlock(&use_lock, &ts) != 0) {
		log_warn(0, "tern-admind", "store-close skipped reason=\"a job still uses it\"");
		return;
	}
	pthread_mutex_lock(&open_lock);
	if (is_open) {
		store_close();
		is_open = false;
	}
	pthread_mutex_unlock(&open_lock);
	pthread_rwlock_unlock(&use_lock);
}
