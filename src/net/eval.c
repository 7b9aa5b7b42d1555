/* eval.c - evaluation: loss, classification metrics (accuracy, per-class precision and
 * recall, confusion matrix, AUROC, TPR at fixed FPR) and regression metrics (RMSE, MAE,
 * mean bias per output), as a printable report and as named values. */
#include "net.h"

#include <math.h>

typedef struct { float s, l; } scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

/* Scores with their labels sorted by score ascending into *out, and the positives in *pos;
 * *out is NULL when one class is absent (the metrics are then NaN). */
static ds_status sorted(int64_t n, const float *score, const float *label, int64_t *pos,
                        scored **out)
{
    *out = NULL;
    scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return dsi_fail(DS_ERR_NOMEM, "out of memory sorting %lld scores for the ROC curve",
                        (long long)n);
    *pos = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].l = label[i];
        *pos += label[i] > 0.5f;
    }
    if (*pos == 0 || *pos == n) {
        free(v);
        return DS_OK;
    }
    qsort(v, (size_t)n, sizeof *v, by_score);
    *out = v;
    return DS_OK;
}

/* Mann-Whitney form: mean rank of positives, ties sharing their average rank. */
static double auroc_sorted(const scored *v, int64_t n, int64_t pos)
{
    int64_t neg = n - pos;
    double rank_sum = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        double avg = 0.5 * (double)(i + 1 + j);   /* ranks i+1 .. j */
        for (int64_t k = i; k < j; k++)
            if (v[k].l > 0.5f)
                rank_sum += avg;
        i = j;
    }
    return (rank_sum - (double)pos * (double)(pos + 1) / 2) / ((double)pos * (double)neg);
}

/* The highest true-positive rate at a false-positive rate <= fpr, on the ROC curve
 * interpolated linearly between its points (thresholds from the highest score down). */
static double tpr_sorted(const scored *v, int64_t n, int64_t pos, double fpr)
{
    int64_t neg = n - pos, tp = 0, fp = 0;
    double px = 0, py = 0, res = NAN;
    for (int64_t i = n - 1; i >= 0;) {
        int64_t j = i;
        while (j >= 0 && v[j].s == v[i].s) {
            if (v[j].l > 0.5f)
                tp++;
            else
                fp++;
            j--;
        }
        double x = (double)fp / neg, y = (double)tp / pos;
        i = j;
        if (x <= fpr) {
            px = x;
            py = y;
            continue;
        }
        res = py + (y - py) * (fpr - px) / (x - px);
        break;
    }
    return isnan(res) ? py : res;
}

/* NaN when one class is absent, or (with a message) when memory runs out. */
double ds_auroc(int64_t n, const float *score, const float *label)
{
    int64_t pos;
    scored *v;
    if (sorted(n, score, label, &pos, &v) || !v)
        return NAN;
    double r = auroc_sorted(v, n, pos);
    free(v);
    return r;
}

double ds_tpr_at_fpr(int64_t n, const float *score, const float *label, double fpr)
{
    int64_t pos;
    scored *v;
    if (sorted(n, score, label, &pos, &v) || !v)
        return NAN;
    double r = tpr_sorted(v, n, pos, fpr);
    free(v);
    return r;
}

/* Highest TPR with at most max_fp false positives, thresholds from the highest score. */
static double tpr_fp_sorted(const scored *v, int64_t n, int64_t pos, int64_t max_fp)
{
    int64_t tp = 0, fp = 0;
    double best = 0;
    for (int64_t i = n - 1; i >= 0;) {
        for (float t = v[i].s; i >= 0 && v[i].s == t; i--)
            v[i].l > 0.5f ? tp++ : fp++;
        if (fp > max_fp)
            break;
        best = (double)tp / pos;
    }
    return best;
}

double ds_tpr_at_fp(int64_t n, const float *score, const float *label, int64_t max_fp)
{
    int64_t pos;
    scored *v;
    if (sorted(n, score, label, &pos, &v) || !v)
        return NAN;
    double r = tpr_fp_sorted(v, n, pos, max_fp);
    free(v);
    return r;
}

