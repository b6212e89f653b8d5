/*
 * store_import.c - mail from an mbox (mboxrd, or mboxo/mutt/Dovecot
 * files) or a Maildir(++) tree into a user's mailboxes: migration from
 * another server, or back from `ternd store export` (store_admin.h).
 *
 * The input is parsed as a stream (an mbox of any size is read line by
 * line), at most one batch of messages is in memory, and each batch is
 * appended through store_append(): one transaction per batch, so bodies,
 * reference counts, quota usage, MIME structure, UIDs and MODSEQs are
 * exactly those of IMAP APPENDs, and a running ternd's writer waits for at
 * most one batch at a time.
 * Failures: malformed input is STORE_PERMFAIL with a message naming the
 * file and line or entry, checked before anything of that file is
 * written; I/O errors STORE_TEMPFAIL naming the path; batches committed
 * before an error stay. Nothing here aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/compat.h"
#include "core/log.h"
#include "storage/store_admin.h"
#include "storage/store_internal.h"

#define KW_FORWARDED "$Forwarded"
#define MAILDIR_LETTERS 26

/* ---- import ---- */

struct importer {
	const char *user_id;
	const struct store_xfer_opts *o;
	struct store_xfer_stats *st;
	char **error_r;
	char *mailbox;	   /* owned: current target, canonical */
	uint64_t box_done; /* messages committed into it */
	uint64_t reported; /* count reported last (progress()) */
	/* The batch: bodies malloc'd, keywords in a. */
	struct store_append_msg *msgs;
	char **where; /* owned: file:line or file of each, for errors */
	size_t n, cap;
	uint64_t bytes;
	struct arena *a;
};

static void
batch_clear(struct importer *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free((char *)im->msgs[i].body);
		free(im->where[i]);
	}
	im->n = 0;
	im->bytes = 0;
	arena_clear(im->a);
}

static int
batch_flush(struct importer *im)
{
	struct store_append ap = {.user_id = im->user_id, .mailbox = im->mailbox};
	struct store_sync s;
	int rc;

	if (im->n == 0)
		return 0;
	ap.msgs = im->msgs;
	ap.nmsgs = im->n;
	store_sync_prepare(&s, &ap.req);
	store_append(&ap);
	store_sync_wait(&s);
	rc = ap.req.status;
	if (rc != STORE_OK) {
		*im->error_r = xstrfmt("appending %zu message%s (%s to %s) to %s failed: %s", im->n,
				       im->n == 1 ? "" : "s", im->where[0], im->where[im->n - 1],
				       im->mailbox, store_strerror(rc));
		batch_clear(im);
		return rc;
	}
	uint64_t before = im->box_done;
	im->st->messages += im->n;
	im->st->bytes += im->bytes;
	im->st->batches++;
	im->box_done += im->n;
	batch_clear(im);
	store_xfer_progress(im->o, im->mailbox, before, im->box_done, false, &im->reported);
	return 0;
}

/* Appends bytes to out with every bare LF made CRLF. */
static int
crlf_append(struct buf *out, const char *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n' || (i > 0 && p[i - 1] == '\r'))
			continue;
		if (buf_append(out, p + start, i - start) < 0 || buf_append(out, "\r\n", 2) < 0)
			return -1;
		start = i + 1;
	}
	return buf_append(out, p + start, n - start);
}

/* Adds one message to the batch (taking msg's bytes, CRLF-normalised),
 * flushing first when the batch is full. */
