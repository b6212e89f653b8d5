/*
 * test_mech.c - the SASL glue (protocols/sasl/mech.c): PLAIN message
 * splitting (RFC 4616), the advertised mechanism list, failed-auth
 * throttling, and the Cyrus SASL set-up: with Tern's auxprop pinned a
 * password check can never succeed through Cyrus (no sasldb fallback),
 * and Cyrus offers exactly the configured mech_list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sasl/sasl.h>

#include "core/config.h"
#include "protocols/sasl/mech.h"

struct plain_case {
	const char *msg; /* with embedded NULs */
	size_t len;
	int r;
	const char *authzid, *authcid, *passwd;
};

#define P(s) s, sizeof(s) - 1

static const struct plain_case plain_cases[] = {
    {P("\0alice\0secret"), 0, "", "alice", "secret"},
    {P("alice\0alice\0pw with spaces"), 0, "alice", "alice", "pw with spaces"},
    {P("admin\0alice\0pw"), 0, "admin", "alice", "pw"},
    /* missing NULs */
    {P("alicesecret"), -1, NULL, NULL, NULL},
    {P("alice\0secret"), -1, NULL, NULL, NULL},
    /* an extra NUL */
    {P("\0alice\0sec\0ret"), -1, NULL, NULL, NULL},
    {P("\0alice\0secret\0"), -1, NULL, NULL, NULL},
    {P("\0\0alice\0secret"), -1, NULL, NULL, NULL},
    /* empty authcid or password */
    {P("\0\0secret"), -1, NULL, NULL, NULL},
    {P("\0alice\0"), -1, NULL, NULL, NULL},
    {P("\0\0"), -1, NULL, NULL, NULL},
    {"", 0, -1, NULL, NULL, NULL},
};

static void
test_plain_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		const struct plain_case *c = &plain_cases[i];
		char *msg = malloc(c->len + 1);
		memcpy(msg, c->msg, c->len);
		msg[c->len] = 'X'; /* the parser must not read past len */
		const char *z = NULL, *a = NULL, *p = NULL;
		size_t pwlen = 0;
		print_message("plain case %zu\n", i);
		assert_int_equal(mech_plain_parse(msg, c->len, &z, &a, &p, &pwlen), c->r);
		if (c->r == 0) {
			assert_string_equal(z, c->authzid);
			assert_string_equal(a, c->authcid);
			assert_int_equal(pwlen, strlen(c->passwd));
			assert_memory_equal(p, c->passwd, pwlen);
			/* the pointers point into msg */
			assert_true(a > msg && a < msg + c->len);
		}
		free(msg);
	}
}

/* "\0" + authcid of n bytes + "\0" + password of m bytes */
static int
plain_sized(size_t zlen, size_t clen, size_t plen)
{
	size_t len = zlen + clen + plen + 2;
	char *msg = malloc(len);
	memset(msg, 'z', zlen);
	msg[zlen] = '\0';
	memset(msg + zlen + 1, 'c', clen);
	msg[zlen + 1 + clen] = '\0';
	memset(msg + zlen + clen + 2, 'p', plen);
	const char *z, *a, *p;
	size_t pwlen;
	int r = mech_plain_parse(msg, len, &z, &a, &p, &pwlen);
	free(msg);
	return r;
}

static void
test_plain_limits(void **state)
{
	(void)state;
	assert_int_equal(plain_sized(0, 255, 1024), 0);
	assert_int_equal(plain_sized(255, 255, 1), 0);
	assert_int_equal(plain_sized(0, 256, 10), -1);
	assert_int_equal(plain_sized(256, 5, 10), -1);
	assert_int_equal(plain_sized(0, 5, 1025), -1);
}

static void
sasl_cfg(struct config *cfg, const char *mechs)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->sasl_mechanisms = (char *)mechs;
	cfg->sasl_keytab = "";
	cfg->sasl_realms = "";
	cfg->sasl_gssapi_hostname = "";
	cfg->sasl_external_field = "email";
	cfg->sasl_external_attr = "mail";
	cfg->tls_client_ca = "";
	cfg->tls_cert = "";
}

