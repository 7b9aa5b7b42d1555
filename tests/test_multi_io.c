/* test_multi_io.c - several inputs, outputs and labelled losses: the README's two-input
 * model learns a target that only its second input explains (C API and command line), a
 * model with two outputs and two losses trains and predicts both, output lines choose the
 * outputs, per-input scaling survives the weights file, and each mistake (an input not
 * fed, sample counts that differ, names that are not the model's) gives its message. */
#include "test.h"
#include "spawn.h"

#include <unistd.h>

/* The README's two-input model, exactly as written there. */
static const char *const readme_two_inputs =
    "input name=img shape=3x32x32\n"
    "conv2d name=c1 filters=16 kernel=3 padding=same activation=relu\n"
    "conv2d name=c2 filters=16 kernel=3 padding=same\n"
    "add inputs=c1,c2                       # skip connection\n"
    "relu\n"
    "globalavgpool\n"
    "input name=meta shape=4                # a second input (e.g. photometry)\n"
    "concat inputs=global_average_pooling2d_1,meta axis=1\n"
    "dense units=1\n"
    "loss mse\n";

/* Two heads on one trunk: a regression and a 3-class classifier. */
static const char *const two_heads =
    "input name=x shape=6\n"
    "dense name=h units=32 activation=tanh\n"
    "dense name=reg units=1 inputs=h\n"
    "dense name=cls units=3 inputs=h activation=softmax\n"
    "loss mse output=reg\n"
    "loss categorical_crossentropy output=cls\n"
    "optimizer adam lr=0.01\n";

#define N_TWO 24   /* samples of the two-input data */

/* Random images and meta values; the target is a linear function of meta only. Returns
 * the target's variance. */
static double two_input_data(ds_tensor **img, ds_tensor **meta, ds_tensor **y, int64_t n)
{
    static const float w[4] = {1.0f, -2.0f, 0.5f, 1.5f};
    *img = ds_tensor_create(4, (int64_t[]){n, 3, 32, 32});
    *meta = ds_tensor_create(2, (int64_t[]){n, 4});
    *y = ds_tensor_create(2, (int64_t[]){n, 1});
    if (!*img || !*meta || !*y)
        return NAN;
    ds_rng r;
    ds_rng_seed(&r, 21);
    fill_uniform(ds_tensor_data(*img), ds_tensor_numel(*img), -1, 1, &r);
    fill_uniform(ds_tensor_data(*meta), ds_tensor_numel(*meta), -1, 1, &r);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        for (int k = 0; k < 4; k++)
            v += w[k] * ds_tensor_data(*meta)[i * 4 + k];
        ds_tensor_data(*y)[i] = (float)v;
        s += v;
        s2 += v * v;
    }
    return s2 / n - (s / n) * (s / n);
}

TEST(multi_readme_two_input_model_learns_from_meta_c_api)
{
    ds_tensor *img, *meta, *y;
    double var = two_input_data(&img, &meta, &y, N_TWO);
    ds_net *n = NULL;
    ds_net_opts no = {.batch = 8, .seed = 3};
    CHECK(ds_net_parse(readme_two_inputs, "two.model", &no, &n) == DS_OK);
    CHECK(ds_net_input_count(n) == 2 && !strcmp(ds_net_input_name(n, 1), "meta"));
    CHECK(ds_net_target_count(n) == 1 && ds_net_output_count(n) == 1);
    ds_net_optim_opts_mut(n)->lr = 0.05f;
    ds_feed f = {.inputs = {{"img", img}, {"meta", meta}}, .labels = {{NULL, y}}};
    double before = 0, after = 0;
    CHECK(ds_net_loss_value_feed(n, &f, 16, &before) == DS_OK);
    ds_fit_opts fo = {.epochs = 8, .batch_size = 4, .seed = 1};
    ds_fit_result res;
    CHECK(ds_net_fit_feed(n, &f, NULL, &fo, &res) == DS_OK);
    CHECK(ds_net_loss_value_feed(n, &f, 16, &after) == DS_OK);
    /* the second input really is used: zeroing it changes the prediction */
    ds_tensor *p = NULL, *p0 = NULL;
    CHECK(ds_net_predict_feed(n, &f, 16, &p) == DS_OK);
    memset(ds_tensor_data(meta), 0, (size_t)ds_tensor_numel(meta) * sizeof(float));
    CHECK(ds_net_predict_feed(n, &f, 16, &p0) == DS_OK);
    double diff = 0;
    for (int64_t i = 0; i < N_TWO; i++)
        diff += fabs(ds_tensor_data(p)[i] - ds_tensor_data(p0)[i]);
    ds_tensor_free(p);
    ds_tensor_free(p0);
    ds_net_free(n);
    ds_tensor_free(img);
    ds_tensor_free(meta);
    ds_tensor_free(y);
    if (!(after < 0.1 * var) || !(diff > 0.1 * N_TWO))
        FAIL("loss %.4g -> %.4g, target variance %.4g; |p - p(meta=0)| summed %.3g", before,
             after, var, diff);
    snprintf(msg_, cap_, "loss %.3g -> %.3g (target variance %.3g)", before, after, var);
    return TEST_PASS;
}

