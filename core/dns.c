/*
 * dns.c - the shared asynchronous resolver of core/dns.h: one libunbound
 * context, its descriptor watched by a DNS thread (a solo worker), answers
 * decoded there and posted back to the asking worker.
 *
 * How it fails: every failure to ask or to hear back is DNS_TEMPFAIL,
 * so a caller can never take a broken resolver for a negative answer.
 * Queries still in flight at dns_stop() are dropped with their callers'
 * callbacks (the workers have stopped by then).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <unbound.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compat.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/worker.h"

#define DNS_CLASS_IN 1
#define RCODE_NXDOMAIN 3
#define DNS_RR_MAX 64 /* records kept per answer: more is abuse, not mail */

struct query {
	struct query *prev, *next; /* in flight (under lock) */
	struct worker *w;	   /* borrowed: gets the answer */
	dns_cb *cb;
	void *arg;
	struct arena *a; /* owns the answer's strings */
	struct dns_result res;
};

static struct {
	pthread_mutex_t lock; /* guards ctx (start/stop) and the in-flight list */
	struct ub_ctx *ctx;   /* owned */
	struct worker *thread;
	struct event *ev;
	struct query *inflight;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *
dns_strerror(int status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "no such domain";
	case DNS_NODATA:
		return "no record of that type";
	case DNS_TEMPFAIL:
		return "temporary DNS failure";
	default:
		return "unknown DNS status";
	}
}

int
dns_ctx_new(const struct config *cfg, struct ub_ctx **ctx_r, char **error_r)
{
	const char *what = "create";
	int r;
	struct ub_ctx *ctx = ub_ctx_create();

	if (ctx == NULL) {
		*error_r = xstrdup("libunbound: cannot create a context");
		return -1;
	}
	/* Threads, never fork(): this process has many threads. */
	if ((r = ub_ctx_async(ctx, 1)) != 0) {
		what = "async";
		goto fail;
	}
	if (cfg->dns_resolver_host[0] != '\0') {
		char *fwd = xstrfmt("%s@%u", cfg->dns_resolver_host, cfg->dns_resolver_port);
		r = ub_ctx_set_fwd(ctx, fwd);
		free(fwd);
		if (r != 0) {
			what = "[dns] resolver";
			goto fail;
		}
		/* A resolver on loopback (tests, a local unbound) is fine. */
		if ((r = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) != 0) {
			what = "do-not-query-localhost";
			goto fail;
		}
		/* libunbound answers RFC 6761's "test." itself (NXDOMAIN);
		 * the configured resolver may serve it (test setups do), and
		 * for real mail it never exists either way. */
		if ((r = ub_ctx_set_option(ctx, "local-zone:", "test. transparent")) != 0) {
			what = "local-zone test.";
			goto fail;
		}
	} else if ((r = ub_ctx_resolvconf(ctx, NULL)) != 0) {
		what = "resolv.conf";
		goto fail;
	}
	*ctx_r = ctx;
	return 0;
fail:
	xasprintf(error_r, "libunbound: %s: %s", what, ub_strerror(r));
	ub_ctx_delete(ctx);
	return -1;
}

int
dns_name_decode(const unsigned char *rd, size_t len, size_t *off, struct arena *a,
		const char **name_r)
{
	struct buf name;
	size_t i = *off;

	buf_init(&name, 255);
	for (;;) {
		if (i >= len)
			goto bad;
		unsigned l = rd[i++];
		if (l == 0)
			break;
		/* A compression pointer or garbage: libunbound hands out
		 * uncompressed names. */
		if (l > 63 || i + l > len)
			goto bad;
		if (name.len > 0 && buf_putc(&name, '.') < 0)
			goto bad;
		for (unsigned k = 0; k < l; k++) {
			char c = (char)rd[i + k];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (c == '.' || c == '\0' || buf_putc(&name, c) < 0)
				goto bad;
		}
		i += l;
	}
	*name_r = arena_strdup(a, buf_cstr(&name));
	*off = i;
	buf_free(&name);
	return 0;
bad:
	buf_free(&name);
	return -1;
}

/* One record's rdata into rr; -1 if it does not parse. */
static int
decode_rr(struct query *q, const unsigned char *rd, size_t len, struct dns_rr *rr)
{
	size_t off = 0;

	memset(rr, 0, sizeof(*rr));
	switch (q->res.rrtype) {
	case DNS_T_A:
		if (len != 4)
			return -1;
		rr->family = AF_INET;
		memcpy(rr->addr, rd, 4);
		return 0;
	case DNS_T_AAAA:
		if (len != 16)
			return -1;
		rr->family = AF_INET6;
		memcpy(rr->addr, rd, 16);
		return 0;
	case DNS_T_MX:
		if (len < 3)
			return -1;
		rr->pref = (unsigned)rd[0] << 8 | rd[1];
		off = 2;
		/* fall through */
	case DNS_T_PTR:
		if (dns_name_decode(rd, len, &off, q->a, &rr->text) < 0 || off != len)
			return -1;
		rr->len = strlen(rr->text);
		return 0;
	case DNS_T_TXT: {
		/* RFC 7208 3.3: the strings of one record are joined with
		 * nothing between them. */
		char *t = arena_alloc(q->a, len + 1);
		size_t n = 0;
		while (off < len) {
			size_t l = rd[off++];
			if (off + l > len)
				return -1;
			memcpy(t + n, rd + off, l);
			n += l;
			off += l;
		}
		t[n] = '\0';
		rr->text = t;
		rr->len = n;
		return 0;
	}
	default:
		rr->text = arena_memdup(q->a, rd, len);
		rr->len = len;
		return 0;
	}
}

