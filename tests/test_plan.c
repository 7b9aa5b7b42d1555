/* test_plan.c - the memory plan: buffers share memory when their lifetimes do not overlap,
 * and every value and gradient is bit for bit what the graph computes without sharing
 * (ds_graph_keep_all); kept nodes and outputs keep their values; a second backward pass
 * needs a forward; forward-only graphs reuse memory along the forward. */
#include "test.h"

#include "../src/internal.h"

TEST(plan_every_op_names_what_its_backward_reads)
{
    for (int i = 0; i < DS_OP_COUNT; i++)
        if (!dsi_ops[i]->bwd_reads)
            FAIL("op %s has no bwd_reads: the plan keeps all its inputs and its output alive "
                 "until its backward", dsi_op_names[i]);
    return TEST_PASS;
}

/* Two copies of a network from a model file, one planned with sharing and one with every
 * node kept, trained side by side. */
typedef struct {
    ds_net *net;
    ds_optim *opt;
} plan_net;

static int load_net(const char *path, const char *weights, int64_t batch, bool keep_all,
                    plan_net *p, char *msg_, size_t cap_)
{
    ds_net_opts o = {.batch = batch, .seed = 3};
    CHECK(ds_net_load(path, &o, &p->net) == DS_OK);
    if (weights)
        CHECK(ds_model_load_weights(ds_net_model(p->net), weights) == DS_OK);
    ds_graph *g = ds_net_graph(p->net);
    ds_graph_keep_all(g, keep_all);
    CHECK(ds_node_requires_grad(ds_net_input(p->net), 1) == DS_OK);   /* saliency too */
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    CHECK(ds_graph_plan(g) == DS_OK);
    CHECK((p->opt = ds_optim_create(ds_net_model(p->net),
                                    &(ds_optim_opts){.kind = DS_OPT_ADAM, .lr = 1e-2f})));
    return 0;
}

static void free_net(plan_net *p)
{
    ds_optim_free(p->opt);
    ds_net_free(p->net);
}

static int same_floats(const char *what, const float *a, const float *b, int64_t n, char *msg_,
                       size_t cap_)
{
    if (n > 0 && (!a || !b))
        FAIL("%s: missing values", what);
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a))
            FAIL("%s[%lld]: %.9g with shared memory, %.9g with every node kept", what,
                 (long long)i, a[i], b[i]);
    return 0;
}

/* One training step on both copies with the same batch; everything must agree bitwise. */
static int step_both(plan_net *p, const float *x, const float *y, int step, char *msg_,
                     size_t cap_)
{
    for (int k = 0; k < 2; k++) {
        ds_net *n = p[k].net;
        ds_graph *g = ds_net_graph(n);
        ds_node *in = ds_net_input(n), *t = ds_net_target(n);
        CHECK(ds_graph_set_input(g, in, x, ds_node_numel(in)) == DS_OK);
        CHECK(ds_graph_set_input(g, t, y, ds_node_numel(t)) == DS_OK);
        ds_model_zero_grad(ds_net_model(n));
        CHECK(ds_graph_forward(g) == DS_OK);
        CHECK(ds_graph_backward(g, ds_net_loss(n)) == DS_OK);
    }
    ds_net *a = p[0].net, *b = p[1].net;
    char what[64];
    snprintf(what, sizeof what, "step %d: loss", step);
    CHECK_OK(same_floats(what, ds_node_data(ds_net_loss(a)), ds_node_data(ds_net_loss(b)), 1,
                         msg_, cap_));
    snprintf(what, sizeof what, "step %d: output", step);
    CHECK_OK(same_floats(what, ds_node_data(ds_net_output(a)), ds_node_data(ds_net_output(b)),
                         ds_node_numel(ds_net_output(a)), msg_, cap_));
    snprintf(what, sizeof what, "step %d: input gradient", step);
    CHECK_OK(same_floats(what, ds_node_grad(ds_net_input(a)), ds_node_grad(ds_net_input(b)),
                         ds_node_numel(ds_net_input(a)), msg_, cap_));
    ds_model *ma = ds_net_model(a), *mb = ds_net_model(b);
    snprintf(what, sizeof what, "step %d: parameter gradient", step);
    CHECK_OK(same_floats(what, ds_model_grad(ma), ds_model_grad(mb), ds_model_block_len(ma, 1),
                         msg_, cap_));
    for (int k = 0; k < 2; k++)
        CHECK(ds_optim_step(p[k].opt) == DS_OK);
    snprintf(what, sizeof what, "step %d: parameters (and running statistics)", step);
    CHECK_OK(same_floats(what, ds_model_data(ma), ds_model_data(mb), ds_model_block_len(ma, 0),
                         msg_, cap_));
    return 0;
}

