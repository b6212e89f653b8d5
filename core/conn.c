/*
 * conn.c - the connection object: a bufferevent (plain, or OpenSSL for
 * implicit TLS and after STARTTLS), line assembly through linereader,
 * pausing while a session waits for the directory or the store, closing
 * after output drains, and reference counting for asynchronous callers.
 *
 * Failure handling: a peer close, an I/O or TLS error, or a timeout tears
 * the connection down (socket closed, on_close called once); the session
 * memory lives until the last reference is dropped (on_free).
 *
 * Input is bounded: the bufferevent stops reading when INPUT_HIGH bytes are
 * buffered and unprocessed, and line processing stops while more than
 * OUTPUT_HIGH bytes wait to be sent (a client that pipelines RETRs without
 * reading cannot make us buffer without bound). Output of one long
 * response is bounded by its producer with conn_on_drain().
 *
 * COMPRESS (RFC 4978): with conn_compress_start() the bufferevent stays
 * as it is; conn_write deflates into its output (so TLS, when on,
 * encrypts compressed records) and a sync flush runs from the loop after
 * each burst, so the peer never waits on bytes held by zlib. Input is
 * inflated on demand, at most Z_CHUNK bytes at a time and only when the
 * inflated bytes are used up, so a small "bomb" cannot fill memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "worker.h"

#define INPUT_HIGH (256 * 1024)
#define OUTPUT_HIGH (1024 * 1024)
#define OUTPUT_LOW (64 * 1024)
#define CLOSE_DRAIN_SECONDS 10
#define Z_CHUNK (16 * 1024)
/* Deflate's memory is (1 << (wbits + 2)) + (1 << (memlevel + 9)) bytes
 * plus a ~6 KB state (zconf.h): 8 + 8 + 6 KB here. Inflate needs the
 * 32 KB window the peer may use (RFC 1951) plus a ~7 KB state. An idle
 * IMAP session with COMPRESS costs about 34 KB more than one without
 * (docs/performance.md); a smaller deflate window costs little on IMAP
 * responses, which is what every idle connection pays for. */
#define Z_DEFLATE_WBITS 11
#define Z_DEFLATE_MEMLEVEL 4
#define Z_DEFLATE_LEVEL 5 /* RFC 4978 4 suggests 1-5 */

struct conn_z {
	z_stream in, out;
	struct evbuffer *plain; /* inflated input not yet consumed */
	struct event *flush_ev; /* the sync flush after a burst */
	bool dirty;		/* deflated since the last sync flush */
	bool more;		/* inflate filled its output: it may hold more */
};

/* Connections of this worker thread, for shutdown. */
static __thread struct conn *thread_conns;

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_teardown(struct conn *c, const char *reason);
static void drain_fire(struct conn *c);

static void
conn_setup_bev(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_HIGH);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_LOW, 0);
	if (c->idle_timeout > 0) {
		struct timeval tv = {.tv_sec = c->idle_timeout};
		bufferevent_set_timeouts(c->bev, &tv, NULL);
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
task_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->closed)
		return;
	if (c->closing) {
		if (conn_output_pending(c) == 0)
			conn_teardown(c, c->close_reason);
		return;
	}
	if (c->drain_fn != NULL && conn_output_pending(c) <= c->drain_low) {
		conn_ref(c);
		drain_fire(c);
		bool gone = c->closed;
		conn_unref(c);
		if (gone)
			return;
	}
	conn_read_cb(c->bev, c);
}

static void
schedule_task(struct conn *c)
{
	if (c->resume_ev != NULL)
		event_active(c->resume_ev, EV_TIMEOUT, 0);
}

static void
sockaddr_text(const struct sockaddr *sa, char *ip, size_t iplen, int *port_r)
{
	ip[0] = '\0';
	*port_r = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, iplen);
		*port_r = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		/* show v4-mapped addresses as plain IPv4 */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, iplen);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, ip, iplen);
		*port_r = ntohs(in6->sin6_port);
	}
}

