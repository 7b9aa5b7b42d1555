/* optim.c - first-order optimizers (SGD, Adagrad, RMSprop, Adam, AdamW) as flat loops over
 * the model's trainable parameters, with PyTorch 1.13's update rules, gradient clipping,
 * learning-rate schedules and checkpointable state. */
#include "../internal.h"

#include <math.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* Per-parameter state buffers of each optimizer, named as in PyTorch's state_dict. */
enum { MAX_BUFS = 3 };

struct ds_optim {
    ds_model *m;
    ds_optim_opts o;         /* with defaults filled in */
    int64_t steps, epochs;
    float *buf[MAX_BUFS];    /* each covers the model's gradient block (m->grad_n floats) */
    size_t n;                /* floats allocated in each buffer */
};

static const char *const kind_names[DS_OPT_COUNT] = {
    [DS_OPT_SGD] = "sgd", [DS_OPT_ADAGRAD] = "adagrad", [DS_OPT_RMSPROP] = "rmsprop",
    [DS_OPT_ADAM] = "adam", [DS_OPT_ADAMW] = "adamw",
};

const char *ds_optim_name(ds_optim_kind k)
{
    return (k >= 0 && k < DS_OPT_COUNT) ? kind_names[k] : "unknown";
}

/* Buffer names of an optimizer (NULL-terminated), given its options. */
static int buf_names(const ds_optim_opts *o, const char *names[MAX_BUFS])
{
    int n = 0;
    switch (o->kind) {
    case DS_OPT_SGD:
        if (o->momentum != 0)
            names[n++] = "momentum_buffer";
        break;
    case DS_OPT_ADAGRAD:
        names[n++] = "sum";
        break;
    case DS_OPT_RMSPROP:
        names[n++] = "square_avg";
        break;
    case DS_OPT_ADAM:
    case DS_OPT_ADAMW:
        names[n++] = "exp_avg";
        names[n++] = "exp_avg_sq";
        if (o->amsgrad)
            names[n++] = "max_exp_avg_sq";
        break;
    default:
        break;
    }
    return n;
}

/* ---- options ---- */
static ds_status check_schedule(ds_schedule *s)
{
    switch (s->kind) {
    case DS_SCHED_CONSTANT:
        return DS_OK;
    case DS_SCHED_STEP:
        if (s->step_size < 1)
            return dsi_fail(DS_ERR_ARG, "optimizer: step schedule needs step_size >= 1 (got %lld)",
                            (long long)s->step_size);
        if (s->gamma == 0)
            s->gamma = 0.1f;   /* StepLR's default */
        /* fall through */
    case DS_SCHED_EXP:
        if (!(s->gamma > 0))
            return dsi_fail(DS_ERR_ARG, "optimizer: %s schedule needs gamma > 0 (got %g)",
                            s->kind == DS_SCHED_STEP ? "step" : "exponential", (double)s->gamma);
        return DS_OK;
    case DS_SCHED_INV_TIME:
        if (!(s->decay >= 0))
            return dsi_fail(DS_ERR_ARG, "optimizer: inverse-time schedule needs decay >= 0 "
                            "(got %g)", (double)s->decay);
        return DS_OK;
    case DS_SCHED_COSINE:
        if (s->t_max < 1)
            return dsi_fail(DS_ERR_ARG, "optimizer: cosine schedule needs t_max >= 1 (got %lld)",
                            (long long)s->t_max);
        if (!(s->min_lr >= 0))
            return dsi_fail(DS_ERR_ARG, "optimizer: cosine schedule needs min_lr >= 0 (got %g)",
                            (double)s->min_lr);
        return DS_OK;
    }
    return dsi_fail(DS_ERR_ARG, "optimizer: unknown schedule kind %d", (int)s->kind);
}

