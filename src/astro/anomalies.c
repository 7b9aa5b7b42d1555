/* anomalies.c - ds_sim_galaxies' stamps with anomalies injected into a seeded fraction of
 * them: cosmic-ray tracks, satellite trails, hot pixels and ring galaxies. */
#include "skysim.h"
#include "sim.h"

#include "../internal.h"

#include <math.h>

#define TAG_PICK 0x616e6f6d5f70696bULL   /* "anom_pik": which rows */
#define TAG_DRAW 0x616e6f6d5f647277ULL   /* "anom_drw": each row's parameters */

enum { A_KIND, A_X, A_Y, A_AMP, A_LEN, A_ANGLE, A_WIDTH, A_COLS };
static const char *const an_names[A_COLS] = {
    "anomaly", "an_x", "an_y", "an_amp", "an_length", "an_angle", "an_width",
};
static const char *const kind_names[DS_ANOMALY_KINDS] = {"normal", "cosmic", "trail", "hot",
                                                          "ring"};
static const char *columns[64];   /* ds_sim_columns() then an_names, built on first use */

const char *ds_anomaly_name(int kind)
{
    return kind >= 0 && kind < DS_ANOMALY_KINDS ? kind_names[kind] : NULL;
}

int ds_anomaly_code(const char *name)
{
    for (int k = 0; name && k < DS_ANOMALY_KINDS; k++)
        if (!strcmp(name, kind_names[k]))
            return k;
    return -1;
}

int ds_anomaly_column_count(void) { return ds_sim_column_count() + A_COLS; }

const char *const *ds_anomaly_columns(void)
{
    const int ns = ds_sim_column_count();
    DS_ASSERT(ns + A_COLS < 64);
    if (!columns[0]) {   /* the same values from any thread: a benign race */
        for (int j = 0; j < ns; j++)
            columns[j] = ds_sim_columns()[j];
        for (int j = 0; j < A_COLS; j++)
            columns[ns + j] = an_names[j];
    }
    return columns;
}

/* ---- options ---- */

static ds_status range(const char *what, double *lo, double *hi, double d_lo, double d_hi,
                       double min, double max)
{
    if (*lo == 0 && *hi == 0)
        *lo = d_lo, *hi = d_hi;
    if (!(*lo >= min && *hi <= max && *lo <= *hi))
        return dsi_fail(DS_ERR_ARG, "sim anomalies: %s range [%g, %g] must be a non-empty "
                        "interval within [%g, %g]", what, *lo, *hi, min, max);
    return DS_OK;
}

static ds_status resolve(const ds_anomaly_opts *in, ds_anomaly_opts *o)
{
    ds_status st;
    *o = *in;
    if (!(o->fraction >= 0 && o->fraction <= 1))
        return dsi_fail(DS_ERR_ARG, "sim anomalies: fraction %g must be in [0, 1]", o->fraction);
    if (o->kinds == 0)
        o->kinds = 0x1e;
    if (o->kinds & ~0x1eu)
        return dsi_fail(DS_ERR_ARG, "sim anomalies: kinds 0x%x has bits outside the kinds 1 to "
                        "%d (cosmic, trail, hot, ring)", o->kinds, DS_ANOMALY_KINDS - 1);
    if (!(o->sim.snr_max > 0 || o->sim.population))
        return dsi_fail(DS_ERR_ARG, "sim anomalies: the stamps must be noisy (an SNR range > 0): "
                        "the amplitudes are in sky sigmas");
    if ((st = range("cosmic-ray amplitude", &o->cr_amp_min, &o->cr_amp_max, 100, 1000, 1e-6,
                    1e9)) ||
        (st = range("cosmic-ray length", &o->cr_len_min, &o->cr_len_max, 2, 8, 0.5, 4096)) ||
        (st = range("trail amplitude", &o->trail_amp_min, &o->trail_amp_max, 3, 20, 1e-6, 1e9)) ||
        (st = range("hot-pixel amplitude", &o->hot_amp_min, &o->hot_amp_max, 20, 200, 1e-6,
                    1e9)) ||
        (st = range("ring radius", &o->ring_radius_min, &o->ring_radius_max, 1.5, 3, 0.1, 100)) ||
        (st = range("ring flux fraction", &o->ring_frac_min, &o->ring_frac_max, 0.4, 0.8, 1e-6,
                    1)))
        return st;
    return DS_OK;
}

/* ---- which rows, which kinds ---- */

/* kind[i] for every row: exactly round(fraction * n) rows (a seeded partial shuffle), the
 * kinds used in turn. */
