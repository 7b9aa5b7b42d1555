/* newton.c - damped Newton's method with the exact Hessian, for small networks. The
 * Hessian is built column by column with forward-over-reverse products (Pearlmutter 1994):
 * for each direction v = e_i, a forward pass of tangents R{y} and a reverse pass of R{dy}
 * give H v exactly (up to rounding), in double precision. The per-op rules are in rop.c. */
#include "rop.h"

#include <math.h>

#define NEWTON_MAX_PARAMS 5000
#define NEWTON_MAX_TRIES 30
#define NEWTON_LAMBDA_MIN 1e-12

/* What one call knows about the graph. Only "needed" nodes take part: those that depend on
 * a trainable parameter and lie upstream of the loss. Other nodes have zero tangents and
 * need no adjoint, so an op without second-order rules is fine there (e.g. on targets). */
typedef struct {
    ds_graph *g;
    ds_node *loss;
    int nn;                 /* nodes 0 .. loss->id */
    unsigned char *need;
    int64_t *poff;          /* parameter nodes: offset of their values in theta; else -1 */
    ds_param **params;      /* trainable parameters reaching the loss, in model order */
    int np;
    int64_t *off;           /* offset of params[k] in theta */
    int64_t n;              /* length of theta */
    double **aux, **A;      /* per node: prepared data (rop.c), adjoint dL/dy */
    double *mem;
    size_t tan_doubles;     /* sum of numel over needed nodes: one tangent set */
} hctx;

static void ctx_free(hctx *c)
{
    free(c->need);
    free(c->poff);
    free(c->params);
    free(c->off);
    free(c->aux);
    free(c->A);
    free(c->mem);
    memset(c, 0, sizeof *c);
}

static ds_status ctx_build(hctx *c, ds_graph *g, ds_node *loss)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->loss = loss;
    int nn = c->nn = loss->id + 1;
    ds_model *m = g->m;
    unsigned char *dep = calloc((size_t)nn, 1), *path = calloc((size_t)nn, 1);
    bool *used = calloc((size_t)m->n + 1, sizeof *used);
    c->need = calloc((size_t)nn, 1);
    c->poff = malloc((size_t)nn * sizeof *c->poff);
    c->params = malloc(((size_t)m->n + 1) * sizeof *c->params);
    c->off = malloc(((size_t)m->n + 1) * sizeof *c->off);
    c->aux = calloc((size_t)nn, sizeof *c->aux);
    c->A = calloc((size_t)nn, sizeof *c->A);
    ds_status st = DS_OK;
    if (!dep || !path || !used || !c->need || !c->poff || !c->params || !c->off || !c->aux ||
        !c->A) {
        st = dsi_fail(DS_ERR_NOMEM, "newton: out of memory analysing the graph");
        goto done;
    }
    for (int i = 0; i < nn; i++) {
        ds_node *y = g->nodes[i];
        if (y->op == DS_OP_PARAM)
            dep[i] = y->param->trainable != 0;
        else
            for (int k = 0; k < y->n_in; k++)
                dep[i] |= dep[y->in[k]->id];
    }
    path[nn - 1] = 1;
    for (int i = nn - 1; i >= 0; i--)
        if (path[i])
            for (int k = 0; k < g->nodes[i]->n_in; k++)
                path[g->nodes[i]->in[k]->id] = 1;
    for (int i = 0; i < nn; i++) {
        ds_node *y = g->nodes[i];
        c->poff[i] = -1;
        c->need[i] = dep[i] && path[i];
        if (!c->need[i])
            continue;
        if (!dsi_rop_supported(y->op)) {
            st = dsi_fail(DS_ERR_ARG, "newton: op '%s' in layer '%s' has no second-order rule",
                          dsi_op_names[y->op], dsi_node_layer(y));
            goto done;
        }
        if (y->op == DS_OP_PARAM)
            for (int k = 0; k < m->n; k++)
                if (m->params[k] == y->param)
                    used[k] = true;
    }
    for (int k = 0; k < m->n; k++)
        if (used[k]) {
            c->params[c->np] = m->params[k];
            c->off[c->np++] = c->n;
            c->n += m->params[k]->numel;
        }
    if (c->n == 0) {
        st = dsi_fail(DS_ERR_ARG, "newton: no trainable parameter reaches the loss '%s'",
                      dsi_node_layer(loss));
        goto done;
    }
    if (c->n > NEWTON_MAX_PARAMS) {
        st = dsi_fail(DS_ERR_ARG, "newton: %lld trainable parameters reach the loss; the exact "
                      "Hessian is limited to %d (it takes n^2 doubles and n passes)",
                      (long long)c->n, NEWTON_MAX_PARAMS);
        goto done;
    }
    for (int i = 0; i < nn; i++) {
        ds_node *y = g->nodes[i];
        if (c->need[i] && y->op == DS_OP_PARAM)
            for (int k = 0; k < c->np; k++)
                if (c->params[k] == y->param)
                    c->poff[i] = c->off[k];
    }
    /* one block for the prepared data and the adjoints */
    size_t total = 0;
    for (int i = 0; i < nn; i++)
        if (c->need[i]) {
            total += (size_t)dsi_rop_aux_size(g->nodes[i]) + (size_t)g->nodes[i]->numel;
            c->tan_doubles += (size_t)g->nodes[i]->numel;
        }
    c->mem = calloc(total ? total : 1, sizeof *c->mem);
    if (!c->mem) {
        st = dsi_fail(DS_ERR_NOMEM, "newton: out of memory (%zu doubles of workspace)", total);
        goto done;
    }
    double *p = c->mem;
    for (int i = 0; i < nn; i++)
        if (c->need[i]) {
            ds_node *y = g->nodes[i];
            int64_t na = dsi_rop_aux_size(y);
            if (na) {
                c->aux[i] = p;
                p += na;
            }
            c->A[i] = p;
            p += y->numel;
        }
