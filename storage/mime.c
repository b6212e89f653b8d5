/*
 * mime.c - resumable MIME structure parser (see mime.h for the rules on
 * malformed input). Input is split into lines as it arrives; a line is kept
 * in a small buffer only while it may still be a boundary line (it starts
 * with "--" and is short), otherwise its bytes stream straight to the
 * current header collector or body decoder. Open parts form a stack of
 * frames (root at 0); a boundary line closes every frame above the
 * multipart it belongs to.
 * Failure: none; every input yields a tree. Memory: the arena, bounded by
 * the header caps and max_parts.
 */
#include "storage/mime.h"

#include <string.h>
#include <strings.h>

#include "core/arena.h"

/* Longest line that may still be a boundary line: "--" boundary "--" plus
 * transport padding. */
#define MIME_LINE_MAX 1024
#define MIME_MAX_PARAMS 64
#define MIME_MAX_LANGS 32

enum pstate {
	PS_HEADER,   /* collecting the part's header block */
	PS_BODY,     /* leaf body */
	PS_PREAMBLE, /* multipart, before its first delimiter */
	PS_EPILOGUE, /* multipart, after its close delimiter */
	PS_CHILD,    /* message/rfc822: the child frame is above */
};

struct frame {
	struct mime_part *part;
	enum pstate state;
	uint64_t lines_start; /* LFs seen before the body began */
	const char *boundary; /* NULL: no (more) delimiter to look for */
	size_t blen;
	struct mime_part *last_child;
};

struct mime_parser {
	struct arena *a;
	struct mime_limits lim;
	bool finished;

	uint64_t off;	     /* bytes consumed */
	uint64_t nlines;     /* LFs consumed */
	uint64_t line_start; /* offset of the current line */
	bool prev_nonempty;  /* the previous line had content */
	unsigned prev_eol;   /* 0, 1 or 2: its line end */
	char *line;	     /* MIME_LINE_MAX bytes */
	size_t line_len;
	bool streamed; /* the line's bytes went straight to the consumer */
	bool pending_cr;

	struct frame *frames; /* max_depth + 1 */
	unsigned top;	      /* frames in use */
	unsigned nparts;
	struct mime_part *root;

	/* header block being collected */
	char *hdr; /* max_header bytes */
	size_t hdr_len, hdr_cap;
	bool hdr_truncated;
	size_t hdr_total;

	/* decoder of the current leaf body */
	enum mime_encoding dec;
	uint64_t dec_size;
	uint64_t b64_chars;
	unsigned qp_eq;	   /* 0, 1 after '=', 2 after '=' hex, 3 '=' then blanks */
	uint64_t qp_ws;	   /* pending trailing white space */
	uint64_t qp_eq_ws; /* blanks after '=' */
	unsigned qp_eol;   /* a hard line break not yet known to be in the body */
};

