/*
 * admin_lists.c - mailing lists (directory groups with an address) and
 * their members in tern-admind (docs/openapi.yaml, tag lists), through
 * the writer library (dir_admin.h) on a pooled handle (admin_dir.c).
 * {id} in a path is a list's name (cn) or its address; a member is a
 * user's login or address, another list's address, or (to remove one
 * whose entry is gone) its DN.
 *
 * Every successful write is followed by a "directory.flush" to the
 * running ternd, so that delivery to the list changes at once.
 * How it fails: admin_dir_reply() maps the directory's answer; renaming
 * a list (its cn, the RDN) is not supported yet: 501 naming "name".
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "admin/admin_internal.h"
#include "core/log.h"

static json_t *
list_json(const struct dir_admin_list *l)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(l->id));
	json_object_set_new(o, "dn", json_string(l->dn));
	json_object_set_new(o, "name", json_string(l->name));
	json_object_set_new(o, "address", json_string(l->address));
	json_object_set_new(o, "members_count", json_integer((json_int_t)l->nmembers));
	return o;
}

/* How a member is shown: its address, else its login, else its DN. */
static const char *
member_name(const struct dir_admin_member *m)
{
	if (m->mail[0] != '\0')
		return m->mail;
	if (m->login[0] != '\0')
		return m->login;
	return m->dn;
}

/* Adds "members" (strings) and "details" (objects) for list key to o.
 * 0, or -1 with the reply set. */
static int
add_members(struct admin_req *r, struct dir_admin *h, const char *key, json_t *o)
{
	struct dir_admin_member *m;
	struct dir_admin_error e = {0};
	size_t n;
	int st = dir_admin_list_members(h, r->arena, key, &m, &n, &e);

	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return -1;
	}
	json_t *names = json_array(), *details = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(names, json_string(member_name(&m[i])));
		json_t *d = json_object();
		json_object_set_new(d, "dn", json_string(m[i].dn));
		json_object_set_new(d, "login", json_string(m[i].login));
		json_object_set_new(d, "mail", json_string(m[i].mail));
		json_object_set_new(d, "is_list", json_boolean(m[i].is_list));
		json_object_set_new(d, "missing", json_boolean(m[i].missing));
		json_object_set_new(d, "disabled", json_boolean(m[i].disabled));
		json_array_append_new(details, d);
	}
	json_object_set_new(o, "members", names);
	json_object_set_new(o, "details", details);
	return 0;
}

/* The list with its members as the reply (status), or an error reply. */
static void
reply_list(struct admin_req *r, struct dir_admin *h, int status, const char *key)
{
	struct dir_admin_list *l = NULL;
	struct dir_admin_error e = {0};
	int st = dir_admin_list_get(h, r->arena, key, &l, &e);

	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	json_t *o = list_json(l);
	if (add_members(r, h, key, o) < 0) {
		json_decref(o);
		return;
	}
	admin_reply_json(r, status, o);
}

static void
written(struct admin_req *r, const char *what, const char *which)
{
	admin_dir_flush(r->cfg);
	r->summary = arena_printf(r->arena, "%s %s", what, which);
}

static void
handle_list_all(struct admin_req *r)
{
	struct dir_admin_list *lists;
	struct dir_admin_error e = {0};
	size_t n;
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	int st = dir_admin_list_all(h, r->arena, &lists, &n, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, list_json(&lists[i]));
	admin_reply_json(r, 200, json_pack("{s:o}", "lists", arr));
}

static int
body_text(struct admin_req *r, const char *field, bool required, const char **v_r)
{
	if (admin_body_string(r, field, required, v_r) < 0)
		return -1;
	if (*v_r != NULL && (*v_r)[0] == '\0') {
		admin_reply_error(r, 400, "bad_field", field, "%s must not be empty", field);
		return -1;
	}
	return 0;
}

