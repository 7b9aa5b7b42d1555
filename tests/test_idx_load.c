/* test_idx_load.c - the pipelined IDX loader (inflate on one thread, convert on another)
 * against the serial one: the same tensors, the same errors; the finite flag that lets
 * data be checked once. */
#include "test.h"
#include "../src/internal.h"
#include "../src/io/data.h"

#include <zlib.h>

/* An IDX file of type with dims and big-endian values data (nbytes), gzipped in memory;
 * NULL if zlib fails. */
static unsigned char *idx_gz(int type, int nd, const int32_t *dims, const unsigned char *data,
                             size_t nbytes, size_t *len)
{
    size_t hn = 4 + 4 * (size_t)nd, rawn = hn + nbytes;
    unsigned char *raw = malloc(rawn);
    unsigned char *out = malloc(rawn + rawn / 100 + 1024);
    z_stream z = {0};
    if (!raw || !out || deflateInit2(&z, 1, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(raw);
        free(out);
        return NULL;
    }
    raw[0] = raw[1] = 0;
    raw[2] = (unsigned char)type;
    raw[3] = (unsigned char)nd;
    for (int i = 0; i < nd; i++)
        for (int k = 0; k < 4; k++)
            raw[4 + 4 * i + k] = (unsigned char)((uint32_t)dims[i] >> (24 - 8 * k));
    memcpy(raw + hn, data, nbytes);
    z.next_in = raw;
    z.avail_in = (uInt)rawn;
    z.next_out = out;
    z.avail_out = (uInt)(rawn + rawn / 100 + 1024);
    int r = deflate(&z, Z_FINISH);
    *len = z.total_out;
    deflateEnd(&z);
    free(raw);
    if (r != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

/* Loads buf both ways; 0 if both give the same status, message and bits. */
static int both_ways(const unsigned char *buf, size_t len, char *msg_, size_t cap_,
                     ds_status *st_out, ds_tensor **t_out)
{
    ds_tensor *a = NULL, *b = NULL;
    char ma[512];
    ds_status sa = dsi_idx_load_mem_mode(buf, len, "x-idx.gz", 0, &a);
    snprintf(ma, sizeof ma, "%s", sa ? ds_last_error() : "");
    ds_status sb = dsi_idx_load_mem_mode(buf, len, "x-idx.gz", 1, &b);
    const char *mb = sb ? ds_last_error() : "";
    int rc = 0;
    if (sa != sb || strcmp(ma, mb))
        rc = snprintf(msg_, cap_, "serial: %s '%s'; pipelined: %s '%s'", ds_status_name(sa), ma,
                      ds_status_name(sb), mb) * 0 + 1;
    else if (!sa && (ds_tensor_numel(a) != ds_tensor_numel(b) ||
                     memcmp(a->data, b->data,   /* not ds_tensor_data: it forgets "finite" */
                            (size_t)ds_tensor_numel(a) * sizeof(float))))
        rc = snprintf(msg_, cap_, "serial and pipelined tensors differ") * 0 + 1;
    *st_out = sa;
    if (t_out && !rc) {
        *t_out = a;
        a = NULL;
    }
    ds_tensor_free(a);
    ds_tensor_free(b);
    return rc;
}

TEST(idx_pipelined_matches_serial)
{
    /* 550 000 values: chunks of 256 KiB and a partial one, for each type */
    static const int types[] = {0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E}, sizes[] = {1, 1, 2, 4, 4, 8};
    const int32_t n0 = 701, n1 = 28, n2 = 28;
    size_t numel = (size_t)n0 * n1 * n2;
    unsigned char *data = malloc(numel * 8);
    CHECK(data);
    ds_rng r;
    ds_rng_seed(&r, 5);
    int rc = 0;
    for (int c = 0; c < 6 && !rc; c++) {
        int es = sizes[c];
        for (size_t i = 0; i < numel * (size_t)es; i++)
            data[i] = (unsigned char)ds_rng_below(&r, 256);
        if (types[c] == 0x0C)   /* int32 within 2^24: the top byte sign-extends the next */
            for (size_t i = 0; i < numel; i++)
                data[4 * i] = data[4 * i + 1] & 0x80 ? 0xff : 0;
        if (types[c] == 0x0D)   /* floats without NaN or Inf: exponent below 255 */
            for (size_t i = 0; i < numel; i++)
                data[4 * i] &= 0xbf;
        size_t len;
        unsigned char *gz = idx_gz(types[c], 3, (int32_t[]){n0, n1, n2}, data,
                                   numel * (size_t)es, &len);
        CHECK(gz);
        ds_status st;
        ds_tensor *t = NULL;
        rc = both_ways(gz, len, msg_, cap_, &st, &t);
        if (!rc && (st || ds_tensor_numel(t) != (int64_t)numel))
            rc = snprintf(msg_, cap_, "type %02x: %s", types[c], ds_last_error()) * 0 + 1;
        /* integers are finite by construction: known so, without a check */
        if (!rc && dsi_tensor_known_finite(t) != (types[c] < 0x0D))
            rc = snprintf(msg_, cap_, "type %02x: finite flag %d", types[c],
                          dsi_tensor_known_finite(t)) * 0 + 1;
        if (!rc && types[c] == 0x08 && t->data[7] != (float)data[7])
            rc = snprintf(msg_, cap_, "value 7: %g, not %d", t->data[7], data[7]) * 0 + 1;
        ds_tensor_free(t);
        free(gz);
    }
    free(data);
    return rc;
}

TEST(idx_pipelined_errors_match_serial)
{
    const int32_t n0 = 3000, n1 = 28, n2 = 28;
    size_t numel = (size_t)n0 * n1 * n2, len;
    unsigned char *data = malloc(numel * 4);
    CHECK(data);
    for (size_t i = 0; i < numel; i++)
        data[i] = (unsigned char)(i * 7 % 251);
    unsigned char *gz = idx_gz(0x08, 3, (int32_t[]){n0, n1, n2}, data, numel, &len);
    CHECK(gz);
    ds_status st;
    int rc = 0;
    /* cut inside the data (several chunks in), in the trailer, and near the start */
    size_t cuts[] = {len / 2, len - 4, len - 1, 40};
    for (size_t k = 0; k < 4 && !rc; k++) {
        rc = both_ways(gz, cuts[k], msg_, cap_, &st, NULL);
        if (!rc && (st != DS_ERR_FORMAT || !strstr(ds_last_error(), "x-idx.gz: truncated")))
            rc = snprintf(msg_, cap_, "cut at %zu of %zu: %s", cuts[k], len,
                          ds_last_error()) * 0 + 1;
    }
    /* a corrupt deflate stream, past the first chunk */
    unsigned char keep = gz[len / 3];
    gz[len / 3] ^= 0x5a;
    if (!rc && !(rc = both_ways(gz, len, msg_, cap_, &st, NULL)) &&
        (st != DS_ERR_FORMAT || !strstr(ds_last_error(), "x-idx.gz: ")))
        rc = snprintf(msg_, cap_, "corrupt stream: %s %s", ds_status_name(st),
                      ds_last_error()) * 0 + 1;
    gz[len / 3] = keep;
    free(gz);
    /* an int32 beyond 2^24 late in the file, then the stream cut further on: the value is
     * reported first, by its element, both ways */
    for (size_t i = 0; i < numel; i++) {
        uint32_t v = (uint32_t)(i % 1000);
        for (int b = 0; b < 4; b++)
            data[4 * i + b] = (unsigned char)(v >> (24 - 8 * b));
    }
    size_t badi = numel - 1234;
    data[4 * badi] = 0x7f;
    gz = idx_gz(0x0C, 3, (int32_t[]){n0, n1, n2}, data, numel * 4, &len);
    CHECK(gz);
    for (int k = 0; k < 2 && !rc; k++) {
        rc = both_ways(gz, k ? len - 8 : len, msg_, cap_, &st, NULL);
        char want[96];
        snprintf(want, sizeof want, "int32 value at element %zu does not fit", badi);
        if (!rc && (st != DS_ERR_FORMAT || !strstr(ds_last_error(), want)))
            rc = snprintf(msg_, cap_, "big int32 (%d): %s", k, ds_last_error()) * 0 + 1;
    }
    free(gz);
    free(data);
    return rc;
}

TEST(idx_finite_flag_checks_once)
{
    /* float values with a NaN: not known finite after loading; the check names the element
     * and, having found it, keeps saying so */
    int32_t n = 300;
    unsigned char data[300 * 4];
    for (int i = 0; i < n; i++) {
        float f = (float)i / 8;
        uint32_t u;
        memcpy(&u, &f, 4);
        if (i == 123)
            u = 0x7fc00000u;   /* NaN */
        for (int b = 0; b < 4; b++)
            data[4 * i + b] = (unsigned char)(u >> (24 - 8 * b));
    }
    size_t len;
    unsigned char *gz = idx_gz(0x0D, 2, (int32_t[]){100, 3}, data, sizeof data, &len);
    CHECK(gz);
    ds_tensor *t = NULL;
    ds_status st = dsi_idx_load_mem_mode(gz, len, "f-idx.gz", 1, &t);
    free(gz);
    CHECK(st == DS_OK);
    CHECK(!dsi_tensor_known_finite(t));
    for (int k = 0; k < 2; k++) {
        CHECK(ds_tensor_check_finite(t, "f-idx.gz") == DS_ERR_VALUE);
        CHECK(strstr(ds_last_error(), "f-idx.gz: element 123 (sample 41) is NaN"));
    }
    /* fixed through the write accessor: checked again, and never known finite again (the
     * caller may write through its pointer later) */
    float *x = ds_tensor_data(t);
    x[123] = 1;
    CHECK(ds_tensor_check_finite(t, "f") == DS_OK && !dsi_tensor_known_finite(t));
    x[5] = INFINITY;
    CHECK(ds_tensor_check_finite(t, "f") == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "f: element 5 (sample 1) is +Inf"));
    ds_tensor_free(t);
    return TEST_PASS;
}

TEST(idx_finite_flag_follows_scaling)
{
    /* divide:A scales and checks its results in one pass: data known finite stay known so
     * until a value overflows */
    ds_net *n = NULL;
    const char *model = "input shape=3\ndense units=2\nloss mse\n";
    CHECK(ds_net_parse(model, "m.model", NULL, &n) == DS_OK);
    /* bytes 1..12 and one of 255 as an IDX file: integers, known finite as loaded */
    unsigned char v[12] = {1, 2, 3, 4, 5, 6, 7, 8, 255, 1, 2, 3};
    size_t len;
    unsigned char *gz = idx_gz(0x08, 2, (int32_t[]){4, 3}, v, sizeof v, &len);
    ds_tensor *x = NULL;
    CHECK(gz && dsi_idx_load_mem_mode(gz, len, "x-idx.gz", 0, &x) == DS_OK);
    free(gz);
    CHECK(dsi_tensor_known_finite(x));
    CHECK(ds_net_set_input_scaling(n, NULL, DS_SCALE_DIVIDE, 2, x) == DS_OK);
    CHECK(ds_net_preprocess(n, x) == DS_OK);
    CHECK(dsi_tensor_known_finite(x) && x->data[8] == 127.5f);
    CHECK(ds_net_check_data(n, x, "x-idx.gz", NULL, NULL) == DS_OK);
    /* 127.5 / 1e-37 overflows: no longer known finite, and the check finds it */
    CHECK(ds_net_set_input_scaling(n, NULL, DS_SCALE_DIVIDE, 1e-37f, x) == DS_OK);
    CHECK(ds_net_preprocess(n, x) == DS_OK);
    CHECK(!dsi_tensor_known_finite(x));
    CHECK(ds_net_check_data(n, x, "x-idx.gz", NULL, NULL) == DS_ERR_VALUE);
    CHECK(strstr(ds_last_error(), "x-idx.gz: element 8 (sample 2) is +Inf"));
    ds_tensor_free(x);
    ds_net_free(n);
    return TEST_PASS;
}