int
conn_init(struct conn *c, struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
	  const char *service, const struct conn_ops *ops, const struct conn_params *params)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct event_base *base = worker_base(w);

	(void)salen;
	c->id = log_new_id();
	c->service = service;
	c->worker = w;
	c->ops = ops;
	c->refs = 1;
	c->idle_timeout = params->idle_timeout;
	sockaddr_text(sa, c->peer_ip, sizeof(c->peer_ip), &c->peer_port);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		sockaddr_text((struct sockaddr *)&local, c->local_ip, sizeof(c->local_ip),
			      &c->local_port);
	lr_init(&c->lr, params->max_line);
	evutil_make_socket_nonblocking(fd);

	if (params->implicit_tls) {
		SSL_CTX *ctx = tls_ctx_acquire();
		SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
		if (ctx != NULL)
			SSL_CTX_free(ctx); /* the SSL keeps its own reference */
		if (ssl == NULL) {
			log_error(c->id, service, "tls-error reason=\"cannot create TLS session\"");
			goto fail;
		}
		c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL)
			goto fail;
	}
	c->resume_ev = event_new(base, -1, 0, task_cb, c);
	if (c->resume_ev == NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		lr_free(&c->lr);
		return -1;
	}
	conn_setup_bev(c);

	/* link into this thread's list */
	c->list_next = thread_conns;
	c->list_prev = NULL;
	if (thread_conns != NULL)
		thread_conns->list_prev = c;
	thread_conns = c;
	c->metric_svc = metrics_service_index(service);
	if (c->metric_svc >= 0) {
		metric_inc((enum metric_id)(M_CONN_OPEN + c->metric_svc));
		metric_inc((enum metric_id)(M_CONN_TOTAL + c->metric_svc));
	}
	return 0;
fail:
	close(fd);
	lr_free(&c->lr);
	return -1;
}

/* Deflates len bytes into the bufferevent's output with flush (Z_NO_FLUSH
 * or Z_SYNC_FLUSH). deflate() cannot fail here: the stream is valid and
 * there is always output space. */
static void
z_deflate(struct conn *c, const void *data, size_t len, int flush)
{
	struct conn_z *z = c->z;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	z->out.next_in = (Bytef *)(uintptr_t)data;
	z->out.avail_in = (uInt)len;
	do {
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(out, Z_CHUNK, &v, 1) < 1)
			break;
		z->out.next_out = v.iov_base;
		z->out.avail_out = (uInt)(v.iov_len < UINT32_MAX ? v.iov_len : UINT32_MAX);
		size_t room = z->out.avail_out;
		int r = deflate(&z->out, flush);
		v.iov_len = room - z->out.avail_out;
		evbuffer_commit_space(out, &v, 1);
		if (r == Z_STREAM_ERROR)
			break;
	} while (z->out.avail_in > 0 || z->out.avail_out == 0);
}

static void
z_flush(struct conn *c)
{
	if (c->z == NULL || !c->z->dirty || c->closed)
		return;
	c->z->dirty = false;
	z_deflate(c, NULL, 0, Z_SYNC_FLUSH);
}

static void
z_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	z_flush(arg);
}

static void
z_write(struct conn *c, const void *data, size_t len)
{
	if (len == 0)
		return;
	z_deflate(c, data, len, Z_NO_FLUSH);
	if (!c->z->dirty) {
		c->z->dirty = true;
		event_active(c->z->flush_ev, EV_TIMEOUT, 0);
	}
}

static void
z_free(struct conn *c)
{
	struct conn_z *z = c->z;

	if (z == NULL)
		return;
	c->z = NULL;
	inflateEnd(&z->in);
	deflateEnd(&z->out);
	if (z->flush_ev != NULL)
		event_free(z->flush_ev);
	if (z->plain != NULL)
		evbuffer_free(z->plain);
	free(z);
}

int
conn_compress_start(struct conn *c)
{
	if (c->closed || c->closing || c->z != NULL)
		return -1;
	struct conn_z *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return -1;
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		return -1;
	}
	if (deflateInit2(&z->out, Z_DEFLATE_LEVEL, Z_DEFLATED, -Z_DEFLATE_WBITS, Z_DEFLATE_MEMLEVEL,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		return -1;
	}
	c->z = z;
	z->plain = evbuffer_new();
	z->flush_ev = event_new(worker_base(c->worker), -1, 0, z_flush_cb, c);
	if (z->plain == NULL || z->flush_ev == NULL) {
		z_free(c);
		return -1;
	}
	/* Output queued before this (the tagged OK) goes out uncompressed;
	 * input after the command is compressed (the client waits for the
	 * OK before it sends any). */
	return 0;
}

bool
conn_compressed(const struct conn *c)
{
	return c->z != NULL;
}

