/*
 * dir_scram.c - SCRAM-SHA-256 verifiers (dir_scram.h): parsing the forms
 * directories keep, normalising them to RFC 5803, and computing one from
 * a password (RFC 5802 section 3: SaltedPassword = PBKDF2-HMAC-SHA-256,
 * StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
 * HMAC(SaltedPassword, "Server Key")).
 *
 * How it fails: a value that is not SCRAM at all is 0 (skipped by the
 * caller), one that claims to be SCRAM but does not decode or has the
 * wrong sizes is -1 with a reason that never quotes the value. Key
 * material on the stack is wiped before returning.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/base64.h"
#include "core/buf.h"
#include "directory/dir_scram.h"

#define SCHEME "SCRAM-SHA-256"
#define SCHEME_LEN (sizeof(SCHEME) - 1)
#define B64_MAX 1024 /* decoded salt or key: far more than any sane one */

/* A piece of the input: pointer and length. */
struct span {
	const char *p;
	size_t n;
};

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static struct span
trim(struct span s)
{
	while (s.n > 0 && is_blank(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && is_blank(s.p[s.n - 1]))
		s.n--;
	return s;
}

/* Splits s at the first sep: 0, or -1 when there is none. */
static int
split(struct span s, char sep, struct span *left, struct span *right)
{
	const char *c = memchr(s.p, sep, s.n);

	if (c == NULL)
		return -1;
	left->p = s.p;
	left->n = (size_t)(c - s.p);
	right->p = c + 1;
	right->n = s.n - left->n - 1;
	return 0;
}

static int
parse_iter(struct span s, unsigned *iter_r)
{
	uint64_t v = 0;

	if (s.n == 0 || s.n > 9)
		return -1;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (v < DIR_SCRAM_MIN_ITER || v > DIR_SCRAM_MAX_ITER)
		return -1;
	*iter_r = (unsigned)v;
	return 0;
}

/* Decodes s into out (reset first); -1 unless it decodes to a length in
 * [min, max]. */
static int
decode(struct span s, struct buf *out, size_t min, size_t max)
{
	buf_reset(out);
	if (base64_decode(s.p, s.n, out) < 0)
		return -1;
	return out->len >= min && out->len <= max ? 0 : -1;
}

static int
format_verifier(struct arena *a, unsigned iter, const unsigned char *salt, size_t saltlen,
		const unsigned char *stored, const unsigned char *server, const char **out_r)
{
	struct buf b;
	int rc = -1;

	buf_init(&b, 4 * B64_MAX);
	if (buf_printf(&b, SCHEME "$%u:", iter) == 0 && base64_encode(salt, saltlen, &b) == 0 &&
	    buf_putc(&b, '$') == 0 && base64_encode(stored, DIR_SCRAM_KEY_LEN, &b) == 0 &&
	    buf_putc(&b, ':') == 0 && base64_encode(server, DIR_SCRAM_KEY_LEN, &b) == 0) {
		*out_r = arena_strdup(a, buf_cstr(&b));
		rc = 0;
	}
	buf_wipe(&b);
	return rc;
}

/* The four fields, already split: checked, decoded and re-encoded. */
static int
from_fields(struct arena *a, struct span iter_s, struct span salt_s, struct span stored_s,
	    struct span server_s, const char **out_r, const char **why_r)
{
	unsigned iter;
	struct buf salt, stored, server;
	int rc = -1;

	if (parse_iter(trim(iter_s), &iter) < 0) {
		*why_r = "iteration count not a number in 4096..10000000";
		return -1;
	}
	buf_init(&salt, B64_MAX);
	buf_init(&stored, B64_MAX);
	buf_init(&server, B64_MAX);
	if (decode(trim(salt_s), &salt, DIR_SCRAM_MIN_SALT, B64_MAX) < 0)
		*why_r = "salt not base64 of at least 8 bytes";
	else if (decode(trim(stored_s), &stored, DIR_SCRAM_KEY_LEN, DIR_SCRAM_KEY_LEN) < 0)
		*why_r = "StoredKey not base64 of 32 bytes";
	else if (decode(trim(server_s), &server, DIR_SCRAM_KEY_LEN, DIR_SCRAM_KEY_LEN) < 0)
		*why_r = "ServerKey not base64 of 32 bytes";
	else if (format_verifier(a, iter, (const unsigned char *)salt.data, salt.len,
				 (const unsigned char *)stored.data,
				 (const unsigned char *)server.data, out_r) < 0)
		*why_r = "verifier too long";
	else
		rc = 1;
	buf_wipe(&salt);
	buf_wipe(&stored);
	buf_wipe(&server);
	return rc;
}

/* "<iter>:<salt>$<stored>:<server>" (RFC 5803 after the scheme). */
static int
rfc5803_body(struct arena *a, struct span body, const char **out_r, const char **why_r)
{
	struct span info, value, iter, salt, stored, server;

	if (split(body, '$', &info, &value) < 0 || split(info, ':', &iter, &salt) < 0 ||
	    split(value, ':', &stored, &server) < 0) {
		*why_r = "not <iter>:<salt>$<StoredKey>:<ServerKey>";
		return -1;
	}
	return from_fields(a, iter, salt, stored, server, out_r, why_r);
}

/* Dovecot's "<iter>,<salt>,<stored>,<server>". */
static int
dovecot_body(struct arena *a, struct span body, const char **out_r, const char **why_r)
{
	struct span iter, rest, salt, keys, stored, server;

	if (split(body, ',', &iter, &rest) < 0 || split(rest, ',', &salt, &keys) < 0 ||
	    split(keys, ',', &stored, &server) < 0 || memchr(server.p, ',', server.n) != NULL) {
		*why_r = "not <iter>,<salt>,<StoredKey>,<ServerKey>";
		return -1;
	}
	return from_fields(a, iter, salt, stored, server, out_r, why_r);
}

int
dir_scram_parse(struct arena *a, const char *v, size_t len, bool userpassword, const char **out_r,
		const char **why_r)
{
	struct span s = trim((struct span){v, len});

	*out_r = NULL;
	*why_r = NULL;
	if (s.n > 2 && s.p[0] == '{' && s.n >= SCHEME_LEN + 2 &&
	    strncasecmp(s.p + 1, SCHEME, SCHEME_LEN) == 0 && s.p[SCHEME_LEN + 1] == '}') {
		struct span body = {s.p + SCHEME_LEN + 2, s.n - SCHEME_LEN - 2};
		if (memchr(body.p, '$', body.n) != NULL)
			return rfc5803_body(a, body, out_r, why_r);
		return dovecot_body(a, body, out_r, why_r);
	}
	if (userpassword || s.n < SCHEME_LEN || strncasecmp(s.p, SCHEME, SCHEME_LEN) != 0)
		return 0;
	struct span rest = trim((struct span){s.p + SCHEME_LEN, s.n - SCHEME_LEN});
	if (rest.n == 0 || rest.p[0] != '$')
		return 0; /* SCRAM-SHA-256-PLUS, SCRAM-SHA-2560...: another scheme */
	return rfc5803_body(a, (struct span){rest.p + 1, rest.n - 1}, out_r, why_r);
}

int
dir_scram_compute(struct arena *a, const char *password, size_t pwlen, const unsigned char *salt,
		  size_t saltlen, unsigned iterations, const char **out_r)
{
	unsigned char salted[DIR_SCRAM_KEY_LEN], client[DIR_SCRAM_KEY_LEN];
	unsigned char stored[DIR_SCRAM_KEY_LEN], server[DIR_SCRAM_KEY_LEN];
	unsigned int n1 = 0, n2 = 0;
	int rc = -1;

	*out_r = NULL;
	if (iterations < DIR_SCRAM_MIN_ITER || iterations > DIR_SCRAM_MAX_ITER ||
	    saltlen < DIR_SCRAM_MIN_SALT || saltlen > B64_MAX || pwlen > INT32_MAX)
		return -1;
	if (PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)saltlen, (int)iterations,
			      EVP_sha256(), sizeof(salted), salted) == 1 &&
	    HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key", 10,
		 client, &n1) != NULL &&
	    HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Server Key", 10,
		 server, &n2) != NULL &&
	    n1 == DIR_SCRAM_KEY_LEN && n2 == DIR_SCRAM_KEY_LEN &&
	    SHA256(client, sizeof(client), stored) != NULL)
		rc = format_verifier(a, iterations, salt, saltlen, stored, server, out_r);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client, sizeof(client));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(server, sizeof(server));
	return rc;
}

int
dir_scram_make(struct arena *a, const char *password, size_t pwlen, unsigned iterations,
	       const char **out_r)
{
	unsigned char salt[16];

	*out_r = NULL;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	return dir_scram_compute(a, password, pwlen, salt, sizeof(salt), iterations, out_r);
}