static void
test_configured(void **state)
{
	(void)state;
	struct config cfg;
	sasl_cfg(&cfg, "");
	assert_int_equal(mech_cyrus_configured(&cfg), 0);
	sasl_cfg(&cfg, "PLAIN, LOGIN");
	assert_int_equal(mech_cyrus_configured(&cfg), 0);
	/* SCRAM brings -PLUS and the other way round (Cyrus runs both). */
	sasl_cfg(&cfg, "scram-sha-256");
	assert_int_equal(mech_cyrus_configured(&cfg), MECH_SCRAM | MECH_SCRAM_PLUS);
	sasl_cfg(&cfg, "SCRAM-SHA-256-PLUS");
	assert_int_equal(mech_cyrus_configured(&cfg), MECH_SCRAM | MECH_SCRAM_PLUS);
	sasl_cfg(&cfg, "gssapi external");
	assert_int_equal(mech_cyrus_configured(&cfg), MECH_GSSAPI | MECH_EXTERNAL);
	sasl_cfg(&cfg, "GSSAPI, CRAM-MD5");
	assert_int_equal(mech_cyrus_configured(&cfg), 0);
}

static void
check_fails(struct config *cfg, const char *needle)
{
	char *err = NULL;
	assert_int_equal(mech_check_config(cfg, &err), -1);
	assert_non_null(err);
	if (strstr(err, needle) == NULL)
		fail_msg("\"%s\" does not name \"%s\"", err, needle);
	free(err);
}

static void
test_check_config(void **state)
{
	(void)state;
	struct config cfg;
	char *err = NULL;
	sasl_cfg(&cfg, "");
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	sasl_cfg(&cfg, " plain, LOGIN ");
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	sasl_cfg(&cfg, "PLAIN, scram-sha-256 SCRAM-SHA-256-PLUS");
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	/* Mechanisms that would offer a login that never succeeds are
	 * refused at start-up, naming what is wrong. */
	sasl_cfg(&cfg, "PLAIN, cram-md5");
	check_fails(&cfg, "cram-md5");
	sasl_cfg(&cfg, "PLAINX");
	check_fails(&cfg, "PLAINX");
	sasl_cfg(&cfg, "GSSAPI");
	check_fails(&cfg, "[sasl] keytab");
	cfg.sasl_keytab = "/etc/krb5.keytab";
	check_fails(&cfg, "[sasl] realms");
	cfg.sasl_realms = "EXAMPLE.TEST";
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	sasl_cfg(&cfg, "EXTERNAL");
	check_fails(&cfg, "[tls] client_ca");
	cfg.tls_client_ca = "/ca.pem";
	check_fails(&cfg, "[tls] cert");
	cfg.tls_cert = "/cert.pem";
	assert_int_equal(mech_check_config(&cfg, &err), 0);
	cfg.sasl_external_field = "serial";
	check_fails(&cfg, "external_field");
}

static void
test_throttle(void **state)
{
	(void)state;
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.auth_fail_delay_ms = 100;
	const char *ip = "192.0.2.7", *other = "2001:db8::1";

	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 100);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 200);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 400);
	/* another address is not affected */
	assert_int_equal(mech_fail_delay_ms(&cfg, other), 100);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 800);
	mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 1600);
	/* grows, then stays at the cap: 16 times the base ... */
	for (int i = 0; i < 20; i++)
		mech_record_result(ip, false);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 1600);
	/* ... but never more than 16 s */
	cfg.auth_fail_delay_ms = 2000;
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 16000);
	cfg.auth_fail_delay_ms = 30000; /* a base over the cap is kept */
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 30000);
	cfg.auth_fail_delay_ms = 100;
	/* success resets */
	mech_record_result(ip, true);
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 100);
	/* a zero base means no delay at all */
	mech_record_result(ip, false);
	cfg.auth_fail_delay_ms = 0;
	assert_int_equal(mech_fail_delay_ms(&cfg, ip), 0);
	mech_record_result(ip, true);

	/* many addresses: the table stays bounded and still works */
	cfg.auth_fail_delay_ms = 10;
	char buf[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		mech_record_result(buf, false);
	}
	assert_int_equal(mech_fail_delay_ms(&cfg, "10.0.19.135"), 20); /* the last one */
	mech_record_result("10.0.19.135", true);
	assert_int_equal(mech_fail_delay_ms(&cfg, "10.0.19.135"), 10);
}

