/* util.c - test helpers: random fills, finite-difference gradient checks, fixtures. */
#include "test.h"

#include "../src/internal.h"

void fill_uniform(float *x, int64_t n, float lo, float hi, ds_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)ds_rng_uniform(r);
}

void fill_away(float *x, int64_t n, float lo, float hi, float gap, ds_rng *r)
{
    for (int64_t i = 0; i < n; i++) {
        float v;
        do
            v = lo + (hi - lo) * (float)ds_rng_uniform(r);
        while (fabsf(v) < gap);
        x[i] = v;
    }
}

static double weighted_sum(ds_graph *g, ds_node *out, const float *r, uint64_t step)
{
    g->step = step;
    if (ds_graph_forward(g) != DS_OK)
        return NAN;
    double s = 0;
    for (int64_t i = 0; i < out->numel; i++)
        s += (double)out->data[i] * r[i];
    return s;
}

int gradcheck(ds_graph *g, ds_node *out, int n, ds_node *const *wrt, double h, double tol,
              char *msg, size_t cap)
{
    if (ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "plan: %s", ds_last_error());
        return 1;
    }
    uint64_t step = g->step;
    float *r = malloc((size_t)out->numel * sizeof *r);
    ds_rng rng;
    ds_rng_seed(&rng, 1234);
    fill_uniform(r, out->numel, -1.0f, 1.0f, &rng);
    ds_model_zero_grad(g->m);
    g->step = step;
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward_seed(g, out, r) != DS_OK) {
        snprintf(msg, cap, "forward/backward: %s", ds_last_error());
        free(r);
        return 1;
    }
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        ds_node *x = wrt[k];
        if (!x->grad) {
            snprintf(msg, cap, "no gradient for %s '%s'", ds_node_op_name(x), dsi_node_layer(x));
            rc = 1;
            break;
        }
        float *ana = malloc((size_t)x->numel * sizeof *ana);
        memcpy(ana, x->grad, (size_t)x->numel * sizeof *ana);
        for (int64_t i = 0; i < x->numel; i++) {
            float keep = x->data[i];
            x->data[i] = keep + (float)h;
            double up = weighted_sum(g, out, r, step);
            x->data[i] = keep - (float)h;
            double dn = weighted_sum(g, out, r, step);
            x->data[i] = keep;
            double num = (up - dn) / (2.0 * h);
            double err = fabs(num - ana[i]) / fmax(1.0, fabs(num) + fabs(ana[i]));
            if (!(err <= tol)) {
                snprintf(msg, cap, "%s: d/d%s '%s'[%lld]: analytic %.7g, numeric %.7g (err %.2g > %.2g)",
                         ds_node_op_name(out), ds_node_op_name(x), dsi_node_layer(x),
                         (long long)i, ana[i], num, err, tol);
                rc = 1;
                break;
            }
        }
        free(ana);
    }
    /* leave the graph as the analytic pass left it */
    g->step = step;
    free(r);
    return rc;
}

ds_tensor_set *fixture_load(const char *name, char *msg, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/%s.safetensors", name);
    ds_tensor_set *s = NULL;
    if (ds_safetensors_load(path, &s) != DS_OK) {
        snprintf(msg, cap, "fixture: %s", ds_last_error());
        return NULL;
    }
    return s;
}

const float *fixture_data(const ds_tensor_set *fx, const char *key, int64_t *n, char *msg,
                          size_t cap)
{
    ds_tensor *t = ds_tensor_set_get(fx, key);
    if (!t) {
        snprintf(msg, cap, "fixture has no tensor '%s'", key);
        return NULL;
    }
    if (n)
        *n = ds_tensor_numel(t);
    return ds_tensor_data(t);
}

int fixture_compare(const ds_tensor_set *fx, const char *key, const float *got, int64_t n,
                    double rtol, double atol, char *msg, size_t cap)
{
    int64_t m;
    const float *want = fixture_data(fx, key, &m, msg, cap);
    if (!want)
        return 1;
    if (m != n) {
        snprintf(msg, cap, "%s: %lld values, PyTorch has %lld", key, (long long)n, (long long)m);
        return 1;
    }
    if (!got) {
        snprintf(msg, cap, "%s: no values computed", key);
        return 1;
    }
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i]))) {
            snprintf(msg, cap, "%s[%lld] = %.8g, PyTorch %.8g (diff %.3g > %.3g)", key,
                     (long long)i, got[i], want[i], d, atol + rtol * fabs(want[i]));
            return 1;
        }
    }
    return 0;
}

