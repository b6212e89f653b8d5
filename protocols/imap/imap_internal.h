/*
 * imap_internal.h - what the IMAP server's files share (internal to
 * protocols/imap/): the session, the command table entry, replies, the
 * selected-mailbox view, sequence sets and string output.
 *
 * Life of a command: imap_session.c assembles it with imap_parser (lines
 * and literals from the conn), looks it up in the command table (which
 * states allow it), and calls its handler with the command's arena. A
 * handler either answers at once (imap_tagged) or starts asynchronous
 * work with imap_async_begin() (the conn is paused and referenced, the
 * command and its arena stay alive) and answers from the completion,
 * then calls imap_async_end(). The arena is cleared after the tagged
 * reply of each command. Everything runs on the session's worker.
 */
#ifndef TERN_IMAP_INTERNAL_H
#define TERN_IMAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "protocols/imap/imap_parser.h"
#include "protocols/sasl/auth.h"
#include "storage/store.h"

#define IMAP_ST_NOTAUTH 0x1
#define IMAP_ST_AUTH 0x2
#define IMAP_ST_SELECTED 0x4
#define IMAP_ST_LOGOUT 0x8
#define IMAP_ST_ANY (IMAP_ST_NOTAUTH | IMAP_ST_AUTH | IMAP_ST_SELECTED)
#define IMAP_ST_AUTHED (IMAP_ST_AUTH | IMAP_ST_SELECTED)

/* Limits the config does not set ([limits] imap_* holds the others). */
#define IMAP_MAX_ARGS 100000 /* arguments in one command */
#define IMAP_MAX_ERRORS 20   /* BADs before the session is closed */

struct imap_view;

struct imap_session {
	struct conn conn;	 /* first: the conn pointer is the session pointer */
	struct arena *arena;	 /* owns this struct */
	struct arena *cmd_arena; /* owned: the current command; cleared after it */
	struct config *cfg;	 /* owned reference, released on free */
	enum service svc;
	unsigned state;		    /* one IMAP_ST_* */
	struct imap_parser *parser; /* owned */
	uint64_t skip;		    /* input bytes to throw away (after a BAD) */
	bool skip_rest;		    /* then the failed command's further lines */
	bool in_literal;	    /* feeding a literal to the parser */
	unsigned errors;	    /* BADs so far */
	unsigned auth_failures;

	/* The command being run (valid until its tagged reply). */
	const struct imap_cmd *cmd;
	bool async; /* a handler is waiting for directory/store */

	/* AUTHENTICATE in progress: lines are SASL responses. */
	struct auth_sasl sasl;
	bool in_sasl;
	bool greet_pending; /* implicit TLS: greeting after the handshake */

	/* After login. */
	char *user_id; /* owned: the directory's stable id */
	char *login;   /* owned: for logs and ACL identifiers */
	char *dn;      /* owned: the user's entry (dir_user_groups) */
	char **groups; /* owned: group names as of this command (imap_acl.c) */
	size_t ngroups;
	uint64_t quota;		 /* bytes, 0 = none (from the directory at login) */
	uint64_t quota_messages; /* messages, 0 = none (likewise) */

	/* ENABLEd (RFC 5161). */
	bool rev2; /* IMAP4rev2 */
	bool utf8; /* UTF8=ACCEPT: mailbox names and strings in UTF-8 */
	bool condstore;
	bool qresync;

	struct imap_view *view;	    /* owned: the selected mailbox, or NULL */
	struct imap_notify *notify; /* owned: NOTIFY SET (imap_notify.c), or NULL */
	/* SEARCHRES (RFC 5182) "$": UIDs saved by SEARCH RETURN (SAVE),
	 * ascending; emptied when the view is closed (imap_view_close). */
	uint32_t *search_saved; /* owned (malloc), or NULL */
	size_t nsearch_saved;
	bool idling;		  /* between IDLE's "+" and DONE */
	struct imap_cmd idle_cmd; /* IDLE's, kept out of the command arena */
	char *idle_tag;		  /* owned: idle_cmd.tag */

