/*
 * test_quota.c - the pure quota pieces: the store's limit check
 * (store_quota_check: bytes and messages, TOOBIG against OVERQUOTA, no
 * wrap-around near UINT64_MAX, usage already above a lowered limit) and
 * the IMAP QUOTA response list (imap_quota_list: only limited resources,
 * STORAGE in 1024-octet units).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "protocols/imap/imap_internal.h"
#include "storage/store.h"

static void
test_quota_check(void **state)
{
	(void)state;
	static const struct {
		uint64_t lb, lm, ub, um, ab, am;
		int want;
	} cases[] = {
	    {0, 0, 999, 999, 999, 999, STORE_OK},	/* no limits */
	    {1000, 0, 0, 0, 1000, 1, STORE_OK},		/* exactly full */
	    {1000, 0, 0, 0, 1001, 1, STORE_TOOBIG},	/* alone too big */
	    {1000, 0, 500, 0, 501, 1, STORE_OVERQUOTA}, /* would pass it */
	    {1000, 0, 500, 0, 500, 1, STORE_OK},
	    {1000, 0, 2000, 0, 1, 1, STORE_OVERQUOTA}, /* limit lowered below usage */
	    {UINT64_MAX, 0, UINT64_MAX - 1, 0, 2, 1, STORE_OVERQUOTA}, /* no wrap */
	    {0, 3, 0, 2, 10, 1, STORE_OK},	  /* the last message that fits */
	    {0, 3, 0, 3, 10, 1, STORE_OVERQUOTA}, /* count reached */
	    {0, 3, 0, 1, 10, 3, STORE_OVERQUOTA}, /* MULTIAPPEND / COPY of 3 */
	    {0, 3, 0, 5, 10, 0, STORE_OVERQUOTA}, /* lowered below usage */
	    {0, 3, 0, 0, 10, 3, STORE_OK},
	    {0, UINT64_MAX, 0, UINT64_MAX, 0, 1, STORE_OVERQUOTA},
	    {1000, 3, 100, 3, 10, 1, STORE_OVERQUOTA}, /* bytes fit, count does not */
	    {1000, 3, 100, 1, 2000, 1, STORE_TOOBIG},  /* TOOBIG wins: no expunge helps */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = store_quota_check(cases[i].lb, cases[i].lm, cases[i].ub, cases[i].um,
					    cases[i].ab, cases[i].am);
		if (got != cases[i].want)
			fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
	}
}

static void
test_quota_list(void **state)
{
	(void)state;
	static const struct {
		uint64_t lb, lm, ub, um;
		const char *want; /* NULL: -1 */
	} cases[] = {
	    {0, 0, 5000, 7, NULL},
	    {10240, 0, 2048, 1, "(STORAGE 2 10)"},
	    {10240, 0, 3548, 2, "(STORAGE 3 10)"}, /* rounded down */
	    {1023, 0, 1023, 1, "(STORAGE 0 0)"},
	    {0, 3, 5000, 2, "(MESSAGE 2 3)"},
	    {10240, 3, 0, 0, "(STORAGE 0 10 MESSAGE 0 3)"},
	    {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
	     "(STORAGE 18014398509481983 18014398509481983 MESSAGE 18446744073709551615 "
	     "18446744073709551615)"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 256);
		int rc = imap_quota_list(&b, cases[i].lb, cases[i].lm, cases[i].ub, cases[i].um);
		if (cases[i].want == NULL) {
			assert_int_equal(rc, -1);
			assert_int_equal(b.len, 0);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(buf_cstr(&b), cases[i].want);
		}
		buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quota_check),
	    cmocka_unit_test(test_quota_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
