/*
 * imap_acl_cmd.c - the ACL commands of RFC 4314 section 3: SETACL,
 * DELETEACL, GETACL, LISTRIGHTS and MYRIGHTS, on the rights that
 * imap_acl.c evaluates.
 *
 * A user identifier given to SETACL must be a login the directory knows
 * (dir_find_user, cached); it is kept as the directory spells the login.
 * "anyone", "$group" (a directory group by group_name_attr) and their
 * "-" negative forms are kept as given. The owner's implicit rights
 * cannot be changed.
 *
 * How it fails: malformed arguments or an unknown right are BAD; rights
 * short of "a" are NO [NOPERM] (or [NONEXISTENT] without any right); an
 * unknown user NO; directory and store failures NO [UNAVAILABLE].
 */
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "protocols/imap/imap_internal.h"

#define ACL_LINE_MAX (64u * 1024u)

/* An identifier or rights as an atom when it is one, else a string. */
static void
append_astring(struct imap_session *s, struct buf *b, const char *str)
{
	bool atom = str[0] != '\0';

	for (const char *p = str; *p != '\0' && atom; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("(){%*\"\\]", *p))
			atom = false;
	if (atom)
		buf_append_str(b, str);
	else
		imap_append_string(b, str, strlen(str), s->utf8);
}

static void
write_line(struct imap_session *s, struct buf *b)
{
	buf_append(b, "\r\n", 2);
	imap_write(s, b->data, b->len);
}

static bool
is_owner_ident(const struct imap_mref *r, const char *ident)
{
	return strcasecmp(ident, r->owner_login) == 0;
}

/* The mailbox argument, resolved, with right `need`. */
static bool
acl_target(struct imap_session *s, const struct imap_arg *arg, const char *need,
	   struct imap_mref *r)
{
	if (imap_mref_get(s, arg, r) < 0)
		return false;
	if (!imap_mref_check(s, r, need))
		return false;
	/* A personal name: it must exist (a shared one was found). */
	struct store_acl acl;
	int st = store_acl_get(r->owner_id, r->path, s->cmd_arena, &acl);
	if (st != STORE_OK) {
		imap_tagged_store_status(s, st, s->cmd->name);
		return false;
	}
	return true;
}

static bool
ident_arg(struct imap_session *s, const struct imap_arg *arg, const char **ident_r)
{
	const char *str;
	size_t len;

	if (!imap_arg_astring(arg, &str, &len) || strlen(str) != len ||
	    store_acl_ident_check(str) != 0 || (str[0] == '-' && str[1] == '\0')) {
		imap_bad(s, "Invalid identifier");
		return false;
	}
	*ident_r = str;
	return true;
}

/* ---- SETACL ---- */

struct setacl_op {
	struct store_acl_change c; /* first: the request pointer is the op */
	struct imap_session *s;
	bool neg;
};

static void
setacl_done(void *req, void *arg)
{
	struct imap_session *s = arg;
	struct store_acl_change *c = req;

	(void)c;
	if (s->cmd != NULL) {
		if (c->req.status == STORE_OK)
			imap_tagged(s, "OK", "%s completed", s->cmd->name);
		else
			imap_tagged_store_status(s, c->req.status, s->cmd->name);
	}
	imap_async_end(s);
}

static void
setacl_submit(struct imap_session *s, struct setacl_op *op)
{
	op->c.req.worker = s->conn.worker;
	op->c.req.done = setacl_done;
	op->c.req.arg = s;
	op->c.req.a = s->cmd_arena;
	store_acl_change(&op->c);
}

