/*
 * dir_ldap.c - the directory thread: one epoll loop owning every LDAP*
 * handle (DESIGN.md, Concurrency; notes section 1).
 *
 * Two pools. Lookup handles are bound as the service account (anonymous
 * when bind_dn is empty) and carry up to MAX_INFLIGHT pipelined searches;
 * slapd drops a connection with too many pending requests. Auth handles
 * carry one user bind at a time and nothing else. Operations wait in a
 * per-pool FIFO for a handle.
 *
 * How it fails: every operation ends exactly once. A handle whose server
 * goes away fails its operations with LDAP_SERVER_DOWN (searches move once
 * to another live handle first), is destroyed and reconnected after a
 * jittered exponential backoff (100 ms doubling to 5 s), trying the next
 * URI of the list when connecting or binding fails. While no handle of a
 * pool is up or being tried, new operations fail at once instead of
 * waiting out their deadline. A deadline that passes abandons the request
 * (ldap_abandon_ext) and fails it with LDAP_TIMEOUT.
 *
 * Connecting barely blocks the loop: LDAP_OPT_CONNECT_ASYNC + ldap_connect,
 * then we wait for the socket to become writable, send StartTLS (when
 * configured) and wait for its answer, then send the bind. Every handle
 * gets dir_tls_setup's options (CA, host name check, client certificate).
 * XXX: the TLS handshake itself (ldaps:// inside ldap_connect, StartTLS
 * inside ldap_install_tls) is synchronous in libldap, bounded by the
 * connect timeout; on a LAN it takes a few milliseconds.
 *
 * No password is sent on a handle that is neither encrypted nor local
 * (dir_tls_password_allowed): the service bind then fails like a refused
 * connection, a user bind fails temporarily.
 *
 * Failover and back: the URI list is an order of preference. A handle
 * that loses its server moves on to the next URI; a handle that is up on
 * a later URI goes back to the first once failback_interval has passed:
 * it stops taking new operations, and once idle it reconnects to the
 * first URI (one handle per pool at a time, so a preferred server that is
 * still down costs no capacity); if that fails it returns to the next
 * one at once and tries again an interval later.
 *
 * Searches marked paged ask for RFC 2696 pages of page_size, so a
 * server-side size limit (AD's MaxPageSize, slapd's sizelimit) does not
 * cut a large answer short.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>

#include "core/compat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "directory/dir_ldap.h"
#include "directory/dir_range.h"
#include "directory/dir_sync.h"
#include "directory/dir_tls.h"

#define MAX_INFLIGHT 64
#define BACKOFF_START_MS 100
#define BACKOFF_MAX_MS 5000
/* A request arriving while every handle backs off may start one attempt
 * early, at most this often per handle: after slapd comes back, the next
 * request finds it instead of waiting out a 5 s backoff. */
#define KICK_MIN_MS 250
#define SLOW_OP_MS 1000

/* POOL_SYNC: at most one handle, bound like a lookup one, carrying the
 * RFC 4533 consumer's search and nothing else (dir_sync.c). */
enum pool { POOL_LOOKUP, POOL_AUTH, POOL_SYNC };
enum cstate { CS_DOWN, CS_CONNECTING, CS_STARTTLS, CS_BINDING, CS_UP };

struct opq {
	struct dir_op *head, *tail;
	size_t n;
};

struct dconn {
	enum pool pool;
	unsigned index;
	enum cstate state;
	LDAP *ld;		 /* owned */
	int fd;			 /* libldap's socket, registered with epoll */
	size_t uri;		 /* index into uris */
	size_t tried;		 /* URIs that failed in a row */
	int bind_msgid;		 /* also StartTLS's */
	uint64_t phase_deadline; /* connecting or binding */
	uint64_t retry_at;	 /* when DOWN */
	uint64_t last_attempt;
	uint64_t last_reply;
	unsigned backoff_ms;
	uint64_t failback_at; /* UP on a later URI: when to try the first again */
	bool draining;	      /* takes no new ops: moving back to the first URI */
	bool probing;	      /* connecting to the first URI to move back */
	bool parked;	      /* sync handle: the server has no syncprov */
	struct opq ops;	      /* in flight */
};

static struct {
	const struct directory_config *dc; /* borrowed from the config */
	char **uris;			   /* owned, NULL-terminated */
	size_t nuris;
	struct dconn *conns; /* owned: lookup handles first, then auth */
	size_t nconns;
	struct opq wait[3]; /* per pool */
	int epfd, evfd;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	dir_ldap_intake_fn *intake;
	uint64_t rng;
} L = {.epfd = -1, .evfd = -1};

static uint64_t now_ms;

static const char *const pool_names[] = {"lookup", "auth", "sync"};

uint64_t
dir_ldap_now(void)
{
	return now_ms;
}

static void
update_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned
jitter(unsigned ms)
{
	/* xorshift64: only spreads reconnects, nothing secret. */
	L.rng ^= L.rng << 13;
	L.rng ^= L.rng >> 7;
	L.rng ^= L.rng << 17;
	return ms / 2 + (unsigned)(L.rng % (ms / 2 + 1));
}

bool
dir_ldap_rc_is_temporary(int rc)
{
	switch (rc) {
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_LOCAL_ERROR:
	case LDAP_NO_MEMORY:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_ADMINLIMIT_EXCEEDED:
	case LDAP_OTHER:
	case LDAP_LOOP_DETECT:
		return true;
	default:
		return false;
	}
}

/* FIFO / in-flight lists. */
static void
opq_push_tail(struct opq *q, struct dir_op *op)
{
	op->next = NULL;
	op->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = op;
	else
		q->head = op;
	q->tail = op;
	q->n++;
}

static void
opq_push_head(struct opq *q, struct dir_op *op)
{
	op->prev = NULL;
	op->next = q->head;
	if (q->head != NULL)
		q->head->prev = op;
	else
		q->tail = op;
	q->head = op;
	q->n++;
}

