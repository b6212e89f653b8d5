/*
 * store_schema.h - the on-disk layout of the mail store (internal to
 * storage/). Every integer is big-endian, in keys so that byte order is
 * numeric order (cursor range scans), and in values so that the file does
 * not depend on the host. Records carry a version byte; a decoder that
 * meets a version or a length it does not know reports corruption
 * (STORE_PERMFAIL), it never guesses. Decoders read every version this
 * build has written (1 and 2); encoders write the current one.
 *
 * Environment: <state_dir>/mail/ (data.mdb, lock.mdb), MDB_NOTLS, full
 * sync. Named databases (format version 2; version 1 had no subs, mime,
 * and v1 records only):
 *
 *   meta      "format"            -> u32 format version (STORE_FORMAT)
 *             "next_user_id"      -> u64 next user_id to allocate
 *             "next_email_id"     -> u64 next EMAILID to allocate (v2)
 *   users     stable id (bytes)   -> user record (below); v1: u64 user_id
 *   mbox      user_id u64 | mailbox_id u32
 *                                 -> mbox record (below)
 *   mboxname  user_id u64 | name  -> u32 mailbox_id ("INBOX" is id 1)
 *   subs      user_id u64 | name  -> empty (subscriptions, RFC 9051
 *                                    LSUB/LIST (SUBSCRIBED): independent
 *                                    of the mailbox existing) (v2)
 *   msg       user_id u64 | mailbox_id u32 | uid u32
 *                                 -> msg record (below)
 *   modseq    user_id u64 | mailbox_id u32 | modseq u64
 *                                 -> u32 uid [| u8 kind] (kind 0 or
 *                                    absent: the message's current MODSEQ;
 *                                    kind 1: the UID was expunged at this
 *                                    MODSEQ, a tombstone for QRESYNC
 *                                    VANISHED). Exactly one kind-0 entry
 *                                    per message.
 *   blob      sha256[32] | chunk u32
 *                                 -> one zstd frame of at most
 *                                    STORE_CHUNK_SIZE input bytes, so a
 *                                    40 MB body is ~160 small values, not
 *                                    one huge contiguous overflow run
 *   blobref   sha256[32]          -> blobref record (below); kept apart
 *                                    from the chunks so a count change
 *                                    never rewrites a body
 *   mime      sha256[32]          -> the body's MIME structure
 *                                    (storage/mime.h encoding), written
 *                                    with the blob, deleted with it (v2)
 *   quota     user_id u64         -> u64 bytes | u64 messages, updated in
 *                                    the same transaction as the change
 *   queue     queue_id u64        -> queue message record (below): the
 *                                    outbound queue (storage/queue.h)
 *   queue_rcpt queue_id u64 | idx u32
 *                                 -> queue recipient record (below), one
 *                                    per remote recipient, idx from 0
 *   queue_due next_attempt u64 | queue_id u64 | idx u32
 *                                 -> empty: the pending recipients in the
 *                                    order they are due, kept exact
 *   meta      "next_queue_id"     -> u64 next queue_id to allocate
 *   (The three queue databases are created empty when a format-2
 *   environment without them is opened: no migration, no version bump.
 *   Likewise the "held" flag of a queue record: a v1 record without it
 *   reads as not held, and an older build that meets it merely sees
 *   pending recipients that are never due, so no version bump.)
 *   orphans   stable id (bytes)   -> orphan record (below): users the
 *                                    admin daemon found removed from the
 *                                    directory, kept until purged
 *                                    (storage/store_admin.h). Created
 *                                    empty like the queue databases; an
 *                                    absent one is "no orphans".
 *   sortkey   sha256[32]          -> sortkey record (below): what SORT and
 *                                    THREAD compare, from the body's top
 *                                    header (storage/store_sortkey.c);
 *                                    written with the blob, deleted with
 *                                    it. Created empty like the queue
 *                                    databases and filled at open for the
 *                                    bodies already stored (meta
 *                                    "sortkeys" -> u32 1 once done); a
 *                                    body without one (stored by an older
 *                                    build later) is computed when read.
 *                                    No format bump: older builds ignore
 *                                    the db.
 *   fts       user_id u64 | mailbox_id u32 | kind u8 [| gram[3]]
 *                                 -> u32 uid, sorted duplicates
 *                                    (MDB_DUPSORT | MDB_DUPFIXED): the
 *                                    full-text index (storage/store_fts.c;
 *                                    kinds 'H' 'B' trigram postings, 'W'
 *                                    indexed-through-UID watermark, 'U'
 *                                    UIDs not indexed). Created empty like the
 *                                    queue databases: no format bump.
 *   annot     owner u64 | mailbox_id u32 | accessor u64 | entry name
 *                                 -> annot record (below): annotations
 *                                    (IMAP METADATA, storage/store_annot.c).
 *                                    owner: the mailbox owner's user_id,
 *                                    0 (reserved, no user has it) for the
 *                                    shared server entries; mailbox_id 0:
 *                                    server entries ("" in IMAP);
 *                                    accessor 0 for a /shared entry, else
 *                                    the user_id whose /private entry it
 *                                    is (the owner, or another user once
 *                                    mailboxes are shared); the name
 *                                    lower-case, "/private/..." or
 *                                    "/shared/...", ASCII. DELETE drops a
 *                                    mailbox's, RENAME keeps them (ids
 *                                    are stable), a purge drops the
 *                                    user's. Created empty like the queue
 *                                    databases: no format bump.
 *   acl       user_id u64 | mailbox_id u32
 *                                 -> acl record (below): the mailbox's
 *                                    RFC 4314 ACL (storage/store_acl.c);
 *                                    dropped with the mailbox, kept by
 *                                    RENAME (the id stays)
 *   aclidx    lower-case identifier | 0 u8 | user_id u64 | mailbox_id u32
 *                                 -> empty: one per positive entry of an
 *                                    acl record, so what is shared with
 *                                    an identifier is found without a
 *                                    scan. Both created empty: no format
 *                                    bump.
 *   dmarc     policy domain | 0 u8 -> dmarc policy record (below)
 *             policy domain | 1 u8 | sha256(row)[16]
 *                                 -> dmarc row record (below): DMARC
 *                                    aggregate report counts
 *                                    (storage/store_dmarc.c); a report
 *                                    drops what it counted. Created empty:
 *                                    no format bump.
 *   hdr       sha256(body)[32]  -> 0 u8 version=1, then the body's top
 *                                    header block as stored (fields and
 *                                    the blank line, raw), when it is at
 *                                    most STORE_HDR_MAX bytes: reads of
 *                                    a range inside it (SEARCH on header
 *                                    fields, FETCH HEADER...) need no
 *                                    decompression. Written with the
 *                                    body's mime record, dropped with
 *                                    the body. Created empty: bodies
 *                                    stored before it have none and are
 *                                    read the old way; no format bump.
 *
 * Records (offsets in bytes):
 *   user v2:    0 u8 version=2, 1..3 0, 4 u32 next mailbox_id,
 *               8 u64 user_id. (v1 is the bare u64 user_id; its next
 *               mailbox_id is one past the highest in `mbox`.)
 *   mbox v1:    0 u8 version=1, 1 u8 0, 2 u16 0, 4 u32 uidvalidity,
 *               8 u32 uidnext, 12 u32 messages, 16 u64 highestmodseq,
 *               24 u64 bytes, 32 u16 name_len, 34 name.
 *   mbox v2:    0 u8 version=2, 1 u8 special_use (STORE_SPECIAL_*),
 *               2 u16 flags (MBOX_F_*), 4 u32 uidvalidity, 8 u32 uidnext,
 *               12 u32 messages, 16 u64 highestmodseq, 24 u64 bytes,
 *               32 u32 unseen, 36 u32 deleted, 40 u64 vanished_floor
 *               (tombstones of expunges with MODSEQ above it are all
 *               kept), 48 u16 name_len, 50 u16 nkeywords, 52 name, then
 *               nkeywords x (u8 len, bytes): the keywords in use.
 *   msg v1:     0 u8 version=1, 1..3 0, 4 u32 flags (STORE_FLAG_*),
 *               8 u64 modseq, 16 i64 internal date, 24 u64 size (trace +
 *               body), 32 sha256[32] of the body, 64 u32 trace_len,
 *               68 trace bytes (per-recipient header lines, never in the
 *               shared body).
 *   msg v2:     0 u8 version=2, 1 u8 0, 2 u16 nkeywords, 4 u32 flags,
 *               8 u64 modseq, 16 i64 internal date, 24 u64 size,
 *               32 sha256[32], 64 u32 trace_len, 68 i64 save date,
 *               76 u64 email_id, 84 trace bytes, then nkeywords x
 *               (u8 len, bytes). (A v1 record reads as save date =
 *               internal date, email_id 0 = "derive from the hash".)
 *   blobref v1: 0 u8 version=1, 1 u8 encoding (1 = zstd chunks in `blob`;
 *               room for external files later), 2 u16 0, 4 u32 refcount,
 *               8 u64 body length, 16 u32 chunk size, 20 u32 chunk count.
 *   queue v1:   0 u8 version=1, 1 u8 ret (enum queue_ret), 2 u8 origin
 *               (enum queue_origin), 3 u8 flags (1 SMTPUTF8, 2 8-bit,
 *               4 REQUIRETLS, 8 held by an admin), 4 u32 nrcpts, 8 i64 created, 16 u64 body
 *               length, 24 sha256[32] of the body, 56 u16 sender_len,
 *               58 u16 envid_len, 60 u16 auth_user_len, 62 u16 client_len,
 *               64 sender, envid, auth_user, client bytes (length 0 = none;
 *               the null sender is an empty sender).
 *   queue_rcpt v1: 0 u8 version=1, 1 u8 state (0 pending, 1 delivered,
 *               2 failed), 2 u8 notify (QUEUE_NOTIFY_*), 3 u8 flags
 *               (1 delay DSN sent), 4 u32 attempts, 8 i64 next_attempt,
 *               16 u16 address_len, 18 u16 orcpt_len, 20 u16
 *               last_error_len, 22 u16 0, 24 address, orcpt, last_error.
 *   orphan v1:  0 u8 version=1, 1..7 0, 8 i64 time the mark was set.
 *   annot v1:   0 u8 version=1, 1 the value's bytes (any octets, NULs
 *               included; the length is the record's minus one).
 *   acl v1:     0 u8 version=1, then NUL-terminated strings: the owner's
 *               stable id, the owner's login, and for each entry its
 *               identifier and its rights (letters of STORE_ACL_RIGHTS).
 *   dmarc policy v1: 0 u8 version=1, 1..7 0, 8 i64 when the reporting
 *               period began, 16 the policy as published (NUL-separated
 *               strings: protocols/smtp/dmarc_report.h).
 *   dmarc row v1: 0 u8 version=1, 1..7 0, 8 u64 count, 16 the row
 *               (NUL-separated strings: protocols/smtp/dmarc_report.h).
 *   sortkey v1: 0 u8 version=1, 1 u8 flags (1 the Date: parsed, 2 the
 *               base subject lost a reply/forward marker), 2..7 0, 8 i64
 *               sent date (UTC seconds, 0 without flag 1), 16 8 x u16
 *               lengths, 32 the strings without terminators, in order:
 *               base subject, From addr-mailbox, From display value, To
 *               addr-mailbox, To display value, Cc addr-mailbox (each
 *               i;unicode-casemap canonical, at most 255 bytes),
 *               Message-ID (its msg-id, at most 255), references (msg-ids
 *               separated by one space, at most 2000 bytes).
 *
 * Invariants (what store_check verifies): UIDs and MODSEQs only grow
 * (allocated by the single writer) and uidnext is above every UID of the
 * mailbox; a blob's chunks (and its mime record) exist exactly while its
 * blobref exists, and its refcount equals the number of msg records with
 * its hash plus the number of queue entries with it; mbox
 * messages/bytes/unseen/deleted equal the sums over its msg
 * records; quota usage equals the sums over all the user's mailboxes; each
 * msg has exactly one kind-0 modseq entry with its MODSEQ, and every
 * kind-0 entry points at such a message; highestmodseq is at least every
 * MODSEQ of the mailbox; mboxname and mbox agree both ways. Queue: every
 * entry has exactly nrcpts recipient records (idx 0..nrcpts-1) and at
 * least one of them pending (an entry whose recipients are all final has
 * left the queue); each pending recipient of an entry not held has
 * exactly one queue_due entry, at its next_attempt, one of a held entry
 * none, and every queue_due entry is such a one; queue ids
 * are below next_queue_id. Every orphan mark names a user of `users`
 * (a purge removes both in one transaction).
 */
