/*
 * smtp_data.c - DATA reader: dot-unstuffing, end of data, CRLF storage
 * and the size limit (see smtp_data.h). Failure is recorded in d->error,
 * never returned early, so the caller always reads to the end.
 */
#include "smtp_data.h"

void
smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max)
{
	d->out = out;
	d->max = max;
	d->size = 0;
	d->lines = 0;
	d->prev_crlf = true; /* the 354 reply stands for the first CRLF */
	d->bare_lf = false;
	d->error = SMTP_DATA_OK;
}

static void
fail(struct smtp_data *d, int error)
{
	if (d->error == SMTP_DATA_OK)
		d->error = error;
}

enum smtp_data_result
smtp_data_line(struct smtp_data *d, const char *line, size_t len, bool had_cr)
{
	bool prev_crlf = d->prev_crlf;

	d->prev_crlf = had_cr;
	if (!had_cr)
		d->bare_lf = true;
	if (len == 1 && line[0] == '.') {
		if (had_cr && prev_crlf)
			return SMTP_DATA_END;
		/* "<LF>.": not an end; kept as the content it is. */
	} else if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	d->lines++;
	/* size + len + 2 cannot wrap: len is bounded by the line limit */
	d->size += len + 2;
	if (d->size > d->max)
		fail(d, SMTP_DATA_TOO_BIG);
	if (d->error != SMTP_DATA_OK)
		return SMTP_DATA_MORE;
	if (buf_append(d->out, line, len) < 0 || buf_append(d->out, "\r\n", 2) < 0)
		fail(d, SMTP_DATA_TOO_BIG); /* the buffer's cap is a second guard */
	return SMTP_DATA_MORE;
}

void
smtp_data_line_too_long(struct smtp_data *d)
{
	/* We cannot know how the dropped line ended; assume CRLF so that a
	 * following "." still ends the message. */
	d->prev_crlf = true;
	fail(d, SMTP_DATA_LINE_TOO_LONG);
}
