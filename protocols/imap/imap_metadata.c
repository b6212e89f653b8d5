/*
 * imap_metadata.c - METADATA and METADATA-SERVER (RFC 5464): GETMETADATA
 * and SETMETADATA on server entries (mailbox "") and on the user's own
 * mailboxes.
 *
 * "/private/..." entries are the user's own, "/shared/..." ones belong to
 * the mailbox; both are kept in the store's `annot` db (store_annot.c)
 * with their names lower-cased (names are case-insensitive, RFC 5464
 * 3.2). Computed, read-only entries: the server's /shared/admin and
 * /shared/comment from [imap] metadata_admin and metadata_comment (absent
 * while unset), and a mailbox's /private/specialuse (RFC 6154 4), its
 * special-use attributes. Shared server entries cannot be set over IMAP
 * (NO [NOPERM]: RFC 5464 3.3 lets a server restrict them) and
 * /private/specialuse is set by CREATE ... (USE (...)) only (NO
 * [CANNOT]). GETMETADATA answers a requested entry that has no value and
 * nothing below it with NIL. Values are nstring or literal8; one holding
 * a NUL is sent back as literal8. Unsolicited METADATA responses (entry
 * names only, RFC 5464 4.4.2) go to clients that asked for them with
 * NOTIFY's MailboxMetadataChange and ServerMetadataChange
 * (imap_notify.c, through imap_metadata_notify); none are sent without
 * NOTIFY, which RFC 5464 4.4 allows (they are a MAY).
 *
 * Failure: BAD for syntax and invalid entry names (RFC 5464 3.2); NO
 * [NONEXISTENT] for a mailbox that does not exist; NO [METADATA MAXSIZE
 * n] and NO [METADATA TOOMANY] past [limits] imap_metadata_max_size and
 * imap_metadata_max_entries; NO [UNAVAILABLE] when the store cannot
 * answer. A SETMETADATA that fails changes nothing (one transaction).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/imap/imap_internal.h"

#define METADATA_OUT_MAX (1ull << 30) /* one METADATA response, bytes */
/* Entry names in one GETMETADATA: overlapping names are answered once,
 * at a cost that grows with their number squared. */
#define METADATA_MAX_REQUEST 100

/* An entry name argument (astring), lower-cased into the command arena;
 * set wants two components at least. NULL after a BAD. */
static const char *
arg_entry(struct imap_session *s, const struct imap_arg *arg, bool set)
{
	const char *str;
	size_t len;

	if (!imap_arg_astring(arg, &str, &len) || len > STORE_ANNOT_NAME_MAX ||
	    memchr(str, '\0', len) != NULL) {
		imap_bad(s, "Invalid entry name (RFC 5464 3.2)");
		return NULL;
	}
	char *n = arena_strndup(s->cmd_arena, str, len);
	for (size_t i = 0; i < len; i++)
		if (n[i] >= 'A' && n[i] <= 'Z')
			n[i] = (char)(n[i] - 'A' + 'a');
	if (!store_annot_name_ok(n) || (set && strchr(n + 1, '/') == NULL)) {
		imap_bad(s, "Invalid entry name (RFC 5464 3.2)");
		return NULL;
	}
	return n;
}

