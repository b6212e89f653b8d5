/*
 * server.h - listeners and the daemon's life: each listener address gets
 * one SO_REUSEPORT socket per worker (bound in the main thread, before
 * privileges are dropped), so the kernel spreads connections. SIGTERM and
 * SIGINT stop the daemon cleanly; SIGHUP reloads config and certificates.
 */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <sys/socket.h>
#include "config.h"

struct worker;

/* Called on the worker's thread for each accepted connection; takes fd. */
typedef void server_accept_fn(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
			      enum service svc);

/* Blocks SIGTERM/SIGINT/SIGHUP (taken by server_run) and ignores SIGPIPE.
 * Call first in main, before any thread exists, so every thread inherits
 * the mask. */
void server_block_signals(void);

/* Binds every address of every present listener section that has an
 * accept function in accept_fns (indexed by enum service). 0, or -1 with
 * a malloc'd *error_r naming the address. Main thread, after
 * worker_pool_create(). */
int server_listen(const struct config *cfg, server_accept_fn *const accept_fns[SVC_COUNT],
		  char **error_r);
/* The program name in the signal loop's log lines (default "ternd"). */
void server_set_name(const char *name);
/* Binds count SO_REUSEPORT listening sockets to one "host:port" (port 0:
 * the kernel picks one, shared by all) into fds_r; *addr_text_r is the
 * malloc'd "host:port" actually bound. For servers that accept on their
 * own (tern-admind's evhttp). 0, or -1 with a malloc'd *error_r. */
int server_bind_spec(const char *spec, enum service svc, unsigned count, int *fds_r,
		     char **addr_text_r, char **error_r);
/* Starts accepting on the workers' loops, then runs the main thread's
 * signal loop until SIGTERM/SIGINT. Returns after the listeners close. */
void server_run(void);
/* The actual "host:port" each listener got (tests bind port 0). */
void server_log_listeners(void);
/* Switches to cfg->user if set (after binding). 0 or -1 with *error_r. */
int server_drop_privileges(const struct config *cfg, char **error_r);

#endif