static ds_status resolve(ds_optim_opts *o)
{
    if (o->kind < 0 || o->kind >= DS_OPT_COUNT)
        return dsi_fail(DS_ERR_ARG, "optimizer: unknown kind %d (0 to %d)", (int)o->kind,
                        DS_OPT_COUNT - 1);
    const char *nm = kind_names[o->kind];
#define NONNEG(f)                                                                         \
    if (!(o->f >= 0))                                                                     \
        return dsi_fail(DS_ERR_ARG, "optimizer %s: " #f " must be >= 0 (got %g)", nm,     \
                        (double)o->f)
    NONNEG(lr);
    NONNEG(momentum);
    NONNEG(weight_decay);
    NONNEG(eps);
    NONNEG(clip_norm);
#undef NONNEG
#define UNIT(f)                                                                           \
    if (!(o->f >= 0 && o->f < 1))                                                         \
        return dsi_fail(DS_ERR_ARG, "optimizer %s: " #f " must be in [0, 1) (got %g)", nm, \
                        (double)o->f)
    UNIT(beta1);
    UNIT(beta2);
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return dsi_fail(DS_ERR_ARG, "optimizer %s: alpha must be in [0, 1] (got %g)", nm,
                        (double)o->alpha);
#undef UNIT
    if (o->nesterov && (o->kind != DS_OPT_SGD || o->momentum <= 0))
        return dsi_fail(DS_ERR_ARG, "optimizer %s: nesterov needs SGD with momentum > 0", nm);
    if (o->lr == 0)
        o->lr = o->kind == DS_OPT_SGD ? 1e-2f : 1e-3f;
    if (o->beta1 == 0)
        o->beta1 = 0.9f;
    if (o->beta2 == 0)
        o->beta2 = 0.999f;
    if (o->alpha == 0)
        o->alpha = 0.99f;
    if (o->eps == 0)
        o->eps = o->kind == DS_OPT_ADAGRAD ? 1e-10f : 1e-8f;
    if (o->kind == DS_OPT_ADAMW && o->weight_decay == 0)
        o->weight_decay = 1e-2f;
    if (o->kind != DS_OPT_SGD)
        o->momentum = 0;
    if (o->kind != DS_OPT_ADAM && o->kind != DS_OPT_ADAMW)
        o->amsgrad = 0;
    return check_schedule(&o->schedule);
}

/* Grows the state buffers to the model's gradient block (parameters may be added after
 * the optimizer is created); new entries start at 0, as PyTorch's lazily created state. */
static ds_status fit_state(ds_optim *o)
{
    size_t need = o->m->grad_n;
    if (need <= o->n)
        return DS_OK;
    const char *names[MAX_BUFS];
    int nb = buf_names(&o->o, names);
    for (int b = 0; b < nb; b++) {
        float *nbuf = realloc(o->buf[b], need * sizeof(float));
        if (!nbuf)
            return dsi_fail(DS_ERR_NOMEM, "optimizer %s: out of memory for %zu state values",
                            kind_names[o->o.kind], need);
        memset(nbuf + o->n, 0, (need - o->n) * sizeof(float));
        o->buf[b] = nbuf;
    }
    o->n = need;
    return DS_OK;
}

ds_optim *ds_optim_create(ds_model *m, const ds_optim_opts *opts)
{
    if (!m || !opts) {
        dsi_fail(DS_ERR_ARG, "ds_optim_create: %s is NULL", m ? "options" : "model");
        return NULL;
    }
    ds_optim_opts o = *opts;
    if (resolve(&o) != DS_OK)
        return NULL;
    ds_optim *opt = calloc(1, sizeof *opt);
    if (!opt) {
        dsi_fail(DS_ERR_NOMEM, "out of memory for an optimizer");
        return NULL;
    }
    opt->m = m;
    opt->o = o;
    if (fit_state(opt) != DS_OK) {
        ds_optim_free(opt);
        return NULL;
    }
    return opt;
}

int64_t ds_optim_state_numel(const ds_optim_opts *opts, const ds_model *m)
{
    if (!m || !opts) {
        dsi_fail(DS_ERR_ARG, "ds_optim_state_numel: %s is NULL", m ? "options" : "model");
        return -1;
    }
    ds_optim_opts o = *opts;
    o.schedule.kind = DS_SCHED_CONSTANT;   /* the state does not depend on it (and a cosine
                                            * without t_max is whole only within a run) */
    if (resolve(&o) != DS_OK)
        return -1;
    const char *names[MAX_BUFS];
    return (int64_t)buf_names(&o, names) * (int64_t)m->grad_n;
}

void ds_optim_free(ds_optim *o)
{
    if (!o)
        return;
    for (int b = 0; b < MAX_BUFS; b++)
        free(o->buf[b]);
    free(o);
}

