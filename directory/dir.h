/*
 * dir.h - the directory: every question Tern asks LDAP goes through here.
 *
 * One or two directory threads own every LDAP* handle and drive libldap's
 * asynchronous API (DESIGN.md, Concurrency). Two pools: lookup connections
 * bound as the service account and pipelined; auth connections that carry
 * one user bind at a time. Callers on a worker thread start a request and
 * get the answer through worker_post() on their own worker: nothing here
 * blocks a worker. Answers are cached (positive and negative TTL).
 *
 * Result structs passed to callbacks are valid only during the callback;
 * copy what you keep (into the session's arena).
 */
#ifndef TERN_DIR_H
#define TERN_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/config.h"

struct worker;

enum dir_status {
	DIR_OK = 0,
	DIR_NOTFOUND = -1, /* permanent: no such user/address (or disabled) */
	DIR_TEMPFAIL = -2, /* directory down, timeout: try again later */
	DIR_AUTHFAIL = -3, /* wrong password, unknown login, disabled account */
	DIR_PERMFAIL = -4, /* anything else permanent */
	/* Two enabled entries (users, or a user and a list) claim the
	 * address: the directory must be fixed; never cached, so the fix
	 * applies at once. res->error names the DNs. */
	DIR_CONFLICT = -5,
};
const char *dir_strerror(int status);

/* A mailbox owner as the directory describes it. */
struct dir_user {
	const char *id; /* stable id (entryUUID): the storage key */
	const char *dn;
	const char *login;	 /* login_attr value */
	const char *mail;	 /* primary address, lower-case ("" if none) */
	uint64_t quota;		 /* bytes, 0 = no quota */
	bool no_junk;		 /* [directory] junk_attr says FALSE/no/off/0: spam
				    verdicts deliver to INBOX, not Junk */
	uint64_t quota_messages; /* messages, 0 = no limit */
};

struct dir_rcpt_result {
	enum dir_status status;
	/* On DIR_OK: local mailboxes to deliver to (a user, or every enabled
	 * member of a list), without duplicates; and non-local addresses the
	 * mail must be forwarded to (mailRoutingAddress). */
	const struct dir_user *users;
	size_t nusers;
	const char *const *forwards;
	size_t nforwards;
	const char *error; /* why, for logs (may be NULL) */
	bool is_list;	   /* the address itself is a list (list_post) */
};

/* A user's addresses, for the sender checks of submission. */
struct dir_addr_result {
	enum dir_status status;
	/* On DIR_OK, lower-case: mail_attr and alias_attr of the user's
	 * entry; and those of every entry whose sendas_attr ([directory],
	 * default owner) names the user's DN (lists they own). */
	const char *const *addresses;
	size_t naddresses;
	const char *const *sendas;
	size_t nsendas;
	const char *error; /* for logs */
};

struct dir_auth_result {
	enum dir_status status;
	const struct dir_user *user; /* on DIR_OK */
	const char *error;	     /* for logs only, never for the client */
};

typedef void dir_rcpt_cb(void *arg, const struct dir_rcpt_result *res);
typedef void dir_auth_cb(void *arg, const struct dir_auth_result *res);
typedef void dir_addr_cb(void *arg, const struct dir_addr_result *res);

/* Starts the directory threads with cfg's [directory] (cfg must outlive
 * dir_stop). Connecting happens in the background: a directory that is
 * down at start-up is not an error. 0 or -1 with a malloc'd *error_r. */
int dir_start(const struct config *cfg, char **error_r);
void dir_stop(void);

/* Resolves a lower-case address to its mailboxes. cb runs later on w. */
void dir_resolve_rcpt(struct worker *w, const char *address, dir_rcpt_cb *cb, void *arg);

/* Checks a login and password by finding the user's entry (exactly one,
 * not disabled) and binding as it on an auth connection. An empty
 * password fails without asking the directory. cb runs later on w. The
 * password is copied and wiped after use. */
void dir_authenticate(struct worker *w, const char *login, const char *password, size_t pwlen,
		      dir_auth_cb *cb, void *arg);

