/*
 * smtp_parser.c - one SMTP command line into a struct smtp_cmd (see
 * smtp_parser.h). Grammar from RFC 5321 4.1.1 and 4.1.2: Path, A-d-l
 * (source routes are checked and dropped, 4.1.1.3 and appendix C),
 * Dot-string and Quoted-string local parts, Domain and address literals,
 * esmtp-param; limits from 4.5.3.1.
 *
 * Failure: a negative enum smtp_parse_error; the line may have been
 * partly overwritten with NULs by then (it is not reused).
 * Leniencies, on purpose: spaces after "FROM:"/"TO:" and trailing spaces
 * are accepted (many clients send them); everything else is strict.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp_parser.h"

static const char *const verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN",   [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_MAIL] = "MAIL",	       [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_RSET] = "RSET",	       [SMTP_VERB_NOOP] = "NOOP", [SMTP_VERB_QUIT] = "QUIT",
    [SMTP_VERB_VRFY] = "VRFY",	       [SMTP_VERB_EXPN] = "EXPN", [SMTP_VERB_HELP] = "HELP",
    [SMTP_VERB_STARTTLS] = "STARTTLS", [SMTP_VERB_AUTH] = "AUTH", [SMTP_VERB_BDAT] = "BDAT",
    [SMTP_VERB_LHLO] = "LHLO",
};

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= SMTP_VERB_COUNT)
		return "UNKNOWN";
	return verb_names[verb];
}

const char *
smtp_parse_strerror(int error)
{
	switch (error) {
	case SMTP_PARSE_OK:
		return "ok";
	case SMTP_PARSE_UNKNOWN:
		return "command unrecognized";
	case SMTP_PARSE_SYNTAX:
		return "syntax error";
	case SMTP_PARSE_PATH:
		return "bad address syntax";
	case SMTP_PARSE_DOMAIN:
		return "bad domain syntax";
	case SMTP_PARSE_LOCAL_TOO_LONG:
		return "local part too long";
	case SMTP_PARSE_DOMAIN_TOO_LONG:
		return "domain too long";
	case SMTP_PARSE_PATH_TOO_LONG:
		return "path too long";
	case SMTP_PARSE_PARAM:
		return "bad parameter syntax";
	case SMTP_PARSE_TOO_MANY_PARAMS:
		return "too many parameters";
	case SMTP_PARSE_BAD_CHAR:
		return "invalid character in command";
	case SMTP_PARSE_UTF8:
		return "non-ASCII address without SMTPUTF8";
	}
	return "unknown error";
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_letdig(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5322 atext */
static bool
is_atext(unsigned char c)
{
	return is_letdig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A byte of a multi-byte UTF-8 sequence; the line was checked to be
 * well-formed UTF-8 before any of these is accepted (RFC 6531 3.3). */
static bool
is_utf8_byte(unsigned char c, bool utf8)
{
	return utf8 && c >= 0x80;
}

static bool
literal_valid(const char *s, size_t len)
{
	/* Big enough for any IPv6 text; longer input is invalid anyway. The
	 * copy is only there because inet_pton wants a C string. */
	char tmp[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	int af = AF_INET;

	if (len < 2 || s[0] != '[' || s[len - 1] != ']')
		return false;
	s++;
	len -= 2;
	if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		af = AF_INET6;
		s += 5;
		len -= 5;
	}
	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(af, tmp, addr) == 1;
}

/* Domain with U-labels allowed when utf8 (their bytes count like letters;
 * IDNA validity is the receiving side's business, RFC 6531 3.3). */
static bool
domain_valid(const char *s, size_t len, bool literal_ok, bool utf8)
{
	size_t label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	if (s[0] == '[')
		return literal_ok && literal_valid(s, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			/* a label must not be empty nor end with a hyphen */
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool letter = is_letdig(c) || is_utf8_byte(c, utf8);
		if (label == 0 && !letter)
			return false;
		if (!letter && c != '-')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

bool
smtp_domain_valid(const char *s, size_t len, bool literal_ok)
{
	return domain_valid(s, len, literal_ok, false);
}

/* Verbs looked up by name; order does not matter, the list is short. */
static enum smtp_verb
lookup_verb(const char *s, size_t len)
{
	for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == len && strncasecmp(verb_names[v], s, len) == 0)
			return (enum smtp_verb)v;
	}
	return SMTP_VERB_UNKNOWN;
}

static size_t
trim_trailing_spaces(const char *s, size_t len)
{
	while (len > 0 && s[len - 1] == ' ')
		len--;
	return len;
}

/* The domain part of a path or route element: up to one of the stop
 * characters. An address literal runs to its ']'. Returns the length. */
static size_t
domain_span(const char *s, const char *end, const char *stops)
{
	const char *p = s;

	if (p < end && *p == '[') {
		while (p < end && *p != ']')
			p++;
		if (p < end)
			p++;
		return (size_t)(p - s);
	}
	while (p < end && strchr(stops, *p) == NULL)
		p++;
	return (size_t)(p - s);
}

/* Local part at p: Dot-string or Quoted-string. Returns its length, or 0
 * on a syntax error. */
static size_t
local_span(const char *p, const char *end, bool utf8)
{
	const char *s = p;

	if (p < end && *p == '"') {
		p++;
		while (p < end && *p != '"') {
			unsigned char c = (unsigned char)*p;
			if (c == '\\') {
				p++;
				if (p == end || (unsigned char)*p < 32 || (unsigned char)*p > 126)
					return 0;
			} else if (c < 32 || (c > 126 && !is_utf8_byte(c, utf8))) {
				return 0;
			}
			p++;
		}
		if (p == end)
			return 0;
		return (size_t)(p + 1 - s);
	}
	for (;;) {
		const char *atom = p;
		while (p < end &&
		       (is_atext((unsigned char)*p) || is_utf8_byte((unsigned char)*p, utf8)))
			p++;
		if (p == atom)
			return 0; /* empty atom: leading, trailing or double dot */
		if (p < end && *p == '.') {
			p++;
			continue;
		}
		return (size_t)(p - s);
	}
}

/* Path at *pp (at '<'), ending at end. On success cmd's address fields
 * are set, the closing '>' is replaced by a NUL and *pp points after it. */
static int
parse_path(char **pp, char *end, struct smtp_cmd *cmd, bool is_rcpt, bool utf8)
{
	char *start = *pp;
	char *p = start;

	if (p == end || *p != '<')
		return SMTP_PARSE_PATH;
	p++;
	if (p < end && *p == '>') {
		if (is_rcpt)
			return SMTP_PARSE_PATH;
		cmd->null_path = true;
		cmd->address = p;
		cmd->local_len = 0;
		cmd->domain = p;
		*p = '\0';
		*pp = p + 1;
		return SMTP_PARSE_OK;
	}
	/* A-d-l ":" -- checked, then ignored (RFC 5321 4.1.1.3, C) */
	if (p < end && *p == '@') {
		for (;;) {
			if (p == end || *p != '@')
				return SMTP_PARSE_PATH;
			p++;
			size_t n = domain_span(p, end, ",:>");
			if (n > SMTP_DOMAIN_MAX)
				return SMTP_PARSE_DOMAIN_TOO_LONG;
			if (!domain_valid(p, n, true, utf8))
				return SMTP_PARSE_DOMAIN;
			p += n;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == ':') {
				p++;
				break;
			}
			return SMTP_PARSE_PATH;
		}
	}
	char *mailbox = p;
	size_t llen = local_span(p, end, utf8);
	if (llen == 0)
		return SMTP_PARSE_PATH;
	p += llen;
	if (is_rcpt && p < end && *p == '>' && mailbox == start + 1 && llen == 10 &&
	    strncasecmp(mailbox, "postmaster", 10) == 0) {
		/* <Postmaster> without a domain must be accepted (4.5.1) */
		cmd->postmaster = true;
		cmd->address = mailbox;
		cmd->local_len = llen;
		cmd->domain = p;
		*p = '\0';
		*pp = p + 1;
		return SMTP_PARSE_OK;
	}
	if (llen > SMTP_LOCAL_PART_MAX)
		return SMTP_PARSE_LOCAL_TOO_LONG;
	if (p == end || *p != '@')
		return SMTP_PARSE_PATH;
	p++;
	char *domain = p;
	size_t dlen = domain_span(p, end, ">");
	if (dlen > SMTP_DOMAIN_MAX)
		return SMTP_PARSE_DOMAIN_TOO_LONG;
	if (!domain_valid(domain, dlen, true, utf8))
		return SMTP_PARSE_DOMAIN;
	p += dlen;
	if (p == end || *p != '>')
		return SMTP_PARSE_PATH;
	if ((size_t)(p + 1 - start) > SMTP_PATH_MAX)
		return SMTP_PARSE_PATH_TOO_LONG;
	cmd->address = mailbox;
	cmd->local_len = llen;
	cmd->domain = domain;
	cmd->domain_literal = domain[0] == '[';
	*p = '\0';
	*pp = p + 1;
	return SMTP_PARSE_OK;
}

