/* gan.c - GAN training: a generator and a discriminator net, alternating updates with the
 * non-saturating loss, each with its own optimizer; seeded z, per-epoch files, resume. */
#include "gan.h"

#include <math.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the two nets together ---- */
static int64_t per_sample(const ds_node *n)
{
    return n->numel / n->shape[0];
}

/* "1x32x32": a node's shape without the batch. */
static const char *sample_shape(const ds_node *n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int d = 1; d < n->ndim; d++)
        dsi_snprintf_cat(buf, cap, "%s%lld", d > 1 ? "x" : "", (long long)n->shape[d]);
    return buf;
}

static ds_status one_io(const ds_net *n, const char *role)
{
    if (n->n_inputs != 1)
        return dsi_fail(DS_ERR_ARG, "%s %s: a GAN's %s has one input; this one has %d", role,
                        n->path, role, n->n_inputs);
    if (n->n_outputs != 1)
        return dsi_fail(DS_ERR_ARG, "%s %s: a GAN's %s has one output; this one has %d", role,
                        n->path, role, n->n_outputs);
    if (n->n_targets > 0)
        return dsi_fail(DS_ERR_ARG, "%s %s: its loss '%s' reads labels; GAN training brings "
                        "its own loss: remove the model's loss lines", role, n->path,
                        n->targets[0].name);
    return DS_OK;
}

ds_status ds_gan_check(const ds_net *g, const ds_net *d, int64_t latent)
{
    if (!g || !d)
        return dsi_fail(DS_ERR_ARG, "GAN: the generator or the discriminator is NULL");
    ds_status st = one_io(g, "generator");
    if (st || (st = one_io(d, "discriminator")))
        return st;
    const ds_node *gi = g->inputs[0].node, *go = g->outputs[0].node;
    const ds_node *di = d->inputs[0].node, *dout = d->outputs[0].node;
    char a[96], b[96];
    if (latent > 0 && per_sample(gi) != latent)
        return dsi_fail(DS_ERR_SHAPE, "generator %s: --latent %lld, but its input '%s' takes "
                        "%s (%lld values per sample)", g->path, (long long)latent,
                        g->inputs[0].name, sample_shape(gi, a, sizeof a),
                        (long long)per_sample(gi));
    bool same = go->ndim == di->ndim;
    for (int k = 1; same && k < go->ndim; k++)
        same = go->shape[k] == di->shape[k];
    if (!same)
        return dsi_fail(DS_ERR_SHAPE, "the generator's output does not fit the discriminator's "
                        "input: generator %s: output '%s' is %s per sample; discriminator %s: "
                        "input '%s' takes %s", g->path, g->outputs[0].name,
                        sample_shape(go, a, sizeof a), d->path, d->inputs[0].name,
                        sample_shape(di, b, sizeof b));
    if (per_sample(dout) != 1)
        return dsi_fail(DS_ERR_SHAPE, "discriminator %s: output '%s' is %s per sample; it must "
                        "be one logit per sample (e.g. dense units=1)", d->path,
                        d->outputs[0].name, sample_shape(dout, a, sizeof a));
    return DS_OK;
}

/* The logit node of d: its output, or the input of a final sigmoid. */
static ds_node *logit_node(const ds_net *d)
{
    ds_node *o = d->outputs[0].node;
    return o->op == DS_OP_SIGMOID ? o->in[0] : o;
}

/* ---- z, shuffling ---- */
/* z for b rows: row k of step `step` of epoch e (kind 0: D steps, 1: G steps) has a stream
 * of its own, so the draws do not depend on the thread count or on where a run resumed. */
static void draw_z(const gan_run *r, float *z, int64_t b, int e, int64_t step, int kind)
{
    uint64_t base = dsi_mix64(r->o->seed ^ 0x67616eULL) ^ dsi_mix64((uint64_t)e * 4 + 1 +
                                                                     (uint64_t)kind);
    for (int64_t k = 0; k < b; k++) {
        ds_rng rng;
        ds_rng_seed(&rng, base ^ dsi_mix64((uint64_t)(step * r->B + k) * 0x9e3779b97f4a7c15ULL));
        ds_rng_fill_normal(&rng, z + k * r->latent, r->latent);
    }
}

