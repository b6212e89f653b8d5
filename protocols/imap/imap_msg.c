/*
 * imap_msg.c - IMAP STORE, COPY, MOVE and their UID forms (RFC 9051
 * 6.4.6, 6.4.7, 6.4.8; RFC 3501), with the UNCHANGEDSINCE modifier and
 * MODIFIED response code of CONDSTORE (RFC 7162 3.1.3), COPYUID of UIDPLUS
 * (RFC 4315) and MOVE (RFC 6851).
 *
 * Each command checks its arguments, resolves the sequence set against the
 * view (imap_view.c) into UIDs, and hands them to the store as one write
 * request; the reply is sent from the store's completion, after the
 * change is durable.
 *
 * How it fails: malformed arguments, unknown system flags and \Recent get
 * BAD; a read-only (EXAMINE) mailbox gets NO for STORE and MOVE; the store
 * saying no becomes a tagged NO with a response code ([TRYCREATE] for a
 * missing destination, [OVERQUOTA], [LIMIT], [UNAVAILABLE]...). Nothing is
 * half-done: each command is one store transaction.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_qresync.h"

/* A MODIFIED or COPYUID set larger than this is not sent (COPYUID is
 * optional; MODIFIED falls back to a plain NO). */
#define MSG_SET_TEXT_MAX (256u * 1024u)

/* ---- shared helpers ---- */

/* Appends "1:3,7,9:10" for ascending numbers. */
static int
append_set(struct buf *b, const uint32_t *v, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (i > 0)
			r |= buf_putc(b, ',');
		if (j == i)
			r |= buf_printf(b, "%" PRIu32, v[i]);
		else
			r |= buf_printf(b, "%" PRIu32 ":%" PRIu32, v[i], v[j]);
		i = j + 1;
	}
	return r < 0 ? -1 : 0;
}

/* The UIDs a sequence-set argument names in the view, or -1 after a BAD. */
static int
arg_uids(struct imap_session *s, const struct imap_cmd *cmd, const struct imap_arg *arg,
	 uint32_t **uids_r, size_t *n_r)
{
	struct imap_seqset set;

	if (arg->type != IMAP_ARG_ATOM || imap_seqset_parse(s->cmd_arena, arg->str, &set) < 0) {
		imap_bad(s, "Invalid sequence set");
		return -1;
	}
	/* "$" (SEARCHRES) is resolved by imap_seqset_uids, like any set. */
	if (imap_seqset_uids(s, &set, cmd->uid, s->cmd_arena, uids_r, n_r) < 0) {
		imap_bad(s, "Message sequence number out of range");
		return -1;
	}
	return 0;
}

/* ---- STORE ---- */

struct store_op {
	struct store_flags f; /* first: the request pointer is the op */
	struct imap_session *s;
	bool uid_cmd;
	bool silent;
};

static const struct {
	const char *name;
	uint32_t bit;
} system_flags[] = {
    {"\\Seen", STORE_FLAG_SEEN},       {"\\Answered", STORE_FLAG_ANSWERED},
    {"\\Flagged", STORE_FLAG_FLAGGED}, {"\\Deleted", STORE_FLAG_DELETED},
    {"\\Draft", STORE_FLAG_DRAFT},
};

/* flag-keyword: an atom (RFC 9051 9: ATOM-CHAR is any CHAR but
 * atom-specials). The parser's atom-like tokens also allow "%", "*", "]"
 * and bracketed parts, which a keyword may not have. */
bool
imap_keyword_ok(const char *k, size_t len)
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

