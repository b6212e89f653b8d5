/*
 * dir.c - the directory's public entry points (dir.h): recipient
 * resolution (users, local routing, list expansion) and authentication
 * (search the login, then bind as that DN), on top of dir_ldap.c's
 * operations, with dir_cache.c in front.
 *
 * Requests travel from workers to the directory thread through a
 * mutex-protected queue (the thread is woken by an eventfd); their
 * answers go back with worker_post() on the caller's worker, where the
 * result struct lives until the callback returns. Everything a request
 * allocates sits in its own arena, freed after the callback.
 *
 * How it fails: a directory that is down, slow or answers strangely gives
 * DIR_TEMPFAIL (never cached); "no such address" DIR_NOTFOUND; an address
 * two entries claim DIR_PERMFAIL; any login problem DIR_AUTHFAIL. A list
 * is resolved all or nothing: if one member read fails temporarily, the
 * whole answer is DIR_TEMPFAIL, so a sender retries rather than some
 * members silently missing the mail. Disabled or missing members, routing
 * loops and lists over max_list_members are skipped and logged. A list
 * with no deliverable member is DIR_OK with no users: the front end
 * decides what that means.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "directory/dir_cache.h"
#include "directory/dir_ldap.h"

#define CACHE_MAX_ENTRIES 100000
#define MAX_ROUTE_DEPTH 5
#define MAX_LIST_DEPTH 8
#define MAX_PARALLEL_READS 16 /* member reads in flight per request */
#define MAX_INPUT 512	      /* longest address or login we look up */
#define FILTER_MAX 8192

enum req_kind { RQ_RCPT, RQ_AUTH, RQ_ADDR };
enum purpose { P_ADDRESS, P_ROUTE, P_MEMBER, P_LOGIN, P_OWN, P_SENDAS };
#define MAX_SENDAS 256 /* entries a user may send as that we read */

/* Routing hops taken to reach an entry, for loop detection. */
struct chain {
	const char *dn;
	const struct chain *up;
};

struct pending_read {
	const char *dn;
	unsigned list_depth;
};

struct dreq {
	struct dreq *next; /* intake queue */
	enum req_kind kind;
	struct worker *w;
	dir_rcpt_cb *rcpt_cb;
	dir_auth_cb *auth_cb;
	dir_addr_cb *addr_cb;
	void *arg;
	struct arena *arena; /* owned: everything below that is a string */
	uint64_t generation; /* cache generation when it started */
	const char *key;     /* lower-case address or login */
	struct buf pw;	     /* auth: the password, wiped once sent */
	uint64_t deadline;
	int outstanding; /* operations in flight */
	enum dir_status fail;
	const char *error;
	bool truncated;
	/* Results (arrays malloc'd, strings in the arena). */
	struct dir_user *users;
	size_t nusers, capusers;
	const char **forwards;
	size_t nforwards, capforwards;
	/* Lists already expanded and users already routed (by DN). */
	const char **seen;
	size_t nseen, capseen;
	struct pending_read *pend;
	size_t npend, cappend, pendpos;
	size_t member_reads;
	bool have_user; /* auth: user known (cache) */
	bool is_list;	/* rcpt: the address itself is a list */
	/* RQ_ADDR: the user's own addresses and those it may send as
	 * (malloc'd arrays, strings in the arena). */
	const char **own, **sendas;
	size_t nown, capown, nsendas, capsendas;
};

struct rop {
	struct dir_op op; /* first: dir_op_done_fn gets &op */
	struct dreq *req;
	enum purpose purpose;
	unsigned route_depth, list_depth;
	bool in_list;
	const struct chain *chain;
};

static struct {
	const struct config *cfg; /* borrowed: outlives dir_stop */
	const struct directory_config *dc;
	struct dir_cache *cache; /* owned */
	char **attrs;		 /* owned, NULL-terminated */
	char **list_classes;	 /* owned */
	char **member_attrs;	 /* owned */
	char *enabled_prefix;	 /* "(&" or "" */
	char *enabled_suffix;	 /* "(!(disabled)))" or "" */
	char *member_filter;	 /* for member reads */
	pthread_mutex_t lock;	 /* protects the intake queue and running */
	struct dreq *head, *tail;
	bool running;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *
dir_strerror(int status)
{
	switch (status) {
	case DIR_OK:
		return "ok";
	case DIR_NOTFOUND:
		return "not found";
	case DIR_TEMPFAIL:
		return "directory temporarily unavailable";
	case DIR_AUTHFAIL:
		return "authentication failed";
	case DIR_PERMFAIL:
		return "directory error";
	default:
		return "unknown directory status";
	}
}

void
dir_cache_flush(void)
{
	if (S.cache != NULL)
		dir_cache_clear(S.cache);
}

/* ---- small helpers ---- */

static void
lower_ascii(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Splits a comma-separated list, trimming blanks; NULL-terminated. */
static char **
split_list(const char *s)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap, sizeof(*v));

	while (s != NULL && *s != '\0') {
		s += strspn(s, " \t,");
		size_t len = strcspn(s, ",");
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len > 0) {
			if (n + 1 >= cap) {
				cap *= 2;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = xstrndup(s, len);
		}
		s += strcspn(s, ",");
	}
	v[n] = NULL;
	return v;
}

