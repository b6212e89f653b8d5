/*
 * ternctl_cmds.c - ternctl's command table, one row per API operation of
 * docs/openapi.yaml (noun, verb, method, path template, arguments,
 * options, output columns), and the help texts made from it.
 * Adding an endpoint to the API means adding one row here; the driver
 * (ternctl.c) has no per-command code.
 * Nothing here does I/O except printing help; nothing fails.
 */
#include <stdio.h>
#include <string.h>

#include "admin/ternctl.h"
#include "core/compat.h"
#include "core/version.h"

#define REQ TP_REQUIRED

const struct ternctl_noun ternctl_nouns[] = {
    {"user", "directory users: list, show, add, update, disable, enable, delete, password, rename"},
    {"quota", "a user's quota and usage: show, set"},
    {"alias", "alias addresses of users: list, add, delete"},
    {"list", "mailing lists (directory groups): list, show, add, update, delete"},
    {"member", "members of a mailing list: list, add, remove"},
    {"mailbox", "mail in the store: list, show, orphans, purge, export, import"},
    {"job", "long work started by other commands: list, show, wait"},
    {"queue", "the outbound queue: list, show, retry, hold, release, delete, bounce"},
    {"backup", "hot backups of the store: start, list, verify, restore"},
    {"health", "directory, storage and listeners (GET /healthz)"},
    {"metrics", "Prometheus metrics as text (GET /metrics)"},
    {"whoami", "the admin the credentials belong to"},
    {"login", "mint a bearer token (use it with --token or TERN_ADMIN_TOKEN)"},
    {"logout", "drop the bearer token given with --token"},
};
const size_t ternctl_nnouns = ARRAY_SIZE(ternctl_nouns);

#define USER_COLS "login,mail,name,quota,disabled,id"

