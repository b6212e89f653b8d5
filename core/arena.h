/*
 * arena.h - region allocator: many small allocations, one free.
 * Each connection owns one arena freed on close; each command gets one
 * cleared after its reply (STYLE rule 9). Not thread-safe: one owner.
 * Allocation never fails (out of memory is fatal).
 */
#ifndef TERN_ARENA_H
#define TERN_ARENA_H

#include <stddef.h>
#include "compat.h"

struct arena;

/* chunk: the usual chunk size (0 picks 4 KiB); big requests get their own. */
struct arena *arena_new(size_t chunk);
/* Frees everything and sets *a to NULL. */
void arena_destroy(struct arena **a);
/* Frees every allocation but keeps the first chunk for reuse. */
void arena_clear(struct arena *a);
/* Frees every allocation and every chunk: for an arena that will sit
 * unused for a while (an idle connection's). Still usable after. */
void arena_trim(struct arena *a);

/* 16-byte aligned, zero-filled. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* Copies n bytes and adds a NUL. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) PRINTF_LIKE(2, 3);

#endif
