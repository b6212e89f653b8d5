# The README's two commands: `make demo` and `make test`. Both install what
# is missing (Debian packages), configure and build first.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build build-asan test test-fast test-asan demo bench bench-imap bench-smtp fuzz clean format

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test, in the normal build and again under ASan+UBSan.
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@sh scripts/demo.sh $(BUILD)/ternd

bench: build
	/usr/bin/python3 tests/bench/smtp_delivery.py --ternd $(BUILD)/ternd -c 1,10,50 --modes yes
	/usr/bin/python3 tests/bench/smtp_delivery.py --ternd $(BUILD)/ternd -c 50 --modes no
	$(BUILD)/bench_store

# IMAP benches, Tern side by side with a private Dovecot (installed by the
# bench-only deps script, never started as a system service); figures go to
# docs/performance.md "## IMAP". fs.inotify.max_user_instances is raised for
# the idle bench only (Dovecot needs one per imap process) and restored.
bench-imap: build
	@sh scripts/install-bench-deps.sh
	/usr/bin/python3 tests/bench/imap_load.py --ternd $(BUILD)/ternd --server tern,dovecot -c 10,100 -t 30
	/usr/bin/python3 tests/bench/imap_idle_mem.py --ternd $(BUILD)/ternd \
		--server tern,dovecot,dovecot-hibernate -n 1000,10000 --inotify-instances 32768
	/usr/bin/python3 tests/bench/imap_search.py --ternd $(BUILD)/ternd --server tern,dovecot
	/usr/bin/python3 tests/bench/imap_sort.py --ternd $(BUILD)/ternd --server tern,dovecot -n 10000,100000

# SMTP side by side with a private Postfix (installed by the bench-only
# deps script, never started as a system service): inbound durable
# deliveries and outbound relaying to Postfix's smtp-sink on loopback, 50
# connections, two passes; figures go to docs/performance.md "### Inbound
# and outbound against Postfix".
bench-smtp: build
	@sh scripts/install-bench-deps.sh
	/usr/bin/python3 tests/bench/smtp_compare.py --ternd $(BUILD)/ternd -n 2000 -c 50 --passes 2

# Every fuzz target (clang, libFuzzer), each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: deps
	@command -v clang >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y clang
	@CC=clang cmake -S . -B build-fuzz -DTERN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@for f in build-fuzz/fuzz_*; do \
		n=$$(basename $$f); mkdir -p build-fuzz/corpus/$$n; \
		echo "== $$n"; \
		$$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$n > build-fuzz/$$n.log 2>&1 \
			|| { tail -30 build-fuzz/$$n.log; exit 1; }; tail -1 build-fuzz/$$n.log; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
