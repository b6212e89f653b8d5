/*
 * config.c - loads the one INI file (config.h) with inih.
 * Every key is one row of a static table {section, key, type, where,
 * default}; defaults go through the same parsers as the file's values.
 * Failure: config_load() returns NULL and a malloc'd message naming the
 * file and, where there is one, the line: "FILE:LINE: [section] key: why".
 * The first error wins; parsing stops there.
 *
 * inih passes no line numbers to the handler, so the file is fed to inih
 * through our own reader, which counts lines and also sees section headers
 * (inih calls the handler only for key = value lines, so an empty or an
 * unknown section would otherwise go unnoticed).
 */
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/compat.h"
#include "core/log.h"

/* Longest line of the file we accept (an AD filter can be long). */
#define CONFIG_LINE_MAX 8192

enum ctype {
	CT_STRING,	/* char *, "" by default */
	CT_PROFILE_STR, /* char *, NULL until set; filled from the profile */
	CT_FILTER,	/* like CT_PROFILE_STR, an LDAP filter template */
	CT_ATTR,	/* like CT_PROFILE_STR, one attribute name or "" */
	CT_ATTR_LIST,	/* like CT_PROFILE_STR, comma-separated names */
	CT_BOOL,
	CT_UINT,	/* unsigned */
	CT_SIZE,	/* uint64_t bytes */
	CT_SIZE_T,	/* size_t bytes */
	CT_SECONDS,	/* unsigned seconds */
	CT_MS,		/* unsigned milliseconds */
	CT_DOMAINS,	/* [server] domains: char ** and ndomains */
	CT_LOG_LEVEL,	/* int */
	CT_PROFILE,	/* [directory] profile */
	CT_URI,		/* [directory] uri */
	CT_HOSTNAME,	/* [server] hostname */
	CT_READABLE,	/* char *, a file that must be readable now */
	CT_SECRET_FILE, /* path of a file whose first line goes to dir.bind_password */
	CT_LISTEN,	/* a listener's addrs and naddrs */
	CT_AUTH_FILE,	/* char *, "user:password" from a file only its owner reads */
	CT_TLS_POLICY,	/* int, enum config_tls_policy */
	CT_SCHEDULE,	/* struct config_schedule */
};

#define F_REQUIRED 1u

struct key_def {
	const char *section; /* NULL: every listener section */
	const char *key;
	enum ctype type;
	size_t offset;	 /* into struct config, or struct listener_config */
	const char *def; /* parsed like a value; NULL: no default */
	unsigned flags;
	uint64_t min, max; /* for numbers; max 0 = the type's range */
};

#define CFG(f) offsetof(struct config, f)
#define DIRF(f) (offsetof(struct config, dir) + offsetof(struct directory_config, f))
#define LST(f) offsetof(struct listener_config, f)

