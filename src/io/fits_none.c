/* fits_none.c - the FITS entry points of a build without cfitsio (make NO_FITS=1, which
 * compiles this file instead of fits.c): each fails with a message saying so. */
#include "data.h"

static ds_status no_fits(const char *path)
{
    return dsi_fail(DS_ERR_ARG, "%s: deepsky was built without FITS support (NO_FITS=1); "
                    "use .npy or .csv files, or rebuild with cfitsio", path ? path : "");
}

ds_status dsi_fits_load_mem(const unsigned char *buf, size_t len, const char *path,
                            const ds_read_opts *o, ds_tensor **out)
{
    (void)buf, (void)len, (void)o;
    *out = NULL;
    return no_fits(path);
}

ds_status dsi_fits_save_image(const ds_tensor *t, const char *path, const char *header)
{
    (void)t, (void)header;
    return no_fits(path);
}

ds_status dsi_fits_save_table(const char *path, int ncols, const ds_column *cols,
                              int64_t nrows)
{
    (void)ncols, (void)nrows, (void)cols;
    return no_fits(path);
}

char *dsi_fits_columns_mem(const unsigned char *buf, size_t len, const char *path,
                           const ds_read_opts *o)
{
    (void)buf, (void)len, (void)o;
    no_fits(path);
    return NULL;
}

char *dsi_fits_header_mem(const unsigned char *buf, size_t len, const char *path,
                          const ds_read_opts *o)
{
    (void)buf, (void)len, (void)o;
    no_fits(path);
    return NULL;
}