/* Inflates more input into z->plain: until some bytes come out or the
 * compressed input is used up. -1 on corrupt input (or a stream the peer
 * ended: no more could follow). */
static int
z_inflate_some(struct conn *c)
{
	struct conn_z *z = c->z;
	struct evbuffer *src = bufferevent_get_input(c->bev);

	while (evbuffer_get_length(z->plain) == 0 && (z->more || evbuffer_get_length(src) > 0)) {
		size_t n = evbuffer_get_contiguous_space(src);
		unsigned char *p = evbuffer_pullup(src, (ev_ssize_t)n);
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(z->plain, Z_CHUNK, &v, 1) < 1)
			return -1;
		z->in.next_in = p;
		z->in.avail_in = (uInt)(n < UINT32_MAX ? n : UINT32_MAX);
		z->in.next_out = v.iov_base;
		z->in.avail_out = Z_CHUNK;
		size_t before = z->in.avail_in;
		int r = inflate(&z->in, Z_SYNC_FLUSH);
		v.iov_len = Z_CHUNK - z->in.avail_out;
		evbuffer_commit_space(z->plain, &v, 1);
		evbuffer_drain(src, before - z->in.avail_in);
		z->more = z->in.avail_out == 0;
		if (r == Z_STREAM_END || (r != Z_OK && r != Z_BUF_ERROR))
			return -1;
	}
	return 0;
}

/* Where the protocol's input comes from: the inflated bytes under
 * COMPRESS (refilled when empty), else the bufferevent's input. NULL
 * after the conn was closed for corrupt compressed input. */
static struct evbuffer *
conn_input(struct conn *c)
{
	if (c->z == NULL)
		return bufferevent_get_input(c->bev);
	if (evbuffer_get_length(c->z->plain) == 0 && z_inflate_some(c) < 0) {
		log_info(c->id, c->service, "compress-error ip=%s reason=\"%s\"", c->peer_ip,
			 c->z->in.msg != NULL ? c->z->in.msg : "compressed stream ended");
		conn_close(c, "compression error");
		return NULL;
	}
	return c->z->plain;
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->closed || c->closing)
		return;
	if (c->z != NULL)
		z_write(c, data, len);
	else
		bufferevent_write(c->bev, data, len);
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->closed || c->closing)
		return;
	va_start(ap, fmt);
	if (c->z != NULL) {
		char *text;
		int n = vasprintf(&text, fmt, ap);
		if (n >= 0) {
			z_write(c, text, (size_t)n);
			free(text);
		}
	} else {
		evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	}
	va_end(ap);
}

size_t
conn_output_pending(const struct conn *c)
{
	if (c->closed || c->bev == NULL)
		return 0;
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
	/* Under TLS the filter moves records into the socket bufferevent;
	 * they are not sent until that one has drained too. */
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* Under a TLS filter the records wait in the socket bufferevent, whose
 * callbacks belong to the filter: watch its output buffer and look again
 * from the loop (this runs inside libevent's buffer operations). */
static void
conn_under_wait_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)buf;
	if (info->n_deleted > 0 && c->drain_fn != NULL && conn_output_pending(c) <= c->drain_low)
		schedule_task(c);
}

static void
drain_unwatch(struct conn *c)
{
	if (c->under_wait_cb == NULL)
		return;
	struct bufferevent *under = c->bev != NULL ? bufferevent_get_underlying(c->bev) : NULL;
	if (under != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(under), c->under_wait_cb);
	c->under_wait_cb = NULL;
}

/* Runs the drain waiter once and drops its reference. From the loop
 * only (task_cb, teardown), never from inside a conn_write. */
static void
drain_fire(struct conn *c)
{
	void (*fn)(struct conn *, void *) = c->drain_fn;
	void *arg = c->drain_arg;

	c->drain_fn = NULL;
	c->drain_arg = NULL;
	drain_unwatch(c);
	/* The peer is reading: that is activity, not idleness (a big FETCH
	 * to a slow client may outlast the idle timeout). */
	if (!c->closed && !c->closing && c->idle_timeout > 0)
		conn_set_idle_timeout(c, c->idle_timeout);
	fn(c, arg);
	conn_unref(c);
}

