/* test_calibration.c - calibration reports against numpy/scipy and hand-computed values
 * (coverage, z, NLL, CRPS and its integral, PIT, the coverage curve; ECE, NLL, bins),
 * temperature scaling recovering a planted temperature, temperatures stored with the
 * weights and applied by predict, a target's values from a net, and bad input. */
#include "test.h"

#include <unistd.h>

/* ---- regression: tests/fixtures/gen_calibration.py ---- */
static const float R_MEAN[8] = {0.0f, 1.0f, 0.5f, -1.0f, 2.0f, 0.0f, -1.0f, 3.0f};
static const float R_STD[8] = {1.0f, 0.5f, 2.0f, 0.1f, 0.3f, 1.5f, 1.0f, 2.0f};
static const float R_TRUTH[8] = {0.5f, 1.2f, -3.0f, -1.05f, 2.1f, 4.0f, 0.2f, 2.0f};
/* cover68, cover95, z_mean, z_std, nll, crps: output 0, output 1, all */
static const double R_REF[3][6] = {
    {0.5, 1, 0.0708332512941658, 1.10040236953923, 1.39918349938551, 0.899754908121124},
    {0.75, 0.75, 0.516666811580457, 1.29453971804293, 1.41604737859819, 1.00038799894731},
    {0.625, 0.875, 0.293750031437312, 1.22190470950418, 1.40761543899185, 0.950071453534217},
};
static const double R_PIT[8] = {0.691462461274, 0.655421776731, 0.0400591568638,
                                0.308537709227, 0.630558534853, 0.996169619432,
                                0.884930330357, 0.308537538726};

static int stats_match(const ds_calib_stats *s, const double *ref, char *msg_, size_t cap_)
{
    const double got[6] = {s->cover68, s->cover95, s->z_mean, s->z_std, s->nll, s->crps};
    static const char *const names[6] = {"cover68", "cover95", "z_mean", "z_std", "nll", "crps"};
    for (int k = 0; k < 6; k++)
        if (fabs(got[k] - ref[k]) > 1e-9 * fmax(1, fabs(ref[k])))
            FAIL("%s = %.15g, numpy %.15g", names[k], got[k], ref[k]);
    return 0;
}

TEST(calib_regression_matches_numpy)
{
    ds_regression_calib r;
    CHECK(ds_calibrate_regression(4, 2, R_MEAN, R_STD, R_TRUTH, &r) == DS_OK);
    int bad = stats_match(&r.per_output[0], R_REF[0], msg_, cap_) ||
              stats_match(&r.per_output[1], R_REF[1], msg_, cap_) ||
              stats_match(&r.all, R_REF[2], msg_, cap_);
    double pit_err = 0;
    for (int i = 0; i < 8; i++)
        pit_err = fmax(pit_err, fabs(r.pit[i] - R_PIT[i]));
    int counts = r.samples == 4 && r.outputs == 2 && r.all.count == 8 &&
                 r.per_output[1].count == 4;
    /* the curve's 68% and 95% points are the two coverages */
    int curve = r.empirical[67] == r.all.cover68 && r.empirical[94] == r.all.cover95 &&
                r.level[0] == 0.01 && r.level[98] == 0.99;
    ds_regression_calib_free(&r);
    if (bad)
        return TEST_FAIL;
    CHECK(counts && curve);
    CHECK(pit_err < 1e-6);   /* float PIT values */
    CHECK(!r.pit && !r.per_output);   /* freed and zeroed */
    return TEST_PASS;
}

/* CRPS = integral of (Phi((x - mu) / sigma) - 1{x >= y})^2 dx, by Simpson's rule on each
 * side of y, against the closed form. */
static double crps_numeric(double mu, double sigma, double y)
{
    double lo = fmin(mu - 12 * sigma, y), hi = fmax(mu + 12 * sigma, y), sum = 0;
    for (int side = 0; side < 2; side++) {
        double a = side ? y : lo, b = side ? hi : y, h = (b - a) / 20000, s = 0;
        for (int i = 0; i <= 20000; i++) {
            double x = a + i * h, F = 0.5 * erfc(-(x - mu) / (sigma * sqrt(2.0)));
            double d = side ? F - 1 : F, w = i == 0 || i == 20000 ? 1 : i % 2 ? 4 : 2;
            s += w * d * d;
        }
        sum += s * h / 3;
    }
    return sum;
}

