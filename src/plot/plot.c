/* plot.c - figures as PNG through cairo: panels with frames, nice ticks, labels, legends,
 * lines, scatter, error bars, reference lines, grey-scale and colour-mapped images with
 * overlays and colour bars; atomic saving. */
#include "../internal.h"
#include "../io/io.h"

#ifndef DS_NO_PLOT
#include <errno.h>
#include <cairo.h>
#endif
#include <math.h>
#include <stdint.h>

#define FIG_MAX_PANELS 64      /* rows and cols each */
#define FIG_MIN_PIXELS 32
#define FIG_MAX_PIXELS 16384
#define TICK_MAX 64
#define MINUS "\xe2\x88\x92"   /* U+2212, the typographic minus sign */

typedef enum { SER_LINE, SER_SCATTER, SER_ERRORBAR, SER_REFLINE, SER_TEXT } ser_kind;

typedef struct {
    ser_kind kind;
    int64_t n;
    double *x, *y, *e;     /* one allocation, x first; e only for error bars */
    char *label;           /* NULL: not in the legend; SER_TEXT: the text (never in it) */
    int color;             /* palette index; reflines use grey and a dash pattern instead */
    int dash;
    double size, alpha;    /* scatter */
    double slope, icept;   /* refline */
} series;

struct ds_axes {
    ds_figure *fig;
    char *title, *xlabel, *ylabel;
    int has_xlim, has_ylim, log_x, log_y;
    double xlim[2], ylim[2];
    series *ser;
    int nser, cap, ncolor, nref;
    uint32_t *img;         /* 0xRRGGBB after scaling, rows x cols, row 0 at the top */
    int64_t img_rows, img_cols;
    int cmap;              /* the colour map of the last image or overlay (ds_colormap) */
    double cmap_lo, cmap_hi;   /* and its range */
    int cbar;              /* draw a colour bar of it right of the image */
};

struct ds_figure {
    int rows, cols, width, height;
    char *title;
    ds_axes *axes;
    ds_status deferred;    /* an allocation failure in a void setter, reported by save */
};

/* Okabe-Ito: distinguishable with the common colour-vision deficiencies. Yellow comes last
 * because it has little contrast on white. */
static const double palette[][3] = {
    {0x00 / 255.0, 0x72 / 255.0, 0xB2 / 255.0},   /* blue */
    {0xE6 / 255.0, 0x9F / 255.0, 0x00 / 255.0},   /* orange */
    {0x00 / 255.0, 0x9E / 255.0, 0x73 / 255.0},   /* bluish green */
    {0xD5 / 255.0, 0x5E / 255.0, 0x00 / 255.0},   /* vermillion */
    {0xCC / 255.0, 0x79 / 255.0, 0xA7 / 255.0},   /* reddish purple */
    {0x56 / 255.0, 0xB4 / 255.0, 0xE9 / 255.0},   /* sky blue */
    {0x00 / 255.0, 0x00 / 255.0, 0x00 / 255.0},   /* black */
    {0xF0 / 255.0, 0xE4 / 255.0, 0x42 / 255.0},   /* yellow */
};
#define NPALETTE ((int)(sizeof palette / sizeof palette[0]))

/* ---------------------------------------------------------------------------------------- *
 * Building a figure
 * ---------------------------------------------------------------------------------------- */
ds_figure *ds_figure_create(int rows, int cols, int width, int height)
{
    if (rows < 1 || cols < 1 || rows > FIG_MAX_PANELS || cols > FIG_MAX_PANELS) {
        dsi_fail(DS_ERR_ARG, "figure: %d x %d panels (rows and cols must be in 1..%d)", rows,
                 cols, FIG_MAX_PANELS);
        return NULL;
    }
    if (width < FIG_MIN_PIXELS || height < FIG_MIN_PIXELS || width > FIG_MAX_PIXELS ||
        height > FIG_MAX_PIXELS) {
        dsi_fail(DS_ERR_ARG, "figure: size %d x %d pixels (each side must be in %d..%d)", width,
                 height, FIG_MIN_PIXELS, FIG_MAX_PIXELS);
        return NULL;
    }
    ds_figure *f = calloc(1, sizeof *f);
    if (f)
        f->axes = calloc((size_t)rows * (size_t)cols, sizeof *f->axes);
    if (!f || !f->axes) {
        free(f);
        dsi_fail(DS_ERR_NOMEM, "figure: out of memory for %d x %d panels", rows, cols);
        return NULL;
    }
    f->rows = rows;
    f->cols = cols;
    f->width = width;
    f->height = height;
    for (int i = 0; i < rows * cols; i++)
        f->axes[i].fig = f;
    return f;
}

static void series_free(series *s)
{
    free(s->x);
    free(s->label);
}

void ds_figure_free(ds_figure *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->rows * f->cols; i++) {
        ds_axes *a = &f->axes[i];
        for (int k = 0; k < a->nser; k++)
            series_free(&a->ser[k]);
        free(a->ser);
        free(a->title);
        free(a->xlabel);
        free(a->ylabel);
        free(a->img);
    }
    free(f->axes);
    free(f->title);
    free(f);
}

/* Replaces *dst by a copy of s (NULL or "" clears). Returns 0, or -1 when out of memory. */
static int set_text(char **dst, const char *s)
{
    char *c = NULL;
    if (s && *s && !(c = dsi_strdup(s)))
        return -1;
    free(*dst);
    *dst = c;
    return 0;
}

ds_status ds_figure_title(ds_figure *f, const char *title)
{
    if (!f)
        return dsi_fail(DS_ERR_ARG, "ds_figure_title: figure is NULL");
    if (set_text(&f->title, title))
        return dsi_fail(DS_ERR_NOMEM, "ds_figure_title: out of memory");
    return DS_OK;
}

ds_axes *ds_figure_axes(ds_figure *f, int i)
{
    if (!f) {
        dsi_fail(DS_ERR_ARG, "ds_figure_axes: figure is NULL");
        return NULL;
    }
    if (i < 0 || i >= f->rows * f->cols) {
        dsi_fail(DS_ERR_ARG, "ds_figure_axes: panel %d does not exist (the figure has %d x %d = %d)",
                 i, f->rows, f->cols, f->rows * f->cols);
        return NULL;
    }
    return &f->axes[i];
}

void ds_axes_labels(ds_axes *a, const char *title, const char *xlabel, const char *ylabel)
{
    if (!a)
        return;
    if (set_text(&a->title, title) || set_text(&a->xlabel, xlabel) ||
        set_text(&a->ylabel, ylabel))
        a->fig->deferred = dsi_fail(DS_ERR_NOMEM, "ds_axes_labels: out of memory");
}

/* Limits that are not finite or equal restore the automatic ones; lo > hi flips the axis. */
void ds_axes_xlim(ds_axes *a, double lo, double hi)
{
    if (!a)
        return;
    a->has_xlim = isfinite(lo) && isfinite(hi) && lo != hi;
    a->xlim[0] = lo;
    a->xlim[1] = hi;
}

void ds_axes_ylim(ds_axes *a, double lo, double hi)
{
    if (!a)
        return;
    a->has_ylim = isfinite(lo) && isfinite(hi) && lo != hi;
    a->ylim[0] = lo;
    a->ylim[1] = hi;
}

void ds_axes_log_y(ds_axes *a, int on)
{
    if (a)
        a->log_y = on != 0;
}

void ds_axes_log_x(ds_axes *a, int on)
{
    if (a)
        a->log_x = on != 0;
}

static ds_status check_axes(const ds_axes *a, const char *fn)
{
    if (!a)
        return dsi_fail(DS_ERR_ARG, "%s: axes is NULL (see ds_figure_axes)", fn);
    return DS_OK;
}

