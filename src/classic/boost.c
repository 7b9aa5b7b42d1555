/* boost.c - gradient boosting on histogram trees (tree.c), as scikit-learn's
 * HistGradientBoosting* with GradientBoosting*'s defaults (depth 3, shrinkage 0.1, 100
 * rounds, row subsampling): squared error for values, log-loss for two classes (one tree a
 * round), softmax for K classes (K trees a round); leaves are Newton steps -G / (H + l2);
 * optional early stopping on a held-out validation fraction. Sums run in sample order. */
#include "tree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { double l2, lr; } boost_ctx;

/* s = [count, G, H] */
static double newton_score(const double *s, const void *ctx)
{
    const boost_ctx *c = ctx;
    return s[1] * s[1] / (s[2] + c->l2 + 1e-12);
}

static void newton_leaf(const double *s, float *out, const void *ctx)
{
    const boost_ctx *c = ctx;
    out[0] = (float)(-c->lr * s[1] / (s[2] + c->l2 + 1e-12));
}

/* Raw outputs a round: K classes (K > 2), 1 for two classes, the values' width. */
static int64_t raw_width(const ds_classic *m)
{
    return m->task == DS_CLASSIC_CLASSIFY ? (m->classes == 2 ? 1 : m->classes) : m->outputs;
}

static int64_t boost_width(const ds_classic *m)
{
    return m->task == DS_CLASSIC_CLASSIFY ? m->classes : m->outputs;
}

/* raw [R] into the prediction out [width]. */
static void finish(const ds_classic *m, const double *raw, float *out)
{
    int64_t R = raw_width(m);
    if (m->task != DS_CLASSIC_CLASSIFY) {
        for (int64_t r = 0; r < R; r++)
            out[r] = (float)raw[r];
    } else if (R == 1) {
        double p = 1 / (1 + exp(-raw[0]));
        out[0] = (float)(1 - p);
        out[1] = (float)p;
    } else {
        double mx = raw[0], s = 0;
        for (int64_t r = 1; r < R; r++)
            mx = raw[r] > mx ? raw[r] : mx;
        for (int64_t r = 0; r < R; r++)
            s += exp(raw[r] - mx);
        for (int64_t r = 0; r < R; r++)
            out[r] = (float)(exp(raw[r] - mx) / s);
    }
}

/* Gradient and Hessian of output r of sample i at raw [R] into s [3]. */
static void grad_of(const ds_classic *m, const dsi_classic_data *d, int64_t i, const double *raw,
                    int64_t r, double *s)
{
    int64_t R = raw_width(m);
    s[0] = 1;
    if (m->task != DS_CLASSIC_CLASSIFY) {
        s[1] = raw[r] - d->y[i * R + r];
        s[2] = 1;
        return;
    }
    double p;
    if (R == 1) {
        p = 1 / (1 + exp(-raw[0]));
        s[1] = p - (d->cls[i] == 1);
    } else {
        double mx = raw[0], z = 0;
        for (int64_t k = 1; k < R; k++)
            mx = raw[k] > mx ? raw[k] : mx;
        for (int64_t k = 0; k < R; k++)
            z += exp(raw[k] - mx);
        p = exp(raw[r] - mx) / z;
        s[1] = p - (d->cls[i] == r);
    }
    s[2] = fmax(p * (1 - p), 1e-16);
}

/* The loss of sample i at raw (early stopping). */
static double loss_of(const ds_classic *m, const dsi_classic_data *d, int64_t i, const double *raw)
{
    int64_t R = raw_width(m);
    if (m->task != DS_CLASSIC_CLASSIFY) {
        double s = 0;
        for (int64_t r = 0; r < R; r++)
            s += 0.5 * (raw[r] - d->y[i * R + r]) * (raw[r] - d->y[i * R + r]);
        return s;
    }
    if (R == 1) {
        double z = d->cls[i] == 1 ? raw[0] : -raw[0];
        return z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
    }
    double mx = raw[0], s = 0;
    for (int64_t k = 1; k < R; k++)
        mx = raw[k] > mx ? raw[k] : mx;
    for (int64_t k = 0; k < R; k++)
        s += exp(raw[k] - mx);
    return log(s) + mx - raw[d->cls[i]];
}

/* The starting raw outputs: the mean value, the log-odds, or the log prior of each class,
 * over the training samples train[0, nt). */
