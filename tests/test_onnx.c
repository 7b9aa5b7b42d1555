/* test_onnx.c - ONNX export checked by independent runtimes (onnx's checker and onnxruntime
 * through tests/onnx_check.py, OpenCV's dnn where it runs the ops), ONNX import of a PyTorch
 * model and of deepsky's own export, and bad ONNX files. */
#include "test.h"
#include "spawn.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

/* Appends formatted text to buf (cap bytes), truncating. */
static void cat(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t cap, const char *fmt, ...)
{
    size_t k = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (k < cap)
        vsnprintf(buf + k, cap - k, fmt, ap);
    va_end(ap);
}

#define NEED_ONNX()                                                                          \
    do {                                                                                     \
        if (!ds_has_feature("onnx"))                                                         \
            SKIP("needs ONNX support (built with NO_ONNX=1: no libprotobuf-c)");             \
    } while (0)

/* The Python with onnx and onnxruntime: $DEEPSKY_ONNX_PYTHON, bench/.venv (the peers' venv)
 * or .venv-onnx (made by scripts/deps.sh); NULL if none is there. */
static const char *onnx_python(void)
{
    const char *c[] = { getenv("DEEPSKY_ONNX_PYTHON"), "bench/.venv/bin/python",
                        ".venv-onnx/bin/python" };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (c[i] && *c[i] && access(c[i], X_OK) == 0)
            return c[i];
    return NULL;
}

/* Random but fixed values for what the initializers leave trivial: biases, batch norm's
 * scale, shift and running statistics. */
static void perturb(ds_net *n, uint64_t seed)
{
    ds_model *m = ds_net_model(n);
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int i = 0; i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        const char *nm = ds_param_name(p);
        float *d = ds_param_data(p);
        int64_t k = ds_param_numel(p);
        bool bn = strstr(nm, "batch_norm") || strstr(nm, "bn");
        if (strstr(nm, "running_var") || (bn && strstr(nm, ".weight")))
            fill_uniform(d, k, 0.5f, 1.5f, &r);
        else if (strstr(nm, "running_mean") || strstr(nm, "bias"))
            fill_uniform(d, k, -0.2f, 0.2f, &r);
    }
}

typedef struct {
    char dir[128];
    char args[2048];      /* --input NAME=FILE ... --expect NAME=FILE ... */
    char note[256];       /* runtimes' results, for the summary */
} job;

/* Writes raw inputs (N samples) and deepsky's outputs for them as .npy in j->dir, with the
 * onnx_check.py arguments naming them. */
static int reference(ds_net *n, int64_t N, uint64_t seed, job *j, char *msg, size_t cap)
{
    ds_feed raw = { 0 }, pre = { 0 };
    ds_tensor *outs[DS_FEED_MAX] = { 0 };
    ds_rng r;
    ds_rng_seed(&r, seed);
    int rc = 0, ni = ds_net_input_count(n);
    j->args[0] = 0;
    for (int i = 0; i < ni && !rc; i++) {
        const ds_node *in = ds_net_input_at(n, i);
        int64_t s[8];
        memcpy(s, ds_node_shape(in), (size_t)ds_node_ndim(in) * sizeof *s);
        s[0] = N;
        ds_tensor *x = ds_tensor_create(ds_node_ndim(in), s);
        if (!x)
            return snprintf(msg, cap, "out of memory"), 1;
        fill_uniform(ds_tensor_data(x), ds_tensor_numel(x), -1.0f, 2.0f, &r);
        raw.inputs[i] = (ds_feed_item){ ds_net_input_name(n, i), x, NULL };
        pre.inputs[i] = (ds_feed_item){ ds_net_input_name(n, i),
                                        ds_tensor_from(ds_tensor_ndim(x), ds_tensor_shape(x),
                                                       ds_tensor_data(x)), NULL };
        char p[256];
        snprintf(p, sizeof p, "%s/in_%s.npy", j->dir, ds_net_input_name(n, i));
        rc = !pre.inputs[i].data || ds_npy_save(x, p) != DS_OK;
        cat(j->args, sizeof j->args, " --input %s=%s", ds_net_input_name(n, i), p);
    }
    if (!rc && (ds_net_preprocess_feed(n, &pre) || ds_net_predict_feed(n, &pre, 4, outs)))
        rc = snprintf(msg, cap, "deepsky predict: %s", ds_last_error()) > 0;
    for (int k = 0; !rc && k < ds_net_output_count(n); k++) {
        char p[256];
        snprintf(p, sizeof p, "%s/out_%s.npy", j->dir, ds_net_output_name(n, k));
        rc = ds_npy_save(outs[k], p) != DS_OK;
        cat(j->args, sizeof j->args, " --expect %s=%s", ds_net_output_name(n, k), p);
    }
    for (int i = 0; i < DS_FEED_MAX; i++) {
        ds_tensor_free(raw.inputs[i].data);
        ds_tensor_free(pre.inputs[i].data);
        ds_tensor_free(outs[i]);
    }
    if (rc && !msg[0])
        snprintf(msg, cap, "cannot write the reference files: %s", ds_last_error());
    return rc;
}

