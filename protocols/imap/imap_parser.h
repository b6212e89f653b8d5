/*
 * imap_parser.h - IMAP command parser (RFC 3501, RFC 9051 section 9, with
 * LITERAL+/LITERAL- of RFC 7888, literal8 of RFC 3516 and the UTF-8
 * quoted strings of RFC 6855/9051). Pure and resumable (STYLE rule 12):
 * it does no I/O; the caller feeds one command as a sequence of pieces:
 * a line (without CRLF), then, if that line announced a literal, exactly
 * that many bytes in any number of chunks, then the next line, and so on
 * until IMAP_PARSE_DONE, IMAP_PARSE_BAD or IMAP_PARSE_TOOBIG.
 *
 * Memory: the parser itself is heap-allocated (imap_parser_destroy); the
 * command it builds (tag, name, argument tree, literal data) lives in the
 * arena given to imap_parser_new, which the caller clears after each
 * command's reply and then calls imap_parser_reset(). Nothing returned
 * outlives that clear. One connection, one thread.
 *
 * The caller's loop (conn on_line / on_data):
 *   r = imap_parser_feed_line(p, line, len)
 *   DONE    -> imap_parser_command(p): dispatch, reply, clear arena, reset
 *   LITERAL -> imap_parser_literal(p, &size, &nonsync, &binary); if !nonsync
 *              send "+ Ready"; then feed size bytes with
 *              imap_parser_feed_literal (size 0: call it once with len 0);
 *              NEED_MORE until the last byte, then LINE_NEXT: feed the next
 *              line (it continues the same command).
 *   BAD     -> "TAG BAD <imap_parser_error>" (or "* BAD" if
 *              imap_parser_tag() is NULL); then read and throw away
 *              imap_parser_skip(p) bytes (the client sends a
 *              non-synchronizing literal whatever we answer) before the
 *              next line; IMAP_PARSER_SKIP_CLOSE means close instead.
 *   TOOBIG  -> "TAG NO [TOOBIG] <error>"; no "+" was (or may be) sent for
 *              a synchronizing literal; for a non-synchronizing one the
 *              bytes follow anyway: skip them as for BAD (or close: RFC
 *              7888 section 4 allows it).
 * After a BAD or TOOBIG, the session throws away the lines that continue
 * the failed command after a skipped literal (imap_session.c skip_line);
 * other lines the client still sends for it are parsed as new commands and normally get a BAD of their own
 * (again with their trailing non-synchronizing literal skipped), so literal
 * data is never mistaken for commands.
 */
#ifndef TERN_IMAP_PARSER_H
#define TERN_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct imap_parser;

enum imap_parse_result {
	IMAP_PARSE_DONE = 0,	  /* a whole command: imap_parser_command() */
	IMAP_PARSE_LITERAL = 1,	  /* the line announced a literal: feed its bytes */
	IMAP_PARSE_NEED_MORE = 2, /* more literal bytes are due */
	IMAP_PARSE_LINE_NEXT = 3, /* literal complete: feed the next line */
	IMAP_PARSE_BAD = -1,	  /* syntax error: imap_parser_error() */
	IMAP_PARSE_TOOBIG = -2,	  /* a literal over a limit */
};

/* imap_parser_skip() when the client's framing cannot be followed any more
 * (a non-synchronizing literal whose size does not fit in 64 bits). */
#define IMAP_PARSER_SKIP_CLOSE UINT64_MAX

/* RFC 7888: with LITERAL- only, non-synchronizing literals up to this. */
#define IMAP_LITERAL_MINUS_MAX 4096

struct imap_parser_limits {
	uint64_t max_literal;	      /* one literal in most commands */
	uint64_t max_message_literal; /* APPEND / REPLACE messages (0: max_literal) */
	uint64_t max_literal_total;   /* sum over one command (0: no extra cap) */
	unsigned max_depth;	      /* nesting of parenthesised lists (>= 1) */
	unsigned max_args;	      /* arguments in total, nested ones included */
	/* Advertised LITERAL- rather than LITERAL+: a non-synchronizing
	 * literal over 4096 bytes is a BAD [TOOBIG] (its bytes must still be
	 * skipped). */
	bool literal_minus;
	/* Accept one space at the very end of a command (RFC 9051's grammar
	 * has none; off by default). */
	bool allow_trailing_space;
};

