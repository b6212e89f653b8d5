/*
 * ternd.c - the mail daemon: loads the config, opens the store, starts the
 * directory threads and the workers, binds the listeners of every present
 * section, drops privileges and serves until SIGTERM.
 * Fails at start-up (exit 1, one clear line) on a bad config, a port that
 * cannot be bound, a certificate that does not load or a store that does
 * not open. A directory that is down at start-up is not fatal.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/server.h"
#include "core/tls.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "directory/dir_check.h"
#include "directory/dir_tls.h"
#include "outbound/outbound.h"
#include "protocols/imap/imap_session.h"
#include "protocols/pop3/pop3_session.h"
#include "protocols/sasl/mech.h"
#include "protocols/smtp/dkim.h"
#include "protocols/smtp/dmarc_job.h"
#include "protocols/smtp/smtp_session.h"
#include "storage/store.h"
#include "storage/store_tool.h"

#include "core/version.h"
#include "core/control.h"

/* One descriptor per connection: thousands of idle IMAP clients need far
 * more than the usual soft limit of 1024, so take what the hard limit
 * allows (raising the hard limit is the admin's call: LimitNOFILE=). */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn(0, "ternd", "fd-limit error=\"%s\" soft=%llu", strerror(errno),
			 (unsigned long long)was);
	else
		log_info(0, "ternd", "fd-limit soft=%llu was=%llu", (unsigned long long)rl.rlim_cur,
			 (unsigned long long)was);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: ternd -c FILE [-t]\n"
		   "       ternd store check|dump|backup|restore -c FILE [ARG]\n"
		   "       ternd store users|usage|orphans|purge|export|import -c FILE ...\n"
		   "       ternd check-directory -c FILE   (or ternd --check-directory -c FILE)\n"
		   "       ternd dkim-keygen --domain D [--selector S] [--type rsa|ed25519]\n"
		   "                         [--key-dir DIR] [-c FILE]\n"
		   "       ternd dkim-sign --key FILE --domain D --selector S MSGFILE\n"
		   "       ternd dkim-verify --key TXT MSGFILE\n"
		   "       ternd dmarc-report -c FILE [--dry-run]\n"
		   "  -c FILE  configuration file\n"
		   "  -t       check the configuration and exit\n"
		   "  -V       print the version\n"
		   "  store    mail store maintenance (docs/store-tool.md)\n"
		   "  check-directory  check [directory] against the live directory\n"
		   "           (docs/admin-guide.md); exit 0 clean, 1 problems, 2 usage\n");
}

/* Control commands served by ternd itself (core/control.h). */

/* {"cmd": "directory.flush"}: a provisioning write happened; drop every
 * cached directory answer so the change applies to the next lookup. */
static json_t *
ctl_directory_flush(void *ctx, json_t *req, const char **code_r, char **error_r)
{
	(void)ctx;
	(void)req;
	(void)code_r;
	(void)error_r;
	dir_cache_flush();
	return NULL;
}

/* {"cmd": "mailbox.changed", "user": "<stable id>"}: another process
 * changed this user's mail; wake the sessions that show it. */
