/*
 * dir.c - the directory's public entry points (dir.h): recipient
 * resolution (users, local routing, list expansion), authentication
 * (search the login, then bind as that DN) and finding a user without a
 * password (the same search, plus the SCRAM-SHA-256 verifier on request:
 * dir_scram.h), on top of dir_ldap.c's operations, with dir_cache.c in
 * front. Verifiers are never cached nor logged, and wiped once answered.
 *
 * Requests travel from workers to the directory thread through a
 * mutex-protected queue (the thread is woken by an eventfd); their
 * answers go back with worker_post() on the caller's worker, where the
 * result struct lives until the callback returns. Everything a request
 * allocates sits in its own arena, freed after the callback.
 *
 * How it fails: a directory that is down, slow or answers strangely gives
 * DIR_TEMPFAIL (never cached); "no such address" DIR_NOTFOUND; an address
 * two enabled entries claim DIR_CONFLICT (never cached, logged with both
 * DNs: delivered to neither); any login problem DIR_AUTHFAIL (a login two
 * entries match is logged with their DNs too). A list
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
#include "directory/dir_scram.h"
#include "directory/dir_shape.h"

#define CACHE_MAX_ENTRIES 100000
#define MAX_ROUTE_DEPTH 5
#define MAX_PARALLEL_READS 16 /* member reads in flight per request */
#define MAX_INPUT 512	      /* longest address or login we look up */
#define FILTER_MAX 8192

enum req_kind { RQ_RCPT, RQ_AUTH, RQ_ADDR, RQ_FIND, RQ_GROUPS };
/* P_MEMBER: one member (by DN, login or address; exactly one entry);
 * P_MEMBERS: a search whose every entry is a member (dynamic lists, the
 * in-chain rule). */
enum purpose { P_ADDRESS, P_ROUTE, P_MEMBER, P_MEMBERS, P_LOGIN, P_OWN, P_SENDAS, P_GROUPS };
/* Entries a search that must find one entry may return: more than one
 * so that a disabled entry sharing an address with an enabled one (an
 * old AD account keeping its proxyAddresses) does not hide it. */
#define SINGLE_SIZELIMIT 4
#define MAX_SENDAS 256	/* entries a user may send as that we read */
#define MAX_GROUPS 1000 /* groups of one user that we read */

/* Routing hops taken to reach an entry, for loop detection. */
struct chain {
	const char *dn;
	const struct chain *up;
};

/* A member read waiting for a slot: a base read of a DN, or a search
 * (scope subtree/one) for members by login, address, URL or filter. */
struct pending_read {
	const char *dn; /* DN to read, or search base */
	int scope;
	const char *filter; /* in the request's arena */
	bool many;	    /* P_MEMBERS: every entry found is a member */
	unsigned list_depth;
};

