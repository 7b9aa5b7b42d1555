/* test_keywords.c - every keyword of the model-file language is used by a test: the
 * parser reports the table rows each model it builds used (dsi_modelfile_set_hook), and
 * after every other test the keywords no model used are listed. Also tests for keywords
 * that no other test builds: each builds a small model, runs it forward, and checks the
 * result against values computed here. */
#include "test.h"

#include "../src/net/net.h"

enum { MAX_ROWS = 64 };
static long uses[DSI_KW_TABLES][MAX_ROWS];

/* The fuzz corpus replay (fuzz/model.c parses as "fuzz.model") builds models but checks
 * nothing about them: its parses do not count. */
static void record(const char *file, dsi_kw_table t, int row)
{
    if (strcmp(file, "fuzz.model") && row < MAX_ROWS)
        uses[t][row]++;
}

__attribute__((constructor)) static void install_hook(void)
{
    dsi_modelfile_set_hook(record);
}

static const char *table_name(dsi_kw_table t)
{
    return t == DSI_KW_LAYER ? "layer" : t == DSI_KW_ACTIVATION ? "activation layer"
                                     : t == DSI_KW_LOSS ? "loss" : "optimizer";
}

/* The hook sees the rows of a successful parse, through aliases, and nothing of a failed
 * one. */
TEST(keyword_hook_sees_the_rows_a_model_uses)
{
    long before[DSI_KW_TABLES][MAX_ROWS];
    memcpy(before, uses, sizeof uses);
    ds_net_opts o = {.batch = 2};
    ds_net *n = NULL;
    CHECK(ds_net_parse("input shape=1x4x4\nconvolution2d filters=2 kernel=3\nflatten\n"
                       "leakyrelu\ndense units=2\nloss bce\noptimizer sgd\n", "k.model", &o,
                       &n) == DS_OK);
    ds_net_free(n);
    CHECK(ds_net_parse("input shape=4\ndense units=2\nloss mae\noptimizer adamax\n", "k.model",
                       &o, &n) != DS_OK);
    const char *want[][2] = {{"layer", "conv2d"}, {"layer", "flatten"}, {"layer", "dense"},
                             {"activation layer", "leaky_relu"},
                             {"loss", "binary_crossentropy"}, {"optimizer", "sgd"}};
    int changed = 0;
    for (int t = 0; t < DSI_KW_TABLES; t++)
        for (int r = 0; dsi_modelfile_keyword((dsi_kw_table)t, r); r++) {
            if (uses[t][r] == before[t][r])
                continue;
            const char *kw = dsi_modelfile_keyword((dsi_kw_table)t, r);
            bool expected = false;
            for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
                expected |= !strcmp(want[i][0], table_name((dsi_kw_table)t)) &&
                            !strcmp(want[i][1], kw);
            if (!expected || uses[t][r] != before[t][r] + 1)
                FAIL("%s '%s': %ld uses recorded, expected %d", table_name((dsi_kw_table)t), kw,
                     uses[t][r] - before[t][r], expected);
            changed++;
        }
    CHECK(changed == (int)(sizeof want / sizeof want[0]));
    return TEST_PASS;
}

TEST_LAST(every_model_file_keyword_has_a_test)
{
    if (test_filter())
        SKIP("only tests matching '%s' ran: keyword coverage is judged on a full run",
             test_filter());
    char list[2048] = "";
    int missing = 0, total = 0;
    for (int t = 0; t < DSI_KW_TABLES; t++)
        for (int r = 0; dsi_modelfile_keyword((dsi_kw_table)t, r); r++) {
            total++;
            if (r >= MAX_ROWS)
                FAIL("%s table: more than %d rows: raise MAX_ROWS", table_name((dsi_kw_table)t),
                     MAX_ROWS);
            if (uses[t][r])
                continue;
            missing++;
            dsi_snprintf_cat(list, sizeof list, "%s%s '%s'", *list ? ", " : "",
                             table_name((dsi_kw_table)t), dsi_modelfile_keyword((dsi_kw_table)t, r));
        }
    if (missing)
        FAIL("%d of %d model-file keywords are in no model a test built: %s%s", missing, total,
             list, test_failures() ? " (tests failed earlier in this run: a model that failed "
                                     "to build records nothing)" : "");
    snprintf(msg_, cap_, "%d keywords, each in a model a test built", total);
    return TEST_PASS;
}