int
conn_on_drain(struct conn *c, size_t low, void (*fn)(struct conn *c, void *arg), void *arg)
{
	if (c->closed || c->drain_fn != NULL)
		return -1;
	c->drain_fn = fn;
	c->drain_arg = arg;
	c->drain_low = low;
	conn_ref(c);
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under != NULL)
		c->under_wait_cb =
		    evbuffer_add_cb(bufferevent_get_output(under), conn_under_wait_cb, c);
	/* Maybe below low already: the loop looks at once, and fn never
	 * runs inside the caller. */
	schedule_task(c);
	return 0;
}

void
conn_pause(struct conn *c)
{
	c->pauses++;
}

void
conn_resume(struct conn *c)
{
	if (c->pauses <= 0)
		panic("conn_resume without conn_pause");
	if (--c->pauses == 0 && !c->closed)
		schedule_task(c);
}

void
conn_read_bytes(struct conn *c, uint64_t n)
{
	if (c->ops->on_data == NULL)
		panic("conn_read_bytes: the protocol has no on_data handler");
	c->raw_left += n;
}

void
conn_set_max_line(struct conn *c, size_t max)
{
	lr_set_max(&c->lr, max);
}

void
conn_set_idle_timeout(struct conn *c, unsigned seconds)
{
	c->idle_timeout = seconds;
	if (c->closed)
		return;
	struct timeval tv = {.tv_sec = seconds};
	bufferevent_set_timeouts(c->bev, seconds > 0 ? &tv : NULL, NULL);
}

bool
conn_input_pending(const struct conn *c)
{
	if (c->closed)
		return false;
	return lr_pending(&c->lr) > 0 || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 ||
	       (c->z != NULL && (c->z->more || evbuffer_get_length(c->z->plain) > 0));
}

SSL *
conn_ssl(const struct conn *c)
{
	if (!c->tls || c->closed || c->bev == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(c->bev);
}

int
conn_starttls(struct conn *c)
{
	/* TLS under a compressed stream would need the compression moved
	 * inside it; no protocol allows STARTTLS after COMPRESS anyway. */
	if (c->closed || c->closing || c->tls || c->z != NULL)
		return -1;
	SSL_CTX *ctx = tls_ctx_acquire();
	if (ctx == NULL)
		return -1;
	SSL *ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	if (ssl == NULL)
		return -1;

	/* Whatever the client sent after the command came in the clear and
	 * must not be taken as commands inside TLS (CVE-2011-0411). */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	lr_reset(&c->lr);
	c->raw_left = 0;

	/* The filter writes TLS records into the old bufferevent after the
	 * plaintext reply already queued there, so the reply goes out first. */
	struct bufferevent *tlsbev = bufferevent_openssl_filter_new(
	    worker_base(c->worker), c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tlsbev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tlsbev, 1);
	c->bev = tlsbev;
	c->tls = true;
	conn_setup_bev(c);
	return 0;
}

/* The socket bufferevent under a TLS filter belongs to the filter, so its
 * callbacks are not ours to set; watch its output buffer instead and
 * finish closing from the loop once everything has been written. */
static void
conn_under_drain_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	if (info->n_deleted > 0 && evbuffer_get_length(buf) == 0 && c->closing)
		schedule_task(c);
}

void
conn_close(struct conn *c, const char *reason)
{
	if (c->closed || c->closing)
		return;
	z_flush(c); /* what zlib holds goes out before the close */
	c->closing = true;
	c->close_reason = reason;
	bufferevent_disable(c->bev, EV_READ);
	struct timeval tv = {.tv_sec = CLOSE_DRAIN_SECONDS};
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under != NULL) {
		/* the filter passes the socket's timeout on to conn_event_cb */
		bufferevent_set_timeouts(under, NULL, &tv);
		c->under_drain_cb =
		    evbuffer_add_cb(bufferevent_get_output(under), conn_under_drain_cb, c);
	}
	/* Tear down from the loop, never from inside a caller's handler. */
	schedule_task(c);
}

void
conn_ref(struct conn *c)
{
	c->refs++;
}

void
conn_unref(struct conn *c)
{
	if (c->refs <= 0)
		panic("conn_unref: no reference held");
	if (--c->refs == 0) {
		lr_free(&c->lr);
		if (c->ops->on_free != NULL)
			c->ops->on_free(c);
	}
}

