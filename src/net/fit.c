/* fit.c - the training loop: shuffled mini-batches, augmentation, validation, metrics,
 * early stopping, per-epoch weights and checkpoints (atomic), resume, CSV log and the
 * learning-curve figure. */
#include "net.h"
#include "../io/io.h"

#include <float.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The first trainable parameter, in the model's (layer) order, with a NaN or Inf in its
 * gradient, or NULL. */
static const ds_param *nonfinite_grad(const ds_model *m)
{
    for (int i = 0; i < m->n; i++) {
        const ds_param *p = m->params[i];
        if (!p->trainable)
            continue;
        const float *g = m->grad + p->goffset;
        int bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t k = 0; k < p->numel; k++)
            bad |= !(fabsf(g[k]) <= FLT_MAX);
        if (bad)
            return p;
    }
    return NULL;
}

/* "<stem><suffix>" where stem is path without a trailing ".safetensors". */
static void sibling(const char *path, const char *suffix, char *buf, size_t cap)
{
    size_t n = strlen(path);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    if (n > e && !strcmp(path + n - e, ext))
        n -= e;
    snprintf(buf, cap, "%.*s%s", (int)n, path, suffix);
}

void ds_image_transform(float *img, int64_t planes, int64_t h, int64_t w, int transform,
                        float *tmp)
{
    bool fx = transform & 1, fy = transform & 2;
    int rot = (transform >> 2) & 3;
    if (!fx && !fy && !rot)
        return;
    for (int64_t p = 0; p < planes; p++) {
        float *im = img + p * h * w;
        memcpy(tmp, im, (size_t)(h * w) * sizeof(float));
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                /* pixel (i, j) goes to its mirror image, then turns rot times:
                 * (row, column) -> (column, w - 1 - row) is (x, y) -> (-y, x) */
                int64_t ri = fy ? h - 1 - i : i, rj = fx ? w - 1 - j : j;
                for (int q = 0; q < rot; q++) {
                    int64_t t = ri;
                    ri = rj;
                    rj = w - 1 - t;
                }
                im[ri * w + rj] = tmp[i * w + j];
            }
    }
}

/* Random flips and quarter turns of the last two axes, per sample, in place, with the
 * labels mapped by the user's hook. The choice is a hash of (seed, epoch, sample): the same
 * whatever the batch order. */
static void augment(float *x, float *y, int64_t b, int64_t f, int64_t fy_n, int64_t h,
                    int64_t w, const ds_fit_opts *o, int epoch, const int64_t *idx, float *tmp)
{
    int flags = o->augment;
    for (int64_t k = 0; k < b; k++) {
        uint64_t r = dsi_mix64(o->seed ^ dsi_mix64((uint64_t)epoch * 0x9e37ULL + (uint64_t)idx[k]));
        int t = (flags & DS_AUG_FLIPS) ? (int)(r & 3) : 0;
        if (flags & DS_AUG_ROT90)
            t |= (int)((r >> 2) & 3) << 2;
        if (!t)
            continue;
        ds_image_transform(x + k * f, f / (h * w), h, w, t, tmp);
        if (o->augment_labels)
            o->augment_labels(o->augment_ctx, t, y + k * fy_n, fy_n);
    }
}

/* history: per epoch train loss, train metric, val loss, val metric, lr, seconds */
#define HCOLS 6

static ds_status write_log(const char *path, const double *h, int epochs, const char *mname)
{
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, path);
    if (st)
        return st;
    const char *m = mname ? mname : "metric";
    fprintf(w.fp, "epoch,loss,%s,val_loss,val_%s,lr,seconds\n", m, m);
    for (int e = 0; e < epochs; e++) {
        const double *r = h + e * HCOLS;
        fprintf(w.fp, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.3f\n", e + 1, r[0], r[1], r[2], r[3], r[4],
                r[5]);
    }
    return dsi_wfile_commit(&w);
}

static ds_status write_curve(const char *path, const double *h, int epochs, const char *mname)
{
    ds_figure *f = ds_figure_create(1, mname ? 2 : 1, mname ? 1200 : 700, 480);
    if (!f)
        return DS_ERR_NOMEM;
    double *ep = malloc((size_t)epochs * sizeof *ep), *col = malloc((size_t)epochs * sizeof *col);
    ds_status st = DS_OK;
    if (!ep || !col) {
        st = DS_ERR_NOMEM;
        goto done;
    }
    for (int e = 0; e < epochs; e++)
        ep[e] = e + 1;
    for (int panel = 0; panel < (mname ? 2 : 1) && !st; panel++) {
        ds_axes *a = ds_figure_axes(f, panel);
        ds_axes_labels(a, panel ? (strcmp(mname, "acc") ? "RMSE" : "Accuracy") : "Loss", "epoch",
                       panel ? mname : "loss");
        bool val = false, positive = true;
        for (int e = 0; e < epochs; e++) {
            val |= !isnan(h[e * HCOLS + 2 + panel]);
            positive &= h[e * HCOLS + panel] > 0;
        }
        if (panel == 0 && positive && epochs > 1)
            ds_axes_log_y(a, 1);
        for (int e = 0; e < epochs; e++)
            col[e] = h[e * HCOLS + panel];
        if ((st = ds_axes_line(a, epochs, ep, col, "training")))
            break;
        if (val) {
            for (int e = 0; e < epochs; e++)
                col[e] = h[e * HCOLS + 2 + panel];
            st = ds_axes_line(a, epochs, ep, col, "validation");
        }
    }
    if (!st)
        st = ds_figure_save_png(f, path);
done:
    free(ep);
    free(col);
    ds_figure_free(f);
    return st;
}

