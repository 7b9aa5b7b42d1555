/* forest.c - random forests (scikit-learn's RandomForestClassifier / Regressor): bootstrap
 * samples, a random feature subset per node, Gini or squared-error splits on binned features
 * (tree.c); class probabilities or values averaged over the trees; out-of-bag score and
 * impurity-based feature importances. OpenMP over the trees: tree t draws from its own
 * generator (the seed and t), so the forest is the same at any thread count. */
#include "tree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREDICT_BLOCK 256   /* samples predicted together, tree by tree */

typedef struct { int64_t K, t; } forest_ctx;   /* classes (classify) or outputs (regress) */

/* Gini: s = [n, count of class 0, ...]; score sum_k c_k^2 / n (the impurity decrease of a
 * split is the gain). Squared error: s = [n, sum y_0, ...]; score sum_j S_j^2 / n. */
static double sum_sq_score(const double *s, const void *ctx)
{
    const forest_ctx *c = ctx;
    int64_t w = c->K ? c->K : c->t;
    double q = 0;
    for (int64_t k = 1; k <= w; k++)
        q += s[k] * s[k];
    return s[0] > 0 ? q / s[0] : 0;
}

static void mean_leaf(const double *s, float *out, const void *ctx)
{
    const forest_ctx *c = ctx;
    int64_t w = c->K ? c->K : c->t;
    for (int64_t k = 0; k < w; k++)
        out[k] = s[0] > 0 ? (float)(s[k + 1] / s[0]) : 0;
}

static int64_t forest_width(const ds_classic *m)
{
    return m->task == DS_CLASSIC_CLASSIFY ? m->classes : m->outputs;
}

static int64_t mtry_of(const ds_classic *m, int64_t f)
{
    int how = (int)dsi_classic_num(m, "max-features");   /* auto|sqrt|log2|all */
    if (how == 0)
        how = m->task == DS_CLASSIC_CLASSIFY ? 1 : 3;
    int64_t k = how == 1 ? (int64_t)sqrt((double)f) : how == 2 ? (int64_t)log2((double)f) : f;
    return k < 1 ? 1 : k > f ? f : k;
}

/* One tree: its bootstrap (or all samples), grown; oob[i] = 1 for samples left out. */
static ds_status one_tree(const ds_classic *m, const dsi_bins *b, const double *stat,
                          const dsi_criterion *c, const dsi_tree_opts *o, uint64_t seed,
                          int64_t t, dsi_tree *tree, unsigned char *oob, double *imp)
{
    int64_t n = b->n;
    ds_rng r;
    ds_rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + 0x5bd1e995ULL * (uint64_t)(t + 1));
    int64_t *idx = malloc((size_t)n * sizeof *idx), *cnt = calloc((size_t)n, sizeof *cnt);
    if (!idx || !cnt) {
        free(idx), free(cnt);
        return dsi_fail(DS_ERR_NOMEM, "random-forest: out of memory for tree %lld", (long long)t);
    }
    bool boot = dsi_classic_num(m, "bootstrap") == 0;
    for (int64_t i = 0; i < n; i++)
        cnt[boot ? (int64_t)ds_rng_below(&r, (uint64_t)n) : i]++;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {   /* the draws in sample order */
        oob[i] = cnt[i] == 0;
        for (int64_t k = 0; k < cnt[i]; k++)
            idx[at++] = i;
    }
    ds_status st = dsi_tree_grow(tree, b, stat, idx, n, c, o, &r, imp);
    free(idx), free(cnt);
    return st;
}

/* Out-of-bag predictions: accuracy (classes) or R^2 (values) over the samples some tree left
 * out; NaN when none was. */