/* Checks the arrays, then appends a series holding copies of them. */
static ds_status add_series(ds_axes *a, const char *fn, ser_kind kind, int64_t n,
                            const double *x, const double *y, const double *e, const char *label,
                            series **out)
{
    ds_status st;
    if ((st = check_axes(a, fn)) != DS_OK)
        return st;
    if (n <= 0)
        return dsi_fail(DS_ERR_ARG, "%s: %lld points (need at least one)", fn, (long long)n);
    if (n > (int64_t)(SIZE_MAX / (3 * sizeof(double))))
        return dsi_fail(DS_ERR_ARG, "%s: %lld points is too many", fn, (long long)n);
    if (!x || !y || (kind == SER_ERRORBAR && !e))
        return dsi_fail(DS_ERR_ARG, "%s: %s array is NULL", fn, !x ? "x" : !y ? "y" : "yerr");
    int64_t finite = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(x[i]) && isfinite(y[i]))
            finite++;
        if (e && e[i] < 0)
            return dsi_fail(DS_ERR_ARG, "%s: yerr[%lld] = %g is negative", fn, (long long)i, e[i]);
    }
    if (!finite)
        return dsi_fail(DS_ERR_ARG, "%s%s%s%s: none of the %lld points is finite (all NaN or Inf)",
                        fn, label ? " '" : "", label ? label : "", label ? "'" : "", (long long)n);
    if (a->nser == a->cap) {
        int cap = a->cap ? 2 * a->cap : 4;
        series *s = realloc(a->ser, (size_t)cap * sizeof *s);
        if (!s)
            return dsi_fail(DS_ERR_NOMEM, "%s: out of memory", fn);
        a->ser = s;
        a->cap = cap;
    }
    series s = {.kind = kind, .n = n};
    size_t bytes = (size_t)n * sizeof(double);
    s.x = malloc(bytes * (e ? 3 : 2));
    if (!s.x || set_text(&s.label, label)) {
        free(s.x);
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for %lld points", fn, (long long)n);
    }
    s.y = s.x + n;
    memcpy(s.x, x, bytes);
    memcpy(s.y, y, bytes);
    if (e) {
        s.e = s.y + n;
        memcpy(s.e, e, bytes);
    }
    s.color = a->ncolor++ % NPALETTE;
    a->ser[a->nser] = s;
    *out = &a->ser[a->nser++];
    return DS_OK;
}

ds_status ds_axes_line(ds_axes *a, int64_t n, const double *x, const double *y, const char *label)
{
    series *s = NULL;
    return add_series(a, "ds_axes_line", SER_LINE, n, x, y, NULL, label, &s);
}

ds_status ds_axes_scatter(ds_axes *a, int64_t n, const double *x, const double *y,
                          const char *label, double size, double alpha)
{
    if (!(size > 0 && size <= 1000))
        return dsi_fail(DS_ERR_ARG, "ds_axes_scatter: marker radius %g pixels (must be in (0, 1000])",
                        size);
    if (!(alpha > 0 && alpha <= 1))
        return dsi_fail(DS_ERR_ARG, "ds_axes_scatter: alpha %g (must be in (0, 1])", alpha);
    series *s = NULL;
    ds_status st = add_series(a, "ds_axes_scatter", SER_SCATTER, n, x, y, NULL, label, &s);
    if (st == DS_OK) {
        s->size = size;
        s->alpha = alpha;
    }
    return st;
}

ds_status ds_axes_errorbar(ds_axes *a, int64_t n, const double *x, const double *y,
                           const double *yerr, const char *label)
{
    series *s = NULL;
    return add_series(a, "ds_axes_errorbar", SER_ERRORBAR, n, x, y, yerr, label, &s);
}

/* A text is a one-point series whose label is drawn at the point, not in the legend. */
ds_status ds_axes_text(ds_axes *a, double x, double y, const char *text, int white)
{
    if (!text || !*text)
        return dsi_fail(DS_ERR_ARG, "ds_axes_text: no text");
    series *s = NULL;
    ds_status st = add_series(a, "ds_axes_text", SER_TEXT, 1, &x, &y, NULL, text, &s);
    if (st == DS_OK) {
        s->dash = white != 0;
        a->ncolor--;   /* a text takes no palette colour */
    }
    return st;
}

/* Reference lines are dark grey and take no palette colour; successive ones differ in their
 * dash pattern. */
ds_status ds_axes_refline(ds_axes *a, double slope, double intercept, const char *label)
{
    ds_status st;
    if ((st = check_axes(a, "ds_axes_refline")) != DS_OK)
        return st;
    if (!isfinite(slope) || !isfinite(intercept))
        return dsi_fail(DS_ERR_ARG, "ds_axes_refline: slope %g and intercept %g must be finite",
                        slope, intercept);
    if (a->nser == a->cap) {
        int cap = a->cap ? 2 * a->cap : 4;
        series *s = realloc(a->ser, (size_t)cap * sizeof *s);
        if (!s)
            return dsi_fail(DS_ERR_NOMEM, "ds_axes_refline: out of memory");
        a->ser = s;
        a->cap = cap;
    }
    series s = {.kind = SER_REFLINE, .slope = slope, .icept = intercept, .dash = a->nref};
    if (set_text(&s.label, label))
        return dsi_fail(DS_ERR_NOMEM, "ds_axes_refline: out of memory");
    a->nref++;
    a->ser[a->nser++] = s;
    return DS_OK;
}

/* ---- colour maps ---- */
/* Anchors at t = 0, 1/8, ..., 1, interpolated linearly. Sequential: viridis (perceptually
 * uniform, readable in grey and by the colour-blind); diverging: ColorBrewer's RdBu
 * reversed, blue (negative) through near-white (0) to red (positive). */
static const unsigned char cmap_anchor[2][9][3] = {
    {{5, 48, 97}, {33, 102, 172}, {67, 147, 195}, {146, 197, 222}, {247, 247, 247},
     {244, 165, 130}, {214, 96, 77}, {178, 24, 43}, {103, 0, 31}},
    {{68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
     {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}},
};

/* The colour of t in [0, 1] under map m, as 0xRRGGBB. */
static uint32_t cmap_rgb(int m, double t)
{
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    if (m == DS_CMAP_GREY) {
        uint32_t g = (uint32_t)lrint(t * 255);
        return g << 16 | g << 8 | g;
    }
    const unsigned char (*a)[3] = cmap_anchor[m == DS_CMAP_SEQUENTIAL];
    double u = t * 8;
    int k = u >= 8 ? 7 : (int)u;
    double f = u - k;
    uint32_t c = 0;
    for (int ch = 0; ch < 3; ch++)
        c = c << 8 | (uint32_t)lrint(a[k][ch] + f * (a[k + 1][ch] - a[k][ch]));
    return c;
}

/* Checks an image's arguments and finds its range: lo == hi means from the data (min and
 * max; symmetric about 0 for a diverging map). */
static ds_status image_range(const char *fn, int64_t rows, int64_t cols, const float *img,
                             int cmap, double *lo, double *hi)
{
    if (rows < 1 || cols < 1 || rows > 32767 || cols > 32767)
        return dsi_fail(DS_ERR_ARG, "%s: %lld x %lld pixels (each side must be in 1..32767)",
                        fn, (long long)rows, (long long)cols);
    if (!img)
        return dsi_fail(DS_ERR_ARG, "%s: image is NULL", fn);
    if ((unsigned)cmap > DS_CMAP_SEQUENTIAL)
        return dsi_fail(DS_ERR_ARG, "%s: unknown colour map %d", fn, cmap);
    int64_t n = rows * cols;
    double mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(img[i])) {
            mn = fmin(mn, img[i]);
            mx = fmax(mx, img[i]);
        }
    if (mn > mx)
        return dsi_fail(DS_ERR_ARG, "%s: none of the %lld x %lld pixels is finite", fn,
                        (long long)rows, (long long)cols);
    if (*lo == *hi) {
        double m = fmax(fabs(mn), fabs(mx));
        *lo = cmap == DS_CMAP_DIVERGING ? -m : mn;
        *hi = cmap == DS_CMAP_DIVERGING ? m : mx;
    }
    return DS_OK;
}

/* The place of v in [lo, hi] (linear, or asinh with softening s > 0), clipped to [0, 1];
 * NaN: -1. A flat range gives 0.5. */
static double image_t(double v, double lo, double hi, double s)
{
    if (!isfinite(v))
        return -1;
    double den = s > 0 ? asinh((hi - lo) / s) : hi - lo;
    if (den == 0)
        return 0.5;
    double t = (s > 0 ? asinh((v - lo) / s) : v - lo) / den;
    return t < 0 ? 0 : t > 1 ? 1 : t;
}

static ds_status set_image(ds_axes *a, const char *fn, int64_t rows, int64_t cols,
                           const float *img, double lo, double hi, double asinh_soft, int cmap)
{
    ds_status st;
    if ((st = check_axes(a, fn)) != DS_OK)
        return st;
    if (!isfinite(lo) || !isfinite(hi) || !isfinite(asinh_soft) || asinh_soft < 0)
        return dsi_fail(DS_ERR_ARG, "%s: lo %g, hi %g, asinh %g (must be finite, asinh >= 0)",
                        fn, lo, hi, asinh_soft);
    if ((st = image_range(fn, rows, cols, img, cmap, &lo, &hi)) != DS_OK)
        return st;
    int64_t n = rows * cols;
    uint32_t *g = malloc((size_t)n * sizeof *g);
    if (!g)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for %lld x %lld pixels", fn,
                        (long long)rows, (long long)cols);
    /* Linear: t = (v - lo) / (hi - lo). asinh (Lupton et al. 1999): t = asinh((v - lo) / s) /
     * asinh((hi - lo) / s). Both clipped to [0, 1]; NaN pixels are black. A constant image
     * (lo == hi after min/max) is mid-grey. */
    for (int64_t i = 0; i < n; i++) {
        double t = image_t(img[i], lo, hi, asinh_soft);
        g[i] = t < 0 ? 0 : cmap_rgb(cmap, t);
    }
    free(a->img);
    a->img = g;
    a->img_rows = rows;
    a->img_cols = cols;
    a->cmap = cmap;
    a->cmap_lo = lo;
    a->cmap_hi = hi;
    return DS_OK;
}