ds_status ds_roc_curve(int64_t n, const float *score, const float *label, double *fpr,
                       double *tpr, int64_t *points)
{
    if (n < 1 || !score || !label || !fpr || !tpr || !points)
        return dsi_fail(DS_ERR_ARG, "roc curve: NULL pointers or %lld samples", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (isnan(score[i]))
            return dsi_fail(DS_ERR_ARG, "roc curve: score[%lld] is NaN", (long long)i);
    int64_t pos;
    scored *v;
    ds_status st = sorted(n, score, label, &pos, &v);
    if (st)
        return st;
    if (!v)
        return dsi_fail(DS_ERR_ARG, "roc curve: %lld positives of %lld samples: both classes "
                        "are needed", (long long)pos, (long long)n);
    int64_t tp = 0, fp = 0, k = 1;
    fpr[0] = tpr[0] = 0;
    for (int64_t i = n - 1; i >= 0; k++) {
        for (float t = v[i].s; i >= 0 && v[i].s == t; i--)
            v[i].l > 0.5f ? tp++ : fp++;
        fpr[k] = (double)fp / (double)(n - pos);
        tpr[k] = (double)tp / (double)pos;
    }
    free(v);
    *points = k;
    return DS_OK;
}

/* A metric value into the set (if any) under "<prefix><name>". */
static ds_status put(ds_tensor_set *s, const char *prefix, const char *name, double v)
{
    if (!s)
        return DS_OK;
    char key[DS_NAME_MAX + 48];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    float f = (float)v;
    return ds_tensor_set_add(s, key, 0, NULL, &f);
}

/* A binary target: cross-entropy, or a Dice loss on one channel (probabilities). */
static bool binary(const dsi_net_target *t)
{
    return t->kind == DSI_LOSS_BCE || (t->kind == DSI_LOSS_DICE && t->classes == 1);
}

/* The predicted and the true class of sample i at position s, for a classifier's target. */
static void classes_of(const dsi_net_target *t, const float *p, const float *y, int64_t i,
                       int64_t s, int64_t K, int64_t inner, int64_t *pred, int64_t *truth,
                       float *score)
{
    if (binary(t)) {
        float pv = p[i * inner + s];
        *pred = pv > (t->output_logits ? 0.0f : 0.5f);
        *truth = y[i * inner + s] > 0.5f;
        *score = pv;
        return;
    }
    *pred = 0;
    for (int64_t k = 1; k < K; k++)
        if (p[(i * K + k) * inner + s] > p[(i * K + *pred) * inner + s])
            *pred = k;
    if (t->labels == DS_LABELS_INDEX) {
        *truth = (int64_t)y[i * inner + s];
    } else {
        *truth = 0;
        for (int64_t k = 1; k < K; k++)
            if (y[(i * K + k) * inner + s] > y[(i * K + *truth) * inner + s])
                *truth = k;
    }
    *score = K == 2 ? p[(i * K + 1) * inner + s] : 0;
}

/* Per-class precision and recall, and the confusion matrix. */
static ds_status class_table(dsi_buf *rep, const int64_t *conf, int64_t K, const char *prefix,
                             ds_tensor_set *values)
{
    ds_status st = DS_OK;
    dsi_buf_printf(rep, "\nclass  precision  recall  support\n");
    for (int64_t k = 0; k < K; k++) {
        int64_t tp = conf[k * K + k], col = 0, row = 0;
        for (int64_t j = 0; j < K; j++) {
            col += conf[j * K + k];
            row += conf[k * K + j];
        }
        double prec = col ? (double)tp / col : NAN, rec = row ? (double)tp / row : NAN;
        dsi_buf_printf(rep, "%5lld  %9.4f  %6.4f  %7lld\n", (long long)k, prec, rec,
            (long long)row);
        char nm[48];
        snprintf(nm, sizeof nm, "precision_%lld", (long long)k);
        if (!st)
            st = put(values, prefix, nm, prec);
        snprintf(nm, sizeof nm, "recall_%lld", (long long)k);
        if (!st)
            st = put(values, prefix, nm, rec);
    }
    if (!st && values) {   /* the counts [K, K], for figures (eval --confusion) */
        float *cf = malloc(sizeof *cf * (size_t)(K * K));
        char key[DS_NAME_MAX + 48];
        int64_t sh[2] = {K, K};
        snprintf(key, sizeof key, "%sconfusion", prefix);
        for (int64_t i = 0; cf && i < K * K; i++)
            cf[i] = (float)conf[i];
        st = cf ? ds_tensor_set_add(values, key, 2, sh, cf)
                : dsi_fail(DS_ERR_NOMEM, "out of memory evaluating");
        free(cf);
    }
    dsi_buf_printf(rep, "\nconfusion matrix (rows: true class, columns: predicted)\n      ");
    for (int64_t k = 0; k < K; k++)
        dsi_buf_printf(rep, " %6lld", (long long)k);
    dsi_buf_printf(rep, "\n");
    for (int64_t t = 0; t < K; t++) {
        dsi_buf_printf(rep, "%5lld ", (long long)t);
        for (int64_t k = 0; k < K; k++)
            dsi_buf_printf(rep, " %6lld", (long long)conf[t * K + k]);
        dsi_buf_printf(rep, "\n");
    }
    return st;
}

/* Accuracy, AUROC and TPR (two classes), precision, recall, confusion matrix. */
static ds_status classification(const dsi_net_target *t, const ds_tensor *p, const ds_tensor *y,
                                const char *prefix, dsi_buf *rep, ds_tensor_set *values)
{
    int64_t N = p->shape[0];
    int64_t K = binary(t) ? 2 : t->classes;
    int64_t inner = binary(t) ? p->numel / N : p->numel / (N * K);
    int64_t *conf = calloc((size_t)(K * K), sizeof *conf);
    float *score = malloc((size_t)(N * inner) * sizeof *score);
    float *lab = malloc((size_t)(N * inner) * sizeof *lab);
    ds_status st = DS_OK;
    if (!conf || !score || !lab) {
        st = dsi_fail(DS_ERR_NOMEM, "out of memory evaluating");
        goto done;
    }
    int64_t m = 0, right = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t s = 0; s < inner; s++, m++) {
            int64_t pred, truth;
            classes_of(t, p->data, y->data, i, s, K, inner, &pred, &truth, &score[m]);
            lab[m] = (float)truth;
            conf[truth * K + pred]++;
        }
    for (int64_t k = 0; k < K; k++)
        right += conf[k * K + k];
    double acc = (double)right / (double)m;
    dsi_buf_printf(rep, "accuracy: %.4f (%lld of %lld)\n", acc, (long long)right, (long long)m);
    st = put(values, prefix, "accuracy", acc);
    if (K == 2) {
        int64_t pos;
        scored *v;
        ds_status sst = sorted(m, score, lab, &pos, &v);
        if (sst) {
            st = sst;
            goto done;
        }
        double auc = v ? auroc_sorted(v, m, pos) : NAN;
        double t1 = v ? tpr_sorted(v, m, pos, 0.01) : NAN;
        double t10 = v ? tpr_sorted(v, m, pos, 0.1) : NAN;
        free(v);
        dsi_buf_printf(rep, "AUROC:    %.4f\nTPR at FPR 1%%: %.4f   at FPR 10%%: %.4f\n", auc,
            t1, t10);
        if (!st)
            st = put(values, prefix, "auroc", auc);
    }
    if (!st)   /* after a failure nothing more goes into values */
        st = class_table(rep, conf, K, prefix, values);
    if (!st && inner > 1)   /* per pixel (segmentation): IoU per class (generative.c) */
        st = dsi_iou_report(rep, conf, K, prefix, values);
done:
    free(conf);
    free(score);
    free(lab);
    return st;
}