static double oob_score(const ds_classic *m, const dsi_classic_data *d, const dsi_tree *trees,
                        int64_t T, const unsigned char *oob)
{
    int64_t n = d->n, f = d->f, w = forest_width(m);
    double *acc = calloc((size_t)(n * w), sizeof *acc);
    int64_t *votes = calloc((size_t)n, sizeof *votes);
    if (!acc || !votes) {
        free(acc), free(votes);
        return NAN;
    }
#pragma omp parallel for schedule(static) if (n * T > 1 << 14)
    for (int64_t i = 0; i < n; i++)
        for (int64_t t = 0; t < T; t++) {
            if (!oob[t * n + i])
                continue;
            const dsi_tree *tr = &trees[t];
            int64_t k = 0;
            while (tr->left[k] >= 0)
                k = d->x[i * f + tr->feat[k]] <= tr->thr[k] ? tr->left[k] : tr->right[k];
            for (int64_t j = 0; j < w; j++)
                acc[i * w + j] += tr->value[k * w + j];
            votes[i]++;
        }
    double right = 0, used = 0, se = 0, mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++)
        if (votes[i] && d->y)
            mean += d->y[i * w], used++;
    mean = used ? mean / used : 0;
    used = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!votes[i])
            continue;
        used++;
        const double *p = acc + i * w;
        if (m->task == DS_CLASSIC_CLASSIFY) {
            int64_t best = 0;
            for (int64_t k = 1; k < w; k++)
                best = p[k] > p[best] ? k : best;
            right += best == d->cls[i];
        } else {
            for (int64_t j = 0; j < w; j++) {
                double e = p[j] / (double)votes[i] - d->y[i * w + j];
                se += e * e;
            }
            var += (d->y[i * w] - mean) * (d->y[i * w] - mean);
        }
    }
    free(acc), free(votes);
    if (!used)
        return NAN;
    return m->task == DS_CLASSIC_CLASSIFY ? right / used : w == 1 && var > 0 ? 1 - se / var : NAN;
}

/* Per tree importances normalized to sum 1, averaged over the trees, normalized again. */
static ds_status put_importances(ds_classic *m, const double *imp, int64_t T, int64_t f)
{
    double *avg = calloc((size_t)f, sizeof *avg), total = 0;
    float *out = malloc((size_t)f * sizeof *out);
    ds_status st = avg && out ? DS_OK : dsi_fail(DS_ERR_NOMEM, "random-forest: out of memory");
    for (int64_t t = 0; !st && t < T; t++) {
        double s = 0;
        for (int64_t j = 0; j < f; j++)
            s += imp[t * f + j];
        for (int64_t j = 0; s > 0 && j < f; j++)
            avg[j] += imp[t * f + j] / s;
    }
    for (int64_t j = 0; !st && j < f; j++)
        total += avg[j];
    for (int64_t j = 0; !st && j < f; j++)
        out[j] = total > 0 ? (float)(avg[j] / total) : 0;
    if (!st)
        st = dsi_classic_put(m, "importances", 1, &f, out);
    free(avg), free(out);
    return st;
}

static ds_status forest_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    int64_t n = d->n, f = d->f, T = (int64_t)dsi_classic_num(m, "n-trees");
    forest_ctx cx = {m->task == DS_CLASSIC_CLASSIFY ? m->classes : 0, d->t};
    int64_t w = forest_width(m), S = 1 + w;
    if (w > DSI_TREE_WIDTH)
        return dsi_fail(DS_ERR_ARG, "random-forest: %lld %s, more than the %d a forest "
                        "predicts", (long long)w, cx.K ? "classes" : "outputs", DSI_TREE_WIDTH);
    dsi_criterion c = {(int)S, (int)w, sum_sq_score, mean_leaf, &cx};
    dsi_tree_opts o = {(int)dsi_classic_num(m, "max-depth"), dsi_classic_num(m, "min-samples-leaf"),
                       mtry_of(m, f), T == 1, 0, d->x};
    dsi_bins b = {0};
    double *stat = malloc((size_t)(n * S) * sizeof *stat);
    double *imp = calloc((size_t)(T * f), sizeof *imp);
    dsi_tree *trees = calloc((size_t)T, sizeof *trees);
    unsigned char *oob = malloc((size_t)(T * n));
    ds_status *sts = calloc((size_t)T, sizeof *sts);
    ds_status st = stat && imp && trees && oob && sts
                       ? dsi_bins_fit(&b, d->x, n, f)
                       : dsi_fail(DS_ERR_NOMEM, "random-forest: out of memory for %lld trees "
                                  "on %lld samples", (long long)T, (long long)n);
    for (int64_t i = 0; !st && i < n; i++) {
        double *s = stat + i * S;
        memset(s, 0, (size_t)S * sizeof *s);
        s[0] = 1;
        for (int64_t k = 0; k < w; k++)
            s[1 + k] = cx.K ? d->cls[i] == k : d->y[i * w + k];
    }
    if (!st) {
#pragma omp parallel for schedule(dynamic, 1) if (T > 1)
        for (int64_t t = 0; t < T; t++)
            sts[t] = one_tree(m, &b, stat, &c, &o, seed, t, &trees[t], oob + t * n, imp + t * f);
        for (int64_t t = 0; t < T && !st; t++)
            if ((st = sts[t]))
                st = dsi_fail(st, "random-forest: tree %lld: out of memory", (long long)t);
    }
    if (!st && !(st = dsi_trees_put(m, trees, T, (int)w)) &&
        !(st = put_importances(m, imp, T, f)) && dsi_classic_num(m, "bootstrap") == 0) {
        double sc = oob_score(m, d, trees, T, oob);
        if (!isnan(sc))
            st = dsi_classic_stat(m, "oob_score", sc);
    }
    int64_t nodes = 0;
    for (int64_t t = 0; t < T && trees; t++)
        nodes += trees[t].count, dsi_tree_free(&trees[t]);
    if (!st)
        st = dsi_classic_stat(m, "nodes", (double)nodes);
    dsi_bins_free(&b);
    free(stat), free(imp), free(trees), free(oob), free(sts);
    return st;
}