done:
    free(dep);
    free(path);
    free(used);
    if (st != DS_OK)
        ctx_free(c);
    return st;
}

/* Prepared data and adjoints from the graph's current forward values; grad (n) gets the
 * gradient in double. */
static void ctx_gradient(hctx *c, double *grad)
{
    ds_graph *g = c->g;
    for (int i = 0; i < c->nn; i++) {
        if (!c->need[i])
            continue;
        ds_node *y = g->nodes[i];
        if (c->aux[i])
            dsi_rop_prepare(y, c->aux[i]);
        memset(c->A[i], 0, (size_t)y->numel * sizeof(double));
    }
    c->A[c->nn - 1][0] = 1.0;
    for (int i = c->nn - 1; i >= 0; i--) {
        ds_node *y = g->nodes[i];
        if (c->need[i] && y->n_in > 0)
            dsi_rop_vjp(y, c->aux[i], c->A[i], c->A);
    }
    memset(grad, 0, (size_t)c->n * sizeof *grad);
    for (int i = 0; i < c->nn; i++)
        if (c->poff[i] >= 0)
            for (int64_t k = 0; k < g->nodes[i]->numel; k++)
                grad[c->poff[i] + k] += c->A[i][k];
}

/* Row j of H (= column j, H being symmetric up to rounding) by one R-operator pass with
 * v = e_j. R, RA: tangent blocks (tan_doubles each); Rt, RAt, touched: nn entries. */
static void hessian_row(const hctx *c, int64_t j, double *R, double *RA, double **Rt,
                        double **RAt, unsigned char *touched, double *row)
{
    ds_graph *g = c->g;
    double *rp = R, *ap = RA;
    for (int i = 0; i < c->nn; i++) {
        ds_node *y = g->nodes[i];
        Rt[i] = RAt[i] = NULL;
        touched[i] = 0;
        if (!c->need[i])
            continue;
        double *ri = rp, *ai = ap;
        rp += y->numel;
        ap += y->numel;
        RAt[i] = ai;
        memset(ai, 0, (size_t)y->numel * sizeof *ai);
        if (y->op == DS_OP_PARAM) {
            int64_t k = j - c->poff[i];
            if (k >= 0 && k < y->numel) {
                memset(ri, 0, (size_t)y->numel * sizeof *ri);
                ri[k] = 1.0;
                Rt[i] = ri;
            }
            continue;
        }
        bool nz = false;
        for (int k = 0; k < y->n_in; k++)
            nz |= Rt[y->in[k]->id] != NULL;
        if (!nz)
            continue;   /* the tangent is zero: upstream of the parameter moved */
        memset(ri, 0, (size_t)y->numel * sizeof *ri);
        Rt[i] = ri;
        dsi_rop_jvp(y, c->aux[i], Rt);
    }
    /* reverse: R{dx} = J^T R{dy} + (R{J})^T dy; R{dL} = 0 since dL = 1 */
    for (int i = c->nn - 1; i >= 0; i--) {
        ds_node *y = g->nodes[i];
        if (!c->need[i] || y->n_in == 0)
            continue;
        bool has_r = false;
        for (int k = 0; k < y->n_in; k++)
            has_r |= Rt[y->in[k]->id] != NULL;
        if (!touched[i] && !has_r)
            continue;
        if (touched[i])
            dsi_rop_vjp(y, c->aux[i], RAt[i], RAt);
        if (has_r)
            dsi_rop_hvp(y, c->aux[i], c->A[i], Rt, RAt);
        for (int k = 0; k < y->n_in; k++)
            touched[y->in[k]->id] = 1;
    }
    memset(row, 0, (size_t)c->n * sizeof *row);
    for (int i = 0; i < c->nn; i++)
        if (c->poff[i] >= 0 && touched[i])
            for (int64_t k = 0; k < g->nodes[i]->numel; k++)
                row[c->poff[i] + k] += RAt[i][k];
}