static void
free_list(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

static const struct dir_ldap_attr *
get_attr(const struct dir_ldap_entry *e, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return NULL;
	for (size_t i = 0; i < e->nattrs; i++)
		if (strcasecmp(e->attrs[i].name, name) == 0 && e->attrs[i].nvals > 0)
			return &e->attrs[i];
	return NULL;
}

static bool
entry_is_list(const struct dir_ldap_entry *e)
{
	const struct dir_ldap_attr *oc = get_attr(e, "objectClass");

	if (oc == NULL)
		return false;
	for (size_t i = 0; i < oc->nvals; i++)
		for (char **c = S.list_classes; *c != NULL; c++)
			if (strcasecmp(oc->vals[i], *c) == 0)
				return true;
	return false;
}

static uint64_t
parse_quota(const char *v, const char *dn)
{
	uint64_t bytes;

	if (dir_ldap_parse_quota(v, S.dc->quota_unit, &bytes) < 0) {
		log_warn(0, "dir", "bad-quota dn=\"%s\" value=\"%.40s\"", dn, v);
		return 0;
	}
	return bytes;
}

/* Fills u from an entry; -1 if it has no stable id. */
static int
entry_to_user(struct dreq *r, const struct dir_ldap_entry *e, struct dir_user *u)
{
	const struct dir_ldap_attr *a;

	memset(u, 0, sizeof(*u));
	a = get_attr(e, S.dc->id_attr);
	if (a == NULL || a->lens[0] == 0)
		return -1;
	u->id = dir_ldap_format_id(r->arena, a->vals[0], a->lens[0]);
	u->dn = e->dn;
	a = get_attr(e, S.dc->login_attr);
	u->login = a != NULL ? a->vals[0] : "";
	a = get_attr(e, S.dc->mail_attr);
	if (a != NULL) {
		char *m = arena_strdup(r->arena, a->vals[0]);
		lower_ascii(m);
		u->mail = m;
	} else {
		u->mail = "";
	}
	a = get_attr(e, S.dc->quota_attr);
	u->quota = a != NULL ? parse_quota(a->vals[0], e->dn) : 0;
	return 0;
}

static bool
seen_has(struct dreq *r, const char *dn)
{
	for (size_t i = 0; i < r->nseen; i++)
		if (strcasecmp(r->seen[i], dn) == 0)
			return true;
	return false;
}

static void
seen_add(struct dreq *r, const char *dn)
{
	if (r->nseen == r->capseen) {
		r->capseen = r->capseen == 0 ? 8 : r->capseen * 2;
		r->seen = xrealloc(r->seen, r->capseen * sizeof(*r->seen));
	}
	r->seen[r->nseen++] = dn;
}

static void
req_fail(struct dreq *r, enum dir_status status, const char *error)
{
	if (r->fail == DIR_OK) {
		r->fail = status;
		r->error = error;
	}
	r->npend = r->pendpos = 0; /* start nothing more */
}

/* ---- results back to the worker ---- */

static void
req_free(struct dreq *r)
{
	buf_wipe(&r->pw);
	free(r->users);
	free(r->forwards);
	free(r->seen);
	free(r->pend);
	free(r->own);
	free(r->sendas);
	arena_destroy(&r->arena);
	free(r);
}

static void
deliver_rcpt(void *arg)
{
	struct dreq *r = arg;
	struct dir_rcpt_result res = {
	    .status = r->fail,
	    .users = r->fail == DIR_OK ? r->users : NULL,
	    .nusers = r->fail == DIR_OK ? r->nusers : 0,
	    .forwards = r->fail == DIR_OK ? r->forwards : NULL,
	    .nforwards = r->fail == DIR_OK ? r->nforwards : 0,
	    .error = r->error,
	    .is_list = r->fail == DIR_OK && r->is_list,
	};

	r->rcpt_cb(r->arg, &res);
	req_free(r);
}

static void
deliver_auth(void *arg)
{
	struct dreq *r = arg;
	struct dir_auth_result res = {
	    .status = r->fail,
	    .user = r->fail == DIR_OK && r->nusers == 1 ? &r->users[0] : NULL,
	    .error = r->error,
	};

	r->auth_cb(r->arg, &res);
	req_free(r);
}

static void
deliver_addr(void *arg)
{
	struct dreq *r = arg;
	struct dir_addr_result res = {
	    .status = r->fail,
	    .addresses = r->fail == DIR_OK ? r->own : NULL,
	    .naddresses = r->fail == DIR_OK ? r->nown : 0,
	    .sendas = r->fail == DIR_OK ? r->sendas : NULL,
	    .nsendas = r->fail == DIR_OK ? r->nsendas : 0,
	    .error = r->error,
	};

	r->addr_cb(r->arg, &res);
	req_free(r);
}

static void
req_post(struct dreq *r)
{
	buf_wipe(&r->pw);
	worker_post(r->w,
		    r->kind == RQ_RCPT	 ? deliver_rcpt
		    : r->kind == RQ_AUTH ? deliver_auth
					 : deliver_addr,
		    r);
}

/* ---- recipient resolution (directory thread) ---- */

static void
add_user(struct dreq *r, const struct dir_user *u)
{
	for (size_t i = 0; i < r->nusers; i++)
		if (strcmp(r->users[i].id, u->id) == 0)
			return;
	if (S.dc->max_list_members > 0 && r->nusers >= S.dc->max_list_members) {
		if (!r->truncated)
			log_warn(0, "dir", "list-truncated address=%s max_list_members=%u", r->key,
				 S.dc->max_list_members);
		r->truncated = true;
		return;
	}
	if (r->nusers == r->capusers) {
		r->capusers = r->capusers == 0 ? 4 : r->capusers * 2;
		r->users = xrealloc(r->users, r->capusers * sizeof(*r->users));
	}
	r->users[r->nusers++] = *u;
}

static void
add_forward(struct dreq *r, const char *addr)
{
	for (size_t i = 0; i < r->nforwards; i++)
		if (strcmp(r->forwards[i], addr) == 0)
			return;
	if (r->nforwards == r->capforwards) {
		r->capforwards = r->capforwards == 0 ? 4 : r->capforwards * 2;
		r->forwards = xrealloc(r->forwards, r->capforwards * sizeof(*r->forwards));
	}
	r->forwards[r->nforwards++] = addr;
}

static void rop_done(struct dir_op *op);
static void addr_op_done(struct dreq *r, struct rop *ro, struct dir_op *op);

static struct rop *
rop_new(struct dreq *r, enum purpose purpose)
{
	struct rop *ro = arena_alloc(r->arena, sizeof(*ro));

	ro->req = r;
	ro->purpose = purpose;
	ro->op.kind = DIR_OP_SEARCH;
	ro->op.attrs = S.attrs;
	ro->op.retries = 1; /* reads are idempotent */
	ro->op.deadline = r->deadline;
	ro->op.arena = r->arena;
	ro->op.done = rop_done;
	ro->op.owner = ro;
	buf_init(&ro->op.cred, 0);
	return ro;
}

static void
rop_submit(struct rop *ro)
{
	ro->req->outstanding++;
	dir_ldap_submit(&ro->op);
}

/* "(&" tmpl-with-value "(!(disabled)))" in the request's arena. */
static const char *
build_filter(struct dreq *r, const char *tmpl, char key, const char *value)
{
	struct buf b;
	const char *f = NULL;

	buf_init(&b, FILTER_MAX);
	bool wrap = tmpl[0] != '(';
	if (buf_append_str(&b, S.enabled_prefix) == 0 && (!wrap || buf_putc(&b, '(') == 0) &&
	    dir_filter_expand(tmpl, key, value, &b) == 0 && (!wrap || buf_putc(&b, ')') == 0) &&
	    buf_append_str(&b, S.enabled_suffix) == 0)
		f = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return f;
}

static void
search_address(struct dreq *r, const char *addr, enum purpose purpose, unsigned route_depth,
	       bool in_list, unsigned list_depth, const struct chain *chain)
{
	const char *filter = build_filter(r, S.dc->recipient_filter, 'a', addr);

	if (filter == NULL) {
		log_error(0, "dir", "bad-filter template=\"%s\"", S.dc->recipient_filter);
		req_fail(r, DIR_TEMPFAIL, "recipient_filter does not expand");
		return;
	}
	struct rop *ro = rop_new(r, purpose);
	ro->op.dn = S.dc->base;
	ro->op.scope = LDAP_SCOPE_SUBTREE;
	ro->op.filter = filter;
	ro->op.sizelimit = 2; /* two are enough to know it is ambiguous */
	ro->route_depth = route_depth;
	ro->list_depth = list_depth;
	ro->in_list = in_list;
	ro->chain = chain;
	rop_submit(ro);
}

static void
queue_member(struct dreq *r, const char *dn, unsigned list_depth)
{
	/* Each member is one read; bound them so a huge or looping set of
	 * lists cannot keep the directory busy. */
	size_t bound =
	    (size_t)(S.dc->max_list_members > 0 ? S.dc->max_list_members : 1000) * 2 + 64;

	if (r->fail != DIR_OK)
		return;
	if (r->member_reads >= bound) {
		if (!r->truncated)
			log_warn(0, "dir", "list-truncated address=%s reads=%zu", r->key,
				 r->member_reads);
		r->truncated = true;
		return;
	}
	r->member_reads++;
	if (r->npend == r->cappend) {
		r->cappend = r->cappend == 0 ? 16 : r->cappend * 2;
		r->pend = xrealloc(r->pend, r->cappend * sizeof(*r->pend));
	}
	r->pend[r->npend++] = (struct pending_read){.dn = dn, .list_depth = list_depth};
}

static void
pump_members(struct dreq *r)
{
	while (r->fail == DIR_OK && r->pendpos < r->npend && r->outstanding < MAX_PARALLEL_READS) {
		struct pending_read *p = &r->pend[r->pendpos++];
		struct rop *ro = rop_new(r, P_MEMBER);
		ro->op.dn = p->dn;
		ro->op.scope = LDAP_SCOPE_BASE;
		ro->op.filter = S.member_filter;
		ro->op.sizelimit = 1;
		ro->list_depth = p->list_depth;
		ro->in_list = true;
		rop_submit(ro);
	}
}

/* A problem with one part of the answer: inside a list that member is
 * skipped; otherwise it is the answer. */
static void
part_failed(struct dreq *r, const struct rop *ro, enum dir_status status, const char *error,
	    const char *what)
{
	if (ro->in_list) {
		log_info(0, "dir", "list-member-skipped address=%s member=\"%s\" reason=\"%s\"",
			 r->key, what, error);
		return;
	}
	req_fail(r, status, error);
}

static bool
entry_has_address(const struct dir_ldap_entry *e, const char *addr)
{
	const char *names[] = {S.dc->mail_attr, S.dc->alias_attr};

	for (size_t n = 0; n < ARRAY_SIZE(names); n++) {
		const struct dir_ldap_attr *a = get_attr(e, names[n]);
		for (size_t i = 0; a != NULL && i < a->nvals; i++)
			if (strcasecmp(a->vals[i], addr) == 0)
				return true;
	}
	return false;
}

static void
handle_entry(struct dreq *r, const struct rop *ro, const struct dir_ldap_entry *e)
{
	if (entry_is_list(e)) {
		if (ro->purpose == P_ADDRESS)
			r->is_list = true;
		if (seen_has(r, e->dn)) {
			log_info(0, "dir", "list-cycle address=%s list=\"%s\"", r->key, e->dn);
			return;
		}
		if (ro->list_depth >= MAX_LIST_DEPTH) {
			log_warn(0, "dir", "list-too-deep address=%s list=\"%s\"", r->key, e->dn);
			return;
		}
		seen_add(r, e->dn);
		for (char **m = S.member_attrs; *m != NULL; m++) {
			const struct dir_ldap_attr *a = get_attr(e, *m);
			for (size_t i = 0; a != NULL && i < a->nvals; i++)
				queue_member(r, a->vals[i], ro->list_depth + 1);
		}
		return;
	}

	const struct dir_ldap_attr *ra = get_attr(e, S.dc->routing_attr);
	if (ra != NULL && ra->vals[0][0] != '\0') {
		char *to = arena_strdup(r->arena, ra->vals[0]);
		lower_ascii(to);
		const char *at = strrchr(to, '@');
		bool loop = false;
		for (const struct chain *c = ro->chain; c != NULL; c = c->up)
			if (strcasecmp(c->dn, e->dn) == 0)
				loop = true;
		if (loop) {
			/* A -> B -> A: deliver to the entry where the loop
			 * closes rather than lose the message. */
			log_warn(0, "dir", "routing-loop address=%s dn=\"%s\"", r->key, e->dn);
		} else if (entry_has_address(e, to)) {
			/* Routed to one of its own addresses: delivered here. */
		} else if (at == NULL || !config_is_local_domain(S.cfg, at + 1)) {
			add_forward(r, to);
			return;
		} else if (ro->route_depth >= MAX_ROUTE_DEPTH) {
			log_warn(0, "dir", "routing-too-deep address=%s dn=\"%s\"", r->key, e->dn);
			part_failed(r, ro, DIR_PERMFAIL, "mail routing too deep", e->dn);
			return;
		} else {
			struct chain *c = arena_alloc(r->arena, sizeof(*c));
			c->dn = e->dn;
			c->up = ro->chain;
			search_address(r, to, P_ROUTE, ro->route_depth + 1, ro->in_list,
				       ro->list_depth, c);
			return;
		}
	}

	struct dir_user u;
	if (entry_to_user(r, e, &u) < 0) {
		log_warn(0, "dir", "entry-without-id address=%s dn=\"%s\" id_attr=%s", r->key,
			 e->dn, S.dc->id_attr);
		part_failed(r, ro, DIR_PERMFAIL, "entry has no stable id", e->dn);
		return;
	}
	add_user(r, &u);
}

static void
finish_rcpt(struct dreq *r)
{
	if (r->fail != DIR_TEMPFAIL) {
		/* A list is cached under its own prefix, so that a cached
		 * answer still says it came from a list (list_post). */
		char *key = arena_printf(r->arena, "%s:%s", r->is_list ? "l" : "r", r->key);
		dir_cache_put(S.cache, r->generation, key, r->fail, r->users, r->nusers,
			      r->forwards, r->nforwards);
	}
	req_post(r);
}

static void start_bind(struct dreq *r);
static void finish_auth(struct dreq *r);

static void
login_done(struct dreq *r, struct dir_op *op)
{
	if (r->fail != DIR_OK)
		return;
	if (op->rc != LDAP_SUCCESS && op->rc != LDAP_SIZELIMIT_EXCEEDED &&
	    op->rc != LDAP_NO_SUCH_OBJECT) {
		req_fail(r, DIR_TEMPFAIL, "directory search failed");
		return;
	}
	if (op->nseen == 0 || op->nentries == 0) {
		dir_cache_put(S.cache, r->generation, arena_printf(r->arena, "u:%s", r->key),
			      DIR_NOTFOUND, NULL, 0, NULL, 0);
		req_fail(r, DIR_AUTHFAIL, "unknown login");
		return;
	}
	if (op->nseen > 1) {
		log_warn(0, "dir", "login-ambiguous login=%s entries=%zu", r->key, op->nseen);
		req_fail(r, DIR_AUTHFAIL, "login matches several entries");
		return;
	}
	struct dir_user u;
	if (entry_to_user(r, &op->entries[0], &u) < 0) {
		log_warn(0, "dir", "entry-without-id login=%s dn=\"%s\" id_attr=%s", r->key,
			 op->entries[0].dn, S.dc->id_attr);
		req_fail(r, DIR_AUTHFAIL, "entry has no stable id");
		return;
	}
	add_user(r, &u);
	dir_cache_put(S.cache, r->generation, arena_printf(r->arena, "u:%s", r->key), DIR_OK,
		      r->users, 1, NULL, 0);
	r->have_user = true;
}

static void
rop_done(struct dir_op *op)
{
	struct rop *ro = op->owner;
	struct dreq *r = ro->req;

	if (ro->purpose == P_OWN || ro->purpose == P_SENDAS) {
		addr_op_done(r, ro, op);
		return;
	}
	if (ro->purpose == P_LOGIN) {
		r->outstanding--;
		login_done(r, op);
		if (r->fail == DIR_OK)
			start_bind(r);
		else
			finish_auth(r);
		return;
	}

	if (r->fail == DIR_OK) {
		bool ok_rc = op->rc == LDAP_SUCCESS || op->rc == LDAP_SIZELIMIT_EXCEEDED ||
			     op->rc == LDAP_NO_SUCH_OBJECT;
		if (!ok_rc && (ro->purpose != P_MEMBER || dir_ldap_rc_is_temporary(op->rc))) {
			req_fail(r, DIR_TEMPFAIL,
				 op->rc == LDAP_TIMEOUT ? "directory timeout"
							: "directory unavailable");
		} else if (!ok_rc) {
			/* e.g. invalidDNSyntax: a broken member value. */
			part_failed(r, ro, DIR_TEMPFAIL, ldap_err2string(op->rc), op->dn);
		} else if (op->nseen == 0) {
			if (ro->purpose == P_ADDRESS)
				req_fail(r, DIR_NOTFOUND, "no such address");
			else
				part_failed(r, ro, DIR_NOTFOUND,
					    ro->purpose == P_MEMBER ? "missing or disabled"
								    : "routing target not found",
					    ro->purpose == P_MEMBER ? op->dn : op->filter);
		} else if (op->nseen > 1 || op->nentries != 1) {
			log_warn(0, "dir", "ambiguous-address address=%s filter=\"%s\" entries=%zu",
				 r->key, op->filter, op->nseen);
			part_failed(r, ro, DIR_PERMFAIL, "address matches several entries",
				    op->filter);
		} else {
			handle_entry(r, ro, &op->entries[0]);
		}
	}
	/* This op still counts in outstanding until here, so work it started
	 * that completes at once cannot finish (and free) the request under
	 * us. */
	pump_members(r);
	if (--r->outstanding == 0)
		finish_rcpt(r);
}

/* ---- a user's addresses (directory thread) ---- */

static void
push_addr(struct dreq *r, const char ***v, size_t *n, size_t *cap, const char *addr)
{
	char *a = arena_strdup(r->arena, addr);

	lower_ascii(a);
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], a) == 0)
			return;
	if (*n == *cap) {
		*cap = *cap == 0 ? 8 : *cap * 2;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = a;
}

