/*
 * dir_admin_user.c - users, their aliases, passwords and disabled state,
 * and the admins' own login (dir_admin.h), written with the writer
 * connection of dir_admin_conn.c.
 *
 * Each public function takes the handle's lock, validates all of its
 * input before sending anything, finds the user's entry (by login with
 * user_filter, else by address with recipient_filter; exactly one), then
 * writes. How it fails: see dir_admin.h; a refused write leaves the entry
 * as it was (one modify per call), except user_create, which deletes the
 * entry again when the password cannot be set.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "directory/dir.h"
#include "directory/dir_admin_int.h"
#include "directory/dir_scram.h"
#include "directory/dir_shape.h"

#define KEY_MAX 254

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

/* A key (login or address) to look up: not validated beyond being sane,
 * since an unknown one is simply not found. */
static int
check_key(struct arena *a, const char *field, const char *key, const char **lower_r,
	  struct dir_admin_error *err)
{
	if (key == NULL || key[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
				      "a login or address is required");
	if (strlen(key) > KEY_MAX)
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field, "%s is too long",
				      dir_admin_quote(a, key));
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
					      "%s holds a control character",
					      dir_admin_quote(a, key));
	*lower_r = lower_dup(a, key);
	return DIR_ADMIN_OK;
}

int
dir_admin_find_entry(struct dir_admin *h, struct arena *a, const char *key, const char *field,
		     bool users_only, bool enabled_only, struct dir_ldap_entry **e_r,
		     struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	struct dir_ldap_entry *e = NULL;
	size_t n = 0, nseen = 0;
	const char *k;
	int status = check_key(a, field, key, &k, err);

	if (status != DIR_ADMIN_OK)
		return status;
	const char *f = dir_admin_filter(a, dc->user_filter, 'u', k);
	if (enabled_only)
		f = dir_admin_enabled(h, a, f);
	status = dir_admin_search(h, a, dc->base, LDAP_SCOPE_SUBTREE, f, h->user_attrs, 2, &e, &n,
				  &nseen, err);
	if (status != DIR_ADMIN_OK)
		return status;
	if (n == 0 && strchr(k, '@') != NULL) {
		char **attrs = h->user_attrs;
		if (!users_only) {
			/* Any entry owning the address, lists included: read
			 * what either needs. */
			attrs = h->list_attrs;
		}
		f = dir_admin_filter(a, dc->recipient_filter, 'a', k);
		if (enabled_only)
			f = dir_admin_enabled(h, a, f);
		status = dir_admin_search(h, a, dc->base, LDAP_SCOPE_SUBTREE, f, attrs, 2, &e, &n,
					  &nseen, err);
		if (status != DIR_ADMIN_OK)
			return status;
		if (users_only && n == 1 && dir_admin_is_list(h, &e[0]))
			return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, field,
					      "%s is the address of the list %s, not a user",
					      dir_admin_quote(a, key), e[0].dn);
	}
	if (nseen > 1)
		return dir_admin_fail(a, err, DIR_ADMIN_ERROR, field,
				      "%s matches several directory entries",
				      dir_admin_quote(a, key));
	if (n == 0)
		return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, field, "no %s %s",
				      users_only ? "user" : "user or list",
				      dir_admin_quote(a, key));
	*e_r = &e[0];
	return DIR_ADMIN_OK;
}

int
dir_admin_address_free(struct dir_admin *h, struct arena *a, const char *addr, const char *self_dn,
		       const char *field, struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	size_t n;
	const char *f = dir_admin_filter(a, h->dc->recipient_filter, 'a', addr);
	int status = dir_admin_search(h, a, h->dc->base, LDAP_SCOPE_SUBTREE, f, no_attrs, 2, &e, &n,
				      NULL, err);

	if (status != DIR_ADMIN_OK)
		return status;
	for (size_t i = 0; i < n; i++) {
		if (self_dn != NULL && strcasecmp(e[i].dn, self_dn) == 0)
			continue;
		return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, field, "%s is already used by %s",
				      dir_admin_quote(a, addr), e[i].dn);
	}
	return DIR_ADMIN_OK;
}

/* ---- entries to records ---- */

static void
push(struct arena *a, const char ***v, size_t *n, size_t *cap, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return;
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 4 : *cap * 2;
		const char **nv = arena_alloc(a, ncap * sizeof(*nv));
		if (*n > 0)
			memcpy(nv, *v, *n * sizeof(*nv));
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = s;
}