TEST(calib_crps_closed_form_matches_integral)
{
    static const float mu[5] = {0, 1.5f, -2, 0.3f, 10};
    static const float sd[5] = {1, 0.2f, 3, 0.05f, 2};
    static const float y[5] = {0, 2.5f, 4, 0.29f, 3};
    for (int i = 0; i < 5; i++) {
        ds_regression_calib r;
        CHECK(ds_calibrate_regression(1, 1, &mu[i], &sd[i], &y[i], &r) == DS_OK);
        double closed = r.all.crps, num = crps_numeric(mu[i], sd[i], y[i]);
        ds_regression_calib_free(&r);
        CHECK_NEAR(closed, num, 1e-8 * fmax(1, num));
    }
    return TEST_PASS;
}

/* Truths at the quantiles (i + 1/2) / n of each Gaussian: every level's coverage is within
 * 1/n of nominal, z has mean 0, the PIT is uniform. */
TEST(calib_coverage_curve_of_calibrated_values)
{
    enum { N = 1000 };
    float *mu = malloc(N * sizeof *mu), *sd = malloc(N * sizeof *sd), *y = malloc(N * sizeof *y);
    CHECK(mu && sd && y);
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        double p = (i + 0.5) / N, lo = -10, hi = 10;
        for (int k = 0; k < 80; k++) {   /* Phi^-1(p) */
            double m = 0.5 * (lo + hi);
            *(0.5 * erfc(-m / sqrt(2.0)) < p ? &lo : &hi) = m;
        }
        mu[i] = (float)(4 * ds_rng_uniform(&r) - 2);
        sd[i] = (float)(0.1 + ds_rng_uniform(&r));
        y[i] = (float)(mu[i] + sd[i] * 0.5 * (lo + hi));
    }
    ds_regression_calib c;
    ds_status st = ds_calibrate_regression(N, 1, mu, sd, y, &c);
    free(mu);
    free(sd);
    free(y);
    CHECK(st == DS_OK);
    double worst = 0;
    for (int l = 0; l < DS_CALIB_LEVELS; l++)
        worst = fmax(worst, fabs(c.empirical[l] - c.level[l]));
    int hist[10] = {0};
    for (int i = 0; i < N; i++)
        hist[(int)(c.pit[i] * 10)]++;
    double zm = c.all.z_mean, zs = c.all.z_std;
    ds_regression_calib_free(&c);
    CHECK(worst <= 1.5 / N);
    CHECK(fabs(zm) < 1e-5 && fabs(zs - 1) < 0.01);
    for (int b = 0; b < 10; b++)
        CHECK(hist[b] == N / 10);
    snprintf(msg_, cap_, "largest coverage gap %.4f", worst);
    return TEST_PASS;
}

TEST(calib_regression_bad_input)
{
    float mu[4] = {0, 0, 0, 0}, sd[4] = {1, 1, 1, 1}, y[4] = {0, 0, 0, 0};
    ds_regression_calib r;
    sd[3] = 0;
    CHECK(ds_calibrate_regression(2, 2, mu, sd, y, &r) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "predicted std of sample 1, output 1 is 0") &&
          strstr(ds_last_error(), "finite and > 0"));
    sd[3] = -1;
    CHECK(ds_calibrate_regression(2, 2, mu, sd, y, &r) == DS_ERR_VALUE);
    sd[3] = NAN;
    CHECK(ds_calibrate_regression(2, 2, mu, sd, y, &r) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "is nan"));
    sd[3] = 1;
    y[2] = INFINITY;
    CHECK(ds_calibrate_regression(2, 2, mu, sd, y, &r) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "true value of sample 1, output 0 is inf: not finite"));
    CHECK(ds_calibrate_regression(0, 2, mu, sd, y, &r) == DS_ERR_ARG);
    CHECK(!r.pit && !r.per_output);
    /* tensors of different shapes */
    ds_tensor *a = ds_tensor_create(2, (int64_t[]){2, 2}), *b = ds_tensor_create(2, (int64_t[]){2, 3});
    CHECK(a && b);
    ds_status st = ds_calibrate_regression_tensors(a, a, b, &r);
    ds_tensor_free(a);
    ds_tensor_free(b);
    CHECK(st == DS_ERR_SHAPE && strstr(ds_last_error(), "[2, 2] but the truth [2, 3]"));
    return TEST_PASS;
}