static void baseline(const ds_classic *m, const dsi_classic_data *d, const int64_t *train,
                     int64_t nt, double *base)
{
    int64_t R = raw_width(m), K = m->classes;
    memset(base, 0, (size_t)R * sizeof *base);
    if (m->task != DS_CLASSIC_CLASSIFY) {
        for (int64_t q = 0; q < nt; q++)
            for (int64_t r = 0; r < R; r++)
                base[r] += d->y[train[q] * R + r];
        for (int64_t r = 0; r < R; r++)
            base[r] /= (double)nt;
        return;
    }
    double cnt[K];
    memset(cnt, 0, sizeof cnt);
    for (int64_t q = 0; q < nt; q++)
        cnt[d->cls[train[q]]]++;
    for (int64_t k = 0; k < K; k++)
        cnt[k] = fmax(cnt[k], 1e-3) / (double)nt;   /* an absent class: a tiny prior */
    if (R == 1)
        base[0] = log(cnt[1] / cnt[0]);
    else
        for (int64_t k = 0; k < K; k++)
            base[k] = log(cnt[k]);
}

static int cmp_index(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Training samples (shuffled with r) and held-out ones, when early stopping. */
static int64_t hold_out(const ds_classic *m, int64_t n, ds_rng *r, int64_t *order)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    if (dsi_classic_num(m, "early-stop") == 0)
        return n;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t k = (int64_t)ds_rng_below(r, (uint64_t)i + 1), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    int64_t nv = (int64_t)(dsi_classic_num(m, "validation-fraction") * (double)n);
    nv = nv < 1 ? 1 : nv > n - 2 ? n - 2 : nv;
    int64_t nt = n - nv;
    qsort(order, (size_t)nt, sizeof *order, cmp_index);   /* the training part in sample order */
    return nt;
}

typedef struct {
    dsi_tree *trees;
    int64_t count, cap;
} tree_list;

static bool list_add(tree_list *l, const dsi_tree *t)
{
    if (l->count == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        dsi_tree *p = realloc(l->trees, (size_t)cap * sizeof *p);
        if (!p)
            return false;
        l->trees = p;
        l->cap = cap;
    }
    l->trees[l->count++] = *t;
    return true;
}

static double tree_value(const dsi_tree *t, const float *x)
{
    int64_t k = 0;
    while (t->left[k] >= 0)
        k = x[t->feat[k]] <= t->thr[k] ? t->left[k] : t->right[k];
    return t->value[k];
}

typedef struct {
    const dsi_classic_data *d;
    const dsi_bins *b;
    double *raw, *stat;
    int64_t *order, nt, *sub;
    tree_list list;
} boost_state;

/* One round: R trees on a subsample of the training samples; raw updated for all. */
static ds_status one_round(ds_classic *m, boost_state *s, const dsi_criterion *c,
                           const dsi_tree_opts *o, ds_rng *r)
{
    const dsi_classic_data *d = s->d;
    int64_t n = d->n, R = raw_width(m), nt = s->nt;
    int64_t ns = (int64_t)(dsi_classic_num(m, "subsample") * (double)nt);
    ns = ns < 1 ? 1 : ns;
    if (ns < nt) {   /* a sample without replacement, in sample order */
        int64_t need = ns, left = nt, at = 0;
        for (int64_t q = 0; q < nt && need; q++, left--)
            if (ds_rng_below(r, (uint64_t)left) < (uint64_t)need)
                s->sub[at++] = s->order[q], need--;
    } else {
        memcpy(s->sub, s->order, (size_t)nt * sizeof *s->sub);
    }
    double *grads = s->stat;   /* [n, R, 3]: all outputs from the raw before this round */
#pragma omp parallel for schedule(static) if (n * R > 1 << 14)
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < R; k++)
            grad_of(m, d, i, s->raw + i * R, k, grads + (i * R + k) * 3);
    for (int64_t k = 0; k < R; k++) {
        double *st = grads + n * R * 3;   /* the column of output k: [n, 3] */
        for (int64_t i = 0; i < n; i++)
            memcpy(st + i * 3, grads + (i * R + k) * 3, 3 * sizeof *st);
        dsi_tree t;
        ds_status e = dsi_tree_grow(&t, s->b, st, s->sub, ns, c, o, r, NULL);
        if (e)
            return e;
        if (!list_add(&s->list, &t)) {
            dsi_tree_free(&t);
            return dsi_fail(DS_ERR_NOMEM, "gradient-boosting: out of memory for the trees");
        }
#pragma omp parallel for schedule(static) if (n > 1 << 12)
        for (int64_t i = 0; i < n; i++)
            s->raw[i * R + k] += tree_value(&t, d->x + i * d->f);
    }
    return DS_OK;
}