/* Runs onnx_check.py with python on the export: 0 pass, 77 skip (reason in out), else fail. */
static int check_runtime(const char *python, const char *rt, const job *j, const char *onnx,
                         char *out, size_t cap)
{
    char cmd[3072];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s tests/onnx_check.py --runtime %s %s%s 2>&1",
             python, rt, onnx, j->args);
    return cli_run_sh(cmd, NULL, out, cap);
}

/* "rel=..." of each output line (the largest), or -1. */
static double max_rel(const char *out)
{
    double best = -1;
    for (const char *p = strstr(out, "rel="); p; p = strstr(p + 4, "rel="))
        if (atof(p + 4) > best)
            best = atof(p + 4);
    return best;
}

/* Exports net n (preprocessing set) and checks it in onnxruntime and OpenCV; j->note gets
 * the figures. 0, 77 (skip: msg says why) or 1. */
static int export_and_run(ds_net *n, const char *tag, job *j, char *msg, size_t cap)
{
    const char *py = onnx_python();
    if (!py) {
        snprintf(msg, cap, "no Python with onnx and onnxruntime (bench/.venv, .venv-onnx from "
                 "scripts/deps.sh, or $DEEPSKY_ONNX_PYTHON)");
        return 77;
    }
    char onnx[256], out[4096];
    snprintf(onnx, sizeof onnx, "%s/%s.onnx", j->dir, tag);
    if (ds_onnx_export(n, onnx) != DS_OK)
        return snprintf(msg, cap, "%s: export: %s", tag, ds_last_error()), 1;
    if (reference(n, 3, 11, j, msg, cap))
        return 1;
    int rc = check_runtime(py, "ort", j, onnx, out, sizeof out);
    if (rc == 77)
        return snprintf(msg, cap, "%s", out), 77;
    if (rc)
        return snprintf(msg, cap, "%s: onnxruntime: exit %d:\n%s", tag, rc, out), 1;
    double ort = max_rel(out);
    rc = check_runtime("/usr/bin/python3", "opencv", j, onnx, out, sizeof out);
    if (rc != 0 && rc != 77)
        return snprintf(msg, cap, "%s: OpenCV dnn ran it with other results (exit %d):\n%s",
                        tag, rc, out), 1;
    if (rc == 0)
        snprintf(j->note, sizeof j->note, "%s ort %.1e cv %.1e", tag, ort, max_rel(out));
    else {   /* the op OpenCV rejects, from "Node [Op@ai.onnx]" */
        const char *op = strstr(out, "Node [");
        int len = op ? (int)strcspn(op + 6, "@]") : 0;
        snprintf(j->note, sizeof j->note, "%s ort %.1e cv n/a (%.*s)", tag, ort, len,
                 op ? op + 6 : "");
    }
    return 0;
}

