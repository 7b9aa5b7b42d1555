/* test_plot.c - figures: PNG files of the requested size with something drawn in them, for
 * learning curves, scatter/refline/errorbar grids and image mosaics; argument errors; atomic
 * saving. Set DS_PLOT_DIR to keep the PNGs for viewing. */
#include "test.h"

#include <cairo.h>
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

/* A directory for the PNGs: $DS_PLOT_DIR (kept) or a fresh temporary one (removed). */
typedef struct {
    char dir[512];
    int keep;
} outdir;

static int outdir_open(outdir *o)
{
    const char *env = getenv("DS_PLOT_DIR");
    o->keep = env && *env;
    if (o->keep) {
        snprintf(o->dir, sizeof o->dir, "%s", env);
        return 0;
    }
    snprintf(o->dir, sizeof o->dir, "/tmp/ds_plot_XXXXXX");
    return mkdtemp(o->dir) ? 0 : -1;
}

static void outdir_close(outdir *o)
{
    if (o->keep)
        return;
    DIR *d = opendir(o->dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", o->dir, e->d_name);
                remove(p);
            }
        closedir(d);
    }
    rmdir(o->dir);
}

/* Number of files in dir whose name contains s. */
static int count_files(const char *dir, const char *s)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, s) != NULL;
    closedir(d);
    return n;
}

/* Checks the PNG signature and reads IHDR's width and height. */
static int png_size(const char *path, int *w, int *h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char b[24];
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    size_t got = fread(b, 1, sizeof b, fp);
    fclose(fp);
    if (got != sizeof b || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4))
        return -1;
    *w = (int)((uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19]);
    *h = (int)((uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23]);
    return 0;
}

/* A decoded PNG: pixel (x, y) as r, g, b. */
typedef struct {
    cairo_surface_t *s;
    int w, h, stride;
    const unsigned char *d;
} png_img;

static int png_open(const char *path, png_img *im)
{
    im->s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(im->s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(im->s);
        return -1;
    }
    im->w = cairo_image_surface_get_width(im->s);
    im->h = cairo_image_surface_get_height(im->s);
    im->stride = cairo_image_surface_get_stride(im->s);
    im->d = cairo_image_surface_get_data(im->s);
    return 0;
}

static void png_rgb(const png_img *im, int x, int y, int *r, int *g, int *b)
{
    uint32_t p = *(const uint32_t *)(const void *)(im->d + (size_t)y * im->stride + 4 * (size_t)x);
    *r = p >> 16 & 255, *g = p >> 8 & 255, *b = p & 255;
}

/* Each channel within 40 of rgb. */
static int near_rgb(int r, int g, int b, const int *rgb)
{
    return abs(r - rgb[0]) < 40 && abs(g - rgb[1]) < 40 && abs(b - rgb[2]) < 40;
}

/* Counts pixels in [x0, x1) x [y0, y1) that are not white, that are near-black (all channels
 * < 40) and that are close to rgb (each channel within 40). -1 if the file cannot be read. */
typedef struct {
    long nonwhite, dark, match;
} pixstat;

static int png_pixels(const char *path, int x0, int y0, int x1, int y1, const int *rgb,
                      pixstat *ps)
{
    png_img im;
    if (png_open(path, &im))
        return -1;
    memset(ps, 0, sizeof *ps);
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < im.h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < im.w; x++) {
            int r, g, b;
            png_rgb(&im, x, y, &r, &g, &b);
            ps->nonwhite += r < 250 || g < 250 || b < 250;
            ps->dark += r < 40 && g < 40 && b < 40;
            if (rgb)
                ps->match += near_rgb(r, g, b, rgb);
        }
    cairo_surface_destroy(im.s);
    return 0;
}

/* Per column c < w of rows [y0, y1): how many pixels are close to rgb (as png_pixels). */
static int png_columns(const char *path, int y0, int y1, const int *rgb, long *count, int w)
{
    png_img im;
    if (png_open(path, &im))
        return -1;
    for (int x = 0; x < w; x++) {
        count[x] = 0;
        for (int y = y0 < 0 ? 0 : y0; x < im.w && y < y1 && y < im.h; y++) {
            int r, g, b;
            png_rgb(&im, x, y, &r, &g, &b);
            count[x] += near_rgb(r, g, b, rgb);
        }
    }
    cairo_surface_destroy(im.s);
    return 0;
}

