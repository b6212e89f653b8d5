/*
 * fuzz_milter_wire.c - libFuzzer target for protocols/smtp/milter_wire.c
 * and the header edits of milter.c: the input is a milter's byte stream,
 * fed in uneven pieces; every packet is checked as a reply and, when it
 * is a header change, applied to a small message (never crash, never
 * grow past the cap).
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_milter_wire.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/smtp/milter.h"
#include "protocols/smtp/milter_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_wire_dec d;
	struct buf msg;
	size_t off = 0, step = 1;

	milter_wire_dec_init(&d);
	buf_init(&msg, 4096);
	buf_append_str(&msg, "From: a@b\r\nSubject: x\r\n y\r\n\r\nbody\r\n");
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		size_t used;
		int rc = milter_wire_feed(&d, data + off, n, &used);
		assert(used <= n);
		off += used;
		step = step * 3 % 17 + 1;
		if (rc < 0)
			break;
		if (rc != MILTER_WIRE_PACKET)
			continue;
		struct milter_reply r;
		if (milter_wire_reply(&d, &r) != 0)
			continue;
		if (r.cmd == SMFIR_ADDHEADER || r.cmd == SMFIR_INSHEADER ||
		    r.cmd == SMFIR_CHGHEADER)
			(void)milter_edit_header(&msg, r.cmd, r.index, r.name, r.value, false);
		else if (r.cmd == SMFIR_REPLBODY)
			(void)milter_replace_body(&msg, r.data, r.len);
		assert(msg.len <= msg.max);
	}
	buf_free(&msg);
	milter_wire_dec_free(&d);
	return 0;
}
