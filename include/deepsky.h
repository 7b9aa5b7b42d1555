/* deepsky.h - the one public header of deepsky, a deep-learning toolkit in C11.
 *
 * A network is a computational graph (ds_graph) of nodes (ds_node) built once and run many
 * times. Trainable weights live in a parameter store (ds_model) that graphs borrow; two graphs
 * built on the same model with the same layer names share their parameters (GANs,
 * autoencoders). Tensors are float32, row-major, in PyTorch's layouts: N,C,L / N,C,H,W /
 * N,C,D,H,W; dimension 0 of every graph input is the batch.
 *
 * Conventions
 *  - Functions that can fail return ds_status (or NULL) and leave a message in
 *    ds_last_error() naming the layer, op, file or shape involved. The library never aborts,
 *    exits or prints.
 *  - Graph builders (ds_dense, ds_relu, ...) return NULL on failure and accept NULL inputs,
 *    returning NULL without touching the message, so a chain can be checked once at its end:
 *    the first error wins and ds_graph_status() reports it.
 *  - Objects made by _create are released by the matching _free; _free(NULL) is a no-op.
 *    Pointers returned by accessors are borrowed.
 */
#ifndef DEEPSKY_H
#define DEEPSKY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's public functions. Built with -fvisibility=hidden, libdeepsky.so exports
 * exactly these: DS_BUILDING_LIBRARY is defined while the library itself is compiled. */
#if defined(DS_BUILDING_LIBRARY) && (defined(__GNUC__) || defined(__clang__))
#define DS_API __attribute__((visibility("default")))
#else
#define DS_API
#endif
#define DS_MAX_DIMS 6
#define DS_VERSION "0.1.0"

/* ------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------- */
typedef enum {
    DS_OK = 0,
    DS_ERR_NOMEM,   /* allocation failed */
    DS_ERR_ARG,     /* bad argument or option value */
    DS_ERR_SHAPE,   /* shapes do not fit together */
    DS_ERR_IO,      /* file cannot be opened, read or written */
    DS_ERR_FORMAT,  /* corrupt, truncated or unknown-version file */
    DS_ERR_STATE,   /* call out of order, e.g. backward before forward */
    DS_ERR_VALUE,   /* bad data value: NaN, Inf, label out of range */
} ds_status;

DS_API const char *ds_status_name(ds_status s);
/* Message of the last failure on the calling thread ("" if none). */
DS_API const char *ds_last_error(void);

/* ------------------------------------------------------------------------------------------
 * Build
 * ---------------------------------------------------------------------------------------- */
/* Whether this build of the library has an optional part: "fits" (FITS files, cfitsio),
 * "plot" (PNG figures, cairo), "blas" (OpenBLAS; else our own sgemm), "openmp" (kernels on
 * several threads), "portable" (x86-64 baseline with AVX2/AVX-512 kernels picked at run
 * time; else built for the compiling machine), "onnx" (ONNX export and import,
 * libprotobuf-c). 1 or 0; 0 for any other name. Using a part
 * that is missing fails with a message such as "deepsky was built without FITS support". */
DS_API int ds_has_feature(const char *name);
/* The version and the parts, e.g. "0.1.0 (+fits +plot +blas +openmp +onnx, native)"; a part
 * left out shows as -fits. Static storage: do not free. */
DS_API const char *ds_build_info(void);

/* ------------------------------------------------------------------------------------------
 * Threads
 *
 * The library keeps no hidden mutable state: the last error is per thread, and the few
 * process-wide settings below are atomic. What may run concurrently, from POSIX threads:
 *  - objects that share nothing: any calls on different models, graphs, nets, optimizers;
 *  - several graphs on one model used read-only: inference (ds_graph_forward in a mode
 *    without DS_BN_UPDATE) from one thread per graph, the graphs built beforehand (building
 *    a graph may add parameters and layer names to the model: build them one at a time);
 *  - file reading and writing (cfitsio is serialized inside the library).
 * What may not: two threads on one graph, net, optimizer or trainer; a training graph (or
 * ds_optim_step, or a DS_BN_UPDATE forward) on a model another graph is reading; two
 * training graphs writing one model's gradients. tests/test_threads.c checks the read-only
 * case bit for bit.
 * ds_set_num_threads sets the threads of the library's kernels for the calling thread
 * (OpenMP's per-thread setting: each POSIX thread may set its own) and OpenBLAS's count,
 * which is process-wide.
 * ---------------------------------------------------------------------------------------- */
/* Threads used by kernels and by OpenBLAS (n <= 0: all cores; a build without OpenMP runs
 * its kernels on the calling thread, and ds_get_num_threads() is then 1). Results do not
 * depend on the thread count beyond float rounding in sgemm. */
DS_API void ds_set_num_threads(int n);
DS_API int  ds_get_num_threads(void);
/* Largest single allocation the library makes for tensors, parameters, the graph's planned
 * memory, a file read whole and a gzipped FITS file decompressed, process-wide (0: the
 * machine's physical memory, the default). A request above it fails with DS_ERR_NOMEM and a
 * message giving both sizes, instead of being granted and then swapping or being killed; a
 * model file or data header asking for too much therefore gets an error. */
DS_API void   ds_set_memory_limit(size_t bytes);
DS_API size_t ds_get_memory_limit(void);
/* Convolution algorithms, process-wide. DS_CONV_AUTO (the default): 2-D 3x3 convolutions of
 * stride 1 and dilation 1 with at least 8 channels and 8 filters use Winograd F(2x2, 3x3)
 * (2.25x fewer multiplications); other 1-D and 2-D stride-1 convolutions with few taps per
 * filter (channels x kernel size <= 256, at most 64 filters) a direct kernel; the others
 * im2col + sgemm. DS_CONV_IM2COL: im2col + sgemm everywhere. They agree up to float rounding (relative differences around 1e-6). Applies
 * from the next pass. */
typedef enum { DS_CONV_AUTO = 0, DS_CONV_IM2COL } ds_conv_algo;
DS_API void         ds_set_conv_algo(ds_conv_algo a);
DS_API ds_conv_algo ds_get_conv_algo(void);

/* ------------------------------------------------------------------------------------------
 * Random numbers: xoshiro256**, seeded by splitmix64. A plain struct so it can live on the
 * stack; the same seed gives the same stream on every machine.
 * ---------------------------------------------------------------------------------------- */
typedef struct { uint64_t s[4]; } ds_rng;
DS_API void     ds_rng_seed(ds_rng *r, uint64_t seed);
DS_API uint64_t ds_rng_next(ds_rng *r);
DS_API double   ds_rng_uniform(ds_rng *r);              /* [0, 1) */
DS_API double   ds_rng_normal(ds_rng *r);               /* N(0, 1) */
/* n values of N(0, 1) into x, twice as fast as n calls of ds_rng_normal (both values of each
 * Box-Muller pair are used, so the stream differs from those calls). */
DS_API void     ds_rng_fill_normal(ds_rng *r, float *x, int64_t n);
DS_API uint64_t ds_rng_below(ds_rng *r, uint64_t n);    /* uniform integer in [0, n) */

/* ------------------------------------------------------------------------------------------
 * Tensors: standalone float32 arrays (data sets, fixtures, gradients copied out).
 * ---------------------------------------------------------------------------------------- */
typedef struct ds_tensor ds_tensor;
/* Zero-filled tensor of 0..DS_MAX_DIMS dims (0 dims: a scalar). NULL on failure. */
DS_API ds_tensor     *ds_tensor_create(int ndim, const int64_t *shape);
/* A copy of n = numel floats from data. */
DS_API ds_tensor     *ds_tensor_from(int ndim, const int64_t *shape, const float *data);
DS_API void           ds_tensor_free(ds_tensor *t);
DS_API int            ds_tensor_ndim(const ds_tensor *t);
DS_API const int64_t *ds_tensor_shape(const ds_tensor *t);
DS_API int64_t        ds_tensor_numel(const ds_tensor *t);
DS_API float         *ds_tensor_data(ds_tensor *t);
/* Changes the shape in place; the element count must stay the same. */
DS_API ds_status      ds_tensor_reshape(ds_tensor *t, int ndim, const int64_t *shape);
/* Formats a shape as "[2, 3, 4]" into buf; returns buf. */
DS_API char *ds_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* Named tensors, in insertion order: the content of a safetensors file. */
typedef struct ds_tensor_set ds_tensor_set;
DS_API ds_tensor_set *ds_tensor_set_create(void);
DS_API void           ds_tensor_set_free(ds_tensor_set *s);
/* Adds a copy of data under name (replacing a tensor of the same name). */
DS_API ds_status      ds_tensor_set_add(ds_tensor_set *s, const char *name, int ndim,
                                        const int64_t *shape, const float *data);
DS_API int            ds_tensor_set_count(const ds_tensor_set *s);
DS_API const char    *ds_tensor_set_name(const ds_tensor_set *s, int i);
DS_API ds_tensor     *ds_tensor_set_at(const ds_tensor_set *s, int i);
DS_API ds_tensor     *ds_tensor_set_get(const ds_tensor_set *s, const char *name); /* NULL if absent */
/* Optional string metadata (safetensors "__metadata__"). */
DS_API ds_status      ds_tensor_set_meta_set(ds_tensor_set *s, const char *key, const char *value);
DS_API const char    *ds_tensor_set_meta_get(const ds_tensor_set *s, const char *key);

/* Loading from memory: every loader of a file has a _mem twin that reads the same bytes from
 * buf[0..len) instead, through the same parser, with the same checks and the same results.
 * buf holds a whole file, is only read, and may be freed once the call returns. name stands
 * for the file name in error messages ("<memory>" if NULL). The _save_mem writers return a
 * file's bytes in *buf (*len bytes), malloc'd: the caller releases them with free(); on
 * failure *buf is NULL. */

/* safetensors (https://huggingface.co/docs/safetensors): F32 tensors are written; F32, F64,
 * F16, BF16 and integer tensors are read and converted to float32. Writes go to a temporary
 * file renamed into place, so a crash never leaves a half-written file. */
DS_API ds_status ds_safetensors_save(const ds_tensor_set *s, const char *path);
DS_API ds_status ds_safetensors_load(const char *path, ds_tensor_set **out);
DS_API ds_status ds_safetensors_load_mem(const void *buf, size_t len, const char *name,
                                         ds_tensor_set **out);
DS_API ds_status ds_safetensors_save_mem(const ds_tensor_set *s, void **buf, size_t *len);

/* NumPy .npy (format versions 1.0-3.0): float32, float64, uint8, int8, int16, int32, int64
 * and bool arrays, little- or big-endian, C or Fortran order, are read and converted to
 * float32; integers beyond 2^24 lose precision and are refused. Saving writes float32
 * (version 1.0) through a temporary file renamed into place. */
DS_API ds_status ds_npy_load(const char *path, ds_tensor **out);
DS_API ds_status ds_npy_save(const ds_tensor *t, const char *path);
DS_API ds_status ds_npy_load_mem(const void *buf, size_t len, const char *name, ds_tensor **out);
DS_API ds_status ds_npy_save_mem(const ds_tensor *t, void **buf, size_t *len);

/* ------------------------------------------------------------------------------------------
 * Data files: arrays in NumPy, FITS, CSV and IDX files, read into float32 tensors.
 * ---------------------------------------------------------------------------------------- */
/* CSV: what the first line is. */
typedef enum {
    DS_HEADER_AUTO = 0,   /* column names, unless its content says otherwise (see below) */
    DS_HEADER_NAMES,      /* the column names, whatever it holds */
    DS_HEADER_NONE,       /* a row of data: no line names the columns, which are "1".."N" */
} ds_header_mode;
/* How a CSV file's first line was read. */
typedef enum {
    DS_FIRST_LINE_NAMES = 0,   /* as the column names */
    DS_FIRST_LINE_DATA,        /* as the first row of data; columns named "1".."N" */
    DS_FIRST_LINE_SKIPPED,     /* as neither (e.g. "150,4,setosa,versicolor,virginica" above
                                * rows of 5 numbers): left out; the columns are named by the
                                * next line if it holds only text, else "1".."N" */
} ds_first_line;
/* What a reader found or assumed, for the caller to show (the library never prints). */
typedef struct {
    ds_first_line first_line;  /* CSV */
    int guessed;               /* 1 when DS_HEADER_AUTO decided first_line from the content
                                * and it is not DS_FIRST_LINE_NAMES */
    int hdu;                   /* FITS: the HDU read (1 = primary); 0 for other formats */
    int table;                 /* 1 when read from a table (CSV, TSV, FITS table) */
    char note[400];            /* the assumption in words, naming the file and line ("" when
                                * nothing was assumed) */
} ds_read_info;

typedef struct {
    /* Tables (FITS binary/ASCII tables, CSV): the columns to read, in that order, separated
     * by commas: names (case-insensitive), 1-based numbers, negative numbers counting from
     * the end (-1 is the last column), and ranges of any two of these, "2-5", "1--2",
     * "mag_u-mag_z" (a name that holds '-' is taken whole first). NULL or "": every numeric
     * column (CSV: every column whose first value is a number or empty). */
    const char *columns;
    /* FITS: HDU number, 1 = primary. 0: the first HDU that holds data (image or table). */
    int hdu;
    /* FITS: the HDU whose EXTNAME (or HDUNAME) is this, case-insensitive; overrides hdu.
     * NULL or "": by number. */
    const char *hdu_name;
    /* Tables, when columns is NULL or "": columns left out of every numeric column, in the
     * syntax of columns (e.g. the label columns of a file that holds data and labels). */
    const char *exclude;
    /* CSV: the first line. DS_HEADER_AUTO takes it as the column names unless it holds
     * numbers: then it is skipped if the next line holds only text (which then names the
     * columns), else it is data if it holds only numbers, or numbers and text in the same
     * columns as the next line; else (it mixes them otherwise, or its number of fields is
     * not the next line's) it is skipped. A quoted field counts as text. info says what was
     * assumed. Other formats ignore it. */
    ds_header_mode header;
    /* If non-NULL, filled on success with what was found or assumed. */
    ds_read_info *info;
} ds_read_opts;

/* Reads an array; the format comes from the file name: .npy; .fits .fit .fts (also .gz,
 * through cfitsio); .csv and .tsv (also .gz; tab-separated for .tsv); IDX (MNIST-style
 * names such as train-images-idx3-ubyte, gzipped or not). FITS images come as [NAXISn, ..., NAXIS1], i.e. samples x [channels x] H x W
 * with x = NAXIS1 the column index; tables and CSV as [rows, columns]; IDX as stored (a
 * large gzipped IDX file inflates on the calling thread while a thread of its own converts
 * the values, when ds_get_num_threads() > 1).
 * o may be NULL. Errors name the file, and the line/column/HDU where it applies. The file
 * is read whole (under ds_get_memory_limit()) and parsed as ds_array_load_mem parses bytes. */
DS_API ds_status ds_array_load(const char *path, const ds_read_opts *o, ds_tensor **out);
/* ds_array_load from a file's bytes in memory (buf, len, name: see "Loading from memory"
 * above). The format is format when given: a format name ("npy", "fits", "csv", "tsv" or
 * "idx"), an extension (".fits.gz") or a file name, matched as file names are (any case);
 * with format NULL it comes from name's extension, and with neither the call fails
 * (DS_ERR_ARG). FITS, CSV and IDX bytes may be gzipped whatever the name says: gzip is
 * recognized by its magic bytes, as for files, and FITS and CSV data decompress only up to
 * ds_get_memory_limit(). */
DS_API ds_status ds_array_load_mem(const void *buf, size_t len, const char *name,
                                   const char *format, const ds_read_opts *o, ds_tensor **out);
/* Writes by extension: .npy; .fits (one image HDU); .csv (a table of [rows, columns], or a
 * 1-D array as one column, headed by colnames or col1, col2, ...). Atomic. colnames may be
 * NULL. */
DS_API ds_status ds_array_save(const ds_tensor *t, const char *path, const char *const *colnames);
/* Writes a table with named float columns, each of nrows values: a FITS binary table
 * (.fits; E columns, in HDU 2) or CSV. Atomic. */
DS_API ds_status ds_table_save(const char *path, int ncols, const char *const *names,
                               int64_t nrows, const float *const *cols);
/* A table column for ds_table_save_columns: its name (NULL: col<j>), and either nrows floats
 * f or nrows strings s (printable ASCII; FITS: a character column as wide as the longest). */
typedef struct {
    const char *name;
    const float *f;
    const char *const *s;
} ds_column;
/* ds_table_save with columns of numbers or of text (file names, labels). Atomic. */
DS_API ds_status ds_table_save_columns(const char *path, int ncols, const ds_column *cols,
                                       int64_t nrows);
/* Column names of a table file (FITS table or CSV header): a malloc'd, comma-separated
 * string the caller frees, or NULL with a message. */
DS_API char     *ds_table_columns(const char *path, const ds_read_opts *o);
/* The same for a table file's bytes in memory; format as for ds_array_load_mem. */
DS_API char     *ds_table_columns_mem(const void *buf, size_t len, const char *name,
                                      const char *format, const ds_read_opts *o);
/* FITS: the header of the HDU ds_array_load reads with o (o->hdu, o->hdu_name, or the
 * first with data), as a malloc'd string of 80-character cards without END, which the
 * caller frees; a tile-compressed image's header reads as the image's. NULL with a
 * message on failure. */
DS_API char     *ds_fits_header(const char *path, const ds_read_opts *o);
DS_API char     *ds_fits_header_mem(const void *buf, size_t len, const char *name,
                                    const ds_read_opts *o);
/* Writes t as a float32 image in the primary HDU of a FITS file (.fits, .fit, .fts, also
 * .gz), atomically, with the cards of header (a string such as ds_fits_header's; NULL for
 * none) copied, WCS included, except those that describe the data's layout and scaling or
 * the old values: SIMPLE, XTENSION, BITPIX, NAXIS*, EXTEND, PCOUNT, GCOUNT, GROUPS, BSCALE,
 * BZERO, BLANK, BUNIT, DATAMIN, DATAMAX, CHECKSUM, DATASUM, the HDU's name and version,
 * table and tile-compression keywords. A header that is not whole cards of printable ASCII
 * is refused (DS_ERR_ARG). ds_array_save(t, path, NULL) is this with no header. */
DS_API ds_status ds_fits_save_image(const ds_tensor *t, const char *path, const char *header);
/* DS_ERR_VALUE naming what, the index and the value if any element is NaN or infinite. */
DS_API ds_status ds_tensor_check_finite(const ds_tensor *t, const char *what);

/* ------------------------------------------------------------------------------------------
 * Figures (PNG through cairo): panels with axes, ticks, labels and legends, and image
 * mosaics. Colours of successive series follow a fixed palette.
 * ---------------------------------------------------------------------------------------- */
typedef struct ds_figure ds_figure;
typedef struct ds_axes ds_axes;
/* A figure of rows x cols panels, width x height pixels in all. */
DS_API ds_figure *ds_figure_create(int rows, int cols, int width, int height);
DS_API void       ds_figure_free(ds_figure *f);
DS_API ds_status  ds_figure_title(ds_figure *f, const char *title);
/* Panel i (row-major), borrowed. */
DS_API ds_axes   *ds_figure_axes(ds_figure *f, int i);
DS_API ds_status  ds_figure_save_png(ds_figure *f, const char *path);   /* atomic */

DS_API void ds_axes_labels(ds_axes *a, const char *title, const char *xlabel, const char *ylabel);
DS_API void ds_axes_xlim(ds_axes *a, double lo, double hi);   /* default: from the data */
DS_API void ds_axes_ylim(ds_axes *a, double lo, double hi);
/* Logarithmic axes: decades labelled 10^k with minor ticks at 2..9 x 10^k (1, 2, 5 x 10^k
 * when the range spans less than two decades). Values <= 0 are not drawn; limits set with
 * xlim/ylim must then be positive. */
DS_API void ds_axes_log_x(ds_axes *a, int on);
DS_API void ds_axes_log_y(ds_axes *a, int on);
/* A polyline through n points (NaN points break the line). label NULL: not in the legend. */
DS_API ds_status ds_axes_line(ds_axes *a, int64_t n, const double *x, const double *y,
                              const char *label);
/* Markers of radius size pixels, opacity alpha in (0, 1]. */
DS_API ds_status ds_axes_scatter(ds_axes *a, int64_t n, const double *x, const double *y,
                                 const char *label, double size, double alpha);
/* Points with vertical error bars. */
DS_API ds_status ds_axes_errorbar(ds_axes *a, int64_t n, const double *x, const double *y,
                                  const double *yerr, const char *label);
/* A dashed reference line y = slope x + intercept across the panel (e.g. y = x). */
DS_API ds_status ds_axes_refline(ds_axes *a, double slope, double intercept, const char *label);
/* A grey-scale image filling the panel, rows x cols values (row 0 at the top), scaled
 * linearly between lo and hi (lo == hi: min and max), or with asinh stretch if asinh > 0
 * (the softening scale, in data units). */
DS_API ds_status ds_axes_image(ds_axes *a, int64_t rows, int64_t cols, const float *img,
                               double lo, double hi, double asinh);
/* Colour maps: grey; diverging (blue, near-white at the middle, red: for signed values,
 * ColorBrewer's RdBu reversed); sequential (viridis: for magnitudes). */
typedef enum { DS_CMAP_GREY = 0, DS_CMAP_DIVERGING, DS_CMAP_SEQUENTIAL } ds_colormap;
/* ds_axes_image through a colour map, linear between lo and hi; lo == hi: from the data
 * (min and max; -max|v| to max|v| for DS_CMAP_DIVERGING, so 0 is the middle). */
DS_API ds_status ds_axes_image_cmap(ds_axes *a, int64_t rows, int64_t cols, const float *img,
                                    double lo, double hi, ds_colormap cmap);
/* Blends a colour-mapped layer of the same size over the panel's image, opacity alpha
 * times the value's weight (t in [0, 1] for sequential, |2t - 1| for diverging, so small
 * values let the image show). lo, hi as for ds_axes_image_cmap. */
DS_API ds_status ds_axes_image_overlay(ds_axes *a, int64_t rows, int64_t cols, const float *img,
                                       double lo, double hi, ds_colormap cmap, double alpha);
/* A colour bar, with ticks, right of the panel's image: the map and range of its last
 * image or overlay. */
DS_API ds_status ds_axes_colorbar(ds_axes *a);
/* Text centred at (x, y) in data coordinates (an image's: column, row), black or white;
 * never in the legend. DS_ERR_ARG for NULL or empty text. */
DS_API ds_status ds_axes_text(ds_axes *a, double x, double y, const char *text, int white);
/* A confusion matrix as a figure (PNG at path): counts [k, k] (rows: true class, columns:
 * predicted), each cell coloured by its share of its row (the recall on the diagonal) and
 * labelled with that share and its count, each diagonal cell with its class name (names:
 * the k class names; NULL: "class 0" ...).
 * DS_ERR_ARG for k outside 2..64 or negative counts. */
DS_API ds_status ds_plot_confusion(const int64_t *counts, int k, const char *const *names,
                                   const char *title, const char *path);

/* ------------------------------------------------------------------------------------------
 * Initializers. fan_in and fan_out follow PyTorch: for a weight of shape [out, in, k...],
 * fan_in = in * prod(k), fan_out = out * prod(k) (for a transposed convolution, whose weight
 * is [in, out, k...], the same formula is applied to its shape, as PyTorch does).
 * ---------------------------------------------------------------------------------------- */
typedef enum {
    DS_INIT_DEFAULT = 0,     /* the layer's documented default */
    DS_INIT_ZEROS,
    DS_INIT_ONES,
    DS_INIT_CONSTANT,        /* a */
    DS_INIT_UNIFORM,         /* U(a, b) */
    DS_INIT_NORMAL,          /* N(mean a, std b) */
    DS_INIT_TRUNC_NORMAL,    /* N(mean a, std b) redrawn outside mean +- 2 std */
    DS_INIT_GLOROT_UNIFORM,  /* U(-l, l), l = sqrt(6 / (fan_in + fan_out)) */
    DS_INIT_GLOROT_NORMAL,   /* N(0, 2 / (fan_in + fan_out)) */
    DS_INIT_HE_UNIFORM,      /* U(-l, l), l = sqrt(6 / fan_in) */
    DS_INIT_HE_NORMAL,       /* N(0, 2 / fan_in) */
    DS_INIT_LECUN_UNIFORM,   /* U(-l, l), l = sqrt(3 / fan_in) */
    DS_INIT_LECUN_NORMAL,    /* N(0, 1 / fan_in) */
    DS_INIT_TORCH_DEFAULT,   /* PyTorch's default for linear/conv: U(-1/sqrt(fan_in), +) */
    DS_INIT_COUNT
} ds_init_kind;

