/*
 * store_fts.c - the full-text index behind IMAP SEARCH BODY and TEXT.
 *
 * IMAP SEARCH BODY/TEXT are substring matches on the canonical
 * (i;unicode-casemap) decoded text (RFC 9051 6.4.4, RFC 5051), so an index
 * of whole words cannot answer them exactly. This one indexes byte
 * trigrams of exactly the text the scan matches (storage/mailtext_msg.c):
 * for each mailbox and each 3-byte sequence of the canonical text, the
 * sorted set of UIDs whose text holds it, the header ('H') and the body
 * ('B') apart. Every 3-byte window of a needle lies in the text of every
 * message that contains the needle, so the intersection of the needle's
 * trigram postings is a superset of the matches: SEARCH then confirms each
 * candidate with the scan's own matcher, and the result is the scan's.
 * A needle shorter than 3 bytes gets no candidates from here (the caller
 * scans).
 *
 * Layout (db `fts`, MDB_DUPSORT | MDB_DUPFIXED, every integer big-endian):
 *   user u64 | mailbox u32 | 'H' or 'B' | gram[3]  -> u32 uid (dups)
 *   user u64 | mailbox u32 | 'W'                   -> u32 uid: the
 *                         watermark, every message up to it is indexed
 *                         (absent: 0, nothing is)
 *   user u64 | mailbox u32 | 'U'                   -> u32 uid (dups):
 *                         messages whose text could not be read (or was
 *                         too big) when they were indexed; always
 *                         candidates
 * Nothing here is written by a delivery, APPEND, COPY/MOVE or RENAME: a
 * message adds 1,000-2,000 postings, and writing them one message per
 * transaction made storing a message ~100 times slower. Those operations
 * only note the mailbox as pending (in memory, store_fts_note); the writer
 * thread (store_writer.c) catches up FTS_INDEX_DELAY_MS after the first
 * note, when it has no other work, in transactions of at most
 * FTS_BATCH_MSGS messages or FTS_BATCH_NS, so a burst is indexed together
 * (each posting page touched once a batch) and deliveries never wait more
 * than one short batch. At start-up every mailbox whose newest UID is above
 * its watermark is pending (a restart, or a store older than the index).
 * SEARCH uses the candidates only for UIDs up to the watermark read in the
 * same transaction and scans every UID above it, so its result is the
 * scan's at every moment. Expunged UIDs are left in place (UIDs are never
 * reused in a mailbox, and SEARCH only evaluates live messages, so a stale
 * posting costs space, never a wrong answer) until a rebuild drops them;
 * deleting a mailbox or purging a user drops its postings.
 *
 * How it fails: an LMDB error while indexing aborts that batch (its
 * mailboxes stay pending and are retried; a full map is grown first); a
 * read error on the query side is STORE_TEMPFAIL and the caller scans
 * instead.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/mailtext.h"
#include "storage/mime.h"
#include "storage/store_internal.h"

#define FTS_PREFIX_LEN 13 /* user | mailbox | kind */
#define FTS_GRAM_KEY_LEN 16
#define FTS_QUERY_GRAMS 12 /* rarest grams of a needle intersected */
/* A text with more distinct trigrams than this (binary data decoded as
 * text, huge messages) is not indexed: its UID goes to the 'U' list and is
 * a candidate of every query, which stays exact and keeps one message from
 * writing millions of postings. Real prose of 1 MB has ~40,000. */
#define FTS_MAX_GRAMS 65536
/* A message bigger than this (trace + body) is not decoded at delivery at
 * all: it goes to the 'U' list (scanned by every BODY/TEXT search), so a
 * delivery never pays seconds of decoding. XXX size of its text parts,
 * not of the whole message, would keep text mail with big attachments
 * indexed. */
#define FTS_MAX_MESSAGE (512u * 1024u)

