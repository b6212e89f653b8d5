/*
 * imap_fetch.c - IMAP FETCH and UID FETCH (RFC 9051 6.4.5 and 7.5.2,
 * RFC 3501 6.4.5), with BINARY (RFC 3516), EMAILID/THREADID (RFC 8474),
 * SAVEDATE (RFC 8514) and the CONDSTORE MODSEQ item and CHANGEDSINCE
 * modifier (RFC 7162).
 *
 * A command runs in three steps: parse every item (any error is a BAD
 * before anything is sent), read the flags, dates and sizes of the
 * messages asked for (store_message_infos: one lookup per UID run, not a
 * listing of the mailbox), then, if a non-PEEK body item reads messages
 * of a read-write mailbox that lack \Seen, set it with one asynchronous
 * store_flags and continue from its completion. Each message's response
 * is then prepared whole (text in one buffer, body data in buffers of
 * their own, read with store_message_read_range using the MIME structure
 * stored at delivery, never re-parsing the message) and written only once
 * complete, so a message expunged under our feet is skipped cleanly (RFC
 * 9051 allows it) instead of leaving half a response on the wire. Between messages the
 * output is flow-controlled: past FETCH_OUT_HIGH bytes waiting to be
 * sent the command goes asynchronous and resumes when the client has read
 * them (conn_on_drain), so memory stays near one message however much is
 * fetched; a client that disconnects meanwhile ends the command there.
 *
 * How it fails: a malformed item list, an unknown item or a message
 * number past the end is a BAD; a part with an unknown transfer encoding
 * asked for as BINARY ends the command with NO [UNKNOWN-CTE] (responses
 * already sent stay); a store error ends it with NO [UNAVAILABLE].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_qresync.h"
#include "storage/mailtext.h"
#include "storage/mime.h"

enum fetch_kind {
	FI_FLAGS,
	FI_INTERNALDATE,
	FI_SIZE,
	FI_ENVELOPE,
	FI_BODY, /* non-extensible BODYSTRUCTURE */
	FI_BODYSTRUCTURE,
	FI_UID,
	FI_MODSEQ,
	FI_EMAILID,
	FI_THREADID,
	FI_SAVEDATE,
	FI_PREVIEW, /* RFC 8970 */
	FI_SECTION, /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER/TEXT */
	FI_BINARY,  /* BINARY[...], BINARY.PEEK[...] */
	FI_BINARY_SIZE,
};

enum sect_text {
	ST_ALL, /* the part itself (or the whole message for "") */
	ST_HEADER,
	ST_FIELDS,
	ST_FIELDS_NOT,
	ST_TEXT,
	ST_MIME,
};

struct fetch_item {
	enum fetch_kind kind;
	const char *name; /* in the response: "BODY[1.TEXT]", "RFC822" */
	const char *part; /* "", "1", "2.1" */
	enum sect_text text;
	const char **fields; /* HEADER.FIELDS(.NOT) names */
	size_t *field_lens;
	size_t nfields;
	bool partial;
	uint64_t origin, octets;
	bool sets_seen;
};

struct fetch_ctx {
	struct store_flags sf; /* first: the request pointer is the context */
	struct imap_session *s;
	struct fetch_item *items;
	size_t nitems;
	uint32_t *uids;
	size_t nuids;
	bool any_seen;		      /* some item sets \Seen */
	bool modseq;		      /* MODSEQ in every response (CONDSTORE) */
	uint64_t changedsince;	      /* 0: none */
	bool vanished;		      /* VANISHED modifier (QRESYNC) */
	struct store_msg_info *infos; /* those of uids that exist, UID order */
	size_t ninfos;
	bool *flags_changed;	      /* per info: \Seen was set by this command */
	bool has_flags;		      /* FLAGS is one of the items */
	struct store_msg_info *shown; /* the infos whose FLAGS were sent */
	size_t nshown;
	/* Progress of the responses, kept while the command waits for the
	 * client to read (everything here is in the command arena, which
	 * lives until the tagged reply). */
	size_t next;   /* index in uids of the next message to answer for */
	int status;    /* STORE_OK, or what ends the command */
	bool expunged; /* some message was gone meanwhile */
	bool async;    /* this command holds imap_async_begin() */
};

/* Output flow control: responses stop being queued while more than
 * FETCH_OUT_HIGH bytes wait to be sent, and go on once the client has
 * read them down to FETCH_OUT_LOW; so a FETCH of a whole big mailbox
 * holds about one message plus FETCH_OUT_HIGH, not the mailbox. */
#define FETCH_OUT_HIGH (1u << 20)
#define FETCH_OUT_LOW (256u << 10)

/* ---- parsing the items ---- */

static bool
is_atom_char(char c)
{
	/* ATOM-CHAR: no atom-specials ( ) { SP CTL % * " \ ] and 8-bit. */
	unsigned char u = (unsigned char)c;
	return u > 0x20 && u < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

/* An nz-number or number64 at *p; -1 if none or it overflows. */
static int
parse_u64(const char **p, uint64_t *n_r)
{
	const char *s = *p;
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
		s++;
	}
	*p = s;
	*n_r = n;
	return 0;
}

static bool
prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* header-list: "(" header-fld-name *(SP header-fld-name) ")", names being
 * atoms or quoted strings. Fills it->fields; appends the canonical list to
 * name. *p is at "(" and moves past ")". */