typedef struct { ds_init_kind kind; float a, b; } ds_init;

DS_API const char *ds_init_name(ds_init_kind k);
/* Fills data (numel of shape) according to init; fan_in/fan_out from shape as above. */
DS_API ds_status   ds_init_fill(float *data, int ndim, const int64_t *shape, ds_init init,
                                ds_rng *rng);

/* ------------------------------------------------------------------------------------------
 * Parameter store (ds_model). Parameters are named "<layer>.weight", "<layer>.bias" and,
 * for batch norm, "<layer>.running_mean" / "<layer>.running_var" (non-trainable), in
 * PyTorch's layouts. Values and gradients each live in one contiguous block.
 * ---------------------------------------------------------------------------------------- */
typedef struct ds_model ds_model;
typedef struct ds_param ds_param;

/* seed drives the initializers, in the order the parameters are created. */
DS_API ds_model   *ds_model_create(uint64_t seed);
DS_API void        ds_model_free(ds_model *m);
DS_API int         ds_model_param_count(const ds_model *m);          /* number of tensors */
DS_API ds_param   *ds_model_param(const ds_model *m, int i);
DS_API ds_param   *ds_model_find(const ds_model *m, const char *name);  /* NULL if absent */
/* Scalars in all parameters (trainable_only: only those an optimizer updates). */
DS_API int64_t     ds_model_numel(const ds_model *m, int trainable_only);
/* The contiguous blocks (valid until the next parameter is created). Non-trainable
 * parameters have no gradient slots: grad covers trainable parameters only. Each parameter
 * starts on a 64-byte boundary, so the blocks hold zero padding between parameters: read
 * one parameter through ds_param_data / ds_param_grad, and the whole block as
 * ds_model_block_len floats (not ds_model_numel). */
DS_API float      *ds_model_data(ds_model *m);
DS_API float      *ds_model_grad(ds_model *m);
/* Floats in the value block (grad = 0) or in the gradient block (grad = 1), padding
 * included. */
DS_API int64_t     ds_model_block_len(const ds_model *m, int grad);
DS_API void        ds_model_zero_grad(ds_model *m);
/* Creates a parameter explicitly (layers do this for you). Fails if the name exists. */
DS_API ds_param   *ds_model_add_param(ds_model *m, const char *name, int ndim,
                                      const int64_t *shape, int trainable, ds_init init);
DS_API const char *ds_param_name(const ds_param *p);
DS_API int         ds_param_ndim(const ds_param *p);
DS_API const int64_t *ds_param_shape(const ds_param *p);
DS_API int64_t     ds_param_numel(const ds_param *p);
DS_API int         ds_param_trainable(const ds_param *p);
/* Borrowed. Taking the pointer tells graphs planned for inference (DS_INFER) that the
 * values may change, so they refold batch norm before their next forward: after writing
 * through a pointer taken earlier, call ds_param_data (or ds_model_data) again. */
DS_API float      *ds_param_data(ds_param *p);
DS_API float      *ds_param_grad(ds_param *p);   /* NULL for non-trainable parameters */

/* Weights as safetensors. Loading checks every name and shape against the model and fails,
 * changing nothing, with a message naming each missing, unexpected or mis-shaped tensor. */
DS_API ds_status ds_model_save_weights(const ds_model *m, const char *path);
DS_API ds_status ds_model_load_weights(ds_model *m, const char *path);
/* ds_model_load_weights from a safetensors file's bytes (see "Loading from memory"). */
DS_API ds_status ds_model_load_weights_mem(ds_model *m, const void *buf, size_t len,
                                           const char *name);
DS_API ds_status ds_model_to_set(const ds_model *m, ds_tensor_set *s);
DS_API ds_status ds_model_from_set(ds_model *m, const ds_tensor_set *s, const char *what);

/* ------------------------------------------------------------------------------------------
 * Graphs
 * ---------------------------------------------------------------------------------------- */
typedef struct ds_graph ds_graph;
typedef struct ds_node  ds_node;

/* Mode flags; combine or use the named modes. */
enum {
    DS_DROPOUT_ON   = 1,  /* dropout drops (else identity) */
    DS_BN_BATCH     = 2,  /* batch norm normalizes with batch statistics (else running) */
    DS_BN_UPDATE    = 4,  /* batch norm updates its running statistics */
    DS_INFER        = 8,  /* forward only: no backward pass follows (an inference plan) */
    DS_MODE_EVAL    = 0,
    DS_MODE_TRAIN   = DS_DROPOUT_ON | DS_BN_BATCH | DS_BN_UPDATE,
    DS_MODE_MC_DROPOUT = DS_DROPOUT_ON,  /* inference with dropout on (MC dropout) */
    DS_MODE_INFER   = DS_INFER,          /* DS_MODE_EVAL for forward passes only */
};

/* A graph borrows m, which must outlive it. Its dropout stream starts from seed. */
DS_API ds_graph *ds_graph_create(ds_model *m, uint64_t seed);
DS_API void      ds_graph_free(ds_graph *g);
DS_API ds_model *ds_graph_model(const ds_graph *g);
/* First build error (DS_OK if the graph is sound). */
DS_API ds_status ds_graph_status(const ds_graph *g);
/* A mode with DS_INFER plans the graph for inference on the next forward: no gradients
 * and nothing kept for a backward pass (a max pool's argmax, batch norm's statistics), so
 * values share memory more; batch norm with running statistics (no DS_BN_BATCH) folded
 * into the convolution or dense layer before it (its weights and bias scaled into a copy
 * the graph owns, refolded when the model's values change: see ds_param_data); and a
 * pooling after a convolution computed with it, a sub-batch at a time. Outputs equal the
 * same mode's without DS_INFER up to rounding (folded weights round differently).
 * ds_graph_backward then fails with DS_ERR_STATE. Setting or clearing DS_INFER (or, with
 * it, DS_BN_BATCH) plans the graph again on the next forward; inputs keep their values.
 * The library's predict and evaluation functions run in DS_INFER and restore the mode. */
DS_API void      ds_graph_set_mode(ds_graph *g, int mode);
DS_API int       ds_graph_mode(const ds_graph *g);
/* Changes dimension 0 of every input and re-infers every shape. Memory is planned again
 * on the next forward; nothing is allocated inside a step at a fixed batch size. */
DS_API ds_status ds_graph_set_batch(ds_graph *g, int64_t batch);
DS_API int64_t   ds_graph_batch(const ds_graph *g);
/* Reserves all memory for the current shapes now (forward does it if needed). The plan
 * follows a training step, forward then backward: buffers (values, gradients, what an op
 * keeps for its backward) whose lifetimes do not overlap share memory, so most intermediate
 * values do not outlive their use (see ds_node_data). */
DS_API ds_status ds_graph_plan(ds_graph *g);
/* Bytes reserved for activations, gradients and workspaces (after sharing). */
DS_API size_t    ds_graph_bytes(const ds_graph *g);

/* Runs every node. Fails (DS_ERR_VALUE) on bad data such as a class label out of range. */
DS_API ds_status ds_graph_forward(ds_graph *g);
/* Runs the nodes created up to and including last (NULL: all), e.g. the output without the
 * loss at inference. A backward pass needs a full ds_graph_forward. In an inference plan
 * (DS_INFER), a last whose value a fold or fusion would not hold is kept (ds_node_keep). */
DS_API ds_status ds_graph_forward_to(ds_graph *g, ds_node *last);
/* Reverse pass from a scalar node (seed 1). Gradients of intermediate nodes are recomputed;
 * gradients of parameters ACCUMULATE into the model's gradient block, as in PyTorch: call
 * ds_model_zero_grad before each step. The pass may reuse the memory of values it has read,
 * so a second backward after one forward fails with DS_ERR_STATE (PyTorch's "backward
 * through the graph a second time"): run forward again, or use ds_graph_keep_all. */
DS_API ds_status ds_graph_backward(ds_graph *g, ds_node *loss);
/* Reverse pass seeded with d(out) = seed (numel of out floats). */
DS_API ds_status ds_graph_backward_seed(ds_graph *g, ds_node *out, const float *seed);

DS_API int       ds_graph_node_count(const ds_graph *g);
DS_API ds_node  *ds_graph_node(const ds_graph *g, int i);
/* The input node, or the output node of the layer, with this name (NULL if absent). */
DS_API ds_node  *ds_graph_find(const ds_graph *g, const char *name);
DS_API int       ds_graph_input_count(const ds_graph *g);
DS_API ds_node  *ds_graph_input(const ds_graph *g, int i);

DS_API int            ds_node_ndim(const ds_node *n);
DS_API const int64_t *ds_node_shape(const ds_node *n);
DS_API int64_t        ds_node_numel(const ds_node *n);
DS_API const char    *ds_node_op_name(const ds_node *n);
/* Name of the layer the node belongs to (the input's name for inputs). */
DS_API const char    *ds_node_layer_name(const ds_node *n);
/* Values (borrowed; valid after planning until the graph is freed or re-planned). Writable
 * for inputs, which is how data enters the graph. Planning again (after adding a node,
 * changing the batch size, ds_node_requires_grad or ds_node_keep) moves the memory, so
 * take the pointer again; inputs keep their values unless the batch size changed.
 * Nodes share memory when their values are not needed at the same time: after
 * ds_graph_forward and ds_graph_backward only these hold their values: graph inputs,
 * parameters, nodes no other node reads (outputs, losses) and nodes marked with
 * ds_node_keep (every node under ds_graph_keep_all); after ds_graph_forward_to(g, last),
 * last too. Other values are overwritten once the step no longer needs them. */
DS_API float         *ds_node_data(ds_node *n);
/* Gradient of the last backward's loss with respect to the node; NULL if none flows here.
 * Inputs get gradients only after ds_node_requires_grad. Gradients share memory like
 * values: after ds_graph_backward only those of parameters, of inputs with
 * ds_node_requires_grad, of nodes no other node reads and of kept nodes hold theirs. */
DS_API float         *ds_node_grad(ds_node *n);
DS_API ds_status      ds_node_requires_grad(ds_node *n, int on);
/* on = 1: the node's values and gradient get memory of their own for the whole run, so they
 * can be read after forward and backward passes (for a reshape, its input is kept);
 * on = 0: shared again. Marking a node the current plan does not keep plans the graph
 * again, as ds_node_requires_grad does. NULL is a no-op. */
DS_API void           ds_node_keep(ds_node *n, int on);
/* on = 1: every node is kept (no memory is shared, so ds_graph_bytes is the sum of all
 * buffers): for debugging, for code that reads intermediate nodes, and for several backward
 * passes after one forward. Plans the graph again. */
DS_API void           ds_graph_keep_all(ds_graph *g, int on);
/* Copies numel floats into an input node (plans memory first if needed). */
DS_API ds_status      ds_graph_set_input(ds_graph *g, ds_node *in, const float *data, int64_t numel);

/* Keras-like summary table (layer, type, output shape, parameters, inputs; totals).
 * Returns a malloc'd string the caller frees, or NULL. */
DS_API char *ds_graph_summary(const ds_graph *g);

/* ------------------------------------------------------------------------------------------
 * Layer and op builders. Each returns the output node, or NULL on error (with NULL inputs,
 * NULL without a new message). Layers with parameters take an optional name (NULL: an
 * automatic Keras-like name such as "dense_1"); a name already present in the model reuses
 * its parameters (shapes must match), which is how graphs share weights.
 * ---------------------------------------------------------------------------------------- */
/* Graph input [batch, ...]. name must be unique in the graph. */
DS_API ds_node *ds_input(ds_graph *g, const char *name, int ndim, const int64_t *shape);
/* A node reading a parameter of the model. */
DS_API ds_node *ds_param_node(ds_graph *g, ds_param *p);

/* -- elementwise, with NumPy/PyTorch broadcasting for the binary ops -- */
DS_API ds_node *ds_add(ds_graph *g, ds_node *a, ds_node *b);
DS_API ds_node *ds_sub(ds_graph *g, ds_node *a, ds_node *b);
DS_API ds_node *ds_mul(ds_graph *g, ds_node *a, ds_node *b);
DS_API ds_node *ds_div(ds_graph *g, ds_node *a, ds_node *b);
DS_API ds_node *ds_add_scalar(ds_graph *g, ds_node *x, float c);   /* x + c */
DS_API ds_node *ds_mul_scalar(ds_graph *g, ds_node *x, float c);   /* x * c */
DS_API ds_node *ds_pow_scalar(ds_graph *g, ds_node *x, float p);   /* x ^ p */
DS_API ds_node *ds_neg(ds_graph *g, ds_node *x);
DS_API ds_node *ds_exp(ds_graph *g, ds_node *x);
DS_API ds_node *ds_log(ds_graph *g, ds_node *x);
DS_API ds_node *ds_sqrt(ds_graph *g, ds_node *x);
DS_API ds_node *ds_square(ds_graph *g, ds_node *x);
DS_API ds_node *ds_abs(ds_graph *g, ds_node *x);

/* -- activations -- */
DS_API ds_node *ds_sigmoid(ds_graph *g, ds_node *x);
DS_API ds_node *ds_tanh(ds_graph *g, ds_node *x);
DS_API ds_node *ds_relu(ds_graph *g, ds_node *x);
DS_API ds_node *ds_softplus(ds_graph *g, ds_node *x);    /* log(1+e^x), linear above x=20 */
DS_API ds_node *ds_leaky_relu(ds_graph *g, ds_node *x, float slope);  /* PyTorch default 0.01 */
DS_API ds_node *ds_elu(ds_graph *g, ds_node *x, float alpha);         /* default 1.0 */
/* GELU, x Phi(x) with Phi the normal CDF (erf), as PyTorch's default; tanh_approx set:
 * PyTorch's approximate='tanh', x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2. */
DS_API ds_node *ds_gelu(ds_graph *g, ds_node *x, int tanh_approx);
DS_API ds_node *ds_silu(ds_graph *g, ds_node *x);        /* x sigmoid(x) (swish) */
/* PReLU with a learnable slope "<name>.weight": one per channel (dimension 1) or, if
 * shared, a single one. Initialized to 0.25 (PyTorch). */
DS_API ds_node *ds_prelu(ds_graph *g, ds_node *x, const char *name, int shared);
DS_API ds_node *ds_softmax(ds_graph *g, ds_node *x, int axis);       /* negative: from end */
DS_API ds_node *ds_log_softmax(ds_graph *g, ds_node *x, int axis);

typedef enum {
    DS_ACT_NONE = 0, DS_ACT_RELU, DS_ACT_SIGMOID, DS_ACT_TANH, DS_ACT_SOFTPLUS,
    DS_ACT_LEAKY_RELU, DS_ACT_ELU, DS_ACT_SOFTMAX, DS_ACT_LOG_SOFTMAX, DS_ACT_PRELU,
    DS_ACT_GELU, DS_ACT_SILU,   /* GELU exact (erf) */
    DS_ACT_COUNT
} ds_activation;
/* Applies an activation by kind (softmax over dimension 1; leaky slope 0.01, ELU alpha 1;
 * PReLU per channel named "<layer>.prelu"). Used by the activation= option of layers. */
DS_API ds_node *ds_activate(ds_graph *g, ds_node *x, ds_activation act, const char *layer);
DS_API const char *ds_activation_name(ds_activation a);

/* -- reductions: over the listed axes (negative from the end), all if naxes == 0 -- */
DS_API ds_node *ds_sum(ds_graph *g, ds_node *x, int naxes, const int *axes, int keepdim);
DS_API ds_node *ds_mean(ds_graph *g, ds_node *x, int naxes, const int *axes, int keepdim);

/* -- matrix products and dense layers -- */
/* a [M,K] x b [K,N] -> [M,N]; or batched [B,M,K] x [B,K,N] -> [B,M,N]. */
DS_API ds_node *ds_matmul(ds_graph *g, ds_node *a, ds_node *b);
/* y = x W^T + b with W [out, in]: PyTorch's linear. x [N, in] (or [N, ..., in]). */
DS_API ds_node *ds_linear(ds_graph *g, ds_node *x, ds_node *w, ds_node *b);

typedef struct {
    const char *name;
    int64_t units;
    int no_bias;                 /* a bias unless set */
    ds_activation activation;
    ds_init weight_init;         /* default Glorot uniform (Keras) */
    ds_init bias_init;           /* default zeros */
} ds_dense_opts;
/* Dense layer on [N, in]: "<name>.weight" [units, in], "<name>.bias" [units]. */
DS_API ds_node *ds_dense(ds_graph *g, ds_node *x, const ds_dense_opts *o);

/* -- shape ops -- */
/* Concatenation along axis (negative from the end). */
DS_API ds_node *ds_concat(ds_graph *g, int n, ds_node *const *xs, int axis);
/* Full target shape; one entry may be -1 (inferred), as in PyTorch's reshape. The batch
 * size may change later (ds_graph_set_batch), so give dimension 0 as -1 in batched graphs. */
DS_API ds_node *ds_reshape(ds_graph *g, ds_node *x, int ndim, const int64_t *shape);
/* [N, ...] -> [N, prod(...)]. */
DS_API ds_node *ds_flatten(ds_graph *g, ds_node *x);
/* x[..., start:end, ...] along axis (Python-style negative indices allowed). */
DS_API ds_node *ds_slice(ds_graph *g, ds_node *x, int axis, int64_t start, int64_t end);

/* -- convolution, transposed convolution, upsampling -- */
typedef enum { DS_PAD_EXPLICIT = 0, DS_PAD_VALID, DS_PAD_SAME } ds_padding;
typedef struct {
    const char *name;
    int64_t filters;
    /* Per spatial axis (depth, height, width order, as in PyTorch). An entry of 0 after the
     * first takes the first entry's value: kernel = {3} means 3x3 in 2D. stride and
     * dilation default to 1. */
    int kernel[3], stride[3], dilation[3];
    /* DS_PAD_EXPLICIT: pad[] zeros on both sides of each axis, used as given (0 entries
     * stay 0); DS_PAD_VALID: none; DS_PAD_SAME: output = ceil(input / stride), the odd
     * extra pixel at the end (bottom/right), as Keras/TensorFlow do. */
    ds_padding padding;
    int pad[3];
    int output_padding[3];       /* transposed convolution only */
    int no_bias;
    ds_activation activation;
    ds_init weight_init;         /* default Glorot uniform (Keras) */
    ds_init bias_init;           /* default zeros */
} ds_conv_opts;
/* nd = 1, 2 or 3 spatial dims. x [N, C, spatial...]; weight [filters, C, k...]. */
DS_API ds_node *ds_conv(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o);
/* The op alone, on weight/bias nodes: bias may be NULL. pad_lo/pad_hi per axis. */
DS_API ds_node *ds_conv_op(ds_graph *g, ds_node *x, ds_node *w, ds_node *b, int nd,
                           const int *stride, const int *pad_lo, const int *pad_hi,
                           const int *dilation);
/* 2D transposed convolution as PyTorch's ConvTranspose2d: weight [C, filters, kh, kw],
 * out = (in - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1. The layer's
 * DS_PAD_SAME gives out = in * stride as Keras (the extra pixel at the end; not with
 * output_padding); DS_PAD_VALID means pad 0. */
DS_API ds_node *ds_conv_transpose2d(ds_graph *g, ds_node *x, const ds_conv_opts *o);
DS_API ds_node *ds_conv_transpose2d_op(ds_graph *g, ds_node *x, ds_node *w, ds_node *b,
                                       const int *stride, const int *pad,
                                       const int *output_padding, const int *dilation);
typedef enum { DS_UPSAMPLE_NEAREST = 0, DS_UPSAMPLE_BILINEAR } ds_upsample_mode;
/* 2x upsampling of [N, C, H, W]; bilinear uses half-pixel centres (align_corners=False). */
DS_API ds_node *ds_upsample2d(ds_graph *g, ds_node *x, int scale, ds_upsample_mode mode);

/* -- pooling -- */
typedef enum { DS_POOL_MAX = 0, DS_POOL_AVG, DS_POOL_SUM, DS_POOL_L2 } ds_pool_kind;
typedef struct {
    int size[3];       /* entries of 0 after the first take the first's value */
    int stride[3];     /* 0: equal to size */
    ds_padding padding;
    int pad[3];        /* explicit: both sides; max pads with -inf, others with 0 */
    int exclude_pad;   /* average pooling: divide by the count of real pixels only
                        * (default: count padding, as PyTorch's count_include_pad=True) */
} ds_pool_opts;
DS_API ds_node *ds_pool(ds_graph *g, ds_node *x, int nd, ds_pool_kind kind,
                        const ds_pool_opts *o);
/* [N, C, spatial...] -> [N, C] by average or max over all spatial positions. */
DS_API ds_node *ds_global_pool(ds_graph *g, ds_node *x, ds_pool_kind kind);

/* -- regularization and normalization -- */
/* Inverted dropout: zeroes with probability rate and scales the rest by 1/(1-rate) when
 * the mode has DS_DROPOUT_ON; identity otherwise. */
DS_API ds_node *ds_dropout(ds_graph *g, ds_node *x, float rate);
typedef struct {
    const char *name;
    float momentum;    /* running = (1-momentum) running + momentum batch; default 0.1 */
    float eps;         /* default 1e-5 */
    int no_affine;     /* no "<name>.weight" / "<name>.bias" */
} ds_batchnorm_opts;
/* Batch normalization over dimension 1 of [N, C] or [N, C, spatial...], as PyTorch's
 * BatchNorm1d/2d/3d (running variance updated with the unbiased batch variance). */
DS_API ds_node *ds_batchnorm(ds_graph *g, ds_node *x, const ds_batchnorm_opts *o);

/* -- Bayesian layers (Bayes by backprop, Blundell et al. 2015) --
 * Each weight (and bias) w has a Gaussian posterior N(mu, sigma^2), sigma = softplus(rho) =
 * log(1 + e^rho), with parameters "<layer>.weight_mu", "<layer>.weight_rho", "<layer>.bias_mu",
 * "<layer>.bias_rho". A forward pass whose mode has DS_DROPOUT_ON (training, DS_MODE_MC_DROPOUT)
 * samples w = mu + sigma eps, eps ~ N(0, 1) from the graph's seeded stream (new at every
 * forward, the same at any thread count); other modes use w = mu. Each layer adds a scalar
 * node, the KL divergence of its posterior to the prior N(0, prior_sigma^2) times its weight:
 *     KL = sum over weights of log(prior_sigma / sigma) + (sigma^2 + mu^2) / (2 prior_sigma^2) - 1/2
 * which ds_graph_kl_loss sums; a net from a model file adds that sum to its loss. */
typedef struct {
    float prior_sigma;     /* the prior's sigma; 0: 1 */
    float posterior_init;  /* the posterior's initial sigma (rho = log(e^sigma - 1)); 0: 0.05 */
    float kl_weight;       /* the KL's factor in the loss; 0: automatic, 0 until
                            * ds_graph_set_kl_weight sets it (ds_net_fit*: 1 / samples) */
} ds_bayes_opts;
/* Dense and convolution layers (o as for ds_dense and ds_conv; b NULL: defaults) whose
 * weights are sampled. Types "DenseBayes", "Conv<nd>DBayes"; automatic names dense_bayes_1,
 * conv2d_bayes_1, ... The mean starts as o's weight_init (Glorot uniform) and bias_init
 * (zeros), rho at the inverse softplus of posterior_init. */
DS_API ds_node *ds_dense_bayes(ds_graph *g, ds_node *x, const ds_dense_opts *o,
                               const ds_bayes_opts *b);
DS_API ds_node *ds_conv_bayes(ds_graph *g, ds_node *x, int nd, const ds_conv_opts *o,
                              const ds_bayes_opts *b);
/* The ops: w = mu + softplus(rho) eps (mu, rho of one shape), and the scalar
 * weight * sum KL over pairs mu_rho[0], mu_rho[1], mu_rho[2], ... (1 to 15 pairs; weight 0:
 * automatic). */
DS_API ds_node *ds_bayes_sample(ds_graph *g, ds_node *mu, ds_node *rho);
DS_API ds_node *ds_bayes_kl(ds_graph *g, int n, ds_node *const *mu_rho, float prior_sigma,
                            float weight);
