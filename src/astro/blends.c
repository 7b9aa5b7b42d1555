/* blends.c - blended pairs of simulated galaxies with per-pixel segmentation masks (labels
 * 0, 1, 2), each galaxy drawn and rendered by ds_sim_galaxies, and labels to one-hot. */
#include "skysim.h"

#include "../internal.h"

#include <math.h>

/* Stream tags: the second galaxy's seed, the pair's draws, the blend's noise. */
#define TAG_B 0x626c656e645f6200ULL     /* "blend_b" */
#define TAG_PAIR 0x626c656e64706169ULL  /* "blendpai" */
#define TAG_NOISE 0x626c656e646e6f69ULL /* "blendnoi" */

enum {
    B_A = 0,                          /* a_e1 ... a_dy: 8 per galaxy */
    B_B = 8,
    B_PSF = 16,                       /* psf_fwhm, psf_beta, psf_e1, psf_e2, psf_lod, psf_obsc */
    B_G1 = 22, B_G2, B_SEP, B_ANGLE, B_RATIO, B_SNR, B_PIX_A, B_PIX_B, B_OVERLAP,
    B_COLS
};

static const char *const columns[B_COLS + 1] = {
    "a_e1", "a_e2", "a_n", "a_hlr", "a_flux", "a_snr", "a_dx", "a_dy",
    "b_e1", "b_e2", "b_n", "b_hlr", "b_flux", "b_snr", "b_dx", "b_dy",
    "psf_fwhm", "psf_beta", "psf_e1", "psf_e2", "psf_lod", "psf_obsc", "g1", "g2",
    "separation", "angle", "flux_ratio", "snr", "a_pixels", "b_pixels", "overlap", NULL,
};

const char *const *ds_blend_columns(void) { return columns; }
int ds_blend_column_count(void) { return B_COLS; }

ds_psf dsi_sim_row_psf(const ds_sim_opts *o, const float *t)
{
    ds_psf p = {o->psf.kind, t[DSI_SC_FWHM], o->psf.beta, t[DSI_SC_PE1], t[DSI_SC_PE2],
                t[DSI_SC_PLOD], t[DSI_SC_POBSC]};
    if (o->psf.kind == DS_PSF_MOFFAT)
        p.beta = t[DSI_SC_PBETA];
    return p;
}

/* The pair's draws of row i: midpoint, separation, direction, flux ratio, SNR. */
typedef struct {
    double mx, my, sep, angle, ratio, snr;
} pair_draw;

static pair_draw draw_pair(const ds_blend_opts *o, int64_t i)
{
    ds_rng r;
    double u[6];
    ds_rng_seed(&r, dsi_row_seed(o->sim.seed, TAG_PAIR, i));
    for (int j = 0; j < 6; j++)
        u[j] = ds_rng_uniform(&r);
    const ds_sim_opts *s = &o->sim;
    pair_draw d = {s->offset_max * (2 * u[0] - 1), s->offset_max * (2 * u[1] - 1),
                   o->sep_min + (o->sep_max - o->sep_min) * u[2], 2 * M_PI * u[3],
                   o->ratio_min + (o->ratio_max - o->ratio_min) * u[4],
                   s->snr_min + (s->snr_max - s->snr_min) * u[5]};
    return d;
}

