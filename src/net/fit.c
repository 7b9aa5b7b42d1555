/* fit.c - the training loop on a trainer: shuffled mini-batches (from a feed in memory or
 * a stream's reader), augmentation, validation, metrics, early stopping, weights and
 * checkpoints (atomic, coalesced for short epochs), strict resume, CSV log and the
 * learning-curve figure. */
#include "net.h"
#include "../io/io.h"
#include "../io/stream.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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

/* Rows move by dy, columns by dx; memmove handles the overlap, the rows' order does the
 * rest (walk away from where the rows go). */
void ds_image_shift(float *img, int64_t planes, int64_t h, int64_t w, int64_t dy, int64_t dx)
{
    if (!dy && !dx)
        return;
    int64_t ady = dy < 0 ? -dy : dy, adx = dx < 0 ? -dx : dx;
    for (int64_t p = 0; p < planes; p++) {
        float *im = img + p * h * w;
        if (ady >= h || adx >= w) {
            memset(im, 0, (size_t)(h * w) * sizeof(float));
            continue;
        }
        for (int64_t k = 0; k < h - ady; k++) {
            int64_t to = dy > 0 ? h - 1 - k : k, from = to - dy;
            float *row = im + to * w;
            memmove(row + (dx > 0 ? dx : 0), im + from * w + (dx < 0 ? adx : 0),
                    (size_t)(w - adx) * sizeof(float));
            memset(dx > 0 ? row : row + w - adx, 0, (size_t)adx * sizeof(float));
        }
        for (int64_t k = 0; k < ady; k++)
            memset(im + (dy > 0 ? k : h - 1 - k) * w, 0, (size_t)w * sizeof(float));
    }
}

/* history: per epoch train loss, train metric, val loss, val metric, lr, seconds, and the
 * KL term of Bayesian layers in the training loss (NAN without them; checkpoints written
 * before it have the first HCOLS_OLD) */
#define HCOLS 7
#define HCOLS_OLD 6

/* The log; a net with Bayesian layers gets the column kl, the KL term (part of loss). */
static ds_status write_log(const char *path, const double *h, int epochs, const char *mname,
                           bool kl, const ds_net *n, const double *terms)
{
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, path);
    if (st)
        return st;
    const char *m = mname ? mname : "metric";
    fprintf(w.fp, "epoch,loss,%s,val_loss,val_%s,lr,seconds%s", m, m, kl ? ",kl" : "");
    for (int k = 0; k < n->n_terms; k++)   /* several loss lines: each one's term */
        fprintf(w.fp, ",loss_%s", n->term_names[k]);
    fputc('\n', w.fp);
    for (int e = 0; e < epochs; e++) {
        const double *r = h + e * HCOLS;
        fprintf(w.fp, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.3f", e + 1, r[0], r[1], r[2], r[3], r[4],
                r[5]);
        if (kl)
            fprintf(w.fp, ",%.9g", r[6]);
        for (int k = 0; k < n->n_terms; k++)
            fprintf(w.fp, ",%.9g", terms[e * DSI_MAX_TERMS + k]);
        fputc('\n', w.fp);
    }
    return dsi_wfile_commit(&w);
}

static ds_status write_curve(const char *path, const double *h, int epochs, const char *mname)
{
    ds_figure *f = ds_figure_create(1, mname ? 2 : 1, mname ? 1200 : 700, 480);
    if (!f)
        return dsi_last_status();   /* the figure said why */
    double *ep = malloc((size_t)epochs * sizeof *ep), *col = malloc((size_t)epochs * sizeof *col);
    ds_status st = DS_OK;
    if (!ep || !col) {
        st = dsi_fail(DS_ERR_NOMEM, "%s: out of memory for the learning curve of %d epochs",
                      path, epochs);
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

/* One training run: its settings, data, trainer and loop state. */
typedef struct {
    ds_net *n;
    const ds_fit_opts *o;
    const ds_feed *train;
    ds_stream *stream;         /* or the training data from a stream (train NULL) */
    ds_tensor shapes[2 * DS_FEED_MAX];   /* the stream's items, shapes only */
    ds_feed shape_feed;        /* of those: what the trainer binds and checks */
    const int64_t *ids;        /* the stream's batch in hand: its samples' indices */
    dsi_bound data, val;       /* val.n == 0: no validation */
    ds_trainer *tr;
    int epochs;
    int64_t N, B, S;           /* samples; per pass; per optimizer step */
    int64_t R, rep;            /* rows per epoch (N x rep); rows per sample drawn */
    int64_t i0;                /* the step's first row in the epoch, for the noise */
    ds_node *noise;            /* the input the noise goes to, or NULL */
    const char *noise_name;
    int64_t *perm;
    double *hist;              /* HCOLS values per epoch */
    double *terms;             /* DSI_MAX_TERMS per epoch: the loss lines' terms (or NAN) */
    const char *term_names[DSI_MAX_TERMS];   /* the net's, for ds_progress */
    float *tmp;                /* an image plane, for augmentation */
    int epoch;                 /* 0-based, for augmentation */
    int start, best_epoch, wait;
    double best, t_start, seen_total;
    double t_write, t_curve;   /* when the files and the curve were last written */
    /* the best epoch's weights, kept from that epoch on (a resumed run reads them back from
     * the best file) so the best file is rewritten with every write, counting the epochs run */
    ds_tensor_set *best_set;
    char *settings;            /* "name: value" lines: what a resume must match */
    const char *mname;
    char last[4096], best_path[4096], ckpt[4096];
    ds_fit_result r;
    const ds_dist *dist;       /* data-parallel over several ranks, or NULL */
    bool writer;               /* writes the files: rank 0, or the only process */
} fit_run;

/* ---- the run's settings, recorded in its checkpoint ---- */
/* A hash of a tensor's shape and bits: four interleaved lanes of 8-byte words, so the
 * data of a large set cost about what reading it once costs. */
static uint64_t tensor_hash(const ds_tensor *t)
{
    uint64_t h[4] = {0x6473, 0x6b79, 0x6669, 0x7474}, w[4];
    for (int d = 0; d < t->ndim; d++)
        h[0] = dsi_mix64(h[0] ^ (uint64_t)t->shape[d]);
    const unsigned char *p = (const unsigned char *)t->data;
    size_t n = (size_t)t->numel * sizeof(float), i = 0;
    for (; i + 32 <= n; i += 32) {
        memcpy(w, p + i, 32);
        for (int k = 0; k < 4; k++)
            h[k] = dsi_mix64(h[k] ^ w[k]);
    }
    uint64_t tail = 0;
    memcpy(&tail, p + i, n - i > 8 ? 8 : n - i);
    for (size_t j = i + 8; j < n; j += 8) {   /* at most 3 more words */
        uint64_t x = 0;
        memcpy(&x, p + j, n - j > 8 ? 8 : n - j);
        tail = dsi_mix64(tail ^ x);
    }
    return dsi_mix64(h[0] ^ dsi_mix64(h[1] ^ dsi_mix64(h[2] ^ dsi_mix64(h[3] ^ tail ^ n))));
}

/* "<what> '<name>': [shape] hash" for each input and each labels tensor of a bound set. */
static void data_settings(dsi_buf *b, const ds_net *n, const dsi_bound *d, const char *what)
{
    for (int i = 0; i < n->n_inputs; i++) {
        const ds_tensor *x = d->n ? d->x[i] : NULL;
        dsi_buf_printf(b, "%s data '%s': ", what, n->inputs[i].name);
        if (x)
            dsi_buf_printf(b, "%s hash %016llx\n", dsi_shape_str(x->ndim, x->shape),
                           (unsigned long long)tensor_hash(x));
        else
            dsi_buf_puts(b, "none\n");
    }
    for (int j = 0; j < n->n_targets; j++) {
        const ds_tensor *y = d->n ? d->y[j] : NULL;
        dsi_buf_printf(b, "%s labels '%s': ", what, n->targets[j].name);
        if (y)
            dsi_buf_printf(b, "%s hash %016llx\n", dsi_shape_str(y->ndim, y->shape),
                           (unsigned long long)tensor_hash(y));
        else
            dsi_buf_puts(b, "none\n");
    }
}

/* A float as the shortest text that reads back as the same float. */
static const char *float_str(float x, char *buf, size_t cap)
{
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, cap, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x)
            return buf;
    }
    snprintf(buf, cap, "%.9g", (double)x);
    return buf;
}

