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

/* Mann-Whitney form: mean rank of positives, ties sharing their average rank. */
double ds_auroc(int64_t n, const float *score, const float *label)
{
    scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return NAN;
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].l = label[i];
        pos += label[i] > 0.5f;
    }
    int64_t neg = n - pos;
    if (!pos || !neg) {
        free(v);
        return NAN;
    }
    qsort(v, (size_t)n, sizeof *v, by_score);
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
    free(v);
    return (rank_sum - (double)pos * (double)(pos + 1) / 2) / ((double)pos * (double)neg);
}

/* Walks the ROC curve from the highest threshold down and interpolates linearly. */
double ds_tpr_at_fpr(int64_t n, const float *score, const float *label, double fpr)
{
    scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return NAN;
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].l = label[i];
        pos += label[i] > 0.5f;
    }
    int64_t neg = n - pos;
    if (!pos || !neg) {
        free(v);
        return NAN;
    }
    qsort(v, (size_t)n, sizeof *v, by_score);
    double px = 0, py = 0, res = 1;
    int64_t tp = 0, fp = 0;
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
        if (x >= fpr) {
            res = x > px ? py + (y - py) * (fpr - px) / (x - px) : y;
            break;
        }
        px = x;
        py = y;
        i = j;
    }
    free(v);
    return res;
}

static void cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return;
        *buf = nb;
        *cap = ncap;
    }
}

static ds_status put(ds_tensor_set *s, const char *name, double v)
{
    if (!s)
        return DS_OK;
    float f = (float)v;
    return ds_tensor_set_add(s, name, 0, NULL, &f);
}

ds_status ds_net_evaluate(ds_net *n, const ds_tensor *x, const ds_tensor *y, int64_t batch,
                          char **report, ds_tensor_set *values)
{
    *report = NULL;
    double loss = NAN;
    ds_status st = ds_net_loss_value(n, x, y, batch, &loss);
    if (st)
        return st;
    ds_tensor *p = NULL;
    if ((st = ds_net_predict(n, x, batch, &p)))
        return st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int64_t N = x->shape[0];
    cat(&buf, &len, &cap, "samples: %lld\nloss:    %.6g\n", (long long)N, loss);
    st = put(values, "loss", loss);
    if (ds_net_is_classifier(n)) {
        int64_t K = n->target_loss == DSI_LOSS_BCE ? 2 : n->classes;
        int64_t inner = n->target_loss == DSI_LOSS_BCE ? p->numel / N : p->numel / (N * K);
        int64_t *conf = calloc((size_t)(K * K), sizeof *conf);
        float *score = malloc((size_t)(N * inner) * sizeof *score);
        float *lab = malloc((size_t)(N * inner) * sizeof *lab);
        if (!conf || !score || !lab) {
            free(conf);
            free(score);
            free(lab);
            ds_tensor_free(p);
            free(buf);
            return dsi_fail(DS_ERR_NOMEM, "out of memory evaluating");
        }
        int64_t m = 0;
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < inner; s++, m++) {
                int64_t pred, truth;
                if (n->target_loss == DSI_LOSS_BCE) {
                    float pv = p->data[i * inner + s];
                    pred = pv > (n->output_logits ? 0.0f : 0.5f);
                    truth = y->data[i * inner + s] > 0.5f;
                    score[m] = pv;
                } else {
                    pred = 0;
                    for (int64_t k = 1; k < K; k++)
                        if (p->data[(i * K + k) * inner + s] > p->data[(i * K + pred) * inner + s])
                            pred = k;
                    if (n->labels == DS_LABELS_INDEX) {
                        truth = (int64_t)y->data[i * inner + s];
                    } else {
                        truth = 0;
                        for (int64_t k = 1; k < K; k++)
                            if (y->data[(i * K + k) * inner + s] > y->data[(i * K + truth) * inner + s])
                                truth = k;
                    }
                    score[m] = K == 2 ? p->data[(i * K + 1) * inner + s] : 0;
                }
                lab[m] = (float)truth;
                conf[truth * K + pred]++;
            }
        int64_t right = 0;
        for (int64_t k = 0; k < K; k++)
            right += conf[k * K + k];
        double acc = (double)right / (double)m;
        cat(&buf, &len, &cap, "accuracy: %.4f (%lld of %lld)\n", acc, (long long)right, (long long)m);
        if (!st)
            st = put(values, "accuracy", acc);
        if (K == 2) {
            double auc = ds_auroc(m, score, lab);
            double t1 = ds_tpr_at_fpr(m, score, lab, 0.01), t10 = ds_tpr_at_fpr(m, score, lab, 0.1);
            cat(&buf, &len, &cap, "AUROC:    %.4f\nTPR at FPR 1%%: %.4f   at FPR 10%%: %.4f\n", auc,
                t1, t10);
            if (!st)
                st = put(values, "auroc", auc);
        }
        cat(&buf, &len, &cap, "\nclass  precision  recall  support\n");
        for (int64_t k = 0; k < K; k++) {
            int64_t tp = conf[k * K + k], col = 0, row = 0;
            for (int64_t j = 0; j < K; j++) {
                col += conf[j * K + k];
                row += conf[k * K + j];
            }
            double prec = col ? (double)tp / col : NAN, rec = row ? (double)tp / row : NAN;
            cat(&buf, &len, &cap, "%5lld  %9.4f  %6.4f  %7lld\n", (long long)k, prec, rec,
                (long long)row);
            char nm[48];
            snprintf(nm, sizeof nm, "precision_%lld", (long long)k);
            if (!st)
                st = put(values, nm, prec);
            snprintf(nm, sizeof nm, "recall_%lld", (long long)k);
            if (!st)
                st = put(values, nm, rec);
        }
        cat(&buf, &len, &cap, "\nconfusion matrix (rows: true class, columns: predicted)\n      ");
        for (int64_t k = 0; k < K; k++)
            cat(&buf, &len, &cap, " %6lld", (long long)k);
        cat(&buf, &len, &cap, "\n");
        for (int64_t t = 0; t < K; t++) {
            cat(&buf, &len, &cap, "%5lld ", (long long)t);
            for (int64_t k = 0; k < K; k++)
                cat(&buf, &len, &cap, " %6lld", (long long)conf[t * K + k]);
            cat(&buf, &len, &cap, "\n");
        }
        free(conf);
        free(score);
        free(lab);
    } else if (p->numel == y->numel) {
        int64_t F = p->numel / N;
        double tse = 0;
        cat(&buf, &len, &cap, "\noutput      RMSE       MAE      bias\n");
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
                cat(&buf, &len, &cap, "%6lld  %9.5g %9.5g %+9.4g\n", (long long)j, rmse, mae, bias);
            char nm[48];
            snprintf(nm, sizeof nm, "rmse_%lld", (long long)j);
            if (!st)
                st = put(values, nm, rmse);
            snprintf(nm, sizeof nm, "mae_%lld", (long long)j);
            if (!st)
                st = put(values, nm, mae);
            snprintf(nm, sizeof nm, "bias_%lld", (long long)j);
            if (!st)
                st = put(values, nm, bias);
        }
        double rmse = sqrt(tse / (double)p->numel);
        cat(&buf, &len, &cap, "   all  %9.5g\n", rmse);
        if (!st)
            st = put(values, "rmse", rmse);
    }
    ds_tensor_free(p);
    if (!buf)
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the report");
    *report = buf;
    return st;
}
