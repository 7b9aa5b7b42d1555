/* sim.c - the galaxy simulator: GalSim's SNR, sky and Poisson noise, and catalogues of
 * noisy galaxy stamps with their truth table (parameters drawn serially from one seeded
 * stream, stamps rendered in parallel, each with its own noise stream). */
#include "sim.h"
#include "realism.h"

#include "../internal.h"

#include <math.h>

enum {
    C_E1, C_E2, C_N, C_HLR, C_FLUX, C_SNR, C_FWHM, C_DX, C_DY,
    C_PBETA, C_PE1, C_PE2, C_PLOD, C_POBSC,   /* variable PSFs */
    C_NB_FLUX, C_NB_DX, C_NB_DY, C_NB_HLR,    /* the neighbour galaxy (realism.c) */
    N_DRAWN,                                  /* the columns drawn (and a params table's) */
    /* shear (shear.c): the applied shear and the intrinsic shape before it */
    C_G1 = N_DRAWN, C_G2, C_E1_INT, C_E2_INT,
    N_COLS
};

static const char *const columns[N_COLS + 1] = {
    "e1", "e2", "n", "hlr", "flux", "snr", "psf_fwhm", "dx", "dy",
    "psf_beta", "psf_e1", "psf_e2", "psf_lod", "psf_obsc",   /* variable PSFs */
    "nb_flux", "nb_dx", "nb_dy", "nb_hlr",                   /* neighbour */
    "g1", "g2", "e1_int", "e2_int",                          /* shear */
    NULL,
};

const char *const *ds_sim_columns(void) { return columns; }
int ds_sim_column_count(void) { return N_COLS; }

double ds_image_snr(const float *img, int64_t npix, double sky_sigma)
{
    if (!img || npix < 0 || !(sky_sigma > 0))
        return NAN;
    double s = 0;
    for (int64_t i = 0; i < npix; i++)
        s += (double)img[i] * img[i];
    return sqrt(s) / sky_sigma;
}

/* Poisson deviates: products of uniforms below a mean of 10, Hormann's transformed
 * rejection (PTRS, as NumPy) above. */
static double poisson(double lam, ds_rng *r)
{
    if (lam < 10) {
        double l = exp(-lam), p = 1;
        int k = 0;
        for (;;) {
            p *= ds_rng_uniform(r);
            if (p <= l)
                return k;
            k++;
        }
    }
    const double slam = sqrt(lam), loglam = log(lam);
    const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    const double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double u = ds_rng_uniform(r) - 0.5, v = ds_rng_uniform(r);
        double us = 0.5 - fabs(u);
        double k = floor((2 * a / us + b) * u + lam + 0.43);
        if (us >= 0.07 && v <= vr)
            return k;
        if (k < 0 || (us < 0.013 && v > us))
            continue;
        int sg;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <=
            -lam + k * loglam - lgamma_r(k + 1, &sg))
            return k;
    }
}

void ds_add_noise(float *img, int64_t npix, double sky_sigma, double gain, ds_rng *r)
{
    if (!img || !r)
        return;
    for (int64_t i = 0; i < npix; i++) {
        double v = img[i];
        if (gain > 0 && v > 0) {
            double counts = v * gain;
            v = counts > 1e4 ? v + sqrt(v / gain) * ds_rng_normal(r) : poisson(counts, r) / gain;
        }
        if (sky_sigma > 0)
            v += sky_sigma * ds_rng_normal(r);
        img[i] = (float)v;
    }
}

/* Seed of galaxy i's noise stream: a splitmix64 finalization of (seed, i), distinct from
 * the stream the parameters are drawn from. */
