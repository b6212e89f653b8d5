/*
 * store.h - the mail store in LMDB (DESIGN.md, Storage).
 *
 * One environment under [server] state_dir. Users are keyed by the
 * directory's stable id (entryUUID), never by login or address. One writer
 * thread owns every write transaction and commits in groups (one fsync
 * for many deliveries); a change's callback runs on the caller's worker
 * only after its transaction has been committed and synced, so a success
 * reply sent from the callback is durable. Reads run on the caller's
 * thread in short read transactions and copy out what they return.
 */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"

struct worker;

enum store_status {
	STORE_OK = 0,
	STORE_NOTFOUND = -1,   /* no such mailbox or message */
	STORE_TEMPFAIL = -2,   /* retry later (I/O error, map full and could not grow) */
	STORE_PERMFAIL = -3,   /* will never work (corrupt data, bad argument) */
	STORE_OVERQUOTA = -4,  /* temporary: the user is over quota */
	STORE_TOOBIG = -5,     /* permanent: the message alone exceeds the quota */
	STORE_EXISTS = -6,     /* a mailbox of that name exists already */
	STORE_NOTALLOWED = -7, /* not for this mailbox (delete INBOX, \Noselect...) */
	STORE_LIMIT = -8,      /* a store limit (keywords, name length, depth) */
};
const char *store_strerror(int status);

/* Opens (creating if needed) the environment in cfg->state_dir, clears
 * stale readers, migrates an older on-disk format (only after the check
 * passes; one transaction, so a crash rolls it back), refuses a newer one,
 * starts the writer thread. 0 or -1 with a malloc'd *error_r. Main
 * thread, before the workers start. */
int store_open(const struct config *cfg, char **error_r);
/* Finishes queued writes, stops the writer, closes the environment. */
void store_close(void);
/* Sizes for metrics: data file bytes, map size, bytes in use (pages up
 * to the last one used). STORE_OK or a STORE_* status. Any thread. */
int store_env_sizes(uint64_t *file_bytes_r, uint64_t *map_bytes_r, uint64_t *used_bytes_r);
/* Begins and ends a read transaction (health check). 0, or -1 with a
 * malloc'd *error_r. */
int store_read_probe(char **error_r);
/* Health: begins a write transaction (so the writer lock is free within
 * the call and the environment is not read-only), aborts it, and checks
 * the file system holding the store has more than min_free bytes free.
 * *free_r: bytes free there. 0, or -1 with a malloc'd *error_r. */
int store_write_probe(uint64_t min_free, uint64_t *free_r, char **error_r);

/* ---- common ---- */

/* System flags (STORE_FLAG_*). \Recent is not stored (it is per session). */
#define STORE_FLAG_SEEN 0x01
#define STORE_FLAG_ANSWERED 0x02
#define STORE_FLAG_FLAGGED 0x04
#define STORE_FLAG_DELETED 0x08
#define STORE_FLAG_DRAFT 0x10
#define STORE_FLAGS_ALL 0x1f

/* Special-use attributes (RFC 6154), bits of store_mailbox.special_use. */
#define STORE_SPECIAL_ALL 0x01
#define STORE_SPECIAL_ARCHIVE 0x02
#define STORE_SPECIAL_DRAFTS 0x04
#define STORE_SPECIAL_FLAGGED 0x08
#define STORE_SPECIAL_JUNK 0x10
#define STORE_SPECIAL_SENT 0x20
#define STORE_SPECIAL_TRASH 0x40

/* Limits the store enforces (STORE_LIMIT). */
#define STORE_MAILBOX_NAME_MAX 400 /* bytes of UTF-8, whole path */
#define STORE_MAILBOX_DEPTH_MAX 32 /* levels of '/' hierarchy */
#define STORE_KEYWORD_MAX 100	   /* bytes of one keyword */
#define STORE_KEYWORDS_PER_MESSAGE 64
#define STORE_KEYWORDS_PER_MAILBOX 256

/* Every write request starts with this head. done(req, arg) runs on
 * worker (or on the writer thread when worker is NULL: tools and tests)
 * after the transaction holding the change has been synced, or failed;
 * status is then a STORE_* code. Everything the request points to is
 * borrowed until done() has run, and results the writer allocates go
 * into `a` (the caller must not touch `a` meanwhile). */