/* One flag argument into op's flags / keywords; -1 after a BAD. */
static int
add_flag(struct imap_session *s, const struct imap_arg *a, uint32_t *flags, const char **kw,
	 size_t *nkw)
{
	if (a->type != IMAP_ARG_ATOM) {
		imap_bad(s, "Flags are atoms");
		return -1;
	}
	if (a->str[0] == '\\') {
		for (size_t i = 0; i < ARRAY_SIZE(system_flags); i++) {
			if (strcasecmp(a->str, system_flags[i].name) == 0) {
				*flags |= system_flags[i].bit;
				return 0;
			}
		}
		/* \Recent is flag-fetch only (RFC 3501 9); other system
		 * flags are not defined (flag-extension is reserved). */
		if (strcasecmp(a->str, "\\Recent") == 0)
			imap_bad(s, "\\Recent cannot be stored");
		else
			imap_bad(s, "Unknown system flag %.40s", a->str);
		return -1;
	}
	if (!imap_keyword_ok(a->str, a->len)) {
		imap_bad(s, "Invalid keyword");
		return -1;
	}
	kw[(*nkw)++] = a->str;
	return 0;
}

/* An unsigned decimal mod-sequence-valzer (RFC 7162: up to 2^63 - 1). */
static int
parse_modseq(const struct imap_arg *a, uint64_t *v_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	return imap_modseq_parse(a->str, a->len, true, v_r);
}

/* "* n FETCH (...)" for one message STORE touched. */
static void
store_fetch_line(struct imap_session *s, const struct store_op *op, uint32_t seq,
		 const struct store_msg_info *m)
{
	struct buf *b = &s->out;
	bool sp = false;

	buf_reset(b);
	buf_printf(b, "* %" PRIu32 " FETCH (", seq);
	if (op->uid_cmd || s->condstore) {
		/* RFC 9051 6.4.9: a UID command's FETCH responses carry UID;
		 * so does every FETCH once CONDSTORE is on (RFC 7162 3.1). */
		buf_printf(b, "UID %" PRIu32, m->uid);
		sp = true;
	}
	if (!op->silent) {
		buf_printf(b, "%sFLAGS (", sp ? " " : "");
		imap_append_flags(b, m->flags, m->keywords, m->nkeywords,
				  !s->rev2 && imap_view_is_recent(s->view, m->uid));
		buf_append_str(b, ")");
		sp = true;
	}
	if (s->condstore)
		buf_printf(b, "%sMODSEQ (%" PRIu64 ")", sp ? " " : "", m->modseq);
	buf_append_str(b, ")\r\n");
	imap_write(s, b->data, b->len);
}

static const struct store_msg_info *
find_info(const struct store_msg_info *v, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].uid < uid)
			lo = mid + 1;
		else if (v[mid].uid > uid)
			hi = mid;
		else
			return &v[mid];
	}
	return NULL;
}

static bool
in_sorted(const uint32_t *v, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < x)
			lo = mid + 1;
		else if (v[mid] > x)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* The tagged OK, with [MODIFIED set] when UNCHANGEDSINCE refused some. */
static void
store_tagged(struct imap_session *s, bool uid_cmd, const uint32_t *modified, size_t nmodified)
{
	if (nmodified == 0) {
		imap_tagged(s, "OK", "STORE completed");
		return;
	}
	/* Message numbers for STORE, UIDs for UID STORE (RFC 7162 3.1.3). */
	uint32_t *nums = arena_alloc(s->cmd_arena, nmodified * sizeof(*nums));
	size_t n = 0;
	for (size_t i = 0; i < nmodified; i++) {
		uint32_t x = uid_cmd ? modified[i] : imap_view_seq(s->view, modified[i]);
		if (x != 0)
			nums[n++] = x;
	}
	struct buf set;
	buf_init(&set, MSG_SET_TEXT_MAX);
	if (append_set(&set, nums, n) < 0 || n == 0) {
		buf_free(&set);
		imap_tagged(s, "NO", "Conditional STORE failed: messages were modified");
		return;
	}
	imap_tagged(s, "OK", "[MODIFIED %s] Conditional STORE failed", buf_cstr(&set));
	buf_free(&set);
}

