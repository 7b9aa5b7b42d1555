/* feed.c - named data for a net: binding a ds_feed to the net's inputs and labelled losses,
 * checking it (names, sample counts, shapes, values), and gathering batches from it. */
#include "net.h"

#include <math.h>

int dsi_net_find_input(const ds_net *n, const char *name)
{
    for (int i = 0; i < n->n_inputs; i++)
        if (!strcmp(n->inputs[i].name, name))
            return i;
    return -1;
}

int dsi_net_find_target(const ds_net *n, const char *name)
{
    for (int i = 0; i < n->n_targets; i++)
        if (!strcmp(n->targets[i].name, name))
            return i;
    return -1;
}

/* "img, meta" */
static const char *input_list(const ds_net *n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < n->n_inputs; i++)
        dsi_snprintf_cat(buf, cap, "%s%s", i ? ", " : "", n->inputs[i].name);
    return buf;
}

static const char *target_list(const ds_net *n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < n->n_targets; i++)
        dsi_snprintf_cat(buf, cap, "%s%s", i ? ", " : "", n->targets[i].name);
    return buf;
}

/* The index of the input (labels: target) a feed entry is for, or a failure. */
static ds_status entry_index(const ds_net *n, const ds_feed_item *e, const char *src,
                             bool labels, int *out)
{
    char list[512];
    int count = labels ? n->n_targets : n->n_inputs;
    const char *what = labels ? "loss that reads labels" : "input";
    if (labels && !count)
        return dsi_fail(DS_ERR_ARG, "%s: the model has no loss that reads labels", src);
    if (labels)
        target_list(n, list, sizeof list);
    else
        input_list(n, list, sizeof list);
    if (!e->name) {
        if (count > 1)
            return dsi_fail(DS_ERR_ARG, "%s: the model has %d %s (%s): name the one this "
                            "data is for", src, count,
                            labels ? "losses that read labels" : "inputs", list);
        *out = 0;
        return DS_OK;
    }
    *out = labels ? dsi_net_find_target(n, e->name) : dsi_net_find_input(n, e->name);
    if (*out < 0)
        return dsi_fail(DS_ERR_ARG, "%s: the model has no %s named '%s' (%s: %s)", src, what,
                        e->name, labels ? "its losses that read labels" : "its inputs", list);
    return DS_OK;
}

/* Sample counts must agree: the first tensor bound sets the count. */
static ds_status check_count(dsi_bound *b, const ds_tensor *t, const char *src, bool labels)
{
    int64_t have = t->ndim ? t->shape[0] : 0;
    if (b->n < 0) {
        if (have < 1)
            return dsi_fail(DS_ERR_SHAPE, "%s: no samples", src);
        b->n = have;
        b->first = src;
        return DS_OK;
    }
    if (have == b->n)
        return DS_OK;
    if (labels)
        return dsi_fail(DS_ERR_SHAPE, "%s: %lld %s for %lld %s in %s", src, (long long)have,
                        dsi_plural(have, "label", "labels"), (long long)b->n,
                        dsi_plural(b->n, "sample", "samples"), b->first);
    return dsi_fail(DS_ERR_SHAPE, "%s has %lld %s but %s has %lld", b->first, (long long)b->n,
                    dsi_plural(b->n, "sample", "samples"), src, (long long)have);
}

static ds_status bind_list(const ds_net *n, const ds_feed_item *list, bool labels, dsi_bound *b)
{
    for (int k = 0; k < DS_FEED_MAX && list[k].data; k++) {
        const ds_feed_item *e = &list[k];
        const char *src = e->source ? e->source : e->name ? e->name : labels ? "labels" : "data";
        int i;
        ds_status st = entry_index(n, e, src, labels, &i);
        if (st)
            return st;
        const char **names = labels ? b->yname : b->xname;
        if (names[i])
            return dsi_fail(DS_ERR_ARG, "%s and %s: both are the data of %s '%s'", names[i], src,
                            labels ? "the labels of" : "the input",
                            labels ? n->targets[i].name : n->inputs[i].name);
        if ((st = check_count(b, e->data, src, labels)))
            return st;
        names[i] = src;
        if (labels) {
            b->y[i] = e->data;
            b->n_labels++;
        } else {
            b->x[i] = e->data;
        }
    }
    return DS_OK;
}

