/*
 * store_schema.c - encoders and decoders of the store's records (layout in
 * store_schema.h). Decoders check the version byte and every length
 * against the value's size and fail with -1 (the caller reports
 * STORE_PERMFAIL); they never read past the value.
 */
#include <string.h>

#include "storage/store_schema.h"

size_t
store_mbox_size(const struct mbox_rec *r)
{
	return STORE_MBOX_FIXED_V1 + r->name_len;
}

void
store_mbox_encode(uint8_t *p, const struct mbox_rec *r)
{
	memset(p, 0, STORE_MBOX_FIXED_V1);
	p[0] = 1;
	be_put32(p + 4, r->uidvalidity);
	be_put32(p + 8, r->uidnext);
	be_put32(p + 12, r->messages);
	be_put64(p + 16, r->highestmodseq);
	be_put64(p + 24, r->bytes);
	be_put16(p + 32, (uint16_t)r->name_len);
	if (r->name_len > 0)
		memcpy(p + STORE_MBOX_FIXED_V1, r->name, r->name_len);
}

int
store_mbox_decode(const void *v, size_t len, struct mbox_rec *r)
{
	const uint8_t *p = v;

	if (len < STORE_MBOX_FIXED_V1 || p[0] != 1)
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
	return 0;
}

size_t
store_msg_size(const struct msg_rec *r)
{
	return STORE_MSG_FIXED_V1 + (size_t)r->trace_len;
}

void
store_msg_encode(uint8_t *p, const struct msg_rec *r)
{
	memset(p, 0, STORE_MSG_FIXED_V1);
	p[0] = 1;
	be_put32(p + 4, r->flags);
	be_put64(p + 8, r->modseq);
	be_put64(p + 16, (uint64_t)r->internal_date);
	be_put64(p + 24, r->size);
	memcpy(p + 32, r->hash, STORE_HASH_LEN);
	be_put32(p + 64, r->trace_len);
	if (r->trace_len > 0)
		memcpy(p + STORE_MSG_FIXED_V1, r->trace, r->trace_len);
}

int
store_msg_decode(const void *v, size_t len, struct msg_rec *r)
{
	const uint8_t *p = v;

	if (len < STORE_MSG_FIXED_V1 || p[0] != 1)
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
	return 0;
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