static struct dir_admin_user *
to_user(const struct dir_admin *h, struct arena *a, const struct dir_ldap_entry *e, bool disabled)
{
	const struct directory_config *dc = h->dc;
	struct dir_admin_user *u = arena_alloc(a, sizeof(*u));
	const struct dir_ldap_attr *at = dir_admin_attr(e, dc->id_attr);

	u->id = at != NULL ? dir_shape_format_id(a, dc->id_attr, at->vals[0], at->lens[0]) : "";
	u->dn = e->dn;
	u->login = dir_admin_attr1(e, dc->login_attr);
	u->mail = lower_dup(a, dir_admin_attr1(e, dc->mail_attr));
	u->display_name = dir_admin_attr1(e, "displayName");
	if (u->display_name[0] == '\0')
		u->display_name = dir_admin_attr1(e, "cn");
	const char **aliases = NULL;
	size_t naliases = 0, cap = 0;
	at = dir_admin_attr(e, dc->alias_attr);
	for (size_t i = 0; at != NULL && i < at->nvals; i++) {
		const char *v = lower_dup(a, at->vals[i]);
		if (strcmp(v, u->mail) != 0)
			push(a, &aliases, &naliases, &cap, v);
	}
	u->aliases = aliases;
	u->naliases = naliases;
	if (dir_ldap_parse_quota(dir_admin_attr1(e, dc->quota_attr), dc->quota_unit, &u->quota) < 0)
		log_warn(0, "diradmin", "bad-quota dn=\"%s\"", e->dn);
	u->disabled = disabled;
	return u;
}

/* The user entry at dn, freshly read. */
static int
read_user(struct dir_admin *h, struct arena *a, const char *dn, struct dir_admin_user **u_r,
	  struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	size_t n;
	bool disabled;
	int status = dir_admin_search(h, a, dn, LDAP_SCOPE_BASE, "(objectClass=*)", h->user_attrs,
				      1, &e, &n, NULL, err);

	if (status != DIR_ADMIN_OK)
		return status;
	if (n == 0)
		return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, "user", "%s is gone", dn);
	status = dir_admin_entry_disabled(h, a, dn, &disabled, err);
	if (status != DIR_ADMIN_OK)
		return status;
	*u_r = to_user(h, a, &e[0], disabled);
	return DIR_ADMIN_OK;
}

/* ---- writes ---- */

/* A modify of a user entry. If the entry lacks the auxiliary class an
 * attribute needs (an alias on a user made without
 * inetLocalMailRecipient, shadowExpire without shadowAccount), the
 * classes of [admin] user_object_classes it misses, all but the first
 * (structural) one, are added and the modify is tried once more. */
static int
modify_user(struct dir_admin *h, struct arena *a, const struct dir_ldap_entry *e,
	    struct dir_admin_mods *m, const char *field, struct dir_admin_error *err)
{
	const char *diag;
	int rc = dir_admin_ldap_modify(h, a, e->dn, m, &diag);

	if (rc == LDAP_OBJECT_CLASS_VIOLATION) {
		const char **missing = NULL;
		size_t nmissing = 0, cap = 0;
		for (char **c = h->user_classes + 1; *c != NULL; c++)
			if (!dir_admin_has_value(e, "objectClass", *c))
				push(a, &missing, &nmissing, &cap, *c);
		if (nmissing > 0) {
			dir_admin_mod(m, LDAP_MOD_ADD, "objectClass", missing, nmissing);
			rc = dir_admin_ldap_modify(h, a, e->dn, m, &diag);
		}
	}
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, field,
					   arena_printf(a, "modify %s", e->dn));
	return DIR_ADMIN_OK;
}

static const char *
quota_value(const struct dir_admin *h, struct arena *a, uint64_t bytes)
{
	uint64_t unit = h->dc->quota_unit > 0 ? h->dc->quota_unit : 1;

	return arena_printf(a, "%llu", (unsigned long long)(bytes / unit));
}

/* Checks a list of new addresses: valid, local, none twice, none equal
 * to `other` (the primary address). Normalised copies in *out_r. */
static int
check_addresses(struct dir_admin *h, struct arena *a, const char *field, const char *const *in,
		size_t n, const char *other, const char ***out_r, struct dir_admin_error *err)
{
	const char **out = arena_alloc(a, (n + 1) * sizeof(*out));

	for (size_t i = 0; i < n; i++) {
		int status = dir_admin_check_address(h->cfg, a, field, in[i], &out[i], err);
		if (status != DIR_ADMIN_OK)
			return status;
		if (other != NULL && strcmp(out[i], other) == 0)
			return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
					      "%s is the primary address",
					      dir_admin_quote(a, in[i]));
		for (size_t j = 0; j < i; j++)
			if (strcmp(out[i], out[j]) == 0)
				return dir_admin_fail(a, err, DIR_ADMIN_INVALID, field,
						      "%s is given twice",
						      dir_admin_quote(a, in[i]));
	}
	*out_r = out;
	return DIR_ADMIN_OK;
}

