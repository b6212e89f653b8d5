/*
 * pop3_parser.h - POP3 command lines (RFC 1939, 2449, 2595, 5034), pure:
 * one line (as core/linereader returns it, without CRLF) in, a command
 * keyword and its arguments out; no I/O and no allocation, so it can be
 * fed byte by byte in tests and fuzzed. Also the multi-line response
 * writer (byte-stuffing, TOP's line limit), equally pure.
 * Any thread; nothing here keeps state between calls.
 */
#ifndef TERN_POP3_PARSER_H
#define TERN_POP3_PARSER_H

#include <stddef.h>
#include <stdint.h>

enum pop3_cmd {
	POP3_CMD_NONE = 0,
	POP3_CMD_USER,
	POP3_CMD_PASS,
	POP3_CMD_QUIT,
	POP3_CMD_STAT,
	POP3_CMD_LIST,
	POP3_CMD_RETR,
	POP3_CMD_DELE,
	POP3_CMD_NOOP,
	POP3_CMD_RSET,
	POP3_CMD_TOP,
	POP3_CMD_UIDL,
	POP3_CMD_CAPA,
	POP3_CMD_AUTH,
	POP3_CMD_STLS,
};

enum pop3_parse_result {
	POP3_PARSE_OK = 0,
	POP3_PARSE_EMPTY = -1,	 /* an empty (or all-blank) line */
	POP3_PARSE_UNKNOWN = -2, /* no such keyword (or not 3-4 letters) */
	POP3_PARSE_ARGS = -3,	 /* known keyword, wrong number of arguments */
};

#define POP3_MAX_ARGS 2

struct pop3_command {
	enum pop3_cmd cmd;
	const char *name; /* the keyword in upper case (static) */
	/* Pointers into the line (NUL-terminated in place). PASS has one
	 * argument: the rest of the line after "PASS ", spaces included. */
	const char *args[POP3_MAX_ARGS];
	size_t nargs;
};

/* Parses line (len bytes, NUL-terminated, modified in place). Returns an
 * enum pop3_parse_result; on POP3_PARSE_ARGS cmd_r->cmd/name are set. */
int pop3_parse(char *line, size_t len, struct pop3_command *cmd_r);

/* A decimal argument: digits only (no sign, no blanks), at most max.
 * 0, or -1 if empty, not a number or over max (checked as it is read). */
int pop3_parse_number(const char *s, uint64_t max, uint64_t *n_r);

typedef void pop3_emit_fn(void *arg, const void *data, size_t len);

/* Writes a message as a multi-line response body: every line ends in
 * CRLF (a bare LF becomes CRLF), a line starting with '.' gets another
 * '.', and the terminating ".\r\n" is written last. body_lines < 0 writes
 * everything (RETR); otherwise the headers, the blank line and at most
 * body_lines lines of the body (TOP). */
void pop3_write_message(const char *msg, size_t len, int64_t body_lines, pop3_emit_fn *emit,
			void *arg);

#endif
