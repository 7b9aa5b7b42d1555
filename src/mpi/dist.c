/* dist.c - the command line's MPI group (make MPI=1): collectives that give up after a
 * timeout instead of hanging on a dead rank, data-parallel training's ds_dist, and rank 0's
 * work queue for sharded inference (a server thread answering the other ranks). */
#ifdef DS_MPI
#include "dist.h"

#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_ASK = 21, TAG_ITEM = 22 };

static struct {
    bool on;                 /* MPI initialized by us */
    int rank, size, thread_level;
    double timeout;
    char msg[512];           /* why the last collective failed */
    ds_dist dist;
    /* the queue: rank 0's counter, its server thread */
    pthread_mutex_t lock;
    long next, n;
    pthread_t server;
    bool serving, started;
} G = {.size = 1, .lock = PTHREAD_MUTEX_INITIALIZER};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pause_us(long us)
{
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

/* "what: MPI's text" into G.msg; DS_ERR_IO. */
static ds_status mpi_error(const char *what, int code)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, text, &len);
    snprintf(G.msg, sizeof G.msg, "%s failed: %s (a rank died or the network failed)", what,
             text);
    return DS_ERR_IO;
}

/* Completes req, polling: spins a little, then sleeps in growing steps (the ranks share
 * cores with OpenMP threads), and gives up after the timeout with a message. */
static ds_status wait_req(MPI_Request *req, const char *what)
{
    double t0 = now_s();
    long sleep_us = 0;
    for (long spins = 0;; spins++) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_error(what, rc);
        if (done)
            return DS_OK;
        if (now_s() - t0 > G.timeout) {
            snprintf(G.msg, sizeof G.msg, "%s: no answer from the other ranks in %g s: a "
                     "rank died or is stuck; the job stops (--mpi-timeout sets the wait)", what,
                     G.timeout);
            return DS_ERR_IO;   /* the request stays pending: the caller aborts the job */
        }
        if (spins < 200) {
            sched_yield();
        } else {
            sleep_us = sleep_us < 1000 ? sleep_us + 20 : 1000;
            pause_us(sleep_us);
        }
    }
}

/* In-place sums in pieces of at most 2^30 elements (MPI counts are ints). */
static ds_status sum_any(void *x, int64_t n, MPI_Datatype type, size_t size)
{
    for (int64_t at = 0; at < n;) {
        int cnt = n - at > (1 << 30) ? 1 << 30 : (int)(n - at);
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)x + (size_t)at * size, cnt, type, MPI_SUM,
                                MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS)
            return mpi_error("MPI_Iallreduce", rc);
        ds_status st = wait_req(&req, "MPI_Allreduce");
        if (st)
            return st;
        at += cnt;
    }
    return DS_OK;
}

static ds_status sum_float(void *ctx, float *x, int64_t n)
{
    (void)ctx;
    return sum_any(x, n, MPI_FLOAT, sizeof *x);
}

static ds_status sum_double(void *ctx, double *x, int64_t n)
{
    (void)ctx;
    return sum_any(x, n, MPI_DOUBLE, sizeof *x);
}

static ds_status bcast(void *ctx, void *buf, size_t bytes)
{
    (void)ctx;
    for (size_t at = 0; at < bytes;) {
        int cnt = bytes - at > (1u << 30) ? 1 << 30 : (int)(bytes - at);
        MPI_Request req;
        int rc = MPI_Ibcast((char *)buf + at, cnt, MPI_BYTE, 0, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS)
            return mpi_error("MPI_Ibcast", rc);
        ds_status st = wait_req(&req, "MPI_Bcast");
        if (st)
            return st;
        at += (size_t)cnt;
    }
    return DS_OK;
}

static const char *message(void *ctx)
{
    (void)ctx;
    return G.msg;
}

/* The launcher's size of the job, or 0 outside one. */
static int launcher_size(void)
{
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v)
        v = getenv("PMI_SIZE");
    if (!v && getenv("PMIX_RANK"))
        v = "2";   /* PMIx does not export the size: ask MPI */
    return v ? atoi(v) : 0;
}

int cli_mpi_start(double timeout_s)
{
    G.timeout = timeout_s > 0 ? timeout_s : CLI_MPI_TIMEOUT;
    if (G.on || launcher_size() < 1)
        return 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &G.thread_level);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "deepsky: error: MPI_Init_thread failed (code %d)\n", rc);
        return 1;
    }
    G.on = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &G.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &G.size);
    G.dist = (ds_dist){.rank = G.rank, .size = G.size, .sum_float = sum_float,
                       .sum_double = sum_double, .bcast = bcast, .message = message};
    return 0;
}

int cli_mpi_rank(void) { return G.rank; }
int cli_mpi_size(void) { return G.size; }
const ds_dist *cli_mpi_dist(void) { return G.size > 1 ? &G.dist : NULL; }

int cli_mpi_fail(int rc)
{
    if (G.on && G.size > 1) {
        fflush(stdout);
        fprintf(stderr, "deepsky: rank %d of %d failed: stopping the job\n", G.rank, G.size);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
    }
    return cli_mpi_end(rc);
}

