/* morphology.c - galaxy morphology: bulge + disk scenes (two Sersic components, the disk
 * inclined, with optional spiral arms, a bar, star-forming clumps and a companion) in one
 * or three bands (g, r, i) with a colour per component, and the simulator of the classes
 * elliptical, lenticular, spiral and irregular/merger. */
#include "sim.h"
#include "skysim.h"

#include "../internal.h"

#include <math.h>

#define TAG_DRAW 0x6d6f7270685f6472ULL  /* "morph_dr" */
#define TAG_NOISE 0x6d6f7270686e6f69ULL /* "morphnoi" */
#define DEG (M_PI / 180)

static const char *const class_names[DS_MORPH_CLASSES] = {"elliptical", "lenticular", "spiral",
                                                           "irregular"};

const char *ds_morph_class_name(int c)
{
    return c >= 0 && c < DS_MORPH_CLASSES ? class_names[c] : NULL;
}

enum {
    M_CLASS, M_BT, M_FLUX, M_SNR, M_DX, M_DY, M_BN, M_BHLR, M_BE1, M_BE2, M_DN, M_DHLR,
    M_INCL, M_PA, M_DE1, M_DE2, M_ARMS, M_ARM_AMP, M_PITCH, M_LOPSIDED, M_BAR, M_CLUMPS,
    M_CLUMP_FRAC, M_COMP_FRAC, M_COMP_SEP, M_MERGER, M_FWHM, M_GR, M_RI, M_COLS
};

static const char *const columns[M_COLS + 1] = {
    "class", "bt", "flux", "snr", "dx", "dy", "bulge_n", "bulge_hlr", "bulge_e1", "bulge_e2",
    "disk_n", "disk_hlr", "incl", "disk_pa", "disk_e1", "disk_e2", "arms", "arm_amp",
    "arm_pitch", "lopsided", "bar_frac", "clumps", "clump_frac", "comp_frac", "comp_sep",
    "merger", "psf_fwhm", "g_r", "r_i", NULL,
};

const char *const *ds_morph_columns(void) { return columns; }
int ds_morph_column_count(void) { return M_COLS; }

/* ---- the scene: a list of Sersic components ---- */

#define MAX_COMPS (4 + DS_MORPH_MAX_CLUMPS)

typedef struct {
    ds_galaxy g;      /* unit flux */
    double frac;      /* of the total r-band flux */
    int part;         /* DS_MORPH_BULGE ... */
    int disk;         /* carries the arms and the lopsidedness */
} comp;

/* The disk's axis ratio seen at inclination incl (degrees) for an intrinsic thickness q0:
 * q^2 = cos^2 i + q0^2 sin^2 i (Hubble 1926). */
static double disk_q(const ds_morph_galaxy *g)
{
    double c = cos(g->disk_incl * DEG), s = sin(g->disk_incl * DEG);
    return sqrt(c * c + g->disk_q0 * g->disk_q0 * s * s);
}

static void e_of(double q, double phi, double *e1, double *e2)
{
    double e = (1 - q) / (1 + q);
    *e1 = e * cos(2 * phi);
    *e2 = e * sin(2 * phi);
}

/* The disk plane's point (X, Y) (units of the round profile, X along the line of nodes) to
 * the sky, pixels from the disk's centre: x' = X / sqrt(q), y' = Y sqrt(q) along the major
 * and minor axes (the area-kept shear of the simulator's convention), turned by pa. */
static void plane_to_sky(const ds_morph_galaxy *g, double X, double Y, double *px, double *py)
{
    double q = disk_q(g), cs = cos(g->disk_pa * DEG), sn = sin(g->disk_pa * DEG);
    double xp = X / sqrt(q), yp = Y * sqrt(q);
    *px = cs * xp - sn * yp;
    *py = sn * xp + cs * yp;
}

/* The bar (axis ratio bar_q, at bar_angle from the line of nodes in the disk plane) seen on
 * the sky: its quadratic form M^T Q_bar M with (X, Y) = M (x, y); det M = 1 keeps its
 * half-light radius. The major axis is the eigenvector of the smaller eigenvalue. */