/* The sum of g's KL nodes (a layer applied twice counted once), NULL if none: a new node on
 * each call. */
DS_API ds_node *ds_graph_kl_loss(ds_graph *g);
/* Sets the weight of every automatic KL node; returns how many, -1 if g is NULL or weight
 * is negative or not finite. ds_net_fit* set 1/N for N training samples (B/N with
 * reduction=sum, B samples per pass), and the weights file records it. */
DS_API int   ds_graph_set_kl_weight(ds_graph *g, float weight);
/* The automatic KL nodes' weight, NAN if there are none or it was never set. */
DS_API float ds_graph_kl_weight(const ds_graph *g);

/* -- losses: scalar nodes -- */
typedef enum { DS_REDUCE_MEAN = 0, DS_REDUCE_SUM } ds_reduction;
/* mean or sum of (pred - target)^2 over all elements. */
DS_API ds_node *ds_loss_mse(ds_graph *g, ds_node *pred, ds_node *target, ds_reduction r);
DS_API ds_node *ds_loss_mae(ds_graph *g, ds_node *pred, ds_node *target, ds_reduction r);
/* Binary cross-entropy on probabilities (log clamped at -100, as PyTorch) and on logits
 * (computed stably: max(z,0) - z t + log(1 + e^-|z|)). */
DS_API ds_node *ds_loss_bce(ds_graph *g, ds_node *prob, ds_node *target, ds_reduction r);
DS_API ds_node *ds_loss_bce_logits(ds_graph *g, ds_node *logits, ds_node *target,
                                   ds_reduction r);
/* Categorical cross-entropy on logits [N, K] (or [N, K, ...]: classes on dimension 1) with
 * one-hot (or soft) targets of the same shape; mean over samples. */
DS_API ds_node *ds_loss_cce_logits(ds_graph *g, ds_node *logits, ds_node *target,
                                   ds_reduction r);
/* The same with integer class labels stored as floats, shape [N] (or [N, ...]). */
DS_API ds_node *ds_loss_cce_logits_int(ds_graph *g, ds_node *logits, ds_node *labels,
                                       ds_reduction r);
/* Gaussian negative log-likelihood of target under N(mean, exp(logvar)), without the
 * constant: 0.5 (logvar + (target - mean)^2 / exp(logvar)), mean or sum over elements. */
DS_API ds_node *ds_loss_gaussian_nll(ds_graph *g, ds_node *mean, ds_node *logvar,
                                     ds_node *target, ds_reduction r);
/* KL(N(mu1, e^lv1) || N(mu2, e^lv2)) per element, mean or sum over elements; mu2 and lv2
 * may be NULL for the standard normal (the VAE term). */
DS_API ds_node *ds_loss_kl_gaussian(ds_graph *g, ds_node *mu1, ds_node *logvar1,
                                    ds_node *mu2, ds_node *logvar2, ds_reduction r);
/* Mean squared bias (Tewes et al. 2019): the rows of pred and target [N, ...] come in
 * groups of `group` consecutive rows, the realizations (e.g. noise draws) of one case. With
 * d = pred - target, per case and feature b = mean of d over the group and s2 its sample
 * variance; the loss is the mean (or sum) over cases and features of b^2 - s2 / group
 * (unbiased: the noise's share of b^2 taken out; else b^2), plus mse times the mean (or
 * sum) of d^2. It penalizes a biased mean prediction rather than single errors: an
 * estimator trained with it does not shrink toward the prior as MSE's posterior mean does.
 * N must be a multiple of group (DS_ERR_SHAPE otherwise). */
typedef struct {
    int group;                /* realizations per case, >= 1 (>= 2 when unbiased) */
    double mse;               /* weight of the MSE term, >= 0 */
    int unbiased;
} ds_msb_opts;
DS_API ds_node *ds_loss_msb(ds_graph *g, ds_node *pred, ds_node *target, const ds_msb_opts *o,
                            ds_reduction r);

/* ------------------------------------------------------------------------------------------
 * Optimizers. Hyper-parameters of 0 take PyTorch's defaults.
 * ---------------------------------------------------------------------------------------- */
typedef enum {
    DS_OPT_SGD = 0, DS_OPT_ADAGRAD, DS_OPT_RMSPROP, DS_OPT_ADAM, DS_OPT_ADAMW, DS_OPT_COUNT
} ds_optim_kind;
typedef enum {
    DS_SCHED_CONSTANT = 0,
    DS_SCHED_STEP,        /* lr * gamma ^ floor(t / step_size) */
    DS_SCHED_EXP,         /* lr * gamma ^ t */
    DS_SCHED_INV_TIME,    /* lr / (1 + decay * t) */
    DS_SCHED_COSINE,      /* min_lr + (lr - min_lr) (1 + cos(pi t / t_max)) / 2 */
} ds_schedule_kind;
typedef struct {
    ds_schedule_kind kind;
    int64_t step_size;    /* STEP */
    float gamma;          /* STEP, EXP */
    float decay;          /* INV_TIME */
    int64_t t_max;        /* COSINE; 0 in a ds_net_fit*: the run's steps (epochs if per_epoch) */
    float min_lr;         /* COSINE */
    int per_epoch;        /* t counts epochs (ds_optim_epoch_end) instead of steps */
} ds_schedule;
typedef struct {
    ds_optim_kind kind;
    float lr;             /* default 1e-3 (SGD: 1e-2) */
    float momentum;       /* SGD */
    int nesterov;         /* SGD */
    float weight_decay;   /* L2 added to the gradient (SGD, Adagrad, RMSprop, Adam);
                           * decoupled in AdamW (default there 1e-2) */
    float beta1, beta2;   /* Adam: 0.9, 0.999 */
    float eps;            /* Adam 1e-8, RMSprop 1e-8, Adagrad 1e-10 */
    float alpha;          /* RMSprop smoothing, default 0.99 */
    int amsgrad;          /* Adam, AdamW */
    float clip_norm;      /* > 0: scale gradients to this global L2 norm at most (in
                           * ds_optim_step; a ds_trainer clips after its gradient hook and
                           * gives its optimizer 0 instead) */
    ds_schedule schedule;
} ds_optim_opts;
typedef struct ds_optim ds_optim;
DS_API ds_optim  *ds_optim_create(ds_model *m, const ds_optim_opts *o);
DS_API void       ds_optim_free(ds_optim *o);
/* Floats of state an optimizer with these options keeps for m (moments, sums; -1 with a
 * message for bad options), without creating it. */
DS_API int64_t    ds_optim_state_numel(const ds_optim_opts *o, const ds_model *m);
/* One update of every trainable parameter from the model's gradient block. */
DS_API ds_status  ds_optim_step(ds_optim *o);
DS_API void       ds_optim_epoch_end(ds_optim *o);
DS_API float      ds_optim_lr(const ds_optim *o);   /* learning rate of the next step */
DS_API int64_t    ds_optim_steps(const ds_optim *o);
DS_API const char *ds_optim_name(ds_optim_kind k);
/* Optimizer state (moments, step count) as named tensors, for checkpoints. */
DS_API ds_status  ds_optim_state_save(const ds_optim *o, ds_tensor_set *s);
DS_API ds_status  ds_optim_state_load(ds_optim *o, const ds_tensor_set *s);
/* Global L2 norm of the model's gradient. */
DS_API double     ds_model_grad_norm(const ds_model *m);

/* Damped Newton's method with the exact Hessian, for small networks (up to about 2,000
 * trainable parameters). One call: forward, gradient, Hessian (by forward-over-reverse
 * products, one per parameter), solve (H + lambda I) d = -g, and a step accepted only if
 * it lowers the loss (lambda grows until it does, and shrinks after success). It reads
 * every intermediate value, so it keeps every node of g (ds_graph_keep_all).
 * loss must be a scalar node of g; *lambda carries the damping between calls (start e.g.
 * at 1e-3). Returns the loss before the step in *loss_out. Fails with DS_ERR_ARG naming
 * the op if the graph holds an op without second-order support. */
DS_API ds_status ds_newton_step(ds_graph *g, ds_node *loss, double *lambda, double *loss_out);

/* ------------------------------------------------------------------------------------------
 * Networks from model description files (the README's "Model files" section has the
 * format): a model, a graph, its data inputs, outputs, losses and optimizer settings, and
 * the preprocessing applied to each input. This is what the command line tool drives.
 *
 * A net has one or more inputs (its input lines, in file order), one or more outputs (the
 * layers its output lines name; without output lines, the prediction of every loss that
 * has one, in loss-line order; without such losses, the last layer) and zero or more
 * losses that read labels ("targets"). A target is known by its loss's name: name= on the
 * loss line, else the name of the layer it predicts (output=, else the layer before the
 * loss line; gaussian_nll: its mean= layer). Data goes in through a ds_feed, which names
 * the input or the loss of each tensor; the functions taking one tensor x (and labels y)
 * are thin wrappers for nets with one input (and one labelled loss).
 * ---------------------------------------------------------------------------------------- */
typedef struct ds_net ds_net;
typedef enum {
    DS_LABELS_AUTO = 0,   /* categorical losses: one-hot targets [N, K] */
    DS_LABELS_DENSE,      /* targets with the output's shape (one-hot for categorical) */
    DS_LABELS_INDEX,      /* categorical losses: class indices [N] */
} ds_label_mode;
#define DS_FEED_MAX 16    /* inputs, outputs, labelled losses and feed entries at most */
typedef struct {
    const char *loss;     /* a loss's name; NULL ends the list */
    ds_label_mode mode;
} ds_label_choice;
typedef struct {
    int64_t batch;        /* batch size the graph is built for (0: 32); changeable later */
    uint64_t seed;        /* initializers and dropout */
    ds_label_mode labels; /* categorical losses: the kind of labels */
    /* per loss, by name: overrides labels for that loss (e.g. one categorical loss reading
     * class indices and another one-hot rows) */
    ds_label_choice label_choices[DS_FEED_MAX];
} ds_net_opts;

/* Parses and builds a network. Errors read "file:line: message", naming the layer and the
 * option or shape at fault. o may be NULL. ds_net_parse takes the text from memory
 * (NUL-terminated); filename stands for the file in messages ("(model)" if NULL). */
DS_API ds_status ds_net_load(const char *path, const ds_net_opts *o, ds_net **out);
DS_API ds_status ds_net_parse(const char *text, const char *filename, const ds_net_opts *o,
                              ds_net **out);
DS_API void      ds_net_free(ds_net *n);
DS_API ds_graph *ds_net_graph(const ds_net *n);
DS_API ds_model *ds_net_model(const ds_net *n);
DS_API ds_node  *ds_net_input(const ds_net *n);   /* the first data input */
DS_API ds_node  *ds_net_output(const ds_net *n);  /* the first output */
DS_API ds_node  *ds_net_target(const ds_net *n);  /* labels input of the first target, or NULL */
DS_API ds_node  *ds_net_loss(const ds_net *n);    /* total loss, or NULL without a loss line */
/* Inputs, outputs and targets (labelled losses) by index, 0 <= i < count; the names are
 * those a ds_feed and the command line's NAME=FILE use. A target's node is its labels
 * input. Out of range: NULL. */
DS_API int         ds_net_input_count(const ds_net *n);
DS_API ds_node    *ds_net_input_at(const ds_net *n, int i);
DS_API const char *ds_net_input_name(const ds_net *n, int i);
DS_API int         ds_net_output_count(const ds_net *n);
DS_API ds_node    *ds_net_output_at(const ds_net *n, int i);
DS_API const char *ds_net_output_name(const ds_net *n, int i);
DS_API int         ds_net_target_count(const ds_net *n);
DS_API ds_node    *ds_net_target_at(const ds_net *n, int i);
DS_API const char *ds_net_target_name(const ds_net *n, int i);
DS_API const ds_optim_opts *ds_net_optim_opts(const ds_net *n);
/* 1 when the first target is a classifier's (categorical or binary cross-entropy):
 * accuracy-type metrics. */
DS_API int       ds_net_is_classifier(const ds_net *n);
/* Number of classes of that classifier (2 for binary), 0 otherwise. */
DS_API int64_t   ds_net_classes(const ds_net *n);
/* ds_graph_summary of the net's graph, where the labels of a categorical loss built with
 * DS_LABELS_AUTO show both shapes they may take: one-hot rows "(None, 3)" or, for a net
 * built with DS_LABELS_INDEX, class indices "(None,)". malloc'd (the caller frees), or
 * NULL. */
DS_API char     *ds_net_summary(const ds_net *n);
/* The model's optimizer settings from its file (kind, lr, ...), changeable before fit. */
DS_API ds_optim_opts *ds_net_optim_opts_mut(ds_net *n);

/* Named data for a net: each input's samples, and the labels of some or all targets. Both
 * lists end at the first entry whose data is NULL, e.g.
 *   ds_feed f = {.inputs = {{"img", x}, {"meta", m}}, .labels = {{"e", y}}};
 * A NULL name stands for the net's only input (only target). The tensors are borrowed,
 * samples first, and must all hold the same number of samples. */
typedef struct {
    const char *name;     /* an input's name, or a target's (loss's) name; NULL: the only one */
    ds_tensor *data;      /* borrowed; NULL ends the list */
    const char *source;   /* names the data in messages (e.g. its file); NULL: the name */
} ds_feed_item;
typedef struct {
    ds_feed_item inputs[DS_FEED_MAX];
    ds_feed_item labels[DS_FEED_MAX];
} ds_feed;

/* Data preprocessing per input, stored with the weights (ds_net_save_weights) so predict applies
 * the same. */
typedef enum {
    DS_SCALE_NONE = 0,
    DS_SCALE_STANDARDIZE,  /* per feature: (x - mean) / std, statistics of the training set */
    DS_SCALE_PER_IMAGE,    /* per sample: (x - mean) / std of that sample */
    DS_SCALE_ASINH,        /* asinh(x / a), the astronomers' stretch (a: softening) */
    DS_SCALE_DIVIDE,       /* x / a (e.g. 255 for 8-bit images) */
} ds_scale_kind;
/* Sets the scaling of the input named input (NULL: the only input);
 * DS_SCALE_STANDARDIZE computes its statistics from train_x, that input's training data. */
DS_API ds_status ds_net_set_input_scaling(ds_net *n, const char *input, ds_scale_kind kind,
                                          float a, const ds_tensor *train_x);
DS_API ds_scale_kind ds_net_input_scaling(const ds_net *n, int i);
/* Applies each input's scaling in place to the feed's inputs. */
DS_API ds_status ds_net_preprocess_feed(const ds_net *n, ds_feed *f);
/* The same for a net with one input. */
DS_API ds_status ds_net_set_scaling(ds_net *n, ds_scale_kind kind, float a, const ds_tensor *train_x);
DS_API ds_scale_kind ds_net_scaling(const ds_net *n);   /* the first input's */
DS_API ds_status ds_net_preprocess(const ds_net *n, ds_tensor *x);
/* Gives each input of `to` the scaling (kind, scale, statistics) of the input of `from`
 * with the same name, as if set from the same data: a hyperparameter search's trials,
 * built from variants of one model file, scale as the data was scaled once. DS_ERR_ARG
 * naming an input of `to` that `from` lacks, or whose statistics have another size. */
DS_API ds_status ds_net_copy_scaling(ds_net *to, const ds_net *from);
/* A model file's text with options set, for hyperparameter search: names[i] is
 * "LAYER.OPTION" (LAYER a layer's name, given or automatic as `deepsky summary` shows it,
 * or its keyword when only one line has it; "optimizer" for the optimizer line, which is
 * added as "optimizer adam ..." when the file has none; a loss line by its name=, else
 * "loss_KIND", or "loss" when the file has one), or a bare "OPTION" that exactly
 * one line takes (lr; the name or keyword alone of a dropout layer stands for its rate, of a
 * leaky_relu or elu layer for its alpha);
 * values[i] its new value, one word. *out (malloc'd, the caller frees it) is the text with
 * each option replaced on its line or added to it, comments kept; it is not parsed again
 * (ds_net_parse checks the values). Errors (DS_ERR_ARG, "FILE: parameter 'P': ...") name
 * an absent layer and list the layers, an absent option and list the line's options, or
 * a bare name several lines take and list them as LAYER.OPTION; a text that does not
 * parse gives its own error. filename names the text in messages ("(model)" if NULL). */
DS_API ds_status ds_net_text_set(const char *text, const char *filename, int n,
                                 const char *const *names, const char *const *values,
                                 char **out);

/* Weights plus preprocessing as one safetensors file (atomic). Loading checks every name
 * and shape against the network. */
DS_API ds_status ds_net_save_weights(const ds_net *n, const char *path);
DS_API ds_status ds_net_load_weights(ds_net *n, const char *path);
/* ds_net_load_weights from a safetensors file's bytes (see "Loading from memory"). */
DS_API ds_status ds_net_load_weights_mem(ds_net *n, const void *buf, size_t len,
                                         const char *name);
/* ds_net_save_weights into memory: *buf (malloc'd, the caller frees it) gets the same bytes
 * as the file, *len their count (the browser playground's download). DS_ERR_ARG for a NULL
 * argument, DS_ERR_NOMEM above ds_get_memory_limit(); on failure *buf is NULL. */
DS_API ds_status ds_net_save_weights_mem(const ds_net *n, void **buf, size_t *len);

/* What a weights file says about its training. Every file training writes (ds_net_fit*:
 * the last epoch's, "<stem>.best" and "<stem>.ckpt") holds these safetensors metadata, all
 * strings (Python's safetensors reads them as they are):
 *   train.epoch        the epoch whose weights the file holds (1-based)
 *   train.epochs_run   epochs run when the file was written (the best file is rewritten
 *                      with every write, so it counts them too)
 *   train.epochs       epochs asked for
 *   train.best_epoch   the run's best epoch then (lowest validation loss, or training loss
 *                      without validation): train.epoch for the best file
 *   train.loss         that epoch's training loss; train.metric its metric, named by
 *                      train.metric_name ("acc" or "rmse"; both absent for neither)
 *   train.val_loss     its validation loss, train.val_metric its metric (absent without
 *                      validation)
 *   train.date         when the file was written: UTC, ISO 8601 ("2026-12-03T10:40:12Z")
 *   train.version      the deepsky version that wrote it (DS_VERSION)
 *   train.command      ds_fit_opts.command: how the run was started (absent if NULL)
 * Numbers are decimal text (integers, and "%.9g" for losses and metrics). */
typedef struct {
    int trained;        /* 1: the file holds train.* metadata; 0: none (deepsky init, a file
                         * written before deepsky recorded them, another tool's) */
    int epoch, epochs_run, epochs, best_epoch;   /* 0: absent or unreadable */
    double loss, metric, val_loss, val_metric;   /* NAN: absent or unreadable */
    const char *metric_name, *date, *version, *command;   /* NULL: absent */
    /* the first key whose value is not what it should be (a number, an epoch in range):
     * its field is reported unknown (0 or NAN); damaged_value is the text found. NULL: none */
    const char *damaged, *damaged_value;
} ds_weights_info;
/* The training metadata of a set, e.g. a file read with ds_safetensors_load. Strings are
 * borrowed from s. Never fails: a damaged value is reported, not an error. */
DS_API void ds_weights_info_get(const ds_tensor_set *s, ds_weights_info *info);
/* The training metadata of the weights last loaded into n by ds_net_load_weights(_mem)
 * (trained 0 if none were). Strings are borrowed from n: valid until the next load or
 * ds_net_free. */
DS_API void ds_net_weights_info(const ds_net *n, ds_weights_info *info);
/* argc words as one line that a POSIX shell reads back as the same words (for
 * ds_fit_opts.command): a word of anything but letters, digits and -_./:=,+@% is put in
 * single quotes. malloc'd (the caller frees it); NULL when out of memory. */
DS_API char *ds_command_line(int argc, const char *const *argv);

/* Checks a feed before use: its names are the net's, every input is fed, all tensors hold
 * the same number of samples (else the message names both sources and counts); each
 * input has that input's per-sample shape, each label tensor its target's per-sample
 * size; every value is finite, class labels are integers in [0, classes), binary labels
 * in [0, 1]. Labels may be left out (training checks that every target has them).
 * Messages name the sources (e.g. the files), the sample and the shapes. */
DS_API ds_status ds_net_check_feed(const ds_net *n, const ds_feed *f);
/* The same for one input x and the labels y (may be NULL) of the only target. */
DS_API ds_status ds_net_check_data(const ds_net *n, const ds_tensor *x, const char *xname,
                                   const ds_tensor *y, const char *yname);

/* Validation splits. The class of each sample of a feed, for a net whose first labelled
 * loss is a classifier (ds_net_is_classifier) and whose labels for it give one class per
 * sample (a class index or a binary 0/1 label, or a one-hot row): cls (one per sample)
 * gets the classes and *n_classes the number of classes of the loss. Otherwise
 * *n_classes is 0 (cls is then unspecified). */
DS_API ds_status ds_net_sample_classes(const ds_net *n, const ds_feed *f, int64_t *cls,
                                       int64_t *n_classes);
typedef struct {
    int64_t train, val;   /* samples on each side */
    int64_t classes;      /* classes the split was stratified by (0: not by class) */
    int64_t single;       /* of them, classes of one sample, which stay in training */
} ds_split_info;
/* Chooses the validation samples of a feed: is_val (one byte per sample) gets 1 for each.
 * last = 0: a shuffled split seeded by seed; stratified by class when the samples have
 * classes (ds_net_sample_classes): each class gives floor(fraction x its count) samples,
 * at least one and at most all but one when it has two or more, none when it has one,
 * then one more from the classes of largest remainder (the first on ties) until the total
 * is round(fraction x N).
 * Without classes, round(fraction x N) samples at random. last = 1: the last
 * round(fraction x N) samples, in order (as Keras' validation_split). Both sides need at
 * least one sample, else DS_ERR_ARG. The same feed and seed give the same split. */
DS_API ds_status ds_net_split(const ds_net *n, const ds_feed *f, double fraction, int last,
                              uint64_t seed, unsigned char *is_val, ds_split_info *info);

/* ---- streams: data sets larger than memory ----
 * A stream is a data set in several files (shards), read while training runs. For each
 * input, and for the labels of each target, its files are given as a glob
 * ("shards/x_*.npy"; folders it matches are left out), a folder (every data file in it,
 * by its name's extension, hidden files aside), a list ("@LIST": a text file naming one
 * file or glob per line, relative to the list's folder; empty lines and lines starting
 * with '#' are skipped) or one file. Files are taken in sorted order of their names (a
 * list keeps its own order); shard k is the k-th file of every item, and its files must
 * hold the same number of samples. All the files of an item hold samples of one shape.
 * Any data file is read (as ds_array_load reads it, with the item's ds_read_opts): a
 * float32 little-endian C-order .npy file is mapped (ds_npy_load), so nothing is copied
 * and nothing counts against ds_get_memory_limit(); the others (FITS, CSV, IDX, .npy of
 * other types) are read whole, one shard at a time, each under the memory limit. Opening
 * the stream reads each .npy header, and each other file whole once, to count and check
 * the samples: a missing or truncated file, a glob that matches nothing, differing sample
 * counts or shapes fail there, naming the files.
 *
 * A reader thread (one POSIX thread per stream) prepares batches ahead of training. Each
 * epoch it takes the shards in an order drawn from the seed and the epoch, and passes
 * their samples through a shuffle buffer, as tf.data's shuffle does: the buffer holds
 * shuffle_buffer samples; each sample read takes the place of one drawn at random, which
 * goes out, and at the end of the epoch the buffer empties in random order. So every
 * sample goes out exactly once per epoch, in an order that depends on the seed, the epoch
 * and the buffer size only: not on timing, the thread count or prefetch. A buffer as large
 * as the data set gives a uniform shuffle. The values are checked as they are read, the
 * first time a run (ds_stream_start) reads a file and again if it changed (its identity,
 * size or time of change): a NaN or an infinity fails, naming the file and the sample
 * (with ds_net_fit_stream, labels out of range too). */
