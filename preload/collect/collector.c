/*
 * collector.c — when scans run, on which thread, and the steps of one.
 *
 * Layer: preload, collect.  A scan (core.h's three steps, with the second split in two):
 *
 *   1. snapshot the quarantine (the core's lock, world running);
 *   2a. concurrent: arm write tracking and read most of memory while the program runs
 *       (roots_scan_concurrent; skipped where the kernel cannot track writes, or scan_mode=stop);
 *   2b. stop every other program thread (stop_world.c), read what the world must be stopped
 *       for and the pages written during 2a (roots_scan_stopped), resume;
 *   3. release the unmarked chunks, and record what was kept and who pointed there.
 * Both reading steps run on several marking threads (scan_workers.c).
 *
 * When and where: scans run on the collector thread, made on first need, with every
 * asynchronous signal blocked.  A region end that leaves more than quarantine_max in
 * quarantine wakes it and goes on; a thread waits for a scan only when the quarantine has
 * grown past twice quarantine_max (the collector cannot keep up), when the chunk space runs
 * out (core_set_reclaim), or in arenashim_collect(), which asks for a full scan and returns
 * when it is done.  After a scan that could free little, the next automatic one waits until
 * the quarantine has grown by a quarter of quarantine_max, so pinned chunks do not make the
 * collector scan without pause.  If the collector thread cannot be made (thread limits), or
 * in a child of fork until it is, scans run on the thread that asks, as a program thread
 * with roots of its own.
 *
 * A thread that will not stop makes the scan give up with quarantine untouched (safe); this
 * is reported once.  Only one scan runs at a time.
 */
#include "collector.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "heap_ranges.h"
#include "log.h"
#include "own_thread.h"
#include "roots.h"
#include "scan_report.h"
#include "scan_workers.h"
#include "stop_world.h"
#include "timeseries.h"
#include "write_tracking.h"

#define MAPS_BUFFER_BYTES ((size_t)8 << 20)

static spin_lock scan_lock = SPIN_LOCK_INIT;
/* The scan's buffers, made once and kept (metadata is never unmapped: see metadata.c). */
static char *maps_buffer;
static struct scan_walk *walk_buffer;
static struct scan_kept *kept_buffer;
static struct stopped_world world;

static struct {
    int state; /* 0: not made; 1: running; -1: could not be made */
    pid_t tid;
    pid_t pid; /* the process the thread runs in */
    unsigned requested; /* futex word: scans asked for */
    unsigned completed; /* futex word: the request number the last finished scan served */
    uint64_t trigger_above; /* quarantine bytes that start an automatic scan */
    uint64_t wait_above;    /* quarantine bytes that make a region end wait */
    bool described;         /* verbose=1 said which path scans take */
} collector;

static long futex(unsigned *address, int op, unsigned value)
{
    return syscall(SYS_futex, address, op, value, NULL, NULL, 0);
}

static bool buffers_ready(void)
{
    if (maps_buffer == NULL)
        maps_buffer = metadata_map(MAPS_BUFFER_BYTES);
    if (world.threads == NULL)
        world.threads = metadata_map(sizeof(struct stopped_thread) * STOPPED_THREADS_MAX);
    if (walk_buffer == NULL)
        walk_buffer = metadata_map(roots_walk_size());
    if (kept_buffer == NULL)
        kept_buffer = metadata_map(sizeof(struct scan_kept) * SCAN_KEPT_MAX);
    return maps_buffer && world.threads && walk_buffer && kept_buffer && roots_buffers(walk_buffer) &&
           scan_bitmaps_ready();
}

/* The referrers the core remembered, with the stacks and jemalloc's heap named among the
 * anonymous mappings (heap_ranges takes no lock, but is asked only now that the world runs
 * again). */
