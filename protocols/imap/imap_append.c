/*
 * imap_append.c - APPEND and MULTIAPPEND (RFC 3502, with APPENDUID of
 * UIDPLUS, RFC 4315, and the UTF8 literal of RFC 6855): every message of
 * one command in one store transaction, all or none, answered from the
 * store's completion so an OK means the messages are durable. The parsing
 * of one message (flags, date-time, literal) is shared with REPLACE
 * (imap_replace.c). Into another user's shared mailbox: the "i" right,
 * the flags the rights allow, the owner's quota (RFC 4314 4).
 *
 * How it fails: malformed arguments get BAD; a missing mailbox NO
 * [TRYCREATE], a \Noselect one NO [CANNOT], over quota NO [OVERQUOTA] or
 * [TOOBIG] (RFC 9208), an empty message NO [CANNOT].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/compat.h"
#include "protocols/imap/imap_internal.h"

/* ---- APPEND ---- */

static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int
digits(const char *p, size_t n, int *v_r)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*v_r = v;
	return 0;
}

/* RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day either two
 * digits or a space and one. 0 and the time, or -1. */
static int
parse_date_time(const char *str, size_t len, time_t *t_r)
{
	int day, year, hh, mm, ss, zh, zm, mon;
	struct tm tm;

	if (len != 26 || str[2] != '-' || str[6] != '-' || str[11] != ' ' || str[14] != ':' ||
	    str[17] != ':' || str[20] != ' ' || (str[21] != '+' && str[21] != '-'))
		return -1;
	if (str[0] == ' ' ? digits(str + 1, 1, &day) : digits(str, 2, &day))
		return -1;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(str + 3, months[mon], 3) == 0)
			break;
	if (mon == 12 || digits(str + 7, 4, &year) || digits(str + 12, 2, &hh) ||
	    digits(str + 15, 2, &mm) || digits(str + 18, 2, &ss) || digits(str + 22, 2, &zh) ||
	    digits(str + 24, 2, &zm))
		return -1;
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap) || hh > 23 || mm > 59 ||
	    ss > 60 || zh > 23 || zm > 59)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss > 59 ? 59 : ss;
	time_t t = timegm(&tm);
	long off = (zh * 60L + zm) * 60L;
	t = str[21] == '+' ? t - off : t + off;
	/* 0 means "now" to the store; earlier dates are not kept. */
	if (t <= 0)
		return -1;
	*t_r = t;
	return 0;
}

/* An APPEND flag list. 0, -1 (BAD) or 1 (NO [LIMIT] sent). */
static int
parse_append_flags(struct imap_session *s, const struct imap_arg *l, struct store_append_msg *m)
{
	const char **kw = arena_alloc(s->cmd_arena, (l->count + 1) * sizeof(*kw));
	size_t nkw = 0;
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {
	    {"\\Seen", STORE_FLAG_SEEN},       {"\\Answered", STORE_FLAG_ANSWERED},
	    {"\\Flagged", STORE_FLAG_FLAGGED}, {"\\Deleted", STORE_FLAG_DELETED},
	    {"\\Draft", STORE_FLAG_DRAFT},
	};

	for (size_t i = 0; i < l->count; i++) {
		const struct imap_arg *a = &l->list[i];
		if (a->type != IMAP_ARG_ATOM)
			return -1;
		if (a->str[0] == '\\') {
			size_t k;
			for (k = 0; k < ARRAY_SIZE(sys); k++)
				if (strcasecmp(a->str, sys[k].name) == 0)
					break;
			if (k < ARRAY_SIZE(sys)) {
				m->flags |= sys[k].bit;
				continue;
			}
			if (strcasecmp(a->str, "\\Recent") == 0)
				continue; /* not settable; ignored */
			return -1;
		}
		if (!imap_keyword_ok(a->str, a->len))
			return -1;
		if (a->len > STORE_KEYWORD_MAX) {
			imap_tagged(s, "NO", "[LIMIT] Keyword too long");
			return 1;
		}
		bool dup = false;
		for (size_t j = 0; j < nkw && !dup; j++)
			dup = strcasecmp(kw[j], a->str) == 0;
		if (!dup)
			kw[nkw++] = a->str;
	}
	m->keywords = nkw > 0 ? kw : NULL;
	m->nkeywords = nkw;
	return 0;
}

struct append_op {
	struct store_append ap; /* first: the request */
	const char *name;
	struct imap_session *s;
};

/* UIDs as a uid-set ("4", "4:6", "4,7:8"). */
static void
append_uid_set(struct buf *b, const struct store_append_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && msgs[j + 1].uid == msgs[j].uid + 1)
			j++;
		buf_printf(b, "%s%" PRIu32, i > 0 ? "," : "", msgs[i].uid);
		if (j > i)
			buf_printf(b, ":%" PRIu32, msgs[j].uid);
		i = j + 1;
	}
}