/* H (n*n), symmetrized. Rows are independent: threads take whole rows, so the result does
 * not depend on the thread count. */
static ds_status ctx_hessian(const hctx *c, double *H, double *asym)
{
    int64_t n = c->n;
    int nt = dsi_threads();
    if ((double)n * (double)c->tan_doubles < DS_PAR_MIN)
        nt = 1;
    if (nt > n)
        nt = (int)n;
    size_t per = 2 * c->tan_doubles;
    double *tan = malloc((size_t)nt * per * sizeof *tan);
    double **tabs = malloc((size_t)nt * 2 * (size_t)c->nn * sizeof *tabs);
    unsigned char *tch = malloc((size_t)nt * (size_t)c->nn);
    if (!tan || !tabs || !tch) {
        free(tan);
        free(tabs);
        free(tch);
        return dsi_fail(DS_ERR_NOMEM, "newton: out of memory for %d tangent sets of %zu doubles",
                        nt, per);
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        double *R = tan + (size_t)t * per, *RA = R + c->tan_doubles;
        double **Rt = tabs + (size_t)t * 2 * (size_t)c->nn, **RAt = Rt + c->nn;
        unsigned char *touched = tch + (size_t)t * (size_t)c->nn;
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < n; j++)
            hessian_row(c, j, R, RA, Rt, RAt, touched, H + j * n);
    }
    free(tan);
    free(tabs);
    free(tch);
    double amax = 0, hmax = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            amax = fmax(amax, fabs(H[i * n + j] - H[j * n + i]));
            hmax = fmax(hmax, fmax(fabs(H[i * n + j]), fabs(H[i * n + i])));
            double s = 0.5 * (H[i * n + j] + H[j * n + i]);
            H[i * n + j] = H[j * n + i] = s;
        }
    if (asym)
        *asym = hmax > 0 ? amax / hmax : amax;
    return DS_OK;
}

static ds_status check_args(ds_graph *g, ds_node *loss)
{
    if (!g || !loss)
        return dsi_fail(DS_ERR_ARG, "newton: graph or loss is NULL");
    if (loss->g != g)
        return dsi_fail(DS_ERR_ARG, "newton: the loss node is not part of this graph");
    if (loss->numel != 1)
        return dsi_fail(DS_ERR_SHAPE, "newton: loss '%s' has shape %s, not a scalar",
                        dsi_node_layer(loss), dsi_shape_str(loss->ndim, loss->shape));
    /* the tangent passes read every node's forward value: no memory may be shared */
    ds_graph_keep_all(g, 1);
    return DS_OK;
}

