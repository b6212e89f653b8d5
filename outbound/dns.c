/*
 * dns.c - where mail for a domain goes, through libunbound, without ever
 * blocking the runner's loop: ub_resolve_async() on a context whose
 * descriptor (ub_fd) is watched by the loop, ub_process() when it is
 * readable. libunbound runs its lookups on a thread of its own (never a
 * fork: we have threads).
 *
 * Only the configured resolver is asked ([dns] resolver, forwarding only;
 * tests point it at their own loopback server) or, without one, those of
 * resolv.conf: the context is set up by core/dns.c's dns_ctx_new(). The
 * runner keeps a context of its own on its loop rather than using the
 * front ends' shared resolver (core/dns.h), because it wants the raw
 * answers in its own lookup objects and already has a loop to watch it.
 * CNAMEs are followed by libunbound.
 *
 * Failure: NXDOMAIN and RFC 7505 null MX are permanent (the mail bounces);
 * SERVFAIL, timeouts and a lookup that could not start are temporary.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <unbound.h>

#include "core/dns.h"
#include "core/log.h"
#include "outbound/outbound_internal.h"

#define MX_MAX 10   /* MX hosts tried for one domain */
#define ADDRS_MAX 4 /* addresses kept per host and family */
#define DNS_TYPE_A 1
#define DNS_TYPE_MX 15
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1
#define RCODE_NXDOMAIN 3

struct ob_dns {
	struct ub_ctx *ctx;	/* owned */
	struct event *ev;	/* owned: ub_fd readable */
	struct lookup *lookups; /* in flight, owned (freed on ob_dns_free) */
};

struct host_addrs {
	const char *name;
	unsigned pref;
	struct sockaddr_storage v4[ADDRS_MAX], v6[ADDRS_MAX];
	size_t n4, n6;
};

struct lookup {
	struct ob_dns *d;
	struct lookup *prev, *next;
	struct arena *a; /* owns the lookup */
	const char *domain;
	unsigned port;
	ob_dns_cb *cb;
	void *arg;
	struct host_addrs *hosts;
	size_t nhosts;
	unsigned pending; /* queries not answered yet */
	bool temp;	  /* some query failed temporarily */
	const char *temp_why;
};

struct query {
	struct lookup *l;
	size_t host; /* index into l->hosts (address queries) */
	int type;
	int async_id;
};

static void
dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct ob_dns *d = arg;
	int r = ub_process(d->ctx);
	if (r != 0)
		log_warn(0, "outbound", "dns-process error=\"%s\"", ub_strerror(r));
}

int
ob_dns_new(struct event_base *base, const struct config *cfg, struct ob_dns **d_r, char **error_r)
{
	struct ob_dns *d = xcalloc(1, sizeof(*d));

	if (dns_ctx_new(cfg, &d->ctx, error_r) < 0) {
		free(d);
		return -1;
	}
	d->ev = event_new(base, ub_fd(d->ctx), EV_READ | EV_PERSIST, dns_readable, d);
	if (d->ev == NULL || event_add(d->ev, NULL) < 0)
		fatal("libevent: cannot watch the resolver");
	*d_r = d;
	return 0;
}

static void
lookup_free(struct lookup *l)
{
	struct ob_dns *d = l->d;
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		d->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	struct arena *a = l->a;
	arena_destroy(&a);
}

void
ob_dns_free(struct ob_dns **dp)
{
	struct ob_dns *d = *dp;
	if (d == NULL)
		return;
	if (d->ev != NULL)
		event_free(d->ev);
	/* Deleting the context drops every outstanding query; their
	 * callbacks never run, so their lookups are freed here. */
	ub_ctx_delete(d->ctx);
	while (d->lookups != NULL)
		lookup_free(d->lookups);
	free(d);
	*dp = NULL;
}

static struct lookup *
lookup_new(struct ob_dns *d, const char *name, unsigned port, ob_dns_cb *cb, void *arg)
{
	struct arena *a = arena_new(0);
	struct lookup *l = arena_alloc(a, sizeof(*l));
	l->d = d;
	l->a = a;
	l->domain = arena_strdup(a, name);
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	l->next = d->lookups;
	if (d->lookups != NULL)
		d->lookups->prev = l;
	d->lookups = l;
	return l;
}