static void optim_settings(dsi_buf *b, const fit_run *fr)
{
    const ds_optim_opts *p = &fr->n->optim;
    const ds_schedule *sc = &p->schedule;
    const char *names[] = {"lr", "momentum", "weight decay", "beta1", "beta2", "eps", "alpha",
                           "clip norm", "schedule gamma", "schedule decay", "schedule min lr"};
    float v[] = {ds_optim_lr(ds_trainer_optim(fr->tr)), p->momentum, p->weight_decay, p->beta1,
                 p->beta2, p->eps, p->alpha, p->clip_norm, sc->gamma, sc->decay, sc->min_lr};
    char buf[32];
    dsi_buf_printf(b, "optimizer: %s\n", ds_optim_name(p->kind));
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        dsi_buf_printf(b, "%s: %s\n", names[i], float_str(v[i], buf, sizeof buf));
    dsi_buf_printf(b, "nesterov: %d\namsgrad: %d\nschedule: %d\nschedule step size: %lld\n"
                   "schedule t_max: %lld\nschedule per epoch: %d\n", p->nesterov, p->amsgrad,
                   (int)sc->kind, (long long)sc->step_size, (long long)sc->t_max, sc->per_epoch);
}

/* The augmentation settings as --augment spells them: "none", "flips", "flips,rot90",
 * "hflip,shift:2", ... (the runs before hflip and shift wrote the same words). */
static void augment_name(const ds_fit_opts *o, char *buf, size_t cap)
{
    static const char *const word[] = {"flips", "rot90", "hflip"};
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < 3; i++)
        if (o->augment & (1 << i))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "", word[i]);
    if (o->augment_shift > 0)
        n += (size_t)snprintf(buf + n, cap - n, "%sshift:%d", n ? "," : "", o->augment_shift);
    if (!n)
        snprintf(buf, cap, "none");
}

/* Everything that changes the result of the run (epochs and early stopping aside, which
 * only say where it ends), one "name: value" line each; the caller's first. */
static ds_status make_settings(fit_run *fr)
{
    const ds_fit_opts *o = fr->o;
    static const char *const scale[] = {"none", "standardize", "per_image", "asinh", "divide"};
    dsi_buf b = {0};
    if (o->settings)
        dsi_buf_printf(&b, "%s%s", o->settings,
                       *o->settings && o->settings[strlen(o->settings) - 1] != '\n' ? "\n" : "");
    char aug[96];
    augment_name(o, aug, sizeof aug);
    dsi_buf_printf(&b, "seed: %llu\nbatch size: %lld\naccumulate: %lld\nshuffle: %s\n"
                   "augment: %s\nnon-finite steps: %s\n", (unsigned long long)o->seed,
                   (long long)fr->B, (long long)(fr->S / fr->B), o->no_shuffle ? "no" : "yes",
                   aug, o->skip_nonfinite ? "skip" : "stop");
    if (fr->rep > 1)
        dsi_buf_printf(&b, "repeat: %lld\n", (long long)fr->rep);
    if (fr->noise) {
        char nb[32];
        dsi_buf_printf(&b, "noise: %s on '%s'\n", float_str((float)o->augment_noise, nb,
                       sizeof nb), fr->noise_name);
    }
    optim_settings(&b, fr);
    for (int i = 0; i < fr->n->n_inputs; i++) {
        const dsi_net_input *in = &fr->n->inputs[i];
        char buf[32];
        dsi_buf_printf(&b, "scaling '%s': %s", in->name, scale[in->scale]);
        if (in->scale == DS_SCALE_ASINH || in->scale == DS_SCALE_DIVIDE)
            dsi_buf_printf(&b, ":%s", float_str(in->scale_a, buf, sizeof buf));
        dsi_buf_puts(&b, "\n");
    }
    if (fr->stream)
        dsi_stream_describe(fr->stream, &b, "training", o->no_shuffle);
    else
        data_settings(&b, fr->n, &fr->data, "training");
    data_settings(&b, fr->n, &fr->val, "validation");
    if (b.oom) {
        free(b.p);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the run's settings");
    }
    fr->settings = b.p;
    return DS_OK;
}

/* The value of the line "name: value" in lines, as a pointer and length, or NULL. */
static const char *setting_value(const char *lines, const char *name, size_t nlen, int *len)
{
    for (const char *l = lines; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t ll = end ? (size_t)(end - l) : strlen(l);
        if (ll > nlen + 1 && !strncmp(l, name, nlen) && l[nlen] == ':' && l[nlen + 1] == ' ') {
            *len = (int)(ll - nlen - 2);
            return l + nlen + 2;
        }
        l = end ? end + 1 : l + ll;
    }
    return NULL;
}

/* "name: A then, B now"; for data, "name: other values (same shape [..])" or
 * "name: [..] then, [..] now", without the hashes. */
static void describe(char *msg, size_t cap, const char *name, int nlen, const char *then,
                     int lt, const char *now, int ln)
{
    const char *ht = strstr(then, " hash "), *hn = strstr(now, " hash ");
    if (ht && hn && ht < then + lt && hn < now + ln) {
        int st = (int)(ht - then), sn = (int)(hn - now);
        if (st == sn && !strncmp(then, now, (size_t)st))
            dsi_snprintf_cat(msg, cap, "%.*s: other values (same shape %.*s)", nlen, name, st,
                             then);
        else
            dsi_snprintf_cat(msg, cap, "%.*s: %.*s then, %.*s now", nlen, name, st, then, sn,
                             now);
        return;
    }
    if (ht && ht < then + lt)
        lt = (int)(ht - then);
    if (hn && hn < now + ln)
        ln = (int)(hn - now);
    dsi_snprintf_cat(msg, cap, "%.*s: %.*s then, %.*s now", nlen, name, lt, then, ln, now);
}

