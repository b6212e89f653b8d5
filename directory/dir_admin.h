/*
 * dir_admin.h - provisioning through the directory, for tern-admind:
 * users, aliases, lists and their members, quotas, disabling, passwords,
 * and the admins' own login. SYNCHRONOUS: every call blocks on libldap's
 * synchronous API over the handle's own connection, bound as [admin]
 * writer_bind_dn, apart from ternd's asynchronous pools (dir.h). Meant for
 * a worker thread of the admin daemon, never for an event loop.
 *
 * Threads: a handle may be used from any thread; its calls are serialised
 * by a mutex inside it (one LDAP request at a time on its connection).
 * Memory: everything a call returns (records, strings, the error message)
 * lives in the caller's arena `a` and stays valid until that arena is
 * cleared. Inputs are copied before use.
 *
 * Attributes, filters and object classes come from [directory] (the
 * profile) and [admin]; every value put into a filter goes through
 * dir_escape_filter_value (RFC 4515), every value put into a DN through
 * dir_admin_escape_dn_value (RFC 4514).
 *
 * How it fails: each call returns DIR_ADMIN_OK (0) or a negative
 * enum dir_admin_status, and fills *err with the same status, the input
 * field at fault (or NULL) and a message naming the field and the value,
 * meant to be shown to the admin as it is. A connection that went away is
 * re-opened by the next call (a read is retried once at once).
 *
 * Caching: ternd caches directory answers for [directory] cache_ttl /
 * negative_ttl, so a change made here reaches ternd within those TTLs.
 * tern-admind tells a running ternd to drop its cache after every
 * successful write (control socket "directory.flush", admin/admin_dir.c).
 */
#ifndef TERN_DIR_ADMIN_H
#define TERN_DIR_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"

enum dir_admin_status {
	DIR_ADMIN_OK = 0,
	DIR_ADMIN_INVALID = -1,	    /* bad input; err->field names it (HTTP 400) */
	DIR_ADMIN_EXISTS = -2,	    /* login, address or entry already taken (409) */
	DIR_ADMIN_NOTFOUND = -3,    /* no such user, list, member or alias (404) */
	DIR_ADMIN_DENIED = -4,	    /* the directory refused: insufficient access (403) */
	DIR_ADMIN_AUTHFAIL = -5,    /* authenticate: bad login/password, disabled (401) */
	DIR_ADMIN_UNAVAILABLE = -6, /* directory down or timed out; retry later (503) */
	DIR_ADMIN_UNSUPPORTED = -7, /* the config cannot express it, e.g. disabled_filter "" */
	DIR_ADMIN_ERROR = -8,	    /* anything else the directory said (schema...) (500) */
};
/* A short constant text for a status ("not found"). */
const char *dir_admin_strerror(int status);

struct dir_admin_error {
	int status;	     /* enum dir_admin_status, the call's return value */
	const char *field;   /* input field at fault: "login", "address", "aliases",
				"quota", "display_name", "password", "name", "member",
				"list", "user"; NULL when no field is */
	const char *message; /* e.g. "address: \"bob@example.org\" is already used by
				uid=bob,ou=people,dc=example,dc=org" */
};

struct dir_admin_user {
	const char *id; /* stable id ([directory] id_attr): the mailbox key */
	const char *dn;
	const char *login;	    /* login_attr */
	const char *mail;	    /* primary address, lower-case ("" if none) */
	const char *display_name;   /* displayName, else cn ("" if none) */
	const char *const *aliases; /* alias_attr values, lower-case, without mail */
	size_t naliases;
	uint64_t quota; /* bytes; 0 = no quota */
	bool disabled;	/* the entry matches [directory] disabled_filter */
};

/* What user_create takes. login and mail are required. */
struct dir_admin_user_spec {
	const char *login;	    /* [a-z0-9][a-z0-9._-]*, up to 64; lower-cased */
	const char *mail;	    /* primary address in a local domain; lower-cased */
	const char *display_name;   /* cn and displayName; NULL: the login */
	const char *surname;	    /* sn; NULL: last word of display_name */
	const char *const *aliases; /* further local addresses */
	size_t naliases;
	const char *quota;    /* "10G", "512M", bytes; NULL, "", "0", "none": no quota */
	const char *password; /* set with RFC 3062 after the add; NULL: none */
};