enum imap_arg_type {
	IMAP_ARG_ATOM,	  /* an atom, or an atom-like token: see below */
	IMAP_ARG_STRING,  /* a quoted string, unescaped */
	IMAP_ARG_LITERAL, /* {n} / {n+}, or literal8 ~{n} (binary set) */
	IMAP_ARG_NIL,	  /* the atom NIL in any case (str keeps its spelling) */
	IMAP_ARG_LIST,	  /* ( ... ) */
};

/*
 * An atom-like token is one or more of: ATOM-CHAR, "%", "*", "]" (so
 * sequence sets "1:*", list patterns "INBOX.%", resp-specials), with an
 * optional leading "\" (flags: "\Seen") and bracketed parts "[...]" that
 * may hold spaces, one level of parentheses and quoted strings, kept as
 * sent: "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>" is ONE atom with that
 * exact text; the FETCH code parses the section itself. A "[" without a
 * matching "]" on the line is an ordinary character ("foo[bar").
 * Accessors below check the stricter grammar a command needs (astring).
 */
struct imap_arg {
	enum imap_arg_type type;
	bool binary;		     /* literal8: may contain NUL bytes */
	const char *str;	     /* NUL-terminated (ATOM, NIL, STRING, LITERAL) */
	size_t len;		     /* bytes in str, without the NUL */
	const struct imap_arg *list; /* LIST: its elements */
	size_t count;		     /* LIST: number of elements */
};

struct imap_cmd {
	const char *tag;
	const char *name; /* upper-cased; for "UID FETCH" it is "FETCH" */
	bool uid;	  /* the command came as "UID <name>" */
	const struct imap_arg *args;
	size_t count;
};

/* A parser for one connection; a is the per-command arena (borrowed). The
 * limits are copied. */
struct imap_parser *imap_parser_new(struct arena *a, const struct imap_parser_limits *lim);
/* Frees the parser and sets *p to NULL. */
void imap_parser_destroy(struct imap_parser **p);
/* Forgets the current command (call after clearing the arena). */
void imap_parser_reset(struct imap_parser *p);

/* Feeds one line (no CRLF; line[len] need not be NUL; the bytes are
 * copied). Returns an enum imap_parse_result. Only valid at the start of
 * a command or after IMAP_PARSE_LINE_NEXT. */
int imap_parser_feed_line(struct imap_parser *p, const char *line, size_t len);
/* Feeds literal bytes; *used_r says how many of len were taken (never
 * more than the literal still needs). NEED_MORE, LINE_NEXT, or BAD (a NUL
 * in a literal that is not literal8: reported once the literal has been
 * read whole, so the caller never has to skip inside it). */
int imap_parser_feed_literal(struct imap_parser *p, const void *data, size_t len, size_t *used_r);

/* The literal just announced (after LITERAL, or TOOBIG). */
void imap_parser_literal(const struct imap_parser *p, uint64_t *size_r, bool *nonsync_r,
			 bool *binary_r);
/* After BAD or TOOBIG: bytes to read and discard before the next line. */
uint64_t imap_parser_skip(const struct imap_parser *p);
/* The size of the non-synchronizing literal "{n+}" (or "~{n+}") that ends
 * line, IMAP_PARSER_SKIP_CLOSE if it overflows, or 0: for skipping the
 * rest of a failed command. */
uint64_t imap_parser_trailing_nonsync(const char *line, size_t len);
/* After BAD or TOOBIG: a short human message (static or in the arena). */
const char *imap_parser_error(const struct imap_parser *p);
/* The tag, once the first line got that far; else NULL. */
const char *imap_parser_tag(const struct imap_parser *p);
/* The command, after DONE (NULL otherwise). Lives in the arena. */
const struct imap_cmd *imap_parser_command(const struct imap_parser *p);

/* True if arg is an atom (or NIL) equal to s, ignoring ASCII case. */
bool imap_arg_is_atom_ci(const struct imap_arg *arg, const char *s);
/* astring (RFC 9051): an atom of ASTRING-CHARs only (NIL included, as the
 * name "NIL"), a quoted string or a literal (not literal8). */
bool imap_arg_astring(const struct imap_arg *arg, const char **s_r, size_t *len_r);
/* nstring: NIL (*s_r = NULL, *len_r = 0), a quoted string or a literal. */
bool imap_arg_nstring(const struct imap_arg *arg, const char **s_r, size_t *len_r);
/* string: a quoted string or a literal (literal8 only if binary_ok). */
bool imap_arg_string(const struct imap_arg *arg, bool binary_ok, const char **s_r, size_t *len_r);

#endif