static void
addr_entry(struct dreq *r, const struct dir_ldap_entry *e, bool own)
{
	const char *names[] = {S.dc->mail_attr, S.dc->alias_attr};

	for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
		const struct dir_ldap_attr *a = get_attr(e, names[k]);
		for (size_t i = 0; a != NULL && i < a->nvals; i++) {
			const char *v = a->vals[i];
			if (v[0] == '\0' || strchr(v, '@') == NULL)
				continue;
			if (own)
				push_addr(r, &r->own, &r->nown, &r->capown, v);
			else
				push_addr(r, &r->sendas, &r->nsendas, &r->capsendas, v);
		}
	}
}

static void
addr_op_done(struct dreq *r, struct rop *ro, struct dir_op *op)
{
	r->outstanding--;
	if (r->fail == DIR_OK) {
		bool ok_rc = op->rc == LDAP_SUCCESS || op->rc == LDAP_SIZELIMIT_EXCEEDED;
		if (ro->purpose == P_OWN && op->rc == LDAP_NO_SUCH_OBJECT) {
			req_fail(r, DIR_NOTFOUND, "user entry gone");
		} else if (!ok_rc) {
			req_fail(r, DIR_TEMPFAIL,
				 op->rc == LDAP_TIMEOUT ? "directory timeout"
							: "directory unavailable");
		} else if (ro->purpose == P_OWN) {
			if (op->nentries != 1)
				req_fail(r, DIR_NOTFOUND, "user entry gone or disabled");
			else
				addr_entry(r, &op->entries[0], true);
		} else {
			if (op->rc == LDAP_SIZELIMIT_EXCEEDED)
				log_warn(0, "dir", "sendas-truncated dn=\"%s\" max=%d", r->key,
					 MAX_SENDAS);
			for (size_t i = 0; i < op->nentries; i++)
				addr_entry(r, &op->entries[i], false);
		}
	}
	if (r->outstanding == 0)
		req_post(r);
}

