/* test_dmarc_report.c - the pure parts of DMARC aggregate reports (RFC
 * 7489 7.2): rua= mailto: addresses (6.2 size suffix, percent-encoding,
 * other schemes skipped, the cap), rows and policies as stored bytes
 * (round trip, bytes that are not one refused), the XML document
 * (escaping, the optional elements, a domain without decodable rows)
 * and the attachment's file name (7.2.1.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/smtp/dmarc.h"
#include "protocols/smtp/dmarc_report.h"

static void
test_rua(void **state)
{
	struct arena *a = arena_new(0);
	const char *v[DMARC_RUA_MAX];
	struct dmarc_record r;
	const char *txt = "v=DMARC1; p=none; rua=mailto:a@Example.COM!10m, https://x.test/r,"
			  " mailto:r%2Bx@d.test?subject=hi ,mailto:nodomain, mailto:e@f.test,"
			  "mailto:g@h.test, mailto:i@j.test";

	(void)state;
	assert_int_equal(dmarc_record_parse(txt, strlen(txt), &r), 0);
	assert_true(r.has_rua);
	char *rua = arena_strndup(a, r.rua, r.rua_len);
	assert_string_equal(rua, "mailto:a@Example.COM!10m, https://x.test/r, "
				 "mailto:r%2Bx@d.test?subject=hi ,mailto:nodomain, "
				 "mailto:e@f.test,mailto:g@h.test, mailto:i@j.test");
	assert_int_equal(dmarc_rua_mailto(rua, a, v, DMARC_RUA_MAX), 4);
	assert_string_equal(v[0], "a@example.com");
	assert_string_equal(v[1], "r+x@d.test");
	assert_string_equal(v[2], "e@f.test");
	assert_string_equal(v[3], "g@h.test");
	assert_int_equal(dmarc_rua_mailto("mailto:%3Cx%3E@y.test, ftp://z", a, v, 4), 0);
	assert_int_equal(dmarc_rua_mailto("", a, v, 4), 0);

	/* no rua: nothing kept */
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=none", 16, &r), 0);
	assert_null(r.rua);
	arena_destroy(&a);
}

static void
test_row_policy_bytes(void **state)
{
	struct dmarc_row in =
			     {
				 .source_ip = "192.0.2.1",
				 .header_from = "example.com",
				 .envelope_from = "",
				 .disposition = "quarantine",
				 .dkim_pass = true,
				 .reason = "sampled_out",
				 .spf_domain = "helo.example.net",
				 .spf_scope = "helo",
				 .spf_result = "softfail",
				 .dkim = {{"example.com", "s1", "pass"},
					  {"other.example", "", "permerror"}},
				 .ndkim = 2,
			     },
			 out;
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(dmarc_row_encode(&in, &b), 0);
	assert_int_equal(dmarc_row_decode(b.data, b.len, &out), 0);
	assert_string_equal(out.source_ip, "192.0.2.1");
	assert_string_equal(out.envelope_from, "");
	assert_string_equal(out.disposition, "quarantine");
	assert_true(out.dkim_pass);
	assert_false(out.spf_pass);
	assert_string_equal(out.reason, "sampled_out");
	assert_string_equal(out.spf_scope, "helo");
	assert_int_equal(out.ndkim, 2);
	assert_string_equal(out.dkim[1].domain, "other.example");
	assert_string_equal(out.dkim[1].result, "permerror");
	/* cut, or one string short of a DKIM triple: not a row */
	assert_int_equal(dmarc_row_decode(b.data, b.len - 1, &out), -1);
	size_t cut = b.len - strlen("permerror") - 1;
	assert_int_equal(dmarc_row_decode(b.data, cut, &out), -1);
	assert_int_equal(dmarc_row_decode("a\0b\0", 4, &out), -1);

	struct dmarc_record rec = {.p = DMARC_P_REJECT,
				   .pct = 50,
				   .aspf_strict = true,
				   .rua = "mailto:x@y.test;junk",
				   .rua_len = 15};
	struct dmarc_published pub;
	buf_reset(&b);
	assert_int_equal(dmarc_policy_encode(&rec, &b), 0);
	assert_int_equal(dmarc_policy_decode(b.data, b.len, &pub), 0);
	assert_string_equal(pub.p, "reject");
	assert_string_equal(pub.sp, "reject"); /* no sp=: p applies */
	assert_int_equal(pub.pct, 50);
	assert_string_equal(pub.adkim, "r");
	assert_string_equal(pub.aspf, "s");
	assert_string_equal(pub.rua, "mailto:x@y.test");
	rec.sp = DMARC_P_NONE;
	buf_reset(&b);
	assert_int_equal(dmarc_policy_encode(&rec, &b), 0);
	assert_int_equal(dmarc_policy_decode(b.data, b.len, &pub), 0);
	assert_string_equal(pub.sp, "none");
	assert_int_equal(dmarc_policy_decode(b.data, b.len - 1, &pub), -1);
	buf_free(&b);
}

