/*
 * store_export.c - a user's mail out of the store as mbox (mboxrd) or
 * Maildir(++), and the format helpers export and import share (mboxrd
 * quoting, From lines, Maildir info letters, Maildir++ folder names).
 * Layouts and conventions are in store_admin.h; import is
 * store_import.c.
 *
 * Export reads each mailbox's listing, then each message in its own short
 * read transaction, so a long export never pins the map; files are
 * written through tmp/ (Maildir) and synced once at the end.
 * Failures: an unknown user or mailbox is STORE_NOTFOUND; an output path
 * that is not new or empty STORE_PERMFAIL; I/O errors STORE_TEMPFAIL with
 * a message naming the path. Nothing here aborts.
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

/* A message read back for export: anything the store holds. */
#define EXPORT_MSG_MAX (1ull << 30)
#define KW_FORWARDED "$Forwarded"
#define MAILDIR_LETTERS 26

void
store_xfer_warn(const struct store_xfer_opts *o, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (o->warn == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	o->warn(o->progress_arg, s != NULL ? s : "warning (out of memory formatting it)");
	free(s);
}

/* ---- mboxrd quoting ---- */

/* Whether the line at p (n bytes to the end of the data) is ^>*From  with
 * at least min '>'s. */
static bool
from_line(const char *p, size_t n, size_t min)
{
	size_t i = 0;

	while (i < n && p[i] == '>')
		i++;
	return i >= min && n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

static int
requote(const char *msg, size_t len, struct buf *out, bool quote)
{
	size_t start = 0;

	while (start < len) {
		const char *nl = memchr(msg + start, '\n', len - start);
		size_t end = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		const char *p = msg + start;
		size_t n = end - start;

		if (quote && from_line(p, n, 0)) {
			if (buf_putc(out, '>') < 0)
				return -1;
		} else if (!quote && from_line(p, n, 1)) {
			p++;
			n--;
		}
		if (buf_append(out, p, n) < 0)
			return -1;
		start = end;
	}
	return 0;
}

int
store_mbox_quote(const char *msg, size_t len, struct buf *out)
{
	return requote(msg, len, out, true);
}

int
store_mbox_unquote(const char *msg, size_t len, struct buf *out)
{
	return requote(msg, len, out, false);
}

int
store_mbox_from_date(const char *line, size_t len, time_t *t_r)
{
	char *s;
	int rc = -1;

	if (len < 5 || memcmp(line, "From ", 5) != 0)
		return -1;
	s = xmalloc(len + 1);
	memcpy(s, line, len);
	s[len] = '\0';
	s[strcspn(s, "\r\n")] = '\0';
	/* The sender may hold spaces (a quoted local part): try the date at
	 * each word after the first. */
	char *p = s + 5;
	while (*p == ' ')
		p++;
	for (;;) {
		p += strcspn(p, " \t");
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		const char *e = strptime(p, "%a %b %d %H:%M:%S %Y", &tm);
		if (e != NULL && (*e == '\0' || *e == ' ' || *e == '\t')) {
			*t_r = timegm(&tm);
			rc = 0;
			break;
		}
	}
	free(s);
	return rc;
}

int
store_mbox_from_line(const char *msg, size_t len, time_t internal_date, struct buf *out)
{
	static const char rp[] = "Return-Path:";
	const char *sender = "MAILER-DAEMON";
	size_t slen = strlen(sender);
	char date[64];
	struct tm tm;

	if (len > sizeof(rp) - 1 && strncasecmp(msg, rp, sizeof(rp) - 1) == 0) {
		const char *eol = memchr(msg, '\n', len);
		const char *lt = memchr(msg, '<', eol != NULL ? (size_t)(eol - msg) : len);
		const char *gt = lt != NULL ? memchr(lt, '>', (size_t)(msg + len - lt)) : NULL;
		if (lt != NULL && gt != NULL && (eol == NULL || gt < eol) && gt - lt > 1) {
			size_t n = (size_t)(gt - lt - 1);
			bool plain = true;
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)lt[1 + i] <= ' ' || lt[1 + i] == 0x7f)
					plain = false;
			if (plain) {
				sender = lt + 1;
				slen = n;
			}
		}
	}
	gmtime_r(&internal_date, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	return buf_printf(out, "From %.*s %s\n", (int)slen, sender, date);
}

/* ---- Maildir names ---- */

void
store_maildir_info(uint32_t flags, bool passed, uint32_t kwbits, char out[40])
{
	size_t n = 0;

	out[n++] = '2';
	out[n++] = ',';
	/* ASCII order, as the Maildir spec asks. */
	if (flags & STORE_FLAG_DRAFT)
		out[n++] = 'D';
	if (flags & STORE_FLAG_FLAGGED)
		out[n++] = 'F';
	if (passed)
		out[n++] = 'P';
	if (flags & STORE_FLAG_ANSWERED)
		out[n++] = 'R';
	if (flags & STORE_FLAG_SEEN)
		out[n++] = 'S';
	if (flags & STORE_FLAG_DELETED)
		out[n++] = 'T';
	for (int i = 0; i < MAILDIR_LETTERS; i++)
		if (kwbits & (1u << i))
			out[n++] = (char)('a' + i);
	out[n] = '\0';
}

int
store_maildir_parse(const char *name, uint32_t *flags_r, bool *passed_r, uint32_t *kwbits_r)
{
	const char *colon = strchr(name, ':');

	*flags_r = 0;
	*passed_r = false;
	*kwbits_r = 0;
	if (name[0] == '\0' || name[0] == ':' || strchr(name, '/') != NULL)
		return -1;
	if (colon == NULL)
		return 0; /* new/, or cur/ without info: no flags */
	if (colon[1] != '2' || colon[2] != ',')
		return -1; /* ":1," (experimental) or garbage */
	for (const char *p = colon + 3; *p != '\0'; p++) {
		switch (*p) {
		case 'D':
			*flags_r |= STORE_FLAG_DRAFT;
			break;
		case 'F':
			*flags_r |= STORE_FLAG_FLAGGED;
			break;
		case 'P':
			*passed_r = true;
			break;
		case 'R':
			*flags_r |= STORE_FLAG_ANSWERED;
			break;
		case 'S':
			*flags_r |= STORE_FLAG_SEEN;
			break;
		case 'T':
			*flags_r |= STORE_FLAG_DELETED;
			break;
		default:
			if (*p >= 'a' && *p <= 'z')
				*kwbits_r |= 1u << (*p - 'a');
			else if (!(*p >= 'A' && *p <= 'Z'))
				return -1;
			/* other capitals: flags of other programs, ignored */
		}
	}
	return 0;
}

const char *
store_maildir_folder(struct arena *a, const char *mailbox)
{
	struct buf b;
	const char *r;

	buf_init(&b, 4 * STORE_MAX_NAME_LEN + 16);
	for (const char *p = mailbox; *p != '\0'; p++) {
		if (*p == '/')
			buf_putc(&b, '.');
		else if (*p == '.')
			buf_append_str(&b, "%2E");
		else if (*p == '%')
			buf_append_str(&b, "%25");
		else
			buf_putc(&b, *p);
	}
	r = arena_strndup(a, b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
	return r;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

const char *
store_maildir_mailbox(struct arena *a, const char *folder)
{
	size_t n = strlen(folder);
	char *out = arena_alloc(a, n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (folder[i] == '.') {
			out[o++] = '/';
		} else if (folder[i] == '%' && i + 2 < n && hexval(folder[i + 1]) >= 0 &&
			   hexval(folder[i + 2]) >= 0) {
			char c = (char)(hexval(folder[i + 1]) * 16 + hexval(folder[i + 2]));
			if (c == '\0')
				return NULL;
			out[o++] = c;
			i += 2;
		} else {
			out[o++] = folder[i];
		}
	}
	out[o] = '\0';
	if (store_name_check(out) != 0)
		return NULL;
	return strcasecmp(out, "INBOX") == 0 ? "INBOX" : out;
}

/* ---- small file helpers ---- */

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A directory for the export: created, or existing and empty. */
static int
make_out_dir(const char *path, char **error_r)
{
	DIR *d;
	struct dirent *de;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		*error_r = xstrfmt("cannot create %s: %s", path, strerror(errno));
		return STORE_TEMPFAIL;
	}
	if ((d = opendir(path)) == NULL) {
		*error_r = xstrfmt("%s: %s", path, strerror(errno));
		return STORE_TEMPFAIL;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			closedir(d);
			*error_r =
			    xstrfmt("%s is not empty; export into a new or empty directory", path);
			return STORE_PERMFAIL;
		}
	}
	closedir(d);
	return 0;
}

static int
maildir_mkdirs(const char *dir, bool sub, char **error_r)
{
	static const char *const parts[] = {"cur", "new", "tmp"};

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = xstrfmt("cannot create %s: %s", dir, strerror(errno));
		return STORE_TEMPFAIL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		char *p = xstrfmt("%s/%s", dir, parts[i]);
		int rc = mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
		if (rc < 0)
			*error_r = xstrfmt("cannot create %s: %s", p, strerror(errno));
		free(p);
		if (rc < 0)
			return STORE_TEMPFAIL;
	}
	if (sub) {
		/* Maildir++: marks a folder, not a root. */
		char *p = xstrfmt("%s/maildirfolder", dir);
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			*error_r = xstrfmt("cannot create %s: %s", p, strerror(errno));
		else
			close(fd);
		free(p);
		if (fd < 0)
			return STORE_TEMPFAIL;
	}
	return 0;
}

