/* activation.c - activation ops (sigmoid, tanh, relu, softplus, leaky ReLU, ELU, PReLU,
 * softmax, log-softmax over any axis): shape rules, forward, backward; the PReLU layer and
 * ds_activate, which layers use for their activation= option. */
#include "../internal.h"

#include <math.h>

/* ---- pointwise activations: y = f(x); fa[0] is the slope (leaky ReLU) or alpha (ELU) ---- */
static ds_status same_shape(ds_node *y)
{
    dsi_set_shape(y, y->in[0]->ndim, y->in[0]->shape);
    return DS_OK;
}

/* Stable for any x: exp never overflows. */
static inline float sigmoidf(float x)
{
    if (x >= 0)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

#define SOFTPLUS_THRESHOLD 20.0f   /* PyTorch's default (beta 1): linear above it */

DS_HOT
static void act_forward(ds_node *y)
{
    const float *x = y->in[0]->data;
    float *o = y->data, c = y->fa[0];
    int64_t n = y->numel;
    switch (y->op) {
    case DS_OP_SIGMOID:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = sigmoidf(x[i]);
        break;
    case DS_OP_TANH:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = tanhf(x[i]);
        break;
    case DS_OP_RELU:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0 ? x[i] : 0.0f;
        break;
    case DS_OP_SOFTPLUS:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] > SOFTPLUS_THRESHOLD ? x[i] : log1pf(expf(x[i]));
        break;
    case DS_OP_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0 ? x[i] : x[i] * c;
        break;
    default:   /* DS_OP_ELU */
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0 ? x[i] : c * expm1f(x[i]);
        break;
    }
}

/* PyTorch's backward formulas: sigmoid dy (1 - y) y, tanh dy (1 - y^2), relu dy [y > 0],
 * softplus dy z / (z + 1) with z = e^x (dy above the threshold), ELU dy alpha e^x for x <= 0. */
DS_HOT
static void act_backward(ds_node *y)
{
    const float *x = y->in[0]->data, *o = y->data, *dy = y->grad;
    float *dx = y->in[0]->grad, c = y->fa[0];
    int64_t n = y->numel;
    switch (y->op) {
    case DS_OP_SIGMOID:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - o[i]) * o[i];
        break;
    case DS_OP_TANH:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - o[i] * o[i]);
        break;
    case DS_OP_RELU:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += o[i] > 0 ? dy[i] : 0.0f;
        break;
    case DS_OP_SOFTPLUS:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float z = expf(x[i]);
            dx[i] += x[i] > SOFTPLUS_THRESHOLD ? dy[i] : dy[i] * z / (z + 1.0f);
        }
        break;
    case DS_OP_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : dy[i] * c;
        break;
    default:   /* DS_OP_ELU */
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : dy[i] * c * expf(x[i]);
        break;
    }
}

/* Element by element, so forward may run in place; reads: what each backward above uses. */
#define ACT_DEF(id, nm, reads)                                                            \
    const ds_op_def dsi_op_##id = { .name = nm, .shape = same_shape, .forward = act_forward, \
                                    .backward = act_backward, .bwd_reads = reads,            \
                                    .inplace = true }
ACT_DEF(sigmoid, "sigmoid", dsi_reads_out);
ACT_DEF(tanh, "tanh", dsi_reads_out);
ACT_DEF(relu, "relu", dsi_reads_out);
ACT_DEF(softplus, "softplus", dsi_reads_in0);
ACT_DEF(leaky_relu, "leaky_relu", dsi_reads_in0);
ACT_DEF(elu, "elu", dsi_reads_in0);

static ds_node *act(ds_graph *g, ds_op op, ds_node *x, float c)
{
    return dsi_node(g, op, 1, &x, NULL, 0, &c, 1);
}

ds_node *ds_sigmoid(ds_graph *g, ds_node *x) { return act(g, DS_OP_SIGMOID, x, 0); }
ds_node *ds_tanh(ds_graph *g, ds_node *x) { return act(g, DS_OP_TANH, x, 0); }
ds_node *ds_relu(ds_graph *g, ds_node *x) { return act(g, DS_OP_RELU, x, 0); }
ds_node *ds_softplus(ds_graph *g, ds_node *x) { return act(g, DS_OP_SOFTPLUS, x, 0); }
ds_node *ds_leaky_relu(ds_graph *g, ds_node *x, float slope)
{
    return act(g, DS_OP_LEAKY_RELU, x, slope);
}
ds_node *ds_elu(ds_graph *g, ds_node *x, float alpha) { return act(g, DS_OP_ELU, x, alpha); }

/* ---- PReLU: x [N, C, ...], w [C] (or [1], shared) -> y = x > 0 ? x : w[c] x ---- */
static ds_status prelu_shape(ds_node *y)
{
    const ds_node *x = y->in[0], *w = y->in[1];
    bool ok = w->ndim <= 1 && (w->numel == 1 || (x->ndim >= 2 && w->numel == x->shape[1]));
    if (!ok)
        return dsi_fail_node(y, DS_ERR_SHAPE, "weight %s does not fit input %s (one slope per "
                             "channel on dimension 1, or a single one)",
                             dsi_shape_str(w->ndim, w->shape), dsi_shape_str(x->ndim, x->shape));
    dsi_set_shape(y, x->ndim, x->shape);
    return DS_OK;
}

