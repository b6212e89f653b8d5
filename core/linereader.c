/*
 * linereader.c - pure, resumable line assembler (see linereader.h).
 * Failure: never allocates past max + 1 bytes (the line and a possible CR);
 * a longer line is dropped and reported once as LR_TOO_LONG when its LF
 * arrives, after which reading resumes with the next line.
 */
#include "core/linereader.h"

#include <stdint.h>
#include <string.h>

void
lr_init(struct linereader *lr, size_t max)
{
	memset(lr, 0, sizeof(*lr));
	lr_set_max(lr, max);
}

void
lr_free(struct linereader *lr)
{
	buf_free(&lr->line);
	lr->overflow = false;
	lr->returned = false;
}

void
lr_set_max(struct linereader *lr, size_t max)
{
	if (max > SIZE_MAX - 2)
		max = SIZE_MAX - 2;
	lr->max = max;
	/* Room for the line and the CR of its CRLF; the CR is stripped. */
	lr->line.max = max + 1;
}

size_t
lr_pending(const struct linereader *lr)
{
	if (lr->returned)
		return 0;
	/* A discarded too-long line still counts: bytes of it are pending. */
	return lr->overflow ? lr->line.len + 1 : lr->line.len;
}

void
lr_reset(struct linereader *lr)
{
	buf_reset(&lr->line);
	lr->overflow = false;
	lr->returned = false;
}

enum lr_result
lr_feed(struct linereader *lr, const char *data, size_t len, size_t *consumed_r, char **line_r,
	size_t *len_r)
{
	if (lr->returned)
		lr_reset(lr);
	*consumed_r = 0;
	if (len == 0)
		return LR_NEED_MORE;

	const char *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) : len; /* bytes before the LF */

	if (!lr->overflow) {
		if (buf_append(&lr->line, data, take) < 0) {
			/* More than max + 1 bytes before the LF: too long even if
			 * the last one is a CR. Forget what we have. */
			buf_reset(&lr->line);
			lr->overflow = true;
		}
	}
	if (lf == NULL) {
		*consumed_r = len;
		return LR_NEED_MORE;
	}
	*consumed_r = take + 1;

	struct buf *b = &lr->line;
	lr->had_cr = false;
	if (!lr->overflow && b->len > 0 && b->data[b->len - 1] == '\r') {
		lr->had_cr = true;
		b->len--;
		b->data[b->len] = '\0';
	} else if (lr->overflow) {
		/* take may be 0 for an LF on its own: look at the byte before
		 * it only when it came in this call. */
		lr->had_cr = take > 0 && data[take - 1] == '\r';
	}
	if (lr->overflow || b->len > lr->max) {
		lr_reset(lr);
		return LR_TOO_LONG;
	}
	/* An empty line: make sure data is allocated, so *line_r is writable. */
	if (buf_reserve(b, 0) == NULL) {
		lr_reset(lr);
		return LR_TOO_LONG;
	}
	lr->returned = true;
	*line_r = b->data;
	*len_r = b->len;
	return LR_LINE;
}
