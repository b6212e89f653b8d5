/*
 * authres.h - the Authentication-Results header (RFC 8601) Tern adds to
 * inbound mail: the results of one transaction's checks (SPF, DKIM and
 * DMARC) collected in a struct authres, rendered once at the
 * end of the message; and the removal of headers that claim our
 * authserv-id (forgeries, RFC 8601 5).
 *
 * Pure: no I/O; strings added are borrowed and must outlive the render.
 */
#ifndef TERN_AUTHRES_H
#define TERN_AUTHRES_H

#include <stddef.h>

struct buf;

#define AUTHRES_MAX 8
#define AUTHRES_PROPS 4 /* dkim: header.d, header.s, header.b */

struct authres_prop {
	const char *prop; /* "header.d", "policy.dmarc", ... */
	const char *value;
};

struct authres_entry {
	const char *method; /* "spf", "dkim", "dmarc" */
	const char *result; /* "pass", "temperror", ... */
	const char *reason; /* comment, or NULL */
	const char *prop;   /* "smtp.mailfrom", "header.d", ... or NULL */
	const char *value;
	struct authres_prop more[AUTHRES_PROPS - 1]; /* after prop, in order */
	size_t nmore;
};

struct authres {
	struct authres_entry e[AUTHRES_MAX];
	size_t n;
};

/* Adds a result (ignored past AUTHRES_MAX). */
void authres_add(struct authres *ar, const char *method, const char *result, const char *reason,
		 const char *prop, const char *value);
/* Adds a property to the result added last (ignored when there is none,
 * or past AUTHRES_PROPS). */
void authres_add_prop(struct authres *ar, const char *prop, const char *value);
/* Appends "Authentication-Results: id; ...\r\n" (folded) to out; "none"
 * when nothing was checked. 0 or -1 if out is full. */
int authres_render(const struct authres *ar, const char *authserv_id, struct buf *out);
/* Removes, in place, every Authentication-Results field (with its
 * continuation lines) of the header section at hdr..hdr+len whose
 * authserv-id is authserv_id (case-insensitive). Returns the new length;
 * *removed_r counts the fields removed. Stops at the empty line. */
size_t authres_strip(char *hdr, size_t len, const char *authserv_id, unsigned *removed_r);

#endif
