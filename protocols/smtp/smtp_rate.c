/*
 * smtp_rate.c - the sliding-window rate table (smtp_rate.h).
 *
 * Each key keeps 60 buckets of one minute; bucket i holds the count of
 * minute m where m % 60 == i, tagged with m so that a stale bucket reads
 * as zero. The window is the current minute and the 59 before it, so a
 * limit is enforced to within a minute. An open hash table (FNV-1a,
 * chaining) under one mutex; the critical section is a lookup and at
 * most 60 additions.
 *
 * How it fails: it cannot, beyond SMTP_RATE_FULL when max_keys live keys
 * are held; memory allocation failure is fatal (xcalloc) as elsewhere.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/compat.h"
#include "smtp_rate.h"

struct rate_key {
	struct rate_key *next;
	uint64_t minute[SMTP_RATE_BUCKETS]; /* which minute each bucket holds */
	uint32_t count[SMTP_RATE_BUCKETS];
	char name[]; /* NUL-terminated */
};

struct smtp_rate {
	pthread_mutex_t lock;
	struct rate_key **slots;
	size_t nslots; /* power of two */
	size_t nkeys, max_keys;
};

static uint32_t
hash_key(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct smtp_rate *
smtp_rate_new(size_t max_keys)
{
	struct smtp_rate *r = xcalloc(1, sizeof(*r));
	size_t n = 64;

	while (n < max_keys && n < ((size_t)1 << 20))
		n *= 2;
	pthread_mutex_init(&r->lock, NULL);
	r->nslots = n;
	r->slots = xcalloc(n, sizeof(*r->slots));
	r->max_keys = max_keys > 0 ? max_keys : 1;
	return r;
}

void
smtp_rate_destroy(struct smtp_rate **rp)
{
	struct smtp_rate *r = *rp;

	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nslots; i++) {
		struct rate_key *k = r->slots[i];
		while (k != NULL) {
			struct rate_key *next = k->next;
			free(k);
			k = next;
		}
	}
	free(r->slots);
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}

static uint64_t
minute_of(time_t now)
{
	return now < 0 ? 0 : (uint64_t)now / 60;
}

static uint32_t
window_sum(const struct rate_key *k, uint64_t m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < SMTP_RATE_BUCKETS; i++)
		if (k->minute[i] + SMTP_RATE_BUCKETS > m && k->minute[i] <= m)
			sum += k->count[i];
	return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

/* Drops every key whose window is empty at minute m. */
static void
sweep(struct smtp_rate *r, uint64_t m)
{
	for (size_t i = 0; i < r->nslots; i++) {
		struct rate_key **pp = &r->slots[i];
		while (*pp != NULL) {
			struct rate_key *k = *pp;
			if (window_sum(k, m) == 0) {
				*pp = k->next;
				free(k);
				r->nkeys--;
			} else {
				pp = &k->next;
			}
		}
	}
}

static struct rate_key *
find(struct smtp_rate *r, const char *key, size_t slot)
{
	for (struct rate_key *k = r->slots[slot]; k != NULL; k = k->next)
		if (strcmp(k->name, key) == 0)
			return k;
	return NULL;
}

enum smtp_rate_result
smtp_rate_take(struct smtp_rate *r, const char *key, uint32_t n, uint32_t limit, time_t now)
{
	if (limit == 0)
		return SMTP_RATE_OK;
	uint64_t m = minute_of(now);
	size_t slot = hash_key(key) & (r->nslots - 1);
	enum smtp_rate_result res = SMTP_RATE_OK;

	pthread_mutex_lock(&r->lock);
	struct rate_key *k = find(r, key, slot);
	if (k == NULL) {
		if (r->nkeys >= r->max_keys)
			sweep(r, m);
		if (r->nkeys >= r->max_keys) {
			res = SMTP_RATE_FULL;
			goto out;
		}
		size_t len = strlen(key);
		k = xcalloc(1, sizeof(*k) + len + 1);
		memcpy(k->name, key, len);
		k->next = r->slots[slot];
		r->slots[slot] = k;
		r->nkeys++;
	}
	uint32_t have = window_sum(k, m);
	if (n > limit || have > limit - n) {
		res = SMTP_RATE_EXCEEDED;
		goto out;
	}
	size_t b = (size_t)(m % SMTP_RATE_BUCKETS);
	if (k->minute[b] != m) {
		k->minute[b] = m;
		k->count[b] = 0;
	}
	k->count[b] += n;
out:
	pthread_mutex_unlock(&r->lock);
	return res;
}

uint32_t
smtp_rate_count(struct smtp_rate *r, const char *key, time_t now)
{
	size_t slot = hash_key(key) & (r->nslots - 1);
	uint32_t sum = 0;

	pthread_mutex_lock(&r->lock);
	struct rate_key *k = find(r, key, slot);
	if (k != NULL)
		sum = window_sum(k, minute_of(now));
	pthread_mutex_unlock(&r->lock);
	return sum;
}

/* The one shared table: rate limits must hold across workers, so this is
 * process state like the logger (STYLE rule 18 allows no other kind);
 * it is created once and lives until exit. */
static struct smtp_rate *shared_table;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void
shared_init(void)
{
	shared_table = smtp_rate_new(100000);
}

struct smtp_rate *
smtp_rate_shared(void)
{
	pthread_once(&shared_once, shared_init);
	return shared_table;
}