/* esmtp-param *(SP esmtp-param), after the path. */
static int
parse_params(char *p, char *end, struct smtp_cmd *cmd)
{
	if (p == end)
		return SMTP_PARSE_OK;
	if (*p != ' ')
		return SMTP_PARSE_PATH; /* junk glued to the '>' */
	for (;;) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			return SMTP_PARSE_OK;
		if (cmd->nparams == SMTP_PARAMS_MAX)
			return SMTP_PARSE_TOO_MANY_PARAMS;
		struct smtp_param *par = &cmd->params[cmd->nparams];
		char *kw = p;
		if (!is_letdig((unsigned char)*p))
			return SMTP_PARSE_PARAM;
		while (p < end && (is_letdig((unsigned char)*p) || *p == '-'))
			p++;
		par->keyword = kw;
		par->value = NULL;
		if (p < end && *p == '=') {
			*p++ = '\0';
			char *val = p;
			/* esmtp-value = 1*(%d33-60 / %d62-126) */
			while (p < end && (unsigned char)*p >= 33 && (unsigned char)*p <= 126 &&
			       *p != '=')
				p++;
			if (p == val)
				return SMTP_PARSE_PARAM;
			par->value = val;
		}
		if (p < end && *p != ' ')
			return SMTP_PARSE_PARAM;
		if (p < end)
			*p++ = '\0';
		cmd->nparams++;
	}
}