/* Answers the caller and frees the lookup. */
static void
finish(struct lookup *l, enum ob_status st, const char *error)
{
	struct ob_dns_answer ans = {.status = st, .error = error};
	size_t max = 0;
	for (size_t i = 0; i < l->nhosts; i++)
		max += l->hosts[i].n4 + l->hosts[i].n6;
	struct ob_target *t = arena_alloc(l->a, (max + 1) * sizeof(*t));
	size_t n = 0;
	if (st == OB_OK) {
		/* MX order; IPv4 first within a host (IPv6 paths are more often
		 * broken than missing). */
		for (size_t i = 0; i < l->nhosts; i++) {
			struct host_addrs *h = &l->hosts[i];
			for (size_t k = 0; k < h->n4 + h->n6; k++) {
				struct ob_target *x = &t[n++];
				x->host = h->name;
				x->pref = h->pref;
				if (k < h->n4) {
					x->addr = h->v4[k];
					x->addrlen = sizeof(struct sockaddr_in);
				} else {
					x->addr = h->v6[k - h->n4];
					x->addrlen = sizeof(struct sockaddr_in6);
				}
			}
		}
		if (n == 0) {
			if (l->temp) {
				ans.status = OB_TEMP;
				ans.error = arena_printf(l->a, "4.4.3 no address for %s yet (%s)",
							 l->domain, l->temp_why);
			} else {
				ans.status = OB_PERM;
				ans.error = arena_printf(
				    l->a, "5.4.4 no address for the mail hosts of %s", l->domain);
			}
		}
	}
	ans.targets = t;
	ans.ntargets = n;
	l->cb(l->arg, &ans);
	lookup_free(l);
}

static void addr_cb(void *mydata, int err, struct ub_result *res);

static void
start_query(struct lookup *l, const char *name, int type, size_t host,
	    void (*cb)(void *, int, struct ub_result *))
{
	struct query *q = arena_alloc(l->a, sizeof(*q));
	q->l = l;
	q->host = host;
	q->type = type;
	l->pending++;
	int r = ub_resolve_async(l->d->ctx, name, type, DNS_CLASS_IN, q, cb, &q->async_id);
	if (r != 0) {
		l->pending--;
		l->temp = true;
		l->temp_why = arena_strdup(l->a, ub_strerror(r));
	}
}

static void
addr_cb(void *mydata, int err, struct ub_result *res)
{
	struct query *q = mydata;
	struct lookup *l = q->l;
	struct host_addrs *h = &l->hosts[q->host];

	if (err != 0) {
		l->temp = true;
		l->temp_why = arena_strdup(l->a, ub_strerror(err));
	} else if (res->havedata) {
		for (int i = 0; res->data[i] != NULL; i++) {
			if (q->type == DNS_TYPE_A && res->len[i] == 4 && h->n4 < ADDRS_MAX) {
				struct sockaddr_in *sin = (struct sockaddr_in *)&h->v4[h->n4++];
				sin->sin_family = AF_INET;
				sin->sin_port = htons((uint16_t)l->port);
				memcpy(&sin->sin_addr, res->data[i], 4);
			} else if (q->type == DNS_TYPE_AAAA && res->len[i] == 16 &&
				   h->n6 < ADDRS_MAX) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->v6[h->n6++];
				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons((uint16_t)l->port);
				memcpy(&s6->sin6_addr, res->data[i], 16);
			}
		}
	} else if (!res->nxdomain && res->rcode != 0) {
		l->temp = true;
		l->temp_why = arena_printf(l->a, "rcode %d for %s", res->rcode, h->name);
	}
	if (res != NULL)
		ub_resolve_free(res);
	if (--l->pending == 0)
		finish(l, OB_OK, NULL);
}

