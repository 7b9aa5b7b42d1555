/* search.c - model selection for the classic methods: k-fold cross-validation (stratified for
 * classes, seeded), hyperparameter search (a grid or random draws over NAME=SPEC), and
 * learning curves (scores against the training-set size, with the spread over the folds). */
#include "classic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* An unfitted model with m's method, hyperparameters and input preparation. */
static ds_status clone_settings(const ds_classic *m, ds_classic **out)
{
    ds_status st = ds_classic_create(m->method->name, out);
    if (st)
        return st;
    ds_classic *c = *out;
    memcpy(c->values, m->values, sizeof c->values);
    memcpy(c->num, m->num, sizeof c->num);
    memcpy(c->features, m->features, sizeof c->features);
    c->scale = m->scale;
    c->scale_a = m->scale_a;
    if (m->transform) {
        char spec[96];
        snprintf(spec, sizeof spec, "pca:%s", ds_classic_get(m->transform, "components"));
        if ((st = ds_classic_set_transform(c, spec))) {
            ds_classic_free(c);
            *out = NULL;
        }
    }
    return st;
}

/* Rows idx[0, k) of t as a new tensor. */
static ds_tensor *rows(const ds_tensor *t, const int64_t *idx, int64_t k)
{
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    int64_t per = t->numel / t->shape[0];
    shape[0] = k;
    ds_tensor *r = ds_tensor_create(t->ndim, shape);
    for (int64_t i = 0; r && i < k; i++)
        memcpy(r->data + i * per, t->data + idx[i] * per, (size_t)per * sizeof *r->data);
    return r;
}

/* The score of a fitted model on (x, y): accuracy (classes) or R^2 averaged over the outputs
 * (values), as scikit-learn's score. */
static ds_status score_of(const ds_classic *m, const ds_tensor *x, const ds_tensor *y, double *s)
{
    ds_tensor *p;
    ds_status st = ds_classic_predict(m, x, &p);
    if (st)
        return st;
    int64_t n = p->shape[0], w = p->shape[1];
    if (m->task == DS_CLASSIC_CLASSIFY) {
        ds_tensor *d = ds_classic_decide(m, p);
        double right = 0;
        for (int64_t i = 0; d && i < n; i++)
            right += d->data[i] == y->data[i];
        *s = right / (double)n;
        ds_tensor_free(d);
    } else {
        double r2 = 0;
        for (int64_t j = 0; j < w; j++) {
            double mean = 0, sse = 0, sst = 0;
            for (int64_t i = 0; i < n; i++)
                mean += y->data[i * w + j] / (double)n;
            for (int64_t i = 0; i < n; i++) {
                double e = p->data[i * w + j] - y->data[i * w + j], v = y->data[i * w + j] - mean;
                sse += e * e;
                sst += v * v;
            }
            r2 += (sst > 0 ? 1 - sse / sst : sse > 0 ? 0 : 1) / (double)w;
        }
        *s = r2;
    }
    ds_tensor_free(p);
    return DS_OK;
}

static bool is_class_task(const ds_classic *m, const ds_tensor *y)
{
    int ti = -1;
    for (int i = 0; i < m->method->n_params; i++)
        if (!strcmp(m->method->params[i].name, "task"))
            ti = i;
    if (ti >= 0 && m->num[ti] != 0)
        return m->num[ti] == 1;
    if (!(m->method->tasks & DSI_TASK(DS_CLASSIC_CLASSIFY)))
        return false;
    if (!(m->method->tasks & DSI_TASK(DS_CLASSIC_REGRESS)))
        return true;
    for (int64_t i = 0; i < y->numel; i++)
        if (!(y->data[i] >= 0 && y->data[i] < 65536 && y->data[i] == floorf(y->data[i])))
            return false;
    return y->numel == y->shape[0];
}

/* fold[i] in [0, k) for the n samples: shuffled with seed, dealt round-robin class by class
 * (classes) or in one deck (values). */
