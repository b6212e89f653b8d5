/*
 * imap_replace.c - REPLACE and UID REPLACE (RFC 8508): a message of the
 * selected mailbox is replaced by a new one, in the same mailbox or in
 * another, the way a client saves a draft again.
 *
 * The new message is appended and the old one expunged in one store
 * transaction (store_append with replace_uid), so either both happen or
 * neither: a failed append (no such mailbox, over quota) leaves the old
 * message where it was. The old message's bytes leave the quota before
 * the new one is counted. Replies: an untagged OK [APPENDUID] for the new
 * message, then the selected mailbox's updates (its EXPUNGE, or VANISHED
 * with QRESYNC, and EXISTS when the new message landed there), then the
 * tagged OK.
 *
 * How it fails: a message number past the end is BAD (as for any
 * command); a UID that is not in the mailbox, or a message another
 * session expunged meanwhile, is NO [NONEXISTENT]; a read-only view, or
 * missing "t" and "e" rights on a shared one, is NO before anything is
 * stored.
 */
#include <inttypes.h>
#include <string.h>

#include "protocols/imap/imap_internal.h"

struct replace_op {
	struct store_append ap; /* first: the request */
	struct store_append_msg msg;
	struct imap_session *s;
};

static void
replace_done(void *req, void *arg)
{
	struct replace_op *op = req;
	struct imap_session *s = arg;
	int st = op->ap.req.status;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	if (st == STORE_OK)
		imap_untagged(s, "OK [APPENDUID %" PRIu32 " %" PRIu32 "] Replacement message ready",
			      op->ap.uidvalidity, op->msg.uid);
	if (s->view != NULL)
		imap_view_sync(s, true);
	if (st == STORE_OK)
		imap_tagged(s, "OK", "%s completed", s->cmd->uid ? "UID REPLACE" : "REPLACE");
	else if (op->ap.replace_missing)
		imap_tagged(s, "NO", "[NONEXISTENT] The message to replace has been expunged");
	else if (st == STORE_NOTFOUND)
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox does not exist");
	else if (st == STORE_NOTALLOWED)
		imap_tagged(s, "NO", "[CANNOT] Mailbox is not selectable");
	else if (st == STORE_TOOBIG)
		imap_tagged(s, "NO", "[TOOBIG] Message is larger than the quota");
	else if (st == STORE_OVERQUOTA)
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded");
	else
		imap_tagged_store_status(s, st, "REPLACE");
	imap_async_end(s);
}

static void
replace_go(void *req)
{
	store_append(req);
}

/* The UID the first argument names: a message number (or "*", the last
 * message) or, for UID REPLACE, a UID of the view. 0 after a reply. */
static uint32_t
target_uid(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *a = &cmd->args[0];
	const struct imap_view *v = s->view;
	uint64_t n = 0;

	if (a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 10) {
		imap_bad(s, "Usage: %s message mailbox [(flags)] [date-time] literal",
			 cmd->uid ? "UID REPLACE" : "REPLACE");
		return 0;
	}
	if (strcmp(a->str, "*") == 0) {
		if (v->count == 0) {
			imap_bad(s, "The mailbox is empty");
			return 0;
		}
		return v->uids[v->count - 1];
	}
	for (const char *p = a->str; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			imap_bad(s, "Invalid message number");
			return 0;
		}
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (n == 0 || n > UINT32_MAX) {
		imap_bad(s, "Invalid message number");
		return 0;
	}
	if (!cmd->uid) {
		if (n > v->count) {
			imap_bad(s, "No message %" PRIu64 " (the mailbox has %zu)", n, v->count);
			return 0;
		}
		return v->uids[n - 1];
	}
	if (imap_view_seq(v, (uint32_t)n) == 0) {
		imap_tagged(s, "NO", "[NONEXISTENT] No message has UID %" PRIu64, n);
		return 0;
	}
	return (uint32_t)n;
}

static void
cmd_replace(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct imap_view *v = s->view;
	struct imap_mref mref;
	size_t i = 2;

	if (cmd->count < 3) {
		imap_bad(s, "Usage: %s message mailbox [(flags)] [date-time] literal",
			 cmd->uid ? "UID REPLACE" : "REPLACE");
		return;
	}
	uint32_t uid = target_uid(s, cmd);
	if (uid == 0)
		return;
	if (imap_mref_get(s, &cmd->args[1], &mref) < 0)
		return;
	struct replace_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	if (imap_append_parse(s, cmd->args, cmd->count, &i, &op->msg, "REPLACE") < 0)
		return;
	if (i != cmd->count) {
		imap_bad(s, "REPLACE takes one message");
		return;
	}
	if (v->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	/* RFC 8508 3.3 / RFC 4314 4: the old message is deleted and
	 * expunged, the new one inserted. */
	unsigned te = imap_acl_right('t') | imap_acl_right('e');
	if ((v->rights & te) != te) {
		imap_tagged(s, "NO", "[NOPERM] You lack the \"te\" rights on the selected mailbox");
		return;
	}
	if (!imap_mref_check(s, &mref, "i"))
		return;
	imap_acl_strip_flags(mref.rights, &op->msg.flags, &op->msg.nkeywords);
	op->s = s;
	op->ap.req.worker = s->conn.worker;
	op->ap.req.done = replace_done;
	op->ap.req.arg = s;
	op->ap.req.a = s->cmd_arena;
	op->ap.user_id = mref.owner_id;
	op->ap.mailbox = mref.path;
	op->ap.msgs = &op->msg;
	op->ap.nmsgs = 1;
	op->ap.replace_user_id = v->owner;
	op->ap.replace_mailbox = v->name;
	op->ap.replace_uid = uid;
	imap_async_begin(s);
	imap_owner_quota(s, &mref, &op->ap.quota, &op->ap.quota_messages, replace_go, &op->ap);
}

const struct imap_command imap_replace_cmds[] = {
    {"REPLACE", IMAP_ST_SELECTED, true, cmd_replace},
    {NULL, 0, false, NULL},
};
