/*
 * spf_parse.c - the pure parts of SPF (RFC 7208): record syntax (section
 * 12's ABNF), macro expansion (section 7), address and CIDR matching.
 * No I/O: spf.c drives them from DNS answers; the unit tests feed them
 * the RFC's examples.
 *
 * How it fails: any syntax error is a -1 with a reason, which the
 * evaluator turns into permerror (section 4.6: the whole record is
 * checked before any term is evaluated).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/smtp/spf.h"

#define SPF_DOMAIN_MAX 253
#define SPF_EXPAND_MAX 4096 /* an expansion longer than this is abuse */

const char *
spf_result_name(enum spf_result r)
{
	static const char *const names[] = {
	    [SPF_NONE] = "none",	   [SPF_NEUTRAL] = "neutral",
	    [SPF_PASS] = "pass",	   [SPF_FAIL] = "fail",
	    [SPF_SOFTFAIL] = "softfail",   [SPF_TEMPERROR] = "temperror",
	    [SPF_PERMERROR] = "permerror",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "permerror";
}

int
spf_ip_parse(const char *text, struct spf_ip *ip_r)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(ip_r, 0, sizeof(*ip_r));
	if (inet_pton(AF_INET, text, ip_r->addr) == 1) {
		ip_r->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, ip_r->addr) != 1)
		return -1;
	ip_r->family = AF_INET6;
	if (memcmp(ip_r->addr, mapped, sizeof(mapped)) == 0) {
		/* RFC 7208 5: IPv4-mapped addresses are IPv4 connections */
		memmove(ip_r->addr, ip_r->addr + 12, 4);
		memset(ip_r->addr + 4, 0, 12);
		ip_r->family = AF_INET;
	}
	return 0;
}