/* ---- schedule ---- */
static double schedule_lr(const ds_optim_opts *o, int64_t t)
{
    const ds_schedule *s = &o->schedule;
    double lr = o->lr;
    switch (s->kind) {
    case DS_SCHED_STEP:
        return lr * pow(s->gamma, (double)(t / s->step_size));
    case DS_SCHED_EXP:
        return lr * pow(s->gamma, (double)t);
    case DS_SCHED_INV_TIME:
        return lr / (1.0 + s->decay * (double)t);
    case DS_SCHED_COSINE:
        return s->min_lr + (lr - s->min_lr) * (1.0 + cos(M_PI * (double)t / (double)s->t_max)) / 2;
    default:
        return lr;
    }
}

static double next_lr(const ds_optim *o)
{
    return schedule_lr(&o->o, o->o.schedule.per_epoch ? o->epochs : o->steps);
}

float ds_optim_lr(const ds_optim *o) { return (float)next_lr(o); }
int64_t ds_optim_steps(const ds_optim *o) { return o->steps; }
void ds_optim_epoch_end(ds_optim *o) { o->epochs++; }

/* ---- the updates: g is the gradient, p the parameter, s0..s2 the state buffers. In float,
 * in the order of PyTorch 1.13's single-tensor kernels; each element on its own, so the
 * loops vectorize and split over threads without changing a bit. ---- */
typedef struct {
    float lr, mom, wd, b1, b2, eps, alpha, step_size, bc2_sqrt;
    int nesterov, amsgrad;
} coefs;

/* The loops share out among the threads of the region ds_optim_step opens. */
#define PAR_FOR _Pragma("omp for simd schedule(static)")

DS_HOT
static void update(ds_optim_kind kind, const coefs *c, int64_t n, float *restrict p,
                   const float *restrict g, float *restrict s0, float *restrict s1,
                   float *restrict s2)
{
    const float lr = c->lr, mom = c->mom, wd = c->wd, b1 = c->b1, b2 = c->b2, eps = c->eps;
    const float a = c->alpha, ss = c->step_size, bc2 = c->bc2_sqrt;
    switch (kind) {
    case DS_OPT_SGD:
        /* d = g + wd p;  buf = mom buf + d;  d = nesterov ? d + mom buf : buf;  p -= lr d */
        if (mom == 0) {
            PAR_FOR
            for (int64_t i = 0; i < n; i++)
                p[i] = p[i] + -lr * (g[i] + wd * p[i]);
        } else {
            const int nest = c->nesterov;
            PAR_FOR
            for (int64_t i = 0; i < n; i++) {
                float d = g[i] + wd * p[i];
                float b = s0[i] * mom + d;
                s0[i] = b;
                d = nest ? d + mom * b : b;
                p[i] = p[i] + -lr * d;
            }
        }
        break;
    case DS_OPT_ADAGRAD:
        /* d = g + wd p;  sum += d^2;  p -= lr d / (sqrt(sum) + eps) */
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float s = s0[i] + d * d;
            s0[i] = s;
            p[i] = p[i] + -lr * (d / (sqrtf(s) + eps));
        }
        break;
    case DS_OPT_RMSPROP:
        /* d = g + wd p;  v = alpha v + (1 - alpha) d^2;  p -= lr d / (sqrt(v) + eps) */
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float v = s0[i] * a + (1 - a) * (d * d);
            s0[i] = v;
            p[i] = p[i] + -lr * (d / (sqrtf(v) + eps));
        }
        break;
    case DS_OPT_ADAM:
    case DS_OPT_ADAMW: {
        /* AdamW: p *= 1 - lr wd first; Adam: d = g + wd p.  m = b1 m + (1 - b1) d;
         * v = b2 v + (1 - b2) d^2;  vmax = max(vmax, v) (amsgrad);
         * p -= lr / bc1 * m / (sqrt(v or vmax) / sqrt(bc2) + eps) */
        const float pd = kind == DS_OPT_ADAMW ? 1 - lr * wd : 1, gd = kind == DS_OPT_ADAMW ? 0 : wd;
        const float c1 = 1 - b1, c2 = 1 - b2;
        if (c->amsgrad) {
            PAR_FOR
            for (int64_t i = 0; i < n; i++) {
                float pi = p[i] * pd, d = g[i] + gd * p[i];
                float mi = s0[i] * b1 + c1 * d, vi = s1[i] * b2 + c2 * (d * d);
                s0[i] = mi;
                s1[i] = vi;
                float vm = s2[i] < vi ? vi : s2[i];
                s2[i] = vm;
                p[i] = pi + -ss * (mi / (sqrtf(vm) / bc2 + eps));
            }
        } else {
            PAR_FOR
            for (int64_t i = 0; i < n; i++) {
                float pi = p[i] * pd, d = g[i] + gd * p[i];
                float mi = s0[i] * b1 + c1 * d, vi = s1[i] * b2 + c2 * (d * d);
                s0[i] = mi;
                s1[i] = vi;
                p[i] = pi + -ss * (mi / (sqrtf(vi) / bc2 + eps));
            }
        }
        break;
    }
    default:
        break;
    }
}
#undef PAR_FOR

