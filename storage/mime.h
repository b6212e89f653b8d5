/*
 * mime.h - MIME structure of a stored message: parsed once at delivery so
 * that IMAP FETCH (BODYSTRUCTURE, BODY, ENVELOPE, BODY[section], BINARY)
 * never re-parses a message.
 *
 * Three layers:
 *  - mime.c: a pure, resumable parser. Bytes in (any chunking; one byte at a
 *    time gives the same tree as the whole message), a part tree out. No
 *    I/O. Memory is bounded independently of the message size: only header
 *    blocks are buffered (each capped, and a total cap across parts); body
 *    bytes are only counted and scanned for boundary lines.
 *  - mime_imap.c: RFC 9051 renderings (BODYSTRUCTURE, BODY, ENVELOPE).
 *  - mime_encode.c: a compact, versioned binary table of the part tree for
 *    the message record, with the top-level renderings inside, read in place
 *    (no tree rebuilt) and validated on every read.
 *
 * Offsets: every offset is relative to the first byte given to the parser.
 * The store presents a message as per-recipient trace headers
 * (Return-Path, Delivered-To) followed by the parsed input, so it adds the
 * trace length to every offset, and to the length of the top-level header
 * (the trace becomes part of it). Nothing rendered here depends on the
 * top-level header size, so the cached strings stay valid for every
 * recipient.
 *
 * Ownership: the parser and everything it returns live in the caller's
 * arena. Renderers append to a caller's struct buf. Not thread-safe per
 * parser; separate parsers are independent.
 *
 * Malformed MIME is never rejected; the rules (same spirit as Dovecot):
 *  - Line ends are LF or CRLF, mixed freely; a bare CR is data. A line is
 *    a boundary line when it is "--" boundary, optionally followed by "--"
 *    (close delimiter), then only spaces/tabs. Lines longer than 1024 bytes
 *    are never boundary lines. A boundary line is checked against every
 *    enclosing multipart, innermost first; matching an outer one ends every
 *    part inside it (a missing close delimiter is tolerated). After its
 *    close delimiter a multipart's boundary is no longer looked for.
 *  - The CRLF (or LF) before a boundary line belongs to the boundary; a
 *    part ended by a boundary while still in its header keeps the header
 *    bytes up to there and has an empty body.
 *  - A header block ends at the first empty line; without one, everything
 *    to the end of the part is header and the body is empty. Lines in a
 *    header without a colon are kept in the block but ignored as fields.
 *    Each header block is collected up to max_header bytes (and within
 *    max_header_total for the whole message); past that, offsets are still
 *    exact but later fields are ignored (MIME_PART_HEADER_TRUNCATED).
 *    NUL bytes in collected header values become spaces.
 *  - No Content-Type, or one whose type/subtype cannot be parsed: text/plain
 *    with charset=US-ASCII (message/rfc822 inside multipart/digest).
 *  - A multipart that ends with no body part (boundary parameter missing,
 *    empty or longer than MIME_MAX_BOUNDARY, or its delimiter never seen)
 *    gets one synthetic child: text/plain; charset=US-ASCII, 7bit, with an
 *    empty header, covering the multipart's whole body (MIME_PART_SYNTHETIC),
 *    so BODYSTRUCTURE stays valid and the content stays reachable as N.1.
 *  - Nesting: a multipart or message/rfc822 part at depth >= max_depth
 *    (root is 0) is a leaf of its declared type (MIME_PART_DEPTH_LIMIT);
 *    after max_parts parts, delimiters that would open a new part are body
 *    text. A message/rfc822 or message/global part that is not descended
 *    into (depth/parts limit, or base64/quoted-printable encoded, which it
 *    may not be) is rendered as APPLICATION/OCTET-STREAM, since clients
 *    expect an envelope after MESSAGE/RFC822.
 *  - RFC 2231 parameters (name*0*=...) are kept as the raw parameters they
 *    are; RFC 2047 words are never decoded (ENVELOPE wants them raw).
 *  - Addresses: RFC 5322 with obsolete forms; routes are dropped, a
 *    comment after a bare addr-spec becomes the display name, a missing
 *    domain is rendered as ".MISSING-HOST-NAME.", an address with neither
 *    local part nor name is dropped, an unterminated group is closed.
 *  - Body line counts: LF count, plus one for a non-empty unterminated last
 *    line. Decoded sizes: base64 = 3/4 of the alphabet characters (rest
 *    ignored); quoted-printable: soft breaks and trailing white space
 *    removed, "=XX" one byte, a malformed "=" kept literally, hard line
 *    breaks counted as written (CRLF 2, LF 1). The BINARY decoder must
 *    follow the same rules.
 */