/* "FROM:" or "TO:" then optional spaces, the path and its parameters. */
static int
parse_mail_rcpt(char *rest, char *end, struct smtp_cmd *cmd, bool is_rcpt, bool utf8)
{
	const char *kw = is_rcpt ? "TO:" : "FROM:";
	size_t kwlen = strlen(kw);

	if (rest == NULL || (size_t)(end - rest) < kwlen || strncasecmp(rest, kw, kwlen) != 0)
		return SMTP_PARSE_SYNTAX;
	char *p = rest + kwlen;
	while (p < end && *p == ' ')
		p++;
	int r = parse_path(&p, end, cmd, is_rcpt, utf8);
	if (r < 0)
		return r;
	if (utf8) {
		for (const char *q = cmd->address; *q != '\0'; q++)
			if ((unsigned char)*q >= 0x80)
				cmd->utf8_address = true;
	}
	return parse_params(p, end, cmd);
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF) and no C0 controls or DEL. */
static bool
utf8_line_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c < 0x80) {
			if (c < 32 || c == 127)
				return false;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int
smtp_parse_command(char *line, size_t len, struct smtp_cmd *cmd_r)
{
	return smtp_parse_command_ex(line, len, 0, cmd_r);
}

/* True if the params of a MAIL line (already split) include SMTPUTF8. */
static bool
has_smtputf8(const struct smtp_cmd *cmd)
{
	for (size_t i = 0; i < cmd->nparams; i++)
		if (strcasecmp(cmd->params[i].keyword, "SMTPUTF8") == 0)
			return true;
	return false;
}

int
smtp_parse_command_ex(char *line, size_t len, unsigned flags, struct smtp_cmd *cmd_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));
	len = trim_trailing_spaces(line, len);
	size_t vlen = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	cmd_r->verb = lookup_verb(line, vlen);
	if (cmd_r->verb == SMTP_VERB_UNKNOWN)
		return SMTP_PARSE_UNKNOWN;

	/* Commands are ASCII without controls; MAIL and RCPT may carry UTF-8
	 * addresses (RFC 6531), allowed only in a SMTPUTF8 transaction. */
	bool eight = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 32 || c == 127)
			return SMTP_PARSE_BAD_CHAR;
		if (c > 127)
			eight = true;
	}
	if (eight && ((cmd_r->verb != SMTP_VERB_MAIL && cmd_r->verb != SMTP_VERB_RCPT) ||
		      !utf8_line_valid((const unsigned char *)line, len)))
		return SMTP_PARSE_BAD_CHAR;
	char *end = line + len;
	*end = '\0';
	char *rest = NULL;
	if (vlen < len) {
		rest = line + vlen + 1;
		/* exactly one space after the verb, but tolerate more */
		while (rest < end && *rest == ' ')
			rest++;
	}

	switch (cmd_r->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
	case SMTP_VERB_LHLO:
		if (rest == NULL)
			return SMTP_PARSE_SYNTAX;
		if (memchr(rest, ' ', (size_t)(end - rest)) != NULL)
			return SMTP_PARSE_SYNTAX;
		if (!smtp_domain_valid(rest, (size_t)(end - rest), true))
			return SMTP_PARSE_DOMAIN;
		cmd_r->arg = rest;
		return SMTP_PARSE_OK;
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT: {
		int r = parse_mail_rcpt(rest, end, cmd_r, cmd_r->verb == SMTP_VERB_RCPT, eight);
		if (r < 0)
			return r;
		bool allowed = (flags & SMTP_PARSE_F_UTF8) != 0 ||
			       (cmd_r->verb == SMTP_VERB_MAIL && has_smtputf8(cmd_r));
		if (cmd_r->utf8_address && !allowed)
			return SMTP_PARSE_UTF8;
		return SMTP_PARSE_OK;
	}
	case SMTP_VERB_AUTH: {
		/* AUTH mechanism [initial-response] (RFC 4954 4) */
		if (rest == NULL)
			return SMTP_PARSE_SYNTAX;
		char *sp = memchr(rest, ' ', (size_t)(end - rest));
		cmd_r->arg = rest;
		if (sp != NULL) {
			*sp = '\0';
			char *ir = sp + 1;
			if (ir == end || memchr(ir, ' ', (size_t)(end - ir)) != NULL)
				return SMTP_PARSE_SYNTAX;
			cmd_r->initial = ir;
		}
		for (const char *q = rest; *q != '\0'; q++)
			if (!is_letdig((unsigned char)*q) && *q != '-' && *q != '_')
				return SMTP_PARSE_SYNTAX;
		if (rest[0] == '\0' || strlen(rest) > 20)
			return SMTP_PARSE_SYNTAX;
		return SMTP_PARSE_OK;
	}
	case SMTP_VERB_BDAT: {
		/* BDAT chunk-size [SP LAST] (RFC 3030 2) */
		if (rest == NULL)
			return SMTP_PARSE_SYNTAX;
		uint64_t n = 0;
		char *q = rest;
		if (q == end || !is_digit((unsigned char)*q))
			return SMTP_PARSE_SYNTAX;
		for (; q < end && is_digit((unsigned char)*q); q++) {
			unsigned d = (unsigned)(*q - '0');
			if (n > (UINT64_MAX - d) / 10)
				return SMTP_PARSE_SYNTAX;
			n = n * 10 + d;
		}
		if (q < end) {
			if (*q != ' ')
				return SMTP_PARSE_SYNTAX;
			while (q < end && *q == ' ')
				q++;
			if ((size_t)(end - q) != 4 || strncasecmp(q, "LAST", 4) != 0)
				return SMTP_PARSE_SYNTAX;
			cmd_r->last = true;
		}
		cmd_r->chunk_size = n;
		return SMTP_PARSE_OK;
	}
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		return rest == NULL ? SMTP_PARSE_OK : SMTP_PARSE_SYNTAX;
	case SMTP_VERB_VRFY:
	case SMTP_VERB_EXPN:
		if (rest == NULL)
			return SMTP_PARSE_SYNTAX;
		cmd_r->arg = rest;
		return SMTP_PARSE_OK;
	case SMTP_VERB_NOOP:
	case SMTP_VERB_HELP:
		cmd_r->arg = rest;
		return SMTP_PARSE_OK;
	case SMTP_VERB_UNKNOWN:
	case SMTP_VERB_COUNT:
		break;
	}
	return SMTP_PARSE_UNKNOWN;
}

