/* photometry.c - simulated galaxy photometry for photometric redshifts: five analytic
 * spectral templates in the manner of Coleman, Wu and Weedman (1980) (elliptical to
 * starburst: a power-law continuum, a 4000 A break, emission lines), redshifted over
 * 0 < z < 3 through the intergalactic Lyman-alpha forest and Lyman limit, observed in six
 * LSST-like bands (ugrizy) as AB magnitudes with noise from 5-sigma depths. */
#include "../internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NB DS_PHOTO_BANDS
#define NT DS_PHOTO_TYPES
/* The synthetic photometry runs on a grid uniform in ln(lambda), observed frame from L_LO,
 * NL points of step DL; the colour tables on NZ redshifts uniform in ln(1 + z) with the
 * same step, up to Z_TOP: redshifting is then a shift by one grid point per table row. */
#define Z_TOP 3.0
#define NZ 3001
#define DL (1.3862943611198906 / (NZ - 1))   /* ln(1 + Z_TOP) / (NZ - 1) */
#define L_LO 2800.0                           /* Angstrom */
#define NL 3001                               /* to L_LO (1 + Z_TOP) = 11200 A */

static const char *const band_names[NB + 1] = {"u", "g", "r", "i", "z", "y", NULL};
/* LSST-like bandpasses: top hats between these edges with tanh shoulders of 40 A */
static const double band_lo[NB] = {3200, 4000, 5520, 6910, 8180, 9220};
static const double band_hi[NB] = {4000, 5520, 6910, 8180, 9220, 10600};
/* 5-sigma point-source depths (AB), roughly LSST's ten-year ones */
static const double depth_default[NB] = {25.6, 26.9, 26.9, 26.4, 25.6, 24.8};

/* The templates: ln f_nu = slope x - curv x^2 with x = ln(lambda / 5500) (a continuum that
 * turns over in the near infrared, at 1.6 microns for the elliptical, as old stars do),
 * times the break below 4000 A (a tanh step of 150 A), times (lambda / 1500)^uv_slope
 * below 1500 A, plus Gaussian emission lines of rest-frame equivalent width ew x weight
 * ([OII] 3727, H-beta, [OIII] 5007, H-alpha). */
typedef struct {
    const char *name;
    double slope, curv, brk, uv_slope, ew;
} template_def;
static const template_def templates[NT] = {
    {"E", 2.6, 1.2, 0.30, 2.0, 0},
    {"Sbc", 1.7, 0.8, 0.55, 1.2, 15},
    {"Scd", 1.1, 0.5, 0.72, 0.6, 35},
    {"Irr", 0.6, 0.3, 0.85, 0.2, 60},
    {"SB", 0.1, 0.1, 0.95, -0.3, 110},
};

static double continuum(const template_def *t, double lr)
{
    double x = log(lr / 5500);
    return exp(t->slope * x - t->curv * x * x);
}
static const double line_l[4] = {3727, 4861, 5007, 6563}, line_w[4] = {0.8, 0.3, 0.9, 1.0};

const char *const *ds_photo_bands(void) { return band_names; }

const char *ds_photo_type_name(int type)
{
    return type >= 0 && type < NT ? templates[type].name : NULL;
}

double ds_photo_sed(int type, double lr)
{
    if (type < 0 || type >= NT || !(lr > 0))
        return NAN;
    const template_def *t = &templates[type];
    double f = continuum(t, lr);
    f *= t->brk + (1 - t->brk) * 0.5 * (1 + tanh((lr - 4000) / 150));
    if (lr < 1500)
        f *= pow(lr / 1500, t->uv_slope);
    /* lines: EW in f_lambda terms; near a line f_nu and f_lambda differ by a smooth factor,
     * so the continuum at the line stands in (sigma 10 A) */
    for (int k = 0; k < 4; k++) {
        double d = (lr - line_l[k]) / 10;
        if (fabs(d) < 8) {
            double cont = continuum(t, line_l[k]);
            f += cont * t->ew * line_w[k] * exp(-0.5 * d * d) / (10 * sqrt(2 * M_PI));
        }
    }
    return f;
}