int fixture_compare_case(const ds_tensor_set *fx, const char *c, const char *what,
                         const float *got, int64_t n, double *max_rel, char *msg, size_t cap)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c, what);
    if (fixture_compare(fx, key, got, n, 1e-4, 1e-6, msg, cap))
        return 1;
    const float *want = fixture_data(fx, key, NULL, msg, cap);
    for (int64_t i = 0; i < n; i++)
        if (fabsf(want[i]) > 1e-3f) {
            double r = fabs((double)got[i] - want[i]) / fabs(want[i]);
            if (r > *max_rel)
                *max_rel = r;
        }
    return 0;
}

ds_node *grad_input(ds_graph *g, const char *name, int ndim, const int64_t *shape)
{
    ds_node *x = ds_input(g, name, ndim, shape);
    if (x)
        ds_node_requires_grad(x, 1);
    return x;
}

int fixture_run_case(const ds_tensor_set *fx, const char *c, ds_graph *g, ds_node *y,
                     ds_node *const *x, int nin, char *msg, size_t cap)
{
    char key[128];
    if (ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        return 1;
    }
    for (int i = 0; i < nin; i++) {
        snprintf(key, sizeof key, "%s.x%d", c, i);
        int64_t n;
        const float *d = fixture_data(fx, key, &n, msg, cap);
        if (!d || n != ds_node_numel(x[i])) {
            if (d)
                snprintf(msg, cap, "%s: %lld values for input %d of %lld", key, (long long)n, i,
                         (long long)ds_node_numel(x[i]));
            return 1;
        }
        memcpy(ds_node_data(x[i]), d, (size_t)n * sizeof *d);
    }
    snprintf(key, sizeof key, "%s.r", c);
    const float *r = fixture_data(fx, key, NULL, msg, cap);
    if (!r)
        return 1;
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward_seed(g, y, r) != DS_OK) {
        snprintf(msg, cap, "%s: %s", c, ds_last_error());
        return 1;
    }
    return 0;
}

int fixture_compare_grads(const ds_tensor_set *fx, const char *c, ds_node *y,
                          ds_node *const *x, int nin, double *max_rel, char *msg, size_t cap)
{
    if (fixture_compare_case(fx, c, "y", ds_node_data(y), ds_node_numel(y), max_rel, msg, cap))
        return 1;
    for (int i = 0; i < nin; i++) {
        char what[16];
        snprintf(what, sizeof what, "dx%d", i);
        if (fixture_compare_case(fx, c, what, ds_node_grad(x[i]), ds_node_numel(x[i]), max_rel,
                                 msg, cap))
            return 1;
    }
    return 0;
}

float *forward_backward(ds_graph *g, ds_node *x, ds_node *y, uint64_t seed, int64_t *n)
{
    ds_model *m = ds_graph_model(g);
    float *out = NULL;
    *n = 0;
    if (!y || ds_node_requires_grad(x, 1) != DS_OK || ds_graph_plan(g) != DS_OK)
        return NULL;
    ds_rng r;
    ds_rng_seed(&r, seed);
    fill_uniform(ds_node_data(x), ds_node_numel(x), -1, 1, &r);
    float *dy = malloc((size_t)ds_node_numel(y) * sizeof *dy);
    if (!dy)
        return NULL;
    fill_uniform(dy, ds_node_numel(y), -1, 1, &r);
    ds_model_zero_grad(m);
    if (ds_graph_forward(g) == DS_OK && ds_graph_backward_seed(g, y, dy) == DS_OK) {
        int64_t ny = ds_node_numel(y), nx = ds_node_numel(x), np = ds_model_numel(m, 1);
        if ((out = malloc((size_t)(ny + nx + np) * sizeof *out))) {
            memcpy(out, ds_node_data(y), (size_t)ny * sizeof *out);
            memcpy(out + ny, ds_node_grad(x), (size_t)nx * sizeof *out);
            memcpy(out + ny + nx, ds_model_grad(m), (size_t)np * sizeof *out);
            *n = ny + nx + np;
        }
    }
    free(dy);
    return out;
}
