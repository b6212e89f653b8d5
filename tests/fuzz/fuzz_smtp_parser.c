/*
 * fuzz_smtp_parser.c - libFuzzer target for protocols/smtp: each input
 * line goes through the command parser (never crash, results inside the
 * line, limits held) and the whole input through the DATA reader (never
 * store more than the limit).
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_smtp_parser.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "protocols/smtp/smtp_data.h"
#include "protocols/smtp/smtp_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_command(const char *p, size_t len)
{
	char *line = malloc(len + 1);
	struct smtp_cmd cmd;

	memcpy(line, p, len);
	line[len] = '\0';
	if (smtp_parse_command(line, len, &cmd) == SMTP_PARSE_OK &&
	    (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT)) {
		assert(cmd.address >= line && cmd.address <= line + len);
		size_t alen = strlen(cmd.address);
		assert(alen <= SMTP_PATH_MAX);
		assert(cmd.local_len <= alen);
		if (!cmd.null_path && !cmd.postmaster) {
			assert(cmd.local_len <= SMTP_LOCAL_PART_MAX);
			assert(strlen(cmd.domain) <= SMTP_DOMAIN_MAX);
		}
		assert(cmd.nparams <= SMTP_PARAMS_MAX);
	}
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t start = 0;
	struct buf out;
	struct smtp_data d;

	buf_init(&out, 1 << 16);
	smtp_data_init(&d, &out, 200);
	for (size_t i = 0; i <= size; i++) {
		if (i < size && p[i] != '\n')
			continue;
		size_t len = i - start;
		bool cr = len > 0 && p[start + len - 1] == '\r';
		if (cr)
			len--;
		check_command(p + start, len);
		smtp_data_line(&d, p + start, len, cr);
		assert(out.len <= 200);
		start = i + 1;
	}
	buf_free(&out);
	return 0;
}
