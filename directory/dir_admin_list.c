/*
 * dir_admin_list.c - mailing lists (dir_admin.h): entries of one of
 * [directory] list_classes with an address, whose member attributes
 * ([directory] member_attr) hold the DNs of users or of other lists.
 *
 * groupOfNames and groupOfUniqueNames must hold at least one member, so
 * a list without members holds its own DN instead: ternd sees a list
 * that contains itself and skips it (list-cycle), and these functions
 * neither count nor show it. How it fails: see dir_admin.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "directory/dir.h"
#include "directory/dir_admin_int.h"
#include "directory/dir_shape.h"

static char *no_attrs[] = {LDAP_NO_ATTRS, NULL};

static char *
lower_dup(struct arena *a, const char *s)
{
	char *d = arena_strdup(a, s);

	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

const char *
dir_admin_member_filter(const struct dir_admin *h, struct arena *a, const char *dn)
{
	struct buf b;
	const char *f = NULL;
	bool ok = true;

	buf_init(&b, DIR_ADMIN_FILTER_MAX);
	ok = buf_append_str(&b, "(|") == 0;
	for (char **m = h->member_attrs; ok && *m != NULL; m++) {
		ok = buf_printf(&b, "(%s=", *m) == 0 &&
		     dir_escape_filter_value(dn, strlen(dn), &b) == 0 && buf_putc(&b, ')') == 0;
	}
	if (ok && buf_putc(&b, ')') == 0)
		f = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	return f;
}

/* "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))" */
static const char *
class_filter(const struct dir_admin *h, struct arena *a)
{
	const char *f = "(|";

	for (char **c = h->list_classes; *c != NULL; c++)
		f = arena_printf(a, "%s%s", f, dir_admin_eq(a, "objectClass", *c));
	return arena_printf(a, "%s)", f);
}

/* The address of a list: mail_attr, else the first alias_attr value. */
static const char *
list_address(const struct dir_admin *h, struct arena *a, const struct dir_ldap_entry *e)
{
	const char *v = dir_admin_attr1(e, h->dc->mail_attr);

	if (v[0] == '\0')
		v = dir_admin_attr1(e, h->dc->alias_attr);
	return lower_dup(a, v);
}

static bool
is_self(const struct dir_ldap_entry *e, const char *dn)
{
	return strcasecmp(e->dn, dn) == 0;
}

static struct dir_admin_list *
to_list(const struct dir_admin *h, struct arena *a, const struct dir_ldap_entry *e)
{
	struct dir_admin_list *l = arena_alloc(a, sizeof(*l));
	const struct dir_ldap_attr *at = dir_admin_attr(e, h->dc->id_attr);

	l->id = at != NULL ? dir_shape_format_id(a, h->dc->id_attr, at->vals[0], at->lens[0]) : "";
	l->dn = e->dn;
	l->name = dir_admin_attr1(e, "cn");
	l->address = list_address(h, a, e);
	for (char **m = h->member_attrs; *m != NULL; m++) {
		at = dir_admin_attr(e, *m);
		for (size_t i = 0; at != NULL && i < at->nvals; i++)
			if (!is_self(e, at->vals[i]))
				l->nmembers++;
	}
	return l;
}

/* The member attribute writes go to: the one the list already uses,
 * else the one its class needs. */
static const char *
member_attr_for(const struct dir_admin *h, const struct dir_ldap_entry *e,
		const char *const *classes)
{
	for (char **m = h->member_attrs; *m != NULL; m++)
		if (e != NULL && dir_admin_attr(e, *m) != NULL)
			return *m;
	bool unique = false;
	if (e != NULL)
		unique = dir_admin_has_value(e, "objectClass", "groupOfUniqueNames");
	for (size_t i = 0; classes != NULL && classes[i] != NULL; i++)
		if (strcasecmp(classes[i], "groupOfUniqueNames") == 0)
			unique = true;
	if (unique && dir_admin_list_has(h->member_attrs, "uniqueMember"))
		return "uniqueMember";
	return h->member_attrs[0] != NULL ? h->member_attrs[0] : "member";
}

