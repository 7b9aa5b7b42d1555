/* test_explain.c - the attribution methods (src/explain/): a known answer on images whose
 * class only a blob in the top-left quadrant decides (the other quadrants hold the same
 * blobs and stripes as distractors), integrated gradients' completeness, class
 * visualization, filters and feature maps, determinism at any thread count, bad input. */
#include "test.h"

#include <stdbool.h>

#define KA_SIZE 16
#define KA_TRAIN 384
#define KA_TEST 24

/* A Gaussian blob of sigma 1.2 and peak amp centred at (cy, cx). */
static void blob(float *img, double cy, double cx, double amp)
{
    for (int y = 0; y < KA_SIZE; y++)
        for (int x = 0; x < KA_SIZE; x++)
            img[y * KA_SIZE + x] +=
                (float)(amp * exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / (2 * 1.44)));
}

/* Whether (y, x) is in the known region, the top-left quadrant. */
static bool in_region(int y, int x)
{
    return y < KA_SIZE / 2 && x < KA_SIZE / 2;
}

/* Image i: class i % 2 (1: a blob inside the region, centred in 2..4.5). Distractors in
 * the other quadrants of every image: stripes in one, a trail (a line) in another, two
 * cosmic rays (hot pixels) anywhere outside the region; a little noise everywhere. */
static void known_answer_image(uint64_t seed, int64_t i, float *img, float *label)
{
    ds_rng g;
    ds_rng_seed(&g, seed * 1000003u + (uint64_t)i);
    memset(img, 0, KA_SIZE * KA_SIZE * sizeof(float));
    int cls = (int)(i % 2), h = KA_SIZE / 2;
    if (cls)
        blob(img, 2 + 2.5 * ds_rng_uniform(&g), 2 + 2.5 * ds_rng_uniform(&g), 1.0);
    int qs = 1 + (int)ds_rng_below(&g, 3), ql = 1 + (qs + (int)ds_rng_below(&g, 2)) % 3;
    double f = 0.8 + 0.8 * ds_rng_uniform(&g), ph = 6.28 * ds_rng_uniform(&g);
    int along = (int)ds_rng_below(&g, 2), at = 1 + (int)ds_rng_below(&g, h - 2);
    for (int y = 0; y < KA_SIZE; y++)
        for (int x = 0; x < KA_SIZE; x++) {
            int q = (y >= h) * 2 + (x >= h), u = along ? y % h : x % h;
            if (q == qs)
                img[y * KA_SIZE + x] += (float)(0.4 * sin(f * (along ? x : y) + ph));
            if (q == ql && u == at)
                img[y * KA_SIZE + x] += 0.6f;
            img[y * KA_SIZE + x] += (float)(0.03 * ds_rng_normal(&g));
        }
    for (int k = 0; k < 2; k++) {
        int y, x;
        do {
            y = (int)ds_rng_below(&g, KA_SIZE);
            x = (int)ds_rng_below(&g, KA_SIZE);
        } while (in_region(y, x));
        img[y * KA_SIZE + x] += 0.8f;
    }
    *label = (float)cls;
}

static void known_answer_set(uint64_t seed, int64_t n, ds_tensor **x, ds_tensor **y)
{
    *x = ds_tensor_create(4, (int64_t[]){n, 1, KA_SIZE, KA_SIZE});
    *y = ds_tensor_create(2, (int64_t[]){n, 1});
    for (int64_t i = 0; *x && *y && i < n; i++)
        known_answer_image(seed, i, ds_tensor_data(*x) + i * KA_SIZE * KA_SIZE,
                           ds_tensor_data(*y) + i);
}

static const char *const ka_model =
    "input shape=1x16x16\n"
    "conv2d name=c1 filters=8 kernel=3 padding=same activation=relu\n"
    "maxpool size=2\n"
    "conv2d name=c2 filters=8 kernel=3 padding=same activation=relu\n"
    "globalmaxpool\n"
    "dense name=out units=1\n"
    "loss binary_crossentropy from_logits=true\n"
    "optimizer adam lr=0.01 weight_decay=1e-2\n";

/* The known-answer net (one logit: the evidence for class 1), trained on KA_TRAIN images;
 * the class-1 test images in *xt, and the test accuracy. */