	struct buf out; /* formatting scratch for one response */

	/* [limits] imap_command_rate: a token bucket of commands. A command
	 * that finds it empty waits (input paused) for its token; a
	 * connection that keeps it empty for imap_flood_time is closed. */
	double rate_tokens;
	uint64_t rate_at_ms;		 /* when rate_tokens was last topped up */
	uint64_t throttled_since_ms;	 /* 0: not over the rate now */
	struct event *rate_ev;		 /* owned, made the first time it waits */
	const struct imap_cmd *rate_cmd; /* the command waiting for a token */
};

/* ---- the command table ---- */

typedef void imap_cmd_fn(struct imap_session *s, const struct imap_cmd *cmd);

struct imap_command {
	const char *name; /* upper case */
	unsigned states;  /* IMAP_ST_* where it is allowed */
	bool uid_ok;	  /* may come as "UID <name>" */
	imap_cmd_fn *fn;
};

/* Each file of commands has its own table, ended by a NULL name; the
 * session looks in its own table, then in these. */
extern const struct imap_command imap_mailbox_cmds[];  /* imap_mailbox.c */
extern const struct imap_command imap_fetch_cmds[];    /* imap_fetch.c */
extern const struct imap_command imap_search_cmds[];   /* imap_search.c */
extern const struct imap_command imap_msg_cmds[];      /* imap_msg.c */
extern const struct imap_command imap_quota_cmds[];    /* imap_quota.c */
extern const struct imap_command imap_compress_cmds[]; /* imap_compress.c */
extern const struct imap_command imap_notify_cmds[];   /* imap_notify.c */

/* NOTIFY (RFC 5465, imap_notify.c). flush: when no command is in progress
 * (or during IDLE), tells the client what changed since; the session
 * calls it after each command. selected: the view's watch saw a change;
 * true if NOTIFY's SELECTED filter takes it (else the view's usual IDLE
 * and next-command rules do). free: NOTIFY NONE, or the session's end. */
void imap_notify_flush(struct imap_session *s);
bool imap_notify_selected(struct imap_session *s);
void imap_notify_free(struct imap_session *s);
extern const struct imap_command imap_acl_cmds[];     /* imap_acl_cmd.c */
extern const struct imap_command imap_replace_cmds[]; /* imap_replace.c */
extern const struct imap_command imap_append_cmds[];  /* imap_append.c */
extern const struct imap_command imap_list_cmds[];    /* imap_list.c */

/* A QUOTA response's list for the user's root: "(STORAGE used limit
 * MESSAGE used limit)" with only the resources that have a limit (0 =
 * none), STORAGE in 1024-octet units rounded down. -1 (nothing
 * written) when neither has a limit. */
int imap_quota_list(struct buf *out, uint64_t limit_bytes, uint64_t limit_msgs, uint64_t used_bytes,
		    uint64_t used_msgs);

extern const struct imap_command imap_sort_cmds[]; /* imap_sort.c */

extern const struct imap_command imap_metadata_cmds[]; /* imap_metadata.c */

/* The special-use attributes (RFC 6154) of bits, space-separated
 * ("\Sent \Junk"); *first says whether a space must come before the
 * first (imap_mailbox.c). */
void imap_append_special_use(struct buf *b, uint32_t bits, bool *first);

/* SEARCH criteria args[0..count) evaluated over the selected mailbox
 * (imap_search.c): matching message numbers and UIDs, ascending, in the
 * command arena. 0, or -1 after a tagged BAD or NO was sent. */
/* ESEARCH return options (RFC 4731, RFC 5182 SAVE, RFC 5267 for SORT). */
#define RET_MIN 0x01
#define RET_MAX 0x02
#define RET_ALL 0x04
#define RET_COUNT 0x08
#define RET_SAVE 0x10
/* Parses a RETURN (...) list into RET_* bits ("()" is ALL); SAVE only
 * when save_ok. 0, or -1 for an unknown option. */
