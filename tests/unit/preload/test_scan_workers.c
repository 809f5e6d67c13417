/*
 * test_scan_workers.c — the marking threads' pool (preload/collect/scan_workers.c), without
 * the preload: every job runs once, on several threads; a job that faults under a recoverable
 * pass is abandoned and reported; helpers are listed for stop_world and survive nothing of a
 * fork.  Built with TSan too (the fault case is left to the plain and ASan builds: TSan does
 * not follow a siglongjmp out of a signal handler).
 */
#include "check.h"

#include <pthread.h>
#include <sys/syscall.h>

#include "scan_workers.h"

#define JOBS 4000

static unsigned runs[JOBS];
static pid_t runner[JOBS];

static void count_job(size_t index, void *data)
{
    (void)data;
    __atomic_add_fetch(&runs[index], 1, __ATOMIC_RELAXED);
    __atomic_store_n(&runner[index], (pid_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
    /* A little work, so that helpers get jobs before the caller has taken them all. */
    volatile unsigned spin = 0;
    for (unsigned i = 0; i < 2000; i++)
        spin += i;
}

static void test_every_job_once(void)
{
    test_setup("");
    unsigned threads = scan_workers_start(3);
    CHECK_EQ(threads, 3);
    /* Every pass runs every job once; over the passes, helpers take some (on a loaded machine
     * the caller may finish a pass alone before a helper is scheduled). */
    pid_t self = (pid_t)syscall(SYS_gettid);
    unsigned by_helpers = 0;
    for (int pass = 0; pass < 200 && (pass < 5 || by_helpers == 0); pass++) {
        memset(runs, 0, sizeof runs);
        scan_workers_run(JOBS, count_job, NULL, NULL);
        unsigned wrong = 0;
        for (size_t i = 0; i < JOBS; i++) {
            wrong += runs[i] != 1;
            by_helpers += runner[i] != self;
        }
        CHECK_MSG(wrong == 0, "pass %d: %u jobs did not run exactly once", pass, wrong);
    }
    CHECK_MSG(by_helpers > 0, "the helpers ran none of the jobs in 200 passes");
    pid_t tids[8];
    uintptr_t stacks[8][2];
    CHECK_EQ(scan_workers_helpers(tids, stacks, 8), 2);
    for (unsigned i = 0; i < 2; i++) {
        CHECK(tids[i] > 0 && tids[i] != self);
        CHECK(stacks[i][1] > stacks[i][0]);
        /* A helper's stack holds its own frames: one of its jobs' records names it. */
    }
    /* Asking for fewer threads keeps those made; a second start makes none. */
    CHECK_EQ(scan_workers_start(2), 3);
}

#if !defined(__SANITIZE_THREAD__)
#define PAGES 64
static char *area;
static unsigned completed[PAGES], failed[PAGES];

static void read_page(size_t index, void *data)
{
    (void)data;
    volatile char *p = area + index * PAGE_SIZE_BYTES;
    (void)*p;
    __atomic_add_fetch(&completed[index], 1, __ATOMIC_RELAXED);
}

static void page_failed(size_t index, void *data)
{
    (void)data;
    __atomic_add_fetch(&failed[index], 1, __ATOMIC_RELAXED);
}

static void segv(int signal, siginfo_t *info, void *context)
{
    (void)signal;
    (void)context;
    scan_workers_recover_fault(info); /* jumps back; returns only for a fault that is not one */
    _exit(70);
}

static void test_fault_abandons_job(void)
{
    test_setup("");
    scan_workers_start(3);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, NULL);
    area = mmap(NULL, PAGES * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(area != MAP_FAILED);
    for (size_t i = 0; i < PAGES; i += 5)
        REQUIRE(mprotect(area + i * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES, PROT_NONE) == 0);
    for (int pass = 0; pass < 3; pass++) {
        memset(completed, 0, sizeof completed);
        memset(failed, 0, sizeof failed);
        scan_workers_run(PAGES, read_page, page_failed, NULL);
        for (size_t i = 0; i < PAGES; i++) {
            bool protected_page = i % 5 == 0;
            CHECK_MSG(completed[i] == !protected_page && failed[i] == protected_page,
                      "pass %d page %zu: completed %u failed %u", pass, i, completed[i], failed[i]);
        }
    }
    /* A fault outside any recoverable job is not one. */
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_code = SEGV_MAPERR;
    CHECK(!scan_workers_recover_fault(&info));
}
#endif

static void test_fork_child_makes_its_own(void)
{
    test_setup("");
    CHECK_EQ(scan_workers_start(2), 2);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        scan_workers_fork_child();
        if (scan_workers_helpers(NULL, NULL, 8) != 0)
            _exit(1);
        if (scan_workers_start(2) != 2)
            _exit(2);
        memset(runs, 0, sizeof runs);
        scan_workers_run(JOBS, count_job, NULL, NULL);
        for (size_t i = 0; i < JOBS; i++)
            if (runs[i] != 1)
                _exit(3);
        _exit(0);
    }
    int status;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

static const struct test_case cases[] = {
    TEST_CASE(every_job_once),
#if !defined(__SANITIZE_THREAD__)
    TEST_CASE(fault_abandons_job),
#endif
    TEST_CASE(fork_child_makes_its_own),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