static void
fts_key(uint8_t k[FTS_GRAM_KEY_LEN], uint64_t user, uint32_t mbox, uint8_t kind, uint32_t gram)
{
	be_put64(k, user);
	be_put32(k + 8, mbox);
	k[12] = kind;
	k[13] = (uint8_t)(gram >> 16);
	k[14] = (uint8_t)(gram >> 8);
	k[15] = (uint8_t)gram;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

size_t
store_fts_grams(const char *t, size_t len, uint32_t *out)
{
	const unsigned char *p = (const unsigned char *)t;
	size_t n = 0;

	if (len < 3)
		return 0;
	for (size_t i = 0; i + 3 <= len; i++)
		out[n++] = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
	qsort(out, n, sizeof(*out), cmp_u32);
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (w == 0 || out[w - 1] != out[i])
			out[w++] = out[i];
	return w;
}

size_t
store_fts_intersect(uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
	size_t i = 0, j = 0, w = 0;

	while (i < na && j < nb) {
		if (a[i] < b[j])
			i++;
		else if (a[i] > b[j])
			j++;
		else {
			a[w++] = a[i];
			i++;
			j++;
		}
	}
	return w;
}

/* ---- writing ---- */

static int
put_u32(MDB_txn *txn, const uint8_t *key, size_t klen, uint32_t v32)
{
	uint8_t v[4];
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val d = {.mv_size = sizeof(v), .mv_data = v};

	be_put32(v, v32);
	int rc = mdb_put(txn, store_g->fts, &k, &d, MDB_NODUPDATA);
	return rc == MDB_KEYEXIST ? 0 : rc;
}

/* Puts uid under every distinct trigram of the canonical text t; *too_many
 * set (nothing written) past FTS_MAX_GRAMS. */
static int
put_grams(MDB_txn *txn, uint64_t user, uint32_t mbox, uint8_t kind, uint32_t uid, const char *t,
	  size_t len, bool *too_many)
{
	if (len < 3)
		return 0;
	uint32_t *g = xmalloc(len * sizeof(*g));
	size_t n = store_fts_grams(t, len, g);
	if (n > FTS_MAX_GRAMS) {
		*too_many = true;
		free(g);
		return 0;
	}
	uint8_t key[FTS_GRAM_KEY_LEN], v[4];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	MDB_val d = {.mv_size = sizeof(v), .mv_data = v};
	MDB_cursor *cur = NULL;
	int rc = mdb_cursor_open(txn, store_g->fts, &cur);

	be_put32(v, uid);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		fts_key(key, user, mbox, kind, g[i]);
		rc = mdb_cursor_put(cur, &k, &d, MDB_NODUPDATA);
		if (rc == MDB_KEYEXIST)
			rc = 0;
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	free(g);
	return rc;
}

struct txn_read {
	MDB_txn *txn;
	const struct msg_rec *r;
	bool failed;
};

static int
txn_read(void *arg, uint64_t off, uint64_t len, struct buf *out)
{
	struct txn_read *tr = arg;
	int rc = store_txn_msg_read_range(tr->txn, tr->r, off, len, out);
	if (rc != 0 && !(rc == STORE_TEMPFAIL && out->len >= out->max))
		tr->failed = true; /* a cap is the scan's cut too; others are not */
	return rc == 0 ? 0 : -1;
}

int
store_fts_add(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t uid)
{
	struct store_msg_w m;
	struct arena *a;
	const void *mime;
	size_t mime_len;
	struct mime_section root;
	struct buf hdr, canon;
	int rc = store_txn_msg_load(txn, user, mbox, uid, &m);

	if (rc != 0)
		return rc;
	a = arena_new(0);
	struct txn_read tr = {txn, &m.r, false}; /* failed: not (wholly) indexed */
	buf_init(&hdr, MAILTEXT_HEADER_MAX);
	buf_init(&canon, MAILTEXT_CANON_MAX);
	if (m.r.size > FTS_MAX_MESSAGE) {
		tr.failed = true;
		goto unindexed;
	}
	rc = store_txn_msg_mime(txn, &m.r, a, &mime, &mime_len);
	if (rc == 0 && mime_section_find(mime, mime_len, "", &root) < 0)
		rc = STORE_PERMFAIL;
	if (rc == 0) {
		/* The header as SEARCH TEXT reads it: trace + top header. */
		uint64_t hl = m.r.trace_len + root.hdr_len;
		if (hl > MAILTEXT_HEADER_MAX)
			hl = MAILTEXT_HEADER_MAX;
		if (txn_read(&tr, 0, hl, &hdr) == 0) {
			mailtext_header_canon(buf_cstr(&hdr), hdr.len, &canon);
			rc = put_grams(txn, user, mbox, 'H', uid, buf_cstr(&canon), canon.len,
				       &tr.failed);
		}
		if (rc == 0) {
			buf_reset(&canon);
			mailtext_msg_body(mime, mime_len, m.r.trace_len, txn_read, &tr, a, &canon);
			rc = put_grams(txn, user, mbox, 'B', uid, buf_cstr(&canon), canon.len,
				       &tr.failed);
		}
	}
unindexed:
	if ((rc == 0 && tr.failed) ||
	    (rc != 0 && rc != MDB_MAP_FULL && rc != MDB_TXN_FULL && rc != MDB_BAD_TXN)) {
		/* Text we could not read must never be missed: this UID is a
		 * candidate of every query. */
		uint8_t key[FTS_GRAM_KEY_LEN];
		fts_key(key, user, mbox, 'U', 0);
		if (rc != 0)
			log_info(0, "store",
				 "fts-unindexed user_id=%llu mailbox=%u uid=%u error=\"%s\"",
				 (unsigned long long)user, mbox, uid, store_rc_str(rc));
		rc = put_u32(txn, key, FTS_PREFIX_LEN, uid);
	}
	buf_free(&hdr);
	buf_free(&canon);
	arena_destroy(&a);
	store_msg_w_free(&m);
	return rc;
}

static int
watermark_get(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t *w_r)
{
	uint8_t key[FTS_GRAM_KEY_LEN];
	MDB_val k = {.mv_size = FTS_PREFIX_LEN, .mv_data = key}, d;
	int rc;

	*w_r = 0;
	fts_key(key, user, mbox, 'W', 0);
	rc = mdb_get(txn, store_g->fts, &k, &d);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && d.mv_size == 4)
		*w_r = be_get32(d.mv_data);
	return rc;
}

