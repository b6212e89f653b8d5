/*
 * imap_acl.c - IMAP ACL (RFC 4314) and the shared namespace: SETACL,
 * DELETEACL, GETACL, LISTRIGHTS and MYRIGHTS; the rights of the session
 * on a mailbox; mapping a client's mailbox name to (owner, name in the
 * owner's store) for every other command; and the session's directory
 * groups ("$name" identifiers).
 *
 * Rights are evaluated at each access from the session's identifiers:
 * its login, "anyone", and "$group" for each group dir_user_groups
 * reports. Those are asked again before every command that can reach a
 * shared mailbox (imap_acl_wants_groups); the directory's cache answers
 * within [directory] cache_ttl, so an ldapmodify that removes a member
 * revokes within that time, also for a mailbox already selected (its
 * rights are re-evaluated by imap_acl_recheck before each command).
 *
 * CREATE, DELETE and RENAME reach another user's mailboxes through the
 * same names (imap_mref_new for a new name: "k" on the nearest existing
 * parent, RFC 4314 4); the change is made in the owner's store.
 *
 * How it fails: a bad identifier or right is BAD; no rights at all on a
 * mailbox is [NONEXISTENT] (its existence is not revealed); rights short
 * of the command's are NO [NOPERM]; a directory or store failure is
 * NO [UNAVAILABLE]. A directory that cannot say a user's groups leaves
 * the session with no group identifiers (fails closed).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "core/worker.h"
#include "directory/dir.h"
#include "protocols/imap/imap_internal.h"

static const char order[] = STORE_ACL_RIGHTS; /* bit i is order[i] */

unsigned
imap_acl_right(char c)
{
	const char *p = strchr(order, c);

	return p != NULL && c != '\0' ? 1u << (p - order) : 0;
}

int
imap_acl_parse_rights(const char *str, unsigned *mask_r)
{
	unsigned m = 0;

	for (const char *p = str; *p != '\0'; p++) {
		/* RFC 4314 2.1.1: "c" is "k" and "x", "d" is "t" and "e". */
		if (*p == 'c')
			m |= imap_acl_right('k') | imap_acl_right('x');
		else if (*p == 'd')
			m |= imap_acl_right('t') | imap_acl_right('e');
		else if (imap_acl_right(*p) != 0)
			m |= imap_acl_right(*p);
		else
			return -1;
	}
	*mask_r = m;
	return 0;
}

void
imap_acl_rights_text(unsigned m, char out[IMAP_ACL_TEXT_MAX])
{
	size_t n = 0;

	for (const char *p = order; *p != '\0'; p++)
		if (*p != 'a' && (m & imap_acl_right(*p)))
			out[n++] = *p;
	/* The obsolete letters too, for RFC 2086 clients (2.1.1). */
	if (m & (imap_acl_right('k') | imap_acl_right('x')))
		out[n++] = 'c';
	if (m & (imap_acl_right('t') | imap_acl_right('e')))
		out[n++] = 'd';
	if (m & imap_acl_right('a'))
		out[n++] = 'a';
	out[n] = '\0';
}

/* ---- the session's identifiers ---- */

static bool
ident_is_mine(const struct imap_session *s, const char *ident)
{
	if (strcasecmp(ident, "anyone") == 0 || strcasecmp(ident, s->login) == 0)
		return true;
	if (ident[0] == '$')
		for (size_t i = 0; i < s->ngroups; i++)
			if (strcasecmp(ident + 1, s->groups[i]) == 0)
				return true;
	return false;
}

unsigned
imap_acl_eval(const struct imap_session *s, const char *owner_id, const struct store_acl *acl)
{
	unsigned plus = 0, minus = 0, m;

	if (strcmp(owner_id, s->user_id) == 0)
		return IMAP_ACL_ALL; /* the owner's rights are implicit */
	for (size_t i = 0; i < acl->n; i++) {
		const char *id = acl->entries[i].ident;
		bool neg = id[0] == '-';
		if (!ident_is_mine(s, neg ? id + 1 : id) ||
		    imap_acl_parse_rights(acl->entries[i].rights, &m) < 0)
			continue;
		if (neg)
			minus |= m;
		else
			plus |= m;
	}
	return plus & ~minus;
}

bool
imap_acl_is_shared_name(const char *name)
{
	size_t n = strlen(IMAP_SHARED_PREFIX);

	return strncmp(name, IMAP_SHARED_PREFIX, n) == 0 && (name[n] == '\0' || name[n] == '/');
}

int
imap_acl_shares(struct imap_session *s, struct store_acl_share **shares_r, size_t *n_r)
{
	const char **ids = arena_alloc(s->cmd_arena, (s->ngroups + 2) * sizeof(*ids));
	size_t n = 0;

	ids[n++] = s->login;
	ids[n++] = "anyone";
	for (size_t i = 0; i < s->ngroups; i++)
		ids[n++] = arena_printf(s->cmd_arena, "$%s", s->groups[i]);
	return store_acl_shared(ids, n, s->cmd_arena, shares_r, n_r);
}

