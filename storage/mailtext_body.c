/*
 * mailtext_body.c - streaming body text for SEARCH BODY/TEXT and the
 * full-text index: transfer decoding -> charset conversion -> (text/html)
 * markup stripping -> UTF-8 into the caller's capped buffer.
 *
 * Every stage is a byte- or character-at-a-time state machine whose state
 * lives in struct mailtext_body, and output is produced one character at a
 * time, so any chunking of the input gives the same text, even when the
 * cap cuts it. Malformed input is decoded leniently (stray base64 bytes
 * skipped, a bad "=XY" kept literally, unknown entities kept as text);
 * nothing fails except the output cap.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "storage/mailtext.h"
#include "storage/mailtext_internal.h"

enum te { TE_IDENTITY, TE_BASE64, TE_QP };

enum qp_state { Q_TEXT, Q_CR, Q_EQ, Q_EQ_HEX, Q_EQ_WS, Q_EQ_CR };

enum html_state {
	H_TEXT,
	H_LT,	   /* after '<' */
	H_TAGNAME, /* reading the element name */
	H_TAG,	   /* attributes, up to '>' */
	H_BANG,	   /* "<!" */
	H_BANG_DASH,
	H_COMMENT, /* "<!--" ... "-->" */
	H_DECL,	   /* "<!DOCTYPE ...>", "<?...>" */
	H_RAW,	   /* script/style content, up to its end tag */
	H_ENT,	   /* after '&' */
};

#define QP_WS_MAX 64 /* trailing blanks held back; longer runs are text */
#define TAG_NAME_MAX 15
#define ENT_MAX 32
#define STAGE_MAX 512

struct mailtext_body {
	struct buf *out; /* borrowed from the caller until finish */
	enum te te;
	bool html;
	bool full;
	bool finished;

	uint32_t b64_acc;
	unsigned b64_n;

	enum qp_state qp;
	char qp_hex;
	unsigned char qp_ws[QP_WS_MAX];
	size_t qp_nws;

	/* transfer-decoded bytes waiting for the charset stage */
	unsigned char stage[STAGE_MAX];
	size_t nstage;
	struct mt_conv conv;

	enum html_state hs;
	char tag[TAG_NAME_MAX + 1];
	size_t ntag;
	bool tag_close, tag_long;
	char quote;
	bool after_eq;
	unsigned dashes;
	const char *raw_end; /* "</script" or "</style" */
	size_t raw_match;
	char ent[ENT_MAX + 1];
	size_t nent;
	bool pend_space, any_out;
};

/* ---- output ---- */

static int
out_cp(struct mailtext_body *b, uint32_t cp)
{
	if (b->full)
		return -1;
	if (mt_emit_buf(b->out, cp) < 0) {
		b->full = true;
		return -1;
	}
	return 0;
}

/* HTML text: white space collapses to one SP, none at the start or end. */
static int
html_text(struct mailtext_body *b, uint32_t cp)
{
	if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f') {
		b->pend_space = b->any_out;
		return 0;
	}
	if (b->pend_space) {
		b->pend_space = false;
		if (out_cp(b, ' ') < 0)
			return -1;
	}
	b->any_out = true;
	return out_cp(b, cp);
}

/* ---- HTML character references ---- */

/* 160..255 in order (HTML 4 Latin-1 set) */
static const char *const latin1_ents[96] = {
    "nbsp",   "iexcl",	"cent",	  "pound",  "curren", "yen",	"brvbar", "sect",   "uml",
    "copy",   "ordf",	"laquo",  "not",    "shy",    "reg",	"macr",	  "deg",    "plusmn",
    "sup2",   "sup3",	"acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",	"AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",	"Iuml",	  "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",	"Oslash", "Ugrave", "Uacute", "Ucirc",	"Uuml",	  "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",	"aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",	"divide", "oslash", "ugrave",
    "uacute", "ucirc",	"uuml",	  "yacute", "thorn",  "yuml",
};

