/* gan_files.c - the files of a GAN run: both weights files, the checkpoint (both nets'
 * weights and optimizer states, loop state, history, settings) and its resume, the CSV log
 * and the per-epoch grid of samples. */
#include "gan.h"
#include "../io/io.h"

#include <errno.h>
#include <math.h>
#include <unistd.h>

static const char *const role[2] = {"generator", "discriminator"};

/* ---- settings ---- */
static void optim_line(dsi_buf *b, const char *who, const ds_optim_opts *p)
{
    const ds_schedule *sc = &p->schedule;
    dsi_buf_printf(b, "%s optimizer: %s lr %.9g momentum %.9g nesterov %d weight decay %.9g "
                   "betas %.9g %.9g eps %.9g alpha %.9g amsgrad %d clip %.9g schedule %d %lld "
                   "%.9g %.9g %lld %.9g %d\n", who, ds_optim_name(p->kind), (double)p->lr,
                   (double)p->momentum, p->nesterov, (double)p->weight_decay, (double)p->beta1,
                   (double)p->beta2, (double)p->eps, (double)p->alpha, p->amsgrad,
                   (double)p->clip_norm, (int)sc->kind, (long long)sc->step_size,
                   (double)sc->gamma, (double)sc->decay, (long long)sc->t_max,
                   (double)sc->min_lr, sc->per_epoch);
}

static void net_line(dsi_buf *b, const char *who, const ds_net *n)
{
    const ds_node *in = n->inputs[0].node, *out = n->outputs[0].node;
    /* per sample: the batch size is a setting of its own */
    dsi_buf_printf(b, "%s: %s -> ", who, dsi_shape_str(in->ndim - 1, in->shape + 1));
    dsi_buf_printf(b, "%s, %lld parameters\n", dsi_shape_str(out->ndim - 1, out->shape + 1),
                   (long long)ds_model_numel(n->m, 0));
}

static ds_status make_settings(gan_run *r)
{
    const ds_gan_opts *o = r->o;
    dsi_buf b = {0};
    if (o->settings)
        dsi_buf_printf(&b, "%s%s", o->settings,
                       *o->settings && o->settings[strlen(o->settings) - 1] != '\n' ? "\n" : "");
    dsi_buf_printf(&b, "seed: %llu\nbatch size: %lld\nd steps: %lld\nlabel smoothing: %.17g\n"
                   "latent: %lld\n", (unsigned long long)o->seed, (long long)r->B,
                   (long long)r->K, o->label_smoothing, (long long)r->latent);
    net_line(&b, role[0], r->g);
    net_line(&b, role[1], r->d);
    optim_line(&b, role[0], &r->g->optim);
    optim_line(&b, role[1], &r->d->optim);
    dsi_buf_printf(&b, "data: %s hash %016llx\n", dsi_shape_str(r->x->ndim, r->x->shape),
                   (unsigned long long)dsi_tensor_hash(r->x));
    if (b.oom) {
        free(b.p);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the run's settings");
    }
    r->settings = b.p;
    return DS_OK;
}

ds_status dsi_gan_files_setup(gan_run *r)
{
    const char *dir = r->o->out_dir;
    snprintf(r->gpath, sizeof r->gpath, "%s/generator.safetensors", dir);
    snprintf(r->dpath, sizeof r->dpath, "%s/discriminator.safetensors", dir);
    snprintf(r->ckpt, sizeof r->ckpt, "%s/gan.ckpt.safetensors", dir);
    snprintf(r->log, sizeof r->log, "%s/log.csv", dir);
    if (access(dir, W_OK) != 0)
        return dsi_fail(DS_ERR_IO, "GAN: output folder '%s': %s", dir, strerror(errno));
    return make_settings(r);
}

