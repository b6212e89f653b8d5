/*
 * milter_wire.h - the Sendmail milter protocol (version 6, as libmilter
 * and Postfix speak it) on the wire: packets are a 4-byte big-endian
 * length, a command byte and data. The encoder appends packets for the
 * MTA's commands to a struct buf; the decoder is a pure, resumable state
 * machine that takes bytes from a milter and yields one packet at a
 * time, then checks a reply's shape. No I/O here (milter.c does that);
 * any thread, one owner per decoder.
 *
 * How it fails: a packet over MILTER_WIRE_MAX, an empty packet, or a
 * reply whose fields are not what its command needs is an error; the
 * caller treats the milter as broken (its default action).
 */
#ifndef TERN_MILTER_WIRE_H
#define TERN_MILTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define MILTER_WIRE_VERSION 6
/* Largest packet we accept from a milter (the 1 MiB of SMFIP_MDS_1M plus
 * room for the command and headers). */
#define MILTER_WIRE_MAX (1024 * 1024 + 1024)
/* Body chunks we send (libmilter's MILTER_CHUNK_SIZE). */
#define MILTER_WIRE_CHUNK 65535

/* Commands, MTA to milter (SMFIC_*). */
#define SMFIC_ABORT 'A'
#define SMFIC_BODY 'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO 'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO 'H'
#define SMFIC_QUIT_NC 'K'
#define SMFIC_HEADER 'L'
#define SMFIC_MAIL 'M'
#define SMFIC_EOH 'N'
#define SMFIC_OPTNEG 'O'
#define SMFIC_QUIT 'Q'
#define SMFIC_RCPT 'R'
#define SMFIC_DATA 'T'
#define SMFIC_UNKNOWN 'U'

/* Replies, milter to MTA (SMFIR_*). */
#define SMFIR_ADDRCPT '+'
#define SMFIR_DELRCPT '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN '4'
#define SMFIR_ACCEPT 'a'
#define SMFIR_REPLBODY 'b'
#define SMFIR_CONTINUE 'c'
#define SMFIR_DISCARD 'd'
#define SMFIR_CHGFROM 'e'
#define SMFIR_CONN_FAIL 'f'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS 'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT 'r'
#define SMFIR_SKIP 's'
#define SMFIR_TEMPFAIL 't'
#define SMFIR_REPLYCODE 'y'

/* Actions the milter may take (SMFIF_*), negotiated in OPTNEG. */
#define SMFIF_ADDHDRS 0x01u
#define SMFIF_CHGBODY 0x02u
#define SMFIF_ADDRCPT 0x04u
#define SMFIF_DELRCPT 0x08u
#define SMFIF_CHGHDRS 0x10u
#define SMFIF_QUARANTINE 0x20u
#define SMFIF_CHGFROM 0x40u
#define SMFIF_ADDRCPT_PAR 0x80u
#define SMFIF_SETSYMLIST 0x100u

/* Protocol flags (SMFIP_*): stages the milter does not want, replies it
 * will not send. */
#define SMFIP_NOCONNECT 0x01u
#define SMFIP_NOHELO 0x02u
#define SMFIP_NOMAIL 0x04u
#define SMFIP_NORCPT 0x08u
#define SMFIP_NOBODY 0x10u
#define SMFIP_NOHDRS 0x20u
#define SMFIP_NOEOH 0x40u
#define SMFIP_NR_HDR 0x80u
#define SMFIP_NOUNKNOWN 0x100u
#define SMFIP_NODATA 0x200u
#define SMFIP_SKIP 0x400u
#define SMFIP_RCPT_REJ 0x800u
#define SMFIP_NR_CONN 0x1000u
#define SMFIP_NR_HELO 0x2000u
#define SMFIP_NR_MAIL 0x4000u
#define SMFIP_NR_RCPT 0x8000u
#define SMFIP_NR_DATA 0x10000u
#define SMFIP_NR_UNKN 0x20000u
#define SMFIP_NR_EOH 0x40000u
#define SMFIP_NR_BODY 0x80000u
#define SMFIP_HDR_LEADSPC 0x100000u
#define SMFIP_MDS_256K 0x10000000u
#define SMFIP_MDS_1M 0x20000000u

