/*
 * queue_schema.c - encoders and decoders of the outbound queue's records
 * and keys (layout in store_schema.h). Pure byte shuffling, no LMDB.
 * Failures: a decoder meeting an unknown version, a length that does not
 * add up or a state it does not know returns -1 (corruption); it never
 * guesses.
 */
#include <string.h>

#include "storage/queue.h"
#include "storage/store_internal.h"

#define QUEUE_REC_VERSION 1

size_t
queue_msg_size(const struct queue_msg_rec *r)
{
	return QUEUE_MSG_FIXED + (size_t)r->sender_len + r->envid_len + r->auth_user_len +
	       r->client_len;
}

void
queue_msg_encode(uint8_t *p, const struct queue_msg_rec *r)
{
	uint8_t *q = p + QUEUE_MSG_FIXED;

	p[0] = QUEUE_REC_VERSION;
	p[1] = r->ret;
	p[2] = r->origin;
	p[3] = r->flags;
	be_put32(p + 4, r->nrcpts);
	be_put64(p + 8, (uint64_t)r->created);
	be_put64(p + 16, r->size);
	memcpy(p + 24, r->hash, STORE_HASH_LEN);
	be_put16(p + 56, r->sender_len);
	be_put16(p + 58, r->envid_len);
	be_put16(p + 60, r->auth_user_len);
	be_put16(p + 62, r->client_len);
	/* memcpy with a zero length still wants a valid pointer. */
	if (r->sender_len > 0)
		memcpy(q, r->sender, r->sender_len);
	q += r->sender_len;
	if (r->envid_len > 0)
		memcpy(q, r->envid, r->envid_len);
	q += r->envid_len;
	if (r->auth_user_len > 0)
		memcpy(q, r->auth_user, r->auth_user_len);
	q += r->auth_user_len;
	if (r->client_len > 0)
		memcpy(q, r->client, r->client_len);
}

int
queue_msg_decode(const void *v, size_t len, struct queue_msg_rec *r)
{
	const uint8_t *p = v;

	if (len < QUEUE_MSG_FIXED || p[0] != QUEUE_REC_VERSION)
		return -1;
	memset(r, 0, sizeof(*r));
	r->ret = p[1];
	r->origin = p[2];
	r->flags = p[3];
	r->nrcpts = be_get32(p + 4);
	r->created = (int64_t)be_get64(p + 8);
	r->size = be_get64(p + 16);
	memcpy(r->hash, p + 24, STORE_HASH_LEN);
	r->sender_len = be_get16(p + 56);
	r->envid_len = be_get16(p + 58);
	r->auth_user_len = be_get16(p + 60);
	r->client_len = be_get16(p + 62);
	if (queue_msg_size(r) != len || r->ret > QUEUE_RET_HDRS || r->origin < 1 ||
	    r->origin > QUEUE_ORIGIN_REPORT || r->nrcpts == 0)
		return -1;
	const char *q = (const char *)p + QUEUE_MSG_FIXED;
	r->sender = q;
	q += r->sender_len;
	r->envid = q;
	q += r->envid_len;
	r->auth_user = q;
	q += r->auth_user_len;
	r->client = q;
	return 0;
}

size_t
queue_rcpt_size(const struct queue_rcpt_rec *r)
{
	return QUEUE_RCPT_FIXED + (size_t)r->address_len + r->orcpt_len + r->last_error_len;
}

void
queue_rcpt_encode(uint8_t *p, const struct queue_rcpt_rec *r)
{
	uint8_t *q = p + QUEUE_RCPT_FIXED;

	p[0] = QUEUE_REC_VERSION;
	p[1] = r->state;
	p[2] = r->notify;
	p[3] = r->flags;
	be_put32(p + 4, r->attempts);
	be_put64(p + 8, (uint64_t)r->next_attempt);
	be_put16(p + 16, r->address_len);
	be_put16(p + 18, r->orcpt_len);
	be_put16(p + 20, r->last_error_len);
	be_put16(p + 22, 0);
	if (r->address_len > 0)
		memcpy(q, r->address, r->address_len);
	q += r->address_len;
	if (r->orcpt_len > 0)
		memcpy(q, r->orcpt, r->orcpt_len);
	q += r->orcpt_len;
	if (r->last_error_len > 0)
		memcpy(q, r->last_error, r->last_error_len);
}

int
queue_rcpt_decode(const void *v, size_t len, struct queue_rcpt_rec *r)
{
	const uint8_t *p = v;

	if (len < QUEUE_RCPT_FIXED || p[0] != QUEUE_REC_VERSION)
		return -1;
	memset(r, 0, sizeof(*r));
	r->state = p[1];
	r->notify = p[2];
	r->flags = p[3];
	r->attempts = be_get32(p + 4);
	r->next_attempt = (int64_t)be_get64(p + 8);
	r->address_len = be_get16(p + 16);
	r->orcpt_len = be_get16(p + 18);
	r->last_error_len = be_get16(p + 20);
	if (queue_rcpt_size(r) != len || r->state > QUEUE_R_FAILED || r->address_len == 0 ||
	    be_get16(p + 22) != 0)
		return -1;
	const char *q = (const char *)p + QUEUE_RCPT_FIXED;
	r->address = q;
	q += r->address_len;
	r->orcpt = q;
	q += r->orcpt_len;
	r->last_error = q;
	return 0;
}

void
queue_key_rcpt(uint8_t k[QUEUE_RCPT_KEY_LEN], uint64_t qid, uint32_t idx)
{
	be_put64(k, qid);
	be_put32(k + 8, idx);
}

void
queue_key_due(uint8_t k[QUEUE_DUE_KEY_LEN], int64_t when, uint64_t qid, uint32_t idx)
{
	be_put64(k, when < 0 ? 0 : (uint64_t)when);
	be_put64(k + 8, qid);
	be_put32(k + 16, idx);
}