/* ---- weights and checkpoint ---- */
/* Net i's weights with their training metadata after `epochs` epochs. */
static ds_status save_weights(const gan_run *r, int i, int epochs)
{
    const ds_net *n = i ? r->d : r->g;
    const double *h = r->hist + (size_t)(epochs - 1) * GAN_HCOLS;
    dsi_train_meta m = {
        .epoch = epochs, .epochs_run = epochs, .epochs = r->epochs,
        .loss = h[i ? GAN_D_LOSS : GAN_G_LOSS], .metric = NAN, .val_loss = NAN,
        .val_metric = NAN, .command = r->o->command,
    };
    ds_tensor_set *s = ds_tensor_set_create();
    ds_status st = s ? dsi_net_to_set(n, s) : DS_ERR_NOMEM;
    if (!st)
        st = dsi_weights_meta_set(s, &m);
    if (!st)
        st = ds_safetensors_save(s, i ? r->dpath : r->gpath);
    ds_tensor_set_free(s);
    return st;
}

/* Every tensor and metadata key of src into dst, named "<prefix>.<name>". */
static ds_status add_prefixed(ds_tensor_set *dst, const ds_tensor_set *src, const char *prefix)
{
    char key[512];
    ds_status st = DS_OK;
    for (int i = 0; !st && i < ds_tensor_set_count(src); i++) {
        const ds_tensor *t = ds_tensor_set_at(src, i);
        snprintf(key, sizeof key, "%s.%s", prefix, ds_tensor_set_name(src, i));
        st = ds_tensor_set_add(dst, key, t->ndim, t->shape, t->data);
    }
    for (int i = 0; !st && i < dsi_tensor_set_meta_count(src); i++) {
        const char *k = dsi_tensor_set_meta_key(src, i);
        snprintf(key, sizeof key, "%s.%s", prefix, k);
        st = ds_tensor_set_meta_set(dst, key, ds_tensor_set_meta_get(src, k));
    }
    return st;
}

/* The entries of src named "<prefix>.<name>", as <name>, in a new set. */
static ds_status take_prefixed(const ds_tensor_set *src, const char *prefix, ds_tensor_set **out)
{
    size_t pl = strlen(prefix);
    ds_tensor_set *s = ds_tensor_set_create();
    ds_status st = s ? DS_OK : DS_ERR_NOMEM;
    for (int i = 0; !st && i < ds_tensor_set_count(src); i++) {
        const char *name = ds_tensor_set_name(src, i);
        const ds_tensor *t = ds_tensor_set_at(src, i);
        if (!strncmp(name, prefix, pl) && name[pl] == '.')
            st = ds_tensor_set_add(s, name + pl + 1, t->ndim, t->shape, t->data);
    }
    for (int i = 0; !st && i < dsi_tensor_set_meta_count(src); i++) {
        const char *k = dsi_tensor_set_meta_key(src, i);
        if (!strncmp(k, prefix, pl) && k[pl] == '.')
            st = ds_tensor_set_meta_set(s, k + pl + 1, ds_tensor_set_meta_get(src, k));
    }
    if (st) {
        ds_tensor_set_free(s);
        return st;
    }
    *out = s;
    return DS_OK;
}

/* Net i's weights and optimizer state into the checkpoint, under its role's prefix. */
static ds_status ckpt_net(const gan_run *r, int i, ds_tensor_set *ck)
{
    ds_tensor_set *s = ds_tensor_set_create();
    ds_status st = s ? dsi_net_to_set(i ? r->d : r->g, s) : DS_ERR_NOMEM;
    char key[64], buf[32];
    if (!st)
        st = ds_optim_state_save(i ? r->od : r->og, s);
    if (!st)
        st = add_prefixed(ck, s, role[i]);
    snprintf(key, sizeof key, "gan.%s_graph_step", role[i]);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)(i ? r->d : r->g)->g->step);
    if (!st)
        st = ds_tensor_set_meta_set(ck, key, buf);
    ds_tensor_set_free(s);
    return st;
}

/* The history's doubles as text that reads back to the same bits ("%.17g"). */
static ds_status history_meta(const gan_run *r, ds_tensor_set *ck, int epochs)
{
    dsi_buf b = {0};
    for (int64_t i = 0; i < (int64_t)epochs * GAN_HCOLS; i++)
        dsi_buf_printf(&b, "%s%.17g", i ? " " : "", r->hist[i]);
    ds_status st = b.oom ? dsi_fail(DS_ERR_NOMEM, "%s: out of memory for the history", r->ckpt)
                         : ds_tensor_set_meta_set(ck, "gan.history", b.p ? b.p : "");
    free(b.p);
    return st;
}

