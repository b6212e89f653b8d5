/*
 * dkim_sign.c - DKIM signing (RFC 6376 5, RFC 8463): the private keys of
 * [dkim] key_dir (DOMAIN.key, PEM: RSA of 1024 bits or more, 2048
 * advised, or Ed25519), loaded with every config (start, -t, SIGHUP) so a
 * key that does not load stops start-up naming the file, and the
 * relaxed/relaxed signature of a submitted message.
 *
 * Header choice: From, and every field of DEFAULT_HEADERS the message has,
 * as many times as it appears; the fields RFC 5322 allows once (From, To,
 * Subject, ...) are listed once more than they appear ("over-signed"), so
 * a copy added on the way breaks the signature instead of being shown.
 *
 * How it fails: a message without a From or a header too big gives -1 and
 * the caller sends it unsigned (and logs it); keys are read-only once
 * loaded, so any thread signs with them.
 */
#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/compat.h"
#include "core/config.h"
#include "dkim_internal.h"

#define DKIM_MAX_FIELDS 1000

struct dkim_key {
	EVP_PKEY *pkey; /* owned */
	enum dkim_alg alg;
};

struct dkim_keyset_entry {
	char *domain; /* lower-case, from the file name */
	struct dkim_key *key;
};

struct dkim_keyset {
	struct dkim_keyset_entry *v;
	size_t n;
};

/* ---- shared with dkim_verify.c ---- */

int
dkim_split_header(const char *msg, size_t len, struct dkim_field **fields_r, size_t *n_r,
		  size_t *body_off_r)
{
	struct dkim_field *v = NULL;
	size_t n = 0, cap = 0;
	const char *p = msg, *end = msg + len;

	*fields_r = NULL;
	*n_r = 0;
	*body_off_r = len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl != NULL ? nl + 1 : end;
		size_t ll = (size_t)((nl != NULL ? nl : end) - p);
		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll == 0) {
			*body_off_r = (size_t)(next - msg);
			break;
		}
		if ((*p == ' ' || *p == '\t') && n > 0) {
			/* continuation: the field grows to this line's end */
			v[n - 1].len = (size_t)(p + ll - v[n - 1].p);
		} else {
			if (n == DKIM_MAX_FIELDS) {
				free(v);
				return -1;
			}
			if (n == cap) {
				cap = cap == 0 ? 32 : cap * 2;
				v = xrealloc(v, cap * sizeof(*v));
			}
			const char *colon = memchr(p, ':', ll);
			size_t nl_ = colon != NULL ? (size_t)(colon - p) : ll;
			while (nl_ > 0 && (p[nl_ - 1] == ' ' || p[nl_ - 1] == '\t'))
				nl_--;
			v[n].p = p;
			v[n].len = ll;
			v[n].name_len = nl_;
			v[n].used = false;
			n++;
		}
		p = next;
	}
	*fields_r = v;
	*n_r = n;
	return 0;
}

bool
dkim_field_is(const struct dkim_field *f, const char *name, size_t name_len)
{
	return f->name_len == name_len && strncasecmp(f->p, name, name_len) == 0;
}

static void
emit_digest(void *arg, const char *p, size_t n)
{
	(void)EVP_DigestUpdate(arg, p, n);
}

int
dkim_body_hash(enum dkim_canon c, const char *body, size_t len, size_t limit,
	       uint8_t out[DKIM_HASH_LEN], size_t *canon_len_r)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int olen = 0;
	int rc = -1;

	if (md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		*canon_len_r = dkim_canon_body(c, body, len, limit, emit_digest, md);
		if (EVP_DigestFinal_ex(md, out, &olen) == 1 && olen == DKIM_HASH_LEN)
			rc = 0;
	}
	EVP_MD_CTX_free(md);
	return rc;
}

/* ---- keys ---- */

int
dkim_key_load(const char *path, struct dkim_key **key_r, char **error_r)
{
	*key_r = NULL;
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		xasprintf(error_r, "%s: %s", path, strerror(errno));
		return -1;
	}
	EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pk == NULL) {
		unsigned long e = ERR_get_error();
		ERR_clear_error();
		xasprintf(error_r, "%s: not a PEM private key (%s)", path,
			  e != 0 ? ERR_reason_error_string(e) : "unreadable");
		return -1;
	}
	struct dkim_key *k = xcalloc(1, sizeof(*k));
	k->pkey = pk;
	if (EVP_PKEY_is_a(pk, "RSA")) {
		/* RFC 8301 3.2: signers MUST use at least 1024 bits. */
		int bits = EVP_PKEY_get_bits(pk);
		if (bits < 1024) {
			xasprintf(error_r,
				  "%s: RSA key of %d bits (DKIM needs 1024 or more, 2048 advised)",
				  path, bits);
			dkim_key_free(k);
			return -1;
		}
		k->alg = DKIM_ALG_RSA_SHA256;
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		k->alg = DKIM_ALG_ED25519_SHA256;
	} else {
		xasprintf(error_r, "%s: key type %s: DKIM signs with RSA or Ed25519", path,
			  EVP_PKEY_get0_type_name(pk));
		dkim_key_free(k);
		return -1;
	}
	*key_r = k;
	return 0;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