static const struct key_def keys[] = {
    {"server", "hostname", CT_HOSTNAME, CFG(hostname), NULL, F_REQUIRED, 0, 0},
    {"server", "domains", CT_DOMAINS, CFG(domains), NULL, F_REQUIRED, 0, 0},
    {"server", "state_dir", CT_STRING, CFG(state_dir), NULL, F_REQUIRED, 0, 0},
    {"server", "user", CT_STRING, CFG(user), "", 0, 0, 0},
    {"server", "workers", CT_UINT, CFG(workers), "0", 0, 0, 1024},
    {"server", "log_level", CT_LOG_LEVEL, CFG(log_level), "info", 0, 0, 0},

    {"tls", "cert", CT_READABLE, CFG(tls_cert), "", 0, 0, 0},
    {"tls", "key", CT_READABLE, CFG(tls_key), "", 0, 0, 0},
    {"tls", "client_ca", CT_READABLE, CFG(tls_client_ca), "", 0, 0, 0},

    {"directory", "uri", CT_URI, DIRF(uri), NULL, F_REQUIRED, 0, 0},
    {"directory", "base", CT_STRING, DIRF(base), NULL, F_REQUIRED, 0, 0},
    {"directory", "bind_dn", CT_STRING, DIRF(bind_dn), "", 0, 0, 0},
    {"directory", "bind_password_file", CT_SECRET_FILE, DIRF(bind_password), "", 0, 0, 0},
    {"directory", "profile", CT_PROFILE, DIRF(profile), "openldap", 0, 0, 0},
    {"directory", "user_filter", CT_FILTER, DIRF(user_filter), NULL, 0, 0, 0},
    {"directory", "recipient_filter", CT_FILTER, DIRF(recipient_filter), NULL, 0, 0, 0},
    {"directory", "disabled_filter", CT_FILTER, DIRF(disabled_filter), NULL, 0, 0, 0},
    {"directory", "list_classes", CT_ATTR_LIST, DIRF(list_classes), NULL, 0, 0, 0},
    {"directory", "id_attr", CT_ATTR, DIRF(id_attr), NULL, 0, 0, 0},
    {"directory", "login_attr", CT_ATTR, DIRF(login_attr), NULL, 0, 0, 0},
    {"directory", "mail_attr", CT_ATTR, DIRF(mail_attr), NULL, 0, 0, 0},
    {"directory", "alias_attr", CT_ATTR, DIRF(alias_attr), NULL, 0, 0, 0},
    {"directory", "routing_attr", CT_ATTR, DIRF(routing_attr), NULL, 0, 0, 0},
    {"directory", "member_attr", CT_ATTR_LIST, DIRF(member_attr), NULL, 0, 0, 0},
    {"directory", "quota_attr", CT_ATTR, DIRF(quota_attr), NULL, 0, 0, 0},
    {"directory", "quota_unit", CT_SIZE, DIRF(quota_unit), NULL, 0, 1, 0},
    {"directory", "quota_messages_attr", CT_ATTR, DIRF(quota_messages_attr), NULL, 0, 0, 0},
    {"directory", "cache_ttl", CT_SECONDS, DIRF(cache_ttl), "60s", 0, 0, 0},
    {"directory", "negative_ttl", CT_SECONDS, DIRF(negative_ttl), "10s", 0, 0, 0},
    {"directory", "timeout", CT_SECONDS, DIRF(timeout), "5s", 0, 1, 0},
    {"directory", "lookup_connections", CT_UINT, DIRF(lookup_connections), "2", 0, 1, 64},
    {"directory", "auth_connections", CT_UINT, DIRF(auth_connections), "4", 0, 1, 256},
    {"directory", "max_list_members", CT_UINT, DIRF(max_list_members), "1000", 0, 1, 0},
    {"directory", "sendas_attr", CT_ATTR, DIRF(sendas_attr), NULL, 0, 0, 0},
    {"directory", "junk_attr", CT_ATTR, DIRF(junk_attr), NULL, 0, 0, 0},
    {"directory", "list_post", CT_STRING, DIRF(list_post), "anyone", 0, 0, 0},
    {"directory", "starttls", CT_BOOL, DIRF(starttls), "no", 0, 0, 0},
    {"directory", "tls_verify", CT_BOOL, DIRF(tls_verify), "yes", 0, 0, 0},
    {"directory", "tls_ca_file", CT_READABLE, DIRF(tls_ca_file), "", 0, 0, 0},
    {"directory", "tls_ca_dir", CT_STRING, DIRF(tls_ca_dir), "", 0, 0, 0},
    {"directory", "tls_cert", CT_READABLE, DIRF(tls_cert), "", 0, 0, 0},
    {"directory", "tls_key", CT_READABLE, DIRF(tls_key), "", 0, 0, 0},
    {"directory", "allow_plaintext_passwords", CT_BOOL, DIRF(allow_plaintext_passwords), "no", 0, 0,
     0},
    {"directory", "follow_referrals", CT_BOOL, DIRF(follow_referrals), "no", 0, 0, 0},
    {"directory", "failback_interval", CT_SECONDS, DIRF(failback_interval), "60s", 0, 1, 0},
    {"directory", "page_size", CT_UINT, DIRF(page_size), "500", 0, 1, 100000},
    {"directory", "sync", CT_STRING, DIRF(sync), "auto", 0, 0, 0},
    {"directory", "proxy_attr", CT_ATTR, DIRF(proxy_attr), NULL, 0, 0, 0},
    {"directory", "disabled_flags_attr", CT_ATTR, DIRF(disabled_flags_attr), NULL, 0, 0, 0},
    {"directory", "disabled_flags_mask", CT_UINT, DIRF(disabled_flags_mask), "2", 0, 1, 0},
    {"directory", "member_of_attr", CT_ATTR, DIRF(member_of_attr), NULL, 0, 0, 0},
    {"directory", "ad_matching_rules", CT_STRING, DIRF(ad_matching_rules), "auto", 0, 0, 0},
    {"directory", "member_uid_attr", CT_ATTR, DIRF(member_uid_attr), NULL, 0, 0, 0},
    {"directory", "member_address_attr", CT_ATTR, DIRF(member_address_attr), NULL, 0, 0, 0},
    {"directory", "member_url_attr", CT_ATTR, DIRF(member_url_attr), NULL, 0, 0, 0},
    {"directory", "member_query_attr", CT_ATTR, DIRF(member_query_attr), NULL, 0, 0, 0},
    {"directory", "max_list_depth", CT_UINT, DIRF(max_list_depth), "8", 0, 1, 64},
    {"directory", "scram_attribute", CT_ATTR, DIRF(scram_attr), "authPassword", 0, 0, 0},
    /* IMAP ACL groups (RFC 4314 "$group" identifiers; dir_user_groups). */
    {"directory", "group_filter", CT_FILTER, DIRF(group_filter), NULL, 0, 0, 0},
    {"directory", "group_name_attr", CT_ATTR, DIRF(group_name_attr), NULL, 0, 0, 0},

    {"limits", "message_size_max", CT_SIZE, CFG(message_size_max), "25M", 0, 1, 0},
    {"limits", "max_recipients", CT_UINT, CFG(max_recipients), "100", 0, 1, 0},
    {"limits", "auth_fail_delay", CT_MS, CFG(auth_fail_delay_ms), "2s", 0, 0, 0},
    {"limits", "max_auth_failures", CT_UINT, CFG(max_auth_failures), "3", 0, 1, 0},
    {"limits", "imap_literal_max", CT_SIZE, CFG(imap_literal_max), "64K", 0, 1024, 1ull << 30},
    {"limits", "imap_max_depth", CT_UINT, CFG(imap_max_depth), "32", 0, 1, 1000},
    {"limits", "imap_command_rate", CT_UINT, CFG(imap_command_rate), "1000", 0, 0, 1000000},
    {"limits", "imap_flood_time", CT_SECONDS, CFG(imap_flood_time), "30s", 0, 1, 0},
    {"limits", "imap_metadata_max_size", CT_SIZE, CFG(imap_metadata_max_size), "64K", 0, 1024,
     1ull << 20},
    {"limits", "imap_metadata_max_entries", CT_UINT, CFG(imap_metadata_max_entries), "100", 0, 10,
     100000},
    {"limits", "user_messages_per_hour", CT_UINT, CFG(user_messages_per_hour), "0", 0, 0, 0},
    {"limits", "user_recipients_per_hour", CT_UINT, CFG(user_recipients_per_hour), "0", 0, 0, 0},
    {"limits", "ip_messages_per_hour", CT_UINT, CFG(ip_messages_per_hour), "0", 0, 0, 0},
    {"limits", "ip_recipients_per_hour", CT_UINT, CFG(ip_recipients_per_hour), "0", 0, 0, 0},

    {"storage", "map_size", CT_SIZE, CFG(map_size), "1T", 0, 1 << 20, 0},
    {"storage", "group_commit", CT_BOOL, CFG(group_commit), "yes", 0, 0, 0},
    {"storage", "batch_max_ops", CT_UINT, CFG(batch_max_ops), "64", 0, 1, 0},
    {"storage", "batch_max_bytes", CT_SIZE, CFG(batch_max_bytes), "8M", 0, 1, 0},
    {"storage", "batch_max_ms", CT_UINT, CFG(batch_max_ms), "0", 0, 0, 1000},
    {"storage", "zstd_level", CT_UINT, CFG(zstd_level), "3", 0, 1, 19},
    {"storage", "orphan_retention", CT_SECONDS, CFG(orphan_retention), "30d", 0, 0, 0},
    {"storage", "search_index", CT_BOOL, CFG(search_index), "yes", 0, 0, 0},
    {"storage", "search_indexer", CT_BOOL, CFG(search_indexer), "yes", 0, 0, 0},

    {"sasl", "mechanisms", CT_STRING, CFG(sasl_mechanisms), "", 0, 0, 0},
    {"sasl", "keytab", CT_READABLE, CFG(sasl_keytab), "", 0, 0, 0},
    {"sasl", "realms", CT_STRING, CFG(sasl_realms), "", 0, 0, 0},
    {"sasl", "gssapi_hostname", CT_STRING, CFG(sasl_gssapi_hostname), "", 0, 0, 0},
    {"sasl", "external_field", CT_STRING, CFG(sasl_external_field), "email", 0, 0, 0},
    {"sasl", "external_attribute", CT_ATTR, CFG(sasl_external_attr), "mail", 0, 0, 0},

    {"imap", "metadata_admin", CT_STRING, CFG(imap_metadata_admin), "", 0, 0, 0},
    {"imap", "metadata_comment", CT_STRING, CFG(imap_metadata_comment), "", 0, 0, 0},
    {"admin", "admin_group", CT_STRING, CFG(admin_group), "", 0, 0, 0},
    {"admin", "writer_bind_dn", CT_STRING, CFG(admin_writer_dn), "", 0, 0, 0},
    {"admin", "writer_password_file", CT_SECRET_FILE, CFG(admin_writer_password), "", 0, 0, 0},
    {"admin", "user_base", CT_STRING, CFG(admin_user_base), "", 0, 0, 0},
    {"admin", "group_base", CT_STRING, CFG(admin_group_base), "", 0, 0, 0},
    {"admin", "user_object_classes", CT_ATTR_LIST, CFG(admin_user_classes), NULL, 0, 0, 0},
    {"admin", "list_object_classes", CT_ATTR_LIST, CFG(admin_list_classes), NULL, 0, 0, 0},
    {"admin", "token_ttl", CT_SECONDS, CFG(admin_token_ttl), "1h", 0, 60, 7 * 86400},
    {"admin", "auth_cache_ttl", CT_SECONDS, CFG(admin_auth_cache_ttl), "30s", 0, 0, 3600},
    {"admin", "audit_log", CT_STRING, CFG(admin_audit_log), "", 0, 0, 0},
    {"admin", "metrics_public", CT_BOOL, CFG(admin_metrics_public), "no", 0, 0, 0},
    {"admin", "max_body", CT_SIZE, CFG(admin_max_body), "1M", 0, 1024, 1ull << 30},
    {"admin", "threads", CT_UINT, CFG(admin_threads), "4", 0, 1, 64},
    {"admin", "orphan_scan_interval", CT_SECONDS, CFG(admin_orphan_scan_interval), "1h", 0, 0, 0},
    {"admin", "write_scram", CT_BOOL, CFG(admin_write_scram), "no", 0, 0, 0},
    {"backup", "dir", CT_STRING, CFG(backup_dir), "", 0, 0, 0},
    {"backup", "schedule", CT_SCHEDULE, CFG(backup_schedule), "off", 0, 0, 0},
    {"backup", "keep", CT_UINT, CFG(backup_keep), "7", 0, 1, 10000},
    {"outbound", "relayhost", CT_STRING, CFG(outbound_relayhost), "", 0, 0, 0},
    {"outbound", "retry_initial", CT_STRING, CFG(outbound_retry_initial), "5m", 0, 0, 0},
    {"dns", "resolver", CT_STRING, CFG(dns_resolver), "", 0, 0, 0},
    {"outbound", "retry_max", CT_SECONDS, CFG(outbound_retry_max), "1h", 0, 1, 0},
    {"outbound", "lifetime", CT_SECONDS, CFG(outbound_lifetime), "5d", 0, 1, 0},
    {"outbound", "delay_warning", CT_SECONDS, CFG(outbound_delay_warning), "4h", 0, 0, 0},
    {"outbound", "max_received", CT_UINT, CFG(outbound_max_received), "50", 0, 1, 1000},
    {"outbound", "port", CT_UINT, CFG(outbound_port), "25", 0, 1, 65535},
    {"outbound", "relayhost_auth_file", CT_AUTH_FILE, CFG(outbound_relayhost_auth), "", 0, 0, 0},
    {"outbound", "relayhost_tls", CT_TLS_POLICY, CFG(outbound_relayhost_tls), "may", 0, 0, 0},
    {"outbound", "tls_ca_file", CT_READABLE, CFG(outbound_tls_ca_file), "", 0, 0, 0},
    {"outbound", "connect_timeout", CT_SECONDS, CFG(outbound_connect_timeout), "30s", 0, 1, 0},
    {"outbound", "command_timeout", CT_SECONDS, CFG(outbound_command_timeout), "5m", 0, 1, 0},
    {"outbound", "data_timeout", CT_SECONDS, CFG(outbound_data_timeout), "10m", 0, 1, 0},
    {"outbound", "max_connections", CT_UINT, CFG(outbound_max_connections), "100", 0, 1, 10000},
    {"outbound", "max_per_destination", CT_UINT, CFG(outbound_max_per_destination), "5", 0, 1,
     1000},
    {"milter", "milters", CT_STRING, CFG(milter_milters), "", 0, 0, 0},
    {"milter", "apply_to", CT_STRING, CFG(milter_apply_to), "inbound", 0, 0, 0},
    {"milter", "spam_headers", CT_STRING, CFG(milter_spam_headers),
     "X-Spam-Flag, X-Spam, X-Spam-Status", 0, 0, 0},
    {"dkim", "selector", CT_STRING, CFG(dkim_selector), "", 0, 0, 0},
    {"dkim", "key_dir", CT_STRING, CFG(dkim_key_dir), "", 0, 0, 0},
    {"spf", "check", CT_BOOL, CFG(spf_check), "yes", 0, 0, 0},
    {"spf", "reject_fail", CT_BOOL, CFG(spf_reject_fail), "no", 0, 0, 0},
    {"dkim", "verify", CT_BOOL, CFG(dkim_verify), "yes", 0, 0, 0},
    {"dmarc", "check", CT_BOOL, CFG(dmarc_check), "yes", 0, 0, 0},
    {"dmarc", "reject", CT_BOOL, CFG(dmarc_reject), "yes", 0, 0, 0},
    {"dmarc", "reports", CT_BOOL, CFG(dmarc_reports), "no", 0, 0, 0},
    {"dmarc", "report_interval", CT_SECONDS, CFG(dmarc_report_interval), "24h", 0, 60, 0},
    {"dmarc", "report_from", CT_STRING, CFG(dmarc_report_from), "", 0, 0, 0},
    {"dmarc", "org_name", CT_STRING, CFG(dmarc_org_name), "", 0, 0, 0},
    {"dnsbl", "zones", CT_STRING, CFG(dnsbl_zones), "", 0, 0, 0},
    {"dnsbl", "reject", CT_BOOL, CFG(dnsbl_reject), "yes", 0, 0, 0},
};

