/* test.h - the tiny test framework: TEST() registers a function, CHECK/FAIL report. */
#ifndef DS_TEST_H
#define DS_TEST_H

#include "deepsky.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TEST_PASS = 0, TEST_FAIL = 1, TEST_SKIP = 2 };
typedef int (*test_fn)(char *msg, size_t cap);
/* order 0: a test of its own; 1: runs after every order-0 test (it judges what they did). */
void test_register(const char *file, const char *name, test_fn fn, int order);

#define TEST_AT(fn, order)                                                            \
    static int fn(char *msg_, size_t cap_);                                           \
    __attribute__((constructor)) static void reg_##fn(void)                           \
    {                                                                                 \
        test_register(__FILE__, #fn, fn, order);                                      \
    }                                                                                 \
    static int fn(char *msg_, size_t cap_)
#define TEST(fn) TEST_AT(fn, 0)
#define TEST_LAST(fn) TEST_AT(fn, 1)

/* ---- the runner's state, for tests that run last (tests/main.c) ---- */
/* The name filter of this run (argv[1]), or NULL when every test runs. */
const char *test_filter(void);
/* TEST_PASS, TEST_FAIL or TEST_SKIP of the test called name in this run (the worst of them
 * if several share it), TEST_NOT_RUN if it was registered but has not run, or
 * TEST_UNKNOWN if no test has that name. */
enum { TEST_NOT_RUN = -1, TEST_UNKNOWN = -2 };
int test_result(const char *name);
/* Failed tests so far in this run. */
int test_failures(void);

#define FAIL(...)                                         \
    do {                                                  \
        snprintf(msg_, cap_, __VA_ARGS__);                \
        return TEST_FAIL;                                 \
    } while (0)
#define SKIP(...)                                         \
    do {                                                  \
        snprintf(msg_, cap_, __VA_ARGS__);                \
        return TEST_SKIP;                                 \
    } while (0)
#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c))                                                                      \
            FAIL("%s:%d: check failed: %s (last error: %s)", __FILE__, __LINE__, #c,   \
                 ds_last_error());                                                     \
    } while (0)
/* Runs a helper returning 0 on success that wrote its reason into msg_. */
#define CHECK_OK(call)                      \
    do {                                    \
        if ((call) != 0)                    \
            return TEST_FAIL;               \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double a_ = (a), b_ = (b);                                                     \
        if (!(fabs(a_ - b_) <= (tol)))                                                 \
            FAIL("%s:%d: %s = %.9g, expected %.9g (tol %g)", __FILE__, __LINE__, #a, a_, b_, \
                 (double)(tol));                                                       \
    } while (0)

/* ---- helpers (tests/util.c) ---- */
/* Temporary files: a test makes its own private folder, writes there, and removes it. */
/* Makes the new folder /tmp/deepsky_<tag>_XXXXXX (mkdtemp); its path in buf (cap bytes).
 * Returns buf, or NULL when it cannot. */
const char *test_tmpdir(char *buf, size_t cap, const char *tag);
/* Removes folder d and all it holds (rm -rf); says so on stderr when it cannot. */
void test_rm_rf(const char *d);
/* Writes text to the file path. 0, or nonzero when it cannot. */
int test_write_text(const char *path, const char *text);
/* The whole file at path (malloc'd, NUL-terminated; its size in *n unless n is NULL), or
 * NULL if it cannot be read. */
char *test_read_file(const char *path, size_t *n);
/* The text of out from the first `from` to the end of its line, at most max characters,
 * into msg (the test's note), or "" when out lacks it. */
void test_note_line(char *msg, size_t cap, const char *out, const char *from, int max);
/* "dir/name", in one of 8 rotating static buffers (so a call may pass several). */
const char *test_at(const char *dir, const char *name);
/* Writes text to dir/name: test_write_text(test_at(dir, name), text). */
int test_write_in(const char *dir, const char *name, const char *text);
/* Whether folder dir holds exactly the n files named (dot files aside): 0; 1 with *name the
 * first named file missing; 2 with *name the first file not named (valid until the next
 * call); 3 if the folder cannot be read. */
int test_folder_holds(const char *dir, const char *const *files, int n, const char **name);

/* Uniform values in [lo, hi). */
void fill_uniform(float *x, int64_t n, float lo, float hi, ds_rng *r);
/* Uniform values in [lo, hi) with |x| >= gap (away from kinks at 0). */
void fill_away(float *x, int64_t n, float lo, float hi, float gap, ds_rng *r);

/* Gradient check: loss = sum(out * r) for a fixed random r; for every node in wrt (graph
 * inputs with ds_node_requires_grad set, or parameter nodes), compares the analytic
 * gradient ana with central differences num (step h, the difference taken in double around
 * float32 forward passes). Each element must satisfy
 *     |num - ana| <= atol + rtol * max(|num|, |ana|),
 * and atol must be at most GRADCHECK_ATOL_SHARE of the mean max(|num|, |ana|) of each node
 * (unless that is exactly 0), so that no gradient is small enough to pass on atol alone.
 * Returns 0, or 1 with msg set (the index, both values and the tolerance). The graph's dropout stream is held fixed during
 * the check. On success, records COVER_FD for the ops between wrt and out. */