bool
spf_cidr_match(const struct spf_ip *ip, const struct spf_ip *net, unsigned prefix)
{
	unsigned bits = ip->family == AF_INET ? 32 : 128;

	if (ip->family != net->family)
		return false;
	if (prefix > bits)
		prefix = bits;
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(ip->addr, net->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (ip->addr[full] & mask) == (net->addr[full] & mask);
}

/* ---- macros (section 7) ---- */

static bool
is_delim(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/* The raw value of macro letter L (lower-case), or NULL if not allowed. */
static const char *
macro_value(char l, const struct spf_request *req, const char *sender, const char *domain, bool exp,
	    struct arena *a)
{
	const char *at = strrchr(sender, '@');
	const unsigned char *b = req->ip.addr;

	switch (l) {
	case 's':
		return sender;
	case 'l':
		/* 4.3: no local-part means "postmaster" */
		return at == NULL || at == sender ? "postmaster"
						  : arena_strndup(a, sender, (size_t)(at - sender));
	case 'o':
		return at != NULL ? at + 1 : sender;
	case 'd':
		return domain;
	case 'i':
		if (req->ip.family == AF_INET)
			return arena_printf(a, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
		else {
			/* 7.3: IPv6 as dot-separated nibbles */
			char *t = arena_alloc(a, 64);
			for (int i = 0; i < 32; i++) {
				unsigned nib = (i % 2 == 0) ? b[i / 2] >> 4 : b[i / 2] & 15;
				t[i * 2] = "0123456789abcdef"[nib];
				t[i * 2 + 1] = '.';
			}
			t[63] = '\0';
			return t;
		}
	case 'p':
		return "unknown"; /* XXX see spf.h */
	case 'v':
		return req->ip.family == AF_INET ? "in-addr" : "ip6";
	case 'h':
		return req->helo;
	case 'c':
		if (!exp)
			return NULL;
		{
			char *t = arena_alloc(a, INET6_ADDRSTRLEN);
			if (inet_ntop(req->ip.family, req->ip.addr, t, INET6_ADDRSTRLEN) == NULL)
				return "unknown";
			return t;
		}
	case 'r':
		return exp ? (req->receiver != NULL && req->receiver[0] ? req->receiver : "unknown")
			   : NULL;
	case 't':
		return exp ? arena_printf(a, "%lld", (long long)req->now) : NULL;
	default:
		return NULL;
	}
}

/* Splits v on delims, keeps the rightmost digits parts (0 = all), reversed
 * first if rev, and joins them with dots into out. */
static int
transform(struct buf *out, const char *v, const char *delims, unsigned digits, bool rev,
	  struct arena *a)
{
	size_t n = 0, cap = 8;
	const char **parts = arena_alloc(a, cap * sizeof(*parts));
	size_t *lens = arena_alloc(a, cap * sizeof(*lens));
	const char *p = v;

	for (;;) {
		const char *e = p;
		while (*e != '\0' && strchr(delims, *e) == NULL)
			e++;
		if (n == cap) {
			const char **np = arena_alloc(a, 2 * cap * sizeof(*np));
			size_t *nl = arena_alloc(a, 2 * cap * sizeof(*nl));
			memcpy(np, parts, n * sizeof(*np));
			memcpy(nl, lens, n * sizeof(*nl));
			parts = np;
			lens = nl;
			cap *= 2;
		}
		parts[n] = p;
		lens[n++] = (size_t)(e - p);
		if (*e == '\0')
			break;
		p = e + 1;
	}
	if (rev)
		for (size_t i = 0; i < n / 2; i++) {
			const char *t = parts[i];
			size_t tl = lens[i];
			parts[i] = parts[n - 1 - i];
			lens[i] = lens[n - 1 - i];
			parts[n - 1 - i] = t;
			lens[n - 1 - i] = tl;
		}
	size_t first = digits > 0 && digits < n ? n - digits : 0;
	for (size_t i = first; i < n; i++) {
		if (i > first && buf_putc(out, '.') < 0)
			return -1;
		if (buf_append(out, parts[i], lens[i]) < 0)
			return -1;
	}
	return 0;
}

/* RFC 3986 unreserved characters stay; the rest become %XX (7.3). */
static int
url_escape(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int r = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
			    ? buf_putc(out, (char)c)
			    : buf_printf(out, "%%%02X", c);
		if (r < 0)
			return -1;
	}
	return 0;
}

int
spf_expand(const char *s, size_t len, const struct spf_request *req, const char *sender,
	   const char *domain, bool exp, struct arena *a, const char **out_r)
{
	struct buf out;
	size_t i = 0;

	buf_init(&out, SPF_EXPAND_MAX);
	while (i < len) {
		char c = s[i];
		if (c != '%') {
			/* macro-literal = %x21-24 / %x26-7E (and SP in exp) */
			if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) {
				if (!(exp && c == ' '))
					goto bad;
			}
			if (buf_putc(&out, c) < 0)
				goto bad;
			i++;
			continue;
		}
		if (++i >= len)
			goto bad;
		c = s[i++];
		if (c == '%' || c == '_' || c == '-') {
			if (buf_append_str(&out, c == '%' ? "%" : c == '_' ? " " : "%20") < 0)
				goto bad;
			continue;
		}
		if (c != '{' || i >= len)
			goto bad;
		char letter = s[i++];
		char low = (char)tolower((unsigned char)letter);
		if (strchr("slodiphcrtv", low) == NULL)
			goto bad;
		unsigned digits = 0;
		bool have_digits = false;
		while (i < len && isdigit((unsigned char)s[i])) {
			have_digits = true;
			if (digits < 1000)
				digits = digits * 10 + (unsigned)(s[i] - '0');
			i++;
		}
		if (have_digits && digits == 0)
			goto bad; /* 7.1: the number must be nonzero */
		bool rev = false;
		if (i < len && (s[i] == 'r' || s[i] == 'R')) {
			rev = true;
			i++;
		}
		char delims[8];
		size_t nd = 0;
		while (i < len && is_delim(s[i])) {
			if (nd < sizeof(delims) - 1 && memchr(delims, s[i], nd) == NULL)
				delims[nd++] = s[i];
			i++;
		}
		delims[nd] = '\0';
		if (nd == 0)
			strcpy(delims, ".");
		if (i >= len || s[i] != '}')
			goto bad;
		i++;
		if (req == NULL) {
			/* syntax only: letters valid only in exp still count */
			if (!exp && (low == 'c' || low == 'r' || low == 't'))
				goto bad;
			continue;
		}
		const char *v = macro_value(low, req, sender, domain, exp, a);
		if (v == NULL)
			goto bad;
		if (letter != low) {
			struct buf t;
			buf_init(&t, SPF_EXPAND_MAX);
			int r = transform(&t, v, delims, digits, rev, a);
			if (r == 0)
				r = url_escape(&out, t.data != NULL ? t.data : "", t.len);
			buf_free(&t);
			if (r < 0)
				goto bad;
		} else if (transform(&out, v, delims, digits, rev, a) < 0) {
			goto bad;
		}
	}
	/* req NULL: syntax only, a may be NULL */
	*out_r = req == NULL ? "" : arena_strndup(a, out.data != NULL ? out.data : "", out.len);
	buf_free(&out);
	return 0;
bad:
	buf_free(&out);
	return -1;
}

/* ---- records (section 4.6, 12) ---- */

bool
spf_is_record(const char *text, size_t len)
{
	return len >= 6 && strncasecmp(text, "v=spf1", 6) == 0 && (len == 6 || text[6] == ' ');
}

/* domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static bool
domain_end_ok(const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '}')
		return true; /* ends with a macro-expand (its syntax is checked apart) */
	if (len > 0 && s[len - 1] == '.')
		len--;
	size_t dot = len;
	while (dot > 0 && s[dot - 1] != '.')
		dot--;
	if (dot == 0)
		return false; /* needs "." toplabel */
	const char *l = s + dot;
	size_t n = len - dot;
	if (n == 0 || n > 63 || !isalnum((unsigned char)l[0]) || !isalnum((unsigned char)l[n - 1]))
		return false;
	bool alpha = false, hyphen = false;
	for (size_t i = 0; i < n; i++) {
		if (isalpha((unsigned char)l[i]))
			alpha = true;
		else if (l[i] == '-')
			hyphen = true;
		else if (!isdigit((unsigned char)l[i]))
			return false;
	}
	return alpha || hyphen;
}

