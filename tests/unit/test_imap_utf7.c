/*
 * test_imap_utf7.c - modified UTF-7 (protocols/imap/imap_utf7.c): the
 * RFC 3501 example, a table of pairs checked both ways, every rejection
 * of a non-canonical or broken encoding, round trips of every BMP code
 * point and some astral ones, the output cap, and the UTF-8 decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "protocols/imap/imap_utf7.h"

struct pair {
	const char *utf8;
	const char *utf7;
};

static const struct pair pairs[] = {
    {"", ""},
    {"INBOX", "INBOX"},
    {"&", "&-"},
    {"a&b&&", "a&-b&-&-"},
    {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
     "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
    {"caf\xc3\xa9", "caf&AOk-"},
    {"\xc3\xa9\xc3\xa9", "&AOkA6Q-"},
    {"\xc3\xa9\xc3\xa9\xc3\xa9", "&AOkA6QDp-"},
    {"\xc3\xa9-x", "&AOk--x"},
    {"Entw\xc3\xbc"
     "rfe",
     "Entw&APw-rfe"},
    {"\xf0\x9f\x98\x80", "&2D3eAA-"}, /* U+1F600, a surrogate pair */
    {"\xf4\x8f\xbf\xbf", "&2,,f,w-"}, /* U+10FFFF: dbff dfff */
    {"\x01", "&AAE-"},		      /* controls are encoded */
    {"\x7f", "&AH8-"},
    {"a\tb", "a&AAk-b"},
    {"\xe2\x82\xac&\xe2\x82\xac", "&IKw-&-&IKw-"},
    {" ~!", " ~!"},
};

static void
test_pairs(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		struct buf b;
		buf_init(&b, 1000);
		print_message("pair %zu: %s\n", i, pairs[i].utf7);
		assert_int_equal(imap_utf8_to_utf7(pairs[i].utf8, strlen(pairs[i].utf8), &b), 0);
		assert_string_equal(buf_cstr(&b), pairs[i].utf7);
		buf_reset(&b);
		assert_int_equal(imap_utf7_to_utf8(pairs[i].utf7, strlen(pairs[i].utf7), &b), 0);
		assert_string_equal(buf_cstr(&b), pairs[i].utf8);
		assert_true(imap_utf7_is_valid(pairs[i].utf7, strlen(pairs[i].utf7)));
		buf_free(&b);
	}
}

/* Output is appended, and a failure leaves what was there. */
static void
test_append_and_undo(void **state)
{
	(void)state;
	struct buf b;

	buf_init(&b, 1000);
	buf_append_str(&b, "x/");
	assert_int_equal(imap_utf7_to_utf8("&AOk-", 5, &b), 0);
	assert_string_equal(buf_cstr(&b), "x/\xc3\xa9");
	assert_int_equal(imap_utf7_to_utf8("ab&AOk", 6, &b), -1);
	assert_string_equal(buf_cstr(&b), "x/\xc3\xa9");
	assert_int_equal(imap_utf8_to_utf7("ab\xff", 3, &b), -1);
	assert_string_equal(buf_cstr(&b), "x/\xc3\xa9");
	buf_free(&b);

	/* the cap: "&AOk-" needs 5 bytes */
	buf_init(&b, 4);
	assert_int_equal(imap_utf8_to_utf7("\xc3\xa9", 2, &b), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(imap_utf7_to_utf8("abcde", 5, &b), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(imap_utf7_to_utf8("abcd", 4, &b), 0);
	buf_free(&b);
}

static const char *const bad_utf7[] = {
    "&",	     /* unterminated */
    "a&AOk",	     /* unterminated shift */
    "&AOk",	     /* ditto */
    "&AGE-",	     /* "a" must stand for itself */
    "&ACY-",	     /* "&" must be "&-" */
    "&ACA-",	     /* " " */
    "&AH4-",	     /* "~" */
    "&AAA-",	     /* U+0000 */
    "&AOkA6Q-&AOk-", /* two shifts in a row: one in canonical form */
    "&AOk-&AOk-",
    "&AOl-",	   /* non-zero padding bits */
    "&AOkA-",	   /* a whole spare sextet */
    "&AO-",	   /* 12 bits: not a whole unit */
    "&A-",	   /* 6 bits */
    "&AOk=-",	   /* "=" is not modified base64 */
    "&AOk/-",	   /* "/" is ","  here */
    "&AO k-",	   /* space inside */
    "&2D0-",	   /* lone high surrogate */
    "&2D3YPQ-",	   /* high + high */
    "&3gA-",	   /* lone low surrogate */
    "&2D0AYQ-",	   /* high + "a" */
    "caf\xc3\xa9", /* 8-bit */
    "a\tb",	   /* control characters are never direct */
    "a\x7f",
    "a\0b",
};

static void
test_rejections(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_utf7); i++) {
		const char *s = bad_utf7[i];
		size_t len = strcmp(s, "a") == 0 ? 3 : strlen(s);
		struct buf b;
		print_message("bad %zu: %s\n", i, s);
		buf_init(&b, 1000);
		assert_int_equal(imap_utf7_to_utf8(s, len, &b), -1);
		assert_int_equal(b.len, 0);
		assert_false(imap_utf7_is_valid(s, len));
		buf_free(&b);
	}
	/* "a\0b" with its NUL (the loop above sees "a") */
	assert_false(imap_utf7_is_valid("a\0b", 3));
}

