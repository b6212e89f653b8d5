/*
 * imap_notify.c - NOTIFY (RFC 5465): the client names the mailboxes
 * (SELECTED, SELECTED-DELAYED, PERSONAL, INBOXES, SUBSCRIBED, SUBTREE,
 * MAILBOXES) and events it wants to hear of, and the server tells it
 * unsolicited whenever no command is in progress, not only during IDLE:
 * for the selected mailbox EXISTS (and FETCH with the client's MessageNew
 * attributes), EXPUNGE or VANISHED and FETCH FLAGS, through the view
 * (imap_view.c); for the others STATUS, and LIST for mailbox names and
 * subscriptions (formatted by imap_mailbox.c); METADATA naming the
 * entries that changed, for the mailboxes covered and for the user's
 * server entries (formatted by imap_metadata.c).
 *
 * How it works: one store watch for all of the user's mailboxes; its
 * events only set bits (STORE_CHANGED_*) and the one mailbox touched, so
 * what waits while a command runs is bounded whatever happens meanwhile.
 * At the next point where no command is in progress the session compares
 * the store with its snapshot of the user's mailboxes (counters, names
 * by mailbox id, subscriptions) and reports the differences: coalesced,
 * in the order of the mailbox list. Annotation changes come with their
 * entry names (store_watch_entries), kept until that point; the user sees
 * only /shared entries and their own /private ones.
 *
 * How it fails: a malformed NOTIFY gets BAD (RFC 5465 3.1: also
 * MessageNew without MessageExpunge, FlagChange without them, a second
 * selected filter, non-message events for the selected mailbox); an
 * event Tern does not implement (AnnotationChange: there are no message
 * annotations; an unknown one) NO [BADEVENT (the supported ones)]; too
 * many mailbox names NO [NOTIFICATIONOVERFLOW]. A client that stops
 * reading while more than NOTIFY_OUT_MAX bytes wait, or that more than
 * STORE_WATCH_ENTRIES_MAX changed annotations wait for, gets
 * "* OK [NOTIFICATIONOVERFLOW]" and its notifications are turned off (as
 * NOTIFY NONE). A store that cannot be read leaves the snapshot as it
 * was: the next event retries.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compat.h"
#include "core/log.h"
#include "protocols/imap/imap_internal.h"

#define EV_NEW 0x01
#define EV_EXPUNGE 0x02
#define EV_FLAG 0x04
#define EV_ANNOTATION 0x08
#define EV_NAME 0x10
#define EV_SUBSCRIPTION 0x20
#define EV_MBOX_META 0x40
#define EV_SERVER_META 0x80
#define EV_UNKNOWN 0x100
#define EV_MESSAGE (EV_NEW | EV_EXPUNGE | EV_FLAG | EV_ANNOTATION)
#define EV_META (EV_MBOX_META | EV_SERVER_META)
#define EV_SUPPORTED (EV_NEW | EV_EXPUNGE | EV_FLAG | EV_NAME | EV_SUBSCRIPTION | EV_META)

#define NOTIFY_NAMES_MAX 1000	  /* mailbox names in one NOTIFY SET */
#define NOTIFY_OUT_MAX (4u << 20) /* unread output before NOTIFICATIONOVERFLOW */

static const char *const event_names[] = {
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "AnnotationChange",
    "MailboxName",
    "SubscriptionChange",
    "MailboxMetadataChange",
    "ServerMetadataChange",
};

enum filter { F_PERSONAL, F_INBOXES, F_SUBSCRIBED, F_SUBTREE, F_MAILBOXES };

struct group {
	enum filter filter;
	unsigned events; /* EV_*; 0 is NONE */
	const char **names;
	size_t nnames;
};

/* What the client was last told of a mailbox (or would have been). */
struct snap_box {
	uint32_t id;
	char *name; /* owned */
	bool noselect;
	uint32_t uidvalidity, uidnext, messages, unseen;
	uint64_t highestmodseq;
};