/* Series added to an image panel are drawn in pixel coordinates: x = column, y = row (row 0 at
 * the top), pixel centres at whole numbers. */
ds_status ds_axes_image(ds_axes *a, int64_t rows, int64_t cols, const float *img, double lo,
                        double hi, double asinh_soft)
{
    return set_image(a, "ds_axes_image", rows, cols, img, lo, hi, asinh_soft, DS_CMAP_GREY);
}

ds_status ds_axes_image_cmap(ds_axes *a, int64_t rows, int64_t cols, const float *img,
                             double lo, double hi, ds_colormap cmap)
{
    return set_image(a, "ds_axes_image_cmap", rows, cols, img, lo, hi, 0, (int)cmap);
}

ds_status ds_axes_image_overlay(ds_axes *a, int64_t rows, int64_t cols, const float *img,
                                double lo, double hi, ds_colormap cmap, double alpha)
{
    const char *fn = "ds_axes_image_overlay";
    ds_status st;
    if ((st = check_axes(a, fn)) != DS_OK)
        return st;
    if (!a->img || a->img_rows != rows || a->img_cols != cols)
        return dsi_fail(DS_ERR_ARG, "%s: %lld x %lld pixels over %s", fn, (long long)rows,
                        (long long)cols, a->img ? "an image of another size" : "no image");
    if (!isfinite(lo) || !isfinite(hi) || !(alpha >= 0 && alpha <= 1))
        return dsi_fail(DS_ERR_ARG, "%s: lo %g, hi %g, alpha %g (finite, alpha in [0, 1])",
                        fn, lo, hi, alpha);
    if ((st = image_range(fn, rows, cols, img, (int)cmap, &lo, &hi)) != DS_OK)
        return st;
    /* The opacity grows with the value's weight: t for a sequential map (low values let the
     * image show), |2t - 1| for a diverging one (zero is clear), 1 for grey. */
    for (int64_t i = 0; i < rows * cols; i++) {
        double t = image_t(img[i], lo, hi, 0);
        if (t < 0)
            continue;
        double w = alpha * (cmap == DS_CMAP_SEQUENTIAL ? t
                            : cmap == DS_CMAP_DIVERGING ? fabs(2 * t - 1) : 1);
        uint32_t c = cmap_rgb((int)cmap, t), b = a->img[i], o = 0;
        for (int sh = 16; sh >= 0; sh -= 8) {
            double v = (1 - w) * ((b >> sh) & 255) + w * ((c >> sh) & 255);
            o |= (uint32_t)lrint(v) << sh;
        }
        a->img[i] = o;
    }
    a->cmap = (int)cmap;
    a->cmap_lo = lo;
    a->cmap_hi = hi;
    return DS_OK;
}

ds_status ds_axes_colorbar(ds_axes *a)
{
    ds_status st;
    if ((st = check_axes(a, "ds_axes_colorbar")) != DS_OK)
        return st;
    if (!a->img)
        return dsi_fail(DS_ERR_ARG, "ds_axes_colorbar: the panel holds no image");
    a->cbar = 1;
    return DS_OK;
}

#ifndef DS_NO_PLOT   /* everything below draws through cairo */
/* ---------------------------------------------------------------------------------------- *
 * Text
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    char txt[48];
    char sup[16];          /* exponent drawn raised and smaller after txt ("" if none) */
} tlabel;

static void set_font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s, double size, int bold)
{
    cairo_text_extents_t e;
    set_font(cr, size, bold);
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Height of a line of text (ascent + descent). */
static double line_height(cairo_t *cr, double size, int bold)
{
    cairo_font_extents_t fe;
    set_font(cr, size, bold);
    cairo_font_extents(cr, &fe);
    return fe.ascent + fe.descent;
}

/* The largest size <= size (and >= 5) at which s fits in width. */
static double fit_size(cairo_t *cr, const char *s, double size, int bold, double width)
{
    double w = text_width(cr, s, size, bold);
    if (w > width && width > 0)
        size = fmax(5, size * width / w);
    return size;
}

enum { VA_TOP, VA_CENTER, VA_BOTTOM };

/* Draws s anchored at (x, y): ha 0 left, 0.5 centre, 1 right; va by its line box (or, for
 * VA_CENTER, by the height of digits so numbers sit centred on ticks); rotated by angle. */
static void draw_text(cairo_t *cr, const char *s, double size, int bold, double x, double y,
                      double ha, int va, double angle)
{
    cairo_font_extents_t fe;
    cairo_text_extents_t te, digit;
    set_font(cr, size, bold);
    cairo_font_extents(cr, &fe);
    cairo_text_extents(cr, s, &te);
    double base;
    if (va == VA_TOP)
        base = fe.ascent;
    else if (va == VA_BOTTOM)
        base = -fe.descent;
    else if (angle != 0)
        base = (fe.ascent - fe.descent) / 2;
    else {
        cairo_text_extents(cr, "0", &digit);
        base = digit.height / 2;
    }
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ha * te.x_advance, base);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static double label_width(cairo_t *cr, const tlabel *l, double size)
{
    double w = text_width(cr, l->txt, size, 0);
    if (l->sup[0])
        w += text_width(cr, l->sup, size * 0.7, 0) + size * 0.05;
    return w;
}

static void draw_label(cairo_t *cr, const tlabel *l, double size, double x, double y, double ha,
                       int va)
{
    double w = label_width(cr, l, size);
    double x0 = x - ha * w;
    draw_text(cr, l->txt, size, 0, x0, y, 0, va, 0);
    if (l->sup[0]) {
        double wt = text_width(cr, l->txt, size, 0) + size * 0.05;
        draw_text(cr, l->sup, size * 0.7, 0, x0 + wt, y - size * 0.42, 0, va, 0);
    }
}

/* ---------------------------------------------------------------------------------------- *
 * Ticks
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    int n, nminor;
    double v[TICK_MAX];        /* in axis units (log10 of the value on a log axis) */
    tlabel lab[TICK_MAX];      /* empty txt: tick without a label */
    double minor[TICK_MAX];
} ticks;

/* Copies src into dst with '-' written as a typographic minus. */
static void put_minus(char *dst, size_t cap, const char *src)
{
    size_t k = 0;
    for (; *src && k + 4 < cap; src++) {
        if (*src == '-') {
            memcpy(dst + k, MINUS, 3);
            k += 3;
        } else {
            dst[k++] = *src;
        }
    }
    dst[k] = 0;
}

/* v = m x 10^e with m printed to `digits` decimals: "m×10" with superscript e, or (bare_ten)
 * just 10^e when m is 1. */
static void fmt_sci(double v, int e, int digits, int bare_ten, tlabel *l)
{
    char buf[48];
    double m = v / pow(10, e);
    if (bare_ten && fabs(fabs(m) - 1) < 1e-9)
        snprintf(buf, sizeof buf, "%s10", m < 0 ? "-" : "");
    else
        snprintf(buf, sizeof buf, "%.*f\xc3\x97" "10", digits, m);
    put_minus(l->txt, sizeof l->txt, buf);
    snprintf(buf, sizeof buf, "%d", e);
    put_minus(l->sup, sizeof l->sup, buf);
}

/* Labels for ticks step apart. Fixed notation with exactly the decimals the step needs (no
 * 0.30000000000000004); scientific for every label when any fixed one would be long. */
static void fmt_linear_ticks(ticks *t, double step)
{
    int se = (int)floor(log10(step) + 1e-9);
    int dec = se < 0 ? -se : 0;
    int sci = 0;
    char buf[64];
    for (int i = 0; i < t->n; i++) {
        if (fabs(t->v[i]) < step * 1e-6)
            t->v[i] = 0;
        int len = snprintf(buf, sizeof buf, "%.*f", dec, fabs(t->v[i]));
        if (len > 6)
            sci = 1;
    }
    double maxabs = 0;
    for (int i = 0; i < t->n; i++)
        maxabs = fmax(maxabs, fabs(t->v[i]));
    /* one exponent for the whole axis, so the mantissas line up */
    int e = maxabs > 0 ? (int)floor(log10(maxabs) + 1e-9) : 0;
    for (int i = 0; i < t->n; i++) {
        double v = t->v[i];
        if (sci && v != 0) {
            fmt_sci(v, e, e - se > 0 ? e - se : 0, 0, &t->lab[i]);
        } else {
            snprintf(buf, sizeof buf, "%.*f", dec, v);
            put_minus(t->lab[i].txt, sizeof t->lab[i].txt, buf);
            t->lab[i].sup[0] = 0;
        }
    }
}