/* Defaults filled, the options the blends refuse refused. */
static ds_status resolve(const ds_blend_opts *in, ds_blend_opts *o)
{
    *o = *in;
    const ds_sim_opts *s = &o->sim;
    const int size = s->size ? s->size : 32;
    if (o->sep_min == 0 && o->sep_max == 0)
        o->sep_min = size / 8.0, o->sep_max = 5 * size / 16.0;
    if (o->ratio_min == 0 && o->ratio_max == 0)
        o->ratio_min = 0.2, o->ratio_max = 1;
    if (o->mask_threshold == 0)
        o->mask_threshold = 1;
    if (s->params || s->pairs || s->shear_cycle > 0 || s->nb_prob > 0 || s->noise_kernel ||
        s->population)
        return dsi_fail(DS_ERR_ARG, "sim blends: params, pairs, shear cycles, neighbours, "
                        "correlated noise and populations are not supported");
    if (!(s->snr_min > 0 && s->snr_max >= s->snr_min && isfinite(s->snr_max)))
        return dsi_fail(DS_ERR_ARG, "sim blends: the SNR range [%g, %g] must be positive (the "
                        "masks' threshold is in sky sigmas)", s->snr_min, s->snr_max);
    if (!(o->sep_min >= 0 && o->sep_max >= o->sep_min && o->sep_max <= size))
        return dsi_fail(DS_ERR_ARG, "sim blends: separation range [%g, %g] must be within [0, "
                        "%d] (the stamp size)", o->sep_min, o->sep_max, size);
    if (!(o->ratio_min > 0 && o->ratio_max >= o->ratio_min && o->ratio_max <= 1))
        return dsi_fail(DS_ERR_ARG, "sim blends: flux ratio range [%g, %g] must be within (0, "
                        "1] (label 1 is the brighter galaxy)", o->ratio_min, o->ratio_max);
    if (!(o->mask_threshold > 0 && isfinite(o->mask_threshold)))
        return dsi_fail(DS_ERR_ARG, "sim blends: mask threshold %g must be > 0 (sky sigmas)",
                        o->mask_threshold);
    if (!(s->offset_max + o->sep_max / 2 <= size / 2.0))
        return dsi_fail(DS_ERR_ARG, "sim blends: offset %g plus half the largest separation %g "
                        "puts a galaxy's centre outside the %d-pixel stamp", s->offset_max,
                        o->sep_max, size);
    return DS_OK;
}

/* A params table [count, 14] (NaN: drawn) placing each row's galaxy at its side of the
 * pair (side -1: a, +1: b); b also takes a's PSF (ta: a's truth, NULL for a). */
static ds_tensor *placement(const ds_blend_opts *o, const pair_draw *d, int side,
                            const ds_tensor *ta)
{
    const int64_t n = o->sim.count, w = DSI_SC_POBSC + 1, nc = ds_sim_column_count();
    int64_t sh[2] = {n, w};
    ds_tensor *p = ds_tensor_create(2, sh);
    if (!p)
        return NULL;
    float *x = ds_tensor_data(p);
    for (int64_t i = 0; i < n; i++) {
        float *row = x + i * w;
        for (int j = 0; j < w; j++)
            row[j] = NAN;
        row[DSI_SC_DX] = (float)(d[i].mx + side * 0.5 * d[i].sep * cos(d[i].angle));
        row[DSI_SC_DY] = (float)(d[i].my + side * 0.5 * d[i].sep * sin(d[i].angle));
        if (!ta)
            continue;
        const float *t = ds_tensor_data((ds_tensor *)ta) + i * nc;
        row[DSI_SC_FWHM] = t[DSI_SC_FWHM];
        for (int j = DSI_SC_PBETA; j <= DSI_SC_POBSC; j++)
            row[j] = t[j];
    }
    return p;
}

/* Each galaxy at unit flux, noiseless (ds_sim_galaxies with the SNR off), placed. */
static ds_status render_side(const ds_blend_opts *o, const pair_draw *d, int side,
                             const ds_tensor *ta, ds_tensor **img, ds_tensor **tr)
{
    ds_sim_opts s = o->sim;
    s.snr_min = s.snr_max = 0;
    if (side > 0)
        s.seed = dsi_row_seed(o->sim.seed, TAG_B, -1);
    ds_tensor *p = placement(o, d, side, ta);
    if (!p)
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_blends: out of memory for %lld placements",
                        (long long)s.count);
    s.params = p;
    ds_status st = ds_sim_galaxies(&s, img, tr);
    ds_tensor_free(p);
    return st;
}

/* The truth columns of one galaxy from its ds_sim_galaxies row (flux scaled to f). */
static void galaxy_cols(const float *t, double f, float *out)
{
    const int src[8] = {DSI_SC_E1, DSI_SC_E2, DSI_SC_N, DSI_SC_HLR, DSI_SC_FLUX, DSI_SC_SNR,
                        DSI_SC_DX, DSI_SC_DY};
    for (int j = 0; j < 8; j++)
        out[j] = t[src[j]];
    out[4] = (float)f;
    out[5] = (float)(t[DSI_SC_SNR] * f);   /* a noiseless row's snr is that of unit flux */
}