/* Every mechanism Cyrus would offer, or "" (SASL_NOMECH). */
static char *
cyrus_mechs(sasl_conn_t *conn)
{
	const char *out = NULL;
	unsigned outlen = 0;
	int count = 0;
	int r = sasl_listmech(conn, NULL, "", " ", "", &out, &outlen, &count);
	if (r == SASL_NOMECH)
		return strdup("");
	assert_int_equal(r, SASL_OK);
	return strndup(out, outlen);
}

static void
test_cyrus_no_fallback(void **state)
{
	(void)state;
	struct config cfg;
	char *err = NULL;
	sasl_cfg(&cfg, "");

	/* An empty mech_list: Cyrus offers nothing (out of the box it
	 * would offer ANONYMOUS, CRAM-MD5, DIGEST-MD5, PLAIN...). */
	assert_int_equal(mech_cyrus_init(&cfg, &err), 0);
	sasl_conn_t *conn = NULL;
	assert_int_equal(sasl_server_new("pop", "localhost", NULL, NULL, NULL, NULL, 0, &conn),
			 SASL_OK);
	char *m = cyrus_mechs(conn);
	assert_string_equal(m, "");
	free(m);
	/* A password check through Cyrus cannot succeed: pwcheck_method is
	 * auxprop, and the only auxprop is ours, which knows nobody. */
	int r = sasl_checkpass(conn, "alice", 5, "alicepw", 7);
	assert_int_not_equal(r, SASL_OK);
	assert_true(r == SASL_NOUSER || r == SASL_NOMECH || r == SASL_BADAUTH);
	r = sasl_checkpass(conn, "root", 4, "", 0);
	assert_int_not_equal(r, SASL_OK);
	/* A PLAIN exchange run by Cyrus is not offered either. */
	const char *out;
	unsigned outlen;
	static const char plain[] = "\0alice\0alicepw";
	r = sasl_server_start(conn, "PLAIN", plain, sizeof(plain) - 1, &out, &outlen);
	assert_int_not_equal(r, SASL_OK);
	sasl_dispose(&conn);
	mech_cyrus_done();

	/* Exactly the configured mechanism, and still no way in. */
	cfg.sasl_mechanisms = "SCRAM-SHA-256";
	assert_int_equal(mech_cyrus_init(&cfg, &err), 0);
	assert_int_equal(sasl_server_new("pop", "localhost", NULL, NULL, NULL, NULL, 0, &conn),
			 SASL_OK);
	/* Without a channel binding the -PLUS half lists under the plain
	 * name (Cyrus prints it once per plugin entry): SCRAM only. */
	m = cyrus_mechs(conn);
	for (char *w = strtok(m, " "); w != NULL; w = strtok(NULL, " "))
		assert_string_equal(w, "SCRAM-SHA-256");
	free(m);
	r = sasl_checkpass(conn, "alice", 5, "alicepw", 7);
	assert_int_not_equal(r, SASL_OK);
	static const char first[] = "n,,n=alice,r=abcdefghijklmnop";
	r = sasl_server_start(conn, "SCRAM-SHA-256", first, sizeof(first) - 1, &out, &outlen);
	assert_int_not_equal(r, SASL_OK);
	assert_int_not_equal(r, SASL_CONTINUE); /* no verifier: fails at once */
	sasl_dispose(&conn);
	mech_cyrus_done();
}

/* ---- SCRAM through Tern's auxprop, against Cyrus's own client ---- */

static const char *client_user, *client_pass;

static int
cb_user(void *ctx, int id, const char **result, unsigned *len)
{
	(void)ctx;
	(void)id;
	*result = client_user;
	if (len != NULL)
		*len = (unsigned)strlen(client_user);
	return SASL_OK;
}

static int
cb_pass(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
	static sasl_secret_t *sec;
	(void)conn;
	(void)ctx;
	(void)id;
	free(sec);
	sec = calloc(1, sizeof(*sec) + strlen(client_pass) + 1);
	sec->len = strlen(client_pass);
	memcpy(sec->data, client_pass, sec->len);
	*psecret = sec;
	return SASL_OK;
}

