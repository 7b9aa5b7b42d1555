# Makefile - builds the library, the command line tool, tests and examples.
#   make demo    install missing packages, build, run the demo
#   make test    install missing packages, build and run every test
CC      ?= cc
BUILD   := build
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes $(if $(CI),-Werror,)
# -fno-math-errno: no library code reads errno after a math call, and setting it keeps
# sqrtf, expf and friends out of vector loops (the optimizers ran scalar because of it).
CFLAGS_COMMON := -std=c11 $(WARN) -fopenmp -fno-math-errno -Iinclude -D_GNU_SOURCE $(shell pkg-config --cflags cairo)
# Built on the machine that runs it: -march=native picks up AVX2/AVX-512 where present.
CFLAGS_REL  := $(CFLAGS_COMMON) -O3 -march=native -g
# Tests: AddressSanitizer and UndefinedBehaviorSanitizer, and any undefined behaviour aborts
# (fails its test) instead of printing and going on.
CFLAGS_TEST := $(CFLAGS_COMMON) -O1 -g -DDS_DEBUG -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LIBS    := -lopenblas -lcairo -lcfitsio -lz -lm

LIB_SRC  := $(sort $(wildcard src/*.c src/ops/*.c src/layers/*.c src/optim/*.c src/io/*.c src/plot/*.c src/net/*.c src/astro/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
EX_SRC   := $(sort $(wildcard examples/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
HDRS     := include/deepsky.h src/internal.h $(wildcard src/*/*.h) fuzz/fuzz.h Makefile

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/rel/%.o)
TLIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/test/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/test/%.o)
EX_BIN   := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/rel/%.o)
TCLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/test/%.o)

.PHONY: all deps test check-asan check-valgrind fuzz fuzz-build fuzz-coverage demo demo-quick example examples fashion bench bench-quick clean
all: $(BUILD)/libdeepsky.a $(BUILD)/deepsky examples

deps:
	@scripts/deps.sh

$(BUILD)/rel/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_REL) -c $< -o $@

$(BUILD)/test/%.o: %.c $(HDRS) tests/test.h tests/spawn.h
	@mkdir -p $(dir $@)
	@echo "  CC/san  $<"
	@$(CC) $(CFLAGS_TEST) -c $< -o $@

$(BUILD)/libdeepsky.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

$(BUILD)/deepsky: $(CLI_OBJ) $(BUILD)/libdeepsky.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $(CLI_OBJ) -o $@ $(BUILD)/libdeepsky.a $(LIBS)

# The command line tool as the tests run it: with the sanitizers, so a crash on bad input
# fails a test instead of passing unseen.
$(BUILD)/deepsky-test: $(TCLI_OBJ) $(TLIB_OBJ)
	@echo "  LD/san  $@"
	@$(CC) $(CFLAGS_TEST) $^ -o $@ $(LIBS)

# The test runner also replays the fuzz corpora (tests/test_fuzz_corpus.c) through the fuzz
# targets, which call the command line's dispatcher: its objects come in without main().
FUZZ_SRC  := fuzz/common.c fuzz/readers.c fuzz/model.c fuzz/cli.c
TFUZZ_OBJ := $(FUZZ_SRC:%.c=$(BUILD)/test/%.o) $(BUILD)/test/src/cli/main-nomain.o \
             $(filter-out $(BUILD)/test/src/cli/main.o,$(TCLI_OBJ))

$(BUILD)/test/src/cli/main-nomain.o: src/cli/main.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC/san  $< (no main)"
	@$(CC) $(CFLAGS_TEST) -DDS_CLI_NO_MAIN -c $< -o $@

