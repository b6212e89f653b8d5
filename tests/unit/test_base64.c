/*
 * test_base64.c - RFC 4648 base64 (core/base64.c): the RFC's test vectors
 * both ways, binary round trips, strict rejection of bad input, the cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"
#include "core/buf.h"

static const struct {
	const char *plain;
	const char *enc;
} vectors[] = {
    /* RFC 4648 section 10 */
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
    /* SASL PLAIN: \0user\0pass */
    {"\0alice\0secret", "AGFsaWNlAHNlY3JldA=="},
};

static const size_t vector_len[] = {0, 1, 2, 3, 4, 5, 6, 13};

static void
test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		assert_int_equal(base64_encode(vectors[i].plain, vector_len[i], &b), 0);
		assert_string_equal(buf_cstr(&b), vectors[i].enc);
		buf_reset(&b);
		assert_int_equal(base64_decode(vectors[i].enc, strlen(vectors[i].enc), &b), 0);
		assert_int_equal(b.len, vector_len[i]);
		if (vector_len[i] > 0)
			assert_memory_equal(b.data, vectors[i].plain, vector_len[i]);
		buf_free(&b);
	}
}

static void
test_all_bytes_round_trip(void **state)
{
	(void)state;
	unsigned char in[256];
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= 256; n += 1) {
		struct buf e, d;
		buf_init(&e, 4096);
		buf_init(&d, 4096);
		assert_int_equal(base64_encode(in, n, &e), 0);
		assert_int_equal(e.len, (n + 2) / 3 * 4);
		assert_int_equal(base64_decode(e.data != NULL ? e.data : "", e.len, &d), 0);
		assert_int_equal(d.len, n);
		if (n > 0)
			assert_memory_equal(d.data, in, n);
		buf_free(&e);
		buf_free(&d);
	}
}

static const char *const bad[] = {
    "Zg",	      /* missing padding */
    "Zg=",	      /* short padding */
    "Z===",	      /* too much padding */
    "====",	      /* padding only */
    "Zg==Zg==",	      /* padding before the end */
    "Zm9v Zg==",      /* whitespace */
    "Zm9v\r\n",	      /* line break */
    "Zm9!",	      /* outside the alphabet */
    "Zm-_",	      /* the URL alphabet is not this one */
    "Zh==",	      /* non-zero bits under the padding */
    "Zm9=",	      /* non-zero bits under one '=' */
    "Zg=a",	      /* data after '=' */
    "A",	      /* length not a multiple of 4 */
    "Zm9vY\xc3\xa5=", /* 8-bit bytes */
};

static void
test_bad_input(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		assert_int_equal(buf_append_str(&b, "keep"), 0);
		if (base64_decode(bad[i], strlen(bad[i]), &b) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		/* what was there is untouched */
		assert_string_equal(buf_cstr(&b), "keep");
		assert_int_equal(b.len, 4);
		buf_free(&b);
	}
}

static void
test_cap(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 7);
	assert_int_equal(base64_encode("foobar", 6, &b), -1); /* needs 8 */
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_init(&b, 8);
	assert_int_equal(base64_encode("foobar", 6, &b), 0);
	assert_string_equal(buf_cstr(&b), "Zm9vYmFy");
	buf_free(&b);
	/* decoding checks the cap before writing */
	buf_init(&b, 5);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	/* appends after what is there */
	buf_init(&b, 100);
	assert_int_equal(buf_append_str(&b, "x:"), 0);
	assert_int_equal(base64_decode("Zm9v", 4, &b), 0);
	assert_string_equal(buf_cstr(&b), "x:foo");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_all_bytes_round_trip),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
