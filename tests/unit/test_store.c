/*
 * test_store.c - the mail store (storage/) on a real LMDB environment in a
 * mkdtemp directory, with real worker threads receiving the completions:
 * single-instance bodies and their reference counts, exact round trips of
 * trace + body (also through many chunks and a map that has to grow),
 * per-recipient quota answers, group commit under concurrent load,
 * durability across close/open, UIDs that never go back, the format
 * version check and the read side's edge cases; and the v2 operations:
 * default folders, CREATE/DELETE/RENAME/SUBSCRIBE, STORE with keywords and
 * CONDSTORE, COPY/MOVE with shared bodies, APPEND, changes since a MODSEQ
 * with tombstones, watchers, ranged reads, concurrent writers, and the
 * v1/v2 record codecs.
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

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/worker.h"
#include "storage/mime.h"
#include "storage/store.h"
#include "storage/store_internal.h"

static char tmpdir[64];
static char statedir[128];
static struct config cfg;

/* Completions: counted under a lock, waited for by the test thread. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned done_count;
static unsigned done_off_worker; /* completions that ran off a worker thread */

static void
note_done(void)
{
	pthread_mutex_lock(&done_lock);
	if (worker_current() == NULL)
		done_off_worker++;
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

/* Waits until `target` completions have been counted (30 s at most). */
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

static unsigned
done_now(void)
{
	pthread_mutex_lock(&done_lock);
	unsigned n = done_count;
	pthread_mutex_unlock(&done_lock);
	return n;
}

static void
deliver_sync(struct store_delivery *d)
{
	unsigned target = done_now() + 1;

	d->worker = worker_get(0);
	d->done = delivery_done;
	d->arg = NULL;
	store_deliver(d);
	wait_done(target);
}

static int
expunge_sync(const char *user, const uint32_t *uids, size_t n, size_t *expunged_r)
{
	struct store_expunge e = {
	    .user_id = user,
	    .mailbox = "INBOX",
	    .uids = uids,
	    .nuids = n,
	    .worker = worker_get(1),
	    .done = expunge_done,
	};
	unsigned target = done_now() + 1;

	store_expunge(&e);
	wait_done(target);
	if (expunged_r != NULL)
		*expunged_r = e.expunged;
	return e.status;
}

static void
sha256(const void *p, size_t n, uint8_t out[32])
{
	assert_int_equal(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL), 1);
}

static void
refcount_of(const char *body, size_t len, uint32_t *refs_r, uint32_t *chunks_r)
{
	uint8_t h[32];

	sha256(body, len, h);
	assert_int_equal(store_blob_refcount(h, refs_r, chunks_r), 0);
}

/* Reads a message whole into a fresh string (caller frees). */
static char *
read_msg(const char *user, uint32_t uid, size_t *len_r, int *status_r)
{
	struct buf b;

	buf_init(&b, 64u << 20);
	*status_r = store_message_read(user, "INBOX", uid, &b);
	*len_r = b.len;
	char *copy = malloc(b.len + 1);
	if (b.len > 0)
		memcpy(copy, b.data, b.len);
	copy[b.len] = '\0';
	buf_free(&b);
	return copy;
}

static void
default_cfg(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = statedir;
	cfg.map_size = 64u << 20;
	cfg.group_commit = true;
	cfg.batch_max_ops = 64;
	cfg.batch_max_bytes = 8u << 20;
	cfg.batch_max_ms = 5;
	cfg.zstd_level = 3;
	cfg.search_indexer = true;
}

static void
open_store(void)
{
	char *err = NULL;
	int rc = store_open(&cfg, &err);

	if (rc != 0)
		fail_msg("store_open: %s", err);
	assert_null(err);
}

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/tern-store-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	/* state_dir does not exist yet: store_open creates it. */
	snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
	default_cfg();
	open_store();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char cmd[160];

	store_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	worker_pool_create(2);
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

static const char body1[] = "From: a@example.test\r\nSubject: hi\r\n\r\nhello there\r\n";
static const char *users3[] = {"uuid-aaaa", "uuid-bbbb", "uuid-cccc"};
static const char *traces3[] = {
    "Delivered-To: a@example.test\r\n",
    "Delivered-To: b@example.test\r\nReturn-Path: <s@x.test>\r\n",
    NULL,
};

static void
deliver_body1_to_3(uint32_t expect_uid)
{
	struct store_rcpt r[3];

	memset(r, 0, sizeof(r));
	for (int i = 0; i < 3; i++) {
		r[i].user_id = users3[i];
		r[i].trace = traces3[i];
		r[i].trace_len = traces3[i] != NULL ? strlen(traces3[i]) : 0;
		r[i].status = 99;
	}
	struct store_delivery d = {
	    .body = body1,
	    .body_len = strlen(body1),
	    .internal_date = 1700000000,
	    .rcpts = r,
	    .nrcpts = 3,
	};
	deliver_sync(&d);
	assert_int_equal(d.status, STORE_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].status, STORE_OK);
		assert_int_equal(r[i].uid, expect_uid);
	}
}

static void
test_one_body_three_users(void **state)
{
	(void)state;
	uint64_t chunks, blobs;
	uint32_t refs, nchunks;

	unsigned off0 = done_off_worker;
	deliver_body1_to_3(1);
	assert_int_equal(done_off_worker, off0); /* done() ran on a worker */

	assert_int_equal(store_blob_counts(&chunks, &blobs), 0);
	assert_int_equal(blobs, 1);
	assert_int_equal(chunks, 1);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 3);
	assert_int_equal(nchunks, 1);

	for (int i = 0; i < 3; i++) {
		struct arena *a = arena_new(0);
		struct store_mailbox_info info;
		struct store_msg_info *msgs;
		size_t n;
		size_t tl = traces3[i] != NULL ? strlen(traces3[i]) : 0;

		assert_int_equal(store_mailbox_list(users3[i], "INBOX", a, &info, &msgs, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(msgs[0].uid, 1);
		assert_int_equal(msgs[0].size, tl + strlen(body1));
		assert_int_equal(msgs[0].internal_date, 1700000000);
		assert_int_equal(msgs[0].flags, 0);
		assert_int_not_equal(info.uidvalidity, 0);
		assert_int_equal(info.uidnext, 2);
		assert_int_equal(info.messages, 1);
		assert_int_equal(info.bytes, tl + strlen(body1));
		assert_int_equal(info.highestmodseq, 1);
		arena_destroy(&a);

		size_t len;
		int st;
		char *m = read_msg(users3[i], 1, &len, &st);
		assert_int_equal(st, STORE_OK);
		assert_int_equal(len, tl + strlen(body1));
		assert_memory_equal(m, traces3[i] != NULL ? traces3[i] : "", tl);
		assert_memory_equal(m + tl, body1, strlen(body1));
		free(m);

		uint64_t qb, qm;
		assert_int_equal(store_usage(users3[i], &qb, &qm), 0);
		assert_int_equal(qb, tl + strlen(body1));
		assert_int_equal(qm, 1);
	}

	/* Expunge from two users: the body stays for the third. */
	uint32_t uid1 = 1;
	size_t ex;
	assert_int_equal(expunge_sync(users3[0], &uid1, 1, &ex), STORE_OK);
	assert_int_equal(ex, 1);
	assert_int_equal(expunge_sync(users3[1], &uid1, 1, &ex), STORE_OK);
	assert_int_equal(ex, 1);
	/* Expunging a UID that is gone is not an error, and removes nothing. */
	assert_int_equal(expunge_sync(users3[1], &uid1, 1, &ex), STORE_OK);
	assert_int_equal(ex, 0);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 1);
	assert_int_equal(nchunks, 1);

	size_t len;
	int st;
	char *m = read_msg(users3[0], 1, &len, &st);
	assert_int_equal(st, STORE_NOTFOUND);
	assert_int_equal(len, 0);
	free(m);
	m = read_msg(users3[2], 1, &len, &st);
	assert_int_equal(st, STORE_OK);
	assert_int_equal(len, strlen(body1));
	assert_memory_equal(m, body1, len);
	free(m);

	uint64_t qb, qm;
	assert_int_equal(store_usage(users3[0], &qb, &qm), 0);
	assert_int_equal(qb, 0);
	assert_int_equal(qm, 0);

	/* The last reference: chunks and count are gone. */
	assert_int_equal(expunge_sync(users3[2], &uid1, 1, &ex), STORE_OK);
	assert_int_equal(ex, 1);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 0);
	assert_int_equal(nchunks, 0);
	assert_int_equal(store_blob_counts(&chunks, &blobs), 0);
	assert_int_equal(blobs, 0);
	assert_int_equal(chunks, 0);

	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	assert_int_equal(store_mailbox_list(users3[2], "inbox", a, &info, &msgs, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(info.messages, 0);
	assert_int_equal(info.bytes, 0);
	assert_int_equal(info.uidnext, 2);
	assert_true(info.highestmodseq > 1); /* the expunge is a change */
	arena_destroy(&a);
}

/* xorshift: bytes zstd cannot compress. */
static void
fill_random(char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (char)(x >> 24);
	}
}