static void
opq_remove(struct opq *q, struct dir_op *op)
{
	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		q->head = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	else
		q->tail = op->prev;
	op->prev = op->next = NULL;
	q->n--;
}

static void
op_complete(struct dir_op *op, int rc)
{
	uint64_t took = now_ms - op->started;

	metrics_observe_dir_op(took * 1000); /* now_ms ticks per loop turn: ms resolution */

	if (took >= SLOW_OP_MS || (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT &&
				   rc != LDAP_SIZELIMIT_EXCEEDED && rc != LDAP_INVALID_CREDENTIALS))
		log_info(0, "dir", "%s %s rc=%d error=\"%s\" ms=%llu dn=\"%s\"",
			 op->kind == DIR_OP_BIND ? "bind" : "search",
			 took >= SLOW_OP_MS ? "slow" : "failed", rc, ldap_err2string(rc),
			 (unsigned long long)took, op->dn != NULL ? op->dn : "");
	op->rc = rc;
	op->conn = NULL;
	if (op->kind == DIR_OP_BIND)
		buf_wipe(&op->cred);
	op->done(op); /* may free op */
}

/* Fails every op of a list (after detaching the list, since callbacks
 * submit new work). */
static void
opq_fail_all(struct opq *q, int rc)
{
	struct opq list = *q;

	memset(q, 0, sizeof(*q));
	while (list.head != NULL) {
		struct dir_op *op = list.head;
		opq_remove(&list, op);
		op_complete(op, rc);
	}
}

static void
epoll_set(struct dconn *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (epoll_ctl(L.epfd, op, c->fd, &ev) < 0 && op != EPOLL_CTL_DEL)
		log_error(0, "dir", "epoll_ctl error=%s", strerror(errno));
}

static bool
conn_hopeful(const struct dconn *c)
{
	return c->state != CS_DOWN || c->retry_at <= now_ms;
}

static bool
pool_hopeful(enum pool p)
{
	for (size_t i = 0; i < L.nconns; i++)
		if (L.conns[i].pool == p && conn_hopeful(&L.conns[i]))
			return true;
	return false;
}

/* Drops the handle (and its socket). */
static void
conn_close(struct dconn *c)
{
	if (c->ld != NULL) {
		if (c->fd >= 0)
			epoll_set(c, EPOLL_CTL_DEL, 0);
		ldap_unbind_ext(c->ld, NULL, NULL);
	}
	c->ld = NULL;
	c->fd = -1;
	c->state = CS_DOWN;
	c->draining = false;
}

static void pool_pump(enum pool p);
static void sync_next(struct dconn *c, enum dir_sync_next next);
static void log_tls_failure(struct dconn *c, int rc);
static bool next_page(struct dconn *c, struct dir_op *op, LDAPControl **ctrls);

/* Waiting ops of a pool with no chance of a handle soon fail now. */
static void
pool_check(enum pool p)
{
	if (!pool_hopeful(p))
		opq_fail_all(&L.wait[p], LDAP_SERVER_DOWN);
}

static void
schedule_retry(struct dconn *c)
{
	c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_START_MS : c->backoff_ms * 2;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	c->retry_at = now_ms + jitter(c->backoff_ms);
}

/* Connecting or binding failed: next URI at once, or back off after a
 * whole round of them. */
static void
conn_attempt_failed(struct dconn *c, const char *why, int rc)
{
	log_warn(0, "dir", "connect-failed uri=%s pool=%s conn=%u reason=%s rc=%d", L.uris[c->uri],
		 pool_names[c->pool], c->index, why, rc);
	conn_close(c);
	if (c->probing) {
		/* The first URI is still away: back to the next one at once. */
		c->probing = false;
		c->tried = 0;
	}
	c->uri = (c->uri + 1) % L.nuris;
	if (++c->tried < L.nuris) {
		c->retry_at = now_ms;
	} else {
		c->tried = 0;
		schedule_retry(c);
	}
	pool_check(c->pool);
}

/* A working handle went away: its ops fail (searches move once to
 * another handle), and it reconnects after a backoff. */
static void
conn_lost(struct dconn *c, const char *why, bool retry_now)
{
	int rc = LDAP_SERVER_DOWN;
	struct opq ops = c->ops;

	if (c->ld != NULL)
		ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &rc);
	log_warn(0, "dir", "disconnect uri=%s pool=%s conn=%u reason=%s rc=%d inflight=%zu",
		 L.uris[c->uri], pool_names[c->pool], c->index, why, rc, ops.n);
	memset(&c->ops, 0, sizeof(c->ops));
	conn_close(c);
	c->tried = 0;
	schedule_retry(c);
	/* A handle that had been up a while reconnects at once (to the same
	 * server: it may only have closed an idle connection; if it is gone,
	 * the attempt fails fast and the next URI follows), so requests wait
	 * for the failover instead of failing; a flapping one backs off. */
	if (retry_now || now_ms - c->last_attempt >= KICK_MIN_MS)
		c->retry_at = now_ms;

	struct opq failed = {0};
	while (ops.head != NULL) {
		struct dir_op *op = ops.head;
		opq_remove(&ops, op);
		op->conn = NULL;
		if (op->kind == DIR_OP_SEARCH && op->retries > 0) {
			op->retries--;
			opq_push_head(&L.wait[c->pool], op);
		} else {
			opq_push_tail(&failed, op);
		}
	}
	opq_fail_all(&failed, LDAP_SERVER_DOWN);
	pool_check(c->pool);
	pool_pump(c->pool);
}

