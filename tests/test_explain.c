/* test_explain.c - the attribution methods (src/explain/): a known answer on images whose
 * class only a blob in the top-left quadrant decides (the other quadrants hold the same
 * blobs and stripes as distractors), integrated gradients' completeness, class
 * visualization, filters and feature maps, determinism at any thread count, bad input. */
#include "test.h"

#include <cairo.h>
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

/* The largest |delta| / |f(x) - f(b)| of IG of every sample of x at every target of 0..K-1. */
static double ig_worst(ds_net *n, const ds_tensor *x, int64_t K, ds_explain_ig_rule rule,
                       int steps)
{
    double worst = 0;
    for (int64_t t = 0; t < K; t++) {
        ds_explain_result r;
        if (ds_explain_integrated_gradients(n, x, &(ds_explain_opts){.target = t, .steps = steps,
                                                .ig_rule = rule, .batch = 16}, &r))
            return INFINITY;
        int64_t N = ds_tensor_shape(x)[0], D = ds_tensor_numel(x) / N;
        for (int64_t i = 0; i < N; i++) {
            double d = ds_tensor_data(r.delta)[i], sum = 0;
            for (int64_t q = 0; q < D; q++)
                sum += ds_tensor_data(r.map)[i * D + q];
            worst = fmax(worst, fabs(d) / fabs(sum - d));
        }
        ds_explain_result_free(&r);
    }
    return worst;
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
    double share[5], worst_gap = 0, mean_gap = 0;
    ds_explain_opts o = {.batch = 64, .seed = 5, .patch = 4, .stride = 2,
                         .ig_rule = DS_IG_PIECEWISE};
    ds_explain_result r;
    int bad = -1;
    for (int k = 0; k < 5; k++) {
        if (methods[k].fn(n, xt, &o, &r) != DS_OK) {
            bad = k;
            break;
        }
        share[k] = region_share(r.map);
        for (int64_t i = 0; r.delta && i < ds_tensor_numel(r.delta); i++) {
            double d = ds_tensor_data(r.delta)[i], sum = 0;   /* f(x) - f(b) = sum - delta */
            for (int64_t q = 0; q < KA_SIZE * KA_SIZE; q++)
                sum += ds_tensor_data(r.map)[i * KA_SIZE * KA_SIZE + q];
            worst_gap = fmax(worst_gap, fabs(d) / fabs(sum - d));
            mean_gap += fabs(d) / fabs(sum - d) / (double)KA_TEST;
        }
        ds_explain_result_free(&r);
    }
    if (bad >= 0) {
        ds_net_free(n);
        ds_tensor_free(xt);
        FAIL("%s failed: %s", methods[bad].name, ds_last_error());
    }
    fprintf(stderr, "  known answer (test accuracy %.3f): share in the region", acc);
    for (int k = 0; k < 5; k++)
        fprintf(stderr, " %s %.3f", methods[k].name, share[k]);
    fprintf(stderr, "; IG completeness error (piecewise rule) |delta| / |f(x) - f(0)| at 64 steps: mean %.2e, "
            "largest %.2e\n", mean_gap, worst_gap);
    /* the midpoint rule on the same images (its largest was 1.04e-2; the trapezoid's 1.49e-2,
     * Gauss-Legendre's 1.44e-2, the left sum's 2.12e-2, left out here for time) */
    double mid = ig_worst(n, xt, 1, DS_IG_MIDPOINT, 64);
    fprintf(stderr, "  the same by the midpoint rule: largest %.2e\n", mid);
    ds_net_free(n);
    ds_tensor_free(xt);
    CHECK(acc >= 0.95);
    CHECK(worst_gap < 0.01);   /* the piecewise rule's */
    CHECK(mid > worst_gap);
    for (int k = 0; k < 5; k++)
        if (share[k] < 0.8)
            FAIL("%s: %.3f of the attribution inside the region, under 0.8", methods[k].name,
                 share[k]);
    return TEST_PASS;
}