static int fixture_network(const char *name, size_t *bytes, char *msg_, size_t cap_)
{
    char path[256], weights[256];
    ds_tensor *x = NULL, *y = NULL;
    snprintf(path, sizeof path, "tests/fixtures/net_%s.x.npy", name);
    CHECK(ds_npy_load(path, &x) == DS_OK);
    snprintf(path, sizeof path, "tests/fixtures/net_%s.y.npy", name);
    CHECK(ds_npy_load(path, &y) == DS_OK);
    snprintf(path, sizeof path, "tests/fixtures/net_%s.model", name);
    snprintf(weights, sizeof weights, "tests/fixtures/net_%s.weights.safetensors", name);
    plan_net p[2] = {{0}};
    int rc = load_net(path, weights, ds_tensor_shape(x)[0], false, &p[0], msg_, cap_) ||
             load_net(path, weights, ds_tensor_shape(x)[0], true, &p[1], msg_, cap_);
    if (!rc && ds_tensor_numel(y) != ds_node_numel(ds_net_target(p[0].net))) {
        snprintf(msg_, cap_, "%s: %lld labels for a target of %lld", name,
                 (long long)ds_tensor_numel(y), (long long)ds_node_numel(ds_net_target(p[0].net)));
        rc = 1;
    }
    for (int s = 0; s < 3 && !rc; s++)
        rc = step_both(p, ds_tensor_data(x), ds_tensor_data(y), s, msg_, cap_);
    if (!rc) {
        bytes[0] = ds_graph_bytes(ds_net_graph(p[0].net));
        bytes[1] = ds_graph_bytes(ds_net_graph(p[1].net));
        if (bytes[0] > bytes[1]) {
            snprintf(msg_, cap_, "%s: %zu bytes with sharing, %zu without", name, bytes[0],
                     bytes[1]);
            rc = 1;
        }
    }
    free_net(&p[0]);
    free_net(&p[1]);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return rc;
}

TEST(plan_fixture_networks_train_bit_identical_with_every_node_kept)
{
    const char *names[] = {"mlp", "cnn", "spectra"};
    char note[256] = "";
    for (int i = 0; i < 3; i++) {
        size_t b[2];
        CHECK_OK(fixture_network(names[i], b, msg_, cap_));
        dsi_snprintf_cat(note, sizeof note, "%s%s %zu/%zu B", i ? ", " : "", names[i], b[0], b[1]);
    }
    snprintf(msg_, cap_, "3 Adam steps each; bytes shared/kept: %s", note);
    return TEST_PASS;
}

/* A network of most ops, with a skip connection, a node read by three others, a reshape
 * alias, slices, a concat, dropout, two losses and a second output nobody reads. */
static ds_node *zoo(ds_graph *g, ds_node **x, ds_node **t, ds_node **side, ds_node **hid)
{
    *x = ds_input(g, "x", 4, (int64_t[]){6, 3, 8, 8});
    *t = ds_input(g, "t", 2, (int64_t[]){6, 3});
    ds_node *c = ds_conv(g, *x, 2, &(ds_conv_opts){.name = "c1", .filters = 4, .kernel = {3},
                                                    .padding = DS_PAD_SAME,
                                                    .activation = DS_ACT_RELU});
    ds_node *b = ds_relu(g, ds_batchnorm(g, c, &(ds_batchnorm_opts){.name = "bn"}));
    ds_node *s = ds_add(g, b, c);                                   /* skip */
    ds_node *e = ds_tanh(g, ds_mul_scalar(g, s, 0.5f));
    ds_node *p = ds_pool(g, ds_mul(g, e, s), 2, DS_POOL_MAX, &(ds_pool_opts){.size = {2}});
    ds_node *q = ds_pool(g, p, 2, DS_POOL_AVG, &(ds_pool_opts){.size = {2}});
    ds_node *f = ds_flatten(g, q);
    ds_node *h = ds_dense(g, f, &(ds_dense_opts){.name = "fc1", .units = 12,
                                                 .activation = DS_ACT_SIGMOID});
    h = ds_dropout(g, h, 0.25f);
    *hid = h;
    ds_node *o = ds_dense(g, h, &(ds_dense_opts){.name = "fc2", .units = 6});
    ds_node *o1 = ds_slice(g, o, 1, 0, 3), *o2 = ds_exp(g, ds_slice(g, o, 1, 3, 6));
    ds_node *pred = ds_concat(g, 2, (ds_node *[]){ds_square(g, o1), o2}, 1);
    pred = ds_slice(g, pred, 1, 1, 4);
    *side = ds_softmax(g, ds_elu(g, o, 1.0f), 1);                    /* an output */
    ds_node *l1 = ds_loss_mse(g, pred, *t, DS_REDUCE_MEAN);
    ds_node *l2 = ds_mean(g, ds_abs(g, ds_sub(g, o1, ds_log(g, ds_add_scalar(g, o2, 1)))), 0,
                          NULL, 0);
    return ds_add(g, l1, ds_mul_scalar(g, l2, 0.1f));
}

