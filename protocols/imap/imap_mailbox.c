/*
 * imap_mailbox.c - IMAP mailbox commands: SELECT, EXAMINE, CREATE (with
 * CREATE-SPECIAL-USE, RFC 6154), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
 * LIST (with LIST-EXTENDED, RFC 5258, and LIST-STATUS, RFC 5819), LSUB,
 * STATUS (with SIZE, APPENDLIMIT, MAILBOXID, HIGHESTMODSEQ), APPEND and
 * MULTIAPPEND (RFC 3502, with APPENDUID of UIDPLUS and the UTF8 literal of
 * RFC 6855), CHECK, CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE.
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

#define LINE_MAX_BYTES (256u * 1024u) /* one LIST/STATUS/FLAGS line */
#define PATTERN_MAX 1024	      /* bytes of one LIST pattern, decoded */

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
static bool
is_selected(const struct imap_session *s, const char *owner_id, const char *name)
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
static void
write_line(struct imap_session *s, struct buf *b)
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
static bool
user_unknown(struct imap_session *s)
{
	struct store_mailbox inbox;

	return store_mailbox_get(s->user_id, "INBOX", s->cmd_arena, &inbox) == STORE_OK &&
	       inbox.uidvalidity == 0;
}

static void
materialize(struct imap_session *s, imap_cmd_fn *rerun)
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

/* ---- STATUS items (STATUS and LIST RETURN (STATUS ...)) ---- */

enum status_item {
	ST_MESSAGES,
	ST_UIDNEXT,
	ST_UIDVALIDITY,
	ST_UNSEEN,
	ST_DELETED,
	ST_SIZE,
	ST_RECENT,
	ST_HIGHESTMODSEQ,
	ST_APPENDLIMIT,
	ST_MAILBOXID,
	ST_COUNT
};

static const char *const status_names[ST_COUNT] = {
    "MESSAGES", "UIDNEXT", "UIDVALIDITY",   "UNSEEN",	   "DELETED",
    "SIZE",	"RECENT",  "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID",
};

struct status_req {
	uint8_t items[ST_COUNT]; /* in the order asked, each once */
	size_t n;
};

/* A parenthesised list of status items. 0, or -1 (BAD). */
static int
status_parse(const struct imap_arg *list, struct status_req *r)
{
	bool seen[ST_COUNT] = {false};

	r->n = 0;
	if (list->type != IMAP_ARG_LIST || list->count == 0)
		return -1;
	for (size_t i = 0; i < list->count; i++) {
		size_t k;
		for (k = 0; k < ST_COUNT; k++)
			if (imap_arg_is_atom_ci(&list->list[i], status_names[k]))
				break;
		if (k == ST_COUNT || list->list[i].type != IMAP_ARG_ATOM)
			return -1;
		if (!seen[k]) {
			seen[k] = true;
			r->items[r->n++] = (uint8_t)k;
		}
	}
	return 0;
}

/* RECENT for STATUS: the selected mailbox's from the view; another's is
 * the messages no session was told about yet (imap_recent.c), which
 * needs the UIDs only when the mailbox has some above the claim. */
static size_t
status_recent(struct imap_session *s, const struct store_mailbox *box)
{
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	uint32_t claimed;
	size_t n, recent = 0;
	struct imap_mref r;

	if (s->rev2)
		return 0;
	/* A shared mailbox's claims are the owner's (imap_recent.c keys
	 * them by the store's mailbox, whoever selects it). */
	if (imap_mref_resolve(s, box->name, &r) != STORE_OK)
		return 0;
	if (is_selected(s, r.owner_id, r.path))
		return imap_view_recent_count(s->view);
	if (box->messages == 0)
		return 0;
	bool known = imap_recent_peek(r.owner_id, box->id, box->uidvalidity, &claimed);
	if (known && claimed + 1 >= box->uidnext)
		return 0;
	if (store_mailbox_list(r.owner_id, r.path, s->cmd_arena, &info, &msgs, &n) != STORE_OK)
		return 0;
	if (!known) {
		time_t started = imap_recent_started();
		claimed = 0;
		for (size_t i = 0; i < n && msgs[i].save_date < started; i++)
			claimed = msgs[i].uid;
	}
	for (size_t i = 0; i < n; i++)
		recent += msgs[i].uid > claimed;
	return recent;
}

