# Makefile - builds the library (static and shared), the command line tool, tests and examples.
#   make demo    install missing packages, build, run the demo
#   make test    install missing packages, build and run every test
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make playground / serve / test-playground   the browser playground (WebAssembly), served, tested
# Build options (each =1; docs in README's "Build, dependencies and layout"):
#   PORTABLE   x86-64 baseline plus AVX2/AVX-512 clones of the hot loops, picked at run time
#              (default: -march=native, for the machine that builds)
#   NO_FITS    without cfitsio: FITS files give "deepsky was built without FITS support"
#   NO_PLOT    without cairo: saving a figure fails the same way
#   NO_BLAS    without OpenBLAS: our own sgemm (src/blas/sgemm.c)
#   NO_OPENMP  without OpenMP: kernels on the calling thread (same results as 1 thread)
#   MPI        the command line built with OpenMPI's mpicc: `mpirun -np K deepsky train|predict`
#              (src/mpi/dist.c; the plain build compiles src/mpi/dist_none.c instead)
#   NO_MPI     make test builds no MPI tool even where mpicc exists (its tests skip)
#   NO_ONNX    without libprotobuf-c: export/import say "built without ONNX support" (the
#              default when protoc-c or libprotobuf-c is missing)
# Options are recorded in $(BUILD)/config: changing them rebuilds everything. A separate
# BUILD folder keeps several configurations side by side (make test-minimal uses build/minimal).
CC      ?= cc
ifeq ($(MPI),1)
CC      := mpicc
endif
BUILD   := build
PREFIX  ?= /usr/local
VERSION := $(shell sed -n 's/^\#define DS_VERSION "\(.*\)"/\1/p' include/deepsky.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes $(if $(CI),-Werror,)

# ---- optional parts ----
FEAT_CFLAGS :=
LIBS        :=
ifeq ($(NO_BLAS),1)
FEAT_CFLAGS += -DDS_NO_BLAS
else
LIBS        += -lopenblas
endif
ifeq ($(NO_PLOT),1)
FEAT_CFLAGS += -DDS_NO_PLOT
else
FEAT_CFLAGS += $(shell pkg-config --cflags cairo)
LIBS        += -lcairo
endif
ifeq ($(MPI),1)
FEAT_CFLAGS += -DDS_MPI
endif
ifeq ($(NO_FITS),1)
FEAT_CFLAGS += -DDS_NO_FITS
else
LIBS        += -lcfitsio
endif
# ONNX (src/onnx/): the schema src/onnx/onnx.proto compiled by protoc-c into $(BUILD)/gen.
ifeq ($(NO_ONNX),)
NO_ONNX := $(if $(and $(shell command -v protoc-c 2>/dev/null),$(shell pkg-config --exists libprotobuf-c && echo y)),0,1)
endif
ifeq ($(NO_ONNX),1)
FEAT_CFLAGS += -DDS_NO_ONNX
else
FEAT_CFLAGS += -I$(BUILD)/gen
LIBS        += -lprotobuf-c
endif
# The tests use cairo and cfitsio themselves (to decode the PNGs written, to write FITS
# files the library then reads) in every build: in a NO_PLOT or NO_FITS build those tests
# are skipped, but they are still compiled and linked.
TEST_FLAGS := $(if $(filter 1,$(NO_PLOT)),$(shell pkg-config --cflags cairo),)
TEST_LIBS  := $(if $(filter 1,$(NO_PLOT)),-lcairo,) $(if $(filter 1,$(NO_FITS)),-lcfitsio,)
# Without OpenMP, -fopenmp-simd keeps the "omp simd" loops vectorized and makes the compiler
# ignore the other omp pragmas silently (src/internal.h stands in for omp_get_thread_num & co).
ifeq ($(NO_OPENMP),1)
OMP_FLAG := -fopenmp-simd
OMP_LIBS :=
else
OMP_FLAG := -fopenmp
OMP_LIBS := -lgomp
endif
LIBS    += -lz -lm -pthread
# PORTABLE: the x86-64 baseline, with the DS_HOT functions cloned for x86-64-v3 and v4. Their
# AVX-512 clones use 256-bit vectors, as -march=native does on the AVX-512 cores GCC knows
# (512-bit ones lower the clock of many).
ifeq ($(PORTABLE),1)
ARCH    := -DDS_PORTABLE -mprefer-vector-width=256
else
ARCH    := -march=native
endif

# -fno-math-errno: no library code reads errno after a math call, and setting it keeps
# sqrtf, expf and friends out of vector loops (the optimizers ran scalar because of it).
CFLAGS_COMMON := -std=c11 $(WARN) $(OMP_FLAG) -fno-math-errno -Iinclude -D_GNU_SOURCE $(FEAT_CFLAGS)
# Built on the machine that runs it: -march=native picks up AVX2/AVX-512 where present.
CFLAGS_REL  := $(CFLAGS_COMMON) -O3 $(ARCH) -g
# The library's own objects serve both libdeepsky.a and libdeepsky.so: position-independent,
# every symbol hidden but the DS_API functions. -fno-semantic-interposition lets the library
# call its public functions directly (and inline them) instead of through the PLT.
CFLAGS_LIB  := -fPIC -fvisibility=hidden -fno-semantic-interposition -DDS_BUILDING_LIBRARY
# Tests: AddressSanitizer and UndefinedBehaviorSanitizer, and any undefined behaviour aborts
# (fails its test) instead of printing and going on. $(ARCH) as in the release build, so the
# tests run the vector paths (AVX2, AVX-512) that the machine's users run.
CFLAGS_TEST := $(CFLAGS_COMMON) $(ARCH) -O1 -g -DDS_DEBUG -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -fno-omit-frame-pointer

# The library's folders, one per concern (docs/architecture.md).
LIB_DIRS := src src/ops src/layers src/optim src/io src/plot src/net src/astro src/blas \
            src/classic src/explain src/onnx
LIB_SRC  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
ifeq ($(NO_ONNX),1)
LIB_SRC  := $(filter-out src/onnx/%,$(LIB_SRC)) src/onnx/onnx_none.c
ONNX_GEN :=
else
ONNX_GEN := $(BUILD)/gen/onnx.pb-c.h
LIB_SRC  := $(filter-out src/onnx/onnx_none.c,$(LIB_SRC)) $(BUILD)/gen/onnx.pb-c.c
endif
ifeq ($(NO_FITS),1)
LIB_SRC  := $(filter-out src/io/fits.c src/io/fits_check.c,$(LIB_SRC))
else
LIB_SRC  := $(filter-out src/io/fits_none.c,$(LIB_SRC))
endif
TEST_SRC := $(sort $(wildcard tests/*.c))
# examples/demo_common.c is no program: the galaxy demos (DEMOS) link it.
EX_COMMON := examples/demo_common.c
EX_SRC   := $(filter-out $(EX_COMMON),$(sort $(wildcard examples/*.c)))
# The command line's MPI group: src/mpi/dist.c with MPI=1, its stand-in otherwise.
CLI_SRC  := $(sort $(wildcard src/cli/*.c)) $(if $(filter 1,$(MPI)),src/mpi/dist.c,src/mpi/dist_none.c)
HDRS     := include/deepsky.h src/internal.h $(wildcard src/*/*.h) fuzz/fuzz.h Makefile \
            $(BUILD)/config $(ONNX_GEN)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/rel/%.o)
TLIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/test/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/test/%.o)
EX_BIN   := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/rel/%.o)
TCLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/test/%.o)
SO_NAME  := libdeepsky.so.$(SOMAJOR)
SO_FILE  := libdeepsky.so.$(VERSION)

