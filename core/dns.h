/*
 * dns.h - the front ends' DNS resolver (SPF, DNSBL, later DKIM and DMARC),
 * on libunbound, never blocking a worker.
 *
 * One libunbound context for the whole daemon, so every worker shares
 * one cache (SPF asks the same names again and again), driven by a
 * thread of its own: a solo worker (core/worker.h) whose loop watches
 * ub_fd() and calls ub_process(). Workers start queries directly with
 * ub_resolve_async() (libunbound's context is locked, so that is safe
 * from any thread); the answer is decoded on the DNS thread and handed
 * back with worker_post() to the worker that asked. One context per
 * worker would avoid that hop but split the cache and start one
 * libunbound thread per worker.
 *
 * [dns] resolver is honoured as in outbound/dns.c (forwarding only, the
 * tests' loopback server); without it, resolv.conf. Read at start: a
 * reload does not change it (XXX: a resolver change needs a restart).
 *
 * How it fails: SERVFAIL, REFUSED, a timeout or a query that cannot
 * start give DNS_TEMPFAIL; NXDOMAIN and "no records of that type" are
 * told apart (SPF counts them as void lookups). A lookup before
 * dns_start() or after dns_stop() answers DNS_TEMPFAIL.
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stddef.h>
#include <stdint.h>

struct arena;
struct config;
struct worker;
struct ub_ctx;

#define DNS_T_A 1
#define DNS_T_PTR 12
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28

enum dns_status {
	DNS_OK = 0,	   /* at least one record */
	DNS_NXDOMAIN = -1, /* the name does not exist */
	DNS_NODATA = -2,   /* the name exists, no record of the type */
	DNS_TEMPFAIL = -3, /* SERVFAIL, timeout, resolver unreachable */
};
const char *dns_strerror(int status);

/* One record of an answer. */
struct dns_rr {
	/* TXT: the character-strings of one record concatenated (RFC 7208
	 * 3.3), may hold NULs (len says how long); MX, PTR: the name,
	 * lower-case, no trailing dot ("" for the root). */
	const char *text;
	size_t len;
	unsigned pref;		/* MX preference */
	int family;		/* A: AF_INET, AAAA: AF_INET6, else 0 */
	unsigned char addr[16]; /* A: 4 bytes, AAAA: 16 */
};

struct dns_result {
	enum dns_status status;
	int rrtype;
	const char *name;	 /* as asked */
	const struct dns_rr *rr; /* on DNS_OK: records that decoded */
	size_t n;
	const char *error; /* on DNS_TEMPFAIL, for logs */
};

/* The result is valid only during the callback: copy what you keep. */
typedef void dns_cb(void *arg, const struct dns_result *res);

/* Starts the DNS thread with cfg's [dns]. 0, or -1 with a malloc'd
 * *error_r. Main thread, before the workers start. */
int dns_start(const struct config *cfg, char **error_r);
/* After the workers have stopped: answers nothing more. */
void dns_stop(void);

/* Asks for name's records of rrtype (DNS_T_*); cb(arg, res) runs later
 * on w's loop, never from inside dns_lookup(). Any worker thread. */
void dns_lookup(struct worker *w, const char *name, int rrtype, dns_cb *cb, void *arg);

/* A libunbound context set up from [dns] (threads, forwarding to the
 * configured resolver or resolv.conf): shared with outbound/dns.c,
 * which runs its own on the runner's loop. 0 or -1 with *error_r. */
int dns_ctx_new(const struct config *cfg, struct ub_ctx **ctx_r, char **error_r);

/* Decodes the uncompressed wire-format name at rd[*off] (libunbound
 * hands out uncompressed rdata) into a lower-case dotted string in a
 * ("" is the root), and moves *off past it. 0 or -1 if malformed. */
int dns_name_decode(const unsigned char *rd, size_t len, size_t *off, struct arena *a,
		    const char **name_r);

#endif
