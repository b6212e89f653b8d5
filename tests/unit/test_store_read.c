/*
 * test_store_read.c - store_message_infos() (storage/store_read.c) on a
 * real LMDB environment in a mkdtemp directory: the records of chosen
 * UIDs, compared field by field with the whole-mailbox listing, for dense
 * runs, sparse picks, gaps on both sides of the step/seek threshold,
 * expunged and never-allocated UIDs, neighbouring mailboxes of the same
 * user (keys that share a prefix), flags changed after the fact, and
 * unknown users and mailboxes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/worker.h"
#include "storage/store.h"
#include "storage/store_internal.h"

static char tmpdir[64];
static char statedir[128];
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
req_done(void *req, void *arg)
{
	(void)req;
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

static unsigned
done_now(void)
{
	pthread_mutex_lock(&done_lock);
	unsigned n = done_count;
	pthread_mutex_unlock(&done_lock);
	return n;
}

static void
wait_done(unsigned target)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&done_lock);
	while (done_count < target) {
		if (pthread_cond_timedwait(&done_cond, &done_lock, &ts) != 0)
			break;
	}
	unsigned got = done_count;
	pthread_mutex_unlock(&done_lock);
	assert_int_equal(got, target);
}

#define RUN_SYNC(fn, r)                                                                            \
	do {                                                                                       \
		unsigned target_ = done_now() + 1;                                                 \
		(r)->req.worker = worker_get(0);                                                   \
		(r)->req.done = req_done;                                                          \
		fn(r);                                                                             \
		wait_done(target_);                                                                \
	} while (0)

static int
setup(void **state)
{
	char *err = NULL;

	(void)state;
	strcpy(tmpdir, "/tmp/tern-storeread-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = statedir;
	cfg.map_size = 64u << 20;
	cfg.group_commit = true;
	cfg.batch_max_ops = 64;
	cfg.batch_max_bytes = 8u << 20;
	cfg.batch_max_ms = 5;
	cfg.zstd_level = 3;
	cfg.search_indexer = true;
	if (store_open(&cfg, &err) != 0)
		fail_msg("store_open: %s", err);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[160];

	(void)state;
	store_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	worker_pool_create(1);
	worker_pool_start();
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	worker_pool_stop();
	worker_pool_destroy();
	return 0;
}

/* Appends n small distinct messages to mailbox (one transaction); message
 * i gets \Flagged when i % 3 == 0 and the keyword $k<i%4> when i % 4 != 0. */
static void
append_n(const char *user, const char *mailbox, size_t n)
{
	struct store_append_msg *m = calloc(n, sizeof(*m));
	char **bodies = calloc(n, sizeof(*bodies));
	const char **kws = calloc(n, sizeof(*kws));
	static const char *const names[] = {"", "$k1", "$k2", "$k3"};

	for (size_t i = 0; i < n; i++) {
		assert_true(asprintf(&bodies[i], "Subject: m%zu\r\n\r\nbody %s %zu\r\n", i, mailbox,
				     i) > 0);
		m[i].body = bodies[i];
		m[i].body_len = strlen(bodies[i]);
		m[i].flags = i % 3 == 0 ? STORE_FLAG_FLAGGED : 0;
		kws[i] = names[i % 4];
		m[i].keywords = i % 4 != 0 ? &kws[i] : NULL;
		m[i].nkeywords = i % 4 != 0;
		m[i].internal_date = 1600000000 + (time_t)i;
	}
	struct store_append ap = {.user_id = user, .mailbox = mailbox, .msgs = m, .nmsgs = n};
	RUN_SYNC(store_append, &ap);
	assert_int_equal(ap.req.status, STORE_OK);
	for (size_t i = 0; i < n; i++)
		free(bodies[i]);
	free(bodies);
	free(kws);
	free(m);
}

static void
expunge(const char *user, const uint32_t *uids, size_t n)
{
	struct store_expunge e = {
	    .user_id = user,
	    .mailbox = "INBOX",
	    .uids = uids,
	    .nuids = n,
	    .worker = worker_get(0),
	    .done = expunge_done,
	};
	unsigned target = done_now() + 1;

	store_expunge(&e);
	wait_done(target);
	assert_int_equal(e.status, STORE_OK);
}

static void
assert_info_equal(const struct store_msg_info *x, const struct store_msg_info *y)
{
	assert_int_equal(x->uid, y->uid);
	assert_int_equal(x->size, y->size);
	assert_int_equal(x->internal_date, y->internal_date);
	assert_int_equal(x->save_date, y->save_date);
	assert_int_equal(x->flags, y->flags);
	assert_int_equal(x->modseq, y->modseq);
	assert_int_equal(x->email_id, y->email_id);
	assert_int_equal(x->nkeywords, y->nkeywords);
	for (size_t i = 0; i < x->nkeywords; i++)
		assert_string_equal(x->keywords[i], y->keywords[i]);
}