#ifndef TERN_STORE_SCHEMA_H
#define TERN_STORE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_FORMAT 2u
#define STORE_CHUNK_SIZE (256u * 1024u)
#define STORE_HDR_MAX (16u * 1024u) /* top headers kept raw in `hdr` */
#define STORE_HASH_LEN 32
#define STORE_INBOX_ID 1u
/* LMDB keys are at most 511 bytes; leave room for the user_id prefix. */
#define STORE_MAX_ID_LEN 400
#define STORE_MAX_NAME_LEN 400

#define STORE_MBOX_FIXED_V1 34
#define STORE_MBOX_FIXED 52
#define STORE_MSG_FIXED_V1 68
#define STORE_MSG_FIXED 84
#define STORE_USER_LEN 16

/* mbox record flags */
#define MBOX_F_NOSELECT 0x0001 /* a placeholder: holds children, no messages */

/* modseq entry kinds */
#define STORE_MODSEQ_LIVE 0
#define STORE_MODSEQ_EXPUNGED 1
#define STORE_BLOBREF_LEN 24
#define STORE_ORPHAN_LEN 16
#define STORE_BLOB_ZSTD 1

static inline void
be_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
be_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
be_put64(uint8_t *p, uint64_t v)
{
	be_put32(p, (uint32_t)(v >> 32));
	be_put32(p + 4, (uint32_t)v);
}

