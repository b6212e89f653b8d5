/*
 * ternctl.c - main of ternctl, the command line of tern-admind:
 *   ternctl -c FILE --admin NAME NOUN VERB [ARGS] [--OPTION VALUE...]
 * Parses the line against the command table (ternctl_cmds.c), finds the
 * admin listener in the config file, gets the admin's password
 * (TERN_ADMIN_PASSWORD or a prompt without echo), makes the HTTP call,
 * follows long jobs with progress on stderr and prints the reply.
 * The config file and the terminal are ternctl_env.c's business.
 * How it fails: every failure is one line on stderr and an exit status
 * from enum ternctl_exit (documented in --help and docs/admin-guide.md).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/ternctl.h"
#include "core/base64.h"
#include "core/compat.h"
#include "core/config.h"
#include "core/version.h"

#define DEFAULT_CONFIG "/etc/tern/tern.conf"
#define SECRET_MAX 4096

struct opts {
	const char *config;
	const char *admin;
	const char *token;
	const char *server;
	const char *cacert;
	const char *tls_name;
	bool insecure;
	unsigned timeout;
	bool json;
	bool progress;
	bool no_wait;
	bool help;
	bool version;
};

/* What the command line asked for, once parsed. */
struct call {
	const struct ternctl_cmd *cmd;
	const char *values_args[TERNCTL_MAX_ARGS];
	const char *values_opts[TERNCTL_MAX_OPTS];
};

static char *password; /* owned; wiped at exit */

static void
wipe_password(void)
{
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
		password = NULL;
	}
}

/* The admin's password: the environment, else the terminal. */
static const char *
admin_password(const char *admin)
{
	if (password != NULL)
		return password;
	const char *env = getenv("TERN_ADMIN_PASSWORD");
	if (env != NULL && env[0] != '\0') {
		password = xstrdup(env);
		return password;
	}
	char *prompt = xstrfmt("Password for %s: ", admin);
	password = ternctl_ask_secret(prompt);
	free(prompt);
	if (password == NULL)
		ternctl_err("no password: set TERN_ADMIN_PASSWORD or run ternctl on a terminal");
	else if (password[0] == '\0') {
		ternctl_err("empty password");
		wipe_password();
	}
	return password;
}

/* ---- building the request ---- */

static const char *
field_of(const struct ternctl_param *p)
{
	return p->field != NULL ? p->field : p->name;
}

/* Puts one value into body (or query); -1 on a bad value (printed). */
static int
put_value(const struct ternctl_param *p, const char *value, json_t *body, struct buf *query,
	  char **secret_r)
{
	json_t *v = NULL;
	const char *field = field_of(p);

	switch (p->kind) {
	case TK_QUERY:
		buf_putc(query, query->len == 0 ? '?' : '&');
		ternctl_url_escape(query, field);
		buf_putc(query, '=');
		ternctl_url_escape(query, value);
		return 0;
	case TK_STR:
		v = json_string(value);
		break;
	case TK_NULLSTR:
		v = strcmp(value, "none") == 0 ? json_null() : json_string(value);
		break;
	case TK_SECRET:
		if (strcmp(value, "-") == 0) {
			char *prompt = xstrfmt("%s: ", p->name);
			char *s = ternctl_ask_secret(prompt);
			free(prompt);
			if (s == NULL || s[0] == '\0') {
				ternctl_err("--%s -: no terminal to ask on, or an empty answer",
					    p->name);
				free(s);
				return -1;
			}
			*secret_r = s;
			value = s;
		}
		v = json_string(value);
		break;
	case TK_INT:
	case TK_SIZE: {
		if (p->kind == TK_SIZE && strcmp(value, "none") == 0) {
			v = json_null();
			break;
		}
		uint64_t n;
		char *end;
		errno = 0;
		if (p->kind == TK_SIZE) {
			if (config_parse_size(value, &n) < 0)
				goto bad_number;
		} else {
			n = strtoull(value, &end, 10);
			if (errno != 0 || *end != '\0' || value[0] < '0' || value[0] > '9')
				goto bad_number;
		}
		if (n > (uint64_t)INT64_MAX)
			goto bad_number;
		v = json_integer((json_int_t)n);
		break;
	bad_number:
		ternctl_err("%s: \"%s\" is not a %s", p->name, value,
			    p->kind == TK_SIZE
				? "size (like 500M, 2G or a number of bytes; or none)"
				: "non-negative number");
		return -1;
	}
	case TK_LIST: {
		v = json_array();
		char *copy = xstrdup(value), *save = NULL;
		for (char *s = strtok_r(copy, ",", &save); s != NULL;
		     s = strtok_r(NULL, ",", &save)) {
			while (*s == ' ')
				s++;
			size_t n = strlen(s);
			while (n > 0 && s[n - 1] == ' ')
				s[--n] = '\0';
			if (n > 0)
				json_array_append_new(v, json_string(s));
		}
		free(copy);
		break;
	}
	case TK_TRUE:
		v = json_true();
		break;
	case TK_FALSE:
		v = json_false();
		break;
	}
	if (v == NULL) {
		ternctl_err("%s: the value is not valid UTF-8", p->name);
		return -1;
	}
	json_object_set_new(body, field, v);
	return 0;
}