static int check_png(const char *path, int w, int h, char *msg, size_t cap)
{
    int gw, gh;
    if (png_size(path, &gw, &gh)) {
        snprintf(msg, cap, "%s: missing or not a PNG", path);
        return 1;
    }
    if (gw != w || gh != h) {
        snprintf(msg, cap, "%s: %d x %d, expected %d x %d", path, gw, gh, w, h);
        return 1;
    }
    return 0;
}

/* fontconfig keeps its configuration until exit (cairo gives no way to release it), which
 * LeakSanitizer would report as a leak. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static const int blue[3] = {0x00, 0x72, 0xB2}, orange[3] = {0xE6, 0x9F, 0x00};

TEST(plot_learning_curve_log_y)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/learning_curve.png", o.dir);
    enum { N = 60 };
    double ep[N], tr[N], va[N];
    for (int i = 0; i < N; i++) {
        ep[i] = i + 1;
        tr[i] = 2.3 * exp(-i / 12.0) + 0.02 + 0.01 * sin(i * 1.7);
        va[i] = 2.4 * exp(-i / 15.0) + 0.08 + 0.002 * i;
    }
    va[20] = NAN;   /* a missing evaluation breaks the line */
    ds_figure *f = ds_figure_create(1, 1, 800, 500);
    CHECK(f);
    CHECK(ds_figure_title(f, "CNN on MNIST") == DS_OK);
    ds_axes *a = ds_figure_axes(f, 0);
    CHECK(a);
    ds_axes_labels(a, "Learning curve", "epoch", "cross-entropy loss");
    ds_axes_log_y(a, 1);
    CHECK(ds_axes_line(a, N, ep, tr, "train") == DS_OK);
    CHECK(ds_axes_line(a, N, ep, va, "validation") == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    ds_figure_free(f);
    CHECK_OK(check_png(path, 800, 500, msg_, cap_));
    pixstat ps;
    CHECK(png_pixels(path, 100, 60, 760, 430, blue, &ps) == 0);
    CHECK(ps.nonwhite > 2000 && ps.match > 300);
    CHECK(png_pixels(path, 100, 60, 760, 430, orange, &ps) == 0);
    CHECK(ps.match > 300);
    CHECK(count_files(o.dir, ".tmp.") == 0);
    outdir_close(&o);
    return TEST_PASS;
}

/* On a log x axis, points at 1, 10, 100 and 1000 sit equally far apart; points at 0 and -1
 * are not drawn; a reference line y = x becomes a curve without breaking the figure. */
TEST(plot_log_x_spaces_decades_equally)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/log_x.png", o.dir);
    double x[6] = {1, 10, 100, 1000, 0, -1}, y[6] = {5, 5, 5, 5, 5, 5};
    double lx[2] = {1, 1000}, ly[2] = {1, 1};
    ds_figure *f = ds_figure_create(1, 1, 800, 400);
    CHECK(f);
    ds_axes *a = ds_figure_axes(f, 0);
    ds_axes_labels(a, "log x", "SNR", "y");
    ds_axes_log_x(a, 1);
    ds_axes_xlim(a, 0.5, 2000);
    ds_axes_ylim(a, 0, 10);
    CHECK(ds_axes_scatter(a, 6, x, y, NULL, 5, 1) == DS_OK);
    CHECK(ds_axes_line(a, 2, lx, ly, NULL) == DS_OK);
    CHECK(ds_axes_refline(a, 0.01, 0, NULL) == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    ds_figure_free(f);
    CHECK_OK(check_png(path, 800, 400, msg_, cap_));
    /* the markers' columns: blue runs in the band around y = 5 (the line at y = 1 and the
     * grey refline are elsewhere) */
    static long cols[800];
    CHECK(png_columns(path, 150, 220, blue, cols, 800) == 0);
    double centre[8];
    int n = 0, run = -1;
    for (int c = 0; c <= 800; c++) {
        long m = c < 800 ? cols[c] : 0;
        if (m > 2 && run < 0)
            run = c;
        if (!(m > 2) && run >= 0) {
            if (n < 8)
                centre[n] = (run + c - 1) / 2.0;
            n++;
            run = -1;
        }
    }
    if (n != 4)
        FAIL("%d marker columns found, expected 4 (1, 10, 100, 1000)", n);
    double d1 = centre[1] - centre[0], d2 = centre[2] - centre[1], d3 = centre[3] - centre[2];
    if (!(d1 > 100) || fabs(d2 - d1) > 2 || fabs(d3 - d1) > 2)
        FAIL("decades %.1f, %.1f, %.1f pixels apart", d1, d2, d3);
    /* y = 0.01 x crosses y = 5 at x = 500 and leaves the top at 1000: a dashed grey curve
     * above the markers, right of 100 only */
    static const int grey[3] = {64, 64, 64};
    pixstat right, left;
    CHECK(png_pixels(path, (int)centre[2] + 8, 42, 780, 150, grey, &right) == 0);
    CHECK(png_pixels(path, 60, 42, (int)centre[2] - 8, 150, grey, &left) == 0);
    if (right.match < 40 || left.match > 0)
        FAIL("reference line: %ld grey pixels right of x = 100 above the markers, %ld left",
             right.match, left.match);
    outdir_close(&o);
    snprintf(msg_, cap_, "decades %.1f, %.1f, %.1f px apart", d1, d2, d3);
    return TEST_PASS;
}