/* Keys of every listener section; defaults that differ per service are in
 * listener_defaults below (def NULL here). */
static const struct key_def listener_keys[] = {
    {NULL, "listen", CT_LISTEN, LST(addrs), NULL, F_REQUIRED, 0, 0},
    {NULL, "plaintext_auth", CT_BOOL, LST(plaintext_auth), "no", 0, 0, 0},
    {NULL, "idle_timeout", CT_SECONDS, LST(idle_timeout), NULL, 0, 1, 0},
    {NULL, "max_line", CT_SIZE_T, LST(max_line), NULL, 0, 512, 16 << 20},
    {NULL, "max_connections", CT_UINT, LST(max_connections), "0", 0, 0, 0},
};

/* Per service: RFC 5321 wants command lines of 512 and text lines of 1000
 * octets, RFC 1939 POP3 commands of 255 (but SASL responses run longer),
 * IMAP has no limit but needs room for long UID sets. */
static const struct {
	const char *name;
	bool implicit_tls;
	unsigned idle_timeout;
	size_t max_line;
} listener_defaults[SVC_COUNT] = {
    [SVC_SMTP] = {"smtp", false, 300, 2048},
    [SVC_SUBMISSION] = {"submission", false, 300, 2048},
    [SVC_SUBMISSIONS] = {"submissions", true, 300, 2048},
    [SVC_LMTP] = {"lmtp", false, 300, 2048},
    [SVC_IMAP] = {"imap", false, 1800, 65536},
    [SVC_IMAPS] = {"imaps", true, 1800, 65536},
    [SVC_POP3] = {"pop3", false, 600, 1024},
    [SVC_POP3S] = {"pop3s", true, 600, 1024},
    [SVC_ADMIN] = {"admin", false, 60, 8192},
};

/* Sections that only hold keys of the main table. */
static const char *const plain_sections[] = {
    /* [routes] holds domain = host[:port] lines, not keys of the table. */
    "server", "tls",	"directory", "limits", "storage", "sasl",  "outbound", "dns",
    "dkim",   "routes", "backup",    "spf",    "milter",  "dmarc", "dnsbl",
};

struct profile_field {
	size_t offset;
	const char *value;
};

/* The openldap profile: what every unset profile field becomes. */
static const struct profile_field openldap_profile[] = {
    {DIRF(user_filter), "(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))"},
    {DIRF(recipient_filter), "(|(mail=%a)(mailLocalAddress=%a))"},
    /* `usermod -e 1` sets shadowExpire to 1: the shadowAccount way to
     * disable an account. */
    {DIRF(disabled_filter), "(shadowExpire=1)"},
    {DIRF(list_classes), "groupOfNames, groupOfUniqueNames, posixGroup, nisMailAlias, groupOfURLs"},
    {DIRF(id_attr), "entryUUID"},
    {DIRF(login_attr), "uid"},
    {DIRF(mail_attr), "mail"},
    {DIRF(alias_attr), "mailLocalAddress"},
    {DIRF(routing_attr), "mailRoutingAddress"},
    {DIRF(member_attr), "member, uniqueMember"},
    {DIRF(quota_attr), "mailQuota"},
    {DIRF(junk_attr), ""},
    {DIRF(quota_messages_attr), ""},
    {DIRF(sendas_attr), "owner"},
    {DIRF(proxy_attr), ""},
    {DIRF(disabled_flags_attr), ""},
    {DIRF(member_of_attr), ""},
    {DIRF(member_uid_attr), "memberUid"},
    {DIRF(member_address_attr), "rfc822MailMember"},
    {DIRF(member_url_attr), "memberURL"},
    {DIRF(member_query_attr), ""},
    {DIRF(group_filter),
     "(|(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
     "(|(member=%d)(uniqueMember=%d)))(&(objectClass=posixGroup)(memberUid=%u)))"},
    {DIRF(group_name_attr), "cn"},
    /* inetLocalMailRecipient carries mailLocalAddress (aliases, a list's
     * address); shadowAccount carries shadowExpire, which disabled_filter
     * looks at (dir_admin disables by setting it). */
    {CFG(admin_user_classes), "inetOrgPerson, inetLocalMailRecipient, shadowAccount"},
    {CFG(admin_list_classes), "groupOfNames, inetLocalMailRecipient"},
};

/* The ad profile (Active Directory). Users are person objects of type
 * SAM_NORMAL_USER_ACCOUNT (805306368: no computers, no trusts), found by
 * sAMAccountName or userPrincipalName. Disabled accounts are found by
 * Tern itself from userAccountControl (disabled_flags_attr), because
 * the bitwise matching rule exists only in AD (docs/admin-guide.md). */
static const struct profile_field ad_profile[] = {
    {DIRF(user_filter),
     "(&(sAMAccountType=805306368)(|(sAMAccountName=%u)(userPrincipalName=%u)))"},
    {DIRF(recipient_filter), "(|(mail=%a)(proxyAddresses=smtp:%a))"},
    {DIRF(disabled_filter), ""},
    {DIRF(list_classes), "group, posixGroup, nisMailAlias, groupOfURLs"},
    {DIRF(id_attr), "objectGUID"},
    {DIRF(login_attr), "sAMAccountName"},
    {DIRF(mail_attr), "mail"},
    {DIRF(alias_attr), ""},
    {DIRF(routing_attr), ""},
    {DIRF(member_attr), "member"},
    {DIRF(quota_attr), ""},
    {DIRF(junk_attr), ""},
    {DIRF(quota_messages_attr), ""},
    {DIRF(sendas_attr), "managedBy"},
    {DIRF(proxy_attr), "proxyAddresses"},
    {DIRF(disabled_flags_attr), "userAccountControl"},
    {DIRF(member_of_attr), "memberOf"},
    {DIRF(member_uid_attr), "memberUid"},
    {DIRF(member_address_attr), "rfc822MailMember"},
    {DIRF(member_url_attr), "memberURL"},
    {DIRF(member_query_attr), ""},
    /* Nested groups through LDAP_MATCHING_RULE_IN_CHAIN. */
    {DIRF(group_filter), "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=%d))"},
    {DIRF(group_name_attr), "cn"},
    {CFG(admin_user_classes), "user"},
    {CFG(admin_list_classes), "group"},
};

#define NKEYS ARRAY_SIZE(keys)
#define NLKEYS ARRAY_SIZE(listener_keys)

/* Where a section header was seen. */
struct section_seen {
	int line; /* 0: not in the file */
};

struct loader {
	struct config *cfg;
	const char *path;
	FILE *fp;

	/* the reader */
	char *line; /* getline's buffer (wiped: a value may be a secret) */
	size_t line_alloc;
	size_t line_len;
	size_t line_off; /* served to inih so far */
	int lineno;	 /* of the line being served */
	bool at_eof;

	/* the current section, as the reader last saw its header */
	char section[64];
	int section_line;

	int main_line[NKEYS]; /* where each key was set (0: not set) */
	int lst_line[SVC_COUNT][NLKEYS];
	int plain_line[ARRAY_SIZE(plain_sections)];
	int lst_section_line[SVC_COUNT];

	char why[256]; /* set_value's reason, when it has to be formatted */
	char *error;   /* the first error, malloc'd */
	int error_line;
};

static int milter_section(struct loader *ld, const char *name, int line);
static int key_index(const char *section, const char *key);

static void set_error(struct loader *ld, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Keeps the first error only: later ones are usually its echoes. */
static void
set_error(struct loader *ld, int line, const char *fmt, ...)
{
	if (ld->error != NULL)
		return;
	struct buf b;
	buf_init(&b, 4096);
	if (line > 0)
		(void)buf_printf(&b, "%s:%d: ", ld->path, line);
	else
		(void)buf_printf(&b, "%s: ", ld->path);
	va_list ap;
	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) < 0)
		(void)buf_append_str(&b, "(message too long)");
	va_end(ap);
	ld->error = xstrdup(buf_cstr(&b));
	ld->error_line = line;
	buf_free(&b);
}

const char *
config_service_name(enum service svc)
{
	if ((unsigned)svc >= SVC_COUNT)
		return "?";
	return listener_defaults[svc].name;
}

static int
service_by_name(const char *name)
{
	for (int s = 0; s < SVC_COUNT; s++) {
		if (strcmp(listener_defaults[s].name, name) == 0)
			return s;
	}
	return -1;
}

