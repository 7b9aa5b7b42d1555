/* test_build.c - what the build contains (ds_has_feature, ds_build_info) and the messages
 * of the parts a build leaves out (make NO_FITS=1, NO_PLOT=1, NO_OPENMP=1). */
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static const char *const parts[] = {"fits", "plot", "blas", "openmp", "onnx"};

TEST(build_features_match_build_info)
{
    const char *info = ds_build_info();
    CHECK(!strncmp(info, DS_VERSION " (", strlen(DS_VERSION) + 2));
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char plus[32], minus[32];
        snprintf(plus, sizeof plus, "+%s", parts[i]);
        snprintf(minus, sizeof minus, "-%s", parts[i]);
        int on = ds_has_feature(parts[i]);
        if (on != 0 && on != 1)
            FAIL("ds_has_feature(\"%s\") = %d, not 0 or 1", parts[i], on);
        if (!strstr(info, on ? plus : minus) || strstr(info, on ? minus : plus))
            FAIL("ds_has_feature(\"%s\") = %d but the build info says '%s'", parts[i], on, info);
    }
    CHECK(!!strstr(info, "portable") == ds_has_feature("portable"));
    CHECK(ds_has_feature("cuda") == 0 && ds_has_feature("") == 0 && ds_has_feature(NULL) == 0);
    snprintf(msg_, cap_, "%s", info);
    return TEST_PASS;
}

TEST(build_threads_without_openmp)
{
    if (ds_has_feature("openmp"))
        SKIP("built with OpenMP (checked in the NO_OPENMP build)");
    int keep = ds_get_num_threads();
    ds_set_num_threads(4);
    CHECK(ds_get_num_threads() == 1);
    ds_set_num_threads(keep);
    return TEST_PASS;
}

/* A file that exists (the readers check that first), in a fresh folder. */
static int temp_file(char *dir, size_t dcap, char *path, size_t pcap, const char *name)
{
    snprintf(dir, dcap, "/tmp/ds_test_build_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, pcap, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    fputs("SIMPLE  =                    T", f);
    return fclose(f) != 0;
}

static int has_text(const char *s, const char *want)
{
    return strstr(s, want) != NULL;
}

/* st and the message of a call that needed FITS support; 0 if they say so. */
static int no_fits(ds_status st, const char *call, const char *path, char *msg, size_t cap)
{
    if (st == DS_ERR_ARG && has_text(ds_last_error(), "deepsky was built without FITS support")
        && has_text(ds_last_error(), path))
        return 0;
    snprintf(msg, cap, "%s: %s: %s", call, ds_status_name(st), ds_last_error());
    return 1;
}

TEST(build_without_fits_says_so)
{
    if (ds_has_feature("fits"))
        SKIP("built with FITS support (checked in the NO_FITS build)");
    char dir[64], in[128], out[128];
    CHECK(temp_file(dir, sizeof dir, in, sizeof in, "x.fits") == 0);
    snprintf(out, sizeof out, "%s/out.fits", dir);
    ds_tensor *t = NULL, *img = ds_tensor_create(2, (int64_t[]){2, 2});
    const float col[2] = {1, 2}, *cols[1] = {col};
    int rc = !img || no_fits(ds_array_load(in, NULL, &t), "ds_array_load", in, msg_, cap_) ||
             no_fits(ds_array_save(img, out, NULL), "ds_array_save", out, msg_, cap_) ||
             no_fits(ds_table_save(out, 1, NULL, 2, cols), "ds_table_save", out, msg_, cap_);
    if (!rc && (t || access(out, F_OK) == 0)) {
        snprintf(msg_, cap_, "a call without FITS support returned a tensor or wrote a file");
        rc = 1;
    }
    ds_tensor_free(img);
    ds_tensor_free(t);
    remove(out);
    remove(in);
    rmdir(dir);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(build_without_plot_says_so)
{
    if (ds_has_feature("plot"))
        SKIP("built with plotting support (checked in the NO_PLOT build)");
    char dir[64] = "/tmp/ds_test_build_XXXXXX", path[128];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/fig.png", dir);
    ds_figure *f = ds_figure_create(1, 1, 200, 100);
    CHECK(f);   /* a figure is built as usual; drawing it is what fails */
    const double x[2] = {0, 1};
    ds_status st = ds_axes_line(ds_figure_axes(f, 0), 2, x, x, "line");
    if (st == DS_OK)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    int wrote = access(path, F_OK) == 0;
    remove(path);
    rmdir(dir);
    if (st != DS_ERR_ARG || !has_text(ds_last_error(), "deepsky was built without plotting support"))
        FAIL("ds_figure_save_png: %s: %s", ds_status_name(st), ds_last_error());
    CHECK(!wrote);
    return TEST_PASS;
}
