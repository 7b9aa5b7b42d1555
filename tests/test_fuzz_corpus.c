/* test_fuzz_corpus.c - replays the committed fuzz corpora (fuzz/corpus/<target>/) and the
 * reproducers of fixed fuzz findings (fuzz/regressions/<target>/) through the fuzz targets,
 * under this build's ASan and UBSan: a reader that regresses on an input the fuzzer once
 * explored crashes or reports here, in make test, without clang or a fuzzing run. */
#include "test.h"

#include "../fuzz/fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs fn on every file of dir in name order; counts inputs and bytes. -1: no directory. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t), long *bytes)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nn = realloc(names, (size_t)cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *fp = fopen(path, "rb");
        uint8_t *buf = NULL;
        long len = 0;
        if (fp && fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, fp) == (size_t)len)
            fn(buf, (size_t)len);
        free(buf);
        if (fp)
            fclose(fp);
        *bytes += len;
        free(names[i]);
    }
    free(names);
    return n;
}

/* Replays one target with the process settings the fuzzer had (one thread, a 256 MB
 * memory limit), restored afterwards, and the targets' messages sent to /dev/null. */
static int replay(const char *target, int (*fn)(const uint8_t *, size_t), char *msg, size_t cap)
{
    char dir[256];
    int threads = ds_get_num_threads();
    size_t limit = ds_memory_limit();
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    long bytes = 0;
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", target);
    int n = replay_dir(dir, fn, &bytes);
    snprintf(dir, sizeof dir, "fuzz/regressions/%s", target);
    long rbytes = 0;
    int nr = replay_dir(dir, fn, &rbytes);
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    close(null);
    ds_set_num_threads(threads);
    ds_set_memory_limit(limit);
    if (n < 5) {
        snprintf(msg, cap, "fuzz/corpus/%s holds %d inputs (run from the repository root; "
                 "make fuzz grows it)", target, n);
        return TEST_FAIL;
    }
    snprintf(msg, cap, "%d corpus inputs (%ld KB), %d regressions", n, bytes / 1024, nr > 0 ? nr : 0);
    return TEST_PASS;
}

#define REPLAY_TEST(t) \
    TEST(fuzz_corpus_##t) { return replay(#t, fuzz_##t, msg_, cap_); }
FUZZ_TARGETS(REPLAY_TEST)