/* "* STATUS name (ITEM n ...)" into b (no CRLF). */
static int
status_render(struct imap_session *s, struct buf *b, const struct store_mailbox *box,
	      const struct status_req *r)
{
	buf_append_str(b, "* STATUS ");
	if (imap_append_mailbox(s, b, box->name) < 0)
		return -1;
	buf_append_str(b, " (");
	for (size_t i = 0; i < r->n; i++) {
		const char *sp = i > 0 ? " " : "";
		switch ((enum status_item)r->items[i]) {
		case ST_MESSAGES:
			buf_printf(b, "%sMESSAGES %" PRIu32, sp, box->messages);
			break;
		case ST_UIDNEXT:
			buf_printf(b, "%sUIDNEXT %" PRIu32, sp, box->uidnext);
			break;
		case ST_UIDVALIDITY:
			buf_printf(b, "%sUIDVALIDITY %" PRIu32, sp, box->uidvalidity);
			break;
		case ST_UNSEEN:
			buf_printf(b, "%sUNSEEN %" PRIu32, sp, box->unseen);
			break;
		case ST_DELETED:
			buf_printf(b, "%sDELETED %" PRIu32, sp, box->deleted);
			break;
		case ST_SIZE:
			buf_printf(b, "%sSIZE %" PRIu64, sp, box->bytes);
			break;
		case ST_RECENT:
			buf_printf(b, "%sRECENT %zu", sp, status_recent(s, box));
			break;
		case ST_HIGHESTMODSEQ:
			buf_printf(b, "%sHIGHESTMODSEQ %" PRIu64, sp, box->highestmodseq);
			break;
		case ST_APPENDLIMIT:
			if (s->cfg->message_size_max > 0)
				buf_printf(b, "%sAPPENDLIMIT %" PRIu64, sp,
					   s->cfg->message_size_max);
			else
				buf_printf(b, "%sAPPENDLIMIT NIL", sp);
			break;
		case ST_MAILBOXID:
			buf_printf(b, "%sMAILBOXID (%s)", sp, box->objectid);
			break;
		case ST_COUNT:
			break;
		}
	}
	return buf_append_str(b, ")");
}

static void
cmd_status(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct status_req req;
	struct store_mailbox box;
	const char *name;
	int r;

	if (cmd->count != 2 || status_parse(&cmd->args[1], &req) < 0) {
		imap_bad(s, "Usage: STATUS mailbox (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED "
			    "SIZE RECENT HIGHESTMODSEQ APPENDLIMIT MAILBOXID)");
		return;
	}
	for (size_t i = 0; i < req.n; i++)
		if (req.items[i] == ST_HIGHESTMODSEQ)
			imap_condstore_enable(s); /* RFC 7162 3.1 */
	struct imap_mref mref;
	if (imap_mref_get(s, &cmd->args[0], &mref) < 0 || !imap_mref_check(s, &mref, "r"))
		return;
	name = mref.path;
	r = store_mailbox_get(mref.owner_id, name, s->cmd_arena, &box);
	if (r == STORE_OK)
		box.name = mref.shown; /* as the client named it */
	if (!mref.shared &&
	    ((r == STORE_OK && box.uidvalidity == 0 && !box.noselect) ||
	     (r == STORE_NOTFOUND && user_unknown(s))) &&
	    !s->async) {
		materialize(s, cmd_status);
		return;
	}
	if (r == STORE_OK && box.noselect)
		r = STORE_NOTALLOWED;
	if (r != STORE_OK) {
		sync_view(s);
		if (r == STORE_NOTALLOWED)
			imap_tagged(s, "NO", "[CANNOT] Mailbox is not selectable");
		else
			imap_tagged_store_status(s, r, "STATUS");
		return;
	}
	struct buf b;
	buf_init(&b, LINE_MAX_BYTES);
	if (status_render(s, &b, &box, &req) == 0)
		write_line(s, &b);
	buf_free(&b);
	sync_view(s);
	imap_tagged(s, "OK", "STATUS completed");
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
	    ((r == STORE_OK && box.uidvalidity == 0) || (r == STORE_NOTFOUND && user_unknown(s))) &&
	    !s->async) {
		if (s->view != NULL)
			unselect(s);
		materialize(s, self);
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
	buf_init(&b, LINE_MAX_BYTES);
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
			write_line(s, &b);
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
			if (is_selected(s, m->user_id, m->name))
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

/* ---- LIST and LSUB ---- */

/* One name of the hierarchy: a mailbox, a subscription, or an ancestor
 * of either. */
struct node {
	const char *name;
	const struct store_mailbox *box; /* NULL: no such mailbox */
	bool subscribed;
	bool has_children; /* a mailbox exists below it */
	bool sub_below;	   /* a subscribed name exists below it */
};

static int
node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct node *)a)->name, ((const struct node *)b)->name);
}

static struct node *
node_find(struct node *nodes, size_t n, const char *name)
{
	struct node key = {.name = name};
	return bsearch(&key, nodes, n, sizeof(*nodes), node_cmp);
}

/* Every mailbox, every subscribed name and every ancestor of those,
 * sorted, with their child information. */