/* Adds to msg each line of a whose value differs in b (or that b lacks). */
static int diff_settings(const char *a, const char *b, bool a_is_then, char *msg, size_t cap)
{
    int count = 0;
    for (const char *l = a; *l;) {
        const char *end = strchr(l, '\n'), *colon = strstr(l, ": ");
        size_t ll = end ? (size_t)(end - l) : strlen(l);
        if (colon && colon < l + ll) {
            size_t nlen = (size_t)(colon - l);
            int la = (int)(ll - nlen - 2), lb = 0;
            const char *vb = setting_value(b, l, nlen, &lb);
            bool differ = !vb || la != lb || strncmp(colon + 2, vb, (size_t)la);
            if (differ && (a_is_then || !vb)) {
                const char *then = a_is_then ? colon + 2 : "(none)";
                const char *now = a_is_then ? (vb ? vb : "(none)") : colon + 2;
                int lt = a_is_then ? la : 6, ln = a_is_then ? (vb ? lb : 6) : la;
                dsi_snprintf_cat(msg, cap, "%s", count ? "; " : "");
                describe(msg, cap, l, (int)nlen, then, lt, now, ln);
                count++;
            }
        }
        l = end ? end + 1 : l + ll;
    }
    return count;
}

/* ---- the checkpoint ---- */
/* The history keeps its exact doubles (the log's lines come back as they were): each
 * value's 64 bits as four 16-bit words, integers a float holds exactly. */
static ds_status add_doubles(const fit_run *fr, ds_tensor_set *s, const char *key,
                             const double *v, int epoch, int cols)
{
    int64_t n = (int64_t)epoch * cols;
    float *hf = malloc((size_t)(n * 4) * sizeof *hf);
    if (!hf)
        return dsi_fail(DS_ERR_NOMEM, "%s: out of memory for the training history", fr->ckpt);
    for (int64_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &v[i], 8);
        for (int k = 0; k < 4; k++)
            hf[i * 4 + k] = (float)((bits >> (16 * k)) & 0xffff);
    }
    ds_status st = ds_tensor_set_add(s, key, 3, (int64_t[]){epoch, cols, 4}, hf);
    free(hf);
    return st;
}

static ds_status add_history(const fit_run *fr, ds_tensor_set *s, int epoch)
{
    ds_status st = add_doubles(fr, s, "fit.history", fr->hist, epoch, HCOLS);
    if (!st && fr->n->n_terms)
        st = add_doubles(fr, s, "fit.terms", fr->terms, epoch, DSI_MAX_TERMS);
    return st;
}

/* The loss terms of a checkpoint (written by add_doubles), if it has them; NAN otherwise. */
static void get_terms(fit_run *fr, const ds_tensor *h, int epoch)
{
    bool ok = h && h->ndim == 3 && h->shape[0] == epoch && h->shape[1] == DSI_MAX_TERMS &&
              h->shape[2] == 4;
    for (int64_t i = 0; i < (int64_t)epoch * DSI_MAX_TERMS; i++) {
        uint64_t bits = 0;
        for (int k = 0; ok && k < 4; k++)
            bits |= (uint64_t)h->data[i * 4 + k] << (16 * k);
        if (ok)
            memcpy(&fr->terms[i], &bits, 8);
        else
            fr->terms[i] = NAN;
    }
}

static bool get_history(fit_run *fr, const ds_tensor *h, int epoch)
{
    if (!h || h->ndim != 3 || h->shape[0] != epoch || h->shape[2] != 4 ||
        (h->shape[1] != HCOLS && h->shape[1] != HCOLS_OLD))
        return false;
    int64_t cols = h->shape[1];
    for (int64_t i = 0; i < (int64_t)epoch * HCOLS; i++) {
        if (i % HCOLS >= cols) {
            fr->hist[i] = NAN;
            continue;
        }
        int64_t at = i / HCOLS * cols + i % HCOLS;
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++) {
            float w = h->data[at * 4 + k];
            if (!(w >= 0 && w <= 65535 && w == (float)(int)w))
                return false;
            bits |= (uint64_t)w << (16 * k);
        }
        memcpy(&fr->hist[i], &bits, 8);
    }
    return true;
}

/* The training metadata (ds_weights_info) of the weights of epoch held (1-based), written
 * after run epochs: that epoch's losses and metrics from the history. */
static ds_status set_train_meta(const fit_run *fr, ds_tensor_set *s, int held, int run)
{
    const double *h = fr->hist + (size_t)(held - 1) * HCOLS;
    dsi_train_meta m = {
        .epoch = held, .epochs_run = run, .epochs = fr->epochs, .best_epoch = fr->best_epoch,
        .loss = h[0], .metric = h[1], .val_loss = h[2], .val_metric = h[3],
        .metric_name = fr->mname, .command = fr->o->command,
    };
    ds_status st = dsi_weights_meta_set(s, &m);
    const ds_tensor_set *x = fr->o->meta;   /* the caller's keys (train --ensemble) */
    for (int i = 0; x && !st && i < dsi_tensor_set_meta_count(x); i++) {
        const char *key = dsi_tensor_set_meta_key(x, i);
        st = ds_tensor_set_meta_set(s, key, ds_tensor_set_meta_get(x, key));
    }
    return st;
}

/* The checkpoint: weights, optimizer state, the loop's state, its history and settings. */
static ds_status save_checkpoint(const fit_run *fr, int epoch)
{
    ds_tensor_set *s = ds_tensor_set_create();
    if (!s)
        return DS_ERR_NOMEM;   /* with its message */
    ds_status st = dsi_net_to_set(fr->n, s);
    float state[6] = {(float)epoch, (float)fr->best_epoch, (float)fr->wait, 0, 0, 0};
    char buf[96];
    if (!st)
        st = ds_optim_state_save(ds_trainer_optim(fr->tr), s);
    if (!st)
        st = ds_tensor_set_add(s, "fit.state", 1, (int64_t[]){6}, state);
    if (!st) {
        /* keep the exact double values of the loop state in metadata */
        snprintf(buf, sizeof buf, "%.17g", fr->best);
        st = ds_tensor_set_meta_set(s, "fit.best", buf);
    }
    if (!st) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)fr->n->g->step);
        st = ds_tensor_set_meta_set(s, "fit.graph_step", buf);
    }
    if (!st)
        st = ds_tensor_set_meta_set(s, "fit.settings", fr->settings);
    if (!st && epoch > 0)
        st = add_history(fr, s, epoch);
    if (!st && epoch > 0)
        st = set_train_meta(fr, s, epoch, epoch);
    if (!st)
        st = ds_safetensors_save(s, fr->ckpt);
    ds_tensor_set_free(s);
    return st;
}

/* Refuses a checkpoint whose settings differ from this run's, naming each difference. */
static ds_status check_settings(const fit_run *fr, const char *then)
{
    const char *path = fr->ckpt;
    if (!then)
        return dsi_fail(DS_ERR_ARG, "%s: the checkpoint does not record its run's settings (an "
                        "older deepsky wrote it): it cannot be checked; start afresh without "
                        "resuming", path);
    char msg[900] = "";
    int n = diff_settings(then, fr->settings, true, msg, sizeof msg);
    n += diff_settings(fr->settings, then, false, msg, sizeof msg);
    if (!n)
        return DS_OK;
    return dsi_fail(DS_ERR_ARG, "%s: the checkpoint was made with other settings (%d): %s; resume "
                    "with the same command and data, or start afresh", path, n, msg);
}

