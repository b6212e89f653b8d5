/*
 * pop3_session.h - the POP3 server (RFC 1939, 2449, 2595, 5034) for [pop3]
 * and [pop3s]: one session per connection on a worker thread.
 */
#ifndef TERN_POP3_SESSION_H
#define TERN_POP3_SESSION_H

#include <sys/socket.h>
#include "core/config.h"

struct worker;

/* server_accept_fn for SVC_POP3 and SVC_POP3S. Takes fd. */
void pop3_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
		 enum service svc);

#endif
