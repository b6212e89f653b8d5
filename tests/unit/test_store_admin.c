/*
 * test_store_admin.c - storage/store_admin.h: the mbox and Maildir format
 * helpers table by table (mboxrd quoting both ways, From-line dates and
 * senders, Maildir info letters both ways, Maildir++ folder names), then
 * on a real LMDB environment in a mkdtemp directory: orphan marks, the
 * user listing, a purge in small steps that leaves the check clean and
 * frees exactly the bodies nobody else uses, export -> import round trips
 * (Maildir++, an mbox directory, one mbox file) that give back the same
 * bytes, flags, keywords and internal dates in the same order, and
 * malformed input named by file and line.
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
#include "storage/store.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"

static char tmpdir[64];
static char statedir[128];
static struct config cfg;

/* ---- format helpers ---- */

static char *
quoted(const char *in, bool quote)
{
	struct buf b;

	buf_init(&b, 1u << 20);
	assert_int_equal(quote ? store_mbox_quote(in, strlen(in), &b)
			       : store_mbox_unquote(in, strlen(in), &b),
			 0);
	char *r = strdup(b.data != NULL ? b.data : "");
	buf_free(&b);
	return r;
}

static void
test_mbox_quoting(void **state)
{
	(void)state;
	static const struct {
		const char *raw, *quoted;
	} cases[] = {
	    {"From me\r\n", ">From me\r\n"},
	    {">From me\r\n", ">>From me\r\n"},
	    {">>From me\n", ">>>From me\n"},
	    {"a\r\nFrom x\r\n>From y\r\n>>From z\r\nb",
	     "a\r\n>From x\r\n>>From y\r\n>>>From z\r\nb"},
	    {"Fromage\r\n", "Fromage\r\n"},
	    {" From x\r\n", " From x\r\n"},
	    {"From\r\n", "From\r\n"},
	    {">Fro m\n>\n", ">Fro m\n>\n"},
	    {"x\nFrom ", "x\n>From "},
	    {"", ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *q = quoted(cases[i].raw, true);
		assert_string_equal(q, cases[i].quoted);
		char *u = quoted(q, false);
		assert_string_equal(u, cases[i].raw);
		free(q);
		free(u);
	}
	/* Unquoting leaves a '>' line that is not a From line alone. */
	char *u = quoted(">Hello\r\n>\r\n", false);
	assert_string_equal(u, ">Hello\r\n>\r\n");
	free(u);
}

static void
test_mbox_from_lines(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		int rc;
		time_t t;
	} cases[] = {
	    {"From a@b.test Thu Jan  1 00:00:00 2026\n", 0, 1767225600},
	    {"From a@b.test Thu Jan 01 00:00:00 2026\r\n", 0, 1767225600},
	    {"From MAILER-DAEMON Sat Sep 12 12:26:40 2020", 0, 1599913600},
	    {"From \"a b\"@c.test Sat Sep 12 12:26:40 2020 +0000\n", 0, 1599913600},
	    {"From - Sat Sep 12 12:26:40 2020\n", 0, 1599913600},
	    {"From a@b.test\n", -1, 0},
	    {"From a@b.test yesterday\n", -1, 0},
	    {"Frm a Sat Sep 12 12:26:40 2020\n", -1, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_t t = 0;
		int rc = store_mbox_from_date(cases[i].line, strlen(cases[i].line), &t);
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0)
			assert_int_equal((long long)t, (long long)cases[i].t);
	}

	struct buf b;
	buf_init(&b, 4096);
	const char *m1 = "Return-Path: <s@x.test>\r\nDelivered-To: a@b\r\n\r\nhi\r\n";
	assert_int_equal(store_mbox_from_line(m1, strlen(m1), 1599913600, &b), 0);
	assert_string_equal(b.data, "From s@x.test Sat Sep 12 12:26:40 2020\n");
	buf_reset(&b);
	const char *m2 = "Return-Path: <>\r\n\r\nbounce\r\n";
	assert_int_equal(store_mbox_from_line(m2, strlen(m2), 1767225600, &b), 0);
	assert_string_equal(b.data, "From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n");
	/* What we write, we read back. */
	time_t t;
	assert_int_equal(store_mbox_from_date(b.data, b.len, &t), 0);
	assert_int_equal((long long)t, 1767225600);
	buf_free(&b);
}

