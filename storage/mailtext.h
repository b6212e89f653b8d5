/*
 * mailtext.h - mail text utilities for IMAP SEARCH, SORT/THREAD and the
 * full-text index: charset conversion to UTF-8, RFC 2047 header decoding,
 * the i;unicode-casemap collation (RFC 5051), the RFC 5256 base subject,
 * a streaming body-text decoder (base64 / quoted-printable, charset,
 * text/html stripping) and the index tokeniser.
 *
 * Everything here is pure: no I/O, no global state (iconv descriptors are
 * opened per call or per body decoder), safe from any thread. Every
 * function is bounded and accepts any bytes: bad input is repaired or
 * replaced (U+FFFD), never rejected. The only failure is an output
 * buffer's cap (struct buf, core/buf.h): the one-shot functions then
 * return -1 and leave the buffer as it was; the body decoder keeps the text
 * it has, cut at a character boundary.
 *
 * Charset rules (mailtext_charset_to_utf8, encoded words, body parts):
 *  - The name is trimmed of blanks and quotes, cut at '*' (RFC 2231
 *    language), compared case-insensitively; names longer than 40 bytes or
 *    with bytes outside [A-Za-z0-9._:+-] are treated as unknown (they never
 *    reach iconv_open, which gives "//" suffixes a meaning).
 *  - "utf-8"/"utf8": invalid sequences become U+FFFD, one per maximal
 *    ill-formed subpart (Unicode 15, 3.9).
 *  - "iso-8859-1"/"latin1"/"us-ascii"... and "windows-1252" are decoded by
 *    a built-in windows-1252 table, as every browser does (WHATWG): mail
 *    labelled Latin-1 is very often cp1252 (curly quotes in 0x80-0x9f).
 *  - "us-ascii", no charset, "x-unknown", "unknown-8bit" and any name iconv
 *    does not know: "auto": each well-formed UTF-8 sequence is UTF-8, each
 *    other byte is windows-1252. Decided per sequence, not per string, so a
 *    stream gives the same text however it is chunked; for a string that
 *    is wholly valid UTF-8 this is exactly "UTF-8 if valid", and for
 *    Latin-1 text it is Latin-1 unless a byte pair happens to form UTF-8.
 *  - Aliases to supersets: Shift_JIS/sjis -> CP932, gb2312/gbk -> GB18030,
 *    euc-kr/ks_c_5601-1987 -> CP949, big5 -> BIG5-HKSCS, tis-620 -> CP874.
 *  - Everything else goes to glibc iconv; bytes it rejects become U+FFFD
 *    (one per rejected byte) and decoding goes on.
 */
#ifndef TERN_MAILTEXT_H
#define TERN_MAILTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

/* Longest token mailtext_tokens() reports, in bytes (a longer word is cut
 * at a character boundary to its first <= 64 bytes). */
#define MAILTEXT_TOKEN_MAX 64

/* Appends in (len bytes, in charset; NULL or "" = unknown) to out as
 * UTF-8. 0, or -1 when out's cap is hit (out unchanged). */
int mailtext_charset_to_utf8(const char *charset, const char *in, size_t len, struct buf *out);

/*
 * Appends the decoded form of a header field body to out, as UTF-8:
 * unfolds (CRLF/LF + WSP -> WSP; a line break not followed by WSP -> SP),
 * decodes RFC 2047 encoded words (B or Q, any charset, RFC 2231
 * "charset*lang") wherever they stand (also next to '(' or '"', as MUAs
 * do), drops linear white space between adjacent encoded words (RFC 2047
 * 6.2), joins the bytes of adjacent words in the same charset before
 * converting (so a character split across two words survives); malformed
 * words stay as they are; other text is "auto" (above). 0, or -1 on cap.
 */
int mailtext_decode_header(const char *in, size_t len, struct buf *out);

/*
 * i;unicode-casemap canonical form (RFC 5051 section 2): each character
 * to its Unicode simple titlecase mapping (uc_totitle, not u8_totitle
 * which is word-aware and full), then NFKD, then the simple titlecase once
 * more so characters that decompose into lowercase letters (U+FB01 "fi",
 * U+338F "kg") match their spelled-out forms and the form is idempotent.
 * Invalid UTF-8 becomes U+FFFD. Simple mappings mean "ß" stays "ß": it does
 * not match "SS" (nor U+1E9E, which has no titlecase mapping). Appends to
 * out; 0, or -1 on cap (out unchanged).
 */
int mailtext_casemap(const char *utf8, size_t len, struct buf *out);

/* Substring test on two canonical forms (an empty needle always matches).
 * Canonical text is NFKD, so "E" matches inside "É" (E + U+0301). */
bool mailtext_contains(const char *haystack_canon, size_t hlen, const char *needle_canon,
		       size_t nlen);

/* Canonicalises both UTF-8 strings and tests containment: 1 match, 0 no
 * match, -1 when a canonical form would pass 64 MiB. */
int mailtext_match(const char *haystack, size_t hlen, const char *needle, size_t nlen);

/*
 * RFC 5256 section 2.1 base subject of an already decoded subject (run
 * mailtext_decode_header first; step 1's RFC 2047 decoding is that call).
 * Steps 1-6 exactly, with one leniency: a subj-blob may hold 8-bit (UTF-8)
 * characters, not only the ABNF's 7-bit BLOBCHAR, since the subject is
 * decoded before extraction ("[Liste-Café] Re: x" has base "x"). The text
 * is not case-folded (SORT compares base subjects with i;unicode-casemap).
 * *is_reply_r (may be NULL) is set when a subj-refwd, a "(fwd)" trailer or
 * a "[fwd: ...]" wrapper was removed (RFC 5256 THREAD). 0, or -1 on cap.
 */