TEST(plot_grid_scatter_refline_errorbar)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/grid.png", o.dir);
    ds_rng r;
    ds_rng_seed(&r, 11);
    enum { N = 400 };
    static double zt[N], zp[N], res[N], x[12], y[12], e[12], c[5], cy[5];
    float u[2 * N];
    fill_uniform(u, 2 * N, 0, 1, &r);
    for (int i = 0; i < N; i++) {
        zt[i] = 3.0 * u[i];
        zp[i] = zt[i] + 0.15 * (u[N + i] - 0.5) * (1 + zt[i]);
        res[i] = (zp[i] - zt[i]) / (1 + zt[i]);
    }
    for (int i = 0; i < 12; i++) {
        x[i] = 0.25 * i;
        y[i] = 1e-4 * (1 + 0.5 * sin(i));
        e[i] = 1e-5 * (1 + i % 3);
    }
    for (int i = 0; i < 5; i++) {
        c[i] = i;
        cy[i] = 0.7;   /* all equal: the y range must still be sane */
    }
    ds_figure *f = ds_figure_create(2, 2, 900, 700);
    CHECK(f);
    CHECK(ds_figure_title(f, "Photometric redshifts") == DS_OK);
    ds_axes *a0 = ds_figure_axes(f, 0), *a1 = ds_figure_axes(f, 1);
    ds_axes *a2 = ds_figure_axes(f, 2), *a3 = ds_figure_axes(f, 3);
    CHECK(a0 && a1 && a2 && a3);
    ds_axes_labels(a0, "Predicted vs true", "z true", "z predicted");
    CHECK(ds_axes_scatter(a0, N, zt, zp, "galaxies", 2.5, 0.5) == DS_OK);
    CHECK(ds_axes_refline(a0, 1, 0, "z_pred = z_true") == DS_OK);
    CHECK(ds_axes_refline(a0, 1.15, 0.15, "+15% (1 + z)") == DS_OK);
    ds_axes_labels(a1, "Residuals", "z true", "dz / (1 + z)");
    CHECK(ds_axes_scatter(a1, N, zt, res, NULL, 2, 0.6) == DS_OK);
    CHECK(ds_axes_refline(a1, 0, 0, NULL) == DS_OK);
    ds_axes_ylim(a1, -0.1, 0.1);
    ds_axes_labels(a2, "Flux with errors", "time [d]", "flux [Jy]");
    CHECK(ds_axes_errorbar(a2, 12, x, y, e, "measured") == DS_OK);
    ds_axes_labels(a3, "Constant series", "step", "value");
    CHECK(ds_axes_line(a3, 5, c, cy, "flat") == DS_OK);
    CHECK(ds_axes_scatter(a3, 5, c, cy, "points", 4, 1) == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    ds_figure_free(f);
    CHECK_OK(check_png(path, 900, 700, msg_, cap_));
    pixstat ps;
    /* each quadrant has drawing in it, and the scatter is in the palette's first colour */
    for (int q = 0; q < 4; q++) {
        int qx = (q % 2) * 450, qy = 30 + (q / 2) * 335;
        CHECK(png_pixels(path, qx + 80, qy + 40, qx + 430, qy + 280, NULL, &ps) == 0);
        if (ps.nonwhite < 500)
            FAIL("quadrant %d is nearly empty (%ld non-white pixels)", q, ps.nonwhite);
    }
    CHECK(png_pixels(path, 0, 30, 450, 365, blue, &ps) == 0);
    CHECK(ps.match > 200);
    outdir_close(&o);
    return TEST_PASS;
}