struct dreq {
	struct dreq *next; /* intake queue */
	enum req_kind kind;
	struct worker *w;
	dir_rcpt_cb *rcpt_cb;
	dir_auth_cb *auth_cb;
	dir_addr_cb *addr_cb;
	dir_find_cb *find_cb;
	dir_groups_cb *groups_cb;
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
	/* Lists already expanded (by DN), with the depth and size caps. */
	struct dir_walk walk;
	struct pending_read *pend;
	size_t npend, cappend, pendpos;
	size_t member_reads;
	bool have_user; /* auth: user known (cache) */
	bool is_list;	/* rcpt: the address itself is a list */
	/* RQ_ADDR: the user's own addresses and those it may send as
	 * (malloc'd arrays, strings in the arena). */
	const char **own, **sendas;
	size_t nown, capown, nsendas, capsendas;
	/* RQ_FIND: the attribute searched (NULL: the login), whether the
	 * verifier is wanted, and the one found (arena, wiped when done).
	 * RQ_GROUPS: find_attr is the login, for group_filter's %u. */
	const char *find_attr;
	bool want_scram;
	char *scram;
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
	char **scram_attrs;	 /* attrs and scram_attribute: dir_find_user's */
	char *group_attrs[2];	 /* group_name_attr: dir_user_groups' */
	char **list_classes;	 /* owned */
	char **member_attrs;	 /* owned */
	char *enabled_prefix;	 /* "(&" or "" */
	char *enabled_suffix;	 /* "(!(disabled)))" or "" */
	char *member_filter;	 /* for member reads */
	/* AD matching rules: known (config, or the rootDSE said), unknown
	 * until the rootDSE answers (the walk is used meanwhile). Directory
	 * thread only. */
	enum { RULES_UNKNOWN, RULES_YES, RULES_NO } ad_rules;
	bool rootdse_busy;
	uint64_t rootdse_retry_at;
	struct dir_op rootdse_op;
	struct arena *rootdse_arena;
	pthread_mutex_t lock; /* protects the intake queue and running */
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
	case DIR_CONFLICT:
		return "address claimed by several directory entries";
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

static void
free_list(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* Configured (a profile field may be "" for "not used"). */
static bool
attr_set(const char *name)
{
	return name != NULL && name[0] != '\0';
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

/* [directory] quota_messages_attr: a plain count of messages. */
static uint64_t
parse_count(const char *v, const char *dn)
{
	uint64_t n;

	if (dir_ldap_parse_quota(v, 1, &n) < 0) {
		log_warn(0, "dir", "bad-quota-messages dn=\"%s\" value=\"%.40s\"", dn, v);
		return 0;
	}
	return n;
}

/* Disabled by disabled_flags_attr ([directory] disabled_flags_mask bits
 * set)? Checked here rather than in the filter because the bitwise
 * matching rule exists only in AD (dir_shape.h); a value that is not a
 * number disables, so a broken entry fails closed. */
static bool
entry_disabled(const struct dir_ldap_entry *e)
{
	const struct dir_ldap_attr *a = get_attr(e, S.dc->disabled_flags_attr);

	if (a == NULL)
		return false;
	int set = dir_shape_flags_set(a->vals[0], S.dc->disabled_flags_mask);
	if (set < 0)
		log_warn(0, "dir", "bad-flags dn=\"%s\" attr=%s value=\"%.40s\"", e->dn,
			 S.dc->disabled_flags_attr, a->vals[0]);
	return set != 0;
}

/* The i-th proxy_attr value's SMTP address, lower-case, in the arena;
 * NULL for other types (X500:, SIP:...). */
static const char *
proxy_address(struct arena *arena, const struct dir_ldap_attr *a, size_t i, bool *primary_r)
{
	const char *addr;
	size_t len;

	if (dir_shape_proxy_address(a->vals[i], a->lens[i], &addr, &len, primary_r) != 1)
		return NULL;
	char *v = arena_alloc(arena, len + 1);
	memcpy(v, addr, len);
	v[len] = '\0';
	lower_ascii(v);
	return v;
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
	u->id = dir_shape_format_id(r->arena, S.dc->id_attr, a->vals[0], a->lens[0]);
	u->dn = e->dn;
	a = get_attr(e, S.dc->login_attr);
	u->login = a != NULL ? a->vals[0] : "";
	u->mail = "";
	/* The primary address: proxy_attr's "SMTP:" value (what Exchange
	 * replies from), else mail_attr. */
	a = get_attr(e, S.dc->proxy_attr);
	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		bool primary;
		const char *p = proxy_address(r->arena, a, i, &primary);
		if (p != NULL && primary) {
			u->mail = p;
			break;
		}
	}
	a = get_attr(e, S.dc->mail_attr);
	if (u->mail[0] == '\0' && a != NULL) {
		char *m = arena_strdup(r->arena, a->vals[0]);
		lower_ascii(m);
		u->mail = m;
	}
	a = get_attr(e, S.dc->quota_attr);
	u->quota = a != NULL ? parse_quota(a->vals[0], e->dn) : 0;
	a = get_attr(e, S.dc->junk_attr);
	u->no_junk = a != NULL &&
		     (strcasecmp(a->vals[0], "FALSE") == 0 || strcasecmp(a->vals[0], "no") == 0 ||
		      strcasecmp(a->vals[0], "off") == 0 || strcmp(a->vals[0], "0") == 0);
	a = get_attr(e, S.dc->quota_messages_attr);
	u->quota_messages = a != NULL ? parse_count(a->vals[0], e->dn) : 0;
	return 0;
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
	dir_walk_free(&r->walk);
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
deliver_find(void *arg)
{
	struct dreq *r = arg;
	/* The search path is dir_authenticate's: its "no such login" is
	 * our "not found". */
	enum dir_status st = r->fail == DIR_AUTHFAIL ? DIR_NOTFOUND : r->fail;
	struct dir_find_result res = {
	    .status = st,
	    .user = st == DIR_OK && r->nusers == 1 ? &r->users[0] : NULL,
	    .scram = st == DIR_OK ? r->scram : NULL,
	    .error = r->error,
	};

	if (st == DIR_OK && r->nusers != 1) {
		res.status = DIR_TEMPFAIL;
		res.error = "no user";
	}
	r->find_cb(r->arg, &res);
	if (r->scram != NULL)
		explicit_bzero(r->scram, strlen(r->scram));
	req_free(r);
}

static void
deliver_groups(void *arg)
{
	struct dreq *r = arg;
	struct dir_groups_result res = {
	    .status = r->fail,
	    .names = r->fail == DIR_OK ? r->forwards : NULL,
	    .nnames = r->fail == DIR_OK ? r->nforwards : 0,
	    .error = r->error,
	};

	r->groups_cb(r->arg, &res);
	req_free(r);
}

static void
req_post(struct dreq *r)
{
	static worker_fn *const deliver[] = {
	    [RQ_RCPT] = deliver_rcpt, [RQ_AUTH] = deliver_auth,	    [RQ_ADDR] = deliver_addr,
	    [RQ_FIND] = deliver_find, [RQ_GROUPS] = deliver_groups,
	};

	buf_wipe(&r->pw);
	worker_post(r->w, deliver[r->kind], r);
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
static void groups_op_done(struct dreq *r, struct dir_op *op);

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

/* "(&" raw "(!(disabled)))": a filter from the directory's own data (a
 * dynamic list's) or built by dir_shape, limited to enabled entries. */
static const char *
wrap_enabled(struct dreq *r, const char *raw)
{
	bool wrap = raw[0] != '(';

	return arena_printf(r->arena, "%s%s%s%s%s", S.enabled_prefix, wrap ? "(" : "", raw,
			    wrap ? ")" : "", S.enabled_suffix);
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
	ro->op.sizelimit = SINGLE_SIZELIMIT;
	ro->route_depth = route_depth;
	ro->list_depth = list_depth;
	ro->in_list = in_list;
	ro->chain = chain;
	rop_submit(ro);
}

static void
queue_read(struct dreq *r, const struct pending_read *p)
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
	r->pend[r->npend++] = *p;
}

static void
queue_member(struct dreq *r, const char *dn, unsigned list_depth)
{
	queue_read(r, &(struct pending_read){
			  .dn = dn, .scope = LDAP_SCOPE_BASE, .list_depth = list_depth});
}

/* A member found by a search: by login (posixGroup memberUid), by
 * address (rfc822MailMember), or all entries of a dynamic list. */
static void
queue_search(struct dreq *r, const char *base, int scope, const char *filter, bool many,
	     unsigned list_depth)
{
	queue_read(r, &(struct pending_read){.dn = base,
					     .scope = scope,
					     .filter = filter,
					     .many = many,
					     .list_depth = list_depth});
}

static void
pump_members(struct dreq *r)
{
	while (r->fail == DIR_OK && r->pendpos < r->npend && r->outstanding < MAX_PARALLEL_READS) {
		struct pending_read *p = &r->pend[r->pendpos++];
		struct rop *ro = rop_new(r, p->many ? P_MEMBERS : P_MEMBER);
		ro->op.dn = p->dn;
		ro->op.scope = p->scope;
		/* A copy: S.member_filter changes when the rootDSE answers. */
		ro->op.filter =
		    p->filter != NULL ? p->filter : arena_strdup(r->arena, S.member_filter);
		if (p->many) {
			unsigned max = S.dc->max_list_members > 0 ? S.dc->max_list_members : 1000;
			ro->op.sizelimit = (int)max + 1;
			/* A dynamic list may have more members than a server
			 * returns to one search (slapd sizelimit, AD MaxPageSize). */
			ro->op.paged = true;
		} else {
			ro->op.sizelimit = p->filter != NULL ? SINGLE_SIZELIMIT : 1;
		}
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
	const struct dir_ldap_attr *a = get_attr(e, S.dc->proxy_attr);
	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		const char *p;
		size_t len;
		bool primary;
		if (dir_shape_proxy_address(a->vals[i], a->lens[i], &p, &len, &primary) == 1 &&
		    strlen(addr) == len && strncasecmp(p, addr, len) == 0)
			return true;
	}
	return false;
}

/* Queues the reads that find a list's members, at depth. */
static void
expand_list(struct dreq *r, const struct dir_ldap_entry *e, unsigned depth)
{
	/* Member DNs. With AD's in-chain rule one search finds every
	 * non-list entry below this list, nested groups included;
	 * otherwise each member is read and nested lists walked here. */
	bool inchain = S.ad_rules == RULES_YES && attr_set(S.dc->member_of_attr);
	bool any_dn = false;
	for (char **m = S.member_attrs; *m != NULL; m++) {
		const struct dir_ldap_attr *a = get_attr(e, *m);
		any_dn = any_dn || a != NULL;
		for (size_t i = 0; !inchain && a != NULL && i < a->nvals; i++)
			queue_member(r, a->vals[i], depth);
	}
	if (inchain && any_dn) {
		struct buf b;
		buf_init(&b, FILTER_MAX);
		if (dir_shape_inchain_filter(&b, S.dc->member_of_attr, e->dn, S.list_classes) == 0)
			queue_search(r, S.dc->base, LDAP_SCOPE_SUBTREE,
				     wrap_enabled(r, buf_cstr(&b)), true, depth);
		else
			log_warn(0, "dir",
				 "list-skipped address=%s list=\"%s\" reason=\"DN too long\"",
				 r->key, e->dn);
		buf_free(&b);
	}

	/* Member logins (posixGroup memberUid): found like a login. */
	const struct dir_ldap_attr *a = get_attr(e, S.dc->member_uid_attr);
	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		const char *f = build_filter(r, S.dc->user_filter, 'u', a->vals[i]);
		if (f != NULL)
			queue_search(r, S.dc->base, LDAP_SCOPE_SUBTREE, f, false, depth);
	}

	/* Member addresses (nisMailAlias rfc822MailMember): local ones are
	 * resolved like any recipient, others forwarded. */
	a = get_attr(e, S.dc->member_address_attr);
	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		char *addr = arena_strdup(r->arena, a->vals[i]);
		lower_ascii(addr);
		const char *at = strrchr(addr, '@');
		if (at == NULL || at == addr || at[1] == '\0') {
			log_info(0, "dir",
				 "list-member-skipped address=%s member=\"%s\" "
				 "reason=\"not an address\"",
				 r->key, addr);
			continue;
		}
		if (!config_is_local_domain(S.cfg, at + 1)) {
			add_forward(r, addr);
			continue;
		}
		const char *f = build_filter(r, S.dc->recipient_filter, 'a', addr);
		if (f != NULL)
			queue_search(r, S.dc->base, LDAP_SCOPE_SUBTREE, f, false, depth);
	}

	/* Dynamic lists: members are the entries an LDAP URL (groupOfURLs
	 * memberURL) or a filter finds. The filters come from the
	 * directory's own data, written by its administrators. */
	a = get_attr(e, S.dc->member_url_attr);
	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		const char *base, *filter, *why;
		int scope;
		if (dir_shape_member_url(r->arena, a->vals[i], S.dc->base, &base, &scope, &filter,
					 &why) < 0) {
			log_warn(0, "dir",
				 "list-url-skipped address=%s list=\"%s\" url=\"%.200s\" "
				 "reason=\"%s\"",
				 r->key, e->dn, a->vals[i], why);
			continue;
		}
		queue_search(r, base, scope, wrap_enabled(r, filter), true, depth);
	}
	a = get_attr(e, S.dc->member_query_attr);
	for (size_t i = 0; a != NULL && i < a->nvals; i++)
		queue_search(r, S.dc->base, LDAP_SCOPE_SUBTREE, wrap_enabled(r, a->vals[i]), true,
			     depth);
}

