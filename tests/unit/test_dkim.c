/*
 * test_dkim.c - DKIM (protocols/smtp/dkim.h): the RFC 6376 3.4.6
 * canonicalisation example, tag-list parsing, and sign-then-verify round
 * trips with RSA-2048 and Ed25519, tampering and key-record cases.
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
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "protocols/smtp/dkim.h"

static const char HDR_A[] = "A: X";
static const char HDR_B[] = "B : Y\t\r\n\tZ  ";
static const char BODY[] = " C \r\nD \t E\r\n\r\n\r\n";

static void
test_canon_rfc_example(void **state)
{
	struct buf b;
	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, HDR_A, strlen(HDR_A), &b), 0);
	assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, HDR_B, strlen(HDR_B), &b), 0);
	assert_string_equal(buf_cstr(&b), "a:X\r\nb:Y Z\r\n");
	buf_reset(&b);
	assert_int_equal(dkim_canon_header(DKIM_CANON_SIMPLE, HDR_B, strlen(HDR_B), &b), 0);
	assert_string_equal(buf_cstr(&b), "B : Y\t\r\n\tZ  \r\n");
	buf_free(&b);
}

static void
emit_buf(void *arg, const char *p, size_t n)
{
	assert_int_equal(buf_append(arg, p, n), 0);
}

static void
test_canon_body(void **state)
{
	struct buf b;
	(void)state;
	buf_init(&b, 4096);
	size_t n =
	    dkim_canon_body(DKIM_CANON_RELAXED, BODY, strlen(BODY), (size_t)-1, emit_buf, &b);
	assert_string_equal(buf_cstr(&b), " C\r\nD E\r\n");
	assert_int_equal(n, 9);
	buf_reset(&b);
	dkim_canon_body(DKIM_CANON_SIMPLE, BODY, strlen(BODY), (size_t)-1, emit_buf, &b);
	assert_string_equal(buf_cstr(&b), " C \r\nD \t E\r\n");
	/* Empty bodies (3.4.3, 3.4.4 with erratum 1384). */
	buf_reset(&b);
	assert_int_equal(dkim_canon_body(DKIM_CANON_SIMPLE, "", 0, (size_t)-1, emit_buf, &b), 2);
	assert_string_equal(buf_cstr(&b), "\r\n");
	buf_reset(&b);
	assert_int_equal(
	    dkim_canon_body(DKIM_CANON_RELAXED, "\r\n \r\n", 5, (size_t)-1, emit_buf, &b), 0);
	/* A last line without CRLF gets one; l= cuts. */
	buf_reset(&b);
	assert_int_equal(dkim_canon_body(DKIM_CANON_SIMPLE, "ab\r\ncd", 6, 3, emit_buf, &b), 8);
	assert_string_equal(buf_cstr(&b), "ab\r");
	buf_free(&b);
}