static void
conn_start(struct dconn *c)
{
	const struct directory_config *dc = L.dc;
	const char *uri = L.uris[c->uri];
	int rc;

	c->last_attempt = now_ms;
	c->retry_at = UINT64_MAX;
	c->parked = false;
	rc = ldap_initialize(&c->ld, uri);
	if (rc != LDAP_SUCCESS) {
		c->ld = NULL;
		conn_attempt_failed(c, "initialize", rc);
		return;
	}
	struct timeval tv = {.tv_sec = dc->timeout > 0 ? dc->timeout : 5};
	char *why = NULL;
	if (dir_tls_setup(c->ld, dc, &why) < 0) {
		log_error(0, "dir", "tls-setup-failed uri=%s error=\"%s\"", uri,
			  why != NULL ? why : "");
		free(why);
		conn_attempt_failed(c, "tls-setup", LDAP_PARAM_ERROR);
		return;
	}
	ldap_set_option(c->ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON);
	rc = ldap_connect(c->ld);
	if (rc != LDAP_SUCCESS) {
		if (strncasecmp(uri, "ldaps://", 8) == 0)
			log_tls_failure(c, rc);
		conn_attempt_failed(c, "connect", rc);
		return;
	}
	if (ldap_get_option(c->ld, LDAP_OPT_DESC, &c->fd) != LDAP_OPT_SUCCESS || c->fd < 0) {
		c->fd = -1;
		conn_attempt_failed(c, "no-socket", LDAP_CONNECT_ERROR);
		return;
	}
	c->state = CS_CONNECTING;
	c->phase_deadline = now_ms + (uint64_t)tv.tv_sec * 1000;
	epoll_set(c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void
log_tls_failure(struct dconn *c, int rc)
{
	char *why = dir_tls_error(c->ld, rc, L.dc, L.uris[c->uri]);

	log_error(0, "dir", "tls-failed uri=%s pool=%s conn=%u rc=%d error=\"%s\"", L.uris[c->uri],
		  pool_names[c->pool], c->index, rc, why);
	free(why);
}

/* The service bind (anonymous when bind_dn is empty). */
static void
conn_send_bind(struct dconn *c)
{
	const char *dn = L.dc->bind_dn != NULL ? L.dc->bind_dn : "";
	const char *pw = dn[0] != '\0' && L.dc->bind_password != NULL ? L.dc->bind_password : "";

	if (pw[0] != '\0' &&
	    dir_tls_check_password(c->ld, L.uris[c->uri], L.dc, "service account bind") < 0) {
		conn_attempt_failed(c, "plaintext-password-refused", LDAP_CONFIDENTIALITY_REQUIRED);
		return;
	}
	struct berval cred = {.bv_val = (char *)pw, .bv_len = strlen(pw)};
	int rc = ldap_sasl_bind(c->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &c->bind_msgid);
	if (rc != LDAP_SUCCESS) {
		conn_attempt_failed(c, "bind-send", rc);
		return;
	}
	c->state = CS_BINDING;
	c->phase_deadline = now_ms + (uint64_t)(L.dc->timeout > 0 ? L.dc->timeout : 5) * 1000;
	epoll_set(c, EPOLL_CTL_MOD, EPOLLIN);
}

/* The socket is writable: the TCP connect finished; StartTLS or bind. */
static void
conn_connected(struct dconn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		/* ldaps:// did its handshake inside ldap_connect; a server that
		 * then drops us refused something in it (a client certificate,
		 * under TLS 1.3). */
		if (strncasecmp(L.uris[c->uri], "ldaps://", 8) == 0)
			log_tls_failure(c, LDAP_CONNECT_ERROR);
		conn_attempt_failed(c, strerror(err), LDAP_CONNECT_ERROR);
		return;
	}
	if (L.dc->starttls && strncasecmp(L.uris[c->uri], "ldap://", 7) == 0) {
		int rc = ldap_start_tls(c->ld, NULL, NULL, &c->bind_msgid);
		if (rc != LDAP_SUCCESS) {
			conn_attempt_failed(c, "starttls-send", rc);
			return;
		}
		c->state = CS_STARTTLS;
		c->phase_deadline =
		    now_ms + (uint64_t)(L.dc->timeout > 0 ? L.dc->timeout : 5) * 1000;
		epoll_set(c, EPOLL_CTL_MOD, EPOLLIN);
		return;
	}
	conn_send_bind(c);
}

/* StartTLS answered: the handshake, then the bind. */
static void
conn_starttls_done(struct dconn *c, LDAPMessage *msg)
{
	int err = LDAP_OTHER;
	char *diag = NULL;
	int rc = ldap_parse_result(c->ld, msg, &err, NULL, &diag, NULL, NULL, 1);

	if (rc != LDAP_SUCCESS)
		err = rc;
	if (err != LDAP_SUCCESS) {
		log_error(0, "dir", "starttls-refused uri=%s rc=%d error=\"%s\" diag=\"%s\"",
			  L.uris[c->uri], err, ldap_err2string(err), diag != NULL ? diag : "");
		ldap_memfree(diag);
		conn_attempt_failed(c, "starttls", err);
		return;
	}
	ldap_memfree(diag);
	rc = ldap_install_tls(c->ld);
	if (rc != LDAP_SUCCESS) {
		log_tls_failure(c, rc);
		conn_attempt_failed(c, "tls", rc);
		return;
	}
	conn_send_bind(c);
}

static void
conn_bound(struct dconn *c, LDAPMessage *msg)
{
	int err = LDAP_OTHER;
	char *diag = NULL;
	int rc = ldap_parse_result(c->ld, msg, &err, NULL, &diag, NULL, NULL, 1);

	if (rc != LDAP_SUCCESS)
		err = rc;
	if (err != LDAP_SUCCESS) {
		log_error(0, "dir",
			  "service-bind-failed uri=%s dn=\"%s\" rc=%d error=\"%s\" diag=\"%s\"",
			  L.uris[c->uri], L.dc->bind_dn, err, ldap_err2string(err),
			  diag != NULL ? diag : "");
		ldap_memfree(diag);
		conn_attempt_failed(c, "bind", err);
		return;
	}
	ldap_memfree(diag);
	log_info(0, "dir", "connect uri=%s pool=%s conn=%u%s", L.uris[c->uri], pool_names[c->pool],
		 c->index, c->backoff_ms > 0 ? " reconnect=yes" : "");
	bool was_down = c->backoff_ms > 0;
	c->state = CS_UP;
	c->tried = 0;
	c->backoff_ms = 0;
	c->last_reply = now_ms;
	c->draining = false;
	c->failback_at = now_ms + (uint64_t)L.dc->failback_interval * 1000;
	if (c->probing && c->uri == 0)
		log_info(0, "dir", "failback uri=%s pool=%s conn=%u", L.uris[0],
			 pool_names[c->pool], c->index);
	c->probing = false;
	/* The server is back: the other handles, of both pools, stop backing
	 * off, so that a login right after a lookup succeeds does not fail. */
	if (was_down) {
		for (size_t i = 0; i < L.nconns; i++) {
			struct dconn *o = &L.conns[i];
			if (o->state == CS_DOWN && !o->parked) {
				o->uri = c->uri;
				o->tried = 0;
				o->backoff_ms = 0;
				o->retry_at = now_ms;
			}
		}
	}
	if (c->pool == POOL_SYNC)
		sync_next(c, dir_sync_connected(c->ld, L.dc, L.uris[c->uri]));
	else
		pool_pump(c->pool);
}

void
dir_ldap_copy_entry(LDAP *ld, LDAPMessage *msg, struct arena *arena, struct dir_ldap_entry *e)
{
	char *dn = ldap_get_dn(ld, msg);
	BerElement *ber = NULL;
	size_t cap = 0;

	memset(e, 0, sizeof(*e));
	e->dn = arena_strdup(arena, dn != NULL ? dn : "");
	ldap_memfree(dn);
	for (char *a = ldap_first_attribute(ld, msg, &ber); a != NULL;
	     a = ldap_next_attribute(ld, msg, ber)) {
		struct berval **vals = ldap_get_values_len(ld, msg, a);
		size_t n = (size_t)ldap_count_values_len(vals);

		if (e->nattrs == cap) {
			size_t ncap = cap == 0 ? 8 : cap * 2;
			struct dir_ldap_attr *na = arena_alloc(arena, ncap * sizeof(*na));
			if (cap > 0)
				memcpy(na, e->attrs, cap * sizeof(*na));
			e->attrs = na;
			cap = ncap;
		}
		struct dir_ldap_attr *at = &e->attrs[e->nattrs++];
		at->name = arena_strdup(arena, a);
		at->nvals = n;
		at->vals = arena_alloc(arena, (n + 1) * sizeof(*at->vals));
		at->lens = arena_alloc(arena, (n + 1) * sizeof(*at->lens));
		for (size_t i = 0; i < n; i++) {
			char *v = arena_alloc(arena, vals[i]->bv_len + 1);
			memcpy(v, vals[i]->bv_val, vals[i]->bv_len);
			at->vals[i] = v;
			at->lens[i] = vals[i]->bv_len;
		}
		ldap_value_free_len(vals);
		ldap_memfree(a);
	}
	if (ber != NULL)
		ber_free(ber, 0);
}

/* The stable id as text: entryUUID is text already; a binary 16-byte
 * value (AD's objectGUID) becomes the usual GUID form. */
const char *
dir_ldap_format_id(struct arena *a, const char *v, size_t len)
{
	bool printable = len > 0;

	for (size_t i = 0; i < len; i++)
		if (!isprint((unsigned char)v[i]))
			printable = false;
	if (printable)
		return v;
	const unsigned char *b = (const unsigned char *)v;
	if (len == 16)
		return arena_printf(a,
				    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				    "%02x%02x%02x%02x%02x%02x",
				    b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9],
				    b[10], b[11], b[12], b[13], b[14], b[15]);
	char *hex = arena_alloc(a, len * 2 + 1);
	for (size_t i = 0; i < len; i++) {
		static const char digits[] = "0123456789abcdef";
		hex[2 * i] = digits[b[i] >> 4];
		hex[2 * i + 1] = digits[b[i] & 0xf];
	}
	return hex;
}

