/*
 * imap_sort.c - SORT and THREAD (RFC 5256), UID SORT and UID THREAD, the
 * ESORT result options (RFC 5267: SORT RETURN (MIN MAX COUNT ALL)
 * answered with ESEARCH) and the DISPLAYFROM/DISPLAYTO keys (RFC 5957).
 *
 * The search criteria after the charset are the SEARCH program
 * (imap_search_match), so every key SEARCH knows works here. The keys
 * compared come from the store's sortkey records (store_sort_keys): one
 * small record per message, no body or header read. Strings compare as
 * their i;unicode-casemap canonical forms, octet by octet (the collation
 * I18NLEVEL=1 asks for, RFC 5255 4 and RFC 5256); dates are UTC instants
 * (a missing or unparseable Date: is the INTERNALDATE, RFC 5256 2.2);
 * ties are broken by message number.
 *
 * How it fails: malformed arguments get BAD (unknown sort key, REVERSE
 * without a key, an empty list, an unknown algorithm or RETURN option),
 * an unknown charset NO [BADCHARSET (UTF-8 US-ASCII)], a store that
 * cannot be read NO [UNAVAILABLE]. No EXPUNGE is sent.
 * XXX RETURN (SAVE) (RFC 5182 with SORT) and CONTEXT=SORT/PARTIAL are not
 * implemented (not advertised); SAVE gets BAD.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compat.h"
#include "protocols/imap/imap_internal.h"
#include "protocols/imap/imap_thread.h"

enum sort_key {
	SORT_ARRIVAL,
	SORT_CC,
	SORT_DATE,
	SORT_FROM,
	SORT_SIZE,
	SORT_SUBJECT,
	SORT_TO,
	SORT_DISPLAYFROM,
	SORT_DISPLAYTO,
};

static const struct {
	const char *name;
	enum sort_key key;
} sort_keys[] = {
    {"ARRIVAL", SORT_ARRIVAL},
    {"CC", SORT_CC},
    {"DATE", SORT_DATE},
    {"FROM", SORT_FROM},
    {"SIZE", SORT_SIZE},
    {"SUBJECT", SORT_SUBJECT},
    {"TO", SORT_TO},
    {"DISPLAYFROM", SORT_DISPLAYFROM},
    {"DISPLAYTO", SORT_DISPLAYTO},
};

#define SORT_MAX_KEYS 32

struct crit {
	enum sort_key key;
	bool reverse;
};

struct sort_prog {
	struct crit c[SORT_MAX_KEYS];
	size_t n;
};

struct entry {
	uint32_t seq, uid;
	const struct store_sortkey *k;
};

static int
cmp3(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int
cmp_entry(const void *x, const void *y, void *arg)
{
	const struct entry *a = x, *b = y;
	const struct sort_prog *p = arg;

	for (size_t i = 0; i < p->n; i++) {
		int r = 0;
		switch (p->c[i].key) {
		case SORT_ARRIVAL:
			r = cmp3(a->k->internal_date, b->k->internal_date);
			break;
		case SORT_DATE:
			r = cmp3(a->k->sent, b->k->sent);
			break;
		case SORT_SIZE:
			r = a->k->size < b->k->size ? -1 : a->k->size > b->k->size;
			break;
		case SORT_SUBJECT:
			r = strcmp(a->k->subject, b->k->subject);
			break;
		case SORT_FROM:
			r = strcmp(a->k->from, b->k->from);
			break;
		case SORT_TO:
			r = strcmp(a->k->to, b->k->to);
			break;
		case SORT_CC:
			r = strcmp(a->k->cc, b->k->cc);
			break;
		case SORT_DISPLAYFROM:
			r = strcmp(a->k->from_disp, b->k->from_disp);
			break;
		case SORT_DISPLAYTO:
			r = strcmp(a->k->to_disp, b->k->to_disp);
			break;
		}
		if (r != 0)
			return p->c[i].reverse ? -r : r;
	}
	/* RFC 5256 3: exact matches stay in mailbox order. */
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* CHARSET argument: true when supported; otherwise the reply is sent. */
static bool
check_charset(struct imap_session *s, const struct imap_arg *arg)
{
	const char *cs;
	size_t len;

	if (!imap_arg_astring(arg, &cs, &len)) {
		imap_bad(s, "Missing charset");
		return false;
	}
	if ((len == 5 && strncasecmp(cs, "UTF-8", 5) == 0) ||
	    (len == 8 && strncasecmp(cs, "US-ASCII", 8) == 0))
		return true;
	imap_tagged(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
	return false;
}

/* The matching messages with their keys, in message-number order. */
static int
matches(struct imap_session *s, const struct imap_arg *args, size_t count, struct entry **e_r,
	size_t *n_r)
{
	uint32_t *seqs, *uids;
	size_t nhits, nkeys;
	struct store_sortkey *keys;

	if (imap_search_match(s, args, count, &seqs, &uids, &nhits) < 0)
		return -1;
	int r = store_sort_keys(s->view->owner, s->view->name, s->cmd_arena, &keys, &nkeys);
	if (r == STORE_NOTFOUND) {
		nkeys = 0; /* deleted under us: the search found nothing either */
	} else if (r != STORE_OK) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Cannot read the mailbox, try again later");
		return -1;
	}
	struct entry *e = arena_alloc(s->cmd_arena, (nhits + 1) * sizeof(*e));
	size_t k = 0, n = 0;
	for (size_t i = 0; i < nhits; i++) {
		/* Both ascending by UID. Every stored message has its keys
		 * (store_sort_keys computes missing ones), so a message
		 * without is one another session expunged since the view
		 * was last told: left out, as SEARCH leaves it out. */
		while (k < nkeys && keys[k].uid < uids[i])
			k++;
		if (k >= nkeys || keys[k].uid != uids[i])
			continue;
		e[n].seq = seqs[i];
		e[n].uid = uids[i];
		e[n].k = &keys[k];
		n++;
	}
	*e_r = e;
	*n_r = n;
	return 0;
}