static void
handle_list_create(struct admin_req *r)
{
	static const char *const keys[] = {"address", "name", "members", NULL};
	struct dir_admin_list *l = NULL;
	struct dir_admin_error e = {0};
	const char *address, *name;
	const char *const *members;
	size_t nmembers;

	if (admin_body_require(r, keys) < 0 || body_text(r, "address", true, &address) < 0 ||
	    body_text(r, "name", true, &name) < 0 ||
	    admin_body_strings(r, "members", &members, &nmembers) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st = dir_admin_list_create(h, r->arena, name, address, members, nmembers, &l, &e);
	if (st != DIR_ADMIN_OK) {
		if (e.field != NULL && strcmp(e.field, "member") == 0)
			e.field = "members";
		admin_dir_reply(r, st, &e);
		admin_dir_release(h);
		return;
	}
	written(r, "created", l->dn);
	reply_list(r, h, 201, l->address[0] != '\0' ? l->address : l->name);
	admin_dir_release(h);
}

static void
handle_list_get(struct admin_req *r)
{
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	reply_list(r, h, 200, admin_param(r, "id"));
	admin_dir_release(h);
}

static void
handle_list_patch(struct admin_req *r)
{
	static const char *const keys[] = {"name", "address", NULL};
	struct dir_admin_list *l = NULL;
	struct dir_admin_error e = {0};
	const char *name, *address;
	const char *key = admin_param(r, "id");

	if (admin_body_require(r, keys) < 0 || body_text(r, "name", false, &name) < 0 ||
	    body_text(r, "address", false, &address) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st = dir_admin_list_get(h, r->arena, key, &l, &e);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		goto out;
	}
	if (name != NULL && strcasecmp(name, l->name) != 0) {
		/* XXX renaming needs a modrdn in dir_admin. */
		admin_reply_error(r, 501, "unsupported", "name",
				  "a list cannot be renamed yet: create a new one and delete %s",
				  l->name);
		goto out;
	}
	if (address != NULL) {
		st = dir_admin_list_set_address(h, r->arena, key, address, &l, &e);
		if (st != DIR_ADMIN_OK) {
			admin_dir_reply(r, st, &e);
			goto out;
		}
		written(r, "address changed of", l->dn);
	}
	reply_list(r, h, 200, l->address[0] != '\0' ? l->address : l->name);
out:
	admin_dir_release(h);
}

static void
handle_list_delete(struct admin_req *r)
{
	struct dir_admin_error e = {0};
	const char *key = admin_param(r, "id");
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	int st = dir_admin_list_delete(h, r->arena, key, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	written(r, "deleted", key);
}

static void
handle_members_get(struct admin_req *r)
{
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	json_t *o = json_object();
	if (add_members(r, h, admin_param(r, "id"), o) == 0)
		admin_reply_json(r, 200, o);
	else
		json_decref(o);
	admin_dir_release(h);
}

static void
handle_member_add(struct admin_req *r)
{
	static const char *const keys[] = {"member", NULL};
	struct dir_admin_error e = {0};
	const char *member, *key = admin_param(r, "id");

	if (admin_body_require(r, keys) < 0 || body_text(r, "member", true, &member) < 0)
		return;
	struct dir_admin *h = admin_dir_get(r);
	if (h == NULL)
		return;
	int st = dir_admin_list_add_member(h, r->arena, key, member, &e);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		admin_dir_release(h);
		return;
	}
	written(r, arena_printf(r->arena, "member %s added to", member), key);
	json_t *o = json_object();
	if (add_members(r, h, key, o) == 0)
		admin_reply_json(r, 200, o);
	else
		json_decref(o);
	admin_dir_release(h);
}

static void
handle_member_remove(struct admin_req *r)
{
	struct dir_admin_error e = {0};
	const char *key = admin_param(r, "id"), *member = admin_param(r, "member");
	struct dir_admin *h = admin_dir_get(r);

	if (h == NULL)
		return;
	int st = dir_admin_list_remove_member(h, r->arena, key, member, &e);
	admin_dir_release(h);
	if (st != DIR_ADMIN_OK) {
		admin_dir_reply(r, st, &e);
		return;
	}
	admin_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
	written(r, arena_printf(r->arena, "member %s removed from", member), key);
}

static const struct admin_route list_routes[] = {
    {"GET", "/api/v1/lists", handle_list_all, 0},
    {"POST", "/api/v1/lists", handle_list_create, 0},
    {"GET", "/api/v1/lists/{id}", handle_list_get, 0},
    {"PATCH", "/api/v1/lists/{id}", handle_list_patch, 0},
    {"DELETE", "/api/v1/lists/{id}", handle_list_delete, 0},
    {"GET", "/api/v1/lists/{id}/members", handle_members_get, 0},
    {"POST", "/api/v1/lists/{id}/members", handle_member_add, 0},
    {"DELETE", "/api/v1/lists/{id}/members/{member}", handle_member_remove, 0},
};

void
admin_list_routes(void)
{
	admin_routes_register(list_routes, ARRAY_SIZE(list_routes));
}
