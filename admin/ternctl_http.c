/*
 * ternctl_http.c - ternctl's HTTP/1.1 client: one blocking request per
 * connection (Connection: close) over TCP, with TLS from OpenSSL when the
 * admin listener has it. A command line makes a handful of sequential
 * calls, so a blocking socket with poll() deadlines is simpler and easier
 * to get right than an event loop (evhttp's client would buy nothing here).
 *
 * Verification: the chain is checked against cafile; with pin (the
 * server's own [tls] cert as the only anchor, partial chains allowed) no
 * name check, otherwise the host name or IP (or tls_name) must match;
 * insecure skips both.
 * How it fails: -1 with a message for a refused or timed-out connection,
 * a TLS handshake or verification failure, a reply over REPLY_MAX or one
 * that is not HTTP; the caller exits 4.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "admin/ternctl.h"
#include "core/compat.h"

#define REPLY_MAX (256u << 20) /* an export listing or metrics fit well below */
#define REQUEST_MAX (16u << 20)

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	unsigned timeout_ms;
};

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
wait_fd(int fd, short events, unsigned timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;
	do
		r = poll(&p, 1, (int)timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

static int
tcp_connect(const struct ternctl_target *t, int *fd_r, char **error_r)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", t->port);
	int gai = getaddrinfo(t->host, port, &hints, &res);
	if (gai != 0) {
		xasprintf(error_r, "cannot resolve %s: %s", t->host, gai_strerror(gai));
		return -1;
	}
	int err = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			err = errno;
			close(fd);
			continue;
		}
		socklen_t len = sizeof(err);
		if (wait_fd(fd, POLLOUT, t->timeout * 1000) < 0) {
			err = errno;
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			close(fd);
			continue;
		}
		freeaddrinfo(res);
		*fd_r = fd;
		return 0;
	}
	freeaddrinfo(res);
	xasprintf(error_r, "cannot connect to tern-admind at %s port %u: %s", t->host, t->port,
		  strerror(err != 0 ? err : ECONNREFUSED));
	return -1;
}

static void
ssl_error(char **error_r, const char *what)
{
	unsigned long e = ERR_get_error();
	char detail[256];
	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	else
		snprintf(detail, sizeof(detail), "%s", errno != 0 ? strerror(errno) : "closed");
	xasprintf(error_r, "TLS %s failed: %s", what, detail);
	ERR_clear_error();
}

static int
tls_start(struct conn *c, const struct ternctl_target *t, char **error_r)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL) {
		ssl_error(error_r, "setup");
		return -1;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	/* evhttp closes without close_notify; Content-Length (checked in
	 * parse_reply) is what tells a whole reply from a cut one. */
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (!t->insecure) {
		if (SSL_CTX_load_verify_locations(c->ctx, t->cafile, NULL) != 1) {
			unsigned long e = ERR_get_error();
			xasprintf(error_r, "cannot load the trust anchor %s: %s", t->cafile,
				  ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
			ERR_clear_error();
			return -1;
		}
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		/* The server's own (leaf) certificate is a valid anchor. */
		X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(c->ctx), X509_V_FLAG_PARTIAL_CHAIN);
	}
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		ssl_error(error_r, "setup");
		return -1;
	}
	const char *name = t->tls_name != NULL ? t->tls_name : t->host;
	struct in6_addr ip;
	bool is_ip = inet_pton(AF_INET, name, &ip) == 1 || inet_pton(AF_INET6, name, &ip) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(c->ssl, name);
	if (!t->insecure && !t->pin) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
			       : X509_VERIFY_PARAM_set1_host(vp, name, 0);
		if (ok != 1) {
			xasprintf(error_r, "cannot check the certificate against \"%s\"", name);
			return -1;
		}
	}
	long long deadline = now_ms() + (long long)t->timeout * 1000;
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(c->ssl);
		if (r == 1)
			return 0;
		int e = SSL_get_error(c->ssl, r);
		long long left = deadline - now_ms();
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && left > 0 &&
		    wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, (unsigned)left) ==
			0)
			continue;
		long vr = SSL_get_verify_result(c->ssl);
		if (vr != X509_V_OK) {
			xasprintf(error_r,
				  "TLS: the certificate of tern-admind is not trusted (%s); "
				  "give its CA with --cacert FILE, or --insecure",
				  X509_verify_cert_error_string(vr));
			return -1;
		}
		if (left <= 0) {
			xasprintf(error_r, "TLS handshake with %s port %u timed out", t->host,
				  t->port);
			return -1;
		}
		ssl_error(error_r, "handshake");
		return -1;
	}
}