static const struct {
	const char *name;
	uint32_t cp;
} other_ents[] = {
    {"quot", 34},     {"amp", 38},	{"apos", 39},	  {"lt", 60},	    {"gt", 62},
    {"OElig", 338},   {"oelig", 339},	{"Scaron", 352},  {"scaron", 353},  {"Yuml", 376},
    {"fnof", 402},    {"circ", 710},	{"tilde", 732},	  {"ensp", 8194},   {"emsp", 8195},
    {"thinsp", 8201}, {"zwnj", 8204},	{"zwj", 8205},	  {"lrm", 8206},    {"rlm", 8207},
    {"ndash", 8211},  {"mdash", 8212},	{"lsquo", 8216},  {"rsquo", 8217},  {"sbquo", 8218},
    {"ldquo", 8220},  {"rdquo", 8221},	{"bdquo", 8222},  {"dagger", 8224}, {"Dagger", 8225},
    {"bull", 8226},   {"hellip", 8230}, {"permil", 8240}, {"prime", 8242},  {"Prime", 8243},
    {"lsaquo", 8249}, {"rsaquo", 8250}, {"oline", 8254},  {"euro", 8364},   {"trade", 8482},
    {"larr", 8592},   {"uarr", 8593},	{"rarr", 8594},	  {"darr", 8595},   {"hearts", 9829},
};

/* XXX only the HTML 4 Latin-1, special and common symbol entities; the
 * rest of HTML5's 2,000 names are left as text. */
static uint32_t
named_entity(const char *name, bool semicolon)
{
	uint32_t cp = 0;
	for (size_t i = 0; i < sizeof(latin1_ents) / sizeof(latin1_ents[0]) && cp == 0; i++)
		if (strcmp(name, latin1_ents[i]) == 0)
			cp = 160 + (uint32_t)i;
	for (size_t i = 0; i < sizeof(other_ents) / sizeof(other_ents[0]) && cp == 0; i++)
		if (strcmp(name, other_ents[i].name) == 0)
			cp = other_ents[i].cp;
	if (cp == 0)
		return 0;
	/* without ';' only the legacy ones browsers also take bare */
	if (!semicolon && strcmp(name, "amp") != 0 && strcmp(name, "lt") != 0 &&
	    strcmp(name, "gt") != 0 && strcmp(name, "quot") != 0 && strcmp(name, "nbsp") != 0)
		return 0;
	return cp;
}

/* "#233" / "#xE9" -> code point; 0 if it is not a numeric reference. */
static uint32_t
numeric_entity(const char *e)
{
	if (e[0] != '#')
		return 0;
	bool hex = e[1] == 'x' || e[1] == 'X';
	const char *p = e + (hex ? 2 : 1);
	if (*p == '\0')
		return 0;
	uint32_t v = 0;
	for (; *p != '\0'; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (hex && isxdigit((unsigned char)*p))
			d = tolower((unsigned char)*p) - 'a' + 10;
		else
			return 0;
		if (v <= 0x10ffff) /* saturate: stays invalid, never wraps */
			v = v * (hex ? 16 : 10) + (uint32_t)d;
	}
	if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0xfffd;
	if (v >= 0x80 && v <= 0x9f)
		return mt_cp1252((unsigned char)v); /* HTML5: as windows-1252 */
	return v;
}

/* The reference in ent[] ended (by ';' if semicolon); decoded or, when
 * unknown, given back as the text it was. */
static int
entity_end(struct mailtext_body *b, bool semicolon)
{
	b->ent[b->nent] = '\0';
	uint32_t cp = numeric_entity(b->ent);
	if (cp == 0)
		cp = named_entity(b->ent, semicolon);
	b->hs = H_TEXT;
	if (cp == 0xa0)
		cp = ' ';
	if (cp != 0)
		return html_text(b, cp);
	if (html_text(b, '&') < 0)
		return -1;
	for (size_t i = 0; i < b->nent; i++)
		if (html_text(b, (unsigned char)b->ent[i]) < 0)
			return -1;
	return semicolon ? html_text(b, ';') : 0;
}

/* ---- HTML tags ---- */

static const char *const inline_tags[] = {
    "a",      "abbr", "b",   "bdi", "bdo",  "big", "cite", "code", "del",   "dfn",  "em",
    "font",   "i",    "ins", "kbd", "mark", "q",   "s",	   "samp", "small", "span", "strike",
    "strong", "sub",  "sup", "tt",  "u",    "var", "wbr",  "o:p",  NULL,
};

static int
tag_end(struct mailtext_body *b)
{
	b->tag[b->ntag] = '\0';
	b->hs = H_TEXT;
	if (!b->tag_close && !b->tag_long) {
		if (strcmp(b->tag, "script") == 0)
			b->raw_end = "</script";
		else if (strcmp(b->tag, "style") == 0)
			b->raw_end = "</style";
		if (b->raw_end != NULL) {
			b->hs = H_RAW;
			b->raw_match = 0;
		}
	}
	if (!b->tag_long)
		for (const char *const *t = inline_tags; *t != NULL; t++)
			if (strcmp(b->tag, *t) == 0)
				return 0;
	/* a block or unknown element separates words */
	b->pend_space = b->any_out;
	return 0;
}

