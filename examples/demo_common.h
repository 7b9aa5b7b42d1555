/* demo_common.h - what the galaxy demos (ellipticity, psf, uncertainty, generative) share:
 * flags and fatal errors, the weights files of a training run, training sets for the
 * bias-targeting loss, measuring a set with a CNN (averaged over the eight symmetries of the
 * stamp) or with the moments estimators, and the least-squares fit of
 * e_measured = (1 + m) e_true + c. */
#ifndef DEMO_COMMON_H
#define DEMO_COMMON_H

#include <deepsky.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Names the program in messages ("ellipticity demo"); each demo sets it first. */
extern const char *demo_name;

/* Each demo's usage text, printed after a usage error (NULL: none). */
extern void (*demo_usage)(FILE *fp);

/* A usage error: "<demo_name>: error: " then fmt with its arguments (usually the flag and
 * its value), the usage; returns the exit status 2. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int demo_bad_flag(const char *fmt, ...);
/* The value of the flag argv[*i], one of with_value (NULL-terminated), stepping *i onto it;
 * --help and -h print the usage to stdout and exit 0. NULL after a usage error ("unknown
 * option '--x'", "option '--x' needs a value"): the caller returns the exit status 2. */
const char *demo_flag_value(int argc, char **argv, int *i, const char *const *with_value);
/* The flag a's value v as a whole number in [lo, hi], or a usage error (false). */
bool demo_parse_int(const char *a, const char *v, int64_t lo, int64_t hi, int64_t *out);
/* The flag a's value v as a number in [lo, hi] (an open bound x > 0: lo = nextafter(0, 1)),
 * or a usage error "option 'a' needs <what>, got 'v'" (false); what says the range, e.g.
 * "seconds in [0, 1e6] (0: no limit)". */
bool demo_parse_double(const char *a, const char *v, double lo, double hi, const char *what,
                       double *out);
/* v unless it is empty, else a usage error "option 'a' needs a non-empty value" (false). */
bool demo_parse_text(const char *a, const char *v, const char **out);
/* --loss: msb (*msb true) or mse, else a usage error (false). */
bool demo_parse_loss(const char *a, const char *v, bool *msb);
/* --realizations: a whole number in [2, 64] dividing the batch of 64, else a usage error. */
bool demo_parse_realizations(const char *a, const char *v, int *k);
/* With loss msb, the n_val validation galaxies come in groups of k realizations: 0 if k
 * divides n_val, else a usage error's exit status (2). */
int demo_check_realizations(int64_t n_val, int k);

/* Prints "<demo_name>: error: <ds_last_error()>" and exits with status 1. */
_Noreturn void demo_fail(void);
#define DEMO_TRY(call)                                                                  \
    do {                                                                                \
        if ((call) != DS_OK)                                                            \
            demo_fail();                                                                \
    } while (0)

double demo_now(void);                                  /* monotonic seconds */
void demo_path(const char *dir, const char *name, char *buf, size_t cap);
/* mkdir -p path; on failure says so (demo_name, the folder, why) and exits with 1. */
void demo_make_dirs(const char *path);

/* ---- the weights files of a run whose output is <dir>/<stem>.last.safetensors ----
 * <stem>.safetensors holds the weights that made the tables (the epoch of lowest
 * validation loss), <stem>.last.safetensors the last epoch's. demo_remove_stale removes
 * what an earlier run may have left under names that would mislead (<stem>.best,
 * <stem>.ckpt, <stem>.last.best, <stem>.last.ckpt); demo_keep_best copies the best epoch's
 * file to <stem>.safetensors (metadata kept) and removes the run's other files but the
 * last epoch's. */
void demo_remove_stale(const char *dir, const char *stem);
void demo_keep_best(const char *dir, const char *stem);
/* "epoch 12 of 30, best validation loss 0.01234, 2026-12-03T10:40:12Z" from the metadata
 * of the weights the net loaded. */
void demo_weights_words(const ds_net *n, char *buf, size_t cap);

/* The index of the simulator truth table's column `name` (ds_sim_columns); an unknown
 * name ends the demo. */
int demo_sim_column(const char *name);
/* Training labels: columns e1, e2 of a simulator truth table, [rows, 2]. */
ds_tensor *demo_labels(const ds_tensor *truth);

/* ---- training sets for the bias-targeting loss (loss msb) ----
 * Noiseless stamps img [N, 1, S, S] rendered at unit flux (ds_sim_opts.snr_max = 0) scaled
 * in place to an SNR drawn uniform in [lo, hi] per row (sky sigma 1), the truth's flux and
 * snr columns set to match; the draws are a hash of seed. */
void demo_scale_to_snr(ds_tensor *img, ds_tensor *truth, double lo, double hi, uint64_t seed);
/* The model file at path, loaded for batches of 64 with this seed; group > 0 sets its
 * loss line's group= to it (a loss msb model and the realizations per galaxy of the demo's
 * training rows must agree). Errors (unreadable file, bad model) end the demo. */
ds_net *demo_load_model(const char *path, int group, uint64_t seed);
/* Each row of t k times in consecutive rows: [N, ...] -> [N k, ...]. */
ds_tensor *demo_repeat_rows(const ds_tensor *t, int k);
/* Sky noise of sigma 1 added to every row of img [N, 1, S, S], row i's stream seeded by
 * seed and i: the noisy realizations of a validation set for loss msb. */
void demo_add_sky_noise(ds_tensor *img, uint64_t seed);

/* ---- measurements ---- */
/* One method's measurements of a set: e [n, 2] and a failure flag per row. */
typedef struct {
    int64_t n;
    float *e;
    int *fail;
} demo_measured;
void demo_measured_free(demo_measured *m);

/* The net's first output (e1, e2) for the feed's inputs (preprocessed), averaged over the
 * eight symmetries of the square stamp (mirror x times four quarter turns): every input of
 * shape [N, C, H, W] is transformed alike, and each prediction is mapped back to the
 * stamp's frame (ds_ellipticity_transform is its own inverse). A constant additive bias of
 * the network cancels in the average. */
demo_measured demo_measure_cnn(ds_net *net, const ds_feed *f);

/* Adaptive-moments estimates of the stamps img [N, 1, S, S] (sky sigma 1): stamp i's PSF
 * image is psf + i * psf_stride (psf_stride 0: one PSF for all). */
demo_measured demo_measure_moments(const ds_tensor *img, const float *psf, int64_t psf_stride,
                                   ds_shear_method how);

/* ---- e_measured = (1 + m) e_true + c per component ---- */
typedef struct {
    int64_t n, failed;
    double rmse[2], m[2], dm[2], c[2], dc[2];
} demo_stats;
/* A calibration per SNR bin and component: {m, c} to remove. */
typedef double demo_calib[2][2];

/* Least squares over the successful rows of bin `bin` (rows [bin * per_bin, (bin + 1) *
 * per_bin); bin < 0: all rows) against the truth's e1, e2; with cal (indexed by each
 * row's bin, i / per_bin), after removing each bin's m and c. */
demo_stats demo_fit_bias(const demo_measured *me, const ds_tensor *truth, int bin,
                         int64_t per_bin, const demo_calib *cal);
/* The RMSE of e1 and e2 pooled: sqrt of the mean of the two squares. */
double demo_pooled_rmse(const demo_stats *s);
/* Whether a's RMSE is below b's in both components. */
bool demo_beats(const demo_stats *a, const demo_stats *b);

#endif