/* ---- keywords no other test builds: a small model each, its output against a reference
 * computed here ---- */

/* Distinct values of both signs, no two equal (no ties for max pooling). */
static float sample_value(int k, int64_t i)
{
    return (float)(((i * 7 + k * 3) % 13) - 6) * 0.37f + 0.011f * (float)i;
}

/* Non-overlapping k-wide windows (stride k) over the nd spatial axes of each of C channels
 * of x (spatial sizes dims[0..nd-1]): max, mean, sum or L2 norm. */
enum { REF_MAX, REF_AVG, REF_SUM, REF_L2 };
static void pool_ref(const float *x, int C, int nd, const int *dims, int k, int kind, float *y)
{
    int in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
    for (int a = 0; a < nd; a++) {
        in[3 - nd + a] = dims[a];
        out[3 - nd + a] = dims[a] / k;
    }
    int kd = nd == 3 ? k : 1, kh = nd >= 2 ? k : 1, kw = k;
    float *o = y;
    for (int c = 0; c < C; c++)
        for (int d = 0; d < out[0]; d++)
            for (int h = 0; h < out[1]; h++)
                for (int w = 0; w < out[2]; w++, o++) {
                    double acc = kind == REF_MAX ? -INFINITY : 0;
                    for (int i = 0; i < kd; i++)
                        for (int j = 0; j < kh; j++)
                            for (int l = 0; l < kw; l++) {
                                float v = x[((c * in[0] + d * kd + i) * in[1] + h * kh + j) * in[2] +
                                            w * kw + l];
                                acc = kind == REF_MAX ? fmax(acc, v)
                                      : kind == REF_L2 ? acc + (double)v * v : acc + v;
                            }
                    int n = kd * kh * kw;
                    *o = (float)(kind == REF_AVG ? acc / n : kind == REF_L2 ? sqrt(acc) : acc);
                }
}

/* y[i][j] = x[i / f][j / f] for an h x w image of x (channel 1), y of (f h) x (f w). */
static void replicate_ref(const float *x, int h, int w, int f, float *y)
{
    for (int i = 0; i < f * h; i++)
        for (int j = 0; j < f * w; j++)
            y[i * f * w + j] = x[(i / f) * w + j / f];
}

typedef void (*ref_fn)(const float *const *x, float *y);

static void r_conv3d(const float *const *x, float *y)   /* 1x3x3x3, kernel 2 of ones, +0.5 */
{
    for (int d = 0; d < 2; d++)
        for (int h = 0; h < 2; h++)
            for (int w = 0; w < 2; w++) {
                double s = 0.5;
                for (int i = 0; i < 8; i++)
                    s += x[0][(d + i / 4) * 9 + (h + i / 2 % 2) * 3 + w + i % 2];
                y[(d * 2 + h) * 2 + w] = (float)s;
            }
}
static void r_transpose(const float *const *x, float *y) { replicate_ref(x[0], 2, 2, 2, y); }
static void r_upsample(const float *const *x, float *y) { replicate_ref(x[0], 2, 3, 2, y); }
static void r_upsampling(const float *const *x, float *y) { replicate_ref(x[0], 2, 2, 3, y); }
#define POOL_REF(fn, C, nd, kind, ...)                               \
    static void fn(const float *const *x, float *y)                  \
    {                                                                \
        pool_ref(x[0], C, nd, (const int[]){__VA_ARGS__}, 2, kind, y); \
    }
