/*
 * test_store_check.c - store_check() and the format migration on real
 * LMDB environments in mkdtemp directories: a store built through the
 * public API checks clean; then each invariant of store_schema.h is
 * broken by hand with raw LMDB writes (reference count, missing chunk,
 * mailbox counters, quota, a dangling MODSEQ entry, a UID at UIDNEXT, a
 * name pointing nowhere) and the check must name it. A hand-written
 * format-1 store migrates at store_open() to format 2 and checks clean,
 * with its counters recounted; a format-1 store with a problem is not
 * migrated (left as it was); a format-99 store is refused with a message
 * naming the version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "storage/store.h"
#include "storage/store_internal.h"

static char tmpdir[64];
static char statedir[128];
static char mailpath[160];
static struct config cfg;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned done_count;

static void
note_done(void)
{
	pthread_mutex_lock(&done_lock);
	done_count++;
	pthread_cond_broadcast(&done_cond);
	pthread_mutex_unlock(&done_lock);
}

static void
delivery_done(struct store_delivery *d, void *arg)
{
	(void)d;
	(void)arg;
	note_done();
}

static void
expunge_done(struct store_expunge *e, void *arg)
{
	(void)e;
	(void)arg;
	note_done();
}

static void
wait_done(unsigned target)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&done_lock);
	while (done_count < target)
		if (pthread_cond_timedwait(&done_cond, &done_lock, &ts) != 0)
			break;
	unsigned got = done_count;
	pthread_mutex_unlock(&done_lock);
	assert_int_equal(got, target);
}

static void
deliver(const char *body, const char *const *users, size_t n, uint32_t flags)
{
	struct store_rcpt rcpts[4];
	struct store_delivery d = {0};
	unsigned target;

	assert_true(n <= 4);
	memset(rcpts, 0, sizeof(rcpts));
	for (size_t i = 0; i < n; i++) {
		rcpts[i].user_id = users[i];
		rcpts[i].flags = flags;
		rcpts[i].trace = "Delivered-To: someone@example.test\r\n";
		rcpts[i].trace_len = strlen(rcpts[i].trace);
	}
	d.body = body;
	d.body_len = strlen(body);
	d.internal_date = 1700000000;
	d.rcpts = rcpts;
	d.nrcpts = n;
	d.done = delivery_done;
	pthread_mutex_lock(&done_lock);
	target = done_count + 1;
	pthread_mutex_unlock(&done_lock);
	store_deliver(&d);
	wait_done(target);
	assert_int_equal(d.status, STORE_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rcpts[i].status, STORE_OK);
}

static void
expunge(const char *user, uint32_t uid)
{
	struct store_expunge e = {
	    .user_id = user, .mailbox = "INBOX", .uids = &uid, .nuids = 1, .done = expunge_done};
	unsigned target;

	pthread_mutex_lock(&done_lock);
	target = done_count + 1;
	pthread_mutex_unlock(&done_lock);
	store_expunge(&e);
	wait_done(target);
	assert_int_equal(e.status, STORE_OK);
	assert_int_equal(e.expunged, 1);
}

/* Check output, collected. */
static struct buf report_buf;

static void
collect(void *arg, const char *problem)
{
	(void)arg;
	buf_append_str(&report_buf, problem);
	buf_putc(&report_buf, '\n');
}

static int
run_check(void)
{
	char *err = NULL;
	int n;

	buf_reset(&report_buf);
	n = store_check(statedir, collect, NULL, &err);
	if (n < 0)
		fail_msg("store_check failed: %s", err);
	return n;
}

