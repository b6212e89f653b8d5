/*
 * fuzz_pop3_parser.c - libFuzzer target for protocols/pop3: each input
 * line goes through the command parser (never crash, arguments inside the
 * line), its arguments through the number parser (never over the bound),
 * and the whole input through the multi-line writer, whose output is
 * checked: it ends in ".\r\n", has no bare LF, and un-stuffs back to the
 * input (for RETR) once CRLF is normalised.
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_pop3_parser.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pop3/pop3_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	char *p;
	size_t len, cap;
};

static void
emit(void *arg, const void *data, size_t len)
{
	struct out *o = arg;

	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2 + 64;
		o->p = realloc(o->p, o->cap);
		assert(o->p != NULL);
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

static void
check_command(const char *p, size_t len)
{
	char *line = malloc(len + 1);
	struct pop3_command cmd;

	memcpy(line, p, len);
	line[len] = '\0';
	int r = pop3_parse(line, len, &cmd);
	if (r == POP3_PARSE_OK) {
		assert(cmd.nargs <= POP3_MAX_ARGS);
		for (size_t i = 0; i < cmd.nargs; i++) {
			assert(cmd.args[i] >= line && cmd.args[i] <= line + len);
			uint64_t n;
			if (pop3_parse_number(cmd.args[i], 1000000, &n) == 0)
				assert(n <= 1000000);
		}
	}
	free(line);
}

/* Undoes the writer for RETR: drops the terminator and one leading dot
 * of each stuffed line; the result must equal the input with every line
 * ending in CRLF. */
static void
check_writer(const char *msg, size_t len)
{
	struct out o = {0};

	pop3_write_message(msg, len, -1, emit, &o);
	assert(o.len >= 3 && memcmp(o.p + o.len - 3, ".\r\n", 3) == 0);
	for (size_t i = 0; i < o.len; i++)
		if (o.p[i] == '\n')
			assert(i > 0 && o.p[i - 1] == '\r');

	struct out want = {0}, got = {0};
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - msg) : len;
		size_t l = end;
		if (l > i && msg[l - 1] == '\r')
			l--;
		emit(&want, msg + i, l - i);
		emit(&want, "\r\n", 2);
		i = nl != NULL ? end + 1 : len;
	}
	size_t body = o.len - 3;
	i = 0;
	while (i < body) {
		const char *nl = memchr(o.p + i, '\n', body - i);
		assert(nl != NULL);
		size_t end = (size_t)(nl - o.p) + 1;
		if (o.p[i] == '.') {
			assert(end - i > 2); /* a lone ".\r\n" would end the response */
			i++;
		}
		emit(&got, o.p + i, end - i);
		i = end;
	}
	assert(got.len == want.len && (got.len == 0 || memcmp(got.p, want.p, got.len) == 0));
	free(o.p);
	free(want.p);
	free(got.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t start = 0;

	for (size_t i = 0; i <= size; i++) {
		if (i == size || p[i] == '\n') {
			size_t len = i - start;
			if (len > 0 && p[start + len - 1] == '\r')
				len--;
			if (memchr(p + start, '\0', len) == NULL)
				check_command(p + start, len);
			start = i + 1;
		}
	}
	check_writer(p, size);
	/* TOP with a line count never writes more than RETR does. */
	struct out top = {0};
	pop3_write_message(p, size, (int64_t)(size % 5), emit, &top);
	assert(top.len >= 3 && memcmp(top.p + top.len - 3, ".\r\n", 3) == 0);
	free(top.p);
	return 0;
}