/* ---- classifiers ---- */
/* Five rows of three probabilities: bins by confidence 0.9 (twice, right), 0.85 (wrong),
 * 0.7 (right), 0.42 (wrong). ECE = (2 x 0.1 + 0.85 + 0.3 + 0.42) / 5 = 0.354. */
TEST(calib_ece_hand_example)
{
    static const float p[15] = {0.9f, 0.05f, 0.05f, 0.85f, 0.1f, 0.05f, 0.2f, 0.7f, 0.1f,
                                0.33f, 0.25f, 0.42f, 0.05f, 0.9f, 0.05f};
    static const float y[5] = {0, 1, 1, 0, 1};
    ds_classifier_calib c;
    CHECK(ds_calibrate_classifier(5, 3, p, DS_SCORES_PROBS, y, 1, &c) == DS_OK);
    CHECK_NEAR(c.ece, 0.354, 1e-6);
    CHECK_NEAR(c.mce, 0.85, 1e-6);
    CHECK_NEAR(c.accuracy, 0.6, 1e-12);
    double nll = -(log(0.9) + log(0.1) + log(0.7) + log(0.33) + log(0.9)) / 5;
    CHECK_NEAR(c.nll, nll, 1e-6);
    CHECK(c.bins[13].count == 2 && c.bins[12].count == 1 && c.bins[10].count == 1 &&
          c.bins[6].count == 1);
    CHECK_NEAR(c.bins[13].accuracy, 1, 0);
    CHECK_NEAR(c.bins[12].confidence, 0.85, 1e-6);
    CHECK(isnan(c.bins[0].accuracy) && c.bins[0].count == 0);
    CHECK_NEAR(c.bins[6].lo, 6.0 / 15, 1e-15);
    CHECK_NEAR(c.bins[6].hi, 7.0 / 15, 1e-15);
    return TEST_PASS;
}

/* A binary classifier's logit z, its probability sigmoid(z) and the two logits [0, z] give
 * the same report, at T = 1 and T = 2. */
TEST(calib_binary_logits_probabilities_agree)
{
    enum { N = 200 };
    float z[N], p[N], two[2 * N], y[N];
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        z[i] = (float)(3 * ds_rng_normal(&r));
        p[i] = (float)(1 / (1 + exp(-(double)z[i])));
        two[2 * i] = 0;
        two[2 * i + 1] = z[i];
        y[i] = (float)(ds_rng_uniform(&r) < 1 / (1 + exp(-0.5 * z[i])));
    }
    for (int k = 0; k < 2; k++) {
        double T = k ? 2 : 1;
        ds_classifier_calib a, b, c;
        CHECK(ds_calibrate_classifier(N, 1, z, DS_SCORES_LOGITS, y, T, &a) == DS_OK);
        CHECK(ds_calibrate_classifier(N, 1, p, DS_SCORES_PROBS, y, T, &b) == DS_OK);
        CHECK(ds_calibrate_classifier(N, 2, two, DS_SCORES_LOGITS, y, T, &c) == DS_OK);
        CHECK_NEAR(a.ece, c.ece, 1e-12);
        CHECK_NEAR(a.nll, c.nll, 1e-12);
        CHECK_NEAR(a.ece, b.ece, 1e-5);
        CHECK_NEAR(a.nll, b.nll, 1e-5);
        CHECK(a.accuracy == b.accuracy && a.accuracy == c.accuracy);
    }
    return TEST_PASS;
}

