/* sim.c - the galaxy simulator: GalSim's SNR, sky and Poisson noise, and catalogues of
 * noisy galaxy stamps with their truth table (parameters drawn serially from one seeded
 * stream, stamps rendered in parallel, each with its own noise stream). */
#include "sim.h"
#include "realism.h"

#include "../internal.h"

#include <math.h>

enum { C_E1, C_E2, C_N, C_HLR, C_FLUX, C_SNR, C_FWHM, C_DX, C_DY,
       C_NB_FLUX, C_NB_DX, C_NB_DY, C_NB_HLR,   /* the neighbour galaxy (realism.c) */
       N_COLS, N_BASE = C_DY + 1 };

static const char *const columns[N_COLS + 1] = {
    "e1", "e2", "n", "hlr", "flux", "snr", "psf_fwhm", "dx", "dy",
    "nb_flux", "nb_dx", "nb_dy", "nb_hlr",
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
    if ((st = dsi_psf_check(&o->psf, "sim")) != DS_OK)
        return st;
    if (o->psf.kind != DS_PSF_NONE) {
        if (o->psf_fwhm_min == 0 && o->psf_fwhm_max == 0)
            o->psf_fwhm_min = o->psf_fwhm_max = o->psf.fwhm;
        if ((st = check_range("PSF FWHM", o->psf_fwhm_min, o->psf_fwhm_max, 1e-9, 1000)) != DS_OK)
            return st;
    }
    if (o->params) {
        const int64_t *sh = ds_tensor_shape(o->params);
        if (ds_tensor_ndim(o->params) != 2 || sh[0] != o->count ||
            (sh[1] != N_COLS && sh[1] != N_BASE))
            return dsi_fail(DS_ERR_ARG, "sim: the params table is %s, expected [%lld, %d] (count "
                            "x the columns of ds_sim_columns) or [%lld, %d] (the first %d)",
                            dsi_shape_str(ds_tensor_ndim(o->params), sh), (long long)o->count,
                            N_COLS, (long long)o->count, N_BASE, N_BASE);
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
    if (o->psf.kind != DS_PSF_NONE && !(t[C_FWHM] > 0 && t[C_FWHM] <= 1000))
        return bad_row(i, "psf_fwhm", t[C_FWHM], "must be in (0, 1000]");
    return dsi_neighbour_draw(o, i, t[C_DX], t[C_DY], t + C_NB_FLUX, nb);
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
    const int noisy = o.snr_max > 0 || o.population;
    int64_t ishape[4] = {n, 1, o.size, o.size}, tshape[2] = {n, N_COLS};
    ds_tensor *img = ds_tensor_create(4, ishape), *tr = ds_tensor_create(2, tshape);
    double *par = malloc(sizeof *par * (size_t)(n * N_COLS));
    unsigned char *given = malloc((size_t)n);
    dsi_neighbour *nbs = malloc(sizeof *nbs * (size_t)n);
    if (!img || !tr || !par || !given || !nbs) {
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
    }
    float *x = ds_tensor_data(img), *t = ds_tensor_data(tr);
    int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = 0; i < n; i++) {
        double *p = par + i * N_COLS;
        float *im = x + i * npix;
        ds_galaxy g = {p[C_N], p[C_HLR], 1.0, p[C_E1], p[C_E2], p[C_DX], p[C_DY]};
        ds_psf psf = {o.psf.kind, p[C_FWHM], o.psf.beta};
        if (ds_galaxy_render(&g, &psf, o.size, im) != DS_OK) {
#ifdef _OPENMP   /* (-fopenmp-simd warns) unnamed: a named one is an exported symbol */
#pragma omp critical
#endif
            if (failed < 0 || i < failed)
                failed = i;
            continue;
        }
        /* SNR is linear in flux: the unit-flux image fixes the flux giving the drawn SNR */
        double snr1 = ds_image_snr(im, npix, o.sky_sigma);
        if (given[i])
            p[C_SNR] = p[C_FLUX] * snr1;
        else
            p[C_FLUX] = isnan(p[C_SNR]) ? 1.0 : p[C_SNR] / snr1;
        if (isnan(p[C_SNR]))
            p[C_SNR] = snr1;
        float f = (float)p[C_FLUX];
        for (int64_t j = 0; j < npix; j++)
            im[j] *= f;
        ds_status rs = dsi_neighbour_add(nbs + i, &psf, o.size, p[C_FLUX], im);
        if (!rs && noisy) {
            ds_rng nr;
            ds_rng_seed(&nr, noise_seed(o.seed, i));
            ds_add_noise(im, npix, o.noise_kernel ? 0 : o.sky_sigma, o.gain, &nr);
            if (o.noise_kernel)
                rs = dsi_correlated_noise(&o, im, &nr);
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
    if (failed >= 0) {
        /* rerun on this thread for the message */
        const double *p = par + failed * N_COLS;
        ds_galaxy g = {p[C_N], p[C_HLR], 1.0, p[C_E1], p[C_E2], p[C_DX], p[C_DY]};
        ds_psf psf = {o.psf.kind, p[C_FWHM], o.psf.beta};
        st = ds_galaxy_render(&g, &psf, o.size, x + failed * npix);
        if (st == DS_OK)
            st = dsi_fail(DS_ERR_NOMEM, "ds_sim_galaxies: rendering galaxy %lld ran out of "
                          "memory", (long long)failed);
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
    free(nbs);
    return st;
}
