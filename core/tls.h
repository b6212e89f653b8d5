/*
 * tls.h - the server's OpenSSL context: TLS 1.2 minimum, certificate and
 * key from [tls]. tls_reload() (SIGHUP) builds a new context and swaps it;
 * connections already open keep the one they started with.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <openssl/ssl.h>

/* Loads cert and key; 0, or -1 with a malloc'd *error_r. Main thread. */
int tls_init(const char *cert, const char *key, char **error_r);
/* Same, replacing the current context only if the new one loads. */
int tls_reload(const char *cert, const char *key, char **error_r);
/* The current context with a reference taken (SSL_CTX_free it); NULL when
 * TLS is not configured. Any thread. */
SSL_CTX *tls_ctx_acquire(void);
void tls_shutdown(void);

#endif
