/* test_segment.c - the threshold-and-watershed segmentation splits well-separated galaxies,
 * the per-object IoU and its label matching, the sky estimate, and bad input. */
#include "test.h"

#include <stdbool.h>

/* Mean per-object IoU of ds_segment_watershed (options so) on blends o. */
static double mean_iou(const ds_blend_opts *o, const ds_segment_opts *so, double *worst)
{
    ds_tensor *x, *l, *t;
    if (ds_sim_blends(o, &x, &l, &t, NULL) != DS_OK)
        return NAN;
    const int s = o->sim.size;
    const int64_t npix = (int64_t)s * s;
    float *lab = malloc(sizeof *lab * (size_t)npix);
    double sum = 0;
    int64_t n = 0;
    *worst = 1;
    for (int64_t i = 0; lab && i < o->sim.count; i++) {
        double iou[2];
        if (ds_segment_watershed(ds_tensor_data(x) + i * npix, s, s, so, lab, NULL) != DS_OK ||
            ds_segment_iou(lab, ds_tensor_data(l) + i * npix, npix, 2, iou) != DS_OK) {
            sum = NAN;
            break;
        }
        for (int k = 0; k < 2; k++)
            if (!isnan(iou[k]))
                sum += iou[k], n++, *worst = fmin(*worst, iou[k]);
    }
    free(lab);
    ds_tensor_free(x), ds_tensor_free(l), ds_tensor_free(t);
    return lab && n ? sum / (double)n : NAN;
}

static ds_blend_opts discs(void)
{
    ds_blend_opts o = {0};
    ds_sim_opts *s = &o.sim;
    s->count = 20, s->size = 48, s->seed = 4, s->n_min = 1, s->n_max = 1, s->hlr_min = 2.5;
    s->hlr_max = 3.5, s->e_max = 0.2, s->snr_min = 200, s->snr_max = 300, s->sky_sigma = 1;
    s->offset_max = 0.5, s->psf.kind = DS_PSF_GAUSSIAN, s->psf.fwhm = 2;
    o.sep_min = 16, o.sep_max = 18, o.ratio_min = 0.5, o.ratio_max = 1, o.mask_threshold = 5;
    return o;
}

TEST(segment_watershed_splits_two_separated_discs)
{
    ds_blend_opts o = discs();
    /* masks at 5 sky sigmas (a contour the noise moves little), the threshold a little
     * above them as the default 1.3 is for masks at 1 */
    ds_segment_opts so = {.k = 6, .sky_sigma = 1};
    double worst, m = mean_iou(&o, &so, &worst);
    if (!(m > 0.9 && worst > 0.8))
        FAIL("mean IoU %.3f (worst %.3f), expected > 0.9 (> 0.8)", m, worst);
    /* the sky estimated from the stamps (MAD) splits them too; the galaxies' light biases
     * it high, so the contour shrinks a little */
    so.sky_sigma = 0;
    m = mean_iou(&o, &so, &worst);
    if (!(m > 0.75 && worst > 0.5))
        FAIL("with the sky estimated: mean IoU %.3f (worst %.3f), expected > 0.75 (> 0.5)", m,
             worst);
    /* and a single marker cannot split them: the fainter object is unmatched (IoU 0) */
    so.max_objects = 1;
    m = mean_iou(&o, &so, &worst);
    CHECK(m < 0.6 && worst == 0);
    return TEST_PASS;
}

TEST(segment_labels_are_ordered_by_peak_height)
{
    float img[20 * 20] = {0}, lab[20 * 20];
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 20; j++)
            img[i * 20 + j] = (float)(10 * exp(-((i - 5) * (i - 5) + (j - 5) * (j - 5)) / 4.0) +
                                      30 * exp(-((i - 14) * (i - 14) + (j - 13) * (j - 13)) / 4.0));
    ds_segment_opts so = {.sky_sigma = 1, .smooth = -1};
    int found = 0;
    CHECK(ds_segment_watershed(img, 20, 20, &so, lab, &found) == DS_OK);
    CHECK(found == 2);
    CHECK(lab[14 * 20 + 13] == 1 && lab[5 * 20 + 5] == 2 && lab[0] == 0);
    int64_t n1 = 0, n2 = 0;
    for (int p = 0; p < 400; p++)
        n1 += lab[p] == 1, n2 += lab[p] == 2;
    CHECK(n1 > 10 && n2 > 10);   /* each blob got its own region */
    return TEST_PASS;
}

TEST(segment_iou_matches_labels)
{
    /* truth: object 1 on pixels 0-3, object 2 on 4-7; prediction swaps the labels and takes
     * one pixel of object 2 into object 1's region */
    const float truth[10] = {1, 1, 1, 1, 2, 2, 2, 2, 0, 0};
    const float pred[10] = {2, 2, 2, 2, 2, 1, 1, 1, 0, 0};
    double iou[3];
    CHECK(ds_segment_iou(pred, truth, 10, 2, iou) == DS_OK);
    CHECK_NEAR(iou[0], 4.0 / 5, 1e-12);   /* object 1 = pred 2: 4 common of 5 */
    CHECK_NEAR(iou[1], 3.0 / 4, 1e-12);   /* object 2 = pred 1: 3 of 4 */
    /* a missing object scores 0, an absent one NaN */
    const float one[10] = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
    CHECK(ds_segment_iou(one, truth, 10, 2, iou) == DS_OK);
    CHECK(iou[0] == 1 && iou[1] == 0);
    CHECK(ds_segment_iou(truth, one, 10, 3, iou) == DS_OK);
    CHECK(iou[0] == 1 && isnan(iou[1]) && isnan(iou[2]));
    /* one-to-one: two true objects cannot share one prediction */
    const float all[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    CHECK(ds_segment_iou(all, truth, 10, 2, iou) == DS_OK);
    CHECK(iou[0] + iou[1] == 0.5 && (iou[0] == 0 || iou[1] == 0));
    return TEST_PASS;
}

TEST(segment_bad_input)
{
    const float truth[4] = {0, 1, 2, 0}, pred[4] = {0, 3, 1.5f, 0};
    double iou[2];
    CHECK_OK(check_arg_error(ds_segment_iou(pred, truth, 4, 2, iou),
                             "predicted label 3 at pixel 1 is not an integer in [0, 2]", msg_,
                             cap_));
    CHECK_OK(check_arg_error(ds_segment_iou(truth, pred, 4, 2, iou),
                             "true label 3 at pixel 1", msg_, cap_));
    CHECK_OK(check_arg_error(ds_segment_iou(truth, truth, 4, 9, iou), "n_labels 9 must be in "
                             "[1, 8]", msg_, cap_));
    float img[16] = {0}, lab[16];
    ds_segment_opts so = {.max_objects = 300};
    CHECK_OK(check_arg_error(ds_segment_watershed(img, 4, 4, &so, lab, NULL),
                             "max_objects 300 (1 to 255)", msg_, cap_));
    CHECK_OK(check_arg_error(ds_segment_watershed(img, 0, 4, NULL, lab, NULL),
                             "image 0 x 4 is empty", msg_, cap_));
    CHECK_OK(check_arg_error(ds_segment_watershed(NULL, 4, 4, NULL, lab, NULL),
                             "image and labels must not be NULL", msg_, cap_));
    /* an empty sky: nothing found, all background */
    int found = -1;
    CHECK(ds_segment_watershed(img, 4, 4, NULL, lab, &found) == DS_OK);
    CHECK(found == 0 && lab[5] == 0);
    return TEST_PASS;
}