static int
find_list(struct dir_admin *h, struct arena *a, const char *key, const char *field,
	  struct dir_ldap_entry **e_r, struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	size_t n, nseen;
	const char *f;
	int status;

	if (key != NULL && strchr(key, '@') != NULL) {
		status = dir_admin_find_entry(h, a, key, field, false, false, &e, err);
		if (status == DIR_ADMIN_OK && !dir_admin_is_list(h, e))
			return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, field,
					      "%s is the address of a user, not of a list",
					      dir_admin_quote(a, key));
		if (status == DIR_ADMIN_OK) {
			/* A user search may have read it with the user
			 * attributes: read it again with the list's. */
			status = dir_admin_search(h, a, e->dn, LDAP_SCOPE_BASE, "(objectClass=*)",
						  h->list_attrs, 1, &e, &n, NULL, err);
			if (status == DIR_ADMIN_OK && n == 0)
				status = dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, field,
							"no list %s", dir_admin_quote(a, key));
			if (status == DIR_ADMIN_OK)
				*e_r = e;
		}
		return status;
	}
	const char *name;
	if ((status = dir_admin_check_login(a, field, key, &name, err)) != 0)
		return status;
	f = arena_printf(a, "(&%s%s)", class_filter(h, a), dir_admin_eq(a, "cn", name));
	status = dir_admin_search(h, a, h->dc->base, LDAP_SCOPE_SUBTREE, f, h->list_attrs, 2, &e,
				  &n, &nseen, err);
	if (status != DIR_ADMIN_OK)
		return status;
	if (nseen > 1)
		return dir_admin_fail(a, err, DIR_ADMIN_ERROR, field,
				      "several lists are named %s; use the address",
				      dir_admin_quote(a, key));
	if (n == 0)
		return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, field, "no list %s",
				      dir_admin_quote(a, key));
	*e_r = &e[0];
	return DIR_ADMIN_OK;
}

