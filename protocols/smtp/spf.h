/*
 * spf.h - SPF (RFC 7208): may this IP address send mail for this domain?
 *
 * spf_check_start() runs check_host() (section 4) asynchronously over
 * core/dns.h, one DNS query at a time, on the caller's worker; the
 * answer comes through a callback on that worker, never from inside
 * spf_check_start(). spf_check_cancel() stops a check (the callback then
 * never runs); the check frees itself once its last DNS answer is back.
 *
 * The pure parts (record parsing, macro expansion, CIDR matching) are
 * public for the unit tests. Results carry a short reason for the
 * Authentication-Results comment and the log.
 *
 * XXX %{p} expands to "unknown" (RFC 7208 7.3 allows it, and says the
 * macro SHOULD NOT be used); the ptr mechanism itself is evaluated.
 */
#ifndef TERN_SPF_H
#define TERN_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct arena;
struct worker;

enum spf_result {
	SPF_NONE = 0,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};
/* RFC 8601 result names: "pass", "temperror", ... */
const char *spf_result_name(enum spf_result r);

/* An IP address: family AF_INET (4 bytes used) or AF_INET6. */
struct spf_ip {
	int family;
	unsigned char addr[16];
};
/* Parses text (IPv4-mapped IPv6 becomes IPv4). 0 or -1. */
int spf_ip_parse(const char *text, struct spf_ip *ip_r);
/* True if ip is inside net/prefix (same family only). */
bool spf_cidr_match(const struct spf_ip *ip, const struct spf_ip *net, unsigned prefix);

/* What check_host() is asked about, and the macro context. */
struct spf_request {
	struct spf_ip ip;
	const char *sender;   /* MAIL FROM address, "" for <> */
	const char *helo;     /* HELO/EHLO argument */
	const char *receiver; /* our host name (%{r}) */
	time_t now;	      /* %{t} */
};

/* Macro expansion (section 7) of the macro-string at s..s+len, with
 * domain as %{d}; exp allows %{c}, %{r}, %{t} (explanation strings).
 * With req NULL only the syntax is checked. 0 or -1 (syntax error:
 * permerror). */
int spf_expand(const char *s, size_t len, const struct spf_request *req, const char *sender,
	       const char *domain, bool exp, struct arena *a, const char **out_r);

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

struct spf_term {
	enum spf_mech mech;
	char qualifier; /* '+', '-', '~', '?' */
	/* domain-spec (a macro-string) or NULL for the current domain */
	const char *spec;
	size_t spec_len;
	unsigned cidr4, cidr6; /* 32 / 128 when absent */
	struct spf_ip net;     /* ip4, ip6 */
};

struct spf_record {
	struct spf_term *terms;
	size_t nterms;
	const char *redirect; /* domain-spec or NULL */
	size_t redirect_len;
	const char *exp; /* domain-spec or NULL (only logged) */
	size_t exp_len;
};

/* True if the TXT record text is an SPF record ("v=spf1" then a space
 * or the end, case-insensitive). */
bool spf_is_record(const char *text, size_t len);
/* Parses a whole record (section 4.6, 12). 0, or -1 with a reason in
 * *error_r (permerror). Strings point into text. */
int spf_parse_record(const char *text, size_t len, struct arena *a, struct spf_record *rec_r,
		     const char **error_r);

struct spf_outcome {
	enum spf_result result;
	const char *domain; /* the identity's domain checked */
	const char *reason; /* for the A-R comment and logs (check's arena) */
};

struct spf_check;
/* outcome is valid only during the callback. */
typedef void spf_done_cb(void *arg, const struct spf_outcome *out);

/* Starts check_host(ip, domain of sender, sender); with an empty sender,
 * the HELO identity (postmaster@helo). req's strings are copied. */
struct spf_check *spf_check_start(struct worker *w, const struct spf_request *req, spf_done_cb *cb,
				  void *arg);
/* The callback will not run; the check frees itself. */
void spf_check_cancel(struct spf_check *c);

#endif
