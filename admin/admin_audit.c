/*
 * admin_audit.c - the admin audit log: one JSON line per API call (who,
 * from where, what, when, result), with every password, secret and token
 * in the request replaced by "***" before anything is written.
 *
 * Each line is written with one write(2) on a file opened O_APPEND for
 * that line, so concurrent request threads never interleave, a rotated
 * file is picked up at once, and a line is in the kernel (flushed, not
 * fsynced) when the reply goes out.
 * How it fails: a line that cannot be written is logged on stderr (without
 * the request body) and the call still gets its reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/log.h"

static bool
is_secret_key(const char *key)
{
	static const char *const words[] = {"password", "secret", "token"};

	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		if (strcasestr(key, words[i]) != NULL)
			return true;
	}
	return false;
}

json_t *
admin_audit_redact(const json_t *v)
{
	if (v == NULL)
		return NULL;
	if (json_is_object(v)) {
		json_t *out = json_object();
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)v, key, val)
		{
			if (is_secret_key(key))
				json_object_set_new(out, key, json_string("***"));
			else
				json_object_set_new(out, key, admin_audit_redact(val));
		}
		return out;
	}
	if (json_is_array(v)) {
		json_t *out = json_array();
		size_t i;
		json_t *val;
		json_array_foreach(v, i, val)
		{
			json_array_append_new(out, admin_audit_redact(val));
		}
		return out;
	}
	return json_deep_copy(v);
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

int
admin_audit_format(struct buf *out, long long unix_time, const char *admin, const char *ip,
		   const char *method, const char *path, const json_t *query, const json_t *body,
		   int status, const char *result)
{
	char when[32];
	time_t t = (time_t)unix_time;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *line = json_object();
	json_object_set_new(line, "time", json_string(when));
	json_object_set_new(line, "admin", str_or_null(admin));
	json_object_set_new(line, "ip", str_or_null(ip));
	json_object_set_new(line, "method", str_or_null(method));
	/* json_string refuses invalid UTF-8: such a path is kept escaped by
	 * jansson's own check failing, so fall back to a marker. */
	json_t *p = path != NULL ? json_string(path) : json_null();
	json_object_set_new(line, "path", p != NULL ? p : json_string("(not UTF-8)"));
	if (query != NULL && json_object_size(query) > 0)
		json_object_set_new(line, "query", admin_audit_redact(query));
	json_object_set_new(line, "params", body != NULL ? admin_audit_redact(body) : json_null());
	json_object_set_new(line, "status", json_integer(status));
	json_t *res = result != NULL ? json_string(result) : json_null();
	json_object_set_new(line, "result", res != NULL ? res : json_string("(not UTF-8)"));
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (text == NULL)
		return -1;
	int rc = buf_append_str(out, text);
	free(text);
	return rc;
}

int
admin_audit_append(const char *path, const struct buf *line)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		log_error(0, "admin", "audit-failed path=%s error=\"%s\"", path, strerror(errno));
		return -1;
	}
	struct buf b;
	buf_init(&b, line->len + 2);
	(void)buf_append(&b, line->data, line->len);
	(void)buf_putc(&b, '\n');
	ssize_t n = write(fd, b.data, b.len);
	int err = errno;
	close(fd);
	bool ok = n == (ssize_t)b.len;
	buf_free(&b);
	if (!ok) {
		log_error(0, "admin", "audit-failed path=%s error=\"%s\"", path,
			  n < 0 ? strerror(err) : "short write");
		return -1;
	}
	return 0;
}