static int
parse_header_list(struct arena *a, const char **p, struct fetch_item *it, struct buf *name)
{
	const char *s = *p;
	size_t cap = 1;

	if (*s != '(')
		return -1;
	for (const char *q = s; *q != '\0' && *q != ')'; q++)
		cap += *q == ' ';
	it->fields = arena_alloc(a, cap * sizeof(*it->fields));
	it->field_lens = arena_alloc(a, cap * sizeof(*it->field_lens));
	buf_append_str(name, " (");
	s++;
	for (;;) {
		struct buf f;
		bool quoted = *s == '"';
		buf_init(&f, 1024);
		if (quoted) {
			s++;
			while (*s != '"') {
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				if (*s == '\0' || *s == '\r' || *s == '\n' ||
				    buf_append(&f, s, 1) < 0) {
					buf_free(&f);
					return -1;
				}
				s++;
			}
			s++;
		} else {
			while (is_atom_char(*s) || *s == ']') {
				if (buf_append(&f, s, 1) < 0) {
					buf_free(&f);
					return -1;
				}
				s++;
			}
		}
		/* A field name is printable US-ASCII without ':' (RFC 5322). */
		bool ok = f.len > 0 && it->nfields < cap;
		for (size_t i = 0; ok && i < f.len; i++)
			ok = f.data[i] > 0x20 && f.data[i] < 0x7f && f.data[i] != ':';
		if (!ok) {
			buf_free(&f);
			return -1;
		}
		it->fields[it->nfields] = arena_strndup(a, f.data, f.len);
		it->field_lens[it->nfields] = f.len;
		if (it->nfields > 0)
			buf_append_str(name, " ");
		bool atom = true;
		for (size_t i = 0; i < f.len; i++)
			atom = atom && is_atom_char(f.data[i]);
		if (atom)
			buf_append(name, f.data, f.len);
		else
			imap_append_string(name, f.data, f.len, false);
		it->nfields++;
		buf_free(&f);
		if (*s == ')')
			break;
		if (*s != ' ')
			return -1;
		s++;
	}
	buf_append_str(name, ")");
	*p = s + 1;
	return 0;
}

/* The inside of "[...]": section-spec (BODY) or section-part (BINARY). */
static int
parse_section(struct arena *a, const char *s, size_t len, bool binary, struct fetch_item *it,
	      struct buf *name)
{
	const char *sect = arena_strndup(a, s, len);
	const char *p = sect;
	const char *part_end = sect;

	/* section-part: nz-number *("." nz-number) */
	while (*p >= '1' && *p <= '9') {
		uint64_t n;
		if (parse_u64(&p, &n) < 0 || n > UINT32_MAX)
			return -1;
		part_end = p;
		if (*p != '.')
			break;
		p++;
		if (*p == '\0')
			return -1;
	}
	it->part = arena_strndup(a, sect, (size_t)(part_end - sect));
	buf_append_str(name, it->part);
	if (*p == '\0') {
		it->text = ST_ALL;
		return 0;
	}
	if (binary)
		return -1; /* section-binary is a part path only */
	if (it->part[0] != '\0')
		buf_append_str(name, ".");
	if (prefix_ci(p, "HEADER.FIELDS.NOT ")) {
		it->text = ST_FIELDS_NOT;
		buf_append_str(name, "HEADER.FIELDS.NOT");
		p += strlen("HEADER.FIELDS.NOT ");
	} else if (prefix_ci(p, "HEADER.FIELDS ")) {
		it->text = ST_FIELDS;
		buf_append_str(name, "HEADER.FIELDS");
		p += strlen("HEADER.FIELDS ");
	} else if (strcasecmp(p, "HEADER") == 0) {
		it->text = ST_HEADER;
		buf_append_str(name, "HEADER");
		return 0;
	} else if (strcasecmp(p, "TEXT") == 0) {
		it->text = ST_TEXT;
		buf_append_str(name, "TEXT");
		return 0;
	} else if (strcasecmp(p, "MIME") == 0 && it->part[0] != '\0') {
		it->text = ST_MIME;
		buf_append_str(name, "MIME");
		return 0;
	} else {
		return -1;
	}
	if (parse_header_list(a, &p, it, name) < 0 || *p != '\0')
		return -1;
	return 0;
}

/* BODY[...]<o.n>, BODY.PEEK[...], BINARY[...], BINARY.PEEK[...],
 * BINARY.SIZE[...]; str starts at the "[". */
static int
parse_section_item(struct arena *a, const char *str, const char *prefix, struct fetch_item *it)
{
	const char *rb = strrchr(str, ']');
	struct buf name;
	int r = -1;

	if (str[0] != '[' || rb == NULL)
		return -1;
	buf_init(&name, 4096);
	buf_append_str(&name, prefix);
	buf_append_str(&name, "[");
	if (parse_section(a, str + 1, (size_t)(rb - str - 1), it->kind != FI_SECTION, it, &name) <
	    0)
		goto out;
	buf_append_str(&name, "]");
	const char *p = rb + 1;
	if (*p == '<') {
		if (it->kind == FI_BINARY_SIZE)
			goto out;
		p++;
		if (parse_u64(&p, &it->origin) < 0 || *p != '.')
			goto out;
		p++;
		if (parse_u64(&p, &it->octets) < 0 || it->octets == 0 || *p != '>')
			goto out;
		p++;
		it->partial = true;
		/* RFC 9051: BODY[...]<origin>; the BINARY response has no
		 * origin in the ABNF (msg-att-static). */
		if (it->kind == FI_SECTION)
			buf_printf(&name, "<%" PRIu64 ">", it->origin);
	}
	if (*p != '\0')
		goto out;
	it->name = arena_strndup(a, name.data, name.len);
	r = 0;
out:
	buf_free(&name);
	return r;
}

/* One fetch-att atom into it; -1 if it is not one. */
static int
parse_item(struct arena *a, const struct imap_arg *arg, struct fetch_item *it)
{
	static const struct {
		const char *name;
		enum fetch_kind kind;
	} simple[] = {
	    {"FLAGS", FI_FLAGS},       {"INTERNALDATE", FI_INTERNALDATE},
	    {"RFC822.SIZE", FI_SIZE},  {"ENVELOPE", FI_ENVELOPE},
	    {"BODY", FI_BODY},	       {"BODYSTRUCTURE", FI_BODYSTRUCTURE},
	    {"UID", FI_UID},	       {"MODSEQ", FI_MODSEQ},
	    {"EMAILID", FI_EMAILID},   {"THREADID", FI_THREADID},
	    {"SAVEDATE", FI_SAVEDATE}, {"PREVIEW", FI_PREVIEW},
	};
	const char *s = arg->str;

	memset(it, 0, sizeof(*it));
	if (arg->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(simple); i++) {
		if (strcasecmp(s, simple[i].name) == 0) {
			it->kind = simple[i].kind;
			it->name = simple[i].name;
			return 0;
		}
	}
	/* RFC 3501's RFC822 items: BODY[], BODY.PEEK[HEADER], BODY[TEXT]
	 * under their own names. */
	it->kind = FI_SECTION;
	it->part = "";
	if (strcasecmp(s, "RFC822") == 0) {
		it->name = "RFC822";
		it->sets_seen = true;
		return 0;
	}
	if (strcasecmp(s, "RFC822.HEADER") == 0) {
		it->name = "RFC822.HEADER";
		it->text = ST_HEADER;
		return 0;
	}
	if (strcasecmp(s, "RFC822.TEXT") == 0) {
		it->name = "RFC822.TEXT";
		it->text = ST_TEXT;
		it->sets_seen = true;
		return 0;
	}
	if (prefix_ci(s, "BODY.PEEK["))
		return parse_section_item(a, s + 9, "BODY", it);
	if (prefix_ci(s, "BODY[")) {
		it->sets_seen = true;
		return parse_section_item(a, s + 4, "BODY", it);
	}
	it->kind = FI_BINARY;
	if (prefix_ci(s, "BINARY.PEEK["))
		return parse_section_item(a, s + 11, "BINARY", it);
	if (prefix_ci(s, "BINARY[")) {
		it->sets_seen = true;
		return parse_section_item(a, s + 6, "BINARY", it);
	}
	it->kind = FI_BINARY_SIZE;
	if (prefix_ci(s, "BINARY.SIZE["))
		return parse_section_item(a, s + 11, "BINARY.SIZE", it);
	return -1;
}

