/* lenses.c - simulated strong-lens scenes for lens finding (ds_sim_lenses): a lens galaxy
 * whose SIE-with-shear mass ray-traces a Sersic source, and non-lenses (the galaxy alone, with
 * an unlensed neighbour, or with a ring), in one band (space-like) or four (ground-like). */
#include "skysim.h"
#include "sim.h"

#include "../internal.h"

#include <math.h>

#define TAG_PICK 0x6c656e735f70696bULL    /* "lens_pik": which rows are lenses */
#define TAG_DRAW 0x6c656e735f647277ULL    /* "lens_drw": each row's parameters */
#define TAG_NOISE 0x6c656e735f6e6f69ULL   /* "lens_noi": each row's noise */
#define MAX_BANDS 4
#define REF_BAND 2                         /* r of u, g, r, i */

enum {
    C_IS_LENS, C_KIND, C_THETA, C_Q, C_PHI, C_G1, C_G2, C_LDX, C_LDY, C_LN, C_LHLR, C_LE1,
    C_LE2, C_LFLUX, C_LSNR, C_SX, C_SY, C_SN, C_SHLR, C_SE1, C_SE2, C_SFLUX, C_SSNR, C_MU,
    C_IN, C_OUT, C_RING, C_FWHM, C_COLS
};
static const char *const col_names[C_COLS + 1] = {
    "is_lens", "kind", "theta_e", "q", "phi", "gamma1", "gamma2", "lens_dx", "lens_dy",
    "lens_n", "lens_hlr", "lens_e1", "lens_e2", "lens_flux", "lens_snr", "src_x", "src_y",
    "src_n", "src_hlr", "src_e1", "src_e2", "src_flux", "src_snr", "mu", "in_stamp", "outside",
    "ring_r", "psf_fwhm", NULL,
};
static const char *const scene_names[DS_SCENE_KINDS] = {"galaxy", "lens", "neighbour", "ring"};
static const char *const band_names[2][MAX_BANDS] = {{"vis"}, {"u", "g", "r", "i"}};
/* Fluxes over the reference band's: a red early-type lens, a blue star-forming source (the
 * neighbours and rings share its colour, as the contaminants of real searches do). */
static const double sed_lens[MAX_BANDS] = {0.1, 0.4, 1.0, 1.4};
static const double sed_src[MAX_BANDS] = {0.9, 1.0, 1.0, 0.9};
/* PSF FWHM over the reference band's: seeing broadens to the blue */
static const double fwhm_scale[MAX_BANDS] = {1.2, 1.1, 1.0, 0.95};

int ds_lens_bands(ds_lens_survey s) { return s == DS_LENS_GROUND ? 4 : s == DS_LENS_SPACE; }

const char *ds_lens_band_name(ds_lens_survey s, int b)
{
    return b >= 0 && b < ds_lens_bands(s) ? band_names[s == DS_LENS_GROUND][b] : NULL;
}

const char *ds_lens_scene_name(int kind)
{
    return kind >= 0 && kind < DS_SCENE_KINDS ? scene_names[kind] : NULL;
}

int ds_lens_scene_code(const char *name)
{
    for (int k = 0; name && k < DS_SCENE_KINDS; k++)
        if (!strcmp(name, scene_names[k]))
            return k;
    return -1;
}

const char *const *ds_lens_sim_columns(void) { return col_names; }
int ds_lens_sim_column_count(void) { return C_COLS; }

/* ---- options ---- */

static ds_status range(const char *what, double *lo, double *hi, double d_lo, double d_hi,
                       double min, double max)
{
    if (*lo == 0 && *hi == 0)
        *lo = d_lo, *hi = d_hi;
    if (!(*lo >= min && *hi <= max && *lo <= *hi))
        return dsi_fail(DS_ERR_ARG, "sim lenses: %s range [%g, %g] must be a non-empty interval "
                        "within [%g, %g]", what, *lo, *hi, min, max);
    return DS_OK;
}

static ds_status one(const char *what, double *v, double d, double min, double max)
{
    if (*v == 0)
        *v = d;
    if (!(*v >= min && *v <= max))
        return dsi_fail(DS_ERR_ARG, "sim lenses: %s %g must be within [%g, %g]", what, *v, min,
                        max);
    return DS_OK;
}