# The multiply-add of our sgemm kernel may become one FMA (ISO C mode keeps them apart). The
# test build optimizes it fully too: the NO_BLAS tests spend most of their time in it.
$(BUILD)/rel/src/blas/sgemm.o: XFLAGS := -ffp-contract=fast
$(BUILD)/test/src/blas/sgemm.o: XFLAGS := -ffp-contract=fast -O3
# The same for the direct convolution's vector multiply-adds.
$(BUILD)/rel/src/ops/conv_direct.o: XFLAGS := -ffp-contract=fast
$(BUILD)/test/src/ops/conv_direct.o: XFLAGS := -ffp-contract=fast
$(LIB_OBJ): XFLAGS += $(CFLAGS_LIB)

.PHONY: all deps test test-minimal playground serve test-playground check-lib wheel install uninstall bench-allreduce bench-classic bench-sgemm bench-stream bench-cli bench-fashion check-asan check-valgrind fuzz fuzz-build fuzz-coverage demo demo-quick demo-shear demo-psf demo-uncertainty demo-generative demo-generative-quick morphology morphology-quick explain-demo example examples fashion bench bench-quick clean FORCE
all: $(BUILD)/libdeepsky.a $(BUILD)/libdeepsky.so $(BUILD)/deepsky examples

deps:
	@scripts/deps.sh