/* ---- ESMTP parameter values (RFC 3461) ---- */

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* RFC 3461 4: hexchar is upper-case only */
}

int
smtp_xtext_decode(const char *s, struct buf *out)
{
	if (*s == '\0')
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '+') {
			int hi = hexval(p[1]);
			int lo = hi < 0 ? -1 : hexval(p[2]);
			if (lo < 0)
				return -1;
			unsigned char c = (unsigned char)(hi * 16 + lo);
			if (c == '\0')
				return -1; /* no NUL in anything we keep as a string */
			if (buf_putc(out, (char)c) < 0)
				return -1;
			p += 2;
			continue;
		}
		if (*p < 33 || *p > 126 || *p == '=')
			return -1;
		if (buf_putc(out, (char)*p) < 0)
			return -1;
	}
	return 0;
}

int
smtp_dsn_notify(const char *value, uint8_t *bits_r)
{
	uint8_t bits = 0;
	const char *p = value;

	if (value == NULL || *value == '\0')
		return -1;
	for (;;) {
		size_t n = strcspn(p, ",");
		uint8_t bit;
		if (n == 5 && strncasecmp(p, "NEVER", 5) == 0)
			bit = SMTP_NOTIFY_NEVER;
		else if (n == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
			bit = SMTP_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			bit = SMTP_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(p, "DELAY", 5) == 0)
			bit = SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (bits & bit)
			return -1; /* listed twice */
		bits |= bit;
		p += n;
		if (*p == '\0')
			break;
		p++; /* the comma; an empty item fails above */
	}
	/* RFC 3461 4.1: NEVER stands alone */
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return -1;
	*bits_r = bits;
	return 0;
}