/* ---- export ---- */

struct exporter {
	const char *user_id;
	const char *path;
	const struct store_xfer_opts *o;
	struct store_xfer_stats *st;
	char **error_r;
	struct arena *a;
	struct buf msg, out;
	/* Maildir: this folder's keyword letters. */
	const char *letters[MAILDIR_LETTERS];
	unsigned nletters;
};

/* Reports when the count goes from before to done past a multiple of
 * progress_every, and at the end of a mailbox unless that count was just
 * reported; *last is the count reported last (UINT64_MAX: none yet). */
void
store_xfer_progress(const struct store_xfer_opts *o, const char *mailbox, uint64_t before,
		    uint64_t done, bool end, uint64_t *last)
{
	bool due =
	    end ? done != *last
		: o->progress_every > 0 && done / o->progress_every != before / o->progress_every;

	if (o->progress == NULL || !due)
		return;
	o->progress(o->progress_arg, mailbox, done);
	*last = done;
}

/* The Status / X-Status / X-Keywords lines for a message, with the line
 * end eol, appended to out. */
static int
mbox_meta(const struct store_msg_info *m, const char *eol, struct buf *out)
{
	int rc = 0;

	if (m->flags & STORE_FLAG_SEEN)
		rc |= buf_printf(out, "Status: RO%s", eol);
	if (m->flags &
	    (STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT | STORE_FLAG_DELETED)) {
		rc |= buf_append_str(out, "X-Status: ");
		if (m->flags & STORE_FLAG_ANSWERED)
			rc |= buf_putc(out, 'A');
		if (m->flags & STORE_FLAG_FLAGGED)
			rc |= buf_putc(out, 'F');
		if (m->flags & STORE_FLAG_DRAFT)
			rc |= buf_putc(out, 'T');
		if (m->flags & STORE_FLAG_DELETED)
			rc |= buf_putc(out, 'D');
		rc |= buf_append_str(out, eol);
	}
	if (m->nkeywords > 0) {
		rc |= buf_append_str(out, "X-Keywords:");
		for (size_t i = 0; i < m->nkeywords; i++)
			rc |= buf_printf(out, " %s", m->keywords[i]);
		rc |= buf_append_str(out, eol);
	}
	return rc < 0 ? -1 : 0;
}