static int
watermark_put(MDB_txn *txn, uint64_t user, uint32_t mbox, uint32_t w)
{
	uint8_t key[FTS_GRAM_KEY_LEN], v[4];
	MDB_val k = {.mv_size = FTS_PREFIX_LEN, .mv_data = key};
	MDB_val d = {.mv_size = sizeof(v), .mv_data = v};

	fts_key(key, user, mbox, 'W', 0);
	be_put32(v, w);
	/* A single value under a DUPSORT key: replace, do not add a dup. */
	int rc = mdb_del(txn, store_g->fts, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	return mdb_put(txn, store_g->fts, &k, &d, 0);
}

int
store_fts_catch_up(MDB_txn *txn, uint64_t user, uint32_t mbox, unsigned max_msgs,
		   uint64_t deadline_ns, unsigned *indexed_r, bool *done_r)
{
	uint8_t prefix[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(prefix), .mv_data = prefix}, v;
	MDB_cursor *cur;
	uint32_t w, *uids = xmalloc((max_msgs + 1) * sizeof(*uids));
	size_t n = 0;
	int rc;

	*indexed_r = 0;
	*done_r = false;
	if ((rc = watermark_get(txn, user, mbox, &w)) != 0)
		goto out;
	if (w == UINT32_MAX) {
		*done_r = true;
		goto out;
	}
	/* The UIDs above the watermark first (store_fts_add opens cursors
	 * of its own), one more than the batch takes to see if it is all. */
	store_key_msg(prefix, user, mbox, w + 1);
	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n <= max_msgs;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, prefix, 12) != 0)
			break;
		uids[n++] = be_get32((const uint8_t *)k.mv_data + 12);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	rc = 0;
	*done_r = n <= max_msgs;
	if (n > max_msgs)
		n = max_msgs;
	size_t i;
	for (i = 0; rc == 0 && i < n; i++) {
		rc = store_fts_add(txn, user, mbox, uids[i]);
		if (rc == 0 && deadline_ns != 0 && i + 1 < n &&
		    store_fts_mono_ns() >= deadline_ns) {
			*done_r = false;
			i++;
			break;
		}
	}
	if (rc == 0 && i > 0) {
		*indexed_r = (unsigned)i;
		rc = watermark_put(txn, user, mbox, uids[i - 1]);
	}