static void
conn_teardown(struct conn *c, const char *reason)
{
	if (c->closed)
		return;
	c->closed = true;
	c->closing = false;
	c->close_reason = reason;
	if (c->metric_svc >= 0)
		metric_dec((enum metric_id)(M_CONN_OPEN + c->metric_svc));
	if (c->bev != NULL) {
		struct bufferevent *under = bufferevent_get_underlying(c->bev);
		if (under != NULL && c->under_drain_cb != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_output(under), c->under_drain_cb);
		c->under_drain_cb = NULL;
		drain_unwatch(c);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	z_free(c);
	if (c->resume_ev != NULL) {
		event_free(c->resume_ev);
		c->resume_ev = NULL;
	}
	if (c->list_prev != NULL)
		c->list_prev->list_next = c->list_next;
	else if (thread_conns == c)
		thread_conns = c->list_next;
	if (c->list_next != NULL)
		c->list_next->list_prev = c->list_prev;
	c->list_next = c->list_prev = NULL;
	if (c->ops->on_close != NULL)
		c->ops->on_close(c, reason != NULL ? reason : "closed");
	/* A producer waiting for output to drain learns it never will. */
	if (c->drain_fn != NULL)
		drain_fire(c);
	conn_unref(c); /* the connection's own reference */
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->in_dispatch)
		return; /* a handler re-entered the loop; it will continue */
	conn_ref(c);
	c->in_dispatch = true;
	while (!c->closed && !c->closing && c->pauses == 0) {
		if (conn_output_pending(c) > OUTPUT_HIGH)
			break; /* resumed by conn_write_cb */
		struct evbuffer *in = conn_input(c);
		if (in == NULL)
			break;
		size_t avail = evbuffer_get_contiguous_space(in);
		if (avail == 0)
			break;
		const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
		if (c->raw_left > 0) {
			/* The line reader holds nothing here: it stops at each
			 * LF, and raw reads are only asked for from a handler. */
			size_t take = avail < c->raw_left ? avail : (size_t)c->raw_left;
			struct bufferevent *bev_before = c->bev;
			c->raw_left -= take;
			/* data points into the input buffer: drain it only after
			 * the handler (a STARTTLS inside it drains everything). */
			c->ops->on_data(c, data, take, c->raw_left == 0);
			if (!c->closed && c->bev == bev_before)
				evbuffer_drain(in, take);
			continue;
		}
		size_t used = 0;
		char *line;
		size_t len;
		enum lr_result r = lr_feed(&c->lr, data, avail, &used, &line, &len);
		evbuffer_drain(in, used);
		if (r == LR_LINE)
			c->ops->on_line(c, line, len);
		else if (r == LR_TOO_LONG)
			c->ops->on_line_too_long(c);
	}
	c->in_dispatch = false;
	conn_unref(c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->closed)
		return;
	if (c->closing) {
		if (conn_output_pending(c) == 0)
			conn_teardown(c, c->close_reason);
		return;
	}
	/* Output fell below the low watermark: carry on with buffered input,
	 * or with a producer waiting in conn_on_drain (run from the loop). */
	if ((c->pauses == 0 &&
	     (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 ||
	      (c->z != NULL && (c->z->more || evbuffer_get_length(c->z->plain) > 0)))) ||
	    (c->drain_fn != NULL && conn_output_pending(c) <= c->drain_low))
		schedule_task(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->closed)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		/* Only TLS bufferevents report this on an accepted socket:
		 * the handshake is done. */
		if (c->tls && c->ops->on_tls_ready != NULL)
			c->ops->on_tls_ready(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && !c->closing) {
			conn_ref(c);
			if (c->ops->on_timeout != NULL)
				c->ops->on_timeout(c);
			conn_close(c, "idle timeout");
			conn_unref(c);
		} else {
			conn_teardown(c, "write timeout");
		}
		return;
	}
	if (what & BEV_EVENT_EOF) {
		conn_teardown(c, c->closing ? c->close_reason : "peer closed");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(c->bev);
		if (e != 0) {
			char detail[256];
			ERR_error_string_n(e, detail, sizeof(detail));
			log_info(c->id, c->service, "tls-error ip=%s reason=\"%s\"", c->peer_ip,
				 detail);
			conn_teardown(c, "TLS error");
		} else {
			conn_teardown(c, c->closing ? c->close_reason : "I/O error");
		}
	}
}

void
conn_shutdown_all(const char *reason)
{
	while (thread_conns != NULL)
		conn_teardown(thread_conns, reason);
}