/* The request path (with query) and the JSON body (NULL: none) for c.
 * secrets collects prompted values to wipe later. -1 on a bad value. */
static int
build_request(const struct call *c, struct buf *path, char **body_r, char **secrets)
{
	const struct ternctl_cmd *cmd = c->cmd;
	json_t *body = json_object();
	struct buf query;
	buf_init(&query, 65536);
	int ret = -1;
	size_t nsecrets = 0;

	/* Path: literal text, {name} replaced by the escaped argument. */
	for (const char *p = cmd->path; *p != '\0';) {
		if (*p != '{') {
			buf_putc(path, *p++);
			continue;
		}
		const char *close = strchr(p, '}');
		size_t n = (size_t)(close - p - 1);
		const char *value = NULL;
		for (size_t i = 0; i < TERNCTL_MAX_ARGS && cmd->args[i].name != NULL; i++)
			if (strlen(cmd->args[i].name) == n &&
			    strncmp(cmd->args[i].name, p + 1, n) == 0)
				value = c->values_args[i];
		if (value == NULL)
			value = "";
		if (ternctl_url_escape(path, value) < 0) {
			ternctl_err("an argument is too long");
			goto out;
		}
		p = close + 1;
	}
	for (size_t i = 0; i < TERNCTL_MAX_ARGS && cmd->args[i].name != NULL; i++) {
		char pat[64];
		snprintf(pat, sizeof(pat), "{%s}", cmd->args[i].name);
		if (strstr(cmd->path, pat) != NULL)
			continue;
		if (put_value(&cmd->args[i], c->values_args[i], body, &query, &secrets[nsecrets]) <
		    0)
			goto out;
		if (secrets[nsecrets] != NULL)
			nsecrets++;
	}
	for (size_t i = 0; i < TERNCTL_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (c->values_opts[i] == NULL)
			continue;
		if (put_value(&cmd->opts[i], c->values_opts[i], body, &query, &secrets[nsecrets]) <
		    0)
			goto out;
		if (secrets[nsecrets] != NULL)
			nsecrets++;
	}
	if (buf_append(path, query.data != NULL ? query.data : "", query.len) < 0) {
		ternctl_err("the query is too long");
		goto out;
	}
	*body_r = NULL;
	if (json_object_size(body) > 0 || (cmd->flags & TC_BODY))
		*body_r = json_dumps(body, JSON_COMPACT);
	ret = 0;
out:
	buf_free(&query);
	json_decref(body);
	return ret;
}

/* ---- replies ---- */

static int
exit_for_status(int status)
{
	if (status >= 200 && status < 300)
		return TERNCTL_OK;
	if (status == 401 || status == 403)
		return TERNCTL_AUTH;
	if (status == 404)
		return TERNCTL_NOT_FOUND;
	if (status >= 400 && status < 500)
		return TERNCTL_REFUSED;
	return TERNCTL_UNREACHABLE;
}

static bool
is_json(const struct ternctl_reply *r)
{
	return strncmp(r->content_type, "application/json", 16) == 0;
}

