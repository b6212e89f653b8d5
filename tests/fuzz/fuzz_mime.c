/*
 * fuzz_mime.c - libFuzzer target for storage/mime*.c: arbitrary bytes,
 * fed in chunk sizes taken from the input, must parse without crashing,
 * give exactly the tree of a whole-message parse, render BODYSTRUCTURE,
 * BODY and ENVELOPE, and round-trip through the stored encoding with every
 * section it resolves lying inside the message. Damaged encodings must be
 * rejected or stay in bounds.
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_mime.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "storage/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (64u * 1024u * 1024u)

static void
check_sections(const struct buf *enc, uint64_t msg_size)
{
	static const char *const secs[] = {"",	  "1",	 "2",	  "1.1", "1.2",
					   "2.1", "2.2", "1.1.1", "3",	 "1.1.1.1"};
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		struct mime_section s;
		int rc = mime_section_find(enc->data, enc->len, secs[i], &s);
		assert(rc == 0 || rc == MIME_ERR_NOT_FOUND);
		if (rc != 0)
			continue;
		assert(s.hdr_off <= msg_size && s.hdr_len <= msg_size - s.hdr_off);
		assert(s.body_off <= msg_size && s.body_len <= msg_size - s.body_off);
		if (s.has_message) {
			assert(s.msg_hdr_off + s.msg_hdr_len <= msg_size);
			assert(s.msg_body_off + s.msg_body_len <= msg_size);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	/* the first two bytes pick the limits and the chunking */
	struct mime_limits lim;
	mime_limits_default(&lim);
	if (data[0] & 1) {
		lim.max_depth = data[0] >> 4;
		lim.max_parts = (unsigned)(data[0] >> 1) + 1;
		lim.max_header = (size_t)data[1] * 4;
		lim.max_header_total = (size_t)data[1] * 16;
	}
	unsigned seed = data[1];
	const char *msg = (const char *)data + 2;
	size_t len = size - 2;

	struct arena *a = arena_new(0);
	struct mime_part *whole, *chunked;
	mime_parse(a, &lim, msg, len, &whole);

	struct mime_parser *p = mime_parser_new(a, &lim);
	size_t off = 0;
	while (off < len) {
		seed = seed * 1103515245u + 12345u;
		size_t chunk = (size_t)(seed >> 16) % 97 + 1;
		if (chunk > len - off)
			chunk = len - off;
		mime_parser_feed(p, msg + off, chunk);
		off += chunk;
	}
	mime_parser_finish(p, &chunked);
	assert(whole->hdr_len + whole->body_len == len);

	struct buf bs, body, env, enc, enc2;
	buf_init(&bs, OUT_MAX);
	buf_init(&body, OUT_MAX);
	buf_init(&env, OUT_MAX);
	buf_init(&enc, OUT_MAX);
	buf_init(&enc2, OUT_MAX);
	assert(mime_render_bodystructure(whole, true, &bs) == 0);
	assert(mime_render_bodystructure(whole, false, &body) == 0);
	assert(mime_render_envelope(whole, &env) == 0);
	assert(mime_encode(whole, &enc) == 0);
	assert(mime_encode(chunked, &enc2) == 0);
	/* chunking never changes the result */
	assert(enc.len == enc2.len && memcmp(enc.data, enc2.data, enc.len) == 0);
	assert(mime_encoded_check(enc.data, enc.len) == 0);

	const char *s;
	size_t sl;
	uint64_t msg_size;
	assert(mime_encoded_bodystructure(enc.data, enc.len, &s, &sl) == 0);
	assert(sl == bs.len && memcmp(s, bs.data, sl) == 0);
	assert(mime_encoded_body(enc.data, enc.len, &s, &sl) == 0);
	assert(sl == body.len && memcmp(s, body.data, sl) == 0);
	assert(mime_encoded_envelope(enc.data, enc.len, &s, &sl) == 0);
	assert(sl == env.len && memcmp(s, env.data, sl) == 0);
	assert(mime_encoded_msg_size(enc.data, enc.len, &msg_size) == 0 && msg_size == len);
	check_sections(&enc, msg_size);

	/* one damaged byte: rejected, or still in bounds */
	if (enc.len > 0) {
		size_t at = (size_t)seed % enc.len;
		enc.data[at] = (char)(enc.data[at] ^ 0x5a);
		if (mime_encoded_check(enc.data, enc.len) == 0 &&
		    mime_encoded_msg_size(enc.data, enc.len, &msg_size) == 0) {
			for (size_t i = 0; i < 4; i++) {
				struct mime_section sec;
				static const char *const secs[] = {"", "1", "2.1", "1.1"};
				if (mime_section_find(enc.data, enc.len, secs[i], &sec) == 0)
					assert(sec.body_off <= msg_size &&
					       sec.body_len <= msg_size - sec.body_off);
			}
		}
		assert(mime_encoded_check(enc.data, enc.len - 1) != 0);
	}

	buf_free(&bs);
	buf_free(&body);
	buf_free(&env);
	buf_free(&enc);
	buf_free(&enc2);
	arena_destroy(&a);
	return 0;
}