/* Subnormal numbers flush to zero during an update (x86: MXCSR's flush-to-zero and
 * denormals-are-zero, set on each thread and restored after). Each subnormal operand or
 * result costs a microcode assist of about a hundred cycles, and Adam's first moments
 * decay through that range (times 0.9 a step) wherever gradients stay zero, as for the
 * border pixels of Fashion-MNIST: there its step ran 2.3x slower. What they would add to
 * a parameter is below float precision unless the parameter is itself subnormal. */
static unsigned flush_subnormals(void)
{
#if defined(__SSE__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);   /* FTZ (bit 15), DAZ (bit 6) */
    return csr;
#else
    return 0;
#endif
}

static void restore_subnormals(unsigned csr)
{
#if defined(__SSE__)
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

ds_status ds_optim_step(ds_optim *o)
{
    ds_model *m = o->m;
    ds_status st = fit_state(o);
    if (st != DS_OK)
        return st;
    if (o->o.clip_norm > 0) {
        /* torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)) */
        double norm = ds_model_grad_norm(m);
        double coef = o->o.clip_norm / (norm + 1e-6);
        if (coef < 1) {
            float *g = ds_model_grad(m);
            for (size_t i = 0; i < m->grad_n; i++)
                g[i] = (float)(g[i] * coef);
        }
    }
    const ds_optim_opts *p = &o->o;
    int64_t t = o->steps + 1;
    double lr = next_lr(o), bc1 = 1 - pow(p->beta1, (double)t);
    coefs c = {
        .lr = (float)lr, .mom = p->momentum, .wd = p->weight_decay, .b1 = p->beta1,
        .b2 = p->beta2, .eps = p->eps, .alpha = p->alpha, .step_size = (float)(lr / bc1),
        .bc2_sqrt = (float)sqrt(1 - pow(p->beta2, (double)t)),
        .nesterov = p->nesterov, .amsgrad = p->amsgrad,
    };
    for (int i = 0; i < m->n; i++) {
        ds_param *par = m->params[i];
        if (!par->trainable)
            continue;
        size_t off = par->goffset;
        int64_t n = par->numel;
#pragma omp parallel if (n > 4 * DS_PAR_MIN)
        {
            unsigned csr = flush_subnormals();
            update(p->kind, &c, n, ds_param_data(par), ds_param_grad(par),
                   o->buf[0] ? o->buf[0] + off : NULL, o->buf[1] ? o->buf[1] + off : NULL,
                   o->buf[2] ? o->buf[2] + off : NULL);
            restore_subnormals(csr);
        }
    }
    o->steps = t;
    return DS_OK;
}

/* ---- state as named tensors: "optim.<param>.<buffer>", "optim.step", "optim.epoch" ---- */
ds_status ds_optim_state_save(const ds_optim *o, ds_tensor_set *s)
{
    ds_status st = fit_state((ds_optim *)o);
    if (st != DS_OK)
        return st;
    const char *names[MAX_BUFS];
    int nb = buf_names(&o->o, names);
    char key[DS_NAME_MAX + 32];
    for (int i = 0; i < o->m->n; i++) {
        const ds_param *p = o->m->params[i];
        if (!p->trainable)
            continue;
        for (int b = 0; b < nb; b++) {
            snprintf(key, sizeof key, "optim.%s.%s", p->name, names[b]);
            if ((st = ds_tensor_set_add(s, key, p->ndim, p->shape, o->buf[b] + p->goffset)))
                return st;
        }
    }
    float step = (float)o->steps, epoch = (float)o->epochs;
    if ((st = ds_tensor_set_add(s, "optim.step", 0, NULL, &step)))
        return st;
    return ds_tensor_set_add(s, "optim.epoch", 0, NULL, &epoch);
}

/* A scalar count stored as a float: a non-negative integer. */
static bool read_count(const ds_tensor_set *s, const char *key, int64_t *out)
{
    ds_tensor *t = ds_tensor_set_get(s, key);
    if (!t || t->numel != 1)
        return false;
    float v = t->data[0];
    if (!(v >= 0 && v == floorf(v) && v < 9e15f))
        return false;
    *out = (int64_t)v;
    return true;
}

ds_status ds_optim_state_load(ds_optim *o, const ds_tensor_set *s)
{
    ds_status st = fit_state(o);
    if (st != DS_OK)
        return st;
    const char *names[MAX_BUFS];
    int nb = buf_names(&o->o, names);
    const char *kn = kind_names[o->o.kind];
    char msg[2048] = "", key[DS_NAME_MAX + 32];
    int bad = 0;
    int64_t steps = 0, epochs = 0;
    if (!read_count(s, "optim.step", &steps)) {
        dsi_snprintf_cat(msg, sizeof msg, "%s'optim.step' is missing or not a count",
                         bad++ ? "; " : "");
    }
    if (ds_tensor_set_get(s, "optim.epoch") && !read_count(s, "optim.epoch", &epochs))
        dsi_snprintf_cat(msg, sizeof msg, "%s'optim.epoch' is not a count", bad++ ? "; " : "");
    /* every expected buffer present, with the parameter's shape */
    for (int i = 0; i < o->m->n; i++) {
        const ds_param *p = o->m->params[i];
        if (!p->trainable)
            continue;
        for (int b = 0; b < nb; b++) {
            snprintf(key, sizeof key, "optim.%s.%s", p->name, names[b]);
            ds_tensor *t = ds_tensor_set_get(s, key);
            if (!t) {
                dsi_snprintf_cat(msg, sizeof msg, "%s'%s' %s is missing", bad++ ? "; " : "",
                                 key, dsi_shape_str(p->ndim, p->shape));
                continue;
            }
            bool same = t->ndim == p->ndim;
            for (int d = 0; same && d < p->ndim; d++)
                same = t->shape[d] == p->shape[d];
            if (!same)
                dsi_snprintf_cat(msg, sizeof msg, "%s'%s' has shape %s, the parameter %s",
                                 bad++ ? "; " : "", key, dsi_shape_str(t->ndim, t->shape),
                                 dsi_shape_str(p->ndim, p->shape));
        }
    }
    /* nothing unexpected under "optim." (other names, e.g. weights, are not ours) */
    for (int i = 0; i < ds_tensor_set_count(s); i++) {
        const char *name = ds_tensor_set_name(s, i);
        if (strncmp(name, "optim.", 6) || !strcmp(name, "optim.step") ||
            !strcmp(name, "optim.epoch"))
            continue;
        bool known = false;
        for (int k = 0; k < o->m->n && !known; k++) {
            const ds_param *p = o->m->params[k];
            for (int b = 0; p->trainable && b < nb && !known; b++) {
                snprintf(key, sizeof key, "optim.%s.%s", p->name, names[b]);
                known = !strcmp(key, name);
            }
        }
        if (!known)
            dsi_snprintf_cat(msg, sizeof msg, "%s'%s' is not state of this %s optimizer",
                             bad++ ? "; " : "", name, kn);
    }
    if (bad)
        return dsi_fail(DS_ERR_FORMAT, "optimizer %s state: %d mismatch%s with the model: %s",
                        kn, bad, bad > 1 ? "es" : "", msg);
    for (int i = 0; i < o->m->n; i++) {
        const ds_param *p = o->m->params[i];
        if (!p->trainable)
            continue;
        for (int b = 0; b < nb; b++) {
            snprintf(key, sizeof key, "optim.%s.%s", p->name, names[b]);
            memcpy(o->buf[b] + p->goffset, ds_tensor_set_get(s, key)->data,
                   (size_t)p->numel * sizeof(float));
        }
    }
    o->steps = steps;
    o->epochs = epochs;
    return DS_OK;
}
