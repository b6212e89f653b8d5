/*
 * imap_search.c - IMAP SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501
 * 6.4.4) with ESEARCH result options (RFC 4731: MIN MAX ALL COUNT),
 * SEARCHRES (RFC 5182: RETURN (SAVE) and "$"), the CONDSTORE MODSEQ key
 * (RFC 7162), SAVEDBEFORE/SAVEDON/SAVEDSINCE (RFC 8514) and EMAILID/THREADID
 * (RFC 8474).
 *
 * A command is compiled into a tree of keys (in the command arena), each
 * with a cost: 0 for what the message list already holds (flags, size,
 * UID, number, dates, MODSEQ), 1 for the header, 2 for the body text.
 * AND lists are ordered cheapest first and every node short-circuits, so
 * a message's header is read only when the cheap keys still allow a
 * match, and its body only when the header keys do too. Header and text
 * reads are cached per message in a scratch arena cleared after each.
 *
 * Matching: strings are substrings under i;unicode-casemap (storage/
 * mailtext.h), on header values decoded from RFC 2047 and on the decoded
 * text of the text parts (found through the stored MIME structure, read
 * with store_message_read_range, transfer- and charset-decoded, HTML
 * stripped); TEXT also searches the whole decoded header, and BODY/TEXT
 * include the header of an attached message/rfc822. SINCE/ON/BEFORE use
 * INTERNALDATE's calendar date in the server's local time zone (the store
 * keeps only the instant; this is also the zone a local user means);
 * SENT* use the date as written in the Date: header (time and zone
 * ignored, RFC 9051); a missing or unparseable Date: never matches.
 *
 * How it fails: malformed criteria get BAD, an unknown CHARSET
 * NO [BADCHARSET (UTF-8 US-ASCII)], a store that cannot be read
 * NO [UNAVAILABLE]. A failed SEARCH RETURN (SAVE) leaves "$" empty
 * (RFC 5182 2.1). Messages that another session expunged but this one
 * has not yet been told about match nothing. No EXPUNGE is sent.
 *
 * BODY/TEXT keys first ask the full-text index (storage/store_fts.c) for
 * candidates: a message outside a key's candidate set cannot match it and
 * is not read; candidates are confirmed with the same matcher on the same
 * text (storage/mailtext_msg.c), so results are exactly a scan's. When
 * such a key is ANDed at the top level, only its candidates (and the
 * messages above the index's watermark) are evaluated at all, and only
 * their records are read: a selective word costs its candidates, not the
 * mailbox.
 * [storage] search_index = no scans every message.
 * XXX RFC 2231 "charset*=" parameters are not read (the part is then
 * decoded as "auto", which is right for UTF-8 and Latin-1).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/compat.h"
#include "core/log.h"
#include "protocols/imap/imap_internal.h"
#include "storage/mailtext.h"
#include "storage/mime.h"

#define SEARCH_MAX_DEPTH 100 /* NOT/OR/list nesting */
/* A message up to this size is read whole at its first read and its
 * header and text parts are cut from that copy: each would otherwise be a
 * read transaction and a decompression of the same chunk of its own. */
#define SEARCH_WHOLE_MAX (64u * 1024u)

enum skey {
	SK_ALL,
	SK_NONE,    /* never matches (keys we know but cannot satisfy) */
	SK_FLAG,    /* system flag bit set (or not: neg) */
	SK_KEYWORD, /* keyword present (or not: neg) */
	SK_RECENT,
	SK_NEW,
	SK_OLD,
	SK_LARGER,
	SK_SMALLER,
	SK_SEQ,	 /* message numbers */
	SK_UIDS, /* UIDs (UID key, or "$") */
	SK_DATE, /* INTERNALDATE, SAVEDATE or Date: against a day */
	SK_MODSEQ,
	SK_EMAILID,
	SK_OLDER,   /* WITHIN (RFC 5032): internal date more than num s ago */
	SK_YOUNGER, /* ... at most num seconds ago */
	SK_HEADER,
	SK_BODY,
	SK_TEXT,
	SK_NOT,
	SK_AND,
	SK_OR,
};

enum date_cmp { DC_BEFORE, DC_ON, DC_SINCE };
enum date_field { DF_INTERNAL, DF_SAVED, DF_SENT };

struct snode {
	enum skey type;
	unsigned cost;		    /* 0 metadata, 1 header, 2 body */
	struct snode *child, *next; /* NOT: child; AND, OR: children */
	bool neg;		    /* SK_FLAG, SK_KEYWORD: must be absent */
	uint32_t flag;
	const char *str; /* keyword, header field name */
	size_t slen;
	const char *needle; /* canonical */
	size_t nlen;
	uint64_t num;
	int64_t day;
	enum date_cmp cmp;
	enum date_field df;
	const struct imap_range *r; /* SK_SEQ */
	size_t nr;
	const uint32_t *uids; /* SK_UIDS, ascending */
	size_t nuids;
	/* SK_BODY, SK_TEXT: candidates from the full-text index (ascending,
	 * a superset of the matches), when it could answer */
	bool indexed;
	const uint32_t *cand;
	size_t ncand;
	const uint32_t *hcand; /* SK_TEXT: the candidates whose header may match */
	size_t nhcand;
	uint32_t through; /* the index covers UIDs up to this; above: scan */
};

/* One message being evaluated; the lazily read parts live in ma. */
struct smsg {
	uint32_t seq, uid;
	const struct store_msg_info *info;
	bool recent;
	int mime_state; /* 0 not read, 1 read, -1 unreadable */
	int whole_state;
	struct buf whole; /* the whole message (up to SEARCH_WHOLE_MAX) */
	const void *mime;
	size_t mime_len, trace_len;
	int hdr_state;
	const char *hdr; /* raw header block (trace + top header) */
	size_t hdr_len;
	int sent_state;
	int64_t sent_day;
	int hcanon_state;
	struct buf hcanon; /* canonical decoded header (TEXT) */
	int body_state;
	struct buf bcanon; /* canonical body text (BODY, TEXT) */
};

