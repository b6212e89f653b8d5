/*
 * ternctl_out.c - how ternctl shows replies to a person: lists as aligned
 * tables, one object as "key: value" lines, a job's progress as one line.
 * Scripts use --json instead (the reply as the server sent it), so this
 * text may change between versions; the JSON is the contract.
 * Nothing here fails: a value that does not fit the expected shape is
 * shown as compact JSON.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ternctl.h"
#include "core/compat.h"

#define CELL_MAX (64u << 10)

void
ternctl_scalar_text(struct buf *out, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		buf_append(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		buf_printf(out, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		buf_append_str(out, "yes");
		break;
	case JSON_FALSE:
		buf_append_str(out, "no");
		break;
	case JSON_NULL:
		buf_append_str(out, "-");
		break;
	case JSON_ARRAY: {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
		{
			if (i > 0)
				buf_append_str(out, ", ");
			if (json_is_object(e) || json_is_array(e)) {
				char *s = json_dumps(e, JSON_COMPACT);
				buf_append_str(out, s != NULL ? s : "?");
				free(s);
			} else {
				ternctl_scalar_text(out, e);
			}
		}
		if (json_array_size(v) == 0)
			buf_append_str(out, "-");
		break;
	}
	case JSON_OBJECT: {
		char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		buf_append_str(out, s != NULL ? s : "?");
		free(s);
		break;
	}
	}
}

/* Control characters from the server never reach the terminal as is. */
static void
put_clean(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static bool
is_object_array(const json_t *v)
{
	return json_is_array(v) && json_array_size(v) > 0 && json_is_object(json_array_get(v, 0));
}

static void
print_flat(FILE *f, const json_t *obj, const char *prefix, size_t width, json_t *tables)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		char *name = xstrfmt("%s%s", prefix, key);
		if (json_is_object(v) && json_object_size(v) > 0) {
			char *sub = xstrfmt("%s.", name);
			print_flat(f, v, sub, width, tables);
			free(sub);
		} else if (is_object_array(v)) {
			json_object_set(tables, name, v);
		} else {
			struct buf b;
			buf_init(&b, CELL_MAX);
			ternctl_scalar_text(&b, v);
			fprintf(f, "%s:%*s ", name,
				(int)(width > strlen(name) ? width - strlen(name) : 0), "");
			put_clean(f, buf_cstr(&b));
			fputc('\n', f);
			buf_free(&b);
		}
		free(name);
	}
}

static size_t
key_width(const json_t *obj, size_t prefix)
{
	size_t w = 0;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t k = prefix + strlen(key);
		if (json_is_object(v) && json_object_size(v) > 0)
			k = key_width(v, k + 1);
		if (k > w)
			w = k;
	}
	return w;
}

void
ternctl_print_object(FILE *f, const json_t *obj)
{
	if (!json_is_object(obj)) {
		struct buf b;
		buf_init(&b, CELL_MAX);
		ternctl_scalar_text(&b, obj);
		put_clean(f, buf_cstr(&b));
		fputc('\n', f);
		buf_free(&b);
		return;
	}
	json_t *tables = json_object();
	print_flat(f, obj, "", key_width(obj, 0), tables);
	const char *key;
	json_t *v;
	json_object_foreach(tables, key, v)
	{
		fprintf(f, "\n%s:\n", key);
		ternctl_print_table(f, v, NULL);
	}
	json_decref(tables);
}

