/* moments.h - the adaptive-moments iteration shared by moments.c and regauss.c (private). */
#ifndef DS_ASTRO_MOMENTS_H
#define DS_ASTRO_MOMENTS_H

#include "deepsky.h"

/* An elliptical Gaussian weight w = exp(-rho^2 / 2), rho^2 = d^T M^-1 d, d = (x - x0, y - y0).
 * In: the starting weight. Out: the weight whose weighted moments match it (for a
 * Gaussian image of covariance C, M = C). */
typedef struct {
    double x0, y0;
    double mxx, mxy, myy;
    double amp;          /* sum of w I over the last pass: half the fitted Gaussian's flux */
    double rho4;         /* sum of w I rho^4 / amp over the last pass (2 for a Gaussian) */
    int iterations;
} dsi_ellipmom;

/* HSM's find_ellipmom_2 on a row-major nx x ny image (pixel (i, j) at x = j, y = i):
 * tolerance 1e-6, at most 400 iterations, steps bounded by 0.25. Returns a DS_MOM_* code. */
int dsi_ellipmom_find(const double *img, int nx, int ny, dsi_ellipmom *m);

/* 1 when all n values are finite. */
int dsi_all_finite(const float *x, int64_t n);

#endif
