/*
 * admind.c - tern-admind, the admin daemon: loads the same config as
 * ternd, binds [admin] listen, serves the HTTPS JSON API (admin/admin.h)
 * in the foreground, logs to stderr, reloads config and TLS certificates
 * on SIGHUP and exits cleanly on SIGTERM.
 * Fails at start-up (exit 1, one clear line) on a bad config, a missing
 * [admin] section, no TLS without plaintext_auth, or a port that cannot
 * be bound. A directory or store that is down is not fatal: /healthz
 * says so.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_internal.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/worker.h"
#include "directory/dir_tls.h"

#include "core/version.h"
#include "admin/admin_job.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: tern-admind -c FILE [-t]\n"
		   "  -c FILE  configuration file (the same as ternd's)\n"
		   "  -t       check the configuration and exit\n"
		   "  -V       print the version\n");
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	bool check_only = false;
	char *err = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "c:thV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("tern-admind %s\n", TERN_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}

	server_block_signals();
	server_set_name("tern-admind");
	log_init(LOGL_INFO);
	struct config *cfg = config_load(path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "tern-admind: %s\n", err);
		free(err);
		return 1;
	}
	log_init((enum log_level)cfg->log_level);
	if (!cfg->listeners[SVC_ADMIN].present) {
		fprintf(stderr, "tern-admind: %s: no [admin] section: nothing to serve\n", path);
		config_free(cfg);
		return 1;
	}
	/* What the directory connections will refuse, said at start-up. */
	dir_tls_log_config(&cfg->dir, "tern-admind");
	if (check_only) {
		printf("tern-admind: %s: configuration OK\n", path);
		config_free(cfg);
		return 0;
	}
	config_set_current(cfg);

	worker_pool_create(cfg->admin_threads);
	/* Admins log in through the directory writer library. */
	admin_set_authenticator(admin_dir_authenticate, NULL);
	admin_core_routes();
	admin_job_routes();
	admin_mailbox_routes();
	admin_backup_routes();
	admin_provision_routes();
	admin_queue_routes();
	if (admin_server_start(cfg, &err) < 0)
		fatal("%s", err);
	/* The port and the TLS key are root's; after this tern-admind is
	 * [server] user like ternd, so what it writes in STATE_DIR (audit
	 * log, backups, the store) belongs to that user. */
	if (server_drop_privileges(cfg, &err) < 0)
		fatal("%s", err);
	log_info(0, "tern-admind", "start version=%s threads=%u config=%s", TERN_VERSION,
		 worker_pool_size(), path);
	worker_pool_start();
	admin_backup_scheduler_start();
	admin_orphan_scanner_start();
	server_run(); /* until SIGTERM; SIGHUP reloads config and certificates */

	admin_server_stop();
	admin_orphan_scanner_stop();
	admin_backup_scheduler_stop();
	admin_job_shutdown();
	worker_pool_stop();
	worker_pool_destroy();
	admin_health_close();
	admin_dir_close_all();
	admin_routes_clear();
	config_set_current(NULL);
	log_info(0, "tern-admind", "stop");
	return 0;
}