int
dir_ldap_parse_quota(const char *v, uint64_t unit, uint64_t *bytes_r)
{
	uint64_t n = 0;

	if (unit == 0)
		unit = 1;
	*bytes_r = 0;
	if (*v == '\0')
		return 0;
	for (const char *p = v; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p) || n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*bytes_r = n > UINT64_MAX / unit ? UINT64_MAX : n * unit;
	return 0;
}

static struct dir_op *
find_op(struct dconn *c, int msgid)
{
	for (struct dir_op *op = c->ops.head; op != NULL; op = op->next)
		if (op->msgid == msgid)
			return op;
	return NULL;
}

/* Completes a search's ranged attributes (AD, dir_range.h) with
 * follow-up base searches on the same handle, one at a time, then the
 * op. s is the walk's last step; after_next says it came from
 * dir_range_walk_next (so DONE means nothing is left). A server breaking
 * the range protocol fails the search with LDAP_OTHER (temporary: a
 * list is never expanded from part of its members); too many values are
 * logged and the rest left out. */
static void
range_go_on(struct dconn *c, struct dir_op *op, enum dir_range_step s, bool after_next)
{
	struct dir_range_walk *w = op->range;

	while (s != DIR_RANGE_MORE) {
		const char *dn = w->entry < op->nentries ? op->entries[w->entry].dn : "";
		if (s == DIR_RANGE_BAD) {
			log_warn(0, "dir", "range-failed dn=\"%s\" attr=%s reason=\"%s\"", dn,
				 w->base, w->why);
			op->range_rc = LDAP_OTHER;
			break;
		}
		if (s == DIR_RANGE_CAP)
			log_error(0, "dir",
				  "range-cap dn=\"%s\" attr=%s values=%zu reason=\"%s\": the rest "
				  "of the values are left out",
				  dn, w->base, w->st.total, w->why);
		if (s == DIR_RANGE_DONE && after_next)
			break;
		s = dir_range_walk_next(op->arena, op->entries, op->nentries, w);
		after_next = true;
	}
	if (s == DIR_RANGE_MORE) {
		uint64_t left = op->deadline > now_ms ? op->deadline - now_ms : 0;
		struct timeval tl = {.tv_sec = (time_t)(left / 1000) + 1};
		char *attrs[] = {(char *)w->request, NULL};
		op->range_answered = false;
		int rc =
		    ldap_search_ext(c->ld, op->entries[w->entry].dn, LDAP_SCOPE_BASE,
				    "(objectClass=*)", attrs, 0, NULL, NULL, &tl, 1, &op->msgid);
		if (rc != LDAP_SUCCESS)
			/* The op starts over elsewhere (conn_send forgets the
			 * walk), or fails temporarily. */
			conn_lost(c, "send-failed", false);
		return;
	}
	opq_remove(&c->ops, op);
	op->range = NULL;
	op_complete(op, op->range_rc);
	if (c->state == CS_UP)
		pool_pump(c->pool);
}