/* [admin] write_scram: after the RFC 3062 password modify, the password's
 * SCRAM-SHA-256 verifier (RFC 5803, fresh 16-byte salt, 4096 iterations)
 * into [directory] scram_attribute, replacing the old one. An entry whose
 * classes do not allow authPassword gets authPasswordObject in the same
 * modify. A failure is logged, not returned: the password itself is set
 * (PLAIN works) and check-directory counts the users without verifier. */
static void
write_scram(struct dir_admin *h, struct arena *a, const char *dn, const char *password)
{
	const char *attr = h->dc->scram_attr;
	const char *v, *diag = NULL;

	if (!h->cfg->admin_write_scram || attr == NULL || attr[0] == '\0')
		return;
	if (dir_scram_make(a, password, strlen(password), DIR_SCRAM_MIN_ITER, &v) < 0) {
		log_warn(0, "diradmin", "user-scram-failed dn=\"%s\" why=\"cannot compute\"", dn);
		return;
	}
	int rc = LDAP_OBJECT_CLASS_VIOLATION;
	for (int pass = 0; pass < 2 && rc == LDAP_OBJECT_CLASS_VIOLATION; pass++) {
		struct dir_admin_mods m;
		dir_admin_mods_init(&m, a);
		if (pass == 1) {
			if (strcasecmp(attr, "authPassword") != 0)
				break;
			dir_admin_mod1(&m, LDAP_MOD_ADD, "objectClass", "authPasswordObject");
		}
		dir_admin_mod1(&m, LDAP_MOD_REPLACE, attr, v);
		rc = dir_admin_ldap_modify(h, a, dn, &m, &diag);
		/* The copy in the mods is a secret too. */
		LDAPMod *last = m.v[m.n - 1];
		explicit_bzero(last->mod_values[0], strlen(last->mod_values[0]));
	}
	explicit_bzero((char *)v, strlen(v));
	if (rc != LDAP_SUCCESS)
		log_warn(0, "diradmin",
			 "user-scram-failed dn=\"%s\" attr=%s rc=%d error=\"%s\" diag=\"%s\"", dn,
			 attr, rc, ldap_err2string(rc), diag != NULL ? diag : "");
	else
		log_info(0, "diradmin", "user-scram dn=\"%s\" attr=%s", dn, attr);
}

