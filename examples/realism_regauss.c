/* realism_regauss.c - how much each realism switch of the simulator (a neighbour galaxy,
 * correlated noise, a size-magnitude population) degrades re-Gaussianization: RMSE of
 * (e1, e2), multiplicative bias and failure rate at SNR 20 and 40, set up as
 * examples/ellipticity_demo.c sets the simulator up (32 x 32, Gaussian PSF FWHM 2 px).
 * Usage: realism_regauss [galaxies per bin, default 2000] [seed, default 1] */
#include "deepsky.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIZE = 32 };

static int check(ds_status st)
{
    if (st != DS_OK)
        fprintf(stderr, "realism_regauss: %s\n", ds_last_error());
    return st != DS_OK;
}

static ds_sim_opts base(int64_t count, uint64_t seed)
{
    ds_sim_opts o = {0};
    o.count = count, o.size = SIZE, o.seed = seed, o.n_min = 0.5, o.n_max = 6;
    o.hlr_min = 1.5, o.hlr_max = 5, o.e_max = 0.6, o.sky_sigma = 1, o.offset_max = 0.5;
    o.psf.kind = DS_PSF_GAUSSIAN, o.psf.fwhm = 2;
    return o;
}

typedef struct {
    int64_t n, failed;
    double rmse, m, dm;   /* RMSE over both components; m of e = (1 + m) e_true (through 0) */
} result;

/* Re-Gaussianization of the first max galaxies whose snr is in [lo, hi) (all if lo < 0). */
static result measure(const ds_tensor *img, const ds_tensor *tr, const float *psf, double lo,
                      double hi, int64_t max)
{
    result r = {0};
    const int nc = ds_sim_column_count();
    const int64_t n = ds_tensor_shape(tr)[0];
    const float *t = ds_tensor_data((ds_tensor *)tr), *x = ds_tensor_data((ds_tensor *)img);
    double se = 0, sxx = 0, sxy = 0;
    for (int64_t i = 0; i < n && r.n < max; i++) {
        double snr = t[i * nc + 5];
        if (lo >= 0 && !(snr >= lo && snr < hi))
            continue;
        r.n++;
        ds_shear s;
        if (ds_shear_estimate(x + i * SIZE * SIZE, psf, SIZE, 1.0, DS_SHEAR_REGAUSS, &s) ||
            s.flag || !isfinite(s.e1) || !isfinite(s.e2)) {
            r.failed++;
            continue;
        }
        const double et[2] = {t[i * nc], t[i * nc + 1]}, em[2] = {s.e1, s.e2};
        for (int k = 0; k < 2; k++) {
            se += (em[k] - et[k]) * (em[k] - et[k]);
            sxx += et[k] * et[k];
            sxy += et[k] * em[k];
        }
    }
    int64_t ok = r.n - r.failed;
    if (ok > 2) {
        double slope = sxy / sxx, res = se / (2.0 * ok);
        r.rmse = sqrt(res);
        r.m = slope - 1;
        r.dm = sqrt(res / sxx);
    }
    return r;
}

static void row(const char *name, const char *snr, result r)
{
    printf("| %s | %s | %lld | %.4f | %+.3f ± %.3f | %.2f%% |\n", name, snr, (long long)r.n,
           r.rmse, r.m, r.dm, 100.0 * (double)r.failed / (double)(r.n ? r.n : 1));
}

int main(int argc, char **argv)
{
    const int64_t per = argc > 1 ? atoll(argv[1]) : 2000;
    const uint64_t seed = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
    static const double kernel[9] = {0.1, 0.2, 0.1, 0.2, 1, 0.2, 0.1, 0.2, 0.1};
    static const double snrs[2] = {20, 40};
    static const char *const names[3] = {"none (uniform draws, white noise)",
                                         "neighbour (always; distance 4-12 px, flux 0.1-1 x)",
                                         "correlated noise (3 x 3 kernel 0.1,0.2,0.1,0.2,1,...)"};
    float psf[SIZE * SIZE];
    ds_psf p = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2};
    if (per < 10 || check(ds_psf_render(&p, SIZE, psf)))
        return 1;
    printf("| switch | SNR | galaxies | RMSE e | m | failed |\n|---|---|---|---|---|---|\n");
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < 2; b++) {
            ds_sim_opts o = base(per, seed * 100 + (uint64_t)b);
            o.snr_min = o.snr_max = snrs[b];
            if (s == 1)
                o.nb_prob = 1;
            if (s == 2)
                o.noise_kernel = kernel, o.noise_kernel_size = 3;
            ds_tensor *img, *tr;
            if (check(ds_sim_galaxies(&o, &img, &tr)))
                return 1;
            row(names[s], b ? "40" : "20", measure(img, tr, psf, -1, 0, per));
            ds_tensor_free(img);
            ds_tensor_free(tr);
        }
    /* the population: its SNR follows from the flux; the first per galaxies of the bins
     * around 20 and 40, and of all */
    ds_sim_opts o = base(per * 14, seed * 100 + 7);
    o.population = 1;
    ds_tensor *img, *tr;
    if (check(ds_sim_galaxies(&o, &img, &tr)))
        return 1;
    const char *pn = "population (defaults; SNR follows)";
    row(pn, "16-25", measure(img, tr, psf, 16, 25, per));
    row(pn, "32-50", measure(img, tr, psf, 32, 50, per));
    row(pn, "all", measure(img, tr, psf, -1, 0, per));
    ds_tensor_free(img);
    ds_tensor_free(tr);
    return 0;
}