# The options this folder was built with; rewritten (and everything rebuilt) when they change.
CONFIG := CC=$(CC) PORTABLE=$(PORTABLE) NO_FITS=$(NO_FITS) NO_PLOT=$(NO_PLOT) NO_BLAS=$(NO_BLAS) NO_OPENMP=$(NO_OPENMP) MPI=$(MPI) NO_ONNX=$(NO_ONNX)
$(BUILD)/config: FORCE
	@mkdir -p $(BUILD)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(CONFIG)" ]; then echo "$(CONFIG)" > $@; fi

# The ONNX schema as C (protobuf-c's generated reader and writer), made at build time.
$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h &: src/onnx/onnx.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	@protoc-c --proto_path=src/onnx --c_out=$(BUILD)/gen src/onnx/onnx.proto

$(BUILD)/rel/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_REL) $(XFLAGS) -c $< -o $@

$(BUILD)/test/%.o: %.c $(HDRS) tests/test.h tests/spawn.h
	@mkdir -p $(dir $@)
	@echo "  CC/san  $<"
	@$(CC) $(CFLAGS_TEST) $(XFLAGS) -c $< -o $@

$(BUILD)/libdeepsky.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

# The shared library, its soname link (what programs load) and its development link (what
# -ldeepsky finds). -z defs: an unresolved symbol fails the link instead of the program.
$(BUILD)/$(SO_FILE): $(LIB_OBJ)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) -shared -Wl,-soname,$(SO_NAME) -Wl,-z,defs $^ -o $@ $(LIBS)

$(BUILD)/libdeepsky.so: $(BUILD)/$(SO_FILE)
	@ln -sf $(SO_FILE) $(BUILD)/$(SO_NAME)
	@ln -sf $(SO_NAME) $@

$(BUILD)/deepsky: $(CLI_OBJ) $(BUILD)/libdeepsky.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $(CLI_OBJ) -o $@ $(BUILD)/libdeepsky.a $(LIBS)

# The command line tool as the tests run it: with the sanitizers, so a crash on bad input
# fails a test instead of passing unseen.
$(BUILD)/deepsky-test: $(TCLI_OBJ) $(TLIB_OBJ)
	@echo "  LD/san  $@"
	@$(CC) $(CFLAGS_TEST) $^ -o $@ $(LIBS)

# The same tool with MPI for the tests of tests/test_mpi.c, where OpenMPI's mpicc exists:
# only src/mpi/dist.c differs (compiled with mpicc's flags), the rest is the test build's.
# MPI=1 builds deepsky-test itself with MPI; NO_MPI=1 or no mpicc: none (the tests skip).
MPICC_OK := $(if $(filter 1,$(NO_MPI)),,$(shell command -v mpicc 2>/dev/null))
ifeq ($(MPI),1)
MPI_TOOL := $(BUILD)/deepsky-test
else ifneq ($(MPICC_OK),)
MPI_TOOL := $(BUILD)/deepsky-test-mpi
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
$(BUILD)/test/src/mpi/dist-mpi.o: src/mpi/dist.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC/san  $< (MPI)"
	@$(CC) $(CFLAGS_TEST) -DDS_MPI $(MPI_CFLAGS) -c $< -o $@

$(BUILD)/deepsky-test-mpi: $(filter-out %/dist_none.o,$(TCLI_OBJ)) $(BUILD)/test/src/mpi/dist-mpi.o $(TLIB_OBJ)
	@echo "  LD/san  $@"
	@$(CC) $(CFLAGS_TEST) $^ -o $@ $(LIBS) $(MPI_LIBS)
else
MPI_TOOL :=
endif

# The test runner also replays the fuzz corpora (tests/test_fuzz_corpus.c) through the fuzz
# targets, which call the command line's dispatcher: its objects come in without main().
FUZZ_SRC  := fuzz/common.c fuzz/readers.c fuzz/model.c fuzz/cli.c fuzz/classic.c fuzz/onnx.c
TFUZZ_OBJ := $(FUZZ_SRC:%.c=$(BUILD)/test/%.o) $(BUILD)/test/src/cli/main-nomain.o \
             $(filter-out $(BUILD)/test/src/cli/main.o,$(TCLI_OBJ))