static int
user_create(struct dir_admin *h, struct arena *a, const struct dir_admin_user_spec *spec,
	    struct dir_admin_user **user_r, struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	const char *login, *mail;
	const char **aliases = NULL;
	uint64_t quota = 0;
	int status;

	if ((status = dir_admin_check_login(a, "login", spec->login, &login, err)) != 0 ||
	    (status = dir_admin_check_address(h->cfg, a, "mail", spec->mail, &mail, err)) != 0 ||
	    (status = check_addresses(h, a, "aliases", spec->aliases, spec->naliases, mail,
				      &aliases, err)) != 0)
		return status;
	if (spec->display_name != NULL &&
	    (status = dir_admin_check_name(a, "display_name", spec->display_name, err)) != 0)
		return status;
	if (spec->surname != NULL &&
	    (status = dir_admin_check_name(a, "surname", spec->surname, err)) != 0)
		return status;
	if ((status =
		 dir_admin_parse_quota(a, "quota", spec->quota, dc->quota_unit, &quota, err)) != 0)
		return status;
	if (spec->password != NULL &&
	    (status = dir_admin_check_password(a, "password", spec->password, err)) != 0)
		return status;
	if (spec->naliases > 0 && dc->alias_attr[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "aliases",
				      "[directory] alias_attr is empty: no place for aliases");
	if (quota > 0 && dc->quota_attr[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "quota",
				      "[directory] quota_attr is empty: no place for a quota");

	/* Taken logins and addresses are refused by name before writing. */
	struct dir_ldap_entry *e;
	size_t n;
	status = dir_admin_search(h, a, dc->base, LDAP_SCOPE_SUBTREE,
				  dir_admin_filter(a, dc->user_filter, 'u', login), no_attrs, 1, &e,
				  &n, NULL, err);
	if (status != DIR_ADMIN_OK)
		return status;
	if (n > 0)
		return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, "login",
				      "%s is already taken by %s", dir_admin_quote(a, login),
				      e[0].dn);
	if ((status = dir_admin_address_free(h, a, mail, NULL, "mail", err)) != 0)
		return status;
	for (size_t i = 0; i < spec->naliases; i++)
		if ((status = dir_admin_address_free(h, a, aliases[i], NULL, "aliases", err)) != 0)
			return status;

	const char *cn = spec->display_name != NULL ? spec->display_name : login;
	const char *sn = spec->surname;
	if (sn == NULL) {
		const char *sp = strrchr(cn, ' ');
		sn = sp != NULL ? sp + 1 : cn;
	}
	/* AD names users by cn; everything else here by the login. */
	const char *rdn_attr = h->ad ? "cn" : dc->login_attr;
	const char *rdn_value = h->ad ? cn : login;
	struct buf b;
	buf_init(&b, 4096);
	if (buf_printf(&b, "%s=", rdn_attr) < 0 ||
	    dir_admin_escape_dn_value(rdn_value, strlen(rdn_value), &b) < 0 ||
	    buf_printf(&b, ",%s", h->cfg->admin_user_base) < 0) {
		buf_free(&b);
		return dir_admin_fail(a, err, DIR_ADMIN_INVALID, "login",
				      "the DN would be too long");
	}
	const char *dn = arena_strdup(a, buf_cstr(&b));
	buf_free(&b);

	struct dir_admin_mods m;
	size_t nclasses = 0;
	while (h->user_classes[nclasses] != NULL)
		nclasses++;
	dir_admin_mods_init(&m, a);
	dir_admin_mod(&m, LDAP_MOD_ADD, "objectClass", (const char *const *)h->user_classes,
		      nclasses);
	dir_admin_mod1(&m, LDAP_MOD_ADD, rdn_attr, rdn_value);
	if (strcasecmp(rdn_attr, dc->login_attr) != 0)
		dir_admin_mod1(&m, LDAP_MOD_ADD, dc->login_attr, login);
	if (strcasecmp(rdn_attr, "cn") != 0)
		dir_admin_mod1(&m, LDAP_MOD_ADD, "cn", cn);
	dir_admin_mod1(&m, LDAP_MOD_ADD, "sn", sn);
	if (spec->display_name != NULL)
		dir_admin_mod1(&m, LDAP_MOD_ADD, "displayName", spec->display_name);
	dir_admin_mod1(&m, LDAP_MOD_ADD, dc->mail_attr, mail);
	if (spec->naliases > 0)
		dir_admin_mod(&m, LDAP_MOD_ADD, dc->alias_attr, aliases, spec->naliases);
	if (quota > 0)
		dir_admin_mod1(&m, LDAP_MOD_ADD, dc->quota_attr, quota_value(h, a, quota));

	const char *diag;
	int rc = dir_admin_ldap_add(h, a, dn, &m, &diag);
	if (rc == LDAP_ALREADY_EXISTS)
		return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, "login",
				      "the entry %s already exists", dn);
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, NULL, arena_printf(a, "add %s", dn));
	log_info(0, "diradmin", "user-created dn=\"%s\" mail=%s", dn, mail);

	if (spec->password != NULL) {
		rc = dir_admin_ldap_passwd(h, a, dn, spec->password, &diag);
		if (rc != LDAP_SUCCESS) {
			/* No half-made user: one without its password would
			 * look created to the admin and never log in. */
			const char *ddiag;
			int drc = dir_admin_ldap_delete(h, a, dn, &ddiag);
			log_warn(0, "diradmin",
				 "user-create-undone dn=\"%s\" passwd-rc=%d delete-rc=%d", dn, rc,
				 drc);
			status = dir_admin_ldap_fail(
			    a, err, rc, diag, "password",
			    arena_printf(a, "setting the password of %s failed, the user was %s",
					 dn,
					 drc == LDAP_SUCCESS ? "not created" : "left without one"));
			return status;
		}
		write_scram(h, a, dn, spec->password);
	}
	if (user_r != NULL)
		return read_user(h, a, dn, user_r, err);
	return DIR_ADMIN_OK;
}