const struct ternctl_cmd ternctl_cmds[] = {
    /* ---- users ---- */
    {"user", "list", "GET", "/api/v1/users", 0, "List mail-enabled directory users",
     .opts = {{"query", "q", TK_QUERY, 0, "only users whose login, name or address match"},
	      {"limit", NULL, TK_QUERY, 0, "at most this many (a page)"},
	      {"cursor", NULL, TK_QUERY, 0,
	       "the next page (from the previous page's next_cursor)"}},
     .list_key = "users", .columns = USER_COLS, .example = "user list --query smith"},
    {"user", "show", "GET", "/api/v1/users/{user}", 0, "Show one user",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .example = "user show new.hire@example.org"},
    {"user", "add", "POST", "/api/v1/users", 0,
     "Create a user in the directory (password set with RFC 3062)",
     .args = {{"address", "mail", TK_STR, REQ, "the primary mail address"}},
     .opts = {{"password", NULL, TK_SECRET, REQ, "the initial password (\"-\": ask for it)"},
	      {"login", NULL, TK_STR, 0, "the login (default: from the address)"},
	      {"name", NULL, TK_STR, 0, "the full name"},
	      {"aliases", NULL, TK_LIST, 0, "alias addresses, comma-separated"},
	      {"quota", NULL, TK_SIZE, 0, "mail quota in bytes (10M, 2G) or none"}},
     .example = "user add new.hire@example.org --password - --name \"New Hire\""},
    {"user", "update", "PATCH", "/api/v1/users/{user}", 0, "Change a user's attributes",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .opts = {{"name", NULL, TK_STR, 0, "the full name"},
	      {"aliases", NULL, TK_LIST, 0, "all alias addresses (replaces them), comma-separated"},
	      {"quota", NULL, TK_SIZE, 0, "mail quota in bytes (10M, 2G) or none"}},
     .example = "user update alice --name \"Alice Smith\" --quota 2G"},
    {"user", "delete", "DELETE", "/api/v1/users/{user}", 0,
     "Delete a user from the directory (the mailbox becomes orphaned)",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .example = "user delete old.timer@example.org"},
    {"user", "disable", "POST", "/api/v1/users/{user}/disable", 0,
     "Disable a user: no mail in, no logins",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .example = "user disable new.hire@example.org"},
    {"user", "enable", "POST", "/api/v1/users/{user}/enable", 0, "Enable a disabled user",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .example = "user enable new.hire@example.org"},
    {"user", "password", "POST", "/api/v1/users/{user}/password", 0,
     "Set a new password (RFC 3062)",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .opts = {{"password", NULL, TK_SECRET, REQ, "the new password (\"-\": ask for it)"}},
     .example = "user password alice --password -"},
    {"user", "rename", "POST", "/api/v1/users/{user}/rename", 0,
     "Change a user's primary address (the mail stays)",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"},
	      {"address", "mail", TK_STR, REQ, "the new primary address"}},
     .opts = {{"drop-old", "keep_old_as_alias", TK_FALSE, 0,
	       "do not keep the old address as an alias"}},
     .example = "user rename alice alice.smith@example.org"},

    /* ---- quota ---- */
    {"quota", "show", "GET", "/api/v1/users/{user}/quota", 0, "Show a user's quota and usage",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .example = "quota show alice"},
    {"quota", "set", "PUT", "/api/v1/users/{user}/quota", 0, "Set a user's quota",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"},
	      {"size", "quota", TK_SIZE, REQ, "bytes (10M, 2G) or none to remove the quota"}},
     .example = "quota set alice 5G"},

    /* ---- aliases ---- */
    {"alias", "list", "GET", "/api/v1/aliases", 0, "List alias addresses",
     .opts = {{"user", NULL, TK_QUERY, 0, "only the aliases of this user"}}, .list_key = "aliases",
     .columns = "address,user", .example = "alias list --user alice"},
    {"alias", "add", "POST", "/api/v1/aliases", 0, "Add an alias address to a user",
     .args = {{"address", NULL, TK_STR, REQ, "the alias address"},
	      {"user", NULL, TK_STR, REQ, "the user it delivers to"}},
     .example = "alias add sales@example.org alice"},
    {"alias", "delete", "DELETE", "/api/v1/aliases/{address}", 0, "Remove an alias address",
     .args = {{"address", NULL, TK_STR, REQ, "the alias address"}},
     .example = "alias delete sales@example.org"},

    /* ---- lists ---- */
    {"list", "list", "GET", "/api/v1/lists", 0, "List mailing lists", .list_key = "lists",
     .columns = "name,address,members_count,id", .example = "list list"},
    {"list", "show", "GET", "/api/v1/lists/{list}", 0, "Show a list with its members",
     .args = {{"list", NULL, TK_STR, REQ, "list name or address"}},
     .example = "list show staff@example.org"},
    {"list", "add", "POST", "/api/v1/lists", 0, "Create a mailing list",
     .args = {{"address", NULL, TK_STR, REQ, "the list's address"}},
     .opts = {{"name", NULL, TK_STR, REQ, "the group's name (cn)"},
	      {"members", NULL, TK_LIST, 0, "members (logins or addresses), comma-separated"}},
     .example = "list add team@example.org --name team --members alice,bob"},
    {"list", "update", "PATCH", "/api/v1/lists/{list}", 0, "Change a list's name or address",
     .args = {{"list", NULL, TK_STR, REQ, "list name or address"}},
     .opts = {{"name", NULL, TK_STR, 0, "the group's name (renaming is not supported yet)"},
	      {"address", NULL, TK_STR, 0, "the new address"}},
     .example = "list update team@example.org --address crew@example.org"},
    {"list", "delete", "DELETE", "/api/v1/lists/{list}", 0, "Delete a mailing list",
     .args = {{"list", NULL, TK_STR, REQ, "list name or address"}},
     .example = "list delete team@example.org"},

    /* ---- members ---- */
    {"member", "list", "GET", "/api/v1/lists/{list}/members", 0, "Members of a list",
     .args = {{"list", NULL, TK_STR, REQ, "list name or address"}}, .list_key = "members",
     .example = "member list staff@example.org"},
    {"member", "add", "POST", "/api/v1/lists/{list}/members", 0, "Add a member to a list",
     .args = {{"list", NULL, TK_STR, REQ, "list name or address"},
	      {"member", NULL, TK_STR, REQ, "login or address (of a user or a list)"}},
     .list_key = "members", .example = "member add staff@example.org carol"},
    {"member", "remove", "DELETE", "/api/v1/lists/{list}/members/{member}", 0,
     "Remove a member from a list",
     .args = {{"list", NULL, TK_STR, REQ, "list name or address"},
	      {"member", NULL, TK_STR, REQ, "login, address or DN"}},
     .example = "member remove staff@example.org carol"},

    /* ---- mailboxes ---- */
    {"mailbox", "list", "GET", "/api/v1/mailboxes", 0, "Mailbox owners in the store with usage",
     .opts = {{"limit", NULL, TK_QUERY, 0, "at most this many (1..1000, default 100)"},
	      {"cursor", NULL, TK_QUERY, 0, "the next page (from the previous next_cursor)"}},
     .list_key = "mailboxes",
     .columns = "login,mail,messages,bytes,quota,mailbox_count,in_directory,user",
     .example = "mailbox list --limit 20"},
    {"mailbox", "show", "GET", "/api/v1/mailboxes/{user}", 0,
     "A user's usage and mailboxes (messages, bytes, quota)",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .example = "mailbox show alice"},
    {"mailbox", "orphans", "GET", "/api/v1/mailboxes/orphans", 0,
     "Mailboxes whose user left the directory, with the purge deadline", .list_key = "orphans",
     .columns = "user,messages,bytes,orphaned_since,purge_after,due", .example = "mailbox orphans"},
    {"mailbox", "purge", "POST", "/api/v1/mailboxes/{user}/purge", TC_JOB | TC_BODY,
     "Purge an orphaned mailbox (refused for a user still in the directory)",
     .args = {{"user", NULL, TK_STR, REQ, "the orphan's stable id"}},
     .opts = {{"force", NULL, TK_TRUE, 0, "purge before the retention has passed"}},
     .example = "mailbox purge 5f0c...e1 --force"},
    {"mailbox", "export", "POST", "/api/v1/mailboxes/{user}/export", TC_JOB,
     "Export a user's mail as mbox or Maildir on the server",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .opts = {{"format", NULL, TK_STR, REQ, "mbox or maildir"},
	      {"path", NULL, TK_STR, REQ, "absolute path on the server (must not exist)"},
	      {"mailbox", NULL, TK_STR, 0, "one mailbox only (default: all)"}},
     .example = "mailbox export alice --format mbox --path /srv/export/alice"},
    {"mailbox", "import", "POST", "/api/v1/mailboxes/{user}/import", TC_JOB,
     "Import mbox or Maildir from the server into a user's mailboxes",
     .args = {{"user", NULL, TK_STR, REQ, "stable id, login or address"}},
     .opts = {{"format", NULL, TK_STR, REQ, "mbox or maildir"},
	      {"path", NULL, TK_STR, REQ, "absolute path on the server"},
	      {"mailbox", NULL, TK_STR, 0, "import path as this one mailbox"}},
     .example = "mailbox import bob --format maildir --path /srv/migrate/bob"},

    /* ---- jobs ---- */
    {"job", "list", "GET", "/api/v1/jobs", 0, "Jobs running and those of the last 24 hours",
     .list_key = "jobs", .columns = "id,kind,state,admin,started,summary", .example = "job list"},
    {"job", "show", "GET", "/api/v1/jobs/{job}", 0, "One job with its progress and result",
     .args = {{"job", NULL, TK_STR, REQ, "the job id"}}, .example = "job show 9c1e04a7b2d3f580"},
    {"job", "wait", "GET", "/api/v1/jobs/{job}", TC_WAIT,
     "Follow a job until it ends (exit status from its final state)",
     .args = {{"job", NULL, TK_STR, REQ, "the job id"}}, .example = "job wait 9c1e04a7b2d3f580"},

    /* ---- queue ---- */
    {"queue", "list", "GET", "/api/v1/queue", 0, "Queued outbound messages, filtered",
     .opts = {{"sender", NULL, TK_QUERY, 0, "only from this sender"},
	      {"recipient", NULL, TK_QUERY, 0, "only to this recipient"},
	      {"domain", NULL, TK_QUERY, 0, "only to this domain"},
	      {"state", NULL, TK_QUERY, 0, "queued, deferred, held"},
	      {"older-than", "older_than", TK_QUERY, 0, "only older than this (1h, 2d)"},
	      {"limit", NULL, TK_QUERY, 0, "at most this many"},
	      {"cursor", NULL, TK_QUERY, 0, "the next page"}},
     .list_key = "messages", .columns = "id,sender,state,attempts,size,created,next_attempt",
     .example = "queue list --domain example.net"},
    {"queue", "show", "GET", "/api/v1/queue/{id}", 0, "One queued message with its recipients",
     .args = {{"id", NULL, TK_STR, REQ, "queue id (16 hex digits)"}},
     .example = "queue show 0123456789abcdef"},
    {"queue", "retry", "POST", "/api/v1/queue/{id}/retry", 0, "Retry delivery now",
     .args = {{"id", NULL, TK_STR, REQ, "queue id"}}, .example = "queue retry 0123456789abcdef"},
    {"queue", "hold", "POST", "/api/v1/queue/{id}/hold", 0, "Hold: no attempts until released",
     .args = {{"id", NULL, TK_STR, REQ, "queue id"}}, .example = "queue hold 0123456789abcdef"},
    {"queue", "release", "POST", "/api/v1/queue/{id}/release", 0, "Release a held message",
     .args = {{"id", NULL, TK_STR, REQ, "queue id"}}, .example = "queue release 0123456789abcdef"},
    {"queue", "delete", "DELETE", "/api/v1/queue/{id}", 0, "Delete without a bounce",
     .args = {{"id", NULL, TK_STR, REQ, "queue id"}}, .example = "queue delete 0123456789abcdef"},
    {"queue", "bounce", "POST", "/api/v1/queue/{id}/bounce", 0,
     "Fail it now and send a bounce to the sender", .args = {{"id", NULL, TK_STR, REQ, "queue id"}},
     .example = "queue bounce 0123456789abcdef"},

    /* ---- backups ---- */
    {"backup", "start", "POST", "/api/v1/backups", TC_JOB | TC_BODY,
     "Start a hot backup of the store into [backup] dir",
     .opts = {{"no-compact", "compact", TK_FALSE, 0, "copy pages as they are (faster, larger)"}},
     .example = "backup start"},
    {"backup", "list", "GET", "/api/v1/backups", 0, "Backups and their verification state",
     .list_key = "backups", .columns = "id,created,origin,bytes,messages,verified,path",
     .example = "backup list"},
    {"backup", "verify", "POST", "/api/v1/backups/{id}/verify", TC_JOB, "Verify a backup",
     .args = {{"id", NULL, TK_STR, REQ, "backup id (from backup list)"}},
     .example = "backup verify 20240501T030000Z"},
    {"backup", "restore", "POST", "/api/v1/backups/{id}/restore", TC_JOB,
     "Restore a verified backup (ternd must be stopped)",
     .args = {{"id", NULL, TK_STR, REQ, "backup id"}},
     .example = "backup restore 20240501T030000Z"},

    /* ---- ops and auth ---- */
    {"health", NULL, "GET", "/healthz", TC_PUBLIC | TC_HEALTH,
     "Health of directory, storage and listeners (exit 1 when degraded)", .example = "health"},
    {"metrics", NULL, "GET", "/metrics", TC_AUTH_OPTIONAL | TC_TEXT,
     "Prometheus metrics (text format 0.0.4)", .example = "metrics"},
    {"whoami", NULL, "GET", "/api/v1/whoami", 0, "The authenticated admin", .example = "whoami"},
    {"login", NULL, "POST", "/api/v1/login", TC_LOGIN,
     "Mint a bearer token for the admin (prints it; --json for its expiry)", .example = "login"},
    {"logout", NULL, "POST", "/api/v1/logout", TC_TOKEN, "Drop the bearer token given",
     .example = "--token $TOKEN logout"},
};
const size_t ternctl_ncmds = ARRAY_SIZE(ternctl_cmds);

