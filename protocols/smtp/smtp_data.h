/*
 * smtp_data.h - the DATA reader (RFC 5321 4.5.2, 3.3): takes the lines of
 * a message as the line reader delivers them, undoes dot-stuffing, finds
 * the end (a "." line), stores every line with CRLF (bare LF converted)
 * and counts the size against the limit. Pure, no I/O; one owner thread.
 *
 * The end of data is only a "." line that ends in CRLF and follows a line
 * that ended in CRLF (or the 354 reply): an "<LF>.<LF>" or "<LF>.<CR><LF>"
 * does not end it, so a message cannot be split in two differently than
 * the sending MTA saw it (SMTP smuggling, CVE-2023-51766 and friends).
 * Such a "." line is kept as content.
 *
 * Over-size messages and over-long lines do not stop the reading: the
 * reader keeps consuming to the end, stores nothing more, and reports the
 * failure when the end comes, so the client gets one clean error reply.
 */
#ifndef TERN_SMTP_DATA_H
#define TERN_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

enum smtp_data_result {
	SMTP_DATA_MORE = 0, /* keep feeding lines */
	SMTP_DATA_END = 1,  /* the end-of-data line was seen */
};

enum smtp_data_error {
	SMTP_DATA_OK = 0,
	SMTP_DATA_TOO_BIG = -1,	      /* over max bytes (552 5.3.4) */
	SMTP_DATA_LINE_TOO_LONG = -2, /* a line over the reader's limit */
};

struct smtp_data {
	struct buf *out; /* borrowed: the message is appended here */
	uint64_t max;	 /* message size limit (bytes, CRLF counted) */
	uint64_t size;	 /* bytes of message seen so far, stored or not */
	uint64_t lines;
	bool prev_crlf; /* the previous line ended in CRLF */
	bool bare_lf;	/* some line ended in a bare LF (converted) */
	int error;	/* enum smtp_data_error: first failure */
};

/* out keeps what is already in it (e.g. a Received header); max counts
 * only the message bytes. */
void smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max);
/* One line without its terminator; had_cr tells whether it ended in CRLF
 * (linereader's had_cr). */
enum smtp_data_result smtp_data_line(struct smtp_data *d, const char *line, size_t len,
				     bool had_cr);
/* The line reader dropped an over-long line: the message fails. */
void smtp_data_line_too_long(struct smtp_data *d);

#endif
