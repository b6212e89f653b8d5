/*
 * dkim_internal.h - what dkim_sign.c and dkim_verify.c share: the header
 * section split into fields, the body hash, the EVP hashing of the signed
 * header data. Not for other modules (dkim.h is the API).
 */
#ifndef TERN_DKIM_INTERNAL_H
#define TERN_DKIM_INTERNAL_H

#include <stdint.h>

#include "dkim.h"

#define DKIM_HASH_LEN 32 /* SHA-256 */

/* One header field, its continuation lines included, without the CRLF
 * that ends it. */
struct dkim_field {
	const char *p; /* borrowed from the message */
	size_t len;
	size_t name_len; /* the name, WSP before the colon not counted */
	bool used;	 /* taken by an h= entry already (5.4.2) */
};

/* Splits the header of msg into fields (*fields_r malloc'd, the caller
 * frees it); *body_off_r is where the body starts (len when there is no
 * blank line). Lines end in CRLF. -1 on too many fields. */
int dkim_split_header(const char *msg, size_t len, struct dkim_field **fields_r, size_t *n_r,
		      size_t *body_off_r);
/* Case-insensitive field-name comparison. */
bool dkim_field_is(const struct dkim_field *f, const char *name, size_t name_len);
/* SHA-256 of the canonical body (at most limit bytes); *canon_len_r is
 * the whole canonical length. -1 if OpenSSL fails. */
int dkim_body_hash(enum dkim_canon c, const char *body, size_t len, size_t limit,
		   uint8_t out[DKIM_HASH_LEN], size_t *canon_len_r);
/* The SHA-256 of the header fields h= names ("from:to:..."), chosen
 * bottom-up (5.4.2, marking them used), then of sig (the DKIM-Signature
 * field with its b= value deleted) without its final CRLF (3.7). */
int dkim_header_hash(struct dkim_field *f, size_t nf, const char *names, const char *sig,
		     size_t sig_len, enum dkim_canon c, uint8_t out[DKIM_HASH_LEN]);

#endif