static int
plain_section_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(plain_sections); i++) {
		if (strcmp(plain_sections[i], name) == 0)
			return (int)i;
	}
	return -1;
}

/* ---- value parsers ---- */

/* Decimal digits into *n, overflow checked as they are read (STYLE rule
 * 13). Returns a pointer past the digits, or NULL. */
static const char *
parse_u64(const char *s, uint64_t *n_r)
{
	uint64_t n = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return NULL;
		n = n * 10 + d;
	}
	*n_r = n;
	return p;
}

static int
mul_check(uint64_t n, uint64_t mul, uint64_t *r)
{
	if (mul != 0 && n > UINT64_MAX / mul)
		return -1;
	*r = n * mul;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *bytes_r)
{
	uint64_t n, mul = 1;
	const char *p = parse_u64(s, &n);
	if (p == NULL)
		return -1;
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mul = 1ULL << 10;
		p++;
		break;
	case 'm':
	case 'M':
		mul = 1ULL << 20;
		p++;
		break;
	case 'g':
	case 'G':
		mul = 1ULL << 30;
		p++;
		break;
	case 't':
	case 'T':
		mul = 1ULL << 40;
		p++;
		break;
	default:
		return -1;
	}
	if (*p != '\0')
		return -1;
	return mul_check(n, mul, bytes_r);
}

/* A duration in milliseconds: N, Nms, Ns, Nm, Nh, Nd (plain N = seconds). */
static int
parse_duration_ms(const char *s, uint64_t *ms_r)
{
	uint64_t n, mul;
	const char *p = parse_u64(s, &n);
	if (p == NULL)
		return -1;
	if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
		mul = 1000;
	else if (strcmp(p, "ms") == 0)
		mul = 1;
	else if (strcmp(p, "m") == 0)
		mul = 60 * 1000;
	else if (strcmp(p, "h") == 0)
		mul = 3600 * 1000;
	else if (strcmp(p, "d") == 0)
		mul = 86400 * 1000;
	else
		return -1;
	return mul_check(n, mul, ms_r);
}

int
config_parse_duration(const char *s, uint64_t *seconds_r)
{
	uint64_t n, mul;
	const char *p = parse_u64(s, &n);
	if (p == NULL)
		return -1;
	if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
		mul = 1;
	else if (strcmp(p, "m") == 0)
		mul = 60;
	else if (strcmp(p, "h") == 0)
		mul = 3600;
	else if (strcmp(p, "d") == 0)
		mul = 86400;
	else
		return -1;
	return mul_check(n, mul, seconds_r);
}

int
config_parse_schedule(const char *s, struct config_schedule *r)
{
	uint64_t n;
	unsigned h, m;
	int used = 0;

	memset(r, 0, sizeof(*r));
	if (strcmp(s, "off") == 0 || strcmp(s, "none") == 0) {
		r->kind = CONFIG_SCHEDULE_OFF;
		return 0;
	}
	if (strcmp(s, "hourly") == 0) {
		r->kind = CONFIG_SCHEDULE_EVERY;
		r->every = 3600;
		return 0;
	}
	if (strcmp(s, "daily") == 0) {
		r->kind = CONFIG_SCHEDULE_DAILY;
		return 0;
	}
	if (strncmp(s, "daily ", 6) == 0) {
		const char *t = s + 6;
		while (*t == ' ')
			t++;
		if (strlen(t) != 5 || t[2] != ':' || sscanf(t, "%2u:%2u%n", &h, &m, &used) != 2 ||
		    used != 5 || h > 23 || m > 59)
			return -1;
		r->kind = CONFIG_SCHEDULE_DAILY;
		r->at = h * 3600 + m * 60;
		return 0;
	}
	if (strncmp(s, "every ", 6) == 0) {
		const char *t = s + 6;
		while (*t == ' ')
			t++;
		if (config_parse_duration(t, &n) < 0 || n == 0 || n > 366ull * 86400)
			return -1;
		r->kind = CONFIG_SCHEDULE_EVERY;
		r->every = (unsigned)n;
		return 0;
	}
	return -1;
}

time_t
config_schedule_next(const struct config_schedule *sch, time_t after)
{
	struct tm tm;
	time_t t;

	switch (sch->kind) {
	case CONFIG_SCHEDULE_EVERY:
		return after + (time_t)sch->every;
	case CONFIG_SCHEDULE_DAILY:
		localtime_r(&after, &tm);
		tm.tm_hour = (int)(sch->at / 3600);
		tm.tm_min = (int)(sch->at % 3600 / 60);
		tm.tm_sec = 0;
		tm.tm_isdst = -1;
		t = mktime(&tm);
		/* Today's time has passed: tomorrow's (mktime normalises the
		 * day, and DST changes move the wall time, not the date). */
		for (int i = 1; t <= after && i < 3; i++) {
			localtime_r(&after, &tm);
			tm.tm_mday += i;
			tm.tm_hour = (int)(sch->at / 3600);
			tm.tm_min = (int)(sch->at % 3600 / 60);
			tm.tm_sec = 0;
			tm.tm_isdst = -1;
			t = mktime(&tm);
		}
		return t;
	default:
		return 0;
	}
}

static int
parse_bool(const char *s, bool *b_r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -1;
}

/* Splits a comma-separated list into trimmed items; empty items are an
 * error. Returns the count, or -1. *items_r is a NULL-terminated array of
 * malloc'd strings. */
static int
split_list(const char *s, char ***items_r, size_t *n_r)
{
	char **items = NULL;
	size_t n = 0;
	const char *p = s;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0)
			goto bad;
		items = xrealloc(items, (n + 2) * sizeof(*items));
		items[n++] = xstrndup(p, len);
		items[n] = NULL;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*items_r = items;
	*n_r = n;
	return 0;
bad:
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	return -1;
}

static void
free_list(char **items, size_t n)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

/* A DNS name: letters, digits, '-', '.', no empty label. */
static bool
valid_hostname(const char *s)
{
	size_t label = 0;
	if (*s == '\0' || strlen(s) > 253)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* An LDAP attribute description (RFC 4512): keychar or an OID, options
 * after ';'. */
static bool
valid_attr(const char *s)
{
	if (*s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == ';'))
			return false;
	}
	return true;
}

/* Parentheses balance and never close more than they opened; escaped
 * values (\28, \29) are hex, so no paren hides in a value. */
static const char *
check_filter(const char *s)
{
	int depth = 0;
	size_t len = strlen(s);
	if (len == 0)
		return NULL;
	if (s[0] != '(' || s[len - 1] != ')')
		return "must be enclosed in parentheses";
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth < 0)
			return "unbalanced parentheses";
	}
	if (depth != 0)
		return "unbalanced parentheses";
	/* "(a=1)(b=2)" balances but is two filters, not one. */
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0 && p[1] != '\0')
			return "text after the closing parenthesis";
	}
	return NULL;
}

/* host:port or [v6]:port; host may be empty (every address). */
static const char *
check_listen_addr(const char *s)
{
	const char *colon;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close == s + 1)
			return "bad [IPv6]:port";
		for (const char *p = s + 1; p < close; p++) {
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			      (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.' || *p == '%'))
				return "bad IPv6 address";
		}
		if (close[1] != ':')
			return "missing :port";
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "missing :port";
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return "an IPv6 address needs brackets: [addr]:port";
		for (const char *p = s; p < colon; p++) {
			if (*p == ' ' || *p == '\t' || *p == '[' || *p == ']' || *p == '/')
				return "bad host";
		}
	}
	uint64_t port;
	const char *end = parse_u64(colon + 1, &port);
	if (end == NULL || *end != '\0')
		return "bad port";
	if (port > 65535)
		return "port out of range 0..65535";
	return NULL;
}

/* Reads the first line of path into a malloc'd string, CR/LF stripped.
 * Temporaries are wiped: the file holds a password. */
static int
read_secret_file(const char *path, char **secret_r, const char **why_r)
{
	FILE *fp = fopen(path, "re");
	if (fp == NULL) {
		*why_r = strerror(errno);
		return -1;
	}
	char *line = NULL;
	size_t alloc = 0;
	errno = 0;
	ssize_t n = getline(&line, &alloc, fp);
	int err = errno;
	bool failed = ferror(fp) != 0;
	fclose(fp);
	if (n < 0) {
		if (line != NULL)
			explicit_bzero(line, alloc);
		free(line);
		*why_r = failed ? strerror(err) : "empty file";
		return -1;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n == 0) {
		explicit_bzero(line, alloc);
		free(line);
		*why_r = "the first line is empty";
		return -1;
	}
	*secret_r = xstrndup(line, (size_t)n);
	explicit_bzero(line, alloc);
	free(line);
	return 0;
}