static ds_net *known_answer_net(ds_tensor **xt, double *acc)
{
    ds_net *n = NULL;
    ds_net_opts no = {.batch = 32, .seed = 7};
    ds_tensor *x = NULL, *y = NULL, *xa = NULL, *ya = NULL, *p = NULL;
    *xt = NULL;
    known_answer_set(1, KA_TRAIN, &x, &y);
    known_answer_set(2, 2 * KA_TEST, &xa, &ya);
    ds_fit_opts fo = {.epochs = 12, .batch_size = 32, .seed = 3};
    ds_fit_result res;
    if (!x || !y || !xa || !ya || ds_net_parse(ka_model, "ka.model", &no, &n) ||
        ds_net_fit(n, x, y, NULL, NULL, &fo, &res) || ds_net_predict(n, xa, 64, &p))
        goto done;
    int64_t ok = 0;
    for (int64_t i = 0; i < 2 * KA_TEST; i++) {
        ok += (ds_tensor_data(p)[i] > 0) == (ds_tensor_data(ya)[i] > 0.5f);
    }
    *acc = (double)ok / (2.0 * KA_TEST);
    /* the class-1 test images */
    *xt = ds_tensor_create(4, (int64_t[]){KA_TEST, 1, KA_SIZE, KA_SIZE});
    for (int64_t i = 0; *xt && i < KA_TEST; i++)
        memcpy(ds_tensor_data(*xt) + i * KA_SIZE * KA_SIZE,
               ds_tensor_data(xa) + (2 * i + 1) * KA_SIZE * KA_SIZE,
               KA_SIZE * KA_SIZE * sizeof(float));
done:
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_tensor_free(xa);
    ds_tensor_free(ya);
    ds_tensor_free(p);
    if (!*xt) {
        ds_net_free(n);
        return NULL;
    }
    return n;
}

/* Mean over the samples of the share of |map| inside the region (map [N, 16, 16] or
 * [N, 1, 16, 16]). */
static double region_share(const ds_tensor *map)
{
    int64_t N = ds_tensor_shape(map)[0];
    const float *m = ds_tensor_data((ds_tensor *)map);
    double share = 0;
    for (int64_t i = 0; i < N; i++) {
        double in = 0, all = 0;
        for (int y = 0; y < KA_SIZE; y++)
            for (int x = 0; x < KA_SIZE; x++) {
                double v = fabs(m[(i * KA_SIZE + y) * KA_SIZE + x]);
                all += v;
                in += in_region(y, x) ? v : 0;
            }
        share += all > 0 ? in / all : 0;
    }
    return share / (double)N;
}

typedef ds_status (*method_fn)(ds_net *, const ds_tensor *, const ds_explain_opts *,
                               ds_explain_result *);

TEST(explain_known_answer_attributions_fall_in_the_region)
{
    double acc = 0;
    ds_tensor *xt;
    ds_net *n = known_answer_net(&xt, &acc);
    CHECK(n);
    static const struct {
        const char *name;
        method_fn fn;
    } methods[] = {
        {"saliency", ds_explain_saliency},
        {"integrated-gradients", ds_explain_integrated_gradients},
        {"smoothgrad", ds_explain_smoothgrad},
        {"occlusion", ds_explain_occlusion},
        {"grad-cam", ds_explain_grad_cam},
    };
    double share[5];
    ds_explain_opts o = {.batch = 64, .seed = 5, .patch = 4, .stride = 2};
    ds_explain_result r;
    int bad = -1;
    for (int k = 0; k < 5; k++) {
        if (methods[k].fn(n, xt, &o, &r) != DS_OK) {
            bad = k;
            break;
        }
        share[k] = region_share(r.map);
        ds_explain_result_free(&r);
    }
    ds_net_free(n);
    ds_tensor_free(xt);
    if (bad >= 0)
        FAIL("%s failed: %s", methods[bad].name, ds_last_error());
    fprintf(stderr, "  known answer (test accuracy %.3f): share in the region", acc);
    for (int k = 0; k < 5; k++)
        fprintf(stderr, " %s %.3f", methods[k].name, share[k]);
    fprintf(stderr, "\n");
    CHECK(acc >= 0.95);
    for (int k = 0; k < 5; k++)
        if (share[k] < 0.8)
            FAIL("%s: %.3f of the attribution inside the region, under 0.8", methods[k].name,
                 share[k]);
    return TEST_PASS;
}
