/*
 * test_config.c - the config loader (core/config.c): a good file and its
 * values, defaults and profile fields, every class of error naming the
 * file and the line, size and duration parsing with overflow, the shipped
 * example file, and the refcounted current config.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"

static char tmpdir[256];

/* Replaces every "@DIR@" in text with the test's temporary directory. */
static char *
expand(const char *text)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (const char *p = text; *p != '\0';) {
		if (strncmp(p, "@DIR@", 5) == 0) {
			assert_int_equal(buf_append_str(&b, tmpdir), 0);
			p += 5;
		} else {
			assert_int_equal(buf_putc(&b, *p++), 0);
		}
	}
	char *s = strdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static char *
path_in_tmp(const char *name)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

/* Writes text (with @DIR@ expanded) to a file and loads it. */
static struct config *
load_text(const char *text, char **path_r, char **error_r)
{
	char *path = path_in_tmp("tern.conf");
	char *body = expand(text);
	write_file(path, body);
	free(body);
	struct config *cfg = config_load(path, error_r);
	*path_r = path;
	return cfg;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	char *p = path_in_tmp("secret");
	write_file(p, "s3cret pass\r\nsecond line\n");
	free(p);
	p = path_in_tmp("cert.pem");
	write_file(p, "-----BEGIN CERTIFICATE-----\n");
	free(p);
	p = path_in_tmp("key.pem");
	write_file(p, "-----BEGIN PRIVATE KEY-----\n");
	free(p);
	p = path_in_tmp("empty");
	write_file(p, "");
	free(p);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char *cmd;
	if (asprintf(&cmd, "rm -rf '%s'", tmpdir) > 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
		free(cmd);
	}
	return 0;
}

/* 7 lines: a case's own lines start at line 8. */
#define BASE                                                                                       \
	"[server]\n"                                                                               \
	"hostname = mail.example.org\n"                                                            \
	"domains = Example.ORG , example.net ; local\n"                                            \
	"state_dir = @DIR@/state\n"                                                                \
	"[directory]\n"                                                                            \
	"uri = ldap://127.0.0.1:389\n"                                                             \
	"base = dc=example,dc=org\n"

static void
test_minimal_defaults(void **state)
{
	(void)state;
	char *path, *err = NULL;
	struct config *cfg = load_text(BASE, &path, &err);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, path);
	assert_string_equal(cfg->hostname, "mail.example.org");
	assert_int_equal(cfg->ndomains, 2);
	assert_string_equal(cfg->domains[0], "example.org");
	assert_string_equal(cfg->domains[1], "example.net");
	assert_string_equal(cfg->user, "");
	assert_int_equal(cfg->workers, 0);
	assert_int_equal(cfg->log_level, LOGL_INFO);
	assert_string_equal(cfg->tls_cert, "");
	assert_string_equal(cfg->tls_key, "");

	const struct directory_config *d = &cfg->dir;
	assert_string_equal(d->bind_dn, "");
	assert_string_equal(d->bind_password, "");
	assert_string_equal(d->profile, "openldap");
	assert_string_equal(d->user_filter, "(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))");
	assert_string_equal(d->recipient_filter, "(|(mail=%a)(mailLocalAddress=%a))");
	assert_string_equal(d->disabled_filter, "(shadowExpire=1)");
	assert_string_equal(
	    d->list_classes,
	    "groupOfNames, groupOfUniqueNames, posixGroup, nisMailAlias, groupOfURLs");
	assert_string_equal(d->id_attr, "entryUUID");
	assert_string_equal(d->login_attr, "uid");
	assert_string_equal(d->mail_attr, "mail");
	assert_string_equal(d->alias_attr, "mailLocalAddress");
	assert_string_equal(d->routing_attr, "mailRoutingAddress");
	assert_string_equal(d->member_attr, "member, uniqueMember");
	assert_string_equal(d->quota_attr, "mailQuota");
	assert_int_equal(d->quota_unit, 1);
	assert_int_equal(d->cache_ttl, 60);
	assert_int_equal(d->negative_ttl, 10);
	assert_int_equal(d->timeout, 5);
	assert_int_equal(d->lookup_connections, 2);
	assert_int_equal(d->auth_connections, 4);
	assert_int_equal(d->max_list_members, 1000);
	assert_int_equal(d->max_list_depth, 8);
	assert_string_equal(d->proxy_attr, "");
	assert_string_equal(d->disabled_flags_attr, "");
	assert_int_equal(d->disabled_flags_mask, 2);
	assert_string_equal(d->member_of_attr, "");
	assert_string_equal(d->ad_matching_rules, "auto");
	assert_string_equal(d->member_uid_attr, "memberUid");
	assert_string_equal(d->member_address_attr, "rfc822MailMember");
	assert_string_equal(d->member_url_attr, "memberURL");
	assert_string_equal(d->member_query_attr, "");

	assert_int_equal(cfg->message_size_max, 25ULL << 20);
	assert_int_equal(cfg->max_recipients, 100);
	assert_int_equal(cfg->auth_fail_delay_ms, 2000);
	assert_int_equal(cfg->max_auth_failures, 3);
	assert_int_equal(cfg->map_size, 1ULL << 40);
	assert_true(cfg->group_commit);
	assert_int_equal(cfg->batch_max_ops, 64);
	assert_int_equal(cfg->batch_max_bytes, 8ULL << 20);
	assert_int_equal(cfg->batch_max_ms, 0);
	assert_int_equal(cfg->zstd_level, 3);
	assert_string_equal(cfg->sasl_mechanisms, "");
	assert_string_equal(cfg->outbound_relayhost, "");
	assert_string_equal(cfg->outbound_retry_initial, "5m");
	assert_string_equal(cfg->admin_group, "");
	assert_string_equal(cfg->admin_writer_dn, "");
	assert_string_equal(cfg->admin_writer_password, "");
	assert_string_equal(cfg->admin_user_base, "ou=people,dc=example,dc=org");
	assert_string_equal(cfg->admin_group_base, "ou=groups,dc=example,dc=org");
	assert_string_equal(cfg->admin_user_classes,
			    "inetOrgPerson, inetLocalMailRecipient, shadowAccount");
	assert_string_equal(cfg->admin_list_classes, "groupOfNames, inetLocalMailRecipient");

	for (int s = 0; s < SVC_COUNT; s++) {
		assert_false(cfg->listeners[s].present);
		assert_int_equal(cfg->listeners[s].naddrs, 0);
	}
	assert_true(config_is_local_domain(cfg, "example.org"));
	assert_true(config_is_local_domain(cfg, "EXAMPLE.net"));
	assert_false(config_is_local_domain(cfg, "example.com"));
	assert_false(config_is_local_domain(cfg, "org"));
	config_free(cfg);
	free(path);
}