static ds_status make_folds(const ds_classic *m, const ds_tensor *y, int k, uint64_t seed,
                            int *fold)
{
    int64_t n = y->shape[0];
    int64_t *order = malloc((size_t)n * sizeof *order);
    if (!order)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld samples", (long long)n);
    ds_rng r;
    ds_rng_seed(&r, seed ^ 0xf01d5ULL);
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ds_rng_below(&r, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    bool cls = is_class_task(m, y);
    int64_t dealt = 0;
    if (cls) {   /* class by class, in the shuffled order, continuing the deal */
        int64_t K = 0;
        for (int64_t i = 0; i < n; i++)
            K = (int64_t)y->data[i] + 1 > K ? (int64_t)y->data[i] + 1 : K;
        for (int64_t c = 0; c < K; c++)
            for (int64_t q = 0; q < n; q++)
                if ((int64_t)y->data[order[q]] == c)
                    fold[order[q]] = (int)(dealt++ % k);
    } else {
        for (int64_t q = 0; q < n; q++)
            fold[order[q]] = (int)(q % k);
    }
    free(order);
    return DS_OK;
}

/* Fits a copy of m on the samples tr[0, ntr), scores it on them (*train, may be NULL) and on
 * va[0, nva) (*val). */
static ds_status fit_score(const ds_classic *m, const ds_tensor *x, const ds_tensor *y,
                           const int64_t *tr, int64_t ntr, const int64_t *va, int64_t nva,
                           uint64_t seed, double *train, double *val)
{
    ds_classic *c;
    ds_status st = clone_settings(m, &c);
    if (st)
        return st;
    ds_tensor *xt = rows(x, tr, ntr), *yt = rows(y, tr, ntr);
    ds_tensor *xv = rows(x, va, nva), *yv = rows(y, va, nva);
    if (!xt || !yt || !xv || !yv)
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for the folds' data");
    if (!st)
        st = ds_classic_fit(c, xt, yt, seed);
    if (!st && train)
        st = score_of(c, xt, yt, train);
    if (!st)
        st = score_of(c, xv, yv, val);
    ds_tensor_free(xt), ds_tensor_free(yt), ds_tensor_free(xv), ds_tensor_free(yv);
    ds_classic_free(c);
    return st;
}

static ds_status check_cv(const ds_classic *m, const ds_tensor *x, const ds_tensor *y, int k)
{
    const char *name = m->method->name;
    if (!(m->method->tasks & (DSI_TASK(DS_CLASSIC_CLASSIFY) | DSI_TASK(DS_CLASSIC_REGRESS))))
        return dsi_fail(DS_ERR_ARG, "classic %s: cross-validation scores classifiers and "
                        "regressors (accuracy, R^2), not %s", name,
                        m->method->tasks & DSI_TASK(DS_CLASSIC_CLUSTER) ? "clusters"
                        : "transforms");
    if (!y || x->ndim < 1 || y->ndim < 1 || x->shape[0] != y->shape[0])
        return dsi_fail(DS_ERR_SHAPE, "classic %s: cross-validation needs one label per sample",
                        name);
    if (k < 2 || k > x->shape[0])
        return dsi_fail(DS_ERR_ARG, "classic %s: %d folds for %lld samples: give 2 to the sample "
                        "count", name, k, (long long)x->shape[0]);
    ds_status st = ds_tensor_check_finite(y, "labels");
    return st ? st : ds_tensor_check_finite(x, "data");
}

/* The training and validation indices of fold f. */
static void split_fold(const int *fold, int64_t n, int f, int64_t *tr, int64_t *ntr, int64_t *va,
                       int64_t *nva)
{
    *ntr = *nva = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fold[i] == f)
            va[(*nva)++] = i;
        else
            tr[(*ntr)++] = i;
    }
}

ds_status ds_classic_cross_validate(const ds_classic *m, const ds_tensor *x, const ds_tensor *y,
                                    int folds, uint64_t seed, double *mean, double *spread)
{
    ds_status st = check_cv(m, x, y, folds);
    if (st)
        return st;
    int64_t n = x->shape[0];
    int *fold = malloc((size_t)n * sizeof *fold);
    int64_t *tr = malloc((size_t)n * sizeof *tr), *va = malloc((size_t)n * sizeof *va);
    double s = 0, s2 = 0;
    st = fold && tr && va ? make_folds(m, y, folds, seed, fold)
                          : dsi_fail(DS_ERR_NOMEM, "out of memory for %lld samples", (long long)n);
    for (int f = 0; !st && f < folds; f++) {
        int64_t ntr, nva;
        double v;
        split_fold(fold, n, f, tr, &ntr, va, &nva);
        if (!(st = fit_score(m, x, y, tr, ntr, va, nva, seed + (uint64_t)f, NULL, &v))) {
            s += v;
            s2 += v * v;
        }
    }
    free(fold), free(tr), free(va);
    if (st)
        return st;
    *mean = s / folds;
    *spread = sqrt(fmax(0, s2 / folds - *mean * *mean));
    return DS_OK;
}