$(BUILD)/test/src/cli/main-nomain.o: src/cli/main.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC/san  $< (no main)"
	@$(CC) $(CFLAGS_TEST) -DDS_CLI_NO_MAIN -c $< -o $@

$(TEST_OBJ): XFLAGS := $(TEST_FLAGS)
# tests/test_oom.c fails the library's allocations one by one through these wrappers.
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=strdup,--wrap=free
$(BUILD)/run_tests: $(TLIB_OBJ) $(TEST_OBJ) $(TFUZZ_OBJ)
	@echo "  LD/san  $@"
	@$(CC) $(CFLAGS_TEST) $(WRAP_ALLOC) $^ -o $@ $(LIBS) $(TEST_LIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< -o $@ $(BUILD)/libdeepsky.a $(LIBS)

# The galaxy demos share examples/demo_common.c.
DEMOS := $(BUILD)/examples/ellipticity_demo $(BUILD)/examples/psf_demo \
         $(BUILD)/examples/uncertainty_demo $(BUILD)/examples/generative_demo
$(DEMOS): $(BUILD)/examples/%: examples/%.c $(EX_COMMON) examples/demo_common.h $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< $(EX_COMMON) -o $@ $(BUILD)/libdeepsky.a $(LIBS)

examples: $(EX_BIN)

# OpenBLAS's own threads would fight the OpenMP ones: it runs on the OpenMP pool.
# The test runner, then (unless T picks some tests) the checks of the built libraries, and the
# browser playground's (make test-playground) where Chromium is installed.
test: deps
	@$(MAKE) --no-print-directory $(BUILD)/run_tests $(BUILD)/deepsky-test $(DEMOS) $(MPI_TOOL) \
	    $(BUILD)/libdeepsky.so $(BUILD)/deepsky
	DEEPSKY=$(BUILD)/deepsky-test DEEPSKY_MPI=$(MPI_TOOL) DEEPSKY_DEMO=$(BUILD)/examples/ellipticity_demo \
	    DEEPSKY_PY_LIB=$(BUILD)/libdeepsky.so DEEPSKY_PY_CLI=$(BUILD)/deepsky \
	    DEEPSKY_PSF_DEMO=$(BUILD)/examples/psf_demo \
	    DEEPSKY_UQ_DEMO=$(BUILD)/examples/uncertainty_demo \
	    DEEPSKY_GEN_DEMO=$(BUILD)/examples/generative_demo \
	    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 $(BUILD)/run_tests $(T)
	@if [ -z "$(T)" ]; then $(MAKE) --no-print-directory check-lib; fi
	@if [ -z "$(T)" ] && [ -z "$(NO_PLAYGROUND)" ] && command -v chromium >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory test-playground; fi

# The minimal build (no cfitsio, cairo, OpenBLAS, OpenMP, MPI or protobuf-c) in its own folder, tested.
MINIMAL := NO_FITS=1 NO_PLOT=1 NO_BLAS=1 NO_OPENMP=1 NO_MPI=1 NO_ONNX=1 NO_PLAYGROUND=1
test-minimal:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/minimal $(MINIMAL) test

# The shared and static libraries as a user gets them (tests/check_lib.sh): only ds_
# symbols exported, every DS_API function defined, a program linked against the .so runs,
# and make install (PREFIX, DESTDIR) gives a deepsky.pc that builds and links a program.
check-lib: $(BUILD)/libdeepsky.a $(BUILD)/libdeepsky.so $(BUILD)/deepsky
	@tests/check_lib.sh $(BUILD)

# The Python package's wheel (python/deepsky_build.py): the portable library (PORTABLE=1
# NO_PLOT=1 NO_BLAS=1, built in build/wheel) and the tool inside, with the shared libraries
# they need beyond manylinux's list; tagged manylinux_2_N. pip install ./python builds a
# wheel of this machine's own build instead.
wheel:
	DEEPSKY_WHEEL=portable /usr/bin/python3 python/deepsky_build.py $(BUILD)/dist

# ---- install ----
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
PCDIR   ?= $(LIBDIR)/pkgconfig
# What a static link needs besides libdeepsky.a (pkg-config --static).
LIBS_PRIVATE := $(LIBS) $(OMP_LIBS)

# The tool links the static library: it runs without LD_LIBRARY_PATH wherever installed.
install: $(BUILD)/libdeepsky.a $(BUILD)/libdeepsky.so $(BUILD)/deepsky
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/deepsky.h $(DESTDIR)$(INCDIR)/deepsky.h
	install -m 644 $(BUILD)/libdeepsky.a $(DESTDIR)$(LIBDIR)/libdeepsky.a
	install -m 755 $(BUILD)/$(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SO_FILE)
	ln -sf $(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(LIBDIR)/libdeepsky.so
	install -m 755 $(BUILD)/deepsky $(DESTDIR)$(BINDIR)/deepsky
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
	    scripts/deepsky.pc.in > $(DESTDIR)$(PCDIR)/deepsky.pc

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/deepsky.h $(DESTDIR)$(LIBDIR)/libdeepsky.a \
	    $(DESTDIR)$(LIBDIR)/$(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SO_NAME) \
	    $(DESTDIR)$(LIBDIR)/libdeepsky.so $(DESTDIR)$(BINDIR)/deepsky $(DESTDIR)$(PCDIR)/deepsky.pc

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

# The demo with a high-statistics shear-bias table: 80,000 galaxies per SNR bin (~25 min).
demo-shear: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/ellipticity_demo --shear-per-bin 80000 --out out/ellipticity-shear

# Variable Moffat PSFs given to the CNN as a second input, against the same CNN without it
# and re-Gaussianization, on PSFs held out from training (out/psf/; about 25 min on 2 cores).
demo-psf: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/psf_demo --out out/psf

# Per-galaxy error bars: the ellipticity CNN with a gaussian_nll head, calibration per SNR bin
# (out/uncertainty/; up to 10 min on 2 cores).
demo-uncertainty: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/uncertainty_demo --out out/uncertainty

# Issue 17's generative checks: a denoiser against a tuned Gaussian filter, VAE and DCGAN
# samples against real stamps (KS), anomaly AUROC per type, a U-Net on blends against the
# watershed (out/generative/; about 25 min on 2 cores). The quick one runs in seconds.
demo-generative: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/generative_demo --out out/generative

demo-generative-quick: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/generative_demo --quick --out out/generative-quick

# Photometric redshifts (scripts/photoz.sh): simulated ugrizy catalogues (100,000 galaxies to
# train, 20,000 to test, i < 24), the MLP of examples/photoz.model against classic k-NN,
# sigma_NMAD, outliers, bias and figures in out/photoz/ (a few minutes on 2 cores);
# photoz-quick is the small run tests/test_photoz.c makes (a few seconds).
.PHONY: photoz photoz-quick
photoz: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	BIN=$(BUILD)/deepsky scripts/photoz.sh out/photoz

photoz-quick: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	BIN=$(BUILD)/deepsky scripts/photoz.sh --quick out/photoz-quick
# Galaxy morphology (scripts/morphology.sh): a CNN on simulated bulge + disk galaxies in g, r,
# i against logistic regression on CAS features (out/morphology/; under 10 minutes on 2
# cores); morphology-quick is its small version (seconds), run by make test.
morphology: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	BIN=$(BUILD)/deepsky scripts/morphology.sh out/morphology

morphology-quick: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	QUICK=1 BIN=$(BUILD)/deepsky scripts/morphology.sh out/morphology-quick

# What the ellipticity CNN looks at (scripts/explain_demo.sh): saliency and integrated
# gradients of galaxies at SNR 10, 20, 40, 80 and the first-layer filters, in out/explain/.
# Takes out/ellipticity/cnn.safetensors (make demo) when present, else trains a quick CNN.
# With Debian's dataset-fashion-mnist: occlusion, Grad-CAM and class visualizations of the
# Fashion-MNIST CNN too (out/fashion/cnn.safetensors, else trained 3 epochs first).
explain-demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	BIN=$(BUILD)/deepsky scripts/explain_demo.sh out/explain

# The strong-lens finder (issue 19, scripts/lenses.sh): space-like and ground-like lenses
# simulated, examples/lensfinder.model trained on each and scored as the lens-finding
# challenge was (AUROC, TPR0, TPR10, ROC curves) in out/lenses/ (under 10 minutes on 2
# cores); lenses-quick is the small run tests/test_lenses_demo.c makes.
.PHONY: lenses lenses-quick
lenses: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	BIN=$(BUILD)/deepsky scripts/lenses.sh out/lenses

lenses-quick: deps
	@$(MAKE) --no-print-directory $(BUILD)/deepsky
	BIN=$(BUILD)/deepsky scripts/lenses.sh --quick out/lenses-quick

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

# Benchmarks against the peers (bench/run.py): `make bench` writes bench/RESULTS.md and
# bench/results.csv (about 50 minutes); `make bench-quick` is a smoke test (one short round,
# every peer once) writing bench/RESULTS-quick.md. Both install Debian's python3-torch,
# python3-numpy and python3-venv when missing, and the first run makes bench/.venv and installs
# TensorFlow and JAX into it with pip (bench/requirements-peers.txt). PEERS=all adds PyTorch 2.x
# (about 3 GB of wheels); PEERS=NAME,... (of torch1.13, tf, tf-xla, jax, torch2) picks others.
PEERS ?= default
BENCH_BIN := $(BUILD)/bench/deepsky_bench
$(BENCH_BIN): bench/deepsky_bench.c $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< -o $@ $(BUILD)/libdeepsky.a $(filter-out -lopenblas,$(LIBS)) -lopenblas

bench:
	@scripts/deps.sh python3-torch python3-numpy python3-venv
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	/usr/bin/python3 bench/run.py --bin $(BENCH_BIN) --peers $(PEERS)

bench-quick:
	@scripts/deps.sh python3-torch python3-numpy python3-venv
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	/usr/bin/python3 bench/run.py --bin $(BENCH_BIN) --peers $(PEERS) --quick

# The classic methods against scikit-learn (bench/classic_bench.py): fit and predict times on
# the same data, 2 cores (taskset) and threads, as ratios; a few minutes.
bench-classic: $(BUILD)/libdeepsky.so
	@scripts/deps.sh python3-sklearn
	taskset -c 0,1 /usr/bin/python3 bench/classic_bench.py

# Time to 93% test accuracy on Fashion-MNIST: deepsky's recipe (examples/fashion_fast.model)
# against the same recipe in Keras and PyTorch (bench/fashion_time.py, bench/fashion_peer.py),
# on FASHION_THREADS cores (default 2). Uses the peers of bench/.venv (make bench makes it;
# PyTorch 2.x with PEERS=all, else Debian's 1.13). Writes bench/RESULTS-fashion.md; about
# 30 minutes.
FASHION_THREADS ?= 2
bench-fashion:
	@scripts/deps.sh dataset-fashion-mnist python3-torch python3-numpy
	@$(MAKE) --no-print-directory all
	/usr/bin/python3 bench/fashion_time.py --bin $(BUILD)/deepsky --threads $(FASHION_THREADS)

# Training on a data set twice the memory limit, streamed from .npy shards, against the same
# data in memory (bench/stream_bench.c): samples/s of each and their ratio. STREAM_ARGS
# passes options (--model, --limit-mb, --threads, --batch, --epochs, --rounds). Writes
# 2 x the limit (512 MiB by default) under /tmp and removes it; about a minute.
STREAM_BENCH := $(BUILD)/bench/stream_bench
STREAM_ARGS  ?=
$(STREAM_BENCH): bench/stream_bench.c $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< -o $@ $(BUILD)/libdeepsky.a $(LIBS)

bench-stream:
	@$(MAKE) --no-print-directory $(STREAM_BENCH)
	$(STREAM_BENCH) $(STREAM_ARGS)

# The command line against PyTorch 2.x and Keras as whole processes: one Fashion-MNIST MLP
# epoch through `deepsky train` and bench/cli_fashion_{torch,keras}.py (bench/.venv), pinned
# to the same cores at 1 and 2 threads, data cold and warm, alternating rounds; then the
# gzipped IDX loading alone (bench/cli_bench.py; CLI_ARGS passes options; a few minutes).
CLI_ARGS ?=
bench-cli:
	@$(MAKE) --no-print-directory $(BUILD)/deepsky $(BUILD)/libdeepsky.so
	/usr/bin/python3 bench/cli_bench.py --deepsky $(BUILD)/deepsky --lib $(BUILD)/libdeepsky.so $(CLI_ARGS)

# Our own sgemm (src/blas/sgemm.c) against OpenBLAS: 2048^3 and the galaxy CNN's products,
# at 1 and 2 threads (bench/sgemm_bench.c; about a minute). Links OpenBLAS in any build.
SGEMM_BENCH := $(BUILD)/bench/sgemm_bench
$(SGEMM_BENCH): bench/sgemm_bench.c $(BUILD)/libdeepsky.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) $< -o $@ $(BUILD)/libdeepsky.a $(filter-out -lopenblas,$(LIBS)) -lopenblas

bench-sgemm:
	@$(MAKE) --no-print-directory $(SGEMM_BENCH)
	$(SGEMM_BENCH)

# MPI_Allreduce time against message size (bench/allreduce_bench.c, OpenMPI's mpicc), as
# mpirun -np MPI_NP (default 2): the figures of docs/scaling.md. A few seconds.
MPI_NP ?= 2
ALLREDUCE_BENCH := $(BUILD)/bench/allreduce_bench
$(ALLREDUCE_BENCH): bench/allreduce_bench.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@mpicc -O2 $< -o $@

bench-allreduce: $(ALLREDUCE_BENCH)
	mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root,) -np $(MPI_NP) $(ALLREDUCE_BENCH)

