/*
 * runner.c - the outbound queue runner: its own thread and libevent loop
 * (a solo worker, so directory and storage completions come back to it).
 *
 * A scan (woken by the store after a commit that queued mail, and by a
 * timer at the next due time) takes due recipients from the queue, marks
 * them in flight, and groups them by destination: the relayhost, a
 * [routes] entry, or the recipient's domain (by MX). A destination
 * resolves once, then opens up to max_per_destination connections
 * (max_connections in all) and hands each transaction (one message, its
 * recipients there) to the first idle connection; a connection that
 * finishes one takes the next (RSET between) and quits after a short
 * idle time. Destinations are independent: a slow one holds only its
 * own connections.
 *
 * Results go back with queue_update(): 2xx delivered; 5xx failed with a
 * bounce (RFC 3464, outbound/dsn.c) to the sender, none for a null
 * sender; 4xx and connection failures deferred with doubling backoff
 * until the lifetime is over (then 4.4.7 and a bounce); a delay DSN
 * once after delay_warning when NOTIFY allows it. A bounce to a local
 * sender goes straight into their INBOX, to a remote one into the queue
 * with a null sender, in the same transaction as the results.
 *
 * Failure: nothing here is final until queue_update() has committed;
 * after a crash the recipients in flight are simply due again (so a
 * message may be sent twice, as SMTP allows, never lost). A directory
 * that cannot say who a local sender is defers the bounce.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "outbound/dsn.h"
#include "outbound/outbound.h"
#include "outbound/outbound_internal.h"
#include "storage/queue.h"

#define SCAN_MAX 512	  /* recipients taken per scan */
#define IDLE_SECS 3	  /* an idle connection waits this long for more */
#define TIMER_MAX_SECS 60 /* the longest sleep between scans */
#define DNS_TTL_SECS 60	  /* a destination's addresses are kept this long */

struct dest;
struct oconn;

/* One message to one destination, with the queue's view of each rcpt. */
struct job {
	struct ob_txn t; /* first: t.arg is the job */
	struct runner *r;
	struct dest *d;
	uint64_t queue_id;
	uint64_t id;		  /* for logs */
	struct queue_item *items; /* one per t.rcpts, copies in t.a */
	size_t cap;
	time_t created;
	const char *sender;
	struct job *next;
	/* Set while the bounce's directory lookup or the update runs. */
	struct queue_update u;
	struct queue_result *results;
	bool want_bounce, want_delay;
	struct queue_envelope bounce_env;
	struct queue_rcpt_in bounce_rcpt;
	struct store_delivery dsn;
	struct store_rcpt *dsn_rcpts;
	struct admin_call *admin; /* a bounce an admin asked for, or NULL */
};

struct oconn {
	struct oconn *next;
	struct dest *d;
	struct ob_client *c;
	struct job *job;
	bool ready;
	struct event *idle_ev; /* owned */
};

struct dest {
	struct dest *next;
	struct runner *r;
	char *key;  /* owned: "mx:domain" or "host:port" */
	char *name; /* owned: the domain (by MX) or the host */
	unsigned port;
	bool by_mx;
	int tls;
	const char *auth; /* borrowed from the config, or NULL */
	enum { D_NEW, D_RESOLVING, D_READY } state;
	time_t resolved_at;
	struct ob_target *targets; /* owned, with names in tarena */
	size_t ntargets;
	struct arena *tarena;
	struct job *pending, *pending_tail;
	struct oconn *conns;
	unsigned nconns, connecting;
};

struct runner {
	const struct config *cfg;
	struct worker *w;
	struct event_base *base;
	struct ob_dns *dns;
	struct event *scan_ev;	/* owned: activated by the store's notify */
	struct event *timer_ev; /* owned */
	struct dest *dests;
	unsigned nconns;
	/* (queue_id, rcpt_idx) in flight: open addressing, 0 = empty. */
	struct inflight {
		uint64_t id;
		uint32_t idx;
		bool used, gone;
	} * fl;
	size_t fl_cap, fl_n;
	unsigned updates; /* jobs being recorded (directory lookup for a
			     bounce, queue_update); atomic: stop waits on it */
	bool stopping;
	/* The message an admin's change is being written for (0: none): the
	 * scan leaves it alone meanwhile. One at a time (the control server
	 * serves one request at a time). */
	uint64_t admin_qid;
};

static struct runner *runner; /* between outbound_start and _stop */

/* ---- the in-flight set ---- */

static size_t
fl_hash(uint64_t id, uint32_t idx, size_t cap)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)idx * 0xC2B2AE3D27D4EB4FULL);
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static struct inflight *
fl_find(struct runner *r, uint64_t id, uint32_t idx)
{
	if (r->fl_cap == 0)
		return NULL;
	for (size_t i = fl_hash(id, idx, r->fl_cap), k = 0; k < r->fl_cap;
	     i = (i + 1) & (r->fl_cap - 1), k++) {
		struct inflight *e = &r->fl[i];
		if (!e->used && !e->gone)
			return NULL;
		if (e->used && e->id == id && e->idx == idx)
			return e;
	}
	return NULL;
}

static void
fl_add(struct runner *r, uint64_t id, uint32_t idx)
{
	if ((r->fl_n + 1) * 2 > r->fl_cap) {
		size_t ocap = r->fl_cap;
		struct inflight *old = r->fl;
		r->fl_cap = ocap == 0 ? 64 : ocap * 2;
		r->fl = xcalloc(r->fl_cap, sizeof(*r->fl));
		r->fl_n = 0;
		for (size_t i = 0; i < ocap; i++) {
			if (old[i].used)
				fl_add(r, old[i].id, old[i].idx);
		}
		free(old);
	}
	size_t i = fl_hash(id, idx, r->fl_cap);
	while (r->fl[i].used)
		i = (i + 1) & (r->fl_cap - 1);
	r->fl[i] = (struct inflight){.id = id, .idx = idx, .used = true};
	r->fl_n++;
}