/* ---- the search space ---- */

#define MAX_VALUES 64

typedef struct {
    char name[DSI_CLASSIC_TEXT];
    int count;                          /* a list's values; 0: a range */
    char list[MAX_VALUES][DSI_CLASSIC_TEXT];
    double lo, hi;
    bool log, integer;
} space;

static bool int_text(const char *s)
{
    char *end;
    (void)strtoll(s, &end, 10);
    return end != s && !*end;
}

/* "NAME=a,b,c", "NAME=lo:hi" or "NAME=lo:hi:log" into sp: the name checked by
 * check(ctx, name, NULL), each value of a list and both ends of a range by check(ctx, name,
 * value). */
static ds_status parse_space(const char *spec, ds_search_check_fn check, void *ctx, space *sp)
{
    memset(sp, 0, sizeof *sp);
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof sp->name || !eq[1])
        return dsi_fail(DS_ERR_ARG, "parameter '%s' is not NAME=V1,V2,... or NAME=LO:HI[:log]",
                        spec);
    memcpy(sp->name, spec, (size_t)(eq - spec));
    const char *v = eq + 1;
    ds_status st;
    if (check && (st = check(ctx, sp->name, NULL)))   /* its message lists the options */
        return st;
    if (strchr(v, ':') && !strchr(v, ',')) {
        char a[DSI_CLASSIC_TEXT], b[DSI_CLASSIC_TEXT], how[16] = "";
        int got = sscanf(v, "%63[^:]:%63[^:]:%15s", a, b, how);
        char *e1, *e2 = NULL;
        sp->lo = strtod(a, &e1);
        sp->hi = got >= 2 ? strtod(b, &e2) : 0;
        sp->log = !strcmp(how, "log");
        if (got < 2 || *e1 || *e2 || (got == 3 && !sp->log))
            return dsi_fail(DS_ERR_ARG, "parameter '%s': a range is LO:HI or LO:HI:log with LO < "
                            "HI (and LO > 0 for log)", spec);
        if (!(sp->lo < sp->hi))
            return dsi_fail(DS_ERR_ARG, "parameter '%s': a range is LO:HI or LO:HI:log with LO < "
                            "HI (and LO > 0 for log): LO %s is not below HI %s", spec, a, b);
        if (sp->log && !(sp->lo > 0))
            return dsi_fail(DS_ERR_ARG, "parameter '%s': a range is LO:HI or LO:HI:log with LO < "
                            "HI (and LO > 0 for log): a log range needs LO > 0, not %s", spec, a);
        sp->integer = int_text(a) && int_text(b);
        if (check && ((st = check(ctx, sp->name, a)) || (st = check(ctx, sp->name, b))))
            return dsi_fail(st, "parameter '%s': %s", spec, ds_last_error());
        return DS_OK;
    }
    for (const char *p = v; *p; sp->count++) {
        size_t len = strcspn(p, ",");
        if (sp->count == MAX_VALUES || len == 0 || len >= DSI_CLASSIC_TEXT)
            return dsi_fail(DS_ERR_ARG, "parameter '%s': %d values of 1 to %d characters at most",
                            spec, MAX_VALUES, DSI_CLASSIC_TEXT - 1);
        memcpy(sp->list[sp->count], p, len);
        sp->list[sp->count][len] = 0;
        if (check && (st = check(ctx, sp->name, sp->list[sp->count])))
            return dsi_fail(st, "parameter '%s': %s", spec, ds_last_error());
        p += len + (p[len] == ',');
    }
    return DS_OK;
}

