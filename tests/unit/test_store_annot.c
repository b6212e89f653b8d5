/*
 * test_store_annot.c - annotations in the store (storage/store_annot.c) on
 * a real LMDB environment in a mkdtemp directory: entry-name validity
 * (table), set and get with DEPTH 0/1/infinity, removal, a whole batch
 * refused for one bad name, the per-scope count limit, a missing mailbox,
 * private entries per user, shared server entries common to all users
 * (store_check over such a store: test_imap_metadata.py), and the watch
 * events that name the entries a set changed (NOTIFY's metadata events).
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

#include "core/arena.h"
#include "core/config.h"
#include "core/worker.h"
#include "storage/store.h"

static char tmpdir[64];
static char statedir[128];
static struct config cfg;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned done_count;

static void
req_done(void *req, void *arg)
{
	(void)req;
	(void)arg;
	pthread_mutex_lock(&done_lock);
	done_count++;
	pthread_cond_broadcast(&done_cond);
	pthread_mutex_unlock(&done_lock);
}

/* Submits a set and waits for it; its status. */
static int
set(const char *owner, const char *user, uint32_t mbox, const struct store_annot *e, size_t n,
    unsigned max)
{
	struct store_annot_set s = {.owner_id = owner,
				    .user_id = user,
				    .mailbox_id = mbox,
				    .entries = e,
				    .n = n,
				    .max_entries = max};
	struct timespec ts;

	pthread_mutex_lock(&done_lock);
	unsigned target = done_count + 1;
	pthread_mutex_unlock(&done_lock);
	s.req.worker = worker_get(0);
	s.req.done = req_done;
	store_annot_set(&s);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&done_lock);
	while (done_count < target)
		if (pthread_cond_timedwait(&done_cond, &done_lock, &ts) != 0)
			break;
	unsigned got = done_count;
	pthread_mutex_unlock(&done_lock);
	assert_int_equal(got, target);
	return s.req.status;
}

/* The entries get_n() returns for names, as "name=value;..." (NUL shown
 * as \0), a "|" between the entries of one name and the next. */
static const char *
get_n(struct arena *a, const char *owner, const char *user, uint32_t mbox, const char *const *names,
      size_t nnames, int depth)
{
	struct store_annot *l;
	size_t *starts;
	struct buf b;

	assert_int_equal(store_annot_get(owner, user, mbox, names, nnames, depth, a, &l, &starts),
			 STORE_OK);
	buf_init(&b, 1 << 20);
	for (size_t r = 0; r < nnames; r++) {
		if (r > 0)
			buf_putc(&b, '|');
		for (size_t i = starts[r]; i < starts[r + 1]; i++) {
			buf_printf(&b, "%s=", l[i].name);
			for (size_t j = 0; j < l[i].len; j++) {
				if (l[i].value[j] == '\0')
					buf_append_str(&b, "\\0");
				else
					buf_putc(&b, l[i].value[j]);
			}
			buf_putc(&b, ';');
		}
	}
	const char *r = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return r;
}

static const char *
get(struct arena *a, const char *owner, const char *user, uint32_t mbox, const char *name,
    int depth)
{
	return get_n(a, owner, user, mbox, &name, 1, depth);
}