/* Ticks at the multiples of step in [lo, hi]. */
static void linear_ticks(ticks *t, double lo, double hi, double step)
{
    double k0 = ceil(lo / step - 1e-9);
    t->n = t->nminor = 0;
    for (double k = k0; t->n < TICK_MAX && k * step <= hi + step * 1e-9; k++)
        t->v[t->n++] = k * step;
    fmt_linear_ticks(t, step);
}

/* The smallest step of 1, 2 or 5 x 10^k that is at least raw. */
static double nice_step(double raw)
{
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r <= 1 + 1e-9 ? 1 : r <= 2 + 1e-9 ? 2 : r <= 5 + 1e-9 ? 5 : 10) * mag;
}

/* Log axis in log10 units [lo, hi]: decades (labelled every `every`), 2..9 x 10^k as minor
 * ticks. When the range is under two decades wide (1.8 with two decades inside), 1, 2, 5
 * (then 1..9) x 10^k are labelled; failing that, linear ticks on the values. */
static void log_ticks(ticks *t, double lo, double hi, int max_labels)
{
    t->n = t->nminor = 0;
    int d0 = (int)ceil(lo - 1e-9), d1 = (int)floor(hi + 1e-9);
    int ndec = d1 - d0 + 1;
    if (ndec >= 3 || (ndec == 2 && hi - lo >= 1.8)) {
        int every = (ndec + max_labels - 1) / (max_labels > 0 ? max_labels : 1);
        if (every < 1)
            every = 1;
        for (int d = d0; d <= d1 && t->n < TICK_MAX; d++) {
            t->v[t->n] = d;
            if (d % every == 0) {
                fmt_sci(pow(10, d), d, 0, 1, &t->lab[t->n]);
            } else {
                t->lab[t->n].txt[0] = 0;
                t->lab[t->n].sup[0] = 0;
            }
            t->n++;
        }
        if (ndec <= 12)
            for (int d = d0 - 1; d <= d1; d++)
                for (int m = 2; m <= 9 && t->nminor < TICK_MAX; m++) {
                    double u = d + log10(m);
                    if (u >= lo && u <= hi)
                        t->minor[t->nminor++] = u;
                }
        return;
    }
    static const int sets[2][9] = {{1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nset[2] = {3, 9};
    for (int s = 0; s < 2; s++) {
        t->n = 0;
        for (int d = d0 - 1; d <= d1; d++)
            for (int j = 0; j < nset[s] && t->n < TICK_MAX; j++) {
                double u = d + log10(sets[s][j]);
                if (u >= lo - 1e-9 && u <= hi + 1e-9)
                    t->v[t->n++] = u;
            }
        if (t->n >= 3 && t->n <= max_labels + 1)
            break;
        if (s == 1 && t->n > max_labels + 1) {   /* too crowded: back to 1, 2, 5 */
            t->n = 0;
            for (int d = d0 - 1; d <= d1; d++)
                for (int j = 0; j < nset[0] && t->n < TICK_MAX; j++) {
                    double u = d + log10(sets[0][j]);
                    if (u >= lo - 1e-9 && u <= hi + 1e-9)
                        t->v[t->n++] = u;
                }
        }
    }
    if (t->n < 2) {
        linear_ticks(t, pow(10, lo), pow(10, hi), nice_step((pow(10, hi) - pow(10, lo)) / 4));
        for (int i = 0; i < t->n; i++)
            t->v[i] = t->v[i] > 0 ? log10(t->v[i]) : -HUGE_VAL;
        int k = 0;   /* drop ticks at 0 or below, which a log axis cannot show */
        for (int i = 0; i < t->n; i++)
            if (isfinite(t->v[i])) {
                t->v[k] = t->v[i];
                t->lab[k++] = t->lab[i];
            }
        t->n = k;
        return;
    }
    for (int i = 0; i < t->n; i++) {
        double v = pow(10, t->v[i]);
        int e = (int)floor(t->v[i] + 1e-9);
        if (e >= -3 && e <= 4) {
            char buf[48];
            snprintf(buf, sizeof buf, "%.*f", e < 0 ? -e : 0, v);
            snprintf(t->lab[i].txt, sizeof t->lab[i].txt, "%s", buf);
            t->lab[i].sup[0] = 0;
        } else {
            fmt_sci(v, e, 0, 1, &t->lab[i]);
        }
    }
}

/* ---------------------------------------------------------------------------------------- *
 * Layout and mapping
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    double x0, y0, x1, y1;        /* plot area in pixels, y0 at the top */
    double xl, xr, yb, yt;        /* axis units at the left, right, bottom, top edges */
    int logx, logy;
} frame;

static double map_xu(const frame *p, double u)
{
    return p->x0 + (u - p->xl) / (p->xr - p->xl) * (p->x1 - p->x0);
}

/* NaN when x cannot be shown (not finite, or <= 0 on a log axis). */
static double map_x(const frame *p, double x)
{
    if (p->logx)
        x = x > 0 ? log10(x) : NAN;
    return isfinite(x) ? map_xu(p, x) : NAN;
}

/* The data value at axis unit u (10^u on a log axis). */
static double x_value(const frame *p, double u) { return p->logx ? pow(10, u) : u; }

static double map_yu(const frame *p, double u)
{
    return p->y1 - (u - p->yb) / (p->yt - p->yb) * (p->y1 - p->y0);
}

/* NaN when y cannot be shown (not finite, or <= 0 on a log axis). */
static double map_y(const frame *p, double y)
{
    if (p->logy)
        y = y > 0 ? log10(y) : NAN;
    return isfinite(y) ? map_yu(p, y) : NAN;
}

/* Pixel coordinates of point i, or 0 when it cannot be drawn. */
static int point_px(const frame *p, const series *s, int64_t i, double *px, double *py)
{
    if (!isfinite(s->x[i]))
        return 0;
    *px = map_x(p, s->x[i]);
    *py = map_y(p, s->y[i]);
    return isfinite(*px) && isfinite(*py) && fabs(*px) < 1e7 && fabs(*py) < 1e7;
}

/* Data range [lo, hi] -> limits with 5% margins; a single value gets +-10% (+-1 at zero). */
static void pad_range(double *lo, double *hi, double unit_if_zero)
{
    if (!(*lo <= *hi)) {
        *lo = 0;
        *hi = unit_if_zero;
        return;
    }
    double span = *hi - *lo, mag = fmax(fabs(*lo), fabs(*hi));
    if (!isfinite(span * 1.2))   /* near the end of the double range: no margins */
        return;
    if (span <= mag * 1e-12) {
        double d = mag > 0 ? 0.1 * mag : unit_if_zero;
        *lo -= d;
        *hi += d;
        return;
    }
    *lo -= 0.05 * span;
    *hi += 0.05 * span;
}

/* A log axis' range in log10 units with 5% margins; a single value gets half a decade on
 * each side, no data [0, 1]. */
static void pad_log_range(double *lo, double *hi)
{
    if (!(*lo <= *hi)) {
        *lo = 0;
        *hi = 1;
    } else if (*hi - *lo < 1e-9) {
        *lo -= 0.5;
        *hi += 0.5;
    } else {
        double span = *hi - *lo;
        *lo -= 0.05 * span;
        *hi += 0.05 * span;
    }
}

/* Axis limits: user limits, else the finite data (with y +- yerr) plus margins. */
static void axis_limits(const ds_axes *a, frame *p)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int logx = a->log_x, logy = a->log_y;
    for (int k = 0; k < a->nser; k++) {
        const series *s = &a->ser[k];
        if (s->kind == SER_REFLINE)
            continue;
        for (int64_t i = 0; i < s->n; i++) {
            double x = s->x[i], y = s->y[i];
            if (!isfinite(x) || !isfinite(y) || (logy && y <= 0) || (logx && x <= 0))
                continue;
            if (logx)
                x = log10(x);
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            double e = s->e && isfinite(s->e[i]) ? s->e[i] : 0;
            double lo = y - e, hi = y + e;
            if (logy && lo <= 0)
                lo = y;
            if (logy) {
                lo = log10(lo);
                hi = log10(hi);
            }
            ylo = fmin(ylo, lo);
            yhi = fmax(yhi, hi);
        }
    }
    if (logx)
        pad_log_range(&xlo, &xhi);
    else
        pad_range(&xlo, &xhi, 1);
    if (logy)
        pad_log_range(&ylo, &yhi);
    else
        pad_range(&ylo, &yhi, 1);
    if (a->has_xlim && (!logx || (a->xlim[0] > 0 && a->xlim[1] > 0))) {
        xlo = logx ? log10(a->xlim[0]) : a->xlim[0];
        xhi = logx ? log10(a->xlim[1]) : a->xlim[1];
    }
    if (a->has_ylim && (!logy || (a->ylim[0] > 0 && a->ylim[1] > 0))) {
        ylo = logy ? log10(a->ylim[0]) : a->ylim[0];
        yhi = logy ? log10(a->ylim[1]) : a->ylim[1];
    }
    p->xl = xlo;
    p->xr = xhi;
    p->yb = ylo;
    p->yt = yhi;
    p->logx = logx;
    p->logy = logy;
}

