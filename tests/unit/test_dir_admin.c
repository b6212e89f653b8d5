/*
 * test_dir_admin.c - what the admin side refuses before it writes to the
 * directory (directory/dir_admin_check.c): addresses, logins and list
 * names, display names, passwords, quotas, RFC 4514 escaping of DN values;
 * and the "any value" filter expansion used to list every user
 * (directory/dir_filter.c). Each refusal must name the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "directory/dir.h"
#include "directory/dir_admin.h"

static char *domains[] = {"example.org", "example.net"};
static const struct config cfg = {.domains = domains, .ndomains = 2};

struct addr_case {
	const char *in;
	const char *out; /* NULL: refused */
	const char *why; /* part of the message when refused */
};

static const struct addr_case addr_cases[] = {
    {"alice@example.org", "alice@example.org", NULL},
    {"Alice.Smith@Example.ORG", "alice.smith@example.org", NULL},
    {"a@example.net", "a@example.net", NULL},
    {"o'brien+tag@example.org", "o'brien+tag@example.org", NULL},
    {"!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~@example.org", NULL},
    {"x.y.z@example.org", "x.y.z@example.org", NULL},
    {"", NULL, "an address is required"},
    {"alice", NULL, "not of the form local-part@domain"},
    {"@example.org", NULL, "not of the form local-part@domain"},
    {"alice@", NULL, "not of the form local-part@domain"},
    {".alice@example.org", NULL, "not a dot-atom"},
    {"alice.@example.org", NULL, "not a dot-atom"},
    {"al..ice@example.org", NULL, "not a dot-atom"},
    {"\"al ice\"@example.org", NULL, "blank"},
    {"\"alice\"@example.org", NULL, "not a dot-atom"},
    {"a@b@example.org", NULL, "not a dot-atom"},
    {"al(ice)@example.org", NULL, "not a dot-atom"},
    {"alice@example.com", NULL, "not one of [server] domains"},
    {"alice@sub.example.org", NULL, "not one of [server] domains"},
    {"alice @example.org", NULL, "blank"},
    {"alice@example.org\n", NULL, "control"},
    {"\xc3\xa5lice@example.org", NULL, "non-ASCII"},
    {"*)(uid=*@example.org", NULL, "not a dot-atom"},
};

static void
test_addresses(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct arena *a = arena_new(0);
		struct dir_admin_error err = {0};
		const char *out = NULL;
		int rc = dir_admin_check_address(&cfg, a, "mail", c->in, &out, &err);
		if (c->out != NULL) {
			if (rc != 0)
				fail_msg("%s: %s", c->in, err.message);
			assert_string_equal(out, c->out);
		} else {
			if (rc != DIR_ADMIN_INVALID)
				fail_msg("%s: accepted as %s", c->in, out);
			assert_int_equal(err.status, DIR_ADMIN_INVALID);
			assert_string_equal(err.field, "mail");
			assert_true(strncmp(err.message, "mail: ", 6) == 0);
			if (strstr(err.message, c->why) == NULL)
				fail_msg("%s: message \"%s\" lacks \"%s\"", c->in, err.message,
					 c->why);
		}
		arena_destroy(&a);
	}
}

static void
test_address_lengths(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct dir_admin_error err;
	const char *out;
	char local[80];

	/* 64 octets of local part is the most RFC 5321 allows. */
	memset(local, 'x', 64);
	strcpy(local + 64, "@example.org");
	assert_int_equal(dir_admin_check_address(&cfg, a, "aliases", local, &out, &err), 0);
	memset(local, 'x', 65);
	strcpy(local + 65, "@example.org");
	assert_int_equal(dir_admin_check_address(&cfg, a, "aliases", local, &out, &err),
			 DIR_ADMIN_INVALID);
	assert_non_null(strstr(err.message, "longer than 64"));
	assert_string_equal(err.field, "aliases");

	char long_addr[300];
	memset(long_addr, 'y', sizeof(long_addr));
	long_addr[sizeof(long_addr) - 1] = '\0';
	assert_int_equal(dir_admin_check_address(&cfg, a, "mail", long_addr, &out, &err),
			 DIR_ADMIN_INVALID);
	assert_non_null(strstr(err.message, "longer than 254"));
	/* The refused value is quoted back, cut short. */
	assert_true(strlen(err.message) < 200);
	assert_int_equal(dir_admin_check_address(&cfg, a, "mail", NULL, &out, &err),
			 DIR_ADMIN_INVALID);
	arena_destroy(&a);
}

struct login_case {
	const char *in;
	const char *out;
};