/* RMSE, MAE and mean bias per output value, and the RMSE over all. */
static ds_status regression(const ds_tensor *p, const ds_tensor *y, const char *prefix,
                            dsi_buf *rep, ds_tensor_set *values)
{
    int64_t N = p->shape[0], F = p->numel / N;
    double tse = 0;
    ds_status st = DS_OK;
    dsi_buf_printf(rep, "\noutput      RMSE       MAE      bias\n");
    for (int64_t j = 0; j < F; j++) {
        double se = 0, ae = 0, b = 0;
        for (int64_t i = 0; i < N; i++) {
            double d = (double)p->data[i * F + j] - y->data[i * F + j];
            se += d * d;
            ae += fabs(d);
            b += d;
        }
        tse += se;
        double rmse = sqrt(se / N), mae = ae / N, bias = b / N;
        if (F <= 64)
            dsi_buf_printf(rep, "%6lld  %9.5g %9.5g %+9.4g\n", (long long)j, rmse, mae, bias);
        char nm[48];
        snprintf(nm, sizeof nm, "rmse_%lld", (long long)j);
        if (!st)
            st = put(values, prefix, nm, rmse);
        snprintf(nm, sizeof nm, "mae_%lld", (long long)j);
        if (!st)
            st = put(values, prefix, nm, mae);
        snprintf(nm, sizeof nm, "bias_%lld", (long long)j);
        if (!st)
            st = put(values, prefix, nm, bias);
    }
    double rmse = sqrt(tse / (double)p->numel);
    dsi_buf_printf(rep, "   all  %9.5g\n", rmse);
    return st ? st : put(values, prefix, "rmse", rmse);
}

