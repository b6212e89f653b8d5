/*
 * store_blob.c - message bodies: one copy per distinct body, keyed by its
 * SHA-256, cut into chunks of STORE_CHUNK_SIZE input bytes, each stored as
 * one zstd frame, with the reference count in `blobref` so that a count
 * change never rewrites a body. A new body's MIME structure is parsed once
 * and kept in `mime` beside it, deleted with it. Writes run on the writer thread inside its
 * transaction; reads in the caller's read transaction.
 * Failures: LMDB codes pass through; a record that does not decode or a
 * chunk that does not decompress to what blobref says is STORE_PERMFAIL;
 * a compression failure or an output buffer cap is STORE_TEMPFAIL.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/compat.h"

#include "core/log.h"
#include "storage/store_internal.h"

static int
blobref_get(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], struct blobref_rec *r)
{
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash}, v;
	int rc = mdb_get(txn, store_g->blobref, &k, &v);

	if (rc != 0)
		return rc;
	return store_blobref_decode(v.mv_data, v.mv_size, r) < 0 ? STORE_PERMFAIL : 0;
}

static int
blobref_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const struct blobref_rec *r)
{
	uint8_t val[STORE_BLOBREF_LEN];
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash};
	MDB_val v = {.mv_size = sizeof(val), .mv_data = val};

	store_blobref_encode(val, r);
	return mdb_put(txn, store_g->blobref, &k, &v, 0);
}

int
store_blob_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body, size_t len,
	       uint32_t refs, ZSTD_CCtx *zc, int level, void *scratch, size_t scratch_len)
{
	struct blobref_rec r;
	int rc = blobref_get(txn, hash, &r);

	if (rc == 0) {
		/* Same hash, different length: not our body (or corruption). */
		if (r.length != len || r.refcount > UINT32_MAX - refs)
			return STORE_PERMFAIL;
		r.refcount += refs;
		return blobref_put(txn, hash, &r);
	}
	if (rc != MDB_NOTFOUND)
		return rc;

	r.refcount = refs;
	r.length = len;
	r.chunk_size = STORE_CHUNK_SIZE;
	r.nchunks = (uint32_t)((len + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE);
	for (uint32_t i = 0; i < r.nchunks; i++) {
		size_t off = (size_t)i * STORE_CHUNK_SIZE;
		size_t n = len - off < STORE_CHUNK_SIZE ? len - off : STORE_CHUNK_SIZE;
		size_t c = ZSTD_compressCCtx(zc, scratch, scratch_len, body + off, n, level);
		uint8_t key[STORE_BLOB_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
		MDB_val v = {.mv_size = c, .mv_data = scratch};

		if (ZSTD_isError(c)) {
			log_error(0, "store", "compress-failed error=\"%s\"", ZSTD_getErrorName(c));
			return STORE_TEMPFAIL;
		}
		store_key_blob(key, hash, i);
		if ((rc = mdb_put(txn, store_g->blob, &k, &v, 0)) != 0)
			return rc;
	}
	if ((rc = store_txn_mime_put(txn, hash, body, len)) != 0)
		return rc;
	return blobref_put(txn, hash, &r);
}

int
store_blob_addref(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint32_t refs)
{
	struct blobref_rec r;
	int rc = blobref_get(txn, hash, &r);

	if (rc == MDB_NOTFOUND)
		return STORE_PERMFAIL; /* a message pointing at no body */
	if (rc != 0)
		return rc;
	if (r.refcount > UINT32_MAX - refs)
		return STORE_LIMIT;
	r.refcount += refs;
	return blobref_put(txn, hash, &r);
}

int
store_blob_mime(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const void **p_r, size_t *len_r)
{
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash}, v;
	int rc = mdb_get(txn, store_g->mime, &k, &v);

	if (rc != 0)
		return rc;
	*p_r = v.mv_data;
	*len_r = v.mv_size;
	return 0;
}