/* Stores value in the field a key describes; on failure returns a reason. */
static const char *
set_value(struct loader *ld, const struct key_def *k, void *base, const char *value)
{
	void *field = (char *)base + k->offset;
	uint64_t n;
	char *why = ld->why;

	switch (k->type) {
	case CT_STRING:
	case CT_READABLE: {
		char **sp = field;
		if (k->type == CT_READABLE && value[0] != '\0') {
			int fd = open(value, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				snprintf(why, sizeof(ld->why), "%s: %s", value, strerror(errno));
				return why;
			}
			close(fd);
		}
		free(*sp);
		*sp = xstrdup(value);
		return NULL;
	}
	case CT_HOSTNAME:
		if (!valid_hostname(value))
			return "not a host name";
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	case CT_URI: {
		char **items;
		size_t ni;
		/* libldap takes a space-separated list; commas are fine too. */
		char *copy = xstrdup(value);
		for (char *p = copy; *p != '\0'; p++) {
			if (*p == ' ' || *p == '\t')
				*p = ',';
		}
		/* collapse ", ," produced by "a, b" */
		struct buf b;
		buf_init(&b, SIZE_MAX);
		for (char *p = copy; *p != '\0'; p++) {
			if (*p == ',' && (b.len == 0 || b.data[b.len - 1] == ','))
				continue;
			(void)buf_putc(&b, *p);
		}
		free(copy);
		if (b.len > 0 && b.data[b.len - 1] == ',')
			b.data[--b.len] = '\0';
		int r = split_list(buf_cstr(&b), &items, &ni);
		buf_free(&b);
		if (r < 0)
			return "empty";
		for (size_t i = 0; i < ni; i++) {
			if (strncasecmp(items[i], "ldap://", 7) != 0 &&
			    strncasecmp(items[i], "ldaps://", 8) != 0 &&
			    strncasecmp(items[i], "ldapi://", 8) != 0) {
				snprintf(why, sizeof(ld->why),
					 "\"%.100s\" is not an ldap://, ldaps:// or ldapi:// URI",
					 items[i]);
				free_list(items, ni);
				return why;
			}
		}
		free_list(items, ni);
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	}
	case CT_PROFILE_STR:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	case CT_FILTER: {
		const char *bad = check_filter(value);
		if (bad != NULL)
			return bad;
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	}
	case CT_ATTR:
		if (value[0] != '\0' && !valid_attr(value))
			return "not an attribute name";
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	case CT_ATTR_LIST: {
		char **items;
		size_t ni;
		if (split_list(value, &items, &ni) < 0)
			return "empty item in the list";
		for (size_t i = 0; i < ni; i++) {
			if (!valid_attr(items[i])) {
				free_list(items, ni);
				return "not a list of names";
			}
		}
		free_list(items, ni);
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	}
	case CT_BOOL:
		if (parse_bool(value, field) < 0)
			return "not a boolean (yes/no, true/false, on/off, 1/0)";
		return NULL;
	case CT_UINT:
	case CT_SIZE:
	case CT_SIZE_T:
	case CT_SECONDS:
	case CT_MS: {
		uint64_t limit = UINT_MAX;
		int r;
		if (k->type == CT_UINT) {
			const char *end = parse_u64(value, &n);
			r = end != NULL && *end == '\0' ? 0 : -1;
			if (r < 0)
				return "not a number (or too large)";
		} else if (k->type == CT_SIZE || k->type == CT_SIZE_T) {
			if (config_parse_size(value, &n) < 0)
				return "not a size (bytes, or N with k, M, G, T) or too large";
			limit = k->type == CT_SIZE ? UINT64_MAX : SIZE_MAX;
		} else if (k->type == CT_SECONDS) {
			if (config_parse_duration(value, &n) < 0)
				return "not a duration (N, Ns, Nm, Nh, Nd) or too large";
		} else {
			if (parse_duration_ms(value, &n) < 0)
				return "not a duration (N, Nms, Ns, Nm, Nh, Nd) or too large";
		}
		if (k->max != 0 && k->max < limit)
			limit = k->max;
		if (n < k->min || n > limit) {
			snprintf(why, sizeof(ld->why), "out of range %llu..%llu",
				 (unsigned long long)k->min, (unsigned long long)limit);
			return why;
		}
		if (k->type == CT_SIZE)
			*(uint64_t *)field = n;
		else if (k->type == CT_SIZE_T)
			*(size_t *)field = (size_t)n;
		else
			*(unsigned *)field = (unsigned)n;
		return NULL;
	}
	case CT_DOMAINS: {
		char **items;
		size_t ni;
		if (split_list(value, &items, &ni) < 0)
			return "empty item in the list";
		for (size_t i = 0; i < ni; i++) {
			if (!valid_hostname(items[i])) {
				snprintf(why, sizeof(ld->why), "\"%.100s\" is not a domain",
					 items[i]);
				free_list(items, ni);
				return why;
			}
			for (char *p = items[i]; *p != '\0'; p++) {
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			}
		}
		free_list(ld->cfg->domains, ld->cfg->ndomains);
		ld->cfg->domains = items;
		ld->cfg->ndomains = ni;
		return NULL;
	}
	case CT_LOG_LEVEL: {
		enum log_level level;
		if (log_level_parse(value, &level) < 0)
			return "not a log level (debug, info, warn, error)";
		*(int *)field = (int)level;
		return NULL;
	}
	case CT_PROFILE:
		if (strcmp(value, "openldap") != 0 && strcmp(value, "ad") != 0) {
			snprintf(why, sizeof(ld->why), "unknown profile \"%.100s\" (openldap, ad)",
				 value);
			return why;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return NULL;
	case CT_SECRET_FILE: {
		char **sp = field;
		if (value[0] == '\0') {
			if (*sp == NULL)
				*sp = xstrdup("");
			return NULL;
		}
		char *secret;
		const char *reason;
		if (read_secret_file(value, &secret, &reason) < 0) {
			snprintf(why, sizeof(ld->why), "%s: %s", value, reason);
			return why;
		}
		if (*sp != NULL) {
			explicit_bzero(*sp, strlen(*sp));
			free(*sp);
		}
		*sp = secret;
		return NULL;
	}
	case CT_AUTH_FILE: {
		char **sp = field;
		if (value[0] == '\0') {
			if (*sp == NULL)
				*sp = xstrdup("");
			return NULL;
		}
		/* The password of the smarthost account: a file anyone else
		 * can read is refused rather than used. */
		struct stat st;
		if (stat(value, &st) < 0) {
			snprintf(why, sizeof(ld->why), "%s: %s", value, strerror(errno));
			return why;
		}
		if ((st.st_mode & 077) != 0) {
			snprintf(why, sizeof(ld->why),
				 "%s: readable by others (mode %03o); chmod 600 it", value,
				 (unsigned)(st.st_mode & 0777));
			return why;
		}
		char *secret;
		const char *reason;
		if (read_secret_file(value, &secret, &reason) < 0) {
			snprintf(why, sizeof(ld->why), "%s: %s", value, reason);
			return why;
		}
		char *colon = strchr(secret, ':');
		if (colon == NULL || colon == secret || colon[1] == '\0') {
			explicit_bzero(secret, strlen(secret));
			free(secret);
			snprintf(why, sizeof(ld->why), "%s: the first line must be user:password",
				 value);
			return why;
		}
		if (*sp != NULL) {
			explicit_bzero(*sp, strlen(*sp));
			free(*sp);
		}
		*sp = secret;
		return NULL;
	}
	case CT_SCHEDULE:
		if (config_parse_schedule(value, field) < 0)
			return "not a schedule (off, hourly, daily, daily HH:MM, every DURATION)";
		return NULL;
	case CT_TLS_POLICY: {
		static const char *const names[] = {"none", "may", "require", "verify"};
		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			if (strcmp(value, names[i]) == 0) {
				*(int *)field = (int)i;
				return NULL;
			}
		}
		return "not a TLS policy (none, may, require, verify)";
	}
	case CT_LISTEN: {
		struct listener_config *lc = base;
		char **items;
		size_t ni;
		if (split_list(value, &items, &ni) < 0)
			return "empty address in the list";
		for (size_t i = 0; i < ni; i++) {
			const char *bad = check_listen_addr(items[i]);
			if (bad != NULL) {
				snprintf(why, sizeof(ld->why), "\"%.100s\": %s", items[i], bad);
				free_list(items, ni);
				return why;
			}
		}
		free_list(lc->addrs, lc->naddrs);
		lc->addrs = items;
		lc->naddrs = ni;
		return NULL;
	}
	}
	return "internal error: unknown type";
}

/* ---- inih glue ---- */

/* fgets-style reader: serves the file to inih, counting lines and noting
 * section headers. Returns NULL (inih's end of file) to stop early. */
