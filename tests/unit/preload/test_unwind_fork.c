/*
 * test_unwind_fork.c — stack walks and fork (preload/report/report.c, report_unwind_*).
 *
 * libunwind holds mutexes of its own while a thread walks a stack; a fork in the middle left
 * the child's copies locked and its first backtrace hung (tests/integration fork/traced-*,
 * about 1 run in 8 on a busy machine).  fork's prepare handler therefore waits until no walk
 * runs, and walks that would start meanwhile are skipped.  These cases hold that protocol to
 * account deterministically: a walk held open on another thread, a fork waiting for it.
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

static int walk_finished;   /* set by the walker just before report_unwind_end */
static int walk_started;
static int prepare_returned;

static void *hold_a_walk(void *arg)
{
    (void)arg;
    if (!report_unwind_begin())
        return (void *)1;
    __atomic_store_n(&walk_started, 1, __ATOMIC_SEQ_CST);
    usleep(200 * 1000);
    CHECK_MSG(!__atomic_load_n(&prepare_returned, __ATOMIC_SEQ_CST),
              "fork's prepare returned while a walk was running");
    __atomic_store_n(&walk_finished, 1, __ATOMIC_SEQ_CST);
    report_unwind_end();
    return NULL;
}

static void test_prepare_waits_for_a_running_walk(void)
{
    pthread_t walker;
    REQUIRE(pthread_create(&walker, NULL, hold_a_walk, NULL) == 0);
    while (!__atomic_load_n(&walk_started, __ATOMIC_SEQ_CST))
        sched_yield();
    report_unwind_fork_prepare();
    __atomic_store_n(&prepare_returned, 1, __ATOMIC_SEQ_CST);
    CHECK_MSG(__atomic_load_n(&walk_finished, __ATOMIC_SEQ_CST), "prepare returned before the walk ended");
    void *result;
    REQUIRE(pthread_join(walker, &result) == 0);
    CHECK(result == NULL);
    report_unwind_fork_parent();
}

static void test_walks_are_skipped_during_a_fork_and_resume_after(void)
{
    report_unwind_fork_prepare();
    CHECK_MSG(!report_unwind_begin(), "a walk started while a fork was under way");
    report_unwind_fork_parent();
    REQUIRE(report_unwind_begin());
    report_unwind_end();

    /* As fork runs it: prepare, fork, then the child lets its walks in again. */
    report_unwind_fork_prepare();
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        report_unwind_fork_child();
        _exit(report_unwind_begin() ? 0 : 1);
    }
    report_unwind_fork_parent();
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child could not walk: status %#x", status);
}

static void test_a_report_during_a_fork_says_so(void)
{
    struct report report;
    report_init(&report);
    report_unwind_fork_prepare();
    report_backtrace(&report, NULL, 0);
    report_unwind_fork_parent();
    CHECK_STR_CONTAINS(report.text, "no backtrace: the process was forking");
    report_init(&report);
    report_backtrace(&report, NULL, 0);
    CHECK_MSG(strstr(report.text, "#0 0x") != NULL, "no frames after the fork: %s", report.text);
}

static const struct test_case cases[] = {
    TEST_CASE(prepare_waits_for_a_running_walk),
    TEST_CASE(walks_are_skipped_during_a_fork_and_resume_after),
    TEST_CASE(a_report_during_a_fork_says_so),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