typedef struct ds_stream ds_stream;
typedef struct {
    const char *name;          /* an input's name, or a target's (loss's); NULL: the only one */
    const char *files;         /* a glob, a folder, "@LIST" or a file; NULL ends the list */
    /* How to read each file (table columns, HDU, header), or NULL. Its info, if any, gets
     * what was found or assumed of the first file. */
    const ds_read_opts *read;
} ds_stream_item;
typedef struct {
    ds_stream_item inputs[DS_FEED_MAX];
    ds_stream_item labels[DS_FEED_MAX];
    /* Samples the shuffle buffer holds; 0: as many as fit in 64 MiB (or a quarter of the
     * memory limit if that is less), at least one; never more than the data set holds. */
    int64_t shuffle_buffer;
    /* Batches the reader may prepare beyond those the buffer empties into at the end of an
     * epoch (so that the next epoch's buffer fills while training goes on); 0: 4. */
    int prefetch;
} ds_stream_opts;
/* The files that `files` (as a ds_stream_item's) names, in the stream's order: *paths
 * gets *count malloc'd paths in a malloc'd array (the caller frees each, then the array).
 * A glob that matches nothing, a folder without data files or an empty list fail with
 * DS_ERR_IO; a single file is named, not opened. */
DS_API ds_status  ds_stream_files(const char *files, char ***paths, int *count);
/* Finds, counts and checks the files (see above); nothing is read ahead before
 * ds_stream_start. The options' strings are copied. */
DS_API ds_status  ds_stream_open(const ds_stream_opts *o, ds_stream **out);
DS_API void       ds_stream_free(ds_stream *s);   /* stops the reader; NULL is a no-op */
DS_API int64_t    ds_stream_samples(const ds_stream *s);
DS_API int        ds_stream_shard_count(const ds_stream *s);
/* The file of shard k of an item: labels[i] of the options if labels, else inputs[i]
 * (borrowed), or NULL out of range. */
DS_API const char *ds_stream_shard_path(const ds_stream *s, int labels, int i, int k);
/* The shape of one sample of that item, as it is handed out: *ndim dims into shape (room
 * for DS_MAX_DIMS; 0 dims: a scalar per sample, as class indices [N]). */
DS_API ds_status  ds_stream_sample_shape(const ds_stream *s, int labels, int i, int *ndim,
                                         int64_t *shape);
/* Hands out that item's samples in another shape of as many values, e.g. [28, 28] as
 * [1, 28, 28] for an input of images with one channel. Not while the reader runs. */
DS_API ds_status  ds_stream_reshape(ds_stream *s, int labels, int i, int ndim,
                                    const int64_t *shape);
/* The whole of that item as one new tensor [N, sample shape], its shards one after the
 * other in the stream's file order: the data loaded whole, which fails with DS_ERR_NOMEM
 * (naming the memory limit) when it does not fit. The caller frees it. */
DS_API ds_status  ds_stream_load(ds_stream *s, int labels, int i, ds_tensor **out);
/* What the reader reads from ds_stream_start on. */
typedef struct {
    int64_t batch;             /* samples per batch; an epoch's last batch may hold fewer */
    uint64_t seed;             /* the shard order and the shuffle buffer's draws */
    int first_epoch;           /* 0-based: a resumed run starts at its next epoch */
    int epochs;                /* epochs to read; 0: until stopped */
    int no_shuffle;            /* the shards and their samples in file order, no buffer */
} ds_stream_run;
typedef struct {
    int epoch;                 /* 0-based */
    int64_t index;             /* the batch within its epoch, 0-based */
    int64_t count;             /* samples in the batch; 0: the reader read its last epoch */
    /* each sample's index in the data set (the shards in file order, one after the other);
     * borrowed, as the batch */
    const int64_t *ids;
    int last;                  /* 1: the epoch's last batch */
} ds_stream_batch;
/* Starts the reader thread (stopping a running one first). The stream allocates its
 * buffer and batches here (under the memory limit). */
DS_API ds_status  ds_stream_start(ds_stream *s, const ds_stream_run *r);
/* The next batch, in order: batch gets one tensor [count, sample shape] per item, named as
 * in the options, with the item's files as source; they are the stream's, writable (e.g.
 * ds_net_preprocess_feed) and valid until the next call, ds_stream_stop or ds_stream_free.
 * A failure of the reader (a bad value, a file changed since the stream opened) is
 * returned by the call that reaches it, after the batches before it. */
DS_API ds_status  ds_stream_next(ds_stream *s, ds_feed *batch, ds_stream_batch *info);
DS_API void       ds_stream_stop(ds_stream *s);

/* ---- training ---- */
/* DS_AUG_FLIPS: random mirrors of columns and of rows; DS_AUG_ROT90: random quarter turns;
 * DS_AUG_HFLIP: random mirrors of the columns only (left-right, for scenes with an up). */
enum { DS_AUG_FLIPS = 1, DS_AUG_ROT90 = 2, DS_AUG_HFLIP = 4 };
/* Applies an augmentation transform in place to planes images of h x w (row-major, x = the
 * column): bit 0 mirrors the columns (x -> -x), bit 1 the rows (y -> -y), then
 * (transform >> 2) quarter turns (x, y) -> (-y, x) about the centre (h == w when turning).
 * tmp holds h * w floats. The transforms training applies with DS_AUG_*. */
DS_API void ds_image_transform(float *img, int64_t planes, int64_t h, int64_t w, int transform,
                               float *tmp);
/* Translates planes images of h x w in place by dy rows and dx columns (pixel (i, j) moves
 * to (i + dy, j + dx)); the pixels uncovered are 0. A shift of h rows or w columns or more
 * leaves zeros. */
DS_API void ds_image_shift(float *img, int64_t planes, int64_t h, int64_t w, int64_t dy,
                           int64_t dx);

/* A trainer runs optimizer steps on a net: it owns the optimizer (made from the net's
 * optimizer settings) and the step count, and uses the net's graph in training mode. One
 * step: the samples of the step go through forward and backward passes of at most
 * micro_batch samples each, their gradients summed into the model's gradient (gradient
 * accumulation: the result equals one pass over all of them, to float rounding, batch
 * norm aside); then the gradient hook runs, the gradient is checked for NaN and Inf, it is
 * clipped to the global norm clip_norm of the net's optimizer settings, and the optimizer
 * updates the weights. */
typedef struct ds_trainer ds_trainer;
typedef struct {
    ds_net *net;
    ds_model *model;
    int64_t step;             /* optimizer steps taken before this one */
    int micro_batches;        /* forward/backward passes summed into the gradient */
    int64_t samples;          /* samples in this step */
    double loss;              /* the step's loss, as of one pass over all its samples */
} ds_step_info;
/* Runs between the backward passes and the optimizer step; may read and change every
 * trainable parameter's gradient (ds_model_grad, ds_param_grad: e.g. an allreduce across
 * processes). A status other than DS_OK stops the step before the update, and
 * ds_trainer_step returns it. */
typedef ds_status (*ds_grad_hook)(void *ctx, const ds_step_info *s);
/* Runs after a micro-batch's inputs and labels are in the graph's input nodes
 * (ds_net_input_at, ds_net_target_at), before its forward pass; may change them in place
 * (augmentation). The micro-batch is the b samples rows[first..first+b) of the data (rows
 * NULL: first..first+b-1). */
typedef void (*ds_batch_hook)(void *ctx, ds_net *n, const int64_t *rows, int64_t first,
                              int64_t b);
typedef struct {
    int64_t micro_batch;      /* samples per forward/backward pass; 0: a step is one pass */
    int skip_nonfinite;       /* a non-finite loss or gradient skips the update, no error */
    ds_grad_hook grad_hook;   /* or NULL */
    void *grad_ctx;
    ds_batch_hook batch_hook; /* or NULL */
    void *batch_ctx;
} ds_trainer_opts;
typedef struct {
    double loss;              /* the step's loss, as of one pass over all its samples */
    int64_t samples;
    int micro_batches;
    int skipped;              /* 1: a non-finite loss or gradient skipped the update */
    int nonfinite;            /* 0, or 1 (the loss) or 2 (a gradient) was NaN or Inf */
    const char *nonfinite_param;   /* the first parameter in layer order with a non-finite
                                    * gradient, or NULL */
    /* the first target's metric over the step: correct predictions (classifiers) or
     * squared errors (regression), and their count */
    double metric_sum, metric_count;
} ds_step_result;
/* Makes a trainer for n (which must have a loss; n must outlive it). Gradient
 * accumulation needs every loss line with the same reduction (mean or sum); each pass
 * then weighs its gradient by its share of the step's samples (mean) or by 1 (sum). */
DS_API ds_status ds_trainer_create(ds_net *n, const ds_trainer_opts *o, ds_trainer **out);
DS_API void      ds_trainer_free(ds_trainer *t);   /* NULL is a no-op */
/* One optimizer step on the b samples rows[0..b) of data (rows NULL: 0..b-1), which holds
 * every input and every target's labels, checked beforehand (ds_net_check_feed): a step
 * allocates nothing. A non-finite loss or gradient fails with DS_ERR_VALUE naming the step
 * (and the parameter), the weights unchanged, unless skip_nonfinite. r may be NULL. The
 * passes run in DS_MODE_TRAIN; the graph's mode before the step is restored after it
 * (without DS_INFER), so a following predict runs as before (dropout off in eval). */
DS_API ds_status ds_trainer_step(ds_trainer *t, const ds_feed *data, const int64_t *rows,
                                 int64_t b, ds_step_result *r);
DS_API ds_optim *ds_trainer_optim(ds_trainer *t);   /* borrowed: state, lr, epoch_end */
DS_API int64_t   ds_trainer_steps(const ds_trainer *t);

typedef struct {
    int epoch, epochs;          /* 1-based */
    int64_t batch, batches;     /* 1-based optimizer step within the epoch */
    int64_t seen;               /* samples seen this epoch */
    double loss;                /* running mean of the training loss this epoch */
    double metric;              /* running accuracy (classifiers) or RMSE, NAN if none */
    const char *metric_name;    /* "acc" or "rmse" */
    double samples_per_s, eta_s, elapsed_s;
    int end_of_epoch;           /* 1 on the call that closes an epoch: val_* are set */
    double val_loss, val_metric;/* NAN without validation */
    int improved;               /* this epoch is the best so far */
    double kl;                  /* running mean of the KL term of Bayesian layers, a part of
                                 * loss (NAN without them) */
    /* several loss lines: running means of each line's weighted value (ds_net_loss_term_*),
     * e.g. a VAE's reconstruction and KL terms; n_terms 0 otherwise */
    int n_terms;
    const char *const *term_names;
    const double *terms;
} ds_progress;
typedef void (*ds_progress_fn)(void *ctx, const ds_progress *p);
#define DS_CURVE_SECONDS 5.0   /* the learning curve is redrawn at most this often */
typedef struct {
    int epochs;                 /* default 10 */
    int64_t batch_size;         /* samples per forward/backward pass; default 32 */
    /* passes per optimizer step: each step sums the gradients of accumulate batches of
     * batch_size (gradient accumulation, as one batch of accumulate * batch_size with the
     * memory of one of batch_size); default 1 */
    int accumulate;
    uint64_t seed;              /* shuffling, augmentation, dropout */
    int no_shuffle;
    /* DS_AUG_* flags: random flips / 90-degree rotations of every input of shape
     * [N, C, H, W] (the same transform for all of a sample's images) */
    int augment;
    /* Random translations of every input of shape [N, C, H, W] by up to augment_shift
     * pixels along each axis (uniform in [-s, s], the same for all of a sample's images),
     * the pixels uncovered set to 0 (after the input's scaling); after the transform of
     * augment. Labels are left as they are (augment_labels is not called for it). 0: off. */
    int augment_shift;
    /* With augment: labels that are not invariant under the image's transform (an
     * ellipticity, a position) are mapped by this, called per transformed sample with the
     * transform (bit 0: columns mirrored (x -> -x), bit 1: rows mirrored (y -> -y), then
     * (transform >> 2) quarter turns (x, y) -> (-y, x)) and the sample's n label values.
     * Nets with one labelled loss only. NULL: labels are left as they are. */
    void (*augment_labels)(void *ctx, int transform, float *label, int64_t n);
    void *augment_ctx;
    /* Gaussian noise of this standard deviation added to the input noise_input (NULL: the
     * first input), after its scaling and the transforms above: fresh in every row of every
     * step (a hash of the seed, the epoch and the row's place in the epoch), so each epoch
     * sees new noise (a simulator's sky noise on noiseless stamps, or Keras's
     * GaussianNoise). 0: off. */
    double augment_noise;
    const char *noise_input;
    /* Each sample drawn appears repeat times in consecutive rows of its batch (the
     * transforms above are the same for all of them, the noise is not): the realizations
     * that "loss msb group=repeat" compares. batch_size counts rows and must be a multiple
     * of repeat; an epoch passes every sample repeat times. Validation data is used as
     * given (put each case's realizations in consecutive rows). 0 or 1: off; not with
     * streams. */
    int repeat;
    int patience;               /* early stopping on validation loss; 0: off */
    /* Output weights: the last epoch's, with "<stem>.best.safetensors" for the best epoch
     * and "<stem>.ckpt.safetensors" holding the optimizer state, the loop state, the history
     * and the run's settings for resume. NULL: nothing written. They and the log are
     * written together, atomically, after the last epoch and after any epoch that ends
     * checkpoint_every seconds or more after the previous write (0: after every epoch), so
     * the files on disk always belong to one epoch; after a failure or a kill they are
     * those of the last write. Each says which epoch it holds (ds_weights_info). */
    const char *out_path;
    const char *log_csv;        /* per-epoch CSV log, or NULL */
    /* learning curve PNG, redrawn at most every DS_CURVE_SECONDS and after the last
     * epoch; NULL: none */
    const char *curve_png;
    double checkpoint_every;    /* seconds; see out_path */
    /* Continue from out_path's checkpoint, which must exist (resume_if_exists: start
     * afresh when there is none) and must hold the same settings: the seed, batch size,
     * accumulation, shuffling, augmentation, skip_nonfinite, the optimizer (kind, learning
     * rate and every option), each input's scaling, a hash of the training and validation
     * data and labels as given here (preprocessed), and the caller's settings; the error
     * names each difference. */
    int resume;
    int resume_if_exists;
    /* The caller's own settings that change the result, as lines "name: value" (the
     * command line gives its model file's hash, its data options, ...); compared on
     * resume like the others. NULL: none. */
    const char *settings;
    /* A step whose loss or some parameter's gradient is NaN or Inf stops training with an
     * error naming the epoch, the batch and the first such parameter (the weights stay
     * those of the step before; nothing non-finite is written). skip_nonfinite: skip that
     * step's update instead and go on (counted in ds_fit_result.skipped_steps). */
    int skip_nonfinite;
    double max_seconds;         /* > 0: stop after the epoch in which this much time passed */
    ds_progress_fn progress;    /* called after every optimizer step, or NULL */
    void *ctx;
    ds_grad_hook grad_hook;     /* the trainer's gradient hook (see ds_trainer_opts), or NULL */
    void *grad_ctx;
    /* How the run was started, in the caller's words (the command line gives its argv,
     * quoted to be re-run; a program its own command line or a description): stored as
     * train.command in every weights file the run writes (see ds_weights_info). NULL: none */
    const char *command;
    /* Extra safetensors metadata (its keys and values; its tensors are ignored) written into
     * every weights file the run writes, e.g. the ensemble.* keys of `train --ensemble`
     * (ensemble.model, ensemble.member, ensemble.members, ensemble.seed). NULL: none */
    const ds_tensor_set *meta;
    /* Data-parallel training over a group of processes (see ds_dist below), or NULL: one
     * process. */
    const struct ds_dist *dist;
} ds_fit_opts;
typedef struct {
    int epochs_run, best_epoch, stopped_early, resumed_from;
    int out_of_time;            /* stopped by max_seconds */
    int64_t skipped_steps;      /* steps skipped for a non-finite loss or gradient */
    double final_loss, best_val_loss, seconds;
} ds_fit_result;
/* Trains on the feed train (every input, and labels for every target); validation on val
 * if given (may be NULL). The data must already be preprocessed (ds_net_preprocess_feed).
 * The loss and metric shown, logged and used for early stopping are the total loss and
 * the first target's metric. */
DS_API ds_status ds_net_fit_feed(ds_net *n, const ds_feed *train, const ds_feed *val,
                                 const ds_fit_opts *o, ds_fit_result *res);
/* The same for one input x with the labels y of the only target; xv/yv may be NULL. */
DS_API ds_status ds_net_fit(ds_net *n, const ds_tensor *x, const ds_tensor *y,
                            const ds_tensor *xv, const ds_tensor *yv, const ds_fit_opts *o,
                            ds_fit_result *res);
/* Trains on a stream (see "streams" above), the validation feed val (in memory, may be
 * NULL) as ds_net_fit_feed does: the same options, files, checkpoints and resume. The
 * stream's batches are the optimizer steps (batch_size x accumulate samples), prepared by
 * its reader thread: its shuffle buffer shuffles (no_shuffle: file order, which trains to
 * the same weights as ds_net_fit_feed on the same data in one feed without shuffling),
 * the net's preprocessing (ds_net_set_input_scaling_stream) is applied to each batch as it
 * is prepared, and augmentation draws per sample by its index in the stream. The stream's
 * items bind to the net's inputs and targets by name, as a feed's; their sample shapes
 * must be the inputs' (ds_stream_reshape). A checkpoint records, for the stream, its
 * files' names (without folders), shapes and sizes, not a hash of their values. The
 * reader is stopped when the call returns. */
DS_API ds_status ds_net_fit_stream(ds_net *n, ds_stream *train, const ds_feed *val,
                                   const ds_fit_opts *o, ds_fit_result *res);
/* ds_net_set_input_scaling for a net trained on a stream: standardization takes its
 * statistics from the stream's item for that input (named so, or the only one), read in
 * two passes over its files: the same values as from the data in one tensor. */
DS_API ds_status ds_net_set_input_scaling_stream(ds_net *n, const char *input,
                                                 ds_scale_kind kind, float a, ds_stream *s);
/* Every output for every sample of the feed's inputs (preprocessed), in inference mode,
 * batch by batch: out[i] (i < ds_net_output_count) is output i, samples first; the caller
 * frees each. A classifier's prediction with a temperature (ds_net_temperature) comes
 * calibrated. */
DS_API ds_status ds_net_predict_feed(ds_net *n, const ds_feed *f, int64_t batch, ds_tensor **out);
/* The first output for x, for a net with one input. */
DS_API ds_status ds_net_predict(ds_net *n, const ds_tensor *x, int64_t batch, ds_tensor **out);
/* Mean total loss over the feed (labels for every target) in inference mode. */
DS_API ds_status ds_net_loss_value_feed(ds_net *n, const ds_feed *f, int64_t batch,
                                        double *loss);
DS_API ds_status ds_net_loss_value(ds_net *n, const ds_tensor *x, const ds_tensor *y,
                                   int64_t batch, double *loss);

/* ---- evaluation ---- */
/* Loss and metrics as a printable report (classification: accuracy, per-class precision
 * and recall, confusion matrix, AUROC for two classes; regression: RMSE, MAE and mean bias
 * per output), one section per target. *report is malloc'd; values also go to the
 * optional tensor set (names "loss", "accuracy", "rmse", ...; a classifier's counts as
 * "confusion" [K, K], rows the true class; with several targets the metrics are
 * "<target>.accuracy", ...). */
DS_API ds_status ds_net_evaluate_feed(ds_net *n, const ds_feed *f, int64_t batch,
                                      char **report, ds_tensor_set *values);
DS_API ds_status ds_net_evaluate(ds_net *n, const ds_tensor *x, const ds_tensor *y,
                                 int64_t batch, char **report, ds_tensor_set *values);
/* A binary classifier's score and true class per sample over the feed (with labels), for
 * AUROC, ds_tpr_at_fp and ROC curves: the target is the loss named `target`, or (NULL) the
 * first that is a binary cross-entropy or a categorical one over two classes; the score is
 * the predicted value (a probability, or a logit with from_logits=true), or class 1's for a
 * softmax. *scores and *labels (0 or 1) are new [samples x values per sample] tensors the
 * caller frees. DS_ERR_ARG when no such loss exists or it has no labels in the feed. */
DS_API ds_status ds_net_binary_scores(ds_net *n, const ds_feed *f, int64_t batch,
                                      const char *target, ds_tensor **scores,
                                      ds_tensor **labels);
/* The classes predicted in p, the values of output i as ds_net_predict_feed gives them,
 * when that output is what a categorical or binary cross-entropy loss reads: categorical,
 * the index of the largest value along axis 1 ([N, K, ...] -> [N, ...]); binary, 1 where
 * a value is above 0.5 (above 0 for logits, from_logits=true) and 0 elsewhere (the same
 * shape). *out is new; the caller frees it. DS_ERR_ARG naming the output when no such loss
 * reads it. */
DS_API ds_status ds_net_output_classes(const ds_net *n, int i, const ds_tensor *p,
                                       ds_tensor **out);

/* ------------------------------------------------------------------------------------------
 * Uncertainty: Monte Carlo dropout, heteroscedastic outputs, deep ensembles (issue 15)
 *
 * A prediction with uncertainty pools S draws of every output: S stochastic passes of one
 * net (Monte Carlo dropout: dropout drawing, batch norm with its running statistics), or
 * the passes of each member of a deep ensemble (one model trained from seeds S..S+K-1).
 * For a plain output the result is the mean and the standard deviation of the S draws
 * (population: divided by S, so S = 1 gives 0). A gaussian_nll loss's prediction is the mean
 * and the standard deviation side by side on axis 1 ([N, 2D, ...]); draw s gives mu_s and
 * sigma_s, and the mixture of the S Gaussians gives
 *   mean = avg mu_s,   aleatoric var = avg sigma_s^2,   epistemic var = avg (mu_s - mean)^2,
 *   total var = aleatoric var + epistemic var          (Lakshminarayanan et al. 2017).
 * ---------------------------------------------------------------------------------------- */
/* Nodes of the net whose op is random when the graph's mode has DS_DROPOUT_ON (dropout,
 * Bayesian weights); 0: Monte Carlo passes would all be the same. */
DS_API int ds_net_stochastic_count(const ds_net *n);
/* 1 when output i is a gaussian_nll loss's prediction (mean and standard deviation side by
 * side on axis 1), else 0 (also for i out of range). */
DS_API int ds_net_output_is_gaussian(const ds_net *n, int i);

typedef struct {
    int passes;         /* stochastic passes per net, >= 1 (ds_net_predict_ensemble: 1 runs
                         * each member once in eval mode, dropout off) */
    uint64_t seed;      /* seed of the dropout draws (ensembles: member j uses seed + j) */
    int64_t batch;      /* samples per forward; 0: 256 */
    int keep_draws;     /* also return every draw (ds_uq_output.draws) */
    int probs;          /* classifier outputs: each draw's logits (from_logits=true) turned
                         * into probabilities before pooling (softmax, sigmoid), and the
                         * classes of the pooled mean given (ds_uq_output.classes) */
} ds_uq_opts;

typedef struct {
    ds_tensor *mean;          /* [N, ...]: the output's shape; gaussian: its mean half */
    ds_tensor *std;           /* total standard deviation, mean's shape */
    ds_tensor *std_aleatoric; /* gaussian outputs: sqrt(avg sigma_s^2); else NULL */
    ds_tensor *std_epistemic; /* gaussian outputs: sqrt(avg (mu_s - mean)^2); else NULL */
    ds_tensor *draws;         /* keep_draws: [S, N, ...] each draw as predicted (gaussian:
                               * mean and std side by side); else NULL */
    ds_tensor *classes;       /* o->probs, classifier outputs: the argmax of the mean
                               * probabilities (binary: mean > 0.5), as
                               * ds_net_output_classes shapes them; else NULL */
} ds_uq_output;
/* Frees o's tensors and zeroes it; NULL is a no-op. */
DS_API void ds_uq_output_free(ds_uq_output *o);

/* Monte Carlo dropout: o->passes passes over the feed's inputs (preprocessed, as for
 * ds_net_predict_feed), dropout drawing and batch norm in eval mode (DS_MODE_MC_DROPOUT),
 * pooled into out[k] for each output k (ds_net_output_count entries; the caller frees each
 * with ds_uq_output_free). The draws depend on o->seed, the pass, the batch size and the
 * sample's place only: the same at any thread count and after any earlier call. DS_ERR_ARG
 * when passes < 1 or the net has no stochastic layer (naming the model file). On failure
 * out[] holds nothing. */
DS_API ds_status ds_net_predict_mc(ds_net *n, const ds_feed *f, const ds_uq_opts *o,
                                   ds_uq_output *out);
