/* test_io.c - safetensors save/load: round trips, a file written by Python, truncation at
 * every byte, corrupted headers, atomic saves, the JSON reader, and model weights. */
#include "test.h"

#include "../src/internal.h"
#include "../src/io/json.h"

#include <dirent.h>
#include <zlib.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory under /tmp for this test; removed (with its files) by rm_tmpdir. */
static char *make_tmpdir(char *buf, size_t cap) { return (char *)test_tmpdir(buf, cap, "io"); }

static void rm_tmpdir(const char *dir) { test_rm_rf(dir); }

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

/* Removes then creates: truncating a file in place makes ext4 flush it on close (slow). */
static void write_all(const char *path, const void *b, size_t n)
{
    remove(path);
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(b, 1, n, fp);
        fclose(fp);
    }
}

/* Writes a safetensors file with this header text and nbuf data bytes (hlen: the header
 * length field; -1 for the text's length). */
static void write_st(const char *path, const char *header, int64_t hlen, size_t nbuf)
{
    size_t hn = strlen(header);
    uint64_t len = hlen < 0 ? hn : (uint64_t)hlen;
    unsigned char *b = calloc(1, 8 + hn + nbuf + 1);
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)(len >> (8 * k));
    memcpy(b + 8, header, hn);
    for (size_t i = 0; i < nbuf; i++)
        b[8 + hn + i] = (unsigned char)(i * 37 + 1);
    write_all(path, b, 8 + hn + nbuf);
    free(b);
}

static ds_tensor_set *sample_set(void)
{
    ds_tensor_set *s = ds_tensor_set_create();
    float a[6] = { 1, -2, 3.5f, 1e-30f, -1e30f, 0 }, b[5] = { 0.1f, 0.2f, 0.3f, 0.4f, 0.5f };
    float sc = 7.25f;
    ds_tensor_set_add(s, "layer.weight", 2, (int64_t[]){2, 3}, a);
    ds_tensor_set_add(s, "b", 1, (int64_t[]){5}, b);
    ds_tensor_set_add(s, "scalar", 0, NULL, &sc);
    ds_tensor_set_add(s, "empty", 3, (int64_t[]){4, 0, 2}, NULL);
    ds_tensor_set_add(s, "a \"quoted\"\\name\n\x01 caf\xc3\xa9", 1, (int64_t[]){1}, &sc);
    ds_tensor_set_meta_set(s, "format", "pt");
    ds_tensor_set_meta_set(s, "epoch", "12");
    ds_tensor_set_meta_set(s, "odd \"key\"", "tab\there \xe2\x82\xac");
    return s;
}

static int same_sets(const ds_tensor_set *a, const ds_tensor_set *b, char *msg, size_t cap)
{
    if (ds_tensor_set_count(a) != ds_tensor_set_count(b)) {
        snprintf(msg, cap, "%d tensors, expected %d", ds_tensor_set_count(b),
                 ds_tensor_set_count(a));
        return 1;
    }
    for (int i = 0; i < ds_tensor_set_count(a); i++) {
        ds_tensor *x = ds_tensor_set_at(a, i), *y = ds_tensor_set_at(b, i);
        if (strcmp(ds_tensor_set_name(a, i), ds_tensor_set_name(b, i))) {
            snprintf(msg, cap, "tensor %d is '%s', expected '%s'", i, ds_tensor_set_name(b, i),
                     ds_tensor_set_name(a, i));
            return 1;
        }
        if (x->ndim != y->ndim || memcmp(x->shape, y->shape, (size_t)x->ndim * 8) ||
            (x->numel && memcmp(x->data, y->data, (size_t)x->numel * 4))) {
            snprintf(msg, cap, "tensor '%s' differs", ds_tensor_set_name(a, i));
            return 1;
        }
    }
    for (int i = 0; i < dsi_tensor_set_meta_count(a); i++) {
        const char *k = dsi_tensor_set_meta_key(a, i);
        const char *v = ds_tensor_set_meta_get(b, k);
        if (!v || strcmp(v, ds_tensor_set_meta_get(a, k))) {
            snprintf(msg, cap, "metadata '%s' is '%s'", k, v ? v : "(absent)");
            return 1;
        }
    }
    if (dsi_tensor_set_meta_count(a) != dsi_tensor_set_meta_count(b)) {
        snprintf(msg, cap, "metadata count differs");
        return 1;
    }
    return 0;
}