int
dkim_key_txt(const struct dkim_key *k, struct buf *out)
{
	unsigned char *der = NULL;
	int rc = -1;

	if (k->alg == DKIM_ALG_RSA_SHA256) {
		/* SubjectPublicKeyInfo, as opendkim-genkey and most tools
		 * publish it (verifiers accept it and the bare RSAPublicKey). */
		int n = i2d_PUBKEY(k->pkey, &der);
		if (n > 0 && buf_append_str(out, "v=DKIM1; k=rsa; p=") == 0 &&
		    base64_encode(der, (size_t)n, out) == 0)
			rc = 0;
		OPENSSL_free(der);
	} else {
		/* RFC 8463 4.2: the raw 32-byte public key. */
		unsigned char raw[32];
		size_t rl = sizeof(raw);
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rl) == 1 &&
		    buf_append_str(out, "v=DKIM1; k=ed25519; p=") == 0 &&
		    base64_encode(raw, rl, out) == 0)
			rc = 0;
	}
	return rc;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dkim_keyset_entry *)a)->domain,
		      ((const struct dkim_keyset_entry *)b)->domain);
}

int
dkim_keyset_load(const char *dir, struct dkim_keyset **ks_r, char **error_r)
{
	*ks_r = NULL;
	DIR *d = opendir(dir);
	if (d == NULL) {
		xasprintf(error_r, "[dkim] key_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	struct dkim_keyset *ks = xcalloc(1, sizeof(*ks));
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		if (de->d_name[0] == '.' || nl <= 4 || strcmp(de->d_name + nl - 4, ".key") != 0)
			continue;
		char *path;
		xasprintf(&path, "%s/%s", dir, de->d_name);
		struct dkim_key *k;
		int r = dkim_key_load(path, &k, error_r);
		free(path);
		if (r < 0) {
			closedir(d);
			dkim_keyset_free(ks);
			return -1;
		}
		if (ks->n == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			ks->v = xrealloc(ks->v, cap * sizeof(*ks->v));
		}
		char *dom = xstrndup(de->d_name, nl - 4);
		for (char *c = dom; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		ks->v[ks->n].domain = dom;
		ks->v[ks->n].key = k;
		ks->n++;
	}
	closedir(d);
	if (ks->n > 1)
		qsort(ks->v, ks->n, sizeof(*ks->v), entry_cmp);
	*ks_r = ks;
	return 0;
}

void
dkim_keyset_free(struct dkim_keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->v[i].domain);
		dkim_key_free(ks->v[i].key);
	}
	free(ks->v);
	free(ks);
}

size_t
dkim_keyset_count(const struct dkim_keyset *ks)
{
	return ks != NULL ? ks->n : 0;
}

const struct dkim_key *
dkim_keyset_find(const struct dkim_keyset *ks, const char *domain, const char **d_r)
{
	if (ks == NULL)
		return NULL;
	/* The domain itself, then each parent: mail from a.example.org is
	 * signed with example.org.key when there is no a.example.org.key
	 * (d= then aligns with a DMARC policy in relaxed mode). */
	for (const char *dom = domain; dom != NULL && *dom != '\0';) {
		for (size_t i = 0; i < ks->n; i++) {
			if (strcasecmp(ks->v[i].domain, dom) == 0) {
				*d_r = ks->v[i].domain;
				return ks->v[i].key;
			}
		}
		dom = strchr(dom, '.');
		if (dom != NULL)
			dom++;
		if (dom != NULL && strchr(dom, '.') == NULL)
			break; /* never a top-level domain's key */
	}
	return NULL;
}

/* ---- the config hooks ---- */

static bool
selector_ok(const char *s)
{
	/* sub-domain *("." sub-domain): letters, digits, hyphens, dots. */
	if (*s == '\0' || *s == '.' || strlen(s) > 63)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '-' || (*p == '.' && p[1] != '.');
		if (!ok)
			return false;
	}
	return true;
}