/* Logits z of a calibrated model (labels drawn from softmax(z)), given as T0 z: the fitted
 * temperature is T0, the ECE falls, and the NLL is smallest there. */
static int planted(double T0, char *msg_, size_t cap_)
{
    enum { N = 20000, K = 5 };
    float *s = malloc(N * K * sizeof *s), *y = malloc(N * sizeof *y);
    CHECK(s && y);
    ds_rng r;
    ds_rng_seed(&r, 11);
    for (int i = 0; i < N; i++) {
        double z[K], sum = 0;
        for (int k = 0; k < K; k++)
            sum += exp(z[k] = 2 * ds_rng_normal(&r));
        double u = ds_rng_uniform(&r) * sum;
        int lab = 0;
        while (lab < K - 1 && (u -= exp(z[lab])) > 0)
            lab++;
        y[i] = (float)lab;
        for (int k = 0; k < K; k++)
            s[i * K + k] = (float)(T0 * z[k]);
    }
    double T = 0;
    ds_classifier_calib raw, cal, lo, hi;
    int ok = ds_fit_temperature(N, K, s, DS_SCORES_LOGITS, y, &T) == DS_OK &&
             ds_calibrate_classifier(N, K, s, DS_SCORES_LOGITS, y, 1, &raw) == DS_OK &&
             ds_calibrate_classifier(N, K, s, DS_SCORES_LOGITS, y, T, &cal) == DS_OK &&
             ds_calibrate_classifier(N, K, s, DS_SCORES_LOGITS, y, T * 1.01, &hi) == DS_OK &&
             ds_calibrate_classifier(N, K, s, DS_SCORES_LOGITS, y, T / 1.01, &lo) == DS_OK;
    free(s);
    free(y);
    CHECK(ok);
    if (fabs(T / T0 - 1) > 0.03)
        FAIL("planted T0 = %g: fitted T = %g", T0, T);
    if (!(cal.ece < raw.ece && cal.ece < 0.02))
        FAIL("planted T0 = %g: fitted T = %g, ECE %.4f -> %.4f", T0, T, raw.ece, cal.ece);
    CHECK(cal.nll < lo.nll && cal.nll < hi.nll);
    snprintf(msg_, cap_, "T0 %g: fitted %.4f, ECE %.4f -> %.4f", T0, T, raw.ece, cal.ece);
    return 0;
}

TEST(calib_temperature_recovers_planted)
{
    char first[200];
    CHECK_OK(planted(0.5, msg_, cap_));   /* underconfident */
    snprintf(first, sizeof first, "%s", msg_);
    CHECK_OK(planted(2.5, msg_, cap_));   /* overconfident */
    size_t len = strlen(msg_);
    snprintf(msg_ + len, cap_ - len, "; %s", first);
    return TEST_PASS;
}

/* Scores that carry no information give the largest T; rows all right with a margin the
 * smallest. */
TEST(calib_temperature_range_ends)
{
    float s[8] = {1, 0, 1, 0, 1, 0, 1, 0}, y[4] = {0, 1, 0, 1};
    double T;
    CHECK(ds_fit_temperature(4, 2, s, DS_SCORES_LOGITS, y, &T) == DS_OK);
    CHECK_NEAR(T, 100, 1e-9);
    float y2[4] = {0, 0, 0, 0};
    CHECK(ds_fit_temperature(4, 2, s, DS_SCORES_LOGITS, y2, &T) == DS_OK);
    CHECK_NEAR(T, 0.01, 1e-12);
    return TEST_PASS;
}