int
smtp_dsn_orcpt(const char *value, struct buf *decoded)
{
	const char *semi;

	if (value == NULL || strlen(value) > SMTP_ORCPT_MAX)
		return -1;
	semi = strchr(value, ';');
	if (semi == NULL || semi == value)
		return -1;
	for (const char *p = value; p < semi; p++)
		if (!is_letdig((unsigned char)*p) && *p != '-')
			return -1;
	size_t before = decoded->len;
	if (smtp_xtext_decode(semi + 1, decoded) < 0)
		return -1;
	/* An rfc822 address must at least look like one. */
	if ((size_t)(semi - value) == 6 && strncasecmp(value, "rfc822", 6) == 0 &&
	    memchr(decoded->data + before, '@', decoded->len - before) == NULL)
		return -1;
	return 0;
}

/* ---- RFC 5322 address lists (From:, Sender:) ---- */

/* Skips CFWS (nested comments included) from p; NULL on an unclosed
 * comment. */
static const char *
skip_cfws(const char *p, const char *end)
{
	while (p < end) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
		} else if (*p == '(') {
			int depth = 0;
			for (; p < end; p++) {
				if (*p == '\\' && p + 1 < end) {
					p++;
				} else if (*p == '(') {
					depth++;
				} else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
			}
			if (depth != 0)
				return NULL;
		} else {
			break;
		}
	}
	return p;
}

