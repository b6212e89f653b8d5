/*
 * dir_sync.c - change pickup: an RFC 4533 consumer in refreshAndPersist
 * mode whose only job is to forget cached answers the moment an entry
 * under [directory] base changes (notes 1.5).
 *
 * We send the Sync Request control ourselves on an ordinary asynchronous
 * search (attributes "1.1": we need to know *that* something changed, not
 * what), because libldap's ldap_sync_init blocks for the whole refresh
 * phase. The refresh phase is ignored; when it ends (a refreshDelete or
 * refreshPresent sync info with refreshDone) the cache is flushed once,
 * since anything may have changed while we were not listening. In the
 * persist phase every entry notification (add, modify, delete) and every
 * syncIdSet (deletes) flushes the whole cache: simple and correct, and
 * directories change rarely compared with how often mail arrives.
 *
 * How it fails: the handle is dir_ldap.c's, so a lost connection
 * reconnects with its backoff and the next refresh flushes again. A server
 * without syncprov (auto: no sync control in the rootDSE; yes: the
 * critical control refused) parks the handle for DIR_SYNC_PARK_SECONDS
 * and is logged once: cached answers then live cache_ttl / negative_ttl.
 * A refresh cut short by a size or administrative limit is logged with
 * what the directory admin must change, and parked likewise.
 *
 * The latest cookie the server sent (sync info, sync state controls) is
 * kept in memory and sent with the next request, so a reconnect's refresh
 * carries only what changed meanwhile (or nothing) instead of every entry
 * name under base; the flush at its end stays, so a cookie the server
 * misreads can cost speed, never correctness. e-syncRefreshRequired drops
 * the cookie. It is not kept across restarts (a restart starts with an
 * empty cache anyway). A server that vanishes without closing is noticed by the TCP keepalive
 * and TCP_USER_TIMEOUT every handle gets (dir_tls_setup); until then the
 * TTLs still bound staleness.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <lber.h>
#include <ldap.h>

#include "core/log.h"
#include "directory/dir.h"
#include "directory/dir_sync.h"

/* Cookies of OpenLDAP are "rid=..,sid=..,csn=.." per provider, ~60 bytes
 * each; this leaves room for a few dozen providers. */
#define DIR_SYNC_COOKIE_MAX 2048

static struct {
	const struct directory_config *dc; /* borrowed from the config */
	const char *uri;		   /* borrowed from dir_ldap.c */
	int rootdse_msgid;
	int sync_msgid;
	bool supported;		  /* the rootDSE lists the sync control */
	bool refreshing;	  /* refresh phase: notifications are the past */
	bool told;		  /* "no syncprov, TTLs rule" was logged */
	unsigned changes;	  /* flushes in the persist phase, for the log */
	unsigned refresh_entries; /* entries sent in this refresh phase */
	char cookie[DIR_SYNC_COOKIE_MAX];
	size_t cookie_len; /* 0: none yet */
} Y = {.rootdse_msgid = -1, .sync_msgid = -1};

/* Keeps the server's latest cookie (RFC 4533 2.1.1: opaque). One longer
 * than we keep is dropped, as is any older one: the next refresh is then
 * a full one. */
static void
keep_cookie(const struct berval *bv)
{
	if (bv == NULL || bv->bv_val == NULL || bv->bv_len == 0)
		return;
	if (bv->bv_len > sizeof(Y.cookie)) {
		Y.cookie_len = 0;
		return;
	}
	memcpy(Y.cookie, bv->bv_val, bv->bv_len);
	Y.cookie_len = bv->bv_len;
}

bool
dir_sync_wanted(const struct directory_config *dc)
{
	return dc->sync != NULL && strcmp(dc->sync, "no") != 0;
}

static void
flush(const char *why)
{
	dir_cache_flush();
	log_debug(0, "dir", "sync-flush reason=%s", why);
}

static enum dir_sync_next
park(const char *why)
{
	if (!Y.told)
		log_warn(0, "dir",
			 "sync-unavailable uri=%s reason=\"%s\" fallback=ttl cache_ttl=%us "
			 "negative_ttl=%us",
			 Y.uri, why, Y.dc->cache_ttl, Y.dc->negative_ttl);
	else
		log_debug(0, "dir", "sync-unavailable uri=%s reason=\"%s\"", Y.uri, why);
	Y.told = true;
	return DIR_SYNC_PARK;
}

/* The refreshAndPersist search over base; critical, so a server without
 * syncprov refuses it instead of answering a plain search. */