static ds_status resolve(const ds_lens_sim_opts *in, ds_lens_sim_opts *o)
{
    ds_status st;
    *o = *in;
    const int space = o->survey == DS_LENS_SPACE;
    if (o->survey != DS_LENS_SPACE && o->survey != DS_LENS_GROUND)
        return dsi_fail(DS_ERR_ARG, "sim lenses: survey %d is neither space (0) nor ground (1)",
                        (int)o->survey);
    if (o->count < 1 || o->count > (1LL << 31))
        return dsi_fail(DS_ERR_ARG, "sim lenses: count %lld must be in [1, 2^31]",
                        (long long)o->count);
    if (o->size == 0)
        o->size = 32;
    if (o->size < 16 || o->size > 256)
        return dsi_fail(DS_ERR_ARG, "sim lenses: stamp size %d must be in [16, 256]", o->size);
    if (!(o->lens_fraction >= 0 && o->lens_fraction <= 1))
        return dsi_fail(DS_ERR_ARG, "sim lenses: lens fraction %g must be in [0, 1]",
                        o->lens_fraction);
    if (o->negatives == 0)
        o->negatives = 1u << DS_SCENE_GALAXY | 1u << DS_SCENE_NEIGHBOUR | 1u << DS_SCENE_RING;
    if (o->negatives & ~(1u << DS_SCENE_GALAXY | 1u << DS_SCENE_NEIGHBOUR | 1u << DS_SCENE_RING))
        return dsi_fail(DS_ERR_ARG, "sim lenses: negatives 0x%x names kinds other than galaxy "
                        "(bit 0), neighbour (bit 2) and ring (bit 3)", o->negatives);
    const double s = o->size;
    if ((st = range("Einstein radius", &o->theta_min, &o->theta_max, space ? 3 : 2,
                    space ? 8 : 5, 0.1, s / 2)) ||
        (st = one("minimum axis ratio", &o->q_min, 0.5, 0.05, 1)) ||
        (st = one("maximum external shear", &o->gamma_max, 0.05, -1, 0.5)) ||
        (st = range("source offset (theta_e)", &o->beta_min, &o->beta_max, 0, 0.8, 0, 10)) ||
        (st = range("source Sersic index", &o->src_n_min, &o->src_n_max, 0.5, 1.5, 0.3, 8)) ||
        (st = range("source half-light radius", &o->src_hlr_min, &o->src_hlr_max, 0.5,
                    space ? 1.5 : 1, 0.1, s / 2)) ||
        (st = one("source maximum ellipticity", &o->src_e_max, 0.5, 0, 0.9)) ||
        (st = range("source SNR", &o->src_snr_min, &o->src_snr_max, 10, 40, 1e-3, 1e6)) ||
        (st = range("lens Sersic index", &o->lens_n_min, &o->lens_n_max, 2, 5, 0.3, 8)) ||
        (st = range("lens half-light radius", &o->lens_hlr_min, &o->lens_hlr_max,
                    space ? 2 : 1.5, space ? 5 : 3.5, 0.1, s / 2)) ||
        (st = one("lens maximum ellipticity", &o->lens_e_max, 0.4, 0, 0.9)) ||
        (st = range("lens SNR", &o->lens_snr_min, &o->lens_snr_max, 20, 100, 1e-3, 1e6)) ||
        (st = one("lens offset", &o->offset_max, 0.5, -1, s / 4)) ||
        (st = one("PSF FWHM", &o->psf_fwhm, space ? 1.8 : 3.2, 0.5, s / 4)) ||
        (st = one("sky sigma", &o->sky_sigma, 1, 1e-9, 1e9)))
        return st;
    o->gamma_max = fmax(o->gamma_max, 0);
    o->offset_max = fmax(o->offset_max, 0);
    return DS_OK;
}

/* Band b's PSF. */
static ds_psf band_psf(const ds_lens_sim_opts *o, int b)
{
    if (o->survey == DS_LENS_SPACE)
        return (ds_psf){.kind = DS_PSF_GAUSSIAN, .fwhm = o->psf_fwhm};
    return (ds_psf){.kind = DS_PSF_MOFFAT, .fwhm = o->psf_fwhm * fwhm_scale[b], .beta = 3};
}

/* ---- one row's draws ---- */