/* Value i of `points` evenly spread over the range (grid), or drawn with r (random). */
static void range_value(const space *sp, int i, int points, ds_rng *r, char *out)
{
    double u = r ? ds_rng_uniform(r) : points > 1 ? (double)i / (points - 1) : 0.5;
    double v = sp->log ? exp(log(sp->lo) + u * (log(sp->hi) - log(sp->lo)))
                       : sp->lo + u * (sp->hi - sp->lo);
    if (sp->integer)
        snprintf(out, DSI_CLASSIC_TEXT, "%lld", (long long)llround(v));
    else
        snprintf(out, DSI_CLASSIC_TEXT, "%.4g", v);
}

static int cmp_result(const void *a, const void *b)
{
    const ds_search_result *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->trial - y->trial;
}

ds_status ds_search_points(int n_params, const char *const *params, const ds_search_opts *o,
                           ds_search_check_fn check, void *ctx, ds_search_result **out,
                           int *count)
{
    *out = NULL;
    *count = 0;
    if (n_params < 1 || n_params > 8)
        return dsi_fail(DS_ERR_ARG, "search: 1 to 8 parameters, not %d", n_params);
    space sp[8];
    ds_status st = DS_OK;
    for (int p = 0; p < n_params && !st; p++) {
        st = parse_space(params[p], check, ctx, &sp[p]);
        for (int q = 0; !st && q < p; q++)
            if (!strcmp(sp[q].name, sp[p].name))
                st = dsi_fail(DS_ERR_ARG, "search: parameter '%s' given twice", sp[p].name);
    }
    if (st)
        return st;
    int points = o->grid_points > 0 ? o->grid_points : 5;
    int64_t trials = o->random ? o->trials : 1;
    for (int p = 0; !o->random && p < n_params; p++) {
        trials *= sp[p].count ? sp[p].count : points;
        if (trials > 100000)
            return dsi_fail(DS_ERR_ARG, "search: the grid holds more than 100000 points: fewer "
                            "values, or random search with --trials");
    }
    if (trials < 1 || trials > 100000)
        return dsi_fail(DS_ERR_ARG, "search: %lld trials: give 1 to 100000", (long long)trials);
    ds_search_result *res = calloc((size_t)trials, sizeof *res);
    if (!res)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for %lld trials", (long long)trials);
    ds_rng r;
    ds_rng_seed(&r, o->seed ^ 0x5ea2c4ULL);
    for (int64_t t = 0; t < trials; t++) {
        ds_search_result *e = &res[t];
        e->trial = (int)t;
        int64_t rest = t;
        for (int p = 0; p < n_params; p++) {
            char v[DSI_CLASSIC_TEXT];
            int span = sp[p].count ? sp[p].count : points;
            int i = (int)(o->random ? 0 : rest % span);
            rest /= span;
            if (sp[p].count)
                snprintf(v, sizeof v, "%s", sp[p].list[o->random ? (int)ds_rng_below(&r,
                                                        (uint64_t)sp[p].count) : i]);
            else
                range_value(&sp[p], i, points, o->random ? &r : NULL, v);
            snprintf(e->params + strlen(e->params), sizeof e->params - strlen(e->params), "%s%s=%s",
                     p ? " " : "", sp[p].name, v);
        }
    }
    *out = res;
    *count = (int)trials;
    return DS_OK;
}

/* The checks of a classic search's space: the name is an option of the method, each value
 * one it takes (set on a probe model). */
static ds_status classic_check(void *ctx, const char *name, const char *value)
{
    ds_classic *probe = ctx;
    if (!value)
        return ds_classic_get(probe, name) ? DS_OK : ds_classic_set(probe, name, "0");
    return ds_classic_set(probe, name, value);
}

/* Sets each "NAME=V" of a trial's "A=1 B=2" on c. */
static ds_status set_params(ds_classic *c, const char *params)
{
    char text[sizeof ((ds_search_result *)0)->params];
    snprintf(text, sizeof text, "%s", params);
    ds_status st = DS_OK;
    char *save = NULL;
    for (char *s = strtok_r(text, " ", &save); s && !st; s = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(s, '=');
        *eq = 0;
        st = ds_classic_set(c, s, eq + 1);
    }
    return st;
}