/* A number (RFC 9051: 32 bits) from an atom. */
static bool
arg_number(const struct imap_arg *a, uint64_t *n_r)
{
	uint64_t n = 0;

	if (a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 10)
		return false;
	for (size_t i = 0; i < a->len; i++) {
		if (a->str[i] < '0' || a->str[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(a->str[i] - '0');
	}
	*n_r = n;
	return n <= UINT32_MAX;
}

/* An entry name as an atom when it is one, else as a string. */
static void
append_entry(struct buf *b, const char *name)
{
	size_t n = strlen(name);

	if (strcspn(name, "(){ \"\\]") == n)
		buf_append(b, name, n); /* printable ASCII without specials */
	else
		imap_append_string(b, name, n, false);
}

static void
append_value(struct imap_session *s, struct buf *b, const char *v, size_t len)
{
	if (v == NULL)
		buf_append_str(b, "NIL");
	else if (memchr(v, '\0', len) != NULL) {
		buf_printf(b, "~{%zu}\r\n", len); /* literal8 (RFC 5464 5) */
		buf_append(b, v, len);
	} else {
		imap_append_string(b, v, len, s->utf8);
	}
}

/* The computed entries of the server (mbox NULL) or of a mailbox. */
static size_t
computed_entries(struct imap_session *s, const struct store_mailbox *mbox,
		 struct store_annot out[2])
{
	size_t n = 0;

	if (mbox == NULL) {
		const char *admin = s->cfg->imap_metadata_admin;
		const char *comment = s->cfg->imap_metadata_comment;
		if (admin[0] != '\0')
			out[n++] = (struct store_annot){"/shared/admin", admin, strlen(admin)};
		if (comment[0] != '\0')
			out[n++] =
			    (struct store_annot){"/shared/comment", comment, strlen(comment)};
	} else if (mbox->special_use != 0) {
		struct buf b;
		bool first = true;
		buf_init(&b, 256);
		imap_append_special_use(&b, mbox->special_use, &first);
		char *v = arena_strdup(s->cmd_arena, buf_cstr(&b));
		buf_free(&b);
		out[n++] = (struct store_annot){"/private/specialuse", v, strlen(v)};
	}
	return n;
}

static bool
is_computed(const char *name, bool server)
{
	if (server)
		return strcmp(name, "/shared/admin") == 0 || strcmp(name, "/shared/comment") == 0;
	return strcmp(name, "/private/specialuse") == 0;
}

static int
cmp_annot(const void *x, const void *y)
{
	const struct store_annot *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* Whether name is selected by one of req[0..i) at depth. */
static bool
listed_before(const char *name, const char *const *req, size_t i, int depth)
{
	for (size_t j = 0; j < i; j++)
		if (store_annot_in_scope(name, strlen(name), req[j], depth))
			return true;
	return false;
}

/* Every entry the requested names select, stored and computed: name i's
 * in name order after name i-1's, none twice; a name with nothing is
 * there with NIL (value NULL). In the command arena. */
static int
collect(struct imap_session *s, const char *owner_id, const struct store_mailbox *mbox,
	const char *const *req, size_t nreq, int depth, struct store_annot **out_r, size_t *n_r)
{
	struct store_annot comp[2], *got, *out;
	size_t ncomp = computed_entries(s, mbox, comp), *starts, n = 0;
	int r = store_annot_get(owner_id, s->user_id, mbox != NULL ? mbox->id : 0, req, nreq, depth,
				s->cmd_arena, &got, &starts);

	if (r != STORE_OK)
		return r;
	out = arena_alloc(s->cmd_arena, (starts[nreq] + nreq * (ncomp + 1)) * sizeof(*out));
	for (size_t i = 0; i < nreq; i++) {
		size_t first = n;
		for (size_t k = starts[i]; k < starts[i + 1]; k++)
			if (!is_computed(got[k].name, mbox == NULL))
				out[n++] = got[k];
		for (size_t k = 0; k < ncomp; k++)
			if (store_annot_in_scope(comp[k].name, strlen(comp[k].name), req[i],
						 depth) &&
			    !listed_before(comp[k].name, req, i, depth))
				out[n++] = comp[k];
		qsort(out + first, n - first, sizeof(*out), cmp_annot);
		if (n == first && !listed_before(req[i], req, i, depth))
			out[n++] = (struct store_annot){req[i], NULL, 0};
	}
	*out_r = out;
	*n_r = n;
	return STORE_OK;
}

void
imap_metadata_notify(struct imap_session *s, const char *name, const char *const *entries, size_t n)
{
	struct buf b;

	if (n == 0)
		return;
	/* metadata-resp = "METADATA" SP mailbox SP entry-list, entry-list =
	 * entry *(SP entry): no parentheses, no values (RFC 5464 5). */
	buf_init(&b, METADATA_OUT_MAX);
	buf_append_str(&b, "* METADATA ");
	imap_append_mailbox(s, &b, name);
	for (size_t i = 0; i < n; i++) {
		buf_putc(&b, ' ');
		append_entry(&b, entries[i]);
	}
	buf_append_str(&b, "\r\n");
	imap_write(s, b.data, b.len);
	buf_free(&b);
}

/* GETMETADATA options (RFC 5464 4.2.1, 4.2.2); false after a BAD. */
static bool
parse_options(struct imap_session *s, const struct imap_arg *l, uint64_t *maxsize_r, int *depth_r)
{
	if (l->count == 0) {
		imap_bad(s, "Empty GETMETADATA options");
		return false;
	}
	for (size_t i = 0; i < l->count; i++) {
		const struct imap_arg *a = &l->list[i], *v = i + 1 < l->count ? a + 1 : NULL;
		if (imap_arg_is_atom_ci(a, "MAXSIZE") && v != NULL && arg_number(v, maxsize_r)) {
			i++;
		} else if (imap_arg_is_atom_ci(a, "DEPTH") && v != NULL) {
			if (imap_arg_is_atom_ci(v, "0"))
				*depth_r = 0;
			else if (imap_arg_is_atom_ci(v, "1"))
				*depth_r = 1;
			else if (imap_arg_is_atom_ci(v, "infinity"))
				*depth_r = STORE_ANNOT_DEPTH_INFINITY;
			else {
				imap_bad(s, "DEPTH takes 0, 1 or infinity");
				return false;
			}
			i++;
		} else {
			imap_bad(s, "Unknown or malformed GETMETADATA option");
			return false;
		}
	}
	return true;
}

static void
send_metadata(struct imap_session *s, const char *mbox_name, const struct store_annot *list,
	      size_t n, uint64_t maxsize, uint64_t *longest_r)
{
	struct buf b;
	size_t sent = 0;

	*longest_r = 0;
	buf_init(&b, METADATA_OUT_MAX);
	buf_append_str(&b, "* METADATA ");
	imap_append_mailbox(s, &b, mbox_name);
	buf_append_str(&b, " (");
	for (size_t i = 0; i < n; i++) {
		const struct store_annot *e = &list[i];
		if (e->value != NULL && e->len > maxsize) {
			if (e->len > *longest_r)
				*longest_r = e->len;
			continue;
		}
		if (sent++ > 0)
			buf_putc(&b, ' ');
		append_entry(&b, e->name);
		buf_putc(&b, ' ');
		append_value(s, &b, e->value, e->len);
	}
	buf_append_str(&b, ")\r\n");
	if (sent > 0)
		imap_write(s, b.data, b.len);
	buf_free(&b);
}

static void
cmd_getmetadata(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args, *ents;
	uint64_t maxsize = UINT64_MAX, longest;
	int depth = 0;
	struct store_mailbox box;
	const char *name;

	if (cmd->count == 3 && args[0].type == IMAP_ARG_LIST) {
		if (!parse_options(s, &args[0], &maxsize, &depth))
			return;
		args++;
	} else if (cmd->count != 2) {
		imap_bad(s, "GETMETADATA takes [options] mailbox entries");
		return;
	}
	if ((name = imap_arg_mailbox(s, &args[0])) == NULL)
		return;
	ents = &args[1];
	size_t nreq = ents->type == IMAP_ARG_LIST ? ents->count : 1;
	if (nreq == 0) {
		imap_bad(s, "GETMETADATA needs at least one entry");
		return;
	}
	if (nreq > METADATA_MAX_REQUEST) {
		imap_tagged(s, "NO", "[LIMIT] At most %d entries in one GETMETADATA",
			    METADATA_MAX_REQUEST);
		return;
	}
	const char **req = arena_alloc(s->cmd_arena, nreq * sizeof(*req));
	for (size_t i = 0; i < nreq; i++) {
		/* After a BAD the arena is gone: req must not be written. */
		const char *r =
		    arg_entry(s, ents->type == IMAP_ARG_LIST ? &ents->list[i] : ents, false);
		if (r == NULL)
			return;
		req[i] = r;
	}
	struct imap_mref mref = {.owner_id = s->user_id, .shown = ""};
	if (name[0] != '\0') {
		/* RFC 5464 3.4: reading needs "l" and "r" on another
		 * user's mailbox. */
		if (imap_mref_get(s, &args[0], &mref) < 0 || !imap_mref_check(s, &mref, "lr"))
			return;
		int r = store_mailbox_get(mref.owner_id, mref.path, s->cmd_arena, &box);
		if (r != STORE_OK) {
			imap_tagged_store_status(s, r, "GETMETADATA");
			return;
		}
		if (mref.shared)
			box.name = mref.shown;
	}
	struct store_annot *list;
	size_t n;
	int r =
	    collect(s, mref.owner_id, name[0] != '\0' ? &box : NULL, req, nreq, depth, &list, &n);
	if (r != STORE_OK) {
		imap_tagged_store_status(s, r, "GETMETADATA");
		return;
	}
	send_metadata(s, name[0] != '\0' ? box.name : "", list, n, maxsize, &longest);
	if (longest > 0)
		imap_tagged(s, "OK", "[METADATA LONGENTRIES %" PRIu64 "] GETMETADATA completed",
			    longest);
	else
		imap_tagged(s, "OK", "GETMETADATA completed");
}

/* ---- SETMETADATA ---- */

static void
set_done(void *req, void *arg)
{
	struct store_annot_set *a = req;
	struct imap_session *s = arg;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	if (a->req.status == STORE_LIMIT)
		imap_tagged(s, "NO", "[METADATA TOOMANY] Too many annotations");
	else
		imap_tagged_store_status(s, a->req.status, "SETMETADATA");
	imap_async_end(s);
}

/* The entry-value pairs of l into a new array; NULL after a BAD. */
static struct store_annot *
parse_pairs(struct imap_session *s, const struct imap_arg *l)
{
	struct store_annot *e;

	if (l->type != IMAP_ARG_LIST || l->count == 0 || l->count % 2 != 0) {
		imap_bad(s, "SETMETADATA takes a mailbox and a list of entries and values");
		return NULL;
	}
	e = arena_alloc(s->cmd_arena, l->count / 2 * sizeof(*e));
	for (size_t i = 0; i < l->count / 2; i++) {
		const struct imap_arg *v = &l->list[2 * i + 1];
		const char *name = arg_entry(s, &l->list[2 * i], true);
		if (name == NULL)
			return NULL; /* the arena is gone with the BAD */
		e[i].name = name;
		if (v->type == IMAP_ARG_NIL) {
			e[i].value = NULL;
			e[i].len = 0;
		} else if (!imap_arg_string(v, true, &e[i].value, &e[i].len)) {
			imap_bad(s, "A value is a string, a literal, literal8 or NIL");
			return NULL;
		}
	}
	return e;
}

static void
cmd_setmetadata(struct imap_session *s, const struct imap_cmd *cmd)
{
	struct store_annot *e;
	struct store_mailbox box;
	const char *name;
	bool server;

	if (cmd->count != 2) {
		imap_bad(s, "SETMETADATA takes a mailbox and a list of entries and values");
		return;
	}
	if ((name = imap_arg_mailbox(s, &cmd->args[0])) == NULL ||
	    (e = parse_pairs(s, &cmd->args[1])) == NULL)
		return;
	size_t n = cmd->args[1].count / 2;
	server = name[0] == '\0';
	memset(&box, 0, sizeof(box));
	struct imap_mref mref = {.owner_id = s->user_id, .shown = ""};
	if (!server) {
		/* RFC 5464 3.4 on another user's mailbox: "l" and "r", and
		 * "w" too for a /shared entry. */
		bool shared_entry = false;
		for (size_t i = 0; i < n; i++)
			shared_entry |= strncmp(e[i].name, "/shared/", 8) == 0;
		if (imap_mref_get(s, &cmd->args[0], &mref) < 0 ||
		    !imap_mref_check(s, &mref, shared_entry ? "lrw" : "lr"))
			return;
		int r = store_mailbox_get(mref.owner_id, mref.path, s->cmd_arena, &box);
		if (r != STORE_OK) {
			imap_tagged_store_status(s, r, "SETMETADATA");
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (server && strncmp(e[i].name, "/shared/", 8) == 0) {
			imap_tagged(s, "NO", "[NOPERM] Shared server annotations are read-only");
			return;
		}
		if (!server && strcmp(e[i].name, "/private/specialuse") == 0) {
			imap_tagged(s, "NO",
				    "[CANNOT] /private/specialuse is read-only (CREATE sets it)");
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (e[i].value != NULL && e[i].len > s->cfg->imap_metadata_max_size) {
			imap_tagged(s, "NO", "[METADATA MAXSIZE %" PRIu64 "] Value too large",
				    s->cfg->imap_metadata_max_size);
			return;
		}
	}
	struct store_annot_set *a = arena_alloc(s->cmd_arena, sizeof(*a));
	memset(a, 0, sizeof(*a));
	a->req.worker = s->conn.worker;
	a->req.done = set_done;
	a->req.arg = s;
	a->req.a = s->cmd_arena;
	a->owner_id = mref.owner_id;
	a->user_id = s->user_id;
	a->mailbox_id = server ? 0 : box.id;
	a->entries = e;
	a->n = n;
	a->max_entries = s->cfg->imap_metadata_max_entries;
	imap_async_begin(s);
	store_annot_set(a);
}

const struct imap_command imap_metadata_cmds[] = {
    {"GETMETADATA", IMAP_ST_AUTHED, false, cmd_getmetadata},
    {"SETMETADATA", IMAP_ST_AUTHED, false, cmd_setmetadata},
    {NULL, 0, false, NULL},
};
