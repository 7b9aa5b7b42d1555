/* test_infer_plan.c - inference plans (DS_INFER): the same outputs as the training plan's
 * eval-mode forward (bit for bit where the same kernels run, to rounding where batch norm is
 * folded), less memory, no gradients, folds that follow weight updates without changing the
 * stored weights, training after inference as if none had run, and results independent of
 * the thread count. Each comparison asserts from the graph that the fast path really ran. */
#include "test.h"
#include "../src/internal.h"

#include <stdbool.h>

/* Nets of the kinds the fast paths handle, and one they must leave alone. */
typedef struct {
    const char *name, *text;
    int folds, pools;      /* batch norms folded and poolings fused in the inference plan */
    bool exact;            /* outputs bit for bit (no fold) */
} case_def;

static const case_def cases[] = {
    {"conv bn relu pool (sub-batches of 2)",
     "input shape=1x64x64\n"
     "conv2d filters=32 kernel=3 padding=same\nbatchnorm\nrelu\nmaxpool size=2\n"
     "conv2d filters=8 kernel=3 padding=same bias=false\nbatchnorm affine=false\n"
     "maxpool size=2 padding=same\n"
     "flatten\ndense units=6\nbatchnorm\ndense units=3\nloss mse\n",
     3, 2, false},
    {"lenet-like, avg pool",
     "input shape=1x28x28\n"
     "conv2d filters=6 kernel=5 padding=2 activation=relu\nmaxpool size=2\n"
     "conv2d filters=16 kernel=5 activation=relu\navgpool size=2\n"
     "flatten\ndense units=20 activation=relu\ndropout rate=0.3\ndense units=10\n"
     "loss categorical_crossentropy from_logits=true\n",
     0, 2, true},
    {"conv1d, strided pool, global max",
     "input shape=2x300\n"
     "conv1d filters=8 kernel=7 activation=relu\nmaxpool size=3 stride=2\n"
     "conv1d filters=8 kernel=5\nbatchnorm\nrelu\nglobalmaxpool\n"
     "dense units=3\nloss mse\n",
     1, 1, false},
    {"not fusable: a kept value, a pool reading a batch norm after a ReLU",
     "input shape=3x12x12\n"
     "conv2d filters=4 kernel=3 activation=relu\nbatchnorm\nmaxpool size=2\n"
     "flatten\ndense units=4 activation=relu\nbatchnorm\ndense units=2\nloss mse\n",
     0, 0, true},
};

/* Every parameter random (variances positive), so that a fold is a real scaling. */
static void randomize(ds_model *m, uint64_t seed)
{
    ds_rng r;
    ds_rng_seed(&r, seed);
    for (int i = 0; i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        bool var = strstr(ds_param_name(p), "running_var") != NULL;
        fill_uniform(ds_param_data(p), ds_param_numel(p), var ? 0.3f : -0.6f, var ? 2.0f : 0.6f,
                     &r);
    }
}

static ds_net *load(const case_def *c, int64_t batch, char *msg, size_t cap)
{
    ds_net *n = NULL;
    ds_net_opts o = {.batch = batch, .seed = 3};
    if (ds_net_parse(c->text, c->name, &o, &n) != DS_OK) {
        snprintf(msg, cap, "%s: %s", c->name, ds_last_error());
        return NULL;
    }
    randomize(ds_net_model(n), 11);
    return n;
}

/* The output of one forward pass in mode over x (malloc'd), or NULL. */
static float *forward(ds_net *n, int mode, const float *x)
{
    ds_graph *g = ds_net_graph(n);
    ds_node *in = ds_net_input(n), *out = ds_net_output(n);
    ds_graph_set_mode(g, mode);
    if (ds_graph_set_input(g, in, x, ds_node_numel(in)) || ds_graph_forward_to(g, out))
        return NULL;
    float *y = malloc((size_t)ds_node_numel(out) * sizeof *y);
    if (y)
        memcpy(y, ds_node_data(out), (size_t)ds_node_numel(out) * sizeof *y);
    return y;
}

