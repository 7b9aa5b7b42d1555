/* spawn.h - starting the command line tool from tests: the sanitizer settings it runs with,
 * its captured output, and a sanitizer report turned into a status no clean exit has. */
#ifndef DS_TEST_SPAWN_H
#define DS_TEST_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* The status of a spawned tool that made a sanitizer report (ASan, LSan or UBSan exit with
 * it), or whose output holds one: the tool's own statuses are 0, 1 and 2. */
#define CLI_SANITIZER_EXIT 86

/* The tool under test: $DEEPSKY, or build/deepsky-test (the sanitizer build). */
const char *cli_bin(void);

/* A running shell command line. Its stdout and stderr go, together, to out. */
typedef struct {
    pid_t pid;
    int fd;              /* the read end of the output pipe, -1 once closed */
    char *out;           /* all the output so far, NUL-terminated (malloc'd) */
    size_t len, cap;
    int status;          /* waitpid status once reaped */
    int reaped;
} cli_proc;

/* Starts /bin/sh -c cmd, which should exec the tool so that p->pid is the tool's. Its
 * environment is the runner's with ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS replaced by
 * the test settings (leaks reported, malloc may return NULL, any report exits with
 * CLI_SANITIZER_EXIT), DEEPSKY_TEST_ATOMIC removed, then the "NAME=value" strings of env
 * (NULL-terminated, or NULL) added. Returns 0, or -1 with nothing started. */
int cli_start(cli_proc *p, const char *cmd, const char *const *env);

enum { CLI_RUNNING, CLI_STOPPED, CLI_ENDED };
/* Collects output for up to ms milliseconds, or until the process stops (SIGSTOP) or ends;
 * returns which. */
int cli_poll(cli_proc *p, int ms);

/* SIGKILLs the process (stopped or not) and finishes it with cli_finish. */
int cli_kill(cli_proc *p, char *out, size_t cap);

/* Waits for the end, copies the output to out (truncated to cap, NUL-terminated) and frees
 * it. Returns the exit status, 128 + the signal if one ended it, or CLI_SANITIZER_EXIT if
 * the output holds a sanitizer report ("Sanitizer" or "runtime error:") whatever the
 * status, so that no comparison with a clean status can pass. */
int cli_finish(cli_proc *p, char *out, size_t cap);

/* cli_start then cli_finish: runs a shell command line to its end. -1 if it cannot start. */
int cli_run_sh(const char *cmd, const char *const *env, char *out, size_t cap);

/* ---- the tool run as "deepsky <args>", for the CLI tests ---- */
/* The output of the last cli_run or cli_run_in: stdout and stderr together, NUL-terminated
 * (truncated to its size). */
extern char cli_out[1 << 16];

/* Runs "deepsky <args>" (args formatted as printf does; a shell command line, so words are
 * quoted as a shell wants) to its end, with the settings of cli_start, its output in
 * cli_out. Returns cli_finish's status, or -1 if it cannot start. */
int cli_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, run in folder dir: the tool's path and the leak suppressions made absolute. */
int cli_run_in(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 0 if the last run's exit status is want and its output holds text; else 1 with msg saying
 * what it got. */
int cli_expect(int rc, int want, const char *text, char *msg, size_t cap);

/* In a TEST (test.h): fails unless the exit status of cli_run(...) is want, showing the
 * output. */
#define CHECK_RUN(want, ...)                                                                 \
    do {                                                                                     \
        int rc_ = cli_run(__VA_ARGS__);                                                      \
        if (rc_ != (want))                                                                   \
            FAIL("%s:%d: exit status %d%s, expected %d; output:\n%s", __FILE__, __LINE__,     \
                 rc_, rc_ == CLI_SANITIZER_EXIT ? " (a sanitizer report)" : "", (want),       \
                 cli_out);                                                                   \
    } while (0)
/* Fails unless the last run's output holds text (CHECK_NOT_OUT: does not hold it). */
#define CHECK_OUT(text)                                                                      \
    do {                                                                                     \
        if (!strstr(cli_out, (text)))                                                        \
            FAIL("%s:%d: output lacks \"%s\":\n%s", __FILE__, __LINE__, (text), cli_out);    \
    } while (0)
#define CHECK_NOT_OUT(text)                                                                  \
    do {                                                                                     \
        if (strstr(cli_out, (text)))                                                         \
            FAIL("%s:%d: output has \"%s\":\n%s", __FILE__, __LINE__, (text), cli_out);      \
    } while (0)

#endif