struct store_req {
	struct worker *worker;
	void (*done)(void *req, void *arg);
	void *arg;
	struct arena *a; /* for results; may be NULL when the op returns none */
	int status;	 /* out */
};

/* Mailbox names: UTF-8, '/' as the hierarchy separator, "INBOX" matched
 * case-insensitively and always spelt "INBOX"; other names are
 * case-sensitive. A name is refused (STORE_PERMFAIL) when it is empty,
 * starts or ends with '/', has "//", a control character, or invalid
 * UTF-8; STORE_LIMIT when over the length or depth limit. */

/* ---- delivery (SMTP, LMTP) ---- */

struct store_rcpt {
	const char *user_id;  /* in: stable id */
	const char *mailbox;  /* in: target folder, NULL = INBOX; a missing
				 one (or \Noselect) falls back to INBOX */
	uint32_t flags;	      /* in: STORE_FLAG_* set on arrival (usually 0) */
	uint32_t special_use; /* in: with mailbox NULL, a STORE_SPECIAL_* bit
				 (JUNK for spam): the user's mailbox with that
				 attribute, created as "Junk" etc. if none */
	const char *trace;    /* in: per-recipient header lines (Return-Path,
				 Delivered-To...), CRLF-terminated; may be NULL */
	size_t trace_len;
	uint64_t quota;		 /* in: bytes, 0 = unlimited */
	uint64_t quota_messages; /* in: messages, 0 = unlimited */
	int status;		 /* out: enum store_status */
	uint32_t uid;		 /* out: UID in the target mailbox */
};

struct queue_envelope;

struct store_delivery {
	/* All in-fields are borrowed until done() has run. */
	const char *body; /* the message as received (headers + body), CRLF */
	size_t body_len;
	time_t internal_date;
	struct store_rcpt *rcpts;
	size_t nrcpts;
	/* Remote recipients queued in the same transaction (storage/queue.h),
	 * or NULL. A delivery may have only these (nrcpts 0). */
	struct queue_envelope *outbound;
	struct worker *worker; /* where done() runs */
	void (*done)(struct store_delivery *d, void *arg);
	void *arg;
	int status; /* out: STORE_OK if the batch committed (see each rcpt) */
};

/* Queues d for the writer: one copy of the body however many recipients,
 * each recipient's mailbox gets a message record. A user seen for the
 * first time gets INBOX and the special-use folders (Sent, Drafts, Trash,
 * Junk, Archive), subscribed. The MIME structure is parsed once per body.
 * done() runs on d->worker after the commit has been synced (or failed).
 * Any worker thread. */
void store_deliver(struct store_delivery *d);

/* ---- mailboxes ---- */

struct store_mailbox {
	uint32_t id;	      /* stable for the mailbox's life, kept by RENAME */
	const char *name;     /* in the result arena */
	uint32_t special_use; /* STORE_SPECIAL_* */
	bool noselect;	      /* a placeholder kept for its children */
	bool subscribed;
	bool has_children;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t messages;
	uint32_t unseen;  /* messages without \Seen */
	uint32_t deleted; /* messages with \Deleted */
	uint64_t highestmodseq;
	uint64_t bytes;		     /* sum of message sizes (STATUS SIZE) */
	const char *const *keywords; /* keywords in use in this mailbox */
	size_t nkeywords;
	char objectid[40]; /* RFC 8474 MAILBOXID */
};

/* One mailbox by name, allocated in a. STORE_NOTFOUND if absent; INBOX of
 * a user never seen is reported as existing and empty (uidvalidity 0).
 * Any thread; short read txn. */
int store_mailbox_get(const char *user_id, const char *name, struct arena *a,
		      struct store_mailbox *r);

/* Every mailbox of the user (placeholders included), sorted by name
 * (bytewise; INBOX first), allocated in a; *subs_r the subscribed names,
 * existing or not. A user never seen has just INBOX. Any thread. */
