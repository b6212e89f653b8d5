/*
 * ternctl_env.c - what ternctl takes from its surroundings: the admin
 * listener and TLS settings from the config file, and secrets typed on
 * the terminal without echo.
 *
 * The config file is read for three keys only ([admin] listen and
 * plaintext_auth, [tls] cert) with inih, not with config_load(): the full
 * loader also reads the service's LDAP secrets, which an admin's shell
 * must not need, and tern-admind has already checked the file.
 * How it fails: an unreadable file, no [admin] listen, no TLS without
 * plaintext_auth or a non-loopback plain server give -1 with the reason
 * printed (the caller exits 2); no terminal gives a NULL secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "admin/ternctl.h"
#include "core/compat.h"
#include "core/config.h"

#define DEFAULT_PORT 8443
#define SECRET_MAX 4096

struct cfg_keys {
	char *listen;
	char *tls_cert;
	bool plaintext_auth;
};

static int
cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_keys *k = user;
	if (strcmp(section, "admin") == 0 && strcmp(name, "listen") == 0) {
		free(k->listen);
		k->listen = xstrdup(value);
	} else if (strcmp(section, "admin") == 0 && strcmp(name, "plaintext_auth") == 0) {
		k->plaintext_auth = strcasecmp(value, "yes") == 0 ||
				    strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
				    strcasecmp(value, "on") == 0;
	} else if (strcmp(section, "tls") == 0 && strcmp(name, "cert") == 0) {
		free(k->tls_cert);
		k->tls_cert = xstrdup(value);
	}
	return 1; /* other keys are tern-admind's business */
}

static bool
is_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
	       strcmp(host, "localhost") == 0;
}

/* Fills t from the config file and the options. */
int
ternctl_target_from_config(const struct ternctl_conn_opts *o, struct ternctl_target *t)
{
	struct cfg_keys k = {0};
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 8192 + 3;
	int r = ini_parse(o->config, cfg_handler, &k);
	if (r < 0) {
		ternctl_err("cannot read the config file %s: %s (give it with -c FILE)", o->config,
			    r == -1 ? strerror(errno) : "out of memory");
		return -1;
	}
	if (k.listen == NULL && o->server == NULL) {
		ternctl_err(
		    "%s has no [admin] listen: tern-admind is not configured (or use --server)",
		    o->config);
		goto fail;
	}
	/* The first listen address; a wildcard means "this host". */
	char *first = xstrdup(o->server != NULL ? o->server : k.listen);
	first[strcspn(first, ",")] = '\0';
	char *s = first;
	while (*s == ' ' || *s == '\t')
		s++;
	s[strcspn(s, " \t")] = '\0';
	if (config_parse_hostport(s, DEFAULT_PORT, &t->host, &t->port) < 0) {
		ternctl_err("bad admin address \"%s\" (expected host:port)", s);
		free(first);
		goto fail;
	}
	free(first);
	if (strcmp(t->host, "0.0.0.0") == 0 || t->host[0] == '\0') {
		free(t->host);
		t->host = xstrdup("127.0.0.1");
	} else if (strcmp(t->host, "::") == 0) {
		free(t->host);
		t->host = xstrdup("::1");
	}
	t->timeout = o->timeout;
	t->insecure = o->insecure;
	t->tls_name = o->tls_name != NULL ? xstrdup(o->tls_name) : NULL;
	if (k.tls_cert != NULL && k.tls_cert[0] != '\0') {
		t->tls = true;
		if (o->cacert != NULL) {
			t->cafile = xstrdup(o->cacert);
		} else {
			/* The server's own certificate is the trust anchor. */
			t->cafile = xstrdup(k.tls_cert);
			t->pin = true;
		}
	} else {
		if (!k.plaintext_auth) {
			ternctl_err(
			    "%s: [admin] has no TLS ([tls] cert) and plaintext_auth is not yes: "
			    "tern-admind would not start like this",
			    o->config);
			goto fail;
		}
		if (!is_loopback(t->host)) {
			ternctl_err(
			    "refusing to send a password in clear text to %s (not loopback)",
			    t->host);
			goto fail;
		}
	}
	free(k.listen);
	free(k.tls_cert);
	return 0;
fail:
	free(k.listen);
	free(k.tls_cert);
	return -1;
}

void
ternctl_target_free(struct ternctl_target *t)
{
	free(t->host);
	free(t->cafile);
	free(t->tls_name);
}

/* ---- secrets from the terminal ---- */

static int tty_fd = -1;
static struct termios tty_saved;

static void
restore_tty(int sig)
{
	tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	if (write(tty_fd, "\n", 1) < 0) {
		/* nothing to do: we are leaving */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Asks on /dev/tty without echo. A malloc'd secret, or NULL. */
char *
ternctl_ask_secret(const char *prompt)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	struct termios t;
	if (tcgetattr(fd, &t) < 0) {
		close(fd);
		return NULL;
	}
	tty_fd = fd;
	tty_saved = t;
	struct sigaction sa = {.sa_handler = restore_tty}, old_int, old_term;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_lflag |= ICANON;
	tcsetattr(fd, TCSAFLUSH, &t);
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* the read below fails too */
	}
	struct buf b;
	buf_init(&b, SECRET_MAX);
	bool ok = false;
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (c == '\n' || c == '\r') {
			ok = true;
			break;
		}
		if (buf_putc(&b, c) < 0)
			break;
	}
	tcsetattr(fd, TCSAFLUSH, &tty_saved);
	if (write(fd, "\n", 1) < 0) {
		/* cosmetic */
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	close(fd);
	tty_fd = -1;
	char *s = ok ? xstrdup(buf_cstr(&b)) : NULL;
	buf_wipe(&b);
	return s;
}
