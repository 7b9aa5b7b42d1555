/* moments.c - adaptive (elliptical Gaussian weighted) second moments, the algorithm of
 * GalSim's HSM find_ellipmom_1/2 (Hirata & Seljak 2003, Bernstein & Jarvis 2002). */
#include "moments.h"

#include "../internal.h"

#include <math.h>

#define MOM_TOL 1e-6          /* convergence: largest relative update of centroid and M */
#define MOM_MAX_ITER 400
#define MOM_BOUND 0.25        /* largest relative update per iteration */
#define MOM_MAX_MOMENT 8000.0 /* pixels^2 */
#define MOM_MAX_SHIFT 15.0    /* pixels from the starting centroid */
#define MOM_MIN_PIXELS 6      /* as many as the Gaussian's parameters */

int dsi_all_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

typedef struct {
    double a, bx, by, cxx, cxy, cyy, rho4;
    int npix;
} wsums;

/* One weighted pass: A = sum w I, B = sum w I d, C = sum w I d d^T, rho4 = sum w I rho^4 over
 * the pixels with rho^2 < nsig2 (beyond it w < tol / 10: HSM's cut-off). Along a row rho^2
 * is quadratic in x, so w(x + 1) = w(x) r(x) with r(x + 1) = r(x) exp(-Minv_xx): two
 * multiplications per pixel instead of an exp. */
static int weighted_pass(const double *img, int nx, int ny, double x0, double y0, double mxx,
                         double mxy, double myy, wsums *s)
{
    const double nsig2 = -2.0 * log(MOM_TOL / 10.0);
    double det = mxx * myy - mxy * mxy;
    memset(s, 0, sizeof *s);
    if (!(det > 0) || !(mxx > 0) || !(myy > 0))
        return DS_MOM_NOT_POSDEF;
    double ixx = myy / det, ixy = -mxy / det, iyy = mxx / det;
    /* rows where the ellipse rho^2 = nsig2 exists: |y - y0| <= sqrt(nsig2 Myy) */
    double yh = sqrt(nsig2 * myy);
    int iy1 = (int)fmax(ceil(y0 - yh), 0.0), iy2 = (int)fmin(floor(y0 + yh), ny - 1.0);
    if (iy1 > iy2)
        return DS_MOM_OFF_STAMP;
    double step = exp(-ixx);
    for (int y = iy1; y <= iy2; y++) {
        double dy = y - y0;
        /* ixx dx^2 + 2 ixy dy dx + iyy dy^2 - nsig2 = 0 */
        double b = 2.0 * ixy * dy, c = iyy * dy * dy - nsig2;
        double disc = b * b - 4.0 * ixx * c;
        if (disc < 0)
            continue;
        double sq = sqrt(disc);
        int ix1 = (int)fmax(ceil(x0 + (-b - sq) / (2.0 * ixx)), 0.0);
        int ix2 = (int)fmin(floor(x0 + (-b + sq) / (2.0 * ixx)), nx - 1.0);
        if (ix1 > ix2)
            continue;
        const double *row = img + (int64_t)y * nx;
        double dx = ix1 - x0;
        double rho2 = ixx * dx * dx + b * dx + iyy * dy * dy;
        double w = exp(-0.5 * rho2);
        double r = exp(-0.5 * (ixx * (2.0 * dx + 1.0) + b));
        double a = 0, bx = 0, cxx = 0, r4 = 0;
        for (int x = ix1; x <= ix2; x++, dx += 1.0) {
            double v = w * row[x];
            double rr = ixx * dx * dx + b * dx + iyy * dy * dy;
            a += v;
            bx += v * dx;
            cxx += v * dx * dx;
            r4 += v * rr * rr;
            w *= r;
            r *= step;
        }
        /* dy is constant along the row */
        s->a += a;
        s->bx += bx;
        s->by += a * dy;
        s->cxx += cxx;
        s->cxy += bx * dy;
        s->cyy += a * dy * dy;
        s->rho4 += r4;
        s->npix += ix2 - ix1 + 1;
    }
    return DS_MOM_OK;
}

static double clamp_step(double d)
{
    return d > MOM_BOUND ? MOM_BOUND : d < -MOM_BOUND ? -MOM_BOUND : d;
}

