/*
 * dkim_verify.c - the DKIM verification core (RFC 6376 6, RFC 8463, RFC
 * 8301), without DNS: dkim_verify_prepare parses every DKIM-Signature and
 * settles those that cannot verify; the caller looks up each
 * dkim_sig_key_name() and calls dkim_verify_one with the TXT record (or
 * the lookup's failure); results are RFC 8601's.
 *
 * Result choices: a malformed signature, a missing or revoked key, a key
 * record that forbids the signature = permerror; an x= in the past =
 * policy; a body or header hash that does not match = fail; the caller's
 * DNS failure = temperror. l= is honoured (body_limited is set, since
 * content appended after the signed length passes: a risk the A-R
 * consumer should know).
 *
 * How it fails: never on input; only the arena's out-of-memory is fatal.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "core/base64.h"
#include "core/compat.h"
#include "dkim_internal.h"

#define DKIM_MAX_TAGS 64

struct dkim_sig_int {
	size_t field;		  /* index of the DKIM-Signature field */
	const char *sig_stripped; /* the field with its b= value deleted */
	size_t sig_stripped_len;
	enum dkim_canon ch, cb;
	const char *names; /* h=, colon-separated, FWS removed */
	struct buf bh, b;  /* decoded; cap-bounded */
	bool has_l;
	size_t l;
	const char *key_name;
	const char *i_domain; /* the domain part of i= (NULL: none given) */
};

struct dkim_verify_int {
	struct arena *a;
	struct dkim_field *f;
	size_t nf;
	const char *msg;
	size_t len, body_off;
};

const char *
dkim_result_name(enum dkim_result r)
{
	switch (r) {
	case DKIM_PASS:
		return "pass";
	case DKIM_FAIL:
		return "fail";
	case DKIM_NEUTRAL:
		return "neutral";
	case DKIM_POLICY:
		return "policy";
	case DKIM_TEMPERROR:
		return "temperror";
	case DKIM_PERMERROR:
		return "permerror";
	default:
		return "none";
	}
}

static const struct dkim_tag *
tag_get(const struct dkim_tag *t, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (t[i].name_len == nl && memcmp(t[i].name, name, nl) == 0)
			return &t[i];
	return NULL;
}

static bool
tag_is(const struct dkim_tag *t, const char *s)
{
	return t->value_len == strlen(s) && strncasecmp(t->value, s, t->value_len) == 0;
}

/* The value without FWS (base64, h= lists). */
static char *
strip_fws(struct arena *a, const char *p, size_t n)
{
	char *o = arena_alloc(a, n + 1), *w = o;
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			*w++ = p[i];
	*w = '\0';
	return o;
}

static int
b64_value(struct arena *a, const struct dkim_tag *t, struct buf *out)
{
	char *s = strip_fws(a, t->value, t->value_len);
	return base64_decode(s, strlen(s), out);
}

/* A decimal of at most 76 digits (3.5) that fits in a uint64. */
static int
parse_num(const struct dkim_tag *t, uint64_t *v_r)
{
	uint64_t v = 0;
	if (t->value_len == 0 || t->value_len > 76)
		return -1;
	for (size_t i = 0; i < t->value_len; i++) {
		char c = t->value[i];
		if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(c - '0');
	}
	*v_r = v;
	return 0;
}

/* Whether a colon-separated list (FWS removed) holds a or b. */
static bool
list_has(const char *list, const char *a, const char *b)
{
	for (const char *p = list; *p != '\0';) {
		const char *c = strchr(p, ':');
		size_t l = c != NULL ? (size_t)(c - p) : strlen(p);
		if ((strlen(a) == l && strncasecmp(p, a, l) == 0) ||
		    (b != NULL && strlen(b) == l && strncasecmp(p, b, l) == 0))
			return true;
		p += l + (c != NULL);
	}
	return false;
}

static char *
tag_dup(struct arena *a, const struct dkim_tag *t)
{
	return arena_strndup(a, t->value, t->value_len);
}

static void
settle(struct dkim_sig *s, enum dkim_result r, const char *reason)
{
	s->result = r;
	s->reason = reason;
}