int
store_blob_unref(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN])
{
	struct blobref_rec r;
	int rc = blobref_get(txn, hash, &r);

	if (rc == MDB_NOTFOUND)
		return STORE_PERMFAIL; /* a message pointing at no body */
	if (rc != 0)
		return rc;
	if (r.refcount > 1) {
		r.refcount--;
		return blobref_put(txn, hash, &r);
	}
	for (uint32_t i = 0; i < r.nchunks; i++) {
		uint8_t key[STORE_BLOB_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key};

		store_key_blob(key, hash, i);
		rc = mdb_del(txn, store_g->blob, &k, NULL);
		/* A chunk already gone is harmless here: we are freeing it. */
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash};
	rc = mdb_del(txn, store_g->mime, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) /* none for a pre-format-2 body */
		return rc;
	rc = mdb_del(txn, store_g->sortkey, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) /* none for one stored by an older build */
		return rc;
	rc = mdb_del(txn, store_g->hdr, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) /* none for an old or big-headed body */
		return rc;
	return mdb_del(txn, store_g->blobref, &k, NULL);
}

int
store_blob_read(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint64_t expect_len,
		struct buf *out)
{
	return store_blob_read_range(txn, hash, expect_len, 0, expect_len, out);
}

/* One decompression context per thread, made on first use and freed
 * when the thread ends: making one per read was a seventh of the cost of
 * a SEARCH over many small messages. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;

static void
dctx_free(void *dc)
{
	ZSTD_freeDCtx(dc);
}

static void
dctx_key_init(void)
{
	if (pthread_key_create(&dctx_key, dctx_free) != 0)
		fatal("pthread_key_create failed");
}

static ZSTD_DCtx *
thread_dctx(void)
{
	pthread_once(&dctx_once, dctx_key_init);
	ZSTD_DCtx *dc = pthread_getspecific(dctx_key);
	if (dc == NULL) {
		if ((dc = ZSTD_createDCtx()) == NULL)
			return NULL;
		if (pthread_setspecific(dctx_key, dc) != 0) {
			ZSTD_freeDCtx(dc);
			return NULL;
		}
	} else {
		ZSTD_DCtx_reset(dc, ZSTD_reset_session_only);
	}
	return dc;
}

/* The first n bytes of a compressed chunk into dst: decompression stops
 * once they are out (a header read of a big message decompresses the
 * header's block, not the attachment after it). 0 or -1 (corrupt). */
static int
decompress_prefix(ZSTD_DCtx *dc, const void *src, size_t srclen, char *dst, size_t n)
{
	ZSTD_inBuffer in = {.src = src, .size = srclen, .pos = 0};
	ZSTD_outBuffer o = {.dst = dst, .size = n, .pos = 0};

	while (o.pos < o.size) {
		size_t r = ZSTD_decompressStream(dc, &o, &in);
		if (ZSTD_isError(r))
			return -1;
		if (r == 0 || (in.pos == in.size && o.pos < o.size))
			break; /* frame over (or input gone) before n bytes */
	}
	return o.pos == n ? 0 : -1;
}