static void bar_shape(const ds_morph_galaxy *g, double *e1, double *e2)
{
    const double q = disk_q(g), cs = cos(g->disk_pa * DEG), sn = sin(g->disk_pa * DEG);
    const double M[2][2] = {{sqrt(q) * cs, sqrt(q) * sn}, {-sn / sqrt(q), cs / sqrt(q)}};
    const double b = g->bar_angle * DEG, cb = cos(b), sb = sin(b), qb = g->bar_q;
    const double Q[2][2] = {{qb * cb * cb + sb * sb / qb, (qb - 1 / qb) * cb * sb},
                            {(qb - 1 / qb) * cb * sb, qb * sb * sb + cb * cb / qb}};
    double S[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double s = 0;
            for (int k = 0; k < 2; k++)
                for (int l = 0; l < 2; l++)
                    s += M[k][i] * Q[k][l] * M[l][j];
            S[i][j] = s;
        }
    double a = S[0][0], c = S[1][1], h = S[0][1];
    double mid = 0.5 * (a + c), rad = hypot(0.5 * (a - c), h);
    double lmin = mid - rad, lmax = mid + rad;
    double qs = sqrt(lmin / lmax), phi_max = 0.5 * atan2(2 * h, a - c);
    e_of(qs, phi_max + M_PI / 2, e1, e2);
}

static ds_status bad(const char *who, const char *what, double v, const char *rule)
{
    return dsi_fail(DS_ERR_ARG, "%s: %s = %g %s", who, what, v, rule);
}

/* The scene's parameters checked (the Sersic ones again by sersic.c). */
static ds_status check_galaxy(const ds_morph_galaxy *g, const char *who)
{
    if (!g)
        return dsi_fail(DS_ERR_ARG, "%s: galaxy is NULL", who);
    const double rest = g->bt + g->bar_frac + g->clump_frac + g->comp_frac;
    if (!(g->bt >= 0 && g->bt <= 1))
        return bad(who, "bt", g->bt, "must be in [0, 1]");
    if (!(g->bar_frac >= 0 && g->clump_frac >= 0 && g->comp_frac >= 0 && rest <= 1 + 1e-9))
        return dsi_fail(DS_ERR_ARG, "%s: bt %g, bar_frac %g, clump_frac %g and comp_frac %g "
                        "must be >= 0 and sum to at most 1 (the disk has the rest)", who, g->bt,
                        g->bar_frac, g->clump_frac, g->comp_frac);
    if (!(isfinite(g->flux) && isfinite(g->dx) && isfinite(g->dy)))
        return dsi_fail(DS_ERR_ARG, "%s: flux %g and offsets (%g, %g) must be finite", who,
                        g->flux, g->dx, g->dy);
    if (!(g->disk_incl >= 0 && g->disk_incl <= 90))
        return bad(who, "disk_incl", g->disk_incl, "must be in [0, 90] degrees");
    if (!(g->disk_q0 >= 0 && g->disk_q0 < 1) || !isfinite(g->disk_pa))
        return bad(who, "disk_q0", g->disk_q0, "must be in [0, 1), with a finite disk_pa");
    if (g->arms < 0 || g->arms > 8)
        return bad(who, "arms", g->arms, "must be in 0..8");
    if (!(g->arm_amp >= 0 && g->lopsided >= 0 && g->arm_amp + g->lopsided <= 1))
        return dsi_fail(DS_ERR_ARG, "%s: arm_amp %g and lopsided %g must be >= 0 with a sum "
                        "<= 1 (the disk's light stays >= 0)", who, g->arm_amp, g->lopsided);
    if (g->arms && !(g->arm_pitch > 0 && g->arm_pitch < 90 && isfinite(g->arm_phase)))
        return bad(who, "arm_pitch", g->arm_pitch, "must be in (0, 90) degrees");
    if (g->bar_frac > 0 && !(g->bar_hlr > 0 && g->bar_q > 0 && g->bar_q <= 1 &&
                             isfinite(g->bar_angle)))
        return dsi_fail(DS_ERR_ARG, "%s: the bar needs bar_hlr > 0 (%g) and bar_q in (0, 1] "
                        "(%g)", who, g->bar_hlr, g->bar_q);
    if (g->clumps < 0 || g->clumps > DS_MORPH_MAX_CLUMPS)
        return bad(who, "clumps", g->clumps, "must be in 0..8");
    if (g->clump_frac > 0 && (!g->clumps || !(g->clump_hlr > 0)))
        return dsi_fail(DS_ERR_ARG, "%s: clump_frac %g needs clumps > 0 (%d) and clump_hlr > 0 "
                        "(%g)", who, g->clump_frac, g->clumps, g->clump_hlr);
    double wsum = 0;
    for (int k = 0; k < g->clumps; k++) {
        if (!(g->clump_w[k] >= 0 && isfinite(g->clump_x[k]) && isfinite(g->clump_y[k])))
            return dsi_fail(DS_ERR_ARG, "%s: clump %d: weight %g must be >= 0, position (%g, %g) "
                            "finite", who, k, g->clump_w[k], g->clump_x[k], g->clump_y[k]);
        wsum += g->clump_w[k];
    }
    if (g->clump_frac > 0 && !(wsum > 0))
        return dsi_fail(DS_ERR_ARG, "%s: the clumps' weights sum to 0", who);
    for (int p = 0; p < DS_MORPH_PARTS; p++)
        if (!(fabs(g->colour[p][0]) < 20 && fabs(g->colour[p][1]) < 20))
            return dsi_fail(DS_ERR_ARG, "%s: colours of part %d (%g, %g) must be finite, within "
                            "20 mag", who, p, g->colour[p][0], g->colour[p][1]);
    return DS_OK;
}

