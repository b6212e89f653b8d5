/*
 * bench_store.c - the mail store measured directly, without a network in
 * between, for docs/performance.md (issue 3's benchmarks):
 *
 *   1. bytes on disk per stored message for a realistic mixed corpus
 *      (plain text, multipart/alternative text+HTML, messages with base64
 *      attachments; a share of them sent to several users, as list mail
 *      is), compared with the corpus's raw size;
 *   2. FETCH BODYSTRUCTURE for 10,000 messages: what an IMAP FETCH 1:*
 *      BODYSTRUCTURE costs the store (list the mailbox, then per message
 *      read the stored MIME record and copy its BODYSTRUCTURE string),
 *      with no body read and no MIME parse.
 *
 * The corpus is generated from a fixed seed, so runs compare. Everything
 * lives in a temporary directory removed at the end (--keep to look).
 *
 * Usage: bench_store [-n MESSAGES] [--users N] [--keep]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "storage/mime.h"
#include "storage/store.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned completed, failed;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	/* xorshift64*: reproducible, nothing secret. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *words[] = {
    "the",     "meeting", "project", "report",	"please", "review",  "attached", "budget",
    "we",      "should",  "discuss", "tomorrow", "thanks", "regards", "team",	  "update",
    "quarter", "numbers", "client",  "schedule", "deploy", "server",  "issue",	  "fixed",
    "and",     "of",	  "to",	     "in",	 "for",	   "with",    "on",	  "this",
    "invoice", "contract", "draft",  "final",	 "version", "office", "travel",	  "friday",
};

static void
add_text(struct buf *b, size_t bytes, bool html)
{
	size_t start = b->len, col = 0;

	if (html)
		buf_printf(b, "<html><body><p>");
	while (b->len - start < bytes) {
		const char *w = words[rnd() % (sizeof(words) / sizeof(words[0]))];
		buf_printf(b, "%s ", w);
		col += strlen(w) + 1;
		if (col > 66) {
			buf_printf(b, html && rnd() % 4 == 0 ? "</p>\r\n<p>" : "\r\n");
			col = 0;
		}
	}
	if (html)
		buf_printf(b, "</p></body></html>");
	buf_printf(b, "\r\n");
}

static void
add_base64(struct buf *b, size_t raw_bytes)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t chars = (raw_bytes + 2) / 3 * 4;

	for (size_t i = 0; i < chars; i++) {
		char c = al[rnd() % 64];
		buf_append(b, &c, 1);
		if (i % 76 == 75)
			buf_append(b, "\r\n", 2);
	}
	buf_append(b, "\r\n", 2);
}

/* One message of the corpus, by kind. */
static void
make_message(struct buf *b, unsigned i)
{
	unsigned kind = (unsigned)(rnd() % 100);

	buf_printf(b,
		   "Received: from mx%u.example.net ([192.0.2.%u]) by mail.example.org\r\n"
		   "From: Sender %u <sender%u@example.net>\r\n"
		   "To: Someone <someone@example.org>\r\n"
		   "Subject: Re: %s %s %u\r\n"
		   "Date: Thu, 01 Jan 2026 10:%02u:00 +0000\r\n"
		   "Message-ID: <%u.%llx@example.net>\r\n"
		   "MIME-Version: 1.0\r\n",
		   i % 7, i % 250, i % 97, i % 97, words[i % 40], words[(i / 40) % 40], i, i % 60, i,
		   (unsigned long long)rnd());
	if (kind < 55) {
		buf_printf(b, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
		add_text(b, 1000 + rnd() % 6000, false);
	} else if (kind < 85) {
		buf_printf(b, "Content-Type: multipart/alternative; boundary=\"alt%u\"\r\n\r\n"
			      "--alt%u\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
			   i, i);
		add_text(b, 2000 + rnd() % 8000, false);
		buf_printf(b, "--alt%u\r\nContent-Type: text/html; charset=utf-8\r\n\r\n", i);
		add_text(b, 4000 + rnd() % 16000, true);
		buf_printf(b, "--alt%u--\r\n", i);
	} else {
		buf_printf(b, "Content-Type: multipart/mixed; boundary=\"mix%u\"\r\n\r\n"
			      "--mix%u\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
			   i, i);
		add_text(b, 500 + rnd() % 2000, false);
		buf_printf(b,
			   "--mix%u\r\nContent-Type: application/pdf; name=\"doc%u.pdf\"\r\n"
			   "Content-Disposition: attachment; filename=\"doc%u.pdf\"\r\n"
			   "Content-Transfer-Encoding: base64\r\n\r\n",
			   i, i, i);
		add_base64(b, 20000 + rnd() % 200000);
		buf_printf(b, "--mix%u--\r\n", i);
	}
}

static void
done_cb(struct store_delivery *d, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	completed++;
	for (size_t i = 0; i < d->nrcpts; i++)
		if (d->rcpts[i].status != STORE_OK)
			failed++;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static uint64_t
env_bytes(const char *dir)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/mail/data.mdb", dir);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int
main(int argc, char **argv)
{
	unsigned nmsgs = 10000, nusers = 50;
	bool keep = false;
	static const struct option opts[] = {{"messages", required_argument, NULL, 'n'},
					     {"users", required_argument, NULL, 'u'},
					     {"keep", no_argument, NULL, 'k'},
					     {NULL, 0, NULL, 0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "n:u:k", opts, NULL)) != -1) {
		if (ch == 'n')
			nmsgs = (unsigned)strtoul(optarg, NULL, 10);
		else if (ch == 'u')
			nusers = (unsigned)strtoul(optarg, NULL, 10);
		else if (ch == 'k')
			keep = true;
		else {
			fprintf(stderr, "usage: bench_store [-n MESSAGES] [--users N] [--keep]\n");
			return 2;
		}
	}
	if (nusers == 0 || nmsgs == 0)
		return 2;

	char dir[] = "/tmp/tern-bench-store-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct config cfg = {0};
	cfg.state_dir = dir;
	cfg.map_size = 1ull << 40;
	cfg.group_commit = true;
	cfg.batch_max_ops = 64;
	cfg.batch_max_bytes = 8u << 20;
	cfg.batch_max_ms = 0;
	cfg.zstd_level = 3;
	char *err = NULL;
	if (store_open(&cfg, &err) < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		return 1;
	}

	/* ---- 1. deliver the corpus ---- */
	char (*ids)[32] = calloc(nusers, sizeof(*ids));
	for (unsigned u = 0; u < nusers; u++)
		snprintf(ids[u], sizeof(ids[u]), "bench-user-%04u", u);
	uint64_t raw_total = 0, raw_copies = 0;
	unsigned submitted = 0;
	struct store_delivery *ds = calloc(nmsgs, sizeof(*ds));
	struct buf *bodies = calloc(nmsgs, sizeof(*bodies));
	double t0 = now_s();
	for (unsigned i = 0; i < nmsgs; i++) {
		struct buf *b = &bodies[i];
		buf_init(b, 64u << 20);
		make_message(b, i);
		/* One message in ten goes to 10 users (list mail). */
		size_t nr = rnd() % 10 == 0 ? 10 : 1;
		struct store_rcpt *rc = calloc(nr, sizeof(*rc));
		for (size_t r = 0; r < nr; r++) {
			rc[r].user_id = ids[(i + r * 7) % nusers];
			rc[r].trace = "Return-Path: <sender@example.net>\r\n";
			rc[r].trace_len = strlen(rc[r].trace);
		}
		ds[i].body = b->data;
		ds[i].body_len = b->len;
		ds[i].rcpts = rc;
		ds[i].nrcpts = nr;
		ds[i].done = done_cb;
		raw_total += b->len;
		raw_copies += (b->len + rc[0].trace_len) * nr;
		store_deliver(&ds[i]);
		submitted++;
		/* Keep at most ~256 in flight, as many SMTP sessions would. */
		pthread_mutex_lock(&lock);
		while (submitted - completed > 256)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
	}
	pthread_mutex_lock(&lock);
	while (completed < submitted)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	double t1 = now_s();
	if (failed > 0) {
		fprintf(stderr, "bench_store: %u deliveries failed\n", failed);
		return 1;
	}
	uint64_t disk = env_bytes(dir);

	/* ---- 2. FETCH 1:* BODYSTRUCTURE on one user's INBOX ---- */
	/* A user of its own with exactly 10,000 messages (or n). */
	const char *fetch_user = "bench-fetch-user";
	unsigned nfetch = nmsgs < 10000 ? nmsgs : 10000;
	completed = submitted = 0;
	for (unsigned i = 0; i < nfetch; i++) {
		struct store_rcpt *rc = calloc(1, sizeof(*rc));
		rc->user_id = fetch_user;
		ds[i].rcpts = rc;
		ds[i].nrcpts = 1;
		store_deliver(&ds[i]);
		submitted++;
		pthread_mutex_lock(&lock);
		while (submitted - completed > 256)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
	}
	pthread_mutex_lock(&lock);
	while (completed < submitted)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	double best = 1e9;
	uint64_t out_bytes = 0;
	for (int round = 0; round < 5; round++) {
		struct arena *a = arena_new(0);
		struct store_mailbox_info info;
		struct store_msg_info *msgs;
		size_t count;
		struct buf out;
		buf_init(&out, SIZE_MAX);
		double f0 = now_s();
		if (store_mailbox_list(fetch_user, "INBOX", a, &info, &msgs, &count) != STORE_OK ||
		    count != nfetch) {
			fprintf(stderr, "bench_store: listing failed\n");
			return 1;
		}
		for (size_t i = 0; i < count; i++) {
			const void *enc;
			size_t enclen, trace_len;
			const char *bs;
			size_t bslen;
			if (store_message_mime(fetch_user, "INBOX", msgs[i].uid, a, &enc, &enclen,
					       &trace_len) != STORE_OK ||
			    mime_encoded_bodystructure(enc, enclen, &bs, &bslen) != 0) {
				fprintf(stderr, "bench_store: no structure for uid %u\n",
					msgs[i].uid);
				return 1;
			}
			buf_printf(&out, "* %zu FETCH (BODYSTRUCTURE ", i + 1);
			buf_append(&out, bs, bslen);
			buf_append(&out, ")\r\n", 3);
		}
		double f1 = now_s();
		if (f1 - f0 < best)
			best = f1 - f0;
		out_bytes = out.len;
		buf_free(&out);
		arena_destroy(&a);
	}
	store_close();

	printf("corpus: %u messages, %.1f MB raw (%.1f KB average), %.1f MB as delivered "
	       "copies (%u users, 10%% to 10 users)\n",
	       nmsgs, raw_total / 1048576.0, raw_total / 1024.0 / nmsgs, raw_copies / 1048576.0,
	       nusers);
	printf("\n| measure | value |\n|---|---|\n");
	printf("| deliveries/s (in-process, 256 in flight) | %.0f |\n", nmsgs / (t1 - t0));
	printf("| data.mdb after the corpus | %.1f MB |\n", disk / 1048576.0);
	printf("| bytes on disk per message | %.0f |\n", (double)disk / nmsgs);
	printf("| on disk / raw corpus | %.2f |\n", (double)disk / (double)raw_total);
	printf("| on disk / delivered copies | %.2f |\n", (double)disk / (double)raw_copies);
	printf("| FETCH 1:%u BODYSTRUCTURE (best of 5) | %.1f ms (%.2f us/message, %.1f MB "
	       "out) |\n",
	       nfetch, best * 1000, best * 1e6 / nfetch, out_bytes / 1048576.0);

	if (!keep) {
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_store: could not remove %s\n", dir);
	} else {
		printf("\nkept: %s\n", dir);
	}
	return 0;
}
