/* test_spf.c - the pure parts of SPF (RFC 7208) and Authentication-Results
 * (RFC 8601): macro expansion with the examples of RFC 7208 7.4, record
 * syntax, CIDR matching, header rendering and forged-header removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/smtp/authres.h"
#include "protocols/smtp/spf.h"

static void
expand_case(const char *ip, const char *macro, const char *want)
{
	struct arena *a = arena_new(0);
	struct spf_request req = {.sender = "strong-bad@email.example.com",
				  .helo = "mx.example.org",
				  .receiver = "mail.example.test",
				  .now = 1000};
	const char *out = NULL;

	assert_int_equal(spf_ip_parse(ip, &req.ip), 0);
	assert_int_equal(
	    spf_expand(macro, strlen(macro), &req, req.sender, "email.example.com", false, a, &out),
	    0);
	assert_string_equal(out, want);
	arena_destroy(&a);
}

/* RFC 7208 7.4 */
static void
test_rfc_macro_examples(void **state)
{
	static const char *const cases[][2] = {
	    {"%{s}", "strong-bad@email.example.com"},
	    {"%{o}", "email.example.com"},
	    {"%{d}", "email.example.com"},
	    {"%{d4}", "email.example.com"},
	    {"%{d3}", "email.example.com"},
	    {"%{d2}", "example.com"},
	    {"%{d1}", "com"},
	    {"%{dr}", "com.example.email"},
	    {"%{d2r}", "example.email"},
	    {"%{l}", "strong-bad"},
	    {"%{l-}", "strong.bad"},
	    {"%{lr}", "strong-bad"},
	    {"%{lr-}", "bad.strong"},
	    {"%{l1r-}", "strong"},
	    {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
	    {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
	    {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
	    {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
	    {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
	    {"%%%_%-", "% %20"},
	    {"%{S}", "strong-bad%40email.example.com"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expand_case("192.0.2.3", cases[i][0], cases[i][1]);
	expand_case("2001:db8::cb01", "%{ir}.%{v}._spf.%{d2}",
		    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf."
		    "example.com");
}

static void
test_macro_errors(void **state)
{
	struct arena *a = arena_new(0);
	struct spf_request req = {.sender = "a@b.example", .helo = "h"};
	const char *out;
	static const char *const bad[] = {"%{d0}", "%{x}", "%{d",  "%",
					  "%a",	   "%{c}", "%{t}", "%{r}"};

	spf_ip_parse("192.0.2.3", &req.ip);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    spf_expand(bad[i], strlen(bad[i]), &req, req.sender, "d", false, a, &out), -1);
	/* c, r, t are fine in an explanation */
	assert_int_equal(spf_expand("%{c} %{r} %{t}", 14, &req, req.sender, "d", true, a, &out),
			 -1 + 1);
	assert_string_equal(out, "192.0.2.3 unknown 0");
	arena_destroy(&a);
}

static int
parse(const char *rec, struct spf_record *r, struct arena *a)
{
	const char *err;
	return spf_parse_record(rec, strlen(rec), a, r, &err);
}

static void
test_records(void **state)
{
	struct arena *a = arena_new(0);
	struct spf_record r;
	static const char *const good[] = {
	    "v=spf1",
	    "v=spf1 -all",
	    "V=SPF1 +MX/24//64 ?a:%{d}.example.com ip4:192.0.2.0/24 ip6:2001:db8::/32 "
	    "~include:example.net exists:%{ir}.%{l1r+-}._spf.%{d} ptr ptr:example.org "
	    "redirect=_spf.example.com exp=explain._spf.%{d} foo=bar%{l} ",
	    "v=spf1 a mx/30 a//126 a:example.com/0",
	};
	static const char *const bad[] = {
	    "v=spf1 ip4:192.0.2.300",
	    "v=spf1 ip4:192.0.2.0/33",
	    "v=spf1 ip4:192.0.2.0/08",
	    "v=spf1 ip6:2001:db8::/129",
	    "v=spf1 foo",
	    "v=spf1 all:x",
	    "v=spf1 include",
	    "v=spf1 a:example",
	    "v=spf1 redirect=a.example redirect=b.example",
	    "v=spf1 exp=a.example exp=b.example",
	    "v=spf1 a:%{x}.example.com",
	    "v=spf1  -all\t",
	    "v=spf1 exists:%{c}.example.com",
	    "v=spf10 -all",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(parse(good[i], &r, a), 0);
	assert_int_equal(parse(good[2], &r, a), 0);
	assert_int_equal(r.nterms, 8);
	assert_int_equal(r.terms[0].mech, SPF_M_MX);
	assert_int_equal(r.terms[0].cidr4, 24);
	assert_int_equal(r.terms[0].cidr6, 64);
	assert_int_equal(r.terms[1].qualifier, '?');
	assert_int_equal(r.terms[4].qualifier, '~');
	assert_non_null(r.redirect);
	assert_int_equal(r.redirect_len, strlen("_spf.example.com"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &r, a), -1);
	assert_true(spf_is_record("v=spf1", 6));
	assert_false(spf_is_record("v=spf1a", 7));
	arena_destroy(&a);
}

static void
test_cidr(void **state)
{
	struct spf_ip ip, net;
	assert_int_equal(spf_ip_parse("::ffff:192.0.2.3", &ip), 0);
	assert_int_equal(ip.family, AF_INET);
	spf_ip_parse("192.0.2.0", &net);
	assert_true(spf_cidr_match(&ip, &net, 24));
	assert_true(spf_cidr_match(&ip, &net, 30));
	assert_false(spf_cidr_match(&ip, &net, 31));
	assert_true(spf_cidr_match(&ip, &net, 0));
	spf_ip_parse("2001:db8::1", &ip);
	spf_ip_parse("2001:db8::", &net);
	assert_true(spf_cidr_match(&ip, &net, 32));
	assert_false(spf_cidr_match(&ip, &net, 128));
	spf_ip_parse("192.0.2.0", &net);
	assert_false(spf_cidr_match(&ip, &net, 0)); /* families differ */
	assert_int_equal(spf_ip_parse("nope", &ip), -1);
}

static void
test_authres(void **state)
{
	struct authres ar = {0};
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(authres_render(&ar, "mx.example", &b), 0);
	assert_string_equal(buf_cstr(&b), "Authentication-Results: mx.example; none\r\n");
	buf_reset(&b);
	authres_add(&ar, "spf", "pass", "ip4 (x) matched", "smtp.mailfrom", "a@b.example");
	authres_add(&ar, "spf", "none", NULL, "smtp.helo", "we ird");
	assert_int_equal(authres_render(&ar, "mx.example", &b), 0);
	assert_string_equal(buf_cstr(&b),
			    "Authentication-Results: mx.example;\r\n"
			    "\tspf=pass (ip4 \\(x\\) matched) smtp.mailfrom=a@b.example;\r\n"
			    "\tspf=none smtp.helo=\"we ird\"\r\n");
	buf_free(&b);

	char hdr[] = "Authentication-Results: MX.example; spf=pass\r\n"
		     "Subject: x\r\n"
		     "authentication-results : (c (nested)) mx.example;\r\n dkim=pass\r\n"
		     "Authentication-Results: other.example; spf=fail\r\n"
		     "Authentication-Results: mx.example.evil; spf=fail\r\n"
		     "\r\n"
		     "Authentication-Results: mx.example; body\r\n";
	unsigned removed;
	size_t n = authres_strip(hdr, strlen(hdr), "mx.example", &removed);
	hdr[n] = '\0';
	assert_int_equal(removed, 2);
	assert_string_equal(hdr, "Subject: x\r\n"
				 "Authentication-Results: other.example; spf=fail\r\n"
				 "Authentication-Results: mx.example.evil; spf=fail\r\n"
				 "\r\n"
				 "Authentication-Results: mx.example; body\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_macro_examples),
	    cmocka_unit_test(test_macro_errors),
	    cmocka_unit_test(test_records),
	    cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_authres),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