/* domain equals d, or is a subdomain of it. */
static bool
within(const char *domain, const char *d)
{
	size_t dl = strlen(domain), l = strlen(d);
	if (dl == l)
		return strcasecmp(domain, d) == 0;
	return dl > l && domain[dl - l - 1] == '.' && strcasecmp(domain + dl - l, d) == 0;
}

static void
parse_sig(struct dkim_verify_int *vi, struct dkim_sig *s, size_t fi, time_t now)
{
	struct arena *a = vi->a;
	struct dkim_sig_int *in = s->in;
	const struct dkim_field *f = &vi->f[fi];
	const char *colon = memchr(f->p, ':', f->len);
	const char *val = colon + 1;
	size_t vlen = (size_t)(f->p + f->len - val);
	struct dkim_tag t[DKIM_MAX_TAGS];
	size_t n;

	in->field = fi;
	s->domain = "";
	s->selector = "";
	s->auid = "";
	s->header_b = "";
	int r = dkim_tag_list_parse(val, vlen, t, DKIM_MAX_TAGS, &n);
	if (r < 0) {
		settle(s, DKIM_PERMERROR, r == -2 ? "duplicate tag" : "signature syntax error");
		return;
	}
	const struct dkim_tag *tv = tag_get(t, n, "v"), *ta = tag_get(t, n, "a"),
			      *tb = tag_get(t, n, "b"), *tbh = tag_get(t, n, "bh"),
			      *td = tag_get(t, n, "d"), *th = tag_get(t, n, "h"),
			      *ts = tag_get(t, n, "s"), *tc = tag_get(t, n, "c"),
			      *ti = tag_get(t, n, "i"), *tl = tag_get(t, n, "l"),
			      *tq = tag_get(t, n, "q"), *tt = tag_get(t, n, "t"),
			      *tx = tag_get(t, n, "x");
	if (td != NULL)
		s->domain = tag_dup(a, td);
	if (ts != NULL)
		s->selector = tag_dup(a, ts);
	if (tb != NULL) {
		char *b = strip_fws(a, tb->value, tb->value_len);
		s->header_b = arena_strndup(a, b, 8);
	}
	if (tv == NULL || ta == NULL || tb == NULL || tbh == NULL || td == NULL || th == NULL ||
	    ts == NULL) {
		settle(s, DKIM_PERMERROR, "missing required tag");
		return;
	}
	if (!tag_is(tv, "1")) {
		settle(s, DKIM_PERMERROR, "incompatible version");
		return;
	}
	if (tag_is(ta, "rsa-sha256")) {
		s->alg = DKIM_ALG_RSA_SHA256;
	} else if (tag_is(ta, "ed25519-sha256")) {
		s->alg = DKIM_ALG_ED25519_SHA256;
	} else if (tag_is(ta, "rsa-sha1")) {
		settle(s, DKIM_PERMERROR, "rsa-sha1 is not accepted (RFC 8301)");
		return;
	} else {
		settle(s, DKIM_PERMERROR, "unknown algorithm");
		return;
	}
	in->ch = in->cb = DKIM_CANON_SIMPLE;
	if (tc != NULL) {
		const char *c = tc->value, *slash = memchr(c, '/', tc->value_len);
		size_t l1 = slash != NULL ? (size_t)(slash - c) : tc->value_len;
		for (int part = 0; part < 2; part++) {
			const char *p = part == 0 ? c : slash + 1;
			size_t l = part == 0 ? l1 : tc->value_len - l1 - 1;
			enum dkim_canon *dst = part == 0 ? &in->ch : &in->cb;
			if (l == 6 && strncasecmp(p, "simple", 6) == 0)
				*dst = DKIM_CANON_SIMPLE;
			else if (l == 7 && strncasecmp(p, "relaxed", 7) == 0)
				*dst = DKIM_CANON_RELAXED;
			else {
				settle(s, DKIM_PERMERROR, "unknown canonicalization");
				return;
			}
			if (slash == NULL)
				break;
		}
	}
	if (s->domain[0] == '\0' || s->selector[0] == '\0' || strchr(s->domain, '/') ||
	    strchr(s->selector, '/')) {
		settle(s, DKIM_PERMERROR, "bad d= or s=");
		return;
	}
	/* h=: from must be there (5.4); FWS around the colons dropped. */
	char *names = strip_fws(a, th->value, th->value_len);
	bool has_from = false;
	for (char *p = names; *p != '\0';) {
		char *c = strchr(p, ':');
		size_t l = c != NULL ? (size_t)(c - p) : strlen(p);
		if (l == 0) {
			settle(s, DKIM_PERMERROR, "signature syntax error (h=)");
			return;
		}
		has_from |= l == 4 && strncasecmp(p, "from", 4) == 0;
		p += l + (c != NULL);
	}
	if (!has_from) {
		settle(s, DKIM_PERMERROR, "From field not signed");
		return;
	}
	in->names = names;
	if (ti != NULL) {
		s->auid = tag_dup(a, ti);
		const char *at = strrchr(s->auid, '@');
		if (at == NULL || !within(at + 1, s->domain)) {
			settle(s, DKIM_PERMERROR, "i= not within d=");
			return;
		}
		in->i_domain = at + 1;
	} else {
		s->auid = arena_printf(a, "@%s", s->domain);
	}
	uint64_t num, ts_v = 0;
	if (tl != NULL) {
		if (parse_num(tl, &num) < 0 || num > SIZE_MAX) {
			settle(s, DKIM_PERMERROR, "bad l=");
			return;
		}
		in->has_l = true;
		in->l = (size_t)num;
		s->body_limited = true;
	}
	if (tq != NULL) {
		char *q = strip_fws(a, tq->value, tq->value_len);
		if (!list_has(q, "dns/txt", NULL)) {
			settle(s, DKIM_PERMERROR, "unknown query method");
			return;
		}
	}
	if (tt != NULL && parse_num(tt, &ts_v) < 0) {
		settle(s, DKIM_PERMERROR, "bad t=");
		return;
	}
	if (tx != NULL) {
		if (parse_num(tx, &num) < 0 || (tt != NULL && num < ts_v)) {
			settle(s, DKIM_PERMERROR, "bad x=");
			return;
		}
		if (now > 0 && num < (uint64_t)now) {
			settle(s, DKIM_POLICY, "signature expired");
			return;
		}
	}
	buf_init(&in->bh, 256);
	buf_init(&in->b, 1024);
	if (b64_value(a, tbh, &in->bh) < 0 || in->bh.len != DKIM_HASH_LEN) {
		settle(s, DKIM_PERMERROR, "bad bh=");
		return;
	}
	if (b64_value(a, tb, &in->b) < 0 || in->b.len == 0) {
		settle(s, DKIM_PERMERROR, "bad b=");
		return;
	}
	/* 3.7: the field with b='s value, and the FWS around it, deleted. */
	const char *eq = tb->name + tb->name_len;
	while (*eq != '=')
		eq++;
	size_t pre = (size_t)(eq + 1 - f->p), post = (size_t)(f->p + f->len - tb->raw_end);
	char *st = arena_alloc(a, pre + post + 1);
	memcpy(st, f->p, pre);
	memcpy(st + pre, tb->raw_end, post);
	in->sig_stripped = st;
	in->sig_stripped_len = pre + post;
	in->key_name = arena_printf(a, "%s._domainkey.%s", s->selector, s->domain);
}