static int
config_load_keys(struct config *cfg, char **error_r)
{
	if (cfg->dkim_key_dir == NULL || cfg->dkim_key_dir[0] == '\0')
		return 0; /* DKIM signing off */
	if (cfg->dkim_selector == NULL || !selector_ok(cfg->dkim_selector)) {
		xasprintf(error_r, "[dkim] selector must be set to a DNS label (letters, digits, "
				   "'-', '.') when key_dir is");
		return -1;
	}
	return dkim_keyset_load(cfg->dkim_key_dir, &cfg->dkim_keys, error_r);
}

static void
config_free_keys(struct config *cfg)
{
	dkim_keyset_free(cfg->dkim_keys);
	cfg->dkim_keys = NULL;
}

void
dkim_config_install(void)
{
	config_set_hooks(config_load_keys, config_free_keys);
}

/* ---- signing ---- */

struct hdr_choice {
	const char *name;
	bool once; /* RFC 5322 3.6: at most one: over-sign */
};

static const struct hdr_choice DEFAULT_HEADERS[] = {
    {"From", true},
    {"Sender", true},
    {"Reply-To", true},
    {"To", true},
    {"Cc", true},
    {"Subject", true},
    {"Date", true},
    {"Message-ID", true},
    {"In-Reply-To", true},
    {"References", true},
    {"MIME-Version", true},
    {"Content-Type", true},
    {"Content-Transfer-Encoding", true},
    {"Content-Disposition", true},
    {"List-Id", false},
    {"List-Help", false},
    {"List-Unsubscribe", false},
    {"List-Unsubscribe-Post", false},
    {"List-Subscribe", false},
    {"List-Post", false},
    {"List-Owner", false},
    {"List-Archive", false},
};

/* Appends text, starting a folded line first when it would pass col 76. */
static int
fold_put(struct buf *out, size_t *col, const char *text, size_t n, bool space_before)
{
	if (*col + n + (space_before ? 1 : 0) > 76) {
		if (buf_append(out, "\r\n\t", 3) < 0)
			return -1;
		*col = 8;
	} else if (space_before) {
		if (buf_putc(out, ' ') < 0)
			return -1;
		(*col)++;
	}
	*col += n;
	return buf_append(out, text, n);
}