int store_mailbox_list_all(const char *user_id, struct arena *a, struct store_mailbox **boxes_r,
			   size_t *count_r, const char ***subs_r, size_t *nsubs_r);

enum store_mailbox_op {
	STORE_MBOX_CREATE,    /* name (+ special_use); creates missing parents */
	STORE_MBOX_DELETE,    /* name; INBOX refused; with children it becomes
				 \Noselect, a \Noselect one with children is
				 refused (RFC 9051 6.3.5) */
	STORE_MBOX_RENAME,    /* name -> new_name, children follow; INBOX moves
				 its messages to new_name and stays, empty */
	STORE_MBOX_SUBSCRIBE, /* name; need not exist */
	STORE_MBOX_UNSUBSCRIBE,
};

struct store_mailbox_change {
	struct store_req req;
	enum store_mailbox_op op;
	const char *user_id;
	const char *name;
	const char *new_name;
	uint32_t special_use;
	uint32_t id; /* out: the mailbox id (CREATE) */
};

void store_mailbox_change(struct store_mailbox_change *m);

/* ---- reading messages ---- */

struct store_msg_info {
	uint32_t uid;
	uint64_t size; /* bytes of the whole message: trace + body, CRLF */
	time_t internal_date;
	time_t save_date; /* when it entered this mailbox */
	uint32_t flags;	  /* STORE_FLAG_* */
	uint64_t modseq;
	uint64_t email_id;	     /* RFC 8474 EMAILID, kept by COPY and MOVE */
	const char *const *keywords; /* NULL when nkeywords is 0 */
	size_t nkeywords;
};

struct store_mailbox_info {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint64_t bytes;
};

/* Lists the messages of a user's mailbox in UID order, allocated in a. A
 * user who never got mail has an empty INBOX (STORE_OK, zero messages,
 * *info_r uidvalidity 0). Any thread; short read txn. */
int store_mailbox_list(const char *user_id, const char *mailbox, struct arena *a,
		       struct store_mailbox_info *info_r, struct store_msg_info **msgs_r,
		       size_t *count_r);

/* The messages of uids (ascending) that exist, in UID order, allocated in
 * a; UIDs that do not exist are left out. One short read txn whose cost
 * follows the UIDs asked for, not the mailbox: a single UID is one
 * lookup, a whole range one pass. STORE_NOTFOUND if the mailbox does not
 * exist (a user who never got mail has an empty INBOX). Any thread. */
int store_message_infos(const char *user_id, const char *mailbox, const uint32_t *uids, size_t n,
			struct arena *a, struct store_msg_info **infos_r, size_t *count_r);

/* What changed after `since` (CONDSTORE/QRESYNC): messages whose MODSEQ is
 * above it, in UID order, and UIDs expunged after it. *complete_r is false
 * when expunges that old are no longer remembered (QRESYNC then reports
 * every UID it cannot prove present as vanished). Any thread. */
int store_changes_since(const char *user_id, const char *mailbox, uint64_t since, struct arena *a,
			struct store_msg_info **changed_r, size_t *nchanged_r,
			uint32_t **vanished_r, size_t *nvanished_r, bool *complete_r);
/* The same, with the mailbox's HIGHESTMODSEQ read in the same txn (so
 * every change up to it is in the lists): a view that took the lists in
 * is in sync up to it, expunges included. */
int store_changes_since_top(const char *user_id, const char *mailbox, uint64_t since,
			    struct arena *a, struct store_msg_info **changed_r, size_t *nchanged_r,
			    uint32_t **vanished_r, size_t *nvanished_r, bool *complete_r,
			    uint64_t *highestmodseq_r);

/* Appends the whole message (trace + body) to out. STORE_NOTFOUND if the
 * UID is gone; STORE_TEMPFAIL if out's cap is hit. Any thread. */
int store_message_read(const char *user_id, const char *mailbox, uint32_t uid, struct buf *out);

/* Appends bytes [offset, offset + len) of the whole message (trace +
 * body) to out, decompressing only the chunks that hold them; len is cut
 * at the end of the message. Any thread. */
int store_message_read_range(const char *user_id, const char *mailbox, uint32_t uid,
			     uint64_t offset, uint64_t len, struct buf *out);