/* Rows of `inner` elements sharing one slope: channel of row r is r % C. */
static void prelu_dims(const ds_node *y, int64_t *C, int64_t *inner)
{
    const ds_node *x = y->in[0];
    *C = y->in[1]->numel;
    *inner = *C == 1 ? x->numel : x->numel / (x->shape[0] * *C);
}

DS_HOT
static void prelu_forward(ds_node *y)
{
    const float *x = y->in[0]->data, *w = y->in[1]->data;
    int64_t C, inner;
    prelu_dims(y, &C, &inner);
    int64_t rows = y->numel / inner;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float s = w[r % C];
        const float *xr = x + r * inner;
        float *o = y->data + r * inner;
        for (int64_t i = 0; i < inner; i++)
            o[i] = xr[i] > 0 ? xr[i] : s * xr[i];
    }
}

/* dx = x > 0 ? dy : w dy;  dw[c] += sum over channel c of (x > 0 ? 0 : x dy). */
DS_HOT
static void prelu_backward(ds_node *y)
{
    const float *x = y->in[0]->data, *w = y->in[1]->data, *dy = y->grad;
    float *dx = y->in[0]->grad, *dw = y->in[1]->grad;
    int64_t C, inner;
    prelu_dims(y, &C, &inner);
    int64_t rows = y->numel / inner;
    if (dx) {
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            float s = w[r % C];
            for (int64_t i = r * inner; i < (r + 1) * inner; i++)
                dx[i] += x[i] > 0 ? dy[i] : s * dy[i];
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
        for (int64_t c = 0; c < C; c++) {
            double acc = 0;
            for (int64_t r = c; r < rows; r += C)
                for (int64_t i = r * inner; i < (r + 1) * inner; i++)
                    acc += x[i] > 0 ? 0.0f : x[i] * dy[i];
            dw[c] += (float)acc;
        }
    }
}

const ds_op_def dsi_op_prelu = {
    .name = "prelu", .shape = prelu_shape, .forward = prelu_forward, .backward = prelu_backward,
    .bwd_reads = dsi_reads_in01,
};

ds_node *ds_prelu(ds_graph *g, ds_node *x, const char *name, int shared)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    int64_t C = 1;
    if (!shared) {
        if (x->ndim < 2) {
            dsi_fail(DS_ERR_SHAPE, "prelu '%s': input '%s' has shape %s; a slope per channel "
                     "needs [batch, channels, ...] (or use a shared slope)",
                     name && *name ? name : "prelu", dsi_node_layer(x),
                     dsi_shape_str(x->ndim, x->shape));
            return dsi_build_fail(g, DS_ERR_SHAPE);
        }
        C = x->shape[1];
    }
    char lname[DS_NAME_MAX];
    if (!dsi_layer_begin(g, "PReLU", "prelu", name, lname))
        return NULL;
    ds_param *w = dsi_model_get_param(g->m, lname, "weight", 1, &C, 1,
                                      (ds_init){DS_INIT_CONSTANT, 0.25f, 0});
    ds_node *y = NULL;
    if (!w)
        dsi_build_fail(g, dsi_last_status());
    else
        y = dsi_node(g, DS_OP_PRELU, 2, (ds_node *[]){x, ds_param_node(g, w)}, NULL, 0, NULL, 0);
    return dsi_layer_end(g, y);
}

/* ---- softmax and log-softmax along ia[0] (negative from the end) ----
 * Each line along the axis is shifted by its maximum first, so exp never overflows:
 * softmax = e^(x - m) / sum, log_softmax = x - m - log(sum e^(x - m)). */
static ds_status softmax_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    if (dsi_axis((int)y->ia[0], x->ndim) < 0)
        return dsi_fail_node(y, DS_ERR_SHAPE, "axis %lld is out of range for input of shape %s",
                             (long long)y->ia[0], dsi_shape_str(x->ndim, x->shape));
    dsi_set_shape(y, x->ndim, x->shape);
    return DS_OK;
}

/* The input as [outer, K, inner] around the axis. */
static void softmax_dims(const ds_node *y, int64_t *K, int64_t *inner)
{
    const ds_node *x = y->in[0];
    int a = dsi_axis((int)y->ia[0], x->ndim);
    *K = x->shape[a];
    *inner = 1;
    for (int d = a + 1; d < x->ndim; d++)
        *inner *= x->shape[d];
}