/* RFC 5803 verifier of password, as the directory would hold it. */
static void
make_verifier(const char *password, char *out, size_t cap)
{
	unsigned char salt[16] = "0123456789abcdef", salted[32], ck[32], sk[32], stored[32];
	unsigned len = 32;
	char b_salt[64], b_stored[64], b_server[64];

	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, 16, 4096, EVP_sha256(), 32,
			  salted);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &len);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, sk, &len);
	SHA256(ck, 32, stored);
	EVP_EncodeBlock((unsigned char *)b_salt, salt, 16);
	EVP_EncodeBlock((unsigned char *)b_stored, stored, 32);
	EVP_EncodeBlock((unsigned char *)b_server, sk, 32);
	snprintf(out, cap, "SCRAM-SHA-256$4096:%s$%s:%s", b_salt, b_stored, b_server);
}

/* A whole SCRAM-SHA-256 exchange, the server's verifier set for
 * vuser around every server call as auth_cyrus.c does. */
static int
scram_exchange(const char *user, const char *pass, const char *vuser, const char *verifier)
{
	typedef int (*cbfn)(void);
	sasl_callback_t ccbs[] = {
	    {SASL_CB_AUTHNAME, (cbfn)(void (*)(void))cb_user, NULL},
	    {SASL_CB_USER, (cbfn)(void (*)(void))cb_user, NULL},
	    {SASL_CB_PASS, (cbfn)(void (*)(void))cb_pass, NULL},
	    {SASL_CB_LIST_END, NULL, NULL},
	};
	sasl_conn_t *srv = NULL, *cli = NULL;
	const char *out, *cout, *mech;
	unsigned outlen, coutlen;
	int r;

	client_user = user;
	client_pass = pass;
	assert_int_equal(sasl_server_new("imap", "localhost", NULL, NULL, NULL, NULL, 0, &srv),
			 SASL_OK);
	assert_int_equal(sasl_client_new("imap", "localhost", NULL, NULL, ccbs, 0, &cli), SASL_OK);
	r = sasl_client_start(cli, "SCRAM-SHA-256", NULL, &cout, &coutlen, &mech);
	assert_true(r == SASL_CONTINUE || r == SASL_OK);
	mech_set_verifier(vuser, verifier);
	r = sasl_server_start(srv, "SCRAM-SHA-256", cout, coutlen, &out, &outlen);
	mech_set_verifier(NULL, NULL);
	for (int round = 0; r == SASL_CONTINUE && round < 4; round++) {
		int cr = sasl_client_step(cli, out, outlen, NULL, &cout, &coutlen);
		if (cr != SASL_CONTINUE && cr != SASL_OK) {
			r = cr;
			break;
		}
		mech_set_verifier(vuser, verifier);
		r = sasl_server_step(srv, cout, coutlen, &out, &outlen);
		mech_set_verifier(NULL, NULL);
	}
	sasl_dispose(&srv);
	sasl_dispose(&cli);
	return r;
}

static void
test_cyrus_scram_verifier(void **state)
{
	(void)state;
	struct config cfg;
	char *err = NULL, v[256];

	sasl_cfg(&cfg, "SCRAM-SHA-256");
	assert_int_equal(mech_cyrus_init(&cfg, &err), 0);
	assert_int_equal(sasl_client_init(NULL), SASL_OK);
	make_verifier("alicepw", v, sizeof(v));
	/* The right password against the verifier: in. */
	assert_int_equal(scram_exchange("alice", "alicepw", "alice", v), SASL_OK);
	/* A wrong one: out. */
	assert_int_not_equal(scram_exchange("alice", "wrong", "alice", v), SASL_OK);
	/* A verifier fetched for somebody else is never handed out. */
	assert_int_not_equal(scram_exchange("mallory", "alicepw", "alice", v), SASL_OK);
	/* Nothing set: nobody has a verifier. */
	assert_int_not_equal(scram_exchange("alice", "alicepw", NULL, NULL), SASL_OK);
	mech_cyrus_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_table),
	    cmocka_unit_test(test_plain_limits),
	    cmocka_unit_test(test_configured),
	    cmocka_unit_test(test_check_config),
	    cmocka_unit_test(test_throttle),
	    cmocka_unit_test(test_cyrus_no_fallback),
	    cmocka_unit_test(test_cyrus_scram_verifier),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
