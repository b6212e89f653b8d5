/*
 * config.h - the one INI file (DESIGN.md, Config), loaded with inih.
 * An unknown section or key, a bad value or a missing required key stops
 * start-up with "FILE:LINE: reason". A config is immutable once loaded;
 * SIGHUP loads a new one and swaps it whole (config_current()).
 * Every key is documented in config/tern.conf.example.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Services a listener section can start. The order is the section order
 * in the file's documentation. */
enum service {
	SVC_SMTP,
	SVC_SUBMISSION,
	SVC_SUBMISSIONS,
	SVC_LMTP,
	SVC_IMAP,
	SVC_IMAPS,
	SVC_POP3,
	SVC_POP3S,
	SVC_ADMIN,
	SVC_COUNT
};

struct listener_config {
	bool present; /* the section is in the file */
	char **addrs; /* "host:port" strings; [v6]:port accepted */
	size_t naddrs;
	bool implicit_tls;	  /* smtps, imaps, pop3s */
	bool plaintext_auth;	  /* allow password auth without TLS (loopback tests) */
	unsigned idle_timeout;	  /* seconds */
	size_t max_line;	  /* longest command line */
	unsigned max_connections; /* per listener, across workers (0: none) */
	int line;		  /* where the section starts, for messages */
};

struct directory_config {
	char *uri; /* space- or comma-separated list of LDAP URIs */
	char *base;
	char *bind_dn;
	char *bind_password; /* read from bind_password_file; owned */
	char *profile;	     /* "openldap" or "ad" */
	/* Profile fields; NULL means "the profile's default". After loading,
	 * config_load() fills every one from the profile, so users of the
	 * config never see NULL here (an empty string disables an attribute). */
	char *user_filter;	   /* %u = login */
	char *recipient_filter;	   /* %a = address */
	char *disabled_filter;	   /* an entry matching it is disabled ("" = never) */
	char *list_classes;	   /* objectClasses that make a matched entry a list,
				      comma-separated (groupOfNames, groupOfUniqueNames) */
	char *id_attr;		   /* stable id: entryUUID */
	char *login_attr;	   /* uid */
	char *mail_attr;	   /* mail */
	char *alias_attr;	   /* mailLocalAddress */
	char *routing_attr;	   /* mailRoutingAddress */
	char *member_attr;	   /* list member DN attributes, comma-separated */
	char *quota_attr;	   /* mailQuota */
	uint64_t quota_unit;	   /* bytes per unit of quota_attr */
	char *quota_messages_attr; /* most messages a user may keep; "" = none */
	unsigned cache_ttl;	   /* seconds a positive answer is kept */
	unsigned negative_ttl;	   /* seconds a "no such entry" is kept */
	unsigned timeout;	   /* seconds per operation */
	unsigned lookup_connections;
	unsigned auth_connections;
	unsigned max_list_members; /* expansion bound for one list */
	char *sendas_attr;	   /* attribute naming who may send as an entry
				      (owner; "" = nobody) */
	char *list_post;	   /* who may post to a list: anyone|members|owners */
	char *junk_attr;	   /* per-user switch: FALSE/no/off/0 = spam to INBOX
				      ("" = spam always goes to Junk) */
	/* Transport security and failover (directory/dir_tls.h). */
	bool starttls;	   /* StartTLS on ldap:// URIs */
	bool tls_verify;   /* check the server's chain and name (default yes) */
	char *tls_ca_file; /* "" = the system's default CAs */
	char *tls_ca_dir;
	char *tls_cert; /* client certificate ("" = none), with tls_key */
	char *tls_key;
	bool allow_plaintext_passwords; /* send passwords unencrypted off loopback */
	bool follow_referrals;
	unsigned failback_interval; /* seconds between tries of the preferred URI */
	unsigned page_size;	    /* RFC 2696 page size for big searches */
	char *sync;		    /* auto|yes|no: RFC 4533 change pickup (dir_sync.c) */
	/* Active Directory shapes (profile ad; usable with any profile). */
	char *proxy_attr;	      /* typed addresses: "SMTP:" primary, "smtp:"
					 aliases, other types ignored (proxyAddresses) */
	char *disabled_flags_attr;    /* integer attribute: disabled when a bit of
					 disabled_flags_mask is set (userAccountControl) */
	unsigned disabled_flags_mask; /* 2: ACCOUNTDISABLE */
	char *member_of_attr;	      /* back-link for LDAP_MATCHING_RULE_IN_CHAIN (memberOf) */
	char *ad_matching_rules;      /* auto|yes|no: 1.2.840.113556.1.4.803 and .1941 */
	/* Other list shapes (both profiles; "" disables one). */
	char *member_uid_attr;	   /* member logins (posixGroup memberUid) */
	char *member_address_attr; /* member addresses (nisMailAlias rfc822MailMember) */
	char *member_url_attr;	   /* LDAP URLs whose results are members (memberURL) */
	char *member_query_attr;   /* an LDAP filter whose results are members */
	unsigned max_list_depth;   /* nesting of lists in lists */
	/* Where SCRAM-SHA-256 verifiers are kept (directory/dir_scram.h):
	 * authPassword (RFC 5803) or userPassword ({SCRAM-SHA-256}). */
	char *scram_attr;
	/* IMAP ACL groups: the groups a user is in (%d = the user's DN),
	 * named by group_name_attr ("$name" identifiers). */
	char *group_filter;
	char *group_name_attr;
};

