/*
 * test_dir_scram.c - SCRAM-SHA-256 verifiers (directory/dir_scram.c):
 * the RFC 5803 authPassword form, userPassword's {SCRAM-SHA-256} forms
 * (RFC 5803 body and Dovecot's), normalisation, and refusal of bad,
 * truncated and wrongly sized values; computing a verifier (RFC 7677's
 * example password and salt).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "directory/dir_scram.h"

/* RFC 7677 section 3: password "pencil", this salt, 4096 iterations. */
#define SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define STORED "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define SERVER "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define GOOD "SCRAM-SHA-256$4096:" SALT "$" STORED ":" SERVER

struct pcase {
	const char *in;
	bool userpassword;
	int rc;
	const char *out; /* rc == 1 */
};

static const struct pcase cases[] = {
    {GOOD, false, 1, GOOD},
    /* Scheme without case, RFC 3112 blanks around '$'. */
    {"scram-sha-256 $ 4096:" SALT " $ " STORED ":" SERVER, false, 1, GOOD},
    {"{SCRAM-SHA-256}4096:" SALT "$" STORED ":" SERVER, false, 1, GOOD},
    {"{SCRAM-SHA-256}4096:" SALT "$" STORED ":" SERVER, true, 1, GOOD},
    {"{scram-sha-256}4096," SALT "," STORED "," SERVER, true, 1, GOOD},
    {"{SCRAM-SHA-256}4096," SALT "," STORED "," SERVER, false, 1, GOOD},
    {"SCRAM-SHA-256$10000000:" SALT "$" STORED ":" SERVER, false, 1,
     "SCRAM-SHA-256$10000000:" SALT "$" STORED ":" SERVER},
    /* In userPassword the bare form would be a cleartext password. */
    {GOOD, true, 0, NULL},
    /* Other schemes are not errors. */
    {"{SSHA}abcdefgh", false, 0, NULL},
    {"{SSHA}abcdefgh", true, 0, NULL},
    {"SCRAM-SHA-1$4096:" SALT "$" STORED ":" SERVER, false, 0, NULL},
    {"SCRAM-SHA-256-PLUS$4096:" SALT "$" STORED ":" SERVER, false, 0, NULL},
    {"MD5$xyz$abc", false, 0, NULL},
    {"", false, 0, NULL},
    /* Iterations out of range or not a number. */
    {"SCRAM-SHA-256$4095:" SALT "$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$10000001:" SALT "$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$:" SALT "$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$4096x:" SALT "$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$-4096:" SALT "$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$99999999999999999999:" SALT "$" STORED ":" SERVER, false, -1, NULL},
    /* Salt too short (6 bytes), not base64. */
    {"SCRAM-SHA-256$4096:c2FsdHNh$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ$" STORED ":" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$4096:!!!!!!!!!!!!$" STORED ":" SERVER, false, -1, NULL},
    /* Keys of the wrong length (20 bytes: a SHA-1 verifier). */
    {"SCRAM-SHA-256$4096:" SALT "$HZbuOlKbWl+eR8AfIposuKbhX30=:" SERVER, false, -1, NULL},
    {"SCRAM-SHA-256$4096:" SALT "$" STORED ":HZbuOlKbWl+eR8AfIposuKbhX30=", false, -1, NULL},
    /* Truncated. */
    {"SCRAM-SHA-256$", false, -1, NULL},
    {"SCRAM-SHA-256$4096", false, -1, NULL},
    {"SCRAM-SHA-256$4096:" SALT, false, -1, NULL},
    {"SCRAM-SHA-256$4096:" SALT "$" STORED, false, -1, NULL},
    {"SCRAM-SHA-256$4096:" SALT "$" STORED ":", false, -1, NULL},
    {"SCRAM-SHA-256$4096:" SALT "$" STORED ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmf", false, -1,
     NULL},
    {"{SCRAM-SHA-256}", true, -1, NULL},
    {"{SCRAM-SHA-256}4096," SALT "," STORED, true, -1, NULL},
    {"{SCRAM-SHA-256}4096," SALT "," STORED "," SERVER ",extra", true, -1, NULL},
    /* Wrong separators. */
    {"SCRAM-SHA-256$4096$" SALT "$" STORED "$" SERVER, false, -1, NULL},
};

static void
test_parse(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *out, *why;
		int rc = dir_scram_parse(a, cases[i].in, strlen(cases[i].in), cases[i].userpassword,
					 &out, &why);
		if (rc != cases[i].rc)
			fail_msg("case %zu \"%s\": rc %d, want %d", i, cases[i].in, rc,
				 cases[i].rc);
		if (rc == 1)
			assert_string_equal(out, cases[i].out);
		else
			assert_null(out);
		if (rc < 0)
			assert_non_null(why);
	}
	arena_destroy(&a);
}

/* A value may hold any byte: a NUL inside ends nothing early and fails. */
static void
test_parse_binary(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	char v[] = GOOD;
	const char *out, *why;

	v[30] = '\0';
	assert_int_equal(dir_scram_parse(a, v, sizeof(v) - 1, false, &out, &why), -1);
	arena_destroy(&a);
}

static void
test_compute(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	static const unsigned char salt[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
					     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
	const char *out, *why, *again;

	assert_int_equal(dir_scram_compute(a, "pencil", 6, salt, sizeof(salt), 4096, &out), 0);
	assert_string_equal(out, GOOD);
	/* Refused: too few iterations, short salt. */
	assert_int_equal(dir_scram_compute(a, "pencil", 6, salt, sizeof(salt), 100, &out), -1);
	assert_int_equal(dir_scram_compute(a, "pencil", 6, salt, 4, 4096, &out), -1);
	/* A made one parses back to itself, with a fresh salt each time. */
	assert_int_equal(dir_scram_make(a, "pencil", 6, 4096, &out), 0);
	assert_int_equal(dir_scram_parse(a, out, strlen(out), false, &again, &why), 1);
	assert_string_equal(again, out);
	assert_int_equal(dir_scram_make(a, "pencil", 6, 4096, &again), 0);
	assert_string_not_equal(again, out);
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_binary),
	    cmocka_unit_test(test_compute),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
