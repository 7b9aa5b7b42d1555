/* test_fuzz_corpus.c - replays the committed fuzz corpora (fuzz/corpus/<target>/) and the
 * reproducers of fixed fuzz findings (fuzz/regressions/<target>/) through the fuzz targets,
 * under this build's ASan and UBSan: a reader that regresses on an input the fuzzer once
 * explored crashes or reports here, in make test, without clang or a fuzzing run. A missing
 * folder, or a file that cannot be read, fails the target's test. */
#include "test.h"

#include "../fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* The sanitizer runtime's hooks, weak: the gcov build (make fuzz-coverage) has no runtime.
 * The targets' own messages go to /dev/null, a sanitizer report to the real stderr, followed
 * by the name of the input that caused it. */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
static char replaying[1024];
static int report_fd = -1;

static void name_the_input(void)
{
    if (report_fd >= 0 && replaying[0])
        dprintf(report_fd, "test_fuzz_corpus: the report above came from replaying %s\n",
                replaying);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs fn on every file of dir in name order (names starting with '.', such as the .keep of
 * an empty folder, excepted); counts inputs and bytes. Returns the number of inputs, or -1
 * with msg set if the folder is missing or a file cannot be read. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t), long *bytes,
                      char *msg, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(msg, cap, "%s: cannot open the folder (%s); every fuzz target has one, "
                 "empty but for a .keep when it holds no inputs (run from the repository root)",
                 dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    int n = 0, cap_n = 0, bad = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap_n) {
            cap_n = cap_n ? 2 * cap_n : 256;
            char **nn = realloc(names, (size_t)cap_n * sizeof *names);
            if (!nn) {
                bad = 1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            bad = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (bad)
        snprintf(msg, cap, "%s: out of memory listing the folder", dir);
    if (n > 0)   /* qsort's array must not be NULL, even empty */
        qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *fp = fopen(path, "rb");
        uint8_t *buf = NULL;
        long len = -1;
        if (fp && fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, fp) == (size_t)len) {
            snprintf(replaying, sizeof replaying, "%s", path);
            fn(buf, (size_t)len);
            replaying[0] = 0;
            *bytes += len;
        } else if (!bad) {
            snprintf(msg, cap, "%s: cannot read it (%s)", path, strerror(errno));
            bad = 1;
        }
        free(buf);
        if (fp)
            fclose(fp);
        free(names[i]);
    }
    free(names);
    return bad ? -1 : n;
}

/* Replays one target with the process settings the fuzzer had (one thread, a 256 MB
 * memory limit), restored afterwards, and the targets' messages sent to /dev/null. */
static int replay(const char *target, int (*fn)(const uint8_t *, size_t), char *msg, size_t cap)
{
    char dir[256], rdir[256], err[1024] = "";
    int threads = ds_get_num_threads();
    size_t limit = ds_get_memory_limit();
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), errfd = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    report_fd = errfd;
    if (__sanitizer_set_report_fd && __sanitizer_set_death_callback) {
        __sanitizer_set_report_fd((void *)(intptr_t)errfd);
        __sanitizer_set_death_callback(name_the_input);
    }
    long bytes = 0, rbytes = 0;
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", target);
    int n = replay_dir(dir, fn, &bytes, err, sizeof err);
    snprintf(rdir, sizeof rdir, "fuzz/regressions/%s", target);
    int nr = n < 0 ? -1 : replay_dir(rdir, fn, &rbytes, err, sizeof err);
    fflush(stdout);
    fflush(stderr);
    if (__sanitizer_set_report_fd)
        __sanitizer_set_report_fd((void *)(intptr_t)2);
    report_fd = -1;
    dup2(out, 1);
    dup2(errfd, 2);
    close(out);
    close(errfd);
    close(null);
    ds_set_num_threads(threads);
    ds_set_memory_limit(limit);
    if (n < 0 || nr < 0) {
        snprintf(msg, cap, "%s", err);
        return TEST_FAIL;
    }
    if (n < 5) {
        snprintf(msg, cap, "%s holds %d inputs (make fuzz grows it)", dir, n);
        return TEST_FAIL;
    }
    snprintf(msg, cap, "%d corpus inputs (%ld KB), %d regressions", n, bytes / 1024, nr);
    return TEST_PASS;
}

#define REPLAY_TEST(t) \
    TEST(fuzz_corpus_##t) { return replay(#t, fuzz_##t, msg_, cap_); }
FUZZ_TARGETS(REPLAY_TEST)

/* Every folder of fuzz/corpus/ and fuzz/regressions/ is a target's: one misnamed would never
 * be replayed. */
TEST(fuzz_corpus_folders_name_targets)
{
#define TARGET_NAME(t) #t,
    static const char *const targets[] = {FUZZ_TARGETS(TARGET_NAME)};
#undef TARGET_NAME
    const char *roots[] = {"fuzz/corpus", "fuzz/regressions"};
    int folders = 0;
    for (int r = 0; r < 2; r++) {
        DIR *d = opendir(roots[r]);
        if (!d)
            FAIL("%s: cannot open the folder (%s; run from the repository root)", roots[r],
                 strerror(errno));
        for (struct dirent *e; (e = readdir(d));) {
            char path[1024];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", roots[r], e->d_name);
            if (e->d_name[0] == '.' || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
                continue;
            int known = 0;
            for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
                known |= !strcmp(e->d_name, targets[i]);
            if (!known) {
                closedir(d);
                FAIL("%s is not the folder of a fuzz target (fuzz/fuzz.h lists them)", path);
            }
            folders++;
        }
        closedir(d);
    }
    int want = 2 * (int)(sizeof targets / sizeof targets[0]);
    if (folders != want)
        FAIL("%d target folders under fuzz/corpus/ and fuzz/regressions/, expected %d", folders,
             want);
    snprintf(msg_, cap_, "%d folders, each a target's", folders);
    return TEST_PASS;
}
