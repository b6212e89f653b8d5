/*
 * store_sortkey.c - the keys IMAP SORT and THREAD compare (RFC 5256,
 * RFC 5957), computed once per body from its top header block and kept in
 * the `sortkey` db beside the body's `mime` record (same key, same life:
 * written with the blob, deleted with it), so SORT and THREAD over a
 * mailbox read one small record per message and never a body.
 *
 * What is kept: the sent date (Date: with its time and zone, as UTC
 * seconds), the base subject (RFC 2047 decoded, RFC 5256 2.1), the first
 * From/To/Cc address's addr-mailbox and the RFC 5957 display value of the
 * first From/To, all in i;unicode-casemap canonical form, and for THREAD
 * the Message-ID and the references (References' msg-ids, else the first
 * of In-Reply-To). Strings are cut (STORE_SORTKEY_STR_MAX, refs at
 * STORE_SORTKEY_REFS_MAX keeping the newest ids) to keep the record small.
 *
 * Bodies stored before this db existed get their records at the first
 * open of the store by this build (store_sortkey_fill, in the open
 * transaction; meta "sortkeys" marks it done); one a downgraded build
 * stored later is computed from its header at read time instead.
 * How it fails: malformed headers never fail (a missing or bad Date: is
 * "no sent date", a missing field the empty string); LMDB errors pass
 * through; a record that does not decode is STORE_PERMFAIL.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compat.h"
#include "core/log.h"
#include "storage/mailtext.h"
#include "storage/mime.h"
#include "storage/store_internal.h"

#define SK_VERSION 1
#define SK_FIXED 32
#define SK_NSTR 8
#define SK_F_SENT 0x01
#define SK_F_REPLY 0x02

/* ---- dates ---- */

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

static const char *
skip_cfws(const char *p, const char *end)
{
	int depth = 0;
	while (p < end) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			break;
		p++;
	}
	return p;
}

static bool
is_alpha(char c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static const char *
number(const char *p, const char *end, unsigned maxd, int64_t *n_r, unsigned *nd_r)
{
	int64_t n = 0;
	unsigned nd = 0;
	while (p < end && *p >= '0' && *p <= '9' && nd < maxd + 1)
		n = n * 10 + (*p++ - '0'), nd++;
	*n_r = n;
	*nd_r = nd;
	return p;
}

/* An obsolete zone name (RFC 5322 4.3); military letters are "-0000". */
static bool
zone_name(const char *z, size_t n, int *min_r)
{
	static const struct {
		const char *name;
		int min;
	} zones[] = {{"UT", 0},	       {"GMT", 0},	 {"UTC", 0},	   {"Z", 0},
		     {"EST", -5 * 60}, {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60},
		     {"MST", -7 * 60}, {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60}};
	for (size_t i = 0; i < ARRAY_SIZE(zones); i++)
		if (strlen(zones[i].name) == n && strncasecmp(z, zones[i].name, n) == 0) {
			*min_r = zones[i].min;
			return true;
		}
	*min_r = 0;
	return n == 1;
}

/* An RFC 5322 date-time (obsolete forms too) as UTC seconds. The time is
 * required; seconds and the zone may be missing (zone then UTC). */
static int
parse_date_time(const char *s, size_t len, int64_t *t_r)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	const char *p = s, *end = s + len;
	int64_t d, y, hh, mm, ss = 0;
	unsigned nd;
	int m = 0;

	p = skip_cfws(p, end);
	if (p < end && is_alpha(*p)) { /* day-of-week */
		while (p < end && is_alpha(*p))
			p++;
		p = skip_cfws(p, end);
		if (p < end && *p == ',')
			p = skip_cfws(p + 1, end);
	}
	p = number(p, end, 2, &d, &nd);
	if (nd == 0 || nd > 2)
		return -1;
	p = skip_cfws(p, end);
	if (end - p < 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(p, months + 3 * i, 3) == 0)
			m = i + 1;
	if (m == 0)
		return -1;
	p += 3;
	while (p < end && is_alpha(*p))
		p++; /* "March": lenient, as many MUAs wrote it */
	p = skip_cfws(p, end);
	p = number(p, end, 4, &y, &nd);
	if (nd < 2 || nd > 4)
		return -1;
	if (nd == 2)
		y += y < 50 ? 2000 : 1900;
	else if (nd == 3)
		y += 1900;
	p = skip_cfws(p, end);
	p = number(p, end, 2, &hh, &nd);
	if (nd == 0 || nd > 2)
		return -1;
	p = skip_cfws(p, end);
	if (p >= end || *p != ':')
		return -1;
	p = number(skip_cfws(p + 1, end), end, 2, &mm, &nd);
	if (nd == 0 || nd > 2)
		return -1;
	p = skip_cfws(p, end);
	if (p < end && *p == ':') {
		p = number(skip_cfws(p + 1, end), end, 2, &ss, &nd);
		if (nd == 0 || nd > 2)
			return -1;
		p = skip_cfws(p, end);
	}
	if (d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60)
		return -1;
	int zmin = 0;
	if (p < end && (*p == '+' || *p == '-')) {
		int64_t z;
		const char *q = number(p + 1, end, 4, &z, &nd);
		if (nd != 4)
			return -1;
		zmin = (int)(z / 100 * 60 + z % 100);
		if (*p == '-')
			zmin = -zmin;
		p = q;
	} else if (p < end && is_alpha(*p)) {
		const char *z = p;
		while (p < end && is_alpha(*p))
			p++;
		zone_name(z, (size_t)(p - z), &zmin);
	}
	*t_r = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss -
	       (int64_t)zmin * 60;
	return 0;
}

