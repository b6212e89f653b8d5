/*
 * dir_cache.c - bounded TTL cache of directory answers (see dir_cache.h).
 *
 * A chained hash table for lookups plus a list in insertion order, so the
 * entry to evict when full (the oldest) and the expired ones are found
 * without a scan. Nothing here fails: allocation failure is fatal
 * (compat.h), and a put that cannot be stored (TEMPFAIL, stale
 * generation) is silently dropped, which only costs a later lookup.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compat.h"
#include "directory/dir_cache.h"

struct centry {
	struct centry *hnext;	      /* hash chain */
	struct centry *older, *newer; /* insertion order */
	char *key;		      /* owned */
	uint64_t expires;	      /* clock ms */
	struct dir_cache_value value; /* owned */
};

struct dir_cache {
	pthread_mutex_t lock; /* protects everything below */
	struct centry **table;
	size_t nbuckets;
	size_t count, max;
	struct centry *oldest, *newest;
	unsigned ttl, negative_ttl;
	uint64_t generation;
	dir_cache_clock_fn *clock;
};

static uint64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t
hash_key(const char *s)
{
	/* FNV-1a: keys are short and chosen by senders, but a bucket can at
	 * worst grow to the cache bound, so no keyed hash is needed here. */
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static char *
dup_or_empty(const char *s)
{
	return xstrdup(s != NULL ? s : "");
}

static void
value_copy(struct dir_cache_value *dst, enum dir_status status, const struct dir_user *users,
	   size_t nusers, const char *const *forwards, size_t nforwards)
{
	dst->status = status;
	dst->nusers = nusers;
	dst->users = nusers > 0 ? xcalloc(nusers, sizeof(*dst->users)) : NULL;
	for (size_t i = 0; i < nusers; i++) {
		dst->users[i].id = dup_or_empty(users[i].id);
		dst->users[i].dn = dup_or_empty(users[i].dn);
		dst->users[i].login = dup_or_empty(users[i].login);
		dst->users[i].mail = dup_or_empty(users[i].mail);
		dst->users[i].quota = users[i].quota;
		dst->users[i].no_junk = users[i].no_junk;
		dst->users[i].quota_messages = users[i].quota_messages;
	}
	dst->nforwards = nforwards;
	dst->forwards = nforwards > 0 ? xcalloc(nforwards, sizeof(*dst->forwards)) : NULL;
	for (size_t i = 0; i < nforwards; i++)
		dst->forwards[i] = dup_or_empty(forwards[i]);
}

static void
value_clear(struct dir_cache_value *v)
{
	for (size_t i = 0; i < v->nusers; i++) {
		free((char *)v->users[i].id);
		free((char *)v->users[i].dn);
		free((char *)v->users[i].login);
		free((char *)v->users[i].mail);
	}
	free(v->users);
	for (size_t i = 0; i < v->nforwards; i++)
		free(v->forwards[i]);
	free(v->forwards);
	memset(v, 0, sizeof(*v));
}

void
dir_cache_value_free(struct dir_cache_value *v)
{
	if (v == NULL)
		return;
	value_clear(v);
	free(v);
}

struct dir_cache *
dir_cache_new(size_t max_entries, unsigned ttl, unsigned negative_ttl, dir_cache_clock_fn *clock)
{
	struct dir_cache *c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->lock, NULL);
	c->max = max_entries > 0 ? max_entries : 1;
	/* About one entry per bucket when full, a power of two. */
	c->nbuckets = 64;
	while (c->nbuckets < c->max && c->nbuckets < ((size_t)1 << 20))
		c->nbuckets <<= 1;
	c->table = xcalloc(c->nbuckets, sizeof(*c->table));
	c->ttl = ttl;
	c->negative_ttl = negative_ttl;
	c->clock = clock != NULL ? clock : monotonic_ms;
	return c;
}

/* Unlinks e from both structures and frees it. Lock held. */
static void
remove_entry(struct dir_cache *c, struct centry *e)
{
	struct centry **pp = &c->table[hash_key(e->key) & (c->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->count--;
	value_clear(&e->value);
	free(e->key);
	free(e);
}

static struct centry *
find_entry(struct dir_cache *c, const char *key)
{
	struct centry *e = c->table[hash_key(key) & (c->nbuckets - 1)];

	while (e != NULL && strcmp(e->key, key) != 0)
		e = e->hnext;
	return e;
}

void
dir_cache_clear(struct dir_cache *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->oldest != NULL)
		remove_entry(c, c->oldest);
	c->generation++;
	pthread_mutex_unlock(&c->lock);
}

void
dir_cache_destroy(struct dir_cache **cp)
{
	struct dir_cache *c = *cp;

	if (c == NULL)
		return;
	dir_cache_clear(c);
	pthread_mutex_destroy(&c->lock);
	free(c->table);
	free(c);
	*cp = NULL;
}

uint64_t
dir_cache_generation(struct dir_cache *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t g = c->generation;
	pthread_mutex_unlock(&c->lock);
	return g;
}

void
dir_cache_put(struct dir_cache *c, uint64_t generation, const char *key, enum dir_status status,
	      const struct dir_user *users, size_t nusers, const char *const *forwards,
	      size_t nforwards)
{
	unsigned ttl = status == DIR_OK ? c->ttl : c->negative_ttl;

	if (status == DIR_TEMPFAIL || ttl == 0)
		return;

	pthread_mutex_lock(&c->lock);
	if (generation != c->generation) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	uint64_t now = c->clock();
	struct centry *old = find_entry(c, key);
	if (old != NULL)
		remove_entry(c, old);
	/* Expired entries are the oldest ones only if every entry has the
	 * same TTL; they are not, so make room by age, which is the bound
	 * that matters, and let get() drop expired ones as it meets them. */
	while (c->count >= c->max)
		remove_entry(c, c->oldest);

	struct centry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->expires = now + (uint64_t)ttl * 1000;
	value_copy(&e->value, status, users, nusers, forwards, nforwards);
	size_t b = hash_key(key) & (c->nbuckets - 1);
	e->hnext = c->table[b];
	c->table[b] = e;
	e->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->count++;
	pthread_mutex_unlock(&c->lock);
}

int
dir_cache_get(struct dir_cache *c, const char *key, struct dir_cache_value **value_r)
{
	int hit = 0;

	*value_r = NULL;
	pthread_mutex_lock(&c->lock);
	struct centry *e = find_entry(c, key);
	if (e != NULL) {
		if (c->clock() >= e->expires) {
			remove_entry(c, e);
		} else {
			struct dir_cache_value *v = xcalloc(1, sizeof(*v));
			value_copy(v, e->value.status, e->value.users, e->value.nusers,
				   (const char *const *)e->value.forwards, e->value.nforwards);
			*value_r = v;
			hit = 1;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

size_t
dir_cache_count(struct dir_cache *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->count;
	pthread_mutex_unlock(&c->lock);
	return n;
}