const struct ternctl_cmd *
ternctl_cmd_find(const char *noun, const char *verb)
{
	for (size_t i = 0; i < ternctl_ncmds; i++) {
		const struct ternctl_cmd *c = &ternctl_cmds[i];
		if (strcmp(c->noun, noun) != 0)
			continue;
		if (c->verb == NULL || (verb != NULL && strcmp(c->verb, verb) == 0))
			return c;
	}
	return NULL;
}

const struct ternctl_noun *
ternctl_noun_find(const char *noun)
{
	for (size_t i = 0; i < ternctl_nnouns; i++)
		if (strcmp(ternctl_nouns[i].name, noun) == 0)
			return &ternctl_nouns[i];
	return NULL;
}

static void
upper(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc(*s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : (*s == '-' ? '_' : *s), f);
}

static const char *
metavar(enum ternctl_kind k)
{
	switch (k) {
	case TK_SECRET:
		return "SECRET";
	case TK_INT:
		return "N";
	case TK_SIZE:
		return "SIZE";
	case TK_LIST:
		return "A,B,...";
	case TK_TRUE:
	case TK_FALSE:
		return NULL;
	default:
		return "TEXT";
	}
}

void
ternctl_usage_line(FILE *f, const struct ternctl_cmd *cmd)
{
	fprintf(f, "usage: ternctl [GLOBAL OPTIONS] %s", cmd->noun);
	if (cmd->verb != NULL)
		fprintf(f, " %s", cmd->verb);
	for (size_t i = 0; i < TERNCTL_MAX_ARGS && cmd->args[i].name != NULL; i++) {
		fputc(' ', f);
		upper(f, cmd->args[i].name);
	}
	for (size_t i = 0; i < TERNCTL_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		const struct ternctl_param *o = &cmd->opts[i];
		const char *mv = metavar(o->kind);
		bool req = (o->flags & TP_REQUIRED) != 0;
		fprintf(f, " %s--%s%s%s%s", req ? "" : "[", o->name, mv != NULL ? " " : "",
			mv != NULL ? mv : "", req ? "" : "]");
	}
	fputc('\n', f);
}

