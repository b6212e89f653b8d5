/*
 * store_admin.h - the mail store's administration side (DESIGN.md,
 * tern-admind's storage duties): the users the store knows with their
 * usage, orphan marks for users removed from the directory, purging a
 * user, and export/import of a user's mail as mbox or Maildir.
 *
 * Every function needs the store open in this process (store_open()). The
 * reads run in short read transactions on the caller's thread and copy
 * what they return into the caller's arena. The writes go through the
 * writer thread like every other change (struct store_req, done() after
 * the commit is synced); the *_sync wrappers and export/import submit and
 * wait, so they BLOCK: call them from a tool's main thread or an admin
 * thread, never from a worker's event loop.
 *
 * A second process (`ternd store ...`, tern-admind) may run all of this
 * beside a running ternd: LMDB serialises write transactions of several
 * processes with its own lock, and every counter (UIDs, MODSEQs, ids) is
 * allocated from the records inside the transaction. XXX: changes made by
 * another process are not pushed to ternd's IDLE sessions (watchers are
 * per process); a session sees them at its next command.
 */
#ifndef TERN_STORE_ADMIN_H
#define TERN_STORE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "storage/store.h"

/* ---- users and usage ---- */

struct store_user_summary {
	const char *user_id;  /* stable id, in the arena */
	uint64_t internal_id; /* the store's own number for the user */
	uint32_t mailboxes;   /* \Noselect placeholders included */
	uint64_t messages;    /* quota usage record: messages ... */
	uint64_t bytes;	      /* ... and bytes (trace + body) */
	uint64_t unseen;      /* messages without \Seen, all mailboxes */
	/* When the store first saw the user: the UIDVALIDITY of INBOX, which
	 * is the time of its creation (store_txn_mbox_create) to within a
	 * second or two; 0 when unknown. No record keeps this exactly: the
	 * user record has no room without a format change. */
	time_t created;
	time_t last_arrival; /* latest save date of a message present, 0 none */
	time_t orphaned_at;  /* when marked orphan, 0 when not marked */
};

/* Every user the store knows, ordered by stable id, allocated in a. */
int store_user_list(struct arena *a, struct store_user_summary **users_r, size_t *count_r);
/* One user; STORE_NOTFOUND if the store has never seen them. Their
 * mailboxes are store_mailbox_list_all() (store.h). */
int store_user_get(const char *user_id, struct arena *a, struct store_user_summary *r);

/* ---- orphan marks ----
 * The admin daemon decides that a user is gone from the directory; the
 * store only keeps the mark and its time, and lists them. */

struct store_orphan {
	const char *user_id; /* in the arena */
	time_t marked_at;
};

/* Every mark, ordered by stable id, allocated in a. */
int store_orphan_list(struct arena *a, struct store_orphan **list_r, size_t *count_r);

struct store_orphan_change {
	struct store_req req;
	const char *user_id;
	bool mark;	  /* true: set the mark, false: remove it */
	time_t when;	  /* mark time, 0 = now; a user already marked keeps
			     the first time, so retention counts from it */
	time_t marked_at; /* out: the mark's time (mark) */
};

/* STORE_NOTFOUND: mark of a user the store does not have, unmark of a
 * user without a mark. */
void store_orphan_change(struct store_orphan_change *o);
/* Blocking wrappers (see above). */
int store_user_mark_orphan(const char *user_id, time_t when, time_t *marked_at_r);
int store_user_unmark_orphan(const char *user_id);

/* ---- purge ---- */

/* One step of removing a user: at most max_messages messages are
 * expunged (bodies unreferenced, freed with their last reference; quota
 * usage updated), each step its own transaction so that a big mailbox
 * does not hold the writer for long; the step that finds none left
 * removes every mailbox (and its MODSEQ tombstones), the subscriptions,
 * the annotations (the user's private ones on anybody's mailboxes too),
 * the quota record, the orphan mark and the user record, and sets
 * finished. A step interrupted (crash) leaves a consistent store: the
 * next purge continues. STORE_NOTFOUND for a user the store lacks. */
struct store_purge {
	struct store_req req;
	const char *user_id;
	size_t max_messages; /* per step, 0 = 1000 */
	uint64_t messages;   /* out: removed by this step */
	uint64_t bytes;	     /* out */
	bool finished;	     /* out: the user is gone */
};
void store_purge_step(struct store_purge *p);
/* Blocking: steps until finished; progress(arg, total messages so far)
 * after each step (may be NULL). Totals in *messages_r / *bytes_r. */
