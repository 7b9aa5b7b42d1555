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