static bool
domain_spec_ok(const char *s, size_t len)
{
	const char *out;
	struct arena *a = NULL;

	if (len == 0 || !domain_end_ok(s, len))
		return false;
	return spf_expand(s, len, NULL, "", "", false, a, &out) == 0;
}

/* "/" ( "0" / %x31-39 0*2DIGIT ) up to max; moves *p. */
static int
parse_cidr(const char **p, const char *end, unsigned max, unsigned *v_r)
{
	const char *s = *p;
	unsigned v = 0;
	size_t n = 0;

	while (s + n < end && isdigit((unsigned char)s[n]) && n < 4)
		v = v * 10 + (unsigned)(s[n++] - '0');
	if (n == 0 || (n > 1 && s[0] == '0') || v > max)
		return -1;
	*v_r = v;
	*p = s + n;
	return 0;
}

/* The end of a domain-spec: the first '/' outside "%{...}", or end. */
static const char *
spec_end(const char *s, const char *end)
{
	bool in = false;
	for (; s < end; s++) {
		if (!in && s[0] == '%' && s + 1 < end && s[1] == '{')
			in = true;
		else if (in && *s == '}')
			in = false;
		else if (!in && *s == '/')
			return s;
	}
	return end;
}

static int
parse_term(const char *t, size_t len, struct spf_record *rec, struct spf_term *term,
	   const char **error_r, bool *is_term_r)
{
	const char *end = t + len, *p = t;

	/* modifier: name "=" ..., name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
	if (isalpha((unsigned char)*p)) {
		const char *q = p + 1;
		while (q < end &&
		       (isalnum((unsigned char)*q) || *q == '-' || *q == '_' || *q == '.'))
			q++;
		if (q < end && *q == '=') {
			size_t nl = (size_t)(q - p);
			const char *v = q + 1;
			size_t vl = (size_t)(end - v);
			*is_term_r = false;
			if (nl == 8 && strncasecmp(p, "redirect", 8) == 0) {
				if (rec->redirect != NULL) {
					*error_r = "redirect= given twice";
					return -1;
				}
				if (!domain_spec_ok(v, vl)) {
					*error_r = "bad redirect= domain";
					return -1;
				}
				rec->redirect = v;
				rec->redirect_len = vl;
			} else if (nl == 3 && strncasecmp(p, "exp", 3) == 0) {
				if (rec->exp != NULL) {
					*error_r = "exp= given twice";
					return -1;
				}
				if (!domain_spec_ok(v, vl)) {
					*error_r = "bad exp= domain";
					return -1;
				}
				rec->exp = v;
				rec->exp_len = vl;
			} else {
				const char *out;
				/* unknown-modifier = name "=" macro-string: ignored,
				 * but its syntax must hold (6, 12) */
				if (spf_expand(v, vl, NULL, "", "", true, NULL, &out) < 0) {
					*error_r = "bad modifier value";
					return -1;
				}
			}
			return 0;
		}
	}
	*is_term_r = true;
	memset(term, 0, sizeof(*term));
	term->qualifier = '+';
	if (strchr("+-~?", *p) != NULL) {
		term->qualifier = *p++;
	}
	const char *n = p;
	while (p < end && *p != ':' && *p != '/')
		p++;
	size_t nl = (size_t)(p - n);
	static const struct {
		const char *name;
		enum spf_mech mech;
	} mechs[] = {{"all", SPF_M_ALL}, {"include", SPF_M_INCLUDE}, {"a", SPF_M_A},
		     {"mx", SPF_M_MX},	 {"ptr", SPF_M_PTR},	     {"ip4", SPF_M_IP4},
		     {"ip6", SPF_M_IP6}, {"exists", SPF_M_EXISTS}};
	size_t k;
	for (k = 0; k < sizeof(mechs) / sizeof(mechs[0]); k++)
		if (strlen(mechs[k].name) == nl && strncasecmp(n, mechs[k].name, nl) == 0)
			break;
	if (k == sizeof(mechs) / sizeof(mechs[0])) {
		*error_r = "unknown mechanism";
		return -1;
	}
	term->mech = mechs[k].mech;
	term->cidr4 = 32;
	term->cidr6 = 128;
	switch (term->mech) {
	case SPF_M_ALL:
		if (p != end)
			goto bad;
		return 0;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
	case SPF_M_PTR:
		if (p == end && term->mech == SPF_M_PTR)
			return 0;
		if (p == end || *p != ':' || !domain_spec_ok(p + 1, (size_t)(end - p - 1)))
			goto bad;
		term->spec = p + 1;
		term->spec_len = (size_t)(end - p - 1);
		return 0;
	case SPF_M_A:
	case SPF_M_MX:
		if (p < end && *p == ':') {
			const char *se = spec_end(p + 1, end);
			if (!domain_spec_ok(p + 1, (size_t)(se - p - 1)))
				goto bad;
			term->spec = p + 1;
			term->spec_len = (size_t)(se - p - 1);
			p = se;
		}
		/* dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ] */
		if (p < end && *p == '/' && (p + 1 >= end || p[1] != '/')) {
			p++;
			if (parse_cidr(&p, end, 32, &term->cidr4) < 0)
				goto bad;
		}
		if (p + 1 < end && p[0] == '/' && p[1] == '/') {
			p += 2;
			if (parse_cidr(&p, end, 128, &term->cidr6) < 0)
				goto bad;
		}
		if (p != end)
			goto bad;
		return 0;
	case SPF_M_IP4:
	case SPF_M_IP6: {
		bool v4 = term->mech == SPF_M_IP4;
		if (p == end || *p != ':')
			goto bad;
		p++;
		const char *se = p;
		while (se < end && *se != '/')
			se++;
		char tmp[64];
		if ((size_t)(se - p) >= sizeof(tmp) || se == p)
			goto bad;
		memcpy(tmp, p, (size_t)(se - p));
		tmp[se - p] = '\0';
		term->net.family = v4 ? AF_INET : AF_INET6;
		if (inet_pton(term->net.family, tmp, term->net.addr) != 1)
			goto bad;
		p = se;
		unsigned *cidr = v4 ? &term->cidr4 : &term->cidr6;
		if (p < end) {
			p++;
			if (parse_cidr(&p, end, v4 ? 32 : 128, cidr) < 0 || p != end)
				goto bad;
		}
		return 0;
	}
	}
