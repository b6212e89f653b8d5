/*
 * imap_parser.c - IMAP command parser (see imap_parser.h).
 *
 * A command is "tag SP name [SP args]" on its first line; an argument
 * ending a line as a literal announcement continues the command after the
 * literal's bytes on the next line. Arguments are built on a work stack
 * (owned, grown up to max_args); an open list remembers where its elements
 * start, and on ")" they are copied into the arena as that list's array.
 *
 * Failure: any input gives DONE, LITERAL, NEED_MORE, LINE_NEXT, BAD or
 * TOOBIG, never a crash; literal counts are checked for 64-bit overflow
 * as the digits are read and against the limits before anything is
 * allocated; the literal buffer is exactly the announced size (+ a NUL).
 *
 * Decisions (strict where RFC 9051's grammar is, see the tests):
 * - tag: 1*ASTRING-CHAR except "+"; then exactly one SP.
 * - one SP between arguments; none after "(" or before ")"; none at the
 *   end of the line unless limits.allow_trailing_space.
 * - quoted strings: only \" and \\ escapes; CR, LF and NUL never; 8-bit
 *   bytes only as valid UTF-8 (RFC 9051 QUOTED-CHAR includes UTF8-2/3/4,
 *   and RFC 6855 clients send them), whether or not the client ENABLEd
 *   UTF8=ACCEPT: rejecting them would only hurt rev1 clients that send
 *   UTF-8 search strings; the command code decides what they mean.
 * - atoms are 7-bit; 8-bit bytes outside quoted strings and literals are
 *   a BAD.
 * - literals: "{" 1*DIGIT ["+"] "}" or the same after "~" (literal8), and
 *   nothing after it on the line; "{n-}" is not a thing (RFC 7888 has "+"
 *   only). A NUL in a literal is allowed in literal8 only.
 */
#include "imap_parser.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "core/compat.h"
#include "imap_utf7.h"

enum parser_state {
	ST_START,   /* expecting a command's first line */
	ST_LINE,    /* expecting a continuation line (after a literal) */
	ST_LITERAL, /* expecting literal bytes */
	ST_DONE,    /* a whole command: imap_parser_command() */
	ST_FAILED,  /* BAD or TOOBIG given */
};

enum expect {
	EXP_SEP,	  /* after an argument: SP, ")" or end of line */
	EXP_ARG,	  /* after SP: an argument */
	EXP_ARG_OR_CLOSE, /* after "(": an argument or ")" */
};

struct imap_parser {
	struct arena *arena; /* borrowed: the per-command arena */
	struct imap_parser_limits lim;
	enum parser_state state;
	enum expect expect;

	const char *tag;  /* in the arena */
	const char *name; /* in the arena, upper case */
	bool uid;
	bool message_literals; /* APPEND/REPLACE: max_message_literal applies */

	/* Work stack of arguments: top-level ones, then the elements of each
	 * open list. open[d] is the index of the d-th open list's own LIST
	 * entry; its elements follow it. */
	struct imap_arg *args; /* owned */
	size_t nargs, args_cap;
	size_t *open; /* owned, max_depth entries */
	unsigned depth;
	size_t total_args; /* every argument so far, nested ones included */
	uint64_t literal_total;

	/* The literal announced last. */
	uint64_t lit_size, lit_got;
	bool lit_nonsync, lit_binary, lit_nul;
	char *lit_data; /* in the arena, lit_size + 1 bytes */

	uint64_t skip;
	const char *error;
	struct imap_cmd cmd;
};

/* ATOM-CHAR: any CHAR except atom-specials ("(" ")" "{" SP CTL "%" "*"
 * DQUOTE "\" "]"). */
static bool
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

static bool
is_tag_char(unsigned char c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

struct imap_parser *
imap_parser_new(struct arena *a, const struct imap_parser_limits *lim)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	p->arena = a;
	p->lim = *lim;
	if (p->lim.max_message_literal == 0)
		p->lim.max_message_literal = p->lim.max_literal;
	p->open = xcalloc((size_t)p->lim.max_depth + 1, sizeof(*p->open));
	imap_parser_reset(p);
	return p;
}

void
imap_parser_destroy(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	free(p->args);
	free(p->open);
	free(p);
	*pp = NULL;
}