static const struct login_case login_cases[] = {
    {"alice", "alice"},
    {"Alice", "alice"},
    {"j.doe-2_x", "j.doe-2_x"},
    {"0day", "0day"},
    {"", NULL},
    {".alice", NULL},
    {"-alice", NULL},
    {"_alice", NULL},
    {"al ice", NULL},
    {"al@ice", NULL},
    {"al,ice", NULL},
    {"al=ice", NULL},
    {"*", NULL},
    {"*)(uid=*", NULL},
    {"\xc3\xa5lice", NULL},
    {"0123456789012345678901234567890123456789012345678901234567890123",
     "0123456789012345678901234567890123456789012345678901234567890123"},
    {"01234567890123456789012345678901234567890123456789012345678901234", NULL},
};

static void
test_logins(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(login_cases) / sizeof(login_cases[0]); i++) {
		const struct login_case *c = &login_cases[i];
		struct arena *a = arena_new(0);
		struct dir_admin_error err = {0};
		const char *out = NULL;
		int rc = dir_admin_check_login(a, "login", c->in, &out, &err);
		if (c->out != NULL) {
			if (rc != 0)
				fail_msg("%s: %s", c->in, err.message);
			assert_string_equal(out, c->out);
		} else {
			if (rc != DIR_ADMIN_INVALID)
				fail_msg("%s: accepted", c->in);
			assert_string_equal(err.field, "login");
			assert_true(strncmp(err.message, "login: ", 7) == 0);
		}
		arena_destroy(&a);
	}
}

static void
test_names_and_passwords(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	struct dir_admin_error err;

	assert_int_equal(dir_admin_check_name(a, "display_name", "Alice Smith", &err), 0);
	assert_int_equal(dir_admin_check_name(a, "display_name", "J\xc3\xb8rgen \xc3\x85se", &err),
			 0);
	assert_int_equal(dir_admin_check_name(a, "display_name", "", &err), DIR_ADMIN_INVALID);
	assert_int_equal(dir_admin_check_name(a, "display_name", "bad\xc3", &err),
			 DIR_ADMIN_INVALID);
	assert_non_null(strstr(err.message, "UTF-8"));
	assert_int_equal(dir_admin_check_name(a, "display_name", "over\xc0\xaflong", &err),
			 DIR_ADMIN_INVALID);
	assert_int_equal(dir_admin_check_name(a, "surname", "tab\there", &err), DIR_ADMIN_INVALID);
	assert_string_equal(err.field, "surname");
	assert_int_equal(dir_admin_check_name(a, "surname", " lead", &err), DIR_ADMIN_INVALID);
	assert_int_equal(dir_admin_check_name(a, "surname", "trail ", &err), DIR_ADMIN_INVALID);
	char big[300];
	memset(big, 'n', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dir_admin_check_name(a, "surname", big, &err), DIR_ADMIN_INVALID);

	assert_int_equal(dir_admin_check_password(a, "password", "s3cret pass!", &err), 0);
	assert_int_equal(dir_admin_check_password(a, "password", "", &err), DIR_ADMIN_INVALID);
	assert_int_equal(dir_admin_check_password(a, "password", NULL, &err), DIR_ADMIN_INVALID);
	assert_int_equal(dir_admin_check_password(a, "password", "line\nbreak", &err),
			 DIR_ADMIN_INVALID);
	/* A refused password is never echoed. */
	assert_null(strstr(err.message, "line"));
	assert_string_equal(err.field, "password");
	arena_destroy(&a);
}

struct quota_case {
	const char *in;
	uint64_t unit;
	int rc;
	uint64_t bytes;
};

static const struct quota_case quota_cases[] = {
    {NULL, 1, 0, 0},
    {"", 1, 0, 0},
    {"none", 1, 0, 0},
    {"0", 1, 0, 0},
    {"1024", 1, 0, 1024},
    {"10G", 1, 0, 10ULL << 30},
    {"10g", 1, 0, 10ULL << 30},
    {"512M", 1, 0, 512ULL << 20},
    {"3k", 1024, 0, 3072},
    {"2T", 1024, 0, 2ULL << 40},
    {"1500", 1024, DIR_ADMIN_INVALID, 0}, /* not whole kilobytes */
    {"10X", 1, DIR_ADMIN_INVALID, 0},
    {"-1", 1, DIR_ADMIN_INVALID, 0},
    {"1.5G", 1, DIR_ADMIN_INVALID, 0},
    {"10 G", 1, DIR_ADMIN_INVALID, 0},
    {"99999999999999999999", 1, DIR_ADMIN_INVALID, 0},
    {"20000000T", 1, DIR_ADMIN_INVALID, 0},
};