struct imap_notify {
	struct arena *a; /* owned: groups, names, the fetch attributes */
	struct group *groups;
	size_t ngroups;
	bool sel_delayed;
	unsigned sel_events;		   /* for the selected mailbox; 0: none */
	struct imap_fetch_atts *sel_fetch; /* MessageNew's attributes, or NULL */
	struct store_watch *watch;	   /* owned; NULL without groups */
	struct snap_box *boxes;		   /* owned, by id */
	size_t nboxes;
	char **subs; /* owned, sorted */
	size_t nsubs;
	unsigned pending;      /* STORE_CHANGED_* not looked at yet */
	uint32_t pending_mbox; /* the one mailbox they touched; 0: several */
	bool meta_wanted;      /* a group names a METADATA event */
	struct meta_change {
		uint32_t mbox; /* 0: a server entry */
		char *name;    /* owned */
	} * meta;	       /* owned: changed entries not reported yet */
	size_t nmeta;
	bool meta_lost; /* more changed than were kept */
};

/* ---- the snapshot ---- */

static int
box_cmp(const void *a, const void *b)
{
	const struct snap_box *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct snap_box *
snap_find(struct snap_box *boxes, size_t n, uint32_t id)
{
	struct snap_box key = {.id = id};
	return bsearch(&key, boxes, n, sizeof(*boxes), box_cmp);
}

static bool
subscribed(char *const *subs, size_t n, const char *name)
{
	return bsearch(&name, subs, n, sizeof(*subs), str_cmp) != NULL;
}

static void
snap_set(struct snap_box *sb, const struct store_mailbox *box)
{
	sb->noselect = box->noselect;
	sb->uidvalidity = box->uidvalidity;
	sb->uidnext = box->uidnext;
	sb->messages = box->messages;
	sb->unseen = box->unseen;
	sb->highestmodseq = box->highestmodseq;
}

static void
snap_free(struct snap_box *boxes, size_t n, char **subs, size_t nsubs)
{
	for (size_t i = 0; i < n; i++)
		free(boxes[i].name);
	free(boxes);
	for (size_t i = 0; i < nsubs; i++)
		free(subs[i]);
	free(subs);
}

/* The snapshot of a mailbox listing (boxes sorted by id, subs sorted). */
static void
snap_make(const struct store_mailbox *list, size_t n, const char **subs, size_t nsubs,
	  struct snap_box **boxes_r, char ***subs_r)
{
	struct snap_box *b = xcalloc(n + 1, sizeof(*b));
	char **s = xcalloc(nsubs + 1, sizeof(*s));

	for (size_t i = 0; i < n; i++) {
		b[i].id = list[i].id;
		b[i].name = xstrdup(list[i].name);
		snap_set(&b[i], &list[i]);
	}
	qsort(b, n, sizeof(*b), box_cmp);
	for (size_t i = 0; i < nsubs; i++)
		s[i] = xstrdup(subs[i]);
	qsort(s, nsubs, sizeof(*s), str_cmp);
	*boxes_r = b;
	*subs_r = s;
}

/* ---- which mailboxes want which events ---- */

static bool
filter_match(const struct group *g, const char *name, bool is_subscribed)
{
	switch (g->filter) {
	case F_PERSONAL:
		return true;
	case F_INBOXES:
		/* Tern delivers to INBOX (and to Junk, which is no inbox). */
		return strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/');
	case F_SUBSCRIBED:
		return is_subscribed;
	case F_SUBTREE:
		for (size_t i = 0; i < g->nnames; i++) {
			size_t l = strlen(g->names[i]);
			if (strncmp(name, g->names[i], l) == 0 &&
			    (name[l] == '\0' || name[l] == '/'))
				return true;
		}
		return false;
	case F_MAILBOXES:
		for (size_t i = 0; i < g->nnames; i++)
			if (strcmp(name, g->names[i]) == 0)
				return true;
		return false;
	}
	return false;
}

/* Does an event of ev's kinds in mailbox `name` get reported? The groups
 * are looked at in order; a matching NONE ends the search. */
static bool
wants(const struct imap_notify *n, const char *name, bool is_subscribed, unsigned ev)
{
	for (size_t i = 0; i < n->ngroups; i++) {
		const struct group *g = &n->groups[i];
		if (!filter_match(g, name, is_subscribed))
			continue;
		if (g->events == 0)
			return false;
		if (g->events & ev)
			return true;
	}
	return false;
}

/* Whether the user's own mailbox id is the selected one (a selected
 * shared mailbox has an id of its owner's store). */
static bool
is_selected(const struct imap_session *s, uint32_t id)
{
	return s->view != NULL && !s->view->shared && s->view->id == id;
}

/* A mailbox's counters against the snapshot: STATUS if the client wants
 * to hear of that kind of change (the selected one has the view). */
static void
box_changed(struct imap_session *s, struct snap_box *sb, const struct store_mailbox *box)
{
	struct imap_notify *n = s->notify;
	bool msgs = sb->messages != box->messages || sb->uidnext != box->uidnext ||
		    sb->uidvalidity != box->uidvalidity;
	bool flags = sb->unseen != box->unseen || sb->highestmodseq != box->highestmodseq;
	unsigned ev = msgs ? EV_NEW | EV_EXPUNGE : flags ? EV_FLAG : 0;

	snap_set(sb, box);
	if (ev == 0 || box->noselect || is_selected(s, box->id))
		return;
	if (wants(n, box->name, subscribed(n->subs, n->nsubs, box->name), ev))
		imap_status_notify(s, box);
}

/* Names and subscriptions that changed between the snapshot and the
 * listing (ob/nb: old and new snapshots by id, list by name). */
static void
names_changed(struct imap_session *s, const struct snap_box *ob, size_t on,
	      const struct store_mailbox *list, size_t n, char *const *osubs, size_t onsubs,
	      char *const *nsubs, size_t nnsubs)
{
	struct imap_notify *nt = s->notify;

	for (size_t i = 0; i < on; i++) {
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = list[j].id == ob[i].id;
		if (!found && wants(nt, ob[i].name, subscribed(nsubs, nnsubs, ob[i].name), EV_NAME))
			imap_list_notify(s, ob[i].name, NULL, subscribed(nsubs, nnsubs, ob[i].name),
					 NULL);
	}
	for (size_t j = 0; j < n; j++) {
		const struct store_mailbox *box = &list[j];
		struct snap_box *old = snap_find((struct snap_box *)ob, on, box->id);
		bool sub = subscribed(nsubs, nnsubs, box->name);
		bool renamed = old != NULL && strcmp(old->name, box->name) != 0;
		if (old == NULL || renamed || old->noselect != box->noselect) {
			if (wants(nt, box->name, sub, EV_NAME) ||
			    (renamed && wants(nt, old->name, sub, EV_NAME)))
				imap_list_notify(s, box->name, box, sub,
						 renamed ? old->name : NULL);
		}
	}
	/* Subscriptions: the two sorted lists merged. */
	size_t i = 0, j = 0;
	while (i < onsubs || j < nnsubs) {
		int c = i == onsubs ? 1 : j == nnsubs ? -1 : strcmp(osubs[i], nsubs[j]);
		const char *name = c < 0 ? osubs[i] : nsubs[j];
		i += c <= 0;
		j += c >= 0;
		if (c == 0 || !wants(nt, name, true, EV_SUBSCRIPTION))
			continue;
		const struct store_mailbox *box = NULL;
		for (size_t k = 0; k < n && box == NULL; k++)
			if (strcmp(list[k].name, name) == 0)
				box = &list[k];
		imap_list_notify(s, name, box, c > 0, NULL);
	}
}

/* Reads what the pending bits say changed and reports it. */
static void
refresh(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	unsigned what = n->pending & ~STORE_CHANGED_METADATA; /* n->meta has those */
	struct store_mailbox *list, box;
	const char **subs;
	size_t nl, nsubs;

	n->pending = 0;
	if (what == 0)
		return;
	struct arena *a = arena_new(0);
	if (what == STORE_CHANGED_MESSAGES && n->pending_mbox != 0) {
		struct snap_box *sb = snap_find(n->boxes, n->nboxes, n->pending_mbox);
		if (sb != NULL) {
			if (store_mailbox_get(s->user_id, sb->name, a, &box) == STORE_OK &&
			    box.id == sb->id)
				box_changed(s, sb, &box);
			arena_destroy(&a);
			return;
		}
	}
	if (store_mailbox_list_all(s->user_id, a, &list, &nl, &subs, &nsubs) != STORE_OK) {
		arena_destroy(&a);
		return;
	}
	struct snap_box *nb, *ob = n->boxes;
	char **ns, **os = n->subs;
	size_t on = n->nboxes, onsubs = n->nsubs;
	snap_make(list, nl, subs, nsubs, &nb, &ns);
	n->boxes = nb;
	n->nboxes = nl;
	n->subs = ns;
	n->nsubs = nsubs;
	names_changed(s, ob, on, list, nl, os, onsubs, ns, nsubs);
	/* Counters of the mailboxes the old snapshot knew (a new one was
	 * just announced by LIST). */
	for (size_t i = 0; i < nl; i++) {
		struct snap_box *old = snap_find(ob, on, list[i].id);
		if (old != NULL)
			box_changed(s, old, &list[i]);
	}
	snap_free(ob, on, os, onsubs);
	arena_destroy(&a);
}

/* ---- annotations ---- */

/* Does a group name ServerMetadataChange? Server entries belong to no
 * mailbox, so any group's filter covers them. */
static bool
wants_server(const struct imap_notify *n)
{
	for (size_t i = 0; i < n->ngroups; i++)
		if (n->groups[i].events & EV_SERVER_META)
			return true;
	return false;
}

/* Keeps the entries the event names that this user may see: /shared
 * ones and their own /private ones (not another reader's). */
static void
meta_take(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	size_t ne;
	bool lost;
	const struct store_watch_entry *e = store_watch_entries(n->watch, &ne, &lost);

	n->meta_lost |= lost;
	for (size_t i = 0; i < ne && !n->meta_lost; i++) {
		if (e[i].user_id != NULL && strcmp(e[i].user_id, s->user_id) != 0)
			continue;
		size_t j;
		for (j = 0; j < n->nmeta; j++)
			if (n->meta[j].mbox == e[i].mailbox_id &&
			    strcmp(n->meta[j].name, e[i].name) == 0)
				break;
		if (j < n->nmeta)
			continue;
		if (n->nmeta == STORE_WATCH_ENTRIES_MAX) {
			n->meta_lost = true;
			break;
		}
		n->meta = xrealloc(n->meta, (n->nmeta + 1) * sizeof(*n->meta));
		n->meta[n->nmeta].mbox = e[i].mailbox_id;
		n->meta[n->nmeta++].name = xstrdup(e[i].name);
	}
}

/* The changed entries the client wants: one METADATA per mailbox (its
 * entries in the order they changed), in the order of first change. A
 * mailbox gone meanwhile is not reported (MailboxName says so). */
static void
meta_report(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	struct meta_change *m = n->meta;
	size_t nm = n->nmeta;
	const char **names = xcalloc(nm, sizeof(*names));

	n->meta = NULL;
	n->nmeta = 0;
	for (size_t i = 0; i < nm; i++) {
		if (m[i].name == NULL)
			continue; /* reported with an earlier one */
		uint32_t id = m[i].mbox;
		const char *box = "";
		bool want = id == 0 && wants_server(n);
		struct snap_box *sb = id != 0 ? snap_find(n->boxes, n->nboxes, id) : NULL;
		if (sb != NULL) {
			box = sb->name;
			want = wants(n, box, subscribed(n->subs, n->nsubs, box), EV_MBOX_META);
		}
		size_t k = 0;
		for (size_t j = i; j < nm; j++)
			if (m[j].name != NULL && m[j].mbox == id)
				names[k++] = m[j].name;
		if (want)
			imap_metadata_notify(s, box, names, k);
		for (size_t j = i; j < nm; j++) {
			if (m[j].name != NULL && m[j].mbox == id) {
				free(m[j].name);
				m[j].name = NULL;
			}
		}
	}
	free(names);
	free(m);
}

/* ---- telling the client ---- */

/* No command in progress (or IDLE, which waits for exactly this). */
static bool
idle_point(const struct imap_session *s)
{
	if (s->conn.closed || s->conn.closing || s->state == IMAP_ST_LOGOUT)
		return false;
	return s->idling || (s->cmd == NULL && !s->async && !s->in_literal && !s->in_sasl &&
			     s->rate_cmd == NULL);
}

void
imap_notify_free(struct imap_session *s)
{
	struct imap_notify *n = s->notify;

	if (n == NULL)
		return;
	store_watch_remove(n->watch);
	snap_free(n->boxes, n->nboxes, n->subs, n->nsubs);
	for (size_t i = 0; i < n->nmeta; i++)
		free(n->meta[i].name);
	free(n->meta);
	arena_destroy(&n->a);
	free(n);
	s->notify = NULL;
}

/* The selected mailbox changed: EXISTS, FETCH with MessageNew's
 * attributes for the new messages, FETCH FLAGS, and EXPUNGE/VANISHED
 * unless SELECTED-DELAYED holds them for a command that may report them
 * (IDLE may: RFC 5465 4). */
static void
push_selected(struct imap_session *s)
{
	struct imap_notify *n = s->notify;
	struct imap_view *v = s->view;
	uint32_t old_next = v->uidnext;

	imap_view_sync(s, !n->sel_delayed || s->idling);
	if (n->sel_fetch == NULL || v->count == 0 || v->uids[v->count - 1] < old_next)
		return;
	size_t first = v->count;
	while (first > 0 && v->uids[first - 1] >= old_next)
		first--;
	imap_fetch_atts_send(s, n->sel_fetch, &v->uids[first], v->count - first);
}

void
imap_notify_flush(struct imap_session *s)
{
	struct imap_notify *n = s->notify;

	if (n == NULL || !idle_point(s))
		return;
	if (conn_output_pending(&s->conn) > NOTIFY_OUT_MAX || n->meta_lost) {
		/* RFC 5465 5.8: the client is not keeping up (or more changed
		 * than the server keeps); it learns that notifications are off
		 * and may NOTIFY SET STATUS again. */
		log_info(s->conn.id, s->conn.service, "notify-overflow user=\"%s\"", s->login);
		imap_notify_free(s);
		imap_untagged(s, "OK [NOTIFICATIONOVERFLOW] Notifications stopped, too many");
		return;
	}
	if (n->pending != 0)
		refresh(s);
	if (n->nmeta > 0)
		meta_report(s);
	if (s->view != NULL && s->view->changed && n->sel_events != 0)
		push_selected(s);
	if (s->idling)
		buf_free(&s->out); /* back to waiting: hold no scratch */
}

bool
imap_notify_selected(struct imap_session *s)
{
	if (s->notify == NULL || s->notify->sel_events == 0)
		return false;
	imap_notify_flush(s);
	return true;
}

static void
watch_cb(void *arg, uint32_t mailbox_id, uint64_t highestmodseq, unsigned changed)
{
	struct imap_session *s = arg;
	struct imap_notify *n = s->notify;

	(void)highestmodseq;
	if (n->pending == 0)
		n->pending_mbox = mailbox_id;
	else if (n->pending_mbox != mailbox_id)
		n->pending_mbox = 0;
	n->pending |= changed;
	if ((changed & STORE_CHANGED_METADATA) && n->meta_wanted)
		meta_take(s);
	imap_notify_flush(s);
}

/* ---- the NOTIFY command ---- */

/* An event name into its EV_* bit (EV_UNKNOWN for an event-ext). -1 if
 * it is not an atom. */
static int
parse_event(const struct imap_arg *a, unsigned *ev_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(event_names); i++) {
		if (strcasecmp(a->str, event_names[i]) == 0) {
			*ev_r = 1u << i;
			return 0;
		}
	}
	*ev_r = EV_UNKNOWN;
	return 0;
}

