/* classic.c - fuzz target for the classic model reader: a model file's bytes loaded from a
 * file (ds_classic_load) and from memory (ds_classic_load_mem), which must agree in status
 * and message; a model that loads predicts for two samples of its input shape, so that an
 * array the checks let through with a wrong size shows up under ASan. */
#include "fuzz.h"

#include "deepsky.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void predict_two(const ds_classic *m)
{
    int64_t shape[DS_MAX_DIMS] = {2};
    int nd = ds_classic_input_shape(m, shape + 1);
    ds_tensor *x = ds_tensor_create(nd + 1, shape), *p = NULL;
    if (!x)
        return;
    float *v = ds_tensor_data(x);
    for (int64_t i = 0; i < ds_tensor_numel(x); i++)
        v[i] = (float)(i % 7) * 0.25f - 0.5f;
    if (ds_classic_predict(m, x, &p) == DS_OK) {
        ds_tensor *d = ds_classic_decide(m, p);
        char *rep = NULL;
        ds_tensor_free(d);
        if (ds_classic_task_of(m) != DS_CLASSIC_CLASSIFY &&
            ds_classic_task_of(m) != DS_CLASSIC_REGRESS &&
            ds_classic_evaluate(m, x, NULL, &rep, NULL) == DS_OK)
            free(rep);
    }
    ds_tensor_free(p);
    ds_tensor_free(x);
}

int fuzz_classic(const uint8_t *data, size_t size)
{
    fuzz_setup();
    const char *path = fuzz_file(data, size, ".safetensors");
    if (!path)
        return 0;
    ds_classic *a = NULL, *b = NULL;
    ds_status sa = ds_classic_load(path, NULL, &a);
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", sa ? ds_last_error() : "");
    ds_status sb = ds_classic_load_mem(data, size, path, NULL, &b);
    if (sa != sb || (sa && strcmp(msg, ds_last_error()))) {
        fprintf(stderr, "fuzz: %s: ds_classic_load and ds_classic_load_mem disagree\n", path);
        abort();
    }
    if (a)
        predict_two(a);
    ds_classic_free(a);
    ds_classic_free(b);
    return 0;
}