static void record_kept(const struct scan_walk *walk)
{
    const struct scan_kept *kept;
    unsigned count = scan_kept(&kept);
    for (unsigned i = 0; i < count; i++) {
        struct scan_kept *k = &kept_buffer[i];
        *k = kept[i];
        uint32_t thread;
        if (k->kind == REFERRER_ANONYMOUS && roots_stack_owner(walk, k->location, &thread)) {
            k->kind = REFERRER_STACK;
            k->thread_number = thread;
        } else if (k->kind == REFERRER_ANONYMOUS && heap_ranges_contains(k->location)) {
            k->kind = REFERRER_HEAP;
        }
    }
    scan_report_record(kept_buffer, count);
}

struct scan_figures {
    uint64_t bytes, stopped_bytes, pause_ns, concurrent_ns;
    unsigned threads;
    bool concurrent;
};

static void count_scan(const struct scan_figures *f)
{
    stats_add(&core_counters.scans, 1);
    stats_add(&core_counters.scan_bytes, f->bytes);
    stats_add(&core_counters.scan_ns, f->pause_ns);
    __atomic_store_n(&core_counters.scan_pause_last_ns, f->pause_ns, __ATOMIC_RELAXED);
    stats_max(&core_counters.scan_pause_max_ns, f->pause_ns);
    __atomic_store_n(&core_counters.scan_chunks_kept_last, scan_marked_chunks(), __ATOMIC_RELAXED);
    stats_add(&core_counters.scan_stopped_bytes, f->stopped_bytes);
    __atomic_store_n(&core_counters.scan_threads_last, f->threads, __ATOMIC_RELAXED);
    if (f->concurrent) {
        stats_add(&core_counters.scans_concurrent, 1);
        stats_add(&core_counters.scan_concurrent_ns, f->concurrent_ns);
    }
}

static unsigned marking_threads_wanted(void)
{
    unsigned wanted = core_config.options.scan_threads;
    if (wanted == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        wanted = online > 0 ? (unsigned)online : 1;
    }
    return wanted > SCAN_THREADS_MAX ? SCAN_THREADS_MAX : wanted;
}

/* Threads stop_world must leave alone: the marking helpers and the collector thread. */
static void leave_arenashim_threads_running(void)
{
    world.leave_running_count = scan_workers_helpers(world.leave_running, NULL, 15);
    if (collector.state > 0)
        world.leave_running[world.leave_running_count++] = collector.tid;
}

static void describe_path(bool concurrent, unsigned threads)
{
    if (collector.described || core_config.options.verbose == 0)
        return;
    collector.described = true;
    if (concurrent)
        log_note("scan: mostly concurrent (writes tracked with userfaultfd and PAGEMAP_SCAN), "
                 "%u marking thread%s, on %s", threads, threads == 1 ? "" : "s",
                 collector.state > 0 ? "the collector thread" : "the thread that asks");
    else
        log_note("scan: the world stopped throughout (%s), %u marking thread%s, on %s",
                 write_tracking_unavailable_reason(), threads, threads == 1 ? "" : "s",
                 collector.state > 0 ? "the collector thread" : "the thread that asks");
}

