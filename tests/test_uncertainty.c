/* test_uncertainty.c - Monte Carlo dropout, heteroscedastic outputs and deep ensembles
 * through the C API: pooling against the draws, determinism, the toy's sigma, coverage and
 * epistemic growth outside the training range, and bad input. */
#include "test.h"
#include "toy_uq.h"

#include <unistd.h>

/* The heteroscedastic toy's model: a mean and a log-variance head on two tanh layers. */
static const char *hetero_model =
    "input name=x shape=1\n"
    "dense name=h1 units=32 activation=tanh\n"
    "dense name=h2 units=32 activation=tanh\n"
    "dense name=mu units=1 inputs=h2\n"
    "dense name=lv units=1 inputs=h2\n"
    "loss gaussian_nll mean=mu logvar=lv\n"
    "optimizer adam lr=0.01 schedule=cosine\n";

/* MC dropout's: one ReLU layer with dropout (with two such layers of 64 units the spread
 * outside the training range came out below the spread inside: 0.77 times). */
static const char *dropout_model =
    "input name=x shape=1\n"
    "dense name=h1 units=64 activation=relu\n"
    "dropout rate=0.2\n"
    "dense name=y units=1\n"
    "loss mse\n"
    "optimizer adam lr=0.01\n";

/* A gaussian_nll head with dropout: MC passes give both parts. */
static const char *mixed_model =
    "input name=x shape=1\n"
    "dense name=h units=16 activation=relu\n"
    "dropout name=dr rate=0.3\n"
    "dense name=mu units=2 inputs=dr\n"
    "dense name=lv units=2 inputs=dr\n"
    "loss gaussian_nll mean=mu logvar=lv\n";

TEST(uq_stochastic_count_and_gaussian_outputs)
{
    ds_net *a = NULL, *b = NULL;
    CHECK(ds_net_parse(dropout_model, "d.model", NULL, &a) == DS_OK);
    CHECK(ds_net_parse(hetero_model, "h.model", NULL, &b) == DS_OK);
    CHECK(ds_net_stochastic_count(a) == 1 && ds_net_stochastic_count(b) == 0);
    CHECK(ds_net_stochastic_count(NULL) == 0);
    CHECK(!ds_net_output_is_gaussian(a, 0) && ds_net_output_is_gaussian(b, 0));
    CHECK(!ds_net_output_is_gaussian(b, 1) && !ds_net_output_is_gaussian(b, -1));
    ds_net_free(a);
    ds_net_free(b);
    return TEST_PASS;
}

/* A gaussian_nll model predicts [mean, exp(logvar / 2)]: logvar's layer set to a constant
 * c gives the standard deviation exp(c / 2) for every sample. */
TEST(uq_gaussian_prediction_is_mean_and_std)
{
    ds_net *n = NULL;
    CHECK(ds_net_parse(hetero_model, "h.model", NULL, &n) == DS_OK);
    ds_model *m = ds_net_model(n);
    for (int i = 0; i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        const char *name = ds_param_name(p);
        float *v = ds_param_data(p);
        int64_t k = ds_param_numel(p);
        for (int64_t j = 0; !strncmp(name, "lv.", 3) && j < k; j++)
            v[j] = strcmp(name, "lv.bias") ? 0.0f : -1.5f;
    }
    ds_tensor *x = toy_grid(7, -1, 1), *p = NULL;
    CHECK(ds_net_predict(n, x, 4, &p) == DS_OK);
    CHECK(ds_tensor_ndim(p) == 2 && ds_tensor_shape(p)[1] == 2);
    for (int i = 0; i < 7; i++)
        CHECK_NEAR(ds_tensor_data(p)[2 * i + 1], exp(-0.75), 1e-6);
    ds_tensor_free(p);
    ds_tensor_free(x);
    ds_net_free(n);
    return TEST_PASS;
}

/* The pooled mean and standard deviations equal those computed here from the draws; the
 * draws differ between passes, repeat for a seed, and change with it. */
