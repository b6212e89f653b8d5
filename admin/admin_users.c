/*
 * admin_users.c - provisioning of users and aliases in tern-admind
 * (docs/openapi.yaml, tags users and aliases), written to the directory
 * through the writer library (dir_admin.h) on a pooled handle
 * (admin_dir.c). {id} in a path is a user's login or any of their
 * addresses.
 *
 * Every successful write is followed by a "directory.flush" to the
 * running ternd, so that mail and logins see the change at once.
 * Validation is dir_admin's (it names the field); this file checks the
 * JSON shapes and refuses unknown keys.
 * How it fails: admin_dir_reply() maps the directory's answer to the
 * HTTP status; the password is passed on and never logged (the audit log
 * redacts it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "admin/admin_internal.h"
#include "core/log.h"
#include "storage/store.h"
#include "storage/store_admin.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

/* ---- JSON ---- */

static json_t *
admin_user_json(const struct dir_admin_user *u)
{
	json_t *aliases = json_array();

	for (size_t i = 0; i < u->naliases; i++)
		json_array_append_new(aliases, json_string(u->aliases[i]));
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(u->id));
	json_object_set_new(o, "dn", json_string(u->dn));
	json_object_set_new(o, "login", json_string(u->login));
	json_object_set_new(o, "mail", json_string(u->mail));
	json_object_set_new(o, "aliases", aliases);
	json_object_set_new(o, "name", json_string(u->display_name));
	json_object_set_new(o, "quota",
			    u->quota > 0 ? json_integer((json_int_t)u->quota) : json_null());
	json_object_set_new(o, "disabled", json_boolean(u->disabled));
	/* json_string gives NULL for invalid UTF-8 (a directory may hold
	 * anything in cn): set_new then drops the key, which is better than
	 * a reply that cannot be encoded. */
	return o;
}

/* The quota field: an integer (bytes), a string with a unit ("512M"),
 * or null (no quota). *present_r false when the key is absent; *q_r is
 * what dir_admin takes ("" removes the quota). -1 with a 400 otherwise. */
static int
body_quota(struct admin_req *r, bool *present_r, const char **q_r)
{
	json_t *v = json_object_get(r->body, "quota");

	*present_r = v != NULL;
	*q_r = NULL;
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		*q_r = "";
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*q_r = arena_printf(r->arena, "%" PRIu64, (uint64_t)json_integer_value(v));
		return 0;
	}
	if (json_is_string(v) && json_string_length(v) > 0) {
		*q_r = json_string_value(v);
		return 0;
	}
	admin_reply_error(r, 400, "bad_field", "quota",
			  "quota must be a number of bytes (0 or more), a size such as "
			  "\"512M\", or null");
	return -1;
}

/* A string field that must not be empty when given. */
static int
body_nonempty(struct admin_req *r, const char *field, bool required, const char **v_r)
{
	if (admin_body_string(r, field, required, v_r) < 0)
		return -1;
	if (*v_r != NULL && (*v_r)[0] == '\0') {
		admin_reply_error(r, 400, "bad_field", field, "%s must not be empty", field);
		return -1;
	}
	return 0;
}

/* dir_admin names its own inputs ("display_name"); the reply names the
 * JSON field the admin sent ("name"). */
static void
field_as(struct dir_admin_error *e, const char *lib, const char *json)
{
	if (e->field != NULL && strcmp(e->field, lib) == 0)
		e->field = json;
}

/* True for the text form of a UUID (entryUUID, objectGUID as ids). */
static bool
looks_like_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : strchr("0123456789abcdefABCDEF", s[i]) == NULL)
			return false;
	}
	return true;
}

/* A user key as dir_admin takes it (a login or an address): a stable id
 * (what the store and GET /api/v1/mailboxes show) is mapped to the
 * user's login. XXX by listing every user: dir_admin has no search by
 * id_attr. Anything else, and a failed look-up, is passed on as it is
 * (the call that follows reports the directory's answer). */
static const char *
user_key(struct admin_req *r, struct dir_admin *h, const char *key)
{
	struct dir_admin_user *users;
	struct dir_admin_error e = {0};
	size_t n;

	if (key == NULL || !looks_like_uuid(key) ||
	    dir_admin_user_list(h, r->arena, &users, &n, &e) != DIR_ADMIN_OK)
		return key;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(users[i].id, key) == 0)
			return users[i].login[0] != '\0' ? users[i].login : users[i].mail;
	return key;
}

