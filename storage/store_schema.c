/*
 * store_schema.c - encoders and decoders of the store's records (layout in
 * store_schema.h). Encoders write the current version (2); decoders read
 * versions 1 and 2, check the version byte and every length against the
 * value's size and fail with -1 (the caller reports STORE_PERMFAIL); they
 * never read past the value.
 */
#include <string.h>

#include "storage/store_schema.h"

int
store_kw_next(const struct kw_run *run, size_t *pos, const char **kw_r, size_t *len_r)
{
	size_t n;

	if (*pos >= run->len)
		return 0;
	n = run->p[*pos];
	if (n == 0 || *pos + 1 + n > run->len)
		return -1;
	*kw_r = (const char *)run->p + *pos + 1;
	*len_r = n;
	*pos += 1 + n;
	return 1;
}

/* Checks that a run of exactly `len` bytes holds exactly n keywords. */
static int
kw_run_check(const uint8_t *p, size_t len, uint32_t n, struct kw_run *r)
{
	size_t pos = 0, kl;
	const char *kw;
	uint32_t got = 0;
	int rc;

	r->p = p;
	r->len = len;
	r->n = n;
	while ((rc = store_kw_next(r, &pos, &kw, &kl)) == 1)
		got++;
	return rc < 0 || got != n ? -1 : 0;
}

void
store_user_encode(uint8_t p[STORE_USER_LEN], const struct user_rec *r)
{
	memset(p, 0, STORE_USER_LEN);
	p[0] = 2;
	be_put32(p + 4, r->next_mbox);
	be_put64(p + 8, r->user_id);
}

int
store_user_decode(const void *v, size_t len, struct user_rec *r)
{
	const uint8_t *p = v;

	if (len == 8) {
		/* v1: the bare user_id; next mailbox id derived by the caller. */
		r->user_id = be_get64(p);
		r->next_mbox = 0;
		return 0;
	}
	if (len != STORE_USER_LEN || p[0] != 2 || p[1] != 0 || p[2] != 0 || p[3] != 0)
		return -1;
	r->next_mbox = be_get32(p + 4);
	r->user_id = be_get64(p + 8);
	return r->next_mbox == 0 ? -1 : 0;
}

size_t
store_mbox_size(const struct mbox_rec *r)
{
	return STORE_MBOX_FIXED + r->name_len + r->kw.len;
}

void
store_mbox_encode(uint8_t *p, const struct mbox_rec *r)
{
	memset(p, 0, STORE_MBOX_FIXED);
	p[0] = 2;
	p[1] = r->special_use;
	be_put16(p + 2, r->flags);
	be_put32(p + 4, r->uidvalidity);
	be_put32(p + 8, r->uidnext);
	be_put32(p + 12, r->messages);
	be_put64(p + 16, r->highestmodseq);
	be_put64(p + 24, r->bytes);
	be_put32(p + 32, r->unseen);
	be_put32(p + 36, r->deleted);
	be_put64(p + 40, r->vanished_floor);
	be_put16(p + 48, (uint16_t)r->name_len);
	be_put16(p + 50, (uint16_t)r->kw.n);
	if (r->name_len > 0)
		memcpy(p + STORE_MBOX_FIXED, r->name, r->name_len);
	if (r->kw.len > 0)
		memcpy(p + STORE_MBOX_FIXED + r->name_len, r->kw.p, r->kw.len);
}

int
store_mbox_decode(const void *v, size_t len, struct mbox_rec *r)
{
	const uint8_t *p = v;

	memset(r, 0, sizeof(*r));
	if (len < 1)
		return -1;
	if (p[0] == 1) {
		if (len < STORE_MBOX_FIXED_V1)
			return -1;
		r->uidvalidity = be_get32(p + 4);
		r->uidnext = be_get32(p + 8);
		r->messages = be_get32(p + 12);
		r->highestmodseq = be_get64(p + 16);
		r->bytes = be_get64(p + 24);
		r->name_len = be_get16(p + 32);
		if (r->name_len != len - STORE_MBOX_FIXED_V1)
			return -1;
		r->name = (const char *)p + STORE_MBOX_FIXED_V1;
		/* Not counted in v1: the migration recounts. Every expunge
		 * before it is forgotten. */
		r->unseen = r->messages;
		r->vanished_floor = r->highestmodseq;
		r->kw.p = p + len;
		return 0;
	}
	if (p[0] != 2 || len < STORE_MBOX_FIXED)
		return -1;
	r->special_use = p[1];
	r->flags = be_get16(p + 2);
	r->uidvalidity = be_get32(p + 4);
	r->uidnext = be_get32(p + 8);
	r->messages = be_get32(p + 12);
	r->highestmodseq = be_get64(p + 16);
	r->bytes = be_get64(p + 24);
	r->unseen = be_get32(p + 32);
	r->deleted = be_get32(p + 36);
	r->vanished_floor = be_get64(p + 40);
	r->name_len = be_get16(p + 48);
	if (r->name_len > len - STORE_MBOX_FIXED)
		return -1;
	r->name = (const char *)p + STORE_MBOX_FIXED;
	return kw_run_check(p + STORE_MBOX_FIXED + r->name_len,
			    len - STORE_MBOX_FIXED - r->name_len, be_get16(p + 50), &r->kw);
}