/* ---- the fixed CNN of tests/fixtures/gen_explain.py against PyTorch ---- */
static ds_net *fixture_net(ds_tensor_set **fx, ds_tensor **x, int64_t *tgt, char *msg, size_t cap)
{
    ds_net *n = NULL;
    *x = NULL;
    if (!(*fx = fixture_load("explain", msg, cap)))
        return NULL;
    ds_tensor *xs = ds_tensor_set_get(*fx, "x"), *ts = ds_tensor_set_get(*fx, "targets");
    if (!xs || !ts || ds_net_load("tests/fixtures/explain_cnn.model", &(ds_net_opts){.batch = 4},
                                  &n) ||
        ds_net_load_weights(n, "tests/fixtures/explain.weights.safetensors")) {
        snprintf(msg, cap, "fixture net: %s", ds_last_error());
        ds_net_free(n);
        ds_tensor_set_free(*fx);
        *fx = NULL;
        return NULL;
    }
    *x = xs;
    for (int64_t i = 0; i < ds_tensor_numel(ts); i++)
        tgt[i] = (int64_t)ds_tensor_data(ts)[i];
    return n;
}

/* The largest |got - want| over key. */
static double max_diff(const ds_tensor_set *fx, const char *key, const ds_tensor *got)
{
    ds_tensor *w = ds_tensor_set_get(fx, key);
    if (!w || ds_tensor_numel(w) != ds_tensor_numel(got))
        return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < ds_tensor_numel(w); i++)
        m = fmax(m, fabs((double)ds_tensor_data(w)[i] - ds_tensor_data((ds_tensor *)got)[i]));
    return m;
}