typedef struct {
    ds_model *m;
    ds_graph *g;
    ds_node *x, *t, *side, *hid, *loss;
} zoo_graph;

static int zoo_build(zoo_graph *z, bool keep_all, bool keep_hidden, char *msg_, size_t cap_)
{
    z->m = ds_model_create(11);
    z->g = ds_graph_create(z->m, 5);
    z->loss = zoo(z->g, &z->x, &z->t, &z->side, &z->hid);
    CHECK(z->loss);
    ds_graph_keep_all(z->g, keep_all);
    if (keep_hidden)
        ds_node_keep(z->hid, 1);
    CHECK(ds_node_requires_grad(z->x, 1) == DS_OK);
    ds_graph_set_mode(z->g, DS_MODE_TRAIN);
    CHECK(ds_graph_plan(z->g) == DS_OK);
    ds_rng r;
    ds_rng_seed(&r, 8);
    fill_uniform(ds_node_data(z->x), ds_node_numel(z->x), -1, 1, &r);
    fill_uniform(ds_node_data(z->t), ds_node_numel(z->t), 0, 2, &r);
    return 0;
}

static void zoo_free(zoo_graph *z)
{
    ds_graph_free(z->g);
    ds_model_free(z->m);
}

TEST(plan_dag_of_most_ops_is_bit_identical_with_every_node_kept)
{
    zoo_graph z[2];
    CHECK_OK(zoo_build(&z[0], false, false, msg_, cap_));
    CHECK_OK(zoo_build(&z[1], true, false, msg_, cap_));
    int rc = 0;
    for (int step = 0; step < 2 && !rc; step++) {
        for (int k = 0; k < 2; k++) {
            ds_model_zero_grad(z[k].m);
            CHECK(ds_graph_forward(z[k].g) == DS_OK);
            CHECK(ds_graph_backward(z[k].g, z[k].loss) == DS_OK);
        }
        rc = same_floats("loss", ds_node_data(z[0].loss), ds_node_data(z[1].loss), 1, msg_, cap_) ||
             same_floats("side output", ds_node_data(z[0].side), ds_node_data(z[1].side),
                         ds_node_numel(z[0].side), msg_, cap_) ||
             same_floats("input gradient", ds_node_grad(z[0].x), ds_node_grad(z[1].x),
                         ds_node_numel(z[0].x), msg_, cap_) ||
             same_floats("parameter gradient", ds_model_grad(z[0].m), ds_model_grad(z[1].m),
                         ds_model_block_len(z[0].m, 1), msg_, cap_);
    }
    size_t shared = ds_graph_bytes(z[0].g), kept = ds_graph_bytes(z[1].g);
    zoo_free(&z[0]);
    zoo_free(&z[1]);
    if (rc)
        return TEST_FAIL;
    CHECK(shared < kept);
    snprintf(msg_, cap_, "%zu bytes shared, %zu kept", shared, kept);
    return TEST_PASS;
}