static void
unlink_query(struct query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else if (g.inflight == q)
		g.inflight = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void
query_free(struct query *q)
{
	arena_destroy(&q->a);
	free(q);
}

/* On the asking worker. */
static void
deliver(void *arg)
{
	struct query *q = arg;
	q->cb(q->arg, &q->res);
	query_free(q);
}

static void
post_tempfail(struct query *q, const char *why)
{
	q->res.status = DNS_TEMPFAIL;
	q->res.error = arena_strdup(q->a, why);
	worker_post(q->w, deliver, q);
}

/* On the DNS thread, from ub_process(). */
static void
resolved(void *mydata, int err, struct ub_result *res)
{
	struct query *q = mydata;

	pthread_mutex_lock(&g.lock);
	unlink_query(q);
	pthread_mutex_unlock(&g.lock);
	if (err != 0) {
		post_tempfail(q, ub_strerror(err));
		return;
	}
	if (res->nxdomain || res->rcode == RCODE_NXDOMAIN) {
		q->res.status = DNS_NXDOMAIN;
	} else if (res->rcode != 0) {
		q->res.status = DNS_TEMPFAIL;
		q->res.error = arena_printf(q->a, "rcode %d", res->rcode);
	} else if (!res->havedata) {
		q->res.status = DNS_NODATA;
	} else {
		size_t cnt = 0;
		while (res->data[cnt] != NULL && cnt < DNS_RR_MAX)
			cnt++;
		struct dns_rr *rr = arena_alloc(q->a, (cnt + 1) * sizeof(*rr));
		size_t n = 0;
		for (size_t i = 0; i < cnt; i++)
			if (decode_rr(q, (const unsigned char *)res->data[i], (size_t)res->len[i],
				      &rr[n]) == 0)
				n++;
		q->res.rr = rr;
		q->res.n = n;
		q->res.status = n > 0 ? DNS_OK : DNS_NODATA;
	}
	ub_resolve_free(res);
	worker_post(q->w, deliver, q);
}

static void
readable(evutil_socket_t fd, short what, void *arg)
{
	int r = ub_process(g.ctx);
	if (r != 0)
		log_warn(0, "dns", "process error=\"%s\"", ub_strerror(r));
}

void
dns_lookup(struct worker *w, const char *name, int rrtype, dns_cb *cb, void *arg)
{
	struct query *q = xcalloc(1, sizeof(*q));

	q->w = w;
	q->cb = cb;
	q->arg = arg;
	q->a = arena_new(0);
	q->res.rrtype = rrtype;
	q->res.name = arena_strdup(q->a, name);
	pthread_mutex_lock(&g.lock);
	struct ub_ctx *ctx = g.ctx;
	if (ctx != NULL) {
		q->next = g.inflight;
		if (g.inflight != NULL)
			g.inflight->prev = q;
		g.inflight = q;
	}
	pthread_mutex_unlock(&g.lock);
	if (ctx == NULL) {
		post_tempfail(q, "resolver not running");
		return;
	}
	/* No async_id: the answer may come (and q be posted and freed)
	 * before ub_resolve_async returns. */
	int r = ub_resolve_async(ctx, q->res.name, rrtype, DNS_CLASS_IN, q, resolved, NULL);
	if (r != 0) {
		pthread_mutex_lock(&g.lock);
		unlink_query(q);
		pthread_mutex_unlock(&g.lock);
		post_tempfail(q, ub_strerror(r));
	}
}

int
dns_start(const struct config *cfg, char **error_r)
{
	struct ub_ctx *ctx;

	if (dns_ctx_new(cfg, &ctx, error_r) < 0)
		return -1;
	g.thread = worker_solo_create();
	g.ev = event_new(worker_base(g.thread), ub_fd(ctx), EV_READ | EV_PERSIST, readable, NULL);
	if (g.ev == NULL || event_add(g.ev, NULL) < 0)
		fatal("libevent: cannot watch the resolver");
	pthread_mutex_lock(&g.lock);
	g.ctx = ctx;
	pthread_mutex_unlock(&g.lock);
	worker_solo_start(g.thread);
	return 0;
}

void
dns_stop(void)
{
	if (g.thread == NULL)
		return;
	worker_solo_stop(g.thread);
	pthread_mutex_lock(&g.lock);
	struct ub_ctx *ctx = g.ctx;
	g.ctx = NULL;
	struct query *q = g.inflight;
	g.inflight = NULL;
	pthread_mutex_unlock(&g.lock);
	event_free(g.ev);
	g.ev = NULL;
	/* Drops the outstanding queries; their callbacks never run. */
	ub_ctx_delete(ctx);
	while (q != NULL) {
		struct query *next = q->next;
		query_free(q);
		q = next;
	}
	worker_solo_destroy(&g.thread);
}
