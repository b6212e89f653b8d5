/*
 * outbound_internal.h - what the parts of outbound/ share: the pure text
 * helpers (ob_text.c, unit-tested byte by byte), the resolver (dns.c) and
 * the SMTP client (smtp_client.c), all used by the runner (runner.c).
 * Everything here runs on the runner's thread unless it says "pure".
 */
#ifndef TERN_OUTBOUND_INTERNAL_H
#define TERN_OUTBOUND_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "storage/queue.h"

struct event_base;

/* ---- SMTP replies (pure) ---- */

/* Longest reply line we take (RFC 5321 4.5.3.1.5 says 512; servers send
 * longer EHLO lines) and the most lines in one reply. */
#define OB_REPLY_LINE_MAX 2048
#define OB_REPLY_LINES_MAX 64

enum ob_parse {
	OB_PARSE_MORE = 0,   /* need more bytes */
	OB_PARSE_DONE = 1,   /* a whole reply is in the parser */
	OB_PARSE_ERROR = -1, /* not an SMTP reply */
	OB_PARSE_LIMIT = -2, /* a line or the line count over the limit */
};

/* A resumable parser for one (possibly multi-line) reply. */
struct ob_reply {
	int code;	 /* 3 digits, once DONE */
	struct buf text; /* the lines' texts after "NNN-"/"NNN ", each
			    ending in '\n' (owned) */
	struct buf line; /* the line being read (owned) */
	unsigned nlines;
};

void ob_reply_init(struct ob_reply *r);
void ob_reply_free(struct ob_reply *r);
/* Ready for the next reply (after DONE or to start over). */
void ob_reply_reset(struct ob_reply *r);
/* Feeds bytes; *used_r says how many were taken (it stops right after a
 * complete reply, leaving what follows for the next one). */
enum ob_parse ob_reply_feed(struct ob_reply *r, const char *p, size_t n, size_t *used_r);
/* The reply as one log- and DSN-safe line: "550 5.1.1 text" (continuation
 * lines joined with spaces, control bytes dropped), in a. */
const char *ob_reply_oneline(const struct ob_reply *r, struct arena *a);

/* What an EHLO reply offers. */
struct ob_caps {
	bool pipelining, eightbitmime, smtputf8, dsn, starttls, requiretls;
	bool enhanced, auth_plain, auth_login, chunking;
	bool size;
	uint64_t size_max; /* 0: no limit given */
};
/* Pure: the EHLO reply's text (ob_reply.text) into caps. */
void ob_caps_parse(const char *text, struct ob_caps *caps);

/* ---- message text (pure) ---- */

/* Appends msg to out as DATA wants it: every line CRLF-terminated (a bare
 * LF or CR becomes CRLF), a leading '.' doubled, a final CRLF added when
 * missing, then ".\r\n". -1 if out's cap is reached. */
int ob_dot_stuff(const char *msg, size_t len, struct buf *out);
/* Number of Received: header fields in the header section. */
unsigned ob_count_received(const char *msg, size_t len);
/* True if any byte has the high bit set. */
bool ob_has_8bit(const char *msg, size_t len);
/* Appends s as RFC 3461 xtext. */
int ob_xtext(const char *s, struct buf *out);

/* ---- retry schedule (pure) ---- */

/* Delay before the next attempt after `attempts` failed ones (1 = the
 * first failed): initial doubling, never above max. */
unsigned ob_backoff(unsigned attempts, unsigned initial, unsigned max);

/* ---- DNS (dns.c) ---- */

enum ob_status {
	OB_OK = 0,
	OB_TEMP = -1, /* try again later */
	OB_PERM = -2, /* never works: bounce */
};

/* One address to connect to, in the order to try. */
struct ob_target {
	const char *host; /* the MX (or route) name: the TLS name to verify */
	unsigned pref;
	struct sockaddr_storage addr; /* with the port set */
	socklen_t addrlen;
};

struct ob_dns_answer {
	enum ob_status status;
	const char *error; /* "5.1.10 ..." style text when status != OB_OK */
	const struct ob_target *targets;
	size_t ntargets;
};

/* MX records as read: pure helpers used by dns.c, tested alone. */
struct ob_mx {
	char *name; /* lower-case, no trailing dot (arena) */
	unsigned pref;
};
/* Pure: decodes one MX RDATA (preference + uncompressed wire name).
 * 0 or -1. */
int ob_mx_decode(const unsigned char *rd, size_t len, struct arena *a, struct ob_mx *mx_r);
/* Pure: RFC 7505 null MX: exactly one record, preference 0, name ".". */
bool ob_mx_is_null(const struct ob_mx *mx, size_t n);
/* Pure: sorts by preference, shuffling equal preferences with rnd(). */
void ob_mx_sort(struct ob_mx *mx, size_t n, unsigned (*rnd)(void *arg), void *arg);

struct ob_dns;
typedef void ob_dns_cb(void *arg, const struct ob_dns_answer *ans);

/* Sets up libunbound on base: cfg's [dns] resolver (forwarding only to
 * it) or the system's resolv.conf. 0 or -1 with a malloc'd *error_r. */