size_t
store_msg_size(const struct msg_rec *r)
{
	return STORE_MSG_FIXED + (size_t)r->trace_len + r->kw.len;
}

void
store_msg_encode(uint8_t *p, const struct msg_rec *r)
{
	memset(p, 0, STORE_MSG_FIXED);
	p[0] = 2;
	be_put16(p + 2, (uint16_t)r->kw.n);
	be_put32(p + 4, r->flags);
	be_put64(p + 8, r->modseq);
	be_put64(p + 16, (uint64_t)r->internal_date);
	be_put64(p + 24, r->size);
	memcpy(p + 32, r->hash, STORE_HASH_LEN);
	be_put32(p + 64, r->trace_len);
	be_put64(p + 68, (uint64_t)r->save_date);
	be_put64(p + 76, r->email_id);
	if (r->trace_len > 0)
		memcpy(p + STORE_MSG_FIXED, r->trace, r->trace_len);
	if (r->kw.len > 0)
		memcpy(p + STORE_MSG_FIXED + r->trace_len, r->kw.p, r->kw.len);
}

int
store_msg_decode(const void *v, size_t len, struct msg_rec *r)
{
	const uint8_t *p = v;

	memset(r, 0, sizeof(*r));
	if (len < 1)
		return -1;
	if (p[0] == 1) {
		if (len < STORE_MSG_FIXED_V1)
			return -1;
		r->flags = be_get32(p + 4);
		r->modseq = be_get64(p + 8);
		r->internal_date = (int64_t)be_get64(p + 16);
		r->size = be_get64(p + 24);
		memcpy(r->hash, p + 32, STORE_HASH_LEN);
		r->trace_len = be_get32(p + 64);
		if ((size_t)r->trace_len != len - STORE_MSG_FIXED_V1 || r->size < r->trace_len)
			return -1;
		r->trace = (const char *)p + STORE_MSG_FIXED_V1;
		r->save_date = r->internal_date;
		r->email_id = 0; /* derived from the hash by readers */
		r->kw.p = p + len;
		return 0;
	}
	if (p[0] != 2 || p[1] != 0 || len < STORE_MSG_FIXED)
		return -1;
	r->flags = be_get32(p + 4);
	r->modseq = be_get64(p + 8);
	r->internal_date = (int64_t)be_get64(p + 16);
	r->size = be_get64(p + 24);
	memcpy(r->hash, p + 32, STORE_HASH_LEN);
	r->trace_len = be_get32(p + 64);
	r->save_date = (int64_t)be_get64(p + 68);
	r->email_id = be_get64(p + 76);
	if ((size_t)r->trace_len > len - STORE_MSG_FIXED || r->size < r->trace_len)
		return -1;
	r->trace = (const char *)p + STORE_MSG_FIXED;
	return kw_run_check(p + STORE_MSG_FIXED + r->trace_len,
			    len - STORE_MSG_FIXED - r->trace_len, be_get16(p + 2), &r->kw);
}

void
store_blobref_encode(uint8_t p[STORE_BLOBREF_LEN], const struct blobref_rec *r)
{
	memset(p, 0, STORE_BLOBREF_LEN);
	p[0] = 1;
	p[1] = STORE_BLOB_ZSTD;
	be_put32(p + 4, r->refcount);
	be_put64(p + 8, r->length);
	be_put32(p + 16, r->chunk_size);
	be_put32(p + 20, r->nchunks);
}

int
store_blobref_decode(const void *v, size_t len, struct blobref_rec *r)
{
	const uint8_t *p = v;

	if (len != STORE_BLOBREF_LEN || p[0] != 1 || p[1] != STORE_BLOB_ZSTD)
		return -1;
	r->refcount = be_get32(p + 4);
	r->length = be_get64(p + 8);
	r->chunk_size = be_get32(p + 16);
	r->nchunks = be_get32(p + 20);
	if (r->chunk_size == 0 ||
	    (uint64_t)r->nchunks != (r->length + r->chunk_size - 1) / r->chunk_size)
		return -1;
	return 0;
}

void
store_orphan_encode(uint8_t p[STORE_ORPHAN_LEN], int64_t marked_at)
{
	memset(p, 0, STORE_ORPHAN_LEN);
	p[0] = 1;
	be_put64(p + 8, (uint64_t)marked_at);
}

int
store_orphan_decode(const void *v, size_t len, int64_t *marked_at_r)
{
	const uint8_t *p = v;

	if (len != STORE_ORPHAN_LEN || p[0] != 1)
		return -1;
	for (int i = 1; i < 8; i++)
		if (p[i] != 0)
			return -1;
	*marked_at_r = (int64_t)be_get64(p + 8);
	return 0;
}
