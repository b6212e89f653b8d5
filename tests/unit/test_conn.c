/*
 * test_conn.c - the connection object's input modes (core/conn.c) over a
 * real socketpair and a real libevent loop: lines, raw byte runs asked
 * for with conn_read_bytes() (IMAP literals, BDAT), pausing in the middle
 * of a run, and the way back to lines, with the input split in every way;
 * and output flow control (conn_on_drain): the waiter runs once, from the
 * loop, only when the peer has read the output down to the low mark, or
 * when the peer goes away first, and its reference keeps the conn alive;
 * and COMPRESS (conn_compress_start): the same input modes through raw
 * DEFLATE split anywhere, output that inflates whole after each burst,
 * and corrupt input that closes the conn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <zlib.h>

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

/* Raw DEFLATE (wbits -15) of in with a sync flush, as a client sends it. */
static size_t
deflate_raw(const void *in, size_t len, unsigned char *out, size_t cap)
{
	z_stream z = {0};

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
	assert_int_equal(z.avail_in, 0);
	size_t n = cap - z.avail_out;
	deflateEnd(&z);
	return n;
}

/* Sends `input` to a fresh conn in pieces of `step` bytes (0: whole) and
 * returns what the handlers saw; with compress, the conn inflates and
 * input (len bytes) is already deflated. */
static char *
run_len(const char *input, size_t len, size_t step, bool pause_on_data, bool compress)
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
	if (compress)
		assert_int_equal(conn_compress_start(&t->conn), 0);
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