/* The addresses of the user whose entry is user_dn (the dn of a
 * dir_user from dir_authenticate). Not cached. DIR_NOTFOUND if the
 * entry is gone or disabled. cb runs later on w. */
void dir_user_addresses(struct worker *w, const char *user_dn, dir_addr_cb *cb, void *arg);

/* A user found without a password, for mechanisms that prove who the
 * client is another way (SCRAM, GSSAPI, EXTERNAL). */
struct dir_find_result {
	enum dir_status status;	     /* DIR_OK, DIR_NOTFOUND (none, several, or disabled),
					DIR_TEMPFAIL, DIR_PERMFAIL */
	const struct dir_user *user; /* on DIR_OK */
	/* On DIR_OK with want_scram: the user's SCRAM-SHA-256 verifier in
	 * RFC 5803 form "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>",
	 * or NULL when the entry has none (or none readable). Wiped after
	 * the callback: copy it if it must live longer. */
	const char *scram;
	const char *error; /* for logs only */
};
typedef void dir_find_cb(void *arg, const struct dir_find_result *res);

/* Finds the one enabled user whose entry matches: attr == NULL means the
 * login (the profile's login filter, exactly as dir_authenticate finds the
 * entry, AD sAMAccountName/UPN included); otherwise the user filter AND
 * (attr=value) (value escaped, RFC 4515), e.g. attr "mail" for a TLS client
 * certificate's e-mail address. Zero or several entries: DIR_NOTFOUND (log
 * why). With want_scram the verifier attribute ([directory] scram_attribute)
 * is fetched too, and the answer is not taken from the cache (secrets are
 * not kept in the cache); without, the cache may be used. An attr that
 * is not an attribute name is DIR_PERMFAIL. cb runs later on w. */
void dir_find_user(struct worker *w, const char *attr, const char *value, bool want_scram,
		   dir_find_cb *cb, void *arg);

/* The groups a user is a member of, for IMAP ACL "$group" identifiers. */
struct dir_groups_result {
	enum dir_status status;	  /* DIR_OK (maybe no groups), DIR_TEMPFAIL, DIR_PERMFAIL */
	const char *const *names; /* group_name_attr values, as the directory spells them */
	size_t nnames;
	const char *error; /* for logs */
};
typedef void dir_groups_cb(void *arg, const struct dir_groups_result *res);

/* Searches [directory] group_filter with %d = user_dn and %u = login
 * (each escaped; posixGroup's memberUid holds logins) and returns the
 * groups' group_name_attr values. Cached for cache_ttl like
 * the other answers, so a member removed from a group in LDAP loses it
 * within that time. An empty group_filter answers DIR_OK with no
 * groups. cb runs later on w. */
void dir_user_groups(struct worker *w, const char *user_dn, const char *login, dir_groups_cb *cb,
		     void *arg);

/* Forget every cached answer (tests, admin changes). Any thread. */
void dir_cache_flush(void);

/* RFC 4515 escaping of one value for a filter; appends to out. 0 or -1
 * (cap reached, or a NUL byte in the value). Pure. */
int dir_escape_filter_value(const char *value, size_t len, struct buf *out);
/* Expands a filter template: each "%<key>" becomes the escaped value,
 * "%%" a percent sign; any other "%x" is an error. 0 or -1. Pure. */
int dir_filter_expand(const char *tmpl, char key, const char *value, struct buf *out);
/* The same with two keys (e.g. group_filter's %d and %u). */
int dir_filter_expand2(const char *tmpl, char key1, const char *value1, char key2,
		       const char *value2, struct buf *out);
/* Expands a template with every "%<key>" as a bare '*', so that each
 * assertion on the key becomes a presence (or substring) test: the filter
 * then matches every entry the template could match for some value (the
 * admin's "list all users"). 0 or -1 like dir_filter_expand. Pure. */
int dir_filter_expand_any(const char *tmpl, char key, struct buf *out);
/* Splits a comma-separated list ("a, b,c"), trimming blanks and
 * dropping empty items; a NULL-terminated array of malloc'd strings. */
char **dir_split_list(const char *s);

#endif
