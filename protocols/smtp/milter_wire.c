/*
 * milter_wire.c - milter packets (milter_wire.h): encoding the MTA's
 * commands, a resumable decoder for the milter's replies and the checks
 * of each reply's fields. Pure: no I/O, no allocation outside the
 * decoder's capped buffer. A malformed reply is an error code, never a
 * crash.
 */
#include "milter_wire.h"

#include <string.h>

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get32(const void *q)
{
	const uint8_t *p = q;

	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Opens a packet of len data bytes: the length and the command. */
static int
put_head(struct buf *out, char cmd, size_t len)
{
	uint8_t h[5];

	if (len > MILTER_WIRE_MAX)
		return -1;
	put32(h, (uint32_t)len + 1);
	h[4] = (uint8_t)cmd;
	return buf_append(out, h, sizeof(h));
}

int
milter_wire_put(struct buf *out, char cmd, const void *data, size_t len)
{
	if (put_head(out, cmd, len) < 0)
		return -1;
	return len > 0 ? buf_append(out, data, len) : 0;
}

int
milter_wire_optneg(struct buf *out, uint32_t version, uint32_t actions, uint32_t protocol)
{
	uint8_t d[12];

	put32(d, version);
	put32(d + 4, actions);
	put32(d + 8, protocol);
	return milter_wire_put(out, SMFIC_OPTNEG, d, sizeof(d));
}

int
milter_wire_connect(struct buf *out, const char *hostname, char family, uint16_t port,
		    const char *address)
{
	size_t hl = strlen(hostname) + 1;
	size_t al = family == 'L' ? 0 : strlen(address) + 1;
	size_t len = hl + 1 + (family == 'L' ? 0 : 2 + al);
	uint8_t p[2] = {(uint8_t)(port >> 8), (uint8_t)port};

	if (hl > 4096 || al > 4096 || put_head(out, SMFIC_CONNECT, len) < 0)
		return -1;
	if (buf_append(out, hostname, hl) < 0 || buf_putc(out, family) < 0)
		return -1;
	if (family == 'L')
		return 0;
	if (buf_append(out, p, 2) < 0 || buf_append(out, address, al) < 0)
		return -1;
	return 0;
}

int
milter_wire_strings(struct buf *out, char cmd, const char *const *argv, size_t argc)
{
	size_t len = 0;

	for (size_t i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]) + 1;
		if (n > MILTER_WIRE_MAX - len)
			return -1;
		len += n;
	}
	if (put_head(out, cmd, len) < 0)
		return -1;
	for (size_t i = 0; i < argc; i++)
		if (buf_append(out, argv[i], strlen(argv[i]) + 1) < 0)
			return -1;
	return 0;
}

int
milter_wire_macro(struct buf *out, char cmd, const char *const *pairs, size_t npairs)
{
	size_t len = 1;

	for (size_t i = 0; i < 2 * npairs; i++) {
		size_t n = strlen(pairs[i]) + 1;
		if (n > MILTER_WIRE_MAX - len)
			return -1;
		len += n;
	}
	if (put_head(out, SMFIC_MACRO, len) < 0 || buf_putc(out, cmd) < 0)
		return -1;
	for (size_t i = 0; i < 2 * npairs; i++)
		if (buf_append(out, pairs[i], strlen(pairs[i]) + 1) < 0)
			return -1;
	return 0;
}

int
milter_wire_header(struct buf *out, const char *name, const char *value)
{
	const char *v[2] = {name, value};

	return milter_wire_strings(out, SMFIC_HEADER, v, 2);
}

/* ---- decoder ---- */

void
milter_wire_dec_init(struct milter_wire_dec *d)
{
	memset(d, 0, sizeof(*d));
	buf_init(&d->pkt, MILTER_WIRE_MAX);
}

void
milter_wire_dec_free(struct milter_wire_dec *d)
{
	buf_free(&d->pkt);
}

enum milter_wire_result
milter_wire_feed(struct milter_wire_dec *d, const void *data, size_t len, size_t *used_r)
{
	const uint8_t *p = data;
	size_t used = 0;

	if (d->ready) {
		d->ready = false;
		d->hdr_have = 0;
		buf_reset(&d->pkt);
	}
	*used_r = 0;
	while (d->hdr_have < 4) {
		if (used == len) {
			*used_r = used;
			return MILTER_WIRE_MORE;
		}
		d->hdr[d->hdr_have++] = p[used++];
		if (d->hdr_have == 4) {
			uint32_t n = get32(d->hdr);
			if (n == 0) {
				*used_r = used;
				return MILTER_WIRE_EMPTY;
			}
			if (n > MILTER_WIRE_MAX) {
				*used_r = used;
				return MILTER_WIRE_TOO_BIG;
			}
			d->need = n;
		}
	}
	size_t take = len - used < d->need ? len - used : d->need;
	if (take > 0 && buf_append(&d->pkt, p + used, take) < 0) {
		*used_r = used;
		return MILTER_WIRE_TOO_BIG; /* cannot happen: need <= max */
	}
	used += take;
	d->need -= (uint32_t)take;
	*used_r = used;
	if (d->need > 0)
		return MILTER_WIRE_MORE;
	d->ready = true;
	return MILTER_WIRE_PACKET;
}