ds_status dsi_feed_bind(const ds_net *n, const ds_feed *f, dsi_bound *b)
{
    memset(b, 0, sizeof *b);
    b->n = -1;
    ds_status st = bind_list(n, f->inputs, false, b);
    if (!st)
        st = bind_list(n, f->labels, true, b);
    if (st)
        return st;
    for (int i = 0; i < n->n_inputs; i++)
        if (!b->x[i] && !dsi_input_loss_only(n, i)) {   /* a denoiser's clean: optional */
            char list[512];
            return dsi_fail(DS_ERR_ARG, "the model's input '%s' is not fed: no data names it "
                            "(the model's inputs: %s)", n->inputs[i].name,
                            input_list(n, list, sizeof list));
        }
    return DS_OK;
}

ds_status dsi_require_labels(const ds_net *n, const dsi_bound *d, const char *what)
{
    for (int i = 0; i < n->n_targets; i++)
        if (!d->y[i])
            return dsi_fail(DS_ERR_ARG, "%s: no labels for the loss '%s'%s", what,
                            n->targets[i].name, n->n_targets > 1 ? " (every loss that reads "
                            "labels needs them)" : "");
    for (int i = 0; i < n->n_recons; i++)
        if (!d->x[n->recons[i].input])
            return dsi_fail(DS_ERR_ARG, "%s: no data for the input '%s', the target of the loss "
                            "'%s'", what, n->inputs[n->recons[i].input].name, n->recons[i].name);
    return DS_OK;
}

void dsi_feed_single(ds_feed *f, const ds_tensor *x, const char *xname, const ds_tensor *y,
                     const char *yname)
{
    memset(f, 0, sizeof *f);
    /* the feed's tensors are read-only for everything but ds_net_preprocess_feed */
    f->inputs[0] = (ds_feed_item){.data = (ds_tensor *)x, .source = xname};
    f->labels[0] = (ds_feed_item){.data = (ds_tensor *)y, .source = yname};
}

/* Copies rows [i0, i0+b) of t (or rows idx[i0..]) into dst. */
void dsi_gather(const ds_tensor *t, const int64_t *idx, int64_t i0, int64_t b, float *dst)
{
    int64_t f = t->numel / t->shape[0];
#pragma omp parallel for schedule(static) if (b * f > DS_PAR_MIN)
    for (int64_t k = 0; k < b; k++) {
        int64_t r = idx ? idx[i0 + k] : i0 + k;
        memcpy(dst + k * f, t->data + r * f, (size_t)f * sizeof(float));
    }
}

void dsi_bound_gather(const ds_net *n, const dsi_bound *d, const int64_t *idx, int64_t i0,
                      int64_t b, bool labels)
{
    for (int i = 0; i < n->n_inputs; i++)
        if (d->x[i])
            dsi_gather(d->x[i], idx, i0, b, n->inputs[i].node->data);
        else   /* an input only a loss reads, not fed (prediction) */
            memset(n->inputs[i].node->data, 0, (size_t)n->inputs[i].node->numel * sizeof(float));
    for (int i = 0; labels && i < n->n_targets; i++)
        if (d->y[i])
            dsi_gather(d->y[i], idx, i0, b, n->targets[i].target->data);
}

/* ---- checks of the data themselves ---- */
static int64_t per_sample(const ds_tensor *t)
{
    return t->ndim && t->shape[0] ? t->numel / t->shape[0] : 0;
}

static ds_status check_input_shape(const ds_node *in, const ds_tensor *x, const char *xname)
{
    bool ok = x->ndim == in->ndim && x->ndim >= 1;
    for (int i = 1; ok && i < in->ndim; i++)
        ok = x->shape[i] == in->shape[i];
    if (ok)
        return DS_OK;
    int64_t want[DS_MAX_DIMS];
    memcpy(want, in->shape, sizeof want);
    return dsi_fail(DS_ERR_SHAPE, "%s: data of shape %s does not fit the model's input '%s', "
                    "which takes samples of shape %s, i.e. [N, %s",
                    xname, dsi_shape_str(x->ndim, x->shape), ds_node_layer_name(in),
                    dsi_shape_str(in->ndim - 1, want + 1),
                    dsi_shape_str(in->ndim - 1, want + 1) + 1);
}

/* Class indices in [0, classes), or values in [0, 1] for cross-entropies; y holds samples
 * first.. of its source, of want values each. */