void
mime_limits_default(struct mime_limits *lim)
{
	lim->max_header = MIME_DEFAULT_MAX_HEADER;
	lim->max_header_total = MIME_DEFAULT_MAX_HEADER_TOTAL;
	lim->max_depth = MIME_DEFAULT_MAX_DEPTH;
	lim->max_parts = MIME_DEFAULT_MAX_PARTS;
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static char *
lower_dup(struct arena *a, const char *s, size_t n)
{
	char *d = arena_strndup(a, s, n);
	for (size_t i = 0; i < n; i++)
		d[i] = lower(d[i]);
	return d;
}

static struct mime_part *
part_new(struct mime_parser *p, struct mime_part *parent, uint64_t hdr_off)
{
	struct mime_part *part = arena_alloc(p->a, sizeof(*part));
	part->parent = parent;
	part->depth = parent != NULL ? parent->depth + 1 : 0;
	part->hdr_off = hdr_off;
	part->body_off = hdr_off;
	part->kind = MIME_KIND_LEAF;
	part->type = "text";
	part->subtype = "plain";
	p->nparts++;
	return part;
}

static void
link_child(struct frame *f, struct mime_part *child)
{
	if (f->last_child == NULL)
		f->part->children = child;
	else
		f->last_child->next = child;
	f->last_child = child;
	f->part->nchildren++;
}

static void
push_frame(struct mime_parser *p, struct mime_part *part)
{
	/* depth < max_depth was checked before any container got a child */
	struct frame *f = &p->frames[p->top++];
	memset(f, 0, sizeof(*f));
	f->part = part;
	f->state = PS_HEADER;
	p->hdr_len = 0;
	p->hdr_truncated = false;
	size_t left =
	    p->lim.max_header_total > p->hdr_total ? p->lim.max_header_total - p->hdr_total : 0;
	p->hdr_cap = p->lim.max_header < left ? p->lim.max_header : left;
}

/* ---- header fields ---------------------------------------------------- */

static void
hdr_append(struct mime_parser *p, const char *s, size_t n)
{
	if (p->hdr_truncated)
		return;
	if (n > p->hdr_cap - p->hdr_len) {
		n = p->hdr_cap - p->hdr_len;
		p->hdr_truncated = true;
	}
	for (size_t i = 0; i < n; i++)
		p->hdr[p->hdr_len++] = s[i] == '\0' ? ' ' : s[i];
}

/* Unfolds (drops CR and LF) and trims blanks at both ends. */
static const char *
unfold(struct arena *a, const char *s, size_t n)
{
	char *d = arena_alloc(a, n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\r' && s[i] != '\n')
			d[k++] = s[i];
	size_t b = 0;
	while (b < k && is_wsp(d[b]))
		b++;
	while (k > b && is_wsp(d[k - 1]))
		k--;
	d[k] = '\0';
	return d + b;
}

/* Skips blanks and (nested) comments. */
static void
skip_cfws(const char *s, size_t *i)
{
	for (;;) {
		while (s[*i] != '\0' && (is_wsp(s[*i]) || s[*i] == '\r' || s[*i] == '\n'))
			(*i)++;
		if (s[*i] != '(')
			return;
		unsigned depth = 0;
		while (s[*i] != '\0') {
			char c = s[(*i)++];
			if (c == '\\' && s[*i] != '\0')
				(*i)++;
			else if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				break;
		}
	}
}

static bool
is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* RFC 2045 token; 8-bit bytes are accepted. */
static size_t
token_len(const char *s)
{
	size_t n = 0;
	while (s[n] != '\0' && (unsigned char)s[n] > ' ' && s[n] != 0x7f && !is_tspecial(s[n]))
		n++;
	return n;
}

/* Parses "; name=value" pairs, leniently: an unquoted value runs to the
 * next ';' or blank (real mail has boundary=----=_Part unquoted). */
static void
parse_params(struct arena *a, const char *s, size_t i, struct mime_param **params_r, unsigned *n_r)
{
	struct mime_param tmp[MIME_MAX_PARAMS];
	unsigned n = 0;

	for (;;) {
		while (s[i] != '\0' && s[i] != ';')
			i++;
		if (s[i] == '\0' || n == MIME_MAX_PARAMS)
			break;
		i++;
		skip_cfws(s, &i);
		size_t nl = token_len(s + i);
		const char *name = s + i;
		i += nl;
		skip_cfws(s, &i);
		if (nl == 0 || s[i] != '=')
			continue;
		i++;
		skip_cfws(s, &i);
		char *val;
		if (s[i] == '"') {
			i++;
			size_t st = i, k = 0;
			while (s[i] != '\0' && s[i] != '"') {
				if (s[i] == '\\' && s[i + 1] != '\0')
					i++;
				i++;
			}
			val = arena_alloc(a, i - st + 1);
			for (size_t j = st; j < i; j++) {
				if (s[j] == '\\' && j + 1 < i)
					j++;
				val[k++] = s[j];
			}
			val[k] = '\0';
			if (s[i] == '"')
				i++;
		} else {
			size_t st = i;
			while (s[i] != '\0' && s[i] != ';' && !is_wsp(s[i]))
				i++;
			val = arena_strndup(a, s + st, i - st);
		}
		tmp[n].name = arena_strndup(a, name, nl);
		tmp[n].value = val;
		n++;
	}
	*n_r = n;
	*params_r = n > 0 ? arena_memdup(a, tmp, n * sizeof(tmp[0])) : NULL;
}

static void
set_default_type(struct mime_parser *p, struct mime_part *part)
{
	const struct mime_part *parent = part->parent;
	part->flags |= MIME_PART_DEFAULT_TYPE;
	part->params = NULL;
	part->nparams = 0;
	if (parent != NULL && parent->kind == MIME_KIND_MULTIPART &&
	    strcmp(parent->subtype, "digest") == 0) {
		part->type = "message";
		part->subtype = "rfc822";
		return;
	}
	part->type = "text";
	part->subtype = "plain";
	part->params = arena_alloc(p->a, sizeof(*part->params));
	part->params[0].name = "charset";
	part->params[0].value = "US-ASCII";
	part->nparams = 1;
}

static void
parse_content_type(struct mime_parser *p, struct mime_part *part, const char *v)
{
	size_t i = 0;
	if (v == NULL) {
		set_default_type(p, part);
		return;
	}
	skip_cfws(v, &i);
	size_t tl = token_len(v + i);
	const char *t = v + i;
	i += tl;
	skip_cfws(v, &i);
	if (tl == 0 || v[i] != '/') {
		set_default_type(p, part);
		return;
	}
	i++;
	skip_cfws(v, &i);
	size_t sl = token_len(v + i);
	if (sl == 0) {
		set_default_type(p, part);
		return;
	}
	part->type = lower_dup(p->a, t, tl);
	part->subtype = lower_dup(p->a, v + i, sl);
	parse_params(p->a, v, i + sl, &part->params, &part->nparams);
}

static void
parse_disposition(struct mime_parser *p, struct mime_part *part, const char *v)
{
	size_t i = 0;
	if (v == NULL)
		return;
	skip_cfws(v, &i);
	size_t tl = token_len(v + i);
	if (tl == 0)
		return;
	part->disposition = lower_dup(p->a, v + i, tl);
	parse_params(p->a, v, i + tl, &part->disp_params, &part->ndisp_params);
}

static void
parse_languages(struct mime_parser *p, struct mime_part *part, const char *v)
{
	const char *tmp[MIME_MAX_LANGS];
	unsigned n = 0;
	size_t i = 0;
	if (v == NULL)
		return;
	while (v[i] != '\0' && n < MIME_MAX_LANGS) {
		skip_cfws(v, &i);
		size_t st = i;
		while (v[i] != '\0' && v[i] != ',' && v[i] != '(' && !is_wsp(v[i]))
			i++;
		if (i > st)
			tmp[n++] = arena_strndup(p->a, v + st, i - st);
		skip_cfws(v, &i);
		if (v[i] == ',')
			i++;
		else if (v[i] != '\0' && i == st)
			i++; /* garbage: do not stall */
	}
	if (n > 0) {
		part->languages = arena_memdup(p->a, tmp, n * sizeof(tmp[0]));
		part->nlanguages = n;
	}
}

static void
parse_encoding(struct mime_parser *p, struct mime_part *part, const char *v)
{
	size_t i = 0;
	part->encoding = MIME_ENC_7BIT;
	if (v == NULL)
		return;
	skip_cfws(v, &i);
	size_t tl = token_len(v + i);
	if (tl == 0)
		return; /* empty or garbage: the default */
	char *t = lower_dup(p->a, v + i, tl);
	part->encoding_raw = t;
	static const struct {
		const char *name;
		enum mime_encoding enc;
	} encs[] = {
	    {"7bit", MIME_ENC_7BIT},	       {"8bit", MIME_ENC_8BIT},
	    {"binary", MIME_ENC_BINARY},       {"base64", MIME_ENC_BASE64},
	    {"quoted-printable", MIME_ENC_QP},
	};
	part->encoding = MIME_ENC_OTHER;
	for (size_t k = 0; k < sizeof(encs) / sizeof(encs[0]); k++)
		if (strcmp(t, encs[k].name) == 0)
			part->encoding = encs[k].enc;
}

/* ---- RFC 5322 addresses ------------------------------------------------ */

enum tok_type { T_ATOM, T_QSTR, T_DLIT, T_COMMENT, T_SPECIAL };

struct tok {
	enum tok_type type;
	const char *s; /* raw text (quotes/brackets included, parens not) */
	size_t n;
	bool space; /* blank or comment before it */
};

/* Splits s into tokens; t NULL only counts them (so the array is sized
 * exactly rather than one token per byte). */
static size_t
tokenize(const char *s, struct tok *t)
{
	size_t len = strlen(s), n = 0;
	struct tok dummy;
	bool space = false;
	size_t i = 0;
	while (i < len) {
		char c = s[i];
		if (is_wsp(c) || c == '\r' || c == '\n') {
			space = true;
			i++;
			continue;
		}
		struct tok *k = t != NULL ? &t[n] : &dummy;
		n++;
		k->space = space;
		space = false;
		size_t st = i;
		if (c == '(') {
			unsigned depth = 0;
			while (i < len) {
				char d = s[i++];
				if (d == '\\' && i < len)
					i++;
				else if (d == '(')
					depth++;
				else if (d == ')' && --depth == 0)
					break;
			}
			k->type = T_COMMENT;
			k->s = s + st + 1;
			k->n = i - st - 1;
			if (k->n > 0 && s[i - 1] == ')')
				k->n--;
			space = true;
			continue;
		}
		if (c == '"' || c == '[') {
			char close = c == '"' ? '"' : ']';
			i++;
			while (i < len && s[i] != close) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				i++;
			}
			if (i < len)
				i++;
			k->type = c == '"' ? T_QSTR : T_DLIT;
		} else if (strchr("<>@,;:.", c) != NULL) {
			i++;
			k->type = T_SPECIAL;
		} else {
			while (i < len && !is_wsp(s[i]) && s[i] != '\r' && s[i] != '\n' &&
			       strchr("()<>@,;:\".[]", s[i]) == NULL)
				i++;
			if (i == st)
				i++; /* a stray ']' */
			k->type = T_ATOM;
		}
		k->s = s + st;
		k->n = i - st;
	}
	return n;
}

static bool
is_sp(const struct tok *t, char c)
{
	return t->type == T_SPECIAL && t->s[0] == c;
}

/* A display name: words joined by one space, quoted strings unquoted. */
static const char *
phrase(struct arena *a, const struct tok *t, size_t from, size_t to)
{
	size_t total = 0;
	for (size_t i = from; i < to; i++)
		total += t[i].n + 1;
	char *d = arena_alloc(a, total + 1);
	size_t k = 0;
	for (size_t i = from; i < to; i++) {
		if (t[i].type == T_COMMENT)
			continue;
		if (k > 0 && t[i].space)
			d[k++] = ' ';
		if (t[i].type == T_QSTR) {
			size_t end = t[i].n > 1 && t[i].s[t[i].n - 1] == '"' ? t[i].n - 1 : t[i].n;
			for (size_t j = 1; j < end; j++) {
				if (t[i].s[j] == '\\' && j + 1 < end)
					j++;
				d[k++] = t[i].s[j];
			}
		} else {
			memcpy(d + k, t[i].s, t[i].n);
			k += t[i].n;
		}
	}
	d[k] = '\0';
	return k > 0 ? d : NULL;
}

/* Raw concatenation without blanks or comments (local part, domain). */
static const char *
raw_concat(struct arena *a, const struct tok *t, size_t from, size_t to)
{
	size_t total = 0;
	for (size_t i = from; i < to; i++)
		total += t[i].n;
	char *d = arena_alloc(a, total + 1);
	size_t k = 0;
	for (size_t i = from; i < to; i++) {
		if (t[i].type == T_COMMENT)
			continue;
		memcpy(d + k, t[i].s, t[i].n);
		k += t[i].n;
	}
	d[k] = '\0';
	return d;
}

struct addr_list {
	struct mime_address *head, *tail;
};

static void
addr_add(struct arena *a, struct addr_list *l, const char *name, const char *mailbox,
	 const char *host)
{
	struct mime_address *m = arena_alloc(a, sizeof(*m));
	m->name = name;
	m->mailbox = mailbox;
	m->host = host;
	if (l->tail == NULL)
		l->head = m;
	else
		l->tail->next = m;
	l->tail = m;
}

/* An addr-spec over tokens [from, to); name may be NULL. */
static void
addr_spec(struct arena *a, struct addr_list *l, const char *name, const struct tok *t, size_t from,
	  size_t to)
{
	size_t at = to;
	const struct tok *last_comment = NULL;
	for (size_t i = from; i < to; i++) {
		if (t[i].type == T_COMMENT)
			last_comment = &t[i];
		else if (at == to && is_sp(&t[i], '@'))
			at = i;
	}
	const char *local = raw_concat(a, t, from, at);
	const char *host = at < to ? raw_concat(a, t, at + 1, to) : "";
	if (name == NULL && last_comment != NULL && last_comment->n > 0)
		name = unfold(a, last_comment->s, last_comment->n);
	if (name != NULL && name[0] == '\0')
		name = NULL;
	if (local[0] == '\0' && name == NULL)
		return;
	if (host[0] == '\0')
		host = ".MISSING-HOST-NAME.";
	addr_add(a, l, name, local, host);
}

static struct mime_address *
parse_addresses(struct arena *a, const char *v)
{
	struct addr_list l = {NULL, NULL};
	if (v == NULL)
		return NULL;
	size_t n = tokenize(v, NULL);
	struct tok *t = arena_alloc(a, (n + 1) * sizeof(*t));
	tokenize(v, t);
	bool in_group = false;
	size_t i = 0;
	while (i < n) {
		if (is_sp(&t[i], ',') || t[i].type == T_COMMENT) {
			i++;
			continue;
		}
		if (is_sp(&t[i], ';')) {
			if (in_group)
				addr_add(a, &l, NULL, NULL, NULL);
			in_group = false;
			i++;
			continue;
		}
		size_t k = i;
		while (k < n && !is_sp(&t[k], '<') && !is_sp(&t[k], ',') && !is_sp(&t[k], ';') &&
		       !(is_sp(&t[k], ':') && !in_group))
			k++;
		if (k < n && is_sp(&t[k], '<')) {
			const char *name = phrase(a, t, i, k);
			size_t e = k + 1;
			while (e < n && !is_sp(&t[e], '>'))
				e++;
			size_t st = k + 1;
			while (st < e && t[st].type == T_COMMENT)
				st++;
			if (st < e && is_sp(&t[st], '@')) {
				/* obs-route "@a,@b:" is dropped */
				size_t c = st;
				while (c < e && !is_sp(&t[c], ':'))
					c++;
				st = c < e ? c + 1 : e;
			}
			addr_spec(a, &l, name, t, st, e);
			i = e < n ? e + 1 : e;
			/* trailing garbage up to the next separator */
			while (i < n && !is_sp(&t[i], ',') && !(in_group && is_sp(&t[i], ';')))
				i++;
		} else if (k < n && is_sp(&t[k], ':')) {
			const char *name = phrase(a, t, i, k);
			addr_add(a, &l, NULL, name != NULL ? name : "", NULL);
			in_group = true;
			i = k + 1;
		} else {
			addr_spec(a, &l, NULL, t, i, k);
			i = k;
		}
	}
	if (in_group)
		addr_add(a, &l, NULL, NULL, NULL);
	return l.head;
}

/* ---- the header block ------------------------------------------------- */

enum field_id {
	F_CTYPE,
	F_CTE,
	F_CID,
	F_CDESC,
	F_CMD5,
	F_CDISP,
	F_CLANG,
	F_CLOC,
	F_DATE,
	F_SUBJECT,
	F_FROM,
	F_SENDER,
	F_REPLY_TO,
	F_TO,
	F_CC,
	F_BCC,
	F_IN_REPLY_TO,
	F_MESSAGE_ID,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "content-md5",
    "content-disposition",
    "content-language",
    "content-location",
    "date",
    "subject",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "in-reply-to",
    "message-id",
};

static void
header_fields(struct mime_parser *p, const char **vals)
{
	const char *h = p->hdr;
	size_t n = p->hdr_len;
	if (p->hdr_truncated)
		while (n > 0 && h[n - 1] != '\n')
			n--; /* the last field may be cut: drop it */
	size_t i = 0;
	while (i < n) {
		size_t st = i;
		const char *lf = memchr(h + i, '\n', n - i);
		i = lf != NULL ? (size_t)(lf - h) + 1 : n;
		while (i < n && is_wsp(h[i])) {
			lf = memchr(h + i, '\n', n - i);
			i = lf != NULL ? (size_t)(lf - h) + 1 : n;
		}
		const char *colon = memchr(h + st, ':', i - st);
		if (colon == NULL)
			continue;
		size_t nl = (size_t)(colon - (h + st));
		while (nl > 0 && is_wsp(h[st + nl - 1]))
			nl--;
		for (int f = 0; f < F_COUNT; f++) {
			if (vals[f] == NULL && strlen(field_names[f]) == nl &&
			    strncasecmp(field_names[f], h + st, nl) == 0) {
				size_t vo = (size_t)(colon - h) + 1;
				vals[f] = unfold(p->a, h + vo, i - vo);
				break;
			}
		}
	}
}

/* The header of the top frame's part is complete: fields and kind. */
static void
header_finish(struct mime_parser *p, struct mime_part *part)
{
	const char *vals[F_COUNT] = {0};
	header_fields(p, vals);
	p->hdr_total += p->hdr_len;
	if (p->hdr_truncated)
		part->flags |= MIME_PART_HEADER_TRUNCATED;

	parse_content_type(p, part, vals[F_CTYPE]);
	parse_encoding(p, part, vals[F_CTE]);
	part->id = vals[F_CID];
	part->description = vals[F_CDESC];
	part->md5 = vals[F_CMD5];
	part->location = vals[F_CLOC];
	parse_disposition(p, part, vals[F_CDISP]);
	parse_languages(p, part, vals[F_CLANG]);

	if (part->envelope != NULL) {
		struct mime_envelope *e = part->envelope;
		e->date = vals[F_DATE];
		e->subject = vals[F_SUBJECT];
		e->in_reply_to = vals[F_IN_REPLY_TO];
		e->message_id = vals[F_MESSAGE_ID];
		e->from = parse_addresses(p->a, vals[F_FROM]);
		e->sender = parse_addresses(p->a, vals[F_SENDER]);
		e->reply_to = parse_addresses(p->a, vals[F_REPLY_TO]);
		e->to = parse_addresses(p->a, vals[F_TO]);
		e->cc = parse_addresses(p->a, vals[F_CC]);
		e->bcc = parse_addresses(p->a, vals[F_BCC]);
		/* RFC 9051 7.5.2: absent or empty Sender/Reply-To are From */
		if (e->sender == NULL)
			e->sender = e->from;
		if (e->reply_to == NULL)
			e->reply_to = e->from;
	}

	bool container = part->depth < p->lim.max_depth;
	if (strcmp(part->type, "multipart") == 0) {
		if (container)
			part->kind = MIME_KIND_MULTIPART;
		else
			part->flags |= MIME_PART_DEPTH_LIMIT;
	} else if (strcmp(part->type, "message") == 0 &&
		   (strcmp(part->subtype, "rfc822") == 0 || strcmp(part->subtype, "global") == 0) &&
		   part->encoding != MIME_ENC_BASE64 && part->encoding != MIME_ENC_QP) {
		if (container && p->nparts < p->lim.max_parts)
			part->kind = MIME_KIND_MESSAGE;
		else
			part->flags |= MIME_PART_DEPTH_LIMIT;
	}
	p->hdr_len = 0;
}

/* ---- body decoders ---------------------------------------------------- */

static void
dec_reset(struct mime_parser *p, enum mime_encoding enc)
{
	p->dec = enc;
	p->dec_size = 0;
	p->b64_chars = 0;
	p->qp_eq = 0;
	p->qp_ws = 0;
	p->qp_eq_ws = 0;
	p->qp_eol = 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
dec_bytes(struct mime_parser *p, const char *s, size_t n)
{
	if (p->dec == MIME_ENC_BASE64) {
		for (size_t i = 0; i < n; i++) {
			char c = s[i];
			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '+' || c == '/')
				p->b64_chars++;
		}
		return;
	}
	if (p->dec != MIME_ENC_QP || n == 0)
		return;
	/* more body follows the previous line break, so it is in the body */
	p->dec_size += p->qp_eol;
	p->qp_eol = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (p->qp_eq == 1) {
			if (hexval(c) >= 0) {
				p->qp_eq = 2;
				continue;
			}
			if (is_wsp(c)) {
				p->qp_eq = 3;
				p->qp_eq_ws = 1;
				continue;
			}
			p->dec_size += 1; /* a lone '=' is kept */
			p->qp_eq = 0;
		} else if (p->qp_eq == 2) {
			p->qp_eq = 0;
			if (hexval(c) >= 0) {
				p->dec_size += 1;
				continue;
			}
			p->dec_size += 2;
		} else if (p->qp_eq == 3) {
			if (is_wsp(c)) {
				p->qp_eq_ws++;
				continue;
			}
			/* "=" and blanks inside a line: literal */
			p->dec_size += 1;
			p->qp_ws = p->qp_eq_ws;
			p->qp_eq = 0;
		}
		if (c == '=') {
			p->dec_size += p->qp_ws;
			p->qp_ws = 0;
			p->qp_eq = 1;
		} else if (is_wsp(c)) {
			p->qp_ws++;
		} else {
			p->dec_size += p->qp_ws + 1;
			p->qp_ws = 0;
		}
	}
}