typedef struct {
    double fs;                 /* base font size */
    double tfs;                /* tick label size */
    double pad, gap, tick_len;
    double lw;                 /* data line width */
} style;

/* x ticks: the smallest nice step that leaves a ninth of the axis (at least 5 em) between
 * ticks and a clear em between neighbouring labels. */
static void x_ticks(cairo_t *cr, const style *st, const frame *p, ticks *t)
{
    double lo = fmin(p->xl, p->xr), hi = fmax(p->xl, p->xr);
    double len = p->x1 - p->x0;
    t->n = t->nminor = 0;
    if (!isfinite(hi - lo) || !(hi > lo))
        return;
    double step = nice_step((hi - lo) * fmax(st->fs * 5, len / 9) / len);
    int max_labels = (int)fmax(2, len / (st->fs * 5));
    for (int tries = 0; tries < 12; tries++, step = nice_step(step * 1.01)) {
        if (p->logx)
            log_ticks(t, lo, hi, max_labels > 2 ? max_labels-- : 2);
        else
            linear_ticks(t, lo, hi, step);
        int ok = 1;
        for (int i = 1, prev = 0; i < t->n && ok; i++) {
            if (!t->lab[i].txt[0])   /* an unlabelled decade */
                continue;
            double d = fabs(map_xu(p, t->v[i]) - map_xu(p, t->v[prev]));
            double need = (label_width(cr, &t->lab[i], st->tfs) +
                           label_width(cr, &t->lab[prev], st->tfs)) / 2 + st->fs;
            ok = d >= need;
            prev = i;
        }
        if (ok)
            return;
    }
}

/* y ticks: at least 3 em and an eighth of the axis apart (labels are one line high). */
static void y_ticks(const style *st, const frame *p, ticks *t)
{
    double lo = fmin(p->yb, p->yt), hi = fmax(p->yb, p->yt);
    double len = p->y1 - p->y0, min_px = fmax(st->fs * 3, len / 8);
    t->n = t->nminor = 0;
    if (!isfinite(hi - lo) || !(hi > lo))
        return;
    if (p->logy)
        log_ticks(t, lo, hi, (int)fmax(2, len / (st->fs * 2.4)));
    else
        linear_ticks(t, lo, hi, nice_step((hi - lo) * min_px / len));
}

/* ---------------------------------------------------------------------------------------- *
 * Drawing
 * ---------------------------------------------------------------------------------------- */
static void set_rgb(cairo_t *cr, const double *c, double alpha)
{
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

static const double grey_ref[3] = {0.25, 0.25, 0.25};

static void set_dash(cairo_t *cr, int dash, double lw)
{
    static const double pats[3][4] = {{6, 4}, {1.5, 3}, {7, 3, 1.5, 3}};
    static const int npat[3] = {2, 2, 4};
    double d[4];
    int k = dash % 3;
    for (int i = 0; i < npat[k]; i++)
        d[i] = pats[k][i] * lw;
    cairo_set_dash(cr, d, npat[k], 0);
}

/* Liang-Barsky: clips the segment to rectangle r (x0, y0, x1, y1); 0 if nothing is left. */
static int clip_segment(const double r[4], double *ax, double *ay, double *bx, double *by)
{
    double dx = *bx - *ax, dy = *by - *ay, t0 = 0, t1 = 1;
    double pp[4] = {-dx, dx, -dy, dy};
    double qq[4] = {*ax - r[0], r[2] - *ax, *ay - r[1], r[3] - *ay};
    for (int i = 0; i < 4; i++) {
        if (pp[i] == 0) {
            if (qq[i] < 0)
                return 0;
            continue;
        }
        double t = qq[i] / pp[i];
        if (pp[i] < 0)
            t0 = fmax(t0, t);
        else
            t1 = fmin(t1, t);
    }
    if (t0 > t1)
        return 0;
    double x0 = *ax, y0 = *ay;
    *ax = x0 + t0 * dx;
    *ay = y0 + t0 * dy;
    *bx = x0 + t1 * dx;
    *by = y0 + t1 * dy;
    return 1;
}

/* A polyline through pixel points (NaN breaks it), clipped a little outside the plot area so
 * far-away points keep their direction; cairo's clip does the exact edge. */
static void stroke_polyline(cairo_t *cr, const frame *p, int64_t n, const double *px,
                            const double *py)
{
    double r[4] = {p->x0 - 10, p->y0 - 10, p->x1 + 10, p->y1 + 10};
    int have = 0;
    double lx = 0, ly = 0;
    for (int64_t i = 1; i < n; i++) {
        double ax = px[i - 1], ay = py[i - 1], bx = px[i], by = py[i];
        if (!isfinite(ax) || !isfinite(ay) || !isfinite(bx) || !isfinite(by) ||
            !clip_segment(r, &ax, &ay, &bx, &by)) {
            have = 0;
            continue;
        }
        if (!have || ax != lx || ay != ly)
            cairo_move_to(cr, ax, ay);
        cairo_line_to(cr, bx, by);
        lx = bx;
        ly = by;
        have = 1;
    }
    cairo_stroke(cr);
}

/* Min/max decimation for dense polylines: a run of consecutive points in one pixel column
 * becomes its first, lowest, highest and last points (in their order), which draws the same
 * pixels; cairo would otherwise stroke every segment. NaN breaks are kept. Returns the count
 * written to ox, oy (at most n). */
static int64_t decimate(int64_t n, const double *px, const double *py, double *ox, double *oy)
{
    int64_t m = 0, i = 0;
    while (i < n) {
        if (isnan(px[i]) || isnan(py[i])) {
            ox[m] = oy[m] = NAN;
            m++;
            i++;
            continue;
        }
        double col = floor(px[i]);
        int64_t j = i, lo = i, hi = i;
        while (j + 1 < n && !isnan(px[j + 1]) && !isnan(py[j + 1]) && floor(px[j + 1]) == col) {
            j++;
            if (py[j] < py[lo])
                lo = j;
            if (py[j] > py[hi])
                hi = j;
        }
        int64_t k[4] = {i, lo < hi ? lo : hi, lo < hi ? hi : lo, j};
        for (int q = 0; q < 4; q++)
            if (q == 0 || k[q] != k[q - 1]) {
                ox[m] = px[k[q]];
                oy[m] = py[k[q]];
                m++;
            }
        i = j + 1;
    }
    return m;
}

/* Pixel coordinates of a series' points (NaN where not drawable); malloc'd pair. */
static double *series_px(const frame *p, const series *s)
{
    double *px = malloc((size_t)s->n * 2 * sizeof(double));
    if (!px)
        return NULL;
    for (int64_t i = 0; i < s->n; i++) {
        double *q = px + s->n;
        if (!point_px(p, s, i, &px[i], &q[i]))
            px[i] = q[i] = NAN;
    }
    return px;
}

/* Sample points of a reference line across the panel (straight in linear axes, a curve on a
 * log axis). */
#define REF_SAMPLES 256
static int refline_px(const frame *p, const series *s, double *px, double *py)
{
    int n = p->logx || p->logy ? REF_SAMPLES : 2;
    for (int i = 0; i < n; i++) {
        double x = x_value(p, p->xl + (p->xr - p->xl) * i / (n - 1));
        px[i] = map_x(p, x);
        py[i] = map_y(p, s->slope * x + s->icept);
        if (fabs(py[i]) > 1e7)
            py[i] = py[i] > 0 ? 1e7 : -1e7;
    }
    return n;
}

static double marker_radius(const style *st)
{
    return fmax(2.5, st->fs * 0.3);
}

static int draw_series(cairo_t *cr, const style *st, const frame *p, const series *s)
{
    if (s->kind == SER_TEXT) {
        double px, py;
        if (point_px(p, s, 0, &px, &py)) {
            double g = s->dash ? 1 : 0.05;
            cairo_set_source_rgb(cr, g, g, g);
            draw_text(cr, s->label, st->fs, 0, px, py, 0.5, VA_CENTER, 0);
        }
        return 0;
    }
    const double *c = s->kind == SER_REFLINE ? grey_ref : palette[s->color];
    cairo_set_line_width(cr, st->lw);
    cairo_set_dash(cr, NULL, 0, 0);
    if (s->kind == SER_REFLINE) {
        double px[REF_SAMPLES], py[REF_SAMPLES];
        int n = refline_px(p, s, px, py);
        set_rgb(cr, c, 1);
        set_dash(cr, s->dash, st->lw);
        stroke_polyline(cr, p, n, px, py);
        cairo_set_dash(cr, NULL, 0, 0);
        return 0;
    }
    double *px = series_px(p, s);
    if (!px)
        return -1;
    double *py = px + s->n;
    if (s->kind == SER_LINE) {
        set_rgb(cr, c, 1);
        if (s->n > 4 * (p->x1 - p->x0)) {
            double *dx = malloc((size_t)s->n * 2 * sizeof(double));
            if (!dx) {
                free(px);
                return -1;
            }
            int64_t m = decimate(s->n, px, py, dx, dx + s->n);
            stroke_polyline(cr, p, m, dx, dx + s->n);
            free(dx);
        } else {
            stroke_polyline(cr, p, s->n, px, py);
        }
    } else if (s->kind == SER_SCATTER) {
        set_rgb(cr, c, s->alpha);
        for (int64_t i = 0; i < s->n; i++) {
            if (isnan(px[i]) || px[i] < p->x0 - s->size || px[i] > p->x1 + s->size ||
                py[i] < p->y0 - s->size || py[i] > p->y1 + s->size)
                continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, px[i], py[i], s->size, 0, 2 * M_PI);
            if (s->alpha < 1)
                cairo_fill(cr);   /* one fill per marker, so overlaps darken */
        }
        if (s->alpha >= 1)
            cairo_fill(cr);
    } else {
        double cap = fmax(3, st->fs * 0.4), r = marker_radius(st);
        for (int64_t i = 0; i < s->n; i++)   /* bars on pixel centres stay crisp */
            px[i] = floor(px[i]) + 0.5;
        set_rgb(cr, c, 1);
        cairo_set_line_width(cr, fmax(1, st->lw * 0.7));
        for (int64_t i = 0; i < s->n; i++) {
            if (isnan(px[i]) || !isfinite(s->e[i]) || s->e[i] == 0)
                continue;
            double top = map_y(p, s->y[i] + s->e[i]), bot = map_y(p, s->y[i] - s->e[i]);
            if (isnan(top))
                continue;
            if (isnan(bot))   /* y - yerr <= 0 on a log axis: the bar runs off the bottom */
                bot = p->y1 + 20;
            top = fmax(top, p->y0 - 20);
            bot = fmin(bot, p->y1 + 20);
            cairo_move_to(cr, px[i], top);
            cairo_line_to(cr, px[i], bot);
            if (top >= p->y0 - 10) {
                cairo_move_to(cr, px[i] - cap, top);
                cairo_line_to(cr, px[i] + cap, top);
            }
            if (bot <= p->y1 + 10) {
                cairo_move_to(cr, px[i] - cap, bot);
                cairo_line_to(cr, px[i] + cap, bot);
            }
        }
        cairo_stroke(cr);
        for (int64_t i = 0; i < s->n; i++) {
            if (isnan(px[i]) || px[i] < p->x0 - r || px[i] > p->x1 + r || py[i] < p->y0 - r ||
                py[i] > p->y1 + r)
                continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, px[i], py[i], r, 0, 2 * M_PI);
        }
        cairo_fill(cr);
    }
    free(px);
    return 0;
}