static void
tag_start(struct mailtext_body *b, bool closing)
{
	b->hs = H_TAGNAME;
	b->ntag = 0;
	b->tag_close = closing;
	b->tag_long = false;
	b->quote = 0;
	b->after_eq = false;
}

static bool
is_html_space(uint32_t cp)
{
	return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f';
}

static int
html_cp(struct mailtext_body *b, uint32_t cp)
{
	for (;;) {
		switch (b->hs) {
		case H_TEXT:
			if (cp == '<') {
				b->hs = H_LT;
				return 0;
			}
			if (cp == '&') {
				b->hs = H_ENT;
				b->nent = 0;
				return 0;
			}
			return html_text(b, cp);
		case H_LT:
			if (cp == '/') {
				tag_start(b, true);
				return 0;
			}
			if (cp < 0x80 && isalpha((int)cp)) {
				tag_start(b, false);
				continue; /* the name's first letter */
			}
			if (cp == '!') {
				b->hs = H_BANG;
				return 0;
			}
			if (cp == '?') {
				b->hs = H_DECL;
				return 0;
			}
			/* "a < b": a plain '<' */
			b->hs = H_TEXT;
			if (html_text(b, '<') < 0)
				return -1;
			continue;
		case H_TAGNAME:
			if (cp == '>')
				return tag_end(b);
			if (is_html_space(cp) || cp == '/') {
				b->hs = H_TAG;
				return 0;
			}
			if (b->ntag < TAG_NAME_MAX)
				b->tag[b->ntag++] = cp < 0x80 ? (char)tolower((int)cp) : '?';
			else
				b->tag_long = true;
			return 0;
		case H_TAG:
			if (b->quote != 0) {
				if (cp == (uint32_t)b->quote)
					b->quote = 0;
				return 0;
			}
			if (cp == '>')
				return tag_end(b);
			if ((cp == '"' || cp == '\'') && b->after_eq)
				b->quote = (char)cp;
			else if (cp == '=')
				b->after_eq = true;
			else if (!is_html_space(cp))
				b->after_eq = false;
			return 0;
		case H_BANG:
			if (cp == '-') {
				b->hs = H_BANG_DASH;
				return 0;
			}
			b->hs = H_DECL;
			continue;
		case H_BANG_DASH:
			if (cp == '-') {
				b->hs = H_COMMENT;
				b->dashes = 0;
				return 0;
			}
			b->hs = H_DECL;
			continue;
		case H_COMMENT:
			if (cp == '-')
				b->dashes++;
			else if (cp == '>' && b->dashes >= 2)
				b->hs = H_TEXT;
			else
				b->dashes = 0;
			return 0;
		case H_DECL:
			if (cp == '>')
				b->hs = H_TEXT;
			return 0;
		case H_RAW: {
			uint32_t lc = cp < 0x80 ? (uint32_t)tolower((int)cp) : cp;
			if (lc == (unsigned char)b->raw_end[b->raw_match]) {
				if (b->raw_end[++b->raw_match] == '\0') {
					/* the end tag: its name, then up to '>' */
					tag_start(b, true);
					b->ntag = strlen(b->raw_end) - 2;
					memcpy(b->tag, b->raw_end + 2, b->ntag);
					b->raw_end = NULL;
					b->hs = H_TAG;
				}
			} else {
				b->raw_match = cp == '<' ? 1 : 0;
			}
			return 0;
		}
		case H_ENT:
			if (cp == ';')
				return entity_end(b, true);
			if (cp < 0x80 && b->nent < ENT_MAX &&
			    (isalnum((int)cp) || (cp == '#' && b->nent == 0))) {
				b->ent[b->nent++] = (char)cp;
				return 0;
			}
			if (entity_end(b, false) < 0)
				return -1;
			continue; /* cp ended the reference and is text itself */
		}
		return 0;
	}
}

/* Called at finish: whatever is half open is dropped (a tag) or given
 * back (a pending '<' or reference). */
static int
html_finish(struct mailtext_body *b)
{
	if (b->hs == H_LT) {
		b->hs = H_TEXT;
		return html_text(b, '<');
	}
	if (b->hs == H_ENT)
		return entity_end(b, false);
	return 0;
}