void
imap_parser_reset(struct imap_parser *p)
{
	p->state = ST_START;
	p->expect = EXP_SEP;
	p->tag = NULL;
	p->name = NULL;
	p->uid = false;
	p->message_literals = false;
	p->nargs = 0;
	p->depth = 0;
	p->total_args = 0;
	p->literal_total = 0;
	p->lit_size = p->lit_got = 0;
	p->lit_nonsync = p->lit_binary = p->lit_nul = false;
	p->lit_data = NULL;
	p->skip = 0;
	p->error = NULL;
	memset(&p->cmd, 0, sizeof(p->cmd));
}

static int
fail(struct imap_parser *p, int result, const char *msg)
{
	p->state = ST_FAILED;
	p->error = msg;
	return result;
}

/* Counts one more argument against max_args. */
static int
count_arg(struct imap_parser *p)
{
	if (p->total_args >= p->lim.max_args)
		return -1;
	p->total_args++;
	return 0;
}

/* Pushes a (counted) argument on the work stack and returns it. */
static struct imap_arg *
push_arg(struct imap_parser *p)
{
	if (p->nargs == p->args_cap) {
		/* Bounded: nargs <= total_args <= max_args. */
		size_t cap = p->args_cap == 0 ? 16 : p->args_cap * 2;
		p->args = xrealloc(p->args, cap * sizeof(*p->args));
		p->args_cap = cap;
	}
	struct imap_arg *arg = &p->args[p->nargs++];
	memset(arg, 0, sizeof(*arg));
	return arg;
}

/* Copies n work-stack entries from index from into the arena. */
static const struct imap_arg *
copy_args(struct imap_parser *p, size_t from, size_t n)
{
	if (n == 0)
		return NULL;
	return arena_memdup(p->arena, &p->args[from], n * sizeof(*p->args));
}

static void
close_list(struct imap_parser *p)
{
	size_t at = p->open[--p->depth];
	size_t n = p->nargs - at - 1;

	p->args[at].list = copy_args(p, at + 1, n);
	p->args[at].count = n;
	p->nargs = at + 1;
}

static int
finish(struct imap_parser *p)
{
	p->cmd.tag = p->tag;
	p->cmd.name = p->name;
	p->cmd.uid = p->uid;
	p->cmd.args = copy_args(p, 0, p->nargs);
	p->cmd.count = p->nargs;
	p->state = ST_DONE;
	return IMAP_PARSE_DONE;
}

/* A quoted string starting at line[*i] == '"'. */
static int
parse_quoted(struct imap_parser *p, const char *line, size_t len, size_t *i)
{
	size_t j = *i + 1, n = 0;

	/* First pass: check and measure. */
	for (;;) {
		if (j >= len)
			return fail(p, IMAP_PARSE_BAD, "Missing '\"'");
		unsigned char c = (unsigned char)line[j];
		if (c == '"')
			break;
		if (c == '\\') {
			if (j + 1 >= len || (line[j + 1] != '"' && line[j + 1] != '\\'))
				return fail(p, IMAP_PARSE_BAD, "Invalid escape in quoted string");
			j += 2;
			n++;
		} else if (c == '\0' || c == '\r' || c == '\n') {
			return fail(p, IMAP_PARSE_BAD, "Invalid character in quoted string");
		} else if (c >= 0x80) {
			uint32_t cp;
			size_t k = imap_utf8_decode(line + j, len - j, &cp);
			if (k == 0)
				return fail(p, IMAP_PARSE_BAD, "Invalid UTF-8 in quoted string");
			j += k;
			n += k;
		} else {
			j++;
			n++;
		}
	}
	if (count_arg(p) < 0)
		return fail(p, IMAP_PARSE_BAD, "Too many arguments");
	char *s = arena_alloc(p->arena, n + 1);
	size_t o = 0;
	for (size_t k = *i + 1; k < j; k++) {
		if (line[k] == '\\')
			k++;
		s[o++] = line[k];
	}
	struct imap_arg *arg = push_arg(p);
	arg->type = IMAP_ARG_STRING;
	arg->str = s;
	arg->len = n;
	*i = j + 1;
	return 0;
}

/* If line[i] == '[' opens a section that closes on this line, the index
 * just after its "]"; else 0. Inside: atom characters, SP, one level of
 * parentheses and quoted strings (7-bit, \" and \\ escapes). */