/* One scan; the caller holds scan_lock. */
static void scan_once(const struct roots_caller *caller, const jmp_buf *registers)
{
    uint64_t quarantine_before = quarantine_bytes();
    if (!buffers_ready()) {
        static int warned;
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
            log_warn("the scan cannot run: the kernel refused memory for its buffers (%zu bytes of "
                     "metadata so far); dead regions stay in quarantine, and once the chunk reservation "
                     "is full region allocations fall back to the heap", metadata_taken_bytes());
        stats_add(&core_counters.scan_giveups, 1);
        return;
    }
    if (scan_snapshot() == 0)
        return;
    struct scan_figures figures = { .threads = scan_workers_start(marking_threads_wanted()) };
    leave_arenashim_threads_running();
    struct scan_walk *walk = walk_buffer;
    roots_prepare(walk, &world, caller);
    heap_ranges_refresh(); /* mallctl takes jemalloc's locks: before the world stops */
    uint64_t start = monotonic_ns();
    figures.concurrent = roots_scan_concurrent(walk, maps_buffer, MAPS_BUFFER_BYTES);
    describe_path(figures.concurrent, figures.threads);
    uint64_t stop_start = monotonic_ns();
    figures.concurrent_ns = stop_start - start;
    if (!stop_world(&world)) {
        stats_add(&core_counters.scan_giveups, 1);
        scan_report_giveup(world.unresponsive_tid);
        roots_finish(walk);
        return;
    }
    bool roots_read = roots_scan_stopped(walk, maps_buffer, MAPS_BUFFER_BYTES, registers);
    /* The pause ends when the threads may run: a woken thread may take this CPU before the
     * collector reads the clock again. */
    figures.pause_ns = monotonic_ns() - stop_start;
    resume_world(&world);
    record_kept(walk);
    if (roots_read) {
        uint64_t released = scan_release_unmarked(); /* counted in chunks_released */
        figures.bytes = roots_bytes_read(walk);
        figures.stopped_bytes = roots_bytes_read_stopped(walk);
        count_scan(&figures);
        timeseries_note_scan(start, figures.concurrent_ns, figures.pause_ns, figures.bytes, quarantine_before,
                             quarantine_bytes(), released);
        if (core_config.options.verbose >= 1)
            scan_report_print_kept();
    } else {
        stats_add(&core_counters.scan_giveups, 1);
    }
    roots_finish(walk);
}

/* After a scan: when the next automatic one starts, and when region ends wait. */
static void set_thresholds(void)
{
    uint64_t max = core_config.options.quarantine_max, left = quarantine_bytes();
    __atomic_store_n(&collector.trigger_above, left + max / 4 > max ? left + max / 4 : max, __ATOMIC_RELAXED);
    __atomic_store_n(&collector.wait_above, left + max > 2 * max ? left + max : 2 * max, __ATOMIC_RELAXED);
}

/* A scan on the calling (program) thread. */
__attribute__((noinline)) static void scan_here(bool wait_for_running)
{
    if (wait_for_running)
        spin_lock_acquire(&scan_lock);
    else if (!spin_try_lock(&scan_lock))
        return;
    /* Callee-saved registers may hold the only copy of a pointer: spill them here, in a
     * frame above everything the scan itself puts on the stack. */
    jmp_buf registers;
    setjmp(registers);
    struct roots_caller caller = { .is_program = true, .stack_pointer = (uintptr_t)&registers };
    scan_once(&caller, &registers);
    set_thresholds();
    spin_lock_release(&scan_lock);
}

static void *collector_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "arenashim-scan", 0, 0, 0);
    __atomic_store_n(&collector.tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    /* Its own stack, skipped by its scans: asked here, not of the thread that made it. */
    struct roots_caller caller = { .is_program = false };
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *stack = NULL;
        size_t size = 0;
        pthread_attr_getstack(&attr, &stack, &size);
        pthread_attr_destroy(&attr);
        caller.stack_low = (uintptr_t)stack;
        caller.stack_high = (uintptr_t)stack + size;
    }
    for (;;) {
        unsigned target;
        while ((target = __atomic_load_n(&collector.requested, __ATOMIC_ACQUIRE)) ==
               __atomic_load_n(&collector.completed, __ATOMIC_ACQUIRE))
            futex(&collector.requested, FUTEX_WAIT_PRIVATE, target);
        spin_lock_acquire(&scan_lock);
        scan_once(&caller, NULL);
        set_thresholds();
        spin_lock_release(&scan_lock);
        __atomic_store_n(&collector.completed, target, __ATOMIC_RELEASE);
        futex(&collector.completed, FUTEX_WAKE_PRIVATE, 1 << 30);
    }
    return NULL;
}