static int
parse_sort_criteria(struct imap_session *s, const struct imap_arg *l, struct sort_prog *p)
{
	bool reverse = false;

	p->n = 0;
	if (l->type != IMAP_ARG_LIST || l->count == 0) {
		imap_bad(s, "SORT needs a list of sort criteria");
		return -1;
	}
	for (size_t j = 0; j < l->count; j++) {
		const struct imap_arg *o = &l->list[j];
		if (imap_arg_is_atom_ci(o, "REVERSE")) {
			if (reverse) {
				imap_bad(s, "REVERSE REVERSE is not a sort key");
				return -1;
			}
			reverse = true;
			continue;
		}
		size_t k = 0;
		while (k < ARRAY_SIZE(sort_keys) && !imap_arg_is_atom_ci(o, sort_keys[k].name))
			k++;
		if (k == ARRAY_SIZE(sort_keys)) {
			imap_bad(s, "Unknown sort key");
			return -1;
		}
		if (p->n == SORT_MAX_KEYS) {
			imap_bad(s, "Too many sort keys");
			return -1;
		}
		p->c[p->n].key = sort_keys[k].key;
		p->c[p->n].reverse = reverse;
		p->n++;
		reverse = false;
	}
	if (reverse) {
		imap_bad(s, "REVERSE needs a sort key after it");
		return -1;
	}
	return 0;
}

/* A sequence-set in the given order: only ascending runs become ranges,
 * which read the same in order and as a set (RFC 5267 3.2). */
static void
append_ordered_set(struct buf *b, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (j == i)
			buf_printf(b, "%s%" PRIu32, i > 0 ? "," : "", v[i]);
		else
			buf_printf(b, "%s%" PRIu32 ":%" PRIu32, i > 0 ? "," : "", v[i], v[j]);
		i = j + 1;
	}
}