/* The scene's components (at unit total r flux); their count. */
static int components(const ds_morph_galaxy *g, comp *c)
{
    int n = 0;
    const double disk = 1 - g->bt - g->bar_frac - g->clump_frac - g->comp_frac;
    const double q = disk_q(g);
    if (g->bt > 0)
        c[n++] = (comp){{g->bulge_n, g->bulge_hlr, 1, g->bulge_e1, g->bulge_e2, g->dx, g->dy},
                        g->bt, DS_MORPH_BULGE, 0};
    if (disk > 1e-12) {
        comp d = {{g->disk_n, g->disk_hlr, 1, 0, 0, g->dx, g->dy}, disk, DS_MORPH_DISK, 1};
        e_of(q, g->disk_pa * DEG, &d.g.e1, &d.g.e2);
        c[n++] = d;
    }
    if (g->bar_frac > 0) {
        comp b = {{0.5, g->bar_hlr, 1, 0, 0, g->dx, g->dy}, g->bar_frac, DS_MORPH_BAR, 0};
        bar_shape(g, &b.g.e1, &b.g.e2);
        c[n++] = b;
    }
    double wsum = 0;
    for (int k = 0; k < g->clumps; k++)
        wsum += g->clump_w[k];
    for (int k = 0; k < g->clumps && g->clump_frac > 0; k++) {
        double px, py;
        plane_to_sky(g, g->clump_x[k] * g->disk_hlr, g->clump_y[k] * g->disk_hlr, &px, &py);
        c[n++] = (comp){{0.5, g->clump_hlr, 1, 0, 0, g->dx + px, g->dy + py},
                        g->clump_frac * g->clump_w[k] / wsum, DS_MORPH_CLUMPS, 0};
    }
    if (g->comp_frac > 0)
        c[n++] = (comp){{g->comp_n, g->comp_hlr, 1, g->comp_e1, g->comp_e2, g->dx + g->comp_dx,
                         g->dy + g->comp_dy}, g->comp_frac, DS_MORPH_COMPANION, 0};
    return n;
}