/* The ad profile fills every field from its own table, and each field
 * can still be overridden on its own. */
static void
test_ad_profile(void **state)
{
	(void)state;
	char *path, *err = NULL;
	struct config *cfg = load_text(BASE "profile = ad\n", &path, &err);
	if (cfg == NULL)
		fail_msg("%s", err);
	const struct directory_config *d = &cfg->dir;
	assert_string_equal(d->profile, "ad");
	assert_string_equal(
	    d->user_filter,
	    "(&(sAMAccountType=805306368)(|(sAMAccountName=%u)(userPrincipalName=%u)))");
	assert_string_equal(d->recipient_filter, "(|(mail=%a)(proxyAddresses=smtp:%a))");
	assert_string_equal(d->disabled_filter, "");
	assert_string_equal(d->list_classes, "group, posixGroup, nisMailAlias, groupOfURLs");
	assert_string_equal(d->id_attr, "objectGUID");
	assert_string_equal(d->login_attr, "sAMAccountName");
	assert_string_equal(d->mail_attr, "mail");
	assert_string_equal(d->alias_attr, "");
	assert_string_equal(d->routing_attr, "");
	assert_string_equal(d->member_attr, "member");
	assert_string_equal(d->quota_attr, "");
	assert_string_equal(d->sendas_attr, "managedBy");
	assert_string_equal(d->proxy_attr, "proxyAddresses");
	assert_string_equal(d->disabled_flags_attr, "userAccountControl");
	assert_int_equal(d->disabled_flags_mask, 2);
	assert_string_equal(d->member_of_attr, "memberOf");
	assert_string_equal(d->member_uid_attr, "memberUid");
	assert_string_equal(cfg->admin_user_classes, "user");
	config_free(cfg);
	free(path);

	/* One override per field: each lands, the others stay the profile's. */
	static const struct {
		const char *line;
		size_t offset;
		const char *want;
	} one[] = {
#define D(f) offsetof(struct directory_config, f)
	    {"user_filter = (sAMAccountName=%u)", D(user_filter), "(sAMAccountName=%u)"},
	    {"recipient_filter = (mail=%a)", D(recipient_filter), "(mail=%a)"},
	    {"disabled_filter = (x=1)", D(disabled_filter), "(x=1)"},
	    {"list_classes = group", D(list_classes), "group"},
	    {"id_attr = entryUUID", D(id_attr), "entryUUID"},
	    {"login_attr = userPrincipalName", D(login_attr), "userPrincipalName"},
	    {"mail_attr = targetAddress", D(mail_attr), "targetAddress"},
	    {"alias_attr = otherMailbox", D(alias_attr), "otherMailbox"},
	    {"routing_attr = targetAddress", D(routing_attr), "targetAddress"},
	    {"member_attr = member, uniqueMember", D(member_attr), "member, uniqueMember"},
	    {"quota_attr = mDBStorageQuota", D(quota_attr), "mDBStorageQuota"},
	    {"sendas_attr =", D(sendas_attr), ""},
	    {"proxy_attr =", D(proxy_attr), ""},
	    {"disabled_flags_attr = msDS-User-Account-Control-Computed", D(disabled_flags_attr),
	     "msDS-User-Account-Control-Computed"},
	    {"member_of_attr = isMemberOf", D(member_of_attr), "isMemberOf"},
	    {"member_uid_attr =", D(member_uid_attr), ""},
	    {"member_address_attr = mailForwardingAddress", D(member_address_attr),
	     "mailForwardingAddress"},
	    {"member_url_attr = labeledURI", D(member_url_attr), "labeledURI"},
	    {"member_query_attr = mailListFilter", D(member_query_attr), "mailListFilter"},
	    {"ad_matching_rules = no", D(ad_matching_rules), "no"},
#undef D
	};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		char *text;
		assert_true(asprintf(&text, BASE "profile = ad\n%s\n", one[i].line) > 0);
		cfg = load_text(text, &path, &err);
		free(text);
		if (cfg == NULL)
			fail_msg("%s: %s", one[i].line, err);
		const char *got = *(char **)((char *)&cfg->dir + one[i].offset);
		assert_string_equal(got, one[i].want);
		if (one[i].offset != offsetof(struct directory_config, user_filter))
			assert_string_equal(cfg->dir.user_filter,
					    "(&(sAMAccountType=805306368)(|(sAMAccountName=%u)("
					    "userPrincipalName=%u)))");
		else
			assert_string_equal(cfg->dir.id_attr, "objectGUID");
		config_free(cfg);
		free(path);
	}
}

