/*
 * imap_mailbox.c - IMAP mailbox commands: SELECT, EXAMINE, CREATE (with
 * CREATE-SPECIAL-USE, RFC 6154), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
 * CHECK, CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE. LIST, LSUB and STATUS
 * are imap_list.c, APPEND imap_append.c.
 *
 * Names are UTF-8 in the store and converted at the edge with
 * imap_arg_mailbox / imap_append_mailbox. Reads are synchronous; every
 * change goes to the store's writer and is answered from its completion
 * (imap_async_begin/end), so an OK means the change is durable. CREATE,
 * DELETE and RENAME of "Shared/<owner>/..." names change the owner's
 * store, by the rights of RFC 4314 4 (imap_acl.c resolves the names).
 *
 * How it fails: malformed arguments get BAD; store answers become NO with
 * the response code RFC 9051 7.1 names ([NONEXISTENT], [ALREADYEXISTS],
 * [TRYCREATE], [OVERQUOTA], [TOOBIG], [HASCHILDREN], [CANNOT],
 * [UNAVAILABLE]), and [NOPERM] for rights short of a command's. A failed
 * SELECT leaves the session authenticated. A user the store has never
 * seen is created (with the special-use folders) by the first SELECT,
 * EXAMINE, STATUS or LIST, so a new account shows its \Sent, \Drafts...
 * at once and never reports UIDVALIDITY 0.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/compat.h"
#include "core/log.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_qresync.h"
#include "protocols/imap/imap_utf7.h"

static const struct {
	uint32_t bit;
	const char *name;
} special_uses[] = {
    {STORE_SPECIAL_ALL, "\\All"},	{STORE_SPECIAL_ARCHIVE, "\\Archive"},
    {STORE_SPECIAL_DRAFTS, "\\Drafts"}, {STORE_SPECIAL_FLAGGED, "\\Flagged"},
    {STORE_SPECIAL_JUNK, "\\Junk"},	{STORE_SPECIAL_SENT, "\\Sent"},
    {STORE_SPECIAL_TRASH, "\\Trash"},
};

/* ---- helpers ---- */

static void
sync_view(struct imap_session *s)
{
	if (s->view != NULL)
		imap_view_sync(s, true);
}

/* Whether owner_id's mailbox `name` is the selected one. */
bool
imap_is_selected(const struct imap_session *s, const char *owner_id, const char *name)
{
	return s->view != NULL && strcmp(s->view->owner, owner_id) == 0 &&
	       strcmp(s->view->name, name) == 0;
}

static void
unselect(struct imap_session *s)
{
	imap_view_close(s);
	s->state = IMAP_ST_AUTH;
}

/* Writes the line in b (without CRLF) to the client. */
void
imap_write_line(struct imap_session *s, struct buf *b)
{
	buf_append(b, "\r\n", 2);
	imap_write(s, b->data, b->len);
}

void
imap_append_special_use(struct buf *b, uint32_t bits, bool *first)
{
	for (size_t i = 0; i < ARRAY_SIZE(special_uses); i++) {
		if (!(bits & special_uses[i].bit))
			continue;
		buf_printf(b, "%s%s", *first ? "" : " ", special_uses[i].name);
		*first = false;
	}
}

/* ---- creating the user on first use ---- */

/* A user the store has never seen has a virtual, empty INBOX with
 * UIDVALIDITY 0; a SUBSCRIBE of INBOX creates the user with INBOX and the
 * default folders (INBOX is subscribed anyway), then the command runs
 * again from the completion. */
struct materialize {
	struct store_mailbox_change m; /* first: the request */
	imap_cmd_fn *rerun;
};

static void
materialize_done(void *req, void *arg)
{
	struct materialize *mt = req;
	struct imap_session *s = arg;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	if (mt->m.req.status != STORE_OK)
		imap_tagged_store_status(s, mt->m.req.status, s->cmd->name);
	else
		mt->rerun(s, s->cmd); /* s->async is set: it will not come back here */
	imap_async_end(s);
}

/* True if the store has never seen this user (then only a virtual
 * INBOX exists, and no special-use folder yet). */
bool
imap_user_unknown(struct imap_session *s)
{
	struct store_mailbox inbox;

	return store_mailbox_get(s->user_id, "INBOX", s->cmd_arena, &inbox) == STORE_OK &&
	       inbox.uidvalidity == 0;
}