out:
	free(uids);
	return rc;
}

uint64_t
store_fts_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the pending mailboxes (writer thread only) ---- */

struct fts_box {
	uint64_t user;
	uint32_t mbox;
};

static struct {
	struct fts_box *v;
	size_t n, cap;
	uint64_t due_ns; /* when the indexer may run; 0 = nothing pending */
	bool scanned;	 /* the start-up scan ran */
} pend;

static bool fts_off; /* [storage] search_indexer = no */

void
store_fts_background(bool on)
{
	fts_off = !on;
}

void
store_fts_note(uint64_t user, uint32_t mbox)
{
	if (fts_off)
		return;
	/* A mailbox noted in a row (a burst) is one entry; a stray
	 * duplicate further back costs one empty catch-up. */
	for (size_t i = pend.n > 16 ? pend.n - 16 : 0; i < pend.n; i++)
		if (pend.v[i].user == user && pend.v[i].mbox == mbox)
			return;
	if (pend.n == pend.cap) {
		pend.cap = pend.cap ? 2 * pend.cap : 64;
		pend.v = xrealloc(pend.v, pend.cap * sizeof(*pend.v));
	}
	pend.v[pend.n++] = (struct fts_box){user, mbox};
	if (pend.due_ns == 0)
		pend.due_ns = store_fts_mono_ns() + FTS_INDEX_DELAY_MS * 1000000ull;
}

uint64_t
store_fts_due(void)
{
	if (fts_off)
		return 0;
	if (!pend.scanned && pend.due_ns == 0)
		pend.due_ns = store_fts_mono_ns() + FTS_INDEX_DELAY_MS * 1000000ull;
	return pend.due_ns;
}

/* Every mailbox whose newest message is above its watermark. */
static int
startup_scan(MDB_txn *txn)
{
	MDB_cursor *mc, *uc;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, store_g->mbox, &mc)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, store_g->msg, &uc)) != 0) {
		mdb_cursor_close(mc);
		return rc;
	}
	for (rc = mdb_cursor_get(mc, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MBOX_KEY_LEN)
			continue;
		uint64_t user = be_get64(k.mv_data);
		uint32_t mbox = be_get32((const uint8_t *)k.mv_data + 8), w;
		uint8_t key[STORE_MSG_KEY_LEN];
		MDB_val mk = {.mv_size = sizeof(key), .mv_data = key}, mv;
		if ((rc = watermark_get(txn, user, mbox, &w)) != 0)
			break;
		if (w == UINT32_MAX)
			continue;
		store_key_msg(key, user, mbox, w + 1);
		rc = mdb_cursor_get(uc, &mk, &mv, MDB_SET_RANGE);
		if (rc == 0 && mk.mv_size == STORE_MSG_KEY_LEN && memcmp(mk.mv_data, key, 12) == 0)
			store_fts_note(user, mbox);
		else if (rc != 0 && rc != MDB_NOTFOUND)
			break;
	}
	mdb_cursor_close(uc);
	mdb_cursor_close(mc);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