void
ternctl_help_cmd(FILE *f, const struct ternctl_cmd *cmd)
{
	ternctl_usage_line(f, cmd);
	fprintf(f, "\n%s.\n", cmd->summary);
	fprintf(f, "API: %s %s\n", cmd->method, cmd->path);
	if (cmd->args[0].name != NULL) {
		fprintf(f, "\nArguments:\n");
		for (size_t i = 0; i < TERNCTL_MAX_ARGS && cmd->args[i].name != NULL; i++) {
			fprintf(f, "  ");
			upper(f, cmd->args[i].name);
			fprintf(f, "%*s%s\n", (int)(22 - strlen(cmd->args[i].name)), "",
				cmd->args[i].help);
		}
	}
	if (cmd->opts[0].name != NULL) {
		fprintf(f, "\nOptions:\n");
		for (size_t i = 0; i < TERNCTL_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
			const struct ternctl_param *o = &cmd->opts[i];
			const char *mv = metavar(o->kind);
			int n = fprintf(f, "  --%s%s%s", o->name, mv != NULL ? " " : "",
					mv != NULL ? mv : "");
			fprintf(f, "%*s%s%s\n", n < 24 ? 24 - n : 1, "", o->help,
				(o->flags & TP_REQUIRED) ? " (required)" : "");
		}
	}
	if (cmd->flags & TC_JOB)
		fprintf(
		    f,
		    "\nThis is a long job: ternctl follows it and shows progress on stderr\n"
		    "(--no-wait prints the job id at once; `ternctl job wait ID` follows it).\n");
	fprintf(f, "\nOutput: %s; --json prints the server's JSON.\n",
		(cmd->flags & TC_TEXT)	? "the text as served"
		: cmd->list_key != NULL ? "a table"
					: "key: value lines");
	fprintf(f, "\nExample:\n  ternctl -c /etc/tern/tern.conf --admin alice %s\n", cmd->example);
}

