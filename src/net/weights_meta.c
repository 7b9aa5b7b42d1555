/* weights_meta.c - training metadata of weights files (train.* keys): written by fit, read back. */
#include "net.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFIX "train."

/* ---- writing ---- */
static ds_status put_int(ds_tensor_set *s, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return ds_tensor_set_meta_set(s, key, buf);
}

/* A finite value as "%.9g"; a NaN or infinity leaves the key out (no such value). */
static ds_status put_num(ds_tensor_set *s, const char *key, double v)
{
    char buf[40];
    if (!isfinite(v))
        return DS_OK;
    snprintf(buf, sizeof buf, "%.9g", v);
    return ds_tensor_set_meta_set(s, key, buf);
}

/* "2026-12-03T10:40:12Z", now. */
static void utc_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    if (t == (time_t)-1 || !gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "unknown");
}

/* Sets every train.* key of m on s (replacing the values of an earlier write). */
ds_status dsi_weights_meta_set(ds_tensor_set *s, const dsi_train_meta *m)
{
    char date[40];
    utc_now(date, sizeof date);
    ds_status st = put_int(s, PREFIX "epoch", m->epoch);
    if (!st)
        st = put_int(s, PREFIX "epochs_run", m->epochs_run);
    if (!st)
        st = put_int(s, PREFIX "epochs", m->epochs);
    if (!st)
        st = put_int(s, PREFIX "best_epoch", m->best_epoch);
    if (!st)
        st = put_num(s, PREFIX "loss", m->loss);
    if (!st && m->metric_name && isfinite(m->metric) &&
        !(st = ds_tensor_set_meta_set(s, PREFIX "metric_name", m->metric_name)))
        st = put_num(s, PREFIX "metric", m->metric);
    if (!st)
        st = put_num(s, PREFIX "val_loss", m->val_loss);
    if (!st)
        st = put_num(s, PREFIX "val_metric", m->val_metric);
    if (!st)
        st = ds_tensor_set_meta_set(s, PREFIX "date", date);
    if (!st)
        st = ds_tensor_set_meta_set(s, PREFIX "version", DS_VERSION);
    if (!st && m->command)
        st = ds_tensor_set_meta_set(s, PREFIX "command", m->command);
    return st;
}

/* ---- reading ---- */
/* The value of key, NULL if absent or empty. */
static const char *get(const ds_tensor_set *s, const char *key)
{
    const char *v = ds_tensor_set_meta_get(s, key);
    return v && v[0] ? v : NULL;
}

static void damaged(ds_weights_info *w, const char *key, const char *v)
{
    if (!w->damaged) {
        w->damaged = key;
        w->damaged_value = v;
    }
}

/* An epoch count: a whole number in [lo, 1e9]; else 0 and the key reported. */
static int get_count(const ds_tensor_set *s, const char *key, int lo, ds_weights_info *w)
{
    const char *v = get(s, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > 1000000000L) {
        damaged(w, key, v);
        return 0;
    }
    return (int)x;
}

/* A loss or metric: a finite number; else NAN and the key reported. */
static double get_num(const ds_tensor_set *s, const char *key, ds_weights_info *w)
{
    const char *v = get(s, key);
    if (!v)
        return NAN;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x)) {
        damaged(w, key, v);
        return NAN;
    }
    return x;
}

void ds_weights_info_get(const ds_tensor_set *s, ds_weights_info *w)
{
    *w = (ds_weights_info){.loss = NAN, .metric = NAN, .val_loss = NAN, .val_metric = NAN};
    if (!s)
        return;
    for (int i = 0; i < dsi_tensor_set_meta_count(s) && !w->trained; i++)
        w->trained = !strncmp(dsi_tensor_set_meta_key(s, i), PREFIX, strlen(PREFIX));
    if (!w->trained)
        return;
    w->epoch = get_count(s, PREFIX "epoch", 1, w);
    w->epochs_run = get_count(s, PREFIX "epochs_run", 1, w);
    w->epochs = get_count(s, PREFIX "epochs", 1, w);
    w->best_epoch = get_count(s, PREFIX "best_epoch", 1, w);
    if (w->epoch && w->epochs_run && w->epoch > w->epochs_run) {
        damaged(w, PREFIX "epoch", get(s, PREFIX "epoch"));   /* beyond the epochs run */
        w->epoch = 0;
    }
    w->loss = get_num(s, PREFIX "loss", w);
    w->metric = get_num(s, PREFIX "metric", w);
    w->val_loss = get_num(s, PREFIX "val_loss", w);
    w->val_metric = get_num(s, PREFIX "val_metric", w);
    w->metric_name = get(s, PREFIX "metric_name");
    w->date = get(s, PREFIX "date");
    w->version = get(s, PREFIX "version");
    w->command = get(s, PREFIX "command");
}

/* The train.* metadata of s in a set of their own (no tensors), for the net that loads s. */
ds_status dsi_weights_meta_copy(const ds_tensor_set *s, ds_tensor_set **out)
{
    *out = ds_tensor_set_create();
    ds_status st = *out ? DS_OK : DS_ERR_NOMEM;   /* with its message */
    for (int i = 0; !st && i < dsi_tensor_set_meta_count(s); i++) {
        const char *k = dsi_tensor_set_meta_key(s, i);
        if (!strncmp(k, PREFIX, strlen(PREFIX)))
            st = ds_tensor_set_meta_set(*out, k, ds_tensor_set_meta_get(s, k));
    }
    if (st) {
        ds_tensor_set_free(*out);
        *out = NULL;
    }
    return st;
}

void ds_net_weights_info(const ds_net *n, ds_weights_info *w)
{
    ds_weights_info_get(n ? n->wmeta : NULL, w);
}

/* Whether a word reads back from a shell as it is. */
static int plain_word(const char *w)
{
    if (!*w)
        return 0;
    for (; *w; w++)
        if (!((*w >= 'a' && *w <= 'z') || (*w >= 'A' && *w <= 'Z') || (*w >= '0' && *w <= '9') ||
              strchr("-_./:=,+@%", *w)))
            return 0;
    return 1;
}

char *ds_command_line(int argc, const char *const *argv)
{
    dsi_buf b = {0};
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i] ? argv[i] : "";
        if (i)
            dsi_buf_puts(&b, " ");
        if (plain_word(w)) {
            dsi_buf_puts(&b, w);
            continue;
        }
        dsi_buf_puts(&b, "'");
        for (; *w; w++)
            if (*w == '\'')
                dsi_buf_puts(&b, "'\\''");   /* close, an escaped quote, reopen */
            else
                dsi_buf_put(&b, w, 1);
        dsi_buf_puts(&b, "'");
    }
    dsi_buf_puts(&b, "");   /* "" for no words */
    if (b.oom) {
        free(b.p);
        dsi_fail(DS_ERR_NOMEM, "out of memory for a command line of %d words", argc);
        return NULL;
    }
    return b.p;
}