static uint64_t noise_seed(uint64_t seed, int64_t i)
{
    uint64_t z = seed ^ 0x5851f42d4c957f2dULL;
    z += 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static ds_status check_range(const char *what, double lo, double hi, double min, double max)
{
    if (!(lo >= min && hi <= max && lo <= hi))
        return dsi_fail(DS_ERR_ARG, "sim: %s range [%g, %g] must be a non-empty interval within "
                        "[%g, %g]", what, lo, hi, min, max);
    return DS_OK;
}

/* ---- variable PSFs ---- */

/* The ranges of the PSF's beta, |e| and lambda/D (0, 0: the fixed value of o->psf). */
static ds_status resolve_psf_ranges(ds_sim_opts *o)
{
    ds_status st;
    if (o->psf_beta_min == 0 && o->psf_beta_max == 0)
        o->psf_beta_min = o->psf_beta_max = o->psf.beta;
    if (o->psf_lod_min == 0 && o->psf_lod_max == 0)
        o->psf_lod_min = o->psf_lod_max = o->psf.lam_over_diam;
    if (o->psf.kind == DS_PSF_MOFFAT &&
        (st = check_range("Moffat beta", o->psf_beta_min, o->psf_beta_max, 1 + 1e-9, 100)) != DS_OK)
        return st;
    if (o->psf.kind == DS_PSF_OPTICAL &&
        (st = check_range("lambda/D", o->psf_lod_min, o->psf_lod_max, 0, 1000)) != DS_OK)
        return st;
    if (!(o->psf_e_max >= 0 && o->psf_e_max < 1))
        return dsi_fail(DS_ERR_ARG, "sim: psf_e_max %g must be in [0, 1)", o->psf_e_max);
    if (o->psf_e_max > 0 && o->psf.kind == DS_PSF_NONE)
        return dsi_fail(DS_ERR_ARG, "sim: psf_e_max %g needs a PSF (kind is none)", o->psf_e_max);
    return DS_OK;
}

/* Galaxy i's PSF parameters: drawn (4 uniforms from the stream of (seed, i, "psf")) only
 * when a range is open, so that the other outputs keep their bits. */
static void psf_draw(const ds_sim_opts *o, int64_t i, double *t)
{
    const ds_psf_kind k = o->psf.kind;
    const int moffat = k == DS_PSF_MOFFAT, optical = k == DS_PSF_OPTICAL;
    double u[4] = {0, 0, 0, 0};
    if ((moffat && o->psf_beta_max > o->psf_beta_min) || o->psf_e_max > 0 ||
        (optical && o->psf_lod_max > o->psf_lod_min)) {
        ds_rng r;
        ds_rng_seed(&r, noise_seed(o->seed ^ 0x7073665f76617279ULL, i));   /* "psf_vary" */
        for (int j = 0; j < 4; j++)
            u[j] = ds_rng_uniform(&r);
    }
    t[C_PBETA] = moffat ? o->psf_beta_min + (o->psf_beta_max - o->psf_beta_min) * u[0] : 0;
    t[C_PE1] = o->psf.e1;
    t[C_PE2] = o->psf.e2;
    if (o->psf_e_max > 0) {
        double e = o->psf_e_max * u[1], th = 2 * M_PI * u[2];
        t[C_PE1] = e * cos(th);
        t[C_PE2] = e * sin(th);
    }
    t[C_PLOD] = optical ? o->psf_lod_min + (o->psf_lod_max - o->psf_lod_min) * u[3] : 0;
    t[C_POBSC] = optical ? o->psf.obscuration : 0;
}

/* The PSF of a truth row (kind from the options). */
static ds_psf row_psf(const ds_sim_opts *o, const double *t)
{
    ds_psf p = {o->psf.kind, t[C_FWHM], o->psf.beta, t[C_PE1], t[C_PE2], t[C_PLOD], t[C_POBSC]};
    if (o->psf.kind == DS_PSF_MOFFAT)
        p.beta = t[C_PBETA];
    return p;
}

static ds_status psf_row_check(const ds_sim_opts *o, int64_t i, const double *t)
{
    char who[64];
    if (o->psf.kind != DS_PSF_MOFFAT && t[C_PBETA] != 0)
        return dsi_fail(DS_ERR_ARG, "sim: galaxy %lld: psf_beta = %g is given but the PSF is not "
                        "a Moffat (use 0)", (long long)i, t[C_PBETA]);
    snprintf(who, sizeof who, "sim: galaxy %lld", (long long)i);
    ds_psf p = row_psf(o, t);
    return dsi_psf_check(&p, who);
}

/* Options with 0 meaning the default where 0 makes no sense (size, the n and hlr ranges,
 * sky_sigma), checked. */
static ds_status resolve_opts(const ds_sim_opts *in, ds_sim_opts *o)
{
    ds_status st;
    *o = *in;
    if (o->size == 0)
        o->size = 32;
    if (o->n_min == 0 && o->n_max == 0)
        o->n_min = 0.5, o->n_max = 6;
    if (o->hlr_min == 0 && o->hlr_max == 0)
        o->hlr_min = 1.5, o->hlr_max = 5;
    if (o->sky_sigma == 0)
        o->sky_sigma = 1;
    if (o->count < 1 || o->count > ((int64_t)1 << 40))
        return dsi_fail(DS_ERR_ARG, "sim: count %lld must be >= 1", (long long)o->count);
    if (o->size < 4 || o->size > 4096)
        return dsi_fail(DS_ERR_ARG, "sim: stamp size %d must be in [4, 4096]", o->size);
    if ((st = check_range("Sersic index", o->n_min, o->n_max, 0.3, 8)) != DS_OK ||
        (st = check_range("half-light radius", o->hlr_min, o->hlr_max, 1e-3, 1e6)) != DS_OK)
        return st;
    if (!(o->e_max >= 0 && o->e_max < 1))
        return dsi_fail(DS_ERR_ARG, "sim: e_max %g must be in [0, 1)", o->e_max);
    if (o->snr_max > 0 && (st = check_range("SNR", o->snr_min, o->snr_max, 1e-9, 1e12)) != DS_OK)
        return st;
    if (!(o->sky_sigma > 0 && isfinite(o->sky_sigma)))
        return dsi_fail(DS_ERR_ARG, "sim: sky_sigma %g must be > 0", o->sky_sigma);
    if (!(o->gain >= 0 && isfinite(o->gain)))
        return dsi_fail(DS_ERR_ARG, "sim: gain %g must be >= 0 (0: no source noise)", o->gain);
    if (!(o->offset_max >= 0 && o->offset_max <= o->size))
        return dsi_fail(DS_ERR_ARG, "sim: offset_max %g must be in [0, size]", o->offset_max);
    if (o->psf.kind == DS_PSF_MOFFAT && o->psf.beta == 0 && o->psf_beta_min > 0)
        o->psf.beta = o->psf_beta_min;
    if (o->psf.kind == DS_PSF_OPTICAL && o->psf.lam_over_diam == 0 && o->psf_lod_min > 0)
        o->psf.lam_over_diam = o->psf_lod_min;
    if ((st = dsi_psf_check(&o->psf, "sim")) != DS_OK || (st = dsi_sim_shear_check(o)) != DS_OK)
        return st;
    if (o->psf.kind != DS_PSF_NONE) {
        if (o->psf_fwhm_min == 0 && o->psf_fwhm_max == 0)
            o->psf_fwhm_min = o->psf_fwhm_max = o->psf.fwhm;
        if ((st = check_range("PSF FWHM", o->psf_fwhm_min, o->psf_fwhm_max,
                              o->psf.kind == DS_PSF_OPTICAL ? 0 : 1e-9, 1000)) != DS_OK)
            return st;
    }
    if ((st = resolve_psf_ranges(o)) != DS_OK)
        return st;
    if (o->params) {
        const int64_t *sh = ds_tensor_shape(o->params);
        if (ds_tensor_ndim(o->params) != 2 || sh[0] != o->count || sh[1] < 9 || sh[1] > N_DRAWN)
            return dsi_fail(DS_ERR_ARG, "sim: the params table is %s, expected [%lld, 9 to %d] "
                            "(count x the first columns of ds_sim_columns)",
                            dsi_shape_str(ds_tensor_ndim(o->params), sh), (long long)o->count,
                            N_DRAWN);
    }
    return dsi_realism_resolve(o);
}

static ds_status bad_row(int64_t i, const char *what, double v, const char *rule)
{
    return dsi_fail(DS_ERR_ARG, "sim: galaxy %lld: %s = %g %s", (long long)i, what, v, rule);
}

/* Draws galaxy i's parameters (always the same 8 uniforms, so overrides do not shift the
 * stream), then applies the params row, and draws the neighbour. has_flux: the flux was
 * given (or drawn by the population). */
static ds_status draw(const ds_sim_opts *o, ds_rng *r, int64_t i, double *t, int *has_flux,
                      dsi_neighbour *nb)
{
    double u[8];
    for (int j = 0; j < 8; j++)
        u[j] = ds_rng_uniform(r);
    double e = o->e_max * sqrt(u[2]), th = 2 * M_PI * u[3];
    t[C_N] = o->n_min + (o->n_max - o->n_min) * u[0];
    t[C_HLR] = o->hlr_min + (o->hlr_max - o->hlr_min) * u[1];
    t[C_E1] = e * cos(th);
    t[C_E2] = e * sin(th);
    t[C_SNR] = o->snr_max > 0 ? o->snr_min + (o->snr_max - o->snr_min) * u[4] : NAN;
    t[C_DX] = o->offset_max * (2 * u[5] - 1);
    t[C_DY] = o->offset_max * (2 * u[6] - 1);
    t[C_FWHM] = o->psf.kind == DS_PSF_NONE ? 0 :
                o->psf_fwhm_min + (o->psf_fwhm_max - o->psf_fwhm_min) * u[7];
    t[C_FLUX] = NAN;
    psf_draw(o, i, t);
    if (o->population) {
        dsi_population_draw(o, i, &t[C_HLR], &t[C_FLUX]);
        t[C_SNR] = NAN;
    }
    for (int j = C_NB_FLUX; j <= C_NB_HLR; j++)
        t[j] = NAN;   /* drawn by dsi_neighbour_draw unless the params row gives them */
    if (o->params) {
        const int64_t w = ds_tensor_shape(o->params)[1];
        const float *row = ds_tensor_data((ds_tensor *)o->params) + i * w;
        for (int j = 0; j < w; j++)
            if (!isnan(row[j]))
                t[j] = row[j];
        if (!isnan(row[C_SNR]) && isnan(row[C_FLUX]))
            t[C_FLUX] = NAN;   /* a given SNR sets the flux, not the population */
    }
    *has_flux = !isnan(t[C_FLUX]);
    if (!(t[C_N] >= 0.3 && t[C_N] <= 8))
        return bad_row(i, "n", t[C_N], "is outside [0.3, 8]");
    if (!(t[C_HLR] > 0 && t[C_HLR] < 1e6))
        return bad_row(i, "hlr", t[C_HLR], "must be in (0, 1e6)");
    if (!(hypot(t[C_E1], t[C_E2]) < 1))
        return bad_row(i, "|e|", hypot(t[C_E1], t[C_E2]), "must be < 1");
    if (!(fabs(t[C_DX]) <= o->size && fabs(t[C_DY]) <= o->size))
        return bad_row(i, "offset", fmax(fabs(t[C_DX]), fabs(t[C_DY])), "must be within the stamp");
    if (*has_flux && !isfinite(t[C_FLUX]))
        return bad_row(i, "flux", t[C_FLUX], "must be finite");
    if (!*has_flux && !isnan(t[C_SNR]) && !(t[C_SNR] > 0 && isfinite(t[C_SNR])))
        return bad_row(i, "snr", t[C_SNR], "must be > 0");
    if (o->psf.kind == DS_PSF_NONE && t[C_FWHM] != 0)
        return bad_row(i, "psf_fwhm", t[C_FWHM], "is given but the PSF is none (use 0)");
    if (o->psf.kind != DS_PSF_NONE && o->psf.kind != DS_PSF_OPTICAL &&
        !(t[C_FWHM] > 0 && t[C_FWHM] <= 1000))
        return bad_row(i, "psf_fwhm", t[C_FWHM], "must be in (0, 1000]");
    ds_status st = psf_row_check(o, i, t);
    return st ? st : dsi_neighbour_draw(o, i, t[C_DX], t[C_DY], t + C_NB_FLUX, nb);
}

/* shear (shear.c): row i of a pair or shear cycle takes its group's first row's parameters
 * (its params row may only repeat them), then its own rotation and shear. */
static ds_status shear_row(const ds_sim_opts *o, int64_t i, double *par, unsigned char *given,
                           dsi_neighbour *nbs)
{
    double *t = par + i * N_COLS, e0[2] = {t[C_E1], t[C_E2]};
    const int64_t first = i - i % dsi_sim_group(o);
    if (first != i) {
        const double *f = par + first * N_COLS;
        for (int j = 0; j < N_DRAWN; j++)
            t[j] = f[j];
        e0[0] = f[C_E1_INT], e0[1] = f[C_E2_INT];
        given[i] = given[first];
        nbs[i] = nbs[first];   /* the scene around the galaxy too */
    }
    dsi_sim_shear_row(o, i, e0, t + C_E1_INT, t + C_G1, t + C_E1);
    if (first == i || !o->params)
        return DS_OK;
    const int64_t w = ds_tensor_shape(o->params)[1];
    const float *row = ds_tensor_data((ds_tensor *)o->params) + i * w;
    for (int j = 0; j < w; j++) {
        float want = (float)(j == C_E1 || j == C_E2 ? t[C_E1_INT + j - C_E1] : t[j]);
        if (!isnan(row[j]) && row[j] != want)
            return dsi_fail(DS_ERR_ARG, "sim: galaxy %lld: params %s = %g differs from %g, that "
                            "of its group's first row %lld (the galaxies of a pair or shear "
                            "cycle share every parameter)", (long long)i, columns[j], row[j],
                            want, (long long)first);
    }
    return DS_OK;
}

/* The flux (and SNR) of row i from its unit-flux SNR snr1; the rows of a pair or shear
 * cycle take their first row's flux and SNR (theirs differ from it by O(|g| |e|)). */
static void set_flux(const ds_sim_opts *o, int64_t i, double *par, const unsigned char *given,
                     double snr1)
{
    double *p = par + i * N_COLS;
    const int64_t first = i - i % dsi_sim_group(o);
    if (first != i) {
        p[C_FLUX] = par[first * N_COLS + C_FLUX];
        p[C_SNR] = par[first * N_COLS + C_SNR];
        return;
    }
    if (given[i])
        p[C_SNR] = p[C_FLUX] * snr1;
    else
        p[C_FLUX] = isnan(p[C_SNR]) ? 1.0 : p[C_SNR] / snr1;
    if (isnan(p[C_SNR]))
        p[C_SNR] = snr1;
}

/* Pass 1, parallel: each galaxy at unit flux, and its SNR at unit flux. The first row that
 * failed (out of memory), or -1. */
static int64_t render_unit(const ds_sim_opts *o, const double *par, float *x, double *snr1)
{
    const int64_t n = o->count, npix = (int64_t)o->size * o->size;
    int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = 0; i < n; i++) {
        const double *p = par + i * N_COLS;
        float *im = x + i * npix;
        ds_galaxy g = {p[C_N], p[C_HLR], 1.0, p[C_E1], p[C_E2], p[C_DX], p[C_DY]};
        ds_psf psf = row_psf(o, p);
        if (ds_galaxy_render(&g, &psf, o->size, im) != DS_OK) {
#ifdef _OPENMP   /* (-fopenmp-simd warns) unnamed: a named one is an exported symbol */
#pragma omp critical
#endif
            if (failed < 0 || i < failed)
                failed = i;
            continue;
        }
        /* SNR is linear in flux: the unit-flux image fixes the flux giving the drawn SNR */
        snr1[i] = ds_image_snr(im, npix, o->sky_sigma);
    }
    return failed;
}

