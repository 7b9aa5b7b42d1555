/* test_optim_subnormal.c - the optimizers' updates flush subnormal numbers to zero (an
 * assist of about a hundred cycles each on x86) and leave the caller's floating-point
 * mode as it was; on normal numbers they match the update written out in float. */
#include "test.h"

#include <float.h>

#include "../src/internal.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

static bool subnormal(float x)
{
    return x != 0 && fabsf(x) < FLT_MIN;
}

/* Adam on a parameter of n values: one step with gradient g0, then zero gradients, whose
 * first moments decay by 0.9 a step through the subnormal range. */
static int decay_to_zero(int64_t n, char *msg_, size_t cap_)
{
    ds_model *m = ds_model_create(1);
    ds_param *p = ds_model_add_param(m, "w", 1, (int64_t[]){n}, 1,
                                     (ds_init){DS_INIT_CONSTANT, 0.5f, 0});
    ds_optim *o = p ? ds_optim_create(m, &(ds_optim_opts){.kind = DS_OPT_ADAM, .lr = 1e-3f})
                    : NULL;
    CHECK(o);
    float *g = ds_model_grad(m);
    for (int64_t i = 0; i < n; i++)
        g[i] = i % 2 ? 1e-36f : 2e-3f;   /* m = 1e-37 (normal), or 2e-4 */
    int rc = ds_optim_step(o) != DS_OK;
#if defined(__SSE__)
    unsigned before = _mm_getcsr();
#endif
    memset(g, 0, (size_t)n * sizeof *g);
    for (int s = 0; s < 40 && !rc; s++)   /* 1e-37 * 0.9^40 = 1.5e-39: subnormal */
        rc = ds_optim_step(o) != DS_OK;
#if defined(__SSE__)
    if (!rc && _mm_getcsr() != before)
        rc = snprintf(msg_, cap_, "MXCSR %#x after the steps, %#x before", _mm_getcsr(),
                      before) * 0 + 1;
#endif
    ds_tensor_set *st = ds_tensor_set_create();
    CHECK(st && ds_optim_state_save(o, st) == DS_OK);
    const ds_tensor *mt = ds_tensor_set_get(st, "optim.w.exp_avg");
    CHECK(mt && mt->numel == n);
    float m2 = (float)(2e-4 * pow(0.9, 40));   /* about 2.95e-6: normal */
    for (int64_t i = 0; i < n && !rc; i++) {
        float v = mt->data[i];
        if (i % 2 ? v != 0 : !(fabsf(v - m2) <= 1e-6f * m2) || subnormal(v))
            rc = snprintf(msg_, cap_, "n %lld: exp_avg[%lld] = %g (%s)", (long long)n,
                          (long long)i, (double)v, i % 2 ? "want 0" : "want about 2.95e-6")
                 * 0 + 1;
    }
    ds_tensor_set_free(st);
    ds_optim_free(o);
    ds_model_free(m);
    return rc;
}

TEST(optim_subnormal_moments_flush_to_zero)
{
    /* one thread's loop, and a parameter large enough for a parallel region */
    CHECK_OK(decay_to_zero(1000, msg_, cap_));
    CHECK_OK(decay_to_zero(4 * DS_PAR_MIN + 1000, msg_, cap_));
    return TEST_PASS;
}

TEST(optim_adam_step_matches_float_formula)
{
    /* normal numbers: PyTorch 1.13's Adam in float, written out */
    enum { N = 300 };
    ds_model *m = ds_model_create(1);
    ds_param *p = ds_model_add_param(m, "w", 1, (int64_t[]){N}, 1,
                                     (ds_init){DS_INIT_CONSTANT, 0.25f, 0});
    ds_optim *o = p ? ds_optim_create(m, &(ds_optim_opts){.kind = DS_OPT_ADAM, .lr = 1e-2f})
                    : NULL;
    CHECK(o);
    float w[N], mm[N] = {0}, vv[N] = {0};
    for (int i = 0; i < N; i++)
        w[i] = 0.25f;
    for (int t = 1; t <= 3; t++) {
        float *g = ds_model_grad(m);
        for (int i = 0; i < N; i++)
            g[i] = (float)((i % 17) - 8) * 1e-2f * (float)t;
        for (int i = 0; i < N; i++) {
            float b1 = 0.9f, b2 = 0.999f, c1 = 1 - b1, c2 = 1 - b2;
            float ss = (float)(1e-2f / (1 - pow(0.9f, t)));
            float bc2 = (float)sqrt(1 - pow(0.999f, t));
            float d = g[i] + 0 * w[i];
            mm[i] = mm[i] * b1 + c1 * d;
            vv[i] = vv[i] * b2 + c2 * (d * d);
            w[i] = w[i] * 1 + -ss * (mm[i] / (sqrtf(vv[i]) / bc2 + 1e-8f));
        }
        CHECK(ds_optim_step(o) == DS_OK);
    }
    const float *got = ds_param_data(p);
    for (int i = 0; i < N; i++)
        if (got[i] != w[i])
            FAIL("w[%d] = %.9g, the formula gives %.9g", i, (double)got[i], (double)w[i]);
    ds_optim_free(o);
    ds_model_free(m);
    return TEST_PASS;
}
