/*
 * fuzz_linereader.c - libFuzzer target for core/linereader: arbitrary
 * bytes, split at arbitrary points, must never crash, never return a line
 * longer than the limit, and never lose track of how much was consumed.
 * Build: cmake -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang; run ./fuzz_linereader.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "core/linereader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linereader lr;
	size_t max = size > 0 ? (size_t)(data[0] % 64) + 1 : 8;

	lr_init(&lr, max);
	/* feed in chunks whose sizes come from the data itself */
	size_t off = size > 0 ? 1 : 0;
	while (off < size) {
		size_t chunk = (size_t)(data[off] % 7) + 1;
		if (chunk > size - off)
			chunk = size - off;
		size_t pos = 0;
		while (pos < chunk) {
			size_t used = 0, len = 0;
			char *line = NULL;
			enum lr_result r =
				lr_feed(&lr, (const char *)data + off + pos, chunk - pos, &used, &line, &len);
			assert(used <= chunk - pos);
			if (r == LR_LINE)
				assert(len <= max && line != NULL);
			if (used == 0)
				break;
			pos += used;
		}
		off += chunk;
	}
	lr_free(&lr);
	return 0;
}
