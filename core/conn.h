/*
 * conn.h - the one connection object (STYLE rule 20), embedded first in
 * every protocol session: socket, optional TLS (implicit or STARTTLS),
 * buffered line input with a length limit, output, idle timeout, a close
 * reason, and a reference count so that asynchronous requests (directory,
 * storage) can finish safely after the peer has gone.
 *
 * Lifetime: the session allocates itself, calls conn_init(); the conn
 * calls ops->on_line for each line. conn_close() (or a peer close, an I/O
 * error, a timeout) tears down the socket and calls ops->on_close once;
 * ops->on_free runs when the last reference is gone, and frees the session.
 * Everything here runs on the conn's worker thread only.
 */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include "compat.h"
#include "linereader.h"

struct worker;
struct conn_z;
struct bufferevent;
struct event;
struct conn;

struct conn_ops {
	/* A complete line, without CRLF, NUL-terminated and writable; valid
	 * until the handler returns. Not called while the conn is paused. */
	void (*on_line)(struct conn *c, char *line, size_t len);
	/* A line exceeded the limit (its bytes were discarded). */
	void (*on_line_too_long)(struct conn *c);
	/* Idle timeout: send a goodbye; the conn closes after it drains. */
	void (*on_timeout)(struct conn *c);
	/* The connection is gone (reason for logs). Optional. */
	void (*on_close)(struct conn *c, const char *reason);
	/* Last reference dropped: free the session that embeds the conn. */
	void (*on_free)(struct conn *c);
	/* Raw bytes asked for with conn_read_bytes(), in one or more pieces
	 * (last is true on the final one); valid until the handler returns.
	 * Not called while paused. Needed only by protocols that use it. */
	void (*on_data)(struct conn *c, const char *data, size_t len, bool last);
	/* The TLS handshake completed (implicit TLS or STARTTLS): the
	 * session, channel binding and client certificate are known now.
	 * Optional. */
	void (*on_tls_ready)(struct conn *c);
};

struct conn {
	uint64_t id;	       /* random, printed in every log line */
	const char *service;   /* "smtp", "pop3", ... (static string) */
	struct worker *worker; /* borrowed: the loop this conn runs on */
	const struct conn_ops *ops;
	char peer_ip[INET6_ADDRSTRLEN];
	int peer_port;
	char local_ip[INET6_ADDRSTRLEN];
	int local_port;
	bool tls;    /* TLS is up */
	bool closed; /* socket gone; on_close has run */
	/* internal below */
	struct bufferevent *bev;
	struct event *resume_ev;
	struct evbuffer_cb_entry *under_drain_cb;    /* TLS close: socket drain watch */
	struct evbuffer_cb_entry *under_wait_cb;     /* TLS: conn_on_drain's socket watch */
	void (*drain_fn)(struct conn *c, void *arg); /* conn_on_drain waiter, or NULL */
	void *drain_arg;
	size_t drain_low;
	struct linereader lr;
	int refs;
	int pauses;
	uint64_t raw_left; /* bytes still to deliver through on_data */
	bool closing;	   /* close once output drains */
	bool in_dispatch;
	unsigned idle_timeout;
	const char *close_reason;
	int metric_svc;			    /* enum service for core/metrics.h, or -1 */
	struct conn_z *z;		    /* owned: DEFLATE both ways, or NULL */
	struct conn *list_next, *list_prev; /* this worker's connections */
};

struct conn_params {
	size_t max_line;
	unsigned idle_timeout; /* seconds */
	bool implicit_tls;
};

/* Takes ownership of fd. On failure closes fd and returns -1 (nothing
 * else is called). The conn starts with one reference, dropped by the
 * close; ops->on_free runs after on_close when no other ref is held. */
int conn_init(struct conn *c, struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
	      const char *service, const struct conn_ops *ops, const struct conn_params *params);

/* Queue output. Ignored once closed or closing. */
void conn_write(struct conn *c, const void *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Bytes queued for sending but not yet sent. */
size_t conn_output_pending(const struct conn *c);

/* Output flow control for a producer of much data (IMAP FETCH): calls
 * fn(c, arg) once, from the event loop, when conn_output_pending() is at
 * most low, or when the connection is torn down before that (c->closed
 * is then true, and fn must only clean up). A reference is held while
 * waiting; write progress restarts the idle timer. One waiter at a time:
 * -1 if one is set already or the conn is closed (fn is not called). */
int conn_on_drain(struct conn *c, size_t low, void (*fn)(struct conn *c, void *arg), void *arg);

/* Pause line delivery (an asynchronous step is running); input keeps
 * buffering. Each pause needs one resume; after the last, buffered lines
 * are delivered again from the event loop (not recursively). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* The next n input bytes (after the line being handled) go to
 * ops->on_data instead of being split into lines; line delivery resumes
 * after them (IMAP literals, SMTP BDAT chunks). n = 0 does nothing. */
void conn_read_bytes(struct conn *c, uint64_t n);

/* Change the line limit (e.g. SMTP DATA allows longer lines). */
void conn_set_max_line(struct conn *c, size_t max);
void conn_set_idle_timeout(struct conn *c, unsigned seconds);

/* Call after queueing the "go ahead" reply to STARTTLS/STLS. Any input
 * already received after the command is discarded (it was sent in the
 * clear; CVE-2011-0411). Returns -1 if TLS is not configured or already
 * on (the caller should have checked). */
int conn_starttls(struct conn *c);
/* The TLS session of a conn that speaks TLS, else NULL (for channel
 * bindings and client certificates, core/tls.h). */
struct ssl_st;
struct ssl_st *conn_ssl(const struct conn *c);
/* True if input bytes follow the current line (STARTTLS injection check). */
bool conn_input_pending(const struct conn *c);

/* Call after queueing the tagged OK to COMPRESS DEFLATE (RFC 4978): from
 * here on, input is raw DEFLATE (RFC 1951, no zlib header) inflated
 * before line assembly, and output is deflated, with a sync flush after
 * each burst (from the loop), inside TLS when TLS is on. Corrupt input
 * closes the connection (logged). -1 if already on, or zlib fails; then
 * nothing changed. About 34 KB of zlib state per idle connection. */
int conn_compress_start(struct conn *c);
bool conn_compressed(const struct conn *c);

/* Close once queued output has been sent (at most a few seconds). */
void conn_close(struct conn *c, const char *reason);

/* Tears down every connection of the calling worker thread at once
 * (daemon shutdown). */
void conn_shutdown_all(const char *reason);

/* References for asynchronous work that may outlive the socket. */
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

#endif
