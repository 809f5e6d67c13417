/*
 * check.h — the unit tests' tiny framework: assertions, a case runner, and probes.
 *
 * Each test executable lists its cases; the runner forks one child per case, so every case
 * gets a fresh process (core_init can run only once per process, and a crash in one case
 * does not hide the others).  A case calls test_setup("key=value,...") to initialise the
 * core with its own options.  Run one case with `EXE NAME`, list them with `EXE --list`,
 * and run without forking (for a debugger) with `EXE --no-fork NAME`.
 *
 * Assertions record the failure and go on (so one run shows every broken check); the case
 * fails when any check failed.  REQUIRE stops the case at once (for checks whose failure
 * would make the next statements crash).
 */
#ifndef ARENASHIM_TEST_CHECK_H
#define ARENASHIM_TEST_CHECK_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define TEST_UNUSED __attribute__((unused))

static int check_failures;
static const char *check_case_name = "";

TEST_UNUSED static void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
TEST_UNUSED static void check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list args;
    __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
    fprintf(stderr, "%s:%d: [%s] check failed: ", file, line, check_case_name);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    fflush(stderr);
}

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            check_fail(__FILE__, __LINE__, "%s", #cond);                                       \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        if (!(cond))                                                                           \
            check_fail(__FILE__, __LINE__, __VA_ARGS__);                                       \
    } while (0)

#define CHECK_EQ(a, b)                                                                         \
    do {                                                                                       \
        unsigned long long check_a_ = (unsigned long long)(a);                                \
        unsigned long long check_b_ = (unsigned long long)(b);                                \
        if (check_a_ != check_b_)                                                              \
            check_fail(__FILE__, __LINE__, "%s == %s (%llu != %llu, 0x%llx != 0x%llx)", #a, #b, \
                       check_a_, check_b_, check_a_, check_b_);                                \
    } while (0)

#define CHECK_NE(a, b)                                                                         \
    do {                                                                                       \
        unsigned long long check_a_ = (unsigned long long)(a);                                \
        unsigned long long check_b_ = (unsigned long long)(b);                                \
        if (check_a_ == check_b_)                                                              \
            check_fail(__FILE__, __LINE__, "%s != %s (both %llu, 0x%llx)", #a, #b, check_a_,   \
                       check_a_);                                                              \
    } while (0)

#define CHECK_STR_CONTAINS(haystack, needle)                                                   \
    do {                                                                                       \
        const char *check_h_ = (haystack);                                                     \
        const char *check_n_ = (needle);                                                       \
        if (check_h_ == NULL || strstr(check_h_, check_n_) == NULL)                            \
            check_fail(__FILE__, __LINE__, "'%s' does not contain '%s'",                      \
                       check_h_ ? check_h_ : "(null)", check_n_);                              \
    } while (0)

#define REQUIRE(cond)                                                                          \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            check_fail(__FILE__, __LINE__, "required: %s", #cond);                             \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

/* --- cases and the runner ------------------------------------------------------------------- */

struct test_case {
    const char *name;
    void (*fn)(void);
};

#define TEST_CASE(name) { #name, test_##name }

/* Seconds a case may run before the runner calls it hung. */
#ifndef TEST_CASE_TIMEOUT
#define TEST_CASE_TIMEOUT 30
#endif

static double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_case_here(const struct test_case *c)
{
    check_case_name = c->name;
    check_failures = 0;
    c->fn();
    fflush(stdout);
    fflush(stderr);
}

static int run_case_forked(const struct test_case *c)
{
    fflush(stdout);
    fflush(stderr);
    double start = test_now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(TEST_CASE_TIMEOUT);
        run_case_here(c);
        exit(check_failures ? 1 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    double ms = (test_now() - start) * 1000;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok    %-40s %8.1f ms\n", c->name, ms);
        return 0;
    }
    if (WIFSIGNALED(status))
        printf("FAIL  %-40s killed by signal %d (%s)%s\n", c->name, WTERMSIG(status),
               strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? " - timed out" : "");
    else
        printf("FAIL  %-40s exit status %d\n", c->name, WEXITSTATUS(status));
    fflush(stdout);
    return 1;
}