static void count_marks(const ds_graph *g, int *folds, int *pools)
{
    *folds = *pools = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        *folds += g->nodes[i]->folded;
        *pools += g->nodes[i]->pooled;
    }
}

/* a against b (n values): equal, or within 1e-5 relative plus 1e-5 of the largest |b|. */
static int compare(const char *what, const float *a, const float *b, int64_t n, bool exact,
                   char *msg, size_t cap)
{
    double scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double tol = exact ? 0 : 1e-5 * fabs(b[i]) + 1e-5 * scale;
        if (!(fabs((double)a[i] - b[i]) <= tol) && !(exact && a[i] == b[i])) {
            snprintf(msg, cap, "%s: value %lld: %.9g, expected %.9g (%s)", what, (long long)i,
                     a[i], b[i], exact ? "bit for bit" : "tolerance");
            return 1;
        }
    }
    return 0;
}

static float *random_input(ds_net *n, uint64_t seed)
{
    int64_t k = ds_node_numel(ds_net_input(n));
    float *x = malloc((size_t)k * sizeof *x);
    ds_rng r;
    ds_rng_seed(&r, seed);
    if (x)
        fill_uniform(x, k, -1.0f, 1.0f, &r);
    return x;
}

/* One case at one batch size: eval-plan outputs against the inference plan's, the marks of
 * the plan, and its memory against the training plan's. */
static int check_case(const case_def *c, int64_t batch, char *msg, size_t cap)
{
    ds_net *n = load(c, batch, msg, cap);
    if (!n)
        return 1;
    ds_graph *g = ds_net_graph(n);
    int rc = 1, folds, pools;
    float *x = random_input(n, 5), *ref = x ? forward(n, DS_MODE_EVAL, x) : NULL;
    size_t train_bytes = ds_graph_bytes(g);
    float *got = ref ? forward(n, DS_MODE_INFER, x) : NULL;
    if (!got) {
        snprintf(msg, cap, "%s: forward failed: %s", c->name, ds_last_error());
        goto done;
    }
    count_marks(g, &folds, &pools);
    if (folds != c->folds || pools != c->pools) {
        snprintf(msg, cap, "%s: %d batch norms folded, %d poolings fused (expected %d, %d)",
                 c->name, folds, pools, c->folds, c->pools);
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->grad || (g->nodes[i]->op == DS_OP_POOL && g->nodes[i]->saved)) {
            snprintf(msg, cap, "%s: node %d (%s) has a gradient or saved buffer in an "
                     "inference plan", c->name, i, dsi_op_names[g->nodes[i]->op]);
            goto done;
        }
    if (ds_graph_bytes(g) >= train_bytes) {
        snprintf(msg, cap, "%s: the inference plan takes %zu bytes, the training plan %zu",
                 c->name, ds_graph_bytes(g), train_bytes);
        goto done;
    }
    char what[160];
    snprintf(what, sizeof what, "%s, batch %lld", c->name, (long long)batch);
    rc = compare(what, got, ref, ds_node_numel(ds_net_output(n)), c->exact, msg, cap);
done:
    free(x);
    free(ref);
    free(got);
    ds_net_free(n);
    return rc;
}

TEST(infer_plan_matches_the_eval_plan)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_OK(check_case(&cases[i], 5, msg_, cap_));
        CHECK_OK(check_case(&cases[i], 1, msg_, cap_));
    }
    return TEST_PASS;
}

