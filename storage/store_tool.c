/*
 * store_tool.c - `ternd store check|dump|backup|restore -c CONF ...` (check
 * --rebuild-index also rebuilds the full-text index, storage/store_fts.c): the
 * maintenance side of the mail store, as a process of its own beside a
 * running ternd (check, dump and backup only read, in one LMDB read
 * transaction, and never block the writer) or instead of it (restore).
 *
 * backup and restore are storage/store_backup.c (shared with
 * tern-admind's backup jobs); this file prints their results.
 *
 * Exit codes: 0 ok, 1 problems found or refused, 2 usage or system error.
 * Every message names the path it is about.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/compat.h"
#include "core/config.h"
#include "core/log.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"
#include "storage/store_tool.h"

#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2

static void
tool_usage(FILE *f)
{
	fprintf(f, "usage: ternd store check -c FILE [--rebuild-index]\n"
		   "       ternd store dump -c FILE USER_ID\n"
		   "       ternd store backup -c FILE DIR\n"
		   "       ternd store restore -c FILE DIR\n"
		   "       ternd store users|usage|orphans|mark-orphan|unmark-orphan|purge|"
		   "export|import ... (ternd store users -h)\n"
		   "exit status: 0 ok, 1 problems found or refused, 2 usage or error\n");
}

static void err_msg(const char *fmt, ...) PRINTF_LIKE(1, 2);

static void
err_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("ternd store: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char *pathf(const char *fmt, ...) PRINTF_LIKE(1, 2);

static char *
pathf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		fatal("out of memory");
	return s;
}

static void
print_problem(void *arg, const char *problem)
{
	printf("%s%s\n", (const char *)arg, problem);
}

/* "20260101T000000Z" */
static void
utc_stamp(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- check ---- */

/* Rebuilds the full-text index through this process's own writer, beside
 * a running ternd or without one (LMDB serialises the writers). */
static int
rebuild_index(const struct config *cfg)
{
	char *err = NULL;
	uint64_t boxes = 0, msgs = 0;

	if (store_open_existing(cfg, &err) < 0) {
		err_msg("check: %s", err);
		free(err);
		return EXIT_USAGE;
	}
	int st = store_fts_rebuild(&boxes, &msgs);
	store_close();
	if (st != STORE_OK) {
		err_msg("check: rebuilding the full-text index failed: %s", store_strerror(st));
		return EXIT_USAGE;
	}
	printf("rebuilt the full-text index: %" PRIu64 " mailboxes, %" PRIu64 " messages\n",
	       boxes, msgs);
	return 0;
}

static int
cmd_check(const struct config *cfg, bool rebuild)
{
	struct store_check_stats st;
	char *path = pathf("%s/mail", cfg->state_dir);
	char *err = NULL;
	int n = store_check_path(path, false, print_problem, "problem: ", &st, &err);

	if (n < 0) {
		err_msg("check: %s", err);
		free(err);
		free(path);
		return EXIT_USAGE;
	}
	printf("check %s: format %u, %" PRIu64 " users, %" PRIu64 " mailboxes, %" PRIu64
	       " messages, %" PRIu64 " bodies (%" PRIu64 " bytes): %s%d problem%s\n",
	       path, st.format, st.users, st.mailboxes, st.messages, st.bodies, st.body_bytes,
	       n == 0 ? "OK, " : "", n, n == 1 ? "" : "s");
	free(path);
	if (rebuild) {
		int r = rebuild_index(cfg);
		if (r != 0)
			return r;
	}
	return n == 0 ? 0 : EXIT_PROBLEMS;
}

/* ---- dump ---- */

static void
print_flags(uint32_t flags)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
	    {STORE_FLAG_SEEN, "\\Seen"},       {STORE_FLAG_ANSWERED, "\\Answered"},
	    {STORE_FLAG_FLAGGED, "\\Flagged"}, {STORE_FLAG_DELETED, "\\Deleted"},
	    {STORE_FLAG_DRAFT, "\\Draft"},
	};
	const char *sep = "";

	putchar('(');
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (flags & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = " ";
		}
	}
	putchar(')');
}

