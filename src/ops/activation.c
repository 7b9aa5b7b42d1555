/* activation.c - activation ops (sigmoid, tanh, relu, softplus, leaky ReLU, ELU, GELU,
 * SiLU, PReLU, softmax, log-softmax over any axis): shape rules, forward, backward; the
 * PReLU layer and ds_activate, which layers use for their activation= option. */
#include "../internal.h"

#include <math.h>

/* ---- pointwise activations: y = f(x); leaky ReLU has a slope, ELU an alpha ---- */
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
    float *o = y->data, c;
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
        c = y->attr.leaky_relu.slope;
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0 ? x[i] : x[i] * c;
        break;
    default:   /* DS_OP_ELU */
        c = y->attr.elu.alpha;
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
    float *dx = y->in[0]->grad, c;
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
        c = y->attr.leaky_relu.slope;
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : dy[i] * c;
        break;
    default:   /* DS_OP_ELU */
        c = y->attr.elu.alpha;
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : dy[i] * c * expf(x[i]);
        break;
    }
}

static double sigmoid_d(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* f'(x) and f''(x) in double, for the Newton rules. */
static void act_derivs(const ds_node *y, double x, double *d1, double *d2)
{
    double s, t;
    switch (y->op) {
    case DS_OP_SIGMOID:
        s = sigmoid_d(x);
        *d1 = s * (1 - s);
        *d2 = s * (1 - s) * (1 - 2 * s);
        break;
    case DS_OP_TANH: t = tanh(x); *d1 = 1 - t * t; *d2 = -2 * t * (1 - t * t); break;
    case DS_OP_RELU: *d1 = x > 0; *d2 = 0; break;
    case DS_OP_LEAKY_RELU: *d1 = x > 0 ? 1 : y->attr.leaky_relu.slope; *d2 = 0; break;
    case DS_OP_SOFTPLUS:   /* linear above the threshold */
        if (x > SOFTPLUS_THRESHOLD) {
            *d1 = 1;
            *d2 = 0;
        } else {
            s = sigmoid_d(x);
            *d1 = s;
            *d2 = s * (1 - s);
        }
        break;
    default:   /* DS_OP_ELU */
        if (x > 0) {
            *d1 = 1;
            *d2 = 0;
        } else {
            *d1 = *d2 = y->attr.elu.alpha * exp(x);
        }
        break;
    }
}

/* Element by element, so forward may run in place; reads: what each backward above uses. */
#define ACT_DEF(id, reads)                                                               \
    const ds_op_def dsi_op_##id = { .shape = same_shape,                                 \
                                    .cpu = {act_forward, act_backward},                  \
                                    .bwd_reads = reads, .inplace = true,                 \
                                    .derivs = act_derivs }
ACT_DEF(sigmoid, dsi_reads_out);
ACT_DEF(tanh, dsi_reads_out);
ACT_DEF(relu, dsi_reads_out);
ACT_DEF(softplus, dsi_reads_in0);
ACT_DEF(leaky_relu, dsi_reads_in0);
ACT_DEF(elu, dsi_reads_in0);

/* ---- GELU and SiLU: y = x g(x) with a smooth gate g, as PyTorch ----
 * gelu:      g = Phi(x), the normal CDF (1 + erf(x / sqrt 2)) / 2 (PyTorch's default);
 *            dy/dx = Phi(x) + x phi(x), phi the normal density.
 * gelu_tanh: g = (1 + tanh(u)) / 2 = sigmoid(2 u), u = sqrt(2/pi) (x + 0.044715 x^3)
 *            (approximate='tanh'); dy/dx = s + 2 x s (1 - s) u', s = sigmoid(2 u).
 * silu:      g = sigmoid(x) = s; dy/dx = s (1 + x (1 - s)).
 * Backward reads x. The loops call no libm function, so the compiler vectorizes them (with
 * libm's scalar erff, expf and tanhf they ran 2 to 20 times slower): e^x and erfc come from
 * exp_v and erfc_v below, plain arithmetic that the vector body and the scalar remainder
 * evaluate identically, so a result does not depend on where a thread's chunk starts. */
#define SQRT1_2f 0.70710678118654752f      /* 1 / sqrt(2) */
#define INV_SQRT_2PIf 0.39894228040143268f /* 1 / sqrt(2 pi) */
#define GELU_Kf 0.79788456080286536f       /* sqrt(2 / pi) */
#define GELU_Cf 0.044715f

