/*
 * ternctl.h - the pieces of ternctl, tern-admind's command line: the
 * command table (ternctl_cmds.c), a small blocking HTTP/1.1 client over
 * OpenSSL (ternctl_http.c), the output formatting (ternctl_out.c) and the
 * driver with option parsing, credentials and job polling (ternctl.c).
 *
 * ternctl is single-threaded and short-lived: strings it returns are
 * malloc'd and owned by the caller unless a comment says otherwise.
 * Exit codes are the contract scripts rely on (docs/admin-guide.md,
 * "ternctl"): see enum ternctl_exit.
 */
#ifndef TERN_TERNCTL_H
#define TERN_TERNCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/compat.h"

enum ternctl_exit {
	TERNCTL_OK = 0,
	TERNCTL_REFUSED = 1,	 /* the server refused the request (4xx) */
	TERNCTL_USAGE = 2,	 /* bad command line or config file */
	TERNCTL_AUTH = 3,	 /* 401 or 403: bad credentials or not an admin */
	TERNCTL_UNREACHABLE = 4, /* no connection, TLS failure, 5xx, bad reply */
	TERNCTL_NOT_FOUND = 5,	 /* 404: no such object (or endpoint) */
	TERNCTL_JOB_FAILED = 6,	 /* a long job ran and ended "failed" */
};

/* ---- the command table ---- */

enum ternctl_kind {
	TK_STR,	    /* a JSON string */
	TK_NULLSTR, /* a string; "none" sends null */
	TK_SECRET,  /* a string; "-" asks on the terminal without echo */
	TK_INT,	    /* a non-negative integer */
	TK_SIZE,    /* bytes: 10M, 512k, 1G or a number; "none" sends null */
	TK_LIST,    /* comma-separated -> an array of strings */
	TK_TRUE,    /* a flag: sends true */
	TK_FALSE,   /* a flag: sends false */
	TK_QUERY,   /* a query-string parameter */
};

#define TP_REQUIRED 0x01

/* A positional argument or an --option. An argument whose {name} appears
 * in the path template goes into the path; otherwise into the JSON body
 * as field (or the query string for TK_QUERY). */
struct ternctl_param {
	const char *name;  /* "user", "password" (the option is --password) */
	const char *field; /* JSON field or query name (NULL: same as name) */
	enum ternctl_kind kind;
	unsigned flags;
	const char *help;
};

/* Command flags. */
#define TC_PUBLIC 0x01	      /* no credentials (healthz) */
#define TC_AUTH_OPTIONAL 0x02 /* credentials only if given (metrics) */
#define TC_LOGIN 0x04	      /* body is {login, password} of the admin */
#define TC_TOKEN 0x08	      /* needs a bearer token (logout) */
#define TC_JOB 0x10	      /* answers 202 with a job to follow */
#define TC_TEXT 0x20	      /* the reply is text (metrics), printed as is */
#define TC_HEALTH 0x40	      /* a 503 carries a health report: exit 1 */
#define TC_WAIT 0x80	      /* follows an existing job (job wait) */
#define TC_BODY 0x100	      /* always sends a JSON body (even {}) */

#define TERNCTL_MAX_ARGS 3
#define TERNCTL_MAX_OPTS 8

struct ternctl_cmd {
	const char *noun;
	const char *verb; /* NULL: a noun that is a command by itself (whoami) */
	const char *method;
	const char *path; /* "/api/v1/users/{user}/disable" */
	unsigned flags;
	const char *summary;
	struct ternctl_param args[TERNCTL_MAX_ARGS];
	struct ternctl_param opts[TERNCTL_MAX_OPTS];
	const char *list_key; /* the array shown as a table ("users"), or NULL */
	const char *columns;  /* "id,mail,login" for list_key rows (NULL: keys of row 1) */
	const char *example;  /* one line, without "ternctl -c FILE --admin NAME" */
};

struct ternctl_noun {
	const char *name;
	const char *summary;
};