/* [outbound] relayhost_tls and what a static route asks of TLS. */
enum config_tls_policy {
	CONFIG_TLS_NONE,    /* never STARTTLS */
	CONFIG_TLS_MAY,	    /* STARTTLS when offered, unverified (default) */
	CONFIG_TLS_REQUIRE, /* STARTTLS or fail, unverified */
	CONFIG_TLS_VERIFY,  /* STARTTLS, chain and host name verified */
};

/* One [routes] line: mail for domain goes to host:port. */
struct config_route {
	char *domain; /* lower-case */
	char *host;
	unsigned port; /* [outbound] port when not given */
	int line;
};

/* One [milter.NAME] section (protocols/smtp/milter.c). */
struct config_milter {
	char *name;		  /* NAME, as listed in [milter] milters */
	char *socket;		  /* "inet:host:port" or "unix:/path" */
	unsigned connect_timeout; /* seconds */
	unsigned command_timeout; /* seconds per reply */
	bool default_tempfail;	  /* default_action = tempfail (else accept) */
	int line;		  /* the section's line, for errors */
};

/* A repeating time ([backup] schedule): "off", "hourly", "daily" (at
 * 00:00), "daily HH:MM" (local time), "every DURATION" ("every 6h",
 * "every 30s": from when tern-admind starts). */
enum config_schedule_kind {
	CONFIG_SCHEDULE_OFF,
	CONFIG_SCHEDULE_EVERY, /* every `every` seconds ("hourly" = 3600) */
	CONFIG_SCHEDULE_DAILY, /* once a day at `at` seconds after local midnight */
};
struct config_schedule {
	enum config_schedule_kind kind;
	unsigned every;
	unsigned at;
};

struct dkim_keyset;

struct config {
	char *path; /* the file it came from */

	/* [server] */
	char *hostname;
	char **domains; /* lower-case */
	size_t ndomains;
	char *state_dir;
	char *user;	  /* "" = do not change user */
	unsigned workers; /* 0 = number of cores */
	int log_level;	  /* enum log_level */

	/* [tls] */
	char *tls_cert;
	char *tls_key;
	char *tls_client_ca; /* CAs for client certificates ("" = none asked) */

	struct directory_config dir;

	/* [limits] */
	uint64_t message_size_max; /* bytes, SMTP SIZE and DATA */
	unsigned max_recipients;
	unsigned auth_fail_delay_ms; /* first failed-auth delay, doubles per failure */
	unsigned max_auth_failures;  /* per connection, then disconnect */
	/* IMAP: largest literal other than an APPEND message, deepest list
	 * nesting, commands per second per connection (0 = no limit; the
	 * bucket holds one second's worth) and how long a connection may
	 * stay over that rate before it is closed. */
	uint64_t imap_literal_max;
	unsigned imap_max_depth;
	unsigned imap_command_rate;
	unsigned imap_flood_time; /* seconds */
	/* IMAP METADATA (RFC 5464): bytes of one value, entries per
	 * mailbox (or server) and scope (shared, or one user's private). */
	uint64_t imap_metadata_max_size;
	unsigned imap_metadata_max_entries;
	/* [imap] the read-only server entries /shared/admin (a URI) and
	 * /shared/comment; "" = absent. */
	char *imap_metadata_admin;
	char *imap_metadata_comment;
	/* Rate limits per hour, 0 = off (smtp_rate.h). */
	unsigned user_messages_per_hour;
	unsigned user_recipients_per_hour;
	unsigned ip_messages_per_hour;
	unsigned ip_recipients_per_hour;