/* A message for a follow-up range request of op. */
static void
range_message(struct dconn *c, struct dir_op *op, LDAPMessage *msg, int type)
{
	if (type == LDAP_RES_SEARCH_ENTRY) {
		struct dir_ldap_entry reply;
		dir_ldap_copy_entry(c->ld, msg, op->arena, &reply);
		if (!op->range_answered)
			op->range_step =
			    (int)dir_range_walk_answer(op->arena, op->entries, op->range, &reply);
		op->range_answered = true;
		ldap_msgfree(msg);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT) {
		ldap_msgfree(msg);
		return;
	}
	int err = LDAP_OTHER;
	int rc = ldap_parse_result(c->ld, msg, &err, NULL, NULL, NULL, NULL, 1);
	if (rc != LDAP_SUCCESS)
		err = rc;
	if (err != LDAP_SUCCESS) {
		/* e.g. the group was deleted meanwhile: ask again later. */
		log_warn(0, "dir", "range-failed dn=\"%s\" attr=%s rc=%d error=\"%s\"",
			 op->entries[op->range->entry].dn, op->range->base, err,
			 ldap_err2string(err));
		opq_remove(&c->ops, op);
		op->range = NULL;
		op_complete(op, dir_ldap_rc_is_temporary(err) ? err : LDAP_OTHER);
		if (c->state == CS_UP)
			pool_pump(c->pool);
		return;
	}
	enum dir_range_step s =
	    op->range_answered ? (enum dir_range_step)op->range_step
			       : dir_range_walk_answer(op->arena, op->entries, op->range, NULL);
	range_go_on(c, op, s, false);
}

static void
conn_dispatch(struct dconn *c, LDAPMessage *msg)
{
	int msgid = ldap_msgid(msg);
	int type = ldap_msgtype(msg);

	if (c->state == CS_STARTTLS) {
		if (msgid == c->bind_msgid && type == LDAP_RES_EXTENDED)
			conn_starttls_done(c, msg); /* frees msg */
		else
			ldap_msgfree(msg);
		return;
	}
	if (c->state == CS_BINDING) {
		if (msgid == c->bind_msgid && type == LDAP_RES_BIND)
			conn_bound(c, msg); /* frees msg */
		else
			ldap_msgfree(msg);
		return;
	}
	if (c->pool == POOL_SYNC) {
		sync_next(c, dir_sync_message(c->ld, msg)); /* frees msg */
		return;
	}
	struct dir_op *op = find_op(c, msgid);
	if (op == NULL) {
		/* An answer to something we abandoned. */
		ldap_msgfree(msg);
		return;
	}
	if (op->range != NULL) {
		range_message(c, op, msg, type); /* frees msg */
		return;
	}
	if (type == LDAP_RES_SEARCH_ENTRY) {
		op->nseen++;
		if (op->nentries < (size_t)op->sizelimit)
			dir_ldap_copy_entry(c->ld, msg, op->arena, &op->entries[op->nentries++]);
		ldap_msgfree(msg);
		return;
	}
	if (type != LDAP_RES_SEARCH_RESULT && type != LDAP_RES_BIND) {
		ldap_msgfree(msg); /* references, intermediate responses */
		return;
	}
	int err = LDAP_OTHER;
	char *diag = NULL;
	LDAPControl **ctrls = NULL;
	int rc =
	    ldap_parse_result(c->ld, msg, &err, NULL, &diag, NULL, op->paged ? &ctrls : NULL, 1);
	if (rc != LDAP_SUCCESS)
		err = rc;
	if (diag != NULL && diag[0] != '\0')
		op->diag = arena_strdup(op->arena, diag);
	ldap_memfree(diag);
	if (op->paged && err == LDAP_SUCCESS && next_page(c, op, ctrls)) {
		ldap_controls_free(ctrls);
		return;
	}
	ldap_controls_free(ctrls);
	if (op->paged && err == LDAP_SUCCESS && op->nseen > (size_t)op->sizelimit)
		err = LDAP_SIZELIMIT_EXCEEDED;
	if (op->kind == DIR_OP_SEARCH && op->nentries > 0 &&
	    (err == LDAP_SUCCESS || err == LDAP_SIZELIMIT_EXCEEDED)) {
		/* AD may have sent only part of a big attribute. */
		op->range = arena_alloc(op->arena, sizeof(*op->range));
		memset(op->range, 0, sizeof(*op->range));
		op->range_rc = err;
		range_go_on(c, op,
			    dir_range_walk_next(op->arena, op->entries, op->nentries, op->range),
			    true);
		return;
	}
	opq_remove(&c->ops, op);
	op_complete(op, err);
	if (c->state == CS_UP)
		pool_pump(c->pool);
}

