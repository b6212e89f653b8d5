/*
 * admin_session.c - what tern-admind remembers about admins between
 * requests: a short cache of successful Basic checks (so a script does
 * not cost a directory bind per call) and the bearer tokens minted by
 * POST /api/v1/login. Both live in memory only; a restart forgets them.
 *
 * Nothing secret is kept in the clear: the cache is keyed by SHA-256 of
 * a per-process random salt, the login and the password; tokens are
 * random 256-bit values kept as their SHA-256. Lookups compare digests
 * with CRYPTO_memcmp.
 * How it fails: both tables are bounded; when full, the entry closest to
 * expiry goes (a dropped token just means logging in again).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "admin/admin_internal.h"
#include "core/log.h"

#define CACHE_SLOTS 64
#define TOKEN_SLOTS 4096
#define DIGEST_LEN 32

struct slot {
	unsigned char digest[DIGEST_LEN];
	struct admin_identity id; /* owned */
	time_t expires;		  /* 0 = free */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot cache[CACHE_SLOTS];	/* guarded by lock */
static struct slot tokens[TOKEN_SLOTS]; /* guarded by lock */
static unsigned char salt[32];
static bool salted;

static admin_auth_fn *auth_fn = admin_dir_authenticate;
static void *auth_ctx;

void
admin_set_authenticator(admin_auth_fn *fn, void *ctx)
{
	auth_fn = fn;
	auth_ctx = ctx;
}

static time_t
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
digest(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
       unsigned char out[DIGEST_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, a, alen) != 1 || EVP_DigestUpdate(md, b, blen) != 1 ||
	    EVP_DigestUpdate(md, c, clen) != 1 || EVP_DigestFinal_ex(md, out, &n) != 1)
		fatal("admin: SHA-256 failed");
	EVP_MD_CTX_free(md);
}

/* The free slot, else the one that expires first (lock held). */
static struct slot *
victim(struct slot *t, size_t n, time_t now)
{
	struct slot *v = &t[0];

	for (size_t i = 0; i < n; i++) {
		if (t[i].expires == 0 || t[i].expires <= now)
			return &t[i];
		if (t[i].expires < v->expires)
			v = &t[i];
	}
	return v;
}

static struct slot *
find(struct slot *t, size_t n, const unsigned char *d, time_t now)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].expires > now && CRYPTO_memcmp(t[i].digest, d, DIGEST_LEN) == 0)
			return &t[i];
	}
	return NULL;
}

static void
slot_free(struct slot *s)
{
	admin_identity_clear(&s->id);
	explicit_bzero(s->digest, sizeof(s->digest));
	s->expires = 0;
}

int
admin_session_check_basic(const struct config *cfg, const char *login, const char *password,
			  struct admin_identity *id_r)
{
	unsigned char d[DIGEST_LEN];
	time_t now = now_mono();

	memset(id_r, 0, sizeof(*id_r));
	pthread_mutex_lock(&lock);
	if (!salted) {
		if (RAND_bytes(salt, sizeof(salt)) != 1)
			fatal("admin: no random bytes for the credential cache");
		salted = true;
	}
	pthread_mutex_unlock(&lock);
	/* The NUL between login and password keeps ("ab","c") and
	 * ("a","bc") apart. */
	digest(salt, sizeof(salt), login, strlen(login) + 1, password, strlen(password), d);
	if (cfg->admin_auth_cache_ttl > 0) {
		pthread_mutex_lock(&lock);
		struct slot *s = find(cache, CACHE_SLOTS, d, now);
		if (s != NULL)
			admin_identity_copy(id_r, &s->id);
		pthread_mutex_unlock(&lock);
		if (s != NULL) {
			explicit_bzero(d, sizeof(d));
			return ADMIN_AUTH_OK;
		}
	}
	int rc = auth_fn(auth_ctx, cfg, login, password, id_r);
	if (rc == ADMIN_AUTH_OK && cfg->admin_auth_cache_ttl > 0) {
		pthread_mutex_lock(&lock);
		struct slot *s = victim(cache, CACHE_SLOTS, now);
		slot_free(s);
		memcpy(s->digest, d, DIGEST_LEN);
		admin_identity_copy(&s->id, id_r);
		s->expires = now + (time_t)cfg->admin_auth_cache_ttl;
		pthread_mutex_unlock(&lock);
	}
	explicit_bzero(d, sizeof(d));
	return rc;
}

void
admin_session_token_new(const struct admin_identity *id, unsigned ttl, char **token_r,
			time_t *expires_r)
{
	unsigned char raw[32], d[DIGEST_LEN];
	char *hex = xmalloc(2 * sizeof(raw) + 1);
	time_t now = now_mono();

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		fatal("admin: no random bytes for a token");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	digest("", 0, hex, strlen(hex), "", 0, d);
	pthread_mutex_lock(&lock);
	struct slot *s = victim(tokens, TOKEN_SLOTS, now);
	slot_free(s);
	memcpy(s->digest, d, DIGEST_LEN);
	admin_identity_copy(&s->id, id);
	s->expires = now + (time_t)ttl;
	pthread_mutex_unlock(&lock);
	*token_r = hex;
	*expires_r = time(NULL) + (time_t)ttl;
}

static void
token_digest(const char *token, unsigned char d[DIGEST_LEN])
{
	digest("", 0, token, strlen(token), "", 0, d);
}

int
admin_session_token_check(const char *token, struct admin_identity *id_r)
{
	unsigned char d[DIGEST_LEN];
	int rc = -1;

	memset(id_r, 0, sizeof(*id_r));
	token_digest(token, d);
	pthread_mutex_lock(&lock);
	struct slot *s = find(tokens, TOKEN_SLOTS, d, now_mono());
	if (s != NULL) {
		admin_identity_copy(id_r, &s->id);
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int
admin_session_token_drop(const char *token)
{
	unsigned char d[DIGEST_LEN];
	int rc = -1;

	token_digest(token, d);
	pthread_mutex_lock(&lock);
	struct slot *s = find(tokens, TOKEN_SLOTS, d, now_mono());
	if (s != NULL) {
		slot_free(s);
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void
admin_session_clear(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		slot_free(&cache[i]);
	for (size_t i = 0; i < TOKEN_SLOTS; i++)
		slot_free(&tokens[i]);
	pthread_mutex_unlock(&lock);
}
