/*
 * dir_sync.h - internal to directory/: change pickup through an RFC 4533
 * sync consumer (refreshAndPersist) on the OpenLDAP syncprov overlay.
 *
 * dir_ldap.c owns the handle: it connects, binds and reconnects it like
 * any other (one extra handle, pool "sync", only when [directory] sync is
 * not "no"), and feeds this module what arrives on it. This module says
 * what to do next. Everything here runs on the directory thread.
 */
#ifndef TERN_DIR_SYNC_H
#define TERN_DIR_SYNC_H

#include <stdbool.h>

#include <ldap.h>

#include "core/config.h"

enum dir_sync_next {
	DIR_SYNC_GO_ON,	    /* keep the handle */
	DIR_SYNC_RECONNECT, /* drop it and reconnect with the usual backoff */
	DIR_SYNC_PARK,	    /* the server has no syncprov: drop it, try much later */
};

/* Seconds a parked handle waits before it asks again (a server may gain
 * syncprov, or failover may reach one that has it). */
#define DIR_SYNC_PARK_SECONDS 300

/* True when [directory] sync asks for a consumer at all. */
bool dir_sync_wanted(const struct directory_config *dc);

/* The handle is bound: ask the rootDSE (sync = auto) or start the
 * refreshAndPersist search (sync = yes). */
enum dir_sync_next dir_sync_connected(LDAP *ld, const struct directory_config *dc, const char *uri);

/* One message that arrived on the handle; frees msg. */
enum dir_sync_next dir_sync_message(LDAP *ld, LDAPMessage *msg);

#endif