static void
print_kw(const struct kw_run *kw)
{
	size_t pos = 0, kl;
	const char *k;

	if (kw->n == 0)
		return;
	printf(" keywords=(");
	for (const char *sep = ""; store_kw_next(kw, &pos, &k, &kl) == 1; sep = " ") {
		printf("%s%.*s", sep, (int)kl, k);
	}
	putchar(')');
}

static int
dump_user(MDB_txn *txn, const char *user_id)
{
	MDB_dbi users, mbox, msg, quota, meta, subs;
	bool has_subs;
	MDB_val k = {.mv_size = strlen(user_id), .mv_data = (void *)user_id}, v;
	MDB_cursor *cur = NULL, *mc = NULL;
	struct user_rec ur;
	int rc;

	if ((rc = mdb_dbi_open(txn, "users", 0, &users)) != 0 ||
	    (rc = mdb_dbi_open(txn, "mbox", 0, &mbox)) != 0 ||
	    (rc = mdb_dbi_open(txn, "msg", 0, &msg)) != 0 ||
	    (rc = mdb_dbi_open(txn, "quota", 0, &quota)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0)
		return rc;
	has_subs = mdb_dbi_open(txn, "subs", 0, &subs) == 0;
	if (k.mv_size == 0 || k.mv_size > STORE_MAX_ID_LEN)
		return MDB_NOTFOUND;
	if ((rc = mdb_get(txn, users, &k, &v)) != 0)
		return rc;
	if (store_user_decode(v.mv_data, v.mv_size, &ur) < 0)
		return MDB_CORRUPTED;

	uint32_t format = 0;
	MDB_val fk = {.mv_size = 6, .mv_data = (void *)"format"}, fv;
	if (mdb_get(txn, meta, &fk, &fv) == 0 && fv.mv_size == 4)
		format = be_get32(fv.mv_data);
	printf("user \"%s\" id=%" PRIu64 " format=%u", user_id, ur.user_id, format);
	if (ur.next_mbox != 0)
		printf(" next_mailbox_id=%u", ur.next_mbox);
	putchar('\n');

	uint8_t qk[8];
	MDB_val qkv = {.mv_size = 8, .mv_data = qk}, qv;
	be_put64(qk, ur.user_id);
	rc = mdb_get(txn, quota, &qkv, &qv);
	if (rc == 0 && qv.mv_size == 16)
		printf("quota usage: %" PRIu64 " bytes in %" PRIu64 " messages\n",
		       be_get64(qv.mv_data), be_get64((const uint8_t *)qv.mv_data + 8));
	else if (rc == MDB_NOTFOUND)
		printf("quota usage: none recorded\n");
	else if (rc != 0)
		return rc;

	if ((rc = mdb_cursor_open(txn, mbox, &cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, msg, &mc)) != 0)
		goto out;
	uint8_t key[STORE_MBOX_KEY_LEN];
	store_key_mbox(key, ur.user_id, 0);
	k.mv_size = sizeof(key);
	k.mv_data = key;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec r;
		if (k.mv_size != STORE_MBOX_KEY_LEN || be_get64(k.mv_data) != ur.user_id)
			break;
		uint32_t id = be_get32((const uint8_t *)k.mv_data + 8);
		if (store_mbox_decode(v.mv_data, v.mv_size, &r) < 0) {
			printf("mailbox %u: record does not decode\n", id);
			continue;
		}
		printf("mailbox %u \"%.*s\" v%u uidvalidity=%u uidnext=%u messages=%u", id,
		       (int)r.name_len, r.name, ((const uint8_t *)v.mv_data)[0], r.uidvalidity,
		       r.uidnext, r.messages);
		if (((const uint8_t *)v.mv_data)[0] >= 2)
			printf(" unseen=%u deleted=%u", r.unseen, r.deleted);
		printf(" bytes=%" PRIu64 " highestmodseq=%" PRIu64, r.bytes, r.highestmodseq);
		if (r.special_use != 0)
			printf(" special_use=0x%02x", r.special_use);
		if (r.flags & MBOX_F_NOSELECT)
			printf(" \\Noselect");
		print_kw(&r.kw);
		putchar('\n');

		uint8_t mkey[STORE_MSG_KEY_LEN];
		MDB_val mk = {.mv_size = sizeof(mkey), .mv_data = mkey}, mv;
		store_key_msg(mkey, ur.user_id, id, 0);
		for (rc = mdb_cursor_get(mc, &mk, &mv, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT)) {
			struct msg_rec m;
			char date[32];
			if (mk.mv_size != STORE_MSG_KEY_LEN || memcmp(mk.mv_data, mkey, 12) != 0)
				break;
			uint32_t uid = be_get32((const uint8_t *)mk.mv_data + 12);
			if (store_msg_decode(mv.mv_data, mv.mv_size, &m) < 0) {
				printf("  uid=%u record does not decode\n", uid);
				continue;
			}
			utc_stamp((time_t)m.internal_date, date);
			printf("  uid=%u flags=", uid);
			print_flags(m.flags);
			printf(" size=%" PRIu64 " modseq=%" PRIu64 " internaldate=%s", m.size,
			       m.modseq, date);
			if (m.email_id != 0)
				printf(" emailid=%" PRIu64, m.email_id);
			printf(" body=");
			for (int i = 0; i < 8; i++)
				printf("%02x", m.hash[i]);
			print_kw(&m.kw);
			putchar('\n');
		}
		if (rc != 0 && rc != MDB_NOTFOUND)
			goto out;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	rc = 0;
	if (has_subs) {
		mdb_cursor_close(cur);
		cur = NULL;
		uint8_t skey[8];
		be_put64(skey, ur.user_id);
		k.mv_size = sizeof(skey);
		k.mv_data = skey;
		if ((rc = mdb_cursor_open(txn, subs, &cur)) != 0)
			goto out;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size <= 8 || be_get64(k.mv_data) != ur.user_id)
				break;
			printf("subscribed \"%.*s\"\n", (int)(k.mv_size - 8),
			       (const char *)k.mv_data + 8);
		}
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	}
out:
	if (mc != NULL)
		mdb_cursor_close(mc);
	if (cur != NULL)
		mdb_cursor_close(cur);
	return rc;
}