/* Fixed point of M <- 2 C / A (the weighted covariance of a Gaussian of covariance M under a
 * weight of covariance M is M / 2), centroid <- centroid + B / A; each update is scaled by the
 * weight's minor semi-axis and bounded, as in HSM, so that the iteration cannot overshoot. */
int dsi_ellipmom_find(const double *img, int nx, int ny, dsi_ellipmom *m)
{
    double x00 = m->x0, y00 = m->y0;
    double conv = 1.0, scale0 = 0;
    wsums s = {0};
    m->iterations = 0;
    while (conv > MOM_TOL) {
        int code = weighted_pass(img, nx, ny, m->x0, m->y0, m->mxx, m->mxy, m->myy, &s);
        if (code)
            return code;
        if (s.npix < MOM_MIN_PIXELS)
            return DS_MOM_FEW_PIXELS;
        if (!(s.a > 0))
            return isnan(s.a) ? DS_MOM_NOT_POSDEF : DS_MOM_NO_FLUX;
        /* smallest eigenvalue of M: the squared minor semi-axis */
        double t = m->mxx + m->myy, dd = m->mxx - m->myy;
        double b2 = 0.5 * (t - sqrt(dd * dd + 4.0 * m->mxy * m->mxy));
        if (!(b2 > 0))
            return DS_MOM_NOT_POSDEF;
        double scale = sqrt(b2);
        if (m->iterations == 0)
            scale0 = scale;
        double dx = clamp_step(2.0 * s.bx / (s.a * scale));
        double dy = clamp_step(2.0 * s.by / (s.a * scale));
        double dxx = clamp_step(4.0 * (s.cxx / s.a - 0.5 * m->mxx) / b2);
        double dxy = clamp_step(4.0 * (s.cxy / s.a - 0.5 * m->mxy) / b2);
        double dyy = clamp_step(4.0 * (s.cyy / s.a - 0.5 * m->myy) / b2);
        conv = fmax(fmax(fabs(dx), fabs(dy)), fmax(fmax(fabs(dxx), fabs(dxy)), fabs(dyy)));
        if (scale < scale0)
            conv *= scale0 / scale;
        m->x0 += dx * scale;
        m->y0 += dy * scale;
        m->mxx += dxx * b2;
        m->mxy += dxy * b2;
        m->myy += dyy * b2;
        m->iterations++;
        if (isnan(conv) || isnan(m->x0) || isnan(m->y0) || isnan(m->mxx) || isnan(m->mxy) ||
            isnan(m->myy))
            return DS_MOM_NOT_POSDEF;
        if (fabs(m->mxx) > MOM_MAX_MOMENT || fabs(m->mxy) > MOM_MAX_MOMENT ||
            fabs(m->myy) > MOM_MAX_MOMENT)
            return DS_MOM_TOO_LARGE;
        if (fabs(m->x0 - x00) > MOM_MAX_SHIFT || fabs(m->y0 - y00) > MOM_MAX_SHIFT ||
            m->x0 < -0.5 || m->x0 > nx - 0.5 || m->y0 < -0.5 || m->y0 > ny - 0.5)
            return DS_MOM_OFF_STAMP;
        if (m->iterations > MOM_MAX_ITER)
            return DS_MOM_NOT_CONVERGED;
    }
    if (m->mxx * m->myy - m->mxy * m->mxy <= 0 || m->mxx <= 0 || m->myy <= 0)
        return DS_MOM_NOT_POSDEF;
    m->amp = s.a;
    m->rho4 = s.rho4 / s.a;
    return DS_MOM_OK;
}

/* A starting size from the unweighted second moments about the unweighted centroid, kept
 * within [0.5, size / 2] so that a noisy stamp still gives a usable first weight. */
