/*
 * mech.c - SASL glue (see mech.h): the PLAIN message splitter, Cyrus SASL
 * set-up with an explicit mech_list and Tern's own auxprop plugin pinned
 * (so no check can ever fall through to a local sasldb, notes 3.2), the
 * list of mechanisms to advertise, and failed-auth throttling per peer.
 *
 * Failure: mech_plain_parse rejects anything not exactly RFC 4616 shaped;
 * mech_cyrus_init fails start-up with a message if Cyrus will not
 * initialise; the throttle table is bounded (the oldest entry is reused
 * when it is full), so a flood of addresses costs no memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "core/buf.h"
#include "core/log.h"
#include "mech.h"

/* RFC 4616 gives no limits; these bound what we pass to the directory. */
#define PLAIN_MAX_ID 255
#define PLAIN_MAX_PASSWD 1024

/* Throttle: how many peers we remember, for how long, and the cap. */
#define THROTTLE_SLOTS 1024
#define THROTTLE_FORGET_SECONDS (15 * 60)
#define THROTTLE_MAX_DELAY_MS 16000
#define THROTTLE_MAX_DOUBLINGS 4

/* ---- PLAIN ---- */

int
mech_plain_parse(char *msg, size_t len, const char **authzid_r, const char **authcid_r,
		 const char **passwd_r, size_t *pwlen_r)
{
	char *nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return -1;
	size_t off1 = (size_t)(nul1 - msg);
	char *nul2 = memchr(nul1 + 1, '\0', len - off1 - 1);
	if (nul2 == NULL)
		return -1;
	size_t off2 = (size_t)(nul2 - msg);
	size_t pwlen = len - off2 - 1;
	/* A third NUL would sit inside the password: not PLAIN any more. */
	if (memchr(nul2 + 1, '\0', pwlen) != NULL)
		return -1;
	size_t zlen = off1, clen = off2 - off1 - 1;
	if (zlen > PLAIN_MAX_ID || clen == 0 || clen > PLAIN_MAX_ID)
		return -1;
	/* RFC 4616: passwd = 1*SAFE. An empty one is malformed (and some
	 * directories would take it for an anonymous bind). */
	if (pwlen == 0 || pwlen > PLAIN_MAX_PASSWD)
		return -1;
	*authzid_r = msg;
	*authcid_r = nul1 + 1;
	*passwd_r = nul2 + 1;
	*pwlen_r = pwlen;
	return 0;
}

/* ---- Cyrus SASL ---- */

static char *cyrus_mech_list; /* owned; set once by mech_cyrus_init */
static char *cyrus_keytab;    /* owned; "" = none */
static bool cyrus_up;
static char tern_plugin_name[] = "tern";

/* The verifier the next Cyrus call on this thread may hand out (set by
 * auth_cyrus.c around sasl_server_start, from the directory lookup that
 * preceded it): Cyrus calls the auxprop synchronously from inside. */
static __thread const char *tl_verifier;
static __thread const char *tl_verifier_user;

static void *
mutex_alloc(void)
{
	pthread_mutex_t *m = xmalloc(sizeof(*m));
	pthread_mutex_init(m, NULL);
	return m;
}