TEST(plan_kept_nodes_and_outputs_keep_their_values)
{
    zoo_graph z, ref;
    CHECK_OK(zoo_build(&z, false, true, msg_, cap_));
    CHECK_OK(zoo_build(&ref, true, false, msg_, cap_));
    CHECK(z.hid->persist && z.side->persist && z.loss->persist && !z.g->keep_all);
    int64_t nh = ds_node_numel(z.hid), ns = ds_node_numel(z.side);
    float *before = malloc((size_t)(nh + ns + 1) * sizeof *before);
    CHECK(before);
    int rc = 0;
    if (ds_graph_forward(z.g) != DS_OK || ds_graph_forward(ref.g) != DS_OK)
        rc = 1, snprintf(msg_, cap_, "forward: %s", ds_last_error());
    if (!rc) {
        memcpy(before, ds_node_data(z.hid), (size_t)nh * sizeof *before);
        memcpy(before + nh, ds_node_data(z.side), (size_t)ns * sizeof *before);
        before[nh + ns] = ds_node_data(z.loss)[0];
        if (ds_graph_backward(z.g, z.loss) != DS_OK || ds_graph_backward(ref.g, ref.loss) != DS_OK)
            rc = 1, snprintf(msg_, cap_, "backward: %s", ds_last_error());
    }
    rc = rc || same_floats("kept node after backward", ds_node_data(z.hid), before, nh, msg_,
                           cap_) ||
         same_floats("output after backward", ds_node_data(z.side), before + nh, ns, msg_, cap_) ||
         same_floats("loss after backward", ds_node_data(z.loss), before + nh + ns, 1, msg_,
                     cap_) ||
         same_floats("kept node", ds_node_data(z.hid), ds_node_data(ref.hid), nh, msg_, cap_) ||
         same_floats("kept node's gradient", ds_node_grad(z.hid), ds_node_grad(ref.hid), nh, msg_,
                     cap_) ||
         same_floats("input gradient", ds_node_grad(z.x), ds_node_grad(ref.x),
                     ds_node_numel(z.x), msg_, cap_);
    free(before);
    /* the gradient of an output nothing seeded reads zero, as without sharing */
    for (int64_t i = 0; !rc && i < ns; i++)
        if (ds_node_grad(z.side) && ds_node_grad(z.side)[i] != 0)
            rc = 1, snprintf(msg_, cap_, "side output's gradient[%lld] = %g", (long long)i,
                             ds_node_grad(z.side)[i]);
    zoo_free(&z);
    zoo_free(&ref);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(plan_seeded_backward_from_an_inner_node)
{
    zoo_graph z[2];
    CHECK_OK(zoo_build(&z[0], false, false, msg_, cap_));
    CHECK_OK(zoo_build(&z[1], true, false, msg_, cap_));
    CHECK(!z[0].hid->persist);
    int64_t nh = ds_node_numel(z[0].hid);
    float *seed = malloc((size_t)nh * sizeof *seed);
    CHECK(seed);
    ds_rng r;
    ds_rng_seed(&r, 4);
    fill_uniform(seed, nh, -1, 1, &r);
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        ds_model_zero_grad(z[k].m);
        if (ds_graph_forward(z[k].g) || ds_graph_backward_seed(z[k].g, z[k].hid, seed))
            rc = 1, snprintf(msg_, cap_, "%s", ds_last_error());
    }
    free(seed);
    rc = rc || same_floats("input gradient", ds_node_grad(z[0].x), ds_node_grad(z[1].x),
                           ds_node_numel(z[0].x), msg_, cap_) ||
         same_floats("parameter gradient", ds_model_grad(z[0].m), ds_model_grad(z[1].m),
                     ds_model_block_len(z[0].m, 1), msg_, cap_);
    zoo_free(&z[0]);
    zoo_free(&z[1]);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(plan_second_backward_needs_a_forward_unless_every_node_is_kept)
{
    zoo_graph z;
    CHECK_OK(zoo_build(&z, false, false, msg_, cap_));
    CHECK(z.g->bwd_clobbers);   /* otherwise this test shows nothing */
    CHECK(ds_graph_forward(z.g) == DS_OK && ds_graph_backward(z.g, z.loss) == DS_OK);
    CHECK(ds_graph_backward(z.g, z.loss) == DS_ERR_STATE);
    CHECK(strstr(ds_last_error(), "ds_graph_keep_all"));
    CHECK(ds_graph_forward(z.g) == DS_OK && ds_graph_backward(z.g, z.loss) == DS_OK);
    /* kept: two passes after one forward add up to twice one pass (dropout mask fixed; up
     * to rounding, as sgemm adds into the accumulated gradient) */
    ds_graph_keep_all(z.g, 1);
    ds_model_zero_grad(z.m);
    CHECK(ds_graph_forward(z.g) == DS_OK && ds_graph_backward(z.g, z.loss) == DS_OK);
    int64_t n = ds_model_block_len(z.m, 1);
    float *once = malloc((size_t)n * sizeof *once);
    CHECK(once);
    memcpy(once, ds_model_grad(z.m), (size_t)n * sizeof *once);
    int rc = 0;
    if (ds_graph_backward(z.g, z.loss) != DS_OK)
        rc = 1, snprintf(msg_, cap_, "second backward with every node kept: %s", ds_last_error());
    for (int64_t i = 0; !rc && i < n; i++)
        if (!(fabsf(ds_model_grad(z.m)[i] - 2 * once[i]) <= 1e-5f * (1 + fabsf(once[i]))))
            rc = 1, snprintf(msg_, cap_, "gradient[%lld]: %g after two passes, %g after one",
                             (long long)i, ds_model_grad(z.m)[i], once[i]);
    free(once);
    zoo_free(&z);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(plan_forward_only_reuses_memory_along_the_forward)
{
    /* nothing trainable and no input gradient: no backward lifetimes at all */
    ds_node *last = NULL, *mid = NULL;
    ds_graph *g[2];
    ds_model *m = ds_model_create(1);
    for (int k = 0; k < 2; k++) {
        g[k] = ds_graph_create(m, 1);
        ds_node *x = ds_input(g[k], "x", 2, (int64_t[]){64, 256});
        ds_node *h = x;
        for (int i = 0; i < 6; i++) {
            h = ds_exp(g[k], ds_mul_scalar(g[k], ds_tanh(g[k], h), 0.5f));
            if (i == 2)
                mid = h;
        }
        last = ds_sum(g[k], h, 1, (int[]){1}, 0);
        CHECK(last);
        ds_graph_keep_all(g[k], k);
        CHECK(ds_graph_plan(g[k]) == DS_OK);
        for (int64_t i = 0; i < ds_node_numel(x); i++)
            ds_node_data(x)[i] = (float)(i % 17) / 8.0f - 1.0f;
    }
    size_t shared = ds_graph_bytes(g[0]), kept = ds_graph_bytes(g[1]);
    CHECK(shared * 4 < kept);
    ds_node *l0 = ds_graph_node(g[0], last->id), *l1 = last;
    CHECK(ds_graph_forward(g[0]) == DS_OK && ds_graph_forward(g[1]) == DS_OK);
    CHECK_OK(same_floats("output", ds_node_data(l0), ds_node_data(l1), ds_node_numel(l1), msg_,
                         cap_));
    /* forward_to stops with its last node's values in place */
    ds_node *m0 = ds_graph_node(g[0], mid->id);
    CHECK(!m0->persist);
    CHECK(ds_graph_forward_to(g[0], m0) == DS_OK);
    CHECK_OK(same_floats("forward_to's node", ds_node_data(m0), ds_node_data(mid),
                         ds_node_numel(mid), msg_, cap_));
    snprintf(msg_, cap_, "%zu bytes shared, %zu kept", shared, kept);
    ds_graph_free(g[0]);
    ds_graph_free(g[1]);
    ds_model_free(m);
    return TEST_PASS;
}

TEST(plan_keeps_input_values_across_a_new_plan)
{
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){4, 5});
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.units = 3, .activation = DS_ACT_TANH});
    ds_node *l = ds_sum(g, h, 0, NULL, 0);
    CHECK(l && ds_graph_plan(g) == DS_OK);
    for (int i = 0; i < 20; i++)
        ds_node_data(x)[i] = (float)i;
    ds_node_keep(h, 1);   /* h was not kept: plans again */
    CHECK(!g->planned && ds_graph_plan(g) == DS_OK && h->persist);
    ds_node_keep(l, 1);   /* the loss is kept anyway: the plan stands */
    CHECK(g->planned);
    CHECK(ds_node_requires_grad(x, 1) == DS_OK && ds_graph_plan(g) == DS_OK);
    for (int i = 0; i < 20; i++)
        CHECK(ds_node_data(x)[i] == (float)i);
    ds_graph_free(g);
    ds_model_free(m);
    return TEST_PASS;
}