static ds_status save_checkpoint(const gan_run *r, int epochs)
{
    ds_tensor_set *ck = ds_tensor_set_create();
    ds_status st = ck ? DS_OK : DS_ERR_NOMEM;
    char buf[32];
    snprintf(buf, sizeof buf, "%d", epochs);
    for (int i = 0; i < 2 && !st; i++)
        st = ckpt_net(r, i, ck);
    if (!st)
        st = ds_tensor_set_meta_set(ck, "gan.epoch", buf);
    if (!st)
        st = ds_tensor_set_meta_set(ck, "gan.settings", r->settings);
    if (!st)
        st = history_meta(r, ck, epochs);
    if (!st)
        st = ds_safetensors_save(ck, r->ckpt);
    ds_tensor_set_free(ck);
    return st;
}

ds_status dsi_gan_write_log(const gan_run *r, int epochs)
{
    dsi_wfile w;
    ds_status st = dsi_wfile_open(&w, r->log);
    if (st)
        return st;
    fprintf(w.fp, "epoch,d_loss,g_loss,d_real,d_fake,seconds\n");
    for (int e = 0; e < epochs; e++) {
        const double *h = r->hist + (size_t)e * GAN_HCOLS;
        fprintf(w.fp, "%d,%.9g,%.9g,%.9g,%.9g,%.3f\n", e + 1, h[GAN_D_LOSS], h[GAN_G_LOSS],
                h[GAN_D_REAL], h[GAN_D_FAKE], h[GAN_SECONDS]);
    }
    return dsi_wfile_commit(&w);
}

/* The grid of G(z) for the run's fixed z (a stream of its own, the same every epoch). */
static ds_status write_grid(const gan_run *r, int epochs)
{
    int rows = r->o->grid_rows, cols = r->o->grid_cols;
    char path[4200], title[64];
    snprintf(path, sizeof path, "%s/samples_%04d.png", r->o->out_dir, epochs);
    snprintf(title, sizeof title, "epoch %d", epochs);
    ds_tensor *t = NULL;
    ds_status st = ds_gan_sample(r->g, (int64_t)rows * cols, r->o->seed ^ 0x67726964ULL, &t);
    if (!st)
        st = ds_gan_grid_png(t, rows, cols, title, path);
    ds_tensor_free(t);
    return st;
}

/* The weights (each atomic), then the checkpoint: a kill between them resumes from the
 * epoch before and redoes the same epochs to the same bits; then the log and the grid. */
ds_status dsi_gan_write(gan_run *r, int epochs)
{
    ds_status st = save_weights(r, 0, epochs);
    if (!st)
        st = save_weights(r, 1, epochs);
    if (!st)
        st = save_checkpoint(r, epochs);
    if (!st)
        st = dsi_gan_write_log(r, epochs);
    if (!st && r->o->grid_rows > 0)
        st = write_grid(r, epochs);
    return st;
}

/* ---- resume ---- */
static ds_status check_settings(const gan_run *r, const char *then)
{
    if (!then)
        return dsi_fail(DS_ERR_FORMAT, "%s: not a deepsky GAN checkpoint (no settings)", r->ckpt);
    char msg[900] = "";
    int n = dsi_settings_diff(then, r->settings, msg, sizeof msg);
    if (!n)
        return DS_OK;
    return dsi_fail(DS_ERR_ARG, "%s: the checkpoint was made with other settings (%d): %s; resume "
                    "with the same command and data, or start afresh", r->ckpt, n, msg);
}

static ds_status read_history(gan_run *r, const char *text, int epochs)
{
    const char *p = text ? text : "";
    for (int64_t i = 0; i < (int64_t)epochs * GAN_HCOLS; i++) {
        char *end;
        r->hist[i] = strtod(p, &end);
        if (end == p)
            return dsi_fail(DS_ERR_FORMAT, "%s: the history is damaged or short (value %lld)",
                            r->ckpt, (long long)i + 1);
        p = end;
    }
    return DS_OK;
}

