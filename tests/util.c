/* util.c - test helpers: temporary folders and files, random fills, finite-difference
 * gradient checks, fixtures. */
#include "test.h"

#include "../src/internal.h"

#include <dirent.h>
#include <stdlib.h>   /* mkdtemp (POSIX, with _GNU_SOURCE) */
#include <unistd.h>

const char *test_tmpdir(char *buf, size_t cap, const char *tag)
{
    if (snprintf(buf, cap, "/tmp/deepsky_%s_XXXXXX", tag) >= (int)cap)
        return NULL;
    return mkdtemp(buf);
}

void test_rm_rf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d);
}

int test_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fputs(text, f);
    return fclose(f);
}

char *test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    long len = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)len + 1))) {
        if (fread(b, 1, (size_t)len, f) != (size_t)len) {
            free(b);
            b = NULL;
        } else {
            b[len] = 0;
            if (n)
                *n = (size_t)len;
        }
    }
    if (f)
        fclose(f);
    return b;
}

void test_note_line(char *msg, size_t cap, const char *out, const char *from, int max)
{
    const char *v = strstr(out, from);
    snprintf(msg, cap, "%.*s", max, v ? v : "");
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = 0;
}

const char *test_at(const char *dir, const char *name)
{
    static char bufs[8][600];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

int test_write_in(const char *dir, const char *name, const char *text)
{
    return test_write_text(test_at(dir, name), text);
}

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

/* ---- op coverage: which ops passed which kind of check in this run ---- */
static unsigned coverage[DS_OP_COUNT];

unsigned coverage_of(int op)
{
    return op >= 0 && op < DS_OP_COUNT ? coverage[op] : 0;
}

/* A node is on a path from one of from[] to y if it descends from one of them and y
 * descends from it. Creation order is a topological order, so one pass each way finds both. */
int coverage_path(const ds_node *y, int n, ds_node *const *from, char *on)
{
    const ds_graph *g = y->g;
    char *up = calloc((size_t)y->id + 1, 1);
    if (!up)
        return 1;
    memset(on, 0, (size_t)y->id + 1);
    for (int k = 0; k < n; k++)
        if (from[k] && from[k]->g == g && from[k]->id <= y->id)
            on[from[k]->id] = 1;
    for (int i = 0; i <= y->id; i++)
        for (int k = 0; k < g->nodes[i]->n_in && !on[i]; k++)
            on[i] = on[g->nodes[i]->in[k]->id];
    up[y->id] = 1;
    for (int i = y->id; i >= 0; i--) {
        for (int k = 0; up[i] && k < g->nodes[i]->n_in; k++)
            up[g->nodes[i]->in[k]->id] = 1;
        on[i] = on[i] && up[i];
    }
    free(up);
    return 0;
}

/* A ReLU fused into the op before it is skipped: its own kernel did not run. */
void coverage_mark(const ds_node *y, int n, ds_node *const *from, unsigned kind)
{
    char *on = y ? malloc((size_t)y->id + 1) : NULL;
    if (on && !coverage_path(y, n, from, on))
        for (int i = 0; i <= y->id; i++)
            if (on[i] && !y->g->nodes[i]->fused)
                coverage[y->g->nodes[i]->op] |= kind;
    free(on);
}

void coverage_mark_all(const ds_node *y, unsigned kind)
{
    if (!y)
        return;
    const ds_graph *g = y->g;
    ds_node **from = malloc((size_t)g->n_nodes * sizeof *from);
    int n = 0;
    for (int i = 0; from && i < g->n_nodes; i++) {
        ds_node *v = g->nodes[i];
        if ((v->is_input && v->wants_grad) || (v->op == DS_OP_PARAM && v->param->trainable))
            from[n++] = v;
    }
    if (from)
        coverage_mark(y, n, from, kind);
    free(from);
}

/* ---- gradient checks ---- */

/* What the checks of the running test saw (reset by the runner before each test). */
static struct {
    int checks;
    int64_t values;
    double used;   /* largest |num - ana| / tolerance */
    double rel;    /* largest |num - ana| / max(|num|, |ana|) where rtol dominates atol */
} fd_stats;

void gradcheck_stats_reset(void)
{
    memset(&fd_stats, 0, sizeof fd_stats);
}

int gradcheck_stats(char *buf, size_t cap)
{
    if (!fd_stats.checks)
        return 0;
    snprintf(buf, cap, "[gradcheck: %d check%s, %lld values, worst rel err %.1e, %.0f%% of tol]",
             fd_stats.checks, fd_stats.checks == 1 ? "" : "s", (long long)fd_stats.values,
             fd_stats.rel, 100 * fd_stats.used);
    return 1;
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

/* Central differences of loss = sum(out * r) for every element of x, into num. The step
 * is the one float32 really takes, (x + h) - (x - h) after rounding, not 2h. */
static void differences(ds_graph *g, ds_node *out, ds_node *x, const float *r, uint64_t step,
                        double h, double *num)
{
    for (int64_t i = 0; i < x->numel; i++) {
        float keep = x->data[i], xp = keep + (float)h, xm = keep - (float)h;
        x->data[i] = xp;
        double up = weighted_sum(g, out, r, step);
        x->data[i] = xm;
        double dn = weighted_sum(g, out, r, step);
        x->data[i] = keep;
        num[i] = (up - dn) / ((double)xp - xm);
    }
}

int gradcheck_compare(const char *what, int64_t n, const float *ana, const double *num,
                      double atol, double rtol, char *msg, size_t cap)
{
    double scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double big = fmax(fabs(num[i]), fabs(ana[i])), diff = fabs(num[i] - ana[i]);
        double tol = atol + rtol * big;
        if (!(diff <= tol)) {
            snprintf(msg, cap, "%s[%lld]: analytic %.7g, numeric %.7g: |diff| %.2g > atol %.2g "
                     "+ rtol %.2g x %.3g = %.2g", what, (long long)i, ana[i], num[i], diff, atol,
                     rtol, big, tol);
            return 1;
        }
        scale += big;
        fd_stats.values++;
        fd_stats.used = fmax(fd_stats.used, diff / tol);
        if (rtol * big >= atol)
            fd_stats.rel = fmax(fd_stats.rel, diff / big);
    }
    /* atol must be small against the gradient's mean |value|, or it alone would pass errors
     * of 100%; a gradient that is exactly zero everywhere (a constant output) has no scale */
    scale /= (double)(n > 0 ? n : 1);
    if (scale > 0 && !(atol <= GRADCHECK_ATOL_SHARE * scale)) {
        snprintf(msg, cap, "%s: atol %.2g is not small against the gradient, whose mean |value| "
                 "is %.3g: at most %g of it", what, atol, scale, GRADCHECK_ATOL_SHARE);
        return 1;
    }
    return 0;
}

/* Checks the analytic gradient ana of x. */
static int check_node(ds_graph *g, ds_node *out, ds_node *x, const float *ana, const float *r,
                      uint64_t step, double h, double atol, double rtol, char *msg, size_t cap)
{
    double *num = malloc((size_t)x->numel * sizeof *num);
    if (!num) {
        snprintf(msg, cap, "gradcheck: out of memory");
        return 1;
    }
    differences(g, out, x, r, step, h, num);
    char what[160];
    snprintf(what, sizeof what, "%s: d/d%s '%s'", ds_node_op_name(out), ds_node_op_name(x),
             dsi_node_layer(x));
    int rc = gradcheck_compare(what, x->numel, ana, num, atol, rtol, msg, cap);
    free(num);
    return rc;
}

/* The analytic gradients of wrt[0..n-1] after one forward and backward pass seeded with r,
 * copied out before any difference runs the graph again (malloc'd, NULL on failure). */
static float **analytic(ds_graph *g, ds_node *out, int n, ds_node *const *wrt, const float *r,
                        uint64_t step, char *msg, size_t cap)
{
    ds_model_zero_grad(g->m);
    g->step = step;
    if (ds_graph_forward(g) != DS_OK || ds_graph_backward_seed(g, out, r) != DS_OK) {
        snprintf(msg, cap, "forward/backward: %s", ds_last_error());
        return NULL;
    }
    float **ana = calloc((size_t)n, sizeof *ana);
    for (int k = 0; ana && k < n; k++) {
        if (!wrt[k]->grad) {
            snprintf(msg, cap, "no gradient for %s '%s'", ds_node_op_name(wrt[k]),
                     dsi_node_layer(wrt[k]));
        } else if ((ana[k] = malloc((size_t)wrt[k]->numel * sizeof **ana))) {
            memcpy(ana[k], wrt[k]->grad, (size_t)wrt[k]->numel * sizeof **ana);
            continue;
        } else {
            snprintf(msg, cap, "gradcheck: out of memory");
        }
        for (int j = 0; j <= k; j++)
            free(ana[j]);
        free(ana);
        return NULL;
    }
    return ana;
}

int gradcheck(ds_graph *g, ds_node *out, int n, ds_node *const *wrt, double h, double atol,
              double rtol, char *msg, size_t cap)
{
    if (ds_graph_plan(g) != DS_OK) {
        snprintf(msg, cap, "plan: %s", ds_last_error());
        return 1;
    }
    uint64_t step = g->step;
    float *r = malloc((size_t)out->numel * sizeof *r);
    if (!r) {
        snprintf(msg, cap, "gradcheck: out of memory");
        return 1;
    }
    ds_rng rng;
    ds_rng_seed(&rng, 1234);
    fill_uniform(r, out->numel, -1.0f, 1.0f, &rng);
    float **ana = analytic(g, out, n, wrt, r, step, msg, cap);
    int rc = !ana;
    for (int k = 0; k < n && !rc; k++)
        rc = check_node(g, out, wrt[k], ana[k], r, step, h, atol, rtol, msg, cap);
    for (int k = 0; ana && k < n; k++)
        free(ana[k]);
    free(ana);
    /* leave the graph as the analytic pass left it */
    g->step = step;
    free(r);
    if (!rc) {
        fd_stats.checks++;
        coverage_mark(out, n, wrt, COVER_FD);
    }
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
    coverage_mark(y, nin, x, COVER_TORCH);
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
            float *dst = out + ny + nx;   /* parameter by parameter: the block has padding */
            for (int i = 0; i < ds_model_param_count(m); i++) {
                ds_param *p = ds_model_param(m, i);
                if (ds_param_grad(p)) {
                    memcpy(dst, ds_param_grad(p), (size_t)ds_param_numel(p) * sizeof *dst);
                    dst += ds_param_numel(p);
                }
            }
            *n = ny + nx + np;
        }
    }
    free(dy);
    return out;
}