/* Deep ensemble: loads the k weights files into n in turn, applies each one's stored
 * preprocessing to a copy of the feed (f holds raw data and is not changed), runs it
 * o->passes times (1: eval mode; more: Monte Carlo dropout as above, member j with seed
 * o->seed + j) and pools the k * passes draws into out[] as ds_net_predict_mc does (draws
 * member-major). Files written by `deepsky train --ensemble` carry ensemble.* metadata
 * (ds_fit_opts.meta): all given members must then name the same model
 * (ensemble.model, a hash of the model file) and differ in ensemble.member, else DS_ERR_ARG
 * naming both files. n keeps the last member's weights. */
DS_API ds_status ds_net_predict_ensemble(ds_net *n, int k, const char *const *weights,
                                         const ds_feed *f, const ds_uq_opts *o,
                                         ds_uq_output *out);
/* Area under the ROC curve of scores for binary labels (ties averaged). */
DS_API double ds_auroc(int64_t n, const float *score, const float *label);
/* True-positive rate at the threshold giving false-positive rate fpr (interpolated).
 * Both are NaN when one class is absent, and when memory runs out (ds_last_error says so). */
DS_API double ds_tpr_at_fpr(int64_t n, const float *score, const float *label, double fpr);
/* The highest true-positive rate over the thresholds that give at most max_fp false
 * positives: max_fp 0 is the lens-finding challenge's TPR0, 9 its TPR10 ("fewer than ten
 * false positives", Metcalf et al. 2019). NaN as above. */
DS_API double ds_tpr_at_fp(int64_t n, const float *score, const float *label, int64_t max_fp);
/* The ROC curve's points, thresholds from the highest score down (ties are one point): at
 * most n + 1 of them, starting at (0, 0), into fpr[] and tpr[] (room for n + 1 each), their
 * count into *points. DS_ERR_ARG when one class is absent or a score is NaN (naming its
 * index). */
DS_API ds_status ds_roc_curve(int64_t n, const float *score, const float *label, double *fpr,
                              double *tpr, int64_t *points);
/* The ROC curve of these scores as a PNG figure at path (atomic): true- against false-positive
 * rate on linear axes with the chance line, and on a log axis of the false-positive rate,
 * the legend giving AUROC, TPR0 and TPR10; title may be NULL. Errors as ds_roc_curve, and a
 * build without plotting fails saying so. */
DS_API ds_status ds_plot_roc(int64_t n, const float *score, const float *label,
                             const char *title, const char *path);

/* One forward and backward pass over all of the feed as one batch (dropout off; batch norm
 * with batch statistics unless eval_bn): fills s with "loss", the outputs and the
 * gradients d loss / d input ("output" and "input" for a net with one output and one
 * input, else "output.<name>" and "input.<name>"), and each trainable parameter's gradient
 * under its own name. Labels are needed for every target. */
DS_API ds_status ds_net_grad_feed(ds_net *n, const ds_feed *f, int eval_bn, ds_tensor_set *s);
DS_API ds_status ds_net_grad(ds_net *n, const ds_tensor *x, const ds_tensor *y, int eval_bn,
                             ds_tensor_set *s);

/* ------------------------------------------------------------------------------------------
 * Calibration of predicted uncertainties (issue 15): do the error bars and the class
 * probabilities mean what they say? Arrays in, report out, so any source of means and
 * standard deviations (a gaussian_nll head, Monte Carlo dropout, an ensemble) or of class
 * scores can be checked the same way; ds_net_target_values gets them from a net.
 * ---------------------------------------------------------------------------------------- */
#define DS_CALIB_LEVELS 99   /* coverage curve: central intervals of 1%, 2%, ..., 99% */
#define DS_CALIB_BINS 15     /* reliability diagram: equal-width confidence bins */
/* Regression with a Gaussian predictive N(mu, sigma^2) per value, truth y, z = (y - mu) /
 * sigma. cover68, cover95: the fraction of values with |z| <= Phi^-1(0.84) = 0.99446 and
 * |z| <= Phi^-1(0.975) = 1.95996 (the central 68% and 95% intervals); z_mean and z_std
 * (population std, ddof 0; 0 and 1 when calibrated); nll: mean of 0.5 log(2 pi sigma^2) +
 * z^2 / 2 (with its constant, unlike the gaussian_nll loss); crps: mean continuous ranked
 * probability score, closed form sigma (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))
 * (Gneiting et al. 2005), in the units of y. */
typedef struct {
    int64_t count;
    double cover68, cover95, z_mean, z_std, nll, crps;
} ds_calib_stats;
typedef struct {
    int64_t samples, outputs;
    ds_calib_stats all;              /* over every value */
    ds_calib_stats *per_output;      /* [outputs]: over the samples of each */
    float *pit;                      /* [samples, outputs]: Phi(z), uniform when calibrated */
    /* coverage curve over every value: level[i] = (i + 1) / 100, empirical[i] the fraction
     * inside the central interval of that level */
    double level[DS_CALIB_LEVELS], empirical[DS_CALIB_LEVELS];
} ds_regression_calib;
/* mean, std, truth: [n, outputs] row-major. *out gets arrays of its own (release them with
 * ds_regression_calib_free). DS_ERR_ARG for NULL pointers or n, outputs < 1; DS_ERR_VALUE
 * naming the sample and output for a std that is not finite and > 0, or a mean or truth
 * that is not finite. */
DS_API ds_status ds_calibrate_regression(int64_t n, int64_t outputs, const float *mean,
                                         const float *std, const float *truth,
                                         ds_regression_calib *out);
/* The same from tensors of one shape [n, ...] (outputs: the values per sample); DS_ERR_SHAPE
 * naming the shapes when they differ. */
DS_API ds_status ds_calibrate_regression_tensors(const ds_tensor *mean, const ds_tensor *std,
                                                 const ds_tensor *truth,
                                                 ds_regression_calib *out);
DS_API void ds_regression_calib_free(ds_regression_calib *r);   /* its arrays; zeroes it */

/* Classifiers: scores [n, classes] per row, logits or probabilities; classes = 1 is a
 * binary classifier's single logit or probability of class 1 (read as the two logits
 * [0, z]). Probabilities become logits as log p (clamped at -100, as PyTorch's
 * cross-entropy; binary: log p - log(1 - p)); rows of probabilities must sum to 1 within
 * 1e-3. A temperature T divides the logits (T = 1: as they are). Labels: the class index of
 * each row (0 or 1 for binary), as floats. */
typedef enum { DS_SCORES_LOGITS = 0, DS_SCORES_PROBS } ds_score_kind;
typedef struct {
    int64_t count;                   /* rows whose confidence falls in the bin */
    double lo, hi;                   /* the bin (lo, hi] of confidence; bin 0 includes 0 */
    double confidence, accuracy;     /* their means (NaN for an empty bin) */
} ds_calib_bin;
typedef struct {
    int64_t samples, classes;
    double temperature;
    /* expected calibration error: sum over bins of count / samples x |accuracy -
     * confidence| (confidence: the largest softmax probability); mce: the largest gap of a
     * non-empty bin; nll: mean -log p(label); accuracy: of the argmax (first on ties) */
    double ece, mce, nll, accuracy;
    ds_calib_bin bins[DS_CALIB_BINS];
} ds_classifier_calib;
/* DS_ERR_ARG for NULL pointers, n or classes < 1, or T not finite and > 0; DS_ERR_VALUE
 * naming the row for a label that is not a class index in range, a score that is not
 * finite, or a probability outside [0, 1] (or a row not summing to 1). */
DS_API ds_status ds_calibrate_classifier(int64_t n, int64_t classes, const float *scores,
                                         ds_score_kind kind, const float *labels,
                                         double temperature, ds_classifier_calib *out);
/* Temperature scaling (Guo et al. 2017): the T in [0.01, 100] minimizing the mean NLL of
 * softmax(logits / T) on these rows (validation data: not those the model trained on). The
 * NLL is convex in 1 / T, so a safeguarded Newton search on 1 / T (bisection when a step
 * leaves the bracket) finds the minimum to 1e-10 relative; a minimum beyond the range gives
 * its end (100 when the scores carry no information, 0.01 when every row is right with a
 * margin). Errors as ds_calibrate_classifier. */
DS_API ds_status ds_fit_temperature(int64_t n, int64_t classes, const float *scores,
                                    ds_score_kind kind, const float *labels, double *temperature);

/* Figures (PNG through cairo, atomic; a build without plotting fails saying so). The PIT
 * histogram of output `output` (-1: every value), 20 bins as a density with the uniform
 * line; the coverage curve, empirical against nominal at every level with the diagonal;
 * the reliability diagram, accuracy against confidence per non-empty bin with the diagonal
 * and a panel of the bin counts, for one calibration or two (after: e.g. with a fitted
 * temperature; may be NULL). title may be NULL. */
DS_API ds_status ds_plot_pit(const ds_regression_calib *r, int64_t output, const char *title,
                             const char *path);
DS_API ds_status ds_plot_coverage(const ds_regression_calib *r, const char *title,
                                  const char *path);
DS_API ds_status ds_plot_reliability(const ds_classifier_calib *before,
                                     const ds_classifier_calib *after, const char *title,
                                     const char *path);

/* What a net's labelled loss (target i) predicts for every sample of a feed that has its
 * labels, in the arrays above (inference mode; a stored temperature NOT applied: see
 * .temperature). A classifier (categorical or binary cross-entropy) gives rows of scores,
 * one per sample and position ([N, K, H, W] outputs: N x H x W rows), and their labels as
 * class indices (one-hot or soft rows: their argmax; binary: above 0.5); gaussian_nll
 * gives its mean and std = exp(logvar / 2); the other losses their prediction, std NULL. */
typedef enum {
    DS_TARGET_POINT = 0,             /* a prediction without uncertainty (mse, mae, msb) */
    DS_TARGET_GAUSSIAN,              /* gaussian_nll: mean and std */
    DS_TARGET_CLASSIFIER,
} ds_target_kind;
typedef struct {
    ds_target_kind kind;
    int64_t rows, width;             /* rows; classes (1: binary) or values per row */
    ds_score_kind score_kind;        /* classifiers */
    ds_tensor *pred;                 /* [rows, width]: scores, or the predicted means */
    ds_tensor *std;                  /* [rows, width] for DS_TARGET_GAUSSIAN, else NULL */
    ds_tensor *truth;                /* [rows] class indices, or [rows, width] values */
    double temperature;              /* classifiers: the net's (ds_net_temperature) */
    ds_tensor *std_aleatoric;        /* ds_net_target_values_pooled of a gaussian_nll
                                      * target: the aleatoric part of std; else NULL */
} ds_target_values;
/* DS_ERR_ARG naming the target when it is out of range or the feed lacks its labels; the
 * feed is checked (ds_net_check_feed) and must be preprocessed. *out owns its tensors:
 * release them with ds_target_values_free. */
DS_API ds_status ds_net_target_values(ds_net *n, const ds_feed *f, int64_t batch, int target,
                                      ds_target_values *out);
DS_API void ds_target_values_free(ds_target_values *v);   /* its tensors; zeroes it */
/* Uncertainty wiring (issue 15): target i's values from pooled draws, pooled[] being what
 * ds_net_predict_mc or ds_net_predict_ensemble returned for the net's outputs, run with
 * o->probs (the labels come from f). A classifier gives the pooled mean probabilities
 * (DS_SCORES_PROBS, stored temperatures already applied to each draw: temperature 1); a
 * gaussian_nll target its pooled mean, the total std and std_aleatoric; any other loss
 * (mse, mae, ...) DS_TARGET_GAUSSIAN too, with the spread of the draws as std. DS_ERR_ARG
 * naming the target when its prediction is not an output of the net or f lacks its
 * labels. */
DS_API ds_status ds_net_target_values_pooled(ds_net *n, const ds_feed *f, int target,
                                             const ds_uq_output *pooled,
                                             ds_target_values *out);
/* The temperature of classifier target i: 1 unless set, or loaded with the weights (the
 * metadata key "calib.temperature.<target name>", a number in [0.01, 100]). With T != 1,
 * ds_net_predict_feed gives that target's prediction calibrated: logits divided by T,
 * probabilities p^(1/T) renormalized over the classes (binary: against 1 - p). Losses,
 * accuracy and evaluation stay those of the raw outputs (argmax and ROC do not change). */
DS_API double    ds_net_temperature(const ds_net *n, int target);
/* DS_ERR_ARG naming the target when it is no classifier's or T is outside [0.01, 100]. */
DS_API ds_status ds_net_set_temperature(ds_net *n, int target, double temperature);
/* Copies the safetensors file `from` (the net's weights) to `to`, atomically, with every
 * tensor and metadata key kept and the net's temperatures set (a key per classifier
 * target, "1" for one without). ds_net_save_weights writes the keys of T != 1 too. */
DS_API ds_status ds_net_save_temperatures(const ds_net *n, const char *from, const char *to);

/* ------------------------------------------------------------------------------------------
 * Astronomy: simulated galaxy images and classical shape measurement.
 *
 * Pixel convention: a stamp of size x size pixels is stored row-major, row i (the y axis,
 * FITS NAXIS2) then column j (the x axis, FITS NAXIS1). Pixel (i, j) covers
 * [j - 1/2, j + 1/2] x [i - 1/2, i + 1/2]: its centre is at x = j, y = i. The stamp centre is
 * at x = y = (size - 1) / 2, so flips and quarter turns map the stamp onto itself.
 * Ellipticity: eps = (1 - q) / (1 + q) with axis ratio q = b/a, e1 = eps cos 2 phi,
 * e2 = eps sin 2 phi, phi counter-clockwise from the +x axis (toward +y). An elliptical
 * profile is the round one sheared with area preserved: the half-light radius is that of
 * the round profile (semi-axes hlr / sqrt(q) and hlr sqrt(q)).
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    double n;            /* Sersic index (0.3 to 8) */
    double hlr;          /* half-light radius in pixels, before shearing */
    double flux;         /* total flux (sum over an infinite stamp) */
    double e1, e2;       /* ellipticity components, |e| < 1 */
    double dx, dy;       /* centroid offset from the stamp centre, pixels */
} ds_galaxy;

/* PSFs. Any kind but NONE may be elliptical: (e1, e2) shear the round profile as a galaxy's
 * (eps convention above, area kept, fwhm that of the round profile). DS_PSF_OPTICAL is
 * GalSim's Airy(lam_over_diam, obscuration) convolved with its Kolmogorov(fwhm): the
 * diffraction of an annular pupil (obscuration: the central obstruction's fraction of the
 * diameter) under long-exposure seeing, whose OTF is exp(-3.44 (lambda f / r0)^(5/3)) with
 * FWHM 0.976 lambda / r0. Either part may be 0 (lam_over_diam 0: seeing alone, fwhm 0:
 * diffraction alone). */
typedef enum { DS_PSF_NONE = 0, DS_PSF_GAUSSIAN, DS_PSF_MOFFAT, DS_PSF_OPTICAL } ds_psf_kind;
typedef struct {
    ds_psf_kind kind;
    double fwhm;         /* pixels; OPTICAL: the Kolmogorov part's (0: none) */
    double beta;         /* Moffat only (> 1; e.g. 2.5 to 4.765) */
    /* variable PSFs (psf.c, optics.c) */
    double e1, e2;       /* PSF ellipticity, |e| < 1 (0: round) */
    double lam_over_diam;   /* OPTICAL: lambda / D in pixels, 0 or in [0.25, 1000] */
    double obscuration;     /* OPTICAL: linear obscuration, [0, 1) */
} ds_psf;

/* b_n of the Sersic profile I(r) = I_e exp(-b_n ((r/r_e)^(1/n) - 1)): the root of
 * gamma(2n, b) = Gamma(2n) / 2, solved to machine precision for any n > 0. */
DS_API double    ds_sersic_bn(double n);
/* Renders the galaxy convolved with the PSF and integrated over each pixel (flux per
 * pixel), noiseless, into img (size x size floats). Accurate to 1% in total flux for cuspy
 * profiles down to n = 4 at hlr = 1 pixel. */
DS_API ds_status ds_galaxy_render(const ds_galaxy *g, const ds_psf *psf, int size, float *img);
/* The same profile (no PSF) averaged over an oversample x oversample grid of sub-pixel
 * points per pixel (centred sub-pixels): the sampling astropy's Sersic2D is compared with. */
DS_API ds_status ds_galaxy_render_sampled(const ds_galaxy *g, int size, int oversample,
                                          float *img);
/* The PSF alone, integrated over pixels and centred on the stamp centre, unit total flux
 * (the sum over the stamp). Every kind; the optical PSF through its OTF. */
DS_API ds_status ds_psf_render(const ds_psf *psf, int size, float *img);

/* Photometry for photometric redshifts (photometry.c). Five analytic spectral templates
 * in the manner of Coleman, Wu and Weedman (1980): type 0 E, 1 Sbc, 2 Scd, 3 Irr, 4 SB
 * (starburst): a continuum ln f_nu = slope x - curv x^2, x = ln(lambda / 5500 A) (turning
 * over in the near infrared), a 4000 A break, a UV slope and emission lines ([OII],
 * H-beta, [OIII], H-alpha) growing from E to SB. A galaxy's type is
 * a number in [0, 4], mixing the two templates around it in flux. Redshifted over 0-3 with
 * the intergalactic Lyman-alpha and -beta forests (Madau 1995) and no flux below the Lyman
 * limit, and
 * observed in six LSST-like bands ugrizy (top hats between 3200, 4000, 5520, 6910, 8180,
 * 9220 and 10600 A with 40 A shoulders) as AB magnitudes (synthetic photometry: the
 * filter-weighted mean of f_nu over d lambda / lambda). */
#define DS_PHOTO_BANDS 6
#define DS_PHOTO_TYPES 5
typedef struct {
    int64_t count;
    uint64_t seed;
    double mag_min, mag_max;     /* i-band magnitudes drawn from counts ~ 10^(0.3 m) */
    double z_max;                /* in (0, 3] */
    double depth[DS_PHOTO_BANDS];   /* 5-sigma AB depths, ugrizy; 0: 25.6, 26.9, 26.9,
                                     * 26.4, 25.6, 24.8 (about LSST's ten years) */
} ds_photo_opts;
DS_API const char *const *ds_photo_bands(void);          /* "u" .. "y", NULL-terminated */
DS_API const char *ds_photo_type_name(int type);          /* "E" .. "SB"; NULL outside */
/* The template's f_nu (arbitrary units) at rest-frame wavelength lambda (Angstrom); NaN for
 * a type outside 0..4. */
DS_API double ds_photo_sed(int type, double lambda_rest);
/* Band b's transmission (0..1) at wavelength lambda (Angstrom); NaN outside 0..5. */
DS_API double ds_photo_filter(int band, double lambda);
/* Noiseless magnitudes relative to i (mags[3] = 0) of a galaxy of type in [0, 4] at z in
 * [0, 3]: tabulated every 4.6e-4 in ln(1 + z), linear between. */
DS_API ds_status ds_photo_colours(double type, double z, double *mags);
/* count galaxies: i-band magnitude from counts ~ 10^(0.3 m) in [mag_min, mag_max], a type
 * mix growing bluer with magnitude, z from p(z | m) ~ z^2 exp(-(z / z_m)^1.5) with z_m =
 * 0.18 + 0.07 (m - 18) (Benitez 2000's form) below z_max. *mags [count, 12]: the observed
 * magnitudes ugrizy (Gaussian flux noise from the depths) then their errors (1.0857 sigma
 * / flux); a flux below its 1-sigma error is a non-detection, given as the 1-sigma limit
 * with error 1.0857. *truth [count, 3]: redshift, type, the true i magnitude. The same
 * seed gives the same tables at any thread count. */
DS_API ds_status ds_sim_photometry(const ds_photo_opts *o, ds_tensor **mags, ds_tensor **truth);
DS_API const char *const *ds_photo_columns(void);        /* mag_u .. err_y */
DS_API const char *const *ds_photo_truth_columns(void);  /* redshift, type, mag_i_true */
/* Colours of a catalogue (photoz.c): mags [n, 6] holds ugrizy magnitudes per row; *colours
 * gets [n, 5]: u-g, g-r, r-i, i-z, z-y (the caller owns it). DS_ERR_SHAPE for another
 * shape; DS_ERR_VALUE when magnitudes are NaN or infinite, naming the band, how many rows
 * and the first of them (counted from 1), e.g. "cat.csv: mag_r is NaN in 2 rows: 3, 17".
 * what names the catalogue in messages (may be NULL). */
DS_API ds_status ds_photo_colour_table(const ds_tensor *mags, const char *what,
                                       ds_tensor **colours);
DS_API const char *const *ds_photo_colour_columns(void);   /* u_g, g_r, r_i, i_z, z_y */

/* Photometric-redshift metrics (photoz.c), with dz = z_phot - z_spec:
 * sigma_nmad = 1.48 median(|dz - median(dz)| / (1 + z_spec)), the normalized median
 * absolute deviation; outliers: the galaxies with |dz| / (1 + z_spec) > 0.15, and their
 * fraction; bias = mean(dz / (1 + z_spec)); rms = sqrt(mean((dz / (1 + z_spec))^2));
 * median_dz = median(dz). Medians as numpy's (the mean of the middle two for even n). */
typedef struct {
    int64_t count, outliers;
    double sigma_nmad, outlier_fraction, bias, rms, median_dz;
} ds_photoz_stats;
/* DS_ERR_ARG for NULL arrays or n < 1; DS_ERR_VALUE naming the galaxy (from 0) for a value
 * that is not finite or a z_spec not above -1. */
DS_API ds_status ds_photoz_metrics(int64_t n, const float *z_phot, const float *z_spec,
                                   ds_photoz_stats *out);
/* The figure (PNG, atomic; a build without plotting fails saying so): z_phot against
 * z_spec for the n galaxies, the diagonal and the outlier bounds z_phot = z_spec +- 0.15
 * (1 + z_spec), the metrics in the legend. title may be NULL. Errors as ds_photoz_metrics. */
DS_API ds_status ds_plot_photoz(int64_t n, const float *z_phot, const float *z_spec,
                                const char *title, const char *path);

/* Strong lensing (lens.c). A singular isothermal ellipsoid (SIE) with external shear: the
 * convergence is kappa = theta_e / (2 sqrt(q x'^2 + y'^2 / q)) in the frame of its major
 * axis x' (the intermediate-axis normalization: the ellipse q x'^2 + y'^2 / q = theta_e^2
 * has area pi theta_e^2 and mean convergence 1), the deflection Kormann et al. (1994)'s;
 * q = 1 is the singular isothermal sphere (SIS), deflecting by theta_e toward the centre.
 * The external shear adds (gamma1 x + gamma2 y, gamma2 x - gamma1 y) about the lens
 * centre. Lens equation: beta = theta - alpha(theta). */
typedef struct {
    double theta_e;          /* Einstein radius, pixels (> 0) */
    double q;                /* axis ratio of the mass, (0, 1] */
    double phi;              /* major-axis angle, radians counter-clockwise from +x */
    double dx, dy;           /* centre, pixels from the stamp centre */
    double gamma1, gamma2;   /* external shear, |gamma| < 1 */
} ds_lens;
/* The deflection (ax[i], ay[i]) at the n points (x[i], y[i]), pixels from the stamp
 * centre. */
DS_API ds_status ds_lens_deflect(const ds_lens *l, int64_t n, const double *x, const double *y,
                                 double *ax, double *ay);
/* The source src (a Sersic galaxy in the source plane: its dx, dy from the stamp centre)
 * lensed by l, noiseless: surface brightness traced back through the lens equation at 2 x 2
 * points in each of oversample^2 sub-cells per pixel (more if the PSF needs them), then
 * convolved with psf (NULL or DS_PSF_NONE: none) and summed over each pixel, into img
 * (size x size). The lens's own light is not included (render it with ds_galaxy_render).
 * Thin arcs want oversample >= 4 / (the source's half-light radius in pixels). */
DS_API ds_status ds_lens_render(const ds_lens *l, const ds_galaxy *src, const ds_psf *psf,
                                int size, int oversample, float *img);
/* GalSim's signal-to-noise: sqrt(sum of noiseless pixel values squared) / sky_sigma. */
DS_API double    ds_image_snr(const float *img, int64_t npix, double sky_sigma);
/* Adds Gaussian sky noise of standard deviation sky_sigma and, if gain > 0, Poisson noise of
 * the source (variance = value / gain per pixel, Gaussian approximation above 1e4 counts). */