/* ---- the command line ---- */
static int save(const char *dir, const char *name, const ds_tensor *t)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return t && ds_npy_save(t, p) == DS_OK;
}

/* 1 when dir/name now holds text (the callers CHECK it) */
static int write_text(const char *dir, const char *name, const char *text)
{
    return test_write_in(dir, name, text) == 0;
}

/* The last epoch's loss in a training log (epoch,loss,...), or NAN. */
static double last_logged_loss(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    double loss = NAN;
    while (f && fgets(line, sizeof line, f)) {
        int e;
        double l;
        if (sscanf(line, "%d,%lf", &e, &l) == 2)
            loss = l;
    }
    if (f)
        fclose(f);
    return loss;
}

TEST(multi_readme_two_input_model_learns_from_meta_cli)
{
    char d[] = "/tmp/deepsky_multi_XXXXXX", p[600];
    CHECK(mkdtemp(d));
    ds_tensor *img, *meta, *y;
    double var = two_input_data(&img, &meta, &y, N_TWO);
    int ok = save(d, "img.npy", img) && save(d, "meta.npy", meta) && save(d, "y.npy", y) &&
             write_text(d, "two.model", readme_two_inputs);
    ds_tensor_free(img);
    ds_tensor_free(meta);
    ds_tensor_free(y);
    CHECK(ok);
    CHECK_RUN(0, "train %s/two.model --data img=%s/img.npy --data meta=%s/meta.npy --labels "
              "%s/y.npy --epochs 8 --batch-size 4 --lr 0.05 --seed 1 -q -o %s/w.safetensors",
              d, d, d, d, d);
    snprintf(p, sizeof p, "%s/w.log.csv", d);
    double loss = last_logged_loss(p);
    if (!(loss < 0.1 * var))
        FAIL("final training loss %.4g, target variance %.4g", loss, var);
    CHECK_RUN(0, "predict %s/two.model --weights %s/w.safetensors --data meta=%s/meta.npy "
              "--data img=%s/img.npy -o %s/p.npy", d, d, d, d, d);
    CHECK_OUT("[24, 1]");
    CHECK_RUN(0, "eval %s/two.model --weights %s/w.safetensors --data meta=%s/meta.npy "
              "--data img=%s/img.npy --labels %s/y.npy", d, d, d, d, d);
    CHECK_OUT("RMSE");
    test_rm_rf(d);
    snprintf(msg_, cap_, "final loss %.3g, target variance %.3g", loss, var);
    return TEST_PASS;
}