# Fuzzing with libFuzzer (Debian's clang-14; docs/fuzzing.md). `make fuzz` runs every target
# for FUZZ_TIME seconds (default 600) on its corpus fuzz/corpus/<target>/, then merges what it
# found back into that corpus (minimized); FUZZ=npy runs one target. make test replays the
# committed corpora with gcc's sanitizers, so CI needs no clang.
FUZZ_CC      := clang-14
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_TARGETS := npy safetensors idx csv fits model cli classic onnx
FUZZ         ?= $(FUZZ_TARGETS)
FUZZ_TIME    ?= 600
FUZZ_CFLAGS  := -std=c11 $(OMP_FLAG) -fno-math-errno -Iinclude -D_GNU_SOURCE \
                $(FEAT_CFLAGS) -O1 -g -fno-omit-frame-pointer \
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
              src/cli/common.c src/cli/main.c src/classic/classic_io.c src/onnx/import.c
fuzz-coverage:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/gcov \
	    CFLAGS_TEST="$(CFLAGS_COMMON) -O0 -g --coverage" $(BUILD)/gcov/run_tests
	@find $(BUILD)/gcov -name '*.gcda' -delete
	@DEEPSKY=none $(BUILD)/gcov/run_tests fuzz_corpus | tail -1
	@scripts/fuzz_gcov.sh $(BUILD)/gcov/test $(FUZZ_FILES)

