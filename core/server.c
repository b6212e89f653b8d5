/*
 * server.c - listening sockets and the main thread's signal loop.
 *
 * Each listener address gets one socket per worker with SO_REUSEPORT, so
 * the kernel balances connections across workers without a shared accept
 * lock. Port 0 is allowed (the kernel picks one, shared by every worker's
 * socket). Fails at start-up with a message naming the address.
 *
 * Signals: SIGTERM/SIGINT/SIGHUP are blocked in every thread (ternd blocks
 * them before creating any) and taken here with sigwaitinfo(): no
 * async-signal-safety puzzles.
 */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/listener.h>

#include "compat.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "tls.h"
#include "worker.h"

struct listener {
	struct listener *next;
	enum service svc;
	struct worker *worker;	    /* borrowed */
	struct evconnlistener *evl; /* owned */
	server_accept_fn *accept;
	char *addr_text; /* owned: "host:port" as bound */
};

static struct listener *listeners;	  /* owned */
static const char *server_name = "ternd"; /* static string, for log lines */

void
server_set_name(const char *name)
{
	server_name = name;
}

static int
split_host_port(const char *spec, char **host_r, char **port_r)
{
	const char *colon;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		*host_r = xstrndup(spec + 1, (size_t)(end - spec - 1));
		*port_r = xstrdup(end + 2);
		return 0;
	}
	colon = strrchr(spec, ':');
	if (colon == NULL)
		return -1;
	*host_r = xstrndup(spec, (size_t)(colon - spec));
	*port_r = xstrdup(colon + 1);
	return 0;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	int one = 1;

	(void)evl;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	l->accept(l->worker, fd, sa, (socklen_t)salen, l->svc);
}

static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)evl;
	/* EMFILE and friends: log; libevent keeps the listener going. */
	log_error(0, config_service_name(l->svc), "accept-error listen=%s error=\"%s\"",
		  l->addr_text, evutil_socket_error_to_string(err));
}

static int
bind_one(const struct addrinfo *ai, int port, char **error_r, const char *spec)
{
	struct sockaddr_storage ss;
	int fd, one = 1;

	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0)
		goto fail;
	if (listen(fd, 511) < 0)
		goto fail;
	return fd;
fail:
	if (asprintf(error_r, "cannot listen on %s: %s", spec, strerror(errno)) < 0)
		fatal("out of memory");
	if (fd >= 0)
		close(fd);
	return -1;
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int
server_bind_spec(const char *spec, enum service svc, unsigned count, int *fds_r, char **addr_text_r,
		 char **error_r)
{
	char *host = NULL, *portstr = NULL;
	struct addrinfo hints = {0}, *res = NULL;
	unsigned nbound = 0;
	int rc = -1;

	*addr_text_r = NULL;
	if (split_host_port(spec, &host, &portstr) < 0) {
		if (asprintf(error_r, "[%s] listen: \"%s\" is not host:port",
			     config_service_name(svc), spec) < 0)
			fatal("out of memory");
		goto out;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host[0] != '\0' ? host : NULL, portstr, &hints, &res);
	if (gai != 0) {
		if (asprintf(error_r, "[%s] listen %s: %s", config_service_name(svc), spec,
			     gai_strerror(gai)) < 0)
			fatal("out of memory");
		goto out;
	}
	int port = atoi(portstr);
	for (; nbound < count; nbound++) {
		int fd = bind_one(res, port, error_r, spec);
		if (fd < 0)
			goto out;
		if (port == 0)
			port = bound_port(fd);
		fds_r[nbound] = fd;
	}
	if (res->ai_family == AF_INET6)
		rc = asprintf(addr_text_r, "[%s]:%d", host, port);
	else
		rc = asprintf(addr_text_r, "%s:%d", host, port);
	if (rc < 0)
		fatal("out of memory");
	rc = 0;
out:
	if (rc < 0) {
		for (unsigned i = 0; i < nbound; i++)
			close(fds_r[i]);
	}
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	free(portstr);
	return rc;
}