struct search {
	struct imap_session *s;
	struct arena *ma; /* per message scratch */
	const char *err;  /* BAD text from compiling */
	bool badcharset;
	bool modseq_used;
	bool tempfail;
	time_t now; /* OLDER, YOUNGER: the command's "now" */
	/* for the debug line: messages whose text was decoded, and the
	 * lowest index watermark a key used */
	size_t texts_read;
	uint32_t through;
};

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
month_number(const char *p)
{
	static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	for (int i = 0; i < 12; i++)
		if (strncasecmp(p, names + 3 * i, 3) == 0)
			return i + 1;
	return 0;
}

static unsigned
month_days(int64_t y, unsigned m)
{
	static const unsigned md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : md[m - 1];
}

/* RFC 9051 date-text: 1*2DIGIT "-" Mon "-" 4DIGIT. */
static int
parse_search_date(const char *s, size_t len, int64_t *day_r)
{
	unsigned d = 0;
	size_t i = 0;

	while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || len != i + 9 || s[i] != '-' || s[i + 4] != '-')
		return -1;
	int m = month_number(s + i + 1);
	int64_t y = 0;
	for (size_t k = i + 5; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return -1;
		y = y * 10 + (s[k] - '0');
	}
	if (m == 0 || d == 0 || d > month_days(y, (unsigned)m))
		return -1;
	*day_r = days_from_civil(y, (unsigned)m, d);
	return 0;
}

static int64_t
local_day(time_t t)
{
	struct tm tm;
	if (localtime_r(&t, &tm) == NULL)
		return INT64_MIN;
	return days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
			       (unsigned)tm.tm_mday);
}

/* The date part of an RFC 5322 date-time (obsolete forms too: 2- and
 * 3-digit years, comments anywhere); the time and zone are ignored. */