static void
test_big_body_chunks_and_map_growth(void **state)
{
	(void)state;
	/* Reopen with a map far too small for the body: the writer must
	 * grow it and retry the batch. */
	store_close();
	cfg.map_size = 1u << 20;
	open_store();

	size_t blen = 3u << 20;
	char *body = malloc(blen);
	fill_random(body, blen, 0x9e3779b97f4a7c15ull);
	const char *trace = "Delivered-To: big@example.test\r\n";
	struct store_rcpt r = {.user_id = "uuid-big", .trace = trace, .trace_len = strlen(trace)};
	struct store_delivery d = {.body = body, .body_len = blen, .rcpts = &r, .nrcpts = 1};
	struct store_stats st0, st1;

	store_stats(&st0);
	deliver_sync(&d);
	store_stats(&st1);
	assert_int_equal(d.status, STORE_OK);
	assert_int_equal(r.status, STORE_OK);
	assert_int_equal(r.uid, 1);
	assert_true(st1.map_grows > st0.map_grows);
	assert_true(st1.map_size > (1u << 20));

	uint32_t refs, nchunks;
	refcount_of(body, blen, &refs, &nchunks);
	assert_int_equal(refs, 1);
	assert_int_equal(nchunks, (blen + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE);
	assert_true(nchunks >= 12);

	size_t len;
	int status;
	char *m = read_msg("uuid-big", 1, &len, &status);
	assert_int_equal(status, STORE_OK);
	assert_int_equal(len, strlen(trace) + blen);
	assert_memory_equal(m, trace, strlen(trace));
	assert_memory_equal(m + strlen(trace), body, blen);
	free(m);

	/* An output buffer too small: TEMPFAIL, and nothing appended. */
	struct buf b;
	buf_init(&b, 1u << 20);
	assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(store_message_read("uuid-big", "INBOX", 1, &b), STORE_TEMPFAIL);
	assert_int_equal(b.len, 1);
	buf_free(&b);

	/* Growth survives a reopen. */
	store_close();
	open_store();
	m = read_msg("uuid-big", 1, &len, &status);
	assert_int_equal(status, STORE_OK);
	assert_int_equal(len, strlen(trace) + blen);
	assert_memory_equal(m + strlen(trace), body, blen);
	free(m);
	free(body);
}

static void
test_quota_per_recipient(void **state)
{
	(void)state;
	const char *body = "Subject: q\r\n\r\n0123456789012345678901234567890123456789\r\n";
	size_t size = strlen(body);
	struct store_rcpt r[3] = {
	    {.user_id = "uuid-free"},
	    {.user_id = "uuid-tiny", .quota = 10},
	    {.user_id = "uuid-half", .quota = size + size / 2},
	};
	struct store_delivery d = {.body = body, .body_len = size, .rcpts = r, .nrcpts = 3};

	deliver_sync(&d);
	assert_int_equal(d.status, STORE_OK);
	assert_int_equal(r[0].status, STORE_OK);
	assert_int_equal(r[1].status, STORE_TOOBIG);
	assert_int_equal(r[1].uid, 0);
	assert_int_equal(r[2].status, STORE_OK);

	/* Second copy: the half-full one is now over quota. */
	deliver_sync(&d);
	assert_int_equal(d.status, STORE_OK);
	assert_int_equal(r[0].status, STORE_OK);
	assert_int_equal(r[0].uid, 2);
	assert_int_equal(r[1].status, STORE_TOOBIG);
	assert_int_equal(r[2].status, STORE_OVERQUOTA);
	assert_int_equal(r[2].uid, 0);

	uint64_t qb, qm;
	assert_int_equal(store_usage("uuid-free", &qb, &qm), 0);
	assert_int_equal(qb, 2 * size);
	assert_int_equal(qm, 2);
	assert_int_equal(store_usage("uuid-half", &qb, &qm), 0);
	assert_int_equal(qb, size);
	assert_int_equal(qm, 1);
	assert_int_equal(store_usage("uuid-tiny", &qb, &qm), 0);
	assert_int_equal(qb, 0);
	assert_int_equal(qm, 0);

	uint32_t refs, nchunks;
	refcount_of(body, size, &refs, &nchunks);
	assert_int_equal(refs, 3); /* 2 + 1 stored copies, failures none */

	/* No internal date given: the time of delivery. */
	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	assert_int_equal(store_mailbox_list("uuid-free", "INBOX", a, &info, &msgs, &n), 0);
	assert_int_equal(n, 2);
	assert_true(llabs((long long)(msgs[0].internal_date - time(NULL))) < 60);
	arena_destroy(&a);

	/* An empty user id is refused for that recipient only. */
	struct store_rcpt r2[2] = {{.user_id = ""}, {.user_id = "uuid-free"}};
	struct store_delivery d2 = {.body = body, .body_len = size, .rcpts = r2, .nrcpts = 2};
	deliver_sync(&d2);
	assert_int_equal(r2[0].status, STORE_PERMFAIL);
	assert_int_equal(r2[1].status, STORE_OK);
	assert_int_equal(r2[1].uid, 3);
}

#define NTHREADS 4
#define PER_THREAD 50

struct feeder {
	int index;
	struct store_delivery d[PER_THREAD];
	struct store_rcpt r[PER_THREAD];
	char body[PER_THREAD][64];
};

static void *
feeder_main(void *arg)
{
	struct feeder *f = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		/* Half the bodies are shared by everyone, half are unique. */
		if (i % 2 == 0)
			snprintf(f->body[i], sizeof(f->body[i]), "Subject: shared\r\n\r\nsame\r\n");
		else
			snprintf(f->body[i], sizeof(f->body[i]), "Subject: t%d m%d\r\n\r\nx\r\n",
				 f->index, i);
		f->r[i].user_id = "uuid-load";
		f->d[i].body = f->body[i];
		f->d[i].body_len = strlen(f->body[i]);
		f->d[i].rcpts = &f->r[i];
		f->d[i].nrcpts = 1;
		f->d[i].worker = worker_get((unsigned)(f->index + i) % 2);
		f->d[i].done = delivery_done;
		store_deliver(&f->d[i]);
	}
	return NULL;
}