/* The charset stage's emit callback. */
static int
text_cp(void *arg, uint32_t cp)
{
	struct mailtext_body *b = arg;
	if (b->html)
		return html_cp(b, cp);
	/* a NUL would end the buffer as a C string */
	return out_cp(b, cp == 0 ? ' ' : cp);
}

/* ---- transfer decoding ---- */

static int
stage_flush(struct mailtext_body *b)
{
	size_t n = b->nstage;
	b->nstage = 0;
	if (n > 0 && mt_conv_feed(&b->conv, b->stage, n) < 0)
		return -1;
	return b->full ? -1 : 0;
}

static int
stage_put(struct mailtext_body *b, unsigned char c)
{
	b->stage[b->nstage++] = c;
	if (b->nstage == STAGE_MAX)
		return stage_flush(b);
	return 0;
}

static int
b64_value(unsigned char c)
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

/* The bytes of a partial quad ("QQ=" / "QUI="); padding restarts the
 * quad, so concatenated base64 decodes too. */
static int
b64_flush(struct mailtext_body *b)
{
	uint32_t a = b->b64_acc;
	unsigned n = b->b64_n;
	b->b64_acc = 0;
	b->b64_n = 0;
	if (n == 2)
		return stage_put(b, (unsigned char)(a >> 4));
	if (n == 3) {
		if (stage_put(b, (unsigned char)(a >> 10)) < 0)
			return -1;
		return stage_put(b, (unsigned char)(a >> 2));
	}
	return 0; /* one lone sextet carries no whole byte */
}

static int
b64_byte(struct mailtext_body *b, unsigned char c)
{
	int v = b64_value(c);
	if (v < 0)
		return c == '=' ? b64_flush(b) : 0; /* line breaks, garbage: skipped */
	b->b64_acc = b->b64_acc << 6 | (uint32_t)v;
	if (++b->b64_n < 4)
		return 0;
	uint32_t a = b->b64_acc;
	b->b64_acc = 0;
	b->b64_n = 0;
	if (stage_put(b, (unsigned char)(a >> 16)) < 0 || stage_put(b, (unsigned char)(a >> 8)) < 0)
		return -1;
	return stage_put(b, (unsigned char)a);
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f') /* lowercase is not RFC 2045, but seen */
		return c - 'a' + 10;
	return -1;
}

static int
qp_ws_flush(struct mailtext_body *b)
{
	size_t n = b->qp_nws;
	b->qp_nws = 0;
	for (size_t i = 0; i < n; i++)
		if (stage_put(b, b->qp_ws[i]) < 0)
			return -1;
	return 0;
}

/*
 * RFC 2045 6.7: "=XY" is a byte, "=" before a line end (after optional
 * blanks) is a soft break, blanks at the end of a line are dropped. A
 * bare CR is data; hard line ends are kept as they came (CRLF or LF).
 */
static int
qp_byte(struct mailtext_body *b, unsigned char c)
{
	for (;;) {
		switch (b->qp) {
		case Q_TEXT:
			if (c == ' ' || c == '\t') {
				if (b->qp_nws == QP_WS_MAX && qp_ws_flush(b) < 0)
					return -1;
				b->qp_ws[b->qp_nws++] = c;
				return 0;
			}
			if (c == '\r') {
				b->qp = Q_CR;
				return 0;
			}
			if (c == '\n') {
				b->qp_nws = 0;
				return stage_put(b, '\n');
			}
			if (qp_ws_flush(b) < 0)
				return -1;
			if (c == '=') {
				b->qp = Q_EQ;
				return 0;
			}
			return stage_put(b, c);
		case Q_CR:
			b->qp = Q_TEXT;
			if (c == '\n') {
				b->qp_nws = 0;
				if (stage_put(b, '\r') < 0)
					return -1;
				return stage_put(b, '\n');
			}
			if (qp_ws_flush(b) < 0 || stage_put(b, '\r') < 0)
				return -1;
			continue;
		case Q_EQ:
			if (hex_value(c) >= 0) {
				b->qp_hex = (char)c;
				b->qp = Q_EQ_HEX;
				return 0;
			}
			if (c == ' ' || c == '\t') {
				b->qp_ws[b->qp_nws++] = c; /* empty: flushed before '=' */
				b->qp = Q_EQ_WS;
				return 0;
			}
			if (c == '\r') {
				b->qp = Q_EQ_CR;
				return 0;
			}
			b->qp = Q_TEXT;
			if (c == '\n')
				return 0; /* soft line break */
			if (stage_put(b, '=') < 0)
				return -1;
			continue;
		case Q_EQ_HEX:
			b->qp = Q_TEXT;
			if (hex_value(c) >= 0)
				return stage_put(
				    b, (unsigned char)(hex_value((unsigned char)b->qp_hex) << 4 |
						       hex_value(c)));
			if (stage_put(b, '=') < 0 || stage_put(b, (unsigned char)b->qp_hex) < 0)
				return -1;
			continue;
		case Q_EQ_WS:
			if ((c == ' ' || c == '\t') && b->qp_nws < QP_WS_MAX) {
				b->qp_ws[b->qp_nws++] = c;
				return 0;
			}
			if (c == '\r') {
				b->qp = Q_EQ_CR;
				return 0;
			}
			if (c == '\n') {
				b->qp_nws = 0;
				b->qp = Q_TEXT;
				return 0; /* "=  \n": soft line break */
			}
			/* "= x": the '=' and the blanks were text */
			b->qp = Q_TEXT;
			if (stage_put(b, '=') < 0 || qp_ws_flush(b) < 0)
				return -1;
			continue;
		case Q_EQ_CR:
			if (c == '\n') {
				b->qp_nws = 0;
				b->qp = Q_TEXT;
				return 0; /* "=\r\n": soft line break */
			}
			/* "=\r" then no LF: '=' and blanks were text, CR is data */
			if (stage_put(b, '=') < 0 || qp_ws_flush(b) < 0)
				return -1;
			b->qp = Q_CR;
			continue;
		}
		return 0;
	}
}

