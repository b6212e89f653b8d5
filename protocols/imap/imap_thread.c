/*
 * imap_thread.c - RFC 5256 section 3 threading: ORDEREDSUBJECT and
 * REFERENCES (the "Jamie Zawinski" algorithm with the RFC's rules), on
 * keys the store computed at delivery (struct store_sortkey), rendered
 * as a thread-list.
 *
 * Containers live in one arena array; sibling lists are doubly linked
 * with a tail pointer, so linking, unlinking and splicing are O(1) and a
 * mailbox of 100,000 messages threads in O(n log n). Message-IDs and
 * base subjects are looked up in open-addressing hash tables. Rules the
 * RFC leaves open, as decided here: a message without a Message-ID, or
 * with one an earlier message (in message-number order) already has, is
 * threaded as if it had a unique one; sent-date ties are broken by
 * message number; a dummy sorts by its first child (after that child's
 * siblings are sorted).
 *
 * How it fails: never on input (any keys give a thread-list); -1 only
 * when the output buffer's cap is hit. Rendering recurses only where a
 * message has two or more children (a reply chain is a loop), so the
 * depth is the number of nested branch points.
 */
#include <stdlib.h>
#include <string.h>

#include "protocols/imap/imap_thread.h"

struct tc {
	const struct imap_thread_msg *m; /* NULL: a dummy */
	struct tc *parent, *child, *last, *prev, *next;
};

/* ---- lists ---- */

