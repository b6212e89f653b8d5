/*
 * admin_health.c - GET /healthz and GET /metrics of tern-admind.
 *
 * /healthz checks, each within a bound: the directory (a service bind
 * within [directory] timeout), storage (the LMDB environment opened
 * through admin_store.c, shared with the mailbox and backup jobs, and a
 * read transaction begun), and listeners (a TCP connect to each address of every
 * ternd service in the config). 200 {"status": "ok"} or 503
 * {"status": "degraded"}, with every check's result either way.
 *
 * /metrics renders ternd's shared counter area (core/metrics.h) plus
 * gauges computed at scrape time: queue size and age (from LMDB),
 * LMDB file and map sizes.
 * How it fails: a check that fails says why in its "error"; a missing or
 * foreign metrics area is reported as tern_ternd_up 0 and the scrape-time
 * gauges are still served.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "admin/admin_internal.h"
#include "core/log.h"
#include "core/metrics.h"
#include "storage/queue.h"
#include "storage/store.h"

#define CONNECT_TIMEOUT_MS 1000
#define METRICS_MAX (1u << 20)

bool
admin_is_loopback(const char *ip)
{
	if (ip == NULL)
		return false;
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
	       strncmp(ip, "::ffff:127.", 11) == 0;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
admin_health_close(void)
{
	admin_store_close();
}

static json_t *
check_result(bool ok, const char *error, uint64_t ms)
{
	json_t *o = json_object();

	json_object_set_new(o, "status", json_string(ok ? "ok" : "fail"));
	if (error != NULL)
		json_object_set_new(o, "error", json_string(error));
	json_object_set_new(o, "ms", json_integer((json_int_t)ms));
	return o;
}

static json_t *
check_directory(const struct config *cfg, bool *ok_r)
{
	char *err = NULL;
	uint64_t t0 = mono_ms();

	*ok_r = admin_ldap_ping(cfg, &err) == 0;
	json_t *o = check_result(*ok_r, err, mono_ms() - t0);
	free(err);
	return o;
}

/* Below this much free space the store is reported as failing: LMDB
 * needs room to grow the file, and a full disk refuses every delivery. */
#define ADMIN_HEALTH_MIN_FREE (64ull * 1024 * 1024)

static json_t *
check_storage(const struct config *cfg, bool *ok_r)
{
	char *err = NULL;
	uint64_t t0 = mono_ms();

	uint64_t free_bytes = 0;

	/* Writable: a read, then a write transaction begun and aborted (the
	 * writer lock can be had, the environment is not read-only) and
	 * room on the file system; nothing is ever written. */
	if (admin_store_acquire(cfg, &err) == 0) {
		*ok_r = store_read_probe(&err) == 0 &&
			store_write_probe(ADMIN_HEALTH_MIN_FREE, &free_bytes, &err) == 0;
		admin_store_release();
	} else {
		*ok_r = false;
	}
	json_t *o = check_result(*ok_r, err, mono_ms() - t0);
	json_object_set_new(o, "free_bytes", json_integer((json_int_t)free_bytes));
	free(err);
	return o;
}

/* A TCP connect to host:port within the timeout. 0 or -1 with *why_r. */
static int
probe(const char *spec, const char **why_r)
{
	char *host = NULL;
	unsigned port;
	struct addrinfo hints = {0}, *res = NULL;
	char portstr[12];
	int rc = -1;

	if (config_parse_hostport(spec, 0, &host, &port) < 0 || port == 0) {
		*why_r = "not host:port";
		return -1;
	}
	/* A wildcard listener is reached on loopback. */
	const char *target = host;
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		target = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		target = "::1";
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(target, portstr, &hints, &res) != 0 || res == NULL) {
		*why_r = "cannot resolve";
		goto out;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*why_r = strerror(errno);
		goto out;
	}
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
		*why_r = strerror(errno);
		close(fd);
		goto out;
	}
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int n = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (n <= 0) {
		*why_r = n == 0 ? "connect timed out" : strerror(errno);
	} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
		*why_r = strerror(soerr != 0 ? soerr : errno);
	} else {
		rc = 0;
	}
	close(fd);
out:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	return rc;
}

