/*
 * imap_thread.h - the THREAD algorithms of RFC 5256 (ORDEREDSUBJECT and
 * REFERENCES) on already extracted keys, rendered as the THREAD
 * response's thread-list. Pure: no I/O, memory in the caller's arena.
 */
#ifndef TERN_IMAP_THREAD_H
#define TERN_IMAP_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

struct imap_thread_msg {
	uint32_t num;	     /* what is printed: message number or UID */
	uint32_t seq;	     /* message number: breaks date ties */
	int64_t sent;	     /* RFC 5256 2.2 sent date, UTC seconds */
	const char *subject; /* base subject, canonical ("" if none) */
	bool reply;	     /* the subject was a reply or forward */
	const char *msgid;   /* "<a@b>" or "" */
	const char *refs;    /* msg-ids separated by single spaces, oldest first */
};

enum imap_thread_alg { IMAP_THREAD_ORDEREDSUBJECT, IMAP_THREAD_REFERENCES };

/* Threads msgs (any order) and appends the thread-list ("(1 2)(3 (4)(5))",
 * nothing for no messages) to out. 0, or -1 when out's cap is hit. */
int imap_thread(enum imap_thread_alg alg, const struct imap_thread_msg *msgs, size_t n,
		struct arena *a, struct buf *out);

#endif