double ds_photo_filter(int band, double l)
{
    if (band < 0 || band >= NB)
        return NAN;
    return 0.25 * (1 + tanh((l - band_lo[band]) / 40)) * (1 + tanh((band_hi[band] - l) / 40));
}

/* The tables: mags[type][iz][band] relative to i, for ln(1 + z) = iz DL. */
static float *table;

/* Band b's grid points where its weight is above 1e-20 (the tanh shoulders never reach 0:
 * the rest adds less than 1e-20 relative): [lo[b], hi[b]). */
static void band_span(const double *w, int *lo, int *hi)
{
    for (int b = 0; b < NB; b++) {
        lo[b] = 0, hi[b] = NL;
        while (lo[b] < NL && w[b * NL + lo[b]] < 1e-20)
            lo[b]++;
        while (hi[b] > lo[b] && w[b * NL + hi[b] - 1] < 1e-20)
            hi[b]--;
    }
}

/* One type's rows: the SED on the rest-frame grid lambda_r = L_LO exp((j - NZ + 1) DL),
 * j < NL + NZ - 1, then for each row iz the filter-weighted means over the observed grid
 * point jo (rest index jo - iz + NZ - 1), the IGM applied where the rest frame is below
 * Lyman alpha: Madau 1995's Lyman-alpha and Lyman-beta forests, exp(-tau) with tau =
 * 0.0036 (l / 1216)^3.46 below 1216 A rest frame, plus 0.0017 (l / 1026)^3.46 below 1026 A,
 * and nothing below the Lyman limit (912 A); both transmissions computed once per observed
 * point l. */
static int type_rows(int type, const double *w, float *out)
{
    const int nr = NL + NZ - 1;
    double *sed = malloc(sizeof *sed * (size_t)(nr + 2 * NL));
    unsigned char *zone = malloc((size_t)nr);
    if (!sed || !zone) {
        free(sed);
        free(zone);
        return 1;
    }
    double *ta = sed + nr, *tab = ta + NL;   /* exp(-tau) of Lyman alpha, of alpha and beta */
    for (int j = 0; j < nr; j++) {
        double lr = L_LO * exp((j - NZ + 1) * DL);
        sed[j] = ds_photo_sed(type, lr);
        zone[j] = lr >= 1216 ? 0 : lr < 912 ? 3 : lr < 1026 ? 2 : 1;
    }
    for (int jo = 0; jo < NL; jo++) {
        double l = L_LO * exp(jo * DL), a = 0.0036 * pow(l / 1216, 3.46);
        ta[jo] = exp(-a);
        tab[jo] = exp(-(a + 0.0017 * pow(l / 1026, 3.46)));
    }
    int lo[NB], hi[NB];
    band_span(w, lo, hi);
    for (int iz = 0; iz < NZ; iz++) {
        double m[NB];
        const double *s = sed - iz + NZ - 1;   /* s[jo]: the SED at observed point jo */
        const unsigned char *zn = zone - iz + NZ - 1;
        for (int b = 0; b < NB; b++) {
            double num = 0, den = 0;
            for (int jo = lo[b]; jo < hi[b]; jo++) {
                double t = zn[jo] == 0 ? 1 : zn[jo] == 1 ? ta[jo] : zn[jo] == 2 ? tab[jo] : 0;
                num += s[jo] * t * w[b * NL + jo];
                den += w[b * NL + jo];
            }
            m[b] = -2.5 * log10(num / den);
        }
        for (int b = 0; b < NB; b++)
            out[(size_t)iz * NB + b] = (float)(m[b] - m[3]);
    }
    free(sed);
    free(zone);
    return 0;
}