TEST(calib_classifier_bad_input)
{
    float s[6] = {0.2f, 0.5f, 0.3f, 0.6f, 0.3f, 0.3f}, y[2] = {0, 3};
    ds_classifier_calib c;
    double T;
    CHECK(ds_calibrate_classifier(2, 3, s, DS_SCORES_PROBS, y, 1, &c) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "label of row 1 is 3: not a class index in [0, 3)"));
    y[1] = 0.5f;
    CHECK(ds_fit_temperature(2, 3, s, DS_SCORES_PROBS, y, &T) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "label of row 1 is 0.5"));
    y[1] = 2;
    CHECK(ds_calibrate_classifier(2, 3, s, DS_SCORES_PROBS, y, 1, &c) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "probabilities of row 1 sum to 1.2"));
    s[4] = 1.7f;
    CHECK(ds_calibrate_classifier(2, 3, s, DS_SCORES_PROBS, y, 1, &c) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "probability 1 of row 1 is 1.7, outside [0, 1]"));
    s[4] = NAN;
    CHECK(ds_calibrate_classifier(2, 3, s, DS_SCORES_LOGITS, y, 1, &c) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "score 1 of row 1 is nan"));
    s[4] = 0;
    CHECK(ds_calibrate_classifier(2, 3, s, DS_SCORES_LOGITS, y, 0, &c) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "temperature 0"));
    float yb[2] = {0, 2};
    CHECK(ds_calibrate_classifier(2, 1, s, DS_SCORES_LOGITS, yb, 1, &c) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "not a class index in [0, 2)"));
    return TEST_PASS;
}

/* ---- nets ---- */
static char dir[256];

static const char *logits_model = "input shape=3\ndense name=out units=4\n"
                                  "loss sparse_categorical_crossentropy from_logits=true\n";
static const char *softmax_model = "input shape=3\ndense units=4 activation=softmax\n"
                                   "loss sparse_categorical_crossentropy\n";
static const char *sigmoid_model = "input shape=3\ndense units=1 activation=sigmoid\n"
                                   "loss binary_crossentropy\n";

/* The net's predictions for x, with and without its temperature set to T (saved to and
 * loaded from a file in between), into raw and cal [N, K]. */
static int predict_pair(const char *model, const ds_tensor *x, double T, const char *path,
                        ds_tensor **raw, ds_tensor **cal)
{
    ds_net *a = NULL, *b = NULL;
    ds_net_opts o = {.seed = 7};
    int ok = ds_net_parse(model, "m", &o, &a) == DS_OK && ds_net_parse(model, "m", &o, &b) ==
             DS_OK && ds_net_set_temperature(a, 0, T) == DS_OK &&
             ds_net_save_weights(a, path) == DS_OK && ds_net_load_weights(b, path) == DS_OK &&
             ds_net_temperature(b, 0) == T && ds_net_set_temperature(a, 0, 1) == DS_OK &&
             ds_net_predict(a, x, 8, raw) == DS_OK && ds_net_predict(b, x, 8, cal) == DS_OK;
    ds_net_free(a);
    ds_net_free(b);
    return ok ? 0 : 1;
}

TEST(calib_predict_applies_stored_temperature)
{
    CHECK(test_tmpdir(dir, sizeof dir, "calib"));
    char path[300];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){6, 3}), *raw = NULL, *cal = NULL;
    ds_rng r;
    ds_rng_seed(&r, 1);
    fill_uniform(ds_tensor_data(x), 18, -2, 2, &r);
    const char *models[3] = {logits_model, softmax_model, sigmoid_model};
    double worst = 0;
    int fails = 0;
    for (int m = 0; m < 3; m++) {
        double T = 2.5;
        if (predict_pair(models[m], x, T, path, &raw, &cal)) {
            fails++;
            break;
        }
        int64_t N = 6, K = m == 2 ? 1 : 4;
        const float *p = ds_tensor_data(raw), *q = ds_tensor_data(cal);
        for (int64_t i = 0; i < N; i++) {
            double sum = 0, want[4];
            for (int64_t k = 0; k < K; k++)   /* softmax: p^(1/T) / sum; binary against 1-p */
                sum += want[k] = m == 0 ? p[i * K + k] / T : pow(p[i * K + k], 1 / T);
            if (m == 2)
                sum += pow(1 - p[i], 1 / T);
            for (int64_t k = 0; k < K; k++)
                worst = fmax(worst, fabs(q[i * K + k] - (m == 0 ? want[k] : want[k] / sum)));
        }
        ds_tensor_free(raw);
        ds_tensor_free(cal);
        raw = cal = NULL;
    }
    ds_tensor_free(x);
    test_rm_rf(dir);
    CHECK(!fails);
    CHECK(worst < 1e-6);
    return TEST_PASS;
}

