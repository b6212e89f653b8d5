/*
 * test_queue.c - the outbound queue's LMDB side (storage/queue.c) on a
 * real store in a mkdtemp directory: remote recipients queued with and
 * without local ones in one delivery, the shared body's reference count,
 * due ordering, in-flight skipping, deferral, final results removing the
 * entry and freeing the body, DSNs applied in the same transaction (and
 * rolled back with it), the runner's wake-up, an older environment without
 * the queue databases, and the record codecs. store_check_txn() runs
 * after every step and must find nothing.
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
#include <lmdb.h>
#include <openssl/evp.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "storage/queue.h"
#include "storage/store.h"
#include "storage/store_internal.h"

static char tmpdir[64];
static char statedir[128];
static struct config cfg;

/* Completions run on the writer thread (no worker): counted here. */
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
wait_for(unsigned target)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&done_lock);
	while (done_count < target && pthread_cond_timedwait(&done_cond, &done_lock, &ts) == 0)
		;
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
delivery_done(struct store_delivery *d, void *arg)
{
	(void)d;
	(void)arg;
	note_done();
}

static void
req_done(void *req, void *arg)
{
	(void)req;
	(void)arg;
	note_done();
}

static void
deliver_sync(struct store_delivery *d)
{
	unsigned target = done_now() + 1;

	d->worker = NULL;
	d->done = delivery_done;
	store_deliver(d);
	wait_for(target);
}

static int
update_sync(const struct queue_result *res, size_t n, struct store_delivery *dsns, size_t ndsns)
{
	struct queue_update u = {
	    .req = {.done = req_done},
	    .results = res,
	    .nresults = n,
	    .dsns = dsns,
	    .ndsns = ndsns,
	};
	unsigned target = done_now() + 1;

	queue_update(&u);
	wait_for(target);
	return u.req.status;
}

/* ---- checks ---- */

static struct buf report_buf;

static void
collect(void *arg, const char *problem)
{
	(void)arg;
	buf_append_str(&report_buf, problem);
	buf_putc(&report_buf, '\n');
}

/* The whole store's invariants, queue included, in a read txn of ours
 * (store_check() would open a second handle on the environment). */
static void
check_clean(void)
{
	MDB_txn *txn;
	char *err = NULL;

	buf_reset(&report_buf);
	assert_int_equal(store_read_begin(&txn), 0);
	int n = store_check_txn(txn, collect, NULL, NULL, &err);
	store_read_end(txn);
	if (n != 0)
		fail_msg("store check: %d (%s): %s", n, err != NULL ? err : "",
			 buf_cstr(&report_buf));
	free(err);
}

static int
check_count(void)
{
	MDB_txn *txn;
	char *err = NULL;

	buf_reset(&report_buf);
	assert_int_equal(store_read_begin(&txn), 0);
	int n = store_check_txn(txn, collect, NULL, NULL, &err);
	store_read_end(txn);
	free(err);
	return n;
}

static void
refs_of(const char *body, uint32_t *refs_r, uint32_t *chunks_r)
{
	uint8_t h[32];

	assert_int_equal(EVP_Digest(body, strlen(body), h, NULL, EVP_sha256(), NULL), 1);
	assert_int_equal(store_blob_refcount(h, refs_r, chunks_r), 0);
}

static void
assert_refs(const char *body, uint32_t want)
{
	uint32_t refs, chunks;

	refs_of(body, &refs, &chunks);
	assert_int_equal(refs, want);
	assert_int_equal(chunks, want > 0 ? 1 : 0);
}

/* ---- fixtures ---- */