/* Appends the addr-spec of one angle-addr or bare addr-spec in [s, e)
 * (comments dropped, quoted strings kept as written, folding whitespace
 * outside quotes removed) and a NUL. -1 if it has no '@'. */
static int
emit_addr(const char *s, const char *e, struct buf *out)
{
	size_t start = out->len;
	bool at = false, quoted = false;

	for (const char *p = s; p < e; p++) {
		if (quoted) {
			if (*p == '\\' && p + 1 < e) {
				buf_putc(out, *p++);
			} else if (*p == '"') {
				quoted = false;
			}
			buf_putc(out, *p);
			continue;
		}
		if (*p == '"') {
			quoted = true;
			buf_putc(out, *p);
		} else if (*p == '(') {
			p = skip_cfws(p, e);
			if (p == NULL)
				return -1;
			p--;
		} else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			continue;
		} else {
			if (*p == '@')
				at = true;
			buf_putc(out, *p);
		}
	}
	if (quoted || !at || out->len == start)
		return -1;
	return buf_putc(out, '\0');
}

int
smtp_address_list(const char *v, size_t len, struct buf *out)
{
	const char *p = v, *end = v + len;
	int n = 0;
	bool in_group = false;

	for (;;) {
		p = skip_cfws(p, end);
		if (p == NULL)
			return -1;
		if (p == end)
			break;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == ';' && in_group) {
			in_group = false;
			p++;
			continue;
		}
		/* One mailbox or group: scan to its end, noting '<' and ':'. */
		const char *s = p, *lt = NULL, *gt = NULL;
		bool quoted = false;
		for (; p < end; p++) {
			if (quoted) {
				if (*p == '\\' && p + 1 < end)
					p++;
				else if (*p == '"')
					quoted = false;
				continue;
			}
			if (*p == '"') {
				quoted = true;
			} else if (*p == '(') {
				p = skip_cfws(p, end);
				if (p == NULL)
					return -1;
				p--;
			} else if (*p == '<' && lt == NULL) {
				lt = p;
			} else if (*p == '>' && lt != NULL && gt == NULL) {
				gt = p;
			} else if (*p == ':' && lt == NULL && !in_group) {
				break; /* display-name of a group */
			} else if (*p == ',' || (*p == ';' && in_group)) {
				break;
			}
		}
		if (quoted)
			return -1;
		if (p < end && *p == ':' && lt == NULL) {
			in_group = true;
			p++;
			continue;
		}
		const char *as = s, *ae = p;
		if (lt != NULL) {
			if (gt == NULL)
				return -1;
			as = lt + 1;
			ae = gt;
			/* obs-route "@a,@b:" before the addr-spec */
			if (as < ae && *as == '@') {
				const char *colon = memchr(as, ':', (size_t)(ae - as));
				if (colon == NULL)
					return -1;
				as = colon + 1;
			}
		}
		if (emit_addr(as, ae, out) < 0)
			return -1;
		n++;
	}
	return n;
}

bool
smtp_rcpt_domain_local(const struct smtp_cmd *cmd, const char *const *domains, size_t ndomains)
{
	if (cmd->domain_literal || cmd->domain == NULL)
		return false;
	for (size_t i = 0; i < ndomains; i++)
		if (strcasecmp(cmd->domain, domains[i]) == 0)
			return true;
	return false;
}