static void
test_concurrent_group_commit(void **state)
{
	(void)state;
	static struct feeder feeders[NTHREADS];
	pthread_t th[NTHREADS];
	struct store_stats st0, st1;
	unsigned target = done_now() + NTHREADS * PER_THREAD;

	store_stats(&st0);
	for (int t = 0; t < NTHREADS; t++) {
		memset(&feeders[t], 0, sizeof(feeders[t]));
		feeders[t].index = t;
		assert_int_equal(pthread_create(&th[t], NULL, feeder_main, &feeders[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	wait_done(target);
	store_stats(&st1);

	uint8_t seen[NTHREADS * PER_THREAD + 1];
	memset(seen, 0, sizeof(seen));
	for (int t = 0; t < NTHREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			uint32_t uid = feeders[t].r[i].uid;
			assert_int_equal(feeders[t].d[i].status, STORE_OK);
			assert_int_equal(feeders[t].r[i].status, STORE_OK);
			assert_in_range(uid, 1, NTHREADS * PER_THREAD);
			assert_int_equal(seen[uid], 0);
			seen[uid] = 1;
		}
	}
	assert_int_equal(st1.ops - st0.ops, NTHREADS * PER_THREAD);
	assert_true(st1.commits - st0.commits < NTHREADS * PER_THREAD);
	assert_true(st1.commits > st0.commits);

	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	assert_int_equal(store_mailbox_list("uuid-load", "INBOX", a, &info, &msgs, &n), 0);
	assert_int_equal(n, NTHREADS * PER_THREAD);
	assert_int_equal(info.uidnext, NTHREADS * PER_THREAD + 1);
	assert_int_equal(info.highestmodseq, NTHREADS * PER_THREAD);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(msgs[i].uid, i + 1); /* UID order */
	arena_destroy(&a);

	const char *shared = "Subject: shared\r\n\r\nsame\r\n";
	uint32_t refs, nchunks;
	refcount_of(shared, strlen(shared), &refs, &nchunks);
	assert_int_equal(refs, NTHREADS * PER_THREAD / 2);
	uint64_t chunks, blobs;
	assert_int_equal(store_blob_counts(&chunks, &blobs), 0);
	assert_int_equal(blobs, 1 + NTHREADS * PER_THREAD / 2);
}

static void
test_no_group_commit(void **state)
{
	(void)state;
	store_close();
	cfg.group_commit = false;
	open_store();

	static struct store_delivery d[20];
	static struct store_rcpt r[20];
	struct store_stats st0, st1;
	unsigned target = done_now() + 20;

	store_stats(&st0);
	for (int i = 0; i < 20; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		memset(&d[i], 0, sizeof(d[i]));
		r[i].user_id = "uuid-solo";
		d[i].body = body1;
		d[i].body_len = strlen(body1);
		d[i].rcpts = &r[i];
		d[i].nrcpts = 1;
		d[i].worker = worker_get(0);
		d[i].done = delivery_done;
		store_deliver(&d[i]);
	}
	wait_done(target);
	store_stats(&st1);
	assert_int_equal(st1.commits - st0.commits, 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(r[i].uid, i + 1);
}

static void
test_reopen_and_uids_grow(void **state)
{
	(void)state;
	deliver_body1_to_3(1);

	struct arena *a = arena_new(0);
	struct store_mailbox_info before, after;
	struct store_msg_info *msgs;
	size_t n;
	assert_int_equal(store_mailbox_list(users3[1], "INBOX", a, &before, &msgs, &n), 0);

	store_close();
	open_store();

	assert_int_equal(store_mailbox_list(users3[1], "INBOX", a, &after, &msgs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(after.uidvalidity, before.uidvalidity);
	assert_int_equal(after.uidnext, 2);
	size_t len;
	int st;
	char *m = read_msg(users3[1], 1, &len, &st);
	assert_int_equal(st, STORE_OK);
	assert_int_equal(len, strlen(traces3[1]) + strlen(body1));
	assert_memory_equal(m + strlen(traces3[1]), body1, strlen(body1));
	free(m);
	uint32_t refs, nchunks;
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 3);

	/* After the reopen, UIDs continue where they were. */
	deliver_body1_to_3(2);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 6);
	arena_destroy(&a);
}

static void
test_uids_after_expunge(void **state)
{
	(void)state;
	const char *u = "uuid-seq";
	struct store_rcpt r = {.user_id = u};
	struct store_delivery d = {
	    .body = body1, .body_len = strlen(body1), .rcpts = &r, .nrcpts = 1};

	for (uint32_t i = 1; i <= 3; i++) {
		deliver_sync(&d);
		assert_int_equal(r.uid, i);
	}
	uint32_t uids[] = {3, 2, 7};
	size_t ex;
	assert_int_equal(expunge_sync(u, uids, 3, &ex), STORE_OK);
	assert_int_equal(ex, 2);
	deliver_sync(&d);
	assert_int_equal(r.status, STORE_OK);
	assert_int_equal(r.uid, 4);

	store_close();
	open_store();
	deliver_sync(&d);
	assert_int_equal(r.uid, 5);

	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	assert_int_equal(store_mailbox_list(u, "INBOX", a, &info, &msgs, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[1].uid, 4);
	assert_int_equal(msgs[2].uid, 5);
	assert_int_equal(info.messages, 3);
	assert_int_equal(info.bytes, 3 * strlen(body1));
	arena_destroy(&a);
	uint32_t refs, nchunks;
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 3);
}

static void
test_unknown_user_and_mailbox(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *msgs = (void *)1;
	size_t n = 99;
	uint64_t qb = 1, qm = 1;

	assert_int_equal(store_mailbox_list("uuid-nobody", "INBOX", a, &info, &msgs, &n), 0);
	assert_int_equal(n, 0);
	assert_null(msgs);
	assert_int_equal(info.uidvalidity, 0);
	assert_int_equal(store_mailbox_list("uuid-nobody", "Archive", a, &info, &msgs, &n),
			 STORE_NOTFOUND);
	assert_int_equal(store_usage("uuid-nobody", &qb, &qm), 0);
	assert_int_equal(qb, 0);
	assert_int_equal(qm, 0);

	size_t len;
	int st;
	char *m = read_msg("uuid-nobody", 1, &len, &st);
	assert_int_equal(st, STORE_NOTFOUND);
	free(m);
	size_t ex = 9;
	uint32_t uid = 1;
	assert_int_equal(expunge_sync("uuid-nobody", &uid, 1, &ex), STORE_OK);
	assert_int_equal(ex, 0);
	arena_destroy(&a);

	/* A bad argument is a permanent failure of that delivery. */
	struct store_rcpt r = {.user_id = "uuid-nobody"};
	struct store_delivery d = {.body = NULL, .body_len = 5, .rcpts = &r, .nrcpts = 1};
	deliver_sync(&d);
	assert_int_equal(d.status, STORE_PERMFAIL);
	assert_int_equal(r.status, STORE_PERMFAIL);
	assert_int_equal(r.uid, 0);
	assert_int_equal(store_usage("uuid-nobody", &qb, &qm), 0);
	assert_int_equal(qm, 0);

	assert_string_equal(store_strerror(STORE_OVERQUOTA), "mailbox is over quota");
	assert_string_not_equal(store_strerror(STORE_TEMPFAIL), store_strerror(STORE_PERMFAIL));
}

/* A failing operation aborts only its own nested transaction: an expunge
 * that deletes one message and then meets a corrupt record is rolled back
 * whole, while a delivery in the same batch commits. */
static void
test_failed_op_rolls_back_alone(void **state)
{
	(void)state;
	struct store_rcpt r = {.user_id = "uuid-c"};
	struct store_delivery d = {
	    .body = body1, .body_len = strlen(body1), .rcpts = &r, .nrcpts = 1};
	deliver_sync(&d);
	assert_int_equal(r.uid, 1);

	/* Plant a record that does not decode, as uid 5 of uuid-c's INBOX. */
	char path[200];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi users, msg;
	MDB_val k = {.mv_size = 6, .mv_data = (void *)"uuid-c"}, v;
	uint8_t key[16];

	store_close();
	snprintf(path, sizeof(path), "%s/mail", statedir);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "users", 0, &users), 0);
	assert_int_equal(mdb_dbi_open(txn, "msg", 0, &msg), 0);
	assert_int_equal(mdb_get(txn, users, &k, &v), 0);
	assert_int_equal(v.mv_size, STORE_USER_LEN); /* v2: user_id at 8 */
	memcpy(key, (const uint8_t *)v.mv_data + 8, 8);
	memcpy(key + 8, "\0\0\0\1\0\0\0\5", 8);
	k.mv_size = sizeof(key);
	k.mv_data = key;
	v.mv_size = 7;
	v.mv_data = (void *)"garbage";
	assert_int_equal(mdb_put(txn, msg, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	open_store();

	uint32_t uids[] = {1, 5};
	struct store_expunge e = {
	    .user_id = "uuid-c",
	    .mailbox = "INBOX",
	    .uids = uids,
	    .nuids = 2,
	    .worker = worker_get(1),
	    .done = expunge_done,
	};
	struct store_rcpt r2 = {.user_id = "uuid-d"};
	struct store_delivery d2 = {.body = body1,
				    .body_len = strlen(body1),
				    .rcpts = &r2,
				    .nrcpts = 1,
				    .worker = worker_get(0),
				    .done = delivery_done};
	unsigned target = done_now() + 2;
	store_expunge(&e);
	store_deliver(&d2);
	wait_done(target);

	assert_int_equal(e.status, STORE_PERMFAIL);
	assert_int_equal(e.expunged, 0);
	assert_int_equal(d2.status, STORE_OK);
	assert_int_equal(r2.status, STORE_OK);
	assert_int_equal(r2.uid, 1);

	size_t len;
	int st;
	char *m = read_msg("uuid-c", 1, &len, &st);
	assert_int_equal(st, STORE_OK); /* the delete of uid 1 was rolled back */
	assert_int_equal(len, strlen(body1));
	free(m);
	m = read_msg("uuid-c", 5, &len, &st);
	assert_int_equal(st, STORE_PERMFAIL);
	assert_int_equal(len, 0);
	free(m);
	uint64_t qb, qm;
	assert_int_equal(store_usage("uuid-c", &qb, &qm), 0);
	assert_int_equal(qm, 1);
	uint32_t refs, nchunks;
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 2);
}

static void
test_newer_format_refused(void **state)
{
	(void)state;
	char path[200];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t ver[4] = {0, 0, 0, 99};
	MDB_val k = {.mv_size = 6, .mv_data = (void *)"format"};
	MDB_val v = {.mv_size = 4, .mv_data = ver};

	store_close();
	snprintf(path, sizeof(path), "%s/mail", statedir);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	char *err = NULL;
	assert_int_equal(store_open(&cfg, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, path));
	free(err);

	/* A store that is not open fails deliveries cleanly. */
	struct store_rcpt r = {.user_id = "uuid-x"};
	struct store_delivery d = {
	    .body = body1, .body_len = strlen(body1), .rcpts = &r, .nrcpts = 1};
	deliver_sync(&d);
	assert_int_equal(d.status, STORE_TEMPFAIL);
	assert_int_equal(r.status, STORE_TEMPFAIL);
}

static void
test_open_error_names_path(void **state)
{
	(void)state;
	char path[200];
	struct config bad = cfg;

	snprintf(path, sizeof(path), "%s/afile", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/afile/state", tmpdir);
	bad.state_dir = path;

	store_close();
	char *err = NULL;
	assert_int_equal(store_open(&bad, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	free(err);
	open_store(); /* the good one still opens */
	struct stat st;
	assert_int_equal(stat(statedir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

/* ---- v2 operations ---- */

static void
req_done(void *req, void *arg)
{
	(void)req;
	(void)arg;
	note_done();
}

/* Submits a request through fn and waits for its done(). */
#define RUN_SYNC(fn, r)                                                                            \
	do {                                                                                       \
		unsigned target_ = done_now() + 1;                                                 \
		(r)->req.worker = worker_get(0);                                                   \
		(r)->req.done = req_done;                                                          \
		fn(r);                                                                             \
		wait_done(target_);                                                                \
	} while (0)

static int
mbox_op(const char *user, enum store_mailbox_op op, const char *name, const char *new_name,
	uint32_t special, uint32_t *id_r)
{
	struct store_mailbox_change m = {
	    .op = op, .user_id = user, .name = name, .new_name = new_name, .special_use = special};

	RUN_SYNC(store_mailbox_change, &m);
	if (id_r != NULL)
		*id_r = m.id;
	return m.req.status;
}

static int
append_one(const char *user, const char *mailbox, const char *body, uint32_t flags,
	   const char *const *kws, size_t nkws, uint64_t quota, uint32_t *uid_r)
{
	struct store_append_msg am = {.body = body,
				      .body_len = strlen(body),
				      .flags = flags,
				      .keywords = kws,
				      .nkeywords = nkws,
				      .internal_date = 1600000000};
	struct store_append ap = {
	    .user_id = user, .mailbox = mailbox, .msgs = &am, .nmsgs = 1, .quota = quota};

	RUN_SYNC(store_append, &ap);
	if (uid_r != NULL)
		*uid_r = am.uid;
	return ap.req.status;
}

static int
expunge_in(const char *user, const char *mailbox, const uint32_t *uids, size_t n)
{
	struct store_expunge e = {.user_id = user,
				  .mailbox = mailbox,
				  .uids = uids,
				  .nuids = n,
				  .worker = worker_get(1),
				  .done = expunge_done};
	unsigned target = done_now() + 1;

	store_expunge(&e);
	wait_done(target);
	return e.status;
}

static struct store_mailbox
get_box(struct arena *a, const char *user, const char *name, int expect)
{
	struct store_mailbox b;

	assert_int_equal(store_mailbox_get(user, name, a, &b), expect);
	return b;
}

static void
deliver_to(const char *user, const char *mailbox, const char *body, uint32_t *uid_r)
{
	struct store_rcpt r = {.user_id = user, .mailbox = mailbox};
	struct store_delivery d = {
	    .body = body, .body_len = strlen(body), .rcpts = &r, .nrcpts = 1};

	deliver_sync(&d);
	assert_int_equal(r.status, STORE_OK);
	if (uid_r != NULL)
		*uid_r = r.uid;
}

/* Sort keys: written at delivery, deleted with the body, filled at open
 * for bodies stored without them, computed at read time when missing
 * after the fill. */
static void
sortkeys_expect(const char *user, size_t n_expect)
{
	struct arena *a = arena_new(0);
	struct store_sortkey *k;
	size_t n;

	assert_int_equal(store_sort_keys(user, "INBOX", a, &k, &n), STORE_OK);
	assert_int_equal(n, n_expect);
	if (n > 0) {
		assert_int_equal(k[0].uid, 1);
		assert_string_equal(k[0].subject, "LUNCH");
		assert_string_equal(k[0].from, "BOB");
		assert_string_equal(k[0].msgid, "<one@x>");
		assert_true(k[0].has_sent);
		assert_int_equal(k[0].sent, 1772445600);
	}
	if (n > 1) {
		assert_string_equal(k[1].subject, "");
		assert_false(k[1].has_sent);
		assert_int_equal(k[1].sent, k[1].internal_date);
		assert_string_equal(k[1].refs, "<one@x>");
	}
	arena_destroy(&a);
}

/* Removes every sortkey record, and the "done" mark unless keep_mark. */
static void
drop_sortkeys(bool keep_mark)
{
	char path[200];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi sk, meta;
	MDB_val k = {.mv_size = 8, .mv_data = (void *)"sortkeys"};

	store_close();
	snprintf(path, sizeof(path), "%s/mail", statedir);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "sortkey", 0, &sk), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_drop(txn, sk, 0), 0);
	if (!keep_mark)
		assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	open_store();
}

static void
report_fail(void *arg, const char *problem)
{
	(void)arg;
	fail_msg("store_check: %s", problem);
}

static void
check_closed(void)
{
	char *err = NULL;

	store_close();
	assert_int_equal(store_check(statedir, report_fail, NULL, &err), 0);
	assert_null(err);
	open_store();
}

static void
test_sortkeys(void **state)
{
	(void)state;
	uint64_t chunks, blobs;

	deliver_to("uuid-s", NULL,
		   "From: Bob <bob@x>\r\nSubject: Re: lunch\r\nMessage-ID: <one@x>\r\n"
		   "Date: Mon, 02 Mar 2026 11:00:00 +0100\r\n\r\nbody\r\n",
		   NULL);
	deliver_to("uuid-s", NULL, "In-Reply-To: <one@x>\r\n\r\nsecond\r\n", NULL);
	sortkeys_expect("uuid-s", 2);
	sortkeys_expect("uuid-none", 0); /* a user never seen: empty INBOX */

	drop_sortkeys(false); /* as stored by a build without them */
	sortkeys_expect("uuid-s", 2);
	check_closed();

	drop_sortkeys(true); /* stored later by an older build */
	sortkeys_expect("uuid-s", 2);

	/* Expunged: the body goes, and its keys with it (store_check). */
	uint32_t uids[] = {1, 2};
	assert_int_equal(expunge_sync("uuid-s", uids, 2, NULL), STORE_OK);
	assert_int_equal(store_blob_counts(&chunks, &blobs), 0);
	assert_int_equal(blobs, 0);
	sortkeys_expect("uuid-s", 0);
	check_closed();
}

static void
test_new_user_defaults(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct store_mailbox *boxes;
	const char **subs;
	size_t n, ns;

	/* Never seen: just an empty INBOX. */
	assert_int_equal(store_mailbox_list_all("uuid-new", a, &boxes, &n, &subs, &ns), 0);
	assert_int_equal(n, 1);
	assert_string_equal(boxes[0].name, "INBOX");
	assert_int_equal(boxes[0].uidvalidity, 0);
	assert_int_equal(ns, 0);

	uint32_t uid;
	deliver_to("uuid-new", "Nope", body1, &uid); /* missing folder: INBOX */
	assert_int_equal(uid, 1);
	assert_int_equal(store_mailbox_list_all("uuid-new", a, &boxes, &n, &subs, &ns), 0);
	static const char *names[] = {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"};
	static const uint32_t special[] = {0,
					   STORE_SPECIAL_ARCHIVE,
					   STORE_SPECIAL_DRAFTS,
					   STORE_SPECIAL_JUNK,
					   STORE_SPECIAL_SENT,
					   STORE_SPECIAL_TRASH};
	assert_int_equal(n, 6);
	assert_int_equal(ns, 6);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(boxes[i].name, names[i]);
		assert_int_equal(boxes[i].special_use, special[i]);
		assert_true(boxes[i].subscribed);
		assert_false(boxes[i].noselect);
		assert_false(boxes[i].has_children);
		assert_int_not_equal(boxes[i].uidvalidity, 0);
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(boxes[i].uidvalidity, boxes[j].uidvalidity);
			assert_int_not_equal(boxes[i].id, boxes[j].id);
			assert_string_not_equal(boxes[i].objectid, boxes[j].objectid);
		}
	}
	assert_int_equal(boxes[0].id, STORE_INBOX_ID);
	assert_int_equal(boxes[0].messages, 1);
	assert_int_equal(boxes[0].unseen, 1);
	assert_int_equal(strlen(boxes[0].objectid), 25);
	assert_int_equal(boxes[0].objectid[0], 'M');

	/* Delivery into a named folder with flags. */
	struct store_rcpt r = {.user_id = "uuid-new",
			       .mailbox = "Junk",
			       .flags = STORE_FLAG_SEEN | STORE_FLAG_DELETED};
	struct store_delivery d = {
	    .body = body1, .body_len = strlen(body1), .rcpts = &r, .nrcpts = 1};
	deliver_sync(&d);
	assert_int_equal(r.status, STORE_OK);
	struct store_mailbox j = get_box(a, "uuid-new", "Junk", 0);
	assert_int_equal(j.messages, 1);
	assert_int_equal(j.unseen, 0);
	assert_int_equal(j.deleted, 1);
	assert_int_equal(j.uidnext, 2);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	assert_int_equal(store_mailbox_list("uuid-new", "Junk", a, &info, &msgs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(msgs[0].flags, STORE_FLAG_SEEN | STORE_FLAG_DELETED);
	assert_true(llabs((long long)(msgs[0].save_date - time(NULL))) < 60);
	assert_int_not_equal(msgs[0].email_id, 0);
	get_box(a, "uuid-new", "Missing", STORE_NOTFOUND);
	arena_destroy(&a);
}

static void
test_mailbox_ops(void **state)
{
	(void)state;
	const char *u = "uuid-mb";
	struct arena *a = arena_new(0);
	uint32_t id, id2;
	char longname[STORE_MAILBOX_NAME_MAX + 2];

	/* Names. */
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "", NULL, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "/a", NULL, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a/", NULL, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a//b", NULL, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a\tb", NULL, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a\xff", NULL, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a\xc0\xaf", NULL, 0, NULL), STORE_PERMFAIL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, longname, NULL, 0, NULL), STORE_LIMIT);
	char deep[2 * (STORE_MAILBOX_DEPTH_MAX + 1)];
	for (int i = 0; i < STORE_MAILBOX_DEPTH_MAX + 1; i++) {
		deep[2 * i] = 'd';
		deep[2 * i + 1] = '/';
	}
	deep[sizeof(deep) - 1] = '\0';
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, deep, NULL, 0, NULL), STORE_LIMIT);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "Caf\xc3\xa9", NULL, 0, NULL), 0);

	/* CREATE makes the parents; an existing name is refused. */
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a/b/c", NULL, 0, &id), 0);
	assert_true(id > 1);
	struct store_mailbox b = get_box(a, u, "a", 0);
	assert_true(b.has_children);
	assert_false(b.noselect);
	assert_false(b.subscribed);
	assert_int_equal(get_box(a, u, "a/b/c", 0).id, id);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a/b", NULL, 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "inbox", NULL, 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "inbox/x", NULL, 0, NULL), 0);
	assert_string_equal(get_box(a, u, "INBOX/x", 0).name, "INBOX/x");

	/* DELETE: INBOX never; absent; with children it becomes \Noselect. */
	assert_int_equal(mbox_op(u, STORE_MBOX_DELETE, "INBOX", NULL, 0, NULL), STORE_NOTALLOWED);
	assert_int_equal(mbox_op(u, STORE_MBOX_DELETE, "zz", NULL, 0, NULL), STORE_NOTFOUND);
	uint32_t uid;
	assert_int_equal(append_one(u, "a", body1, 0, NULL, 0, 0, &uid), 0);
	assert_int_equal(uid, 1);
	uint64_t qb, qm;
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qm, 1);
	uint32_t old_uv = get_box(a, u, "a", 0).uidvalidity;
	uint32_t old_id = get_box(a, u, "a", 0).id;
	assert_int_equal(mbox_op(u, STORE_MBOX_DELETE, "a", NULL, 0, NULL), 0);
	b = get_box(a, u, "a", 0);
	assert_true(b.noselect);
	assert_int_equal(b.messages, 0);
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qm, 0);
	assert_int_equal(qb, 0);
	uint32_t refs, nchunks;
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 0);
	assert_int_equal(mbox_op(u, STORE_MBOX_DELETE, "a", NULL, 0, NULL), STORE_NOTALLOWED);
	assert_int_equal(append_one(u, "a", body1, 0, NULL, 0, 0, NULL), STORE_NOTALLOWED);
	assert_int_equal(append_one(u, "nothere", body1, 0, NULL, 0, 0, NULL), STORE_NOTFOUND);
	/* Delivery to a placeholder goes to INBOX. */
	deliver_to(u, "a", body1, &uid);
	assert_int_equal(get_box(a, u, "INBOX", 0).messages, 1);

	/* CREATE of a placeholder: a real mailbox again, new id and
	 * UIDVALIDITY. */
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a", NULL, 0, &id2), 0);
	b = get_box(a, u, "a", 0);
	assert_false(b.noselect);
	assert_int_not_equal(b.id, old_id);
	assert_int_not_equal(b.uidvalidity, old_uv);
	assert_int_equal(b.id, id2);

	/* Delete and re-create: new id, new UIDVALIDITY. */
	struct store_mailbox c1 = get_box(a, u, "a/b/c", 0);
	assert_int_equal(mbox_op(u, STORE_MBOX_DELETE, "a/b/c", NULL, 0, NULL), 0);
	get_box(a, u, "a/b/c", STORE_NOTFOUND);
	assert_false(get_box(a, u, "a/b", 0).has_children);
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "a/b/c", NULL, 0, NULL), 0);
	struct store_mailbox c2 = get_box(a, u, "a/b/c", 0);
	assert_int_not_equal(c1.id, c2.id);
	assert_int_not_equal(c1.uidvalidity, c2.uidvalidity);

	/* RENAME: children follow with their ids; target parents made. */
	assert_int_equal(append_one(u, "a/b", body1, 0, NULL, 0, 0, NULL), 0);
	uint32_t ab = get_box(a, u, "a/b", 0).id, abc = get_box(a, u, "a/b/c", 0).id;
	uint32_t abuv = get_box(a, u, "a/b", 0).uidvalidity;
	assert_int_equal(mbox_op(u, STORE_MBOX_RENAME, "a/b", "a/b/z", 0, NULL), STORE_NOTALLOWED);
	assert_int_equal(mbox_op(u, STORE_MBOX_RENAME, "a/b", "Trash", 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_op(u, STORE_MBOX_RENAME, "nope", "q", 0, NULL), STORE_NOTFOUND);
	assert_int_equal(mbox_op(u, STORE_MBOX_RENAME, "a/b", "x/y", 0, &id), 0);
	assert_int_equal(id, ab);
	get_box(a, u, "a/b", STORE_NOTFOUND);
	get_box(a, u, "a/b/c", STORE_NOTFOUND);
	b = get_box(a, u, "x/y", 0);
	assert_int_equal(b.id, ab);
	assert_int_equal(b.uidvalidity, abuv);
	assert_int_equal(b.messages, 1);
	assert_true(b.has_children);
	assert_int_equal(get_box(a, u, "x/y/c", 0).id, abc);
	assert_false(get_box(a, u, "x", 0).noselect);
	size_t len;
	int st;
	struct buf rb;
	buf_init(&rb, 1 << 20);
	assert_int_equal(store_message_read(u, "x/y", 1, &rb), 0);
	assert_int_equal(rb.len, strlen(body1));
	buf_free(&rb);
	(void)len;
	(void)st;

	/* Subscriptions are independent of existence. */
	assert_int_equal(mbox_op(u, STORE_MBOX_SUBSCRIBE, "ghost", NULL, 0, NULL), 0);
	assert_int_equal(mbox_op(u, STORE_MBOX_SUBSCRIBE, "x/y", NULL, 0, NULL), 0);
	assert_int_equal(mbox_op(u, STORE_MBOX_UNSUBSCRIBE, "Trash", NULL, 0, NULL), 0);
	assert_int_equal(mbox_op(u, STORE_MBOX_UNSUBSCRIBE, "never", NULL, 0, NULL), 0);
	struct store_mailbox *boxes;
	const char **subs;
	size_t n, ns;
	assert_int_equal(store_mailbox_list_all(u, a, &boxes, &n, &subs, &ns), 0);
	bool ghost = false, trash = false;
	for (size_t i = 0; i < ns; i++) {
		ghost |= strcmp(subs[i], "ghost") == 0;
		trash |= strcmp(subs[i], "Trash") == 0;
	}
	assert_true(ghost);
	assert_false(trash);
	assert_string_equal(boxes[0].name, "INBOX");
	for (size_t i = 2; i < n; i++)
		assert_true(strcmp(boxes[i - 1].name, boxes[i].name) < 0);
	assert_true(get_box(a, u, "x/y", 0).subscribed);
	assert_false(get_box(a, u, "Trash", 0).subscribed);

	/* CREATE with special use. */
	assert_int_equal(
	    mbox_op(u, STORE_MBOX_CREATE, "Flagged", NULL, STORE_SPECIAL_FLAGGED, NULL), 0);
	assert_int_equal(get_box(a, u, "Flagged", 0).special_use, STORE_SPECIAL_FLAGGED);
	arena_destroy(&a);
}

