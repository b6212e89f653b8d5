/*
 * tls.c - the server's OpenSSL context. TLS 1.2 is the minimum, no
 * compression, no renegotiation, server cipher preference. A reload
 * builds a whole new context first and swaps it only if it loaded, so a
 * bad certificate on SIGHUP leaves the running one in place.
 *
 * With [tls] client_ca, clients are asked for a certificate but never
 * required to send one: a missing or unverifiable certificate does not
 * fail the handshake, it only means tls_peer_identity() finds nobody
 * (SASL EXTERNAL is then not offered). Also here: the RFC 9266
 * tls-exporter channel binding for SCRAM-*-PLUS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

/* Every client certificate is let through the handshake; whether it
 * verified is read back later with SSL_get_verify_result(). */
static int
accept_any_client(int preverify_ok, X509_STORE_CTX *x509_ctx)
{
	(void)preverify_ok;
	(void)x509_ctx;
	return 1;
}

static SSL_CTX *
tls_build(const char *cert, const char *key, const char *client_ca, char **error_r)
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
	if (client_ca != NULL && client_ca[0] != '\0') {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
		if (names == NULL || SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
			if (names != NULL)
				sk_X509_NAME_pop_free(names, X509_NAME_free);
			*error_r = ssl_error("cannot load client CA file", client_ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client);
		SSL_CTX_set_verify_depth(ctx, 8);
	}
	return ctx;
}

int
tls_init(const char *cert, const char *key, const char *client_ca, char **error_r)
{
	return tls_reload(cert, key, client_ca, error_r);
}

int
tls_reload(const char *cert, const char *key, const char *client_ca, char **error_r)
{
	SSL_CTX *ctx = tls_build(cert, key, client_ca, error_r);

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

int
tls_exporter_binding(SSL *ssl, unsigned char out[TLS_EXPORTER_LEN])
{
	static const char label[] = "EXPORTER-Channel-Binding";

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return -1;
	/* RFC 9266 section 3: under TLS 1.2 the exporter binds the channel
	 * only with the extended master secret (RFC 7627). */
	if (SSL_version(ssl) < TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1)
		return -1;
	/* "an empty context string": under TLS 1.2 that differs from no
	 * context at all, hence use_context = 1. */
	if (SSL_export_keying_material(ssl, out, TLS_EXPORTER_LEN, label, sizeof(label) - 1, NULL,
				       0, 1) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* Copies a certificate string (an ASN1 string of any type) as UTF-8;
 * refuses embedded NULs and control characters. */
static int
copy_asn1(const ASN1_STRING *as, char *out, size_t cap)
{
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, as);

	if (n <= 0)
		return -1;
	int r = 0;
	if ((size_t)n >= cap)
		r = -1;
	for (int i = 0; r == 0 && i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f)
			r = -1;
	}
	if (r == 0) {
		memcpy(out, u, (size_t)n);
		out[n] = '\0';
	}
	OPENSSL_free(u);
	return r;
}

static int
subject_entry(X509_NAME *name, int nid, char *out, size_t cap)
{
	int i = X509_NAME_get_index_by_NID(name, nid, -1);

	if (i < 0)
		return -1;
	/* Two values of the field would make the identity ambiguous. */
	if (X509_NAME_get_index_by_NID(name, nid, i) >= 0)
		return -1;
	return copy_asn1(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)), out, cap);
}

static int
email_identity(X509 *cert, char *out, size_t cap)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int found = 0, r = -1;

	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type != GEN_EMAIL)
			continue;
		if (found++ > 0) {
			r = -1; /* two addresses: which one? refuse */
			break;
		}
		r = copy_asn1(g->d.rfc822Name, out, cap);
	}
	GENERAL_NAMES_free(sans);
	if (found > 0)
		return r;
	return subject_entry(X509_get_subject_name(cert), NID_pkcs9_emailAddress, out, cap);
}

int
tls_peer_identity(SSL *ssl, const char *field, char *out, size_t cap)
{
	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return -1;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	if (strcmp(field, "email") == 0)
		return email_identity(cert, out, cap);
	if (strcmp(field, "cn") == 0)
		return subject_entry(X509_get_subject_name(cert), NID_commonName, out, cap);
	if (strcmp(field, "subject") == 0) {
		BIO *b = BIO_new(BIO_s_mem());
		if (b == NULL)
			return -1;
		int r = -1;
		if (X509_NAME_print_ex(b, X509_get_subject_name(cert), 0,
				       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
			char *p;
			long n = BIO_get_mem_data(b, &p);
			if (n > 0 && (size_t)n < cap) {
				memcpy(out, p, (size_t)n);
				out[n] = '\0';
				r = 0;
			}
		}
		BIO_free(b);
		return r;
	}
	return -1;
}
