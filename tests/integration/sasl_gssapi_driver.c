/*
 * sasl_gssapi_driver.c - Cyrus SASL as a GSSAPI acceptor, without ternd,
 * for tests/integration/test_krb5_infra.py.
 *
 * Usage: tern-sasl-gssapi-test SERVICE FQDN USER_REALM|- KEYTAB|-
 * Reads base64 client responses from stdin, one per line, the first being
 * the initial response; writes "C <base64>" for each server challenge and
 * finally "OK <SASL_USERNAME> <ssf>" or "NO <sasl error detail>". KEYTAB
 * is handed to the plugin as its "keytab" option ("-": none, so MIT's
 * KRB5_KTNAME or its default applies). The plugin reads that option once,
 * in sasl_server_init, and drops the whole mechanism if the file does not
 * exist (so "FILE:path" is refused). TERN_TEST_MAX_SSF in the environment
 * sets max_ssf (default 0: only "no security layer" is offered). Cyrus's
 * own log goes to stderr. sasl_server_done() is never called: it dlclose()s
 * the plugins, and what the GS2 plugin (and GSSAPI's copy of the keytab
 * path) still holds then shows up as a LeakSanitizer leak in an unknown
 * module; left loaded, it stays reachable. Exits 0 on OK, 1 on NO, 2 on usage or I/O
 * errors.
 */
#include <sasl/sasl.h>
#include <sasl/saslutil.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *opt_keytab;

static int
drv_getopt(void *ctx, const char *plugin, const char *option, const char **result, unsigned *len)
{
	(void)ctx;
	if (opt_keytab && strcmp(option, "keytab") == 0) {
		fprintf(stderr, "getopt: %s %s -> %s\n", plugin ? plugin : "-", option, opt_keytab);
		*result = opt_keytab;
		if (len)
			*len = (unsigned)strlen(opt_keytab);
		return SASL_OK;
	}
	fprintf(stderr, "getopt: %s %s -> (unset)\n", plugin ? plugin : "-", option);
	return SASL_FAIL;
}

static int
drv_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "sasl[%d]: %s\n", level, msg);
	return SASL_OK;
}

static int
read_response(char *out, unsigned cap, unsigned *outlen)
{
	static char line[65536];
	size_t n;

	if (!fgets(line, sizeof(line), stdin))
		return -1;
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (sasl_decode64(line, (unsigned)n, out, cap, outlen) != SASL_OK)
		return -1;
	return 0;
}

static void
write_challenge(const char *data, unsigned len)
{
	static char b64[65536];
	unsigned n = 0;

	if (sasl_encode64(data, len, b64, sizeof(b64), &n) != SASL_OK)
		exit(2);
	printf("C %.*s\n", (int)n, b64);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	static sasl_callback_t cbs[] = {
	    {SASL_CB_GETOPT, (int (*)(void))(void (*)(void))drv_getopt, NULL},
	    {SASL_CB_LOG, (int (*)(void))(void (*)(void))drv_log, NULL},
	    {SASL_CB_LIST_END, NULL, NULL},
	};
	static char in[65536];
	sasl_conn_t *conn = NULL;
	const char *out = NULL, *user = NULL, *realm;
	const void *v = NULL;
	unsigned inlen = 0, outlen = 0;
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: %s SERVICE FQDN USER_REALM|- KEYTAB|-\n", argv[0]);
		return 2;
	}
	realm = strcmp(argv[3], "-") ? argv[3] : NULL;
	opt_keytab = strcmp(argv[4], "-") ? argv[4] : NULL;
	if (sasl_server_init(cbs, "tern-test") != SASL_OK)
		return 2;
	rc = sasl_server_new(argv[1], argv[2], realm, NULL, NULL, NULL, 0, &conn);
	if (rc != SASL_OK) {
		printf("NO sasl_server_new: %s\n", sasl_errstring(rc, NULL, NULL));
		return 1;
	}
	if (getenv("TERN_TEST_MAX_SSF")) {
		sasl_security_properties_t sp;

		memset(&sp, 0, sizeof(sp));
		sp.max_ssf = (sasl_ssf_t)atoi(getenv("TERN_TEST_MAX_SSF"));
		sp.maxbufsize = 65536;
		sasl_setprop(conn, SASL_SEC_PROPS, &sp);
	}
	if (read_response(in, sizeof(in), &inlen) < 0)
		return 2;
	rc = sasl_server_start(conn, "GSSAPI", in, inlen, &out, &outlen);
	while (rc == SASL_CONTINUE) {
		write_challenge(out, outlen);
		if (read_response(in, sizeof(in), &inlen) < 0)
			return 2;
		rc = sasl_server_step(conn, in, inlen, &out, &outlen);
	}
	if (rc != SASL_OK) {
		printf("NO %s\n", sasl_errdetail(conn));
		sasl_dispose(&conn);
		return 1;
	}
	sasl_getprop(conn, SASL_USERNAME, (const void **)&user);
	sasl_getprop(conn, SASL_SSF, &v);
	printf("OK %s %d\n", user ? user : "(null)", v ? *(const int *)v : -1);
	sasl_dispose(&conn);
	return 0;
}