static void
handle_entry(struct dreq *r, const struct rop *ro, const struct dir_ldap_entry *e)
{
	if (entry_disabled(e)) {
		part_failed(r, ro, DIR_NOTFOUND, "disabled", e->dn);
		return;
	}
	if (entry_is_list(e)) {
		if (ro->purpose == P_ADDRESS)
			r->is_list = true;
		switch (dir_walk_enter(&r->walk, e->dn, ro->list_depth)) {
		case DIR_WALK_ENTER:
			expand_list(r, e, ro->list_depth + 1);
			break;
		case DIR_WALK_CYCLE:
			log_info(0, "dir", "list-cycle address=%s list=\"%s\"", r->key, e->dn);
			break;
		case DIR_WALK_TOO_DEEP:
			log_warn(0, "dir", "list-too-deep address=%s list=\"%s\" max_list_depth=%u",
				 r->key, e->dn, S.dc->max_list_depth);
			break;
		case DIR_WALK_FULL:
			if (!r->truncated)
				log_warn(0, "dir", "list-truncated address=%s lists=%zu", r->key,
					 r->walk.nseen);
			r->truncated = true;
			break;
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
	if (r->fail != DIR_TEMPFAIL && r->fail != DIR_CONFLICT) {
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

/* Of a search that must find one entry: the enabled entry (NULL if
 * none), how many of the kept entries are enabled, and whether the
 * server had more than it sent (so the answer is ambiguous anyway). */
static const struct dir_ldap_entry *
pick_enabled(const struct dir_op *op, size_t *enabled_r, bool *more_r)
{
	const struct dir_ldap_entry *one = NULL;

	*enabled_r = 0;
	*more_r = op->rc == LDAP_SIZELIMIT_EXCEEDED || op->nseen > op->nentries;
	for (size_t i = 0; i < op->nentries; i++) {
		if (entry_disabled(&op->entries[i]))
			continue;
		(*enabled_r)++;
		one = &op->entries[i];
	}
	return one;
}

/* The DNs of a search's enabled entries, "dn1" "dn2", for the log line
 * that tells the admin which entries to fix; "..." when the server had
 * more than it sent. */
static const char *
enabled_dns(struct dreq *r, const struct dir_op *op, bool more)
{
	struct buf b;

	buf_init(&b, 2048);
	for (size_t i = 0; i < op->nentries; i++) {
		if (entry_disabled(&op->entries[i]))
			continue;
		(void)buf_printf(&b, "%s\"%s\"", b.len > 0 ? " " : "", op->entries[i].dn);
	}
	if (more)
		(void)buf_append_str(&b, " ...");
	const char *s = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	return s;
}

/* The answer to the search for one user (dir_authenticate's, and
 * dir_find_user's by login or attribute): the entry, or NULL with r
 * failed (DIR_AUTHFAIL for none, disabled or several; DIR_TEMPFAIL).
 * Only login searches are cached (key "u:" + login). */
static const struct dir_ldap_entry *
login_done(struct dreq *r, struct dir_op *op)
{
	/* What was looked up, for the logs: "login=alice", "mail=a@b". */
	const char *label = r->find_attr != NULL ? r->find_attr : "login";
	const char *cache_key =
	    r->find_attr == NULL ? arena_printf(r->arena, "u:%s", r->key) : NULL;

	if (r->fail != DIR_OK)
		return NULL;
	if (op->rc != LDAP_SUCCESS && op->rc != LDAP_SIZELIMIT_EXCEEDED &&
	    op->rc != LDAP_NO_SUCH_OBJECT) {
		req_fail(r, DIR_TEMPFAIL, "directory search failed");
		return NULL;
	}
	bool more;
	size_t enabled;
	const struct dir_ldap_entry *e = pick_enabled(op, &enabled, &more);
	if (op->nseen == 0 || op->nentries == 0 || (enabled == 0 && !more)) {
		if (cache_key != NULL)
			dir_cache_put(S.cache, r->generation, cache_key, DIR_NOTFOUND, NULL, 0,
				      NULL, 0);
		req_fail(r, DIR_AUTHFAIL, op->nseen == 0 ? "unknown login" : "account disabled");
		return NULL;
	}
	if (enabled > 1 || more) {
		/* Binding as either could let one person into the other's
		 * mailbox: refused until the directory is fixed. */
		log_warn(0, "dir", "login-ambiguous %s=%s entries=%zu dns=[%s]", label, r->key,
			 op->nseen, enabled_dns(r, op, more));
		req_fail(r, DIR_AUTHFAIL, "login matches several entries");
		return NULL;
	}
	struct dir_user u;
	if (entry_to_user(r, e, &u) < 0) {
		log_warn(0, "dir", "entry-without-id %s=%s dn=\"%s\" id_attr=%s", label, r->key,
			 e->dn, S.dc->id_attr);
		req_fail(r, DIR_AUTHFAIL, "entry has no stable id");
		return NULL;
	}
	add_user(r, &u);
	if (cache_key != NULL)
		dir_cache_put(S.cache, r->generation, cache_key, DIR_OK, r->users, 1, NULL, 0);
	r->have_user = true;
	return e;
}

/* ---- finding a user without a password (directory thread) ---- */

/* The first usable verifier of scram_attribute into r->scram (the raw
 * values are wiped afterwards: wipe_scram_values). */
static void
find_scram(struct dreq *r, const struct dir_ldap_entry *e)
{
	const char *name = S.dc->scram_attr;
	const struct dir_ldap_attr *a = get_attr(e, name);
	bool userpassword = name != NULL && strcasecmp(name, "userPassword") == 0;
	size_t bad = 0;

	for (size_t i = 0; a != NULL && i < a->nvals; i++) {
		const char *out, *why;
		int rc = r->scram == NULL ? dir_scram_parse(r->arena, a->vals[i], a->lens[i],
							    userpassword, &out, &why)
					  : 0;
		if (rc == 1)
			r->scram = (char *)out;
		else if (rc < 0 && bad++ == 0)
			/* Never the value: only what is wrong with it. */
			log_warn(0, "dir", "scram-verifier-invalid dn=\"%s\" attr=%s why=\"%s\"",
				 e->dn, name, why);
	}
	if (r->scram == NULL)
		log_info(0, "dir", "scram-verifier-none dn=\"%s\" attr=%s values=%zu", e->dn,
			 attr_set(name) ? name : "(none)", a != NULL ? a->nvals : 0);
}

/* Every entry's scram_attribute values, also those of entries not used
 * (several matched): the arena is freed without wiping. */
static void
wipe_scram_values(struct dir_op *op)
{
	for (size_t i = 0; i < op->nentries; i++) {
		const struct dir_ldap_attr *a = get_attr(&op->entries[i], S.dc->scram_attr);
		for (size_t j = 0; a != NULL && j < a->nvals; j++)
			explicit_bzero(a->vals[j], a->lens[j]);
	}
}

static void
finish_find(struct dreq *r)
{
	if (r->fail != DIR_OK)
		log_info(0, "dir", "find-failed %s=%s status=%s why=\"%s\"",
			 r->find_attr != NULL ? r->find_attr : "login", r->key,
			 dir_strerror(r->fail == DIR_AUTHFAIL ? DIR_NOTFOUND : r->fail),
			 r->error != NULL ? r->error : "");
	req_post(r);
}

/* "(&" user_filter-for-any-user "(attr=value)" "(!(disabled)))". */
static const char *
attr_filter(struct dreq *r)
{
	struct buf b;
	const char *f = NULL;

	buf_init(&b, FILTER_MAX);
	if (buf_append_str(&b, "(&") == 0 &&
	    dir_filter_expand_any(S.dc->user_filter, 'u', &b) == 0 &&
	    buf_printf(&b, "(%s=", r->find_attr) == 0 &&
	    dir_escape_filter_value(r->key, strlen(r->key), &b) == 0 &&
	    buf_append_str(&b, "))") == 0)
		f = wrap_enabled(r, buf_cstr(&b));
	buf_free(&b);
	return f;
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
	if (ro->purpose == P_GROUPS) {
		groups_op_done(r, op);
		return;
	}
	if (ro->purpose == P_LOGIN) {
		r->outstanding--;
		const struct dir_ldap_entry *e = login_done(r, op);
		if (r->kind == RQ_FIND) {
			if (e != NULL && r->want_scram)
				find_scram(r, e);
			if (r->want_scram)
				wipe_scram_values(op);
			finish_find(r);
		} else if (r->fail == DIR_OK)
			start_bind(r);
		else
			finish_auth(r);
		return;
	}

	if (r->fail == DIR_OK) {
		bool ok_rc = op->rc == LDAP_SUCCESS || op->rc == LDAP_SIZELIMIT_EXCEEDED ||
			     op->rc == LDAP_NO_SUCH_OBJECT;
		bool member = ro->purpose == P_MEMBER || ro->purpose == P_MEMBERS;
		bool more = false;
		size_t enabled = 0;
		const struct dir_ldap_entry *one = NULL;
		if (ok_rc && ro->purpose != P_MEMBERS)
			one = pick_enabled(op, &enabled, &more);
		/* What a member search was about, for the logs. */
		const char *what = op->scope == LDAP_SCOPE_BASE ? op->dn : op->filter;
		if (!ok_rc && (!member || dir_ldap_rc_is_temporary(op->rc))) {
			req_fail(r, DIR_TEMPFAIL,
				 op->rc == LDAP_TIMEOUT ? "directory timeout"
							: "directory unavailable");
		} else if (!ok_rc) {
			/* e.g. invalidDNSyntax: a broken member value. */
			part_failed(r, ro, DIR_TEMPFAIL, ldap_err2string(op->rc), what);
		} else if (ro->purpose == P_MEMBERS) {
			if (op->rc == LDAP_SIZELIMIT_EXCEEDED || op->nseen > op->nentries) {
				if (!r->truncated)
					log_warn(0, "dir",
						 "list-truncated address=%s filter=\"%s\" "
						 "max_list_members=%u",
						 r->key, op->filter, S.dc->max_list_members);
				r->truncated = true;
			}
			for (size_t i = 0; i < op->nentries && r->fail == DIR_OK; i++)
				handle_entry(r, ro, &op->entries[i]);
		} else if (op->nseen == 0 || (enabled == 0 && !more)) {
			const char *why = op->nseen > 0		     ? "disabled"
					  : member		     ? "missing or disabled"
					  : ro->purpose == P_ADDRESS ? "no such address"
								     : "routing target not found";
			if (ro->purpose == P_ADDRESS)
				req_fail(r, DIR_NOTFOUND, why);
			else
				part_failed(r, ro, DIR_NOTFOUND, why, member ? what : op->filter);
		} else if (enabled > 1 || more) {
			/* Never guess which of two owners gets the mail. */
			const char *dns = enabled_dns(r, op, more);
			log_warn(0, "dir",
				 "ambiguous-address address=%s filter=\"%s\" entries=%zu dns=[%s]",
				 r->key, op->filter, op->nseen, dns);
			part_failed(r, ro, DIR_CONFLICT,
				    arena_printf(r->arena,
						 "address claimed by several directory entries: %s",
						 dns),
				    op->filter);
		} else {
			handle_entry(r, ro, one);
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
	const char *names[] = {S.dc->mail_attr, S.dc->alias_attr, S.dc->proxy_attr};

	for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
		const struct dir_ldap_attr *a = get_attr(e, names[k]);
		for (size_t i = 0; a != NULL && i < a->nvals; i++) {
			const char *v = a->vals[i];
			bool primary;
			if (k == 2 && (v = proxy_address(r->arena, a, i, &primary)) == NULL)
				continue; /* not an SMTP address */
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
			if (op->nentries != 1 || entry_disabled(&op->entries[0]))
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
	ro->op.filter = arena_strdup(r->arena, S.member_filter);
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

/* ---- a user's groups (directory thread) ---- */

static void
groups_op_done(struct dreq *r, struct dir_op *op)
{
	r->outstanding--;
	if (op->rc != LDAP_SUCCESS && op->rc != LDAP_SIZELIMIT_EXCEEDED &&
	    op->rc != LDAP_NO_SUCH_OBJECT) {
		req_fail(r, DIR_TEMPFAIL,
			 op->rc == LDAP_TIMEOUT ? "directory timeout" : "directory unavailable");
	} else {
		if (op->rc == LDAP_SIZELIMIT_EXCEEDED)
			log_warn(0, "dir", "groups-truncated dn=\"%s\" max=%d", r->key, MAX_GROUPS);
		for (size_t i = 0; i < op->nentries; i++) {
			const struct dir_ldap_attr *a = get_attr(&op->entries[i], S.group_attrs[0]);
			for (size_t j = 0; a != NULL && j < a->nvals; j++)
				if (a->vals[j][0] != '\0')
					add_forward(r, a->vals[j]);
		}
		dir_cache_put(S.cache, r->generation, arena_printf(r->arena, "g:%s", r->key),
			      DIR_OK, NULL, 0, r->forwards, r->nforwards);
	}
	req_post(r);
}

static void
start_groups(struct dreq *r)
{
	struct buf b;
	const char *filter = NULL;

	buf_init(&b, FILTER_MAX);
	if (dir_filter_expand2(S.dc->group_filter, 'd', r->key, 'u',
			       r->find_attr != NULL ? r->find_attr : "", &b) == 0)
		filter = arena_strdup(r->arena, buf_cstr(&b));
	buf_free(&b);
	if (filter == NULL) {
		log_error(0, "dir", "bad-filter template=\"%s\"", S.dc->group_filter);
		req_fail(r, DIR_PERMFAIL, "group_filter does not expand");
		req_post(r);
		return;
	}
	struct rop *ro = rop_new(r, P_GROUPS);
	ro->op.dn = S.dc->base;
	ro->op.scope = LDAP_SCOPE_SUBTREE;
	ro->op.filter = filter;
	ro->op.attrs = S.group_attrs;
	ro->op.sizelimit = MAX_GROUPS;
	ro->op.paged = true;
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

/* The search for one user: by login (user_filter), or for
 * dir_find_user by an attribute; login_done gets the answer. */
static void
start_login_search(struct dreq *r)
{
	const char *filter =
	    r->find_attr != NULL ? attr_filter(r) : build_filter(r, S.dc->user_filter, 'u', r->key);
	if (filter == NULL) {
		log_error(0, "dir", "bad-filter template=\"%s\"", S.dc->user_filter);
		req_fail(r, DIR_TEMPFAIL, "user_filter does not expand");
		if (r->kind == RQ_FIND)
			finish_find(r);
		else
			finish_auth(r);
		return;
	}
	struct rop *ro = rop_new(r, P_LOGIN);
	ro->op.dn = S.dc->base;
	ro->op.scope = LDAP_SCOPE_SUBTREE;
	ro->op.filter = filter;
	ro->op.sizelimit = SINGLE_SIZELIMIT;
	if (r->want_scram)
		ro->op.attrs = S.scram_attrs;
	rop_submit(ro);
}

static void
start_auth(struct dreq *r)
{
	if (r->have_user) {
		start_bind(r);
		return;
	}
	start_login_search(r);
}

/* ---- AD matching rules: what the rootDSE says (directory thread) ---- */

static void build_enabled(void);

static void
rootdse_done(struct dir_op *op)
{
	S.rootdse_busy = false;
	if (op->rc != LDAP_SUCCESS || op->nentries != 1) {
		/* Ask again with a later request; meanwhile walk. */
		S.rootdse_retry_at = dir_ldap_now() + 30000;
		log_info(0, "dir",
			 "rootdse-unreadable rc=%d (ad_matching_rules=auto: walking "
			 "nested lists meanwhile)",
			 op->rc);
	} else {
		bool ad = false;
		const struct dir_ldap_attr *a = get_attr(&op->entries[0], "supportedCapabilities");
		for (size_t i = 0; a != NULL && i < a->nvals; i++)
			if (strcmp(a->vals[i], DIR_SHAPE_CAP_AD) == 0 ||
			    strcmp(a->vals[i], DIR_SHAPE_CAP_ADLDS) == 0)
				ad = true;
		S.ad_rules = ad ? RULES_YES : RULES_NO;
		log_info(0, "dir", "capabilities ad_matching_rules=%s source=rootdse",
			 ad ? "yes" : "no");
		build_enabled();
	}
	arena_destroy(&S.rootdse_arena);
}

/* ad_matching_rules = auto: read supportedCapabilities once. Only AD
 * advertises its rules there (no server lists matching rules it
 * supports in a way a client can rely on). */
static void
rootdse_check(void)
{
	static char *attrs[] = {"supportedCapabilities", NULL};

	if (S.ad_rules != RULES_UNKNOWN || S.rootdse_busy || dir_ldap_now() < S.rootdse_retry_at)
		return;
	S.rootdse_busy = true;
	S.rootdse_arena = arena_new(0);
	memset(&S.rootdse_op, 0, sizeof(S.rootdse_op));
	S.rootdse_op.kind = DIR_OP_SEARCH;
	S.rootdse_op.dn = "";
	S.rootdse_op.scope = LDAP_SCOPE_BASE;
	S.rootdse_op.filter = "(objectClass=*)";
	S.rootdse_op.attrs = attrs;
	S.rootdse_op.sizelimit = 1;
	S.rootdse_op.retries = 1;
	S.rootdse_op.deadline =
	    dir_ldap_now() + (uint64_t)(S.dc->timeout > 0 ? S.dc->timeout : 5) * 1000;
	S.rootdse_op.arena = S.rootdse_arena;
	S.rootdse_op.done = rootdse_done;
	buf_init(&S.rootdse_op.cred, 0);
	dir_ldap_submit(&S.rootdse_op);
}

/* ---- intake (directory thread) ---- */

static void
intake(void)
{
	pthread_mutex_lock(&S.lock);
	struct dreq *list = S.head;
	S.head = S.tail = NULL;
	pthread_mutex_unlock(&S.lock);

	if (list != NULL)
		rootdse_check();
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
		} else if (r->kind == RQ_FIND) {
			start_login_search(r);
		} else if (r->kind == RQ_GROUPS) {
			start_groups(r);
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
	/* The walk's size cap: a list of lists can hold no more lists than
	 * it may have members. */
	dir_walk_init(&r->walk, S.dc != NULL ? S.dc->max_list_depth : 8,
		      S.dc != NULL && S.dc->max_list_members > 0 ? S.dc->max_list_members : 1000);
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
		    .no_junk = v->users[i].no_junk,
		    .quota_messages = v->users[i].quota_messages,
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

static bool
attr_name_ok(const char *s)
{
	if (s[0] == '\0' || strlen(s) > 128)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != ';')
			return false;
	return true;
}

void
dir_find_user(struct worker *w, const char *attr, const char *value, bool want_scram,
	      dir_find_cb *cb, void *arg)
{
	struct dreq *r = req_new(RQ_FIND, w, arg);
	struct dir_cache_value *v = NULL;

	r->find_cb = cb;
	r->want_scram = want_scram;
	if (attr != NULL && !attr_name_ok(attr)) {
		req_fail(r, DIR_PERMFAIL, "not an attribute name");
		req_post(r);
		return;
	}
	if (value == NULL || value[0] == '\0' || strlen(value) > MAX_INPUT) {
		req_fail(r, DIR_NOTFOUND, "value empty or too long");
		req_post(r);
		return;
	}
	r->find_attr = attr != NULL ? arena_strdup(r->arena, attr) : NULL;
	char *key = arena_strdup(r->arena, value);
	if (attr == NULL)
		lower_ascii(key); /* as dir_authenticate: the cache key */
	r->key = key;
	/* Only login answers are cached, and never with the verifier. */
	if (S.cache != NULL && attr == NULL) {
		r->generation = dir_cache_generation(S.cache);
		if (!want_scram) {
			bool hit = dir_cache_get(S.cache, arena_printf(r->arena, "u:%s", key), &v);
			metric_inc(hit ? M_DIR_CACHE_HIT : M_DIR_CACHE_MISS);
			if (hit) {
				if (v->status == DIR_OK && v->nusers == 1) {
					req_fill_from_cache(r, v);
				} else {
					r->fail = DIR_NOTFOUND;
					r->error = "unknown login (cached)";
				}
				dir_cache_value_free(v);
				req_post(r);
				return;
			}
		}
	}
	req_enqueue(r);
}

void
dir_user_groups(struct worker *w, const char *user_dn, const char *login, dir_groups_cb *cb,
		void *arg)
{
	struct dreq *r = req_new(RQ_GROUPS, w, arg);
	struct dir_cache_value *v = NULL;

	r->groups_cb = cb;
	if (user_dn == NULL || user_dn[0] == '\0' || strlen(user_dn) > FILTER_MAX / 4) {
		req_fail(r, DIR_PERMFAIL, "no DN");
		req_post(r);
		return;
	}
	if (S.dc == NULL || !attr_set(S.dc->group_filter) || !attr_set(S.dc->group_name_attr)) {
		req_post(r); /* groups not configured: none */
		return;
	}
	char *key = arena_strdup(r->arena, user_dn);
	lower_ascii(key); /* DNs compare case-insensitively; the filter value does too */
	r->key = key;
	/* %u of group_filter (RQ_GROUPS has no attribute to find). */
	r->find_attr = arena_strdup(r->arena, login != NULL ? login : "");
	if (S.cache != NULL) {
		r->generation = dir_cache_generation(S.cache);
		bool hit = dir_cache_get(S.cache, arena_printf(r->arena, "g:%s", key), &v);
		metric_inc(hit ? M_DIR_CACHE_HIT : M_DIR_CACHE_MISS);
		if (hit) {
			req_fill_from_cache(r, v);
			dir_cache_value_free(v);
			req_post(r);
			return;
		}
	}
	req_enqueue(r);
}

/* ---- start and stop ---- */

static void
build_static(const struct directory_config *dc)
{
	const char *single[] = {"objectClass",	     dc->id_attr,
				dc->login_attr,	     dc->mail_attr,
				dc->alias_attr,	     dc->routing_attr,
				dc->quota_attr,	     dc->quota_messages_attr,
				dc->proxy_attr,	     dc->disabled_flags_attr,
				dc->member_uid_attr, dc->member_address_attr,
				dc->member_url_attr, dc->member_query_attr,
				dc->junk_attr};
	size_t cap = ARRAY_SIZE(single) + 8, n = 0;

	S.member_attrs = dir_split_list(dc->member_attr);
	S.list_classes = dir_split_list(dc->list_classes);
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
	S.scram_attrs = xcalloc(n + 2, sizeof(*S.scram_attrs));
	for (size_t i = 0; i < n; i++)
		S.scram_attrs[i] = xstrdup(S.attrs[i]);
	if (attr_set(dc->scram_attr))
		S.scram_attrs[n] = xstrdup(dc->scram_attr);

	const char *rules = dc->ad_matching_rules != NULL ? dc->ad_matching_rules : "auto";
	S.ad_rules = strcmp(rules, "yes") == 0	? RULES_YES
		     : strcmp(rules, "no") == 0 ? RULES_NO
						: RULES_UNKNOWN;
	/* Nothing would use the rules: do not ask. */
	if (S.ad_rules == RULES_UNKNOWN && !attr_set(dc->disabled_flags_attr) &&
	    !attr_set(dc->member_of_attr))
		S.ad_rules = RULES_NO;
	S.group_attrs[0] = xstrdup(attr_set(dc->group_name_attr) ? dc->group_name_attr : "cn");
	S.group_attrs[1] = NULL;
	S.rootdse_busy = false;
	S.rootdse_retry_at = 0;
	build_enabled();
}

/* The "enabled" wrapping of every filter: not disabled_filter and, when
 * the server has AD's bitwise rule, not disabled_flags_attr with a bit
 * of the mask set. (Without the rule the bits are checked on each entry
 * instead: entry_disabled.) Rebuilt when the rootDSE answers; users of
 * these strings copy them (dir thread). */
static void
build_enabled(void)
{
	const struct directory_config *dc = S.dc;
	const char *d = dc->disabled_filter != NULL ? dc->disabled_filter : "";
	char *bits = NULL, *parts = NULL;

	if (S.ad_rules == RULES_YES && attr_set(dc->disabled_flags_attr) &&
	    asprintf(&bits, "(%s:%s:=%u)", dc->disabled_flags_attr, DIR_SHAPE_RULE_BIT_AND,
		     dc->disabled_flags_mask) < 0)
		fatal("out of memory");
	bool wrap = d[0] != '\0' && d[0] != '(';
	if (d[0] != '\0' && bits != NULL) {
		if (asprintf(&parts, "(|%s%s%s%s)", wrap ? "(" : "", d, wrap ? ")" : "", bits) < 0)
			fatal("out of memory");
	} else if (d[0] != '\0') {
		if (asprintf(&parts, "%s%s%s", wrap ? "(" : "", d, wrap ? ")" : "") < 0)
			fatal("out of memory");
	} else if (bits != NULL) {
		parts = xstrdup(bits);
	}
	free(bits);
	free(S.enabled_prefix);
	free(S.enabled_suffix);
	free(S.member_filter);
	if (parts == NULL) {
		S.enabled_prefix = xstrdup("");
		S.enabled_suffix = xstrdup("");
		S.member_filter = xstrdup("(objectClass=*)");
	} else {
		S.enabled_prefix = xstrdup("(&");
		if (asprintf(&S.enabled_suffix, "(!%s))", parts) < 0 ||
		    asprintf(&S.member_filter, "(!%s)", parts) < 0)
			fatal("out of memory");
	}
	free(parts);
}

static void
free_static(void)
{
	free_list(S.attrs);
	free_list(S.scram_attrs);
	free_list(S.member_attrs);
	free_list(S.list_classes);
	free(S.enabled_prefix);
	free(S.enabled_suffix);
	free(S.member_filter);
	free(S.group_attrs[0]);
	S.group_attrs[0] = NULL;
	S.attrs = S.scram_attrs = S.member_attrs = S.list_classes = NULL;
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
