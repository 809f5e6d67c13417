/*
 * giveup.c — a thread that blocks the scan's stop signal (SIGRTMAX-2) makes the scan give up.
 *
 * A helper thread blocks SIGRTMAX-2 (argv[1] "all": every signal) with the rt_sigprocmask
 * system call itself, as a runtime with its own threads does (Go's), and sleeps: arenashim
 * keeps the stop signal out of what pthread_sigmask and sigprocmask block, not out of the
 * kernel's mask.  With two unreferenced chunks in quarantine, arenashim_collect() is called several
 * times: each call must give up once and return (scan_giveups grows by exactly the number of
 * calls, scans not at all: no call retried or scanned without that thread), and nothing may be
 * released (the scan could not see that thread's stack and registers).  A call that never
 * returned is the runner's timeout.  The runner checks that stderr carries the "given up"
 * warning exactly once, naming the helper (TID line).  Once the helper has exited, a scan
 * works again and releases the chunks.
 */
#include "scanutil.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>

static volatile int helper_ready, helper_stop;
static volatile pid_t helper_tid;

static void *blocker(void *arg)
{
    sigset_t set;
    if (arg)
        sigfillset(&set);
    else {
        sigemptyset(&set);
        sigaddset(&set, SIGRTMAX - 2);
    }
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, _NSIG / 8);
    helper_tid = gettid();
    helper_ready = 1;
    while (!helper_stop) {
        struct timespec pause = { 0, 5 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    su_require_shim();
    int all = argc >= 2 && strcmp(argv[1], "all") == 0;
    pthread_t thread;
    if (pthread_create(&thread, NULL, blocker, all ? (void *)1 : NULL) != 0) {
        printf("FAILED: pthread_create\n");
        return 3;
    }
    while (!helper_ready)
        sched_yield();
    printf("TID %d\n", (int)helper_tid);

    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_stats_refresh();
    unsigned long long released = su_json_number("chunks_released");
    unsigned long long quarantine = su_json_number("quarantine_bytes");
    unsigned long long giveups = su_json_number("scan_giveups");
    unsigned long long scans = su_json_number("scans");
    CHECK(quarantine >= 2 * CHUNK_BYTES, "quarantine_bytes %llu before the scans", quarantine);

    const int calls = 4;
    for (int i = 0; i < calls; i++)
        su_collect_clean();
    su_stats_refresh();
    unsigned long long giveups_after = su_json_number("scan_giveups");
    CHECK(giveups_after >= giveups + 1, "scan_giveups %llu -> %llu", giveups, giveups_after);
    CHECK(giveups_after - giveups == (unsigned long long)calls,
          "scan_giveups grew by %llu over %d collects", giveups_after - giveups, calls);
    CHECK(su_json_number("scans") == scans, "scans %llu -> %llu while a thread blocked the stop "
          "signal: a scan ran without it", scans, su_json_number("scans"));
    CHECK(su_json_number("chunks_released") == released, "chunks_released %llu -> %llu: a given-up "
          "scan released chunks", released, su_json_number("chunks_released"));
    CHECK(su_json_number("quarantine_bytes") == quarantine, "quarantine_bytes %llu -> %llu", quarantine,
          su_json_number("quarantine_bytes"));
    printf("GIVEUPS %llu\n", giveups_after - giveups);
    fflush(stdout);

    helper_stop = 1;
    pthread_join(thread, NULL);
    su_collect_clean();
    su_stats_refresh();
    CHECK(su_json_number("scans") > scans, "no scan completed after the blocking thread exited");
    CHECK(su_json_number("chunks_released") >= released + 2,
          "after the blocking thread exited: chunks_released %llu -> %llu", released,
          su_json_number("chunks_released"));
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
