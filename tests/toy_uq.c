/* toy_uq.c - the uncertainty toy: y = sin(x) + noise of a known sigma(x), and its trainer. */
#include "toy_uq.h"

#include <math.h>
#include <stdlib.h>

double toy_mean(double x) { return sin(x); }
double toy_sigma(double x) { return 0.1 + 0.05 * (x - TOY_X_LO); }

int toy_data(int64_t n, double lo, double hi, uint64_t seed, ds_tensor **x, ds_tensor **y)
{
    ds_rng r;
    ds_rng_seed(&r, seed);
    *x = ds_tensor_create(2, (int64_t[]){n, 1});
    *y = ds_tensor_create(2, (int64_t[]){n, 1});
    if (!*x || !*y) {
        ds_tensor_free(*x);
        ds_tensor_free(*y);
        *x = *y = NULL;
        return 1;
    }
    float *xd = ds_tensor_data(*x), *yd = ds_tensor_data(*y);
    for (int64_t i = 0; i < n; i++) {
        double v = lo + (hi - lo) * ds_rng_uniform(&r);
        xd[i] = (float)v;
        yd[i] = (float)(toy_mean(v) + toy_sigma(v) * ds_rng_normal(&r));
    }
    return 0;
}

ds_tensor *toy_grid(int64_t n, double lo, double hi)
{
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){n, 1});
    for (int64_t i = 0; t && i < n; i++)
        ds_tensor_data(t)[i] = (float)(lo + (hi - lo) * (double)i / (double)(n > 1 ? n - 1 : 1));
    return t;
}

ds_status toy_train(const char *model, const ds_tensor *x, const ds_tensor *y, int epochs,
                    int64_t batch, uint64_t seed, const char *out_path,
                    const ds_tensor_set *meta, ds_net **out)
{
    ds_net_opts o = {.batch = batch, .seed = seed};
    ds_status st = ds_net_parse(model, "toy.model", &o, out);
    if (st)
        return st;
    ds_fit_opts fo = {.epochs = epochs, .batch_size = batch, .seed = seed,
                      .out_path = out_path, .meta = meta, .checkpoint_every = 1e9};
    ds_fit_result r;
    return ds_net_fit(*out, x, y, NULL, NULL, &fo, &r);
}
