/* test_metrics.c - AUROC and TPR at fixed FPR against values worked out by hand (and
 * scikit-learn's roc_auc_score for the AUROC cases). */
#include "test.h"

TEST(auroc_known_values)
{
    const float s[4] = {0.1f, 0.4f, 0.35f, 0.8f}, l[4] = {0, 0, 1, 1};
    CHECK_NEAR(ds_auroc(4, s, l), 0.75, 1e-12);           /* sklearn: 0.75 */
    const float perfect[4] = {0.1f, 0.2f, 0.8f, 0.9f};
    CHECK_NEAR(ds_auroc(4, perfect, l), 1.0, 1e-12);
    const float ties[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    CHECK_NEAR(ds_auroc(4, ties, l), 0.5, 1e-12);          /* ties share their rank */
    const float s6[6] = {0.9f, 0.8f, 0.8f, 0.3f, 0.2f, 0.1f}, l6[6] = {1, 0, 1, 1, 0, 0};
    CHECK_NEAR(ds_auroc(6, s6, l6), 0.8333333333, 1e-9);   /* sklearn: 0.8333 */
    const float one_class[4] = {1, 1, 1, 1};
    CHECK(isnan(ds_auroc(4, s, one_class)));
    return TEST_PASS;
}

TEST(tpr_at_fpr_known_values)
{
    /* descending: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): ROC (0,.5) (.5,.5) (.5,1) (1,1) */
    const float s[4] = {0.1f, 0.4f, 0.35f, 0.8f}, l[4] = {0, 0, 1, 1};
    CHECK_NEAR(ds_tpr_at_fpr(4, s, l, 0.0), 0.5, 1e-12);
    CHECK_NEAR(ds_tpr_at_fpr(4, s, l, 0.5), 1.0, 1e-12);   /* the best at FPR <= 0.5 */
    CHECK_NEAR(ds_tpr_at_fpr(4, s, l, 0.25), 0.5, 1e-12);
    CHECK_NEAR(ds_tpr_at_fpr(4, s, l, 1.0), 1.0, 1e-12);
    /* a tie of one positive and one negative: the ROC segment from (0, 0) to (1/2, 1/2) is
     * interpolated, giving TPR 0.25 at FPR 0.25 */
    const float s2[4] = {0.9f, 0.9f, 0.1f, 0.2f}, l2[4] = {1, 0, 0, 1};
    CHECK_NEAR(ds_tpr_at_fpr(4, s2, l2, 0.25), 0.25, 1e-12);
    return TEST_PASS;
}

/* 12 scores with tie blocks, 5 positives: the curve equals scikit-learn's roc_curve
 * (drop_intermediate=False), TPR0 and TPR10-like counts read off it by hand. */
TEST(roc_curve_and_tpr_at_fp)
{
    const float s[12] = {0.9f, 0.8f, 0.8f, 0.7f, 0.6f, 0.6f, 0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f};
    const float l[12] = {1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0};
    const double f_ref[10] = {0, 0, 1. / 7, 1. / 7, 3. / 7, 4. / 7, 4. / 7, 5. / 7, 6. / 7, 1};
    const double t_ref[10] = {0, 0.2, 0.4, 0.6, 0.8, 0.8, 1, 1, 1, 1};
    double f[13], t[13];
    int64_t k = 0;
    CHECK_OK(ds_roc_curve(12, s, l, f, t, &k));
    CHECK(k == 10);
    for (int i = 0; i < 10; i++) {
        CHECK_NEAR(f[i], f_ref[i], 1e-12);
        CHECK_NEAR(t[i], t_ref[i], 1e-12);
    }
    CHECK_NEAR(ds_auroc(12, s, l), 0.7857142857142858, 1e-12);   /* sklearn */
    CHECK_NEAR(ds_tpr_at_fp(12, s, l, 0), 0.2, 1e-12);   /* the 0.8 tie holds a negative */
    CHECK_NEAR(ds_tpr_at_fp(12, s, l, 1), 0.6, 1e-12);
    CHECK_NEAR(ds_tpr_at_fp(12, s, l, 3), 0.8, 1e-12);   /* 0.6's block brings 2 negatives */
    CHECK_NEAR(ds_tpr_at_fp(12, s, l, 9), 1.0, 1e-12);
    const float one[3] = {1, 1, 1}, nan_s[3] = {0.1f, NAN, 0.3f}, l3[3] = {0, 1, 0};
    CHECK(isnan(ds_tpr_at_fp(3, s, one, 0)));
    CHECK(ds_roc_curve(3, s, one, f, t, &k) == DS_ERR_ARG);
    CHECK(ds_roc_curve(3, nan_s, l3, f, t, &k) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "score[1]"));
    return TEST_PASS;
}