/* "Shared/<owner's login>/<owner's name>" into its parts (the owner's
 * INBOX in upper case, as the user's own is case-insensitive).
 * STORE_NOTALLOWED for the namespace's placeholders. */
static int
shared_split(struct imap_session *s, const char *name, const char **login_r, size_t *llen_r,
	     const char **path_r)
{
	const char *login = name + strlen(IMAP_SHARED_PREFIX);
	const char *slash = *login == '/' ? strchr(login + 1, '/') : NULL;

	if (slash == NULL || slash[1] == '\0')
		return STORE_NOTALLOWED;
	*login_r = login + 1;
	*llen_r = (size_t)(slash - login - 1);
	const char *path = slash + 1;
	if (strncasecmp(path, "INBOX", 5) == 0 && (path[5] == '\0' || path[5] == '/')) {
		char *p = arena_strdup(s->cmd_arena, path);
		memcpy(p, "INBOX", 5);
		path = p;
	}
	*path_r = path;
	return STORE_OK;
}

static bool
share_is(const struct imap_session *s, const struct store_acl_share *sh, const char *login,
	 size_t llen)
{
	return strcmp(sh->owner_id, s->user_id) != 0 && strlen(sh->acl.owner_login) == llen &&
	       strncasecmp(sh->acl.owner_login, login, llen) == 0;
}

int
imap_mref_resolve(struct imap_session *s, const char *name, struct imap_mref *r)
{
	memset(r, 0, sizeof(*r));
	if (!imap_acl_is_shared_name(name)) {
		r->owner_id = s->user_id;
		r->owner_login = s->login;
		r->path = name;
		r->shown = name;
		r->rights = IMAP_ACL_ALL;
		return STORE_OK;
	}
	const char *login, *path;
	size_t llen;
	int st = shared_split(s, name, &login, &llen, &path);
	if (st != STORE_OK)
		return st;
	struct store_acl_share *sh;
	size_t n;
	if ((st = imap_acl_shares(s, &sh, &n)) != STORE_OK)
		return st;
	for (size_t i = 0; i < n; i++) {
		if (!share_is(s, &sh[i], login, llen) || strcmp(sh[i].mailbox, path) != 0)
			continue;
		r->owner_id = sh[i].owner_id;
		r->owner_login = sh[i].acl.owner_login;
		r->path = sh[i].mailbox;
		r->shown = name;
		r->shared = true;
		r->rights = imap_acl_eval(s, sh[i].owner_id, &sh[i].acl);
		return r->rights != 0 ? STORE_OK : STORE_NOTFOUND;
	}
	return STORE_NOTFOUND;
}

/* The session's rights on the nearest existing parent of r->path in the
 * owner's store (0 at the top: nothing to inherit from or ask). */
static int
parent_rights(struct imap_session *s, struct imap_mref *r)
{
	char *p = arena_strdup(s->cmd_arena, r->path);
	struct store_mailbox box;
	struct store_acl acl;

	r->rights = 0;
	for (char *slash = strrchr(p, '/'); slash != NULL; slash = strrchr(p, '/')) {
		*slash = '\0';
		int st = store_mailbox_get(r->owner_id, p, s->cmd_arena, &box);
		if (st == STORE_NOTFOUND)
			continue;
		if (st == STORE_OK)
			st = store_acl_get(r->owner_id, p, s->cmd_arena, &acl);
		if (st == STORE_OK)
			r->rights = imap_acl_eval(s, r->owner_id, &acl);
		return st;
	}
	return STORE_OK;
}

int
imap_mref_new(struct imap_session *s, const char *name, struct imap_mref *r)
{
	const char *login, *path;
	size_t llen;
	struct store_acl_share *sh;
	size_t n;
	int st;

	memset(r, 0, sizeof(*r));
	if (shared_split(s, name, &login, &llen, &path) != STORE_OK) {
		imap_tagged(s, "NO",
			    "[CANNOT] \"%s\" is the shared namespace: not for your own mailboxes",
			    IMAP_SHARED_PREFIX);
		return -1;
	}
	if ((st = imap_acl_shares(s, &sh, &n)) != STORE_OK) {
		imap_tagged_store_status(s, st, s->cmd->name);
		return -1;
	}
	/* An owner who shares nothing with the session answers as one who
	 * shares no parent: existence is not revealed. */
	for (size_t i = 0; i < n && r->owner_id == NULL; i++) {
		if (!share_is(s, &sh[i], login, llen))
			continue;
		r->owner_id = sh[i].owner_id;
		r->owner_login = sh[i].acl.owner_login;
		r->path = path;
		r->shown = name;
		r->shared = true;
		if ((st = parent_rights(s, r)) != STORE_OK) {
			imap_tagged_store_status(s, st, s->cmd->name);
			return -1;
		}
	}
	if (!(r->rights & imap_acl_right('k'))) {
		imap_tagged(s, "NO", "[NOPERM] You lack the \"k\" right on the parent mailbox");
		return -1;
	}
	return 0;
}

