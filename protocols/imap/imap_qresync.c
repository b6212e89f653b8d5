/*
 * imap_qresync.c - the pure parts of CONDSTORE and QRESYNC (RFC 7162):
 * mod-sequence numbers, the QRESYNC select parameter and the UID set of a
 * VANISHED (EARLIER) response. See imap_qresync.h.
 *
 * How it fails: malformed parameters give -1 and a message for the BAD;
 * the output is only set on success.
 */
#include <inttypes.h>
#include <string.h>

#include "core/buf.h"
#include "protocols/imap/imap_qresync.h"

int
imap_modseq_parse(const char *s, size_t len, bool zero_ok, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in 64 bits */
	}
	if (v > (uint64_t)INT64_MAX || (v == 0 && !zero_ok))
		return -1;
	*v_r = v;
	return 0;
}

static int
parse_nz32(const struct imap_arg *a, uint32_t *v_r)
{
	uint64_t v;

	if (a->type != IMAP_ARG_ATOM || imap_modseq_parse(a->str, a->len, false, &v) < 0 ||
	    v > UINT32_MAX || a->str[0] == '0')
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

/* A sequence set in which "*" and "$" are not allowed (RFC 7162 7:
 * known-uids, known-sequence-set, known-uid-set). */
static int
parse_set(struct arena *a, const struct imap_arg *arg, struct imap_seqset *set_r)
{
	if (arg->type != IMAP_ARG_ATOM || strpbrk(arg->str, "*$") != NULL ||
	    imap_seqset_parse(a, arg->str, set_r) < 0)
		return -1;
	return 0;
}

/* The numbers of a set in the order sent, ranges expanded (ascending or
 * descending as written). -1 if there are more than max. */
static int
expand_set(struct arena *a, const char *str, size_t max, uint32_t **v_r, size_t *n_r)
{
	uint32_t *v = arena_alloc(a, (max + 1) * sizeof(*v));
	size_t n = 0;
	const char *p = str;

	while (*p != '\0') {
		uint64_t lo = 0, hi;
		while (*p >= '0' && *p <= '9')
			lo = lo * 10 + (uint64_t)(*p++ - '0');
		hi = lo;
		if (*p == ':') {
			p++;
			hi = 0;
			while (*p >= '0' && *p <= '9')
				hi = hi * 10 + (uint64_t)(*p++ - '0');
		}
		/* imap_seqset_parse already checked the syntax and range. */
		uint64_t count = lo <= hi ? hi - lo + 1 : lo - hi + 1;
		if (count > max - n)
			return -1;
		for (uint64_t k = 0; k < count; k++)
			v[n++] = (uint32_t)(lo <= hi ? lo + k : lo - k);
		if (*p == ',')
			p++;
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

int
imap_qresync_parse(struct arena *a, const struct imap_arg *list, struct imap_qresync *q_r,
		   const char **err_r)
{
	struct imap_qresync q;
	struct imap_seqset set;

	memset(&q, 0, sizeof(q));
	if (list->type != IMAP_ARG_LIST || list->count < 2 || list->count > 4) {
		*err_r = "QRESYNC takes (uidvalidity modseq [known-uids] [seq-match-data])";
		return -1;
	}
	if (parse_nz32(&list->list[0], &q.uidvalidity) < 0) {
		*err_r = "Invalid QRESYNC UIDVALIDITY";
		return -1;
	}
	const struct imap_arg *m = &list->list[1];
	if (m->type != IMAP_ARG_ATOM || imap_modseq_parse(m->str, m->len, false, &q.modseq) < 0) {
		*err_r = "Invalid QRESYNC mod-sequence";
		return -1;
	}
	size_t i = 2;
	if (i < list->count && list->list[i].type == IMAP_ARG_ATOM) {
		if (parse_set(a, &list->list[i], &set) < 0) {
			*err_r = "Invalid QRESYNC known-uids";
			return -1;
		}
		q.have_known = true;
		q.known = set.r;
		q.nknown = set.n;
		i++;
	}
	if (i < list->count) {
		const struct imap_arg *d = &list->list[i];
		struct imap_seqset s1, s2;
		uint32_t *seqs, *uids;
		size_t nseq, nuid;
		if (d->type != IMAP_ARG_LIST || d->count != 2 || i + 1 != list->count ||
		    parse_set(a, &d->list[0], &s1) < 0 || parse_set(a, &d->list[1], &s2) < 0) {
			*err_r = "Invalid QRESYNC seq-match-data";
			return -1;
		}
		if (expand_set(a, d->list[0].str, IMAP_QRESYNC_MATCH_MAX, &seqs, &nseq) < 0 ||
		    expand_set(a, d->list[1].str, IMAP_QRESYNC_MATCH_MAX, &uids, &nuid) < 0) {
			*err_r = "Too much QRESYNC seq-match-data";
			return -1;
		}
		if (nseq != nuid) {
			/* RFC 7162 3.2.5: the two sets pair up one to one. */
			*err_r = "QRESYNC seq-match-data sets differ in size";
			return -1;
		}
		q.match_seq = seqs;
		q.match_uid = uids;
		q.nmatch = nseq;
	}
	*q_r = q;
	return 0;
}

/* Adds lo..hi (above everything so far) to the output, merging. */
static void
out_add(struct imap_range *out, size_t *n, uint32_t lo, uint32_t hi)
{
	if (*n > 0 && out[*n - 1].hi != UINT32_MAX && out[*n - 1].hi + 1 >= lo) {
		if (hi > out[*n - 1].hi)
			out[*n - 1].hi = hi;
		return;
	}
	out[*n].lo = lo;
	out[(*n)++].hi = hi;
}

bool
imap_ranges_has(const struct imap_range *r, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	if (r == NULL)
		return true;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r[mid].hi < uid)
			lo = mid + 1;
		else if (r[mid].lo > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

static bool
in_sorted(const uint32_t *v, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < x)
			lo = mid + 1;
		else if (v[mid] > x)
			hi = mid;
		else
			return true;
	}
	return false;
}

int
imap_qresync_vanished(struct arena *a, const struct imap_range *known, size_t nknown,
		      uint32_t uidnext, const uint32_t *present, size_t npresent,
		      const uint32_t *expunged, size_t nexpunged, bool complete,
		      const uint32_t *match_seq, const uint32_t *match_uid, size_t nmatch,
		      struct imap_range **out_r, size_t *nout_r)
{
	struct imap_range all = {1, uidnext > 1 ? uidnext - 1 : 0};
	size_t n = 0;

	*out_r = NULL;
	*nout_r = 0;
	if (uidnext <= 1)
		return 0; /* no UID was ever given out */
	if (complete) {
		struct imap_range *out = arena_alloc(a, (nexpunged + 1) * sizeof(*out));
		for (size_t i = 0; i < nexpunged; i++)
			if (expunged[i] < uidnext && imap_ranges_has(known, nknown, expunged[i]) &&
			    !in_sorted(present, npresent, expunged[i]))
				out_add(out, &n, expunged[i], expunged[i]);
		*out_r = out;
		*nout_r = n;
		return 0;
	}
	/* The history is not complete: every known UID not present now,
	 * except below what seq-match-data proves unchanged. */
	uint32_t floor = 0;
	for (size_t i = 0; i < nmatch; i++) {
		if (match_seq[i] == 0 || match_seq[i] > npresent ||
		    present[match_seq[i] - 1] != match_uid[i])
			break;
		if (match_uid[i] > floor)
			floor = match_uid[i];
	}
	if (known == NULL) {
		known = &all;
		nknown = 1;
	}
	struct imap_range *out = arena_alloc(a, (nknown + npresent + 1) * sizeof(*out));
	size_t p = 0;
	for (size_t i = 0; i < nknown; i++) {
		uint64_t lo = known[i].lo, hi = known[i].hi;
		if (hi >= uidnext)
			hi = uidnext - 1;
		if (lo <= floor)
			lo = (uint64_t)floor + 1;
		if (lo > hi)
			continue;
		/* lo..hi minus the present UIDs inside it. */
		while (p < npresent && present[p] < lo)
			p++;
		uint64_t at = lo;
		for (; p < npresent && present[p] <= hi; p++) {
			if (present[p] > at)
				out_add(out, &n, (uint32_t)at, present[p] - 1);
			at = (uint64_t)present[p] + 1;
		}
		if (at <= hi)
			out_add(out, &n, (uint32_t)at, (uint32_t)hi);
	}
	*out_r = out;
	*nout_r = n;
	return 0;
}

int
imap_ranges_append(struct buf *out, const struct imap_range *r, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			rc |= buf_putc(out, ',');
		if (r[i].lo == r[i].hi)
			rc |= buf_printf(out, "%" PRIu32, r[i].lo);
		else
			rc |= buf_printf(out, "%" PRIu32 ":%" PRIu32, r[i].lo, r[i].hi);
	}
	return rc < 0 ? -1 : 0;
}