static char *
config_reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;

	if (ld->error != NULL || num < 2)
		return NULL;
	if (ld->line_off >= ld->line_len) {
		/* a new line */
		if (ld->at_eof)
			return NULL;
		errno = 0;
		ssize_t n = getline(&ld->line, &ld->line_alloc, ld->fp);
		if (n < 0) {
			if (ferror(ld->fp))
				set_error(ld, ld->lineno + 1, "read error: %s", strerror(errno));
			ld->at_eof = true;
			return NULL;
		}
		ld->lineno++;
		ld->line_len = (size_t)n;
		ld->line_off = 0;
		if (ld->line_len > CONFIG_LINE_MAX) {
			set_error(ld, ld->lineno, "line longer than %d characters",
				  CONFIG_LINE_MAX);
			return NULL;
		}
		if (memchr(ld->line, '\0', ld->line_len) != NULL) {
			set_error(ld, ld->lineno, "NUL byte in the file");
			return NULL;
		}
		/* A section header as inih sees one: '[' after blanks, the
		 * name up to ']'. */
		const char *p = ld->line;
		if (ld->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
			p += 3;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[') {
			const char *close = strchr(p, ']');
			if (close != NULL) {
				size_t len = (size_t)(close - p - 1);
				if (len >= sizeof(ld->section)) {
					set_error(ld, ld->lineno, "unknown section [%.*s]",
						  (int)len, p + 1);
					return NULL;
				}
				memcpy(ld->section, p + 1, len);
				ld->section[len] = '\0';
				ld->section_line = ld->lineno;
				int svc = service_by_name(ld->section);
				int plain = plain_section_by_name(ld->section);
				int *seen = svc >= 0	 ? &ld->lst_section_line[svc]
					    : plain >= 0 ? &ld->plain_line[plain]
							 : NULL;
				if (seen == NULL && strncmp(ld->section, "milter.", 7) == 0) {
					if (milter_section(ld, ld->section + 7, ld->lineno) < 0)
						return NULL;
				} else if (seen == NULL) {
					set_error(ld, ld->lineno, "unknown section [%s]",
						  ld->section);
					return NULL;
				}
				if (seen != NULL && *seen != 0) {
					set_error(ld, ld->lineno,
						  "[%s]: duplicate section (first at line %d)",
						  ld->section, *seen);
					return NULL;
				}
				if (seen != NULL)
					*seen = ld->lineno;
			}
		}
	}
	size_t room = (size_t)num - 1;
	size_t n = ld->line_len - ld->line_off;
	if (n > room)
		n = room; /* inih asks again for the rest (ini_allow_realloc) */
	memcpy(str, ld->line + ld->line_off, n);
	str[n] = '\0';
	ld->line_off += n;
	return str;
}

/* One [routes] line: "domain = host[:port]" (the port defaults to
 * [outbound] port, filled in by check_config). */
/* ---- [milter.NAME] sections ---- */

static struct config_milter *
milter_by_name(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nmilters; i++)
		if (strcmp(cfg->milters[i].name, name) == 0)
			return &cfg->milters[i];
	return NULL;
}

/* A [milter.NAME] header: a new milter with its defaults. */
static int
milter_section(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	struct config_milter *m = milter_by_name(cfg, name);

	if (name[0] == '\0' || strlen(name) > 64 || strpbrk(name, " \t,:") != NULL) {
		set_error(ld, line, "[milter.%s]: not a milter name (letters, digits, - _ .)",
			  name);
		return -1;
	}
	if (m != NULL) {
		set_error(ld, line, "[milter.%s]: duplicate section (first at line %d)", name,
			  m->line);
		return -1;
	}
	cfg->milters = xrealloc(cfg->milters, (cfg->nmilters + 1) * sizeof(*cfg->milters));
	m = &cfg->milters[cfg->nmilters++];
	memset(m, 0, sizeof(*m));
	m->name = xstrdup(name);
	m->socket = xstrdup("");
	m->connect_timeout = 10;
	m->command_timeout = 30;
	m->default_tempfail = true; /* as Postfix's milter_default_action */
	m->line = line;
	return 0;
}

/* "inet:host:port" (host an IP address or localhost; [v6] allowed) or
 * "unix:/absolute/path". */
static bool
milter_socket_ok(const char *s)
{
	if (strncmp(s, "unix:", 5) == 0)
		return s[5] == '/' && strlen(s + 5) < 108;
	if (strncmp(s, "inet:", 5) != 0)
		return false;
	char *host = NULL;
	unsigned port = 0;
	if (config_parse_hostport(s + 5, 0, &host, &port) < 0 || port == 0) {
		free(host);
		return false;
	}
	struct in6_addr a6;
	bool ok = strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &a6) == 1 ||
		  inet_pton(AF_INET6, host, &a6) == 1;
	free(host);
	return ok;
}

static int
milter_key(struct loader *ld, int line, const char *section, const char *name, const char *value)
{
	struct config_milter *m = milter_by_name(ld->cfg, section);
	uint64_t secs;

	if (m == NULL) /* cannot happen: the reader saw the header */
		return 0;
	if (strcmp(name, "socket") == 0) {
		if (!milter_socket_ok(value)) {
			set_error(ld, line,
				  "[milter.%s] socket: \"%.100s\" is not inet:ADDRESS:PORT or "
				  "unix:/PATH",
				  section, value);
			return 0;
		}
		free(m->socket);
		m->socket = xstrdup(value);
	} else if (strcmp(name, "connect_timeout") == 0 || strcmp(name, "command_timeout") == 0) {
		if (config_parse_duration(value, &secs) < 0 || secs == 0 || secs > 3600) {
			set_error(ld, line, "[milter.%s] %s: not a duration from 1s to 1h", section,
				  name);
			return 0;
		}
		if (name[1] == 'o' && name[2] == 'n')
			m->connect_timeout = (unsigned)secs;
		else
			m->command_timeout = (unsigned)secs;
	} else if (strcmp(name, "default_action") == 0) {
		if (strcmp(value, "accept") != 0 && strcmp(value, "tempfail") != 0) {
			set_error(ld, line,
				  "[milter.%s] default_action: must be accept or tempfail",
				  section);
			return 0;
		}
		m->default_tempfail = strcmp(value, "tempfail") == 0;
	} else {
		set_error(ld, line, "[milter.%s] %s: unknown key", section, name);
		return 0;
	}
	return 1;
}

/* [dmarc] report_from: one plain address (it goes into From: and the
 * envelope of every report). */
static int
check_dmarc(struct loader *ld)
{
	const char *a = ld->cfg->dmarc_report_from, *at = strrchr(a, '@');
	if (a[0] == '\0')
		return 0;
	for (const char *p = a; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || strchr("<>,;\"()[]\\", *p) != NULL) {
			at = NULL;
			break;
		}
	}
	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '.') == NULL) {
		set_error(ld, ld->main_line[key_index("dmarc", "report_from")],
			  "[dmarc] report_from: not a plain address (local@domain)");
		return -1;
	}
	return 0;
}

/* [milter] milters names every [milter.NAME] in chain order; each has a
 * socket. */
static int
check_milter(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	int ml = ld->main_line[key_index("milter", "milters")];
	char **names = NULL;
	size_t n = 0;

	if (strcmp(cfg->milter_apply_to, "inbound") != 0 &&
	    strcmp(cfg->milter_apply_to, "all") != 0) {
		set_error(ld, ld->main_line[key_index("milter", "apply_to")],
			  "[milter] apply_to: must be inbound or all");
		return -1;
	}
	if (cfg->milter_milters[0] != '\0' && split_list(cfg->milter_milters, &names, &n) < 0) {
		set_error(ld, ml, "[milter] milters: not a list of names");
		return -1;
	}
	struct config_milter *ordered = n > 0 ? xcalloc(n, sizeof(*ordered)) : NULL;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct config_milter *m = milter_by_name(cfg, names[i]);
		for (size_t k = 0; k < i && rc == 0; k++)
			if (strcmp(names[k], names[i]) == 0) {
				set_error(ld, ml, "[milter] milters: %s is listed twice", names[i]);
				rc = -1;
			}
		if (rc == 0 && m == NULL) {
			set_error(ld, ml, "[milter] milters: %s has no [milter.%s] section",
				  names[i], names[i]);
			rc = -1;
		} else if (rc == 0 && m->socket[0] == '\0') {
			set_error(ld, m->line, "[milter.%s] socket is required", m->name);
			rc = -1;
		} else if (rc == 0) {
			ordered[i] = *m;
		}
	}
	for (size_t i = 0; i < cfg->nmilters && rc == 0; i++) {
		bool listed = false;
		for (size_t k = 0; k < n; k++)
			listed = listed || strcmp(names[k], cfg->milters[i].name) == 0;
		if (!listed) {
			set_error(ld, cfg->milters[i].line,
				  "[milter.%s]: not listed in [milter] milters",
				  cfg->milters[i].name);
			rc = -1;
		}
	}
	free_list(names, n);
	if (rc < 0) {
		free(ordered);
		return -1;
	}
	/* The strings move to the ordered copy; every section is listed. */
	free(cfg->milters);
	cfg->milters = ordered;
	cfg->nmilters = n;
	return 0;
}