TEST(uq_mc_pools_its_draws)
{
    ds_net *n = NULL;
    CHECK(ds_net_parse(mixed_model, "m.model", NULL, &n) == DS_OK);
    ds_tensor *x = toy_grid(9, -2, 2);
    ds_feed f = {.inputs = {{"x", x}}};
    ds_uq_opts o = {.passes = 5, .seed = 11, .batch = 4, .keep_draws = 1};
    ds_uq_output u = {0}, v = {0}, w = {0};
    CHECK(ds_net_predict_mc(n, &f, &o, &u) == DS_OK);
    CHECK(u.std_aleatoric && u.std_epistemic && u.draws);
    CHECK(ds_tensor_ndim(u.draws) == 3 && ds_tensor_shape(u.draws)[0] == 5 &&
          ds_tensor_shape(u.draws)[1] == 9 && ds_tensor_shape(u.draws)[2] == 4);
    CHECK(ds_tensor_shape(u.mean)[0] == 9 && ds_tensor_shape(u.mean)[1] == 2);
    const float *d = ds_tensor_data(u.draws);
    int differ = 0;
    for (int i = 0; i < 9; i++)
        for (int c = 0; c < 2; c++) {
            double m = 0, va = 0, ve = 0;
            for (int s = 0; s < 5; s++)
                m += d[(s * 9 + i) * 4 + c] / 5.0;
            for (int s = 0; s < 5; s++) {
                double mu = d[(s * 9 + i) * 4 + c], sg = d[(s * 9 + i) * 4 + 2 + c];
                ve += (mu - m) * (mu - m) / 5.0;
                va += sg * sg / 5.0;
                differ += mu != d[i * 4 + c];
            }
            CHECK_NEAR(ds_tensor_data(u.mean)[i * 2 + c], m, 1e-5);
            CHECK_NEAR(ds_tensor_data(u.std_epistemic)[i * 2 + c], sqrt(ve), 1e-5);
            CHECK_NEAR(ds_tensor_data(u.std_aleatoric)[i * 2 + c], sqrt(va), 1e-5);
            CHECK_NEAR(ds_tensor_data(u.std)[i * 2 + c], sqrt(va + ve), 1e-5);
        }
    CHECK(differ > 20);
    CHECK(ds_net_predict_mc(n, &f, &o, &v) == DS_OK);   /* again: the same draws */
    CHECK(!memcmp(ds_tensor_data(u.draws), ds_tensor_data(v.draws), 5 * 9 * 4 * sizeof(float)));
    o.seed = 12;
    CHECK(ds_net_predict_mc(n, &f, &o, &w) == DS_OK);
    CHECK(memcmp(ds_tensor_data(u.draws), ds_tensor_data(w.draws), 5 * 9 * 4 * sizeof(float)));
    ds_uq_output_free(&u);
    ds_uq_output_free(&v);
    ds_uq_output_free(&w);
    ds_uq_output_free(NULL);
    ds_tensor_free(x);
    ds_net_free(n);
    return TEST_PASS;
}

/* The same seed gives the same draws, bit for bit, on 1 and 2 threads (a batch large enough
 * for the kernels to split it). */
TEST(uq_mc_same_draws_at_any_thread_count)
{
    ds_net *n = NULL;
    CHECK(ds_net_parse(dropout_model, "d.model", NULL, &n) == DS_OK);
    ds_tensor *x = toy_grid(3000, -4, 4);
    ds_feed f = {.inputs = {{"x", x}}};
    ds_uq_opts o = {.passes = 3, .seed = 5, .batch = 1500, .keep_draws = 1};
    ds_uq_output u[2] = {{0}};
    int keep = ds_get_num_threads();
    ds_status st[2];
    for (int t = 0; t < 2; t++) {
        ds_set_num_threads(t + 1);
        st[t] = ds_net_predict_mc(n, &f, &o, &u[t]);
    }
    ds_set_num_threads(keep);
    CHECK(st[0] == DS_OK && st[1] == DS_OK);
    int64_t k = ds_tensor_numel(u[0].draws);
    CHECK(k == 3 * 3000);
    CHECK(!memcmp(ds_tensor_data(u[0].draws), ds_tensor_data(u[1].draws), (size_t)k * 4));
    CHECK(!memcmp(ds_tensor_data(u[0].std), ds_tensor_data(u[1].std), 3000 * 4));
    ds_uq_output_free(&u[0]);
    ds_uq_output_free(&u[1]);
    ds_tensor_free(x);
    ds_net_free(n);
    return TEST_PASS;
}

