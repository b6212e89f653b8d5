/*
 * imap_view.c - the selected mailbox as this session sees it: the list of
 * UIDs that message numbers index, kept in step with the store through
 * its change notifications (store_watch) and CONDSTORE-style change lists
 * (store_changes_since), and reported to the client as EXISTS, RECENT,
 * EXPUNGE and FETCH FLAGS at the points RFC 9051 section 7 allows.
 * Also sequence sets and flag lists, which every message command uses.
 *
 * How it fails: a store that cannot be read leaves the view as it was
 * (the next sync retries); nothing here can make a message number point
 * at the wrong message, because numbers only shift when an EXPUNGE is
 * reported in the same step.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compat.h"
#include "core/log.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_qresync.h"

static void
view_push(struct imap_view *v, uint32_t uid)
{
	if (v->count == v->cap) {
		v->cap = v->cap == 0 ? 64 : v->cap * 2;
		v->uids = xrealloc(v->uids, v->cap * sizeof(*v->uids));
	}
	v->uids[v->count++] = uid;
}

/* Index of the first UID >= uid (v->count if none). */
static size_t
imap_view_seq_at_least(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t
imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	size_t i = imap_view_seq_at_least(v, uid);

	return i < v->count && v->uids[i] == uid ? (uint32_t)i + 1 : 0;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- keywords announced in FLAGS ---- */

#define FLAGS_LINES_MAX (128u * 1024u) /* STORE_KEYWORDS_PER_MAILBOX of 100 bytes, twice */

static bool
kw_known(const struct imap_view *v, const char *kw)
{
	for (size_t i = 0; i < v->nkeywords; i++)
		if (strcasecmp(v->keywords[i], kw) == 0)
			return true;
	return false;
}

static void
kw_add(struct imap_view *v, const char *kw)
{
	if (kw_known(v, kw))
		return;
	v->keywords = xrealloc(v->keywords, (v->nkeywords + 1) * sizeof(*v->keywords));
	v->keywords[v->nkeywords++] = xstrdup(kw);
}

/* FLAGS and PERMANENTFLAGS from v->keywords. */
static void
announce_flags(struct imap_session *s)
{
	const struct imap_view *v = s->view;
	struct buf b;

	buf_init(&b, FLAGS_LINES_MAX);
	buf_append_str(&b, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < v->nkeywords; i++)
		buf_printf(&b, " %s", v->keywords[i]);
	buf_append_str(&b, ")\r\n");
	if (v->readonly) {
		buf_append_str(&b, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	} else {
		/* RFC 4314 4: in a shared mailbox, only what the rights let
		 * the session change ("w" the others, "s" \Seen, "t"
		 * \Deleted). */
		bool w = v->rights & imap_acl_right('w');
		const char *sp = "";
		buf_append_str(&b, "* OK [PERMANENTFLAGS (");
		if (w) {
			buf_append_str(&b, "\\Answered \\Flagged");
			sp = " ";
		}
		if (v->rights & imap_acl_right('t')) {
			buf_printf(&b, "%s\\Deleted", sp);
			sp = " ";
		}
		if (v->rights & imap_acl_right('s')) {
			buf_printf(&b, "%s\\Seen", sp);
			sp = " ";
		}
		if (w) {
			buf_printf(&b, "%s\\Draft", sp);
			for (size_t i = 0; i < v->nkeywords; i++)
				buf_printf(&b, " %s", v->keywords[i]);
			/* \* while the mailbox can take another keyword. */
			if (v->nkeywords < STORE_KEYWORDS_PER_MAILBOX)
				buf_append_str(&b, " \\*");
		}
		buf_append_str(&b, ")] Flags permitted\r\n");
	}
	imap_write(s, b.data, b.len);
	buf_free(&b);
}

void
imap_view_flags(struct imap_session *s, const struct store_mailbox *box)
{
	struct imap_view *v = s->view;

	for (size_t i = 0; i < v->nkeywords; i++)
		free(v->keywords[i]);
	v->nkeywords = 0;
	for (size_t i = 0; i < box->nkeywords; i++)
		kw_add(v, box->keywords[i]);
	announce_flags(s);
}

/* Adds the mailbox's current keywords and kw; announces if any was new. */
static void
keywords_update(struct imap_session *s, const char *const *kw, size_t nkw)
{
	struct imap_view *v = s->view;
	struct store_mailbox box;
	size_t before = v->nkeywords;
	struct arena *a = arena_new(0);

	if (store_mailbox_get(s->view->owner, v->name, a, &box) == STORE_OK)
		for (size_t i = 0; i < box.nkeywords; i++)
			kw_add(v, box.keywords[i]);
	arena_destroy(&a);
	for (size_t i = 0; i < nkw; i++)
		kw_add(v, kw[i]);
	if (v->nkeywords != before)
		announce_flags(s);
}

void
imap_view_keywords(struct imap_session *s, const char *const *kw, size_t nkw)
{
	if (s->view == NULL)
		return;
	for (size_t i = 0; i < nkw; i++) {
		if (!kw_known(s->view, kw[i])) {
			keywords_update(s, kw, nkw);
			return;
		}
	}
}

void
imap_view_keywords_refresh(struct imap_session *s)
{
	if (s->view != NULL && s->view->changed)
		keywords_update(s, NULL, 0);
}

/* The store says the mailbox changed: during IDLE, tell the client now;
 * otherwise the next command's sync picks it up. */
static void
watch_cb(void *arg, uint32_t mailbox_id, uint64_t highestmodseq, unsigned changed)
{
	struct imap_session *s = arg;

	(void)mailbox_id;
	(void)changed;
	if (s->view == NULL || s->conn.closed || highestmodseq <= s->view->modseq)
		return;
	s->view->changed = true;
	if (imap_notify_selected(s))
		return;
	if (s->idling) {
		imap_view_sync(s, true);
		buf_free(&s->out); /* back to idle: hold no scratch */
	}
}

int
imap_view_open(struct imap_session *s, const struct imap_mref *mref, bool readonly,
	       struct store_mailbox *box_r)
{
	const char *name = mref->path, *owner = mref->owner_id;
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	int r;

	if (s->view != NULL)
		imap_view_close(s);
	r = store_mailbox_get(owner, name, s->cmd_arena, box_r);
	if (r != STORE_OK)
		return r;
	if (box_r->noselect)
		return STORE_NOTALLOWED;
	r = store_mailbox_list(owner, name, s->cmd_arena, &info, &msgs, &n);
	if (r != STORE_OK)
		return r;
	struct imap_view *v = xcalloc(1, sizeof(*v));
	v->name = xstrdup(box_r->name);
	v->owner = xstrdup(owner);
	v->shown = xstrdup(mref->shown);
	v->shared = mref->shared;
	v->rights = mref->rights;
	v->id = box_r->id;
	v->readonly = readonly;
	v->uidvalidity = info.uidvalidity;
	v->uidnext = info.uidnext;
	v->modseq = info.highestmodseq;
	for (size_t i = 0; i < n; i++)
		view_push(v, msgs[i].uid);
	/* \Recent: the messages no other session was told about yet. For a
	 * mailbox nobody selected since start-up, those saved before. */
	if (n > 0) {
		uint32_t initial = 0;
		time_t started = imap_recent_started();
		for (size_t i = 0; i < n && msgs[i].save_date < started; i++)
			initial = msgs[i].uid;
		uint32_t highest = msgs[n - 1].uid;
		/* IMAP4rev2 has no \Recent (RFC 9051 appendix E): such a
		 * session only looks, leaving the flag to rev1 sessions. */
		uint32_t prev = imap_recent_claim(v->owner, v->id, v->uidvalidity, highest, initial,
						  readonly || s->rev2);
		imap_view_recent_add(v, prev + 1, highest);
	}
	for (size_t i = 0; i < box_r->nkeywords; i++)
		kw_add(v, box_r->keywords[i]);
	s->view = v;
	v->watch = store_watch_add(owner, v->id, s->conn.worker, watch_cb, s);
	/* The snapshot may predate uidnext/highestmodseq by a delivery that
	 * raced the two reads; the first sync fixes it. */
	return STORE_OK;
}

void
imap_view_close(struct imap_session *s)
{
	struct imap_view *v = s->view;

	if (v == NULL)
		return;
	store_watch_remove(v->watch);
	/* RFC 5182 2.1: "$" is empty again after SELECT, EXAMINE, CLOSE... */
	free(s->search_saved);
	s->search_saved = NULL;
	s->nsearch_saved = 0;
	free(v->uids);
	free(v->pending_expunge);
	free(v->recent);
	for (size_t i = 0; i < v->nkeywords; i++)
		free(v->keywords[i]);
	free(v->keywords);
	free(v->name);
	free(v->owner);
	free(v->shown);
	free(v);
	s->view = NULL;
}

/* Removes uid from the view and reports it; numbers above it shift.
 * Once QRESYNC is enabled the UID goes to *vset instead, for one VANISHED
 * (RFC 7162 3.2.10: it replaces EXPUNGE). False if uid was not there. */
static bool
report_expunge(struct imap_session *s, uint32_t uid, struct imap_range *vset, size_t *nvset)
{
	struct imap_view *v = s->view;
	uint32_t seq = imap_view_seq(v, uid);

	if (seq == 0)
		return false;
	memmove(&v->uids[seq - 1], &v->uids[seq], (v->count - seq) * sizeof(*v->uids));
	v->count--;
	if (!s->qresync) {
		imap_untagged(s, "%" PRIu32 " EXPUNGE", seq);
		return true;
	}
	size_t n = *nvset;
	if (n > 0 && vset[n - 1].hi + 1 == uid) {
		vset[n - 1].hi = uid;
	} else {
		vset[n].lo = vset[n].hi = uid;
		(*nvset)++;
	}
	return true;
}

/* "* VANISHED 3:5,9" for the ranges, in lines of bounded length. */
static void
send_vanished(struct imap_session *s, const char *earlier, const struct imap_range *r, size_t n)
{
	const size_t per_line = 500; /* ranges: lines well under 8 KB */
	struct buf b;

	buf_init(&b, 16384);
	for (size_t i = 0; i < n; i += per_line) {
		size_t k = n - i < per_line ? n - i : per_line;
		buf_reset(&b);
		buf_printf(&b, "* VANISHED %s", earlier);
		imap_ranges_append(&b, r + i, k);
		buf_append_str(&b, "\r\n");
		imap_write(s, b.data, b.len);
	}
	buf_free(&b);
}

void
imap_vanished_send(struct imap_session *s, bool earlier, const struct imap_range *r, size_t n)
{
	send_vanished(s, earlier ? "(EARLIER) " : "", r, n);
}

void
imap_condstore_enable(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	/* RFC 7162 3.1: the first CONDSTORE-enabling command while a mailbox
	 * is selected owes the client that mailbox's HIGHESTMODSEQ. */
	if (s->view != NULL)
		imap_untagged(s, "OK [HIGHESTMODSEQ %" PRIu64 "] Highest",
			      imap_view_highestmodseq(s->view));
}

uint64_t
imap_view_highestmodseq(const struct imap_view *v)
{
	/* The response code takes a mod-sequence-value, never 0 (RFC 7162
	 * 7); a mailbox still at 0 never changed, so it is empty, and the
	 * client learns its first message (MODSEQ 1) as a new UID anyway. */
	return v->modseq > 0 ? v->modseq : 1;
}

/* Is (uid, modseq) one of the changes the current command reported
 * itself? own is in ascending UID order. */
static bool
own_change(const struct store_msg_info *own, size_t nown, const struct store_msg_info *m)
{
	size_t lo = 0, hi = nown;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (own[mid].uid < m->uid)
			lo = mid + 1;
		else if (own[mid].uid > m->uid)
			hi = mid;
		else
			return own[mid].modseq == m->modseq;
	}
	return false;
}

void
imap_view_sync(struct imap_session *s, bool expunge_ok)
{
	imap_view_sync_own(s, expunge_ok, NULL, 0);
}

void
imap_view_sync_own(struct imap_session *s, bool expunge_ok, const struct store_msg_info *own,
		   size_t nown)
{
	struct imap_view *v = s->view;
	struct store_msg_info *changed;
	uint32_t *vanished;
	size_t nchanged, nvanished;
	bool complete;

	if (v == NULL)
		return;
	struct arena *a = arena_new(0);
	uint64_t hms;
	int r = store_changes_since_top(s->view->owner, v->name, v->modseq, a, &changed, &nchanged,
					&vanished, &nvanished, &complete, &hms);
	if (r != STORE_OK) {
		arena_destroy(&a);
		return;
	}
	/* Expunges first (held ones too) when allowed, so that the numbers in
	 * what follows are already the new ones. */
	for (size_t i = 0; i < nvanished; i++) {
		if (imap_view_seq(v, vanished[i]) == 0)
			continue;
		if (v->npending == v->pending_cap) {
			v->pending_cap = v->pending_cap == 0 ? 16 : v->pending_cap * 2;
			v->pending_expunge =
			    xrealloc(v->pending_expunge, v->pending_cap * sizeof(uint32_t));
		}
		v->pending_expunge[v->npending++] = vanished[i];
	}
	if (expunge_ok && v->npending > 0) {
		struct imap_range *vset = arena_alloc(a, v->npending * sizeof(*vset));
		size_t nvset = 0;
		/* Ascending, so that VANISHED gets ranges. */
		qsort(v->pending_expunge, v->npending, sizeof(uint32_t), uid_cmp);
		for (size_t i = 0; i < v->npending; i++)
			report_expunge(s, v->pending_expunge[i], vset, &nvset);
		v->npending = 0;
		if (nvset > 0)
			send_vanished(s, "", vset, nvset);
	}
	/* New messages, then flag changes of known ones. */
	size_t before = v->count;
	uint32_t old_uidnext = v->uidnext;
	uint64_t top = v->modseq;
	for (size_t i = 0; i < nchanged; i++) {
		if (changed[i].modseq > top)
			top = changed[i].modseq;
		/* Before EXISTS: the client may FETCH the new ones next. */
		imap_view_keywords(s, changed[i].keywords, changed[i].nkeywords);
		if (changed[i].uid >= old_uidnext)
			view_push(v, changed[i].uid);
	}
	if (v->count != before) {
		uint32_t highest = v->uids[v->count - 1];
		uint32_t prev = imap_recent_claim(v->owner, v->id, v->uidvalidity, highest,
						  old_uidnext - 1, v->readonly || s->rev2);
		imap_view_recent_add(v, (prev > old_uidnext - 1 ? prev : old_uidnext - 1) + 1,
				     highest);
		imap_untagged(s, "%zu EXISTS", v->count);
		if (!s->rev2)
			imap_untagged(s, "%zu RECENT", imap_view_recent_count(v));
		v->uidnext = highest + 1;
	}
	for (size_t i = 0; i < nchanged; i++) {
		const struct store_msg_info *m = &changed[i];
		uint32_t seq;
		if (m->uid >= old_uidnext)
			continue; /* new: announced by EXISTS */
		if ((seq = imap_view_seq(v, m->uid)) == 0 || own_change(own, nown, m))
			continue;
		struct buf *b = &s->out;
		buf_reset(b);
		buf_printf(b, "* %" PRIu32 " FETCH (", seq);
		if (s->rev2 || s->condstore)
			buf_printf(b, "UID %" PRIu32 " ", m->uid);
		buf_append_str(b, "FLAGS (");
		imap_append_flags(b, m->flags, m->keywords, m->nkeywords,
				  !s->rev2 && imap_view_is_recent(v, m->uid));
		buf_append_str(b, ")");
		if (s->condstore)
			buf_printf(b, " MODSEQ (%" PRIu64 ")", m->modseq);
		buf_append_str(b, ")\r\n");
		imap_write(s, b->data, b->len);
	}
	/* Every change up to the mailbox's HIGHESTMODSEQ was in the lists,
	 * expunges too (held ones wait in pending_expunge). */
	v->modseq = hms > top ? hms : top;
	v->changed = false;
	arena_destroy(&a);
}

int
imap_append_flags(struct buf *out, uint32_t flags, const char *const *kw, size_t nkw, bool recent)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} sys[] = {
	    {STORE_FLAG_SEEN, "\\Seen"},       {STORE_FLAG_ANSWERED, "\\Answered"},
	    {STORE_FLAG_FLAGGED, "\\Flagged"}, {STORE_FLAG_DELETED, "\\Deleted"},
	    {STORE_FLAG_DRAFT, "\\Draft"},
	};
	bool first = true;
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(sys); i++) {
		if (!(flags & sys[i].bit))
			continue;
		r |= buf_printf(out, "%s%s", first ? "" : " ", sys[i].name);
		first = false;
	}
	if (recent) {
		r |= buf_printf(out, "%s\\Recent", first ? "" : " ");
		first = false;
	}
	for (size_t i = 0; i < nkw; i++) {
		r |= buf_printf(out, "%s%s", first ? "" : " ", kw[i]);
		first = false;
	}
	return r < 0 ? -1 : 0;
}

