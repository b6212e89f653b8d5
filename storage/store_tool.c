/*
 * store_tool.c - `ternd store check|dump|backup|restore -c CONF ...`: the
 * maintenance side of the mail store, as a process of its own beside a
 * running ternd (check, dump and backup only read, in one LMDB read
 * transaction, and never block the writer) or instead of it (restore).
 *
 * backup: a compacted copy (mdb_env_copy2, MDB_CP_COMPACT) of one read
 * snapshot into DIR/mail, fsynced, then checked, and a MANIFEST saying
 * format, time and the check's result. restore: copies DIR/mail into a
 * staging directory next to the store, checks that copy (format known,
 * no problem), refuses while any process has the store open (the fcntl
 * lock LMDB itself holds on lock.mdb), then swaps it in with one atomic
 * rename and keeps the old store as mail.replaced-TIMESTAMP: nothing is
 * ever deleted but the staging copy of a refused restore.
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
#include "storage/store_internal.h"
#include "storage/store_tool.h"

#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2
#define MANIFEST_MAGIC "tern-store-backup 1"

static void
tool_usage(FILE *f)
{
	fprintf(f, "usage: ternd store check -c FILE\n"
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

static int
fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
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

static int
cmd_check(const struct config *cfg)
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

/* ---- backup ---- */

/* 1 if path is a directory with entries, 0 if empty or absent, -1 error. */
static int
dir_nonempty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int r = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			r = 1;
			break;
		}
	}
	closedir(d);
	return r;
}

static int
write_file_synced(const char *path, const char *text)
{
	char *tmp = pathf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = strlen(text), off = 0;
	int rc = -1;

	if (fd < 0)
		goto out;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto close;
		off += (size_t)n;
	}
	if (fsync(fd) == 0)
		rc = 0;
close:
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -1;
out:
	free(tmp);
	return rc;
}

static int
cmd_backup(const struct config *cfg, const char *dir)
{
	char *src = pathf("%s/mail", cfg->state_dir);
	char *dst = pathf("%s/mail", dir);
	char *data = pathf("%s/data.mdb", dst);
	char *manifest = pathf("%s/MANIFEST", dir);
	struct store_check_stats st;
	char *err = NULL, *text = NULL, stamp[32];
	MDB_env *env = NULL;
	int ret = EXIT_USAGE, rc, n;

	n = dir_nonempty(dir);
	if (n != 0) {
		if (n > 0)
			err_msg("backup: %s is not empty; back up into a new or empty directory",
				dir);
		else
			err_msg("backup: %s: %s", dir, strerror(errno));
		goto out;
	}
	/* The source first: a failed backup leaves no directory behind. */
	if (store_env_open_rdonly(src, false, &env, &err) < 0) {
		err_msg("backup: %s", err);
		goto out;
	}
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || mkdir(dst, 0700) < 0) {
		err_msg("backup: cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	time_t started = time(NULL);
	/* One read snapshot, written compacted: free pages dropped, so the
	 * copy is as small as the live data. */
	if ((rc = mdb_env_copy2(env, dst, MDB_CP_COMPACT)) != 0) {
		err_msg("backup: copying %s to %s failed: %s", src, dst, mdb_strerror(rc));
		goto out;
	}
	mdb_env_close(env);
	env = NULL;
	if (fsync_path(data) < 0 || fsync_path(dst) < 0 || fsync_path(dir) < 0) {
		err_msg("backup: cannot sync %s: %s", data, strerror(errno));
		goto out;
	}
	/* The copy is checked, not the live store: what the manifest vouches
	 * for is exactly what a restore would put back. */
	n = store_check_path(dst, true, print_problem, "backup problem: ", &st, &err);
	if (n < 0) {
		err_msg("backup: the copy in %s does not check: %s", dst, err);
		goto out;
	}
	utc_stamp(started, stamp);
	text = pathf("%s\nformat %u\ncreated %s %lld\nsource %s\n"
		     "users %" PRIu64 "\nmailboxes %" PRIu64 "\nmessages %" PRIu64
		     "\nbodies %" PRIu64 "\ncheck %s %d\n",
		     MANIFEST_MAGIC, st.format, stamp, (long long)started, src, st.users,
		     st.mailboxes, st.messages, st.bodies, n == 0 ? "ok" : "problems", n);
	if (write_file_synced(manifest, text) < 0 || fsync_path(dir) < 0) {
		err_msg("backup: cannot write %s: %s", manifest, strerror(errno));
		goto out;
	}
	printf("backup %s -> %s: format %u, %" PRIu64 " users, %" PRIu64 " mailboxes, %" PRIu64
	       " messages, %" PRIu64 " bodies; check %s\n",
	       src, dst, st.format, st.users, st.mailboxes, st.messages, st.bodies,
	       n == 0 ? "passed" : "FOUND PROBLEMS (listed above)");
	ret = n == 0 ? 0 : EXIT_PROBLEMS;
out:
	if (env != NULL)
		mdb_env_close(env);
	free(err);
	free(text);
	free(src);
	free(dst);
	free(data);
	free(manifest);
	return ret;
}

/* ---- restore ---- */

/* Reads the manifest: 0 with *format_r, or -1 with a reason printed. */
static int
read_manifest(const char *path, uint32_t *format_r)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	bool magic = false, ok = false, have_format = false;
	unsigned fmt = 0;

	if (f == NULL) {
		err_msg("restore: %s: %s (not a backup made by 'ternd store backup'?)", path,
			strerror(errno));
		return -1;
	}
	for (int lineno = 0; getline(&line, &cap, f) > 0; lineno++) {
		line[strcspn(line, "\n")] = '\0';
		if (lineno == 0)
			magic = strcmp(line, MANIFEST_MAGIC) == 0;
		else if (sscanf(line, "format %u", &fmt) == 1)
			have_format = true;
		else if (strncmp(line, "check ", 6) == 0)
			ok = strcmp(line, "check ok 0") == 0;
	}
	free(line);
	fclose(f);
	if (!magic || !have_format) {
		err_msg("restore: %s is not a Tern backup manifest", path);
		return -1;
	}
	if (!ok) {
		err_msg("restore: %s says the backup did not pass its check", path);
		return -1;
	}
	*format_r = fmt;
	return 0;
}

