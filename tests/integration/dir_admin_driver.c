/*
 * dir_admin_driver.c - tern-diradmin-test: directory/dir_admin.h from the
 * command line, for tests/integration/test_dir_admin.py (until
 * tern-admind exists). Built only as a test helper.
 *
 *   tern-diradmin-test -c FILE COMMAND [ARGS...]
 *   tern-diradmin-test -c FILE -          commands from stdin, one per
 *                                         line, arguments separated by
 *                                         tabs; each answer ends with "."
 *
 * Output: "ok" then one key=value line per record, or
 * "error=STATUS field=FIELD message=TEXT". Exit status (single command):
 * 0 ok, 1 a dir_admin error, 2 usage or start-up failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/log.h"
#include "directory/dir_admin.h"

#define MAX_ARGS 64

static const char *
status_name(int status)
{
	switch (status) {
	case DIR_ADMIN_OK:
		return "OK";
	case DIR_ADMIN_INVALID:
		return "INVALID";
	case DIR_ADMIN_EXISTS:
		return "EXISTS";
	case DIR_ADMIN_NOTFOUND:
		return "NOTFOUND";
	case DIR_ADMIN_DENIED:
		return "DENIED";
	case DIR_ADMIN_AUTHFAIL:
		return "AUTHFAIL";
	case DIR_ADMIN_UNAVAILABLE:
		return "UNAVAILABLE";
	case DIR_ADMIN_UNSUPPORTED:
		return "UNSUPPORTED";
	default:
		return "ERROR";
	}
}

static void
print_user(const struct dir_admin_user *u)
{
	printf("user login=%s mail=%s aliases=", u->login, u->mail);
	for (size_t i = 0; i < u->naliases; i++)
		printf("%s%s", i > 0 ? "," : "", u->aliases[i]);
	printf(" quota=%llu disabled=%s id=%s dn=%s name=%s\n", (unsigned long long)u->quota,
	       u->disabled ? "yes" : "no", u->id, u->dn, u->display_name);
}

static void
print_list(const struct dir_admin_list *l)
{
	printf("list name=%s address=%s members=%zu id=%s dn=%s\n", l->name, l->address,
	       l->nmembers, l->id, l->dn);
}

/* Options after the positional arguments: --name X, --alias X (repeatable)... */
struct opts {
	const char *name, *surname, *quota, *password;
	const char *add[MAX_ARGS], *rm[MAX_ARGS];
	size_t nadd, nrm;
	bool keep;
	const char *pos[MAX_ARGS];
	size_t npos;
};

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (strcmp(a, "--keep") == 0) {
			o->keep = true;
			continue;
		}
		if (strcmp(a, "--name") == 0)
			slot = &o->name;
		else if (strcmp(a, "--surname") == 0)
			slot = &o->surname;
		else if (strcmp(a, "--quota") == 0)
			slot = &o->quota;
		else if (strcmp(a, "--password") == 0)
			slot = &o->password;
		else if (strcmp(a, "--alias") == 0 || strcmp(a, "--add-alias") == 0)
			slot = &o->add[o->nadd++];
		else if (strcmp(a, "--remove-alias") == 0)
			slot = &o->rm[o->nrm++];
		if (slot != NULL) {
			if (i + 1 >= argc || o->nadd >= MAX_ARGS || o->nrm >= MAX_ARGS)
				return -1;
			*slot = argv[++i];
		} else {
			if (o->npos >= MAX_ARGS)
				return -1;
			o->pos[o->npos++] = a;
		}
	}
	return 0;
}