DS_API void      ds_add_noise(float *img, int64_t npix, double sky_sigma, double gain, ds_rng *r);

/* Draws galaxies with parameters uniform in the given ranges (ellipticity uniform in the
 * disc |e| <= e_max; flux set by the SNR drawn from [snr_min, snr_max]), renders them with
 * noise, and returns the images [count, 1, size, size] and a truth table [count,
 * ds_sim_column_count()] with the columns of ds_sim_columns(): e1, e2, n, hlr, flux, snr,
 * psf_fwhm, dx, dy, then each feature's own block (variable PSFs: psf_beta, psf_e1, psf_e2,
 * psf_lod, psf_obsc, 0 where the kind has no such parameter; the neighbour: nb_flux, nb_dx,
 * nb_dy, nb_hlr, 0 if none; shear: g1, g2, e1_int, e2_int). A feature's options at zero
 * change nothing. */
typedef struct {
    int64_t count;
    int size;                    /* stamp size (default 32) */
    uint64_t seed;
    double n_min, n_max;         /* Sersic index (0.5, 6) */
    double hlr_min, hlr_max;     /* pixels (1.5, 5) */
    double e_max;                /* (0.6) */
    double snr_min, snr_max;     /* (10, 100); snr_max <= 0: noiseless */
    double sky_sigma;            /* (1) */
    double gain;                 /* Poisson noise of the source (0: none) */
    double offset_max;           /* |dx|, |dy| uniform up to this (0.5) */
    ds_psf psf;                  /* kind NONE: no PSF */
    double psf_fwhm_min, psf_fwhm_max;   /* a range of PSF sizes (0: psf.fwhm) */
    const ds_tensor *params;     /* optional [count, c] table overriding the draws (NaN: draw),
                                    its 9 <= c <= 18 columns the first c of ds_sim_columns()
                                    (up to nb_hlr: the drawn ones) */
    /* variable PSFs (psf.c, optics.c), drawn from a stream of their own per galaxy */
    double psf_beta_min, psf_beta_max;   /* Moffat beta range (0: psf.beta) */
    double psf_e_max;            /* PSF |e| uniform in [0, psf_e_max], angle uniform (0: the
                                    fixed psf.e1, psf.e2) */
    double psf_lod_min, psf_lod_max;     /* OPTICAL lambda/D range, pixels (0: psf.lam_over_diam) */
    /* Shear: a constant shear (g1, g2), |g| < 1, applied to the intrinsic shape with the
     * composition law of ds_ellipticity_shear. pairs: rows 2i and 2i+1 share every
     * parameter but the second's intrinsic shape is turned by 90 degrees (e_int -> -e_int);
     * independent noise. shear_cycle A > 0 (g1 = g2 = 0 then): groups of 4 galaxies (8 with
     * pairs) share every parameter, the flux and the noise of each rotation, under the
     * shears (+A, +A), (-A, +A), (+A, -A), (-A, -A) in turn (rows 2k, 2k+1 of a pair share
     * one). count must be a multiple of the group. The truth table gains the columns g1, g2,
     * e1_int, e2_int; e1, e2 are the sheared shapes. With pairs or a cycle, the rows of a
     * group share the flux that gives its first row the drawn SNR, and that SNR. */
    double g1, g2;
    int pairs;
    double shear_cycle;
    /* Realism switches (src/astro/realism.c). All zero: off, and the output is that of the
     * simulator without them, bit for bit. Each draws from its own stream, per galaxy.
     * A neighbour galaxy: with probability nb_prob a second Sersic galaxy (n, hlr and e
     * drawn as the central one's, uniform) at a distance uniform in [nb_r_min, nb_r_max]
     * pixels from the central galaxy in a uniform direction, with flux uniform in
     * [nb_flux_min, nb_flux_max] times the central one's, rendered with the same PSF before
     * the noise. The snr column stays the central galaxy's alone. Truth columns nb_flux,
     * nb_dx, nb_dy (from the stamp centre), nb_hlr: all 0 when there is no neighbour. */
    double nb_prob;                  /* [0, 1]; 1: always */
    double nb_r_min, nb_r_max;       /* pixels, within [0, size] (default 4, 12) */
    double nb_flux_min, nb_flux_max; /* ratio to the central flux, > 0 (default 0.1, 1) */
    /* Correlated sky noise: the white sky noise convolved with a k x k kernel (row-major,
     * k odd, <= 31), scaled so each pixel's variance stays sky_sigma^2. NULL: white. */
    const double *noise_kernel;
    int noise_kernel_size;           /* k */
    /* A size-magnitude population like deep-survey catalogues instead of the uniform hlr and
     * SNR draws: hlr log-normal (median pop_hlr_median * (F / pop_flux_min)^pop_beta, scatter
     * pop_hlr_dex in log10) truncated to [hlr_min, hlr_max]; flux F with dN/dF ~ F^-pop_alpha
     * in [pop_flux_min, pop_flux_max]; the snr column follows from the flux and sky_sigma
     * (snr_min, snr_max unused; the stamps are noisy). Zero means the default (README). */
    int population;                  /* 1: on */
    double pop_hlr_median;           /* pixels (3) */
    double pop_hlr_dex;              /* (0.2) */
    double pop_flux_min, pop_flux_max;   /* (60 sky_sigma, 6000 sky_sigma) */
    double pop_alpha;                /* > 0 (1.8: counts of slope 0.32 mag^-1 dex) */
    double pop_beta;                 /* size-flux slope (0: sizes independent of flux) */
} ds_sim_opts;
DS_API const char *const *ds_sim_columns(void);   /* NULL-terminated names */
DS_API int ds_sim_column_count(void);
DS_API ds_status ds_sim_galaxies(const ds_sim_opts *o, ds_tensor **images, ds_tensor **truth);
/* The PSF image of each row of a truth table of ds_sim_galaxies run with o (its PSF kind
 * and stamp size; each row's psf_fwhm, psf_beta, psf_e1, psf_e2, psf_lod, psf_obsc):
 * [rows, 1, size, size], each ds_psf_render's unit-sum image on the stamps' pixel grid,
 * centred on the stamp centre. DS_ERR_ARG for a table that is not [rows, columns] or a row
 * whose PSF is invalid (naming the row). */
DS_API ds_status ds_sim_psf_images(const ds_sim_opts *o, const ds_tensor *truth,
                                   ds_tensor **psf_images);

/* Shears the ellipticity (e1, e2) in place by (g1, g2), both in the eps convention, as
 * GalSim's shear(): e <- (e + g) / (1 + conj(g) e) in complex notation (area preserved).
 * DS_ERR_ARG for NULL pointers, |e| >= 1 or |g| >= 1 (or not finite). */
DS_API ds_status ds_ellipticity_shear(double *e1, double *e2, double g1, double g2);

/* Shear bias of a population (issue 14): fits e = (1 + m) g + c per component (e1 on g1,
 * e2 on g2, least squares) to per-galaxy measured ellipticities e and applied shears g
 * (n rows of two floats each). Consecutive rows in groups of `group` (a 90-degree pair, a
 * shear cycle) share a galaxy: a NaN measurement drops its whole group, and the errors
 * come from a bootstrap over the groups (seeded; the same at any thread count). */
typedef struct {
    int group;                   /* rows per group (0: 1) */
    int n_boot;                  /* bootstrap resamples (0: 1000) */
    uint64_t seed;               /* of the bootstrap */
} ds_shear_bias_opts;
typedef struct {
    double m[2], c[2];           /* m1, m2 and c1, c2 */
    double m_err[2], c_err[2];   /* bootstrap standard deviations */
    int64_t rows, groups;        /* used */
    int64_t dropped_rows, dropped_groups;   /* left out for a NaN measurement */
} ds_shear_bias_result;
/* DS_ERR_ARG (naming the row) for NULL pointers, n not a positive multiple of group, a
 * non-finite or |g| >= 1 shear, an infinite e, a component whose shears take a single
 * value over the rows kept, or no group left. */
DS_API ds_status ds_shear_bias(const float *e, const float *g, int64_t n,
                               const ds_shear_bias_opts *o, ds_shear_bias_result *out);

/* Maps an ellipticity (e[0], e[1]) = (e1, e2) the way ds_image_transform maps its image:
 * one mirror negates e2, a quarter turn negates both. Usable as ds_fit_opts.augment_labels
 * for labels that are (e1, e2) pairs (n even; ctx unused). */
DS_API void ds_ellipticity_transform(void *ctx, int transform, float *e, int64_t n);

/* Adaptive (elliptical Gaussian weighted) second moments, as GalSim's HSM FindAdaptiveMom:
 * the weight's centroid and covariance are iterated to match the weighted moments. */
typedef struct {
    double x0, y0;               /* centroid, pixels (convention above) */
    double sigma;                /* det(M)^(1/4) of the weight's covariance M, pixels */
    double e1, e2;               /* distortion (Mxx - Myy, 2 Mxy) / (Mxx + Myy) */
    double mxx, mxy, myy;        /* covariance of the matched weight */
    double rho4;                 /* weighted fourth moment (2 for a Gaussian) */
    double flux;                 /* amplitude of the best-fit elliptical Gaussian */
    int iterations;
    int flag;                    /* 0 converged; else it failed (see ds_moments_flag_name) */
} ds_moments;
/* Failure codes of ds_moments.flag. ds_shear.flag is a stage (DS_SHEAR_FAIL_*) plus, for
 * the three moments stages, the moments code in its low 4 bits. */
enum {
    DS_MOM_OK = 0,
    DS_MOM_NOT_CONVERGED,        /* more than 400 iterations */
    DS_MOM_NOT_POSDEF,           /* weight covariance not positive definite */
    DS_MOM_OFF_STAMP,            /* centroid left the stamp or moved more than 15 pixels */
    DS_MOM_TOO_LARGE,            /* a second moment above 8000 pixels^2 */
    DS_MOM_FEW_PIXELS,           /* fewer than 6 pixels under the weight */
    DS_MOM_NONFINITE,            /* NaN or infinity in the image */
    DS_MOM_NO_FLUX,              /* weighted flux <= 0 (e.g. an all-zero stamp) */
    DS_SHEAR_FAIL_PSF = 0x10,        /* the PSF's moments failed */
    DS_SHEAR_FAIL_GAL = 0x20,        /* the galaxy's moments failed */
    DS_SHEAR_FAIL_REGAUSS = 0x30,    /* the re-Gaussianized image's moments failed */
    DS_SHEAR_FAIL_UNRESOLVED = 0x40, /* resolution <= 0: galaxy not larger than the PSF */
    DS_SHEAR_FAIL_RANGE = 0x50,      /* corrected distortion |e| >= 1 (no eps exists) */
};
/* Measures img (size x size, conventions above) starting from a round weight of sigma
 * guess_sigma (<= 0: from the unweighted moments) at the stamp centre; tolerance 1e-6.
 * A failed measurement is not an error: it returns DS_OK with out->flag set and NaN
 * values. DS_ERR_ARG for NULL pointers, size < 1 or a non-finite guess. */
DS_API ds_status ds_adaptive_moments(const float *img, int size, double guess_sigma,
                                     ds_moments *out);
/* Static name of a flag of either struct ("ok", "not converged", "PSF moments failed", ...);
 * for a shear flag it names the stage, and flag & 15 names the moments failure. */
DS_API const char *ds_moments_flag_name(int flag);

typedef enum {
    DS_SHEAR_REGAUSS = 0,        /* re-Gaussianization (Hirata & Seljak 2003), as GalSim */
    DS_SHEAR_LINEAR,             /* adaptive moments minus the PSF's (exact for Gaussians) */
} ds_shear_method;
typedef struct {
    double e1, e2;               /* PSF-corrected ellipticity in the eps convention above */
    double resolution;           /* 1 - (PSF size / galaxy size)^2 */
    int flag;                    /* 0 ok; else the measurement failed */
} ds_shear;
/* Measures a galaxy stamp's PSF-corrected ellipticity given an image of the PSF on the same
 * pixel grid (ds_psf_render) and the sky noise variance. Both images are pixel-integrated,
 * so the PSF image's moments carry the pixel response too. Starts as GalSim's EstimateShear
 * (weights of sigma 5 for the galaxy and 3 for the PSF at the stamp centres). A failed
 * measurement returns DS_OK with out->flag set and NaN values; DS_ERR_ARG for NULL
 * pointers, size < 1, a negative or non-finite sky_var or an unknown method. sky_var does
 * not change e (it would only scale a shape-noise estimate, which is not returned). */
DS_API ds_status ds_shear_estimate(const float *gal, const float *psf_img, int size,
                                   double sky_var, ds_shear_method method, ds_shear *out);

/* ------------------------------------------------------------------------------------------
 * Classic machine learning (src/classic/): the baselines beside the networks. A model is a
 * method (logistic, linear, knn, kmeans, pca, ... listed by ds_classic_method_name) with
 * hyperparameters given as text, the input's preparation (image features, scaling, a PCA
 * transform) and the arrays fitted by ds_classic_fit. Results depend only on the data, the
 * hyperparameters and the seed, never on the thread count.
 * Model file: safetensors with the fitted arrays ("model.<name>"; "scale.mean"/"scale.std"
 * of --scale standardize; "transform.<name>" of a PCA transform) and one metadata key,
 * "deepsky.classic": a JSON object {"format": 1, "method": ..., "task": ..., "params": {name:
 * text}, "features": ..., "input": [sample shape], "features_out": F, "scale": kind,
 * "scale_a": text, "transform": "pca:K" or "", "classes": K, "outputs": T, "stats": {name:
 * text}} (README, "classic model files").
 * ---------------------------------------------------------------------------------------- */
typedef struct ds_classic ds_classic;
/* What a fitted model predicts. DS_CLASSIC_AUTO (the default of methods that do both):
 * classification when every label is an integer in [0, 65536), else regression. */
typedef enum {
    DS_CLASSIC_AUTO = 0,
    DS_CLASSIC_CLASSIFY,   /* predict: [N, K] class probabilities (or scores) */
    DS_CLASSIC_REGRESS,    /* predict: [N, T] values */
    DS_CLASSIC_CLUSTER,    /* predict: [N, K] squared distances to the K centres */
    DS_CLASSIC_TRANSFORM,  /* predict: [N, C] the data in the C new coordinates */
} ds_classic_task;
DS_API const char *ds_classic_task_name(ds_classic_task t);   /* "classify", ... */
/* The methods: i from 0 while the name is non-NULL. */
DS_API const char *ds_classic_method_name(int i);
DS_API const char *ds_classic_method_about(int i);
/* The hyperparameters of a method (NULL or an unknown name: none): i from 0 while the name
 * is non-NULL; the default and a help line (static strings). */
DS_API const char *ds_classic_param_name(const char *method, int i);
DS_API const char *ds_classic_param_default(const char *method, int i);
DS_API const char *ds_classic_param_help(const char *method, int i);
/* A new unfitted model of the method; DS_ERR_ARG listing the methods if unknown. */
DS_API ds_status ds_classic_create(const char *method, ds_classic **out);
DS_API void      ds_classic_free(ds_classic *m);   /* NULL is a no-op */
/* Sets hyperparameter key to value (text, checked: a number in range or one of the words);
 * DS_ERR_ARG naming the method's hyperparameters if key is not one of them. Before fit. */
DS_API ds_status ds_classic_set(ds_classic *m, const char *key, const char *value);
DS_API const char *ds_classic_get(const ds_classic *m, const char *key);  /* NULL: unknown */
/* The input's preparation, before fit, applied the same by predict:
 * features: NULL or "" (each sample's values as they are), "pixels" (the same, named),
 *   "hog[:ORIENTATIONS[:CELL[:BLOCK]]]" (ds_hog, defaults 9:8:3) or "moments" (ds_moments
 *   of each stamp: flux, sigma, e1, e2, x0 and y0 from the centre, rho4, ok); samples of
 *   images [N, H, W] or [N, 1, H, W]; "cas" (ds_cas_measure of each channel of stamps
 *   [N, H, W] or [N, C, H, W], the sky estimated: C, A, S, r_petro, ok per channel);
 * scale: as a network's input (ds_scale_kind), statistics from the training data;
 * transform: NULL or "" (none) or "pca:K": a PCA to K components fitted after scaling. */
DS_API ds_status ds_classic_set_features(ds_classic *m, const char *features);
DS_API ds_status ds_classic_set_scaling(ds_classic *m, ds_scale_kind kind, float a);
DS_API ds_status ds_classic_set_transform(ds_classic *m, const char *transform);
/* Fits the model on x ([N, ...] samples) and y ([N] or [N, T] labels; NULL for methods
 * without labels: kmeans, pca). DS_ERR_VALUE for NaN or infinite data, DS_ERR_ARG for
 * labels a method cannot use (k of knn above N, ...). seed: the method's random draws. */
DS_API ds_status ds_classic_fit(ds_classic *m, const ds_tensor *x, const ds_tensor *y,
                                uint64_t seed);
/* The prediction for x (see ds_classic_task) into a new tensor *out the caller frees. */
DS_API ds_status ds_classic_predict(const ds_classic *m, const ds_tensor *x, ds_tensor **out);
/* One value per sample of a prediction p: the class (the highest score), the cluster (the
 * nearest centre); regression and transforms: NULL (no single value). */
DS_API ds_tensor *ds_classic_decide(const ds_classic *m, const ds_tensor *p);
/* The metrics of the model on x and y as the network's eval prints them (accuracy,
 * precision, recall, confusion matrix, AUROC; RMSE, MAE, bias), clusters (inertia,
 * silhouette) and transforms (explained variance, reconstruction error); y may be NULL for
 * the last two. *report is malloc'd; values (if non-NULL) gets the named numbers. */
DS_API ds_status ds_classic_evaluate(const ds_classic *m, const ds_tensor *x, const ds_tensor *y,
                                     char **report, ds_tensor_set *values);
/* The validation samples of a split of n samples as ds_net_split chooses them (is_val: one
 * byte per sample), stratified by class when y holds one class index per sample (y may be
 * NULL). */
DS_API ds_status ds_classic_split(const ds_tensor *y, int64_t n, double fraction, int last,
                                  uint64_t seed, unsigned char *is_val, ds_split_info *info);
DS_API const char     *ds_classic_method(const ds_classic *m);
DS_API ds_classic_task ds_classic_task_of(const ds_classic *m);   /* AUTO before fit */
DS_API int64_t         ds_classic_classes(const ds_classic *m);   /* K, or 0 */
/* The sample shape the model was fitted on into shape (DS_MAX_DIMS - 1 values); its rank. */
DS_API int             ds_classic_input_shape(const ds_classic *m, int64_t *shape);
/* A fitted array by name ("coef", "intercept", "components", "centers", ...; see README),
 * borrowed until the model is freed; NULL if absent. */
DS_API const ds_tensor *ds_classic_array(const ds_classic *m, const char *name);
/* A statistic of the fit ("inertia", "silhouette", "iterations", ...); NAN if absent. */
DS_API double ds_classic_stat(const ds_classic *m, const char *name);
/* The model file (format above), atomic. */
DS_API ds_status ds_classic_save(const ds_classic *m, const char *path);
/* Loads a model file; method non-NULL: it must have been saved by that method (else
 * DS_ERR_ARG naming both). A network's weights, a damaged header or arrays that do not fit
 * the method give DS_ERR_FORMAT naming the file. */
DS_API ds_status ds_classic_load(const char *path, const char *method, ds_classic **out);
DS_API ds_status ds_classic_load_mem(const void *buf, size_t len, const char *name,
                                     const char *method, ds_classic **out);
/* Histograms of oriented gradients (Dalal & Triggs) as scikit-image's hog: central
 * differences (0 on the border), unsigned orientations in `orientations` bins over 180
 * degrees without interpolation, cells of cell x cell pixels, blocks of block x block cells
 * moved one cell at a time, each normalized L2-Hys (L2, clipped at 0.2, L2 again; eps 1e-5).
 * img: rows x cols, row-major. out: ds_hog_size floats, in the order (block row, block
 * column, cell row, cell column, orientation). DS_ERR_ARG if the image holds no block. */
typedef struct {
    int orientations, cell, block;   /* 0: 9, 8, 3 */
} ds_hog_opts;
DS_API int64_t   ds_hog_size(int rows, int cols, const ds_hog_opts *o);   /* 0: no block */
DS_API ds_status ds_hog(const float *img, int rows, int cols, const ds_hog_opts *o, float *out);
/* The features of images [N, H, W] (or [N, 1, H, W]; "pixels" takes any [N, ...]) by name,
 * as ds_classic_set_features reads it, into a new [N, F] tensor. */
DS_API ds_status ds_classic_features(const char *features, const ds_tensor *x, ds_tensor **out);

/* Model selection (src/classic/search.c). The score is the accuracy (classes) or R^2
 * averaged over the outputs (values), as scikit-learn's score; higher is better. Folds: the
 * samples shuffled with the seed and dealt round-robin, class by class for class labels
 * (stratified); fold f's fit uses seed + f. m is a configured model (method, options,
 * features, scaling, transform), fitted or not, and is not changed: each fit is on a copy.
 * Bad arguments (a clustering or transform method, folds < 2 or above the sample count,
 * labels that do not match, NaN) give DS_ERR_ARG / DS_ERR_SHAPE / DS_ERR_VALUE. */
DS_API ds_status ds_classic_cross_validate(const ds_classic *m, const ds_tensor *x,
                                           const ds_tensor *y, int folds, uint64_t seed,
                                           double *mean, double *spread);   /* spread: std */
typedef struct {
    char params[512];     /* "C=1 gamma=0.01" */
    double score, spread; /* mean and standard deviation over the folds */
    int trial;            /* its number, from 0, in the order tried */
} ds_search_result;
typedef struct {
    int random;           /* nonzero: random draws (trials of them); 0: the whole grid */
    int trials;           /* random: how many */
    int grid_points;      /* grid: values of a range (0: 5), evenly or log spaced */
    int folds;
    uint64_t seed;        /* the draws and the folds */
    /* called after each trial (may be NULL) */
    void (*progress)(const ds_search_result *r, int done, int total, void *user);
    void *user;
} ds_search_opts;
/* Cross-validates m with each point of the space of params[0..n) (1 to 8 of "NAME=A,B,C",
 * "NAME=LO:HI" or "NAME=LO:HI:log", NAME a hyperparameter of m's method; a range of two
 * integers gives integers). *out (malloc'd, the caller frees it) holds *count results sorted
 * by score, best first (ties: the earlier trial). An unknown name lists the method's options;
 * a value the option refuses names the parameter. */
DS_API ds_status ds_classic_search(const ds_classic *m, int n_params, const char *const *params,
                                   const ds_search_opts *o, const ds_tensor *x,
                                   const ds_tensor *y, ds_search_result **out, int *count);
/* The points of a search space without scoring them, as ds_classic_search draws them (the
 * same order and values for a seed): *out (malloc'd, the caller frees it) holds *count
 * results in trial order, each with trial and params ("A=1 B=2") set and score 0. The
 * folds of o are not read. check (may be NULL) vets the space first: check(ctx, name,
 * NULL) the name, then check(ctx, name, value) each value of a list and both ends of a
 * range; its failure is returned (a value's prefixed with "parameter 'SPEC': "). The
 * network search of `deepsky search MODEL` draws its trials here. */
typedef ds_status (*ds_search_check_fn)(void *ctx, const char *name, const char *value);
DS_API ds_status ds_search_points(int n_params, const char *const *params,
                                  const ds_search_opts *o, ds_search_check_fn check, void *ctx,
                                  ds_search_result **out, int *count);
/* A learning curve: for each fold, m fitted on the first fraction[s] of the other folds'
 * samples (shuffled with the seed; at least 2), scored on them (train) and on the fold (val);
 * out[s] the means and standard deviations over the folds. */
typedef struct {
    double fraction;
    int64_t size;                 /* training samples (of the last fold) */
    double train, train_spread, val, val_spread;
} ds_curve_point;
DS_API ds_status ds_classic_learning_curve(const ds_classic *m, const ds_tensor *x,
                                           const ds_tensor *y, int n_sizes,
                                           const double *fractions, int folds, uint64_t seed,
                                           ds_curve_point *out);

