/*
 * dir_filter.c - the one place where values enter LDAP filters (STYLE rule
 * 17): RFC 4515 escaping and "%u"/"%a" template expansion (also with a
 * bare '*' for the key, to list every entry a template can match).
 *
 * Both are pure and write into a capped struct buf. They fail (-1) when
 * the cap is reached, when a value carries a NUL byte (no LDAP string can,
 * and a C string would silently cut it) or when a template holds a "%x"
 * we do not know, so a broken template is found at the first request
 * rather than sending a filter that means something else.
 */
#include <string.h>

#include "directory/dir.h"

/* RFC 4515 section 3: in an assertion value, '*', '(', ')', '\' and NUL
 * must be written as a backslash and two hex digits. Everything else,
 * UTF-8 included, may pass as it is. */
int
dir_escape_filter_value(const char *value, size_t len, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start = out->len;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		int rc;

		if (c == '\0')
			goto fail;
		if (c == '*' || c == '(' || c == ')' || c == '\\') {
			char esc[3] = {'\\', hex[c >> 4], hex[c & 0xf]};
			rc = buf_append(out, esc, sizeof(esc));
		} else {
			rc = buf_putc(out, (char)c);
		}
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	/* Leave nothing half-escaped behind. */
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/* The one template walker: keys[i] stands for values[i]; a NULL value
 * puts a bare '*' (dir_filter_expand_any), anything else goes through
 * the escaping. */
static int
expand_keys(const char *tmpl, const char *keys, const char *const *values, struct buf *out)
{
	size_t start = out->len;

	for (const char *p = tmpl; *p != '\0'; p++) {
		int rc;
		const char *k =
		    p[0] == '%' && p[1] != '\0' && p[1] != '%' ? strchr(keys, p[1]) : NULL;

		if (*p != '%') {
			rc = buf_putc(out, *p);
		} else if (p[1] == '%') {
			rc = buf_putc(out, '%');
			p++;
		} else if (k != NULL) {
			const char *value = values[k - keys];
			rc = value != NULL ? dir_escape_filter_value(value, strlen(value), out)
					   : buf_putc(out, '*');
			p++;
		} else {
			rc = -1; /* unknown "%x", or a lone '%' at the end */
		}
		if (rc < 0) {
			out->len = start;
			if (out->data != NULL)
				out->data[start] = '\0';
			return -1;
		}
	}
	return 0;
}

int
dir_filter_expand(const char *tmpl, char key, const char *value, struct buf *out)
{
	char keys[2] = {key, '\0'};
	return expand_keys(tmpl, keys, &value, out);
}

int
dir_filter_expand_any(const char *tmpl, char key, struct buf *out)
{
	char keys[2] = {key, '\0'};
	const char *none = NULL;
	return expand_keys(tmpl, keys, &none, out);
}

int
dir_filter_expand2(const char *tmpl, char key1, const char *value1, char key2, const char *value2,
		   struct buf *out)
{
	char keys[3] = {key1, key2, '\0'};
	const char *values[2] = {value1, value2};
	return expand_keys(tmpl, keys, values, out);
}

char **
dir_split_list(const char *s)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap, sizeof(*v));

	while (s != NULL && *s != '\0') {
		s += strspn(s, " \t,");
		size_t len = strcspn(s, ",");
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len > 0) {
			if (n + 1 >= cap) {
				cap *= 2;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = xstrndup(s, len);
		}
		s += strcspn(s, ",");
	}
	v[n] = NULL;
	return v;
}