TEST(explain_matches_pytorch)
{
    ds_tensor_set *fx;
    ds_tensor *x;
    int64_t tgt[5];
    ds_net *n = fixture_net(&fx, &x, tgt, msg_, cap_);
    if (!n)
        return TEST_FAIL;
    /* batch 3: the 5 x 16 integrated-gradient rows span passes unevenly */
    ds_explain_opts o = {.targets = tgt, .batch = 3, .steps = 16, .ig_rule = DS_IG_MIDPOINT};
    ds_explain_result r[5] = {0};
    ds_status st = ds_explain_saliency(n, x, &o, &r[0]);
    if (!st)
        st = ds_explain_integrated_gradients(n, x, &o, &r[1]);
    o.ig_rule = DS_IG_PIECEWISE;
    if (!st)
        st = ds_explain_integrated_gradients(n, x, &o, &r[4]);
    if (!st)
        st = ds_explain_grad_cam(n, x, &o, &r[2]);
    if (!st)
        st = ds_explain_gradient_x_input(n, x, &o, &r[3]);
    double d[7] = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
    if (!st) {
        d[0] = max_diff(fx, "saliency", r[0].map);
        d[1] = max_diff(fx, "ig", r[1].map);
        d[2] = max_diff(fx, "ig_delta", r[1].delta);
        d[3] = max_diff(fx, "gradcam", r[2].map);
        d[4] = max_diff(fx, "gxi", r[3].map);
        d[5] = max_diff(fx, "ig_pw", r[4].map);
        d[6] = max_diff(fx, "ig_pw_delta", r[4].delta);
    }
    for (int k = 0; k < 5; k++)
        ds_explain_result_free(&r[k]);
    ds_net_free(n);
    ds_tensor_set_free(fx);
    if (st)
        FAIL("explain failed: %s", ds_last_error());
    fprintf(stderr, "  against PyTorch, max |difference|: saliency %.2e, IG %.2e (completeness "
            "error %.2e), Grad-CAM %.2e, gradient x input %.2e, IG piecewise %.2e (%.2e)\n",
            d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    for (int k = 0; k < 7; k++)
        if (!(d[k] <= 1e-4))
            FAIL("difference %d from PyTorch: %.3g, above 1e-4", k, d[k]);
    return TEST_PASS;
}

/* Every method gives the same bits at 1 and 2 threads and at another batch size's split
 * of the same rows (the passes are batched, but each row's arithmetic is its own). */
TEST(explain_same_at_any_thread_count)
{
    ds_tensor_set *fx;
    ds_tensor *x;
    int64_t tgt[5];
    ds_net *n = fixture_net(&fx, &x, tgt, msg_, cap_);
    if (!n)
        return TEST_FAIL;
    method_fn fns[] = {ds_explain_saliency, ds_explain_integrated_gradients,
                       ds_explain_smoothgrad, ds_explain_occlusion, ds_explain_grad_cam};
    int threads = ds_get_num_threads(), bad = -1;
    for (int k = 0; k < 5 && bad < 0; k++) {
        ds_explain_result a, b;
        ds_explain_opts o = {.targets = tgt, .batch = 7, .steps = 8, .samples = 4, .seed = 3,
                             .ig_rule = DS_IG_PIECEWISE};   /* IG's rule that reads f */
        ds_set_num_threads(1);
        ds_status st = fns[k](n, x, &o, &a);
        ds_set_num_threads(2);
        if (!st && (st = fns[k](n, x, &o, &b)) != DS_OK)
            ds_explain_result_free(&a);
        if (st) {
            bad = k;
            break;
        }
        if (memcmp(ds_tensor_data(a.map), ds_tensor_data(b.map),
                   (size_t)ds_tensor_numel(a.map) * sizeof(float)))
            bad = k;
        ds_explain_result_free(&a);
        ds_explain_result_free(&b);
    }
    ds_set_num_threads(threads);
    ds_net_free(n);
    ds_tensor_set_free(fx);
    if (bad >= 0)
        FAIL("method %d differs between 1 and 2 threads (or failed: %s)", bad, ds_last_error());
    return TEST_PASS;
}

/* IG's rules: every rule is exact on a linear net (weights summing to 1); on a net with one
 * ReLU unit (one kink along the path) the piecewise rule is exact where the midpoint rule
 * is not; on a smooth (tanh) net Gauss-Legendre is exact to float precision at 8 nodes. */
TEST(explain_integrated_gradients_rules)
{
    static const char *const models[3] = {
        "input shape=4\ndense units=3\ndense name=o units=1\n",
        "input shape=4\ndense name=h units=1 activation=relu\ndense name=o units=1\n",
        "input shape=4\ndense units=8 activation=tanh\ndense units=8 activation=tanh\n"
        "dense name=o units=1\n"};
    double e[3][5];
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){6, 4});
    CHECK(x);
    for (int i = 0; i < 24; i++)
        ds_tensor_data(x)[i] = (float)sin(1.7 * i + 0.3) * 1.5f;
    for (int m = 0; m < 3; m++) {
        ds_net *n = NULL;
        if (ds_net_parse(models[m], "ig.model", &(ds_net_opts){.seed = 4}, &n)) {
            ds_tensor_free(x);
            FAIL("%s", ds_last_error());
        }
        if (m == 1) {   /* f = relu(x0 - x1 + x2 - x3 + 0.4): kinks at 0.72, 0.71, 0.93 */
            ds_param *w = ds_model_find(ds_net_model(n), "h.weight");
            ds_param *b = ds_model_find(ds_net_model(n), "h.bias");
            ds_param *ow = ds_model_find(ds_net_model(n), "o.weight");
            if (!w || !b || !ow) {
                ds_net_free(n);
                ds_tensor_free(x);
                FAIL("the one-ReLU net's parameters");
            }
            for (int q = 0; q < 4; q++)
                ds_param_data(w)[q] = q % 2 ? -1.0f : 1.0f;
            ds_param_data(b)[0] = 0.4f;
            ds_param_data(ow)[0] = 1.0f;
        }
        for (int r = 0; r < 5; r++)
            e[m][r] = ig_worst(n, x, 1, (ds_explain_ig_rule)r, 8);
        ds_net_free(n);
    }
    ds_tensor_free(x);
    fprintf(stderr, "  IG completeness at 8 steps (midpoint, piecewise, trapezoid, "
            "Gauss-Legendre, left):");
    for (int m = 0; m < 3; m++)
        fprintf(stderr, " %s %.1e %.1e %.1e %.1e %.1e;", m == 0 ? "linear" : m == 1 ? "one ReLU"
                : "tanh", e[m][0], e[m][1], e[m][2], e[m][3], e[m][4]);
    fprintf(stderr, "\n");
    for (int r = 0; r < 5; r++)
        CHECK(e[0][r] < 1e-5);
    CHECK(e[1][DS_IG_PIECEWISE] < 1e-5 && e[1][DS_IG_MIDPOINT] > 1e-3);
    CHECK(e[2][DS_IG_GAUSS_LEGENDRE] < 1e-5 && e[2][DS_IG_MIDPOINT] > 10 * e[2][DS_IG_GAUSS_LEGENDRE]);
    return TEST_PASS;
}

