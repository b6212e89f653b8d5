/*
 * smtp_rate.h - rate limits for SMTP (messages and recipients per hour,
 * per authenticated user and per client IP): a sliding window of one
 * hour in 60 one-minute buckets per key, in memory, shared by every
 * worker (one mutex). Counts are lost on restart, which only ever lets
 * a sender through sooner.
 *
 * The table is bounded: keys whose window is empty are dropped when
 * space is needed; when it is full of live keys a new key is let through
 * uncounted (and logged by the caller): failing open on a full table is
 * better than refusing every new client. Any thread.
 */
#ifndef TERN_SMTP_RATE_H
#define TERN_SMTP_RATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SMTP_RATE_WINDOW 3600 /* seconds */
#define SMTP_RATE_BUCKETS 60

struct smtp_rate;

/* max_keys bounds the memory (about 300 bytes a key). */
struct smtp_rate *smtp_rate_new(size_t max_keys);
void smtp_rate_destroy(struct smtp_rate **r);

enum smtp_rate_result {
	SMTP_RATE_OK = 0,	/* counted */
	SMTP_RATE_EXCEEDED = 1, /* not counted: count + n would pass limit */
	SMTP_RATE_FULL = 2,	/* table full: let through, not counted */
};

/* Adds n to key's count at now unless that would take the count over the
 * last hour past limit (limit 0: no limit, nothing counted). */
enum smtp_rate_result smtp_rate_take(struct smtp_rate *r, const char *key, uint32_t n,
				     uint32_t limit, time_t now);
/* key's count over the hour before now (tests and logs). */
uint32_t smtp_rate_count(struct smtp_rate *r, const char *key, time_t now);

/* The process-wide table the SMTP sessions share, created on first use. */
struct smtp_rate *smtp_rate_shared(void);

#endif