#ifndef TERN_MIME_H
#define TERN_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct buf;

#define MIME_DEFAULT_MAX_HEADER (64u * 1024u)
#define MIME_DEFAULT_MAX_HEADER_TOTAL (4u * 1024u * 1024u)
#define MIME_DEFAULT_MAX_DEPTH 64u
#define MIME_DEFAULT_MAX_PARTS 5000u
#define MIME_MAX_BOUNDARY 200

/* Errors (all negative). */
#define MIME_ERR_NOT_FOUND (-1) /* section does not exist */
#define MIME_ERR_SYNTAX (-2)	/* section string malformed */
#define MIME_ERR_CORRUPT (-3)	/* stored encoding invalid */
#define MIME_ERR_LIMIT (-4)	/* output buffer cap reached */

struct mime_limits {
	size_t max_header;	 /* bytes collected per header block */
	size_t max_header_total; /* bytes collected over all header blocks */
	unsigned max_depth;	 /* nesting of multipart/message parts */
	unsigned max_parts;	 /* parts in the whole tree */
};

enum mime_kind {
	MIME_KIND_LEAF = 0,
	MIME_KIND_MULTIPART = 1, /* children are the body parts */
	MIME_KIND_MESSAGE = 2,	 /* message/rfc822|global: one child, the message */
};

enum mime_encoding {
	MIME_ENC_7BIT = 0,
	MIME_ENC_8BIT,
	MIME_ENC_BINARY,
	MIME_ENC_BASE64,
	MIME_ENC_QP,
	MIME_ENC_OTHER, /* unknown: BINARY answers UNKNOWN-CTE */
};

struct mime_param {
	const char *name;  /* as given */
	const char *value; /* unquoted, unfolded */
};

/* One ENVELOPE address. Group start: mailbox = group name, name and host
 * NULL; group end: all NULL. The route (adl) is always NIL. */
struct mime_address {
	const char *name;
	const char *mailbox;
	const char *host;
	struct mime_address *next;
};

/* Raw (unfolded, trimmed) values; NULL when the field is absent. */
struct mime_envelope {
	const char *date, *subject, *in_reply_to, *message_id;
	struct mime_address *from, *sender, *reply_to, *to, *cc, *bcc;
};

#define MIME_PART_HEADER_TRUNCATED 0x01 /* fields past the cap ignored */
#define MIME_PART_NO_END 0x02		/* multipart: no close delimiter */
#define MIME_PART_SYNTHETIC 0x04	/* made up for an empty multipart */
#define MIME_PART_DEPTH_LIMIT 0x08	/* container kept as a leaf */
#define MIME_PART_DEFAULT_TYPE 0x10	/* no usable Content-Type */