/* The item list: a macro, one item, or a parenthesised list. */
static int
parse_items(struct fetch_ctx *f, struct arena *a, const struct imap_arg *arg, bool uid_cmd)
{
	static const char *const all[] = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
					  "BODY"};
	const struct imap_arg *list = arg;
	size_t n = 1;
	struct imap_arg macro[ARRAY_SIZE(all)];

	if (arg->type == IMAP_ARG_LIST) {
		list = arg->list;
		n = arg->count;
		if (n == 0)
			return -1;
	} else if (imap_arg_is_atom_ci(arg, "ALL") || imap_arg_is_atom_ci(arg, "FAST") ||
		   imap_arg_is_atom_ci(arg, "FULL")) {
		/* FAST = FLAGS INTERNALDATE RFC822.SIZE; ALL adds ENVELOPE;
		 * FULL adds BODY. */
		n = imap_arg_is_atom_ci(arg, "FAST") ? 3 : imap_arg_is_atom_ci(arg, "ALL") ? 4 : 5;
		for (size_t i = 0; i < n; i++) {
			macro[i] = (struct imap_arg){
			    .type = IMAP_ARG_ATOM, .str = all[i], .len = strlen(all[i])};
		}
		list = macro;
	}
	/* UID FETCH answers with the UID whether asked or not (first). */
	f->items = arena_alloc(a, (n + 1) * sizeof(*f->items));
	if (uid_cmd) {
		f->items[0] = (struct fetch_item){.kind = FI_UID, .name = "UID"};
		f->nitems = 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct fetch_item *it = &f->items[f->nitems];
		if (parse_item(a, &list[i], it) < 0)
			return -1;
		/* RFC 8970: PREVIEW [(LAZY)]; LAZY may be ignored (a preview
		 * is always made at once), an unknown modifier is BAD. */
		if (it->kind == FI_PREVIEW && i + 1 < n && list[i + 1].type == IMAP_ARG_LIST) {
			const struct imap_arg *mods = &list[i + 1];
			if (mods->count == 0)
				return -1;
			for (size_t k = 0; k < mods->count; k++)
				if (!imap_arg_is_atom_ci(&mods->list[k], "LAZY"))
					return -1;
			i++;
		}
		if (it->kind == FI_UID && uid_cmd)
			continue;
		if (it->kind == FI_MODSEQ)
			f->modseq = true;
		f->any_seen |= it->sets_seen;
		f->nitems++;
	}
	return 0;
}

/* Modifiers (RFC 4466 fetch-modifier): CHANGEDSINCE <modseq> and
 * VANISHED (RFC 7162 3.2.6), each at most once. */
static int
parse_modifiers(struct fetch_ctx *f, const struct imap_arg *arg)
{
	if (arg->type != IMAP_ARG_LIST || arg->count == 0)
		return -1;
	for (size_t i = 0; i < arg->count; i++) {
		if (imap_arg_is_atom_ci(&arg->list[i], "CHANGEDSINCE") && i + 1 < arg->count &&
		    arg->list[i + 1].type == IMAP_ARG_ATOM && f->changedsince == 0) {
			/* mod-sequence-value: CHANGEDSINCE 0 is not valid. */
			const struct imap_arg *v = &arg->list[i + 1];
			if (imap_modseq_parse(v->str, v->len, false, &f->changedsince) < 0)
				return -1;
			f->modseq = true;
			i++;
			continue;
		}
		if (imap_arg_is_atom_ci(&arg->list[i], "VANISHED") && !f->vanished) {
			f->vanished = true;
			continue;
		}
		return -1;
	}
	return 0;
}

/* ---- transfer decoding for BINARY ---- */

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Base64 by mime.h's rule: every alphabet character counts, everything
 * else ('=' included) is skipped, so the length is BINARY.SIZE's. */
static int
decode_base64(const char *in, size_t len, struct buf *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;

	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (buf_putc(out, (char)((acc >> bits) & 0xff)) < 0)
				return -1;
		}
	}
	return 0;
}

/* Quoted-printable by mime.h's rule: "=XX" is a byte, "=" (and blanks) at
 * a line end is a soft break, blanks at a line end go, any other "=" is
 * kept as written, hard line breaks stay as written (CRLF or LF). */
static int
decode_qp(const char *in, size_t len, struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		/* One line: [i, eol) and its break [eol, next). */
		size_t eol = i;
		while (eol < len && in[eol] != '\n')
			eol++;
		size_t next = eol < len ? eol + 1 : len;
		if (eol < len && eol > i && in[eol - 1] == '\r')
			eol--;
		size_t end = eol;
		while (end > i && (in[end - 1] == ' ' || in[end - 1] == '\t'))
			end--;
		bool soft = false;
		for (size_t j = i; j < end; j++) {
			unsigned char c = (unsigned char)in[j];
			if (c != '=') {
				if (buf_putc(out, (char)c) < 0)
					return -1;
				continue;
			}
			if (j + 1 == end) {
				soft = true; /* "=" then only blanks: soft break */
				break;
			}
			int h = hexval((unsigned char)in[j + 1]);
			int l = j + 2 < end ? hexval((unsigned char)in[j + 2]) : -1;
			if (h >= 0 && l >= 0) {
				if (buf_putc(out, (char)(h << 4 | l)) < 0)
					return -1;
				j += 2;
			} else if (buf_putc(out, '=') < 0) {
				return -1;
			}
		}
		if (!soft && next > eol && buf_append(out, in + eol, next - eol) < 0)
			return -1;
		i = next;
	}
	return 0;
}

