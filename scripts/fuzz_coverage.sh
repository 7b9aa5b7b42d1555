#!/bin/sh
# fuzz_coverage.sh BINARY CORPUS FILE... - runs a fuzz target once over CORPUS and prints, for
# each source FILE (e.g. src/io/npy.c), how many of its instrumented edges (branches taken)
# the corpus reaches, from libFuzzer's -print_coverage=1 report. Writers (functions named
# *save*, *write*, *put*) are left out: the targets only read.
bin=$1 corpus=$2
shift 2
ASAN_OPTIONS=allocator_may_return_null=1 OPENBLAS_NUM_THREADS=1 "$bin" -runs=0 -close_fd_mask=3 \
    -print_coverage=1 "$corpus" 2>&1 | awk -v files="$*" '
    BEGIN { n = split(files, f, " ") }
    /^(UN)?COVERED_FUNC:/ {
        if ($6 ~ /save|write|put/) next
        split($5, e, "/")
        for (i = 1; i <= n; i++)
            if (index($7, "/" f[i] ":")) { cov[f[i]] += e[1]; tot[f[i]] += e[2] }
    }
    END {
        for (i = 1; i <= n; i++)
            printf "%s: %d of %d edges (%.0f%%)\n", f[i], cov[f[i]], tot[f[i]],
                   tot[f[i]] ? 100 * cov[f[i]] / tot[f[i]] : 0
    }'
