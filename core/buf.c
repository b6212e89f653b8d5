/*
 * buf.c - growable byte buffer with a hard cap on its length.
 * Failure: an append that would pass max returns -1 and leaves the buffer
 * as it was; nothing is allocated for it. Out of memory aborts (xrealloc).
 * Invariant: once data is allocated, cap > len and data[len] == '\0'.
 */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_wipe(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

char *
buf_reserve(struct buf *b, size_t n)
{
	/* Checked before any arithmetic that could wrap. */
	if (n > b->max || b->len > b->max - n)
		return NULL;
	size_t need = b->len + n + 1; /* + NUL; cannot wrap: len + n <= max < SIZE_MAX */
	if (b->max == SIZE_MAX && need == 0)
		return NULL;
	if (need > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 64;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		/* Never hold more than the cap allows. */
		if (b->max < SIZE_MAX && cap > b->max + 1)
			cap = b->max + 1;
		char *p = xrealloc(b->data, cap);
		b->data = p;
		b->cap = cap;
		b->data[b->len] = '\0';
	}
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	/* buf_reserve made room for n bytes and the NUL. */
	b->len += n;
	b->data[b->len] = '\0';
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	char *dst = buf_reserve(b, n);
	if (dst == NULL)
		return -1;
	if (n > 0)
		memcpy(dst, p, n);
	buf_commit(b, n);
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	char *dst = buf_reserve(b, (size_t)n);
	if (dst == NULL)
		return -1;
	vsnprintf(dst, (size_t)n + 1, fmt, ap);
	buf_commit(b, (size_t)n);
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *
buf_cstr(const struct buf *b)
{
	return b->data != NULL ? b->data : "";
}