TEST(io_roundtrip)
{
    char dir[64], path[128];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    ds_tensor_set *s = sample_set(), *r = NULL;
    CHECK(ds_safetensors_save(s, path) == DS_OK);
    CHECK(count_files(dir) == 1);   /* no temporary file left behind */
    size_t n = 0;
    unsigned char *b = read_all(path, &n);
    CHECK(b && n >= 16);
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++)
        hl |= (uint64_t)b[k] << (8 * k);
    CHECK(hl % 8 == 0 && b[8] == '{');
    CHECK(n == 8 + hl + 4 * (6 + 5 + 1 + 0 + 1));
    free(b);
    CHECK(ds_safetensors_load(path, &r) == DS_OK);
    int rc = same_sets(s, r, msg_, cap_);
    CHECK(ds_tensor_ndim(ds_tensor_set_get(r, "scalar")) == 0);
    CHECK(ds_tensor_numel(ds_tensor_set_get(r, "empty")) == 0);
    /* saving again over an existing file replaces it */
    ds_tensor_set *e = ds_tensor_set_create(), *re = NULL;
    CHECK(ds_safetensors_save(e, path) == DS_OK);
    CHECK(ds_safetensors_load(path, &re) == DS_OK && ds_tensor_set_count(re) == 0);
    ds_tensor_set_free(e);
    ds_tensor_set_free(re);
    ds_tensor_set_free(s);
    ds_tensor_set_free(r);
    rm_tmpdir(dir);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(io_python_reference)
{
    ds_tensor_set *s = NULL;
    CHECK(ds_safetensors_load("tests/fixtures/io_reference.safetensors", &s) == DS_OK);
    struct { const char *name; int ndim; int64_t shape[3]; int n; double v[6]; } want[] = {
        { "f32", 2, {2, 3}, 6, { 1.5, -2.25, 3.0, 0.0, 1e-30, -1e30 } },
        { "f64", 1, {4}, 4, { 0.1, -1.0 / 3.0, 2.5e10, -0.0 } },
        { "i64", 2, {2, 2}, 4, { -1099511627776.0, 7, 0, 123456789 } },
        { "u8", 2, {2, 3}, 6, { 0, 51, 102, 153, 204, 255 } },
        { "i32", 1, {3}, 3, { -2147483648.0, 2147483647.0, -5 } },
        { "i16", 1, {2}, 2, { -32768, 32767 } },
        { "i8", 1, {3}, 3, { -128, 127, 0 } },
        { "f16", 1, {5}, 5, { 1.0, -0.5, 65504.0, 6.103515625e-05, 5.9604644775390625e-08 } },
        { "bool", 1, {3}, 3, { 1, 0, 1 } },
        { "scalar", 0, {0}, 1, { 42.5 } },
        { "empty", 3, {2, 0, 3}, 0, { 0 } },
        { "caf\xc3\xa9.w", 1, {2}, 2, { 1, 2 } },
        { "emoji\xf0\x9f\x98\x80", 1, {1}, 1, { 3 } },
        { "bf16", 1, {3}, 3, { 1.0, -3.5, 1.5 * 1152921504606846976.0 } },
    };
    int nw = (int)(sizeof want / sizeof want[0]);
    CHECK(ds_tensor_set_count(s) == nw);
    for (int i = 0; i < nw; i++) {
        if (strcmp(ds_tensor_set_name(s, i), want[i].name))
            FAIL("tensor %d is '%s', expected '%s' (header order)", i, ds_tensor_set_name(s, i),
                 want[i].name);
        ds_tensor *t = ds_tensor_set_at(s, i);
        CHECK(t->ndim == want[i].ndim && t->numel == want[i].n);
        for (int d = 0; d < t->ndim; d++)
            CHECK(t->shape[d] == want[i].shape[d]);
        for (int k = 0; k < want[i].n; k++)
            if (t->data[k] != (float)want[i].v[k])
                FAIL("%s[%d] = %.9g, expected %.9g", want[i].name, k, t->data[k],
                     (float)want[i].v[k]);
    }
    CHECK(!strcmp(ds_tensor_set_meta_get(s, "format"), "pt"));
    CHECK(!strcmp(ds_tensor_set_meta_get(s, "note"),
                  "quote \" backslash \\ tab \t \xc3\xa9"));
    ds_tensor_set_free(s);
    return TEST_PASS;
}

