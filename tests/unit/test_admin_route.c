/*
 * test_admin_route.c - tern-admind's route matcher (admin/admin_route.c):
 * method + path pattern with {param} segments, 404 vs 405 with the Allow
 * list, literal segments preferred over parameters, percent-decoding of
 * parameters, and paths that must never match (traversal, empty
 * segments, bad escapes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "admin/admin.h"
#include "core/arena.h"

static void
h_users(struct admin_req *r)
{
	(void)r;
}
static void
h_user(struct admin_req *r)
{
	(void)r;
}
static void
h_user_patch(struct admin_req *r)
{
	(void)r;
}
static void
h_disable(struct admin_req *r)
{
	(void)r;
}
static void
h_members(struct admin_req *r)
{
	(void)r;
}
static void
h_queue_one(struct admin_req *r)
{
	(void)r;
}
static void
h_queue_stats(struct admin_req *r)
{
	(void)r;
}
static void
h_create(struct admin_req *r)
{
	(void)r;
}

static const struct admin_route routes[] = {
    {"GET", "/api/v1/users", h_users, 0},
    {"POST", "/api/v1/users", h_create, 0},
    {"GET", "/api/v1/users/{id}", h_user, 0},
    {"PATCH", "/api/v1/users/{id}", h_user_patch, 0},
    {"POST", "/api/v1/users/{id}/disable", h_disable, 0},
    {"DELETE", "/api/v1/lists/{list}/members/{member}", h_members, 0},
    /* Registered before the literal on purpose: the literal still wins. */
    {"GET", "/api/v1/queue/{id}", h_queue_one, 0},
    {"GET", "/api/v1/queue/stats", h_queue_stats, 0},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

struct match_case {
	const char *method;
	const char *path;
	enum admin_match want;
	admin_handler_fn *handler; /* on OK */
	const char *p1_name, *p1_value, *p2_name, *p2_value;
	const char *allow; /* on NO_METHOD */
};

static const struct match_case cases[] = {
    {"GET", "/api/v1/users", ADMIN_MATCH_OK, h_users, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/", ADMIN_MATCH_OK, h_users, NULL, NULL, NULL, NULL, NULL},
    {"POST", "/api/v1/users", ADMIN_MATCH_OK, h_create, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/alice%40example.test", ADMIN_MATCH_OK, h_user, "id",
     "alice@example.test", NULL, NULL, NULL},
    {"PATCH", "/api/v1/users/bob", ADMIN_MATCH_OK, h_user_patch, "id", "bob", NULL, NULL, NULL},
    {"POST", "/api/v1/users/bob/disable", ADMIN_MATCH_OK, h_disable, "id", "bob", NULL, NULL, NULL},
    {"DELETE", "/api/v1/lists/staff/members/uid%3Dbob", ADMIN_MATCH_OK, h_members, "list", "staff",
     "member", "uid=bob", NULL},
    {"GET", "/api/v1/queue/stats", ADMIN_MATCH_OK, h_queue_stats, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/queue/00ff", ADMIN_MATCH_OK, h_queue_one, "id", "00ff", NULL, NULL, NULL},
    /* 405 with every method the path has, once each. */
    {"DELETE", "/api/v1/users", ADMIN_MATCH_NO_METHOD, NULL, NULL, NULL, NULL, NULL, "GET, POST"},
    {"PUT", "/api/v1/users/bob", ADMIN_MATCH_NO_METHOD, NULL, NULL, NULL, NULL, NULL, "GET, PATCH"},
    {"GET", "/api/v1/users/bob/disable", ADMIN_MATCH_NO_METHOD, NULL, NULL, NULL, NULL, NULL,
     "POST"},
    /* 404s. */
    {"GET", "/api/v1/user", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/bob/extra/deep", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL,
     NULL},
    {"GET", "/api/v1//users", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "api/v1/users", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/..", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/%2e%2e", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/a%2Fb", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/bad%zz", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/trunc%4", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/api/v1/users/nul%00", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL, NULL, NULL},
    {"GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", ADMIN_MATCH_NO_PATH, NULL, NULL, NULL, NULL,
     NULL, NULL},
    /* Methods are case-sensitive (RFC 9110 9.1). */
    {"get", "/api/v1/users", ADMIN_MATCH_NO_METHOD, NULL, NULL, NULL, NULL, NULL, "GET, POST"},
};

static void
test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct match_case *c = &cases[i];
		struct arena *a = arena_new(0);
		const struct admin_route *route;
		struct admin_param *params;
		size_t np;
		const char *allow;
		enum admin_match m = admin_route_match(routes, NROUTES, c->method, c->path, a,
						       &route, &params, &np, &allow);
		if (m != c->want)
			fail_msg("case %zu %s %s: got %d want %d", i, c->method, c->path, (int)m,
				 (int)c->want);
		if (m == ADMIN_MATCH_OK) {
			assert_non_null(route);
			assert_ptr_equal(route->handler, c->handler);
			size_t want_np = c->p2_name != NULL ? 2 : c->p1_name != NULL ? 1 : 0;
			assert_int_equal(np, want_np);
			if (want_np >= 1) {
				assert_string_equal(params[0].name, c->p1_name);
				assert_string_equal(params[0].value, c->p1_value);
			}
			if (want_np == 2) {
				assert_string_equal(params[1].name, c->p2_name);
				assert_string_equal(params[1].value, c->p2_value);
			}
		} else {
			assert_null(route);
		}
		if (m == ADMIN_MATCH_NO_METHOD)
			assert_string_equal(allow, c->allow);
		arena_destroy(&a);
	}
}

static void
test_param_lookup(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	const struct admin_route *route;
	struct admin_param *params;
	size_t np;
	const char *allow;
	assert_int_equal(admin_route_match(routes, NROUTES, "DELETE",
					   "/api/v1/lists/staff/members/bob", a, &route, &params,
					   &np, &allow),
			 ADMIN_MATCH_OK);
	struct admin_req r;
	memset(&r, 0, sizeof(r));
	r.params = params;
	r.nparams = np;
	assert_string_equal(admin_param(&r, "list"), "staff");
	assert_string_equal(admin_param(&r, "member"), "bob");
	assert_null(admin_param(&r, "id"));
	arena_destroy(&a);
}

static void
test_empty_table(void **state)
{
	(void)state;
	struct arena *a = arena_new(0);
	const struct admin_route *route;
	struct admin_param *params;
	size_t np;
	const char *allow;
	assert_int_equal(
	    admin_route_match(routes, 0, "GET", "/api/v1/users", a, &route, &params, &np, &allow),
	    ADMIN_MATCH_NO_PATH);
	arena_destroy(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_table),
	    cmocka_unit_test(test_param_lookup),
	    cmocka_unit_test(test_empty_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