/* ---- sequence sets ---- */

static int
parse_number(const char **p, uint32_t *n_r)
{
	const char *s = *p;
	uint64_t n = 0;

	if (*s == '*') {
		*n_r = UINT32_MAX;
		*p = s + 1;
		return 0;
	}
	if (*s < '1' || *s > '9')
		return -1; /* nz-number: no leading zero, no 0 */
	while (*s >= '0' && *s <= '9') {
		n = n * 10 + (uint64_t)(*s - '0');
		if (n >= UINT32_MAX)
			return -1;
		s++;
	}
	*n_r = (uint32_t)n;
	*p = s;
	return 0;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int
imap_seqset_parse(struct arena *a, const char *str, struct imap_seqset *set_r)
{
	size_t cap = 1;

	memset(set_r, 0, sizeof(*set_r));
	if (strcmp(str, "$") == 0) {
		set_r->saved = true;
		return 0;
	}
	for (const char *p = str; *p != '\0'; p++)
		cap += *p == ',';
	set_r->r = arena_alloc(a, cap * sizeof(*set_r->r));
	const char *p = str;
	for (;;) {
		uint32_t lo, hi;
		if (parse_number(&p, &lo) < 0)
			return -1;
		hi = lo;
		if (*p == ':') {
			p++;
			if (parse_number(&p, &hi) < 0)
				return -1;
		}
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		set_r->r[set_r->n].lo = lo;
		set_r->r[set_r->n].hi = hi;
		set_r->n++;
		if (*p == '\0')
			break;
		if (*p != ',')
			return -1;
		p++;
	}
	/* Sorted and merged: later code walks it once. "*" sorts last as
	 * UINT32_MAX and is resolved by the caller. */
	qsort(set_r->r, set_r->n, sizeof(*set_r->r), range_cmp);
	size_t w = 0;
	for (size_t i = 1; i < set_r->n; i++) {
		struct imap_range *cur = &set_r->r[w];
		if (set_r->r[i].lo <= cur->hi ||
		    (cur->hi != UINT32_MAX && set_r->r[i].lo == cur->hi + 1)) {
			if (set_r->r[i].hi > cur->hi)
				cur->hi = set_r->r[i].hi;
		} else {
			set_r->r[++w] = set_r->r[i];
		}
	}
	set_r->n = set_r->n > 0 ? w + 1 : 0;
	return 0;
}

int
imap_seqset_uids(const struct imap_session *s, const struct imap_seqset *set, bool uid_mode,
		 struct arena *a, uint32_t **uids_r, size_t *n_r)
{
	const struct imap_view *v = s->view;
	size_t n = 0;

	*uids_r = NULL;
	*n_r = 0;
	if (v == NULL)
		return -1;
	/* After merging, only the one range holding "*" can overlap another
	 * once "*" is resolved: at most twice the view. */
	uint32_t *out = arena_alloc(a, (2 * v->count + 1) * sizeof(*out));
	if (set->saved) {
		/* "$": the saved UIDs still in the view, as UIDs or as message
		 * numbers alike (RFC 5182 2.1); expunged ones drop out. */
		for (size_t i = 0; i < s->nsearch_saved; i++)
			if (imap_view_seq(v, s->search_saved[i]) != 0)
				out[n++] = s->search_saved[i];
	} else if (uid_mode) {
		uint32_t maxuid = v->count > 0 ? v->uids[v->count - 1] : 0;
		bool sorted = true;
		/* "*" is the highest UID present (RFC 9051 6.4.8: "UID n:*"
		 * names that one even when n is above it). */
		for (size_t i = 0; i < set->n; i++) {
			uint32_t lo = set->r[i].lo == UINT32_MAX ? maxuid : set->r[i].lo;
			uint32_t hi = set->r[i].hi == UINT32_MAX ? maxuid : set->r[i].hi;
			if (lo > hi) {
				uint32_t t = lo;
				lo = hi;
				hi = t;
			}
			/* First UID >= lo, then walk while <= hi. */
			size_t j = lo > 0 ? imap_view_seq_at_least(v, lo) : 0;
			for (; j < v->count && v->uids[j] <= hi; j++) {
				if (n > 0 && out[n - 1] >= v->uids[j])
					sorted = false;
				out[n++] = v->uids[j];
			}
		}
		if (!sorted) {
			/* Ranges overlapped once "*" was resolved. */
			qsort(out, n, sizeof(*out), uid_cmp);
			size_t w = 0;
			for (size_t i = 0; i < n; i++)
				if (w == 0 || out[w - 1] != out[i])
					out[w++] = out[i];
			n = w;
		}
	} else {
		for (size_t i = 0; i < set->n; i++) {
			uint64_t lo = set->r[i].lo == UINT32_MAX ? v->count : set->r[i].lo;
			uint64_t hi = set->r[i].hi == UINT32_MAX ? v->count : set->r[i].hi;
			if (lo > hi) {
				uint64_t t = lo;
				lo = hi;
				hi = t;
			}
			if (lo == 0 || hi > v->count)
				return -1; /* message numbers past the end: BAD */
			for (uint64_t q = lo; q <= hi; q++) {
				if (n == 0 || out[n - 1] < v->uids[q - 1])
					out[n++] = v->uids[q - 1];
			}
		}
	}
	*uids_r = out;
	*n_r = n;
	return 0;
}