/* ---- header fields ---- */

/* The raw value of the first field named name in a header block, with
 * its final line end (mailtext_first_field leaves that out; the keys
 * stored by earlier builds were computed with it). */
static bool
find_field(const char *h, size_t len, const char *name, const char **v_r, size_t *vlen_r)
{
	const char *v, *end = h + len;
	size_t vlen;

	if (!mailtext_first_field(h, len, name, &v, &vlen))
		return false;
	while (v + vlen < end && v[vlen] == '\r')
		vlen++;
	if (v + vlen < end && v[vlen] == '\n')
		vlen++;
	*v_r = v;
	*vlen_r = vlen;
	return true;
}

/* Calls fn for each msg-id ("<...>" with an '@' inside and no blanks)
 * of a field value, outside comments and quoted strings. */
static void
each_msgid(const char *v, size_t len, void (*fn)(void *arg, const char *id, size_t n), void *arg)
{
	const char *p = v, *end = v + len;
	while (p < end) {
		p = skip_cfws(p, end);
		if (p >= end)
			break;
		if (*p == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			p++;
			continue;
		}
		if (*p != '<') {
			p++;
			continue;
		}
		const char *gt = p + 1;
		bool at = false, ok = true;
		while (gt < end && *gt != '>' && *gt != '<') {
			if (*gt == '@')
				at = true;
			else if ((unsigned char)*gt <= ' ' || *gt == '(')
				ok = false;
			gt++;
		}
		if (gt < end && *gt == '>' && at && ok && gt - p > 2) {
			fn(arg, p, (size_t)(gt - p + 1));
			p = gt + 1;
		} else {
			p = gt;
		}
	}
}

struct ids {
	struct buf *b;
	bool first_only, done;
};

static void
add_id(void *arg, const char *id, size_t n)
{
	struct ids *ids = arg;
	if (ids->done)
		return;
	if (ids->b->len > 0)
		buf_append(ids->b, " ", 1);
	buf_append(ids->b, id, n);
	if (ids->first_only)
		ids->done = true;
}

/* ---- building ---- */

/* Appends the canonical form of s, cut at a character boundary. */
static void
canon_cut(const char *s, size_t len, size_t max, struct buf *out)
{
	struct buf c;
	buf_init(&c, 4 * len + 64);
	if (len > 0 && mailtext_casemap(s, len, &c) == 0) {
		size_t n = c.len < max ? c.len : max;
		while (n > 0 && n < c.len && ((unsigned char)c.data[n] & 0xc0) == 0x80)
			n--;
		buf_append(out, c.data, n);
	}
	buf_free(&c);
}

static void
decoded(const char *raw, size_t len, struct buf *out)
{
	if (raw != NULL && mailtext_decode_header(raw, len, out) < 0)
		buf_reset(out);
}

