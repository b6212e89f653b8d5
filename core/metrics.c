/*
 * metrics.c - the shared counter area (metrics.h): ternd's side creates
 * and updates it, tern-admind's side reads and renders it.
 *
 * How it fails: if the file cannot be created or mapped, ternd logs one
 * warning and counts into a private array (nothing is exported, nothing
 * breaks). A reader refuses a file with the wrong magic, version or size
 * with a message; it never renders slots it cannot name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/compat.h"
#include "core/log.h"
#include "core/metrics.h"

/* A renderer that does not know a slot would mislabel it. */
_Static_assert(M_COUNT ==
		   5 * SVC_COUNT + 4 + METRICS_BATCH_BUCKETS + 1 + 4 + METRICS_DIR_BUCKETS + 1,
	       "enum metric_id changed: update metrics_render and bump METRICS_VERSION");
_Static_assert(sizeof(struct metrics_header) == METRICS_HEADER_SIZE, "header layout");

#define METRICS_FILE_SIZE (METRICS_HEADER_SIZE + sizeof(uint64_t) * M_COUNT)

const uint64_t metrics_dir_bucket_ms[METRICS_DIR_BUCKETS] = {1,	 2,   5,   10,	 25,
							     50, 100, 250, 1000, 5000};
const uint64_t metrics_batch_bucket_ops[METRICS_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128};

static uint64_t private_slots[M_COUNT];
uint64_t *metrics_slots = private_slots;
static void *mapped; /* the file's mapping, or NULL */

int
metrics_service_index(const char *service)
{
	if (service == NULL)
		return -1;
	/* conn->service is config_service_name()'s own string: pointers
	 * match first, so the usual case costs no strcmp. */
	for (int s = 0; s < SVC_COUNT; s++) {
		if (config_service_name((enum service)s) == service)
			return s;
	}
	for (int s = 0; s < SVC_COUNT; s++) {
		if (strcmp(config_service_name((enum service)s), service) == 0)
			return s;
	}
	return -1;
}

void
metric_inc_svc(enum metric_id base, const char *service)
{
	int s = metrics_service_index(service);

	if (s >= 0)
		metric_inc((enum metric_id)(base + s));
}

void
metrics_observe_dir_op(uint64_t usec)
{
	unsigned b = 0;

	while (b < METRICS_DIR_BUCKETS && usec > metrics_dir_bucket_ms[b] * 1000)
		b++;
	metric_inc(M_DIR_OP_COUNT);
	metric_add(M_DIR_OP_USEC, usec);
	metric_inc((enum metric_id)(M_DIR_OP_BUCKET + b));
}

void
metrics_observe_batch(uint64_t ops)
{
	unsigned b = 0;

	while (b < METRICS_BATCH_BUCKETS && ops > metrics_batch_bucket_ops[b])
		b++;
	metric_inc(M_BATCH_COUNT);
	metric_add(M_BATCH_OPS, ops);
	metric_inc((enum metric_id)(M_BATCH_BUCKET + b));
}