static int
flags_req(const char *user, const char *mbox, const uint32_t *uids, size_t n,
	  enum store_flags_mode mode, uint32_t flags, const char *const *kws, size_t nkws,
	  uint64_t unchangedsince, struct arena *a, struct store_flags *f)
{
	memset(f, 0, sizeof(*f));
	f->req.a = a;
	f->user_id = user;
	f->mailbox = mbox;
	f->uids = uids;
	f->nuids = n;
	f->mode = mode;
	f->flags = flags;
	f->keywords = kws;
	f->nkeywords = nkws;
	f->unchangedsince = unchangedsince;
	RUN_SYNC(store_flags, f);
	return f->req.status;
}

static void
test_flags_and_condstore(void **state)
{
	(void)state;
	const char *u = "uuid-fl";
	struct arena *a = arena_new(0);
	struct store_flags f;
	const char *kw1[] = {"$Forwarded", "work"};
	uint32_t uid;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(append_one(u, "INBOX", body1, 0, kw1, i == 0 ? 2 : 0, 0, &uid), 0);
		assert_int_equal(uid, (uint32_t)i + 1);
	}
	struct store_mailbox b = get_box(a, u, "INBOX", 0);
	assert_int_equal(b.messages, 3);
	assert_int_equal(b.unseen, 3);
	assert_int_equal(b.nkeywords, 2);
	uint64_t hms0 = b.highestmodseq;
	assert_int_equal(hms0, 3);

	uint32_t uids[] = {1, 2, 9};
	assert_int_equal(
	    flags_req(u, "INBOX", uids, 3, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, 0, a, &f), 0);
	assert_int_equal(f.nchanged, 2);
	assert_int_equal(f.changed[0].uid, 1);
	assert_int_equal(f.changed[1].uid, 2);
	assert_true(f.changed[0].modseq > hms0);
	assert_true(f.changed[1].modseq > f.changed[0].modseq);
	assert_int_equal(f.changed[0].nkeywords, 2);
	assert_string_equal(f.changed[0].keywords[1], "work");
	b = get_box(a, u, "INBOX", 0);
	assert_int_equal(b.unseen, 1);
	assert_int_equal(b.highestmodseq, f.changed[1].modseq);
	uint64_t m1 = f.changed[0].modseq, hms1 = b.highestmodseq;

	/* No actual change: no new MODSEQ, not listed. */
	assert_int_equal(
	    flags_req(u, "INBOX", uids, 2, STORE_FLAGS_ADD, STORE_FLAG_SEEN, kw1, 1, 0, a, &f), 0);
	assert_int_equal(f.nchanged, 1); /* only 2 lacked $Forwarded */
	assert_int_equal(f.changed[0].uid, 2);
	assert_int_equal(
	    flags_req(u, "INBOX", uids, 2, STORE_FLAGS_ADD, STORE_FLAG_SEEN, kw1, 1, 0, a, &f), 0);
	assert_int_equal(f.nchanged, 0);
	assert_int_equal(get_box(a, u, "INBOX", 0).highestmodseq, hms1 + 1);

	/* UNCHANGEDSINCE: 2 changed after m1, so it is refused. */
	assert_int_equal(
	    flags_req(u, "INBOX", uids, 2, STORE_FLAGS_SET, STORE_FLAG_FLAGGED, NULL, 0, m1, a, &f),
	    0);
	assert_int_equal(f.nmodified, 1);
	assert_int_equal(f.modified[0], 2);
	assert_int_equal(f.nchanged, 1);
	assert_int_equal(f.changed[0].uid, 1);
	assert_int_equal(f.changed[0].flags, STORE_FLAG_FLAGGED);
	assert_int_equal(f.changed[0].nkeywords, 0); /* SET cleared them */
	b = get_box(a, u, "INBOX", 0);
	assert_int_equal(b.unseen, 2);

	/* REMOVE. */
	assert_int_equal(
	    flags_req(u, "INBOX", uids, 2, STORE_FLAGS_REMOVE, STORE_FLAG_SEEN, kw1, 1, 0, a, &f),
	    0);
	assert_int_equal(f.nchanged, 1);
	assert_int_equal(f.changed[0].uid, 2);
	assert_int_equal(f.changed[0].nkeywords, 0);
	assert_int_equal(get_box(a, u, "INBOX", 0).unseen, 3);

	/* Keyword validation and limits. */
	const char *bad[] = {"a b"};
	const char *bad2[] = {"\\Seen"};
	assert_int_equal(flags_req(u, "INBOX", uids, 1, STORE_FLAGS_ADD, 0, bad, 1, 0, a, &f),
			 STORE_PERMFAIL);
	assert_int_equal(flags_req(u, "INBOX", uids, 1, STORE_FLAGS_ADD, 0, bad2, 1, 0, a, &f),
			 STORE_PERMFAIL);
	char lk[STORE_KEYWORD_MAX + 2];
	memset(lk, 'k', sizeof(lk) - 1);
	lk[sizeof(lk) - 1] = '\0';
	const char *lkp[] = {lk};
	assert_int_equal(flags_req(u, "INBOX", uids, 1, STORE_FLAGS_ADD, 0, lkp, 1, 0, a, &f),
			 STORE_LIMIT);
	lk[STORE_KEYWORD_MAX] = '\0';
	assert_int_equal(flags_req(u, "INBOX", uids, 1, STORE_FLAGS_ADD, 0, lkp, 1, 0, a, &f), 0);
	assert_int_equal(f.nchanged, 1);

	static char kwstore[400][12];
	const char *many[400];
	for (int i = 0; i < 400; i++) {
		snprintf(kwstore[i], sizeof(kwstore[i]), "k%d", i);
		many[i] = kwstore[i];
	}
	uint32_t u3[] = {3};
	assert_int_equal(flags_req(u, "INBOX", u3, 1, STORE_FLAGS_SET, 0, many,
				   STORE_KEYWORDS_PER_MESSAGE + 1, 0, a, &f),
			 STORE_LIMIT);
	assert_int_equal(flags_req(u, "INBOX", u3, 1, STORE_FLAGS_SET, 0, many,
				   STORE_KEYWORDS_PER_MESSAGE, 0, a, &f),
			 0);
	/* The mailbox's list: 3 so far + 64; fill towards 256, then over. */
	b = get_box(a, u, "INBOX", 0);
	assert_int_equal(b.nkeywords, 3 + STORE_KEYWORDS_PER_MESSAGE);
	uint32_t u2[] = {2};
	int off = STORE_KEYWORDS_PER_MESSAGE;
	for (int round = 0; round < 3; round++) {
		int rc = flags_req(u, "INBOX", round % 2 ? u2 : u3, 1, STORE_FLAGS_SET, 0,
				   many + off, STORE_KEYWORDS_PER_MESSAGE, 0, a, &f);
		if (round < 2)
			assert_int_equal(rc, 0);
		else
			assert_int_equal(rc, STORE_LIMIT); /* 3 + 4 * 64 > 256 */
		off += STORE_KEYWORDS_PER_MESSAGE;
	}
	b = get_box(a, u, "INBOX", 0);
	assert_int_equal(b.nkeywords, 3 + 3 * STORE_KEYWORDS_PER_MESSAGE);

	/* Missing mailbox. */
	assert_int_equal(flags_req(u, "Nope", uids, 1, STORE_FLAGS_ADD, 1, NULL, 0, 0, a, &f),
			 STORE_NOTFOUND);

	/* changes_since: live entries and tombstones. */
	uint64_t before = get_box(a, u, "INBOX", 0).highestmodseq;
	assert_int_equal(
	    flags_req(u, "INBOX", u2, 1, STORE_FLAGS_ADD, STORE_FLAG_ANSWERED, NULL, 0, 0, a, &f),
	    0);
	uint32_t ex[] = {1};
	assert_int_equal(expunge_in(u, "INBOX", ex, 1), 0);
	struct store_msg_info *ch;
	uint32_t *van;
	size_t nch, nvan;
	bool complete;
	assert_int_equal(
	    store_changes_since(u, "INBOX", before, a, &ch, &nch, &van, &nvan, &complete), 0);
	assert_true(complete);
	assert_int_equal(nch, 1);
	assert_int_equal(ch[0].uid, 2);
	assert_true(ch[0].flags & STORE_FLAG_ANSWERED);
	assert_int_equal(nvan, 1);
	assert_int_equal(van[0], 1);
	assert_int_equal(store_changes_since(u, "INBOX", 0, a, &ch, &nch, &van, &nvan, &complete),
			 0);
	assert_int_equal(nch, 2);
	assert_int_equal(ch[0].uid, 2);
	assert_int_equal(ch[1].uid, 3);
	assert_int_equal(nvan, 1);
	b = get_box(a, u, "INBOX", 0);
	assert_int_equal(
	    store_changes_since(u, "INBOX", b.highestmodseq, a, &ch, &nch, &van, &nvan, &complete),
	    0);
	assert_int_equal(nch + nvan, 0);
	assert_int_equal(b.messages, 2);
	assert_int_equal(store_changes_since(u, "Nope", 0, a, &ch, &nch, &van, &nvan, &complete),
			 STORE_NOTFOUND);
	arena_destroy(&a);
}