/* One model file: weights perturbed, a preprocessing of each kind in turn on its inputs. */
static int check_model(const char *path, const char *text, int k, job *j, char *msg, size_t cap)
{
    ds_net_opts o = { .batch = 4, .seed = 7 };
    ds_net *n;
    ds_status st = text ? ds_net_parse(text, path, &o, &n) : ds_net_load(path, &o, &n);
    if (st)
        return snprintf(msg, cap, "%s: %s", path, ds_last_error()), 1;
    perturb(n, 5 + (uint64_t)k);
    static const ds_scale_kind kinds[] = { DS_SCALE_STANDARDIZE, DS_SCALE_PER_IMAGE,
                                           DS_SCALE_ASINH, DS_SCALE_DIVIDE, DS_SCALE_NONE };
    ds_rng r;
    ds_rng_seed(&r, 9);
    for (int i = 0; i < ds_net_input_count(n) && !st; i++) {
        const ds_node *in = ds_net_input_at(n, i);
        int64_t s[8];
        memcpy(s, ds_node_shape(in), (size_t)ds_node_ndim(in) * sizeof *s);
        s[0] = 16;
        ds_tensor *tx = ds_tensor_create(ds_node_ndim(in), s);
        if (tx)
            fill_uniform(ds_tensor_data(tx), ds_tensor_numel(tx), -1.0f, 3.0f, &r);
        st = tx ? ds_net_set_input_scaling(n, ds_net_input_name(n, i), kinds[(k + i) % 5], 2.5f, tx)
                : DS_ERR_NOMEM;
        ds_tensor_free(tx);
    }
    const char *base = strrchr(path, '/');
    char tag[64];
    snprintf(tag, sizeof tag, "%s", base ? base + 1 : path);
    if (strchr(tag, '.'))
        *strchr(tag, '.') = 0;
    int rc = st ? (snprintf(msg, cap, "scaling: %s", ds_last_error()), 1)
                : export_and_run(n, tag, j, msg, cap);
    ds_net_free(n);
    return rc;
}

TEST(onnx_export_models_run_in_onnxruntime_and_opencv)
{
    NEED_ONNX();
    const char *models[] = { "bench/models/galaxy.model", "bench/models/galaxy_bn.model",
                             "bench/models/lenet.model", "bench/models/mlp.model",
                             "bench/models/spectra.model", "examples/ellipticity.model",
                             "examples/ellipticity_psf.model", "examples/unet.model" };
    job j = { .dir = "" };
    if (!test_tmpdir(j.dir, sizeof j.dir, "onnx"))
        FAIL("cannot make a temporary folder");
    char summary[1536] = "";
    int rc = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0] && !rc; i++) {
        if (access(models[i], R_OK) != 0)
            continue;   /* examples/unet.model comes with the U-Net example */
        rc = check_model(models[i], NULL, (int)i, &j, msg_, cap_);
        cat(summary, sizeof summary, "%s%s", i ? "; " : "", j.note);
    }
    test_rm_rf(j.dir);
    if (rc == 77) {
        char why[512];
        snprintf(why, sizeof why, "%s", msg_);
        SKIP("%s", why);
    }
    if (rc)
        return TEST_FAIL;
    snprintf(msg_, cap_, "max |diff| / max |deepsky|: %s", summary);
    return TEST_PASS;
}