/* ---- a net with two data inputs: the fixture CNN's two channels as inputs img and psf ---- */
static ds_net *two_input_net(const ds_net *fixture)
{
    ds_net *n = NULL;
    static const char *const names[] = {"c1.weight", "c1.bias", "c2.weight", "c2.bias",
                                        "out.weight", "out.bias"};
    if (ds_net_parse("input name=img shape=1x8x8\ninput name=psf shape=1x8x8\n"
                     "concat inputs=img,psf axis=1\n"
                     "conv2d name=c1 filters=4 kernel=3 padding=same activation=relu\n"
                     "maxpool size=2\n"
                     "conv2d name=c2 filters=6 kernel=3 padding=same activation=relu\n"
                     "flatten\ndense name=out units=3\n", "two.model",
                     &(ds_net_opts){.batch = 4}, &n))
        return NULL;
    for (int k = 0; k < 6; k++) {
        ds_param *a = ds_model_find(ds_net_model(n), names[k]);
        ds_param *b = ds_model_find(ds_net_model(fixture), names[k]);
        if (!a || !b || ds_param_numel(a) != ds_param_numel(b)) {
            ds_net_free(n);
            return NULL;
        }
        memcpy(ds_param_data(a), ds_param_data(b), (size_t)ds_param_numel(a) * sizeof(float));
    }
    return n;
}

/* Channel ch of x [N, 2, 8, 8] as [N, 1, 8, 8]. */
static ds_tensor *channel(const ds_tensor *x, int ch)
{
    int64_t N = ds_tensor_shape(x)[0];
    ds_tensor *t = ds_tensor_create(4, (int64_t[]){N, 1, 8, 8});
    for (int64_t i = 0; t && i < N; i++)
        memcpy(ds_tensor_data(t) + i * 64, ds_tensor_data((ds_tensor *)x) + (2 * i + ch) * 64,
               64 * sizeof(float));
    return t;
}

/* The largest |a - channel ch of b| (a [N, 1, 8, 8] or [N, 8, 8], b [N, 2, 8, 8]; whole:
 * b is [N, 8, 8] too). */
static double diff_channel(const ds_tensor *a, const ds_tensor *b, int ch, bool whole)
{
    int64_t N = ds_tensor_shape(a)[0];
    double m = 0;
    for (int64_t i = 0; i < N; i++)
        for (int q = 0; q < 64; q++)
            m = fmax(m, fabs((double)ds_tensor_data((ds_tensor *)a)[i * 64 + q] -
                             ds_tensor_data((ds_tensor *)b)[(whole ? i : 2 * i + ch) * 64 + q]));
    return m;
}

/* Each input of the two-input net is explained as the matching channel of the one-input
 * net (saliency, Grad-CAM), the other input fed from o->others; IG's path runs from the
 * explained input's baseline, the other kept; an input of one sample serves all. */