static void pick_rows(const ds_anomaly_opts *o, unsigned char *kind, int64_t *perm)
{
    const int64_t n = o->sim.count, m = (int64_t)llround(o->fraction * (double)n);
    int used[DS_ANOMALY_KINDS], nk = 0;
    for (int k = 1; k < DS_ANOMALY_KINDS; k++)
        if (o->kinds >> k & 1u)
            used[nk++] = k;
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->sim.seed, TAG_PICK, -1));
    for (int64_t i = 0; i < n; i++)
        perm[i] = i, kind[i] = 0;
    for (int64_t j = 0; j < m; j++) {
        int64_t s = j + (int64_t)ds_rng_below(&r, (uint64_t)(n - j)), t = perm[j];
        perm[j] = perm[s], perm[s] = t;
        kind[perm[j]] = (unsigned char)used[j % nk];
    }
}

/* ---- injections (into img, size x size; t: the row's anomaly columns) ---- */

static double uni(ds_rng *r, double lo, double hi) { return lo + (hi - lo) * ds_rng_uniform(r); }

/* A cosmic ray: a straight track, amp per pixel of path (sampled every 1/16 pixel). */
static void cosmic(const ds_anomaly_opts *o, int size, ds_rng *r, float *img, float *t)
{
    const double c = 0.5 * (size - 1), sig = o->sim.sky_sigma;
    double x = uni(r, c - size / 4.0, c + size / 4.0), y = uni(r, c - size / 4.0, c + size / 4.0);
    double len = uni(r, o->cr_len_min, o->cr_len_max), th = uni(r, 0, 2 * M_PI);
    double amp = sig * uni(r, o->cr_amp_min, o->cr_amp_max);
    const int steps = (int)ceil(16 * len);
    for (int s = 0; s < steps; s++) {
        double f = (s + 0.5) / steps - 0.5;
        long j = lround(x + f * len * cos(th)), i = lround(y + f * len * sin(th));
        if (i >= 0 && i < size && j >= 0 && j < size)
            img[i * size + j] += (float)(amp * len / steps);
    }
    t[A_X] = (float)x, t[A_Y] = (float)y, t[A_AMP] = (float)amp, t[A_LEN] = (float)len;
    t[A_ANGLE] = (float)(th * 180 / M_PI);
}

/* A satellite trail: a line through (x, y) at angle th across the whole stamp, a Gaussian
 * profile across it of the PSF's FWHM (at each pixel centre). */
static void trail(const ds_anomaly_opts *o, const float *row, int size, ds_rng *r, float *img,
                  float *t)
{
    const double c = 0.5 * (size - 1);
    double x = uni(r, c - size / 4.0, c + size / 4.0), y = uni(r, c - size / 4.0, c + size / 4.0);
    double th = uni(r, 0, M_PI), amp = o->sim.sky_sigma * uni(r, o->trail_amp_min,
                                                               o->trail_amp_max);
    double fwhm = o->sim.psf.kind != DS_PSF_NONE && row[DSI_SC_FWHM] > 0 ? row[DSI_SC_FWHM] : 1.5;
    if (o->sim.psf.kind == DS_PSF_OPTICAL) {
        ds_psf p = dsi_sim_row_psf(&o->sim, row);
        fwhm = dsi_optical_fwhm(&p);
    }
    const double s2 = 2 * pow(fwhm / 2.3548200450309493, 2), nx = -sin(th), ny = cos(th);
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double d = (j - x) * nx + (i - y) * ny;
            img[i * size + j] += (float)(amp * exp(-d * d / s2));
        }
    /* the chord: the line's length inside [-1/2, size - 1/2]^2 */
    double lo = -1e30, hi = 1e30, dir[2] = {cos(th), sin(th)}, p0[2] = {x, y};
    for (int a = 0; a < 2; a++) {
        if (fabs(dir[a]) < 1e-12)
            continue;
        double t0 = (-0.5 - p0[a]) / dir[a], t1 = (size - 0.5 - p0[a]) / dir[a];
        lo = fmax(lo, fmin(t0, t1)), hi = fmin(hi, fmax(t0, t1));
    }
    t[A_X] = (float)x, t[A_Y] = (float)y, t[A_AMP] = (float)amp, t[A_LEN] = (float)(hi - lo);
    t[A_ANGLE] = (float)(th * 180 / M_PI), t[A_WIDTH] = (float)fwhm;
}

