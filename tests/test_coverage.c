/* test_coverage.c - the checks themselves: gradcheck's tolerance catches small relative
 * errors, the coverage records follow the graph's paths, and (after every other test) each
 * op of the op table passed a finite-difference gradient check and a comparison with
 * PyTorch in this run, or is excepted below with the test that covers it instead. */
#include "test.h"

#include "../src/internal.h"

/* Gradients of a mean-reduced loss (0.01-0.1): a 3% error in one of them fails at the
 * tolerances the op tests use, where the former rule |num - ana| / max(1, |num| + |ana|)
 * <= 3e-3 passed it (3e-3 x 1 = 3e-3 absolute, against an error of 3e-3 x 0.1 = 3e-4). */
TEST(gradcheck_catches_small_errors_in_small_gradients)
{
    enum { N = 40 };
    float ana[N];
    double num[N];
    ds_rng r;
    ds_rng_seed(&r, 9);
    for (int i = 0; i < N; i++) {
        ana[i] = (ds_rng_uniform(&r) < 0.5 ? -1 : 1) * (0.01f + 0.09f * (float)ds_rng_uniform(&r));
        num[i] = ana[i] * (1 + 2e-4 * (ds_rng_uniform(&r) - 0.5));   /* rounding-sized */
    }
    char m[512];
    CHECK(gradcheck_compare("exact", N, ana, num, 1e-5, 1e-3, m, sizeof m) == 0);
    for (int i = 0; i < N; i += 13) {
        double keep = num[i];
        num[i] = ana[i] * 1.03;
        if (gradcheck_compare("3% off", N, ana, num, 1e-5, 1e-3, m, sizeof m) == 0)
            FAIL("a 3%% error at [%d] (analytic %g) passed", i, ana[i]);
        char want[32];
        snprintf(want, sizeof want, "[%d]: analytic", i);
        CHECK(strstr(m, want) && strstr(m, "numeric") && strstr(m, "atol"));
        num[i] = keep;
    }
    /* an atol of the gradients' own size is refused, whatever the values */
    CHECK(gradcheck_compare("loose", N, ana, num, 3e-3, 1e-3, m, sizeof m) == 1);
    CHECK(strstr(m, "not small against the gradient"));
    /* a gradient that is exactly zero everywhere (a constant output) has no scale: it
     * passes as long as the differences are zero too */
    float zero[N] = {0};
    double flat[N] = {0};
    CHECK(gradcheck_compare("zero", N, zero, flat, 1e-6, 1e-3, m, sizeof m) == 0);
    flat[5] = 1e-4;
    CHECK(gradcheck_compare("zero", N, zero, flat, 1e-6, 1e-3, m, sizeof m) == 1);
    CHECK(strstr(m, "[5]: analytic 0"));
    return TEST_PASS;
}

/* The ops recorded by a check are those between the checked inputs and the output. */
TEST(coverage_follows_the_paths_from_the_checked_inputs)
{
    ds_model *mo = ds_model_create(1);
    ds_graph *g = ds_graph_create(mo, 1);
    ds_node *a = grad_input(g, "a", 1, (int64_t[]){3});
    ds_node *b = grad_input(g, "b", 1, (int64_t[]){3});
    ds_node *c = ds_mul(g, a, b);
    ds_node *d = ds_exp(g, c);
    ds_node *e = ds_log(g, b);             /* from b only */
    ds_node *f = ds_add(g, d, e);
    ds_node *side = ds_neg(g, a);          /* from a, but not into f */
    CHECK(f && side);
    char on[16];
    CHECK(f->id < (int)sizeof on);
    CHECK(coverage_path(f, 1, &a, on) == 0);
    CHECK(on[a->id] && on[c->id] && on[d->id] && on[f->id]);
    CHECK(!on[b->id] && !on[e->id]);
    CHECK(coverage_path(f, 1, &b, on) == 0);
    CHECK(on[b->id] && on[c->id] && on[d->id] && on[e->id] && on[f->id] && !on[a->id]);
    CHECK(coverage_path(side, 1, &b, on) == 0);
    CHECK(!on[a->id] && !on[b->id] && !on[side->id]);
    ds_graph_free(g);
    ds_model_free(mo);
    return TEST_PASS;
}