/* The temperature key survives a copy with every tensor and train.* key; a damaged value
 * fails the load naming the key; a regression target takes no temperature. */
TEST(calib_temperature_metadata)
{
    CHECK(test_tmpdir(dir, sizeof dir, "calib"));
    char w[300], w2[300];
    snprintf(w, sizeof w, "%s/w.safetensors", dir);
    snprintf(w2, sizeof w2, "%s/w2.safetensors", dir);
    ds_net *n = NULL;
    ds_tensor_set *s = NULL;
    CHECK(ds_net_parse(logits_model, "m", NULL, &n) == DS_OK);
    int ok = ds_net_save_weights(n, w) == DS_OK && ds_safetensors_load(w, &s) == DS_OK &&
             ds_tensor_set_meta_set(s, "train.epoch", "3") == DS_OK &&
             ds_safetensors_save(s, w) == DS_OK && ds_net_set_temperature(n, 0, 1.75) == DS_OK &&
             ds_net_save_temperatures(n, w, w2) == DS_OK;
    ds_tensor_set_free(s);
    s = NULL;
    ok = ok && ds_safetensors_load(w2, &s) == DS_OK;
    const char *t = ok ? ds_tensor_set_meta_get(s, "calib.temperature.out") : NULL;
    const char *e = ok ? ds_tensor_set_meta_get(s, "train.epoch") : NULL;
    int same = ok && ds_tensor_set_count(s) == 2 && t && !strcmp(t, "1.75") && e &&
               !strcmp(e, "3");   /* before the set changes them */
    int wrong = ok && ds_tensor_set_meta_set(s, "calib.temperature.out", "hot") == DS_OK &&
                ds_safetensors_save(s, w2) == DS_OK && ds_net_load_weights(n, w2) == DS_ERR_FORMAT;
    char err[512];
    snprintf(err, sizeof err, "%s", ds_last_error());
    ds_tensor_set_free(s);
    ds_net_free(n);
    n = NULL;
    ds_status reg = ds_net_parse("input shape=2\ndense name=r units=1\nloss mse\n", "r", NULL, &n);
    ds_status set = reg ? reg : ds_net_set_temperature(n, 0, 2);
    char err2[512];
    snprintf(err2, sizeof err2, "%s", ds_last_error());
    ds_net_free(n);
    test_rm_rf(dir);
    CHECK(ok && same);
    CHECK(wrong && strstr(err, "metadata calib.temperature.out is 'hot': not a temperature"));
    CHECK(set == DS_ERR_ARG && strstr(err2, "target 'r' is not a classifier's"));
    return TEST_PASS;
}

/* gaussian_nll: the mean and std (exp(logvar / 2)) of the side-by-side prediction, the
 * labels as truth; a classifier's one-hot labels become class indices. */
