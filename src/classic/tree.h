/* tree.h - histogram decision trees shared by random forests (forest.c) and gradient
 * boosting (boost.c): feature binning, a depth-first tree builder over per-sample statistic
 * vectors, and the flat node layout saved in model files. */
#ifndef DS_CLASSIC_TREE_H
#define DS_CLASSIC_TREE_H

#include "classic.h"

#define DSI_MAX_BINS 256   /* bins per feature: 255 thresholds at most */
#define DSI_TREE_WIDTH 1024 /* values of a leaf (classes or outputs) at most */

/* Features binned as scikit-learn's HistGradientBoosting does: up to 256 distinct values,
 * one bin per value (thresholds between them: exact splits); more, quantile bins. A value
 * v falls in the first bin b with v <= edge[b] (the last bin has no edge). */
typedef struct {
    int64_t n, f;
    uint8_t *code;      /* [f, n] column-major bin codes */
    int *nbins;         /* [f] */
    float *edge;        /* [f, DSI_MAX_BINS - 1] */
} dsi_bins;

ds_status dsi_bins_fit(dsi_bins *b, const float *x, int64_t n, int64_t f);
void dsi_bins_free(dsi_bins *b);

/* A split's worth: gain = score(left) + score(right) - score(parent); s[0] is the (weighted)
 * sample count, s[1..] the method's sums. leaf writes the node's prediction (width values). */
typedef struct {
    int S, width;
    double (*score)(const double *s, const void *ctx);
    void (*leaf)(const double *s, float *out, const void *ctx);
    const void *ctx;
} dsi_criterion;

typedef struct {
    int max_depth;          /* 0: unlimited */
    double min_leaf;        /* count (s[0]) at least, each side */
    int64_t mtry;           /* features tried per node (all: f) */
    bool parallel;          /* OpenMP over the features of a node */
    double min_s2;          /* s[2] (boosting's Hessian) on each side at least; 0: no test */
    const float *x;         /* the values [n, f]: thresholds halfway between the node's
                             * samples on either side (scikit-learn's trees), not bin edges */
} dsi_tree_opts;

/* A fitted tree: node k is a leaf when left[k] < 0; children index the same tree. */
typedef struct {
    int64_t count, cap;
    int32_t *feat, *left, *right;
    float *thr;             /* go left when x[feat] <= thr */
    float *value;           /* [count, width] */
    int width;
} dsi_tree;

/* Grows a tree on the samples idx[0, m) (reordered) with statistics stat [n, S] (in sample
 * order), random feature subsets from r. importance[f] (may be NULL) gathers the gains. */
ds_status dsi_tree_grow(dsi_tree *t, const dsi_bins *b, const double *stat, int64_t *idx,
                        int64_t m, const dsi_criterion *c, const dsi_tree_opts *o, ds_rng *r,
                        double *importance);
void dsi_tree_free(dsi_tree *t);
/* The leaf value row of x (f features) in the tree at nodes [feat, thr, left, right] of
 * `flat` (see dsi_trees_flat). */
const float *dsi_tree_leaf(const float *nodes, const float *values, int width, const float *x);

/* Trees into the arrays saved: "nodes" [N, 4] (feature, threshold, left, right; indices
 * relative to the tree's first node, -1 for a leaf), "values" [N, width], "roots" [T] (each
 * tree's first node). */
ds_status dsi_trees_put(ds_classic *m, const dsi_tree *trees, int64_t T, int width);
/* Checks a loaded model's trees: shapes, features below f, children inside their tree and
 * after their parent (no cycles). */
ds_status dsi_trees_check(ds_classic *m, const char *file, int64_t T, int width);

#endif
