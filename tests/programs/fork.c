/*
 * fork.c — fork outside and inside regions, and while another thread allocates.
 *
 *   fork outside    child allocates, opens and ends regions, exits 0
 *   fork inside     fork with a region open: the child reads the region's objects, allocates
 *                   more in it, ends it, opens new ones; the parent's region is unaffected
 *   fork threads    fork repeatedly while a second thread allocates heavily (heap and
 *                   regions): no child may deadlock (each must exit within 10 s)
 *
 * Prints "OK fork-MODE" and exits 0 when every check holds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* The work a child does: allocations on the heap and in regions, checked. */
static int child_work(unsigned seed)
{
    int bad = 0;
    for (unsigned r = 0; r < 20; r++) {
        void *h = malloc(100 + r * 1000);
        if (!h)
            bad++;
        else
            fill_pattern(h, 100 + r * 1000, seed);
        region_begin();
        char *objects[50];
        for (unsigned i = 0; i < 50; i++) {
            objects[i] = malloc(16 + i * 37);
            if (!objects[i]) {
                bad++;
                continue;
            }
            fill_pattern(objects[i], 16 + i * 37, seed + i);
        }
        if (shim_present() && !in_region(objects[0]))
            bad++;
        void *big = malloc(2 << 20);
        if (big)
            memset(big, 1, 2 << 20);
        for (unsigned i = 0; i < 50; i++)
            if (objects[i] && !check_pattern(objects[i], 16 + i * 37, seed + i))
                bad++;
        region_end();
        if (h && !check_pattern(h, 100 + r * 1000, seed))
            bad++;
        free(h);
    }
    return bad;
}

/* Waits for pid up to timeout_ms; kills it and returns -1 when it does not finish. */
static int wait_with_timeout(pid_t pid, int timeout_ms, int *status)
{
    for (int waited = 0; waited < timeout_ms; waited += 5) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0)
            return -1;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, status, 0);
    return -1;
}

static int run_outside(void)
{
    for (unsigned k = 0; k < 3; k++) {
        void *before = malloc(1000);
        fill_pattern(before, 1000, 5);
        pid_t pid = fork();
        if (pid == 0) {
            int bad = child_work(k);
            if (!check_pattern(before, 1000, 5))
                bad++;
            free(before);
            _exit(bad ? 1 : 0);
        }
        CHECK(pid > 0);
        int status = 0;
        CHECK(wait_with_timeout(pid, 20000, &status) == 0);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
        CHECK(check_pattern(before, 1000, 5));
        free(before);
    }
    return finish("fork-outside");
}

static int run_inside(void)
{
    region_begin();
    char *kept = malloc(5000);
    fill_pattern(kept, 5000, 3);
    if (shim_present())
        CHECK(in_region(kept));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        if (!check_pattern(kept, 5000, 3))
            bad++;
        char *more = malloc(3000); /* still in the inherited region */
        if (!more)
            bad++;
        else
            fill_pattern(more, 3000, 4);
        if (shim_present() && !in_region(more))
            bad++;
        if (more && !check_pattern(more, 3000, 4))
            bad++;
        int depth = region_begin();
        if (shim_present() && depth != 2)
            bad++;
        void *inner = malloc(100);
        free(inner);
        region_end();
        region_end();
        bad += child_work(9);
        if (shim_present()) {
            long long begun = stats_counter("regions_begun"), ended = stats_counter("regions_ended");
            if (begun != ended)
                bad++;
        }
        _exit(bad ? 1 : 0);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(wait_with_timeout(pid, 20000, &status) == 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    /* The parent's region is intact and still open. */
    CHECK(check_pattern(kept, 5000, 3));
    char *after = malloc(100);
    if (shim_present())
        CHECK(in_region(after));
    region_end();
    return finish("fork-inside");
}

static volatile int stop_worker;

static void *allocator(void *arg)
{
    (void)arg;
    uint64_t n = 0;
    void *slots[256] = { 0 };
    while (!stop_worker) {
        unsigned i = (unsigned)(n * 2654435761u) % 256;
        free(slots[i]);
        slots[i] = malloc(1 + (n * 7919) % 20000);
        if (n % 64 == 0) {
            region_begin();
            for (unsigned k = 0; k < 20; k++) {
                char *p = malloc(10 + k * 100);
                p[0] = 1;
            }
            char *s = strdup("in a region");
            (void)s;
            region_end();
        }
        n++;
    }
    for (unsigned i = 0; i < 256; i++)
        free(slots[i]);
    return NULL;
}

static int run_threads(void)
{
    pthread_t workers[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&workers[i], NULL, allocator, NULL) == 0);
    int hung = 0, failed = 0;
    for (unsigned k = 0; k < 60; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            int bad = child_work(k);
            _exit(bad ? 1 : 0);
        }
        CHECK(pid > 0);
        int status = 0;
        if (wait_with_timeout(pid, 10000, &status) != 0)
            hung++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    stop_worker = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(workers[i], NULL);
    CHECKF(hung == 0, "%d children hung (deadlock after fork)", hung);
    CHECKF(failed == 0, "%d children failed", failed);
    return finish("fork-threads");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "outside";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(mode, "outside") == 0)
        return run_outside();
    if (strcmp(mode, "inside") == 0)
        return run_inside();
    if (strcmp(mode, "threads") == 0)
        return run_threads();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