static void
test_full_file(void **state)
{
	(void)state;
	char *path, *err = NULL;
	struct config *cfg =
	    load_text("[tls]\n"
		      "cert = @DIR@/cert.pem\n"
		      "key = @DIR@/key.pem\n" BASE "bind_dn = cn=tern,dc=example,dc=org\n"
		      "bind_password_file = @DIR@/secret\n"
		      "user_filter = (&(objectClass=posixAccount)(uid=%u))\n"
		      "disabled_filter =\n"
		      "alias_attr =\n"
		      "member_attr = member\n"
		      "quota_unit = 1k\n"
		      "cache_ttl = 2m\n"
		      "timeout = 30\n"
		      "[limits]\n"
		      "message_size_max = 10M\n"
		      "auth_fail_delay = 250ms\n"
		      "[storage]\n"
		      "group_commit = off\n"
		      "zstd_level = 19\n"
		      "map_size = 2G\n"
		      "[smtp]\n"
		      "listen = 127.0.0.1:2525, [::1]:2525\n"
		      "plaintext_auth = yes\n"
		      "[imaps]\n"
		      "listen = :993\n"
		      "max_line = 128k\n"
		      "idle_timeout = 1h\n"
		      "[admin]\n"
		      "listen = 127.0.0.1:8443\n"
		      "admin_group = cn=admins,dc=example,dc=org\n"
		      "writer_bind_dn = cn=writer,dc=example,dc=org\n"
		      "writer_password_file = @DIR@/secret\n"
		      "user_base = ou=staff,dc=example,dc=org\n"
		      "user_object_classes = inetOrgPerson, PostfixBookMailAccount\n"
		      "[dkim]\n"
		      "selector = s1\n",
		      &path, &err);
	if (cfg == NULL)
		fail_msg("%s", err);
	char *cert = path_in_tmp("cert.pem");
	assert_string_equal(cfg->tls_cert, cert);
	free(cert);
	assert_string_equal(cfg->dir.bind_password, "s3cret pass");
	assert_string_equal(cfg->dir.user_filter, "(&(objectClass=posixAccount)(uid=%u))");
	/* not overridden: still the profile's */
	assert_string_equal(cfg->dir.recipient_filter, "(|(mail=%a)(mailLocalAddress=%a))");
	assert_string_equal(cfg->dir.disabled_filter, "");
	assert_string_equal(cfg->dir.alias_attr, "");
	assert_string_equal(cfg->dir.member_attr, "member");
	assert_int_equal(cfg->dir.quota_unit, 1024);
	assert_int_equal(cfg->dir.cache_ttl, 120);
	assert_int_equal(cfg->dir.timeout, 30);
	assert_int_equal(cfg->message_size_max, 10ULL << 20);
	assert_int_equal(cfg->auth_fail_delay_ms, 250);
	assert_false(cfg->group_commit);
	assert_int_equal(cfg->zstd_level, 19);
	assert_int_equal(cfg->map_size, 2ULL << 30);

	const struct listener_config *smtp = &cfg->listeners[SVC_SMTP];
	assert_true(smtp->present);
	assert_int_equal(smtp->line, 27);
	assert_int_equal(smtp->naddrs, 2);
	assert_string_equal(smtp->addrs[0], "127.0.0.1:2525");
	assert_string_equal(smtp->addrs[1], "[::1]:2525");
	assert_true(smtp->plaintext_auth);
	assert_false(smtp->implicit_tls);
	assert_int_equal(smtp->idle_timeout, 300);
	assert_int_equal(smtp->max_line, 2048);
	assert_int_equal(smtp->max_connections, 0);

	const struct listener_config *imaps = &cfg->listeners[SVC_IMAPS];
	assert_true(imaps->present);
	assert_int_equal(imaps->line, 30);
	assert_true(imaps->implicit_tls);
	assert_false(imaps->plaintext_auth);
	assert_int_equal(imaps->max_line, 128 * 1024);
	assert_int_equal(imaps->idle_timeout, 3600);

	assert_true(cfg->listeners[SVC_ADMIN].present);
	assert_int_equal(cfg->listeners[SVC_ADMIN].idle_timeout, 60);
	assert_string_equal(cfg->admin_group, "cn=admins,dc=example,dc=org");
	assert_string_equal(cfg->admin_writer_dn, "cn=writer,dc=example,dc=org");
	assert_string_equal(cfg->admin_writer_password, "s3cret pass");
	assert_string_equal(cfg->admin_user_base, "ou=staff,dc=example,dc=org");
	assert_string_equal(cfg->admin_group_base, "ou=groups,dc=example,dc=org");
	assert_string_equal(cfg->admin_user_classes, "inetOrgPerson, PostfixBookMailAccount");
	assert_string_equal(cfg->dkim_selector, "s1");
	assert_false(cfg->listeners[SVC_POP3].present);
	assert_int_equal(cfg->listeners[SVC_POP3].idle_timeout, 600);
	assert_string_equal(config_service_name(SVC_POP3S), "pop3s");
	assert_string_equal(config_service_name(SVC_SUBMISSIONS), "submissions");
	config_free(cfg);
	free(path);
}

