/* test_plan_large.c - models of thousands of layers: the planner's offsets (greedy by size
 * as the former quadratic code placed them, a sweep for the largest plans, never two live
 * buffers on one byte), the clobber check, summary time linear in the layers, and the
 * summary's labels shapes. */
#include "test.h"

#include "../src/internal.h"

#include <time.h>

/* The planner as it was before plan.c (every placed buffer scanned for each new one): the
 * reference the greedy offsets must equal. */
static size_t reference_greedy(dsi_plan_buf *b, int nb)
{
    int *order = malloc((size_t)nb * sizeof *order);
    size_t *so = malloc((size_t)nb * sizeof *so), *se = malloc((size_t)nb * sizeof *se);
    for (int i = 0; i < nb; i++)
        order[i] = i;
    for (int i = 1; i < nb; i++)   /* insertion sort: size desc, start asc, index asc */
        for (int j = i; j > 0; j--) {
            const dsi_plan_buf *x = &b[order[j]], *y = &b[order[j - 1]];
            bool before = x->bytes != y->bytes ? x->bytes > y->bytes
                        : x->start != y->start ? x->start < y->start : order[j] < order[j - 1];
            if (!before)
                break;
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t total = 0;
    for (int q = 0; q < nb; q++) {
        dsi_plan_buf *x = &b[order[q]];
        int m = 0;
        for (int p = 0; p < q; p++) {
            const dsi_plan_buf *y = &b[order[p]];
            if (y->start <= x->end && x->start <= y->end) {
                int k = m++;   /* insert by offset */
                while (k > 0 && so[k - 1] > y->off) {
                    so[k] = so[k - 1];
                    se[k] = se[k - 1];
                    k--;
                }
                so[k] = y->off;
                se[k] = y->off + y->bytes;
            }
        }
        size_t off = 0;
        for (int k = 0; k < m && off + x->bytes > so[k]; k++)
            if (se[k] > off)
                off = se[k];
        x->off = off;
        if (off + x->bytes > total)
            total = off + x->bytes;
    }
    free(order);
    free(so);
    free(se);
    return total;
}

/* Buffers overlapping in time never share a byte, and the block holds them all. */
static const char *check_valid(const dsi_plan_buf *b, int nb, size_t total)
{
    static char why[160];
    for (int i = 0; i < nb; i++) {
        if (b[i].off + b[i].bytes > total) {
            snprintf(why, sizeof why, "buffer %d ends at %zu, past the block's %zu", i,
                     b[i].off + b[i].bytes, total);
            return why;
        }
        for (int j = 0; j < i; j++)
            if (b[j].start <= b[i].end && b[i].start <= b[j].end &&
                b[j].off < b[i].off + b[i].bytes && b[i].off < b[j].off + b[j].bytes) {
                snprintf(why, sizeof why, "buffers %d [%d, %d] and %d [%d, %d] share bytes "
                         "at %zu and %zu", j, b[j].start, b[j].end, i, b[i].start, b[i].end,
                         b[j].off, b[i].off);
                return why;
            }
    }
    return NULL;
}

static void random_buffers(ds_rng *r, dsi_plan_buf *b, int nb, int steps)
{
    for (int i = 0; i < nb; i++) {
        int s = (int)ds_rng_below(r, (uint64_t)steps), len = (int)ds_rng_below(r, 6);
        if (ds_rng_uniform(r) < 0.2)
            len = (int)ds_rng_below(r, (uint64_t)steps);   /* some long-lived ones */
        b[i] = (dsi_plan_buf){.bytes = 64 * (1 + ds_rng_below(r, 8)), .start = s,
                              .end = s + len < steps ? s + len : steps - 1,
                              .value = ds_rng_uniform(r) < 0.7};
    }
}

TEST(plan_greedy_places_each_buffer_as_the_former_planner_did)
{
    ds_rng r;
    ds_rng_seed(&r, 12);
    dsi_plan_buf b[80], ref[80];
    for (int trial = 0; trial < 300; trial++) {
        int nb = 1 + (int)ds_rng_below(&r, 80), steps = 2 + (int)ds_rng_below(&r, 60);
        random_buffers(&r, b, nb, steps);
        memcpy(ref, b, sizeof b);
        CHECK(dsi_plan_pairs(b, nb, steps) <= DSI_PLAN_GREEDY_PAIRS);
        size_t total = dsi_plan_offsets(b, nb, steps), want = reference_greedy(ref, nb);
        if (total != want)
            FAIL("trial %d (%d buffers): block of %zu bytes, the former planner %zu", trial, nb,
                 total, want);
        for (int i = 0; i < nb; i++)
            if (b[i].off != ref[i].off)
                FAIL("trial %d: buffer %d at %zu, the former planner put it at %zu", trial, i,
                     b[i].off, ref[i].off);
    }
    return TEST_PASS;
}

/* Overlapping pairs counted against the definition. */
TEST(plan_pairs_counts_buffers_overlapping_in_time)
{
    ds_rng r;
    ds_rng_seed(&r, 3);
    dsi_plan_buf b[50];
    for (int trial = 0; trial < 100; trial++) {
        int nb = 1 + (int)ds_rng_below(&r, 50), steps = 1 + (int)ds_rng_below(&r, 30);
        random_buffers(&r, b, nb, steps);
        int64_t want = 0;
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < i; j++)
                want += b[j].start <= b[i].end && b[i].start <= b[j].end;
        CHECK(dsi_plan_pairs(b, nb, steps) == want);
    }
    return TEST_PASS;
}