/* The loop state of a checkpoint made with the same settings. */
static ds_status read_checkpoint(fit_run *fr, const ds_tensor_set *s)
{
    const char *path = fr->ckpt;
    ds_tensor *state = ds_tensor_set_get(s, "fit.state");
    const char *bs = ds_tensor_set_meta_get(s, "fit.best");
    const char *gs = ds_tensor_set_meta_get(s, "fit.graph_step");
    if (!state || state->numel != 6 || !bs || !gs)
        return dsi_fail(DS_ERR_FORMAT, "%s: not a deepsky training checkpoint", path);
    for (int i = 0; i < 3; i++)   /* epoch, best epoch, epochs waited: counts */
        if (!(state->data[i] >= 0 && state->data[i] <= 1e9f))
            return dsi_fail(DS_ERR_FORMAT, "%s: damaged loop state (value %d: %g)", path, i,
                            (double)state->data[i]);
    ds_status st = check_settings(fr, ds_tensor_set_meta_get(s, "fit.settings"));
    if (st || (st = dsi_net_from_set(fr->n, s, path)) ||
        (st = ds_optim_state_load(ds_trainer_optim(fr->tr), s)))
        return st;
    int epoch = (int)state->data[0];
    if (epoch > fr->epochs)
        return dsi_fail(DS_ERR_ARG, "%s: the checkpoint is at epoch %d, beyond --epochs %d", path,
                        epoch, fr->epochs);
    if (epoch > 0 && !get_history(fr, ds_tensor_set_get(s, "fit.history"), epoch))
        return dsi_fail(DS_ERR_FORMAT, "%s: checkpoint history is missing or damaged", path);
    if (epoch > 0)
        get_terms(fr, ds_tensor_set_get(s, "fit.terms"), epoch);
    fr->start = epoch;
    fr->best_epoch = (int)state->data[1];
    fr->wait = (int)state->data[2];
    fr->best = strtod(bs, NULL);
    fr->n->g->step = strtoull(gs, NULL, 10);
    return DS_OK;
}

static ds_status resume(fit_run *fr)
{
    if (!fr->o->out_path)
        return dsi_fail(DS_ERR_ARG, "resume needs the output path of the interrupted run");
    if (access(fr->ckpt, F_OK) != 0) {
        if (fr->o->resume_if_exists)
            return DS_OK;   /* nothing to resume: start afresh */
        return dsi_fail(DS_ERR_ARG, "%s: no checkpoint to resume from: give the output name "
                        "of the interrupted run, or start afresh when there is none "
                        "(--resume-if-exists)", fr->ckpt);
    }
    ds_tensor_set *s = NULL;
    ds_status st = ds_safetensors_load(fr->ckpt, &s);
    if (!st)
        st = read_checkpoint(fr, s);
    ds_tensor_set_free(s);
    fr->r.resumed_from = fr->start;
    return st;
}

/* A resumed run with no epoch left to run: its log and curve are written after the
 * checkpoint, so a kill between them left them behind the checkpoint; both are written
 * again from its history (a run with epochs left writes them after its epochs). */
static ds_status resumed_side_files(const fit_run *fr)
{
    const ds_fit_opts *o = fr->o;
    ds_status st = DS_OK;
    if (!fr->writer)
        return DS_OK;
    if (o->log_csv)
        st = write_log(o->log_csv, fr->hist, fr->start, fr->mname, fr->n->kl, fr->n, fr->terms);
    if (!st && o->curve_png)
        st = write_curve(o->curve_png, fr->hist, fr->start, fr->mname);
    return st;
}

/* ---- augmentation, through the trainer's batch hook ---- */
/* Sample k's transform and shift (k of the micro-batch at rows[first..]). */
static void transform_sample(fit_run *fr, ds_net *n, const int64_t *rows, int64_t first,
                             int64_t k)
{
    const ds_fit_opts *o = fr->o;
    uint64_t idx = (uint64_t)(fr->ids ? fr->ids[first + k] : rows ? rows[first + k]
                                                                  : first + k);
    uint64_t r = dsi_mix64(o->seed ^ dsi_mix64((uint64_t)fr->epoch * 0x9e37ULL + idx));
    int t = (o->augment & DS_AUG_FLIPS) ? (int)(r & 3) : 0;
    if (o->augment & DS_AUG_ROT90)
        t |= (int)((r >> 2) & 3) << 2;
    if ((o->augment & DS_AUG_HFLIP) && !(o->augment & DS_AUG_FLIPS))
        t |= (int)((r >> 4) & 1);
    int64_t s = o->augment_shift, span = 2 * s + 1;
    int64_t dy = s ? (int64_t)(((r >> 8) & 0xffffff) % (uint64_t)span) - s : 0;
    int64_t dx = s ? (int64_t)(((r >> 32) & 0xffffff) % (uint64_t)span) - s : 0;
    if (!t && !dy && !dx)
        return;
    for (int i = 0; i < n->n_inputs; i++) {
        ds_node *in = n->inputs[i].node;
        if (in->ndim < 4)
            continue;
        int64_t f = in->numel / in->shape[0], h = in->shape[in->ndim - 2];
        int64_t w = in->shape[in->ndim - 1];
        ds_image_transform(in->data + k * f, f / (h * w), h, w, t, fr->tmp);
        ds_image_shift(in->data + k * f, f / (h * w), h, w, dy, dx);
    }
    if (o->augment_labels && t) {
        ds_node *y = n->targets[0].target;
        int64_t fy = y->numel / y->shape[0];
        o->augment_labels(o->augment_ctx, t, y->data + k * fy, fy);
    }
}

/* Fresh Gaussian noise in the b rows of the micro-batch starting at row `first` of the step:
 * each row's stream is a hash of (seed, epoch, its place in the epoch). */
static void add_noise(fit_run *fr, int64_t first, int64_t b)
{
    ds_node *x = fr->noise;
    int64_t f = x->numel / x->shape[0];
    float sigma = (float)fr->o->augment_noise;
    uint64_t base = dsi_mix64(fr->o->seed ^ 0x6e6f697365ULL) ^ dsi_mix64((uint64_t)fr->epoch + 1);
#pragma omp parallel for schedule(static) if (b * f > DS_PAR_MIN)
    for (int64_t k = 0; k < b; k++) {
        ds_rng r;
        ds_rng_seed(&r, base ^ dsi_mix64((uint64_t)(fr->i0 + first + k) * 0x9e3779b97f4a7c15ULL));
        float *v = x->data + k * f;
        for (int64_t i = 0; i < f; i++)
            v[i] += sigma * (float)ds_rng_normal(&r);
    }
}

/* Random flips and quarter turns of the last two axes of every input of rank 4 or more,
 * then random shifts, per sample (the same for all of a sample's images and for all its
 * repeats), in place, with the labels mapped by the user's hook (for the flips and
 * turns); then the noise. The choice is a hash of (seed, epoch, sample): the same whatever
 * the batch order. Bits of the hash: 0-1 flips, 2-3 turns, 4 the left-right mirror, 8-31
 * and 32-55 the shifts. */
