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
#include <stdint.h>

#include "core/buf.h"

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
	SMTP_VERB_AUTH, /* RFC 4954 */
	SMTP_VERB_BDAT, /* RFC 3030 */
	SMTP_VERB_LHLO, /* RFC 2033 */
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
	SMTP_PARSE_BAD_CHAR = -10, /* NUL, control, bad UTF-8, 8-bit outside a path */
	SMTP_PARSE_UTF8 = -11,	   /* UTF-8 address without SMTPUTF8 (553 5.6.7) */
};

/* smtp_parse_command_ex flags */
#define SMTP_PARSE_F_UTF8 1u /* the transaction is SMTPUTF8: RCPT may be UTF-8 */

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
	bool utf8_address;   /* the address has non-ASCII (UTF-8) octets */
	/* AUTH: arg is the mechanism, initial the initial response or NULL */
	const char *initial;
	/* BDAT */
	uint64_t chunk_size;
	bool last;
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t nparams;
};

/* Parses line (len bytes, without CRLF, writable) into *cmd_r. Returns
 * SMTP_PARSE_OK or a negative enum smtp_parse_error. */
int smtp_parse_command(char *line, size_t len, struct smtp_cmd *cmd_r);
/* The same with flags (SMTP_PARSE_F_*). A MAIL line with SMTPUTF8 among
 * its parameters may always carry a UTF-8 reverse path. */
int smtp_parse_command_ex(char *line, size_t len, unsigned flags, struct smtp_cmd *cmd_r);

/* The command name of a verb ("MAIL"), for logs. */
const char *smtp_verb_name(enum smtp_verb verb);
/* A short English reason for an error class, for reply texts and logs. */
const char *smtp_parse_strerror(int error);

/* RFC 5321 Domain (sub-domains of letters, digits, hyphens, labels of at
 * most 63 octets, total at most 255) or, if literal_ok, an address
 * literal ([1.2.3.4] or [IPv6:...]). Pure. */
bool smtp_domain_valid(const char *s, size_t len, bool literal_ok);

/* Relay control: true only if the parsed RCPT's domain is one of domains
 * (case-insensitive, exact: no trailing dot, no subdomain); an address
 * literal is never local. The whole address is then looked up as is, so
 * "a%b@local", "b!a@local" or "\"a@b\"@local" can only match a local
 * entry with that very address. Pure. */
bool smtp_rcpt_domain_local(const struct smtp_cmd *cmd, const char *const *domains,
			    size_t ndomains);

/* ---- ESMTP parameter values (pure) ---- */

/* DSN NOTIFY bits; the same values as storage/queue.h's QUEUE_NOTIFY_*. */
#define SMTP_NOTIFY_NEVER 0x01
#define SMTP_NOTIFY_SUCCESS 0x02
#define SMTP_NOTIFY_FAILURE 0x04
#define SMTP_NOTIFY_DELAY 0x08
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2 */

/* Decodes xtext (RFC 3461 4: "+" and two upper-case hex digits for
 * anything outside "!" .. "~" and for "+" and "="), appending to out.
 * 0, or -1 on bad syntax, an encoded NUL, or out's cap. */
int smtp_xtext_decode(const char *s, struct buf *out);
/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (each once)
 * into SMTP_NOTIFY_* bits. 0 or -1. */
int smtp_dsn_notify(const char *value, uint8_t *bits_r);
/* ORCPT=addr-type;xtext (at most 500 octets); appends the decoded
 * address to decoded. An rfc822 address must contain '@'. 0 or -1. */
int smtp_dsn_orcpt(const char *value, struct buf *decoded);

/* The addr-specs of an RFC 5322 address-list (the unfolded or folded
 * value of From: or Sender:): display names, comments, groups and
 * obsolete routes dropped; each appended to out followed by a NUL.
 * Returns how many, or -1 on a syntax error. */
int smtp_address_list(const char *value, size_t len, struct buf *out);

#endif