/* The metrics of each target, under a heading (and value prefix) when there are several. */
static ds_status target_reports(const ds_net *n, const dsi_bound *d, ds_tensor **preds,
                                dsi_buf *rep, ds_tensor_set *values)
{
    ds_status st = DS_OK;
    for (int i = 0; i < n->n_targets && !st; i++) {
        const dsi_net_target *t = &n->targets[i];
        char prefix[DS_NAME_MAX + 1] = "";
        if (n->n_targets > 1) {
            snprintf(prefix, sizeof prefix, "%s.", t->name);
            dsi_buf_printf(rep, "\n[%s]\n", t->name);
        }
        if (t->kind == DSI_LOSS_BCE || t->kind == DSI_LOSS_CCE || t->kind == DSI_LOSS_DICE)
            st = classification(t, preds[i], d->y[i], prefix, rep, values);
        else if (preds[i]->numel == d->y[i]->numel)
            st = regression(preds[i], d->y[i], prefix, rep, values);
    }
    return st;
}

ds_status ds_net_evaluate_feed(ds_net *n, const ds_feed *f, int64_t batch, char **report,
                               ds_tensor_set *values)
{
    *report = NULL;
    double loss = NAN;
    dsi_bound d;
    ds_tensor *preds[DS_FEED_MAX] = {0};
    ds_node *nodes[DS_FEED_MAX];
    ds_status st = ds_net_loss_value_feed(n, f, batch, &loss);
    if (st || (st = dsi_feed_bind(n, f, &d)))
        return st;
    for (int i = 0; i < n->n_targets; i++)
        nodes[i] = n->targets[i].pred;
    if (n->n_targets && (st = dsi_net_collect(n, &d, batch, n->n_targets, nodes, preds)))
        return st;
    dsi_buf rep = {0};
    dsi_buf_printf(&rep, "samples: %lld\nloss:    %.6g\n", (long long)d.n, loss);
    st = put(values, "", "loss", loss);
    if (!st)
        st = target_reports(n, &d, preds, &rep, values);
    if (!st && n->n_recons)   /* autoencoders (generative.c) */
        st = dsi_recon_report(n, &d, batch, &rep, values);
    for (int i = 0; i < n->n_targets; i++)
        ds_tensor_free(preds[i]);
    if (!st && (rep.oom || !rep.p))
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for the report");
    if (st) {
        free(rep.p);
        return st;
    }
    *report = rep.p;
    return DS_OK;
}

ds_status ds_net_evaluate(ds_net *n, const ds_tensor *x, const ds_tensor *y, int64_t batch,
                          char **report, ds_tensor_set *values)
{
    ds_feed f;
    dsi_feed_single(&f, x, "data", y, "labels");
    return ds_net_evaluate_feed(n, &f, batch, report, values);
}

/* The classifier target whose prediction is output i's node, or NULL. */
const dsi_net_target *dsi_output_classifier(const ds_net *n, int i)
{
    for (int k = 0; k < n->n_targets; k++) {
        const dsi_net_target *t = &n->targets[k];
        if ((t->kind == DSI_LOSS_BCE || t->kind == DSI_LOSS_CCE) &&
            t->pred == n->outputs[i].node)
            return t;
    }
    return NULL;
}

ds_status ds_net_output_classes(const ds_net *n, int i, const ds_tensor *p, ds_tensor **out)
{
    return dsi_output_classes(n, i, p, false, out);
}

ds_status dsi_output_classes(const ds_net *n, int i, const ds_tensor *p, bool probs,
                             ds_tensor **out)
{
    if (!out)
        return dsi_fail(DS_ERR_ARG, "ds_net_output_classes: out is NULL");
    *out = NULL;
    if (!n || !p || i < 0 || i >= n->n_outputs)
        return dsi_fail(DS_ERR_ARG, "ds_net_output_classes: no net, no predictions, or no "
                        "output %d", i);
    const dsi_net_target *t = dsi_output_classifier(n, i);
    if (!t)
        return dsi_fail(DS_ERR_ARG, "output '%s' is not a classifier's prediction: no "
                        "categorical or binary cross-entropy loss reads it", n->outputs[i].name);
    bool cce = t->kind == DSI_LOSS_CCE;
    if (p->ndim < (cce ? 2 : 1) || (cce && p->shape[1] != t->classes))
        return dsi_fail(DS_ERR_SHAPE, "output '%s': predictions of shape %s are not %s",
                        n->outputs[i].name, dsi_shape_str(p->ndim, p->shape), cce ?
                        "[samples, classes, ...] for its classes" : "per sample");
    int64_t shape[DS_MAX_DIMS], K = cce ? p->shape[1] : 1, inner = 1;
    int nd = 0;
    for (int a = 0; a < p->ndim; a++)
        if (!cce || a != 1)
            shape[nd++] = p->shape[a];
    for (int a = 2; cce && a < p->ndim; a++)
        inner *= p->shape[a];
    ds_tensor *c = ds_tensor_create(nd, shape);
    if (!c)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the classes of output '%s'",
                        n->outputs[i].name);
    float cut = t->output_logits && !probs ? 0.0f : 0.5f;
    for (int64_t j = 0; j < c->numel; j++) {
        int64_t s = j / inner * K * inner + j % inner, best = 0;
        for (int64_t k = 1; cce && k < K; k++)
            if (p->data[s + k * inner] > p->data[s + best * inner])
                best = k;
        c->data[j] = cce ? (float)best : (float)(p->data[j] > cut);
    }
    *out = c;
    return DS_OK;
}