struct error_case {
	const char *text;
	int line; /* 0: the message has no line */
	const char *reason;
};

static const struct error_case error_cases[] = {
    {BASE "[bogus]\nx = 1\n", 8, "unknown section [bogus]"},
    {BASE "[smtp]\nlisten = :25\n[bogus]\n", 10, "unknown section [bogus]"},
    {BASE "colour = blue\n", 8, "[directory] colour: unknown key"},
    {"[server]\nhostname = a.example\nhostname = b.example\n", 3,
     "[server] hostname: duplicate key (first at line 2)"},
    {BASE "[server]\n", 8, "[server]: duplicate section (first at line 1)"},
    {"hostname = x\n", 1, "hostname: key outside any section"},
    {BASE "garbage line\n", 8, "syntax error"},
    {BASE "[smtp\n", 8, "syntax error"},
    {BASE "  continued\n", 8, "syntax error"},
    {BASE "[storage]\ngroup_commit = maybe\n", 9, "[storage] group_commit: not a boolean"},
    {BASE "[storage]\nzstd_level = 20\n", 9, "[storage] zstd_level: out of range 1..19"},
    {BASE "[storage]\nzstd_level = 0\n", 9, "[storage] zstd_level: out of range 1..19"},
    {BASE "[storage]\nbatch_max_ops = -1\n", 9, "[storage] batch_max_ops: not a number"},
    {BASE "[storage]\nbatch_max_ops = 4294967296\n", 9, "[storage] batch_max_ops: out of range"},
    {BASE "[storage]\nmap_size = 10X\n", 9, "[storage] map_size: not a size"},
    {BASE "[storage]\nmap_size = 99999999999999999999\n", 9, "[storage] map_size: not a size"},
    {BASE "[storage]\nmap_size = 20000000T\n", 9, "[storage] map_size: not a size"},
    {BASE "[limits]\nauth_fail_delay = 5 s\n", 9, "[limits] auth_fail_delay: not a duration"},
    {BASE "cache_ttl = 1w\n", 8, "[directory] cache_ttl: not a duration"},
    {BASE "cache_ttl = 100000000d\n", 8, "[directory] cache_ttl: out of range"},
    {"[server]\nlog_level = loud\n", 2, "[server] log_level: not a log level"},
    {"[server]\nhostname = mail example\n", 2, "[server] hostname: not a host name"},
    {"[server]\ndomains = example.org,,example.net\n", 2, "[server] domains: empty item"},
    {"[server]\ndomains = exa mple.org\n", 2, "[server] domains: \"exa mple.org\" is not a domain"},
    {BASE "profile = AD\n", 8, "[directory] profile: unknown profile \"AD\" (openldap, ad)"},
    {BASE "ad_matching_rules = maybe\n", 8,
     "[directory] ad_matching_rules: must be auto, yes or no"},
    {BASE "disabled_flags_attr = user Account\n", 8,
     "[directory] disabled_flags_attr: not an attribute name"},
    {BASE "profile = custom\n", 8, "[directory] profile: unknown profile \"custom\""},
    {BASE "user_filter = (uid=%u\n", 8, "[directory] user_filter: must be enclosed"},
    {BASE "user_filter = (&(uid=%u)\n", 8, "[directory] user_filter: unbalanced parentheses"},
    {BASE "recipient_filter = (|(mail=%a)\n", 8, "[directory] recipient_filter: unbalanced"},
    {BASE "recipient_filter = (mail=%a)(x=1)\n", 8, "[directory] recipient_filter: text after"},
    {BASE "recipient_filter = (mail=%a))(x=1)\n", 8, "[directory] recipient_filter: unbalanced"},
    {BASE "recipient_filter = (|(mail=%a)))\n", 8, "[directory] recipient_filter: unbalanced"},
    {BASE "user_filter = (uid=alice)\n", 8, "[directory] user_filter: must contain %u"},
    {BASE "recipient_filter = (mail=%u)\n", 8, "[directory] recipient_filter: must contain %a"},
    {BASE "id_attr = bad attr\n", 8, "[directory] id_attr: not an attribute name"},
    {BASE "id_attr =\n", 8, "[directory] id_attr: must not be empty"},
    {BASE "list_classes = groupOfNames,\n", 8, "[directory] list_classes: empty item"},
    {BASE "uri = http://x\n", 8, "[directory] uri: duplicate key (first at line 6)"},
    {"[directory]\nuri = http://x\n", 2, "[directory] uri: \"http://x\" is not an ldap://"},
    {BASE "bind_password_file = @DIR@/nonexistent\n", 8,
     "[directory] bind_password_file: @DIR@/nonexistent: No such file or directory"},
    {BASE "bind_password_file = @DIR@/empty\n", 8,
     "[directory] bind_password_file: @DIR@/empty: empty file"},
    {BASE "bind_password_file = @DIR@/secret\n", 8,
     "[directory] bind_password_file: set, but bind_dn is not"},
    {BASE "[tls]\ncert = @DIR@/missing.pem\nkey = @DIR@/key.pem\n", 9,
     "[tls] cert: @DIR@/missing.pem: No such file or directory"},
    {BASE "[tls]\ncert = @DIR@/cert.pem\n", 9, "[tls] key: required when cert is set"},
    {BASE "[tls]\nkey = @DIR@/key.pem\n", 9, "[tls] cert: required when key is set"},
    {BASE "[smtp]\nplaintext_auth = yes\n", 8, "[smtp] listen is required"},
    {BASE "[pop3]\n", 8, "[pop3] listen is required"},
    {BASE "[imaps]\nlisten = 0.0.0.0:993\n", 8, "[imaps]: implicit TLS needs [tls] cert and key"},
    {BASE "[smtp]\nlisten = 0.0.0.0:70000\n", 9,
     "[smtp] listen: \"0.0.0.0:70000\": port out of range"},
    {BASE "[smtp]\nlisten = 0.0.0.0\n", 9, "[smtp] listen: \"0.0.0.0\": missing :port"},
    {BASE "[smtp]\nlisten = ::1:25\n", 9,
     "[smtp] listen: \"::1:25\": an IPv6 address needs brackets"},
    {BASE "[smtp]\nlisten = [::1]25\n", 9, "[smtp] listen: \"[::1]25\": missing :port"},
    {BASE "[smtp]\nlisten = host:25x\n", 9, "[smtp] listen: \"host:25x\": bad port"},
    {BASE "[smtp]\nlisten = a:1,\n", 9, "[smtp] listen: empty address"},
    {BASE "[smtp]\nlisten = a:1\nmax_line = 100\n", 10, "[smtp] max_line: out of range 512.."},
    {BASE "[admin]\nlisten = 127.0.0.1:8443\n", 8,
     "[admin] admin_group is required (the DN of the admins' group)"},
    {BASE "[admin]\nlisten = 127.0.0.1:8443\nadmin_group = cn=a,dc=x\n"
	  "writer_password_file = @DIR@/secret\n",
     11, "[admin] writer_password_file: set, but writer_bind_dn is not"},
    {BASE "[admin]\nlisten = 127.0.0.1:8443\nadmin_group = cn=a,dc=x\n"
	  "user_object_classes = inetOrgPerson,,x\n",
     11, "[admin] user_object_classes: empty item"},
    {BASE "[admin]\nlisten = 127.0.0.1:8443\nadmin_group = cn=a,dc=x\n"
	  "token_ttl = 10s\n",
     11, "[admin] token_ttl"},
    /* missing required keys: no line */
    {"[server]\ndomains = example.org\nstate_dir = /x\n[directory]\nuri = ldap://h\nbase = dc=x\n",
     0, "[server] hostname is required"},
    {"[server]\nhostname = h\nstate_dir = /x\n[directory]\nuri = ldap://h\nbase = dc=x\n", 0,
     "[server] domains is required"},
    {"[server]\nhostname = h\ndomains = d\nstate_dir = /x\n", 0, "[directory] uri is required"},
};