static int unweighted_sigma(const double *img, int size, double *sigma)
{
    double f = 0, sx = 0, sy = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double v = img[(int64_t)i * size + j];
            f += v;
            sx += v * j;
            sy += v * i;
        }
    if (!(f > 0))
        return DS_MOM_NO_FLUX;
    double xc = sx / f, yc = sy / f, mxx = 0, mxy = 0, myy = 0;
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double v = img[(int64_t)i * size + j];
            mxx += v * (j - xc) * (j - xc);
            mxy += v * (j - xc) * (i - yc);
            myy += v * (i - yc) * (i - yc);
        }
    double det = (mxx * myy - mxy * mxy) / (f * f);
    double s = det > 0 ? pow(det, 0.25) : sqrt(fmax(0.5 * (mxx + myy) / f, 0.0));
    *sigma = fmin(fmax(s, 0.5), fmax(0.5 * size, 0.5));
    return DS_MOM_OK;
}

static void moments_failed(ds_moments *out, int flag, int iterations)
{
    double nan = NAN;
    *out = (ds_moments){nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, iterations, flag};
}

ds_status ds_adaptive_moments(const float *img, int size, double guess_sigma, ds_moments *out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "adaptive moments: out is NULL");
    moments_failed(out, DS_MOM_NOT_CONVERGED, 0);
    if (!img)
        return dsi_fail(DS_ERR_ARG, "adaptive moments: image is NULL");
    if (size < 1 || size > 65535)
        return dsi_fail(DS_ERR_ARG, "adaptive moments: stamp size %d outside [1, 65535]", size);
    if (!isfinite(guess_sigma))
        return dsi_fail(DS_ERR_ARG, "adaptive moments: guess_sigma %g is not finite",
                        guess_sigma);
    int64_t n = (int64_t)size * size;
    if (!dsi_all_finite(img, n)) {
        out->flag = DS_MOM_NONFINITE;
        return DS_OK;
    }
    double *d = malloc((size_t)n * sizeof *d);
    if (!d)
        return dsi_fail(DS_ERR_NOMEM, "adaptive moments: no memory for a %dx%d stamp", size,
                        size);
    for (int64_t i = 0; i < n; i++)
        d[i] = img[i];
    double sigma = guess_sigma;
    int code = guess_sigma > 0 ? DS_MOM_OK : unweighted_sigma(d, size, &sigma);
    double c = 0.5 * (size - 1);
    dsi_ellipmom m = {c, c, sigma * sigma, 0, sigma * sigma, 0, 0, 0};
    if (!code)
        code = dsi_ellipmom_find(d, size, size, &m);
    free(d);
    if (code) {
        out->flag = code;
        out->iterations = m.iterations;
        return DS_OK;
    }
    double t = m.mxx + m.myy;
    *out = (ds_moments){
        .x0 = m.x0, .y0 = m.y0,
        .sigma = pow(m.mxx * m.myy - m.mxy * m.mxy, 0.25),
        .e1 = (m.mxx - m.myy) / t, .e2 = 2.0 * m.mxy / t,
        .mxx = m.mxx, .mxy = m.mxy, .myy = m.myy,
        .rho4 = m.rho4,
        .flux = 2.0 * m.amp,
        .iterations = m.iterations,
        .flag = DS_MOM_OK,
    };
    return DS_OK;
}

const char *ds_moments_flag_name(int flag)
{
    static const char *const mom[] = {
        [DS_MOM_OK] = "ok",
        [DS_MOM_NOT_CONVERGED] = "not converged",
        [DS_MOM_NOT_POSDEF] = "covariance not positive definite",
        [DS_MOM_OFF_STAMP] = "centroid ran off the stamp",
        [DS_MOM_TOO_LARGE] = "moments too large",
        [DS_MOM_FEW_PIXELS] = "too few pixels under the weight",
        [DS_MOM_NONFINITE] = "non-finite pixel values",
        [DS_MOM_NO_FLUX] = "no positive flux",
    };
    switch (flag & ~15) {
    case 0:
        return flag < (int)(sizeof mom / sizeof mom[0]) ? mom[flag] : "unknown flag";
    case DS_SHEAR_FAIL_PSF: return "PSF moments failed";
    case DS_SHEAR_FAIL_GAL: return "galaxy moments failed";
    case DS_SHEAR_FAIL_REGAUSS: return "re-Gaussianized moments failed";
    case DS_SHEAR_FAIL_UNRESOLVED: return "galaxy not resolved";
    case DS_SHEAR_FAIL_RANGE: return "corrected ellipticity out of range";
    default: return "unknown flag";
    }
}