static void
fl_del(struct runner *r, uint64_t id, uint32_t idx)
{
	struct inflight *e = fl_find(r, id, idx);
	if (e != NULL) {
		e->used = false;
		e->gone = true;
		r->fl_n--;
	}
}

static bool
in_flight(void *arg, uint64_t id, uint32_t idx)
{
	struct runner *r = arg;
	return (r->admin_qid != 0 && id == r->admin_qid) || fl_find(r, id, idx) != NULL;
}

/* Any recipient of message id in flight (a linear walk: rare calls). */
static bool
qid_in_flight(struct runner *r, uint64_t id)
{
	for (size_t i = 0; i < r->fl_cap; i++)
		if (r->fl[i].used && r->fl[i].id == id)
			return true;
	return false;
}

/* ---- results and bounces ---- */

static bool
notify_allows(uint8_t notify, uint8_t what)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	if (notify == 0) /* not given: failures, and delays (RFC 3461 4.1) */
		return what == QUEUE_NOTIFY_FAILURE || what == QUEUE_NOTIFY_DELAY;
	return (notify & what) != 0;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : "";
}

/* The DSN (outbound/dsn.c) for the job's recipients whose result is
 * FAILED (delay false) or DELAY_WARNED (delay true), as a whole message
 * in j->t.a: 0. 1 when no recipient asked for this notice (NOTIFY);
 * -1 when it cannot be composed (no bounce then; logged). */
static int compose_dsn(struct job *j, bool delay, const char **msg_r, size_t *len_r);

static void update_done(void *req, void *arg);

static void
submit_update(struct job *j)
{
	struct runner *r = j->r;
	j->u.req.worker = r->w;
	j->u.req.done = update_done;
	j->u.req.arg = j;
	j->u.req.a = j->t.a;
	j->u.results = j->results;
	j->u.nresults = j->t.nrcpts;
	queue_update(&j->u);
}

/* The bounce (or delay notice) for a local sender: its mailboxes. */
static void
bounce_local_done(void *arg, const struct dir_rcpt_result *res)
{
	struct job *j = arg;
	struct runner *r = j->r;

	if (res->status == DIR_OK && res->nusers > 0) {
		j->dsn_rcpts = arena_alloc(j->t.a, res->nusers * sizeof(*j->dsn_rcpts));
		for (size_t i = 0; i < res->nusers; i++) {
			struct store_rcpt *sr = &j->dsn_rcpts[i];
			char *trace = arena_printf(
			    j->t.a, "Return-Path: <>\r\nDelivered-To: %s\r\n", j->sender);
			sr->user_id = arena_strdup(j->t.a, res->users[i].id);
			sr->trace = trace;
			sr->trace_len = strlen(trace);
			sr->quota = 0; /* a bounce is never refused for quota */
			sr->quota_messages = 0;
			sr->status = STORE_TEMPFAIL;
		}
		j->dsn.rcpts = j->dsn_rcpts;
		j->dsn.nrcpts = res->nusers;
		j->u.dsns = &j->dsn;
		j->u.ndsns = 1;
	} else if (res->status == DIR_TEMPFAIL || res->status == DIR_CONFLICT) {
		/* Who the sender is cannot be told now (directory down, or two
		 * entries claim the address): the failures wait for the next
		 * attempt, when the bounce is tried again. */
		log_warn(j->id, "outbound", "bounce-deferred sender=<%s> reason=\"directory: %s\"",
			 j->sender, res->error != NULL ? res->error : dir_strerror(res->status));
		time_t next = time(NULL) + r->cfg->outbound_retry_initial_s;
		for (size_t i = 0; i < j->t.nrcpts; i++) {
			struct queue_result *q = &j->results[i];
			if (q->outcome == QUEUE_FAILED || q->outcome == QUEUE_DELAY_WARNED) {
				q->outcome = QUEUE_DEFERRED;
				q->next_attempt = next;
			}
		}
	} else {
		log_warn(j->id, "outbound",
			 "bounce-dropped sender=<%s> reason=\"no local mailbox\"", j->sender);
	}
	submit_update(j);
}

/* Records the job's results (j->results filled) with its DSN, if any. */
static void
record(struct job *j)
{
	struct runner *r = j->r;
	bool delay = !j->want_bounce && j->want_delay;

	if (j->want_bounce || j->want_delay) {
		const char *msg = NULL;
		size_t len = 0;
		int rc = compose_dsn(j, delay, &msg, &len);
		if (rc < 0) {
			log_warn(j->id, "outbound",
				 "bounce-failed sender=<%s> reason=\"cannot "
				 "compose the DSN\"",
				 j->sender);
		} else if (rc == 0) {
			j->dsn.body = msg;
			j->dsn.body_len = len;
			j->dsn.internal_date = time(NULL);
			const char *dom = domain_of(j->sender);
			if (config_is_local_domain(r->cfg, dom)) {
				char *lower = arena_strdup(j->t.a, j->sender);
				for (char *p = lower; *p != '\0'; p++) {
					if (*p >= 'A' && *p <= 'Z')
						*p = (char)(*p - 'A' + 'a');
				}
				dir_resolve_rcpt(r->w, lower, bounce_local_done, j);
				return;
			}
			j->bounce_rcpt.address = j->sender;
			j->bounce_env.sender = "";
			j->bounce_env.origin = QUEUE_ORIGIN_BOUNCE;
			j->bounce_env.rcpts = &j->bounce_rcpt;
			j->bounce_env.nrcpts = 1;
			j->dsn.outbound = &j->bounce_env;
			j->u.dsns = &j->dsn;
			j->u.ndsns = 1;
		}
	}
	submit_update(j);
}