static int
mutex_lock(void *m)
{
	return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int
mutex_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void
mutex_free(void *m)
{
	pthread_mutex_destroy(m);
	free(m);
}

/* SCRAM asks for the user's authPassword; it gets the verifier fetched
 * from the directory just before (mech_set_verifier), and only for the
 * user it was fetched for. Being the only auxprop plugin Cyrus may use
 * matters too: anything else ends in SASL_NOUSER, never a sasldb lookup. */
static int
tern_auxprop_lookup(void *glob_context, sasl_server_params_t *sparams, unsigned flags,
		    const char *user, unsigned ulen)
{
	(void)glob_context;
	/* An authorization identity has no properties here; saying "no such
	 * user" would refuse an authzid equal to the authcid (EXTERNAL,
	 * GSSAPI), which RFC 4422 allows. Whether one may act as another is
	 * the proxy policy's question, and Tern's answer is no. */
	if (flags & SASL_AUXPROP_AUTHZID)
		return SASL_OK;
	if (tl_verifier == NULL || tl_verifier_user == NULL || strlen(tl_verifier_user) != ulen ||
	    memcmp(tl_verifier_user, user, ulen) != 0)
		return SASL_NOUSER;
	if (flags & SASL_AUXPROP_OVERRIDE)
		return SASL_OK;
	const struct propval *want = sparams->utils->prop_get(sparams->propctx);
	for (const struct propval *p = want; p != NULL && p->name != NULL; p++) {
		/* Properties of the authentication identity carry a '*'. */
		if (p->name[0] != '*' || strcasecmp(p->name + 1, "authPassword") != 0)
			continue;
		sparams->utils->prop_erase(sparams->propctx, p->name);
		sparams->utils->prop_set(sparams->propctx, p->name, tl_verifier,
					 (int)strlen(tl_verifier));
	}
	return SASL_OK;
}

void
mech_set_verifier(const char *user, const char *verifier)
{
	tl_verifier_user = user;
	tl_verifier = verifier;
}

static sasl_auxprop_plug_t tern_auxprop = {
    .features = 0,
    .spare_int1 = 0,
    .glob_context = NULL,
    .auxprop_free = NULL,
    .auxprop_lookup = tern_auxprop_lookup,
    .name = tern_plugin_name,
    .auxprop_store = NULL,
};

static int
tern_auxprop_init(const sasl_utils_t *utils, int max_version, int *out_version,
		  sasl_auxprop_plug_t **plug, const char *plugname)
{
	(void)utils;
	(void)plugname;
	if (max_version < SASL_AUXPROP_PLUG_VERSION)
		return SASL_BADVERS;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &tern_auxprop;
	return SASL_OK;
}

static int
cyrus_getopt(void *context, const char *plugin_name, const char *option, const char **result,
	     unsigned *len)
{
	const char *v = NULL;

	(void)context;
	(void)plugin_name;
	if (strcmp(option, "auxprop_plugin") == 0)
		v = tern_plugin_name;
	else if (strcmp(option, "pwcheck_method") == 0)
		v = "auxprop";
	else if (strcmp(option, "mech_list") == 0)
		v = cyrus_mech_list != NULL ? cyrus_mech_list : "";
	else if (strcmp(option, "sasldb_path") == 0)
		v = "/dev/null"; /* belt and braces: never a real sasldb */
	else if (strcmp(option, "keytab") == 0 && cyrus_keytab != NULL && cyrus_keytab[0] != '\0')
		v = cyrus_keytab;
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

static int
cyrus_log(void *context, int level, const char *message)
{
	enum log_level l;

	(void)context;
	switch (level) {
	case SASL_LOG_ERR:
		l = LOGL_ERROR;
		break;
	case SASL_LOG_FAIL:
	case SASL_LOG_WARN:
		l = LOGL_WARN;
		break;
	case SASL_LOG_NOTE:
		l = LOGL_INFO;
		break;
	default:
		l = LOGL_DEBUG;
		break;
	}
	/* Cyrus never puts a password in a log message. */
	log_msg(l, 0, "sasl", "cyrus msg=\"%s\"", message != NULL ? message : "");
	return SASL_OK;
}

typedef int (*sasl_cb_fn)(void);

static const sasl_callback_t cyrus_callbacks[] = {
    {SASL_CB_GETOPT, (sasl_cb_fn)(void (*)(void))cyrus_getopt, NULL},
    {SASL_CB_LOG, (sasl_cb_fn)(void (*)(void))cyrus_log, NULL},
    {SASL_CB_LIST_END, NULL, NULL},
};

static const struct {
	const char *name;
	unsigned flag;
} cyrus_mechs[] = {
    {"SCRAM-SHA-256", MECH_SCRAM},
    {"SCRAM-SHA-256-PLUS", MECH_SCRAM_PLUS},
    {"GSSAPI", MECH_GSSAPI},
    {"EXTERNAL", MECH_EXTERNAL},
};

/* Walks [sasl] mechanisms: the flags of the names known, or -1 with
 * bad and badlen naming the first unknown one. */
static int
parse_mechs(const char *s, unsigned *flags_r, const char **bad, size_t *badlen)
{
	unsigned flags = 0;
	const char *p = s != NULL ? s : "";

	while (*p != '\0') {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ' ' && *e != ',' && *e != '\t')
			e++;
		size_t n = (size_t)(e - p);
		if (n == 0)
			break;
		bool known = (n == 5 &&
			      (strncasecmp(p, "PLAIN", 5) == 0 || strncasecmp(p, "LOGIN", 5) == 0));
		for (size_t i = 0; !known && i < sizeof(cyrus_mechs) / sizeof(cyrus_mechs[0]);
		     i++) {
			if (strlen(cyrus_mechs[i].name) == n &&
			    strncasecmp(p, cyrus_mechs[i].name, n) == 0) {
				flags |= cyrus_mechs[i].flag;
				known = true;
			}
		}
		if (!known) {
			*bad = p;
			*badlen = n;
			return -1;
		}
		p = e;
	}
	/* Cyrus offers -PLUS beside plain SCRAM once a channel binding is
	 * set, and the other way round: both or neither. */
	if (flags & (MECH_SCRAM | MECH_SCRAM_PLUS))
		flags |= MECH_SCRAM | MECH_SCRAM_PLUS;
	*flags_r = flags;
	return 0;
}

unsigned
mech_cyrus_configured(const struct config *cfg)
{
	unsigned flags = 0;
	const char *bad;
	size_t badlen;

	if (parse_mechs(cfg->sasl_mechanisms, &flags, &bad, &badlen) < 0)
		return 0; /* refused at start-up by mech_check_config */
	return flags;
}

/* Cyrus's mech_list: exactly the Cyrus mechanisms configured. An empty
 * list stays empty: Cyrus then offers no mechanism at all (checked:
 * sasl_listmech answers SASL_NOMECH). */
static char *
cyrus_list_from_flags(unsigned flags)
{
	struct buf b;
	char *out;

	buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(cyrus_mechs) / sizeof(cyrus_mechs[0]); i++) {
		if (flags & cyrus_mechs[i].flag) {
			if (b.len > 0)
				buf_putc(&b, ' ');
			buf_append_str(&b, cyrus_mechs[i].name);
		}
	}
	out = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return out;
}

