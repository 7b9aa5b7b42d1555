/* xor_and_regression.c - the C API in a few dozen lines: a 2-2-1 network learns XOR, then
 * a small MLP fits a noisy 1-D function, and both print what they learned. */
#include <deepsky.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TRY(x) do { if (!(x)) { fprintf(stderr, "error: %s\n", ds_last_error()); return 1; } } while (0)

static int xor_demo(void)
{
    const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1}, Y[4] = {0, 1, 1, 0};
    /* A 2-2-1 network has local minima on XOR: about a third of random starts end in one
     * (PyTorch's too, from the same starting weights). Seed 2 does not. */
    ds_model *m = ds_model_create(2);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){4, 2});
    ds_node *y = ds_input(g, "y", 2, (int64_t[]){4, 1});
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.name = "hidden", .units = 2, .activation = DS_ACT_TANH});
    ds_node *logit = ds_dense(g, h, &(ds_dense_opts){.name = "out", .units = 1});
    ds_node *loss = ds_loss_bce_logits(g, logit, y, DS_REDUCE_MEAN);
    TRY(loss);
    ds_node_keep(logit, 1);   /* read below: intermediate nodes otherwise share memory */
    ds_optim *opt = ds_optim_create(m, &(ds_optim_opts){.kind = DS_OPT_ADAM, .lr = 0.05f});
    TRY(opt);
    TRY(ds_graph_set_input(g, x, X, 8) == DS_OK && ds_graph_set_input(g, y, Y, 4) == DS_OK);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    for (int step = 0; step <= 500; step++) {
        ds_model_zero_grad(m);
        TRY(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, loss) == DS_OK);
        TRY(ds_optim_step(opt) == DS_OK);
        if (step % 100 == 0)
            printf("  xor step %3d  loss %.4f\n", step, ds_node_data(loss)[0]);
    }
    ds_graph_set_mode(g, DS_MODE_EVAL);
    TRY(ds_graph_forward(g) == DS_OK);
    printf("XOR learned by a 2-2-1 network (Adam, 500 steps):\n");
    int right = 0;
    for (int i = 0; i < 4; i++) {
        float p = 1.0f / (1.0f + expf(-ds_node_data(logit)[i]));
        right += (p > 0.5f) == (Y[i] > 0.5f);
        printf("  %g xor %g = %g   predicted p = %.3f\n", X[2 * i], X[2 * i + 1], Y[i], p);
    }
    printf("  %d of 4 correct\n\n", right);
    ds_optim_free(opt);
    ds_graph_free(g);
    ds_model_free(m);
    return right == 4 ? 0 : 1;
}

/* y = sin(3x) + noise on [-1, 1], fitted by 1-32-32-1 with mini-batches of 32. */
static int regression_demo(void)
{
    enum { N = 512, B = 32 };
    static float xs[N], ys[N];
    ds_rng r;
    ds_rng_seed(&r, 7);
    for (int i = 0; i < N; i++) {
        xs[i] = (float)(2 * ds_rng_uniform(&r) - 1);
        ys[i] = sinf(3 * xs[i]) + 0.05f * (float)ds_rng_normal(&r);
    }
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 2);
    ds_node *x = ds_input(g, "x", 2, (int64_t[]){B, 1});
    ds_node *y = ds_input(g, "y", 2, (int64_t[]){B, 1});
    ds_node *h = ds_dense(g, x, &(ds_dense_opts){.units = 32, .activation = DS_ACT_TANH});
    h = ds_dense(g, h, &(ds_dense_opts){.units = 32, .activation = DS_ACT_TANH});
    ds_node *pred = ds_dense(g, h, &(ds_dense_opts){.units = 1});
    ds_node *loss = ds_loss_mse(g, pred, y, DS_REDUCE_MEAN);
    TRY(loss);
    ds_node_keep(pred, 1);
    char *summary = ds_graph_summary(g);
    if (summary)
        printf("%s\n", summary);
    free(summary);
    ds_optim *opt = ds_optim_create(m, &(ds_optim_opts){.kind = DS_OPT_ADAM, .lr = 1e-2f});
    TRY(opt);
    ds_graph_set_mode(g, DS_MODE_TRAIN);
    for (int epoch = 1; epoch <= 300; epoch++) {
        double sum = 0;
        for (int b = 0; b < N / B; b++) {
            TRY(ds_graph_set_input(g, x, xs + b * B, B) == DS_OK);
            TRY(ds_graph_set_input(g, y, ys + b * B, B) == DS_OK);
            ds_model_zero_grad(m);
            TRY(ds_graph_forward(g) == DS_OK && ds_graph_backward(g, loss) == DS_OK);
            TRY(ds_optim_step(opt) == DS_OK);
            sum += ds_node_data(loss)[0];
        }
        if (epoch % 60 == 0)
            printf("  regression epoch %3d  train MSE %.5f\n", epoch, sum / (N / B));
    }
    /* predict on a grid with a batch of 1 (the same graph, re-planned) */
    ds_graph_set_mode(g, DS_MODE_EVAL);
    TRY(ds_graph_set_batch(g, 1) == DS_OK);
    printf("sin(3x) learned by 1-32-32-1 (noise sigma 0.05):\n");
    double worst = 0;
    for (int i = 0; i <= 8; i++) {
        float xv = -1.0f + 0.25f * (float)i, zero = 0;
        TRY(ds_graph_set_input(g, x, &xv, 1) == DS_OK && ds_graph_set_input(g, y, &zero, 1) == DS_OK);
        TRY(ds_graph_forward(g) == DS_OK);
        float p = ds_node_data(pred)[0];
        worst = fmax(worst, fabs(p - sinf(3 * xv)));
        printf("  x = %+5.2f   sin(3x) = %+.3f   predicted %+.3f\n", xv, sinf(3 * xv), p);
    }
    printf("  largest error on the grid: %.3f\n", worst);
    ds_optim_free(opt);
    ds_graph_free(g);
    ds_model_free(m);
    return worst < 0.1 ? 0 : 1;
}

int main(void)
{
    int rc = xor_demo();
    rc |= regression_demo();
    return rc;
}
