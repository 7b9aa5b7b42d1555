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

/* ds_image_shift against a copy pixel by pixel: (i, j) -> (i + dy, j + dx), the rest 0. */
TEST(augment_shift_moves_pixels_and_zeros_the_rest)
{
    enum { P = 2, H = 5, W = 7 };
    float a[P * H * W], want[P * H * W];
    for (int dy = -6; dy <= 6; dy++)
        for (int dx = -8; dx <= 8; dx++) {
            for (int i = 0; i < P * H * W; i++)
                a[i] = (float)(i + 1);
            memset(want, 0, sizeof want);
            for (int p = 0; p < P; p++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++)
                        if (i + dy >= 0 && i + dy < H && j + dx >= 0 && j + dx < W)
                            want[(p * H + i + dy) * W + j + dx] = (float)(p * H * W + i * W + j + 1);
            ds_image_shift(a, P, H, W, dy, dx);
            if (memcmp(a, want, sizeof a))
                FAIL("shift (%d, %d): the image differs from a copy pixel by pixel", dy, dx);
        }
    return TEST_PASS;
}

/* What training sees: a linear model whose weights never move (zero weights, labels 0: no gradient) and a gradient hook
 * that reads the input node after each step of one sample. Every image seen must be the
 * sample mirrored left-right or not, shifted by at most s pixels; over the epochs every
 * one of the 2 (2s + 1)^2 choices shows up, in roughly equal numbers. */
typedef struct {
    const float *x;   /* the data, [N, 1, H, W] */
    int64_t step;
    int counts[2][5][5];
    int bad;
} seen_ctx;

enum { AH = 6, AW = 5, AN = 7, AS = 2 };

static int match_view(const float *src, const float *img, int *flip, int *dy, int *dx)
{
    float t[AH * AW], tmp[AH * AW];
    for (int f = 0; f < 2; f++)
        for (int y = -AS; y <= AS; y++)
            for (int x = -AS; x <= AS; x++) {
                memcpy(t, src, sizeof t);
                ds_image_transform(t, 1, AH, AW, f, tmp);
                ds_image_shift(t, 1, AH, AW, y, x);
                if (!memcmp(t, img, sizeof t)) {
                    *flip = f, *dy = y, *dx = x;
                    return 1;
                }
            }
    return 0;
}

static ds_status record_view(void *ctx, const ds_step_info *s)
{
    seen_ctx *c = ctx;
    const float *img = ds_node_data(ds_net_input_at(s->net, 0));
    int f, y, x;
    if (match_view(c->x + (c->step % AN) * AH * AW, img, &f, &y, &x))
        c->counts[f][y + AS][x + AS]++;
    else
        c->bad++;
    c->step++;
    return DS_OK;
}

TEST(augment_hflip_and_shift_show_every_view_to_training)
{
    static const char *const model = "input shape=1x6x5\nflatten\n"
                                     "dense units=1 init=zeros bias_init=zeros\n"
                                     "loss mse\noptimizer sgd lr=0.1\n";
    ds_net *n;
    ds_net_opts no = {.batch = 1, .seed = 1};
    CHECK(ds_net_parse(model, "shift.model", &no, &n) == DS_OK);
    int64_t xs[] = {AN, 1, AH, AW}, ys[] = {AN, 1};
    ds_tensor *x = ds_tensor_create(4, xs), *y = ds_tensor_create(2, ys);
    CHECK(x && y);
    for (int64_t i = 0; i < AN * AH * AW; i++)   /* no image equals another view of itself */
        ds_tensor_data(x)[i] = (float)(1 + (i * 7919) % 1009);
    seen_ctx c = {.x = ds_tensor_data(x)};
    enum { EPOCHS = 200 };
    ds_fit_opts fo = {.epochs = EPOCHS, .batch_size = 1, .seed = 3, .no_shuffle = 1,
                      .augment = DS_AUG_HFLIP, .augment_shift = AS,
                      .grad_hook = record_view, .grad_ctx = &c};
    ds_fit_result r;
    ds_status st = ds_net_fit(n, x, y, NULL, NULL, &fo, &r);
    ds_net_free(n);
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK(st == DS_OK);
    CHECK(c.bad == 0 && c.step == (int64_t)EPOCHS * AN);
    /* 1400 draws over 50 cells: 28 expected in each */
    int lo = 1 << 30, hi = 0;
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) {
                int k = c.counts[f][i][j];
                lo = k < lo ? k : lo;
                hi = k > hi ? k : hi;
            }
    if (lo < 10 || hi > 50)
        FAIL("views seen between %d and %d times each, where 28 are expected", lo, hi);
    return TEST_PASS;
}