/* Whether every metadata key of a (but the run-specific ones) is in b with the same value. */
static int meta_in(const ds_tensor_set *a, const ds_tensor_set *b, const char *an,
                   const char *bn, char *msg, size_t cap)
{
    for (int i = 0; i < dsi_tensor_set_meta_count(a); i++) {
        const char *k = dsi_tensor_set_meta_key(a, i);
        const char *va = ds_tensor_set_meta_get(a, k), *vb = ds_tensor_set_meta_get(b, k);
        if (!strcmp(k, "train.date") || !strcmp(k, "train.command"))
            continue;
        if (!vb || strcmp(va, vb)) {
            snprintf(msg, cap, "metadata '%s': '%s' in %s, '%s' in %s", k, va, an,
                     vb ? vb : "(absent)", bn);
            return 1;
        }
    }
    return 0;
}

int same_weights_sets(const ds_tensor_set *sa, const ds_tensor_set *sb, const char *a,
                      const char *b, char *msg, size_t cap)
{
    if (ds_tensor_set_count(sa) != ds_tensor_set_count(sb)) {
        snprintf(msg, cap, "%s holds %d tensors, %s %d", a, ds_tensor_set_count(sa), b,
                 ds_tensor_set_count(sb));
        return 1;
    }
    for (int i = 0; i < ds_tensor_set_count(sa); i++) {
        const char *name = ds_tensor_set_name(sa, i);
        ds_tensor *ta = ds_tensor_set_at(sa, i), *tb = ds_tensor_set_get(sb, name);
        if (!tb || ta->ndim != tb->ndim ||
            memcmp(ta->shape, tb->shape, (size_t)ta->ndim * sizeof *ta->shape) ||
            memcmp(ta->data, tb->data, (size_t)ta->numel * sizeof(float))) {
            snprintf(msg, cap, "tensor '%s' differs between %s and %s", name, a, b);
            return 1;
        }
    }
    return meta_in(sa, sb, a, b, msg, cap) || meta_in(sb, sa, b, a, msg, cap);
}