static int
batch_add(struct importer *im, const char *msg, size_t len, uint32_t flags, const char **kws,
	  size_t nkws, time_t date, const char *where)
{
	struct buf body;
	int rc;

	buf_init(&body, (size_t)STORE_IMPORT_MSG_MAX * 2);
	if (crlf_append(&body, msg, len) < 0) {
		buf_free(&body);
		*im->error_r =
		    xstrfmt("%s: the message is larger than %u bytes", where, STORE_IMPORT_MSG_MAX);
		return STORE_PERMFAIL;
	}
	if (im->n > 0 &&
	    (im->n >= STORE_IMPORT_BATCH_MSGS || im->bytes + body.len > STORE_IMPORT_BATCH_BYTES)) {
		/* The keywords live in im->a, which the flush clears. */
		const char **kcopy = NULL;
		if (nkws > 0) {
			kcopy = xmalloc(nkws * sizeof(*kcopy));
			for (size_t i = 0; i < nkws; i++)
				kcopy[i] = xstrdup(kws[i]);
		}
		rc = batch_flush(im);
		const char **kn = nkws > 0 ? arena_alloc(im->a, nkws * sizeof(*kn)) : NULL;
		for (size_t i = 0; i < nkws; i++) {
			kn[i] = arena_strdup(im->a, kcopy[i]);
			free((char *)kcopy[i]);
		}
		free(kcopy);
		kws = kn;
		if (rc != 0) {
			buf_free(&body);
			return rc;
		}
	}
	if (im->n == im->cap) {
		im->cap = im->cap == 0 ? 64 : im->cap * 2;
		im->msgs = xrealloc(im->msgs, im->cap * sizeof(*im->msgs));
		im->where = xrealloc(im->where, im->cap * sizeof(*im->where));
	}
	struct store_append_msg *m = &im->msgs[im->n];
	memset(m, 0, sizeof(*m));
	/* Owned from here on; an empty message still needs a pointer. */
	m->body = body.data != NULL ? body.data : xstrdup("");
	m->body_len = body.len;
	m->flags = flags;
	m->keywords = kws;
	m->nkeywords = nkws;
	m->internal_date = date;
	im->where[im->n] = xstrdup(where);
	im->n++;
	im->bytes += body.len;
	return 0;
}

/* Keywords the store accepts; others are reported and left out. */
static const char **
kw_filter(struct importer *im, const char **kws, size_t n, size_t *n_r, const char *where)
{
	const char **out = n > 0 ? arena_alloc(im->a, n * sizeof(*out)) : NULL;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (store_keyword_valid(kws[i], strlen(kws[i])) && k < STORE_KEYWORDS_PER_MESSAGE)
			out[k++] = kws[i];
		else
			store_xfer_warn(
			    im->o, "%s: keyword \"%s\" left out (not an IMAP keyword, or over %d)",
			    where, kws[i], STORE_KEYWORDS_PER_MESSAGE);
	}
	*n_r = k;
	return out;
}

static int
start_mailbox(struct importer *im, const char *name)
{
	struct store_mailbox_change m = {
	    .op = STORE_MBOX_CREATE, .user_id = im->user_id, .name = name};
	struct store_sync s;
	int rc;

	if ((rc = batch_flush(im)) != 0)
		return rc;
	if (im->mailbox != NULL)
		store_xfer_progress(im->o, im->mailbox, im->box_done, im->box_done, true,
				    &im->reported);
	if (store_name_check(name) != 0) {
		*im->error_r = xstrfmt("\"%s\" is not a valid mailbox name", name);
		return STORE_PERMFAIL;
	}
	/* CREATE also makes a new user (with the default folders); an
	 * existing mailbox is what we want. */
	store_sync_prepare(&s, &m.req);
	store_mailbox_change(&m);
	store_sync_wait(&s);
	if (m.req.status != STORE_OK && m.req.status != STORE_EXISTS) {
		*im->error_r =
		    xstrfmt("cannot create mailbox \"%s\": %s", name, store_strerror(m.req.status));
		return m.req.status;
	}
	free(im->mailbox);
	im->mailbox = xstrdup(store_mbox_canon(name));
	im->box_done = 0;
	im->reported = UINT64_MAX;
	im->st->mailboxes++;
	return 0;
}

/* ---- mbox input ---- */