	/* [storage] */
	uint64_t map_size; /* LMDB map size (bytes) */
	bool group_commit; /* off: one commit per operation (benchmarks) */
	unsigned batch_max_ops;
	uint64_t batch_max_bytes;
	unsigned batch_max_ms;
	unsigned zstd_level;
	/* How long the mail of a user removed from the directory is kept
	 * after it was marked orphan, seconds (storage/store_admin.h). */
	unsigned orphan_retention;
	/* SEARCH BODY/TEXT take candidates from the full-text index (no:
	 * every message is scanned; the index is still kept up to date). */
	bool search_index;
	/* The background indexer runs (no: nothing is added to the index;
	 * SEARCH scans every message above its watermark). */
	bool search_indexer;

	/* [sasl] */
	char *sasl_mechanisms;	    /* extra Cyrus SASL mechanisms ("" = none) */
	char *sasl_keytab;	    /* GSSAPI: the service keys */
	char *sasl_realms;	    /* GSSAPI: realms whose principals map to logins */
	char *sasl_gssapi_hostname; /* host part of the service principal ("" = hostname) */
	char *sasl_external_field;  /* EXTERNAL: email, cn or subject of the certificate */
	char *sasl_external_attr;   /* EXTERNAL: the directory attribute it must equal */

	struct listener_config listeners[SVC_COUNT];

	/* [admin]: provisioning through the directory (directory/dir_admin.h). */
	char *admin_group;	     /* DN of the admins' group; required with [admin] */
	char *admin_writer_dn;	     /* writer_bind_dn: the account that writes ("" = unset) */
	char *admin_writer_password; /* from writer_password_file; a secret, wiped on free */
	char *admin_user_base;	     /* new users go under it (ou=people,<base>) */
	char *admin_group_base;	     /* new lists go under it (ou=groups,<base>) */
	char *admin_user_classes;    /* objectClasses of a new user; the first is structural */
	char *admin_list_classes;    /* objectClasses of a new list; the first is structural */
	/* tern-admind */
	unsigned admin_token_ttl;	     /* seconds a login token lives */
	unsigned admin_auth_cache_ttl;	     /* seconds a checked Basic credential is kept */
	char *admin_audit_log;		     /* "" = STATE_DIR/audit.log */
	bool admin_metrics_public;	     /* /metrics without auth from loopback */
	uint64_t admin_max_body;	     /* bytes of a request body */
	unsigned admin_threads;		     /* request threads */
	unsigned admin_orphan_scan_interval; /* seconds between orphan scans (0 = off) */
	bool admin_write_scram; /* set passwords write [directory] scram_attribute too */

	/* [backup]: tern-admind's backups (admin/admin_backups.c). */
	char *backup_dir;			/* "" = STATE_DIR/backups */
	struct config_schedule backup_schedule; /* scheduled backups */
	unsigned backup_keep;			/* scheduled backups kept */

	/* Read and kept as strings for later issues; not used yet. */
	char *outbound_relayhost;     /* [outbound] relayhost ("" = deliver by MX) */
	char *outbound_retry_initial; /* [outbound] retry_initial ("5m") */
	char *dns_resolver;	      /* [dns] resolver ("" = the system's) */
	char *dkim_selector;	      /* [dkim] selector */
	char *dkim_key_dir;	      /* [dkim] key_dir */
	bool spf_check;		      /* [spf] check: SPF on [smtp] (port 25) */
	bool spf_reject_fail;	      /* [spf] reject_fail: 550 5.7.23 on fail */
	bool dkim_verify;	      /* [dkim] verify: DKIM of inbound [smtp] mail */
	bool dmarc_check;	      /* [dmarc] check: DMARC on [smtp] */
	bool dmarc_reject;	      /* [dmarc] reject: p=reject refused (else Junk) */
	char *dnsbl_zones;	      /* [dnsbl] zones: comma-separated, "" = none */
	bool dnsbl_reject;	      /* [dnsbl] reject: 554 at MAIL (else a header) */

	/* [dmarc] aggregate reports (protocols/smtp/dmarc_job.h) */
	bool dmarc_reports;		/* reports: count and send them */
	unsigned dmarc_report_interval; /* seconds per reporting period */
	char *dmarc_report_from;	/* "" = dmarc-noreply@<hostname> */
	char *dmarc_org_name;		/* "" = hostname */