/* (b): the bench models at their batch sizes. */
TEST(plan_bench_models_share_most_memory)
{
    static const struct { const char *name; int batch; } models[] = {
        {"mlp", 64}, {"lenet", 64}, {"spectra", 64}, {"galaxy", 32}, {"galaxy_bn", 32},
    };
    char note[512] = "";
    for (int i = 0; i < 5; i++) {
        char path[128];
        snprintf(path, sizeof path, "bench/models/%s.model", models[i].name);
        size_t b[2];
        for (int k = 0; k < 2; k++) {
            ds_net *n;
            ds_net_opts o = {.batch = models[i].batch, .seed = 1};
            CHECK(ds_net_load(path, &o, &n) == DS_OK);
            ds_graph_keep_all(ds_net_graph(n), k);
            CHECK(ds_graph_plan(ds_net_graph(n)) == DS_OK);
            b[k] = ds_graph_bytes(ds_net_graph(n));
            ds_net_free(n);
        }
        CHECK(b[0] <= b[1]);
        /* the CNNs: well under the sum of all their buffers */
        if (strstr(models[i].name, "galaxy") || !strcmp(models[i].name, "spectra"))
            if (!(3 * b[0] < 2 * b[1]))
                FAIL("%s at batch %d: %.1f MB planned, %.1f MB for all buffers", models[i].name,
                     models[i].batch, b[0] / 1048576.0, b[1] / 1048576.0);
        dsi_snprintf_cat(note, sizeof note, "%s%s %.1f/%.1f", i ? ", " : "", models[i].name,
                         b[0] / 1048576.0, b[1] / 1048576.0);
    }
    snprintf(msg_, cap_, "MB planned/all buffers: %s", note);
    return TEST_PASS;
}