struct mime_part {
	struct mime_part *parent, *children, *next;
	unsigned nchildren, depth, flags;
	enum mime_kind kind;
	uint64_t hdr_off, hdr_len;   /* header incl. the empty separator line */
	uint64_t body_off, body_len; /* body as stored (transfer-encoded) */
	uint64_t body_lines;
	uint64_t decoded_size;	    /* body_len unless base64/quoted-printable */
	const char *type, *subtype; /* lower-case; rendered upper-case */
	struct mime_param *params;
	unsigned nparams;
	const char *id, *description, *md5, *location; /* raw, NULL if absent */
	const char *encoding_raw;		       /* NULL: 7bit */
	enum mime_encoding encoding;
	const char *disposition; /* lower-case type, NULL if absent */
	struct mime_param *disp_params;
	unsigned ndisp_params;
	const char **languages;
	unsigned nlanguages;
	/* non-NULL for a message header: the root and the child of every
	 * MIME_KIND_MESSAGE part */
	struct mime_envelope *envelope;
};

struct mime_parser;

/* Fills in the defaults above. */
void mime_limits_default(struct mime_limits *lim);

/* A parser whose memory (and result) lives in a; lim NULL = defaults. */
struct mime_parser *mime_parser_new(struct arena *a, const struct mime_limits *lim);
/* Any chunking; ignored after finish. */
void mime_parser_feed(struct mime_parser *p, const void *data, size_t len);
/* Ends the input and returns the tree (never fails for any input; 0). */
int mime_parser_finish(struct mime_parser *p, struct mime_part **root_r);
/* new + feed + finish. */
int mime_parse(struct arena *a, const struct mime_limits *lim, const void *data, size_t len,
	       struct mime_part **root_r);

/* mime_imap.c: RFC 9051 renderings appended to out; 0 or MIME_ERR_LIMIT
 * when out's cap is reached (out then holds a partial rendering). */
int mime_render_bodystructure(const struct mime_part *part, bool extensible, struct buf *out);
int mime_render_envelope(const struct mime_part *part, struct buf *out);
/* An IMAP nstring: NIL, a quoted string, or a literal for CR/LF/8-bit. */
int mime_render_nstring(const char *s, struct buf *out);

/* mime_encode.c: the stored form. */
struct mime_section {
	enum mime_kind kind;
	enum mime_encoding encoding;
	/* the part's MIME header (BODY[N.MIME]); for "" the message header */
	uint64_t hdr_off, hdr_len;
	/* BODY[N] (for "" the message's body, i.e. BODY[TEXT]) */
	uint64_t body_off, body_len;
	uint64_t decoded_size; /* BINARY.SIZE[N] */
	/* For "" and message/rfc822 parts: the message's header and text
	 * (BODY[N.HEADER], BODY[N.TEXT], BODY[N.HEADER.FIELDS ...]). */
	bool has_message;
	uint64_t msg_hdr_off, msg_hdr_len, msg_body_off, msg_body_len;
	/* The header concerned is the top-level one: the store adds the trace
	 * length to its length (and to every offset, as always). */
	bool hdr_is_top, msg_hdr_is_top;
};

/* Appends the encoding of the tree (with its top-level BODYSTRUCTURE,
 * BODY and ENVELOPE) to out; 0 or MIME_ERR_LIMIT. */
int mime_encode(const struct mime_part *root, struct buf *out);
/* 0 when enc is a well-formed encoding, else MIME_ERR_CORRUPT. */
int mime_encoded_check(const void *enc, size_t len);
/* Resolves an IMAP section part path ("", "1", "2.1", ...) in RFC 9051
 * numbering; 0, MIME_ERR_NOT_FOUND, MIME_ERR_SYNTAX or MIME_ERR_CORRUPT. */
int mime_section_find(const void *enc, size_t len, const char *section, struct mime_section *r);
/* The cached renderings, pointing into enc (valid as long as enc is). */
int mime_encoded_bodystructure(const void *enc, size_t len, const char **s_r, size_t *len_r);
int mime_encoded_body(const void *enc, size_t len, const char **s_r, size_t *len_r);
int mime_encoded_envelope(const void *enc, size_t len, const char **s_r, size_t *len_r);
/* The size of the parsed input the offsets refer to. */
int mime_encoded_msg_size(const void *enc, size_t len, uint64_t *size_r);

const char *mime_strerror(int err);

#endif