void
imap_materialize(struct imap_session *s, imap_cmd_fn *rerun)
{
	struct materialize *mt = arena_alloc(s->cmd_arena, sizeof(*mt));

	mt->m.req.worker = s->conn.worker;
	mt->m.req.done = materialize_done;
	mt->m.req.arg = s;
	mt->m.req.a = s->cmd_arena;
	mt->m.op = STORE_MBOX_SUBSCRIBE;
	mt->m.user_id = s->user_id;
	mt->m.name = "INBOX";
	mt->rerun = rerun;
	imap_async_begin(s);
	store_mailbox_change(&mt->m);
}

/* ---- SELECT / EXAMINE ---- */

/* The rev1 [UNSEEN n]: the number of the first message without \Seen. */
static uint32_t
first_unseen(struct imap_session *s)
{
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;

	if (store_mailbox_list(s->view->owner, s->view->name, s->cmd_arena, &info, &msgs, &n) !=
	    STORE_OK)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].flags & STORE_FLAG_SEEN)
			continue;
		uint32_t seq = imap_view_seq(s->view, msgs[i].uid);
		if (seq != 0)
			return seq;
	}
	return 0;
}

/* Attributes of one mailbox for LIST: children and special use. */
static void
append_box_attrs(struct buf *b, const struct store_mailbox *box, bool *first)
{
	if (box->noselect) {
		buf_printf(b, "%s\\Noselect", *first ? "" : " ");
		*first = false;
	}
	buf_printf(b, "%s%s", *first ? "" : " ",
		   box->has_children ? "\\HasChildren" : "\\HasNoChildren");
	*first = false;
	imap_append_special_use(b, box->special_use, first);
}

/* SELECT/EXAMINE (QRESYNC ...) with a matching UIDVALIDITY: the UIDs the
 * client knew that are gone (VANISHED (EARLIER)), then the flags of the
 * messages that changed since its mod-sequence, both limited to its
 * known UIDs when it gave them (RFC 7162 3.2.5.1). */
static void
qresync_report(struct imap_session *s, const struct imap_qresync *q)
{
	struct imap_view *v = s->view;
	struct store_msg_info *changed;
	uint32_t *gone;
	size_t nchanged, ngone, nv;
	bool complete;
	struct imap_range *vr;

	if (store_changes_since(s->view->owner, v->name, q->modseq, s->cmd_arena, &changed,
				&nchanged, &gone, &ngone, &complete) != STORE_OK)
		return; /* the client resynchronises the slow way */
	if (imap_qresync_vanished(s->cmd_arena, q->have_known ? q->known : NULL, q->nknown,
				  v->uidnext, v->uids, v->count, gone, ngone, complete,
				  q->match_seq, q->match_uid, q->nmatch, &vr, &nv) == 0 &&
	    nv > 0)
		imap_vanished_send(s, true, vr, nv);
	struct buf *b = &s->out;
	for (size_t i = 0; i < nchanged; i++) {
		const struct store_msg_info *m = &changed[i];
		uint32_t seq = imap_view_seq(v, m->uid);
		if (seq == 0 || (q->have_known && !imap_ranges_has(q->known, q->nknown, m->uid)))
			continue;
		imap_view_keywords(s, m->keywords, m->nkeywords);
		buf_reset(b);
		buf_printf(b, "* %" PRIu32 " FETCH (UID %" PRIu32 " FLAGS (", seq, m->uid);
		imap_append_flags(b, m->flags, m->keywords, m->nkeywords,
				  !s->rev2 && imap_view_is_recent(v, m->uid));
		buf_printf(b, ") MODSEQ (%" PRIu64 "))\r\n", m->modseq);
		imap_write(s, b->data, b->len);
	}
}