TEST(uq_mc_refuses_bad_input)
{
    ds_net *a = NULL, *b = NULL;
    CHECK(ds_net_parse(dropout_model, "d.model", NULL, &a) == DS_OK);
    CHECK(ds_net_parse(hetero_model, "plain.model", NULL, &b) == DS_OK);
    ds_tensor *x = toy_grid(4, -1, 1);
    ds_feed f = {.inputs = {{"x", x}}};
    ds_uq_opts o = {.passes = 0};
    ds_uq_output u = {0};
    CHECK_OK(check_arg_error(ds_net_predict_mc(a, &f, &o, &u), "0 passes: give at least 1",
                             msg_, cap_));
    o.passes = 4;
    CHECK_OK(check_arg_error(ds_net_predict_mc(b, &f, &o, &u), "plain.model: the model has no "
                             "stochastic layer", msg_, cap_));
    CHECK(!u.mean && !u.std);
    CHECK_OK(check_arg_error(ds_net_predict_mc(a, NULL, &o, &u), "NULL", msg_, cap_));
    ds_tensor_free(x);
    ds_net_free(a);
    ds_net_free(b);
    return TEST_PASS;
}

/* ---- ensembles ---- */
static char tdir[64];

static void rm_files(const char *d, int k)
{
    char p[128];
    for (int i = 0; i < k; i++) {
        snprintf(p, sizeof p, "%s/m%d.safetensors", d, i);
        unlink(p);
        snprintf(p, sizeof p, "%s/m%d.best.safetensors", d, i);
        unlink(p);
        snprintf(p, sizeof p, "%s/m%d.ckpt.safetensors", d, i);
        unlink(p);
    }
    rmdir(d);
}

/* ensemble.* metadata as train --ensemble writes it. */
static ds_tensor_set *tag(const char *model, int member, const char *seed)
{
    ds_tensor_set *s = ds_tensor_set_create();
    char v[16];
    snprintf(v, sizeof v, "%d", member);
    if (s && (ds_tensor_set_meta_set(s, "ensemble.model", model) ||
              ds_tensor_set_meta_set(s, "ensemble.member", v) ||
              ds_tensor_set_meta_set(s, "ensemble.seed", seed))) {
        ds_tensor_set_free(s);
        return NULL;
    }
    return s;
}

/* Members of different models, a member mixed with a file of no ensemble, and one member
 * given twice are refused, naming both files. */