static int
user_update(struct dir_admin *h, struct arena *a, const char *key,
	    const struct dir_admin_user_changes *ch, struct dir_admin_user **user_r,
	    struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	struct dir_ldap_entry *e;
	uint64_t quota = 0;
	const char **add = NULL, **rm = NULL;
	int status;

	if (ch->display_name != NULL &&
	    (status = dir_admin_check_name(a, "display_name", ch->display_name, err)) != 0)
		return status;
	if (ch->surname != NULL &&
	    (status = dir_admin_check_name(a, "surname", ch->surname, err)) != 0)
		return status;
	if (ch->quota != NULL && (status = dir_admin_parse_quota(a, "quota", ch->quota,
								 dc->quota_unit, &quota, err)) != 0)
		return status;
	if ((status = check_addresses(h, a, "aliases", ch->add_aliases, ch->nadd_aliases, NULL,
				      &add, err)) != 0)
		return status;
	rm = arena_alloc(a, (ch->nremove_aliases + 1) * sizeof(*rm));
	for (size_t i = 0; i < ch->nremove_aliases; i++) {
		/* Not checked against [server] domains: an alias of a
		 * domain no longer served must still be removable. */
		if ((status = check_key(a, "aliases", ch->remove_aliases[i], &rm[i], err)) != 0)
			return status;
	}
	if ((ch->nadd_aliases > 0 || ch->nremove_aliases > 0) && dc->alias_attr[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "aliases",
				      "[directory] alias_attr is empty: no place for aliases");
	if (ch->quota != NULL && quota > 0 && dc->quota_attr[0] == '\0')
		return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "quota",
				      "[directory] quota_attr is empty: no place for a quota");
	if ((status = dir_admin_find_entry(h, a, key, "user", true, false, &e, err)) != 0)
		return status;

	struct dir_admin_mods m;
	dir_admin_mods_init(&m, a);
	if (ch->display_name != NULL) {
		dir_admin_mod1(&m, LDAP_MOD_REPLACE, "displayName", ch->display_name);
		/* cn may name the entry (AD): then it stays. */
		if (strncasecmp(e->dn, "cn=", 3) != 0)
			dir_admin_mod1(&m, LDAP_MOD_REPLACE, "cn", ch->display_name);
	}
	if (ch->surname != NULL)
		dir_admin_mod1(&m, LDAP_MOD_REPLACE, "sn", ch->surname);
	if (ch->quota != NULL) {
		if (quota > 0)
			dir_admin_mod1(&m, LDAP_MOD_REPLACE, dc->quota_attr,
				       quota_value(h, a, quota));
		else if (dir_admin_attr(e, dc->quota_attr) != NULL)
			dir_admin_mod1(&m, LDAP_MOD_DELETE, dc->quota_attr, NULL);
	}
	const char *mail = lower_dup(a, dir_admin_attr1(e, dc->mail_attr));
	for (size_t i = 0; i < ch->nadd_aliases; i++) {
		if (strcmp(add[i], mail) == 0 || dir_admin_has_value(e, dc->alias_attr, add[i]))
			return dir_admin_fail(a, err, DIR_ADMIN_EXISTS, "aliases",
					      "%s is already an address of %s",
					      dir_admin_quote(a, add[i]), e->dn);
		if ((status = dir_admin_address_free(h, a, add[i], e->dn, "aliases", err)) != 0)
			return status;
	}
	if (ch->nadd_aliases > 0)
		dir_admin_mod(&m, LDAP_MOD_ADD, dc->alias_attr, add, ch->nadd_aliases);
	for (size_t i = 0; i < ch->nremove_aliases; i++) {
		const struct dir_ldap_attr *at = dir_admin_attr(e, dc->alias_attr);
		const char *stored = NULL;
		for (size_t j = 0; at != NULL && j < at->nvals; j++)
			if (strcasecmp(at->vals[j], rm[i]) == 0)
				stored = at->vals[j];
		if (stored == NULL || strcmp(rm[i], mail) == 0)
			return dir_admin_fail(a, err, DIR_ADMIN_NOTFOUND, "aliases",
					      "%s is not an alias of %s",
					      dir_admin_quote(a, ch->remove_aliases[i]), e->dn);
		dir_admin_mod1(&m, LDAP_MOD_DELETE, dc->alias_attr, stored);
	}
	if ((status = modify_user(h, a, e, &m, NULL, err)) != 0)
		return status;
	if (user_r != NULL)
		return read_user(h, a, e->dn, user_r, err);
	return DIR_ADMIN_OK;
}