static int
route_line(struct loader *ld, int line, const char *name, const char *value)
{
	struct config *cfg = ld->cfg;

	if (!valid_hostname(name)) {
		set_error(ld, line, "[routes] %s: not a domain", name);
		return 0;
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		if (strcasecmp(cfg->routes[i].domain, name) == 0) {
			set_error(ld, line, "[routes] %s: duplicate route (first at line %d)", name,
				  cfg->routes[i].line);
			return 0;
		}
	}
	char *host;
	unsigned port;
	if (config_parse_hostport(value, 0, &host, &port) < 0) {
		set_error(ld, line, "[routes] %s: \"%.100s\" is not host[:port]", name, value);
		return 0;
	}
	cfg->routes = xrealloc(cfg->routes, (cfg->nroutes + 1) * sizeof(*cfg->routes));
	struct config_route *r = &cfg->routes[cfg->nroutes++];
	r->domain = xstrdup(name);
	for (char *p = r->domain; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	r->host = host;
	r->port = port;
	r->line = line;
	return 1;
}

static int
config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	int line = ld->lineno;

	if (ld->error != NULL)
		return 0;
	if (section[0] == '\0') {
		set_error(ld, line, "%s: key outside any section", name);
		return 0;
	}
	if (strcmp(section, "routes") == 0)
		return route_line(ld, line, name, value);
	if (strncmp(section, "milter.", 7) == 0)
		return milter_key(ld, line, section + 7, name, value);
	int svc = service_by_name(section);
	const struct key_def *k = NULL;
	int *seen = NULL;
	void *base = ld->cfg;
	if (svc >= 0) {
		for (size_t i = 0; i < NLKEYS; i++) {
			if (strcmp(listener_keys[i].key, name) == 0) {
				k = &listener_keys[i];
				seen = &ld->lst_line[svc][i];
				base = &ld->cfg->listeners[svc];
				break;
			}
		}
	}
	if (k == NULL) {
		for (size_t i = 0; i < NKEYS; i++) {
			if (strcmp(keys[i].section, section) == 0 &&
			    strcmp(keys[i].key, name) == 0) {
				k = &keys[i];
				seen = &ld->main_line[i];
				break;
			}
		}
	}
	if (k == NULL) {
		set_error(ld, line, "[%s] %s: unknown key", section, name);
		return 0;
	}
	if (*seen != 0) {
		set_error(ld, line, "[%s] %s: duplicate key (first at line %d)", section, name,
			  *seen);
		return 0;
	}
	*seen = line;
	const char *why = set_value(ld, k, base, value);
	if (why != NULL) {
		set_error(ld, line, "[%s] %s: %s", section, name, why);
		return 0;
	}
	return 1;
}

/* ---- load, check, free ---- */

static void
apply_defaults(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].def == NULL)
			continue;
		const char *why = set_value(ld, &keys[i], cfg, keys[i].def);
		if (why != NULL)
			panic("config: default of [%s] %s: %s", keys[i].section, keys[i].key, why);
	}
	for (int s = 0; s < SVC_COUNT; s++) {
		struct listener_config *lc = &cfg->listeners[s];
		for (size_t i = 0; i < NLKEYS; i++) {
			if (listener_keys[i].def == NULL)
				continue;
			const char *why =
			    set_value(ld, &listener_keys[i], lc, listener_keys[i].def);
			if (why != NULL)
				panic("config: default of %s: %s", listener_keys[i].key, why);
		}
		lc->implicit_tls = listener_defaults[s].implicit_tls;
		lc->idle_timeout = listener_defaults[s].idle_timeout;
		lc->max_line = listener_defaults[s].max_line;
	}
}

static int
key_index(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
			return (int)i;
	}
	panic("config: no key [%s] %s", section, key);
}

/* [outbound], [routes] and [dns]: the string keys parsed into their
 * working forms. */
static int
check_outbound(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	uint64_t secs;

	int ril = ld->main_line[key_index("outbound", "retry_initial")];
	if (config_parse_duration(cfg->outbound_retry_initial, &secs) < 0 || secs == 0 ||
	    secs > UINT_MAX) {
		set_error(ld, ril,
			  "[outbound] retry_initial: not a duration (N, Ns, Nm, Nh, Nd) "
			  "of at least 1s");
		return -1;
	}
	cfg->outbound_retry_initial_s = (unsigned)secs;
	if (cfg->outbound_retry_max < cfg->outbound_retry_initial_s) {
		set_error(ld, ld->main_line[key_index("outbound", "retry_max")],
			  "[outbound] retry_max: shorter than retry_initial");
		return -1;
	}
	int rhl = ld->main_line[key_index("outbound", "relayhost")];
	if (config_parse_hostport(cfg->outbound_relayhost, cfg->outbound_port,
				  &cfg->outbound_relay_host, &cfg->outbound_relay_port) < 0) {
		set_error(ld, rhl, "[outbound] relayhost: \"%.100s\" is not host[:port]",
			  cfg->outbound_relayhost);
		return -1;
	}
	if (cfg->outbound_relayhost_auth[0] != '\0' && cfg->outbound_relay_host[0] == '\0') {
		set_error(ld, ld->main_line[key_index("outbound", "relayhost_auth_file")],
			  "[outbound] relayhost_auth_file: set, but relayhost is not");
		return -1;
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		if (cfg->routes[i].port == 0)
			cfg->routes[i].port = cfg->outbound_port;
	}
	int rsl = ld->main_line[key_index("dns", "resolver")];
	if (config_parse_hostport(cfg->dns_resolver, 53, &cfg->dns_resolver_host,
				  &cfg->dns_resolver_port) < 0) {
		set_error(ld, rsl, "[dns] resolver: \"%.100s\" is not address[:port]",
			  cfg->dns_resolver);
		return -1;
	}
	/* libunbound forwards to an address, never to a name (which it
	 * would have to resolve first). */
	unsigned char addr[16];
	if (cfg->dns_resolver_host[0] != '\0' &&
	    inet_pton(AF_INET, cfg->dns_resolver_host, addr) != 1 &&
	    inet_pton(AF_INET6, cfg->dns_resolver_host, addr) != 1) {
		set_error(ld, rsl, "[dns] resolver: \"%.100s\" is not an IP address",
			  cfg->dns_resolver_host);
		return -1;
	}
	return 0;
}

/* [admin]: admin_group is required once the section is there (who may
 * use the admin API must never default to "anyone"); the bases default
 * to the usual OUs under [directory] base. */
static int
check_admin(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	int section = ld->lst_section_line[SVC_ADMIN];

	if (section != 0 && cfg->admin_group[0] == '\0') {
		set_error(ld, section,
			  "[admin] admin_group is required (the DN of the admins' group)");
		return -1;
	}
	if (cfg->admin_writer_password[0] != '\0' && cfg->admin_writer_dn[0] == '\0') {
		set_error(ld, ld->main_line[key_index("admin", "writer_password_file")],
			  "[admin] writer_password_file: set, but writer_bind_dn is not");
		return -1;
	}
	/* The verifier would replace the password hash that simple binds
	 * (PLAIN, the admin API) check. */
	if (cfg->admin_write_scram && (cfg->dir.scram_attr[0] == '\0' ||
				       strcasecmp(cfg->dir.scram_attr, "userPassword") == 0)) {
		set_error(ld, ld->main_line[key_index("admin", "write_scram")],
			  "[admin] write_scram needs [directory] scram_attribute set to an "
			  "attribute other than userPassword (authPassword)");
		return -1;
	}
	if (cfg->admin_user_base[0] == '\0') {
		free(cfg->admin_user_base);
		if (asprintf(&cfg->admin_user_base, "ou=people,%s", cfg->dir.base) < 0)
			fatal("out of memory");
	}
	if (cfg->admin_group_base[0] == '\0') {
		free(cfg->admin_group_base);
		if (asprintf(&cfg->admin_group_base, "ou=groups,%s", cfg->dir.base) < 0)
			fatal("out of memory");
	}
	return 0;
}