POOL_REF(r_max1, 2, 1, REF_MAX, 6)
POOL_REF(r_max2, 1, 2, REF_MAX, 4, 4)
POOL_REF(r_max3, 1, 3, REF_MAX, 2, 4, 4)
POOL_REF(r_avg1, 2, 1, REF_AVG, 6)
POOL_REF(r_avg2, 1, 2, REF_AVG, 4, 4)
POOL_REF(r_avg3, 1, 3, REF_AVG, 2, 4, 4)
POOL_REF(r_sum2, 1, 2, REF_SUM, 4, 4)
POOL_REF(r_l2_1, 2, 1, REF_L2, 6)
static void r_copy6(const float *const *x, float *y) { memcpy(y, x[0], 6 * sizeof *y); }
static void r_sub(const float *const *x, float *y)
{
    for (int i = 0; i < 3; i++)
        y[i] = x[0][i] - x[1][i];
}
static void r_mul3(const float *const *x, float *y)
{
    for (int i = 0; i < 3; i++)
        y[i] = x[0][i] * x[1][i] * x[2][i];
}
#define ELEMENTWISE_REF(fn, n, expr)                 \
    static void fn(const float *const *x_, float *y) \
    {                                                \
        for (int i = 0; i < n; i++) {                \
            double x = x_[0][i];                     \
            y[i] = (float)(expr);                    \
        }                                            \
    }
ELEMENTWISE_REF(r_sigmoid, 5, 1 / (1 + exp(-x)))
ELEMENTWISE_REF(r_tanh, 5, tanh(x))
ELEMENTWISE_REF(r_softplus, 5, log1p(exp(x)))
ELEMENTWISE_REF(r_elu, 5, x > 0 ? x : 0.5 * expm1(x))
ELEMENTWISE_REF(r_prelu, 6, x > 0 ? x : 0.25 * x)   /* PReLU's initial slope */
/* softmax over 4 values; log_softmax over the last axis of 2x3 */
static void r_softmax(const float *const *x, float *y)
{
    double s = 0;
    for (int i = 0; i < 4; i++)
        s += exp(x[0][i]);
    for (int i = 0; i < 4; i++)
        y[i] = (float)(exp(x[0][i]) / s);
}
static void r_log_softmax(const float *const *x, float *y)
{
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int i = 0; i < 3; i++)
            s += exp(x[0][r * 3 + i]);
        for (int i = 0; i < 3; i++)
            y[r * 3 + i] = (float)(x[0][r * 3 + i] - log(s));
    }
}

static const struct {
    const char *model;
    int ndim;
    int64_t shape[6];    /* of the output, batch 1 */
    ref_fn ref;
} layer_cases[] = {
    {"input shape=1x3x3x3\nconv3d filters=1 kernel=2 init=ones bias_init=0.5\n", 5,
     {1, 1, 2, 2, 2}, r_conv3d},
    {"input shape=1x2x2\nconv2d_transpose filters=1 kernel=2 stride=2 init=ones bias=false\n",
     4, {1, 1, 4, 4}, r_transpose},
    {"input shape=1x2x3\nupsample2d size=2\n", 4, {1, 1, 4, 6}, r_upsample},
    {"input shape=1x2x2\nupsampling2d size=3 mode=nearest\n", 4, {1, 1, 6, 6}, r_upsampling},
    {"input shape=2x6\nmaxpool1d size=2\n", 3, {1, 2, 3}, r_max1},
    {"input shape=1x4x4\nmaxpool2d size=2\n", 4, {1, 1, 2, 2}, r_max2},
    {"input shape=1x2x4x4\nmaxpool3d size=2\n", 5, {1, 1, 1, 2, 2}, r_max3},
    {"input shape=2x6\navgpool1d size=2\n", 3, {1, 2, 3}, r_avg1},
    {"input shape=1x4x4\navgpool2d size=2\n", 4, {1, 1, 2, 2}, r_avg2},
    {"input shape=1x2x4x4\navgpool3d size=2\n", 5, {1, 1, 1, 2, 2}, r_avg3},
    {"input shape=1x4x4\nsumpool size=2\n", 4, {1, 1, 2, 2}, r_sum2},
    {"input shape=2x6\nl2pool size=2\n", 3, {1, 2, 3}, r_l2_1},
    {"input shape=6\nreshape shape=2x3\n", 3, {1, 2, 3}, r_copy6},
    {"input shape=3 name=a\ninput shape=3 name=b\nsubtract inputs=a,b\n", 2, {1, 3}, r_sub},
    {"input shape=3 name=a\ninput shape=3 name=b\ninput shape=3 name=c\n"
     "multiply inputs=a,b,c\n", 2, {1, 3}, r_mul3},
    {"input shape=5\nsigmoid\n", 2, {1, 5}, r_sigmoid},
    {"input shape=5\ntanh\n", 2, {1, 5}, r_tanh},
    {"input shape=5\nsoftplus\n", 2, {1, 5}, r_softplus},
    {"input shape=5\nelu alpha=0.5\n", 2, {1, 5}, r_elu},
    {"input shape=4\nsoftmax\n", 2, {1, 4}, r_softmax},
    {"input shape=2x3\nlog_softmax axis=2\n", 3, {1, 2, 3}, r_log_softmax},
    {"input shape=2x3\nprelu\n", 3, {1, 2, 3}, r_prelu},
};