static struct node *
build_nodes(struct arena *a, const struct store_mailbox *boxes, size_t nboxes,
	    const char *const *subs, size_t nsubs, size_t *n_r)
{
	size_t cap = 0, n = 0;

	for (size_t i = 0; i < nboxes + nsubs; i++) {
		const char *name = i < nboxes ? boxes[i].name : subs[i - nboxes];
		cap++;
		for (const char *p = name; (p = strchr(p, '/')) != NULL; p++)
			cap++;
	}
	struct node *nodes = arena_alloc(a, (cap + 1) * sizeof(*nodes));
	for (size_t i = 0; i < nboxes + nsubs; i++) {
		const char *name = i < nboxes ? boxes[i].name : subs[i - nboxes];
		nodes[n].name = name;
		nodes[n].box = i < nboxes ? &boxes[i] : NULL;
		nodes[n].subscribed = i >= nboxes;
		n++;
		for (const char *p = name; (p = strchr(p, '/')) != NULL; p++) {
			nodes[n].name = arena_strndup(a, name, (size_t)(p - name));
			n++;
		}
	}
	qsort(nodes, n, sizeof(*nodes), node_cmp);
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (w > 0 && strcmp(nodes[w - 1].name, nodes[i].name) == 0) {
			if (nodes[i].box != NULL)
				nodes[w - 1].box = nodes[i].box;
			nodes[w - 1].subscribed |= nodes[i].subscribed;
			continue;
		}
		nodes[w++] = nodes[i];
	}
	n = w;
	/* Tell each ancestor what lies below it. */
	for (size_t i = 0; i < n; i++) {
		if (nodes[i].box == NULL && !nodes[i].subscribed)
			continue;
		const char *name = nodes[i].name;
		for (const char *p = name; (p = strchr(p, '/')) != NULL; p++) {
			char *anc = arena_strndup(a, name, (size_t)(p - name));
			struct node *up = node_find(nodes, n, anc);
			if (up == NULL)
				continue;
			if (nodes[i].box != NULL)
				up->has_children = true;
			if (nodes[i].subscribed)
				up->sub_below = true;
		}
	}
	*n_r = n;
	return nodes;
}

/* RFC 9051 6.3.9 matching: "*" matches anything, "%" anything but the
 * delimiter. One row of a dynamic programme, so no pattern can make it
 * exponential. */
static bool
pattern_match(const char *pat, const char *name, bool *row, bool *next)
{
	size_t nl = strlen(name);

	for (size_t j = 0; j <= nl; j++)
		row[j] = j == 0;
	for (const char *p = pat; *p != '\0'; p++) {
		next[0] = (*p == '*' || *p == '%') && row[0];
		for (size_t j = 1; j <= nl; j++) {
			char c = name[j - 1];
			if (*p == '*')
				next[j] = row[j] || next[j - 1];
			else if (*p == '%')
				next[j] = row[j] || (next[j - 1] && c != '/');
			else
				next[j] = row[j - 1] && c == *p;
		}
		memcpy(row, next, (nl + 1) * sizeof(*row));
	}
	return row[nl];
}

/* A LIST pattern or reference as text: atoms (with wildcards), quoted
 * strings and literals. */
static bool
arg_list_mailbox(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL || a->type == IMAP_ARG_STRING ||
	    (a->type == IMAP_ARG_LITERAL && !a->binary)) {
		*s_r = a->str;
		*len_r = a->len;
		return memchr(a->str, '\0', a->len) == NULL;
	}
	return false;
}

/* Decodes a reference or pattern to UTF-8 (NULL if it is not valid
 * modified UTF-7: it can then match nothing). */
static char *
decode_name(struct imap_session *s, const char *str, size_t len)
{
	if (s->utf8)
		return arena_strndup(s->cmd_arena, str, len);
	struct buf tmp;
	buf_init(&tmp, 4 * len + 16);
	char *r = NULL;
	if (imap_utf7_to_utf8(str, len, &tmp) == 0)
		r = arena_strndup(s->cmd_arena, tmp.data != NULL ? tmp.data : "", tmp.len);
	buf_free(&tmp);
	return r;
}

/* reference + pattern as one canonical pattern (INBOX in upper case,
 * runs of wildcards folded), or NULL if it can match nothing. */
static char *
full_pattern(struct imap_session *s, const char *ref, const char *pat)
{
	size_t rl = strlen(ref), pl = strlen(pat);
	char *full = arena_alloc(s->cmd_arena, rl + pl + 1);

	/* RFC 9051 6.3.9: the pattern is read in the reference's context;
	 * one starting with the delimiter stands on its own. */
	if (pat[0] == '/' || rl == 0) {
		memcpy(full, pat, pl + 1);
	} else {
		memcpy(full, ref, rl);
		memcpy(full + rl, pat, pl + 1);
	}
	size_t w = 0;
	for (size_t i = 0; full[i] != '\0'; i++) {
		char c = full[i];
		if ((c == '*' || c == '%') && w > 0 && (full[w - 1] == '*' || full[w - 1] == '%')) {
			if (c == '*')
				full[w - 1] = '*';
			continue;
		}
		full[w++] = c;
	}
	full[w] = '\0';
	if (w > PATTERN_MAX)
		return NULL;
	if (strncasecmp(full, "INBOX", 5) == 0 && (full[5] == '\0' || full[5] == '/'))
		memcpy(full, "INBOX", 5);
	return full;
}