/* The legend's sample of a series, centred vertically at y over [x, x + w]. */
static void draw_handle(cairo_t *cr, const style *st, const series *s, double x, double y,
                        double w)
{
    const double *c = s->kind == SER_REFLINE ? grey_ref : palette[s->color];
    cairo_set_line_width(cr, st->lw);
    cairo_set_dash(cr, NULL, 0, 0);
    if (s->kind == SER_LINE || s->kind == SER_REFLINE) {
        set_rgb(cr, c, 1);
        if (s->kind == SER_REFLINE)
            set_dash(cr, s->dash, st->lw);
        cairo_move_to(cr, x, y);
        cairo_line_to(cr, x + w, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    } else if (s->kind == SER_SCATTER) {
        set_rgb(cr, c, fmax(s->alpha, 0.6));
        cairo_arc(cr, x + w / 2, y, fmax(3, fmin(s->size, st->fs * 0.45)), 0, 2 * M_PI);
        cairo_fill(cr);
    } else {
        double cap = fmax(3, st->fs * 0.4), h = st->fs * 0.5;
        set_rgb(cr, c, 1);
        cairo_set_line_width(cr, fmax(1, st->lw * 0.7));
        cairo_move_to(cr, x + w / 2, y - h);
        cairo_line_to(cr, x + w / 2, y + h);
        cairo_move_to(cr, x + w / 2 - cap, y - h);
        cairo_line_to(cr, x + w / 2 + cap, y - h);
        cairo_move_to(cr, x + w / 2 - cap, y + h);
        cairo_line_to(cr, x + w / 2 + cap, y + h);
        cairo_stroke(cr);
        cairo_arc(cr, x + w / 2, y, marker_radius(st), 0, 2 * M_PI);
        cairo_fill(cr);
    }
}

/* Number of sampled data pixels inside box b (x0, y0, x1, y1). */
static int64_t crowding(const frame *p, const ds_axes *a, const double b[4])
{
    int64_t hits = 0;
    for (int k = 0; k < a->nser; k++) {
        const series *s = &a->ser[k];
        if (s->kind == SER_REFLINE) {
            for (int i = 0; i <= 32; i++) {
                double x = x_value(p, p->xl + (p->xr - p->xl) * i / 32);
                double X = map_x(p, x), Y = map_y(p, s->slope * x + s->icept);
                hits += X >= b[0] && X <= b[2] && Y >= b[1] && Y <= b[3];
            }
            continue;
        }
        int64_t stride = s->n > 4000 ? s->n / 4000 : 1;
        double lx = NAN, ly = NAN;
        for (int64_t i = 0; i < s->n; i += stride) {
            double X, Y;
            if (!point_px(p, s, i, &X, &Y)) {
                lx = NAN;
                continue;
            }
            hits += 4 * (X >= b[0] && X <= b[2] && Y >= b[1] && Y <= b[3]);
            if (s->e && isfinite(s->e[i]) && s->e[i] > 0)   /* along the error bar */
                for (int j = -4; j <= 4; j++) {
                    double v = map_y(p, s->y[i] + s->e[i] * j / 4);
                    hits += X >= b[0] && X <= b[2] && v >= b[1] && v <= b[3];
                }
            if (s->kind == SER_LINE && !isnan(lx))   /* points along the segment too */
                for (int j = 1; j < 8; j++) {
                    double u = lx + (X - lx) * j / 8, v = ly + (Y - ly) * j / 8;
                    hits += u >= b[0] && u <= b[2] && v >= b[1] && v <= b[3];
                }
            lx = X;
            ly = Y;
        }
    }
    return hits;
}

static void draw_legend(cairo_t *cr, const style *st, const frame *p, const ds_axes *a)
{
    int n = 0;
    double tw = 0, lfs = st->fs * 0.92;
    for (int k = 0; k < a->nser; k++)
        if (a->ser[k].label && a->ser[k].kind != SER_TEXT) {
            n++;
            tw = fmax(tw, text_width(cr, a->ser[k].label, lfs, 0));
        }
    if (!n)
        return;
    double row = line_height(cr, lfs, 0) * 1.2, in = lfs * 0.6, hw = lfs * 2.2;
    double w = in + hw + in * 0.8 + tw + in, h = 2 * in * 0.7 + n * row;
    double m = st->fs * 0.6;
    /* In order of preference: the corners (upper right, upper left, lower right, lower
     * left), then the middles of the top, bottom, right and left sides. */
    double xr = p->x1 - m - w, xm = (p->x0 + p->x1 - w) / 2, xl = p->x0 + m;
    double yt = p->y0 + m, ym = (p->y0 + p->y1 - h) / 2, yb = p->y1 - m - h;
    double cx[8] = {xr, xl, xr, xl, xm, xm, xr, xl};
    double cy[8] = {yt, yt, yb, yb, yt, yb, ym, ym};
    int best = 0;
    int64_t best_hits = INT64_MAX;
    for (int c = 0; c < 8; c++) {
        double b[4] = {cx[c], cy[c], cx[c] + w, cy[c] + h};
        int64_t hits = crowding(p, a, b);
        if (hits < best_hits) {
            best_hits = hits;
            best = c;
        }
    }
    double x = round(cx[best]) + 0.5, y = round(cy[best]) + 0.5;
    cairo_rectangle(cr, x, y, round(w), round(h));
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    double yy = y + in * 0.7 + row / 2;
    for (int k = 0; k < a->nser; k++) {
        const series *s = &a->ser[k];
        if (!s->label || s->kind == SER_TEXT)
            continue;
        draw_handle(cr, st, s, x + in, yy, hw);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        draw_text(cr, s->label, lfs, 0, x + in + hw + in * 0.8, yy, 0, VA_CENTER, 0);
        yy += row;
    }
}

/* ---- colour bars ---- */
/* The ticks of a's colour bar into t; returns the width it needs right of the image. */
static double colorbar_room(cairo_t *cr, const style *st, const ds_axes *a, ticks *t)
{
    double lo = a->cmap_lo, hi = a->cmap_hi;
    t->n = t->nminor = 0;
    if (hi > lo)
        linear_ticks(t, lo, hi, nice_step((hi - lo) / 4));
    double w = 0;
    for (int i = 0; i < t->n; i++)
        w = fmax(w, label_width(cr, &t->lab[i], st->tfs));
    return 2 * st->gap + round(st->fs * 0.9) + st->tick_len + st->gap + w;
}

/* The colour bar right of the image frame p: the map from lo (bottom) to hi (top), framed,
 * with ticks and labels on its right. 0, or -1 when out of memory. */
static int draw_colorbar(cairo_t *cr, const style *st, const ds_axes *a, const frame *p,
                         const ticks *t)
{
    double x0 = p->x1 + 2 * st->gap, w = round(st->fs * 0.9), y0 = p->y0, h = p->y1 - p->y0;
    cairo_surface_t *is = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 256);
    if (cairo_surface_status(is) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(is);
        return -1;
    }
    cairo_surface_flush(is);
    unsigned char *d = cairo_image_surface_get_data(is);
    int stride = cairo_image_surface_get_stride(is);
    for (int r = 0; r < 256; r++)
        *(uint32_t *)(void *)(d + r * stride) = 0xff000000u | cmap_rgb(a->cmap, (255 - r) / 255.0);
    cairo_surface_mark_dirty(is);
    cairo_save(cr);
    cairo_translate(cr, x0, y0);
    cairo_scale(cr, w, h / 256);
    cairo_set_source_surface(cr, is, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
    cairo_rectangle(cr, 0, 0, 1, 256);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(is);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x0 + 0.5, y0 + 0.5, w - 1, h - 1);
    double lo = a->cmap_lo, hi = a->cmap_hi;
    for (int i = 0; i < t->n; i++) {
        double Y = round(y0 + h - (t->v[i] - lo) / (hi - lo) * h) + 0.5;
        cairo_move_to(cr, x0 + w, Y);
        cairo_line_to(cr, x0 + w + st->tick_len, Y);
    }
    cairo_stroke(cr);
    for (int i = 0; i < t->n; i++)
        draw_label(cr, &t->lab[i], st->tfs, x0 + w + st->tick_len + st->gap,
                   y0 + h - (t->v[i] - lo) / (hi - lo) * h, 0, VA_CENTER);
    return 0;
}