/* One message in mboxrd form: From line, the message with the flag
 * headers at the end of its header block, quoted; a blank line. */
static int
mbox_entry(struct exporter *x, const struct store_msg_info *m)
{
	const char *p = x->msg.data != NULL ? x->msg.data : "";
	size_t len = x->msg.len, hdr_end = len;
	const char *eol = "\r\n";
	struct buf meta;
	int rc;

	/* Where the header block ends: at its empty line. */
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(p + i, '\n', len - i);
		size_t next = nl != NULL ? (size_t)(nl - p) + 1 : len;
		if (i == 0 && (next < 2 || p[next - 2] != '\r'))
			eol = "\n";
		if (next - i == 1 || (next - i == 2 && p[i] == '\r')) {
			hdr_end = i;
			break;
		}
		i = next;
	}
	buf_init(&meta, 64u << 10);
	/* A message without a final line end gets no flag lines rather
	 * than a changed last line. */
	if (hdr_end < len || (len > 0 && p[len - 1] == '\n'))
		rc = mbox_meta(m, eol, &meta);
	else
		rc = 0;
	buf_reset(&x->out);
	if (rc == 0)
		rc = store_mbox_from_line(p, len, m->internal_date, &x->out);
	if (rc == 0)
		rc = store_mbox_quote(p, hdr_end, &x->out);
	if (rc == 0 && meta.len > 0)
		rc = buf_append(&x->out, meta.data, meta.len);
	if (rc == 0)
		rc = store_mbox_quote(p + hdr_end, len - hdr_end, &x->out);
	if (rc == 0 && len > 0 && p[len - 1] != '\n')
		rc = buf_putc(&x->out, '\n');
	if (rc == 0)
		rc = buf_putc(&x->out, '\n');
	buf_free(&meta);
	return rc;
}