static void augment_batch(void *ctx, ds_net *n, const int64_t *rows, int64_t first, int64_t b)
{
    fit_run *fr = ctx;
    if (fr->o->augment || fr->o->augment_shift)
        for (int64_t k = 0; k < b; k++)
            transform_sample(fr, n, rows, first, k);
    if (fr->noise)
        add_noise(fr, first, b);
}

/* Augmentation needs images: inputs [N, C, H, W] (square for quarter turns); the largest
 * plane sizes the scratch buffer. */
static ds_status augment_check(const ds_net *n, const ds_fit_opts *o, int64_t *plane)
{
    *plane = 1;
    for (int i = 0; i < n->n_inputs; i++) {
        const ds_node *in = n->inputs[i].node;
        int64_t h = in->ndim >= 3 ? in->shape[in->ndim - 2] : 0, w = in->shape[in->ndim - 1];
        if (in->ndim >= 4 && h * w > *plane)
            *plane = h * w;
        if (o->augment && in->ndim >= 4 && (o->augment & DS_AUG_ROT90) && h != w)
            return dsi_fail(DS_ERR_ARG, "augmentation needs square images [N, C, H, W]; the "
                            "input '%s' is %s", n->inputs[i].name,
                            dsi_shape_str(in->ndim, in->shape));
    }
    if (o->augment_shift < 0 || o->augment_shift > 1 << 20)
        return dsi_fail(DS_ERR_ARG, "augment_shift: %d pixels (0 to %d)", o->augment_shift,
                        1 << 20);
    if (!o->augment && !o->augment_shift)
        return DS_OK;
    if (n->n_inputs == 1 && n->inputs[0].node->ndim < 4)
        return dsi_fail(DS_ERR_ARG, "augmentation needs %simages [N, C, H, W]; the input "
                        "is %s", o->augment & DS_AUG_ROT90 ? "square " : "", dsi_shape_str(n->inputs[0].node->ndim, n->inputs[0].node->shape));
    if (*plane == 1)
        return dsi_fail(DS_ERR_ARG, "augmentation needs an input of images [N, C, H, W]");
    if (o->augment_labels && n->n_targets > 1)
        return dsi_fail(DS_ERR_ARG, "augment_labels: the model has %d losses that read labels; "
                        "it maps the labels of one", n->n_targets);
    return DS_OK;
}

/* ---- the run ---- */
/* The data, the labels and the settings, before anything is allocated. */
/* repeat and the noise's input. */
static ds_status repeat_check(fit_run *fr)
{
    const ds_fit_opts *o = fr->o;
    if (o->repeat < 0 || o->repeat > 1 << 20)
        return dsi_fail(DS_ERR_ARG, "repeat: %d rows per sample (0 to %d)", o->repeat, 1 << 20);
    fr->rep = o->repeat > 1 ? o->repeat : 1;
    if (fr->rep > 1 && fr->stream)
        return dsi_fail(DS_ERR_ARG, "repeat: not available when training on a stream");
    if (!(o->augment_noise >= 0 && o->augment_noise < 1e30))
        return dsi_fail(DS_ERR_ARG, "augment_noise: standard deviation %g must be >= 0",
                        o->augment_noise);
    if (o->augment_noise == 0)
        return DS_OK;
    ds_net *n = fr->n;
    for (int i = 0; i < n->n_inputs && !fr->noise; i++)
        if (!o->noise_input || !strcmp(o->noise_input, n->inputs[i].name))
            fr->noise = n->inputs[i].node, fr->noise_name = n->inputs[i].name;
    if (!fr->noise) {
        char names[256] = "";
        for (int i = 0; i < n->n_inputs; i++)
            dsi_snprintf_cat(names, sizeof names, "%s'%s'", i ? ", " : "", n->inputs[i].name);
        return dsi_fail(DS_ERR_ARG, "%s: noise_input: no input named '%s' (the inputs: %s)",
                        n->path, o->noise_input, names);
    }
    return DS_OK;
}

/* Data-parallel settings: a group of 2 or more (1 is one process), data in memory. */
static ds_status dist_check(fit_run *fr)
{
    const ds_dist *d = fr->o->dist;
    fr->writer = !d || d->rank == 0;
    if (!d || d->size == 1)
        return DS_OK;
    if (d->size < 1 || d->rank < 0 || d->rank >= d->size || !d->sum_float || !d->sum_double ||
        !d->bcast)
        return dsi_fail(DS_ERR_ARG, "dist: rank %d of %d, or a collective missing", d->rank,
                        d->size);
    if (fr->stream)
        return dsi_fail(DS_ERR_ARG, "data-parallel training (%d ranks) reads its data in "
                        "memory: streamed data (several files) is not sharded", d->size);
    fr->dist = d;
    return DS_OK;
}

static ds_status fit_check(fit_run *fr, const ds_feed *train, const ds_feed *val)
{
    ds_net *n = fr->n;
    if (!n->loss || (!n->n_targets && !n->n_recons))
        return dsi_fail(DS_ERR_STATE, "%s: training needs a loss line that reads labels or an "
                        "input (target=INPUT)", n->path);
    ds_status st;
    if (fr->stream) {   /* shapes now, values as the reader reads them */
        dsi_stream_shape_feed(fr->stream, fr->shapes, &fr->shape_feed);
        st = dsi_net_check_shapes(n, &fr->shape_feed, &fr->data);
    } else if (!(st = ds_net_check_feed(n, train))) {
        st = dsi_feed_bind(n, train, &fr->data);
    }
    if (st || (st = dsi_require_labels(n, &fr->data, fr->data.first)))
        return st;
    if (val && ((st = ds_net_check_feed(n, val)) || (st = dsi_feed_bind(n, val, &fr->val)) ||
                (st = dsi_require_labels(n, &fr->val, fr->val.first))))
        return st;
    if (!val)
        fr->val.n = 0;
    if (fr->o->accumulate < 0)
        return dsi_fail(DS_ERR_ARG, "accumulate: %d passes per step", fr->o->accumulate);
    if ((st = dist_check(fr)))
        return st;
    if ((st = repeat_check(fr)))
        return st;
    fr->N = fr->data.n;
    fr->R = fr->N * fr->rep;
    fr->B = fr->o->batch_size > 0 ? fr->o->batch_size : 32;
    if (fr->B > fr->R)
        fr->B = fr->R;
    if (fr->B % fr->rep)
        return dsi_fail(DS_ERR_ARG, "batch size %lld is not a multiple of repeat=%lld (a "
                        "batch holds whole groups of a sample's repeats)", (long long)fr->B,
                        (long long)fr->rep);
    int k = fr->o->accumulate > 1 ? fr->o->accumulate : 1;
    fr->S = fr->B * k < fr->R ? fr->B * k : fr->R;
    fr->epochs = fr->o->epochs > 0 ? fr->o->epochs : 10;
    return DS_OK;
}