/* What user_update changes; NULL / 0 leaves a field alone. */
struct dir_admin_user_changes {
	const char *display_name; /* replaces cn and displayName */
	const char *surname;	  /* replaces sn */
	const char *quota;	  /* "" , "0" or "none" removes the quota */
	const char *const *add_aliases;
	size_t nadd_aliases;
	const char *const *remove_aliases;
	size_t nremove_aliases;
};

struct dir_admin_list {
	const char *id;
	const char *dn;
	const char *name;    /* cn */
	const char *address; /* lower-case ("" if none) */
	size_t nmembers;     /* member DNs, the placeholder not counted */
};

struct dir_admin_member {
	const char *dn;
	const char *login; /* "" for a list or a missing entry */
	const char *mail;  /* primary address, or a list's address; "" if none */
	bool is_list;
	bool missing; /* the DN names no entry (deleted behind our back) */
	bool disabled;
};

struct dir_admin;

/* Connects to [directory] uri and binds as [admin] writer_bind_dn. cfg
 * must outlive the handle. -1 with a malloc'd *error_r ("writer bind as
 * cn=...: Invalid credentials") when the config lacks what is needed or
 * the bind fails; a directory that is down is an error too. */
int dir_admin_open(const struct config *cfg, struct dir_admin **h_r, char **error_r);
/* The same handle bound as [directory] bind_dn, ternd's service account,
 * for read-only tools (ternd check-directory): only the read calls
 * (user_list, user_get, list_all, list_get, list_members) make sense on
 * it; [admin] is not needed. Errors as dir_admin_open. */
int dir_admin_open_reader(const struct config *cfg, struct dir_admin **h_r, char **error_r);
/* Unbinds and frees; *h becomes NULL. */
void dir_admin_close(struct dir_admin **h);

/* An admin's login for the API: finds the enabled user by login (user_filter)
 * or by any of their addresses (recipient_filter), binds as that DN on a
 * connection of its own to check the password, then checks that the
 * entry named by [admin] admin_group lists the user's DN in one of the
 * member_attr attributes (nested groups are not followed). DIR_ADMIN_OK
 * for a good password even when *is_admin_r is false: the caller decides.
 * Wrong password, unknown or disabled user, empty password:
 * DIR_ADMIN_AUTHFAIL. */
int dir_admin_authenticate(struct dir_admin *h, struct arena *a, const char *login,
			   const char *password, struct dir_admin_user **user_r, bool *is_admin_r,
			   struct dir_admin_error *err);

/* Users: `key` is a login or any address of the user. */
int dir_admin_user_list(struct dir_admin *h, struct arena *a, struct dir_admin_user **users_r,
			size_t *n_r, struct dir_admin_error *err);
int dir_admin_user_get(struct dir_admin *h, struct arena *a, const char *key,
		       struct dir_admin_user **user_r, struct dir_admin_error *err);
/* Adds uid=<login>,<user_base> with [admin] user_object_classes; an
 * address (mail or alias) already used by any entry, or a taken login, is
 * DIR_ADMIN_EXISTS naming it. If setting the password fails the entry is
 * deleted again. user_r may be NULL. */
int dir_admin_user_create(struct dir_admin *h, struct arena *a,
			  const struct dir_admin_user_spec *spec, struct dir_admin_user **user_r,
			  struct dir_admin_error *err);
int dir_admin_user_update(struct dir_admin *h, struct arena *a, const char *key,
			  const struct dir_admin_user_changes *ch, struct dir_admin_user **user_r,
			  struct dir_admin_error *err);
/* RFC 3062 Password Modify as the writer. */
int dir_admin_user_set_password(struct dir_admin *h, struct arena *a, const char *key,
				const char *password, struct dir_admin_error *err);
/* Makes the entry match disabled_filter (disabled) or stop matching it:
 * a simple "(attr=value)" filter is written as that value (openldap:
 * shadowExpire=1, with shadowAccount added when missing) and removed
 * again; the ad profile sets/clears userAccountControl bit 0x2. Any other
 * filter: DIR_ADMIN_UNSUPPORTED. Idempotent. */
int dir_admin_user_set_disabled(struct dir_admin *h, struct arena *a, const char *key,
				bool disabled, struct dir_admin_error *err);
/* Deletes the entry and takes its DN out of every list's members. The
 * mailbox stays (orphaned; [storage] orphan_retention). */
int dir_admin_user_delete(struct dir_admin *h, struct arena *a, const char *key,
			  struct dir_admin_error *err);
/* Replaces the primary address; with keep_old the old one becomes an
 * alias. The new address may be one of the user's own aliases. */