struct list_opts {
	bool extended;	     /* LIST-EXTENDED syntax was used */
	bool sel_subscribed; /* selection options */
	bool sel_special;
	bool recursive;
	bool ret_subscribed; /* return options */
	bool ret_status;
	bool ret_myrights; /* RFC 8440 */
	struct status_req status;
	bool lsub;
	const char *oldname; /* NOTIFY's rename (RFC 5465 5.4), or NULL */
};

static int
parse_selection(const struct imap_arg *l, struct list_opts *o)
{
	bool other = false;

	for (size_t i = 0; i < l->count; i++) {
		const struct imap_arg *a = &l->list[i];
		if (imap_arg_is_atom_ci(a, "SUBSCRIBED")) {
			o->sel_subscribed = o->ret_subscribed = true;
			other = true;
		} else if (imap_arg_is_atom_ci(a, "SPECIAL-USE")) {
			o->sel_special = true;
			other = true;
		} else if (imap_arg_is_atom_ci(a, "RECURSIVEMATCH")) {
			o->recursive = true;
		} else if (!imap_arg_is_atom_ci(a, "REMOTE")) {
			return -1; /* RFC 5258 3: unknown options are a BAD */
		}
	}
	/* RECURSIVEMATCH alone (or with REMOTE) is an error. */
	return o->recursive && !other ? -1 : 0;
}

static int
parse_return(const struct imap_arg *l, struct list_opts *o)
{
	if (l->type != IMAP_ARG_LIST)
		return -1;
	for (size_t i = 0; i < l->count; i++) {
		const struct imap_arg *a = &l->list[i];
		if (imap_arg_is_atom_ci(a, "SUBSCRIBED")) {
			o->ret_subscribed = true;
		} else if (imap_arg_is_atom_ci(a, "CHILDREN") ||
			   imap_arg_is_atom_ci(a, "SPECIAL-USE")) {
			/* Child and special-use attributes are always given. */
		} else if (imap_arg_is_atom_ci(a, "STATUS") && i + 1 < l->count) {
			if (status_parse(&l->list[++i], &o->status) < 0)
				return -1;
			o->ret_status = true;
		} else if (imap_arg_is_atom_ci(a, "MYRIGHTS")) {
			o->ret_myrights = true;
		} else {
			return -1;
		}
	}
	return 0;
}

/* LIST-MYRIGHTS (RFC 8440): "* MYRIGHTS name rights" after the mailbox's
 * LIST line, as MYRIGHTS would answer (every right on the user's own). */
static void
list_myrights(struct imap_session *s, struct buf *b, const char *name)
{
	struct imap_mref r;
	char text[IMAP_ACL_TEXT_MAX];
	unsigned rights = IMAP_ACL_ALL;

	if (imap_acl_is_shared_name(name)) {
		if (imap_mref_resolve(s, name, &r) != STORE_OK)
			return;
		rights = r.rights;
	}
	imap_acl_rights_text(rights, text);
	buf_reset(b);
	buf_append_str(b, "* MYRIGHTS ");
	if (imap_append_mailbox(s, b, name) < 0)
		return;
	buf_printf(b, " %s", text);
	write_line(s, b);
}