static const struct mime_address *
first_address(const struct mime_address *a)
{
	for (; a != NULL; a = a->next)
		if (a->host != NULL && a->mailbox != NULL)
			return a;
	return NULL;
}

/* The RFC 5256 addr-mailbox and the RFC 5957 display value. */
static void
address_keys(const struct mime_address *list, struct buf *mbox, struct buf *disp)
{
	const struct mime_address *a = first_address(list);
	struct buf t;

	if (a == NULL)
		return;
	canon_cut(a->mailbox, strlen(a->mailbox), STORE_SORTKEY_STR_MAX, mbox);
	if (disp == NULL)
		return;
	buf_init(&t, 4 * STORE_SORTKEY_STR_MAX + 4096);
	if (a->name != NULL)
		decoded(a->name, strlen(a->name), &t);
	if (t.len == 0) /* RFC 5957 3: mailbox@host, else mailbox */
		buf_printf(&t, "%s@%s", a->mailbox, a->host);
	canon_cut(buf_cstr(&t), t.len, STORE_SORTKEY_STR_MAX, disp);
	buf_free(&t);
}

int
store_sortkey_build(const char *hdr, size_t hdr_len, struct buf *out)
{
	struct arena *a = arena_new(0);
	struct mime_part *root;
	struct buf s[SK_NSTR];
	uint8_t fixed[SK_FIXED] = {0};
	int64_t sent = 0;
	bool reply = false;
	const char *v;
	size_t vlen;
	int rc = 0;

	for (int i = 0; i < SK_NSTR; i++)
		buf_init(&s[i], i == 7 ? 64 * 1024 : 64 * 1024);
	mime_parse(a, NULL, hdr, hdr_len, &root);
	const struct mime_envelope *e = root->envelope;
	if (e != NULL) {
		if (e->date != NULL && parse_date_time(e->date, strlen(e->date), &sent) == 0)
			fixed[1] |= SK_F_SENT;
		if (e->subject != NULL) {
			struct buf d, b;
			buf_init(&d, 4 * strlen(e->subject) + 64);
			buf_init(&b, 4 * strlen(e->subject) + 64);
			decoded(e->subject, strlen(e->subject), &d);
			if (mailtext_base_subject(buf_cstr(&d), d.len, &b, &reply) == 0)
				canon_cut(buf_cstr(&b), b.len, STORE_SORTKEY_STR_MAX, &s[0]);
			buf_free(&d);
			buf_free(&b);
		}
		address_keys(e->from, &s[1], &s[2]);
		address_keys(e->to, &s[3], &s[4]);
		address_keys(e->cc, &s[5], NULL);
		if (e->message_id != NULL) {
			struct ids ids = {&s[6], true, false};
			each_msgid(e->message_id, strlen(e->message_id), add_id, &ids);
			if (s[6].len > STORE_SORTKEY_STR_MAX)
				buf_reset(&s[6]); /* no record keeps it: as if none */
		}
	}
	/* RFC 5256 4 (REFERENCES 1): References, else In-Reply-To's first. */
	if (find_field(hdr, hdr_len, "references", &v, &vlen)) {
		struct ids ids = {&s[7], false, false};
		each_msgid(v, vlen, add_id, &ids);
	}
	if (s[7].len == 0 && find_field(hdr, hdr_len, "in-reply-to", &v, &vlen)) {
		struct ids ids = {&s[7], true, false};
		each_msgid(v, vlen, add_id, &ids);
	}
	if (s[7].len > STORE_SORTKEY_REFS_MAX) {
		/* The newest ids are at the end: drop whole ids from the front. */
		const char *r = s[7].data, *cut = r + s[7].len - STORE_SORTKEY_REFS_MAX;
		const char *sp = memchr(cut, ' ', (size_t)(r + s[7].len - cut));
		size_t skip = sp != NULL ? (size_t)(sp + 1 - r) : s[7].len;
		memmove(s[7].data, r + skip, s[7].len - skip);
		s[7].len -= skip;
	}
	if (reply)
		fixed[1] |= SK_F_REPLY;
	fixed[0] = SK_VERSION;
	be_put64(fixed + 8, (uint64_t)sent);
	for (int i = 0; i < SK_NSTR; i++)
		be_put16(fixed + 16 + 2 * i, (uint16_t)s[i].len);
	if (buf_append(out, fixed, sizeof(fixed)) < 0)
		rc = -1;
	for (int i = 0; i < SK_NSTR && rc == 0; i++)
		if (s[i].len > 0 && buf_append(out, s[i].data, s[i].len) < 0)
			rc = -1;
	for (int i = 0; i < SK_NSTR; i++)
		buf_free(&s[i]);
	arena_destroy(&a);
	return rc;
}

