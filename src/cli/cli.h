/* cli.h - shared pieces of the command line tool: option parsing, data loading, output. */
#ifndef DS_CLI_H
#define DS_CLI_H

#include "deepsky.h"

#include <stdbool.h>
#include <stdio.h>

/* One option of a command: "--name" (or "-x" short), with or without a value. */
typedef struct {
    const char *name;     /* "data" for --data */
    char short_name;      /* 'o' for -o, or 0 */
    const char *arg;      /* value placeholder ("FILE"), NULL for a flag */
    const char *help;
    const char *value;    /* parsed value ("1" for flags), NULL if absent; the first if repeated */
    bool repeat;          /* may be given several times (up to DS_FEED_MAX) */
    const char *values[DS_FEED_MAX];   /* every value of a repeated option */
    int n_values;
} cli_opt;

/* An option ("--name", short -s or 0, value placeholder or NULL for a flag, help), and one
 * that may be repeated. */
#define CLI_OPT(name_, short_, arg_, help_) \
    {.name = (name_), .short_name = (short_), .arg = (arg_), .help = (help_)}
#define CLI_OPTS(name_, short_, arg_, help_) \
    {.name = (name_), .short_name = (short_), .arg = (arg_), .help = (help_), .repeat = true}

typedef struct {
    const char *name;
    const char *usage;    /* "MODEL --data X ..." */
    const char *about;
    cli_opt *opts;
    int n_opts;
    const char *positional[4];
    int n_positional, min_positional, max_positional;
} cli_cmd;

/* Parses argv (after the command name). Returns 0, or 2 after printing a usage error;
 * returns -1 after printing --help (exit 0). */
int cli_parse(cli_cmd *c, int argc, char **argv);
const char *cli_get(const cli_cmd *c, const char *name);
/* Every value of an option (repeated ones may have several); returns their count. */
int cli_values(const cli_cmd *c, const char *name, const char *const **out);
bool cli_has(const cli_cmd *c, const char *name);
void cli_help(const cli_cmd *c, FILE *fp);
/* Numbers with range checks; print a usage error and return false on bad input. */
bool cli_long(const cli_cmd *c, const char *name, long lo, long hi, long dflt, long *out);
/* --name "a:b" or "a" (then b = a), each in [lo, hi] and a <= b, into *a and *b (left as
 * they are when the option is absent); false after a usage error naming it. */
bool cli_range(const cli_cmd *c, const char *name, double lo, double hi, double *a, double *b);
bool cli_double(const cli_cmd *c, const char *name, double lo, double hi, double dflt, double *out);