/* Asks for uids and checks the answer against the full listing `all`:
 * exactly the asked UIDs that are listed, in order, equal field by field. */
static void
check_pick(const char *user, const char *mailbox, const uint32_t *uids, size_t n,
	   const struct store_msg_info *all, size_t nall)
{
	struct arena *a = arena_new(0);
	struct store_msg_info *got;
	size_t ngot, j = 0, want = 0;

	assert_int_equal(store_message_infos(user, mailbox, uids, n, a, &got, &ngot), STORE_OK);
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < nall && all[k].uid != uids[i])
			k++;
		if (k == nall)
			continue;
		want++;
		assert_true(j < ngot);
		assert_info_equal(&got[j], &all[k]);
		j++;
	}
	assert_int_equal(ngot, want);
	if (ngot == 0)
		assert_null(got);
	arena_destroy(&a);
}

static void
list(const char *user, const char *mailbox, struct arena *a, struct store_msg_info **all_r,
     size_t *n_r)
{
	struct store_mailbox_info info;

	assert_int_equal(store_mailbox_list(user, mailbox, a, &info, all_r, n_r), STORE_OK);
}

static void
test_picks(void **state)
{
	(void)state;
	const char *u = "uuid-read";
	struct arena *a = arena_new(0);
	struct store_msg_info *all, *dall;
	size_t nall, ndall;

	/* Drafts (a higher mailbox id) first, so INBOX's records have
	 * neighbours on both sides in the msg db. */
	append_n(u, "Drafts", 5);
	append_n(u, "INBOX", 300);
	append_n(u, "Archive", 7);
	/* Holes: every 7th UID, and the run 100..150. */
	uint32_t gone[100];
	size_t ngone = 0;
	for (uint32_t uid = 7; uid <= 300; uid += 7)
		if (uid < 100 || uid > 150)
			gone[ngone++] = uid;
	for (uint32_t uid = 100; uid <= 150; uid++)
		gone[ngone++] = uid;
	expunge(u, gone, ngone);
	/* A flag change after the fact: a new MODSEQ to be read back. */
	uint32_t fl[] = {2, 3, 299};
	struct store_flags sf = {.user_id = u,
				 .mailbox = "INBOX",
				 .uids = fl,
				 .nuids = 3,
				 .mode = STORE_FLAGS_ADD,
				 .flags = STORE_FLAG_SEEN};
	sf.req.a = a;
	RUN_SYNC(store_flags, &sf);
	assert_int_equal(sf.req.status, STORE_OK);
	list(u, "INBOX", a, &all, &nall);
	list(u, "Drafts", a, &dall, &ndall);
	assert_int_equal(nall, 300 - ngone);
	assert_int_equal(ndall, 5);

	/* Every UID, past the end too: the same as the listing. */
	uint32_t every[400];
	for (uint32_t i = 0; i < 400; i++)
		every[i] = i + 1;
	check_pick(u, "INBOX", every, 400, all, nall);
	check_pick(u, "Drafts", every, 400, dall, ndall);

	/* One UID: present, expunged, never allocated, the first and last. */
	uint32_t one[] = {2, 7, 120, 5000, 1, 300};
	for (size_t i = 0; i < ARRAY_SIZE(one); i++)
		check_pick(u, "INBOX", &one[i], 1, all, nall);
	struct arena *b = arena_new(0);
	struct store_msg_info *got;
	size_t ngot;
	assert_int_equal(store_message_infos(u, "INBOX", &one[0], 1, b, &got, &ngot), STORE_OK);
	assert_int_equal(ngot, 1);
	assert_int_equal(got[0].flags, STORE_FLAG_SEEN);
	assert_int_equal(got[0].nkeywords, 1);
	assert_string_equal(got[0].keywords[0], "$k1");
	assert_int_equal(got[0].modseq, sf.changed[0].modseq);
	assert_int_equal(store_message_infos(u, "INBOX", &one[1], 1, b, &got, &ngot), STORE_OK);
	assert_int_equal(ngot, 0);
	assert_null(got);

	/* Strides below, at and above the step/seek threshold, and sparse
	 * picks landing in holes and past the end. */
	for (uint32_t stride = 1; stride <= 40; stride += 3) {
		uint32_t pick[400];
		size_t np = 0;
		for (uint32_t uid = 1 + stride / 2; uid <= 330; uid += stride)
			pick[np++] = uid;
		check_pick(u, "INBOX", pick, np, all, nall);
	}
	uint32_t sparse[] = {1, 6, 7, 8, 99, 100, 150, 151, 152, 298, 300, 301, 70000};
	check_pick(u, "INBOX", sparse, ARRAY_SIZE(sparse), all, nall);
	/* Pseudo-random subsets. */
	uint32_t seed = 12345;
	for (int round = 0; round < 50; round++) {
		uint32_t pick[310];
		size_t np = 0;
		for (uint32_t uid = 1; uid <= 310; uid++) {
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 10 < (uint32_t)(round % 10))
				pick[np++] = uid;
		}
		check_pick(u, "INBOX", pick, np, all, nall);
	}
	/* Nothing asked: nothing returned. */
	assert_int_equal(store_message_infos(u, "INBOX", every, 0, b, &got, &ngot), STORE_OK);
	assert_int_equal(ngot, 0);
	arena_destroy(&b);
	arena_destroy(&a);
}

