/*
 * store_check.c - verifies the mail store against the invariants listed
 * in store_schema.h: reference counts against the messages that use each
 * body, every chunk of every body, mailbox counters against their
 * messages, quota totals against the mailboxes, the MODSEQ index both
 * ways, mboxname against mbox both ways, UIDs below UIDNEXT, MODSEQs at
 * most HIGHESTMODSEQ, the outbound queue (its body references count
 * with the messages', its due index exact both ways), and the orphan marks
 * (each of a user the store has). Records of format 1 and 2 are both
 * understood.
 *
 * It reads inside one transaction (a consistent snapshot even beside a
 * running ternd, whose writer it never blocks) and holds in memory one
 * entry per user, per mailbox and per message (~70 bytes each). Each
 * problem is reported as one line naming user, mailbox, UID or body hash;
 * the return is their number. It fails (-1, *error_r) only when it cannot
 * read: an LMDB error, a missing database, a format newer than this build.
 *
 * store_check() opens its own read-only environment: it must not be called
 * while this process has the store open (LMDB forbids two handles on one
 * environment in one process); store_open() uses store_check_txn() on its
 * own transaction instead (through store_migrate_v1()).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/compat.h"
#include "storage/queue.h"
#include "storage/store_internal.h"

/* Past this many lines the rest are counted, not listed. */
#define REPORT_MAX 10000

struct ck_user {
	uint64_t user;
	char *id;	    /* owned, NUL-terminated stable id */
	uint32_t next_mbox; /* 0 for a v1 record */
	uint64_t sum_bytes, sum_msgs;
	bool quota_seen, has_inbox;
};

struct ck_mbox {
	uint64_t user;
	uint32_t id;
	int version;
	uint16_t flags;
	uint32_t uidnext, messages, unseen, deleted;
	uint64_t highestmodseq, bytes;
	char *name; /* owned */
	/* what its messages add up to */
	uint32_t n, n_unseen, n_deleted;
	uint64_t n_bytes;
};

struct ck_ref {
	uint8_t hash[STORE_HASH_LEN];
	uint64_t body_len;
	uint64_t user;
	uint32_t mbox, uid;
	uint64_t qid; /* non-zero: the reference of a queue entry */
};

struct check {
	MDB_txn *txn;
	MDB_dbi meta, users, mbox, mboxname, msg, modseq, blob, blobref, quota, subs, mime;
	MDB_dbi queue, queue_rcpt, queue_due, orphans, sortkey, annot, acl, aclidx;
	bool has_subs, has_mime, has_queue, has_orphans, has_sortkey, has_annot, has_acl;
	store_report_fn *report;
	void *arg;
	int problems;
	uint32_t format;
	uint64_t next_user_id, next_email_id, next_queue_id;
	bool have_next_user, have_next_email, have_next_queue;

	struct ck_user *u;
	size_t nu, cu;
	struct ck_mbox *m;
	size_t nm, cm;
	struct ck_ref *r;
	size_t nr, cr;
	struct store_check_stats st;
};

static void problem(struct check *c, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
problem(struct check *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	c->problems++;
	if (c->problems > REPORT_MAX) {
		if (c->problems == REPORT_MAX + 1)
			c->report(c->arg, "more problems follow; they are counted, not listed");
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	c->report(c->arg, s != NULL ? s : "a problem (out of memory formatting it)");
	free(s);
}

/* A hash in hex; out has room for exactly 2 * STORE_HASH_LEN + 1. */
static const char *
hexhash(const uint8_t *h, char out[2 * STORE_HASH_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < STORE_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[2 * STORE_HASH_LEN] = '\0';
	return out;
}

static int
cmp_user(const void *x, const void *y)
{
	const struct ck_user *a = x, *b = y;

	return a->user < b->user ? -1 : a->user > b->user;
}

static struct ck_user *
user_find(struct check *c, uint64_t user)
{
	struct ck_user key = {.user = user};

	return c->nu > 0 ? bsearch(&key, c->u, c->nu, sizeof(*c->u), cmp_user) : NULL;
}

/* The stable id of a user for messages ("?" when unknown). */
static const char *
user_name(struct check *c, uint64_t user)
{
	struct ck_user *u = user_find(c, user);

	return u != NULL ? u->id : "?";
}

static int
cmp_mbox(const void *x, const void *y)
{
	const struct ck_mbox *a = x, *b = y;

	if (a->user != b->user)
		return a->user < b->user ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static struct ck_mbox *
mbox_find(struct check *c, uint64_t user, uint32_t id)
{
	struct ck_mbox key = {.user = user, .id = id};

	return c->nm > 0 ? bsearch(&key, c->m, c->nm, sizeof(*c->m), cmp_mbox) : NULL;
}

static const char *
mbox_name(struct check *c, uint64_t user, uint32_t id)
{
	struct ck_mbox *m = mbox_find(c, user, id);

	return m != NULL ? m->name : "?";
}

static int
cmp_ref(const void *x, const void *y)
{
	return memcmp(x, y, STORE_HASH_LEN);
}

#define WHERE_MBOX "user %llu (%s) mailbox %u (%s)"
#define ARGS_MBOX(c, user, id)                                                                     \
	(unsigned long long)(user), user_name(c, user), (unsigned)(id), mbox_name(c, user, id)

static int
open_dbs(struct check *c, char **error_r)
{
	static const struct {
		const char *name;
		size_t off;
		bool optional; /* format 2 only */
	} dbs[] = {
	    {"meta", offsetof(struct check, meta), false},
	    {"users", offsetof(struct check, users), false},
	    {"mbox", offsetof(struct check, mbox), false},
	    {"mboxname", offsetof(struct check, mboxname), false},
	    {"msg", offsetof(struct check, msg), false},
	    {"modseq", offsetof(struct check, modseq), false},
	    {"blob", offsetof(struct check, blob), false},
	    {"blobref", offsetof(struct check, blobref), false},
	    {"quota", offsetof(struct check, quota), false},
	    {"subs", offsetof(struct check, subs), true},
	    {"mime", offsetof(struct check, mime), true},
	    /* absent in a store no ternd with a queue has opened: empty */
	    {"queue", offsetof(struct check, queue), true},
	    {"queue_rcpt", offsetof(struct check, queue_rcpt), true},
	    {"queue_due", offsetof(struct check, queue_due), true},
	    /* absent before the first open by a ternd that marks orphans */
	    {"orphans", offsetof(struct check, orphans), true},
	    /* absent before the first open by a ternd with SORT */
	    {"sortkey", offsetof(struct check, sortkey), true},
	    /* absent before the first open by a ternd with METADATA */
	    {"annot", offsetof(struct check, annot), true},
	    /* absent before the first open by a ternd with ACL */
	    {"acl", offsetof(struct check, acl), true},
	    {"aclidx", offsetof(struct check, aclidx), true},
	};

	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)c + dbs[i].off);
		int rc = mdb_dbi_open(c->txn, dbs[i].name, 0, dbi);
		if (rc == MDB_NOTFOUND && dbs[i].optional)
			continue;
		if (rc != 0) {
			*error_r =
			    xstrfmt("cannot open database %s: %s%s", dbs[i].name, mdb_strerror(rc),
				    rc == MDB_NOTFOUND ? " (not a Tern mail store?)" : "");
			return -1;
		}
		if (dbi == &c->subs)
			c->has_subs = true;
		if (dbi == &c->mime)
			c->has_mime = true;
		if (dbi == &c->queue_due)
			c->has_queue = true;
		if (dbi == &c->orphans)
			c->has_orphans = true;
		if (dbi == &c->sortkey)
			c->has_sortkey = true;
		if (dbi == &c->annot)
			c->has_annot = true;
		if (dbi == &c->aclidx)
			c->has_acl = c->acl != 0;
	}
	if (c->has_queue && (c->queue == 0 || c->queue_rcpt == 0)) {
		/* All three are created together; one alone is not a queue. */
		*error_r = xstrfmt("the queue databases are incomplete");
		return -1;
	}
	return 0;
}

static int
meta_u64(struct check *c, const char *key, uint64_t *v_r, bool *have_r)
{
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key}, v;
	int rc = mdb_get(c->txn, c->meta, &k, &v);

	*have_r = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != 8) {
		problem(c, "meta: %s has %zu bytes, not 8", key, v.mv_size);
		return 0;
	}
	*v_r = be_get64(v.mv_data);
	*have_r = true;
	return 0;
}