/* Turns the txn's per-recipient codes into queue results; then record. */
static void
job_results(struct job *j)
{
	struct runner *r = j->r;
	const struct config *cfg = r->cfg;
	time_t now = time(NULL);
	bool null_sender = j->sender[0] == '\0';

	j->results = arena_alloc(j->t.a, j->t.nrcpts * sizeof(*j->results));
	for (size_t i = 0; i < j->t.nrcpts; i++) {
		struct ob_rcpt *rc = &j->t.rcpts[i];
		struct queue_item *it = &j->items[i];
		struct queue_result *q = &j->results[i];
		q->queue_id = it->queue_id;
		q->rcpt_idx = it->rcpt_idx;
		q->reason = rc->reply != NULL ? rc->reply : "451 4.4.2 no answer";
		int cls = rc->code / 100;
		if (cls == 2) {
			q->outcome = QUEUE_DELIVERED;
		} else if (cls == 5) {
			q->outcome = QUEUE_FAILED;
		} else if (now - it->created >= (time_t)cfg->outbound_lifetime) {
			q->outcome = QUEUE_FAILED;
			q->reason = arena_printf(j->t.a, "4.4.7 delivery time expired (last: %s)",
						 q->reason);
		} else {
			q->outcome = QUEUE_DEFERRED;
			q->next_attempt =
			    now + ob_backoff(it->attempts + 1, cfg->outbound_retry_initial_s,
					     cfg->outbound_retry_max);
			if (!it->delay_warned && cfg->outbound_delay_warning > 0 &&
			    now - it->created >= (time_t)cfg->outbound_delay_warning &&
			    !null_sender && notify_allows(it->notify, QUEUE_NOTIFY_DELAY)) {
				q->outcome = QUEUE_DELAY_WARNED;
				j->want_delay = true;
			}
		}
		if (q->outcome == QUEUE_FAILED && !null_sender &&
		    notify_allows(it->notify, QUEUE_NOTIFY_FAILURE))
			j->want_bounce = true;
		log_info(j->id, "outbound",
			 "result queue_id=%016" PRIx64 " rcpt=<%s> outcome=%s attempts=%u "
			 "reply=\"%s\"",
			 it->queue_id, it->address,
			 q->outcome == QUEUE_DELIVERED	? "delivered"
			 : q->outcome == QUEUE_FAILED	? "failed"
			 : q->outcome == QUEUE_DEFERRED ? "deferred"
							: "delay-warned",
			 it->attempts + 1, q->reason);
	}
	__atomic_add_fetch(&r->updates, 1, __ATOMIC_SEQ_CST);
	if (j->want_bounce && j->want_delay) {
		/* One DSN per update: the bounce now, the delay notice on a
		 * later attempt. */
		for (size_t i = 0; i < j->t.nrcpts; i++) {
			if (j->results[i].outcome == QUEUE_DELAY_WARNED)
				j->results[i].outcome = QUEUE_DEFERRED;
		}
		j->want_delay = false;
	}
	record(j);
}

/* Every recipient of the job gets code and line without a connection. */
static void
job_fail_all(struct job *j, int code, const char *line)
{
	for (size_t i = 0; i < j->t.nrcpts; i++) {
		j->t.rcpts[i].code = code;
		j->t.rcpts[i].reply = arena_strdup(j->t.a, line);
	}
	job_results(j);
}

static void scan_soon(struct runner *r);
static void dest_maybe_free(struct dest *d);

static void admin_bounce_done(struct job *j);

static void
update_done(void *req, void *arg)
{
	struct job *j = arg;
	struct runner *r = j->r;

	if (j->u.req.status != STORE_OK)
		/* Nothing recorded: the recipients are due again and the
		 * next attempt repeats this one (at worst a duplicate). */
		log_error(j->id, "outbound",
			  "queue-update-failed queue_id=%016" PRIx64 " error=\"%s\"", j->queue_id,
			  store_strerror(j->u.req.status));
	for (size_t i = 0; i < j->t.nrcpts; i++)
		fl_del(r, j->items[i].queue_id, j->items[i].rcpt_idx);
	if (j->admin != NULL)
		admin_bounce_done(j);
	struct arena *a = j->t.a;
	arena_destroy(&a);
	__atomic_sub_fetch(&r->updates, 1, __ATOMIC_SEQ_CST);
	if (!r->stopping)
		scan_soon(r);
}

/* ---- destinations and connections ---- */

static void dest_kick(struct dest *d);

static void
job_done(struct ob_txn *t, void *arg)
{
	struct job *j = arg;
	struct dest *d = j->d;
	struct oconn *oc = NULL;
	for (struct oconn *x = d->conns; x != NULL; x = x->next) {
		if (x->job == j)
			oc = x;
	}
	if (oc != NULL)
		oc->job = NULL;
	job_results(j);
	if (oc != NULL && !d->r->stopping)
		dest_kick(d);
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct oconn *oc = arg;
	if (oc->job == NULL)
		ob_client_close(oc->c);
}

static void
conn_ready(struct ob_client *c, void *arg)
{
	struct oconn *oc = arg;
	oc->ready = true;
	oc->d->connecting--;
	dest_kick(oc->d);
}

static void
defer_pending(struct dest *d, int code, const char *why)
{
	while (d->pending != NULL) {
		struct job *j = d->pending;
		d->pending = j->next;
		if (d->pending == NULL)
			d->pending_tail = NULL;
		job_fail_all(j, code, why);
	}
}