static void
test_absent(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct store_msg_info *got = (struct store_msg_info *)&got;
	size_t ngot = 99;
	uint32_t uids[] = {1, 2, 3};

	/* A user who never got mail has an empty INBOX and nothing else. */
	assert_int_equal(store_message_infos("uuid-nobody", "INBOX", uids, 3, a, &got, &ngot),
			 STORE_OK);
	assert_int_equal(ngot, 0);
	assert_null(got);
	assert_int_equal(store_message_infos("uuid-nobody", "Archive", uids, 3, a, &got, &ngot),
			 STORE_NOTFOUND);
	/* An existing user: an unknown mailbox, and an empty one. */
	append_n("uuid-some", "INBOX", 2);
	assert_int_equal(store_message_infos("uuid-some", "Nope", uids, 3, a, &got, &ngot),
			 STORE_NOTFOUND);
	assert_int_equal(store_message_infos("uuid-some", "Trash", uids, 3, a, &got, &ngot),
			 STORE_OK);
	assert_int_equal(ngot, 0);
	/* "inbox" is INBOX. */
	assert_int_equal(store_message_infos("uuid-some", "inbox", uids, 3, a, &got, &ngot),
			 STORE_OK);
	assert_int_equal(ngot, 2);
	assert_int_equal(got[0].uid, 1);
	assert_int_equal(got[1].uid, 2);
	arena_destroy(&a);
}

/* The top header of a body is kept raw (`hdr`): a read inside it works
 * without the compressed chunks (deleted here behind the store's back),
 * one past it needs them; a header over STORE_HDR_MAX is not kept. */
static void
test_header_kept_raw(void **state)
{
	static const char small[] = "Subject: kept\r\nFrom: a@example.test\r\n\r\nthe body\r\n";
	size_t hlen = strlen("Subject: kept\r\nFrom: a@example.test\r\n\r\n");
	char *big = malloc(STORE_HDR_MAX + 200);
	size_t bl = 0;

	(void)state;
	while (bl < STORE_HDR_MAX + 50)
		bl += (size_t)sprintf(big + bl, "X-Pad: %060zu\r\n", bl);
	bl += (size_t)sprintf(big + bl, "\r\nbig body\r\n");
	struct store_append_msg m[2] = {{.body = small, .body_len = strlen(small)},
					{.body = big, .body_len = bl}};
	struct store_append ap = {.user_id = "hdr-user", .mailbox = "INBOX", .msgs = m, .nmsgs = 2};
	RUN_SYNC(store_append, &ap);
	assert_int_equal(ap.req.status, STORE_OK);

	/* Drop chunk 0 of both bodies. */
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(store_g->env, NULL, 0, &txn), 0);
	for (int i = 0; i < 2; i++) {
		uint8_t hash[STORE_HASH_LEN], key[STORE_BLOB_KEY_LEN];
		assert_int_equal(
		    EVP_Digest(m[i].body, m[i].body_len, hash, NULL, EVP_sha256(), NULL), 1);
		store_key_blob(key, hash, 0);
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
		assert_int_equal(mdb_del(txn, store_g->blob, &k, NULL), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);

	struct buf out;
	buf_init(&out, 1u << 20);
	assert_int_equal(store_message_read_range("hdr-user", "INBOX", m[0].uid, 0, hlen, &out),
			 STORE_OK);
	assert_int_equal(out.len, hlen);
	assert_memory_equal(out.data, small, hlen);
	buf_reset(&out);
	assert_int_equal(store_message_read_range("hdr-user", "INBOX", m[0].uid, 9, 4, &out),
			 STORE_OK);
	assert_memory_equal(out.data, "kept", 4);
	buf_reset(&out);
	/* Past the header: the chunks are gone, so the read fails. */
	assert_int_not_equal(
	    store_message_read_range("hdr-user", "INBOX", m[0].uid, 0, hlen + 1, &out), STORE_OK);
	buf_reset(&out);
	/* The big header was not kept: even its first bytes need the chunk. */
	assert_int_not_equal(store_message_read_range("hdr-user", "INBOX", m[1].uid, 0, 10, &out),
			     STORE_OK);
	buf_free(&out);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_picks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_header_kept_raw, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