static struct store_copy
copy_req(const char *u, const char *from, const char *to, const uint32_t *uids, size_t n, bool move,
	 uint64_t quota, struct arena *a)
{
	struct store_copy c = {.req = {.a = a},
			       .user_id = u,
			       .mailbox = from,
			       .dest = to,
			       .uids = uids,
			       .nuids = n,
			       .move = move,
			       .quota = quota};

	RUN_SYNC(store_copy, &c);
	return c;
}

static void
test_copy_move(void **state)
{
	(void)state;
	const char *u = "uuid-cp";
	struct arena *a = arena_new(0);
	const char *bodyb = "Subject: b\r\n\r\nbee\r\n";
	uint32_t refs, nchunks;

	deliver_to(u, NULL, body1, NULL);
	deliver_to(u, NULL, bodyb, NULL);
	deliver_to(u, NULL, body1, NULL);
	uint32_t uids[] = {1, 3, 7};
	uint64_t qb0, qm0, qb, qm;
	assert_int_equal(store_usage(u, &qb0, &qm0), 0);

	struct store_copy c = copy_req(u, "INBOX", "Archive", uids, 3, false, 0, a);
	assert_int_equal(c.req.status, 0);
	assert_int_equal(c.ncopied, 2);
	assert_int_equal(c.src_uids[0], 1);
	assert_int_equal(c.src_uids[1], 3);
	assert_int_equal(c.dest_uids[0], 1);
	assert_int_equal(c.dest_uids[1], 2);
	assert_int_equal(c.dest_uidvalidity, get_box(a, u, "Archive", 0).uidvalidity);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 4);
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qm, qm0 + 2);
	assert_int_equal(qb, qb0 + 2 * strlen(body1));
	struct store_mailbox_info info;
	struct store_msg_info *src, *dst;
	size_t ns, nd;
	assert_int_equal(store_mailbox_list(u, "INBOX", a, &info, &src, &ns), 0);
	assert_int_equal(store_mailbox_list(u, "Archive", a, &info, &dst, &nd), 0);
	assert_int_equal(nd, 2);
	assert_int_equal(dst[0].email_id, src[0].email_id);
	assert_int_equal(dst[0].internal_date, src[0].internal_date);
	assert_int_equal(get_box(a, u, "Archive", 0).messages, 2);

	/* Over quota, to a missing or \Noselect folder. */
	c = copy_req(u, "INBOX", "Archive", uids, 2, false, qb + 1, a);
	assert_int_equal(c.req.status, STORE_OVERQUOTA);
	assert_int_equal(c.ncopied, 0);
	c = copy_req(u, "INBOX", "Nowhere", uids, 2, false, 0, a);
	assert_int_equal(c.req.status, STORE_NOTFOUND);
	c = copy_req(u, "Nowhere", "INBOX", uids, 2, false, 0, a);
	assert_int_equal(c.req.status, STORE_NOTFOUND);

	/* MOVE: sources expunged in the same transaction, usage unchanged,
	 * bodies shared still. */
	uint32_t auids[] = {1, 2};
	uint64_t ahms = get_box(a, u, "Archive", 0).highestmodseq;
	c = copy_req(u, "Archive", "Trash", auids, 2, true, 1, a); /* quota: COPY only */
	assert_int_equal(c.req.status, 0);
	assert_int_equal(c.ncopied, 2);
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qm, qm0 + 2);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 4);
	struct store_mailbox ar = get_box(a, u, "Archive", 0);
	assert_int_equal(ar.messages, 0);
	assert_int_equal(ar.bytes, 0);
	assert_int_equal(ar.unseen, 0);
	assert_int_equal(get_box(a, u, "Trash", 0).messages, 2);
	struct store_msg_info *ch;
	uint32_t *van;
	size_t nch, nvan;
	bool complete;
	assert_int_equal(
	    store_changes_since(u, "Archive", ahms, a, &ch, &nch, &van, &nvan, &complete), 0);
	assert_int_equal(nvan, 2);
	assert_int_equal(van[0], 1);
	assert_int_equal(van[1], 2);

	/* MOVE within the same mailbox: new UIDs, same count. */
	uint32_t t1[] = {1};
	c = copy_req(u, "Trash", "Trash", t1, 1, true, 0, a);
	assert_int_equal(c.req.status, 0);
	assert_int_equal(c.dest_uids[0], 3);
	assert_int_equal(get_box(a, u, "Trash", 0).messages, 2);

	/* Expunge everything: bodies go when the last reference does. */
	uint32_t all[] = {1, 2, 3};
	assert_int_equal(expunge_in(u, "Trash", all, 3), 0);
	assert_int_equal(expunge_in(u, "INBOX", all, 3), 0);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 0);
	assert_int_equal(nchunks, 0);
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qb, 0);
	assert_int_equal(qm, 0);
	arena_destroy(&a);
}

