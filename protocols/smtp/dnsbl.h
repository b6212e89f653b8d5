/*
 * dnsbl.h - DNS blocklists (RFC 5782) for the connecting address: the
 * query names (reversed IPv4 octets, IPv6 nibbles, then the zone) and an
 * asynchronous check of every [dnsbl] zone in parallel through core/dns.
 *
 * A 127.0.0.0/8 A answer means listed, except 127.255.255.0/24, which
 * Spamhaus-style lists use for errors (refused query, over quota):
 * those, NXDOMAIN and DNS failures read as not listed (RFC 5782 2.1,
 * 5). The check belongs to the worker that started it; a cancelled one
 * frees itself when its last answer comes.
 */
#ifndef TERN_DNSBL_H
#define TERN_DNSBL_H

#include <stdbool.h>
#include <stddef.h>

#include "protocols/smtp/spf.h"

struct worker;

/* "4.3.2.1.zone" for 1.2.3.4, 32 nibbles then the zone for IPv6, into
 * out[cap]. 0, or -1 if it does not fit or the zone is empty. */
int dnsbl_query_name(const struct spf_ip *ip, const char *zone, char *out, size_t cap);

/* True when an A answer's address says "listed" (127.0.0.0/8 but not
 * 127.255.255.0/24). */
bool dnsbl_listed_addr(const unsigned char a[4]);

struct dnsbl_outcome {
	const char **listed; /* the zones that list the address, in config order */
	size_t nlisted;
	size_t ntempfail; /* zones that could not be asked (logged) */
};
typedef void dnsbl_done_cb(void *arg, const struct dnsbl_outcome *out);

struct dnsbl_check;
/* Asks every zone of the comma-separated list; cb runs once on w when
 * all have answered (never from inside this call). NULL when there is
 * nothing to ask (no zones). */
struct dnsbl_check *dnsbl_check_start(struct worker *w, const struct spf_ip *ip, const char *zones,
				      dnsbl_done_cb *cb, void *arg);
/* No callback after this; NULL is fine. */
void dnsbl_check_cancel(struct dnsbl_check *c);

#endif