/* One user by path {id} with the reply set on failure. */
static struct dir_admin_user *
get_user(struct admin_req *r, struct dir_admin *h, const char *key)
{
	struct dir_admin_user *u = NULL;
	struct dir_admin_error e = {0};
	int st = dir_admin_user_get(h, r->arena, key, &u, &e);

	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return NULL;
	}
	return u;
}

/* After a write: ternd forgets what it cached; the audit line says what. */
static void
written(struct admin_req *r, const char *what, const char *who)
{
	admin_dir_flush(r->cfg);
	r->summary = arena_printf(r->arena, "%s %s", what, who);
}

/* ---- users ---- */

static int
cmp_login(const void *x, const void *y)
{
	const struct dir_admin_user *a = x, *b = y;

	return strcmp(a->login, b->login);
}

static bool
user_matches(const struct dir_admin_user *u, const char *q)
{
	if (strcasestr(u->login, q) != NULL || strcasestr(u->mail, q) != NULL ||
	    strcasestr(u->display_name, q) != NULL)
		return true;
	for (size_t i = 0; i < u->naliases; i++)
		if (strcasestr(u->aliases[i], q) != NULL)
			return true;
	return false;
}

/* limit=: 1..LIST_LIMIT_MAX; 0 or -1 with a 400. */
static int
query_limit(struct admin_req *r, unsigned *limit_r)
{
	const char *s = admin_query(r, "limit");
	char *end;

	*limit_r = LIST_LIMIT_DEFAULT;
	if (s == NULL)
		return 0;
	unsigned long v = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || v < 1 || v > LIST_LIMIT_MAX) {
		admin_reply_error(r, 400, "bad_field", "limit", "limit must be 1..%d",
				  LIST_LIMIT_MAX);
		return -1;
	}
	*limit_r = (unsigned)v;
	return 0;
}

/* GET /api/v1/users?q=&limit=&cursor=: ordered by login; the cursor is
 * the last login of the previous page. */
static void
handle_user_list(struct admin_req *r)
{
	struct dir_admin_user *users;
	struct dir_admin_error e = {0};
	size_t n;
	unsigned limit;
	const char *q = admin_query(r, "q"), *cursor = admin_query(r, "cursor");

	if (query_limit(r, &limit) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st = dir_admin_user_list(h, r->arena, &users, &n, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	qsort(users, n, sizeof(*users), cmp_login);
	json_t *arr = json_array();
	const char *last = NULL;
	bool more = false;
	for (size_t i = 0; i < n; i++) {
		if (cursor != NULL && strcmp(users[i].login, cursor) <= 0)
			continue;
		if (q != NULL && q[0] != '\0' && !user_matches(&users[i], q))
			continue;
		if (json_array_size(arr) == limit) {
			more = true;
			break;
		}
		json_array_append_new(arr, admin_user_json(&users[i]));
		last = users[i].login;
	}
	json_t *body = json_object();
	json_object_set_new(body, "users", arr);
	json_object_set_new(body, "next_cursor",
			    more && last != NULL ? json_string(last) : json_null());
	admin_reply_json(r, 200, body);
}

static void
handle_user_create(struct admin_req *r)
{
	static const char *const keys[] = {"mail",    "password", "login", "name",
					   "surname", "aliases",  "quota", NULL};
	struct dir_admin_user_spec spec = {0};
	struct dir_admin_error e = {0};
	struct dir_admin_user *u = NULL;
	bool has_quota;

	if (admin_body_require(r, keys) < 0 || body_nonempty(r, "mail", true, &spec.mail) < 0 ||
	    body_nonempty(r, "password", true, &spec.password) < 0 ||
	    body_nonempty(r, "login", false, &spec.login) < 0 ||
	    body_nonempty(r, "name", false, &spec.display_name) < 0 ||
	    body_nonempty(r, "surname", false, &spec.surname) < 0 ||
	    admin_body_strings(r, "aliases", &spec.aliases, &spec.naliases) < 0 ||
	    body_quota(r, &has_quota, &spec.quota) < 0)
		return;
	if (spec.login == NULL) {
		/* The login defaults to the local part of the address;
		 * dir_admin checks it names "login" if it does not fit. */
		const char *at = strchr(spec.mail, '@');
		spec.login = at != NULL
				 ? arena_strndup(r->arena, spec.mail, (size_t)(at - spec.mail))
				 : spec.mail;
	}
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st = dir_admin_user_create(h, r->arena, &spec, &u, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		field_as(&e, "display_name", "name");
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 201, admin_user_json(u));
	written(r, "created", u->dn);
}

static void
handle_user_get(struct admin_req *r)
{
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	struct dir_admin_user *u = get_user(r, h, user_key(r, h, admin_param(r, "id")));
	admin_dir_release(h);
	if (u != NULL)
		admin_reply_json(r, 200, admin_user_json(u));
}

static bool
has_addr(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i], s) == 0)
			return true;
	return false;
}