/* events: "NONE" or "(" event *(SP event) ")"; the selected mailbox's
 * MessageNew may be followed by a list of fetch-att. 0, or -1 (BAD). */
static int
parse_events(struct imap_notify *n, const struct imap_arg *a, bool selected, unsigned *ev_r)
{
	unsigned ev = 0;

	*ev_r = 0;
	if (imap_arg_is_atom_ci(a, "NONE"))
		return 0;
	if (a->type != IMAP_ARG_LIST || a->count == 0)
		return -1;
	for (size_t i = 0; i < a->count; i++) {
		unsigned e;
		if (parse_event(&a->list[i], &e) < 0)
			return -1;
		ev |= e;
		if (e == EV_NEW && i + 1 < a->count && a->list[i + 1].type == IMAP_ARG_LIST) {
			if (!selected ||
			    (n->sel_fetch = imap_fetch_atts_parse(n->a, &a->list[i + 1])) == NULL)
				return -1;
			i++;
		}
	}
	/* RFC 5465 5: MessageNew and MessageExpunge come together, and
	 * FlagChange or AnnotationChange need them. */
	if (!(ev & EV_NEW) != !(ev & EV_EXPUNGE))
		return -1;
	if ((ev & (EV_FLAG | EV_ANNOTATION)) && !(ev & EV_NEW))
		return -1;
	*ev_r = ev;
	return 0;
}

