/*
 * imap_quota.c - QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA.
 *
 * A user has one quota root, "" (every mailbox of the user), whose limits
 * come from the directory at login: STORAGE from [directory] quota_attr
 * (bytes, reported in units of 1024 octets, rounded down) and MESSAGE
 * from [directory] quota_messages_attr (a count). Usage is the store's
 * per-user total (store_usage). The root exists only while at least one
 * limit is set; a user without limits has no quota root at all.
 * SETQUOTA is refused: quotas are set in the directory (RFC 9208 4.1.3
 * allows a NO). Enforcement ([OVERQUOTA] on APPEND, COPY) is in the store.
 *
 * Failure: a store read error is NO [UNAVAILABLE]; bad arguments BAD.
 */
#include <inttypes.h>
#include <string.h>

#include "protocols/imap/imap_internal.h"

int
imap_quota_list(struct buf *out, uint64_t limit_bytes, uint64_t limit_msgs, uint64_t used_bytes,
		uint64_t used_msgs)
{
	if (limit_bytes == 0 && limit_msgs == 0)
		return -1;
	buf_putc(out, '(');
	if (limit_bytes != 0)
		buf_printf(out, "STORAGE %" PRIu64 " %" PRIu64, used_bytes / 1024,
			   limit_bytes / 1024);
	if (limit_msgs != 0)
		buf_printf(out, "%sMESSAGE %" PRIu64 " %" PRIu64, limit_bytes != 0 ? " " : "",
			   used_msgs, limit_msgs);
	buf_putc(out, ')');
	return 0;
}

static bool
has_root(const struct imap_session *s)
{
	return s->quota != 0 || s->quota_messages != 0;
}

/* "* QUOTA "" (...)" for the user's root; -1 after a NO if the store
 * cannot say. */
static int
send_quota(struct imap_session *s)
{
	uint64_t bytes, msgs;
	struct buf b;

	if (store_usage(s->user_id, &bytes, &msgs) != STORE_OK) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Quota usage unavailable, try again later");
		return -1;
	}
	buf_init(&b, 256);
	imap_quota_list(&b, s->quota, s->quota_messages, bytes, msgs);
	imap_untagged(s, "QUOTA \"\" %s", buf_cstr(&b));
	buf_free(&b);
	return 0;
}

static void
cmd_getquota(struct imap_session *s, const struct imap_cmd *cmd)
{
	const char *root;
	size_t len;

	if (cmd->count != 1 || !imap_arg_astring(&cmd->args[0], &root, &len)) {
		imap_bad(s, "GETQUOTA takes a quota root");
		return;
	}
	if (len != 0 || !has_root(s)) {
		imap_tagged(s, "NO", "[NONEXISTENT] No such quota root");
		return;
	}
	if (send_quota(s) == 0)
		imap_tagged(s, "OK", "GETQUOTA completed");
}

static void
cmd_getquotaroot(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct store_mailbox box;
	const char *name;

	if (cmd->count != 1) {
		imap_bad(s, "GETQUOTAROOT takes a mailbox name");
		return;
	}
	if ((name = imap_arg_mailbox(s, &cmd->args[0])) == NULL)
		return;
	struct imap_mref mref;
	if (imap_mref_get(s, &cmd->args[0], &mref) < 0)
		return;
	if (mref.shared) {
		/* Another user's mailbox counts against their quota, which
		 * is not this session's to see: a mailbox without a quota
		 * root here (RFC 9208 4.1.2 allows none). */
		if (!imap_mref_check(s, &mref, "l"))
			return;
		int r = store_mailbox_get(mref.owner_id, mref.path, s->cmd_arena, &box);
		if (r != STORE_OK) {
			imap_tagged_store_status(s, r, "GETQUOTAROOT");
			return;
		}
		struct buf b;
		buf_init(&b, 1024);
		buf_append_str(&b, "QUOTAROOT ");
		if (imap_append_mailbox(s, &b, mref.shown) == 0)
			imap_untagged(s, "%s", buf_cstr(&b));
		buf_free(&b);
		imap_tagged(s, "OK", "GETQUOTAROOT completed");
		return;
	}
	int r = store_mailbox_get(s->user_id, name, s->cmd_arena, &box);
	if (r == STORE_OK && box.noselect)
		r = STORE_NOTFOUND; /* a placeholder holds no messages */
	if (r != STORE_OK) {
		imap_tagged_store_status(s, r, "GETQUOTAROOT");
		return;
	}
	struct buf b;
	buf_init(&b, 1024);
	buf_append_str(&b, "QUOTAROOT ");
	int rc = imap_append_mailbox(s, &b, box.name);
	if (rc == 0 && has_root(s))
		buf_append_str(&b, " \"\"");
	if (rc == 0)
		imap_untagged(s, "%s", buf_cstr(&b));
	buf_free(&b);
	if (rc != 0) {
		imap_tagged(s, "NO", "[SERVERBUG] Mailbox name too long");
		return;
	}
	if (has_root(s) && send_quota(s) != 0)
		return;
	imap_tagged(s, "OK", "GETQUOTAROOT completed");
}

static void
cmd_setquota(struct imap_session *s, const struct imap_cmd *cmd)
{
	const char *root;
	size_t len;

	if (cmd->count != 2 || !imap_arg_astring(&cmd->args[0], &root, &len) ||
	    cmd->args[1].type != IMAP_ARG_LIST) {
		imap_bad(s, "SETQUOTA takes a quota root and a list of limits");
		return;
	}
	imap_tagged(s, "NO", "[NOPERM] Quotas are set in the directory, not over IMAP");
}

const struct imap_command imap_quota_cmds[] = {
    {"GETQUOTA", IMAP_ST_AUTHED, false, cmd_getquota},
    {"GETQUOTAROOT", IMAP_ST_AUTHED, false, cmd_getquotaroot},
    {"SETQUOTA", IMAP_ST_AUTHED, false, cmd_setquota},
    {NULL, 0, false, NULL},
};
