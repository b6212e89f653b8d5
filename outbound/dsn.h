/*
 * dsn.h - delivery status notifications (RFC 3464) composed as
 * multipart/report; report-type=delivery-status (RFC 6522): a readable
 * text/plain part, the machine-readable message/delivery-status part
 * (message/global-delivery-status under SMTPUTF8, RFC 6533), and the
 * original message whole (RET=FULL) or its header only (RET=HDRS and the
 * default), as message/rfc822 or text/rfc822-headers (message/global and
 * message/global-headers under SMTPUTF8).
 *
 * Pure: no I/O, no clock, no DNS; the caller passes the times, the host
 * name and a unique id. The result is appended to a caller's struct buf;
 * everything else is borrowed for the call. Any thread.
 *
 * How it fails: -1 when out's cap is reached (out then holds a partial
 * message the caller discards) or a required field is missing (hostname,
 * no recipients). Remote replies are untrusted: control characters become
 * spaces, and 8-bit bytes become '?' unless SMTPUTF8, so a reply can never
 * add a field or break the report.
 */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "storage/queue.h"

/* RFC 3464 2.3.3 action-value. */
enum dsn_action {
	DSN_ACTION_FAILED = 1,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
	DSN_ACTION_EXPANDED,
};

/* The whole report. */
struct dsn_params {
	const char *hostname;	   /* our name: Reporting-MTA, From, Message-ID */
	const char *sender;	   /* who the report goes to (the original
				      envelope sender), for To: */
	const char *envid;	   /* ENVID of the original, or NULL */
	const char *received_from; /* Received-From-MTA (e.g. the client's
				      "[ip] (helo)"), or NULL */
	time_t arrival;		   /* Arrival-Date: when the original was queued */
	time_t now;		   /* Date of the report */
	uint64_t id;		   /* unique per report (e.g. queue id ^ time),
				      for Message-ID and the boundary */
	enum queue_ret ret;	   /* FULL: the whole original; else its header */
	bool smtputf8;		   /* the original was SMTPUTF8 (RFC 6533 types) */
};

/* One recipient's block. */
struct dsn_rcpt {
	const char *address; /* Final-Recipient (the envelope address) */
	const char *orcpt;   /* ORCPT as given ("rfc822;x@y"), or NULL */
	enum dsn_action action;
	const char *status;	 /* "5.1.1", or NULL: taken from the reply's
				    enhanced code, else its basic code class,
				    else the action (5.0.0 / 4.0.0 / 2.0.0) */
	const char *remote_mta;	 /* the host that answered, or NULL */
	const char *diagnostic;	 /* the remote reply ("550 5.1.1 ...") or
				    Tern's own reason, one line, or NULL */
	time_t last_attempt;	 /* 0: not given */
	time_t will_retry_until; /* delayed only; 0: not given */
};

/* Appends the complete report message (header and body, CRLF) to out;
 * orig is the original message as stored (CRLF). 0 or -1. */
int dsn_compose(const struct dsn_params *p, const struct dsn_rcpt *rcpts, size_t n,
		const char *orig, size_t orig_len, struct buf *out);

#define DSN_STATUS_MAX 12 /* "x.yyy.zzz" and NUL, with room */

/* The status code a reply carries: its enhanced code when it has one
 * ("550 5.1.1 ..." or "5.1.1 ..."), else class.0.0 from its basic code,
 * else fallback's class ("5", "4" or "2") .0.0. Always sets out. */
void dsn_status_of(const char *reply, char fallback, char out[DSN_STATUS_MAX]);

#endif