bad:
	*error_r = "syntax error in a mechanism";
	return -1;
}

int
spf_parse_record(const char *text, size_t len, struct arena *a, struct spf_record *rec_r,
		 const char **error_r)
{
	memset(rec_r, 0, sizeof(*rec_r));
	if (!spf_is_record(text, len)) {
		*error_r = "not an SPF record";
		return -1;
	}
	size_t cap = 0;
	for (size_t i = 6; i < len; i++)
		if (text[i] == ' ')
			cap++;
	rec_r->terms = arena_alloc(a, (cap + 1) * sizeof(*rec_r->terms));
	size_t i = 6;
	while (i < len) {
		if (text[i] != ' ') {
			*error_r = "terms must be separated by spaces";
			return -1;
		}
		while (i < len && text[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t s = i;
		while (i < len && text[i] != ' ')
			i++;
		for (size_t k = s; k < i; k++)
			if ((unsigned char)text[k] < 0x21 || (unsigned char)text[k] > 0x7e) {
				*error_r = "a character not allowed in a record";
				return -1;
			}
		bool is_term = false;
		struct spf_term *t = &rec_r->terms[rec_r->nterms];
		if (parse_term(text + s, i - s, rec_r, t, error_r, &is_term) < 0)
			return -1;
		if (is_term)
			rec_r->nterms++;
	}
	return 0;
}
