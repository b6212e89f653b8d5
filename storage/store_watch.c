/*
 * store_watch.c - who wants to hear of changes to which mailbox, and
 * telling them after a commit (store.h, change notification).
 *
 * A registry of watches hashed by user id, under one mutex. The writer
 * calls store_watch_notify() after each synced batch; for every watch of a
 * touched mailbox it posts one event to the watch's worker, or, when an
 * event is already on its way, only raises the MODSEQ that event will
 * report (changes coalesce; a slow session never queues more than one).
 * Annotation changes also name their entries: up to
 * STORE_WATCH_ENTRIES_MAX distinct ones wait with the event, and past
 * that the event says some were lost, so what waits stays bounded.
 *
 * Lifetimes: a watch is referenced by the registry and by its pending
 * event. store_watch_remove() runs on the watch's own worker, marks it
 * dead and drops the registry's reference; an event that is still queued
 * then finds it dead, calls nothing, and frees it. So fn is never called
 * after remove returns, and nothing is freed under a queued event.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/compat.h"
#include "core/worker.h"
#include "storage/store_internal.h"

#define WATCH_BUCKETS 1024

struct store_watch {
	struct store_watch *next; /* bucket chain; protected by wlock */
	char *user_id;		  /* owned */
	uint32_t mbox;		  /* 0 = every mailbox of the user */
	struct worker *worker;
	store_watch_fn *fn;
	void *arg;
	/* protected by wlock: */
	int refs;
	bool dead;
	bool pending;				   /* an event is queued on worker */
	uint32_t pending_mbox;			   /* what it will report (0: several) */
	uint64_t pending_modseq;		   /* highest seen since it was queued */
	unsigned pending_changed;		   /* STORE_CHANGED_* since it was queued */
	struct store_watch_entry *pending_entries; /* owned, each field owned */
	size_t npending_entries, pending_entries_cap;
	bool pending_lost; /* entries past STORE_WATCH_ENTRIES_MAX */
	/* The event being delivered (only its worker touches these): */
	struct store_watch_entry *entries; /* owned, valid during fn */
	size_t nentries;
	bool lost;
};

static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static struct store_watch *buckets[WATCH_BUCKETS];

static size_t
bucket_of(const char *user_id)
{
	/* FNV-1a: spreads ids; nothing here is secret or attacker-timed. */
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)user_id; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h % WATCH_BUCKETS;
}

/* Drops one reference; wlock held. Returns the watch if it must be freed
 * (outside the lock). */
static struct store_watch *
unref_locked(struct store_watch *w)
{
	return --w->refs == 0 ? w : NULL;
}

static void
entries_free(struct store_watch_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].user_id);
		free(e[i].name);
	}
	free(e);
}

static void
watch_free(struct store_watch *w)
{
	if (w == NULL)
		return;
	entries_free(w->pending_entries, w->npending_entries);
	free(w->user_id);
	free(w);
}

static bool
same_entry(const struct store_watch_entry *a, const struct store_watch_entry *b)
{
	return a->mailbox_id == b->mailbox_id && strcmp(a->name, b->name) == 0 &&
	       (a->user_id == NULL ? b->user_id == NULL
				   : b->user_id != NULL && strcmp(a->user_id, b->user_id) == 0);
}

/* Adds a changed entry to what w's next event names; wlock held. */
static void
entry_add_locked(struct store_watch *w, const struct store_watch_entry *e)
{
	for (size_t i = 0; i < w->npending_entries; i++)
		if (same_entry(&w->pending_entries[i], e))
			return;
	if (w->npending_entries == STORE_WATCH_ENTRIES_MAX) {
		w->pending_lost = true;
		return;
	}
	if (w->npending_entries == w->pending_entries_cap) {
		w->pending_entries_cap =
		    w->pending_entries_cap == 0 ? 8 : w->pending_entries_cap * 2;
		w->pending_entries = xrealloc(w->pending_entries,
					      w->pending_entries_cap * sizeof(*w->pending_entries));
	}
	struct store_watch_entry *n = &w->pending_entries[w->npending_entries++];
	n->mailbox_id = e->mailbox_id;
	n->user_id = e->user_id != NULL ? xstrdup(e->user_id) : NULL;
	n->name = xstrdup(e->name);
}