static void
start_addr(struct dreq *r)
{
	struct rop *ro = rop_new(r, P_OWN);

	/* The user's own entry, still enabled. */
	ro->op.dn = r->key;
	ro->op.scope = LDAP_SCOPE_BASE;
	ro->op.filter = S.member_filter;
	ro->op.sizelimit = 1;
	rop_submit(ro);
	if (S.dc->sendas_attr == NULL || S.dc->sendas_attr[0] == '\0')
		return;
	struct buf b;
	buf_init(&b, FILTER_MAX);
	const char *filter = NULL;
	if (buf_printf(&b, "(%s=", S.dc->sendas_attr) == 0 &&
	    dir_escape_filter_value(r->key, strlen(r->key), &b) == 0 && buf_putc(&b, ')') == 0)
		filter = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	if (filter == NULL) {
		req_fail(r, DIR_PERMFAIL, "user DN too long for a filter");
		return;
	}
	ro = rop_new(r, P_SENDAS);
	ro->op.dn = S.dc->base;
	ro->op.scope = LDAP_SCOPE_SUBTREE;
	ro->op.filter = filter;
	ro->op.sizelimit = MAX_SENDAS;
	ro->op.paged = true; /* a user may own more lists than a server's size limit */
	rop_submit(ro);
}

/* ---- authentication (directory thread) ---- */

