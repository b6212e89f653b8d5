/*
 * dir_admin_check.c - validation of what an admin types (dir_admin.h):
 * addresses, logins and list names, display names, passwords, quotas,
 * and RFC 4514 escaping of values put into DNs; plus the error helpers
 * every dir_admin*.c file reports through.
 *
 * All pure: no I/O, no global state. A value is refused with
 * DIR_ADMIN_INVALID and a message that names the field and quotes the
 * value (made printable and cut short, since it is input we refused).
 */
#include <stdarg.h>
#include <string.h>
#include <unistr.h>

#include "core/buf.h"
#include "directory/dir_admin_int.h"

#define ADDRESS_MAX 254 /* RFC 5321 4.5.3.1.3: a path of 256 minus "<>" */
#define LOCAL_MAX 64	/* RFC 5321 4.5.3.1.1 */
#define LOGIN_MAX 64
#define NAME_MAX_LEN 256
#define PASSWORD_MAX 1024
#define QUOTE_MAX 100
#define MESSAGE_MAX 4096

int
dir_admin_fail(struct arena *a, struct dir_admin_error *err, int status, const char *field,
	       const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, MESSAGE_MAX);
	if (field != NULL)
		(void)buf_printf(&b, "%s: ", field);
	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) < 0)
		(void)buf_append_str(&b, "(message too long)");
	va_end(ap);
	err->status = status;
	err->field = field;
	err->message = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return status;
}

const char *
dir_admin_quote(struct arena *a, const char *s)
{
	struct buf b;
	size_t n = 0;

	if (s == NULL)
		return "(none)";
	buf_init(&b, 4 * QUOTE_MAX + 16);
	(void)buf_putc(&b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++) {
		if (n == QUOTE_MAX) {
			(void)buf_append_str(&b, "...");
			break;
		}
		if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
			(void)buf_printf(&b, "\\x%02x", *p);
		else
			(void)buf_putc(&b, (char)*p);
	}
	(void)buf_putc(&b, '"');
	const char *q = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return q;
}

static char *
lower_copy(struct arena *a, const char *in)
{
	char *s = arena_strdup(a, in);

	for (char *p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

/* RFC 5322 3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

int
dir_admin_check_address(const struct config *cfg, struct arena *a, const char *field,
			const char *in, const char **addr_r, struct dir_admin_error *err)
{
	if (in == NULL || in[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "an address is required");
	size_t len = strlen(in);
	if (len > ADDRESS_MAX)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s is longer than %d characters", dir_admin_quote(a, in),
				      ADDRESS_MAX);
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p <= ' ' || *p >= 0x7f)
			return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
					      "%s holds a blank, a control or a non-ASCII "
					      "character (directory mail attributes are ASCII)",
					      dir_admin_quote(a, in));
	}
	const char *at = strrchr(in, '@');
	if (at == NULL || at == in || at[1] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s is not of the form local-part@domain",
				      dir_admin_quote(a, in));
	size_t local = (size_t)(at - in);
	if (local > LOCAL_MAX)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "the local part of %s is longer than %d characters",
				      dir_admin_quote(a, in), LOCAL_MAX);
	/* dot-atom: atoms of atext joined by single dots. A '"' or a second
	 * '@' is not atext, so quoted local parts end up here too. */
	bool prev_dot = true;
	for (size_t i = 0; i < local; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '.') {
			if (prev_dot)
				break;
			prev_dot = true;
		} else if (is_atext(c)) {
			prev_dot = false;
		} else {
			prev_dot = true; /* forces the error below */
			break;
		}
	}
	if (prev_dot)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "the local part of %s is not a dot-atom (letters, digits, "
				      "!#$%%&'*+-/=?^_`{|}~ and single dots inside)",
				      dir_admin_quote(a, in));
	char *addr = lower_copy(a, in);
	const char *domain = addr + local + 1;
	if (!config_is_local_domain(cfg, domain))
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "the domain of %s is not one of [server] domains",
				      dir_admin_quote(a, in));
	*addr_r = addr;
	return DIR_ADMIN_OK;
}

int
dir_admin_check_login(struct arena *a, const char *field, const char *in, const char **login_r,
		      struct dir_admin_error *err)
{
	if (in == NULL || in[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "a name is required");
	size_t len = strlen(in);
	if (len > LOGIN_MAX)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s is longer than %d characters", dir_admin_quote(a, in),
				      LOGIN_MAX);
	char *s = lower_copy(a, in);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return dir_admin_fail(
			    a, err, DIR_ADMIN_INVALID, field,
			    "%s: use letters, digits, '.', '_' and '-', starting with a "
			    "letter or digit",
			    dir_admin_quote(a, in));
	}
	*login_r = s;
	return DIR_ADMIN_OK;
}

int
dir_admin_check_name(struct arena *a, const char *field, const char *in,
		     struct dir_admin_error *err)
{
	if (in == NULL || in[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "must not be empty");
	size_t len = strlen(in);
	if (len > NAME_MAX_LEN)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s is longer than %d bytes", dir_admin_quote(a, in),
				      NAME_MAX_LEN);
	if (u8_check((const uint8_t *)in, len) != NULL)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "%s is not valid UTF-8",
				      dir_admin_quote(a, in));
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
					      "%s holds a control character",
					      dir_admin_quote(a, in));
	}
	if (in[0] == ' ' || in[len - 1] == ' ')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s starts or ends with a blank", dir_admin_quote(a, in));
	return DIR_ADMIN_OK;
}

int
dir_admin_check_password(struct arena *a, const char *field, const char *in,
			 struct dir_admin_error *err)
{
	/* Never quote a password back: it would end up in logs. */
	if (in == NULL || in[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "must not be empty");
	size_t len = strlen(in);
	if (len > PASSWORD_MAX)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "longer than %d bytes",
				      PASSWORD_MAX);
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
					      "holds a control character");
	}
	return DIR_ADMIN_OK;
}

int
dir_admin_parse_quota(struct arena *a, const char *field, const char *in, uint64_t unit,
		      uint64_t *bytes_r, struct dir_admin_error *err)
{
	uint64_t bytes;

	if (unit == 0)
		unit = 1;
	if (in == NULL || in[0] == '\0' || strcmp(in, "none") == 0) {
		*bytes_r = 0;
		return DIR_ADMIN_OK;
	}
	if (config_parse_size(in, &bytes) < 0)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s is not a size (bytes, or a number with k, M, G or T) "
				      "or is too large",
				      dir_admin_quote(a, in));
	if (bytes % unit != 0)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "%s is not a whole number of [directory] quota_unit "
				      "(%llu bytes)",
				      dir_admin_quote(a, in), (unsigned long long)unit);
	*bytes_r = bytes;
	return DIR_ADMIN_OK;
}

/* RFC 4514 2.4. */
int
dir_admin_escape_dn_value(const char *value, size_t len, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start = out->len;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		int rc;

		if (c == '\0')
			goto fail;
		if (c < 0x20 || c == 0x7f) {
			char esc[3] = {'\\', hex[c >> 4], hex[c & 0xf]};
			rc = buf_append(out, esc, sizeof(esc));
		} else if (strchr("\"+,;<>\\=", c) != NULL || (i == 0 && (c == ' ' || c == '#')) ||
			   (i == len - 1 && c == ' ')) {
			char esc[2] = {'\\', (char)c};
			rc = buf_append(out, esc, sizeof(esc));
		} else {
			rc = buf_putc(out, (char)c);
		}
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}