static void
test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		char *path, *err = NULL;
		struct config *cfg = load_text(c->text, &path, &err);
		if (cfg != NULL)
			fail_msg("case %zu loaded, want \"%s\"", i, c->reason);
		assert_non_null(err);
		char *reason = expand(c->reason);
		char *want;
		if (c->line > 0)
			assert_true(asprintf(&want, "%s:%d: %s", path, c->line, reason) > 0);
		else
			assert_true(asprintf(&want, "%s: %s", path, reason) > 0);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, want);
		free(want);
		free(reason);
		free(err);
		free(path);
	}
}

static void
test_cannot_open(void **state)
{
	(void)state;
	char *err = NULL;
	char *path = path_in_tmp("no-such.conf");
	assert_null(config_load(path, &err));
	char *want;
	assert_true(asprintf(&want, "%s: No such file or directory", path) > 0);
	assert_string_equal(err, want);
	free(want);
	free(err);
	free(path);
}

static void
test_long_line(void **state)
{
	(void)state;
	/* A long filter is fine (inih's own limit is 200). */
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(buf_append_str(&b, BASE "user_filter = (&(uid=%u)"), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_printf(&b, "(!(cn=blocked%03d))", i), 0);
	assert_int_equal(buf_append_str(&b, ")\nmail_attr = mail\n"), 0);
	char *path, *err = NULL;
	struct config *cfg = load_text(buf_cstr(&b), &path, &err);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(strlen(cfg->dir.user_filter), 10 + 100 * 18 + 1);
	assert_non_null(strstr(cfg->dir.user_filter, "(!(cn=blocked099))"));
	config_free(cfg);
	free(path);

	/* Longer than the loader's limit: refused at its line. */
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, BASE "user_filter = (uid=%u)"), 0);
	for (int i = 0; i < 9000; i++)
		assert_int_equal(buf_putc(&b, ' '), 0);
	assert_int_equal(buf_append_str(&b, "\n"), 0);
	cfg = load_text(buf_cstr(&b), &path, &err);
	assert_null(cfg);
	assert_non_null(strstr(err, ":8: line longer than"));
	free(err);
	free(path);
	buf_free(&b);
}