/* Every layer of the model-file language that inference runs, in two small nets. */
static const char *const every_layer[] = {
    "input name=img shape=2x8x8\n"
    "conv2d name=c1 filters=4 kernel=3 padding=same activation=relu\n"
    "batchnorm name=bn1 affine=false\n"
    "prelu name=p1\n"
    "conv2d_transpose name=up1 filters=3 kernel=3 stride=2 padding=1 output_padding=1\n"
    "avgpool name=ap size=3 stride=2 padding=1 exclude_pad=true\n"
    "sumpool name=sp inputs=up1 size=2\n"
    "l2pool name=lp inputs=up1 size=2\n"
    "add name=s1 inputs=sp,lp\n"
    "subtract name=s2 inputs=s1,ap\n"
    "multiply name=s3 inputs=s2,lp\n"
    "upsample2d name=un inputs=s3 size=2 mode=nearest\n"
    "upsample2d name=ub inputs=s3 size=2 mode=bilinear\n"
    "concat name=cat inputs=un,ub axis=1\n"
    "conv2d name=c2 filters=4 kernel=3 stride=2 dilation=1 padding=1 activation=elu\n"
    "maxpool name=mp size=2\n"
    "leaky_relu name=lr alpha=0.2\n"
    "gelu name=ge\n"
    "silu name=si\n"
    "globalmaxpool name=gm\n"
    "input name=meta shape=3\n"
    "dense name=dm inputs=meta units=4 activation=softplus\n"
    "concat name=j inputs=gm,dm axis=1\n"
    "dense name=h units=12 activation=tanh\n"
    "dropout rate=0.3\n"
    "reshape name=rs shape=3x4\n"
    "softmax name=sm axis=2\n"
    "flatten name=fl\n"
    "dense name=mu units=2 activation=sigmoid\n"
    "dense name=lv inputs=fl units=2\n"
    "dense name=cls inputs=fl units=3 activation=log_softmax\n"
    "loss gaussian_nll mean=mu logvar=lv\n"
    "loss mse output=cls\n",
    "input name=x shape=1x9x9\n"
    "conv2d name=c kernel=3 filters=3 padding=same bias=false\n"
    "batchnorm name=bn\n"
    "globalavgpool name=g\n"
    "prelu name=pr shared=true\n"
    "dense name=o units=2 activation=gelu\n",
};

TEST(onnx_export_every_layer_runs_in_onnxruntime)
{
    NEED_ONNX();
    job j = { .dir = "" };
    if (!test_tmpdir(j.dir, sizeof j.dir, "onnx_layers"))
        FAIL("cannot make a temporary folder");
    char summary[600] = "";
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers%d.model", i + 1);
        rc = check_model(name, every_layer[i], i, &j, msg_, cap_);
        cat(summary, sizeof summary, "%s%s", i ? "; " : "", j.note);
    }
    test_rm_rf(j.dir);
    if (rc == 77) {
        char why[512];
        snprintf(why, sizeof why, "%s", msg_);
        SKIP("%s", why);
    }
    if (rc)
        return TEST_FAIL;
    snprintf(msg_, cap_, "%s", summary);
    return TEST_PASS;
}

/* Predictions of net for x (no preprocessing), output 0, compared with want. */
static double max_rel_diff(ds_net *n, ds_tensor *x, const float *want, int64_t count)
{
    ds_tensor *y = NULL;
    if (ds_net_predict(n, x, 8, &y) || ds_tensor_numel(y) != count) {
        ds_tensor_free(y);
        return 1e30;
    }
    double d = 0, s = 0;
    for (int64_t i = 0; i < count; i++) {
        double e = fabs((double)ds_tensor_data(y)[i] - want[i]);
        d = e > d ? e : d;
        s = fabs(want[i]) > s ? fabs(want[i]) : s;
    }
    ds_tensor_free(y);
    return s > 0 ? d / s : d;
}

TEST(onnx_import_pytorch_cnn_predicts_as_pytorch)
{
    NEED_ONNX();
    ds_tensor_set *fx = fixture_load("onnx_torch_cnn", msg_, cap_);
    if (!fx)
        return TEST_FAIL;
    char *text;
    ds_net *n;
    ds_status st = ds_onnx_import("tests/fixtures/onnx_torch_cnn.onnx", &text, &n);
    if (st) {
        ds_tensor_set_free(fx);
        FAIL("import: %s", ds_last_error());
    }
    ds_tensor *x = ds_tensor_set_get(fx, "x"), *y = ds_tensor_set_get(fx, "y");
    double rel = max_rel_diff(n, x, ds_tensor_data(y), ds_tensor_numel(y));
    bool names = strstr(text, "batchnorm name=bn1_BatchNormalization") && strstr(text, "output y") &&
                 !strcmp(ds_net_input_name(n, 0), "x");
    free(text);
    ds_net_free(n);
    ds_tensor_set_free(fx);
    if (!names)
        FAIL("the translated model does not name its layers after the ONNX nodes");
    if (!(rel <= 1e-4))
        FAIL("max |deepsky - PyTorch| / max |PyTorch| = %.3g > 1e-4", rel);
    snprintf(msg_, cap_, "max |deepsky - PyTorch| / max |PyTorch| = %.2g", rel);
    return TEST_PASS;
}

