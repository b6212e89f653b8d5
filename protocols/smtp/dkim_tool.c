/*
 * dkim_tool.c - ternd's DKIM subcommands for admins (and the tests):
 *   ternd dkim-keygen --domain D [--selector S] [--type rsa|ed25519]
 *                     [--key-dir DIR] [-c FILE]
 *       writes DIR/D.key (0600, PEM; refuses to overwrite) and prints the
 *       TXT record to publish; DIR and S default to [dkim] of -c FILE.
 *   ternd dkim-sign --key FILE --domain D --selector S MSGFILE
 *       prints the DKIM-Signature header Tern would add.
 *   ternd dkim-verify --key TXT MSGFILE
 *       verifies every signature of MSGFILE against the TXT record given
 *       (no DNS): one line "result d= s= reason" each; exit 0 when the
 *       first passes, 1 otherwise.
 * Exit 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "dkim.h"

static int
read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		fprintf(stderr, "ternd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		if (buf_append(out, tmp, n) < 0) {
			fprintf(stderr, "ternd: %s: too big\n", path);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* The TXT record as zone-file text: strings of at most 255 bytes. */
static void
print_record(const char *selector, const char *domain, const char *txt)
{
	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	size_t len = strlen(txt);
	for (size_t off = 0; off < len; off += 255) {
		size_t n = len - off < 255 ? len - off : 255;
		printf("%s\"%.*s\"", off == 0 ? " " : "\n\t", (int)n, txt + off);
	}
	printf(" )\n");
}

static int
keygen(int argc, char **argv)
{
	const char *domain = NULL, *selector = NULL, *type = "rsa", *dir = NULL, *cfgpath = NULL;
	static const struct option opts[] = {
	    {"domain", required_argument, NULL, 'd'}, {"selector", required_argument, NULL, 's'},
	    {"type", required_argument, NULL, 't'},   {"key-dir", required_argument, NULL, 'k'},
	    {"config", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "d:s:t:k:c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 't':
			type = optarg;
			break;
		case 'k':
			dir = optarg;
			break;
		case 'c':
			cfgpath = optarg;
			break;
		default:
			return 2;
		}
	}
	if (domain == NULL || optind != argc ||
	    (strcmp(type, "rsa") != 0 && strcmp(type, "ed25519") != 0)) {
		fprintf(stderr, "usage: ternd dkim-keygen --domain D [--selector S] "
				"[--type rsa|ed25519] [--key-dir DIR] [-c FILE]\n");
		return 2;
	}
	if (strchr(domain, '/') != NULL || domain[0] == '.' || domain[0] == '\0') {
		fprintf(stderr, "ternd: dkim-keygen: bad domain %s\n", domain);
		return 2;
	}
	struct config *cfg = NULL;
	if (cfgpath != NULL) {
		char *err = NULL;
		/* Without the key hooks: a broken key elsewhere must not stop
		 * making a new one. */
		cfg = config_load(cfgpath, &err);
		if (cfg == NULL) {
			fprintf(stderr, "ternd: %s\n", err);
			free(err);
			return 1;
		}
		if (dir == NULL && cfg->dkim_key_dir[0] != '\0')
			dir = cfg->dkim_key_dir;
		if (selector == NULL && cfg->dkim_selector[0] != '\0')
			selector = cfg->dkim_selector;
	}
	if (dir == NULL || selector == NULL) {
		fprintf(stderr, "ternd: dkim-keygen: give --key-dir and --selector, or -c FILE "
				"with [dkim] key_dir and selector\n");
		config_free(cfg);
		return 2;
	}
	int rc = 1;
	char *path = NULL;
	FILE *f = NULL;
	EVP_PKEY *pk =
	    strcmp(type, "rsa") == 0 ? EVP_RSA_gen(2048) : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pk == NULL) {
		fprintf(stderr, "ternd: dkim-keygen: key generation failed\n");
		goto out;
	}
	if (asprintf(&path, "%s/%s.key", dir, domain) < 0) {
		path = NULL;
		goto out;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "ternd: dkim-keygen: %s: %s\n", path, strerror(errno));
		goto out;
	}
	f = fdopen(fd, "w");
	if (f == NULL || PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fclose(f) != 0) {
		f = NULL;
		fprintf(stderr, "ternd: dkim-keygen: cannot write %s\n", path);
		unlink(path);
		goto out;
	}
	f = NULL;
	struct dkim_key *k;
	char *err = NULL;
	if (dkim_key_load(path, &k, &err) < 0) {
		fprintf(stderr, "ternd: dkim-keygen: %s\n", err);
		free(err);
		goto out;
	}
	struct buf txt;
	buf_init(&txt, 8192);
	(void)dkim_key_txt(k, &txt);
	fprintf(stderr, "ternd: wrote %s; publish this record (then reload ternd):\n", path);
	print_record(selector, domain, buf_cstr(&txt));
	buf_free(&txt);
	dkim_key_free(k);
	rc = 0;
