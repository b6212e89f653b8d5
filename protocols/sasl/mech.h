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

/* Start-up check of [sasl] mechanisms: every name must be one this build
 * can run (PLAIN and LOGIN; the Cyrus mechanisms that need directory-held
 * secrets, a keytab or client certificates are not wired to a protocol
 * yet). 0, or -1 with a malloc'd *error_r naming the mechanism. */
int mech_check_config(const struct config *cfg, char **error_r);

/* Once per process, main thread: sasl_server_init() with Tern's options.
 * 0, or -1 with a malloc'd *error_r. */
int mech_cyrus_init(const struct config *cfg, char **error_r);
void mech_cyrus_done(void);

/* The mechanisms to advertise, space-separated ("PLAIN LOGIN" plus any
 * configured Cyrus ones); "" when password mechanisms are not allowed
 * (no TLS on a listener that does not allow plaintext auth). Any thread;
 * the string stays valid until mech_cyrus_done(). */
const char *mech_advertised(const struct config *cfg, bool tls_or_plain_ok);

/* Failed-auth throttling by peer address, any thread: how many ms to
 * wait before answering a failure (grows with repeated failures from the
 * same address, decays with time), and recording a success/failure. */
unsigned mech_fail_delay_ms(const struct config *cfg, const char *peer_ip);
void mech_record_result(const char *peer_ip, bool ok);

#endif