/* Pass 2, parallel: the flux, the neighbour, the noise (a shear cycle's rows share their
 * rotation's noise stream) and the truth rows. The first row that failed, or -1. */
static int64_t finish_rows(const ds_sim_opts *o, double *par, dsi_neighbour *nbs, float *x,
                           float *t)
{
    const int64_t n = o->count, npix = (int64_t)o->size * o->size;
    const int noisy = o->snr_max > 0 || o->population;
    int64_t failed = -1;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double *p = par + i * N_COLS;
        float *im = x + i * npix, f = (float)p[C_FLUX];
        for (int64_t j = 0; j < npix; j++)
            im[j] *= f;
        ds_psf psf = row_psf(o, p);
        ds_status rs = dsi_neighbour_add(nbs + i, &psf, o->size, p[C_FLUX], im);
        if (!rs && noisy) {
            ds_rng nr;
            ds_rng_seed(&nr, noise_seed(o->seed, dsi_sim_noise_row(o, i)));
            ds_add_noise(im, npix, o->noise_kernel ? 0 : o->sky_sigma, o->gain, &nr);
            if (o->noise_kernel)
                rs = dsi_correlated_noise(o, im, &nr);
        }
        if (rs) {
#ifdef _OPENMP
#pragma omp critical
#endif
            if (failed < 0 || i < failed)
                failed = i;
            continue;
        }
        const dsi_neighbour *nb = nbs + i;
        p[C_NB_FLUX] = nb->flux;
        p[C_NB_DX] = nb->flux ? nb->dx : 0;
        p[C_NB_DY] = nb->flux ? nb->dy : 0;
        p[C_NB_HLR] = nb->flux ? nb->hlr : 0;
        for (int j = 0; j < N_COLS; j++)
            t[i * N_COLS + j] = (float)p[j];
    }
    return failed;
}