static void
conn_closed(struct ob_client *c, void *arg, enum ob_status st, const char *error)
{
	struct oconn *oc = arg;
	struct dest *d = oc->d;
	struct runner *r = d->r;

	for (struct oconn **pp = &d->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == oc) {
			*pp = oc->next;
			break;
		}
	}
	bool was_ready = oc->ready;
	if (!was_ready)
		d->connecting--;
	d->nconns--;
	r->nconns--;
	event_free(oc->idle_ev);
	free(oc);
	if (r->stopping)
		return;
	/* No connection could be made and none is ready to carry the
	 * waiting messages: they wait in the queue instead. (Waiting for
	 * the other connection attempts to fail too would let each failure
	 * open a new attempt for the jobs still pending, a loop for as long
	 * as the far side refuses.) */
	bool any_ready = false;
	for (struct oconn *x = d->conns; x != NULL; x = x->next)
		any_ready = any_ready || x->ready;
	if (!was_ready && !any_ready && d->pending != NULL) {
		const char *why = error != NULL ? error : "no connection";
		struct arena *tmp = arena_new(0);
		const char *line = arena_printf(tmp, "451 4.4.1 %s", why);
		defer_pending(d, 451, line);
		arena_destroy(&tmp);
	}
	/* A slot was freed: every destination may use it. */
	for (struct dest *x = r->dests, *next; x != NULL; x = next) {
		next = x->next;
		dest_kick(x);
	}
}

static void
dest_resolved(void *arg, const struct ob_dns_answer *ans)
{
	struct dest *d = arg;
	d->state = D_NEW;
	if (ans->status != OB_OK) {
		log_info(0, "outbound", "resolve-failed dest=%s reason=\"%s\"", d->key, ans->error);
		struct arena *tmp = arena_new(0);
		bool perm = ans->status == OB_PERM;
		const char *line = arena_printf(tmp, "%d %s", perm ? 550 : 451, ans->error);
		defer_pending(d, perm ? 550 : 451, line);
		arena_destroy(&tmp);
		dest_maybe_free(d);
		return;
	}
	arena_destroy(&d->tarena);
	free(d->targets);
	d->tarena = arena_new(0);
	d->targets = xcalloc(ans->ntargets, sizeof(*d->targets));
	for (size_t i = 0; i < ans->ntargets; i++) {
		d->targets[i] = ans->targets[i];
		d->targets[i].host = arena_strdup(d->tarena, ans->targets[i].host);
	}
	d->ntargets = ans->ntargets;
	d->state = D_READY;
	d->resolved_at = time(NULL);
	dest_kick(d);
}

static void
open_conn(struct dest *d)
{
	struct runner *r = d->r;
	const struct config *cfg = r->cfg;
	struct oconn *oc = xcalloc(1, sizeof(*oc));
	oc->d = d;
	oc->idle_ev = evtimer_new(r->base, idle_cb, oc);
	if (oc->idle_ev == NULL)
		fatal("libevent: cannot create a timer");
	oc->next = d->conns;
	d->conns = oc;
	d->nconns++;
	d->connecting++;
	r->nconns++;
	struct ob_client_params p = {
	    .targets = d->targets,
	    .ntargets = d->ntargets,
	    .helo = cfg->hostname,
	    .tls = d->tls,
	    .ca_file = cfg->outbound_tls_ca_file,
	    .auth = d->auth,
	    .connect_timeout = cfg->outbound_connect_timeout,
	    .command_timeout = cfg->outbound_command_timeout,
	    .data_timeout = cfg->outbound_data_timeout,
	    .id = log_new_id(),
	};
	static const struct ob_client_events ev = {conn_ready, conn_closed};
	oc->c = ob_client_new(r->base, &p, &ev, oc);
}

static void
dest_kick(struct dest *d)
{
	struct runner *r = d->r;
	if (r->stopping)
		return;
	if (d->state == D_READY && time(NULL) - d->resolved_at > DNS_TTL_SECS && d->nconns == 0)
		d->state = D_NEW;
	if (d->state == D_NEW) {
		if (d->pending == NULL) {
			dest_maybe_free(d);
			return;
		}
		d->state = D_RESOLVING;
		if (d->by_mx)
			ob_dns_mx(r->dns, d->name, d->port, dest_resolved, d);
		else
			ob_dns_host(r->dns, d->name, d->port, dest_resolved, d);
		return;
	}
	if (d->state != D_READY)
		return;
	/* Idle connections first. */
	for (struct oconn *oc = d->conns; oc != NULL && d->pending != NULL; oc = oc->next) {
		if (!oc->ready || oc->job != NULL)
			continue;
		struct job *j = d->pending;
		if (ob_client_send(oc->c, &j->t) < 0)
			continue;
		d->pending = j->next;
		if (d->pending == NULL)
			d->pending_tail = NULL;
		oc->job = j;
		event_del(oc->idle_ev);
	}
	/* More connections for what is left, within the caps. */
	/* Counted only as far as it can matter: no more than max_per_destination
	 * connections are ever opened beyond those connecting (a long
	 * pending list was walked whole on every kick). */
	size_t waiting = 0, enough = d->connecting + r->cfg->outbound_max_per_destination;
	for (struct job *j = d->pending; j != NULL && waiting < enough; j = j->next)
		waiting++;
	while (waiting > d->connecting && d->nconns < r->cfg->outbound_max_per_destination &&
	       r->nconns < r->cfg->outbound_max_connections) {
		open_conn(d);
	}
	/* Idle connections with nothing to do wait a little for more. */
	for (struct oconn *oc = d->conns; oc != NULL; oc = oc->next) {
		if (oc->ready && oc->job == NULL && !event_pending(oc->idle_ev, EV_TIMEOUT, NULL)) {
			struct timeval tv = {.tv_sec = IDLE_SECS};
			event_add(oc->idle_ev, &tv);
		}
	}
	if (d->pending == NULL && d->conns == NULL)
		dest_maybe_free(d);
}