TEST(onnx_import_of_an_export_predicts_the_same)
{
    NEED_ONNX();
    const char *text0 = "input name=img shape=1x12x12\n"
                        "conv2d filters=4 kernel=3 padding=same activation=relu\n"
                        "batchnorm\nmaxpool size=2\n"
                        "conv2d filters=6 kernel=3 stride=2 padding=1\nleaky_relu alpha=0.1\n"
                        "avgpool size=3 stride=1 padding=1\nglobalavgpool\n"
                        "dense units=8 activation=elu\ndropout rate=0.2\ndense units=3\n"
                        "softmax\n";
    ds_net_opts o = { .batch = 4, .seed = 3 };
    ds_net *a = NULL, *b = NULL;
    char *text = NULL;
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(ds_net_parse(text0, "rt.model", &o, &a));
    perturb(a, 2);
    ds_status st = ds_onnx_export_mem(a, &buf, &len);
    if (!st)
        st = ds_onnx_import_mem(buf, len, "rt.onnx", &text, &b);
    free(buf);
    double rel = 1e30;
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){ 6, 1, 12, 12 }), *ya = NULL;
    ds_rng r;
    ds_rng_seed(&r, 4);
    if (!st && x) {
        fill_uniform(ds_tensor_data(x), ds_tensor_numel(x), -1, 1, &r);
        if (!ds_net_predict(a, x, 8, &ya))
            rel = max_rel_diff(b, x, ds_tensor_data(ya), ds_tensor_numel(ya));
    }
    ds_tensor_free(ya);
    ds_tensor_free(x);
    ds_net_free(a);
    ds_net_free(b);
    free(text);
    if (st)
        FAIL("export then import: %s", ds_last_error());
    if (!(rel <= 1e-5))
        FAIL("the imported net predicts differently: max relative difference %.3g", rel);
    snprintf(msg_, cap_, "max relative difference %.2g", rel);
    return TEST_PASS;
}

/* ds_onnx_import of bytes fails with st and a message holding each of words. */
static int bad_bytes(const void *buf, size_t len, ds_status want, const char *w1, const char *w2,
                     char *msg, size_t cap)
{
    char *text;
    ds_net *n;
    ds_status st = ds_onnx_import_mem(buf, len, "bad.onnx", &text, &n);
    if (st == DS_OK) {
        free(text);
        ds_net_free(n);
        return snprintf(msg, cap, "a bad file (%s) was imported", w1), 1;
    }
    const char *e = ds_last_error();
    if (st != want || !strstr(e, w1) || (w2 && !strstr(e, w2)))
        return snprintf(msg, cap, "got %s '%s', expected %s naming '%s'%s%s", ds_status_name(st),
                        e, ds_status_name(want), w1, w2 ? " and " : "", w2 ? w2 : ""), 1;
    return n || text ? snprintf(msg, cap, "outputs set on failure"), 1 : 0;
}

static int bad_file(const char *name, ds_status want, const char *w1, const char *w2, char *msg,
                    size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "tests/fixtures/%s", name);
    FILE *fp = fopen(path, "rb");
    char buf[4096];
    size_t len = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp)
        fclose(fp);
    if (!len)
        return snprintf(msg, cap, "cannot read %s", path), 1;
    return bad_bytes(buf, len, want, w1, w2, msg, cap);
}