static int
setup(void **state)
{
	char *err = NULL;

	(void)state;
	strcpy(tmpdir, "/tmp/tern-annot-XXXXXX");
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

static void
test_names(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} t[] = {
	    {"/private/comment", true},
	    {"/shared/comment", true},
	    {"/private", true},
	    {"/shared", true},
	    {"/shared/vendor/tern/a-b_c.d", true},
	    {"/private/a b", true},
	    {"/privatex", false},
	    {"/shared2/x", false},
	    {"/other/x", false},
	    {"private/x", false},
	    {"", false},
	    {"/", false},
	    {"/private/", false},
	    {"/private//x", false},
	    {"/private/x/", false},
	    {"/private/a*", false},
	    {"/private/a%b", false},
	    {"/private/Comment", false}, /* stored names are lower-case */
	    {"/private/caf\xc3\xa9", false},
	    {"/private/a\tb", false},
	    {"/private/a\x7f", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (store_annot_name_ok(t[i].name) != t[i].ok)
			fail_msg("%s: expected %s", t[i].name, t[i].ok ? "valid" : "invalid");
	char long_name[STORE_ANNOT_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name));
	memcpy(long_name, "/private/", 9);
	long_name[STORE_ANNOT_NAME_MAX] = '\0';
	assert_true(store_annot_name_ok(long_name));
	long_name[STORE_ANNOT_NAME_MAX] = 'a';
	long_name[STORE_ANNOT_NAME_MAX + 1] = '\0';
	assert_false(store_annot_name_ok(long_name));
}

static void
test_set_get(void **state)
{
	struct arena *a = arena_new(0);
	const struct store_annot e[] = {
	    {"/private/v/a", "1", 1}, {"/private/v/a/b", "2", 1},  {"/private/v/c", "3", 1},
	    {"/private/va", "no", 2}, {"/shared/comment", "s", 1}, {"/private/bin", "x\0y", 3},
	};

	(void)state;
	/* INBOX (id 1) of a user the store has never seen: created. */
	assert_int_equal(set("uuid-a", "uuid-a", 1, e, 6, 0), STORE_OK);
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/private/v", 0), "");
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/private/v", 1),
			    "/private/v/a=1;/private/v/c=3;");
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/private/v", STORE_ANNOT_DEPTH_INFINITY),
			    "/private/v/a=1;/private/v/a/b=2;/private/v/c=3;");
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/private/bin", 0),
			    "/private/bin=x\\0y;");
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/shared", 1), "/shared/comment=s;");
	/* Another mailbox, and the user's server entries, are apart. */
	assert_string_equal(get(a, "uuid-a", "uuid-a", 0, "/private/v/a", 0), "");
	assert_string_equal(get(a, "uuid-a", "uuid-a", 2, "/private/v/a", 0), "");
	/* Overlapping names: each entry once, under the first name that
	 * selects it. */
	const char *ov[] = {"/private/v", "/private/v/a", "/private/v/a", "/private/none"};
	assert_string_equal(get_n(a, "uuid-a", "uuid-a", 1, ov, 4, 1),
			    "/private/v/a=1;/private/v/c=3;|/private/v/a/b=2;||");
	/* Removal; removing what is absent is fine. */
	const struct store_annot rm[] = {{"/private/v/a", NULL, 0}, {"/private/zz", NULL, 0}};
	assert_int_equal(set("uuid-a", "uuid-a", 1, rm, 2, 0), STORE_OK);
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/private/v", STORE_ANNOT_DEPTH_INFINITY),
			    "/private/v/a/b=2;/private/v/c=3;");
	/* One bad name refuses the whole batch. */
	const struct store_annot bad[] = {{"/private/new", "n", 1}, {"/private", "x", 1}};
	assert_int_equal(set("uuid-a", "uuid-a", 1, bad, 2, 0), STORE_PERMFAIL);
	assert_string_equal(get(a, "uuid-a", "uuid-a", 1, "/private/new", 0), "");
	/* A mailbox the user does not have. */
	assert_int_equal(set("uuid-a", "uuid-a", 99, e, 1, 0), STORE_NOTFOUND);
	arena_destroy(&a);
}

static void
test_limit_and_users(void **state)
{
	struct arena *a = arena_new(0);
	const struct store_annot three[] = {
	    {"/private/a", "1", 1}, {"/private/b", "2", 1}, {"/private/c", "3", 1}};
	const struct store_annot four[] = {{"/private/d", "4", 1}};
	const struct store_annot shared[] = {
	    {"/shared/a", "1", 1}, {"/shared/b", "2", 1}, {"/shared/c", "3", 1}};

	(void)state;
	assert_int_equal(set("uuid-b", "uuid-b", 1, three, 3, 3), STORE_OK);
	assert_int_equal(set("uuid-b", "uuid-b", 1, four, 1, 3), STORE_LIMIT);
	assert_int_equal(set("uuid-b", "uuid-b", 1, three, 1, 3), STORE_OK);  /* a replace */
	assert_int_equal(set("uuid-b", "uuid-b", 1, shared, 3, 3), STORE_OK); /* own scope */
	assert_int_equal(set("uuid-b", "uuid-b", 1, four, 1, 0), STORE_OK);   /* no limit */
	/* Private entries are per user: uuid-c's server entries are its own;
	 * shared server entries (owner 0) are everybody's. */
	const struct store_annot srv[] = {{"/private/x", "b", 1}, {"/shared/motd", "hi", 2}};
	const struct store_annot srv_c[] = {{"/private/x", "c", 1}};
	assert_int_equal(set("uuid-b", "uuid-b", 0, srv, 2, 0), STORE_OK);
	assert_int_equal(set("uuid-c", "uuid-c", 0, srv_c, 1, 0), STORE_OK);
	assert_string_equal(get(a, "uuid-b", "uuid-b", 0, "/private/x", 0), "/private/x=b;");
	assert_string_equal(get(a, "uuid-c", "uuid-c", 0, "/private/x", 0), "/private/x=c;");
	assert_string_equal(get(a, "uuid-c", "uuid-c", 0, "/shared/motd", 0), "/shared/motd=hi;");
	assert_string_equal(get(a, "uuid-never", "uuid-never", 0, "/shared", 1),
			    "/shared/motd=hi;");
	assert_string_equal(get(a, "uuid-never", "uuid-never", 0, "/private/x", 0), "");
	arena_destroy(&a);
}