/* The MIME structure stored at delivery (storage/mime.h encoding, offsets
 * relative to the body) copied into a, and the length of the trace
 * prefix, which the caller adds to body offsets. Any thread. */
int store_message_mime(const char *user_id, const char *mailbox, uint32_t uid, struct arena *a,
		       const void **mime_r, size_t *mime_len_r, size_t *trace_len_r);

/* What SORT and THREAD (RFC 5256, RFC 5957) compare, computed once per
 * body when it is stored (`sortkey` db, storage/store_sortkey.c) so that
 * neither reads a body or a header at command time. Strings are
 * NUL-terminated, in i;unicode-casemap canonical form (mailtext_casemap)
 * where they are compared as text, cut to at most STORE_SORTKEY_STR_MAX
 * bytes at a character boundary. */
#define STORE_SORTKEY_STR_MAX 255
#define STORE_SORTKEY_REFS_MAX 2000
struct store_sortkey {
	uint32_t uid;
	uint64_t size; /* RFC822.SIZE */
	time_t internal_date;
	bool has_sent;	       /* a Date: that parsed */
	bool subj_reply;       /* the base subject lost a "Re:", "(fwd)"... */
	int64_t sent;	       /* Date: as UTC seconds (internal date if none) */
	const char *subject;   /* base subject (RFC 5256 2.1), canonical */
	const char *from;      /* addr-mailbox of the first From, canonical */
	const char *from_disp; /* RFC 5957 display value of the first From */
	const char *to, *to_disp, *cc;
	const char *msgid; /* the Message-ID's msg-id ("<a@b>"), or "" */
	const char *refs;  /* References' msg-ids, or In-Reply-To's first,
			      separated by one space, oldest first; the
			      oldest dropped past STORE_SORTKEY_REFS_MAX */
};

/* The sort keys of every message of a mailbox in UID order, allocated in
 * a. A body stored by an older build without its keys gets them computed
 * from its header here (the only case that reads message data).
 * STORE_NOTFOUND if the mailbox does not exist. Any thread. */
int store_sort_keys(const char *user_id, const char *mailbox, struct arena *a,
		    struct store_sortkey **keys_r, size_t *count_r);

/* ---- changing messages ---- */

struct store_append_msg {
	const char *body; /* the whole message, CRLF */
	size_t body_len;
	uint32_t flags;
	const char *const *keywords;
	size_t nkeywords;
	time_t internal_date; /* 0 = now */
	uint32_t uid;	      /* out */
};

/* IMAP APPEND and MULTIAPPEND (RFC 3502): every message or none.
 * STORE_NOTFOUND when the mailbox does not exist (TRYCREATE),
 * STORE_OVERQUOTA / STORE_TOOBIG against quota. */
struct store_append {
	struct store_req req;
	const char *user_id;
	const char *mailbox;
	struct store_append_msg *msgs;
	size_t nmsgs;
	uint64_t quota;		 /* bytes, 0 = unlimited */
	uint64_t quota_messages; /* messages, 0 = unlimited */
	/* REPLACE (RFC 8508): with replace_uid non-zero, that message of
	 * replace_user_id's replace_mailbox is expunged in the same
	 * transaction, before the quota check; if it is gone already,
	 * nothing is done, replace_missing is set and the status is
	 * STORE_NOTFOUND. */
	const char *replace_user_id;
	const char *replace_mailbox;
	uint32_t replace_uid;
	bool replace_missing; /* out */
	uint32_t uidvalidity; /* out: for APPENDUID */
};

void store_append(struct store_append *ap);

enum store_flags_mode { STORE_FLAGS_ADD, STORE_FLAGS_REMOVE, STORE_FLAGS_SET };

/* STORE: change flags and keywords of the listed UIDs (absent ones are
 * skipped). With unchangedsince > 0 (CONDSTORE), a message whose MODSEQ
 * is above it is left alone and listed in modified. Every message that
 * actually changed gets a new MODSEQ and is listed in changed (with its
 * new flags, keywords and MODSEQ) for the untagged FETCH replies. */