typedef struct {
    int kind;
    ds_galaxy lens, src;     /* the lens light; the source (src.dx, dy: source plane) */
    ds_lens mass;
    double lens_snr, src_snr;
    double nb_x, nb_y;       /* the neighbour's centre */
    double ring_r;           /* the ring's radius */
} scene;

static int imax(int a, int b) { return a > b ? a : b; }

static double uni(ds_rng *r, double lo, double hi) { return lo + (hi - lo) * ds_rng_uniform(r); }

/* (e1, e2) uniform in the disc |e| <= e_max. */
static void disc(ds_rng *r, double e_max, double *e1, double *e2)
{
    double e = e_max * sqrt(ds_rng_uniform(r)), a = uni(r, 0, 2 * M_PI);
    *e1 = e * cos(a), *e2 = e * sin(a);
}

/* Every row draws every parameter in the same order, whatever its kind. */
static void draw(const ds_lens_sim_opts *o, int64_t i, int kind, scene *sc)
{
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->seed, TAG_DRAW, i));
    ds_galaxy *g = &sc->lens, *s = &sc->src;
    sc->kind = kind;
    g->n = uni(&r, o->lens_n_min, o->lens_n_max);
    g->hlr = uni(&r, o->lens_hlr_min, o->lens_hlr_max);
    disc(&r, o->lens_e_max, &g->e1, &g->e2);
    g->dx = uni(&r, -o->offset_max, o->offset_max);
    g->dy = uni(&r, -o->offset_max, o->offset_max);
    g->flux = 1;
    sc->lens_snr = uni(&r, o->lens_snr_min, o->lens_snr_max);
    /* the mass: aligned with the light within 10 degrees (rms) */
    ds_lens *m = &sc->mass;
    m->theta_e = uni(&r, o->theta_min, o->theta_max);
    m->q = uni(&r, o->q_min, 1);
    m->phi = 0.5 * atan2(g->e2, g->e1) + ds_rng_normal(&r) * 10 * M_PI / 180;
    double gm = uni(&r, 0, o->gamma_max), ga = uni(&r, 0, M_PI);
    m->gamma1 = gm * cos(2 * ga), m->gamma2 = gm * sin(2 * ga);
    m->dx = g->dx, m->dy = g->dy;
    /* the source: uniform over the annulus [beta_min, beta_max] theta_e about the lens */
    double b2 = uni(&r, o->beta_min * o->beta_min, o->beta_max * o->beta_max);
    double beta = sqrt(b2) * m->theta_e, ba = uni(&r, 0, 2 * M_PI);
    s->n = uni(&r, o->src_n_min, o->src_n_max);
    s->hlr = uni(&r, o->src_hlr_min, o->src_hlr_max);
    disc(&r, o->src_e_max, &s->e1, &s->e2);
    s->dx = g->dx + beta * cos(ba), s->dy = g->dy + beta * sin(ba);
    s->flux = 1;
    sc->src_snr = uni(&r, o->src_snr_min, o->src_snr_max);
    double nd = uni(&r, 1, 1.6) * m->theta_e, na = uni(&r, 0, 2 * M_PI);
    sc->nb_x = g->dx + nd * cos(na), sc->nb_y = g->dy + nd * sin(na);
    sc->ring_r = uni(&r, 0.8, 1.2) * m->theta_e;
}

/* ---- the added light on a grid of cells (lensed source, neighbour or ring) ---- */

typedef struct {
    int size, k, m, nc;      /* the fine grid: nc = (size + 2 m) k cells of side 1/k */
    double *g;               /* nc^2: unit-flux light per cell */
    double *sub;             /* (size k)^2: after a band's PSF */
    double *buf;             /* 24 nc' doubles for tracing rows (nc' the largest row) */
    float *unit[MAX_BANDS];  /* size^2 each: the added light per band, unit flux */
    float *lens[MAX_BANDS];  /* the lens galaxy per band, unit flux */
} work;

/* Row i of nc cells of side 1/k from (x_lo, y): each cell's flux, the mean of the source's
 * brightness at its 2 x 2 points traced back through the lens l (NULL: none), times the cell's
 * area. Points traced farther than rcut from the source centre count 0 (a Sersic profile of
 * n <= 2 keeps less than 1e-3 of its light beyond 8 hlr), cells inside [-skip, skip]^2 too. */