static void
test_xml(void **state)
{
	struct dmarc_row row = {
	    .source_ip = "2001:db8::1",
	    .header_from = "a<b>&\"c'\x01.example",
	    .envelope_from = "x.example",
	    .disposition = "none",
	    .spf_pass = true,
	    .reason = "",
	    .spf_domain = "x.example",
	    .spf_scope = "mfrom",
	    .spf_result = "pass",
	    .dkim = {{"d.example", "", "fail"}},
	    .ndkim = 1,
	};
	struct dmarc_record rec = {
	    .p = DMARC_P_NONE, .pct = 100, .rua = "mailto:r@e.test", .rua_len = 15};
	struct buf pol, r1, xml;
	struct dmarc_report_meta m = {.org_name = "Org & Co",
				      .email = "dmarc@rep.test",
				      .receiver = "rep.test",
				      .report_id = "7.abc",

				      .begin = 100,
				      .end = 200};

	(void)state;
	buf_init(&pol, 4096);
	buf_init(&r1, 4096);
	buf_init(&xml, 1 << 20);
	assert_int_equal(dmarc_policy_encode(&rec, &pol), 0);
	assert_int_equal(dmarc_row_encode(&row, &r1), 0);
	struct store_dmarc_row rows[2] = {
	    {.row = r1.data, .row_len = r1.len, .count = 3},
	    {.row = "bad", .row_len = 3, .count = 1},
	};
	struct store_dmarc_domain d = {.domain = "e.test",
				       .policy = pol.data,
				       .policy_len = pol.len,
				       .begin = 100,
				       .rows = rows,
				       .nrows = 2};
	size_t skipped = 9;
	assert_int_equal(dmarc_report_xml(&m, &d, &xml, &skipped), 0);
	assert_int_equal(skipped, 1);
	assert_string_equal(
	    buf_cstr(&xml),
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<feedback>\n"
	    "  <version>1.0</version>\n"
	    "  <report_metadata>\n"
	    "    <org_name>Org &amp; Co</org_name>\n"
	    "    <email>dmarc@rep.test</email>\n"
	    "    <report_id>7.abc</report_id>\n"
	    "    <date_range>\n"
	    "      <begin>100</begin>\n"
	    "      <end>200</end>\n"
	    "    </date_range>\n"
	    "  </report_metadata>\n"
	    "  <policy_published>\n"
	    "    <domain>e.test</domain>\n"
	    "    <adkim>r</adkim>\n"
	    "    <aspf>r</aspf>\n"
	    "    <p>none</p>\n"
	    "    <sp>none</sp>\n"
	    "    <pct>100</pct>\n"
	    "  </policy_published>\n"
	    "  <record>\n"
	    "    <row>\n"
	    "      <source_ip>2001:db8::1</source_ip>\n"
	    "      <count>3</count>\n"
	    "      <policy_evaluated>\n"
	    "        <disposition>none</disposition>\n"
	    "        <dkim>fail</dkim>\n"
	    "        <spf>pass</spf>\n"
	    "      </policy_evaluated>\n"
	    "    </row>\n"
	    "    <identifiers>\n"
	    "      <envelope_from>x.example</envelope_from>\n"
	    "      <header_from>a&lt;b&gt;&amp;&quot;c&apos;?.example</header_from>\n"
	    "    </identifiers>\n"
	    "    <auth_results>\n"
	    "      <dkim>\n"
	    "        <domain>d.example</domain>\n"
	    "        <result>fail</result>\n"
	    "      </dkim>\n"
	    "      <spf>\n"
	    "        <domain>x.example</domain>\n"
	    "        <scope>mfrom</scope>\n"
	    "        <result>pass</result>\n"
	    "      </spf>\n"
	    "    </auth_results>\n"
	    "  </record>\n"
	    "</feedback>\n");

	/* nothing decodable: no report */
	d.rows = &rows[1];
	d.nrows = 1;
	buf_reset(&xml);
	assert_int_equal(dmarc_report_xml(&m, &d, &xml, NULL), -1);

	struct buf f;
	buf_init(&f, 1024);
	assert_int_equal(dmarc_report_filename(&m, "e.test", &f), 0);
	assert_string_equal(buf_cstr(&f), "rep.test!e.test!100!200.xml.gz");
	buf_free(&f);
	buf_free(&pol);
	buf_free(&r1);
	buf_free(&xml);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rua),
	    cmocka_unit_test(test_row_policy_bytes),
	    cmocka_unit_test(test_xml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