/* x [n, 6]; reg = a linear function of x, cls = the larger of 3 others (class indices). */
static int two_heads_data(const char *d, int64_t n)
{
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){n, 6});
    ds_tensor *reg = ds_tensor_create(2, (int64_t[]){n, 1});
    ds_tensor *cls = ds_tensor_create(1, (int64_t[]){n});
    int ok = x && reg && cls;
    ds_rng r;
    ds_rng_seed(&r, 5);
    for (int64_t i = 0; ok && i < n; i++) {
        float *xi = ds_tensor_data(x) + i * 6;
        fill_uniform(xi, 6, -1, 1, &r);
        ds_tensor_data(reg)[i] = xi[0] - 2 * xi[1] + 0.5f * xi[5];
        float s[3] = {xi[2] + xi[3], xi[3] - xi[4], xi[4] - xi[2]};
        int best = s[1] > s[0] ? 1 : 0;
        ds_tensor_data(cls)[i] = (float)(s[2] > s[best] ? 2 : best);
    }
    ok = ok && save(d, "x.npy", x) && save(d, "reg.npy", reg) && save(d, "cls.npy", cls) &&
         write_text(d, "heads.model", two_heads);
    ds_tensor_free(x);
    ds_tensor_free(reg);
    ds_tensor_free(cls);
    return ok;
}