TEST_UNUSED static int check_main(int argc, char **argv, const struct test_case *cases, size_t count)
{
    bool fork_cases = true;
    int arg = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (arg < argc && strcmp(argv[arg], "--list") == 0) {
        for (size_t i = 0; i < count; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (arg < argc && strcmp(argv[arg], "--no-fork") == 0) {
        fork_cases = false;
        arg++;
    }
    int failed = 0, run = 0;
    for (size_t i = 0; i < count; i++) {
        if (arg < argc) {
            bool wanted = false;
            for (int a = arg; a < argc; a++)
                wanted |= strcmp(argv[a], cases[i].name) == 0;
            if (!wanted)
                continue;
        }
        run++;
        if (fork_cases) {
            failed += run_case_forked(&cases[i]);
        } else {
            run_case_here(&cases[i]);
            printf("%s %s\n", check_failures ? "FAIL" : "ok  ", cases[i].name);
            failed += check_failures != 0;
        }
    }
    if (run == 0) {
        fprintf(stderr, "no such case\n");
        return 2;
    }
    printf("%d passed, %d failed\n", run - failed, failed);
    return failed ? 1 : 0;
}

/* --- core set-up ------------------------------------------------------------------------------ */

/* Options from ARENASHIM_TEST_OPTIONS (the sanitizer builds lower the reservation) come
 * first, the case's own after them, so a case's explicit choice wins. */
TEST_UNUSED static void test_setup(const char *text)
{
    struct options options;
    char error[512];
    options_set_defaults(&options);
    const char *extra = getenv("ARENASHIM_TEST_OPTIONS");
    if (extra && *extra && !options_parse(&options, extra, error, sizeof error)) {
        fprintf(stderr, "ARENASHIM_TEST_OPTIONS: %s\n", error);
        exit(2);
    }
    if (text && *text && !options_parse(&options, text, error, sizeof error)) {
        fprintf(stderr, "case options '%s': %s\n", text, error);
        exit(2);
    }
    if (!core_init(&options, error, sizeof error)) {
        fprintf(stderr, "core_init: %s\n", error);
        exit(2);
    }
}

TEST_UNUSED static struct thread_state *test_thread(void)
{
    struct thread_state *thread = thread_state_create(gettid());
    REQUIRE(thread != NULL);
    return thread;
}

/* The thread's counters as a snapshot would show them: its own, plus what its open regions
 * counted so far (they fold into the thread's when they end). */
TEST_UNUSED static struct thread_counters thread_counts(const struct thread_state *t)
{
    struct thread_counters c = t->counters;
    for (const struct region *r = t->innermost; r; r = r->outer) {
        c.frees_undone += r->frees_undone;
        c.frees_ignored += r->frees_ignored;
    }
    return c;
}

TEST_UNUSED static struct core_counters test_stats(void)
{
    struct core_counters c;
    stats_sum(&c, NULL);
    return c;
}

/* --- memory helpers ------------------------------------------------------------------------- */

TEST_UNUSED static void fill_pattern(void *p, size_t size, uint32_t seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < size; i++)
        b[i] = (unsigned char)((seed * 131u + i * 7u + (i >> 8)) ^ (seed >> 8));
}

/* Index of the first byte that differs from the pattern, or SIZE_MAX. */
TEST_UNUSED static size_t pattern_mismatch(const void *p, size_t size, uint32_t seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < size; i++)
        if (b[i] != (unsigned char)((seed * 131u + i * 7u + (i >> 8)) ^ (seed >> 8)))
            return i;
    return SIZE_MAX;
}

TEST_UNUSED static bool all_bytes_are(const void *p, size_t size, unsigned char value)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < size; i++)
        if (b[i] != value)
            return false;
    return true;
}

TEST_UNUSED static uintptr_t page_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(PAGE_SIZE_BYTES - 1);
}

