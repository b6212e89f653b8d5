/*
 * fuzz_imap_parser.c - libFuzzer target for protocols/imap. The input's
 * first two bytes pick the limits and the read sizes; the rest is the
 * client's byte stream, cut into lines and literals as core/conn would
 * and fed through one parser command after command (arena cleared and
 * parser reset after each; after BAD/TOOBIG the announced bytes are
 * skipped, as a session does). Checked: no crash, every result is one of
 * the documented ones, a DONE command respects every limit (depth,
 * argument count, literal sizes, NUL only in literal8, strings
 * NUL-terminated). Also modified UTF-7: any valid UTF-8 survives
 * utf8 -> utf7 -> utf8, and any input the decoder accepts re-encodes to
 * exactly itself (the canonical form is unique).
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_imap_parser.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "protocols/imap/imap_parser.h"
#include "protocols/imap/imap_utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINE 8192

static size_t
check_args(const struct imap_parser_limits *lim, const struct imap_arg *args, size_t count,
	   unsigned depth)
{
	size_t total = count;

	assert(depth <= lim->max_depth);
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		if (a->type == IMAP_ARG_LIST) {
			assert(depth < lim->max_depth);
			assert((a->count == 0) == (a->list == NULL));
			total += check_args(lim, a->list, a->count, depth + 1);
			continue;
		}
		assert(a->str != NULL && a->str[a->len] == '\0');
		switch (a->type) {
		case IMAP_ARG_ATOM:
		case IMAP_ARG_NIL:
			assert(a->len > 0 && memchr(a->str, '\0', a->len) == NULL);
			/* spaces only inside a bracketed section */
			if (memchr(a->str, ' ', a->len) != NULL)
				assert(memchr(a->str, '[', a->len) != NULL);
			break;
		case IMAP_ARG_STRING:
			assert(memchr(a->str, '\0', a->len) == NULL);
			break;
		case IMAP_ARG_LITERAL:
			assert(a->len <= lim->max_message_literal);
			if (!a->binary)
				assert(memchr(a->str, '\0', a->len) == NULL);
			break;
		default:
			assert(0);
		}
	}
	return total;
}

static void
check_command(const struct imap_parser_limits *lim, const struct imap_cmd *cmd)
{
	assert(cmd != NULL && cmd->tag != NULL && cmd->tag[0] != '\0' && cmd->name != NULL);
	for (const char *s = cmd->name; *s != '\0'; s++)
		assert(!(*s >= 'a' && *s <= 'z'));
	assert(check_args(lim, cmd->args, cmd->count, 0) <= lim->max_args);
}