/* The letter of a keyword in this Maildir folder (assigned on first
 * use), -1 past 26. */
static int
kw_letter(struct exporter *x, const char *kw)
{
	for (unsigned i = 0; i < x->nletters; i++)
		if (strcasecmp(x->letters[i], kw) == 0)
			return (int)i;
	if (x->nletters == MAILDIR_LETTERS)
		return -1;
	x->letters[x->nletters] = arena_strdup(x->a, kw);
	return (int)x->nletters++;
}

static int
maildir_entry(struct exporter *x, const char *dir, uint32_t uidvalidity,
	      const struct store_msg_info *m)
{
	uint32_t kwbits = 0;
	bool passed = false;
	char info[40];

	for (size_t i = 0; i < m->nkeywords; i++) {
		if (strcasecmp(m->keywords[i], KW_FORWARDED) == 0) {
			passed = true;
			continue;
		}
		int l = kw_letter(x, m->keywords[i]);
		if (l < 0)
			store_xfer_warn(
			    x->o,
			    "%s: keyword %s of UID %u left out: a Maildir folder has 26 "
			    "keyword letters",
			    dir, m->keywords[i], m->uid);
		else
			kwbits |= 1u << l;
	}
	store_maildir_info(m->flags, passed, kwbits, info);
	/* The leading number is when it entered the mailbox, the rest
	 * makes the name unique; sorting by both gives UID order back. */
	char *tmp =
	    xstrfmt("%s/tmp/%lld.%u_%010u.tern", dir, (long long)m->save_date, uidvalidity, m->uid);
	char *dst = xstrfmt("%s/cur/%lld.%u_%010u.tern:%s", dir, (long long)m->save_date,
			    uidvalidity, m->uid, info);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0 || write_all(fd, x->msg.data != NULL ? x->msg.data : "", x->msg.len) < 0) {
		*x->error_r = xstrfmt("cannot write %s: %s", tmp, strerror(errno));
		rc = STORE_TEMPFAIL;
	} else {
		struct timespec ts[2] = {{.tv_sec = m->internal_date},
					 {.tv_sec = m->internal_date}};
		if (futimens(fd, ts) < 0 || rename(tmp, dst) < 0) {
			*x->error_r = xstrfmt("cannot write %s: %s", dst, strerror(errno));
			rc = STORE_TEMPFAIL;
		}
	}
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		*x->error_r = xstrfmt("cannot write %s: %s", tmp, strerror(errno));
		rc = STORE_TEMPFAIL;
	}
	free(tmp);
	free(dst);
	return rc;
}