int
metrics_open(const char *state_dir)
{
	char *path = NULL, *tmp = NULL;
	int fd = -1;
	void *p = MAP_FAILED;

	if (asprintf(&path, "%s/metrics", state_dir) < 0 ||
	    asprintf(&tmp, "%s/metrics.new", state_dir) < 0)
		fatal("out of memory");
	/* state_dir may not exist yet on a first start (store_open makes
	 * it too). */
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
		goto fail;
	/* A new file renamed over the old one, never a truncation in place:
	 * a reader that has the old file mapped would get SIGBUS. Readable
	 * by others: the counters are no secret. */
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	if (ftruncate(fd, (off_t)METRICS_FILE_SIZE) < 0)
		goto fail;
	p = mmap(NULL, METRICS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	close(fd);
	fd = -1;

	struct metrics_header *h = p;
	h->version = METRICS_VERSION;
	h->nslots = M_COUNT;
	h->header_size = METRICS_HEADER_SIZE;
	h->pid = (int64_t)getpid();
	h->start_time = (int64_t)time(NULL);
	memcpy(h->magic, METRICS_MAGIC, sizeof(h->magic));
	if (rename(tmp, path) < 0) {
		munmap(p, METRICS_FILE_SIZE);
		goto fail;
	}
	mapped = p;
	metrics_slots = (uint64_t *)((char *)p + METRICS_HEADER_SIZE);
	log_info(0, "metrics", "open path=%s slots=%d", path, (int)M_COUNT);
	free(path);
	free(tmp);
	return 0;
fail:
	log_warn(0, "metrics", "open-failed path=%s error=\"%s\" note=\"counting in memory only\"",
		 path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlink(tmp);
	free(path);
	free(tmp);
	return -1;
}

void
metrics_close(void)
{
	if (mapped == NULL)
		return;
	metrics_slots = private_slots;
	munmap(mapped, METRICS_FILE_SIZE);
	mapped = NULL;
}

static char *
read_error(const char *path, const char *detail)
{
	char *s;

	if (asprintf(&s, "%s: %s", path, detail) < 0)
		fatal("out of memory");
	return s;
}

int
metrics_read(const char *path, struct metrics_snapshot *s, char **error_r)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(s, 0, sizeof(*s));
	if (fd < 0) {
		*error_r = read_error(path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)METRICS_HEADER_SIZE) {
		close(fd);
		*error_r = read_error(path, "too short for a metrics header");
		return -1;
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		*error_r = read_error(path, strerror(errno));
		return -1;
	}
	const struct metrics_header *h = p;
	const char *why = NULL;
	if (memcmp(h->magic, METRICS_MAGIC, sizeof(h->magic)) != 0)
		why = "not a metrics file (bad magic)";
	else if (h->version != METRICS_VERSION)
		why = "metrics layout version differs from this build's (restart ternd)";
	else if (h->nslots != M_COUNT || h->header_size != METRICS_HEADER_SIZE ||
		 (size_t)st.st_size < METRICS_FILE_SIZE)
		why = "metrics layout size differs from this build's";
	if (why != NULL) {
		munmap(p, (size_t)st.st_size);
		*error_r = read_error(path, why);
		return -1;
	}
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	memcpy(&s->header, h, sizeof(s->header));
	const uint64_t *slots = (const uint64_t *)((const char *)p + METRICS_HEADER_SIZE);
	for (size_t i = 0; i < M_COUNT; i++)
		s->v[i] = __atomic_load_n(&slots[i], __ATOMIC_RELAXED);
	munmap(p, (size_t)st.st_size);
	return 0;
}

/* ---- rendering ---- */

static int
head(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int
per_service(struct buf *out, const struct metrics_snapshot *s, const char *name, const char *type,
	    const char *help, enum metric_id base, const char *extra_label)
{
	int rc = 0;

	if (help != NULL)
		rc |= head(out, name, type, help);
	for (int i = 0; i < SVC_COUNT; i++) {
		if (i == SVC_ADMIN)
			continue; /* served by tern-admind, which counts nothing here */
		rc |= buf_printf(
		    out, "%s{service=\"%s\"%s} %llu\n", name, config_service_name((enum service)i),
		    extra_label != NULL ? extra_label : "", (unsigned long long)s->v[base + i]);
	}
	return rc;
}

static int
histogram(struct buf *out, const struct metrics_snapshot *s, const char *name, const char *help,
	  enum metric_id bucket0, const uint64_t *bounds, unsigned nbounds, double bound_scale,
	  enum metric_id count, enum metric_id sum, double sum_scale)
{
	int rc = head(out, name, "histogram", help);
	uint64_t cum = 0;

	for (unsigned b = 0; b < nbounds; b++) {
		cum += s->v[bucket0 + b];
		rc |= buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
				 (double)bounds[b] * bound_scale, (unsigned long long)cum);
	}
	cum += s->v[bucket0 + nbounds];
	/* +Inf must equal _count; with relaxed updates the two can differ
	 * for an instant, so the bucket sum is the count we print. */
	(void)count;
	rc |= buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	rc |= buf_printf(out, "%s_sum %.6f\n", name, (double)s->v[sum] * sum_scale);
	rc |= buf_printf(out, "%s_count %llu\n", name, (unsigned long long)cum);
	return rc;
}

int
metrics_render(const struct metrics_snapshot *s, struct buf *out)
{
	int rc = 0;

	rc |= head(out, "tern_ternd_start_time_seconds", "gauge",
		   "Unix time ternd started (from the metrics area header).");
	rc |= buf_printf(out, "tern_ternd_start_time_seconds %lld\n",
			 (long long)s->header.start_time);
	rc |= per_service(out, s, "tern_connections", "gauge", "Connections open now, per service.",
			  M_CONN_OPEN, NULL);
	rc |= per_service(out, s, "tern_connections_total", "counter",
			  "Connections accepted, per service.", M_CONN_TOTAL, NULL);
	rc |= per_service(out, s, "tern_logins_total", "counter",
			  "Password logins, per service and result (ok, failed, tempfail).",
			  M_LOGIN_OK, ",result=\"ok\"");
	rc |= per_service(out, s, "tern_logins_total", "counter", NULL, M_LOGIN_FAILED,
			  ",result=\"failed\"");
	rc |= per_service(out, s, "tern_logins_total", "counter", NULL, M_LOGIN_TEMPFAIL,
			  ",result=\"tempfail\"");
	rc |= head(out, "tern_delivered_messages_total", "counter",
		   "Messages committed to the store for at least one local recipient.");
	rc |= buf_printf(out, "tern_delivered_messages_total %llu\n",
			 (unsigned long long)s->v[M_DELIVERED_MESSAGES]);
	rc |= head(out, "tern_delivered_recipients_total", "counter",
		   "Local recipients whose copy was committed to the store.");
	rc |= buf_printf(out, "tern_delivered_recipients_total %llu\n",
			 (unsigned long long)s->v[M_DELIVERED_RCPTS]);
	rc |= histogram(out, s, "tern_store_batch_operations",
			"Operations per group-commit batch of the storage writer.", M_BATCH_BUCKET,
			metrics_batch_bucket_ops, METRICS_BATCH_BUCKETS, 1.0, M_BATCH_COUNT,
			M_BATCH_OPS, 1.0);
	rc |= head(out, "tern_directory_cache_total", "counter",
		   "Directory cache lookups by result (hit, miss).");
	rc |= buf_printf(out, "tern_directory_cache_total{result=\"hit\"} %llu\n",
			 (unsigned long long)s->v[M_DIR_CACHE_HIT]);
	rc |= buf_printf(out, "tern_directory_cache_total{result=\"miss\"} %llu\n",
			 (unsigned long long)s->v[M_DIR_CACHE_MISS]);
	rc |= histogram(out, s, "tern_directory_operation_seconds",
			"Time of LDAP searches and binds, from submission to result.",
			M_DIR_OP_BUCKET, metrics_dir_bucket_ms, METRICS_DIR_BUCKETS, 0.001,
			M_DIR_OP_COUNT, M_DIR_OP_USEC, 0.000001);
	return rc != 0 ? -1 : 0;
}

int
metrics_render_gauge(struct buf *out, const char *name, const char *help, double value)
{
	int rc = head(out, name, "gauge", help);

	rc |= buf_printf(out, "%s %.17g\n", name, value);
	return rc != 0 ? -1 : 0;
}
