/*
 * queue_admin.c - the outbound queue as an admin sees it
 * (storage/queue.h, "the admin's side"): a filtered, paged list and one
 * message with every recipient, read in short read transactions (any
 * process that has the store open: tern-admind reads here directly), and
 * the state changes (hold, release, retry now, delete) applied through
 * the store's writer in one transaction each.
 *
 * Hold is a flag on the queue record: the pending recipients of a held
 * message leave queue_due (so the runner never sees them due, also after
 * a restart) and keep their next_attempt; release and retry put them
 * back due now. The runner's own results respect the flag (queue.c), so
 * an attempt in flight when the hold lands does not re-arm the message.
 *
 * Failures: STORE_NOTFOUND for a message that is not queued, LMDB errors
 * as STORE_TEMPFAIL, records that do not decode STORE_PERMFAIL (left for
 * `ternd store check`).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/compat.h"
#include "storage/mailtext.h"
#include "storage/queue.h"
#include "storage/store_internal.h"

/* A header field value kept for show is cut here: it is a summary. */
#define HEADER_VALUE_MAX 998
/* The header section read for the summary: past this it is not looked at. */
#define HEADER_SCAN_MAX (256 * 1024)

const char *
queue_msg_state_name(enum queue_msg_state s)
{
	switch (s) {
	case QUEUE_MSG_QUEUED:
		return "queued";
	case QUEUE_MSG_DEFERRED:
		return "deferred";
	case QUEUE_MSG_HELD:
		return "held";
	}
	return "?";
}

enum queue_msg_state
queue_msg_state_parse(const char *s)
{
	static const enum queue_msg_state all[] = {QUEUE_MSG_QUEUED, QUEUE_MSG_DEFERRED,
						   QUEUE_MSG_HELD};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (strcasecmp(s, queue_msg_state_name(all[i])) == 0)
			return all[i];
	return 0;
}

int
queue_id_parse(const char *s, uint64_t *id_r)
{
	uint64_t v = 0;
	size_t n = 0;

	if (s == NULL)
		return -1;
	for (; s[n] != '\0'; n++) {
		char ch = s[n];
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return -1;
		if (n >= 16)
			return -1;
		v = v << 4 | d;
	}
	if (n == 0 || v == 0)
		return -1;
	*id_r = v;
	return 0;
}

/* ---- filters (pure) ---- */

static const char *
domain_part(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : "";
}

bool
queue_filter_match(const struct queue_filter *f, const struct queue_info *m, time_t now)
{
	if (f->sender != NULL && strcasecmp(f->sender, m->sender) != 0)
		return false;
	if (f->state != 0 && f->state != m->state)
		return false;
	/* Older than N seconds: queued at or before now - N. */
	if (f->older_than != 0 &&
	    (now < (time_t)f->older_than || m->created > now - (time_t)f->older_than))
		return false;
	if (f->recipient == NULL && f->domain == NULL)
		return true;
	bool rcpt_ok = f->recipient == NULL, dom_ok = f->domain == NULL;
	for (size_t i = 0; i < m->nrcpts; i++) {
		const char *a = m->rcpts[i].address;
		if (f->recipient != NULL && strcasecmp(f->recipient, a) == 0)
			rcpt_ok = true;
		if (f->domain != NULL && strcasecmp(f->domain, domain_part(a)) == 0)
			dom_ok = true;
	}
	return rcpt_ok && dom_ok;
}

/* ---- header summary (pure) ---- */

static const char *
header_value(struct arena *a, const char *v, size_t n)
{
	struct buf b;
	const char *out;

	buf_init(&b, 4 * HEADER_VALUE_MAX + 64);
	if (n > 4 * HEADER_VALUE_MAX)
		n = 4 * HEADER_VALUE_MAX;
	if (mailtext_decode_header(v, n, &b) < 0 || b.data == NULL) {
		buf_free(&b);
		return arena_strndup(a, v, n > HEADER_VALUE_MAX ? HEADER_VALUE_MAX : n);
	}
	size_t len = b.len;
	while (len > 0 && (b.data[len - 1] == ' ' || b.data[len - 1] == '\t'))
		len--;
	size_t start = 0;
	while (start < len && (b.data[start] == ' ' || b.data[start] == '\t'))
		start++;
	if (len - start > HEADER_VALUE_MAX)
		len = start + HEADER_VALUE_MAX;
	out = arena_strndup(a, b.data + start, len - start);
	buf_free(&b);
	return out;
}