	/* [outbound] and [routes] (outbound/), checked and parsed at load. */
	unsigned outbound_retry_initial_s; /* retry_initial, seconds */
	unsigned outbound_retry_max;	   /* seconds; the backoff's ceiling */
	unsigned outbound_lifetime;	   /* seconds in the queue before 4.4.7 */
	unsigned outbound_delay_warning;   /* seconds before a delay DSN (0: never) */
	unsigned outbound_max_received;	   /* more Received: headers is a loop */
	unsigned outbound_port;		   /* SMTP port of MX hosts (25) */
	char *outbound_relay_host;	   /* relayhost's host, "" = by MX */
	unsigned outbound_relay_port;	   /* relayhost's port (default: port) */
	char *outbound_relayhost_auth;	   /* "user:password" from relayhost_auth_file
					      ("" = no AUTH); a secret, wiped on free */
	int outbound_relayhost_tls;	   /* enum config_tls_policy */
	char *outbound_tls_ca_file;	   /* "" = the system CA store */
	unsigned outbound_connect_timeout; /* seconds */
	unsigned outbound_command_timeout; /* seconds per reply (RFC 5321 4.5.3.2) */
	unsigned outbound_data_timeout;	   /* seconds for the reply to the final dot */
	unsigned outbound_max_connections; /* in total */
	unsigned outbound_max_per_destination;
	struct config_route *routes; /* [routes] domain = host[:port] */
	size_t nroutes;
	/* [milter] and [milter.NAME] (protocols/smtp/milter.c) */
	char *milter_milters;	       /* [milter] milters, as written */
	char *milter_apply_to;	       /* "inbound" ([smtp]) or "all" (+ submission) */
	char *milter_spam_headers;     /* header names that mark spam, comma-separated */
	struct config_milter *milters; /* in chain order */
	size_t nmilters;
	char *dns_resolver_host; /* [dns] resolver's address, "" = system */
	unsigned dns_resolver_port;

	/* [dkim] key_dir's keys, loaded by the hook ternd installs
	 * (config_set_hooks); NULL without one or without key_dir. */
	struct dkim_keyset *dkim_keys;

	unsigned refs; /* owned by config_acquire/release/set_current */
};

/* A daemon's own step of every config_load (ternd: the DKIM keys, which
 * live in protocols/), run after the file checked out; its error is
 * reported as "FILE: error" and fails the load. unload runs in
 * config_free. Set once, before the first load. */
void config_set_hooks(int (*load)(struct config *cfg, char **error_r),
		      void (*unload)(struct config *cfg));

/* 0, or -1 for a string that is not a schedule (or an interval of 0). */
int config_parse_schedule(const char *s, struct config_schedule *r);
/* The first time after `after` the schedule fires; 0 for "off". */
time_t config_schedule_next(const struct config_schedule *sch, time_t after);

/* Loads and checks path. On failure returns NULL with *error_r set to a
 * malloc'd "FILE:LINE: reason" (free it). */
struct config *config_load(const char *path, char **error_r);
void config_free(struct config *cfg);

/* Section name of a service ("smtp", "pop3s", ...). */
const char *config_service_name(enum service svc);
/* True if the lower-case domain is one of [server] domains. */
bool config_is_local_domain(const struct config *cfg, const char *domain);

/* The config in force. Readers take a reference and drop it when done
 * (a session takes one for its whole life); any thread. */
struct config *config_acquire(void);
void config_release(struct config *cfg);
/* Makes cfg the current config (takes ownership). */
void config_set_current(struct config *cfg);

/* Parses "10M", "512k", "1G", "1024" as bytes (1024-based suffixes k, M,
 * G, T, any case); "5m", "30s", "2h", "1d" or "30" as seconds. 0 on success;
 * -1 on syntax or overflow. */
int config_parse_size(const char *s, uint64_t *bytes_r);
/* Splits "host", "host:port", "[v6]" or "[v6]:port" into a malloc'd host
 * (brackets removed) and a port (default_port when absent). 0, or -1 on
 * syntax or a port outside 1..65535. */
int config_parse_hostport(const char *s, unsigned default_port, char **host_r, unsigned *port_r);
/* The [routes] entry for a lower-case domain, or NULL. */
const struct config_route *config_route_for(const struct config *cfg, const char *domain);
int config_parse_duration(const char *s, uint64_t *seconds_r);

#endif