int
dkim_verify_prepare(const char *msg, size_t len, time_t now, struct dkim_verify **v_r)
{
	struct dkim_verify *v = xcalloc(1, sizeof(*v));
	struct dkim_verify_int *vi = xcalloc(1, sizeof(*vi));

	*v_r = v;
	v->in = vi;
	vi->a = arena_new(0);
	vi->msg = msg;
	vi->len = len;
	if (dkim_split_header(msg, len, &vi->f, &vi->nf, &vi->body_off) < 0)
		return -1;
	size_t count = 0;
	for (size_t i = 0; i < vi->nf; i++)
		count += dkim_field_is(&vi->f[i], "DKIM-Signature", 14) &&
			 memchr(vi->f[i].p, ':', vi->f[i].len) != NULL;
	v->sigs = arena_alloc(vi->a, (count + 1) * sizeof(*v->sigs));
	for (size_t i = 0; i < vi->nf; i++) {
		if (!dkim_field_is(&vi->f[i], "DKIM-Signature", 14) ||
		    memchr(vi->f[i].p, ':', vi->f[i].len) == NULL)
			continue;
		struct dkim_sig *s = &v->sigs[v->nsigs++];
		s->in = arena_alloc(vi->a, sizeof(*s->in));
		parse_sig(vi, s, i, now);
	}
	return 0;
}