static void
append_done(void *req, void *arg)
{
	struct append_op *op = req;
	struct imap_session *s = arg;
	int st = op->ap.req.status;

	if (s->cmd == NULL) {
		imap_async_end(s);
		return;
	}
	/* A message appended to the selected mailbox is reported (EXISTS)
	 * before the tagged reply. */
	if (s->view != NULL)
		imap_view_sync(s, true);
	if (st == STORE_OK) {
		struct buf set;
		buf_init(&set, 64 * op->ap.nmsgs + 64);
		append_uid_set(&set, op->ap.msgs, op->ap.nmsgs);
		imap_tagged(s, "OK", "[APPENDUID %" PRIu32 " %s] APPEND completed",
			    op->ap.uidvalidity, buf_cstr(&set));
		buf_free(&set);
	} else if (st == STORE_NOTFOUND) {
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox does not exist");
	} else if (st == STORE_NOTALLOWED) {
		imap_tagged(s, "NO", "[CANNOT] Mailbox is not selectable");
	} else if (st == STORE_TOOBIG) {
		imap_tagged(s, "NO", "[TOOBIG] Message is larger than the quota");
	} else if (st == STORE_OVERQUOTA) {
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded");
	} else {
		imap_tagged_store_status(s, st, "APPEND");
	}
	imap_async_end(s);
}

static void
append_go(void *req)
{
	store_append(req);
}

int
imap_append_parse(struct imap_session *s, const struct imap_arg *args, size_t count, size_t *ip,
		  struct store_append_msg *m, const char *what)
{
	size_t i = *ip;

	memset(m, 0, sizeof(*m));
	if (i < count && args[i].type == IMAP_ARG_LIST) {
		int r = parse_append_flags(s, &args[i], m);
		if (r > 0)
			return -1;
		if (r < 0) {
			imap_bad(s, "Invalid flag list");
			return -1;
		}
		i++;
	}
	if (i < count && args[i].type == IMAP_ARG_STRING) {
		if (parse_date_time(args[i].str, args[i].len, &m->internal_date) < 0) {
			imap_bad(s, "Invalid date-time");
			return -1;
		}
		i++;
	}
	if (i < count && args[i].type == IMAP_ARG_LITERAL) {
		/* XXX a bare literal8 is taken as it is (BINARY's
		 * content-transfer-decoding is not done). */
		m->body = args[i].str;
		m->body_len = args[i].len;
		i++;
	} else if (i + 1 < count && imap_arg_is_atom_ci(&args[i], "UTF8") &&
		   args[i + 1].type == IMAP_ARG_LIST && args[i + 1].count == 1 &&
		   args[i + 1].list[0].type == IMAP_ARG_LITERAL && args[i + 1].list[0].binary) {
		/* RFC 6855 4: UTF8 (~{n}...) only after ENABLE. */
		if (!s->utf8) {
			imap_bad(s, "%s UTF8 needs ENABLE UTF8=ACCEPT", what);
			return -1;
		}
		m->body = args[i + 1].list[0].str;
		m->body_len = args[i + 1].list[0].len;
		i += 2;
	} else {
		imap_bad(s, "Usage: %s %smailbox [(flags)] [date-time] literal%s", what,
			 strcmp(what, "APPEND") == 0 ? "" : "message ",
			 strcmp(what, "APPEND") == 0 ? " ..." : "");
		return -1;
	}
	if (m->body_len == 0) {
		imap_tagged(s, "NO", "[CANNOT] Cannot append an empty message");
		return -1;
	}
	*ip = i;
	return 0;
}

static void
cmd_append(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	const char *name;
	size_t n = 0;

	if (cmd->count < 2) {
		imap_bad(s, "Usage: APPEND mailbox [(flags)] [date-time] literal ...");
		return;
	}
	struct imap_mref mref;
	if (imap_mref_get(s, &args[0], &mref) < 0 || !imap_mref_check(s, &mref, "i"))
		return;
	name = mref.path;
	struct store_append_msg *msgs = arena_alloc(s->cmd_arena, cmd->count * sizeof(*msgs));
	for (size_t i = 1; i < cmd->count;) {
		if (imap_append_parse(s, args, cmd->count, &i, &msgs[n], "APPEND") < 0)
			return;
		imap_acl_strip_flags(mref.rights, &msgs[n].flags, &msgs[n].nkeywords);
		n++;
	}
	struct append_op *op = arena_alloc(s->cmd_arena, sizeof(*op));
	op->ap.req.worker = s->conn.worker;
	op->ap.req.done = append_done;
	op->ap.req.arg = s;
	op->ap.req.a = s->cmd_arena;
	op->ap.user_id = mref.owner_id;
	op->ap.mailbox = name;
	op->ap.msgs = msgs;
	op->ap.nmsgs = n;
	op->name = name;
	op->s = s;
	imap_async_begin(s);
	imap_owner_quota(s, &mref, &op->ap.quota, &op->ap.quota_messages, append_go, &op->ap);
}

const struct imap_command imap_append_cmds[] = {
    {"APPEND", IMAP_ST_AUTHED, false, cmd_append},
    {NULL, 0, false, NULL},
};