TEST(uq_ensemble_refuses_mixed_members)
{
    const char *d = test_tmpdir(tdir, sizeof tdir, "uq");
    CHECK(d);
    ds_tensor *x, *y;
    CHECK(!toy_data(64, -1, 1, 3, &x, &y));
    const char *tags[4][2] = {{"fnv1a64 aa", "0"}, {"fnv1a64 bb", "0"}, {NULL, NULL},
                              {"fnv1a64 aa", "0"}};
    char paths[4][128];
    for (int i = 0; i < 4; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/m%d.safetensors", d, i);
        ds_tensor_set *meta = tags[i][0] ? tag(tags[i][0], i == 3 ? 0 : i, "1") : NULL;
        ds_net *n = NULL;
        CHECK(toy_train(hetero_model, x, y, 1, 32, 1 + (uint64_t)i, paths[i], meta, &n) == 0);
        ds_tensor_set_free(meta);
        ds_net_free(n);
    }
    ds_net *n = NULL;
    CHECK(ds_net_parse(hetero_model, "h.model", NULL, &n) == DS_OK);
    ds_feed f = {.inputs = {{"x", x}}};
    ds_uq_opts o = {.passes = 1};
    ds_uq_output u = {0};
    const char *ab[] = {paths[0], paths[1]}, *ac[] = {paths[0], paths[2]},
               *ad[] = {paths[0], paths[3]};
    CHECK_OK(check_arg_error(ds_net_predict_ensemble(n, 2, ab, &f, &o, &u),
                             "come from different models (ensemble.model fnv1a64 aa and "
                             "fnv1a64 bb)", msg_, cap_));
    CHECK(strstr(ds_last_error(), paths[0]) && strstr(ds_last_error(), paths[1]));
    CHECK_OK(check_arg_error(ds_net_predict_ensemble(n, 2, ac, &f, &o, &u), "is not (no "
                             "ensemble.* metadata)", msg_, cap_));
    CHECK_OK(check_arg_error(ds_net_predict_ensemble(n, 2, ad, &f, &o, &u), "are the same "
                             "member (0 of the run with seed 1)", msg_, cap_));
    CHECK_OK(check_arg_error(ds_net_predict_ensemble(n, 0, ab, &f, &o, &u), "0 members",
                             msg_, cap_));
    o.passes = 3;   /* Monte Carlo passes of members without dropout */
    CHECK_OK(check_arg_error(ds_net_predict_ensemble(n, 2, ab, &f, &o, &u), "no stochastic "
                             "layer", msg_, cap_));
    CHECK(!u.mean);
    ds_net_free(n);
    ds_tensor_free(x);
    ds_tensor_free(y);
    rm_files(d, 4);
    return TEST_PASS;
}

/* An ensemble with Monte Carlo passes: member j's draws are ds_net_predict_mc's of its
 * weights with seed + j, member after member. */
TEST(uq_ensemble_with_mc_passes)
{
    const char *d = test_tmpdir(tdir, sizeof tdir, "uq");
    CHECK(d);
    ds_tensor *x, *y1, *y = ds_tensor_create(2, (int64_t[]){32, 2});   /* mixed: 2 means */
    CHECK(y && !toy_data(32, -1, 1, 3, &x, &y1));
    for (int i = 0; i < 64; i++)
        ds_tensor_data(y)[i] = ds_tensor_data(y1)[i / 2];
    ds_tensor_free(y1);
    char paths[2][128];
    const char *w[2];
    for (int i = 0; i < 2; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/m%d.safetensors", d, i);
        w[i] = paths[i];
        ds_net *n = NULL;
        CHECK(toy_train(mixed_model, x, y, 1, 16, 1 + (uint64_t)i, paths[i], NULL, &n) == 0);
        ds_net_free(n);
    }
    ds_net *n = NULL;
    CHECK(ds_net_parse(mixed_model, "m.model", NULL, &n) == DS_OK);
    ds_feed f = {.inputs = {{"x", x}}};
    ds_uq_opts o = {.passes = 3, .seed = 20, .batch = 8, .keep_draws = 1};
    ds_uq_output u = {0}, v[2] = {{0}};
    CHECK(ds_net_predict_ensemble(n, 2, w, &f, &o, &u) == DS_OK);
    CHECK(ds_tensor_shape(u.draws)[0] == 6 && ds_tensor_shape(u.draws)[1] == 32);
    for (int i = 0; i < 2; i++) {
        ds_uq_opts oi = o;
        oi.seed = o.seed + (uint64_t)i;
        CHECK(ds_net_load_weights(n, paths[i]) == DS_OK);
        CHECK(ds_net_predict_mc(n, &f, &oi, &v[i]) == DS_OK);
    }
    size_t per = 3 * 32 * 4 * sizeof(float);
    int same = !memcmp(ds_tensor_data(u.draws), ds_tensor_data(v[0].draws), per) &&
               !memcmp(ds_tensor_data(u.draws) + 3 * 32 * 4, ds_tensor_data(v[1].draws), per);
    ds_uq_output_free(&u);
    ds_uq_output_free(&v[0]);
    ds_uq_output_free(&v[1]);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    rm_files(d, 2);
    CHECK(same);
    return TEST_PASS;
}