static void
assert_reported(const char *needle)
{
	const char *text = report_buf.data != NULL ? report_buf.data : "";

	if (strstr(text, needle) == NULL)
		fail_msg("expected a problem with \"%s\"; the check said:\n%s", needle, text);
}

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/tern-check-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
	snprintf(mailpath, sizeof(mailpath), "%s/mail", statedir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = statedir;
	cfg.map_size = 64u << 20;
	cfg.group_commit = true;
	cfg.batch_max_ops = 64;
	cfg.batch_max_bytes = 8u << 20;
	cfg.zstd_level = 3;
	buf_init(&report_buf, 1u << 20);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	store_close();
	buf_free(&report_buf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* alice: 3 messages (one \Seen), bob: 2 then one expunged; one body is
 * shared by both. */
static void
build_store(void)
{
	static const char *const both[] = {"alice", "bob"};
	static const char *const alice[] = {"alice"};
	static const char *const bob[] = {"bob"};
	char *err = NULL;

	if (store_open(&cfg, &err) < 0)
		fail_msg("store_open: %s", err);
	deliver("Subject: shared\r\n\r\nOne body for two.\r\n", both, 2, 0);
	deliver("Subject: alice\r\n\r\nOnly alice.\r\n", alice, 1, STORE_FLAG_SEEN);
	deliver("Subject: alice 2\r\n\r\nAlice again.\r\n", alice, 1, 0);
	deliver("Subject: bob\r\n\r\nBob's.\r\n", bob, 1, 0);
	expunge("bob", 2);
	store_close();
}

/* ---- raw LMDB access ---- */

struct raw {
	MDB_env *env;
	MDB_txn *txn;
};

static void
raw_open(struct raw *r)
{
	assert_int_equal(mdb_env_create(&r->env), 0);
	mdb_env_set_maxdbs(r->env, 16);
	assert_int_equal(mdb_env_set_mapsize(r->env, 64u << 20), 0);
	assert_int_equal(mdb_env_open(r->env, mailpath, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
}

static MDB_dbi
raw_db(struct raw *r, const char *name)
{
	MDB_dbi dbi;

	assert_int_equal(mdb_dbi_open(r->txn, name, MDB_CREATE, &dbi), 0);
	return dbi;
}

static void
raw_close(struct raw *r)
{
	assert_int_equal(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
}

/* The first record of a db, copied (key and value). */
static void
raw_first(struct raw *r, MDB_dbi dbi, uint8_t *key, size_t *klen, uint8_t *val, size_t *vlen)
{
	MDB_cursor *cur;
	MDB_val k, v;

	assert_int_equal(mdb_cursor_open(r->txn, dbi, &cur), 0);
	assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
	assert_true(k.mv_size <= *klen && v.mv_size <= *vlen);
	memcpy(key, k.mv_data, k.mv_size);
	memcpy(val, v.mv_data, v.mv_size);
	*klen = k.mv_size;
	*vlen = v.mv_size;
	mdb_cursor_close(cur);
}

static void
raw_put(struct raw *r, MDB_dbi dbi, const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};

	assert_int_equal(mdb_put(r->txn, dbi, &k, &v, 0), 0);
}

/* alice is user 1 (the first delivered): her INBOX record, copied. */
static size_t
alice_inbox(struct raw *r, uint8_t *val, size_t cap)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	MDB_val uk = {.mv_size = 5, .mv_data = "alice"}, uv;
	struct user_rec ur;

	assert_int_equal(mdb_get(r->txn, raw_db(r, "users"), &uk, &uv), 0);
	assert_int_equal(store_user_decode(uv.mv_data, uv.mv_size, &ur), 0);
	store_key_mbox(key, ur.user_id, STORE_INBOX_ID);
	assert_int_equal(mdb_get(r->txn, raw_db(r, "mbox"), &k, &v), 0);
	assert_true(v.mv_size <= cap);
	memcpy(val, v.mv_data, v.mv_size);
	return v.mv_size;
}

static void
alice_inbox_put(struct raw *r, const uint8_t *val, size_t len)
{
	uint8_t key[STORE_MBOX_KEY_LEN];
	MDB_val uk = {.mv_size = 5, .mv_data = "alice"}, uv;
	struct user_rec ur;

	assert_int_equal(mdb_get(r->txn, raw_db(r, "users"), &uk, &uv), 0);
	assert_int_equal(store_user_decode(uv.mv_data, uv.mv_size, &ur), 0);
	store_key_mbox(key, ur.user_id, STORE_INBOX_ID);
	raw_put(r, raw_db(r, "mbox"), key, sizeof(key), val, len);
}

/* ---- tests ---- */

static void
test_clean_store_checks(void **state)
{
	struct store_check_stats st;
	char *err = NULL;

	(void)state;
	build_store();
	assert_int_equal(run_check(), 0);
	assert_int_equal(store_check_path(mailpath, false, collect, NULL, &st, &err), 0);
	assert_int_equal(st.users, 2);
	assert_int_equal(st.messages, 4); /* 5 delivered, 1 expunged */
	assert_int_equal(st.bodies, 3);	  /* bob's own body went with him */
	assert_int_equal(st.format, STORE_FORMAT);
}

static void
test_wrong_refcount(void **state)
{
	uint8_t key[64], val[64];
	size_t kl = sizeof(key), vl = sizeof(val);
	struct blobref_rec br;
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	MDB_dbi dbi = raw_db(&r, "blobref");
	raw_first(&r, dbi, key, &kl, val, &vl);
	assert_int_equal(store_blobref_decode(val, vl, &br), 0);
	br.refcount += 1;
	store_blobref_encode(val, &br);
	raw_put(&r, dbi, key, kl, val, vl);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("reference count");
	assert_reported("body ");
}

static void
test_missing_chunk(void **state)
{
	uint8_t key[64], val[4096];
	size_t kl = sizeof(key), vl = sizeof(val);
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	MDB_dbi dbi = raw_db(&r, "blob");
	raw_first(&r, dbi, key, &kl, val, &vl);
	MDB_val k = {.mv_size = kl, .mv_data = key};
	assert_int_equal(mdb_del(r.txn, dbi, &k, NULL), 0);
	raw_close(&r);
	assert_true(run_check() >= 1);
	assert_reported("chunk 0 of 1 is missing");
}

static void
test_wrong_mailbox_counter(void **state)
{
	uint8_t val[1024];
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	size_t n = alice_inbox(&r, val, sizeof(val));
	be_put32(val + 12, be_get32(val + 12) + 1); /* messages */
	alice_inbox_put(&r, val, n);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("mailbox 1 (INBOX): counts 4 messages, has 3");
	assert_reported("(alice)");
}

static void
test_wrong_unseen_counter(void **state)
{
	uint8_t val[1024];
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	size_t n = alice_inbox(&r, val, sizeof(val));
	if (val[0] < 2) {
		raw_close(&r);
		skip(); /* v1 records do not count unseen */
	}
	be_put32(val + 32, be_get32(val + 32) + 5);
	alice_inbox_put(&r, val, n);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("counts 7 unseen, has 2");
}

static void
test_wrong_quota(void **state)
{
	uint8_t key[64], val[64];
	size_t kl = sizeof(key), vl = sizeof(val);
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	MDB_dbi dbi = raw_db(&r, "quota");
	raw_first(&r, dbi, key, &kl, val, &vl);
	assert_int_equal(vl, 16);
	be_put64(val, be_get64(val) + 100);
	raw_put(&r, dbi, key, kl, val, vl);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("quota usage says");
}

static void
test_dangling_modseq(void **state)
{
	uint8_t val[1024], key[STORE_MODSEQ_KEY_LEN], uid[4];
	struct mbox_rec mr;
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	size_t n = alice_inbox(&r, val, sizeof(val));
	assert_int_equal(store_mbox_decode(val, n, &mr), 0);
	/* Room above the MODSEQs in use, so the only fault is the entry
	 * pointing at no message. */
	be_put64(val + 16, mr.highestmodseq + 10);
	alice_inbox_put(&r, val, n);
	store_key_modseq(key, 1, STORE_INBOX_ID, mr.highestmodseq + 5);
	be_put32(uid, 77);
	raw_put(&r, raw_db(&r, "modseq"), key, sizeof(key), uid, 4);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("uid 77: MODSEQ entry");
	assert_reported("points at a message that does not exist");
}

static void
test_uid_not_below_uidnext(void **state)
{
	uint8_t val[1024];
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	size_t n = alice_inbox(&r, val, sizeof(val));
	be_put32(val + 8, 3); /* uidnext: alice has UIDs 1..3 */
	alice_inbox_put(&r, val, n);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("uid 3: UID not below UIDNEXT 3");
}

static void
test_name_points_nowhere(void **state)
{
	uint8_t key[8 + 5], id[4];
	struct raw r;

	(void)state;
	build_store();
	raw_open(&r);
	be_put64(key, 1);
	memcpy(key + 8, "Ghost", 5);
	be_put32(id, 4000);
	raw_put(&r, raw_db(&r, "mboxname"), key, sizeof(key), id, 4);
	raw_close(&r);
	assert_int_equal(run_check(), 1);
	assert_reported("name \"Ghost\" points at mailbox 4000, which does not exist");
}

/* ---- format 1 ---- */

static void
sha256(const void *p, size_t n, uint8_t out[32])
{
	assert_int_equal(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL), 1);
}

static const char v1_body[] = "Subject: old\r\n\r\nStored by format 1.\r\n";
static const char v1_trace[] = "Delivered-To: old@example.test\r\n";

/* One user "olduser" (user id 1), INBOX with two messages sharing one
 * body: uid 1 unseen, uid 2 \Seen \Deleted; refcount_extra corrupts it. */
static void
write_v1_store(uint32_t format, uint32_t refcount_extra)
{
	struct raw r;
	uint8_t hash[32], v[256], k[64];
	size_t blen = strlen(v1_body), tlen = strlen(v1_trace);
	uint64_t size = blen + tlen;

	assert_int_equal(mkdir(statedir, 0700), 0);
	assert_int_equal(mkdir(mailpath, 0700), 0);
	raw_open(&r);
	MDB_dbi meta = raw_db(&r, "meta"), users = raw_db(&r, "users"), mbox = raw_db(&r, "mbox"),
		mboxname = raw_db(&r, "mboxname"), msg = raw_db(&r, "msg"),
		modseq = raw_db(&r, "modseq"), blob = raw_db(&r, "blob"),
		blobref = raw_db(&r, "blobref"), quota = raw_db(&r, "quota");

	be_put32(v, format);
	raw_put(&r, meta, "format", 6, v, 4);
	be_put64(v, 2);
	raw_put(&r, meta, "next_user_id", 12, v, 8);
	be_put64(v, 1);
	raw_put(&r, users, "olduser", 7, v, 8);

	memset(v, 0, sizeof(v));
	v[0] = 1;
	be_put32(v + 4, 1600000000); /* uidvalidity */
	be_put32(v + 8, 3);	     /* uidnext */
	be_put32(v + 12, 2);	     /* messages */
	be_put64(v + 16, 2);	     /* highestmodseq */
	be_put64(v + 24, 2 * size);  /* bytes */
	be_put16(v + 32, 5);
	memcpy(v + 34, "INBOX", 5);
	store_key_mbox(k, 1, 1);
	raw_put(&r, mbox, k, STORE_MBOX_KEY_LEN, v, 39);
	be_put64(k, 1);
	memcpy(k + 8, "INBOX", 5);
	be_put32(v, 1);
	raw_put(&r, mboxname, k, 13, v, 4);

	sha256(v1_body, blen, hash);
	for (uint32_t uid = 1; uid <= 2; uid++) {
		memset(v, 0, sizeof(v));
		v[0] = 1;
		be_put32(v + 4, uid == 2 ? STORE_FLAG_SEEN | STORE_FLAG_DELETED : 0);
		be_put64(v + 8, uid); /* modseq */
		be_put64(v + 16, 1600000000 + uid);
		be_put64(v + 24, size);
		memcpy(v + 32, hash, 32);
		be_put32(v + 64, (uint32_t)tlen);
		memcpy(v + 68, v1_trace, tlen);
		store_key_msg(k, 1, 1, uid);
		raw_put(&r, msg, k, STORE_MSG_KEY_LEN, v, 68 + tlen);
		store_key_modseq(k, 1, 1, uid);
		be_put32(v, uid);
		raw_put(&r, modseq, k, STORE_MODSEQ_KEY_LEN, v, 4);
	}
	size_t cb = ZSTD_compressBound(blen);
	uint8_t *z = malloc(cb);
	size_t zn = ZSTD_compress(z, cb, v1_body, blen, 3);
	assert_false(ZSTD_isError(zn));
	store_key_blob(k, hash, 0);
	raw_put(&r, blob, k, STORE_BLOB_KEY_LEN, z, zn);
	free(z);
	struct blobref_rec br = {.refcount = 2 + refcount_extra,
				 .length = blen,
				 .chunk_size = STORE_CHUNK_SIZE,
				 .nchunks = 1};
	store_blobref_encode(v, &br);
	raw_put(&r, blobref, hash, 32, v, STORE_BLOBREF_LEN);
	be_put64(k, 1);
	be_put64(v, 2 * size);
	be_put64(v + 8, 2);
	raw_put(&r, quota, k, 8, v, 16);
	raw_close(&r);
}

static uint32_t
raw_format(void)
{
	struct raw r;
	MDB_val k = {.mv_size = 6, .mv_data = "format"}, v;
	uint32_t f;

	raw_open(&r);
	assert_int_equal(mdb_get(r.txn, raw_db(&r, "meta"), &k, &v), 0);
	f = be_get32(v.mv_data);
	raw_close(&r);
	return f;
}

static void
test_migrate_v1(void **state)
{
	struct store_mailbox mb;
	struct store_msg_info *msgs;
	struct store_mailbox_info info;
	size_t n;
	char *err = NULL;
	struct arena *a = arena_new(0);
	struct buf out;

	(void)state;
	write_v1_store(1, 0);
	assert_int_equal(run_check(), 0); /* a consistent format-1 store */

	if (store_open(&cfg, &err) < 0)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_mailbox_get("olduser", "INBOX", a, &mb), STORE_OK);
	assert_int_equal(mb.messages, 2);
	assert_int_equal(mb.unseen, 1);	 /* recounted: uid 1 */
	assert_int_equal(mb.deleted, 1); /* uid 2 */
	assert_true(mb.subscribed);
	assert_int_equal(store_mailbox_list("olduser", "INBOX", a, &info, &msgs, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(info.uidnext, 3);
	assert_true(msgs[0].email_id != 0 && msgs[1].email_id != 0);
	assert_true(msgs[0].email_id != msgs[1].email_id);
	assert_true(msgs[0].email_id < (1ull << 63)); /* allocated, not derived */
	buf_init(&out, 1u << 20);
	assert_int_equal(store_message_read("olduser", "INBOX", 2, &out), STORE_OK);
	assert_int_equal(out.len, strlen(v1_trace) + strlen(v1_body));
	assert_memory_equal(out.data + strlen(v1_trace), v1_body, strlen(v1_body));
	buf_free(&out);
	/* A new delivery after the migration lands beside the old ones. */
	static const char *const old[] = {"olduser"};
	deliver("Subject: new\r\n\r\nAfter the upgrade.\r\n", old, 1, 0);
	store_close();
	arena_destroy(&a);

	assert_int_equal(raw_format(), 2);
	assert_int_equal(run_check(), 0);

	/* Every record was rewritten, and the MIME structure was stored. */
	struct raw r;
	uint8_t key[64], val[512], hash[32];
	size_t kl = sizeof(key), vl = sizeof(val);
	raw_open(&r);
	raw_first(&r, raw_db(&r, "mbox"), key, &kl, val, &vl);
	assert_int_equal(val[0], 2);
	kl = sizeof(key), vl = sizeof(val);
	raw_first(&r, raw_db(&r, "msg"), key, &kl, val, &vl);
	assert_int_equal(val[0], 2);
	kl = sizeof(key), vl = sizeof(val);
	raw_first(&r, raw_db(&r, "users"), key, &kl, val, &vl);
	assert_int_equal(vl, STORE_USER_LEN);
	sha256(v1_body, strlen(v1_body), hash);
	MDB_val mk = {.mv_size = 32, .mv_data = hash}, mv;
	assert_int_equal(mdb_get(r.txn, raw_db(&r, "mime"), &mk, &mv), 0);
	raw_close(&r);
}

static void
test_migrate_refuses_inconsistent_v1(void **state)
{
	char *err = NULL;

	(void)state;
	write_v1_store(1, 1); /* refcount 3 for 2 messages */
	assert_int_equal(run_check(), 1);
	assert_reported("reference count 3, but 2 messages use it");
	assert_int_equal(store_open(&cfg, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "not migrated"));
	assert_non_null(strstr(err, "reference count"));
	free(err);
	/* Left exactly as it was: still format 1, v1 records. */
	assert_int_equal(raw_format(), 1);
	struct raw r;
	uint8_t key[64], val[512];
	size_t kl = sizeof(key), vl = sizeof(val);
	raw_open(&r);
	raw_first(&r, raw_db(&r, "msg"), key, &kl, val, &vl);
	assert_int_equal(val[0], 1);
	raw_close(&r);
}

static void
test_newer_format_refused(void **state)
{
	char *err = NULL;

	(void)state;
	write_v1_store(99, 0);
	assert_int_equal(store_open(&cfg, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "99"));
	assert_non_null(strstr(err, mailpath));
	free(err);
	err = NULL;
	assert_int_equal(store_check(statedir, collect, NULL, &err), -1);
	assert_non_null(strstr(err, "format version 99 is newer"));
	free(err);
	assert_int_equal(raw_format(), 99);
}

static void
test_no_store(void **state)
{
	char *err = NULL;

	(void)state;
	assert_int_equal(store_check(statedir, collect, NULL, &err), -1);
	assert_non_null(strstr(err, "no mail store at"));
	free(err);
	struct stat st;
	assert_int_equal(stat(mailpath, &st), -1); /* nothing created */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_clean_store_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_refcount, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_mailbox_counter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_unseen_counter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_quota, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dangling_modseq, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uid_not_below_uidnext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_name_points_nowhere, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_refuses_inconsistent_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_format_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_store, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
