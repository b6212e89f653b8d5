/*
 * dmarc_job.c - DMARC aggregate reports in ternd (see dmarc_job.h): the
 * in-memory counts, the report job on its own thread (a solo worker, so
 * its DNS answers come back to its loop), the control commands and the
 * command line.
 *
 * How it fails: counts that cannot be written are logged as lost; a
 * report that cannot be composed or queued keeps its counts for the
 * next run; nothing here can hold up a delivery.
 */
#include <inttypes.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/control.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/worker.h"
#include "protocols/smtp/dkim.h"
#include "protocols/smtp/dmarc_job.h"
#include "storage/queue.h"

#define FLUSH_SECS 60	       /* counts reach the store at least this often */
#define AGG_MAX 65536	       /* distinct rows kept in memory between flushes */
#define REPORT_MAX (32u << 20) /* bytes of one report (XML, then message) */
#define CONTROL_WAIT_SECS 120  /* a control "dmarc.report" waits this long */

/* ---- the in-memory counts ---- */

struct agg_entry {
	struct agg_entry *next;
	uint64_t hash;
	int64_t when;
	uint64_t count;
	char *domain; /* the rest of the allocation */
	char *policy, *row;
	size_t policy_len, row_len;
};

static struct {
	pthread_mutex_t m;
	struct agg_entry **tab; /* chained; cap a power of two */
	size_t cap, n;
	uint64_t dropped; /* notes refused over AGG_MAX since the last flush */
} agg = {.m = PTHREAD_MUTEX_INITIALIZER};

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h;
}

static void
agg_grow(void)
{
	size_t cap = agg.cap == 0 ? 256 : agg.cap * 2;
	struct agg_entry **t = xcalloc(cap, sizeof(*t));
	for (size_t i = 0; i < agg.cap; i++) {
		for (struct agg_entry *e = agg.tab[i], *next; e != NULL; e = next) {
			next = e->next;
			e->next = t[e->hash & (cap - 1)];
			t[e->hash & (cap - 1)] = e;
		}
	}
	free(agg.tab);
	agg.tab = t;
	agg.cap = cap;
}

void
dmarc_report_note(const char *policy_domain, const struct dmarc_record *rec,
		  const struct dmarc_row *row)
{
	struct buf r, p;
	buf_init(&r, 16 * 1024);
	buf_init(&p, 8 * 1024);
	if (dmarc_row_encode(row, &r) < 0 || dmarc_policy_encode(rec, &p) < 0) {
		buf_free(&r);
		buf_free(&p);
		return;
	}
	size_t dl = strlen(policy_domain) + 1;
	uint64_t h = fnv(fnv(0xcbf29ce484222325ULL, policy_domain, dl), r.data, r.len);

	pthread_mutex_lock(&agg.m);
	struct agg_entry *e = NULL;
	if (agg.cap > 0) {
		for (e = agg.tab[h & (agg.cap - 1)]; e != NULL; e = e->next)
			if (e->hash == h && e->row_len == r.len &&
			    strcmp(e->domain, policy_domain) == 0 &&
			    memcmp(e->row, r.data, r.len) == 0)
				break;
	}
	if (e != NULL) {
		e->count++;
	} else if (agg.n >= AGG_MAX) {
		agg.dropped++;
	} else {
		if (agg.cap == 0 || agg.n * 4 >= agg.cap * 3)
			agg_grow();
		e = xmalloc(sizeof(*e) + dl + p.len + r.len);
		e->domain = (char *)(e + 1);
		memcpy(e->domain, policy_domain, dl);
		e->policy = e->domain + dl;
		memcpy(e->policy, p.data, p.len);
		e->policy_len = p.len;
		e->row = e->policy + p.len;
		memcpy(e->row, r.data, r.len);
		e->row_len = r.len;
		e->hash = h;
		e->count = 1;
		e->when = (int64_t)time(NULL);
		e->next = agg.tab[h & (agg.cap - 1)];
		agg.tab[h & (agg.cap - 1)] = e;
		agg.n++;
	}
	pthread_mutex_unlock(&agg.m);
	buf_free(&r);
	buf_free(&p);
}

