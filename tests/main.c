/* main.c - test runner: runs every registered test (or those whose name contains argv[1])
 * and ends with "N passed, N failed, N skipped". */
#include "test.h"

#include <time.h>

#define MAX_TESTS 2048
static struct { const char *file, *name; test_fn fn; } tests[MAX_TESTS];
static int n_tests;

void test_register(const char *file, const char *name, test_fn fn)
{
    if (n_tests < MAX_TESTS) {
        tests[n_tests].file = file;
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

static int by_file(const void *a, const void *b)
{
    const __typeof__(tests[0]) *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    qsort(tests, (size_t)n_tests, sizeof tests[0], by_file);
    int pass = 0, fail = 0, skip = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]) && !strstr(tests[i].file, argv[1]))
            continue;
        char msg[4096] = "";
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = tests[i].fn(msg, sizeof msg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        const char *f = strrchr(tests[i].file, '/');
        f = f ? f + 1 : tests[i].file;
        if (r == TEST_PASS) {
            pass++;
            printf("ok    %-12s %-40s %8.1f ms%s%s\n", f, tests[i].name, ms, *msg ? "  " : "", msg);
        } else if (r == TEST_SKIP) {
            skip++;
            printf("skip  %-12s %-40s %s\n", f, tests[i].name, msg);
        } else {
            fail++;
            printf("FAIL  %-12s %-40s %s\n", f, tests[i].name, msg);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
    return fail ? 1 : 0;
}