static ds_status trace_row(const ds_lens *l, const ds_galaxy *s, double rcut, int nc, int k,
                           double x_lo, double y, double skip, double *buf, double *row)
{
    const double h = 1.0 / k, o = GL2 * h;
    double *x = buf, *yy = x + 4 * nc, *ax = yy + 4 * nc, *ay = ax + 4 * nc, *v = ay + 4 * nc;
    int64_t *id = (int64_t *)(v + 4 * nc), np = 0;
    for (int j = 0; j < nc; j++) {
        row[j] = 0;
        double xc = x_lo + (j + 0.5) * h;
        if (fabs(xc) < skip && fabs(y) < skip)
            continue;
        for (int p = 0; p < 4; p++, np++) {
            x[np] = xc + (p & 1 ? o : -o), yy[np] = y + (p & 2 ? o : -o);
            id[np] = j;
        }
    }
    ds_status st = DS_OK;
    if (l && (st = ds_lens_deflect(l, np, x, yy, ax, ay)))
        return st;
    int64_t c = 0;
    for (int64_t p = 0; p < np; p++) {
        double bx = x[p] - (l ? ax[p] : 0), by = yy[p] - (l ? ay[p] : 0);
        if (hypot(bx - s->dx, by - s->dy) < rcut)
            ax[c] = bx, ay[c] = by, id[c] = id[p], c++;
    }
    if ((st = dsi_sersic_eval(s, c, ax, ay, v, "sim lenses")))
        return st;
    for (int64_t p = 0; p < c; p++)
        row[id[p]] += v[p] * h * h * 0.25;
    return DS_OK;
}

/* 8 half-light radii along the source's major axis. */
static double src_reach(const ds_galaxy *s)
{
    double e = hypot(s->e1, s->e2);
    return 8 * s->hlr / sqrt((1 - e) / (1 + e));
}

/* The grid of nc^2 cells of side 1/k from (x_lo, x_lo), as trace_row; the sum of its cells
 * and of those within [-half, half]^2 (the stamp) into *all and *in. */
static ds_status trace_grid(const ds_lens *l, const ds_galaxy *s, int nc, int k, double x_lo,
                            double skip, double half, double *buf, double *g, double *all,
                            double *in)
{
    const double h = 1.0 / k, rcut = src_reach(s);
    ds_status st = DS_OK;
    *all = *in = 0;
    for (int i = 0; i < nc && !st; i++) {
        double y = x_lo + (i + 0.5) * h;
        st = trace_row(l, s, rcut, nc, k, x_lo, y, skip, buf, g + (size_t)i * nc);
        for (int j = 0; j < nc && !st; j++) {
            double v = g[(size_t)i * nc + j], x = x_lo + (j + 0.5) * h;
            *all += v;
            if (fabs(x) < half && fabs(y) < half)
                *in += v;
        }
    }
    return st;
}

/* The largest deflection of the SIE, b / f atanh(f) on its minor axis (theta_e when round). */
static double alpha_max(const ds_lens *l)
{
    double f = sqrt(1 - l->q * l->q);
    return f < 1e-4 ? l->theta_e : l->theta_e * sqrt(l->q) / f * atanh(f);
}

/* A lens: the source traced on the fine grid; the light beyond it (images reach at most
 * (|beta| + alpha_max + 8 hlr) / (1 - |gamma|) from the lens centre) traced on a coarse grid
 * (1 pixel cells) out to twice the stamp size, for the magnification. */
static ds_status lensed(const scene *sc, work *w, double *mu, double *in_stamp)
{
    const double half = 0.5 * w->size, edge = half + w->m;
    const ds_lens *l = &sc->mass;
    double all, in, out_all = 0;
    ds_status st = trace_grid(l, &sc->src, w->nc, w->k, -edge, 0, half, w->buf, w->g, &all, &in);
    double beta = hypot(sc->src.dx - l->dx, sc->src.dy - l->dy);
    double reach = hypot(l->dx, l->dy) + (beta + alpha_max(l) + src_reach(&sc->src)) /
                   (1 - hypot(l->gamma1, l->gamma2));
    if (!st && reach > edge) {
        const int nc = 2 * (int)ceil(fmin(reach, 2.0 * w->size));
        double *g = malloc(sizeof *g * (size_t)nc);
        double *buf = malloc(sizeof *buf * (size_t)nc * 24);
        if (!g || !buf)
            st = dsi_fail(DS_ERR_NOMEM, "sim lenses: out of memory for a %d-cell grid", nc);
        for (int i = 0; i < nc && !st; i++) {   /* row by row into g (one row) */
            double y = -0.5 * nc + i + 0.5;
            st = trace_row(l, &sc->src, src_reach(&sc->src), nc, 1, -0.5 * nc, y, edge, buf, g);
            for (int j = 0; j < nc && !st; j++)
                out_all += g[j];
        }
        free(g);
        free(buf);
    }
    *mu = all + out_all;
    *in_stamp = *mu > 0 ? in / *mu : 0;
    return st;
}