/* A member given as a login, an address, or (allow_dn) a DN. */
static int
resolve_member(struct dir_admin *h, struct arena *a, const char *key, bool allow_dn,
	       const char **dn_r, struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;

	if (allow_dn && key != NULL && strchr(key, '=') != NULL) {
		LDAPDN dn = NULL;
		if (ldap_str2dn(key, &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
			return dir_admin_fail(a, err, DIR_ADMIN_INVALID, "member", "%s is not a DN",
					      dir_admin_quote(a, key));
		ldap_dnfree(dn);
		*dn_r = arena_strdup(a, key);
		return DIR_ADMIN_OK;
	}
	int status = dir_admin_find_entry(h, a, key, "member", false, false, &e, err);
	if (status == DIR_ADMIN_OK)
		*dn_r = e->dn;
	return status;
}

int
dir_admin_list_drop(struct dir_admin *h, struct arena *a, const struct dir_ldap_entry *list,
		    const char *dn, bool *was_r, struct dir_admin_error *err)
{
	*was_r = false;
	if (is_self(list, dn))
		return DIR_ADMIN_OK;
	for (char **m = h->member_attrs; *m != NULL; m++) {
		struct dir_admin_mods mods;
		const char *diag;

		if (dir_admin_attr(list, *m) == NULL)
			continue;
		dir_admin_mods_init(&mods, a);
		dir_admin_mod1(&mods, LDAP_MOD_DELETE, *m, dn);
		int rc = dir_admin_ldap_modify(h, a, list->dn, &mods, &diag);
		if (rc == LDAP_NO_SUCH_ATTRIBUTE)
			continue; /* not a value of this attribute */
		if (rc == LDAP_OBJECT_CLASS_VIOLATION) {
			/* The last member of a class that needs one. */
			dir_admin_mods_init(&mods, a);
			dir_admin_mod1(&mods, LDAP_MOD_REPLACE, *m, list->dn);
			rc = dir_admin_ldap_modify(h, a, list->dn, &mods, &diag);
		}
		if (rc != LDAP_SUCCESS)
			return dir_admin_ldap_fail(
			    a, err, rc, diag, "member",
			    arena_printf(a, "remove %s from %s", dn, list->dn));
		*was_r = true;
	}
	return DIR_ADMIN_OK;
}

/* ---- the operations ---- */

static int
list_all(struct dir_admin *h, struct arena *a, struct dir_admin_list **lists_r, size_t *n_r,
	 struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	size_t n;
	int status = dir_admin_search(h, a, h->dc->base, LDAP_SCOPE_SUBTREE, class_filter(h, a),
				      h->list_attrs, 0, &e, &n, NULL, err);

	if (status != DIR_ADMIN_OK)
		return status;
	struct dir_admin_list *lists = arena_alloc(a, (n + 1) * sizeof(*lists));
	for (size_t i = 0; i < n; i++)
		lists[i] = *to_list(h, a, &e[i]);
	*lists_r = lists;
	*n_r = n;
	return DIR_ADMIN_OK;
}

static int
list_get(struct dir_admin *h, struct arena *a, const char *key, struct dir_admin_list **list_r,
	 struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	int status = find_list(h, a, key, "list", &e, err);

	if (status == DIR_ADMIN_OK)
		*list_r = to_list(h, a, e);
	return status;
}

static int
list_create(struct dir_admin *h, struct arena *a, const char *name_in, const char *address_in,
	    const char *const *members, size_t nmembers, struct dir_admin_list **list_r,
	    struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	const char *name, *addr;
	int status;

	if ((status = dir_admin_check_login(a, "name", name_in, &name, err)) != 0 ||
	    (status = dir_admin_check_address(h->cfg, a, "address", address_in, &addr, err)) != 0)
		return status;
	const char *addr_attr =
	    !h->ad && dc->alias_attr[0] != '\0' ? dc->alias_attr : dc->mail_attr;
	if (addr_attr[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "address",
				      "[directory] alias_attr and mail_attr are empty");
	const char **dns = arena_alloc(a, (nmembers + 1) * sizeof(*dns));
	size_t ndns = 0;
	for (size_t i = 0; i < nmembers; i++) {
		const char *dn;
		if ((status = resolve_member(h, a, members[i], false, &dn, err)) != 0)
			return status;
		bool dup = false;
		for (size_t j = 0; j < ndns; j++)
			dup = dup || strcasecmp(dns[j], dn) == 0;
		if (!dup)
			dns[ndns++] = dn;
	}
	struct dir_ldap_entry *e;
	size_t n;
	const char *f = arena_printf(a, "(&%s%s)", class_filter(h, a), dir_admin_eq(a, "cn", name));
	status =
	    dir_admin_search(h, a, dc->base, LDAP_SCOPE_SUBTREE, f, no_attrs, 1, &e, &n, NULL, err);
	if (status != DIR_ADMIN_OK)
		return status;
	if (n > 0)
		return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, "name",
				      "a list %s already exists (%s)", dir_admin_quote(a, name),
				      e[0].dn);
	if ((status = dir_admin_address_free(h, a, addr, NULL, "address", err)) != 0)
		return status;

	struct buf b;
	buf_init(&b, 4096);
	if (buf_append_str(&b, "cn=") < 0 ||
	    dir_admin_escape_dn_value(name, strlen(name), &b) < 0 ||
	    buf_printf(&b, ",%s", h->cfg->admin_group_base) < 0) {
		buf_free(&b);
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, "name",
				      "the DN would be too long");
	}
	const char *dn = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);
	if (ndns == 0)
		dns[ndns++] = dn; /* the placeholder: see the top of the file */

	struct dir_admin_mods m;
	size_t nclasses = 0;
	while (h->new_list_classes[nclasses] != NULL)
		nclasses++;
	dir_admin_mods_init(&m, a);
	dir_admin_mod(&m, LDAP_MOD_ADD, "objectClass", (const char *const *)h->new_list_classes,
		      nclasses);
	dir_admin_mod1(&m, LDAP_MOD_ADD, "cn", name);
	dir_admin_mod1(&m, LDAP_MOD_ADD, addr_attr, addr);
	dir_admin_mod(&m, LDAP_MOD_ADD,
		      member_attr_for(h, NULL, (const char *const *)h->new_list_classes), dns,
		      ndns);
	const char *diag;
	int rc = dir_admin_ldap_add(h, a, dn, &m, &diag);
	if (rc == LDAP_ALREADY_EXISTS)
		return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, "name",
				      "the entry %s already exists", dn);
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, NULL, arena_printf(a, "add %s", dn));
	log_info(0, "diradmin", "list-created dn=\"%s\" address=%s members=%zu", dn, addr,
		 nmembers);
	if (list_r == NULL)
		return DIR_ADMIN_OK;
	status = dir_admin_search(h, a, dn, LDAP_SCOPE_BASE, "(objectClass=*)", h->list_attrs, 1,
				  &e, &n, NULL, err);
	if (status == DIR_ADMIN_OK && n == 0)
		status = dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, "name", "%s is gone", dn);
	if (status == DIR_ADMIN_OK)
		*list_r = to_list(h, a, &e[0]);
	return status;
}