static void
test_rename_inbox(void **state)
{
	(void)state;
	const char *u = "uuid-ri";
	struct arena *a = arena_new(0);
	uint32_t refs, nchunks;

	deliver_to(u, NULL, body1, NULL);
	deliver_to(u, NULL, body1, NULL);
	struct store_mailbox in0 = get_box(a, u, "INBOX", 0);
	uint64_t qb0, qm0, qb, qm;
	assert_int_equal(store_usage(u, &qb0, &qm0), 0);
	uint32_t id;
	assert_int_equal(mbox_op(u, STORE_MBOX_RENAME, "Inbox", "Old/2024", 0, &id), 0);
	struct store_mailbox in1 = get_box(a, u, "INBOX", 0);
	struct store_mailbox old = get_box(a, u, "Old/2024", 0);
	assert_int_equal(in1.id, STORE_INBOX_ID);
	assert_int_equal(in1.uidvalidity, in0.uidvalidity);
	assert_int_equal(in1.uidnext, in0.uidnext);
	assert_int_equal(in1.messages, 0);
	assert_int_equal(old.messages, 2);
	assert_int_equal(old.id, id);
	assert_int_equal(old.uidnext, 3);
	assert_true(get_box(a, u, "Old", 0).has_children);
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qb, qb0);
	assert_int_equal(qm, qm0);
	refcount_of(body1, strlen(body1), &refs, &nchunks);
	assert_int_equal(refs, 2);
	struct store_msg_info *ch;
	uint32_t *van;
	size_t nch, nvan;
	bool complete;
	assert_int_equal(store_changes_since(u, "INBOX", in0.highestmodseq, a, &ch, &nch, &van,
					     &nvan, &complete),
			 0);
	assert_int_equal(nvan, 2);
	assert_int_equal(nch, 0);
	/* INBOX keeps working. */
	uint32_t uid;
	deliver_to(u, NULL, body1, &uid);
	assert_int_equal(uid, 3);
	arena_destroy(&a);
}