static void shuffle(int64_t *perm, int64_t N, uint64_t seed, int epoch)
{
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    ds_rng rng;
    ds_rng_seed(&rng, seed ^ dsi_mix64((uint64_t)epoch + 1));
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = (int64_t)ds_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- the steps ---- */
/* Mean binary cross-entropy of b logits l against the label y, stably:
 * max(l, 0) - l y + log(1 + e^-|l|); seed[i] = (sigmoid(l_i) - y) / b, its gradient. The
 * mean of sigmoid(l) is added to *prob. */
static double bce_logits(const float *l, int64_t b, float y, float *seed, double *prob)
{
    double sum = 0, psum = 0;
    for (int64_t i = 0; i < b; i++) {
        double v = l[i], p = 1.0 / (1.0 + exp(-v));
        sum += fmax(v, 0) - v * y + log1p(exp(-fabs(v)));
        psum += p;
        seed[i] = (float)((p - y) / (double)b);
    }
    *prob += psum / (double)b;
    return sum / (double)b;
}

/* G(z) for b rows into G's output (training mode: batch norm's batch statistics). */
static ds_status generate(gan_run *r, int64_t b, int e, int64_t step, int kind)
{
    ds_status st = dsi_net_use_batch(r->g->g, b);
    if (st)
        return st;
    draw_z(r, r->gin->data, b, e, step, kind);
    return ds_graph_forward(r->g->g);
}

/* D on rows already in its input: the loss against y, its gradient into D's parameters
 * (and input). */
static ds_status discriminate(gan_run *r, int64_t b, float y, double *loss, double *prob)
{
    ds_status st = ds_graph_forward(r->d->g);
    if (st)
        return st;
    *loss += bce_logits(r->dlogit->data, b, y, r->seed, prob);
    return ds_graph_backward_seed(r->d->g, r->dlogit, r->seed);
}

static ds_status nonfinite(const char *who, int e, int64_t step, double loss)
{
    if (!isfinite(loss))
        return dsi_fail(DS_ERR_VALUE, "GAN: the %s loss became %g at epoch %d, step %lld: lower "
                        "the learning rate or check the data", who, loss, e + 1,
                        (long long)step + 1);
    return dsi_fail(DS_ERR_VALUE, "GAN: the %s's gradient became NaN or Inf at epoch %d, step "
                    "%lld (loss %g): lower the learning rate or check the data", who, e + 1,
                    (long long)step + 1, loss);
}

/* One D step on the b real rows perm[0..b) and b rows of G(z). */
static ds_status d_step(gan_run *r, const int64_t *rows, int64_t b, int e, int64_t step,
                        gan_sums *s)
{
    ds_status st = dsi_net_use_batch(r->d->g, b);
    if (st)
        return st;
    dsi_gather(r->x, rows, 0, b, r->din->data);
    ds_model_zero_grad(r->d->m);
    double loss = 0;
    float real = (float)(1.0 - r->o->label_smoothing);
    if ((st = discriminate(r, b, real, &loss, &s->d_real)) || (st = generate(r, b, e, step, 0)))
        return st;
    if ((st = dsi_net_use_batch(r->d->g, b)))
        return st;
    memcpy(r->din->data, r->gout->data, (size_t)(b * r->per) * sizeof(float));
    if ((st = discriminate(r, b, 0.0f, &loss, &s->d_fake)))
        return st;
    if (!isfinite(loss) || !dsi_values_finite(r->d->m->grad, (int64_t)r->d->m->grad_n))
        return nonfinite("discriminator", e, step, loss);
    s->d_loss += loss;
    s->d_steps++;
    return ds_optim_step(r->od);
}

/* One G step: D(G(z)) against 1, the gradient through D's input into G. */
static ds_status g_step(gan_run *r, int e, int64_t step, gan_sums *s)
{
    int64_t b = r->B;
    ds_status st = generate(r, b, e, step, 1);
    if (st || (st = dsi_net_use_batch(r->d->g, b)))
        return st;
    memcpy(r->din->data, r->gout->data, (size_t)(b * r->per) * sizeof(float));
    double loss = 0, prob = 0;
    if ((st = discriminate(r, b, 1.0f, &loss, &prob)))
        return st;
    ds_model_zero_grad(r->g->m);
    if ((st = ds_graph_backward_seed(r->g->g, r->gout, r->din->grad)))
        return st;
    if (!isfinite(loss) || !dsi_values_finite(r->g->m->grad, (int64_t)r->g->m->grad_n))
        return nonfinite("generator", e, step, loss);
    s->g_loss += loss;
    s->g_steps++;
    return ds_optim_step(r->og);
}

/* Epoch e: a D step per batch of the shuffled data, a G step after every d_steps of them
 * and after the last; the epoch's means into h. */
static ds_status run_epoch(gan_run *r, int e, double *h)
{
    double t0 = now_s();
    shuffle(r->perm, r->N, r->o->seed, e);
    ds_graph_set_mode(r->g->g, DS_MODE_TRAIN);
    ds_graph_set_mode(r->d->g, DS_MODE_TRAIN);
    gan_sums s = {0};
    int64_t nb = (r->N + r->B - 1) / r->B;
    ds_status st = DS_OK;
    for (int64_t bi = 0; bi < nb && !st; bi++) {
        int64_t i0 = bi * r->B, b = r->N - i0 < r->B ? r->N - i0 : r->B;
        st = d_step(r, r->perm + i0, b, e, bi, &s);
        if (!st && ((bi + 1) % r->K == 0 || bi == nb - 1))
            st = g_step(r, e, s.g_steps, &s);
    }
    if (st)
        return st;
    ds_optim_epoch_end(r->od);
    ds_optim_epoch_end(r->og);
    h[GAN_D_LOSS] = s.d_loss / (double)s.d_steps;
    h[GAN_G_LOSS] = s.g_loss / (double)s.g_steps;
    h[GAN_D_REAL] = s.d_real / (double)s.d_steps;
    h[GAN_D_FAKE] = s.d_fake / (double)s.d_steps;
    h[GAN_SECONDS] = now_s() - t0;
    r->d_steps_epoch = s.d_steps;
    r->g_steps_epoch = s.g_steps;
    return DS_OK;
}

/* ---- setup ---- */
static ds_status check_opts(const gan_run *r, const ds_gan_opts *o)
{
    if (o->epochs < 0 || o->batch_size < 0 || o->d_steps < 0)
        return dsi_fail(DS_ERR_ARG, "GAN: epochs %d, batch size %lld and d_steps %d must not be "
                        "negative", o->epochs, (long long)o->batch_size, o->d_steps);
    if (!(o->label_smoothing >= 0 && o->label_smoothing < 0.5))
        return dsi_fail(DS_ERR_ARG, "GAN: label smoothing %g is not in [0, 0.5)",
                        o->label_smoothing);
    if ((o->grid_rows > 0) != (o->grid_cols > 0) || o->grid_rows < 0 || o->grid_cols < 0 ||
        o->grid_rows > 64 || o->grid_cols > 64)
        return dsi_fail(DS_ERR_ARG, "GAN: a sample grid of %d x %d (rows and columns both "
                        "1 to 64, or both 0)", o->grid_rows, o->grid_cols);
    if (o->resume && !o->out_dir)
        return dsi_fail(DS_ERR_ARG, "GAN: resume needs the output folder of the interrupted "
                        "run");
    const ds_node *di = r->d->inputs[0].node;
    char a[96];
    if (!r->x || r->x->ndim < 1 || r->x->shape[0] < 1 || r->x->numel / r->x->shape[0] != r->per)
        return dsi_fail(DS_ERR_SHAPE, "GAN: the data %s do not fit the discriminator %s, whose "
                        "input '%s' takes %s per sample",
                        r->x ? dsi_shape_str(r->x->ndim, r->x->shape) : "(none)", r->d->path,
                        r->d->inputs[0].name, sample_shape(di, a, sizeof a));
    return ds_tensor_check_finite(r->x, "GAN: the data");
}

/* The optimizer of net n from its file's settings; a cosine schedule without t_max spans
 * the run's steps of this net. */
static ds_optim *make_optim(const ds_net *n, int64_t steps)
{
    ds_optim_opts oo = n->optim;
    ds_schedule *sc = &oo.schedule;
    if (sc->kind == DS_SCHED_COSINE && sc->t_max == 0)
        sc->t_max = steps;
    return ds_optim_create(n->m, &oo);
}

static ds_status setup(gan_run *r)
{
    const ds_gan_opts *o = r->o;
    ds_status st = ds_gan_check(r->g, r->d, o->latent);
    if (st)
        return st;
    r->gin = r->g->inputs[0].node;
    r->gout = r->g->outputs[0].node;
    r->din = r->d->inputs[0].node;
    r->dlogit = logit_node(r->d);
    r->per = per_sample(r->din);
    r->latent = per_sample(r->gin);
    if ((st = check_opts(r, o)))
        return st;
    r->N = r->x->shape[0];
    r->B = o->batch_size > 0 ? o->batch_size : 32;
    if (r->B > r->N)
        r->B = r->N;
    r->K = o->d_steps > 0 ? o->d_steps : 1;
    r->epochs = o->epochs > 0 ? o->epochs : 10;
    int64_t nb = (r->N + r->B - 1) / r->B, ng = nb / r->K + (nb % r->K != 0);
    bool ep = r->d->optim.schedule.per_epoch, gp = r->g->optim.schedule.per_epoch;
    if (!(r->od = make_optim(r->d, ep ? r->epochs : r->epochs * nb)) ||
        !(r->og = make_optim(r->g, gp ? r->epochs : r->epochs * ng)))
        return dsi_last_status();   /* the optimizer said why */
    /* D's input gets a gradient (the G step's path into G); G's output and D's logit are
     * read after the passes */
    if ((st = ds_node_requires_grad(r->din, 1)))
        return st;
    ds_node_keep(r->gout, 1);
    ds_node_keep(r->dlogit, 1);
    r->perm = malloc((size_t)r->N * sizeof *r->perm);
    r->seed = malloc((size_t)r->B * sizeof *r->seed);
    r->hist = calloc((size_t)r->epochs * GAN_HCOLS, sizeof *r->hist);
    if (!r->perm || !r->seed || !r->hist)
        return dsi_fail(DS_ERR_NOMEM, "GAN: out of memory for training");
    return o->out_dir ? dsi_gan_files_setup(r) : DS_OK;
}

static void progress(const gan_run *r, int e)
{
    const double *h = r->hist + (size_t)e * GAN_HCOLS;
    ds_gan_progress p = {
        .epoch = e + 1, .epochs = r->epochs, .d_loss = h[GAN_D_LOSS], .g_loss = h[GAN_G_LOSS],
        .d_real = h[GAN_D_REAL], .d_fake = h[GAN_D_FAKE], .d_steps = r->d_steps_epoch,
        .g_steps = r->g_steps_epoch, .seconds = h[GAN_SECONDS],
    };
    r->o->progress(r->o->ctx, &p);
}

static void finish(gan_run *r, int e, double t0, ds_gan_result *res)
{
    r->r.epochs_run = e;
    if (e > 0) {
        const double *h = r->hist + (size_t)(e - 1) * GAN_HCOLS;
        r->r.d_loss = h[GAN_D_LOSS];
        r->r.g_loss = h[GAN_G_LOSS];
        r->r.d_real = h[GAN_D_REAL];
        r->r.d_fake = h[GAN_D_FAKE];
    }
    r->r.seconds = now_s() - t0;
    if (res)
        *res = r->r;
}

ds_status ds_gan_fit(ds_net *g, ds_net *d, const ds_tensor *x, const ds_gan_opts *o,
                     ds_gan_result *res)
{
    ds_gan_opts def = {0};
    gan_run r = {.g = g, .d = d, .x = x, .o = o ? o : &def};
    r.r = (ds_gan_result){.d_loss = NAN, .g_loss = NAN, .d_real = NAN, .d_fake = NAN};
    double t0 = now_s();
    ds_status st = setup(&r);
    if (!st && r.o->resume)
        st = dsi_gan_resume(&r);
    int e = r.start;
    for (; !st && e < r.epochs; e++) {
        st = run_epoch(&r, e, r.hist + (size_t)e * GAN_HCOLS);
        if (!st && r.o->out_dir)
            st = dsi_gan_write(&r, e + 1);
        if (!st && r.o->progress)
            progress(&r, e);
    }
    if (!st && r.o->out_dir && r.start == r.epochs && r.start > 0)
        st = dsi_gan_write_log(&r, r.start);   /* nothing left to run: the log again */
    if (g && d && !st)
        finish(&r, e, t0, res);
    else if (res)
        *res = r.r;
    if (r.og && g) {   /* set up: the nets back to how they were */
        ds_graph_set_mode(g->g, DS_MODE_EVAL);
        ds_graph_set_mode(d->g, DS_MODE_EVAL);
        ds_node_requires_grad(r.din, 0);
        ds_node_keep(r.gout, 0);
        ds_node_keep(r.dlogit, 0);
    }
    ds_optim_free(r.od);
    ds_optim_free(r.og);
    free(r.perm);
    free(r.seed);
    free(r.hist);
    free(r.settings);
    return st;
}

/* ---- sampling ---- */
ds_status ds_gan_sample(ds_net *g, int64_t n, uint64_t seed, ds_tensor **out)
{
    *out = NULL;
    if (!g || n < 1)
        return dsi_fail(DS_ERR_ARG, "GAN sample: %s", g ? "the count must be at least 1"
                        : "the generator is NULL");
    if (g->n_inputs != 1 || g->n_outputs != 1)
        return one_io(g, "generator");
    ds_node *gi = g->inputs[0].node, *go = g->outputs[0].node;
    int64_t latent = per_sample(gi), per = per_sample(go), keep_b = ds_graph_batch(g->g);
    int mode = ds_graph_mode(g->g);
    int64_t shape[DS_MAX_DIMS];
    memcpy(shape, go->shape, sizeof(int64_t) * (size_t)go->ndim);
    shape[0] = n;
    ds_tensor *t = ds_tensor_create(go->ndim, shape);
    if (!t)
        return dsi_last_status();
    ds_graph_set_mode(g->g, DS_MODE_EVAL);
    ds_status st = DS_OK;
    int64_t B = keep_b > 0 ? keep_b : 32;
    for (int64_t i = 0; i < n && !st; i += B) {
        int64_t b = n - i < B ? n - i : B;
        if ((st = dsi_net_use_batch(g->g, b)))
            break;
        for (int64_t k = 0; k < b; k++) {
            ds_rng rng;
            ds_rng_seed(&rng, dsi_mix64(seed ^ 0x7a) ^ dsi_mix64((uint64_t)(i + k) + 1));
            ds_rng_fill_normal(&rng, gi->data + k * latent, latent);
        }
        if (!(st = ds_graph_forward_to(g->g, go)))
            memcpy(t->data + i * per, ds_node_data(go), (size_t)(b * per) * sizeof(float));
    }
    ds_graph_set_mode(g->g, mode);
    if (!st)
        st = dsi_net_use_batch(g->g, keep_b);
    if (st) {
        ds_tensor_free(t);
        return st;
    }
    *out = t;
    return DS_OK;
}