/* A ring of unit flux: an elliptical Gaussian ring (radius R, sigma wd, the lens light's
 * shape) at (x0, y0) on the fine grid, 2 x 2 points per cell; *in: its light on the stamp. */
static void ring_grid(const scene *sc, work *w, double *in)
{
    const double h = 1.0 / w->k, o = GL2 * h, x_lo = -0.5 * w->size - w->m;
    const double half = 0.5 * w->size, R = sc->ring_r, wd = sc->src.hlr;
    const double e = hypot(sc->lens.e1, sc->lens.e2), q = (1 - e) / (1 + e);
    const double phi = 0.5 * atan2(sc->lens.e2, sc->lens.e1), cs = cos(phi), sn = sin(phi);
    /* the plane's integral of exp(-(r - R)^2 / 2 wd^2) (the shear keeps areas) */
    const double norm = 2 * M_PI * wd * (wd * exp(-R * R / (2 * wd * wd)) +
                                         R * sqrt(M_PI / 2) * (1 + erf(R / (M_SQRT2 * wd))));
    *in = 0;
    for (int i = 0; i < w->nc; i++)
        for (int j = 0; j < w->nc; j++) {
            double s = 0, xc = x_lo + (j + 0.5) * h, yc = x_lo + (i + 0.5) * h;
            for (int p = 0; p < 4; p++) {
                double dx = xc + (p & 1 ? o : -o) - sc->lens.dx;
                double dy = yc + (p & 2 ? o : -o) - sc->lens.dy;
                double u = dx * cs + dy * sn, v = -dx * sn + dy * cs;
                double r = sqrt(q * u * u + v * v / q) - R;
                s += exp(-r * r / (2 * wd * wd));
            }
            double v = s * h * h * 0.25 / norm;
            w->g[(size_t)i * w->nc + j] = v;
            if (fabs(xc) < half && fabs(yc) < half)
                *in += v;
        }
}

/* The fine grid through band b's PSF, summed over pixels, into out (size^2). */
static ds_status convolve_band(const ds_lens_sim_opts *o, work *w, int b, float *out)
{
    ds_psf psf = band_psf(o, b);
    const int k = w->k, ns = w->size * k;
    ds_status st = dsi_psf_convolve(&psf, w->size, k, w->m, w->g, w->sub);
    for (int i = 0; i < w->size && !st; i++)
        for (int j = 0; j < w->size; j++) {
            double s = 0;
            for (int a = 0; a < k; a++)
                for (int c = 0; c < k; c++)
                    s += w->sub[(size_t)(i * k + a) * ns + (size_t)j * k + c];
            out[(size_t)i * w->size + j] = (float)s;
        }
    return st;
}