/* A new address for a list: replaces the value of the attribute that
 * holds its current address (mail_attr, else alias_attr), or adds one
 * where it had none. Other alias values the entry may hold stay. */
static int
list_set_address(struct dir_admin *h, struct arena *a, const char *key, const char *address_in,
		 struct dir_admin_list **list_r, struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	struct dir_ldap_entry *e;
	const char *addr;
	int status;

	if ((status = dir_admin_check_address(h->cfg, a, "address", address_in, &addr, err)) != 0 ||
	    (status = find_list(h, a, key, "list", &e, err)) != 0)
		return status;
	const char *old = list_address(h, a, e);
	if (strcmp(old, addr) != 0) {
		if ((status = dir_admin_address_free(h, a, addr, e->dn, "address", err)) != 0)
			return status;
		const char *attr = dir_admin_attr1(e, dc->mail_attr)[0] != '\0' ? dc->mail_attr
				   : !h->ad && dc->alias_attr[0] != '\0'	? dc->alias_attr
										: dc->mail_attr;
		if (attr[0] == '\0')
			return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "address",
					      "[directory] alias_attr and mail_attr are empty");
		struct dir_admin_mods m;
		dir_admin_mods_init(&m, a);
		/* Delete the value as the entry spells it (the match rule
		 * ignores case, but be exact anyway). */
		const char *spelled = dir_admin_attr1(e, attr);
		if (spelled[0] != '\0')
			dir_admin_mod1(&m, LDAP_MOD_DELETE, attr, spelled);
		dir_admin_mod1(&m, LDAP_MOD_ADD, attr, addr);
		const char *diag;
		int rc = dir_admin_ldap_modify(h, a, e->dn, &m, &diag);
		if (rc != LDAP_SUCCESS)
			return dir_admin_ldap_fail(
			    a, err, rc, diag, "address",
			    arena_printf(a, "change the address of %s", e->dn));
		log_info(0, "diradmin", "list-address dn=\"%s\" old=%s new=%s", e->dn,
			 old[0] != '\0' ? old : "-", addr);
	}
	if (list_r != NULL) {
		*list_r = to_list(h, a, e);
		(*list_r)->address = addr;
	}
	return DIR_ADMIN_OK;
}

static int
list_delete(struct dir_admin *h, struct arena *a, const char *key, struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	int status = find_list(h, a, key, "list", &e, err);

	if (status != DIR_ADMIN_OK)
		return status;
	const char *diag;
	int rc = dir_admin_ldap_delete(h, a, e->dn, &diag);
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, NULL,
					   arena_printf(a, "delete %s", e->dn));
	log_info(0, "diradmin", "list-deleted dn=\"%s\"", e->dn);
	return DIR_ADMIN_OK;
}

static int
add_member(struct dir_admin *h, struct arena *a, const char *key, const char *member,
	   struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	const char *dn;
	int status = find_list(h, a, key, "list", &e, err);

	if (status == DIR_ADMIN_OK)
		status = resolve_member(h, a, member, false, &dn, err);
	if (status != DIR_ADMIN_OK)
		return status;
	if (is_self(e, dn))
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, "member",
				      "a list cannot be a member of itself");
	const char *attr = member_attr_for(h, e, NULL);
	struct dir_admin_mods m;
	dir_admin_mods_init(&m, a);
	for (char **ma = h->member_attrs; *ma != NULL; ma++) {
		const struct dir_ldap_attr *at = dir_admin_attr(e, *ma);
		for (size_t i = 0; at != NULL && i < at->nvals; i++)
			if (strcasecmp(at->vals[i], dn) == 0)
				return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, "member",
						      "%s is already a member of %s",
						      dir_admin_quote(a, member), e->dn);
	}
	dir_admin_mod1(&m, LDAP_MOD_ADD, attr, dn);
	/* The first real member replaces the placeholder. */
	const struct dir_ldap_attr *at = dir_admin_attr(e, attr);
	for (size_t i = 0; at != NULL && i < at->nvals; i++)
		if (is_self(e, at->vals[i]))
			dir_admin_mod1(&m, LDAP_MOD_DELETE, attr, at->vals[i]);
	const char *diag;
	int rc = dir_admin_ldap_modify(h, a, e->dn, &m, &diag);
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, "member",
					   arena_printf(a, "add %s to %s", dn, e->dn));
	log_info(0, "diradmin", "list-member-added list=\"%s\" member=\"%s\"", e->dn, dn);
	return DIR_ADMIN_OK;
}

