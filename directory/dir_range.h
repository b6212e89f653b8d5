/*
 * dir_range.h - internal to directory/: Active Directory's ranged
 * retrieval of multi-valued attributes (MS-ADTS 3.1.1.3.1.3.3).
 *
 * AD returns at most MaxValRange (1500 by default) values of one
 * attribute per entry: a big group comes back with "member;range=0-1499"
 * (and no plain "member"), and the client must ask again, for
 * "member;range=1500-*", and so on until the option it gets ends in
 * "-*". Without this a big group is silently cut at 1500 members.
 *
 * Everything here is pure (no I/O, no globals): the callers (dir_ldap.c
 * for the directory thread, dir_admin_conn.c for the synchronous admin
 * side and check-directory) send the follow-up base searches these
 * functions ask for. How it fails: an answer that does not follow the
 * protocol (bad or out-of-order range, an empty non-final range, the
 * attribute gone, too many rounds) is DIR_RANGE_BAD: the caller fails
 * the search (temporarily) rather than use a partial member list; more
 * than DIR_RANGE_MAX_VALUES values is DIR_RANGE_CAP: the caller logs an
 * error and keeps the values read so far.
 */
#ifndef TERN_DIR_RANGE_H
#define TERN_DIR_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "directory/dir_ldap.h"

/* Values of one attribute we read in all (100 rounds of AD's default
 * 1500, far above any sensible max_list_members). */
#define DIR_RANGE_MAX_VALUES 150000
/* Follow-up requests for one attribute: a server that answers with tiny
 * ranges (or keeps moving) cannot keep us asking forever. */
#define DIR_RANGE_MAX_ROUNDS 1000

/* Where the range option sits in an attribute description. */
struct dir_range_desc {
	size_t opt_start, opt_end; /* ";range=lo-hi" is desc[opt_start, opt_end) */
	uint32_t lo, hi;	   /* hi is meaningless when last */
	bool last;		   /* "lo-*": the final part */
};

/* Parses "member;range=1500-2999" (option name without case, other
 * options such as ";binary" kept). 1 with *d filled, 0 if the
 * description has no range option, -1 if it has a malformed one (not
 * decimal, above 2^32-1, hi < lo, empty, or two range options). */
int dir_range_parse(const char *desc, struct dir_range_desc *d);

/* The description without its range option, in a. */
const char *dir_range_base(struct arena *a, const char *desc, const struct dir_range_desc *d);

/* State of one attribute being read in ranges. */
struct dir_range {
	uint32_t next;	 /* first value index to ask for */
	unsigned rounds; /* answers seen */
	size_t total;	 /* values so far */
};

enum dir_range_step {
	DIR_RANGE_DONE = 0, /* every value read */
	DIR_RANGE_MORE,	    /* ask for base;range=next-* */
	DIR_RANGE_BAD,	    /* the server broke the protocol: fail */
	DIR_RANGE_CAP,	    /* too many values: keep what we have, log */
};

/* One answer for the attribute: its description as returned (NULL if the
 * entry came back without it) and its number of values. *why_r says
 * what was wrong (static text) for BAD and CAP. */
enum dir_range_step dir_range_step(struct dir_range *st, const char *desc, size_t nvals,
				   const char **why_r);

/* Completing every ranged attribute of a set of entries, one follow-up
 * request at a time. Start with a zeroed walk. */
struct dir_range_walk {
	size_t entry, attr;  /* the attribute being completed */
	struct dir_range st; /* its state */
	const char *base;    /* its description without the range option */
	const char *request; /* MORE: the attribute to ask for, "member;range=1500-*" */
	const char *why;     /* BAD, CAP */
	bool started;	     /* attr has been taken */
};

/* Finds the next ranged attribute from the walk's position on, renames
 * it to its base (so that "member" finds it) and takes its first part.
 * MORE: send a base search on entries[w->entry].dn for w->request; DONE:
 * nothing (left) to fetch; BAD/CAP: about that attribute (w->why); call
 * again to go on with the next one. */
enum dir_range_step dir_range_walk_next(struct arena *a, struct dir_ldap_entry *entries, size_t n,
					struct dir_range_walk *w);

/* The answer to w->request: the entry returned (NULL if none). Its
 * values are appended to the attribute. MORE: send w->request again (it
 * moved on); DONE, BAD, CAP: call dir_range_walk_next to go on. */
enum dir_range_step dir_range_walk_answer(struct arena *a, struct dir_ldap_entry *entries,
					  struct dir_range_walk *w,
					  const struct dir_ldap_entry *reply);

#endif
