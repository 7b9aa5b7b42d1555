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

/* Scores with their labels sorted by score ascending; NULL (and no message: the callers
 * return NaN) when memory fails or one class is absent. */
static scored *sorted(int64_t n, const float *score, const float *label, int64_t *pos)
{
    scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    *pos = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].l = label[i];
        *pos += label[i] > 0.5f;
    }
    if (*pos == 0 || *pos == n) {
        free(v);
        return NULL;
    }
    qsort(v, (size_t)n, sizeof *v, by_score);
    return v;
}

/* Mann-Whitney form: mean rank of positives, ties sharing their average rank. */
double ds_auroc(int64_t n, const float *score, const float *label)
{
    int64_t pos;
    scored *v = sorted(n, score, label, &pos);
    if (!v)
        return NAN;
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
    free(v);
    return (rank_sum - (double)pos * (double)(pos + 1) / 2) / ((double)pos * (double)neg);
}

/* The highest true-positive rate at a false-positive rate <= fpr, on the ROC curve
 * interpolated linearly between its points (thresholds from the highest score down). */
double ds_tpr_at_fpr(int64_t n, const float *score, const float *label, double fpr)
{
    int64_t pos;
    scored *v = sorted(n, score, label, &pos);
    if (!v)
        return NAN;
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
    free(v);
    return isnan(res) ? py : res;
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
    dsi_buf rep = {0};
    int64_t N = x->shape[0];
    dsi_buf_printf(&rep, "samples: %lld\nloss:    %.6g\n", (long long)N, loss);
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
            free(rep.p);
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
        dsi_buf_printf(&rep, "accuracy: %.4f (%lld of %lld)\n", acc, (long long)right, (long long)m);
        if (!st)
            st = put(values, "accuracy", acc);
        if (K == 2) {
            double auc = ds_auroc(m, score, lab);
            double t1 = ds_tpr_at_fpr(m, score, lab, 0.01), t10 = ds_tpr_at_fpr(m, score, lab, 0.1);
            dsi_buf_printf(&rep, "AUROC:    %.4f\nTPR at FPR 1%%: %.4f   at FPR 10%%: %.4f\n", auc,
                t1, t10);
            if (!st)
                st = put(values, "auroc", auc);
        }
        dsi_buf_printf(&rep, "\nclass  precision  recall  support\n");
        for (int64_t k = 0; k < K; k++) {
            int64_t tp = conf[k * K + k], col = 0, row = 0;
            for (int64_t j = 0; j < K; j++) {
                col += conf[j * K + k];
                row += conf[k * K + j];
            }
            double prec = col ? (double)tp / col : NAN, rec = row ? (double)tp / row : NAN;
            dsi_buf_printf(&rep, "%5lld  %9.4f  %6.4f  %7lld\n", (long long)k, prec, rec,
                (long long)row);
            char nm[48];
            snprintf(nm, sizeof nm, "precision_%lld", (long long)k);
            if (!st)
                st = put(values, nm, prec);
            snprintf(nm, sizeof nm, "recall_%lld", (long long)k);
            if (!st)
                st = put(values, nm, rec);
        }
        dsi_buf_printf(&rep, "\nconfusion matrix (rows: true class, columns: predicted)\n      ");
        for (int64_t k = 0; k < K; k++)
            dsi_buf_printf(&rep, " %6lld", (long long)k);
        dsi_buf_printf(&rep, "\n");
        for (int64_t t = 0; t < K; t++) {
            dsi_buf_printf(&rep, "%5lld ", (long long)t);
            for (int64_t k = 0; k < K; k++)
                dsi_buf_printf(&rep, " %6lld", (long long)conf[t * K + k]);
            dsi_buf_printf(&rep, "\n");
        }
        free(conf);
        free(score);
        free(lab);
    } else if (p->numel == y->numel) {
        int64_t F = p->numel / N;
        double tse = 0;
        dsi_buf_printf(&rep, "\noutput      RMSE       MAE      bias\n");
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
                dsi_buf_printf(&rep, "%6lld  %9.5g %9.5g %+9.4g\n", (long long)j, rmse, mae, bias);
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
        dsi_buf_printf(&rep, "   all  %9.5g\n", rmse);
        if (!st)
            st = put(values, "rmse", rmse);
    }
    ds_tensor_free(p);
    if (rep.oom || !rep.p) {
        free(rep.p);
        return dsi_fail(DS_ERR_NOMEM, "out of memory for the report");
    }
    *report = rep.p;
    return st;
}