/* One panel in the cell (cx, cy, cw, ch). */
static int draw_panel(cairo_t *cr, const style *st, const ds_axes *a, double cx, double cy,
                      double cw, double ch)
{
    frame p;
    double left = cx + st->pad, right = cx + cw - st->pad;
    double top = cy + st->pad, bottom = cy + ch - st->pad;
    double title_fs = st->fs * 1.08, label_h = line_height(cr, st->fs, 0);
    double tick_h = line_height(cr, st->tfs, 0);
    if (a->title)
        top += line_height(cr, title_fs, 1) + st->gap;
    if (a->xlabel)
        bottom -= label_h + st->gap;
    double ylab_x = left;
    if (a->ylabel)
        left += label_h + st->gap;

    cairo_save(cr);
    cairo_rectangle(cr, cx, cy, cw, ch);
    cairo_clip(cr);
    ticks xt = {0}, yt = {0};
    int image = a->img != NULL;
    ticks ct = {0};
    double cbar_w = 0;
    if (image && a->cbar)
        cbar_w = colorbar_room(cr, st, a, &ct);
    if (image) {
        /* The image keeps its aspect ratio, centred; whole-pixel magnification when enlarged. */
        double aw = right - left - cbar_w, ah = bottom - top;
        double sc = fmin(aw / (double)a->img_cols, ah / (double)a->img_rows);
        if (sc >= 2)
            sc = floor(sc);
        double iw = fmax(1, round(sc * (double)a->img_cols));
        double ih = fmax(1, round(sc * (double)a->img_rows));   /* minuscule cells */
        p.x0 = round(left + (aw - iw) / 2);
        p.y0 = round(top + (ah - ih) / 2);
        p.x1 = p.x0 + iw;
        p.y1 = p.y0 + ih;
        p.xl = -0.5;
        p.xr = (double)a->img_cols - 0.5;
        p.yb = (double)a->img_rows - 0.5;   /* row 0 at the top */
        p.yt = -0.5;
        p.logx = p.logy = 0;
    } else {
        axis_limits(a, &p);
        top += tick_h * 0.5;   /* room for the top y tick label's upper half */
        bottom -= st->tick_len + st->gap + tick_h;
        p.y0 = round(top);
        p.y1 = round(bottom);
        p.x0 = left;
        p.x1 = right;
        if (p.y1 - p.y0 < 4)
            p.y1 = p.y0 + 4;
        y_ticks(st, &p, &yt);
        double wy = 0;
        for (int i = 0; i < yt.n; i++)
            wy = fmax(wy, label_width(cr, &yt.lab[i], st->tfs));
        p.x0 = round(left + wy + st->gap + st->tick_len);
        /* Shrink from the right until the last x tick label fits inside the cell. */
        for (int pass = 0; pass < 3; pass++) {
            if (p.x1 - p.x0 < 4)
                p.x1 = p.x0 + 4;
            x_ticks(cr, st, &p, &xt);
            double over = 0;
            for (int i = 0; i < xt.n; i++) {
                double e = map_xu(&p, xt.v[i]) + label_width(cr, &xt.lab[i], st->tfs) / 2;
                over = fmax(over, e - (cx + cw - st->pad * 0.5));
            }
            if (over <= 0.5)
                break;
            p.x1 = round(p.x1 - over);
        }
        p.x1 = round(p.x1);
    }
    double pw = p.x1 - p.x0, ph = p.y1 - p.y0;

    /* Grid, then data clipped to the plot area. */
    if (!image) {
        cairo_set_source_rgb(cr, 0.91, 0.91, 0.91);
        cairo_set_line_width(cr, 1);
        for (int i = 0; i < xt.n; i++) {
            double X = round(map_xu(&p, xt.v[i])) + 0.5;
            cairo_move_to(cr, X, p.y0);
            cairo_line_to(cr, X, p.y1);
        }
        for (int i = 0; i < yt.n; i++) {
            double Y = round(map_yu(&p, yt.v[i])) + 0.5;
            cairo_move_to(cr, p.x0, Y);
            cairo_line_to(cr, p.x1, Y);
        }
        cairo_stroke(cr);
    }
    cairo_save(cr);
    cairo_rectangle(cr, p.x0, p.y0, pw, ph);
    cairo_clip(cr);
    if (image) {
        int stride = cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, (int)a->img_cols);
        cairo_surface_t *is =
            cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)a->img_cols, (int)a->img_rows);
        if (cairo_surface_status(is) != CAIRO_STATUS_SUCCESS) {
            cairo_surface_destroy(is);
            cairo_restore(cr);
            cairo_restore(cr);
            return -1;
        }
        cairo_surface_flush(is);
        unsigned char *d = cairo_image_surface_get_data(is);
        for (int64_t r = 0; r < a->img_rows; r++) {
            uint32_t *row = (uint32_t *)(void *)(d + r * stride);
            for (int64_t c = 0; c < a->img_cols; c++) {
                row[c] = 0xff000000u | a->img[r * a->img_cols + c];
            }
        }
        cairo_surface_mark_dirty(is);
        cairo_save(cr);
        cairo_translate(cr, p.x0, p.y0);
        cairo_scale(cr, pw / (double)a->img_cols, ph / (double)a->img_rows);
        cairo_set_source_surface(cr, is, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), pw >= (double)a->img_cols
                                                           ? CAIRO_FILTER_NEAREST
                                                           : CAIRO_FILTER_GOOD);
        cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
        cairo_rectangle(cr, 0, 0, (double)a->img_cols, (double)a->img_rows);
        cairo_fill(cr);
        cairo_restore(cr);
        cairo_surface_destroy(is);
    }
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    int rc = 0;
    for (int k = 0; k < a->nser && !rc; k++)
        rc = draw_series(cr, st, &p, &a->ser[k]);
    cairo_restore(cr);
    if (rc) {
        cairo_restore(cr);
        return -1;
    }

    /* Frame, ticks and their labels. */
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, p.x0 + 0.5, p.y0 + 0.5, pw - 1, ph - 1);
    cairo_stroke(cr);
    if (!image) {
        for (int i = 0; i < xt.n; i++) {
            double X = round(map_xu(&p, xt.v[i])) + 0.5;
            cairo_move_to(cr, X, p.y1);
            cairo_line_to(cr, X, p.y1 + st->tick_len);
        }
        for (int i = 0; i < yt.n; i++) {
            double Y = round(map_yu(&p, yt.v[i])) + 0.5;
            cairo_move_to(cr, p.x0, Y);
            cairo_line_to(cr, p.x0 - st->tick_len, Y);
        }
        for (int i = 0; i < yt.nminor; i++) {
            double Y = round(map_yu(&p, yt.minor[i])) + 0.5;
            cairo_move_to(cr, p.x0, Y);
            cairo_line_to(cr, p.x0 - st->tick_len * 0.55, Y);
        }
        for (int i = 0; i < xt.nminor; i++) {
            double X = round(map_xu(&p, xt.minor[i])) + 0.5;
            cairo_move_to(cr, X, p.y1);
            cairo_line_to(cr, X, p.y1 + st->tick_len * 0.55);
        }
        cairo_stroke(cr);
        for (int i = 0; i < xt.n; i++)
            if (xt.lab[i].txt[0])
                draw_label(cr, &xt.lab[i], st->tfs, map_xu(&p, xt.v[i]),
                           p.y1 + st->tick_len + st->gap, 0.5, VA_TOP);
        for (int i = 0; i < yt.n; i++)
            if (yt.lab[i].txt[0])
                draw_label(cr, &yt.lab[i], st->tfs, p.x0 - st->tick_len - st->gap,
                           map_yu(&p, yt.v[i]), 1, VA_CENTER);
    }

    if (image && a->cbar && draw_colorbar(cr, st, a, &p, &ct))
        rc = -1;
    if (rc) {
        cairo_restore(cr);
        return -1;
    }

    /* Title and axis labels, shrunk when longer than the room they have. */
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
    double mid_x = (p.x0 + p.x1) / 2, mid_y = (p.y0 + p.y1) / 2;
    if (a->title) {
        double fs = fit_size(cr, a->title, title_fs, 1, cw - 2 * st->pad);
        double x = fmin(fmax(mid_x, cx + st->pad + text_width(cr, a->title, fs, 1) / 2),
                        cx + cw - st->pad - text_width(cr, a->title, fs, 1) / 2);
        double y = (image ? p.y0 : p.y0 - tick_h * 0.5) - st->gap;
        draw_text(cr, a->title, fs, 1, x, y, 0.5, VA_BOTTOM, 0);
    }
    if (a->xlabel) {
        double fs = fit_size(cr, a->xlabel, st->fs, 0, cw - 2 * st->pad);
        double y = image ? p.y1 + st->gap : p.y1 + st->tick_len + st->gap + tick_h + st->gap;
        draw_text(cr, a->xlabel, fs, 0, mid_x, y, 0.5, VA_TOP, 0);
    }
    if (a->ylabel) {
        double fs = fit_size(cr, a->ylabel, st->fs, 0, ch - 2 * st->pad);
        double x = image ? p.x0 - st->gap - label_h / 2 : ylab_x + label_h / 2;
        draw_text(cr, a->ylabel, fs, 0, x, mid_y, 0.5, VA_CENTER, -M_PI / 2);
    }
    if (!image || a->nser)
        draw_legend(cr, st, &p, a);
    cairo_restore(cr);
    return 0;
}

