/*
 * mech.h - SASL glue shared by every protocol that authenticates.
 * PLAIN (RFC 4616) and LOGIN are decoded here and checked by the caller
 * through dir_authenticate() (the asynchronous directory bind). Cyrus SASL
 * is initialised for the mechanisms that need it, with an explicit
 * mech_list and its auxprop pinned to Tern's own plugin, so a failed check
 * can never fall through to a local sasldb (notes, 3.2).
 * Failed-auth throttling per peer address lives here too.
 */
#ifndef TERN_MECH_H
#define TERN_MECH_H

#include <stdbool.h>
#include <stddef.h>
#include "core/config.h"

/* Splits a decoded PLAIN message "authzid NUL authcid NUL passwd" in
 * place. 0, or -1 if malformed (not exactly two NULs, empty authcid or
 * passwd, a field over 255/1024 bytes). The pointers point into msg. */
int mech_plain_parse(char *msg, size_t len, const char **authzid_r, const char **authcid_r,
		     const char **passwd_r, size_t *pwlen_r);

/* Start-up check of [sasl]: every mechanism named must be one Tern runs
 * (PLAIN, LOGIN, SCRAM-SHA-256(-PLUS), GSSAPI, EXTERNAL) with what it
 * needs (GSSAPI: keytab and realms; EXTERNAL: [tls] client_ca). 0, or -1
 * with a malloc'd *error_r naming the problem. */
int mech_check_config(const struct config *cfg, char **error_r);

/* The Cyrus mechanisms configured (SCRAM implies -PLUS and back). */
enum {
	MECH_SCRAM = 1u << 0,
	MECH_SCRAM_PLUS = 1u << 1,
	MECH_GSSAPI = 1u << 2,
	MECH_EXTERNAL = 1u << 3,
};
unsigned mech_cyrus_configured(const struct config *cfg);

/* For the next Cyrus call on this thread: the SCRAM verifier (RFC 5803
 * "SCRAM-SHA-256$i:salt$stored:server") of user, handed to Cyrus by
 * Tern's auxprop plugin. (NULL, NULL) after the call. */
void mech_set_verifier(const char *user, const char *verifier);

/* Once per process, main thread: sasl_server_init() with Tern's options.
 * 0, or -1 with a malloc'd *error_r. */
int mech_cyrus_init(const struct config *cfg, char **error_r);
void mech_cyrus_done(void);

/* Failed-auth throttling by peer address, any thread: how many ms to
 * wait before answering a failure (grows with repeated failures from the
 * same address, decays with time), and recording a success/failure. */
unsigned mech_fail_delay_ms(const struct config *cfg, const char *peer_ip);
void mech_record_result(const char *peer_ip, bool ok);

#endif