void
ternctl_help_noun(FILE *f, const struct ternctl_noun *noun)
{
	fprintf(f, "ternctl %s - %s\n\nCommands:\n", noun->name, noun->summary);
	for (size_t i = 0; i < ternctl_ncmds; i++) {
		const struct ternctl_cmd *c = &ternctl_cmds[i];
		if (strcmp(c->noun, noun->name) != 0)
			continue;
		int n = fprintf(f, "  %s %s", c->noun, c->verb != NULL ? c->verb : "");
		fprintf(f, "%*s%s\n", n < 26 ? 26 - n : 1, "", c->summary);
	}
	fprintf(f, "\n`ternctl %s VERB --help` shows a command's arguments and options.\n",
		noun->name);
}

void
ternctl_help_main(FILE *f)
{
	fprintf(
	    f,
	    "NAME\n"
	    "    ternctl - the command line of tern-admind, Tern's admin daemon\n"
	    "\n"
	    "SYNOPSIS\n"
	    "    ternctl [-c FILE] [--admin NAME] [OPTIONS] NOUN VERB [ARGS] [--OPTION VALUE...]\n"
	    "    ternctl help [NOUN [VERB]]\n"
	    "\n"
	    "DESCRIPTION\n"
	    "    Every call of tern-admind's HTTPS JSON API (docs/openapi.yaml) as a\n"
	    "    command. ternctl reads the config file to find the admin listener\n"
	    "    ([admin] listen) and its TLS certificate ([tls] cert), authenticates\n"
	    "    as an admin with directory credentials (HTTP Basic) or a token, and\n"
	    "    prints the reply as a table or key: value lines, or the JSON with\n"
	    "    --json. Long work (backup, export, import, purge, verify, restore)\n"
	    "    is followed to its end with progress on stderr.\n"
	    "\n"
	    "GLOBAL OPTIONS (anywhere on the line)\n"
	    "    -c, --config FILE   config file (default $TERN_CONFIG or /etc/tern/tern.conf)\n"
	    "    --admin NAME        the admin's login (default $TERN_ADMIN)\n"
	    "    --token TOKEN       a bearer token from `ternctl login` (or $TERN_ADMIN_TOKEN)\n"
	    "    --server HOST:PORT  connect here instead of [admin] listen\n"
	    "    --cacert FILE       trust anchor for the server certificate (the host\n"
	    "                        name is then checked; see --tls-name)\n"
	    "    --tls-name NAME     the name the certificate must carry with --cacert\n"
	    "    --insecure          do not verify the server certificate at all\n"
	    "    --timeout SECONDS   per connect, read and write (default 30)\n"
	    "    --json              print the server's JSON instead of a table\n"
	    "    --progress          progress of long jobs on stderr even when not a terminal\n"
	    "    --no-wait           print a long job's id and return at once\n"
	    "    -h, --help          this text; after a noun or command, its help\n"
	    "    -V, --version       print the version\n"
	    "\n"
	    "COMMANDS\n");
	for (size_t i = 0; i < ternctl_ncmds; i++) {
		const struct ternctl_cmd *c = &ternctl_cmds[i];
		int n = fprintf(f, "    %s %s", c->noun, c->verb != NULL ? c->verb : "");
		fprintf(f, "%*s%s\n", n < 26 ? 26 - n : 1, "", c->summary);
	}
	fprintf(
	    f,
	    "\n"
	    "PASSWORD\n"
	    "    The admin's password comes from $TERN_ADMIN_PASSWORD, or is asked for\n"
	    "    on the terminal without echo. A command option of kind SECRET given\n"
	    "    as \"-\" (user add --password -) is asked for the same way.\n"
	    "\n"
	    "TLS\n"
	    "    With [tls] cert in the config, ternctl speaks HTTPS and trusts exactly\n"
	    "    that certificate (the server's own; readable by the admin), unless\n"
	    "    --cacert or --insecure say otherwise. Without [tls], plain HTTP is used\n"
	    "    only if [admin] plaintext_auth = yes and the server is on loopback.\n"
	    "\n"
	    "EXIT STATUS\n"
	    "    0  success\n"
	    "    1  the server refused the request (4xx other than 401/403/404; the\n"
	    "       message and the field at fault are printed), or health is degraded\n"
	    "    2  usage error: unknown command, missing argument, bad option value,\n"
	    "       unreadable or incomplete config, no password available\n"
	    "    3  authentication failed (401) or not an admin (403)\n"
	    "    4  tern-admind cannot be reached, TLS failed, or it answered 5xx\n"
	    "    5  not found (404): no such user, list, job, ... (or endpoint)\n"
	    "    6  a long job ran and ended in state \"failed\"\n"
	    "\n"
	    "ENVIRONMENT\n"
	    "    TERN_CONFIG, TERN_ADMIN, TERN_ADMIN_PASSWORD, TERN_ADMIN_TOKEN\n"
	    "\n"
	    "EXAMPLES\n"
	    "    ternctl -c tern.conf --admin alice user add new.hire@example.org --password -\n"
	    "    ternctl -c tern.conf --admin alice user list --json\n"
	    "    ternctl -c tern.conf --admin alice backup start --progress\n"
	    "    TOKEN=$(ternctl -c tern.conf --admin alice login)\n"
	    "    ternctl -c tern.conf --token \"$TOKEN\" queue list --domain example.net\n"
	    "\n"
	    "    `ternctl NOUN --help` lists a noun's commands; `ternctl NOUN VERB --help`\n"
	    "    shows one command's arguments, options and an example.\n"
	    "\n"
	    "ternctl %s\n",
	    TERN_VERSION);
}
