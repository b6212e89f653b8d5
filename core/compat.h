/*
 * compat.h - compiler attributes and tiny helpers shared by every module.
 */
#ifndef TERN_COMPAT_H
#define TERN_COMPAT_H

#include <stddef.h>

#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#define NORETURN __attribute__((noreturn))
#define UNUSED __attribute__((unused))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that never returns NULL: out of memory is fatal for a server
 * (the kernel's OOM killer would get us anyway), as in Redis' zmalloc. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf that never fails: for error messages handed to callers. */
void xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same, returning the string: for error messages and paths. */
char *xstrfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