/* Prints the server's refusal: message, field and code. */
static int
report_error(const char *what, const struct ternctl_reply *r, bool json_out)
{
	json_error_t jerr;
	json_t *j = is_json(r) ? json_loadb(r->body.data, r->body.len, 0, &jerr) : NULL;
	json_t *e = json_object_get(j, "error");
	if (json_is_object(e)) {
		const char *msg = json_string_value(json_object_get(e, "message"));
		const char *field = json_string_value(json_object_get(e, "field"));
		const char *code = json_string_value(json_object_get(e, "code"));
		fprintf(stderr, "ternctl: %s: %s", what, msg != NULL ? msg : "refused");
		if (field != NULL)
			fprintf(stderr, " (field: %s)", field);
		fprintf(stderr, " [HTTP %d%s%s]\n", r->status, code != NULL ? " " : "",
			code != NULL ? code : "");
	} else {
		/* 413 from libevent and proxies answer in text. */
		size_t n = strcspn(buf_cstr(&r->body), "\r\n");
		fprintf(stderr, "ternctl: %s: HTTP %d%s%.*s\n", what, r->status, n > 0 ? ": " : "",
			(int)(n > 200 ? 200 : n), buf_cstr(&r->body));
	}
	if (r->status == 401)
		fprintf(stderr, "ternctl: check --admin and the password (or the token)\n");
	else if (r->status == 403)
		fprintf(stderr, "ternctl: the account is not in [admin] admin_group\n");
	if (json_out && j != NULL)
		printf("%s\n", buf_cstr(&r->body));
	json_decref(j);
	return exit_for_status(r->status);
}

static json_t *
parse_json(const struct ternctl_reply *r, const char *what)
{
	json_error_t jerr;
	json_t *j = json_loadb(r->body.data, r->body.len, 0, &jerr);
	if (j == NULL)
		ternctl_err("%s: tern-admind sent bad JSON: %s", what, jerr.text);
	return j;
}

static void
print_json_text(const struct ternctl_reply *r)
{
	fwrite(buf_cstr(&r->body), 1, r->body.len, stdout);
	if (r->body.len == 0 || r->body.data[r->body.len - 1] != '\n')
		putchar('\n');
}

static void
print_result(const struct ternctl_cmd *cmd, json_t *j)
{
	json_t *rows = cmd->list_key != NULL ? json_object_get(j, cmd->list_key) : NULL;
	if (json_is_array(rows)) {
		ternctl_print_table(stdout, rows, cmd->columns);
		const char *next = json_string_value(json_object_get(j, "next_cursor"));
		if (next != NULL)
			fprintf(stderr, "ternctl: more with --cursor %s\n", next);
		return;
	}
	ternctl_print_object(stdout, j);
}

/* ---- the call, and following a job ---- */

struct session {
	const struct opts *o;
	struct ternctl_target t;
	char *auth;	  /* the Authorization value, or NULL; wiped */
	const char *what; /* "user add", for messages */
};