static void
dec_eol(struct mime_parser *p, unsigned eol)
{
	if (p->dec != MIME_ENC_QP)
		return;
	p->dec_size += p->qp_eol;
	p->qp_eol = 0;
	if (p->qp_eq == 2)
		p->dec_size += 2;
	/* after '=' (and blanks) the break is soft; else it is hard */
	if (p->qp_eq != 1 && p->qp_eq != 3)
		p->qp_eol = eol;
	p->qp_eq = 0;
	p->qp_ws = 0;
}

/* in_body: whether the last line break belongs to the body (end of input)
 * or to a following delimiter. */
static uint64_t
dec_finish(struct mime_parser *p, const struct mime_part *part, bool last_eol_in_body)
{
	if (p->dec == MIME_ENC_BASE64) {
		uint64_t c = p->b64_chars;
		static const unsigned rest[4] = {0, 0, 1, 2};
		return c / 4 * 3 + rest[c % 4];
	}
	if (p->dec != MIME_ENC_QP)
		return part->body_len;
	uint64_t size = p->dec_size;
	if (p->qp_eq == 2)
		size += 2;
	if (last_eol_in_body)
		size += p->qp_eol;
	return size;
}

/* ---- frames ----------------------------------------------------------- */

static void
synth_child(struct mime_parser *p, struct frame *f)
{
	struct mime_part *m = f->part;
	struct mime_part *c = part_new(p, m, m->body_off);
	c->flags |= MIME_PART_SYNTHETIC;
	c->body_off = m->body_off;
	c->body_len = m->body_len;
	c->body_lines = m->body_lines;
	c->decoded_size = m->body_len;
	c->type = "text";
	c->subtype = "plain";
	c->params = arena_alloc(p->a, sizeof(*c->params));
	c->params[0].name = "charset";
	c->params[0].value = "US-ASCII";
	c->nparams = 1;
	c->encoding = MIME_ENC_7BIT;
	link_child(f, c);
}