/* Flux in band b (0 g, 1 r, 2 i) over the flux in r of a part of colours (g - r, r - i). */
static double band_factor(const double *colour, int b)
{
    return b == 0 ? pow(10, -0.4 * colour[0]) : b == 2 ? pow(10, 0.4 * colour[1]) : 1;
}

/* The disk's arms and lopsidedness on its cells: in the disk plane (radius R, azimuth t)
 * the light is multiplied by 1 + w(R) [A (f / <f> - 1) + L cos(t - phase)], with
 * f = ((1 + cos(m (t - cot(pitch) ln(R / hlr)) - phase)) / 2)^2 the logarithmic arms
 * (<f> = 3/8 its mean over t) and w = 1 - exp(-(2 R / hlr)^2) fading both toward the
 * centre. The angular mean is 1 at every radius, so the arms move light and add none; the
 * cells are then rescaled to the unmodulated total, which makes that exact on the grid. */
static void modulate(const ds_morph_galaxy *g, const comp *d, int size, int k, int m,
                     double *cell)
{
    const int nc = (size + 2 * m) * k;
    const double h = 1.0 / k, lo = -m - 0.5, c0 = 0.5 * (size - 1);
    const double q = disk_q(g), cs = cos(g->disk_pa * DEG), sn = sin(g->disk_pa * DEG);
    const double cot = g->arms ? 1 / tan(g->arm_pitch * DEG) : 0, ph = g->arm_phase * DEG;
    double before = 0, after = 0;
    for (int i = 0; i < nc; i++) {
        double y = lo + (i + 0.5) * h - c0 - d->g.dy;
        for (int j = 0; j < nc; j++) {
            double x = lo + (j + 0.5) * h - c0 - d->g.dx;
            double X = sqrt(q) * (cs * x + sn * y), Y = (-sn * x + cs * y) / sqrt(q);
            double R = hypot(X, Y) + 1e-12, t = atan2(Y, X);
            double w = 1 - exp(-4 * R * R / (g->disk_hlr * g->disk_hlr)), mod = 0;
            if (g->arms) {
                double f = 0.5 * (1 + cos(g->arms * (t - cot * log(R / g->disk_hlr)) - ph));
                mod += g->arm_amp * (f * f / 0.375 - 1);
            }
            mod += g->lopsided * cos(t - ph);
            double *v = cell + (size_t)i * nc + j;
            before += *v;
            *v *= 1 + w * mod;
            after += *v;
        }
    }
    if (after > 0)
        for (int64_t i = 0; i < (int64_t)nc * nc; i++)
            cell[i] *= before / after;
}

ds_status ds_morph_render(const ds_morph_galaxy *g, const ds_psf *psf, int size, int bands,
                          float *img)
{
    const char *who = "ds_morph_render";
    ds_status st;
    if ((st = check_galaxy(g, who)) || (st = dsi_psf_check(psf, who)))
        return st;
    if (!img || size < 4 || size > 4096 || (bands != 1 && bands != 3))
        return dsi_fail(DS_ERR_ARG, "%s: image %s, size %d (4..4096), bands %d (1: r; 3: g, r, "
                        "i)", who, img ? "given" : "NULL", size, bands);
    comp c[MAX_COMPS];
    const int nco = components(g, c);
    const int conv = psf && psf->kind != DS_PSF_NONE;
    const int k = dsi_psf_oversample(psf), m = dsi_psf_margin(psf, size);
    const int nc = (size + 2 * m) * k, ns = size * k;
    if ((double)nc * nc > 1 << 24)
        return dsi_fail(DS_ERR_ARG, "%s: a %d-pixel stamp with a %d-pixel margin and %d x %d "
                        "sub-cells per pixel is too large", who, size, m, k, k);
    const size_t cells = (size_t)nc * nc;
    double *grid = calloc(cells * (size_t)(bands + 1) + (size_t)ns * ns, sizeof *grid);
    if (!grid)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory (%d x %d cells)", who, nc, nc);
    double *tmp = grid + cells * (size_t)bands, *sub = tmp + cells;
    for (int i = 0; i < nco && !st; i++) {
        if ((st = dsi_sersic_grid(&c[i].g, size, k, m, conv, tmp, who)))
            break;
        if (c[i].disk && (g->arms || g->lopsided > 0))
            modulate(g, &c[i], size, k, m, tmp);
        for (int b = 0; b < bands; b++) {
            const double w = g->flux * c[i].frac *
                             band_factor(g->colour[c[i].part], bands == 1 ? 1 : b);
            double *gb = grid + cells * (size_t)b;
            for (size_t j = 0; j < cells; j++)
                gb[j] += w * tmp[j];
        }
    }
    for (int b = 0; b < bands && !st; b++) {
        const double *src = grid + cells * (size_t)b;
        if (conv && (st = dsi_psf_convolve(psf, size, k, m, src, sub)))
            break;
        if (conv)
            src = sub;
        float *out = img + (size_t)b * size * size;
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) {
                double s = 0;
                for (int a = 0; a < k; a++)
                    for (int e = 0; e < k; e++)
                        s += src[(size_t)(i * k + a) * ns + (size_t)j * k + e];
                out[(size_t)i * size + j] = (float)s;
            }
    }
    free(grid);
    return st;
}