TEST(explain_several_inputs)
{
    ds_tensor_set *fx;
    ds_tensor *x;
    int64_t tgt[5];
    ds_net *one = fixture_net(&fx, &x, tgt, msg_, cap_), *two = one ? two_input_net(one) : NULL;
    if (!one)
        return TEST_FAIL;
    ds_tensor *img = channel(x, 0), *psf = channel(x, 1), *psf1 = ds_tensor_create(4,
                                                                   (int64_t[]){1, 1, 8, 8});
    int64_t N = 5;
    ds_tensor *psf_rep = ds_tensor_create(4, (int64_t[]){N, 1, 8, 8});
    for (int64_t i = 0; psf1 && psf_rep && i < N; i++)
        memcpy(ds_tensor_data(psf_rep) + i * 64, ds_tensor_data(psf) + 64, 64 * sizeof(float));
    if (psf1)
        memcpy(ds_tensor_data(psf1), ds_tensor_data(psf) + 64, 64 * sizeof(float));
    ds_feed f = {.inputs = {{"img", img, "img.npy"}, {"psf", psf, "psf.npy"}}};
    ds_feed f1 = {.inputs = {{"psf", psf1, "psf1.npy"}}}, frep = {.inputs = {{"psf", psf_rep}}};
    ds_explain_result s1 = {0}, s2 = {0}, s3 = {0}, c1 = {0}, c2 = {0}, ig = {0}, b1 = {0},
                      b2 = {0};
    double d[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, igw = INFINITY;
    ds_status st = two && img && psf && psf1 && psf_rep ? DS_OK : DS_ERR_NOMEM;
    ds_explain_opts o = {.targets = tgt, .others = &f};
    if (!st && !(st = ds_explain_saliency(one, x, &o, &s1)) &&
        !(st = ds_explain_saliency(two, img, &o, &s2)) &&
        !(st = ds_explain_saliency(two, psf, &(ds_explain_opts){.targets = tgt, .others = &f,
                                                               .input = "psf"}, &s3)) &&
        !(st = ds_explain_grad_cam(one, x, &o, &c1)) && !(st = ds_explain_grad_cam(two, img, &o, &c2)))
        st = ds_explain_integrated_gradients(two, img, &o, &ig);
    if (!st) {
        d[0] = diff_channel(s2.map, s1.map, 0, false);
        d[1] = diff_channel(s3.map, s1.map, 1, false);
        d[2] = diff_channel(c2.map, c1.map, 0, true);
        /* f(x) - f(b) as IG reports it (sum - delta) against f(img, psf) - f(0, psf) */
        ds_tensor *zero = ds_tensor_create(4, (int64_t[]){N, 1, 8, 8}), *p0 = NULL, *p1 = NULL;
        ds_feed fz = {.inputs = {{"img", zero}, {"psf", psf}}};
        if (zero && !ds_net_predict_feed(two, &f, 8, &p1) &&
            !ds_net_predict_feed(two, &fz, 8, &p0)) {
            igw = 0;
            for (int64_t i = 0; i < N; i++) {
                double dl = ds_tensor_data(ig.delta)[i], sum = 0;
                for (int q = 0; q < 64; q++)
                    sum += ds_tensor_data(ig.map)[i * 64 + q];
                double want = ds_tensor_data(p1)[i * 3 + tgt[i]] - ds_tensor_data(p0)[i * 3 + tgt[i]];
                igw = fmax(igw, fabs(sum - dl - want));
            }
        }
        ds_tensor_free(zero);
        ds_tensor_free(p0);
        ds_tensor_free(p1);
        /* psf of one sample for all equals psf repeated */
        if (!(st = ds_explain_occlusion(two, img, &(ds_explain_opts){.target = 1, .others = &f1},
                                        &b1)) &&
            !(st = ds_explain_occlusion(two, img, &(ds_explain_opts){.target = 1, .others = &frep},
                                        &b2)))
            d[3] = memcmp(ds_tensor_data(b1.map), ds_tensor_data(b2.map), 5 * 64 * sizeof(float))
                       ? 1 : 0;
    }
    fprintf(stderr, "  two inputs: saliency of img, psf against the channels %.2e %.2e, Grad-CAM "
            "%.2e, IG's f(x) - f(b) against predict's %.2e\n", d[0], d[1], d[2], igw);
    ds_explain_result *all[] = {&s1, &s2, &s3, &c1, &c2, &ig, &b1, &b2};
    for (int k = 0; k < 8; k++)
        ds_explain_result_free(all[k]);
    /* bad input: an unknown input, the other input missing, of another sample count */
    int rc = 0;
    ds_explain_result r;
    if (!st) {
        rc |= check_arg_error(ds_explain_saliency(two, img, &(ds_explain_opts){.target = 0,
                              .input = "sky", .others = &f}, &r), "no input 'sky' to explain "
                              "(its inputs: img, psf)", msg_, cap_);
        rc |= rc ? 0 : check_arg_error(ds_explain_saliency(two, img, &(ds_explain_opts){.target = 0},
                                       &r), "input 'psf' needs its data", msg_, cap_);
        ds_tensor *three = ds_tensor_create(4, (int64_t[]){3, 1, 8, 8});
        ds_feed f3 = {.inputs = {{"psf", three, "p3.npy"}}};
        rc |= rc ? 0 : ds_explain_saliency(two, img, &(ds_explain_opts){.target = 0, .others = &f3},
                                           &r) != DS_ERR_SHAPE ||
                       !strstr(ds_last_error(), "p3.npy holds 3 samples for input 'psf'");
        ds_tensor_free(three);
    }
    ds_tensor_free(img);
    ds_tensor_free(psf);
    ds_tensor_free(psf1);
    ds_tensor_free(psf_rep);
    ds_net_free(two);
    ds_net_free(one);
    ds_tensor_set_free(fx);
    if (st)
        FAIL("two inputs: %s", ds_last_error());
    if (rc)
        FAIL("two inputs, bad input: %s", msg_[0] ? msg_ : ds_last_error());
    for (int k = 0; k < 3; k++)
        if (!(d[k] < 1e-6))
            FAIL("two inputs: map %d differs from the one-input net's channel by %.3g", k, d[k]);
    CHECK(d[3] == 0);
    CHECK(igw < 1e-5);
    return TEST_PASS;
}

TEST(explain_class_visualization_rises_to_the_target)
{
    ds_tensor_set *fx;
    ds_tensor *x;
    int64_t tgt[5];
    ds_net *n = fixture_net(&fx, &x, tgt, msg_, cap_);
    if (!n)
        return TEST_FAIL;
    int64_t classes[3] = {0, 1, 2};
    ds_explain_opts o = {.steps = 40, .lr = 0.02, .l2 = 1e-3, .tv = 1e-3, .seed = 9};
    ds_tensor *img = NULL, *sc = NULL, *p = NULL;
    ds_status st = ds_explain_class_visualization(n, 3, classes, NULL, &o, &img, &sc);
    if (!st)
        st = ds_net_predict(n, img, 8, &p);
    int rises = 1, classified = 1;
    for (int64_t c = 0; !st && c < 3; c++) {
        const float *s = ds_tensor_data(sc) + c * 41;
        for (int k = 1; k <= 40; k++)
            rises &= s[k] > s[k - 1];
        const float *v = ds_tensor_data(p) + 3 * c;
        for (int k = 0; k < 3; k++)
            classified &= k == c || v[k] < v[c];
        fprintf(stderr, "%s class %lld: score %.3f -> %.3f", c ? "," : "  class visualization:",
                (long long)c, s[0], s[40]);
    }
    fprintf(stderr, "\n");
    ds_tensor_free(img);
    ds_tensor_free(sc);
    ds_tensor_free(p);
    ds_net_free(n);
    ds_tensor_set_free(fx);
    if (st)
        FAIL("class visualization failed: %s", ds_last_error());
    CHECK(rises);
    CHECK(classified);
    return TEST_PASS;
}

TEST(explain_filters_and_feature_maps)
{
    ds_tensor_set *fx;
    ds_tensor *x;
    int64_t tgt[5];
    ds_net *n = fixture_net(&fx, &x, tgt, msg_, cap_);
    if (!n)
        return TEST_FAIL;
    ds_tensor *f1 = NULL, *f2 = NULL, *fm = NULL;
    ds_explain_opts o = {.layer = "c2", .batch = 2};
    ds_status st = ds_explain_filters(n, NULL, &f1);
    if (!st)
        st = ds_explain_filters(n, "c2", &f2);
    if (!st)
        st = ds_explain_feature_maps(n, x, &o, &fm);
    int ok = !st;
    const float *w1 = ds_param_data(ds_model_find(ds_net_model(n), "c1.weight"));
    const float *w2 = ds_param_data(ds_model_find(ds_net_model(n), "c2.weight"));
    if (ok) {
        ok = ds_tensor_numel(f1) == 4 * 2 * 9 && ds_tensor_numel(f2) == 6 * 9 &&
             ds_tensor_shape(f2)[1] == 1 && ds_tensor_numel(fm) == 5 * 6 * 4 * 4;
        for (int64_t i = 0; ok && i < 4 * 2 * 9; i++)
            ok = ds_tensor_data(f1)[i] == w1[i];
        for (int64_t oc = 0; ok && oc < 6; oc++)   /* the mean over c2's 4 input channels */
            for (int q = 0; q < 9; q++) {
                double m = 0;
                for (int ic = 0; ic < 4; ic++)
                    m += w2[(oc * 4 + ic) * 9 + q] / 4.0;
                ok &= fabs(ds_tensor_data(f2)[oc * 9 + q] - m) < 1e-6;
            }
        for (int64_t i = 0; ok && i < ds_tensor_numel(fm); i++)
            ok = ds_tensor_data(fm)[i] >= 0;   /* after c2's ReLU */
    }
    ds_tensor_free(f1);
    ds_tensor_free(f2);
    ds_tensor_free(fm);
    ds_net_free(n);
    ds_tensor_set_free(fx);
    if (st)
        FAIL("filters or feature maps failed: %s", ds_last_error());
    CHECK(ok);
    return TEST_PASS;
}

TEST(explain_bad_input_says_what_is_wrong)
{
    ds_tensor_set *fx;
    ds_tensor *x;
    int64_t tgt[5];
    ds_net *n = fixture_net(&fx, &x, tgt, msg_, cap_), *dense = NULL;
    if (!n)
        return TEST_FAIL;
    ds_explain_result r;
    ds_tensor *t = NULL, *small = ds_tensor_create(4, (int64_t[]){2, 1, 8, 8});
    int rc = 0;
    /* an unknown layer lists the layers */
    rc |= check_arg_error(ds_explain_grad_cam(n, x, &(ds_explain_opts){.layer = "c9",
                                              .targets = tgt}, &r), "its layers: ", msg_, cap_);
    rc |= rc ? 0 : !strstr(ds_last_error(), "c1, ") || !strstr(ds_last_error(), "'c9'");
    rc |= rc ? 0 : check_arg_error(ds_explain_feature_maps(n, x, &(ds_explain_opts){.layer = "x9"},
                                                           &t), "no layer 'x9'", msg_, cap_);
    /* a target past the outputs; an output with 3 values and no classifier needs a target */
    rc |= rc ? 0 : check_arg_error(ds_explain_saliency(n, x, &(ds_explain_opts){.target = 3}, &r),
                                   "target 3 is past output", msg_, cap_);
    rc |= rc ? 0 : check_arg_error(ds_explain_saliency(n, x, NULL, &r), "choose one", msg_, cap_);
    /* Grad-CAM on a dense layer's output */
    rc |= rc ? 0 : check_arg_error(ds_explain_grad_cam(n, x, &(ds_explain_opts){.layer = "out",
                                   .targets = tgt}, &r), "needs channels", msg_, cap_);
    rc |= rc ? 0 : ds_explain_saliency(n, small, &(ds_explain_opts){.target = 0}, &r) !=
                       DS_ERR_SHAPE || !strstr(ds_last_error(), "[2, 1, 8, 8]");
    if (!rc && ds_net_parse("input shape=6\ndense name=h units=4 activation=relu\n"
                            "dense name=o units=2\n", "dense.model", NULL, &dense) == DS_OK) {
        ds_tensor *xd = ds_tensor_create(2, (int64_t[]){3, 6});
        rc |= check_arg_error(ds_explain_grad_cam(dense, xd, &(ds_explain_opts){.target = 1}, &r),
                              "needs a convolution layer and the model has none", msg_, cap_);
        rc |= rc ? 0 : check_arg_error(ds_explain_filters(dense, NULL, &t), "convolution", msg_,
                                       cap_);
        ds_tensor_free(xd);
    }
    ds_tensor_free(small);
    ds_net_free(dense);
    ds_net_free(n);
    ds_tensor_set_free(fx);
    if (rc && !msg_[0])
        snprintf(msg_, cap_, "a message lacks what it should say: %s", ds_last_error());
    return rc ? TEST_FAIL : TEST_PASS;
}

/* ---- colour maps (src/plot/plot.c) ---- */
/* The colour of pixel (x, y) of the decoded PNG s: rgb in 0..255. */
static void pixel(cairo_surface_t *s, int x, int y, int *rgb)
{
    const unsigned char *d = cairo_image_surface_get_data(s);
    uint32_t v = *(const uint32_t *)(const void *)(d + y * cairo_image_surface_get_stride(s) + 4 * x);
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)((v >> (16 - 8 * c)) & 255);
}

