/*
 * scan_workers.c — the threads that mark in parallel: the caller and its helpers.
 *
 * Layer: preload, collect.  A scan's reading is cut into jobs (a range of memory each, at
 * most a few MiB) that threads claim one by one from a shared counter, so a large heap is
 * read at the speed of several cores: in the concurrent phase while the program runs, and in
 * the stop.  The thread that runs the scan (the collector thread, or a program thread in
 * arenashim_collect's fallback) takes jobs like the others.
 *
 * Helpers are made on first use (scan_threads=N, default the online CPUs up to
 * SCAN_WORKERS_MAX) with every asynchronous signal blocked, so the program's signals never
 * land on them; they sleep on a futex between passes.  stop_world leaves them running and the
 * scan skips their stacks: they hold copies of words they read, nothing of the program's.
 *
 * While the program runs, it may unmap or protect what a job is reading: a recoverable pass
 * arms a jump point per job, and the SIGSEGV handler (shim/signals.c) asks
 * scan_workers_recover_fault first; the job is then abandoned and reported to the pass,
 * which reads that range again with the world stopped.
 */
#include "scan_workers.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"
#include "own_thread.h"

#define SCAN_WORKERS_MAX 16
#define HELPER_STACK_BYTES ((size_t)256 << 10)

struct pass {
    size_t count;
    size_t next; /* atomic: the next index to claim */
    scan_job_fn job;
    scan_job_failed_fn failed;
    void *data;
    unsigned busy; /* atomic: helpers not yet done with this pass (futex word) */
};

static struct {
    spin_lock lock; /* making helpers */
    unsigned helper_count;
    pid_t tids[SCAN_WORKERS_MAX];
    uintptr_t stacks[SCAN_WORKERS_MAX][2];
    unsigned generation;  /* futex word: bumped to start a pass */
    struct pass *pass;    /* the current pass, on the caller's stack */
} pool = { .lock = SPIN_LOCK_INIT };

static __thread sigjmp_buf *recover_point;

static long futex(unsigned *address, int op, unsigned value)
{
    return syscall(SYS_futex, address, op, value, NULL, NULL, 0);
}

static void run_one(struct pass *pass, size_t index)
{
    if (pass->failed == NULL) {
        pass->job(index, pass->data);
        return;
    }
    /* SIGSEGV is never blocked in a handler of ours (SA_NODEFER): no mask to restore. */
    sigjmp_buf point;
    if (sigsetjmp(point, 0) != 0) {
        __atomic_store_n(&recover_point, NULL, __ATOMIC_RELAXED);
        pass->failed(index, pass->data);
        return;
    }
    __atomic_store_n(&recover_point, &point, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pass->job(index, pass->data);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&recover_point, NULL, __ATOMIC_RELAXED);
}

static void run_jobs(struct pass *pass)
{
    for (;;) {
        size_t index = __atomic_fetch_add(&pass->next, 1, __ATOMIC_RELAXED);
        if (index >= pass->count)
            return;
        run_one(pass, index);
    }
}

static void *helper_main(void *arg)
{
    unsigned slot = (unsigned)(uintptr_t)arg;
    /* Made between passes (scan_workers_start runs before a pass, on the same thread). */
    unsigned seen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
    __atomic_store_n(&pool.tids[slot], (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    for (;;) {
        unsigned generation;
        while ((generation = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE)) == seen)
            futex(&pool.generation, FUTEX_WAIT_PRIVATE, seen);
        seen = generation;
        struct pass *pass = __atomic_load_n(&pool.pass, __ATOMIC_ACQUIRE);
        run_jobs(pass);
        if (__atomic_sub_fetch(&pass->busy, 1, __ATOMIC_ACQ_REL) == 0)
            futex(&pass->busy, FUTEX_WAKE_PRIVATE, 1);
    }
    return NULL;
}

static bool make_helper(unsigned slot)
{
    return own_thread_start(helper_main, (void *)(uintptr_t)slot, HELPER_STACK_BYTES, &pool.stacks[slot][0],
                            &pool.stacks[slot][1]);
}

unsigned scan_workers_start(unsigned threads)
{
    if (threads > SCAN_WORKERS_MAX)
        threads = SCAN_WORKERS_MAX;
    spin_lock_acquire(&pool.lock);
    while (pool.helper_count + 1 < threads && make_helper(pool.helper_count)) {
        /* Wait until it has its tid, so stop_world can leave it alone. */
        while (__atomic_load_n(&pool.tids[pool.helper_count], __ATOMIC_ACQUIRE) == 0)
            sched_yield();
        pool.helper_count++;
    }
    unsigned count = pool.helper_count + 1;
    spin_lock_release(&pool.lock);
    return count;
}

void scan_workers_run(size_t count, scan_job_fn job, scan_job_failed_fn failed, void *data)
{
    struct pass pass = { .count = count, .job = job, .failed = failed, .data = data };
    unsigned helpers = __atomic_load_n(&pool.helper_count, __ATOMIC_ACQUIRE);
    if (helpers == 0 || count <= 1) {
        run_jobs(&pass);
        return;
    }
    pass.busy = helpers;
    __atomic_store_n(&pool.pass, &pass, __ATOMIC_RELEASE);
    __atomic_add_fetch(&pool.generation, 1, __ATOMIC_ACQ_REL);
    futex(&pool.generation, FUTEX_WAKE_PRIVATE, helpers);
    run_jobs(&pass);
    unsigned busy;
    while ((busy = __atomic_load_n(&pass.busy, __ATOMIC_ACQUIRE)) != 0)
        futex(&pass.busy, FUTEX_WAIT_PRIVATE, busy);
}

unsigned scan_workers_helpers(pid_t *tids, uintptr_t (*stacks)[2], unsigned max)
{
    unsigned count = __atomic_load_n(&pool.helper_count, __ATOMIC_ACQUIRE);
    if (count > max)
        count = max;
    for (unsigned i = 0; i < count; i++) {
        if (tids)
            tids[i] = pool.tids[i];
        if (stacks) {
            stacks[i][0] = pool.stacks[i][0];
            stacks[i][1] = pool.stacks[i][1];
        }
    }
    return count;
}

bool scan_workers_recover_fault(const siginfo_t *info)
{
    sigjmp_buf *point = __atomic_load_n(&recover_point, __ATOMIC_RELAXED);
    if (point == NULL || info->si_code <= 0)
        return false;
    __atomic_store_n(&recover_point, NULL, __ATOMIC_RELAXED);
    siglongjmp(*point, 1);
}

void scan_workers_fork_child(void)
{
    spin_lock_reset(&pool.lock);
    pool.helper_count = 0;
    memset(pool.tids, 0, sizeof pool.tids);
    pool.generation = 0;
    pool.pass = NULL;
}