/* ---- one message ---- */

/* The response being prepared for one message: text in b, with body
 * data (written as literals straight from their own buffers) cut in at
 * recorded offsets. */
struct resp {
	struct buf b;
	struct cut {
		size_t at;
		struct buf *data;
	} * cuts;
	size_t ncuts, capcuts;
	struct arena *a; /* per message */
	const void *mime;
	size_t mime_len;
	size_t trace_len;
	uint64_t data_max;
};

static struct buf *
resp_data(struct resp *r)
{
	struct buf *d = arena_alloc(r->a, sizeof(*d));
	buf_init(d, r->data_max);
	return d;
}

/* Appends data as a string: "" when empty, else a literal (literal8 when
 * it holds a NUL and binary is allowed) cut into the text. */
static void
resp_literal(struct resp *r, struct buf *d, bool binary)
{
	if (d->len == 0) {
		buf_append_str(&r->b, "\"\"");
		return;
	}
	bool nul = binary && memchr(d->data, '\0', d->len) != NULL;
	buf_printf(&r->b, "%s{%zu}\r\n", nul ? "~" : "", d->len);
	if (r->ncuts == r->capcuts) {
		size_t cap = r->capcuts == 0 ? 4 : r->capcuts * 2;
		struct cut *c = arena_alloc(r->a, cap * sizeof(*c));
		if (r->ncuts > 0)
			memcpy(c, r->cuts, r->ncuts * sizeof(*c));
		r->cuts = c;
		r->capcuts = cap;
	}
	r->cuts[r->ncuts].at = r->b.len;
	r->cuts[r->ncuts].data = d;
	r->ncuts++;
}

static void
resp_free(struct resp *r)
{
	for (size_t i = 0; i < r->ncuts; i++)
		buf_free(r->cuts[i].data);
	r->ncuts = r->capcuts = 0;
	r->cuts = NULL;
	buf_reset(&r->b);
	r->mime = NULL;
	arena_clear(r->a);
}

static void
resp_send(struct imap_session *s, struct resp *r)
{
	size_t from = 0;

	for (size_t i = 0; i < r->ncuts; i++) {
		imap_write(s, r->b.data + from, r->cuts[i].at - from);
		imap_write(s, r->cuts[i].data->data, r->cuts[i].data->len);
		from = r->cuts[i].at;
	}
	imap_write(s, r->b.data + from, r->b.len - from);
}