bool
imap_mref_check(struct imap_session *s, const struct imap_mref *r, const char *need)
{
	unsigned m;

	if (imap_acl_parse_rights(need, &m) == 0 && (r->rights & m) == m)
		return true;
	/* Without "l" (or any right the command needs) the mailbox is not
	 * revealed (RFC 4314 4: as if it did not exist). */
	if (r->rights & (imap_acl_right('l') | imap_acl_right('r')))
		imap_tagged(s, "NO", "[NOPERM] You lack the \"%s\" right on this mailbox", need);
	else
		imap_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
	return false;
}

int
imap_mref_get(struct imap_session *s, const struct imap_arg *arg, struct imap_mref *r)
{
	const char *name = imap_arg_mailbox(s, arg);

	if (name == NULL)
		return -1;
	int st = imap_mref_resolve(s, name, r);
	if (st == STORE_OK)
		return 0;
	if (st == STORE_NOTALLOWED)
		imap_tagged(s, "NO", "[CANNOT] Not a mailbox: a level of the shared namespace");
	else
		imap_tagged_store_status(s, st, s->cmd != NULL ? s->cmd->name : "");
	return -1;
}

/* ---- groups, before a command (imap_session.c) ---- */

bool
imap_acl_wants_groups(const struct imap_session *s, const struct imap_cmd *cmd)
{
	static const char *const always[] = {"LIST",	  "LSUB",	"GETACL",  "SETACL",
					     "DELETEACL", "LISTRIGHTS", "MYRIGHTS"};

	if (s->user_id == NULL || s->dn == NULL)
		return false;
	if (s->view != NULL && s->view->shared)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(always); i++)
		if (strcmp(cmd->name, always[i]) == 0)
			return true;
	for (size_t i = 0; i < cmd->count; i++) {
		const struct imap_arg *a = &cmd->args[i];
		if ((a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING) &&
		    imap_acl_is_shared_name(a->str))
			return true;
	}
	return false;
}

void
imap_acl_set_groups(struct imap_session *s, const struct dir_groups_result *res)
{
	for (size_t i = 0; i < s->ngroups; i++)
		free(s->groups[i]);
	free(s->groups);
	s->groups = NULL;
	s->ngroups = 0;
	if (res->status != DIR_OK) {
		log_info(s->conn.id, s->conn.service, "groups-failed user=%s status=%s", s->login,
			 dir_strerror(res->status));
		return;
	}
	if (res->nnames > 0)
		s->groups = xcalloc(res->nnames, sizeof(*s->groups));
	for (size_t i = 0; i < res->nnames; i++)
		s->groups[s->ngroups++] = xstrdup(res->names[i]);
}

bool
imap_acl_recheck(struct imap_session *s)
{
	struct imap_view *v = s->view;

	if (v == NULL || !v->shared)
		return true;
	struct store_acl acl;
	unsigned now = 0;
	if (store_acl_get(v->owner, v->name, s->cmd_arena, &acl) == STORE_OK)
		now = imap_acl_eval(s, v->owner, &acl);
	v->rights = now;
	if (now & imap_acl_right('r'))
		return true;
	/* Revoked while selected: the mailbox is closed for this session. */
	imap_view_close(s);
	s->state = IMAP_ST_AUTH;
	imap_untagged(s, "OK [CLOSED] Access to the selected mailbox was revoked");
	return false;
}

void
imap_acl_strip_flags(unsigned rights, uint32_t *flags, size_t *nkeywords)
{
	/* RFC 4314 4: flags the user may not set are silently dropped. */
	if (!(rights & imap_acl_right('s')))
		*flags &= ~(uint32_t)STORE_FLAG_SEEN;
	if (!(rights & imap_acl_right('t')))
		*flags &= ~(uint32_t)STORE_FLAG_DELETED;
	if (!(rights & imap_acl_right('w'))) {
		*flags &= STORE_FLAG_SEEN | STORE_FLAG_DELETED;
		*nkeywords = 0;
	}
}

/* ---- the quota of a mailbox's owner (APPEND, COPY, REPLACE) ---- */

struct owner_quota {
	struct imap_session *s;
	uint64_t *quota, *quota_messages;
	void (*go)(void *req);
	void *req;
};

static void
owner_found(void *arg, const struct dir_find_result *res)
{
	struct owner_quota *oq = arg;
	struct imap_session *s = oq->s;

	if (res->status != DIR_OK || res->user == NULL) {
		if (s->cmd != NULL)
			imap_tagged(s, "NO", "[UNAVAILABLE] Cannot find the mailbox owner's quota");
		imap_async_end(s);
		return;
	}
	*oq->quota = res->user->quota;
	*oq->quota_messages = res->user->quota_messages;
	oq->go(oq->req);
}

void
imap_owner_quota(struct imap_session *s, const struct imap_mref *m, uint64_t *quota,
		 uint64_t *quota_messages, void (*go)(void *req), void *req)
{
	if (!m->shared) {
		*quota = s->quota;
		*quota_messages = s->quota_messages;
		go(req);
		return;
	}
	/* Another user's mailbox: their mail grows, so their quota. */
	struct owner_quota *oq = arena_alloc(s->cmd_arena, sizeof(*oq));
	*oq = (struct owner_quota){s, quota, quota_messages, go, req};
	dir_find_user(s->conn.worker, NULL, m->owner_login, false, owner_found, oq);
}
