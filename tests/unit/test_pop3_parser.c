/*
 * test_pop3_parser.c - the POP3 command parser (protocols/pop3/
 * pop3_parser.c). Each case's text is fed ONE BYTE AT A TIME through
 * core/linereader, then every whole line through pop3_parse; the result
 * class, keyword and arguments must match. Also: decimal arguments with
 * overflow, and the multi-line writer (byte-stuffing, bare LF, TOP).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/linereader.h"
#include "protocols/pop3/pop3_parser.h"

struct parse_case {
	const char *in; /* one command line, with its line ending */
	int result;
	enum pop3_cmd cmd;
	size_t nargs;
	const char *arg0, *arg1;
};

static const struct parse_case cases[] = {
    {"USER alice\r\n", POP3_PARSE_OK, POP3_CMD_USER, 1, "alice", NULL},
    {"user alice\r\n", POP3_PARSE_OK, POP3_CMD_USER, 1, "alice", NULL},
    {"UsEr alice@example.org\n", POP3_PARSE_OK, POP3_CMD_USER, 1, "alice@example.org", NULL},
    /* an injection attempt is just a login */
    {"USER *)(uid=*\r\n", POP3_PARSE_OK, POP3_CMD_USER, 1, "*)(uid=*", NULL},
    {"USER\r\n", POP3_PARSE_ARGS, POP3_CMD_USER, 0, NULL, NULL},
    {"USER a b\r\n", POP3_PARSE_ARGS, POP3_CMD_USER, 0, NULL, NULL},
    /* PASS takes the rest of the line, spaces and all */
    {"PASS secret\r\n", POP3_PARSE_OK, POP3_CMD_PASS, 1, "secret", NULL},
    {"PASS correct horse  battery \r\n", POP3_PARSE_OK, POP3_CMD_PASS, 1, "correct horse  battery ",
     NULL},
    {"pass  leading\r\n", POP3_PARSE_OK, POP3_CMD_PASS, 1, " leading", NULL},
    {"PASS\r\n", POP3_PARSE_ARGS, POP3_CMD_PASS, 0, NULL, NULL},
    {"PASS \r\n", POP3_PARSE_ARGS, POP3_CMD_PASS, 0, NULL, NULL},
    {"QUIT\r\n", POP3_PARSE_OK, POP3_CMD_QUIT, 0, NULL, NULL},
    {"quit \r\n", POP3_PARSE_OK, POP3_CMD_QUIT, 0, NULL, NULL},
    {"QUIT now\r\n", POP3_PARSE_ARGS, POP3_CMD_QUIT, 0, NULL, NULL},
    {"STAT\r\n", POP3_PARSE_OK, POP3_CMD_STAT, 0, NULL, NULL},
    {"LIST\r\n", POP3_PARSE_OK, POP3_CMD_LIST, 0, NULL, NULL},
    {"LIST 2\r\n", POP3_PARSE_OK, POP3_CMD_LIST, 1, "2", NULL},
    {"LIST 1 2\r\n", POP3_PARSE_ARGS, POP3_CMD_LIST, 0, NULL, NULL},
    {"RETR 1\r\n", POP3_PARSE_OK, POP3_CMD_RETR, 1, "1", NULL},
    {"RETR\r\n", POP3_PARSE_ARGS, POP3_CMD_RETR, 0, NULL, NULL},
    {"DELE 10\r\n", POP3_PARSE_OK, POP3_CMD_DELE, 1, "10", NULL},
    {"NOOP\r\n", POP3_PARSE_OK, POP3_CMD_NOOP, 0, NULL, NULL},
    {"RSET\r\n", POP3_PARSE_OK, POP3_CMD_RSET, 0, NULL, NULL},
    {"TOP 1 10\r\n", POP3_PARSE_OK, POP3_CMD_TOP, 2, "1", "10"},
    {"top  1   0\r\n", POP3_PARSE_OK, POP3_CMD_TOP, 2, "1", "0"},
    {"TOP 1\r\n", POP3_PARSE_ARGS, POP3_CMD_TOP, 0, NULL, NULL},
    {"TOP 1 2 3\r\n", POP3_PARSE_ARGS, POP3_CMD_TOP, 0, NULL, NULL},
    {"UIDL\r\n", POP3_PARSE_OK, POP3_CMD_UIDL, 0, NULL, NULL},
    {"UIDL 3\r\n", POP3_PARSE_OK, POP3_CMD_UIDL, 1, "3", NULL},
    {"CAPA\r\n", POP3_PARSE_OK, POP3_CMD_CAPA, 0, NULL, NULL},
    {"STLS\r\n", POP3_PARSE_OK, POP3_CMD_STLS, 0, NULL, NULL},
    {"AUTH\r\n", POP3_PARSE_OK, POP3_CMD_AUTH, 0, NULL, NULL},
    {"AUTH PLAIN\r\n", POP3_PARSE_OK, POP3_CMD_AUTH, 1, "PLAIN", NULL},
    {"AUTH PLAIN AGFsaWNlAHB3\r\n", POP3_PARSE_OK, POP3_CMD_AUTH, 2, "PLAIN", "AGFsaWNlAHB3"},
    {"AUTH PLAIN =\r\n", POP3_PARSE_OK, POP3_CMD_AUTH, 2, "PLAIN", "="},
    {"AUTH PLAIN a b\r\n", POP3_PARSE_ARGS, POP3_CMD_AUTH, 0, NULL, NULL},
    /* unknown, too long or too short keywords */
    {"HELO\r\n", POP3_PARSE_UNKNOWN, POP3_CMD_NONE, 0, NULL, NULL},
    {"APOP alice 0123\r\n", POP3_PARSE_UNKNOWN, POP3_CMD_NONE, 0, NULL, NULL},
    {"USERS alice\r\n", POP3_PARSE_UNKNOWN, POP3_CMD_NONE, 0, NULL, NULL},
    {"QU\r\n", POP3_PARSE_UNKNOWN, POP3_CMD_NONE, 0, NULL, NULL},
    {"QUIT\tx\r\n", POP3_PARSE_UNKNOWN, POP3_CMD_NONE, 0, NULL, NULL},
    {"\r\n", POP3_PARSE_EMPTY, POP3_CMD_NONE, 0, NULL, NULL},
    {"   \r\n", POP3_PARSE_EMPTY, POP3_CMD_NONE, 0, NULL, NULL},
};

