#!/bin/sh
# fuzz.sh BINARY CORPUS SECONDS - runs one libFuzzer target for SECONDS on CORPUS (with the
# target's dictionary, fuzz/dict/<target>.dict, if there is one), then merges whatever new
# coverage it found back into CORPUS, minimized. A crash, leak, timeout or sanitizer report
# stops the run with the reproducer saved as fuzz/crash-<target>-*; the log goes to
# build/fuzz/<target>.log and its last lines give executions and coverage.
set -e
bin=$1 corpus=$2 secs=$3
name=$(basename "$bin" | sed 's/^fuzz_//')
dict=fuzz/dict/$name.dict
log=$(dirname "$bin")/$name.log
new=$(mktemp -d)
mkdir -p "$corpus"
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=8192 -print_final_stats=1 -close_fd_mask=3 -artifact_prefix=fuzz/crash-$name-
[ -f "$dict" ] && set -- "$@" -dict="$dict"
echo "fuzz: $name for $secs s (log: $log)"
if ! OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=allocator_may_return_null=1 "$bin" "$@" "$new" "$corpus" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $name FAILED (reproducer: fuzz/crash-$name-*)"
    exit 1
fi
grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1
grep -E '^stat::' "$log" | tr '\n' ' '; echo
# keep the corpus minimal: the union of old and new inputs, reduced to what adds coverage
merged=$(mktemp -d)
ASAN_OPTIONS=allocator_may_return_null=1 OPENBLAS_NUM_THREADS=1 "$bin" -merge=1 -close_fd_mask=3 -max_len=8192 "$merged" "$corpus" "$new" \
    >>"$log" 2>&1
rm -rf "$corpus" "$new"
mv "$merged" "$corpus"
echo "fuzz: $name corpus now $(ls "$corpus" | wc -l) inputs, $(du -sk "$corpus" | cut -f1) KB"
