/*
 * control.c - ternd's control socket (control.h): the server thread and
 * the client call.
 *
 * The server is deliberately simple: one thread, one connection at a
 * time, blocking handlers. Its users are tern-admind and scripts doing a
 * handful of calls per admin action; a peer that stalls is dropped after
 * CONTROL_IDLE_MS so it cannot hold the socket. Failures are answered in
 * the protocol ("ok": false) whenever the request could be read; a
 * connection is closed on anything that is not a line of JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/compat.h"
#include "core/control.h"
#include "core/log.h"
#include "core/version.h"

#define CONTROL_MAX_CMDS 64
#define CONTROL_IDLE_MS 10000

struct control_cmd {
	const char *name;
	control_handler_fn *fn;
	void *ctx;
};

static struct {
	struct control_cmd cmds[CONTROL_MAX_CMDS];
	size_t ncmds;
	int listen_fd;
	int stop_pipe[2];
	char *path;
	pthread_t thread;
	bool running;
} C = {.listen_fd = -1, .stop_pipe = {-1, -1}};

void
control_register(const char *cmd, control_handler_fn *fn, void *ctx)
{
	for (size_t i = 0; i < C.ncmds; i++)
		if (strcmp(C.cmds[i].name, cmd) == 0)
			fatal("control: command %s registered twice", cmd);
	if (C.ncmds == CONTROL_MAX_CMDS)
		fatal("control: more than %d commands", CONTROL_MAX_CMDS);
	C.cmds[C.ncmds++] = (struct control_cmd){cmd, fn, ctx};
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills a sockaddr_un for state_dir/control; -1 if the path is too long
 * for sun_path (a state directory that deep is a config error). */
static int
socket_addr(const char *state_dir, struct sockaddr_un *sun, char **path_r)
{
	char *path;

	if (asprintf(&path, "%s/%s", state_dir, CONTROL_SOCKET_NAME) < 0)
		return -1;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		free(path);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path) + 1);
	*path_r = path;
	return 0;
}

/* Waits for fd to be ready for events, up to the deadline. 1 ready, 0
 * timed out (or stop asked, for the server), -1 error. */
static int
wait_fd(int fd, short events, long long deadline, int stop_fd)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = events},
				      {.fd = stop_fd, .events = POLLIN}};
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		int n = poll(p, stop_fd >= 0 ? 2 : 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (stop_fd >= 0 && p[1].revents != 0)
			return 0;
		if (n > 0)
			return 1;
	}
}

/* Reads one line (without its "\n") into *line (reset first). 1 got a
 * line, 0 peer closed before a full line or timed out, -1 error or a
 * line longer than CONTROL_LINE_MAX. Bytes after the newline stay in
 * *pending for the next call. */
static int
read_line(int fd, struct buf *pending, struct buf *line, long long deadline, int stop_fd)
{
	for (;;) {
		char *nl = pending->len > 0 ? memchr(pending->data, '\n', pending->len) : NULL;
		if (nl != NULL) {
			size_t n = (size_t)(nl - pending->data);
			buf_reset(line);
			if (buf_append(line, pending->data, n) < 0)
				return -1;
			buf_consume(pending, n + 1);
			return 1;
		}
		if (pending->len > CONTROL_LINE_MAX)
			return -1;
		int w = wait_fd(fd, POLLIN, deadline, stop_fd);
		if (w <= 0)
			return w;
		char tmp[16384];
		ssize_t r = read(fd, tmp, sizeof(tmp));
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (r == 0)
			return 0;
		if (buf_append(pending, tmp, (size_t)r) < 0)
			return -1;
	}
}

static int
write_all(int fd, const char *p, size_t n, long long deadline, int stop_fd)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			if (wait_fd(fd, POLLOUT, deadline, stop_fd) <= 0)
				return -1;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static json_t *
error_answer(const char *code, const char *msg)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", msg);
}