static int
write_keywords_file(struct exporter *x, const char *dir)
{
	struct buf b;
	int rc = 0;

	if (x->nletters == 0)
		return 0;
	buf_init(&b, 1u << 20);
	for (unsigned i = 0; i < x->nletters; i++)
		buf_printf(&b, "%u %s\n", i, x->letters[i]);
	char *p = xstrfmt("%s/dovecot-keywords", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, b.data, b.len) < 0) {
		*x->error_r = xstrfmt("cannot write %s: %s", p, strerror(errno));
		rc = STORE_TEMPFAIL;
	}
	if (fd >= 0)
		close(fd);
	free(p);
	buf_free(&b);
	return rc;
}

/* Exports one mailbox into file (mbox, fd given) or Maildir folder dir. */
static int
export_box(struct exporter *x, const struct store_mailbox *box, int fd, const char *dir,
	   const char *where)
{
	struct store_mailbox_info info;
	struct store_msg_info *msgs;
	size_t n;
	uint64_t done = 0, last = UINT64_MAX;
	int rc = store_mailbox_list(x->user_id, box->name, x->a, &info, &msgs, &n);

	if (rc != STORE_OK) {
		*x->error_r = xstrfmt("cannot list mailbox %s: %s", box->name, store_strerror(rc));
		return rc;
	}
	x->nletters = 0;
	for (size_t i = 0; i < n; i++) {
		buf_reset(&x->msg);
		rc = store_message_read(x->user_id, box->name, msgs[i].uid, &x->msg);
		if (rc == STORE_NOTFOUND)
			continue; /* expunged meanwhile */
		if (rc != STORE_OK) {
			*x->error_r = xstrfmt("cannot read UID %u of %s: %s", msgs[i].uid,
					      box->name, store_strerror(rc));
			return rc;
		}
		if (fd >= 0) {
			if (mbox_entry(x, &msgs[i]) < 0) {
				*x->error_r = xstrfmt("UID %u of %s is too big to export",
						      msgs[i].uid, box->name);
				return STORE_PERMFAIL;
			}
			if (write_all(fd, x->out.data, x->out.len) < 0) {
				*x->error_r =
				    xstrfmt("cannot write %s: %s", where, strerror(errno));
				return STORE_TEMPFAIL;
			}
		} else if ((rc = maildir_entry(x, dir, info.uidvalidity, &msgs[i])) != 0) {
			return rc;
		}
		x->st->messages++;
		x->st->bytes += x->msg.len;
		done++;
		store_xfer_progress(x->o, box->name, done - 1, done, false, &last);
	}
	if (fd < 0 && (rc = write_keywords_file(x, dir)) != 0)
		return rc;
	x->st->mailboxes++;
	store_xfer_progress(x->o, box->name, done, done, true, &last);
	return 0;
}

static int
sync_close(int fd, const char *path, char **error_r)
{
	int rc = fsync(fd);

	if (close(fd) < 0)
		rc = -1;
	if (rc < 0) {
		*error_r = xstrfmt("cannot write %s: %s", path, strerror(errno));
		return STORE_TEMPFAIL;
	}
	return 0;
}

int
store_export(const char *user_id, const char *path, const struct store_xfer_opts *o,
	     struct store_xfer_stats *st, char **error_r)
{
	struct exporter x = {
	    .user_id = user_id, .path = path, .o = o, .st = st, .error_r = error_r};
	struct store_user_summary us;
	struct store_mailbox *boxes;
	const char **subs;
	size_t nboxes, nsubs;
	bool one = o->mailbox != NULL, found = false;
	int rc;