/* ------------------------------------------------------------------------------------------
 * Looking inside a network (issue 16): attributions, filters, feature maps and class
 * visualization (src/explain/), with respect to one data input of the net (o->input; a
 * net's other inputs are fed from o->others, each row with its sample's values).
 *
 * A method explains one value per sample of one of the net's outputs: o->targets[i] (one
 * per sample), else o->target; o->target = DS_EXPLAIN_PREDICTED (as with o NULL) picks the
 * predicted class (argmax) of a classifier's output, or the only value of an output with
 * one per sample (zeroed options explain value 0). A softmax output is
 * explained before its softmax (the logits), as Grad-CAM and Captum's users do. Data are
 * preprocessed input values (ds_net_preprocess_feed), [N, input shape]. Every pass runs
 * in eval mode (dropout off, batch norm with running statistics), o->batch rows at a time:
 * integrated-gradient steps, SmoothGrad's noisy copies and occlusion's patches of several
 * samples share a pass. Results are the same at any thread count.
 * ---------------------------------------------------------------------------------------- */
typedef enum {
    DS_BASELINE_ZERO = 0,        /* zeros */
    DS_BASELINE_MEAN,            /* each plane (channel) of the sample at its mean */
    DS_BASELINE_BLUR,            /* the sample blurred by a Gaussian of sigma blur pixels */
} ds_explain_baseline;
/* Integrated gradients' quadrature of the path integral over alpha in [0, 1] with S nodes
 * (Captum's names in brackets). Midpoint (the default) at (k + 1/2)/S ("riemann_middle").
 * Piecewise: the midpoint nodes, each node's gradient weighted by its share of the path,
 * which ends where the lines of f through it and through its neighbour (f and its slope at
 * each node) meet rather than halfway (clamped to the two nodes): exact for f piecewise
 * linear along the path (a ReLU net's) with at most one kink between neighbouring nodes
 * and none before the first or after the last; for a deep net with many kinks between
 * nodes its maps can be less accurate than the midpoint rule's (README). Trapezoid at
 * k/(S - 1) ("riemann_trapezoid"), Gauss-Legendre nodes and weights ("gausslegendre", for
 * smooth nets), left Riemann sum at k/S ("riemann_left"). */
typedef enum {
    DS_IG_MIDPOINT = 0,
    DS_IG_PIECEWISE,
    DS_IG_TRAPEZOID,
    DS_IG_GAUSS_LEGENDRE,
    DS_IG_LEFT,
} ds_explain_ig_rule;
#define DS_EXPLAIN_PREDICTED (-1)
typedef struct {
    int output;                  /* the net's output explained (0: the first) */
    int64_t target;              /* the value (class) explained, or DS_EXPLAIN_PREDICTED */
    const int64_t *targets;      /* one per sample, overriding target; NULL: none */
    int64_t batch;               /* rows per pass; 0: the graph's batch size */
    const char *layer;           /* Grad-CAM's layer (NULL: the last convolution); the layer
                                  * of feature maps and of a channel's visualization */
    ds_explain_baseline baseline;/* integrated gradients and occlusion */
    double blur;                 /* DS_BASELINE_BLUR's sigma in pixels; 0: larger side / 8 */
    int steps;                   /* integrated gradients: 0 -> 64; class visualization's
                                  * ascent steps: 0 -> 100 */
    int samples;                 /* SmoothGrad: noisy copies, 0 -> 25 */
    double noise;                /* SmoothGrad: sigma / (max - min of the sample); 0 -> 0.15 */
    uint64_t seed;               /* SmoothGrad's noise, class visualization's start, jitter */
    int patch, stride;           /* occlusion: square patch side (0: larger side / 4, at most
                                  * 8) and stride (0: patch / 2, at least 1) in pixels */
    double lr;                   /* class visualization: step size in input units per
                                  * pixel (the step is normalized by its mean |value|);
                                  * 0 -> 0.05 */
    double l2, tv;               /* class visualization: penalties l2 |x|^2 and tv x total
                                  * variation (sum of squared neighbour differences) */
    int jitter;                  /* class visualization: random circular shift of up to
                                  * jitter pixels per step (0: none) */
    ds_explain_ig_rule ig_rule;  /* integrated gradients' quadrature over the path */
    const char *input;           /* the data input explained, by name (NULL: the first) */
    const ds_feed *others;       /* a net with several data inputs: the values of the others,
                                  * by name (preprocessed, [N or 1, that input's shape]; 1
                                  * sample serves every row; an entry for the explained input
                                  * is ignored, x stands for it); NULL for a net with one */
} ds_explain_opts;

typedef struct {
    ds_tensor *map;              /* the attribution map; shape given by each method */
    ds_tensor *score;            /* [N]: the explained value f(x) of each sample */
    int64_t *target;             /* N: the output value explained for each sample */
    ds_tensor *delta;            /* integrated gradients: [N] sum(map) - (f(x) - f(baseline))
                                  * (completeness error); else NULL */
} ds_explain_result;
/* Frees r's members and zeroes it; NULL is a no-op. */
DS_API void ds_explain_result_free(ds_explain_result *r);

/* Each function fills res (freed with ds_explain_result_free; on failure it holds nothing).
 * x holds the explained input's samples. DS_ERR_ARG for an unknown o->input (listing the
 * inputs), another data input without data in o->others, an output or target out of range
 * (naming the output and its values per sample), non-finite data, and options out of
 * range; DS_ERR_SHAPE for x not [N, input shape], or another input's data not [N or 1,
 * its shape]. */
/* |d f / d x|, map [N, input shape]. */
DS_API ds_status ds_explain_saliency(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                     ds_explain_result *res);
/* x * d f / d x (signed), map [N, input shape]. */
DS_API ds_status ds_explain_gradient_x_input(ds_net *n, const ds_tensor *x,
                                             const ds_explain_opts *o, ds_explain_result *res);
/* Integrated gradients (Sundararajan et al. 2017) from o->baseline (of the explained input;
 * the others keep their values) by rule o->ig_rule over o->steps nodes: (x - b) * sum_k w_k
 * d f / d x at b + a_k (x - b); map [N, input shape], res->delta the completeness error of
 * each sample. */
DS_API ds_status ds_explain_integrated_gradients(ds_net *n, const ds_tensor *x,
                                                 const ds_explain_opts *o,
                                                 ds_explain_result *res);
/* SmoothGrad (Smilkov et al. 2017): the mean of |d f / d x| over o->samples copies of x with
 * Gaussian noise of sigma o->noise x (max - min of the sample); map [N, input shape]. The
 * noise depends on o->seed, the sample's index and the copy only. */
DS_API ds_status ds_explain_smoothgrad(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                       ds_explain_result *res);
/* Occlusion (Zeiler & Fergus 2014): f(x) - f(x with a patch set to the baseline), for
 * square patches (every plane at once) at o->stride steps covering the sample, averaged
 * over the patches covering each pixel; map [N, H, W] (H, W: the input's last two axes; 1
 * x L for one axis). Forward passes only. */
DS_API ds_status ds_explain_occlusion(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                      ds_explain_result *res);
/* Grad-CAM (Selvaraju et al. 2017) at o->layer (NULL: the last convolution layer), whose
 * output is [N, C, spatial...]: relu(sum_c mean(d f / d A_c) A_c), upsampled linearly
 * (half-pixel centres, as PyTorch's interpolate with align_corners=False) to the input's
 * last spatial axes; map [N, spatial of the input]. DS_ERR_ARG when the net has no
 * convolution layer, or o->layer is unknown (listing the layers) or has no spatial axes. */
DS_API ds_status ds_explain_grad_cam(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                     ds_explain_result *res);
/* The kernels of convolution layer `layer` (NULL: the first): [out, in, k...] for the
 * first convolution layer, [out, 1, k...] averaged over the input channels for a deeper
 * one. *out is new. */
DS_API ds_status ds_explain_filters(ds_net *n, const char *layer, ds_tensor **out);
/* The output of layer o->layer (required) for every sample of x: [N, layer shape]. */
DS_API ds_status ds_explain_feature_maps(ds_net *n, const ds_tensor *x, const ds_explain_opts *o,
                                         ds_tensor **out);
/* Class visualization: gradient ascent on the input for each of count targets (classes,
 * or with o->layer channels of that layer, whose mean is then maximized), from start
 * ([count, input shape]; NULL: Gaussian noise of sigma 0.1 seeded by o->seed), maximizing
 * f - l2 |x|^2 - tv TV(x) for o->steps steps of o->lr, with o->jitter. *images [count,
 * input shape] the final inputs; *scores (may be NULL) [count, steps + 1] the explained
 * value at each step (of the jittered input) and of the final input. */
DS_API ds_status ds_explain_class_visualization(ds_net *n, int64_t count, const int64_t *targets,
                                                const ds_tensor *start, const ds_explain_opts *o,
                                                ds_tensor **images, ds_tensor **scores);
/* The names of the layers, ", "-separated (malloc'd; NULL when out of memory), with the
 * convolution layers only if conv_only. For messages and listings. */
DS_API char *ds_explain_layers(const ds_net *n, int conv_only);
/* ---- generative models: autoencoders, VAEs, segmentation (issue 17) ----
 * Model files: "loss mse|mae|bce target=INPUT" compares an output with an input of the net
 * (an autoencoder trains without labels), "sample_gaussian mean=LAYER logvar=LAYER" is a
 * VAE's sampling layer, "loss dice" the soft Dice loss. */
/* z = mean + e^(logvar/2) eps, eps ~ N(0, 1) drawn when the graph's mode has DS_DROPOUT_ON
 * (training, DS_MODE_MC_DROPOUT) from the graph's seeded stream (as dropout: the same seed
 * gives the same draws at any thread count, new ones at every forward); z = mean otherwise.
 * mean and logvar of one shape. Layer type "SampleGaussian", names sample_gaussian_1, ... */
DS_API ds_node *ds_sample_gaussian(ds_graph *g, ds_node *mean, ds_node *logvar);
/* Soft Dice loss of probabilities p and targets t of one shape [N, C, ...]: per sample and
 * class, 1 - (2 sum p t + 1) / (sum p + sum t + 1) over the trailing axes; mean (over N C)
 * or sum. */
DS_API ds_node *ds_loss_dice(ds_graph *g, ds_node *prob, ds_node *target, ds_reduction r);
/* With several loss lines, each line's weighted value is a term of the loss, named by its
 * name= (else its keyword: "mse", "kl_gaussian", a second one "mse_2"): the training log
 * (ds_fit_opts.log_csv) has a column "loss_<name>" per term, ds_progress their running
 * means. Value: after a forward pass. 0 terms with a single loss line. */
DS_API int         ds_net_loss_term_count(const ds_net *n);
DS_API const char *ds_net_loss_term_name(const ds_net *n, int i);
DS_API double      ds_net_loss_term_value(const ds_net *n, int i);
/* Decodes count draws z ~ N(0, I) (seeded by seed) put in place of the output of the
 * sampling layer named from (a sample_gaussian layer, else DS_ERR_ARG naming what it is),
 * batch samples per pass (< 1: 256), in eval mode: *out (the caller frees it) holds the
 * net's first output for each draw, [count, ...]. The inputs read zeros (the encoder's
 * values are not used). */
DS_API ds_status ds_net_generate(ds_net *n, const char *from, int64_t count, uint64_t seed,
                                 int64_t batch, ds_tensor **out);
/* Decodes given latent values: z [count, ...] (count rows of the sampling layer's numbers
 * per sample, e.g. [count, 16] or [count, 16] shaped as the layer) put in place of the
 * sampling layer from, in eval mode, as ds_net_generate; *out (the caller frees it):
 * the first output for each row. DS_ERR_SHAPE naming both shapes when z's rows do not
 * hold the layer's numbers, DS_ERR_VALUE for NaN or Inf in z, the errors of
 * ds_net_generate for from. ds_net_decode of ds_net_encode's values of a stamp gives
 * its eval-mode reconstruction (ds_net_predict_feed's first output). */
DS_API ds_status ds_net_decode(ds_net *n, const char *from, const ds_tensor *z, int64_t batch,
                               ds_tensor **out);
/* The values of the sampling layer from for each sample of the feed (preprocessed inputs)
 * in eval mode, i.e. the encoder's means: *out [samples, ...the layer's shape] (the caller
 * frees it). Errors: those of ds_net_generate for from, of ds_net_predict_feed for f. */
DS_API ds_status ds_net_encode(ds_net *n, const ds_feed *f, const char *from, int64_t batch,
                               ds_tensor **out);
/* A Gaussian mixture with full covariances: the density of a VAE's latent codes to draw
 * from instead of N(0, I) (ex-post density estimation, Ghosh et al. 2020: the codes of
 * the training set, ds_net_encode, fitted; draws decoded with ds_net_decode). Fitted by EM
 * in double precision from k-means++ seeds and Lloyd iterations (as scikit-learn's
 * GaussianMixture, covariance_type full, reg_covar 1e-6; stops when the mean
 * log-likelihood changes by less than 1e-4, or after 200 iterations); the result depends
 * on the seed only. */
typedef struct ds_gmm ds_gmm;
#define DS_GMM_MAX_DIMS 256
#define DS_GMM_MAX_COMPONENTS 256
/* Fits k components (1 to DS_GMM_MAX_COMPONENTS) to the rows of x [samples, dims] (dims 1
 * to DS_GMM_MAX_DIMS, at least k (dims + 1) samples): *out, freed by ds_gmm_free.
 * DS_ERR_SHAPE for x not 2-d, DS_ERR_ARG for k or too few samples, DS_ERR_VALUE for NaN or
 * Inf in x or a covariance that is not positive definite even with its 1e-6 (values so
 * large that it is lost in rounding). */
DS_API ds_status ds_gmm_fit(const ds_tensor *x, int k, uint64_t seed, ds_gmm **out);
/* count draws of the mixture (seeded): *out [count, dims], the caller frees it. */
DS_API ds_status ds_gmm_sample(const ds_gmm *m, int64_t count, uint64_t seed, ds_tensor **out);
/* Mean log-likelihood per row of x [samples, dims] (natural log, with the constants). */
DS_API ds_status ds_gmm_score(const ds_gmm *m, const ds_tensor *x, double *mean_loglik);
DS_API int  ds_gmm_components(const ds_gmm *m);
DS_API int  ds_gmm_iterations(const ds_gmm *m);   /* EM iterations of the fit */
DS_API void ds_gmm_free(ds_gmm *m);                 /* NULL is a no-op */
/* The loss of each sample of the feed (preprocessed inputs) alone, in eval mode (sampling
 * layers give their mean): for an autoencoder (loss mse target=INPUT, reduction mean) the
 * mean squared reconstruction error, for a VAE with reduction=sum on its reconstruction and
 * kl_gaussian lines the negative ELBO (up to the likelihood's constant). *out: [samples].
 * DS_ERR_ARG for a net whose losses read labels. */
DS_API ds_status ds_net_score_reconstruction(ds_net *n, const ds_feed *f, ds_tensor **out);

/* ------------------------------------------------------------------------------------------
 * GANs (issue 17): a generator G (latent vector -> image) and a discriminator D (image -> one
 * logit), two nets from model files, each with the optimizer of its own file, trained in
 * alternation with the non-saturating loss (Goodfellow et al. 2014; the DCGAN recipe of
 * Radford et al. 2016). A D step: real samples labelled 1 - label_smoothing, G(z) labelled 0,
 * binary cross-entropy on D's logits (mean over each batch; the reported D loss is the sum of
 * the two halves, as PyTorch's DCGAN example). A G step: the cross-entropy of D(G(z)) against
 * 1, whose gradient flows through D's input into G (D's weights are left as they are).
 * z ~ N(0, 1). Loss lines of the model files are not used (a loss that reads labels is
 * refused); D's output may end in a sigmoid (its input, the logit, is then used). Batch norm
 * runs in training mode in both steps; the samples drawn for figures (ds_gan_sample) use
 * eval mode (running statistics). The same seed gives the same weights at any thread count.
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    int epoch, epochs;          /* 1-based */
    double d_loss, g_loss;      /* the epoch's mean D loss (real + fake) and G loss */
    double d_real, d_fake;      /* mean of sigmoid(D(x)) on real samples and on G(z) (D steps) */
    int64_t d_steps, g_steps;   /* steps taken this epoch */
    double seconds;             /* the epoch's */
} ds_gan_progress;
typedef void (*ds_gan_progress_fn)(void *ctx, const ds_gan_progress *p);
typedef struct {
    int epochs;                 /* default 10 */
    int64_t batch_size;         /* real samples per D step, and G(z) per step; default 32 */
    /* D steps per G step (default 1): an epoch is one pass over the shuffled data, one D
     * step per batch, a G step after every d_steps D steps and after the epoch's last */
    int d_steps;
    double label_smoothing;     /* the real samples' label is 1 - s (one-sided); 0 <= s < 0.5 */
    int64_t latent;             /* 0: the generator's input size; else it must equal it */
    uint64_t seed;              /* shuffling and z */
    /* Output folder, which must exist (NULL: nothing written). After every epoch, each
     * file atomic, in this order: generator.safetensors and discriminator.safetensors (the
     * weights, with ds_weights_info metadata: the epoch, the loss is that net's), then
     * gan.ckpt.safetensors (both nets' weights and optimizer states, the loop state, the
     * history and the run's settings, for resume), then log.csv (epoch, d_loss, g_loss,
     * d_real, d_fake, seconds) and, with grid_rows > 0, samples_EEEE.png (E the epoch, 1-based,
     * four digits): a grid_rows x grid_cols grid of G(z) for a fixed z (channel 0, grey,
     * one scale for the grid). A kill leaves the files of the last write. */
    const char *out_dir;
    int grid_rows, grid_cols;   /* 0: no figure; the figure needs plotting support */
    /* Continue from out_dir's checkpoint, which must exist and hold the same settings (seed,
     * batch size, d_steps, label smoothing, latent size, both optimizers, the data's hash,
     * the nets' shapes and the caller's settings); the error names each difference. The
     * result equals the uninterrupted run's, bit for bit. */
    int resume;
    const char *settings;       /* the caller's "name: value" lines, compared on resume */
    const char *command;        /* stored as train.command in the weights files (or NULL) */
    ds_gan_progress_fn progress;   /* after every epoch, or NULL */
    void *ctx;
} ds_gan_opts;
typedef struct {
    int epochs_run, resumed_from;
    double d_loss, g_loss, d_real, d_fake;   /* the last epoch's */
    double seconds;
} ds_gan_result;
/* Whether g and d fit together: both have one input, d one output of one value per sample,
 * g's output has the shape of d's input (per sample), latent (0: any) is g's input size, and
 * neither has a loss that reads labels. DS_ERR_SHAPE or DS_ERR_ARG naming both model files,
 * the layers and the shapes. */
DS_API ds_status ds_gan_check(const ds_net *g, const ds_net *d, int64_t latent);
/* Trains g and d on the real samples x ([N, ...] with d's input shape per sample, finite,
 * used as given: scale them to what g's output can produce). res may be NULL. */
DS_API ds_status ds_gan_fit(ds_net *g, ds_net *d, const ds_tensor *x, const ds_gan_opts *o,
                            ds_gan_result *res);
/* n samples of g for z ~ N(0, 1) drawn from seed, in eval mode: [n, g's output shape] into
 * *out (the caller frees it). */
DS_API ds_status ds_gan_sample(ds_net *g, int64_t n, uint64_t seed, ds_tensor **out);
/* A figure of rows x cols grey panels, channel 0 of the first rows x cols images of
 * x [N, C, H, W] (or [N, H, W]), one linear scale from the images' minimum to maximum;
 * title may be NULL. Saved atomically to path (needs plotting support). */
DS_API ds_status ds_gan_grid_png(const ds_tensor *x, int rows, int cols, const char *title,
                                 const char *path);

/* Statistics to judge generated galaxy stamps against real ones (GANs, VAEs): the
 * two-sample Kolmogorov-Smirnov test and per-stamp measurements by adaptive moments. */
/* D = sup |F_a - F_b| of the two samples' empirical distributions (as scipy.stats.ks_2samp)
 * into *d and, if p is non-NULL, the asymptotic two-sided p-value: Kolmogorov's limiting
 * distribution at (sqrt(en) + 0.12 + 0.11 / sqrt(en)) D, en = na nb / (na + nb) (Stephens
 * 1970; scipy's method='asymp' uses the exact one-sample law at round(en): they agree within
 * 0.01, 0.004 for samples above 100). DS_ERR_ARG for an empty sample or a NaN (naming
 * its index). */
DS_API ds_status ds_ks_2samp(const double *a, int64_t na, const double *b, int64_t nb,
                             double *d, double *p);
typedef struct {
    double flux;      /* amplitude of the best-fit elliptical Gaussian (ds_moments.flux) */
    double hlr;       /* its half-light radius, circularized: sigma sqrt(2 ln 2), pixels */
    double e;         /* |eps|, the eps convention above ((1 - q) / (1 + q)) */
    double e1, e2;    /* eps components */
    int flag;         /* ds_moments.flag: 0 ok, else the values are NaN */
} ds_stamp_stat;
/* out[k] for each of the n stamps img[k] (size x size, conventions above), measured by
 * ds_adaptive_moments from a round weight of sigma 2 pixels at the stamp centre (in
 * parallel; the same at any thread count). A failed measurement is flagged, not an error.
 * DS_ERR_ARG for NULL pointers, n < 0 or size < 1. */
DS_API ds_status ds_stamp_stats(const float *img, int64_t n, int size, ds_stamp_stat *out);

/* ------------------------------------------------------------------------------------------
 * Simulated data for segmentation and anomaly detection (issue 17): blended pairs of
 * galaxies with per-pixel masks (src/astro/blends.c), stamps with injected anomalies
 * (src/astro/anomalies.c), and a classical threshold-and-watershed segmentation with the
 * per-object IoU (src/astro/segment.c). Conventions: those of the simulator above.
 * ---------------------------------------------------------------------------------------- */
/* Blended pairs: galaxy a (the brighter) and galaxy b, each drawn as ds_sim_galaxies draws
 * (a's n, hlr, e are those of row i of ds_sim_galaxies run with sim and its seed; b's
 * those of a run with a seed derived from it), rendered with the same PSF, their centres
 * at the pair's midpoint (offset uniform in [-offset_max, offset_max]) -+ half the
 * separation along a uniform direction. a's flux gives it the drawn SNR alone; b's flux is
 * flux_ratio times a's. The noise (sky, and the source's if gain > 0) is added to the sum.
 * Masks: a pixel is object k's if k's noiseless value exceeds mask_threshold * sky_sigma;
 * where both do, the object whose noiseless value is larger there (a on ties). */
typedef struct {
    ds_sim_opts sim;             /* count, size, seed, n, hlr, e_max, snr (> 0: a's alone),
                                    sky_sigma, gain, offset_max, psf and its ranges, g1, g2;
                                    params, pairs, shear cycles, neighbours, correlated
                                    noise and populations are refused */
    double sep_min, sep_max;     /* centre distance, pixels (0, 0: size / 8, 5 size / 16) */
    double ratio_min, ratio_max; /* b's flux over a's, in (0, 1] (0, 0: 0.2, 1) */
    double mask_threshold;       /* in sky sigmas, > 0 (0: 1) */
} ds_blend_opts;
/* The blend truth table's columns (NULL-terminated): a_e1, a_e2, a_n, a_hlr, a_flux, a_snr,
 * a_dx, a_dy, the same for b, psf_fwhm, psf_beta, psf_e1, psf_e2, psf_lod, psf_obsc, g1, g2,
 * separation (pixels), angle (of b seen from a, degrees counter-clockwise from +x),
 * flux_ratio, snr (of the noiseless blend), a_pixels, b_pixels (mask sizes), overlap (pixels
 * above the threshold for both). */
DS_API const char *const *ds_blend_columns(void);
DS_API int ds_blend_column_count(void);
/* images [count, 1, size, size] (noisy blends), labels [count, 1, size, size] (0
 * background, 1 galaxy a, 2 galaxy b, as floats), truth [count, ds_blend_column_count()];
 * components (NULL: not wanted) [count, 2, size, size], each galaxy's noiseless image.
 * Same seed, same bits at any thread count. DS_ERR_ARG naming the option. */
DS_API ds_status ds_sim_blends(const ds_blend_opts *o, ds_tensor **images, ds_tensor **labels,
                               ds_tensor **truth, ds_tensor **components);
/* One-hot of integer labels [N, 1, H, W] or [N, H, W] with values in [0, classes):
 * [N, classes, H, W]. DS_ERR_ARG naming the first bad value and its position. */