/* The PNG stream's sink: the file, and the errno of a failed write (cairo keeps only
 * "write error"). */
typedef struct {
    FILE *fp;
    int err;
} png_sink;

static cairo_status_t write_fp(void *closure, const unsigned char *data, unsigned int len)
{
    png_sink *k = closure;
    errno = 0;
    if (fwrite(data, 1, len, k->fp) == len)
        return CAIRO_STATUS_SUCCESS;
    k->err = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
}

/* Renders the whole figure onto surface s (width x height). Returns 0 or -1 (out of memory). */
static int render(const ds_figure *f, cairo_t *cr)
{
    double cw0 = (double)f->width / f->cols;
    style st;
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);

    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double top = 0;
    double ch0 = (double)f->height / f->rows;
    st.fs = fmin(13, fmax(7, fmin(cw0, ch0) / 20));
    if (f->title) {
        double tfs = fmin(18, fmax(10, st.fs * 1.35));
        tfs = fit_size(cr, f->title, tfs, 1, f->width - 2 * st.fs);
        double h = line_height(cr, tfs, 1);
        cairo_set_source_rgb(cr, 0, 0, 0);
        draw_text(cr, f->title, tfs, 1, f->width / 2.0, st.fs * 0.5, 0.5, VA_TOP, 0);
        top = h + st.fs * 0.5;
        ch0 = (f->height - top) / f->rows;
        st.fs = fmin(13, fmax(7, fmin(cw0, ch0) / 20));
    }
    st.tfs = st.fs * 0.9;
    st.pad = round(st.fs * 0.6);
    st.gap = round(fmax(2, st.fs * 0.35));
    st.tick_len = round(fmax(3, st.fs * 0.4));
    st.lw = fmin(2, fmax(1.25, st.fs / 7));
    for (int r = 0; r < f->rows; r++)
        for (int c = 0; c < f->cols; c++) {
            double x0 = round(c * cw0), x1 = round((c + 1) * cw0);
            double y0 = round(top + r * ch0), y1 = round(top + (r + 1) * ch0);
            if (draw_panel(cr, &st, &f->axes[r * f->cols + c], x0, y0, x1 - x0, y1 - y0))
                return -1;
        }
    return 0;
}

ds_status ds_figure_save_png(ds_figure *f, const char *path)
{
    if (!f)
        return dsi_fail(DS_ERR_ARG, "ds_figure_save_png: figure is NULL");
    if (!path || !*path)
        return dsi_fail(DS_ERR_ARG, "ds_figure_save_png: no path");
    if (f->deferred != DS_OK)
        return dsi_fail(f->deferred, "'%s': an earlier call on this figure ran out of memory",
                        path);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, f->width, f->height);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        ds_status st = dsi_fail(DS_ERR_NOMEM, "'%s': cannot create a %d x %d image: %s", path,
                                f->width, f->height,
                                cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return st;
    }
    cairo_t *cr = cairo_create(s);
    int bad = render(f, cr);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    if (bad || cs != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return dsi_fail(DS_ERR_NOMEM, "'%s': drawing failed: %s", path,
                        bad ? "out of memory" : cairo_status_to_string(cs));
    }
    cairo_surface_flush(s);
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, path);
    if (st != DS_OK) {
        cairo_surface_destroy(s);
        return st;
    }
    png_sink k = {.fp = w.fp};
    cs = cairo_surface_write_to_png_stream(s, write_fp, &k);
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS) {
        dsi_wfile_abort(&w);
        return dsi_fail(DS_ERR_IO, "cannot write '%s': %s", path,
                        k.err ? strerror(k.err) : cairo_status_to_string(cs));
    }
    return dsi_wfile_commit(&w);
}
#else
/* Built without cairo (make NO_PLOT=1): a figure can be built, not drawn. */
ds_status ds_figure_save_png(ds_figure *f, const char *path)
{
    if (!f)
        return dsi_fail(DS_ERR_ARG, "ds_figure_save_png: figure is NULL");
    if (!path || !*path)
        return dsi_fail(DS_ERR_ARG, "ds_figure_save_png: no path");
    return dsi_fail(DS_ERR_ARG, "'%s': deepsky was built without plotting support (NO_PLOT=1); "
                    "rebuild with cairo to draw figures", path);
}
#endif