static int
cmd_dump(const struct config *cfg, const char *user_id)
{
	char *path = pathf("%s/mail", cfg->state_dir);
	char *err = NULL;
	MDB_env *env;
	MDB_txn *txn;
	int rc;

	if (store_env_open_rdonly(path, false, &env, &err) < 0) {
		err_msg("dump: %s", err);
		free(err);
		free(path);
		return EXIT_USAGE;
	}
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(env, 0);
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	}
	if (rc == 0) {
		rc = dump_user(txn, user_id);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (rc == MDB_NOTFOUND) {
		err_msg("dump: %s: no user with stable id \"%s\" (the store has never seen them)",
			path, user_id);
		free(path);
		return EXIT_PROBLEMS;
	}
	if (rc != 0) {
		err_msg("dump: %s: %s", path, mdb_strerror(rc));
		free(path);
		return EXIT_USAGE;
	}
	free(path);
	return 0;
}

/* ---- backup and restore (storage/store_backup.c) ---- */

static int
cmd_backup(const struct config *cfg, const char *dir)
{
	struct store_backup_opts o = {.problem = print_problem, .problem_arg = "backup problem: "};
	struct store_backup_info bi;
	char *err = NULL;
	int rc = store_backup(cfg->state_dir, dir, &o, &bi, &err);

	if (rc != STORE_OK) {
		err_msg("backup: %s", err);
		free(err);
		return EXIT_USAGE;
	}
	printf("backup %s/mail -> %s/mail: format %u, %" PRIu64 " users, %" PRIu64
	       " mailboxes, %" PRIu64 " messages, %" PRIu64 " bodies; check %s\n",
	       cfg->state_dir, dir, bi.format, bi.users, bi.mailboxes, bi.messages, bi.bodies,
	       bi.check_ok ? "passed" : "FOUND PROBLEMS (listed above)");
	return bi.check_ok ? 0 : EXIT_PROBLEMS;
}