static size_t
section_end(const char *line, size_t len, size_t i)
{
	unsigned paren = 0;

	for (size_t j = i + 1; j < len; j++) {
		unsigned char c = (unsigned char)line[j];
		if (c == ']')
			return paren == 0 ? j + 1 : 0;
		if (c == '(') {
			if (paren > 0)
				return 0;
			paren++;
		} else if (c == ')') {
			if (paren == 0)
				return 0;
			paren--;
		} else if (c == '"') {
			for (j++; j < len && line[j] != '"'; j++) {
				c = (unsigned char)line[j];
				if (c == '\\') {
					if (j + 1 >= len ||
					    (line[j + 1] != '"' && line[j + 1] != '\\'))
						return 0;
					j++;
				} else if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80) {
					return 0;
				}
			}
			if (j >= len)
				return 0;
		} else if (c != ' ' && (c == '[' || !is_atom_char(c))) {
			return 0;
		}
	}
	return 0;
}

/* An atom-like token (see imap_parser.h) starting at line[*i]. */
static int
parse_atom(struct imap_parser *p, const char *line, size_t len, size_t *i)
{
	size_t start = *i, j = *i;

	if (line[j] == '\\')
		j++;
	size_t body = j;
	while (j < len) {
		unsigned char c = (unsigned char)line[j];
		if (c == '[') {
			size_t end = section_end(line, len, j);
			j = end != 0 ? end : j + 1;
		} else if (is_atom_char(c) || c == '%' || c == '*' || c == ']') {
			j++;
		} else {
			break;
		}
	}
	if (j == body || (j < len && line[j] != ' ' && line[j] != ')'))
		return fail(p, IMAP_PARSE_BAD, "Invalid character in atom");
	if (count_arg(p) < 0)
		return fail(p, IMAP_PARSE_BAD, "Too many arguments");
	struct imap_arg *arg = push_arg(p);
	arg->len = j - start;
	arg->str = arena_strndup(p->arena, line + start, arg->len);
	arg->type =
	    arg->len == 3 && strncasecmp(arg->str, "NIL", 3) == 0 ? IMAP_ARG_NIL : IMAP_ARG_ATOM;
	*i = j;
	return 0;
}

/* A literal announcement at line[*i] ("{" or "~{"); it must end the line.
 * Returns LITERAL, BAD or TOOBIG. */