static int
config_error(char **error_r, const char *what)
{
	*error_r = xstrdup(what);
	return -1;
}

int
mech_check_config(const struct config *cfg, char **error_r)
{
	unsigned flags;
	const char *bad;
	size_t badlen;

	if (parse_mechs(cfg->sasl_mechanisms, &flags, &bad, &badlen) < 0) {
		if (asprintf(error_r,
			     "[sasl] mechanisms: %.*s is not a mechanism Tern runs (PLAIN, LOGIN, "
			     "SCRAM-SHA-256, SCRAM-SHA-256-PLUS, GSSAPI, EXTERNAL)",
			     (int)badlen, bad) < 0)
			*error_r = NULL;
		return -1;
	}
	if ((flags & MECH_GSSAPI) && cfg->sasl_keytab[0] == '\0')
		return config_error(error_r, "[sasl] keytab: required for GSSAPI");
	if ((flags & MECH_GSSAPI) && cfg->sasl_realms[0] == '\0')
		return config_error(error_r,
				    "[sasl] realms: required for GSSAPI (the Kerberos realms whose "
				    "principals map to directory logins)");
	if ((flags & MECH_EXTERNAL) && cfg->tls_client_ca[0] == '\0')
		return config_error(error_r,
				    "[tls] client_ca: required for EXTERNAL (the CAs that sign "
				    "client certificates)");
	if ((flags & MECH_EXTERNAL) && cfg->tls_cert[0] == '\0')
		return config_error(error_r, "[tls] cert: required for EXTERNAL");
	const char *f = cfg->sasl_external_field;
	if (strcmp(f, "email") != 0 && strcmp(f, "cn") != 0 && strcmp(f, "subject") != 0)
		return config_error(error_r,
				    "[sasl] external_field: must be one of email, cn, subject");
	if ((flags & MECH_EXTERNAL) && cfg->sasl_external_attr[0] == '\0')
		return config_error(error_r, "[sasl] external_attribute: required for EXTERNAL");
	return 0;
}

