/*
 * pop3_parser.c - POP3 command line parser and multi-line writer (see
 * pop3_parser.h).
 *
 * Failure: every input gives one of the result classes, never a crash;
 * numbers are checked for overflow digit by digit. Keywords are matched
 * case-insensitively (RFC 1939: "keywords ... are case-insensitive");
 * arguments are separated by one or more spaces (RFC 1939 says one; real
 * clients sometimes send two, or a trailing space).
 */
#include "pop3_parser.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

struct pop3_keyword {
	const char *name;
	enum pop3_cmd cmd;
	unsigned char min_args, max_args;
	bool rest; /* one argument: the rest of the line, verbatim */
};

static const struct pop3_keyword keywords[] = {
    {"USER", POP3_CMD_USER, 1, 1, false},
    /* Passwords may contain spaces (and start or end with one). */
    {"PASS", POP3_CMD_PASS, 1, 1, true},
    {"QUIT", POP3_CMD_QUIT, 0, 0, false},
    {"STAT", POP3_CMD_STAT, 0, 0, false},
    {"LIST", POP3_CMD_LIST, 0, 1, false},
    {"RETR", POP3_CMD_RETR, 1, 1, false},
    {"DELE", POP3_CMD_DELE, 1, 1, false},
    {"NOOP", POP3_CMD_NOOP, 0, 0, false},
    {"RSET", POP3_CMD_RSET, 0, 0, false},
    {"TOP", POP3_CMD_TOP, 2, 2, false},
    {"UIDL", POP3_CMD_UIDL, 0, 1, false},
    {"CAPA", POP3_CMD_CAPA, 0, 0, false},
    /* AUTH [mechanism [initial-response]] (RFC 5034; bare AUTH lists). */
    {"AUTH", POP3_CMD_AUTH, 0, 2, false},
    {"STLS", POP3_CMD_STLS, 0, 0, false},
};

int
pop3_parse(char *line, size_t len, struct pop3_command *cmd_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));
	size_t i = 0;
	while (i < len && line[i] == ' ')
		i++;
	if (i == len)
		return POP3_PARSE_EMPTY;

	size_t kw = i;
	while (i < len && line[i] != ' ')
		i++;
	size_t kwlen = i - kw;
	/* Every POP3 keyword is three or four characters (RFC 1939, 2449). */
	if (kwlen < 3 || kwlen > 4)
		return POP3_PARSE_UNKNOWN;
	const struct pop3_keyword *k = NULL;
	for (size_t j = 0; j < sizeof(keywords) / sizeof(keywords[0]); j++) {
		if (strlen(keywords[j].name) == kwlen &&
		    strncasecmp(keywords[j].name, line + kw, kwlen) == 0) {
			k = &keywords[j];
			break;
		}
	}
	if (k == NULL)
		return POP3_PARSE_UNKNOWN;
	cmd_r->cmd = k->cmd;
	cmd_r->name = k->name;

	if (k->rest) {
		/* Exactly one separator, then everything (NUL-safe: a NUL in
		 * the rest would cut it short, which makes it a wrong arg). */
		if (i >= len || i + 1 >= len)
			return POP3_PARSE_ARGS;
		const char *rest = line + i + 1;
		if (strlen(rest) != len - i - 1)
			return POP3_PARSE_ARGS;
		cmd_r->args[0] = rest;
		cmd_r->nargs = 1;
		return POP3_PARSE_OK;
	}

	size_t n = 0;
	while (i < len) {
		while (i < len && line[i] == ' ')
			line[i++] = '\0';
		if (i == len)
			break;
		size_t a = i;
		while (i < len && line[i] != ' ') {
			if (line[i] == '\0')
				return POP3_PARSE_ARGS; /* a NUL inside an argument */
			i++;
		}
		if (n == k->max_args)
			return POP3_PARSE_ARGS;
		cmd_r->args[n++] = line + a;
	}
	/* Only now: the keyword's end may have been a space we overwrote. */
	if (n < k->min_args)
		return POP3_PARSE_ARGS;
	cmd_r->nargs = n;
	return POP3_PARSE_OK;
}

int
pop3_parse_number(const char *s, uint64_t max, uint64_t *n_r)
{
	uint64_t n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (d > max || n > (max - d) / 10)
			return -1; /* n * 10 + d would pass max */
		n = n * 10 + d;
	}
	*n_r = n;
	return 0;
}

void
pop3_write_message(const char *msg, size_t len, int64_t body_lines, pop3_emit_fn *emit, void *arg)
{
	size_t off = 0;
	bool in_body = false;
	int64_t left = body_lines;

	while (off < len) {
		if (in_body && body_lines >= 0 && left-- <= 0)
			break;
		const char *lf = memchr(msg + off, '\n', len - off);
		size_t end = lf != NULL ? (size_t)(lf - msg) : len; /* index of LF or len */
		size_t content_end = end;
		if (content_end > off && msg[content_end - 1] == '\r')
			content_end--;
		if (msg[off] == '.')
			emit(arg, ".", 1);
		if (content_end > off)
			emit(arg, msg + off, content_end - off);
		emit(arg, "\r\n", 2);
		if (!in_body && content_end == off)
			in_body = true; /* that was the blank line after the headers */
		off = lf != NULL ? end + 1 : len;
	}
	emit(arg, ".\r\n", 3);
}
