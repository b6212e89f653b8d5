/*
 * buf.h - growable byte buffer with a hard cap (STYLE rule 11).
 * Every append checks the cap before allocating and fails with -1 rather
 * than grow past it. data is always NUL-terminated (the NUL is not counted
 * in len), so a buffer of text can be used as a C string.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stddef.h>
#include <stdarg.h>
#include "compat.h"

struct buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max; /* hard cap on len */
};

void buf_init(struct buf *b, size_t max);
/* Frees the memory; the buffer can be used again (empty). */
void buf_free(struct buf *b);
/* Like buf_free, but wipes the bytes first (secrets). */
void buf_wipe(struct buf *b);
/* Empties without freeing. */
void buf_reset(struct buf *b);

/* 0, or -1 if the result would exceed max (b is unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
/* Makes room for n more bytes; returns where to write them, or NULL over
 * max. Call buf_commit(b, k) after writing k <= n bytes. */
char *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* The text ("" when empty, never NULL). */
const char *buf_cstr(const struct buf *b);

#endif