static void
select_common(struct imap_session *s, const struct imap_cmd *cmd, bool readonly, imap_cmd_fn *self)
{
	struct store_mailbox box;
	const char *name;
	bool condstore = false;
	struct imap_qresync q;
	bool have_q = false;
	int r;

	if (cmd->count < 1 || cmd->count > 2) {
		imap_bad(s, "Usage: %s mailbox [(CONDSTORE | QRESYNC (...))]", cmd->name);
		return;
	}
	if (cmd->count == 2) {
		const struct imap_arg *p = &cmd->args[1];
		if (p->type != IMAP_ARG_LIST) {
			imap_bad(s, "Usage: %s mailbox [(CONDSTORE | QRESYNC (...))]", cmd->name);
			return;
		}
		for (size_t i = 0; i < p->count; i++) {
			const char *err;
			if (imap_arg_is_atom_ci(&p->list[i], "CONDSTORE") && !condstore) {
				condstore = true;
			} else if (imap_arg_is_atom_ci(&p->list[i], "QRESYNC") && !have_q) {
				/* RFC 7162 3.2.5: only after ENABLE QRESYNC. */
				if (!s->qresync) {
					imap_bad(s, "QRESYNC is not enabled");
					return;
				}
				err = "QRESYNC needs its list";
				if (i + 1 >= p->count ||
				    imap_qresync_parse(s->cmd_arena, &p->list[++i], &q, &err) < 0) {
					imap_bad(s, "%s", err);
					return;
				}
				have_q = true;
			} else {
				imap_bad(s, "Unsupported or repeated %s parameter", cmd->name);
				return;
			}
		}
	}
	struct imap_mref mref;
	if (imap_mref_get(s, &cmd->args[0], &mref) < 0 || !imap_mref_check(s, &mref, "r"))
		return;
	name = mref.shown;
	/* RFC 4314 4: without a right to change anything, read-only. */
	if (!(mref.rights & (imap_acl_right('s') | imap_acl_right('w') | imap_acl_right('t') |
			     imap_acl_right('e'))))
		readonly = true;
	if (s->view != NULL) {
		/* RFC 9051 7.1 (and RFC 7162 3.2.11): the boundary between the
		 * old mailbox's responses and the new one's. The old one is
		 * closed whether or not the new one opens. */
		unselect(s);
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	}
	r = imap_view_open(s, &mref, readonly, &box);
	if (!mref.shared &&
	    ((r == STORE_OK && box.uidvalidity == 0) ||
	     (r == STORE_NOTFOUND && imap_user_unknown(s))) &&
	    !s->async) {
		if (s->view != NULL)
			unselect(s);
		imap_materialize(s, self);
		return;
	}
	if (r != STORE_OK) {
		if (s->view != NULL)
			unselect(s);
		if (r == STORE_NOTALLOWED)
			imap_tagged(s, "NO", "[CANNOT] Mailbox is not selectable");
		else
			imap_tagged_store_status(s, r, cmd->name);
		return;
	}
	s->state = IMAP_ST_SELECTED;
	if (condstore || have_q)
		s->condstore = true;

	struct imap_view *v = s->view;
	struct buf b;
	buf_init(&b, IMAP_LINE_MAX);
	imap_view_flags(s, &box); /* FLAGS, PERMANENTFLAGS */
	imap_untagged(s, "%zu EXISTS", v->count);
	if (!s->rev2) {
		imap_untagged(s, "%zu RECENT", imap_view_recent_count(s->view));
		uint32_t unseen = box.unseen > 0 ? first_unseen(s) : 0;
		if (unseen > 0)
			imap_untagged(s, "OK [UNSEEN %" PRIu32 "] First unseen", unseen);
	}
	imap_untagged(s, "OK [UIDVALIDITY %" PRIu32 "] UIDs valid", v->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %" PRIu32 "] Predicted next UID", v->uidnext);
	if (box.objectid[0] != '\0') /* RFC 8474 4.2 */
		imap_untagged(s, "OK [MAILBOXID (%s)] Ok", box.objectid);
	if (s->condstore)
		imap_untagged(s, "OK [HIGHESTMODSEQ %" PRIu64 "] Highest",
			      imap_view_highestmodseq(v));
	if (s->rev2) {
		/* RFC 9051 6.3.2: the LIST response of the mailbox. */
		bool first = true;
		buf_reset(&b);
		buf_append_str(&b, "* LIST (");
		append_box_attrs(&b, &box, &first);
		buf_append_str(&b, ") \"/\" ");
		if (imap_append_mailbox(s, &b, name) == 0)
			imap_write_line(s, &b);
	}
	buf_free(&b);
	/* With a UIDVALIDITY that no longer holds, the client's cache is
	 * void and QRESYNC is ignored (RFC 7162 3.2.5.1). */
	if (have_q && q.uidvalidity == v->uidvalidity)
		qresync_report(s, &q);
	imap_tagged(s, "OK", "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE", cmd->name);
}

static void
cmd_select(struct imap_session *s, const struct imap_cmd *cmd)
{
	select_common(s, cmd, false, cmd_select);
}

