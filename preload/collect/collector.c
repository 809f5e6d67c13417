/*
 * collector.c — running a conservative scan of the whole process.
 *
 * Layer: preload, collect.  Drives the three steps of core.h's scan:
 *
 *   1. snapshot the quarantine (the core's lock, world running);
 *   2. stop every other thread (stop_world.c) and read every root (roots.c);
 *   3. resume the world, then release the unmarked chunks to the available set, and record
 *      what was kept and who pointed there (report/scan_report.c).
 *
 * A thread that will not stop makes the scan give up with quarantine untouched (safe); this
 * is reported once.  Only one scan runs at a time; automatic scans skip when one is running.
 * When the chunk space runs out, the core asks for a scan through core_set_reclaim.
 */
#include "collector.h"

#include <setjmp.h>

#include "heap_ranges.h"
#include "roots.h"
#include "scan_report.h"
#include "stop_world.h"

#define MAPS_BUFFER_BYTES ((size_t)8 << 20)

static spin_lock scan_lock = SPIN_LOCK_INIT;
/* The scan's buffers, made once and kept (metadata is never unmapped: see metadata.c). */
static char *maps_buffer;
static struct scan_walk *walk_buffer;
static struct scan_kept *kept_buffer;
static struct stopped_world world;

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
    return maps_buffer && world.threads && walk_buffer && kept_buffer;
}

/* The referrers the core remembered, with jemalloc's heap named among the anonymous ones
 * (heap_ranges takes no lock, but is asked only now that the world runs again). */
static void record_kept(void)
{
    const struct scan_kept *kept;
    unsigned count = scan_kept(&kept);
    for (unsigned i = 0; i < count; i++) {
        kept_buffer[i] = kept[i];
        if (kept_buffer[i].kind == REFERRER_ANONYMOUS && heap_ranges_contains(kept_buffer[i].location))
            kept_buffer[i].kind = REFERRER_HEAP;
    }
    scan_report_record(kept_buffer, count);
}

static void count_scan(uint64_t bytes, uint64_t pause)
{
    stats_add(&core_counters.scans, 1);
    stats_add(&core_counters.scan_bytes, bytes);
    stats_add(&core_counters.scan_ns, pause);
    __atomic_store_n(&core_counters.scan_pause_last_ns, pause, __ATOMIC_RELAXED);
    stats_max(&core_counters.scan_pause_max_ns, pause);
    __atomic_store_n(&core_counters.scan_chunks_kept_last, scan_marked_chunks(), __ATOMIC_RELAXED);
}

static void collect_locked(uintptr_t own_stack_pointer, const jmp_buf *own_registers)
{
    if (scan_snapshot() == 0 || !buffers_ready())
        return;
    struct scan_walk *walk = walk_buffer;
    roots_prepare(walk, &world, own_stack_pointer);
    heap_ranges_refresh(); /* mallctl takes jemalloc's locks: before the world stops */
    uint64_t start = monotonic_ns();
    if (!stop_world(&world)) {
        stats_add(&core_counters.scan_giveups, 1);
        scan_report_giveup(world.unresponsive_tid);
        roots_finish(walk);
        return;
    }
    bool roots_read = roots_scan(walk, maps_buffer, MAPS_BUFFER_BYTES, own_registers);
    resume_world(&world);
    uint64_t pause = monotonic_ns() - start;
    record_kept();
    if (roots_read) {
        scan_release_unmarked(); /* counted in chunks_released */
        count_scan(roots_bytes_read(walk), pause);
        if (core_config.options.verbose >= 1)
            scan_report_print_kept();
    } else {
        stats_add(&core_counters.scan_giveups, 1);
    }
    roots_finish(walk);
}

__attribute__((noinline)) void collector_run(bool wait_for_running)
{
    if (!core_config.initialized || !core_config.options.scan)
        return;
    if (wait_for_running)
        spin_lock_acquire(&scan_lock);
    else if (!spin_try_lock(&scan_lock))
        return;
    /* Callee-saved registers may hold the only copy of a pointer: spill them here, in a
     * frame above everything the scan itself puts on the stack. */
    jmp_buf registers;
    setjmp(registers);
    collect_locked((uintptr_t)&registers, &registers);
    spin_lock_release(&scan_lock);
}

void collector_after_region_end(void)
{
    if (core_config.options.scan && quarantine_bytes() > core_config.options.quarantine_max)
        collector_run(false);
}

void collector_fork_child(void)
{
    spin_lock_reset(&scan_lock);
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
    stop_world_init();
    core_set_reclaim(reclaim_for_core);
}