/* Closes frame f. by_boundary: ended by a delimiter line at line_start
 * (whose preceding line break belongs to the delimiter); else by the end
 * of input at p->off. lines_before: LFs before the delimiter line. */
static void
close_frame(struct mime_parser *p, struct frame *f, bool by_boundary, uint64_t lines_before)
{
	struct mime_part *part = f->part;
	uint64_t end = by_boundary ? p->line_start - p->prev_eol : p->off;

	if (f->state == PS_HEADER) {
		if (end < part->hdr_off)
			end = part->hdr_off;
		part->hdr_len = end - part->hdr_off;
		part->body_off = end;
		header_finish(p, part);
		if (part->kind == MIME_KIND_MESSAGE)
			part->kind = MIME_KIND_LEAF; /* no room for a message */
		part->body_len = 0;
		part->body_lines = 0;
		part->decoded_size = 0;
		if (part->kind == MIME_KIND_MULTIPART)
			synth_child(p, f);
		return;
	}
	if (end < part->body_off)
		end = part->body_off;
	part->body_len = end - part->body_off;
	if (by_boundary)
		part->body_lines =
		    p->line_start > part->body_off
			? lines_before - f->lines_start - 1 + (p->prev_nonempty ? 1 : 0)
			: 0;
	else
		part->body_lines =
		    p->nlines - f->lines_start + (p->prev_eol == 0 && p->prev_nonempty ? 1 : 0);
	if (part->kind == MIME_KIND_LEAF)
		part->decoded_size = dec_finish(p, part, !by_boundary);
	else
		part->decoded_size = part->body_len;
	if (part->kind == MIME_KIND_MULTIPART) {
		if (f->boundary != NULL)
			part->flags |= MIME_PART_NO_END;
		if (part->nchildren == 0)
			synth_child(p, f);
	}
}