static ds_status build_table(void)
{
    if (__atomic_load_n(&table, __ATOMIC_ACQUIRE))
        return DS_OK;
    float *t = malloc(sizeof *t * (size_t)NT * NZ * NB);
    double *w = malloc(sizeof *w * (size_t)NB * NL);
    if (!t || !w) {
        free(t);
        free(w);
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_photometry: out of memory for the colour tables");
    }
    int failed = 0;
    for (int b = 0; b < NB; b++)   /* d lambda / lambda is the grid's own measure */
        for (int j = 0; j < NL; j++)
            w[b * NL + j] = ds_photo_filter(b, L_LO * exp(j * DL));
#pragma omp parallel for schedule(static) reduction(+ : failed)
    for (int k = 0; k < NT; k++)
        failed += type_rows(k, w, t + (size_t)k * NZ * NB);
    free(w);
    if (failed) {
        free(t);
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_photometry: out of memory for the colour tables");
    }
    float *none = NULL;
    if (!__atomic_compare_exchange_n(&table, &none, t, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        free(t);   /* another thread built it first */
    return DS_OK;
}

/* Colours of a galaxy of fractional type tf (between templates floor(tf) and floor(tf) + 1,
 * mixed in flux at i) at z, relative to i: linear in ln(1 + z) between table rows. */
static void colours(double tf, double z, double *m)
{
    int t0 = (int)floor(tf);
    t0 = t0 < 0 ? 0 : t0 > NT - 1 ? NT - 1 : t0;
    int t1 = t0 < NT - 1 ? t0 + 1 : t0;
    double w = tf - t0, u = log1p(z) / DL;
    int iz = (int)u;
    iz = iz >= NZ - 1 ? NZ - 2 : iz;
    double a = u - iz;
    for (int b = 0; b < NB; b++) {
        double c[2];
        for (int s = 0; s < 2; s++) {
            const float *r = table + ((size_t)(s ? t1 : t0) * NZ + iz) * NB;
            c[s] = (1 - a) * r[b] + a * r[NB + b];
        }
        m[b] = -2.5 * log10((1 - w) * pow(10, -0.4 * c[0]) + w * pow(10, -0.4 * c[1]));
    }
}

ds_status ds_photo_colours(double type, double z, double *mags)
{
    if (!mags || !(type >= 0 && type <= NT - 1) || !(z >= 0 && z <= Z_TOP))
        return dsi_fail(DS_ERR_ARG, "ds_photo_colours: type %g must be in [0, %d] and z %g in "
                        "[0, %g]%s", type, NT - 1, z, Z_TOP, mags ? "" : " (mags is NULL)");
    ds_status st = build_table();
    if (st == DS_OK)
        colours(type, z, mags);
    return st;
}

/* ---- the simulator ---- */

static ds_status check_opts(const ds_photo_opts *o)
{
    if (!o)
        return dsi_fail(DS_ERR_ARG, "ds_sim_photometry: options are NULL");
    if (o->count < 1 || o->count > 100000000)
        return dsi_fail(DS_ERR_ARG, "ds_sim_photometry: count %lld must be in [1, 1e8]",
                        (long long)o->count);
    if (!(o->mag_min < o->mag_max) || !(o->mag_min >= 10) || !(o->mag_max <= 30))
        return dsi_fail(DS_ERR_ARG, "ds_sim_photometry: i-band range %g:%g must be increasing, "
                        "within [10, 30]", o->mag_min, o->mag_max);
    if (!(o->z_max > 0 && o->z_max <= Z_TOP))
        return dsi_fail(DS_ERR_ARG, "ds_sim_photometry: z_max %g must be in (0, %g]", o->z_max,
                        Z_TOP);
    for (int b = 0; b < NB; b++)
        if (!(o->depth[b] == 0 || (o->depth[b] >= 15 && o->depth[b] <= 35)))
            return dsi_fail(DS_ERR_ARG, "ds_sim_photometry: %s-band depth %g must be 0 (the "
                            "default, %g) or in [15, 35]", band_names[b], o->depth[b],
                            depth_default[b]);
    return DS_OK;
}

/* Draws galaxy i: i-band magnitude from counts dN/dm ~ 10^(0.3 m) in [mag_min, mag_max];
 * type from a mix that grows bluer with magnitude; z from p(z | m) ~ z^2 exp(-(z / z_m)^1.5)
 * with z_m = 0.18 + 0.07 (m - 18) (Benitez 2000's form), cut at z_max (by rejection). */
static void draw(const ds_photo_opts *o, ds_rng *r, double *m, double *tf, double *z)
{
    double a = pow(10, 0.3 * o->mag_min), b = pow(10, 0.3 * o->mag_max);
    *m = log10(a + (b - a) * ds_rng_uniform(r)) / 0.3;
    double late = 0.35 + 0.08 * (*m - 18);
    late = late > 0.9 ? 0.9 : late;
    double u = ds_rng_uniform(r);
    *tf = u < 1 - late ? 1.5 * u / (1 - late) : 1.5 + 2.5 * (u - (1 - late)) / late;
    double zm = 0.18 + 0.07 * (*m - 18);
    do {   /* z^2 exp(-(z/zm)^1.5): x = (z/zm)^1.5 is Gamma(2): the sum of two exponentials */
        double x = -log(1 - ds_rng_uniform(r)) - log(1 - ds_rng_uniform(r));
        *z = zm * pow(x, 1 / 1.5);
    } while (*z > o->z_max);
}

static const char *const photo_columns[] = {
    "mag_u", "mag_g", "mag_r", "mag_i", "mag_z", "mag_y",
    "err_u", "err_g", "err_r", "err_i", "err_z", "err_y", NULL};
static const char *const photo_truth[] = {"redshift", "type", "mag_i_true", NULL};

const char *const *ds_photo_columns(void) { return photo_columns; }
const char *const *ds_photo_truth_columns(void) { return photo_truth; }

/* Observed magnitudes: flux f = 10^(-0.4 m) with Gaussian noise of sigma = f_lim / 5; the
 * magnitude of the noisy flux and its error 1.0857 sigma / f. A flux below its 1-sigma
 * error is a non-detection: the 1-sigma limit as the magnitude, and the error 1.0857 of
 * signal-to-noise 1 (finite values that a network can take). */
static void observe(const double *depth, const double *m, ds_rng *r, float *out)
{
    for (int b = 0; b < NB; b++) {
        double lim = depth[b] ? depth[b] : depth_default[b];
        double s = pow(10, -0.4 * lim) / 5, f = pow(10, -0.4 * m[b]) + s * ds_rng_normal(r);
        if (f > s) {
            out[b] = (float)(-2.5 * log10(f));
            out[NB + b] = (float)(1.0857362 * s / f);
        } else {
            out[b] = (float)(-2.5 * log10(s));
            out[NB + b] = 1.0857362f;
        }
    }
}

ds_status ds_sim_photometry(const ds_photo_opts *o, ds_tensor **mags, ds_tensor **truth)
{
    ds_status st;
    if (!mags || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_sim_photometry: output pointers are NULL");
    *mags = *truth = NULL;
    if ((st = check_opts(o)) || (st = build_table()))
        return st;
    ds_tensor *x = ds_tensor_create(2, (int64_t[]){o->count, 2 * NB});
    ds_tensor *t = ds_tensor_create(2, (int64_t[]){o->count, 3});
    if (!x || !t) {
        ds_tensor_free(x);
        ds_tensor_free(t);
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_photometry: out of memory for %lld galaxies",
                        (long long)o->count);
    }
    float *px = ds_tensor_data(x), *pt = ds_tensor_data(t);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < o->count; i++) {
        ds_rng r;
        ds_rng_seed(&r, dsi_mix64(o->seed ^ dsi_mix64((uint64_t)i + 0x70686f746fULL)));
        double m, tf, z, c[NB];
        draw(o, &r, &m, &tf, &z);
        colours(tf, z, c);
        for (int b = 0; b < NB; b++)
            c[b] += m;
        observe(o->depth, c, &r, px + i * 2 * NB);
        pt[3 * i] = (float)z, pt[3 * i + 1] = (float)tf, pt[3 * i + 2] = (float)m;
    }
    *mags = x;
    *truth = t;
    return DS_OK;
}