TEST_UNUSED static uintptr_t chunk_offset(const void *p)
{
    return ((uintptr_t)p - core_config.base) & (core_config.chunk_size - 1);
}

/* --- probes: is an address accessible? --------------------------------------------------------- */

/* With a SIGSEGV handler and sigsetjmp: really touches the address. */
static __thread sigjmp_buf probe_env;
static __thread volatile sig_atomic_t probe_active;
static volatile sig_atomic_t probe_installed;

static void probe_handler(int sig, siginfo_t *info, void *context)
{
    (void)info;
    (void)context;
    if (probe_active) {
        probe_active = 0;
        siglongjmp(probe_env, 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void probe_install(void)
{
    if (probe_installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = probe_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    probe_installed = 1;
}

TEST_UNUSED __attribute__((noinline)) static bool probe_read(const void *p)
{
    probe_install();
    if (sigsetjmp(probe_env, 1) == 0) {
        probe_active = 1;
        volatile unsigned char c = *(const volatile unsigned char *)p;
        (void)c;
        probe_active = 0;
        return true;
    }
    return false;
}

/* Rewrites the byte with its own value: accessible for writing without changing anything. */
TEST_UNUSED __attribute__((noinline)) static bool probe_write(void *p)
{
    probe_install();
    if (sigsetjmp(probe_env, 1) == 0) {
        probe_active = 1;
        volatile unsigned char *b = p;
        *b = *b;
        probe_active = 0;
        return true;
    }
    return false;
}

/* Without signals (for threaded tests): the kernel reads the byte, or fails with EFAULT. */
static __thread int probe_pipe[2] = { -1, -1 };

TEST_UNUSED static bool probe_read_syscall(const void *p)
{
    if (probe_pipe[0] < 0 && pipe(probe_pipe) != 0) {
        perror("pipe");
        exit(2);
    }
    ssize_t n = write(probe_pipe[1], p, 1);
    if (n == 1) {
        char c;
        if (read(probe_pipe[0], &c, 1) != 1)
            exit(2);
        return true;
    }
    if (errno != EFAULT) {
        perror("probe write");
        exit(2);
    }
    return false;
}

/* The protection of the mapping holding p, as /proc/self/maps shows it ("rw-p", "---p"),
 * or "" when p is unmapped. */
TEST_UNUSED static const char *maps_perms(const void *p, char out[8])
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    out[0] = '\0';
    if (f == NULL)
        return out;
    while (fgets(line, sizeof line, f)) {
        unsigned long long start, end;
        char perms[8];
        if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) != 3)
            continue;
        if ((uintptr_t)p >= start && (uintptr_t)p < end) {
            memcpy(out, perms, 5);
            out[4] = '\0';
            break;
        }
    }
    fclose(f);
    return out;
}

TEST_UNUSED static unsigned maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned lines = 0;
    int c;
    if (f == NULL)
        return 0;
    while ((c = fgetc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

/* A faulted address: no access, PROT_NONE in the maps, dead for the core. */
#define CHECK_FAULTED(p)                                                                      \
    do {                                                                                      \
        char check_perms_[8];                                                                 \
        CHECK_MSG(!probe_read(p), "%s (%p) is still readable", #p, (void *)(p));              \
        CHECK_MSG(!probe_read_syscall(p), "%s (%p) is still readable by the kernel", #p,      \
                  (void *)(p));                                                               \
        CHECK_MSG(strcmp(maps_perms(p, check_perms_), "---p") == 0,                          \
                  "%s (%p) is mapped '%s', expected '---p'", #p, (void *)(p), check_perms_); \
        CHECK_MSG(chunk_address_is_dead(p), "chunk_address_is_dead(%s) is false", #p);      \
    } while (0)

#define CHECK_ACCESSIBLE(p)                                                                   \
    do {                                                                                      \
        CHECK_MSG(probe_read(p), "%s (%p) is not readable", #p, (void *)(p));                 \
        CHECK_MSG(probe_write((void *)(p)), "%s (%p) is not writable", #p, (void *)(p));      \
    } while (0)

#endif
