/* pca.c - principal component analysis: the eigenvectors of the covariance (n - 1 in the
 * denominator, as scikit-learn's explained_variance_) with the largest eigenvalues; also the
 * --transform pca:K of other methods. */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ds_status pca_fit(ds_classic *m, const dsi_classic_data *d, uint64_t seed)
{
    (void)seed;
    int64_t n = d->n, f = d->f, c = (int64_t)dsi_classic_num(m, "components");
    if (c > f || c > n)
        return dsi_fail(DS_ERR_ARG, "pca: components = %lld but the data have %lld %s and "
                        "%lld %s", (long long)c, (long long)f, dsi_plural(f, "feature",
                        "features"), (long long)n, dsi_plural(n, "sample", "samples"));
    if (n < 2)
        return dsi_fail(DS_ERR_ARG, "pca: one sample has no variance");
    double *A = malloc((size_t)(f * n) * sizeof *A), *G = calloc((size_t)(f * f), sizeof *G);
    double *mu = calloc((size_t)f, sizeof *mu), *w = malloc((size_t)f * sizeof *w);
    double *V = malloc((size_t)(f * f) * sizeof *V);
    float *out = malloc((size_t)(c * f + f + 2 * c) * sizeof *out);
    ds_status st = DS_OK;
    if (!A || !G || !mu || !w || !V || !out) {
        st = dsi_fail(DS_ERR_NOMEM, "pca: out of memory for the covariance of %lld features",
                      (long long)f);
        goto done;
    }
    for (int64_t j = 0; j < f; j++) {
        for (int64_t i = 0; i < n; i++)
            mu[j] += d->x[i * f + j];
        mu[j] /= (double)n;
        for (int64_t i = 0; i < n; i++)
            A[j * n + i] = d->x[i * f + j] - mu[j];   /* Xc^T: [f, n] */
    }
    dsi_dsyrk_ln(f, n, A, n, G, f);   /* G = -Xc^T Xc, lower triangle */
    double total = 0;
    for (int64_t i = 0; i < f; i++)
        for (int64_t j = 0; j <= i; j++) {
            G[i * f + j] = G[j * f + i] = -G[i * f + j] / (double)(n - 1);
            if (i == j)
                total += G[i * f + i];
        }
    dsi_sym_eigen(G, f, w, V);
    float *W = out, *mean = out + c * f, *var = mean + f, *ratio = var + c;
    for (int64_t a = 0; a < c * f; a++)
        W[a] = (float)V[a];
    for (int64_t j = 0; j < f; j++)
        mean[j] = (float)mu[j];
    for (int64_t q = 0; q < c; q++) {
        var[q] = (float)fmax(w[q], 0);
        ratio[q] = total > 0 ? (float)(fmax(w[q], 0) / total) : 0;
    }
    int64_t s2[2] = {c, f};
    if (!(st = dsi_classic_put(m, "components", 2, s2, W)) &&
        !(st = dsi_classic_put(m, "mean", 1, &f, mean)) &&
        !(st = dsi_classic_put(m, "variance", 1, &c, var)))
        st = dsi_classic_put(m, "ratio", 1, &c, ratio);
done:
    free(A), free(G), free(mu), free(w), free(V), free(out);
    return st;
}

static int64_t pca_width(const ds_classic *m)
{
    return (int64_t)dsi_classic_num(m, "components");
}

/* z = (x - mean) W^T, as x W^T - mean W^T (one sgemm). */
static void pca_predict(const ds_classic *m, const float *x, int64_t n, float *out)
{
    int64_t c = pca_width(m), f = m->features_in;
    const float *W = dsi_classic_arr(m, "components", c, f), *mu = dsi_classic_arr(m, "mean", f, -1);
    float shift[512], *sh = c <= 512 ? shift : malloc((size_t)c * sizeof *sh);
    if (!sh) {   /* cannot happen for the sizes load accepts; stay defined */
        memset(out, 0, (size_t)(n * c) * sizeof *out);
        return;
    }
    for (int64_t q = 0; q < c; q++) {
        double s = 0;
        for (int64_t j = 0; j < f; j++)
            s += (double)mu[j] * W[q * f + j];
        sh[q] = (float)-s;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * c, sh, (size_t)c * sizeof *out);
    dsi_sgemm(false, true, n, c, f, 1.0f, x, f, W, f, 1.0f, out, c);
    if (sh != shift)
        free(sh);
}

static ds_status pca_check(ds_classic *m, const char *file)
{
    int64_t c = pca_width(m), f = m->features_in;
    ds_status st = c > f ? dsi_fail(DS_ERR_FORMAT, "%s: pca: %lld components of %lld features",
                                    file, (long long)c, (long long)f)
                         : dsi_classic_need(m, file, "components", c, f);
    if (!st)
        st = dsi_classic_need(m, file, "mean", f, -1);
    if (!st)
        st = dsi_classic_need(m, file, "variance", c, -1);
    return st ? st : dsi_classic_need(m, file, "ratio", c, -1);
}

static const dsi_classic_param pca_params[] = {
    {"components", "2", NULL, 1, 1e5, true, "principal components kept"},
};

const dsi_classic_method dsi_classic_pca = {
    "pca", "principal component analysis (components, explained variance)",
    DSI_TASK(DS_CLASSIC_TRANSFORM), pca_params, (int)(sizeof pca_params / sizeof *pca_params),
    pca_fit, pca_width, pca_predict, pca_check, NULL};
