/*
 * test_conn.c - the connection object's input modes (core/conn.c) over a
 * real socketpair and a real libevent loop: lines, raw byte runs asked
 * for with conn_read_bytes() (IMAP literals, BDAT), pausing in the middle
 * of a run, and the way back to lines, with the input split in every way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/worker.h"

struct tconn {
	struct conn conn; /* first */
	struct buf log;	  /* "L:line|" and "D:bytes|" (last piece "D!") */
	bool pause_on_data;
	bool paused;
	bool freed;
};

static void
t_line(struct conn *c, char *line, size_t len)
{
	struct tconn *t = (struct tconn *)c;
	unsigned long n;

	buf_printf(&t->log, "L:%.*s|", (int)len, line);
	if (sscanf(line, "LIT %lu", &n) == 1)
		conn_read_bytes(c, n);
}

static void
t_data(struct conn *c, const char *data, size_t len, bool last)
{
	struct tconn *t = (struct tconn *)c;

	buf_printf(&t->log, "%s%.*s|", last ? "D!" : "D:", (int)len, data);
	if (t->pause_on_data && !t->paused) {
		t->paused = true;
		conn_pause(c);
	}
}

static void
t_too_long(struct conn *c)
{
	struct tconn *t = (struct tconn *)c;
	buf_printf(&t->log, "TOOLONG|");
}

static void
t_free(struct conn *c)
{
	((struct tconn *)c)->freed = true;
}

static const struct conn_ops t_ops = {
    .on_line = t_line,
    .on_line_too_long = t_too_long,
    .on_free = t_free,
    .on_data = t_data,
};

static struct worker *w;

static int
setup_pool(void **state)
{
	(void)state;
	worker_pool_create(1);
	w = worker_get(0);
	return 0;
}

static int
teardown_pool(void **state)
{
	(void)state;
	worker_pool_destroy();
	return 0;
}

static void
spin(struct event_base *base, int rounds)
{
	for (int i = 0; i < rounds; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Sends `input` to a fresh conn in pieces of `step` bytes (0: whole) and
 * returns what the handlers saw. */
static char *
run(const char *input, size_t step, bool pause_on_data)
{
	int sv[2];
	struct tconn *t = calloc(1, sizeof(*t));
	struct conn_params params = {.max_line = 64, .idle_timeout = 0};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct event_base *base = worker_base(w);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	buf_init(&t->log, 1 << 16);
	t->pause_on_data = pause_on_data;
	assert_int_equal(conn_init(&t->conn, w, sv[0], (struct sockaddr *)&sa, sizeof(sa), "test",
				   &t_ops, &params),
			 0);
	size_t len = strlen(input);
	for (size_t off = 0; off < len;) {
		size_t n = step == 0 || len - off < step ? len - off : step;
		assert_int_equal(write(sv[1], input + off, n), (ssize_t)n);
		off += n;
		spin(base, 3);
	}
	spin(base, 5);
	if (t->paused) {
		/* Input keeps buffering while paused; nothing is delivered. */
		size_t seen = t->log.len;
		spin(base, 5);
		assert_int_equal(t->log.len, seen);
		conn_resume(&t->conn);
		spin(base, 5);
	}
	char *out = strdup(buf_cstr(&t->log));
	conn_close(&t->conn, "done");
	close(sv[1]);
	spin(base, 10);
	assert_true(t->freed);
	buf_free(&t->log);
	free(t);
	return out;
}

/* Joins consecutive data pieces so results compare across splits. */
static char *
normalise(const char *log)
{
	char *out = calloc(1, strlen(log) + 1);
	size_t o = 0;
	bool in_data = false;

	for (const char *p = log; *p != '\0';) {
		const char *bar = strchr(p, '|');
		size_t n = (size_t)(bar - p);
		if (n >= 2 && p[0] == 'D' && (p[1] == ':' || p[1] == '!')) {
			if (!in_data) {
				memcpy(out + o, "D:", 2);
				o += 2;
			}
			memcpy(out + o, p + 2, n - 2);
			o += n - 2;
			in_data = p[1] == ':';
			if (!in_data)
				out[o++] = '|';
		} else {
			memcpy(out + o, p, n + 1);
			o += n + 1;
		}
		p = bar + 1;
	}
	return out;
}

static void
test_lines_and_raw(void **state)
{
	(void)state;
	/* The raw run may hold CRLFs, and bytes that look like a command. */
	const char *in = "A\r\nLIT 9\r\nhe\r\nLIT 1B\r\nC\nLIT 0\r\nD\r\n";
	const char *want = "L:A|L:LIT 9|D:he\r\nLIT 1|L:B|L:C|L:LIT 0|L:D|";

	for (size_t step = 0; step <= 7; step++) {
		char *got = run(in, step, false);
		char *norm = normalise(got);
		assert_string_equal(norm, want);
		free(norm);
		free(got);
	}
}

static void
test_raw_longer_than_line_limit(void **state)
{
	(void)state;
	/* max_line is 64: a raw run of 200 bytes is not a line. */
	char in[400];
	char payload[201];
	memset(payload, 'x', 200);
	payload[200] = '\0';
	snprintf(in, sizeof(in), "LIT 200\r\n%sEND\r\n", payload);
	char *got = run(in, 0, false);
	char *norm = normalise(got);
	char want[400];
	snprintf(want, sizeof(want), "L:LIT 200|D:%s|L:END|", payload);
	assert_string_equal(norm, want);
	free(norm);
	free(got);
}

static void
test_pause_inside_raw(void **state)
{
	(void)state;
	for (size_t step = 1; step <= 5; step += 2) {
		char *got = run("LIT 6\r\nabcdefNEXT\r\n", step, true);
		char *norm = normalise(got);
		assert_string_equal(norm, "L:LIT 6|D:abcdef|L:NEXT|");
		free(norm);
		free(got);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines_and_raw),
	    cmocka_unit_test(test_raw_longer_than_line_limit),
	    cmocka_unit_test(test_pause_inside_raw),
	};
	return cmocka_run_group_tests(tests, setup_pool, teardown_pool);
}