/* Bayesian layers' automatic KL weight from the data trained on: the ELBO per sample,
 * KL / N beside a mean loss; B / (N x repeat) per pass of B rows beside a sum. */
static void set_kl_weight(const fit_run *fr)
{
    bool sum = fr->n->reductions & 1 << DS_REDUCE_SUM;
    if (fr->n->kl)
        ds_graph_set_kl_weight(fr->n->g, (float)(sum ? (double)fr->B / (double)fr->R
                                                     : 1.0 / (double)fr->N));
}

/* The trainer, the buffers and the output paths. */
static ds_status fit_setup(fit_run *fr)
{
    const ds_fit_opts *o = fr->o;
    int64_t plane;
    ds_status st = augment_check(fr->n, o, &plane);
    if (st)
        return st;
    set_kl_weight(fr);
    ds_trainer_opts to = {
        .micro_batch = fr->S > fr->B ? fr->B : 0, .skip_nonfinite = o->skip_nonfinite,
        .grad_hook = o->grad_hook, .grad_ctx = o->grad_ctx,
        .batch_hook = o->augment || o->augment_shift || fr->noise ? augment_batch : NULL,
        .batch_ctx = fr,
    };
    if ((st = ds_trainer_create(fr->n, &to, &fr->tr)))
        return st;
    if (fr->dist)
        dsi_trainer_set_dist(fr->tr, fr->dist);
    fr->perm = fr->stream ? NULL : malloc((size_t)fr->R * sizeof *fr->perm);
    fr->hist = calloc((size_t)fr->epochs * HCOLS, sizeof *fr->hist);
    fr->terms = calloc((size_t)fr->epochs * DSI_MAX_TERMS, sizeof *fr->terms);
    fr->tmp = malloc((size_t)plane * sizeof *fr->tmp);
    if ((!fr->perm && !fr->stream) || !fr->hist || !fr->terms || !fr->tmp)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for training");
    if (o->out_path) {
        snprintf(fr->last, sizeof fr->last, "%s", o->out_path);
        sibling(o->out_path, ".best.safetensors", fr->best_path, sizeof fr->best_path);
        sibling(o->out_path, ".ckpt.safetensors", fr->ckpt, sizeof fr->ckpt);
    }
    fr->best = INFINITY;
    fr->mname = dsi_net_metric_name(fr->n);
    if (o->out_path && (st = make_settings(fr)))
        return st;
    if (o->resume && (st = resume(fr)))
        return st;
    return fr->dist ? dsi_dist_check_replicas(fr->dist, fr->n->m, ds_trainer_steps(fr->tr),
                                              "at the start") : DS_OK;
}

/* ---- a stream's reader: checks and preprocessing on its thread ---- */
static ds_status check_block(void *ctx, const ds_feed *block, int64_t first)
{
    return dsi_net_check_labels(ctx, block, first);
}

static ds_status prepare_sample(void *ctx, ds_feed *sample)
{
    return ds_net_preprocess_feed(ctx, sample);
}

/* Rows [first, first + b) of the stream's batch in hand into the graph's inputs and
 * targets (the trainer's gather): item k of the stream is fr->shapes[k]. */
static void gather_rows(void *ctx, ds_net *n, int64_t first, int64_t b)
{
    fit_run *fr = ctx;
    for (int j = 0; j < n->n_inputs + n->n_targets; j++) {
        bool in = j < n->n_inputs;
        const ds_tensor *t = in ? fr->data.x[j] : fr->data.y[j - n->n_inputs];
        if (!t)
            continue;
        float *dst = in ? n->inputs[j].node->data : n->targets[j - n->n_inputs].target->data;
        int item = (int)(t - fr->shapes);
        size_t per = (size_t)(t->numel / t->shape[0]);
        for (int64_t k = 0; k < b; k++)
            memcpy(dst + k * per, dsi_stream_row(fr->stream, item, first + k),
                   per * sizeof(float));
    }
}

/* The reader, from the run's first epoch to its last, in batches of an optimizer step. */
static ds_status stream_start(fit_run *fr)
{
    if (!fr->stream || fr->start >= fr->epochs)
        return DS_OK;
    bool scaled = false;
    for (int i = 0; i < fr->n->n_inputs; i++)
        scaled |= fr->n->inputs[i].scale != DS_SCALE_NONE;
    dsi_stream_hooks h = {check_block, scaled ? prepare_sample : NULL, fr->n};
    dsi_stream_set_hooks(fr->stream, &h);
    dsi_trainer_set_gather(fr->tr, gather_rows, fr);
    ds_stream_run r = {.batch = fr->S, .seed = fr->o->seed, .first_epoch = fr->start,
                       .epochs = fr->epochs - fr->start, .no_shuffle = fr->o->no_shuffle};
    return ds_stream_start(fr->stream, &r);
}

/* The stream's next batch, which must be batch bi of epoch e. */
static ds_status stream_batch(fit_run *fr, int e, int64_t bi, int64_t *b)
{
    ds_stream_batch info;
    ds_status st = dsi_stream_next_rows(fr->stream, &info);
    if (st)
        return st;
    if (info.count < 1 || info.epoch != e || info.index != bi)
        return dsi_fail(DS_ERR_STATE, "stream: batch %lld of epoch %d expected, got %lld of "
                        "epoch %d (%lld samples)", (long long)bi + 1, e + 1,
                        (long long)info.index + 1, info.epoch + 1, (long long)info.count);
    fr->ids = info.ids;
    *b = info.count;
    return DS_OK;
}