clean:
	rm -rf $(BUILD)

# ---- fuzz dictionaries ----
# fuzz/dict/*.dict are generated from the tables of the model-file parser and of the command
# line (fuzz/dict.c): `make fuzz-dict` rewrites them, and make test fails when the committed
# ones differ (tests/test_fuzz_dict.c runs the same generator inside the test runner).
DICT_GEN := $(BUILD)/dict/gen_dict
$(BUILD)/run_tests: $(BUILD)/test/fuzz/dict.o
$(BUILD)/test/fuzz/dict.o $(BUILD)/test/fuzz/gen_dict.o $(BUILD)/test/tests/test_fuzz_dict.o: fuzz/dict.h
$(DICT_GEN): $(BUILD)/test/fuzz/gen_dict.o $(BUILD)/test/fuzz/dict.o $(TLIB_OBJ) \
             $(filter-out $(BUILD)/test/src/cli/main.o,$(TCLI_OBJ)) $(BUILD)/test/src/cli/main-nomain.o
	@mkdir -p $(dir $@)
	@echo "  LD/san  $@"
	@$(CC) $(CFLAGS_TEST) $^ -o $@ $(LIBS)

.PHONY: fuzz-dict
fuzz-dict: $(DICT_GEN)
	$(DICT_GEN) fuzz/dict

