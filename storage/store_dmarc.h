/*
 * store_dmarc.h - the DMARC aggregate report data (RFC 7489 7.2): one
 * count per (policy domain, row), where a row is everything a report's
 * <record> says of a message apart from the count (source IP,
 * identifiers, results, disposition), and per policy domain the policy
 * as last seen and when its reporting period began. The `dmarc` LMDB
 * database (layout in store_schema.h).
 *
 * Rows and policies are opaque bytes here (protocols/smtp/dmarc_report.h
 * encodes and decodes them); the store only adds counts, lists and
 * drops what was reported.
 *
 * Threads: store_dmarc_add_sync and store_dmarc_sent_sync block until
 * the writer committed (never on a worker's loop); the lists are short
 * read transactions, any thread. How it fails: STORE_* statuses; a
 * record that does not decode is skipped by the list (and logged).
 */
#ifndef TERN_STORE_DMARC_H
#define TERN_STORE_DMARC_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "storage/store.h"

#define STORE_DMARC_ROW_HASH 16 /* bytes of a row's key after the domain */
#define STORE_DMARC_DOMAIN_MAX 253

/* One count to add. Everything is borrowed for the call. */
struct store_dmarc_note {
	const char *domain; /* the policy domain, lower-case */
	const void *policy; /* the policy as published (replaces the kept one) */
	size_t policy_len;
	const void *row;
	size_t row_len;
	uint64_t count;
	int64_t when; /* of the first message counted: a new domain's begin */
};

/* Adds the counts in one write transaction; blocks until committed. */
int store_dmarc_add_sync(const struct store_dmarc_note *notes, size_t n);

struct store_dmarc_row {
	uint8_t hash[STORE_DMARC_ROW_HASH];
	const void *row; /* in the caller's arena */
	size_t row_len;
	uint64_t count;
};

/* A policy domain with its rows, as listed. */
struct store_dmarc_domain {
	const char *domain;
	const void *policy;
	size_t policy_len;
	int64_t begin; /* the period began (the first message since the last report) */
	struct store_dmarc_row *rows;
	size_t nrows;
};

/* Every domain with at least one row, in domain order, copied into a.
 * From the open store (ternd), or from the environment directory path
 * opened read-only (the command line, beside a running ternd; an absent
 * database is an empty list). */
int store_dmarc_list(struct arena *a, struct store_dmarc_domain **domains_r, size_t *n_r);
int store_dmarc_list_path(const char *path, struct arena *a, struct store_dmarc_domain **domains_r,
			  size_t *n_r, char **error_r);

/* A report on d was made: in one transaction, queues it (report, a
 * delivery with only remote recipients; NULL when nothing is sent, e.g.
 * no verified destination, and the rows are dropped all the same),
 * takes the listed counts off d's rows (rows counted again since stay,
 * with what was added) and drops the domain when no row is left, else
 * starts its next period at end. Blocks until committed. */
int store_dmarc_sent_sync(const struct store_dmarc_domain *d, int64_t end,
			  struct store_delivery *report);

#endif
