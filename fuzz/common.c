/* common.c - shared set-up of the fuzz targets: scratch files and process settings. */
#include "fuzz.h"

#include "deepsky.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_setup(void)
{
    ds_set_num_threads(1);
    /* a header or model that asks for more is refused with a message, like any oversized
     * request; libFuzzer's own -malloc_limit_mb stays above this */
    ds_set_memory_limit((size_t)256 << 20);
}

const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[512];
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    snprintf(path, sizeof path, "%s/deepsky-fuzz-%ld%s", dir, (long)getpid(), suffix);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return NULL;
    size_t w = size ? fwrite(data, 1, size, fp) : 0;
    if (fclose(fp) != 0 || w != size) {
        remove(path);
        return NULL;
    }
    return path;
}