/* PATCH: name, surname, quota, aliases (the whole new set). */
static void
handle_user_patch(struct admin_req *r)
{
	static const char *const keys[] = {"name", "surname", "aliases", "quota", NULL};
	struct dir_admin_user_changes ch = {0};
	struct dir_admin_error e = {0};
	const char *const *aliases;
	size_t naliases;
	bool has_quota;

	if (admin_body_require(r, keys) < 0 ||
	    body_nonempty(r, "name", false, &ch.display_name) < 0 ||
	    body_nonempty(r, "surname", false, &ch.surname) < 0 ||
	    admin_body_strings(r, "aliases", &aliases, &naliases) < 0 ||
	    body_quota(r, &has_quota, &ch.quota) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	struct dir_admin_user *u = get_user(r, h, user_key(r, h, admin_param(r, "id")));
	if (u == NULL)
		goto out;
	if (aliases != NULL) {
		const char **add = arena_alloc(r->arena, (naliases + 1) * sizeof(*add));
		const char **del = arena_alloc(r->arena, (u->naliases + 1) * sizeof(*del));
		for (size_t i = 0; i < naliases; i++)
			if (!has_addr(u->aliases, u->naliases, aliases[i]) &&
			    !has_addr(add, ch.nadd_aliases, aliases[i]))
				add[ch.nadd_aliases++] = aliases[i];
		for (size_t i = 0; i < u->naliases; i++)
			if (!has_addr(aliases, naliases, u->aliases[i]))
				del[ch.nremove_aliases++] = u->aliases[i];
		ch.add_aliases = add;
		ch.remove_aliases = del;
	}
	bool change = ch.display_name != NULL || ch.surname != NULL || ch.quota != NULL ||
		      ch.nadd_aliases > 0 || ch.nremove_aliases > 0;
	if (!change) {
		admin_reply_json(r, 200, admin_user_json(u));
		r->summary = "no change";
		goto out;
	}
	/* The login as the key: {id} may be an alias this call drops. */
	struct dir_admin_user *nu = NULL;
	int st = dir_admin_user_update(h, r->arena, u->login[0] != '\0' ? u->login : u->mail, &ch,
				       &nu, &e);
	if (st != DIR_ADMIN_OK) {
		field_as(&e, "display_name", "name");
		admin_dir_reply(r, st, &e);
		goto out;
	}
	admin_reply_json(r, 200, admin_user_json(nu));
	written(r, "updated", nu->dn);
out:
	admin_dir_release(h);
}

static void
handle_user_delete(struct admin_req *r)
{
	struct dir_admin_error e = {0};
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	const char *key = user_key(r, h, admin_param(r, "id"));
	int st = dir_admin_user_delete(h, r->arena, key, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	written(r, "deleted", key);
}

static void
set_disabled(struct admin_req *r, bool disabled)
{
	struct dir_admin_error e = {0};
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	const char *key = user_key(r, h, admin_param(r, "id"));
	int st = dir_admin_user_set_disabled(h, r->arena, key, disabled, &e);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		admin_dir_release(h);
		return;
	}
	/* Flushed even if the read back fails: the write happened. */
	written(r, disabled ? "disabled" : "enabled", key);
	struct dir_admin_user *u = get_user(r, h, key);
	admin_dir_release(h);
	if (u != NULL)
		admin_reply_json(r, 200, admin_user_json(u));
}

static void
handle_user_disable(struct admin_req *r)
{
	if (r->body != NULL && admin_body_require(r, (const char *const[]){NULL}) < 0)
		return;
	set_disabled(r, true);
}

static void
handle_user_enable(struct admin_req *r)
{
	if (r->body != NULL && admin_body_require(r, (const char *const[]){NULL}) < 0)
		return;
	set_disabled(r, false);
}

static void
handle_user_password(struct admin_req *r)
{
	static const char *const keys[] = {"password", NULL};
	struct dir_admin_error e = {0};
	const char *password;

	if (admin_body_require(r, keys) < 0 || body_nonempty(r, "password", true, &password) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	const char *key = user_key(r, h, admin_param(r, "id"));
	int st = dir_admin_user_set_password(h, r->arena, key, password, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, json_pack("{s:b}", "password_set", 1));
	written(r, "password set for", key);
}

static void
handle_user_rename(struct admin_req *r)
{
	static const char *const keys[] = {"mail", "keep_old_as_alias", NULL};
	struct dir_admin_error e = {0};
	struct dir_admin_user *u = NULL;
	const char *mail;
	bool keep;

	if (admin_body_require(r, keys) < 0 || body_nonempty(r, "mail", true, &mail) < 0 ||
	    admin_body_bool(r, "keep_old_as_alias", true, &keep) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st = dir_admin_user_rename_address(h, r->arena, user_key(r, h, admin_param(r, "id")),
					       mail, keep, &u, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		field_as(&e, "address", "mail");
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, admin_user_json(u));
	written(r, "renamed", u->dn);
}

/* The quota and what the store counts for the user (null when the store
 * cannot be read now, 0 before the first delivery). */
static json_t *
quota_json(struct admin_req *r, const struct dir_admin_user *u)
{
	json_t *o = json_object();
	json_t *bytes = json_null(), *msgs = json_null();
	char *err = NULL;

	json_object_set_new(o, "quota",
			    u->quota > 0 ? json_integer((json_int_t)u->quota) : json_null());
	if (u->id[0] != '\0' && admin_store_acquire(r->cfg, &err) == 0) {
		struct store_user_summary sum;
		int rc = store_user_get(u->id, r->arena, &sum);
		if (rc == STORE_OK) {
			json_decref(bytes);
			json_decref(msgs);
			bytes = json_integer((json_int_t)sum.bytes);
			msgs = json_integer((json_int_t)sum.messages);
		} else if (rc == STORE_NOTFOUND) {
			json_decref(bytes);
			json_decref(msgs);
			bytes = json_integer(0);
			msgs = json_integer(0);
		}
		admin_store_release();
	} else {
		log_debug(0, "admin", "quota-usage-unavailable error=\"%s\"",
			  err != NULL ? err : "no id");
	}
	free(err);
	json_object_set_new(o, "bytes", bytes);
	json_object_set_new(o, "messages", msgs);
	return o;
}

static void
handle_quota_get(struct admin_req *r)
{
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	struct dir_admin_user *u = get_user(r, h, user_key(r, h, admin_param(r, "id")));
	admin_dir_release(h);
	if (u != NULL)
		admin_reply_json(r, 200, quota_json(r, u));
}

static void
handle_quota_put(struct admin_req *r)
{
	static const char *const keys[] = {"quota", NULL};
	struct dir_admin_user_changes ch = {0};
	struct dir_admin_error e = {0};
	struct dir_admin_user *u = NULL;
	bool has_quota;

	if (admin_body_require(r, keys) < 0 || body_quota(r, &has_quota, &ch.quota) < 0)
		return;
	if (!has_quota) {
		admin_reply_error(r, 400, "missing_field", "quota",
				  "quota is required (bytes, a size such as \"512M\", or null)");
		return;
	}
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st =
	    dir_admin_user_update(h, r->arena, user_key(r, h, admin_param(r, "id")), &ch, &u, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, quota_json(r, u));
	written(r, "quota set for", u->dn);
}

/* ---- aliases ---- */

static void
add_aliases(json_t *arr, const struct dir_admin_user *u)
{
	for (size_t i = 0; i < u->naliases; i++)
		json_array_append_new(
		    arr, json_pack("{s:s, s:s}", "address", u->aliases[i], "user", u->login));
}

/* GET /api/v1/aliases[?user=]: every alias address with its user. */
static void
handle_alias_list(struct admin_req *r)
{
	struct dir_admin_error e = {0};
	const char *user = admin_query(r, "user");
	json_t *arr = json_array();
	int st;

	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL) {
		json_decref(arr);
		return;
	}
	if (user != NULL) {
		struct dir_admin_user *u = NULL;
		st = dir_admin_user_get(h, r->arena, user_key(r, h, user), &u, &e);
		if (st == DIR_ADMIN_OK)
			add_aliases(arr, u);
	} else {
		struct dir_admin_user *users;
		size_t n;
		st = dir_admin_user_list(h, r->arena, &users, &n, &e);
		if (st == DIR_ADMIN_OK) {
			qsort(users, n, sizeof(*users), cmp_login);
			for (size_t i = 0; i < n; i++)
				add_aliases(arr, &users[i]);
		}
	}
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		json_decref(arr);
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, json_pack("{s:o}", "aliases", arr));
}

static void
handle_alias_add(struct admin_req *r)
{
	static const char *const keys[] = {"address", "user", NULL};
	struct dir_admin_error e = {0};
	const char *address, *user;

	if (admin_body_require(r, keys) < 0 || body_nonempty(r, "address", true, &address) < 0 ||
	    body_nonempty(r, "user", true, &user) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	user = user_key(r, h, user);
	int st = dir_admin_alias_add(h, r->arena, user, address, &e);
	if (st != DIR_ADMIN_OK) {
		/* The user is the one thing the library calls "user" or
		 * "login"; the body calls it "user". */
		field_as(&e, "login", "user");
		field_as(&e, "aliases", "address");
		admin_dir_reply(r, st, &e);
		admin_dir_release(h);
		return;
	}
	written(r, "alias added to", user);
	struct dir_admin_user *u = get_user(r, h, user);
	admin_dir_release(h);
	if (u == NULL)
		return;
	/* The address as stored (lower-cased). */
	const char *stored = address;
	for (size_t i = 0; i < u->naliases; i++)
		if (strcasecmp(u->aliases[i], address) == 0)
			stored = u->aliases[i];
	admin_reply_json(r, 201, json_pack("{s:s, s:s}", "address", stored, "user", u->login));
}

static void
handle_alias_delete(struct admin_req *r)
{
	struct dir_admin_error e = {0};
	const char *address = admin_param(r, "address");

	if (strchr(address, '@') == NULL) {
		admin_reply_error(r, 400, "bad_field", "address", "%s is not an address", address);
		return;
	}
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	struct dir_admin_user *u = get_user(r, h, address);
	if (u == NULL)
		goto out;
	if (strcasecmp(u->mail, address) == 0) {
		admin_reply_error(r, 409, "primary_address", "address",
				  "%s is the primary address of %s, not an alias (rename the "
				  "user instead)",
				  u->mail, u->login);
		goto out;
	}
	int st = dir_admin_alias_remove(h, r->arena, address, address, &e);
	if (st != DIR_ADMIN_OK) {
		field_as(&e, "aliases", "address");
		admin_dir_reply(r, st, &e);
		goto out;
	}
	admin_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	written(r, "alias removed from", u->dn);
out:
	admin_dir_release(h);
}

static const struct admin_route user_routes[] = {
    {"GET", "/api/v1/users", handle_user_list, 0},
    {"POST", "/api/v1/users", handle_user_create, 0},
    {"GET", "/api/v1/users/{id}", handle_user_get, 0},
    {"PATCH", "/api/v1/users/{id}", handle_user_patch, 0},
    {"DELETE", "/api/v1/users/{id}", handle_user_delete, 0},
    {"POST", "/api/v1/users/{id}/disable", handle_user_disable, 0},
    {"POST", "/api/v1/users/{id}/enable", handle_user_enable, 0},
    {"POST", "/api/v1/users/{id}/password", handle_user_password, 0},
    {"POST", "/api/v1/users/{id}/rename", handle_user_rename, 0},
    {"GET", "/api/v1/users/{id}/quota", handle_quota_get, 0},
    {"PUT", "/api/v1/users/{id}/quota", handle_quota_put, 0},
    {"GET", "/api/v1/aliases", handle_alias_list, 0},
    {"POST", "/api/v1/aliases", handle_alias_add, 0},
    {"DELETE", "/api/v1/aliases/{address}", handle_alias_delete, 0},
};

void
admin_provision_routes(void)
{
	admin_routes_register(user_routes, ARRAY_SIZE(user_routes));
	admin_list_routes();
}