int
store_blob_read_range(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint64_t expect_len,
		      uint64_t off, uint64_t len, struct buf *out)
{
	struct blobref_rec r;
	ZSTD_DCtx *dc = NULL;
	char *tmp = NULL;
	int rc = blobref_get(txn, hash, &r);

	if (rc == MDB_NOTFOUND)
		return STORE_PERMFAIL;
	if (rc != 0)
		return rc;
	/* Chunks are STORE_CHUNK_SIZE today; a corrupt size must not make
	 * us allocate or trust anything huge. */
	if (r.length != expect_len || r.chunk_size > (64u << 20))
		return STORE_PERMFAIL;
	if (off >= r.length || len == 0)
		return 0;
	if (len > r.length - off)
		len = r.length - off;
	/* Inside the top header kept raw: no chunk to decompress (zstd
	 * decodes a whole block, usually the whole message, for a prefix). */
	if (off + len <= STORE_HDR_MAX) {
		MDB_val hk = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash}, hv;
		rc = mdb_get(txn, store_g->hdr, &hk, &hv);
		if (rc == 0 && hv.mv_size >= 1 && ((const uint8_t *)hv.mv_data)[0] == 1 &&
		    off + len <= hv.mv_size - 1)
			return buf_append(out, (const char *)hv.mv_data + 1 + off, (size_t)len) < 0
				   ? STORE_TEMPFAIL
				   : 0;
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		rc = 0;
	}
	uint32_t first = (uint32_t)(off / r.chunk_size);
	uint32_t last = (uint32_t)((off + len - 1) / r.chunk_size);
	if ((dc = thread_dctx()) == NULL)
		return STORE_TEMPFAIL;
	for (uint32_t i = first; i <= last && rc == 0; i++) {
		uint8_t key[STORE_BLOB_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
		uint64_t cstart = (uint64_t)i * r.chunk_size;
		uint64_t clen = r.length - cstart < r.chunk_size ? r.length - cstart : r.chunk_size;
		uint64_t from = off > cstart ? off - cstart : 0;
		uint64_t to = off + len - cstart < clen ? off + len - cstart : clen;

		store_key_blob(key, hash, i);
		if ((rc = mdb_get(txn, store_g->blob, &k, &v)) != 0) {
			if (rc == MDB_NOTFOUND)
				rc = STORE_PERMFAIL;
			break;
		}
		/* A whole chunk decompresses straight into out; a partial
		 * one up to its last byte wanted, through a scratch buffer
		 * (chunks are read in order, so the first partial one is
		 * the biggest). */
		if (from == 0 && to == clen) {
			char *dst = buf_reserve(out, (size_t)clen);
			if (dst == NULL) {
				rc = STORE_TEMPFAIL;
				break;
			}
			size_t got =
			    ZSTD_decompressDCtx(dc, dst, (size_t)clen, v.mv_data, v.mv_size);
			if (ZSTD_isError(got) || got != clen) {
				rc = STORE_PERMFAIL;
				break;
			}
			buf_commit(out, got);
		} else {
			if (tmp == NULL)
				tmp = xmalloc((size_t)to);
			ZSTD_DCtx_reset(dc, ZSTD_reset_session_only);
			if (decompress_prefix(dc, v.mv_data, v.mv_size, tmp, (size_t)to) < 0) {
				rc = STORE_PERMFAIL;
				break;
			}
			if (buf_append(out, tmp + from, (size_t)(to - from)) < 0)
				rc = STORE_TEMPFAIL;
		}
	}
	free(tmp);
	return rc;
}

int
store_blob_refcount(const uint8_t hash[STORE_HASH_LEN], uint32_t *refs_r, uint32_t *chunks_r)
{
	struct blobref_rec r;
	MDB_txn *txn;
	int rc;

	*refs_r = *chunks_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = blobref_get(txn, hash, &r);
	if (rc == 0)
		*refs_r = r.refcount;
	/* Count the chunk records actually present under this hash. */
	MDB_cursor *cur;
	if ((rc == 0 || rc == MDB_NOTFOUND) && mdb_cursor_open(txn, store_g->blob, &cur) == 0) {
		uint8_t key[STORE_BLOB_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
		store_key_blob(key, hash, 0);
		for (int c = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); c == 0;
		     c = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != STORE_BLOB_KEY_LEN ||
			    memcmp(k.mv_data, hash, STORE_HASH_LEN) != 0)
				break;
			(*chunks_r)++;
		}
		mdb_cursor_close(cur);
	}
	store_read_end(txn);
	return rc == MDB_NOTFOUND ? 0 : store_rc_status(rc);
}

int
store_blob_counts(uint64_t *chunks_r, uint64_t *blobs_r)
{
	MDB_stat st;
	MDB_txn *txn;
	int rc;

	*chunks_r = *blobs_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	if ((rc = mdb_stat(txn, store_g->blob, &st)) == 0) {
		*chunks_r = st.ms_entries;
		if ((rc = mdb_stat(txn, store_g->blobref, &st)) == 0)
			*blobs_r = st.ms_entries;
	}
	store_read_end(txn);
	return store_rc_status(rc);
}

int
store_blob_hdr_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *body,
		   size_t hdr_len)
{
	if (hdr_len == 0 || hdr_len > STORE_HDR_MAX)
		return 0; /* read from the chunks, as before */
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash};
	MDB_val v = {.mv_size = hdr_len + 1, .mv_data = NULL};
	int rc = mdb_put(txn, store_g->hdr, &k, &v, MDB_RESERVE);
	if (rc == 0) {
		((uint8_t *)v.mv_data)[0] = 1;
		memcpy((uint8_t *)v.mv_data + 1, body, hdr_len);
	}
	return rc;
}