/* ---- the toy: y = sin(x) + toy_sigma(x) N(0, 1) on [-3, 3] ---- */
#define Z68 0.994457883209753   /* two-sided 68% and 95% intervals of N(0, 1): +-z */
#define Z95 1.959963984540054

/* The heteroscedastic model predicts sigma(x) within 10% of the truth over the whole
 * training range (61 points), and its 68% and 95% intervals cover 68% and 95% of 5000
 * held-out samples within 2 points. */
TEST(uq_toy_heteroscedastic_sigma_and_coverage)
{
    ds_tensor *x, *y, *xt, *yt, *g = toy_grid(61, TOY_X_LO, TOY_X_HI), *p = NULL, *pt = NULL;
    CHECK(g && !toy_data(4000, TOY_X_LO, TOY_X_HI, 1, &x, &y));
    CHECK(!toy_data(5000, TOY_X_LO, TOY_X_HI, 99, &xt, &yt));
    ds_net *n = NULL;
    CHECK(toy_train(hetero_model, x, y, 200, 128, 7, NULL, NULL, &n) == DS_OK);
    CHECK(ds_net_predict(n, g, 256, &p) == DS_OK && ds_net_predict(n, xt, 256, &pt) == DS_OK);
    double worst = 0, mean_err = 0, at = 0;
    for (int i = 0; i < 61; i++) {
        double xv = ds_tensor_data(g)[i], e = ds_tensor_data(p)[2 * i + 1] / toy_sigma(xv) - 1;
        mean_err += fabs(e) / 61;
        if (fabs(e) > fabs(worst)) {
            worst = e;
            at = xv;
        }
    }
    int c68 = 0, c95 = 0;
    for (int i = 0; i < 5000; i++) {
        const float *q = ds_tensor_data(pt) + 2 * i;
        double z = fabs(ds_tensor_data(yt)[i] - q[0]) / q[1];
        c68 += z <= Z68;
        c95 += z <= Z95;
    }
    double cov68 = c68 / 50.0, cov95 = c95 / 50.0;
    ds_tensor_free(p);
    ds_tensor_free(pt);
    ds_tensor_free(g);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_tensor_free(xt);
    ds_tensor_free(yt);
    ds_net_free(n);
    if (fabs(worst) > 0.10 || fabs(cov68 - 68) > 2 || fabs(cov95 - 95) > 2)
        FAIL("sigma: worst error %+.1f%% at x = %.2f (mean %.1f%%); coverage 68%%: %.2f, "
             "95%%: %.2f", 100 * worst, at, 100 * mean_err, cov68, cov95);
    snprintf(msg_, cap_, "sigma: worst %+.1f%% at x = %.2f, mean %.1f%%; coverage %.2f%% and "
             "%.2f%%", 100 * worst, at, 100 * mean_err, cov68, cov95);
    return TEST_PASS;
}

/* The mean of s over the grid points of x inside the training range (inside) and at
 * |x| >= 5 (outside). */
static void spread(const ds_tensor *x, const ds_tensor *s, double *inside, double *outside)
{
    int ni = 0, no = 0;
    *inside = *outside = 0;
    for (int64_t i = 0; i < ds_tensor_numel(x); i++) {
        double v = ds_tensor_data((ds_tensor *)x)[i], w = ds_tensor_data((ds_tensor *)s)[i];
        if (v >= TOY_X_LO && v <= TOY_X_HI) {
            *inside += w;
            ni++;
        } else if (fabs(v) >= 5) {
            *outside += w;
            no++;
        }
    }
    *inside /= ni;
    *outside /= no;
}

