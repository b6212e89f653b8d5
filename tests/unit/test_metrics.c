/*
 * test_metrics.c - the shared counter area (core/metrics.c): the file's
 * layout as another process sees it (header fields at fixed offsets,
 * slot i at 64 + 8*i), zeroing at start, the histograms' buckets, the
 * Prometheus rendering, and refusal of foreign or other-version files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/metrics.h"

static char dir[] = "/tmp/tern-metrics-XXXXXX";
static char path[128];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/tern-metrics-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/metrics", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	metrics_close();
	unlink(path);
	rmdir(dir);
	return 0;
}

static uint64_t
raw_u64(const unsigned char *file, size_t off)
{
	uint64_t v;
	memcpy(&v, file + off, sizeof(v));
	return v;
}

static unsigned char *
slurp(size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	unsigned char *data = malloc(1 << 16);
	*len_r = fread(data, 1, 1 << 16, f);
	fclose(f);
	return data;
}

static void
test_layout(void **state)
{
	(void)state;
	assert_int_equal(metrics_open(dir), 0);
	metric_inc(M_LOGIN_OK + SVC_IMAP);
	metric_inc(M_LOGIN_OK + SVC_IMAP);
	metric_add(M_DELIVERED_RCPTS, 5);
	metric_inc(M_CONN_OPEN + SVC_SMTP);
	metric_dec(M_CONN_OPEN + SVC_SMTP);

	size_t len;
	unsigned char *file = slurp(&len);
	assert_int_equal(len, METRICS_HEADER_SIZE + 8 * M_COUNT);
	/* The header, byte for byte where a reader looks. */
	assert_memory_equal(file, "TERNMETR", 8);
	uint32_t u32;
	memcpy(&u32, file + 8, 4);
	assert_int_equal(u32, METRICS_VERSION);
	memcpy(&u32, file + 12, 4);
	assert_int_equal(u32, M_COUNT);
	memcpy(&u32, file + 16, 4);
	assert_int_equal(u32, METRICS_HEADER_SIZE);
	assert_int_equal((int64_t)raw_u64(file, 24), (int64_t)getpid());
	assert_true((int64_t)raw_u64(file, 32) > 1700000000);
	/* Slots. */
	assert_int_equal(raw_u64(file, 64 + 8 * (M_LOGIN_OK + SVC_IMAP)), 2);
	assert_int_equal(raw_u64(file, 64 + 8 * M_DELIVERED_RCPTS), 5);
	assert_int_equal(raw_u64(file, 64 + 8 * (M_CONN_OPEN + SVC_SMTP)), 0);
	assert_int_equal(raw_u64(file, 64 + 8 * (M_LOGIN_OK + SVC_POP3)), 0);
	free(file);

	/* A second start zeroes what the first counted. */
	metrics_close();
	assert_int_equal(metrics_open(dir), 0);
	file = slurp(&len);
	assert_int_equal(raw_u64(file, 64 + 8 * (M_LOGIN_OK + SVC_IMAP)), 0);
	free(file);
}