/* Drain rule (notes 1.1): libldap buffers what the socket had, so epoll
 * will not fire again for it; read until two calls in a row return
 * nothing. */
static void
conn_drain(struct dconn *c)
{
	int empty = 0;

	while (empty < 2 && c->ld != NULL &&
	       (c->state == CS_STARTTLS || c->state == CS_BINDING || c->state == CS_UP)) {
		LDAPMessage *msg = NULL;
		struct timeval zero = {0, 0};
		int t = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero, &msg);

		if (t == 0) {
			empty++;
			continue;
		}
		if (t < 0) {
			if (c->state == CS_BINDING || c->state == CS_STARTTLS) {
				int rc = LDAP_SERVER_DOWN;
				ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &rc);
				if (c->state == CS_BINDING && ldap_tls_inplace(c->ld))
					log_tls_failure(c, rc); /* as above, for StartTLS */
				conn_attempt_failed(
				    c, c->state == CS_BINDING ? "bind-read" : "starttls-read", rc);
			} else {
				conn_lost(c, "server-down", false);
			}
			return;
		}
		empty = 0;
		c->last_reply = now_ms;
		conn_dispatch(c, msg);
	}
}

static void
conn_event(struct dconn *c, uint32_t events)
{
	switch (c->state) {
	case CS_CONNECTING:
		conn_connected(c);
		break;
	case CS_STARTTLS:
	case CS_BINDING:
	case CS_UP:
		(void)events; /* EOF and errors show up in ldap_result */
		conn_drain(c);
		break;
	case CS_DOWN:
		break;
	}
}

/* What dir_sync.c wants done with the sync handle. */
static void
sync_next(struct dconn *c, enum dir_sync_next next)
{
	switch (next) {
	case DIR_SYNC_GO_ON:
		break;
	case DIR_SYNC_RECONNECT:
		conn_lost(c, "sync-ended", false);
		break;
	case DIR_SYNC_PARK:
		conn_close(c);
		c->parked = true;
		c->tried = 0;
		c->retry_at = now_ms + (uint64_t)DIR_SYNC_PARK_SECONDS * 1000;
		break;
	}
}

/* Sends a search, or its next page (op->cookie). */
static int
send_search(struct dconn *c, struct dir_op *op)
{
	uint64_t left = op->deadline > now_ms ? op->deadline - now_ms : 0;
	struct timeval tl = {.tv_sec = (time_t)(left / 1000) + 1};
	LDAPControl *page = NULL;
	LDAPControl *sctrls[2] = {NULL, NULL};
	int rc;

	if (!op->paged)
		return ldap_search_ext(c->ld, op->dn, op->scope, op->filter, op->attrs, 0, NULL,
				       NULL, &tl, op->sizelimit, &op->msgid);
	/* Not critical: a server without paging answers as it can. One
	 * entry past sizelimit is enough to know there were more. */
	ber_int_t size = (ber_int_t)(L.dc->page_size > 0 ? L.dc->page_size : 500);
	rc = ldap_create_page_control(c->ld, size, &op->cookie, 0, &page);
	if (rc != LDAP_SUCCESS)
		return rc;
	sctrls[0] = page;
	rc = ldap_search_ext(c->ld, op->dn, op->scope, op->filter, op->attrs, 0, sctrls, NULL, &tl,
			     0, &op->msgid);
	ldap_control_free(page);
	return rc;
}

/* A page of a paged search ended: asks for the next one if the server
 * has more and we still want them. True if the op goes on. */
static bool
next_page(struct dconn *c, struct dir_op *op, LDAPControl **ctrls)
{
	LDAPControl *pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls, NULL);
	struct berval cookie = {0};
	ber_int_t estimate = 0;

	if (pr == NULL || op->nseen > (size_t)op->sizelimit ||
	    ldap_parse_pageresponse_control(c->ld, pr, &estimate, &cookie) != LDAP_SUCCESS)
		return false;
	if (cookie.bv_len == 0) {
		ber_memfree(cookie.bv_val);
		return false;
	}
	op->cookie.bv_val = arena_memdup(op->arena, cookie.bv_val, cookie.bv_len);
	op->cookie.bv_len = cookie.bv_len;
	ber_memfree(cookie.bv_val);
	int rc = send_search(c, op);
	if (rc == LDAP_SUCCESS)
		return true;
	/* The connection broke between pages: the op starts over elsewhere
	 * (conn_lost moves it), or fails temporarily. */
	conn_lost(c, "send-failed", false);
	return true;
}

/* Sends op on c (UP, with room). */
static void
conn_send(struct dconn *c, struct dir_op *op)
{
	int rc;

	if (op->kind == DIR_OP_SEARCH) {
		/* A retry starts from nothing. */
		op->nentries = op->nseen = 0;
		op->range = NULL;
		op->cookie.bv_val = NULL;
		op->cookie.bv_len = 0;
		if (op->entries == NULL && op->sizelimit > 0)
			op->entries =
			    arena_alloc(op->arena, (size_t)op->sizelimit * sizeof(*op->entries));
		rc = send_search(c, op);
	} else if (dir_tls_check_password(c->ld, L.uris[c->uri], L.dc, "user bind") < 0) {
		/* Not the user's fault: a temporary failure, logged above. */
		op_complete(op, LDAP_UNAVAILABLE);
		return;
	} else {
		struct berval cred = {.bv_val = op->cred.data, .bv_len = op->cred.len};
		rc = ldap_sasl_bind(c->ld, op->dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &op->msgid);
		/* libldap has encoded it into its own buffer by now. */
		buf_wipe(&op->cred);
	}
	if (rc == LDAP_SUCCESS) {
		op->conn = c;
		opq_push_tail(&c->ops, op);
		return;
	}
	if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
		/* Never reached the server: a search may go elsewhere. */
		if (op->kind == DIR_OP_SEARCH)
			opq_push_head(&L.wait[c->pool], op);
		else
			op_complete(op, rc);
		conn_lost(c, "send-failed", false);
		return;
	}
	log_warn(0, "dir", "request-failed pool=%s rc=%d error=\"%s\"", pool_names[c->pool], rc,
		 ldap_err2string(rc));
	op_complete(op, rc);
}

