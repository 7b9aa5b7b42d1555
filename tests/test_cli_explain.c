/* test_cli_explain.c - deepsky explain end to end: each method's map equals the library's,
 * figures, a FITS map keeping the sky image's header (WCS), and bad input with its
 * messages (unknown layer, grad-cam without convolutions, --index and --target out of
 * range, unknown method). */
#include "test.h"
#include "spawn.h"

#include <fitsio.h>
#include <stdbool.h>
#include <sys/stat.h>

static char dir[64];

#define MODEL "tests/fixtures/explain_cnn.model"
#define WEIGHTS "tests/fixtures/explain.weights.safetensors"

/* The path of name in dir (the last 8 stay valid: several in one call). */
static const char *at(const char *name)
{
    static char p[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* The fixture's 5 samples as x.npy in dir. */
static int write_x(void)
{
    char msg[256];
    ds_tensor_set *fx = fixture_load("explain", msg, sizeof msg);
    int rc = !fx || ds_npy_save(ds_tensor_set_get(fx, "x"), at("x.npy")) != DS_OK;
    ds_tensor_set_free(fx);
    return rc;
}

/* Whether file a (a .npy) holds the library's map of method fn for samples 0 and 2,
 * target 1. */
static int same_as_library(const char *npy, ds_status (*fn)(ds_net *, const ds_tensor *,
                                                              const ds_explain_opts *,
                                                              ds_explain_result *))
{
    ds_net *n = NULL;
    ds_tensor *x = NULL, *got = NULL, *two = NULL;
    ds_explain_result r = {0};
    int same = 0;
    if (ds_net_load(MODEL, NULL, &n) || ds_net_load_weights(n, WEIGHTS) ||
        ds_npy_load(at("x.npy"), &x) || ds_npy_load(at(npy), &got) ||
        !(two = ds_tensor_create(4, (int64_t[]){2, 2, 8, 8})))
        goto done;
    memcpy(ds_tensor_data(two), ds_tensor_data(x), 128 * sizeof(float));
    memcpy(ds_tensor_data(two) + 128, ds_tensor_data(x) + 256, 128 * sizeof(float));
    if (fn(n, two, &(ds_explain_opts){.target = 1}, &r))
        goto done;
    same = ds_tensor_numel(got) == ds_tensor_numel(r.map) &&
           !memcmp(ds_tensor_data(got), ds_tensor_data(r.map),
                   (size_t)ds_tensor_numel(got) * sizeof(float));
done:
    ds_explain_result_free(&r);
    ds_tensor_free(x);
    ds_tensor_free(got);
    ds_tensor_free(two);
    ds_net_free(n);
    return same;
}

TEST(cli_explain_methods_write_the_library_maps)
{
    CHECK(test_tmpdir(dir, sizeof dir, "explain"));
    CHECK(write_x() == 0);
    bool plot = ds_has_feature("plot");
    static const struct {
        const char *m;
        ds_status (*fn)(ds_net *, const ds_tensor *, const ds_explain_opts *,
                        ds_explain_result *);
    } ms[] = {{"saliency", ds_explain_saliency}, {"gradient-x-input", ds_explain_gradient_x_input},
              {"integrated-gradients", ds_explain_integrated_gradients},
              {"smoothgrad", ds_explain_smoothgrad}, {"occlusion", ds_explain_occlusion},
              {"grad-cam", ds_explain_grad_cam}};
    for (int k = 0; k < 6; k++) {
        char npy[64];
        snprintf(npy, sizeof npy, "%s.npy", ms[k].m);
        CHECK_RUN(0, "explain " MODEL " --weights " WEIGHTS " --data %s --index 0,2 --target 1 "
                  "--method %s -o %s%s%s%s", at("x.npy"), ms[k].m, at(npy),
                  plot ? " --figure " : "", plot ? at("fig.png") : "", "");
        CHECK_OUT("sample 2: value 1 explained");
        if (!same_as_library(npy, ms[k].fn))
            FAIL("%s: the written map differs from the library's", ms[k].m);
    }
    CHECK_OUT("wrote ");
    CHECK_RUN(0, "explain " MODEL " --weights " WEIGHTS " --data %s --method "
              "integrated-gradients --steps 64 -o %s --target 2", at("x.npy"), at("ig.npy"));
    CHECK_OUT("completeness: ");
    CHECK_OUT("(64 steps)");
    CHECK_RUN(0, "explain " MODEL " --weights " WEIGHTS " --method filters -o %s", at("f.npy"));
    CHECK_OUT("[4, 2, 3, 3]");
    CHECK_RUN(0, "explain " MODEL " --weights " WEIGHTS " --method filters --layer c2 -o %s",
              at("f.npy"));
    CHECK_OUT("[6, 1, 3, 3]");
    CHECK_RUN(0, "explain " MODEL " --weights " WEIGHTS " --data %s --method feature-maps "
              "--layer c2 -o %s", at("x.npy"), at("fm.npy"));
    CHECK_OUT("[5, 6, 4, 4]");
    CHECK_RUN(0, "explain " MODEL " --weights " WEIGHTS " --method class-visualization "
              "--target 0,2 --steps 10 -o %s%s%s", at("cv.npy"), plot ? " --figure " : "",
              plot ? at("cv.png") : "");
    CHECK_OUT("target 2: score ");
    CHECK_OUT("; the image is classified as ");
    CHECK_OUT("[2, 2, 8, 8]");
    struct stat sb;
    if (plot)
        CHECK(stat(at("fig.png"), &sb) == 0 && sb.st_size > 1000 &&
              stat(at("cv.png"), &sb) == 0);
    test_rm_rf(dir);
    return TEST_PASS;
}

/* An 8 x 8 sky image with a WCS. */
static int write_sky(const char *path)
{
    fitsfile *f;
    int status = 0;
    float pix[64];
    for (int i = 0; i < 64; i++)
        pix[i] = (float)((i * 37) % 11) / 10;
    double crval = 150.1;
    fits_create_file(&f, path, &status);
    fits_create_img(f, FLOAT_IMG, 2, (long[]){8, 8}, &status);
    fits_write_key(f, TSTRING, "CTYPE1", "RA---TAN", NULL, &status);
    fits_write_key(f, TSTRING, "CTYPE2", "DEC--TAN", NULL, &status);
    fits_write_key(f, TDOUBLE, "CRVAL1", &crval, NULL, &status);
    fits_write_img(f, TFLOAT, 1, 64, pix, &status);
    fits_close_file(f, &status);
    return status;
}

TEST(cli_explain_fits_map_keeps_the_wcs)
{
    if (!ds_has_feature("fits"))
        SKIP("needs FITS support (built with NO_FITS=1)");
    CHECK(test_tmpdir(dir, sizeof dir, "explain"));
    CHECK(write_sky(at("sky.fits")) == 0);
    CHECK(test_write_text(at("sky.model"), "input shape=1x8x8\nconv2d name=c filters=3 "
                          "kernel=3 padding=same activation=relu\nflatten\ndense units=2\n"
                          "loss categorical_crossentropy from_logits=true\n") == 0);
    CHECK_RUN(0, "init %s -o %s", at("sky.model"), at("sky.safetensors"));
    CHECK_RUN(0, "explain %s --weights %s --data %s --method saliency -o %s", at("sky.model"),
              at("sky.safetensors"), at("sky.fits"), at("map.fits"));
    CHECK_OUT("with the header of");
    CHECK_OUT("(WCS included)");
    char *h = ds_fits_header(at("map.fits"), NULL);
    int wcs = h && strstr(h, "CTYPE1  = 'RA---TAN'") && strstr(h, "CRVAL1  =");
    free(h);
    CHECK(wcs);
    ds_tensor *t = NULL;
    CHECK(ds_array_load(at("map.fits"), NULL, &t) == DS_OK);
    int shape_ok = ds_tensor_ndim(t) == 2 && ds_tensor_shape(t)[0] == 8;
    ds_tensor_free(t);
    CHECK(shape_ok);
    test_rm_rf(dir);
    return TEST_PASS;
}

/* A model with two data inputs (img and psf, concatenated as channels): explain --input
 * psf with img fed from its --data img=FILE writes the library's map; the rule and input
 * flags' errors. */
TEST(cli_explain_several_inputs)
{
    CHECK(test_tmpdir(dir, sizeof dir, "explain"));
    char msg[256];
    ds_tensor_set *fx = fixture_load("explain", msg, sizeof msg);
    CHECK(fx);
    ds_tensor *x = ds_tensor_set_get(fx, "x"), *ch[2], *sel[2];
    for (int c = 0; c < 2; c++) {
        ch[c] = ds_tensor_create(4, (int64_t[]){5, 1, 8, 8});
        sel[c] = ds_tensor_create(4, (int64_t[]){2, 1, 8, 8});
        for (int i = 0; i < 5; i++)
            memcpy(ds_tensor_data(ch[c]) + i * 64, ds_tensor_data(x) + (2 * i + c) * 64, 256);
        memcpy(ds_tensor_data(sel[c]), ds_tensor_data(ch[c]), 256);
        memcpy(ds_tensor_data(sel[c]) + 64, ds_tensor_data(ch[c]) + 128, 256);
    }
    ds_tensor_set_free(fx);
    int ok = !ds_npy_save(ch[0], at("img.npy")) && !ds_npy_save(ch[1], at("psf.npy"));
    ds_tensor_free(ch[0]);
    ds_tensor_free(ch[1]);
    ok &= test_write_text(at("two.model"), "input name=img shape=1x8x8\ninput name=psf "
                          "shape=1x8x8\nconcat inputs=img,psf axis=1\nconv2d name=c filters=3 "
                          "kernel=3 padding=same activation=relu\nflatten\ndense name=o "
                          "units=2\n") == 0;
    ok &= cli_run("init %s -o %s", at("two.model"), at("two.safetensors")) == 0;
    ok &= cli_run("explain %s --weights %s --data img=%s --data psf=%s --input psf --index 0,2 "
                  "--target 1 --method integrated-gradients --steps 8 -o %s", at("two.model"),
                  at("two.safetensors"), at("img.npy"), at("psf.npy"), at("m.npy")) == 0 &&
          strstr(cli_out, "sample 2: value 1 explained") && strstr(cli_out, "completeness");
    ds_net *n = NULL;
    ds_tensor *got = NULL;
    ds_explain_result r = {0};
    ds_feed f = {.inputs = {{"img", sel[0]}}};
    ok = ok && !ds_net_load(at("two.model"), NULL, &n) &&
         !ds_net_load_weights(n, at("two.safetensors")) && !ds_npy_load(at("m.npy"), &got) &&
         !ds_explain_integrated_gradients(n, sel[1], &(ds_explain_opts){.target = 1, .steps = 8,
                                          .input = "psf", .others = &f}, &r) &&
         ds_tensor_numel(got) == 128 &&
         !memcmp(ds_tensor_data(got), ds_tensor_data(r.map), 128 * sizeof(float));
    ds_explain_result_free(&r);
    ds_tensor_free(got);
    ds_net_free(n);
    ds_tensor_free(sel[0]);
    ds_tensor_free(sel[1]);
    if (!ok)
        FAIL("explain --input psf: %s", cli_out);
    int rc = 0;
    rc |= cli_expect(cli_run("explain %s --weights %s --data img=%s --data psf=%s --input sky "
                             "--target 0 --method saliency -o %s", at("two.model"),
                             at("two.safetensors"), at("img.npy"), at("psf.npy"), at("m.npy")),
                     1, "--input sky: no such input (its inputs: img, psf)", msg, sizeof msg);
    rc |= rc ? 0 : cli_expect(cli_run("explain %s --weights %s --data img=%s --target 0 --method "
                                      "saliency -o %s", at("two.model"), at("two.safetensors"),
                                      at("img.npy"), at("m.npy")), 1, "psf", msg, sizeof msg);
    rc |= rc ? 0 : cli_expect(cli_run("explain %s --weights %s --data img=%s --data psf=%s "
                                      "--target 0 --method integrated-gradients --rule simpson "
                                      "-o %s", at("two.model"), at("two.safetensors"),
                                      at("img.npy"), at("psf.npy"), at("m.npy")), 2,
                              "--rule simpson: midpoint, piecewise", msg, sizeof msg);
    test_rm_rf(dir);
    if (rc)
        FAIL("%s", msg[0] ? msg : cli_out);
    return TEST_PASS;
}

#define EXPLAIN "explain " MODEL " --weights " WEIGHTS " "
TEST(cli_explain_bad_input_says_what_is_wrong)
{
    CHECK(test_tmpdir(dir, sizeof dir, "explain"));
    CHECK(write_x() == 0);
    char msg[512];
    int rc = 0;
    /* an unknown layer lists the layers */
    rc |= cli_expect(cli_run(EXPLAIN "--data %s --method grad-cam --layer conv9 --target 0 -o %s",
                             at("x.npy"), at("m.npy")), 1,
                     "grad-cam --layer: no layer 'conv9' (its layers: ", msg, sizeof msg);
    rc |= rc ? 0 : !strstr(cli_out, "c1, ");
    /* --index past the samples */
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--data %s --method saliency --index 1,7 --target 0 "
                                      "-o %s", at("x.npy"), at("m.npy")), 1,
                              "--index 7: ", msg, sizeof msg);
    rc |= rc ? 0 : !strstr(cli_out, "holds 5 samples (0..4)");
    /* --target past the outputs; a target is needed for an output of 3 values */
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--data %s --method saliency --target 3 -o %s",
                                      at("x.npy"), at("m.npy")), 1,
                              "target 3 is past output 'out', which has 3 values per sample "
                              "(0..2)", msg, sizeof msg);
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--data %s --method saliency -o %s", at("x.npy"),
                                      at("m.npy")), 1, "choose one with a target", msg,
                              sizeof msg);
    /* usage errors */
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--data %s --method lime -o %s", at("x.npy"),
                                      at("m.npy")), 2, "--method lime: one of filters", msg,
                              sizeof msg);
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--data %s --method feature-maps -o %s",
                                      at("x.npy"), at("m.npy")), 2,
                              "feature-maps needs --layer", msg, sizeof msg);
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--method saliency -o %s", at("m.npy")), 2,
                              "--method saliency needs --data X", msg, sizeof msg);
    rc |= rc ? 0 : cli_expect(cli_run(EXPLAIN "--data %s --method saliency -o %s", at("x.npy"),
                                      at("m.csv")), 2, "written as .npy or .fits", msg,
                              sizeof msg);
    /* grad-cam on a model of dense layers */
    if (!rc && test_write_text(at("d.model"), "input shape=2x8x8\nflatten\ndense name=h "
                               "units=4 activation=relu\ndense name=o units=3\n") == 0 &&
        cli_run("init %s -o %s", at("d.model"), at("d.safetensors")) == 0)
        rc |= cli_expect(cli_run("explain %s --weights %s --data %s --method grad-cam --target 1 "
                                 "-o %s", at("d.model"), at("d.safetensors"), at("x.npy"),
                                 at("m.npy")), 1,
                         "grad-cam needs a convolution layer and the model has none (its "
                         "layers: ", msg, sizeof msg);
    test_rm_rf(dir);
    if (rc)
        FAIL("%s", msg[0] ? msg : cli_out);
    return TEST_PASS;
}