static bool
field_is(const char *line, size_t n, const char *name)
{
	size_t l = strlen(name);

	return n > l && strncasecmp(line, name, l) == 0 && line[l] == ':';
}

/* Takes the mbox metadata fields (Status, X-Status, X-Keywords) out of the
 * header block of msg, reading flags and keywords from them. */
static void
mbox_meta_take(struct importer *im, struct buf *msg, uint32_t *flags_r, const char ***kws_r,
	       size_t *nkws_r)
{
	struct buf keep, kwtext;
	const char *p = msg->data != NULL ? msg->data : "";
	size_t len = msg->len, i = 0;
	int which = 0; /* 0 none, 1 Status, 2 X-Status, 3 X-Keywords */

	*flags_r = 0;
	*kws_r = NULL;
	*nkws_r = 0;
	buf_init(&keep, msg->max);
	buf_init(&kwtext, 1u << 20);
	while (i < len) {
		const char *nl = memchr(p + i, '\n', len - i);
		size_t next = nl != NULL ? (size_t)(nl - p) + 1 : len;
		const char *line = p + i;
		size_t n = next - i;
		bool blank = n == 1 || (n == 2 && line[0] == '\r');
		if (blank) {
			buf_append(&keep, p + i, len - i); /* the body, untouched */
			break;
		}
		if (line[0] != ' ' && line[0] != '\t') {
			which = field_is(line, n, "Status")	  ? 1
				: field_is(line, n, "X-Status")	  ? 2
				: field_is(line, n, "X-Keywords") ? 3
								  : 0;
		}
		if (which == 0) {
			buf_append(&keep, line, n);
		} else {
			const char *v = line;
			size_t vn = n;
			if (line[0] != ' ' && line[0] != '\t') {
				const char *c = memchr(line, ':', n);
				vn = n - (size_t)(c + 1 - line);
				v = c + 1;
			}
			for (size_t j = 0; j < vn; j++) {
				char ch = v[j];
				if (which == 1 && ch == 'R')
					*flags_r |= STORE_FLAG_SEEN;
				else if (which == 2 && ch == 'A')
					*flags_r |= STORE_FLAG_ANSWERED;
				else if (which == 2 && ch == 'F')
					*flags_r |= STORE_FLAG_FLAGGED;
				else if (which == 2 && ch == 'T')
					*flags_r |= STORE_FLAG_DRAFT;
				else if (which == 2 && ch == 'D')
					*flags_r |= STORE_FLAG_DELETED;
			}
			if (which == 3) {
				buf_append(&kwtext, v, vn);
				buf_putc(&kwtext, ' ');
			}
		}
		i = next;
	}
	if (kwtext.len > 0) {
		size_t cap = 8, n = 0;
		const char **kws = arena_alloc(im->a, cap * sizeof(*kws));
		char *save = NULL;
		for (char *t = strtok_r(kwtext.data, " \t\r\n,", &save); t != NULL;
		     t = strtok_r(NULL, " \t\r\n,", &save)) {
			if (n == cap) {
				const char **nk = arena_alloc(im->a, 2 * cap * sizeof(*nk));
				memcpy(nk, kws, cap * sizeof(*nk));
				kws = nk;
				cap *= 2;
			}
			kws[n++] = arena_strdup(im->a, t);
		}
		*kws_r = kws;
		*nkws_r = n;
	}
	buf_free(&kwtext);
	buf_free(msg);
	*msg = keep;
}

