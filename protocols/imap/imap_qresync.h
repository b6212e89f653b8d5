/*
 * imap_qresync.h - the pure parts of CONDSTORE and QRESYNC (RFC 7162):
 * mod-sequence numbers, the QRESYNC select parameter, and which UIDs a
 * VANISHED (EARLIER) response names. No session, no store: the callers
 * (imap_mailbox.c, imap_fetch.c) bring the view and the store's change
 * lists. Any thread.
 *
 * How it fails: malformed input is refused with -1 and a short message
 * for the BAD; nothing is half-parsed into the output.
 */
#ifndef TERN_IMAP_QRESYNC_H
#define TERN_IMAP_QRESYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/imap/imap_internal.h"

/* seq-match-data pairs beyond this are refused (BAD): each pair is
 * expanded, and clients send a sparse sample, not every message. */
#define IMAP_QRESYNC_MATCH_MAX 65536u

/* A mod-sequence number: 1*DIGIT up to 2^63 - 1 (RFC 7162 7); 0 only
 * when zero_ok (mod-sequence-valzer). 0 or -1. */
int imap_modseq_parse(const char *s, size_t len, bool zero_ok, uint64_t *v_r);

/* SELECT/EXAMINE's "QRESYNC (uidvalidity modseq [known-uids]
 * [(known-sequence-set known-uid-set)])". */
struct imap_qresync {
	uint32_t uidvalidity;
	uint64_t modseq;
	bool have_known;	  /* known-uids given */
	struct imap_range *known; /* sorted, merged UID ranges, no "*" */
	size_t nknown;
	uint32_t *match_seq; /* seq-match-data, pairwise, as sent */
	uint32_t *match_uid;
	size_t nmatch;
};

/* Parses the list that follows the QRESYNC atom, into a. 0, or -1 with
 * *err_r set (for the BAD). */
int imap_qresync_parse(struct arena *a, const struct imap_arg *list, struct imap_qresync *q_r,
		       const char **err_r);

/* Which UIDs to report as VANISHED (EARLIER), as sorted disjoint ranges
 * in a:
 *  - known: the UIDs the client asks about (NULL: every UID), clipped
 *    below uidnext since no higher UID ever existed;
 *  - present: the UIDs of the mailbox now (ascending);
 *  - expunged: the UIDs the store remembers as expunged after the
 *    client's modseq (ascending), complete when it remembers every one
 *    (one still present, expunged after the view was listed, is left
 *    to the next VANISHED);
 *  - when it does not (complete false), every known UID that is not
 *    present is reported, except those seq-match-data proves the client
 *    already knows are gone: below the UID of the last of the leading
 *    pairs whose message number still holds that UID (RFC 7162 3.2.5.2).
 * 0, or -1 if a allocation fails. */
int imap_qresync_vanished(struct arena *a, const struct imap_range *known, size_t nknown,
			  uint32_t uidnext, const uint32_t *present, size_t npresent,
			  const uint32_t *expunged, size_t nexpunged, bool complete,
			  const uint32_t *match_seq, const uint32_t *match_uid, size_t nmatch,
			  struct imap_range **out_r, size_t *nout_r);

/* Is uid in the sorted, disjoint ranges? (NULL ranges: every UID.) */
bool imap_ranges_has(const struct imap_range *r, size_t n, uint32_t uid);
/* Appends ranges as a sequence set ("3,5:9"). 0 or -1 (out's cap). */
int imap_ranges_append(struct buf *out, const struct imap_range *r, size_t n);

#endif