static json_t *
check_listeners(const struct config *cfg, bool *ok_r)
{
	json_t *each = json_object();
	uint64_t t0 = mono_ms();
	bool ok = true;

	for (int s = 0; s < SVC_COUNT; s++) {
		const struct listener_config *lc = &cfg->listeners[s];
		if (s == SVC_ADMIN || !lc->present)
			continue;
		for (size_t i = 0; i < lc->naddrs; i++) {
			const char *why = NULL;
			char *key;
			if (asprintf(&key, "%s %s", config_service_name((enum service)s),
				     lc->addrs[i]) < 0)
				fatal("out of memory");
			if (probe(lc->addrs[i], &why) < 0) {
				ok = false;
				json_object_set_new(each, key, json_string(why));
			} else {
				json_object_set_new(each, key, json_string("ok"));
			}
			free(key);
		}
	}
	json_t *o =
	    check_result(ok, ok ? NULL : "a listener does not accept connections", mono_ms() - t0);
	json_object_set_new(o, "listeners", each);
	*ok_r = ok;
	return o;
}

void
admin_handle_healthz(struct admin_req *r)
{
	bool dir_ok, store_ok, lst_ok;
	json_t *checks = json_object();

	json_object_set_new(checks, "directory", check_directory(r->cfg, &dir_ok));
	json_object_set_new(checks, "storage", check_storage(r->cfg, &store_ok));
	json_object_set_new(checks, "listeners", check_listeners(r->cfg, &lst_ok));
	bool ok = dir_ok && store_ok && lst_ok;
	json_t *body = json_object();
	json_object_set_new(body, "status", json_string(ok ? "ok" : "degraded"));
	json_object_set_new(body, "checks", checks);
	admin_reply_json(r, ok ? 200 : 503, body);
	r->summary = ok ? "ok" : "degraded";
}

/* ---- metrics ---- */

void
admin_handle_metrics(struct admin_req *r)
{
	struct metrics_snapshot *snap = xcalloc(1, sizeof(*snap));
	char *path = NULL, *err = NULL;
	int rc = 0;

	buf_free(&r->text);
	buf_init(&r->text, METRICS_MAX);
	if (asprintf(&path, "%s/metrics", r->cfg->state_dir) < 0)
		fatal("out of memory");
	bool have = metrics_read(path, snap, &err) == 0;
	bool up = false;
	if (have) {
		pid_t pid = (pid_t)snap->header.pid;
		up = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
	} else {
		log_debug(0, "admin", "metrics-unavailable error=\"%s\"", err);
	}
	free(err);
	free(path);
	rc |= metrics_render_gauge(&r->text, "tern_ternd_up",
				   "1 if ternd's metrics area is present and its process runs.",
				   up ? 1 : 0);
	if (have)
		rc |= metrics_render(snap, &r->text);
	free(snap);

	char *serr = NULL;
	if (admin_store_acquire(r->cfg, &serr) == 0) {
		uint64_t rcpts = 0, msgs = 0, file = 0, map = 0, used = 0;
		time_t oldest = 0;
		if (queue_stats(&rcpts, &msgs, &oldest) == STORE_OK) {
			time_t now = time(NULL);
			rc |= metrics_render_gauge(&r->text, "tern_queue_messages",
						   "Messages in the outbound queue.", (double)msgs);
			rc |= metrics_render_gauge(&r->text, "tern_queue_recipients",
						   "Recipients waiting in the outbound queue.",
						   (double)rcpts);
			rc |= metrics_render_gauge(
			    &r->text, "tern_queue_oldest_age_seconds",
			    "Age of the oldest queued message (0 when the queue is empty).",
			    oldest > 0 && now > oldest ? (double)(now - oldest) : 0);
		}
		if (store_env_sizes(&file, &map, &used) == STORE_OK) {
			rc |= metrics_render_gauge(&r->text, "tern_store_file_bytes",
						   "Size of the LMDB data file.", (double)file);
			rc |= metrics_render_gauge(&r->text, "tern_store_map_bytes",
						   "LMDB map size.", (double)map);
			rc |= metrics_render_gauge(&r->text, "tern_store_used_bytes",
						   "LMDB pages in use, in bytes.", (double)used);
		}
		admin_store_release();
	} else {
		log_debug(0, "admin", "metrics-store-unavailable error=\"%s\"", serr);
	}
	free(serr);
	if (rc != 0) {
		admin_reply_error(r, 500, "internal", NULL, "metrics output too large");
		return;
	}
	r->status = 200;
	/* The Prometheus text exposition format, version 0.0.4. */
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	r->summary = "ok";
}
