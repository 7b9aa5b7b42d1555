/* regauss.c - PSF-corrected ellipticities from adaptive moments: re-Gaussianization
 * (Hirata & Seljak 2003, the algorithm of GalSim's HSM psf_corr_regauss) and plain linear
 * subtraction of the PSF's moments. */
#include "moments.h"

#include "../internal.h"

#include <math.h>

#define GAL_GUESS_SIGMA 5.0   /* GalSim's EstimateShear defaults */
#define PSF_GUESS_SIGMA 3.0
#define NSIG_RG 3.0           /* extent of the deconvolved Gaussian, in its sigmas */
#define NSIG_RG2 3.6          /* extent of the PSF residual, in galaxy sigmas */
#define MIN_SEMI_AXIS2 0.25   /* floor on the deconvolved Gaussian's squared semi-axes */

/* Distortion e (Bernstein & Jarvis) to eps = (1 - q) / (1 + q) along the same direction. */
static void distortion_to_eps(double e1, double e2, double *g1, double *g2)
{
    double f = 1.0 / (1.0 + sqrt(1.0 - (e1 * e1 + e2 * e2)));
    *g1 = e1 * f;
    *g2 = e2 * f;
}

/* Distortion a followed by distortion b (Bernstein & Jarvis 2002, eq. 2-13). The factor
 * (1 - sqrt(1 - |b|^2)) / |b|^2 is written as 1 / (1 + sqrt(1 - |b|^2)), finite at b = 0. */
static void distortion_compose(double a1, double a2, double b1, double b2, double *e1,
                               double *e2)
{
    double dot = a1 * b1 + a2 * b2;
    double f = 1.0 / (1.0 + sqrt(1.0 - (b1 * b1 + b2 * b2)));
    double cross = a2 * b1 - a1 * b2;
    *e1 = (a1 + b1 + b2 * f * cross) / (1.0 + dot);
    *e2 = (a2 + b2 - b1 * f * cross) / (1.0 + dot);
}

/* Bernstein & Jarvis (2002) appendix A4 correction: shear to the frame where the PSF is
 * round, divide by the resolution corrected for the radial kurtosis a4 = rho4 / 2 - 1 of
 * the object (ao) and PSF (ap), shear back. t_ratio = Tpsf / Tobserved. */
static void psf_correct_bj(double t_ratio, double p1, double p2, double ap, double o1, double o2,
                           double ao, double *e1, double *e2)
{
    double cosh_p = 1.0 / sqrt(1.0 - (p1 * p1 + p2 * p2));
    double cosh_o = 1.0 / sqrt(1.0 - (o1 * o1 + o2 * o2));
    double sig2_ratio = t_ratio * cosh_o / cosh_p;   /* sigma^2 = T / cosh(eta): shear-invariant */
    double r1, r2;
    distortion_compose(o1, o2, -p1, -p2, &r1, &r2);
    double cosh_r = 1.0 / sqrt(1.0 - (r1 * r1 + r2 * r2));
    double res = 1.0 - sig2_ratio * (1.0 - ap) / (1.0 + ap) * (1.0 + ao) / (1.0 - ao) / cosh_r;
    distortion_compose(r1 / res, r2 / res, p1, p2, e1, e2);
}

/* Re-Gaussianization. The PSF P = G + (P - G) with G its best-fit Gaussian; the galaxy
 * f ~ F, a Gaussian of covariance Mgal - Mpsf (the deconvolved estimate). Then
 * I' = I + F * (G - P) ~ f * G is the galaxy seen through a Gaussian PSF, whose adaptive
 * moments are corrected with G's and I''s kurtosis. work: 6 n^2 doubles (F, whose box is
 * at most (2n - 1)^2 < 4 n^2, then G - P and I'). Returns a flag. */