const char *
dkim_sig_key_name(const struct dkim_verify *v, size_t i)
{
	if (i >= v->nsigs || v->sigs[i].result != DKIM_NONE)
		return NULL;
	return v->sigs[i].in->key_name;
}

/* The key record (3.6.1) into a public key, or a settled result. */
static EVP_PKEY *
parse_key(struct dkim_verify_int *vi, struct dkim_sig *s, const char *txt, size_t txt_len)
{
	struct dkim_tag t[DKIM_MAX_TAGS];
	size_t n;
	struct buf raw;
	EVP_PKEY *pk = NULL;

	if (dkim_tag_list_parse(txt, txt_len, t, DKIM_MAX_TAGS, &n) < 0) {
		settle(s, DKIM_PERMERROR, "key syntax error");
		return NULL;
	}
	const struct dkim_tag *tv = tag_get(t, n, "v"), *th = tag_get(t, n, "h"),
			      *tk = tag_get(t, n, "k"), *tp = tag_get(t, n, "p"),
			      *ts = tag_get(t, n, "s"), *tt = tag_get(t, n, "t");
	if (tv != NULL && (tv != &t[0] || !tag_is(tv, "DKIM1"))) {
		settle(s, DKIM_PERMERROR, "key syntax error (v=)");
		return NULL;
	}
	if (tp == NULL) {
		settle(s, DKIM_PERMERROR, "key syntax error (no p=)");
		return NULL;
	}
	if (th != NULL) {
		char *h = strip_fws(vi->a, th->value, th->value_len);
		if (!list_has(h, "sha256", NULL)) {
			settle(s, DKIM_PERMERROR, "inappropriate hash algorithm");
			return NULL;
		}
	}
	bool k_rsa = tk == NULL || tag_is(tk, "rsa"), k_ed = tk != NULL && tag_is(tk, "ed25519");
	if (!k_rsa && !k_ed) {
		settle(s, DKIM_PERMERROR, "unknown key type");
		return NULL;
	}
	if ((s->alg == DKIM_ALG_RSA_SHA256) != k_rsa) {
		settle(s, DKIM_PERMERROR, "inappropriate key algorithm");
		return NULL;
	}
	if (ts != NULL) {
		char *sv = strip_fws(vi->a, ts->value, ts->value_len);
		if (!list_has(sv, "*", "email")) {
			settle(s, DKIM_PERMERROR, "key not for email");
			return NULL;
		}
	}
	if (tt != NULL) {
		/* t=s: i='s domain must be d= itself. t=y (testing) changes
		 * nothing here (XXX: not reported to the A-R yet). */
		char *fl = strip_fws(vi->a, tt->value, tt->value_len);
		if (list_has(fl, "s", NULL) && s->in->i_domain != NULL &&
		    strcasecmp(s->in->i_domain, s->domain) != 0) {
			settle(s, DKIM_PERMERROR, "i= is a subdomain but the key has t=s");
			return NULL;
		}
	}
	if (tp->value_len == 0) {
		settle(s, DKIM_PERMERROR, "key revoked");
		return NULL;
	}
	buf_init(&raw, 8192);
	char *p = strip_fws(vi->a, tp->value, tp->value_len);
	if (base64_decode(p, strlen(p), &raw) < 0) {
		buf_free(&raw);
		settle(s, DKIM_PERMERROR, "key syntax error (p=)");
		return NULL;
	}
	const unsigned char *d = (const unsigned char *)raw.data;
	if (k_ed) {
		if (raw.len == 32)
			pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, d, raw.len);
	} else {
		/* SubjectPublicKeyInfo, or the bare RSAPublicKey some publish. */
		pk = d2i_PUBKEY(NULL, &d, (long)raw.len);
		if (pk == NULL) {
			d = (const unsigned char *)raw.data;
			pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &d, (long)raw.len);
		}
		if (pk != NULL && !EVP_PKEY_is_a(pk, "RSA")) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
	}
	buf_free(&raw);
	ERR_clear_error();
	if (pk == NULL) {
		settle(s, DKIM_PERMERROR, "key syntax error (p=)");
		return NULL;
	}
	if (k_rsa && EVP_PKEY_get_bits(pk) < 1024) {
		/* RFC 8301 3.2: shorter keys MUST NOT be taken as valid. */
		EVP_PKEY_free(pk);
		settle(s, DKIM_POLICY, "RSA key shorter than 1024 bits");
		return NULL;
	}
	return pk;
}