static bool white(const int *c) { return c[0] > 250 && c[1] > 250 && c[2] > 250; }

/* The next run of non-white pixels on row y from x: [*a, *b). 0, or 1 if none. */
static int run(cairo_surface_t *s, int y, int x, int xmax, int *a, int *b)
{
    int c[3];
    for (pixel(s, x, y, c); x < xmax && white(c); pixel(s, ++x < xmax ? x : xmax - 1, y, c))
        ;
    *a = x;
    for (; x < xmax && (pixel(s, x, y, c), !white(c)); x++)
        ;
    *b = x;
    return *a >= xmax;
}

TEST(explain_colour_maps_overlay_and_colour_bar)
{
    ds_figure *f = ds_figure_create(1, 2, 600, 300);
    CHECK(f);
    float img[4] = {-1, 1, -1, 1}, grey[4] = {0.5f, 0.5f, 0.5f, 0.5f}, mag[4] = {0, 1, 0, 1};
    ds_axes *a = ds_figure_axes(f, 0), *b = ds_figure_axes(f, 1);
    ds_status st0 = ds_axes_colorbar(a);   /* no image yet */
    ds_status st1 = ds_axes_image_overlay(a, 2, 2, mag, 0, 0, DS_CMAP_SEQUENTIAL, 0.5);
    CHECK(st0 == DS_ERR_ARG && st1 == DS_ERR_ARG && strstr(ds_last_error(), "no image"));
    CHECK(ds_axes_image_cmap(a, 2, 2, img, 0, 0, DS_CMAP_DIVERGING) == DS_OK);
    CHECK(ds_axes_colorbar(a) == DS_OK);
    CHECK(ds_axes_image(b, 2, 2, grey, 0, 1, 0) == DS_OK);
    CHECK(ds_axes_image_overlay(b, 2, 2, mag, 0, 0, DS_CMAP_SEQUENTIAL, 1) == DS_OK);
    CHECK(ds_axes_image_overlay(b, 1, 2, mag, 0, 0, DS_CMAP_SEQUENTIAL, 1) == DS_ERR_ARG);
    if (!ds_has_feature("plot")) {
        ds_figure_free(f);
        SKIP("needs cairo (built with NO_PLOT=1)");
    }
    char d[64], path[96];
    CHECK(test_tmpdir(d, sizeof d, "explain_plot"));
    snprintf(path, sizeof path, "%s/c.png", d);
    ds_status st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    cairo_surface_t *s = st ? NULL : cairo_image_surface_create_from_png(path);
    test_rm_rf(d);
    CHECK(s && cairo_surface_status(s) == CAIRO_STATUS_SUCCESS);
    int x0, x1, c0, c1, l[3], r[3], top[3], bot[3], gl[3], gr[3], g0, g1;
    /* panel 0: the image, then its colour bar, on the middle row */
    int bad = run(s, 150, 0, 300, &x0, &x1) || run(s, 150, x1, 300, &c0, &c1) ||
              run(s, 150, 300, 600, &g0, &g1);
    if (!bad) {
        pixel(s, x0 + (x1 - x0) / 4, 150, l);
        pixel(s, x0 + 3 * (x1 - x0) / 4, 150, r);
        pixel(s, (c0 + c1) / 2, 150 - (x1 - x0) / 2 + 4, top);
        pixel(s, (c0 + c1) / 2, 150 + (x1 - x0) / 2 - 4, bot);
        pixel(s, g0 + (g1 - g0) / 4, 150, gl);
        pixel(s, g0 + 3 * (g1 - g0) / 4, 150, gr);
    }
    cairo_surface_destroy(s);
    CHECK(!bad);
    CHECK(l[2] > l[0] + 60 && r[0] > r[2] + 60);           /* -1 blue, +1 red */
    CHECK(top[0] > top[2] + 60 && bot[2] > bot[0] + 60);   /* the bar: red on top */
    CHECK(abs(gl[0] - 128) < 3 && abs(gl[2] - 128) < 3);   /* 0: the image shows */
    CHECK(gr[0] > 240 && gr[1] > 220 && gr[2] < 50);       /* 1: viridis' yellow */
    return TEST_PASS;
}
