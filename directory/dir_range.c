/*
 * dir_range.c - AD ranged retrieval (dir_range.h): parsing the range
 * option of an attribute description and deciding the next request.
 *
 * Pure: no I/O, no globals; strings in the caller's arena. How it fails:
 * see dir_range.h (BAD for a server that breaks the protocol, CAP for
 * too many values); nothing here logs.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "directory/dir_range.h"

/* Decimal digits up to end, no sign, at most 2^32-1. */
static int
parse_u32(const char *s, const char *end, uint32_t *v_r)
{
	uint64_t v = 0;

	if (s == end)
		return -1;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*v_r = (uint32_t)v;
	return 0;
}

int
dir_range_parse(const char *desc, struct dir_range_desc *d)
{
	static const char opt[] = "range=";
	int found = 0;

	memset(d, 0, sizeof(*d));
	for (const char *p = strchr(desc, ';'); p != NULL; p = strchr(p + 1, ';')) {
		if (strncasecmp(p + 1, opt, sizeof(opt) - 1) != 0)
			continue; /* ;binary, ;lang-en...: not ours */
		if (found++)
			return -1;
		const char *v = p + sizeof(opt);
		const char *end = strchr(v, ';');
		if (end == NULL)
			end = v + strlen(v);
		const char *dash = memchr(v, '-', (size_t)(end - v));
		if (dash == NULL || parse_u32(v, dash, &d->lo) < 0)
			return -1;
		if (end - dash == 2 && dash[1] == '*') {
			d->last = true;
		} else if (parse_u32(dash + 1, end, &d->hi) < 0 || d->hi < d->lo) {
			return -1;
		}
		d->opt_start = (size_t)(p - desc);
		d->opt_end = (size_t)(end - desc);
	}
	return found;
}

const char *
dir_range_base(struct arena *a, const char *desc, const struct dir_range_desc *d)
{
	return arena_printf(a, "%.*s%s", (int)d->opt_start, desc, desc + d->opt_end);
}

enum dir_range_step
dir_range_step(struct dir_range *st, const char *desc, size_t nvals, const char **why_r)
{
	struct dir_range_desc d;

	st->rounds++;
	if (desc == NULL) {
		*why_r = "the attribute is missing from the answer to a range request";
		return DIR_RANGE_BAD;
	}
	int p = dir_range_parse(desc, &d);
	if (p < 0) {
		*why_r = "malformed range option";
		return DIR_RANGE_BAD;
	}
	if (p == 0) {
		*why_r = "answer to a range request without a range option";
		return DIR_RANGE_BAD;
	}
	if (d.lo != st->next) {
		*why_r = "range out of order (does not start where the last one ended)";
		return DIR_RANGE_BAD;
	}
	if (nvals > DIR_RANGE_MAX_VALUES - st->total) {
		*why_r = "more values than Tern reads of one attribute (DIR_RANGE_MAX_VALUES)";
		return DIR_RANGE_CAP;
	}
	st->total += nvals;
	if (d.last)
		return DIR_RANGE_DONE;
	/* A non-final part must bring something, or asking again could
	 * go on for ever. */
	if (nvals == 0) {
		*why_r = "empty range that is not the last one";
		return DIR_RANGE_BAD;
	}
	if (d.hi == UINT32_MAX) {
		*why_r = "range ends beyond 2^32-1";
		return DIR_RANGE_BAD;
	}
	if (st->rounds >= DIR_RANGE_MAX_ROUNDS) {
		*why_r = "too many range requests for one attribute";
		return DIR_RANGE_BAD;
	}
	st->next = d.hi + 1;
	return DIR_RANGE_MORE;
}

/* Appends from's values to into (both in a). */
static void
append_values(struct arena *a, struct dir_ldap_attr *into, const struct dir_ldap_attr *from)
{
	if (from->nvals == 0)
		return;
	size_t n = into->nvals + from->nvals;
	char **vals = arena_alloc(a, (n + 1) * sizeof(*vals));
	size_t *lens = arena_alloc(a, (n + 1) * sizeof(*lens));
	if (into->nvals > 0) {
		memcpy(vals, into->vals, into->nvals * sizeof(*vals));
		memcpy(lens, into->lens, into->nvals * sizeof(*lens));
	}
	memcpy(vals + into->nvals, from->vals, from->nvals * sizeof(*vals));
	memcpy(lens + into->nvals, from->lens, from->nvals * sizeof(*lens));
	into->vals = vals;
	into->lens = lens;
	into->nvals = n;
}

static void
set_request(struct arena *a, struct dir_range_walk *w)
{
	w->request = arena_printf(a, "%s;range=%u-*", w->base, (unsigned)w->st.next);
}

enum dir_range_step
dir_range_walk_next(struct arena *a, struct dir_ldap_entry *entries, size_t n,
		    struct dir_range_walk *w)
{
	if (w->started)
		w->attr++;
	w->started = true;
	for (; w->entry < n; w->entry++, w->attr = 0) {
		struct dir_ldap_entry *e = &entries[w->entry];
		for (; w->attr < e->nattrs; w->attr++) {
			struct dir_ldap_attr *at = &e->attrs[w->attr];
			struct dir_range_desc d;
			int p = dir_range_parse(at->name, &d);
			if (p == 0)
				continue;
			memset(&w->st, 0, sizeof(w->st));
			w->request = NULL;
			if (p < 0) {
				w->base = at->name;
				w->why = "malformed range option";
				return DIR_RANGE_BAD;
			}
			const char *desc = at->name;
			w->base = at->name = dir_range_base(a, desc, &d);
			enum dir_range_step s = dir_range_step(&w->st, desc, at->nvals, &w->why);
			if (s == DIR_RANGE_CAP)
				at->nvals = 0; /* nothing beyond the cap, not even a part */
			if (s == DIR_RANGE_MORE)
				set_request(a, w);
			if (s != DIR_RANGE_DONE)
				return s;
		}
	}
	return DIR_RANGE_DONE;
}

/* The part of the description before any option, for matching an answer
 * whose range option does not parse. */
static bool
same_base(const char *x, const char *y)
{
	size_t lx = strcspn(x, ";"), ly = strcspn(y, ";");

	return lx == ly && strncasecmp(x, y, lx) == 0;
}

enum dir_range_step
dir_range_walk_answer(struct arena *a, struct dir_ldap_entry *entries, struct dir_range_walk *w,
		      const struct dir_ldap_entry *reply)
{
	const struct dir_ldap_attr *got = NULL;

	for (size_t i = 0; reply != NULL && i < reply->nattrs && got == NULL; i++) {
		const struct dir_ldap_attr *at = &reply->attrs[i];
		struct dir_range_desc d;
		int p = dir_range_parse(at->name, &d);
		if (p == 1   ? strcasecmp(dir_range_base(a, at->name, &d), w->base) == 0
		    : p == 0 ? strcasecmp(at->name, w->base) == 0
			     : same_base(at->name, w->base))
			got = at;
	}
	w->request = NULL;
	enum dir_range_step s = dir_range_step(&w->st, got != NULL ? got->name : NULL,
					       got != NULL ? got->nvals : 0, &w->why);
	if (s == DIR_RANGE_DONE || s == DIR_RANGE_MORE)
		append_values(a, &entries[w->entry].attrs[w->attr], got);
	if (s == DIR_RANGE_MORE)
		set_request(a, w);
	return s;
}