static void
open_store(void)
{
	char *err = NULL;

	if (store_open(&cfg, &err) != 0)
		fail_msg("store_open: %s", err);
}

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/tern-queue-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = statedir;
	cfg.map_size = 32u << 20;
	cfg.group_commit = true;
	cfg.batch_max_ops = 64;
	cfg.batch_max_bytes = 8u << 20;
	cfg.zstd_level = 3;
	buf_init(&report_buf, 1u << 20);
	open_store();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char cmd[160];

	queue_set_notify(NULL, NULL);
	store_close();
	buf_free(&report_buf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static const char body_a[] = "From: s@example.test\r\nSubject: a\r\n\r\nbody a\r\n";
static const char body_b[] = "From: s@example.test\r\nSubject: b\r\n\r\nbody b\r\n";
static const char body_c[] = "From: s@example.test\r\nSubject: c\r\n\r\nbody c\r\n";

/* Queues body for the given remote addresses (and local users, may be
 * none); returns the queue id. */
static uint64_t
submit(const char *body, const char *const *remote, size_t nremote, const char *const *local,
       size_t nlocal)
{
	struct queue_rcpt_in in[8];
	struct store_rcpt lr[8];

	assert_true(nremote <= 8 && nlocal <= 8);
	memset(in, 0, sizeof(in));
	memset(lr, 0, sizeof(lr));
	for (size_t i = 0; i < nremote; i++) {
		in[i].address = remote[i];
		in[i].orcpt = i == 0 ? "rfc822;first@remote.test" : NULL;
		in[i].notify = i == 0 ? QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY : 0;
	}
	for (size_t i = 0; i < nlocal; i++)
		lr[i].user_id = local[i];
	struct queue_envelope env = {
	    .sender = "alice@local.test",
	    .origin = QUEUE_ORIGIN_SUBMISSION,
	    .auth_user = "uuid-alice",
	    .envid = "ENV-1",
	    .ret = QUEUE_RET_FULL,
	    .smtputf8 = false,
	    .eightbit = true,
	    .requiretls = true,
	    .client = "[127.0.0.1] (client.test)",
	    .rcpts = in,
	    .nrcpts = nremote,
	    .queue_id = 12345, /* must be overwritten */
	};
	struct store_delivery d = {
	    .body = body,
	    .body_len = strlen(body),
	    .internal_date = 1700000000,
	    .rcpts = lr,
	    .nrcpts = nlocal,
	    .outbound = &env,
	};
	deliver_sync(&d);
	assert_int_equal(d.status, STORE_OK);
	for (size_t i = 0; i < nlocal; i++)
		assert_int_equal(lr[i].status, STORE_OK);
	if (nremote == 0)
		assert_int_equal(env.queue_id, 0);
	else
		assert_true(env.queue_id != 0);
	return env.queue_id;
}

static size_t
due_now(time_t now, size_t max, bool (*fl)(void *, uint64_t, uint32_t), void *arg, struct arena *a,
	struct queue_item **items_r)
{
	size_t n = 99;

	assert_int_equal(queue_due(now, max, fl, arg, a, items_r, &n), STORE_OK);
	return n;
}

/* ---- tests ---- */

static void
test_remote_only(void **state)
{
	(void)state;
	const char *remote[] = {"bob@remote.test", "carol@other.test"};
	time_t before = time(NULL);
	uint64_t qid = submit(body_a, remote, 2, NULL, 0);
	struct arena *a = arena_new(0);
	struct queue_item *it;

	assert_refs(body_a, 1);
	check_clean();
	size_t n = due_now(time(NULL), 10, NULL, NULL, a, &it);
	assert_int_equal(n, 2);
	assert_int_equal(it[0].queue_id, qid);
	assert_int_equal(it[0].rcpt_idx, 0);
	assert_string_equal(it[0].address, "bob@remote.test");
	assert_string_equal(it[0].orcpt, "rfc822;first@remote.test");
	assert_int_equal(it[0].notify, QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	assert_string_equal(it[0].sender, "alice@local.test");
	assert_string_equal(it[0].envid, "ENV-1");
	assert_int_equal(it[0].ret, QUEUE_RET_FULL);
	assert_int_equal(it[0].origin, QUEUE_ORIGIN_SUBMISSION);
	assert_false(it[0].smtputf8);
	assert_true(it[0].eightbit);
	assert_true(it[0].requiretls);
	assert_false(it[0].delay_warned);
	assert_int_equal(it[0].attempts, 0);
	assert_null(it[0].last_error);
	assert_int_equal(it[0].size, strlen(body_a));
	assert_true(it[0].created >= before && it[0].created <= time(NULL));
	assert_int_equal(it[0].next_attempt, it[0].created);
	assert_int_equal(it[1].rcpt_idx, 1);
	assert_string_equal(it[1].address, "carol@other.test");
	assert_null(it[1].orcpt);
	assert_int_equal(it[1].notify, 0);

	/* Nothing is due before it was queued. */
	assert_int_equal(due_now(before - 1, 10, NULL, NULL, a, &it), 0);
	assert_null(it);

	struct buf b;
	buf_init(&b, 1u << 20);
	assert_int_equal(queue_message_read(qid, &b), STORE_OK);
	assert_int_equal(b.len, strlen(body_a));
	assert_memory_equal(b.data, body_a, b.len);
	buf_free(&b);

	uint64_t nr, nm;
	time_t oldest;
	assert_int_equal(queue_stats(&nr, &nm, &oldest), STORE_OK);
	assert_int_equal(nr, 2);
	assert_int_equal(nm, 1);
	assert_true(oldest >= before);
	arena_destroy(&a);
}

static void
test_with_local_and_shared_body(void **state)
{
	(void)state;
	const char *remote[] = {"bob@remote.test"};
	const char *local[] = {"uuid-dave", "uuid-erin"};
	uint64_t qid = submit(body_a, remote, 1, local, 2);

	/* Two mailbox copies and the queue entry share one body. */
	assert_refs(body_a, 3);
	check_clean();
	/* The same body again, to a mailbox only: deduplicated. */
	submit(body_a, NULL, 0, local, 1);
	assert_refs(body_a, 4);
	check_clean();

	struct queue_result r = {
	    .queue_id = qid, .rcpt_idx = 0, .outcome = QUEUE_DELIVERED, .reason = "250 2.0.0 ok"};
	assert_int_equal(update_sync(&r, 1, NULL, 0), STORE_OK);
	assert_refs(body_a, 3); /* the queue's reference only */
	check_clean();
	struct buf b;
	buf_init(&b, 1u << 20);
	assert_int_equal(queue_message_read(qid, &b), STORE_NOTFOUND);
	buf_free(&b);

	/* The mailboxes still read the body. */
	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t count;
	assert_int_equal(store_mailbox_list("uuid-dave", "INBOX", a, &info, &msgs, &count), 0);
	assert_int_equal(count, 2);
	arena_destroy(&a);
	time_t when;
	assert_int_equal(queue_next_due(&when), STORE_NOTFOUND);
}

static uint64_t in_flight_qid;

static bool
fl_skip(void *arg, uint64_t id, uint32_t idx)
{
	(void)arg;
	return id == in_flight_qid && idx == 0;
}

static void
test_due_order_in_flight_and_deferral(void **state)
{
	(void)state;
	const char *r1[] = {"x@remote.test", "y@remote.test"};
	const char *r2[] = {"z@remote.test"};
	uint64_t q1 = submit(body_a, r1, 2, NULL, 0);
	uint64_t q2 = submit(body_b, r2, 1, NULL, 0);
	time_t now = time(NULL);
	struct arena *a = arena_new(0);
	struct queue_item *it;

	assert_true(q2 > q1);
	/* Defer q1/0 far, q1/1 near, leave q2/0 due now. */
	struct queue_result res[2] = {
	    {.queue_id = q1,
	     .rcpt_idx = 0,
	     .outcome = QUEUE_DEFERRED,
	     .next_attempt = now + 500,
	     .reason = "421 4.3.0 try later"},
	    {.queue_id = q1,
	     .rcpt_idx = 1,
	     .outcome = QUEUE_DELAY_WARNED,
	     .next_attempt = now + 100,
	     .reason = "451 4.4.1 no answer"},
	};
	assert_int_equal(update_sync(res, 2, NULL, 0), STORE_OK);
	check_clean();

	size_t n = due_now(now, 10, NULL, NULL, a, &it);
	assert_int_equal(n, 1);
	assert_int_equal(it[0].queue_id, q2);
	time_t when;
	assert_int_equal(queue_next_due(&when), STORE_OK);
	assert_true(when <= now);

	/* Later on, oldest due first. */
	n = due_now(now + 1000, 10, NULL, NULL, a, &it);
	assert_int_equal(n, 3);
	assert_int_equal(it[0].queue_id, q2);
	assert_int_equal(it[1].queue_id, q1);
	assert_int_equal(it[1].rcpt_idx, 1);
	assert_int_equal(it[1].next_attempt, now + 100);
	assert_int_equal(it[1].attempts, 1);
	assert_true(it[1].delay_warned);
	assert_string_equal(it[1].last_error, "451 4.4.1 no answer");
	assert_int_equal(it[2].rcpt_idx, 0);
	assert_int_equal(it[2].next_attempt, now + 500);
	assert_false(it[2].delay_warned);
	assert_string_equal(it[2].last_error, "421 4.3.0 try later");

	/* max, and in-flight recipients skipped without counting. */
	n = due_now(now + 1000, 2, NULL, NULL, a, &it);
	assert_int_equal(n, 2);
	assert_int_equal(it[1].queue_id, q1);
	in_flight_qid = q2;
	n = due_now(now + 1000, 2, fl_skip, NULL, a, &it);
	assert_int_equal(n, 2);
	assert_int_equal(it[0].queue_id, q1);
	assert_int_equal(it[0].rcpt_idx, 1);
	assert_int_equal(it[1].rcpt_idx, 0);

	/* q2 defers: the earliest is now q1/1. */
	struct queue_result r3 = {.queue_id = q2,
				  .outcome = QUEUE_DEFERRED,
				  .next_attempt = now + 50,
				  .reason = "451 later"};
	assert_int_equal(update_sync(&r3, 1, NULL, 0), STORE_OK);
	assert_int_equal(queue_next_due(&when), STORE_OK);
	assert_int_equal(when, now + 50);
	check_clean();

	uint64_t nr, nm;
	time_t oldest;
	assert_int_equal(queue_stats(&nr, &nm, &oldest), STORE_OK);
	assert_int_equal(nr, 3);
	assert_int_equal(nm, 2);
	arena_destroy(&a);
}

static void
test_final_results_free_blob(void **state)
{
	(void)state;
	const char *remote[] = {"bob@remote.test", "carol@remote.test"};
	uint64_t qid = submit(body_c, remote, 2, NULL, 0);
	struct arena *a = arena_new(0);
	struct queue_item *it;

	assert_refs(body_c, 1);
	struct queue_result r0 = {.queue_id = qid,
				  .rcpt_idx = 0,
				  .outcome = QUEUE_FAILED,
				  .reason = "550 5.1.1 no such user"};
	assert_int_equal(update_sync(&r0, 1, NULL, 0), STORE_OK);
	check_clean();
	assert_refs(body_c, 1); /* carol still pending */
	assert_int_equal(due_now(time(NULL) + 10, 10, NULL, NULL, a, &it), 1);
	assert_int_equal(it[0].rcpt_idx, 1);

	/* A repeated result for a final recipient changes nothing. */
	struct queue_result again = r0;
	again.outcome = QUEUE_DEFERRED;
	again.next_attempt = time(NULL);
	assert_int_equal(update_sync(&again, 1, NULL, 0), STORE_OK);
	assert_int_equal(due_now(time(NULL) + 10, 10, NULL, NULL, a, &it), 1);
	check_clean();

	struct queue_result r1 = {
	    .queue_id = qid, .rcpt_idx = 1, .outcome = QUEUE_DELIVERED, .reason = "250 ok"};
	assert_int_equal(update_sync(&r1, 1, NULL, 0), STORE_OK);
	check_clean();
	assert_refs(body_c, 0);
	uint64_t chunks, blobs;
	assert_int_equal(store_blob_counts(&chunks, &blobs), 0);
	assert_int_equal(chunks, 0);
	assert_int_equal(blobs, 0);
	uint64_t nr, nm;
	time_t oldest;
	assert_int_equal(queue_stats(&nr, &nm, &oldest), STORE_OK);
	assert_int_equal(nr, 0);
	assert_int_equal(nm, 0);
	assert_int_equal(oldest, 0);
	/* A result for an entry that is gone is ignored. */
	assert_int_equal(update_sync(&r1, 1, NULL, 0), STORE_OK);
	arena_destroy(&a);
}

static const char dsn_body[] =
    "From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered\r\n\r\nsorry\r\n";

static void
test_dsn_in_same_txn(void **state)
{
	(void)state;
	const char *remote[] = {"bob@remote.test"};
	uint64_t qid = submit(body_a, remote, 1, NULL, 0);
	struct arena *a = arena_new(0);
	struct queue_item *it;

	/* A DSN that cannot be stored rolls the result back with it. */
	struct store_delivery bad = {.body = NULL, .body_len = 5};
	struct queue_result r = {
	    .queue_id = qid, .outcome = QUEUE_FAILED, .reason = "550 5.1.1 unknown"};
	assert_int_equal(update_sync(&r, 1, &bad, 1), STORE_PERMFAIL);
	assert_int_equal(due_now(time(NULL), 10, NULL, NULL, a, &it), 1);
	assert_refs(body_a, 1);
	check_clean();

	/* A bounce to a local sender lands in the INBOX in the same txn. */
	struct store_rcpt lr = {
	    .user_id = "uuid-alice", .trace = "Return-Path: <>\r\n", .trace_len = 17};
	struct store_delivery local = {
	    .body = dsn_body, .body_len = strlen(dsn_body), .rcpts = &lr, .nrcpts = 1};
	assert_int_equal(update_sync(&r, 1, &local, 1), STORE_OK);
	assert_int_equal(lr.status, STORE_OK);
	assert_int_equal(lr.uid, 1);
	assert_refs(body_a, 0);
	assert_refs(dsn_body, 1);
	check_clean();

	/* A bounce to a remote sender is queued, null sender. */
	uint64_t q2 = submit(body_b, remote, 1, NULL, 0);
	struct queue_rcpt_in brc = {.address = "alice@far.test"};
	struct queue_envelope benv = {
	    .sender = "", .origin = QUEUE_ORIGIN_BOUNCE, .rcpts = &brc, .nrcpts = 1};
	struct store_delivery remote_dsn = {
	    .body = dsn_body, .body_len = strlen(dsn_body), .outbound = &benv};
	struct queue_result r2 = {.queue_id = q2, .outcome = QUEUE_FAILED, .reason = "550 no"};
	assert_int_equal(update_sync(&r2, 1, &remote_dsn, 1), STORE_OK);
	assert_true(benv.queue_id > q2);
	assert_refs(dsn_body, 2); /* INBOX copy + queued bounce */
	assert_refs(body_b, 0);
	check_clean();
	size_t n = due_now(time(NULL), 10, NULL, NULL, a, &it);
	assert_int_equal(n, 1);
	assert_int_equal(it[0].queue_id, benv.queue_id);
	assert_string_equal(it[0].sender, "");
	assert_string_equal(it[0].address, "alice@far.test");
	assert_int_equal(it[0].origin, QUEUE_ORIGIN_BOUNCE);
	assert_null(it[0].envid);
	arena_destroy(&a);
}

static unsigned notified;

static void
on_notify(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&notified, 1, __ATOMIC_SEQ_CST);
}

static void
test_notify_and_empty(void **state)
{
	(void)state;
	time_t when = 7;
	uint64_t nr = 9, nm = 9;
	time_t oldest = 9;

	assert_int_equal(queue_next_due(&when), STORE_NOTFOUND);
	assert_int_equal(when, 7);
	assert_int_equal(queue_stats(&nr, &nm, &oldest), STORE_OK);
	assert_int_equal(nr + nm, 0);
	struct arena *a = arena_new(0);
	struct queue_item *it = (void *)1;
	assert_int_equal(due_now(time(NULL), 10, NULL, NULL, a, &it), 0);
	assert_null(it);
	arena_destroy(&a);

	queue_set_notify(on_notify, NULL);
	const char *local[] = {"uuid-dave"};
	submit(body_a, NULL, 0, local, 1);
	assert_int_equal(__atomic_load_n(&notified, __ATOMIC_SEQ_CST), 0);
	const char *remote[] = {"bob@remote.test"};
	submit(body_b, remote, 1, NULL, 0);
	assert_int_equal(__atomic_load_n(&notified, __ATOMIC_SEQ_CST), 1);
	queue_set_notify(NULL, NULL);
	submit(body_c, remote, 1, NULL, 0);
	assert_int_equal(__atomic_load_n(&notified, __ATOMIC_SEQ_CST), 1);

	/* An envelope with no recipients queues nothing (and no ref). */
	submit(body_c, remote, 0, local, 1);
	assert_refs(body_c, 2);
	check_clean();
}

static void
test_bad_envelope_fails_delivery(void **state)
{
	(void)state;
	struct queue_rcpt_in in = {.address = ""};
	struct queue_envelope env = {
	    .sender = "a@b.test", .origin = QUEUE_ORIGIN_SUBMISSION, .rcpts = &in, .nrcpts = 1};
	struct store_rcpt lr = {.user_id = "uuid-dave"};
	struct store_delivery d = {.body = body_a,
				   .body_len = strlen(body_a),
				   .rcpts = &lr,
				   .nrcpts = 1,
				   .outbound = &env};

	deliver_sync(&d);
	assert_int_equal(d.status, STORE_PERMFAIL);
	assert_int_equal(lr.status, STORE_PERMFAIL);
	assert_int_equal(env.queue_id, 0);
	assert_refs(body_a, 0); /* the local copy rolled back too */
	check_clean();
}

/* A format-2 store written before the queue existed opens with an empty
 * queue, and store check accepts it without the databases. */
static void
test_env_without_queue_dbs(void **state)
{
	(void)state;
	const char *local[] = {"uuid-dave"};
	char path[200];
	MDB_env *env;
	MDB_txn *txn;

	submit(body_a, NULL, 0, local, 1);
	store_close();
	snprintf(path, sizeof(path), "%s/mail", statedir);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_mapsize(env, cfg.map_size);
	assert_int_equal(mdb_env_open(env, path, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	const char *names[] = {"queue", "queue_rcpt", "queue_due"};
	for (int i = 0; i < 3; i++) {
		MDB_dbi dbi;
		assert_int_equal(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
		assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	/* Checked with the store closed: the databases are absent. */
	buf_reset(&report_buf);
	char *err = NULL;
	assert_int_equal(store_check_path(path, false, collect, NULL, NULL, &err), 0);

	open_store();
	time_t when;
	assert_int_equal(queue_next_due(&when), STORE_NOTFOUND);
	const char *remote[] = {"bob@remote.test"};
	submit(body_b, remote, 1, NULL, 0);
	assert_int_equal(queue_next_due(&when), STORE_OK);
	check_clean();
}

/* store check notices a queue that does not add up. */
static void
test_check_finds_queue_damage(void **state)
{
	(void)state;
	const char *remote[] = {"bob@remote.test"};
	uint64_t qid = submit(body_a, remote, 1, NULL, 0);

	/* Drop the due entry behind the queue's back. */
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(store_g->env, NULL, 0, &txn), 0);
	MDB_cursor *cur;
	MDB_val k, v;
	assert_int_equal(mdb_cursor_open(txn, store_g->queue_due, &cur), 0);
	assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
	assert_int_equal(be_get64((const uint8_t *)k.mv_data + 8), qid);
	assert_int_equal(mdb_cursor_del(cur, 0), 0);
	mdb_cursor_close(cur);
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(check_count(), 1);
	assert_non_null(strstr(buf_cstr(&report_buf), "is pending but not in queue_due"));

	/* And an entry whose body reference is unaccounted for. */
	uint8_t h[32];
	assert_int_equal(EVP_Digest(body_a, strlen(body_a), h, NULL, EVP_sha256(), NULL), 1);
	assert_int_equal(mdb_txn_begin(store_g->env, NULL, 0, &txn), 0);
	assert_int_equal(store_blob_addref(txn, h, 1), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(check_count(), 2);
	assert_non_null(strstr(buf_cstr(&report_buf), "reference count 2, but 1 messages"));
}

static int
admin_sync(enum queue_admin_op op, uint64_t qid, time_t now, enum queue_admin_result *res_r)
{
	struct queue_admin q = {.req = {.done = req_done}, .op = op, .queue_id = qid, .now = now};
	unsigned target = done_now() + 1;

	queue_admin(&q);
	wait_for(target);
	*res_r = q.result;
	return q.req.status;
}

/* Hold, release, retry and delete (queue_admin.c): a held entry is never
 * due, not even after a result of an attempt that was in flight, and the
 * store checks clean; release and retry make it due now; delete frees
 * the body. The admin's list and show see the same. */
static void
test_admin_ops(void **state)
{
	(void)state;
	const char *r1[] = {"x@remote.test", "y@other.test"};
	const char *r2[] = {"z@remote.test"};
	uint64_t q1 = submit(body_a, r1, 2, NULL, 0);
	uint64_t q2 = submit(body_b, r2, 1, NULL, 0);
	time_t now = time(NULL);
	struct arena *a = arena_new(0);
	struct queue_item *it;
	enum queue_admin_result res;

	assert_int_equal(admin_sync(QUEUE_OP_HOLD, q1, now, &res), STORE_OK);
	assert_int_equal(res, QUEUE_ADMIN_DONE);
	check_clean();
	size_t n = due_now(now + 100000, 10, NULL, NULL, a, &it);
	assert_int_equal(n, 1);
	assert_int_equal(it[0].queue_id, q2);
	assert_int_equal(admin_sync(QUEUE_OP_HOLD, q1, now, &res), STORE_OK);
	assert_int_equal(res, QUEUE_ADMIN_UNCHANGED);
	assert_int_equal(admin_sync(QUEUE_OP_RETRY, q1, now, &res), STORE_OK);
	assert_int_equal(res, QUEUE_ADMIN_IS_HELD);
	assert_int_equal(admin_sync(QUEUE_OP_RELEASE, q2, now, &res), STORE_OK);
	assert_int_equal(res, QUEUE_ADMIN_NOT_HELD);
	assert_int_equal(admin_sync(QUEUE_OP_HOLD, 999999, now, &res), STORE_NOTFOUND);

	/* An attempt that was in flight when the hold landed reports back:
	 * recorded, but the entry stays out of the due index. */
	struct queue_result dr = {.queue_id = q1,
				  .rcpt_idx = 0,
				  .outcome = QUEUE_DEFERRED,
				  .next_attempt = now + 50,
				  .reason = "451 4.4.1 no answer"};
	assert_int_equal(update_sync(&dr, 1, NULL, 0), STORE_OK);
	check_clean();
	assert_int_equal(due_now(now + 100000, 10, NULL, NULL, a, &it), 1);

	/* Show and list. */
	struct queue_info info;
	assert_int_equal(queue_get(q1, a, &info), STORE_OK);
	assert_true(info.held);
	assert_int_equal(info.state, QUEUE_MSG_HELD);
	assert_int_equal(info.nrcpts, 2);
	assert_string_equal(info.sender, "alice@local.test");
	assert_string_equal(info.rcpts[1].address, "y@other.test");
	assert_int_equal(info.rcpts[0].attempts, 1);
	assert_string_equal(info.rcpts[0].last_error, "451 4.4.1 no answer");
	assert_int_equal(info.size, strlen(body_a));
	assert_int_equal(queue_get(999999, a, &info), STORE_NOTFOUND);
	struct queue_filter f = {.state = QUEUE_MSG_HELD};
	struct queue_info *list;
	bool more;
	assert_int_equal(queue_list(&f, 0, 10, now, a, &list, &n, &more), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].queue_id, q1);
	f = (struct queue_filter){.domain = "remote.test"};
	assert_int_equal(queue_list(&f, 0, 1, now, a, &list, &n, &more), STORE_OK);
	assert_int_equal(n, 1);
	assert_true(more);
	assert_int_equal(list[0].queue_id, q1);
	assert_int_equal(queue_list(&f, list[0].queue_id, 1, now, a, &list, &n, &more), STORE_OK);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_int_equal(list[0].queue_id, q2);

	/* Release: both pending recipients due now (not at now + 50). */
	assert_int_equal(admin_sync(QUEUE_OP_RELEASE, q1, now, &res), STORE_OK);
	assert_int_equal(res, QUEUE_ADMIN_DONE);
	check_clean();
	assert_int_equal(due_now(now, 10, NULL, NULL, a, &it), 3);

	/* Retry: a recipient deferred far is due now again. */
	dr = (struct queue_result){.queue_id = q2,
				   .rcpt_idx = 0,
				   .outcome = QUEUE_DEFERRED,
				   .next_attempt = now + 3600,
				   .reason = "421 later"};
	assert_int_equal(update_sync(&dr, 1, NULL, 0), STORE_OK);
	assert_int_equal(due_now(now, 10, NULL, NULL, a, &it), 2);
	assert_int_equal(admin_sync(QUEUE_OP_RETRY, q2, now, &res), STORE_OK);
	assert_int_equal(res, QUEUE_ADMIN_DONE);
	check_clean();
	assert_int_equal(due_now(now, 10, NULL, NULL, a, &it), 3);

	/* Delete: gone, body freed, nothing due for it. */
	assert_int_equal(admin_sync(QUEUE_OP_DELETE, q1, now, &res), STORE_OK);
	check_clean();
	assert_refs(body_a, 0);
	assert_int_equal(queue_get(q1, a, &info), STORE_NOTFOUND);
	n = due_now(now, 10, NULL, NULL, a, &it);
	assert_int_equal(n, 1);
	assert_int_equal(it[0].queue_id, q2);
	assert_int_equal(admin_sync(QUEUE_OP_DELETE, q1, now, &res), STORE_NOTFOUND);
	arena_destroy(&a);
}

static void
test_codecs(void **state)
{
	(void)state;
	struct queue_rcpt_rec r = {.state = QUEUE_R_PENDING,
				   .notify = 6,
				   .flags = 1,
				   .attempts = 3,
				   .next_attempt = 1700000123,
				   .address = "a@b",
				   .address_len = 3,
				   .last_error = "451 x",
				   .last_error_len = 5};
	size_t n = queue_rcpt_size(&r);
	uint8_t *p = malloc(n + 1);
	struct queue_rcpt_rec d;

	queue_rcpt_encode(p, &r);
	assert_int_equal(queue_rcpt_decode(p, n, &d), 0);
	assert_int_equal(d.attempts, 3);
	assert_int_equal(d.next_attempt, 1700000123);
	assert_int_equal(d.orcpt_len, 0);
	assert_memory_equal(d.last_error, "451 x", 5);
	assert_int_equal(queue_rcpt_decode(p, n - 1, &d), -1);
	assert_int_equal(queue_rcpt_decode(p, n + 1, &d), -1);
	p[1] = 7; /* unknown state */
	assert_int_equal(queue_rcpt_decode(p, n, &d), -1);
	p[1] = 0;
	p[0] = 2; /* unknown version */
	assert_int_equal(queue_rcpt_decode(p, n, &d), -1);
	free(p);

	struct queue_msg_rec m = {.ret = QUEUE_RET_HDRS,
				  .origin = QUEUE_ORIGIN_FORWARD,
				  .nrcpts = 2,
				  .created = 5,
				  .size = 10,
				  .sender = "s@x",
				  .sender_len = 3,
				  .client = "[::1]",
				  .client_len = 5};
	n = queue_msg_size(&m);
	p = malloc(n);
	queue_msg_encode(p, &m);
	struct queue_msg_rec dm;
	assert_int_equal(queue_msg_decode(p, n, &dm), 0);
	assert_int_equal(dm.nrcpts, 2);
	assert_int_equal(dm.envid_len, 0);
	assert_memory_equal(dm.client, "[::1]", 5);
	p[2] = 0; /* no such origin */
	assert_int_equal(queue_msg_decode(p, n, &dm), -1);
	free(p);

	uint8_t k[QUEUE_DUE_KEY_LEN];
	queue_key_due(k, -5, 1, 2);
	assert_int_equal(be_get64(k), 0);
	assert_int_equal(be_get32(k + 16), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_remote_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_with_local_and_shared_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_due_order_in_flight_and_deferral, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_final_results_free_blob, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_in_same_txn, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_and_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_envelope_fails_delivery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_without_queue_dbs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check_finds_queue_damage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_admin_ops, setup, teardown),
	    cmocka_unit_test(test_codecs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
