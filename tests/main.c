/* main.c - test runner: runs every registered test (or those whose name or file contains
 * argv[1]), the TEST_LAST ones after all others, and ends with "N passed, N failed,
 * N skipped". */
#include "test.h"

#include <time.h>

#define MAX_TESTS 2048
static struct {
    const char *file, *name;
    test_fn fn;
    int order, result;
} tests[MAX_TESTS];
static int n_tests, n_fail;
static const char *filter;

void test_register(const char *file, const char *name, test_fn fn, int order)
{
    if (n_tests < MAX_TESTS) {
        tests[n_tests].file = file;
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        tests[n_tests].order = order;
        tests[n_tests].result = TEST_NOT_RUN;
        n_tests++;
    }
}

const char *test_filter(void)
{
    return filter;
}

/* Worst first: not run, failed, skipped, passed. */
static int rank(int result)
{
    return result == TEST_NOT_RUN ? 0 : result == TEST_FAIL ? 1 : result == TEST_SKIP ? 2 : 3;
}

int test_result(const char *name)
{
    int r = TEST_UNKNOWN;
    for (int i = 0; i < n_tests; i++)
        if (!strcmp(tests[i].name, name) && (r == TEST_UNKNOWN || rank(tests[i].result) < rank(r)))
            r = tests[i].result;
    return r;
}

int test_failures(void)
{
    return n_fail;
}

static int by_order_file(const void *a, const void *b)
{
    const __typeof__(tests[0]) *x = a, *y = b;
    if (x->order != y->order)
        return x->order - y->order;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    qsort(tests, (size_t)n_tests, sizeof tests[0], by_order_file);
    filter = argc > 1 ? argv[1] : NULL;
    int pass = 0, skip = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter))
            continue;
        char msg[4096] = "", stats[160] = "";
        struct timespec t0, t1;
        gradcheck_stats_reset();
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = tests[i].fn(msg, sizeof msg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        tests[i].result = r;
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        const char *f = strrchr(tests[i].file, '/');
        f = f ? f + 1 : tests[i].file;
        if (r == TEST_PASS) {
            pass++;
            gradcheck_stats(stats, sizeof stats);
            printf("ok    %-12s %-40s %8.1f ms%s%s%s%s\n", f, tests[i].name, ms,
                   *msg ? "  " : "", msg, *stats ? "  " : "", stats);
        } else if (r == TEST_SKIP) {
            skip++;
            printf("skip  %-12s %-40s %s\n", f, tests[i].name, msg);
        } else {
            n_fail++;
            printf("FAIL  %-12s %-40s %s\n", f, tests[i].name, msg);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", pass, n_fail, skip);
    return n_fail ? 1 : 0;
}
