/*
 * mime_encode.c - the stored form of a parsed part tree, read in place.
 *
 * Layout v1 (little-endian, no alignment; read with memcpy):
 *   0  "TMS" magic, u8 version = 1
 *   4  u32 nparts (>= 1)
 *   8  u64 msg_size: length of the parsed input all offsets refer to
 *   16 u32 bodystructure_len, 20 u32 body_len, 24 u32 envelope_len,
 *   28 u32 0 (reserved)
 *   32 the top-level BODYSTRUCTURE, BODY and ENVELOPE renderings
 *   then nparts records of 52 bytes, in pre-order (root first):
 *      u64 hdr_off, u64 hdr_len, u64 body_off, u64 body_len,
 *      u64 decoded_size, u32 first_child, u32 next_sibling (0 = none),
 *      u8 kind, u8 encoding, u16 0
 *   The child of a MESSAGE part is its encapsulated message. The record
 *   ends the encoding exactly.
 * Pre-order makes every child and sibling index greater than its own, which
 * the reader checks: walks always terminate and stay inside the table.
 * Failure: MIME_ERR_LIMIT on encode when out's cap is reached;
 * MIME_ERR_CORRUPT on read for any inconsistency (never an out-of-bounds
 * read), MIME_ERR_NOT_FOUND / MIME_ERR_SYNTAX for a bad section.
 */
#include "storage/mime.h"

#include <string.h>

#include "core/buf.h"

#define ENC_VERSION 1
#define ENC_HDR 32
#define ENC_REC 52
#define ENC_MAX_STRING (64u * 1024u * 1024u)

static void
put_u32(unsigned char *d, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		d[i] = (unsigned char)(v >> (8 * i));
}

static void
put_u64(unsigned char *d, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		d[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get_u32(const unsigned char *d)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | d[i];
	return v;
}

static uint64_t
get_u64(const unsigned char *d)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | d[i];
	return v;
}

static uint32_t
count_parts(const struct mime_part *p)
{
	uint32_t n = 1;
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		n += count_parts(c);
	return n;
}

/* Writes p's subtree from index *next; returns p's index. */
static uint32_t
put_records(const struct mime_part *p, unsigned char *table, uint32_t *next)
{
	uint32_t self = (*next)++;
	unsigned char *r = table + (size_t)self * ENC_REC;
	uint32_t prev = 0, first = 0;
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		uint32_t ci = put_records(c, table, next);
		if (first == 0)
			first = ci;
		else
			put_u32(table + (size_t)prev * ENC_REC + 44, ci);
		prev = ci;
	}
	put_u64(r, p->hdr_off);
	put_u64(r + 8, p->hdr_len);
	put_u64(r + 16, p->body_off);
	put_u64(r + 24, p->body_len);
	put_u64(r + 32, p->decoded_size);
	put_u32(r + 40, first);
	/* r + 44 (next sibling) is written by the parent, 0 until then */
	r[48] = (unsigned char)p->kind;
	r[49] = (unsigned char)p->encoding;
	r[50] = 0;
	r[51] = 0;
	return self;
}

int
mime_encode(const struct mime_part *root, struct buf *out)
{
	struct buf s[3];
	int ret = MIME_ERR_LIMIT;
	size_t start = out->len;

	for (int i = 0; i < 3; i++)
		buf_init(&s[i], ENC_MAX_STRING);
	if (mime_render_bodystructure(root, true, &s[0]) < 0 ||
	    mime_render_bodystructure(root, false, &s[1]) < 0 ||
	    mime_render_envelope(root, &s[2]) < 0)
		goto out;

	uint32_t n = count_parts(root);
	size_t strings = s[0].len + s[1].len + s[2].len;
	if ((size_t)n > (SIZE_MAX - ENC_HDR - strings) / ENC_REC)
		goto out;
	size_t total = ENC_HDR + strings + (size_t)n * ENC_REC;
	unsigned char *d = (unsigned char *)buf_reserve(out, total);
	if (d == NULL)
		goto out;
	memset(d, 0, total);
	memcpy(d, "TMS", 3);
	d[3] = ENC_VERSION;
	put_u32(d + 4, n);
	put_u64(d + 8, root->hdr_off + root->hdr_len + root->body_len);
	size_t pos = ENC_HDR;
	for (int i = 0; i < 3; i++) {
		put_u32(d + 16 + 4 * i, (uint32_t)s[i].len);
		if (s[i].len > 0)
			memcpy(d + pos, s[i].data, s[i].len);
		pos += s[i].len;
	}
	uint32_t next = 0;
	put_records(root, d + pos, &next);
	buf_commit(out, total);
	ret = 0;
out:
	if (ret < 0)
		out->len = start;
	for (int i = 0; i < 3; i++)
		buf_free(&s[i]);
	return ret;
}

