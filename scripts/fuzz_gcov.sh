#!/bin/sh
# fuzz_gcov.sh OBJDIR FILE... - line coverage of each source FILE's reading functions from the
# .gcda data of a --coverage build in OBJDIR (make fuzz-coverage). Writers (functions named
# *save*, *write*, *put*, *wfile*, and the FITS and safetensors writers' helpers make_header,
# finish, gzip_file, create_tmp) are left out: the fuzz targets only read.
objdir=$1
shift
for f in "$@"; do
    o=$objdir/${f%.c}.o
    [ "$f" = src/cli/main.c ] && o=$objdir/src/cli/main-nomain.o
    gcov -f -n -o "$o" "$f" 2>/dev/null | awk -v file="$f" '
        /^Function / { fn = $2; next }
        /^File / { fn = ""; next }
        /^Lines executed:/ && fn != "" {
            split($0, a, /[:% ]+/)   # Lines executed P of N
            if (fn ~ /save|write|put|wfile|make_header|finish|gzip_file|create_tmp/) next
            hit += a[3] * a[5] / 100; tot += a[5]; fn = ""
        }
        END { printf "%s: %d of %d lines (%.0f%%) in its reading functions\n", file, hit + 0.5, tot, tot ? 100 * hit / tot : 0 }'
done