static json_t *
ctl_mailbox_changed(void *ctx, json_t *req, const char **code_r, char **error_r)
{
	(void)ctx;
	const char *user = json_string_value(json_object_get(req, "user"));
	if (user == NULL || user[0] == '\0') {
		*code_r = CONTROL_E_BAD_REQUEST;
		xasprintf(error_r, "mailbox.changed needs a \"user\" string (the stable id)");
		return NULL;
	}
	store_changed_elsewhere(user);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	bool check_only = false;
	char *err = NULL;
	int ch;

	/* The maintenance tool: its own options, never the daemon's. */
	if (argc >= 2 && strcmp(argv[1], "store") == 0)
		return store_tool_main(argc - 1, argv + 1);
	/* The directory check, a tool too: "check-directory" first, or
	 * "--check-directory" anywhere among -c FILE. */
	if (argc >= 2 && strncmp(argv[1], "dkim-", 5) == 0)
		return dkim_tool_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "dmarc-report") == 0)
		return dmarc_report_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check-directory") == 0)
		return dir_check_main(argc - 1, argv + 1);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check-directory") != 0)
			continue;
		memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
		return dir_check_main(argc - 1, argv);
	}
	while ((ch = getopt(argc, argv, "c:thV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("ternd %s\n", TERN_VERSION);
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
	log_init(LOGL_INFO);
	/* [dkim] key_dir's keys load with every config, -t and SIGHUP too. */
	dkim_config_install();
	struct config *cfg = config_load(path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "ternd: %s\n", err);
		free(err);
		return 1;
	}
	log_init((enum log_level)cfg->log_level);
	if (mech_check_config(cfg, &err) < 0)
		fatal("%s: %s", path, err);
	if (check_only) {
		/* What the directory connection will refuse, said before a
		 * start rather than at the first login. */
		dir_tls_log_config(&cfg->dir, "ternd");
		if (cfg->dkim_keys != NULL)
			printf("ternd: [dkim] %zu signing key(s) in %s\n",
			       dkim_keyset_count(cfg->dkim_keys), cfg->dkim_key_dir);
		printf("ternd: %s: configuration OK\n", path);
		config_free(cfg);
		return 0;
	}
	for (int s = 0; s < SVC_COUNT; s++) {
		if (!cfg->listeners[s].present)
			continue;
		if (s == SVC_SMTP || s == SVC_SUBMISSION || s == SVC_SUBMISSIONS || s == SVC_LMTP ||
		    s == SVC_POP3 || s == SVC_POP3S || s == SVC_IMAP || s == SVC_IMAPS ||
		    s == SVC_ADMIN)
			continue;
		fatal("%s:%d: [%s]: this service is not available in ternd %s yet", path,
		      cfg->listeners[s].line, config_service_name((enum service)s), TERN_VERSION);
	}

	raise_fd_limit();
	config_set_current(cfg);
	/* The directory and storage threads keep the start-up config (their
	 * settings need a restart); pin it so a SIGHUP reload cannot free it. */
	struct config *boot = config_acquire();

	if (cfg->tls_cert[0] != '\0' &&
	    tls_init(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, &err) < 0)
		fatal("%s", err);
	worker_pool_create(cfg->workers);
	server_accept_fn *accept_fns[SVC_COUNT] = {0};
	accept_fns[SVC_SMTP] = smtp_accept;
	accept_fns[SVC_SUBMISSION] = smtp_accept;
	accept_fns[SVC_SUBMISSIONS] = smtp_accept;
	accept_fns[SVC_LMTP] = smtp_accept;
	accept_fns[SVC_POP3] = pop3_accept;
	accept_fns[SVC_POP3S] = pop3_accept;
	accept_fns[SVC_IMAP] = imap_accept;
	accept_fns[SVC_IMAPS] = imap_accept;
	if (server_listen(cfg, accept_fns, &err) < 0)
		fatal("%s", err);
	/* Ports and the TLS key are root's; everything after runs as [server]
	 * user, so the store's files belong to that user. */
	if (server_drop_privileges(cfg, &err) < 0)
		fatal("%s", err);
	/* Counters for tern-admind's /metrics; a failure is only a warning. */
	(void)metrics_open(cfg->state_dir);
	/* Before the store: a second ternd on this state_dir stops here. */
	if (control_listen(cfg, &err) < 0)
		fatal("%s", err);
	if (mech_cyrus_init(cfg, &err) < 0)
		fatal("%s", err);
	if (store_open(cfg, &err) < 0)
		fatal("%s", err);
	if (dir_start(cfg, &err) < 0)
		fatal("%s", err);
	/* The front ends' resolver (SPF, DNSBL): workers ask it. */
	if (dns_start(cfg, &err) < 0)
		fatal("%s", err);
	/* The queue runner needs the store (the queue) and the directory
	 * (bounces to local senders). */
	if (outbound_start(cfg, &err) < 0)
		fatal("%s", err);
	/* DMARC aggregate reports: the store, DNS and the queue. */
	if (dmarc_job_start(&err) < 0)
		fatal("%s", err);
	/* tern-admind's way in: after the services it acts on are up. */
	control_register("directory.flush", ctl_directory_flush, NULL);
	control_register("mailbox.changed", ctl_mailbox_changed, NULL);
	outbound_control_register();
	dmarc_control_register();
	if (control_start(cfg, &err) < 0)
		fatal("%s", err);

	log_info(0, "ternd", "start version=%s workers=%u config=%s", TERN_VERSION,
		 worker_pool_size(), path);
	server_log_listeners();
	worker_pool_start();
	server_run(); /* until SIGTERM */

	control_stop();
	worker_pool_stop();
	outbound_stop();
	dmarc_job_stop();
	dns_stop();
	dmarc_job_free();
	dir_stop();
	store_close();
	mech_cyrus_done();
	worker_pool_destroy();
	imap_done();
	tls_shutdown();
	metrics_close();
	config_release(boot);
	log_info(0, "ternd", "stop");
	return 0;
}