/* The whole galaxy's g - r and r - i from its parts' (total fluxes). */
static void total_colours(const ds_morph_galaxy *g, double *gr, double *ri)
{
    comp c[MAX_COMPS];
    const int n = components(g, c);
    double fg = 0, fi = 0;
    for (int i = 0; i < n; i++) {
        fg += c[i].frac * band_factor(g->colour[c[i].part], 0);
        fi += c[i].frac * band_factor(g->colour[c[i].part], 2);
    }
    *gr = -2.5 * log10(fg);
    *ri = 2.5 * log10(fi);
}

/* ---- the simulator ---- */

static double uni(ds_rng *r, double lo, double hi) { return lo + (hi - lo) * ds_rng_uniform(r); }

/* A shape of |e| uniform in the disc |e| <= emax. */
static void draw_e(ds_rng *r, double emax, double *e1, double *e2)
{
    double e = emax * sqrt(ds_rng_uniform(r)), t = 2 * M_PI * ds_rng_uniform(r);
    *e1 = e * cos(t);
    *e2 = e * sin(t);
}

/* Colours with a scatter of 0.05 mag about each part's typical one: bulges and bars red,
 * disks bluer, clumps of star formation bluest (roughly SDSS's g - r and r - i of E, Sbc
 * and star-forming regions at low redshift). */
static void draw_colours(ds_rng *r, ds_morph_galaxy *g)
{
    static const double base[DS_MORPH_PARTS][2] = {
        {0.75, 0.40}, {0.45, 0.25}, {0.65, 0.35}, {0.20, 0.05}, {0.60, 0.30}};
    for (int p = 0; p < DS_MORPH_PARTS; p++)
        for (int j = 0; j < 2; j++)
            g->colour[p][j] = base[p][j] + 0.05 * ds_rng_normal(r);
}

static void draw_disk(const ds_morph_opts *o, ds_rng *r, ds_morph_galaxy *g)
{
    g->disk_n = 1;
    g->disk_hlr = uni(r, o->hlr_min, o->hlr_max);
    g->disk_incl = acos(uni(r, cos(80 * DEG), 1)) / DEG;   /* random orientations to 80 deg */
    g->disk_pa = uni(r, 0, 180);
    g->disk_q0 = 0.12;
}

static void draw_bar(const ds_morph_opts *o, ds_rng *r, ds_morph_galaxy *g)
{
    if (ds_rng_uniform(r) >= o->bar_prob)
        return;
    g->bar_frac = uni(r, 0.05, 0.15);
    g->bar_hlr = uni(r, 0.4, 0.8) * g->disk_hlr;
    g->bar_q = uni(r, 0.25, 0.4);
    g->bar_angle = uni(r, 0, 180);
}