static void
list_one(struct imap_session *s, struct buf *b, const struct list_opts *o, const struct node *nd,
	 bool lsub_parent)
{
	bool first = true;

	buf_reset(b);
	buf_append_str(b, o->lsub ? "* LSUB (" : "* LIST (");
	if (o->lsub) {
		if (lsub_parent || nd->box == NULL || nd->box->noselect)
			buf_append_str(b, "\\Noselect");
	} else {
		if (nd->box == NULL) {
			/* \NonExistent is LIST-EXTENDED's and rev2's. */
			buf_append_str(b, o->extended || s->rev2 ? "\\NonExistent" : "\\Noselect");
			first = false;
		} else if (nd->box->noselect) {
			buf_append_str(b, "\\Noselect");
			first = false;
		}
		if (o->ret_subscribed && nd->subscribed) {
			buf_printf(b, "%s\\Subscribed", first ? "" : " ");
			first = false;
		}
		if (nd->has_children || nd->box != NULL) {
			buf_printf(b, "%s%s", first ? "" : " ",
				   nd->has_children ? "\\HasChildren" : "\\HasNoChildren");
			first = false;
		}
		if (nd->box != NULL)
			imap_append_special_use(b, nd->box->special_use, &first);
	}
	buf_append_str(b, ") \"/\" ");
	if (imap_append_mailbox(s, b, nd->name) < 0)
		return;
	if (!o->lsub && o->recursive && o->sel_subscribed && nd->sub_below)
		buf_append_str(b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	if (o->oldname != NULL) {
		buf_append_str(b, " (\"OLDNAME\" (");
		imap_append_mailbox(s, b, o->oldname);
		buf_append_str(b, "))");
	}
	write_line(s, b);
	if (!o->lsub && o->ret_status && nd->box != NULL && !nd->box->noselect) {
		buf_reset(b);
		if (status_render(s, b, nd->box, &o->status) == 0)
			write_line(s, b);
	}
	if (!o->lsub && o->ret_myrights && nd->box != NULL && !nd->box->noselect)
		list_myrights(s, b, nd->name);
}

void
imap_list_notify(struct imap_session *s, const char *name, const struct store_mailbox *box,
		 bool subscribed, const char *oldname)
{
	struct list_opts o = {.extended = true, .ret_subscribed = true, .oldname = oldname};
	struct node nd = {.name = name,
			  .box = box,
			  .subscribed = subscribed,
			  .has_children = box != NULL && box->has_children};
	struct buf b;

	buf_init(&b, LINE_MAX_BYTES);
	list_one(s, &b, &o, &nd, false);
	buf_free(&b);
}

void
imap_status_notify(struct imap_session *s, const struct store_mailbox *box)
{
	struct status_req r = {
	    .items = {ST_MESSAGES, ST_UIDNEXT, ST_UIDVALIDITY, ST_UNSEEN, ST_HIGHESTMODSEQ},
	    .n = s->condstore ? 5 : 4};
	struct buf b;

	buf_init(&b, LINE_MAX_BYTES);
	if (status_render(s, &b, box, &r) == 0)
		write_line(s, &b);
	buf_free(&b);
}

/* A name below "Shared/<owner>/": a mailbox level, not the namespace's. */
static bool
shared_mailbox_level(const char *name)
{
	const char *p = imap_acl_is_shared_name(name) ? strchr(name, '/') : NULL;

	return p != NULL && strchr(p + 1, '/') != NULL;
}

/* Appends the mailboxes other users share with the session and on which
 * it has the "l" right, as "Shared/<owner>/<name>" (their ancestors
 * become \Noselect levels of the hierarchy). A store error leaves them
 * out. */
static void
add_shared(struct imap_session *s, struct store_mailbox **boxes, size_t *nboxes)
{
	struct store_acl_share *sh;
	size_t n;

	if (imap_acl_shares(s, &sh, &n) != STORE_OK || n == 0)
		return;
	struct store_mailbox *all = arena_alloc(s->cmd_arena, (*nboxes + n) * sizeof(*all));
	memcpy(all, *boxes, *nboxes * sizeof(*all));
	size_t k = *nboxes;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(sh[i].owner_id, s->user_id) == 0 || sh[i].acl.owner_login[0] == '\0' ||
		    strchr(sh[i].acl.owner_login, '/') != NULL ||
		    !(imap_acl_eval(s, sh[i].owner_id, &sh[i].acl) & imap_acl_right('l')))
			continue;
		if (store_mailbox_get(sh[i].owner_id, sh[i].mailbox, s->cmd_arena, &all[k]) !=
		    STORE_OK)
			continue;
		all[k].name = arena_printf(s->cmd_arena, "%s/%s/%s", IMAP_SHARED_PREFIX,
					   sh[i].acl.owner_login, sh[i].mailbox);
		all[k].subscribed = false;
		all[k].has_children = false; /* build_nodes sees the shared children */
		all[k].special_use = 0;
		k++;
	}
	*boxes = all;
	*nboxes = k;
}