void
queue_headers_parse(const char *msg, size_t len, struct arena *a, struct queue_headers *h)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
	    {"from", offsetof(struct queue_headers, from)},
	    {"to", offsetof(struct queue_headers, to)},
	    {"cc", offsetof(struct queue_headers, cc)},
	    {"subject", offsetof(struct queue_headers, subject)},
	    {"date", offsetof(struct queue_headers, date)},
	    {"message-id", offsetof(struct queue_headers, message_id)},
	};
	size_t pos = 0;

	memset(h, 0, sizeof(*h));
	if (len > HEADER_SCAN_MAX)
		len = HEADER_SCAN_MAX;
	while (pos < len) {
		/* One field: its first line and continuation lines. */
		size_t start = pos, end;
		const char *nl = memchr(msg + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		if (end - start <= 2 && (msg[start] == '\n' || msg[start] == '\r'))
			break; /* the empty line: end of the header */
		while (end < len && (msg[end] == ' ' || msg[end] == '\t')) {
			nl = memchr(msg + end, '\n', len - end);
			end = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		}
		pos = end;
		const char *colon = memchr(msg + start, ':', end - start);
		if (colon == NULL)
			continue;
		size_t nlen = (size_t)(colon - (msg + start));
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
			const char **slot = (const char **)((char *)h + fields[i].off);
			if (*slot != NULL || strlen(fields[i].name) != nlen ||
			    strncasecmp(msg + start, fields[i].name, nlen) != 0)
				continue;
			const char *v = colon + 1;
			size_t vlen = (size_t)(msg + end - v);
			*slot = header_value(a, v, vlen);
		}
	}
}

/* ---- reading ---- */

static const char *
dup_opt(struct arena *a, const char *s, size_t n)
{
	return n > 0 ? arena_strndup(a, s, n) : NULL;
}

/* Fills *info from the entry's record m (decoded from the txn) and its
 * recipient records. */
static int
info_load(MDB_txn *txn, uint64_t qid, const struct queue_msg_rec *m, struct arena *a,
	  struct queue_info *info)
{
	int rc;

	memset(info, 0, sizeof(*info));
	info->queue_id = qid;
	info->sender = arena_strndup(a, m->sender, m->sender_len);
	info->origin = (enum queue_origin)m->origin;
	info->auth_user = dup_opt(a, m->auth_user, m->auth_user_len);
	info->envid = dup_opt(a, m->envid, m->envid_len);
	info->client = dup_opt(a, m->client, m->client_len);
	info->ret = (enum queue_ret)m->ret;
	info->smtputf8 = (m->flags & QUEUE_F_SMTPUTF8) != 0;
	info->eightbit = (m->flags & QUEUE_F_8BIT) != 0;
	info->requiretls = (m->flags & QUEUE_F_REQUIRETLS) != 0;
	info->held = (m->flags & QUEUE_F_HELD) != 0;
	info->created = (time_t)m->created;
	info->size = m->size;
	info->rcpts = arena_alloc(a, m->nrcpts * sizeof(*info->rcpts));
	bool tried = false;
	for (uint32_t i = 0; i < m->nrcpts; i++) {
		uint8_t rk[QUEUE_RCPT_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(rk), .mv_data = rk}, v;
		struct queue_rcpt_rec r;

		queue_key_rcpt(rk, qid, i);
		if ((rc = mdb_get(txn, store_g->queue_rcpt, &k, &v)) != 0) {
			if (rc == MDB_NOTFOUND)
				continue; /* store check reports it */
			return rc;
		}
		if (queue_rcpt_decode(v.mv_data, v.mv_size, &r) < 0)
			return STORE_PERMFAIL;
		struct queue_rcpt_info *ri = &info->rcpts[info->nrcpts++];
		ri->idx = i;
		ri->address = arena_strndup(a, r.address, r.address_len);
		ri->orcpt = dup_opt(a, r.orcpt, r.orcpt_len);
		ri->state = r.state == QUEUE_R_DELIVERED ? QUEUE_RCPT_DELIVERED
			    : r.state == QUEUE_R_FAILED	 ? QUEUE_RCPT_FAILED
							 : QUEUE_RCPT_PENDING;
		ri->notify = r.notify;
		ri->delay_warned = (r.flags & QUEUE_RF_DELAY_WARNED) != 0;
		ri->attempts = r.attempts;
		ri->next_attempt = (time_t)r.next_attempt;
		ri->last_error = dup_opt(a, r.last_error, r.last_error_len);
		if (r.attempts > 0)
			tried = true;
	}
	info->state = info->held ? QUEUE_MSG_HELD : tried ? QUEUE_MSG_DEFERRED : QUEUE_MSG_QUEUED;
	return 0;
}