/* one-or-more-mailbox into g->names (UTF-8, in n->a). 0, -1 (BAD), or
 * -2 (imap_arg_mailbox sent the BAD). */
static int
parse_names(struct imap_session *s, struct imap_notify *n, const struct imap_arg *a,
	    struct group *g)
{
	const struct imap_arg *l = a->type == IMAP_ARG_LIST ? a->list : a;
	size_t count = a->type == IMAP_ARG_LIST ? a->count : 1;

	if (count == 0)
		return -1;
	g->names = arena_alloc(n->a, count * sizeof(*g->names));
	for (size_t i = 0; i < count; i++) {
		if (l[i].type == IMAP_ARG_LIST || l[i].type == IMAP_ARG_NIL)
			return -1;
		const char *name = imap_arg_mailbox(s, &l[i]);
		if (name == NULL)
			return -2;
		/* XXX other users' mailboxes are watched only when selected. */
		if (imap_acl_is_shared_name(name)) {
			imap_tagged(s, "NO", "[CANNOT] NOTIFY covers only your own mailboxes");
			return -2;
		}
		g->names[g->nnames++] = arena_strdup(n->a, name);
	}
	return 0;
}

/* One event group. 0, -1 (BAD), -2 (answered). *names_r counts names;
 * *used_r collects the events named. */