#define GRADCHECK_ATOL_SHARE 1e-2
int gradcheck(ds_graph *g, ds_node *out, int n, ds_node *const *wrt, double h, double atol,
              double rtol, char *msg, size_t cap);
/* gradcheck's verdict on n analytic values ana against numeric ones num (what names them in
 * the message). */
int gradcheck_compare(const char *what, int64_t n, const float *ana, const double *num,
                      double atol, double rtol, char *msg, size_t cap);
/* For the runner: clears, and formats (returns 0 if no check ran), what the gradient checks
 * of the current test saw: the values checked, the largest relative error where rtol
 * dominates and the largest share of the tolerance used. */
void gradcheck_stats_reset(void);
int gradcheck_stats(char *buf, size_t cap);

/* ---- op coverage (tests/test_coverage.c checks it after every other test) ---- */
enum { COVER_FD = 1, COVER_TORCH = 2 };
/* Records that a check of the given kind passed through the ops of the nodes on a path
 * from one of from[0..n-1] to y (a ReLU fused into the op before it is not counted). */
void coverage_mark(const ds_node *y, int n, ds_node *const *from, unsigned kind);
/* The nodes on such a path: on[i] (y's id + 1 entries) is 1 for node id i. 0, or 1 if out of
 * memory. */
int coverage_path(const ds_node *y, int n, ds_node *const *from, char *on);
/* coverage_mark from every input of y's graph that asked for its gradient and every
 * trainable parameter: for callers that compared all of those gradients. */
void coverage_mark_all(const ds_node *y, unsigned kind);
/* The kinds recorded so far for op (a ds_op of src/internal.h). */
unsigned coverage_of(int op);

/* Forward and backward of y (x an input of g, y any node), with x and the seed of dy drawn
 * uniform in [-1, 1) from seed; returns y's values, x's gradient and the model's parameter
 * gradients (trainable, in creation order, without the block's padding) one after the
 * other (*n values, malloc'd), or NULL if a step failed. */
float *forward_backward(ds_graph *g, ds_node *x, ds_node *y, uint64_t seed, int64_t *n);

/* Whether the weights files a and b hold the same tensors, bit for bit, and the same
 * metadata but for the two that differ between runs of one training (train.date, and
 * train.command, which names the output). 0, or 1 with msg set (the first difference). */
int same_weights_files(const char *a, const char *b, char *msg, size_t cap);
/* The same for two sets (a and b name them in msg). */
int same_weights_sets(const ds_tensor_set *sa, const ds_tensor_set *sb, const char *a,
                      const char *b, char *msg, size_t cap);

/* 0 if st is DS_ERR_ARG and the last error mentions word; else 1 with msg saying what came. */
int check_arg_error(ds_status st, const char *word, char *msg, size_t cap);

/* Loads tests/fixtures/<name>.safetensors (NULL with msg set if absent). */
ds_tensor_set *fixture_load(const char *name, char *msg, size_t cap);
/* Compares got with the fixture tensor key: |got - want| <= atol + rtol |want| everywhere.
 * Checks the element count too. Returns 0, or 1 with msg set. */
int fixture_compare(const ds_tensor_set *fx, const char *key, const float *got, int64_t n,
                    double rtol, double atol, char *msg, size_t cap);
/* fixture_compare (rtol 1e-4, atol 1e-6) on the key "<c>.<what>", and the largest
 * |got - want| / |want| over |want| > 1e-3 kept in *max_rel for the test's report. */
int fixture_compare_case(const ds_tensor_set *fx, const char *c, const char *what,
                         const float *got, int64_t n, double *max_rel, char *msg, size_t cap);
/* Fixture case c: fills inputs x[i] from "<c>.x<i>", runs forward and backward seeded with
 * "<c>.r" on y (plans the graph first). */
int fixture_run_case(const ds_tensor_set *fx, const char *c, ds_graph *g, ds_node *y,
                     ds_node *const *x, int nin, char *msg, size_t cap);
/* Compares y with "<c>.y" and each x[i]'s gradient with "<c>.dx<i>"; on success records
 * COVER_TORCH for the ops between x and y. */
int fixture_compare_grads(const ds_tensor_set *fx, const char *c, ds_node *y,
                          ds_node *const *x, int nin, double *max_rel, char *msg, size_t cap);
/* A graph input that asks for its gradient. */
ds_node *grad_input(ds_graph *g, const char *name, int ndim, const int64_t *shape);
/* Data of a fixture tensor (NULL with msg if absent), optionally its element count. */
const float *fixture_data(const ds_tensor_set *fx, const char *key, int64_t *n, char *msg,
                          size_t cap);

#endif