static void
cmd_examine(struct imap_session *s, const struct imap_cmd *cmd)
{
	select_common(s, cmd, true, cmd_examine);
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ---- */

/* A change to the mailboxes of m.user_id: the session's own, or (CREATE,
 * DELETE, RENAME) another user's that the client names under prefix. */
struct mbox_change {
	struct store_mailbox_change m; /* first: the request */
	const char *prefix;	       /* "" or "Shared/<owner>/" */
};

/* RENAME: the selected mailbox (or one below the renamed one) follows
 * its mailbox to the new name; RENAME INBOX only moves its messages. */
static void
view_renamed(struct imap_session *s, const struct mbox_change *c)
{
	const struct store_mailbox_change *m = &c->m;
	struct imap_view *v = s->view;
	size_t fl = strlen(m->name);

	if (v == NULL || strcmp(m->name, "INBOX") == 0 || strcmp(v->owner, m->user_id) != 0 ||
	    strncmp(v->name, m->name, fl) != 0 || (v->name[fl] != '\0' && v->name[fl] != '/'))
		return;
	char *nn = xmalloc(strlen(m->new_name) + strlen(v->name + fl) + 1);
	sprintf(nn, "%s%s", m->new_name, v->name + fl);
	free(v->name);
	v->name = nn;
	free(v->shown);
	v->shown = xmalloc(strlen(c->prefix) + strlen(nn) + 1);
	sprintf(v->shown, "%s%s", c->prefix, nn);
}

static void
mbox_change_done(void *req, void *arg)
{
	struct store_mailbox_change *m = req;
	struct imap_session *s = arg;
	int st = m->req.status;
	const char *what = s->cmd != NULL ? s->cmd->name : "";
	struct store_mailbox box;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	if (st == STORE_OK) {
		switch (m->op) {
		case STORE_MBOX_DELETE:
			if (imap_is_selected(s, m->user_id, m->name))
				unselect(s);
			break;
		case STORE_MBOX_RENAME:
			view_renamed(s, (struct mbox_change *)m);
			break;
		default:
			break;
		}
	}
	sync_view(s);
	if (st == STORE_OK && m->op == STORE_MBOX_CREATE &&
	    store_mailbox_get(m->user_id, m->name, s->cmd_arena, &box) == STORE_OK)
		imap_tagged(s, "OK", "[MAILBOXID (%s)] CREATE completed", box.objectid);
	else if (st == STORE_NOTALLOWED && m->op == STORE_MBOX_DELETE)
		imap_tagged(s, "NO", "[HASCHILDREN] Mailbox has children and is not selectable");
	else if (st == STORE_NOTALLOWED && m->op == STORE_MBOX_RENAME)
		imap_tagged(s, "NO", "[CANNOT] Cannot rename a mailbox into itself");
	else if (st == STORE_PERMFAIL && m->op != STORE_MBOX_DELETE)
		imap_tagged(s, "NO", "[CANNOT] Invalid mailbox name");
	else
		imap_tagged_store_status(s, st, what);
	imap_async_end(s);
}

/* The change in the store of r's owner (r NULL or not shared: the
 * session's own). */
static void
submit_change(struct imap_session *s, const struct imap_mref *r, enum store_mailbox_op op,
	      const char *name, const char *new_name, uint32_t special_use)
{
	struct mbox_change *c = arena_alloc(s->cmd_arena, sizeof(*c));
	struct store_mailbox_change *m = &c->m;

	bool shared = r != NULL && r->shared;

	c->prefix =
	    shared ? arena_printf(s->cmd_arena, "%s/%s/", IMAP_SHARED_PREFIX, r->owner_login) : "";
	m->req.worker = s->conn.worker;
	m->req.done = mbox_change_done;
	m->req.arg = s;
	m->req.a = s->cmd_arena;
	m->op = op;
	m->user_id = shared ? r->owner_id : s->user_id;
	m->name = name;
	m->new_name = new_name;
	m->special_use = special_use;
	imap_async_begin(s);
	store_mailbox_change(m);
}

/* A name of the shared namespace for DELETE or RENAME's source: the
 * other user's mailbox, with right "x" on it (RFC 4314 4). False after
 * a NO. */
static bool
shared_existing(struct imap_session *s, const char *name, struct imap_mref *r)
{
	int st = imap_mref_resolve(s, name, r);

	if (st == STORE_NOTALLOWED)
		imap_tagged(s, "NO", "[CANNOT] Not a mailbox: a level of the shared namespace");
	else if (st != STORE_OK)
		imap_tagged_store_status(s, st, s->cmd->name);
	return st == STORE_OK && imap_mref_check(s, r, "x");
}

/* A new name may not hold LIST's wildcards: no pattern could single it
 * out (RFC 9051 5.1). True after a NO. */
static bool
refuse_wildcards(struct imap_session *s, const char *name)
{
	if (strpbrk(name, "*%") == NULL)
		return false;
	imap_tagged(s, "NO", "[CANNOT] Mailbox names cannot contain * or %%");
	return true;
}

/* CREATE's "(USE (\Sent ...))" (RFC 6154 5.2). 0, -1 after a BAD, or 1
 * after a NO [USEATTR]. */
static int
create_params(struct imap_session *s, const struct imap_arg *p, uint32_t *use_r)
{
	*use_r = 0;
	if (p->type != IMAP_ARG_LIST || p->count != 2 || !imap_arg_is_atom_ci(&p->list[0], "USE") ||
	    p->list[1].type != IMAP_ARG_LIST) {
		imap_bad(s, "Usage: CREATE mailbox [(USE (\\Special ...))]");
		return -1;
	}
	const struct imap_arg *l = &p->list[1];
	for (size_t i = 0; i < l->count; i++) {
		const struct imap_arg *a = &l->list[i];
		size_t k;
		if (a->type != IMAP_ARG_ATOM || a->str[0] != '\\') {
			imap_bad(s, "USE takes special-use attributes");
			return -1;
		}
		for (k = 0; k < ARRAY_SIZE(special_uses); k++)
			if (strcasecmp(a->str, special_uses[k].name) == 0)
				break;
		/* \All and \Flagged name virtual mailboxes, which the store
		 * does not make. */
		if (k == ARRAY_SIZE(special_uses) || special_uses[k].bit == STORE_SPECIAL_ALL ||
		    special_uses[k].bit == STORE_SPECIAL_FLAGGED) {
			imap_tagged(s, "NO", "[USEATTR] Unsupported special-use attribute %s",
				    a->str);
			return 1;
		}
		*use_r |= special_uses[k].bit;
	}
	return 0;
}

static void
cmd_create(struct imap_session *s, const struct imap_cmd *cmd)
{
	uint32_t use = 0;
	const char *name;

	if (cmd->count < 1 || cmd->count > 2) {
		imap_bad(s, "Usage: CREATE mailbox [(USE (\\Special ...))]");
		return;
	}
	if ((name = imap_arg_mailbox(s, &cmd->args[0])) == NULL)
		return;
	if (cmd->count == 2 && create_params(s, &cmd->args[1], &use) != 0)
		return;
	/* RFC 9051 6.3.4: a trailing delimiter declares the intent to create
	 * children; the name itself is created without it. */
	size_t n = strlen(name);
	if (n > 1 && name[n - 1] == '/')
		name = arena_strndup(s->cmd_arena, name, n - 1);
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (refuse_wildcards(s, name))
		return;
	struct imap_mref r = {0};
	if (imap_acl_is_shared_name(name) && imap_mref_new(s, name, &r) < 0)
		return;
	submit_change(s, &r, STORE_MBOX_CREATE, r.shared ? r.path : name, NULL, use);
}

static void
cmd_delete(struct imap_session *s, const struct imap_cmd *cmd)
{
	const char *name;

	if (cmd->count != 1) {
		imap_bad(s, "Usage: DELETE mailbox");
		return;
	}
	if ((name = imap_arg_mailbox(s, &cmd->args[0])) == NULL)
		return;
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, "NO", "[CANNOT] INBOX cannot be deleted");
		return;
	}
	struct imap_mref r = {0};
	if (imap_acl_is_shared_name(name)) {
		if (!shared_existing(s, name, &r))
			return;
		if (strcmp(r.path, "INBOX") == 0) {
			imap_tagged(s, "NO", "[CANNOT] INBOX cannot be deleted");
			return;
		}
		name = r.path;
	}
	submit_change(s, &r, STORE_MBOX_DELETE, name, NULL, 0);
}

