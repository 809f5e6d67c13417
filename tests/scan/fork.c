/*
 * fork.c — scanning in a fork child.
 *
 * A worker thread keeps allocating in regions, ending them and calling arenashim_collect()
 * while the main thread forks CHILDREN times.  Each child (alone in its process, whatever
 * locks the worker held at fork time) must be able to scan, release its quarantine, allocate
 * in a new region and exit 0; an alarm kills a child that hangs.  The parent's own scans must
 * still work afterwards.
 */
#include "scanutil.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define CHILDREN 16

static volatile int stop;

static void *worker(void *arg)
{
    (void)arg;
    unsigned long n = 0;
    while (!stop) {
        arenashim_region_begin();
        char *volatile p = malloc(n % 2 ? SPAN_OBJECT_BYTES : 1000);
        p[0] = 1;
        p = NULL;
        arenashim_region_end();
        if (++n % 4 == 0)
            arenashim_collect();
    }
    return NULL;
}

static int child(void)
{
    alarm(10);
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_stats_refresh();
    unsigned long long scans = su_json_number("scans");
    unsigned long long released = su_json_number("chunks_released");
    su_collect_clean();
    su_stats_refresh();
    if (su_json_number("scans") <= scans) {
        printf("FAILED: child %d: no scan ran (scan_giveups %llu)\n", (int)getpid(),
               su_json_number("scan_giveups"));
        return 1;
    }
    /* Whether the child's own dead chunk comes free is up to conservative garbage: the
     * worker's stack is dead memory here and is scanned whole. */
    printf("child %d: released %llu chunks\n", (int)getpid(), su_json_number("chunks_released") - released);
    arenashim_region_begin();
    char *volatile p = malloc(5000);
    memset(p, 7, 5000);
    arenashim_region_end();
    return 0;
}

int main(void)
{
    su_require_shim();
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, NULL) != 0) {
        printf("FAILED: pthread_create\n");
        return 3;
    }
    struct timespec pause = { 0, 2 * 1000 * 1000 };
    for (int i = 0; i < CHILDREN; i++) {
        nanosleep(&pause, NULL);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            printf("FAILED: fork: %s\n", strerror(errno));
            su_failures++;
            break;
        }
        if (pid == 0) {
            int rc = child();
            fflush(stdout);
            _exit(rc);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid) {
            printf("FAILED: waitpid: %s\n", strerror(errno));
            su_failures++;
            continue;
        }
        if (WIFSIGNALED(status))
            CHECK(0, "child %d died by signal %d%s", i, WTERMSIG(status),
                  WTERMSIG(status) == SIGALRM ? " (SIGALRM: it hung)" : "");
        else
            CHECK(WEXITSTATUS(status) == 0, "child %d exited %d", i, WEXITSTATUS(status));
    }
    stop = 1;
    pthread_join(thread, NULL);
    unsigned long long scans = su_stat("scans");
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_collect_clean();
    CHECK(su_stat("scans") > scans, "the parent cannot scan after forking");
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