int imap_search_parse_return(const struct imap_arg *l, bool save_ok, unsigned *ret_r);

int imap_search_match(struct imap_session *s, const struct imap_arg *args, size_t count,
		      uint32_t **seqs_r, uint32_t **uids_r, size_t *n_r);

/* NOTIFY's unsolicited responses, formatted as LIST and STATUS format
 * theirs (imap_mailbox.c): "* LIST (attrs) "/" name" (box NULL: a name
 * that is not a mailbox, \NonExistent; oldname: RFC 5465 5.4's OLDNAME)
 * and "* STATUS name (MESSAGES UIDNEXT UIDVALIDITY UNSEEN [HIGHESTMODSEQ])"
 * (RFC 5465 5.2, 5.3; HIGHESTMODSEQ once CONDSTORE is enabled). */
void imap_list_notify(struct imap_session *s, const char *name, const struct store_mailbox *box,
		      bool subscribed, const char *oldname);
void imap_status_notify(struct imap_session *s, const struct store_mailbox *box);
/* ... and "* METADATA name entry ..." for entries that changed, names
 * only (RFC 5465 5.5, 5.6; RFC 5464 4.4.2; name "" for the server's),
 * formatted as GETMETADATA formats them (imap_metadata.c). */
void imap_metadata_notify(struct imap_session *s, const char *name, const char *const *entries,
			  size_t n);

/* NOTIFY's MessageNew fetch attributes (imap_fetch.c): a FETCH item
 * list parsed into a (which must outlive the result), NULL if it is not
 * one; and the FETCH responses with those items for some UIDs of the
 * selected mailbox, written at once (never setting \Seen). */
struct imap_fetch_atts;
struct imap_fetch_atts *imap_fetch_atts_parse(struct arena *a, const struct imap_arg *list);
void imap_fetch_atts_send(struct imap_session *s, const struct imap_fetch_atts *fa,
			  const uint32_t *uids, size_t n);

/* One LIST/STATUS/FLAGS line's longest form. */
#define IMAP_LINE_MAX (256u * 1024u)

/* Shared by the mailbox commands (imap_mailbox.c) and LIST/STATUS
 * (imap_list.c): writes the line in b (without CRLF) to the client;
 * whether owner_id's mailbox name is the selected one; whether the store
 * has never seen the user (only a virtual INBOX); and creating that user
 * (INBOX and the special-use folders) before running rerun again from
 * the completion. */
void imap_write_line(struct imap_session *s, struct buf *b);
bool imap_is_selected(const struct imap_session *s, const char *owner_id, const char *name);
bool imap_user_unknown(struct imap_session *s);
void imap_materialize(struct imap_session *s, imap_cmd_fn *rerun);

/* Whether k is a flag keyword: an atom without "%", "*" or "]" (RFC
 * 9051 9), not empty (imap_msg.c; APPEND's flags use it too). */
bool imap_keyword_ok(const char *k, size_t len);

/* One message of APPEND (and REPLACE): [(flags)] [date-time] and the
 * literal (or UTF8 (~{n}...)) at args[*i]; *i moves past them. 0, or -1
 * after a BAD or NO naming what ("APPEND", "REPLACE"). The message body
 * is borrowed from args. (imap_append.c) */
int imap_append_parse(struct imap_session *s, const struct imap_arg *args, size_t count, size_t *i,
		      struct store_append_msg *m, const char *what);

/* NOOP (and CHECK, which RFC 9051 folds into it). */
imap_cmd_fn imap_cmd_noop;

/* ---- replies ---- */

/* Queues "<tag> <status> <text>\r\n" for the current command and ends it
 * (the arena is cleared once the handler or imap_async_end returns).
 * status is "OK", "NO" or "BAD"; text may start with a response code. */
