/*
 * dir_shape.c - pure helpers for directory shapes beyond inetOrgPerson
 * (dir_shape.h): AD proxyAddresses, bit flags, objectGUID, the in-chain
 * filter, member URLs and the nested-list walk.
 *
 * How it fails: nothing here does I/O. A malformed value is reported to
 * the caller (0 or -1), never guessed at: an unreadable flags value
 * counts as "bit set", so a broken userAccountControl disables rather
 * than enables an account.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldap.h>

#include "core/compat.h"
#include "directory/dir.h"
#include "directory/dir_ldap.h"
#include "directory/dir_shape.h"

int
dir_shape_proxy_address(const char *v, size_t len, const char **addr_r, size_t *len_r,
			bool *primary_r)
{
	const char *colon = memchr(v, ':', len);

	*addr_r = NULL;
	*len_r = 0;
	*primary_r = false;
	if (colon == NULL || colon - v != 4 || strncasecmp(v, "smtp", 4) != 0)
		return 0;
	const char *a = colon + 1;
	size_t n = len - 5;
	/* Stray blanks are common in hand-edited values. */
	while (n > 0 && (a[0] == ' ' || a[0] == '\t')) {
		a++;
		n--;
	}
	while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
		n--;
	const char *at = n > 0 ? memchr(a, '@', n) : NULL;
	if (at == NULL || at == a || at == a + n - 1 || memchr(a, '\0', n) != NULL)
		return 0;
	*addr_r = a;
	*len_r = n;
	*primary_r = strncmp(v, "SMTP", 4) == 0;
	return 1;
}

int
dir_shape_flags_set(const char *v, unsigned mask)
{
	char *end;

	while (*v == ' ')
		v++;
	if (*v == '\0')
		return -1;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < INT32_MIN || n > UINT32_MAX)
		return -1;
	/* Negative values are the same 32 bits, read as signed. */
	uint32_t bits = (uint32_t)(int64_t)n;
	return (bits & mask) != 0 ? 1 : 0;
}

const char *
dir_shape_format_id(struct arena *a, const char *attr, const char *v, size_t len)
{
	if (len == 16 && attr != NULL && strcasecmp(attr, "objectGUID") == 0) {
		const unsigned char *b = (const unsigned char *)v;
		return arena_printf(a,
				    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				    "%02x%02x%02x%02x%02x%02x",
				    b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9],
				    b[10], b[11], b[12], b[13], b[14], b[15]);
	}
	return dir_ldap_format_id(a, v, len);
}

int
dir_shape_inchain_filter(struct buf *out, const char *member_of, const char *group_dn,
			 char *const *list_classes)
{
	size_t start = out->len;

	if (buf_printf(out, "(&(%s:%s:=", member_of, DIR_SHAPE_RULE_IN_CHAIN) < 0 ||
	    dir_escape_filter_value(group_dn, strlen(group_dn), out) < 0 || buf_putc(out, ')') < 0)
		goto fail;
	if (list_classes != NULL && list_classes[0] != NULL) {
		if (buf_append_str(out, "(!(|") < 0)
			goto fail;
		for (char *const *c = list_classes; *c != NULL; c++)
			if (buf_append_str(out, "(objectClass=") < 0 ||
			    dir_escape_filter_value(*c, strlen(*c), out) < 0 ||
			    buf_putc(out, ')') < 0)
				goto fail;
		if (buf_append_str(out, "))") < 0)
			goto fail;
	}
	if (buf_putc(out, ')') < 0)
		goto fail;
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0'; /* buf.c's invariant */
	return -1;
}

int
dir_shape_member_url(struct arena *a, const char *url, const char *default_base,
		     const char **base_r, int *scope_r, const char **filter_r, const char **why_r)
{
	LDAPURLDesc *lud = NULL;

	*why_r = NULL;
	if (ldap_url_parse(url, &lud) != LDAP_URL_SUCCESS) {
		*why_r = "not an LDAP URL";
		return -1;
	}
	int rc = -1;
	if (lud->lud_host != NULL && lud->lud_host[0] != '\0') {
		*why_r = "names a server (only ldap:///... is followed)";
		goto out;
	}
	if (lud->lud_exts != NULL) {
		for (char **e = lud->lud_exts; *e != NULL; e++)
			if ((*e)[0] == '!') {
				*why_r = "has a critical extension";
				goto out;
			}
	}
	*base_r = arena_strdup(a, lud->lud_dn != NULL && lud->lud_dn[0] != '\0' ? lud->lud_dn
										: default_base);
	switch (lud->lud_scope) {
	case LDAP_SCOPE_ONELEVEL:
	case LDAP_SCOPE_SUBTREE:
	case LDAP_SCOPE_BASE:
		*scope_r = lud->lud_scope;
		break;
	default:
		*scope_r = LDAP_SCOPE_BASE; /* RFC 4516 section 2: the default */
		break;
	}
	*filter_r = arena_strdup(a, lud->lud_filter != NULL && lud->lud_filter[0] != '\0'
					? lud->lud_filter
					: "(objectClass=*)");
	rc = 0;
out:
	ldap_free_urldesc(lud);
	return rc;
}

void
dir_walk_init(struct dir_walk *w, unsigned max_depth, size_t max_lists)
{
	memset(w, 0, sizeof(*w));
	w->max_depth = max_depth;
	w->max_lists = max_lists;
}

enum dir_walk_step
dir_walk_enter(struct dir_walk *w, const char *dn, unsigned depth)
{
	/* DNs compare without case: the same entry reached through two
	 * member values written differently is still one list. (Not full
	 * RFC 4514 normalisation: "cn=a, ou=b" and "cn=a,ou=b" would be two;
	 * the depth and size caps still end such a walk.) */
	for (size_t i = 0; i < w->nseen; i++)
		if (strcasecmp(w->seen[i], dn) == 0)
			return DIR_WALK_CYCLE;
	if (depth >= w->max_depth)
		return DIR_WALK_TOO_DEEP;
	if (w->max_lists > 0 && w->nseen >= w->max_lists)
		return DIR_WALK_FULL;
	if (w->nseen == w->cap) {
		w->cap = w->cap == 0 ? 8 : w->cap * 2;
		w->seen = xrealloc(w->seen, w->cap * sizeof(*w->seen));
	}
	w->seen[w->nseen++] = dn;
	return DIR_WALK_ENTER;
}

void
dir_walk_free(struct dir_walk *w)
{
	free(w->seen);
	w->seen = NULL;
	w->nseen = w->cap = 0;
}