DS_API ds_status ds_labels_one_hot(const ds_tensor *labels, int classes, ds_tensor **out);

/* Anomalies injected into a fraction of ds_sim_galaxies' stamps. */
typedef enum {
    DS_ANOMALY_NONE = 0,
    DS_ANOMALY_COSMIC,           /* a short sharp track: amp per pixel of path, length, angle */
    DS_ANOMALY_TRAIL,            /* a straight line across the stamp, Gaussian profile as wide
                                    as the PSF (FWHM 1.5 pixels without one): peak amp */
    DS_ANOMALY_HOT,              /* 1 to 3 hot pixels of value amp */
    DS_ANOMALY_RING,             /* a ring galaxy: a fraction amp of the galaxy's flux moved
                                    into an elliptical Gaussian ring (the galaxy's shape) */
    DS_ANOMALY_KINDS             /* the count of codes */
} ds_anomaly_kind;
typedef struct {
    ds_sim_opts sim;             /* the galaxies (ds_sim_galaxies; noisy, snr_max > 0) */
    double fraction;             /* [0, 1]: round(fraction * count) stamps have an anomaly */
    unsigned kinds;              /* bits 1 << k of the kinds used (0: all four) */
    double cr_amp_min, cr_amp_max;       /* sky sigmas (0, 0: 100, 1000) */
    double cr_len_min, cr_len_max;       /* pixels (0, 0: 2, 8) */
    double trail_amp_min, trail_amp_max; /* sky sigmas (0, 0: 3, 20) */
    double hot_amp_min, hot_amp_max;     /* sky sigmas (0, 0: 20, 200) */
    double ring_radius_min, ring_radius_max; /* times the galaxy's hlr (0, 0: 1.5, 3) */
    double ring_frac_min, ring_frac_max;     /* of the flux, in (0, 1] (0, 0: 0.4, 0.8) */
} ds_anomaly_opts;
/* "normal", "cosmic", "trail", "hot", "ring" for codes 0 to 4; NULL otherwise. */
DS_API const char *ds_anomaly_name(int kind);
/* The code of a name above, or -1. */
DS_API int ds_anomaly_code(const char *name);
/* The anomaly truth table's columns: those of ds_sim_columns(), then anomaly (the code),
 * an_x, an_y (pixels: the track's or trail's centre, the first hot pixel, the ring's
 * centre), an_amp (image units; ring: the fraction of the flux), an_length (pixels: the
 * track; the trail's chord in the stamp; the hot pixels' count; the ring's radius), an_angle
 * (degrees), an_width (the trail's FWHM, the ring's Gaussian sigma; else 0). Zeros on
 * normal rows. */
DS_API const char *const *ds_anomaly_columns(void);
DS_API int ds_anomaly_column_count(void);
/* images [count, 1, size, size], truth [count, ds_anomaly_column_count()]. With fraction 0
 * the images and the first ds_sim_column_count() columns are ds_sim_galaxies' bit for bit;
 * rows without an anomaly always are. The anomalous rows: a seeded choice of exactly
 * round(fraction * count) rows, the kinds in turn (equal shares). A ring replaces the
 * galaxy's light before the noise (exact for gain 0; with gain > 0 the source noise stays
 * that of the Sersic profile). */
DS_API ds_status ds_sim_anomalies(const ds_anomaly_opts *o, ds_tensor **images,
                                  ds_tensor **truth);

/* Classical segmentation: the image smoothed by a Gaussian of sigma `smooth` pixels; the
 * foreground where the smoothed image exceeds k * sky_sigma; markers at the local maxima
 * (3 x 3) of the smoothed image in the foreground, the highest first, each at least
 * min_distance pixels from those kept, at most max_objects of them; then a marker-based
 * watershed (priority flood from the markers, highest values first, 8-neighbours) over
 * the foreground. Foreground not reached from a marker stays 0. */
typedef struct {
    double k;                    /* threshold in sky sigmas (0: 1.3, tuned on `sim blends`
                                    with masks at 1 sigma) */
    double sky_sigma;            /* <= 0: estimated, 1.4826 * MAD of the image */
    double smooth;               /* Gaussian sigma, pixels (0: 1; < 0: none) */
    int max_objects;             /* (0: 2) */
    double min_distance;         /* pixels (0: 2) */
} ds_segment_opts;
/* labels (h x w floats): 0 background, 1 .. max_objects the markers by decreasing height.
 * Returns the number of objects found in *found (may be NULL). */
DS_API ds_status ds_segment_watershed(const float *img, int h, int w, const ds_segment_opts *o,
                                      float *labels, int *found);
/* Per-object IoU of predicted against true label images (npix values each, integer labels
 * 0 .. n_labels, 0 background): the predicted labels are matched one to one with the true
 * ones so that the sum of the IoUs is largest (n_labels <= 8); iou[k] is true object k+1's
 * IoU with its match (0 if none), NaN if object k+1 is absent from truth. DS_ERR_ARG for a
 * label that is not an integer in [0, n_labels] (naming its position). */
DS_API ds_status ds_segment_iou(const float *pred, const float *truth, int64_t npix,
                                int n_labels, double *iou);

/* ------------------------------------------------------------------------------------------
 * Simulated strong lenses for lens finding (issue 19, src/astro/lenses.c): stamps of a
 * lens galaxy (Sersic light) whose mass, an SIE with external shear (ds_lens), ray-traces a
 * Sersic source behind it; and non-lenses, the same kind of galaxy alone, with an unlensed
 * neighbour, or with a ring (the contaminants of lens searches), their added light as
 * bright as a lensed source's. Space-like: one band, a Gaussian PSF; ground-like: 4 bands
 * u, g, r, i (reference r), Moffat PSFs (beta 3) broadening to the blue, as in the
 * lens-finding challenge (Metcalf et al. 2019), on the stamps' own pixel grid.
 * Conventions: those of the simulator above.
 * ---------------------------------------------------------------------------------------- */
typedef enum { DS_LENS_SPACE = 0, DS_LENS_GROUND } ds_lens_survey;
/* What each stamp shows (the truth table's `kind`). */
typedef enum {
    DS_SCENE_GALAXY = 0,         /* the lens galaxy alone (a non-lens) */
    DS_SCENE_LENS,               /* the galaxy, its mass lensing the source: a lens */
    DS_SCENE_NEIGHBOUR,          /* the galaxy and the source unlensed beside it, at 1 to 1.6
                                    theta_e from its centre (a non-lens) */
    DS_SCENE_RING,               /* the galaxy and an elliptical Gaussian ring (its shape,
                                    radius 0.8 to 1.2 theta_e, sigma the source's hlr) in the
                                    source's colour (a non-lens) */
    DS_SCENE_KINDS
} ds_lens_scene;
typedef struct {
    int64_t count;
    int size;                          /* stamp side, pixels (0: 32; 16 to 256) */
    uint64_t seed;
    ds_lens_survey survey;
    double lens_fraction;              /* [0, 1]: exactly round(f count) rows are lenses, a
                                          seeded choice */
    unsigned negatives;                /* bits 1 << kind of the non-lens kinds used, in turn
                                          (0: galaxy, neighbour and ring) */
    double theta_min, theta_max;       /* Einstein radius, pixels (0, 0: space 3, 8;
                                          ground 2, 5) */
    double q_min;                      /* mass axis ratio uniform in [q_min, 1] (0: 0.5) */
    double gamma_max;                  /* |external shear| uniform in [0, this] (0: 0.05;
                                          < 0: none) */
    double beta_min, beta_max;         /* the source's offset from the lens centre in units of
                                          theta_e, uniform over the annulus (0, 0: 0, 0.8) */
    double src_n_min, src_n_max;       /* (0, 0: 0.5, 1.5) */
    double src_hlr_min, src_hlr_max;   /* pixels (0, 0: space 0.5, 1.5; ground 0.5, 1) */
    double src_e_max;                  /* (0: 0.5) */
    double src_snr_min, src_snr_max;   /* SNR of the added light alone (lensed source,
                                          neighbour or ring) in the reference band (0, 0:
                                          10, 40) */
    double lens_n_min, lens_n_max;     /* (0, 0: 2, 5) */
    double lens_hlr_min, lens_hlr_max; /* pixels (0, 0: space 2, 5; ground 1.5, 3.5) */
    double lens_e_max;                 /* (0: 0.4) */
    double lens_snr_min, lens_snr_max; /* the lens galaxy's SNR in the reference band (0, 0:
                                          20, 100) */
    double offset_max;                 /* lens centre uniform in [-D, D]^2 pixels (0: 0.5;
                                          < 0: none) */
    double psf_fwhm;                   /* the reference band's PSF FWHM, pixels (0: space 1.8,
                                          ground 3.2; the other bands scale it) */
    double sky_sigma;                  /* Gaussian sky noise per band (0: 1) */
} ds_lens_sim_opts;
/* Bands of a survey (1 or 4), and band b's name ("vis"; "u", "g", "r", "i") or NULL. */
DS_API int ds_lens_bands(ds_lens_survey s);
DS_API const char *ds_lens_band_name(ds_lens_survey s, int b);
/* "galaxy", "lens", "neighbour", "ring" for kinds 0 to 3; NULL otherwise; and back (-1). */
DS_API const char *ds_lens_scene_name(int kind);
DS_API int ds_lens_scene_code(const char *name);
/* The truth table's columns (NULL-terminated): is_lens, kind, theta_e, q, phi (degrees),
 * gamma1, gamma2 (the mass; 0 on non-lenses), lens_dx, lens_dy, lens_n, lens_hlr, lens_e1,
 * lens_e2, lens_flux, lens_snr (the galaxy's light, reference band), src_x, src_y (the
 * source's centre in the source plane, or the neighbour's, pixels from the stamp centre;
 * ring: its centre), src_n, src_hlr, src_e1, src_e2 (ring: its radius's ellipticity),
 * src_flux (unlensed, reference band; ring: the ring's), src_snr (the added light alone),
 * mu (a lens's magnification: its lensed flux over the unlensed, over the whole image
 * plane, before the PSF; 1 for a neighbour, 0 otherwise), in_stamp (the fraction of the
 * lensed or added light, before the PSF, that falls on the stamp), outside (1 when the
 * source's centre lies off the stamp or less than half its light falls on it: flagged,
 * not dropped), ring_r (pixels; 0 if no ring), psf_fwhm (reference band). */
DS_API const char *const *ds_lens_sim_columns(void);
DS_API int ds_lens_sim_column_count(void);
/* images [count, bands, size, size] (noisy, the bands' fluxes from fixed colours: README),
 * truth [count, ds_lens_sim_column_count()]. The same seed gives the same bits at any
 * thread count. DS_ERR_ARG naming the option for a bad range, count or size. */
DS_API ds_status ds_sim_lenses(const ds_lens_sim_opts *o, ds_tensor **images,
                               ds_tensor **truth);
/* ------------------------------------------------------------------------------------------
 * Galaxy morphology (issue 19): bulge + disk galaxies in one band (r) or three (g, r, i)
 * (src/astro/morphology.c), and CAS-like morphology statistics (src/astro/cas.c).
 * Conventions: those of the simulator above (pixels, ellipticities, area-kept shears).
 * ---------------------------------------------------------------------------------------- */
#define DS_MORPH_CLASSES 4       /* elliptical, lenticular, spiral, irregular/merger */
#define DS_MORPH_PARTS 5         /* the parts with a colour of their own: */
enum { DS_MORPH_BULGE = 0, DS_MORPH_DISK, DS_MORPH_BAR, DS_MORPH_CLUMPS, DS_MORPH_COMPANION };
enum { DS_MORPH_ELLIPTICAL = 0, DS_MORPH_LENTICULAR, DS_MORPH_SPIRAL, DS_MORPH_IRREGULAR };
#define DS_MORPH_MAX_CLUMPS 8
/* A galaxy as Sersic components sharing the centre (dx, dy), fluxes as fractions of the
 * total r-band flux: the bulge bt, a bar, clumps, a companion, and the disk the rest. The
 * disk (Sersic disk_n, half-light radius disk_hlr) is inclined by disk_incl degrees (0:
 * face on) with intrinsic thickness disk_q0, so its axis ratio is sqrt(cos^2 i + q0^2
 * sin^2 i), major axis at disk_pa degrees counter-clockwise from +x. Spiral arms (arms = m
 * > 0) and lopsidedness are perturbations of the disk's light in its own plane (radius R,
 * azimuth t): a factor 1 + w(R) [arm_amp (f / <f> - 1) + lopsided cos(t - arm_phase)],
 * f = ((1 + cos(m (t - cot(arm_pitch) ln(R / disk_hlr)) - arm_phase)) / 2)^2, w = 1 -
 * exp(-(2 R / disk_hlr)^2), whose mean over t is 1: they move light, the disk's flux is
 * kept. The bar: a Sersic n = 0.5 of axis ratio bar_q at bar_angle degrees from the line of
 * nodes in the disk plane, projected with the disk. Clumps: round Sersic n = 0.5 of
 * clump_hlr pixels at (clump_x, clump_y) in the disk plane (units of disk_hlr), sharing
 * clump_frac by their weights clump_w. The companion: a Sersic at (comp_dx, comp_dy) from
 * the centre. colour[part] = {g - r, r - i} of each part (AB magnitudes): its g flux is
 * 10^(-0.4 (g - r)) and its i flux 10^(0.4 (r - i)) times its r flux. */
typedef struct {
    double flux;                 /* total r-band flux (sum over an infinite stamp) */
    double dx, dy;               /* centre, pixels from the stamp centre */
    double bt;                   /* bulge-to-total, [0, 1] */
    double bulge_n, bulge_hlr, bulge_e1, bulge_e2;
    double disk_n, disk_hlr, disk_incl, disk_pa, disk_q0;
    int arms;                    /* 0: none; 1 to 8 */
    double arm_amp, arm_pitch, arm_phase;   /* [0, 1] (with lopsided: sum <= 1), degrees */
    double lopsided;             /* m = 1 amplitude, [0, 1] */
    double bar_frac, bar_hlr, bar_q, bar_angle;
    int clumps;                  /* 0 .. DS_MORPH_MAX_CLUMPS */
    double clump_frac, clump_hlr;
    double clump_x[DS_MORPH_MAX_CLUMPS], clump_y[DS_MORPH_MAX_CLUMPS], clump_w[DS_MORPH_MAX_CLUMPS];
    double comp_frac, comp_n, comp_hlr, comp_e1, comp_e2, comp_dx, comp_dy;
    double colour[DS_MORPH_PARTS][2];
} ds_morph_galaxy;
/* Renders g noiseless, convolved with psf (NULL or NONE: none) and integrated over each
 * pixel, into img [bands, size, size]: bands 1 is r alone, 3 is g, r, i. Each component
 * is integrated as ds_galaxy_render integrates a Sersic profile and the components are
 * summed before one convolution per band, so the total flux is that of the parts (flux
 * outside the stamp is lost). DS_ERR_ARG naming the parameter for a bad galaxy. */
DS_API ds_status ds_morph_render(const ds_morph_galaxy *g, const ds_psf *psf, int size,
                                 int bands, float *img);
/* The simulator: row i is of class i mod 4 (balanced classes), its parameters drawn from
 * its own stream (README: the distributions per class), rendered, its flux set so that its
 * r-band image has the drawn SNR (GalSim's), and Gaussian sky noise added in each band. */
typedef struct {
    int64_t count;
    int size;                    /* stamp size (0: 48) */
    uint64_t seed;
    int bands;                   /* 1 (r) or 3 (g, r, i) (0: 1) */
    double snr_min, snr_max;     /* r-band SNR, uniform; snr_max <= 0: noiseless, flux 1 */
    double sky_sigma;            /* (0: 1) */
    double offset_max;           /* centre offsets uniform in [-offset_max, offset_max] */
    ds_psf psf;                  /* one PSF for every stamp (kind NONE: none) */
    double hlr_min, hlr_max;     /* the disk's half-light radius, pixels (0, 0: 3, 7) */
    double bar_prob;             /* of a bar in lenticulars and spirals, [0, 1] */
    double merger_frac;          /* of mergers among the irregular class, [0, 1] */
} ds_morph_opts;
/* "elliptical", "lenticular", "spiral", "irregular" for 0 to 3; NULL otherwise. */
DS_API const char *ds_morph_class_name(int c);
/* The truth table's columns: class, bt, flux, snr, dx, dy, bulge_n, bulge_hlr, bulge_e1,
 * bulge_e2, disk_n, disk_hlr, incl, disk_pa, disk_e1, disk_e2 (the projected disk), arms,
 * arm_amp, arm_pitch, lopsided, bar_frac, clumps, clump_frac, comp_frac, comp_sep (pixels),
 * merger (0 or 1), psf_fwhm, g_r, r_i (the whole galaxy's colours). */
DS_API const char *const *ds_morph_columns(void);
DS_API int ds_morph_column_count(void);
/* images [count, bands, size, size], truth [count, ds_morph_column_count()]. The same seed
 * gives the same bits at any thread count. DS_ERR_ARG naming the option. */
DS_API ds_status ds_sim_morphology(const ds_morph_opts *o, ds_tensor **images,
                                   ds_tensor **truth);

/* CAS statistics of a galaxy stamp, as Conselice (2003, ApJS 147, 1) defines them, with the
 * apertures of Bershady et al. (2000) and Lotz et al. (2004) (statmorph's choices):
 * - the centre minimizes the asymmetry's numerator over a half-pixel grid within 2 pixels of
 *   the flux-weighted centroid (a 180-degree turn about it maps pixels onto pixels);
 * - r_petro: the circular Petrosian radius, where the mean surface brightness in the annulus
 *   [0.8 r, 1.25 r] is 0.2 times the mean within r (curves of growth from pixel centres);
 * - concentration C = 5 log10(r80 / r20), the radii holding 20% and 80% of the flux within
 *   1.5 r_petro;
 * - asymmetry A = sum |I - I_180| / sum |I| - A_sky within 1.5 r_petro, where A_sky is the
 *   noise's own term, 2 sigma / sqrt(pi) per pixel (E|n1 - n2| of two sky pixels);
 * - smoothness (clumpiness) S = 10 sum max(I - I_s, 0) / sum I - S_sky over 0.25 r_petro <
 *   r < 1.5 r_petro, I_s the image smoothed by a box of odd width nearest 0.25 r_petro (at
 *   least 3), S_sky the noise's term, 10 sigma sqrt(1 - 1/w^2) / sqrt(2 pi) per pixel.
 * sky_sigma <= 0: estimated as 1.4826 times the median absolute deviation of the stamp's
 * outer two-pixel frame. A stamp without positive flux is flagged (ok 0, values 0). */
typedef struct {
    double c, a, s;              /* concentration, asymmetry, smoothness */
    double r_petro, r20, r80;    /* pixels */
    double xc, yc;               /* the asymmetry centre, pixels (x = column) */
    double flux;                 /* within 1.5 r_petro */
    double sky_sigma;            /* used */
    int ok;                      /* 0: failed (no positive flux); the values are then 0 */
} ds_cas;
/* img: size x size. DS_ERR_ARG for NULL pointers or size < 8. */
DS_API ds_status ds_cas_measure(const float *img, int size, double sky_sigma, ds_cas *out);

/* ---- Data-parallel training across processes (MPI ranks: `mpirun -np K deepsky train`) ----
 * The library stays free of MPI: the caller gives the group's collectives (the command line's
 * src/mpi/dist.c implements them with MPI). With ds_fit_opts.dist of size K > 1, every
 * process runs ds_net_fit_feed on the same data, model, seed and options; batch_size (times
 * accumulate) is the GLOBAL step: each step's samples, taken in the shuffled global order of
 * the seed, are split into K contiguous shards (rank r takes the r-th), each rank's passes
 * are seeded with its shard's share of the step, and the gradients, the loss and the metric
 * are summed over the ranks in the trainer's step (after the backward passes, before the
 * NaN check, the user's gradient hook and the update), so every rank takes the same update.
 * Batch norm normalizes per rank (as PyTorch's DDP without SyncBN), or with sync_bn over
 * the whole step (SyncBN: the mean and variance of the group's samples, and in backward the
 * group's sums of dy and dy xh, each one sum_double per layer and pass; every rank must then
 * make the same number of passes per step, else DS_ERR_ARG on all ranks); its running
 * statistics are averaged over the ranks after each step. Rank 0 alone writes the weights, the
 * checkpoint, the log and the curve; every rank reads the checkpoint on resume, and K may
 * differ from the interrupted run's (its optimizer state is global). Streams are not
 * sharded (DS_ERR_ARG). */
typedef struct ds_dist {
    int rank, size;        /* this process, and the group's size */
    /* Replaces x[0..n) by its sum over the group, identical on every rank; a failure (a
     * dead rank, a timeout) returns a status with its message. Every rank calls the same
     * collectives in the same order. */
    ds_status (*sum_float)(void *ctx, float *x, int64_t n);
    ds_status (*sum_double)(void *ctx, double *x, int64_t n);
    ds_status (*bcast)(void *ctx, void *buf, size_t bytes);   /* rank 0's bytes to all */
    const char *(*message)(void *ctx);   /* why the last collective failed */
    void *ctx;
    /* 1: compare a checksum of the weights and optimizer steps over the ranks after every
     * step (a DS_ERR_STATE naming the step when they differ); 0: at every epoch's end */
    int check_every_step;
    int sync_bn;           /* 1: batch norm with the group's batch statistics (SyncBN) */
} ds_dist;
/* A 64-bit checksum of the model's parameter values (bits and names): equal on two ranks
 * exactly when their weights are bit-identical (to hash collisions). */
DS_API uint64_t ds_model_checksum(const ds_model *m);

/* ------------------------------------------------------------------------------------------
 * ONNX export and import (src/onnx/; README "ONNX"). Built when Debian's libprotobuf-c and
 * protoc-c are present (the Makefile compiles the ONNX schema, src/onnx/onnx.proto, with
 * protoc-c); without them (NO_ONNX=1) every function fails with DS_ERR_ARG saying so, and
 * ds_has_feature("onnx") is 0.
 * ---------------------------------------------------------------------------------------- */
/* Writes the inference graph of n (its inputs to its outputs, losses left out) with its
 * current weights as an ONNX model (opset 17, IR version 8) at path (atomic). The batch
 * dimension of every input and output is symbolic ("N"); batch norm is kept as
 * BatchNormalization (running statistics), dropout and Bayesian sampling become their
 * inference values (identity, posterior mean). Each input's preprocessing (ds_scale_kind)
 * is part of the graph, so the ONNX model takes raw data, and is also recorded in the
 * metadata ("deepsky.input.<name>.scale", "...scale_a"), beside the training metadata of
 * the weights (train.*). Fails naming the layer and op without an ONNX equivalent. */
DS_API ds_status ds_onnx_export(const ds_net *n, const char *path);
/* The same into memory: *buf (malloc'd, the caller frees it) of *len bytes. */
DS_API ds_status ds_onnx_export_mem(const ds_net *n, void **buf, size_t *len);
/* Reads an ONNX model (file path, or len bytes at buf; name stands for it in messages) made
 * of the ops deepsky's layers cover (README "ONNX" lists them) and translates it into a
 * model file's text (*text, malloc'd) and a net built from it holding the ONNX weights
 * (*net; save them with ds_net_save_weights). Errors name the file and, for an op that
 * has no deepsky layer, a cycle, or a value nothing produces, the node and its op;
 * truncated or corrupt protobuf gives DS_ERR_FORMAT. */
DS_API ds_status ds_onnx_import(const char *path, char **text, ds_net **net);
DS_API ds_status ds_onnx_import_mem(const void *buf, size_t len, const char *name, char **text,
                                    ds_net **net);

/* ------------------------------------------------------------------------------------------
 * Python bindings (issue 20): what the ctypes package python/deepsky needs beyond the API
 * above. Data from NumPy enters the library without a copy through a borrowed tensor.
 * ---------------------------------------------------------------------------------------- */
/* A tensor over the caller's numel(shape) floats at data (C order), which it neither copies
 * nor frees: ds_tensor_free releases only the tensor, and data must outlive it. Functions
 * that write into their arguments (ds_net_preprocess, ds_net_preprocess_feed) write into
 * data. NULL with a message for a bad shape, or data NULL with elements. */
DS_API ds_tensor *ds_tensor_borrow(int ndim, const int64_t *shape, float *data);

#ifdef __cplusplus
}
#endif
#endif
