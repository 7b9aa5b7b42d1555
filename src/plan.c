/* plan.c - where each buffer of a graph's memory plan goes in its one block: greedy by size
 * for graphs of ordinary size, a sweep along time for very large ones; and whether a
 * backward pass overwrites values it reads (graph.c computes the lifetimes). */
#include "internal.h"

/* ---- greedy by size ----
 * Largest buffer first (then earliest start, then index), each at the lowest offset clear
 * of every placed buffer whose lifetime overlaps its own. The placed buffers overlapping
 * [s, e] come from a segment tree over start times: leaf t lists the buffers starting at t,
 * and each node keeps the latest end among the buffers below it, so a query visits only
 * subtrees holding an overlapping buffer. The cost is that of the overlapping pairs. */
typedef struct {
    size_t off, end;
} span;

static int by_off(const void *pa, const void *pb)
{
    const span *a = pa, *b = pb;
    return (a->off > b->off) - (a->off < b->off);
}

typedef struct {
    size_t bytes;
    int start, idx;
} key;

static int by_key(const void *pa, const void *pb)
{
    const key *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

typedef struct {
    int leaves;          /* a power of two >= the time steps */
    int *max_end;        /* per node (1-based heap layout), -1: empty */
    int *head, *next;    /* per leaf, per buffer: the buffers starting there */
} time_tree;

static bool tree_init(time_tree *t, int steps, int nb)
{
    t->leaves = 1;
    while (t->leaves < steps)
        t->leaves *= 2;
    t->max_end = malloc(2 * (size_t)t->leaves * sizeof *t->max_end);
    t->head = malloc((size_t)t->leaves * sizeof *t->head);
    t->next = malloc(((size_t)nb + 1) * sizeof *t->next);
    if (!t->max_end || !t->head || !t->next)
        return false;
    for (int i = 0; i < 2 * t->leaves; i++)
        t->max_end[i] = -1;
    for (int i = 0; i < t->leaves; i++)
        t->head[i] = -1;
    return true;
}

static void tree_free(time_tree *t)
{
    free(t->max_end);
    free(t->head);
    free(t->next);
}

static void tree_insert(time_tree *t, const dsi_plan_buf *b, int i)
{
    t->next[i] = t->head[b[i].start];
    t->head[b[i].start] = i;
    for (int v = t->leaves + b[i].start; v >= 1 && t->max_end[v] < b[i].end; v /= 2)
        t->max_end[v] = b[i].end;
}

/* The placed buffers overlapping [s, e] into out (as address spans); returns their count. */
static int tree_query(const time_tree *t, const dsi_plan_buf *b, int s, int e, span *out)
{
    int stack[64], depth = 0, m = 0;
    int lo_of[64], w_of[64];   /* each pending node's first leaf and width */
    stack[depth] = 1, lo_of[depth] = 0, w_of[depth++] = t->leaves;
    while (depth) {
        depth--;
        int v = stack[depth], lo = lo_of[depth], w = w_of[depth];
        if (lo > e || t->max_end[v] < s)
            continue;
        if (w == 1) {
            for (int i = t->head[lo]; i >= 0; i = t->next[i])
                if (b[i].end >= s)
                    out[m++] = (span){b[i].off, b[i].off + b[i].bytes};
            continue;
        }
        stack[depth] = 2 * v + 1, lo_of[depth] = lo + w / 2, w_of[depth++] = w / 2;
        stack[depth] = 2 * v, lo_of[depth] = lo, w_of[depth++] = w / 2;
    }
    return m;
}

static size_t greedy(dsi_plan_buf *b, int nb, int steps)
{
    key *k = malloc(((size_t)nb + 1) * sizeof *k);
    span *sp = malloc(((size_t)nb + 1) * sizeof *sp);
    time_tree t;
    size_t total = tree_init(&t, steps, nb) && k && sp ? 0 : SIZE_MAX;
    for (int i = 0; total != SIZE_MAX && i < nb; i++)
        k[i] = (key){b[i].bytes, b[i].start, i};
    if (total != SIZE_MAX)
        qsort(k, (size_t)nb, sizeof *k, by_key);
    for (int q = 0; total != SIZE_MAX && q < nb; q++) {
        dsi_plan_buf *x = &b[k[q].idx];
        int m = tree_query(&t, b, x->start, x->end, sp);
        qsort(sp, (size_t)m, sizeof *sp, by_off);
        size_t off = 0;
        for (int j = 0; j < m && off + x->bytes > sp[j].off; j++)
            if (sp[j].end > off)
                off = sp[j].end;
        x->off = off;
        if (off + x->bytes > total)
            total = off + x->bytes;
        tree_insert(&t, b, k[q].idx);
    }
    free(k);
    free(sp);
    tree_free(&t);
    return total;
}

/* ---- sweep along time ----
 * For graphs whose buffers overlap in too many pairs for greedy by size (thousands of
 * layers: every value a backward pass reads is alive at the turn from forward to
 * backward). At each time step the buffers that ended free their memory (merged with free
 * neighbours), then the buffers starting there, largest first, take the smallest free
 * block that holds them (the lowest of equal ones), else the top of the block. On chains
 * of layers this plans what greedy by size plans. */
typedef struct {
    span *f;             /* free blocks below the top, by address, never adjacent */
    int n;
    size_t top;
} free_list;

static void release(free_list *fl, size_t off, size_t bytes)
{
    int lo = 0, hi = fl->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (fl->f[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    span s = {off, off + bytes};
    bool left = lo > 0 && fl->f[lo - 1].end == s.off;
    bool right = lo < fl->n && fl->f[lo].off == s.end;
    if (left && right) {
        fl->f[lo - 1].end = fl->f[lo].end;
        memmove(fl->f + lo, fl->f + lo + 1, (size_t)(fl->n - lo - 1) * sizeof *fl->f);
        fl->n--;
    } else if (left) {
        fl->f[lo - 1].end = s.end;
    } else if (right) {
        fl->f[lo].off = s.off;
    } else {
        memmove(fl->f + lo + 1, fl->f + lo, (size_t)(fl->n - lo) * sizeof *fl->f);
        fl->f[lo] = s;
        fl->n++;
    }
    if (fl->n && fl->f[fl->n - 1].end == fl->top) {   /* a free block at the top: lower it */
        fl->top = fl->f[fl->n - 1].off;
        fl->n--;
    }
}

static size_t take(free_list *fl, size_t bytes)
{
    int best = -1;
    for (int i = 0; i < fl->n; i++) {
        size_t size = fl->f[i].end - fl->f[i].off;
        if (size >= bytes && (best < 0 || size < fl->f[best].end - fl->f[best].off))
            best = i;
    }
    if (best < 0) {
        size_t off = fl->top;
        fl->top += bytes;
        return off;
    }
    size_t off = fl->f[best].off;
    fl->f[best].off += bytes;
    if (fl->f[best].off == fl->f[best].end) {
        memmove(fl->f + best, fl->f + best + 1, (size_t)(fl->n - best - 1) * sizeof *fl->f);
        fl->n--;
    }
    return off;
}

static int by_start(const void *pa, const void *pb)
{
    const key *a = pa, *b = pb;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return by_key(pa, pb);
}

static size_t sweep(dsi_plan_buf *b, int nb, int steps)
{
    key *k = malloc(((size_t)nb + 1) * sizeof *k);
    int *ends = malloc(((size_t)nb + 1) * sizeof *ends);     /* buffer ids by end */
    int *first = calloc((size_t)steps + 2, sizeof *first);   /* ends[first[t] ..]: end t */
    free_list fl = {malloc(((size_t)nb + 1) * sizeof *fl.f), 0, 0};
    size_t total = 0;
    if (!k || !ends || !first || !fl.f) {
        total = SIZE_MAX;
        goto done;
    }
    for (int i = 0; i < nb; i++) {
        k[i] = (key){b[i].bytes, b[i].start, i};
        first[b[i].end + 1]++;
    }
    for (int t = 0; t <= steps; t++)
        first[t + 1] += first[t];
    for (int i = 0, *fill = first; i < nb; i++)
        ends[fill[b[i].end]++] = i;          /* first[t] moves to the start of t + 1 */
    for (int t = steps; t > 0; t--)
        first[t] = first[t - 1];
    first[0] = 0;
    qsort(k, (size_t)nb, sizeof *k, by_start);
    for (int t = 0, q = 0; t < steps; t++) {
        for (int j = t ? first[t - 1] : 0; t && j < first[t]; j++)
            release(&fl, b[ends[j]].off, b[ends[j]].bytes);
        for (; q < nb && k[q].start == t; q++) {
            dsi_plan_buf *x = &b[k[q].idx];
            x->off = take(&fl, x->bytes);
            if (fl.top > total)
                total = fl.top;
        }
    }
done:
    free(k);
    free(ends);
    free(first);
    free(fl.f);
    return total;
}

int64_t dsi_plan_pairs(const dsi_plan_buf *b, int nb, int steps)
{
    int64_t *starts = calloc((size_t)steps + 1, sizeof *starts);   /* starts <= t */
    int64_t *ends = calloc((size_t)steps + 1, sizeof *ends);       /* ends <= t */
    int64_t pairs = 0;
    if (!starts || !ends) {
        pairs = -1;
        goto done;
    }
    for (int i = 0; i < nb; i++) {
        starts[b[i].start]++;
        ends[b[i].end]++;
    }
    for (int t = 1; t < steps; t++) {
        starts[t] += starts[t - 1];
        ends[t] += ends[t - 1];
    }
    /* y overlaps x when it starts by x's end and does not end before x's start */
    for (int i = 0; i < nb; i++)
        pairs += starts[b[i].end] - (b[i].start ? ends[b[i].start - 1] : 0) - 1;
    pairs /= 2;
done:
    free(starts);
    free(ends);
    return pairs;
}

size_t dsi_plan_offsets(dsi_plan_buf *b, int nb, int steps)
{
    int64_t pairs = dsi_plan_pairs(b, nb, steps);
    if (pairs < 0)
        return SIZE_MAX;
    return pairs <= DSI_PLAN_GREEDY_PAIRS ? greedy(b, nb, steps) : sweep(b, nb, steps);
}

/* ---- backward clobbers ----
 * A value x that backward reads (ending inside the backward half, before the last step) is
 * overwritten when a buffer starting after x's end shares some of its bytes. Over the
 * block's elementary segments (between consecutive buffer edges), latest[] is the latest
 * start of the buffers covering each: painted latest start first, each segment once
 * (skip[] jumps over painted ones); then a max tree over the segments answers each x. */
static int cmp_size(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    return (a > b) - (a < b);
}

static int seg_of(const size_t *edge, int ne, size_t at)
{
    int lo = 0, hi = ne;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (edge[mid] < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int find_unpainted(int *skip, int i)
{
    int r = i;
    while (skip[r] != r)
        r = skip[r];
    while (skip[i] != r) {   /* path compression */
        int nx = skip[i];
        skip[i] = r;
        i = nx;
    }
    return r;
}

static int by_start_desc(const void *pa, const void *pb)
{
    const key *a = pa, *b = pb;
    return (a->start < b->start) - (a->start > b->start);
}

int dsi_plan_clobbers(const dsi_plan_buf *b, int nb, int n)
{
    size_t *edge = malloc((2 * (size_t)nb + 1) * sizeof *edge);
    key *k = malloc(((size_t)nb + 1) * sizeof *k);
    int *skip = malloc((2 * (size_t)nb + 2) * sizeof *skip), *tree = NULL;
    int ne = 0, clob = 0;
    if (!edge || !k || !skip) {
        clob = -1;
        goto done;
    }
    for (int i = 0; i < nb; i++) {
        edge[ne++] = b[i].off;
        edge[ne++] = b[i].off + b[i].bytes;
        k[i] = (key){0, b[i].start, i};
    }
    qsort(edge, (size_t)ne, sizeof *edge, cmp_size);
    int u = 0;
    for (int i = 0; i < ne; i++)
        if (!u || edge[i] != edge[u - 1])
            edge[u++] = edge[i];
    ne = u;
    int segs = ne > 1 ? ne - 1 : 1, leaves = 1;
    while (leaves < segs)
        leaves *= 2;
    if (!(tree = malloc(2 * (size_t)leaves * sizeof *tree))) {
        clob = -1;
        goto done;
    }
    for (int i = 0; i < 2 * leaves; i++)
        tree[i] = -1;
    for (int i = 0; i <= segs; i++)
        skip[i] = i;
    qsort(k, (size_t)nb, sizeof *k, by_start_desc);
    for (int q = 0; q < nb; q++) {
        const dsi_plan_buf *y = &b[k[q].idx];
        int hi = seg_of(edge, ne, y->off + y->bytes);
        for (int s = find_unpainted(skip, seg_of(edge, ne, y->off)); s < hi;
             s = find_unpainted(skip, s)) {
            tree[leaves + s] = y->start;
            skip[s] = s + 1;
        }
    }
    for (int v = leaves - 1; v >= 1; v--)
        tree[v] = tree[2 * v] > tree[2 * v + 1] ? tree[2 * v] : tree[2 * v + 1];
    for (int i = 0; i < nb && !clob; i++) {
        const dsi_plan_buf *x = &b[i];
        if (!x->value || x->end < n || x->end == 2 * n - 1 || !x->bytes)
            continue;
        int lo = seg_of(edge, ne, x->off) + leaves;
        int hi = seg_of(edge, ne, x->off + x->bytes) + leaves;
        int latest = -1;
        for (; lo < hi; lo /= 2, hi /= 2) {   /* max over leaves [lo, hi) */
            if (lo & 1)
                latest = tree[lo] > latest ? tree[lo] : latest, lo++;
            if (hi & 1)
                hi--, latest = tree[hi] > latest ? tree[hi] : latest;
        }
        clob = latest > x->end;
    }
done:
    free(edge);
    free(k);
    free(skip);
    free(tree);
    return clob;
}