int
queue_list(const struct queue_filter *f, uint64_t after, size_t limit, time_t now, struct arena *a,
	   struct queue_info **items_r, size_t *n_r, bool *more_r)
{
	struct queue_info *items = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k, v;
	uint8_t key[QUEUE_KEY_LEN];
	int rc;

	*items_r = NULL;
	*n_r = 0;
	*more_r = false;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_cursor_open(txn, store_g->queue, &cur)) != 0)
		goto out;
	/* Keys are big-endian queue ids: start at the first one past after. */
	be_put64(key, after + 1);
	k.mv_size = sizeof(key);
	k.mv_data = key;
	/* Filtered-out entries are read into a scratch arena cleared per
	 * entry, so a large queue does not fill the request's arena. */
	struct arena *tmp = arena_new(0);
	for (rc = after == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_msg_rec m;
		struct queue_info info;

		if (k.mv_size != QUEUE_KEY_LEN || queue_msg_decode(v.mv_data, v.mv_size, &m) < 0)
			continue; /* store check reports it */
		uint64_t qid = be_get64(k.mv_data);
		arena_clear(tmp);
		if ((rc = info_load(txn, qid, &m, tmp, &info)) != 0) {
			if (rc == STORE_PERMFAIL) {
				rc = 0;
				continue;
			}
			break;
		}
		if (f != NULL && !queue_filter_match(f, &info, now))
			continue;
		if (n == limit) {
			*more_r = true;
			break;
		}
		if (n == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct queue_info *ni = arena_alloc(a, ncap * sizeof(*ni));
			if (n > 0)
				memcpy(ni, items, n * sizeof(*ni));
			items = ni;
			cap = ncap;
		}
		/* Again into a: info_load is cheap next to the copy logic. */
		if ((rc = info_load(txn, qid, &m, a, &items[n])) != 0)
			break;
		n++;
	}
	arena_destroy(&tmp);
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (rc != 0)
		return store_rc_status(rc);
	*items_r = items;
	*n_r = n;
	return STORE_OK;
}

