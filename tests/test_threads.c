/* test_threads.c - what the header promises about threads: several inference graphs on one
 * model, each run by its own POSIX thread, give bit for bit what one thread gives. */
#include "test.h"

#include <pthread.h>

enum { BATCH = 8, ROUNDS = 25, SIDE = 16 };

/* A small CNN with every kind of state an op may have at inference: convolution (Winograd
 * and im2col), batch norm with running statistics, pooling, dropout, dense. Explicit layer
 * names, so a second graph on the same model finds the same parameters. */
static ds_node *build(ds_graph *g)
{
    ds_node *x = ds_input(g, "x", 4, (int64_t[]){BATCH, 1, SIDE, SIDE});
    ds_node *h = ds_conv(g, x, 2, &(ds_conv_opts){.name = "c1", .filters = 8, .kernel = {3},
                                                  .padding = DS_PAD_SAME,
                                                  .activation = DS_ACT_RELU});
    h = ds_conv(g, h, 2, &(ds_conv_opts){.name = "c2", .filters = 8, .kernel = {3},
                                         .padding = DS_PAD_SAME});
    h = ds_relu(g, ds_batchnorm(g, h, &(ds_batchnorm_opts){.name = "bn"}));
    h = ds_pool(g, h, 2, DS_POOL_MAX, &(ds_pool_opts){.size = {2}});
    h = ds_dropout(g, ds_flatten(g, h), 0.3f);
    return ds_dense(g, h, &(ds_dense_opts){.name = "d", .units = 3});
}

typedef struct {
    ds_graph *g;
    ds_node *y;
    const float *x;      /* ROUNDS batches */
    float *out;          /* ROUNDS x BATCH x 3 */
    ds_status st;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    ds_node *x = ds_graph_input(j->g, 0);
    int64_t nx = ds_node_numel(x), ny = ds_node_numel(j->y);
    j->st = DS_OK;
    for (int r = 0; r < ROUNDS && j->st == DS_OK; r++) {
        j->st = ds_graph_set_input(j->g, x, j->x + r * nx, nx);
        if (j->st == DS_OK)
            j->st = ds_graph_forward(j->g);
        if (j->st == DS_OK)
            memcpy(j->out + r * ny, ds_node_data(j->y), (size_t)ny * sizeof(float));
    }
    return NULL;
}

TEST(threads_inference_graphs_share_one_model)
{
    ds_model *m = ds_model_create(3);
    ds_graph *g[2] = {ds_graph_create(m, 1), ds_graph_create(m, 2)};
    ds_node *y[2] = {build(g[0]), build(g[1])};
    CHECK(y[0] && y[1]);
    CHECK(ds_model_param_count(m) == 10);   /* the second graph created no parameter */
    ds_rng r;
    ds_rng_seed(&r, 11);
    /* running statistics away from their initial 0 and 1, so batch norm's eval path counts */
    float *run_stats = ds_param_data(ds_model_find(m, "bn.running_var"));
    for (int c = 0; c < 8; c++)
        run_stats[c] = 0.5f + (float)c / 4;
    int64_t nx = BATCH * SIDE * SIDE, ny = BATCH * 3;
    float *x = malloc(2 * ROUNDS * nx * sizeof *x);
    float *want = malloc(2 * ROUNDS * ny * sizeof *want), *got = malloc(2 * ROUNDS * ny * sizeof *got);
    CHECK(x && want && got);
    fill_uniform(x, 2 * ROUNDS * nx, -1, 1, &r);
    job jobs[2];
    for (int k = 0; k < 2; k++) {
        ds_graph_set_mode(g[k], DS_MODE_EVAL);
        jobs[k] = (job){g[k], y[k], x + k * ROUNDS * nx, want + k * ROUNDS * ny, DS_OK};
        run_job(&jobs[k]);   /* one thread, one graph after the other: the reference */
        CHECK(jobs[k].st == DS_OK);
        jobs[k].out = got + k * ROUNDS * ny;
    }
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        CHECK(pthread_create(&t[k], NULL, run_job, &jobs[k]) == 0);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        CHECK(jobs[k].st == DS_OK);
    int64_t diff = 0;
    for (int64_t i = 0; i < 2 * ROUNDS * ny; i++)
        diff += memcmp(&got[i], &want[i], sizeof got[i]) != 0;
    free(x);
    free(want);
    free(got);
    ds_graph_free(g[0]);
    ds_graph_free(g[1]);
    ds_model_free(m);
    if (diff)
        FAIL("%lld of %lld outputs differ between two threads and one", (long long)diff,
             (long long)(2 * ROUNDS * ny));
    snprintf(msg_, cap_, "%d forward passes on 2 threads, bit-identical", 2 * ROUNDS);
    return TEST_PASS;
}
