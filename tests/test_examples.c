/* test_examples.c - every model file of examples/ loads, plans a training step and sizes its
 * optimizer's state, as `deepsky summary` does (a cosine schedule without t_max included:
 * it spans the run when training, and sizes no differently). */
#include "test.h"

#include <glob.h>

TEST(examples_load_plan_and_size_their_optimizer)
{
    glob_t gl;
    CHECK(glob("examples/*.model", 0, NULL, &gl) == 0);
    CHECK(gl.gl_pathc >= 5);
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        ds_net *n = NULL;
        ds_net_opts no = {.batch = 4};
        ds_status st = ds_net_load(gl.gl_pathv[i], &no, &n);
        if (!st)
            st = ds_graph_plan(ds_net_graph(n));
        int64_t state = st ? 0 : ds_optim_state_numel(ds_net_optim_opts(n), ds_net_model(n));
        ds_net_free(n);
        if (st || state <= 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s: %s", gl.gl_pathv[i], ds_last_error());
            globfree(&gl);
            FAIL("%s", msg);
        }
    }
    globfree(&gl);
    return TEST_PASS;
}