/* The model text on one line, "; " between its lines, for messages. */
static const char *one_line(const char *text, char *buf, size_t cap)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 3 < cap; p++)
        if (*p != '\n')
            buf[n++] = *p;
        else if (p[1])
            buf[n++] = ';', buf[n++] = ' ';
    buf[n] = 0;
    return buf;
}

/* Builds the model at batch 1, fills its inputs with sample_value, runs it forward and
 * compares its output with the reference. 0, or 1 with msg set. */
static int run_layer_case(int c, char *msg, size_t cap)
{
    char text[256];
    one_line(layer_cases[c].model, text, sizeof text);
    ds_net *n = NULL;
    if (ds_net_parse(layer_cases[c].model, "case.model", &(ds_net_opts){.batch = 1}, &n) !=
        DS_OK) {
        snprintf(msg, cap, "'%s': %s", text, ds_last_error());
        return 1;
    }
    ds_graph *g = ds_net_graph(n);
    float x[3][96];
    const float *xs[3] = {x[0], x[1], x[2]};
    int rc = 1;
    for (int k = 0; k < ds_net_input_count(n); k++) {
        ds_node *in = ds_net_input_at(n, k);
        for (int64_t i = 0; i < ds_node_numel(in) && i < 96; i++)
            x[k][i] = sample_value(k, i);
        if (ds_node_numel(in) > 96 || ds_graph_set_input(g, in, x[k], ds_node_numel(in))) {
            snprintf(msg, cap, "'%s': setting input %d: %s", text, k, ds_last_error());
            goto done;
        }
    }
    if (ds_graph_forward(g) != DS_OK) {
        snprintf(msg, cap, "'%s': forward: %s", text, ds_last_error());
        goto done;
    }
    ds_node *y = ds_net_output(n);
    int nd = layer_cases[c].ndim;
    const int64_t *want = layer_cases[c].shape;
    bool same = ds_node_ndim(y) == nd;
    for (int i = 0; same && i < nd; i++)
        same = ds_node_shape(y)[i] == want[i];
    if (!same) {
        char a[64], b[64];
        ds_shape_str(ds_node_ndim(y), ds_node_shape(y), a, sizeof a);
        ds_shape_str(nd, want, b, sizeof b);
        snprintf(msg, cap, "'%s': output of shape %s, expected %s", text, a, b);
        goto done;
    }
    float ref[96];
    layer_cases[c].ref(xs, ref);
    const float *got = ds_node_data(y);
    for (int64_t i = 0; i < ds_node_numel(y); i++)
        if (!(fabsf(got[i] - ref[i]) <= 1e-5f + 1e-5f * fabsf(ref[i]))) {
            snprintf(msg, cap, "'%s': output[%lld] = %.7g, expected %.7g", text, (long long)i,
                     got[i], ref[i]);
            goto done;
        }
    rc = 0;
done:
    ds_net_free(n);
    return rc;
}