struct store_flags {
	struct store_req req;
	const char *user_id;
	const char *mailbox;
	const uint32_t *uids; /* ascending */
	size_t nuids;
	enum store_flags_mode mode;
	uint32_t flags;
	const char *const *keywords;
	size_t nkeywords;
	uint64_t unchangedsince;
	struct store_msg_info *changed; /* out, in req.a */
	size_t nchanged;
	uint32_t *modified; /* out, in req.a */
	size_t nmodified;
};

void store_flags(struct store_flags *f);

/* COPY and MOVE (RFC 6851) within one user's mailboxes: bodies are shared,
 * not copied; flags, keywords, internal date and EMAILID go along, the
 * destination gives new UIDs and MODSEQs. MOVE expunges the sources in
 * the same transaction. STORE_NOTFOUND when the destination does not
 * exist (TRYCREATE); quota applies to COPY. */
struct store_copy {
	struct store_req req;
	const char *user_id;
	const char *mailbox;
	const char *dest;
	const char *dest_user_id; /* NULL: user_id; another user's (a shared
				     mailbox, RFC 4314): quota is that user's */
	const uint32_t *uids;	  /* ascending */
	size_t nuids;
	bool move;
	uint64_t quota;		 /* bytes, 0 = unlimited */
	uint64_t quota_messages; /* messages, 0 = unlimited */
	/* RFC 4314 4 (a destination the user may not set every flag in):
	 * these system flags, and with strip_keywords every keyword, are
	 * left off the copies. 0 / false: copied as they are. */
	uint32_t strip_flags;
	bool strip_keywords;
	uint32_t dest_uidvalidity; /* out: for COPYUID */
	uint32_t *src_uids;	   /* out, in req.a: those that existed */
	uint32_t *dest_uids;	   /* out, in req.a: their new UIDs */
	size_t ncopied;
};

void store_copy(struct store_copy *c);

struct store_expunge {
	const char *user_id; /* borrowed until done() */
	const char *mailbox;
	const uint32_t *uids;
	size_t nuids;
	struct worker *worker;
	void (*done)(struct store_expunge *e, void *arg);
	void *arg;
	int status;	 /* out */
	size_t expunged; /* out: how many existed and were removed */
};

/* Removes those messages (bodies freed when no mailbox references them
 * any more, quota usage updated) in one transaction, remembering each
 * expunged UID with the MODSEQ of its removal for QRESYNC. done() after
 * sync. */
void store_expunge(struct store_expunge *e);

/* Quota usage of a user (0s for a user who never got mail). */
int store_usage(const char *user_id, uint64_t *bytes_r, uint64_t *messages_r);
/* Whether adding add_bytes in add_msgs messages to a usage of used_bytes
 * in used_msgs fits the limits (0 = none): STORE_OK, STORE_TOOBIG (the
 * bytes alone exceed the byte limit: no expunge can make room) or
 * STORE_OVERQUOTA (either limit would be passed). Pure. */
int store_quota_check(uint64_t limit_bytes, uint64_t limit_msgs, uint64_t used_bytes,
		      uint64_t used_msgs, uint64_t add_bytes, uint64_t add_msgs);

/* ---- change notification ---- */

struct store_watch;
/* What a watch event reports (bits; coalesced events OR theirs). */
#define STORE_CHANGED_MESSAGES 0x1 /* messages or their flags */
#define STORE_CHANGED_NAMES 0x2	   /* a mailbox was created, deleted or renamed */
#define STORE_CHANGED_SUBSCRIPTIONS 0x4
#define STORE_CHANGED_METADATA 0x8 /* annotations: store_watch_entries() names them */
#define STORE_CHANGED_ALL 0xf
typedef void store_watch_fn(void *arg, uint32_t mailbox_id, uint64_t highestmodseq,
			    unsigned changed);

/* Calls fn(arg, ...) on w after any committed change to that user's
 * mailbox (mailbox_id 0: any of the user's mailboxes), so IMAP IDLE and
 * NOTIFY sessions learn of deliveries and of other sessions' changes.
 * Several changes may be coalesced into one call (mailbox_id 0 when they
 * touched several, changed the union of their STORE_CHANGED_* bits), so
 * a slow session has at most one event queued. Any worker thread; the
 * handle is freed by store_watch_remove(), after which fn is not called. */
