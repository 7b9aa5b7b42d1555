/* test_cli_idx.c - deepsky train on gzipped IDX files as Fashion-MNIST comes: the same
 * weights with the pipelined loader (2 threads) as with one thread, and non-finite values
 * (in the file, or made by --scale) reported once, naming the file and the element, now that
 * integer data are known finite as loaded and not checked again. */
#include "test.h"
#include "spawn.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* How many times text occurs in cli_out. */
static int count(const char *text)
{
    int n = 0;
    for (const char *p = cli_out; (p = strstr(p, text)); p += strlen(text))
        n++;
    return n;
}

#define CHECK_ONCE(text)                                                                  \
    do {                                                                                  \
        if (count(text) != 1)                                                             \
            FAIL("%s:%d: '%s' appears %d times, not once:\n%s", __FILE__, __LINE__, text,  \
                 count(text), cli_out);                                                    \
    } while (0)

/* A gzipped IDX file: type, dims, big-endian values. */
static int write_idx(const char *path, int type, int nd, const int32_t *dims,
                     const unsigned char *data, size_t nbytes)
{
    unsigned char head[4 + 4 * 4] = {0, 0, (unsigned char)type, (unsigned char)nd};
    for (int i = 0; i < nd; i++)
        for (int k = 0; k < 4; k++)
            head[4 + 4 * i + k] = (unsigned char)((uint32_t)dims[i] >> (24 - 8 * k));
    gzFile g = gzopen(path, "wb");
    if (!g)
        return 1;
    gzwrite(g, head, 4 + 4 * (unsigned)nd);
    gzwrite(g, data, (unsigned)nbytes);
    return gzclose(g) != Z_OK;
}

TEST(cli_idx_train_checks_once)
{
    char dir[64] = "/tmp/deepsky_idx_XXXXXX", p[256];
    CHECK(mkdtemp(dir));
    /* 2100 images of 32x32 bytes (2.15 MB: large enough for the pipelined loader) */
    enum { N = 2100, F = 1024 };
    static unsigned char img[N * F], lab[N], fl[64 * F * 4];
    for (int i = 0; i < N; i++) {
        lab[i] = (unsigned char)(i % 3);
        for (int k = 0; k < F; k++)
            img[i * F + k] = (unsigned char)((i * 7 + k * 13 + lab[i] * 60) % 256);
    }
    img[0] = 0;
    img[1] = 255;   /* the first value --scale divide:1e-37 makes infinite */
    snprintf(p, sizeof p, "%s/m.model", dir);
    FILE *fp = fopen(p, "w");
    CHECK(fp);
    fputs("input shape=1x32x32\nflatten\ndense units=8 activation=relu\n"
          "dense units=3 activation=softmax\nloss categorical_crossentropy\n"
          "optimizer adam lr=1e-2\n", fp);
    CHECK(fclose(fp) == 0);
    snprintf(p, sizeof p, "%s/x-idx3-ubyte.gz", dir);
    CHECK(!write_idx(p, 0x08, 3, (int32_t[]){N, 32, 32}, img, sizeof img));
    snprintf(p, sizeof p, "%s/y-idx1-ubyte.gz", dir);
    CHECK(!write_idx(p, 0x08, 1, (int32_t[]){N}, lab, sizeof lab));
    /* one thread and two (the pipelined loader): the same weights, bit for bit */
    for (int t = 1; t <= 2; t++) {
        CHECK_RUN(0, "train %s/m.model --data %s/x-idx3-ubyte.gz --labels %s/y-idx1-ubyte.gz "
                  "--scale divide:255 --epochs 1 --batch-size 50 --threads %d -q "
                  "-o %s/w%d.safetensors", dir, dir, dir, t, dir, t);
    }
    char p2[sizeof p];
    snprintf(p, sizeof p, "%s/w1.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/w2.safetensors", dir);
    CHECK_OK(same_weights_files(p, p2, msg_, cap_));   /* all but the date and command */
    /* --scale making infinities of integer data: found after scaling, named once */
    CHECK_RUN(1, "train %s/m.model --data %s/x-idx3-ubyte.gz --labels %s/y-idx1-ubyte.gz "
              "--scale divide:1e-37 --epochs 1 -q -o %s/w.safetensors", dir, dir, dir, dir);
    char want[512];
    snprintf(want, sizeof want, "%s/x-idx3-ubyte.gz: element 1 (sample 0) is +Inf", dir);
    CHECK_ONCE(want);
    CHECK_ONCE("error:");
    /* float IDX data with a NaN: named once, with the file and element, and the hint */
    for (int i = 0; i < 64 * F; i++) {
        float v = i == 37 ? NAN : (float)(i % 5);
        uint32_t u;
        memcpy(&u, &v, 4);
        for (int b = 0; b < 4; b++)
            fl[4 * i + b] = (unsigned char)(u >> (24 - 8 * b));
    }
    snprintf(p, sizeof p, "%s/f-idx3.gz", dir);
    CHECK(!write_idx(p, 0x0D, 3, (int32_t[]){64, 32, 32}, fl, sizeof fl));
    snprintf(p, sizeof p, "%s/y64-idx1-ubyte.gz", dir);
    CHECK(!write_idx(p, 0x08, 1, (int32_t[]){64}, lab, 64));
    CHECK_RUN(1, "train %s/m.model --data %s/f-idx3.gz --labels %s/y64-idx1-ubyte.gz "
              "--epochs 1 -q -o %s/w.safetensors", dir, dir, dir, dir);
    snprintf(want, sizeof want, "%s/f-idx3.gz: element 37 (sample 0) is NaN; --nan fill:VALUE",
             dir);
    CHECK_ONCE(want);
    CHECK_ONCE("error:");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_PASS;
}
