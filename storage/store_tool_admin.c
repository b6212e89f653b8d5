/*
 * store_tool_admin.c - `ternd store users|usage|orphans|mark-orphan|
 * unmark-orphan|purge|export|import`: the mailbox lifecycle commands
 * (docs/store-tool.md), thin wrappers over storage/store_admin.h, which
 * tern-admind calls too.
 *
 * They open the store like ternd does (store_open: this process gets its
 * own writer thread), beside a running ternd or without one: LMDB
 * serialises the write transactions of both processes. They refuse a
 * store that is not there (they never create one) and one whose format
 * is not the current one (ternd migrates at start-up, not a tool).
 *
 * Exit codes: 0 done; 1 the operation failed (unknown user or mailbox,
 * malformed input, an I/O or storage error, named on stderr); 2 usage, an
 * unreadable configuration or a store that cannot be opened.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/config.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"
#include "storage/store_tool.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define PROGRESS_DEFAULT 1000

static void msg(const char *fmt, ...) PRINTF_LIKE(1, 2);

static void
msg(const char *fmt, ...)
{
	va_list ap;

	fputs("ternd store: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
admin_usage(FILE *f)
{
	fprintf(f,
		"usage: ternd store users -c FILE\n"
		"       ternd store usage -c FILE USER_ID\n"
		"       ternd store orphans -c FILE\n"
		"       ternd store mark-orphan -c FILE USER_ID [--time EPOCH]\n"
		"       ternd store unmark-orphan -c FILE USER_ID\n"
		"       ternd store purge -c FILE (USER_ID | --expired) --yes\n"
		"       ternd store export -c FILE USER_ID PATH --format mbox|maildir "
		"[--mailbox NAME]\n"
		"       ternd store import -c FILE USER_ID PATH --format mbox|maildir "
		"[--mailbox NAME]\n"
		"  --progress N   a progress line on stderr every N messages (default %d, 0 = "
		"none)\n"
		"exit status: 0 ok, 1 the operation failed, 2 usage or the store cannot be "
		"opened\n",
		PROGRESS_DEFAULT);
}

/* "2026-01-01T00:00:00Z", or "-" for 0. */
static const char *
iso(time_t t, char out[32])
{
	struct tm tm;

	if (t == 0)
		return "-";
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

/* Opens the store for writing beside (or without) ternd: it must exist
 * and be of the current format. */
static int
admin_open(const struct config *cfg)
{
	char *err = NULL;

	if (store_open_existing(cfg, &err) < 0) {
		msg("%s", err);
		free(err);
		return -1;
	}
	return 0;
}

/* ---- reports ---- */

static int
cmd_users(void)
{
	struct arena *a = arena_new(0);
	struct store_user_summary *u;
	size_t n;
	char c1[32], c2[32], c3[32];
	int rc = store_user_list(a, &u, &n);

	if (rc != STORE_OK) {
		msg("users: %s", store_strerror(rc));
		arena_destroy(&a);
		return EXIT_FAILED;
	}
	printf("USER_ID\tMAILBOXES\tMESSAGES\tBYTES\tUNSEEN\tCREATED\tLAST_ARRIVAL\tORPHANED\n");
	for (size_t i = 0; i < n; i++)
		printf("%s\t%u\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%s\t%s\t%s\n", u[i].user_id,
		       u[i].mailboxes, u[i].messages, u[i].bytes, u[i].unseen,
		       iso(u[i].created, c1), iso(u[i].last_arrival, c2),
		       iso(u[i].orphaned_at, c3));
	arena_destroy(&a);
	return 0;
}

static const char *
special_name(uint32_t s)
{
	switch (s) {
	case STORE_SPECIAL_ALL:
		return "\\All";
	case STORE_SPECIAL_ARCHIVE:
		return "\\Archive";
	case STORE_SPECIAL_DRAFTS:
		return "\\Drafts";
	case STORE_SPECIAL_FLAGGED:
		return "\\Flagged";
	case STORE_SPECIAL_JUNK:
		return "\\Junk";
	case STORE_SPECIAL_SENT:
		return "\\Sent";
	case STORE_SPECIAL_TRASH:
		return "\\Trash";
	default:
		return s == 0 ? "-" : "(several)";
	}
}

static int
cmd_usage(const struct config *cfg, const char *user_id)
{
	struct arena *a = arena_new(0);
	struct store_user_summary u;
	struct store_mailbox *boxes;
	const char **subs;
	size_t n, ns;
	char c1[32], c2[32], c3[32];
	int rc = store_user_get(user_id, a, &u);

	if (rc == STORE_OK)
		rc = store_mailbox_list_all(user_id, a, &boxes, &n, &subs, &ns);
	if (rc != STORE_OK) {
		if (rc == STORE_NOTFOUND)
			msg("usage: no user with stable id \"%s\" in the store", user_id);
		else
			msg("usage: %s", store_strerror(rc));
		arena_destroy(&a);
		return EXIT_FAILED;
	}
	printf("user %s\ninternal_id %" PRIu64 "\nmessages %" PRIu64 "\nbytes %" PRIu64
	       "\nunseen %" PRIu64 "\nmailboxes %u\ncreated %s\nlast_arrival %s\norphaned %s\n",
	       u.user_id, u.internal_id, u.messages, u.bytes, u.unseen, u.mailboxes,
	       iso(u.created, c1), iso(u.last_arrival, c2), iso(u.orphaned_at, c3));
	if (u.orphaned_at != 0)
		printf("purge_after %s\n", iso(u.orphaned_at + (time_t)cfg->orphan_retention, c1));
	printf("MAILBOX\tMESSAGES\tBYTES\tUNSEEN\tSPECIAL_USE\tSUBSCRIBED\n");
	for (size_t i = 0; i < n; i++)
		printf("%s\t%u\t%" PRIu64 "\t%u\t%s\t%s%s\n", boxes[i].name, boxes[i].messages,
		       boxes[i].bytes, boxes[i].unseen, special_name(boxes[i].special_use),
		       boxes[i].subscribed ? "yes" : "no", boxes[i].noselect ? "\t\\Noselect" : "");
	arena_destroy(&a);
	return 0;
}

static int
cmd_orphans(const struct config *cfg)
{
	struct arena *a = arena_new(0);
	struct store_orphan *o;
	size_t n;
	char c1[32], c2[32];
	time_t now = time(NULL);
	int rc = store_orphan_list(a, &o, &n);

	if (rc != STORE_OK) {
		msg("orphans: %s", store_strerror(rc));
		arena_destroy(&a);
		return EXIT_FAILED;
	}
	printf("USER_ID\tMARKED_AT\tPURGE_AFTER\tDUE\n");
	for (size_t i = 0; i < n; i++) {
		time_t due = o[i].marked_at + (time_t)cfg->orphan_retention;
		printf("%s\t%s\t%s\t%s\n", o[i].user_id, iso(o[i].marked_at, c1), iso(due, c2),
		       due <= now ? "yes" : "no");
	}
	arena_destroy(&a);
	return 0;
}

static int
cmd_mark(const char *user_id, bool mark, time_t when)
{
	char c[32];
	time_t at = 0;
	int rc =
	    mark ? store_user_mark_orphan(user_id, when, &at) : store_user_unmark_orphan(user_id);

	if (rc == STORE_NOTFOUND) {
		if (mark)
			msg("mark-orphan: no user with stable id \"%s\" in the store", user_id);
		else
			msg("unmark-orphan: \"%s\" is not marked orphan", user_id);
		return EXIT_FAILED;
	}
	if (rc != STORE_OK) {
		msg("%s: %s", mark ? "mark-orphan" : "unmark-orphan", store_strerror(rc));
		return EXIT_FAILED;
	}
	if (mark)
		printf("orphan %s marked_at %s\n", user_id, iso(at, c));
	else
		printf("orphan mark of %s removed\n", user_id);
	return 0;
}

/* ---- purge ---- */

struct purge_progress {
	const char *user_id;
	unsigned every;
	uint64_t last;
};

static void
purge_progress(void *arg, uint64_t messages)
{
	struct purge_progress *p = arg;

	if (p->every > 0 && messages / p->every != p->last / p->every)
		fprintf(stderr, "purge: %s: %" PRIu64 " messages removed\n", p->user_id, messages);
	p->last = messages;
}

static int
purge_one(const char *user_id, unsigned every)
{
	struct purge_progress pp = {.user_id = user_id, .every = every};
	uint64_t msgs, bytes;
	int rc = store_user_purge(user_id, purge_progress, &pp, &msgs, &bytes);

	if (rc == STORE_NOTFOUND) {
		msg("purge: no user with stable id \"%s\" in the store", user_id);
		return EXIT_FAILED;
	}
	if (rc != STORE_OK) {
		msg("purge: %s: %s (after %" PRIu64 " messages; run it again to finish)", user_id,
		    store_strerror(rc), msgs);
		return EXIT_FAILED;
	}
	printf("purged %s: %" PRIu64 " messages, %" PRIu64 " bytes\n", user_id, msgs, bytes);
	return 0;
}

static int
cmd_purge_expired(const struct config *cfg, unsigned every)
{
	struct arena *a = arena_new(0);
	struct store_orphan *o;
	size_t n, done = 0;
	time_t now = time(NULL);
	int ret = 0, rc = store_orphan_list(a, &o, &n);

	if (rc != STORE_OK) {
		msg("purge: %s", store_strerror(rc));
		arena_destroy(&a);
		return EXIT_FAILED;
	}
	for (size_t i = 0; i < n; i++) {
		if (o[i].marked_at + (time_t)cfg->orphan_retention > now)
			continue;
		if (purge_one(o[i].user_id, every) != 0)
			ret = EXIT_FAILED;
		else
			done++;
	}
	printf("purged %zu orphan%s past retention\n", done, done == 1 ? "" : "s");
	arena_destroy(&a);
	return ret;
}

/* ---- export / import ---- */

struct xfer_ctx {
	const char *what; /* "export" / "import" */
};

static void
xfer_progress(void *arg, const char *mailbox, uint64_t done)
{
	const struct xfer_ctx *x = arg;

	fprintf(stderr, "%s: %s: %" PRIu64 " messages\n", x->what, mailbox, done);
}

static void
xfer_warn(void *arg, const char *text)
{
	const struct xfer_ctx *x = arg;

	fprintf(stderr, "ternd store %s: warning: %s\n", x->what, text);
}

static int
cmd_xfer(bool export, const char *user_id, const char *path, enum store_mail_format fmt,
	 const char *mailbox, unsigned every)
{
	struct xfer_ctx x = {.what = export ? "export" : "import"};
	struct store_xfer_opts o = {.format = fmt,
				    .mailbox = mailbox,
				    .progress = xfer_progress,
				    .progress_arg = &x,
				    .progress_every = every,
				    .warn = xfer_warn};
	struct store_xfer_stats st;
	char *err = NULL;
	int rc = export ? store_export(user_id, path, &o, &st, &err)
			: store_import(user_id, path, &o, &st, &err);

	if (rc != STORE_OK) {
		msg("%s: %s", x.what, err != NULL ? err : store_strerror(rc));
		if (!export && st.messages > 0)
			msg("import: %" PRIu64 " messages in %" PRIu64 " mailboxes were imported "
			    "before the error and stay",
			    st.messages, st.mailboxes);
		free(err);
		return EXIT_FAILED;
	}
	printf("%s %s %s %s: %" PRIu64 " mailboxes, %" PRIu64 " messages, %" PRIu64 " bytes\n",
	       export ? "exported" : "imported", user_id, export ? "to" : "from", path,
	       st.mailboxes, st.messages, st.bytes);
	return 0;
}

/* ---- entry ---- */

int
store_tool_admin_main(const char *sub, int argc, char **argv)
{
	static const struct option longs[] = {
	    {"yes", no_argument, NULL, 'y'},
	    {"expired", no_argument, NULL, 'e'},
	    {"format", required_argument, NULL, 'f'},
	    {"mailbox", required_argument, NULL, 'm'},
	    {"progress", required_argument, NULL, 'p'},
	    {"time", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = NULL, *format = NULL, *mailbox = NULL;
	bool yes = false, expired = false;
	unsigned every = PROGRESS_DEFAULT;
	time_t when = 0;
	int ch, ret, want;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longs, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'y':
			yes = true;
			break;
		case 'e':
			expired = true;
			break;
		case 'f':
			format = optarg;
			break;
		case 'm':
			mailbox = optarg;
			break;
		case 'p':
			every = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '-') {
				msg("--progress: \"%s\" is not a number", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			when = (time_t)strtoll(optarg, &end, 10);
			if (*end != '\0' || when <= 0) {
				msg("--time: \"%s\" is not seconds since 1970", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			admin_usage(stdout);
			return 0;
		default:
			admin_usage(stderr);
			return EXIT_USAGE;
		}
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	bool xfer = strcmp(sub, "export") == 0 || strcmp(sub, "import") == 0;
	bool purge = strcmp(sub, "purge") == 0;

	if (strcmp(sub, "users") == 0 || strcmp(sub, "orphans") == 0)
		want = 0;
	else if (xfer)
		want = 2;
	else if (purge)
		want = expired ? 0 : 1;
	else
		want = 1;
	enum store_mail_format fmt = STORE_FORMAT_MBOX;
	if (xfer) {
		if (format == NULL ||
		    (strcmp(format, "mbox") != 0 && strcmp(format, "maildir") != 0)) {
			msg("%s: --format mbox or --format maildir is required", sub);
			admin_usage(stderr);
			return EXIT_USAGE;
		}
		fmt = strcmp(format, "mbox") == 0 ? STORE_FORMAT_MBOX : STORE_FORMAT_MAILDIR;
	} else if (format != NULL || mailbox != NULL) {
		msg("%s: --format and --mailbox are for export and import", sub);
		return EXIT_USAGE;
	}
	if (purge && !yes) {
		msg("purge deletes every message of the user for good: add --yes");
		return EXIT_USAGE;
	}
	if (conf == NULL || nargs != want) {
		admin_usage(stderr);
		return EXIT_USAGE;
	}

	struct config *cfg = store_tool_config(conf);
	if (cfg == NULL)
		return EXIT_USAGE;
	if (admin_open(cfg) < 0) {
		config_free(cfg);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "users") == 0)
		ret = cmd_users();
	else if (strcmp(sub, "usage") == 0)
		ret = cmd_usage(cfg, args[0]);
	else if (strcmp(sub, "orphans") == 0)
		ret = cmd_orphans(cfg);
	else if (strcmp(sub, "mark-orphan") == 0)
		ret = cmd_mark(args[0], true, when);
	else if (strcmp(sub, "unmark-orphan") == 0)
		ret = cmd_mark(args[0], false, 0);
	else if (purge)
		ret = expired ? cmd_purge_expired(cfg, every) : purge_one(args[0], every);
	else
		ret = cmd_xfer(strcmp(sub, "export") == 0, args[0], args[1], fmt, mailbox, every);
	store_close();
	config_free(cfg);
	fflush(stdout);
	return ret;
}