static double held_out_loss(const ds_classic *m, const boost_state *s)
{
    int64_t R = raw_width(m);
    double l = 0;
    for (int64_t q = s->nt; q < s->d->n; q++)
        l += loss_of(m, s->d, s->order[q], s->raw + s->order[q] * R);
    return l / (double)(s->d->n - s->nt);
}

static ds_status boost_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    int64_t n = d->n, R = raw_width(m);
    if (m->task == DS_CLASSIC_CLASSIFY && m->classes < 2)
        return dsi_fail(DS_ERR_ARG, "gradient-boosting: the labels hold one class only: "
                        "nothing to separate");
    if (R > DSI_TREE_WIDTH)
        return dsi_fail(DS_ERR_ARG, "gradient-boosting: %lld %s, more than the %d it "
                        "predicts", (long long)R, m->task == DS_CLASSIC_CLASSIFY ? "classes"
                        : "outputs", DSI_TREE_WIDTH);
    if (dsi_classic_num(m, "early-stop") > 0 && n < 4)
        return dsi_fail(DS_ERR_ARG, "gradient-boosting: early-stop needs 4 samples at least, "
                        "there are %lld", (long long)n);
    boost_ctx cx = {dsi_classic_num(m, "l2"), dsi_classic_num(m, "learning-rate")};
    dsi_criterion c = {3, 1, newton_score, newton_leaf, &cx};
    dsi_tree_opts o = {(int)dsi_classic_num(m, "max-depth"), dsi_classic_num(m, "min-samples-leaf"),
                       d->f, true, 1e-3, NULL};   /* HistGradientBoosting's min_hessian_to_split */
    int64_t rounds = (int64_t)dsi_classic_num(m, "n-rounds");
    int patience = (int)dsi_classic_num(m, "early-stop");
    ds_rng r;
    ds_rng_seed(&r, seed ^ 0x6b6f6f7374ULL);
    dsi_bins b = {0};
    boost_state s = {d, &b, malloc((size_t)(n * R) * sizeof(double)),
                     malloc((size_t)(n * (R + 1) * 3) * sizeof(double)),
                     malloc((size_t)n * sizeof(int64_t)), 0, malloc((size_t)n * sizeof(int64_t)),
                     {0}};
    double base[R > 0 ? R : 1];
    ds_status st = s.raw && s.stat && s.order && s.sub
                       ? dsi_bins_fit(&b, d->x, n, d->f)
                       : dsi_fail(DS_ERR_NOMEM, "gradient-boosting: out of memory for %lld "
                                  "samples", (long long)n);
    int64_t best_round = 0, done = 0;
    if (!st) {
        s.nt = hold_out(m, n, &r, s.order);
        baseline(m, d, s.order, s.nt, base);
        for (int64_t i = 0; i < n; i++)
            memcpy(s.raw + i * R, base, (size_t)R * sizeof *base);
        double best = patience ? held_out_loss(m, &s) : 0;
        for (; done < rounds && !st; done++) {
            st = one_round(m, &s, &c, &o, &r);
            if (st || !patience)
                continue;
            double l = held_out_loss(m, &s);
            if (l < best - 1e-7 * fabs(best)) {
                best = l;
                best_round = done + 1;
            } else if (done + 1 - best_round >= patience) {
                done++;
                break;
            }
        }
    }
    int64_t kept = patience ? best_round : done;
    if (!st && kept == 0)
        kept = 1;   /* no round helped: keep the first (a model holds one tree at least) */
    float basef[R > 0 ? R : 1];
    for (int64_t k = 0; k < R; k++)
        basef[k] = (float)base[k];
    if (!st && !(st = dsi_trees_put(m, s.list.trees, kept * R, 1)) &&
        !(st = dsi_classic_put(m, "baseline", 1, &R, basef)))
        st = dsi_classic_stat(m, "rounds", (double)kept);
    for (int64_t t = 0; t < s.list.count; t++)
        dsi_tree_free(&s.list.trees[t]);
    free(s.list.trees);
    dsi_bins_free(&b);
    free(s.raw), free(s.stat), free(s.order), free(s.sub);
    return st;
}