/* Copies src to dst (created, must not exist) and fsyncs it. */
static int
copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = -1, rc = -1;
	size_t cap = 1u << 20;
	char *chunk = NULL;

	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		goto done;
	chunk = xmalloc(cap);
	for (;;) {
		ssize_t n = read(in, chunk, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto done;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, chunk + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto done;
			off += w;
		}
	}
	rc = fsync(out);
done:
	free(chunk);
	if (out >= 0 && close(out) < 0)
		rc = -1;
	close(in);
	return rc;
}

/* Whether a process has the environment in dir open: LMDB holds a shared
 * fcntl lock on byte 0 of lock.mdb for as long as an environment is open,
 * and a dead process holds none. 0 free (*fd_r keeps our exclusive lock
 * until it is closed, so no ternd opens the old store meanwhile), 1 in use
 * (*pid_r the holder), -1 error. */
static int
store_in_use(const char *dir, int *fd_r, pid_t *pid_r)
{
	char *lock = pathf("%s/lock.mdb", dir);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	int fd = open(lock, O_RDWR | O_CLOEXEC);

	*fd_r = -1;
	*pid_r = 0;
	free(lock);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fcntl(fd, F_SETLK, &fl) == 0) {
		*fd_r = fd;
		return 0;
	}
	if (errno != EAGAIN && errno != EACCES) {
		close(fd);
		return -1;
	}
	fl.l_type = F_WRLCK;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
		*pid_r = fl.l_pid;
	close(fd);
	return 1;
}

static void
remove_staging(const char *staging)
{
	char *data = pathf("%s/data.mdb", staging);

	unlink(data);
	free(data);
	rmdir(staging);
}