static void
unlink_tc(struct tc *c)
{
	struct tc *p = c->parent;
	if (p == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		p->child = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		p->last = c->prev;
	c->parent = c->prev = c->next = NULL;
}

static void
append_tc(struct tc *p, struct tc *c)
{
	unlink_tc(c);
	c->parent = p;
	c->prev = p->last;
	if (p->last != NULL)
		p->last->next = c;
	else
		p->child = c;
	p->last = c;
}

/* Puts c (unlinked) before x in x's parent's list. */
static void
insert_before(struct tc *x, struct tc *c)
{
	struct tc *p = x->parent;
	c->parent = p;
	c->next = x;
	c->prev = x->prev;
	if (x->prev != NULL)
		x->prev->next = c;
	else
		p->child = c;
	x->prev = c;
}

static bool
is_ancestor(const struct tc *a, const struct tc *b)
{
	for (const struct tc *x = b; x != NULL; x = x->parent)
		if (x == a)
			return true;
	return false;
}

/* ---- sorting siblings ---- */

static const struct imap_thread_msg *
sort_msg(const struct tc *c)
{
	while (c != NULL && c->m == NULL)
		c = c->child; /* a dummy: its first child */
	return c != NULL ? c->m : NULL;
}

static int
cmp_date(const void *x, const void *y)
{
	const struct imap_thread_msg *a = sort_msg(*(struct tc *const *)x);
	const struct imap_thread_msg *b = sort_msg(*(struct tc *const *)y);
	if (a == NULL || b == NULL)
		return (a == NULL) - (b == NULL);
	if (a->sent != b->sent)
		return a->sent < b->sent ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void
sort_children(struct tc *p, struct tc **scratch)
{
	size_t n = 0;
	if (p->child == NULL || p->child == p->last)
		return;
	for (struct tc *c = p->child; c != NULL; c = c->next)
		scratch[n++] = c;
	qsort(scratch, n, sizeof(*scratch), cmp_date);
	p->child = p->last = NULL;
	for (size_t i = 0; i < n; i++) {
		scratch[i]->parent = NULL;
		scratch[i]->prev = scratch[i]->next = NULL;
		append_tc(p, scratch[i]);
	}
}

/* ---- string tables ---- */

struct table {
	struct {
		const char *key;
		struct tc *c;
	} * slot;
	size_t mask;
};

static void
table_init(struct table *t, struct arena *a, size_t n)
{
	size_t size = 16;
	while (size < 2 * n)
		size *= 2;
	t->slot = arena_alloc(a, size * sizeof(*t->slot));
	memset(t->slot, 0, size * sizeof(*t->slot));
	t->mask = size - 1;
}

static size_t
hash_str(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return (size_t)h;
}

/* The slot of key (len bytes): found, or the empty one to fill. */
static size_t
table_slot(struct table *t, const char *key, size_t len)
{
	size_t i = hash_str(key, len) & t->mask;
	while (t->slot[i].key != NULL &&
	       !(strncmp(t->slot[i].key, key, len) == 0 && t->slot[i].key[len] == '\0'))
		i = (i + 1) & t->mask;
	return i;
}

/* ---- REFERENCES ---- */

static struct tc *
id_container(struct table *ids, struct arena *a, struct tc *pool, size_t *npool, const char *id,
	     size_t len)
{
	size_t i = table_slot(ids, id, len);
	if (ids->slot[i].key == NULL) {
		ids->slot[i].key = arena_strndup(a, id, len);
		ids->slot[i].c = &pool[(*npool)++];
	}
	return ids->slot[i].c;
}

static void
prune(struct tc *p, const struct tc *root)
{
	for (struct tc *x = p->child; x != NULL;) {
		struct tc *next = x->next;
		if (x->m == NULL) {
			if (x->child == NULL) {
				unlink_tc(x);
				x = next;
				continue;
			}
			if (p != root || x->child == x->last) {
				/* Promote its children to its place and look at them. */
				struct tc *first = x->child;
				while (x->child != NULL) {
					struct tc *c = x->child;
					unlink_tc(c);
					insert_before(x, c);
				}
				unlink_tc(x);
				x = first;
				continue;
			}
		}
		x = next;
	}
}

static const char *
thread_subject(const struct tc *c)
{
	const struct imap_thread_msg *m = c->m != NULL ? c->m : c->child->m;
	return m != NULL && m->subject != NULL ? m->subject : "";
}

static void
references(const struct imap_thread_msg *msgs, size_t n, struct arena *a, struct tc *root,
	   struct tc **scratch)
{
	size_t nrefs = 0;
	for (size_t i = 0; i < n; i++)
		for (const char *r = msgs[i].refs; r != NULL && *r != '\0'; r++)
			nrefs += *r == '<';
	/* Messages, referenced ids, and one dummy per subject merge. */
	size_t cap = 2 * n + nrefs + 1, npool = 0;
	struct tc *pool = arena_alloc(a, cap * sizeof(*pool));
	memset(pool, 0, cap * sizeof(*pool));
	struct table ids;
	table_init(&ids, a, n + nrefs);

	/* Message-number order, so the first of duplicate ids keeps it. */
	const struct imap_thread_msg **order = arena_alloc(a, (n + 1) * sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = &msgs[i];
	for (size_t i = 1; i < n; i++) { /* insertion: almost always sorted */
		const struct imap_thread_msg *m = order[i];
		size_t j = i;
		while (j > 0 && order[j - 1]->seq > m->seq) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = m;
	}

	/* (1) link. */
	for (size_t i = 0; i < n; i++) {
		const struct imap_thread_msg *m = order[i];
		struct tc *c = NULL;
		size_t idlen = m->msgid != NULL ? strlen(m->msgid) : 0;
		if (idlen > 0) {
			c = id_container(&ids, a, pool, &npool, m->msgid, idlen);
			if (c->m != NULL)
				c = NULL; /* a duplicate: unique */
		}
		if (c == NULL)
			c = &pool[npool++];
		c->m = m;
		/* (A) each reference the parent of the next. */
		struct tc *prev = NULL;
		for (const char *r = m->refs; r != NULL && *r != '\0';) {
			size_t len = strcspn(r, " ");
			struct tc *rc = id_container(&ids, a, pool, &npool, r, len);
			if (prev != NULL && rc != prev && rc->parent == NULL &&
			    !is_ancestor(rc, prev))
				append_tc(prev, rc);
			prev = rc;
			r += len;
			r += *r == ' ';
		}
		/* (B) the last reference is the message's parent. */
		unlink_tc(c);
		/* Unlinked, c is an ancestor of prev only if prev is in its
		 * subtree: a container without children (most) needs no walk. */
		if (prev != NULL && prev != c && (c->child == NULL || !is_ancestor(c, prev)))
			append_tc(prev, c);
	}
	/* (2) the root set. */
	for (size_t i = 0; i < npool; i++)
		if (pool[i].parent == NULL)
			append_tc(root, &pool[i]);
	/* (3) prune dummies (every container's children, then the root's). */
	for (size_t i = 0; i < npool; i++)
		prune(&pool[i], root);
	prune(root, root);
	/* (4) sort the root set (a dummy by its first child). */
	for (struct tc *c = root->child; c != NULL; c = c->next)
		if (c->m == NULL)
			sort_children(c, scratch);
	sort_children(root, scratch);
	/* (5) gather threads by base subject; positions do not matter here
	 * since (6) sorts the top level again. */
	struct table subj;
	size_t ntop = 0;
	for (struct tc *c = root->child; c != NULL; c = c->next)
		scratch[ntop++] = c;
	struct tc **tops = arena_alloc(a, (ntop + 1) * sizeof(*tops));
	memcpy(tops, scratch, ntop * sizeof(*tops));
	table_init(&subj, a, ntop);
	for (size_t k = 0; k < ntop; k++) {
		struct tc *c = tops[k];
		const char *s = thread_subject(c);
		if (*s == '\0')
			continue;
		size_t i = table_slot(&subj, s, strlen(s));
		struct tc *t = subj.slot[i].c;
		if (t == NULL) {
			subj.slot[i].key = s;
			subj.slot[i].c = c;
		} else if (t->m != NULL && (c->m == NULL || (t->m->reply && !c->m->reply))) {
			subj.slot[i].c = c;
		}
	}
	for (size_t k = 0; k < ntop; k++) {
		struct tc *c = tops[k];
		const char *s = thread_subject(c);
		if (c->parent != root || *s == '\0')
			continue; /* merged into another thread already */
		size_t i = table_slot(&subj, s, strlen(s));
		struct tc *t = subj.slot[i].c;
		if (t == c)
			continue;
		if (t->m == NULL && c->m == NULL) {
			while (c->child != NULL)
				append_tc(t, c->child);
			unlink_tc(c);
		} else if (t->m == NULL) {
			append_tc(t, c);
		} else if (c->m == NULL) {
			append_tc(c, t); /* (not reached: (B) prefers the dummy) */
			subj.slot[i].c = c;
		} else if (c->m->reply && !t->m->reply) {
			append_tc(t, c);
		} else {
			struct tc *d = &pool[npool++];
			append_tc(root, d);
			append_tc(d, t);
			append_tc(d, c);
			subj.slot[i].c = d;
		}
	}
	/* (6) sort every set of siblings, the top level last. */
	for (size_t i = 0; i < npool; i++)
		sort_children(&pool[i], scratch);
	sort_children(root, scratch);
}

/* ---- ORDEREDSUBJECT ---- */

static int
cmp_subject(const void *x, const void *y)
{
	const struct tc *a = *(struct tc *const *)x, *b = *(struct tc *const *)y;
	int r = strcmp(a->m->subject != NULL ? a->m->subject : "",
		       b->m->subject != NULL ? b->m->subject : "");
	return r != 0 ? r : cmp_date(x, y);
}

static void
ordered_subject(const struct imap_thread_msg *msgs, size_t n, struct arena *a, struct tc *root,
		struct tc **scratch)
{
	struct tc *pool = arena_alloc(a, (n + 1) * sizeof(*pool));
	memset(pool, 0, (n + 1) * sizeof(*pool));
	for (size_t i = 0; i < n; i++) {
		pool[i].m = &msgs[i];
		scratch[i] = &pool[i];
	}
	qsort(scratch, n, sizeof(*scratch), cmp_subject);
	/* The first of each subject is the parent of the others. */
	struct tc *first = NULL;
	for (size_t i = 0; i < n; i++) {
		struct tc *c = scratch[i];
		if (first != NULL && strcmp(first->m->subject != NULL ? first->m->subject : "",
					    c->m->subject != NULL ? c->m->subject : "") == 0)
			append_tc(first, c);
		else
			first = c;
	}
	for (size_t i = 0; i < n; i++)
		if (pool[i].parent == NULL)
			append_tc(root, &pool[i]);
	sort_children(root, scratch);
}

/* ---- rendering ---- */

static int
render(const struct tc *c, struct buf *out)
{
	for (;;) {
		if (c->m != NULL && buf_printf(out, "%u", c->m->num) < 0)
			return -1;
		if (c->child == NULL)
			return 0;
		if (c->child == c->last && c->m != NULL) {
			if (buf_append(out, " ", 1) < 0)
				return -1;
			c = c->child; /* a chain: no recursion */
			continue;
		}
		if (c->m != NULL && buf_append(out, " ", 1) < 0)
			return -1;
		for (const struct tc *x = c->child; x != NULL; x = x->next)
			if (buf_append(out, "(", 1) < 0 || render(x, out) < 0 ||
			    buf_append(out, ")", 1) < 0)
				return -1;
		return 0;
	}
}

int
imap_thread(enum imap_thread_alg alg, const struct imap_thread_msg *msgs, size_t n, struct arena *a,
	    struct buf *out)
{
	struct tc root = {0};
	size_t nrefs = 0;

	if (n == 0)
		return 0;
	if (alg == IMAP_THREAD_REFERENCES)
		for (size_t i = 0; i < n; i++)
			for (const char *r = msgs[i].refs; r != NULL && *r != '\0'; r++)
				nrefs += *r == '<';
	struct tc **scratch = arena_alloc(a, (2 * n + nrefs + 1) * sizeof(*scratch));
	if (alg == IMAP_THREAD_REFERENCES)
		references(msgs, n, a, &root, scratch);
	else
		ordered_subject(msgs, n, a, &root, scratch);
	for (const struct tc *c = root.child; c != NULL; c = c->next)
		if (buf_append(out, "(", 1) < 0 || render(c, out) < 0 ||
		    buf_append(out, ")", 1) < 0)
			return -1;
	return 0;
}