TEST(plot_image_mosaic)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/mosaic.png", o.dir);
    ds_figure *f = ds_figure_create(4, 4, 640, 680);
    CHECK(f);
    CHECK(ds_figure_title(f, "Galaxy cutouts (16 x 16)") == DS_OK);
    float img[16 * 16];
    for (int k = 0; k < 16; k++) {
        double cx = 7.5 + 3 * sin(k), cy = 7.5 + 3 * cos(1.3 * k), s = 1 + 0.25 * k;
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 16; j++)
                img[i * 16 + j] = (float)(100 * exp(-((i - cy) * (i - cy) + (j - cx) * (j - cx)) /
                                                    (2 * s * s)) + 0.5 * sin(i * j));
        char title[64];
        snprintf(title, sizeof title, "id %d  z=%.2f", 1000 + k, 0.1 * k);
        ds_axes *a = ds_figure_axes(f, k);
        CHECK(a);
        ds_axes_labels(a, title, NULL, NULL);
        CHECK(ds_axes_image(a, 16, 16, img, 0, 0, k % 2 ? 5.0 : 0) == DS_OK);
        if (k == 15) {   /* overlays use pixel coordinates, row 0 at the top */
            double px[1] = {cx}, py[1] = {cy};
            CHECK(ds_axes_scatter(a, 1, px, py, "centre", 3, 1) == DS_OK);
            ds_axes_labels(a, title, "column", "row");
        }
    }
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    ds_figure_free(f);
    CHECK_OK(check_png(path, 640, 680, msg_, cap_));
    pixstat ps;
    CHECK(png_pixels(path, 0, 0, 640, 680, NULL, &ps) == 0);
    CHECK(ps.dark > 640 * 680 / 10);   /* the black image backgrounds */
    CHECK(ps.nonwhite < 640L * 680 * 9 / 10);
    outdir_close(&o);
    return TEST_PASS;
}

/* Grey level of pixel (x, y), or -1. */
static int png_grey(const char *path, int x, int y)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    int v = -1;
    if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && x < cairo_image_surface_get_width(s) &&
        y < cairo_image_surface_get_height(s)) {
        const unsigned char *d = cairo_image_surface_get_data(s);
        size_t off = (size_t)y * (size_t)cairo_image_surface_get_stride(s) + 4 * (size_t)x;
        v = (int)(*(const uint32_t *)(const void *)(d + off) & 255);
    }
    cairo_surface_destroy(s);
    return v;
}