/* Every proper prefix of a valid file must fail cleanly. */
static int truncate_all(const char *src, const char *dst, char *msg, size_t cap)
{
    size_t n;
    unsigned char *b = read_all(src, &n);
    if (!b) {
        snprintf(msg, cap, "cannot read %s", src);
        return 1;
    }
    for (size_t len = 0; len < n; len++) {
        write_all(dst, b, len);
        ds_tensor_set *s = NULL;
        ds_status st = ds_safetensors_load(dst, &s);
        if ((st != DS_ERR_FORMAT && st != DS_ERR_IO) || s || !strstr(ds_last_error(), dst)) {
            snprintf(msg, cap, "%s truncated to %zu of %zu bytes: %s (%s)", src, len, n,
                     ds_status_name(st), ds_last_error());
            ds_tensor_set_free(s);
            free(b);
            return 1;
        }
    }
    free(b);
    return 0;
}

TEST(io_truncated_every_byte)
{
    char dir[64], path[128], cut[128];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/full.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    ds_tensor_set *s = sample_set();
    CHECK(ds_safetensors_save(s, path) == DS_OK);
    ds_tensor_set_free(s);
    int rc = truncate_all(path, cut, msg_, cap_) ||
             truncate_all("tests/fixtures/io_reference.safetensors", cut, msg_, cap_);
    rm_tmpdir(dir);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(io_corrupt_headers)
{
    static const struct { const char *header; int64_t hlen; size_t nbuf; const char *says; } cases[] = {
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\0", 60, 8, "JSON" },
        { "{\"a\x01\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\\x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", -1, 8, "JSON" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}, \"b\":null}", -1, 8, "JSON" },
        { "[1, 2]      ", -1, 0, "'{'" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", -1, 8, "outside" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", -1, 8, "outside" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", -1, 8, "data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", -1, 8, "data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8, "needs 12 bytes" },
        { "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "needs 16 bytes" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", -1, 8, "shape" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", -1, 8, "shape" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", -1, 8, "shape" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", -1, 8, "too large" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", -1, 8, "7 dimensions" },
        { "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "dtype 'Q4'" },
        { "{\"a\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "dtype" },
        { "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "dtype" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", -1, 8, "unknown field" },
        { "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "twice" },
        { "{\"a\":[1,2]}", -1, 0, "not an object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, 16, "'a' appears twice" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, "overlap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "overlap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, "gap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 9, "trailing" },
        { "{\"__metadata__\":{\"k\":1}}", -1, 0, "metadata" },
        { "{\"__metadata__\":[]}", -1, 0, "metadata" },
        { "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", -1, 0, "twice" },
        { "{}", 1000, 0, "header length" },
        { "{}", (int64_t)0x7fffffffffffffffLL, 0, "header length" },
        { "{}", 0, 2, "too short" },
        { "{", -1, 0, "too short" },
        { "", -1, 0, "too short" },
    };
    char dir[64], path[128];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof cases / sizeof cases[0]; i++) {
        write_st(path, cases[i].header, cases[i].hlen, cases[i].nbuf);
        ds_tensor_set *s = NULL;
        ds_status st = ds_safetensors_load(path, &s);
        if (st != DS_ERR_FORMAT || s || !strstr(ds_last_error(), path) ||
            !strstr(ds_last_error(), cases[i].says)) {
            snprintf(msg_, cap_, "case %zu (%s): %s, message '%s' should name the file and say '%s'",
                     i, cases[i].header, ds_status_name(st), ds_last_error(), cases[i].says);
            rc = 1;
        }
        ds_tensor_set_free(s);
    }
    /* messages name the tensor */
    write_st(path, "{\"conv.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8);
    ds_tensor_set *s = NULL;
    if (!rc && (ds_safetensors_load(path, &s) != DS_ERR_FORMAT ||
                !strstr(ds_last_error(), "conv.weight")))
        snprintf(msg_, cap_, "message '%s' should name the tensor", ds_last_error()), rc = 1;
    /* a deeply nested header is refused without recursing without bound */
    if (!rc) {
        size_t depth = 100000;
        char *h = malloc(2 * depth + 3);
        h[0] = '{';
        memcpy(h + 1, "\"a\":", 4);
        memset(h + 5, '[', depth);
        h[5 + depth] = 0;
        write_st(path, h, -1, 0);
        free(h);
        if (ds_safetensors_load(path, &s) != DS_ERR_FORMAT || !strstr(ds_last_error(), "deep"))
            snprintf(msg_, cap_, "deep nesting: '%s'", ds_last_error()), rc = 1;
    }
    rm_tmpdir(dir);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* Random byte changes in the header of a valid file: load succeeds or fails cleanly. */
TEST(io_fuzz_header)
{
    char dir[64], path[128], bad[128];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/full.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/fuzz.safetensors", dir);
    ds_tensor_set *s = sample_set();
    CHECK(ds_safetensors_save(s, path) == DS_OK);
    ds_tensor_set_free(s);
    size_t n = 0;
    unsigned char *b = read_all(path, &n), *c = malloc(n + 1);
    CHECK(b && n >= 16);
    size_t hl = b[0] | (size_t)b[1] << 8;
    ds_rng r;
    ds_rng_seed(&r, 11);
    const char alphabet[] = "{}[]\",:0123456789-\\u \x01\xff";
    int ok = 0, rc = 0;
    for (int it = 0; it < 1500 && !rc; it++) {
        memcpy(c, b, n);
        int edits = 1 + (int)ds_rng_below(&r, 3);
        for (int e = 0; e < edits; e++) {
            size_t at = ds_rng_below(&r, 8 + hl);
            if (at < 8 && ds_rng_below(&r, 4))
                at = 8 + ds_rng_below(&r, hl);
            c[at] = ds_rng_below(&r, 2) ? (unsigned char)alphabet[ds_rng_below(&r, sizeof alphabet - 1)]
                                        : (unsigned char)ds_rng_below(&r, 256);
        }
        write_all(bad, c, n);
        ds_tensor_set *t = NULL;
        ds_status st = ds_safetensors_load(bad, &t);
        if (st == DS_OK)
            ok++;
        else if (st != DS_ERR_FORMAT || t)
            snprintf(msg_, cap_, "iteration %d: %s %s", it, ds_status_name(st), ds_last_error()), rc = 1;
        ds_tensor_set_free(t);
    }
    free(b);
    free(c);
    rm_tmpdir(dir);
    if (!rc)
        snprintf(msg_, cap_, "%d of 1500 mutated files still valid", ok);
    return rc ? TEST_FAIL : TEST_PASS;
}

TEST(io_open_errors)
{
    ds_tensor_set *s = NULL;
    CHECK(ds_safetensors_load("/nonexistent/dir/x.safetensors", &s) == DS_ERR_IO && !s);
    CHECK(strstr(ds_last_error(), "/nonexistent/dir/x.safetensors"));
    CHECK(strstr(ds_last_error(), strerror(ENOENT)));
    CHECK(ds_safetensors_load("/tmp", &s) == DS_ERR_IO && !s && strstr(ds_last_error(), "/tmp"));
    return TEST_PASS;
}

TEST(io_save_is_atomic)
{
    char dir[64], path[128], tmp[160];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    ds_tensor_set *s = sample_set(), *r = NULL;
    CHECK(ds_safetensors_save(s, path) == DS_OK);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = read_all(path, &n0);
    /* the temporary file cannot be created: the target is untouched */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(mkdir(tmp, 0700) == 0);
    ds_tensor_set *other = ds_tensor_set_create();
    ds_tensor_set_add(other, "x", 1, (int64_t[]){3}, (float[]){1, 2, 3});
    ds_status st = ds_safetensors_save(other, path);
    rmdir(tmp);
    CHECK(st == DS_ERR_IO && strstr(ds_last_error(), path));
    unsigned char *after = read_all(path, &n1);
    CHECK(n0 == n1 && !memcmp(before, after, n0));
    free(after);
    /* a bad tensor name fails before anything is written */
    ds_tensor_set_add(other, "__metadata__", 1, (int64_t[]){1}, (float[]){1});
    CHECK(ds_safetensors_save(other, path) == DS_ERR_ARG);
    ds_tensor_set *latin1 = ds_tensor_set_create();
    ds_tensor_set_add(latin1, "caf\xe9", 1, (int64_t[]){1}, (float[]){1});
    CHECK(ds_safetensors_save(latin1, path) == DS_ERR_ARG && strstr(ds_last_error(), "UTF-8"));
    ds_tensor_set_free(latin1);
    after = read_all(path, &n1);
    CHECK(n0 == n1 && !memcmp(before, after, n0));
    free(after);
    free(before);
    CHECK(count_files(dir) == 1);
    CHECK(ds_safetensors_load(path, &r) == DS_OK);
    ds_tensor_set_free(r);
    /* a directory that does not exist: DS_ERR_IO naming the file, nothing created */
    CHECK(ds_safetensors_save(s, "/nonexistent-dir/w.safetensors") == DS_ERR_IO);
    CHECK(strstr(ds_last_error(), "/nonexistent-dir/w.safetensors"));
    ds_tensor_set_free(s);
    ds_tensor_set_free(other);
    rm_tmpdir(dir);
    return TEST_PASS;
}

TEST(io_json_reader)
{
    char err[128];
    const char *txt = " { \"a\\u00e9\\ud83d\\ude00\\n\\/\" : [ -9223372036854775808, 9223372036854775807 , 0],"
                      "\"o\":{}, \"e\":[] } ";
    dsi_json *v = dsi_json_parse(txt, strlen(txt), err, sizeof err);
    CHECK(v && v->type == DSI_JSON_OBJ && v->n == 3);
    CHECK(!strcmp(v->keys[0], "a\xc3\xa9\xf0\x9f\x98\x80\n/"));
    const dsi_json *a = &v->items[0];
    CHECK(a->type == DSI_JSON_ARR && a->n == 3 && a->items[0].i == INT64_MIN &&
          a->items[1].i == INT64_MAX && a->items[2].i == 0);
    CHECK(dsi_json_get(v, "o")->type == DSI_JSON_OBJ && dsi_json_get(v, "e")->n == 0);
    CHECK(!dsi_json_get(v, "zz"));
    dsi_json_free(v);
    static const char *bad[] = {
        "", "{", "}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{a:1}", "[9223372036854775808]",
        "[-9223372036854775809]", "[1e5]", "[-]", "[true]", "\"\\ud800\\u0041\"", "\"\\udc00\"",
        "\"\\u12\"", "\"abc", "\"\\", "[1] [2]", "[\"\t\"]", "[01]", "\"\xc0\x80\"",
        "\"\xed\xa0\x80\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        v = dsi_json_parse(bad[i], strlen(bad[i]), err, sizeof err);
        if (v || !strstr(err, "at byte")) {
            dsi_json_free(v);
            FAIL("'%s' should be rejected (err '%s')", bad[i], err);
        }
    }
    return TEST_PASS;
}

TEST(io_model_roundtrip_and_mismatch)
{
    char dir[64], path[128];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ds_init he = { DS_INIT_HE_NORMAL, 0, 0 };
    ds_model *m = ds_model_create(3), *m2 = ds_model_create(99), *m3 = ds_model_create(5);
    CHECK(ds_model_add_param(m, "fc1.weight", 2, (int64_t[]){4, 3}, 1, he));
    CHECK(ds_model_add_param(m, "fc1.bias", 1, (int64_t[]){4}, 1, he));
    CHECK(ds_model_add_param(m, "bn.running_mean", 1, (int64_t[]){4}, 0, he));
    CHECK(ds_model_add_param(m2, "fc1.weight", 2, (int64_t[]){4, 3}, 1, he));
    CHECK(ds_model_add_param(m2, "fc1.bias", 1, (int64_t[]){4}, 1, he));
    CHECK(ds_model_add_param(m2, "bn.running_mean", 1, (int64_t[]){4}, 0, he));
    CHECK(ds_model_save_weights(m, path) == DS_OK);
    CHECK(ds_model_load_weights(m2, path) == DS_OK);
    for (int i = 0; i < 3; i++) {
        ds_param *p = ds_model_param(m, i), *q = ds_model_find(m2, ds_param_name(p));
        CHECK(q && !memcmp(ds_param_data(p), ds_param_data(q), (size_t)ds_param_numel(p) * 4));
    }
    /* a different model: each mismatch is listed and nothing changes */
    CHECK(ds_model_add_param(m3, "fc1.weight", 2, (int64_t[]){4, 5}, 1, he));
    CHECK(ds_model_add_param(m3, "fc2.bias", 1, (int64_t[]){4}, 1, he));
    CHECK(ds_model_add_param(m3, "bn.running_mean", 1, (int64_t[]){4}, 0, he));
    float keep[20];
    memcpy(keep, ds_param_data(ds_model_param(m3, 0)), sizeof keep);
    CHECK(ds_model_load_weights(m3, path) == DS_ERR_FORMAT);
    const char *e = ds_last_error();
    CHECK(strstr(e, path) && strstr(e, "3 mismatches"));
    CHECK(strstr(e, "'fc1.weight' has shape [4, 3], the model expects [4, 5]"));
    CHECK(strstr(e, "'fc2.bias' [4] is missing"));
    CHECK(strstr(e, "'fc1.bias' is not a parameter of the model"));
    CHECK(!memcmp(keep, ds_param_data(ds_model_param(m3, 0)), sizeof keep));
    /* a missing file */
    CHECK(ds_model_load_weights(m2, "/nonexistent/m.safetensors") == DS_ERR_IO);
    ds_model_free(m);
    ds_model_free(m2);
    ds_model_free(m3);
    rm_tmpdir(dir);
    return TEST_PASS;
}

/* Headers that claim more data than any file could hold, or whose shape product overflows,
 * are refused with a message before anything is allocated: .npy and IDX (safetensors in
 * io_corrupt_headers, FITS by cfitsio's own header checks and check_size). */
TEST(io_hostile_shapes_refused)
{
    static const struct { const char *shape; const char *says; } npy[] = {
        { "(100000, 100000, 1000)", "more than 2^40" },
        { "(2147483648, 2147483648, 2147483648)", "more than 2^40" },   /* wraps to 0 in 64 bits */
        { "(4611686018427387904, 4)", "bad shape" },
        { "(1099511627776, 16)", "more than 2^40" },
        { "(1024, 1024, 64)", "truncated data" },
    };
    char dir[64], path[160];
    CHECK(make_tmpdir(dir, sizeof dir));
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof npy / sizeof npy[0]; i++) {
        snprintf(path, sizeof path, "%s/h%zu.npy", dir, i);
        char hdr[128];
        int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                         npy[i].shape);
        int pad = (64 - (10 + n + 1) % 64) % 64;
        FILE *f = fopen(path, "wb");
        unsigned short hl = (unsigned short)(n + pad + 1);
        fwrite("\x93NUMPY\x01\x00", 1, 8, f);
        fputc(hl & 0xff, f);
        fputc(hl >> 8, f);
        fprintf(f, "%s%*s\n", hdr, pad, "");
        fwrite("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 1, 16, f);
        fclose(f);
        ds_tensor *t = NULL;
        ds_status st = ds_npy_load(path, &t);
        if (st != DS_ERR_FORMAT || t || !strstr(ds_last_error(), npy[i].says)) {
            snprintf(msg_, cap_, "npy %s: %s, '%s' should say '%s'", npy[i].shape,
                     ds_status_name(st), ds_last_error(), npy[i].says);
            rc = 1;
        }
        ds_tensor_free(t);
    }
    /* IDX: four dimensions of 65535 floats (2^64 elements), and a plausible shape with too
     * few bytes */
    static const unsigned char idx_big[] = {0, 0, 0x0d, 4, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff,
                                            0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
    static const unsigned char idx_short[] = {0, 0, 0x0d, 2, 0, 0, 0x10, 0, 0, 0, 0x10, 0,
                                              1, 2, 3, 4};
    const struct { const unsigned char *b; size_t n; const char *says; } idx[] = {
        { idx_big, sizeof idx_big, "2^40" }, { idx_short, sizeof idx_short, "needs" },
    };
    for (size_t i = 0; !rc && i < 2; i++) {
        snprintf(path, sizeof path, "%s/h%zu-idx3-ubyte", dir, i);
        FILE *f = fopen(path, "wb");
        fwrite(idx[i].b, 1, idx[i].n, f);
        fclose(f);
        ds_tensor *t = NULL;
        ds_status st = ds_array_load(path, NULL, &t);
        if (st != DS_ERR_FORMAT || t || !strstr(ds_last_error(), idx[i].says)) {
            snprintf(msg_, cap_, "IDX case %zu: %s, '%s' should say '%s'", i, ds_status_name(st),
                     ds_last_error(), idx[i].says);
            rc = 1;
        }
        ds_tensor_free(t);
    }
    rm_tmpdir(dir);
    return rc ? TEST_FAIL : TEST_PASS;
}

/* A gzip bomb: 48 MB of zeros in a 48 KB .fits.gz. Under a 16 MB memory limit the reader
 * stops decompressing at the limit with a message; nothing takes all memory. */
TEST(io_gzip_bomb_stops_at_the_memory_limit)
{
    if (!ds_has_feature("fits")) SKIP("needs FITS support (built with NO_FITS=1)");
    char dir[64], path[160];
    CHECK(make_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/bomb.fits.gz", dir);
    gzFile gz = gzopen(path, "wb9");
    CHECK(gz);
    static unsigned char zeros[1 << 16];
    for (int i = 0; i < 768; i++)
        CHECK(gzwrite(gz, zeros, sizeof zeros) == (int)sizeof zeros);
    CHECK(gzclose(gz) == Z_OK);
    size_t old = ds_get_memory_limit();
    ds_set_memory_limit((size_t)16 << 20);
    ds_tensor *t = NULL;
    ds_status st = ds_array_load(path, NULL, &t);
    char err[512];
    snprintf(err, sizeof err, "%s", ds_last_error());
    ds_set_memory_limit(old);
    ds_tensor_free(t);
    rm_tmpdir(dir);
    if (st != DS_ERR_NOMEM || !strstr(err, "bomb.fits.gz: decompresses to more than") ||
        !strstr(err, "memory limit"))
        FAIL("got %s: '%s'", ds_status_name(st), err);
    snprintf(msg_, cap_, "%s", err);
    return TEST_PASS;
}