static int
remove_member(struct dir_admin *h, struct arena *a, const char *key, const char *member,
	      struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	const char *dn;
	bool was;
	int status = find_list(h, a, key, "list", &e, err);

	if (status == DIR_ADMIN_OK)
		status = resolve_member(h, a, member, true, &dn, err);
	if (status == DIR_ADMIN_OK)
		status = dir_admin_list_drop(h, a, e, dn, &was, err);
	if (status != DIR_ADMIN_OK)
		return status;
	if (!was)
		return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, "member",
				      "%s is not a member of %s", dir_admin_quote(a, member),
				      e->dn);
	log_info(0, "diradmin", "list-member-removed list=\"%s\" member=\"%s\"", e->dn, dn);
	return DIR_ADMIN_OK;
}

static int
members(struct dir_admin *h, struct arena *a, const char *key, struct dir_admin_member **members_r,
	size_t *n_r, struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	int status = find_list(h, a, key, "list", &e, err);

	if (status != DIR_ADMIN_OK)
		return status;
	size_t total = 0, k = 0;
	for (char **m = h->member_attrs; *m != NULL; m++) {
		const struct dir_ldap_attr *at = dir_admin_attr(e, *m);
		total += at != NULL ? at->nvals : 0;
	}
	struct dir_admin_member *out = arena_alloc(a, (total + 1) * sizeof(*out));
	for (char **m = h->member_attrs; *m != NULL; m++) {
		const struct dir_ldap_attr *at = dir_admin_attr(e, *m);
		for (size_t i = 0; at != NULL && i < at->nvals; i++) {
			struct dir_admin_member *mb = &out[k];
			struct dir_ldap_entry *me;
			size_t n;
			if (is_self(e, at->vals[i]))
				continue;
			mb->dn = at->vals[i];
			mb->login = mb->mail = "";
			/* XXX one read per member: fine for an admin call,
			 * not for lists of many thousands. */
			status = dir_admin_search(h, a, mb->dn, LDAP_SCOPE_BASE, "(objectClass=*)",
						  h->user_attrs, 1, &me, &n, NULL, err);
			if (status == DIR_ADMIN_ERROR) {
				mb->missing = true; /* e.g. a value that is no DN */
			} else if (status != DIR_ADMIN_OK) {
				return status;
			} else if (n == 0) {
				mb->missing = true;
			} else {
				mb->is_list = dir_admin_is_list(h, &me[0]);
				mb->login =
				    mb->is_list ? "" : dir_admin_attr1(&me[0], h->dc->login_attr);
				mb->mail = list_address(h, a, &me[0]);
				if (!mb->is_list && (status = dir_admin_entry_disabled(
							 h, a, mb->dn, &mb->disabled, err)) != 0)
					return status;
			}
			k++;
		}
	}
	*members_r = out;
	*n_r = k;
	return DIR_ADMIN_OK;
}

/* ---- public entry points ---- */

int
dir_admin_list_all(struct dir_admin *h, struct arena *a, struct dir_admin_list **lists_r,
		   size_t *n_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, list_all(h, a, lists_r, n_r, err));
}

int
dir_admin_list_get(struct dir_admin *h, struct arena *a, const char *key,
		   struct dir_admin_list **list_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, list_get(h, a, key, list_r, err));
}

int
dir_admin_list_create(struct dir_admin *h, struct arena *a, const char *name, const char *address,
		      const char *const *members_in, size_t nmembers,
		      struct dir_admin_list **list_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, list_create(h, a, name, address, members_in, nmembers, list_r, err));
}

int
dir_admin_list_set_address(struct dir_admin *h, struct arena *a, const char *key,
			   const char *address, struct dir_admin_list **list_r,
			   struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, list_set_address(h, a, key, address, list_r, err));
}

int
dir_admin_list_delete(struct dir_admin *h, struct arena *a, const char *key,
		      struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, list_delete(h, a, key, err));
}

int
dir_admin_list_add_member(struct dir_admin *h, struct arena *a, const char *key, const char *member,
			  struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, add_member(h, a, key, member, err));
}

int
dir_admin_list_remove_member(struct dir_admin *h, struct arena *a, const char *key,
			     const char *member, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, remove_member(h, a, key, member, err));
}

int
dir_admin_list_members(struct dir_admin *h, struct arena *a, const char *key,
		       struct dir_admin_member **members_r, size_t *n_r,
		       struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, members(h, a, key, members_r, n_r, err));
}