/* Feeds text one byte at a time and parses the single line it holds. */
static int
parse_bytewise(const char *text, struct pop3_command *cmd, char *copy, size_t copy_size)
{
	struct linereader lr;
	int result = 1000; /* no line seen */
	size_t lines = 0;

	lr_init(&lr, 1024);
	for (size_t i = 0; text[i] != '\0'; i++) {
		size_t used;
		char *line;
		size_t len;
		enum lr_result r = lr_feed(&lr, text + i, 1, &used, &line, &len);
		assert_int_equal(used, 1);
		assert_int_not_equal(r, LR_TOO_LONG);
		if (r == LR_LINE) {
			lines++;
			result = pop3_parse(line, len, cmd);
			/* args point into the line: keep them readable */
			assert_true(len < copy_size);
			memcpy(copy, line, len + 1);
			for (size_t a = 0; a < cmd->nargs; a++)
				cmd->args[a] = copy + (cmd->args[a] - line);
		}
	}
	assert_int_equal(lines, 1);
	lr_free(&lr);
	return result;
}

static void
test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		struct pop3_command cmd;
		char copy[1100];
		int r = parse_bytewise(c->in, &cmd, copy, sizeof(copy));
		print_message("case %zu: %s", i, c->in);
		assert_int_equal(r, c->result);
		if (r == POP3_PARSE_OK || r == POP3_PARSE_ARGS)
			assert_int_equal(cmd.cmd, c->cmd);
		if (r != POP3_PARSE_OK)
			continue;
		assert_non_null(cmd.name);
		assert_int_equal(cmd.nargs, c->nargs);
		if (c->nargs > 0)
			assert_string_equal(cmd.args[0], c->arg0);
		if (c->nargs > 1)
			assert_string_equal(cmd.args[1], c->arg1);
	}
}

static void
test_parse_nul_in_line(void **state)
{
	(void)state;
	struct pop3_command cmd;
	char line1[] = "PASS ab\0cd";
	assert_int_equal(pop3_parse(line1, sizeof(line1) - 1, &cmd), POP3_PARSE_ARGS);
	char line2[] = "RETR 1\0002";
	assert_int_equal(pop3_parse(line2, sizeof(line2) - 1, &cmd), POP3_PARSE_ARGS);
}