static void boost_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t R = raw_width(m), w = boost_width(m), f = m->features_in;
    const ds_tensor *rt = ds_tensor_set_get(m->arrays, "roots");
    const ds_tensor *nt = ds_tensor_set_get(m->arrays, "nodes");
    int64_t T = rt->shape[0];
    const float *roots = rt->data, *nodes = nt->data;
    const float *values = dsi_classic_arr(m, "values", nt->shape[0], 1);
    const float *base = dsi_classic_arr(m, "baseline", R, -1);
    /* blocks of samples, tree by tree (a tree stays in cache); each sum in tree order */
#pragma omp parallel for schedule(dynamic, 1) if (n * T > 1 << 12)
    for (int64_t b0 = 0; b0 < n; b0 += 256) {
        int64_t nb = n - b0 < 256 ? n - b0 : 256;
        double *raw = malloc((size_t)(nb * R) * sizeof *raw);
        for (int64_t q = 0; raw && q < nb * R; q++)
            raw[q] = base[q % R];
        for (int64_t t = 0; raw && t < T; t++) {
            int64_t r0 = (int64_t)roots[t];
            for (int64_t i = 0; i < nb; i++)
                raw[i * R + t % R] += *dsi_tree_leaf(nodes + 4 * r0, values + r0, 1,
                                                     x + (b0 + i) * f);
        }
        for (int64_t i = 0; i < nb; i++) {
            if (raw)
                finish(m, raw + i * R, out + (b0 + i) * w);
            else   /* out of memory: predict cannot fail */
                memset(out + (b0 + i) * w, 0, (size_t)w * sizeof *out);
        }
        free(raw);
    }
}

static ds_status boost_check(ds_classic *m, const char *file)
{
    int64_t R = raw_width(m);
    const ds_tensor *rt = ds_tensor_set_get(m->arrays, "roots");
    if (R < 1 || R > DSI_TREE_WIDTH)
        return dsi_fail(DS_ERR_FORMAT, "%s: classic model 'gradient-boosting': %lld outputs "
                        "(1..%d)", file, (long long)R, DSI_TREE_WIDTH);
    if (!rt || rt->ndim != 1 || rt->shape[0] < R || rt->shape[0] % R)
        return dsi_fail(DS_ERR_FORMAT, "%s: classic model 'gradient-boosting': array "
                        "'model.roots' should hold a positive multiple of %lld trees", file,
                        (long long)R);
    ds_status st = dsi_trees_check(m, file, rt->shape[0], 1);
    return st ? st : dsi_classic_need(m, file, "baseline", R, -1);
}

static const dsi_classic_param boost_params[] = {
    {"n-rounds", "100", NULL, 1, 100000, true, "boosting rounds at most (scikit-learn's "
     "n_estimators / max_iter)"},
    {"learning-rate", "0.1", NULL, 1e-6, 1, false, "shrinkage of each tree's values"},
    {"max-depth", "3", NULL, 0, 64, true, "depth of a tree at most; 0: unlimited"},
    {"min-samples-leaf", "1", NULL, 1, 1e9, true, "samples in a leaf at least"},
    {"subsample", "1", NULL, 1e-3, 1, false, "fraction of the training samples each round "
     "sees (drawn without replacement; stochastic gradient boosting below 1)"},
    {"l2", "0", NULL, 0, 1e9, false, "L2 penalty on the leaf values (scikit-learn's "
     "l2_regularization)"},
    {"early-stop", "0", NULL, 0, 100000, true, "stop after this many rounds without a better "
     "loss on the held-out validation fraction, keeping the best round; 0: off"},
    {"validation-fraction", "0.1", NULL, 0.01, 0.9, false, "fraction of the training data "
     "held out for early-stop"},
    {"task", "auto", "auto|classify|regress", 0, 0, false, "classify (log-loss, softmax for "
     "more than two classes) or regress (squared error); auto: classify integer labels"},
};

const dsi_classic_method dsi_classic_boost = {
    "gradient-boosting", "gradient boosting on histogram trees (shrinkage, depth, subsample, "
    "early stopping)",
    DSI_TASK(DS_CLASSIC_CLASSIFY) | DSI_TASK(DS_CLASSIC_REGRESS), boost_params,
    (int)(sizeof boost_params / sizeof *boost_params), boost_fit, boost_width, boost_predict,
    boost_check, NULL};