TEST(multi_two_outputs_two_losses_train_from_the_cli)
{
    char d[] = "/tmp/deepsky_multi_XXXXXX", p[600];
    CHECK(mkdtemp(d));
    CHECK(two_heads_data(d, 256));
    CHECK_RUN(0, "summary %s/heads.model", d);
    CHECK_OUT("Outputs (predict -o NAME=FILE): reg, cls");
    CHECK_OUT("Labels (--labels NAME=FILE): reg, cls");
    CHECK_RUN(0, "train %s/heads.model --data %s/x.npy --labels reg=%s/reg.npy --labels "
              "cls=%s/cls.npy --val-split 0.25 --epochs 25 --batch-size 16 -q -o "
              "%s/w.safetensors", d, d, d, d, d);
    snprintf(p, sizeof p, "%s/w.log.csv", d);
    FILE *f = fopen(p, "r");
    char line[512];
    double first = NAN, last = NAN, rmse = NAN;   /* the metric is the first loss's */
    while (f && fgets(line, sizeof line, f)) {
        int e;
        double l, a;
        if (sscanf(line, "%d,%lf,%lf", &e, &l, &a) == 3) {
            first = isnan(first) ? l : first;
            last = l;
            rmse = a;
        }
    }
    if (f)
        fclose(f);
    if (!(last < 0.3 * first) || !(rmse < 0.3))
        FAIL("loss %.4g -> %.4g, training RMSE of reg %.3f", first, last, rmse);
    CHECK_RUN(0, "predict %s/heads.model --weights %s/w.safetensors --data %s/x.npy "
              "-o cls=%s/pc.npy -o reg=%s/pr.npy", d, d, d, d, d);
    CHECK_OUT("pr.npy [256, 1]");
    CHECK_OUT("pc.npy [256, 3]");
    CHECK_RUN(0, "eval %s/heads.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "reg=%s/reg.npy --labels cls=%s/cls.npy", d, d, d, d, d);
    CHECK_OUT("[reg]");
    CHECK_OUT("[cls]");
    CHECK_OUT("confusion matrix");
    const char *a = strstr(cli_out, "accuracy: ");
    double acc = a ? atof(a + 10) : 0;
    if (!(acc > 0.8))
        FAIL("accuracy of cls %.3f:\n%s", acc, cli_out);
    CHECK_RUN(0, "grad %s/heads.model --weights %s/w.safetensors --data %s/x.npy --labels "
              "reg=%s/reg.npy --labels cls=%s/cls.npy -o %s/g.safetensors", d, d, d, d, d, d);
    ds_tensor_set *g = NULL;
    snprintf(p, sizeof p, "%s/g.safetensors", d);
    CHECK(ds_safetensors_load(p, &g) == DS_OK);
    int have = ds_tensor_set_get(g, "output.reg") && ds_tensor_set_get(g, "output.cls") &&
               ds_tensor_set_get(g, "input") && ds_tensor_set_get(g, "h.weight");
    ds_tensor_set_free(g);
    CHECK(have);
    test_rm_rf(d);
    snprintf(msg_, cap_, "loss %.3g -> %.3g, RMSE %.3f, accuracy %.3f", first, last, rmse, acc);
    return TEST_PASS;
}

/* Every mistake with several inputs, outputs or labels names what is wrong. */
TEST(multi_cli_mistakes_name_inputs_files_and_counts)
{
    char d[] = "/tmp/deepsky_multi_XXXXXX";
    CHECK(mkdtemp(d));
    CHECK(two_heads_data(d, 32));
    ds_tensor *img, *meta, *y, *short_meta = ds_tensor_create(2, (int64_t[]){30, 4});
    two_input_data(&img, &meta, &y, 32);
    int ok = save(d, "img.npy", img) && save(d, "meta.npy", meta) && save(d, "y.npy", y) &&
             save(d, "meta30.npy", short_meta) && write_text(d, "two.model", readme_two_inputs);
    ds_tensor_free(img);
    ds_tensor_free(meta);
    ds_tensor_free(y);
    ds_tensor_free(short_meta);
    CHECK(ok);
    const char *two = "train %s/two.model --epochs 1 -o %s/w.safetensors --labels %s/y.npy ";
    char fmt[512];
    /* an input that is not fed */
    snprintf(fmt, sizeof fmt, "%s--data img=%s/img.npy", two, d);
    CHECK_RUN(1, fmt, d, d, d);
    CHECK_OUT("the model's input 'meta' is not fed");
    /* sample counts that differ: both files and both counts */
    snprintf(fmt, sizeof fmt, "%s--data img=%s/img.npy --data meta=%s/meta30.npy", two, d, d);
    CHECK_RUN(1, fmt, d, d, d);
    CHECK_OUT("img.npy has 32 samples but");
    CHECK_OUT("meta30.npy has 30");
    /* a plain file for a model with two inputs */
    snprintf(fmt, sizeof fmt, "%s--data %s/img.npy", two, d);
    CHECK_RUN(1, fmt, d, d, d);
    CHECK_OUT("the model has 2 inputs (img, meta): give --data NAME=FILE for each");
    /* a name that is not an input */
    snprintf(fmt, sizeof fmt, "%s--data img=%s/img.npy --data mta=%s/meta.npy", two, d, d);
    CHECK_RUN(1, fmt, d, d, d);
    CHECK_OUT("no input named 'mta' (its inputs: img, meta)");
    /* one input given twice, and a plain file among named ones: usage errors */
    snprintf(fmt, sizeof fmt, "%s--data img=%s/img.npy --data img=%s/meta.npy", two, d, d);
    CHECK_RUN(2, fmt, d, d, d);
    CHECK_OUT("'img' given twice");
    snprintf(fmt, sizeof fmt, "%s--data %s/img.npy --data meta=%s/meta.npy", two, d, d);
    CHECK_RUN(2, fmt, d, d, d);
    CHECK_OUT("give NAME=FILE for each");
    /* two losses read labels: plain labels, and labels for one of them only */
    CHECK_RUN(1, "train %s/heads.model --data %s/x.npy --labels %s/reg.npy -o %s/w.safetensors",
              d, d, d, d);
    CHECK_OUT("the model has 2 losses that read labels (reg, cls): give --labels NAME=FILE");
    CHECK_RUN(1, "train %s/heads.model --data %s/x.npy --labels reg=%s/reg.npy -o "
              "%s/w.safetensors", d, d, d, d);
    CHECK_OUT("no labels for the loss 'cls'");
    CHECK_RUN(1, "train %s/heads.model --data %s/x.npy --labels reg=%s/reg.npy --labels "
              "class=%s/cls.npy -o %s/w.safetensors", d, d, d, d, d);
    CHECK_OUT("no loss that reads labels named 'class'");
    /* predict: every output needs its file */
    CHECK_RUN(0, "init %s/heads.model -o %s/w0.safetensors", d, d);
    CHECK_RUN(1, "predict %s/heads.model --weights %s/w0.safetensors --data %s/x.npy -o %s/p.npy",
              d, d, d, d);
    CHECK_OUT("the model has 2 outputs (reg, cls): give -o NAME=FILE for each");
    CHECK_RUN(1, "predict %s/heads.model --weights %s/w0.safetensors --data %s/x.npy -o "
              "reg=%s/p.npy", d, d, d, d);
    CHECK_OUT("the model's output 'cls' has no file");
    CHECK_RUN(1, "predict %s/heads.model --weights %s/w0.safetensors --data %s/x.npy -o "
              "reg=%s/p.npy -o klass=%s/q.npy", d, d, d, d, d);
    CHECK_OUT("no output named 'klass' (its outputs: reg, cls)");
    /* --columns for a file no --data names */
    snprintf(fmt, sizeof fmt, "%s--data img=%s/img.npy --data meta=%s/meta.npy --columns "
             "photo=1,2", two, d, d);
    CHECK_RUN(2, fmt, d, d, d);
    CHECK_OUT("option '--columns': no --data NAME=FILE is named 'photo'");
    /* --scale for an input the model lacks */
    snprintf(fmt, sizeof fmt, "%s--data img=%s/img.npy --data meta=%s/meta.npy --scale "
             "photometry=standardize", two, d, d);
    CHECK_RUN(1, fmt, d, d, d);
    CHECK_OUT("no input named 'photometry'");
    test_rm_rf(d);
    return TEST_PASS;
}

/* The same mistakes through the C API, and the model-file mistakes of several outputs. */
TEST(multi_c_api_mistakes)
{
    ds_net *n = NULL;
    ds_net_opts no = {.batch = 4, .seed = 1};
    CHECK(ds_net_parse(readme_two_inputs, "two.model", &no, &n) == DS_OK);
    ds_tensor *img, *meta, *y, *meta5 = ds_tensor_create(2, (int64_t[]){5, 4});
    two_input_data(&img, &meta, &y, 6);
    struct {
        ds_feed f;
        const char *want;
    } cases[] = {
        {{.inputs = {{"img", img, "img.npy"}}}, "the model's input 'meta' is not fed"},
        {{.inputs = {{"img", img, "img.npy"}, {"meta", meta5, "m5.npy"}}},
         "img.npy has 6 samples but m5.npy has 5"},
        {{.inputs = {{NULL, img, "img.npy"}, {"meta", meta}}}, "img.npy: the model has 2 inputs"},
        {{.inputs = {{"img", img}, {"meta", meta}, {"img", img, "again.npy"}}},
         "img and again.npy: both are the data of the input 'img'"},
        {{.inputs = {{"img", img}, {"meta", meta}}, .labels = {{"e", y, "y.npy"}}},
         "y.npy: the model has no loss that reads labels named 'e' (its losses that read "
         "labels: dense_1)"},
        {{.inputs = {{"img", img}, {"meta", meta}}, .labels = {{NULL, meta5, "y5.npy"}}},
         "y5.npy: 5 labels for 6 samples in img"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ds_status st = ds_net_check_feed(n, &cases[i].f);
        if (st == DS_OK || !strstr(ds_last_error(), cases[i].want))
            FAIL("case %zu: %s: '%s', expected '%s'", i, ds_status_name(st), ds_last_error(),
                 cases[i].want);
    }
    /* training needs labels for every loss that reads them */
    ds_feed nolabels = {.inputs = {{"img", img}, {"meta", meta}}};
    CHECK(ds_net_fit_feed(n, &nolabels, NULL, NULL, NULL) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "no labels for the loss 'dense_1'"));
    /* the one-tensor functions refuse a model with two inputs */
    CHECK(ds_net_check_data(n, img, "img.npy", NULL, NULL) == DS_ERR_ARG);
    CHECK(strstr(ds_last_error(), "the model has 2 inputs"));
    CHECK(ds_net_preprocess(n, img) == DS_ERR_ARG);
    ds_net_free(n);
    ds_tensor_free(img);
    ds_tensor_free(meta);
    ds_tensor_free(meta5);
    ds_tensor_free(y);
    struct { const char *text, *want; } files[] = {
        {"input shape=2\ndense name=a units=1\ndense name=b units=1 inputs=a\nloss mse output=a\n"
         "loss mae output=a\n", "another loss that reads labels is named 'a'"},
        {"input shape=2\ndense units=1\noutput nowhere\n", "m:3: output: no layer or loss named "
         "'nowhere'"},
        {"input shape=2\ndense name=a units=1\noutput a\noutput a\n", "'a' is already an output"},
        {"input shape=2\ndense units=1\nloss mse from_logits=true\n", "loss mse: unknown option "
         "'from_logits' (options: output, name, weight, reduction, target)"},
        {"input shape=2\ndense units=1\nloss mse name=a.b\n", "option 'name': 'a.b'"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        ds_net *m = NULL;
        ds_status st = ds_net_parse(files[i].text, "m", NULL, &m);
        ds_net_free(m);
        if (st == DS_OK || !strstr(ds_last_error(), files[i].want))
            FAIL("file %zu: %s: '%s', expected '%s'", i, ds_status_name(st), ds_last_error(),
                 files[i].want);
    }
    return TEST_PASS;
}

/* Output lines choose the outputs; without them each loss's prediction is one, named like
 * the loss (gaussian_nll: mean and log-variance side by side). */
TEST(multi_outputs_from_output_lines_and_losses)
{
    static const char *const gauss =
        "input shape=3\n"
        "dense name=h units=4 activation=relu\n"
        "dense name=mu units=2 inputs=h\n"
        "dense name=lv units=2 inputs=h\n"
        "loss gaussian_nll mean=mu logvar=lv\n";
    static const char *const vae_like =
        "input name=x shape=3\n"
        "dense name=z units=2\n"
        "dense name=zl units=2 inputs=x\n"
        "dense name=rec units=3 inputs=z\n"
        "output rec,z\n"
        "loss mse output=rec name=recon\n"
        "loss kl_gaussian mean=z logvar=zl weight=0.1\n";
    ds_net *n = NULL;
    CHECK(ds_net_parse(gauss, "g", NULL, &n) == DS_OK);
    CHECK(ds_net_output_count(n) == 1 && !strcmp(ds_net_output_name(n, 0), "mu"));
    CHECK(ds_node_shape(ds_net_output(n))[1] == 4);
    CHECK(ds_net_target_count(n) == 1 && !strcmp(ds_net_target_name(n, 0), "mu"));
    ds_net_free(n);
    CHECK(ds_net_parse(vae_like, "v", NULL, &n) == DS_OK);
    CHECK(ds_net_output_count(n) == 2);
    CHECK(!strcmp(ds_net_output_name(n, 0), "rec") && !strcmp(ds_net_output_name(n, 1), "z"));
    CHECK(ds_net_target_count(n) == 1 && !strcmp(ds_net_target_name(n, 0), "recon"));
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){5, 3});
    CHECK(x);
    ds_rng r;
    ds_rng_seed(&r, 2);
    fill_uniform(ds_tensor_data(x), 15, -1, 1, &r);
    ds_feed f = {.inputs = {{"x", x}}};
    ds_tensor *out[2] = {0};
    CHECK(ds_net_predict_feed(n, &f, 2, out) == DS_OK);
    int shapes = ds_tensor_shape(out[0])[1] == 3 && ds_tensor_shape(out[1])[1] == 2 &&
                 ds_tensor_shape(out[0])[0] == 5;
    ds_tensor_free(out[0]);
    ds_tensor_free(out[1]);
    ds_tensor_free(x);
    ds_net_free(n);
    CHECK(shapes);
    return TEST_PASS;
}