/* Checks that span keys, after the whole file is read. */
static void
check_config(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < NKEYS && ld->error == NULL; i++) {
		if ((keys[i].flags & F_REQUIRED) && ld->main_line[i] == 0)
			set_error(ld, 0, "[%s] %s is required", keys[i].section, keys[i].key);
	}
	if (ld->error != NULL)
		return;

	/* Profile fields left unset come from the profile. */
	bool ad = strcmp(cfg->dir.profile, "ad") == 0;
	const struct profile_field *prof = ad ? ad_profile : openldap_profile;
	size_t nprof = ad ? ARRAY_SIZE(ad_profile) : ARRAY_SIZE(openldap_profile);
	for (size_t i = 0; i < nprof; i++) {
		char **f = (char **)((char *)cfg + prof[i].offset);
		if (*f == NULL)
			*f = xstrdup(prof[i].value);
	}
	if (ld->main_line[key_index("directory", "quota_unit")] == 0)
		cfg->dir.quota_unit = 1;

	int ufl = ld->main_line[key_index("directory", "user_filter")];
	if (strstr(cfg->dir.user_filter, "%u") == NULL) {
		set_error(ld, ufl, "[directory] user_filter: must contain %%u (the login)");
		return;
	}
	int rfl = ld->main_line[key_index("directory", "recipient_filter")];
	if (strstr(cfg->dir.recipient_filter, "%a") == NULL) {
		set_error(ld, rfl, "[directory] recipient_filter: must contain %%a (the address)");
		return;
	}
	if (strcmp(cfg->dir.list_post, "anyone") != 0 &&
	    strcmp(cfg->dir.list_post, "members") != 0 &&
	    strcmp(cfg->dir.list_post, "owners") != 0) {
		set_error(ld, ld->main_line[key_index("directory", "list_post")],
			  "[directory] list_post: must be anyone, members or owners");
		return;
	}
	if (strcmp(cfg->dir.ad_matching_rules, "auto") != 0 &&
	    strcmp(cfg->dir.ad_matching_rules, "yes") != 0 &&
	    strcmp(cfg->dir.ad_matching_rules, "no") != 0) {
		set_error(ld, ld->main_line[key_index("directory", "ad_matching_rules")],
			  "[directory] ad_matching_rules: must be auto, yes or no");
		return;
	}
	if (strcmp(cfg->dir.sync, "auto") != 0 && strcmp(cfg->dir.sync, "yes") != 0 &&
	    strcmp(cfg->dir.sync, "no") != 0) {
		set_error(ld, ld->main_line[key_index("directory", "sync")],
			  "[directory] sync: must be auto, yes or no");
		return;
	}
	if (cfg->dir.id_attr[0] == '\0') {
		set_error(ld, ld->main_line[key_index("directory", "id_attr")],
			  "[directory] id_attr: must not be empty (the stable id of an entry)");
		return;
	}
	bool dcert = cfg->dir.tls_cert[0] != '\0', dkey = cfg->dir.tls_key[0] != '\0';
	if (dcert != dkey) {
		set_error(ld, ld->main_line[key_index("directory", dcert ? "tls_cert" : "tls_key")],
			  "[directory] %s: required when %s is set", dcert ? "tls_key" : "tls_cert",
			  dcert ? "tls_cert" : "tls_key");
		return;
	}
	int pwl = ld->main_line[key_index("directory", "bind_password_file")];
	if (cfg->dir.bind_password[0] != '\0' && cfg->dir.bind_dn[0] == '\0') {
		set_error(ld, pwl, "[directory] bind_password_file: set, but bind_dn is not");
		return;
	}

	if (check_admin(ld) < 0)
		return;

	int certl = ld->main_line[key_index("tls", "cert")];
	int keyl = ld->main_line[key_index("tls", "key")];
	bool have_cert = cfg->tls_cert[0] != '\0', have_key = cfg->tls_key[0] != '\0';
	if (have_cert != have_key) {
		if (have_cert)
			set_error(ld, certl, "[tls] key: required when cert is set");
		else
			set_error(ld, keyl, "[tls] cert: required when key is set");
		return;
	}

	if (check_outbound(ld) < 0)
		return;
	if (check_milter(ld) < 0)
		return;
	if (check_dmarc(ld) < 0)
		return;

	for (int s = 0; s < SVC_COUNT; s++) {
		struct listener_config *lc = &cfg->listeners[s];
		lc->line = ld->lst_section_line[s];
		lc->present = lc->line != 0;
		if (!lc->present)
			continue;
		if (lc->naddrs == 0) {
			set_error(ld, lc->line, "[%s] listen is required",
				  listener_defaults[s].name);
			return;
		}
		if (lc->implicit_tls && !have_cert) {
			set_error(ld, lc->line, "[%s]: implicit TLS needs [tls] cert and key",
				  listener_defaults[s].name);
			return;
		}
	}
}

static int (*load_hook)(struct config *cfg, char **error_r);
static void (*unload_hook)(struct config *cfg);

void
config_set_hooks(int (*load)(struct config *cfg, char **error_r),
		 void (*unload)(struct config *cfg))
{
	load_hook = load;
	unload_hook = unload;
}

struct config *
config_load(const char *path, char **error_r)
{
	*error_r = NULL;
	struct loader *ld = xcalloc(1, sizeof(*ld));
	ld->path = path;
	ld->cfg = xcalloc(1, sizeof(*ld->cfg));
	ld->cfg->path = xstrdup(path);

	ld->fp = fopen(path, "re");
	if (ld->fp == NULL) {
		set_error(ld, 0, "%s", strerror(errno));
		goto fail;
	}
	apply_defaults(ld);

	/* inih's switches are process-wide; the loader is their only user.
	 * A heap line buffer that grows lets long filters through (our
	 * reader bounds the line); continuation lines would read as a
	 * duplicate key, so they are plain syntax errors instead. */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_allow_multiline = false;
	ini_stop_on_first_error = true;
	ini_allow_no_value = false;

	int r = ini_parse_stream(config_reader, ld, config_handler, ld);
	if (r == -2)
		set_error(ld, 0, "out of memory");
	else if (r > 0 && (ld->error == NULL || ld->error_line > r)) {
		/* inih found a line that is no section header, no key = value
		 * and no comment, before any error of ours. */
		free(ld->error);
		ld->error = NULL;
		set_error(ld, r, "syntax error (expected [section] or key = value)");
	}
	if (ld->error == NULL)
		check_config(ld);
	if (ld->error == NULL && load_hook != NULL) {
		char *herr = NULL;
		if (load_hook(ld->cfg, &herr) < 0) {
			set_error(ld, 0, "%s", herr != NULL ? herr : "load failed");
			free(herr);
		}
	}
	if (ld->error != NULL)
		goto fail;

	fclose(ld->fp);
	if (ld->line != NULL)
		explicit_bzero(ld->line, ld->line_alloc);
	free(ld->line);
	struct config *cfg = ld->cfg;
	free(ld);
	return cfg;
fail:
	if (ld->fp != NULL)
		fclose(ld->fp);
	if (ld->line != NULL)
		explicit_bzero(ld->line, ld->line_alloc);
	free(ld->line);
	config_free(ld->cfg);
	*error_r = ld->error;
	free(ld);
	return NULL;
}

static void
free_str(char **p)
{
	free(*p);
	*p = NULL;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	if (unload_hook != NULL)
		unload_hook(cfg);
	for (size_t i = 0; i < NKEYS; i++) {
		void *f = (char *)cfg + keys[i].offset;
		switch (keys[i].type) {
		case CT_STRING:
		case CT_PROFILE_STR:
		case CT_FILTER:
		case CT_ATTR:
		case CT_ATTR_LIST:
		case CT_PROFILE:
		case CT_URI:
		case CT_HOSTNAME:
		case CT_READABLE:
			free_str(f);
			break;
		case CT_SECRET_FILE:
		case CT_AUTH_FILE: {
			char **sp = f;
			if (*sp != NULL)
				explicit_bzero(*sp, strlen(*sp));
			free_str(sp);
			break;
		}
		case CT_DOMAINS:
			free_list(cfg->domains, cfg->ndomains);
			cfg->domains = NULL;
			break;
		default:
			break;
		}
	}
	for (int s = 0; s < SVC_COUNT; s++)
		free_list(cfg->listeners[s].addrs, cfg->listeners[s].naddrs);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].domain);
		free(cfg->routes[i].host);
	}
	free(cfg->routes);
	for (size_t i = 0; i < cfg->nmilters; i++) {
		free(cfg->milters[i].name);
		free(cfg->milters[i].socket);
	}
	free(cfg->milters);
	free(cfg->outbound_relay_host);
	free(cfg->dns_resolver_host);
	free(cfg->path);
	free(cfg);
}

int
config_parse_hostport(const char *s, unsigned default_port, char **host_r, unsigned *port_r)
{
	const char *host = s, *host_end, *rest;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close == s + 1)
			return -1;
		host = s + 1;
		host_end = close;
		rest = close + 1;
	} else {
		const char *colon = strchr(s, ':');
		host_end = colon != NULL ? colon : s + strlen(s);
		rest = host_end;
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return -1; /* a bare IPv6 address: brackets required */
	}
	for (const char *p = host; p < host_end; p++) {
		if (*p == ' ' || *p == '\t' || *p == '/' || *p == '[' || *p == ']' || *p == '@')
			return -1;
	}
	unsigned port = default_port;
	if (*rest == ':') {
		uint64_t n;
		const char *end = parse_u64(rest + 1, &n);
		if (end == NULL || *end != '\0' || n == 0 || n > 65535)
			return -1;
		port = (unsigned)n;
	} else if (*rest != '\0') {
		return -1;
	}
	if (host_end == host && *rest != '\0')
		return -1; /* ":25" without a host */
	*host_r = xstrndup(host, (size_t)(host_end - host));
	*port_r = port;
	return 0;
}

const struct config_route *
config_route_for(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; cfg != NULL && i < cfg->nroutes; i++) {
		if (strcasecmp(cfg->routes[i].domain, domain) == 0)
			return &cfg->routes[i];
	}
	return NULL;
}

bool
config_is_local_domain(const struct config *cfg, const char *domain)
{
	if (cfg == NULL || domain == NULL)
		return false;
	for (size_t i = 0; i < cfg->ndomains; i++) {
		if (strcasecmp(cfg->domains[i], domain) == 0)
			return true;
	}
	return false;
}

/* ---- the current config ---- */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current; /* holds one reference; guarded by current_lock */

struct config *
config_acquire(void)
{
	pthread_mutex_lock(&current_lock);
	struct config *cfg = current;
	if (cfg != NULL)
		cfg->refs++;
	pthread_mutex_unlock(&current_lock);
	return cfg;
}

void
config_release(struct config *cfg)
{
	if (cfg == NULL)
		return;
	pthread_mutex_lock(&current_lock);
	if (cfg->refs == 0)
		panic("config_release: config %p has no reference", (void *)cfg);
	bool last = --cfg->refs == 0;
	pthread_mutex_unlock(&current_lock);
	if (last)
		config_free(cfg);
}

void
config_set_current(struct config *cfg)
{
	pthread_mutex_lock(&current_lock);
	struct config *old = current;
	if (cfg != NULL)
		cfg->refs = 1; /* the reference "current" holds */
	current = cfg;
	pthread_mutex_unlock(&current_lock);
	/* Sessions that still hold the old one keep it alive. */
	config_release(old);
}