struct store_watch *store_watch_add(const char *user_id, uint32_t mailbox_id, struct worker *w,
				    store_watch_fn *fn, void *arg);
void store_watch_remove(struct store_watch *watch);
/* An annotation (METADATA entry) that was set or removed. */
struct store_watch_entry {
	uint32_t mailbox_id; /* the owner's mailbox; 0: a server entry */
	char *user_id;	     /* whose /private entry it is; NULL: a /shared one */
	char *name;	     /* the entry name, as stored */
};
/* Inside fn, for an event with STORE_CHANGED_METADATA: the entries that
 * changed since the previous event, each once (borrowed until fn returns).
 * *lost_r when more than STORE_WATCH_ENTRIES_MAX changed: the rest were
 * not kept. A change to a mailbox's annotations reaches the watches of
 * the mailbox's owner, a /private one with the user it belongs to, who
 * may be another user reading a shared mailbox: callers show each user
 * only their own. */
#define STORE_WATCH_ENTRIES_MAX 256
const struct store_watch_entry *store_watch_entries(const struct store_watch *watch, size_t *n_r,
						    bool *lost_r);
/* Another process (tern-admind's import or purge, `ternd store ...`)
 * committed changes to this user's mail, which this process's writer did
 * not see: every watch of the user is called (highestmodseq UINT64_MAX,
 * mailbox_id 0), so sessions re-read what they show. Any thread. */
void store_changed_elsewhere(const char *user_id);

/* ---- full-text index (storage/store_fts.c) ---- */

/* Candidates for a SEARCH BODY (hdr_r NULL) or TEXT (hdr_r set) needle
 * given in canonical form (storage/mailtext.h): a sorted superset, in a,
 * of the UIDs up to *through_r of the mailbox whose text contains it (the
 * caller confirms each with the matcher). For TEXT, *hdr_r (in a) is the
 * part of them whose header may hold it: a UID outside it up to
 * *through_r has the needle in its body or nowhere. The index is filled
 * in the background: every UID above *through_r must be scanned.
 * STORE_NOTFOUND when the index cannot answer (a needle under 3 bytes,
 * nothing indexed yet): the caller scans; STORE_TEMPFAIL on a read
 * error. */
int store_fts_candidates(const char *user_id, const char *mailbox, const char *needle, size_t nlen,
			 struct arena *a, uint32_t **uids_r, size_t *n_r, uint32_t **hdr_r,
			 size_t *nhdr_r, uint32_t *through_r);
/* Rebuilds the index of every mailbox, each in transactions of at most
 * 500 messages (ternd store check --rebuild-index);
 * a mailbox being rebuilt is scanned by SEARCH. Blocking; not on a
 * worker's loop. A STORE_* status. */
int store_fts_rebuild(uint64_t *mailboxes_r, uint64_t *messages_r);

/* ---- annotations (IMAP METADATA, RFC 5464; storage/store_annot.c) ---- */

/* Entry names as stored: "/private/..." or "/shared/...", lower case
 * (RFC 5464 3.2: names are case-insensitive), printable ASCII without
 * "*" and "%", no "//", no trailing "/". */
#define STORE_ANNOT_NAME_MAX 256
#define STORE_ANNOT_DEPTH_INFINITY 2

struct store_annot {
	const char *name;  /* as above */
	const char *value; /* bytes (may hold NULs); NULL: remove (set) */
	size_t len;
};

/* Whether name is a valid stored entry name (as above; one component,
 * "/private" or "/shared" alone, is valid for reading). Pure. */
bool store_annot_name_ok(const char *name);

/* SETMETADATA: every entry set (or removed, value NULL) or none. A
 * /private entry belongs to user_id, a /shared one to the mailbox; with
 * mailbox_id 0 they are server entries (the shared ones common to all
 * users). STORE_NOTFOUND when the mailbox is gone, STORE_LIMIT when a
 * new entry would make more than max_entries (0: no limit) in its scope
 * (the mailbox's shared entries, or one user's private ones on it),
 * STORE_PERMFAIL for an invalid or one-component name. Values are not
 * checked against any size here. Any worker thread. */
