/* realism.c - how much each realism switch of the simulator (a neighbour galaxy, correlated
 * noise, a size-magnitude population) degrades re-Gaussianization and, given its weights,
 * the demo's CNN: RMSE of (e1, e2), multiplicative bias and failure rate at SNR 20 and 40,
 * set up as examples/ellipticity_demo.c sets the simulator up (32 x 32, Gaussian PSF FWHM
 * 2 px). The CNN was trained without any switch: the rows say what each one costs a
 * network that never saw it.
 * Usage: realism [--per N (default 2000)] [--seed S (default 1)]
 *                [--weights W [--model M (default examples/ellipticity.model)]] */
#include "deepsky.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIZE = 32 };

static int check(ds_status st)
{
    if (st != DS_OK)
        fprintf(stderr, "realism: %s\n", ds_last_error());
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

/* One estimator's measurements of a set: e[2 n] and a failure flag per galaxy. */
typedef struct {
    int64_t n;
    float *e;
    char *fail;
} estimates;

static estimates alloc_estimates(int64_t n)
{
    estimates m = {.n = n, .e = calloc((size_t)n * 2, sizeof(float)), .fail = calloc((size_t)n, 1)};
    if (!m.e || !m.fail) {
        fprintf(stderr, "realism: out of memory\n");
        exit(1);
    }
    return m;
}

static void free_estimates(estimates *m)
{
    free(m->e);
    free(m->fail);
}

static estimates regauss(const ds_tensor *img, const float *psf)
{
    const int64_t n = ds_tensor_shape(img)[0];
    const float *x = ds_tensor_data((ds_tensor *)img);
    estimates m = alloc_estimates(n);
    for (int64_t i = 0; i < n; i++) {
        ds_shear s;
        m.fail[i] = ds_shear_estimate(x + i * SIZE * SIZE, psf, SIZE, 1.0, DS_SHEAR_REGAUSS, &s)
                    || s.flag || !isfinite(s.e1) || !isfinite(s.e2);
        m.e[2 * i] = m.fail[i] ? 0 : s.e1;
        m.e[2 * i + 1] = m.fail[i] ? 0 : s.e2;
    }
    return m;
}

/* The CNN averaged over the eight symmetries of the stamp, as the demo measures. */
static estimates cnn(ds_net *net, const ds_tensor *img)
{
    const int64_t *sh = ds_tensor_shape(img), n = sh[0];
    estimates m = alloc_estimates(n);
    ds_tensor *t = ds_tensor_create(4, (int64_t[]){n, 1, SIZE, SIZE});
    float tmp[SIZE * SIZE];
    if (!t) {
        fprintf(stderr, "realism: out of memory\n");
        exit(1);
    }
    for (int g = 0; g < 8; g++) {
        const int tr = (g & 1) | (g >> 1) << 2;
        memcpy(ds_tensor_data(t), ds_tensor_data((ds_tensor *)img),
               (size_t)n * SIZE * SIZE * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            ds_image_transform(ds_tensor_data(t) + i * SIZE * SIZE, 1, SIZE, SIZE, tr, tmp);
        ds_tensor *p;
        if (check(ds_net_predict(net, t, 256, &p)))
            exit(1);
        float *pd = ds_tensor_data(p);
        for (int64_t i = 0; i < n; i++) {
            ds_ellipticity_transform(NULL, tr, pd + 2 * i, 2);
            m.e[2 * i] += pd[2 * i] / 8;
            m.e[2 * i + 1] += pd[2 * i + 1] / 8;
        }
        ds_tensor_free(p);
    }
    ds_tensor_free(t);
    return m;
}

typedef struct {
    int64_t n, failed;
    double rmse, m, dm;   /* RMSE over both components; m of e = (1 + m) e_true (through 0) */
} result;

/* The first max galaxies whose snr is in [lo, hi) (all if lo < 0). */
static result score(const estimates *est, const ds_tensor *tr, double lo, double hi, int64_t max)
{
    result r = {0};
    const int nc = ds_sim_column_count();
    const float *t = ds_tensor_data((ds_tensor *)tr);
    double se = 0, sxx = 0, sxy = 0;
    for (int64_t i = 0; i < est->n && r.n < max; i++) {
        double snr = t[i * nc + 5];
        if (lo >= 0 && !(snr >= lo && snr < hi))
            continue;
        r.n++;
        if (est->fail[i]) {
            r.failed++;
            continue;
        }
        for (int k = 0; k < 2; k++) {
            double et = t[i * nc + k], em = est->e[2 * i + k];
            se += (em - et) * (em - et);
            sxx += et * et;
            sxy += et * em;
        }
    }
    int64_t ok = r.n - r.failed;
    if (ok > 2) {
        double res = se / (2.0 * ok);
        r.rmse = sqrt(res);
        r.m = sxy / sxx - 1;
        r.dm = sqrt(res / sxx);
    }
    return r;
}

static void row(const char *name, const char *snr, const char *method, result r)
{
    printf("| %s | %s | %s | %lld | %.4f | %+.3f ± %.3f | %.2f%% |\n", name, snr, method,
           (long long)r.n, r.rmse, r.m, r.dm, 100.0 * (double)r.failed / (double)(r.n ? r.n : 1));
}

/* Both estimators' rows for the galaxies of one set whose snr is in each range
 * [lo[k], hi[k]) (all if lo[k] < 0); each estimator measures the set once. */
static void rows(const char *name, const char *const *snr, const double *lo, const double *hi,
                 int nr, const ds_tensor *img, const ds_tensor *tr, const float *psf,
                 ds_net *net, int64_t per)
{
    estimates rg = regauss(img, psf), c = {0};
    if (net)
        c = cnn(net, img);
    for (int k = 0; k < nr; k++) {
        row(name, snr[k], "regauss", score(&rg, tr, lo[k], hi[k], per));
        if (net)
            row(name, snr[k], "CNN", score(&c, tr, lo[k], hi[k], per));
    }
    free_estimates(&rg);
    free_estimates(&c);
}

static int usage(void)
{
    fprintf(stderr, "usage: realism [--per N] [--seed S] [--weights W [--model M]]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int64_t per = 2000;
    uint64_t seed = 1;
    const char *weights = NULL, *model = "examples/ellipticity.model";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return usage();
        if (!strcmp(a, "--per"))
            per = atoll(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--weights"))
            weights = v;
        else if (!strcmp(a, "--model"))
            model = v;
        else
            return usage();
    }
    static const double kernel[9] = {0.1, 0.2, 0.1, 0.2, 1, 0.2, 0.1, 0.2, 0.1};
    static const double snrs[2] = {20, 40};
    static const char *const names[3] = {"none (uniform draws, white noise)",
                                         "neighbour (always; distance 4-12 px, flux 0.1-1 x)",
                                         "correlated noise (3 x 3 kernel 0.1,0.2,0.1,0.2,1,...)"};
    float psf[SIZE * SIZE];
    ds_psf p = {.kind = DS_PSF_GAUSSIAN, .fwhm = 2};
    ds_net *net = NULL;
    if (per < 10)
        return usage();
    if (check(ds_psf_render(&p, SIZE, psf)) ||
        (weights && (check(ds_net_load(model, &(ds_net_opts){.batch = 256}, &net)) ||
                     check(ds_net_load_weights(net, weights)))))
        return 1;
    printf("| switch | SNR | method | galaxies | RMSE e | m | failed |\n"
           "|---|---|---|---|---|---|---|\n");
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
            rows(names[s], &(const char *){b ? "40" : "20"}, &(double){-1}, &(double){0}, 1, img,
                 tr, psf, net, per);
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
    static const char *const pbins[3] = {"16-25", "32-50", "all"};
    rows(pn, pbins, (const double[]){16, 32, -1}, (const double[]){25, 50, 0}, 3, img, tr, psf,
         net, per);
    ds_tensor_free(img);
    ds_tensor_free(tr);
    ds_net_free(net);
    return 0;
}