TEST(keyword_layers_compute_what_they_name)
{
    for (int c = 0; c < (int)(sizeof layer_cases / sizeof layer_cases[0]); c++)
        CHECK_OK(run_layer_case(c, msg_, cap_));
    return TEST_PASS;
}

/* The optimizer lines: one step from a dense layer of weights 0.5 on x = (1, -2) with label
 * 0, so pred = -0.5 and the MSE gradient of the weights is g = (-1, 2). From a fresh state
 * each optimizer's first step moves w by lr g / |g| times a factor (PyTorch's rules):
 * Adagrad 1 (its sum is g^2), RMSprop 1 / sqrt(1 - alpha), AdamW 1 after the decoupled
 * decay w (1 - lr wd). */
TEST(keyword_optimizers_take_their_first_step)
{
    const struct {
        const char *line;
        ds_optim_kind kind;
        double lr, shrink, factor;
    } cases[] = {
        {"optimizer adagrad lr=0.1", DS_OPT_ADAGRAD, 0.1, 1, 1},
        {"optimizer rmsprop lr=0.1 alpha=0.9", DS_OPT_RMSPROP, 0.1, 1, 1 / sqrt(0.1)},
        {"optimizer adamw lr=0.1 weight_decay=0.5", DS_OPT_ADAMW, 0.1, 1 - 0.1 * 0.5, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char text[256];
        snprintf(text, sizeof text, "input shape=2\ndense units=1 init=0.5 bias=false\n"
                 "loss mse\n%s\n", cases[c].line);
        ds_net *n = NULL;
        CHECK(ds_net_parse(text, "opt.model", &(ds_net_opts){.batch = 1}, &n) == DS_OK);
        const ds_optim_opts *o = ds_net_optim_opts(n);
        bool parsed = o->kind == cases[c].kind && fabsf(o->lr - (float)cases[c].lr) < 1e-9f;
        ds_tensor *x = ds_tensor_create(2, (int64_t[]){1, 2});
        ds_tensor *y = ds_tensor_create(2, (int64_t[]){1, 1});
        ds_trainer *t = NULL;
        ds_status st = x && y ? ds_trainer_create(n, NULL, &t) : DS_ERR_NOMEM;
        if (!st) {
            ds_tensor_data(x)[0] = 1;
            ds_tensor_data(x)[1] = -2;
            ds_feed f = {.inputs = {{NULL, x, "x"}}, .labels = {{NULL, y, "y"}}};
            st = ds_trainer_step(t, &f, NULL, 1, NULL);
        }
        ds_param *w = ds_model_find(ds_net_model(n), "dense_1.weight");
        float got[2] = {NAN, NAN};
        if (!st && w)
            memcpy(got, ds_param_data(w), sizeof got);
        ds_trainer_free(t);
        ds_tensor_free(x);
        ds_tensor_free(y);
        ds_net_free(n);
        if (!parsed)
            FAIL("'%s': parsed as optimizer %s, lr %g", cases[c].line, ds_optim_name(o->kind),
                 o->lr);
        CHECK(st == DS_OK && w);
        const double g[2] = {-1, 2};
        for (int i = 0; i < 2; i++) {
            double want = 0.5 * cases[c].shrink - cases[c].lr * cases[c].factor * (g[i] > 0 ? 1 : -1);
            if (fabs(got[i] - want) > 1e-5)
                FAIL("'%s': weight %d is %.7g after one step, expected %.7g", cases[c].line, i,
                     got[i], want);
        }
    }
    return TEST_PASS;
}