static int
call(struct session *s, const char *method, const char *path, const char *body,
     struct ternctl_reply *r)
{
	char *e = NULL;
	if (ternctl_http_request(&s->t, method, path, s->auth, body, r, &e) < 0) {
		ternctl_err("%s: %s", s->what, e);
		free(e);
		return -1;
	}
	return 0;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Polls the job until it is no longer running. job is the 202 body
 * (consumed). */
static int
follow_job(struct session *s, json_t *job)
{
	const char *id0 = json_string_value(json_object_get(job, "id"));
	if (id0 == NULL) {
		ternctl_err("%s: the job has no id", s->what);
		json_decref(job);
		return TERNCTL_UNREACHABLE;
	}
	char *id = xstrdup(id0);
	bool tty = isatty(STDERR_FILENO);
	bool show = tty || s->o->progress;
	struct buf last, path;
	buf_init(&last, 4096);
	buf_init(&path, 4096);
	buf_append_str(&path, "/api/v1/jobs/");
	ternctl_url_escape(&path, id);
	unsigned delay = 100;
	int rc;

	for (;;) {
		const char *state = json_string_value(json_object_get(job, "state"));
		struct buf line;
		buf_init(&line, 4096);
		ternctl_job_progress_text(&line, job);
		if (show && strcmp(buf_cstr(&line), buf_cstr(&last)) != 0) {
			if (tty)
				fprintf(stderr, "\r%s\033[K", buf_cstr(&line));
			else
				fprintf(stderr, "%s\n", buf_cstr(&line));
			buf_reset(&last);
			buf_append_str(&last, buf_cstr(&line));
		}
		buf_free(&line);
		if (state == NULL || strcmp(state, "running") != 0)
			break;
		sleep_ms(delay);
		if (delay < 1000)
			delay *= 2;
		struct ternctl_reply r;
		if (call(s, "GET", path.data, NULL, &r) < 0) {
			rc = TERNCTL_UNREACHABLE;
			goto out_nojob;
		}
		if (r.status != 200) {
			if (show && tty)
				fputc('\n', stderr);
			rc = report_error(s->what, &r, s->o->json);
			ternctl_reply_free(&r);
			goto out_nojob;
		}
		json_t *next = parse_json(&r, s->what);
		ternctl_reply_free(&r);
		if (next == NULL) {
			rc = TERNCTL_UNREACHABLE;
			goto out_nojob;
		}
		json_decref(job);
		job = next;
	}
	if (show && tty)
		fputc('\n', stderr);
	const char *state = json_string_value(json_object_get(job, "state"));
	if (s->o->json) {
		char *text = json_dumps(job, JSON_INDENT(2));
		printf("%s\n", text != NULL ? text : "{}");
		free(text);
	}
	if (state != NULL && strcmp(state, "done") == 0) {
		rc = TERNCTL_OK;
		if (!s->o->json) {
			json_t *result = json_object_get(job, "result");
			ternctl_print_object(stdout, json_is_object(result) ? result : job);
		}
	} else {
		const char *e = json_string_value(json_object_get(job, "error"));
		const char *kind = json_string_value(json_object_get(job, "kind"));
		ternctl_err("%s job %s failed: %s", kind != NULL ? kind : "the", id,
			    e != NULL ? e : (state != NULL ? state : "no state"));
		rc = TERNCTL_JOB_FAILED;
	}
	json_decref(job);
out_nojob:
	free(id);
	buf_free(&last);
	buf_free(&path);
	return rc;
}

static int
run(struct session *s, const struct call *c)
{
	const struct ternctl_cmd *cmd = c->cmd;
	struct buf path;
	char *body = NULL;
	char *secrets[TERNCTL_MAX_ARGS + TERNCTL_MAX_OPTS] = {0};
	int rc;

	buf_init(&path, 65536);
	if (build_request(c, &path, &body, secrets) < 0) {
		rc = TERNCTL_USAGE;
		goto out;
	}
	if (cmd->flags & TC_LOGIN) {
		json_t *j = json_pack("{s:s, s:s}", "login", s->o->admin, "password", password);
		free(body);
		body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (body == NULL) {
			ternctl_err("login: the login or password is not valid UTF-8");
			rc = TERNCTL_USAGE;
			goto out;
		}
	}
	struct ternctl_reply r;
	if (call(s, cmd->method, path.data, body, &r) < 0) {
		rc = TERNCTL_UNREACHABLE;
		goto out;
	}
	bool health_report = (cmd->flags & TC_HEALTH) && r.status == 503 && is_json(&r);
	if (!(r.status >= 200 && r.status < 300) && !health_report) {
		rc = report_error(s->what, &r, s->o->json);
		ternctl_reply_free(&r);
		goto out;
	}
	rc = health_report ? TERNCTL_REFUSED : TERNCTL_OK;
	if (cmd->flags & TC_TEXT) {
		fwrite(buf_cstr(&r.body), 1, r.body.len, stdout);
		ternctl_reply_free(&r);
		goto out;
	}
	json_t *j = parse_json(&r, s->what);
	if (j == NULL) {
		ternctl_reply_free(&r);
		rc = TERNCTL_UNREACHABLE;
		goto out;
	}
	bool is_job = (cmd->flags & (TC_JOB | TC_WAIT)) &&
		      json_is_string(json_object_get(j, "id")) &&
		      json_is_string(json_object_get(j, "state"));
	if (is_job && !s->o->no_wait) {
		ternctl_reply_free(&r);
		rc = follow_job(s, j);
		goto out;
	}
	if (s->o->json)
		print_json_text(&r);
	else if (is_job)
		printf("%s\n", json_string_value(json_object_get(j, "id")));
	else if (cmd->flags & TC_LOGIN)
		printf("%s\n", json_string_value(json_object_get(j, "token")) ?: "");
	else
		print_result(cmd, j);
	/* The login reply holds a token. */
	buf_wipe(&r.body);
	ternctl_reply_free(&r);
	json_decref(j);
out:
	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++)
		if (secrets[i] != NULL) {
			explicit_bzero(secrets[i], strlen(secrets[i]));
			free(secrets[i]);
		}
	if (body != NULL) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	buf_free(&path);
	return rc;
}