/* Runs one request line; returns the answer (never NULL). */
static json_t *
dispatch(const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, 0, &jerr);
	if (req == NULL || !json_is_object(req)) {
		json_decref(req);
		return error_answer(CONTROL_E_BAD_REQUEST, "the request is not a JSON object");
	}
	const char *name = json_string_value(json_object_get(req, "cmd"));
	if (name == NULL) {
		json_decref(req);
		return error_answer(CONTROL_E_BAD_REQUEST, "the request has no \"cmd\" string");
	}
	json_t *ans = NULL;
	if (strcmp(name, "ping") == 0) {
		ans = json_pack("{s:b, s:i, s:s}", "ok", 1, "pid", (json_int_t)getpid(), "version",
				TERN_VERSION);
		json_decref(req);
		return ans;
	}
	for (size_t i = 0; i < C.ncmds; i++) {
		if (strcmp(C.cmds[i].name, name) != 0)
			continue;
		const char *code = CONTROL_E_ERROR;
		char *msg = NULL;
		ans = C.cmds[i].fn(C.cmds[i].ctx, req, &code, &msg);
		if (msg != NULL) {
			json_decref(ans);
			ans = error_answer(code, msg);
			log_info(0, "control", "refused cmd=%s code=%s error=\"%s\"", name, code,
				 msg);
			free(msg);
		} else {
			if (ans == NULL)
				ans = json_object();
			json_object_set_new(ans, "ok", json_true());
			log_info(0, "control", "done cmd=%s", name);
		}
		json_decref(req);
		return ans;
	}
	char *msg = NULL;
	if (asprintf(&msg, "unknown command \"%s\"", name) < 0)
		msg = NULL;
	ans = error_answer(CONTROL_E_BAD_REQUEST, msg != NULL ? msg : "unknown command");
	free(msg);
	json_decref(req);
	return ans;
}

/* The peer must be ternd's own user or root: the socket's mode already
 * says so, this holds even if an admin loosens the directory's modes. */
static bool
peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void
serve_conn(int fd)
{
	struct buf pending, line;

	buf_init(&pending, CONTROL_LINE_MAX + 16384);
	buf_init(&line, CONTROL_LINE_MAX);

	if (!peer_allowed(fd)) {
		log_warn(0, "control", "refused peer: not ternd's user or root");
		return;
	}
	for (;;) {
		int r = read_line(fd, &pending, &line, now_ms() + CONTROL_IDLE_MS, C.stop_pipe[0]);
		if (r <= 0)
			break;
		json_t *ans = dispatch(line.data, line.len);
		char *text = json_dumps(ans, JSON_COMPACT);
		json_decref(ans);
		if (text == NULL)
			break;
		size_t n = strlen(text);
		int w = write_all(fd, text, n, now_ms() + CONTROL_IDLE_MS, C.stop_pipe[0]);
		if (w == 0)
			w = write_all(fd, "\n", 1, now_ms() + CONTROL_IDLE_MS, C.stop_pipe[0]);
		free(text);
		if (w < 0)
			break;
	}
	buf_free(&pending);
	buf_free(&line);
}