static int regauss(const double *gal, const double *psf, int n, const dsi_ellipmom *pm,
                   const dsi_ellipmom *gm0, double *work, double *e1, double *e2, double *res)
{
    int64_t npix = (int64_t)n * n;
    double flux_psf = 0;
    for (int64_t i = 0; i < npix; i++)
        flux_psf += psf[i];
    if (!(flux_psf > 0))
        return DS_SHEAR_FAIL_PSF | DS_MOM_NO_FLUX;

    /* the galaxy again from a round weight of its own size, as HSM does */
    double s2 = sqrt(gm0->mxx * gm0->myy - gm0->mxy * gm0->mxy);
    dsi_ellipmom gm = {gm0->x0, gm0->y0, s2, 0, s2, 0, 0, 0};
    int code = dsi_ellipmom_find(gal, n, n, &gm);
    if (code)
        return DS_SHEAR_FAIL_GAL | code;
    double flux_gal = gm.rho4 * gm.amp;   /* the Gaussian-quartic fit's flux */

    /* deconvolved covariance Mf, semi-axes floored so that the Gaussian stays resolvable */
    double fxx = gm.mxx - pm->mxx, fxy = gm.mxy - pm->mxy, fyy = gm.myy - pm->myy;
    double two_phi = atan2(2.0 * fxy, fxx - fyy), cs = cos(two_phi), sn = sin(two_phi);
    double a2 = 0.5 * (fxx + fyy + (fxx - fyy) * cs) + fxy * sn;
    double b2 = fxx + fyy - a2;
    a2 = fmax(a2, MIN_SEMI_AXIS2);
    b2 = fmax(b2, MIN_SEMI_AXIS2);
    fxx = 0.5 * (a2 + b2 + (a2 - b2) * cs);
    fyy = 0.5 * (a2 + b2 - (a2 - b2) * cs);
    fxy = 0.5 * (a2 - b2) * sn;
    double fdet = fxx * fyy - fxy * fxy;

    /* F on offsets u in [-(n-1), n-1]^2 (galaxy minus PSF pixel), cut at NSIG_RG sigma */
    double cx = gm.x0 - pm->x0, cy = gm.y0 - pm->y0;
    double sx = sqrt(fmax(fxx, 1.0)), sy = sqrt(fmax(fyy, 1.0));
    int ux1 = (int)fmax(-(n - 1.0), floor(cx - NSIG_RG * sx));
    int ux2 = (int)fmin(n - 1.0, ceil(cx + NSIG_RG * sx));
    int uy1 = (int)fmax(-(n - 1.0), floor(cy - NSIG_RG * sy));
    int uy2 = (int)fmin(n - 1.0, ceil(cy + NSIG_RG * sy));
    if (ux1 > ux2 || uy1 > uy2)
        return DS_SHEAR_FAIL_UNRESOLVED;
    int fw = ux2 - ux1 + 1;
    double *fg = work, *resid = work + 4 * npix, *iprime = work + 5 * npix;
    double ixx = fyy / fdet, ixy = -fxy / fdet, iyy = fxx / fdet, sum = 0;
    for (int v = uy1; v <= uy2; v++)
        for (int u = ux1; u <= ux2; u++) {
            double dx = u - cx, dy = v - cy;
            double g = exp(-0.5 * (ixx * dx * dx + iyy * dy * dy) - ixy * dx * dy);
            fg[(int64_t)(v - uy1) * fw + (u - ux1)] = g;
            sum += g;
        }
    double norm = flux_gal / (sum * flux_psf);
    for (int64_t k = 0; k < (int64_t)fw * (uy2 - uy1 + 1); k++)
        fg[k] *= norm;

    /* G - P over the part of the PSF stamp that reaches the galaxy's NSIG_RG2 ellipse */
    int px1 = (int)fmax(0.0, floor(pm->x0 - NSIG_RG2 * sqrt(gm.mxx) - NSIG_RG * sx));
    int px2 = (int)fmin(n - 1.0, ceil(pm->x0 + NSIG_RG2 * sqrt(gm.mxx) + NSIG_RG * sx));
    int py1 = (int)fmax(0.0, floor(pm->y0 - NSIG_RG2 * sqrt(gm.myy) - NSIG_RG * sy));
    int py2 = (int)fmin(n - 1.0, ceil(pm->y0 + NSIG_RG2 * sqrt(gm.myy) + NSIG_RG * sy));
    double pdet = pm->mxx * pm->myy - pm->mxy * pm->mxy;
    double pxx = pm->myy / pdet, pxy = -pm->mxy / pdet, pyy = pm->mxx / pdet;
    double peak = flux_psf / (2.0 * M_PI * sqrt(pdet));
    for (int y = py1; y <= py2; y++)
        for (int x = px1; x <= px2; x++) {
            double dx = x - pm->x0, dy = y - pm->y0;
            resid[(int64_t)y * n + x] = peak * exp(-0.5 * (pxx * dx * dx + pyy * dy * dy) -
                                                   pxy * dx * dy) - psf[(int64_t)y * n + x];
        }

    /* I'(y, x) = I(y, x) + sum_(v, u) F(v, u) R(y - v, x - u), direct: F is small */
    memcpy(iprime, gal, (size_t)npix * sizeof *iprime);
    for (int v = uy1; v <= uy2; v++) {
        int y1 = (int)fmax(0, py1 + v), y2 = (int)fmin(n - 1, py2 + v);
        for (int u = ux1; u <= ux2; u++) {
            double f = fg[(int64_t)(v - uy1) * fw + (u - ux1)];
            int x1 = (int)fmax(0, px1 + u), x2 = (int)fmin(n - 1, px2 + u);
            for (int y = y1; y <= y2; y++) {
                double *out = iprime + (int64_t)y * n;
                const double *r = resid + (int64_t)(y - v) * n - u;
                for (int x = x1; x <= x2; x++)
                    out[x] += f * r[x];
            }
        }
    }

    dsi_ellipmom im = gm;
    code = dsi_ellipmom_find(iprime, n, n, &im);
    if (code)
        return DS_SHEAR_FAIL_REGAUSS | code;
    double tg = im.mxx + im.myy, tp = pm->mxx + pm->myy;
    /* the PSF's kurtosis is 0: it has been re-Gaussianized */
    psf_correct_bj(tp / tg, (pm->mxx - pm->myy) / tp, 2.0 * pm->mxy / tp, 0.0,
                   (im.mxx - im.myy) / tg, 2.0 * im.mxy / tg, 0.5 * im.rho4 - 1.0, e1, e2);
    *res = 1.0 - tp / tg;
    return 0;
}