/* Row i: the scene's images into img (bands x size^2) and its truth into t. */
static ds_status render_row(const ds_lens_sim_opts *o, int64_t i, int kind, work *w, float *img,
                            float *t)
{
    scene sc;
    draw(o, i, kind, &sc);
    const int nb = ds_lens_bands(o->survey), S = o->size, ref = nb == 1 ? 0 : REF_BAND;
    const int64_t npix = (int64_t)S * S;
    const double half = 0.5 * S;
    double mu = 0, in = 0, all;
    ds_status st = DS_OK;
    for (int b = 0; b < nb && !st; b++) {
        ds_psf psf = band_psf(o, b);
        st = ds_galaxy_render(&sc.lens, &psf, S, w->lens[b]);
    }
    if (st)
        return st;
    ds_galaxy nbr = sc.src;
    nbr.dx = sc.nb_x, nbr.dy = sc.nb_y;
    if (kind == DS_SCENE_LENS) {
        st = lensed(&sc, w, &mu, &in);
    } else if (kind == DS_SCENE_NEIGHBOUR) {
        st = trace_grid(NULL, &nbr, w->nc, w->k, -half - w->m, 0, half, w->buf, w->g, &all, &in);
        mu = 1;
    } else if (kind == DS_SCENE_RING) {
        ring_grid(&sc, w, &in);
    }
    const int added = kind != DS_SCENE_GALAXY;
    for (int b = 0; b < nb && added && !st; b++)
        st = convolve_band(o, w, b, w->unit[b]);
    if (st)
        return st;
    const double lflux = sc.lens_snr / ds_image_snr(w->lens[ref], npix, o->sky_sigma);
    double sflux = 0;
    if (added) {
        double snr1 = ds_image_snr(w->unit[ref], npix, o->sky_sigma);
        sflux = snr1 > 0 ? sc.src_snr / snr1 : 0;   /* no light on the stamp: none added */
    }
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->seed, TAG_NOISE, i));
    for (int b = 0; b < nb; b++) {
        float *im = img + b * npix;
        for (int64_t p = 0; p < npix; p++)
            im[p] = (float)(lflux * sed_lens[nb == 1 ? ref : b] * w->lens[b][p] +
                            (added ? sflux * sed_src[nb == 1 ? ref : b] * w->unit[b][p] : 0));
        ds_add_noise(im, npix, o->sky_sigma, 0, &r);
    }
    /* the truth row */
    for (int c = 0; c < C_COLS; c++)
        t[c] = 0;
    const ds_lens *m = &sc.mass;
    t[C_IS_LENS] = kind == DS_SCENE_LENS, t[C_KIND] = (float)kind;
    if (kind == DS_SCENE_LENS) {
        t[C_THETA] = (float)m->theta_e, t[C_Q] = (float)m->q;
        t[C_PHI] = (float)(m->phi * 180 / M_PI);
        t[C_G1] = (float)m->gamma1, t[C_G2] = (float)m->gamma2;
    }
    t[C_LDX] = (float)sc.lens.dx, t[C_LDY] = (float)sc.lens.dy, t[C_LN] = (float)sc.lens.n;
    t[C_LHLR] = (float)sc.lens.hlr, t[C_LE1] = (float)sc.lens.e1, t[C_LE2] = (float)sc.lens.e2;
    t[C_LFLUX] = (float)lflux, t[C_LSNR] = (float)sc.lens_snr;
    if (added) {
        const ds_galaxy *s = kind == DS_SCENE_NEIGHBOUR ? &nbr : &sc.src;
        t[C_SX] = (float)(kind == DS_SCENE_RING ? sc.lens.dx : s->dx);
        t[C_SY] = (float)(kind == DS_SCENE_RING ? sc.lens.dy : s->dy);
        if (kind == DS_SCENE_RING) {
            t[C_SHLR] = (float)sc.src.hlr, t[C_SE1] = (float)sc.lens.e1;
            t[C_SE2] = (float)sc.lens.e2, t[C_RING] = (float)sc.ring_r;
        } else {
            t[C_SN] = (float)s->n, t[C_SHLR] = (float)s->hlr;
            t[C_SE1] = (float)s->e1, t[C_SE2] = (float)s->e2;
        }
        t[C_SFLUX] = (float)sflux, t[C_SSNR] = (float)(sflux > 0 ? sc.src_snr : 0);
        t[C_MU] = (float)mu, t[C_IN] = (float)in;
        t[C_OUT] = fabs(t[C_SX]) > half || fabs(t[C_SY]) > half || in < 0.5;
    }
    t[C_FWHM] = (float)o->psf_fwhm;
    return DS_OK;
}

/* kind[i] of every row: exactly round(f n) lenses (a seeded partial shuffle), the negative
 * kinds in turn over the other rows. */