struct num_case {
	const char *in;
	int ok;
	uint64_t want;
};

static const struct num_case size_cases[] = {
    {"0", 0, 0},
    {"1024", 0, 1024},
    {"512k", 0, 512 * 1024},
    {"512K", 0, 512 * 1024},
    {"10M", 0, 10ULL << 20},
    {"1G", 0, 1ULL << 30},
    {"1T", 0, 1ULL << 40},
    {"18446744073709551615", 0, UINT64_MAX},
    {"18446744073709551616", -1, 0},
    {"99999999999999999999", -1, 0},
    {"16777216T", -1, 0}, /* 2^64: wraps */
    {"16777215T", 0, 16777215ULL << 40},
    {"", -1, 0},
    {"M", -1, 0},
    {"-1", -1, 0},
    {" 1", -1, 0},
    {"1 M", -1, 0},
    {"1MB", -1, 0},
    {"1.5M", -1, 0},
    {"0x10", -1, 0},
};

static const struct num_case duration_cases[] = {
    {"0", 0, 0},
    {"30", 0, 30},
    {"30s", 0, 30},
    {"5m", 0, 300},
    {"2h", 0, 7200},
    {"1d", 0, 86400},
    {"18446744073709551615s", 0, UINT64_MAX},
    {"213503982334601d", 0, 213503982334601ULL * 86400},
    {"213503982334602d", -1, 0},
    {"99999999999999999999", -1, 0},
    {"", -1, 0},
    {"s", -1, 0},
    {"5M", -1, 0},
    {"5ms", -1, 0},
    {"1w", -1, 0},
    {"-5s", -1, 0},
    {"5 s", -1, 0},
};

static void
test_parse_numbers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		uint64_t v = 12345;
		int r = config_parse_size(size_cases[i].in, &v);
		if (r != size_cases[i].ok)
			fail_msg("size \"%s\": got %d", size_cases[i].in, r);
		if (r == 0)
			assert_int_equal(v, size_cases[i].want);
	}
	for (size_t i = 0; i < sizeof(duration_cases) / sizeof(duration_cases[0]); i++) {
		uint64_t v = 12345;
		int r = config_parse_duration(duration_cases[i].in, &v);
		if (r != duration_cases[i].ok)
			fail_msg("duration \"%s\": got %d", duration_cases[i].in, r);
		if (r == 0)
			assert_int_equal(v, duration_cases[i].want);
	}
}