static int
cmd_restore(const struct config *cfg, const char *dir)
{
	char *bdir = pathf("%s/mail", dir);
	char *bdata = pathf("%s/data.mdb", bdir);
	char *manifest = pathf("%s/MANIFEST", dir);
	char *target = pathf("%s/mail", cfg->state_dir);
	char *staging = NULL, *sdata = NULL, *replaced = NULL, *err = NULL, stamp[32];
	struct store_check_stats st;
	struct stat sst;
	uint32_t mfmt;
	int ret = EXIT_USAGE, lockfd = -1, n;
	pid_t pid;

	if (read_manifest(manifest, &mfmt) < 0) {
		ret = EXIT_PROBLEMS;
		goto out;
	}
	if (stat(bdata, &sst) < 0) {
		err_msg("restore: %s: %s", bdata, strerror(errno));
		ret = EXIT_PROBLEMS;
		goto out;
	}
	if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
		err_msg("restore: cannot create %s: %s", cfg->state_dir, strerror(errno));
		goto out;
	}
	n = store_in_use(target, &lockfd, &pid);
	if (n < 0) {
		err_msg("restore: %s/lock.mdb: %s", target, strerror(errno));
		goto out;
	}
	if (n > 0) {
		err_msg("restore: %s is in use by process %ld (a running ternd?); stop it "
			"first, nothing was changed",
			target, (long)pid);
		ret = EXIT_PROBLEMS;
		goto out;
	}

	/* Copy first, check the copy: what is checked is what goes in. */
	utc_stamp(time(NULL), stamp);
	staging = pathf("%s/mail.restore-%s", cfg->state_dir, stamp);
	int mk, tries = 0;
	while ((mk = mkdir(staging, 0700)) < 0 && errno == EEXIST && ++tries < 100) {
		free(staging);
		staging = pathf("%s/mail.restore-%s-%d", cfg->state_dir, stamp, tries);
	}
	sdata = pathf("%s/data.mdb", staging);
	if (mk < 0) {
		err_msg("restore: cannot create %s: %s", staging, strerror(errno));
		free(staging);
		staging = NULL;
		goto out;
	}
	if (copy_file(bdata, sdata) < 0 || fsync_path(staging) < 0) {
		err_msg("restore: copying %s to %s failed: %s", bdata, sdata, strerror(errno));
		remove_staging(staging);
		goto out;
	}
	n = store_check_path(staging, true, print_problem, "backup problem: ", &st, &err);
	if (n != 0) {
		if (n < 0)
			err_msg("restore: the backup %s is not usable: %s", bdir, err);
		else
			err_msg("restore: the backup %s has %d problem%s (listed above); nothing "
				"was changed",
				bdir, n, n == 1 ? "" : "s");
		remove_staging(staging);
		ret = EXIT_PROBLEMS;
		goto out;
	}
	if (st.format != mfmt) {
		err_msg("restore: %s says format %u but the backup is format %u; nothing was "
			"changed",
			manifest, mfmt, st.format);
		remove_staging(staging);
		ret = EXIT_PROBLEMS;
		goto out;
	}
	/* ternd drops to [server] user: the store must stay theirs. */
	struct stat own;
	if (stat(cfg->state_dir, &own) == 0 && geteuid() == 0 &&
	    (chown(staging, own.st_uid, own.st_gid) < 0 ||
	     chown(sdata, own.st_uid, own.st_gid) < 0)) {
		err_msg("restore: cannot give %s to uid %ld: %s", staging, (long)own.st_uid,
			strerror(errno));
		remove_staging(staging);
		goto out;
	}

	struct stat tst;
	if (stat(target, &tst) == 0) {
		/* Never deleted: the current store is kept beside. */
		replaced = pathf("%s.replaced-%s", target, stamp);
		for (int i = 1; access(replaced, F_OK) == 0; i++) {
			free(replaced);
			replaced = pathf("%s.replaced-%s-%d", target, stamp, i);
		}
		/* One atomic exchange, so the state dir never lacks a store
		 * (a missing one would be created empty at the next start). */
		if (renameat2(AT_FDCWD, staging, AT_FDCWD, target, RENAME_EXCHANGE) < 0) {
			err_msg("restore: cannot swap %s and %s: %s; nothing was changed", staging,
				target, strerror(errno));
			remove_staging(staging);
			goto out;
		}
		if (rename(staging, replaced) < 0) {
			err_msg("restore: the backup is in place at %s, but the previous store is "
				"at %s (renaming it to %s failed: %s)",
				target, staging, replaced, strerror(errno));
			goto out;
		}
	} else if (rename(staging, target) < 0) {
		err_msg("restore: cannot rename %s to %s: %s", staging, target, strerror(errno));
		remove_staging(staging);
		goto out;
	}
	if (fsync_path(cfg->state_dir) < 0) {
		err_msg("restore: cannot sync %s: %s", cfg->state_dir, strerror(errno));
		goto out;
	}
	printf("restore %s -> %s: format %u, %" PRIu64 " users, %" PRIu64 " mailboxes, %" PRIu64
	       " messages; check passed\n",
	       bdir, target, st.format, st.users, st.mailboxes, st.messages);
	if (replaced != NULL)
		printf("the previous store is kept at %s\n", replaced);
	ret = 0;
out:
	if (lockfd >= 0)
		close(lockfd);
	free(err);
	free(bdir);
	free(bdata);
	free(manifest);
	free(target);
	free(staging);
	free(sdata);
	free(replaced);
	return ret;
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
	optind = 1;
	while ((ch = getopt(argc, argv, "c:h")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
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
	if (!known || conf == NULL || nargs != (strcmp(sub, "check") == 0 ? 0 : 1)) {
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
		ret = cmd_check(cfg);
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