/* " dd-Mon-yyyy hh:mm:ss +zzzz" quoted, in the server's time zone. */
static void
append_date(struct buf *b, time_t t)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL) {
		buf_append_str(b, "\"01-Jan-1970 00:00:00 +0000\"");
		return;
	}
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	buf_printf(b, "\"%02d-%s-%04d %02d:%02d:%02d %c%02ld%02ld\"", tm.tm_mday, mon[tm.tm_mon],
		   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

/* Does the header line starting at line (a field's first line) name one
 * of the item's fields? */
static bool
field_listed(const struct fetch_item *it, const char *line, size_t len)
{
	size_t n = 0;

	while (n < len && line[n] != ':')
		n++;
	if (n == len)
		return false; /* not a field: never listed */
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--; /* obsolete "Name :" */
	for (size_t i = 0; i < it->nfields; i++)
		if (it->field_lens[i] == n && strncasecmp(it->fields[i], line, n) == 0)
			return true;
	return false;
}

/* HEADER.FIELDS(.NOT): the selected fields of hdr, folded lines included,
 * in their original order and bytes, then the empty line. */
static int
filter_header(const struct fetch_item *it, const char *hdr, size_t len, struct buf *out)
{
	size_t i = 0;
	bool keep = false;

	while (i < len) {
		size_t e = i;
		while (e < len && hdr[e] != '\n')
			e++;
		size_t next = e < len ? e + 1 : len;
		size_t content = e > i && hdr[e - 1] == '\r' ? e - 1 : e;
		if (content == i)
			break; /* the empty line ending the header */
		if (hdr[i] != ' ' && hdr[i] != '\t') {
			bool listed = field_listed(it, hdr + i, content - i);
			/* A line without a colon is no field: in neither set. */
			keep = memchr(hdr + i, ':', content - i) != NULL &&
			       (it->text == ST_FIELDS ? listed : !listed);
		}
		if (keep) {
			if (buf_append(out, hdr + i, content - i) < 0 ||
			    buf_append(out, "\r\n", 2) < 0)
				return -1;
		}
		i = next;
	}
	return buf_append(out, "\r\n", 2);
}

/* Reads [off, off + len) of the message (cut to the partial window). */
static int
read_part(struct imap_session *s, uint32_t uid, uint64_t off, uint64_t len,
	  const struct fetch_item *it, struct buf *out)
{
	if (it->partial) {
		if (it->origin >= len)
			return STORE_OK;
		off += it->origin;
		len -= it->origin;
		if (len > it->octets)
			len = it->octets;
	}
	if (len == 0)
		return STORE_OK;
	return store_message_read_range(s->view->owner, s->view->name, uid, off, len, out);
}

/* Applies the partial window to data already in d. */
static void
apply_partial(const struct fetch_item *it, struct buf *d)
{
	if (!it->partial)
		return;
	if (it->origin >= d->len) {
		buf_reset(d);
		return;
	}
	buf_consume(d, (size_t)it->origin);
	if (d->len > it->octets) {
		d->len = (size_t)it->octets;
		d->data[d->len] = '\0';
	}
}

static int
load_mime(struct imap_session *s, uint32_t uid, struct resp *r)
{
	if (r->mime != NULL)
		return STORE_OK;
	return store_message_mime(s->view->owner, s->view->name, uid, r->a, &r->mime, &r->mime_len,
				  &r->trace_len);
}

/* Offsets of a header as the client sees it: the trace lines are part of
 * the top-level header. */
static void
header_range(const struct resp *r, uint64_t off, uint64_t len, bool top, uint64_t *off_r,
	     uint64_t *len_r)
{
	*off_r = top ? off : off + r->trace_len;
	*len_r = top ? len + r->trace_len : len;
}

/* Reads for the preview's text extraction (storage/mailtext_msg.c). */
struct preview_rd {
	struct imap_session *s;
	uint32_t uid;
};

static int
preview_read(void *arg, uint64_t off, uint64_t len, struct buf *out)
{
	struct preview_rd *p = arg;
	return store_message_read_range(p->s->view->owner, p->s->view->name, p->uid, off, len,
					out) == STORE_OK
		   ? 0
		   : -1;
}

#define PREVIEW_CHARS 256 /* RFC 8970 3.1: at most 256 characters */

/* PREVIEW "text" (RFC 8970): UTF-8, as a literal for a client that has
 * not enabled UTF8=ACCEPT when it holds 8-bit characters. */
static int
item_preview(struct imap_session *s, const struct store_msg_info *m, struct resp *r)
{
	struct preview_rd rd = {s, m->uid};
	struct buf text;
	int ret;

	if ((ret = load_mime(s, m->uid, r)) != STORE_OK)
		return ret;
	buf_init(&text, 4 * PREVIEW_CHARS + 4);
	mailtext_msg_preview(r->mime, r->mime_len, r->trace_len, preview_read, &rd, r->a,
			     PREVIEW_CHARS, &text);
	buf_append_str(&r->b, "PREVIEW ");
	ret = imap_append_string(&r->b, text.data != NULL ? text.data : "", text.len, s->utf8);
	buf_free(&text);
	return ret < 0 ? STORE_TEMPFAIL : STORE_OK;
}

#define ITEM_NIL 1 /* the section does not exist: NIL */
#define ITEM_UNKNOWN_CTE 2

/* BODY[...] and the RFC822 items. 0, ITEM_NIL or a STORE_* status. */
static int
item_section(struct imap_session *s, const struct store_msg_info *m, const struct fetch_item *it,
	     struct resp *r, struct buf *d)
{
	struct mime_section sec;
	uint64_t off, len;
	int ret;

	if (it->part[0] == '\0' && it->text == ST_ALL)
		return read_part(s, m->uid, 0, m->size, it, d);
	if ((ret = load_mime(s, m->uid, r)) != STORE_OK)
		return ret;
	ret = mime_section_find(r->mime, r->mime_len, it->part, &sec);
	if (ret == MIME_ERR_NOT_FOUND)
		return ITEM_NIL;
	if (ret < 0)
		return STORE_PERMFAIL;
	switch (it->text) {
	case ST_ALL:
		return read_part(s, m->uid, sec.body_off + r->trace_len, sec.body_len, it, d);
	case ST_MIME:
		header_range(r, sec.hdr_off, sec.hdr_len, sec.hdr_is_top, &off, &len);
		return read_part(s, m->uid, off, len, it, d);
	case ST_TEXT:
		if (!sec.has_message)
			return ITEM_NIL;
		return read_part(s, m->uid, sec.msg_body_off + r->trace_len, sec.msg_body_len, it,
				 d);
	case ST_HEADER:
	case ST_FIELDS:
	case ST_FIELDS_NOT:
		if (!sec.has_message)
			return ITEM_NIL;
		header_range(r, sec.msg_hdr_off, sec.msg_hdr_len, sec.msg_hdr_is_top, &off, &len);
		if (it->text == ST_HEADER)
			return read_part(s, m->uid, off, len, it, d);
		struct buf hdr;
		buf_init(&hdr, r->data_max);
		ret =
		    store_message_read_range(s->view->owner, s->view->name, m->uid, off, len, &hdr);
		if (ret == STORE_OK &&
		    filter_header(it, hdr.data != NULL ? hdr.data : "", hdr.len, d) < 0)
			ret = STORE_TEMPFAIL;
		buf_free(&hdr);
		if (ret == STORE_OK)
			apply_partial(it, d);
		return ret;
	}
	return STORE_PERMFAIL;
}

/* BINARY[...] (data into d) or BINARY.SIZE[...] (*size_r). */
static int
item_binary(struct imap_session *s, const struct store_msg_info *m, const struct fetch_item *it,
	    struct resp *r, struct buf *d, uint64_t *size_r)
{
	struct mime_section sec;
	int ret;

	if (it->part[0] == '\0') {
		/* The whole message has no transfer encoding of its own to
		 * undo: it is sent as stored. */
		*size_r = m->size;
		return it->kind == FI_BINARY ? read_part(s, m->uid, 0, m->size, it, d) : STORE_OK;
	}
	if ((ret = load_mime(s, m->uid, r)) != STORE_OK)
		return ret;
	ret = mime_section_find(r->mime, r->mime_len, it->part, &sec);
	if (ret == MIME_ERR_NOT_FOUND)
		return ITEM_NIL;
	if (ret < 0)
		return STORE_PERMFAIL;
	/* Only a leaf has a transfer encoding to undo (mime.h keeps
	 * multiparts and messages at their declared identity encodings). */
	enum mime_encoding enc = sec.kind == MIME_KIND_LEAF ? sec.encoding : MIME_ENC_7BIT;
	if (enc == MIME_ENC_OTHER)
		return ITEM_UNKNOWN_CTE;
	bool decode = enc == MIME_ENC_BASE64 || enc == MIME_ENC_QP;
	*size_r = decode ? sec.decoded_size : sec.body_len;
	if (it->kind == FI_BINARY_SIZE)
		return STORE_OK;
	if (!decode)
		return read_part(s, m->uid, sec.body_off + r->trace_len, sec.body_len, it, d);
	struct buf raw;
	buf_init(&raw, r->data_max);
	ret = store_message_read_range(s->view->owner, s->view->name, m->uid,
				       sec.body_off + r->trace_len, sec.body_len, &raw);
	if (ret == STORE_OK) {
		const char *in = raw.data != NULL ? raw.data : "";
		if ((enc == MIME_ENC_BASE64 ? decode_base64(in, raw.len, d)
					    : decode_qp(in, raw.len, d)) < 0)
			ret = STORE_TEMPFAIL;
	}
	buf_free(&raw);
	if (ret == STORE_OK)
		apply_partial(it, d);
	return ret;
}

/* Prepares the response for one message into r. 0, ITEM_UNKNOWN_CTE, or
 * a STORE_* status (STORE_NOTFOUND: expunged meanwhile). */
static int
prepare(struct fetch_ctx *f, const struct store_msg_info *m, bool flags_changed, struct resp *r)
{
	struct imap_session *s = f->s;
	uint32_t seq = imap_view_seq(s->view, m->uid);
	bool flags_done = false;
	const char *str;
	size_t len;
	int ret;

	buf_printf(&r->b, "* %" PRIu32 " FETCH (", seq);
	for (size_t i = 0; i < f->nitems; i++) {
		const struct fetch_item *it = &f->items[i];
		if (i > 0)
			buf_append_str(&r->b, " ");
		switch (it->kind) {
		case FI_FLAGS:
			buf_append_str(&r->b, "FLAGS (");
			imap_append_flags(&r->b, m->flags, m->keywords, m->nkeywords,
					  !s->rev2 && imap_view_is_recent(s->view, m->uid));
			buf_append_str(&r->b, ")");
			flags_done = true;
			break;
		case FI_INTERNALDATE:
			buf_append_str(&r->b, "INTERNALDATE ");
			append_date(&r->b, m->internal_date);
			break;
		case FI_SAVEDATE:
			buf_append_str(&r->b, "SAVEDATE ");
			if (m->save_date != 0)
				append_date(&r->b, m->save_date);
			else
				buf_append_str(&r->b, "NIL");
			break;
		case FI_SIZE:
			buf_printf(&r->b, "RFC822.SIZE %" PRIu64, m->size);
			break;
		case FI_UID:
			buf_printf(&r->b, "UID %" PRIu32, m->uid);
			break;
		case FI_MODSEQ:
			buf_printf(&r->b, "MODSEQ (%" PRIu64 ")", m->modseq);
			break;
		case FI_EMAILID:
			buf_printf(&r->b, "EMAILID (E%016" PRIx64 ")", m->email_id);
			break;
		case FI_PREVIEW:
			if ((ret = item_preview(s, m, r)) != STORE_OK)
				return ret;
			break;
		case FI_THREADID:
			/* XXX no threads are computed: RFC 8474 allows NIL. */
			buf_append_str(&r->b, "THREADID NIL");
			break;
		case FI_ENVELOPE:
		case FI_BODY:
		case FI_BODYSTRUCTURE:
			if ((ret = load_mime(s, m->uid, r)) != STORE_OK)
				return ret;
			ret = it->kind == FI_ENVELOPE
				  ? mime_encoded_envelope(r->mime, r->mime_len, &str, &len)
			      : it->kind == FI_BODY
				  ? mime_encoded_body(r->mime, r->mime_len, &str, &len)
				  : mime_encoded_bodystructure(r->mime, r->mime_len, &str, &len);
			if (ret < 0)
				return STORE_PERMFAIL;
			buf_printf(&r->b, "%s ", it->name);
			buf_append(&r->b, str, len);
			break;
		case FI_SECTION:
		case FI_BINARY:
		case FI_BINARY_SIZE: {
			struct buf *d = resp_data(r);
			uint64_t size = 0;
			ret = it->kind == FI_SECTION ? item_section(s, m, it, r, d)
						     : item_binary(s, m, it, r, d, &size);
			if (ret == ITEM_UNKNOWN_CTE || ret < 0) {
				buf_free(d);
				return ret;
			}
			buf_printf(&r->b, "%s ", it->name);
			if (ret == ITEM_NIL) {
				buf_free(d);
				buf_append_str(&r->b, "NIL");
			} else if (it->kind == FI_BINARY_SIZE) {
				buf_free(d);
				buf_printf(&r->b, "%" PRIu64, size);
			} else {
				resp_literal(r, d, it->kind == FI_BINARY);
				if (d->len == 0)
					buf_free(d);
			}
			break;
		}
		}
	}
	/* RFC 9051 6.4.5: the \Seen this FETCH set is reported with it. */
	if (flags_changed && !flags_done) {
		buf_append_str(&r->b, " FLAGS (");
		imap_append_flags(&r->b, m->flags, m->keywords, m->nkeywords,
				  !s->rev2 && imap_view_is_recent(s->view, m->uid));
		buf_append_str(&r->b, ")");
	}
	bool has_modseq = false;
	for (size_t i = 0; i < f->nitems; i++)
		has_modseq |= f->items[i].kind == FI_MODSEQ;
	if (s->condstore && !has_modseq)
		buf_printf(&r->b, " MODSEQ (%" PRIu64 ")", m->modseq);
	buf_append_str(&r->b, ")\r\n");
	return STORE_OK;
}

static const struct store_msg_info *
find_info(const struct fetch_ctx *f, uint32_t uid, size_t *idx_r)
{
	size_t lo = 0, hi = f->ninfos;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->infos[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->ninfos && f->infos[lo].uid == uid) {
		*idx_r = lo;
		return &f->infos[lo];
	}
	return NULL;
}

/* The \Seen this command set was reported in its own responses; if it is
 * all that changed since the view's MODSEQ, move the view past it so the
 * sync does not report the same flags again as unsolicited FETCHes. Any
 * other change (another session's, a new message, an expunge the view
 * does not hold yet) leaves the view alone, and the sync reports
 * everything as usual. */
static void
absorb_own_changes(struct fetch_ctx *f)
{
	struct imap_view *v = f->s->view;
	struct store_msg_info *ch;
	uint32_t *vanished;
	size_t nch, nvanished;
	bool complete;

	if (f->sf.nchanged == 0)
		return;
	struct arena *a = arena_new(0);
	int r = store_changes_since(f->s->view->owner, v->name, v->modseq, a, &ch, &nch, &vanished,
				    &nvanished, &complete);
	uint64_t top = v->modseq;
	bool own = r == STORE_OK;
	/* Expunges the view already holds (or has reported) lose nothing. */
	for (size_t i = 0; own && i < nvanished; i++) {
		if (imap_view_seq(v, vanished[i]) == 0)
			continue;
		own = false;
		for (size_t j = 0; j < v->npending; j++) {
			if (v->pending_expunge[j] == vanished[i]) {
				own = true;
				break;
			}
		}
	}
	for (size_t i = 0; own && i < nch; i++) {
		own = false;
		for (size_t j = 0; j < f->sf.nchanged; j++) {
			if (f->sf.changed[j].uid == ch[i].uid &&
			    f->sf.changed[j].modseq == ch[i].modseq) {
				own = true;
				break;
			}
		}
		if (ch[i].modseq > top)
			top = ch[i].modseq;
	}
	if (own)
		v->modseq = top;
	arena_destroy(&a);
}

/* Ends the command: the view's updates, then the tagged reply. */
static void
fetch_finish(struct fetch_ctx *f)
{
	struct imap_session *s = f->s;
	bool async = f->async;

	if (s->conn.closed) {
		/* The client went away mid-FETCH: nothing to tell anyone. */
		imap_tagged(s, "NO", "FETCH aborted");
	} else {
		if (s->view != NULL)
			absorb_own_changes(f);
		/* Flags this FETCH has just shown (as of their MODSEQ) are not
		 * told again as unsolicited FETCHes. */
		imap_view_sync_own(s, false, f->shown, f->nshown);
		if (f->status == ITEM_UNKNOWN_CTE)
			imap_tagged(s, "NO", "[UNKNOWN-CTE] Unknown content transfer encoding");
		else if (f->status != STORE_OK)
			imap_tagged(s, "NO", "[UNAVAILABLE] FETCH failed, try again later");
		else if (f->expunged)
			imap_tagged(s, "OK",
				    "[EXPUNGEISSUED] Some messages were expunged meanwhile");
		else
			imap_tagged(s, "OK", "FETCH completed");
	}
	if (async)
		imap_async_end(s); /* may free s; f is gone with the arena */
}

static void respond(struct fetch_ctx *f);

/* The client has read enough (or is gone, c->closed): carry on. */
static void
fetch_drained(struct conn *c, void *arg)
{
	(void)c;
	respond(arg);
}

/* Sends the responses from f->next on, each message's whole, until all
 * are sent (then the tagged reply) or too much waits to be sent (then it
 * goes asynchronous and continues from fetch_drained). Nothing of a
 * message is held across the wait: only the position and the infos. */
static void
respond(struct fetch_ctx *f)
{
	struct imap_session *s = f->s;
	struct resp r;
	bool full = false;

	memset(&r, 0, sizeof(r));
	r.a = arena_new(0);
	/* No single response buffer holds body data: text only. */
	buf_init(&r.b, 64u << 20);
	while (f->next < f->nuids && f->status == STORE_OK && !s->conn.closed && !s->conn.closing) {
		if (conn_output_pending(&s->conn) > FETCH_OUT_HIGH) {
			full = true;
			break;
		}
		size_t idx;
		const struct store_msg_info *m = find_info(f, f->uids[f->next++], &idx);
		if (m == NULL) {
			f->expunged = true; /* gone meanwhile: skipped */
			continue;
		}
		if (f->changedsince > 0 && m->modseq <= f->changedsince)
			continue;
		/* Body data never exceeds the message itself. */
		r.data_max = m->size + 4096;
		int ret = prepare(f, m, f->flags_changed != NULL && f->flags_changed[idx], &r);
		if (ret == STORE_OK) {
			resp_send(s, &r);
			if (f->has_flags || (f->flags_changed != NULL && f->flags_changed[idx]))
				f->shown[f->nshown++] = *m;
		} else if (ret == STORE_NOTFOUND)
			f->expunged = true;
		else
			f->status = ret;
		resp_free(&r);
	}
	buf_free(&r.b);
	arena_destroy(&r.a);

	if (full) {
		/* The command stays in progress meanwhile: no other command
		 * runs and no untagged data is written until it ends. */
		if (!f->async) {
			imap_async_begin(s);
			f->async = true;
		}
		if (conn_on_drain(&s->conn, FETCH_OUT_LOW, fetch_drained, f) == 0)
			return;
	}
	fetch_finish(f);
}

/* store_flags finished: the \Seen flags are durable. */
static void
seen_done(void *req, void *arg)
{
	struct fetch_ctx *f = req;
	struct imap_session *s = arg;

	if (f->sf.req.status != STORE_OK) {
		imap_tagged_store_status(s, f->sf.req.status, "FETCH");
		imap_async_end(s);
		return;
	}
	for (size_t i = 0; i < f->sf.nchanged; i++) {
		size_t idx;
		const struct store_msg_info *c = &f->sf.changed[i];
		if (find_info(f, c->uid, &idx) == NULL)
			continue;
		f->infos[idx].flags = c->flags;
		f->infos[idx].modseq = c->modseq;
		f->infos[idx].keywords = c->keywords;
		f->infos[idx].nkeywords = c->nkeywords;
		f->flags_changed[idx] = true;
	}
	if (s->view != NULL && !s->conn.closed) {
		respond(f); /* ends the asynchronous step itself */
		return;
	}
	imap_tagged(s, "NO", "FETCH aborted");
	imap_async_end(s);
}

/* UID FETCH ... (CHANGEDSINCE n VANISHED): "* VANISHED (EARLIER)" with
 * the UIDs of the set expunged since n, before the FETCH responses. */
static void
fetch_vanished(struct imap_session *s, const struct imap_seqset *set, uint64_t since)
{
	struct imap_view *v = s->view;
	struct store_msg_info *changed;
	uint32_t *gone;
	size_t nchanged, ngone, nv, nknown = set->n;
	bool complete;
	struct imap_range *vr, *known = set->r;

	if (set->saved) {
		/* "$": the saved UIDs, one range each. */
		known = arena_alloc(s->cmd_arena, (s->nsearch_saved + 1) * sizeof(*known));
		for (size_t i = 0; i < s->nsearch_saved; i++)
			known[i].lo = known[i].hi = s->search_saved[i];
		nknown = s->nsearch_saved;
	}
	if (store_changes_since(s->view->owner, v->name, since, s->cmd_arena, &changed, &nchanged,
				&gone, &ngone, &complete) != STORE_OK)
		return;
	if (imap_qresync_vanished(s->cmd_arena, known, nknown, v->uidnext, v->uids, v->count, gone,
				  ngone, complete, NULL, NULL, 0, &vr, &nv) == 0 &&
	    nv > 0)
		imap_vanished_send(s, true, vr, nv);
}

static void
cmd_fetch(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct arena *a = s->cmd_arena;
	struct fetch_ctx *f = arena_alloc(a, sizeof(*f));
	struct imap_seqset set;

	f->s = s;
	if (cmd->count < 2 || cmd->count > 3 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a, cmd->args[0].str, &set) < 0) {
		imap_bad(s, "Usage: %sFETCH sequence-set items [(modifiers)]",
			 cmd->uid ? "UID " : "");
		return;
	}
	if (parse_items(f, a, &cmd->args[1], cmd->uid) < 0) {
		imap_bad(s, "Invalid FETCH items");
		return;
	}
	if (cmd->count == 3 && parse_modifiers(f, &cmd->args[2]) < 0) {
		imap_bad(s, "Invalid FETCH modifiers");
		return;
	}
	/* RFC 7162 3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE,
	 * once QRESYNC is enabled. */
	if (f->vanished && (!cmd->uid || f->changedsince == 0 || !s->qresync)) {
		imap_bad(s, "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC");
		return;
	}
	if (imap_seqset_uids(s, &set, cmd->uid, a, &f->uids, &f->nuids) < 0) {
		imap_bad(s, "Invalid message number");
		return;
	}
	/* RFC 7162 3.1: MODSEQ and CHANGEDSINCE enable CONDSTORE. */
	if (f->modseq)
		imap_condstore_enable(s);
	if (s->condstore) {
		/* ...after which every FETCH response carries the UID too (and
		 * the MODSEQ, see prepare). The items have room for one more. */
		bool has_uid = false;
		for (size_t i = 0; i < f->nitems; i++)
			has_uid |= f->items[i].kind == FI_UID;
		if (!has_uid) {
			memmove(&f->items[1], &f->items[0], f->nitems * sizeof(*f->items));
			f->items[0] = (struct fetch_item){.kind = FI_UID, .name = "UID"};
			f->nitems++;
		}
	}
	if (f->vanished)
		fetch_vanished(s, &set, f->changedsince);
	if (f->nuids == 0) {
		imap_view_sync(s, false);
		imap_tagged(s, "OK", "FETCH completed");
		return;
	}
	/* Flags, dates and sizes of just the messages asked for. */
	int ret = store_message_infos(s->view->owner, s->view->name, f->uids, f->nuids, a,
				      &f->infos, &f->ninfos);
	if (ret != STORE_OK) {
		imap_tagged_store_status(s, ret == STORE_NOTFOUND ? STORE_TEMPFAIL : ret, "FETCH");
		return;
	}
	f->flags_changed = arena_alloc(a, (f->ninfos + 1) * sizeof(*f->flags_changed));
	f->shown = arena_alloc(a, (f->ninfos + 1) * sizeof(*f->shown));
	for (size_t i = 0; i < f->nitems; i++)
		f->has_flags |= f->items[i].kind == FI_FLAGS;
	/* Without the "s" right (RFC 4314 4) \Seen is not set either. */
	if (!f->any_seen || s->view->readonly || !(s->view->rights & imap_acl_right('s'))) {
		respond(f);
		return;
	}
	/* Only the messages that lack \Seen need a write. */
	uint32_t *unseen = arena_alloc(a, f->nuids * sizeof(*unseen));
	size_t n = 0;
	for (size_t i = 0; i < f->nuids; i++) {
		size_t idx;
		const struct store_msg_info *m = find_info(f, f->uids[i], &idx);
		if (m != NULL && !(m->flags & STORE_FLAG_SEEN))
			unseen[n++] = m->uid;
	}
	if (n == 0) {
		respond(f);
		return;
	}
	f->sf.req.worker = s->conn.worker;
	f->sf.req.done = seen_done;
	f->sf.req.arg = s;
	f->sf.req.a = a;
	f->sf.user_id = s->view->owner;
	f->sf.mailbox = s->view->name;
	f->sf.uids = unseen;
	f->sf.nuids = n;
	f->sf.mode = STORE_FLAGS_ADD;
	f->sf.flags = STORE_FLAG_SEEN;
	imap_async_begin(s);
	f->async = true;
	store_flags(&f->sf);
}