static inline uint16_t
be_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
be_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
be_get64(const uint8_t *p)
{
	return ((uint64_t)be_get32(p) << 32) | be_get32(p + 4);
}

/* Keys: fixed-size ones are filled in caller-provided arrays. */
#define STORE_MBOX_KEY_LEN 12
#define STORE_MSG_KEY_LEN 16
#define STORE_MODSEQ_KEY_LEN 20
#define STORE_BLOB_KEY_LEN 36

static inline void
store_key_mbox(uint8_t k[STORE_MBOX_KEY_LEN], uint64_t user, uint32_t mbox)
{
	be_put64(k, user);
	be_put32(k + 8, mbox);
}

static inline void
store_key_msg(uint8_t k[STORE_MSG_KEY_LEN], uint64_t user, uint32_t mbox, uint32_t uid)
{
	be_put64(k, user);
	be_put32(k + 8, mbox);
	be_put32(k + 12, uid);
}

static inline void
store_key_modseq(uint8_t k[STORE_MODSEQ_KEY_LEN], uint64_t user, uint32_t mbox, uint64_t modseq)
{
	be_put64(k, user);
	be_put32(k + 8, mbox);
	be_put64(k + 12, modseq);
}

static inline void
store_key_blob(uint8_t k[STORE_BLOB_KEY_LEN], const uint8_t hash[STORE_HASH_LEN], uint32_t chunk)
{
	for (int i = 0; i < STORE_HASH_LEN; i++)
		k[i] = hash[i];
	be_put32(k + STORE_HASH_LEN, chunk);
}