static const char *const bad_utf8[] = {
    "\x80",		/* lone continuation */
    "\xc3",		/* truncated */
    "\xe6\x97",		/* truncated */
    "\xc0\xaf",		/* overlong "/" */
    "\xe0\x80\xaf",	/* overlong */
    "\xf0\x80\x80\xaf", /* overlong */
    "\xed\xa0\x80",	/* surrogate U+D800 */
    "\xed\xbf\xbf",	/* surrogate U+DFFF */
    "\xf4\x90\x80\x80", /* over U+10FFFF */
    "\xf5\x80\x80\x80",
    "\xff",
    "\xc3\x28",
};

static void
test_utf8_rejections(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_utf8); i++) {
		struct buf b;
		uint32_t cp;
		buf_init(&b, 1000);
		assert_int_equal(imap_utf8_to_utf7(bad_utf8[i], strlen(bad_utf8[i]), &b), -1);
		assert_int_equal(b.len, 0);
		assert_int_equal(imap_utf8_decode(bad_utf8[i], strlen(bad_utf8[i]), &cp), 0);
		buf_free(&b);
	}
	/* U+0000 is valid UTF-8 but not in a mailbox name */
	struct buf b;
	buf_init(&b, 1000);
	assert_int_equal(imap_utf8_to_utf7("a\0b", 3, &b), -1);
	buf_free(&b);
}

static void
test_utf8_decode(void **state)
{
	(void)state;
	uint32_t cp;

	assert_int_equal(imap_utf8_decode("A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(imap_utf8_decode("\xc2\x80", 2, &cp), 2);
	assert_int_equal(cp, 0x80);
	assert_int_equal(imap_utf8_decode("\xef\xbf\xbf", 3, &cp), 3);
	assert_int_equal(cp, 0xffff);
	assert_int_equal(imap_utf8_decode("\xf4\x8f\xbf\xbf", 4, &cp), 4);
	assert_int_equal(cp, 0x10ffff);
	assert_int_equal(imap_utf8_decode("\xf0\x9f\x98\x80", 3, &cp), 0); /* len limits */
	assert_int_equal(imap_utf8_decode("", 0, &cp), 0);
}

static size_t
put_utf8(char *s, uint32_t cp)
{
	if (cp < 0x80) {
		s[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	s[0] = (char)(0xf0 | (cp >> 18));
	s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	s[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Every code point alone, after "x" and doubled, encodes to valid
 * modified UTF-7 that decodes back to the same bytes. */
static void
test_round_trip_all(void **state)
{
	(void)state;
	struct buf u7, u8;

	buf_init(&u7, 1000);
	buf_init(&u8, 1000);
	for (uint32_t cp = 1; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 97) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		char in[16];
		size_t n = put_utf8(in, cp);
		memcpy(in + n, "x", 1);
		memcpy(in + n + 1, in, n);
		size_t len = 2 * n + 1;
		buf_reset(&u7);
		buf_reset(&u8);
		assert_int_equal(imap_utf8_to_utf7(in, len, &u7), 0);
		assert_true(imap_utf7_is_valid(u7.data, u7.len));
		for (size_t i = 0; i < u7.len; i++)
			assert_true(u7.data[i] >= 0x20 && u7.data[i] <= 0x7e);
		assert_int_equal(imap_utf7_to_utf8(u7.data, u7.len, &u8), 0);
		assert_int_equal(u8.len, len);
		assert_memory_equal(u8.data, in, len);
	}
	buf_free(&u7);
	buf_free(&u8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pairs),	cmocka_unit_test(test_append_and_undo),
	    cmocka_unit_test(test_rejections),	cmocka_unit_test(test_utf8_rejections),
	    cmocka_unit_test(test_utf8_decode), cmocka_unit_test(test_round_trip_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