int
dkim_header_hash(struct dkim_field *f, size_t nf, const char *names, const char *sig,
		 size_t sig_len, enum dkim_canon c, uint8_t out[DKIM_HASH_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct buf b;
	unsigned int olen = 0;
	int rc = -1;

	buf_init(&b, 1 << 20);
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	for (const char *p = names; *p != '\0';) {
		const char *colon = strchr(p, ':');
		size_t nl = colon != NULL ? (size_t)(colon - p) : strlen(p);
		/* 5.4.2: the last unused instance, going up. */
		for (size_t i = nf; i-- > 0;) {
			if (f[i].used || !dkim_field_is(&f[i], p, nl))
				continue;
			f[i].used = true;
			buf_reset(&b);
			if (dkim_canon_header(c, f[i].p, f[i].len, &b) < 0)
				goto out;
			(void)EVP_DigestUpdate(md, b.data, b.len);
			break;
		}
		p += nl;
		if (*p == ':')
			p++;
	}
	buf_reset(&b);
	if (dkim_canon_header(c, sig, sig_len, &b) < 0)
		goto out;
	/* ... without the CRLF the canonical form ends in (3.7). */
	(void)EVP_DigestUpdate(md, b.data, b.len - 2);
	if (EVP_DigestFinal_ex(md, out, &olen) == 1 && olen == DKIM_HASH_LEN)
		rc = 0;
out:
	buf_free(&b);
	EVP_MD_CTX_free(md);
	return rc;
}

int
dkim_sign(const struct dkim_key *k, const struct dkim_sign_params *p, const char *msg, size_t len,
	  struct buf *out, const char **error_r)
{
	struct dkim_field *f = NULL;
	size_t nf, body_off;
	struct buf names, sig, b64;
	uint8_t bh[DKIM_HASH_LEN], hh[DKIM_HASH_LEN];
	unsigned char sbuf[1024];
	size_t slen = sizeof(sbuf), canon_len;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	int rc = -1;

	*error_r = NULL;
	buf_init(&names, 64 * 1024);
	buf_init(&sig, 128 * 1024);
	buf_init(&b64, 4096);
	if (dkim_split_header(msg, len, &f, &nf, &body_off) < 0) {
		*error_r = "too many header fields";
		goto out;
	}
	for (size_t i = 0; i < sizeof(DEFAULT_HEADERS) / sizeof(DEFAULT_HEADERS[0]); i++) {
		const char *h = DEFAULT_HEADERS[i].name;
		size_t hl = strlen(h), count = 0;
		for (size_t j = 0; j < nf; j++)
			count += dkim_field_is(&f[j], h, hl);
		if (count == 0 && i == 0) {
			*error_r = "no From header field";
			goto out;
		}
		if (count > 0 && DEFAULT_HEADERS[i].once)
			count++;
		for (size_t j = 0; j < count; j++) {
			if ((names.len > 0 && buf_putc(&names, ':') < 0) ||
			    buf_append(&names, h, hl) < 0) {
				*error_r = "header too big";
				goto out;
			}
		}
	}
	if (dkim_body_hash(DKIM_CANON_RELAXED, msg + body_off, len - body_off, (size_t)-1, bh,
			   &canon_len) < 0 ||
	    base64_encode(bh, sizeof(bh), &b64) < 0) {
		*error_r = "hashing failed";
		goto out;
	}

	/* The header as it will be sent, b= empty: what gets hashed. */
	size_t col = 0;
	int e = buf_printf(&sig, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;",
			   k->alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
	col = sig.len;
	char tag[512];
	snprintf(tag, sizeof(tag), "d=%s;", p->domain);
	e |= fold_put(&sig, &col, tag, strlen(tag), true);
	snprintf(tag, sizeof(tag), "s=%s;", p->selector);
	e |= fold_put(&sig, &col, tag, strlen(tag), true);
	if (p->t != 0) {
		snprintf(tag, sizeof(tag), "t=%lld;", (long long)p->t);
		e |= fold_put(&sig, &col, tag, strlen(tag), true);
	}
	/* h= folds at its colons (FWS is allowed around them). */
	e |= fold_put(&sig, &col, "h=", 2, true);
	for (const char *q = names.data; e == 0 && *q != '\0';) {
		const char *c = strchr(q, ':');
		size_t n = c != NULL ? (size_t)(c - q + 1) : strlen(q);
		e |= fold_put(&sig, &col, q, n, false);
		q += n;
	}
	e |= buf_putc(&sig, ';');
	col++;
	b64.data[b64.len] = '\0';
	char bhtag[64];
	snprintf(bhtag, sizeof(bhtag), "bh=%s;", b64.data);
	e |= fold_put(&sig, &col, bhtag, strlen(bhtag), true);
	e |= fold_put(&sig, &col, "b=", 2, true);
	if (e != 0) {
		*error_r = "header too big";
		goto out;
	}
	if (dkim_header_hash(f, nf, names.data, sig.data, sig.len, DKIM_CANON_RELAXED, hh) < 0) {
		*error_r = "hashing failed";
		goto out;
	}
	if (k->alg == DKIM_ALG_RSA_SHA256) {
		/* RSASSA-PKCS1-v1_5 over the SHA-256 (RFC 6376 3.3.1). */
		pctx = EVP_PKEY_CTX_new(k->pkey, NULL);
		if (pctx == NULL || EVP_PKEY_sign_init(pctx) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) != 1 ||
		    EVP_PKEY_sign(pctx, sbuf, &slen, hh, sizeof(hh)) != 1) {
			*error_r = "RSA signing failed";
			goto out;
		}
	} else {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the data. */
		mctx = EVP_MD_CTX_new();
		if (mctx == NULL || EVP_DigestSignInit(mctx, NULL, NULL, NULL, k->pkey) != 1 ||
		    EVP_DigestSign(mctx, sbuf, &slen, hh, sizeof(hh)) != 1) {
			*error_r = "Ed25519 signing failed";
			goto out;
		}
	}
	buf_reset(&b64);
	if (base64_encode(sbuf, slen, &b64) < 0) {
		*error_r = "header too big";
		goto out;
	}
	/* b= folded in pieces; a verifier drops the whole value, FWS too. */
	for (size_t off = 0; off < b64.len;) {
		size_t room = col < 76 ? 76 - col : 0;
		if (room < 8) {
			e |= buf_append(&sig, "\r\n\t", 3);
			col = 8;
			room = 68;
		}
		size_t n = b64.len - off < room ? b64.len - off : room;
		e |= buf_append(&sig, b64.data + off, n);
		col += n;
		off += n;
	}
	e |= buf_append(&sig, "\r\n", 2);
	if (e != 0 || buf_append(out, sig.data, sig.len) < 0) {
		*error_r = "header too big";
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(pctx);
	EVP_MD_CTX_free(mctx);
	free(f);
	buf_free(&names);
	buf_free(&sig);
	buf_free(&b64);
	return rc;
}
