/*
 * tls.h - the server's OpenSSL context: TLS 1.2 minimum, certificate and
 * key from [tls]. tls_reload() (SIGHUP) builds a new context and swaps it;
 * connections already open keep the one they started with.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <openssl/ssl.h>

/* Loads cert and key, and with client_ca (NULL or "" = none) asks
 * clients for a certificate verified against it (optional for the
 * client); 0, or -1 with a malloc'd *error_r. Main thread. */
int tls_init(const char *cert, const char *key, const char *client_ca, char **error_r);
/* Same, replacing the current context only if the new one loads. */
int tls_reload(const char *cert, const char *key, const char *client_ca, char **error_r);
/* The current context with a reference taken (SSL_CTX_free it); NULL when
 * TLS is not configured. Any thread. */
SSL_CTX *tls_ctx_acquire(void);
void tls_shutdown(void);

#define TLS_EXPORTER_LEN 32
/* The tls-exporter channel binding of RFC 9266 for an established
 * session: 0, or -1 when there is none (handshake not done, or TLS 1.2
 * without the extended master secret). */
int tls_exporter_binding(SSL *ssl, unsigned char out[TLS_EXPORTER_LEN]);
/* The verified client certificate's identity for SASL EXTERNAL: field is
 * "email" (the one rfc822Name SAN, else the subject's emailAddress),
 * "cn" (the subject's one commonName) or "subject" (RFC 4514 string).
 * 0 with a NUL-terminated UTF-8 *out, or -1: no certificate, not
 * verified against [tls] client_ca, field absent or ambiguous, too long. */
int tls_peer_identity(SSL *ssl, const char *field, char *out, size_t cap);

#endif