static void
setacl_found(void *arg, const struct dir_find_result *res)
{
	struct setacl_op *op = arg;
	struct imap_session *s = op->s;

	if (s->cmd == NULL || s->conn.closed) {
		imap_async_end(s);
		return;
	}
	if (res->status == DIR_OK && res->user != NULL) {
		/* Kept as the directory spells the login (as LOGIN's user). */
		const char *login = res->user->login != NULL && res->user->login[0] != '\0'
					? res->user->login
					: op->c.ident + op->neg;
		op->c.ident = op->neg ? arena_printf(s->cmd_arena, "-%s", login)
				      : arena_strdup(s->cmd_arena, login);
		setacl_submit(s, op); /* still async: setacl_done ends it */
		return;
	}
	if (res->status == DIR_NOTFOUND)
		imap_tagged(s, "NO", "Unknown identifier \"%s\": no such user in the directory",
			    op->c.ident + op->neg);
	else
		imap_tagged(s, "NO", "[UNAVAILABLE] Directory temporarily unavailable, try again");
	imap_async_end(s);
}

static void
cmd_setacl(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct imap_mref r;
	const char *ident, *rights;
	size_t len;
	unsigned mask;

	if (cmd->count != 3) {
		imap_bad(s, "Usage: SETACL mailbox identifier rights");
		return;
	}
	if (!ident_arg(s, &cmd->args[1], &ident))
		return;
	if (!imap_arg_astring(&cmd->args[2], &rights, &len) || strlen(rights) != len) {
		imap_bad(s, "Usage: SETACL mailbox identifier rights");
		return;
	}
	char mode = rights[0] == '+' || rights[0] == '-' ? rights[0] : '=';
	if (imap_acl_parse_rights(rights + (mode != '='), &mask) < 0) {
		imap_bad(s, "Invalid rights \"%s\": the rights are %s", rights, "lrswipkxteacd");
		return;
	}
	if (!acl_target(s, &cmd->args[0], "a", &r))
		return;
	bool neg = ident[0] == '-';
	if (is_owner_ident(&r, ident + neg)) {
		imap_tagged(s, "NO", "[CANNOT] The owner always has every right");
		return;
	}
	struct setacl_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	memset(op, 0, sizeof(*op));
	op->s = s;
	op->neg = neg;
	op->c.owner_id = r.owner_id;
	op->c.owner_login = r.owner_login;
	op->c.mailbox = r.path;
	op->c.ident = ident;
	op->c.mode = mode;
	char *letters = arena_alloc(s->cmd_arena, sizeof(STORE_ACL_RIGHTS));
	size_t n = 0;
	for (const char *p = STORE_ACL_RIGHTS; *p != '\0'; p++)
		if (mask & imap_acl_right(*p))
			letters[n++] = *p;
	letters[n] = '\0';
	op->c.rights = letters;
	imap_async_begin(s);
	const char *base = ident + neg;
	if (strcasecmp(base, "anyone") == 0 || base[0] == '$')
		setacl_submit(s, op);
	else
		dir_find_user(s->conn.worker, NULL, base, false, setacl_found, op);
}

static void
cmd_deleteacl(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct imap_mref r;
	const char *ident;

	if (cmd->count != 2) {
		imap_bad(s, "Usage: DELETEACL mailbox identifier");
		return;
	}
	if (!ident_arg(s, &cmd->args[1], &ident) || !acl_target(s, &cmd->args[0], "a", &r))
		return;
	if (is_owner_ident(&r, ident + (ident[0] == '-'))) {
		imap_tagged(s, "NO", "[CANNOT] The owner always has every right");
		return;
	}
	struct setacl_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	memset(op, 0, sizeof(*op));
	op->s = s;
	op->c.owner_id = r.owner_id;
	op->c.owner_login = r.owner_login;
	op->c.mailbox = r.path;
	op->c.ident = ident;
	op->c.mode = '=';
	op->c.rights = NULL;
	imap_async_begin(s);
	setacl_submit(s, op);
}

/* ---- GETACL, LISTRIGHTS, MYRIGHTS ---- */