static void
test_parse_several_lines_pipelined(void **state)
{
	(void)state;
	const char *text = "USER bob\r\nPASS x y\r\nSTAT\r\nQUIT\r\n";
	const enum pop3_cmd want[] = {POP3_CMD_USER, POP3_CMD_PASS, POP3_CMD_STAT, POP3_CMD_QUIT};
	struct linereader lr;
	size_t n = 0;

	lr_init(&lr, 255);
	for (size_t i = 0; text[i] != '\0'; i++) {
		size_t used;
		char *line;
		size_t len;
		if (lr_feed(&lr, text + i, 1, &used, &line, &len) == LR_LINE) {
			struct pop3_command cmd;
			assert_int_equal(pop3_parse(line, len, &cmd), POP3_PARSE_OK);
			assert_true(n < 4);
			assert_int_equal(cmd.cmd, want[n]);
			if (cmd.cmd == POP3_CMD_PASS)
				assert_string_equal(cmd.args[0], "x y");
			n++;
		}
	}
	assert_int_equal(n, 4);
	lr_free(&lr);
}

static void
test_numbers(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t max;
		int r;
		uint64_t v;
	} nums[] = {
	    {"1", UINT32_MAX, 0, 1},
	    {"0", UINT32_MAX, 0, 0},
	    {"007", UINT32_MAX, 0, 7},
	    {"4294967295", UINT32_MAX, 0, 4294967295u},
	    {"4294967296", UINT32_MAX, -1, 0},
	    {"99999999999999999999999", UINT32_MAX, -1, 0},
	    {"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
	    {"18446744073709551616", UINT64_MAX, -1, 0},
	    {"5", 5, 0, 5},
	    {"6", 5, -1, 0},
	    {"9", 5, -1, 0},
	    {"", UINT32_MAX, -1, 0},
	    {"-1", UINT32_MAX, -1, 0},
	    {"+1", UINT32_MAX, -1, 0},
	    {"1a", UINT32_MAX, -1, 0},
	    {" 1", UINT32_MAX, -1, 0},
	    {"0x10", UINT32_MAX, -1, 0},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		uint64_t v = 12345;
		assert_int_equal(pop3_parse_number(nums[i].s, nums[i].max, &v), nums[i].r);
		if (nums[i].r == 0)
			assert_true(v == nums[i].v);
		else
			assert_true(v == 12345); /* untouched on failure */
	}
}

static void
emit_buf(void *arg, const void *data, size_t len)
{
	assert_int_equal(buf_append(arg, data, len), 0);
}

static void
check_write(const char *msg, int64_t lines, const char *want)
{
	struct buf out;
	buf_init(&out, 1 << 16);
	pop3_write_message(msg, strlen(msg), lines, emit_buf, &out);
	assert_string_equal(buf_cstr(&out), want);
	buf_free(&out);
}

static void
test_write_message(void **state)
{
	(void)state;
	const char *msg = "Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n.dot\r\n..two\r\nlast\r\n";
	check_write(msg, -1,
		    "Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n..dot\r\n...two\r\nlast\r\n.\r\n");
	/* TOP n: headers, the blank line, n body lines */
	check_write(msg, 0, "Subject: hi\r\nFrom: a@b\r\n\r\n.\r\n");
	check_write(msg, 2, "Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n..dot\r\n.\r\n");
	check_write(msg, 100,
		    "Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n..dot\r\n...two\r\nlast\r\n.\r\n");
	/* bare LF becomes CRLF; a last line without a newline gets one */
	check_write("A: 1\n\nbody\nend", -1, "A: 1\r\n\r\nbody\r\nend\r\n.\r\n");
	/* a lone "." line in the body, and a header that starts with '.' */
	check_write(".X: y\r\n\r\n.\r\n", -1, "..X: y\r\n\r\n..\r\n.\r\n");
	/* no body at all: TOP gives every header */
	check_write("A: 1\r\nB: 2\r\n", 0, "A: 1\r\nB: 2\r\n.\r\n");
	/* empty message */
	check_write("", -1, ".\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_parse_nul_in_line),
	    cmocka_unit_test(test_parse_several_lines_pipelined),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_write_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