/* 1 to 3 hot pixels anywhere in the stamp, each set to amp above its value. */
static void hot(const ds_anomaly_opts *o, int size, ds_rng *r, float *img, float *t)
{
    const int k = 1 + (int)ds_rng_below(r, 3);
    double amp = o->sim.sky_sigma * uni(r, o->hot_amp_min, o->hot_amp_max);
    for (int h = 0; h < k; h++) {
        int i = (int)ds_rng_below(r, (uint64_t)size), j = (int)ds_rng_below(r, (uint64_t)size);
        img[i * size + j] += (float)amp;
        if (h == 0)
            t[A_X] = (float)j, t[A_Y] = (float)i;
    }
    t[A_AMP] = (float)amp, t[A_LEN] = (float)k;
}

/* The unit-flux elliptical Gaussian ring (radius R, sigma w, the shape e1, e2 sheared with
 * the area kept) at the galaxy's centre, integrated over cells of 1/k pixel (2 x 2 points),
 * convolved with the PSF and summed to pixels: as ds_galaxy_render does for a Sersic. */
static ds_status ring_image(const ds_psf *psf, int size, double x0, double y0, double e1,
                            double e2, double R, double w, float *img)
{
    const int conv = psf->kind != DS_PSF_NONE, k = dsi_psf_oversample(psf);
    const int m = dsi_psf_margin(psf, size), nc = (size + 2 * m) * k, ns = size * k;
    double *g = malloc(sizeof *g * (size_t)nc * nc);
    double *sub = conv ? malloc(sizeof *sub * (size_t)ns * ns) : g;
    if (!g || !sub) {
        free(g);
        if (conv)
            free(sub);
        return dsi_fail(DS_ERR_NOMEM, "sim anomalies: out of memory for a ring (%d cells)", nc);
    }
    double eps = hypot(e1, e2), q = (1 - eps) / (1 + eps), phi = 0.5 * atan2(e2, e1);
    double cs = cos(phi), sn = sin(phi), h = 1.0 / k, o = 0.25 * h;
    /* the plane's integral of exp(-(r - R)^2 / 2 w^2): 2 pi w (w e^(-R^2/2w^2) + R sqrt(pi/2)
     * (1 + erf(R / (sqrt 2 w)))) */
    double norm = 2 * M_PI * w * (w * exp(-R * R / (2 * w * w)) +
                                  R * sqrt(M_PI / 2) * (1 + erf(R / (M_SQRT2 * w))));
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < nc; j++) {
            double s = 0, xc = -m - 0.5 + (j + 0.5) * h, yc = -m - 0.5 + (i + 0.5) * h;
            for (int a = -1; a <= 1; a += 2)
                for (int b = -1; b <= 1; b += 2) {
                    double dx = xc + a * o - x0, dy = yc + b * o - y0;
                    double u = dx * cs + dy * sn, v = -dx * sn + dy * cs;
                    double r = sqrt(q * u * u + v * v / q) - R;
                    s += exp(-r * r / (2 * w * w));
                }
            g[(size_t)i * nc + j] = s * h * h * 0.25 / norm;
        }
    ds_status st = conv ? dsi_psf_convolve(psf, size, k, m, g, sub) : DS_OK;
    for (int i = 0; i < size && !st; i++)
        for (int j = 0; j < size; j++) {
            double s = 0;
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++)
                    s += sub[(size_t)(i * k + a) * ns + (size_t)j * k + b];
            img[(size_t)i * size + j] = (float)s;
        }
    free(g);
    if (conv)
        free(sub);
    return st;
}

/* A ring galaxy: a fraction f of the galaxy's flux moved from its Sersic profile into a
 * ring of radius R = (ring radius) hlr, sigma R / 5. tmp: 2 size^2 floats. */
static ds_status ring(const ds_anomaly_opts *o, const float *row, int size, ds_rng *r,
                      float *img, float *tmp, float *t)
{
    double f = uni(r, o->ring_frac_min, o->ring_frac_max);
    double R = row[DSI_SC_HLR] * uni(r, o->ring_radius_min, o->ring_radius_max), w = R / 5;
    ds_psf psf = dsi_sim_row_psf(&o->sim, row);
    ds_galaxy g = {row[DSI_SC_N], row[DSI_SC_HLR], 1.0, row[DSI_SC_E1], row[DSI_SC_E2],
                   row[DSI_SC_DX], row[DSI_SC_DY]};
    const double c = 0.5 * (size - 1);
    ds_status st = ds_galaxy_render(&g, &psf, size, tmp);
    if (!st)
        st = ring_image(&psf, size, c + g.dx, c + g.dy, g.e1, g.e2, R, w, tmp + size * size);
    if (st)
        return st;
    const float flux = row[DSI_SC_FLUX];
    for (int i = 0; i < size * size; i++)
        img[i] += (float)(f * (tmp[size * size + i] * flux - tmp[i] * flux));
    t[A_X] = (float)(c + g.dx), t[A_Y] = (float)(c + g.dy), t[A_AMP] = (float)f;
    t[A_LEN] = (float)R, t[A_WIDTH] = (float)w;
    t[A_ANGLE] = (float)(0.5 * atan2(g.e2, g.e1) * 180 / M_PI);
    return DS_OK;
}

