/*
 * test_admin_audit.c - the admin audit log (admin/admin_audit.c): every
 * key naming a password, secret or token is replaced by "***" at any
 * depth and in any case, nothing else is touched, the original is not
 * modified, and a formatted line is one JSON object with the fields the
 * admin guide promises.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin/admin.h"
#include "core/buf.h"

static json_t *
parse(const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, 0, &err);
	if (v == NULL)
		fail_msg("bad test JSON: %s", err.text);
	return v;
}

struct redact_case {
	const char *in;
	const char *want;
};

static const struct redact_case redact_cases[] = {
    {"{\"login\":\"bob\",\"password\":\"pw\"}", "{\"login\":\"bob\",\"password\":\"***\"}"},
    {"{\"Password\":\"pw\",\"NEW_PASSWORD\":\"x\",\"bind_secret\":1,\"apiToken\":[1,2]}",
     "{\"Password\":\"***\",\"NEW_PASSWORD\":\"***\",\"bind_secret\":\"***\","
     "\"apiToken\":\"***\"}"},
    {"{\"user\":{\"mail\":\"a@b\",\"credentials\":{\"password\":\"pw\"}}}",
     "{\"user\":{\"mail\":\"a@b\",\"credentials\":{\"password\":\"***\"}}}"},
    {"{\"users\":[{\"password\":\"a\"},{\"name\":\"password\"}]}",
     "{\"users\":[{\"password\":\"***\"},{\"name\":\"password\"}]}"},
    /* A value that looks like a secret is not a key: left alone. */
    {"{\"note\":\"my password is hunter2\",\"n\":3,\"ok\":true,\"z\":null}",
     "{\"note\":\"my password is hunter2\",\"n\":3,\"ok\":true,\"z\":null}"},
    {"{}", "{}"},
};

static void
test_redact_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(redact_cases) / sizeof(redact_cases[0]); i++) {
		json_t *in = parse(redact_cases[i].in);
		json_t *want = parse(redact_cases[i].want);
		char *before = json_dumps(in, JSON_SORT_KEYS);
		json_t *got = admin_audit_redact(in);
		if (!json_equal(got, want)) {
			char *g = json_dumps(got, JSON_SORT_KEYS);
			fail_msg("case %zu: got %s", i, g);
		}
		/* The request body itself is not changed. */
		char *after = json_dumps(in, JSON_SORT_KEYS);
		assert_string_equal(before, after);
		free(before);
		free(after);
		json_decref(in);
		json_decref(want);
		json_decref(got);
	}
	assert_null(admin_audit_redact(NULL));
}

static void
test_format_line(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4096);
	json_t *body = parse("{\"login\":\"bob\",\"password\":\"hunter2\"}");
	json_t *query = parse("{\"token\":\"abc\",\"mark\":\"m1\"}");
	assert_int_equal(admin_audit_format(&b, 1767225600, "bob", "127.0.0.1", "POST",
					    "/api/v1/login", query, body, 200, "token issued"),
			 0);
	assert_null(strchr(buf_cstr(&b), '\n'));
	assert_null(strstr(buf_cstr(&b), "hunter2"));
	assert_null(strstr(buf_cstr(&b), "abc"));
	json_t *line = parse(buf_cstr(&b));
	assert_string_equal(json_string_value(json_object_get(line, "time")),
			    "2026-01-01T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(line, "admin")), "bob");
	assert_string_equal(json_string_value(json_object_get(line, "ip")), "127.0.0.1");
	assert_string_equal(json_string_value(json_object_get(line, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(line, "path")), "/api/v1/login");
	assert_int_equal(json_integer_value(json_object_get(line, "status")), 200);
	assert_string_equal(json_string_value(json_object_get(line, "result")), "token issued");
	json_t *params = json_object_get(line, "params");
	assert_string_equal(json_string_value(json_object_get(params, "password")), "***");
	assert_string_equal(json_string_value(json_object_get(params, "login")), "bob");
	json_t *q = json_object_get(line, "query");
	assert_string_equal(json_string_value(json_object_get(q, "token")), "***");
	assert_string_equal(json_string_value(json_object_get(q, "mark")), "m1");
	json_decref(line);

	/* No admin (refused before authentication), no body. */
	buf_reset(&b);
	assert_int_equal(admin_audit_format(&b, 0, NULL, "::1", "GET", "/metrics", NULL, NULL, 401,
					    "unauthorized"),
			 0);
	line = parse(buf_cstr(&b));
	assert_true(json_is_null(json_object_get(line, "admin")));
	assert_true(json_is_null(json_object_get(line, "params")));
	assert_null(json_object_get(line, "query"));
	json_decref(line);

	/* The cap is honoured. */
	struct buf small;
	buf_init(&small, 16);
	assert_int_equal(
	    admin_audit_format(&small, 0, "bob", "::1", "GET", "/x", NULL, body, 200, "ok"), -1);
	buf_free(&small);
	json_decref(body);
	json_decref(query);
	buf_free(&b);
}

static void
test_append(void **state)
{
	(void)state;
	char dir[] = "/tmp/tern-audit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	struct buf line;
	buf_init(&line, 64);
	buf_append_str(&line, "{\"a\":1}");
	assert_int_equal(admin_audit_append(path, &line), 0);
	assert_int_equal(admin_audit_append(path, &line), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char got[64] = {0};
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	assert_int_equal(n, 16);
	assert_string_equal(got, "{\"a\":1}\n{\"a\":1}\n");
	/* A directory that is not there: -1, no crash. */
	assert_int_equal(admin_audit_append("/nonexistent-dir/audit.log", &line), -1);
	unlink(path);
	rmdir(dir);
	buf_free(&line);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redact_table),
	    cmocka_unit_test(test_format_line),
	    cmocka_unit_test(test_append),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
