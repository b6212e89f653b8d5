/*
 * test_store.c - the mail store (storage/) on a real LMDB environment in a
 * mkdtemp directory, with real worker threads receiving the completions:
 * single-instance bodies and their reference counts, exact round trips of
 * trace + body (also through many chunks and a map that has to grow),
 * per-recipient quota answers, group commit under concurrent load,
 * durability across close/open, UIDs that never go back, the format
 * version check and the read side's edge cases.
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
	assert_int_equal(v.mv_size, 8);
	memcpy(key, v.mv_data, 8);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_one_body_three_users, setup, teardown),
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
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
