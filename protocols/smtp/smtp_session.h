/*
 * smtp_session.h - the inbound SMTP server (RFC 5321) for [smtp]: one
 * session per connection on a worker thread, driven by conn lines.
 */
#ifndef TERN_SMTP_SESSION_H
#define TERN_SMTP_SESSION_H

#include <sys/socket.h>
#include "core/config.h"

struct worker;

/* server_accept_fn for SVC_SMTP (and later submission). Takes fd. */
void smtp_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
		 enum service svc);

#endif