/* Row i: the components scaled, the masks, the noise, the truth row. */
static void finish_row(const ds_blend_opts *o, int64_t i, const pair_draw *d, const float *ta,
                       const float *tb, const float *ua, const float *ub, float *ca, float *cb,
                       float *im, float *lab, float *row)
{
    const int64_t npix = (int64_t)o->sim.size * o->sim.size;
    const double fa = d->snr / ta[DSI_SC_SNR], fb = d->ratio * fa;
    const double thr = o->mask_threshold * o->sim.sky_sigma;
    const float fa32 = (float)fa, fb32 = (float)fb;
    int64_t na = 0, nb = 0, both = 0;
    for (int64_t j = 0; j < npix; j++) {
        float a = ua[j] * fa32, b = ub[j] * fb32;
        ca[j] = a, cb[j] = b, im[j] = a + b;
        int ia = a > thr, ib = b > thr;
        lab[j] = ia && ib ? (a >= b ? 1.0f : 2.0f) : ia ? 1.0f : ib ? 2.0f : 0.0f;
        both += ia && ib;
        na += lab[j] == 1.0f, nb += lab[j] == 2.0f;
    }
    double snr = ds_image_snr(im, npix, o->sim.sky_sigma);
    ds_rng r;
    ds_rng_seed(&r, dsi_row_seed(o->sim.seed, TAG_NOISE, i));
    ds_add_noise(im, npix, o->sim.sky_sigma, o->sim.gain, &r);
    galaxy_cols(ta, fa, row + B_A);
    galaxy_cols(tb, fb, row + B_B);
    row[B_PSF] = ta[DSI_SC_FWHM];
    for (int j = 0; j < 5; j++)
        row[B_PSF + 1 + j] = ta[DSI_SC_PBETA + j];
    row[B_G1] = ta[DSI_SC_G1], row[B_G2] = ta[DSI_SC_G2];
    row[B_SEP] = (float)d->sep;
    row[B_ANGLE] = (float)(d->angle * 180 / M_PI);
    row[B_RATIO] = (float)d->ratio;
    row[B_SNR] = (float)snr;
    row[B_PIX_A] = (float)na, row[B_PIX_B] = (float)nb, row[B_OVERLAP] = (float)both;
}

/* The outputs from both sides' unit-flux renders. */
static ds_status assemble(const ds_blend_opts *o, const pair_draw *d, const ds_tensor *ia,
                          const ds_tensor *ta, const ds_tensor *ib, const ds_tensor *tb,
                          ds_tensor **images, ds_tensor **labels, ds_tensor **truth,
                          ds_tensor **components)
{
    const int64_t n = o->sim.count, S = o->sim.size, npix = S * S, nc = ds_sim_column_count();
    int64_t s1[4] = {n, 1, S, S}, s2[4] = {n, 2, S, S}, st[2] = {n, B_COLS};
    ds_tensor *img = ds_tensor_create(4, s1), *lab = ds_tensor_create(4, s1);
    ds_tensor *tr = ds_tensor_create(2, st), *comp = ds_tensor_create(4, s2);
    if (!img || !lab || !tr || !comp) {
        ds_tensor_free(img), ds_tensor_free(lab), ds_tensor_free(tr), ds_tensor_free(comp);
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_blends: out of memory for %lld blends of %lld x "
                        "%lld", (long long)n, (long long)S, (long long)S);
    }
    const float *xa = ds_tensor_data((ds_tensor *)ia), *xb = ds_tensor_data((ds_tensor *)ib);
    const float *ra = ds_tensor_data((ds_tensor *)ta), *rb = ds_tensor_data((ds_tensor *)tb);
    float *xi = ds_tensor_data(img), *xl = ds_tensor_data(lab), *xc = ds_tensor_data(comp);
    float *xt = ds_tensor_data(tr);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        finish_row(o, i, d + i, ra + i * nc, rb + i * nc, xa + i * npix, xb + i * npix,
                   xc + 2 * i * npix, xc + (2 * i + 1) * npix, xi + i * npix, xl + i * npix,
                   xt + i * B_COLS);
    *images = img, *labels = lab, *truth = tr;
    if (components)
        *components = comp;
    else
        ds_tensor_free(comp);
    return DS_OK;
}