/* Each input keeps its own scaling through the weights file. */
TEST(multi_per_input_scaling_round_trips)
{
    char d[] = "/tmp/deepsky_multi_XXXXXX", p[600];
    CHECK(mkdtemp(d));
    snprintf(p, sizeof p, "%s/w.safetensors", d);
    ds_tensor *img, *meta, *y;
    two_input_data(&img, &meta, &y, 6);
    ds_net *a = NULL, *b = NULL;
    CHECK(ds_net_parse(readme_two_inputs, "two.model", NULL, &a) == DS_OK);
    CHECK(ds_net_parse(readme_two_inputs, "two.model", NULL, &b) == DS_OK);
    CHECK(ds_net_set_input_scaling(a, "img", DS_SCALE_DIVIDE, 4.0f, NULL) == DS_OK);
    CHECK(ds_net_set_input_scaling(a, "meta", DS_SCALE_STANDARDIZE, 0, meta) == DS_OK);
    CHECK(ds_net_set_scaling(a, DS_SCALE_ASINH, 1, NULL) == DS_ERR_ARG);   /* which input? */
    CHECK(ds_net_save_weights(a, p) == DS_OK);
    CHECK(ds_net_load_weights(b, p) == DS_OK);
    CHECK(ds_net_input_scaling(b, 0) == DS_SCALE_DIVIDE);
    CHECK(ds_net_input_scaling(b, 1) == DS_SCALE_STANDARDIZE);
    ds_feed f = {.inputs = {{"img", img}, {"meta", meta}}};
    CHECK(ds_net_preprocess_feed(b, &f) == DS_OK);
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < 6; i++) {
        mean += ds_tensor_data(meta)[i * 4 + 2] / 6;
        sq += ds_tensor_data(meta)[i * 4 + 2] * ds_tensor_data(meta)[i * 4 + 2] / 6;
    }
    float first = ds_tensor_data(img)[0];
    ds_net_free(a);
    ds_net_free(b);
    ds_tensor_free(img);
    ds_tensor_free(meta);
    ds_tensor_free(y);
    remove(p);
    rmdir(d);
    CHECK_NEAR(mean, 0, 1e-6);
    CHECK_NEAR(sq, 1, 1e-5);
    CHECK(fabsf(first) <= 0.25f);
    return TEST_PASS;
}

