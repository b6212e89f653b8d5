/*
 * dir_admin_int.h - internal to directory/dir_admin*.c: the handle, the
 * synchronous LDAP operations on its writer connection, and helpers to
 * build filters, modifications and error messages in the caller's arena.
 *
 * Every helper that can fail returns an enum dir_admin_status and fills
 * the caller's struct dir_admin_error (dir_admin_fail), so a call can
 * simply return what a helper returned. The handle's mutex is taken by
 * the public functions, never by these.
 */
#ifndef TERN_DIR_ADMIN_INT_H
#define TERN_DIR_ADMIN_INT_H

#include <pthread.h>
#include <stdbool.h>

#include <ldap.h>

#include "core/arena.h"
#include "core/compat.h"
#include "directory/dir_admin.h"
#include "directory/dir_ldap.h"

#define DIR_ADMIN_FILTER_MAX 8192

struct dir_admin {
	const struct config *cfg; /* borrowed: outlives the handle */
	const struct directory_config *dc;
	pthread_mutex_t lock;	 /* one public call at a time */
	LDAP *ld;		 /* the writer connection; NULL until (re)connected */
	size_t uri_index;	 /* which [directory] uri it is on (0 = preferred) */
	uint64_t connected_at;	 /* monotonic seconds */
	char *uri;		 /* [directory] uri, space-separated for libldap */
	char **user_attrs;	 /* attributes read for a user (NULL-terminated) */
	char **list_attrs;	 /* attributes read for a list */
	char **member_attrs;	 /* [directory] member_attr */
	char **list_classes;	 /* [directory] list_classes: what makes an entry a list */
	char **user_classes;	 /* [admin] user_object_classes */
	char **new_list_classes; /* [admin] list_object_classes */
	/* A simple disabled_filter "(attr=value)" split up (unescaped):
	 * disabling writes it, enabling removes it. NULL otherwise. */
	char *disable_attr, *disable_value;
	bool ad; /* profile ad: userAccountControl bit 0x2 */
	/* Who the connection binds as: [admin] writer_bind_dn, or [directory]
	 * bind_dn for a reader (dir_admin_open_reader). Borrowed from cfg. */
	const char *bind_dn, *bind_password, *bind_what;
};

/* The body of a public function: runs call under the handle's lock and
 * returns its status; on success *err says "ok". Needs `err` in scope. */
#define DIR_ADMIN_LOCKED(h, call)                                                                  \
	do {                                                                                       \
		pthread_mutex_lock(&(h)->lock);                                                    \
		int status_ = (call);                                                              \
		pthread_mutex_unlock(&(h)->lock);                                                  \
		if (status_ == DIR_ADMIN_OK) {                                                     \
			err->status = DIR_ADMIN_OK;                                                \
			err->field = NULL;                                                         \
			err->message = "ok";                                                       \
		}                                                                                  \
		return status_;                                                                    \
	} while (0)

/* Fills *err (message "field: ..." in a) and returns status. */
int dir_admin_fail(struct arena *a, struct dir_admin_error *err, int status, const char *field,
		   const char *fmt, ...) PRINTF_LIKE(5, 6);
/* A value fit for a message: quoted, non-printable bytes as \xNN, cut
 * after 100 bytes. */
const char *dir_admin_quote(struct arena *a, const char *s);
/* Maps an LDAP result code to a status and fills *err with "what: LDAP
 * error (diagnostic)". */
int dir_admin_ldap_fail(struct arena *a, struct dir_admin_error *err, int rc, const char *diag,
			const char *field, const char *what);

void dir_admin_free_list(char **v);
bool dir_admin_list_has(char *const *v, const char *s);

/* The first attribute of e named `name` with a value, or NULL. */
const struct dir_ldap_attr *dir_admin_attr(const struct dir_ldap_entry *e, const char *name);
/* Its first value, or "". */
const char *dir_admin_attr1(const struct dir_ldap_entry *e, const char *name);
bool dir_admin_has_value(const struct dir_ldap_entry *e, const char *name, const char *value);
/* True if an objectClass of e is one of [directory] list_classes. */
bool dir_admin_is_list(const struct dir_admin *h, const struct dir_ldap_entry *e);