/* Checks an op cannot have, each with its reason and the test that covers the op instead. */
static const struct {
    ds_op op;
    unsigned kind;
    const char *test, *reason;
} exceptions[] = {
    {DS_OP_DROPOUT, COVER_TORCH, "dropout_statistics",
     "its masks come from our random stream, which PyTorch cannot reproduce: the kept "
     "fraction and the 1/(1-p) scale are tested instead"},
};
#define N_EXCEPTIONS ((int)(sizeof exceptions / sizeof exceptions[0]))

static const char *kind_name(unsigned kind)
{
    return kind == COVER_FD ? "finite-difference" : "PyTorch";
}

/* The exception for op and kind, or -1. */
static int exception_of(int op, unsigned kind)
{
    for (int e = 0; e < N_EXCEPTIONS; e++)
        if ((int)exceptions[e].op == op && exceptions[e].kind == kind)
            return e;
    return -1;
}

/* Each exception names a test that exists and passed in this run, and is still needed. */
static int check_exceptions(char *msg, size_t cap)
{
    for (int e = 0; e < N_EXCEPTIONS; e++) {
        const char *op = dsi_op_names[exceptions[e].op], *t = exceptions[e].test;
        int r = test_result(t);
        if (r == TEST_UNKNOWN)
            snprintf(msg, cap, "the exception of op '%s' from the %s check names test '%s', "
                     "which does not exist", op, kind_name(exceptions[e].kind), t);
        else if (r != TEST_PASS)
            snprintf(msg, cap, "op '%s' is excepted from the %s check in favour of test '%s', "
                     "which %s", op, kind_name(exceptions[e].kind), t,
                     r == TEST_NOT_RUN ? "did not run" : r == TEST_SKIP ? "skipped" : "failed");
        else if (coverage_of(exceptions[e].op) & exceptions[e].kind)
            snprintf(msg, cap, "op '%s' now passes a %s check: remove its exception", op,
                     kind_name(exceptions[e].kind));
        else
            continue;
        return 1;
    }
    return 0;
}

TEST_LAST(every_op_has_a_gradient_check_and_a_pytorch_comparison)
{
    if (test_filter())
        SKIP("only tests matching '%s' ran: coverage is judged on a full run", test_filter());
    if (check_exceptions(msg_, cap_))
        return TEST_FAIL;
    char list[2048] = "";
    int missing = 0, ops = 0;
    for (int o = 0; o < DS_OP_COUNT; o++) {
        if (o == DS_OP_INPUT || o == DS_OP_PARAM)
            continue;
        ops++;
        unsigned lack = 0;
        for (unsigned kind = COVER_FD; kind <= COVER_TORCH; kind <<= 1)
            if (!(coverage_of(o) & kind) && exception_of(o, kind) < 0)
                lack |= kind;
        if (!lack)
            continue;
        missing++;
        dsi_snprintf_cat(list, sizeof list, "%s%s (no %s%s%s)", *list ? ", " : "",
                         dsi_op_names[o], lack & COVER_FD ? "finite-difference check" : "",
                         lack == (COVER_FD | COVER_TORCH) ? ", no " : "",
                         lack & COVER_TORCH ? "PyTorch comparison" : "");
    }
    if (missing)
        FAIL("%d of %d ops lack checks: %s%s", missing, ops, list,
             test_failures() ? " (tests failed earlier in this run: a failed check records "
                               "nothing)" : "");
    snprintf(msg_, cap_, "%d ops, each checked against finite differences and PyTorch; excepted:",
             ops);
    for (int e = 0; e < N_EXCEPTIONS; e++)
        dsi_snprintf_cat(msg_, cap_, "%s %s's %s check (%s instead)", e ? "," : "",
                         dsi_op_names[exceptions[e].op], kind_name(exceptions[e].kind),
                         exceptions[e].test);
    return TEST_PASS;
}