/* --accumulate 2 with --batch-size 8 trains as --batch-size 16; a checkpoint made with
 * other accumulation does not resume. */
TEST(multi_cli_accumulate_matches_the_larger_batch)
{
    char d[] = "/tmp/deepsky_multi_XXXXXX", p[600];
    CHECK(mkdtemp(d));
    CHECK(two_heads_data(d, 64));
    const char *common = "train %s/heads.model --data %s/x.npy --labels reg=%s/reg.npy "
                         "--labels cls=%s/cls.npy --epochs 2 --seed 3 --optimizer sgd --lr 0.1 -q";
    char fmt[512];
    snprintf(fmt, sizeof fmt, "%s --batch-size 16 -o %%s/a.safetensors", common);
    CHECK_RUN(0, fmt, d, d, d, d, d);
    snprintf(fmt, sizeof fmt, "%s --batch-size 8 --accumulate 2 -o %%s/b.safetensors", common);
    CHECK_RUN(0, fmt, d, d, d, d, d);
    ds_tensor_set *a = NULL, *b = NULL;
    snprintf(p, sizeof p, "%s/a.safetensors", d);
    CHECK(ds_safetensors_load(p, &a) == DS_OK);
    snprintf(p, sizeof p, "%s/b.safetensors", d);
    CHECK(ds_safetensors_load(p, &b) == DS_OK);
    double diff = 0, big = 0;
    for (int i = 0; i < ds_tensor_set_count(a); i++) {
        ds_tensor *ta = ds_tensor_set_at(a, i);
        ds_tensor *tb = ds_tensor_set_get(b, ds_tensor_set_name(a, i));
        for (int64_t k = 0; tb && k < ds_tensor_numel(ta); k++) {
            diff = fmax(diff, fabs(ds_tensor_data(ta)[k] - ds_tensor_data(tb)[k]));
            big = fmax(big, fabs(ds_tensor_data(ta)[k]));
        }
    }
    ds_tensor_set_free(a);
    ds_tensor_set_free(b);
    if (!(diff <= 1e-5 * big))
        FAIL("weights differ by %.3g (largest weight %.3g)", diff, big);
    snprintf(fmt, sizeof fmt, "%s --batch-size 8 --accumulate 4 --resume -o %%s/b.safetensors",
             common);
    CHECK_RUN(1, fmt, d, d, d, d, d);
    CHECK_OUT("other settings");
    test_rm_rf(d);
    snprintf(msg_, cap_, "largest difference %.2g of %.3g", diff, big);
    return TEST_PASS;
}