struct user_rec {
	uint64_t user_id;
	uint32_t next_mbox; /* 0 in a v1 record: the caller derives it */
};

/* Keywords inside a record are a packed run of (u8 len, bytes); they are
 * walked with store_kw_next(), never copied into arrays by the decoder. */
struct kw_run {
	const uint8_t *p; /* borrowed, as the record */
	size_t len;	  /* bytes of the run */
	uint32_t n;	  /* how many keywords */
};

struct mbox_rec {
	uint8_t special_use;
	uint16_t flags; /* MBOX_F_* */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t messages;
	uint64_t highestmodseq;
	uint64_t bytes;
	uint32_t unseen;
	uint32_t deleted;
	uint64_t vanished_floor;
	const char *name; /* borrowed: from the txn (decode) or the caller (encode) */
	size_t name_len;
	struct kw_run kw;
	/* v1 records decode with unseen = messages, deleted = 0 (the
	 * migration recounts them), vanished_floor = highestmodseq. */
};

struct msg_rec {
	uint32_t flags;
	uint64_t modseq;
	int64_t internal_date;
	int64_t save_date;
	uint64_t size;
	uint64_t email_id;
	uint8_t hash[STORE_HASH_LEN];
	const char *trace; /* borrowed, as above */
	uint32_t trace_len;
	struct kw_run kw;
};

struct blobref_rec {
	uint32_t refcount;
	uint64_t length;
	uint32_t chunk_size;
	uint32_t nchunks;
};

/* The next keyword of a run: 1 with *kw_r and *len_r set and *pos advanced,
 * 0 at the end, -1 if the run is malformed. *pos starts at 0. */
int store_kw_next(const struct kw_run *run, size_t *pos, const char **kw_r, size_t *len_r);

/* Encoders write exactly *_size() bytes to p. Decoders return 0, or -1 if
 * the bytes are not a record they know (corruption). */
void store_user_encode(uint8_t p[STORE_USER_LEN], const struct user_rec *r);
int store_user_decode(const void *p, size_t len, struct user_rec *r);

size_t store_mbox_size(const struct mbox_rec *r);
void store_mbox_encode(uint8_t *p, const struct mbox_rec *r);
int store_mbox_decode(const void *p, size_t len, struct mbox_rec *r);

size_t store_msg_size(const struct msg_rec *r);
void store_msg_encode(uint8_t *p, const struct msg_rec *r);
int store_msg_decode(const void *p, size_t len, struct msg_rec *r);

void store_blobref_encode(uint8_t p[STORE_BLOBREF_LEN], const struct blobref_rec *r);
int store_blobref_decode(const void *p, size_t len, struct blobref_rec *r);

void store_orphan_encode(uint8_t p[STORE_ORPHAN_LEN], int64_t marked_at);
int store_orphan_decode(const void *p, size_t len, int64_t *marked_at_r);

#endif
