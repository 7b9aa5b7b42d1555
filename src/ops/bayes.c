/* bayes.c - the ops of Bayesian layers (Bayes by backprop, Blundell et al. 2015): a weight
 * sampled from its Gaussian posterior, and the KL divergence of the posterior to the prior.
 * Shape rules, forward and backward side by side. */
#include "../internal.h"

#include <math.h>

/* sigma = softplus(rho) = log(1 + e^rho), PyTorch's threshold: rho itself above 20. */
static double softplus(double r)
{
    return r > 20 ? r : log1p(exp(r));
}

/* d softplus / d rho */
static double sigmoid(double r)
{
    if (r >= 0)
        return 1.0 / (1.0 + exp(-r));
    double e = exp(r);
    return e / (1.0 + e);
}

/* log(softplus(rho)), finite for any rho: softplus(rho) ~ e^rho below -30. */
static double log_softplus(double r)
{
    return r < -30 ? r : log(softplus(r));
}

/* sigmoid(rho) / softplus(rho), which tends to 1 as rho -> -inf. */
static double sigmoid_over_softplus(double r)
{
    return r < -30 ? 1.0 : sigmoid(r) / softplus(r);
}

/* ---- bayes_sample: w = mu + softplus(rho) * eps, eps ~ N(0, 1) ----
 * When the graph's mode has DS_DROPOUT_ON (training, MC dropout); w = mu otherwise. eps is a
 * counter-based hash of (graph seed, forward step, node id, element), as dropout's masks:
 * reproducible for a seed at any thread count, new at every forward, different between
 * layers. saved: eps (numel floats), for backward. dmu += dw, drho += dw eps sigmoid(rho). */
static ds_status sample_shape(ds_node *y) { return dsi_shape_of_pair(y, "mean", "rho"); }

static size_t sample_saved(const ds_node *y) { return (size_t)y->numel * sizeof(float); }

DS_HOT
static void sample_forward(ds_node *y)
{
    const float *mu = y->in[0]->data, *rho = y->in[1]->data, *fixed = y->state.bayes.eps;
    float *w = y->data, *eps = y->saved;   /* saved NULL in an inference plan */
    int64_t n = y->numel;
    const ds_graph *g = y->g;
    y->state.bayes.sampled = (g->mode & DS_DROPOUT_ON) != 0;
    if (!y->state.bayes.sampled) {
        memcpy(w, mu, (size_t)n * sizeof *w);
        return;
    }
    uint64_t key = dsi_mix64(g->seed ^ dsi_mix64((uint64_t)y->id * 0x8cb92ba72f3d8dd7ULL ^
                                                 dsi_mix64(g->step ^ 0x62617965ULL)));
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN / 8)
    for (int64_t i = 0; i < n; i++) {
        float e = fixed ? fixed[i] : dsi_normal_at(key, i);
        if (eps)
            eps[i] = e;
        w[i] = (float)((double)mu[i] + softplus(rho[i]) * e);
    }
}

DS_HOT
static void sample_backward(ds_node *y)
{
    const float *dw = y->grad, *rho = y->in[1]->data, *eps = y->saved;
    float *dmu = y->in[0]->grad, *drho = y->in[1]->grad;
    int64_t n = y->numel;
    if (dmu) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            dmu[i] += dw[i];
    }
    if (drho && y->state.bayes.sampled) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN / 8)
        for (int64_t i = 0; i < n; i++)
            drho[i] += (float)((double)dw[i] * eps[i] * sigmoid(rho[i]));
    }
}

const ds_op_def dsi_op_bayes_sample = {
    .shape = sample_shape, .cpu = {sample_forward, sample_backward},
    .saved_bytes = sample_saved, .bwd_reads = dsi_reads_in1, .saved_optional = true,
    .stochastic = true,
};

void dsi_bayes_fix_noise(ds_node *y, const float *eps)
{
    DS_ASSERT(y->op == DS_OP_BAYES_SAMPLE);
    y->state.bayes.eps = eps;
}

ds_node *ds_bayes_sample(ds_graph *g, ds_node *mu, ds_node *rho)
{
    ds_node *in[2] = {mu, rho};
    return dsi_node(g, DS_OP_BAYES_SAMPLE, 2, in, NULL);
}

/* ---- bayes_kl: weight * sum KL(N(mu, sigma^2) || N(0, s^2)), sigma = softplus(rho) ----
 * Inputs: pairs (mu, rho) of the same shape; a scalar out. Per element
 *     KL = log(s / sigma) + (sigma^2 + mu^2) / (2 s^2) - 1/2,
 *     dKL/dmu = mu / s^2,  dKL/drho = (sigma / s^2 - 1 / sigma) sigmoid(rho).
 * Summed in double in element order: the same bits at any thread count. */
static ds_status kl_shape(ds_node *y)
{
    if (y->n_in % 2)
        return dsi_fail_node(y, DS_ERR_ARG, "%d inputs: expected pairs (mean, rho)", y->n_in);
    for (int k = 0; k < y->n_in; k += 2) {
        const ds_node *mu = y->in[k], *rho = y->in[k + 1];
        if (mu->ndim != rho->ndim ||
            memcmp(mu->shape, rho->shape, (size_t)mu->ndim * sizeof *mu->shape))
            return dsi_fail_node(y, DS_ERR_SHAPE, "pair %d: mean %s and rho %s differ in shape",
                                 k / 2, dsi_shape_str(mu->ndim, mu->shape),
                                 dsi_shape_str(rho->ndim, rho->shape));
    }
    dsi_set_shape(y, 0, NULL);
    return DS_OK;
}