static void
store_done(void *req, void *arg)
{
	struct store_op *op = req;
	struct imap_session *s = op->s;
	struct store_flags *f = &op->f;

	(void)arg;
	if (f->req.status != STORE_OK || s->view == NULL) {
		imap_tagged_store_status(s, s->view == NULL ? STORE_TEMPFAIL : f->req.status,
					 "STORE");
		imap_async_end(s);
		return;
	}
	/* Every message of the set that is still there gets its new flags
	 * (RFC 9051 6.4.6), changed or not; .SILENT leaves them out unless
	 * CONDSTORE is on, which wants the new MODSEQs (RFC 7162 3.1.3). */
	struct store_msg_info *all = NULL;
	size_t nall = 0;
	bool listed = false;
	for (size_t i = 0; i < f->nuids; i++) {
		uint32_t uid = f->uids[i];
		uint32_t seq = imap_view_seq(s->view, uid);
		if (seq == 0 || in_sorted(f->modified, f->nmodified, uid) ||
		    (op->silent && !s->condstore))
			continue;
		const struct store_msg_info *m = find_info(f->changed, f->nchanged, uid);
		if (m == NULL) {
			if (op->silent)
				continue; /* unchanged: no new MODSEQ to tell */
			if (!listed) {
				/* The unchanged ones of the set, read once. */
				listed = true;
				if (store_message_infos(s->view->owner, s->view->name, f->uids,
							f->nuids, s->cmd_arena, &all,
							&nall) != STORE_OK)
					nall = 0;
			}
			m = find_info(all, nall, uid);
			if (m == NULL)
				continue; /* expunged meanwhile */
		}
		if (!op->silent)
			imap_view_keywords(s, m->keywords, m->nkeywords);
		store_fetch_line(s, op, seq, m);
	}
	/* Our own changes are told above; the sync reports the others'. */
	imap_view_sync_own(s, op->uid_cmd, f->changed, f->nchanged);
	store_tagged(s, op->uid_cmd, f->modified, f->nmodified);
	imap_async_end(s);
}

/* STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flags) | flag ... */
static void
cmd_store(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	bool have_unchanged = false;
	uint64_t unchangedsince = 0;
	size_t i = 1;

	if (cmd->count < 3) {
		imap_bad(s, "Usage: STORE set [(modifiers)] [+|-]FLAGS[.SILENT] flags");
		return;
	}
	if (args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *m = &args[1];
		if (m->count == 0 || m->count % 2 != 0) {
			imap_bad(s, "Invalid STORE modifiers");
			return;
		}
		for (size_t k = 0; k < m->count; k += 2) {
			if (!imap_arg_is_atom_ci(&m->list[k], "UNCHANGEDSINCE") || have_unchanged ||
			    parse_modseq(&m->list[k + 1], &unchangedsince) < 0) {
				imap_bad(s, "Unknown or invalid STORE modifier");
				return;
			}
			have_unchanged = true;
		}
		i = 2;
	}
	if (cmd->count < i + 2 || args[i].type != IMAP_ARG_ATOM) {
		imap_bad(s, "Usage: STORE set [(modifiers)] [+|-]FLAGS[.SILENT] flags");
		return;
	}
	const char *item = args[i].str;
	enum store_flags_mode mode = STORE_FLAGS_SET;
	if (*item == '+' || *item == '-') {
		mode = *item == '+' ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
		item++;
	}
	bool silent;
	if (strcasecmp(item, "FLAGS") == 0) {
		silent = false;
	} else if (strcasecmp(item, "FLAGS.SILENT") == 0) {
		silent = true;
	} else {
		imap_bad(s, "Unknown STORE data item");
		return;
	}
	/* The flags: one parenthesised list, or one or more bare flags. */
	const struct imap_arg *fl = &args[i + 1];
	size_t nfl = cmd->count - (i + 1);
	if (fl->type == IMAP_ARG_LIST) {
		if (nfl != 1) {
			imap_bad(s, "Flags are one list or bare flags");
			return;
		}
		nfl = fl->count;
		fl = fl->list;
	}
	uint32_t flags = 0;
	size_t nkw = 0;
	const char **kw = arena_alloc(s->cmd_arena, (nfl + 1) * sizeof(*kw));
	for (size_t k = 0; k < nfl; k++)
		if (add_flag(s, &fl[k], &flags, kw, &nkw) < 0)
			return;
	uint32_t *uids;
	size_t n;
	if (arg_uids(s, cmd, &args[0], &uids, &n) < 0)
		return;
	if (s->view->readonly) {
		imap_tagged(s, "NO", "Mailbox is read-only");
		return;
	}
	/* RFC 4314 4: \Seen needs "s", \Deleted "t", the others "w"; a
	 * replacement touches all of them. */
	unsigned need = 0;
	if ((flags & STORE_FLAG_SEEN) || mode == STORE_FLAGS_SET)
		need |= imap_acl_right('s');
	if ((flags & STORE_FLAG_DELETED) || mode == STORE_FLAGS_SET)
		need |= imap_acl_right('t');
	if ((flags & ~(uint32_t)(STORE_FLAG_SEEN | STORE_FLAG_DELETED)) || nkw > 0 ||
	    mode == STORE_FLAGS_SET)
		need |= imap_acl_right('w');
	if ((s->view->rights & need) != need) {
		imap_tagged(s, "NO", "[NOPERM] You lack the rights to change these flags");
		return;
	}
	if (have_unchanged)
		imap_condstore_enable(s); /* RFC 7162 3.1 */
	if (have_unchanged && unchangedsince == 0) {
		/* RFC 7162 3.1.3: UNCHANGEDSINCE 0 fails for every message
		 * that exists (each has a MODSEQ of at least 1). */
		imap_view_sync(s, false);
		store_tagged(s, cmd->uid, uids, n);
		return;
	}
	if (n == 0) {
		imap_view_sync(s, cmd->uid);
		imap_tagged(s, "OK", "STORE completed");
		return;
	}
	struct store_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	memset(op, 0, sizeof(*op));
	op->s = s;
	op->uid_cmd = cmd->uid;
	op->silent = silent;
	op->f.req.worker = s->conn.worker;
	op->f.req.done = store_done;
	op->f.req.arg = op;
	op->f.req.a = s->cmd_arena;
	op->f.user_id = s->view->owner;
	op->f.mailbox = s->view->name;
	op->f.uids = uids;
	op->f.nuids = n;
	op->f.mode = mode;
	op->f.flags = flags;
	op->f.keywords = kw;
	op->f.nkeywords = nkw;
	op->f.unchangedsince = unchangedsince;
	imap_async_begin(s);
	store_flags(&op->f);
}

/* ---- COPY and MOVE ---- */

struct copy_op {
	struct store_copy c; /* first: the request pointer is the op */
	struct imap_session *s;
	const char *what; /* "COPY" or "MOVE" */
};

static void
copy_go(void *req)
{
	store_copy(req);
}

