/* test_python.c - the Python package's tests (python/tests, through pytest) against the
 * release library and tool that make test builds (DEEPSKY_PY_LIB, DEEPSKY_PY_CLI; else
 * build/libdeepsky.so and build/deepsky); skipped, with the reason, when python3, pytest,
 * numpy or the library is missing. */
#include "test.h"
#include "spawn.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* The last non-empty line of text, into buf. */
static const char *last_line(const char *text, char *buf, size_t cap)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    size_t s = n;
    while (s && text[s - 1] != '\n')
        s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), text + s);
    return buf;
}

TEST(python_package)
{
    const char *py = env_or("DEEPSKY_PYTHON", "/usr/bin/python3");
    char lib[PATH_MAX], cli[PATH_MAX], dir[256], cmd[3 * PATH_MAX], line[512];
    static char out[1 << 16];
    if (access(py, X_OK))
        SKIP("no %s: the Python package's tests need python3", py);
    if (access("python/tests", R_OK))
        SKIP("python/tests not found: run the tests from the source tree");
    if (!realpath(env_or("DEEPSKY_PY_LIB", "build/libdeepsky.so"), lib))
        SKIP("no libdeepsky.so (make build/libdeepsky.so, or make test builds it)");
    if (!realpath(env_or("DEEPSKY_PY_CLI", "build/deepsky"), cli))
        snprintf(cli, sizeof cli, "%s", "/nonexistent/deepsky");   /* those tests skip */
    int k = snprintf(cmd, sizeof cmd, "exec %s -c 'import pytest, numpy'", py);
    if (k < 0 || (size_t)k >= sizeof cmd)
        FAIL("the path of python3 is too long: %s", py);
    if (cli_run_sh(cmd, NULL, out, sizeof out))
        SKIP("%s lacks pytest or numpy (scripts/deps.sh python3-pytest python3-numpy): %s",
             py, last_line(out, line, sizeof line));
    if (!test_tmpdir(dir, sizeof dir, "python"))
        FAIL("cannot make a temporary folder");
    k = snprintf(cmd, sizeof cmd, "DEEPSKY_LIB='%s' DEEPSKY_CLI='%s' PYTHONDONTWRITEBYTECODE=1 "
                 "exec %s -m pytest -q -p no:cacheprovider --basetemp='%s/t' python/tests",
                 lib, cli, py, dir);
    int rc = k < 0 || (size_t)k >= sizeof cmd ? -1 : cli_run_sh(cmd, NULL, out, sizeof out);
    if (k < 0 || (size_t)k >= sizeof cmd)
        snprintf(out, sizeof out, "the paths are too long for a command line");
    test_rm_rf(dir);
    if (rc) {
        size_t n = strlen(out);
        FAIL("pytest python/tests: status %d:\n%s", rc, out + (n > 3000 ? n - 3000 : 0));
    }
    if (!strstr(out, " passed"))
        FAIL("pytest python/tests ran no test: %s", last_line(out, line, sizeof line));
    return TEST_PASS;
}

/* ds_tensor_borrow, the package's way in: the caller's memory used in place, never freed by
 * the library (ASan would report freeing a stack array), and its errors. */
TEST(python_tensor_borrow)
{
    float data[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3}, bad[2] = {2, -3};
    ds_tensor *t = ds_tensor_borrow(2, shape, data);
    CHECK(t && ds_tensor_data(t) == data && ds_tensor_numel(t) == 6);
    CHECK(ds_tensor_ndim(t) == 2 && ds_tensor_shape(t)[1] == 3);
    CHECK(ds_tensor_reshape(t, 1, (int64_t[]){6}) == DS_OK && ds_tensor_data(t) == data);
    ds_tensor_data(t)[5] = 7;
    ds_tensor_free(t);
    CHECK(data[5] == 7);
    ds_tensor *e = ds_tensor_borrow(2, (int64_t[]){0, 3}, NULL);   /* no elements: no data */
    CHECK(e && ds_tensor_numel(e) == 0);
    ds_tensor_free(e);
    CHECK(!ds_tensor_borrow(2, shape, NULL));
    CHECK(strstr(ds_last_error(), "NULL data") && strstr(ds_last_error(), "[2, 3]"));
    CHECK(!ds_tensor_borrow(2, bad, data));
    CHECK(strstr(ds_last_error(), "[2, -3] is not valid"));
    CHECK(!ds_tensor_borrow(DS_MAX_DIMS + 1, shape, data));
    return TEST_PASS;
}