static void
dest_maybe_free(struct dest *d)
{
	if (d->pending != NULL || d->conns != NULL || d->state == D_RESOLVING)
		return;
	struct runner *r = d->r;
	for (struct dest **pp = &r->dests; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	arena_destroy(&d->tarena);
	free(d->targets);
	free(d->key);
	free(d->name);
	free(d);
}

/* The destination for a recipient's domain, made when first needed. */
static struct dest *
dest_for(struct runner *r, const char *domain)
{
	const struct config *cfg = r->cfg;
	const struct config_route *route = config_route_for(cfg, domain);
	char *key;
	const char *name;
	unsigned port;
	bool by_mx = false;
	int tls = CONFIG_TLS_MAY;
	const char *auth = NULL;

	if (route != NULL) {
		name = route->host;
		port = route->port;
	} else if (cfg->outbound_relay_host[0] != '\0') {
		name = cfg->outbound_relay_host;
		port = cfg->outbound_relay_port;
		tls = cfg->outbound_relayhost_tls;
		if (cfg->outbound_relayhost_auth[0] != '\0')
			auth = cfg->outbound_relayhost_auth;
	} else {
		name = domain;
		port = cfg->outbound_port;
		by_mx = true;
	}
	if (by_mx) {
		if (asprintf(&key, "mx:%s", name) < 0)
			fatal("out of memory");
	} else if (asprintf(&key, "%s:%u", name, port) < 0) {
		fatal("out of memory");
	}
	for (struct dest *d = r->dests; d != NULL; d = d->next) {
		if (strcmp(d->key, key) == 0) {
			free(key);
			return d;
		}
	}
	struct dest *d = xcalloc(1, sizeof(*d));
	d->r = r;
	d->key = key;
	d->name = xstrdup(name);
	d->port = port;
	d->by_mx = by_mx;
	d->tls = tls;
	d->auth = auth;
	d->next = r->dests;
	r->dests = d;
	return d;
}

/* ---- the scan ---- */

static struct job *
job_new(struct runner *r, const struct queue_item *it)
{
	struct arena *a = arena_new(0);
	struct job *j = arena_alloc(a, sizeof(*j));
	j->t.a = a;
	j->r = r;
	j->id = log_new_id();
	j->queue_id = it->queue_id;
	j->created = it->created;
	j->sender = arena_strdup(a, it->sender);
	j->t.sender = j->sender;
	j->t.envid = it->envid != NULL ? arena_strdup(a, it->envid) : NULL;
	j->t.ret = it->ret;
	j->t.smtputf8 = it->smtputf8;
	j->t.eightbit = it->eightbit;
	j->t.requiretls = it->requiretls;
	j->t.done = job_done;
	j->t.arg = j;
	return j;
}

static void
job_add_rcpt(struct job *j, const struct queue_item *it)
{
	struct arena *a = j->t.a;
	if (j->t.nrcpts == j->cap) {
		size_t ncap = j->cap == 0 ? 4 : j->cap * 2;
		struct queue_item *ni = arena_alloc(a, ncap * sizeof(*ni));
		struct ob_rcpt *nr = arena_alloc(a, ncap * sizeof(*nr));
		if (j->t.nrcpts > 0) {
			memcpy(ni, j->items, j->t.nrcpts * sizeof(*ni));
			memcpy(nr, j->t.rcpts, j->t.nrcpts * sizeof(*nr));
		}
		j->items = ni;
		j->t.rcpts = nr;
		j->cap = ncap;
	}
	struct queue_item *c = &j->items[j->t.nrcpts];
	*c = *it;
	c->sender = j->sender;
	c->address = arena_strdup(a, it->address);
	c->orcpt = it->orcpt != NULL ? arena_strdup(a, it->orcpt) : NULL;
	c->envid = j->t.envid;
	c->last_error = it->last_error != NULL ? arena_strdup(a, it->last_error) : NULL;
	struct ob_rcpt *rc = &j->t.rcpts[j->t.nrcpts];
	memset(rc, 0, sizeof(*rc));
	rc->address = c->address;
	rc->orcpt = c->orcpt;
	rc->notify = c->notify;
	j->t.nrcpts++;
}

/* Loads the message; false if the job was answered without sending. */
static bool
job_load(struct runner *r, struct job *j)
{
	struct buf b;
	buf_init(&b, r->cfg->message_size_max * 2 + (1 << 20));
	int st = queue_message_read(j->queue_id, &b);
	if (st != STORE_OK) {
		log_warn(j->id, "outbound",
			 "message-read-failed queue_id=%016" PRIx64 " error=\"%s\"", j->queue_id,
			 store_strerror(st));
		buf_free(&b);
		job_fail_all(j, 451, "451 4.3.0 the queued message could not be read");
		return false;
	}
	j->t.msg = arena_memdup(j->t.a, b.data != NULL ? b.data : "", b.len);
	j->t.msg_len = b.len;
	buf_free(&b);
	if (!j->t.eightbit && ob_has_8bit(j->t.msg, j->t.msg_len))
		j->t.eightbit = true;
	unsigned hops = ob_count_received(j->t.msg, j->t.msg_len);
	if (hops > r->cfg->outbound_max_received) {
		job_fail_all(j, 554,
			     arena_printf(j->t.a,
					  "554 5.4.6 mail loop: %u Received headers (more than %u)",
					  hops, r->cfg->outbound_max_received));
		return false;
	}
	return true;
}

static void arm_timer(struct runner *r);

static void
scan(struct runner *r)
{
	struct arena *a = arena_new(0);
	struct queue_item *items = NULL;
	size_t n = 0;
	time_t now = time(NULL);

	int st = queue_due(now, SCAN_MAX, in_flight, r, a, &items, &n);
	if (st != STORE_OK && st != STORE_NOTFOUND) {
		log_error(0, "outbound", "queue-scan-failed error=\"%s\"", store_strerror(st));
		n = 0;
	}
	/* New jobs of this scan, by (destination, queue id). */
	struct job **fresh = xcalloc(n + 1, sizeof(*fresh));
	size_t nfresh = 0;
	for (size_t i = 0; i < n; i++) {
		const struct queue_item *it = &items[i];
		fl_add(r, it->queue_id, it->rcpt_idx);
		struct dest *d = dest_for(r, domain_of(it->address));
		struct job *j = NULL;
		for (size_t k = 0; k < nfresh; k++) {
			if (fresh[k]->d == d && fresh[k]->queue_id == it->queue_id)
				j = fresh[k];
		}
		if (j == NULL) {
			j = job_new(r, it);
			j->d = d;
			fresh[nfresh++] = j;
		}
		job_add_rcpt(j, it);
	}
	for (size_t k = 0; k < nfresh; k++) {
		struct job *j = fresh[k];
		struct dest *d = j->d;
		if (!job_load(r, j))
			continue;
		if (now - j->created >= (time_t)r->cfg->outbound_lifetime) {
			/* job_results() turns this into 4.4.7 with the last reason
			 * (the message was loaded for the bounce). */
			const char *last = j->items[0].last_error;
			job_fail_all(j, 451, last != NULL ? last : "451 4.4.1 not delivered");
			continue;
		}
		if (d->pending_tail != NULL)
			d->pending_tail->next = j;
		else
			d->pending = j;
		d->pending_tail = j;
	}
	free(fresh);
	arena_destroy(&a);
	for (struct dest *d = r->dests, *next; d != NULL; d = next) {
		next = d->next;
		dest_kick(d);
	}
	arm_timer(r);
}

static void
arm_timer(struct runner *r)
{
	time_t when, now = time(NULL);
	long secs = TIMER_MAX_SECS;
	if (queue_next_due(&when) == STORE_OK) {
		secs = when <= now ? 1 : (long)(when - now);
		if (secs > TIMER_MAX_SECS)
			secs = TIMER_MAX_SECS;
	}
	struct timeval tv = {.tv_sec = secs};
	event_add(r->timer_ev, &tv);
}

static void
scan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct runner *r = arg;
	if (!r->stopping)
		scan(r);
}