int cli_mpi_end(int rc)
{
    if (G.serving) {
        pthread_join(G.server, NULL);
        G.serving = false;
    }
    /* MPI_Finalize waits for every rank without a timeout: a rank stopped at the end of
     * the job would hang it, so the ranks meet first in a barrier that has one. */
    if (G.on && G.size > 1 && cli_mpi_barrier() != 0) {
        fprintf(stderr, "deepsky: rank %d of %d: stopping the job\n", G.rank, G.size);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
    }
    if (G.on) {
        G.on = false;
        MPI_Finalize();
    }
    return rc;
}

/* ---- rank 0's queue ---- */
static long take(void)
{
    pthread_mutex_lock(&G.lock);
    long i = G.next < G.n ? G.next++ : -1;
    pthread_mutex_unlock(&G.lock);
    return i;
}

/* Answers each rank's requests until every other rank has been told the queue is empty.
 * Without MPI_THREAD_MULTIPLE it runs on rank 0's own thread, which then serves only. */
static void *serve(void *arg)
{
    (void)arg;
    int left = G.size - 1;
    long sleep_us = 0;
    while (left > 0) {
        int flag = 0;
        MPI_Status s;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ASK, MPI_COMM_WORLD, &flag, &s) != MPI_SUCCESS)
            break;
        if (!flag) {   /* idle: sleep, in growing steps, up to a millisecond */
            sleep_us = sleep_us < 1000 ? sleep_us + 50 : 1000;
            pause_us(sleep_us);
            continue;
        }
        sleep_us = 0;
        long dummy, item = take();
        MPI_Recv(&dummy, 1, MPI_LONG, s.MPI_SOURCE, TAG_ASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(&item, 1, MPI_LONG, s.MPI_SOURCE, TAG_ITEM, MPI_COMM_WORLD);
        if (item < 0)
            left--;
    }
    return NULL;
}

long cli_mpi_next(long n)
{
    if (G.size == 1 || !G.on) {   /* alone: the counter */
        G.n = n;
        return G.next < n ? G.next++ : -1;
    }
    if (G.rank == 0) {
        if (!G.started) {
            G.started = true;
            G.n = n;
            if (G.thread_level < MPI_THREAD_MULTIPLE) {
                serve(NULL);   /* no thread may call MPI beside this one: rank 0 serves only */
                return -1;
            }
            if (pthread_create(&G.server, NULL, serve, NULL)) {
                fprintf(stderr, "deepsky: error: cannot start rank 0's queue thread\n");
                return -2;
            }
            G.serving = true;
        }
        long i = take();
        if (i < 0 && G.serving) {   /* wait for the others to be told */
            pthread_join(G.server, NULL);
            G.serving = false;
        }
        return i;
    }
    long ask = n, item = -1;
    MPI_Request req[2];
    int rc = MPI_Irecv(&item, 1, MPI_LONG, 0, TAG_ITEM, MPI_COMM_WORLD, &req[1]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Isend(&ask, 1, MPI_LONG, 0, TAG_ASK, MPI_COMM_WORLD, &req[0]);
    ds_status st = rc == MPI_SUCCESS ? wait_req(&req[0], "asking rank 0 for work")
                                     : mpi_error("asking rank 0 for work", rc);
    if (!st)
        st = wait_req(&req[1], "waiting for rank 0's answer");
    if (st) {
        fprintf(stderr, "deepsky: error: rank %d of %d: %s\n", G.rank, G.size, G.msg);
        return -2;
    }
    return item;
}

int cli_mpi_sum_long(long *v, int n)
{
    if (G.size == 1 || !G.on)
        return 0;
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_LONG, MPI_SUM, MPI_COMM_WORLD, &req);
    ds_status st = rc == MPI_SUCCESS ? wait_req(&req, "MPI_Allreduce")
                                     : mpi_error("MPI_Iallreduce", rc);
    if (st)
        fprintf(stderr, "deepsky: error: rank %d of %d: %s\n", G.rank, G.size, G.msg);
    return st ? 1 : 0;
}

int cli_mpi_bcast_text(char *buf, int cap)
{
    if (G.size == 1 || !G.on)
        return 0;
    ds_status st = bcast(NULL, buf, (size_t)cap);
    buf[cap - 1] = 0;
    if (st)
        fprintf(stderr, "deepsky: error: rank %d of %d: %s\n", G.rank, G.size, G.msg);
    return st ? 1 : 0;
}

int cli_mpi_barrier(void)
{
    if (G.size == 1 || !G.on)
        return 0;
    MPI_Request req;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
    ds_status st = rc == MPI_SUCCESS ? wait_req(&req, "MPI_Barrier")
                                     : mpi_error("MPI_Ibarrier", rc);
    if (st)
        fprintf(stderr, "deepsky: error: rank %d of %d: %s\n", G.rank, G.size, G.msg);
    return st ? 1 : 0;
}
#endif /* DS_MPI */