static void
test_tag_list(void **state)
{
	struct dkim_tag t[8];
	size_t n;
	(void)state;
	const char *s = " v=1; a = rsa-sha256 ;\r\n\th=From : To;b=ab\r\n cd;";
	assert_int_equal(dkim_tag_list_parse(s, strlen(s), t, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(t[1].name_len, 1);
	assert_memory_equal(t[1].value, "rsa-sha256", 10);
	assert_int_equal(t[1].value_len, 10);
	assert_int_equal(t[2].value_len, strlen("From : To"));
	assert_int_equal(t[3].value_len, strlen("ab\r\n cd"));
	s = "v=1; v=2";
	assert_int_equal(dkim_tag_list_parse(s, strlen(s), t, 8, &n), -2);
	s = "v=1; =2";
	assert_int_equal(dkim_tag_list_parse(s, strlen(s), t, 8, &n), -1);
	s = "1v=1";
	assert_int_equal(dkim_tag_list_parse(s, strlen(s), t, 8, &n), -1);
	s = "v=1\r\nb=2"; /* CRLF not followed by WSP is no FWS */
	assert_int_equal(dkim_tag_list_parse(s, strlen(s), t, 8, &n), -1);
	s = "a=1;b=2;c=3";
	assert_int_equal(dkim_tag_list_parse(s, strlen(s), t, 2, &n), -3);
	s = "";
	assert_int_equal(dkim_tag_list_parse(s, 0, t, 8, &n), 0);
	assert_int_equal(n, 0);
}

/* A fresh key written to a temporary PEM file and loaded. */
static struct dkim_key *
make_key(bool rsa, struct buf *txt)
{
	EVP_PKEY *pk = rsa ? EVP_RSA_gen(2048) : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(pk);
	char path[] = "/tmp/test_dkim_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	struct dkim_key *k;
	char *err = NULL;
	assert_int_equal(dkim_key_load(path, &k, &err), 0);
	unlink(path);
	buf_init(txt, 8192);
	assert_int_equal(dkim_key_txt(k, txt), 0);
	return k;
}

static const char MSG[] = "From: Alice <alice@example.org>\r\n"
			  "To: bob@example.net\r\n"
			  "Subject: a  test\r\n"
			  "\tfolded\r\n"
			  "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
			  "Message-ID: <1@example.org>\r\n"
			  "\r\n"
			  "Hello,  world\r\n"
			  "\r\n";

/* Signs MSG, applies edit to the signed text, verifies with txt. */
static enum dkim_result
round_trip(const struct dkim_key *k, const char *txt, const char *find, const char *repl,
	   const char **reason_r)
{
	struct buf out;
	const char *why;
	struct dkim_sign_params p = {.domain = "example.org", .selector = "s1", .t = 1700000000};
	buf_init(&out, 1 << 20);
	assert_int_equal(dkim_sign(k, &p, MSG, strlen(MSG), &out, &why), 0);
	assert_int_equal(buf_append_str(&out, MSG), 0);
	char *m = strdup(buf_cstr(&out));
	if (find != NULL) {
		char *at = strstr(m, find);
		assert_non_null(at);
		char *n = NULL;
		assert_true(asprintf(&n, "%.*s%s%s", (int)(at - m), m, repl, at + strlen(find)) >
			    0);
		free(m);
		m = n;
	}
	struct dkim_verify *v;
	assert_int_equal(dkim_verify_prepare(m, strlen(m), 1700000100, &v), 0);
	assert_int_equal(v->nsigs, 1);
	assert_string_equal(dkim_sig_key_name(v, 0), "s1._domainkey.example.org");
	assert_string_equal(v->sigs[0].domain, "example.org");
	assert_string_equal(v->sigs[0].auid, "@example.org");
	assert_int_equal(strlen(v->sigs[0].header_b), 8);
	enum dkim_result r = dkim_verify_one(v, 0, DKIM_KEY_FOUND, txt, strlen(txt));
	*reason_r = v->sigs[0].reason;
	dkim_verify_free(&v);
	assert_null(v);
	free(m);
	buf_free(&out);
	return r;
}

static void
run_alg(bool rsa)
{
	struct buf txt;
	const char *why;
	struct dkim_key *k = make_key(rsa, &txt);
	const char *t = buf_cstr(&txt);

	assert_int_equal(round_trip(k, t, NULL, NULL, &why), DKIM_PASS);
	/* Relaxed: whitespace changes and refolding pass. */
	assert_int_equal(round_trip(k, t, "Hello,  world", "Hello, \t world  ", &why), DKIM_PASS);
	assert_int_equal(
	    round_trip(k, t, "Subject: a  test\r\n\tfolded", "subject:a test folded", &why),
	    DKIM_PASS);
	/* Tampering. */
	assert_int_equal(round_trip(k, t, "Hello", "Jello", &why), DKIM_FAIL);
	assert_string_equal(why, "body hash did not verify");
	assert_int_equal(round_trip(k, t, "a  test", "a  pest", &why), DKIM_FAIL);
	assert_string_equal(why, "signature did not verify");
	/* A second From added above (over-signed): fails. */
	assert_int_equal(
	    round_trip(k, t, "From: Alice", "From: mallory@evil.example\r\nFrom: Alice", &why),
	    DKIM_FAIL);
	/* An unsigned header added: still passes. */
	assert_int_equal(round_trip(k, t, "From: Alice", "X-Extra: 1\r\nFrom: Alice", &why),
			 DKIM_PASS);
	/* Key records: revoked, wrong type, sha1 only, not for email. */
	assert_int_equal(
	    round_trip(k, rsa ? "v=DKIM1; k=rsa; p=" : "v=DKIM1; k=ed25519; p=", NULL, NULL, &why),
	    DKIM_PERMERROR);
	assert_string_equal(why, "key revoked");
	char *bad;
	assert_true(asprintf(&bad, "%s", t) > 0);
	char *kk = strstr(bad, rsa ? "k=rsa" : "k=ed25519");
	memcpy(kk, rsa ? "k=xyz" : "k=rsa    ", rsa ? 5 : 9);
	assert_int_equal(round_trip(k, bad, NULL, NULL, &why), DKIM_PERMERROR);
	free(bad);
	assert_true(asprintf(&bad, "%s; h=sha1", t) > 0);
	assert_int_equal(round_trip(k, bad, NULL, NULL, &why), DKIM_PERMERROR);
	assert_string_equal(why, "inappropriate hash algorithm");
	free(bad);
	assert_true(asprintf(&bad, "%s; s=tlsrpt", t) > 0);
	assert_int_equal(round_trip(k, bad, NULL, NULL, &why), DKIM_PERMERROR);
	free(bad);
	assert_true(asprintf(&bad, "%s; t=y:s; s=email:*", t) > 0);
	assert_int_equal(round_trip(k, bad, NULL, NULL, &why), DKIM_PASS);
	free(bad);
	buf_free(&txt);
	dkim_key_free(k);
}

static void
test_rsa(void **state)
{
	(void)state;
	run_alg(true);
}

static void
test_ed25519(void **state)
{
	(void)state;
	run_alg(false);
}

/* Signatures settled before any key: syntax and policy. */
static enum dkim_result
prepared(const char *sig, const char **reason_r)
{
	char *m;
	assert_true(asprintf(&m, "DKIM-Signature: %s\r\nFrom: a@example.org\r\n\r\nhi\r\n", sig) >
		    0);
	struct dkim_verify *v;
	assert_int_equal(dkim_verify_prepare(m, strlen(m), 1700000000, &v), 0);
	assert_int_equal(v->nsigs, 1);
	enum dkim_result r = dkim_verify_one(v, 0, DKIM_KEY_MISSING, NULL, 0);
	*reason_r = v->sigs[0].reason;
	dkim_verify_free(&v);
	free(m);
	return r;
}

#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA"

static void
test_settled(void **state)
{
	const char *why;
	(void)state;
	assert_int_equal(prepared("v=1; a=rsa-sha256; d=example.org; s=s; h=from; " BH, &why),
			 DKIM_PERMERROR);
	assert_string_equal(why, "no key for signature");
	assert_int_equal(prepared("v=1; a=rsa-sha256; d=example.org; h=from; " BH, &why),
			 DKIM_PERMERROR);
	assert_string_equal(why, "missing required tag");
	assert_int_equal(prepared("v=2; a=rsa-sha256; d=example.org; s=s; h=from; " BH, &why),
			 DKIM_PERMERROR);
	assert_int_equal(prepared("v=1; a=rsa-sha1; d=example.org; s=s; h=from; " BH, &why),
			 DKIM_PERMERROR);
	assert_int_equal(prepared("v=1; a=rsa-sha256; d=example.org; s=s; h=to:subject; " BH, &why),
			 DKIM_PERMERROR);
	assert_string_equal(why, "From field not signed");
	assert_int_equal(
	    prepared("v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=a@example.com; " BH, &why),
	    DKIM_PERMERROR);
	assert_string_equal(why, "i= not within d=");
	assert_int_equal(
	    prepared("v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=a@sub.example.org; " BH,
		     &why),
	    DKIM_PERMERROR);
	assert_string_equal(why, "no key for signature"); /* i= accepted */
	assert_int_equal(
	    prepared("v=1; a=rsa-sha256; d=example.org; s=s; h=from; c=fancy; " BH, &why),
	    DKIM_PERMERROR);
	assert_int_equal(
	    prepared("v=1; a=rsa-sha256; d=example.org; s=s; h=from; x=1600000000; " BH, &why),
	    DKIM_POLICY);
	assert_string_equal(why, "signature expired");
	assert_int_equal(prepared("v=1; a=rsa-sha256; d=example.org; s=s; v=1; " BH, &why),
			 DKIM_PERMERROR);
	assert_string_equal(why, "duplicate tag");

	/* The caller's DNS failure. */
	const char *m = "DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=s; h=from; " BH
			"\r\nFrom: a@example.org\r\n\r\n";
	struct dkim_verify *v;
	assert_int_equal(dkim_verify_prepare(m, strlen(m), 0, &v), 0);
	assert_int_equal(dkim_verify_one(v, 0, DKIM_KEY_TEMPFAIL, NULL, 0), DKIM_TEMPERROR);
	dkim_verify_free(&v);
	assert_string_equal(dkim_result_name(DKIM_PERMERROR), "permerror");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_canon_rfc_example), cmocka_unit_test(test_canon_body),
	    cmocka_unit_test(test_tag_list),	      cmocka_unit_test(test_rsa),
	    cmocka_unit_test(test_ed25519),	      cmocka_unit_test(test_settled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