/* A keep_all graph and a kept conv output are planned without folds or fusions. */
TEST(infer_plan_leaves_kept_values_alone)
{
    ds_net *n = load(&cases[0], 2, msg_, cap_);
    CHECK(n);
    ds_graph *g = ds_net_graph(n);
    int folds, pools;
    ds_graph_keep_all(g, 1);
    float *x = random_input(n, 2), *y = forward(n, DS_MODE_INFER, x);
    CHECK(y);
    count_marks(g, &folds, &pools);
    CHECK(folds == 0 && pools == 0);
    ds_graph_keep_all(g, 0);
    ds_node *conv = ds_graph_find(g, "conv2d_1");
    CHECK(conv && conv->op == DS_OP_CONV);
    ds_node_keep(conv, 1);
    float *y2 = forward(n, DS_MODE_INFER, x);
    CHECK(y2);
    count_marks(g, &folds, &pools);
    CHECK(folds == 2 && pools == 1);   /* the first conv's batch norm and pooling stay */
    int rc = compare("kept conv", y2, y, ds_node_numel(ds_net_output(n)), false, msg_, cap_);
    /* forward_to a fused conv (the second, whose pooling follows) keeps it, and its value is
     * the eval plan's */
    ds_node *c2 = ds_graph_find(g, "conv2d_2");
    CHECK(c2 && c2->pool && !c2->keep);
    int64_t k = ds_node_numel(c2);
    float *v[2];
    for (int i = 0; i < 2; i++) {
        ds_graph_set_mode(g, i ? DS_MODE_INFER : DS_MODE_EVAL);
        CHECK(ds_graph_forward_to(g, c2) == DS_OK);
        CHECK((v[i] = malloc((size_t)k * sizeof(float))));
        memcpy(v[i], ds_node_data(c2), (size_t)k * sizeof(float));
    }
    CHECK(c2->keep && !c2->pool && !c2->fold);
    rc = rc || compare("forward_to a fused conv", v[1], v[0], k, true, msg_, cap_);
    free(v[0]);
    free(v[1]);
    free(x);
    free(y);
    free(y2);
    ds_net_free(n);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* MC dropout in an inference plan (dropout in place, no keep mask) draws the masks of the
 * training plan: same outputs bit for bit. */
TEST(infer_plan_mc_dropout_matches)
{
    float *y[2] = {NULL, NULL};
    float *x = NULL;
    int64_t k = 0;
    for (int v = 0; v < 2; v++) {
        ds_net *n = load(&cases[1], 4, msg_, cap_);
        CHECK(n);
        if (!x)
            x = random_input(n, 8);
        y[v] = forward(n, DS_MODE_MC_DROPOUT | (v ? DS_INFER : 0), x);
        k = ds_node_numel(ds_net_output(n));
        ds_net_free(n);
        CHECK(y[v]);
    }
    int rc = compare("MC dropout", y[1], y[0], k, true, msg_, cap_);
    free(x);
    free(y[0]);
    free(y[1]);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* One training step (forward, backward, an optimizer step) on a fixed batch; the loss into
 * *loss. */
static ds_status train_step(ds_net *n, ds_optim *opt, int64_t batch, const float *x,
                            const float *t, double *loss)
{
    ds_graph *g = ds_net_graph(n);
    ds_status st;
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    ds_node *in = ds_net_input(n), *tg = ds_net_target(n);
    if ((st = ds_graph_set_batch(g, batch)) || (st = ds_graph_set_input(g, in, x, ds_node_numel(in))) ||
        (st = ds_graph_set_input(g, tg, t, ds_node_numel(tg))))
        return st;
    ds_model_zero_grad(ds_net_model(n));
    if ((st = ds_graph_forward(g)) || (st = ds_graph_backward(g, ds_net_loss(n))))
        return st;
    *loss = ds_node_data(ds_net_loss(n))[0];
    return ds_optim_step(opt);
}

/* Training steps with predictions (inference plans) between them give what the same steps
 * give without: the same losses and weights bit for bit. Backward refuses an inference
 * plan. */
TEST(infer_plan_then_training_is_unchanged)
{
    ds_net *n[2];
    ds_optim *opt[2];
    double loss[2][3];
    float *x = NULL, *t = NULL;
    ds_tensor *xs = NULL;
    for (int v = 0; v < 2; v++) {
        n[v] = load(&cases[0], 4, msg_, cap_);
        CHECK(n[v]);
        ds_optim_opts oo = {.kind = DS_OPT_ADAM, .lr = 1e-2f};
        CHECK((opt[v] = ds_optim_create(ds_net_model(n[v]), &oo)));
    }
    x = random_input(n[0], 21);
    t = random_input(n[0], 22);   /* 4 x 3 targets fit in the 4 x 4096 values */
    int64_t shape[4] = {4, 1, 64, 64};
    CHECK(x && t && (xs = ds_tensor_create(4, shape)));
    memcpy(ds_tensor_data(xs), x, sizeof(float) * 4 * 4096);
    for (int s = 0; s < 3; s++)
        for (int v = 0; v < 2; v++) {
            CHECK(train_step(n[v], opt[v], 4, x, t, &loss[v][s]) == DS_OK);
            if (v == 1) {   /* predict (an inference plan), then train again */
                ds_tensor *p = NULL;
                CHECK(ds_net_predict(n[v], xs, 3, &p) == DS_OK);
                ds_tensor_free(p);
                ds_graph *g = ds_net_graph(n[v]);
                ds_graph_set_mode(g, DS_MODE_INFER);
                CHECK(ds_graph_forward(g) == DS_OK);
                CHECK(ds_graph_backward(g, ds_net_loss(n[v])) == DS_ERR_STATE);
                CHECK(strstr(ds_last_error(), "planned for inference"));
            }
        }
    for (int s = 0; s < 3; s++)
        if (loss[0][s] != loss[1][s])
            FAIL("step %d: loss %.9g with predictions between steps, %.9g without", s,
                 loss[1][s], loss[0][s]);
    ds_model *m0 = ds_net_model(n[0]), *m1 = ds_net_model(n[1]);
    CHECK(!memcmp(m0->data, m1->data, m0->data_n * sizeof(float)));
    for (int v = 0; v < 2; v++) {
        ds_optim_free(opt[v]);
        ds_net_free(n[v]);
    }
    ds_tensor_free(xs);
    free(x);
    free(t);
    return TEST_PASS;
}

/* Folds follow the weights without a new plan: after a write through ds_param_data, an
 * optimizer step and weights loaded from a set, a graph kept in DS_MODE_INFER gives the eval
 * plan's outputs for the new weights (those of a twin net given the same updates), and
 * folding never changes the stored weights. */
static void update(ds_net *n, ds_optim *opt, int round, const ds_tensor_set *set)
{
    ds_model *m = ds_net_model(n);
    if (round == 0) {
        ds_param_data(ds_model_find(m, "batch_normalization_1.running_var"))[0] *= 4.0f;
    } else if (round == 1) {
        ds_rng r;
        ds_rng_seed(&r, 77);
        fill_uniform(ds_model_grad(m), ds_model_block_len(m, 1), -1.0f, 1.0f, &r);
        ds_optim_step(opt);
    } else {
        ds_model_from_set(m, set, "set");
    }
}

TEST(infer_plan_refolds_after_weight_updates)
{
    ds_net *n[2] = {load(&cases[2], 3, msg_, cap_), load(&cases[2], 3, msg_, cap_)};
    ds_net *src = load(&cases[2], 3, msg_, cap_);
    CHECK(n[0] && n[1] && src);
    randomize(ds_net_model(src), 99);
    ds_tensor_set *set = ds_tensor_set_create();
    CHECK(set && ds_model_to_set(ds_net_model(src), set) == DS_OK);
    ds_optim *opt[2];
    ds_optim_opts oo = {.kind = DS_OPT_SGD, .lr = 0.1f};
    for (int v = 0; v < 2; v++)
        CHECK((opt[v] = ds_optim_create(ds_net_model(n[v]), &oo)));
    ds_graph *g = ds_net_graph(n[0]);
    ds_model *m0 = ds_net_model(n[0]), *m1 = ds_net_model(n[1]);
    float *x = random_input(n[0], 31), *prev = forward(n[0], DS_MODE_INFER, x);
    int64_t k = ds_node_numel(ds_net_output(n[0]));
    CHECK(prev && g->infer && g->planned);
    int rc = 0;
    for (int round = 0; round < 3 && !rc; round++) {
        update(n[0], opt[0], round, set);
        update(n[1], opt[1], round, set);
        float *got = forward(n[0], DS_MODE_INFER, x), *ref = forward(n[1], DS_MODE_EVAL, x);
        int folds, pools;
        count_marks(g, &folds, &pools);
        CHECK(got && ref && folds == 1 && g->planned);
        CHECK(!memcmp(m0->data, m1->data, m0->data_n * sizeof(float)));
        bool changed = false;
        for (int64_t i = 0; i < k; i++)
            changed |= got[i] != prev[i];
        if (!changed)
            rc = snprintf(msg_, cap_, "round %d: the outputs did not change", round) > 0;
        else
            rc = compare("after the update", got, ref, k, false, msg_, cap_);
        free(prev);
        prev = got;
        free(ref);
    }
    free(prev);
    free(x);
    for (int v = 0; v < 2; v++) {
        ds_optim_free(opt[v]);
        ds_net_free(n[v]);
    }
    ds_net_free(src);
    ds_tensor_set_free(set);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* At batch 1 (work split inside each layer) and at batch 5 (sub-batches), the inference
 * plan gives the same bits at 1, 2 and 3 threads. */
TEST(infer_plan_is_thread_count_independent)
{
    int keep = ds_get_num_threads();
    int rc = 0;
    for (size_t c = 0; c < 3 && !rc; c++)
        for (int64_t batch = 1; batch <= 5 && !rc; batch += 4) {
            float *ref = NULL;
            for (int th = 1; th <= 3 && !rc; th++) {
                ds_set_num_threads(th);
                ds_net *n = load(&cases[c], batch, msg_, cap_);
                if (!n) {
                    rc = 1;
                    break;
                }
                float *x = random_input(n, 41), *y = forward(n, DS_MODE_INFER, x);
                int64_t k = ds_node_numel(ds_net_output(n));
                if (!y)
                    rc = snprintf(msg_, cap_, "%s: %s", cases[c].name, ds_last_error()) > 0;
                else if (ref)
                    rc = compare(cases[c].name, y, ref, k, true, msg_, cap_);
                if (!ref) {
                    ref = y;
                    y = NULL;
                }
                free(x);
                free(y);
                ds_net_free(n);
            }
            free(ref);
        }
    ds_set_num_threads(keep);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* A dense layer at batch 1 with a large weight (linear_row in matmul.c, in every plan): the
 * row of a batch of 2 (sgemm) to rounding, and the same bits at 1, 2 and 3 threads. */
TEST(dense_batch1_row_path_matches_sgemm)
{
    static const case_def wide = {"wide dense",
                                  "input shape=1x1030\ndense units=300 activation=relu\n"
                                  "dense units=5\nloss mse\n", 0, 0, false};
    int keep = ds_get_num_threads(), rc = 0;
    float *ref = NULL, *x = NULL, *pair = NULL;
    for (int th = 1; th <= 3 && !rc; th++) {
        ds_set_num_threads(th);
        ds_net *n = load(&wide, 1, msg_, cap_);
        CHECK(n);
        if (!x)
            x = random_input(n, 51);
        float *y = forward(n, DS_MODE_INFER, x);
        CHECK(y);
        if (!ref) {
            ref = y;
            ds_graph_set_batch(ds_net_graph(n), 2);
            float *x2 = calloc(2 * 1030, sizeof *x2);
            CHECK(x2);
            memcpy(x2, x, 1030 * sizeof *x2);
            pair = forward(n, DS_MODE_INFER, x2);
            free(x2);
            CHECK(pair);
            rc = compare("batch 1 against a row of batch 2", ref, pair, 5, false, msg_, cap_);
        } else {
            rc = compare("batch 1 at another thread count", y, ref, 5, true, msg_, cap_);
            free(y);
        }
        ds_net_free(n);
    }
    ds_set_num_threads(keep);
    free(ref);
    free(pair);
    free(x);
    return rc ? TEST_FAIL : TEST_PASS;
}