static struct dconn *
pick_conn(enum pool p)
{
	struct dconn *best = NULL;
	size_t limit = p == POOL_AUTH ? 1 : MAX_INFLIGHT;

	/* A draining handle only takes work nothing else can. */
	for (int pass = 0; pass < 2 && best == NULL; pass++) {
		for (size_t i = 0; i < L.nconns; i++) {
			struct dconn *c = &L.conns[i];
			if (c->pool != p || c->state != CS_UP || c->ops.n >= limit ||
			    c->draining != (pass == 1))
				continue;
			if (best == NULL || c->ops.n < best->ops.n)
				best = c;
		}
	}
	return best;
}

static void
pool_pump(enum pool p)
{
	static int depth[3];

	/* conn_send can fail a handle, whose callbacks submit and pump
	 * again; the outer call finishes the job. */
	if (depth[p] > 0)
		return;
	depth[p]++;
	while (L.wait[p].head != NULL) {
		struct dconn *c = pick_conn(p);
		if (c == NULL)
			break;
		struct dir_op *op = L.wait[p].head;
		opq_remove(&L.wait[p], op);
		conn_send(c, op);
	}
	depth[p]--;
}

void
dir_ldap_submit(struct dir_op *op)
{
	enum pool p = op->kind == DIR_OP_BIND ? POOL_AUTH : POOL_LOOKUP;

	op->rc = LDAP_SUCCESS;
	op->started = now_ms;
	op->diag = NULL;
	op->nentries = op->nseen = 0;
	op->conn = NULL;
	if (!pool_hopeful(p)) {
		/* Everything backs off. Try one handle early if it has not been
		 * tried lately (the server may be back), else fail fast. */
		struct dconn *kick = NULL;
		for (size_t i = 0; i < L.nconns; i++) {
			struct dconn *c = &L.conns[i];
			if (c->pool == p && now_ms - c->last_attempt >= KICK_MIN_MS &&
			    (kick == NULL || c->retry_at < kick->retry_at))
				kick = c;
		}
		if (kick == NULL) {
			op_complete(op, LDAP_SERVER_DOWN);
			return;
		}
		kick->retry_at = now_ms;
	}
	opq_push_tail(&L.wait[p], op);
	pool_pump(p);
}

/* Failback (see the top of the file): a handle up on a later URI drains
 * once its interval has passed, then reconnects to the first URI; one
 * handle per pool at a time. */
static void
failback_check(struct dconn *c)
{
	if (c->state != CS_UP || c->uri == 0 || L.nuris < 2)
		return;
	if (!c->draining) {
		if (c->failback_at > now_ms)
			return;
		for (size_t i = 0; i < L.nconns; i++) {
			const struct dconn *o = &L.conns[i];
			if (o != c && o->pool == c->pool && (o->draining || o->probing))
				return;
		}
		c->draining = true;
	}
	if (c->ops.n > 0)
		return;
	log_info(0, "dir", "failback-try uri=%s from=%s pool=%s conn=%u", L.uris[0], L.uris[c->uri],
		 pool_names[c->pool], c->index);
	conn_close(c);
	c->uri = 0;
	c->tried = 0;
	c->probing = true;
	conn_start(c);
}

/* Deadlines, reconnects; returns the epoll timeout until the next one. */
static int
run_timers(void)
{
	uint64_t next = now_ms + 1000;

	for (size_t i = 0; i < L.nconns; i++) {
		struct dconn *c = &L.conns[i];

		if (c->state == CS_DOWN && c->retry_at <= now_ms)
			conn_start(c);
		if ((c->state == CS_CONNECTING || c->state == CS_STARTTLS ||
		     c->state == CS_BINDING) &&
		    c->phase_deadline <= now_ms)
			conn_attempt_failed(c, "timeout", LDAP_TIMEOUT);
		failback_check(c);
		if (c->state == CS_UP) {
			struct dir_op *op = c->ops.head;
			bool expired = false;
			while (op != NULL) {
				struct dir_op *nx = op->next;
				if (op->deadline <= now_ms) {
					expired = true;
					log_warn(0, "dir",
						 "timeout pool=%s conn=%u uri=%s msgid=%d",
						 pool_names[c->pool], c->index, L.uris[c->uri],
						 op->msgid);
					ldap_abandon_ext(c->ld, op->msgid, NULL, NULL);
					opq_remove(&c->ops, op);
					op_complete(op, LDAP_TIMEOUT);
				}
				op = nx;
			}
			/* A bind cannot really be abandoned (RFC 4511 4.11) and
			 * nothing may follow it until it answers: start afresh.
			 * A lookup handle that has been silent for a whole
			 * timeout is hung: move to the next server. */
			uint64_t silent = now_ms - c->last_reply;
			if (expired && c->state == CS_UP &&
			    (c->pool == POOL_AUTH ||
			     silent >= (uint64_t)(L.dc->timeout > 0 ? L.dc->timeout : 5) * 1000)) {
				if (c->pool == POOL_LOOKUP)
					c->uri = (c->uri + 1) % L.nuris;
				conn_lost(c, "timeout", true);
			} else if (expired) {
				pool_pump(c->pool);
			}
		}
		if (c->state == CS_DOWN && c->retry_at < next)
			next = c->retry_at;
		if ((c->state == CS_CONNECTING || c->state == CS_STARTTLS ||
		     c->state == CS_BINDING) &&
		    c->phase_deadline < next)
			next = c->phase_deadline;
		if (c->state == CS_UP && c->uri != 0 && !c->draining && c->failback_at < next)
			next = c->failback_at;
		for (struct dir_op *op = c->ops.head; op != NULL; op = op->next)
			if (op->deadline < next)
				next = op->deadline;
	}
	for (int p = 0; p < 3; p++) {
		struct dir_op *op = L.wait[p].head;
		while (op != NULL) {
			struct dir_op *nx = op->next;
			if (op->deadline <= now_ms) {
				opq_remove(&L.wait[p], op);
				op_complete(op, LDAP_TIMEOUT);
			} else if (op->deadline < next) {
				next = op->deadline;
			}
			op = nx;
		}
		pool_check((enum pool)p);
	}
	return next <= now_ms ? 0 : (int)(next - now_ms);
}