static void
finish_auth(struct dreq *r)
{
	req_post(r);
}

static void
bind_done(struct dir_op *op)
{
	struct dreq *r = op->owner;

	r->outstanding--;
	switch (op->rc) {
	case LDAP_SUCCESS:
		break;
	case LDAP_INVALID_CREDENTIALS:
		/* AD says why in the diagnostic (data 52e, 775...). */
		log_info(0, "dir", "auth-failed login=%s dn=\"%s\" diag=\"%s\"", r->key, op->dn,
			 op->diag != NULL ? op->diag : "");
		req_fail(r, DIR_AUTHFAIL, "invalid credentials");
		break;
	default:
		if (dir_ldap_rc_is_temporary(op->rc)) {
			req_fail(r, DIR_TEMPFAIL, "directory unavailable");
		} else {
			log_warn(0, "dir",
				 "auth-refused login=%s dn=\"%s\" rc=%d error=\"%s\" diag=\"%s\"",
				 r->key, op->dn, op->rc, ldap_err2string(op->rc),
				 op->diag != NULL ? op->diag : "");
			req_fail(r, DIR_AUTHFAIL, "bind refused");
		}
		break;
	}
	finish_auth(r);
}

static void
start_bind(struct dreq *r)
{
	struct dir_op *op = arena_alloc(r->arena, sizeof(*op));

	op->kind = DIR_OP_BIND;
	op->dn = r->users[0].dn;
	/* The password moves into the op, which wipes it once sent. */
	op->cred = r->pw;
	buf_init(&r->pw, 0);
	op->deadline = r->deadline;
	op->arena = r->arena;
	op->done = bind_done;
	op->owner = r;
	r->outstanding++;
	dir_ldap_submit(op);
}