static void
test_read_and_render(void **state)
{
	(void)state;
	assert_int_equal(metrics_open(dir), 0);
	metric_inc_svc(M_CONN_TOTAL, "imap");
	metric_inc_svc(M_CONN_TOTAL, "imap");
	metric_inc_svc(M_LOGIN_FAILED, "pop3s");
	metric_inc_svc(M_LOGIN_OK, "no-such-service"); /* ignored */
	metrics_observe_batch(1);
	metrics_observe_batch(3);
	metrics_observe_batch(500);
	metrics_observe_dir_op(400);	 /* 0.4 ms: le 0.001 */
	metrics_observe_dir_op(30000);	 /* 30 ms: le 0.05 */
	metrics_observe_dir_op(9000000); /* 9 s: +Inf only */
	metric_inc(M_DIR_CACHE_HIT);

	struct metrics_snapshot s;
	char *err = NULL;
	assert_int_equal(metrics_read(path, &s, &err), 0);
	assert_int_equal(s.v[M_CONN_TOTAL + SVC_IMAP], 2);
	assert_int_equal(s.v[M_LOGIN_FAILED + SVC_POP3S], 1);
	assert_int_equal(s.v[M_BATCH_COUNT], 3);
	assert_int_equal(s.v[M_BATCH_OPS], 504);
	assert_int_equal(s.v[M_BATCH_BUCKET + 0], 1);			  /* le 1 */
	assert_int_equal(s.v[M_BATCH_BUCKET + 2], 1);			  /* le 4 */
	assert_int_equal(s.v[M_BATCH_BUCKET + METRICS_BATCH_BUCKETS], 1); /* +Inf */
	assert_int_equal(s.header.pid, getpid());

	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(metrics_render(&s, &out), 0);
	const char *t = buf_cstr(&out);
	assert_non_null(strstr(t, "# TYPE tern_connections_total counter\n"));
	assert_non_null(strstr(t, "tern_connections_total{service=\"imap\"} 2\n"));
	assert_non_null(strstr(t, "tern_logins_total{service=\"pop3s\",result=\"failed\"} 1\n"));
	assert_non_null(strstr(t, "tern_logins_total{service=\"imap\",result=\"ok\"} 0\n"));
	/* Buckets are cumulative; +Inf equals _count. */
	assert_non_null(strstr(t, "tern_store_batch_operations_bucket{le=\"1\"} 1\n"));
	assert_non_null(strstr(t, "tern_store_batch_operations_bucket{le=\"4\"} 2\n"));
	assert_non_null(strstr(t, "tern_store_batch_operations_bucket{le=\"128\"} 2\n"));
	assert_non_null(strstr(t, "tern_store_batch_operations_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "tern_store_batch_operations_count 3\n"));
	assert_non_null(strstr(t, "tern_directory_operation_seconds_bucket{le=\"0.001\"} 1\n"));
	assert_non_null(strstr(t, "tern_directory_operation_seconds_bucket{le=\"0.05\"} 2\n"));
	assert_non_null(strstr(t, "tern_directory_operation_seconds_bucket{le=\"5\"} 2\n"));
	assert_non_null(strstr(t, "tern_directory_operation_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "tern_directory_operation_seconds_sum 9.030400\n"));
	assert_non_null(strstr(t, "tern_directory_cache_total{result=\"hit\"} 1\n"));
	/* tern-admind's own service is not ternd's to count. */
	assert_null(strstr(t, "service=\"admin\""));
	/* Every line is a comment or "name[{labels}] value". */
	for (const char *line = t; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		assert_non_null(nl);
		assert_true(line[0] == '#' || (line[0] >= 'a' && line[0] <= 'z'));
		line = nl + 1;
	}
	buf_free(&out);

	struct buf tiny;
	buf_init(&tiny, 64);
	assert_int_equal(metrics_render(&s, &tiny), -1);
	buf_free(&tiny);
}

static void
test_refuses_foreign_files(void **state)
{
	(void)state;
	struct metrics_snapshot s;
	char *err = NULL;

	assert_int_equal(metrics_read(path, &s, &err), -1); /* not there yet */
	assert_non_null(err);
	free(err);
	err = NULL;

	assert_int_equal(metrics_open(dir), 0);
	metrics_close();
	/* Another layout version. */
	FILE *f = fopen(path, "r+b");
	uint32_t v = METRICS_VERSION + 1;
	fseek(f, 8, SEEK_SET);
	fwrite(&v, 4, 1, f);
	fclose(f);
	assert_int_equal(metrics_read(path, &s, &err), -1);
	assert_non_null(strstr(err, "version"));
	free(err);
	err = NULL;

	/* Not a metrics file at all. */
	f = fopen(path, "wb");
	fputs("this is not the metrics area, just some text of enough length to pass "
	      "the size check",
	      f);
	fclose(f);
	assert_int_equal(metrics_read(path, &s, &err), -1);
	assert_non_null(strstr(err, "magic"));
	free(err);
}

static void
test_private_fallback(void **state)
{
	(void)state;
	/* No such directory and no way to make it: counting goes on. */
	assert_int_equal(metrics_open("/proc/no/such/dir"), -1);
	metric_inc(M_DIR_CACHE_MISS);
	assert_true(metrics_slots[M_DIR_CACHE_MISS] >= 1);
	assert_int_equal(metrics_service_index("imaps"), SVC_IMAPS);
	assert_int_equal(metrics_service_index("nope"), -1);
	assert_int_equal(metrics_service_index(NULL), -1);
}

static void
test_gauge(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 4096);
	assert_int_equal(metrics_render_gauge(&out, "tern_queue_messages", "Queued.", 42), 0);
	assert_string_equal(buf_cstr(&out), "# HELP tern_queue_messages Queued.\n"
					    "# TYPE tern_queue_messages gauge\n"
					    "tern_queue_messages 42\n");
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_and_render, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_foreign_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_private_fallback, setup, teardown),
	    cmocka_unit_test(test_gauge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