static enum dir_sync_next
start_sync(LDAP *ld)
{
	BerElement *ber = ber_alloc_t(LBER_USE_DER);
	struct berval *value = NULL;
	LDAPControl *ctrl = NULL;
	char *attrs[] = {LDAP_NO_ATTRS, NULL};
	int rc;

	if (ber == NULL)
		return DIR_SYNC_RECONNECT;
	/* syncRequestValue ::= SEQUENCE { mode ENUMERATED, cookie OPTIONAL,
	 * reloadHint DEFAULT FALSE } */
	struct berval cookie = {.bv_len = Y.cookie_len, .bv_val = Y.cookie};
	int br = Y.cookie_len > 0
		     ? ber_printf(ber, "{eO}", (ber_int_t)LDAP_SYNC_REFRESH_AND_PERSIST, &cookie)
		     : ber_printf(ber, "{e}", (ber_int_t)LDAP_SYNC_REFRESH_AND_PERSIST);
	if (br < 0 || ber_flatten(ber, &value) < 0) {
		ber_free(ber, 1);
		return DIR_SYNC_RECONNECT;
	}
	ber_free(ber, 1);
	rc = ldap_control_create(LDAP_CONTROL_SYNC, 1, value, 1, &ctrl);
	ber_bvfree(value);
	if (rc != LDAP_SUCCESS)
		return DIR_SYNC_RECONNECT;
	LDAPControl *sctrls[] = {ctrl, NULL};
	rc = ldap_search_ext(ld, Y.dc->base, LDAP_SCOPE_SUBTREE, "(objectClass=*)", attrs, 0,
			     sctrls, NULL, NULL, 0, &Y.sync_msgid);
	ldap_control_free(ctrl);
	if (rc != LDAP_SUCCESS) {
		log_warn(0, "dir", "sync-search-failed uri=%s rc=%d error=\"%s\"", Y.uri, rc,
			 ldap_err2string(rc));
		return DIR_SYNC_RECONNECT;
	}
	Y.refreshing = true;
	Y.refresh_entries = 0;
	log_info(0, "dir", "sync-start uri=%s base=\"%s\" cookie=%s", Y.uri, Y.dc->base,
		 Y.cookie_len > 0 ? "yes" : "no");
	return DIR_SYNC_GO_ON;
}

enum dir_sync_next
dir_sync_connected(LDAP *ld, const struct directory_config *dc, const char *uri)
{
	Y.dc = dc;
	Y.uri = uri;
	Y.rootdse_msgid = Y.sync_msgid = -1;
	Y.supported = Y.refreshing = false;
	if (strcmp(dc->sync, "yes") == 0)
		return start_sync(ld);

	char *attrs[] = {"supportedControl", NULL};
	struct timeval tl = {.tv_sec = dc->timeout > 0 ? dc->timeout : 5};
	int rc = ldap_search_ext(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL,
				 &tl, 1, &Y.rootdse_msgid);
	if (rc != LDAP_SUCCESS)
		return DIR_SYNC_RECONNECT;
	return DIR_SYNC_GO_ON;
}

static void
rootdse_entry(LDAP *ld, LDAPMessage *msg)
{
	struct berval **vals = ldap_get_values_len(ld, msg, "supportedControl");
	int n = ldap_count_values_len(vals);

	for (int i = 0; i < n; i++)
		if (vals[i]->bv_len == strlen(LDAP_CONTROL_SYNC) &&
		    memcmp(vals[i]->bv_val, LDAP_CONTROL_SYNC, vals[i]->bv_len) == 0)
			Y.supported = true;
	ldap_value_free_len(vals);
}

/* A sync info message (RFC 4533 2.5): the end of the refresh phase, or
 * a set of deleted entries. */
static void
sync_info(LDAP *ld, LDAPMessage *msg)
{
	char *oid = NULL;
	struct berval *data = NULL;
	ber_len_t len;

	if (ldap_parse_intermediate(ld, msg, &oid, &data, NULL, 0) != LDAP_SUCCESS)
		return;
	if (oid == NULL || strcmp(oid, LDAP_SYNC_INFO) != 0 || data == NULL)
		goto out;
	BerElement *ber = ber_init(data);
	if (ber == NULL)
		goto out;
	ber_tag_t tag = ber_peek_tag(ber, &len);
	if (tag == LDAP_TAG_SYNC_REFRESH_DELETE || tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
		/* { cookie OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE } */
		ber_int_t done = 1;
		if (ber_scanf(ber, "{") != LBER_ERROR) {
			tag = ber_peek_tag(ber, &len);
			if (tag == LDAP_TAG_SYNC_COOKIE) {
				struct berval bv = {0};
				if (ber_scanf(ber, "m", &bv) != LBER_ERROR)
					keep_cookie(&bv);
				tag = ber_peek_tag(ber, &len);
			}
			if (tag == LBER_BOOLEAN)
				ber_scanf(ber, "b", &done);
		}
		if (done && Y.refreshing) {
			Y.refreshing = false;
			flush("refresh-done");
			log_info(0, "dir", "sync-ready uri=%s entries=%u", Y.uri,
				 Y.refresh_entries);
		}
	} else if (tag == LDAP_TAG_SYNC_ID_SET) {
		/* { cookie OPTIONAL, refreshDeletes, syncUUIDs } */
		struct berval bv = {0};
		if (ber_scanf(ber, "{") != LBER_ERROR &&
		    ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE &&
		    ber_scanf(ber, "m", &bv) != LBER_ERROR)
			keep_cookie(&bv);
		if (!Y.refreshing) {
			Y.changes++;
			flush("deleted");
		}
	} else if (tag == LDAP_TAG_SYNC_NEW_COOKIE) {
		/* Nothing changed for us; only the cookie moves on. */
		struct berval bv = {0};
		if (ber_scanf(ber, "m", &bv) != LBER_ERROR)
			keep_cookie(&bv);
	}
	ber_free(ber, 1);
out:
	ldap_memfree(oid);
	ber_bvfree(data);
}