int dir_admin_user_rename_address(struct dir_admin *h, struct arena *a, const char *key,
				  const char *new_address, bool keep_old,
				  struct dir_admin_user **user_r, struct dir_admin_error *err);
/* One alias address on a user. */
int dir_admin_alias_add(struct dir_admin *h, struct arena *a, const char *key, const char *alias,
			struct dir_admin_error *err);
int dir_admin_alias_remove(struct dir_admin *h, struct arena *a, const char *key, const char *alias,
			   struct dir_admin_error *err);

/* Lists: `key` is the list's name (cn) or its address. */
int dir_admin_list_all(struct dir_admin *h, struct arena *a, struct dir_admin_list **lists_r,
		       size_t *n_r, struct dir_admin_error *err);
int dir_admin_list_get(struct dir_admin *h, struct arena *a, const char *key,
		       struct dir_admin_list **list_r, struct dir_admin_error *err);
/* Adds cn=<name>,<group_base> with [admin] list_object_classes and the
 * address in alias_attr (mail_attr for the ad profile). members (logins
 * or addresses) may be empty: groupOfNames needs one member, so an empty
 * list holds its own DN, which ternd skips and these calls hide. */
int dir_admin_list_create(struct dir_admin *h, struct arena *a, const char *name,
			  const char *address, const char *const *members, size_t nmembers,
			  struct dir_admin_list **list_r, struct dir_admin_error *err);
/* Replaces the list's address (the old one stops working); list_r may
 * be NULL. The name (cn, the RDN) cannot be changed yet. */
int dir_admin_list_set_address(struct dir_admin *h, struct arena *a, const char *key,
			       const char *address, struct dir_admin_list **list_r,
			       struct dir_admin_error *err);
int dir_admin_list_delete(struct dir_admin *h, struct arena *a, const char *key,
			  struct dir_admin_error *err);
/* member: a user's login or address, another list's address, or (remove
 * only) a DN, for members whose entry is gone. */
int dir_admin_list_add_member(struct dir_admin *h, struct arena *a, const char *key,
			      const char *member, struct dir_admin_error *err);
int dir_admin_list_remove_member(struct dir_admin *h, struct arena *a, const char *key,
				 const char *member, struct dir_admin_error *err);
int dir_admin_list_members(struct dir_admin *h, struct arena *a, const char *key,
			   struct dir_admin_member **members_r, size_t *n_r,
			   struct dir_admin_error *err);

/* ---- validation (pure, any thread; dir_admin_check.c) ----
 * Each returns 0 with the normalised value in a, or DIR_ADMIN_INVALID
 * with *err naming `field` and the value. */

/* A local address: dot-atom local part (RFC 5321/5322 atext, no leading,
 * trailing or double dot, at most 64 octets), '@', one of [server]
 * domains; ASCII only (mail is IA5 in LDAP), at most 254 octets;
 * lower-cased. Quoted local parts are refused. */
int dir_admin_check_address(const struct config *cfg, struct arena *a, const char *field,
			    const char *in, const char **addr_r, struct dir_admin_error *err);
/* A login or list name: [a-z0-9] then [a-z0-9._-], 1..64; lower-cased. */
int dir_admin_check_login(struct arena *a, const char *field, const char *in, const char **login_r,
			  struct dir_admin_error *err);
/* A display name or surname: valid UTF-8, 1..256 octets, no control
 * characters, no leading or trailing blank. */
int dir_admin_check_name(struct arena *a, const char *field, const char *in,
			 struct dir_admin_error *err);
/* A password: 1..1024 octets without control characters (a C string
 * holds no NUL); the directory's password policy decides the rest. */
int dir_admin_check_password(struct arena *a, const char *field, const char *in,
			     struct dir_admin_error *err);
/* A quota: bytes or N with k, M, G, T (powers of 1024); NULL, "", "0" or
 * "none" is 0 (no quota). It must be a whole number of unit bytes
 * ([directory] quota_unit), since that is what the attribute holds. */
int dir_admin_parse_quota(struct arena *a, const char *field, const char *in, uint64_t unit,
			  uint64_t *bytes_r, struct dir_admin_error *err);
/* RFC 4514 escaping of one attribute value for a DN: '"', '+', ',', ';',
 * '<', '>', '\\' and '=' get a backslash, a leading '#' or blank and a
 * trailing blank too; control bytes become \XX. Appends to out; 0, or -1
 * (cap reached, NUL byte, empty value) leaving out as it was. */
int dir_admin_escape_dn_value(const char *value, size_t len, struct buf *out);

#endif