int same_weights_files(const char *a, const char *b, char *msg, size_t cap)
{
    ds_tensor_set *sa = NULL, *sb = NULL;
    int bad = 0;
    if (ds_safetensors_load(a, &sa) != DS_OK || ds_safetensors_load(b, &sb) != DS_OK) {
        snprintf(msg, cap, "%s", ds_last_error());
        bad = 1;
    }
    if (!bad)
        bad = same_weights_sets(sa, sb, a, b, msg, cap);
    ds_tensor_set_free(sa);
    ds_tensor_set_free(sb);
    return bad;
}

int check_arg_error(ds_status st, const char *word, char *msg, size_t cap)
{
    if (st != DS_ERR_ARG) {
        snprintf(msg, cap, "expected DS_ERR_ARG for '%s', got %s", word, ds_status_name(st));
        return 1;
    }
    if (!strstr(ds_last_error(), word)) {
        snprintf(msg, cap, "message '%s' does not mention '%s'", ds_last_error(), word);
        return 1;
    }
    return 0;
}

int test_folder_holds(const char *dir, const char *const *files, int n, const char **name)
{
    static char extra[256];
    char p[1024];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (access(p, R_OK) != 0) {
            *name = files[i];
            return 1;
        }
    }
    DIR *dp = opendir(dir);
    if (!dp)
        return 3;
    for (struct dirent *e; (e = readdir(dp));) {
        bool known = e->d_name[0] == '.';
        for (int i = 0; i < n && !known; i++)
            known = !strcmp(e->d_name, files[i]);
        if (!known) {
            snprintf(extra, sizeof extra, "%s", e->d_name);
            closedir(dp);
            *name = extra;
            return 2;
        }
    }
    closedir(dp);
    return 0;
}