ds_status ds_sim_blends(const ds_blend_opts *opts, ds_tensor **images, ds_tensor **labels,
                        ds_tensor **truth, ds_tensor **components)
{
    if (!opts || !images || !labels || !truth)
        return dsi_fail(DS_ERR_ARG, "ds_sim_blends: options and outputs must not be NULL");
    *images = *labels = *truth = NULL;
    if (components)
        *components = NULL;
    ds_blend_opts o;
    ds_status st = resolve(opts, &o);
    if (st != DS_OK)
        return st;
    if (o.sim.count < 1 || o.sim.count > ((int64_t)1 << 40))
        return dsi_fail(DS_ERR_ARG, "sim blends: count %lld must be >= 1", (long long)o.sim.count);
    if (o.sim.size == 0)
        o.sim.size = 32;
    if (o.sim.sky_sigma == 0)
        o.sim.sky_sigma = 1;
    pair_draw *d = malloc(sizeof *d * (size_t)o.sim.count);
    if (!d)
        return dsi_fail(DS_ERR_NOMEM, "ds_sim_blends: out of memory for %lld blends",
                        (long long)o.sim.count);
    for (int64_t i = 0; i < o.sim.count; i++)
        d[i] = draw_pair(&o, i);
    ds_tensor *ia = NULL, *ta = NULL, *ib = NULL, *tb = NULL;
    if ((st = render_side(&o, d, -1, NULL, &ia, &ta)) == DS_OK &&
        (st = render_side(&o, d, +1, ta, &ib, &tb)) == DS_OK)
        st = assemble(&o, d, ia, ta, ib, tb, images, labels, truth, components);
    free(d);
    ds_tensor_free(ia), ds_tensor_free(ta), ds_tensor_free(ib), ds_tensor_free(tb);
    return st;
}

ds_status ds_labels_one_hot(const ds_tensor *labels, int classes, ds_tensor **out)
{
    if (!labels || !out)
        return dsi_fail(DS_ERR_ARG, "ds_labels_one_hot: labels and output must not be NULL");
    *out = NULL;
    const int nd = ds_tensor_ndim(labels);
    const int64_t *sh = ds_tensor_shape(labels);
    if (!(nd == 3 || (nd == 4 && sh[1] == 1)))
        return dsi_fail(DS_ERR_SHAPE, "ds_labels_one_hot: labels are %s, expected [N, H, W] or "
                        "[N, 1, H, W]", dsi_shape_str(nd, sh));
    if (classes < 2 || classes > 1024)
        return dsi_fail(DS_ERR_ARG, "ds_labels_one_hot: classes %d must be in [2, 1024]", classes);
    const int64_t n = sh[0], npix = sh[nd - 2] * sh[nd - 1];
    const float *x = ds_tensor_data((ds_tensor *)labels);
    for (int64_t i = 0; i < n * npix; i++)
        if (!(x[i] >= 0 && x[i] < classes && x[i] == floorf(x[i])))
            return dsi_fail(DS_ERR_ARG, "ds_labels_one_hot: label %g of sample %lld, pixel %lld "
                            "is not an integer in [0, %d)", x[i], (long long)(i / npix),
                            (long long)(i % npix), classes);
    int64_t os[4] = {n, classes, sh[nd - 2], sh[nd - 1]};
    ds_tensor *t = ds_tensor_create(4, os);
    if (!t)
        return dsi_fail(DS_ERR_NOMEM, "ds_labels_one_hot: out of memory for %s",
                        dsi_shape_str(4, os));
    float *y = ds_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < npix; j++)
            y[(i * classes + (int64_t)x[i * npix + j]) * npix + j] = 1;
    *out = t;
    return DS_OK;
}