int ob_dns_new(struct event_base *base, const struct config *cfg, struct ob_dns **d_r,
	       char **error_r);
/* Cancels lookups in flight (their callbacks are not called). */
void ob_dns_free(struct ob_dns **d);
/* Where mail for domain goes: MX hosts by preference (RFC 5321 5.1),
 * else the domain's own A/AAAA; null MX and NXDOMAIN are permanent. The
 * targets carry port. cb runs later, on the loop; the answer is valid
 * only during the call. */
void ob_dns_mx(struct ob_dns *d, const char *domain, unsigned port, ob_dns_cb *cb, void *arg);
/* Addresses of one host (a route or the relayhost; an IP literal needs
 * no lookup). */
void ob_dns_host(struct ob_dns *d, const char *host, unsigned port, ob_dns_cb *cb, void *arg);

/* ---- the SMTP client (smtp_client.c) ---- */

/* One recipient of a transaction and what the far side said. */
struct ob_rcpt {
	const char *address;
	const char *orcpt; /* or NULL */
	uint8_t notify;
	int code;	   /* out: the final code for this recipient */
	const char *reply; /* out: one line, in the txn's arena */
};

/* One message to one destination: MAIL, RCPTs, DATA. */
struct ob_txn {
	struct arena *a; /* owns everything the txn points to */
	const char *sender;
	const char *envid; /* or NULL */
	enum queue_ret ret;
	bool smtputf8, eightbit, requiretls;
	const char *msg; /* the message as stored (not dot-stuffed) */
	size_t msg_len;
	struct ob_rcpt *rcpts;
	size_t nrcpts;
	/* done(txn, arg) runs once, with every rcpt's code and reply set
	 * (2xx accepted; 4xx temporary; 5xx permanent). */
	void (*done)(struct ob_txn *t, void *arg);
	void *arg;
	const char *remote_host; /* out: the host that answered, or NULL */
	struct ob_txn *next;	 /* the destination's list */
};

struct ob_client_params {
	const struct ob_target *targets; /* tried in order; borrowed until closed */
	size_t ntargets;
	const char *helo;    /* our name */
	int tls;	     /* enum config_tls_policy */
	const char *ca_file; /* "" = the system store */
	const char *auth;    /* "user:password" or NULL */
	unsigned connect_timeout, command_timeout, data_timeout;
	uint64_t id; /* for logs */
};

struct ob_client;

/* Events from a client to its owner. */
struct ob_client_events {
	/* Connected and greeted (EHLO, TLS and AUTH done): give it a txn
	 * with ob_client_send() or close it. */
	void (*ready)(struct ob_client *c, void *arg);
	/* The connection is gone (all targets failed before ready, or it
	 * broke, or was closed). A txn that was in flight has had its done()
	 * called first with 4xx codes. error: why, one line. */
	void (*closed)(struct ob_client *c, void *arg, enum ob_status status, const char *error);
};

/* Starts connecting to the first target. */
struct ob_client *ob_client_new(struct event_base *base, const struct ob_client_params *p,
				const struct ob_client_events *ev, void *arg);
/* Runs a transaction (RSET first if the connection was used before).
 * After t->done() the client is ready again unless it broke (ready() is
 * not called a second time: the owner decides in done()). -1 if the
 * client cannot take it now (busy, or dying: closed() follows). */
int ob_client_send(struct ob_client *c, struct ob_txn *t);
/* QUIT (politely, when idle) and free; closed() is called. */
void ob_client_close(struct ob_client *c);
/* Frees at once without callbacks (shutdown). */
void ob_client_abort(struct ob_client *c);
/* The host it talks to, for logs. */
const char *ob_client_host(const struct ob_client *c);
/* Frees the TLS client context (runner shutdown). */
void ob_client_cleanup_tls(void);

/* ---- admin requests (runner.c; the control commands in ob_control.c) ---- */

enum ob_admin_op {
	OB_ADMIN_HOLD = 1,
	OB_ADMIN_RELEASE,
	OB_ADMIN_RETRY,
	OB_ADMIN_DELETE,
	OB_ADMIN_BOUNCE
};

enum ob_admin_status {
	OB_ADMIN_OK = 0,
	OB_ADMIN_NOT_FOUND,   /* not in the queue */
	OB_ADMIN_CONFLICT,    /* not now or not in this state (error says why) */
	OB_ADMIN_UNAVAILABLE, /* the runner is stopping, the directory is down */
	OB_ADMIN_ERROR,	      /* the store failed */
};

struct ob_admin_answer {
	enum ob_admin_status status;
	char error[256];   /* when status != OK */
	bool changed;	   /* the queue changed (false: it already was so) */
	bool in_flight;	   /* a delivery attempt was running at the time */
	bool dsn;	   /* bounce: a DSN went to the sender */
	size_t recipients; /* bounce: recipients failed */
};

/* Applies op to message queue_id on the runner's thread, so that its
 * schedule and the queue agree, and waits for the change to be
 * committed. Blocking: any thread but the runner's. */
void ob_runner_admin(enum ob_admin_op op, uint64_t queue_id, struct ob_admin_answer *ans);

#endif