# ---- the browser playground (playground/, issue 22) ----
# The library in its minimal configuration (no cfitsio, cairo, OpenBLAS, OpenMP, protobuf-c,
# and no zlib: DS_NO_ZLIB), our own sgemm vectorized with WASM SIMD, and playground/engine.c
# (the page's C API) compiled by Debian's emscripten into $(BUILD)/playground/engine.{js,wasm},
# with the page's static files beside them. `make serve` serves that folder on localhost.
EMCC      ?= emcc
PG_OUT    := $(BUILD)/playground
PG_LIBSRC := $(filter-out src/onnx/% src/io/fits.c src/io/fits_check.c,\
               $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))) src/onnx/onnx_none.c
PG_OBJ    := $(PG_LIBSRC:%.c=$(BUILD)/wasm/%.o) $(BUILD)/wasm/playground/engine.o
# (clang's -Wunneeded-internal-declaration: plot.c's palette, only sized without cairo; -Wpass-failed:
# an "omp simd" loop clang leaves scalar, as gcc does silently)
PG_CFLAGS := -std=c11 $(WARN) -Wno-unneeded-internal-declaration -Wno-pass-failed -O3 -msimd128 -fopenmp-simd -fno-math-errno -Iinclude \
             -D_GNU_SOURCE -DDS_NO_FITS -DDS_NO_PLOT -DDS_NO_BLAS -DDS_NO_ONNX -DDS_NO_ZLIB