ds_status ds_classic_search(const ds_classic *m, int n_params, const char *const *params,
                            const ds_search_opts *o, const ds_tensor *x, const ds_tensor *y,
                            ds_search_result **out, int *count)
{
    *out = NULL;
    *count = 0;
    ds_status st = check_cv(m, x, y, o->folds);
    if (st)
        return st;
    ds_classic *probe;
    if ((st = clone_settings(m, &probe)))
        return st;
    ds_search_result *res = NULL;
    int trials = 0;
    st = ds_search_points(n_params, params, o, classic_check, probe, &res, &trials);
    ds_classic_free(probe);
    if (st)
        return st;
    for (int t = 0; t < trials && !st; t++) {
        ds_classic *c;
        if ((st = clone_settings(m, &c)))
            break;
        ds_search_result *e = &res[t];
        if (!(st = set_params(c, e->params)))
            st = ds_classic_cross_validate(c, x, y, o->folds, o->seed, &e->score, &e->spread);
        if (st)
            st = dsi_fail(st, "search: trial %d (%s): %s", t + 1, e->params, ds_last_error());
        ds_classic_free(c);
        if (!st && o->progress)
            o->progress(e, t, trials, o->user);
    }
    if (st) {
        free(res);
        return st;
    }
    qsort(res, (size_t)trials, sizeof *res, cmp_result);
    *out = res;
    *count = trials;
    return DS_OK;
}

ds_status ds_classic_learning_curve(const ds_classic *m, const ds_tensor *x, const ds_tensor *y,
                                    int n_sizes, const double *fractions, int folds,
                                    uint64_t seed, ds_curve_point *out)
{
    ds_status st = check_cv(m, x, y, folds);
    if (st)
        return st;
    for (int s = 0; s < n_sizes; s++)
        if (!(fractions[s] > 0 && fractions[s] <= 1))
            return dsi_fail(DS_ERR_ARG, "learning curve: fraction %g is not in (0, 1]",
                            fractions[s]);
    int64_t n = x->shape[0];
    int *fold = malloc((size_t)n * sizeof *fold);
    int64_t *tr = malloc((size_t)n * sizeof *tr), *va = malloc((size_t)n * sizeof *va);
    double *tv = calloc((size_t)(2 * n_sizes * folds) + 1, sizeof *tv);
    st = fold && tr && va && tv ? make_folds(m, y, folds, seed, fold)
                                : dsi_fail(DS_ERR_NOMEM, "out of memory for %lld samples",
                                           (long long)n);
    ds_rng r;
    ds_rng_seed(&r, seed ^ 0xc0a7eULL);
    for (int f = 0; !st && f < folds; f++) {
        int64_t ntr, nva;
        split_fold(fold, n, f, tr, &ntr, va, &nva);
        for (int64_t i = ntr - 1; i > 0; i--) {   /* the subsets: prefixes of a shuffle */
            int64_t j = (int64_t)ds_rng_below(&r, (uint64_t)i + 1), t = tr[i];
            tr[i] = tr[j];
            tr[j] = t;
        }
        for (int s = 0; !st && s < n_sizes; s++) {
            int64_t k = (int64_t)ceil(fractions[s] * (double)ntr);
            k = k < 2 ? 2 : k > ntr ? ntr : k;
            out[s].size = k;
            double *at = tv + 2 * (s * folds + f);
            st = fit_score(m, x, y, tr, k, va, nva, seed + (uint64_t)f, &at[0], &at[1]);
            if (st)
                st = dsi_fail(st, "learning curve: fold %d, %lld training samples: %s", f + 1,
                              (long long)k, ds_last_error());
        }
    }
    for (int s = 0; !st && s < n_sizes; s++) {
        double a[2] = {0}, a2[2] = {0};
        for (int f = 0; f < folds; f++)
            for (int q = 0; q < 2; q++) {
                double v = tv[2 * (s * folds + f) + q];
                a[q] += v / folds;
                a2[q] += v * v / folds;
            }
        out[s].fraction = fractions[s];
        out[s].train = a[0];
        out[s].val = a[1];
        out[s].train_spread = sqrt(fmax(0, a2[0] - a[0] * a[0]));
        out[s].val_spread = sqrt(fmax(0, a2[1] - a[1] * a[1]));
    }
    free(fold), free(tr), free(va), free(tv);
    return st;
}