int mailtext_base_subject(const char *subject_utf8, size_t len, struct buf *out, bool *is_reply_r);

/*
 * Streaming body-text decoder for one MIME leaf part: transfer decoding
 * (base64, quoted-printable; anything else is passed through), charset
 * conversion (rules above; charset NULL = unknown), and for text/html
 * (and application/xhtml+xml) markup stripping: tags and comments go,
 * <script>/<style> content goes, tags other than inline ones (a, b, span,
 * font...) become one space, runs of white space become one space,
 * character references (&amp; &eacute; &#233; &#xE9;) are decoded
 * (&nbsp; becomes a space). Other types give the text as decoded.
 * Feeding in any chunking gives the same output as one whole feed.
 * The decoder lives in arena a; out is borrowed until finish.
 */
struct mailtext_body;

struct mailtext_body *mailtext_body_new(struct arena *a, const char *content_type,
					const char *charset, const char *transfer_encoding,
					struct buf *out);
/* 0, or -1 once out's cap is reached (the text so far stays, cut at a
 * character boundary; later feeds do nothing). */
int mailtext_body_feed(struct mailtext_body *b, const void *data, size_t len);
/* Flushes what is pending (a partial base64 quad, an incomplete character
 * becomes U+FFFD) and releases the iconv descriptor: call it once at the
 * end, also after a -1 or when abandoning the part. Same return values. */
int mailtext_body_finish(struct mailtext_body *b);

/*
 * Tokeniser for the full-text index, on canonical (mailtext_casemap) text.
 * A word is a run of letters and digits (uc_is_alnum), combining marks
 * inside it included; everything else separates. Rules:
 *  - words of fewer than 2 characters are not reported;
 *  - words longer than MAILTEXT_TOKEN_MAX bytes are reported as their
 *    first <= 64 bytes (whole characters);
 *  - Han and kana (no spaces between words) are reported as overlapping
 *    pairs of characters ("日本語" -> "日本", "本語"); a lone one is
 *    reported alone.
 * Each token is a slice of the input (not NUL-terminated). Returns how
 * many tokens fn got. SEARCH semantics are substring matching, so the
 * index only narrows candidates: a needle is tokenised the same way and
 * every candidate is confirmed with mailtext_contains on its text; a
 * needle that yields no token (1-character words, punctuation) and words
 * the needle may cut mid-way (its first and last) cannot use the exact
 * token index and fall back to scanning.
 */
size_t mailtext_tokens(const char *canon_utf8, size_t len,
		       void (*fn)(void *arg, const char *tok, size_t toklen), void *arg);

/* ---- the searchable text of a stored message (mailtext_msg.c) ---- */

#define MAILTEXT_HEADER_MAX (1u << 20) /* header bytes read per message */
#define MAILTEXT_TEXT_MAX (8u << 20)   /* decoded body text per message */
#define MAILTEXT_CANON_MAX (32u << 20) /* its canonical form */
#define MAILTEXT_PARTS_MAX 1000u       /* MIME parts walked per message */

/* Appends bytes [off, off + len) of the message (trace + body) to out;
 * 0, or -1 (nothing more is read of that part). */
typedef int mailtext_read_fn(void *arg, uint64_t off, uint64_t len, struct buf *out);

/* Skips blanks, line ends and (nested) comments. */
const char *mailtext_skip_cfws(const char *p, const char *end);
/* Calls fn for each field named name (case-insensitive) in a header block
 * with its raw value (folded, as stored); stops when fn returns true, and
 * returns that. */
bool mailtext_each_field(const char *h, size_t len, const char *name, size_t nlen,
			 bool (*fn)(void *arg, const char *v, size_t vlen), void *arg);
/* The first such field's raw value (false, *v_r NULL when none). */
bool mailtext_first_field(const char *h, size_t len, const char *name, const char **v_r,
			  size_t *vlen_r);
/* Appends the canonical form of UTF-8 text to out in slices cut at
 * character boundaries, so a cap keeps what fits rather than nothing. */
void mailtext_canon_append(const char *t, size_t len, struct buf *out);
/* A raw header block decoded (RFC 2047), unfolded, appended as canonical
 * text followed by one space. */
void mailtext_header_canon(const char *h, size_t len, struct buf *out);
/* The canonical text of a message's body as SEARCH BODY sees it: every
 * text/ * leaf decoded, and the headers of attached messages, each followed
 * by one space. mime: the stored structure (storage/mime.h); trace_len:
 * where the body starts in rd's offsets; scratch lives in a. */
void mailtext_msg_body(const void *mime, size_t mime_len, uint64_t trace_len, mailtext_read_fn *rd,
		       void *arg, struct arena *a, struct buf *canon);

/* A preview of the message for RFC 8970 FETCH PREVIEW: the text of its
 * first text/plain part that is not an attachment (else of its first
 * text/html one, markup stripped), outside attached messages, of which
 * at most the first 64 KiB are decoded; quoted lines (">") are left out,
 * the text stops at a signature line ("-- "), white space and control
 * characters become single spaces, and at most max_chars characters
 * (whole UTF-8 sequences) are appended to out. Nothing is appended when
 * the message has no such part. */
void mailtext_msg_preview(const void *mime, size_t mime_len, uint64_t trace_len,
			  mailtext_read_fn *rd, void *arg, struct arena *a, size_t max_chars,
			  struct buf *out);

#endif