static const char *const bool_yes[] = {"yes", "true", "on", "1", "YES", "True"};
static const char *const bool_no[] = {"no", "false", "off", "0", "No", "OFF"};

static void
test_bools(void **state)
{
	(void)state;
	for (int v = 0; v < 2; v++) {
		const char *const *list = v ? bool_yes : bool_no;
		for (size_t i = 0; i < 6; i++) {
			char *text;
			assert_true(
			    asprintf(&text, BASE "[storage]\ngroup_commit = %s\n", list[i]) > 0);
			char *path, *err = NULL;
			struct config *cfg = load_text(text, &path, &err);
			if (cfg == NULL)
				fail_msg("%s: %s", list[i], err);
			assert_int_equal(cfg->group_commit, v);
			config_free(cfg);
			free(path);
			free(text);
		}
	}
}

/* The shipped example loads, with its /etc/tern files and state dir moved
 * into the temporary directory. */
static void
test_example_file(void **state)
{
	(void)state;
	char *src;
	const char *here = __FILE__; /* CMake passes absolute source paths */
	const char *slash = strrchr(here, '/');
	assert_non_null(slash);
	assert_true(
	    asprintf(&src, "%.*s/../../config/tern.conf.example", (int)(slash - here), here) > 0);
	FILE *fp = fopen(src, "r");
	if (fp == NULL)
		fail_msg("cannot open %s", src);
	struct buf text;
	buf_init(&text, 1 << 20);
	int ch;
	while ((ch = fgetc(fp)) != EOF)
		assert_int_equal(buf_putc(&text, (char)ch), 0);
	fclose(fp);

	/* Rewrite the paths; everything else stays as shipped. */
	struct buf out;
	buf_init(&out, 1 << 20);
	size_t rewrites = 0;
	for (const char *p = buf_cstr(&text); *p != '\0';) {
		if (strncmp(p, "/etc/tern/", 10) == 0) {
			assert_int_equal(buf_printf(&out, "@DIR@/"), 0);
			p += 10;
			rewrites++;
		} else if (strncmp(p, "/var/lib/tern", 13) == 0) {
			assert_int_equal(buf_printf(&out, "@DIR@/state"), 0);
			p += 13;
			rewrites++;
		} else {
			assert_int_equal(buf_putc(&out, *p++), 0);
		}
	}
	assert_true(rewrites >= 4);
	char *secret = path_in_tmp("ldap.secret");
	write_file(secret, "example-secret\n");
	char *writer_secret = path_in_tmp("ldap-writer.secret");
	write_file(writer_secret, "writer-secret\n");

	char *path, *err = NULL;
	struct config *cfg = load_text(buf_cstr(&out), &path, &err);
	if (cfg == NULL)
		fail_msg("example: %s", err);
	assert_string_equal(cfg->hostname, "mail.example.org");
	assert_true(config_is_local_domain(cfg, "example.net"));
	assert_string_equal(cfg->dir.bind_password, "example-secret");
	assert_string_equal(cfg->dir.profile, "openldap");
	for (int s = 0; s < SVC_COUNT; s++)
		assert_true(cfg->listeners[s].present);
	assert_int_equal(cfg->listeners[SVC_SMTP].naddrs, 2);
	assert_int_equal(cfg->listeners[SVC_IMAP].idle_timeout, 1800);
	assert_string_equal(cfg->dkim_selector, "s2026");
	assert_string_equal(cfg->sasl_mechanisms, "");
	assert_string_equal(cfg->admin_writer_password, "writer-secret");
	assert_string_equal(cfg->admin_user_base, "ou=people,dc=example,dc=org");
	config_free(cfg);
	free(path);
	free(secret);
	free(writer_secret);
	free(src);
	buf_free(&text);
	buf_free(&out);
}

static struct config *
load_named(const char *hostname)
{
	char *text, *path, *err = NULL;
	assert_true(asprintf(&text,
			     "[server]\nhostname = %s\ndomains = x.example\nstate_dir = /s\n"
			     "[directory]\nuri = ldap://h\nbase = dc=x\n",
			     hostname) > 0);
	struct config *cfg = load_text(text, &path, &err);
	if (cfg == NULL)
		fail_msg("%s", err);
	free(text);
	free(path);
	return cfg;
}