ds_status ds_shear_estimate(const float *gal, const float *psf_img, int size, double sky_var,
                            ds_shear_method method, ds_shear *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "shear estimate: out is NULL");
    *out = (ds_shear){NAN, NAN, NAN, 0};
    if (!gal || !psf_img)
        return dsi_fail(DS_ERR_ARG, "shear estimate: %s image is NULL", gal ? "PSF" : "galaxy");
    if (size < 1 || size > 16384)
        return dsi_fail(DS_ERR_ARG, "shear estimate: stamp size %d outside [1, 16384]", size);
    if (!(sky_var >= 0) || !isfinite(sky_var))
        return dsi_fail(DS_ERR_ARG, "shear estimate: sky variance %g is not finite and >= 0",
                        sky_var);
    if (method != DS_SHEAR_REGAUSS && method != DS_SHEAR_LINEAR)
        return dsi_fail(DS_ERR_ARG, "shear estimate: unknown method %d", (int)method);
    int64_t npix = (int64_t)size * size;
    if (!dsi_all_finite(gal, npix)) {
        out->flag = DS_SHEAR_FAIL_GAL | DS_MOM_NONFINITE;
        return DS_OK;
    }
    if (!dsi_all_finite(psf_img, npix)) {
        out->flag = DS_SHEAR_FAIL_PSF | DS_MOM_NONFINITE;
        return DS_OK;
    }
    /* galaxy, PSF, then re-Gaussianization's workspace */
    double *buf = malloc((size_t)npix * 8 * sizeof *buf);
    if (!buf)
        return dsi_fail(DS_ERR_NOMEM, "shear estimate: no memory for a %dx%d stamp", size, size);
    double *g = buf, *p = buf + npix, *work = buf + 2 * npix;
    for (int64_t i = 0; i < npix; i++) {
        g[i] = gal[i];
        p[i] = psf_img[i];
    }
    double c = 0.5 * (size - 1), sg2 = GAL_GUESS_SIGMA * GAL_GUESS_SIGMA;
    double sp2 = PSF_GUESS_SIGMA * PSF_GUESS_SIGMA;
    dsi_ellipmom gm = {c, c, sg2, 0, sg2, 0, 0, 0}, pm = {c, c, sp2, 0, sp2, 0, 0, 0};
    int flag = 0, code;
    double e1 = NAN, e2 = NAN, res = NAN;
    if ((code = dsi_ellipmom_find(g, size, size, &gm)))
        flag = DS_SHEAR_FAIL_GAL | code;
    else if ((code = dsi_ellipmom_find(p, size, size, &pm)))
        flag = DS_SHEAR_FAIL_PSF | code;
    else if (method == DS_SHEAR_REGAUSS) {
        flag = regauss(g, p, size, &pm, &gm, work, &e1, &e2, &res);
    } else {
        /* Gaussian galaxy * Gaussian PSF: covariances add, pixel response included in both */
        double fxx = gm.mxx - pm.mxx, fxy = gm.mxy - pm.mxy, fyy = gm.myy - pm.myy;
        double tf = fxx + fyy;
        res = 1.0 - (pm.mxx + pm.myy) / (gm.mxx + gm.myy);
        if (fxx > 0 && fyy > 0 && fxx * fyy - fxy * fxy > 0) {
            e1 = (fxx - fyy) / tf;
            e2 = 2.0 * fxy / tf;
        } else {
            flag = DS_SHEAR_FAIL_UNRESOLVED;
        }
    }
    free(buf);
    if (!flag && !(res > 0))
        flag = DS_SHEAR_FAIL_UNRESOLVED;
    if (!flag && !(e1 * e1 + e2 * e2 < 1.0))
        flag = DS_SHEAR_FAIL_RANGE;
    if (flag) {
        out->flag = flag;
        return DS_OK;
    }
    distortion_to_eps(e1, e2, &out->e1, &out->e2);
    out->resolution = res;
    return DS_OK;
}