extern const struct ternctl_cmd ternctl_cmds[];
extern const size_t ternctl_ncmds;
extern const struct ternctl_noun ternctl_nouns[];
extern const size_t ternctl_nnouns;

/* The command for noun + verb (verb NULL for a verb-less noun), or NULL. */
const struct ternctl_cmd *ternctl_cmd_find(const char *noun, const char *verb);
const struct ternctl_noun *ternctl_noun_find(const char *noun);

/* Help texts on f: the man-page style overview, one noun's commands, one
 * command's usage with arguments, options and example. */
void ternctl_help_main(FILE *f);
void ternctl_help_noun(FILE *f, const struct ternctl_noun *noun);
void ternctl_help_cmd(FILE *f, const struct ternctl_cmd *cmd);
/* "usage: ternctl [GLOBAL] user add ADDRESS --password SECRET [...]" */
void ternctl_usage_line(FILE *f, const struct ternctl_cmd *cmd);

/* ---- the HTTP client ---- */

struct ternctl_target {
	char *host; /* owned: where to connect */
	unsigned port;
	bool tls;
	char *cafile;	  /* owned: the trust anchor(s) (PEM) */
	bool pin;	  /* cafile is the server's own certificate: no name check */
	bool insecure;	  /* no verification at all */
	char *tls_name;	  /* owned: name to verify (NULL: host) */
	unsigned timeout; /* seconds, for connect and for each read/write */
};

struct ternctl_reply {
	int status;
	char *content_type; /* owned, "" when absent */
	char *location;	    /* owned, NULL when absent */
	struct buf body;    /* the decoded body (chunked or not) */
};

/* One request on a fresh connection (Connection: close). auth is a whole
 * Authorization header value or NULL; body NULL for none. 0 with *reply
 * filled (any status), or -1 with a malloc'd *error_r (connect, TLS,
 * timeout, malformed reply): exit TERNCTL_UNREACHABLE. */
int ternctl_http_request(const struct ternctl_target *t, const char *method, const char *path,
			 const char *auth, const char *body, struct ternctl_reply *reply,
			 char **error_r);
void ternctl_reply_free(struct ternctl_reply *reply);
/* Appends s percent-encoded as one path segment or query value. */
int ternctl_url_escape(struct buf *out, const char *s);

/* ---- the environment (ternctl_env.c) ---- */

struct ternctl_conn_opts {
	const char *config;   /* the config file */
	const char *server;   /* host:port instead of [admin] listen, or NULL */
	const char *cacert;   /* trust anchor instead of [tls] cert, or NULL */
	const char *tls_name; /* name to check with cacert, or NULL */
	bool insecure;
	unsigned timeout;
};

/* Where tern-admind is and how to trust it, from the config file's
 * [admin] listen (the first address; a wildcard means loopback) and
 * [tls] cert. 0, or -1 with the reason printed. */
int ternctl_target_from_config(const struct ternctl_conn_opts *o, struct ternctl_target *t);
void ternctl_target_free(struct ternctl_target *t);
/* Asks on /dev/tty with echo off (restored on SIGINT/SIGTERM too). A
 * malloc'd answer (wipe it), or NULL when there is no terminal. */
char *ternctl_ask_secret(const char *prompt);

/* ---- output ---- */

/* "ternctl: " + the message + newline on stderr. */
void ternctl_err(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* One object as "key: value" lines; nested objects flattened with dots
 * ("checks.directory.status"), arrays of scalars joined with ", ", arrays
 * of objects as a table under the key. */
void ternctl_print_object(FILE *f, const json_t *obj);
/* rows (an array of objects) as an aligned table with a header line;
 * columns comma-separated, NULL for the keys of the first row. */
void ternctl_print_table(FILE *f, const json_t *rows, const char *columns);
/* A scalar as display text into out ("-" for null, "yes"/"no"). */
void ternctl_scalar_text(struct buf *out, const json_t *v);
/* "export: 1200/5000 messages (24%)" for a job object, into out. */
void ternctl_job_progress_text(struct buf *out, const json_t *job);

#endif