/* ---- reading ---------------------------------------------------------- */

struct rec {
	uint64_t hdr_off, hdr_len, body_off, body_len, decoded;
	uint32_t first, next;
	enum mime_kind kind;
	enum mime_encoding enc;
};

struct view {
	const unsigned char *d;
	uint32_t n;
	uint64_t msg_size;
	const unsigned char *strings[3];
	uint32_t slen[3];
	const unsigned char *table;
};

static void
get_rec(const struct view *v, uint32_t i, struct rec *r)
{
	const unsigned char *p = v->table + (size_t)i * ENC_REC;
	r->hdr_off = get_u64(p);
	r->hdr_len = get_u64(p + 8);
	r->body_off = get_u64(p + 16);
	r->body_len = get_u64(p + 24);
	r->decoded = get_u64(p + 32);
	r->first = get_u32(p + 40);
	r->next = get_u32(p + 44);
	r->kind = (enum mime_kind)p[48];
	r->enc = (enum mime_encoding)p[49];
}

static bool
span_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* Checks everything once, so the walks below can trust the table. */
static int
view_open(const void *enc, size_t len, struct view *v)
{
	const unsigned char *d = enc;
	if (enc == NULL || len < ENC_HDR || memcmp(d, "TMS", 3) != 0 || d[3] != ENC_VERSION)
		return MIME_ERR_CORRUPT;
	v->d = d;
	v->n = get_u32(d + 4);
	v->msg_size = get_u64(d + 8);
	if (get_u32(d + 28) != 0 || v->n == 0)
		return MIME_ERR_CORRUPT;
	size_t pos = ENC_HDR;
	for (int i = 0; i < 3; i++) {
		v->slen[i] = get_u32(d + 16 + 4 * i);
		if (v->slen[i] > len - pos)
			return MIME_ERR_CORRUPT;
		v->strings[i] = d + pos;
		pos += v->slen[i];
	}
	if ((len - pos) / ENC_REC != v->n || (len - pos) % ENC_REC != 0)
		return MIME_ERR_CORRUPT;
	v->table = d + pos;
	for (uint32_t i = 0; i < v->n; i++) {
		struct rec r;
		get_rec(v, i, &r);
		if (!span_ok(r.hdr_off, r.hdr_len, v->msg_size) ||
		    !span_ok(r.body_off, r.body_len, v->msg_size))
			return MIME_ERR_CORRUPT;
		if ((r.first != 0 && (r.first <= i || r.first >= v->n)) ||
		    (r.next != 0 && (r.next <= i || r.next >= v->n)))
			return MIME_ERR_CORRUPT;
		if (r.kind > MIME_KIND_MESSAGE || r.enc > MIME_ENC_OTHER)
			return MIME_ERR_CORRUPT;
		if ((r.kind != MIME_KIND_LEAF) != (r.first != 0))
			return MIME_ERR_CORRUPT;
		const unsigned char *p = v->table + (size_t)i * ENC_REC;
		if (p[50] != 0 || p[51] != 0)
			return MIME_ERR_CORRUPT;
	}
	struct rec root;
	get_rec(v, 0, &root);
	if (root.next != 0)
		return MIME_ERR_CORRUPT;
	return 0;
}

int
mime_encoded_check(const void *enc, size_t len)
{
	struct view v;
	return view_open(enc, len, &v);
}

