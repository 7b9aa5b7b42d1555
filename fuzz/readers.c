/* readers.c - fuzz targets for the data and weight readers: .npy, safetensors, IDX, CSV and
 * FITS, each through the public loader a user calls (ds_array_load, ds_safetensors_load).
 * Inputs are file bytes; for IDX, CSV and FITS the first byte picks reader options
 * (gzip or not, a column list, an HDU) so those paths are fuzzed too. Whatever loads is
 * checked for consistency: the tensor's shape matches its element count. */
#include "fuzz.h"

#include "deepsky.h"

#include <stdlib.h>
#include <string.h>

static void check_tensor(ds_tensor *t)
{
    if (!t)
        return;
    int64_t n = 1;
    for (int i = 0; i < ds_tensor_ndim(t); i++)
        n *= ds_tensor_shape(t)[i];
    if (n != ds_tensor_numel(t))
        abort();
    /* read every element: ASan catches a buffer shorter than the shape says */
    volatile float s = 0;
    const float *d = ds_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        s += d[i];
    (void)s;
}

static void load_array(const char *path, const char *columns, int hdu)
{
    if (!path)
        return;
    ds_read_opts o = {.columns = columns, .hdu = hdu};
    ds_tensor *t = NULL;
    if (ds_array_load(path, &o, &t) == DS_OK) {
        check_tensor(t);
        ds_tensor_check_finite(t, path);
    }
    ds_tensor_free(t);
}

int fuzz_npy(const uint8_t *data, size_t size)
{
    fuzz_setup();
    load_array(fuzz_file(data, size, ".npy"), NULL, 0);
    return 0;
}

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    fuzz_setup();
    const char *path = fuzz_file(data, size, ".safetensors");
    ds_tensor_set *s = NULL;
    if (path && ds_safetensors_load(path, &s) == DS_OK) {
        for (int i = 0; i < ds_tensor_set_count(s); i++) {
            if (!ds_tensor_set_name(s, i))
                abort();
            check_tensor(ds_tensor_set_at(s, i));
        }
        ds_tensor_set_meta_get(s, "format");
    }
    ds_tensor_set_free(s);
    return 0;
}

int fuzz_idx(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    /* bit 0: a gzip name (zlib reads plain bytes through it too) */
    load_array(fuzz_file(data + 1, size - 1, data[0] & 1 ? "-idx3-ubyte.gz" : "-idx3-ubyte"),
               NULL, 0);
    return 0;
}

static const char *const column_lists[] = {NULL, "1", "2,1", "a,b", "x", "3,3", "0", "b,A,1"};

int fuzz_csv(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    const char *path = fuzz_file(data + 1, size - 1, ".csv");
    load_array(path, column_lists[data[0] & 7], 0);
    if (path && data[0] & 8) {
        ds_read_opts o = {0};
        free(ds_table_columns(path, &o));
    }
    return 0;
}

int fuzz_fits(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    /* bits 0-2: a column list; bits 3-4: HDU 0 (first with data) to 3; bit 5: gzip name */
    int hdu = (data[0] >> 3) & 3;
    const char *path = fuzz_file(data + 1, size - 1, data[0] & 32 ? ".fits.gz" : ".fits");
    load_array(path, column_lists[data[0] & 7], hdu);
    if (path && data[0] & 64) {
        ds_read_opts o = {.hdu = hdu};
        free(ds_table_columns(path, &o));
    }
    return 0;
}
