/* test_dmarc.c - the pure parts of DMARC (RFC 7489): record parsing and
 * selection (6.3, 6.6.3), organizational domains from the public suffix
 * list through libpsl, alignment (3.1), the From domain (6.6.1), the
 * evaluation with pct (6.6.4); DNSBL query names (RFC 5782 2.1, 2.4) and
 * listing codes; A-R properties after the first (RFC 8601, RFC 6008). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/dns.h"
#include "protocols/smtp/authres.h"
#include "protocols/smtp/dmarc.h"
#include "protocols/smtp/dnsbl.h"

static int
parse(const char *txt, struct dmarc_record *r)
{
	return dmarc_record_parse(txt, strlen(txt), r);
}

static void
test_record_parse(void **state)
{
	struct dmarc_record r;

	assert_int_equal(parse("v=DMARC1; p=reject", &r), 0);
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_int_equal(r.sp, DMARC_P_UNSET);
	assert_int_equal(r.pct, 100);
	assert_false(r.adkim_strict);
	assert_false(r.aspf_strict);

	assert_int_equal(parse(" v = DMARC1 ;p=quarantine; sp=none; pct=25; adkim=s; aspf=s; "
			       "rua=mailto:a@example.com; ruf=mailto:f@example.com; fo=1; x=y;",
			       &r),
			 0);
	assert_int_equal(r.p, DMARC_P_QUARANTINE);
	assert_int_equal(r.sp, DMARC_P_NONE);
	assert_int_equal(r.pct, 25);
	assert_true(r.adkim_strict);
	assert_true(r.aspf_strict);
	assert_true(r.has_rua);

	/* not DMARC records: discarded */
	assert_int_equal(parse("v=spf1 -all", &r), -1);
	assert_int_equal(parse("p=reject; v=DMARC1", &r), -1);
	assert_int_equal(parse("v=DMARC2; p=reject", &r), -1);
	assert_int_equal(parse("v=dmarc1; p=reject", &r), -1);
	/* no valid p and no rua: no policy; with rua: p=none */
	assert_int_equal(parse("v=DMARC1", &r), -2);
	assert_int_equal(parse("v=DMARC1; p=bogus", &r), -2);
	assert_int_equal(parse("v=DMARC1; p=reject; sp=bogus", &r), -2);
	assert_int_equal(parse("v=DMARC1; p=bogus; rua=mailto:x@example.com", &r), 0);
	assert_int_equal(r.p, DMARC_P_NONE);
	/* bad pct keeps the default */
	assert_int_equal(parse("v=DMARC1; p=none; pct=101", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(parse("v=DMARC1; p=none; pct=0", &r), 0);
	assert_int_equal(r.pct, 0);
	assert_int_equal(parse("v=DMARC1; p=none; pct=x", &r), 0);
	assert_int_equal(r.pct, 100);
	/* duplicate tags: a broken record */
	assert_int_equal(parse("v=DMARC1; p=none; p=reject", &r), -2);
}

static void
test_select(void **state)
{
	struct dns_rr rr[3] = {
	    {.text = "v=spf1 -all", .len = 11},
	    {.text = "v=DMARC1; p=reject", .len = 18},
	    {.text = "v=DMARC1; p=none", .len = 16},
	};
	struct dns_result res = {.status = DNS_OK, .rrtype = DNS_T_TXT, .rr = rr, .n = 2};
	struct dmarc_record r;

	assert_int_equal(dmarc_select(&res, &r), DMARC_SEL_FOUND);
	assert_int_equal(r.p, DMARC_P_REJECT);
	res.n = 3; /* two DMARC records: no policy */
	assert_int_equal(dmarc_select(&res, &r), DMARC_SEL_NOPOLICY);
	res.n = 1;
	assert_int_equal(dmarc_select(&res, &r), DMARC_SEL_NONE);
	res.status = DNS_NXDOMAIN;
	res.n = 0;
	assert_int_equal(dmarc_select(&res, &r), DMARC_SEL_NONE);
}

static void
test_org_domain_alignment(void **state)
{
	assert_string_equal(dmarc_org_domain("mail.example.com"), "example.com");
	assert_string_equal(dmarc_org_domain("example.com"), "example.com");
	assert_string_equal(dmarc_org_domain("a.b.example.co.uk"), "example.co.uk");
	assert_string_equal(dmarc_org_domain("co.uk"), "co.uk");
	/* an unlisted TLD: the "*" rule */
	assert_string_equal(dmarc_org_domain("x.sub.org.test"), "org.test");

	assert_true(dmarc_aligned("example.com", "EXAMPLE.com.", true));
	assert_false(dmarc_aligned("mail.example.com", "example.com", true));
	assert_true(dmarc_aligned("mail.example.com", "news.Example.com", false));
	assert_true(dmarc_aligned("a.example.co.uk", "example.co.uk", false));
	/* different registrants under one public suffix */
	assert_false(dmarc_aligned("a.co.uk", "b.co.uk", false));
	assert_false(dmarc_aligned("example.com", "example.net", false));
}

static enum dmarc_from
from_of(const char *msg, char *out)
{
	return dmarc_from_domain(msg, strlen(msg), out, 256);
}

static void
test_from_domain(void **state)
{
	char d[256];

	assert_int_equal(from_of("From: Joe <joe@Mail.Example.COM>\r\nTo: x@y\r\n\r\nbody\r\n", d),
			 DMARC_FROM_OK);
	assert_string_equal(d, "mail.example.com");
	assert_int_equal(from_of("from:\r\n \"A, B\" <a@example.org.>\r\n\r\n", d), DMARC_FROM_OK);
	assert_string_equal(d, "example.org");
	assert_int_equal(from_of("To: x@y\r\n\r\nFrom: a@b\r\n", d), DMARC_FROM_NONE);
	assert_int_equal(from_of("From: a@b.example\r\nFrom: c@d.example\r\n\r\n", d),
			 DMARC_FROM_MULTI);
	assert_int_equal(from_of("From: a@b.example, c@d.example\r\n\r\n", d), DMARC_FROM_MULTI);
	assert_int_equal(from_of("From: undisclosed:;\r\n\r\n", d), DMARC_FROM_INVALID);
	assert_int_equal(from_of("From: <<<\r\n\r\n", d), DMARC_FROM_INVALID);
}

static void
test_evaluate(void **state)
{
	struct dmarc_record rec;
	struct dmarc_outcome out;
	const char *pass_d[] = {"example.com"};
	struct dmarc_input in = {.from_domain = "news.example.com", .rec = &rec};

	assert_int_equal(parse("v=DMARC1; p=reject; sp=quarantine", &rec), 0);
	/* no pass at all: the record's policy; sp= only through the org */
	dmarc_evaluate(&in, &out);
	assert_false(out.pass);
	assert_int_equal(out.applied, DMARC_P_REJECT);
	in.at_org = true;
	dmarc_evaluate(&in, &out);
	assert_int_equal(out.applied, DMARC_P_QUARANTINE);
	/* relaxed DKIM alignment passes, strict does not */
	in.dkim_pass_d = pass_d;
	in.ndkim_pass = 1;
	dmarc_evaluate(&in, &out);
	assert_true(out.pass);
	assert_int_equal(out.applied, DMARC_P_NONE);
	rec.adkim_strict = true;
	dmarc_evaluate(&in, &out);
	assert_false(out.pass);
	/* an SPF pass for the exact domain passes strict aspf */
	rec.aspf_strict = true;
	in.spf_pass = true;
	in.spf_domain = "news.example.com";
	dmarc_evaluate(&in, &out);
	assert_true(out.pass);
	in.spf_pass = false;
	/* pct: sampled out, reject becomes quarantine, quarantine none */
	in.at_org = false;
	rec.pct = 50;
	in.sample = 49;
	dmarc_evaluate(&in, &out);
	assert_int_equal(out.applied, DMARC_P_REJECT);
	in.sample = 50;
	dmarc_evaluate(&in, &out);
	assert_int_equal(out.policy, DMARC_P_REJECT);
	assert_int_equal(out.applied, DMARC_P_QUARANTINE);
	rec.p = DMARC_P_QUARANTINE;
	rec.pct = 0;
	in.sample = 0;
	dmarc_evaluate(&in, &out);
	assert_int_equal(out.applied, DMARC_P_NONE);
}

static void
test_dnsbl_names(void **state)
{
	struct spf_ip ip;
	char out[256];

	/* RFC 5782 2.1 and 2.4 */
	assert_int_equal(spf_ip_parse("192.0.2.99", &ip), 0);
	assert_int_equal(dnsbl_query_name(&ip, "bad.example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "99.2.0.192.bad.example.com");
	assert_int_equal(dnsbl_query_name(&ip, "zone.example.", out, sizeof(out)), 0);
	assert_string_equal(out, "99.2.0.192.zone.example");
	assert_int_equal(spf_ip_parse("2001:db8:1:2:3:4:567:89ab", &ip), 0);
	assert_int_equal(dnsbl_query_name(&ip, "ugly.example.com", out, sizeof(out)), 0);
	assert_string_equal(out, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2."
				 "ugly.example.com");
	assert_int_equal(dnsbl_query_name(&ip, "", out, sizeof(out)), -1);
	assert_int_equal(dnsbl_query_name(&ip, "z.example", out, 70), -1);

	assert_true(dnsbl_listed_addr((const unsigned char[]){127, 0, 0, 2}));
	assert_true(dnsbl_listed_addr((const unsigned char[]){127, 0, 0, 10}));
	assert_false(dnsbl_listed_addr((const unsigned char[]){127, 255, 255, 254}));
	assert_false(dnsbl_listed_addr((const unsigned char[]){10, 0, 0, 2}));
}

static void
test_authres_props(void **state)
{
	struct authres ar = {0};
	struct buf b;
	buf_init(&b, 4096);
	authres_add(&ar, "dkim", "pass", NULL, "header.d", "example.com");
	authres_add_prop(&ar, "header.s", "sel");
	authres_add_prop(&ar, "header.b", "ab+/cd=e");
	authres_add_prop(&ar, "header.a", "rsa-sha256");
	authres_add_prop(&ar, "header.i", "ignored"); /* past AUTHRES_PROPS */
	authres_add(&ar, "dmarc", "fail", "no aligned pass", "header.from", "example.com");
	authres_add_prop(&ar, "policy.dmarc", "quarantine");
	assert_int_equal(authres_render(&ar, "mx.example", &b), 0);
	assert_string_equal(buf_cstr(&b),
			    "Authentication-Results: mx.example;\r\n"
			    "\tdkim=pass header.d=example.com header.s=sel header.b=\"ab+/cd=e\""
			    " header.a=rsa-sha256;\r\n"
			    "\tdmarc=fail (no aligned pass) header.from=example.com"
			    " policy.dmarc=quarantine\r\n");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_parse),
	    cmocka_unit_test(test_select),
	    cmocka_unit_test(test_org_domain_alignment),
	    cmocka_unit_test(test_from_domain),
	    cmocka_unit_test(test_evaluate),
	    cmocka_unit_test(test_dnsbl_names),
	    cmocka_unit_test(test_authres_props),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