int store_user_purge(const char *user_id, void (*progress)(void *arg, uint64_t messages), void *arg,
		     uint64_t *messages_r, uint64_t *bytes_r);

/* ---- export and import (store_export.c, store_import.c) ---- */

enum store_mail_format { STORE_FORMAT_MBOX, STORE_FORMAT_MAILDIR };

/* Layout (docs/store-tool.md):
 *  maildir, all mailboxes: PATH is a Maildir++ tree, INBOX in PATH itself
 *    (cur/ new/ tmp/), every other mailbox in PATH/.NAME with '/' written
 *    '.' and a literal '.' or '%' in a name written %2E / %25; files
 *    TIME.UIDVALIDITY_UID.tern:2,FLAGS with mtime = internal date; keywords
 *    in each folder's dovecot-keywords (letters a-z, 26 per folder).
 *  maildir, one mailbox: PATH is a plain Maildir holding just it.
 *  mbox, all mailboxes: PATH is a directory of NAME.mbox files (same name
 *    escaping, hierarchy flattened with '.').
 *  mbox, one mailbox: PATH is that one mbox file.
 * mbox is mboxrd: "From SENDER DATE" separators (the Return-Path address
 * or MAILER-DAEMON; the internal date, UTC, asctime form), every line
 * matching ^>*From  gets one more '>', a blank line after each message;
 * flags as Status (R), X-Status (A F T D) and X-Keywords header lines
 * added at the end of the header block, which import reads and removes.
 * Messages are written exactly as IMAP shows them (trace + body, CRLF);
 * import turns bare LF line ends into CRLF and leaves CRLF alone. */

struct store_xfer_opts {
	enum store_mail_format format;
	const char *mailbox; /* one mailbox (see above), NULL = all */
	/* Called every progress_every messages (0 = never) and at the end of
	 * each mailbox, with the mailbox and its messages done so far. */
	void (*progress)(void *arg, const char *mailbox, uint64_t done);
	void *progress_arg;
	unsigned progress_every;
	/* Called for things skipped but not fatal (a keyword that is not an
	 * IMAP atom, a 27th keyword in a Maildir folder). May be NULL. */
	void (*warn)(void *arg, const char *msg);
};

struct store_xfer_stats {
	uint64_t mailboxes;
	uint64_t messages;
	uint64_t bytes;
	uint64_t batches; /* import: transactions committed */
};

/* Writes the user's mail under path (which must not exist, or be an empty
 * directory; one mbox file must not exist). STORE_NOTFOUND for an unknown
 * user or mailbox; other failures with a malloc'd *error_r naming the
 * path. A message expunged while the export runs is left out. */
int store_export(const char *user_id, const char *path, const struct store_xfer_opts *o,
		 struct store_xfer_stats *st, char **error_r);

/* Reads path and appends every message through the normal APPEND path
 * (bodies stored once, quota usage, MIME structure, UIDs and MODSEQs as
 * for any APPEND; no quota limit applied), in transactions of at most
 * STORE_IMPORT_BATCH_MSGS messages or STORE_IMPORT_BATCH_BYTES bytes,
 * creating mailboxes as needed, keeping flags, keywords and internal
 * dates. Malformed input (not an mbox, a broken Maildir name, a message
 * over STORE_IMPORT_MSG_MAX) stops the import with STORE_PERMFAIL and a
 * malloc'd *error_r naming the file and line or entry; what was committed
 * before stays (st says how much). */
int store_import(const char *user_id, const char *path, const struct store_xfer_opts *o,
		 struct store_xfer_stats *st, char **error_r);

#define STORE_IMPORT_BATCH_MSGS 200
#define STORE_IMPORT_BATCH_BYTES (16u << 20)
#define STORE_IMPORT_MSG_MAX (256u << 20)

/* ---- format helpers (store_export.c; public for the unit tests) ---- */

/* mboxrd: appends msg to out with one '>' added to each line matching
 * ^>*From ; unquote removes one from each line matching ^>+From . 0, or
 * -1 when out's cap is hit. */
int store_mbox_quote(const char *msg, size_t len, struct buf *out);
int store_mbox_unquote(const char *msg, size_t len, struct buf *out);
/* The date of a "From SENDER DATE" line (asctime form, read as UTC; an
 * optional trailing zone is ignored): 0 with *t_r, or -1. */
int store_mbox_from_date(const char *line, size_t len, time_t *t_r);
/* Appends "From SENDER DATE\n" for a message (sender from its leading
 * Return-Path, else MAILER-DAEMON). */
