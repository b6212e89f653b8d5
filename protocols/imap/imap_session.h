/*
 * imap_session.h - the IMAP server (IMAP4rev1 RFC 3501 and IMAP4rev2 RFC
 * 9051) for [imap] (STARTTLS) and [imaps] (implicit TLS): one session per
 * connection on a worker thread.
 */
#ifndef TERN_IMAP_SESSION_H
#define TERN_IMAP_SESSION_H

#include <sys/socket.h>
#include "core/config.h"

struct worker;

/* server_accept_fn for SVC_IMAP and SVC_IMAPS. Takes fd. */
void imap_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
		 enum service svc);
/* Frees what the IMAP server keeps process-wide (\Recent claims), once
 * the workers have stopped. */
void imap_done(void);

#endif
