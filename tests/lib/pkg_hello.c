/* pkg_hello.c - the smallest deepsky program, built by tests/check_lib.sh against an
 * installed copy through pkg-config: a 2x3 times 3x2 product through a graph, checked
 * against the hand-computed values, and the header's version against the library's. */
#include <deepsky.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    const float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {7, 8, 9, 10, 11, 12};
    const float want[4] = {58, 64, 139, 154};
    if (strncmp(ds_build_info(), DS_VERSION " ", strlen(DS_VERSION) + 1) != 0) {
        fprintf(stderr, "header version %s, library %s\n", DS_VERSION, ds_build_info());
        return 1;
    }
    ds_model *m = ds_model_create(1);
    ds_graph *g = ds_graph_create(m, 1);
    ds_node *a = ds_input(g, "a", 2, (int64_t[]){2, 3});
    ds_node *b = ds_input(g, "b", 2, (int64_t[]){3, 2});
    ds_node *c = ds_matmul(g, a, b);
    int ok = c && ds_graph_set_input(g, a, A, 6) == DS_OK &&
             ds_graph_set_input(g, b, B, 6) == DS_OK && ds_graph_forward(g) == DS_OK;
    for (int i = 0; ok && i < 4; i++)
        ok = ds_node_data(c)[i] == want[i];
    if (ok)
        printf("deepsky %s: ok\n", ds_build_info());
    else
        fprintf(stderr, "pkg_hello: %s\n", *ds_last_error() ? ds_last_error() : "wrong product");
    ds_graph_free(g);
    ds_model_free(m);
    return ok ? 0 : 1;
}
