/* toy_uq.h - the uncertainty toy (y = sin(x) + noise of a known sigma(x)) and a trainer for
 * it, shared by the uncertainty tests (and reusable by calibration tests). */
#ifndef DS_TEST_TOY_UQ_H
#define DS_TEST_TOY_UQ_H

#include "deepsky.h"

/* The toy's training range, its mean and its noise: sigma grows from 0.05 at x = -3 to
 * 0.35 at x = +3, so a model that fits one sigma for all x is wrong by a factor of 7. */
#define TOY_X_LO (-3.0)
#define TOY_X_HI 3.0
double toy_mean(double x);
double toy_sigma(double x);

/* n samples, x uniform in [lo, hi) and y = sin(x) + toy_sigma(x) * N(0, 1), from seed:
 * *x and *y are [n, 1] (new; the caller frees them). 0, or 1 when out of memory. */
int toy_data(int64_t n, double lo, double hi, uint64_t seed, ds_tensor **x, ds_tensor **y);
/* x on an even grid of n points in [lo, hi], [n, 1]; NULL when out of memory. */
ds_tensor *toy_grid(int64_t n, double lo, double hi);

/* Parses the model text (one input named x, one labelled loss) with seed and trains it on
 * (x, y) for epochs of batch samples; out_path (may be NULL) gets the weights, with the
 * metadata of meta (may be NULL). The net is *out (the caller frees it). */
ds_status toy_train(const char *model, const ds_tensor *x, const ds_tensor *y, int epochs,
                    int64_t batch, uint64_t seed, const char *out_path,
                    const ds_tensor_set *meta, ds_net **out);
#endif