void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
/* Queues "* <text>\r\n". */
void imap_untagged(struct imap_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Queues raw bytes (a literal's content, a prepared response). */
void imap_write(struct imap_session *s, const void *data, size_t len);
/* A BAD for a malformed command (counts towards IMAP_MAX_ERRORS). */
void imap_bad(struct imap_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Starts / ends asynchronous work of the current command (pause + ref). */
void imap_async_begin(struct imap_session *s);
void imap_async_end(struct imap_session *s);

/* A store status as a tagged NO (or OK for STORE_OK) with the right
 * response code: [TRYCREATE], [OVERQUOTA], [LIMIT], [UNAVAILABLE],
 * [NONEXISTENT], [ALREADYEXISTS], [CANNOT]... */
void imap_tagged_store_status(struct imap_session *s, int status, const char *what);

/* ---- strings ---- */

/* Appends s as an IMAP string: an atom is never produced; a quoted string
 * when it is short and safe, else a literal ({n}\r\n...). 8-bit bytes are
 * allowed in a quoted string only when utf8 is true. */
int imap_append_string(struct buf *out, const char *str, size_t len, bool utf8);
/* A mailbox name: UTF-8 as stored, converted to modified UTF-7 unless the
 * session has UTF8=ACCEPT enabled. */
int imap_append_mailbox(struct imap_session *s, struct buf *out, const char *name);
/* Decodes a mailbox name argument into UTF-8 (from modified UTF-7 unless
 * UTF8=ACCEPT; "INBOX" in any case becomes "INBOX"), into the command
 * arena. NULL (after a BAD reply) if it is not a valid name. */
const char *imap_arg_mailbox(struct imap_session *s, const struct imap_arg *arg);

/* ---- sequence sets ---- */

struct imap_range {
	uint32_t lo, hi; /* inclusive, lo <= hi; UINT32_MAX stands for "*" */
};

struct imap_seqset {
	struct imap_range *r; /* sorted, merged */
	size_t n;
	bool saved; /* "$" (SEARCHRES) */
};

/* Parses a sequence-set atom ("1:4,7,9:*", "$"). 0, or -1 (not one). */
int imap_seqset_parse(struct arena *a, const char *str, struct imap_seqset *set_r);
/* The UIDs of the view that a set names: as message numbers or as UIDs
 * (uid_mode), "*" meaning the last message, in ascending order, in a.
 * Message numbers past the end fail (-1: BAD); UIDs that do not exist are
 * simply not in the result (RFC 9051 6.4.8). */
int imap_seqset_uids(const struct imap_session *s, const struct imap_seqset *set, bool uid_mode,
		     struct arena *a, uint32_t **uids_r, size_t *n_r);

/* ---- the selected mailbox (imap_view.c) ---- */

struct imap_view {
	char *name;	 /* owned: UTF-8, the name in the owner's store */
	char *owner;	 /* owned: the owner's stable id: every store call uses it */
	char *shown;	 /* owned: the name as the client knows it */
	bool shared;	 /* another user's mailbox (RFC 4314) */
	unsigned rights; /* IMAP_ACL_* bits, re-evaluated per command when shared */
	uint32_t id;	 /* store mailbox id */
	bool readonly;	 /* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext; /* as last reported */
	uint64_t modseq;  /* HIGHESTMODSEQ the view is in sync with */
	uint32_t *uids;	  /* owned: message number i+1 is uids[i] */
	size_t count, cap;
	/* The UIDs that are \Recent in this session (imap_recent.c):
	 * ascending, disjoint ranges. */
	struct imap_recent_range {
		uint32_t lo, hi;
	} * recent; /* owned */
	size_t nrecent, recent_cap;
	struct store_watch *watch; /* owned */
	bool changed;		   /* the store said something changed */
	uint32_t *pending_expunge; /* owned: expunged, not yet reported */
	size_t npending, pending_cap;
	/* Keywords the client was told in FLAGS: a FETCH may only show a
	 * keyword announced there first (RFC 9051 7.3.5), so a new one is
	 * announced (imap_view_keywords) before the FETCH that shows it. */
	char **keywords; /* owned, each owned */
	size_t nkeywords;
};

struct imap_mref;
/* Opens the view of a mailbox for SELECT/EXAMINE: lists it, registers a
 * watch. 0 or a STORE_* status. */
int imap_view_open(struct imap_session *s, const struct imap_mref *mref, bool readonly,
		   struct store_mailbox *box_r);
void imap_view_close(struct imap_session *s);
/* Brings the view up to date and tells the client: new messages (EXISTS,
 * RECENT), flag changes (FETCH), and, if expunge_ok, expunges (EXPUNGE or
 * VANISHED). Call before a tagged OK where RFC 9051 7 allows updates;
 * with expunge_ok false (FETCH, STORE, SEARCH: no EXPUNGE may be sent)
 * expunges are held until a later call allows them. */
void imap_view_sync(struct imap_session *s, bool expunge_ok);
/* The same, but flag changes the current command has already reported
 * itself (STORE's FETCH replies: own, ascending UIDs, with the MODSEQ
 * each got) are not reported again. */
void imap_view_sync_own(struct imap_session *s, bool expunge_ok, const struct store_msg_info *own,
			size_t nown);
/* RFC 7162 3.1: a CONDSTORE-enabling command; the first one while a
 * mailbox is selected also sends its HIGHESTMODSEQ (untagged OK). */
void imap_condstore_enable(struct imap_session *s);
/* The view's HIGHESTMODSEQ for the response code (at least 1). */
uint64_t imap_view_highestmodseq(const struct imap_view *v);
/* "* VANISHED [(EARLIER) ]set" (RFC 7162 3.2.10), in bounded lines. */
void imap_vanished_send(struct imap_session *s, bool earlier, const struct imap_range *r, size_t n);
/* Writes "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" for box (the
 * selected mailbox) and remembers its keywords as announced. */
void imap_view_flags(struct imap_session *s, const struct store_mailbox *box);
/* Before a FETCH response showing keywords kw: announces FLAGS and
 * PERMANENTFLAGS again if one of them is new to the client. */
void imap_view_keywords(struct imap_session *s, const char *const *kw, size_t nkw);
/* The same for keywords another session may have added: rereads the
 * mailbox's keyword list when the store reported a change. */
void imap_view_keywords_refresh(struct imap_session *s);
/* Message number of uid in the view (1-based), or 0. */
uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid);

/* ---- \Recent, shared by the sessions of a mailbox (imap_recent.c) ---- */

/* The highest UID of (user, mailbox) some session was already told
 * about; unless peek, raises it to highest, so that the UIDs between are
 * recent to the caller alone. initial is the claim to assume for a
 * mailbox no session has claimed since the process started. */
uint32_t imap_recent_claim(const char *user_id, uint32_t mailbox_id, uint32_t uidvalidity,
			   uint32_t highest, uint32_t initial, bool peek);
/* The claim without taking anything: false if no session claimed the
 * mailbox (as of uidvalidity) since the process started. */
bool imap_recent_peek(const char *user_id, uint32_t mailbox_id, uint32_t uidvalidity,
		      uint32_t *claimed_r);
/* When the process started: messages saved before then are not recent. */
time_t imap_recent_started(void);
void imap_recent_free_all(void);
/* Adds lo..hi to the view's recent UIDs (above or touching the last). */
void imap_view_recent_add(struct imap_view *v, uint32_t lo, uint32_t hi);
bool imap_view_is_recent(const struct imap_view *v, uint32_t uid);
/* How many messages of the view are recent in it. */
size_t imap_view_recent_count(const struct imap_view *v);

/* ---- ACL and the shared namespace (imap_acl.c) ---- */

/* The shared namespace: "Shared/<owner's login>/<owner's name>". */
#define IMAP_SHARED_PREFIX "Shared"
#define IMAP_ACL_ALL 0x7ffu /* every right of STORE_ACL_RIGHTS */
#define IMAP_ACL_TEXT_MAX 16

/* A client's mailbox name mapped to the store. */
struct imap_mref {
	const char *owner_id;	 /* s->user_id, or the sharing owner's */
	const char *owner_login; /* for GETACL and LISTRIGHTS */
	const char *path;	 /* the name in the owner's store */
	const char *shown;	 /* the name as the client gave it */
	unsigned rights;	 /* the session's rights (all for its own) */
	bool shared;
};

/* The bit of right c (0 if it is not one). */
unsigned imap_acl_right(char c);
/* Rights text to bits ("c" and "d" as RFC 4314 2.1.1). -1 if a letter
 * is not a right. */
int imap_acl_parse_rights(const char *str, unsigned *mask_r);
/* Bits to text, with "c" and "d" for the obsolete rights. */
void imap_acl_rights_text(unsigned m, char out[IMAP_ACL_TEXT_MAX]);
/* The session's rights from an ACL (everything for the owner). */
unsigned imap_acl_eval(const struct imap_session *s, const char *owner_id,
		       const struct store_acl *acl);
/* "Shared" or a name below it. */
bool imap_acl_is_shared_name(const char *name);
/* Maps name: STORE_OK, STORE_NOTFOUND (no such shared mailbox, or no
 * right on it), STORE_NOTALLOWED (a level of the shared namespace), or
 * a read failure. */
int imap_mref_resolve(struct imap_session *s, const char *name, struct imap_mref *r);
/* A new name in the shared namespace (CREATE, RENAME's target): the
 * owner, the path in the owner's store, and in rights the session's on
 * the nearest existing parent, which must include "k" (RFC 4314 4).
 * -1 after a tagged NO. */
int imap_mref_new(struct imap_session *s, const char *name, struct imap_mref *r);
/* The same for a mailbox argument; -1 after a tagged reply. */
int imap_mref_get(struct imap_session *s, const struct imap_arg *arg, struct imap_mref *r);
/* True if r has every right of need; else answers NO [NOPERM] (or
 * [NONEXISTENT] without "l" or "r") and returns false. */
bool imap_mref_check(struct imap_session *s, const struct imap_mref *r, const char *need);
/* What is shared with the session (its login, anyone, its groups). */
int imap_acl_shares(struct imap_session *s, struct store_acl_share **shares_r, size_t *n_r);
/* Whether cmd may reach a shared mailbox: its groups are asked first. */
bool imap_acl_wants_groups(const struct imap_session *s, const struct imap_cmd *cmd);
struct dir_groups_result;
void imap_acl_set_groups(struct imap_session *s, const struct dir_groups_result *res);
/* A selected shared mailbox whose "r" right is gone is closed (untagged
 * OK [CLOSED]); false then. */
bool imap_acl_recheck(struct imap_session *s);
/* Fills *quota and *quota_messages with the limits of m's owner (the
 * session's own, or the sharing owner's from the directory) and then
 * calls go(req); on a directory failure answers NO [UNAVAILABLE] and
 * ends the command's async state instead. Call after imap_async_begin. */
void imap_owner_quota(struct imap_session *s, const struct imap_mref *m, uint64_t *quota,
		      uint64_t *quota_messages, void (*go)(void *req), void *req);
/* Drops the flags and keywords rights does not allow to set (APPEND,
 * COPY into a shared mailbox). */
void imap_acl_strip_flags(unsigned rights, uint32_t *flags, size_t *nkeywords);

/* Flags as IMAP text: "\Seen \Flagged $Label"; recent adds \Recent. */
int imap_append_flags(struct buf *out, uint32_t flags, const char *const *kw, size_t nkw,
		      bool recent);

#endif