static void
start_auth(struct dreq *r)
{
	if (r->have_user) {
		start_bind(r);
		return;
	}
	const char *filter = build_filter(r, S.dc->user_filter, 'u', r->key);
	if (filter == NULL) {
		log_error(0, "dir", "bad-filter template=\"%s\"", S.dc->user_filter);
		req_fail(r, DIR_TEMPFAIL, "user_filter does not expand");
		finish_auth(r);
		return;
	}
	struct rop *ro = rop_new(r, P_LOGIN);
	ro->op.dn = S.dc->base;
	ro->op.scope = LDAP_SCOPE_SUBTREE;
	ro->op.filter = filter;
	ro->op.sizelimit = 2;
	rop_submit(ro);
}

/* ---- intake (directory thread) ---- */

static void
intake(void)
{
	pthread_mutex_lock(&S.lock);
	struct dreq *list = S.head;
	S.head = S.tail = NULL;
	pthread_mutex_unlock(&S.lock);

	while (list != NULL) {
		struct dreq *r = list;
		list = r->next;
		r->next = NULL;
		r->deadline =
		    dir_ldap_now() + (uint64_t)(S.dc->timeout > 0 ? S.dc->timeout : 5) * 1000;
		if (r->kind == RQ_RCPT) {
			/* Hold the request open while starting (see rop_done). */
			r->outstanding++;
			search_address(r, r->key, P_ADDRESS, 0, false, 0, NULL);
			if (--r->outstanding == 0)
				finish_rcpt(r);
		} else if (r->kind == RQ_ADDR) {
			start_addr(r);
		} else {
			start_auth(r);
		}
	}
}

/* ---- public API (any worker) ---- */

static struct dreq *
req_new(enum req_kind kind, struct worker *w, void *arg)
{
	struct dreq *r = xcalloc(1, sizeof(*r));

	r->kind = kind;
	r->w = w;
	r->arg = arg;
	r->arena = arena_new(0);
	buf_init(&r->pw, 4096);
	return r;
}