store_fts_index_batch(MDB_txn *txn, unsigned *indexed_r, size_t *finished_r)
{
	uint64_t deadline = store_fts_mono_ns() + FTS_BATCH_NS;
	unsigned total = 0;
	size_t i = 0;
	int rc = 0;

	*indexed_r = 0;
	*finished_r = 0;
	if (!pend.scanned) {
		/* XXX one pass over every mailbox record, on the writer at
		 * the first idle moment; a few ms per 10,000 mailboxes. */
		if ((rc = startup_scan(txn)) != 0)
			return rc;
		pend.scanned = true;
	}
	for (; rc == 0 && i < pend.n && total < FTS_BATCH_MSGS; i++) {
		unsigned n;
		bool done;
		rc = store_fts_catch_up(txn, pend.v[i].user, pend.v[i].mbox, FTS_BATCH_MSGS - total,
					deadline, &n, &done);
		total += n;
		if (rc == 0 && !done)
			break; /* this one goes on in the next batch */
		if (store_fts_mono_ns() >= deadline) {
			i += rc == 0;
			break;
		}
	}
	*indexed_r = total;
	*finished_r = i;
	return rc;
}

void
store_fts_index_done(size_t finished, bool committed)
{
	if (committed && finished > 0) {
		memmove(pend.v, pend.v + finished, (pend.n - finished) * sizeof(*pend.v));
		pend.n -= finished;
	}
	/* More to do: as soon as the writer is idle again; after a failure,
	 * a second later. */
	if (pend.n == 0)
		pend.due_ns = 0;
	else
		pend.due_ns = store_fts_mono_ns() + (committed ? 0 : 1000000000ull);
}

