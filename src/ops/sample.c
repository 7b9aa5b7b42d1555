/* sample.c - the VAE's sampling op (reparameterization trick): z = mean + e^(logvar/2) eps;
 * shape rule, forward and backward side by side. */
#include "../internal.h"

#include <math.h>

/* ---- sample_gaussian: inputs mean, logvar of one shape ----
 * When the graph's mode has DS_DROPOUT_ON (training, MC sampling) eps ~ N(0, 1) is a
 * counter-based hash of (graph seed, forward step, node id, element), as dropout's masks and
 * Bayesian weights: reproducible for a seed at any thread count, new at every forward,
 * different between layers. Otherwise (eval) z = mean. saved: eps, for backward.
 *     dmean += dz,  dlogvar += dz eps e^(logvar/2) / 2   (0 when nothing was drawn).
 * state.gauss.z, when set, replaces the output (draws from the prior fed by ds_net_generate). */
static ds_status sample_shape(ds_node *y) { return dsi_shape_of_pair(y, "mean", "logvar"); }

static size_t sample_saved(const ds_node *y) { return (size_t)y->numel * sizeof(float); }

DS_HOT
static void sample_forward(ds_node *y)
{
    const float *m = y->in[0]->data, *lv = y->in[1]->data, *fixed = y->state.gauss.eps;
    float *z = y->data, *eps = y->saved;   /* saved NULL in an inference plan */
    int64_t n = y->numel;
    const ds_graph *g = y->g;
    if (y->state.gauss.z) {
        y->state.gauss.sampled = false;
        memcpy(z, y->state.gauss.z, (size_t)n * sizeof *z);
        return;
    }
    y->state.gauss.sampled = (g->mode & DS_DROPOUT_ON) != 0;
    if (!y->state.gauss.sampled) {
        memcpy(z, m, (size_t)n * sizeof *z);
        return;
    }
    uint64_t key = dsi_mix64(g->seed ^ dsi_mix64((uint64_t)y->id * 0xa0761d6478bd642fULL ^
                                                 dsi_mix64(g->step ^ 0x7661652dULL)));
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN / 8)
    for (int64_t i = 0; i < n; i++) {
        float e = fixed ? fixed[i] : dsi_normal_at(key, i);
        if (eps)
            eps[i] = e;
        z[i] = (float)((double)m[i] + exp(0.5 * (double)lv[i]) * e);
    }
}

DS_HOT
static void sample_backward(ds_node *y)
{
    const float *dz = y->grad, *lv = y->in[1]->data, *eps = y->saved;
    float *dm = y->in[0]->grad, *dlv = y->in[1]->grad;
    int64_t n = y->numel;
    if (y->state.gauss.z)
        return;   /* the output did not depend on the inputs */
    if (dm) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            dm[i] += dz[i];
    }
    if (dlv && y->state.gauss.sampled) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN / 8)
        for (int64_t i = 0; i < n; i++)
            dlv[i] += (float)(0.5 * (double)dz[i] * eps[i] * exp(0.5 * (double)lv[i]));
    }
}

const ds_op_def dsi_op_sample_gaussian = {
    .shape = sample_shape, .cpu = {sample_forward, sample_backward},
    .saved_bytes = sample_saved, .bwd_reads = dsi_reads_in1, .saved_optional = true,
    .stochastic = true,
};

void dsi_sample_fix_noise(ds_node *y, const float *eps)
{
    DS_ASSERT(y->op == DS_OP_SAMPLE_GAUSSIAN);
    y->state.gauss.eps = eps;
}

void dsi_sample_inject(ds_node *y, const float *z)
{
    DS_ASSERT(y->op == DS_OP_SAMPLE_GAUSSIAN);
    y->state.gauss.z = z;
}

ds_node *ds_sample_gaussian(ds_graph *g, ds_node *mean, ds_node *logvar)
{
    if (!g || !mean || !logvar || g->status != DS_OK)
        return NULL;
    char name[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "SampleGaussian", "sample_gaussian", NULL, name))
        return NULL;
    ds_node *in[2] = {mean, logvar};
    return dsi_layer_end(g, dsi_node(g, DS_OP_SAMPLE_GAUSSIAN, 2, in, NULL));
}
