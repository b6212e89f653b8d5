/*
 * mailtext_internal.h - the streaming charset converter shared by the
 * mailtext_*.c files (not for other modules).
 *
 * A converter turns bytes in one charset into Unicode code points handed
 * one at a time to an emit callback; it holds an incomplete character
 * across feeds, so any chunking gives the same code points. Emit returns
 * 0, or -1 to stop (output cap): the converter then drops all further
 * input and every call returns -1.
 */
#ifndef TERN_MAILTEXT_INTERNAL_H
#define TERN_MAILTEXT_INTERNAL_H

#include <iconv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef int (*mt_emit_fn)(void *arg, uint32_t cp);

enum mt_mode {
	MT_UTF8,   /* labelled UTF-8: ill-formed -> U+FFFD */
	MT_AUTO,   /* unknown: UTF-8 sequences as such, other bytes cp1252 */
	MT_CP1252, /* Latin-1 labels and windows-1252, built in */
	MT_ICONV,
};

/* Longest incomplete character carried between feeds (GB18030 has 4
 * bytes, ISO-2022 escapes 4; 16 is ample). */
#define MT_PEND_MAX 16

struct mt_conv {
	enum mt_mode mode;
	iconv_t cd; /* owned; (iconv_t)-1 unless MT_ICONV */
	unsigned char pend[MT_PEND_MAX];
	size_t npend;
	bool stopped;
	mt_emit_fn emit;
	void *arg;
};

/* charset may be NULL or not NUL-terminated: n bytes of it are used. */
void mt_conv_init(struct mt_conv *c, const char *charset, size_t n, mt_emit_fn emit, void *arg);
int mt_conv_feed(struct mt_conv *c, const void *in, size_t len);
/* Flushes an incomplete character (U+FFFD), closes iconv. Idempotent. */
int mt_conv_finish(struct mt_conv *c);

/* The windows-1252 character of byte c (holes map to C1 controls). */
uint32_t mt_cp1252(unsigned char c);

/* Appends cp as UTF-8 to a struct buf passed as arg (an mt_emit_fn). */
int mt_emit_buf(void *arg, uint32_t cp);
/* Restores b to length len after a failed one-shot operation. */
void mt_buf_truncate(struct buf *b, size_t len);

#endif