static void
cmd_rename(struct imap_session *s, const struct imap_cmd *cmd)
{
	const char *from, *to;

	if (cmd->count != 2) {
		imap_bad(s, "Usage: RENAME from to");
		return;
	}
	if ((from = imap_arg_mailbox(s, &cmd->args[0])) == NULL)
		return;
	if ((to = imap_arg_mailbox(s, &cmd->args[1])) == NULL)
		return;
	/* RFC 4314 4: "x" on the mailbox, "k" on the new parent; mailboxes
	 * stay with their owner. */
	struct imap_mref rf = {0}, rt = {0};
	if (imap_acl_is_shared_name(from) && !shared_existing(s, from, &rf))
		return;
	if (imap_acl_is_shared_name(to) && imap_mref_new(s, to, &rt) < 0)
		return;
	if (rf.shared != rt.shared || (rf.shared && strcmp(rf.owner_id, rt.owner_id) != 0)) {
		imap_tagged(s, "NO", "[CANNOT] A mailbox cannot move to another user");
		return;
	}
	if (rf.shared) {
		from = rf.path;
		to = rt.path;
	}
	if (strcmp(to, "INBOX") == 0) {
		imap_tagged(s, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (refuse_wildcards(s, to))
		return;
	submit_change(s, &rf, STORE_MBOX_RENAME, from, to, 0);
}

static void
subscribe_common(struct imap_session *s, const struct imap_cmd *cmd, enum store_mailbox_op op)
{
	const char *name;

	if (cmd->count != 1) {
		imap_bad(s, "Usage: %s mailbox", cmd->name);
		return;
	}
	if ((name = imap_arg_mailbox(s, &cmd->args[0])) == NULL)
		return;
	submit_change(s, NULL, op, name, NULL, 0);
}

static void
cmd_subscribe(struct imap_session *s, const struct imap_cmd *cmd)
{
	subscribe_common(s, cmd, STORE_MBOX_SUBSCRIBE);
}

static void
cmd_unsubscribe(struct imap_session *s, const struct imap_cmd *cmd)
{
	subscribe_common(s, cmd, STORE_MBOX_UNSUBSCRIBE);
}

/* ---- CLOSE, UNSELECT, EXPUNGE ---- */

struct expunge_op {
	struct store_expunge e; /* first: the request */
	bool close;		/* CLOSE: no EXPUNGE responses, then unselect */
};

static void
expunge_done(struct store_expunge *e, void *arg)
{
	struct expunge_op *op = (struct expunge_op *)e;
	struct imap_session *s = arg;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	if (op->close) {
		/* RFC 9051 6.4.1: CLOSE has no NO; a failed expunge is only
		 * logged. */
		if (e->status != STORE_OK)
			log_warn(s->conn.id, s->conn.service, "close-expunge-failed error=\"%s\"",
				 store_strerror(e->status));
		unselect(s);
		imap_tagged(s, "OK", "CLOSE completed");
	} else {
		imap_view_sync(s, true);
		/* RFC 7162 3.2.7 and 3.2.9: the mailbox's HIGHESTMODSEQ after
		 * the expunge, once CONDSTORE is on. */
		if (e->status == STORE_OK && s->condstore && s->view != NULL)
			imap_tagged(s, "OK", "[HIGHESTMODSEQ %" PRIu64 "] %s completed",
				    imap_view_highestmodseq(s->view),
				    s->cmd->uid ? "UID EXPUNGE" : "EXPUNGE");
		else if (e->status == STORE_OK)
			imap_tagged(s, "OK", "%s completed",
				    s->cmd->uid ? "UID EXPUNGE" : "EXPUNGE");
		else
			imap_tagged_store_status(s, e->status, "EXPUNGE");
	}
	imap_async_end(s);
}

/* The UIDs of the view with \Deleted (within `within` when given). */
static int
deleted_uids(struct imap_session *s, const uint32_t *within, size_t nwithin, uint32_t **uids_r,
	     size_t *n_r)
{
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n, k = 0, w = 0;
	int r = store_mailbox_list(s->view->owner, s->view->name, s->cmd_arena, &info, &msgs, &n);

	if (r != STORE_OK)
		return r;
	uint32_t *uids = arena_alloc(s->cmd_arena, (n + 1) * sizeof(*uids));
	for (size_t i = 0; i < n; i++) {
		uint32_t uid = msgs[i].uid;
		if (!(msgs[i].flags & STORE_FLAG_DELETED) || imap_view_seq(s->view, uid) == 0)
			continue;
		if (within != NULL) {
			while (k < nwithin && within[k] < uid)
				k++;
			if (k == nwithin || within[k] != uid)
				continue;
		}
		uids[w++] = uid;
	}
	*uids_r = uids;
	*n_r = w;
	return STORE_OK;
}

static void
start_expunge(struct imap_session *s, uint32_t *uids, size_t n, bool close)
{
	struct expunge_op *op = arena_alloc(s->cmd_arena, sizeof(*op));

	op->e.user_id = s->view->owner;
	op->e.mailbox = arena_strdup(s->cmd_arena, s->view->name);
	op->e.uids = uids;
	op->e.nuids = n;
	op->e.worker = s->conn.worker;
	op->e.done = expunge_done;
	op->e.arg = s;
	op->close = close;
	imap_async_begin(s);
	store_expunge(&op->e);
}

static void
cmd_close(struct imap_session *s, const struct imap_cmd *cmd)
{
	uint32_t *uids;
	size_t n;

	if (cmd->count != 0) {
		imap_bad(s, "CLOSE takes no arguments");
		return;
	}
	/* Without the "e" right CLOSE only closes (RFC 4314 4). */
	if (!s->view->readonly && (s->view->rights & imap_acl_right('e')) &&
	    deleted_uids(s, NULL, 0, &uids, &n) == STORE_OK && n > 0) {
		start_expunge(s, uids, n, true);
		return;
	}
	unselect(s);
	imap_tagged(s, "OK", "CLOSE completed");
}

static void
cmd_unselect(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 0) {
		imap_bad(s, "UNSELECT takes no arguments");
		return;
	}
	unselect(s);
	imap_tagged(s, "OK", "UNSELECT completed");
}

static void
cmd_expunge(struct imap_session *s, const struct imap_cmd *cmd)
{
	uint32_t *within = NULL, *uids;
	size_t nwithin = 0, n;
	int r;

	if (cmd->uid) {
		struct imap_seqset set;
		if (cmd->count != 1 || cmd->args[0].type != IMAP_ARG_ATOM ||
		    imap_seqset_parse(s->cmd_arena, cmd->args[0].str, &set) < 0 ||
		    imap_seqset_uids(s, &set, true, s->cmd_arena, &within, &nwithin) < 0) {
			imap_bad(s, "Usage: UID EXPUNGE uid-set");
			return;
		}
	} else if (cmd->count != 0) {
		imap_bad(s, "EXPUNGE takes no arguments");
		return;
	}
	if (s->view->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (!(s->view->rights & imap_acl_right('e'))) {
		imap_tagged(s, "NO", "[NOPERM] You lack the \"e\" right on this mailbox");
		return;
	}
	if (cmd->uid && nwithin == 0) {
		imap_view_sync(s, true);
		imap_tagged(s, "OK", "UID EXPUNGE completed");
		return;
	}
	r = deleted_uids(s, within, cmd->uid ? nwithin : 0, &uids, &n);
	if (r != STORE_OK) {
		imap_tagged_store_status(s, r, "EXPUNGE");
		return;
	}
	if (n == 0) {
		imap_view_sync(s, true);
		imap_tagged(s, "OK", "%s completed", cmd->uid ? "UID EXPUNGE" : "EXPUNGE");
		return;
	}
	start_expunge(s, uids, n, false);
}

const struct imap_command imap_mailbox_cmds[] = {
    {"SELECT", IMAP_ST_AUTHED, false, cmd_select},
    {"EXAMINE", IMAP_ST_AUTHED, false, cmd_examine},
    {"CREATE", IMAP_ST_AUTHED, false, cmd_create},
    {"DELETE", IMAP_ST_AUTHED, false, cmd_delete},
    {"RENAME", IMAP_ST_AUTHED, false, cmd_rename},
    {"SUBSCRIBE", IMAP_ST_AUTHED, false, cmd_subscribe},
    {"UNSUBSCRIBE", IMAP_ST_AUTHED, false, cmd_unsubscribe},
    {"CHECK", IMAP_ST_SELECTED, false, imap_cmd_noop},
    {"CLOSE", IMAP_ST_SELECTED, false, cmd_close},
    {"UNSELECT", IMAP_ST_SELECTED, false, cmd_unselect},
    {"EXPUNGE", IMAP_ST_SELECTED, true, cmd_expunge},
    {NULL, 0, false, NULL},
};