/* An entry notification of the persist phase: something changed. */
static void
sync_entry(LDAP *ld, LDAPMessage *msg)
{
	static const char *const states[] = {"present", "add", "modify", "delete"};
	LDAPControl **ctrls = NULL;
	ber_int_t state = -1;

	if (ldap_get_entry_controls(ld, msg, &ctrls) == LDAP_SUCCESS) {
		LDAPControl *c = ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL);
		BerElement *ber = c != NULL ? ber_init(&c->ldctl_value) : NULL;
		if (ber != NULL) {
			/* syncStateValue ::= SEQUENCE { state, entryUUID,
			 * cookie OPTIONAL } */
			struct berval uuid = {0}, bv = {0};
			ber_len_t len;
			if (ber_scanf(ber, "{em", &state, &uuid) == LBER_ERROR)
				state = -1;
			else if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE &&
				 ber_scanf(ber, "m", &bv) != LBER_ERROR)
				keep_cookie(&bv);
			ber_free(ber, 1);
		}
		ldap_controls_free(ctrls);
	}
	if (Y.refreshing) {
		Y.refresh_entries++;
		return;
	}
	Y.changes++;
	flush(state >= 0 && state <= 3 ? states[state] : "change");
}

static enum dir_sync_next
sync_result(LDAP *ld, LDAPMessage *msg)
{
	int err = LDAP_OTHER;
	char *diag = NULL;
	int rc = ldap_parse_result(ld, msg, &err, NULL, &diag, NULL, NULL, 1);
	const char *d = diag != NULL ? diag : "";
	enum dir_sync_next next = DIR_SYNC_RECONNECT;

	if (rc != LDAP_SUCCESS)
		err = rc;
	Y.sync_msgid = -1;
	switch (err) {
	case LDAP_UNAVAILABLE_CRITICAL_EXTENSION:
	case LDAP_PROTOCOL_ERROR:
		next = park("the directory refused the sync request control (no syncprov "
			    "overlay on this database)");
		break;
	case LDAP_SIZELIMIT_EXCEEDED:
	case LDAP_ADMINLIMIT_EXCEEDED:
	case LDAP_TIMELIMIT_EXCEEDED:
		log_error(0, "dir",
			  "sync-limited uri=%s rc=%d error=\"%s\" diag=\"%s\" hint=\"give the "
			  "service account unlimited size and time limits (slapd: limits "
			  "dn.exact=<bind_dn> size=unlimited time=unlimited)\"",
			  Y.uri, err, ldap_err2string(err), d);
		next = DIR_SYNC_PARK;
		break;
	case LDAP_SYNC_REFRESH_REQUIRED:
		/* Our cookie is too old (or from another server): start over. */
		Y.cookie_len = 0;
		log_info(0, "dir", "sync-refresh-required uri=%s", Y.uri);
		break;
	default:
		log_warn(0, "dir", "sync-ended uri=%s rc=%d error=\"%s\" diag=\"%s\" changes=%u",
			 Y.uri, err, ldap_err2string(err), d, Y.changes);
		break;
	}
	ldap_memfree(diag);
	return next;
}

enum dir_sync_next
dir_sync_message(LDAP *ld, LDAPMessage *msg)
{
	int msgid = ldap_msgid(msg);
	int type = ldap_msgtype(msg);
	enum dir_sync_next next = DIR_SYNC_GO_ON;

	if (msgid == Y.rootdse_msgid) {
		if (type == LDAP_RES_SEARCH_ENTRY) {
			rootdse_entry(ld, msg);
		} else if (type == LDAP_RES_SEARCH_RESULT) {
			int err = LDAP_OTHER;
			int rc = ldap_parse_result(ld, msg, &err, NULL, NULL, NULL, NULL, 1);
			Y.rootdse_msgid = -1;
			/* A rootDSE we may not read says nothing: try the
			 * control, whose refusal is just as clear. */
			if (Y.supported || rc != LDAP_SUCCESS || err != LDAP_SUCCESS)
				return start_sync(ld);
			return park("the directory does not list the sync control "
				    "1.3.6.1.4.1.4203.1.9.1.1 in its rootDSE (no syncprov)");
		}
	} else if (msgid == Y.sync_msgid) {
		if (type == LDAP_RES_SEARCH_ENTRY) {
			sync_entry(ld, msg);
		} else if (type == LDAP_RES_INTERMEDIATE) {
			sync_info(ld, msg);
		} else if (type == LDAP_RES_SEARCH_RESULT) {
			return sync_result(ld, msg); /* frees msg */
		}
	}
	ldap_msgfree(msg);
	return next;
}