static int
mbox_finish(struct importer *im, struct buf *msg, time_t date, const char *file, long line)
{
	char *where = xstrfmt("%s: line %ld", file, line);
	const char **kws, **okws;
	size_t nkws, nok;
	uint32_t flags;
	int rc;

	/* The blank line that ends every mbox entry is not the message's. */
	if (msg->len >= 2 && msg->data[msg->len - 1] == '\n' && msg->data[msg->len - 2] == '\n')
		msg->len--;
	else if (msg->len >= 3 && memcmp(msg->data + msg->len - 3, "\n\r\n", 3) == 0)
		msg->len -= 2;
	else if (msg->len == 1 && msg->data[0] == '\n')
		msg->len = 0;
	mbox_meta_take(im, msg, &flags, &kws, &nkws);
	okws = kw_filter(im, kws, nkws, &nok, where);
	rc = batch_add(im, msg->data != NULL ? msg->data : "", msg->len, flags, okws, nok, date,
		       where);
	buf_reset(msg);
	free(where);
	return rc;
}

static int
import_mbox_file(struct importer *im, const char *file, const char *mailbox)
{
	FILE *f = fopen(file, "re");
	struct buf msg;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n;
	long lineno = 0, start = 0;
	time_t date = 0;
	bool in_msg = false;
	int rc = 0;

	if (f == NULL) {
		*im->error_r = xstrfmt("cannot open %s: %s", file, strerror(errno));
		return STORE_TEMPFAIL;
	}
	buf_init(&msg, STORE_IMPORT_MSG_MAX);
	/* The mailbox is made only for an mbox (or an empty file, an empty
	 * mailbox): a file that is not one changes nothing. */
	n = getline(&line, &lcap, f);
	if (n > 0 && !((size_t)n >= 5 && memcmp(line, "From ", 5) == 0)) {
		*im->error_r = xstrfmt("%s: line 1: not an mbox file (it does not start with a "
				       "\"From \" line)",
				       file);
		rc = STORE_PERMFAIL;
		goto out;
	}
	if ((rc = start_mailbox(im, mailbox)) != 0)
		goto out;
	for (; n > 0; n = getline(&line, &lcap, f)) {
		lineno++;
		if ((size_t)n >= 5 && memcmp(line, "From ", 5) == 0) {
			if (in_msg && (rc = mbox_finish(im, &msg, date, file, start)) != 0)
				break;
			in_msg = true;
			start = lineno;
			if (store_mbox_from_date(line, (size_t)n, &date) < 0) {
				date = 0; /* "now" */
				store_xfer_warn(im->o,
						"%s: line %ld: no date in the \"From \" line; the "
						"message gets the import time",
						file, lineno);
			}
			continue;
		}
		if (!in_msg) {
			*im->error_r = xstrfmt("%s: line %ld: not an mbox file (it does not start "
					       "with a \"From \" line)",
					       file, lineno);
			rc = STORE_PERMFAIL;
			break;
		}
		if (store_mbox_unquote(line, (size_t)n, &msg) < 0) {
			*im->error_r = xstrfmt("%s: line %ld: the message starting at line %ld is "
					       "larger than %u bytes",
					       file, lineno, start, STORE_IMPORT_MSG_MAX);
			rc = STORE_PERMFAIL;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		*im->error_r = xstrfmt("cannot read %s: %s", file, strerror(errno));
		rc = STORE_TEMPFAIL;
	}
	if (rc == 0 && in_msg)
		rc = mbox_finish(im, &msg, date, file, start);
	if (rc == 0)
		rc = batch_flush(im);
out:
	free(line);
	buf_free(&msg);
	fclose(f);
	return rc;
}

/* ---- Maildir input ---- */

struct md_ent {
	char *name;	 /* owned */
	const char *sub; /* "cur" or "new" */
	unsigned long long lead;
};

static int
cmp_md(const void *x, const void *y)
{
	const struct md_ent *a = x, *b = y;

	if (a->lead != b->lead)
		return a->lead < b->lead ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* dovecot-keywords: "N keyword" lines, N 0..25. Absent: none. */
static void
read_keywords_file(struct importer *im, const char *dir, const char *letters[MAILDIR_LETTERS])
{
	char *p = xstrfmt("%s/dovecot-keywords", dir);
	FILE *f = fopen(p, "re");
	char *line = NULL;
	size_t cap = 0;

	memset(letters, 0, MAILDIR_LETTERS * sizeof(*letters));
	free(p);
	if (f == NULL)
		return;
	while (getline(&line, &cap, f) > 0) {
		char *end;
		unsigned long i = strtoul(line, &end, 10);
		if (end == line || *end != ' ' || i >= MAILDIR_LETTERS)
			continue;
		end[1 + strcspn(end + 1, "\r\n")] = '\0';
		if (end[1] != '\0')
			letters[i] = strdup(end + 1);
	}
	free(line);
	fclose(f);
}

static int
list_sub(const char *dir, const char *sub, struct md_ent **list, size_t *n, size_t *cap,
	 char **error_r)
{
	char *p = xstrfmt("%s/%s", dir, sub);
	DIR *d = opendir(p);
	struct dirent *de;

	if (d == NULL) {
		int e = errno;
		free(p);
		if (e == ENOENT)
			return 0;
		*error_r = xstrfmt("cannot read %s/%s: %s", dir, sub, strerror(e));
		return STORE_TEMPFAIL;
	}
	free(p);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and hidden files of other programs */
		if (*n == *cap) {
			*cap = *cap == 0 ? 256 : *cap * 2;
			*list = xrealloc(*list, *cap * sizeof(**list));
		}
		(*list)[*n].name = xstrdup(de->d_name);
		(*list)[*n].sub = sub;
		(*list)[*n].lead = strtoull(de->d_name, NULL, 10);
		(*n)++;
	}
	closedir(d);
	return 0;
}

static int
read_file(const char *path, struct buf *out, struct stat *st, char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = 0;

	buf_reset(out);
	if (fd < 0 || fstat(fd, st) < 0) {
		*error_r = xstrfmt("cannot read %s: %s", path, strerror(errno));
		rc = STORE_TEMPFAIL;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		*error_r = xstrfmt("%s: not a message file (not a regular file)", path);
		rc = STORE_PERMFAIL;
		goto out;
	}
	if ((uint64_t)st->st_size > STORE_IMPORT_MSG_MAX) {
		*error_r =
		    xstrfmt("%s: the message is larger than %u bytes", path, STORE_IMPORT_MSG_MAX);
		rc = STORE_PERMFAIL;
		goto out;
	}
	for (;;) {
		char *w = buf_reserve(out, 64u << 10);
		if (w == NULL) {
			*error_r = xstrfmt("%s: the message is larger than %u bytes", path,
					   STORE_IMPORT_MSG_MAX);
			rc = STORE_PERMFAIL;
			break;
		}
		ssize_t r = read(fd, w, 64u << 10);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*error_r = xstrfmt("cannot read %s: %s", path, strerror(errno));
			rc = STORE_TEMPFAIL;
			break;
		}
		if (r == 0)
			break;
		buf_commit(out, (size_t)r);
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
import_maildir_folder(struct importer *im, const char *dir, const char *mailbox)
{
	const char *letters[MAILDIR_LETTERS];
	struct md_ent *list = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	struct buf msg;
	int rc;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*im->error_r = xstrfmt("%s: not a Maildir (no such directory)", dir);
		return STORE_PERMFAIL;
	}
	char *cur = xstrfmt("%s/cur", dir), *newd = xstrfmt("%s/new", dir);
	bool ok = (stat(cur, &st) == 0 && S_ISDIR(st.st_mode)) ||
		  (stat(newd, &st) == 0 && S_ISDIR(st.st_mode));
	free(cur);
	free(newd);
	if (!ok) {
		*im->error_r = xstrfmt("%s: not a Maildir (it has neither cur/ nor new/)", dir);
		return STORE_PERMFAIL;
	}
	if ((rc = list_sub(dir, "cur", &list, &n, &cap, im->error_r)) != 0 ||
	    (rc = list_sub(dir, "new", &list, &n, &cap, im->error_r)) != 0)
		goto out_list;
	if (n > 0)
		qsort(list, n, sizeof(*list), cmp_md);
	/* Every name first: a broken one changes nothing. */
	for (size_t i = 0; i < n; i++) {
		uint32_t flags, kwbits;
		bool passed;
		if (store_maildir_parse(list[i].name, &flags, &passed, &kwbits) < 0) {
			*im->error_r =
			    xstrfmt("%s/%s/%s: not a Maildir message file name (the part "
				    "after ':' must be \"2,\" and flag letters)",
				    dir, list[i].sub, list[i].name);
			rc = STORE_PERMFAIL;
			goto out_list;
		}
	}
	read_keywords_file(im, dir, letters);
	if ((rc = start_mailbox(im, mailbox)) != 0)
		goto out;
	buf_init(&msg, STORE_IMPORT_MSG_MAX);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *path = xstrfmt("%s/%s/%s", dir, list[i].sub, list[i].name);
		uint32_t flags, kwbits;
		bool passed;

		if (store_maildir_parse(list[i].name, &flags, &passed, &kwbits) < 0) {
			*im->error_r =
			    xstrfmt("%s: not a Maildir message file name (the part after "
				    "':' must be \"2,\" and flag letters)",
				    path);
			rc = STORE_PERMFAIL;
		} else if ((rc = read_file(path, &msg, &st, im->error_r)) == 0) {
			const char *kws[MAILDIR_LETTERS + 1];
			size_t nk = 0, nok;
			if (passed)
				kws[nk++] = KW_FORWARDED;
			for (int b = 0; b < MAILDIR_LETTERS; b++) {
				if (!(kwbits & (1u << b)))
					continue;
				if (letters[b] != NULL)
					kws[nk++] = letters[b];
				else
					store_xfer_warn(im->o,
							"%s: keyword letter '%c' is not in "
							"dovecot-keywords; left out",
							path, 'a' + b);
			}
			const char **ok_kws = kw_filter(im, kws, nk, &nok, path);
			/* The names in ok_kws are borrowed from letters (alive
			 * until the end) or static: copy into the batch arena,
			 * which the next flush may clear. */
			const char **kc = nok > 0 ? arena_alloc(im->a, nok * sizeof(*kc)) : NULL;
			for (size_t k = 0; k < nok; k++)
				kc[k] = arena_strdup(im->a, ok_kws[k]);
			rc = batch_add(im, msg.data != NULL ? msg.data : "", msg.len, flags, kc,
				       nok, st.st_mtim.tv_sec, path);
		}
		free(path);
	}
	if (rc == 0)
		rc = batch_flush(im);
	buf_free(&msg);
out:
	for (int b = 0; b < MAILDIR_LETTERS; b++)
		free((char *)letters[b]);
out_list:
	for (size_t i = 0; i < n; i++)
		free(list[i].name);
	free(list);
	return rc;
}

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The entries of dir that pass keep(), sorted. */
static int
dir_names(const char *dir, bool (*keep)(const char *dir, const char *name), char ***names_r,
	  size_t *n_r, char **error_r)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;

	*names_r = NULL;
	*n_r = 0;
	if (d == NULL) {
		*error_r = xstrfmt("cannot read %s: %s", dir, strerror(errno));
		return STORE_PERMFAIL;
	}
	while ((de = readdir(d)) != NULL) {
		if (!keep(dir, de->d_name))
			continue;
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	*names_r = names;
	*n_r = n;
	return 0;
}