static int
get_string(const void *enc, size_t len, int which, const char **s_r, size_t *len_r)
{
	struct view v;
	int ret = view_open(enc, len, &v);
	if (ret < 0)
		return ret;
	*s_r = (const char *)v.strings[which];
	*len_r = v.slen[which];
	return 0;
}

int
mime_encoded_bodystructure(const void *enc, size_t len, const char **s_r, size_t *len_r)
{
	return get_string(enc, len, 0, s_r, len_r);
}

int
mime_encoded_body(const void *enc, size_t len, const char **s_r, size_t *len_r)
{
	return get_string(enc, len, 1, s_r, len_r);
}

int
mime_encoded_envelope(const void *enc, size_t len, const char **s_r, size_t *len_r)
{
	return get_string(enc, len, 2, s_r, len_r);
}

int
mime_encoded_msg_size(const void *enc, size_t len, uint64_t *size_r)
{
	struct view v;
	int ret = view_open(enc, len, &v);
	if (ret < 0)
		return ret;
	*size_r = v.msg_size;
	return 0;
}

/* The n-th (1-based) child of record i, or 0. */
static uint32_t
nth_child(const struct view *v, uint32_t i, uint32_t n)
{
	struct rec r;
	get_rec(v, i, &r);
	uint32_t c = r.first;
	while (c != 0 && --n > 0) {
		get_rec(v, c, &r);
		c = r.next;
	}
	return c;
}

int
mime_section_find(const void *enc, size_t len, const char *section, struct mime_section *r)
{
	struct view v;
	int ret = view_open(enc, len, &v);
	if (ret < 0)
		return ret;

	/* idx is a part; at_msg: it stands for a message whose part numbers
	 * are being resolved (the root, or a message/rfc822 child) */
	uint32_t idx = 0;
	bool at_msg = true;
	const char *s = section;
	while (*s != '\0') {
		uint32_t num = 0;
		if (*s < '1' || *s > '9')
			return MIME_ERR_SYNTAX;
		while (*s >= '0' && *s <= '9') {
			if (num > (UINT32_MAX - 9) / 10)
				return MIME_ERR_NOT_FOUND;
			num = num * 10 + (uint32_t)(*s++ - '0');
		}
		if (*s == '.') {
			s++;
			if (*s == '\0')
				return MIME_ERR_SYNTAX;
		} else if (*s != '\0') {
			return MIME_ERR_SYNTAX;
		}
		struct rec cur;
		get_rec(&v, idx, &cur);
		if (!at_msg) {
			if (cur.kind == MIME_KIND_MESSAGE) {
				idx = cur.first; /* into the encapsulated message */
				at_msg = true;
				get_rec(&v, idx, &cur);
			} else if (cur.kind != MIME_KIND_MULTIPART) {
				return MIME_ERR_NOT_FOUND;
			}
		}
		if (cur.kind == MIME_KIND_MULTIPART) {
			idx = nth_child(&v, idx, num);
			if (idx == 0)
				return MIME_ERR_NOT_FOUND;
		} else if (num != 1) {
			/* a non-multipart message has only part 1: itself */
			return MIME_ERR_NOT_FOUND;
		}
		at_msg = false;
	}

	struct rec p;
	get_rec(&v, idx, &p);
	memset(r, 0, sizeof(*r));
	r->kind = p.kind;
	r->encoding = p.enc;
	r->hdr_off = p.hdr_off;
	r->hdr_len = p.hdr_len;
	r->body_off = p.body_off;
	r->body_len = p.body_len;
	r->decoded_size = p.decoded;
	r->hdr_is_top = idx == 0;
	if (section[0] == '\0') {
		r->has_message = true;
		r->msg_hdr_off = p.hdr_off;
		r->msg_hdr_len = p.hdr_len;
		r->msg_body_off = p.body_off;
		r->msg_body_len = p.body_len;
		r->msg_hdr_is_top = true;
	} else if (p.kind == MIME_KIND_MESSAGE) {
		struct rec m;
		get_rec(&v, p.first, &m);
		r->has_message = true;
		r->msg_hdr_off = m.hdr_off;
		r->msg_hdr_len = m.hdr_len;
		r->msg_body_off = m.body_off;
		r->msg_body_len = m.body_len;
	}
	return 0;
}
