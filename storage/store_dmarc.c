/*
 * store_dmarc.c - the DMARC aggregate report counts in the `dmarc`
 * database (see store_dmarc.h; layout in store_schema.h): adding counts
 * through the writer, listing them for a report, and the report's own
 * transaction, which queues the report and takes its counts off.
 *
 * How it fails: a write that cannot commit returns its STORE_* status
 * (the counts of that flush are lost, the caller logs it); a record that
 * does not decode is skipped by the list and logged, and left for a
 * later report to overwrite or drop.
 */
#include <string.h>

#include <openssl/evp.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/queue.h"
#include "storage/store_dmarc.h"
#include "storage/store_internal.h"

#define KIND_POLICY 0x00
#define KIND_ROW 0x01
#define VAL_HDR 16 /* version, padding, i64 begin / u64 count */
#define KEY_MAX (STORE_DMARC_DOMAIN_MAX + 1 + STORE_DMARC_ROW_HASH)

static size_t
key_policy(uint8_t *k, const char *domain)
{
	size_t n = strlen(domain);
	memcpy(k, domain, n);
	k[n] = KIND_POLICY;
	return n + 1;
}

static size_t
key_row(uint8_t *k, const char *domain, const uint8_t hash[STORE_DMARC_ROW_HASH])
{
	size_t n = strlen(domain);
	memcpy(k, domain, n);
	k[n] = KIND_ROW;
	memcpy(k + n + 1, hash, STORE_DMARC_ROW_HASH);
	return n + 1 + STORE_DMARC_ROW_HASH;
}

static int
row_hash(const void *row, size_t len, uint8_t out[STORE_DMARC_ROW_HASH])
{
	uint8_t h[32];
	if (EVP_Digest(row, len, h, NULL, EVP_sha256(), NULL) != 1)
		return STORE_TEMPFAIL;
	memcpy(out, h, STORE_DMARC_ROW_HASH);
	return 0;
}

static bool
domain_ok(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > STORE_DMARC_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)d[i] <= 0x20)
			return false;
	return true;
}

