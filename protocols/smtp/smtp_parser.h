/*
 * smtp_parser.h - pure parser of one SMTP command line (RFC 5321 4.1):
 * the verb (case-insensitive), the argument of HELO/EHLO/VRFY/HELP, and
 * the paths and ESMTP parameters of MAIL FROM and RCPT TO. No I/O and no
 * allocation: the line is parsed in place (NULs are written into it), so
 * every pointer in the result points into the caller's line and is valid
 * as long as that line is. Any thread.
 *
 * A failure returns one error class (enum smtp_parse_error) that the
 * session maps to a reply code; cmd->verb is still set when the verb was
 * recognised, so the session can check the state first (503 before 501).
 */
#ifndef TERN_SMTP_PARSER_H
#define TERN_SMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1 */
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256  /* including the angle brackets */
#define SMTP_PARAMS_MAX 16 /* ESMTP parameters on one MAIL/RCPT */

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_COUNT
};

enum smtp_parse_error {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_UNKNOWN = -1,	 /* not a command we know (500 5.5.2) */
	SMTP_PARSE_SYNTAX = -2,		 /* missing/extra argument, no "FROM:"... */
	SMTP_PARSE_PATH = -3,		 /* bad path: brackets, route, local part */
	SMTP_PARSE_DOMAIN = -4,		 /* bad domain or address literal */
	SMTP_PARSE_LOCAL_TOO_LONG = -5,	 /* local part over 64 octets */
	SMTP_PARSE_DOMAIN_TOO_LONG = -6, /* domain over 255 octets */
	SMTP_PARSE_PATH_TOO_LONG = -7,	 /* path over 256 octets */
	SMTP_PARSE_PARAM = -8,		 /* bad esmtp-param syntax */
	SMTP_PARSE_TOO_MANY_PARAMS = -9,
	SMTP_PARSE_BAD_CHAR = -10, /* NUL, control or 8-bit byte */
};

struct smtp_param {
	const char *keyword; /* as sent; compare case-insensitively */
	const char *value;   /* NULL when the parameter has no "=value" */
};

struct smtp_cmd {
	enum smtp_verb verb;
	/* HELO/EHLO: the domain or address literal; VRFY/EXPN/HELP: the rest
	 * of the line (may be NULL when absent). */
	const char *arg;

	/* MAIL/RCPT */
	bool null_path;	     /* MAIL FROM:<> */
	bool postmaster;     /* RCPT TO:<Postmaster> (no domain, RFC 5321 4.5.1) */
	const char *address; /* "local@domain" as sent, source route dropped;
				"" for <>, "Postmaster" for <Postmaster> */
	size_t local_len;    /* the local part is address[0 .. local_len) */
	const char *domain;  /* points into address, after the '@' ("" if none) */
	bool domain_literal; /* the domain is [address literal] */
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t nparams;
};

/* Parses line (len bytes, without CRLF, writable) into *cmd_r. Returns
 * SMTP_PARSE_OK or a negative enum smtp_parse_error. */
int smtp_parse_command(char *line, size_t len, struct smtp_cmd *cmd_r);

/* The command name of a verb ("MAIL"), for logs. */
const char *smtp_verb_name(enum smtp_verb verb);
/* A short English reason for an error class, for reply texts and logs. */
const char *smtp_parse_strerror(int error);

/* RFC 5321 Domain (sub-domains of letters, digits, hyphens, labels of at
 * most 63 octets, total at most 255) or, if literal_ok, an address
 * literal ([1.2.3.4] or [IPv6:...]). Pure. */
bool smtp_domain_valid(const char *s, size_t len, bool literal_ok);

#endif