static int
listen_spec(const char *spec, enum service svc, server_accept_fn *fn, char **error_r)
{
	unsigned n = worker_pool_size();
	int *fds = xcalloc(n, sizeof(*fds));
	char *addr_text = NULL;

	if (server_bind_spec(spec, svc, n, fds, &addr_text, error_r) < 0) {
		free(fds);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct listener *l = xcalloc(1, sizeof(*l));
		l->svc = svc;
		l->worker = worker_get(i);
		l->accept = fn;
		l->addr_text = xstrdup(addr_text);
		l->evl =
		    evconnlistener_new(worker_base(l->worker), accept_cb, l,
				       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fds[i]);
		if (l->evl == NULL)
			fatal("libevent: cannot create a listener for %s", spec);
		evconnlistener_set_error_cb(l->evl, accept_error_cb);
		l->next = listeners;
		listeners = l;
	}
	free(addr_text);
	free(fds);
	return 0;
}

int
server_listen(const struct config *cfg, server_accept_fn *const accept_fns[SVC_COUNT],
	      char **error_r)
{
	for (int s = 0; s < SVC_COUNT; s++) {
		const struct listener_config *lc = &cfg->listeners[s];
		if (!lc->present || accept_fns[s] == NULL)
			continue;
		for (size_t i = 0; i < lc->naddrs; i++)
			if (listen_spec(lc->addrs[i], (enum service)s, accept_fns[s], error_r) < 0)
				return -1;
	}
	return 0;
}

void
server_log_listeners(void)
{
	for (struct listener *l = listeners; l != NULL; l = l->next)
		if (worker_index(l->worker) == 0)
			log_info(0, config_service_name(l->svc), "listen addr=%s", l->addr_text);
}

int
server_drop_privileges(const struct config *cfg, char **error_r)
{
	struct passwd *pw;

	if (cfg->user == NULL || cfg->user[0] == '\0')
		return 0;
	if (geteuid() != 0) {
		log_warn(0, server_name, "not-root user=%s note=\"not changing user\"", cfg->user);
		return 0;
	}
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		if (asprintf(error_r, "%s: [server] user: no such user \"%s\"", cfg->path,
			     cfg->user) < 0)
			fatal("out of memory");
		return -1;
	}
	/* The state directory must belong to the user we become. */
	if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
		if (asprintf(error_r, "cannot create %s: %s", cfg->state_dir, strerror(errno)) < 0)
			fatal("out of memory");
		return -1;
	}
	if (chown(cfg->state_dir, pw->pw_uid, pw->pw_gid) < 0) {
		if (asprintf(error_r, "cannot chown %s: %s", cfg->state_dir, strerror(errno)) < 0)
			fatal("out of memory");
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		if (asprintf(error_r, "cannot switch to user %s: %s", cfg->user, strerror(errno)) <
		    0)
			fatal("out of memory");
		return -1;
	}
	return 0;
}

static void
reload(void)
{
	struct config *cur = config_acquire();
	char *err = NULL;
	struct config *cfg = config_load(cur->path, &err);

	if (cfg == NULL) {
		log_error(0, server_name, "reload-failed reason=\"%s\"", err);
		free(err);
		config_release(cur);
		return;
	}
	if (cfg->tls_cert[0] != '\0' &&
	    tls_reload(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, &err) < 0) {
		log_error(0, server_name, "reload-failed reason=\"%s\"", err);
		free(err);
		config_free(cfg);
		config_release(cur);
		return;
	}
	config_release(cur);
	log_init((enum log_level)cfg->log_level);
	config_set_current(cfg);
	log_info(0, server_name, "reload config=%s", cfg->path);
}

static void
close_listeners_here(void *arg)
{
	struct worker *self = worker_current();

	(void)arg;
	for (struct listener *l = listeners; l != NULL; l = l->next) {
		if (l->worker == self && l->evl != NULL) {
			evconnlistener_free(l->evl);
			l->evl = NULL;
		}
	}
	conn_shutdown_all("shutdown");
}

void
server_run(void)
{
	sigset_t set;
	siginfo_t info;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		int sig = sigwaitinfo(&set, &info);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			fatal("sigwaitinfo: %s", strerror(errno));
		}
		if (sig == SIGHUP) {
			reload();
			continue;
		}
		log_info(0, server_name, "shutdown signal=%s", sig == SIGTERM ? "TERM" : "INT");
		break;
	}
	worker_pool_run_everywhere(close_listeners_here, NULL);
	while (listeners != NULL) {
		struct listener *l = listeners;
		listeners = l->next;
		if (l->evl != NULL)
			evconnlistener_free(l->evl);
		free(l->addr_text);
		free(l);
	}
}

void
server_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}