/* What the watch was told: "mbox:user:name;" per entry ("-" for a
 * /shared one), and "+lost" when it said more were lost. */
struct seen {
	struct store_watch *w;
	unsigned calls, changed;
	char text[16384];
};

static void
watch_fn(void *arg, uint32_t mailbox_id, uint64_t highestmodseq, unsigned changed)
{
	struct seen *w = arg;
	size_t n, used = 0;
	bool lost;

	(void)mailbox_id;
	(void)highestmodseq;
	w->calls++;
	w->changed = changed;
	const struct store_watch_entry *e = store_watch_entries(w->w, &n, &lost);
	w->text[0] = '\0';
	for (size_t i = 0; i < n && used < sizeof(w->text) - 300; i++)
		used +=
		    (size_t)snprintf(w->text + used, sizeof(w->text) - used, "%u:%s:%s;",
				     e[i].mailbox_id, e[i].user_id ? e[i].user_id : "-", e[i].name);
	if (lost)
		snprintf(w->text + used, sizeof(w->text) - used, "+lost");
}

static void
test_watch_entries(void **state)
{
	static struct seen all, other;
	const struct store_annot two[] = {{"/shared/comment", "x", 1}, {"/private/a", "1", 1}};
	const struct store_annot same[] = {{"/private/a", "1", 1}, {"/private/zz", NULL, 0}};
	const struct store_annot rm[] = {{"/private/a", NULL, 0}, {"/private/a", "2", 1}};
	const struct store_annot priv[] = {{"/private/p", "e", 1}};

	(void)state;
	/* worker NULL: fn runs on the writer before the set is done. */
	all.w = store_watch_add("uuid-d", 0, NULL, watch_fn, &all);
	other.w = store_watch_add("uuid-d", 2, NULL, watch_fn, &other);
	assert_int_equal(set("uuid-d", "uuid-d", 1, two, 2, 0), STORE_OK);
	assert_int_equal(all.calls, 1);
	assert_int_equal(all.changed, STORE_CHANGED_METADATA);
	assert_string_equal(all.text, "1:-:/shared/comment;1:uuid-d:/private/a;");
	assert_int_equal(other.calls, 0); /* another mailbox's watch */
	/* Nothing changed (the same value, removing what is absent): no event. */
	assert_int_equal(set("uuid-d", "uuid-d", 1, same, 2, 0), STORE_OK);
	assert_int_equal(all.calls, 1);
	/* One entry changed twice in a set: named once. */
	assert_int_equal(set("uuid-d", "uuid-d", 1, rm, 2, 0), STORE_OK);
	assert_string_equal(all.text, "1:uuid-d:/private/a;");
	/* Another user's private entry on uuid-d's mailbox reaches uuid-d's
	 * watches naming that user; server entries are mailbox 0. */
	assert_int_equal(set("uuid-d", "uuid-e", 1, priv, 1, 0), STORE_OK);
	assert_string_equal(all.text, "1:uuid-e:/private/p;");
	assert_int_equal(set("uuid-d", "uuid-d", 0, priv, 1, 0), STORE_OK);
	assert_string_equal(all.text, "0:uuid-d:/private/p;");
	assert_int_equal(other.calls, 1); /* mailbox 0 reaches every watch */
	/* Past STORE_WATCH_ENTRIES_MAX the event says names were lost. */
	size_t n = STORE_WATCH_ENTRIES_MAX + 1;
	struct store_annot *many = calloc(n, sizeof(*many));
	char(*names)[32] = calloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "/private/n%03zu", i);
		many[i] = (struct store_annot){names[i], "v", 1};
	}
	assert_int_equal(set("uuid-d", "uuid-d", 1, many, n, 0), STORE_OK);
	assert_int_equal(all.calls, 5);
	assert_non_null(strstr(all.text, "1:uuid-d:/private/n255;+lost"));
	assert_null(strstr(all.text, "n256"));
	free(many);
	free(names);
	store_watch_remove(other.w);
	store_watch_remove(all.w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limit_and_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watch_entries, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