/* ---- NOTIFY's MessageNew fetch attributes (RFC 5465 5.2) ---- */

struct imap_fetch_atts {
	struct fetch_item *items;
	size_t nitems;
};

struct imap_fetch_atts *
imap_fetch_atts_parse(struct arena *a, const struct imap_arg *list)
{
	struct fetch_ctx f;

	memset(&f, 0, sizeof(f));
	if (list->type != IMAP_ARG_LIST || parse_items(&f, a, list, false) < 0)
		return NULL;
	struct imap_fetch_atts *fa = arena_alloc(a, sizeof(*fa));
	fa->items = f.items;
	fa->nitems = f.nitems;
	return fa;
}

void
imap_fetch_atts_send(struct imap_session *s, const struct imap_fetch_atts *fa, const uint32_t *uids,
		     size_t n)
{
	struct fetch_ctx f;
	struct resp r;
	struct arena *a = arena_new(0);
	bool has_uid = false;

	memset(&f, 0, sizeof(f));
	memset(&r, 0, sizeof(r));
	f.s = s;
	f.items = arena_alloc(a, (fa->nitems + 1) * sizeof(*f.items));
	for (size_t i = 0; i < fa->nitems; i++)
		has_uid |= fa->items[i].kind == FI_UID;
	/* With CONDSTORE every FETCH response carries the UID (as FETCH). */
	if (s->condstore && !has_uid)
		f.items[f.nitems++] = (struct fetch_item){.kind = FI_UID, .name = "UID"};
	memcpy(&f.items[f.nitems], fa->items, fa->nitems * sizeof(*f.items));
	f.nitems += fa->nitems;
	/* Never sets \Seen: the client did not ask for these messages. */
	if (store_message_infos(s->view->owner, s->view->name, uids, n, a, &f.infos, &f.ninfos) !=
	    STORE_OK) {
		arena_destroy(&a);
		return;
	}
	r.a = arena_new(0);
	buf_init(&r.b, 64u << 20);
	for (size_t i = 0; i < f.ninfos; i++) {
		r.data_max = f.infos[i].size + 4096;
		if (prepare(&f, &f.infos[i], false, &r) == STORE_OK)
			resp_send(s, &r);
		resp_free(&r);
	}
	buf_free(&r.b);
	arena_destroy(&r.a);
	arena_destroy(&a);
}

const struct imap_command imap_fetch_cmds[] = {
    {"FETCH", IMAP_ST_SELECTED, true, cmd_fetch},
    {NULL, 0, false, NULL},
};