static char *
run(const char *input, size_t step, bool pause_on_data)
{
	return run_len(input, strlen(input), step, pause_on_data, false);
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

/* ---- conn_on_drain ---- */

struct drain_seen {
	struct tconn *t;
	int calls;
	bool closed;	/* c->closed when fn ran */
	bool freed;	/* the conn's owner freed before fn ran (must not) */
	size_t pending; /* conn_output_pending() when fn ran */
};

static void
drained(struct conn *c, void *arg)
{
	struct drain_seen *d = arg;

	d->calls++;
	d->closed = c->closed;
	d->freed = d->t->freed;
	d->pending = conn_output_pending(c);
}

#define BIG (4u << 20)
#define LOW (64u << 10)

/* A conn on one end of a socketpair with BIG bytes of a known pattern
 * queued and as much of it sent as the kernel takes. */
static struct tconn *
queued_conn(int sv[2], char **data_r)
{
	struct tconn *t = calloc(1, sizeof(*t));
	struct conn_params params = {.max_line = 64, .idle_timeout = 0};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char *data = malloc(BIG);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	buf_init(&t->log, 1 << 16);
	assert_int_equal(conn_init(&t->conn, w, sv[0], (struct sockaddr *)&sa, sizeof(sa), "test",
				   &t_ops, &params),
			 0);
	for (size_t i = 0; i < BIG; i++)
		data[i] = (char)('a' + (i * 7 + i / 4096) % 26);
	conn_write(&t->conn, data, BIG);
	spin(worker_base(w), 10);
	*data_r = data;
	return t;
}

static void
test_drain_waits_for_reader(void **state)
{
	(void)state;
	struct event_base *base = worker_base(w);
	int sv[2];
	char *data;
	struct tconn *t = queued_conn(sv, &data);
	struct drain_seen d = {.t = t};
	char *got = malloc(BIG);
	size_t have = 0;

	/* Nobody reads: most of it is still queued, and nothing fires. */
	assert_true(conn_output_pending(&t->conn) > BIG / 2);
	assert_int_equal(conn_on_drain(&t->conn, LOW, drained, &d), 0);
	assert_int_equal(conn_on_drain(&t->conn, LOW, drained, &d), -1); /* one waiter */
	spin(base, 20);
	assert_int_equal(d.calls, 0);
	/* The peer reads slowly: it fires once, below the mark, not before. */
	while (d.calls == 0 && have < BIG) {
		ssize_t n = read(sv[1], got + have, 16384);
		if (n > 0)
			have += (size_t)n;
		if (d.calls == 0)
			assert_true(conn_output_pending(&t->conn) > 0);
		spin(base, 2);
	}
	assert_int_equal(d.calls, 1);
	assert_false(d.closed);
	assert_true(d.pending <= LOW);
	assert_true(have >= BIG - LOW - 512 * 1024); /* it waited for the reader */
	/* The rest arrives intact, and the waiter does not fire again. */
	for (int idle = 0; have < BIG && idle < 1000;) {
		ssize_t n = read(sv[1], got + have, BIG - have);
		if (n > 0)
			have += (size_t)n;
		else
			idle++;
		spin(base, 2);
	}
	assert_int_equal(have, BIG);
	assert_memory_equal(got, data, BIG);
	assert_int_equal(d.calls, 1);
	/* Already drained: it runs from the loop, never inside the call. */
	assert_int_equal(conn_on_drain(&t->conn, LOW, drained, &d), 0);
	assert_int_equal(d.calls, 1);
	spin(base, 3);
	assert_int_equal(d.calls, 2);
	assert_false(d.closed);

	conn_close(&t->conn, "done");
	close(sv[1]);
	spin(base, 10);
	assert_true(t->freed);
	buf_free(&t->log);
	free(t);
	free(got);
	free(data);
}

static void
test_drain_peer_gone(void **state)
{
	(void)state;
	struct event_base *base = worker_base(w);
	int sv[2];
	char *data;
	struct tconn *t = queued_conn(sv, &data);
	struct drain_seen d = {.t = t};

	assert_int_equal(conn_on_drain(&t->conn, LOW, drained, &d), 0);
	spin(base, 5);
	assert_int_equal(d.calls, 0);
	/* The peer goes away with megabytes unread: the waiter learns it
	 * (closed), while the conn is still alive, and is not left behind
	 * holding the conn (its reference is dropped: the conn is freed). */
	close(sv[1]);
	for (int i = 0; i < 50 && !t->freed; i++)
		spin(base, 2);
	assert_int_equal(d.calls, 1);
	assert_true(d.closed);
	assert_false(d.freed);
	assert_true(t->freed);
	assert_int_equal(conn_on_drain(&t->conn, LOW, drained, &d), -1); /* closed */
	buf_free(&t->log);
	free(t);
	free(data);
}

/* ---- COMPRESS ---- */

static void
test_compress_input(void **state)
{
	(void)state;
	const char *in = "A\r\nLIT 9\r\nhe\r\nLIT 1B\r\nC\nLIT 0\r\nD\r\n";
	const char *want = "L:A|L:LIT 9|D:he\r\nLIT 1|L:B|L:C|L:LIT 0|L:D|";
	unsigned char z[512];
	size_t zlen = deflate_raw(in, strlen(in), z, sizeof(z));

	for (size_t step = 0; step <= 7; step++) {
		for (int pause = 0; pause < 2; pause++) {
			char *got = run_len((const char *)z, zlen, step, pause, true);
			char *norm = normalise(got);
			assert_string_equal(norm, want);
			free(norm);
			free(got);
		}
	}
}

/* A compressed run of 40 KB inflates in pieces of at most 16 KB (never
 * all at once) and arrives whole. */
static void
test_compress_long_raw(void **state)
{
	(void)state;
	size_t n = 40 * 1024;
	char *in = malloc(n + 64);
	int h = snprintf(in, 64, "LIT %zu\r\n", n);
	memset(in + h, 'q', n);
	memcpy(in + h + n, "END\r\n", 6);
	size_t len = (size_t)h + n + 6;
	unsigned char *z = malloc(len + 1024);
	size_t zlen = deflate_raw(in, len, z, len + 1024);
	assert_true(zlen < 1024);
	char *got = run_len((const char *)z, zlen, 0, false, true);
	char *norm = normalise(got);
	assert_true(strstr(got, "D:") != NULL); /* in pieces */
	assert_int_equal(strlen(norm), strlen("L:LIT 40960|D:|L:END|") + n);
	assert_true(strncmp(norm, "L:LIT 40960|D:qqq", 17) == 0);
	assert_string_equal(norm + strlen(norm) - 7, "q|L:END|" + 1);
	free(norm);
	free(got);
	free(z);
	free(in);
}

static struct tconn *
pair_conn(int sv[2])
{
	struct tconn *t = calloc(1, sizeof(*t));
	struct conn_params params = {.max_line = 64, .idle_timeout = 0};
	struct sockaddr_in sa = {.sin_family = AF_INET};

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	buf_init(&t->log, 1 << 16);
	assert_int_equal(conn_init(&t->conn, w, sv[0], (struct sockaddr *)&sa, sizeof(sa), "test",
				   &t_ops, &params),
			 0);
	return t;
}

static void
pair_close(struct tconn *t, int sv[2])
{
	conn_close(&t->conn, "done");
	close(sv[1]);
	spin(worker_base(w), 10);
	assert_true(t->freed);
	buf_free(&t->log);
	free(t);
}

static void
test_compress_output(void **state)
{
	(void)state;
	struct event_base *base = worker_base(w);
	int sv[2];
	struct tconn *t = pair_conn(sv);
	unsigned char wire[4096];
	char plain[4096];
	z_stream z = {0};

	conn_write(&t->conn, "OK plain\r\n", 10);
	assert_false(conn_compressed(&t->conn));
	assert_int_equal(conn_compress_start(&t->conn), 0);
	assert_true(conn_compressed(&t->conn));
	assert_int_equal(conn_compress_start(&t->conn), -1); /* once */
	assert_int_equal(conn_starttls(&t->conn), -1);	     /* not under it */
	conn_write(&t->conn, "* 1 EXISTS\r\n", 12);
	conn_printf(&t->conn, "a%d OK done\r\n", 7);
	spin(base, 5);
	/* The burst is complete on the wire: everything inflates now. */
	ssize_t n = read(sv[1], wire, sizeof(wire));
	assert_true(n > 10);
	assert_memory_equal(wire, "OK plain\r\n", 10);
	assert_int_equal(inflateInit2(&z, -15), Z_OK);
	z.next_in = wire + 10;
	z.avail_in = (uInt)(n - 10);
	z.next_out = (Bytef *)plain;
	z.avail_out = sizeof(plain);
	assert_int_equal(inflate(&z, Z_SYNC_FLUSH), Z_OK);
	assert_int_equal(z.avail_in, 0);
	size_t got = sizeof(plain) - z.avail_out;
	assert_int_equal(got, strlen("* 1 EXISTS\r\na7 OK done\r\n"));
	assert_memory_equal(plain, "* 1 EXISTS\r\na7 OK done\r\n", got);
	/* A second burst continues the same stream. */
	conn_write(&t->conn, "* BYE\r\n", 7);
	spin(base, 5);
	n = read(sv[1], wire, sizeof(wire));
	assert_true(n > 0);
	z.next_in = wire;
	z.avail_in = (uInt)n;
	z.next_out = (Bytef *)plain;
	z.avail_out = sizeof(plain);
	assert_int_equal(inflate(&z, Z_SYNC_FLUSH), Z_OK);
	assert_memory_equal(plain, "* BYE\r\n", 7);
	assert_int_equal(sizeof(plain) - z.avail_out, 7);
	inflateEnd(&z);
	pair_close(t, sv);
}

static void
test_compress_corrupt_input(void **state)
{
	(void)state;
	struct event_base *base = worker_base(w);
	int sv[2];
	struct tconn *t = pair_conn(sv);
	unsigned char z[64];
	size_t zlen = deflate_raw("GOOD\r\n", 6, z, sizeof(z));

	assert_int_equal(conn_compress_start(&t->conn), 0);
	assert_int_equal(write(sv[1], z, zlen), (ssize_t)zlen);
	spin(base, 5);
	assert_string_equal(buf_cstr(&t->log), "L:GOOD|");
	/* Block type 3 is reserved (RFC 1951 3.2.3): the stream is broken;
	 * no line is made of it and the conn closes by itself. */
	static const unsigned char bad[] = {0xff, 0xff, 0xff, 0xff, 'B', 'A', 'D', '\r', '\n'};
	assert_int_equal(write(sv[1], bad, sizeof(bad)), (ssize_t)sizeof(bad));
	for (int i = 0; i < 50 && !t->conn.closed; i++)
		spin(base, 2);
	assert_true(t->conn.closed);
	assert_string_equal(buf_cstr(&t->log), "L:GOOD|");
	close(sv[1]);
	spin(base, 5);
	assert_true(t->freed);
	buf_free(&t->log);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines_and_raw),
	    cmocka_unit_test(test_raw_longer_than_line_limit),
	    cmocka_unit_test(test_pause_inside_raw),
	    cmocka_unit_test(test_drain_waits_for_reader),
	    cmocka_unit_test(test_drain_peer_gone),
	    cmocka_unit_test(test_compress_input),
	    cmocka_unit_test(test_compress_long_raw),
	    cmocka_unit_test(test_compress_output),
	    cmocka_unit_test(test_compress_corrupt_input),
	};
	signal(SIGPIPE, SIG_IGN); /* the peer-gone test writes to a closed socket */
	return cmocka_run_group_tests(tests, setup_pool, teardown_pool);
}