/* Prints "deepsky: error: <ds_last_error()>" and returns 1. */
int cli_fail(void);
int cli_usage_error(const cli_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes text to path through a temporary file renamed into place: 0, or 1 with the error
 * printed (the temporary file removed). */
int cli_write_text(const char *path, const char *text);

/* ---- named data (data.c) ---- */
#define CLI_NAME_MAX 64
/* The options of the data commands that say how to read tables and missing values, in the
 * option table of each (train, eval, predict, grad). */
#define CLI_READ_OPTS                                                                         \
    CLI_OPT("no-header", 0, NULL, "CSV: no line names the columns: the first is data, and "  \
            "the columns are 1..N (default: guessed, with a note)"),                          \
    CLI_OPT("header", 0, NULL, "CSV: the first line names the columns, even if it looks "     \
            "like data"),                                                                     \
    CLI_OPT("nan", 0, "HOW", "missing values (NaN, FITS BLANK) in the data: fill:VALUE, mean " \
            "(of the feature, or of the image) or drop-samples (default: an error)")
/* --nan: what becomes of missing values (NaN, FITS BLANK) in the data. */
typedef enum { CLI_NAN_ERROR = 0, CLI_NAN_FILL, CLI_NAN_MEAN, CLI_NAN_DROP } cli_nan_kind;
typedef struct {
    cli_nan_kind kind;
    float value;          /* CLI_NAN_FILL */
} cli_nan;
/* How the files of a set are read: --header/--no-header, --hdu, --nan. */
typedef struct {
    ds_header_mode header;
    int hdu;              /* 0: the first HDU with data */
    const char *hdu_name; /* an EXTNAME, or NULL */
    cli_nan nan;
} cli_read_opts;
/* One value of a NAME=FILE option: the name (empty for a plain FILE), the file, and what
 * was loaded from it. */
typedef struct {
    char name[CLI_NAME_MAX];
    const char *path;
    ds_tensor *t;
    int ndim0;                    /* t's shape as read, before it was fitted to the model */
    int64_t shape0[DS_MAX_DIMS];
    bool fits_image;              /* read from a FITS image HDU */
} cli_item;
/* The data of one set (training, validation, ...): inputs x and labels y (the tensors
 * NULL for a stream's). */
typedef struct {
    cli_item x[DS_FEED_MAX], y[DS_FEED_MAX];
    int nx, ny;
    const char *xopt, *yopt;   /* the options they came from: "data", "labels", ... */
    cli_read_opts ro;
    const char *noted[2 * DS_FEED_MAX];   /* files whose reading note was printed */
    int n_noted;
} cli_data;
/* --hdu: a number from 1 (*num) or an EXTNAME (*name); 0 and NULL without it. 0, or 2
 * after a usage error (--hdu 0 among them: HDUs are numbered from 1). */
int cli_hdu(const cli_cmd *c, int *num, const char **name);
/* --header/--no-header, --hdu and --nan into r; 0, or 2 after a usage error. */
int cli_read_options(const cli_cmd *c, cli_read_opts *r);
/* "NAME=FILE" when the text before the first '=' is non-empty and has no '/'; else the
 * whole value is the file (name ""). */
void cli_split_named(const char *v, char *name, size_t cap, const char **path);
/* The value of a per-name option (--columns, --label-columns, --scale) for name:
 * "NAME=VALUE" if given, else a plain VALUE, else NULL. */
const char *cli_named_value(const cli_cmd *c, const char *opt, const char *name);
/* The values of a NAME=FILE option into items (a plain FILE only alone, no name twice);
 * 0, or 2 after a usage error. */
int cli_named_list(const cli_cmd *c, const char *opt, cli_item *items, int *count);
/* Loads the files of --<xopt> and --<yopt> (yopt NULL: no labels) with their --columns,
 * --label-columns (labels from the data file without --<yopt>; label columns of a data
 * file are left out of its features unless --columns names them), --hdu, --header and
 * --no-header (printing what a reader assumed as a note); drops the samples with NaN
 * (--nan drop-samples) and checks the labels finite. 0, 1 or 2 (printed). cli_data_free
 * releases the tensors. */
int cli_load_set(const cli_cmd *c, const char *xopt, const char *yopt, cli_data *d);
void cli_data_free(cli_data *d);
void cli_data_free_labels(cli_data *d);   /* the labels only */
/* A validation split: --val-split F (shuffled with the training seed, by class for
 * classifiers) or --val-split-last F (the last fraction, in file order). */
typedef struct {
    double fraction;
    bool last;
    uint64_t seed;
    bool quiet;           /* no line saying what was split */
} cli_split;
/* Moves the validation samples of the split (ds_net_split of f, the feed of d for n) of
 * every tensor of d, inputs and labels alike, into val; each side keeps the file order.
 * Prints the split unless quiet. 0, or 1 (printed). */
int cli_split_set(const ds_net *n, cli_data *d, const ds_feed *f, const cli_split *how,
                  cli_data *val);
/* The moving part of cli_split_set, for a split chosen elsewhere (is_val, info). */
int cli_split_rows(cli_data *d, const unsigned char *is_val, const ds_split_info *info,
                   const cli_split *how, cli_data *val);
/* One --scale HOW (none, standardize, per_image, asinh[:A], divide:A) into kind and a;
 * false after a usage error (cmd_train.c). */
bool cli_parse_scale(const cli_cmd *c, const char *v, ds_scale_kind *kind, float *a);
/* Warns (stderr) when the validation labels of a classifier miss a class the training
 * labels have, or have one the training labels lack. ft, fv: the feeds of tr and va. */
void cli_warn_classes(const ds_net *n, const cli_data *tr, const ds_feed *ft, const cli_data *va,
                      const ds_feed *fv);
/* "1 epoch", "2 epochs": the word for a count. */
static inline const char *cli_plural(long long count, const char *one, const char *many)
{
    return count == 1 ? one : many;
}
/* The label mode of each labels file, from its shape as read (shape0), into the net
 * options. */
void cli_label_choices(const cli_data *d, ds_net_opts *o);
/* ---- streams (data.c) ---- */
/* Whether a --data value names several files: a glob (* ? [), a folder, or @LIST. Such a
 * value is loaded whole (the files one after the other), except by train's --data and
 * --labels, which stream it. */
bool cli_is_pattern(const char *path);
/* Whether any --data or --labels value is one. */
bool cli_streams(const cli_cmd *c);
/* Opens the training stream of --data and --labels (with --columns, --label-columns,
 * --hdu, --header; --nan refused), the shuffle buffer of `buffer` samples (0: the
 * default); d gets the items' names, files and shapes as read ([N, sample shape]), no
 * tensors. 0, 1 or 2 (printed). */
int cli_open_stream(const cli_cmd *c, int64_t buffer, cli_data *d, ds_stream **out);
/* Gives each input's samples the model's input shape (ds_stream_reshape) as cli_fit_input
 * does for an array; a plain FILES for a model with several inputs (losses) is an error.
 * 0 or 1 (printed). */
int cli_fit_stream(const ds_net *n, const cli_data *d, ds_stream *s);

/* The feed of d for n, each input reshaped to its node's rank (cli_fit_input), its missing
 * values filled (--nan) and checked finite; a plain FILE for a model with several inputs
 * (losses) is an error. 0 or 1 (printed). */
int cli_feed(const ds_net *n, cli_data *d, ds_feed *f);

/* ---- the files a command reads and writes (outputs.c) ---- */
#define CLI_FILES_MAX 64
typedef struct {
    const char *path;
    char what[96];        /* how the command line names it: "-o", "--log", "MODEL", ... */
} cli_file;
typedef struct {
    cli_file in[CLI_FILES_MAX], out[CLI_FILES_MAX];
    int n_in, n_out;
} cli_files;
/* Adds an input (read by the command) or an output (written); NULL paths are skipped. */
void cli_files_input(cli_files *f, const char *what, const char *path);
void cli_files_output(cli_files *f, const char *what, const char *path);
/* Every file of the NAME=FILE option opt ("data", ...) as an input named "--opt". */
void cli_files_inputs(cli_files *f, const cli_cmd *c, const char *opt);
/* Checks every output before anything is read or written: an existing output must be a
 * regular file (a symbolic link counts as its target), since the atomic writer would
 * replace a device, FIFO or socket by a file; its folder must exist, be writable and not
 * be the device folder /dev (a file system mounted below it, as /dev/shm, is fine); no
 * output may be an input (same device and inode) or another output (same file, or the
 * same new name in the same folder). Returns 0, 1 (the folder) or 2 (usage), printed.
 * cli_files_check_in takes the device folder (tests use a private one). */
int cli_files_check(const cli_cmd *c, const cli_files *f);
int cli_files_check_in(const cli_cmd *c, const cli_files *f, const char *devroot);
/* Whether the resolved folder dir is devroot or below it on the same file system. */
bool cli_in_device_folder(const char *dir, const char *devroot);
/* 0 if path ends in ext (".safetensors"), else a usage error naming what ("-o") and the
 * format ("weights"): 2. */
int cli_output_ext(const cli_cmd *c, const char *what, const char *path, const char *ext,
                   const char *format);
/* A write past `ulimit -f` then fails with a message (EFBIG) instead of killing the tool. */
void cli_ignore_file_size_limit(void);

/* Prints to stderr the line saying which weights n holds, loaded from path, from their
 * training metadata: "weights: W (epoch 12 of 30, best validation loss 0.01234,
 * 2026-12-03T10:40:12Z, deepsky 0.1.0)", or "(no training metadata)". */
void cli_weights_note(const char *path, const ds_net *n);
/* predict with uncertainty (predict_uq.c): --mc N passes (0: none, an ensemble of
 * several --weights run once each), the -o item of each output (which[k]) and, with
 * --samples, the item of its draws (swhich[k]; samples NULL without); --classes: the
 * classifier outputs pooled as probabilities with the argmax of their mean beside. */
typedef struct {
    long passes;
    uint64_t seed;
    int64_t batch;
    const cli_item *outs, *samples;
    const int *which, *swhich;
    bool classes;
} cli_uq_job;
/* Runs ds_net_predict_mc on f (preprocessed here), or ds_net_predict_ensemble on f (raw)
 * when --weights is given more than once, and writes each output's mean and standard
 * deviation (and aleatoric and epistemic parts for gaussian_nll outputs) to its -o file:
 * .npy [N, ..., 2 or 4], tables NAME_mean, NAME_std, ... 0, or 1 after printing. */
int cli_predict_uq(const cli_cmd *c, ds_net *n, ds_feed *f, const cli_uq_job *j);
/* predict -o FOLDER/ (predict_shard.c): whether -o names a folder (ends with '/' or is
 * one); then one .npy output per file of --data (a glob, folder or @LIST) in it, files
 * with an output skipped, failed ones listed (exit 1), rank 0's queue under mpirun. */
bool cli_predict_sharded(const char *out);
int cli_predict_shard(const cli_cmd *c, const char *dir, int64_t batch, uint64_t seed,
                      double timeout);
/* Loads the model file (with the batch size, seed and the label modes of the labels in
 * labels, which may be NULL) and, if weights is non-NULL, its weights. */
int cli_load_net(const char *model, const char *weights, int64_t batch, uint64_t seed,
                 const cli_data *labels, ds_net **out);
/* Label mode for the model's loss from the labels' shape (class indices vs one-hot); NULL
 * or no dims: DS_LABELS_AUTO. */
ds_label_mode cli_label_mode(const ds_tensor *y);
ds_label_mode cli_label_mode_shape(int ndim, const int64_t *shape);
/* Applies --threads. */
bool cli_threads(const cli_cmd *c);

/* Reshapes a loaded data array to the rank of the model's input node in (data.c), reading
 * it as samples along its first axis ([N, F] tables feeding an image input, [N, H, W]
 * cubes feeding [N, 1, H, W] inputs) or, when that does not fit, as one sample (a 2-D
 * image for an HxW or 1xHxW input). 0, or 1 after printing the readings tried. */
int cli_fit_input(const ds_node *in, ds_tensor **x, const char *path);

/* ---- missing values (missing.c) ---- */
/* --nan into n; 0, or 2 after a usage error. */
int cli_nan_option(const cli_cmd *c, cli_nan *n);
/* --nan drop-samples: drops every sample with a NaN in any file of d (a note says which);
 * then the labels must be finite. 0 or 1 (printed). */
int cli_nan_drop(cli_data *d);
/* --nan fill:VALUE or mean on one input (already fitted to the model's input), then checks
 * it finite. 0 or 1 (printed). */
int cli_nan_fill(const cli_data *d, cli_item *it);

/* The tool's entry point (main calls it): dispatches argv[1] to a command. */
int cli_main(int argc, char **argv);
/* Check-only mode (for the fuzz target fuzz/cli.c): each command parses and validates its
 * options, then returns 0 before it opens any file. */
extern bool cli_check_only;
/* In check-only mode, validates the options the data loaders read later (--hdu) and returns
 * true: the command then returns 0. Otherwise false. */
bool cli_stop_here(const cli_cmd *c);

/* Every word the dispatcher and the commands' option tables know, for the fuzz dictionary
 * (fuzz/dict.c): command names, main's own words, and each command's "--name" and "-x".
 * Each command runs once with cli_visitor set, which makes its cli_parse hand the table to
 * the visitor and return -1 (as --help does) before anything else happens. */
void cli_words(void (*fn)(const char *word, void *ctx), void *ctx);
extern void (*cli_visitor)(const cli_cmd *c, void *ctx);
extern void *cli_visitor_ctx;

int cmd_summary(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_sim(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_shear_bias(int argc, char **argv);
int cmd_classic(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_curve(int argc, char **argv);
/* train's pieces that search and curve share (cmd_train.c): --scale checked (false after a
 * usage error), each input's scaling set from the feed f or stream s (0 or 1, printed);
 * --val-split F or --val-split-last F into fraction and is_last (false after a usage
 * error); the settings a resume must match (model file and --weights hashes, data
 * options) as "name: value" lines; and the feeds of train: tr (less the split `how`, into
 * va) and va checked against n, --scale set from tr and both preprocessed (0, 1 or 2,
 * printed). */
bool cli_check_scales(const cli_cmd *c);
int cli_apply_scales(const cli_cmd *c, ds_net *n, const ds_feed *f, ds_stream *s);
bool cli_parse_split(const cli_cmd *c, double *fraction, bool *is_last);
void cli_run_settings(const cli_cmd *c, char *buf, size_t cap);
int cli_train_feeds(const cli_cmd *c, const cli_split *how, ds_net *n, cli_data *tr,
                    cli_data *va, ds_feed *f, ds_feed *fv);
/* The network side of search and curve (search_net.c, curve_net.c): `search MODEL ...` and
 * `curve MODEL ...`, given the parsed command. */
int cli_search_net(cli_cmd *c);
int cli_curve_net(cli_cmd *c);
/* The CSV and figure of a learning curve, for classic methods and networks (cmd_search.c):
 * 0 or 1 (printed). */
int cli_write_curve(const char *path, const ds_curve_point *pt, int n);
int cli_plot_curve(const char *path, const char *what, const ds_curve_point *pt, int n,
                   bool values);
/* --fractions into f (at most cap): the count, or minus a usage error's status. */
int cli_parse_fractions(const cli_cmd *c, const char *s, double *f, int cap);
/* The data options of classic train, eval and predict, search and curve (cmd_classic.c). */
#define CLI_CLASSIC_DATA_OPTS(labels_help)                                                          \
    CLI_OPTS("data", 0, "X", "data (.npy, .fits, .csv or IDX): samples along the first axis "  \
             "(required)"),                                                                     \
    CLI_OPTS("labels", 0, "Y", labels_help),                                                    \
    CLI_OPTS("columns", 0, "COLS", "table data: feature columns"),                              \
    CLI_OPTS("label-columns", 0, "COLS", "table data: label columns (left out of the "         \
             "features)"),                                                                      \
    CLI_OPT("hdu", 0, "N", "FITS: HDU number, 1 = primary, or EXTNAME (default: first with "   \
            "data)"),                                                                           \
    CLI_READ_OPTS,                                                                              \
    CLI_OPT("threads", 0, "N", "threads (default: all cores; the results do not depend on "    \
            "it)")
#define CLI_FEATURES_OPT                                                                        \
    CLI_OPT("features", 0, "F", "image features: pixels, hog[:ORIENT[:CELL[:BLOCK]]] "         \
            "(default 9:8:3), moments or cas (per channel: C, A, S, r_petro, ok) (default: "    \
            "the values as they are)")
#define CLI_SCALE_OPT                                                                           \
    CLI_OPT("scale", 0, "HOW", "none, standardize, per_image, asinh[:A], divide:A (after "      \
            "the features; statistics of the training set; default none)")
#define CLI_TRANSFORM_OPT                                                                       \
    CLI_OPT("transform", 0, "pca:K", "a PCA to K components after scaling, before the "        \
            "method")
#define CLI_CLASSIC_PREP_OPTS CLI_FEATURES_OPT, CLI_SCALE_OPT, CLI_TRANSFORM_OPT
/* Appends every classic method's options (--C, --k, ...) to opts[n, cap); the new count. */
int cli_classic_method_opts(cli_opt *opts, int n, int cap);
/* The method's options, --features, --scale and --transform of c into m; 0 or 2. */
int cli_classic_prepare(const cli_cmd *c, ds_classic *m);
/* One data tensor x (its NaN filled or checked as train does) and labels y (NULL without). */
int cli_classic_tensors(cli_data *d, ds_tensor **x, ds_tensor **y);
int cmd_generate(int argc, char **argv);
/* predict_score.c: whether the model file's losses read labels (true if it does not load);
 * predict --score: its check (0, or 2 printed) and the scores written to path. */
bool cli_model_reads_labels(const char *model);
int cli_score_check(const cli_cmd *c, bool uq);
int cli_predict_score(const cli_cmd *c, ds_net *n, ds_feed *f, const char *path);
int cmd_train_gan(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

#endif