TEST(calib_target_values_of_nets)
{
    static const char *gauss = "input name=x shape=3\ndense name=mu units=2\n"
                               "dense name=lv units=2 inputs=x\n"
                               "loss gaussian_nll mean=mu logvar=lv\n";
    ds_net *n = NULL;
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){5, 3}), *y = ds_tensor_create(2, (int64_t[]){5, 2});
    ds_rng r;
    ds_rng_seed(&r, 2);
    fill_uniform(ds_tensor_data(x), 15, -1, 1, &r);
    fill_uniform(ds_tensor_data(y), 10, -1, 1, &r);
    CHECK(ds_net_parse(gauss, "g", NULL, &n) == DS_OK);
    ds_feed f = {.inputs = {{NULL, x, NULL}}, .labels = {{NULL, y, NULL}}};
    ds_target_values v;
    ds_tensor *p = NULL;
    int ok = ds_net_target_values(n, &f, 2, 0, &v) == DS_OK &&
             ds_net_predict(n, x, 2, &p) == DS_OK;
    double err = 0;
    for (int i = 0; ok && i < 5; i++)
        for (int j = 0; j < 2; j++) {
            const float *pp = ds_tensor_data(p) + i * 4;
            err = fmax(err, fabs(ds_tensor_data(v.pred)[i * 2 + j] - pp[j]));
            err = fmax(err, fabs(ds_tensor_data(v.std)[i * 2 + j] - pp[2 + j]) / pp[2 + j]);
            err = fmax(err, fabs(ds_tensor_data(v.truth)[i * 2 + j] - ds_tensor_data(y)[i * 2 + j]));
        }
    int kind = ok && v.kind == DS_TARGET_GAUSSIAN && v.rows == 5 && v.width == 2;
    ds_target_values_free(&v);
    ds_tensor_free(p);
    f.labels[0].data = NULL;
    ds_status nolab = ds_net_target_values(n, &f, 2, 0, &v);
    ds_net_free(n);
    CHECK(ok && kind && err < 1e-6);
    CHECK(nolab == DS_ERR_ARG && strstr(ds_last_error(), "target 'mu': the feed has no labels"));
    /* a classifier read with one-hot labels */
    ds_tensor *oh = ds_tensor_create(2, (int64_t[]){5, 4});
    for (int i = 0; i < 5; i++)
        ds_tensor_data(oh)[i * 4 + (i * 3) % 4] = 1;
    CHECK(ds_net_parse("input shape=3\ndense units=4\nloss categorical_crossentropy "
                       "from_logits=true\n", "c", NULL, &n) == DS_OK);
    f.labels[0].data = oh;
    ok = ds_net_target_values(n, &f, 2, 0, &v) == DS_OK;
    int cls = ok && v.kind == DS_TARGET_CLASSIFIER && v.width == 4 &&
              v.score_kind == DS_SCORES_LOGITS;
    for (int i = 0; cls && i < 5; i++)
        cls = ds_tensor_data(v.truth)[i] == (float)((i * 3) % 4);
    ds_target_values_free(&v);
    ds_net_free(n);
    ds_tensor_free(oh);
    ds_tensor_free(x);
    ds_tensor_free(y);
    CHECK(ok && cls);
    return TEST_PASS;
}

/* The three figures are written (or, without cairo, fail saying so). */
TEST(calib_figures)
{
    CHECK(test_tmpdir(dir, sizeof dir, "calib"));
    ds_regression_calib r;
    ds_classifier_calib c;
    static const float p[15] = {0.9f, 0.05f, 0.05f, 0.85f, 0.1f, 0.05f, 0.2f, 0.7f, 0.1f,
                                0.33f, 0.25f, 0.42f, 0.05f, 0.9f, 0.05f};
    static const float y[5] = {0, 1, 1, 0, 1};
    CHECK(ds_calibrate_regression(4, 2, R_MEAN, R_STD, R_TRUTH, &r) == DS_OK);
    CHECK(ds_calibrate_classifier(5, 3, p, DS_SCORES_PROBS, y, 1, &c) == DS_OK);
    char f[3][300];
    const char *names[3] = {"pit.png", "cov.png", "rel.png"};
    for (int k = 0; k < 3; k++)
        snprintf(f[k], sizeof f[k], "%s/%s", dir, names[k]);
    ds_status st[3] = {ds_plot_pit(&r, -1, NULL, f[0]), ds_plot_coverage(&r, "c", f[1]),
                       ds_plot_reliability(&c, &c, NULL, f[2])};
    ds_status bad = ds_plot_pit(&r, 2, NULL, f[0]);
    ds_regression_calib_free(&r);
    int exist = 0;
    for (int k = 0; k < 3; k++)
        exist += access(f[k], F_OK) == 0;
    test_rm_rf(dir);
    CHECK(bad == DS_ERR_ARG && strstr(ds_last_error(), "no output 2"));
    if (!ds_has_feature("plot")) {
        CHECK(st[0] == DS_ERR_ARG && exist == 0);
        SKIP("needs plotting support (built with NO_PLOT=1): the figures fail saying so");
    }
    CHECK(st[0] == DS_OK && st[1] == DS_OK && st[2] == DS_OK && exist == 3);
    return TEST_PASS;
}
