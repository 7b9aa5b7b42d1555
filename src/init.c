/* init.c - parameter initializers (zeros ... LeCun), with PyTorch's fan-in/fan-out rule. */
#include "internal.h"

#include <math.h>

static const char *const names[DS_INIT_COUNT] = {
    [DS_INIT_DEFAULT] = "default", [DS_INIT_ZEROS] = "zeros", [DS_INIT_ONES] = "ones",
    [DS_INIT_CONSTANT] = "constant", [DS_INIT_UNIFORM] = "uniform",
    [DS_INIT_NORMAL] = "normal", [DS_INIT_TRUNC_NORMAL] = "truncated_normal",
    [DS_INIT_GLOROT_UNIFORM] = "glorot_uniform", [DS_INIT_GLOROT_NORMAL] = "glorot_normal",
    [DS_INIT_HE_UNIFORM] = "he_uniform", [DS_INIT_HE_NORMAL] = "he_normal",
    [DS_INIT_LECUN_UNIFORM] = "lecun_uniform", [DS_INIT_LECUN_NORMAL] = "lecun_normal",
    [DS_INIT_TORCH_DEFAULT] = "torch_default",
};

const char *ds_init_name(ds_init_kind k)
{
    return (k >= 0 && k < DS_INIT_COUNT) ? names[k] : "?";
}

/* PyTorch's _calculate_fan_in_and_fan_out: dims 0 and 1 times the receptive field; a 1-D
 * tensor (a bias) has fan_in = fan_out = its length. */
static void fans(int ndim, const int64_t *shape, double *fan_in, double *fan_out)
{
    if (ndim == 0) {
        *fan_in = *fan_out = 1;
        return;
    }
    if (ndim == 1) {
        *fan_in = *fan_out = (double)shape[0];
        return;
    }
    double rf = 1;
    for (int i = 2; i < ndim; i++)
        rf *= (double)shape[i];
    *fan_in = (double)shape[1] * rf;
    *fan_out = (double)shape[0] * rf;
}

ds_status ds_init_fill(float *data, int ndim, const int64_t *shape, ds_init init, ds_rng *rng)
{
    int64_t n = dsi_numel(ndim, shape);
    double fi, fo;
    fans(ndim, shape, &fi, &fo);
    double lim = 0, std = 0, mean = 0;
    bool uniform = false, normal = false, trunc = false;
    switch (init.kind) {
    case DS_INIT_DEFAULT:
    case DS_INIT_ZEROS:
        for (int64_t i = 0; i < n; i++)
            data[i] = 0;
        return DS_OK;
    case DS_INIT_ONES:
        for (int64_t i = 0; i < n; i++)
            data[i] = 1;
        return DS_OK;
    case DS_INIT_CONSTANT:
        for (int64_t i = 0; i < n; i++)
            data[i] = init.a;
        return DS_OK;
    case DS_INIT_UNIFORM:
        if (!(init.b >= init.a))
            return dsi_fail(DS_ERR_ARG, "uniform initializer: high %g < low %g", init.b, init.a);
        for (int64_t i = 0; i < n; i++)
            data[i] = (float)(init.a + (init.b - init.a) * ds_rng_uniform(rng));
        return DS_OK;
    case DS_INIT_NORMAL: normal = true; mean = init.a; std = init.b; break;
    case DS_INIT_TRUNC_NORMAL: trunc = true; mean = init.a; std = init.b; break;
    case DS_INIT_GLOROT_UNIFORM: uniform = true; lim = sqrt(6.0 / (fi + fo)); break;
    case DS_INIT_GLOROT_NORMAL: normal = true; std = sqrt(2.0 / (fi + fo)); break;
    case DS_INIT_HE_UNIFORM: uniform = true; lim = sqrt(6.0 / fi); break;
    case DS_INIT_HE_NORMAL: normal = true; std = sqrt(2.0 / fi); break;
    case DS_INIT_LECUN_UNIFORM: uniform = true; lim = sqrt(3.0 / fi); break;
    case DS_INIT_LECUN_NORMAL: normal = true; std = sqrt(1.0 / fi); break;
    case DS_INIT_TORCH_DEFAULT: uniform = true; lim = 1.0 / sqrt(fi); break;
    default:
        return dsi_fail(DS_ERR_ARG, "unknown initializer %d", (int)init.kind);
    }
    if ((normal || trunc) && !(std >= 0))
        return dsi_fail(DS_ERR_ARG, "%s initializer: standard deviation %g < 0",
                        ds_init_name(init.kind), std);
    for (int64_t i = 0; i < n; i++) {
        if (uniform) {
            data[i] = (float)(lim * (2.0 * ds_rng_uniform(rng) - 1.0));
        } else if (normal) {
            data[i] = (float)(mean + std * ds_rng_normal(rng));
        } else {
            double z;
            do
                z = ds_rng_normal(rng);
            while (fabs(z) > 2.0);
            data[i] = (float)(mean + std * z);
        }
    }
    return DS_OK;
}
