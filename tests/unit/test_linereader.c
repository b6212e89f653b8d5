/*
 * test_linereader.c - the line assembler (core/linereader.c), fed one byte
 * at a time, in small chunks and all at once; every way must give the same
 * events: CRLF and bare LF, empty lines, a line of exactly max, too-long
 * lines reported once and then resynchronised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/linereader.h"

struct lr_case {
	size_t max;
	const char *in;
	/* events: "L<text>|" for a CRLF line, "l<text>|" for a bare-LF one,
	 * "T|" for a too-long line */
	const char *events;
	size_t pending; /* bytes of a partial line left at the end */
};

static const struct lr_case cases[] = {
    {10, "abc\r\n", "Labc|", 0},
    {10, "abc\n", "labc|", 0},
    {10, "\r\n\n", "L|l|", 0},
    {10, "a\r\nb\nc", "La|lb|", 1},
    /* exactly max, with and without CR */
    {5, "12345\r\n12345\n", "L12345|l12345|", 0},
    /* max + 1 is too long, and reading resumes on the next line */
    {5, "123456\r\nok\r\n", "T|Lok|", 0},
    {5, "123456\nok\n", "T|lok|", 0},
    /* far too long: reported once */
    {4, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nb\r\n", "T|Lb|", 0},
    {4, "aaaaaaaaaa\nbbbbbbbbbb\ncc\n", "T|T|lcc|", 0},
    /* a CR that is not before LF is data */
    {10, "a\rb\r\n", "La\rb|", 0},
    {10, "\r\r\n", "L\r|", 0},
    /* max 0: only empty lines pass */
    {0, "\r\n\nx\n", "L|l|T|", 0},
    /* a partial too-long line at the end is pending */
    {3, "ok\nabcdefg", "lok|", 1},
    {10, "", "", 0},
};

static void
run_case(const struct lr_case *c, size_t chunk)
{
	struct linereader lr;
	struct buf ev;
	size_t len = strlen(c->in);

	lr_init(&lr, c->max);
	buf_init(&ev, 4096);
	size_t off = 0;
	while (off < len) {
		size_t n = chunk < len - off ? chunk : len - off;
		size_t pos = 0;
		while (pos < n) {
			size_t used = 0, llen = 0;
			char *line = NULL;
			enum lr_result r =
			    lr_feed(&lr, c->in + off + pos, n - pos, &used, &line, &llen);
			assert_true(used > 0);
			assert_true(used <= n - pos);
			pos += used;
			if (r == LR_LINE) {
				assert_true(llen <= c->max);
				assert_int_equal(strlen(line), llen); /* NUL-terminated */
				/* writable */
				if (llen > 0)
					line[0] = line[0];
				assert_int_equal(lr_pending(&lr), 0);
				buf_printf(&ev, "%c%s|", lr.had_cr ? 'L' : 'l', line);
			} else if (r == LR_TOO_LONG) {
				buf_append_str(&ev, "T|");
			} else {
				/* need more: it ate everything it was given */
				assert_int_equal(pos, n);
			}
		}
		off += n;
	}
	if (strcmp(buf_cstr(&ev), c->events) != 0)
		fail_msg("max=%zu in=\"%s\" chunk=%zu: got \"%s\", want \"%s\"", c->max, c->in,
			 chunk, buf_cstr(&ev), c->events);
	assert_int_equal(lr_pending(&lr) > 0, c->pending > 0);
	lr_free(&lr);
	buf_free(&ev);
}

static void
test_cases_bytewise(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], 1);
}

static void
test_cases_chunks(void **state)
{
	(void)state;
	for (size_t chunk = 2; chunk <= 7; chunk++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			run_case(&cases[i], chunk);
	}
}

static void
test_cases_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], 1 << 20);
}

/* Stops after the first LF, so a protocol can switch (STARTTLS, DATA). */
static void
test_stops_after_line(void **state)
{
	(void)state;
	struct linereader lr;
	lr_init(&lr, 100);
	const char *in = "STARTTLS\r\nEHLO x\r\n";
	size_t used;
	char *line;
	size_t len;
	assert_int_equal(lr_feed(&lr, in, strlen(in), &used, &line, &len), LR_LINE);
	assert_int_equal(used, 10);
	assert_string_equal(line, "STARTTLS");
	assert_int_equal(lr_pending(&lr), 0);
	/* a partial line is pending, then dropped by reset */
	assert_int_equal(lr_feed(&lr, in + 10, 3, &used, &line, &len), LR_NEED_MORE);
	assert_int_equal(used, 3);
	assert_int_equal(lr_pending(&lr), 3);
	lr_reset(&lr);
	assert_int_equal(lr_pending(&lr), 0);
	assert_int_equal(lr_feed(&lr, "X\n", 2, &used, &line, &len), LR_LINE);
	assert_string_equal(line, "X");
	assert_false(lr.had_cr);
	lr_free(&lr);
}

static void
test_set_max(void **state)
{
	(void)state;
	struct linereader lr;
	lr_init(&lr, 3);
	size_t used;
	char *line;
	size_t len;
	assert_int_equal(lr_feed(&lr, "abcdef\n", 7, &used, &line, &len), LR_TOO_LONG);
	lr_set_max(&lr, 10);
	assert_int_equal(lr_feed(&lr, "abcdef\n", 7, &used, &line, &len), LR_LINE);
	assert_string_equal(line, "abcdef");
	assert_int_equal(len, 6);
	lr_free(&lr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases_bytewise), cmocka_unit_test(test_cases_chunks),
	    cmocka_unit_test(test_cases_whole),	   cmocka_unit_test(test_stops_after_line),
	    cmocka_unit_test(test_set_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
