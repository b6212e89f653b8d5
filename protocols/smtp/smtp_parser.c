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
#include <string.h>
#include <strings.h>

#include "smtp_parser.h"

static const char *const verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN",   [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_MAIL] = "MAIL",	       [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_RSET] = "RSET",	       [SMTP_VERB_NOOP] = "NOOP", [SMTP_VERB_QUIT] = "QUIT",
    [SMTP_VERB_VRFY] = "VRFY",	       [SMTP_VERB_EXPN] = "EXPN", [SMTP_VERB_HELP] = "HELP",
    [SMTP_VERB_STARTTLS] = "STARTTLS",
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

bool
smtp_domain_valid(const char *s, size_t len, bool literal_ok)
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
		if (label == 0 && !is_letdig(c))
			return false;
		if (!is_letdig(c) && c != '-')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
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
local_span(const char *p, const char *end)
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
			} else if (c < 32 || c > 126) {
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
		while (p < end && is_atext((unsigned char)*p))
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
parse_path(char **pp, char *end, struct smtp_cmd *cmd, bool is_rcpt)
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
			if (!smtp_domain_valid(p, n, true))
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
	size_t llen = local_span(p, end);
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
	if (!smtp_domain_valid(domain, dlen, true))
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
parse_mail_rcpt(char *rest, char *end, struct smtp_cmd *cmd, bool is_rcpt)
{
	const char *kw = is_rcpt ? "TO:" : "FROM:";
	size_t kwlen = strlen(kw);

	if (rest == NULL || (size_t)(end - rest) < kwlen || strncasecmp(rest, kw, kwlen) != 0)
		return SMTP_PARSE_SYNTAX;
	char *p = rest + kwlen;
	while (p < end && *p == ' ')
		p++;
	int r = parse_path(&p, end, cmd, is_rcpt);
	if (r < 0)
		return r;
	return parse_params(p, end, cmd);
}

int
smtp_parse_command(char *line, size_t len, struct smtp_cmd *cmd_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));
	len = trim_trailing_spaces(line, len);
	size_t vlen = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	cmd_r->verb = lookup_verb(line, vlen);
	if (cmd_r->verb == SMTP_VERB_UNKNOWN)
		return SMTP_PARSE_UNKNOWN;

	/* Commands are ASCII without controls (no SMTPUTF8 offered). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 32 || c > 126)
			return SMTP_PARSE_BAD_CHAR;
	}
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
		if (rest == NULL)
			return SMTP_PARSE_SYNTAX;
		if (memchr(rest, ' ', (size_t)(end - rest)) != NULL)
			return SMTP_PARSE_SYNTAX;
		if (!smtp_domain_valid(rest, (size_t)(end - rest), true))
			return SMTP_PARSE_DOMAIN;
		cmd_r->arg = rest;
		return SMTP_PARSE_OK;
	case SMTP_VERB_MAIL:
		return parse_mail_rcpt(rest, end, cmd_r, false);
	case SMTP_VERB_RCPT:
		return parse_mail_rcpt(rest, end, cmd_r, true);
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
