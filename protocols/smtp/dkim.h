/*
 * dkim.h - DKIM (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463)
 * on OpenSSL 3's EVP: canonicalisation, signing of submitted mail with the
 * keys of [dkim] key_dir, and the verification core. No DNS here: a
 * verifier lists the key records it needs (dkim_sig_key_name), looks them
 * up however it likes (asynchronously) and hands the TXT text back to
 * dkim_verify_one.
 *
 * Ownership: a keyset belongs to the config it was loaded with (read-only
 * afterwards, so any thread may sign with it); a struct dkim_verify owns
 * everything it returns until dkim_verify_free. Pure functions otherwise:
 * one owner thread per struct dkim_verify.
 */
#ifndef TERN_DKIM_H
#define TERN_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"

struct config;

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

/* ---- canonicalisation and syntax (RFC 6376 3.2, 3.4), for tests too ---- */

/* Appends the canonical form of one header field (name, colon, value and
 * its folding; without the final CRLF) and a CRLF to out. -1 on cap. */
int dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out);
/* Canonicalises a body (the bytes after the blank line), calling emit with
 * the pieces in order; at most limit bytes are emitted ((size_t)-1 = all).
 * Returns the whole canonical length (before the limit). */
size_t dkim_canon_body(enum dkim_canon c, const char *body, size_t len, size_t limit,
		       void (*emit)(void *arg, const char *p, size_t n), void *arg);

struct dkim_tag {
	const char *name; /* borrowed from the parsed text */
	size_t name_len;
	const char *value; /* without the FWS around it; may hold FWS inside */
	size_t value_len;
	const char *raw_end; /* where the tag ends (its ';' or the end) */
};
/* A tag-list (RFC 6376 3.2) into tags[max]: 0 and *n_r, or -1 syntax
 * error, -2 a duplicate tag, -3 more than max tags. */
int dkim_tag_list_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max, size_t *n_r);

/* ---- keys and signing ---- */

struct dkim_key; /* a private key (RSA of at least 1024 bits, or Ed25519) */
struct dkim_keyset;

/* A PEM private key file: 0, or -1 with *error_r (malloc'd, names path). */
int dkim_key_load(const char *path, struct dkim_key **key_r, char **error_r);
void dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
/* The public half as a DNS TXT record value ("v=DKIM1; k=rsa; p=...")
 * appended to out. */
int dkim_key_txt(const struct dkim_key *k, struct buf *out);

/* Every DOMAIN.key in dir: 0, or -1 with *error_r naming the file that
 * did not load. */
int dkim_keyset_load(const char *dir, struct dkim_keyset **ks_r, char **error_r);
void dkim_keyset_free(struct dkim_keyset *ks);
size_t dkim_keyset_count(const struct dkim_keyset *ks);
/* The key for a From domain: its own DOMAIN.key, else the nearest parent
 * domain's; *d_r is the signing domain (the key's). NULL when none. */
const struct dkim_key *dkim_keyset_find(const struct dkim_keyset *ks, const char *domain,
					const char **d_r);

/* Hooks ternd installs so every config_load (start, -t, SIGHUP) loads
 * [dkim] key_dir into cfg->dkim_keys, and config_free frees it. */
void dkim_config_install(void);

struct dkim_sign_params {
	const char *domain;   /* d= */
	const char *selector; /* s= */
	time_t t;	      /* t= (0: not written) */
};
/* Signs msg (header, blank line, body; CRLF lines) relaxed/relaxed over
 * the default header list and appends "DKIM-Signature: ...\r\n" to out,
 * to be put in front of the message. 0, or -1 with *error_r (static). */
int dkim_sign(const struct dkim_key *k, const struct dkim_sign_params *p, const char *msg,
	      size_t len, struct buf *out, const char **error_r);

/* ---- verification ---- */

/* RFC 8601 2.7.1 results. */
enum dkim_result {
	DKIM_NONE,
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_POLICY,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};
const char *dkim_result_name(enum dkim_result r);

/* What the caller's DNS lookup of a key record gave. */
enum dkim_key_status {
	DKIM_KEY_FOUND,	   /* txt holds the record (TXT strings joined) */
	DKIM_KEY_MISSING,  /* NXDOMAIN or no TXT record: permerror */
	DKIM_KEY_TEMPFAIL, /* timeout, SERVFAIL: temperror */
};

struct dkim_sig {
	/* DKIM_NONE until verified; dkim_verify_prepare already settles the
	 * ones that cannot verify (permerror, neutral). */
	enum dkim_result result;
	const char *reason;   /* static text for the A-R comment, or NULL */
	const char *domain;   /* d= ("" if absent) */
	const char *selector; /* s= ("" if absent) */
	const char *auid;     /* i=, or "@" d= */
	const char *header_b; /* the first 8 characters of b= (RFC 6008) */
	enum dkim_alg alg;
	bool body_limited;	 /* l= was given: a body tail may be unsigned */
	struct dkim_sig_int *in; /* the rest, private */
};

struct dkim_verify {
	struct dkim_sig *sigs; /* owned; one per DKIM-Signature, top first */
	size_t nsigs;
	struct dkim_verify_int *in;
};

/* Parses every DKIM-Signature of msg (checked against now for x=). The
 * message is borrowed until dkim_verify_free. 0, or -1 when msg has no
 * header/body separator it could use (then no DKIM result: none). */
int dkim_verify_prepare(const char *msg, size_t len, time_t now, struct dkim_verify **v_r);
/* The DNS name of signature i's key ("SEL._domainkey.DOMAIN"), or NULL
 * when the signature is already settled. */
const char *dkim_sig_key_name(const struct dkim_verify *v, size_t i);
/* Verifies signature i against the key record the caller found. */
enum dkim_result dkim_verify_one(struct dkim_verify *v, size_t i, enum dkim_key_status st,
				 const char *txt, size_t txt_len);
void dkim_verify_free(struct dkim_verify **v);

/* ---- ternd subcommands (dkim_tool.c) ---- */

/* ternd dkim-keygen|dkim-sign|dkim-verify ...: exit status. */
int dkim_tool_main(int argc, char **argv);

#endif