	*error_r = NULL;
	memset(st, 0, sizeof(*st));
	x.a = arena_new(0);
	buf_init(&x.msg, EXPORT_MSG_MAX);
	buf_init(&x.out, 2 * EXPORT_MSG_MAX);
	if ((rc = store_user_get(user_id, x.a, &us)) != STORE_OK) {
		*error_r =
		    rc == STORE_NOTFOUND
			? xstrfmt("no user with stable id \"%s\" in the store", user_id)
			: xstrfmt("cannot read user \"%s\": %s", user_id, store_strerror(rc));
		goto out;
	}
	rc = store_mailbox_list_all(user_id, x.a, &boxes, &nboxes, &subs, &nsubs);
	if (rc != STORE_OK) {
		*error_r =
		    xstrfmt("cannot list the mailboxes of \"%s\": %s", user_id, store_strerror(rc));
		goto out;
	}
	const char *want = one ? store_mbox_canon(o->mailbox) : NULL;
	if (one) {
		for (size_t i = 0; i < nboxes; i++)
			if (strcmp(boxes[i].name, want) == 0 && !boxes[i].noselect)
				found = true;
		if (!found) {
			*error_r =
			    xstrfmt("user \"%s\" has no mailbox \"%s\"", user_id, o->mailbox);
			rc = STORE_NOTFOUND;
			goto out;
		}
	}
	if (one && o->format == STORE_FORMAT_MBOX) {
		/* One file. */
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			*error_r = xstrfmt("cannot create %s: %s", path, strerror(errno));
			rc = errno == EEXIST ? STORE_PERMFAIL : STORE_TEMPFAIL;
			goto out;
		}
		for (size_t i = 0; i < nboxes && rc == 0; i++)
			if (strcmp(boxes[i].name, want) == 0)
				rc = export_box(&x, &boxes[i], fd, NULL, path);
		if (rc == 0)
			rc = sync_close(fd, path, error_r);
		else
			close(fd);
		goto out;
	}
	if ((rc = make_out_dir(path, error_r)) != 0)
		goto out;
	for (size_t i = 0; i < nboxes && rc == 0; i++) {
		const struct store_mailbox *b = &boxes[i];
		if (b->noselect || (one && strcmp(b->name, want) != 0))
			continue;
		bool inbox = strcmp(b->name, "INBOX") == 0;
		const char *folder = store_maildir_folder(x.a, b->name);
		if (o->format == STORE_FORMAT_MBOX) {
			char *file = xstrfmt("%s/%s.mbox", path, folder);
			int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0) {
				*error_r = xstrfmt("cannot create %s: %s", file, strerror(errno));
				rc = STORE_TEMPFAIL;
			} else {
				rc = export_box(&x, b, fd, NULL, file);
				if (rc == 0)
					rc = sync_close(fd, file, error_r);
				else
					close(fd);
			}
			free(file);
			continue;
		}
		/* Maildir++: INBOX (or the one mailbox asked for) at the root. */
		char *dir = one || inbox ? xstrdup(path) : xstrfmt("%s/.%s", path, folder);
		rc = maildir_mkdirs(dir, !(one || inbox), error_r);
		if (rc == 0)
			rc = export_box(&x, b, -1, dir, dir);
		free(dir);
	}
	if (rc == 0 && o->format == STORE_FORMAT_MAILDIR) {
		/* Every file at once rather than one fsync per message. */
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0) {
			*error_r = xstrfmt("cannot sync %s: %s", path, strerror(errno));
			rc = STORE_TEMPFAIL;
		}
		if (fd >= 0)
			close(fd);
	}
out:
	buf_free(&x.msg);
	buf_free(&x.out);
	arena_destroy(&x.a);
	return rc;
}
