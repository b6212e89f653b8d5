/*
 * dir_scram.h - internal to directory/: SCRAM-SHA-256 verifiers as
 * directories keep them, for the SCRAM mechanisms (dir_find_user) and for
 * the admin writer ([admin] write_scram).
 *
 * The one form handed to callers is RFC 5803's
 * "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>".
 * Accepted on input: that form (an authPassword value, RFC 3112: blanks
 * around '$' allowed, scheme without case), and userPassword's
 * "{SCRAM-SHA-256}" followed by the RFC 5803 body or by Dovecot's
 * "<iter>,<salt>,<stored>,<server>". Everything is checked: 4096 to
 * 10,000,000 iterations, a salt of at least 8 bytes, 32-byte keys.
 *
 * Pure (dir_scram_make draws its salt from the OpenSSL RNG); any thread.
 * Verifiers are secrets: nothing here logs, and why_r never quotes one.
 */
#ifndef TERN_DIR_SCRAM_H
#define TERN_DIR_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

#define DIR_SCRAM_MIN_ITER 4096u
#define DIR_SCRAM_MAX_ITER 10000000u
#define DIR_SCRAM_MIN_SALT 8
#define DIR_SCRAM_KEY_LEN 32 /* SHA-256 */

/* One attribute value v (len bytes, may hold anything). With
 * userpassword only the "{SCRAM-SHA-256}" forms count (a userPassword
 * value "SCRAM-SHA-256$..." would be a cleartext password to slapd).
 * 1 with the RFC 5803 form in *out_r (in a); 0 if v is no SCRAM-SHA-256
 * verifier (another scheme: not an error); -1 if it says it is one but
 * is malformed, with a static reason in *why_r. */
int dir_scram_parse(struct arena *a, const char *v, size_t len, bool userpassword,
		    const char **out_r, const char **why_r);

/* The RFC 5803 verifier of a password for a given salt. 0, or -1 (bad
 * iterations or salt length, or OpenSSL failed). */
int dir_scram_compute(struct arena *a, const char *password, size_t pwlen,
		      const unsigned char *salt, size_t saltlen, unsigned iterations,
		      const char **out_r);
/* The same with a fresh random 16-byte salt. */
int dir_scram_make(struct arena *a, const char *password, size_t pwlen, unsigned iterations,
		   const char **out_r);

#endif