/* The NUL-terminated string at *p within [*p, end); advances *p. */
static const char *
take_str(const char **p, const char *end)
{
	const char *s = *p;
	const char *z = memchr(s, '\0', (size_t)(end - s));

	if (z == NULL)
		return NULL;
	*p = z + 1;
	return s;
}

int
milter_wire_reply(const struct milter_wire_dec *d, struct milter_reply *r)
{
	const char *p = d->pkt.data;
	size_t n = d->pkt.len;

	memset(r, 0, sizeof(*r));
	if (!d->ready || n == 0)
		return MILTER_WIRE_BAD_REPLY;
	r->cmd = p[0];
	p++;
	n--;
	const char *end = p + n;
	switch (r->cmd) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_PROGRESS:
	case SMFIR_SKIP:
	case SMFIR_CONN_FAIL:
	case SMFIR_SHUTDOWN:
		/* No data; extra bytes are tolerated as libmilter ignores
		 * them too. */
		return 0;
	case SMFIC_OPTNEG:
		if (n < 12)
			return MILTER_WIRE_BAD_REPLY;
		r->version = get32(p);
		r->actions = get32(p + 4);
		r->protocol = get32(p + 8);
		r->data = p + 12; /* SETSYMLIST lists (stage, names) may follow */
		r->len = n - 12;
		return 0;
	case SMFIR_REPLBODY:
		r->data = p;
		r->len = n;
		return 0;
	case SMFIR_REPLYCODE:
		r->value = take_str(&p, end);
		if (r->value == NULL || p != end || !milter_wire_replycode_ok(r->value))
			return MILTER_WIRE_BAD_REPLY;
		return 0;
	case SMFIR_QUARANTINE:
		r->value = take_str(&p, end);
		return r->value == NULL ? MILTER_WIRE_BAD_REPLY : 0;
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (n < 4)
			return MILTER_WIRE_BAD_REPLY;
		r->index = get32(p);
		p += 4;
		/* fall through */
	case SMFIR_ADDHEADER:
		r->name = take_str(&p, end);
		r->value = r->name != NULL ? take_str(&p, end) : NULL;
		if (r->value == NULL || r->name[0] == '\0')
			return MILTER_WIRE_BAD_REPLY;
		/* A field name is printable ASCII without ':' (RFC 5322 2.2). */
		for (const char *q = r->name; *q != '\0'; q++)
			if (*q <= 32 || *q >= 127 || *q == ':')
				return MILTER_WIRE_BAD_REPLY;
		return 0;
	case SMFIR_SETSYMLIST:
		if (n < 4)
			return MILTER_WIRE_BAD_REPLY;
		r->stage = get32(p);
		p += 4;
		r->value = take_str(&p, end);
		return r->value == NULL || r->stage >= SMFIM_COUNT ? MILTER_WIRE_BAD_REPLY : 0;
	case SMFIR_CHGFROM:
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_DELRCPT:
		r->name = take_str(&p, end);
		if (r->name == NULL)
			return MILTER_WIRE_BAD_REPLY;
		r->value = p < end ? take_str(&p, end) : NULL;
		return 0;
	default:
		return MILTER_WIRE_UNKNOWN;
	}
}

static bool
digit(char c)
{
	return c >= '0' && c <= '9';
}

bool
milter_wire_replycode_ok(const char *t)
{
	char code[3];

	if ((t[0] != '4' && t[0] != '5') || !digit(t[1]) || !digit(t[2]))
		return false;
	memcpy(code, t, 3);
	for (;;) {
		if (memcmp(t, code, 3) != 0)
			return false;
		t += 3;
		bool last = *t != '-';
		if (*t != ' ' && *t != '-' && *t != '\0')
			return false;
		if (*t != '\0')
			t++;
		/* An enhanced code, if there, must match the class. */
		if ((t[0] == '4' || t[0] == '5') && t[1] == '.' && t[0] != code[0])
			return false;
		const char *eol = strstr(t, "\r\n");
		const char *stop = eol != NULL ? eol : t + strlen(t);
		for (const char *q = t; q < stop; q++)
			if (*q == '\r' || *q == '\n')
				return false;
		if (eol == NULL)
			return last;
		if (last)
			return false; /* "DDD text" must be the last line */
		t = eol + 2;
	}
}

const char *
milter_wire_strerror(int r)
{
	switch (r) {
	case MILTER_WIRE_TOO_BIG:
		return "packet too big";
	case MILTER_WIRE_EMPTY:
		return "empty packet";
	case MILTER_WIRE_BAD_REPLY:
		return "malformed reply";
	case MILTER_WIRE_UNKNOWN:
		return "unknown reply";
	default:
		return "ok";
	}
}