static void forest_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t w = forest_width(m), f = m->features_in, T = (int64_t)dsi_classic_num(m, "n-trees");
    const ds_tensor *nt = ds_tensor_set_get(m->arrays, "nodes");
    const float *nodes = nt->data, *roots = dsi_classic_arr(m, "roots", T, -1);
    const float *values = dsi_classic_arr(m, "values", nt->shape[0], w);
    /* blocks of samples, tree by tree (a tree stays in cache); each sample's sum in tree order */
#pragma omp parallel for schedule(dynamic, 1) if (n * T > 1 << 12)
    for (int64_t b0 = 0; b0 < n; b0 += PREDICT_BLOCK) {
        int64_t nb = n - b0 < PREDICT_BLOCK ? n - b0 : PREDICT_BLOCK;
        double *acc = calloc((size_t)(nb * w), sizeof *acc);
        for (int64_t t = 0; acc && t < T; t++) {
            int64_t r0 = (int64_t)roots[t];
            for (int64_t i = 0; i < nb; i++) {
                const float *v = dsi_tree_leaf(nodes + 4 * r0, values + r0 * w, (int)w,
                                               x + (b0 + i) * f);
                for (int64_t k = 0; k < w; k++)
                    acc[i * w + k] += v[k];
            }
        }
        for (int64_t q = 0; q < nb * w; q++)   /* (zeros if out of memory: predict cannot fail) */
            out[b0 * w + q] = acc ? (float)(acc[q] / (double)T) : 0;
        free(acc);
    }
}

static ds_status forest_check(ds_classic *m, const char *file)
{
    ds_status st = dsi_trees_check(m, file, (int64_t)dsi_classic_num(m, "n-trees"),
                                   (int)forest_width(m));
    return st ? st : dsi_classic_need(m, file, "importances", m->features_in, -1);
}

static const dsi_classic_param forest_params[] = {
    {"n-trees", "100", NULL, 1, 100000, true, "trees (scikit-learn's n_estimators)"},
    {"max-depth", "0", NULL, 0, 10000, true, "depth of a tree at most; 0: unlimited"},
    {"min-samples-leaf", "1", NULL, 1, 1e9, true, "samples (bootstrap draws) in a leaf at least"},
    {"max-features", "auto", "auto|sqrt|log2|all", 0, 0, false, "features tried at each "
     "split; auto: sqrt to classify, all to regress (scikit-learn 1.2's defaults)"},
    {"bootstrap", "yes", "yes|no", 0, 0, false, "each tree sees a bootstrap sample (and the "
     "out-of-bag score is measured), or all the samples"},
    {"task", "auto", "auto|classify|regress", 0, 0, false, "classify (Gini, probabilities "
     "averaged) or regress (squared error, values averaged); auto: classify integer labels"},
};

const dsi_classic_method dsi_classic_forest = {
    "random-forest", "random forest (bootstrap, random features per split; OpenMP over trees)",
    DSI_TASK(DS_CLASSIC_CLASSIFY) | DSI_TASK(DS_CLASSIC_REGRESS), forest_params,
    (int)(sizeof forest_params / sizeof *forest_params), forest_fit, forest_width,
    forest_predict, forest_check, NULL};