void
ternctl_print_table(FILE *f, const json_t *rows, const char *columns)
{
	size_t nrows = json_array_size(rows);
	char **cols = NULL;
	size_t ncols = 0;

	if (columns != NULL) {
		char *copy = xstrdup(columns), *save = NULL;
		for (char *c = strtok_r(copy, ",", &save); c != NULL;
		     c = strtok_r(NULL, ",", &save)) {
			cols = xrealloc(cols, (ncols + 1) * sizeof(*cols));
			cols[ncols++] = xstrdup(c);
		}
		free(copy);
	} else if (nrows > 0 && json_is_object(json_array_get(rows, 0))) {
		const char *key;
		json_t *v;
		json_object_foreach(json_array_get(rows, 0), key, v)
		{
			if (json_is_object(v) || is_object_array(v))
				continue; /* too big for a cell: --json shows it */
			cols = xrealloc(cols, (ncols + 1) * sizeof(*cols));
			cols[ncols++] = xstrdup(key);
		}
	}
	if (nrows == 0) {
		fprintf(f, "(none)\n");
		goto out;
	}
	if (ncols == 0) {
		/* An array of scalars: one per line. */
		for (size_t i = 0; i < nrows; i++) {
			struct buf b;
			buf_init(&b, CELL_MAX);
			ternctl_scalar_text(&b, json_array_get(rows, i));
			put_clean(f, buf_cstr(&b));
			fputc('\n', f);
			buf_free(&b);
		}
		goto out;
	}

	/* Cells as text first, to know the widths. */
	struct buf *cells = xcalloc(nrows * ncols, sizeof(*cells));
	size_t *width = xcalloc(ncols, sizeof(*width));
	for (size_t c = 0; c < ncols; c++)
		width[c] = strlen(cols[c]);
	for (size_t r = 0; r < nrows; r++) {
		json_t *row = json_array_get(rows, r);
		for (size_t c = 0; c < ncols; c++) {
			struct buf *b = &cells[r * ncols + c];
			buf_init(b, CELL_MAX);
			/* A dotted column ("progress.message") reaches into an object. */
			json_t *v = row;
			char *path = xstrdup(cols[c]), *save = NULL;
			for (char *k = strtok_r(path, ".", &save); k != NULL && v != NULL;
			     k = strtok_r(NULL, ".", &save))
				v = json_is_object(v) ? json_object_get(v, k) : NULL;
			free(path);
			if (v == NULL)
				buf_append_str(b, "-");
			else
				ternctl_scalar_text(b, v);
			if (b->len > width[c])
				width[c] = b->len;
		}
	}
	for (size_t c = 0; c < ncols; c++) {
		for (const char *p = cols[c]; *p != '\0'; p++)
			fputc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : (*p == '.' ? '_' : *p), f);
		if (c + 1 < ncols)
			fprintf(f, "%*s", (int)(width[c] - strlen(cols[c]) + 2), "");
	}
	fputc('\n', f);
	for (size_t r = 0; r < nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			struct buf *b = &cells[r * ncols + c];
			put_clean(f, buf_cstr(b));
			if (c + 1 < ncols)
				fprintf(f, "%*s", (int)(width[c] - b->len + 2), "");
			buf_free(b);
		}
		fputc('\n', f);
	}
	free(cells);
	free(width);
out:
	for (size_t c = 0; c < ncols; c++)
		free(cols[c]);
	free(cols);
}

void
ternctl_job_progress_text(struct buf *out, const json_t *job)
{
	const char *kind = json_string_value(json_object_get(job, "kind"));
	const char *state = json_string_value(json_object_get(job, "state"));
	json_t *p = json_object_get(job, "progress");
	buf_printf(out, "%s: ", kind != NULL ? kind : "job");
	if (json_is_object(p)) {
		json_int_t done = json_integer_value(json_object_get(p, "done"));
		json_int_t total = json_integer_value(json_object_get(p, "total"));
		const char *unit = json_string_value(json_object_get(p, "unit"));
		const char *msg = json_string_value(json_object_get(p, "message"));
		if (total > 0)
			buf_printf(out,
				   "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "%s%s (%d%%)",
				   done, total, unit != NULL ? " " : "", unit != NULL ? unit : "",
				   (int)(done * 100 / total));
		else
			buf_printf(out, "%" JSON_INTEGER_FORMAT "%s%s", done,
				   unit != NULL ? " " : "", unit != NULL ? unit : "");
		if (msg != NULL && msg[0] != '\0')
			buf_printf(out, " - %s", msg);
	} else if (json_is_number(p)) {
		/* An older form: a fraction 0..1. */
		buf_printf(out, "%d%%", (int)(json_number_value(p) * 100));
	} else {
		buf_append_str(out, state != NULL ? state : "running");
	}
}

void
ternctl_err(const char *fmt, ...)
{
	va_list ap;
	fputs("ternctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