/* Hands r to the directory thread, or fails it at once when stopped. */
static void
req_enqueue(struct dreq *r)
{
	pthread_mutex_lock(&S.lock);
	bool running = S.running;
	if (running) {
		if (S.tail != NULL)
			S.tail->next = r;
		else
			S.head = r;
		S.tail = r;
	}
	pthread_mutex_unlock(&S.lock);
	if (running) {
		dir_ldap_wake();
	} else {
		req_fail(r, DIR_TEMPFAIL, "directory not running");
		req_post(r);
	}
}

static void
req_fill_from_cache(struct dreq *r, const struct dir_cache_value *v)
{
	r->fail = v->status;
	for (size_t i = 0; i < v->nusers; i++) {
		struct dir_user u = {
		    .id = arena_strdup(r->arena, v->users[i].id),
		    .dn = arena_strdup(r->arena, v->users[i].dn),
		    .login = arena_strdup(r->arena, v->users[i].login),
		    .mail = arena_strdup(r->arena, v->users[i].mail),
		    .quota = v->users[i].quota,
		};
		if (r->nusers == r->capusers) {
			r->capusers = r->capusers == 0 ? 4 : r->capusers * 2;
			r->users = xrealloc(r->users, r->capusers * sizeof(*r->users));
		}
		r->users[r->nusers++] = u;
	}
	for (size_t i = 0; i < v->nforwards; i++)
		add_forward(r, arena_strdup(r->arena, v->forwards[i]));
}

void
dir_resolve_rcpt(struct worker *w, const char *address, dir_rcpt_cb *cb, void *arg)
{
	struct dreq *r = req_new(RQ_RCPT, w, arg);
	struct dir_cache_value *v = NULL;

	r->rcpt_cb = cb;
	if (address[0] == '\0' || strlen(address) > MAX_INPUT) {
		req_fail(r, DIR_NOTFOUND, "address empty or too long");
		req_post(r);
		return;
	}
	char *key = arena_strdup(r->arena, address);
	lower_ascii(key);
	r->key = key;
	if (S.cache != NULL) {
		r->generation = dir_cache_generation(S.cache);
		bool hit = dir_cache_get(S.cache, arena_printf(r->arena, "r:%s", key), &v);
		if (!hit && dir_cache_get(S.cache, arena_printf(r->arena, "l:%s", key), &v)) {
			hit = true;
			r->is_list = true;
		}
		metric_inc(hit ? M_DIR_CACHE_HIT : M_DIR_CACHE_MISS);
		if (hit) {
			req_fill_from_cache(r, v);
			r->error = r->fail == DIR_OK ? NULL : "cached answer";
			dir_cache_value_free(v);
			req_post(r);
			return;
		}
	}
	req_enqueue(r);
}

void
dir_user_addresses(struct worker *w, const char *user_dn, dir_addr_cb *cb, void *arg)
{
	struct dreq *r = req_new(RQ_ADDR, w, arg);

	r->addr_cb = cb;
	if (user_dn == NULL || user_dn[0] == '\0') {
		req_fail(r, DIR_NOTFOUND, "no DN");
		req_post(r);
		return;
	}
	/* Not cached: asked once per authenticated session. */
	r->key = arena_strdup(r->arena, user_dn);
	req_enqueue(r);
}

void
dir_authenticate(struct worker *w, const char *login, const char *password, size_t pwlen,
		 dir_auth_cb *cb, void *arg)
{
	struct dreq *r = req_new(RQ_AUTH, w, arg);
	struct dir_cache_value *v = NULL;

	r->auth_cb = cb;
	/* An empty password is an unauthenticated bind to some servers
	 * (RFC 4513 5.1.2): refuse it before anything is sent. */
	if (pwlen == 0 || password == NULL || login == NULL || login[0] == '\0' ||
	    strlen(login) > MAX_INPUT) {
		req_fail(r, DIR_AUTHFAIL, pwlen == 0 ? "empty password" : "bad login");
		req_post(r);
		return;
	}
	if (buf_append(&r->pw, password, pwlen) < 0) {
		req_fail(r, DIR_AUTHFAIL, "password too long");
		req_post(r);
		return;
	}
	char *key = arena_strdup(r->arena, login);
	lower_ascii(key);
	r->key = key;
	if (S.cache != NULL) {
		r->generation = dir_cache_generation(S.cache);
		bool hit = dir_cache_get(S.cache, arena_printf(r->arena, "u:%s", key), &v);
		metric_inc(hit ? M_DIR_CACHE_HIT : M_DIR_CACHE_MISS);
		if (hit) {
			if (v->status == DIR_OK && v->nusers == 1) {
				req_fill_from_cache(r, v);
				r->have_user = true;
			} else {
				r->fail = DIR_AUTHFAIL;
				r->error = "unknown login (cached)";
			}
			dir_cache_value_free(v);
			if (r->fail != DIR_OK) {
				req_post(r);
				return;
			}
		}
	}
	req_enqueue(r);
}

/* ---- start and stop ---- */