PG_FUNCS  := $(patsubst %,_%,$(sort $(shell grep -o 'pg_[a-z_]*' playground/engine.h)) malloc free)
comma     := ,
empty     :=
PG_EXPORTS := $(subst $(empty) $(empty),$(comma),$(PG_FUNCS))
PG_STATIC := $(wildcard playground/web/*)
PG_PORT   ?= 8000

$(BUILD)/wasm/%.o: %.c include/deepsky.h src/internal.h $(wildcard src/*/*.h) playground/engine.h
	@mkdir -p $(dir $@)
	@echo "  EMCC    $<"
	@$(EMCC) $(PG_CFLAGS) $(PG_XFLAGS) -c $< -o $@

# The Winograd convolutions take clang minutes at -O3 for WASM; the page's nets have none.
$(BUILD)/wasm/src/ops/conv_winograd.o: PG_XFLAGS := -O1

# NODE_PATH: Debian's emscripten runs its JavaScript tools with Debian's node-acorn, in
# /usr/share/nodejs, where a Node.js from elsewhere (NodeSource) does not look.
$(PG_OUT)/engine.js: $(PG_OBJ)
	@mkdir -p $(PG_OUT)
	@echo "  EMLD    $@"
	@NODE_PATH=/usr/share/nodejs $(EMCC) -O3 -msimd128 $^ -o $@ -sMODULARIZE=1 -sEXPORT_NAME=createEngine \
	    -sALLOW_MEMORY_GROWTH=1 -sENVIRONMENT=web,worker,node -sEXPORTED_FUNCTIONS=$(PG_EXPORTS) \
	    -sEXPORTED_RUNTIME_METHODS=ccall,cwrap,UTF8ToString,stringToUTF8,lengthBytesUTF8,getValue

# The native twin of the page's engine: the same engine.c on the native library.
$(BUILD)/playground-native: playground/native.c playground/engine.c playground/engine.h $(BUILD)/libdeepsky.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_REL) -Iplayground playground/native.c playground/engine.c -o $@ $(BUILD)/libdeepsky.a $(LIBS)

playground:
	@scripts/deps.sh --playground
	@$(MAKE) --no-print-directory $(PG_OUT)/engine.js
	@cp $(PG_STATIC) $(PG_OUT)/
	@echo "playground: $(PG_OUT)/index.html (make serve: http://localhost:$(PG_PORT)/)"

serve: playground
	cd $(PG_OUT) && python3 -m http.server $(PG_PORT) --bind 127.0.0.1

# The page in a headless Chromium (playground/test/run.js, puppeteer-core from
# playground/package-lock.json driving /usr/bin/chromium): see README's "The browser playground".
# SHOTS=docs also writes the README's screenshots (docs/playground.png, playground-phone.png).
# npm ci only when playground/node_modules lacks the pinned puppeteer-core.
export PG_PINNED := const p = require("./playground/package.json"), v = p.devDependencies["puppeteer-core"]; process.exit(require("./playground/node_modules/puppeteer-core/package.json").version === v ? 0 : 1)
test-playground: playground
	@$(MAKE) --no-print-directory $(BUILD)/playground-native $(BUILD)/deepsky
	@if ! node -e "$$PG_PINNED" 2>/dev/null && \
	    ! (cd playground && npm ci --no-audit --no-fund --loglevel=error); then \
	    echo "skip  test-playground: npm ci could not install puppeteer-core (no npm registry?)"; \
	    echo "test-playground: 0 passed, 0 failed, 1 skipped"; \
	else node playground/test/run.js --out $(PG_OUT) --native $(BUILD)/playground-native \
	    --cli $(BUILD)/deepsky $(if $(SHOTS),--shots $(SHOTS)); fi