/* The checkpoint: weights, optimizer state, the loop's state and its history. */
static ds_status save_checkpoint(const ds_net *n, const ds_optim *opt, const char *path,
                                 int epoch, double best, int best_epoch, int wait,
                                 const double *hist, const ds_fit_opts *o)
{
    ds_tensor_set *s = ds_tensor_set_create();
    if (!s)
        return DS_ERR_NOMEM;
    ds_status st = dsi_net_to_set(n, s);
    float state[6] = {(float)epoch, (float)best_epoch, (float)wait, 0, 0, 0};
    char buf[64];
    if (!st)
        st = ds_optim_state_save(opt, s);
    if (!st)
        st = ds_tensor_set_add(s, "fit.state", 1, (int64_t[]){6}, state);
    if (!st) {
        /* keep the exact double values of the loop state in metadata */
        snprintf(buf, sizeof buf, "%.17g", best);
        st = ds_tensor_set_meta_set(s, "fit.best", buf);
    }
    if (!st) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)n->g->step);
        st = ds_tensor_set_meta_set(s, "fit.graph_step", buf);
    }
    if (!st) {
        snprintf(buf, sizeof buf, "%llu %lld %d %d", (unsigned long long)o->seed,
                 (long long)o->batch_size, o->augment, o->no_shuffle);
        st = ds_tensor_set_meta_set(s, "fit.run", buf);
    }
    if (!st && epoch > 0) {
        float *hf = malloc((size_t)epoch * HCOLS * sizeof *hf);
        if (!hf)
            st = DS_ERR_NOMEM;
        for (int i = 0; !st && i < epoch * HCOLS; i++)
            hf[i] = (float)hist[i];
        if (!st)
            st = ds_tensor_set_add(s, "fit.history", 2, (int64_t[]){epoch, HCOLS}, hf);
        free(hf);
    }
    if (!st)
        st = ds_safetensors_save(s, path);
    ds_tensor_set_free(s);
    return st;
}

static ds_status load_checkpoint(ds_net *n, ds_optim *opt, const char *path, int *epoch,
                                 double *best, int *best_epoch, int *wait, double *hist,
                                 int max_epochs, const ds_fit_opts *o)
{
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load(path, &s);
    if (st)
        return st;
    ds_tensor *state = ds_tensor_set_get(s, "fit.state");
    const char *run = ds_tensor_set_meta_get(s, "fit.run");
    const char *bs = ds_tensor_set_meta_get(s, "fit.best");
    const char *gs = ds_tensor_set_meta_get(s, "fit.graph_step");
    char want[64];
    snprintf(want, sizeof want, "%llu %lld %d %d", (unsigned long long)o->seed,
             (long long)o->batch_size, o->augment, o->no_shuffle);
    if (!state || state->numel != 6 || !run || !bs || !gs) {
        st = dsi_fail(DS_ERR_FORMAT, "%s: not a deepsky training checkpoint", path);
        goto done;
    }
    if (strcmp(run, want)) {
        st = dsi_fail(DS_ERR_ARG, "%s: the checkpoint was made with other settings (seed, "
                      "batch size, augmentation, shuffling: %s; now %s): resume with the same "
                      "command", path, run, want);
        goto done;
    }
    if ((st = dsi_net_from_set(n, s, path)) || (st = ds_optim_state_load(opt, s)))
        goto done;
    *epoch = (int)state->data[0];
    *best_epoch = (int)state->data[1];
    *wait = (int)state->data[2];
    *best = strtod(bs, NULL);
    n->g->step = strtoull(gs, NULL, 10);
    ds_tensor *h = ds_tensor_set_get(s, "fit.history");
    if (*epoch > max_epochs) {
        st = dsi_fail(DS_ERR_ARG, "%s: the checkpoint is at epoch %d, beyond --epochs %d", path,
                      *epoch, max_epochs);
        goto done;
    }
    if (*epoch > 0 && (!h || h->numel != (int64_t)*epoch * HCOLS)) {
        st = dsi_fail(DS_ERR_FORMAT, "%s: checkpoint history is missing", path);
        goto done;
    }
    for (int i = 0; i < *epoch * HCOLS; i++)
        hist[i] = h->data[i];
done:
    ds_tensor_set_free(s);
    return st;
}

