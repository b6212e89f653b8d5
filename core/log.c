/*
 * log.c - one line per event on stderr: "<16-hex id> <service> <rest>".
 * Each line is formatted in full first and written with a single write(2),
 * so lines from different threads never interleave. Logging never fails
 * the caller: a line that cannot be written is dropped, an over-long one
 * is truncated.
 */
#include "core/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Longest line we print; longer ones are cut (and end in "..."). */
#define LOG_LINE_MAX 4096

static _Atomic int log_min = LOGL_INFO;

void
log_init(enum log_level min)
{
	atomic_store(&log_min, (int)min);
}

int
log_level_parse(const char *s, enum log_level *level_r)
{
	static const struct {
		const char *name;
		enum log_level level;
	} levels[] = {
	    {"debug", LOGL_DEBUG},  {"info", LOGL_INFO},   {"warn", LOGL_WARN},
	    {"warning", LOGL_WARN}, {"error", LOGL_ERROR},
	};
	for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
		if (strcasecmp(s, levels[i].name) == 0) {
			*level_r = levels[i].level;
			return 0;
		}
	}
	return -1;
}

/* splitmix64 (Steele, Lea, Flood): a counter through a good mixer, so
 * every thread can draw ids from one atomic counter without a lock. The
 * starting point comes from getrandom, so ids differ between runs. */
static _Atomic uint64_t id_state;
static _Atomic int id_seeded;

static uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t
log_new_id(void)
{
	if (!atomic_load_explicit(&id_seeded, memory_order_acquire)) {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
			seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
		uint64_t zero = 0;
		/* Only the first seeder wins; a racing one just draws from it. */
		atomic_compare_exchange_strong(&id_state, &zero, seed);
		atomic_store_explicit(&id_seeded, 1, memory_order_release);
	}
	uint64_t id;
	do {
		id = mix64(atomic_fetch_add(&id_state, 0x9e3779b97f4a7c15ULL));
	} while (id == 0); /* 0 means "process-wide" in log lines */
	return id;
}

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Formats "<prefix><fmt...>\n" into one stack line and writes it once. */
static void emit(const char *prefix, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

static void
emit(const char *prefix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n = snprintf(line, sizeof(line), "%s", prefix);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (m < 0)
		return;
	if ((size_t)m >= sizeof(line) - len) {
		len = sizeof(line) - 1;
		memcpy(line + len - 3, "...", 3);
	} else {
		len += (size_t)m;
	}
	/* One line per event: a newline inside would forge a second line. */
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	/* len <= sizeof(line) - 1, so the newline fits where the NUL was. */
	line[len++] = '\n';
	write_all(line, len);
}

void
log_vmsg(enum log_level level, uint64_t id, const char *service, const char *fmt, va_list ap)
{
	if ((int)level < atomic_load(&log_min))
		return;
	char prefix[64 + 20];
	snprintf(prefix, sizeof(prefix), "%016llx %.63s ", (unsigned long long)id,
		 service != NULL ? service : "-");
	emit(prefix, fmt, ap);
}

void
log_msg(enum log_level level, uint64_t id, const char *service, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, id, service, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void
panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit("panic: ", fmt, ap);
	va_end(ap);
	abort();
}