static void shuffle(int64_t *perm, int64_t N, uint64_t seed, int epoch, bool keep_order)
{
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    if (keep_order)
        return;
    ds_rng rng;
    ds_rng_seed(&rng, seed ^ dsi_mix64((uint64_t)epoch + 1));
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = (int64_t)ds_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* A failed step's NaN or Inf, named by epoch and batch (the trainer counts steps). */
static ds_status nonfinite_stop(const fit_run *fr, int e, int64_t bi, const ds_step_result *sr)
{
    float lr = ds_optim_lr(ds_trainer_optim(fr->tr));
    if (sr->nonfinite == 1)
        return dsi_fail(DS_ERR_VALUE, "the training loss became %g at epoch %d, batch %lld: "
                        "lower the learning rate (now %g), check the data, or skip such "
                        "steps (--skip-nonfinite)", sr->loss, e + 1, (long long)bi + 1, lr);
    return dsi_fail(DS_ERR_VALUE, "the gradient of '%s' became NaN or Inf at epoch %d, batch "
                    "%lld (loss %g), the first parameter in layer order to do so: lower the "
                    "learning rate (now %g), check the data, or skip such steps "
                    "(--skip-nonfinite)", sr->nonfinite_param, e + 1, (long long)bi + 1,
                    sr->loss, lr);
}

/* Running sums of an epoch: loss over the samples of steps taken, and the metric. */
typedef struct {
    double lsum, lseen, num, den, klsum;
    double terms[DSI_MAX_TERMS], tmean[DSI_MAX_TERMS];   /* the loss lines' sums, means */
} epoch_sums;

static void progress_step(fit_run *fr, int e, int64_t bi, int64_t batches, int64_t seen,
                          epoch_sums *es)
{
    for (int k = 0; k < fr->n->n_terms; k++)
        es->tmean[k] = es->terms[k] / es->lseen;
    double el = now_s() - fr->t_start;
    double done_frac = ((double)(e - fr->start) * fr->R + (double)seen) /
                       ((double)(fr->epochs - fr->start) * fr->R);
    ds_progress p = {
        .epoch = e + 1, .epochs = fr->epochs, .batch = bi + 1, .batches = batches,
        .seen = seen, .loss = es->lsum / es->lseen,
        .metric = dsi_net_metric_value(fr->n, es->num, es->den), .metric_name = fr->mname,
        .samples_per_s = fr->seen_total / fmax(el, 1e-9),
        .eta_s = el / fmax(done_frac, 1e-9) - el, .elapsed_s = el,
        .val_loss = NAN, .val_metric = NAN, .kl = fr->n->kl ? es->klsum / es->lseen : NAN,
        .n_terms = fr->n->n_terms, .term_names = fr->term_names, .terms = es->tmean,
    };
    fr->o->progress(fr->o->ctx, &p);
}

/* The optimizer steps of epoch e; the epoch's training loss and metric into hr. */
static ds_status run_epoch(fit_run *fr, int e, double *hr)
{
    if (!fr->stream) {
        shuffle(fr->perm, fr->N, fr->o->seed, e, fr->o->no_shuffle);
        for (int64_t i = fr->N - 1; fr->rep > 1 && i >= 0; i--)   /* back to front: in place */
            for (int64_t r = fr->rep - 1; r >= 0; r--)
                fr->perm[i * fr->rep + r] = fr->perm[i];
    }
    fr->epoch = e;
    epoch_sums es = {0};
    int64_t batches = (fr->R + fr->S - 1) / fr->S;
    ds_optim *opt = ds_trainer_optim(fr->tr);
    float lr = ds_optim_lr(opt);
    for (int64_t bi = 0; bi < batches; bi++) {
        int64_t i0 = bi * fr->S, b = fr->R - i0 < fr->S ? fr->R - i0 : fr->S;
        int64_t lo = 0, nb = b;   /* this rank's shard of the step */
        if (fr->dist)
            dsi_dist_shard(fr->dist, b, fr->rep, &lo, &nb);
        fr->i0 = i0 + lo;
        ds_step_result sr;
        ds_status st = fr->stream ? stream_batch(fr, e, bi, &b) : DS_OK;
        if (st)
            return st;   /* the reader's failure */
        uint64_t step0 = fr->n->g->step, passes = 0;   /* dropout masks: see dist_fit.c */
        if (fr->dist)
            fr->n->g->step += dsi_dist_pass_offset(fr->dist, b, fr->rep,
                                                   fr->S > fr->B ? fr->B : 0, &passes);
        st = fr->stream ? ds_trainer_step(fr->tr, &fr->shape_feed, NULL, b, &sr)
                        : dsi_trainer_step_part(fr->tr, fr->train, fr->perm + i0 + lo, nb, b,
                                                &sr);
        if (fr->dist)
            fr->n->g->step = step0 + passes;
        if (st)
            return sr.nonfinite ? nonfinite_stop(fr, e, bi, &sr) : st;
        if (sr.skipped) {
            fr->r.skipped_steps++;
            continue;
        }
        es.lsum += sr.loss * (double)b;
        es.lseen += (double)b;
        if (fr->n->kl)   /* kept: the value of the step's last pass, before the update */
            es.klsum += (double)fr->n->kl->data[0] * (double)b;
        for (int k = 0; k < fr->n->n_terms; k++)   /* kept too, the same way */
            es.terms[k] += (double)fr->n->terms[k]->data[0] * (double)b;
        es.num += sr.metric_sum;
        es.den += sr.metric_count;
        fr->seen_total += (double)b;
        if (fr->o->progress)
            progress_step(fr, e, bi, batches, i0 + b, &es);
    }
    ds_optim_epoch_end(opt);
    hr[0] = es.lseen > 0 ? es.lsum / es.lseen : NAN;
    hr[1] = dsi_net_metric_value(fr->n, es.num, es.den);
    hr[2] = hr[3] = NAN;
    hr[4] = lr;
    hr[6] = fr->n->kl && es.lseen > 0 ? es.klsum / es.lseen : NAN;
    for (int k = 0; k < fr->n->n_terms; k++)
        fr->terms[e * DSI_MAX_TERMS + k] = es.lseen > 0 ? es.terms[k] / es.lseen : NAN;
    return DS_OK;
}

/* The best epoch's weights, kept for the writes of the best file. */
static ds_status keep_best(fit_run *fr)
{
    if (!fr->best_set && !(fr->best_set = ds_tensor_set_create()))
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the best weights");
    return dsi_net_to_set(fr->n, fr->best_set);   /* replaces the tensors of the same names */
}

/* The net's weights (epoch run, the last) with their training metadata. */
static ds_status save_last(const fit_run *fr, int run)
{
    ds_tensor_set *s = ds_tensor_set_create();
    ds_status st = s ? dsi_net_to_set(fr->n, s) : DS_ERR_NOMEM;   /* with its message */
    if (!st)
        st = set_train_meta(fr, s, run, run);
    if (!st)
        st = ds_safetensors_save(s, fr->last);
    ds_tensor_set_free(s);
    return st;
}

/* The best epoch's weights with this write's metadata. A resumed run that has not improved
 * yet reads them back from the best file (left alone if it is gone). */
static ds_status save_best(fit_run *fr, bool improved, int run)
{
    ds_status st = DS_OK;
    if (improved)
        st = keep_best(fr);
    else if (!fr->best_set && access(fr->best_path, F_OK) != 0)
        return DS_OK;
    else if (!fr->best_set)
        st = ds_safetensors_load(fr->best_path, &fr->best_set);
    if (!st)
        st = set_train_meta(fr, fr->best_set, fr->best_epoch, run);
    return st ? st : ds_safetensors_save(fr->best_set, fr->best_path);
}

/* Last and best weights, checkpoint and log, all of epoch e (each atomic; the checkpoint
 * after the weights, so a kill between them resumes from the epoch before and redoes the
 * same epochs to the same bits). */
static ds_status write_files(fit_run *fr, int e, bool improved)
{
    const ds_fit_opts *o = fr->o;
    ds_status st = DS_OK;
    if (!fr->writer)
        return DS_OK;
    if (o->out_path && ((st = save_last(fr, e + 1)) || (st = save_best(fr, improved, e + 1)) ||
                        (st = save_checkpoint(fr, e + 1))))
        return st;
    if (o->log_csv)
        st = write_log(o->log_csv, fr->hist, e + 1, fr->mname, fr->n->kl, fr->n, fr->terms);
    fr->t_write = now_s();
    return st;
}

/* The epoch's files when due (the last epoch, or checkpoint_every seconds since the last
 * write; else a best epoch's weights wait in memory), and the curve at most every
 * DS_CURVE_SECONDS and after the last epoch. */
static ds_status save_epoch(fit_run *fr, int e, bool improved, bool last)
{
    const ds_fit_opts *o = fr->o;
    ds_status st = DS_OK;
    double t = now_s();
    if (last || t - fr->t_write >= o->checkpoint_every)
        st = write_files(fr, e, improved);
    else if (improved && o->out_path && fr->writer)
        st = keep_best(fr);
    if (!st && o->curve_png && fr->writer && (last || t - fr->t_curve >= DS_CURVE_SECONDS)) {
        st = write_curve(o->curve_png, fr->hist, e + 1, fr->mname);
        fr->t_curve = now_s();
    }
    return st;
}

static void progress_epoch(const fit_run *fr, int e, const double *hr, bool improved)
{
    double el = now_s() - fr->t_start;
    int64_t batches = (fr->R + fr->S - 1) / fr->S;
    ds_progress p = {
        .epoch = e + 1, .epochs = fr->epochs, .batch = batches, .batches = batches,
        .seen = fr->R, .loss = hr[0], .metric = hr[1], .metric_name = fr->mname,
        .samples_per_s = fr->seen_total / fmax(el, 1e-9),
        .eta_s = el / (double)(e + 1 - fr->start) * (double)(fr->epochs - e - 1),
        .elapsed_s = el, .end_of_epoch = 1, .val_loss = hr[2], .val_metric = hr[3],
        .improved = improved, .kl = hr[6], .n_terms = fr->n->n_terms,
        .term_names = fr->term_names, .terms = fr->terms + (size_t)e * DSI_MAX_TERMS,
    };
    fr->o->progress(fr->o->ctx, &p);
}

/* The ranks agree to stop when one does (their clocks differ), and compare weights. */
static ds_status dist_end_epoch(const fit_run *fr, bool *stop)
{
    ds_status st = dsi_dist_any(fr->dist, stop);
    if (!st && !fr->dist->check_every_step)
        st = dsi_dist_check_replicas(fr->dist, fr->n->m, ds_trainer_steps(fr->tr),
                                     "after an epoch");
    return st;
}

/* After epoch e's steps: validation, the best epoch, files, progress; *stop when early
 * stopping or the time limit ends the run. */
static ds_status end_epoch(fit_run *fr, int e, double *hr, double t_epoch, bool *stop)
{
    const ds_fit_opts *o = fr->o;
    ds_status st;
    if (fr->val.n && (st = dsi_net_evaluate_set(fr->n, &fr->val, fr->B, &hr[2], &hr[3])))
        return st;
    hr[5] = now_s() - t_epoch;
    double score = fr->val.n ? hr[2] : hr[0];
    bool improved = score < fr->best;
    if (improved) {
        fr->best = score;
        fr->best_epoch = e + 1;
        fr->wait = 0;
    } else {
        fr->wait++;
    }
    fr->r.final_loss = hr[0];
    if (o->patience > 0 && fr->wait >= o->patience) {
        fr->r.stopped_early = 1;
        *stop = true;
    } else if (o->max_seconds > 0 && now_s() - fr->t_start >= o->max_seconds &&
               e + 1 < fr->epochs) {
        fr->r.out_of_time = 1;
        *stop = true;
    }
    if (fr->dist && (st = dist_end_epoch(fr, stop)))
        return st;
    if ((st = save_epoch(fr, e, improved, *stop || e + 1 == fr->epochs)))
        return st;
    if (o->progress)
        progress_epoch(fr, e, hr, improved);
    return DS_OK;
}

/* A run on the feed train or, train NULL, on the stream. */
static ds_status fit(ds_net *n, const ds_feed *train, ds_stream *stream, const ds_feed *val,
                     const ds_fit_opts *o, ds_fit_result *res)
{
    ds_fit_opts def = {0};
    fit_run fr = {.n = n, .o = o ? o : &def, .train = train, .stream = stream};
    fr.r.best_val_loss = NAN;
    for (int k = 0; k < n->n_terms; k++)
        fr.term_names[k] = n->term_names[k];
    ds_status st = fit_check(&fr, train, val);
    ds_schedule *sc = &n->optim.schedule;
    int64_t t_max = sc->t_max;   /* a cosine schedule without one spans the run */
    if (!st && sc->kind == DS_SCHED_COSINE && t_max == 0)
        sc->t_max = sc->per_epoch ? fr.epochs : fr.epochs * ((fr.R + fr.S - 1) / fr.S);
    if (!st)
        st = fit_setup(&fr);
    if (!st)
        st = stream_start(&fr);
    fr.t_start = fr.t_write = fr.t_curve = now_s();
    int e = fr.start;
    bool stop = false;
    for (; !st && e < fr.epochs && !stop; e++) {
        double t_epoch = now_s();
        if (!(st = run_epoch(&fr, e, fr.hist + e * HCOLS)))
            st = end_epoch(&fr, e, fr.hist + e * HCOLS, t_epoch, &stop);
    }
    if (!st && e == fr.start && fr.start > 0)
        st = resumed_side_files(&fr);
    if (!st) {
        fr.r.epochs_run = e;
        fr.r.best_epoch = fr.best_epoch;
        fr.r.best_val_loss = fr.val.n ? fr.best : NAN;
        fr.r.seconds = now_s() - fr.t_start;
    }
    if (stream) {
        ds_stream_stop(stream);
        dsi_stream_set_hooks(stream, NULL);
    }
    ds_trainer_free(fr.tr);
    sc->t_max = t_max;
    ds_graph_set_mode(n->g, DS_MODE_EVAL);
    free(fr.perm);
    free(fr.hist);
    free(fr.terms);
    free(fr.tmp);
    free(fr.settings);
    ds_tensor_set_free(fr.best_set);
    if (res)
        *res = fr.r;
    return st;
}

ds_status ds_net_fit_feed(ds_net *n, const ds_feed *train, const ds_feed *val,
                          const ds_fit_opts *o, ds_fit_result *res)
{
    return fit(n, train, NULL, val, o, res);
}

ds_status ds_net_fit_stream(ds_net *n, ds_stream *train, const ds_feed *val,
                            const ds_fit_opts *o, ds_fit_result *res)
{
    if (!train) {
        if (res)
            *res = (ds_fit_result){.best_val_loss = NAN};
        return dsi_fail(DS_ERR_ARG, "ds_net_fit_stream: the stream is NULL");
    }
    return fit(n, NULL, train, val, o, res);
}

ds_status ds_net_fit(ds_net *n, const ds_tensor *x, const ds_tensor *y, const ds_tensor *xv,
                     const ds_tensor *yv, const ds_fit_opts *o, ds_fit_result *res)
{
    ds_feed f, fv;
    dsi_feed_single(&f, x, "training data", y, "training labels");
    dsi_feed_single(&fv, xv, "validation data", yv, "validation labels");
    return ds_net_fit_feed(n, &f, xv ? &fv : NULL, o, res);
}

/* For gan.c: the differences between a checkpoint's settings and a run's, and the hash of
 * its data, as train's resume reports them. */
int dsi_settings_diff(const char *then, const char *now, char *msg, size_t cap)
{
    int n = diff_settings(then, now, true, msg, cap);
    return n + diff_settings(now, then, false, msg, cap);
}

uint64_t dsi_tensor_hash(const ds_tensor *t) { return tensor_hash(t); }