/* e^x within 1 ulp on [-87, 88] (checked against exp in double on a sixteenth of the
 * floats there); 0 below, +inf above (e^88 is 1.7e38), NaN for NaN. Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, n ln2_hi exact), e^r by a
 * degree-7 polynomial, 2^n put in the exponent bits. */
static inline float exp_v(float x)
{
    float c = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;   /* finite, also for NaN */
    float fn = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round(c / ln2) */
    float r = (c - fn * 0.693359375f) - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)fn + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float e = p * two_n;
    e = x < -87.0f ? 0.0f : e;
    e = x > 88.0f ? INFINITY : e;
    return x == x ? e : x;
}

/* erfc(z) for z >= 0 with a relative error below 1.2e-7 in exact arithmetic (Numerical
 * Recipes' erfcc, a Chebyshev fit of log(erfc(z) / t)); in float, about 1e-7 relative up
 * to z = 1 and 1e-6 at z = 4, where erfc is 1.5e-8. */
static inline float erfc_v(float z)
{
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    return t * exp_v(p * t - 1.26551223f - z * z);
}

/* Phi(x) = erfc(-x / sqrt 2) / 2, from the small side of 1/2 so the left tail keeps its
 * relative precision. */
static inline float normal_cdf(float x)
{
    float h = 0.5f * erfc_v(fabsf(x) * SQRT1_2f);
    return x > 0 ? 1.0f - h : h;
}

static inline float gelu_tanh_2u(float x) { return 2.0f * GELU_Kf * (x + GELU_Cf * x * x * x); }

DS_HOT
static void gate_forward(ds_node *y)
{
    const float *x = y->in[0]->data;
    float *o = y->data;
    int64_t n = y->numel;
    if (y->op == DS_OP_GELU) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] * normal_cdf(x[i]);
    } else if (y->op == DS_OP_GELU_TANH) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] / (1.0f + exp_v(-gelu_tanh_2u(x[i])));
    } else {   /* DS_OP_SILU */
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] / (1.0f + exp_v(-x[i]));
    }
}

DS_HOT
static void gate_backward(ds_node *y)
{
    const float *x = y->in[0]->data, *dy = y->grad;
    float *dx = y->in[0]->grad;
    int64_t n = y->numel;
    if (y->op == DS_OP_GELU) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float pdf = INV_SQRT_2PIf * exp_v(-0.5f * x[i] * x[i]);
            dx[i] += dy[i] * (normal_cdf(x[i]) + x[i] * pdf);
        }
    } else if (y->op == DS_OP_GELU_TANH) {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float s = 1.0f / (1.0f + exp_v(-gelu_tanh_2u(x[i])));
            float du = 2.0f * GELU_Kf * (1.0f + 3.0f * GELU_Cf * x[i] * x[i]);
            dx[i] += dy[i] * (s + x[i] * s * (1.0f - s) * du);
        }
    } else {
#pragma omp parallel for schedule(static) if (n > DS_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float s = 1.0f / (1.0f + exp_v(-x[i]));
            dx[i] += dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
        }
    }
}

/* f'(x) and f''(x) in double, for the Newton rules: gelu f'' = phi (2 - x^2); gelu_tanh
 * f'' = (1 - t^2) (u' + x (u'' - 2 t u'^2) / 2); silu f'' = s (1 - s) (2 + x (1 - 2 s)). */
static void gate_derivs(const ds_node *y, double x, double *d1, double *d2)
{
    if (y->op == DS_OP_GELU) {
        double cdf = 0.5 * (1 + erf(x * M_SQRT1_2)), pdf = exp(-0.5 * x * x) / sqrt(2 * M_PI);
        *d1 = cdf + x * pdf;
        *d2 = pdf * (2 - x * x);
    } else if (y->op == DS_OP_GELU_TANH) {
        double k = sqrt(2 / M_PI), c = GELU_Cf;
        double t = tanh(k * (x + c * x * x * x)), du = k * (1 + 3 * c * x * x), ddu = 6 * k * c * x;
        *d1 = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
        *d2 = (1 - t * t) * (du + 0.5 * x * (ddu - 2 * t * du * du));
    } else {
        double s = sigmoid_d(x);
        *d1 = s * (1 + x * (1 - s));
        *d2 = s * (1 - s) * (2 + x * (1 - 2 * s));
    }
}

