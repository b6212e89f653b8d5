/*
 * metrics.h - ternd's counters, in a small shared-memory area that
 * tern-admind (another process) reads and renders for Prometheus.
 *
 * The area is the file STATE_DIR/metrics: a 64-byte header (magic,
 * layout version, slot count, ternd's pid and start time) and then
 * M_COUNT little 64-bit slots, counters and gauges, indexed by enum
 * metric_id. ternd creates it, zeroed, at start (metrics_open) and maps
 * it MAP_SHARED; every update is one relaxed atomic add on a hot path,
 * no lock. A reader copies the slots out (metrics_read); the values are
 * each exact, but not a consistent set (a login may be counted before the
 * connection that made it: fine for monitoring).
 *
 * Until metrics_open() runs, and when the file cannot be created, updates
 * go to a private in-memory area, so calling metric_inc() is always safe.
 * Any thread.
 */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/config.h"

#define METRICS_MAGIC "TERNMETR"
/* Bump whenever enum metric_id, the buckets or the header change: a
 * reader refuses an area of another version rather than mislabel it. */
#define METRICS_VERSION 1
#define METRICS_HEADER_SIZE 64

/* Directory operation latency histogram: upper bounds in milliseconds
 * (a last, implicit +Inf bucket follows). */
#define METRICS_DIR_BUCKETS 10
/* Group-commit batch size histogram: upper bounds in operations. */
#define METRICS_BATCH_BUCKETS 8

enum metric_id {
	/* Per service (+ enum service). */
	M_CONN_OPEN = 0,			       /* gauge: connections open now */
	M_CONN_TOTAL = M_CONN_OPEN + SVC_COUNT,	       /* connections accepted */
	M_LOGIN_OK = M_CONN_TOTAL + SVC_COUNT,	       /* password logins accepted */
	M_LOGIN_FAILED = M_LOGIN_OK + SVC_COUNT,       /* wrong credentials */
	M_LOGIN_TEMPFAIL = M_LOGIN_FAILED + SVC_COUNT, /* directory unavailable */
	/* Storage writer. */
	M_DELIVERED_MESSAGES = M_LOGIN_TEMPFAIL + SVC_COUNT, /* committed with >= 1 local rcpt */
	M_DELIVERED_RCPTS,				     /* local recipients committed */
	M_BATCH_COUNT,					     /* group-commit batches */
	M_BATCH_OPS,					     /* operations in them */
	M_BATCH_BUCKET,					     /* + bucket index */
	/* Directory. */
	M_DIR_CACHE_HIT = M_BATCH_BUCKET + METRICS_BATCH_BUCKETS + 1,
	M_DIR_CACHE_MISS,
	M_DIR_OP_COUNT, /* LDAP searches and binds completed */
	M_DIR_OP_USEC,	/* their total time, microseconds */
	M_DIR_OP_BUCKET,
	M_COUNT = M_DIR_OP_BUCKET + METRICS_DIR_BUCKETS + 1
};

struct metrics_header {
	char magic[8]; /* METRICS_MAGIC, written last at creation */
	uint32_t version;
	uint32_t nslots;      /* M_COUNT */
	uint32_t header_size; /* METRICS_HEADER_SIZE: where the slots start */
	uint32_t reserved;
	int64_t pid;	    /* ternd's */
	int64_t start_time; /* Unix seconds */
	uint8_t pad[METRICS_HEADER_SIZE - 40];
};

/* The slots updates go to: the shared file's, or the private area. Set
 * once by metrics_open() before any worker thread starts. */
extern uint64_t *metrics_slots;

static inline void
metric_add(enum metric_id id, uint64_t n)
{
	__atomic_fetch_add(&metrics_slots[id], n, __ATOMIC_RELAXED);
}

static inline void
metric_inc(enum metric_id id)
{
	metric_add(id, 1);
}

static inline void
metric_dec(enum metric_id id)
{
	__atomic_fetch_sub(&metrics_slots[id], 1, __ATOMIC_RELAXED);
}

/* Per-service counters by service name ("imap", as in conn->service);
 * unknown names are ignored. */
int metrics_service_index(const char *service);
void metric_inc_svc(enum metric_id base, const char *service);

/* Histogram observations. */
void metrics_observe_dir_op(uint64_t usec);
void metrics_observe_batch(uint64_t ops);

/* ternd, main thread, before the workers start: creates (or replaces)
 * state_dir/metrics, zeroed, and switches updates to it. On failure logs
 * a warning, keeps the private area and returns -1. */
int metrics_open(const char *state_dir);
/* Unmaps the file (updates go to the private area again). */
void metrics_close(void);

/* A copy of an area, for rendering. */
struct metrics_snapshot {
	struct metrics_header header;
	uint64_t v[M_COUNT];
};

/* Reads the area at path (read-only mapping, copied out). 0, or -1 with
 * a malloc'd *error_r (missing file, wrong magic, version or size). */
int metrics_read(const char *path, struct metrics_snapshot *s, char **error_r);

/* Appends the snapshot in the Prometheus text format 0.0.4 (HELP, TYPE
 * and samples of every tern_* metric ternd keeps). 0, or -1 if out hit
 * its cap. */
int metrics_render(const struct metrics_snapshot *s, struct buf *out);
/* One gauge with its HELP and TYPE lines. */
int metrics_render_gauge(struct buf *out, const char *name, const char *help, double value);

/* Bucket upper bounds (for tests and rendering). */
extern const uint64_t metrics_dir_bucket_ms[METRICS_DIR_BUCKETS];
extern const uint64_t metrics_batch_bucket_ops[METRICS_BATCH_BUCKETS];

#endif