/* The top frame's header ended with the empty line before body_start. */
static void
header_end(struct mime_parser *p, uint64_t body_start)
{
	struct frame *f = &p->frames[p->top - 1];
	struct mime_part *part = f->part;
	part->hdr_len = body_start - part->hdr_off;
	part->body_off = body_start;
	header_finish(p, part);
	f->lines_start = p->nlines;
	switch (part->kind) {
	case MIME_KIND_MULTIPART:
		f->state = PS_PREAMBLE;
		for (unsigned i = 0; i < part->nparams; i++) {
			size_t bl = strlen(part->params[i].value);
			if (strcasecmp(part->params[i].name, "boundary") == 0 && bl > 0 &&
			    bl <= MIME_MAX_BOUNDARY) {
				f->boundary = part->params[i].value;
				f->blen = bl;
				break;
			}
		}
		break;
	case MIME_KIND_MESSAGE: {
		f->state = PS_CHILD;
		struct mime_part *c = part_new(p, part, body_start);
		c->envelope = arena_alloc(p->a, sizeof(*c->envelope));
		link_child(f, c);
		push_frame(p, c);
		break;
	}
	case MIME_KIND_LEAF:
		f->state = PS_BODY;
		dec_reset(p, part->encoding);
		break;
	}
}

/* Which open multipart (innermost first) the delimiter line belongs to. */
static bool
match_boundary(struct mime_parser *p, unsigned *fi_r, bool *closing_r)
{
	const char *l = p->line;
	size_t n = p->line_len;
	for (unsigned j = p->top; j-- > 0;) {
		const struct frame *f = &p->frames[j];
		if (f->boundary == NULL || f->state == PS_HEADER)
			continue;
		if (n < 2 + f->blen || memcmp(l + 2, f->boundary, f->blen) != 0)
			continue;
		size_t k = 2 + f->blen;
		bool closing = false;
		if (n - k >= 2 && l[k] == '-' && l[k + 1] == '-') {
			closing = true;
			k += 2;
		}
		while (k < n && is_wsp(l[k]))
			k++;
		if (k != n)
			continue;
		if (!closing && p->nparts >= p->lim.max_parts)
			return false; /* no new part: it is body text */
		*fi_r = j;
		*closing_r = closing;
		return true;
	}
	return false;
}