static int
parse_group(struct imap_session *s, struct imap_notify *n, const struct imap_arg *a, bool *sel_seen,
	    size_t *names_r, unsigned *used_r)
{
	static const struct {
		const char *name;
		enum filter f;
	} filters[] = {
	    {"PERSONAL", F_PERSONAL}, {"INBOXES", F_INBOXES},	  {"SUBSCRIBED", F_SUBSCRIBED},
	    {"SUBTREE", F_SUBTREE},   {"MAILBOXES", F_MAILBOXES},
	};
	unsigned ev;
	int r;

	if (a->type != IMAP_ARG_LIST || a->count < 2 || a->list[0].type != IMAP_ARG_ATOM)
		return -1;
	const struct imap_arg *l = a->list;
	if (imap_arg_is_atom_ci(&l[0], "SELECTED") ||
	    imap_arg_is_atom_ci(&l[0], "SELECTED-DELAYED")) {
		/* One selected filter, message events only (RFC 5465 6). */
		if (*sel_seen || a->count != 2 || parse_events(n, &l[1], true, &ev) < 0 ||
		    (ev & ~(EV_MESSAGE | EV_UNKNOWN)))
			return -1;
		*sel_seen = true;
		n->sel_delayed = imap_arg_is_atom_ci(&l[0], "SELECTED-DELAYED");
		n->sel_events = ev;
		*used_r |= ev;
		return 0;
	}
	size_t k;
	for (k = 0; k < ARRAY_SIZE(filters); k++)
		if (imap_arg_is_atom_ci(&l[0], filters[k].name))
			break;
	if (k == ARRAY_SIZE(filters))
		return -1;
	struct group *g = &n->groups[n->ngroups];
	memset(g, 0, sizeof(*g));
	g->filter = filters[k].f;
	bool named = g->filter == F_SUBTREE || g->filter == F_MAILBOXES;
	if (a->count != (named ? 3u : 2u))
		return -1;
	if (named && (r = parse_names(s, n, &l[1], g)) < 0)
		return r;
	if (parse_events(n, &l[named ? 2 : 1], false, &ev) < 0)
		return -1;
	g->events = ev;
	*used_r |= ev;
	*names_r += g->nnames;
	n->ngroups++;
	return 0;
}

