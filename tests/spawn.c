/* spawn.c - starting the command line tool from tests: the sanitizer settings it runs with,
 * its captured output, and a sanitizer report turned into a status no clean exit has. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STR_(x) #x
#define STR(x) STR_(x)

/* Set here, not by the Makefile, so that they hold however the runner was started. The
 * exit code is the same for the three: each sanitizer may read the others' options. */
static const char *const san_env[] = {
    "ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:exitcode=" STR(CLI_SANITIZER_EXIT),
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=" STR(CLI_SANITIZER_EXIT),
    "LSAN_OPTIONS=suppressions=tests/lsan.supp:exitcode=" STR(CLI_SANITIZER_EXIT),
};
static const char *const dropped[] = {"ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=",
                                      "DEEPSKY_TEST_ATOMIC="};

const char *cli_bin(void)
{
    const char *b = getenv("DEEPSKY");
    return b ? b : "build/deepsky-test";
}

/* Whether the variable "NAME=value" v is one we replace or one that env sets. */
static int replaced(const char *v, const char *const *env)
{
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        if (!strncmp(v, dropped[i], strlen(dropped[i])))
            return 1;
    for (; env && *env; env++) {
        const char *eq = strchr(*env, '=');
        size_t n = eq ? (size_t)(eq - *env) + 1 : strlen(*env);
        if (!strncmp(v, *env, n))
            return 1;
    }
    return 0;
}

/* The child's environment, built in the parent (a forked child may only exec). */
static char **child_env(const char *const *env)
{
    size_t n = 0, k = 0, extra = 0;
    while (environ[n])
        n++;
    while (env && env[extra])
        extra++;
    char **e = malloc((n + extra + 4) * sizeof *e);
    if (!e)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!replaced(environ[i], env))
            e[k++] = environ[i];
    for (size_t i = 0; i < 3; i++)
        e[k++] = (char *)san_env[i];
    for (size_t i = 0; i < extra; i++)
        e[k++] = (char *)env[i];
    e[k] = NULL;
    return e;
}

int cli_start(cli_proc *p, const char *cmd, const char *const *env)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    int fd[2];
    char **e = child_env(env);
    if (!e || pipe2(fd, O_CLOEXEC) != 0) {
        free(e);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 2);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    fflush(stdout);
    fflush(stderr);
    int rc = posix_spawn(&p->pid, "/bin/sh", &fa, NULL, argv, e);
    posix_spawn_file_actions_destroy(&fa);
    free(e);
    close(fd[1]);
    if (rc != 0) {
        close(fd[0]);
        return -1;
    }
    p->fd = fd[0];
    fcntl(p->fd, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Reads what the pipe holds now; closes it at end of file. */
static void drain(cli_proc *p)
{
    while (p->fd >= 0) {
        if (p->cap - p->len < 4097) {
            size_t cap = p->cap ? 2 * p->cap : 16384;
            char *o = realloc(p->out, cap);
            if (!o)
                return;
            p->out = o;
            p->cap = cap;
            p->out[p->len] = 0;
        }
        ssize_t n = read(p->fd, p->out + p->len, p->cap - p->len - 1);
        if (n > 0) {
            p->len += (size_t)n;
            p->out[p->len] = 0;
        } else if (n == 0 || errno != EINTR) {
            if (n == 0 || errno != EAGAIN) {
                close(p->fd);
                p->fd = -1;
            }
            return;
        }
    }
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

int cli_poll(cli_proc *p, int ms)
{
    double end = now_ms() + ms;
    for (;;) {
        drain(p);
        if (!p->reaped) {
            pid_t r = waitpid(p->pid, &p->status, WNOHANG | WUNTRACED);
            if (r == p->pid && WIFSTOPPED(p->status))
                return CLI_STOPPED;
            if (r == p->pid)
                p->reaped = 1;
        }
        if (p->reaped)
            return CLI_ENDED;
        double left = end - now_ms();
        if (left <= 0)
            return CLI_RUNNING;
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        poll(&pf, p->fd >= 0, left < 5 ? (int)left + 1 : 5);
    }
}

int cli_kill(cli_proc *p, char *out, size_t cap)
{
    if (!p->reaped)
        kill(p->pid, SIGKILL);
    return cli_finish(p, out, cap);
}

int cli_finish(cli_proc *p, char *out, size_t cap)
{
    while (p->fd >= 0) {
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        poll(&pf, 1, 100);
        drain(p);
    }
    while (!p->reaped) {
        pid_t r = waitpid(p->pid, &p->status, 0);
        if (r == p->pid || (r < 0 && errno != EINTR))
            p->reaped = 1;
    }
    int rc = WIFSIGNALED(p->status) ? 128 + WTERMSIG(p->status) : WEXITSTATUS(p->status);
    const char *o = p->out ? p->out : "";
    if (memmem(o, p->len, "Sanitizer", 9) || memmem(o, p->len, "runtime error:", 14))
        rc = CLI_SANITIZER_EXIT;
    if (cap)
        snprintf(out, cap, "%.*s", (int)p->len, o);
    free(p->out);
    p->out = NULL;
    p->len = p->cap = 0;
    return rc;
}

int cli_run_sh(const char *cmd, const char *const *env, char *out, size_t cap)
{
    cli_proc p;
    if (cli_start(&p, cmd, env) != 0) {
        if (cap)
            snprintf(out, cap, "cannot start: %s", cmd);
        return -1;
    }
    return cli_finish(&p, out, cap);
}

char cli_out[1 << 16];

/* "exec <tool> <args>", optionally after "cd '<dir>' && ". */
static int run_args(const char *dir, const char *fmt, va_list ap)
{
    char args[4096], cmd[8192], cwd[512] = "", bin[1024], lsan[700];
    vsnprintf(args, sizeof args, fmt, ap);
    const char *b = cli_bin();
    if (!dir) {
        snprintf(cmd, sizeof cmd, "exec %s %s", b, args);
        return cli_run_sh(cmd, NULL, cli_out, sizeof cli_out);
    }
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = 0;
    snprintf(bin, sizeof bin, "%s%s%s", b[0] == '/' ? "" : cwd, b[0] == '/' ? "" : "/", b);
    snprintf(lsan, sizeof lsan, "LSAN_OPTIONS=suppressions=%s/tests/lsan.supp:exitcode=%d", cwd,
             CLI_SANITIZER_EXIT);
    const char *env[] = {lsan, NULL};
    snprintf(cmd, sizeof cmd, "cd '%s' && exec %s %s", dir, bin, args);
    return cli_run_sh(cmd, env, cli_out, sizeof cli_out);
}

int cli_run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_args(NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_expect(int rc, int want, const char *text, char *msg, size_t cap)
{
    if (rc == want && strstr(cli_out, text))
        return 0;
    snprintf(msg, cap, "exit status %d%s (expected %d), output lacks \"%s\":\n%s", rc,
             rc == CLI_SANITIZER_EXIT ? ", a sanitizer report" : "", want, text, cli_out);
    return 1;
}

int cli_run_in(const char *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_args(dir, fmt, ap);
    va_end(ap);
    return rc;
}