ds_status dsi_newton_hessian(ds_graph *g, ds_node *loss, int64_t *n, double **grad,
                             double **hess, ds_param ***params, int *n_params, double *asym)
{
    *grad = *hess = NULL;
    ds_status st = check_args(g, loss);
    if (st == DS_OK)
        st = ds_graph_forward(g);
    if (st != DS_OK)
        return st;
    hctx c;
    if ((st = ctx_build(&c, g, loss)) != DS_OK)
        return st;
    double *gr = malloc((size_t)c.n * sizeof *gr);
    double *H = malloc((size_t)c.n * (size_t)c.n * sizeof *H);
    if (!gr || !H) {
        st = dsi_fail(DS_ERR_NOMEM, "newton: out of memory for a %lld x %lld Hessian",
                      (long long)c.n, (long long)c.n);
    } else {
        ctx_gradient(&c, gr);
        st = ctx_hessian(&c, H, asym);
    }
    if (st == DS_OK && params) {
        *params = malloc((size_t)c.np * sizeof **params);
        if (!*params)
            st = dsi_fail(DS_ERR_NOMEM, "newton: out of memory");
        else
            memcpy(*params, c.params, (size_t)c.np * sizeof **params);
        *n_params = c.np;
    }
    if (st != DS_OK) {
        free(gr);
        free(H);
    } else {
        *n = c.n;
        *grad = gr;
        *hess = H;
    }
    ctx_free(&c);
    return st;
}

/* Cholesky factor of H + lam I. H's strict upper triangle holds H and hd its diagonal; L
 * is written into the lower triangle with its diagonal, so H survives for the next lambda.
 * Blocked, right-looking: factor a diagonal block (column by column: L[j][j] =
 * sqrt(a_jj - sum_k L[j][k]^2), L[i][j] = (a_ij - sum_k L[i][k] L[j][k]) / L[j][j]), solve
 * the panel below it against L11^T (dtrsm), and subtract L21 L21^T from the trailing lower
 * triangle (dsyrk). Returns false as soon as a pivot is not clearly positive: H + lam I is
 * then not positive definite. */
#define CHOL_BLOCK 64
static bool cholesky(double *H, const double *hd, double lam, int64_t n, double tiny)
{
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < i; j++)
            H[i * n + j] = H[j * n + i];
        H[i * n + i] = hd[i] + lam;
    }
    for (int64_t k0 = 0; k0 < n; k0 += CHOL_BLOCK) {
        int64_t kb = n - k0 < CHOL_BLOCK ? n - k0 : CHOL_BLOCK, rest = n - k0 - kb;
        double *a11 = H + k0 * n + k0;
        for (int64_t j = 0; j < kb; j++) {
            double s = a11[j * n + j];
            for (int64_t k = 0; k < j; k++)
                s -= a11[j * n + k] * a11[j * n + k];
            if (!(s > tiny))
                return false;
            double d = sqrt(s);
            a11[j * n + j] = d;
            for (int64_t i = j + 1; i < kb; i++) {
                double v = a11[i * n + j];
                for (int64_t k = 0; k < j; k++)
                    v -= a11[i * n + k] * a11[j * n + k];
                a11[i * n + j] = v / d;
            }
        }
        if (rest == 0)
            break;
        double *a21 = H + (k0 + kb) * n + k0, *a22 = H + (k0 + kb) * n + k0 + kb;
        dsi_dtrsm_rlt(rest, kb, a11, n, a21, n);
        dsi_dsyrk_ln(rest, kb, a21, n, a22, n);
    }
    return true;
}

/* Solves L L^T d = b (L from cholesky) in place in d (holding b on entry). */
static void chol_solve(const double *L, int64_t n, double *d)
{
    dsi_dtrsv_l(false, n, L, n, d);
    dsi_dtrsv_l(true, n, L, n, d);
}

static void set_theta(hctx *c, const float *theta0, const double *d)
{
    for (int k = 0; k < c->np; k++) {
        float *p = ds_param_data(c->params[k]);
        const float *p0 = theta0 + c->off[k];
        for (int64_t i = 0; i < c->params[k]->numel; i++)
            p[i] = d ? (float)((double)p0[i] + d[c->off[k] + i]) : p0[i];
    }
}

/* Levenberg-Marquardt damping. Starting from lam = *lambda: factor H + lam I; if it is not
 * positive definite, or the step d = -(H + lam I)^-1 g does not lower the loss (or makes it
 * non-finite), restore the parameters, multiply lam by 10 and try again, up to
 * NEWTON_MAX_TRIES times (a lam of 0 first becomes 1e-6 times the mean |diagonal| of H).
 * The first step that lowers the loss is kept and *lambda becomes lam / 10 (at least
 * NEWTON_LAMBDA_MIN). The search also stops when the decrease the quadratic model predicts,
 * -(g.d + d.H.d / 2), is below float resolution of the loss: the loss is then at a minimum
 * as far as float32 can tell. If no step is kept the parameters are unchanged, *lambda too,
 * and DS_OK is returned (the next call sees the same loss). */
