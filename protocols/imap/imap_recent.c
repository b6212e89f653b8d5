/*
 * imap_recent.c - who gets \Recent (RFC 3501 2.3.2): a message is recent
 * in exactly one session, the first to be told about it. Every IMAP
 * session of a mailbox runs in this one process, so the claim is a
 * process-wide table: per (user, mailbox) the highest UID some session
 * has been told about. A read-write session claims the UIDs above it when
 * it selects the mailbox and whenever new messages reach its view; an
 * EXAMINE only peeks (RFC 3501 6.3.2: it must not take \Recent away).
 *
 * The table lives in memory: after a restart, messages that arrived while
 * ternd was down or before it started count as not recent (the first
 * claim starts from the caller's estimate, see imap_recent_claim). That
 * is the one way this differs from a server that persists \Recent, and
 * it only ever loses the flag, never shows it twice.
 *
 * Any worker thread; one mutex, held for a hash lookup.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compat.h"
#include "protocols/imap/imap_internal.h"

#define RECENT_BUCKETS 4096 /* power of two */

struct recent_entry {
	struct recent_entry *next;
	uint32_t mailbox_id;
	uint32_t uidvalidity;
	uint32_t claimed; /* highest UID some session was told about */
	char user_id[];
};

static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct recent_entry *buckets[RECENT_BUCKETS];
static time_t started;

/* When this process started: messages saved before it are not recent to
 * anyone (their claims were lost with the previous process). */
__attribute__((constructor)) static void
recent_note_start(void)
{
	started = time(NULL);
}

time_t
imap_recent_started(void)
{
	return started;
}

static size_t
bucket_of(const char *user_id, uint32_t mailbox_id)
{
	/* FNV-1a over the id and the mailbox number. */
	uint64_t h = 1469598103934665603ull;
	for (const char *p = user_id; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ mailbox_id) * 1099511628211ull;
	return (size_t)(h & (RECENT_BUCKETS - 1));
}

static struct recent_entry *
find(const char *user_id, uint32_t mailbox_id, struct recent_entry ***slot_r)
{
	struct recent_entry **slot = &buckets[bucket_of(user_id, mailbox_id)];
	for (struct recent_entry *e = *slot; e != NULL; e = e->next) {
		if (e->mailbox_id == mailbox_id && strcmp(e->user_id, user_id) == 0)
			return e;
	}
	*slot_r = slot;
	return NULL;
}

uint32_t
imap_recent_claim(const char *user_id, uint32_t mailbox_id, uint32_t uidvalidity, uint32_t highest,
		  uint32_t initial, bool peek)
{
	struct recent_entry **slot = NULL;
	uint32_t prev;

	pthread_mutex_lock(&recent_lock);
	struct recent_entry *e = find(user_id, mailbox_id, &slot);
	if (e == NULL) {
		size_t len = strlen(user_id);
		e = xmalloc(sizeof(*e) + len + 1);
		memcpy(e->user_id, user_id, len + 1);
		e->mailbox_id = mailbox_id;
		e->uidvalidity = uidvalidity;
		e->claimed = initial;
		e->next = *slot;
		*slot = e;
	} else if (e->uidvalidity != uidvalidity) {
		/* A mailbox id reused by a re-created mailbox: new UIDs. */
		e->uidvalidity = uidvalidity;
		e->claimed = initial;
	}
	prev = e->claimed;
	if (!peek && highest > e->claimed)
		e->claimed = highest;
	pthread_mutex_unlock(&recent_lock);
	return prev;
}

bool
imap_recent_peek(const char *user_id, uint32_t mailbox_id, uint32_t uidvalidity,
		 uint32_t *claimed_r)
{
	struct recent_entry **slot = NULL;
	bool found = false;

	pthread_mutex_lock(&recent_lock);
	struct recent_entry *e = find(user_id, mailbox_id, &slot);
	if (e != NULL && e->uidvalidity == uidvalidity) {
		*claimed_r = e->claimed;
		found = true;
	}
	pthread_mutex_unlock(&recent_lock);
	return found;
}

void
imap_recent_free_all(void)
{
	pthread_mutex_lock(&recent_lock);
	for (size_t i = 0; i < RECENT_BUCKETS; i++) {
		while (buckets[i] != NULL) {
			struct recent_entry *e = buckets[i];
			buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&recent_lock);
}

/* ---- a view's recent set: sorted, disjoint UID ranges ---- */

void
imap_view_recent_add(struct imap_view *v, uint32_t lo, uint32_t hi)
{
	if (lo > hi)
		return;
	/* Claims only grow, so a new range starts above every earlier one
	 * or touches the last. */
	if (v->nrecent > 0 && lo <= v->recent[v->nrecent - 1].hi + 1) {
		if (hi > v->recent[v->nrecent - 1].hi)
			v->recent[v->nrecent - 1].hi = hi;
		return;
	}
	if (v->nrecent == v->recent_cap) {
		v->recent_cap = v->recent_cap == 0 ? 4 : v->recent_cap * 2;
		v->recent = xrealloc(v->recent, v->recent_cap * sizeof(*v->recent));
	}
	v->recent[v->nrecent].lo = lo;
	v->recent[v->nrecent].hi = hi;
	v->nrecent++;
}

bool
imap_view_is_recent(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->nrecent;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uid < v->recent[mid].lo)
			hi = mid;
		else if (uid > v->recent[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

size_t
imap_view_recent_count(const struct imap_view *v)
{
	size_t n = 0, r = 0;

	/* Both ascending: one merge pass. */
	for (size_t i = 0; i < v->count && r < v->nrecent; i++) {
		while (r < v->nrecent && v->recent[r].hi < v->uids[i])
			r++;
		if (r < v->nrecent && v->uids[i] >= v->recent[r].lo)
			n++;
	}
	return n;
}
