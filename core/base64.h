/*
 * base64.h - RFC 4648 base64 (SASL payloads). Pure functions.
 */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include "buf.h"

/* Appends the encoding of in to out; -1 if out's cap is hit. */
int base64_encode(const void *in, size_t len, struct buf *out);
/* Appends the decoding to out. Strict: only the alphabet and '=' padding
 * in the right places, no whitespace; -1 on bad input or cap. */
int base64_decode(const char *in, size_t len, struct buf *out);

#endif
