/*
 * log.h - one line per event on stderr:
 *   <16-hex id> <service> <event> key=value ...
 * Safe to call from any thread (each line is written with one write(2)).
 * Passwords and AUTH payloads never reach these functions (STYLE rule 16).
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdint.h>
#include <stdarg.h>
#include "compat.h"

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

/* Sets the minimum level printed; "debug", "info", "warn", "error". */
void log_init(enum log_level min);
int log_level_parse(const char *s, enum log_level *level_r);

/* A fresh random 64-bit id for a session or a job. */
uint64_t log_new_id(void);

/* id 0 prints as 16 zeros (process-wide events). fmt is "event key=value ...". */
void log_msg(enum log_level level, uint64_t id, const char *service, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
void log_vmsg(enum log_level level, uint64_t id, const char *service, const char *fmt, va_list ap)
	PRINTF_LIKE(4, 0);

#define log_debug(id, svc, ...) log_msg(LOGL_DEBUG, (id), (svc), __VA_ARGS__)
#define log_info(id, svc, ...) log_msg(LOGL_INFO, (id), (svc), __VA_ARGS__)
#define log_warn(id, svc, ...) log_msg(LOGL_WARN, (id), (svc), __VA_ARGS__)
#define log_error(id, svc, ...) log_msg(LOGL_ERROR, (id), (svc), __VA_ARGS__)

/* Broken config or environment: print and exit(1). */
void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;
/* Our own bug: print and abort(). */
void panic(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;

#endif