static void
list_common(struct imap_session *s, const struct imap_cmd *cmd, struct list_opts *o,
	    imap_cmd_fn *self)
{
	const struct imap_arg *args = cmd->args;
	size_t i = 0, npat = 0;
	const char *str;
	size_t len;

	if (!o->lsub && cmd->count > 0 && args[0].type == IMAP_ARG_LIST) {
		o->extended = true;
		if (parse_selection(&args[0], o) < 0)
			goto bad;
		i++;
	}
	if (cmd->count < i + 2 || !arg_list_mailbox(&args[i], &str, &len))
		goto bad;
	char *ref = decode_name(s, str, len);
	const struct imap_arg *pa = &args[i + 1];
	const struct imap_arg *pats = pa;
	size_t npa = 1;
	if (pa->type == IMAP_ARG_LIST && !o->lsub) {
		o->extended = true;
		pats = pa->list;
		npa = pa->count;
		if (npa == 0)
			goto bad;
	}
	i += 2;
	if (i < cmd->count) {
		if (o->lsub || i + 2 != cmd->count || !imap_arg_is_atom_ci(&args[i], "RETURN") ||
		    parse_return(&args[i + 1], o) < 0)
			goto bad;
		o->extended = true;
		for (size_t k = 0; o->ret_status && k < o->status.n; k++)
			if (o->status.items[k] == ST_HIGHESTMODSEQ)
				imap_condstore_enable(s); /* as STATUS (RFC 7162 3.1) */
	}
	char **full = arena_alloc(s->cmd_arena, (npa + 1) * sizeof(*full));
	bool *percent = arena_alloc(s->cmd_arena, (npa + 1) * sizeof(*percent));
	/* INBOX is case-insensitive (RFC 9051 5.1) also where a wildcard
	 * follows it ("inbox*"): the pattern with that prefix in upper case,
	 * tried on INBOX and its children only. */
	char **inbox_alt = arena_alloc(s->cmd_arena, (npa + 1) * sizeof(*inbox_alt));
	bool want_root = false;
	for (size_t k = 0; k < npa; k++) {
		if (!arg_list_mailbox(&pats[k], &str, &len))
			goto bad;
		if (len == 0) {
			want_root = true;
			continue;
		}
		char *pat = decode_name(s, str, len);
		if (ref == NULL || pat == NULL)
			continue;
		char *f = full_pattern(s, ref, pat);
		if (f == NULL)
			continue;
		percent[npat] = f[strlen(f) - 1] == '%';
		inbox_alt[npat] = NULL;
		if (strncasecmp(f, "INBOX", 5) == 0 && strncmp(f, "INBOX", 5) != 0) {
			inbox_alt[npat] = arena_strdup(s->cmd_arena, f);
			memcpy(inbox_alt[npat], "INBOX", 5);
		}
		full[npat++] = f;
	}

	struct store_mailbox *boxes;
	const char **subs;
	size_t nboxes, nsubs;
	int r = store_mailbox_list_all(s->user_id, s->cmd_arena, &boxes, &nboxes, &subs, &nsubs);
	if (r != STORE_OK) {
		imap_tagged_store_status(s, r, cmd->name);
		return;
	}
	if (nboxes == 1 && boxes[0].uidvalidity == 0 && !s->async) {
		materialize(s, self);
		return;
	}
	add_shared(s, &boxes, &nboxes);

	struct buf b;
	buf_init(&b, LINE_MAX_BYTES);
	if (want_root) {
		/* RFC 9051 6.3.9: the delimiter and the root of the one flat
		 * namespace. */
		buf_printf(&b, "* %s (\\Noselect) \"/\" \"\"", o->lsub ? "LSUB" : "LIST");
		write_line(s, &b);
	}
	size_t nn = 0;
	struct node *nodes =
	    npat > 0 ? build_nodes(s->cmd_arena, boxes, nboxes, subs, nsubs, &nn) : NULL;
	bool *row = arena_alloc(s->cmd_arena, (STORE_MAILBOX_NAME_MAX + 2) * sizeof(bool) * 2);
	bool *next = row + STORE_MAILBOX_NAME_MAX + 2;
	struct node *inbox = nn > 0 ? node_find(nodes, nn, "INBOX") : NULL;
	/* INBOX first, as clients expect; the rest in name order. */
	for (size_t k = 0; k <= nn && npat > 0; k++) {
		const struct node *nd;
		if (k == 0) {
			if (inbox == NULL)
				continue;
			nd = inbox;
		} else {
			nd = &nodes[k - 1];
			if (nd == inbox)
				continue;
		}
		if (strlen(nd->name) > STORE_MAILBOX_NAME_MAX)
			continue;
		bool match = false, pct = false;
		for (size_t q = 0; q < npat; q++) {
			if (pattern_match(full[q], nd->name, row, next) ||
			    (inbox_alt[q] != NULL && strncmp(nd->name, "INBOX", 5) == 0 &&
			     pattern_match(inbox_alt[q], nd->name, row, next))) {
				match = true;
				pct |= percent[q];
			}
		}
		if (!match)
			continue;
		if (o->lsub) {
			/* RFC 3501 6.3.9: with "%" last, an unsubscribed
			 * parent of subscribed names is listed \Noselect. */
			if (nd->subscribed)
				list_one(s, &b, o, nd, false);
			else if (pct && nd->sub_below)
				list_one(s, &b, o, nd, true);
			continue;
		}
		/* RFC 4314 4: a level of another user's hierarchy that the
		 * session may not list (a hidden or missing parent of what it
		 * may) behaves as if it did not exist: only a trailing "%"
		 * shows it, as a level (RFC 9051 6.3.9). */
		if (nd->box == NULL && !pct && shared_mailbox_level(nd->name))
			continue;
		bool selected =
		    o->sel_subscribed ? nd->subscribed : nd->box != NULL || nd->has_children;
		if (o->sel_special && (nd->box == NULL || nd->box->special_use == 0))
			selected = false;
		/* RFC 5258 3: RECURSIVEMATCH also lists a matching name whose
		 * descendants (matching or not) satisfy the selection. */
		bool childinfo = o->recursive && o->sel_subscribed && nd->sub_below;
		if (!selected && !childinfo)
			continue;
		list_one(s, &b, o, nd, false);
	}
	buf_free(&b);
	sync_view(s);
	imap_tagged(s, "OK", "%s completed", cmd->name);
	return;
bad:
	if (o->lsub)
		imap_bad(s, "Usage: LSUB reference pattern");
	else
		imap_bad(s, "Usage: LIST [(selection options)] reference pattern|(patterns) "
			    "[RETURN (return options)]");
}