static int
qp_finish(struct mailtext_body *b)
{
	int rc = 0;
	switch (b->qp) {
	case Q_TEXT: /* trailing blanks of the last line go */
	case Q_EQ:   /* "=" at the very end: a soft break */
	case Q_EQ_WS:
	case Q_EQ_CR:
		break;
	case Q_CR:
		rc = stage_put(b, '\r');
		break;
	case Q_EQ_HEX:
		if (stage_put(b, '=') < 0 || stage_put(b, (unsigned char)b->qp_hex) < 0)
			rc = -1;
		break;
	}
	b->qp = Q_TEXT;
	b->qp_nws = 0;
	return rc;
}

/* ---- API ---- */

/* "text/html; charset=x" -> does the type part equal t? */
static bool
type_is(const char *ct, const char *t)
{
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strcspn(ct, "; \t");
	return n == strlen(t) && strncasecmp(ct, t, n) == 0;
}

struct mailtext_body *
mailtext_body_new(struct arena *a, const char *content_type, const char *charset,
		  const char *transfer_encoding, struct buf *out)
{
	struct mailtext_body *b = arena_alloc(a, sizeof(*b));
	b->out = out;
	b->te = TE_IDENTITY;
	if (transfer_encoding != NULL) {
		if (type_is(transfer_encoding, "base64"))
			b->te = TE_BASE64;
		else if (type_is(transfer_encoding, "quoted-printable"))
			b->te = TE_QP;
		/* XXX x-uuencode and other rarities pass through undecoded */
	}
	b->html = content_type != NULL && (type_is(content_type, "text/html") ||
					   type_is(content_type, "application/xhtml+xml"));
	/* XXX no <meta charset> sniffing: the MIME charset decides */
	mt_conv_init(&b->conv, charset, charset != NULL ? strlen(charset) : 0, text_cp, b);
	return b;
}

int
mailtext_body_feed(struct mailtext_body *b, const void *data, size_t len)
{
	if (b->full || b->finished)
		return b->full ? -1 : 0;
	const unsigned char *p = data;
	if (b->te == TE_IDENTITY) {
		if (stage_flush(b) < 0 || mt_conv_feed(&b->conv, p, len) < 0)
			return -1;
		return b->full ? -1 : 0;
	}
	for (size_t i = 0; i < len; i++) {
		int rc = b->te == TE_BASE64 ? b64_byte(b, p[i]) : qp_byte(b, p[i]);
		if (rc < 0)
			return -1;
	}
	return stage_flush(b);
}

int
mailtext_body_finish(struct mailtext_body *b)
{
	if (b->finished)
		return b->full ? -1 : 0;
	b->finished = true;
	if (!b->full) {
		if (b->te == TE_BASE64)
			(void)b64_flush(b);
		else if (b->te == TE_QP)
			(void)qp_finish(b);
		(void)stage_flush(b);
	}
	(void)mt_conv_finish(&b->conv); /* also closes iconv after a cap */
	if (!b->full && b->html)
		(void)html_finish(b);
	return b->full ? -1 : 0;
}