static bool
is_type(const char *dir, const char *name, bool want_dir)
{
	char *p = xstrfmt("%s/%s", dir, name);
	struct stat st;
	bool r = stat(p, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));

	free(p);
	return r;
}

static bool
keep_subfolder(const char *dir, const char *name)
{
	return name[0] == '.' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       is_type(dir, name, true);
}

static bool
keep_mbox_file(const char *dir, const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".mbox") == 0 &&
	       is_type(dir, name, false);
}

static void
names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
store_import(const char *user_id, const char *path, const struct store_xfer_opts *o,
	     struct store_xfer_stats *st, char **error_r)
{
	struct importer im = {.user_id = user_id, .o = o, .st = st, .error_r = error_r};
	struct arena *names = arena_new(0);
	struct stat sb;
	char **list = NULL;
	size_t n = 0;
	int rc = 0;

	*error_r = NULL;
	memset(st, 0, sizeof(*st));
	im.a = arena_new(0);
	if (user_id == NULL || user_id[0] == '\0' || strlen(user_id) > STORE_MAX_ID_LEN) {
		*error_r = xstrfmt("\"%s\" is not a stable id", user_id != NULL ? user_id : "");
		rc = STORE_PERMFAIL;
		goto out;
	}
	if (stat(path, &sb) < 0) {
		*error_r = xstrfmt("%s: %s", path, strerror(errno));
		rc = STORE_PERMFAIL;
		goto out;
	}
	if (o->format == STORE_FORMAT_MBOX && S_ISREG(sb.st_mode)) {
		rc = import_mbox_file(&im, path, o->mailbox != NULL ? o->mailbox : "INBOX");
	} else if (o->format == STORE_FORMAT_MBOX && S_ISDIR(sb.st_mode)) {
		if (o->mailbox != NULL) {
			*error_r =
			    xstrfmt("%s is a directory: give one mbox file with a mailbox", path);
			rc = STORE_PERMFAIL;
			goto out;
		}
		if ((rc = dir_names(path, keep_mbox_file, &list, &n, error_r)) != 0)
			goto out;
		for (size_t i = 0; i < n && rc == 0; i++) {
			char *stem = arena_strndup(names, list[i], strlen(list[i]) - 5);
			const char *box = store_maildir_mailbox(names, stem);
			char *file = xstrfmt("%s/%s", path, list[i]);
			if (box == NULL) {
				*error_r =
				    xstrfmt("%s: \"%s\" does not name a mailbox", file, stem);
				rc = STORE_PERMFAIL;
			} else {
				rc = import_mbox_file(&im, file, box);
			}
			free(file);
		}
	} else if (o->format == STORE_FORMAT_MAILDIR && S_ISDIR(sb.st_mode)) {
		rc = import_maildir_folder(&im, path, o->mailbox != NULL ? o->mailbox : "INBOX");
		if (rc != 0 || o->mailbox != NULL)
			goto out;
		/* Maildir++ folders. */
		if ((rc = dir_names(path, keep_subfolder, &list, &n, error_r)) != 0)
			goto out;
		for (size_t i = 0; i < n && rc == 0; i++) {
			const char *box = store_maildir_mailbox(names, list[i] + 1);
			char *dir = xstrfmt("%s/%s", path, list[i]);
			if (box == NULL) {
				*error_r =
				    xstrfmt("%s: \"%s\" does not name a mailbox", dir, list[i] + 1);
				rc = STORE_PERMFAIL;
			} else {
				rc = import_maildir_folder(&im, dir, box);
			}
			free(dir);
		}
	} else {
		*error_r =
		    xstrfmt("%s: not %s", path,
			    o->format == STORE_FORMAT_MBOX ? "an mbox file or a directory of "
							     ".mbox files"
							   : "a Maildir directory");
		rc = STORE_PERMFAIL;
	}
out:
	if (rc == 0 && im.mailbox != NULL)
		store_xfer_progress(o, im.mailbox, im.box_done, im.box_done, true, &im.reported);
	batch_clear(&im);
	names_free(list, n);
	free(im.msgs);
	free(im.where);
	free(im.mailbox);
	arena_destroy(&im.a);
	arena_destroy(&names);
	if (rc == 0)
		log_info(0, "store", "import user=%s mailboxes=%llu messages=%llu", user_id,
			 (unsigned long long)st->mailboxes, (unsigned long long)st->messages);
	return rc;
}