static void *
control_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = C.listen_fd, .events = POLLIN},
				      {.fd = C.stop_pipe[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn(0, "control", "poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents != 0)
			break;
		int fd = accept4(C.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			continue;
		serve_conn(fd);
		close(fd);
	}
	return NULL;
}

int
control_listen(const struct config *cfg, char **error_r)
{
	struct sockaddr_un sun;
	char *path;

	if (socket_addr(cfg->state_dir, &sun, &path) < 0) {
		xasprintf(error_r, "control socket: %s/%s is too long for a unix socket path",
			  cfg->state_dir, CONTROL_SOCKET_NAME);
		return -1;
	}
	/* A socket file is left behind by a ternd that was killed; one that
	 * still answers belongs to a ternd running on this state directory. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		xasprintf(error_r,
			  "control socket: %s answers: another ternd runs on this state_dir", path);
		free(path);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	(void)unlink(path);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		xasprintf(error_r, "control socket: %s", strerror(errno));
		free(path);
		return -1;
	}
	/* Created 0600 from the start: no window in which others may connect. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		xasprintf(error_r, "control socket: %s: %s", path, strerror(errno));
		close(fd);
		free(path);
		return -1;
	}
	if (pipe2(C.stop_pipe, O_CLOEXEC) < 0) {
		xasprintf(error_r, "control socket: pipe: %s", strerror(errno));
		close(fd);
		(void)unlink(path);
		free(path);
		return -1;
	}
	C.listen_fd = fd;
	C.path = path;
	log_info(0, "control", "listen path=%s", path);
	return 0;
}

int
control_start(const struct config *cfg, char **error_r)
{
	if (C.listen_fd < 0 && control_listen(cfg, error_r) < 0)
		return -1;
	if (pthread_create(&C.thread, NULL, control_thread, NULL) != 0)
		fatal("control: cannot start its thread");
	C.running = true;
	return 0;
}

void
control_stop(void)
{
	if (C.running) {
		ssize_t w = write(C.stop_pipe[1], "x", 1);
		(void)w;
		pthread_join(C.thread, NULL);
		C.running = false;
	}
	if (C.listen_fd >= 0)
		close(C.listen_fd);
	for (int i = 0; i < 2; i++)
		if (C.stop_pipe[i] >= 0)
			close(C.stop_pipe[i]);
	if (C.path != NULL)
		(void)unlink(C.path);
	free(C.path);
	C.path = NULL;
	C.listen_fd = C.stop_pipe[0] = C.stop_pipe[1] = -1;
	C.ncmds = 0;
}

/* ---- client ---- */

int
control_call(const char *state_dir, json_t *req, unsigned timeout_ms, json_t **reply_r,
	     char **error_r)
{
	struct sockaddr_un sun;
	char *path = NULL;
	long long deadline = now_ms() + timeout_ms;
	int rc = CONTROL_FAILED;

	if (reply_r != NULL)
		*reply_r = NULL;
	*error_r = NULL;
	if (socket_addr(state_dir, &sun, &path) < 0) {
		xasprintf(error_r, "%s/%s is too long for a unix socket path", state_dir,
			  CONTROL_SOCKET_NAME);
		return CONTROL_FAILED;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		xasprintf(error_r, "socket: %s", strerror(errno));
		free(path);
		return CONTROL_FAILED;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED) {
			xasprintf(error_r, "ternd is not running (nothing answers on %s)", path);
			rc = CONTROL_NOT_RUNNING;
		} else {
			xasprintf(error_r, "cannot connect to %s: %s", path, strerror(e));
		}
		goto out;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	char *text = json_dumps(req, JSON_COMPACT);
	if (text == NULL) {
		xasprintf(error_r, "cannot encode the request");
		goto out;
	}
	int w = write_all(fd, text, strlen(text), deadline, -1);
	free(text);
	if (w == 0)
		w = write_all(fd, "\n", 1, deadline, -1);
	if (w < 0) {
		xasprintf(error_r, "writing to %s: %s", path,
			  errno != 0 ? strerror(errno) : "timed out");
		goto out;
	}
	struct buf pending, line;

	buf_init(&pending, CONTROL_LINE_MAX + 16384);
	buf_init(&line, CONTROL_LINE_MAX);
	int r = read_line(fd, &pending, &line, deadline, -1);
	if (r <= 0) {
		xasprintf(error_r, "no answer from ternd on %s (%s)", path,
			  r == 0 ? "closed or timed out" : "read error");
		buf_free(&pending);
		buf_free(&line);
		goto out;
	}
	json_error_t jerr;
	json_t *ans = json_loadb(line.data, line.len, 0, &jerr);
	buf_free(&pending);
	buf_free(&line);
	if (ans == NULL || !json_is_object(ans)) {
		json_decref(ans);
		xasprintf(error_r, "malformed answer from ternd on %s", path);
		goto out;
	}
	if (json_is_true(json_object_get(ans, "ok"))) {
		rc = CONTROL_OK;
	} else {
		const char *e = json_string_value(json_object_get(ans, "error"));
		xasprintf(error_r, "%s", e != NULL ? e : "refused without a reason");
		rc = CONTROL_REFUSED;
	}
	if (reply_r != NULL)
		*reply_r = ans;
	else
		json_decref(ans);
out:
	close(fd);
	free(path);
	return rc;
}