/* A model or tensor asking for more than ds_get_memory_limit() is refused with a message giving
 * the size and the limit, before anything is allocated; a smaller one under the same limit
 * builds. The limit is restored afterwards. */
TEST(plan_memory_limit_refuses_oversized_models_and_tensors)
{
    size_t old = ds_get_memory_limit();
    CHECK(old > 0);
    ds_set_memory_limit((size_t)64 << 20);
    ds_net *n = NULL;
    /* 100000 x 100000 weights: 40 GB */
    ds_status st = ds_net_parse("input shape=100000\ndense units=100000\n", "big.model", NULL, &n);
    char e[512];
    snprintf(e, sizeof e, "%s", ds_last_error());
    bool named = strstr(e, "big.model:2") && strstr(e, "memory limit") && strstr(e, "0.0671 GB");
    /* activations over the limit: 16 x 1 x 2048 x 2048 floats (268 MB) in one buffer */
    ds_net *m = NULL;
    ds_net_opts o = {.batch = 16};
    ds_status st2 = ds_net_parse("input shape=1x2048x2048\nconv2d filters=4 kernel=3\n", "wide.model",
                                 &o, &m);
    if (st2 == DS_OK)   /* built; its memory is planned before the first pass */
        st2 = ds_graph_plan(ds_net_graph(m));
    char e2[512];
    snprintf(e2, sizeof e2, "%s", ds_last_error());
    int64_t shape[2] = {1 << 20, 1 << 20};
    ds_tensor *t = ds_tensor_create(2, shape);
    bool tnamed = strstr(ds_last_error(), "[1048576, 1048576]") && strstr(ds_last_error(), "memory limit");
    ds_net *ok = NULL;
    ds_status st3 = ds_net_parse("input shape=100\ndense units=100\n", "small.model", NULL, &ok);
    ds_set_memory_limit(old);
    ds_net_free(n);
    ds_net_free(m);
    ds_net_free(ok);
    ds_tensor_free(t);
    if (st != DS_ERR_NOMEM || !named)
        FAIL("40 GB of weights: status %d, message '%s'", st, e);
    if (st2 != DS_ERR_NOMEM || !strstr(e2, "memory limit"))
        FAIL("a 1 GB activation: status %d, message '%s'", st2, e2);
    if (t || !tnamed)
        FAIL("a 4 TB tensor was %s: '%s'", t ? "allocated" : "refused without the sizes",
             ds_last_error());
    CHECK(st3 == DS_OK);
    CHECK(ds_get_memory_limit() == old);
    return TEST_PASS;
}
