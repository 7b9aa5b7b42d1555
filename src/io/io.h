/* io.h - helpers shared by the file-format readers and writers. */
#ifndef DS_IO_H
#define DS_IO_H

#include "../internal.h"

/* A file written under a temporary name and renamed into place by dsi_wfile_commit. */
typedef struct {
    FILE *fp;
    const char *path;
    char tmp[4096];
} dsi_wfile;
ds_status dsi_wfile_open(dsi_wfile *w, const char *path);
/* Flushes, syncs and renames; on any failure removes the temporary file. */
ds_status dsi_wfile_commit(dsi_wfile *w);
/* Closes and removes the temporary file (the final path is untouched). */
void      dsi_wfile_abort(dsi_wfile *w);

/* Opens path to look: its size in bytes and whether it starts with the gzip magic
 * (DS_ERR_IO naming the file if it cannot be opened). */
ds_status dsi_probe_file(const char *path, int64_t *size, bool *gzipped);

/* Reads a whole file (NUL-terminated for convenience); the caller frees *data. */
ds_status dsi_read_file(const char *path, unsigned char **data, size_t *size);

/* Checks the card syntax of every FITS header in fp (fits_check.c) before cfitsio reads it;
 * DS_ERR_FORMAT naming the HDU and the card. */
ds_status dsi_fits_check(FILE *fp, const char *path);

#endif
