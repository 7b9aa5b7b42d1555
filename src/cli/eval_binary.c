/* eval_binary.c - `deepsky eval --metrics auroc,tpr0,tpr10 --roc FILE.png`: AUROC and the
 * true-positive rates at fewer than K false positives (Metcalf et al. 2019's TPR0, TPR10)
 * of a binary classifier, and its ROC curve figure. */
#include "eval_binary.h"

#include <stdlib.h>
#include <string.h>

/* One metric's name into *fp: -1 for auroc, else the largest false-positive count K - 1
 * allowed by tprK (tpr0: 0). false when the name is none. */
static bool metric_code(const char *name, int64_t *fp)
{
    if (!strcmp(name, "auroc")) {
        *fp = -1;
        return true;
    }
    if (strncmp(name, "tpr", 3) || !name[3] || strspn(name + 3, "0123456789") != strlen(name + 3)
        || strlen(name + 3) > 9)
        return false;
    long k = strtol(name + 3, NULL, 10);
    *fp = k > 0 ? k - 1 : 0;
    return true;
}

bool cli_binary_wanted(const cli_cmd *c) { return cli_has(c, "metrics") || cli_has(c, "roc"); }

int cli_binary_check(const cli_cmd *c)
{
    const char *v = cli_get(c, "metrics");
    if (v) {
        char *list = strdup(v), *save = NULL;
        if (!list)
            return cli_usage_error(c, "option '--metrics': out of memory");
        int rc = 0, n = 0;
        for (char *t = strtok_r(list, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save), n++) {
            int64_t fp;
            if (!metric_code(t, &fp))
                rc = cli_usage_error(c, "option '--metrics': unknown metric '%s' (auroc, or tprK: "
                                     "the true-positive rate at fewer than K false positives, "
                                     "e.g. tpr0, tpr10)", t);
        }
        free(list);
        if (!rc && !n)
            rc = cli_usage_error(c, "option '--metrics': '%s' names no metric (auroc, tpr0, "
                                 "tpr10, ...)", v);
        if (rc)
            return rc;
    }
    const char *roc = cli_get(c, "roc");
    int rc = roc ? cli_output_ext(c, "--roc", roc, ".png", "figures") : 0;
    if (!rc && roc && !ds_has_feature("plot")) {
        fprintf(stderr, "deepsky: error: --roc draws a figure, but deepsky was built without "
                "plotting support (NO_PLOT=1); rebuild with cairo\n");
        return 1;
    }
    return rc;
}

/* The metrics of --metrics (default auroc,tpr0,tpr10) of the scores. */
static void print_metrics(const cli_cmd *c, int64_t n, const float *s, const float *l)
{
    const char *v = cli_get(c, "metrics");
    char *list = strdup(v ? v : "auroc,tpr0,tpr10"), *save = NULL;
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++)
        pos += l[i] > 0.5f;
    printf("\nbinary classifier: %lld samples, %lld positive, %lld negative\n", (long long)n,
           (long long)pos, (long long)(n - pos));
    for (char *t = list ? strtok_r(list, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        int64_t fp = -1;
        metric_code(t, &fp);   /* checked before */
        if (fp < 0)
            printf("%-8s %.4f\n", t, ds_auroc(n, s, l));
        else
            printf("%-8s %.4f   (true-positive rate with %s%lld false %s)\n", t,
                   ds_tpr_at_fp(n, s, l, fp), fp ? "at most " : "", (long long)fp,
                   cli_plural(fp, "positive", "positives"));
    }
    free(list);
}

int cli_binary_report(const cli_cmd *c, int64_t m, const float *sv, const float *lv)
{
    if (cli_has(c, "metrics"))
        print_metrics(c, m, sv, lv);
    const char *roc = cli_get(c, "roc");
    if (roc && ds_plot_roc(m, sv, lv, "ROC curve", roc))
        return cli_fail();
    if (roc)
        printf("wrote %s\n", roc);
    return 0;
}

int cli_binary_run(const cli_cmd *c, ds_net *n, const ds_feed *f, int64_t batch)
{
    ds_tensor *s = NULL, *l = NULL;
    if (ds_net_binary_scores(n, f, batch, NULL, &s, &l))
        return cli_fail();
    int rc = cli_binary_report(c, ds_tensor_numel(s), ds_tensor_data(s), ds_tensor_data(l));
    ds_tensor_free(s);
    ds_tensor_free(l);
    return rc;
}