static void draw_clumps(ds_rng *r, int lo, int hi, double rmax, ds_morph_galaxy *g)
{
    g->clumps = lo + (int)((hi - lo + 1) * ds_rng_uniform(r));
    g->clump_hlr = uni(r, 0.5, 1.2);
    for (int k = 0; k < g->clumps; k++) {
        double rad = uni(r, 0.2, rmax), t = uni(r, 0, 2 * M_PI);
        g->clump_x[k] = rad * cos(t);
        g->clump_y[k] = rad * sin(t);
        g->clump_w[k] = uni(r, 0.3, 1);
    }
}

/* Row i's galaxy of class i mod 4 (flux 1); *merger: an irregular that is a merger. */
static void draw_row(const ds_morph_opts *o, int64_t i, ds_morph_galaxy *g, double *snr,
                     int *merger)
{
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->seed, TAG_DRAW, i));
    const int cls = (int)(i % DS_MORPH_CLASSES);
    *g = (ds_morph_galaxy){.flux = 1};
    *merger = 0;
    g->dx = uni(&r, -o->offset_max, o->offset_max);
    g->dy = uni(&r, -o->offset_max, o->offset_max);
    *snr = o->snr_max > 0 ? uni(&r, o->snr_min, o->snr_max) : NAN;
    draw_colours(&r, g);
    draw_disk(o, &r, g);
    if (cls == DS_MORPH_ELLIPTICAL) {
        g->bt = uni(&r, 0.85, 1);
        g->bulge_n = uni(&r, 3, 6);
        g->bulge_hlr = uni(&r, 0.5, 0.9) * g->disk_hlr;
        g->disk_hlr *= 1.5;
        draw_e(&r, 0.4, &g->bulge_e1, &g->bulge_e2);
    } else if (cls == DS_MORPH_LENTICULAR || cls == DS_MORPH_SPIRAL) {
        const int s0 = cls == DS_MORPH_LENTICULAR;
        g->bt = s0 ? uni(&r, 0.3, 0.7) : uni(&r, 0, 0.3);
        g->bulge_n = s0 ? uni(&r, 2, 4.5) : uni(&r, 1, 3);
        g->bulge_hlr = fmax(0.7, (s0 ? uni(&r, 0.25, 0.5) : uni(&r, 0.2, 0.4)) * g->disk_hlr);
        draw_e(&r, 0.2, &g->bulge_e1, &g->bulge_e2);
        draw_bar(o, &r, g);
        if (!s0) {
            double u = ds_rng_uniform(&r);
            g->arms = u < 0.7 ? 2 : u < 0.9 ? 3 : 4;
            g->arm_amp = uni(&r, 0.5, 0.9);
            g->arm_pitch = uni(&r, 10, 30);
            g->arm_phase = uni(&r, 0, 360);
        }
    } else if (ds_rng_uniform(&r) >= o->merger_frac) {   /* a clumpy, lopsided irregular */
        g->bt = uni(&r, 0, 0.1);
        g->bulge_n = 1;
        g->bulge_hlr = fmax(0.7, 0.3 * g->disk_hlr);
        g->disk_n = uni(&r, 0.5, 1.2);
        g->lopsided = uni(&r, 0.2, 0.5);
        g->arm_phase = uni(&r, 0, 360);
        g->clump_frac = uni(&r, 0.2, 0.45);
        draw_clumps(&r, 3, 8, 1.6, g);
    } else {   /* a merger: a bulge + disk primary, a companion, tidal debris */
        *merger = 1;
        g->bulge_n = uni(&r, 1.5, 4);
        g->bulge_hlr = fmax(0.7, uni(&r, 0.25, 0.5) * g->disk_hlr);
        draw_e(&r, 0.2, &g->bulge_e1, &g->bulge_e2);
        double ratio = uni(&r, 0.3, 1), sep = uni(&r, 1, 2.5) * g->disk_hlr;
        double t = uni(&r, 0, 2 * M_PI);
        g->comp_frac = ratio / (1 + ratio);
        g->bt = uni(&r, 0.2, 0.7) * (1 - g->comp_frac);
        g->comp_n = uni(&r, 1, 4);
        g->comp_hlr = uni(&r, 0.5, 1) * g->disk_hlr;
        draw_e(&r, 0.4, &g->comp_e1, &g->comp_e2);
        g->lopsided = uni(&r, 0.2, 0.5);
        g->arm_phase = t / DEG;
        g->clump_frac = uni(&r, 0.05, 0.15) * (1 - g->comp_frac - g->bt);
        draw_clumps(&r, 2, 4, 2.5, g);
        /* the pair's light-weighted centre at the drawn offset */
        g->comp_dx = sep * cos(t);
        g->comp_dy = sep * sin(t);
        g->dx -= g->comp_frac * g->comp_dx;
        g->dy -= g->comp_frac * g->comp_dy;
    }
}