static void
copy_done(void *req, void *arg)
{
	struct copy_op *op = req;
	struct imap_session *s = op->s;
	struct store_copy *c = &op->c;
	struct buf code;

	(void)arg;
	if (c->req.status == STORE_NOTFOUND) {
		/* The destination (rarely: the selected mailbox itself, deleted
		 * by another session). */
		struct store_mailbox box;
		if (store_mailbox_get(c->dest_user_id, c->dest, s->cmd_arena, &box) ==
		    STORE_NOTFOUND)
			imap_tagged(s, "NO", "[TRYCREATE] No such mailbox");
		else
			imap_tagged(s, "NO", "[NONEXISTENT] The selected mailbox is gone");
		imap_async_end(s);
		return;
	}
	if (c->req.status != STORE_OK) {
		imap_tagged_store_status(s, c->req.status, op->what);
		imap_async_end(s);
		return;
	}
	/* COPYUID uidvalidity source-set dest-set (RFC 4315 3): both sets
	 * ascending, so the n-th of one is the n-th of the other. */
	buf_init(&code, MSG_SET_TEXT_MAX);
	if (c->ncopied > 0) {
		buf_printf(&code, "[COPYUID %" PRIu32 " ", c->dest_uidvalidity);
		if (append_set(&code, c->src_uids, c->ncopied) < 0 || buf_putc(&code, ' ') < 0 ||
		    append_set(&code, c->dest_uids, c->ncopied) < 0 || buf_putc(&code, ']') < 0)
			buf_reset(&code); /* too long: COPYUID is optional */
	}
	if (c->move) {
		/* RFC 6851 4.3: COPYUID in an untagged OK before the EXPUNGEs. */
		if (code.len > 0)
			imap_untagged(s, "OK %s Moved", buf_cstr(&code));
		imap_view_sync(s, true);
		imap_tagged(s, "OK", "MOVE completed");
	} else {
		imap_view_sync(s, true);
		imap_tagged(s, "OK", "%s%sCOPY completed", buf_cstr(&code),
			    code.len > 0 ? " " : "");
	}
	buf_free(&code);
	imap_async_end(s);
}

static void
copy_or_move(struct imap_session *s, const struct imap_cmd *cmd, bool move)
{
	uint32_t *uids;
	size_t n;

	if (cmd->count != 2) {
		imap_bad(s, "Usage: %s set mailbox", move ? "MOVE" : "COPY");
		return;
	}
	struct imap_mref dm;
	if (imap_mref_get(s, &cmd->args[1], &dm) < 0 || !imap_mref_check(s, &dm, "i"))
		return;
	const char *dest = dm.path;
	if (arg_uids(s, cmd, &cmd->args[0], &uids, &n) < 0)
		return;
	if (move && s->view->readonly) {
		imap_tagged(s, "NO", "Mailbox is read-only");
		return;
	}
	/* RFC 6851 / RFC 4314 4: MOVE deletes and expunges the sources. */
	unsigned te = imap_acl_right('t') | imap_acl_right('e');
	if (move && (s->view->rights & te) != te) {
		imap_tagged(s, "NO", "[NOPERM] You lack the \"te\" rights on the selected mailbox");
		return;
	}
	struct copy_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	memset(op, 0, sizeof(*op));
	op->s = s;
	op->what = move ? "MOVE" : "COPY";
	op->c.req.worker = s->conn.worker;
	op->c.req.done = copy_done;
	op->c.req.arg = op;
	op->c.req.a = s->cmd_arena;
	op->c.user_id = s->view->owner;
	op->c.mailbox = s->view->name;
	op->c.dest = dest;
	op->c.dest_user_id = dm.owner_id;
	op->c.uids = uids;
	op->c.nuids = n;
	op->c.move = move;
	/* RFC 4314 4: what the destination's rights do not let the user
	 * set is dropped from the copies, as for APPEND. */
	uint32_t keep = STORE_FLAGS_ALL;
	size_t kw = 1;
	imap_acl_strip_flags(dm.rights, &keep, &kw);
	op->c.strip_flags = STORE_FLAGS_ALL & ~keep;
	op->c.strip_keywords = kw == 0;
	imap_async_begin(s);
	imap_owner_quota(s, &dm, &op->c.quota, &op->c.quota_messages, copy_go, &op->c);
}

static void
cmd_copy(struct imap_session *s, const struct imap_cmd *cmd)
{
	copy_or_move(s, cmd, false);
}

static void
cmd_move(struct imap_session *s, const struct imap_cmd *cmd)
{
	copy_or_move(s, cmd, true);
}

const struct imap_command imap_msg_cmds[] = {
    {"STORE", IMAP_ST_SELECTED, true, cmd_store},
    {"COPY", IMAP_ST_SELECTED, true, cmd_copy},
    {"MOVE", IMAP_ST_SELECTED, true, cmd_move},
    {NULL, 0, false, NULL},
};
