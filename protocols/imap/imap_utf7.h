/*
 * imap_utf7.h - IMAP's modified UTF-7 for mailbox names (RFC 3501 section
 * 5.1.3), both ways, strict: only the one canonical encoding of a name is
 * accepted, so a name has exactly one wire form. Also the UTF-8 decoder
 * the IMAP parser uses to check 8-bit quoted strings.
 * Pure functions; any thread.
 */
#ifndef TERN_IMAP_UTF7_H
#define TERN_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* Decodes modified UTF-7 and appends the UTF-8 to out. 0, or -1 if the
 * input is not canonical modified UTF-7 (8-bit or control bytes, an
 * unterminated or empty shift other than "&-", bad base64 or non-zero
 * padding bits, a shift encoding printable ASCII or U+0000, two shifts in
 * a row, broken surrogates) or out's cap is hit; out is then unchanged. */
int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out);
/* Encodes UTF-8 as modified UTF-7, appended to out. 0, or -1 if the input
 * is not valid UTF-8 (overlong forms, surrogates, over U+10FFFF), holds
 * U+0000, or out's cap is hit; out is then unchanged. */
int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out);
/* True if in is canonical modified UTF-7 (imap_utf7_to_utf8 would work). */
bool imap_utf7_is_valid(const char *in, size_t len);

/* One UTF-8 character at s (len bytes available): its length (1-4) and
 * *cp_r, or 0 if the bytes are not a valid shortest-form character
 * (surrogates and values over U+10FFFF are invalid). */
size_t imap_utf8_decode(const char *s, size_t len, uint32_t *cp_r);

#endif