static int
check_meta(struct check *c, char **error_r)
{
	MDB_val k = {.mv_size = 6, .mv_data = (void *)"format"}, v;
	int rc = mdb_get(c->txn, c->meta, &k, &v);

	if (rc == MDB_NOTFOUND) {
		problem(c, "meta: no format version");
		c->format = STORE_FORMAT;
	} else if (rc != 0) {
		*error_r = xstrfmt("cannot read the format version: %s", mdb_strerror(rc));
		return -1;
	} else if (v.mv_size != 4) {
		problem(c, "meta: the format version has %zu bytes, not 4", v.mv_size);
		c->format = STORE_FORMAT;
	} else {
		c->format = be_get32(v.mv_data);
		if (c->format > STORE_FORMAT) {
			*error_r = xstrfmt("store format version %u is newer than this ternd "
					   "supports (%u); use a newer ternd",
					   c->format, STORE_FORMAT);
			return -1;
		}
		if (c->format < 1) {
			problem(c, "meta: unknown format version %u", c->format);
			c->format = STORE_FORMAT;
		}
	}
	c->st.format = c->format;
	if ((rc = meta_u64(c, "next_user_id", &c->next_user_id, &c->have_next_user)) != 0 ||
	    (rc = meta_u64(c, "next_email_id", &c->next_email_id, &c->have_next_email)) != 0 ||
	    (rc = meta_u64(c, "next_queue_id", &c->next_queue_id, &c->have_next_queue)) != 0) {
		*error_r = xstrfmt("cannot read meta: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

static int
scan_users(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->users, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct user_rec r;
		char *id = strndup(k.mv_data, k.mv_size);

		if (id == NULL) {
			rc = ENOMEM;
			break;
		}
		if (k.mv_size == 0 || k.mv_size > STORE_MAX_ID_LEN ||
		    memchr(k.mv_data, '\0', k.mv_size) != NULL) {
			problem(c, "users: a malformed stable id of %zu bytes", k.mv_size);
			free(id);
			continue;
		}
		if (store_user_decode(v.mv_data, v.mv_size, &r) < 0) {
			problem(c, "user \"%s\": the user record does not decode (%zu bytes)", id,
				v.mv_size);
			free(id);
			continue;
		}
		if (r.next_mbox != 0 && c->format < 2)
			problem(c, "user \"%s\": a format-2 user record in a format-%u store", id,
				c->format);
		if (r.user_id == 0 || (c->have_next_user && r.user_id >= c->next_user_id))
			problem(c, "user \"%s\": user id %llu is not below next_user_id %llu", id,
				(unsigned long long)r.user_id, (unsigned long long)c->next_user_id);
		if (c->nu == c->cu) {
			c->cu = c->cu == 0 ? 64 : c->cu * 2;
			c->u = xrealloc(c->u, c->cu * sizeof(*c->u));
		}
		c->u[c->nu++] =
		    (struct ck_user){.user = r.user_id, .id = id, .next_mbox = r.next_mbox};
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	if (c->nu > 0 && !c->have_next_user)
		problem(c, "meta: no next_user_id although there are users");
	if (c->nu > 0) /* qsort(NULL, 0) is undefined: a store of only a queue */
		qsort(c->u, c->nu, sizeof(*c->u), cmp_user);
	for (size_t i = 1; i < c->nu; i++)
		if (c->u[i].user == c->u[i - 1].user)
			problem(c, "users \"%s\" and \"%s\" share user id %llu", c->u[i - 1].id,
				c->u[i].id, (unsigned long long)c->u[i].user);
	c->st.users = c->nu;
	return 0;
}

/* The mboxname entry of (user, name): 0 with *id_r, or MDB_NOTFOUND. */
static int
name_get(struct check *c, uint64_t user, const char *name, size_t n, uint32_t *id_r, bool *bad_r)
{
	uint8_t key[8 + STORE_MAX_NAME_LEN];
	MDB_val k = {.mv_size = 8 + n, .mv_data = key}, v;
	int rc;

	*bad_r = false;
	if (n == 0 || n > STORE_MAX_NAME_LEN) {
		*bad_r = true;
		return 0;
	}
	be_put64(key, user);
	memcpy(key + 8, name, n);
	if ((rc = mdb_get(c->txn, c->mboxname, &k, &v)) != 0)
		return rc;
	if (v.mv_size != 4) {
		*bad_r = true;
		return 0;
	}
	*id_r = be_get32(v.mv_data);
	return 0;
}

static int
scan_mboxes(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->mbox, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_rec r;
		uint64_t user;
		uint32_t id, nid;
		bool bad;

		if (k.mv_size != STORE_MBOX_KEY_LEN) {
			problem(c, "mbox: a key of %zu bytes, not %d", k.mv_size,
				STORE_MBOX_KEY_LEN);
			continue;
		}
		user = be_get64(k.mv_data);
		id = be_get32((const uint8_t *)k.mv_data + 8);
		struct ck_user *u = user_find(c, user);
		if (u == NULL)
			problem(c, "mailbox %u of user %llu: no such user", id,
				(unsigned long long)user);
		if (store_mbox_decode(v.mv_data, v.mv_size, &r) < 0) {
			problem(c, "user %llu (%s) mailbox %u: the mailbox record does not decode",
				(unsigned long long)user, user_name(c, user), id);
			continue;
		}
		int version = ((const uint8_t *)v.mv_data)[0];
		char *name = strndup(r.name, r.name_len);
		if (name == NULL) {
			rc = ENOMEM;
			break;
		}
		if (c->nm == c->cm) {
			c->cm = c->cm == 0 ? 64 : c->cm * 2;
			c->m = xrealloc(c->m, c->cm * sizeof(*c->m));
		}
		/* The mbox db is in key order, so c->m stays sorted. */
		c->m[c->nm++] = (struct ck_mbox){
		    .user = user,
		    .id = id,
		    .version = version,
		    .flags = r.flags,
		    .uidnext = r.uidnext,
		    .messages = r.messages,
		    .unseen = r.unseen,
		    .deleted = r.deleted,
		    .highestmodseq = r.highestmodseq,
		    .bytes = r.bytes,
		    .name = name,
		};
		if (version > 1 && c->format < 2)
			problem(c, WHERE_MBOX ": a format-2 record in a format-%u store",
				ARGS_MBOX(c, user, id), c->format);
		if (id == 0)
			problem(c, "user %llu (%s): a mailbox with id 0", (unsigned long long)user,
				user_name(c, user));
		if (u != NULL && u->next_mbox != 0 && id >= u->next_mbox)
			problem(c, WHERE_MBOX ": id not below the user's next mailbox id %u",
				ARGS_MBOX(c, user, id), u->next_mbox);
		if (u != NULL && id == STORE_INBOX_ID) {
			if (strcmp(name, "INBOX") == 0)
				u->has_inbox = true;
			else
				problem(c, WHERE_MBOX ": mailbox 1 must be INBOX",
					ARGS_MBOX(c, user, id));
		}
		if (r.uidvalidity == 0)
			problem(c, WHERE_MBOX ": UIDVALIDITY is 0", ARGS_MBOX(c, user, id));
		if (r.uidnext == 0)
			problem(c, WHERE_MBOX ": UIDNEXT is 0", ARGS_MBOX(c, user, id));
		rc = name_get(c, user, r.name, r.name_len, &nid, &bad);
		if (rc == MDB_NOTFOUND || (rc == 0 && bad))
			problem(c, WHERE_MBOX ": no valid mboxname entry for its name",
				ARGS_MBOX(c, user, id));
		else if (rc != 0)
			break;
		else if (nid != id)
			problem(c, WHERE_MBOX ": its name points at mailbox %u instead",
				ARGS_MBOX(c, user, id), nid);
		rc = 0;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	c->st.mailboxes = c->nm;
	for (size_t i = 0; i < c->nu; i++)
		if (!c->u[i].has_inbox)
			problem(c, "user %llu (%s): no INBOX (mailbox 1)",
				(unsigned long long)c->u[i].user, c->u[i].id);
	return 0;
}

static int
scan_names(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->mboxname, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= 8 || v.mv_size != 4) {
			problem(c, "mboxname: a malformed entry (key %zu bytes, value %zu bytes)",
				k.mv_size, v.mv_size);
			continue;
		}
		uint64_t user = be_get64(k.mv_data);
		uint32_t id = be_get32(v.mv_data);
		const char *name = (const char *)k.mv_data + 8;
		int nlen = (int)(k.mv_size - 8);
		struct ck_mbox *m = mbox_find(c, user, id);

		if (m == NULL) {
			problem(c,
				"user %llu (%s): name \"%.*s\" points at mailbox %u, which "
				"does not exist",
				(unsigned long long)user, user_name(c, user), nlen, name, id);
			continue;
		}
		if (strlen(m->name) != (size_t)nlen || memcmp(m->name, name, (size_t)nlen) != 0)
			problem(c, WHERE_MBOX ": name \"%.*s\" points at it too",
				ARGS_MBOX(c, user, id), nlen, name);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
scan_msgs(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t j = 0; /* c->m and msg are both in (user, mailbox) order */
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->msg, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct msg_rec r;

		if (k.mv_size != STORE_MSG_KEY_LEN) {
			problem(c, "msg: a key of %zu bytes, not %d", k.mv_size, STORE_MSG_KEY_LEN);
			continue;
		}
		uint64_t user = be_get64(k.mv_data);
		uint32_t id = be_get32((const uint8_t *)k.mv_data + 8);
		uint32_t uid = be_get32((const uint8_t *)k.mv_data + 12);
		struct ck_mbox key = {.user = user, .id = id};
		while (j < c->nm && cmp_mbox(&c->m[j], &key) < 0)
			j++;
		struct ck_mbox *m = j < c->nm && cmp_mbox(&c->m[j], &key) == 0 ? &c->m[j] : NULL;

		c->st.messages++;
		if (m == NULL) {
			problem(c, WHERE_MBOX " uid %u: a message in a mailbox that does not exist",
				ARGS_MBOX(c, user, id), uid);
			continue;
		}
		if (store_msg_decode(v.mv_data, v.mv_size, &r) < 0) {
			problem(c, WHERE_MBOX " uid %u: the message record does not decode",
				ARGS_MBOX(c, user, id), uid);
			continue;
		}
		int version = ((const uint8_t *)v.mv_data)[0];
		if (version > 1 && c->format < 2)
			problem(c, WHERE_MBOX " uid %u: a format-2 record in a format-%u store",
				ARGS_MBOX(c, user, id), uid, c->format);
		if (uid == 0 || uid >= m->uidnext)
			problem(c, WHERE_MBOX " uid %u: UID not below UIDNEXT %u",
				ARGS_MBOX(c, user, id), uid, m->uidnext);
		if (r.modseq == 0 || r.modseq > m->highestmodseq)
			problem(c, WHERE_MBOX " uid %u: MODSEQ %llu above HIGHESTMODSEQ %llu",
				ARGS_MBOX(c, user, id), uid, (unsigned long long)r.modseq,
				(unsigned long long)m->highestmodseq);
		if (r.flags & ~(uint32_t)STORE_FLAGS_ALL)
			problem(c, WHERE_MBOX " uid %u: unknown flag bits 0x%x",
				ARGS_MBOX(c, user, id), uid, r.flags & ~(uint32_t)STORE_FLAGS_ALL);
		if (r.email_id != 0 && (!c->have_next_email || r.email_id >= c->next_email_id))
			problem(c, WHERE_MBOX " uid %u: EMAILID %llu not below next_email_id %llu",
				ARGS_MBOX(c, user, id), uid, (unsigned long long)r.email_id,
				(unsigned long long)c->next_email_id);
		m->n++;
		m->n_bytes += r.size;
		if (!(r.flags & STORE_FLAG_SEEN))
			m->n_unseen++;
		if (r.flags & STORE_FLAG_DELETED)
			m->n_deleted++;

		/* Its kind-0 MODSEQ entry. */
		uint8_t mk[STORE_MODSEQ_KEY_LEN];
		MDB_val mkv = {.mv_size = sizeof(mk), .mv_data = mk}, mv;
		store_key_modseq(mk, user, id, r.modseq);
		int grc = mdb_get(c->txn, c->modseq, &mkv, &mv);
		if (grc == MDB_NOTFOUND)
			problem(c, WHERE_MBOX " uid %u: no MODSEQ index entry for MODSEQ %llu",
				ARGS_MBOX(c, user, id), uid, (unsigned long long)r.modseq);
		else if (grc != 0) {
			rc = grc;
			break;
		} else if ((mv.mv_size != 4 && mv.mv_size != 5) || be_get32(mv.mv_data) != uid ||
			   (mv.mv_size == 5 &&
			    ((const uint8_t *)mv.mv_data)[4] != STORE_MODSEQ_LIVE))
			problem(c, WHERE_MBOX " uid %u: the MODSEQ index entry %llu is not its own",
				ARGS_MBOX(c, user, id), uid, (unsigned long long)r.modseq);

		if (c->nr == c->cr) {
			c->cr = c->cr == 0 ? 256 : c->cr * 2;
			c->r = xrealloc(c->r, c->cr * sizeof(*c->r));
		}
		struct ck_ref *ref = &c->r[c->nr++];
		memcpy(ref->hash, r.hash, STORE_HASH_LEN);
		ref->body_len = r.size - r.trace_len;
		ref->user = user;
		ref->mbox = id;
		ref->uid = uid;
		ref->qid = 0;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;

	for (size_t i = 0; i < c->nm; i++) {
		struct ck_mbox *m = &c->m[i];
		struct ck_user *u = user_find(c, m->user);
		if (m->n != m->messages)
			problem(c, WHERE_MBOX ": counts %u messages, has %u",
				ARGS_MBOX(c, m->user, m->id), m->messages, m->n);
		if (m->n_bytes != m->bytes)
			problem(c, WHERE_MBOX ": counts %llu bytes, its messages add up to %llu",
				ARGS_MBOX(c, m->user, m->id), (unsigned long long)m->bytes,
				(unsigned long long)m->n_bytes);
		/* A v1 record did not keep these (the migration counts them). */
		if (m->version >= 2 && m->n_unseen != m->unseen)
			problem(c, WHERE_MBOX ": counts %u unseen, has %u",
				ARGS_MBOX(c, m->user, m->id), m->unseen, m->n_unseen);
		if (m->version >= 2 && m->n_deleted != m->deleted)
			problem(c, WHERE_MBOX ": counts %u \\Deleted, has %u",
				ARGS_MBOX(c, m->user, m->id), m->deleted, m->n_deleted);
		if ((m->flags & MBOX_F_NOSELECT) && m->n > 0)
			problem(c, WHERE_MBOX ": \\Noselect but holds %u messages",
				ARGS_MBOX(c, m->user, m->id), m->n);
		if (u != NULL) {
			u->sum_bytes += m->n_bytes;
			u->sum_msgs += m->n;
		}
	}
	return 0;
}

static int
scan_modseq(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t j = 0;
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->modseq, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_MODSEQ_KEY_LEN || (v.mv_size != 4 && v.mv_size != 5)) {
			problem(c, "modseq: a malformed entry (key %zu bytes, value %zu bytes)",
				k.mv_size, v.mv_size);
			continue;
		}
		uint64_t user = be_get64(k.mv_data);
		uint32_t id = be_get32((const uint8_t *)k.mv_data + 8);
		uint64_t modseq = be_get64((const uint8_t *)k.mv_data + 12);
		uint32_t uid = be_get32(v.mv_data);
		int kind = v.mv_size == 5 ? ((const uint8_t *)v.mv_data)[4] : STORE_MODSEQ_LIVE;
		struct ck_mbox key = {.user = user, .id = id};
		while (j < c->nm && cmp_mbox(&c->m[j], &key) < 0)
			j++;
		struct ck_mbox *m = j < c->nm && cmp_mbox(&c->m[j], &key) == 0 ? &c->m[j] : NULL;

		if (m == NULL) {
			problem(c,
				WHERE_MBOX ": MODSEQ entry %llu (uid %u) for a mailbox that does "
					   "not exist",
				ARGS_MBOX(c, user, id), (unsigned long long)modseq, uid);
			continue;
		}
		if (modseq == 0 || modseq > m->highestmodseq)
			problem(c,
				WHERE_MBOX ": MODSEQ entry %llu (uid %u) above HIGHESTMODSEQ %llu",
				ARGS_MBOX(c, user, id), (unsigned long long)modseq, uid,
				(unsigned long long)m->highestmodseq);
		if (kind != STORE_MODSEQ_LIVE && kind != STORE_MODSEQ_EXPUNGED) {
			problem(c, WHERE_MBOX ": MODSEQ entry %llu (uid %u) of unknown kind %d",
				ARGS_MBOX(c, user, id), (unsigned long long)modseq, uid, kind);
			continue;
		}
		if (kind == STORE_MODSEQ_EXPUNGED && c->format < 2)
			problem(c, WHERE_MBOX ": a tombstone (MODSEQ %llu) in a format-%u store",
				ARGS_MBOX(c, user, id), (unsigned long long)modseq, c->format);

		uint8_t mk[STORE_MSG_KEY_LEN];
		MDB_val mkv = {.mv_size = sizeof(mk), .mv_data = mk}, mv;
		store_key_msg(mk, user, id, uid);
		int grc = mdb_get(c->txn, c->msg, &mkv, &mv);
		if (grc != 0 && grc != MDB_NOTFOUND) {
			rc = grc;
			break;
		}
		if (kind == STORE_MODSEQ_EXPUNGED) {
			/* UIDs are never reused: an expunged one cannot be back. */
			if (uid == 0 || uid >= m->uidnext)
				problem(c,
					WHERE_MBOX " uid %u: expunged at MODSEQ %llu but not "
						   "below UIDNEXT %u",
					ARGS_MBOX(c, user, id), uid, (unsigned long long)modseq,
					m->uidnext);
			if (grc == 0)
				problem(c,
					WHERE_MBOX " uid %u: expunged at MODSEQ %llu but present",
					ARGS_MBOX(c, user, id), uid, (unsigned long long)modseq);
			continue;
		}
		struct msg_rec r;
		if (grc == MDB_NOTFOUND)
			problem(c,
				WHERE_MBOX " uid %u: MODSEQ entry %llu points at a message that "
					   "does not exist",
				ARGS_MBOX(c, user, id), uid, (unsigned long long)modseq);
		else if (store_msg_decode(mv.mv_data, mv.mv_size, &r) == 0 && r.modseq != modseq)
			problem(c,
				WHERE_MBOX " uid %u: MODSEQ entry %llu, but the message has "
					   "MODSEQ %llu",
				ARGS_MBOX(c, user, id), uid, (unsigned long long)modseq,
				(unsigned long long)r.modseq);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The blobref of hash (0, MDB_NOTFOUND, or an LMDB code); *bad_r when it
 * does not decode. */
static int
blobref_get(struct check *c, const uint8_t *hash, struct blobref_rec *r, bool *bad_r)
{
	MDB_val k = {.mv_size = STORE_HASH_LEN, .mv_data = (void *)hash}, v;
	int rc = mdb_get(c->txn, c->blobref, &k, &v);

	*bad_r = false;
	if (rc == 0 && store_blobref_decode(v.mv_data, v.mv_size, r) < 0)
		*bad_r = true;
	return rc;
}

static int
check_chunks(struct check *c, const uint8_t *hash, const struct blobref_rec *br)
{
	char hx[2 * STORE_HASH_LEN + 1];

	for (uint32_t i = 0; i < br->nchunks; i++) {
		uint8_t key[STORE_BLOB_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
		int rc;

		store_key_blob(key, hash, i);
		rc = mdb_get(c->txn, c->blob, &k, &v);
		if (rc == MDB_NOTFOUND) {
			problem(c, "body %s: chunk %u of %u is missing", hexhash(hash, hx), i,
				br->nchunks);
			continue;
		}
		if (rc != 0)
			return rc;
		/* The frame header says how many bytes it decompresses to;
		 * XXX the frames are not decompressed (a deep check would). */
		unsigned long long n = ZSTD_getFrameContentSize(v.mv_data, v.mv_size);
		uint64_t want = i + 1 < br->nchunks ? br->chunk_size
						    : br->length - (uint64_t)i * br->chunk_size;
		if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ||
		    ZSTD_isError(ZSTD_findFrameCompressedSize(v.mv_data, v.mv_size)) ||
		    ZSTD_findFrameCompressedSize(v.mv_data, v.mv_size) != v.mv_size)
			problem(c, "body %s: chunk %u is not one whole zstd frame",
				hexhash(hash, hx), i);
		else if (n != want)
			problem(c, "body %s: chunk %u holds %llu bytes, expected %llu",
				hexhash(hash, hx), i, n, (unsigned long long)want);
	}
	return 0;
}

static int
scan_blobs(struct check *c)
{
	char hx[2 * STORE_HASH_LEN + 1];
	MDB_cursor *cur;
	MDB_val k, v;
	size_t j = 0;
	int rc;

	if (c->nr > 0)
		qsort(c->r, c->nr, sizeof(*c->r), cmp_ref);
	if ((rc = mdb_cursor_open(c->txn, c->blobref, &cur)) != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	/* Merge the sorted references with the blobref db. */
	for (;;) {
		bool have_db = rc == 0;
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		if (!have_db && j >= c->nr) {
			rc = 0;
			break;
		}
		if (have_db && k.mv_size != STORE_HASH_LEN) {
			problem(c, "blobref: a key of %zu bytes, not %d", k.mv_size,
				STORE_HASH_LEN);
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue;
		}
		int cmp = !have_db     ? -1
			  : j >= c->nr ? 1
				       : memcmp(c->r[j].hash, k.mv_data, STORE_HASH_LEN);
		if (cmp < 0) {
			/* Messages whose body is gone. */
			if (c->r[j].qid != 0)
				problem(c, "queue entry %016llx: its body %s does not exist",
					(unsigned long long)c->r[j].qid, hexhash(c->r[j].hash, hx));
			else
				problem(c, WHERE_MBOX " uid %u: its body %s does not exist",
					ARGS_MBOX(c, c->r[j].user, c->r[j].mbox), c->r[j].uid,
					hexhash(c->r[j].hash, hx));
			j++;
			continue;
		}
		const uint8_t *hash = k.mv_data;
		struct blobref_rec br;
		uint32_t refs = 0;
		bool bad = store_blobref_decode(v.mv_data, v.mv_size, &br) < 0;

		c->st.bodies++;
		if (bad)
			problem(c, "body %s: the blobref record does not decode",
				hexhash(hash, hx));
		for (; j < c->nr && memcmp(c->r[j].hash, hash, STORE_HASH_LEN) == 0; j++) {
			refs++;
			if (!bad && c->r[j].body_len != br.length && c->r[j].qid != 0)
				problem(c,
					"queue entry %016llx: body %s is %llu bytes, the entry "
					"says %llu",
					(unsigned long long)c->r[j].qid, hexhash(hash, hx),
					(unsigned long long)br.length,
					(unsigned long long)c->r[j].body_len);
			else if (!bad && c->r[j].body_len != br.length)
				problem(c,
					WHERE_MBOX " uid %u: body %s is %llu bytes, the message "
						   "says %llu",
					ARGS_MBOX(c, c->r[j].user, c->r[j].mbox), c->r[j].uid,
					hexhash(hash, hx), (unsigned long long)br.length,
					(unsigned long long)c->r[j].body_len);
		}
		if (!bad) {
			c->st.body_bytes += br.length;
			if (br.refcount != refs)
				problem(c,
					"body %s: reference count %u, but %u messages use it "
					"(queue entries counted)",
					hexhash(hash, hx), br.refcount, refs);
			if (br.chunk_size != STORE_CHUNK_SIZE)
				problem(c, "body %s: chunk size %u, not %u", hexhash(hash, hx),
					br.chunk_size, STORE_CHUNK_SIZE);
			else if ((rc = check_chunks(c, hash, &br)) != 0)
				break;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc != 0)
		return rc;

	/* Chunks of no body, or past its last chunk. */
	uint8_t last[STORE_HASH_LEN];
	struct blobref_rec br;
	int brc = MDB_NOTFOUND;
	bool bad = false, have_last = false;
	if ((rc = mdb_cursor_open(c->txn, c->blob, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_BLOB_KEY_LEN) {
			problem(c, "blob: a key of %zu bytes, not %d", k.mv_size,
				STORE_BLOB_KEY_LEN);
			continue;
		}
		uint32_t chunk = be_get32((const uint8_t *)k.mv_data + STORE_HASH_LEN);
		if (!have_last || memcmp(last, k.mv_data, STORE_HASH_LEN) != 0) {
			memcpy(last, k.mv_data, STORE_HASH_LEN);
			have_last = true;
			brc = blobref_get(c, last, &br, &bad);
			if (brc != 0 && brc != MDB_NOTFOUND) {
				rc = brc;
				break;
			}
			if (brc == MDB_NOTFOUND)
				problem(c,
					"body %s: chunks without a blobref record (an orphan "
					"body)",
					hexhash(last, hx));
		}
		if (brc == 0 && !bad && chunk >= br.nchunks)
			problem(c, "body %s: chunk %u beyond its %u chunks", hexhash(last, hx),
				chunk, br.nchunks);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;

	if (!c->has_mime)
		return 0;
	if ((rc = mdb_cursor_open(c->txn, c->mime, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_HASH_LEN) {
			problem(c, "mime: a key of %zu bytes, not %d", k.mv_size, STORE_HASH_LEN);
			continue;
		}
		brc = blobref_get(c, k.mv_data, &br, &bad);
		if (brc == MDB_NOTFOUND)
			problem(c, "body %s: a MIME structure without its body",
				hexhash(k.mv_data, hx));
		else if (brc != 0) {
			rc = brc;
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static struct ck_ref *
ref_add(struct check *c)
{
	if (c->nr == c->cr) {
		c->cr = c->cr == 0 ? 256 : c->cr * 2;
		c->r = xrealloc(c->r, c->cr * sizeof(*c->r));
	}
	struct ck_ref *ref = &c->r[c->nr++];
	memset(ref, 0, sizeof(*ref));
	return ref;
}

/* One queue entry: its recipients idx 0..nrcpts-1, each pending one with
 * its queue_due entry; at least one pending. */
static int
check_queue_entry(struct check *c, uint64_t qid, const struct queue_msg_rec *m)
{
	uint32_t pending = 0;
	int rc;

	for (uint32_t i = 0; i < m->nrcpts; i++) {
		uint8_t rk[QUEUE_RCPT_KEY_LEN], dk[QUEUE_DUE_KEY_LEN];
		MDB_val k = {.mv_size = sizeof(rk), .mv_data = rk}, v;
		struct queue_rcpt_rec r;

		queue_key_rcpt(rk, qid, i);
		rc = mdb_get(c->txn, c->queue_rcpt, &k, &v);
		if (rc == MDB_NOTFOUND) {
			problem(c, "queue entry %016llx: recipient %u of %u is missing",
				(unsigned long long)qid, i, m->nrcpts);
			continue;
		}
		if (rc != 0)
			return rc;
		if (queue_rcpt_decode(v.mv_data, v.mv_size, &r) < 0) {
			problem(c, "queue entry %016llx: recipient %u does not decode",
				(unsigned long long)qid, i);
			continue;
		}
		if (r.state != QUEUE_R_PENDING)
			continue;
		pending++;
		queue_key_due(dk, r.next_attempt, qid, i);
		k.mv_size = sizeof(dk);
		k.mv_data = dk;
		rc = mdb_get(c->txn, c->queue_due, &k, &v);
		if (m->flags & QUEUE_F_HELD) {
			/* Held by an admin: its recipients are never due. */
			if (rc == 0)
				problem(
				    c, "queue entry %016llx: recipient %u is held but in queue_due",
				    (unsigned long long)qid, i);
			else if (rc != MDB_NOTFOUND)
				return rc;
			continue;
		}
		if (rc == MDB_NOTFOUND)
			problem(c,
				"queue entry %016llx: recipient %u is pending but not in "
				"queue_due at %lld",
				(unsigned long long)qid, i, (long long)r.next_attempt);
		else if (rc != 0)
			return rc;
	}
	if (pending == 0)
		problem(c, "queue entry %016llx: every recipient is final but the entry remains",
			(unsigned long long)qid);
	return 0;
}

/* The outbound queue: entries, their recipients and the due index, and
 * each entry's reference to its body (added to c->r for scan_blobs). */
static int
scan_queue(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t last_qid = 0;
	uint32_t last_n = 0;
	int rc;

	if (!c->has_queue)
		return 0;
	if ((rc = mdb_cursor_open(c->txn, c->queue, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_msg_rec m;

		if (k.mv_size != QUEUE_KEY_LEN) {
			problem(c, "queue: a key of %zu bytes, not %d", k.mv_size, QUEUE_KEY_LEN);
			continue;
		}
		uint64_t qid = be_get64(k.mv_data);
		if (qid == 0 || !c->have_next_queue || qid >= c->next_queue_id)
			problem(c, "queue entry %016llx: id not below next_queue_id %llu",
				(unsigned long long)qid, (unsigned long long)c->next_queue_id);
		if (queue_msg_decode(v.mv_data, v.mv_size, &m) < 0) {
			problem(c, "queue entry %016llx: the record does not decode",
				(unsigned long long)qid);
			continue;
		}
		struct ck_ref *ref = ref_add(c);
		memcpy(ref->hash, m.hash, STORE_HASH_LEN);
		ref->body_len = m.size;
		ref->qid = qid;
		if ((rc = check_queue_entry(c, qid, &m)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;

	/* Recipient records of no entry, or beyond its count (both dbs are in
	 * queue id order). */
	if ((rc = mdb_cursor_open(c->txn, c->queue_rcpt, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != QUEUE_RCPT_KEY_LEN) {
			problem(c, "queue_rcpt: a key of %zu bytes, not %d", k.mv_size,
				QUEUE_RCPT_KEY_LEN);
			continue;
		}
		uint64_t qid = be_get64(k.mv_data);
		uint32_t idx = be_get32((const uint8_t *)k.mv_data + 8);
		if (qid != last_qid) {
			uint8_t qk[QUEUE_KEY_LEN];
			MDB_val qkv = {.mv_size = sizeof(qk), .mv_data = qk}, qv;
			struct queue_msg_rec m;
			be_put64(qk, qid);
			int grc = mdb_get(c->txn, c->queue, &qkv, &qv);
			if (grc != 0 && grc != MDB_NOTFOUND) {
				rc = grc;
				break;
			}
			last_qid = qid;
			last_n = grc == 0 && queue_msg_decode(qv.mv_data, qv.mv_size, &m) == 0
				     ? m.nrcpts
				     : 0;
			if (grc == MDB_NOTFOUND)
				problem(c, "queue entry %016llx: recipients without the entry",
					(unsigned long long)qid);
		}
		if (last_n != 0 && idx >= last_n)
			problem(c, "queue entry %016llx: recipient %u beyond its %u",
				(unsigned long long)qid, idx, last_n);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;

	/* Every due entry is a pending recipient due at that time. */
	if ((rc = mdb_cursor_open(c->txn, c->queue_due, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_rcpt_rec r;

		if (k.mv_size != QUEUE_DUE_KEY_LEN || v.mv_size != 0) {
			problem(c, "queue_due: a malformed entry (key %zu bytes, value %zu bytes)",
				k.mv_size, v.mv_size);
			continue;
		}
		uint64_t when = be_get64(k.mv_data);
		uint64_t qid = be_get64((const uint8_t *)k.mv_data + 8);
		uint32_t idx = be_get32((const uint8_t *)k.mv_data + 16);
		uint8_t rk[QUEUE_RCPT_KEY_LEN];
		MDB_val rkv = {.mv_size = sizeof(rk), .mv_data = rk}, rv;
		queue_key_rcpt(rk, qid, idx);
		int grc = mdb_get(c->txn, c->queue_rcpt, &rkv, &rv);
		if (grc != 0 && grc != MDB_NOTFOUND) {
			rc = grc;
			break;
		}
		if (grc == MDB_NOTFOUND || queue_rcpt_decode(rv.mv_data, rv.mv_size, &r) < 0)
			problem(c,
				"queue_due at %llu: queue entry %016llx recipient %u does not "
				"exist",
				(unsigned long long)when, (unsigned long long)qid, idx);
		else if (r.state != QUEUE_R_PENDING)
			problem(c, "queue_due at %llu: queue entry %016llx recipient %u is final",
				(unsigned long long)when, (unsigned long long)qid, idx);
		else if ((uint64_t)(r.next_attempt < 0 ? 0 : r.next_attempt) != when)
			problem(c,
				"queue_due at %llu: queue entry %016llx recipient %u is due at "
				"%lld",
				(unsigned long long)when, (unsigned long long)qid, idx,
				(long long)r.next_attempt);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
scan_quota(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(c->txn, c->quota, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || v.mv_size != 16) {
			problem(c, "quota: a malformed entry (key %zu bytes, value %zu bytes)",
				k.mv_size, v.mv_size);
			continue;
		}
		uint64_t user = be_get64(k.mv_data);
		uint64_t bytes = be_get64(v.mv_data);
		uint64_t msgs = be_get64((const uint8_t *)v.mv_data + 8);
		struct ck_user *u = user_find(c, user);
		if (u == NULL) {
			problem(c, "user %llu: quota usage of a user that does not exist",
				(unsigned long long)user);
			continue;
		}
		u->quota_seen = true;
		if (bytes != u->sum_bytes || msgs != u->sum_msgs)
			problem(c,
				"user %llu (%s): quota usage says %llu bytes in %llu messages, "
				"the mailboxes hold %llu bytes in %llu messages",
				(unsigned long long)user, u->id, (unsigned long long)bytes,
				(unsigned long long)msgs, (unsigned long long)u->sum_bytes,
				(unsigned long long)u->sum_msgs);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	for (size_t i = 0; i < c->nu; i++) {
		struct ck_user *u = &c->u[i];
		if (!u->quota_seen && (u->sum_bytes != 0 || u->sum_msgs != 0))
			problem(c,
				"user %llu (%s): no quota usage record, the mailboxes hold "
				"%llu bytes in %llu messages",
				(unsigned long long)u->user, u->id,
				(unsigned long long)u->sum_bytes, (unsigned long long)u->sum_msgs);
	}
	return 0;
}

static int
scan_subs(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (!c->has_subs)
		return 0;
	if ((rc = mdb_cursor_open(c->txn, c->subs, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= 8 || k.mv_size > 8 + STORE_MAX_NAME_LEN || v.mv_size != 0) {
			problem(c, "subs: a malformed entry (key %zu bytes, value %zu bytes)",
				k.mv_size, v.mv_size);
			continue;
		}
		uint64_t user = be_get64(k.mv_data);
		if (user_find(c, user) == NULL)
			problem(c, "user %llu: subscription \"%.*s\" of a user that does not exist",
				(unsigned long long)user, (int)(k.mv_size - 8),
				(const char *)k.mv_data + 8);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Orphan marks: each decodes and names a user the store has. */
static int
scan_orphans(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (!c->has_orphans)
		return 0;
	if ((rc = mdb_cursor_open(c->txn, c->orphans, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int64_t when;
		MDB_val uv;
		if (k.mv_size == 0 || k.mv_size > STORE_MAX_ID_LEN ||
		    memchr(k.mv_data, '\0', k.mv_size) != NULL) {
			problem(c, "orphans: a malformed stable id of %zu bytes", k.mv_size);
			continue;
		}
		if (store_orphan_decode(v.mv_data, v.mv_size, &when) < 0)
			problem(c,
				"orphan mark of \"%.*s\": the record does not decode (%zu bytes)",
				(int)k.mv_size, (const char *)k.mv_data, v.mv_size);
		int grc = mdb_get(c->txn, c->users, &k, &uv);
		if (grc == MDB_NOTFOUND)
			problem(c, "orphan mark of \"%.*s\", a user the store does not have",
				(int)k.mv_size, (const char *)k.mv_data);
		else if (grc != 0) {
			rc = grc;
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Sort keys (store_sortkey.c): each decodes and belongs to a body that
 * exists. A body without one is not a problem (computed when read). */
static int
scan_sortkeys(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	char hx[2 * STORE_HASH_LEN + 1];
	int rc;

	if (!c->has_sortkey)
		return 0;
	if ((rc = mdb_cursor_open(c->txn, c->sortkey, &cur)) != 0)
		return rc;
	struct arena *a = arena_new(0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_sortkey sk;
		MDB_val bv;
		if (k.mv_size != STORE_HASH_LEN) {
			problem(c, "sortkey: a key of %zu bytes, not %d", k.mv_size,
				STORE_HASH_LEN);
			continue;
		}
		memset(&sk, 0, sizeof(sk));
		if (store_sortkey_decode(v.mv_data, v.mv_size, a, &sk) < 0)
			problem(c, "body %s: sort keys that do not decode (%zu bytes)",
				hexhash(k.mv_data, hx), v.mv_size);
		arena_clear(a);
		int grc = mdb_get(c->txn, c->blobref, &k, &bv);
		if (grc == MDB_NOTFOUND)
			problem(c, "body %s: sort keys without their body", hexhash(k.mv_data, hx));
		else if (grc != 0) {
			rc = grc;
			break;
		}
	}
	arena_destroy(&a);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Annotations (store_annot.c): each key and record decodes, and names a
 * user, mailbox and accessor the store has. */
static int
scan_annots(struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (!c->has_annot)
		return 0;
	if ((rc = mdb_cursor_open(c->txn, c->annot, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t owner, accessor;
		uint32_t mbox;
		const char *why = store_annot_check(k.mv_data, k.mv_size, v.mv_data, v.mv_size,
						    &owner, &mbox, &accessor);
		if (why != NULL) {
			problem(c, "annot: an entry of %zu bytes: %s", k.mv_size, why);
			continue;
		}
		const char *name = (const char *)k.mv_data + STORE_ANNOT_PREFIX_LEN;
		int nl = (int)(k.mv_size - STORE_ANNOT_PREFIX_LEN);
		if (owner != 0 && user_find(c, owner) == NULL)
			problem(c, "annotation %.*s of user %llu, whom the store does not have", nl,
				name, (unsigned long long)owner);
		else if (mbox != 0 && mbox_find(c, owner, mbox) == NULL)
			problem(c,
				"annotation %.*s of user \"%s\" mailbox %u, which does not exist",
				nl, name, user_name(c, owner), mbox);
		if (accessor != 0 && user_find(c, accessor) == NULL)
			problem(c, "annotation %.*s private to user %llu, not in the store", nl,
				name, (unsigned long long)accessor);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static bool
acl_mbox_exists(void *arg, uint64_t user, uint32_t mbox)
{
	return mbox_find(arg, user, mbox) != NULL;
}

static void
acl_problem(void *arg, const char *text)
{
	problem(arg, "%s", text);
}

/* ACLs and their reverse index (store_acl.c). */
static int
scan_acls(struct check *c)
{
	if (!c->has_acl)
		return 0;
	return store_acl_check(c->txn, c->acl, c->aclidx, acl_mbox_exists, acl_problem, c);
}

int
store_check_txn(MDB_txn *txn, store_report_fn *report, void *arg, struct store_check_stats *st,
		char **error_r)
{
	struct check c = {.txn = txn, .report = report, .arg = arg};
	int rc = 0;

	*error_r = NULL;
	if (open_dbs(&c, error_r) < 0 || check_meta(&c, error_r) < 0) {
		rc = -1;
		goto out;
	}
	if ((rc = scan_users(&c)) != 0 || (rc = scan_mboxes(&c)) != 0 ||
	    (rc = scan_names(&c)) != 0 || (rc = scan_msgs(&c)) != 0 ||
	    (rc = scan_modseq(&c)) != 0 || (rc = scan_queue(&c)) != 0 ||
	    (rc = scan_blobs(&c)) != 0 || (rc = scan_quota(&c)) != 0 || (rc = scan_subs(&c)) != 0 ||
	    (rc = scan_orphans(&c)) != 0 || (rc = scan_sortkeys(&c)) != 0 ||
	    (rc = scan_annots(&c)) != 0 || (rc = scan_acls(&c)) != 0) {
		*error_r = xstrfmt("cannot read the store: %s", mdb_strerror(rc));
		rc = -1;
	}
out:
	if (st != NULL)
		*st = c.st;
	for (size_t i = 0; i < c.nu; i++)
		free(c.u[i].id);
	for (size_t i = 0; i < c.nm; i++)
		free(c.m[i].name);
	free(c.u);
	free(c.m);
	free(c.r);
	return rc < 0 ? -1 : c.problems;
}

int
store_env_open_rdonly(const char *path, bool nolock, MDB_env **env_r, char **error_r)
{
	char *data = xstrfmt("%s/data.mdb", path);
	struct stat st;
	MDB_env *env;
	int rc;

	*env_r = NULL;
	if (stat(data, &st) < 0) {
		*error_r = xstrfmt("no mail store at %s: %s: %s", path, data, strerror(errno));
		free(data);
		return -1;
	}
	free(data);
	if ((rc = mdb_env_create(&env)) != 0) {
		*error_r = xstrfmt("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	mdb_env_set_maxdbs(env, 32);
	/* As ternd: the lock file's reader table is sized by its creator. */
	mdb_env_set_maxreaders(env, 512);
	rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS | (nolock ? MDB_NOLOCK : 0), 0600);
	if (rc != 0) {
		*error_r =
		    xstrfmt("cannot open the mail store at %s: %s%s", path, mdb_strerror(rc),
			    rc == EACCES ? " (run as root or as ternd's [server] user)" : "");
		mdb_env_close(env);
		return -1;
	}
	*env_r = env;
	return 0;
}

int
store_check_path(const char *path, bool nolock, store_report_fn *report, void *arg,
		 struct store_check_stats *st, char **error_r)
{
	MDB_env *env;
	MDB_txn *txn;
	char *err = NULL;
	int rc, n;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	if (store_env_open_rdonly(path, nolock, &env, error_r) < 0)
		return -1;
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED) {
		/* ternd grew the map since our open: adopt its size. */
		mdb_env_set_mapsize(env, 0);
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	}
	if (rc != 0) {
		*error_r =
		    xstrfmt("%s: cannot begin a read transaction: %s", path, mdb_strerror(rc));
		mdb_env_close(env);
		return -1;
	}
	n = store_check_txn(txn, report, arg, st, &err);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	if (n < 0) {
		*error_r = xstrfmt("%s: %s", path, err);
		free(err);
	}
	return n;
}

int
store_check(const char *state_dir, void (*report)(void *arg, const char *problem), void *arg,
	    char **error_r)
{
	char *path = xstrfmt("%s/mail", state_dir);
	int n = store_check_path(path, false, report, arg, NULL, error_r);

	free(path);
	return n;
}