static void
scan_soon(struct runner *r)
{
	event_active(r->scan_ev, EV_TIMEOUT, 0);
}

/* From the writer thread after a commit that queued mail. */
static void
queue_notified(void *arg)
{
	struct runner *r = arg;
	event_active(r->scan_ev, EV_TIMEOUT, 0); /* thread-safe with evthread */
}

/* ---- DSN ---- */

static int
compose_dsn(struct job *j, bool delay, const char **msg_r, size_t *len_r)
{
	const struct config *cfg = j->r->cfg;
	time_t now = time(NULL);
	enum queue_outcome want = delay ? QUEUE_DELAY_WARNED : QUEUE_FAILED;
	struct dsn_rcpt *dr = arena_alloc(j->t.a, j->t.nrcpts * sizeof(*dr));
	size_t n = 0;

	for (size_t i = 0; i < j->t.nrcpts; i++) {
		const struct queue_item *it = &j->items[i];
		const struct queue_result *q = &j->results[i];
		if (q->outcome != want ||
		    !notify_allows(it->notify, delay ? QUEUE_NOTIFY_DELAY : QUEUE_NOTIFY_FAILURE))
			continue;
		dr[n] = (struct dsn_rcpt){
		    .address = it->address,
		    .orcpt = it->orcpt,
		    .action = delay ? DSN_ACTION_DELAYED : DSN_ACTION_FAILED,
		    .remote_mta = j->t.rcpts[i].code != 0 ? j->t.remote_host : NULL,
		    .diagnostic = q->reason,
		    .last_attempt = now,
		    .will_retry_until = delay ? it->created + (time_t)cfg->outbound_lifetime : 0,
		};
		n++;
	}
	if (n == 0)
		return 1; /* every recipient said NOTIFY=NEVER (or not this kind) */
	struct dsn_params p = {
	    .hostname = cfg->hostname,
	    .sender = j->sender,
	    .envid = j->t.envid,
	    .arrival = j->created,
	    .now = now,
	    .id = j->queue_id ^ log_new_id(),
	    .ret = j->t.ret,
	    .smtputf8 = j->t.smtputf8,
	};
	struct buf out;
	buf_init(&out, cfg->message_size_max * 2 + (1 << 20));
	const char *orig = j->t.msg != NULL ? j->t.msg : "";
	int r = dsn_compose(&p, dr, n, orig, j->t.msg_len, &out);
	if (r == 0) {
		*msg_r = arena_memdup(j->t.a, out.data, out.len);
		*len_r = out.len;
	}
	buf_free(&out);
	return r;
}

/* ---- admin requests ---- */

#define ADMIN_BOUNCE_REASON "5.0.0 deleted/bounced by the administrator"