enum dkim_result
dkim_verify_one(struct dkim_verify *v, size_t i, enum dkim_key_status st, const char *txt,
		size_t txt_len)
{
	struct dkim_verify_int *vi = v->in;
	if (i >= v->nsigs)
		return DKIM_NONE;
	struct dkim_sig *s = &v->sigs[i];
	struct dkim_sig_int *in = s->in;
	if (s->result != DKIM_NONE)
		return s->result;
	if (st == DKIM_KEY_TEMPFAIL) {
		settle(s, DKIM_TEMPERROR, "key unavailable");
		return s->result;
	}
	if (st != DKIM_KEY_FOUND || txt == NULL) {
		settle(s, DKIM_PERMERROR, "no key for signature");
		return s->result;
	}
	EVP_PKEY *pk = parse_key(vi, s, txt, txt_len);
	if (pk == NULL)
		return s->result;

	uint8_t bh[DKIM_HASH_LEN], hh[DKIM_HASH_LEN];
	size_t canon_len;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	if (dkim_body_hash(in->cb, vi->msg + vi->body_off, vi->len - vi->body_off,
			   in->has_l ? in->l : (size_t)-1, bh, &canon_len) < 0) {
		settle(s, DKIM_TEMPERROR, "hashing failed");
		goto out;
	}
	if (in->has_l && in->l > canon_len) {
		settle(s, DKIM_FAIL, "l= longer than the body");
		goto out;
	}
	if (memcmp(bh, in->bh.data, DKIM_HASH_LEN) != 0) {
		settle(s, DKIM_FAIL, "body hash did not verify");
		goto out;
	}
	for (size_t k = 0; k < vi->nf; k++)
		vi->f[k].used = false;
	if (dkim_header_hash(vi->f, vi->nf, in->names, in->sig_stripped, in->sig_stripped_len,
			     in->ch, hh) < 0) {
		settle(s, DKIM_TEMPERROR, "hashing failed");
		goto out;
	}
	int ok;
	if (s->alg == DKIM_ALG_RSA_SHA256) {
		pctx = EVP_PKEY_CTX_new(pk, NULL);
		ok = pctx != NULL && EVP_PKEY_verify_init(pctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(pctx, (const unsigned char *)in->b.data, in->b.len, hh,
				     sizeof(hh)) == 1;
	} else {
		mctx = EVP_MD_CTX_new();
		ok = mctx != NULL && EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(mctx, (const unsigned char *)in->b.data, in->b.len, hh,
				      sizeof(hh)) == 1;
	}
	if (ok)
		settle(s, DKIM_PASS, NULL);
	else
		settle(s, DKIM_FAIL, "signature did not verify");
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(pctx);
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_free(pk);
	return s->result;
}

void
dkim_verify_free(struct dkim_verify **vp)
{
	struct dkim_verify *v = *vp;
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nsigs; i++) {
		if (v->sigs[i].in != NULL) {
			buf_free(&v->sigs[i].in->bh);
			buf_free(&v->sigs[i].in->b);
		}
	}
	free(v->in->f);
	arena_destroy(&v->in->a);
	free(v->in);
	free(v);
	*vp = NULL;
}
