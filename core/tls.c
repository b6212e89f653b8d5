/*
 * tls.c - the server's OpenSSL context. TLS 1.2 is the minimum, no
 * compression, no renegotiation, server cipher preference. A reload
 * builds a whole new context first and swaps it only if it loaded, so a
 * bad certificate on SIGHUP leaves the running one in place.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "compat.h"
#include "log.h"
#include "tls.h"

static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *tls_ctx; /* owned; NULL when TLS is not configured */

static char *
ssl_error(const char *what, const char *path)
{
	char detail[256] = "unknown error";
	unsigned long e = ERR_peek_last_error();
	char *out;

	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	if (asprintf(&out, "%s %s: %s", what, path, detail) < 0)
		fatal("out of memory");
	return out;
}

static SSL_CTX *
tls_build(const char *cert, const char *key, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		*error_r = ssl_error("cannot create TLS context for", cert);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tern", 4);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*error_r = ssl_error("cannot load TLS certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		*error_r = ssl_error("cannot load TLS key", key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = ssl_error("TLS key does not match the certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
tls_init(const char *cert, const char *key, char **error_r)
{
	return tls_reload(cert, key, error_r);
}

int
tls_reload(const char *cert, const char *key, char **error_r)
{
	SSL_CTX *ctx = tls_build(cert, key, error_r);

	if (ctx == NULL)
		return -1;
	pthread_mutex_lock(&tls_lock);
	SSL_CTX *old = tls_ctx;
	tls_ctx = ctx;
	pthread_mutex_unlock(&tls_lock);
	if (old != NULL)
		SSL_CTX_free(old); /* open connections hold their own reference */
	return 0;
}

SSL_CTX *
tls_ctx_acquire(void)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&tls_lock);
	ctx = tls_ctx;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&tls_lock);
	return ctx;
}

void
tls_shutdown(void)
{
	pthread_mutex_lock(&tls_lock);
	SSL_CTX *old = tls_ctx;
	tls_ctx = NULL;
	pthread_mutex_unlock(&tls_lock);
	if (old != NULL)
		SSL_CTX_free(old);
}