/* ---- the command line ---- */

enum gopt_kind { G_VALUE, G_FLAG };

/* Recognises a global option at argv[*i] (with "=value" or the next
 * word); 1 if it was one, 0 if not, -1 on a missing value. */
static int
global_option(struct opts *o, int argc, char **argv, int *i)
{
	static const struct {
		const char *name, *alt;
		enum gopt_kind kind;
	} g[] = {
	    {"--config", "-c", G_VALUE},  {"--admin", NULL, G_VALUE},
	    {"--token", NULL, G_VALUE},	  {"--server", NULL, G_VALUE},
	    {"--cacert", NULL, G_VALUE},  {"--tls-name", NULL, G_VALUE},
	    {"--timeout", NULL, G_VALUE}, {"--insecure", NULL, G_FLAG},
	    {"--json", NULL, G_FLAG},	  {"--progress", NULL, G_FLAG},
	    {"--no-wait", NULL, G_FLAG},  {"--help", "-h", G_FLAG},
	    {"--version", "-V", G_FLAG},
	};
	const char *a = argv[*i];
	for (size_t k = 0; k < ARRAY_SIZE(g); k++) {
		size_t n = strlen(g[k].name);
		const char *value = NULL;
		if (strcmp(a, g[k].name) == 0 || (g[k].alt != NULL && strcmp(a, g[k].alt) == 0)) {
			if (g[k].kind == G_VALUE) {
				if (*i + 1 >= argc) {
					ternctl_err("%s needs a value", a);
					return -1;
				}
				value = argv[++*i];
			}
		} else if (g[k].kind == G_VALUE && strncmp(a, g[k].name, n) == 0 && a[n] == '=') {
			value = a + n + 1;
		} else {
			continue;
		}
		switch (k) {
		case 0:
			o->config = value;
			break;
		case 1:
			o->admin = value;
			break;
		case 2:
			o->token = value;
			break;
		case 3:
			o->server = value;
			break;
		case 4:
			o->cacert = value;
			break;
		case 5:
			o->tls_name = value;
			break;
		case 6: {
			char *end;
			unsigned long t = strtoul(value, &end, 10);
			if (*end != '\0' || t == 0 || t > 86400 || value[0] == '-') {
				ternctl_err(
				    "--timeout: \"%s\" is not a number of seconds (1..86400)",
				    value);
				return -1;
			}
			o->timeout = (unsigned)t;
			break;
		}
		case 7:
			o->insecure = true;
			break;
		case 8:
			o->json = true;
			break;
		case 9:
			o->progress = true;
			break;
		case 10:
			o->no_wait = true;
			break;
		case 11:
			o->help = true;
			break;
		case 12:
			o->version = true;
			break;
		}
		return 1;
	}
	return 0;
}

/* A command option at argv[*i]; 1 if it was one, 0 if not, -1 on error. */
static int
command_option(struct call *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strncmp(a, "--", 2) != 0)
		return 0;
	for (size_t k = 0; k < TERNCTL_MAX_OPTS && c->cmd->opts[k].name != NULL; k++) {
		const struct ternctl_param *p = &c->cmd->opts[k];
		size_t n = strlen(p->name);
		if (strncmp(a + 2, p->name, n) != 0 || (a[2 + n] != '\0' && a[2 + n] != '='))
			continue;
		if (c->values_opts[k] != NULL) {
			ternctl_err("--%s given twice", p->name);
			return -1;
		}
		bool flag = p->kind == TK_TRUE || p->kind == TK_FALSE;
		if (flag) {
			if (a[2 + n] == '=') {
				ternctl_err("--%s takes no value", p->name);
				return -1;
			}
			c->values_opts[k] = "";
		} else if (a[2 + n] == '=') {
			c->values_opts[k] = a + 3 + n;
		} else if (*i + 1 < argc) {
			c->values_opts[k] = argv[++*i];
		} else {
			ternctl_err("--%s needs a value", p->name);
			return -1;
		}
		return 1;
	}
	return 0;
}

static void
short_usage(FILE *f)
{
	fprintf(f, "usage: ternctl [-c FILE] [--admin NAME] [OPTIONS] NOUN VERB [ARGS]\n"
		   "       ternctl --help    (all commands, options and exit codes)\n");
}

