# make demo: install what is missing, build, train on Fashion-MNIST (fmnist-seen), print the metrics.
# make test: install what is missing, build everything, run the whole test suite through CTest.
# make demo builds only the command-line tool; make test also the tests, benchmarks and examples.
BUILD ?= build
JOBS ?= $(shell nproc)
RUN ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: all deps build demo test bench clean

all: build

deps:
	scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target siamese_cli
	$(BUILD)/siamese train --out $(RUN)
	$(BUILD)/siamese eval --model $(RUN)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/siamese_bench --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true

clean:
	rm -rf $(BUILD)