/* NOTIFY SET STATUS: a STATUS for each mailbox whose message events the
 * client wants, but the selected one (RFC 5465 3.1). */
static void
initial_status(struct imap_session *s, const struct store_mailbox *list, size_t n)
{
	struct imap_notify *nt = s->notify;

	for (size_t i = 0; i < n; i++) {
		const struct store_mailbox *box = &list[i];
		if (box->noselect || is_selected(s, box->id))
			continue;
		if (wants(nt, box->name, subscribed(nt->subs, nt->nsubs, box->name), EV_MESSAGE))
			imap_status_notify(s, box);
	}
}

/* The new settings are in place: the snapshot and the watch. */
static int
notify_start(struct imap_session *s, bool status)
{
	struct imap_notify *n = s->notify;
	struct arena *a = arena_new(0);
	struct store_mailbox *list;
	const char **subs;
	size_t nl, nsubs;

	if (n->ngroups == 0) {
		arena_destroy(&a);
		return STORE_OK;
	}
	int r = store_mailbox_list_all(s->user_id, a, &list, &nl, &subs, &nsubs);
	if (r == STORE_OK) {
		snap_make(list, nl, subs, nsubs, &n->boxes, &n->subs);
		n->nboxes = nl;
		n->nsubs = nsubs;
		n->watch = store_watch_add(s->user_id, 0, s->conn.worker, watch_cb, s);
		if (status)
			initial_status(s, list, nl);
	}
	arena_destroy(&a);
	return r;
}