int
store_sortkey_decode(const void *v, size_t len, struct arena *a, struct store_sortkey *k)
{
	const uint8_t *p = v;
	const char **dst[SK_NSTR] = {&k->subject, &k->from, &k->from_disp, &k->to,
				     &k->to_disp, &k->cc,   &k->msgid,	   &k->refs};
	size_t off = SK_FIXED;

	if (len < SK_FIXED || p[0] != SK_VERSION || (p[1] & ~(SK_F_SENT | SK_F_REPLY)) != 0)
		return -1;
	k->has_sent = (p[1] & SK_F_SENT) != 0;
	k->subj_reply = (p[1] & SK_F_REPLY) != 0;
	if (k->has_sent)
		k->sent = (int64_t)be_get64(p + 8);
	/* One copy for the eight strings, each given its terminator: SORT
	 * decodes a record per message, so one allocation, not eight. */
	char *d = arena_alloc(a, len - SK_FIXED + SK_NSTR);
	for (int i = 0; i < SK_NSTR; i++) {
		size_t n = be_get16(p + 16 + 2 * i);
		if (n > len - off)
			return -1;
		memcpy(d, p + off, n);
		d[n] = '\0';
		*dst[i] = d;
		d += n + 1;
		off += n;
	}
	return off == len ? 0 : -1;
}

int
store_sortkey_put(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], const char *hdr, size_t hdr_len)
{
	struct buf b;
	int rc;

	buf_init(&b, 64 * 1024);
	if (store_sortkey_build(hdr, hdr_len, &b) < 0) {
		buf_free(&b);
		return STORE_PERMFAIL; /* cannot happen: the strings are capped */
	}
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash};
	MDB_val v = {.mv_size = b.len, .mv_data = b.data};
	rc = mdb_put(txn, store_g->sortkey, &k, &v, 0);
	buf_free(&b);
	return rc;
}

/* The top header block of a stored body, from its blob. */
static int
body_header(MDB_txn *txn, const uint8_t hash[STORE_HASH_LEN], uint64_t body_len, struct buf *out)
{
	const void *mp;
	size_t mlen;
	struct mime_section root;
	uint64_t hlen = body_len;

	if (store_blob_mime(txn, hash, &mp, &mlen) == 0 &&
	    mime_section_find(mp, mlen, "", &root) == 0)
		hlen = root.hdr_len;
	if (hlen > MIME_DEFAULT_MAX_HEADER)
		hlen = MIME_DEFAULT_MAX_HEADER; /* the parser ignores the rest anyway */
	return store_blob_read_range(txn, hash, body_len, 0, hlen, out);
}