/* Runs one command; prints its answer; returns the status (or 2). */
static int
run(struct dir_admin *h, int argc, char **argv)
{
	struct arena *a = arena_new(0);
	struct dir_admin_error err = {0};
	struct opts o;
	int st = DIR_ADMIN_OK;
	const char *cmd = argc > 0 ? argv[0] : "";

	if (argc < 1 || parse_opts(argc - 1, argv + 1, &o) < 0) {
		printf("error=USAGE field= message=bad arguments\n");
		arena_destroy(&a);
		return 2;
	}
#define NEED(n)                                                                                    \
	do {                                                                                       \
		if (o.npos != (n)) {                                                               \
			printf("error=USAGE field= message=%s takes %d arguments\n", cmd, (n));    \
			arena_destroy(&a);                                                         \
			return 2;                                                                  \
		}                                                                                  \
	} while (0)
	struct dir_admin_user *u = NULL, *users = NULL;
	struct dir_admin_list *l = NULL, *lists = NULL;
	struct dir_admin_member *mb = NULL;
	size_t n = 0;
	if (strcmp(cmd, "auth") == 0) {
		bool admin;
		NEED(2);
		st = dir_admin_authenticate(h, a, o.pos[0], o.pos[1], &u, &admin, &err);
		if (st == 0)
			printf("ok\nadmin=%s\n", admin ? "yes" : "no");
	} else if (strcmp(cmd, "user-list") == 0) {
		NEED(0);
		st = dir_admin_user_list(h, a, &users, &n, &err);
	} else if (strcmp(cmd, "user-get") == 0) {
		NEED(1);
		st = dir_admin_user_get(h, a, o.pos[0], &u, &err);
	} else if (strcmp(cmd, "user-create") == 0) {
		NEED(2);
		struct dir_admin_user_spec spec = {
		    .login = o.pos[0],
		    .mail = o.pos[1],
		    .display_name = o.name,
		    .surname = o.surname,
		    .aliases = o.add,
		    .naliases = o.nadd,
		    .quota = o.quota,
		    .password = o.password,
		};
		st = dir_admin_user_create(h, a, &spec, &u, &err);
	} else if (strcmp(cmd, "user-update") == 0) {
		NEED(1);
		struct dir_admin_user_changes ch = {
		    .display_name = o.name,
		    .surname = o.surname,
		    .quota = o.quota,
		    .add_aliases = o.add,
		    .nadd_aliases = o.nadd,
		    .remove_aliases = o.rm,
		    .nremove_aliases = o.nrm,
		};
		st = dir_admin_user_update(h, a, o.pos[0], &ch, &u, &err);
	} else if (strcmp(cmd, "user-passwd") == 0) {
		NEED(2);
		st = dir_admin_user_set_password(h, a, o.pos[0], o.pos[1], &err);
	} else if (strcmp(cmd, "user-disable") == 0 || strcmp(cmd, "user-enable") == 0) {
		NEED(1);
		st = dir_admin_user_set_disabled(h, a, o.pos[0], strcmp(cmd, "user-disable") == 0,
						 &err);
	} else if (strcmp(cmd, "user-delete") == 0) {
		NEED(1);
		st = dir_admin_user_delete(h, a, o.pos[0], &err);
	} else if (strcmp(cmd, "user-rename") == 0) {
		NEED(2);
		st = dir_admin_user_rename_address(h, a, o.pos[0], o.pos[1], o.keep, &u, &err);
	} else if (strcmp(cmd, "alias-add") == 0) {
		NEED(2);
		st = dir_admin_alias_add(h, a, o.pos[0], o.pos[1], &err);
	} else if (strcmp(cmd, "alias-remove") == 0) {
		NEED(2);
		st = dir_admin_alias_remove(h, a, o.pos[0], o.pos[1], &err);
	} else if (strcmp(cmd, "list-all") == 0) {
		NEED(0);
		st = dir_admin_list_all(h, a, &lists, &n, &err);
	} else if (strcmp(cmd, "list-get") == 0) {
		NEED(1);
		st = dir_admin_list_get(h, a, o.pos[0], &l, &err);
	} else if (strcmp(cmd, "list-create") == 0) {
		if (o.npos < 2) {
			printf("error=USAGE field= message=list-create NAME ADDRESS [MEMBER...]\n");
			arena_destroy(&a);
			return 2;
		}
		st = dir_admin_list_create(h, a, o.pos[0], o.pos[1], o.pos + 2, o.npos - 2, &l,
					   &err);
	} else if (strcmp(cmd, "list-delete") == 0) {
		NEED(1);
		st = dir_admin_list_delete(h, a, o.pos[0], &err);
	} else if (strcmp(cmd, "list-add") == 0) {
		NEED(2);
		st = dir_admin_list_add_member(h, a, o.pos[0], o.pos[1], &err);
	} else if (strcmp(cmd, "list-remove") == 0) {
		NEED(2);
		st = dir_admin_list_remove_member(h, a, o.pos[0], o.pos[1], &err);
	} else if (strcmp(cmd, "list-members") == 0) {
		NEED(1);
		st = dir_admin_list_members(h, a, o.pos[0], &mb, &n, &err);
	} else {
		printf("error=USAGE field= message=unknown command %s\n", cmd);
		arena_destroy(&a);
		return 2;
	}
#undef NEED
	if (st != DIR_ADMIN_OK) {
		printf("error=%s field=%s message=%s\n", status_name(st),
		       err.field != NULL ? err.field : "", err.message);
	} else {
		if (strcmp(cmd, "auth") != 0)
			printf("ok\n");
		if (u != NULL)
			print_user(u);
		for (size_t i = 0; users != NULL && i < n; i++)
			print_user(&users[i]);
		if (l != NULL)
			print_list(l);
		for (size_t i = 0; lists != NULL && i < n; i++)
			print_list(&lists[i]);
		for (size_t i = 0; mb != NULL && i < n; i++)
			printf("member dn=%s login=%s mail=%s list=%s missing=%s disabled=%s\n",
			       mb[i].dn, mb[i].login, mb[i].mail, mb[i].is_list ? "yes" : "no",
			       mb[i].missing ? "yes" : "no", mb[i].disabled ? "yes" : "no");
	}
	fflush(stdout);
	arena_destroy(&a);
	return st;
}

static int
batch(struct dir_admin *h)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, stdin)) > 0) {
		char *argv[MAX_ARGS];
		int argc = 0;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		for (char *p = line, *tok; (tok = strsep(&p, "\t")) != NULL && argc < MAX_ARGS;)
			argv[argc++] = tok;
		(void)run(h, argc, argv);
		printf(".\n");
		fflush(stdout);
	}
	free(line);
	return 0;
}

int
main(int argc, char **argv)
{
	char *error = NULL;

	if (argc < 4 || strcmp(argv[1], "-c") != 0) {
		fprintf(stderr, "usage: tern-diradmin-test -c FILE COMMAND [ARGS...] | -\n");
		return 2;
	}
	log_init(LOGL_WARN);
	struct config *cfg = config_load(argv[2], &error);
	if (cfg == NULL) {
		printf("error=CONFIG field= message=%s\n", error);
		free(error);
		return 2;
	}
	struct dir_admin *h;
	if (dir_admin_open(cfg, &h, &error) < 0) {
		printf("error=OPEN field= message=%s\n", error);
		free(error);
		config_free(cfg);
		return 2;
	}
	int rc;
	if (strcmp(argv[3], "-") == 0)
		rc = batch(h);
	else
		rc = run(h, argc - 3, argv + 3) == DIR_ADMIN_OK ? 0 : 1;
	dir_admin_close(&h);
	config_free(cfg);
	return rc;
}