static void
cmd_sort(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	size_t count = cmd->count, i = 0;
	unsigned ret = 0;
	bool esort = false;
	struct sort_prog prog;

	if (i + 1 < count && imap_arg_is_atom_ci(&args[i], "RETURN") &&
	    args[i + 1].type == IMAP_ARG_LIST) {
		/* SAVE with SORT is not offered (no CONTEXT=SORT). */
		if (imap_search_parse_return(&args[i + 1], false, &ret) < 0) {
			imap_bad(s, "Unknown SORT return option");
			return;
		}
		esort = true;
		i += 2;
	}
	if (i >= count || parse_sort_criteria(s, &args[i], &prog) < 0) {
		if (i >= count)
			imap_bad(s, "SORT needs sort criteria, a charset and search criteria");
		return;
	}
	i++;
	if (i >= count) {
		imap_bad(s, "SORT needs a charset and search criteria");
		return;
	}
	if (!check_charset(s, &args[i]))
		return;
	i++;

	struct entry *e;
	size_t n;
	if (matches(s, args + i, count - i, &e, &n) < 0)
		return;
	qsort_r(e, n, sizeof(*e), cmp_entry, &prog);

	uint32_t *out = arena_alloc(s->cmd_arena, (n + 1) * sizeof(*out));
	for (size_t j = 0; j < n; j++)
		out[j] = cmd->uid ? e[j].uid : e[j].seq;
	struct buf b;
	/* Worst case: 11 bytes a number, 22 a range, so nothing is cut. */
	buf_init(&b, 24 * (n + 1) + 2 * strlen(cmd->tag) + 256);
	if (!esort) {
		buf_append_str(&b, "* SORT");
		for (size_t j = 0; j < n; j++)
			buf_printf(&b, " %" PRIu32, out[j]);
	} else {
		buf_append_str(&b, "* ESEARCH (TAG ");
		imap_append_string(&b, cmd->tag, strlen(cmd->tag), false);
		buf_append_str(&b, ")");
		if (cmd->uid)
			buf_append_str(&b, " UID");
		if (n > 0) {
			/* RFC 5267 3.2: first and last in the sort order. */
			if (ret & RET_MIN)
				buf_printf(&b, " MIN %" PRIu32, out[0]);
			if (ret & RET_MAX)
				buf_printf(&b, " MAX %" PRIu32, out[n - 1]);
			if (ret & RET_ALL) {
				buf_append_str(&b, " ALL ");
				append_ordered_set(&b, out, n);
			}
		}
		if (ret & RET_COUNT)
			buf_printf(&b, " COUNT %zu", n);
	}
	buf_append_str(&b, "\r\n");
	imap_write(s, b.data, b.len);
	buf_free(&b);
	imap_view_sync(s, false);
	imap_tagged(s, "OK", "%sSORT completed", cmd->uid ? "UID " : "");
}

static void
cmd_thread(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	size_t count = cmd->count;
	enum imap_thread_alg alg;

	if (count < 3) {
		imap_bad(s, "THREAD needs an algorithm, a charset and search criteria");
		return;
	}
	if (imap_arg_is_atom_ci(&args[0], "REFERENCES")) {
		alg = IMAP_THREAD_REFERENCES;
	} else if (imap_arg_is_atom_ci(&args[0], "ORDEREDSUBJECT")) {
		alg = IMAP_THREAD_ORDEREDSUBJECT;
	} else {
		imap_bad(s, "Unknown threading algorithm");
		return;
	}
	if (!check_charset(s, &args[1]))
		return;

	struct entry *e;
	size_t n;
	if (matches(s, args + 2, count - 2, &e, &n) < 0)
		return;
	struct imap_thread_msg *tm = arena_alloc(s->cmd_arena, (n + 1) * sizeof(*tm));
	for (size_t j = 0; j < n; j++) {
		tm[j].num = cmd->uid ? e[j].uid : e[j].seq;
		tm[j].seq = e[j].seq;
		tm[j].sent = e[j].k->sent;
		tm[j].subject = e[j].k->subject;
		tm[j].reply = e[j].k->subj_reply;
		tm[j].msgid = e[j].k->msgid;
		tm[j].refs = e[j].k->refs;
	}
	struct buf b;
	/* Each number with its parentheses and blank: 14 bytes at most. */
	buf_init(&b, 16 * (n + 1) + 64);
	buf_append_str(&b, "* THREAD");
	if (n > 0)
		buf_append_str(&b, " ");
	if (imap_thread(alg, tm, n, s->cmd_arena, &b) < 0) {
		buf_free(&b);
		imap_tagged(s, "NO", "[LIMIT] THREAD response too large");
		return;
	}
	buf_append_str(&b, "\r\n");
	imap_write(s, b.data, b.len);
	buf_free(&b);
	imap_view_sync(s, false);
	imap_tagged(s, "OK", "%sTHREAD completed", cmd->uid ? "UID " : "");
}

const struct imap_command imap_sort_cmds[] = {
    {"SORT", IMAP_ST_SELECTED, true, cmd_sort},
    {"THREAD", IMAP_ST_SELECTED, true, cmd_thread},
    {NULL, 0, false, NULL},
};