DS_HOT
static void softmax_forward(ds_node *y)
{
    int64_t K, s;
    softmax_dims(y, &K, &s);
    int64_t lines = y->numel / K;
    bool lg = y->op == DS_OP_LOG_SOFTMAX;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t l = 0; l < lines; l++) {
        int64_t base = (l / s) * K * s + l % s;
        const float *x = y->in[0]->data + base;
        float *o = y->data + base;
        float m = -INFINITY;
        for (int64_t k = 0; k < K; k++)
            m = fmaxf(m, x[k * s]);
        double sum = 0;
        for (int64_t k = 0; k < K; k++) {
            float e = expf(x[k * s] - m);
            if (!lg)
                o[k * s] = e;
            sum += e;
        }
        if (lg) {
            float ls = logf((float)sum);
            for (int64_t k = 0; k < K; k++)
                o[k * s] = x[k * s] - m - ls;
        } else {
            float fs = (float)sum;
            for (int64_t k = 0; k < K; k++)
                o[k * s] /= fs;
        }
    }
}

/* softmax: dx = y (dy - sum(dy y));  log_softmax: dx = dy - e^y sum(dy). */
DS_HOT
static void softmax_backward(ds_node *y)
{
    int64_t K, s;
    softmax_dims(y, &K, &s);
    int64_t lines = y->numel / K;
    bool lg = y->op == DS_OP_LOG_SOFTMAX;
#pragma omp parallel for schedule(static) if (y->numel > DS_PAR_MIN)
    for (int64_t l = 0; l < lines; l++) {
        int64_t base = (l / s) * K * s + l % s;
        const float *o = y->data + base, *dy = y->grad + base;
        float *dx = y->in[0]->grad + base;
        double acc = 0;
        for (int64_t k = 0; k < K; k++)
            acc += lg ? dy[k * s] : dy[k * s] * o[k * s];
        float t = (float)acc;
        for (int64_t k = 0; k < K; k++)
            dx[k * s] += lg ? dy[k * s] - expf(o[k * s]) * t : o[k * s] * (dy[k * s] - t);
    }
}

const ds_op_def dsi_op_softmax = {
    .name = "softmax", .shape = softmax_shape, .forward = softmax_forward,
    .backward = softmax_backward, .bwd_reads = dsi_reads_out,
};
const ds_op_def dsi_op_log_softmax = {
    .name = "log_softmax", .shape = softmax_shape, .forward = softmax_forward,
    .backward = softmax_backward, .bwd_reads = dsi_reads_out,
};

ds_node *ds_softmax(ds_graph *g, ds_node *x, int axis)
{
    return dsi_node(g, DS_OP_SOFTMAX, 1, &x, (int64_t[]){axis}, 1, NULL, 0);
}

ds_node *ds_log_softmax(ds_graph *g, ds_node *x, int axis)
{
    return dsi_node(g, DS_OP_LOG_SOFTMAX, 1, &x, (int64_t[]){axis}, 1, NULL, 0);
}

/* ---- by kind ---- */
ds_node *ds_activate(ds_graph *g, ds_node *x, ds_activation a, const char *layer)
{
    if (!g || !x || g->status != DS_OK)
        return NULL;
    int axis = x->ndim >= 2 ? 1 : 0;   /* softmax over the features/classes */
    switch (a) {
    case DS_ACT_NONE: return x;
    case DS_ACT_RELU: return ds_relu(g, x);
    case DS_ACT_SIGMOID: return ds_sigmoid(g, x);
    case DS_ACT_TANH: return ds_tanh(g, x);
    case DS_ACT_SOFTPLUS: return ds_softplus(g, x);
    case DS_ACT_LEAKY_RELU: return ds_leaky_relu(g, x, 0.01f);
    case DS_ACT_ELU: return ds_elu(g, x, 1.0f);
    case DS_ACT_SOFTMAX: return ds_softmax(g, x, axis);
    case DS_ACT_LOG_SOFTMAX: return ds_log_softmax(g, x, axis);
    case DS_ACT_PRELU: {
        char name[DS_NAME_MAX + 8];
        if (layer && *layer)
            snprintf(name, sizeof name, "%s.prelu", layer);
        return ds_prelu(g, x, layer && *layer ? name : NULL, x->ndim < 2);
    }
    default:
        dsi_fail(DS_ERR_ARG, "activation %d of layer '%s' is unknown", (int)a,
                 layer ? layer : "?");
        return dsi_build_fail(g, DS_ERR_ARG);
    }
}

const char *ds_activation_name(ds_activation a)
{
    static const char *const names[DS_ACT_COUNT] = {
        [DS_ACT_NONE] = "linear", [DS_ACT_RELU] = "relu", [DS_ACT_SIGMOID] = "sigmoid",
        [DS_ACT_TANH] = "tanh", [DS_ACT_SOFTPLUS] = "softplus",
        [DS_ACT_LEAKY_RELU] = "leaky_relu", [DS_ACT_ELU] = "elu", [DS_ACT_SOFTMAX] = "softmax",
        [DS_ACT_LOG_SOFTMAX] = "log_softmax", [DS_ACT_PRELU] = "prelu",
    };
    return ((int)a >= 0 && (int)a < DS_ACT_COUNT) ? names[a] : "unknown";
}