const struct store_watch_entry *
store_watch_entries(const struct store_watch *w, size_t *n_r, bool *lost_r)
{
	*n_r = w->nentries;
	*lost_r = w->lost;
	return w->entries;
}

struct store_watch *
store_watch_add(const char *user_id, uint32_t mailbox_id, struct worker *worker, store_watch_fn *fn,
		void *arg)
{
	struct store_watch *w = xcalloc(1, sizeof(*w));

	w->user_id = xstrdup(user_id);
	w->mbox = mailbox_id;
	w->worker = worker;
	w->fn = fn;
	w->arg = arg;
	w->refs = 1; /* the registry's */
	size_t b = bucket_of(user_id);
	pthread_mutex_lock(&wlock);
	w->next = buckets[b];
	buckets[b] = w;
	pthread_mutex_unlock(&wlock);
	return w;
}

void
store_watch_remove(struct store_watch *w)
{
	if (w == NULL)
		return;
	size_t b = bucket_of(w->user_id);
	pthread_mutex_lock(&wlock);
	for (struct store_watch **pp = &buckets[b]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->next = NULL;
	w->dead = true;
	struct store_watch *f = unref_locked(w);
	pthread_mutex_unlock(&wlock);
	watch_free(f);
}

/* Runs on the watch's worker. */
static void
deliver_event(void *arg)
{
	struct store_watch *w = arg;

	pthread_mutex_lock(&wlock);
	bool dead = w->dead;
	uint32_t mbox = w->pending_mbox;
	uint64_t modseq = w->pending_modseq;
	unsigned changed = w->pending_changed;
	struct store_watch_entry *entries = w->pending_entries;
	size_t nentries = w->npending_entries;
	bool lost = w->pending_lost;
	w->pending_entries = NULL;
	w->npending_entries = w->pending_entries_cap = 0;
	w->pending_lost = false;
	w->pending = false;
	struct store_watch *f = unref_locked(w);
	pthread_mutex_unlock(&wlock);
	if (!dead) {
		w->entries = entries;
		w->nentries = nentries;
		w->lost = lost;
		w->fn(w->arg, mbox, modseq, changed);
		w->entries = NULL;
		w->nentries = 0;
		w->lost = false;
	}
	entries_free(entries, nentries);
	watch_free(f);
}

void
store_watch_notify(const struct store_touched *t, size_t n)
{
	struct store_watch **post = NULL;
	size_t npost = 0, cap = 0;

	pthread_mutex_lock(&wlock);
	for (size_t i = 0; i < n; i++) {
		size_t b = bucket_of(t[i].user_id);
		for (struct store_watch *w = buckets[b]; w != NULL; w = w->next) {
			/* A touch of mailbox 0 means every mailbox of the user. */
			if (w->dead || strcmp(w->user_id, t[i].user_id) != 0 ||
			    (w->mbox != 0 && t[i].mbox != 0 && w->mbox != t[i].mbox))
				continue;
			if (w->pending) {
				if (w->pending_mbox != t[i].mbox)
					w->pending_mbox = 0;
				if (t[i].highestmodseq > w->pending_modseq)
					w->pending_modseq = t[i].highestmodseq;
				w->pending_changed |= t[i].changed;
				if (t[i].entry.name != NULL)
					entry_add_locked(w, &t[i].entry);
				continue;
			}
			w->pending = true;
			w->pending_mbox = t[i].mbox;
			w->pending_modseq = t[i].highestmodseq;
			w->pending_changed = t[i].changed;
			if (t[i].entry.name != NULL)
				entry_add_locked(w, &t[i].entry);
			w->refs++; /* the event's */
			if (npost == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				post = xrealloc(post, cap * sizeof(*post));
			}
			post[npost++] = w;
		}
	}
	pthread_mutex_unlock(&wlock);
	/* worker_post() takes the worker's lock: not under ours. */
	for (size_t j = 0; j < npost; j++) {
		if (post[j]->worker != NULL)
			worker_post(post[j]->worker, deliver_event, post[j]);
		else
			deliver_event(post[j]); /* tools and tests: no loop */
	}
	free(post);
}

void
store_changed_elsewhere(const char *user_id)
{
	struct store_touched t = {.user_id = (char *)user_id,
				  .mbox = 0,
				  .highestmodseq = UINT64_MAX,
				  .changed = STORE_CHANGED_ALL};

	store_watch_notify(&t, 1);
}