static void
on_boundary(struct mime_parser *p, unsigned fi, bool closing, uint64_t lines_before)
{
	while (p->top > fi + 1) {
		close_frame(p, &p->frames[p->top - 1], true, lines_before);
		p->top--;
	}
	struct frame *m = &p->frames[fi];
	if (closing) {
		m->boundary = NULL;
		m->state = PS_EPILOGUE;
		return;
	}
	struct mime_part *c = part_new(p, m->part, p->off);
	link_child(m, c);
	push_frame(p, c);
}

/* ---- lines -------------------------------------------------------------- */

/* Bytes of the current line that cannot be a delimiter go here. */
static void
stream(struct mime_parser *p, const char *s, size_t n)
{
	struct frame *f = &p->frames[p->top - 1];
	if (f->state == PS_HEADER)
		hdr_append(p, s, n);
	else if (f->state == PS_BODY)
		dec_bytes(p, s, n);
}

static void
emit(struct mime_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (!p->streamed) {
		size_t room = MIME_LINE_MAX - p->line_len;
		if (n <= room) {
			memcpy(p->line + p->line_len, s, n);
			p->line_len += n;
			/* only "--..." lines can be delimiters */
			if (p->line[0] == '-' && (p->line_len < 2 || p->line[1] == '-'))
				return;
			p->streamed = true;
			stream(p, p->line, p->line_len);
			return;
		}
		p->streamed = true;
		stream(p, p->line, p->line_len);
	}
	stream(p, s, n);
}