int
dmarc_report_flush(void)
{
	pthread_mutex_lock(&agg.m);
	struct agg_entry **tab = agg.tab;
	size_t cap = agg.cap, n = agg.n;
	uint64_t dropped = agg.dropped;
	agg.tab = NULL;
	agg.cap = agg.n = 0;
	agg.dropped = 0;
	pthread_mutex_unlock(&agg.m);

	if (dropped > 0)
		log_warn(0, "dmarc",
			 "report-counts-dropped messages=%" PRIu64 " reason=too-many-rows",
			 dropped);
	if (n == 0) {
		free(tab);
		return STORE_OK;
	}
	struct store_dmarc_note *notes = xcalloc(n, sizeof(*notes));
	size_t k = 0;
	uint64_t msgs = 0;
	for (size_t i = 0; i < cap; i++) {
		for (struct agg_entry *e = tab[i]; e != NULL; e = e->next) {
			notes[k++] = (struct store_dmarc_note){
			    .domain = e->domain,
			    .policy = e->policy,
			    .policy_len = e->policy_len,
			    .row = e->row,
			    .row_len = e->row_len,
			    .count = e->count,
			    .when = e->when,
			};
			msgs += e->count;
		}
	}
	int st = store_dmarc_add_sync(notes, k);
	if (st != STORE_OK)
		log_warn(0, "dmarc",
			 "report-counts-lost rows=%zu messages=%" PRIu64 " error=\"%s\"", k, msgs,
			 store_strerror(st));
	for (size_t i = 0; i < cap; i++) {
		for (struct agg_entry *e = tab[i], *next; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(tab);
	free(notes);
	return st;
}

/* ---- composing ---- */

/* The report's metadata from the config, strings in a. */
static void
meta_fill(const struct config *cfg, struct arena *a, int64_t begin, int64_t end,
	  struct dmarc_report_meta *m)
{
	m->org_name = cfg->dmarc_org_name[0] != '\0' ? cfg->dmarc_org_name : cfg->hostname;
	m->email = cfg->dmarc_report_from[0] != '\0'
		       ? cfg->dmarc_report_from
		       : arena_printf(a, "dmarc-noreply@%s", cfg->hostname);
	m->receiver = strrchr(m->email, '@') + 1;
	/* a msg-id (RFC 5322 3.6.4), as the Subject's ABNF wants */
	m->report_id = arena_printf(a, "%" PRId64 ".%08x@%s", end, arc4random(), m->receiver);
	m->begin = begin;
	m->end = end;
}

/* The report message for d to the addresses in to, DKIM-signed with the
 * report address's domain key when [dkim] key_dir has one. */
static int
compose(const struct config *cfg, const struct dmarc_report_meta *m,
	const struct store_dmarc_domain *d, const char *const *to, size_t nto, struct buf *msg)
{
	struct buf xml, sig;
	const char *why = NULL, *sd = NULL;
	int rc = -1;

	buf_init(&xml, REPORT_MAX);
	buf_init(&sig, 16 * 1024);
	if (dmarc_report_xml(m, d, &xml, NULL) < 0 ||
	    dmarc_report_message(m, d->domain, to, nto, xml.data, xml.len, msg) < 0)
		goto out;
	const struct dkim_key *k = dkim_keyset_find(cfg->dkim_keys, m->receiver, &sd);
	if (k != NULL) {
		struct dkim_sign_params p = {
		    .domain = sd, .selector = cfg->dkim_selector, .t = (time_t)m->end};
		char *at;
		if (dkim_sign(k, &p, msg->data, msg->len, &sig, &why) == 0 &&
		    (at = buf_reserve(msg, sig.len)) != NULL) {
			memmove(msg->data + sig.len, msg->data, msg->len);
			memcpy(msg->data, sig.data, sig.len);
			buf_commit(msg, sig.len);
		} else {
			log_warn(0, "dmarc", "report-unsigned domain=%s reason=\"%s\"", d->domain,
				 why != NULL ? why : "too big");
		}
	}
	rc = 0;
out:
	buf_free(&xml);
	buf_free(&sig);
	return rc;
}

/* ---- the job ---- */

/* A control request waiting for a run. */
struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	json_t *answer; /* owned by the waiter once done */
};

enum dest_state { DEST_OK, DEST_CHECKING, DEST_REFUSED, DEST_TEMPFAIL };

struct dest {
	const char *address;
	enum dest_state state;
};

struct run_domain {
	struct store_dmarc_domain *d;
	struct dest dests[DMARC_RUA_MAX];
	size_t ndests;
};

struct check {
	struct run *run;
	struct dest *dest;
};

struct run {
	struct arena *a;
	struct config *cfg; /* acquired */
	struct run_domain *doms;
	size_t ndoms;
	size_t pending; /* DNS checks out */
	time_t end;
	struct waiter *waiter; /* or NULL: the timer's run */
	json_t *answer;
};

static struct {
	struct worker *w;
	struct event *timer;
	struct run *run;      /* in progress, or NULL */
	struct waiter *again; /* a control request that came during a run */
	time_t next_report;   /* 0: not scheduled yet */
	unsigned interval;    /* the one next_report was computed with */
	bool stopping;
} J;

static void waiter_finish(struct waiter *wt, json_t *answer);
static void run_start(struct waiter *wt);

static const char *
org_of(struct arena *a, const char *domain)
{
	return arena_strdup(a, dmarc_org_domain(domain));
}

/* One domain: its report, or its counts dropped (every destination
 * refused), or kept (none usable this time). */
static void
run_domain_finish(struct run *r, struct run_domain *rd)
{
	const char *to[DMARC_RUA_MAX];
	size_t nto = 0;
	bool tempfail = false;
	json_t *j = json_object();
	json_t *ja = json_array();

	for (size_t i = 0; i < rd->ndests; i++) {
		if (rd->dests[i].state == DEST_OK) {
			to[nto++] = rd->dests[i].address;
			json_array_append_new(ja, json_string(rd->dests[i].address));
		}
		tempfail |= rd->dests[i].state == DEST_TEMPFAIL;
	}
	json_object_set_new(j, "domain", json_string(rd->d->domain));
	json_object_set_new(j, "to", ja);
	json_array_append_new(json_object_get(r->answer, "domains"), j);
	if (nto == 0 && tempfail) {
		log_info(0, "dmarc",
			 "report-deferred domain=%s reason=\"DNS failure checking rua\"",
			 rd->d->domain);
		json_object_set_new(j, "result", json_string("deferred"));
		return;
	}
	struct dmarc_report_meta m;
	meta_fill(r->cfg, r->a, rd->d->begin, (int64_t)r->end, &m);
	if (nto == 0) {
		/* nowhere to send it: the counts go */
		int st = store_dmarc_sent_sync(rd->d, (int64_t)r->end, NULL);
		log_info(0, "dmarc", "report-dropped domain=%s reason=\"no usable rua\" status=%s",
			 rd->d->domain, store_strerror(st));
		json_object_set_new(j, "result", json_string("dropped"));
		return;
	}
	struct buf msg;
	buf_init(&msg, REPORT_MAX);
	if (compose(r->cfg, &m, rd->d, to, nto, &msg) < 0) {
		log_warn(0, "dmarc", "report-failed domain=%s reason=\"cannot compose\"",
			 rd->d->domain);
		json_object_set_new(j, "result", json_string("failed"));
		buf_free(&msg);
		return;
	}
	struct queue_rcpt_in *rc = arena_alloc(r->a, nto * sizeof(*rc));
	for (size_t i = 0; i < nto; i++)
		rc[i] = (struct queue_rcpt_in){.address = to[i]};
	struct queue_envelope env = {
	    .sender = m.email,
	    .origin = QUEUE_ORIGIN_REPORT,
	    .client = "[127.0.0.1] (dmarc report)",
	    .rcpts = rc,
	    .nrcpts = nto,
	};
	struct store_delivery dl = {
	    .body = msg.data,
	    .body_len = msg.len,
	    .internal_date = r->end,
	    .outbound = &env,
	};
	int st = store_dmarc_sent_sync(rd->d, (int64_t)r->end, &dl);
	if (st == STORE_OK) {
		log_info(0, "dmarc",
			 "report-queued domain=%s queue_id=%016" PRIx64
			 " rows=%zu to=%zu report_id=%s size=%zu",
			 rd->d->domain, env.queue_id, rd->d->nrows, nto, m.report_id, msg.len);
		json_object_set_new(j, "result", json_string("queued"));
		json_object_set_new(j, "queue_id",
				    json_string(arena_printf(r->a, "%016" PRIx64, env.queue_id)));
		json_object_set_new(j, "report_id", json_string(m.report_id));
	} else {
		log_warn(0, "dmarc", "report-failed domain=%s error=\"%s\"", rd->d->domain,
			 store_strerror(st));
		json_object_set_new(j, "result", json_string("failed"));
	}
	buf_free(&msg);
}

static void
run_finish(struct run *r)
{
	for (size_t i = 0; i < r->ndoms; i++)
		run_domain_finish(r, &r->doms[i]);
	J.run = NULL;
	if (r->waiter != NULL)
		waiter_finish(r->waiter, r->answer);
	else
		json_decref(r->answer);
	config_release(r->cfg);
	arena_destroy(&r->a);
	free(r);
	/* a control request that came meanwhile gets a run of its own */
	struct waiter *again = J.again;
	J.again = NULL;
	if (again != NULL && J.stopping)
		waiter_finish(again, NULL);
	else if (again != NULL)
		run_start(again);
}

static void
check_answered(void *arg, const struct dns_result *res)
{
	struct check *c = arg;
	struct dmarc_record rec;

	if (res->status == DNS_TEMPFAIL) {
		c->dest->state = DEST_TEMPFAIL;
	} else {
		/* 7.1: a record starting "v=DMARC1" authorizes the destination */
		c->dest->state = DEST_REFUSED;
		for (size_t i = 0; res->status == DNS_OK && i < res->n; i++)
			if (dmarc_record_parse(res->rr[i].text, res->rr[i].len, &rec) != -1)
				c->dest->state = DEST_OK;
	}
	log_info(0, "dmarc", "rua-check name=%s result=%s", res->name,
		 c->dest->state == DEST_OK	   ? "authorized"
		 : c->dest->state == DEST_TEMPFAIL ? "tempfail"
						   : "refused");
	if (--c->run->pending == 0)
		run_finish(c->run);
}

/* The destinations of one domain; external ones are checked (7.1). */
static void
run_domain_prepare(struct run *r, struct run_domain *rd)
{
	struct dmarc_published pub;
	const char *addrs[DMARC_RUA_MAX];

	if (dmarc_policy_decode(rd->d->policy, rd->d->policy_len, &pub) < 0)
		return;
	rd->ndests = dmarc_rua_mailto(pub.rua, r->a, addrs, DMARC_RUA_MAX);
	const char *org = org_of(r->a, rd->d->domain);
	for (size_t i = 0; i < rd->ndests; i++) {
		struct dest *de = &rd->dests[i];
		const char *dom = strrchr(addrs[i], '@') + 1;
		de->address = addrs[i];
		de->state = DEST_OK;
		if (strcmp(org_of(r->a, dom), org) == 0)
			continue;
		de->state = DEST_CHECKING;
		struct check *c = arena_alloc(r->a, sizeof(*c));
		c->run = r;
		c->dest = de;
		r->pending++;
		dns_lookup(J.w, arena_printf(r->a, "%s._report._dmarc.%s", rd->d->domain, dom),
			   DNS_T_TXT, check_answered, c);
	}
}

static void
run_start(struct waiter *wt)
{
	struct run *r = xcalloc(1, sizeof(*r));
	struct store_dmarc_domain *d;
	size_t n;

	r->a = arena_new(0);
	r->cfg = config_acquire();
	r->waiter = wt;
	r->answer = json_object();
	json_object_set_new(r->answer, "domains", json_array());
	J.run = r;
	(void)dmarc_report_flush();
	r->end = time(NULL);
	int st = store_dmarc_list(r->a, &d, &n);
	if (st != STORE_OK) {
		log_warn(0, "dmarc", "report-failed error=\"%s\"", store_strerror(st));
		n = 0;
	}
	r->doms = arena_alloc(r->a, (n + 1) * sizeof(*r->doms));
	r->ndoms = n;
	r->pending = 1; /* until every check is out */
	for (size_t i = 0; i < n; i++) {
		memset(&r->doms[i], 0, sizeof(r->doms[i]));
		r->doms[i].d = &d[i];
		run_domain_prepare(r, &r->doms[i]);
	}
	if (--r->pending == 0)
		run_finish(r);
}

static time_t
next_boundary(time_t now, unsigned interval)
{
	return (now / interval + 1) * interval;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct config *cfg = config_acquire();
	time_t now = time(NULL);

	(void)fd;
	(void)what;
	(void)arg;
	if (J.next_report == 0 || J.interval != cfg->dmarc_report_interval) {
		J.interval = cfg->dmarc_report_interval;
		J.next_report = next_boundary(now, J.interval);
	}
	if (cfg->dmarc_reports && now >= J.next_report && J.run == NULL) {
		J.next_report = next_boundary(now, J.interval);
		run_start(NULL);
	} else {
		(void)dmarc_report_flush();
	}
	time_t wait = J.next_report > now ? J.next_report - now : 1;
	struct timeval tv = {.tv_sec = wait < FLUSH_SECS ? wait : FLUSH_SECS};
	config_release(cfg);
	if (!J.stopping)
		evtimer_add(J.timer, &tv);
}

int
dmarc_job_start(char **error_r)
{
	(void)error_r;
	J.w = worker_solo_create();
	J.timer = evtimer_new(worker_base(J.w), tick, NULL);
	if (J.timer == NULL)
		fatal("libevent: cannot make the DMARC report timer");
	struct timeval tv = {.tv_sec = 1};
	evtimer_add(J.timer, &tv);
	worker_solo_start(J.w);
	return 0;
}

void
dmarc_job_stop(void)
{
	if (J.w == NULL)
		return;
	J.stopping = true;
	worker_solo_stop(J.w);
}

void
dmarc_job_free(void)
{
	if (J.w == NULL)
		return;
	/* late posts (DNS answers) run here; a run left waiting is dropped */
	worker_solo_destroy(&J.w);
	event_free(J.timer);
	J.timer = NULL;
	if (J.run != NULL) {
		struct run *r = J.run;
		J.run = NULL;
		if (r->waiter != NULL)
			waiter_finish(r->waiter, NULL);
		json_decref(r->answer);
		config_release(r->cfg);
		arena_destroy(&r->a);
		free(r);
	}
	if (J.again != NULL)
		waiter_finish(J.again, NULL);
	J.again = NULL;
	(void)dmarc_report_flush();
}

/* ---- control ---- */

static void
waiter_finish(struct waiter *wt, json_t *answer)
{
	pthread_mutex_lock(&wt->m);
	wt->answer = answer;
	wt->done = true;
	pthread_cond_broadcast(&wt->c);
	pthread_mutex_unlock(&wt->m);
}

/* On the job's loop. */
static void
run_now(void *arg)
{
	struct waiter *wt = arg;
	if (J.run != NULL && J.again == NULL)
		J.again = wt;
	else if (J.run != NULL)
		waiter_finish(wt, NULL);
	else
		run_start(wt);
}

static json_t *
ctl_flush(void *ctx, json_t *req, const char **code_r, char **error_r)
{
	(void)ctx;
	(void)req;
	int st = dmarc_report_flush();
	if (st == STORE_OK)
		return NULL;
	*code_r = CONTROL_E_UNAVAILABLE;
	xasprintf(error_r, "the counts could not be written: %s", store_strerror(st));
	return NULL;
}

static json_t *
ctl_report(void *ctx, json_t *req, const char **code_r, char **error_r)
{
	(void)ctx;
	(void)req;
	struct waiter *wt = xcalloc(1, sizeof(*wt));
	pthread_mutex_init(&wt->m, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wt->c, &ca);
	pthread_condattr_destroy(&ca);
	worker_post(J.w, run_now, wt);

	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += CONTROL_WAIT_SECS;
	pthread_mutex_lock(&wt->m);
	while (!wt->done && pthread_cond_timedwait(&wt->c, &wt->m, &until) == 0)
		;
	bool done = wt->done;
	json_t *answer = wt->answer;
	pthread_mutex_unlock(&wt->m);
	if (!done) {
		/* the run still holds wt: it is left to it (a small leak
		 * rather than a use after free) */
		*code_r = CONTROL_E_UNAVAILABLE;
		xasprintf(error_r, "the report run did not finish in %d seconds",
			  CONTROL_WAIT_SECS);
		return NULL;
	}
	pthread_mutex_destroy(&wt->m);
	pthread_cond_destroy(&wt->c);
	free(wt);
	if (answer == NULL) {
		*code_r = CONTROL_E_UNAVAILABLE;
		xasprintf(error_r, "a report run is in progress or ternd is stopping");
	}
	return answer;
}

void
dmarc_control_register(void)
{
	control_register("dmarc.flush", ctl_flush, NULL);
	control_register("dmarc.report", ctl_report, NULL);
}

/* ---- the command line ---- */

static int
dry_run(const struct config *cfg)
{
	json_t *req = json_pack("{s:s}", "cmd", "dmarc.flush"), *reply = NULL;
	char *err = NULL;
	int rc = control_call(cfg->state_dir, req, 30000, &reply, &err);
	json_decref(req);
	json_decref(reply);
	if (rc != CONTROL_OK && rc != CONTROL_NOT_RUNNING) {
		fprintf(stderr, "ternd dmarc-report: flush: %s\n", err);
		free(err);
		return 1;
	}
	free(err);
	err = NULL;

	struct arena *a = arena_new(0);
	struct store_dmarc_domain *d;
	size_t n;
	char *path = arena_printf(a, "%s/mail", cfg->state_dir);
	if (store_dmarc_list_path(path, a, &d, &n, &err) < 0) {
		fprintf(stderr, "ternd dmarc-report: %s\n", err);
		free(err);
		arena_destroy(&a);
		return 1;
	}
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct dmarc_report_meta m;
		struct dmarc_published pub;
		struct buf xml, fname;
		meta_fill(cfg, a, d[i].begin, now, &m);
		buf_init(&xml, REPORT_MAX);
		buf_init(&fname, 4096);
		if (dmarc_policy_decode(d[i].policy, d[i].policy_len, &pub) < 0 ||
		    dmarc_report_xml(&m, &d[i], &xml, NULL) < 0 ||
		    dmarc_report_filename(&m, d[i].domain, &fname) < 0) {
			fprintf(stderr, "ternd dmarc-report: %s: cannot build the report\n",
				d[i].domain);
		} else {
			printf("==> domain=%s rua=%s file=%s\n%s", d[i].domain, pub.rua,
			       buf_cstr(&fname), buf_cstr(&xml));
		}
		buf_free(&xml);
		buf_free(&fname);
	}
	if (n == 0)
		printf("no pending DMARC report data\n");
	arena_destroy(&a);
	return 0;
}