static int
set_disabled(struct dir_admin *h, struct arena *a, const char *key, bool disabled,
	     struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	struct dir_admin_mods m;
	int status = dir_admin_find_entry(h, a, key, "user", true, false, &e, err);

	if (status != DIR_ADMIN_OK)
		return status;
	dir_admin_mods_init(&m, a);
	if (h->ad) {
		/* userAccountControl bit 0x2: ACCOUNTDISABLE. XXX untested:
		 * config.c refuses the ad profile for now. */
		unsigned long uac = strtoul(dir_admin_attr1(e, "userAccountControl"), NULL, 10);
		unsigned long want = disabled ? (uac | 2ul) : (uac & ~2ul);
		if (want != uac)
			dir_admin_mod1(&m, LDAP_MOD_REPLACE, "userAccountControl",
				       arena_printf(a, "%lu", want));
		if ((status = modify_user(h, a, e, &m, NULL, err)) != 0)
			return status;
	} else if (h->disable_attr != NULL) {
		if (disabled) {
			dir_admin_mod1(&m, LDAP_MOD_REPLACE, h->disable_attr, h->disable_value);
			if ((status = modify_user(h, a, e, &m, NULL, err)) != 0)
				return status;
		} else if (dir_admin_has_value(e, h->disable_attr, h->disable_value)) {
			dir_admin_mod1(&m, LDAP_MOD_DELETE, h->disable_attr, h->disable_value);
			const char *diag;
			int rc = dir_admin_ldap_modify(h, a, e->dn, &m, &diag);
			if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_ATTRIBUTE)
				return dir_admin_ldap_fail(a, err, rc, diag, NULL,
							   arena_printf(a, "modify %s", e->dn));
		}
	} else {
		return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, NULL,
				      "[directory] disabled_filter %s is not a simple "
				      "(attribute=value) filter, so it cannot be written",
				      dir_admin_quote(a, h->dc->disabled_filter));
	}
	/* What ternd will see is what disabled_filter says: check it. */
	bool now;
	if ((status = dir_admin_entry_disabled(h, a, e->dn, &now, err)) != 0)
		return status;
	if (now != disabled)
		return dir_admin_fail(a, err, DIR_ADMIN_ERROR, NULL,
				      "%s still %s [directory] disabled_filter after the change",
				      e->dn, now ? "matches" : "does not match");
	log_info(0, "diradmin", "user-%s dn=\"%s\"", disabled ? "disabled" : "enabled", e->dn);
	return DIR_ADMIN_OK;
}

static int
user_delete(struct dir_admin *h, struct arena *a, const char *key, struct dir_admin_error *err)
{
	struct dir_ldap_entry *e, *lists;
	size_t n;
	int status = dir_admin_find_entry(h, a, key, "user", true, false, &e, err);

	if (status != DIR_ADMIN_OK)
		return status;
	/* Memberships first: if that fails, the user is still whole. */
	status = dir_admin_search(h, a, h->dc->base, LDAP_SCOPE_SUBTREE,
				  dir_admin_member_filter(h, a, e->dn), h->list_attrs, 0, &lists,
				  &n, NULL, err);
	if (status != DIR_ADMIN_OK)
		return status;
	for (size_t i = 0; i < n; i++) {
		bool was;
		if (!dir_admin_is_list(h, &lists[i]))
			continue;
		if ((status = dir_admin_list_drop(h, a, &lists[i], e->dn, &was, err)) != 0)
			return status;
	}
	const char *diag;
	int rc = dir_admin_ldap_delete(h, a, e->dn, &diag);
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, NULL,
					   arena_printf(a, "delete %s", e->dn));
	log_info(0, "diradmin", "user-deleted dn=\"%s\"", e->dn);
	return DIR_ADMIN_OK;
}

static int
rename_address(struct dir_admin *h, struct arena *a, const char *key, const char *new_address,
	       bool keep_old, struct dir_admin_user **user_r, struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	struct dir_ldap_entry *e;
	const char *addr;
	int status = dir_admin_check_address(h->cfg, a, "address", new_address, &addr, err);

	if (status != DIR_ADMIN_OK)
		return status;
	if ((status = dir_admin_find_entry(h, a, key, "user", true, false, &e, err)) != 0)
		return status;
	const char *old = lower_dup(a, dir_admin_attr1(e, dc->mail_attr));
	if (strcmp(old, addr) != 0) {
		bool own_alias = dir_admin_has_value(e, dc->alias_attr, addr);
		if (!own_alias &&
		    (status = dir_admin_address_free(h, a, addr, e->dn, "address", err)) != 0)
			return status;
		if (keep_old && old[0] != '\0' && dc->alias_attr[0] == '\0')
			return dir_admin_fail(a, err, DIR_ADMIN_UNSUPPORTED, "address",
					      "[directory] alias_attr is empty: the old address "
					      "cannot be kept");
		struct dir_admin_mods m;
		dir_admin_mods_init(&m, a);
		dir_admin_mod1(&m, LDAP_MOD_REPLACE, dc->mail_attr, addr);
		if (own_alias) {
			const struct dir_ldap_attr *at = dir_admin_attr(e, dc->alias_attr);
			for (size_t j = 0; j < at->nvals; j++)
				if (strcasecmp(at->vals[j], addr) == 0)
					dir_admin_mod1(&m, LDAP_MOD_DELETE, dc->alias_attr,
						       at->vals[j]);
		}
		if (keep_old && old[0] != '\0' && !dir_admin_has_value(e, dc->alias_attr, old))
			dir_admin_mod1(&m, LDAP_MOD_ADD, dc->alias_attr, old);
		if ((status = modify_user(h, a, e, &m, "address", err)) != 0)
			return status;
		log_info(0, "diradmin", "user-address dn=\"%s\" old=%s new=%s kept=%s", e->dn, old,
			 addr, keep_old ? "yes" : "no");
	}
	if (user_r != NULL)
		return read_user(h, a, e->dn, user_r, err);
	return DIR_ADMIN_OK;
}