/* MC dropout's standard deviation at |x| >= 5 is at least 3 times that inside [-3, 3]. */
TEST(uq_toy_mc_dropout_spread_grows_outside)
{
    ds_tensor *x, *y, *g = toy_grid(141, -7, 7);
    CHECK(g && !toy_data(2000, TOY_X_LO, TOY_X_HI, 1, &x, &y));
    ds_net *n = NULL;
    CHECK(toy_train(dropout_model, x, y, 50, 64, 7, NULL, NULL, &n) == DS_OK);
    ds_feed f = {.inputs = {{"x", g}}};
    ds_uq_opts o = {.passes = 50, .seed = 3};
    ds_uq_output u = {0};
    CHECK(ds_net_predict_mc(n, &f, &o, &u) == DS_OK);
    double in, out;
    spread(g, u.std, &in, &out);
    ds_uq_output_free(&u);
    ds_tensor_free(g);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    if (!(out >= 3 * in))
        FAIL("MC dropout std: %.4f inside, %.4f outside (%.2fx)", in, out, out / in);
    snprintf(msg_, cap_, "MC dropout std %.4f inside, %.4f outside: %.1fx", in, out, out / in);
    return TEST_PASS;
}

/* A deep ensemble of 4 heteroscedastic members: the epistemic std (the spread of the
 * members' means) at |x| >= 5 is at least 3 times that inside; total^2 = aleatoric^2 +
 * epistemic^2, and the aleatoric part inside follows the toy's sigma. */
TEST(uq_toy_ensemble_spread_grows_outside)
{
    const char *d = test_tmpdir(tdir, sizeof tdir, "uq");
    CHECK(d);
    ds_tensor *x, *y, *g = toy_grid(141, -7, 7);
    CHECK(g && !toy_data(1000, TOY_X_LO, TOY_X_HI, 1, &x, &y));
    char paths[4][128];
    const char *w[4];
    for (int k = 0; k < 4; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/m%d.safetensors", d, k);
        w[k] = paths[k];
        ds_tensor_set *meta = tag("fnv1a64 0123", k, "7");
        ds_net *m = NULL;
        CHECK(meta && toy_train(hetero_model, x, y, 60, 100, 7 + (uint64_t)k, paths[k], meta,
                                &m) == DS_OK);
        ds_tensor_set_free(meta);
        ds_net_free(m);
    }
    ds_net *n = NULL;
    CHECK(ds_net_parse(hetero_model, "h.model", NULL, &n) == DS_OK);
    ds_feed f = {.inputs = {{"x", g}}};
    ds_uq_opts o = {.passes = 1, .keep_draws = 1};
    ds_uq_output u = {0};
    CHECK(ds_net_predict_ensemble(n, 4, w, &f, &o, &u) == DS_OK);
    CHECK(ds_tensor_shape(u.draws)[0] == 4 && ds_tensor_shape(u.draws)[1] == 141);
    double in, out, worst = 0;
    spread(g, u.std_epistemic, &in, &out);
    for (int i = 0; i < 141; i++) {
        double t = ds_tensor_data(u.std)[i], a = ds_tensor_data(u.std_aleatoric)[i],
               e = ds_tensor_data(u.std_epistemic)[i], xv = ds_tensor_data(g)[i];
        CHECK_NEAR(t * t, a * a + e * e, 1e-5 * (1 + t * t));
        if (xv >= TOY_X_LO && xv <= TOY_X_HI && fabs(a / toy_sigma(xv) - 1) > worst)
            worst = fabs(a / toy_sigma(xv) - 1);
    }
    ds_uq_output_free(&u);
    ds_tensor_free(g);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_net_free(n);
    rm_files(d, 4);
    if (!(out >= 3 * in) || worst > 0.25)
        FAIL("ensemble epistemic std: %.4f inside, %.4f outside (%.2fx); aleatoric worst "
             "%.1f%% off", in, out, out / in, 100 * worst);
    snprintf(msg_, cap_, "ensemble epistemic std %.4f inside, %.4f outside: %.1fx; aleatoric "
             "within %.1f%% inside", in, out, out / in, 100 * worst);
    return TEST_PASS;
}