/* Writes all of data; -1 with errno or an SSL error. */
static int
conn_write(struct conn *c, const char *data, size_t len, char **error_r)
{
	long long deadline = now_ms() + (long long)c->timeout_ms;
	while (len > 0) {
		ssize_t n;
		int want = POLLOUT;
		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
			if (r > 0) {
				n = r;
			} else {
				int e = SSL_get_error(c->ssl, r);
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
					ssl_error(error_r, "write");
					return -1;
				}
				want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
				n = -1;
				errno = EAGAIN;
			}
		} else {
			n = send(c->fd, data, len, MSG_NOSIGNAL);
		}
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		long long left = deadline - now_ms();
		if ((errno == EAGAIN || errno == EINTR) && left > 0 &&
		    wait_fd(c->fd, (short)want, (unsigned)left) == 0)
			continue;
		xasprintf(error_r, "cannot send the request: %s",
			  left <= 0 ? "timed out" : strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads until the peer closes; the whole reply lands in out. */
static int
conn_read_all(struct conn *c, struct buf *out, char **error_r)
{
	long long deadline = now_ms() + (long long)c->timeout_ms;
	for (;;) {
		char *p = buf_reserve(out, 16384);
		if (p == NULL) {
			xasprintf(error_r, "the reply is larger than %u bytes", REPLY_MAX);
			return -1;
		}
		ssize_t n;
		int want = POLLIN;
		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, p, 16384);
			if (r > 0) {
				n = r;
			} else {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_ZERO_RETURN)
					return 0;
				if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
					return 0; /* closed without close_notify: the length decides
						   */
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
					ssl_error(error_r, "read");
					return -1;
				}
				want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
				n = -1;
				errno = EAGAIN;
			}
		} else {
			n = recv(c->fd, p, 16384, 0);
			if (n == 0)
				return 0;
		}
		if (n > 0) {
			buf_commit(out, (size_t)n);
			/* A slow job poll or a big listing may take a while in
			 * total; the timeout is for silence, not the whole reply. */
			deadline = now_ms() + (long long)c->timeout_ms;
			continue;
		}
		long long left = deadline - now_ms();
		if ((errno == EAGAIN || errno == EINTR) && left > 0 &&
		    wait_fd(c->fd, (short)want, (unsigned)left) == 0)
			continue;
		if (errno == ECONNRESET)
			return 0;
		xasprintf(error_r, "no reply from tern-admind: %s",
			  left <= 0 ? "timed out" : strerror(errno));
		return -1;
	}
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
}

/* Parses an unsigned decimal or hex number at *p, with overflow checks. */
static int
parse_number(const char **p, int base, size_t *n_r)
{
	size_t n = 0;
	const char *s = *p;
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (n > (SIZE_MAX - (size_t)d) / (size_t)base)
			return -1;
		n = n * (size_t)base + (size_t)d;
	}
	if (s == *p)
		return -1;
	*p = s;
	*n_r = n;
	return 0;
}

static int
dechunk(const char *p, const char *end, struct buf *out)
{
	for (;;) {
		size_t n;
		if (parse_number(&p, 16, &n) < 0)
			return -1;
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			return -1;
		p = eol + 2; /* chunk extensions ignored */
		if (n == 0)
			return 0;
		if ((size_t)(end - p) < n + 2 || buf_append(out, p, n) < 0)
			return -1;
		p += n + 2;
	}
}

