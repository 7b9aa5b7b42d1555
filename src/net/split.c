/* split.c - validation splits of a feed: the class of each sample for classifiers, and a
 * seeded shuffled split stratified by class (or the last fraction, unshuffled). */
#include "net.h"

#include <math.h>

/* The class of each of the n samples of y for target t, into cls; false when the labels
 * are not one class per sample (soft labels, several per sample, values out of range). */
static bool classes_of(const dsi_net_target *t, const ds_tensor *y, int64_t n, int64_t *cls)
{
    int64_t k = y->numel / n, K = t->classes;
    for (int64_t i = 0; i < n; i++) {
        const float *row = y->data + i * k;
        if (k == 1) {   /* a class index, or a binary label 0/1 */
            if (!(row[0] >= 0 && row[0] < (float)K && row[0] == floorf(row[0])))
                return false;
            cls[i] = (int64_t)row[0];
            continue;
        }
        if (t->kind != DSI_LOSS_CCE || k != K)   /* several binary labels, or per pixel */
            return false;
        int64_t hot = -1;   /* one-hot rows: one 1, zeros elsewhere */
        for (int64_t j = 0; j < k; j++) {
            if (row[j] == 1 && hot < 0)
                hot = j;
            else if (row[j] != 0)
                return false;
        }
        if (hot < 0)
            return false;
        cls[i] = hot;
    }
    return true;
}

ds_status ds_net_sample_classes(const ds_net *n, const ds_feed *f, int64_t *cls,
                                int64_t *n_classes)
{
    dsi_bound b;
    *n_classes = 0;
    ds_status st = dsi_feed_bind(n, f, &b);
    if (st)
        return st;
    if (!ds_net_is_classifier(n) || !b.y[0])
        return DS_OK;
    if (classes_of(&n->targets[0], b.y[0], b.n, cls))
        *n_classes = n->targets[0].classes;
    return DS_OK;
}

static void shuffle(ds_rng *r, int64_t *v, int64_t count)
{
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = (int64_t)ds_rng_below(r, (uint64_t)i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static int64_t round_share(double fraction, int64_t count)
{
    return (int64_t)floor(fraction * (double)count + 0.5);
}

/* How many of each class's count[c] samples go to validation: floor(fraction x count),
 * at least one and at most all but one for a class of two or more (a class of one sample
 * stays in training), then one more to the classes with the largest remainders until the
 * total is round(fraction x n), as scikit-learn's stratified split has it. */
static void class_shares(const int64_t *count, int64_t K, int64_t n, double fraction,
                         int64_t *take)
{
    int64_t total = 0;
    for (int64_t c = 0; c < K; c++) {
        int64_t t = (int64_t)floor(fraction * (double)count[c]);
        take[c] = count[c] < 2 ? 0 : t < 1 ? 1 : t > count[c] - 1 ? count[c] - 1 : t;
        total += take[c];
    }
    for (int64_t want = round_share(fraction, n); total < want; total++) {
        int64_t best = -1;
        double best_rem = -1;
        for (int64_t c = 0; c < K; c++) {
            double rem = fraction * (double)count[c] - (double)take[c];
            if (count[c] >= 2 && take[c] < count[c] - 1 && rem > best_rem)
                best = c, best_rem = rem;
        }
        if (best < 0)
            break;
        take[best]++;
    }
}

/* Stratified: each class's samples shuffled, class_shares of them to validation.
 * order: n ints of workspace. */
static bool split_classes(ds_rng *r, const int64_t *cls, int64_t n, int64_t K, double fraction,
                          int64_t *order, unsigned char *is_val, ds_split_info *info)
{
    int64_t *start = calloc((size_t)K + 1, sizeof *start);   /* counting sort by class */
    int64_t *count = calloc((size_t)K + 1, sizeof *count), *take = calloc((size_t)K + 1, 8);
    if (!start || !count || !take) {
        free(start), free(count), free(take);
        return false;
    }
    for (int64_t i = 0; i < n; i++)
        count[cls[i]]++;
    class_shares(count, K, n, fraction, take);
    for (int64_t c = 0; c < K; c++)
        start[c + 1] = start[c] + count[c];
    for (int64_t i = 0; i < n; i++)
        order[start[cls[i]]++] = i;   /* start[c] moves to the end of class c */
    for (int64_t c = 0, first = 0; c < K; first = start[c++]) {
        if (!count[c])
            continue;
        info->classes++;
        info->single += count[c] == 1;
        shuffle(r, order + first, count[c]);
        for (int64_t j = 0; j < take[c]; j++)
            is_val[order[first + j]] = 1;
    }
    free(start), free(count), free(take);
    return true;
}

ds_status ds_net_split(const ds_net *n, const ds_feed *f, double fraction, int last,
                       uint64_t seed, unsigned char *is_val, ds_split_info *info)
{
    dsi_bound b;
    ds_status st = dsi_feed_bind(n, f, &b);
    *info = (ds_split_info){0};
    if (st)
        return st;
    int64_t N = b.n, K = 0, *cls = malloc((size_t)N * sizeof *cls);
    if (!cls)
        return dsi_fail(DS_ERR_NOMEM, "out of memory splitting %lld samples", (long long)N);
    if (last || !(st = ds_net_sample_classes(n, f, cls, &K)))
        st = dsi_split_samples(N, K ? cls : NULL, K, fraction, last, seed, is_val, info);
    free(cls);
    return st;
}

ds_status dsi_split_samples(int64_t N, const int64_t *cls, int64_t K, double fraction, int last,
                            uint64_t seed, unsigned char *is_val, ds_split_info *info)
{
    ds_status st = DS_OK;
    *info = (ds_split_info){0};
    if (!(fraction > 0 && fraction < 1))
        return dsi_fail(DS_ERR_ARG, "validation fraction %g is not between 0 and 1", fraction);
    int64_t *order = malloc((size_t)(N ? N : 1) * sizeof *order);
    if (!order)
        return dsi_fail(DS_ERR_NOMEM, "out of memory splitting %lld samples", (long long)N);
    memset(is_val, 0, (size_t)N);
    ds_rng r;
    ds_rng_seed(&r, dsi_mix64(seed ^ 0x5b11ULL));
    if (last) {
        for (int64_t i = N - round_share(fraction, N); i < N; i++)
            is_val[i] = 1;
    } else if (cls && K) {
        if (!split_classes(&r, cls, N, K, fraction, order, is_val, info)) {
            st = dsi_fail(DS_ERR_NOMEM, "out of memory splitting %lld classes", (long long)K);
            goto done;
        }
    } else {
        for (int64_t i = 0; i < N; i++)
            order[i] = i;
        shuffle(&r, order, N);
        for (int64_t i = 0; i < round_share(fraction, N); i++)
            is_val[order[i]] = 1;
    }
    for (int64_t i = 0; i < N; i++)
        info->val += is_val[i];
    info->train = N - info->val;
    if (!info->val || !info->train)
        st = dsi_fail(DS_ERR_ARG, "a validation fraction of %g of %lld %s%s leaves %lld for "
                      "validation and %lld for training; both need at least one", fraction,
                      (long long)N, dsi_plural(N, "sample", "samples"),
                      info->classes ? " (split by class)" : "", (long long)info->val,
                      (long long)info->train);
done:
    free(order);
    return st;
}