#define GATE_DEF(id)                                                                     \
    const ds_op_def dsi_op_##id = { .shape = same_shape,                                 \
                                    .cpu = {gate_forward, gate_backward},                \
                                    .bwd_reads = dsi_reads_in0, .inplace = true,         \
                                    .derivs = gate_derivs }
GATE_DEF(gelu);
GATE_DEF(gelu_tanh);
GATE_DEF(silu);

ds_node *ds_sigmoid(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_SIGMOID, 1, &x, NULL); }
ds_node *ds_tanh(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_TANH, 1, &x, NULL); }
ds_node *ds_relu(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_RELU, 1, &x, NULL); }
ds_node *ds_softplus(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_SOFTPLUS, 1, &x, NULL); }
ds_node *ds_leaky_relu(ds_graph *g, ds_node *x, float slope)
{
    return dsi_node(g, DS_OP_LEAKY_RELU, 1, &x, &(dsi_leaky_relu_attr){ .slope = slope });
}
ds_node *ds_elu(ds_graph *g, ds_node *x, float alpha)
{
    return dsi_node(g, DS_OP_ELU, 1, &x, &(dsi_elu_attr){ .alpha = alpha });
}
ds_node *ds_gelu(ds_graph *g, ds_node *x, int tanh_approx)
{
    return dsi_node(g, tanh_approx ? DS_OP_GELU_TANH : DS_OP_GELU, 1, &x, NULL);
}
ds_node *ds_silu(ds_graph *g, ds_node *x) { return dsi_node(g, DS_OP_SILU, 1, &x, NULL); }

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
    .shape = prelu_shape, .cpu = {prelu_forward, prelu_backward},
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
        y = dsi_node(g, DS_OP_PRELU, 2, (ds_node *[]){x, ds_param_node(g, w)}, NULL);
    return dsi_layer_end(g, y);
}

/* ---- softmax and log-softmax along attr.softmax.axis (negative from the end) ----
 * Each line along the axis is shifted by its maximum first, so exp never overflows:
 * softmax = e^(x - m) / sum, log_softmax = x - m - log(sum e^(x - m)). */
static ds_status softmax_shape(ds_node *y)
{
    const ds_node *x = y->in[0];
    if (dsi_axis(y->attr.softmax.axis, x->ndim) < 0)
        return dsi_fail_node(y, DS_ERR_SHAPE, "axis %d is out of range for input of shape %s",
                             y->attr.softmax.axis, dsi_shape_str(x->ndim, x->shape));
    dsi_set_shape(y, x->ndim, x->shape);
    return DS_OK;
}

/* The input as [outer, K, inner] around the axis. */
static void softmax_dims(const ds_node *y, int64_t *K, int64_t *inner)
{
    const ds_node *x = y->in[0];
    int a = dsi_axis(y->attr.softmax.axis, x->ndim);
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
    .shape = softmax_shape, .cpu = {softmax_forward, softmax_backward}, .bwd_reads = dsi_reads_out,
};
const ds_op_def dsi_op_log_softmax = {
    .shape = softmax_shape, .cpu = {softmax_forward, softmax_backward}, .bwd_reads = dsi_reads_out,
};

ds_node *ds_softmax(ds_graph *g, ds_node *x, int axis)
{
    return dsi_node(g, DS_OP_SOFTMAX, 1, &x, &(dsi_softmax_attr){ .axis = axis });
}

ds_node *ds_log_softmax(ds_graph *g, ds_node *x, int axis)
{
    return dsi_node(g, DS_OP_LOG_SOFTMAX, 1, &x, &(dsi_softmax_attr){ .axis = axis });
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
    case DS_ACT_GELU: return ds_gelu(g, x, 0);
    case DS_ACT_SILU: return ds_silu(g, x);
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
        [DS_ACT_LOG_SOFTMAX] = "log_softmax", [DS_ACT_PRELU] = "prelu", [DS_ACT_GELU] = "gelu",
        [DS_ACT_SILU] = "silu",
    };
    return ((int)a >= 0 && (int)a < DS_ACT_COUNT) ? names[a] : "unknown";
}