/* Splits raw (status line, headers, body) into reply. */
static int
parse_reply(const struct buf *raw, struct ternctl_reply *reply, char **error_r)
{
	const char *p = raw->data, *end = raw->data + raw->len;
	const char *hdr_end = raw->len > 0 ? memmem(p, raw->len, "\r\n\r\n", 4) : NULL;
	if (hdr_end == NULL || raw->len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
		xasprintf(error_r, "tern-admind sent no HTTP reply (is [admin] listen %s?)",
			  raw->len > 0 && (unsigned char)p[0] == 0x15 ? "plain HTTP" : "right");
		return -1;
	}
	const char *s = p + 9;
	size_t status;
	if (parse_number(&s, 10, &status) < 0 || status < 100 || status > 599) {
		xasprintf(error_r, "tern-admind sent a malformed status line");
		return -1;
	}
	reply->status = (int)status;
	bool chunked = false;
	size_t clen = SIZE_MAX;
	const char *line = memmem(p, (size_t)(hdr_end - p), "\r\n", 2) + 2;
	while (line < hdr_end) {
		const char *eol = memmem(line, (size_t)(hdr_end + 2 - line), "\r\n", 2);
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (colon != NULL) {
			size_t nlen = (size_t)(colon - line);
			const char *v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			size_t vlen = (size_t)(eol - v);
			if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
				free(reply->content_type);
				reply->content_type = xstrndup(v, vlen);
			} else if (nlen == 8 && strncasecmp(line, "Location", 8) == 0) {
				free(reply->location);
				reply->location = xstrndup(v, vlen);
			} else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
				chunked = vlen >= 7 && strncasecmp(v, "chunked", 7) == 0;
			} else if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
				const char *q = v;
				if (parse_number(&q, 10, &clen) < 0)
					clen = SIZE_MAX;
			}
		}
		line = eol + 2;
	}
	if (reply->content_type == NULL)
		reply->content_type = xstrdup("");
	const char *body = hdr_end + 4;
	size_t have = (size_t)(end - body);
	if (chunked) {
		if (dechunk(body, end, &reply->body) < 0) {
			xasprintf(error_r, "tern-admind sent a truncated or bad chunked body");
			return -1;
		}
		return 0;
	}
	if (clen != SIZE_MAX) {
		if (have < clen) {
			xasprintf(error_r, "the reply was cut short (%zu of %zu bytes)", have,
				  clen);
			return -1;
		}
		have = clen;
	}
	if (buf_append(&reply->body, body, have) < 0) {
		xasprintf(error_r, "the reply is too large");
		return -1;
	}
	return 0;
}

int
ternctl_http_request(const struct ternctl_target *t, const char *method, const char *path,
		     const char *auth, const char *body, struct ternctl_reply *reply,
		     char **error_r)
{
	struct conn c = {.fd = -1, .timeout_ms = t->timeout * 1000};
	struct buf req, raw;
	int ret = -1;

	memset(reply, 0, sizeof(*reply));
	buf_init(&reply->body, REPLY_MAX);
	buf_init(&req, REQUEST_MAX);
	buf_init(&raw, REPLY_MAX + 65536);
	*error_r = NULL;

	if (tcp_connect(t, &c.fd, error_r) < 0)
		goto out;
	if (t->tls && tls_start(&c, t, error_r) < 0)
		goto out;
	bool v6 = strchr(t->host, ':') != NULL;
	int r = buf_printf(&req,
			   "%s %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: ternctl\r\n"
			   "Accept: application/json\r\nConnection: close\r\n",
			   method, path, v6 ? "[" : "", t->host, v6 ? "]" : "", t->port);
	if (auth != NULL)
		r |= buf_printf(&req, "Authorization: %s\r\n", auth);
	if (body != NULL)
		r |= buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
				strlen(body));
	else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
		 strcmp(method, "PATCH") == 0)
		r |= buf_append_str(&req, "Content-Length: 0\r\n");
	r |= buf_append_str(&req, "\r\n");
	if (body != NULL)
		r |= buf_append_str(&req, body);
	if (r != 0) {
		xasprintf(error_r, "the request is too large");
		goto out;
	}
	if (conn_write(&c, req.data, req.len, error_r) < 0)
		goto out;
	if (conn_read_all(&c, &raw, error_r) < 0)
		goto out;
	ret = parse_reply(&raw, reply, error_r);
out:
	conn_close(&c);
	/* The request carries the credentials. */
	buf_wipe(&req);
	buf_wipe(&raw);
	if (ret < 0)
		ternctl_reply_free(reply);
	return ret;
}

void
ternctl_reply_free(struct ternctl_reply *reply)
{
	free(reply->content_type);
	free(reply->location);
	reply->content_type = NULL;
	reply->location = NULL;
	buf_free(&reply->body);
}

int
ternctl_url_escape(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr("-._~@", *p) != NULL;
		if (plain ? buf_putc(out, (char)*p) < 0
			  : buf_printf(out, "%%%c%c", hex[*p >> 4], hex[*p & 15]) < 0)
			return -1;
	}
	return 0;
}