static int
cmd_restore(const struct config *cfg, const char *dir)
{
	struct store_backup_opts o = {.problem = print_problem, .problem_arg = "backup problem: "};
	struct store_backup_info bi;
	char *err = NULL, *replaced = NULL;
	int rc = store_restore(cfg->state_dir, dir, &o, &bi, &replaced, &err);

	if (rc != STORE_OK) {
		err_msg("restore: %s", err);
		free(err);
		return rc == STORE_TEMPFAIL ? EXIT_USAGE : EXIT_PROBLEMS;
	}
	printf("restore %s/mail -> %s/mail: format %u, %" PRIu64 " users, %" PRIu64
	       " mailboxes, %" PRIu64 " messages; check passed\n",
	       dir, cfg->state_dir, bi.format, bi.users, bi.mailboxes, bi.messages);
	if (replaced != NULL)
		printf("the previous store is kept at %s\n", replaced);
	free(replaced);
	return 0;
}

struct config *
store_tool_config(const char *conf)
{
	char *err = NULL;
	struct config *cfg;

	log_init(LOGL_WARN);
	cfg = config_load(conf, &err);
	if (cfg == NULL) {
		err_msg("%s", err);
		free(err);
		return NULL;
	}
	if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
		err_msg("%s: [server] state_dir is not set", conf);
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

bool
store_tool_is_admin(const char *sub)
{
	static const char *const subs[] = {"users",	    "usage", "orphans", "mark-orphan",
					   "unmark-orphan", "purge", "export",	"import"};

	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		if (strcmp(sub, subs[i]) == 0)
			return true;
	return false;
}

int
store_tool_main(int argc, char **argv)
{
	const char *conf = NULL, *sub;
	int ch, ret;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		tool_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	sub = argv[1];
	argc--;
	argv++;
	if (store_tool_is_admin(sub))
		return store_tool_admin_main(sub, argc, argv);
	static const struct option longopts[] = {
	    {"rebuild-index", no_argument, NULL, 'R'},
	    {NULL, 0, NULL, 0},
	};
	bool rebuild = false;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'R':
			rebuild = true;
			break;
		case 'h':
			tool_usage(stdout);
			return 0;
		default:
			tool_usage(stderr);
			return EXIT_USAGE;
		}
	}
	int nargs = argc - optind;
	bool known = strcmp(sub, "check") == 0 || strcmp(sub, "dump") == 0 ||
		     strcmp(sub, "backup") == 0 || strcmp(sub, "restore") == 0;
	if (!known || conf == NULL || nargs != (strcmp(sub, "check") == 0 ? 0 : 1) ||
	    (rebuild && strcmp(sub, "check") != 0)) {
		if (!known)
			err_msg("unknown command \"%s\"", sub);
		tool_usage(stderr);
		return EXIT_USAGE;
	}

	struct config *cfg = store_tool_config(conf);
	if (cfg == NULL)
		return EXIT_USAGE;
	const char *arg = nargs > 0 ? argv[optind] : NULL;
	if (strcmp(sub, "check") == 0)
		ret = cmd_check(cfg, rebuild);
	else if (strcmp(sub, "dump") == 0)
		ret = cmd_dump(cfg, arg);
	else if (strcmp(sub, "backup") == 0)
		ret = cmd_backup(cfg, arg);
	else
		ret = cmd_restore(cfg, arg);
	config_free(cfg);
	fflush(stdout);
	return ret;
}
