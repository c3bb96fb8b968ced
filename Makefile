# memvisor: a thin wrapper around CMake.
#   make run                 the main job: `memvisor run` (a simulated host)
#   make test                build and run the whole test suite
#   make test SANITIZE=address,undefined    the suite under ASan + UBSan
#   make test SANITIZE=thread               the concurrent tests under TSan
#   make bench               all benchmarks -> build/bench/results.jsonl
#   make bench-ksm           page sharing against Linux KSM on real guest
#                            images (QEMU, root) -> build/bench/ksm.jsonl
#   make fuzz                the libFuzzer targets (clang), in build-fuzz/
#   make test-real           tests that boot a real Linux guest under QEMU
#   make install             library, headers, memvisor.pc, CMake package,
#                            tool and manual pages under PREFIX (/usr/local),
#                            staged under DESTDIR if set
#   make uninstall           remove what the last `make install` installed
SANITIZE ?=
comma := ,
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ifeq ($(SANITIZE),)
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
else
BUILD ?= build-$(subst $(comma),-,$(SANITIZE))
BUILD_TYPE ?= Debug
endif
TOOL = $(BUILD)/tools/memvisor
PREFIX ?= /usr/local
MANIFEST = $(BUILD)/install_manifest.txt
CTEST_ARGS = --output-on-failure -j $(JOBS)
ifeq ($(SANITIZE),thread)
CTEST_ARGS += -L concurrent
endif

.PHONY: all deps configure build run test bench bench-ksm fuzz test-real install uninstall clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DMV_SANITIZE=$(SANITIZE)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(TOOL) run

test: build
	ctest --test-dir $(BUILD) $(CTEST_ARGS)

bench: build
	@mkdir -p $(BUILD)/bench
	@: > $(BUILD)/bench/results.jsonl
	@for b in $(BUILD)/bench/bin/bench_*; do \
	  echo "# $$b" >&2; \
	  $$b | tee -a $(BUILD)/bench/results.jsonl || exit 1; \
	done
	@echo "results: $(BUILD)/bench/results.jsonl" >&2

bench-ksm: build
	@scripts/install-deps.sh real
	@mkdir -p $(BUILD)/bench
	bench/share/ksm.sh $(TOOL) $(BUILD)/bench/bin/ksm_merge | tee $(BUILD)/bench/ksm.jsonl

fuzz:
	@scripts/install-deps.sh fuzz
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMV_FUZZ=ON -DMV_SANITIZE=address,undefined
	cmake --build build-fuzz -j $(JOBS)
	@ls build-fuzz/fuzz/fuzz_* 2>/dev/null

test-real: build
	@scripts/install-deps.sh real
	tests/real/run.sh $(TOOL)

# CMake's install rules; `make uninstall` removes what the manifest names,
# under the same DESTDIR.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

uninstall:
	@DESTDIR="$(DESTDIR)" scripts/uninstall.sh $(MANIFEST)

clean:
	rm -rf build build-* 