static void *
dir_thread(void *arg)
{
	(void)arg;
	sigset_t all;

	/* Signals belong to the main thread; SIGPIPE is ignored process-wide
	 * (server_block_signals), which a dropped connection needs. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	update_now();
	while (!atomic_load(&L.stop)) {
		int timeout = run_timers();
		struct epoll_event evs[32];
		int n = epoll_wait(L.epfd, evs, 32, timeout);

		update_now();
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &L) {
				uint64_t v;
				if (read(L.evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_error(0, "dir", "eventfd read error=%s",
						  strerror(errno));
				L.intake();
				continue;
			}
			conn_event(evs[i].data.ptr, evs[i].events);
		}
	}
	/* Shutting down: nothing outstanding may be left without an answer. */
	for (size_t i = 0; i < L.nconns; i++) {
		struct dconn *c = &L.conns[i];
		struct opq ops = c->ops;
		memset(&c->ops, 0, sizeof(c->ops));
		conn_close(c);
		c->retry_at = UINT64_MAX;
		opq_fail_all(&ops, LDAP_SERVER_DOWN);
	}
	L.intake(); /* requests queued meanwhile fail fast now */
	opq_fail_all(&L.wait[POOL_LOOKUP], LDAP_SERVER_DOWN);
	opq_fail_all(&L.wait[POOL_AUTH], LDAP_SERVER_DOWN);
	return NULL;
}

void
dir_ldap_wake(void)
{
	uint64_t one = 1;

	if (write(L.evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error(0, "dir", "eventfd write error=%s", strerror(errno));
}

int
dir_ldap_start(const struct config *cfg, dir_ldap_intake_fn *intake, char **error_r)
{
	const struct directory_config *dc = &cfg->dir;

	L.dc = dc;
	L.intake = intake;
	L.uris = dir_tls_split_uris(dc->uri, &L.nuris);
	if (L.nuris == 0) {
		*error_r = xstrdup("[directory] uri: no LDAP URI");
		dir_tls_free_uris(L.uris);
		L.uris = NULL;
		return -1;
	}
	for (size_t i = 0; i < L.nuris; i++) {
		LDAPURLDesc *lud = NULL;
		if (ldap_url_parse(L.uris[i], &lud) != LDAP_URL_SUCCESS) {
			if (asprintf(error_r, "[directory] uri: bad LDAP URI \"%s\"", L.uris[i]) <
			    0)
				*error_r = NULL;
			dir_tls_free_uris(L.uris);
			L.uris = NULL;
			return -1;
		}
		ldap_free_urldesc(lud);
	}
	dir_tls_log_config(dc, "ternd");
	size_t nl = dc->lookup_connections > 0 ? dc->lookup_connections : 1;
	size_t na = dc->auth_connections > 0 ? dc->auth_connections : 1;
	size_t ns = dir_sync_wanted(dc) ? 1 : 0;
	L.nconns = nl + na + ns;
	L.conns = xcalloc(L.nconns, sizeof(*L.conns));
	for (size_t i = 0; i < L.nconns; i++) {
		struct dconn *c = &L.conns[i];
		c->pool = i < nl ? POOL_LOOKUP : i < nl + na ? POOL_AUTH : POOL_SYNC;
		c->index = (unsigned)(i < nl ? i : i < nl + na ? i - nl : 0);
		c->fd = -1;
		/* Spread handles over the URIs? No: the list is an order of
		 * preference (first is primary); all start on the first. */
		c->uri = 0;
	}
	memset(L.wait, 0, sizeof(L.wait));
	L.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	atomic_store(&L.stop, false);

	L.epfd = epoll_create1(EPOLL_CLOEXEC);
	L.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (L.epfd < 0 || L.evfd < 0) {
		if (asprintf(error_r, "directory: epoll/eventfd: %s", strerror(errno)) < 0)
			*error_r = NULL;
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &L};
	if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.evfd, &ev) < 0) {
		if (asprintf(error_r, "directory: epoll_ctl: %s", strerror(errno)) < 0)
			*error_r = NULL;
		goto fail;
	}
	int rc = pthread_create(&L.thread, NULL, dir_thread, NULL);
	if (rc != 0) {
		if (asprintf(error_r, "directory: thread: %s", strerror(rc)) < 0)
			*error_r = NULL;
		goto fail;
	}
	L.started = true;
	return 0;
fail:
	if (L.epfd >= 0)
		close(L.epfd);
	if (L.evfd >= 0)
		close(L.evfd);
	L.epfd = L.evfd = -1;
	free(L.conns);
	L.conns = NULL;
	dir_tls_free_uris(L.uris);
	L.uris = NULL;
	return -1;
}

void
dir_ldap_stop(void)
{
	if (!L.started)
		return;
	atomic_store(&L.stop, true);
	dir_ldap_wake();
	pthread_join(L.thread, NULL);
	L.started = false;
	close(L.epfd);
	close(L.evfd);
	L.epfd = L.evfd = -1;
	free(L.conns);
	L.conns = NULL;
	L.nconns = 0;
	dir_tls_free_uris(L.uris);
	L.uris = NULL;
	L.nuris = 0;
}