static void truth_row(const ds_morph_opts *o, int64_t i, const ds_morph_galaxy *g, double snr,
                      int merger, float *t)
{
    double v[M_COLS] = {0}, de1, de2;
    e_of(disk_q(g), g->disk_pa * DEG, &de1, &de2);
    v[M_CLASS] = (double)(i % DS_MORPH_CLASSES);
    v[M_BT] = g->bt, v[M_FLUX] = g->flux, v[M_SNR] = snr;
    v[M_DX] = g->dx + g->comp_frac * g->comp_dx, v[M_DY] = g->dy + g->comp_frac * g->comp_dy;
    v[M_BN] = g->bulge_n, v[M_BHLR] = g->bulge_hlr, v[M_BE1] = g->bulge_e1;
    v[M_BE2] = g->bulge_e2, v[M_DN] = g->disk_n, v[M_DHLR] = g->disk_hlr;
    v[M_INCL] = g->disk_incl, v[M_PA] = g->disk_pa, v[M_DE1] = de1, v[M_DE2] = de2;
    v[M_ARMS] = g->arms, v[M_ARM_AMP] = g->arm_amp, v[M_PITCH] = g->arm_pitch;
    v[M_LOPSIDED] = g->lopsided, v[M_BAR] = g->bar_frac, v[M_CLUMPS] = g->clumps;
    v[M_CLUMP_FRAC] = g->clump_frac, v[M_COMP_FRAC] = g->comp_frac;
    v[M_COMP_SEP] = hypot(g->comp_dx, g->comp_dy), v[M_MERGER] = merger;
    v[M_FWHM] = o->psf.kind == DS_PSF_NONE ? 0 : o->psf.fwhm;
    total_colours(g, &v[M_GR], &v[M_RI]);
    for (int j = 0; j < M_COLS; j++)
        t[j] = (float)v[j];
}

static ds_status resolve(const ds_morph_opts *in, ds_morph_opts *o)
{
    *o = *in;
    if (o->size == 0)
        o->size = 48;
    if (o->hlr_min == 0 && o->hlr_max == 0)
        o->hlr_min = 3, o->hlr_max = 7;
    if (o->sky_sigma == 0)
        o->sky_sigma = 1;
    if (o->bands == 0)
        o->bands = 1;
    if (o->count < 1 || o->count > ((int64_t)1 << 40))
        return dsi_fail(DS_ERR_ARG, "sim morphology: count %lld must be >= 1",
                        (long long)o->count);
    if (o->size < 8 || o->size > 1024)
        return dsi_fail(DS_ERR_ARG, "sim morphology: stamp size %d must be in [8, 1024]",
                        o->size);
    if (o->bands != 1 && o->bands != 3)
        return dsi_fail(DS_ERR_ARG, "sim morphology: bands %d must be 1 (r) or 3 (g, r, i)",
                        o->bands);
    if (!(o->hlr_min > 0 && o->hlr_max >= o->hlr_min && o->hlr_max <= o->size))
        return dsi_fail(DS_ERR_ARG, "sim morphology: disk half-light radius range [%g, %g] must "
                        "be within (0, %d] pixels", o->hlr_min, o->hlr_max, o->size);
    if (o->snr_max > 0 && !(o->snr_min > 0 && o->snr_max >= o->snr_min && o->snr_max < 1e12))
        return dsi_fail(DS_ERR_ARG, "sim morphology: SNR range [%g, %g] must be positive",
                        o->snr_min, o->snr_max);
    if (!(o->sky_sigma > 0 && isfinite(o->sky_sigma)))
        return dsi_fail(DS_ERR_ARG, "sim morphology: sky_sigma %g must be > 0", o->sky_sigma);
    if (!(o->offset_max >= 0 && o->offset_max <= o->size / 4.0))
        return dsi_fail(DS_ERR_ARG, "sim morphology: offset_max %g must be in [0, size / 4]",
                        o->offset_max);
    if (!(o->bar_prob >= 0 && o->bar_prob <= 1 && o->merger_frac >= 0 && o->merger_frac <= 1))
        return dsi_fail(DS_ERR_ARG, "sim morphology: bar_prob %g and merger_frac %g must be in "
                        "[0, 1]", o->bar_prob, o->merger_frac);
    return dsi_psf_check(&o->psf, "sim morphology");
}