/* The buffers of a chain of layers as training lays them out: each value lives from its
 * forward to the backward that reads it (all alive at the turn), each gradient for two
 * steps of the backward. */
static int chain_buffers(dsi_plan_buf *b, int layers, size_t bytes)
{
    int last = 2 * layers - 1, nb = 0;
    for (int i = 0; i < layers; i++) {
        b[nb++] = (dsi_plan_buf){.bytes = bytes, .start = i, .end = last - i - 1, .value = true};
        b[nb++] = (dsi_plan_buf){.bytes = bytes, .start = last - i - 1, .end = last - i};
    }
    return nb;
}

/* Above the pair budget the sweep plans: buffers never collide, and on a chain of layers
 * the block is the most bytes alive at one time (what greedy by size plans). */
TEST(plan_sweep_of_large_plans_is_valid_and_tight_on_chains)
{
    enum { LAYERS = 1500 };
    dsi_plan_buf *b = malloc(2 * LAYERS * sizeof *b);
    int nb = chain_buffers(b, LAYERS, 1024);
    CHECK(dsi_plan_pairs(b, nb, 2 * LAYERS) > DSI_PLAN_GREEDY_PAIRS);
    size_t total = dsi_plan_offsets(b, nb, 2 * LAYERS);
    const char *why = check_valid(b, nb, total);
    if (why) {
        free(b);
        FAIL("chain of %d layers: %s", LAYERS, why);
    }
    size_t peak = 0;   /* bytes alive at the busiest time */
    for (int t = 0; t < 2 * LAYERS; t++) {
        size_t live = 0;
        for (int i = 0; i < nb; i++)
            live += b[i].start <= t && t <= b[i].end ? b[i].bytes : 0;
        peak = live > peak ? live : peak;
    }
    free(b);
    if (total != peak)
        FAIL("chain of %d layers: block of %zu bytes, %zu alive at most", LAYERS, total, peak);
    /* random large plans: valid, and within the sum of their buffers */
    ds_rng r;
    ds_rng_seed(&r, 5);
    enum { NB = 4000 };
    b = malloc(NB * sizeof *b);
    for (int trial = 0; trial < 3; trial++) {
        random_buffers(&r, b, NB, 50);
        int64_t pairs = dsi_plan_pairs(b, NB, 50);
        total = dsi_plan_offsets(b, NB, 50);
        size_t sum = 0;
        for (int i = 0; i < NB; i++)
            sum += b[i].bytes;
        why = check_valid(b, NB, total);
        if (why || total > sum || pairs <= DSI_PLAN_GREEDY_PAIRS) {
            free(b);
            FAIL("trial %d (%lld pairs): %s; block %zu, all buffers %zu", trial,
                 (long long)pairs, why ? why : "valid", total, sum);
        }
    }
    free(b);
    return TEST_PASS;
}

/* The clobber check (latest start over each address range) against its definition: a
 * value read in the backward, before the last step, shares bytes with a buffer that starts
 * after its last read. */
TEST(plan_clobbers_matches_its_definition)
{
    ds_rng r;
    ds_rng_seed(&r, 8);
    dsi_plan_buf b[40];
    int seen[2] = {0, 0};
    for (int trial = 0; trial < 400; trial++) {
        int n = 2 + (int)ds_rng_below(&r, 20), nb = 1 + (int)ds_rng_below(&r, 40);
        random_buffers(&r, b, nb, 2 * n);
        for (int i = 0; i < nb; i++)   /* any offsets: shared bytes are what is checked */
            b[i].off = 64 * ds_rng_below(&r, 24);
        int want = 0;
        for (int i = 0; i < nb && !want; i++) {
            const dsi_plan_buf *x = &b[i];
            if (!x->value || x->end < n || x->end == 2 * n - 1)
                continue;
            for (int j = 0; j < nb && !want; j++)
                want = b[j].start > x->end && b[j].off < x->off + x->bytes &&
                       x->off < b[j].off + b[j].bytes;
        }
        int got = dsi_plan_clobbers(b, nb, n);
        if (got != want)
            FAIL("trial %d (%d buffers, n %d): clobbers %d, by definition %d", trial, nb, n,
                 got, want);
        seen[want]++;
    }
    CHECK(seen[0] > 20 && seen[1] > 20);   /* both answers were exercised */
    return TEST_PASS;
}

