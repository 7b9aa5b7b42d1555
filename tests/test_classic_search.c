/* test_classic_search.c - model selection for the classic methods: cross-validation, grid and
 * random search finding the known best k of k-nearest neighbours on two small problems (a
 * fine checkerboard: k = 1; noisy labels: a middle k), the same results for a seed,
 * bad search spaces, and learning curves that rise with the training-set size. */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>

/* n points in [0, 1)^2: a checkerboard of cells x cells squares (noise 0), or the sign of
 * x0 - 0.5 with a fraction `noise` of the labels flipped. */
static void board(int64_t n, int cells, double noise, uint64_t seed, ds_tensor **x, ds_tensor **y)
{
    int64_t sx[2] = {n, 2};
    *x = ds_tensor_create(2, sx);
    *y = ds_tensor_create(1, &n);
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int64_t i = 0; *x && *y && i < n; i++) {
        double a = ds_rng_uniform(&r), b = ds_rng_uniform(&r);
        ds_tensor_data(*x)[2 * i] = (float)a;
        ds_tensor_data(*x)[2 * i + 1] = (float)b;
        int c = noise > 0 ? a > 0.5 : ((int)(a * cells) + (int)(b * cells)) % 2;
        if (noise > 0 && ds_rng_uniform(&r) < noise)
            c = !c;
        ds_tensor_data(*y)[i] = (float)c;
    }
}

static ds_classic *knn(void)
{
    ds_classic *m = NULL;
    return ds_classic_create("knn", &m) ? NULL : m;
}

TEST(classic_search_finds_known_best)
{
    ds_tensor *x, *y;
    ds_classic *m = knn();
    CHECK(m);
    /* a fine checkerboard, densely sampled: the nearest neighbour is best */
    board(400, 6, 0, 1, &x, &y);
    const char *p1[] = {"k=1,5,15,45"};
    ds_search_opts o = {0, 0, 0, 5, 3, NULL, NULL};
    ds_search_result *r = NULL;
    int n = 0;
    CHECK(ds_classic_search(m, 1, p1, &o, x, y, &r, &n) == DS_OK && n == 4);
    bool ok = !strcmp(r[0].params, "k=1") && r[0].score > r[3].score + 0.1;
    char first[64];
    snprintf(first, sizeof first, "%.20s %.3f / %.20s %.3f", r[0].params, r[0].score, r[3].params,
             r[3].score);
    double mean, spread;   /* the table's scores are cross_validate's */
    CHECK(!ds_classic_set(m, "k", "1") &&
          ds_classic_cross_validate(m, x, y, 5, 3, &mean, &spread) == DS_OK);
    ok = ok && mean == r[0].score && spread == r[0].spread;
    free(r);
    ds_tensor_free(x), ds_tensor_free(y);
    if (!ok)
        FAIL("checkerboard: best %s (k=1 expected, cross_validate %.4f)", first, mean);
    /* 30% of the labels flipped: averaging helps, up to a point. Random search, 12 draws. */
    board(300, 0, 0.3, 2, &x, &y);
    const char *p2[] = {"k=1:200:log"};
    ds_search_opts o2 = {1, 12, 0, 4, 5, NULL, NULL};
    CHECK(ds_classic_search(m, 1, p2, &o2, x, y, &r, &n) == DS_OK && n == 12);
    long best = strtol(r[0].params + 2, NULL, 10);
    double worst = r[n - 1].score, top = r[0].score;
    ds_search_result *again = NULL;
    int n2 = 0;
    CHECK(ds_classic_search(m, 1, p2, &o2, x, y, &again, &n2) == DS_OK && n2 == n);
    bool same = !memcmp(r, again, (size_t)n * sizeof *r);
    free(r), free(again);
    ds_tensor_free(x), ds_tensor_free(y);
    ds_classic_free(m);
    if (!(best >= 9 && best <= 120) || !(top > worst + 0.05) || !(top > 0.6))
        FAIL("noisy labels: best k %ld (9 to 120 expected), score %.3f, worst %.3f", best, top,
             worst);
    CHECK(same);
    return TEST_PASS;
}

TEST(classic_search_bad_space)
{
    ds_tensor *x, *y;
    board(40, 2, 0, 1, &x, &y);
    ds_classic *m = knn(), *km = NULL;
    ds_search_opts o = {0, 0, 0, 4, 0, NULL, NULL};
    ds_search_result *r = NULL;
    int n = 0;
    const char *bad[][2] = {
        {"depth=1,2", "classic method 'knn' has no option 'depth' (its options: k, weights"},
        {"k=0,3", "parameter 'k=0,3': knn: k '0' is not an integer in [1, 1e+06]"},
        {"k=5:1", "a range is LO:HI or LO:HI:log with LO < HI"},
        {"k", "parameter 'k' is not NAME=V1,V2,... or NAME=LO:HI[:log]"},
        {"weights=uniform,closest", "weights 'closest' is not one of uniform|distance"},
    };
    int rc = TEST_PASS;
    for (int i = 0; i < 5 && rc == TEST_PASS && m; i++) {
        const char *p[] = {bad[i][0]};
        ds_status st = ds_classic_search(m, 1, p, &o, x, y, &r, &n);
        if (st != DS_ERR_ARG || r || !strstr(ds_last_error(), bad[i][1])) {
            snprintf(msg_, cap_, "'%s': status %d, '%s'", bad[i][0], (int)st, ds_last_error());
            rc = TEST_FAIL;
        }
    }
    o.folds = 41;
    const char *p[] = {"k=1,2"};
    if (rc == TEST_PASS && (ds_classic_search(m, 1, p, &o, x, y, &r, &n) != DS_ERR_ARG ||
                            !strstr(ds_last_error(), "41 folds for 40 samples"))) {
        snprintf(msg_, cap_, "41 folds: '%s'", ds_last_error());
        rc = TEST_FAIL;
    }
    o.folds = 4;
    if (rc == TEST_PASS && (ds_classic_create("kmeans", &km) ||
                            ds_classic_search(km, 1, p, &o, x, y, &r, &n) != DS_ERR_ARG ||
                            !strstr(ds_last_error(), "not clusters"))) {
        snprintf(msg_, cap_, "kmeans: '%s'", ds_last_error());
        rc = TEST_FAIL;
    }
    ds_classic_free(m), ds_classic_free(km);
    ds_tensor_free(x), ds_tensor_free(y);
    return rc;
}

TEST(classic_learning_curve_rises)
{
    ds_tensor *x, *y;
    board(400, 4, 0, 4, &x, &y);
    ds_classic *m = NULL;
    CHECK(!ds_classic_create("random-forest", &m) && !ds_classic_set(m, "n-trees", "10"));
    double f[] = {1.0 / 16, 0.25, 1};
    ds_curve_point pt[3];
    ds_status st = ds_classic_learning_curve(m, x, y, 3, f, 4, 1, pt);
    ds_classic_free(m);
    ds_tensor_free(x), ds_tensor_free(y);
    CHECK(st == DS_OK);
    if (!(pt[0].size == 19 && pt[2].size == 300) || !(pt[2].val > pt[0].val + 0.2) ||
        !(pt[2].val > 0.78) || !(pt[0].train >= pt[0].val) || !(pt[0].val_spread > 0))
        FAIL("sizes %lld %lld %lld, validation %.3f %.3f %.3f (+- %.3f), train %.3f",
             (long long)pt[0].size, (long long)pt[1].size, (long long)pt[2].size, pt[0].val,
             pt[1].val, pt[2].val, pt[0].val_spread, pt[0].train);
    return TEST_PASS;
}