struct store_annot_set {
	struct store_req req;
	const char *owner_id; /* stable id of the mailbox's owner */
	const char *user_id;  /* stable id of the user setting them */
	uint32_t mailbox_id;  /* store_mailbox.id, 0: server entries */
	const struct store_annot *entries;
	size_t n;
	unsigned max_entries;
};
void store_annot_set(struct store_annot_set *s);

/* GETMETADATA: for each of names (valid, see above), the entry itself if
 * it exists and the entries below it up to depth (0, 1 or
 * STORE_ANNOT_DEPTH_INFINITY), in name order, copied into a (values
 * NUL-terminated past len); an entry an earlier name selected already is
 * not listed again. Name i's entries are (*list_r)[(*starts_r)[i] ..
 * (*starts_r)[i + 1]). Private entries are user_id's. The cost grows with
 * nnames squared: callers bound nnames. Any thread; one read txn. */
int store_annot_get(const char *owner_id, const char *user_id, uint32_t mailbox_id,
		    const char *const *names, size_t nnames, int depth, struct arena *a,
		    struct store_annot **list_r, size_t **starts_r);
/* Whether entry name (nlen bytes) is req or below it within depth. Pure. */
bool store_annot_in_scope(const char *name, size_t nlen, const char *req, int depth);
/* ---- access control lists (RFC 4314; storage/store_acl.c) ---- */

/* Rights this store keeps, in the order they are written. */
#define STORE_ACL_RIGHTS "lrswipkxtea"
#define STORE_ACL_IDENT_MAX 255 /* bytes of one identifier */

struct store_acl_entry {
	const char *ident;  /* as first set ("bob", "anyone", "$team", "-bob") */
	const char *rights; /* letters of STORE_ACL_RIGHTS, in that order */
};

struct store_acl {
	const char *owner_login; /* the owner's login saved with the record, or "" */
	struct store_acl_entry *entries;
	size_t n;
};

/* The ACL of one of owner_id's mailboxes, copied into a (no record: n 0).
 * STORE_NOTFOUND if the mailbox does not exist. Any thread. */
int store_acl_get(const char *owner_id, const char *mailbox, struct arena *a, struct store_acl *r);

/* SETACL / DELETEACL: the entry of ident (matched ignoring ASCII case;
 * a new one keeps this spelling) gets rights (mode '=') or gains ('+')
 * or loses ('-') them; rights NULL or a result without rights removes
 * the entry. owner_login is saved with the record (shown in the shared
 * namespace). STORE_NOTFOUND if the mailbox does not exist. */
struct store_acl_change {
	struct store_req req;
	const char *owner_id;
	const char *owner_login;
	const char *mailbox;
	const char *ident;
	const char *rights;
	char mode;
};
void store_acl_change(struct store_acl_change *c);

/* A mailbox whose ACL names one of the identifiers asked for. */
struct store_acl_share {
	const char *owner_id;
	const char *mailbox; /* the owner's name of it */
	uint64_t user;	     /* internal: the owner's store number */
	uint32_t mailbox_id;
	bool noselect;
	struct store_acl acl;
};

/* Every mailbox whose ACL has a positive entry for one of idents
 * (compared lower-case), once each, from the reverse index (no scan),
 * allocated in a. Any thread; one short read txn. */
int store_acl_shared(const char *const *idents, size_t nidents, struct arena *a,
		     struct store_acl_share **shares_r, size_t *n_r);
/* 0 if ident can be stored (1..STORE_ACL_IDENT_MAX bytes, no control
 * character), else STORE_PERMFAIL. Pure. */
int store_acl_ident_check(const char *ident);

/* ---- maintenance (ternd store ...) ---- */

/* Verifies every reference count, mailbox counter, quota total and index
 * of the environment in state_dir (opened by this process alone or beside
 * a running ternd). Each problem is reported through report(); returns the
 * number of problems, or -1 with *error_r if it could not run. */
int store_check(const char *state_dir, void (*report)(void *arg, const char *problem), void *arg,
		char **error_r);

#endif