ds_status ds_newton_step(ds_graph *g, ds_node *loss, double *lambda, double *loss_out)
{
    ds_status st = check_args(g, loss);
    if (st != DS_OK)
        return st;
    if (!lambda || !(*lambda >= 0) || !isfinite(*lambda))
        return dsi_fail(DS_ERR_ARG, "newton: lambda must be finite and >= 0 (got %g)",
                        lambda ? *lambda : NAN);
    if ((st = ds_graph_forward(g)) != DS_OK)
        return st;
    double loss0 = loss->data[0];
    if (loss_out)
        *loss_out = loss0;
    if (!isfinite(loss0))
        return dsi_fail(DS_ERR_VALUE, "newton: loss '%s' is not finite (%g)",
                        dsi_node_layer(loss), loss0);
    hctx c;
    if ((st = ctx_build(&c, g, loss)) != DS_OK)
        return st;
    int64_t n = c.n;
    double *H = malloc((size_t)n * (size_t)n * sizeof *H);
    double *gr = malloc((size_t)n * sizeof *gr), *hd = malloc((size_t)n * sizeof *hd);
    double *d = malloc((size_t)n * sizeof *d);
    float *theta0 = malloc((size_t)n * sizeof *theta0);
    if (!H || !gr || !hd || !d || !theta0) {
        st = dsi_fail(DS_ERR_NOMEM, "newton: out of memory for a %lld x %lld Hessian",
                      (long long)n, (long long)n);
        goto done;
    }
    ctx_gradient(&c, gr);
    if ((st = ctx_hessian(&c, H, NULL)) != DS_OK)
        goto done;
    double hmax = 0, hmean = 0, gmax = 0;
    for (int64_t i = 0; i < n; i++) {
        hd[i] = H[i * n + i];
        hmax = fmax(hmax, fabs(hd[i]));
        hmean += fabs(hd[i]) / (double)n;
        gmax = fmax(gmax, fabs(gr[i]));
    }
    if (gmax == 0)
        goto done;   /* a stationary point: nothing to do */
    for (int k = 0; k < c.np; k++)
        memcpy(theta0 + c.off[k], ds_param_data(c.params[k]),
               (size_t)c.params[k]->numel * sizeof(float));
    double lam = *lambda;
    bool moved = false;
    for (int t = 0; t < NEWTON_MAX_TRIES; t++) {
        if (t > 0)
            lam = lam > 0 ? lam * 10 : 1e-6 * (hmean > 0 ? hmean : 1.0);
        if (!cholesky(H, hd, lam, n, 1e-13 * (hmax + lam)))
            continue;
        for (int64_t i = 0; i < n; i++)
            d[i] = -gr[i];
        chol_solve(H, n, d);
        /* predicted decrease of the undamped quadratic model */
        double gd = 0, dhd = 0;
        for (int64_t i = 0; i < n; i++) {
            gd += gr[i] * d[i];
            double s = 0;
            for (int64_t k = i + 1; k < n; k++)
                s += H[i * n + k] * d[k];
            dhd += d[i] * (hd[i] * d[i] + 2 * s);
        }
        double pred = -(gd + 0.5 * dhd);
        set_theta(&c, theta0, d);
        moved = true;
        st = ds_graph_forward(g);
        double l1 = st == DS_OK ? loss->data[0] : NAN;
        if (isfinite(l1) && l1 < loss0) {
            *lambda = fmax(lam / 10, NEWTON_LAMBDA_MIN);
            moved = false;
            st = DS_OK;
            goto done;
        }
        set_theta(&c, theta0, NULL);
        if (pred <= 1e-8 * fabs(loss0) + 1e-30 && -gd <= 1e-8 * fabs(loss0) + 1e-30)
            break;   /* nothing float32 can resolve is left to gain */
    }
    st = DS_OK;
    if (moved)
        st = ds_graph_forward(g);   /* the graph's values for the restored parameters */
done:
    free(H);
    free(gr);
    free(hd);
    free(d);
    free(theta0);
    ctx_free(&c);
    return st;
}