static void
test_refcount_swap(void **state)
{
	(void)state;
	assert_null(config_acquire());
	config_set_current(load_named("one.example"));
	struct config *a = config_acquire();
	assert_string_equal(a->hostname, "one.example");
	struct config *a2 = config_acquire();
	assert_ptr_equal(a, a2);
	assert_int_equal(a->refs, 3); /* current + two readers */

	config_set_current(load_named("two.example"));
	/* a is no longer current but still alive for its readers (ASan
	 * would catch a use after free here) */
	assert_int_equal(a->refs, 2);
	assert_string_equal(a->hostname, "one.example");
	struct config *b = config_acquire();
	assert_string_equal(b->hostname, "two.example");
	config_release(a2);
	assert_string_equal(a->hostname, "one.example");
	config_release(a); /* last reference: freed */
	config_release(b);
	config_release(NULL);
	struct config *c = config_acquire();
	assert_ptr_equal(b, c);
	assert_int_equal(c->refs, 2);
	config_release(c);
	config_set_current(NULL); /* frees two */
	assert_null(config_acquire());
}

static _Atomic int stop_readers;

static void *
reader_thread(void *arg)
{
	(void)arg;
	unsigned long n = 0;
	while (!stop_readers) {
		struct config *cfg = config_acquire();
		if (cfg != NULL) {
			/* touch it while holding the reference */
			if (strncmp(cfg->hostname, "h", 1) != 0)
				abort();
			config_release(cfg);
		}
		n++;
	}
	return (void *)n;
}

static void
test_refcount_threads(void **state)
{
	(void)state;
	pthread_t t[3];
	stop_readers = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader_thread, NULL), 0);
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof(name), "h%d.example", i);
		config_set_current(load_named(name));
	}
	stop_readers = 1;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	struct config *cfg = config_acquire();
	assert_string_equal(cfg->hostname, "h199.example");
	assert_int_equal(cfg->refs, 2);
	config_release(cfg);
	config_set_current(NULL);
}

/* [backup] schedule: the accepted forms and their next firing. */
static void
test_schedule(void **state)
{
	static const struct {
		const char *in;
		int ok;
		enum config_schedule_kind kind;
		unsigned every, at;
	} cases[] = {
	    {"off", 0, CONFIG_SCHEDULE_OFF, 0, 0},
	    {"hourly", 0, CONFIG_SCHEDULE_EVERY, 3600, 0},
	    {"daily", 0, CONFIG_SCHEDULE_DAILY, 0, 0},
	    {"daily 03:00", 0, CONFIG_SCHEDULE_DAILY, 0, 3 * 3600},
	    {"daily 23:59", 0, CONFIG_SCHEDULE_DAILY, 0, 23 * 3600 + 59 * 60},
	    {"every 30s", 0, CONFIG_SCHEDULE_EVERY, 30, 0},
	    {"every 6h", 0, CONFIG_SCHEDULE_EVERY, 6 * 3600, 0},
	    {"every 90", 0, CONFIG_SCHEDULE_EVERY, 90, 0},
	    {"every 0s", -1, 0, 0, 0},
	    {"every", -1, 0, 0, 0},
	    {"every 5x", -1, 0, 0, 0},
	    {"daily 24:00", -1, 0, 0, 0},
	    {"daily 3:00", -1, 0, 0, 0},
	    {"daily 03:60", -1, 0, 0, 0},
	    {"weekly", -1, 0, 0, 0},
	    {"", -1, 0, 0, 0},
	};
	struct config_schedule s;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = config_parse_schedule(cases[i].in, &s);
		assert_int_equal(rc, cases[i].ok);
		if (rc == 0) {
			assert_int_equal(s.kind, cases[i].kind);
			assert_int_equal(s.every, cases[i].every);
			assert_int_equal(s.at, cases[i].at);
		}
	}
	assert_int_equal(config_parse_schedule("every 45s", &s), 0);
	assert_int_equal(config_schedule_next(&s, 1000), 1045);
	assert_int_equal(config_parse_schedule("off", &s), 0);
	assert_int_equal(config_schedule_next(&s, 1000), 0);
	/* daily: the next local HH:MM strictly after `after`. */
	assert_int_equal(config_parse_schedule("daily 03:00", &s), 0);
	time_t now = time(NULL), next = config_schedule_next(&s, now);
	struct tm tm;
	localtime_r(&next, &tm);
	assert_true(next > now && next - now <= 25 * 3600);
	assert_int_equal(tm.tm_hour, 3);
	assert_int_equal(tm.tm_min, 0);
	assert_true(config_schedule_next(&s, next) > next);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_defaults),
	    cmocka_unit_test(test_ad_profile),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_cannot_open),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_parse_numbers),
	    cmocka_unit_test(test_bools),
	    cmocka_unit_test(test_example_file),
	    cmocka_unit_test(test_refcount_swap),
	    cmocka_unit_test(test_refcount_threads),
	    cmocka_unit_test(test_schedule),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