/* Macro stages of SETSYMLIST (SMFIM_*). */
enum milter_wire_stage {
	SMFIM_CONNECT = 0,
	SMFIM_HELO = 1,
	SMFIM_ENVFROM = 2,
	SMFIM_ENVRCPT = 3,
	SMFIM_DATA = 4,
	SMFIM_EOM = 5,
	SMFIM_EOH = 6,
	SMFIM_COUNT = 7,
};

/* ---- encoder: each appends one packet to out; -1 if out's cap is hit
 * or a field is too long ---- */

int milter_wire_put(struct buf *out, char cmd, const void *data, size_t len);
int milter_wire_optneg(struct buf *out, uint32_t version, uint32_t actions, uint32_t protocol);
/* family: 'L' unknown, '4', '6' or 'U' (unix); port in host order;
 * address omitted for 'L'. */
int milter_wire_connect(struct buf *out, const char *hostname, char family, uint16_t port,
			const char *address);
/* A command whose data is NUL-terminated strings (HELO, MAIL, RCPT:
 * the address first, then ESMTP arguments). */
int milter_wire_strings(struct buf *out, char cmd, const char *const *argv, size_t argc);
/* Macros for the command cmd: names and values in pairs. */
int milter_wire_macro(struct buf *out, char cmd, const char *const *pairs, size_t npairs);
int milter_wire_header(struct buf *out, const char *name, const char *value);

/* ---- decoder ---- */

enum milter_wire_result {
	MILTER_WIRE_MORE = 0,	    /* feed more bytes */
	MILTER_WIRE_PACKET = 1,	    /* a packet is ready in dec */
	MILTER_WIRE_TOO_BIG = -1,   /* length over MILTER_WIRE_MAX */
	MILTER_WIRE_EMPTY = -2,	    /* length 0: no command byte */
	MILTER_WIRE_BAD_REPLY = -3, /* malformed reply data */
	MILTER_WIRE_UNKNOWN = -4,   /* a reply command we do not know */
};

struct milter_wire_dec {
	uint8_t hdr[4];
	size_t hdr_have;
	uint32_t need;	/* data bytes still to read (after the command) */
	struct buf pkt; /* command byte then data, owned */
	bool ready;	/* pkt holds a whole packet (cleared by the next feed) */
};

void milter_wire_dec_init(struct milter_wire_dec *d);
void milter_wire_dec_free(struct milter_wire_dec *d);
/* Consumes up to len bytes (*used_r says how many), stopping after one
 * complete packet. A packet stays valid until the next call. */
enum milter_wire_result milter_wire_feed(struct milter_wire_dec *d, const void *p, size_t len,
					 size_t *used_r);

/* One reply, checked (pointers into the packet; valid until the next
 * feed). */
struct milter_reply {
	char cmd;
	uint32_t index;		  /* INSHEADER, CHGHEADER */
	const char *name, *value; /* header; REPLYCODE text in value;
				     QUARANTINE reason in value; SETSYMLIST
				     macros in value; CHGFROM and ADD/DELRCPT
				     address in name, arguments in value */
	const char *data;	  /* REPLBODY bytes */
	size_t len;
	uint32_t version, actions, protocol; /* OPTNEG */
	uint32_t stage;			     /* SETSYMLIST */
};

/* Checks the packet in d as a reply; 0 or MILTER_WIRE_BAD_REPLY /
 * MILTER_WIRE_UNKNOWN. */
int milter_wire_reply(const struct milter_wire_dec *d, struct milter_reply *r);

/* Whether text is an acceptable SMFIR_REPLYCODE: lines of "DDD text"
 * (last) or "DDD-text" (others) joined by CRLF, the same code on each,
 * 4xx or 5xx, an optional enhanced code "4.x.x"/"5.x.x" matching its
 * class, no bare CR or LF, no NUL. */
bool milter_wire_replycode_ok(const char *text);

const char *milter_wire_strerror(int r);

#endif