static void kl_forward(ds_node *y)
{
    double s = y->attr.bayes_kl.prior_sigma, inv2 = 0.5 / (s * s), logs = log(s), sum = 0;
    for (int k = 0; k < y->n_in; k += 2) {
        const float *mu = y->in[k]->data, *rho = y->in[k + 1]->data;
        for (int64_t i = 0; i < y->in[k]->numel; i++) {
            double sg = softplus(rho[i]), m = mu[i];
            sum += logs - log_softplus(rho[i]) + (sg * sg + m * m) * inv2 - 0.5;
        }
    }
    y->data[0] = (float)(y->attr.bayes_kl.weight * sum);
}

static void kl_backward(ds_node *y)
{
    double s2 = (double)y->attr.bayes_kl.prior_sigma * y->attr.bayes_kl.prior_sigma;
    double c = (double)y->attr.bayes_kl.weight * y->grad[0];
    for (int k = 0; k < y->n_in; k += 2) {
        const float *mu = y->in[k]->data, *rho = y->in[k + 1]->data;
        float *dmu = y->in[k]->grad, *drho = y->in[k + 1]->grad;
        int64_t n = y->in[k]->numel;
        for (int64_t i = 0; dmu && i < n; i++)
            dmu[i] += (float)(c * mu[i] / s2);
        for (int64_t i = 0; drho && i < n; i++) {
            double r = rho[i];
            drho[i] += (float)(c * (softplus(r) * sigmoid(r) / s2 - sigmoid_over_softplus(r)));
        }
    }
}

const ds_op_def dsi_op_bayes_kl = {
    .shape = kl_shape, .cpu = {kl_forward, kl_backward}, .bwd_reads = dsi_reads_inputs,
};

ds_node *ds_bayes_kl(ds_graph *g, int n, ds_node *const *mu_rho, float prior_sigma,
                     float weight)
{
    if (!g || g->status != DS_OK)
        return NULL;
    /* at most 30 inputs: bwd_reads names inputs 0..30 only */
    if (n < 2 || n > 30 || n % 2 || !(prior_sigma > 0 && isfinite(prior_sigma)) ||
        !(weight >= 0 && isfinite(weight))) {
        dsi_fail(DS_ERR_ARG, "bayes_kl: %d inputs (1 to 15 pairs of mean and rho expected), "
                 "prior sigma %g (> 0 expected), weight %g (>= 0 expected)", n,
                 (double)prior_sigma, (double)weight);
        return dsi_build_fail(g, DS_ERR_ARG);
    }
    dsi_bayes_kl_attr a = {.prior_sigma = prior_sigma, .weight = weight,
                           .auto_weight = weight == 0};
    return dsi_node(g, DS_OP_BAYES_KL, n, mu_rho, &a);
}

/* ---- the KL terms of a graph ---- */
int ds_graph_set_kl_weight(ds_graph *g, float weight)
{
    if (!g || !(weight >= 0 && isfinite(weight)))
        return -1;
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        dsi_bayes_kl_attr *a = &g->nodes[i]->attr.bayes_kl;
        if (g->nodes[i]->op != DS_OP_BAYES_KL || !a->auto_weight)
            continue;
        a->weight = weight;
        a->weight_set = true;
        count++;
    }
    return count;
}

float ds_graph_kl_weight(const ds_graph *g)
{
    for (int i = 0; g && i < g->n_nodes; i++) {
        const dsi_bayes_kl_attr *a = &g->nodes[i]->attr.bayes_kl;
        if (g->nodes[i]->op == DS_OP_BAYES_KL && a->auto_weight)
            return a->weight_set ? a->weight : NAN;
    }
    return NAN;
}

/* Whether KL node y counts parameters an earlier KL node counts (a layer applied twice). */
static bool counted_before(const ds_graph *g, const ds_node *y)
{
    for (int i = 0; i < y->id; i++)
        if (g->nodes[i]->op == DS_OP_BAYES_KL && g->nodes[i]->in[0] == y->in[0])
            return true;
    return false;
}

ds_node *ds_graph_kl_loss(ds_graph *g)
{
    if (!g || g->status != DS_OK)
        return NULL;
    ds_node *total = NULL;
    int n = g->n_nodes, layers = 0;   /* the sums below are nodes too */
    char name[DS_NAME_MAX];
    for (int i = 0; i < n; i++) {
        ds_node *y = g->nodes[i];
        if (y->op != DS_OP_BAYES_KL || counted_before(g, y))
            continue;
        /* the sum of several layers' terms is a layer of its own: "kl_divergence_1" */
        if (layers++ == 1 && !dsi_layer_begin(g, "KLDivergence", "kl_divergence", NULL, name))
            return NULL;
        total = total ? ds_add(g, total, y) : y;
        if (!total)
            break;
    }
    return layers > 1 ? dsi_layer_end(g, total) : total;
}