static void
cmd_notify(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	bool status = false, sel_seen = false;
	size_t first = 1, names = 0;
	unsigned used = 0;
	int r = 0;

	if (cmd->count == 1 && imap_arg_is_atom_ci(&args[0], "NONE")) {
		imap_notify_free(s);
		if (s->view != NULL)
			imap_view_sync(s, true);
		imap_tagged(s, "OK", "NOTIFY completed");
		return;
	}
	if (cmd->count >= 2 && imap_arg_is_atom_ci(&args[1], "STATUS")) {
		status = true;
		first = 2;
	}
	if (cmd->count <= first || !imap_arg_is_atom_ci(&args[0], "SET")) {
		imap_bad(
		    s, "Usage: NOTIFY NONE | NOTIFY SET [STATUS] (filter [mailboxes] events) ...");
		return;
	}
	struct imap_notify *n = xcalloc(1, sizeof(*n));
	n->a = arena_new(0);
	n->groups = arena_alloc(n->a, cmd->count * sizeof(*n->groups));
	for (size_t i = first; i < cmd->count && r == 0; i++)
		r = parse_group(s, n, &args[i], &sel_seen, &names, &used);
	struct imap_notify *old = s->notify;
	s->notify = n; /* so that a failure frees it */
	if (r == -1) {
		imap_notify_free(s);
		s->notify = old;
		imap_bad(s, "Invalid NOTIFY event group");
		return;
	}
	if (r == 0 && names > NOTIFY_NAMES_MAX) {
		imap_notify_free(s);
		s->notify = old;
		imap_tagged(s, "NO", "[NOTIFICATIONOVERFLOW] Too many mailbox names");
		return;
	}
	if (r == 0 && (used & ~EV_SUPPORTED)) {
		imap_notify_free(s);
		s->notify = old;
		imap_tagged(s, "NO",
			    "[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
			    "SubscriptionChange MailboxMetadataChange ServerMetadataChange)] "
			    "Unsupported NOTIFY event");
		return;
	}
	if (r != 0) { /* -2: answered */
		imap_notify_free(s);
		s->notify = old;
		return;
	}
	/* NOTIFY SET replaces what was set before (RFC 5465 3.1). */
	s->notify = old;
	imap_notify_free(s);
	s->notify = n;
	n->meta_wanted = (used & EV_META) != 0;
	r = notify_start(s, status);
	if (s->view != NULL)
		imap_view_sync(s, true);
	if (r != STORE_OK) {
		imap_notify_free(s);
		imap_tagged_store_status(s, r, "NOTIFY");
		return;
	}
	imap_tagged(s, "OK", "NOTIFY completed");
}

const struct imap_command imap_notify_cmds[] = {
    {"NOTIFY", IMAP_ST_AUTHED, false, cmd_notify},
    {NULL, 0, false, NULL},
};