static int
parse_literal(struct imap_parser *p, const char *line, size_t len, size_t i)
{
	bool binary = line[i] == '~';
	size_t j = i + (binary ? 2 : 1);
	uint64_t v = 0;
	bool overflow = false;

	if (j >= len || line[j] < '0' || line[j] > '9')
		return fail(p, IMAP_PARSE_BAD, "Invalid literal size");
	for (; j < len && line[j] >= '0' && line[j] <= '9'; j++) {
		unsigned d = (unsigned)(line[j] - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else if (!overflow)
			v = v * 10 + d;
	}
	bool nonsync = j < len && line[j] == '+';
	if (nonsync)
		j++;
	if (j >= len || line[j] != '}')
		return fail(p, IMAP_PARSE_BAD, "Invalid literal");
	if (j + 1 != len)
		return fail(p, IMAP_PARSE_BAD, "Literal must end the line");

	p->lit_size = overflow ? UINT64_MAX : v;
	p->lit_nonsync = nonsync;
	p->lit_binary = binary;
	p->lit_got = 0;
	p->lit_nul = false;
	uint64_t limit = p->message_literals ? p->lim.max_message_literal : p->lim.max_literal;
	if (overflow || p->lit_size > limit || p->lit_size >= SIZE_MAX)
		return fail(p, IMAP_PARSE_TOOBIG, "Literal too big");
	if (p->lim.max_literal_total != 0 &&
	    p->lit_size > p->lim.max_literal_total - p->literal_total)
		return fail(p, IMAP_PARSE_TOOBIG, "Literals too big in total");
	/* RFC 7888 section 5: tagged BAD with TOOBIG; the bytes follow. */
	if (nonsync && p->lim.literal_minus && p->lit_size > IMAP_LITERAL_MINUS_MAX)
		return fail(p, IMAP_PARSE_BAD,
			    "[TOOBIG] Non-synchronizing literal over 4096 bytes (LITERAL-)");
	if (count_arg(p) < 0)
		return fail(p, IMAP_PARSE_BAD, "Too many arguments");
	p->literal_total += p->lit_size;
	p->lit_data = arena_alloc(p->arena, (size_t)p->lit_size + 1);
	p->state = ST_LITERAL;
	return IMAP_PARSE_LITERAL;
}

static int
parse_args(struct imap_parser *p, const char *line, size_t len, size_t i)
{
	for (;;) {
		bool eol = i == len;
		unsigned char c = eol ? 0 : (unsigned char)line[i];
		int r;

		switch (p->expect) {
		case EXP_SEP:
			if (eol) {
				if (p->depth > 0)
					return fail(p, IMAP_PARSE_BAD, "Missing ')'");
				return finish(p);
			}
			if (c == ' ') {
				p->expect = EXP_ARG;
				i++;
			} else if (c == ')') {
				if (p->depth == 0)
					return fail(p, IMAP_PARSE_BAD, "Unexpected ')'");
				close_list(p);
				i++;
			} else {
				return fail(p, IMAP_PARSE_BAD, "Missing space between arguments");
			}
			continue;
		case EXP_ARG:
			if (eol) {
				if (p->lim.allow_trailing_space && p->depth == 0)
					return finish(p);
				return fail(p, IMAP_PARSE_BAD, "Unexpected space at end of line");
			}
			if (c == ' ')
				return fail(p, IMAP_PARSE_BAD, "Unexpected double space");
			if (c == ')')
				return fail(p, IMAP_PARSE_BAD, "Unexpected space before ')'");
			break;
		case EXP_ARG_OR_CLOSE:
			if (eol)
				return fail(p, IMAP_PARSE_BAD, "Missing ')'");
			if (c == ')') {
				close_list(p);
				p->expect = EXP_SEP;
				i++;
				continue;
			}
			if (c == ' ')
				return fail(p, IMAP_PARSE_BAD, "Unexpected space after '('");
			break;
		}

		/* An argument starts at line[i]. */
		if (c == '(') {
			if (p->depth >= p->lim.max_depth)
				return fail(p, IMAP_PARSE_BAD, "Lists nested too deeply");
			if (count_arg(p) < 0)
				return fail(p, IMAP_PARSE_BAD, "Too many arguments");
			struct imap_arg *arg = push_arg(p);
			arg->type = IMAP_ARG_LIST;
			p->open[p->depth++] = p->nargs - 1;
			p->expect = EXP_ARG_OR_CLOSE;
			i++;
			continue;
		}
		if (c == '{' || (c == '~' && i + 1 < len && line[i + 1] == '{')) {
			p->expect = EXP_SEP;
			return parse_literal(p, line, len, i);
		}
		if (c == '"')
			r = parse_quoted(p, line, len, &i);
		else
			r = parse_atom(p, line, len, &i);
		if (r != 0)
			return r;
		p->expect = EXP_SEP;
	}
}

/* The size of a non-synchronizing literal announced at the end of the
 * line (whatever else the line holds), IMAP_PARSER_SKIP_CLOSE if its size
 * overflows, or 0. */
uint64_t
imap_parser_trailing_nonsync(const char *line, size_t len)
{
	if (len < 4 || line[len - 1] != '}' || line[len - 2] != '+')
		return 0;
	size_t j = len - 2;
	while (j > 0 && line[j - 1] >= '0' && line[j - 1] <= '9')
		j--;
	if (j == len - 2 || j == 0 || line[j - 1] != '{')
		return 0;
	uint64_t v = 0;
	for (size_t k = j; k < len - 2; k++) {
		unsigned d = (unsigned)(line[k] - '0');
		if (v > (UINT64_MAX - 1 - d) / 10)
			return IMAP_PARSER_SKIP_CLOSE;
		v = v * 10 + d;
	}
	return v;
}

/* The tag and the command name (with UID's second word). */
static int
parse_start(struct imap_parser *p, const char *line, size_t len, size_t *i_r)
{
	size_t i = 0;

	if (len == 0)
		return fail(p, IMAP_PARSE_BAD, "Empty command line");
	while (i < len && is_tag_char((unsigned char)line[i]))
		i++;
	if (i == 0 || (i < len && line[i] != ' '))
		return fail(p, IMAP_PARSE_BAD, "Invalid tag");
	p->tag = arena_strndup(p->arena, line, i);
	if (i == len)
		return fail(p, IMAP_PARSE_BAD, "Missing command");
	i++;
	for (int word = 0; word < 2; word++) {
		size_t start = i;
		while (i < len && is_atom_char((unsigned char)line[i]))
			i++;
		if (i == start)
			return fail(p, IMAP_PARSE_BAD,
				    word == 0 ? "Missing command" : "Missing command after UID");
		char *name = arena_strndup(p->arena, line + start, i - start);
		for (char *s = name; *s != '\0'; s++)
			if (*s >= 'a' && *s <= 'z')
				*s = (char)(*s - 'a' + 'A');
		p->name = name;
		if (word == 1 || strcmp(name, "UID") != 0)
			break;
		p->uid = true;
		if (i == len || line[i] != ' ')
			return fail(p, IMAP_PARSE_BAD, "Missing command after UID");
		i++;
	}
	p->message_literals = strcmp(p->name, "APPEND") == 0 || strcmp(p->name, "REPLACE") == 0;
	*i_r = i;
	return 0;
}

int
imap_parser_feed_line(struct imap_parser *p, const char *line, size_t len)
{
	size_t i = 0;
	int r = 0;

	assert(p->state == ST_START || p->state == ST_LINE);
	if (p->state == ST_START) {
		p->expect = EXP_SEP;
		r = parse_start(p, line, len, &i);
	}
	if (r == 0)
		r = parse_args(p, line, len, i);
	if (r == IMAP_PARSE_BAD || r == IMAP_PARSE_TOOBIG)
		p->skip = imap_parser_trailing_nonsync(line, len);
	return r;
}

int
imap_parser_feed_literal(struct imap_parser *p, const void *data, size_t len, size_t *used_r)
{
	assert(p->state == ST_LITERAL);
	uint64_t left = p->lit_size - p->lit_got;
	size_t take = len < left ? len : (size_t)left;

	if (take > 0) {
		memcpy(p->lit_data + p->lit_got, data, take);
		if (!p->lit_binary && memchr(data, '\0', take) != NULL)
			p->lit_nul = true;
		p->lit_got += take;
	}
	*used_r = take;
	if (p->lit_got < p->lit_size)
		return IMAP_PARSE_NEED_MORE;
	if (p->lit_nul)
		return fail(p, IMAP_PARSE_BAD, "NUL in literal (only literal8 ~{n} may hold one)");
	struct imap_arg *arg = push_arg(p);
	arg->type = IMAP_ARG_LITERAL;
	arg->binary = p->lit_binary;
	arg->str = p->lit_data;
	arg->len = (size_t)p->lit_size;
	p->lit_data = NULL;
	p->expect = EXP_SEP;
	p->state = ST_LINE;
	return IMAP_PARSE_LINE_NEXT;
}

void
imap_parser_literal(const struct imap_parser *p, uint64_t *size_r, bool *nonsync_r, bool *binary_r)
{
	*size_r = p->lit_size;
	*nonsync_r = p->lit_nonsync;
	*binary_r = p->lit_binary;
}

uint64_t
imap_parser_skip(const struct imap_parser *p)
{
	return p->state == ST_FAILED ? p->skip : 0;
}

const char *
imap_parser_error(const struct imap_parser *p)
{
	return p->error != NULL ? p->error : "";
}

const char *
imap_parser_tag(const struct imap_parser *p)
{
	return p->tag;
}

const struct imap_cmd *
imap_parser_command(const struct imap_parser *p)
{
	return p->state == ST_DONE ? &p->cmd : NULL;
}

bool
imap_arg_is_atom_ci(const struct imap_arg *arg, const char *s)
{
	return (arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_NIL) && strlen(s) == arg->len &&
	       strncasecmp(arg->str, s, arg->len) == 0;
}

bool
imap_arg_string(const struct imap_arg *arg, bool binary_ok, const char **s_r, size_t *len_r)
{
	if (arg->type != IMAP_ARG_STRING && arg->type != IMAP_ARG_LITERAL)
		return false;
	if (arg->binary && !binary_ok)
		return false;
	*s_r = arg->str;
	*len_r = arg->len;
	return true;
}

bool
imap_arg_astring(const struct imap_arg *arg, const char **s_r, size_t *len_r)
{
	if (arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_NIL) {
		/* ASTRING-CHAR = ATOM-CHAR / "]": the atom-like token also
		 * lets "%", "*", "\" and bracketed spaces through. */
		for (size_t i = 0; i < arg->len; i++) {
			unsigned char c = (unsigned char)arg->str[i];
			if (!is_atom_char(c) && c != ']')
				return false;
		}
		*s_r = arg->str;
		*len_r = arg->len;
		return true;
	}
	return imap_arg_string(arg, false, s_r, len_r);
}

bool
imap_arg_nstring(const struct imap_arg *arg, const char **s_r, size_t *len_r)
{
	if (arg->type == IMAP_ARG_NIL) {
		*s_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_arg_string(arg, false, s_r, len_r);
}
