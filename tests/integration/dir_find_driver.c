/*
 * dir_find_driver.c - tern-dirfind-test: dir_find_user() (directory/dir.h)
 * from the command line, for tests/integration/test_dir_find.py. Starts
 * the directory with a ternd config, asks each query in turn on a worker
 * of its own and prints one line per answer. Built only as a test helper.
 *
 *   tern-dirfind-test -c FILE [-s] [--show-secret] QUERY...
 *     QUERY: login:VALUE       by login (the profile's user_filter)
 *            attr:NAME:VALUE   by an attribute (user filter AND NAME=VALUE)
 *     -s             ask for the SCRAM-SHA-256 verifier (want_scram)
 *     --show-secret  print the verifier itself (tests only)
 *
 * Output per query: "status=OK login=L id=ID scram=yes|no [verifier=V]
 * dn=DN" (the DN last: it may hold blanks) or "status=NOTFOUND error=TEXT". Exit 0 when every query
 * got an answer, 2 on usage or start-up failure.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/worker.h"
#include "directory/dir.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool answered;
static bool show_secret;

static const char *
status_name(enum dir_status st)
{
	switch (st) {
	case DIR_OK:
		return "OK";
	case DIR_NOTFOUND:
		return "NOTFOUND";
	case DIR_TEMPFAIL:
		return "TEMPFAIL";
	case DIR_PERMFAIL:
		return "PERMFAIL";
	default:
		return "OTHER";
	}
}

/* Runs on the worker. */
static void
found(void *arg, const struct dir_find_result *res)
{
	(void)arg;
	if (res->status == DIR_OK) {
		printf("status=OK login=%s id=%s scram=%s", res->user->login, res->user->id,
		       res->scram != NULL ? "yes" : "no");
		if (show_secret && res->scram != NULL)
			printf(" verifier=%s", res->scram);
		/* Last: a DN may hold blanks. */
		printf(" dn=%s\n", res->user->dn);
	} else {
		printf("status=%s error=%s\n", status_name(res->status),
		       res->error != NULL ? res->error : "");
	}
	fflush(stdout);
	pthread_mutex_lock(&lock);
	answered = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

int
main(int argc, char **argv)
{
	const char *conf = NULL;
	bool want_scram = false;
	int i = 1;
	char *error = NULL;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf = argv[++i];
		else if (strcmp(argv[i], "-s") == 0)
			want_scram = true;
		else if (strcmp(argv[i], "--show-secret") == 0)
			show_secret = true;
		else
			break;
	}
	if (conf == NULL || i >= argc) {
		fprintf(stderr, "usage: tern-dirfind-test -c FILE [-s] [--show-secret] "
				"login:VALUE|attr:NAME:VALUE...\n");
		return 2;
	}
	log_init(LOGL_INFO);
	struct config *cfg = config_load(conf, &error);
	if (cfg == NULL) {
		fprintf(stderr, "config: %s\n", error);
		free(error);
		return 2;
	}
	struct worker *w = worker_solo_create();
	worker_solo_start(w);
	if (dir_start(cfg, &error) < 0) {
		fprintf(stderr, "dir_start: %s\n", error);
		free(error);
		return 2;
	}
	int rc = 0;
	for (; i < argc; i++) {
		char *q = argv[i], *attr = NULL, *value;
		if (strncmp(q, "login:", 6) == 0) {
			value = q + 6;
		} else if (strncmp(q, "attr:", 5) == 0 && strchr(q + 5, ':') != NULL) {
			attr = q + 5;
			value = strchr(attr, ':');
			*value++ = '\0';
		} else {
			fprintf(stderr, "bad query: %s\n", q);
			rc = 2;
			break;
		}
		answered = false;
		dir_find_user(w, attr, value, want_scram, found, NULL);
		pthread_mutex_lock(&lock);
		while (!answered)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
	}
	dir_stop();
	worker_solo_stop(w);
	worker_solo_destroy(&w);
	config_free(cfg);
	return rc;
}