int
mech_cyrus_init(const struct config *cfg, char **error_r)
{
	int r;

	if (cyrus_up) {
		*error_r = xstrdup("SASL: already initialised");
		return -1;
	}
	free(cyrus_mech_list);
	cyrus_mech_list = cyrus_list_from_flags(mech_cyrus_configured(cfg));
	free(cyrus_keytab);
	cyrus_keytab = xstrdup(cfg->sasl_keytab);
	/* MIT's acceptor reads the keytab named by KRB5_KTNAME; set once
	 * here, on the main thread, before any worker exists. */
	if (cyrus_keytab[0] != '\0' && setenv("KRB5_KTNAME", cyrus_keytab, 1) < 0) {
		*error_r = xstrdup("SASL: cannot set KRB5_KTNAME");
		return -1;
	}
	sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
	r = sasl_auxprop_add_plugin(tern_plugin_name, tern_auxprop_init);
	if (r != SASL_OK) {
		if (asprintf(error_r, "SASL: cannot register the auxprop plugin: %s",
			     sasl_errstring(r, NULL, NULL)) < 0)
			*error_r = NULL;
		return -1;
	}
	r = sasl_server_init(cyrus_callbacks, "tern");
	if (r != SASL_OK) {
		if (asprintf(error_r, "SASL: sasl_server_init failed: %s",
			     sasl_errstring(r, NULL, NULL)) < 0)
			*error_r = NULL;
		return -1;
	}
	cyrus_up = true;
	return 0;
}

void
mech_cyrus_done(void)
{
	if (cyrus_up)
		sasl_server_done();
	cyrus_up = false;
	free(cyrus_mech_list);
	cyrus_mech_list = NULL;
	free(cyrus_keytab);
	cyrus_keytab = NULL;
}

/* ---- throttling ---- */

struct throttle_slot {
	char ip[48];	/* "" = free */
	unsigned fails; /* recent failures */
	time_t last;	/* monotonic seconds of the last failure */
};

/* The one piece of shared mutable state here: failures must be counted
 * across every worker, or a client could spread its guesses over them. */
static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct throttle_slot throttle[THROTTLE_SLOTS];

static time_t
now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The slot for ip, or NULL. Caller holds the lock. Stale slots are freed
 * on the way. */
static struct throttle_slot *
throttle_find(const char *ip, time_t now)
{
	for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
		struct throttle_slot *t = &throttle[i];
		if (t->ip[0] == '\0')
			continue;
		if (now - t->last >= THROTTLE_FORGET_SECONDS) {
			t->ip[0] = '\0';
			t->fails = 0;
			continue;
		}
		if (strcmp(t->ip, ip) == 0)
			return t;
	}
	return NULL;
}

unsigned
mech_fail_delay_ms(const struct config *cfg, const char *peer_ip)
{
	unsigned base = cfg->auth_fail_delay_ms;
	unsigned fails = 0;

	if (base == 0)
		return 0;
	pthread_mutex_lock(&throttle_lock);
	struct throttle_slot *t = throttle_find(peer_ip, now_mono());
	if (t != NULL)
		fails = t->fails;
	pthread_mutex_unlock(&throttle_lock);

	/* Four doublings at most, and never past 16 s (unless the base
	 * itself is longer): the admin's base sets the scale, so a test
	 * config with a short base never waits long however many fail. */
	uint64_t cap = (uint64_t)base << THROTTLE_MAX_DOUBLINGS;
	if (cap > THROTTLE_MAX_DELAY_MS)
		cap = base > THROTTLE_MAX_DELAY_MS ? base : THROTTLE_MAX_DELAY_MS;
	uint64_t d = base;
	for (unsigned i = 0; i < fails && d < cap; i++)
		d *= 2;
	return d > cap ? cap : (unsigned)d;
}

void
mech_record_result(const char *peer_ip, bool ok)
{
	time_t now = now_mono();

	if (strlen(peer_ip) >= sizeof(throttle[0].ip))
		return; /* cannot happen for inet_ntop output */
	pthread_mutex_lock(&throttle_lock);
	struct throttle_slot *t = throttle_find(peer_ip, now);
	if (ok) {
		if (t != NULL) {
			t->ip[0] = '\0';
			t->fails = 0;
		}
		pthread_mutex_unlock(&throttle_lock);
		return;
	}
	if (t == NULL) {
		/* A free slot, else the one that failed longest ago. */
		struct throttle_slot *oldest = &throttle[0];
		for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
			if (throttle[i].ip[0] == '\0') {
				oldest = &throttle[i];
				break;
			}
			if (throttle[i].last < oldest->last)
				oldest = &throttle[i];
		}
		t = oldest;
		snprintf(t->ip, sizeof(t->ip), "%s", peer_ip);
		t->fails = 0;
	}
	if (t->fails < 64)
		t->fails++;
	t->last = now;
	pthread_mutex_unlock(&throttle_lock);
}
