/*
 * admin_dir.c - tern-admind's side of the directory writer
 * (directory/dir_admin.h): a small pool of writer handles shared by the
 * request threads, the admin login check built on dir_admin_authenticate,
 * the mapping of dir_admin statuses to HTTP replies, and the
 * "directory.flush" sent to a running ternd after every successful write.
 *
 * Pool: up to POOL_MAX handles, each opened under the config current when
 * it was opened (the pool holds a reference to that config: a handle
 * borrows it). A handle made under an older config (SIGHUP) is closed and
 * opened again on its next use. A handle whose connection went away
 * reconnects by itself on the next call (dir_admin_conn.c); one that
 * cannot be opened at all (directory down, bad writer password) makes the
 * request a 503 and is tried again on the next request.
 * How it fails: see admin_dir_reply() for the status mapping; a flush
 * that ternd does not answer is logged and the API call still succeeds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "core/control.h"
#include "core/log.h"

#define POOL_MAX 8
#define FLUSH_TIMEOUT_MS 3000

struct pool_slot {
	struct dir_admin *h; /* owned; NULL when empty */
	struct config *cfg;  /* the reference h was opened under (owned) */
	bool busy;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct pool_slot pool[POOL_MAX]; /* guarded by pool_lock */

int
admin_dir_acquire(struct dir_admin **h_r, char **error_r)
{
	struct config *cur = config_acquire();
	struct pool_slot *s = NULL;

	*h_r = NULL;
	*error_r = NULL;
	if (cur == NULL) {
		*error_r = xstrdup("no configuration");
		return -1;
	}
	pthread_mutex_lock(&pool_lock);
	for (;;) {
		/* An idle handle under the current config first, then an
		 * empty slot, then any idle one (to be reopened). */
		for (size_t i = 0; s == NULL && i < POOL_MAX; i++)
			if (!pool[i].busy && pool[i].h != NULL && pool[i].cfg == cur)
				s = &pool[i];
		for (size_t i = 0; s == NULL && i < POOL_MAX; i++)
			if (!pool[i].busy && pool[i].h == NULL)
				s = &pool[i];
		for (size_t i = 0; s == NULL && i < POOL_MAX; i++)
			if (!pool[i].busy)
				s = &pool[i];
		if (s != NULL)
			break;
		pthread_cond_wait(&pool_cond, &pool_lock);
	}
	s->busy = true;
	pthread_mutex_unlock(&pool_lock);

	if (s->h != NULL && s->cfg == cur) {
		config_release(cur);
		*h_r = s->h;
		return 0;
	}
	/* Open outside the lock: a bind may take [directory] timeout. */
	dir_admin_close(&s->h);
	config_release(s->cfg);
	s->cfg = NULL;
	if (dir_admin_open(cur, &s->h, error_r) < 0) {
		config_release(cur);
		pthread_mutex_lock(&pool_lock);
		s->busy = false;
		pthread_cond_signal(&pool_cond);
		pthread_mutex_unlock(&pool_lock);
		return -1;
	}
	s->cfg = cur;
	*h_r = s->h;
	return 0;
}

void
admin_dir_release(struct dir_admin *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&pool_lock);
	for (size_t i = 0; i < POOL_MAX; i++) {
		if (pool[i].h == h) {
			pool[i].busy = false;
			break;
		}
	}
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

void
admin_dir_close_all(void)
{
	pthread_mutex_lock(&pool_lock);
	for (size_t i = 0; i < POOL_MAX; i++) {
		dir_admin_close(&pool[i].h);
		config_release(pool[i].cfg);
		pool[i].cfg = NULL;
		pool[i].busy = false;
	}
	pthread_mutex_unlock(&pool_lock);
}

struct dir_admin *
admin_dir_get(struct admin_req *r)
{
	struct dir_admin *h;
	char *err;

	if (admin_dir_acquire(&h, &err) < 0) {
		log_warn(0, "admin", "directory-writer-unavailable error=\"%s\"", err);
		admin_reply_error(r, 503, "directory_unavailable", NULL, "directory: %s", err);
		free(err);
		return NULL;
	}
	return h;
}