static void
fuzz_parser(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	struct imap_parser_limits lim = {
	    .max_literal = 64,
	    .max_message_literal = 4096 + 64,
	    .max_literal_total = (data[0] & 1) ? 5000 : 0,
	    .max_depth = 1 + (data[0] >> 1 & 3),
	    .max_args = 8 + (data[0] >> 3 & 15),
	    .literal_minus = (data[0] & 0x80) != 0,
	    .allow_trailing_space = (data[0] & 0x40) != 0,
	};
	uint32_t rnd = data[1] * 2654435761u + 1;
	const char *p = (const char *)data + 2;
	size_t len = size - 2, i = 0;
	struct arena *a = arena_new(0);
	struct imap_parser *ps = imap_parser_new(a, &lim);
	struct buf line;
	uint64_t raw_left = 0, skip_left = 0;

	buf_init(&line, MAX_LINE);
	while (i < len) {
		/* one "read" of a pseudo-random size */
		rnd = rnd * 1103515245u + 12345u;
		size_t chunk = 1 + (rnd >> 16) % 37;
		size_t end = len - i < chunk ? len : i + chunk;
		while (i < end) {
			if (skip_left > 0) {
				size_t n = end - i < skip_left ? end - i : (size_t)skip_left;
				skip_left -= n;
				i += n;
				continue;
			}
			int r;
			if (raw_left > 0) {
				size_t n = end - i < raw_left ? end - i : (size_t)raw_left;
				size_t used;
				r = imap_parser_feed_literal(ps, p + i, n, &used);
				assert(used == n);
				raw_left -= n;
				i += n;
				if (raw_left > 0) {
					assert(r == IMAP_PARSE_NEED_MORE);
					continue;
				}
				assert(r == IMAP_PARSE_LINE_NEXT || r == IMAP_PARSE_BAD);
				if (r == IMAP_PARSE_LINE_NEXT)
					continue;
			} else {
				const char *nl = memchr(p + i, '\n', end - i);
				size_t n = nl != NULL ? (size_t)(nl - (p + i)) : end - i;
				if (buf_append(&line, p + i, n) < 0) {
					/* conn drops an over-long line; so do we */
					buf_reset(&line);
				}
				i += n;
				if (nl == NULL)
					continue;
				i++;
				size_t l = line.len;
				if (l > 0 && line.data[l - 1] == '\r')
					l--;
				char *copy = malloc(l + 1);
				memcpy(copy, buf_cstr(&line), l);
				copy[l] = '\0';
				buf_reset(&line);
				r = imap_parser_feed_line(ps, copy, l);
				free(copy);
				if (r == IMAP_PARSE_LITERAL) {
					uint64_t lsize;
					bool nonsync, binary;
					imap_parser_literal(ps, &lsize, &nonsync, &binary);
					assert(lsize <= lim.max_message_literal);
					if (nonsync && lim.literal_minus)
						assert(lsize <= IMAP_LITERAL_MINUS_MAX);
					raw_left = lsize;
					if (lsize > 0)
						continue;
					size_t used;
					r = imap_parser_feed_literal(ps, NULL, 0, &used);
				}
				if (r == IMAP_PARSE_LINE_NEXT)
					continue;
			}
			assert(r == IMAP_PARSE_DONE || r == IMAP_PARSE_BAD ||
			       r == IMAP_PARSE_TOOBIG);
			if (r == IMAP_PARSE_DONE) {
				check_command(&lim, imap_parser_command(ps));
				assert(imap_parser_skip(ps) == 0);
			} else {
				assert(imap_parser_command(ps) == NULL);
				assert(imap_parser_error(ps)[0] != '\0');
				skip_left = imap_parser_skip(ps);
				if (skip_left == IMAP_PARSER_SKIP_CLOSE)
					i = end = len; /* the session would close */
			}
			raw_left = 0;
			arena_clear(a);
			imap_parser_reset(ps);
		}
	}
	buf_free(&line);
	imap_parser_destroy(&ps);
	arena_destroy(&a);
}

static void
fuzz_utf7(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct buf a, b;

	buf_init(&a, 16 * size + 16);
	buf_init(&b, 16 * size + 16);
	/* decode accepted => re-encoding gives the input back */
	if (imap_utf7_to_utf8(s, size, &a) == 0) {
		assert(imap_utf7_is_valid(s, size));
		assert(imap_utf8_to_utf7(a.data, a.len, &b) == 0);
		assert(b.len == size && (size == 0 || memcmp(b.data, s, size) == 0));
	} else {
		assert(!imap_utf7_is_valid(s, size));
		assert(a.len == 0);
	}
	/* valid UTF-8 without NUL => it survives the round trip */
	bool valid = true;
	for (size_t i = 0; i < size;) {
		uint32_t cp;
		size_t n = imap_utf8_decode(s + i, size - i, &cp);
		if (n == 0 || cp == 0) {
			valid = false;
			break;
		}
		i += n;
	}
	buf_reset(&a);
	buf_reset(&b);
	int r = imap_utf8_to_utf7(s, size, &a);
	assert((r == 0) == valid);
	if (valid) {
		assert(imap_utf7_is_valid(a.data, a.len));
		assert(imap_utf7_to_utf8(a.data, a.len, &b) == 0);
		assert(b.len == size && (size == 0 || memcmp(b.data, s, size) == 0));
	}
	buf_free(&a);
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parser(data, size);
	fuzz_utf7(data, size);
	return 0;
}