/* "input", then `layers` dense layers and an MSE loss. */
static char *chain_model(int layers)
{
    size_t cap = 64 + 40 * (size_t)layers;
    char *text = malloc(cap), *p = text;
    p += sprintf(p, "input shape=8\n");
    for (int i = 0; i < layers; i++)
        p += sprintf(p, "dense units=8 activation=relu\n");
    sprintf(p, "dense units=1\nloss mse\n");
    return text;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* What `deepsky summary` does: parse, the table, the plan. Returns the CPU seconds (the
 * best of two runs), or -1 on failure with the message in why. */
static double summary_seconds(int layers, char *why, size_t cap)
{
    char *text = chain_model(layers);
    double best = -1;
    for (int run = 0; run < 2; run++) {
        double t0 = cpu_seconds();
        ds_net *n = NULL;
        char *s = NULL;
        ds_net_opts o = {.batch = 32};
        bool ok = ds_net_parse(text, "chain.model", &o, &n) == DS_OK &&
                  (s = ds_net_summary(n)) && ds_graph_plan(ds_net_graph(n)) == DS_OK;
        double t = cpu_seconds() - t0;
        char want[64];
        snprintf(want, sizeof want, "dense_%d (Dense)", layers + 1);
        if (!ok || !strstr(s, want)) {
            snprintf(why, cap, "%d layers: %s", layers, ok ? "no last layer row" : ds_last_error());
            best = -1;
        } else if (best < 0 || t < best) {
            best = t;
        }
        free(s);
        ds_net_free(n);
        if (best < 0)
            break;
    }
    free(text);
    return best;
}

/* 4x the layers take less than 8x the time (quadratic steps would take 16x). Both sizes
 * plan with the sweep, so the comparison is of one algorithm. */
TEST(summary_time_is_linear_in_the_layers)
{
    char why[256];
    double t1 = summary_seconds(1500, why, sizeof why);
    double t4 = t1 < 0 ? -1 : summary_seconds(6000, why, sizeof why);
    if (t1 < 0 || t4 < 0)
        FAIL("%s", why);
    if (t4 > 8 * t1)
        FAIL("1500 layers: %.3f s, 6000 layers: %.3f s (%.1fx)", t1, t4, t4 / t1);
    snprintf(msg_, cap_, "1500 layers %.3f s, 6000 layers %.3f s (%.1fx)", t1, t4, t4 / t1);
    return TEST_PASS;
}

/* The line of s starting with `start`, its runs of blanks collapsed to one, into out. */
static void row_of(const char *s, const char *start, char *out, size_t cap)
{
    const char *r = s ? strstr(s, start) : NULL;
    size_t k = 0;
    for (; r && *r && *r != '\n' && k + 1 < cap; r++)
        if (*r != ' ' || (k && out[k - 1] != ' '))
            out[k++] = *r;
    out[k] = 0;
}

/* The labels row of a categorical loss: one-hot rows or class indices when the net was
 * built without a choice; one shape when it was. */
TEST(summary_labels_row_shows_class_indices_of_categorical_losses)
{
    static const char *cce = "input shape=4\ndense units=3 activation=softmax\n"
                             "loss categorical_crossentropy\n";
    static const char *sparse = "input shape=4\ndense units=3 activation=softmax\n"
                                "loss sparse_categorical_crossentropy\n";
    static const struct { bool sparse; ds_label_mode mode; const char *want; } cases[] = {
        {false, DS_LABELS_AUTO, "labels (InputLayer) (None, 3) or (None,) 0"},
        {false, DS_LABELS_DENSE, "labels (InputLayer) (None, 3) 0"},
        {false, DS_LABELS_INDEX, "labels (InputLayer) (None,) 0"},
        {true, DS_LABELS_AUTO, "labels (InputLayer) (None,) 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ds_net_opts o = {.batch = 8, .labels = cases[i].mode};
        ds_net *n;
        CHECK(ds_net_parse(cases[i].sparse ? sparse : cce, "m.model", &o, &n) == DS_OK);
        char *s = ds_net_summary(n), *g = ds_graph_summary(ds_net_graph(n));
        char row[256], grow[256];
        row_of(s, "labels (InputLayer)", row, sizeof row);
        row_of(g, "labels (InputLayer)", grow, sizeof grow);
        bool ok = !strcmp(row, cases[i].want) && !strstr(grow, " or ");
        free(s);
        free(g);
        ds_net_free(n);
        if (!ok)
            FAIL("case %zu: labels row '%s' (graph's '%s'), expected '%s'", i, row, grow,
                 cases[i].want);
    }
    CHECK(!ds_net_summary(NULL) && strstr(ds_last_error(), "NULL"));
    return TEST_PASS;
}
