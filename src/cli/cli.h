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
    const char *value;    /* parsed value ("1" for flags), NULL if absent */
} cli_opt;

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
bool cli_has(const cli_cmd *c, const char *name);
void cli_help(const cli_cmd *c, FILE *fp);
/* Numbers with range checks; print a usage error and return false on bad input. */
bool cli_long(const cli_cmd *c, const char *name, long lo, long hi, long dflt, long *out);
bool cli_double(const cli_cmd *c, const char *name, double lo, double hi, double dflt, double *out);

/* Prints "deepsky: error: <ds_last_error()>" and returns 1. */
int cli_fail(void);
int cli_usage_error(const cli_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads the model file (with the batch size and label mode) and, if weights is non-NULL,
 * its weights. */
int cli_load_net(const char *model, const char *weights, int64_t batch, uint64_t seed,
                 ds_label_mode labels, ds_net **out);
/* Loads data (and labels) according to the common options --columns, --label-columns,
 * --hdu; x must not be NULL; y may be NULL (then labels are not read). */
int cli_load_data(const cli_cmd *c, const char *xpath, const char *ypath, ds_tensor **x,
                  ds_tensor **y);
/* Label mode for the model's loss from the labels' shape (class indices vs one-hot). */
ds_label_mode cli_label_mode(const ds_tensor *y);
/* Applies --threads. */
bool cli_threads(const cli_cmd *c);

/* Reshapes a loaded data array to the model input's rank: [N, F] tables feeding an
 * image input, or [N, H, W] cubes (FITS, IDX) feeding [N, 1, H, W] inputs. */
int cli_fit_input(const ds_net *n, ds_tensor **x, const char *path);

/* The tool's entry point (main calls it): dispatches argv[1] to a command. */
int cli_main(int argc, char **argv);
/* Check-only mode (for the fuzz target fuzz/cli.c): each command parses and validates its
 * options, then returns 0 before it opens any file. */
extern bool cli_check_only;
/* In check-only mode, validates the options the data loaders read later (--hdu) and returns
 * true: the command then returns 0. Otherwise false. */
bool cli_stop_here(const cli_cmd *c);

int cmd_summary(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_sim(int argc, char **argv);

#endif