static int
parse_sent_date(const char *s, size_t len, int64_t *day_r)
{
	const char *p = s, *end = s + len;
	unsigned d = 0;
	int64_t y = 0;
	int nd = 0;

	p = mailtext_skip_cfws(p, end);
	if (end - p >= 3 && month_number(p) == 0 && ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')) {
		/* day-of-week */
		while (p < end && ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
			p++;
		p = mailtext_skip_cfws(p, end);
		if (p < end && *p == ',')
			p++;
		p = mailtext_skip_cfws(p, end);
	}
	while (p < end && *p >= '0' && *p <= '9' && nd < 3)
		d = d * 10 + (unsigned)(*p++ - '0'), nd++;
	if (nd == 0 || nd > 2)
		return -1;
	p = mailtext_skip_cfws(p, end);
	if (end - p < 3)
		return -1;
	int m = month_number(p);
	if (m == 0)
		return -1;
	p += 3;
	if (p < end && ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
		return -1; /* "March" is not a month-name */
	p = mailtext_skip_cfws(p, end);
	nd = 0;
	while (p < end && *p >= '0' && *p <= '9' && nd < 5)
		y = y * 10 + (*p++ - '0'), nd++;
	if (nd < 2 || nd > 4 || (p < end && *p >= '0' && *p <= '9'))
		return -1;
	if (nd == 2)
		y += y < 50 ? 2000 : 1900; /* RFC 5322 4.3 */
	else if (nd == 3)
		y += 1900;
	if (d == 0 || d > month_days(y, (unsigned)m))
		return -1;
	*day_r = days_from_civil(y, (unsigned)m, d);
	return 0;
}

/* ---- reading a message ---- */

static int
load_mime(struct search *se, struct smsg *m)
{
	if (m->mime_state == 0) {
		const struct imap_session *s = se->s;
		int r = store_message_mime(s->view->owner, s->view->name, m->uid, se->ma, &m->mime,
					   &m->mime_len, &m->trace_len);
		if (r == STORE_TEMPFAIL)
			se->tempfail = true;
		m->mime_state = r == STORE_OK ? 1 : -1;
	}
	return m->mime_state > 0 ? 0 : -1;
}

static int
read_range(struct search *se, struct smsg *m, uint64_t off, uint64_t len, struct buf *out,
	   bool whole_ok)
{
	const struct imap_session *s = se->s;
	int r;

	/* The whole message only for its text (several parts are read):
	 * a header alone is a prefix of the first chunk, which the store
	 * decompresses only as far as needed. */
	if (whole_ok && m->whole_state == 0 && m->info->size <= SEARCH_WHOLE_MAX) {
		m->whole_state = -1; /* unreadable: read by range below */
		buf_init(&m->whole, (size_t)m->info->size);
		if (store_message_read_range(s->view->owner, s->view->name, m->uid, 0,
					     m->info->size, &m->whole) == STORE_OK)
			m->whole_state = 1;
		else
			buf_free(&m->whole);
	}
	if (m->whole_state > 0) {
		/* What the store's read of the range would give: all of it,
		 * or nothing and TEMPFAIL when out cannot hold it. */
		r = STORE_OK;
		if (off < m->whole.len) {
			size_t n =
			    len < m->whole.len - off ? (size_t)len : m->whole.len - (size_t)off;
			if (buf_append(out, m->whole.data + off, n) < 0)
				r = STORE_TEMPFAIL;
		}
	} else {
		r = store_message_read_range(s->view->owner, s->view->name, m->uid, off, len, out);
	}
	if (r == STORE_TEMPFAIL && out->len < out->max)
		se->tempfail = true;
	return r == STORE_OK ? 0 : -1;
}

static int
load_header(struct search *se, struct smsg *m)
{
	if (m->hdr_state == 0) {
		struct mime_section root;
		struct buf b;
		m->hdr_state = -1;
		if (load_mime(se, m) < 0 || mime_section_find(m->mime, m->mime_len, "", &root) < 0)
			return -1;
		buf_init(&b, MAILTEXT_HEADER_MAX);
		/* The trace (Return-Path...) is part of the header clients see. */
		uint64_t len = m->trace_len + root.hdr_len;
		if (len > MAILTEXT_HEADER_MAX)
			len = MAILTEXT_HEADER_MAX;
		if (read_range(se, m, 0, len, &b, false) == 0) {
			m->hdr = arena_memdup(se->ma, b.data != NULL ? b.data : "", b.len);
			m->hdr_len = b.len;
			m->hdr_state = 1;
		}
		buf_free(&b);
	}
	return m->hdr_state > 0 ? 0 : -1;
}

/* Reads for the shared text extraction (storage/mailtext_msg.c). */
struct rd_arg {
	struct search *se;
	struct smsg *m;
};

static int
msg_read(void *arg, uint64_t off, uint64_t len, struct buf *out)
{
	struct rd_arg *ra = arg;
	return read_range(ra->se, ra->m, off, len, out, true);
}

static int
load_body(struct search *se, struct smsg *m)
{
	if (m->body_state == 0) {
		struct rd_arg ra = {se, m};
		m->body_state = -1;
		if (load_mime(se, m) < 0)
			return -1;
		buf_init(&m->bcanon, MAILTEXT_CANON_MAX);
		se->texts_read++;
		mailtext_msg_body(m->mime, m->mime_len, m->trace_len, msg_read, &ra, se->ma,
				  &m->bcanon);
		m->body_state = 1;
	}
	return m->body_state > 0 ? 0 : -1;
}

static int
load_header_canon(struct search *se, struct smsg *m)
{
	if (m->hcanon_state == 0) {
		m->hcanon_state = -1;
		if (load_header(se, m) < 0)
			return -1;
		buf_init(&m->hcanon, MAILTEXT_CANON_MAX);
		if (m->body_state == 0)
			se->texts_read++;
		mailtext_header_canon(m->hdr, m->hdr_len, &m->hcanon);
		m->hcanon_state = 1;
	}
	return m->hcanon_state > 0 ? 0 : -1;
}

/* ---- evaluation ---- */

struct hmatch {
	const struct snode *n;
};

static bool
field_matches(void *arg, const char *v, size_t len)
{
	const struct snode *n = ((struct hmatch *)arg)->n;
	struct buf d, c;
	bool hit = false;

	if (n->nlen == 0)
		return true; /* HEADER f "": the field is present */
	buf_init(&d, 4 * len + 64);
	buf_init(&c, MAILTEXT_CANON_MAX);
	if (mailtext_decode_header(v, len, &d) == 0) {
		mailtext_canon_append(buf_cstr(&d), d.len, &c);
		hit = mailtext_contains(buf_cstr(&c), c.len, n->needle, n->nlen);
	}
	buf_free(&d);
	buf_free(&c);
	return hit;
}

static bool
sent_day(struct search *se, struct smsg *m, int64_t *day_r)
{
	if (m->sent_state == 0) {
		const char *v;
		size_t vlen;
		m->sent_state = -1;
		if (load_header(se, m) == 0 &&
		    mailtext_first_field(m->hdr, m->hdr_len, "date", &v, &vlen) &&
		    parse_sent_date(v, vlen, &m->sent_day) == 0)
			m->sent_state = 1;
	}
	*day_r = m->sent_day;
	return m->sent_state > 0;
}

static bool
has_keyword(const struct store_msg_info *info, const char *kw)
{
	for (size_t i = 0; i < info->nkeywords; i++)
		if (strcasecmp(info->keywords[i], kw) == 0)
			return true;
	return false;
}

static bool
uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && uids[lo] == uid;
}

static bool
eval(struct search *se, const struct snode *n, struct smsg *m)
{
	const struct store_msg_info *info = m->info;
	const struct imap_view *v = se->s->view;
	int64_t day;

	switch (n->type) {
	case SK_ALL:
		return true;
	case SK_NONE:
		return false;
	case SK_FLAG:
		return ((info->flags & n->flag) != 0) != n->neg;
	case SK_KEYWORD:
		return has_keyword(info, n->str) != n->neg;
	case SK_RECENT:
		return m->recent;
	case SK_NEW:
		return m->recent && !(info->flags & STORE_FLAG_SEEN);
	case SK_OLD:
		return !m->recent;
	case SK_LARGER:
		return info->size > n->num;
	case SK_SMALLER:
		return info->size < n->num;
	case SK_SEQ:
		for (size_t i = 0; i < n->nr; i++) {
			uint64_t lo = n->r[i].lo == UINT32_MAX ? v->count : n->r[i].lo;
			uint64_t hi = n->r[i].hi == UINT32_MAX ? v->count : n->r[i].hi;
			if (lo > hi) {
				uint64_t t = lo;
				lo = hi;
				hi = t;
			}
			if (m->seq >= lo && m->seq <= hi)
				return true;
		}
		return false;
	case SK_UIDS:
		return uid_in(n->uids, n->nuids, m->uid);
	case SK_DATE:
		if (n->df == DF_SENT) {
			if (!sent_day(se, m, &day))
				return false;
		} else {
			/* No save date (stored by an older build): the
			 * internal date stands in for it. */
			day = local_day(n->df == DF_SAVED && info->save_date != 0
					    ? info->save_date
					    : info->internal_date);
		}
		return n->cmp == DC_BEFORE ? day < n->day
		       : n->cmp == DC_ON   ? day == n->day
					   : day >= n->day;
	case SK_MODSEQ:
		return info->modseq >= n->num;
	case SK_EMAILID:
		return info->email_id == n->num;
	case SK_OLDER:
	case SK_YOUNGER: {
		/* Seconds, so time zones do not matter (RFC 5032 3). */
		int64_t age = (int64_t)se->now - (int64_t)info->internal_date;
		return n->type == SK_OLDER ? age > (int64_t)n->num : age <= (int64_t)n->num;
	}
	case SK_HEADER: {
		struct hmatch hm = {n};
		if (load_header(se, m) < 0)
			return false;
		return mailtext_each_field(m->hdr, m->hdr_len, n->str, n->slen, field_matches, &hm);
	}
	case SK_TEXT:
		/* Not a candidate: the index proves the text lacks the needle. */
		if (n->indexed && m->uid <= n->through && !uid_in(n->cand, n->ncand, m->uid))
			return false;
		/* The index also tells a header that lacks it. */
		if (!(n->indexed && m->uid <= n->through && !uid_in(n->hcand, n->nhcand, m->uid)) &&
		    load_header_canon(se, m) == 0 &&
		    mailtext_contains(buf_cstr(&m->hcanon), m->hcanon.len, n->needle, n->nlen))
			return true;
		/* fall through */
	case SK_BODY:
		if (n->type == SK_BODY && n->indexed && m->uid <= n->through &&
		    !uid_in(n->cand, n->ncand, m->uid))
			return false;
		if (load_body(se, m) < 0)
			return n->nlen == 0;
		return mailtext_contains(buf_cstr(&m->bcanon), m->bcanon.len, n->needle, n->nlen);
	case SK_NOT:
		return !eval(se, n->child, m);
	case SK_AND:
		for (const struct snode *c = n->child; c != NULL; c = c->next)
			if (!eval(se, c, m))
				return false;
		return true;
	case SK_OR:
		for (const struct snode *c = n->child; c != NULL; c = c->next)
			if (eval(se, c, m))
				return true;
		return false;
	}
	return false;
}

/* ---- the full-text index ---- */

/* Asks the index for the candidates of every BODY/TEXT key of the tree
 * (under NOT and OR too: a candidate set only lets eval() skip messages
 * the needle cannot be in, so any combination stays exact). A key the
 * index cannot answer is scanned; a read error there falls back to the
 * scan as well. */
static void
index_keys(struct search *se, struct snode *n)
{
	struct imap_session *s = se->s;

	for (; n != NULL; n = n->next) {
		if (n->type == SK_BODY || n->type == SK_TEXT) {
			uint32_t *c, *hc = NULL, through;
			size_t nc, nhc = 0;
			int r = store_fts_candidates(
			    s->view->owner, s->view->name, n->needle, n->nlen, s->cmd_arena, &c,
			    &nc, n->type == SK_TEXT ? &hc : NULL, &nhc, &through);
			if (r == STORE_OK) {
				n->indexed = true;
				n->cand = c;
				n->ncand = nc;
				n->hcand = hc;
				n->nhcand = nhc;
				n->through = through;
				if (se->through == 0 || through < se->through)
					se->through = through;
			}
		}
		if (n->child != NULL)
			index_keys(se, n->child);
	}
}

/* The view positions (0-based, ascending) the program can match at all
 * when one of its top-level AND keys is an indexed BODY/TEXT: that key's
 * candidates and every UID above its watermark (any other message fails
 * that key, so the whole program). The key with the fewest is taken. NULL
 * when there is no such key: every message is evaluated. So a selective
 * word reads the records of its candidates, not of the whole mailbox. */
static size_t *
restrict_positions(struct search *se, const struct snode *root, size_t *n_r)
{
	const struct imap_view *v = se->s->view;
	const struct snode *best = NULL;
	size_t best_n = 0, best_tail = 0;

	for (const struct snode *c = root->child; c != NULL; c = c->next) {
		if ((c->type != SK_BODY && c->type != SK_TEXT) || !c->indexed)
			continue;
		/* The first position above the watermark. */
		size_t lo = 0, hi = v->count;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (v->uids[mid] <= c->through)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (best == NULL || c->ncand + (v->count - lo) < best_n) {
			best = c;
			best_tail = lo;
			best_n = c->ncand + (v->count - lo);
		}
	}
	if (best == NULL)
		return NULL;
	size_t *pos = arena_alloc(se->s->cmd_arena, (best_n + 1) * sizeof(*pos));
	size_t n = 0, q = 0;
	/* Both lists ascend: each candidate is searched for from the last. */
	for (size_t i = 0; i < best->ncand && q < best_tail; i++) {
		size_t lo = q, hi = best_tail;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (v->uids[mid] < best->cand[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		q = lo;
		if (q < best_tail && v->uids[q] == best->cand[i])
			pos[n++] = q++;
	}
	for (q = best_tail; q < v->count; q++)
		pos[n++] = q;
	*n_r = n;
	return pos;
}

/* ---- compiling ---- */

static struct snode *
new_node(struct search *se, enum skey type, unsigned cost)
{
	struct snode *n = arena_alloc(se->s->cmd_arena, sizeof(*n));
	n->type = type;
	n->cost = cost;
	return n;
}

/* Adds c to parent's children keeping them ordered by cost (stable). */
static void
add_child(struct snode *parent, struct snode *c)
{
	struct snode **pp = &parent->child;
	while (*pp != NULL && (*pp)->cost <= c->cost)
		pp = &(*pp)->next;
	c->next = *pp;
	*pp = c;
	if (c->cost > parent->cost)
		parent->cost = c->cost;
}

static bool
get_string(struct search *se, const struct imap_arg *args, size_t count, size_t *i,
	   const char **s_r, size_t *len_r)
{
	if (*i >= count || !imap_arg_astring(&args[*i], s_r, len_r)) {
		se->err = "Missing or invalid string argument";
		return false;
	}
	(*i)++;
	return true;
}

static bool
get_number(struct search *se, const struct imap_arg *args, size_t count, size_t *i, uint64_t *n_r)
{
	uint64_t n = 0;

	if (*i >= count || args[*i].type != IMAP_ARG_ATOM || args[*i].len == 0 ||
	    args[*i].len > 20) {
		se->err = "Missing or invalid number";
		return false;
	}
	for (const char *p = args[*i].str; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10) {
			se->err = "Invalid number";
			return false;
		}
		n = n * 10 + (uint64_t)(*p - '0');
	}
	(*i)++;
	*n_r = n;
	return true;
}

/* A needle as canonical text; the CHARSET is UTF-8 or its subset. */
static bool
get_needle(struct search *se, const struct imap_arg *args, size_t count, size_t *i, struct snode *n)
{
	const char *str;
	size_t len;
	struct buf u, c;

	if (!get_string(se, args, count, i, &str, &len))
		return false;
	buf_init(&u, 4 * len + 16);
	buf_init(&c, MAILTEXT_CANON_MAX);
	/* Invalid UTF-8 becomes U+FFFD, which then matches only itself. */
	if (mailtext_charset_to_utf8("utf-8", str, len, &u) < 0 ||
	    mailtext_casemap(buf_cstr(&u), u.len, &c) < 0) {
		buf_free(&u);
		buf_free(&c);
		se->err = "Search string too long";
		return false;
	}
	n->needle = arena_memdup(se->s->cmd_arena, buf_cstr(&c), c.len + 1);
	n->nlen = c.len;
	buf_free(&u);
	buf_free(&c);
	return true;
}

static struct snode *parse_key(struct search *se, const struct imap_arg *args, size_t count,
			       size_t *i, unsigned depth);

static struct snode *
header_node(struct search *se, const char *field, const struct imap_arg *args, size_t count,
	    size_t *i)
{
	struct snode *n = new_node(se, SK_HEADER, 1);
	n->str = field;
	n->slen = strlen(field);
	return get_needle(se, args, count, i, n) ? n : NULL;
}

static struct snode *
flag_node(struct search *se, uint32_t flag, bool neg)
{
	struct snode *n = new_node(se, SK_FLAG, 0);
	n->flag = flag;
	n->neg = neg;
	return n;
}

static struct snode *
date_node(struct search *se, enum date_field df, enum date_cmp cmp, const struct imap_arg *args,
	  size_t count, size_t *i)
{
	const char *str;
	size_t len;
	struct snode *n = new_node(se, SK_DATE, df == DF_SENT ? 1 : 0);

	if (!get_string(se, args, count, i, &str, &len) ||
	    parse_search_date(str, len, &n->day) < 0) {
		se->err = "Invalid date (expected d-Mon-yyyy)";
		return NULL;
	}
	n->df = df;
	n->cmp = cmp;
	return n;
}

static const struct {
	const char *name;
	uint32_t flag;
	bool neg;
} flag_keys[] = {
    {"ANSWERED", STORE_FLAG_ANSWERED, false}, {"DELETED", STORE_FLAG_DELETED, false},
    {"DRAFT", STORE_FLAG_DRAFT, false},	      {"FLAGGED", STORE_FLAG_FLAGGED, false},
    {"SEEN", STORE_FLAG_SEEN, false},	      {"UNANSWERED", STORE_FLAG_ANSWERED, true},
    {"UNDELETED", STORE_FLAG_DELETED, true},  {"UNDRAFT", STORE_FLAG_DRAFT, true},
    {"UNFLAGGED", STORE_FLAG_FLAGGED, true},  {"UNSEEN", STORE_FLAG_SEEN, true},
};

static const struct {
	const char *name;
	enum date_field df;
	enum date_cmp cmp;
} date_keys[] = {
    {"BEFORE", DF_INTERNAL, DC_BEFORE},	  {"ON", DF_INTERNAL, DC_ON},
    {"SINCE", DF_INTERNAL, DC_SINCE},	  {"SENTBEFORE", DF_SENT, DC_BEFORE},
    {"SENTON", DF_SENT, DC_ON},		  {"SENTSINCE", DF_SENT, DC_SINCE},
    {"SAVEDBEFORE", DF_SAVED, DC_BEFORE}, {"SAVEDON", DF_SAVED, DC_ON},
    {"SAVEDSINCE", DF_SAVED, DC_SINCE},
};

static const struct {
	const char *key, *field;
} header_keys[] = {
    {"FROM", "From"}, {"TO", "To"}, {"CC", "Cc"}, {"BCC", "Bcc"}, {"SUBJECT", "Subject"},
};

static struct snode *
keyword_node(struct search *se, bool neg, const struct imap_arg *args, size_t count, size_t *i)
{
	if (*i >= count || args[*i].type != IMAP_ARG_ATOM) {
		se->err = "KEYWORD needs a flag keyword";
		return NULL;
	}
	const char *kw = args[(*i)++].str;
	if (kw[0] == '\\') {
		/* Not a keyword by the grammar; clients mean the system flag. */
		for (size_t k = 0; k < 5; k++)
			if (strcasecmp(kw + 1, flag_keys[k].name) == 0)
				return flag_node(se, flag_keys[k].flag, neg);
		return new_node(se, neg ? SK_ALL : SK_NONE, 0);
	}
	struct snode *n = new_node(se, SK_KEYWORD, 0);
	n->str = kw;
	n->neg = neg;
	return n;
}

static struct snode *
seqset_node(struct search *se, const char *atom, bool uid_mode)
{
	struct imap_seqset set;
	struct imap_session *s = se->s;

	if (imap_seqset_parse(s->cmd_arena, atom, &set) < 0) {
		se->err = "Invalid sequence set";
		return NULL;
	}
	if (!uid_mode && !set.saved) {
		/* Numbers past the end simply match nothing here. */
		struct snode *n = new_node(se, SK_SEQ, 0);
		n->r = set.r;
		n->nr = set.n;
		return n;
	}
	struct snode *n = new_node(se, SK_UIDS, 0);
	uint32_t *uids;
	size_t nuids;
	if (imap_seqset_uids(s, &set, true, s->cmd_arena, &uids, &nuids) < 0) {
		se->err = "Invalid sequence set";
		return NULL;
	}
	n->uids = uids;
	n->nuids = nuids;
	return n;
}

static struct snode *
parse_key(struct search *se, const struct imap_arg *args, size_t count, size_t *i, unsigned depth)
{
	if (depth > SEARCH_MAX_DEPTH) {
		se->err = "Search criteria nested too deeply";
		return NULL;
	}
	if (*i >= count) {
		se->err = "Missing search key";
		return NULL;
	}
	const struct imap_arg *a = &args[(*i)++];
	if (a->type == IMAP_ARG_LIST) {
		if (a->count == 0) {
			se->err = "Empty search key list";
			return NULL;
		}
		struct snode *and = new_node(se, SK_AND, 0);
		for (size_t j = 0; j < a->count;) {
			struct snode *c = parse_key(se, a->list, a->count, &j, depth + 1);
			if (c == NULL)
				return NULL;
			add_child(and, c);
		}
		return and;
	}
	if (a->type != IMAP_ARG_ATOM) {
		se->err = "Search keys are atoms";
		return NULL;
	}
	const char *k = a->str;
	if ((k[0] >= '0' && k[0] <= '9') || k[0] == '*' || k[0] == '$')
		return seqset_node(se, k, false);
	for (size_t j = 0; j < ARRAY_SIZE(flag_keys); j++)
		if (strcasecmp(k, flag_keys[j].name) == 0)
			return flag_node(se, flag_keys[j].flag, flag_keys[j].neg);
	for (size_t j = 0; j < ARRAY_SIZE(date_keys); j++)
		if (strcasecmp(k, date_keys[j].name) == 0)
			return date_node(se, date_keys[j].df, date_keys[j].cmp, args, count, i);
	for (size_t j = 0; j < ARRAY_SIZE(header_keys); j++)
		if (strcasecmp(k, header_keys[j].key) == 0)
			return header_node(se, header_keys[j].field, args, count, i);
	/* RFC 8514: every mailbox here has save dates. */
	if (strcasecmp(k, "ALL") == 0 || strcasecmp(k, "SAVEDATESUPPORTED") == 0)
		return new_node(se, SK_ALL, 0);
	if (strcasecmp(k, "OLDER") == 0 || strcasecmp(k, "YOUNGER") == 0) {
		struct snode *n =
		    new_node(se, k[0] == 'O' || k[0] == 'o' ? SK_OLDER : SK_YOUNGER, 0);
		if (!get_number(se, args, count, i, &n->num))
			return NULL;
		if (n->num == 0 || n->num > UINT32_MAX) {
			se->err = "OLDER and YOUNGER need an interval of 1 to 4294967295 seconds";
			return NULL;
		}
		se->now = time(NULL);
		return n;
	}
	if (strcasecmp(k, "RECENT") == 0)
		return new_node(se, SK_RECENT, 0);
	if (strcasecmp(k, "NEW") == 0)
		return new_node(se, SK_NEW, 0);
	if (strcasecmp(k, "OLD") == 0)
		return new_node(se, SK_OLD, 0);
	if (strcasecmp(k, "KEYWORD") == 0 || strcasecmp(k, "UNKEYWORD") == 0)
		return keyword_node(se, k[0] == 'U' || k[0] == 'u', args, count, i);
	if (strcasecmp(k, "LARGER") == 0 || strcasecmp(k, "SMALLER") == 0) {
		struct snode *n =
		    new_node(se, k[0] == 'L' || k[0] == 'l' ? SK_LARGER : SK_SMALLER, 0);
		return get_number(se, args, count, i, &n->num) ? n : NULL;
	}
	if (strcasecmp(k, "UID") == 0) {
		if (*i >= count || args[*i].type != IMAP_ARG_ATOM) {
			se->err = "UID needs a sequence set";
			return NULL;
		}
		return seqset_node(se, args[(*i)++].str, true);
	}
	if (strcasecmp(k, "HEADER") == 0) {
		const char *f;
		size_t flen;
		if (!get_string(se, args, count, i, &f, &flen))
			return NULL;
		if (flen == 0 || memchr(f, '\0', flen) != NULL) {
			se->err = "Invalid header field name";
			return NULL;
		}
		return header_node(se, arena_strndup(se->s->cmd_arena, f, flen), args, count, i);
	}
	if (strcasecmp(k, "BODY") == 0 || strcasecmp(k, "TEXT") == 0) {
		struct snode *n = new_node(se, k[0] == 'B' || k[0] == 'b' ? SK_BODY : SK_TEXT, 2);
		return get_needle(se, args, count, i, n) ? n : NULL;
	}
	if (strcasecmp(k, "NOT") == 0) {
		struct snode *n = new_node(se, SK_NOT, 0);
		if ((n->child = parse_key(se, args, count, i, depth + 1)) == NULL)
			return NULL;
		n->cost = n->child->cost;
		return n;
	}
	if (strcasecmp(k, "OR") == 0) {
		struct snode *n = new_node(se, SK_OR, 0);
		for (int j = 0; j < 2; j++) {
			struct snode *c = parse_key(se, args, count, i, depth + 1);
			if (c == NULL)
				return NULL;
			add_child(n, c);
		}
		return n;
	}
	if (strcasecmp(k, "EMAILID") == 0 || strcasecmp(k, "THREADID") == 0) {
		/* RFC 8474, as FETCH renders EMAILID ("E" + 16 hex digits);
		 * there are no thread ids (FETCH THREADID is NIL). */
		const char *id;
		size_t idlen;
		uint64_t e = 0;
		if (!get_string(se, args, count, i, &id, &idlen))
			return NULL;
		if (k[0] == 'T' || k[0] == 't' || idlen != 17 || id[0] != 'E')
			return new_node(se, SK_NONE, 0);
		for (size_t j = 1; j < idlen; j++) {
			char c = id[j];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				return new_node(se, SK_NONE, 0);
			e = e << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
		}
		struct snode *n = new_node(se, SK_EMAILID, 0);
		n->num = e;
		return n;
	}
	if (strcasecmp(k, "MODSEQ") == 0) {
		/* MODSEQ ["entry-name" entry-type-req] mod-sequence-valzer;
		 * one modseq per message here, so the entry is not used. */
		struct snode *n = new_node(se, SK_MODSEQ, 0);
		if (*i + 2 < count && args[*i].type != IMAP_ARG_ATOM) {
			const struct imap_arg *t = &args[*i + 1];
			if (!imap_arg_is_atom_ci(t, "priv") && !imap_arg_is_atom_ci(t, "shared") &&
			    !imap_arg_is_atom_ci(t, "all")) {
				se->err = "Invalid MODSEQ entry type";
				return NULL;
			}
			*i += 2;
		}
		se->modseq_used = true;
		return get_number(se, args, count, i, &n->num) ? n : NULL;
	}
	se->err = "Unknown search key";
	return NULL;
}

/* ---- results ---- */

/* Appends numbers (ascending) as a compact sequence set: 1:3,7. */
static void
append_set(struct buf *b, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (j == i)
			buf_printf(b, "%s%" PRIu32, i > 0 ? "," : "", v[i]);
		else
			buf_printf(b, "%s%" PRIu32 ":%" PRIu32, i > 0 ? "," : "", v[i], v[j]);
		i = j + 1;
	}
}

static void
set_saved(struct imap_session *s, const uint32_t *uids, size_t n)
{
	free(s->search_saved);
	s->search_saved = NULL;
	s->nsearch_saved = 0;
	if (n > 0) {
		s->search_saved = xmalloc(n * sizeof(*uids));
		memcpy(s->search_saved, uids, n * sizeof(*uids));
		s->nsearch_saved = n;
	}
}

int
imap_search_parse_return(const struct imap_arg *l, bool save_ok, unsigned *ret_r)
{
	unsigned ret = 0;

	for (size_t j = 0; j < l->count; j++) {
		const struct imap_arg *o = &l->list[j];
		if (imap_arg_is_atom_ci(o, "MIN"))
			ret |= RET_MIN;
		else if (imap_arg_is_atom_ci(o, "MAX"))
			ret |= RET_MAX;
		else if (imap_arg_is_atom_ci(o, "ALL"))
			ret |= RET_ALL;
		else if (imap_arg_is_atom_ci(o, "COUNT"))
			ret |= RET_COUNT;
		else if (save_ok && imap_arg_is_atom_ci(o, "SAVE"))
			ret |= RET_SAVE;
		else
			return -1;
	}
	/* RFC 4731: RETURN () is RETURN (ALL) (RFC 5267 3.2 likewise). */
	*ret_r = ret == 0 ? RET_ALL : ret;
	return 0;
}

/* Compiles the criteria args[i..count) and evaluates them over the
 * view: the matching message numbers, UIDs and MODSEQs, ascending, in the
 * command arena. -1 with se->err set (a BAD to send) or, with se->err
 * NULL, the store failed. */
static int
search_run(struct imap_session *s, struct search *se, const struct imap_arg *args, size_t count,
	   size_t i, uint32_t **hits_r, uint32_t **uids_r, uint64_t **modseq_r, size_t *n_r)
{
	/* The whole program is one implicit AND. */
	struct snode *root = new_node(se, SK_AND, 0);
	if (i >= count)
		se->err = "Missing search criteria";
	while (se->err == NULL && i < count) {
		struct snode *c = parse_key(se, args, count, &i, 0);
		if (c != NULL)
			add_child(root, c);
	}
	if (se->err != NULL)
		return -1;
	if (se->modseq_used)
		imap_condstore_enable(s); /* RFC 7162 3.1: a CONDSTORE-enabling command */

	struct imap_view *v = s->view;
	size_t *pos = NULL, npos = v->count;
	if (s->cfg->search_index) {
		index_keys(se, root->child);
		pos = restrict_positions(se, root, &npos);
	}

	/* The message data of the positions to evaluate, in UID order (the
	 * view's order): the whole mailbox, or only the index's candidates
	 * (a candidate's text never changes, and a message added since the
	 * index was read has a UID above its watermark, so reading the
	 * records after the candidates misses nothing). */
	struct store_msg_info *msgs;
	size_t nmsgs;
	int r;
	if (pos == NULL) {
		struct store_mailbox_info minfo;
		r = store_mailbox_list(s->view->owner, v->name, s->cmd_arena, &minfo, &msgs,
				       &nmsgs);
	} else {
		uint32_t *want = arena_alloc(s->cmd_arena, (npos + 1) * sizeof(*want));
		for (size_t j = 0; j < npos; j++)
			want[j] = v->uids[pos[j]];
		r = store_message_infos(s->view->owner, v->name, want, npos, s->cmd_arena, &msgs,
					&nmsgs);
	}
	if (r != STORE_OK && r != STORE_NOTFOUND)
		return -1;
	if (r == STORE_NOTFOUND)
		nmsgs = 0; /* deleted under us: nothing matches */

	uint32_t *hits = arena_alloc(s->cmd_arena, (npos + 1) * sizeof(*hits));
	uint32_t *hit_uids = arena_alloc(s->cmd_arena, (npos + 1) * sizeof(*hit_uids));
	uint64_t *hit_modseq = arena_alloc(s->cmd_arena, (npos + 1) * sizeof(*hit_modseq));
	size_t nhits = 0;
	se->ma = arena_new(0);
	size_t k = 0;
	for (size_t j = 0; j < npos && !se->tempfail; j++) {
		size_t q = pos != NULL ? pos[j] : j;
		uint32_t uid = v->uids[q];
		while (k < nmsgs && msgs[k].uid < uid)
			k++;
		if (k >= nmsgs || msgs[k].uid != uid)
			continue; /* expunged elsewhere, not yet reported */
		struct smsg m = {
		    .seq = (uint32_t)q + 1,
		    .uid = uid,
		    .info = &msgs[k],
		    .recent = imap_view_is_recent(v, uid),
		};
		bool hit = eval(se, root, &m);
		if (m.whole_state > 0)
			buf_free(&m.whole);
		if (m.hcanon_state > 0)
			buf_free(&m.hcanon);
		if (m.body_state > 0)
			buf_free(&m.bcanon);
		arena_clear(se->ma);
		if (hit) {
			hits[nhits] = m.seq;
			hit_uids[nhits] = uid;
			hit_modseq[nhits] = msgs[k].modseq;
			nhits++;
		}
	}
	arena_destroy(&se->ma);
	/* How much the index spared (tests read it: texts_read far below
	 * messages shows it was used; evaluated, the messages whose records
	 * were read, that only candidates were). */
	log_debug(s->conn.id, s->conn.service,
		  "search messages=%zu texts_read=%zu indexed_through=%" PRIu32
		  " hits=%zu evaluated=%zu",
		  v->count, se->texts_read, se->through, nhits, npos);
	if (se->tempfail)
		return -1;
	*hits_r = hits;
	*uids_r = hit_uids;
	*modseq_r = hit_modseq;
	*n_r = nhits;
	return 0;
}

int
imap_search_match(struct imap_session *s, const struct imap_arg *args, size_t count,
		  uint32_t **seqs_r, uint32_t **uids_r, size_t *n_r)
{
	struct search se = {.s = s};
	uint64_t *modseq;

	if (count == 1 && imap_arg_is_atom_ci(&args[0], "ALL")) {
		/* SORT and THREAD of the whole mailbox (what clients send):
		 * every message of the view, without reading its records
		 * (the sort keys are read next anyway). */
		const struct imap_view *v = s->view;
		uint32_t *seqs = arena_alloc(s->cmd_arena, (v->count + 1) * sizeof(*seqs));
		uint32_t *uids = arena_alloc(s->cmd_arena, (v->count + 1) * sizeof(*uids));
		for (size_t i = 0; i < v->count; i++) {
			seqs[i] = (uint32_t)i + 1;
			uids[i] = v->uids[i];
		}
		*seqs_r = seqs;
		*uids_r = uids;
		*n_r = v->count;
		return 0;
	}
	if (search_run(s, &se, args, count, 0, seqs_r, uids_r, &modseq, n_r) == 0)
		return 0;
	if (se.err != NULL)
		imap_bad(s, "%s", se.err);
	else
		imap_tagged(s, "NO", "[UNAVAILABLE] Search failed, try again later");
	return -1;
}

static void
cmd_search(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct search se = {.s = s};
	const struct imap_arg *args = cmd->args;
	size_t count = cmd->count, i = 0;
	unsigned ret = 0;
	bool esearch = false;

	if (i + 1 < count && imap_arg_is_atom_ci(&args[i], "RETURN") &&
	    args[i + 1].type == IMAP_ARG_LIST) {
		if (imap_search_parse_return(&args[i + 1], true, &ret) < 0) {
			imap_bad(s, "Unknown SEARCH return option");
			return;
		}
		esearch = true;
		i += 2;
	}
	if (i < count && imap_arg_is_atom_ci(&args[i], "CHARSET")) {
		const char *cs;
		size_t cslen;
		if (i + 1 >= count || !imap_arg_astring(&args[i + 1], &cs, &cslen)) {
			if (ret & RET_SAVE)
				set_saved(s, NULL, 0);
			imap_bad(s, "CHARSET needs a name");
			return;
		}
		if (!((cslen == 5 && strncasecmp(cs, "UTF-8", 5) == 0) ||
		      (cslen == 8 && strncasecmp(cs, "US-ASCII", 8) == 0))) {
			if (ret & RET_SAVE)
				set_saved(s, NULL, 0);
			imap_tagged(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return;
		}
		i += 2;
	}
	uint32_t *hits, *hit_uids;
	uint64_t *hit_modseq;
	size_t nhits;
	int r = search_run(s, &se, args, count, i, &hits, &hit_uids, &hit_modseq, &nhits);
	if (r < 0) {
		if (ret & RET_SAVE)
			set_saved(s, NULL, 0);
		if (se.err != NULL)
			imap_bad(s, "%s", se.err);
		else
			imap_tagged(s, "NO", "[UNAVAILABLE] SEARCH failed, try again later");
		return;
	}

	const uint32_t *out = cmd->uid ? hit_uids : hits;
	struct buf b;
	/* Sized for the worst case, so no append below can fail: a number
	 * and its separator take at most 11 bytes, or 22 as a range. */
	buf_init(&b, 24 * (nhits + 1) + 2 * strlen(cmd->tag) + 256);
	if (!esearch && s->rev2) {
		/* RFC 9051 7.3.4: IMAP4rev2 answers SEARCH with ESEARCH. */
		esearch = true;
		ret = RET_ALL;
	}
	if (ret & RET_SAVE) {
		/* RFC 5182 2.4: with MIN and/or MAX alone, only those. */
		if ((ret & (RET_ALL | RET_COUNT)) || !(ret & (RET_MIN | RET_MAX))) {
			set_saved(s, hit_uids, nhits);
		} else if (nhits == 0) {
			set_saved(s, NULL, 0);
		} else {
			uint32_t mm[2];
			size_t n = 0;
			if (ret & RET_MIN)
				mm[n++] = hit_uids[0];
			if ((ret & RET_MAX) && (n == 0 || hit_uids[nhits - 1] != mm[0]))
				mm[n++] = hit_uids[nhits - 1];
			set_saved(s, mm, n);
		}
	}
	if (!esearch) {
		uint64_t top = 0;
		buf_append_str(&b, "* SEARCH");
		for (size_t j = 0; j < nhits; j++) {
			buf_printf(&b, " %" PRIu32, out[j]);
			if (hit_modseq[j] > top)
				top = hit_modseq[j];
		}
		/* RFC 7162 3.1.5: the highest MODSEQ of what was found. */
		if (se.modseq_used && nhits > 0)
			buf_printf(&b, " (MODSEQ %" PRIu64 ")", top);
		buf_append_str(&b, "\r\n");
	} else if (ret != RET_SAVE) {
		/* SAVE alone suppresses the ESEARCH response (RFC 5182 2.1). */
		uint64_t top = 0;
		buf_append_str(&b, "* ESEARCH (TAG ");
		imap_append_string(&b, cmd->tag, strlen(cmd->tag), false);
		buf_append_str(&b, ")");
		if (cmd->uid)
			buf_append_str(&b, " UID");
		if (nhits > 0) {
			if (ret & RET_MIN)
				buf_printf(&b, " MIN %" PRIu32, out[0]);
			if (ret & RET_MAX)
				buf_printf(&b, " MAX %" PRIu32, out[nhits - 1]);
			if (ret & RET_ALL) {
				buf_append_str(&b, " ALL ");
				append_set(&b, out, nhits);
			}
		}
		if (ret & RET_COUNT)
			buf_printf(&b, " COUNT %zu", nhits);
		if (se.modseq_used && nhits > 0) {
			/* RFC 7162 3.2: over what was returned (MIN/MAX alone:
			 * just those messages). */
			if (ret & (RET_ALL | RET_COUNT)) {
				for (size_t j = 0; j < nhits; j++)
					if (hit_modseq[j] > top)
						top = hit_modseq[j];
			} else {
				if (ret & RET_MIN)
					top = hit_modseq[0];
				if ((ret & RET_MAX) && hit_modseq[nhits - 1] > top)
					top = hit_modseq[nhits - 1];
			}
			buf_printf(&b, " MODSEQ %" PRIu64, top);
		}
		buf_append_str(&b, "\r\n");
	}
	if (b.len > 0)
		imap_write(s, b.data, b.len);
	buf_free(&b);
	imap_view_sync(s, false);
	imap_tagged(s, "OK", "%sSEARCH completed%s", cmd->uid ? "UID " : "",
		    (ret & RET_SAVE) ? ", result saved" : "");
}

const struct imap_command imap_search_cmds[] = {
    {"SEARCH", IMAP_ST_SELECTED, true, cmd_search},
    {NULL, 0, false, NULL},
};