static void
cmd_list(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct list_opts o;

	memset(&o, 0, sizeof(o));
	list_common(s, cmd, &o, cmd_list);
}

static void
cmd_lsub(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct list_opts o;

	memset(&o, 0, sizeof(o));
	o.lsub = true;
	list_common(s, cmd, &o, cmd_lsub);
}

/* ---- APPEND ---- */

static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int
digits(const char *p, size_t n, int *v_r)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*v_r = v;
	return 0;
}

/* RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day either two
 * digits or a space and one. 0 and the time, or -1. */
static int
parse_date_time(const char *str, size_t len, time_t *t_r)
{
	int day, year, hh, mm, ss, zh, zm, mon;
	struct tm tm;

	if (len != 26 || str[2] != '-' || str[6] != '-' || str[11] != ' ' || str[14] != ':' ||
	    str[17] != ':' || str[20] != ' ' || (str[21] != '+' && str[21] != '-'))
		return -1;
	if (str[0] == ' ' ? digits(str + 1, 1, &day) : digits(str, 2, &day))
		return -1;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(str + 3, months[mon], 3) == 0)
			break;
	if (mon == 12 || digits(str + 7, 4, &year) || digits(str + 12, 2, &hh) ||
	    digits(str + 15, 2, &mm) || digits(str + 18, 2, &ss) || digits(str + 22, 2, &zh) ||
	    digits(str + 24, 2, &zm))
		return -1;
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap) || hh > 23 || mm > 59 ||
	    ss > 60 || zh > 23 || zm > 59)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss > 59 ? 59 : ss;
	time_t t = timegm(&tm);
	long off = (zh * 60L + zm) * 60L;
	t = str[21] == '+' ? t - off : t + off;
	/* 0 means "now" to the store; earlier dates are not kept. */
	if (t <= 0)
		return -1;
	*t_r = t;
	return 0;
}

static bool
keyword_ok(const char *k, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* An APPEND flag list. 0, -1 (BAD) or 1 (NO [LIMIT] sent). */
static int
parse_append_flags(struct imap_session *s, const struct imap_arg *l, struct store_append_msg *m)
{
	const char **kw = arena_alloc(s->cmd_arena, (l->count + 1) * sizeof(*kw));
	size_t nkw = 0;
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {
	    {"\\Seen", STORE_FLAG_SEEN},       {"\\Answered", STORE_FLAG_ANSWERED},
	    {"\\Flagged", STORE_FLAG_FLAGGED}, {"\\Deleted", STORE_FLAG_DELETED},
	    {"\\Draft", STORE_FLAG_DRAFT},
	};

	for (size_t i = 0; i < l->count; i++) {
		const struct imap_arg *a = &l->list[i];
		if (a->type != IMAP_ARG_ATOM)
			return -1;
		if (a->str[0] == '\\') {
			size_t k;
			for (k = 0; k < ARRAY_SIZE(sys); k++)
				if (strcasecmp(a->str, sys[k].name) == 0)
					break;
			if (k < ARRAY_SIZE(sys)) {
				m->flags |= sys[k].bit;
				continue;
			}
			if (strcasecmp(a->str, "\\Recent") == 0)
				continue; /* not settable; ignored */
			return -1;
		}
		if (!keyword_ok(a->str, a->len))
			return -1;
		if (a->len > STORE_KEYWORD_MAX) {
			imap_tagged(s, "NO", "[LIMIT] Keyword too long");
			return 1;
		}
		bool dup = false;
		for (size_t j = 0; j < nkw && !dup; j++)
			dup = strcasecmp(kw[j], a->str) == 0;
		if (!dup)
			kw[nkw++] = a->str;
	}
	m->keywords = nkw > 0 ? kw : NULL;
	m->nkeywords = nkw;
	return 0;
}

struct append_op {
	struct store_append ap; /* first: the request */
	const char *name;
	struct imap_session *s;
};

/* UIDs as a uid-set ("4", "4:6", "4,7:8"). */
static void
append_uid_set(struct buf *b, const struct store_append_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && msgs[j + 1].uid == msgs[j].uid + 1)
			j++;
		buf_printf(b, "%s%" PRIu32, i > 0 ? "," : "", msgs[i].uid);
		if (j > i)
			buf_printf(b, ":%" PRIu32, msgs[j].uid);
		i = j + 1;
	}
}

