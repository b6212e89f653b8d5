/*
 * arena.c - region allocator: a list of chunks carved from the front.
 * Requests bigger than a quarter of the chunk size get a chunk of their own
 * so one big allocation does not waste the rest of a normal chunk. The
 * first chunk is made by the first allocation, not by arena_new, so an
 * arena that is never used (an idle connection's per-command arena after
 * arena_trim) costs only its header.
 * Failure: out of memory aborts (through xmalloc); sizes that would wrap
 * around are a caller bug and panic.
 */
#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 4096

struct chunk {
	struct chunk *next;
	size_t size; /* usable bytes after the header */
	size_t used;
	/* The header is padded to ARENA_ALIGN so data starts aligned. */
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
	struct chunk *head;  /* the chunk being carved; older ones follow */
	struct chunk *first; /* the first usual-size chunk, kept by arena_clear */
	size_t chunk_size;
};

static struct chunk *
chunk_new(size_t size)
{
	if (size > SIZE_MAX - sizeof(struct chunk))
		panic("arena: chunk of %zu bytes", size);
	struct chunk *c = xmalloc(sizeof(struct chunk) + size);
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct arena *
arena_new(size_t chunk)
{
	struct arena *a = xmalloc(sizeof(*a));
	a->chunk_size = chunk > 0 ? chunk : ARENA_DEFAULT_CHUNK;
	a->head = NULL;
	a->first = NULL;
	return a;
}

void
arena_destroy(struct arena **ap)
{
	struct arena *a = *ap;
	if (a == NULL)
		return;
	struct chunk *c = a->head;
	while (c != NULL) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
	free(a);
	*ap = NULL;
}

static void
free_chunks_but(struct arena *a, struct chunk *keep)
{
	struct chunk *c = a->head;
	while (c != NULL) {
		struct chunk *next = c->next;
		if (c != keep)
			free(c);
		c = next;
	}
}

void
arena_clear(struct arena *a)
{
	/* Keep the first chunk of the usual size for reuse, free the rest. */
	free_chunks_but(a, a->first);
	if (a->first != NULL) {
		a->first->next = NULL;
		a->first->used = 0;
	}
	a->head = a->first;
}

void
arena_trim(struct arena *a)
{
	free_chunks_but(a, NULL);
	a->head = NULL;
	a->first = NULL;
}

void *
arena_alloc(struct arena *a, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - ARENA_ALIGN)
		panic("arena: allocation of %zu bytes", n);
	size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	struct chunk *c = a->head;
	if (c == NULL || c->size - c->used < need) {
		if (need > a->chunk_size / 4) {
			/* Its own chunk, linked behind the current one so the
			 * current chunk's free space stays in use. */
			struct chunk *big = chunk_new(need);
			big->used = need;
			if (c != NULL) {
				big->next = c->next;
				c->next = big;
			} else {
				a->head = big;
			}
			memset(big->data, 0, need);
			return big->data;
		}
		c = chunk_new(a->chunk_size);
		c->next = a->head;
		a->head = c;
		if (a->first == NULL)
			a->first = c;
	}
	void *p = c->data + c->used;
	c->used += need;
	memset(p, 0, need);
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	if (n == SIZE_MAX)
		panic("arena: string of %zu bytes", n);
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void *
arena_memdup(struct arena *a, const void *p, size_t n)
{
	void *q = arena_alloc(a, n);
	if (n > 0)
		memcpy(q, p, n);
	return q;
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		panic("arena_printf: bad format \"%s\"", fmt);
	char *p = arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}