static void
cmd_getacl(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct imap_mref r;
	struct store_acl acl;
	char text[IMAP_ACL_TEXT_MAX];

	if (cmd->count != 1) {
		imap_bad(s, "Usage: GETACL mailbox");
		return;
	}
	if (!acl_target(s, &cmd->args[0], "a", &r))
		return;
	int st = store_acl_get(r.owner_id, r.path, s->cmd_arena, &acl);
	if (st != STORE_OK) {
		imap_tagged_store_status(s, st, cmd->name);
		return;
	}
	struct buf b;
	buf_init(&b, ACL_LINE_MAX);
	buf_append_str(&b, "* ACL ");
	imap_append_mailbox(s, &b, r.shown);
	buf_putc(&b, ' ');
	append_astring(s, &b, r.owner_login);
	imap_acl_rights_text(IMAP_ACL_ALL, text);
	buf_printf(&b, " %s", text);
	for (size_t i = 0; i < acl.n; i++) {
		unsigned m;
		if (imap_acl_parse_rights(acl.entries[i].rights, &m) < 0)
			continue;
		imap_acl_rights_text(m, text);
		buf_putc(&b, ' ');
		append_astring(s, &b, acl.entries[i].ident);
		buf_printf(&b, " %s", text);
	}
	write_line(s, &b);
	buf_free(&b);
	imap_tagged(s, "OK", "GETACL completed");
}

static void
cmd_listrights(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct imap_mref r;
	const char *ident;
	char text[IMAP_ACL_TEXT_MAX];

	if (cmd->count != 2) {
		imap_bad(s, "Usage: LISTRIGHTS mailbox identifier");
		return;
	}
	if (!ident_arg(s, &cmd->args[1], &ident) || !acl_target(s, &cmd->args[0], "a", &r))
		return;
	struct buf b;
	buf_init(&b, ACL_LINE_MAX);
	buf_append_str(&b, "* LISTRIGHTS ");
	imap_append_mailbox(s, &b, r.shown);
	buf_putc(&b, ' ');
	append_astring(s, &b, ident);
	if (is_owner_ident(&r, ident)) {
		/* The owner's rights are all granted, none optional. */
		imap_acl_rights_text(IMAP_ACL_ALL, text);
		buf_printf(&b, " %s", text);
	} else {
		/* Nothing is granted always; each right on its own. */
		buf_append_str(&b, " \"\"");
		for (const char *p = STORE_ACL_RIGHTS; *p != '\0'; p++)
			buf_printf(&b, " %c", *p);
	}
	write_line(s, &b);
	buf_free(&b);
	imap_tagged(s, "OK", "LISTRIGHTS completed");
}

static void
cmd_myrights(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct imap_mref r;
	struct store_acl acl;
	char text[IMAP_ACL_TEXT_MAX];

	if (cmd->count != 1) {
		imap_bad(s, "Usage: MYRIGHTS mailbox");
		return;
	}
	if (imap_mref_get(s, &cmd->args[0], &r) < 0)
		return;
	int st = store_acl_get(r.owner_id, r.path, s->cmd_arena, &acl);
	if (st != STORE_OK) {
		imap_tagged_store_status(s, st, cmd->name);
		return;
	}
	struct buf b;
	buf_init(&b, ACL_LINE_MAX);
	buf_append_str(&b, "* MYRIGHTS ");
	imap_append_mailbox(s, &b, r.shown);
	imap_acl_rights_text(r.rights, text);
	buf_printf(&b, " %s", text);
	write_line(s, &b);
	buf_free(&b);
	imap_tagged(s, "OK", "MYRIGHTS completed");
}

const struct imap_command imap_acl_cmds[] = {
    {"SETACL", IMAP_ST_AUTHED, false, cmd_setacl},
    {"DELETEACL", IMAP_ST_AUTHED, false, cmd_deleteacl},
    {"GETACL", IMAP_ST_AUTHED, false, cmd_getacl},
    {"LISTRIGHTS", IMAP_ST_AUTHED, false, cmd_listrights},
    {"MYRIGHTS", IMAP_ST_AUTHED, false, cmd_myrights},
    {NULL, 0, false, NULL},
};