/* The metrics of predictions p of labels y outside a network (src/classic/): with classes
 * K > 0, p holds [N, K] class scores and y [N] class indices; else a regression. */
ds_status dsi_metrics_report(const ds_tensor *p, const ds_tensor *y, int64_t classes,
                             dsi_buf *rep, ds_tensor_set *values)
{
    if (classes <= 0)
        return regression(p, y, "", rep, values);
    dsi_net_target t = {.kind = DSI_LOSS_CCE, .labels = DS_LABELS_INDEX, .classes = classes};
    return classification(&t, p, y, "", rep, values);
}

/* ---- the scores of a binary classifier (eval --metrics, --roc) ---- */

/* A target with two classes: a binary one, or a categorical one over two classes. */
static bool two_class(const dsi_net_target *t)
{
    return binary(t) || (t->kind == DSI_LOSS_CCE && t->classes == 2);
}

ds_status ds_net_binary_scores(ds_net *n, const ds_feed *f, int64_t batch, const char *target,
                               ds_tensor **scores, ds_tensor **labels)
{
    if (!scores || !labels)
        return dsi_fail(DS_ERR_ARG, "ds_net_binary_scores: scores and labels must not be NULL");
    *scores = *labels = NULL;
    if (!n || !f || batch < 1)
        return dsi_fail(DS_ERR_ARG, "ds_net_binary_scores: no net, no feed, or batch %lld",
                        (long long)batch);
    const dsi_net_target *t = NULL;
    for (int i = 0; i < n->n_targets && !t; i++)
        if (target ? !strcmp(n->targets[i].name, target) : two_class(&n->targets[i]))
            t = &n->targets[i];
    if (!t)
        return target ? dsi_fail(DS_ERR_ARG, "the model has no loss named '%s'", target)
                      : dsi_fail(DS_ERR_ARG, "the model has no binary classifier: no "
                                 "binary_crossentropy loss, nor a categorical one over two "
                                 "classes");
    if (!two_class(t))
        return dsi_fail(DS_ERR_ARG, "loss '%s' is no binary classifier's (a binary "
                        "cross-entropy, or a categorical one over two classes)", t->name);
    dsi_bound d;
    ds_tensor *p = NULL;
    ds_node *node = t->pred;
    const int k = (int)(t - n->targets);
    ds_status st = dsi_feed_bind(n, f, &d);
    if (!st && !d.y[k])
        st = dsi_fail(DS_ERR_ARG, "no labels for loss '%s'", t->name);
    if (!st)
        st = dsi_net_collect(n, &d, batch, 1, &node, &p);
    if (st)
        return st;
    const int64_t N = p->shape[0], K = 2, inner = binary(t) ? p->numel / N
                                                                          : p->numel / (N * K);
    int64_t sh[1] = {N * inner};
    ds_tensor *s = ds_tensor_create(1, sh), *l = ds_tensor_create(1, sh);
    if (!s || !l) {
        st = dsi_fail(DS_ERR_NOMEM, "out of memory for %lld scores", (long long)sh[0]);
    } else {
        for (int64_t i = 0, m = 0; i < N; i++)
            for (int64_t j = 0; j < inner; j++, m++) {
                int64_t pred, truth;
                classes_of(t, p->data, d.y[k]->data, i, j, K, inner, &pred, &truth, &s->data[m]);
                l->data[m] = (float)truth;
            }
    }
    ds_tensor_free(p);
    if (st) {
        ds_tensor_free(s);
        ds_tensor_free(l);
        return st;
    }
    *scores = s;
    *labels = l;
    return DS_OK;
}