/* Starts the A and AAAA queries of every host in l->hosts. */
static void
resolve_hosts(struct lookup *l)
{
	l->pending++; /* held while starting, so a failed start cannot finish early */
	for (size_t i = 0; i < l->nhosts; i++) {
		start_query(l, l->hosts[i].name, DNS_TYPE_A, i, addr_cb);
		start_query(l, l->hosts[i].name, DNS_TYPE_AAAA, i, addr_cb);
	}
	if (--l->pending == 0)
		finish(l, OB_OK, NULL);
}

static unsigned
random_u32(void *arg)
{
	unsigned v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (unsigned)rand(); /* only spreads load; need not be strong */
	return v;
}

static void
mx_cb(void *mydata, int err, struct ub_result *res)
{
	struct query *q = mydata;
	struct lookup *l = q->l;

	l->pending--;
	if (err != 0) {
		finish(l, OB_TEMP,
		       arena_printf(l->a, "4.4.3 MX lookup for %s failed: %s", l->domain,
				    ub_strerror(err)));
		return;
	}
	if (res->nxdomain || res->rcode == RCODE_NXDOMAIN) {
		ub_resolve_free(res);
		finish(l, OB_PERM, arena_printf(l->a, "5.1.2 domain %s does not exist", l->domain));
		return;
	}
	if (res->rcode != 0) {
		int rc = res->rcode;
		ub_resolve_free(res);
		finish(
		    l, OB_TEMP,
		    arena_printf(l->a, "4.4.3 MX lookup for %s failed (rcode %d)", l->domain, rc));
		return;
	}
	size_t n = 0;
	struct ob_mx *mx = NULL;
	if (res->havedata) {
		size_t cnt = 0;
		while (res->data[cnt] != NULL)
			cnt++;
		mx = arena_alloc(l->a, (cnt + 1) * sizeof(*mx));
		for (size_t i = 0; i < cnt; i++) {
			if (ob_mx_decode((const unsigned char *)res->data[i], (size_t)res->len[i],
					 l->a, &mx[n]) == 0)
				n++;
		}
	}
	ub_resolve_free(res);
	if (ob_mx_is_null(mx, n)) {
		finish(
		    l, OB_PERM,
		    arena_printf(l->a, "5.1.10 %s accepts no mail (null MX, RFC 7505)", l->domain));
		return;
	}
	if (n == 0) {
		/* No MX: the domain itself, as if MX 0 (RFC 5321 5.1). */
		l->hosts = arena_alloc(l->a, sizeof(*l->hosts));
		l->hosts[0].name = l->domain;
		l->nhosts = 1;
	} else {
		ob_mx_sort(mx, n, random_u32, NULL);
		if (n > MX_MAX)
			n = MX_MAX;
		l->hosts = arena_alloc(l->a, n * sizeof(*l->hosts));
		for (size_t i = 0; i < n; i++) {
			if (mx[i].name[0] == '\0')
				continue; /* "." among real MXs: not a host */
			l->hosts[l->nhosts].name = mx[i].name;
			l->hosts[l->nhosts].pref = mx[i].pref;
			l->nhosts++;
		}
	}
	resolve_hosts(l);
}

void
ob_dns_mx(struct ob_dns *d, const char *domain, unsigned port, ob_dns_cb *cb, void *arg)
{
	struct lookup *l = lookup_new(d, domain, port, cb, arg);
	start_query(l, domain, DNS_TYPE_MX, 0, mx_cb);
	if (l->pending == 0)
		finish(l, OB_TEMP,
		       arena_printf(l->a, "4.4.3 MX lookup for %s could not start: %s", domain,
				    l->temp_why));
}

void
ob_dns_host(struct ob_dns *d, const char *host, unsigned port, ob_dns_cb *cb, void *arg)
{
	struct lookup *l = lookup_new(d, host, port, cb, arg);
	l->hosts = arena_alloc(l->a, sizeof(*l->hosts));
	l->nhosts = 1;
	struct host_addrs *h = &l->hosts[0];
	h->name = l->domain;
	struct sockaddr_in *sin = (struct sockaddr_in *)&h->v4[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->v6[0];
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		h->n4 = 1;
		finish(l, OB_OK, NULL);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		h->n6 = 1;
		finish(l, OB_OK, NULL);
	} else {
		resolve_hosts(l);
	}
}