ds_status ds_net_fit(ds_net *n, const ds_tensor *x, const ds_tensor *y, const ds_tensor *xv,
                     const ds_tensor *yv, const ds_fit_opts *o, ds_fit_result *res)
{
    ds_fit_opts def = {0};
    if (!o)
        o = &def;
    ds_fit_result r = {0};
    r.best_val_loss = NAN;
    if (res)
        *res = r;
    if (!n->loss || !n->target)
        return dsi_fail(DS_ERR_STATE, "%s: training needs a loss line that reads labels", n->path);
    ds_status st = ds_net_check_data(n, x, "training data", y, "training labels");
    if (!st && xv)
        st = ds_net_check_data(n, xv, "validation data", yv, "validation labels");
    if (st)
        return st;
    int epochs = o->epochs > 0 ? o->epochs : 10;
    int64_t B = o->batch_size > 0 ? o->batch_size : 32;
    int64_t N = x->shape[0];
    if (B > N)
        B = N;
    const ds_node *in = n->input;
    int64_t h = in->ndim >= 3 ? in->shape[in->ndim - 2] : 0, w = in->shape[in->ndim - 1];
    if (o->augment && (in->ndim < 4 || ((o->augment & DS_AUG_ROT90) && h != w)))
        return dsi_fail(DS_ERR_ARG, "augmentation needs square images [N, C, H, W]; the input is %s",
                        dsi_shape_str(in->ndim, in->shape));

    ds_fit_opts oo = *o;
    oo.batch_size = B;
    ds_optim *opt = ds_optim_create(n->m, &n->optim);
    int64_t *perm = malloc((size_t)N * sizeof *perm);
    double *hist = calloc((size_t)epochs * HCOLS, sizeof *hist);
    float *tmp = malloc((size_t)(h * w > 0 ? h * w : 1) * sizeof *tmp);
    char last[4096] = "", best_path[4096] = "", ckpt[4096] = "";
    if (!opt || !perm || !hist || !tmp) {
        st = opt ? dsi_fail(DS_ERR_NOMEM, "out of memory for training") : DS_ERR_ARG;
        goto done;
    }
    if (o->out_path) {
        snprintf(last, sizeof last, "%s", o->out_path);
        sibling(o->out_path, ".best.safetensors", best_path, sizeof best_path);
        sibling(o->out_path, ".ckpt.safetensors", ckpt, sizeof ckpt);
    }
    int start = 0, best_epoch = 0, wait = 0;
    double best = INFINITY;
    if (o->resume) {
        if (!o->out_path) {
            st = dsi_fail(DS_ERR_ARG, "resume needs the output path of the interrupted run");
            goto done;
        }
        if (access(ckpt, R_OK) == 0) {
            if ((st = load_checkpoint(n, opt, ckpt, &start, &best, &best_epoch, &wait, hist,
                                      epochs, &oo)))
                goto done;
            r.resumed_from = start;
        }
    }
    const char *mname = dsi_net_metric_name(n);
    double t_start = now_s(), seen_total = 0;
    int e;
    for (e = start; e < epochs; e++) {
        double t_epoch = now_s();
        for (int64_t i = 0; i < N; i++)
            perm[i] = i;
        if (!o->no_shuffle) {
            ds_rng rng;
            ds_rng_seed(&rng, o->seed ^ dsi_mix64((uint64_t)e + 1));
            for (int64_t i = N - 1; i > 0; i--) {
                int64_t j = (int64_t)ds_rng_below(&rng, (uint64_t)i + 1);
                int64_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        }
        ds_graph_set_mode(n->g, DS_MODE_TRAIN);
        double lsum = 0, lseen = 0, num = 0, den = 0;   /* lseen: samples of steps taken */
        int64_t batches = (N + B - 1) / B;
        float lr = ds_optim_lr(opt);
        for (int64_t bi = 0; bi < batches; bi++) {
            int64_t i0 = bi * B, b = N - i0 < B ? N - i0 : B;
            if ((b != ds_graph_batch(n->g) && (st = ds_graph_set_batch(n->g, b))) ||
                (st = ds_graph_plan(n->g)))
                goto done;
            dsi_gather(x, perm, i0, b, n->input->data);
            dsi_gather(y, perm, i0, b, n->target->data);
            if (o->augment)
                augment(n->input->data, n->target->data, b, in->numel / in->shape[0],
                        n->target->numel / n->target->shape[0], h, w, o, e, perm + i0, tmp);
            ds_model_zero_grad(n->m);
            if ((st = ds_graph_forward(n->g)))
                goto done;
            float lv = n->loss->data[0];
            if (!isfinite(lv) && o->skip_nonfinite) {
                r.skipped_steps++;
                continue;
            }
            if (!isfinite(lv)) {
                st = dsi_fail(DS_ERR_VALUE, "the training loss became %g at epoch %d, batch %lld: "
                              "lower the learning rate (now %g), check the data, or skip such "
                              "steps (--skip-nonfinite)", lv, e + 1, (long long)bi + 1,
                              ds_optim_lr(opt));
                goto done;
            }
            if ((st = ds_graph_backward(n->g, n->loss)))
                goto done;
            const ds_param *bad = nonfinite_grad(n->m);
            if (bad && o->skip_nonfinite) {
                r.skipped_steps++;
                continue;
            }
            if (bad) {
                st = dsi_fail(DS_ERR_VALUE, "the gradient of '%s' became NaN or Inf at epoch %d, "
                              "batch %lld (loss %g), the first parameter in layer order to do "
                              "so: lower the learning rate (now %g), check the data, or skip "
                              "such steps (--skip-nonfinite)", bad->name, e + 1,
                              (long long)bi + 1, lv, ds_optim_lr(opt));
                goto done;
            }
            if ((st = ds_optim_step(opt)))
                goto done;
            lsum += (double)lv * (double)b;
            lseen += (double)b;
            dsi_net_batch_metric(n, b, &num, &den);
            seen_total += (double)b;
            if (o->progress) {
                double el = now_s() - t_start;
                double done_frac = ((double)(e - start) * N + (double)(i0 + b)) /
                                   ((double)(epochs - start) * N);
                ds_progress p = {
                    .epoch = e + 1, .epochs = epochs, .batch = bi + 1, .batches = batches,
                    .seen = i0 + b, .loss = lsum / lseen,
                    .metric = dsi_net_metric_value(n, num, den), .metric_name = mname,
                    .samples_per_s = seen_total / fmax(el, 1e-9),
                    .eta_s = el / fmax(done_frac, 1e-9) - el, .elapsed_s = el,
                    .val_loss = NAN, .val_metric = NAN,
                };
                o->progress(o->ctx, &p);
            }
        }
        ds_optim_epoch_end(opt);
        double *hr = hist + e * HCOLS;
        hr[0] = lseen > 0 ? lsum / lseen : NAN;
        hr[1] = dsi_net_metric_value(n, num, den);
        hr[2] = hr[3] = NAN;
        hr[4] = lr;
        if (xv && (st = dsi_net_evaluate_set(n, xv, yv, B, &hr[2], &hr[3])))
            goto done;
        hr[5] = now_s() - t_epoch;
        double score = xv ? hr[2] : hr[0];
        bool improved = score < best;
        if (improved) {
            best = score;
            best_epoch = e + 1;
            wait = 0;
        } else {
            wait++;
        }
        r.final_loss = hr[0];
        if (o->out_path) {
            if ((st = ds_net_save(n, last)))
                goto done;
            if (improved && (st = ds_net_save(n, best_path)))
                goto done;
            if ((st = save_checkpoint(n, opt, ckpt, e + 1, best, best_epoch, wait, hist, &oo)))
                goto done;
        }
        if (o->log_csv && (st = write_log(o->log_csv, hist, e + 1, mname)))
            goto done;
        if (o->curve_png && (st = write_curve(o->curve_png, hist, e + 1, mname)))
            goto done;
        if (o->progress) {
            double el = now_s() - t_start;
            ds_progress p = {
                .epoch = e + 1, .epochs = epochs, .batch = batches, .batches = batches,
                .seen = N, .loss = hr[0], .metric = hr[1], .metric_name = mname,
                .samples_per_s = seen_total / fmax(el, 1e-9),
                .eta_s = el / (double)(e + 1 - start) * (double)(epochs - e - 1),
                .elapsed_s = el, .end_of_epoch = 1, .val_loss = hr[2], .val_metric = hr[3],
                .improved = improved,
            };
            o->progress(o->ctx, &p);
        }
        if (o->patience > 0 && wait >= o->patience) {
            r.stopped_early = 1;
            e++;
            break;
        }
        if (o->max_seconds > 0 && now_s() - t_start >= o->max_seconds && e + 1 < epochs) {
            r.out_of_time = 1;
            e++;
            break;
        }
    }
    r.epochs_run = e;
    r.best_epoch = best_epoch;
    r.best_val_loss = xv ? best : NAN;
    r.seconds = now_s() - t_start;
done:
    ds_graph_set_mode(n->g, DS_MODE_EVAL);
    ds_optim_free(opt);
    free(perm);
    free(hist);
    free(tmp);
    if (res)
        *res = r;
    return st;
}
