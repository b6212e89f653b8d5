/*
 * dir_shape.h - internal to directory/: pure helpers for the shapes real
 * directories give mail data beyond plain inetOrgPerson: Active
 * Directory's typed proxyAddresses, bit-flag attributes
 * (userAccountControl), binary objectGUID ids, the in-chain matching
 * rule; member URLs of dynamic lists; and the bounded walk over nested
 * lists (cycle, depth and size caps).
 *
 * Everything here is pure (no I/O, no globals) and callable from any
 * thread; strings returned live in the caller's arena or point into the
 * caller's input.
 */
#ifndef TERN_DIR_SHAPE_H
#define TERN_DIR_SHAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"

/* AD's matching rules (MS-ADTS 3.1.1.3.4.4). Other servers do not know
 * them: slapd evaluates an unknown rule as Undefined, which matches
 * nothing, negated or not. */
#define DIR_SHAPE_RULE_BIT_AND "1.2.840.113556.1.4.803"
#define DIR_SHAPE_RULE_IN_CHAIN "1.2.840.113556.1.4.1941"
/* rootDSE supportedCapabilities of AD DS and of AD LDS: both have the
 * rules above (since Windows Server 2003 SP2). */
#define DIR_SHAPE_CAP_AD "1.2.840.113556.1.4.800"
#define DIR_SHAPE_CAP_ADLDS "1.2.840.113556.1.4.1851"

/* One proxyAddresses value ("TYPE:address"). 1 for an SMTP address, with
 * the address (not copied, not NUL-terminated) in *addr_r and *len_r, and
 * *primary_r true when the type is written "SMTP" (upper case: Exchange's
 * primary, reply address); 0 for any other type (X500:, X400:, SIP:...)
 * or a value without a usable address. The type compares without case;
 * only upper-case "SMTP" makes a primary. */
int dir_shape_proxy_address(const char *v, size_t len, const char **addr_r, size_t *len_r,
			    bool *primary_r);

/* A bit-flag attribute value (decimal, possibly negative: AD keeps
 * userAccountControl as a signed 32-bit integer). 1 if any bit of mask is
 * set, 0 if none, -1 if the value is not an integer (callers treat that
 * as disabled: fail closed). */
int dir_shape_flags_set(const char *v, unsigned mask);

/* The stable id as text: for attribute objectGUID a 16-byte value is
 * always written in the canonical GUID form (the first three fields
 * little-endian, lower-case hex: what AD tools show), even when its bytes
 * happen to be printable; anything else as dir_ldap_format_id. */
const char *dir_shape_format_id(struct arena *a, const char *attr, const char *v, size_t len);

/* "(&(<member_of>:1.2.840.113556.1.4.1941:=<group dn>)(!(|(objectClass=
 * <c>)...)))": every non-list entry transitively in group_dn (AD only).
 * list_classes is NULL-terminated (may be empty). Appends to out; 0 or
 * -1 (cap, or a NUL in the DN). */
int dir_shape_inchain_filter(struct buf *out, const char *member_of, const char *group_dn,
			     char *const *list_classes);

/* A dynamic list's member URL (RFC 4516, "ldap:///base??scope?filter").
 * Only URLs without a host are accepted (Tern asks its own directory,
 * never a server named in the data); an empty base becomes default_base,
 * a missing scope "sub" is not assumed: RFC 4516 says "base". 0 with the
 * parts copied into a, or -1 with a reason in *why_r. */
int dir_shape_member_url(struct arena *a, const char *url, const char *default_base,
			 const char **base_r, int *scope_r, const char **filter_r,
			 const char **why_r);

/* The walk over nested lists: each list DN is entered at most once
 * (cycles end there), at most max_depth levels of lists (the top list is
 * depth 0, so depth max_depth is too deep), and at most max_lists lists
 * in all (0: no cap). seen holds borrowed DNs (they must outlive the walk). */
struct dir_walk {
	const char **seen; /* malloc'd */
	size_t nseen, cap;
	unsigned max_depth;
	size_t max_lists;
};

enum dir_walk_step {
	DIR_WALK_ENTER = 0, /* expand it (now remembered) */
	DIR_WALK_CYCLE,	    /* already expanded in this walk */
	DIR_WALK_TOO_DEEP,  /* depth >= max_depth */
	DIR_WALK_FULL,	    /* max_lists reached */
};

void dir_walk_init(struct dir_walk *w, unsigned max_depth, size_t max_lists);
/* May dn, reached at depth (the top list is depth 0), be expanded? */
enum dir_walk_step dir_walk_enter(struct dir_walk *w, const char *dn, unsigned depth);
void dir_walk_free(struct dir_walk *w);

#endif
