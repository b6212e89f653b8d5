/*
 * imap_list.c - STATUS (with SIZE, APPENDLIMIT, MAILBOXID, HIGHESTMODSEQ,
 * RECENT, DELETED), LIST (with LIST-EXTENDED, RFC 5258, LIST-STATUS, RFC
 * 5819, and LIST-MYRIGHTS, RFC 8440) and LSUB: the user's mailboxes and those
 * others share with them (RFC 4314, under "Shared/<owner>/") matched
 * against the patterns, with the attributes RFC 9051 and the extensions
 * name, and the LIST and STATUS lines NOTIFY sends (imap_list_notify,
 * imap_status_notify).
 *
 * How it fails: malformed arguments get BAD; a store read error NO
 * [UNAVAILABLE]. A pattern that cannot match (bad modified UTF-7, too
 * long) matches nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compat.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_utf7.h"

#define PATTERN_MAX 1024 /* bytes of one LIST pattern, decoded */

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
	if (imap_is_selected(s, r.owner_id, r.path))
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
	     (r == STORE_NOTFOUND && imap_user_unknown(s))) &&
	    !s->async) {
		imap_materialize(s, cmd_status);
		return;
	}
	if (r == STORE_OK && box.noselect)
		r = STORE_NOTALLOWED;
	if (r != STORE_OK) {
		if (s->view != NULL)
			imap_view_sync(s, true);
		if (r == STORE_NOTALLOWED)
			imap_tagged(s, "NO", "[CANNOT] Mailbox is not selectable");
		else
			imap_tagged_store_status(s, r, "STATUS");
		return;
	}
	struct buf b;
	buf_init(&b, IMAP_LINE_MAX);
	if (status_render(s, &b, &box, &req) == 0)
		imap_write_line(s, &b);
	buf_free(&b);
	if (s->view != NULL)
		imap_view_sync(s, true);
	imap_tagged(s, "OK", "STATUS completed");
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
	imap_write_line(s, b);
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
	imap_write_line(s, b);
	if (!o->lsub && o->ret_status && nd->box != NULL && !nd->box->noselect) {
		buf_reset(b);
		if (status_render(s, b, nd->box, &o->status) == 0)
			imap_write_line(s, b);
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

	buf_init(&b, IMAP_LINE_MAX);
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

	buf_init(&b, IMAP_LINE_MAX);
	if (status_render(s, &b, box, &r) == 0)
		imap_write_line(s, &b);
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
		imap_materialize(s, self);
		return;
	}
	add_shared(s, &boxes, &nboxes);

	struct buf b;
	buf_init(&b, IMAP_LINE_MAX);
	if (want_root) {
		/* RFC 9051 6.3.9: the delimiter and the root of the one flat
		 * namespace. */
		buf_printf(&b, "* %s (\\Noselect) \"/\" \"\"", o->lsub ? "LSUB" : "LIST");
		imap_write_line(s, &b);
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
	if (s->view != NULL)
		imap_view_sync(s, true);
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

const struct imap_command imap_list_cmds[] = {
    {"LIST", IMAP_ST_AUTHED, false, cmd_list},
    {"LSUB", IMAP_ST_AUTHED, false, cmd_lsub},
    {"STATUS", IMAP_ST_AUTHED, false, cmd_status},
    {NULL, 0, false, NULL},
};
