/* test_gmm.c - the Gaussian mixture of VAE latent codes (ds_gmm_*): its fit against
 * scikit-learn's GaussianMixture (tests/fixtures/gen_gmm.py), its draws' moments, seeding,
 * and bad input. */
#include "test.h"

#include <math.h>
#include <string.h>

/* A [n, d] tensor holding a copy of the fixture's key. */
static ds_tensor *fixture_rows(const ds_tensor_set *fx, const char *key, int64_t d)
{
    int64_t n = 0;
    const float *v = fixture_data(fx, key, &n, NULL, 0);
    ds_tensor *t = v ? ds_tensor_create(2, (int64_t[]){n / d, d}) : NULL;
    if (t)
        memcpy(ds_tensor_data(t), v, sizeof(float) * (size_t)n);
    return t;
}

/* The mean log-likelihood of the fitted and of held-out data, and the means, as sklearn's
 * (the clusters are well apart: one optimum). */
TEST(gmm_fit_matches_sklearn)
{
    ds_tensor_set *fx = fixture_load("gmm", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    ds_tensor *x = fixture_rows(fx, "x", 3), *held = fixture_rows(fx, "held", 3), *z = NULL;
    CHECK(x && held);
    ds_gmm *g = NULL;
    CHECK(ds_gmm_fit(x, 3, 1, &g) == DS_OK && ds_gmm_components(g) == 3);
    double sx, sh;
    CHECK(ds_gmm_score(g, x, &sx) == DS_OK && ds_gmm_score(g, held, &sh) == DS_OK);
    const float *want_x = fixture_data(fx, "score_x", NULL, msg_, cap_);
    const float *want_h = fixture_data(fx, "score_held", NULL, msg_, cap_);
    const float *want_m = fixture_data(fx, "means", NULL, msg_, cap_);
    CHECK(want_x && want_h && want_m);
    CHECK_NEAR(sx, want_x[0], 1e-3);
    CHECK_NEAR(sh, want_h[0], 1e-3);
    /* the components' means, seen through the draws: their mean per cluster (each draw
     * assigned to the nearest of sklearn's means) */
    CHECK(ds_gmm_sample(g, 30000, 2, &z) == DS_OK);
    double m[3][4] = {{0}};
    for (int64_t i = 0; i < 30000; i++) {
        const float *r = ds_tensor_data(z) + i * 3;
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c < 3; c++) {
            double d2 = 0;
            for (int j = 0; j < 3; j++)
                d2 += (r[j] - want_m[c * 3 + j]) * (r[j] - want_m[c * 3 + j]);
            if (d2 < bd)
                bd = d2, best = c;
        }
        for (int j = 0; j < 3; j++)
            m[best][j] += r[j];
        m[best][3] += 1;
    }
    double worst = 0;
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < 3; j++)
            worst = fmax(worst, fabs(m[c][j] / m[c][3] - want_m[c * 3 + j]));
    CHECK(worst < 0.1);   /* the draws' cluster means (30,000 draws: about 0.02 apart) */
    snprintf(msg_, cap_, "mean log-likelihood %.5f (sklearn %.5f), held-out %.5f (%.5f), %d EM "
             "iterations; draws' cluster means within %.3f", sx, want_x[0], sh, want_h[0],
             ds_gmm_iterations(g), worst);
    ds_gmm_free(g);
    ds_tensor_free(x), ds_tensor_free(held), ds_tensor_free(z);
    ds_tensor_set_free(fx);
    return TEST_PASS;
}

/* One component: the draws have the data's mean and covariance; the same seeds give the
 * same draws; bad input is refused with a reason. */
TEST(gmm_draws_seeding_and_bad_input)
{
    ds_rng r;
    ds_rng_seed(&r, 4);
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){2000, 2}), *a = NULL, *b = NULL;
    CHECK(x);
    float *xd = ds_tensor_data(x);
    for (int64_t i = 0; i < 2000; i++) {   /* mean (1, -2), var 4 and 1.25, cov 1 */
        double u = ds_rng_normal(&r), v = ds_rng_normal(&r);
        xd[2 * i] = (float)(1 + 2 * u);
        xd[2 * i + 1] = (float)(-2 + 0.5 * u + v);
    }
    ds_gmm *g = NULL, *g2 = NULL;
    CHECK(ds_gmm_fit(x, 1, 7, &g) == DS_OK && ds_gmm_fit(x, 1, 7, &g2) == DS_OK);
    CHECK(ds_gmm_sample(g, 20000, 3, &a) == DS_OK && ds_gmm_sample(g2, 20000, 3, &b) == DS_OK);
    CHECK(!memcmp(ds_tensor_data(a), ds_tensor_data(b), 40000 * sizeof(float)));
    double s[5] = {0};
    const float *ad = ds_tensor_data(a);
    for (int64_t i = 0; i < 20000; i++) {
        s[0] += ad[2 * i], s[1] += ad[2 * i + 1];
        s[2] += ad[2 * i] * ad[2 * i], s[3] += ad[2 * i + 1] * ad[2 * i + 1];
        s[4] += ad[2 * i] * ad[2 * i + 1];
    }
    for (int k = 0; k < 5; k++)
        s[k] /= 20000;
    CHECK_NEAR(s[0], 1, 0.06);
    CHECK_NEAR(s[1], -2, 0.04);
    CHECK_NEAR(s[2] - s[0] * s[0], 4, 0.25);
    CHECK_NEAR(s[3] - s[1] * s[1], 1.25, 0.08);
    CHECK_NEAR(s[4] - s[0] * s[1], 1, 0.1);
    ds_gmm *bad = NULL;
    ds_tensor *one = ds_tensor_create(1, (int64_t[]){10});
    CHECK(ds_gmm_fit(one, 1, 0, &bad) == DS_ERR_SHAPE && !bad);
    CHECK(strstr(ds_last_error(), "[samples, dims]"));
    CHECK(ds_gmm_fit(x, 0, 0, &bad) == DS_ERR_ARG && !bad);
    CHECK(ds_gmm_fit(x, 1000, 0, &bad) == DS_ERR_ARG && !bad);
    CHECK(strstr(ds_last_error(), "1000 components (1 to 256)"));
    xd[7] = NAN;
    CHECK(ds_gmm_fit(x, 2, 0, &bad) == DS_ERR_VALUE && !bad);
    CHECK(ds_gmm_score(g, one, &s[0]) == DS_ERR_SHAPE);
    ds_tensor *none = NULL;
    CHECK(ds_gmm_sample(g, 0, 1, &none) == DS_ERR_ARG && !none);
    snprintf(msg_, cap_, "20,000 draws: mean (%.3f, %.3f), var (%.3f, %.3f), cov %.3f; data "
             "(1, -2), (4, 1.25), 1", s[0], s[1], s[2] - s[0] * s[0], s[3] - s[1] * s[1],
             s[4] - s[0] * s[1]);
    ds_gmm_free(g), ds_gmm_free(g2);
    ds_tensor_free(x), ds_tensor_free(a), ds_tensor_free(b), ds_tensor_free(one);
    return TEST_PASS;
}
