/*
 * dir_ldap.h - internal to directory/: the directory thread, its two
 * connection pools and single LDAP operations with deadlines.
 *
 * Everything here except dir_ldap_start/stop/wake and the pure helpers at
 * the end runs on the directory thread. An operation (a search or a bind) is owned by its
 * submitter; it is handed back exactly once through op->done, on the directory thread, with op->rc
 * set: an LDAP result code, or a negative libldap code (LDAP_SERVER_DOWN, LDAP_TIMEOUT) when the
 * server went away or the deadline passed. Entries are copied into op->arena.
 */
#ifndef TERN_DIR_LDAP_H
#define TERN_DIR_LDAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldap.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"

struct dir_ldap_attr {
	const char *name;
	char **vals; /* NUL-terminated copies (values may be binary) */
	size_t *lens;
	size_t nvals;
};

struct dir_ldap_entry {
	const char *dn;
	struct dir_ldap_attr *attrs;
	size_t nattrs;
};

enum dir_op_kind { DIR_OP_SEARCH, DIR_OP_BIND };

struct dir_range_walk;

struct dir_op;
typedef void dir_op_done_fn(struct dir_op *op);

struct dir_op {
	/* Filled by the submitter; strings must outlive the operation. */
	enum dir_op_kind kind;
	const char *dn;	     /* search base, or bind DN */
	int scope;	     /* LDAP_SCOPE_* (search) */
	const char *filter;  /* search */
	char **attrs;	     /* search, NULL-terminated */
	int sizelimit;	     /* search; entries kept: at most this many */
	bool paged;	     /* search: RFC 2696 pages of [directory] page_size, so
				a server's size limit does not cut the answer short */
	struct buf cred;     /* bind password; wiped as soon as it is sent */
	int retries;	     /* searches: times it may move to another handle */
	uint64_t deadline;   /* dir_ldap_now() milliseconds */
	struct arena *arena; /* where entries are copied */
	dir_op_done_fn *done;
	void *owner;

	/* Results. */
	int rc;
	const char *diag; /* server's diagnostic message, or NULL */
	struct dir_ldap_entry *entries;
	size_t nentries; /* kept (<= sizelimit) */
	size_t nseen;	 /* entries the server sent */

	/* Pool bookkeeping, private to dir_ldap.c. */
	struct dir_op *prev, *next;
	void *conn;
	int msgid;
	uint64_t started;
	struct berval cookie; /* paged: where the next page starts (arena) */
	/* AD ranged attributes (dir_range.h): while the entries' ranged
	 * values are fetched, the walk (arena), the search's own result,
	 * and the answer to the follow-up in flight. */
	struct dir_range_walk *range;
	int range_rc;
	int range_step;
	bool range_answered;
};

/* Called on the directory thread each time dir_ldap_wake() was called. */
typedef void dir_ldap_intake_fn(void);

int dir_ldap_start(const struct config *cfg, dir_ldap_intake_fn *intake, char **error_r);
/* Completes every outstanding op with LDAP_SERVER_DOWN, closes the
 * handles and joins the thread. */
void dir_ldap_stop(void);
/* Any thread: run the intake function soon. */
void dir_ldap_wake(void);

/* Directory thread only. */
uint64_t dir_ldap_now(void);
void dir_ldap_submit(struct dir_op *op);

/* Pure helpers shared with dir_admin*.c (the synchronous admin side);
 * any thread. */
/* True if the rc means "try again later" rather than a real answer. */
bool dir_ldap_rc_is_temporary(int rc);
/* Copies a search entry (DN, every attribute and value) into arena.
 * Ranged attributes ("member;range=0-1499") are copied as they are:
 * dir_range.h completes them. */
void dir_ldap_copy_entry(LDAP *ld, LDAPMessage *msg, struct arena *arena, struct dir_ldap_entry *e);
/* The stable id as text: printable values as they are, a binary 16-byte
 * value (AD objectGUID) in GUID form, anything else in hex. */
const char *dir_ldap_format_id(struct arena *a, const char *v, size_t len);
/* A quota attribute value (decimal units) times unit, saturating; "" is
 * 0 (no quota). -1 (and 0) for anything that is not decimal digits. */
int dir_ldap_parse_quota(const char *v, uint64_t unit, uint64_t *bytes_r);

#endif