static void pick_rows(const ds_lens_sim_opts *o, unsigned char *kind, int64_t *perm)
{
    const int64_t n = o->count, m = (int64_t)llround(o->lens_fraction * (double)n);
    int used[DS_SCENE_KINDS], nk = 0;
    for (int k = 0; k < DS_SCENE_KINDS; k++)
        if (o->negatives >> k & 1u)
            used[nk++] = k;
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->seed, TAG_PICK, -1));
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t j = 0; j < m; j++) {
        int64_t s = j + (int64_t)ds_rng_below(&r, (uint64_t)(n - j)), t = perm[j];
        perm[j] = perm[s], perm[s] = t;
        kind[perm[j]] = DS_SCENE_LENS;
    }
    for (int64_t j = m; j < n; j++)   /* the non-lenses, in the order of their rows */
        kind[perm[j]] = 255;
    for (int64_t i = 0, j = 0; i < n; i++)
        if (kind[i] == 255)
            kind[i] = (unsigned char)used[j++ % nk];
}

static void work_free(work *w)
{
    free(w->g);
    free(w->sub);
    free(w->buf);
    for (int b = 0; b < MAX_BANDS; b++) {
        free(w->unit[b]);
        free(w->lens[b]);
    }
}

/* One thread's buffers: the fine grid's k and m the largest any band needs. */
static int work_init(const ds_lens_sim_opts *o, work *w)
{
    *w = (work){.size = o->size};
    for (int b = 0; b < ds_lens_bands(o->survey); b++) {
        ds_psf psf = band_psf(o, b);
        w->k = imax(w->k, dsi_psf_oversample(&psf));
        w->m = imax(w->m, dsi_psf_margin(&psf, o->size));
    }
    w->nc = (o->size + 2 * w->m) * w->k;
    const size_t ns = (size_t)o->size * w->k, npix = (size_t)o->size * o->size;
    w->g = malloc(sizeof *w->g * (size_t)w->nc * w->nc);
    w->sub = malloc(sizeof *w->sub * ns * ns);
    w->buf = malloc(sizeof *w->buf * (size_t)w->nc * 24);
    int ok = w->g && w->sub && w->buf;
    for (int b = 0; b < ds_lens_bands(o->survey); b++) {
        w->unit[b] = malloc(sizeof(float) * npix);
        w->lens[b] = malloc(sizeof(float) * npix);
        ok = ok && w->unit[b] && w->lens[b];
    }
    return ok;
}

ds_status ds_sim_lenses(const ds_lens_sim_opts *opts, ds_tensor **images, ds_tensor **truth)
{
    ds_lens_sim_opts o;
    ds_status st;
    if (!opts || !images || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_sim_lenses: options and outputs must not be NULL");
    *images = *truth = NULL;
    if ((st = resolve(opts, &o)) != DS_OK)
        return st;
    const int64_t n = o.count, nb = ds_lens_bands(o.survey), npix = (int64_t)o.size * o.size;
    int64_t ish[4] = {n, nb, o.size, o.size}, tsh[2] = {n, C_COLS};
    ds_tensor *img = ds_tensor_create(4, ish), *tr = ds_tensor_create(2, tsh);
    unsigned char *kind = malloc((size_t)n);
    int64_t *perm = malloc(sizeof *perm * (size_t)n), failed = -1;
    if (!img || !tr || !kind || !perm) {
        st = dsi_fail(DS_ERR_NOMEM, "ds_sim_lenses: out of memory for %lld stamps of %d bands",
                      (long long)n, (int)nb);
        goto done;
    }
    pick_rows(&o, kind, perm);
    float *x = ds_tensor_data(img), *t = ds_tensor_data(tr);
    ds_status first = DS_OK;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        work w;
        int ok = work_init(&o, &w);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (int64_t i = 0; i < n; i++) {
            ds_status rs = ok ? render_row(&o, i, kind[i], &w, x + i * nb * npix, t + i * C_COLS)
                              : DS_ERR_NOMEM;
            if (rs) {
#ifdef _OPENMP
#pragma omp critical
#endif
                if (failed < 0 || i < failed)
                    failed = i, first = rs;
            }
        }
        work_free(&w);
    }
    if (failed >= 0)
        st = first == DS_ERR_NOMEM ? dsi_fail(DS_ERR_NOMEM, "ds_sim_lenses: row %lld: out of "
                                              "memory", (long long)failed)
                                   : dsi_fail(first, "ds_sim_lenses: row %lld (%s) failed",
                                              (long long)failed, scene_names[kind[failed]]);
done:
    free(kind);
    free(perm);
    if (st) {
        ds_tensor_free(img);
        ds_tensor_free(tr);
        return st;
    }
    *images = img;
    *truth = tr;
    return DS_OK;
}
