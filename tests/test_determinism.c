/* test_determinism.c - training is reproducible: the same seed gives bit-identical weights,
 * at one thread and at two, and one thread and two threads agree bit for bit as well (every
 * kernel splits its work by the shapes, never by the thread count). */
#include "test.h"

static const char *const cnn =
    "input shape=1x32x32\n"
    "conv2d filters=8 kernel=3 padding=same activation=relu\n"
    "batchnorm\n"
    "maxpool size=2\n"
    "conv2d filters=8 kernel=3 padding=same\n"
    "relu\n"
    "maxpool size=2\n"
    "flatten\n"
    "dense units=64 activation=relu\n"
    "dropout rate=0.25\n"
    "dense units=2\n"
    "loss mse\n"
    "optimizer adam lr=1e-3\n";

/* Two epochs with shuffling and dropout on 128 random samples (large enough that the
 * kernels split their work over threads); returns the final weights. */
static float *train(int threads, int64_t *n)
{
    int keep = ds_get_num_threads();
    ds_set_num_threads(threads);
    ds_net *net = NULL;
    float *w = NULL;
    *n = 0;
    ds_net_opts no = {.batch = 32, .seed = 5};
    ds_tensor *x = ds_tensor_create(4, (int64_t[]){128, 1, 32, 32});
    ds_tensor *y = ds_tensor_create(2, (int64_t[]){128, 2});
    if (x && y && ds_net_parse(cnn, "cnn.model", &no, &net) == DS_OK) {
        ds_rng r;
        ds_rng_seed(&r, 8);
        fill_uniform(ds_tensor_data(x), ds_tensor_numel(x), -1, 1, &r);
        fill_uniform(ds_tensor_data(y), ds_tensor_numel(y), -1, 1, &r);
        ds_fit_opts fo = {.epochs = 2, .batch_size = 32, .seed = 11};
        ds_fit_result res;
        if (ds_net_fit(net, x, y, NULL, NULL, &fo, &res) == DS_OK) {
            ds_model *m = ds_net_model(net);
            *n = ds_model_block_len(m, 0);
            if ((w = malloc((size_t)*n * sizeof *w)))
                memcpy(w, ds_model_data(m), (size_t)*n * sizeof *w);
        }
    }
    ds_net_free(net);
    ds_tensor_free(x);
    ds_tensor_free(y);
    ds_set_num_threads(keep);
    return w;
}

TEST(training_is_bit_identical_for_a_seed_and_across_thread_counts)
{
    int64_t n[4];
    float *w[4] = {train(1, &n[0]), train(1, &n[1]), train(2, &n[2]), train(2, &n[3])};
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= w[i] && n[i] == n[0] && n[0] > 0;
    int same_1 = ok && !memcmp(w[0], w[1], (size_t)n[0] * sizeof(float));
    int same_2 = ok && !memcmp(w[2], w[3], (size_t)n[0] * sizeof(float));
    int same_12 = ok && !memcmp(w[0], w[2], (size_t)n[0] * sizeof(float));
    for (int i = 0; i < 4; i++)
        free(w[i]);
    CHECK(ok);
    CHECK(same_1);
    CHECK(same_2);
    CHECK(same_12);
    snprintf(msg_, cap_, "%lld weights identical after 2 epochs, 1 and 2 threads", (long long)n[0]);
    return TEST_PASS;
}
