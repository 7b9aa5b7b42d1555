/* test_networks.c - three small whole networks (MLP, CNN with batch norm, 1-D CNN for
 * spectra) against PyTorch: loss, output, input gradient and every parameter gradient
 * (fixtures by tests/fixtures/gen_networks.py). */
#include "test.h"

typedef ds_node *(*build_fn)(ds_graph *g, ds_node *x, ds_node *y);

static ds_node *build_mlp(ds_graph *g, ds_node *x, ds_node *y)
{
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.name = "fc1", .units = 32, .activation = DS_ACT_RELU});
    h = ds_dense(g, h, &(ds_dense_opts){.name = "fc2", .units = 16, .activation = DS_ACT_TANH});
    h = ds_dense(g, h, &(ds_dense_opts){.name = "out", .units = 3});
    return ds_loss_cce_logits_int(g, h, y, DS_REDUCE_MEAN);
}

static ds_node *build_cnn(ds_graph *g, ds_node *x, ds_node *y)
{
    ds_node *h = ds_conv(g, x, 2, &(ds_conv_opts){.name = "conv1", .filters = 4, .kernel = {3},
                                                   .padding = DS_PAD_SAME});
    h = ds_relu(g, ds_batchnorm(g, h, &(ds_batchnorm_opts){.name = "bn1"}));
    h = ds_pool(g, h, 2, DS_POOL_MAX, &(ds_pool_opts){.size = {2}});
    h = ds_conv(g, h, 2, &(ds_conv_opts){.name = "conv2", .filters = 6, .kernel = {3}});
    h = ds_relu(g, ds_batchnorm(g, h, &(ds_batchnorm_opts){.name = "bn2"}));
    h = ds_dense(g, ds_flatten(g, h), &(ds_dense_opts){.name = "fc", .units = 2});
    return ds_loss_mse(g, h, y, DS_REDUCE_MEAN);
}

static ds_node *build_spectra(ds_graph *g, ds_node *x, ds_node *y)
{
    ds_node *h = ds_conv(g, x, 1, &(ds_conv_opts){.name = "c1", .filters = 4, .kernel = {7},
                                                   .pad = {3}, .activation = DS_ACT_RELU});
    h = ds_pool(g, h, 1, DS_POOL_AVG, &(ds_pool_opts){.size = {4}});
    h = ds_conv(g, h, 1, &(ds_conv_opts){.name = "c2", .filters = 8, .kernel = {5}, .stride = {2},
                                          .pad = {2}, .dilation = {2}, .activation = DS_ACT_ELU});
    h = ds_global_pool(g, h, DS_POOL_MAX);
    h = ds_dense(g, h, &(ds_dense_opts){.name = "fc", .units = 3});
    return ds_loss_mse(g, h, y, DS_REDUCE_MEAN);
}

/* Output node of the loss: its first input. */
static ds_node *loss_input(ds_graph *g, ds_node *loss)
{
    for (int i = ds_graph_node_count(g) - 1; i >= 0; i--) {
        ds_node *n = ds_graph_node(g, i);
        if (n == loss)
            continue;
        if (strcmp(ds_node_op_name(n), "param") && strcmp(ds_node_op_name(n), "input"))
            return n;
    }
    return NULL;
}

static int check_network(const char *name, build_fn build, char *msg_, size_t cap_)
{
    char path[256];
    ds_tensor *x = NULL, *y = NULL;
    snprintf(path, sizeof path, "tests/fixtures/net_%s.x.npy", name);
    CHECK(ds_npy_load(path, &x) == DS_OK);
    snprintf(path, sizeof path, "tests/fixtures/net_%s.y.npy", name);
    CHECK(ds_npy_load(path, &y) == DS_OK);
    char gname[64];
    snprintf(gname, sizeof gname, "net_%s.grad", name);
    ds_tensor_set *ref = fixture_load(gname, msg_, cap_);
    if (!ref)
        return TEST_FAIL;

    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *xn = ds_input(g, "x", ds_tensor_ndim(x), ds_tensor_shape(x));
    ds_node *yn = ds_input(g, "y", ds_tensor_ndim(y), ds_tensor_shape(y));
    ds_node *loss = build(g, xn, yn);
    CHECK(loss);
    ds_node *out = loss_input(g, loss);
    ds_node_keep(out, 1);   /* read after backward */
    snprintf(path, sizeof path, "tests/fixtures/net_%s.weights.safetensors", name);
    CHECK(ds_model_load_weights(m, path) == DS_OK);
    CHECK(ds_node_requires_grad(xn, 1) == DS_OK);
    ds_graph_set_mode(g, DS_BN_BATCH);   /* dropout off, batch statistics, no update */
    CHECK(ds_graph_set_input(g, xn, ds_tensor_data(x), ds_tensor_numel(x)) == DS_OK);
    CHECK(ds_graph_set_input(g, yn, ds_tensor_data(y), ds_tensor_numel(y)) == DS_OK);
    ds_model_zero_grad(m);
    CHECK(ds_graph_forward(g) == DS_OK);
    CHECK(ds_graph_backward(g, loss) == DS_OK);

    int rc = fixture_compare(ref, "loss", ds_node_data(loss), 1, 1e-4, 1e-6, msg_, cap_);
    if (!rc)
        rc = fixture_compare(ref, "output", ds_node_data(out), ds_node_numel(out), 1e-4, 1e-5, msg_, cap_);
    if (!rc)
        rc = fixture_compare(ref, "input", ds_node_grad(xn), ds_node_numel(xn), 1e-4, 1e-6, msg_, cap_);
    for (int i = 0; !rc && i < ds_model_param_count(m); i++) {
        ds_param *p = ds_model_param(m, i);
        if (!ds_param_trainable(p))
            continue;
        rc = fixture_compare(ref, ds_param_name(p), ds_param_grad(p), ds_param_numel(p), 1e-4,
                             1e-6, msg_, cap_);
    }
    if (!rc)
        coverage_mark_all(loss, COVER_TORCH);   /* the input and every trainable parameter */
    ds_graph_free(g);
    ds_model_free(m);
    ds_tensor_set_free(ref);
    ds_tensor_free(x);
    ds_tensor_free(y);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(network_mlp_matches_pytorch) { return check_network("mlp", build_mlp, msg_, cap_); }
TEST(network_cnn_batchnorm_matches_pytorch) { return check_network("cnn", build_cnn, msg_, cap_); }
TEST(network_spectra_1d_matches_pytorch) { return check_network("spectra", build_spectra, msg_, cap_); }