static void
build_static(const struct directory_config *dc)
{
	const char *single[] = {"objectClass",	dc->id_attr,	  dc->login_attr, dc->mail_attr,
				dc->alias_attr, dc->routing_attr, dc->quota_attr};
	size_t cap = ARRAY_SIZE(single) + 8, n = 0;

	S.member_attrs = split_list(dc->member_attr);
	S.list_classes = split_list(dc->list_classes);
	S.attrs = xcalloc(cap, sizeof(*S.attrs));
	for (size_t i = 0; i < ARRAY_SIZE(single) + 64; i++) {
		const char *a;
		if (i < ARRAY_SIZE(single))
			a = single[i];
		else if (S.member_attrs[i - ARRAY_SIZE(single)] != NULL)
			a = S.member_attrs[i - ARRAY_SIZE(single)];
		else
			break;
		if (a == NULL || a[0] == '\0')
			continue;
		bool dup = false;
		for (size_t j = 0; j < n; j++)
			if (strcasecmp(S.attrs[j], a) == 0)
				dup = true;
		if (dup)
			continue;
		if (n + 1 >= cap) {
			cap *= 2;
			S.attrs = xrealloc(S.attrs, cap * sizeof(*S.attrs));
		}
		S.attrs[n++] = xstrdup(a);
	}
	S.attrs[n] = NULL;

	const char *d = dc->disabled_filter != NULL ? dc->disabled_filter : "";
	if (d[0] == '\0') {
		S.enabled_prefix = xstrdup("");
		S.enabled_suffix = xstrdup("");
		S.member_filter = xstrdup("(objectClass=*)");
	} else {
		bool wrap = d[0] != '(';
		S.enabled_prefix = xstrdup("(&");
		if (asprintf(&S.enabled_suffix, "(!%s%s%s))", wrap ? "(" : "", d, wrap ? ")" : "") <
			0 ||
		    asprintf(&S.member_filter, "(!%s%s%s)", wrap ? "(" : "", d, wrap ? ")" : "") <
			0)
			fatal("out of memory");
	}
}

static void
free_static(void)
{
	free_list(S.attrs);
	free_list(S.member_attrs);
	free_list(S.list_classes);
	free(S.enabled_prefix);
	free(S.enabled_suffix);
	free(S.member_filter);
	S.attrs = S.member_attrs = S.list_classes = NULL;
	S.enabled_prefix = S.enabled_suffix = S.member_filter = NULL;
}

int
dir_start(const struct config *cfg, char **error_r)
{
	const struct directory_config *dc = &cfg->dir;

	*error_r = NULL;
	S.cfg = cfg;
	S.dc = dc;
	if (dc->base == NULL || dc->recipient_filter == NULL || dc->user_filter == NULL ||
	    dc->id_attr == NULL || dc->id_attr[0] == '\0') {
		*error_r = xstrdup("[directory]: base, filters and id_attr are required");
		return -1;
	}
	/* A template that cannot expand would fail every request: say so at
	 * start-up instead. */
	struct buf b;
	buf_init(&b, FILTER_MAX);
	int bad_r = dir_filter_expand(dc->recipient_filter, 'a', "x@y", &b);
	buf_reset(&b);
	int bad_u = dir_filter_expand(dc->user_filter, 'u', "x", &b);
	buf_free(&b);
	if (bad_r < 0 || bad_u < 0) {
		if (asprintf(error_r, "[directory] %s: bad template (use %s, %%%% for %%)",
			     bad_r < 0 ? "recipient_filter" : "user_filter",
			     bad_r < 0 ? "%a" : "%u") < 0)
			*error_r = NULL;
		return -1;
	}
	build_static(dc);
	S.cache = dir_cache_new(CACHE_MAX_ENTRIES, dc->cache_ttl, dc->negative_ttl, NULL);
	pthread_mutex_lock(&S.lock);
	S.running = true;
	pthread_mutex_unlock(&S.lock);
	if (dir_ldap_start(cfg, intake, error_r) < 0) {
		pthread_mutex_lock(&S.lock);
		S.running = false;
		pthread_mutex_unlock(&S.lock);
		dir_cache_destroy(&S.cache);
		free_static();
		return -1;
	}
	log_info(0, "dir", "start uri=\"%s\" base=\"%s\" lookup_connections=%u auth_connections=%u",
		 dc->uri, dc->base, dc->lookup_connections, dc->auth_connections);
	return 0;
}

void
dir_stop(void)
{
	pthread_mutex_lock(&S.lock);
	bool was = S.running;
	pthread_mutex_unlock(&S.lock);
	if (!was)
		return;
	/* The thread's last intake happens after this, so a request that
	 * raced with stopping still gets its answer (TEMPFAIL). */
	dir_ldap_stop();
	pthread_mutex_lock(&S.lock);
	S.running = false;
	struct dreq *list = S.head;
	S.head = S.tail = NULL;
	pthread_mutex_unlock(&S.lock);
	while (list != NULL) {
		struct dreq *r = list;
		list = r->next;
		req_fail(r, DIR_TEMPFAIL, "directory stopped");
		req_post(r);
	}
	dir_cache_destroy(&S.cache);
	free_static();
}