/* Row i's anomaly of kind k into img and its columns t (zeros first). */
static ds_status inject(const ds_anomaly_opts *o, int64_t i, int k, const float *row,
                        float *img, float *tmp, float *t)
{
    const int size = o->sim.size;
    for (int j = 0; j < A_COLS; j++)
        t[j] = 0;
    t[A_KIND] = (float)k;
    if (!k)
        return DS_OK;
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->sim.seed, TAG_DRAW, i));
    if (k == DS_ANOMALY_COSMIC)
        cosmic(o, size, &r, img, t);
    else if (k == DS_ANOMALY_TRAIL)
        trail(o, row, size, &r, img, t);
    else if (k == DS_ANOMALY_HOT)
        hot(o, size, &r, img, t);
    else
        return ring(o, row, size, &r, img, tmp, t);
    return DS_OK;
}

/* The truth table [n, sim columns + A_COLS] and the injections, in parallel. The first
 * row that failed (out of memory), or -1. */
static int64_t inject_all(const ds_anomaly_opts *o, const unsigned char *kind, float *x,
                          const float *tr, float *out)
{
    const int64_t n = o->sim.count, npix = (int64_t)o->sim.size * o->sim.size;
    const int ns = ds_sim_column_count(), nc = ns + A_COLS;
    int64_t failed = -1;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        float *tmp = malloc(sizeof *tmp * (size_t)(2 * npix));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
        for (int64_t i = 0; i < n; i++) {
            float *row = out + i * nc;
            memcpy(row, tr + i * ns, sizeof *row * (size_t)ns);
            if (!tmp || inject(o, i, kind[i], row, x + i * npix, tmp, row + ns) != DS_OK) {
#ifdef _OPENMP
#pragma omp critical
#endif
                if (failed < 0 || i < failed)
                    failed = i;
            }
        }
        free(tmp);
    }
    return failed;
}

ds_status ds_sim_anomalies(const ds_anomaly_opts *opts, ds_tensor **images, ds_tensor **truth)
{
    ds_anomaly_opts o;
    ds_status st;
    if (!opts || !images || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_sim_anomalies: options and outputs must not be NULL");
    *images = *truth = NULL;
    if ((st = resolve(opts, &o)) != DS_OK)
        return st;
    ds_tensor *img = NULL, *tr = NULL;
    if ((st = ds_sim_galaxies(&o.sim, &img, &tr)) != DS_OK)
        return st;
    o.sim.size = (int)ds_tensor_shape(img)[3];   /* the defaults as ds_sim_galaxies took them */
    o.sim.count = ds_tensor_shape(img)[0];
    if (o.sim.sky_sigma == 0)
        o.sim.sky_sigma = 1;
    const int64_t n = o.sim.count;
    int64_t sh[2] = {n, ds_anomaly_column_count()};
    ds_tensor *out = ds_tensor_create(2, sh);
    unsigned char *kind = malloc((size_t)n);
    int64_t *perm = malloc(sizeof *perm * (size_t)n);
    if (!out || !kind || !perm) {
        st = dsi_fail(DS_ERR_NOMEM, "ds_sim_anomalies: out of memory for %lld rows", (long long)n);
    } else {
        pick_rows(&o, kind, perm);
        int64_t failed = inject_all(&o, kind, ds_tensor_data(img), ds_tensor_data(tr),
                                    ds_tensor_data(out));
        if (failed >= 0)
            st = dsi_fail(DS_ERR_NOMEM, "ds_sim_anomalies: row %lld (%s): out of memory",
                          (long long)failed, kind_names[kind[failed]]);
    }
    free(kind);
    free(perm);
    ds_tensor_free(tr);
    if (st) {
        ds_tensor_free(img);
        ds_tensor_free(out);
        return st;
    }
    *images = img;
    *truth = out;
    return DS_OK;
}