int
main(int argc, char **argv)
{
	struct opts o = {.timeout = 30};
	struct call c = {0};
	const char *words[8];
	size_t nwords = 0, npos = 0;
	bool dashdash = false, bad = false;
	const char *bad_opt = NULL; /* reported after --help had its chance */
	int rc;

	atexit(wipe_password);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (!dashdash) {
			int g = global_option(&o, argc, argv, &i);
			if (g < 0)
				return TERNCTL_USAGE;
			if (g > 0)
				continue;
			if (c.cmd != NULL) {
				int r = command_option(&c, argc, argv, &i);
				if (r < 0)
					return TERNCTL_USAGE;
				if (r > 0)
					continue;
			}
			if (a[0] == '-' && a[1] != '\0') {
				if (bad_opt == NULL)
					bad_opt = a;
				continue;
			}
		}
		/* A word: the noun, the verb, then the arguments. */
		if (nwords == 0) {
			words[nwords++] = a;
			c.cmd = ternctl_cmd_find(a, NULL); /* verb-less nouns only */
			continue;
		}
		if (c.cmd == NULL && nwords == 1 && ternctl_noun_find(words[0]) != NULL) {
			words[nwords++] = a;
			c.cmd = ternctl_cmd_find(words[0], a);
			continue;
		}
		if (c.cmd == NULL) {
			if (nwords < ARRAY_SIZE(words))
				words[nwords++] = a;
			continue;
		}
		if (npos < TERNCTL_MAX_ARGS && c.cmd->args[npos].name != NULL) {
			c.values_args[npos++] = a;
		} else {
			if (!bad)
				ternctl_err("%s: unexpected argument \"%s\"", words[0], a);
			bad = true;
		}
	}

	if (o.version) {
		printf("ternctl %s\n", TERN_VERSION);
		return TERNCTL_OK;
	}
	/* Help: ternctl --help, help [NOUN [VERB]], NOUN --help, NOUN VERB --help. */
	bool help_word = nwords > 0 && strcmp(words[0], "help") == 0;
	bool verb_help = nwords == 2 && strcmp(words[1], "help") == 0;
	if (o.help || help_word || verb_help) {
		const char *noun = help_word	? (nwords > 1 ? words[1] : NULL)
				   : nwords > 0 ? words[0]
						: NULL;
		const char *verb = help_word ? (nwords > 2 ? words[2] : NULL)
					     : (nwords > 1 && !verb_help ? words[1] : NULL);
		if (noun == NULL) {
			ternctl_help_main(stdout);
			return TERNCTL_OK;
		}
		const struct ternctl_noun *n = ternctl_noun_find(noun);
		if (n == NULL) {
			ternctl_err("unknown command \"%s\"; `ternctl --help` lists them", noun);
			return TERNCTL_USAGE;
		}
		const struct ternctl_cmd *hc = ternctl_cmd_find(noun, verb);
		if (hc != NULL && (hc->verb == NULL || verb != NULL)) {
			ternctl_help_cmd(stdout, hc);
			return TERNCTL_OK;
		}
		if (verb != NULL) {
			ternctl_err("%s has no command \"%s\"", noun, verb);
			ternctl_help_noun(stderr, n);
			return TERNCTL_USAGE;
		}
		ternctl_help_noun(stdout, n);
		return TERNCTL_OK;
	}
	if (bad_opt != NULL) {
		ternctl_err("unknown option %s%s", bad_opt,
			    c.cmd != NULL ? " for this command" : "");
		bad = true;
		if (c.cmd == NULL) {
			short_usage(stderr);
			return TERNCTL_USAGE;
		}
	}
	if (nwords == 0) {
		short_usage(stderr);
		return TERNCTL_USAGE;
	}
	const struct ternctl_noun *noun = ternctl_noun_find(words[0]);
	if (noun == NULL) {
		ternctl_err("unknown command \"%s\"; `ternctl --help` lists them", words[0]);
		return TERNCTL_USAGE;
	}
	if (c.cmd == NULL) {
		if (nwords < 2)
			ternctl_err("%s needs a command", words[0]);
		else
			ternctl_err("%s has no command \"%s\"", words[0], words[1]);
		ternctl_help_noun(stderr, noun);
		return TERNCTL_USAGE;
	}
	const struct ternctl_cmd *cmd = c.cmd;
	for (size_t i = 0; !bad && i < TERNCTL_MAX_ARGS && cmd->args[i].name != NULL; i++)
		if (c.values_args[i] == NULL) {
			ternctl_err("%s %s: missing %s", cmd->noun, cmd->verb ? cmd->verb : "",
				    cmd->args[i].name);
			bad = true;
		}
	for (size_t i = 0; !bad && i < TERNCTL_MAX_OPTS && cmd->opts[i].name != NULL; i++)
		if ((cmd->opts[i].flags & TP_REQUIRED) && c.values_opts[i] == NULL) {
			ternctl_err("%s %s: --%s is required", cmd->noun,
				    cmd->verb ? cmd->verb : "", cmd->opts[i].name);
			bad = true;
		}
	if (bad) {
		ternctl_usage_line(stderr, cmd);
		fprintf(stderr, "`ternctl %s%s%s --help` for more\n", cmd->noun,
			cmd->verb != NULL ? " " : "", cmd->verb != NULL ? cmd->verb : "");
		return TERNCTL_USAGE;
	}

	/* Credentials. */
	if (o.config == NULL)
		o.config = getenv("TERN_CONFIG") != NULL ? getenv("TERN_CONFIG") : DEFAULT_CONFIG;
	if (o.admin == NULL)
		o.admin = getenv("TERN_ADMIN");
	if (o.token == NULL && !(cmd->flags & TC_LOGIN))
		o.token = getenv("TERN_ADMIN_TOKEN");
	struct session s = {.o = &o};
	char what[64];
	snprintf(what, sizeof(what), "%s%s%s", cmd->noun, cmd->verb ? " " : "",
		 cmd->verb ? cmd->verb : "");
	s.what = what;
	struct ternctl_conn_opts co = {.config = o.config,
				       .server = o.server,
				       .cacert = o.cacert,
				       .tls_name = o.tls_name,
				       .insecure = o.insecure,
				       .timeout = o.timeout};
	if (ternctl_target_from_config(&co, &s.t) < 0) {
		ternctl_target_free(&s.t);
		return TERNCTL_USAGE;
	}
	bool need_basic = false;
	if (cmd->flags & TC_PUBLIC) {
		/* no credentials */
	} else if (cmd->flags & TC_LOGIN) {
		if (o.admin == NULL) {
			ternctl_err("login needs --admin NAME (or TERN_ADMIN)");
			rc = TERNCTL_USAGE;
			goto out;
		}
		if (admin_password(o.admin) == NULL) {
			rc = TERNCTL_USAGE;
			goto out;
		}
	} else if (o.token != NULL) {
		s.auth = xstrfmt("Bearer %s", o.token);
	} else if (cmd->flags & TC_TOKEN) {
		ternctl_err("%s needs --token TOKEN (or TERN_ADMIN_TOKEN)", what);
		rc = TERNCTL_USAGE;
		goto out;
	} else if (o.admin != NULL) {
		need_basic = true;
	} else if (!(cmd->flags & TC_AUTH_OPTIONAL)) {
		ternctl_err("who is asking? give --admin NAME (or TERN_ADMIN, or --token)");
		rc = TERNCTL_USAGE;
		goto out;
	}
	if (need_basic) {
		if (strchr(o.admin, ':') != NULL) {
			ternctl_err("--admin: a login cannot contain ':' (HTTP Basic)");
			rc = TERNCTL_USAGE;
			goto out;
		}
		if (admin_password(o.admin) == NULL) {
			rc = TERNCTL_USAGE;
			goto out;
		}
		struct buf pair, enc;
		buf_init(&pair, SECRET_MAX * 2);
		buf_init(&enc, SECRET_MAX * 3);
		buf_printf(&pair, "%s:%s", o.admin, password);
		buf_append_str(&enc, "Basic ");
		base64_encode(pair.data, pair.len, &enc);
		s.auth = xstrdup(buf_cstr(&enc));
		buf_wipe(&pair);
		buf_wipe(&enc);
	}
	rc = run(&s, &c);
out:
	if (s.auth != NULL) {
		explicit_bzero(s.auth, strlen(s.auth));
		free(s.auth);
	}
	ternctl_target_free(&s.t);
	fflush(stdout);
	return rc;
}