static void
content(struct mime_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (p->pending_cr) {
		p->pending_cr = false;
		emit(p, "\r", 1);
	}
	/* a CR at the end may be half of a CRLF: hold it back */
	if (s[n - 1] == '\r') {
		emit(p, s, n - 1);
		p->pending_cr = true;
	} else {
		emit(p, s, n);
	}
}

static void
line_done(struct mime_parser *p, unsigned eol)
{
	static const char *const eols[3] = {"", "\n", "\r\n"};
	uint64_t lines_before = p->nlines;
	bool nonempty = p->streamed || p->line_len > 0;
	unsigned fi;
	bool closing;

	if (eol > 0)
		p->nlines++;
	if (!p->streamed && p->line_len >= 2 && match_boundary(p, &fi, &closing)) {
		on_boundary(p, fi, closing, lines_before);
	} else {
		struct frame *f = &p->frames[p->top - 1];
		if (f->state == PS_HEADER) {
			if (!p->streamed)
				hdr_append(p, p->line, p->line_len);
			hdr_append(p, eols[eol], eol);
			if (!nonempty && eol > 0)
				header_end(p, p->off);
		} else if (f->state == PS_BODY) {
			if (!p->streamed)
				dec_bytes(p, p->line, p->line_len);
			dec_eol(p, eol);
		}
	}
	p->prev_nonempty = nonempty;
	p->prev_eol = eol;
	p->line_start = p->off;
	p->line_len = 0;
	p->streamed = false;
}

