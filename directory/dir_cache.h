/*
 * dir_cache.h - internal to directory/: the answer cache.
 *
 * Keys are strings chosen by dir.c ("r:" + lower-case address for
 * recipients, "u:" + lower-case login for user-by-login lookups; never
 * anything about passwords). A value is a status plus users and forwards,
 * copied in on put and copied out on get, so nothing returned aliases the
 * cache. DIR_OK entries live ttl seconds, permanent failures negative_ttl
 * seconds, DIR_TEMPFAIL is never stored. The cache is bounded: when full,
 * the oldest entry goes. Thread-safe (one mutex); the clock is injectable
 * for tests.
 */
#ifndef TERN_DIR_CACHE_H
#define TERN_DIR_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "directory/dir.h"

/* Monotonic milliseconds. */
typedef uint64_t dir_cache_clock_fn(void);

struct dir_cache;

/* A copy of a cached answer, owned by the caller (dir_cache_value_free). */
struct dir_cache_value {
	enum dir_status status;
	struct dir_user *users; /* strings owned by the value */
	size_t nusers;
	char **forwards;
	size_t nforwards;
};

/* clock NULL: CLOCK_MONOTONIC. */
struct dir_cache *dir_cache_new(size_t max_entries, unsigned ttl, unsigned negative_ttl,
				dir_cache_clock_fn *clock);
void dir_cache_destroy(struct dir_cache **c);

/* The flush generation: a request remembers it when it starts and passes
 * it to dir_cache_put, so an answer fetched before a flush is not stored
 * after it. */
uint64_t dir_cache_generation(struct dir_cache *c);

/* Stores a copy (replacing an older one with the same key). TEMPFAIL, a
 * zero TTL for that kind of answer or a stale generation store nothing. */
void dir_cache_put(struct dir_cache *c, uint64_t generation, const char *key,
		   enum dir_status status, const struct dir_user *users, size_t nusers,
		   const char *const *forwards, size_t nforwards);

/* 1 with a fresh copy in *value_r, or 0 (miss or expired). */
int dir_cache_get(struct dir_cache *c, const char *key, struct dir_cache_value **value_r);
void dir_cache_value_free(struct dir_cache_value *v);

/* Drops every entry and starts a new generation. */
void dir_cache_clear(struct dir_cache *c);
size_t dir_cache_count(struct dir_cache *c);

#endif