static int
authenticate(struct dir_admin *h, struct arena *a, const char *login, const char *password,
	     struct dir_admin_user **user_r, bool *is_admin_r, struct dir_admin_error *err)
{
	static const char bad[] = "login or password incorrect";
	struct dir_ldap_entry *e;
	int status;

	*is_admin_r = false;
	/* RFC 4513 5.1.2: an empty password is an unauthenticated bind,
	 * which "succeeds"; refuse it before anything is sent. */
	if (password == NULL || password[0] == '\0' || login == NULL || login[0] == '\0' ||
	    strlen(login) > KEY_MAX)
		return dir_admin_fail(a, err, DIR_ADMIN_AUTHFAIL, NULL, bad);
	status = dir_admin_find_entry(h, a, login, "login", true, true, &e, err);
	if (status == DIR_ADMIN_NOTFOUND || status == DIR_ADMIN_INVALID ||
	    status == DIR_ADMIN_ERROR) {
		log_info(0, "diradmin", "admin-auth-failed login=%s reason=\"%s\"",
			 dir_admin_quote(a, login), err->message);
		return dir_admin_fail(a, err, DIR_ADMIN_AUTHFAIL, NULL, bad);
	}
	if (status != DIR_ADMIN_OK)
		return status;
	char *diag = NULL;
	int rc = dir_admin_bind_check(h, e->dn, password, &diag);
	if (rc != LDAP_SUCCESS) {
		log_info(0, "diradmin",
			 "admin-auth-failed dn=\"%s\" rc=%d error=\"%s\" diag=\"%s\"", e->dn, rc,
			 ldap_err2string(rc), diag != NULL ? diag : "");
		ldap_memfree(diag);
		if (dir_ldap_rc_is_temporary(rc))
			return dir_admin_fail(a, err, DIR_ADMIN_UNAVAILABLE, NULL,
					      "directory unavailable: %s", ldap_err2string(rc));
		return dir_admin_fail(a, err, DIR_ADMIN_AUTHFAIL, NULL, bad);
	}
	ldap_memfree(diag);
	const char *group = h->cfg->admin_group;
	if (group != NULL && group[0] != '\0') {
		struct dir_ldap_entry *g;
		size_t n;
		status = dir_admin_search(h, a, group, LDAP_SCOPE_BASE,
					  dir_admin_member_filter(h, a, e->dn), no_attrs, 1, &g, &n,
					  NULL, err);
		if (status != DIR_ADMIN_OK)
			return status;
		*is_admin_r = n > 0;
	}
	log_info(0, "diradmin", "admin-auth dn=\"%s\" admin=%s", e->dn, *is_admin_r ? "yes" : "no");
	if (user_r != NULL)
		*user_r = to_user(h, a, e, false);
	return DIR_ADMIN_OK;
}

static int
user_list(struct dir_admin *h, struct arena *a, struct dir_admin_user **users_r, size_t *n_r,
	  struct dir_admin_error *err)
{
	const struct directory_config *dc = h->dc;
	struct dir_ldap_entry *e, *dis = NULL;
	size_t n, ndis = 0;
	struct buf b;

	buf_init(&b, DIR_ADMIN_FILTER_MAX);
	int rc = dir_filter_expand_any(dc->user_filter, 'u', &b);
	const char *any = rc == 0 ? arena_strdup(a, buf_cstr(&b)) : NULL;
	buf_free(&b);
	int status = dir_admin_search(h, a, dc->base, LDAP_SCOPE_SUBTREE, any, h->user_attrs, 0, &e,
				      &n, NULL, err);
	if (status != DIR_ADMIN_OK)
		return status;
	const char *d = dc->disabled_filter;
	if (d != NULL && d[0] != '\0') {
		bool wrap = d[0] != '(';
		const char *f =
		    arena_printf(a, "(&%s%s%s%s)", any, wrap ? "(" : "", d, wrap ? ")" : "");
		status = dir_admin_search(h, a, dc->base, LDAP_SCOPE_SUBTREE, f, no_attrs, 0, &dis,
					  &ndis, NULL, err);
		if (status != DIR_ADMIN_OK)
			return status;
	}
	struct dir_admin_user *users = arena_alloc(a, (n + 1) * sizeof(*users));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (dir_admin_is_list(h, &e[i]))
			continue;
		bool disabled = false;
		/* XXX linear in the disabled entries, usually few. */
		for (size_t j = 0; j < ndis && !disabled; j++)
			disabled = strcasecmp(dis[j].dn, e[i].dn) == 0;
		users[k++] = *to_user(h, a, &e[i], disabled);
	}
	*users_r = users;
	*n_r = k;
	return DIR_ADMIN_OK;
}

