/* data.h - the data-file readers and writers behind ds_array_load/save (array.c dispatches
 * by file name or format to fits.c, csv.c, idx.c and npy.c). Each reader parses a whole
 * file's bytes, buf[0..len), and names it path in messages: array.c reads a file into
 * memory first, so files and buffers go through the same code. */
#ifndef DS_IO_DATA_H
#define DS_IO_DATA_H

#include "io.h"

/* Resolves a column list spec ("b,a", "2,1", "-1", "2-5", "a-c": names case-insensitive,
 * 1-based numbers, negative numbers from the end, ranges of two of these; a name wins over a
 * number or a range) against the n column names of path. On success *idx is a malloc'd
 * array of *nsel 0-based indices in the order given. Unknown names list the available
 * columns in the message (DS_ERR_ARG). */
ds_status dsi_columns_select(const char *path, const char *spec, int n, char *const *names,
                             int **idx, int *nsel);
/* The columns spec names, as a malloc'd array of n flags. */
ds_status dsi_columns_mask(const char *path, const char *spec, int n, char *const *names,
                           bool **mask);
/* "a, b, c" (shortened with "..." past cap) for error messages. */
void      dsi_columns_list(int n, char *const *names, char *buf, size_t cap);
/* names joined by commas, malloc'd (NULL and DS_ERR_NOMEM message on failure). */
char     *dsi_columns_join(int n, char *const *names);

/* fits.c */
ds_status dsi_fits_load_mem(const unsigned char *buf, size_t len, const char *path,
                            const ds_read_opts *o, ds_tensor **out);
/* header: cards to copy (ds_fits_header's string), or NULL. */
ds_status dsi_fits_save_image(const ds_tensor *t, const char *path, const char *header);
ds_status dsi_fits_save_table(const char *path, int ncols, const ds_column *cols,
                              int64_t nrows);
char     *dsi_fits_header_mem(const unsigned char *buf, size_t len, const char *path,
                               const ds_read_opts *o);
char     *dsi_fits_columns_mem(const unsigned char *buf, size_t len, const char *path,
                               const ds_read_opts *o);

/* csv.c; sep: the separator, or 0 to take it from the first line; a 2-D t is [rows,
 * columns], a 1-D t one column. */
ds_status dsi_csv_load_mem(const unsigned char *buf, size_t len, const char *path, char sep,
                           const ds_read_opts *o, ds_tensor **out);
ds_status dsi_csv_save(const ds_tensor *t, const char *path, char sep,
                       const char *const *colnames);
ds_status dsi_csv_save_table(const char *path, char sep, int ncols, const ds_column *cols,
                             int64_t nrows);
char     *dsi_csv_columns_mem(const unsigned char *buf, size_t len, const char *path, char sep,
                              const ds_read_opts *o);

/* npy.c: what the header of a .npy file says, read without its data. */
typedef struct {
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    bool plain;           /* float32, little-endian, C order, aligned: ds_npy_load maps it */
    size_t offset;        /* of the data */
    size_t file_size;
} dsi_npy_info;
/* Reads and checks the header of the .npy file path (the data must fit in the file, else
 * the "truncated data" failure of the loader). */
ds_status dsi_npy_probe(const char *path, dsi_npy_info *info);

/* array.c: whether path names a data file by its name (.npy, FITS, CSV, TSV, IDX); the
 * checks of the read options that need no data, for a file of that name. */
bool dsi_is_data_file(const char *path);
ds_status dsi_read_opts_check(const char *path, const ds_read_opts *o);

/* idx.c */
ds_status dsi_idx_load_mem(const unsigned char *buf, size_t len, const char *path,
                           ds_tensor **out);
/* As dsi_idx_load_mem, pipelined 1: a gzipped file inflated while another thread converts,
 * 0: one thread, -1: pipelined when large and ds_get_num_threads() > 1 (the same tensor
 * and errors either way). */
ds_status dsi_idx_load_mem_mode(const unsigned char *buf, size_t size, const char *path,
                                int pipelined, ds_tensor **out);

#endif