static void
test_maildir_names(void **state)
{
	(void)state;
	static const struct {
		uint32_t flags;
		bool passed;
		uint32_t kw;
		const char *info;
	} gen[] = {
	    {0, false, 0, "2,"},
	    {STORE_FLAG_SEEN, false, 0, "2,S"},
	    {STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED, false, 0, "2,FRS"},
	    {STORE_FLAGS_ALL, true, 0, "2,DFPRST"},
	    {STORE_FLAG_DELETED, false, 0x5, "2,Tac"},
	    {STORE_FLAG_DRAFT, false, 1u << 25, "2,Dz"},
	};
	for (size_t i = 0; i < sizeof(gen) / sizeof(gen[0]); i++) {
		char info[40], name[80];
		uint32_t f, kw;
		bool p;
		store_maildir_info(gen[i].flags, gen[i].passed, gen[i].kw, info);
		assert_string_equal(info, gen[i].info);
		snprintf(name, sizeof(name), "1600000000.42_0000000007.tern:%s", info);
		assert_int_equal(store_maildir_parse(name, &f, &p, &kw), 0);
		assert_int_equal(f, gen[i].flags);
		assert_int_equal(p, gen[i].passed);
		assert_int_equal(kw, gen[i].kw);
	}
	static const struct {
		const char *name;
		int rc;
		uint32_t flags;
	} parse[] = {
	    {"1600000000.M1P2.host", 0, 0}, /* new/: no info */
	    {"1600000000.M1P2.host:2,", 0, 0},
	    {"1600000000.M1P2.host,S=100:2,RS", 0, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED},
	    {"1600000000.M1P2.host:2,SX", 0, STORE_FLAG_SEEN}, /* other programs' capitals */
	    {"1600000000.M1P2.host:1,S", -1, 0},
	    {"1600000000.M1P2.host:2S", -1, 0},
	    {"1600000000.M1P2.host:2,S3", -1, 0},
	    {"1600000000.M1P2.host:2,S,", -1, 0},
	    {"1600000000.M1P2.host:", -1, 0},
	    {":2,S", -1, 0},
	    {"", -1, 0},
	};
	for (size_t i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
		uint32_t f, kw;
		bool p;
		assert_int_equal(store_maildir_parse(parse[i].name, &f, &p, &kw), parse[i].rc);
		if (parse[i].rc == 0)
			assert_int_equal(f, parse[i].flags);
	}

	struct arena *a = arena_new(0);
	static const struct {
		const char *box, *folder;
	} names[] = {
	    {"Sent", "Sent"},
	    {"a/b", "a.b"},
	    {"a/b.c", "a.b%2Ec"},
	    {"100%/x", "100%25.x"},
	    {"Gr\xc3\xbc\xc3\x9f"
	     "e",
	     "Gr\xc3\xbc\xc3\x9f"
	     "e"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_string_equal(store_maildir_folder(a, names[i].box), names[i].folder);
		assert_string_equal(store_maildir_mailbox(a, names[i].folder), names[i].box);
	}
	assert_string_equal(store_maildir_mailbox(a, "inbox"), "INBOX");
	assert_null(store_maildir_mailbox(a, "a..b")); /* an empty level */
	assert_null(store_maildir_mailbox(a, "a."));
	assert_null(store_maildir_mailbox(a, "x%00y"));
	arena_destroy(&a);
}

/* ---- on a store ---- */

static int
setup(void **state)
{
	char *err = NULL;

	(void)state;
	strcpy(tmpdir, "/tmp/tern-admin-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(statedir, sizeof(statedir), "%s/state", tmpdir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = statedir;
	cfg.map_size = 64u << 20;
	cfg.group_commit = true;
	cfg.batch_max_ops = 64;
	cfg.batch_max_bytes = 8u << 20;
	cfg.zstd_level = 3;
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

static void
report_fail(void *arg, const char *problem)
{
	(void)arg;
	fail_msg("check: %s", problem);
}

static char problems_seen[4096];

static void
collect_problem(void *arg, const char *problem)
{
	(void)arg;
	strncat(problems_seen, problem, sizeof(problems_seen) - strlen(problems_seen) - 2);
	strcat(problems_seen, "\n");
}

/* The check, in this process, on the live store. */
static void
assert_check_clean(void)
{
	MDB_txn *txn;
	char *err = NULL;

	assert_int_equal(store_read_begin(&txn), 0);
	int n = store_check_txn(txn, report_fail, NULL, NULL, &err);
	store_read_end(txn);
	if (n != 0)
		fail_msg("check: %d (%s)", n, err != NULL ? err : "problems");
}

/* Deliveries complete on the writer thread (worker NULL). */
static pthread_mutex_t dl = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dc = PTHREAD_COND_INITIALIZER;
static bool delivered;

static void
deliver_done(struct store_delivery *d, void *arg)
{
	(void)d;
	(void)arg;
	pthread_mutex_lock(&dl);
	delivered = true;
	pthread_cond_signal(&dc);
	pthread_mutex_unlock(&dl);
}

static void
deliver(const char *body, time_t date, const char *const *users, const char *const *traces,
	size_t n)
{
	struct store_rcpt r[4];
	struct store_delivery d = {.body = body,
				   .body_len = strlen(body),
				   .internal_date = date,
				   .rcpts = r,
				   .nrcpts = n,
				   .done = deliver_done};

	memset(r, 0, sizeof(r));
	for (size_t i = 0; i < n; i++) {
		r[i].user_id = users[i];
		r[i].trace = traces != NULL ? traces[i] : NULL;
		r[i].trace_len = r[i].trace != NULL ? strlen(r[i].trace) : 0;
	}
	delivered = false;
	store_deliver(&d);
	pthread_mutex_lock(&dl);
	while (!delivered)
		pthread_cond_wait(&dc, &dl);
	pthread_mutex_unlock(&dl);
	assert_int_equal(d.status, STORE_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(r[i].status, STORE_OK);
}

static int
sync_append(const char *user, const char *box, const char *body, uint32_t flags,
	    const char *const *kws, size_t nkws, time_t date)
{
	struct store_append_msg m = {.body = body,
				     .body_len = strlen(body),
				     .flags = flags,
				     .keywords = kws,
				     .nkeywords = nkws,
				     .internal_date = date};
	struct store_append ap = {.user_id = user, .mailbox = box, .msgs = &m, .nmsgs = 1};
	struct store_sync s;

	store_sync_prepare(&s, &ap.req);
	store_append(&ap);
	store_sync_wait(&s);
	return ap.req.status;
}

static int
sync_create(const char *user, const char *box)
{
	struct store_mailbox_change m = {.op = STORE_MBOX_CREATE, .user_id = user, .name = box};
	struct store_sync s;

	store_sync_prepare(&s, &m.req);
	store_mailbox_change(&m);
	store_sync_wait(&s);
	return m.req.status;
}

static void
blob_refs(const char *body, uint32_t *refs, uint32_t *chunks)
{
	uint8_t h[32];

	assert_int_equal(EVP_Digest(body, strlen(body), h, NULL, EVP_sha256(), NULL), 1);
	assert_int_equal(store_blob_refcount(h, refs, chunks), 0);
}

static const char shared_body[] = "From: list@x.test\r\nSubject: to both\r\n\r\nshared\r\n";
static const char own_body[] = "From: a@x.test\r\nSubject: only A\r\n\r\nmine\r\n";

static void
test_orphans_and_users(void **state)
{
	(void)state;
	const char *both[] = {"uuid-A", "uuid-B"};
	struct arena *a = arena_new(0);
	struct store_orphan *o;
	struct store_user_summary *u, one;
	size_t n;
	time_t at;

	deliver(shared_body, 1600000000, both, NULL, 2);
	deliver(own_body, 1600000100, both, NULL, 1);

	assert_int_equal(store_user_mark_orphan("uuid-nobody", 0, NULL), STORE_NOTFOUND);
	assert_int_equal(store_user_unmark_orphan("uuid-A"), STORE_NOTFOUND);
	assert_int_equal(store_user_mark_orphan("uuid-A", 1700000000, &at), STORE_OK);
	assert_int_equal((long long)at, 1700000000);
	/* A second mark keeps the first time: retention counts from it. */
	assert_int_equal(store_user_mark_orphan("uuid-A", 1800000000, &at), STORE_OK);
	assert_int_equal((long long)at, 1700000000);
	assert_int_equal(store_orphan_list(a, &o, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(o[0].user_id, "uuid-A");
	assert_int_equal((long long)o[0].marked_at, 1700000000);
	assert_check_clean();

	time_t before = time(NULL);
	assert_int_equal(store_user_list(a, &u, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(u[0].user_id, "uuid-A");
	assert_int_equal(u[0].messages, 2);
	assert_int_equal(u[0].bytes, strlen(shared_body) + strlen(own_body));
	assert_int_equal(u[0].unseen, 2);
	assert_int_equal(u[0].mailboxes, 6); /* INBOX and the five defaults */
	assert_int_equal((long long)u[0].orphaned_at, 1700000000);
	assert_true(u[0].created > 0 && u[0].created <= before + 10);
	assert_true(u[0].last_arrival >= u[0].created - 5 && u[0].last_arrival <= before);
	assert_string_equal(u[1].user_id, "uuid-B");
	assert_int_equal(u[1].messages, 1);
	assert_int_equal(u[1].orphaned_at, 0);

	assert_int_equal(store_user_get("uuid-B", a, &one), STORE_OK);
	assert_int_equal(one.messages, 1);
	assert_int_equal(store_user_get("uuid-nobody", a, &one), STORE_NOTFOUND);

	assert_int_equal(store_user_unmark_orphan("uuid-A"), STORE_OK);
	assert_int_equal(store_orphan_list(a, &o, &n), STORE_OK);
	assert_int_equal(n, 0);

	/* The check validates marks: one of a user the store lacks and one
	 * that does not decode, written by hand, are both named. */
	MDB_txn *txn;
	uint8_t rec[STORE_ORPHAN_LEN];
	store_orphan_encode(rec, 1700000000);
	MDB_val k1 = {.mv_size = 10, .mv_data = "uuid-ghost"},
		v1 = {.mv_size = sizeof(rec), .mv_data = rec};
	MDB_val k2 = {.mv_size = 6, .mv_data = "uuid-B"}, v2 = {.mv_size = 3, .mv_data = "bad"};
	assert_int_equal(mdb_txn_begin(store_g->env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, store_g->orphans, &k1, &v1, 0), 0);
	assert_int_equal(mdb_put(txn, store_g->orphans, &k2, &v2, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	char *err = NULL;
	problems_seen[0] = '\0';
	assert_int_equal(store_read_begin(&txn), 0);
	assert_int_equal(store_check_txn(txn, collect_problem, NULL, NULL, &err), 2);
	store_read_end(txn);
	assert_non_null(strstr(problems_seen, "\"uuid-ghost\", a user the store does not have"));
	assert_non_null(
	    strstr(problems_seen, "orphan mark of \"uuid-B\": the record does not decode"));
	arena_destroy(&a);
}

static void
test_purge(void **state)
{
	(void)state;
	const char *both[] = {"uuid-A", "uuid-B"};
	struct arena *a = arena_new(0);
	struct store_user_summary one;
	uint32_t refs, chunks;
	char body[128];

	deliver(shared_body, 1600000000, both, NULL, 2);
	deliver(own_body, 1600000100, both, NULL, 1);
	assert_int_equal(sync_create("uuid-A", "Work/Deep"), STORE_OK);
	for (int i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "Subject: work %d\r\n\r\nbody %d\r\n", i, i);
		assert_int_equal(sync_append("uuid-A", "Work/Deep", body, STORE_FLAG_SEEN, NULL, 0,
					     1600000000 + i),
				 STORE_OK);
	}
	assert_int_equal(store_user_mark_orphan("uuid-A", 0, NULL), STORE_OK);
	blob_refs(shared_body, &refs, &chunks);
	assert_int_equal(refs, 2);
	assert_check_clean();

	/* Steps of two messages: the store checks clean between them. */
	unsigned steps = 0;
	uint64_t total = 0;
	for (;;) {
		struct store_purge p = {.user_id = "uuid-A", .max_messages = 2};
		struct store_sync s;
		store_sync_prepare(&s, &p.req);
		store_purge_step(&p);
		store_sync_wait(&s);
		assert_int_equal(p.req.status, STORE_OK);
		total += p.messages;
		steps++;
		assert_check_clean();
		if (p.finished)
			break;
		assert_true(steps < 10);
	}
	assert_int_equal(total, 7);
	assert_true(steps >= 4);

	assert_int_equal(store_user_get("uuid-A", a, &one), STORE_NOTFOUND);
	struct store_orphan *o;
	size_t n;
	assert_int_equal(store_orphan_list(a, &o, &n), STORE_OK);
	assert_int_equal(n, 0);
	/* The body B still has stays, with one reference; A's own are gone. */
	blob_refs(shared_body, &refs, &chunks);
	assert_int_equal(refs, 1);
	assert_true(chunks > 0);
	blob_refs(own_body, &refs, &chunks);
	assert_int_equal(refs, 0);
	assert_int_equal(chunks, 0);
	snprintf(body, sizeof(body), "Subject: work %d\r\n\r\nbody %d\r\n", 3, 3);
	blob_refs(body, &refs, &chunks);
	assert_int_equal(refs + chunks, 0);
	uint64_t qb, qm;
	assert_int_equal(store_usage("uuid-A", &qb, &qm), STORE_OK);
	assert_int_equal(qb + qm, 0);
	assert_int_equal(store_user_get("uuid-B", a, &one), STORE_OK);
	assert_int_equal(one.messages, 1);
	assert_int_equal(store_user_purge("uuid-A", NULL, NULL, NULL, NULL), STORE_NOTFOUND);

	/* Mail after a purge makes a new user, with a new INBOX. */
	deliver(own_body, 1600000200, both, NULL, 1);
	assert_int_equal(store_user_get("uuid-A", a, &one), STORE_OK);
	assert_int_equal(one.messages, 1);
	assert_check_clean();

	/* The blocking purge in one go. */
	uint64_t msgs = 0, bytes = 0;
	assert_int_equal(store_user_purge("uuid-B", NULL, NULL, &msgs, &bytes), STORE_OK);
	assert_int_equal(msgs, 1);
	assert_int_equal(bytes, strlen(shared_body));
	blob_refs(shared_body, &refs, &chunks);
	assert_int_equal(refs + chunks, 0);
	assert_check_clean();
	arena_destroy(&a);
}

/* ---- export / import ---- */

struct msg_view {
	char *bytes;
	size_t len;
	uint32_t flags;
	time_t date;
	char kws[256];
};

/* Every message of a mailbox, in UID order. */
static size_t
read_box(const char *user, const char *box, struct msg_view **out)
{
	struct arena *a = arena_new(0);
	struct store_mailbox_info info;
	struct store_msg_info *m;
	size_t n;

	assert_int_equal(store_mailbox_list(user, box, a, &info, &m, &n), STORE_OK);
	*out = calloc(n + 1, sizeof(**out));
	for (size_t i = 0; i < n; i++) {
		struct buf b;
		buf_init(&b, 1u << 24);
		assert_int_equal(store_message_read(user, box, m[i].uid, &b), STORE_OK);
		(*out)[i].bytes = malloc(b.len + 1);
		memcpy((*out)[i].bytes, b.data, b.len);
		(*out)[i].len = b.len;
		(*out)[i].flags = m[i].flags;
		(*out)[i].date = m[i].internal_date;
		/* keywords as a sorted, case-folded set */
		char *k[64];
		size_t nk = 0;
		for (size_t j = 0; j < m[i].nkeywords; j++)
			k[nk++] = strdup(m[i].keywords[j]);
		for (size_t x = 0; x < nk; x++)
			for (size_t y = x + 1; y < nk; y++)
				if (strcasecmp(k[x], k[y]) > 0) {
					char *t = k[x];
					k[x] = k[y];
					k[y] = t;
				}
		for (size_t x = 0; x < nk; x++) {
			strcat((*out)[i].kws, k[x]);
			strcat((*out)[i].kws, " ");
			free(k[x]);
		}
		buf_free(&b);
	}
	arena_destroy(&a);
	return n;
}

static void
free_box(struct msg_view *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].bytes);
	free(v);
}

static void
assert_same_box(const char *u1, const char *b1, const char *u2, const char *b2, size_t expect)
{
	struct msg_view *x, *y;
	size_t nx = read_box(u1, b1, &x), ny = read_box(u2, b2, &y);

	assert_int_equal(nx, expect);
	assert_int_equal(ny, expect);
	for (size_t i = 0; i < nx; i++) {
		assert_int_equal(x[i].len, y[i].len);
		assert_memory_equal(x[i].bytes, y[i].bytes, x[i].len);
		assert_int_equal(x[i].flags, y[i].flags);
		assert_int_equal((long long)x[i].date, (long long)y[i].date);
		assert_string_equal(x[i].kws, y[i].kws);
	}
	free_box(x, nx);
	free_box(y, ny);
}

static const char tricky[] = "From: a@x.test\r\nSubject: quoting\r\n\r\nFrom the start\r\n"
			     ">From quoted\r\n>>From twice\r\nFromage\r\n\r\n";
static const char headers_only[] = "Subject: no body\r\nX-A: b\r\n";

static void
fill_source(void)
{
	const char *src[] = {"uuid-src"};
	const char *trace[] = {"Return-Path: <s@x.test>\r\nDelivered-To: src@x.test\r\n"};
	const char *kw1[] = {"$Forwarded", "work", "$Junk"};
	const char *kw2[] = {"later"};
	char body[128];

	deliver(tricky, 1500000000, src, trace, 1);
	assert_int_equal(sync_append("uuid-src", "INBOX", headers_only,
				     STORE_FLAG_SEEN | STORE_FLAG_FLAGGED, kw1, 3, 1400000000),
			 STORE_OK);
	assert_int_equal(sync_create("uuid-src", "Work/Sub.x"), STORE_OK);
	for (int i = 0; i < 4; i++) {
		snprintf(body, sizeof(body), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		assert_int_equal(
		    sync_append("uuid-src", "Work/Sub.x", body,
				i % 2 ? STORE_FLAG_ANSWERED | STORE_FLAG_DRAFT : STORE_FLAG_DELETED,
				i == 2 ? kw2 : NULL, i == 2 ? 1 : 0, 1300000000 - i),
		    STORE_OK);
	}
}

static void
test_round_trips(void **state)
{
	(void)state;
	struct store_xfer_opts o = {0};
	struct store_xfer_stats st;
	char path[256], *err = NULL;

	fill_source();
	static const struct {
		enum store_mail_format fmt;
		const char *dir, *user;
	} runs[] = {
	    {STORE_FORMAT_MAILDIR, "md", "uuid-dst-md"},
	    {STORE_FORMAT_MBOX, "mb", "uuid-dst-mb"},
	};
	for (size_t r = 0; r < 2; r++) {
		o.format = runs[r].fmt;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, runs[r].dir);
		int rc = store_export("uuid-src", path, &o, &st, &err);
		if (rc != 0)
			fail_msg("export: %s", err);
		assert_int_equal(st.messages, 6);
		assert_int_equal(st.mailboxes, 8); /* INBOX, 5 defaults, Work, Work/Sub.x */
		rc = store_import(runs[r].user, path, &o, &st, &err);
		if (rc != 0)
			fail_msg("import: %s", err);
		assert_int_equal(st.messages, 6);
		assert_same_box("uuid-src", "INBOX", runs[r].user, "INBOX", 2);
		assert_same_box("uuid-src", "Work/Sub.x", runs[r].user, "Work/Sub.x", 4);
		/* An export into a directory that is not empty is refused. */
		assert_int_equal(store_export("uuid-src", path, &o, &st, &err), STORE_PERMFAIL);
		assert_non_null(strstr(err, "not empty"));
		free(err);
		err = NULL;
	}
	struct stat sb;
	snprintf(path, sizeof(path), "%s/md/.Work.Sub%%2Ex/maildirfolder", tmpdir);
	assert_int_equal(stat(path, &sb), 0);
	snprintf(path, sizeof(path), "%s/mb/Work.Sub%%2Ex.mbox", tmpdir);
	assert_int_equal(stat(path, &sb), 0);

	/* One mailbox into one mbox file, back into another name. */
	o.format = STORE_FORMAT_MBOX;
	o.mailbox = "Work/Sub.x";
	snprintf(path, sizeof(path), "%s/one.mbox", tmpdir);
	assert_int_equal(store_export("uuid-src", path, &o, &st, &err), STORE_OK);
	assert_int_equal(st.messages, 4);
	o.mailbox = "Restored";
	assert_int_equal(store_import("uuid-dst-one", path, &o, &st, &err), STORE_OK);
	assert_same_box("uuid-src", "Work/Sub.x", "uuid-dst-one", "Restored", 4);
	o.mailbox = "nope";
	assert_int_equal(store_export("uuid-src", path, &o, &st, &err), STORE_NOTFOUND);
	free(err);
	err = NULL;
	o.mailbox = NULL;
	assert_int_equal(store_export("uuid-nobody", path, &o, &st, &err), STORE_NOTFOUND);
	free(err);
	assert_check_clean();
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_import_input(void **state)
{
	(void)state;
	struct store_xfer_opts o = {.format = STORE_FORMAT_MBOX};
	struct store_xfer_stats st;
	char path[256], dir[256], *err = NULL;

	/* Not an mbox: named by file and line. */
	snprintf(path, sizeof(path), "%s/notmbox", tmpdir);
	write_file(path, "Subject: hi\n\nbody\n");
	assert_int_equal(store_import("uuid-in", path, &o, &st, &err), STORE_PERMFAIL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "line 1"));
	free(err);
	/* ... and changed nothing: not even a new user. */
	struct arena *a = arena_new(0);
	struct store_user_summary us;
	assert_int_equal(store_user_get("uuid-in", a, &us), STORE_NOTFOUND);

	/* A foreign mbox with LF line ends, a date-less From line, quoted
	 * lines and flag headers; an empty file is zero messages. */
	snprintf(path, sizeof(path), "%s/lf.mbox", tmpdir);
	write_file(path, "From x@y Sat Sep 12 12:26:40 2020\n"
			 "Subject: one\nStatus: RO\nX-Status: AF\nX-Keywords: alpha beta\n\n"
			 ">From here\n\n"
			 "From nobody\n"
			 "Subject: two\n\ntext\n");
	assert_int_equal(store_import("uuid-in", path, &o, &st, &err), STORE_OK);
	assert_int_equal(st.messages, 2);
	struct msg_view *v;
	size_t n = read_box("uuid-in", "INBOX", &v);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].len, strlen("Subject: one\r\n\r\nFrom here\r\n"));
	assert_memory_equal(v[0].bytes, "Subject: one\r\n\r\nFrom here\r\n", v[0].len);
	assert_int_equal(v[0].flags, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED);
	assert_string_equal(v[0].kws, "alpha beta ");
	assert_int_equal((long long)v[0].date, 1599913600);
	assert_memory_equal(v[1].bytes, "Subject: two\r\n\r\ntext\r\n", v[1].len);
	assert_true(v[1].date > 1700000000); /* no date: the import time */
	free_box(v, n);
	snprintf(path, sizeof(path), "%s/empty.mbox", tmpdir);
	write_file(path, "");
	assert_int_equal(store_import("uuid-in", path, &o, &st, &err), STORE_OK);
	assert_int_equal(st.messages, 0);

	/* A broken Maildir name is named, with its folder. */
	o.format = STORE_FORMAT_MAILDIR;
	snprintf(dir, sizeof(dir), "%s/bad", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/bad/cur", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/bad/cur/1600000000.x.host:1,S", tmpdir);
	write_file(path, "Subject: x\n\ny\n");
	assert_int_equal(store_import("uuid-in2", dir, &o, &st, &err), STORE_PERMFAIL);
	assert_non_null(strstr(err, "1600000000.x.host:1,S"));
	assert_non_null(strstr(err, "bad/cur"));
	free(err);
	assert_int_equal(store_user_get("uuid-in2", a, &us), STORE_NOTFOUND);
	arena_destroy(&a);
	/* Not a Maildir at all. */
	snprintf(dir, sizeof(dir), "%s/plain", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_import("uuid-in", dir, &o, &st, &err), STORE_PERMFAIL);
	assert_non_null(strstr(err, "not a Maildir"));
	free(err);
	assert_check_clean();
}

/* 450 messages: three transactions of at most STORE_IMPORT_BATCH_MSGS. */
static void
test_import_batches(void **state)
{
	(void)state;
	struct store_xfer_opts o = {.format = STORE_FORMAT_MBOX};
	struct store_xfer_stats st;
	char path[256], *err = NULL;

	snprintf(path, sizeof(path), "%s/big.mbox", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 450; i++)
		fprintf(f,
			"From a@b Sat Sep 12 12:26:40 2020\nSubject: %d\nX-Keywords: k%d\n\n"
			"body %d\n\n",
			i, i % 3, i);
	fclose(f);
	assert_int_equal(store_import("uuid-big", path, &o, &st, &err), STORE_OK);
	assert_int_equal(st.messages, 450);
	assert_int_equal(st.batches, (450 + STORE_IMPORT_BATCH_MSGS - 1) / STORE_IMPORT_BATCH_MSGS);
	uint64_t qb, qm;
	assert_int_equal(store_usage("uuid-big", &qb, &qm), STORE_OK);
	assert_int_equal(qm, 450);
	/* The keyword of the first message of each batch survived the flush
	 * that made room for it. */
	struct msg_view *v;
	size_t n = read_box("uuid-big", "INBOX", &v);
	assert_int_equal(n, 450);
	for (size_t i = 0; i < n; i++) {
		char want[16];
		snprintf(want, sizeof(want), "k%zu ", i % 3);
		assert_string_equal(v[i].kws, want);
	}
	free_box(v, n);
	assert_check_clean();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mbox_quoting),
	    cmocka_unit_test(test_mbox_from_lines),
	    cmocka_unit_test(test_maildir_names),
	    cmocka_unit_test_setup_teardown(test_orphans_and_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_import_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_import_batches, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