# tests/test_oom.c fails the library's allocations one by one through these wrappers.
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=strdup,--wrap=free
$(BUILD)/run_tests: $(TLIB_OBJ) $(TEST_OBJ) $(TFUZZ_OBJ)
	@echo "  LD/san  $@"
	@$(CC) $(CFLAGS_TEST) $(WRAP_ALLOC) $^ -o $@ $(LIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< -o $@ $(BUILD)/libdeepsky.a $(LIBS)

examples: $(EX_BIN)

# OpenBLAS's own threads would fight the OpenMP ones: it runs on the OpenMP pool.
test: deps
	@$(MAKE) --no-print-directory $(BUILD)/run_tests $(BUILD)/deepsky-test $(BUILD)/examples/ellipticity_demo
	DEEPSKY=$(BUILD)/deepsky-test DEEPSKY_DEMO=$(BUILD)/examples/ellipticity_demo \
	    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 $(BUILD)/run_tests $(T)

# The whole suite under ASan and UBSan (the test build always has both; this target says so
# by name, as issue 6 asks, and fails on the first report).
check-asan: test

# The example CNN trained under valgrind memcheck: 0 errors, 0 bytes definitely lost
# (tests/valgrind.sh; a few minutes, not part of make test).
check-valgrind:
	tests/valgrind.sh

# The flagship: simulated galaxies, a CNN against adaptive moments (out/ellipticity/).
demo: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/ellipticity_demo --out out/ellipticity

demo-quick: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/ellipticity_demo --quick --out out/ellipticity-quick

# The C API in a few dozen lines: XOR, then a small regression.
example: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/xor_and_regression

# Fashion-MNIST with the two example models (Debian's dataset-fashion-mnist); prints the
# test-set accuracy of each. Outputs go to out/fashion/.
FMNIST := /usr/share/datasets/fashion-mnist
fashion:
	@scripts/deps.sh dataset-fashion-mnist
	@$(MAKE) --no-print-directory all
	@mkdir -p out/fashion
	@for m in mlp cnn; do \
	  $(BUILD)/deepsky train examples/fashion_$$m.model --scale divide:255 \
	    --data $(FMNIST)/train-images-idx3-ubyte.gz --labels $(FMNIST)/train-labels-idx1-ubyte.gz \
	    --val $(FMNIST)/t10k-images-idx3-ubyte.gz --val-labels $(FMNIST)/t10k-labels-idx1-ubyte.gz \
	    --epochs 10 --batch-size 64 --seed 1 -o out/fashion/$$m.safetensors || exit 1; \
	  $(BUILD)/deepsky eval examples/fashion_$$m.model --weights out/fashion/$$m.safetensors \
	    --data $(FMNIST)/t10k-images-idx3-ubyte.gz --labels $(FMNIST)/t10k-labels-idx1-ubyte.gz \
	    | head -3 || exit 1; \
	done

# Benchmarks against PyTorch (bench/run.py): `make bench` writes bench/RESULTS.md and
# bench/results.csv (about 10 minutes); `make bench-quick` is a smoke test (about 15 s
# per model) writing bench/RESULTS-quick.md. Both install Debian's python3-torch and
# python3-numpy when missing.
BENCH_BIN := $(BUILD)/bench/deepsky_bench
$(BENCH_BIN): bench/deepsky_bench.c $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< -o $@ $(BUILD)/libdeepsky.a $(LIBS)

bench:
	@scripts/deps.sh python3-torch python3-numpy
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	/usr/bin/python3 bench/run.py --bin $(BENCH_BIN)

bench-quick:
	@scripts/deps.sh python3-torch python3-numpy
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	/usr/bin/python3 bench/run.py --bin $(BENCH_BIN) --quick

# Fuzzing with libFuzzer (Debian's clang-14; docs/fuzzing.md). `make fuzz` runs every target
# for FUZZ_TIME seconds (default 600) on its corpus fuzz/corpus/<target>/, then merges what it
# found back into that corpus (minimized); FUZZ=npy runs one target. make test replays the
# committed corpora with gcc's sanitizers, so CI needs no clang.
FUZZ_CC      := clang-14
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_TARGETS := npy safetensors idx csv fits model cli
FUZZ         ?= $(FUZZ_TARGETS)
FUZZ_TIME    ?= 600
FUZZ_CFLAGS  := -std=c11 -fopenmp -fno-math-errno -Iinclude -D_GNU_SOURCE \
                $(shell pkg-config --cflags cairo) -O1 -g -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wno-pass-failed
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/%.o) \
                $(filter-out $(FUZZ_BUILD)/src/cli/main.o,$(CLI_SRC:%.c=$(FUZZ_BUILD)/%.o)) \
                $(FUZZ_BUILD)/src/cli/main-nomain.o

$(FUZZ_BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC/fuzz $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/src/cli/main-nomain.o: src/cli/main.c $(HDRS)
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -DDS_CLI_NO_MAIN -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: fuzz/libfuzzer.c $(FUZZ_OBJ)
	@echo "  LD/fuzz $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_TARGET=$* $^ -o $@ $(LIBS)

.SECONDARY: $(FUZZ_OBJ)
fuzz-build:
	@scripts/deps.sh clang-14 libclang-rt-14-dev libomp-14-dev
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz: fuzz-build
	@for t in $(FUZZ); do scripts/fuzz.sh $(FUZZ_BUILD)/fuzz_$$t fuzz/corpus/$$t $(FUZZ_TIME) || exit 1; done

# Line coverage of the readers by the committed corpora (gcc --coverage, gcov): what the
# replay in make test exercises.
FUZZ_FILES := src/io/npy.c src/io/safetensors.c src/io/json.c src/io/idx.c src/io/csv.c \
              src/io/fits.c src/io/fits_check.c src/io/array.c src/net/modelfile.c \
              src/cli/common.c src/cli/main.c
fuzz-coverage:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/gcov \
	    CFLAGS_TEST="$(CFLAGS_COMMON) -O0 -g --coverage" $(BUILD)/gcov/run_tests
	@find $(BUILD)/gcov -name '*.gcda' -delete
	@DEEPSKY=none $(BUILD)/gcov/run_tests fuzz_corpus | tail -1
	@scripts/fuzz_gcov.sh $(BUILD)/gcov/test $(FUZZ_FILES)

clean:
	rm -rf $(BUILD)