/* Makes the collector thread on first need; false when it cannot be had. */
static bool collector_thread_ready(void)
{
    int state = __atomic_load_n(&collector.state, __ATOMIC_ACQUIRE);
    if (state > 0 && collector.pid != (pid_t)syscall(SYS_getpid)) {
        /* A child made by the clone system call itself (or vfork's child going on): no
         * pthread_atfork handler ran, and the collector thread stayed in the parent.  Waiting
         * for it would hang; this process gets its own. */
        collector_fork_child();
        state = 0;
    }
    if (state != 0)
        return state > 0;
    spin_lock_acquire(&scan_lock);
    if (collector.state == 0) {
        bool made = own_thread_start(collector_main, NULL, (size_t)512 << 10, NULL, NULL);
        if (made) {
            /* Its tid, for stop_world to leave it alone, before anyone asks it to scan. */
            while (__atomic_load_n(&collector.tid, __ATOMIC_ACQUIRE) == 0)
                sched_yield();
            collector.pid = (pid_t)syscall(SYS_getpid);
            __atomic_store_n(&collector.state, 1, __ATOMIC_RELEASE);
        } else {
            __atomic_store_n(&collector.state, -1, __ATOMIC_RELEASE);
        }
    }
    spin_lock_release(&scan_lock);
    return collector.state > 0;
}

/* Asks the collector thread for a scan; returns the request's number. */
static unsigned request_scan(void)
{
    unsigned request = __atomic_add_fetch(&collector.requested, 1, __ATOMIC_ACQ_REL);
    futex(&collector.requested, FUTEX_WAKE_PRIVATE, 1);
    return request;
}

static void wait_for_scan(unsigned request)
{
    unsigned done;
    while ((int)((done = __atomic_load_n(&collector.completed, __ATOMIC_ACQUIRE)) - request) < 0)
        futex(&collector.completed, FUTEX_WAIT_PRIVATE, done);
}

void collector_run(bool wait_for_running)
{
    if (!core_config.initialized || !core_config.options.scan)
        return;
    if (!collector_thread_ready()) {
        scan_here(wait_for_running);
        return;
    }
    unsigned request = request_scan();
    if (wait_for_running)
        wait_for_scan(request);
}

void collector_after_region_end(void)
{
    if (!core_config.options.scan)
        return;
    uint64_t quarantined = quarantine_bytes();
    uint64_t trigger = __atomic_load_n(&collector.trigger_above, __ATOMIC_RELAXED);
    if (quarantined <= (trigger ? trigger : core_config.options.quarantine_max))
        return;
    if (!collector_thread_ready()) {
        scan_here(false);
        return;
    }
    /* One request at a time: a scan asked for and not yet done serves this region end. */
    unsigned requested = __atomic_load_n(&collector.requested, __ATOMIC_ACQUIRE);
    unsigned completed = __atomic_load_n(&collector.completed, __ATOMIC_ACQUIRE);
    unsigned request = requested != completed ? requested : request_scan();
    uint64_t wait = __atomic_load_n(&collector.wait_above, __ATOMIC_RELAXED);
    if (quarantined > (wait ? wait : 2 * core_config.options.quarantine_max))
        wait_for_scan(request);
}

void collector_fork_child(void)
{
    spin_lock_reset(&scan_lock);
    /* The collector thread and the helpers stayed in the parent. */
    collector.state = 0;
    collector.tid = 0;
    collector.requested = collector.completed = 0;
    scan_workers_fork_child();
    write_tracking_fork_child();
}

void collector_lock(void)
{
    spin_lock_acquire(&scan_lock);
}

void collector_unlock(void)
{
    spin_lock_release(&scan_lock);
}

static bool reclaim_for_core(void)
{
    if (!core_config.options.scan)
        return false;
    uint64_t before = __atomic_load_n(&core_counters.chunks_released, __ATOMIC_RELAXED);
    collector_run(true);
    return __atomic_load_n(&core_counters.chunks_released, __ATOMIC_RELAXED) != before;
}

void collector_init(void)
{
    core_set_reclaim(reclaim_for_core);
}