struct admin_call {
	enum ob_admin_op op;
	uint64_t qid;
	struct ob_admin_answer *ans;
	struct queue_admin q;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void admin_answer(struct admin_call *c, enum ob_admin_status st, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* Completes the call (runner thread): the waiting thread goes on. */
static void
admin_answer(struct admin_call *c, enum ob_admin_status st, const char *fmt, ...)
{
	struct runner *r = runner;

	c->ans->status = st;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->ans->error, sizeof(c->ans->error), fmt, ap);
		va_end(ap);
	}
	if (r != NULL && r->admin_qid == c->qid)
		r->admin_qid = 0;
	pthread_mutex_lock(&c->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static const char *
admin_op_name(enum ob_admin_op op)
{
	switch (op) {
	case OB_ADMIN_HOLD:
		return "hold";
	case OB_ADMIN_RELEASE:
		return "release";
	case OB_ADMIN_RETRY:
		return "retry";
	case OB_ADMIN_DELETE:
		return "delete";
	case OB_ADMIN_BOUNCE:
		return "bounce";
	}
	return "?";
}

static void
admin_store_done(void *req, void *arg)
{
	struct admin_call *c = arg;
	struct runner *r = runner;
	int st = c->q.req.status;

	(void)req;
	if (st == STORE_NOTFOUND) {
		admin_answer(c, OB_ADMIN_NOT_FOUND, "no message %016" PRIx64 " in the queue",
			     c->qid);
		return;
	}
	if (st != STORE_OK) {
		admin_answer(c, OB_ADMIN_ERROR, "store: %s", store_strerror(st));
		return;
	}
	switch (c->q.result) {
	case QUEUE_ADMIN_NOT_HELD:
		admin_answer(c, OB_ADMIN_CONFLICT, "message %016" PRIx64 " is not held", c->qid);
		return;
	case QUEUE_ADMIN_IS_HELD:
		admin_answer(c, OB_ADMIN_CONFLICT,
			     "message %016" PRIx64 " is held: release it to deliver it", c->qid);
		return;
	case QUEUE_ADMIN_UNCHANGED:
		break;
	case QUEUE_ADMIN_DONE:
		c->ans->changed = true;
		break;
	}
	log_info(0, "outbound", "admin-%s queue_id=%016" PRIx64 " changed=%s in_flight=%s",
		 admin_op_name(c->op), c->qid, c->ans->changed ? "yes" : "no",
		 c->ans->in_flight ? "yes" : "no");
	admin_answer(c, OB_ADMIN_OK, NULL);
	/* Due now (the store's notify also wakes the scan; this covers a
	 * change that made nothing newly due in its eyes). */
	if (r != NULL && !r->stopping)
		scan_soon(r);
}

/* The bounce's update is recorded (update_done). */
static void
admin_bounce_done(struct job *j)
{
	struct admin_call *c = j->admin;

	j->admin = NULL;
	if (j->u.req.status != STORE_OK) {
		admin_answer(c, OB_ADMIN_ERROR, "store: %s", store_strerror(j->u.req.status));
		return;
	}
	/* A sender the directory could not look up turns the failures into
	 * a deferral (bounce_local_done): nothing was bounced. */
	for (size_t i = 0; i < j->t.nrcpts; i++) {
		if (j->results[i].outcome != QUEUE_FAILED) {
			admin_answer(c, OB_ADMIN_UNAVAILABLE,
				     "the directory cannot say who the sender is now: "
				     "nothing was bounced, try again");
			return;
		}
	}
	c->ans->changed = true;
	c->ans->dsn = j->u.ndsns > 0;
	c->ans->recipients = j->t.nrcpts;
	log_info(j->id, "outbound",
		 "admin-bounce queue_id=%016" PRIx64 " recipients=%zu dsn=%s sender=<%s>",
		 j->queue_id, j->t.nrcpts, c->ans->dsn ? "yes" : "no", j->sender);
	admin_answer(c, OB_ADMIN_OK, NULL);
}

/* Bounce: the pending recipients fail now as a permanent failure with
 * the administrator as the reason; the ordinary result path composes and
 * records the DSN (none for a null sender or NOTIFY=NEVER) in the same
 * transaction that takes the message out of the queue. */
static void
admin_bounce(struct runner *r, struct admin_call *c)
{
	struct arena *tmp = arena_new(0);
	struct queue_info info;
	int st = queue_get(c->qid, tmp, &info);

	if (st != STORE_OK) {
		if (st == STORE_NOTFOUND)
			admin_answer(c, OB_ADMIN_NOT_FOUND,
				     "no message %016" PRIx64 " in the queue", c->qid);
		else
			admin_answer(c, OB_ADMIN_ERROR, "store: %s", store_strerror(st));
		arena_destroy(&tmp);
		return;
	}
	struct job *j = NULL;
	time_t now = time(NULL);
	for (size_t i = 0; i < info.nrcpts; i++) {
		const struct queue_rcpt_info *ri = &info.rcpts[i];
		if (ri->state != QUEUE_RCPT_PENDING)
			continue;
		struct queue_item it = {
		    .queue_id = c->qid,
		    .rcpt_idx = ri->idx,
		    .sender = info.sender,
		    .address = ri->address,
		    .orcpt = ri->orcpt,
		    .envid = info.envid,
		    .notify = ri->notify,
		    .ret = info.ret,
		    .origin = info.origin,
		    .smtputf8 = info.smtputf8,
		    .eightbit = info.eightbit,
		    .requiretls = info.requiretls,
		    .delay_warned = ri->delay_warned,
		    .created = info.created,
		    .next_attempt = now,
		    .attempts = ri->attempts,
		    .last_error = ri->last_error,
		    .size = info.size,
		};
		if (j == NULL)
			j = job_new(r, &it);
		job_add_rcpt(j, &it);
	}
	arena_destroy(&tmp);
	if (j == NULL) {
		admin_answer(c, OB_ADMIN_CONFLICT,
			     "message %016" PRIx64 " has no pending recipient", c->qid);
		return;
	}
	struct buf b;
	buf_init(&b, r->cfg->message_size_max * 2 + (1 << 20));
	st = queue_message_read(c->qid, &b);
	if (st != STORE_OK) {
		buf_free(&b);
		struct arena *a = j->t.a;
		arena_destroy(&a);
		admin_answer(c, OB_ADMIN_ERROR, "the queued message could not be read: %s",
			     store_strerror(st));
		return;
	}
	j->t.msg = arena_memdup(j->t.a, b.data != NULL ? b.data : "", b.len);
	j->t.msg_len = b.len;
	buf_free(&b);
	for (size_t i = 0; i < j->t.nrcpts; i++) {
		fl_add(r, j->items[i].queue_id, j->items[i].rcpt_idx);
		j->t.rcpts[i].code = 550;
		j->t.rcpts[i].reply = ADMIN_BOUNCE_REASON;
	}
	j->admin = c;
	job_results(j);
}

static void
admin_on_thread(void *arg)
{
	struct admin_call *c = arg;
	struct runner *r = runner;

	if (r == NULL || r->stopping) {
		admin_answer(c, OB_ADMIN_UNAVAILABLE, "the queue runner is stopping");
		return;
	}
	c->ans->in_flight = qid_in_flight(r, c->qid);
	switch (c->op) {
	case OB_ADMIN_DELETE:
	case OB_ADMIN_BOUNCE:
		/* The attempt's result would come back for a message that is
		 * gone, and the far side may take it anyway: not now. */
		if (c->ans->in_flight) {
			admin_answer(c, OB_ADMIN_CONFLICT,
				     "a delivery attempt of message %016" PRIx64
				     " is in progress: try again in a moment",
				     c->qid);
			return;
		}
		if (c->op == OB_ADMIN_BOUNCE) {
			admin_bounce(r, c);
			return;
		}
		c->q.op = QUEUE_OP_DELETE;
		break;
	case OB_ADMIN_RETRY:
		if (c->ans->in_flight) {
			/* Being tried right now: that is what was asked. */
			admin_answer(c, OB_ADMIN_OK, NULL);
			return;
		}
		c->q.op = QUEUE_OP_RETRY;
		break;
	case OB_ADMIN_HOLD:
		/* Allowed in flight: the attempt may still deliver, but its
		 * result no longer makes the message due (queue.c). */
		c->q.op = QUEUE_OP_HOLD;
		break;
	case OB_ADMIN_RELEASE:
		c->q.op = QUEUE_OP_RELEASE;
		break;
	}
	r->admin_qid = c->qid;
	c->q.req.worker = r->w;
	c->q.req.done = admin_store_done;
	c->q.req.arg = c;
	c->q.req.a = NULL;
	c->q.queue_id = c->qid;
	c->q.now = time(NULL);
	queue_admin(&c->q);
}

void
ob_runner_admin(enum ob_admin_op op, uint64_t queue_id, struct ob_admin_answer *ans)
{
	struct runner *r = runner;
	struct admin_call c = {.op = op, .qid = queue_id, .ans = ans};

	memset(ans, 0, sizeof(*ans));
	if (r == NULL) {
		ans->status = OB_ADMIN_UNAVAILABLE;
		snprintf(ans->error, sizeof(ans->error), "the queue runner is not running");
		return;
	}
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	worker_post(r->w, admin_on_thread, &c);
	pthread_mutex_lock(&c.lock);
	while (!c.done)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
}

/* ---- start and stop ---- */

static void
start_on_thread(void *arg)
{
	struct runner *r = arg;
	queue_set_notify(queue_notified, r);
	scan(r);
}

int
outbound_start(const struct config *cfg, char **error_r)
{
	struct runner *r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->w = worker_solo_create();
	r->base = worker_base(r->w);
	if (ob_dns_new(r->base, cfg, &r->dns, error_r) < 0) {
		worker_solo_destroy(&r->w);
		free(r);
		return -1;
	}
	r->scan_ev = event_new(r->base, -1, 0, scan_cb, r);
	r->timer_ev = evtimer_new(r->base, scan_cb, r);
	if (r->scan_ev == NULL || r->timer_ev == NULL)
		fatal("libevent: cannot create the runner's events");
	runner = r;
	worker_solo_start(r->w);
	worker_post(r->w, start_on_thread, r);
	log_info(0, "outbound", "start relayhost=%s resolver=%s routes=%zu",
		 cfg->outbound_relay_host[0] != '\0' ? cfg->outbound_relay_host : "-",
		 cfg->dns_resolver_host[0] != '\0' ? cfg->dns_resolver_host : "system",
		 cfg->nroutes);
	return 0;
}

struct stop_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void
stop_on_thread(void *arg)
{
	struct stop_wait *sw = arg;
	struct runner *r = runner;

	r->stopping = true;
	queue_set_notify(NULL, NULL);
	/* Connections go at once; their recipients stay queued (in flight
	 * only in memory) and are due again after a restart. */
	for (struct dest *d = r->dests; d != NULL; d = d->next) {
		while (d->conns != NULL) {
			struct oconn *oc = d->conns;
			d->conns = oc->next;
			if (oc->job != NULL) {
				struct arena *a = oc->job->t.a;
				arena_destroy(&a);
			}
			ob_client_abort(oc->c);
			event_free(oc->idle_ev);
			free(oc);
		}
		while (d->pending != NULL) {
			struct job *j = d->pending;
			d->pending = j->next;
			struct arena *a = j->t.a;
			arena_destroy(&a);
		}
	}
	pthread_mutex_lock(&sw->lock);
	sw->done = true;
	pthread_cond_signal(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
}

void
outbound_stop(void)
{
	struct runner *r = runner;
	if (r == NULL)
		return;
	struct stop_wait sw = {.done = false};
	pthread_mutex_init(&sw.lock, NULL);
	pthread_cond_init(&sw.cond, NULL);
	worker_post(r->w, stop_on_thread, &sw);
	pthread_mutex_lock(&sw.lock);
	while (!sw.done)
		pthread_cond_wait(&sw.cond, &sw.lock);
	pthread_mutex_unlock(&sw.lock);
	pthread_cond_destroy(&sw.cond);
	pthread_mutex_destroy(&sw.lock);
	/* XXX queue updates and bounce lookups still running finish on the
	 * thread's late posts; the loop keeps running until they are done. */
	while (__atomic_load_n(&r->updates, __ATOMIC_SEQ_CST) > 0)
		usleep(10000);
	worker_solo_stop(r->w);
	ob_dns_free(&r->dns);
	event_free(r->scan_ev);
	event_free(r->timer_ev);
	worker_solo_destroy(&r->w);
	while (r->dests != NULL) {
		struct dest *d = r->dests;
		r->dests = d->next;
		arena_destroy(&d->tarena);
		free(d->targets);
		free(d->key);
		free(d->name);
		free(d);
	}
	ob_client_cleanup_tls();
	free(r->fl);
	free(r);
	runner = NULL;
}