/* Writes a record: 16-byte header (version 1, u64 at 8) then bytes. */
static int
put_rec(MDB_txn *txn, const uint8_t *k, size_t klen, uint64_t n, const void *p, size_t len)
{
	MDB_val key = {.mv_size = klen, .mv_data = (void *)k};
	MDB_val v = {.mv_size = VAL_HDR + len, .mv_data = NULL};
	int rc = mdb_put(txn, store_g->dmarc, &key, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	uint8_t *o = v.mv_data;
	memset(o, 0, VAL_HDR);
	o[0] = 1;
	be_put64(o + 8, n);
	if (len > 0)
		memcpy(o + VAL_HDR, p, len);
	return 0;
}

/* The u64 of an existing record (MDB_NOTFOUND when absent). */
static int
get_u64(MDB_txn *txn, const uint8_t *k, size_t klen, uint64_t *n_r)
{
	MDB_val key = {.mv_size = klen, .mv_data = (void *)k}, v;
	int rc = mdb_get(txn, store_g->dmarc, &key, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size < VAL_HDR || ((const uint8_t *)v.mv_data)[0] != 1)
		return STORE_PERMFAIL;
	*n_r = be_get64((const uint8_t *)v.mv_data + 8);
	return 0;
}

/* ---- adding counts ---- */

struct dmarc_add {
	struct store_req req;
	const struct store_dmarc_note *notes;
	size_t n;
};

static int
apply_add(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct dmarc_add *r = (struct dmarc_add *)req;
	uint8_t k[KEY_MAX], hash[STORE_DMARC_ROW_HASH];
	int rc;

	(void)wc;
	for (size_t i = 0; i < r->n; i++) {
		const struct store_dmarc_note *nt = &r->notes[i];
		if (!domain_ok(nt->domain))
			continue;
		/* the policy: kept begin (or this note's time), newest text */
		size_t kl = key_policy(k, nt->domain);
		uint64_t begin = (uint64_t)nt->when;
		rc = get_u64(txn, k, kl, &begin);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if ((rc = put_rec(txn, k, kl, begin, nt->policy, nt->policy_len)) != 0)
			return rc;
		if ((rc = row_hash(nt->row, nt->row_len, hash)) != 0)
			return rc;
		kl = key_row(k, nt->domain, hash);
		uint64_t count = 0;
		rc = get_u64(txn, k, kl, &count);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if ((rc = put_rec(txn, k, kl, count + nt->count, nt->row, nt->row_len)) != 0)
			return rc;
	}
	return 0;
}

int
store_dmarc_add_sync(const struct store_dmarc_note *notes, size_t n)
{
	struct dmarc_add r = {.notes = notes, .n = n};
	struct store_sync s;
	uint64_t bytes = 0;

	if (n == 0)
		return STORE_OK;
	for (size_t i = 0; i < n; i++)
		bytes += notes[i].row_len + notes[i].policy_len + 64;
	store_sync_prepare(&s, &r.req);
	store_submit(&r.req, apply_add, bytes);
	store_sync_wait(&s);
	return r.req.status;
}

/* ---- listing ---- */

static int
list_txn(MDB_txn *txn, MDB_dbi dbi, struct arena *a, struct store_dmarc_domain **domains_r,
	 size_t *n_r)
{
	struct store_dmarc_domain *d = NULL, *cur = NULL;
	size_t n = 0, cap = 0, rcap = 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data, *vp = v.mv_data;
		const uint8_t *sep = memchr(kp, KIND_POLICY, k.mv_size);
		const uint8_t *sep1 = memchr(kp, KIND_ROW, k.mv_size);
		if (sep == NULL || (sep1 != NULL && sep1 < sep))
			sep = sep1;
		size_t dl = sep != NULL ? (size_t)(sep - kp) : 0;
		bool policy = sep != NULL && *sep == KIND_POLICY && k.mv_size == dl + 1;
		bool row =
		    sep != NULL && *sep == KIND_ROW && k.mv_size == dl + 1 + STORE_DMARC_ROW_HASH;
		if (dl == 0 || (!policy && !row) || v.mv_size < VAL_HDR || vp[0] != 1) {
			log_warn(0, "store", "dmarc-record-skipped reason=undecodable");
			continue;
		}
		if (cur == NULL || strlen(cur->domain) != dl || memcmp(cur->domain, kp, dl) != 0) {
			if (!policy) {
				/* rows without their policy record */
				log_warn(0, "store", "dmarc-record-skipped reason=no-policy");
				continue;
			}
			if (n == cap) {
				cap = cap == 0 ? 8 : cap * 2;
				d = xrealloc(d, cap * sizeof(*d));
			}
			cur = &d[n++];
			memset(cur, 0, sizeof(*cur));
			cur->domain = arena_strndup(a, (const char *)kp, dl);
			rcap = 0;
		}
		if (policy) {
			cur->begin = (int64_t)be_get64(vp + 8);
			cur->policy_len = v.mv_size - VAL_HDR;
			cur->policy = arena_memdup(a, vp + VAL_HDR, cur->policy_len);
			continue;
		}
		if (cur->nrows == rcap) {
			rcap = rcap == 0 ? 8 : rcap * 2;
			struct store_dmarc_row *nr = arena_alloc(a, rcap * sizeof(*nr));
			if (cur->nrows > 0)
				memcpy(nr, cur->rows, cur->nrows * sizeof(*nr));
			cur->rows = nr;
		}
		struct store_dmarc_row *r = &cur->rows[cur->nrows++];
		memcpy(r->hash, kp + dl + 1, STORE_DMARC_ROW_HASH);
		r->count = be_get64(vp + 8);
		r->row_len = v.mv_size - VAL_HDR;
		r->row = arena_memdup(a, vp + VAL_HDR, r->row_len);
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND) {
		free(d);
		return rc;
	}
	/* only domains with rows, copied into the arena */
	size_t m = 0;
	struct store_dmarc_domain *out = arena_alloc(a, (n + 1) * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		if (d[i].nrows > 0)
			out[m++] = d[i];
	free(d);
	*domains_r = out;
	*n_r = m;
	return 0;
}

int
store_dmarc_list(struct arena *a, struct store_dmarc_domain **domains_r, size_t *n_r)
{
	MDB_txn *txn;
	int rc;

	*domains_r = NULL;
	*n_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = list_txn(txn, store_g->dmarc, a, domains_r, n_r);
	store_read_end(txn);
	return store_rc_status(rc);
}

int
store_dmarc_list_path(const char *path, struct arena *a, struct store_dmarc_domain **domains_r,
		      size_t *n_r, char **error_r)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	*domains_r = NULL;
	*n_r = 0;
	if (store_env_open_rdonly(path, false, &env, error_r) < 0)
		return -1;
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(env, 0);
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	}
	if (rc == 0) {
		rc = mdb_dbi_open(txn, "dmarc", 0, &dbi);
		if (rc == 0)
			rc = list_txn(txn, dbi, a, domains_r, n_r);
		else if (rc == MDB_NOTFOUND)
			rc = 0; /* no ternd with reports has opened it yet */
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (rc != 0) {
		*error_r = xstrfmt("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

/* ---- a report made ---- */

struct dmarc_sent {
	struct store_req req;
	const struct store_dmarc_domain *d;
	int64_t end;
	struct store_delivery *report;
};

static int
apply_sent(MDB_txn *txn, struct store_req *req, struct store_wctx *wc)
{
	struct dmarc_sent *r = (struct dmarc_sent *)req;
	const struct store_dmarc_domain *d = r->d;
	uint8_t k[KEY_MAX];
	size_t kl;
	int rc;

	if (!domain_ok(d->domain))
		return STORE_PERMFAIL;
	for (size_t i = 0; i < d->nrows; i++) {
		uint64_t now = 0;
		kl = key_row(k, d->domain, d->rows[i].hash);
		rc = get_u64(txn, k, kl, &now);
		if (rc == MDB_NOTFOUND || rc == STORE_PERMFAIL || now <= d->rows[i].count) {
			MDB_val key = {.mv_size = kl, .mv_data = k};
			rc = mdb_del(txn, store_g->dmarc, &key, NULL);
			if (rc != 0 && rc != MDB_NOTFOUND)
				return rc;
			continue;
		}
		if (rc != 0)
			return rc;
		/* counted again meanwhile: keep the rest */
		if ((rc = put_rec(txn, k, kl, now - d->rows[i].count, d->rows[i].row,
				  d->rows[i].row_len)) != 0)
			return rc;
	}
	/* any row left starts the next period at end; else the domain goes */
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, store_g->dmarc, &c)) != 0)
		return rc;
	kl = key_policy(k, d->domain);
	k[kl - 1] = KIND_ROW;
	MDB_val key = {.mv_size = kl, .mv_data = k}, v;
	rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
	bool left = rc == 0 && key.mv_size > kl && memcmp(key.mv_data, k, kl) == 0;
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	kl = key_policy(k, d->domain);
	if (left) {
		rc = put_rec(txn, k, kl, (uint64_t)r->end, d->policy, d->policy_len);
	} else {
		key = (MDB_val){.mv_size = kl, .mv_data = k};
		rc = mdb_del(txn, store_g->dmarc, &key, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc != 0 || r->report == NULL)
		return rc;
	/* the report joins the queue in this transaction */
	struct store_delivery *dl = r->report;
	uint8_t hash[STORE_HASH_LEN];
	if (EVP_Digest(dl->body, dl->body_len, hash, NULL, EVP_sha256(), NULL) != 1)
		return STORE_TEMPFAIL;
	dl->status = STORE_OK;
	int64_t date = dl->internal_date != 0 ? (int64_t)dl->internal_date : r->end;
	return store_apply_deliver(txn, dl, hash, date, wc);
}

int
store_dmarc_sent_sync(const struct store_dmarc_domain *d, int64_t end,
		      struct store_delivery *report)
{
	struct dmarc_sent r = {.d = d, .end = end, .report = report};
	struct store_sync s;

	store_sync_prepare(&s, &r.req);
	store_submit(&r.req, apply_sent, 64 * (d->nrows + 1) + (report ? report->body_len : 0));
	store_sync_wait(&s);
	return r.req.status;
}