static ds_status check_label_values(const dsi_net_target *t, const ds_tensor *y,
                                    const char *yname, int64_t want, int64_t first)
{
    bool index = t->kind == DSI_LOSS_CCE && t->labels == DS_LABELS_INDEX;
    for (int64_t i = 0; index && i < y->numel; i++) {
        float v = y->data[i];
        if (v < 0 || v >= (float)t->classes || v != floorf(v))
            return dsi_fail(DS_ERR_VALUE, "%s: label %g of sample %lld is not a class index "
                            "in [0, %lld)", yname, v, (long long)(first + i / want),
                            (long long)t->classes);
    }
    if (index || (t->kind != DSI_LOSS_BCE && t->kind != DSI_LOSS_CCE))
        return DS_OK;
    for (int64_t i = 0; i < y->numel; i++)
        if (y->data[i] < 0 || y->data[i] > 1)
            return dsi_fail(DS_ERR_VALUE, "%s: label %g of sample %lld is outside [0, 1]",
                            yname, y->data[i], (long long)(first + i / want));
    return DS_OK;
}

/* Values per sample of the target's labels. */
static int64_t target_values(const dsi_net_target *t)
{
    const ds_node *tn = t->target;
    return tn->numel / tn->shape[0];
}

static ds_status check_labels_shape(const dsi_net_target *t, const ds_tensor *y,
                                    const char *yname)
{
    const ds_node *tn = t->target;
    int64_t want = target_values(t);
    if (per_sample(y) == want)
        return DS_OK;
    const char *hint = "";
    if (t->kind == DSI_LOSS_CCE && t->labels == DS_LABELS_INDEX && per_sample(y) == t->classes)
        hint = " (these look one-hot: the model expects class indices)";
    else if (t->kind == DSI_LOSS_CCE && t->labels == DS_LABELS_DENSE && per_sample(y) == 1)
        hint = " (these look like class indices: the model expects one-hot rows)";
    return dsi_fail(DS_ERR_SHAPE, "%s: labels of shape %s do not fit the model's output, "
                    "which needs %lld value%s per sample (target shape %s)%s", yname,
                    dsi_shape_str(y->ndim, y->shape), (long long)want, want == 1 ? "" : "s",
                    dsi_shape_str(tn->ndim, tn->shape), hint);
}

ds_status dsi_net_check_shapes(const ds_net *n, const ds_feed *f, dsi_bound *d)
{
    ds_status st = dsi_feed_bind(n, f, d);
    for (int i = 0; !st && i < n->n_inputs; i++)
        if (d->x[i])
            st = check_input_shape(n->inputs[i].node, d->x[i], d->xname[i]);
    for (int i = 0; !st && i < n->n_targets; i++)
        if (d->y[i])
            st = check_labels_shape(&n->targets[i], d->y[i], d->yname[i]);
    return st;
}

ds_status dsi_net_check_labels(const ds_net *n, const ds_feed *f, int64_t first)
{
    dsi_bound d;
    ds_status st = dsi_feed_bind(n, f, &d);
    for (int i = 0; !st && i < n->n_targets; i++)
        if (d.y[i] && per_sample(d.y[i]))
            st = check_label_values(&n->targets[i], d.y[i], d.yname[i], per_sample(d.y[i]),
                                    first);
    return st;
}

ds_status ds_net_check_feed(const ds_net *n, const ds_feed *f)
{
    dsi_bound d;
    ds_status st = dsi_feed_bind(n, f, &d);
    for (int i = 0; !st && i < n->n_inputs; i++)
        if (d.x[i] && !(st = check_input_shape(n->inputs[i].node, d.x[i], d.xname[i])))
            st = ds_tensor_check_finite(d.x[i], d.xname[i]);
    for (int i = 0; !st && i < n->n_targets; i++)
        if (d.y[i] && !(st = check_labels_shape(&n->targets[i], d.y[i], d.yname[i])) &&
            !(st = ds_tensor_check_finite(d.y[i], d.yname[i])))
            st = check_label_values(&n->targets[i], d.y[i], d.yname[i],
                                    target_values(&n->targets[i]), 0);
    return st;
}

ds_status ds_net_check_data(const ds_net *n, const ds_tensor *x, const char *xname,
                            const ds_tensor *y, const char *yname)
{
    ds_feed f;
    dsi_feed_single(&f, x, xname, y, yname);
    return ds_net_check_feed(n, &f);
}
