/*
 * admin_route.c - the route table of tern-admind and its matcher:
 * method + path pattern with {param} segments -> handler.
 *
 * Matching is segment by segment, literal segments compared exactly,
 * {name} taking any one non-empty segment (percent-decoded). No I/O, no
 * globals except the registry, which is filled on the main thread before
 * the request threads start and only read after.
 * How it fails: a path that matches no pattern is NO_PATH (404); one that
 * matches with another method is NO_METHOD (405, with the methods that
 * would do); a malformed percent escape matches nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_internal.h"
#include "core/log.h"

#define MAX_SEGMENTS 16

static const struct admin_route **registry; /* owned array of borrowed routes */
static size_t nregistry;
static struct admin_route *flat; /* owned: a contiguous copy for matching */

void
admin_routes_register(const struct admin_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (routes[i].pattern[0] != '/')
			panic("admin: route pattern \"%s\" must start with /", routes[i].pattern);
		registry = xrealloc(registry, (nregistry + 1) * sizeof(*registry));
		registry[nregistry++] = &routes[i];
	}
	free(flat);
	flat = xcalloc(nregistry > 0 ? nregistry : 1, sizeof(*flat));
	for (size_t i = 0; i < nregistry; i++)
		flat[i] = *registry[i];
}

const struct admin_route *
admin_routes_table(size_t *n_r)
{
	*n_r = nregistry;
	return flat;
}

void
admin_routes_clear(void)
{
	free(registry);
	free(flat);
	registry = NULL;
	flat = NULL;
	nregistry = 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..len) into a; NULL on a bad escape or an encoded
 * NUL. '+' stays '+' (this is a path, not a form). */
static char *
decode_segment(struct arena *a, const char *s, size_t len)
{
	char *out = arena_alloc(a, len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= len)
			return NULL;
		int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return NULL;
		*o++ = (char)(hi * 16 + lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

/* Splits a path into raw segments; -1 if it is not "/seg/seg..." with
 * non-empty segments (a single trailing slash is tolerated), or too deep. */
static int
split(const char *path, const char **seg, size_t *len, size_t *n_r)
{
	size_t n = 0;
	const char *p = path;

	if (*p != '/')
		return -1;
	p++;
	while (*p != '\0') {
		const char *end = strchr(p, '/');
		size_t l = end != NULL ? (size_t)(end - p) : strlen(p);
		if (l == 0)
			return -1;
		if (n == MAX_SEGMENTS)
			return -1;
		seg[n] = p;
		len[n] = l;
		n++;
		p += l;
		if (*p == '/') {
			p++;
			if (*p == '\0')
				break; /* "/api/v1/users/" is "/api/v1/users" */
		}
	}
	*n_r = n;
	return 0;
}

/* 1 if the route's pattern matches the segments; params filled. */
static int
match_pattern(const char *pattern, size_t n, char *const *decoded, struct admin_param *params,
	      size_t *np_r)
{
	const char *pseg[MAX_SEGMENTS];
	size_t plen[MAX_SEGMENTS], pn, np = 0;

	if (split(pattern, pseg, plen, &pn) < 0 || pn != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (plen[i] >= 2 && pseg[i][0] == '{' && pseg[i][plen[i] - 1] == '}') {
			params[np].name = NULL; /* set by the caller from pattern */
			params[np].value = decoded[i];
			np++;
			continue;
		}
		/* Literal segments compare raw and decoded alike: a pattern
		 * has no escapes. */
		if (plen[i] != strlen(decoded[i]) || memcmp(pseg[i], decoded[i], plen[i]) != 0)
			return 0;
	}
	*np_r = np;
	return 1;
}

/* Names of the {params} of a pattern, in order, into params[].name. */
static void
name_params(struct arena *a, const char *pattern, struct admin_param *params)
{
	size_t k = 0;

	for (const char *p = pattern; (p = strchr(p, '{')) != NULL; p++) {
		const char *close = strchr(p, '}');
		if (close == NULL)
			break;
		params[k++].name = arena_strndup(a, p + 1, (size_t)(close - p - 1));
	}
}

enum admin_match
admin_route_match(const struct admin_route *routes, size_t n, const char *method, const char *path,
		  struct arena *a, const struct admin_route **route_r,
		  struct admin_param **params_r, size_t *nparams_r, const char **allow_r)
{
	const char *seg[MAX_SEGMENTS];
	size_t len[MAX_SEGMENTS], nseg = 0;
	char *decoded[MAX_SEGMENTS];
	struct buf allow;
	bool path_found = false;

	*route_r = NULL;
	*params_r = NULL;
	*nparams_r = 0;
	*allow_r = NULL;
	if (split(path, seg, len, &nseg) < 0)
		return ADMIN_MATCH_NO_PATH;
	for (size_t i = 0; i < nseg; i++) {
		decoded[i] = decode_segment(a, seg[i], len[i]);
		if (decoded[i] == NULL || strcmp(decoded[i], ".") == 0 ||
		    strcmp(decoded[i], "..") == 0 || strchr(decoded[i], '/') != NULL)
			return ADMIN_MATCH_NO_PATH;
	}
	buf_init(&allow, 256);
	/* The route with the fewest {params} wins ("/queue/stats" before
	 * "/queue/{id}"), the first registered on a tie. */
	const struct admin_route *best = NULL;
	struct admin_param best_params[MAX_SEGMENTS];
	size_t best_np = 0;
	for (size_t r = 0; r < n; r++) {
		struct admin_param params[MAX_SEGMENTS];
		size_t np = 0;
		if (!match_pattern(routes[r].pattern, nseg, decoded, params, &np))
			continue;
		if (strcmp(routes[r].method, method) != 0) {
			path_found = true;
			if (strstr(buf_cstr(&allow), routes[r].method) == NULL)
				(void)buf_printf(&allow, "%s%s", allow.len > 0 ? ", " : "",
						 routes[r].method);
			continue;
		}
		if (best != NULL && np >= best_np)
			continue;
		best = &routes[r];
		best_np = np;
		memcpy(best_params, params, np * sizeof(params[0]));
	}
	if (best != NULL) {
		name_params(a, best->pattern, best_params);
		*params_r = arena_memdup(a, best_params,
					 (best_np > 0 ? best_np : 1) * sizeof(best_params[0]));
		*nparams_r = best_np;
		*route_r = best;
		buf_free(&allow);
		return ADMIN_MATCH_OK;
	}
	if (path_found) {
		*allow_r = arena_strdup(a, buf_cstr(&allow));
		buf_free(&allow);
		return ADMIN_MATCH_NO_METHOD;
	}
	buf_free(&allow);
	return ADMIN_MATCH_NO_PATH;
}