static int
send_now(const struct config *cfg)
{
	json_t *req = json_pack("{s:s}", "cmd", "dmarc.report"), *reply = NULL;
	char *err = NULL;
	int rc = control_call(cfg->state_dir, req, (CONTROL_WAIT_SECS + 10) * 1000, &reply, &err);
	json_decref(req);
	if (rc != CONTROL_OK) {
		fprintf(stderr, "ternd dmarc-report: %s%s\n", err,
			rc == CONTROL_NOT_RUNNING ? " (reports are sent by a running ternd)" : "");
		free(err);
		json_decref(reply);
		return 1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(reply, "domains"), i, v)
	{
		const char *qid = json_string_value(json_object_get(v, "queue_id"));
		printf("%s %s%s%s\n", json_string_value(json_object_get(v, "domain")),
		       json_string_value(json_object_get(v, "result")), qid != NULL ? " " : "",
		       qid != NULL ? qid : "");
	}
	json_decref(reply);
	return 0;
}

int
dmarc_report_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = NULL;
	bool dry = false;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:nh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'n':
			dry = true;
			break;
		default:
			fprintf(ch == 'h' ? stdout : stderr,
				"usage: ternd dmarc-report -c FILE [--dry-run]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (conf == NULL || optind != argc) {
		fprintf(stderr, "usage: ternd dmarc-report -c FILE [--dry-run]\n");
		return 2;
	}
	log_init(LOGL_WARN);
	char *err = NULL;
	struct config *cfg = config_load(conf, &err);
	if (cfg == NULL) {
		fprintf(stderr, "ternd dmarc-report: %s\n", err);
		free(err);
		return 2;
	}
	int rc = dry ? dry_run(cfg) : send_now(cfg);
	config_free(cfg);
	return rc;
}