/* ---- public entry points: the lock, then the work ---- */

int
dir_admin_authenticate(struct dir_admin *h, struct arena *a, const char *login,
		       const char *password, struct dir_admin_user **user_r, bool *is_admin_r,
		       struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, authenticate(h, a, login, password, user_r, is_admin_r, err));
}

int
dir_admin_user_list(struct dir_admin *h, struct arena *a, struct dir_admin_user **users_r,
		    size_t *n_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, user_list(h, a, users_r, n_r, err));
}

static int
user_get(struct dir_admin *h, struct arena *a, const char *key, struct dir_admin_user **user_r,
	 struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	bool disabled;
	int status = dir_admin_find_entry(h, a, key, "user", true, false, &e, err);

	if (status == DIR_ADMIN_OK)
		status = dir_admin_entry_disabled(h, a, e->dn, &disabled, err);
	if (status == DIR_ADMIN_OK)
		*user_r = to_user(h, a, e, disabled);
	return status;
}

int
dir_admin_user_get(struct dir_admin *h, struct arena *a, const char *key,
		   struct dir_admin_user **user_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, user_get(h, a, key, user_r, err));
}

int
dir_admin_user_create(struct dir_admin *h, struct arena *a, const struct dir_admin_user_spec *spec,
		      struct dir_admin_user **user_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, user_create(h, a, spec, user_r, err));
}

int
dir_admin_user_update(struct dir_admin *h, struct arena *a, const char *key,
		      const struct dir_admin_user_changes *ch, struct dir_admin_user **user_r,
		      struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, user_update(h, a, key, ch, user_r, err));
}

static int
set_password(struct dir_admin *h, struct arena *a, const char *key, const char *password,
	     struct dir_admin_error *err)
{
	struct dir_ldap_entry *e;
	int status = dir_admin_check_password(a, "password", password, err);

	if (status == DIR_ADMIN_OK)
		status = dir_admin_find_entry(h, a, key, "user", true, false, &e, err);
	if (status != DIR_ADMIN_OK)
		return status;
	const char *diag;
	int rc = dir_admin_ldap_passwd(h, a, e->dn, password, &diag);
	if (rc != LDAP_SUCCESS)
		return dir_admin_ldap_fail(a, err, rc, diag, "password",
					   arena_printf(a, "set the password of %s", e->dn));
	log_info(0, "diradmin", "user-password dn=\"%s\"", e->dn);
	write_scram(h, a, e->dn, password);
	return DIR_ADMIN_OK;
}

int
dir_admin_user_set_password(struct dir_admin *h, struct arena *a, const char *key,
			    const char *password, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, set_password(h, a, key, password, err));
}

int
dir_admin_user_set_disabled(struct dir_admin *h, struct arena *a, const char *key, bool disabled,
			    struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, set_disabled(h, a, key, disabled, err));
}

int
dir_admin_user_delete(struct dir_admin *h, struct arena *a, const char *key,
		      struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, user_delete(h, a, key, err));
}

int
dir_admin_user_rename_address(struct dir_admin *h, struct arena *a, const char *key,
			      const char *new_address, bool keep_old,
			      struct dir_admin_user **user_r, struct dir_admin_error *err)
{
	DIR_ADMIN_LOCKED(h, rename_address(h, a, key, new_address, keep_old, user_r, err));
}

int
dir_admin_alias_add(struct dir_admin *h, struct arena *a, const char *key, const char *alias,
		    struct dir_admin_error *err)
{
	struct dir_admin_user_changes ch = {.add_aliases = &alias, .nadd_aliases = 1};

	DIR_ADMIN_LOCKED(h, user_update(h, a, key, &ch, NULL, err));
}

int
dir_admin_alias_remove(struct dir_admin *h, struct arena *a, const char *key, const char *alias,
		       struct dir_admin_error *err)
{
	struct dir_admin_user_changes ch = {.remove_aliases = &alias, .nremove_aliases = 1};

	DIR_ADMIN_LOCKED(h, user_update(h, a, key, &ch, NULL, err));
}
