/* test_augment.c - augmentation transforms: images and ellipticity labels move together
 * (a rendered galaxy, transformed, measures the transformed ellipticity). */
#include "test.h"

TEST(augment_transform_maps_ellipticity)
{
    enum { S = 33 };
    static float img[S * S], tmp[S * S];
    for (int t = 0; t < 16; t++) {
        ds_galaxy g = {.n = 1, .hlr = 3, .flux = 100, .e1 = 0.3, .e2 = 0.15, .dx = 0, .dy = 0};
        CHECK(ds_galaxy_render(&g, &(ds_psf){.kind = DS_PSF_NONE}, S, img) == DS_OK);
        ds_image_transform(img, 1, S, S, t, tmp);
        ds_moments m;
        CHECK(ds_adaptive_moments(img, S, 0, &m) == DS_OK && m.flag == 0);
        float e[2] = {0.3f, 0.15f};
        ds_ellipticity_transform(NULL, t, e, 2);
        /* distortion has the sign pattern of eps: compare signs and the ratio */
        if ((m.e1 > 0) != (e[0] > 0) || (m.e2 > 0) != (e[1] > 0) ||
            fabs(m.e1 / m.e2 - (double)e[0] / e[1]) > 2e-2)
            FAIL("transform %d: image measures (%.4f, %.4f), labels say (%.3f, %.3f)", t, m.e1,
                 m.e2, e[0], e[1]);
    }
    return TEST_PASS;
}

TEST(augment_transform_is_a_permutation)
{
    enum { H = 5, W = 5 };
    float a[H * W], tmp[H * W];
    for (int t = 0; t < 16; t++) {
        for (int i = 0; i < H * W; i++)
            a[i] = (float)i;
        ds_image_transform(a, 1, H, W, t, tmp);
        double s = 0;
        for (int i = 0; i < H * W; i++)
            s += a[i];
        CHECK_NEAR(s, (H * W - 1) * H * W / 2.0, 0);
        CHECK_NEAR(a[2 * W + 2], 12, 0);   /* the centre stays */
    }
    /* four quarter turns are the identity; a quarter turn sends (x, y) -> (-y, x): the
     * pixel right of the centre (row 2, column 3) goes below it (row 3, column 2) */
    for (int i = 0; i < H * W; i++)
        a[i] = (float)i;
    ds_image_transform(a, 1, H, W, 1 << 2, tmp);
    CHECK_NEAR(a[3 * W + 2], 2 * W + 3, 0);
    return TEST_PASS;
}