out:
	free(path);
	EVP_PKEY_free(pk);
	config_free(cfg);
	return rc;
}

static int
sign(int argc, char **argv)
{
	const char *key = NULL, *domain = NULL, *selector = NULL;
	static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
					     {"domain", required_argument, NULL, 'd'},
					     {"selector", required_argument, NULL, 's'},
					     {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "k:d:s:", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		default:
			return 2;
		}
	}
	if (key == NULL || domain == NULL || selector == NULL || optind + 1 != argc) {
		fprintf(stderr,
			"usage: ternd dkim-sign --key FILE --domain D --selector S MSGFILE\n");
		return 2;
	}
	struct dkim_key *k;
	char *err = NULL;
	if (dkim_key_load(key, &k, &err) < 0) {
		fprintf(stderr, "ternd: %s\n", err);
		free(err);
		return 1;
	}
	struct buf msg, out;
	buf_init(&msg, (size_t)1 << 30);
	buf_init(&out, 1 << 20);
	int rc = 1;
	const char *why;
	struct dkim_sign_params p = {.domain = domain, .selector = selector, .t = time(NULL)};
	if (read_file(argv[optind], &msg) == 0) {
		if (dkim_sign(k, &p, msg.data != NULL ? msg.data : "", msg.len, &out, &why) < 0) {
			fprintf(stderr, "ternd: dkim-sign: %s\n", why);
		} else {
			fwrite(out.data, 1, out.len, stdout);
			rc = 0;
		}
	}
	buf_free(&msg);
	buf_free(&out);
	dkim_key_free(k);
	return rc;
}

static int
verify(int argc, char **argv)
{
	const char *txt = NULL;
	static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
					     {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
		if (ch != 'k')
			return 2;
		txt = optarg;
	}
	if (txt == NULL || optind + 1 != argc) {
		fprintf(stderr,
			"usage: ternd dkim-verify --key 'v=DKIM1; k=...; p=...' MSGFILE\n"
			"       (--key '' : no such record; --key TEMPFAIL: lookup failed)\n");
		return 2;
	}
	struct buf msg;
	buf_init(&msg, (size_t)1 << 30);
	if (read_file(argv[optind], &msg) < 0)
		return 1;
	struct dkim_verify *v;
	int rc = 1;
	if (dkim_verify_prepare(msg.data != NULL ? msg.data : "", msg.len, time(NULL), &v) == 0) {
		if (v->nsigs == 0)
			printf("none\n");
		for (size_t i = 0; i < v->nsigs; i++) {
			enum dkim_key_status st = txt[0] == '\0'		 ? DKIM_KEY_MISSING
						  : strcmp(txt, "TEMPFAIL") == 0 ? DKIM_KEY_TEMPFAIL
										 : DKIM_KEY_FOUND;
			enum dkim_result r = dkim_verify_one(v, i, st, txt, strlen(txt));
			const struct dkim_sig *s = &v->sigs[i];
			printf("%s d=%s s=%s i=%s b=%s%s%s%s\n", dkim_result_name(r), s->domain,
			       s->selector, s->auid, s->header_b, s->reason != NULL ? " (" : "",
			       s->reason != NULL ? s->reason : "", s->reason != NULL ? ")" : "");
			if (i == 0 && r == DKIM_PASS)
				rc = 0;
		}
	} else {
		printf("none (unparsable header)\n");
	}
	dkim_verify_free(&v);
	buf_free(&msg);
	return rc;
}

int
dkim_tool_main(int argc, char **argv)
{
	const char *cmd = argv[0];
	if (strcmp(cmd, "dkim-keygen") == 0)
		return keygen(argc, argv);
	if (strcmp(cmd, "dkim-sign") == 0)
		return sign(argc, argv);
	if (strcmp(cmd, "dkim-verify") == 0)
		return verify(argc, argv);
	return 2;
}