TEST(plot_image_scaling)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/ramp.png", o.dir);
    /* A 2 x 3 image scaled linearly between 0 and 5: 10 clips to white, NaN is black. */
    float img[6] = {0, 1, 2, 3, NAN, 10};
    ds_figure *f = ds_figure_create(1, 1, 300, 200);
    CHECK(f);
    CHECK(ds_axes_image(ds_figure_axes(f, 0), 2, 3, img, 0, 5, 0) == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    CHECK_OK(check_png(path, 300, 200, msg_, cap_));
    /* The 2 x 3 image keeps its aspect ratio and is centred, so the pixel centres are near
     * (150 +- 95, 100 +- 47). */
    CHECK_NEAR(png_grey(path, 150, 52), 51, 2);     /* 1 of 5 */
    CHECK_NEAR(png_grey(path, 55, 148), 153, 2);    /* 3 */
    CHECK_NEAR(png_grey(path, 150, 148), 0, 0);     /* NaN */
    CHECK_NEAR(png_grey(path, 245, 148), 255, 0);   /* 10, clipped */
    /* asinh with softening 1 between 0 and 5: asinh(1) / asinh(5) of the way up */
    CHECK(ds_axes_image(ds_figure_axes(f, 0), 2, 3, img, 0, 5, 1) == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    CHECK_NEAR(png_grey(path, 150, 52), 255 * asinh(1) / asinh(5), 1);
    /* lo == hi: the finite min (0) and max (10) */
    CHECK(ds_axes_image(ds_figure_axes(f, 0), 2, 3, img, 0, 0, 0) == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    CHECK_NEAR(png_grey(path, 245, 52), 51, 2);     /* 2 of 10 */
    ds_figure_free(f);
    outdir_close(&o);
    return TEST_PASS;
}

TEST(plot_edge_cases_do_not_crash)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/edge.png", o.dir);
    double x[4] = {1, 2, 3, 4}, big[4] = {1e300, -1e300, 2e300, 0}, neg[4] = {-1, -2, -3, -4};
    double tiny[4] = {1e-12, 2e-12, 3e-12, 4e-12};
    ds_figure *f = ds_figure_create(2, 3, 32, 32);   /* minuscule panels */
    CHECK(f);
    ds_axes_labels(ds_figure_axes(f, 0), "a very long title that cannot fit", "x label", "y");
    CHECK(ds_axes_line(ds_figure_axes(f, 0), 4, x, big, "huge") == DS_OK);
    float img[4] = {0, 1, 2, 3};
    CHECK(ds_axes_image(ds_figure_axes(f, 1), 2, 2, img, 0, 0, 0) == DS_OK);
    ds_axes_labels(ds_figure_axes(f, 1), "title", "x", "y");
    static float wide[2000];
    wide[7] = 1;
    CHECK(ds_axes_image(ds_figure_axes(f, 2), 1, 2000, wide, 0, 0, 0) == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    ds_figure_free(f);
    CHECK_OK(check_png(path, 32, 32, msg_, cap_));

    f = ds_figure_create(2, 3, 900, 500);
    CHECK(f);
    ds_axes *a = ds_figure_axes(f, 0);
    CHECK(ds_axes_line(a, 4, x, big, "huge") == DS_OK);
    a = ds_figure_axes(f, 1);   /* log axis with no positive values */
    ds_axes_log_y(a, 1);
    CHECK(ds_axes_line(a, 4, x, neg, "negative") == DS_OK);
    CHECK(ds_axes_refline(a, 1, 0, "y = x") == DS_OK);
    a = ds_figure_axes(f, 2);   /* flipped limits, tiny values */
    ds_axes_xlim(a, 5, 0);
    CHECK(ds_axes_scatter(a, 4, x, tiny, "tiny", 3, 1) == DS_OK);
    a = ds_figure_axes(f, 3);   /* a log axis spanning less than a decade, with errors */
    ds_axes_log_y(a, 1);
    double y[4] = {2, 3, 4, 5}, e[4] = {0.5, 3, 0, NAN};
    CHECK(ds_axes_errorbar(a, 4, x, y, e, "short range") == DS_OK);
    /* panel 4 stays empty; panel 5 has only a reference line */
    CHECK(ds_axes_refline(ds_figure_axes(f, 5), -2, 1, "y = 1 - 2x") == DS_OK);
    CHECK(ds_figure_save_png(f, path) == DS_OK);
    ds_figure_free(f);
    CHECK_OK(check_png(path, 900, 500, msg_, cap_));
    outdir_close(&o);
    return TEST_PASS;
}

#define EXPECT_ARG(call, word)                                                               \
    do {                                                                                     \
        if ((call) != DS_ERR_ARG)                                                            \
            FAIL("%s:%d: %s did not give DS_ERR_ARG", __FILE__, __LINE__, #call);            \
        if (!strstr(ds_last_error(), word))                                                  \
            FAIL("%s:%d: message '%s' lacks '%s'", __FILE__, __LINE__, ds_last_error(), word); \
    } while (0)

TEST(plot_argument_errors)
{
    CHECK(!ds_figure_create(0, 1, 100, 100) && strstr(ds_last_error(), "panels"));
    CHECK(!ds_figure_create(1, 1000, 100, 100));
    CHECK(!ds_figure_create(1, 1, 0, 100) && strstr(ds_last_error(), "size"));
    CHECK(!ds_figure_create(1, 1, 100, 1 << 20));
    ds_figure *f = ds_figure_create(1, 2, 400, 200);
    CHECK(f);
    CHECK(!ds_figure_axes(f, 2) && strstr(ds_last_error(), "panel 2"));
    CHECK(!ds_figure_axes(f, -1));
    CHECK(!ds_figure_axes(NULL, 0));
    ds_axes *a = ds_figure_axes(f, 0);
    double x[3] = {1, 2, 3}, y[3] = {1, 2, 3}, nan3[3] = {NAN, NAN, INFINITY};
    double e[3] = {0.1, -0.1, 0.1};
    float img[4] = {NAN, NAN, NAN, NAN}, ok4[4] = {0, 1, 2, 3};
    EXPECT_ARG(ds_axes_line(NULL, 3, x, y, NULL), "NULL");
    EXPECT_ARG(ds_axes_line(a, 0, x, y, NULL), "0 points");
    EXPECT_ARG(ds_axes_line(a, -5, x, y, NULL), "points");
    EXPECT_ARG(ds_axes_line(a, 3, NULL, y, NULL), "x array");
    EXPECT_ARG(ds_axes_line(a, 3, x, nan3, "val"), "finite");
    EXPECT_ARG(ds_axes_scatter(a, 3, nan3, y, NULL, 2, 1), "finite");
    EXPECT_ARG(ds_axes_scatter(a, 3, x, y, NULL, 0, 1), "radius");
    EXPECT_ARG(ds_axes_scatter(a, 3, x, y, NULL, NAN, 1), "radius");
    EXPECT_ARG(ds_axes_scatter(a, 3, x, y, NULL, 2, 0), "alpha");
    EXPECT_ARG(ds_axes_scatter(a, 3, x, y, NULL, 2, 1.5), "alpha");
    EXPECT_ARG(ds_axes_errorbar(a, 3, x, y, NULL, NULL), "yerr");
    EXPECT_ARG(ds_axes_errorbar(a, 3, x, y, e, NULL), "negative");
    EXPECT_ARG(ds_axes_refline(a, NAN, 0, NULL), "finite");
    EXPECT_ARG(ds_axes_refline(NULL, 1, 0, NULL), "NULL");
    EXPECT_ARG(ds_axes_image(a, 0, 2, ok4, 0, 0, 0), "pixels");
    EXPECT_ARG(ds_axes_image(a, 2, 2, NULL, 0, 0, 0), "NULL");
    EXPECT_ARG(ds_axes_image(a, 2, 2, img, 0, 0, 0), "finite");
    EXPECT_ARG(ds_axes_image(a, 2, 2, img, 0, 1, 0), "finite");
    EXPECT_ARG(ds_axes_image(a, 2, 2, ok4, NAN, 1, 0), "lo");
    EXPECT_ARG(ds_axes_image(a, 2, 2, ok4, 0, 1, -1), "asinh");
    EXPECT_ARG(ds_figure_save_png(NULL, "x.png"), "NULL");
    EXPECT_ARG(ds_figure_save_png(f, NULL), "path");
    EXPECT_ARG(ds_figure_title(NULL, "t"), "NULL");
    /* the void setters accept NULL axes */
    ds_axes_labels(NULL, "t", "x", "y");
    ds_axes_xlim(NULL, 0, 1);
    ds_axes_ylim(NULL, 0, 1);
    ds_axes_log_y(NULL, 1);
    ds_axes_log_x(NULL, 1);
    ds_figure_free(f);
    ds_figure_free(NULL);
    return TEST_PASS;
}

TEST(plot_save_is_atomic_and_reports_io_errors)
{
    if (!ds_has_feature("plot")) SKIP("needs plotting support (built with NO_PLOT=1)");
    outdir o;
    CHECK(outdir_open(&o) == 0);
    char path[1024], bad[1100];
    snprintf(path, sizeof path, "%s/atomic.png", o.dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.png", o.dir);
    FILE *fp = fopen(path, "wb");
    CHECK(fp);
    fputs("old contents", fp);
    fclose(fp);
    ds_figure *f = ds_figure_create(1, 1, 200, 150);
    CHECK(f);
    double x[2] = {0, 1};
    CHECK(ds_axes_line(ds_figure_axes(f, 0), 2, x, x, "y = x") == DS_OK);
    CHECK(ds_figure_save_png(f, bad) == DS_ERR_IO);
    CHECK(strstr(ds_last_error(), "no/such/dir"));
    CHECK(ds_figure_save_png(f, path) == DS_OK);   /* replaces the old file */
    ds_figure_free(f);
    CHECK_OK(check_png(path, 200, 150, msg_, cap_));
    CHECK(count_files(o.dir, ".tmp.") == 0);
    outdir_close(&o);
    return TEST_PASS;
}