/* Filters, in a; NULL when a value does not fit (or holds a NUL). */
const char *dir_admin_filter(struct arena *a, const char *tmpl, char key, const char *value);
/* "(attr=value)", the value escaped. */
const char *dir_admin_eq(struct arena *a, const char *attr, const char *value);
/* "(&f(!disabled_filter))", or f when there is no disabled_filter. */
const char *dir_admin_enabled(const struct dir_admin *h, struct arena *a, const char *f);

/* Modifications built in an arena, for ldap_modify_ext_s/ldap_add_ext_s. */
struct dir_admin_mods {
	struct arena *a;
	LDAPMod **v; /* NULL-terminated */
	size_t n, cap;
};
void dir_admin_mods_init(struct dir_admin_mods *m, struct arena *a);
/* op: LDAP_MOD_ADD, _DELETE or _REPLACE; nvals 0 with DELETE/REPLACE
 * removes the whole attribute. Values are copied. */
void dir_admin_mod(struct dir_admin_mods *m, int op, const char *attr, const char *const *vals,
		   size_t nvals);
void dir_admin_mod1(struct dir_admin_mods *m, int op, const char *attr, const char *val);

/* Makes sure h->ld is connected and bound as the writer. */
int dir_admin_connect(struct dir_admin *h, struct arena *a, struct dir_admin_error *err);
/* A search on the writer connection; sizelimit 0 pages through every
 * entry (RFC 2696). Retried once on a fresh connection if the server went
 * away. A base that does not exist is DIR_ADMIN_OK with no entries.
 * *nseen_r (may be NULL): entries the server had (> sizelimit means more
 * matched). */
int dir_admin_search(struct dir_admin *h, struct arena *a, const char *base, int scope,
		     const char *filter, char **attrs, int sizelimit,
		     struct dir_ldap_entry **entries_r, size_t *n_r, size_t *nseen_r,
		     struct dir_admin_error *err);
/* Writes; they return the raw LDAP result code (LDAP_SUCCESS...), and
 * the server's diagnostic in *diag_r (arena, may be NULL), so that callers
 * can react to particular codes. A lost connection is dropped (the next
 * call reconnects). */
int dir_admin_ldap_modify(struct dir_admin *h, struct arena *a, const char *dn,
			  const struct dir_admin_mods *m, const char **diag_r);
int dir_admin_ldap_add(struct dir_admin *h, struct arena *a, const char *dn,
		       const struct dir_admin_mods *m, const char **diag_r);
int dir_admin_ldap_delete(struct dir_admin *h, struct arena *a, const char *dn,
			  const char **diag_r);
int dir_admin_ldap_passwd(struct dir_admin *h, struct arena *a, const char *dn,
			  const char *password, const char **diag_r);

/* Checks a password by binding as dn on a connection of its own, closed
 * again at once (the admin daemon logs in rarely). The LDAP code, and
 * the server's diagnostic in *diag_r (ldap_memfree it). */
int dir_admin_bind_check(const struct dir_admin *h, const char *dn, const char *password,
			 char **diag_r);

/* Does e match disabled_filter? (a base search; false without a filter) */
int dir_admin_entry_disabled(struct dir_admin *h, struct arena *a, const char *dn, bool *disabled_r,
			     struct dir_admin_error *err);

/* Shared by the user and list files. */
/* DIR_ADMIN_EXISTS (naming field and the entry) if an entry other than
 * self_dn (may be NULL) already has addr, by recipient_filter. */
int dir_admin_address_free(struct dir_admin *h, struct arena *a, const char *addr,
			   const char *self_dn, const char *field, struct dir_admin_error *err);
/* The entry of a user login, or of any address (user or list); NULL
 * attrs read the user attributes. Exactly one, else NOTFOUND/ERROR. */
int dir_admin_find_entry(struct dir_admin *h, struct arena *a, const char *key, const char *field,
			 bool users_only, bool enabled_only, struct dir_ldap_entry **e_r,
			 struct dir_admin_error *err);
/* Takes dn out of the list's members; the last member is replaced by
 * the list's own DN (groupOfNames needs one). *was_r: it was a member. */
int dir_admin_list_drop(struct dir_admin *h, struct arena *a, const struct dir_ldap_entry *list,
			const char *dn, bool *was_r, struct dir_admin_error *err);
/* "(|(member=dn)(uniqueMember=dn))" over [directory] member_attr. */
const char *dir_admin_member_filter(const struct dir_admin *h, struct arena *a, const char *dn);

#endif
