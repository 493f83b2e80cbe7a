# make demo: install what is missing, build, train on Fashion-MNIST (fmnist-seen), print the metrics.
# make test: install what is missing, build everything, run the whole test suite through CTest.
# make demo builds only the command-line tool; make test also the tests, benchmarks and examples.
# make test-asan: the whole suite built with clang, AddressSanitizer and UBSan (in build-asan/),
# fuzz targets included; make fuzz: the fuzzing campaigns on that build (docs/reliability.md).
BUILD ?= build
JOBS ?= $(shell nproc)
RUN ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
ASAN_BUILD ?= build-asan
# Arguments of scripts/fuzz, e.g. make fuzz FUZZ_ARGS="--cpu-seconds 60 --targets idx,pairs".
FUZZ_ARGS ?=
# Sanitizer reports end the test that triggers them; the suppressions (tests/fuzz/*.supp) name
# third-party code only, each with the reason it is there.
SANITIZER_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$(CURDIR)/tests/fuzz/ubsan.supp \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp

.PHONY: all deps build demo test test-asan fuzz bench compare distributed levers clean

all: build

deps:
	scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target siamese_cli
	$(BUILD)/siamese train --out $(RUN)
	$(BUILD)/siamese eval --model $(RUN)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -G Ninja -DSIAMESE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIAMESE_BUILD_BENCH=OFF

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS)

fuzz: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(addprefix fuzz_,idx image pairs tsv fasta csv jhf augment config model_file checkpoint index_file index_spec serve_request)
	scripts/fuzz --build $(ASAN_BUILD) $(FUZZ_ARGS)

bench: build
	$(BUILD)/siamese_bench --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true

# siamese against PyTorch in Python, alternating runs; writes docs/performance.md (~10 minutes).
compare: build
	bench/compare --build $(BUILD)

# Training in 1, 2 and 4 processes, the loopback all-reduce; writes docs/performance.md (~5 minutes).
distributed: build
	bench/distributed --build $(BUILD)

# The CPU levers (threads, inference mode, channels-last, bfloat16) and bfloat16's accuracy;
# writes docs/performance.md (~8 minutes).
levers: build
	bench/levers --build $(BUILD)

clean:
	rm -rf $(BUILD)
