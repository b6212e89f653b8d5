/*
 * outbound.h - the outbound delivery engine: mail in the queue
 * (storage/queue.h) leaves for other servers over SMTP.
 *
 * One runner thread with its own libevent loop takes due recipients from
 * the queue, groups them by destination (the recipient's domain, a
 * [routes] entry or the [outbound] relayhost), resolves MX hosts through
 * libunbound, delivers over SMTP (STARTTLS, PIPELINING, DSN, connection
 * reuse) and records each recipient's fate with queue_update(), bounces
 * (RFC 3464) included. Nothing on that thread blocks.
 *
 * Main thread only: start after store_open() and dir_start(), stop before
 * dir_stop() and store_close().
 */
#ifndef TERN_OUTBOUND_H
#define TERN_OUTBOUND_H

#include "core/config.h"

/* Starts the runner with cfg (which must outlive outbound_stop()).
 * 0, or -1 with a malloc'd *error_r (the resolver could not be set up). */
int outbound_start(const struct config *cfg, char **error_r);
/* Closes every connection (mail in flight stays queued and is retried
 * after a restart), waits for pending queue updates, joins the thread. */
void outbound_stop(void);

/* Registers the queue commands of the control socket (queue.hold,
 * queue.release, queue.retry, queue.delete, queue.bounce: ob_control.c),
 * which act through the runner. Main thread, after outbound_start() and
 * before control_start(). */
void outbound_control_register(void);

#endif