/* Row i: drawn, rendered at unit flux, scaled to its SNR (in r), noise in each band. */
static ds_status sim_row(const ds_morph_opts *o, int64_t i, float *im, float *t)
{
    ds_morph_galaxy g;
    double snr;
    int merger;
    draw_row(o, i, &g, &snr, &merger);
    const int64_t npix = (int64_t)o->size * o->size;
    ds_status st = ds_morph_render(&g, &o->psf, o->size, o->bands, im);
    if (st)
        return st;
    const float *r_band = im + (o->bands == 3 ? npix : 0);
    double snr1 = ds_image_snr(r_band, npix, o->sky_sigma);
    if (o->snr_max > 0) {
        g.flux = snr / snr1;
        for (int64_t j = 0; j < o->bands * npix; j++)
            im[j] *= (float)g.flux;
        for (int b = 0; b < o->bands; b++) {
            ds_rng nr;
            ds_rng_seed(&nr, dsi_row_seed(o->seed, TAG_NOISE ^ (uint64_t)b, i));
            ds_add_noise(im + b * npix, npix, o->sky_sigma, 0, &nr);
        }
    } else {
        snr = snr1;
    }
    truth_row(o, i, &g, snr, merger, t);
    return DS_OK;
}

ds_status ds_sim_morphology(const ds_morph_opts *opts, ds_tensor **images, ds_tensor **truth)
{
    if (!opts || !images || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_sim_morphology: options and outputs must not be NULL");
    *images = *truth = NULL;
    ds_morph_opts o;
    ds_status st = resolve(opts, &o);
    if (st)
        return st;
    const int64_t n = o.count, per = (int64_t)o.bands * o.size * o.size;
    int64_t is[4] = {n, o.bands, o.size, o.size}, ts[2] = {n, M_COLS};
    ds_tensor *img = ds_tensor_create(4, is), *tr = ds_tensor_create(2, ts);
    if (!img || !tr) {
        ds_tensor_free(img);
        ds_tensor_free(tr);
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_morphology: out of memory for %lld stamps of %d "
                        "x %d x %d", (long long)n, o.bands, o.size, o.size);
    }
    float *x = ds_tensor_data(img), *t = ds_tensor_data(tr);
    int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; i++) {
        if (sim_row(&o, i, x + i * per, t + i * M_COLS) != DS_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            if (failed < 0 || i < failed)
                failed = i;
        }
    }
    if (failed >= 0) {   /* rerun on this thread for the message */
        st = sim_row(&o, failed, x + failed * per, t + failed * M_COLS);
        ds_tensor_free(img);
        ds_tensor_free(tr);
        return st ? st : dsi_fail(DS_ERR_NOMEM, "ds_sim_morphology: row %lld failed",
                                  (long long)failed);
    }
    *images = img;
    *truth = tr;
    return DS_OK;
}
