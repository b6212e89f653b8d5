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

/* Every list built so far, kept for the life of the process so that no
 * caller's pointer ever dangles: there is one per distinct [sasl]
 * mechanisms value, i.e. a handful over any number of reloads. */
struct adv_entry {
	struct adv_entry *next;
	char *source; /* the config string it came from */
	char *text;
};
static pthread_mutex_t adv_lock = PTHREAD_MUTEX_INITIALIZER;
static struct adv_entry *adv_list;

static char *cyrus_mech_list; /* owned; set once by mech_cyrus_init */
static bool cyrus_up;
static char tern_plugin_name[] = "tern";

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

/* SCRAM verifiers will come from the directory cache (a later issue);
 * until then nobody has a stored secret, so every lookup finds nothing.
 * Being the only auxprop plugin Cyrus may use is what matters: a failed
 * check then ends in SASL_NOUSER instead of a sasldb lookup. */
static int
tern_auxprop_lookup(void *glob_context, sasl_server_params_t *sparams, unsigned flags,
		    const char *user, unsigned ulen)
{
	(void)glob_context;
	(void)sparams;
	(void)flags;
	(void)user;
	(void)ulen;
	return SASL_NOUSER;
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

/* Cyrus reads mech_list as a space-separated list; the config may use
 * commas. An empty list stays empty: Cyrus then offers no mechanism at
 * all (checked: sasl_listmech answers SASL_NOMECH). */
static char *
cyrus_list_from_config(const char *s)
{
	char *out = xstrdup(s != NULL ? s : "");
	for (char *p = out; *p != '\0'; p++) {
		if (*p == ',' || *p == '\t')
			*p = ' ';
	}
	return out;
}

int
mech_check_config(const struct config *cfg, char **error_r)
{
	const char *p = cfg->sasl_mechanisms != NULL ? cfg->sasl_mechanisms : "";

	while (*p != '\0') {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ' ' && *e != ',' && *e != '\t')
			e++;
		size_t n = (size_t)(e - p);
		/* XXX SCRAM, GSSAPI and EXTERNAL need the enterprise directory
		 * work (issue 7); until then advertising them would offer a
		 * login that can never succeed. */
		if (n > 0 && !(n == 5 && strncasecmp(p, "PLAIN", 5) == 0) &&
		    !(n == 5 && strncasecmp(p, "LOGIN", 5) == 0)) {
			if (asprintf(error_r,
				     "[sasl] mechanisms: %.*s is not available in this release "
				     "(only PLAIN and LOGIN)",
				     (int)n, p) < 0)
				*error_r = NULL;
			return -1;
		}
		p = e;
	}
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
	cyrus_mech_list = cyrus_list_from_config(cfg->sasl_mechanisms);
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
	/* Shutdown: no session is left to hold one of these. */
	pthread_mutex_lock(&adv_lock);
	while (adv_list != NULL) {
		struct adv_entry *e = adv_list;
		adv_list = e->next;
		free(e->source);
		free(e->text);
		free(e);
	}
	pthread_mutex_unlock(&adv_lock);
}

/* ---- what to advertise ---- */

static bool
word_in(const char *list, const char *w, size_t wlen)
{
	const char *p = list;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ' ')
			e++;
		if ((size_t)(e - p) == wlen && strncasecmp(p, w, wlen) == 0)
			return true;
		p = e;
	}
	return false;
}

const char *
mech_advertised(const struct config *cfg, bool tls_or_plain_ok)
{
	if (!tls_or_plain_ok)
		return "";
	const char *extra = cfg->sasl_mechanisms != NULL ? cfg->sasl_mechanisms : "";
	if (extra[0] == '\0')
		return "PLAIN LOGIN";
	pthread_mutex_lock(&adv_lock);
	for (struct adv_entry *e = adv_list; e != NULL; e = e->next) {
		if (strcmp(e->source, extra) == 0) {
			pthread_mutex_unlock(&adv_lock);
			return e->text;
		}
	}

	struct buf b;
	buf_init(&b, 4096);
	buf_append_str(&b, "PLAIN LOGIN");
	const char *p = extra;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ' ' && *e != ',' && *e != '\t')
			e++;
		size_t n = (size_t)(e - p);
		if (n > 0 && !word_in(buf_cstr(&b), p, n)) {
			buf_putc(&b, ' ');
			size_t at = b.len;
			if (buf_append(&b, p, n) == 0) {
				for (size_t i = at; i < b.len; i++) {
					if (b.data[i] >= 'a' && b.data[i] <= 'z')
						b.data[i] = (char)(b.data[i] - 'a' + 'A');
				}
			}
		}
		p = e;
	}
	struct adv_entry *e = xmalloc(sizeof(*e));
	e->source = xstrdup(extra);
	e->text = xstrdup(buf_cstr(&b));
	e->next = adv_list;
	adv_list = e;
	buf_free(&b);
	pthread_mutex_unlock(&adv_lock);
	return e->text;
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