static void
test_quotas(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(quota_cases) / sizeof(quota_cases[0]); i++) {
		const struct quota_case *c = &quota_cases[i];
		struct arena *a = arena_new(0);
		struct dir_admin_error err = {0};
		uint64_t bytes = 77;
		int rc = dir_admin_parse_quota(a, "quota", c->in, c->unit, &bytes, &err);
		if (rc != c->rc)
			fail_msg("%s: rc %d, wanted %d (%s)", c->in ? c->in : "(null)", rc, c->rc,
				 err.message ? err.message : "");
		if (rc == 0)
			assert_int_equal(bytes, c->bytes);
		else
			assert_string_equal(err.field, "quota");
		arena_destroy(&a);
	}
}

struct dn_case {
	const char *in;
	const char *out; /* NULL: refused */
};

static const struct dn_case dn_cases[] = {
    {"alice", "alice"},
    {"Smith, John", "Smith\\, John"},
    {"a+b", "a\\+b"},
    {"a=b", "a\\=b"},
    {"q\"uote", "q\\\"uote"},
    {"semi;colon", "semi\\;colon"},
    {"<tag>", "\\<tag\\>"},
    {"back\\slash", "back\\\\slash"},
    {"#hash", "\\#hash"},
    {"mid#hash", "mid#hash"},
    {" lead", "\\ lead"},
    {"trail ", "trail\\ "},
    {"in side", "in side"},
    {" ", "\\ "},
    {"ctl\x01", "ctl\\01"},
    {"\xc3\xa5sa", "\xc3\xa5sa"},
    {"uid=x,dc=evil", "uid\\=x\\,dc\\=evil"},
    {"", NULL},
};

static void
test_dn_escape(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dn_cases) / sizeof(dn_cases[0]); i++) {
		const struct dn_case *c = &dn_cases[i];
		struct buf b;
		buf_init(&b, 1024);
		assert_int_equal(buf_append_str(&b, "cn="), 0);
		int rc = dir_admin_escape_dn_value(c->in, strlen(c->in), &b);
		if (c->out == NULL) {
			assert_int_equal(rc, -1);
			assert_string_equal(buf_cstr(&b), "cn=");
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(buf_cstr(&b) + 3, c->out);
		}
		buf_free(&b);
	}
	/* A NUL inside is refused and nothing is left behind; so is a
	 * value over the cap. */
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(dir_admin_escape_dn_value("a\0b", 3, &b), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(dir_admin_escape_dn_value(",,,,,", 5, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_filter_any(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(
	    dir_filter_expand_any("(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))", 'u', &b),
	    0);
	assert_string_equal(buf_cstr(&b), "(&(objectClass=inetOrgPerson)(|(uid=*)(mail=*)))");
	buf_reset(&b);
	assert_int_equal(dir_filter_expand_any("(cn=pre%u)(x=100%%)", 'u', &b), 0);
	assert_string_equal(buf_cstr(&b), "(cn=pre*)(x=100%)");
	buf_reset(&b);
	assert_int_equal(dir_filter_expand_any("(uid=%a)", 'u', &b), -1);
	assert_int_equal(b.len, 0);
	/* The escaping variant is unchanged: '*' from a user is a value. */
	assert_int_equal(dir_filter_expand("(uid=%u)", 'u', "*", &b), 0);
	assert_string_equal(buf_cstr(&b), "(uid=\\2A)");
	buf_free(&b);
}

static void
test_strerror(void **state)
{
	(void)state;
	const int all[] = {DIR_ADMIN_OK,	  DIR_ADMIN_INVALID,	 DIR_ADMIN_EXISTS,
			   DIR_ADMIN_NOTFOUND,	  DIR_ADMIN_DENIED,	 DIR_ADMIN_AUTHFAIL,
			   DIR_ADMIN_UNAVAILABLE, DIR_ADMIN_UNSUPPORTED, DIR_ADMIN_ERROR};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(dir_admin_strerror(all[i]),
						dir_admin_strerror(all[j]));
	}
	assert_string_equal(dir_admin_strerror(-99), "unknown status");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addresses),  cmocka_unit_test(test_address_lengths),
	    cmocka_unit_test(test_logins),     cmocka_unit_test(test_names_and_passwords),
	    cmocka_unit_test(test_quotas),     cmocka_unit_test(test_dn_escape),
	    cmocka_unit_test(test_filter_any), cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