/* ---- API ---------------------------------------------------------------- */

struct mime_parser *
mime_parser_new(struct arena *a, const struct mime_limits *lim)
{
	struct mime_parser *p = arena_alloc(a, sizeof(*p));
	p->a = a;
	if (lim != NULL)
		p->lim = *lim;
	else
		mime_limits_default(&p->lim);
	if (p->lim.max_parts == 0)
		p->lim.max_parts = 1;
	/* the header buffer and frame stack are allocated up front */
	if (p->lim.max_header > 16u * 1024u * 1024u)
		p->lim.max_header = 16u * 1024u * 1024u;
	if (p->lim.max_depth > 100000)
		p->lim.max_depth = 100000;
	p->line = arena_alloc(a, MIME_LINE_MAX);
	p->hdr = arena_alloc(a, p->lim.max_header > 0 ? p->lim.max_header : 1);
	p->frames = arena_alloc(a, ((size_t)p->lim.max_depth + 1) * sizeof(*p->frames));
	p->root = part_new(p, NULL, 0);
	p->root->envelope = arena_alloc(a, sizeof(*p->root->envelope));
	push_frame(p, p->root);
	return p;
}

void
mime_parser_feed(struct mime_parser *p, const void *data, size_t len)
{
	const char *s = data, *end = s + len;
	if (p->finished)
		return;
	while (s < end) {
		const char *lf = memchr(s, '\n', (size_t)(end - s));
		const char *stop = lf != NULL ? lf : end;
		content(p, s, (size_t)(stop - s));
		p->off += (uint64_t)(stop - s);
		if (lf == NULL)
			break;
		p->off++;
		unsigned eol = p->pending_cr ? 2 : 1;
		p->pending_cr = false;
		line_done(p, eol);
		s = lf + 1;
	}
}

int
mime_parser_finish(struct mime_parser *p, struct mime_part **root_r)
{
	if (!p->finished) {
		if (p->pending_cr) {
			p->pending_cr = false;
			emit(p, "\r", 1);
		}
		if (p->streamed || p->line_len > 0)
			line_done(p, 0);
		while (p->top > 0) {
			close_frame(p, &p->frames[p->top - 1], false, p->nlines);
			p->top--;
		}
		p->finished = true;
	}
	*root_r = p->root;
	return 0;
}

int
mime_parse(struct arena *a, const struct mime_limits *lim, const void *data, size_t len,
	   struct mime_part **root_r)
{
	struct mime_parser *p = mime_parser_new(a, lim);
	mime_parser_feed(p, data, len);
	return mime_parser_finish(p, root_r);
}

const char *
mime_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case MIME_ERR_NOT_FOUND:
		return "no such section";
	case MIME_ERR_SYNTAX:
		return "malformed section";
	case MIME_ERR_CORRUPT:
		return "corrupt MIME structure record";
	case MIME_ERR_LIMIT:
		return "output limit reached";
	default:
		return "unknown MIME error";
	}
}