/* ---- the admin login ---- */

int
admin_dir_authenticate(void *ctx, const struct config *cfg, const char *login, const char *password,
		       struct admin_identity *id_r)
{
	struct dir_admin *h;
	struct dir_admin_user *u = NULL;
	struct dir_admin_error e = {0};
	bool is_admin = false;
	char *err;

	(void)ctx;
	(void)cfg; /* the pool's handles follow the current config */
	memset(id_r, 0, sizeof(*id_r));
	if (login[0] == '\0' || password[0] == '\0')
		return ADMIN_AUTH_BAD;
	if (admin_dir_acquire(&h, &err) < 0) {
		log_warn(0, "admin", "directory-unavailable error=\"%s\"", err);
		free(err);
		return ADMIN_AUTH_UNAVAILABLE;
	}
	struct arena *a = arena_new(0);
	int st = dir_admin_authenticate(h, a, login, password, &u, &is_admin, &e);
	admin_dir_release(h);
	int result;
	switch (st) {
	case DIR_ADMIN_OK:
		result = is_admin ? ADMIN_AUTH_OK : ADMIN_AUTH_NOT_ADMIN;
		if (is_admin) {
			id_r->login = xstrdup(u->login[0] != '\0' ? u->login : login);
			id_r->dn = xstrdup(u->dn);
		}
		break;
	case DIR_ADMIN_AUTHFAIL:
		result = ADMIN_AUTH_BAD;
		break;
	default:
		/* The directory could not say (down, refused the writer's
		 * search): no verdict on the credentials. */
		log_warn(0, "admin", "auth-check-failed status=\"%s\" error=\"%s\"",
			 dir_admin_strerror(st), e.message != NULL ? e.message : "");
		result = ADMIN_AUTH_UNAVAILABLE;
		break;
	}
	arena_destroy(&a);
	return result;
}

/* ---- replies ---- */

void
admin_dir_reply(struct admin_req *r, int status, const struct dir_admin_error *e)
{
	const char *msg = e->message != NULL ? e->message : dir_admin_strerror(status);

	switch (status) {
	case DIR_ADMIN_INVALID:
		admin_reply_error(r, 400, "bad_field", e->field, "%s", msg);
		break;
	case DIR_ADMIN_EXISTS:
		admin_reply_error(r, 409, "exists", e->field, "%s", msg);
		break;
	case DIR_ADMIN_NOTFOUND:
		admin_reply_error(r, 404, "not_found", e->field, "%s", msg);
		break;
	case DIR_ADMIN_DENIED:
		/* The directory refused the writer account, not the admin:
		 * a server-side access-control problem, so no 403 (which
		 * means "you are not an admin" here). */
		log_warn(0, "admin", "directory-refused error=\"%s\"", msg);
		admin_reply_error(r, 502, "directory_refused", e->field,
				  "the directory refused the writer account: %s", msg);
		break;
	case DIR_ADMIN_AUTHFAIL:
	case DIR_ADMIN_UNAVAILABLE:
		admin_reply_error(r, 503, "directory_unavailable", NULL, "%s", msg);
		break;
	case DIR_ADMIN_UNSUPPORTED:
		admin_reply_error(r, 501, "unsupported", e->field, "%s", msg);
		break;
	default:
		log_warn(0, "admin", "directory-error error=\"%s\"", msg);
		admin_reply_error(r, 500, "directory_error", e->field, "%s", msg);
		break;
	}
}

/* ---- telling ternd ---- */

void
admin_dir_flush(const struct config *cfg)
{
	json_t *req = json_pack("{s:s}", "cmd", "directory.flush");
	json_t *reply = NULL;
	char *err = NULL;
	int rc = control_call(cfg->state_dir, req, FLUSH_TIMEOUT_MS, &reply, &err);

	/* No ternd running: nothing is cached, nothing to drop. */
	if (rc != CONTROL_OK && rc != CONTROL_NOT_RUNNING)
		log_warn(0, "admin", "directory-flush-failed error=\"%s\"",
			 err != NULL ? err : "?");
	json_decref(reply);
	json_decref(req);
	free(err);
}