static void
test_append(void **state)
{
	(void)state;
	const char *u = "uuid-ap";
	struct arena *a = arena_new(0);
	const char *kws[] = {"$Important", "$important"}; /* one keyword */
	struct store_append_msg am[2] = {
	    {.body = body1,
	     .body_len = strlen(body1),
	     .flags = STORE_FLAG_SEEN | STORE_FLAG_DRAFT,
	     .keywords = kws,
	     .nkeywords = 2,
	     .internal_date = 1500000000},
	    {.body = "Subject: 2\r\n\r\n2\r\n", .body_len = 17},
	};
	struct store_append ap = {
	    .user_id = u, .mailbox = "Drafts", .msgs = am, .nmsgs = 2, .quota = strlen(body1)};

	/* All or nothing: the pair is over quota. */
	RUN_SYNC(store_append, &ap);
	assert_int_equal(ap.req.status, STORE_TOOBIG);
	assert_int_equal(am[0].uid, 0);
	uint64_t qb, qm;
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qm, 0);
	ap.quota = 0;
	RUN_SYNC(store_append, &ap);
	assert_int_equal(ap.req.status, 0);
	assert_int_equal(am[0].uid, 1);
	assert_int_equal(am[1].uid, 2);
	struct store_mailbox d = get_box(a, u, "Drafts", 0);
	assert_int_equal(ap.uidvalidity, d.uidvalidity);
	assert_int_equal(d.messages, 2);
	assert_int_equal(d.unseen, 1);
	assert_int_equal(d.nkeywords, 1);
	assert_int_equal(store_usage(u, &qb, &qm), 0);
	assert_int_equal(qm, 2);
	assert_int_equal(qb, strlen(body1) + 17);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	assert_int_equal(store_mailbox_list(u, "Drafts", a, &info, &msgs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(msgs[0].flags, STORE_FLAG_SEEN | STORE_FLAG_DRAFT);
	assert_int_equal(msgs[0].internal_date, 1500000000);
	assert_int_equal(msgs[0].nkeywords, 1);
	assert_string_equal(msgs[0].keywords[0], "$Important");
	assert_true(llabs((long long)(msgs[1].internal_date - time(NULL))) < 60);
	assert_int_not_equal(msgs[0].email_id, msgs[1].email_id);

	/* The MIME structure was stored once, for the body. */
	const void *mime;
	size_t mlen, tlen;
	assert_int_equal(store_message_mime(u, "Drafts", 1, a, &mime, &mlen, &tlen), 0);
	assert_true(mlen > 0);
	assert_int_equal(tlen, 0);
	assert_int_equal(mime_encoded_check(mime, mlen), 0);
	uint64_t msize;
	assert_int_equal(mime_encoded_msg_size(mime, mlen, &msize), 0);
	assert_int_equal(msize, strlen(body1));
	assert_int_equal(store_message_mime(u, "Drafts", 9, a, &mime, &mlen, &tlen),
			 STORE_NOTFOUND);

	/* Bad flags or keywords: nothing appended. */
	const char *bad[] = {"x(y"};
	assert_int_equal(append_one(u, "Drafts", body1, 0, bad, 1, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(append_one(u, "Drafts", body1, 0x100, NULL, 0, 0, NULL), STORE_PERMFAIL);
	assert_int_equal(get_box(a, u, "Drafts", 0).messages, 2);
	arena_destroy(&a);
}

struct watch_seen {
	pthread_mutex_t lock;
	unsigned calls;
	uint32_t mbox;
	uint64_t modseq;
	unsigned changed;
	bool on_worker;
};

static void
watch_fn(void *arg, uint32_t mailbox_id, uint64_t highestmodseq, unsigned changed)
{
	struct watch_seen *w = arg;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	w->mbox = mailbox_id;
	w->modseq = highestmodseq;
	w->changed = changed;
	w->on_worker = worker_current() != NULL;
	pthread_mutex_unlock(&w->lock);
}

static void
test_watch_after_commit(void **state)
{
	(void)state;
	const char *u = "uuid-w";
	struct watch_seen all = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct watch_seen trash = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct arena *a = arena_new(0);

	deliver_to(u, NULL, body1, NULL);
	uint32_t trash_id = get_box(a, u, "Trash", 0).id;
	struct store_watch *w1 = store_watch_add(u, 0, NULL, watch_fn, &all);
	struct store_watch *w2 = store_watch_add(u, trash_id, NULL, watch_fn, &trash);

	/* worker NULL: called on the writer thread, before done() runs. */
	deliver_to(u, NULL, body1, NULL);
	assert_int_equal(all.calls, 1);
	assert_int_equal(all.mbox, STORE_INBOX_ID);
	assert_int_equal(all.modseq, get_box(a, u, "INBOX", 0).highestmodseq);
	assert_int_equal(all.changed, STORE_CHANGED_MESSAGES);
	assert_false(all.on_worker);
	assert_int_equal(trash.calls, 0);

	uint32_t one[] = {1};
	struct store_copy c = copy_req(u, "INBOX", "Trash", one, 1, true, 0, a);
	assert_int_equal(c.req.status, 0);
	assert_int_equal(all.calls, 2);
	assert_int_equal(all.mbox, 0); /* two mailboxes coalesced */
	assert_int_equal(trash.calls, 1);
	assert_int_equal(trash.mbox, trash_id);

	/* A failed operation tells nobody. */
	c = copy_req(u, "INBOX", "Nowhere", one, 1, false, 0, a);
	assert_int_equal(c.req.status, STORE_NOTFOUND);
	assert_int_equal(all.calls, 2);

	/* Names and subscriptions say so (for NOTIFY), as mailbox 0. */
	assert_int_equal(mbox_op(u, STORE_MBOX_CREATE, "Watched", NULL, 0, NULL), 0);
	assert_int_equal(all.calls, 3);
	assert_int_equal(all.mbox, 0);
	assert_int_equal(all.changed, STORE_CHANGED_MESSAGES | STORE_CHANGED_NAMES);
	assert_int_equal(mbox_op(u, STORE_MBOX_SUBSCRIBE, "Watched", NULL, 0, NULL), 0);
	assert_int_equal(all.calls, 4);
	assert_int_equal(all.changed, STORE_CHANGED_SUBSCRIPTIONS);
	assert_int_equal(trash.calls, 3); /* mailbox 0 reaches every watch */

	store_watch_remove(w2);
	store_watch_remove(w1);
	deliver_to(u, NULL, body1, NULL);
	assert_int_equal(all.calls, 4);
	arena_destroy(&a);
}

static void
test_read_range(void **state)
{
	(void)state;
	size_t blen = 2 * STORE_CHUNK_SIZE + 12345;
	char *body = malloc(blen);
	memcpy(body, "Subject: big\r\n\r\n", 16);
	fill_random(body + 16, blen - 16, 42);
	const char *trace = "Delivered-To: r@example.test\r\n";
	size_t tl = strlen(trace), total = tl + blen;
	char *whole = malloc(total);
	memcpy(whole, trace, tl);
	memcpy(whole + tl, body, blen);
	struct store_rcpt r = {.user_id = "uuid-rr", .trace = trace, .trace_len = tl};
	struct store_delivery d = {.body = body, .body_len = blen, .rcpts = &r, .nrcpts = 1};
	deliver_sync(&d);
	assert_int_equal(r.status, 0);

	const struct {
		uint64_t off, len;
	} cases[] = {
	    {0, 5},
	    {tl - 3, 10},		      /* trace into body */
	    {tl + STORE_CHUNK_SIZE - 7, 20},  /* chunk boundary */
	    {tl + 100, 2 * STORE_CHUNK_SIZE}, /* three chunks */
	    {total - 4, 100},		      /* cut at the end */
	    {0, total},
	    {total, 10}, /* past the end */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct buf b;
		buf_init(&b, 64u << 20);
		assert_int_equal(buf_append(&b, "@", 1), 0);
		assert_int_equal(
		    store_message_read_range("uuid-rr", "INBOX", 1, cases[i].off, cases[i].len, &b),
		    0);
		uint64_t want = cases[i].off >= total		      ? 0
				: cases[i].len > total - cases[i].off ? total - cases[i].off
								      : cases[i].len;
		assert_int_equal(b.len, 1 + want);
		assert_memory_equal(b.data + 1, whole + cases[i].off, want);
		buf_free(&b);
	}
	struct buf b;
	buf_init(&b, 10);
	assert_int_equal(store_message_read_range("uuid-rr", "INBOX", 1, 0, 100, &b),
			 STORE_TEMPFAIL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_init(&b, 10);
	assert_int_equal(store_message_read_range("uuid-rr", "INBOX", 2, 0, 1, &b), STORE_NOTFOUND);
	buf_free(&b);

	struct arena *a = arena_new(0);
	const void *mime;
	size_t mlen, mtl;
	assert_int_equal(store_message_mime("uuid-rr", "INBOX", 1, a, &mime, &mlen, &mtl), 0);
	assert_int_equal(mtl, tl);
	assert_int_equal(mime_encoded_check(mime, mlen), 0);
	arena_destroy(&a);
	free(whole);
	free(body);
}

#define CW_THREADS 4
#define CW_OPS 200

struct cw {
	int index;
	int failures;
};

static void
cw_done(void *req, void *arg)
{
	(void)req;
	__atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
}

static void
cw_deliver_done(struct store_delivery *d, void *arg)
{
	(void)d;
	__atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
}

static void
cw_wait(int *flag)
{
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
		usleep(100);
}

/* Each thread delivers to a shared user and sets \Seen on every other
 * message it got, each op waited for (done() runs on the writer thread:
 * worker NULL). */
static void *
cw_main(void *arg)
{
	struct cw *c = arg;

	for (int i = 0; i < CW_OPS; i++) {
		char body[64];
		int flag = 0;
		snprintf(body, sizeof(body), "Subject: %d-%d\r\n\r\nx\r\n", c->index, i);
		struct store_rcpt r = {.user_id = "uuid-cw"};
		struct store_delivery d = {.body = body,
					   .body_len = strlen(body),
					   .rcpts = &r,
					   .nrcpts = 1,
					   .done = cw_deliver_done,
					   .arg = &flag};
		store_deliver(&d);
		cw_wait(&flag);
		if (r.status != STORE_OK)
			c->failures++;
		if (i % 2 == 0)
			continue;
		uint32_t uid = r.uid;
		flag = 0;
		struct store_flags f = {.req = {.done = cw_done, .arg = &flag},
					.user_id = "uuid-cw",
					.mailbox = "INBOX",
					.uids = &uid,
					.nuids = 1,
					.mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_SEEN};
		store_flags(&f);
		cw_wait(&flag);
		if (f.req.status != STORE_OK || f.nchanged != 0)
			c->failures++; /* no arena: nothing listed */
	}
	return NULL;
}

static void
test_concurrent_writers(void **state)
{
	(void)state;
	static struct cw cws[CW_THREADS];
	pthread_t th[CW_THREADS];

	for (int t = 0; t < CW_THREADS; t++) {
		cws[t].index = t;
		assert_int_equal(pthread_create(&th[t], NULL, cw_main, &cws[t]), 0);
	}
	for (int t = 0; t < CW_THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(cws[t].failures, 0);
	}

	struct arena *a = arena_new(0);
	struct store_mailbox b = get_box(a, "uuid-cw", "INBOX", 0);
	assert_int_equal(b.messages, CW_THREADS * CW_OPS);
	assert_int_equal(b.unseen, CW_THREADS * CW_OPS / 2);
	assert_int_equal(b.uidnext, CW_THREADS * CW_OPS + 1);
	/* One MODSEQ per delivery and per flag change. */
	assert_int_equal(b.highestmodseq, CW_THREADS * CW_OPS * 3 / 2);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n, seen = 0;
	assert_int_equal(store_mailbox_list("uuid-cw", "INBOX", a, &info, &msgs, &n), 0);
	assert_int_equal(n, CW_THREADS * CW_OPS);
	for (size_t i = 0; i < n; i++) {
		seen += (msgs[i].flags & STORE_FLAG_SEEN) != 0;
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(msgs[i].modseq, msgs[j].modseq);
	}
	assert_int_equal(seen, CW_THREADS * CW_OPS / 2);
	uint64_t qb, qm;
	assert_int_equal(store_usage("uuid-cw", &qb, &qm), 0);
	assert_int_equal(qm, CW_THREADS * CW_OPS);
	assert_int_equal(qb, info.bytes);
	arena_destroy(&a);
}

/* v1 records still read (format-1 environments before the migration),
 * and v2 ones round-trip with their keywords. */
static void
test_schema_v1_and_v2(void **state)
{
	(void)state;
	uint8_t v1[STORE_MSG_FIXED_V1 + 3];
	struct msg_rec m;

	memset(v1, 0, sizeof(v1));
	v1[0] = 1;
	be_put32(v1 + 4, STORE_FLAG_SEEN);
	be_put64(v1 + 8, 7);
	be_put64(v1 + 16, 1234);
	be_put64(v1 + 24, 100);
	be_put32(v1 + 64, 3);
	memcpy(v1 + STORE_MSG_FIXED_V1, "abc", 3);
	assert_int_equal(store_msg_decode(v1, sizeof(v1), &m), 0);
	assert_int_equal(m.save_date, 1234);
	assert_int_equal(m.email_id, 0);
	assert_int_equal(m.kw.n, 0);
	assert_int_equal(m.modseq, 7);
	assert_memory_equal(m.trace, "abc", 3);
	assert_int_equal(store_msg_decode(v1, sizeof(v1) - 1, &m), -1);

	uint8_t kw[] = {3, 'f', 'o', 'o', 2, '$', 'x'};
	struct msg_rec w = {.flags = 3,
			    .modseq = 9,
			    .internal_date = -5,
			    .save_date = 77,
			    .size = 10,
			    .email_id = 42,
			    .trace = "tr",
			    .trace_len = 2,
			    .kw = {.p = kw, .len = sizeof(kw), .n = 2}};
	uint8_t *buf = malloc(store_msg_size(&w));
	store_msg_encode(buf, &w);
	assert_int_equal(store_msg_decode(buf, store_msg_size(&w), &m), 0);
	assert_int_equal(m.internal_date, -5);
	assert_int_equal(m.save_date, 77);
	assert_int_equal(m.email_id, 42);
	assert_int_equal(m.kw.n, 2);
	size_t pos = 0, kl;
	const char *k;
	assert_int_equal(store_kw_next(&m.kw, &pos, &k, &kl), 1);
	assert_int_equal(kl, 3);
	assert_memory_equal(k, "foo", 3);
	assert_int_equal(store_kw_next(&m.kw, &pos, &k, &kl), 1);
	assert_int_equal(store_kw_next(&m.kw, &pos, &k, &kl), 0);
	buf[2] = 0;
	buf[3] = 3; /* claims 3 keywords, has 2 */
	assert_int_equal(store_msg_decode(buf, store_msg_size(&w), &m), -1);
	free(buf);

	uint8_t mv1[STORE_MBOX_FIXED_V1 + 5];
	struct mbox_rec r;
	memset(mv1, 0, sizeof(mv1));
	mv1[0] = 1;
	be_put32(mv1 + 12, 4);
	be_put64(mv1 + 16, 50);
	be_put16(mv1 + 32, 5);
	memcpy(mv1 + STORE_MBOX_FIXED_V1, "INBOX", 5);
	assert_int_equal(store_mbox_decode(mv1, sizeof(mv1), &r), 0);
	assert_int_equal(r.unseen, 4);
	assert_int_equal(r.vanished_floor, 50);
	assert_int_equal(r.name_len, 5);
	uint8_t u1[8] = {0, 0, 0, 0, 0, 0, 0, 9};
	struct user_rec ur;
	assert_int_equal(store_user_decode(u1, 8, &ur), 0);
	assert_int_equal(ur.user_id, 9);
	assert_int_equal(ur.next_mbox, 0);
	uint8_t u2[STORE_USER_LEN];
	struct user_rec uw = {.user_id = 5, .next_mbox = 8};
	store_user_encode(u2, &uw);
	assert_int_equal(store_user_decode(u2, sizeof(u2), &ur), 0);
	assert_int_equal(ur.next_mbox, 8);
	assert_int_equal(ur.user_id, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_one_body_three_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sortkeys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_big_body_chunks_and_map_growth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quota_per_recipient, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_and_uids_grow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uids_after_expunge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_user_and_mailbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_op_rolls_back_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_format_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_error_names_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_user_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mailbox_ops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_and_condstore, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename_inbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_append, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watch_after_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	    cmocka_unit_test(test_schema_v1_and_v2),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
