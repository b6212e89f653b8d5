/*
 * linereader.h - pure, resumable line assembler (no I/O).
 * Bytes go in, whole lines come out, one at a time. A line ends at LF; a CR
 * just before it is stripped (so bare LF is accepted, as most servers do).
 * A line longer than max is not kept: its bytes are discarded up to the
 * next LF and LR_TOO_LONG is returned once for it, so the protocol can send
 * one error and either resynchronise or close (STYLE rule 14).
 */
#ifndef TERN_LINEREADER_H
#define TERN_LINEREADER_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

enum lr_result { LR_NEED_MORE = 0, LR_LINE = 1, LR_TOO_LONG = 2 };

struct linereader {
	struct buf line; /* owned: the line being assembled */
	size_t max;	 /* longest line, without its CRLF */
	bool overflow;	 /* discarding the rest of a too-long line */
	bool had_cr;	 /* the line ended in CRLF (else bare LF) */
	bool returned;	 /* line holds the last LR_LINE; dropped on the next call */
};

void lr_init(struct linereader *lr, size_t max);
void lr_free(struct linereader *lr);
void lr_set_max(struct linereader *lr, size_t max);
/* Consumes bytes from data (stopping after the first LF) and sets
 * *consumed_r. On LR_LINE, *line_r and *len_r hold the line without its
 * terminator, NUL-terminated and writable, valid until the next call. */
enum lr_result lr_feed(struct linereader *lr, const char *data, size_t len, size_t *consumed_r,
		       char **line_r, size_t *len_r);
/* Bytes of a partial line held (for "nothing may follow STARTTLS"). */
size_t lr_pending(const struct linereader *lr);
/* Drops any partial line. */
void lr_reset(struct linereader *lr);

#endif