ds_status ds_sim_galaxies(const ds_sim_opts *opts, ds_tensor **images, ds_tensor **truth)
{
    ds_sim_opts o;
    ds_status st;
    if (!opts || !images || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_sim_galaxies: options and outputs must not be NULL");
    *images = *truth = NULL;
    if ((st = resolve_opts(opts, &o)) != DS_OK)
        return st;
    const int64_t n = o.count, npix = (int64_t)o.size * o.size;
    int64_t ishape[4] = {n, 1, o.size, o.size}, tshape[2] = {n, N_COLS};
    ds_tensor *img = ds_tensor_create(4, ishape), *tr = ds_tensor_create(2, tshape);
    double *par = malloc(sizeof *par * (size_t)(n * N_COLS));
    unsigned char *given = malloc((size_t)n);
    double *snr1 = malloc(sizeof *snr1 * (size_t)n);
    dsi_neighbour *nbs = malloc(sizeof *nbs * (size_t)n);
    if (!img || !tr || !par || !given || !snr1 || !nbs) {
        st = dsi_fail(DS_ERR_NOMEM, "ds_sim_galaxies: out of memory for %lld stamps of %d x %d",
                      (long long)n, o.size, o.size);
        goto done;
    }
    ds_rng r;
    ds_rng_seed(&r, o.seed);
    for (int64_t i = 0; i < n; i++) {
        int hf;
        if ((st = draw(&o, &r, i, par + i * N_COLS, &hf, nbs + i)) != DS_OK)
            goto done;
        given[i] = (unsigned char)hf;
        if ((st = shear_row(&o, i, par, given, nbs)) != DS_OK)
            goto done;
    }
    float *x = ds_tensor_data(img), *t = ds_tensor_data(tr);
    int64_t failed = render_unit(&o, par, x, snr1);
    if (failed >= 0) {
        /* rerun on this thread for the message */
        const double *p = par + failed * N_COLS;
        ds_galaxy g = {p[C_N], p[C_HLR], 1.0, p[C_E1], p[C_E2], p[C_DX], p[C_DY]};
        ds_psf psf = row_psf(&o, p);
        st = ds_galaxy_render(&g, &psf, o.size, x + failed * npix);
        if (st == DS_OK)
            st = dsi_fail(DS_ERR_NOMEM, "ds_sim_galaxies: rendering galaxy %lld ran out of "
                          "memory", (long long)failed);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)   /* serial: a group's rows take its first row's flux */
        set_flux(&o, i, par, given, snr1[i]);
    if ((failed = finish_rows(&o, par, nbs, x, t)) >= 0) {
        st = dsi_fail(DS_ERR_NOMEM, "ds_sim_galaxies: galaxy %lld: out of memory for its "
                      "neighbour or its correlated noise", (long long)failed);
        goto done;
    }
    *images = img;
    *truth = tr;
    img = tr = NULL;
done:
    ds_tensor_free(img);
    ds_tensor_free(tr);
    free(par);
    free(given);
    free(snr1);
    free(nbs);
    return st;
}

ds_status ds_sim_psf_images(const ds_sim_opts *opts, const ds_tensor *truth, ds_tensor **out)
{
    if (!opts || !truth || !out)
        return dsi_fail(DS_ERR_ARG, "ds_sim_psf_images: options, truth and output must not be NULL");
    *out = NULL;
    const int size = opts->size ? opts->size : 32;
    const int64_t *sh = ds_tensor_shape(truth);
    if (ds_tensor_ndim(truth) != 2 || sh[1] != N_COLS || sh[0] < 1)
        return dsi_fail(DS_ERR_ARG, "ds_sim_psf_images: the truth table is %s, expected [rows, %d] "
                        "(the columns of ds_sim_columns)", dsi_shape_str(ds_tensor_ndim(truth), sh),
                        N_COLS);
    if (size < 4 || size > 4096)
        return dsi_fail(DS_ERR_ARG, "ds_sim_psf_images: stamp size %d must be in [4, 4096]", size);
    const int64_t n = sh[0], npix = (int64_t)size * size;
    const float *t = ds_tensor_data((ds_tensor *)truth);
    ds_status st = DS_OK;
    for (int64_t i = 0; i < n && st == DS_OK; i++) {   /* check every row before rendering */
        double row[N_COLS];
        for (int j = 0; j < N_COLS; j++)
            row[j] = t[i * N_COLS + j];
        st = psf_row_check(opts, i, row);
    }
    if (st != DS_OK)
        return st;
    int64_t shape[4] = {n, 1, size, size};
    ds_tensor *img = ds_tensor_create(4, shape);
    if (!img)
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_psf_images: out of memory for %lld PSF images of "
                        "%d x %d", (long long)n, size, size);
    float *x = ds_tensor_data(img);
    int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = 0; i < n; i++) {
        double row[N_COLS];
        for (int j = 0; j < N_COLS; j++)
            row[j] = t[i * N_COLS + j];
        ds_psf p = row_psf(opts, row);
        if (ds_psf_render(&p, size, x + i * npix) != DS_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
            if (failed < 0 || i < failed)
                failed = i;
        }
    }
    if (failed >= 0) {   /* only memory can fail here: rerun on this thread for the message */
        double row[N_COLS];
        for (int j = 0; j < N_COLS; j++)
            row[j] = t[failed * N_COLS + j];
        ds_psf p = row_psf(opts, row);
        st = ds_psf_render(&p, size, x + failed * npix);
        ds_tensor_free(img);
        return st != DS_OK ? st : dsi_fail(DS_ERR_NOMEM, "ds_sim_psf_images: rendering row %lld "
                                           "ran out of memory", (long long)failed);
    }
    *out = img;
    return DS_OK;
}