int
store_fts_drop(MDB_txn *txn, uint64_t user, uint32_t mbox, bool all)
{
	uint8_t prefix[FTS_GRAM_KEY_LEN];
	size_t plen = all ? 8 : 12;
	MDB_val k, v;
	MDB_cursor *cur;
	int rc;

	fts_key(prefix, user, mbox, 0, 0);
	k.mv_size = plen;
	k.mv_data = prefix;
	if ((rc = mdb_cursor_open(txn, store_g->fts, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		/* All of the key's UIDs; the cursor then stands on the next
		 * key, which MDB_NEXT_NODUP returns (LMDB's C_DEL). */
		if ((rc = mdb_cursor_del(cur, MDB_NODUPDATA)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- rebuilding ---- */

/* One mailbox is rebuilt in several writer operations, so no transaction
 * grows past LMDB's dirty-page limit (MDB_TXN_FULL) however big the
 * mailbox: "begin" drops its index, watermark included (SEARCH scans it
 * meanwhile, which is exact), then each "add" indexes the next
 * REBUILD_SLICE messages above the watermark, as the background indexer
 * does, until none is left. */
#define REBUILD_SLICE 500

enum rb_step { RB_BEGIN, RB_ADD };

struct rebuild_req {
	struct store_req req;
	enum rb_step step;
	uint64_t user;
	uint32_t mbox;
	unsigned n; /* RB_ADD: out, messages indexed */
	bool done;  /* RB_ADD: out, none left */
};

static int
apply_rebuild(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct rebuild_req *r = (struct rebuild_req *)req;

	(void)wc;
	if (r->step == RB_ADD)
		return store_fts_catch_up(txn, r->user, r->mbox, REBUILD_SLICE, 0, &r->n, &r->done);
	return store_fts_drop(txn, r->user, r->mbox, false);
}

static int
rebuild_step(struct rebuild_req *r)
{
	struct store_sync s;

	store_sync_prepare(&s, &r->req);
	store_submit(&r->req, apply_rebuild, 0);
	store_sync_wait(&s);
	return r->req.status;
}

int
store_fts_rebuild(uint64_t *mailboxes_r, uint64_t *messages_r)
{
	struct {
		uint64_t user;
		uint32_t mbox;
	} *boxes = NULL;
	size_t nboxes = 0, cap = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*mailboxes_r = *messages_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = mdb_cursor_open(txn, store_g->mbox, &cur);
	for (rc = rc != 0 ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MBOX_KEY_LEN)
			continue;
		if (nboxes == cap) {
			cap = cap ? 2 * cap : 64;
			boxes = xrealloc(boxes, cap * sizeof(*boxes));
		}
		boxes[nboxes].user = be_get64(k.mv_data);
		boxes[nboxes].mbox = be_get32((const uint8_t *)k.mv_data + 8);
		nboxes++;
	}
	if (rc == MDB_NOTFOUND) {
		mdb_cursor_close(cur);
		rc = 0;
	}
	store_read_end(txn);
	rc = store_rc_status(rc);
	for (size_t b = 0; rc == STORE_OK && b < nboxes; b++) {
		struct rebuild_req r;
		memset(&r, 0, sizeof(r));
		r.user = boxes[b].user;
		r.mbox = boxes[b].mbox;
		r.step = RB_BEGIN;
		rc = rebuild_step(&r);
		while (rc == STORE_OK && !r.done) {
			r.step = RB_ADD;
			rc = rebuild_step(&r);
			*messages_r += r.n;
		}
		(*mailboxes_r)++;
	}
	free(boxes);
	return rc;
}

/* ---- querying ---- */

/* All UIDs of one key, appended to a growing array. */
static int
get_all(MDB_cursor *cur, const uint8_t *key, size_t klen, uint32_t **v_r, size_t *n_r,
	size_t *cap_r)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, d;
	int rc = mdb_cursor_get(cur, &k, &d, MDB_SET);

	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &d, MDB_GET_MULTIPLE);
	while (rc == 0) {
		size_t m = d.mv_size / 4;
		if (*n_r + m > *cap_r) {
			*cap_r = (*n_r + m) * 2;
			*v_r = xrealloc(*v_r, *cap_r * sizeof(**v_r));
		}
		for (size_t i = 0; i < m; i++)
			(*v_r)[(*n_r)++] = be_get32((const uint8_t *)d.mv_data + 4 * i);
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_MULTIPLE);
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

struct qgram {
	uint32_t gram;
	size_t count;
};

static int
cmp_count(const void *a, const void *b)
{
	const struct qgram *x = a, *y = b;
	return x->count < y->count ? -1 : x->count > y->count;
}

/* The candidates of one kind: intersection of the rarest grams. */
static int
kind_candidates(MDB_cursor *cur, uint64_t user, uint32_t mbox, uint8_t kind, const uint32_t *g,
		size_t ng, uint32_t **v_r, size_t *n_r)
{
	struct qgram *q = xmalloc(ng * sizeof(*q));
	uint8_t key[FTS_GRAM_KEY_LEN];
	uint32_t *v = NULL, *w = NULL;
	size_t n = 0, cap = 0, nw = 0, wcap = 0;
	int rc = 0;

	for (size_t i = 0; i < ng; i++) {
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, d;
		size_t c = 0;
		fts_key(key, user, mbox, kind, g[i]);
		rc = mdb_cursor_get(cur, &k, &d, MDB_SET);
		if (rc == MDB_NOTFOUND) {
			/* No message has this gram: nothing of this kind. */
			rc = 0;
			goto out;
		}
		if (rc != 0 || (rc = mdb_cursor_count(cur, &c)) != 0)
			goto out;
		q[i].gram = g[i];
		q[i].count = c;
	}
	qsort(q, ng, sizeof(*q), cmp_count);
	fts_key(key, user, mbox, kind, q[0].gram);
	if ((rc = get_all(cur, key, sizeof(key), &v, &n, &cap)) != 0)
		goto out;
	for (size_t i = 1; i < ng && i < FTS_QUERY_GRAMS && n > 0; i++) {
		if (q[i].count > 64 * n) {
			/* Probing each candidate beats reading a long list. */
			size_t keep = 0;
			for (size_t j = 0; j < n; j++) {
				uint8_t u[4];
				MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
				MDB_val d = {.mv_size = 4, .mv_data = u};
				fts_key(key, user, mbox, kind, q[i].gram);
				be_put32(u, v[j]);
				rc = mdb_cursor_get(cur, &k, &d, MDB_GET_BOTH);
				if (rc == 0)
					v[keep++] = v[j];
				else if (rc != MDB_NOTFOUND)
					goto out;
			}
			rc = 0;
			n = keep;
			continue;
		}
		nw = 0;
		fts_key(key, user, mbox, kind, q[i].gram);
		if ((rc = get_all(cur, key, sizeof(key), &w, &nw, &wcap)) != 0)
			goto out;
		n = store_fts_intersect(v, n, w, nw);
	}
	*v_r = v;
	*n_r = n;
	v = NULL;
out:
	if (v != NULL || rc != 0) {
		free(v);
		if (rc == 0) {
			*v_r = NULL;
			*n_r = 0;
		}
	}
	free(w);
	free(q);
	return rc;
}

/* The union of sorted lists x and y, in a. */
static uint32_t *
merge(struct arena *a, const uint32_t *x, size_t nx, const uint32_t *y, size_t ny, size_t *n_r)
{
	uint32_t *r = arena_alloc(a, (nx + ny + 1) * sizeof(*r));
	size_t n = 0, i = 0, j = 0;

	while (i < nx || j < ny) {
		uint32_t m = i < nx && (j >= ny || x[i] <= y[j]) ? x[i] : y[j];
		r[n++] = m;
		i += i < nx && x[i] == m;
		j += j < ny && y[j] == m;
	}
	*n_r = n;
	return r;
}

int
store_fts_candidates(const char *user_id, const char *mailbox, const char *needle, size_t nlen,
		     struct arena *a, uint32_t **uids_r, size_t *n_r, uint32_t **hdr_r,
		     size_t *nhdr_r, uint32_t *through_r)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	uint64_t user;
	uint32_t mbox;
	uint32_t *g = NULL, *h = NULL, *b = NULL, *u = NULL;
	size_t ng, nh = 0, nb = 0, nu = 0, ucap = 0;
	uint8_t key[FTS_GRAM_KEY_LEN];
	int rc;

	*uids_r = NULL;
	*n_r = 0;
	if (hdr_r != NULL) {
		*hdr_r = NULL;
		*nhdr_r = 0;
	}
	*through_r = 0;
	if (nlen < 3)
		return STORE_NOTFOUND; /* no trigram: the caller scans */
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_user_lookup(txn, user_id, &user);
	if (rc == 0)
		rc = store_mbox_lookup(txn, user, store_mbox_canon(mailbox), &mbox);
	if (rc == 0)
		rc = mdb_cursor_open(txn, store_g->fts, &cur);
	if (rc != 0)
		goto out;
	/* Read in the same transaction as the postings: every message up to
	 * it is in them (or in 'U'). */
	if ((rc = watermark_get(txn, user, mbox, through_r)) != 0)
		goto out;
	if (*through_r == 0) {
		rc = MDB_NOTFOUND; /* nothing indexed yet: scan */
		goto out;
	}
	g = xmalloc(nlen * sizeof(*g));
	ng = store_fts_grams(needle, nlen, g);
	if ((rc = kind_candidates(cur, user, mbox, 'B', g, ng, &b, &nb)) != 0)
		goto out;
	if (hdr_r != NULL && (rc = kind_candidates(cur, user, mbox, 'H', g, ng, &h, &nh)) != 0)
		goto out;
	fts_key(key, user, mbox, 'U', 0);
	if ((rc = get_all(cur, key, FTS_PREFIX_LEN, &u, &nu, &ucap)) != 0)
		goto out;
	/* Unreadable texts ('U') are candidates of the header and the body. */
	size_t nhu, nbu;
	uint32_t *hu = merge(a, h, nh, u, nu, &nhu);
	uint32_t *bu = merge(a, b, nb, u, nu, &nbu);
	*uids_r = merge(a, hu, nhu, bu, nbu, n_r);
	if (hdr_r != NULL) {
		*hdr_r = hu;
		*nhdr_r = nhu;
	}
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	free(g);
	free(h);
	free(b);
	free(u);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	return store_rc_status(rc);
}