static void
append_done(void *req, void *arg)
{
	struct append_op *op = req;
	struct imap_session *s = arg;
	int st = op->ap.req.status;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	/* A message appended to the selected mailbox is reported (EXISTS)
	 * before the tagged reply. */
	sync_view(s);
	if (st == STORE_OK) {
		struct buf set;
		buf_init(&set, 64 * op->ap.nmsgs + 64);
		append_uid_set(&set, op->ap.msgs, op->ap.nmsgs);
		imap_tagged(s, "OK", "[APPENDUID %" PRIu32 " %s] APPEND completed",
			    op->ap.uidvalidity, buf_cstr(&set));
		buf_free(&set);
	} else if (st == STORE_NOTFOUND) {
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox does not exist");
	} else if (st == STORE_NOTALLOWED) {
		imap_tagged(s, "NO", "[CANNOT] Mailbox is not selectable");
	} else if (st == STORE_TOOBIG) {
		imap_tagged(s, "NO", "[TOOBIG] Message is larger than the quota");
	} else if (st == STORE_OVERQUOTA) {
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded");
	} else {
		imap_tagged_store_status(s, st, "APPEND");
	}
	imap_async_end(s);
}

static void
append_go(void *req)
{
	store_append(req);
}

int
imap_append_parse(struct imap_session *s, const struct imap_arg *args, size_t count, size_t *ip,
		  struct store_append_msg *m, const char *what)
{
	size_t i = *ip;

	memset(m, 0, sizeof(*m));
	if (i < count && args[i].type == IMAP_ARG_LIST) {
		int r = parse_append_flags(s, &args[i], m);
		if (r > 0)
			return -1;
		if (r < 0) {
			imap_bad(s, "Invalid flag list");
			return -1;
		}
		i++;
	}
	if (i < count && args[i].type == IMAP_ARG_STRING) {
		if (parse_date_time(args[i].str, args[i].len, &m->internal_date) < 0) {
			imap_bad(s, "Invalid date-time");
			return -1;
		}
		i++;
	}
	if (i < count && args[i].type == IMAP_ARG_LITERAL) {
		/* XXX a bare literal8 is taken as it is (BINARY's
		 * content-transfer-decoding is not done). */
		m->body = args[i].str;
		m->body_len = args[i].len;
		i++;
	} else if (i + 1 < count && imap_arg_is_atom_ci(&args[i], "UTF8") &&
		   args[i + 1].type == IMAP_ARG_LIST && args[i + 1].count == 1 &&
		   args[i + 1].list[0].type == IMAP_ARG_LITERAL && args[i + 1].list[0].binary) {
		/* RFC 6855 4: UTF8 (~{n}...) only after ENABLE. */
		if (!s->utf8) {
			imap_bad(s, "%s UTF8 needs ENABLE UTF8=ACCEPT", what);
			return -1;
		}
		m->body = args[i + 1].list[0].str;
		m->body_len = args[i + 1].list[0].len;
		i += 2;
	} else {
		imap_bad(s, "Usage: %s %smailbox [(flags)] [date-time] literal%s", what,
			 strcmp(what, "APPEND") == 0 ? "" : "message ",
			 strcmp(what, "APPEND") == 0 ? " ..." : "");
		return -1;
	}
	if (m->body_len == 0) {
		imap_tagged(s, "NO", "[CANNOT] Cannot append an empty message");
		return -1;
	}
	*ip = i;
	return 0;
}

static void
cmd_append(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	const char *name;
	size_t n = 0;

	if (cmd->count < 2) {
		imap_bad(s, "Usage: APPEND mailbox [(flags)] [date-time] literal ...");
		return;
	}
	struct imap_mref mref;
	if (imap_mref_get(s, &args[0], &mref) < 0 || !imap_mref_check(s, &mref, "i"))
		return;
	name = mref.path;
	struct store_append_msg *msgs = arena_alloc(s->cmd_arena, cmd->count * sizeof(*msgs));
	for (size_t i = 1; i < cmd->count;) {
		if (imap_append_parse(s, args, cmd->count, &i, &msgs[n], "APPEND") < 0)
			return;
		imap_acl_strip_flags(mref.rights, &msgs[n].flags, &msgs[n].nkeywords);
		n++;
	}
	struct append_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	op->ap.req.worker = s->conn.worker;
	op->ap.req.done = append_done;
	op->ap.req.arg = s;
	op->ap.req.a = s->cmd_arena;
	op->ap.user_id = mref.owner_id;
	op->ap.mailbox = name;
	op->ap.msgs = msgs;
	op->ap.nmsgs = n;
	op->name = name;
	op->s = s;
	imap_async_begin(s);
	imap_owner_quota(s, &mref, &op->ap.quota, &op->ap.quota_messages, append_go, &op->ap);
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
    {"LIST", IMAP_ST_AUTHED, false, cmd_list},
    {"LSUB", IMAP_ST_AUTHED, false, cmd_lsub},
    {"STATUS", IMAP_ST_AUTHED, false, cmd_status},
    {"APPEND", IMAP_ST_AUTHED, false, cmd_append},
    {"CHECK", IMAP_ST_SELECTED, false, imap_cmd_noop},
    {"CLOSE", IMAP_ST_SELECTED, false, cmd_close},
    {"UNSELECT", IMAP_ST_SELECTED, false, cmd_unselect},
    {"EXPUNGE", IMAP_ST_SELECTED, true, cmd_expunge},
    {NULL, 0, false, NULL},
};