/* Net i's weights, optimizer state and graph step from the checkpoint. */
static ds_status load_net(gan_run *r, int i, const ds_tensor_set *ck)
{
    ds_net *n = i ? r->d : r->g;
    char key[64];
    snprintf(key, sizeof key, "gan.%s_graph_step", role[i]);
    const char *gs = ds_tensor_set_meta_get(ck, key);
    if (!gs)
        return dsi_fail(DS_ERR_FORMAT, "%s: not a deepsky GAN checkpoint (no %s)", r->ckpt, key);
    ds_tensor_set *s = NULL;
    ds_status st = take_prefixed(ck, role[i], &s);
    if (!st)
        st = dsi_net_from_set(n, s, r->ckpt);
    if (!st)
        st = ds_optim_state_load(i ? r->od : r->og, s);
    if (!st)
        n->g->step = strtoull(gs, NULL, 10);
    ds_tensor_set_free(s);
    return st;
}

ds_status dsi_gan_resume(gan_run *r)
{
    if (access(r->ckpt, F_OK) != 0)
        return dsi_fail(DS_ERR_ARG, "%s: no checkpoint to resume from: give the output folder "
                        "of the interrupted run, or start afresh", r->ckpt);
    ds_tensor_set *ck = NULL;
    ds_status st = ds_safetensors_load(r->ckpt, &ck);
    const char *ep = st ? NULL : ds_tensor_set_meta_get(ck, "gan.epoch");
    char *end = NULL;
    long epoch = ep ? strtol(ep, &end, 10) : -1;
    if (!st && (!ep || *end || epoch < 0 || epoch > 1000000000L))
        st = dsi_fail(DS_ERR_FORMAT, "%s: not a deepsky GAN checkpoint (epoch '%s')", r->ckpt,
                      ep ? ep : "missing");
    if (!st)
        st = check_settings(r, ds_tensor_set_meta_get(ck, "gan.settings"));
    if (!st && epoch > r->epochs)
        st = dsi_fail(DS_ERR_ARG, "%s: the checkpoint is at epoch %ld, beyond --epochs %d",
                      r->ckpt, epoch, r->epochs);
    for (int i = 0; i < 2 && !st; i++)
        st = load_net(r, i, ck);
    if (!st)
        st = read_history(r, ds_tensor_set_meta_get(ck, "gan.history"), (int)epoch);
    if (!st)
        r->start = r->r.resumed_from = (int)epoch;
    ds_tensor_set_free(ck);
    return st;
}

/* ---- the figure ---- */
ds_status ds_gan_grid_png(const ds_tensor *x, int rows, int cols, const char *title,
                          const char *path)
{
    if (!x || !path || rows < 1 || cols < 1 || (x->ndim != 3 && x->ndim != 4) ||
        x->shape[0] < (int64_t)rows * cols)
        return dsi_fail(DS_ERR_ARG, "sample grid %s: %d x %d panels need images [N, C, H, W] "
                        "or [N, H, W] with N >= %d; got %s", path ? path : "(no path)", rows,
                        cols, rows * cols, x ? dsi_shape_str(x->ndim, x->shape) : "none");
    int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1], per = x->numel / x->shape[0];
    int64_t n = (int64_t)rows * cols;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < h * w; i++) {
            float v = x->data[k * per + i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    if (!(hi > lo))
        hi = lo + 1;   /* a flat grid: one grey */
    int side = w > h ? (int)(96 * w / h) : 96;
    ds_figure *f = ds_figure_create(rows, cols, cols * side + 20, rows * 96 + 40);
    if (!f)
        return dsi_last_status();
    ds_status st = title ? ds_figure_title(f, title) : DS_OK;
    for (int64_t k = 0; k < n && !st; k++)
        st = ds_axes_image(ds_figure_axes(f, (int)k), h, w, x->data + k * per, lo, hi, 0);
    if (!st)
        st = ds_figure_save_png(f, path);
    ds_figure_free(f);
    return st;
}