int
store_sortkey_fill(MDB_txn *txn)
{
	MDB_val mk = {.mv_size = 8, .mv_data = (void *)"sortkeys"}, v, k;
	MDB_cursor *cur;
	uint64_t filled = 0;
	int rc = mdb_get(txn, store_g->meta, &mk, &v);

	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(txn, store_g->blobref, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct blobref_rec br;
		uint8_t hash[STORE_HASH_LEN];
		MDB_val sv;
		if (k.mv_size != STORE_HASH_LEN ||
		    store_blobref_decode(v.mv_data, v.mv_size, &br) < 0)
			continue; /* store_check reports it */
		memcpy(hash, k.mv_data, STORE_HASH_LEN);
		if (mdb_get(txn, store_g->sortkey, &k, &sv) == 0)
			continue;
		struct buf h;
		buf_init(&h, MIME_DEFAULT_MAX_HEADER + 1);
		rc = body_header(txn, hash, br.length, &h);
		if (rc == 0)
			rc = store_sortkey_put(txn, hash, buf_cstr(&h), h.len);
		buf_free(&h);
		if (rc != 0)
			break;
		filled++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	if (filled > 0)
		log_info(0, "store", "sortkeys-filled bodies=%llu", (unsigned long long)filled);
	uint8_t one[4];
	be_put32(one, 1);
	v.mv_size = sizeof(one);
	v.mv_data = one;
	return mdb_put(txn, store_g->meta, &mk, &v, 0);
}

int
store_sort_keys(const char *user_id, const char *mailbox, struct arena *a,
		struct store_sortkey **keys_r, size_t *count_r)
{
	struct store_sortkey *list = NULL;
	size_t n = 0, computed = 0;
	struct mbox_rec mr;
	uint64_t user;
	uint32_t mbox;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	int rc;

	*keys_r = NULL;
	*count_r = 0;
	if ((rc = store_read_begin(&txn)) != 0)
		return store_rc_status(rc);
	rc = store_resolve_mailbox(txn, user_id, mailbox, &user, &mbox);
	if (rc == MDB_NOTFOUND) {
		store_read_end(txn);
		return strcmp(store_mbox_canon(mailbox), "INBOX") == 0 ? STORE_OK : STORE_NOTFOUND;
	}
	if (rc == 0)
		rc = store_mbox_get(txn, user, mbox, &mr);
	if (rc == MDB_NOTFOUND)
		rc = STORE_PERMFAIL;
	if (rc != 0)
		goto out;
	if (mr.messages > 0)
		list = arena_alloc(a, (size_t)mr.messages * sizeof(*list));
	uint8_t key[STORE_MSG_KEY_LEN];
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
	store_key_msg(key, user, mbox, 0);
	if ((rc = mdb_cursor_open(txn, store_g->msg, &cur)) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct msg_rec r;
		if (k.mv_size != STORE_MSG_KEY_LEN || memcmp(k.mv_data, key, 12) != 0)
			break;
		if (store_msg_decode(v.mv_data, v.mv_size, &r) < 0 || n >= mr.messages) {
			rc = STORE_PERMFAIL;
			goto out;
		}
		struct store_sortkey *sk = &list[n];
		memset(sk, 0, sizeof(*sk));
		sk->uid = be_get32((const uint8_t *)k.mv_data + 12);
		sk->size = r.size;
		sk->internal_date = (time_t)r.internal_date;
		MDB_val hk = {.mv_size = STORE_HASH_LEN, .mv_data = r.hash}, sv;
		int grc = mdb_get(txn, store_g->sortkey, &hk, &sv);
		if (grc == 0) {
			if (store_sortkey_decode(sv.mv_data, sv.mv_size, a, sk) < 0) {
				rc = STORE_PERMFAIL;
				goto out;
			}
		} else if (grc == MDB_NOTFOUND) {
			/* Stored by an older build after the fill: compute. */
			struct buf h, rec;
			buf_init(&h, MIME_DEFAULT_MAX_HEADER + 1);
			buf_init(&rec, 64 * 1024);
			grc = body_header(txn, r.hash, r.size - r.trace_len, &h);
			if (grc == 0 && store_sortkey_build(buf_cstr(&h), h.len, &rec) == 0 &&
			    store_sortkey_decode(rec.data, rec.len, a, sk) < 0)
				grc = STORE_PERMFAIL;
			buf_free(&h);
			buf_free(&rec);
			if (grc != 0) {
				rc = grc;
				goto out;
			}
			computed++;
		} else {
			rc = grc;
			goto out;
		}
		sk->uid = be_get32((const uint8_t *)k.mv_data + 12);
		sk->size = r.size;
		sk->internal_date = (time_t)r.internal_date;
		if (!sk->has_sent)
			sk->sent = (int64_t)r.internal_date; /* RFC 5256 2.2 */
		n++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	store_read_end(txn);
	if (computed > 0)
		log_warn(0, "store", "sortkeys-computed user=%s count=%zu", user_id, computed);
	if (rc == 0) {
		*keys_r = list;
		*count_r = n;
	} else {
		log_error(0, "store", "sortkeys-failed user=%s error=\"%s\"", user_id,
			  store_rc_str(rc));
	}
	return store_rc_status(rc);
}
