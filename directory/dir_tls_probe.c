/*
 * dir_tls_probe.c - says why TLS to a directory failed (dir_tls_error).
 *
 * libldap on Debian uses GnuTLS and reports a refused certificate as
 * "(unknown error code)". After such a failure we connect once more to
 * the same host and port with OpenSSL and the same CA, host name and
 * client certificate settings, and ask OpenSSL what is wrong with the
 * server's certificate ("unable to get local issuer certificate", "IP
 * address mismatch"...). The probe is synchronous, bounded by [directory]
 * timeout, and runs at most once every PROBE_EVERY_S seconds per process
 * (a later failure gets the generic hint), so a directory that keeps
 * failing costs little.
 *
 * How it fails: any problem of the probe itself yields NULL, and the
 * caller falls back to the generic hint.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/compat.h"
#include "directory/dir_tls.h"

#define PROBE_EVERY_S 10

/* LDAPMessage { messageID 1, ExtendedRequest { requestName
 * 1.3.6.1.4.1.1466.20037 } }: the StartTLS request (RFC 4511 4.14). */
static const unsigned char starttls_req[] = {
    0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16, '1', '.', '3', '.', '6', '.', '1',
    '.',  '4',	'.',  '1',  '.',  '1',	'4',  '6',  '6',  '.', '2', '0', '0', '3', '7'};

static int
wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	return n > 0 ? 0 : -1;
}

static int
tcp_connect(const char *host, int port, int ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char portstr[16];
	int fd = -1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -1;
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int err = 0;
		socklen_t len = sizeof(err);
		if ((connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) ||
		    wait_fd(fd, POLLOUT, ms) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

/* Sends StartTLS and reads the answer (any answer: the handshake that
 * follows tells the rest). */
static int
starttls(int fd, int ms)
{
	unsigned char in[512];

	if (send(fd, starttls_req, sizeof(starttls_req), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(starttls_req))
		return -1;
	if (wait_fd(fd, POLLIN, ms) < 0)
		return -1;
	return recv(fd, in, sizeof(in), 0) > 0 ? 0 : -1;
}

static SSL_CTX *
probe_ctx(const struct directory_config *dc)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *file =
	    dc->tls_ca_file != NULL && dc->tls_ca_file[0] != '\0' ? dc->tls_ca_file : NULL;
	const char *dir =
	    dc->tls_ca_dir != NULL && dc->tls_ca_dir[0] != '\0' ? dc->tls_ca_dir : NULL;

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Finish the handshake whatever the result, then read the verdict. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (file != NULL || dir != NULL)
		(void)SSL_CTX_load_verify_locations(ctx, file, dir);
	else
		(void)SSL_CTX_set_default_verify_paths(ctx);
	if (dc->tls_cert != NULL && dc->tls_cert[0] != '\0') {
		(void)SSL_CTX_use_certificate_chain_file(ctx, dc->tls_cert);
		(void)SSL_CTX_use_PrivateKey_file(ctx, dc->tls_key, SSL_FILETYPE_PEM);
	}
	return ctx;
}

char *
dir_tls_probe(const struct directory_config *dc, const char *uri)
{
	static atomic_ullong last;
	struct timespec ts;
	LDAPURLDesc *lud = NULL;
	char *out = NULL;
	int ms = (int)(dc->timeout > 0 ? dc->timeout : 5) * 1000;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long now = (unsigned long long)ts.tv_sec, prev = atomic_load(&last);
	if ((prev != 0 && now - prev < PROBE_EVERY_S) ||
	    !atomic_compare_exchange_strong(&last, &prev, now))
		return NULL;
	if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS)
		return NULL;
	bool ldaps = strcasecmp(lud->lud_scheme, "ldaps") == 0;
	const char *host =
	    lud->lud_host != NULL && lud->lud_host[0] != '\0' ? lud->lud_host : "localhost";
	int port = lud->lud_port > 0 ? lud->lud_port : ldaps ? 636 : 389;
	int fd = tcp_connect(host, port, ms);
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;

	if (fd < 0 || (!ldaps && starttls(fd, ms) < 0))
		goto done;
	ctx = probe_ctx(dc);
	ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	if (ssl == NULL)
		goto done;
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	struct in6_addr any;
	if (inet_pton(AF_INET, host, &any) == 1 || inet_pton(AF_INET6, host, &any) == 1)
		X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	else {
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
		SSL_set_tlsext_host_name(ssl, host);
	}
	SSL_set_fd(ssl, fd);
	ERR_clear_error();
	int rc;
	/* The socket is non-blocking: drive the handshake with poll. */
	while ((rc = SSL_connect(ssl)) <= 0) {
		int e = SSL_get_error(ssl, rc);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, ms) < 0)
			break;
	}
	if (rc <= 0) {
		unsigned long e = ERR_peek_last_error();
		char buf[256];
		ERR_error_string_n(e, buf, sizeof(buf));
		if (asprintf(&out, "TLS handshake failed: %s", e != 0 ? buf : "connection closed") <
		    0)
			out = NULL;
		goto done;
	}
	long v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK) {
		const char *hint = "";
		if (v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
		    v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		    v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
		    v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
			hint = ": its CA is not in tls_ca_file/tls_ca_dir";
		else if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			hint = ": the certificate does not name the host of the URI";
		if (asprintf(&out, "certificate verify failed: %s%s",
			     X509_verify_cert_error_string(v), hint) < 0)
			out = NULL;
	} else if (dc->tls_cert == NULL || dc->tls_cert[0] == '\0') {
		out = xstrdup("the certificate checks out; the server may want a client "
			      "certificate (tls_cert, tls_key)");
	}
done:
	if (ssl != NULL)
		SSL_free(ssl);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	ldap_free_urldesc(lud);
	return out;
}
