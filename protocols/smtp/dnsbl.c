/*
 * dnsbl.c - DNS blocklist queries (dnsbl.h): query names, and one A
 * lookup per zone in parallel through core/dns.
 *
 * How it fails: a zone that cannot be asked (timeout, SERVFAIL) counts
 * as not listing the address and is reported in ntempfail, never as a
 * listing; a zone name too long is skipped the same way.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/arena.h"
#include "core/dns.h"
#include "core/worker.h"
#include "protocols/smtp/dnsbl.h"

#define DNSBL_ZONES_MAX 16

int
dnsbl_query_name(const struct spf_ip *ip, const char *zone, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (zone == NULL || zone[0] == '\0')
		return -1;
	if (ip->family == AF_INET) {
		int w = snprintf(out, cap, "%u.%u.%u.%u.", ip->addr[3], ip->addr[2], ip->addr[1],
				 ip->addr[0]);
		if (w < 0 || (size_t)w >= cap)
			return -1;
		n = (size_t)w;
	} else {
		if (cap < 64)
			return -1;
		for (int i = 15; i >= 0; i--) {
			out[n++] = hex[ip->addr[i] & 0xf];
			out[n++] = '.';
			out[n++] = hex[ip->addr[i] >> 4];
			out[n++] = '.';
		}
	}
	size_t zl = strlen(zone);
	if (zone[zl - 1] == '.')
		zl--;
	if (zl == 0 || n + zl + 1 > cap)
		return -1;
	memcpy(out + n, zone, zl);
	out[n + zl] = '\0';
	return 0;
}

bool
dnsbl_listed_addr(const unsigned char a[4])
{
	return a[0] == 127 && !(a[1] == 255 && a[2] == 255);
}

struct dnsbl_zone {
	struct dnsbl_check *c;
	const char *zone;
	bool listed;
};

struct dnsbl_check {
	struct arena *a; /* owns the check */
	dnsbl_done_cb *cb;
	void *arg;
	struct dnsbl_zone *zones;
	size_t nzones;
	size_t pending;
	size_t ntempfail;
	bool cancelled;
};

static void
check_free(struct dnsbl_check *c)
{
	struct arena *a = c->a;
	arena_destroy(&a);
}

static void
finish(struct dnsbl_check *c)
{
	struct dnsbl_outcome out = {0};

	out.listed = arena_alloc(c->a, (c->nzones + 1) * sizeof(*out.listed));
	for (size_t i = 0; i < c->nzones; i++)
		if (c->zones[i].listed)
			out.listed[out.nlisted++] = c->zones[i].zone;
	out.ntempfail = c->ntempfail;
	c->cb(c->arg, &out);
	check_free(c);
}

static void
answered(void *arg, const struct dns_result *res)
{
	struct dnsbl_zone *z = arg;
	struct dnsbl_check *c = z->c;

	if (res->status == DNS_TEMPFAIL)
		c->ntempfail++;
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++)
		if (res->rr[i].family == AF_INET && dnsbl_listed_addr(res->rr[i].addr))
			z->listed = true;
	if (--c->pending > 0)
		return;
	if (c->cancelled)
		check_free(c);
	else
		finish(c);
}

static void
start_none(void *arg)
{
	struct dnsbl_check *c = arg;
	if (--c->pending > 0)
		return;
	if (c->cancelled)
		check_free(c);
	else
		finish(c);
}

struct dnsbl_check *
dnsbl_check_start(struct worker *w, const struct spf_ip *ip, const char *zones, dnsbl_done_cb *cb,
		  void *arg)
{
	if (zones == NULL || zones[0] == '\0')
		return NULL;
	struct arena *a = arena_new(0);
	struct dnsbl_check *c = arena_alloc(a, sizeof(*c));
	memset(c, 0, sizeof(*c));
	c->a = a;
	c->cb = cb;
	c->arg = arg;
	c->zones = arena_alloc(a, DNSBL_ZONES_MAX * sizeof(*c->zones));
	const char **names = arena_alloc(a, DNSBL_ZONES_MAX * sizeof(*names));
	for (const char *p = zones; *p != '\0' && c->nzones < DNSBL_ZONES_MAX;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *s = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		if (p == s)
			continue;
		char name[512];
		const char *zone = arena_strndup(a, s, (size_t)(p - s));
		if (dnsbl_query_name(ip, zone, name, sizeof(name)) < 0) {
			c->ntempfail++;
			continue;
		}
		c->zones[c->nzones] = (struct dnsbl_zone){c, zone, false};
		names[c->nzones++] = arena_strdup(a, name);
	}
	/* +1 until every query is out: an answer cannot finish it early. */
	c->pending = c->nzones + 1;
	for (size_t i = 0; i < c->nzones; i++)
		dns_lookup(w, names[i], DNS_T_A, answered, &c->zones[i]);
	worker_post(w, start_none, c);
	return c;
}

void
dnsbl_check_cancel(struct dnsbl_check *c)
{
	if (c != NULL)
		c->cancelled = true;
}