int store_mbox_from_line(const char *msg, size_t len, time_t internal_date, struct buf *out);

/* Maildir info: STORE_FLAG_* (+ passed for P, $Forwarded) -> "2,DFPRST"
 * letters in ASCII order, then the keyword letters of kwbits (bit i =
 * 'a' + i). out needs 40 bytes. */
void store_maildir_info(uint32_t flags, bool passed, uint32_t kwbits, char out[40]);
/* Parses a Maildir file name's info: 0 with flags, passed and keyword
 * bits (none when the name has no ":2,"), -1 for a name that is not a
 * Maildir message name (info not "2,...", a flag that is not a letter,
 * an empty unique part, '/' in it). */
int store_maildir_parse(const char *name, uint32_t *flags_r, bool *passed_r, uint32_t *kwbits_r);
/* Mailbox name <-> Maildir++ folder name without the leading '.'
 * ("a/b.c" <-> "a.b%2Ec"). Allocated in a; decode returns NULL for a
 * folder name that does not decode to a valid mailbox name. */
const char *store_maildir_folder(struct arena *a, const char *mailbox);
const char *store_maildir_mailbox(struct arena *a, const char *folder);

/* ---- backups (store_backup.c; docs/store-tool.md) ---- */

/* What a backup's MANIFEST says (or, after verify, what its check found). */
struct store_backup_info {
	uint32_t format;
	time_t created; /* when the copy's snapshot was taken */
	uint64_t users, mailboxes, messages, bodies;
	int problems;	 /* found by the last check, -1 unknown */
	bool check_ok;	 /* the check passed: the backup may be restored */
	char origin[16]; /* "manual", "scheduled", or "" (ternd store backup) */
};

/* Progress: step "copy" (done/total bytes, total an estimate) or "check"
 * (no figures). Runs on the caller's thread. */
typedef void store_backup_progress_fn(void *arg, const char *step, uint64_t done, uint64_t total);
/* One line per problem the check finds. */
typedef void store_backup_problem_fn(void *arg, const char *problem);

struct store_backup_opts {
	bool no_compact;    /* a plain copy (free pages kept): faster, bigger */
	const char *origin; /* written to the manifest ("origin" line); may be NULL */
	store_backup_progress_fn *progress; /* may be NULL */
	void *arg;
	store_backup_problem_fn *problem; /* may be NULL */
	void *problem_arg;
};

/* A consistent hot copy of STATE_DIR/mail into DIR/mail (DIR must not
 * exist or be empty; its parent must exist), synced, checked, and
 * DIR/MANIFEST. Beside a running ternd. STORE_OK with *r filled even when
 * the check found problems (r->check_ok false: not restorable);
 * STORE_NOTALLOWED for a non-empty DIR, STORE_TEMPFAIL otherwise, with a
 * malloc'd *error_r. Blocking; any thread. */
int store_backup(const char *state_dir, const char *dir, const struct store_backup_opts *o,
		 struct store_backup_info *r, char **error_r);
/* Reads DIR/MANIFEST: STORE_OK, STORE_NOTFOUND (none), STORE_PERMFAIL
 * (not a manifest), with *error_r malloc'd on failure. */
int store_backup_manifest(const char *dir, struct store_backup_info *r, char **error_r);
/* Checks DIR/mail again (read-only): STORE_OK with r->problems and
 * r->check_ok, or a failure as for store_backup_manifest. */
int store_backup_verify(const char *dir, store_backup_problem_fn *problem, void *arg,
			struct store_backup_info *r, char **error_r);
/* Puts the backup DIR in place of STATE_DIR/mail after checking a staged
 * copy of it; the previous store is kept, its new name in *replaced_r
 * (malloc'd, NULL when there was none). STORE_NOTALLOWED while any
 * process (this one included) has the store open, STORE_PERMFAIL for a
 * backup that is not usable (nothing changed), STORE_TEMPFAIL otherwise.
 * o may be NULL. Blocking. */
int store_restore(const char *state_dir, const char *dir, const struct store_backup_opts *o,
		  struct store_backup_info *r, char **replaced_r, char **error_r);
/* "20260101T030000Z" for t. */
void store_backup_stamp(time_t t, char out[32]);

/* Opens for writing (a writer thread of this process's own) a store that
 * exists and is of the current format: tools and tern-admind, beside or
 * without ternd. Never creates or migrates one. 0, or -1 with a malloc'd
 * *error_r. store_close() closes it. */
int store_open_existing(const struct config *cfg, char **error_r);

#endif