int
queue_get(uint64_t queue_id, struct arena *a, struct queue_info *info_r)
{
	uint8_t key[QUEUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	struct queue_msg_rec m;
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	be_put64(key, queue_id);
	rc = mdb_get(txn, store_g->queue, &k, &v);
	if (rc == 0)
		rc = queue_msg_decode(v.mv_data, v.mv_size, &m) < 0
			 ? STORE_PERMFAIL
			 : info_load(txn, queue_id, &m, a, info_r);
	store_read_end(txn);
	return store_rc_status(rc);
}

/* ---- changes (writer thread) ---- */

/* The entry's record, copied out of the txn (it is rewritten below). */
static int
msg_load(MDB_txn *txn, uint64_t qid, struct queue_msg_rec *m, uint8_t **copy_r)
{
	uint8_t key[QUEUE_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	int rc;

	*copy_r = NULL;
	be_put64(key, qid);
	if ((rc = mdb_get(txn, store_g->queue, &k, &v)) != 0)
		return rc;
	*copy_r = xmalloc(v.mv_size);
	memcpy(*copy_r, v.mv_data, v.mv_size);
	if (queue_msg_decode(*copy_r, v.mv_size, m) < 0)
		return STORE_PERMFAIL;
	return 0;
}

static int
msg_put(MDB_txn *txn, uint64_t qid, const struct queue_msg_rec *m)
{
	uint8_t key[QUEUE_KEY_LEN];
	size_t n = queue_msg_size(m);
	uint8_t *val = xmalloc(n);
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v = {.mv_size = n, .mv_data = val};
	int rc;

	be_put64(key, qid);
	queue_msg_encode(val, m);
	rc = mdb_put(txn, store_g->queue, &k, &v, 0);
	free(val);
	return rc;
}

/* For each pending recipient: out of queue_due (hold), or due at `now`
 * (release, retry), or out of everything (delete). */
enum rcpt_action { RA_UNDUE, RA_DUE_NOW, RA_REMOVE };

static int
each_rcpt(MDB_txn *txn, uint64_t qid, uint32_t nrcpts, enum rcpt_action act, time_t now)
{
	int rc;

	for (uint32_t i = 0; i < nrcpts; i++) {
		uint8_t rk[QUEUE_RCPT_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(rk), .mv_data = rk}, v;
		struct queue_rcpt_rec r;

		queue_key_rcpt(rk, qid, i);
		rc = mdb_get(txn, store_g->queue_rcpt, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			return rc;
		if (queue_rcpt_decode(v.mv_data, v.mv_size, &r) < 0)
			return STORE_PERMFAIL;
		bool pending = r.state == QUEUE_R_PENDING;
		int64_t old_due = r.next_attempt;
		switch (act) {
		case RA_UNDUE:
			if (pending && (rc = queue_due_del(txn, old_due, qid, i)) != 0)
				return rc;
			break;
		case RA_DUE_NOW:
			if (!pending)
				break;
			r.next_attempt = (int64_t)now;
			/* r's strings point into v: write the record first. */
			if ((rc = queue_rcpt_put(txn, qid, i, &r)) != 0 ||
			    (rc = queue_due_del(txn, old_due, qid, i)) != 0 ||
			    (rc = queue_due_put(txn, r.next_attempt, qid, i)) != 0)
				return rc;
			break;
		case RA_REMOVE:
			if (pending && (rc = queue_due_del(txn, old_due, qid, i)) != 0)
				return rc;
			if ((rc = mdb_del(txn, store_g->queue_rcpt, &k, NULL)) != 0)
				return rc;
			break;
		}
	}
	return 0;
}

static int
apply_admin(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct queue_admin *q = (struct queue_admin *)req;
	struct queue_msg_rec m;
	uint8_t *copy = NULL;
	int rc;

	q->result = QUEUE_ADMIN_DONE;
	if ((rc = msg_load(txn, q->queue_id, &m, &copy)) != 0)
		goto out;
	bool held = (m.flags & QUEUE_F_HELD) != 0;
	switch (q->op) {
	case QUEUE_OP_HOLD:
		if (held) {
			q->result = QUEUE_ADMIN_UNCHANGED;
			break;
		}
		m.flags |= QUEUE_F_HELD;
		if ((rc = msg_put(txn, q->queue_id, &m)) == 0)
			rc = each_rcpt(txn, q->queue_id, m.nrcpts, RA_UNDUE, q->now);
		break;
	case QUEUE_OP_RELEASE:
		if (!held) {
			q->result = QUEUE_ADMIN_NOT_HELD;
			break;
		}
		m.flags &= (uint8_t)~QUEUE_F_HELD;
		if ((rc = msg_put(txn, q->queue_id, &m)) == 0)
			rc = each_rcpt(txn, q->queue_id, m.nrcpts, RA_DUE_NOW, q->now);
		break;
	case QUEUE_OP_RETRY:
		if (held) {
			q->result = QUEUE_ADMIN_IS_HELD;
			break;
		}
		rc = each_rcpt(txn, q->queue_id, m.nrcpts, RA_DUE_NOW, q->now);
		break;
	case QUEUE_OP_DELETE: {
		uint8_t key[QUEUE_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
		be_put64(key, q->queue_id);
		if ((rc = each_rcpt(txn, q->queue_id, m.nrcpts, RA_REMOVE, q->now)) == 0 &&
		    (rc = mdb_del(txn, store_g->queue, &k, NULL)) == 0)
			rc = store_blob_unref(txn, m.hash);
		break;
	}
	default:
		rc = STORE_PERMFAIL;
	}
out:
	free(copy);
	/* Due again: the runner scans at once instead of at its timer. */
	if (rc == 0 && q->result == QUEUE_ADMIN_DONE &&
	    (q->op == QUEUE_OP_RELEASE || q->op == QUEUE_OP_RETRY))
		wc->queued = true;
	return rc;
}

void
queue_admin(struct queue_admin *q)
{
	store_submit(&q->req, apply_admin, 64);
}