TEST(onnx_import_bad_files_say_what_is_wrong)
{
    NEED_ONNX();
    if (bad_file("onnx_bad_cycle.onnx", DS_ERR_FORMAT, "cycle", "'first' (Add)", msg_, cap_) ||
        bad_file("onnx_bad_op.onnx", DS_ERR_ARG, "node 'argmax_head' (Hardmax)",
                 "op 'Hardmax' has no deepsky layer", msg_, cap_) ||
        bad_file("onnx_bad_undefined.onnx", DS_ERR_FORMAT, "node 'adder' (Add)",
                 "input 'ghost' is produced by no node", msg_, cap_))
        return TEST_FAIL;
    /* truncated and bit-flipped copies of a good file */
    FILE *fp = fopen("tests/fixtures/onnx_torch_cnn.onnx", "rb");
    static unsigned char buf[1 << 16];
    size_t len = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp)
        fclose(fp);
    CHECK(len > 1000);
    if (bad_bytes(buf, len / 2, DS_ERR_FORMAT, "truncated or corrupt", "bad.onnx", msg_, cap_) ||
        bad_bytes(buf, len - 1, DS_ERR_FORMAT, "truncated or corrupt", NULL, msg_, cap_))
        return TEST_FAIL;
    buf[0] ^= 0x07;   /* the first field's tag: wire type 7 does not exist */
    if (bad_bytes(buf, len, DS_ERR_FORMAT, "truncated or corrupt", NULL, msg_, cap_))
        return TEST_FAIL;
    buf[0] ^= 0x07;
    if (bad_bytes("not protobuf at all", 19, DS_ERR_FORMAT, "not an ONNX model", NULL, msg_, cap_))
        return TEST_FAIL;
    /* every single-bit flip of the first 256 bytes: an error or a net, never a crash */
    for (size_t i = 0; i < 256 * 8 && i < len * 8; i++) {
        buf[i / 8] ^= (unsigned char)(1u << (i % 8));
        char *text = NULL;
        ds_net *n = NULL;
        if (ds_onnx_import_mem(buf, len, "flip.onnx", &text, &n) == DS_OK)
            CHECK(n && text);
        else
            CHECK(!n && !text && ds_last_error()[0]);
        free(text);
        ds_net_free(n);
        buf[i / 8] ^= (unsigned char)(1u << (i % 8));
    }
    return TEST_PASS;
}

TEST(onnx_cli_export_and_import)
{
    char dir[128], m[256];
    if (!test_tmpdir(dir, sizeof dir, "onnx_cli"))
        FAIL("cannot make a temporary folder");
    snprintf(m, sizeof m, "%s/t.model", dir);
    int rc = test_write_text(m, "input shape=4\ndense units=3 activation=relu\ndense units=2\n");
    rc |= cli_run("init %s -o %s/w.safetensors", m, dir) != 0;
    if (!rc && cli_run("export %s -o %s/m.onnx", m, dir) != 2)
        rc = snprintf(msg_, cap_, "export without --weights: %s", cli_out) > 0;
    if (!rc && cli_expect(cli_run("export %s --weights %s/w.safetensors -o %s/m.onx", m, dir, dir),
                          2, "give a name ending in .onnx", msg_, cap_))
        rc = 1;
    if (!rc && !ds_has_feature("onnx")) {
        rc = cli_expect(cli_run("export %s --weights %s/w.safetensors -o %s/m.onnx", m, dir, dir),
                        1, "built without ONNX support", msg_, cap_);
        test_rm_rf(dir);
        if (rc)
            return TEST_FAIL;
        SKIP("built with NO_ONNX=1: export says so (checked)");
    }
    if (!rc && cli_expect(cli_run("export %s --weights %s/w.safetensors -o %s/m.onnx", m, dir, dir),
                          0, "1 input, 1 output", msg_, cap_))
        rc = 1;
    if (!rc && cli_expect(cli_run("import %s/m.onnx -o %s/back.model --weights %s/back.safetensors",
                                  dir, dir, dir), 0, "wrote", msg_, cap_))
        rc = 1;
    if (!rc && cli_expect(cli_run("import tests/fixtures/onnx_bad_op.onnx -o %s/x.model --weights "
                                  "%s/x.safetensors", dir, dir), 1, "op 'Hardmax'", msg_, cap_))
        rc = 1;
    if (!rc && cli_expect(cli_run("import %s/m.onnx -o %s/x.model --weights %s/x.npy", dir, dir,
                                  dir), 2, "ending in .safetensors", msg_, cap_))
        rc = 1;
    if (!rc && cli_expect(cli_run("import %s/m.onnx -o %s/x.model", dir, dir), 2,
                          "--weights W.safetensors is required", msg_, cap_))
        rc = 1;
    test_rm_rf(dir);
    return rc ? TEST_FAIL : TEST_PASS;
}
