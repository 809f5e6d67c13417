/*
 * collector.c — running a conservative scan of the whole process.
 *
 * Layer: preload.  Orchestrates the scan of scan.h:
 *
 *   1. snapshot the quarantine (core.lock, world running);
 *   2. stop every other thread; read /proc/self/maps; read as candidate pointers every
 *      readable-writable private mapping, anonymous shared memory, each stopped thread's
 *      stack from its stack pointer (less the 128-byte red zone) up and its saved registers,
 *      the calling thread's stack from the collector's entry frame up and its registers, and
 *      the accessible part of every live region chunk.  Skipped: the rest of the chunk
 *      reservation (faulted or never used), arenashim's metadata (it names chunk addresses
 *      on purpose), [vvar]/[vsyscall]/[vdso], file-backed shared and device mappings, and
 *      pages never touched (pagemap);
 *   3. resume the world, then release the unmarked chunks to the available set.
 *
 * A thread that will not stop makes the scan give up with quarantine untouched (safe); this
 * is reported once.  Only one scan runs at a time; automatic scans skip when one is running.
 */
#include "collector.h"

#include <errno.h>
#include <fcntl.h>
#include <jemalloc/jemalloc.h>
#include <setjmp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "heap_ranges.h"
#include "proc_maps.h"
#include "scan.h"
#include "shim.h"
#include "stop_world.h"

#define MAPS_BUFFER_BYTES ((size_t)8 << 20)
#define RED_ZONE_BYTES 128
#define NO_SWAP_USE_MINCORE (-1)
#define READ_EVERYTHING (-2)

static spin_lock scan_lock = SPIN_LOCK_INIT;
/* The scan's buffers, made once and kept (metadata is never unmapped: see metadata.c). */
static char *maps_buffer;
static struct scan_walk *walk_buffer;
static struct report *report_buffer;
static struct stopped_world world;
static int giveup_reported;

struct scan_walk {
    uintptr_t own_stack_pointer;
    int pagemap_fd; /* >= 0: pagemap; NO_SWAP_USE_MINCORE; READ_EVERYTHING (pagemap unreadable) */
    unsigned metadata_count;
    uintptr_t metadata[1024][2];
    uint64_t bytes;
    struct scan_source source;
    /* The mapping before the one being visited: a small inaccessible one right below a
     * stack is the guard page of a stack made by pthread_create. */
    uintptr_t previous_start, previous_end;
    bool previous_inaccessible;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void scan_present_run(uintptr_t start, uintptr_t end, void *data)
{
    struct scan_walk *walk = data;
    scan_range(start, end, &walk->source);
    walk->bytes += end - start;
}

static void scan_present_pages(struct scan_walk *walk, uintptr_t start, uintptr_t end)
{
    if (walk->pagemap_fd == NO_SWAP_USE_MINCORE)
        mincore_for_each_present_run(start, end, scan_present_run, walk);
    else
        pagemap_for_each_present_run(walk->pagemap_fd, start, end, scan_present_run, walk);
}

/* Scans [start, end) less arenashim's metadata, page by present page. */
static void scan_without_metadata(struct scan_walk *walk, uintptr_t start, uintptr_t end)
{
    while (start < end) {
        uintptr_t cut = end, resume = end;
        for (unsigned i = 0; i < walk->metadata_count; i++) {
            uintptr_t m_start = walk->metadata[i][0], m_end = walk->metadata[i][1];
            if (m_end <= start || m_start >= end)
                continue;
            if (m_start <= start) { /* start lies inside metadata: skip past it */
                cut = start;
                resume = m_end;
                break;
            }
            if (m_start < cut) {
                cut = m_start;
                resume = m_end;
            }
        }
        if (cut > start)
            scan_present_pages(walk, start, cut);
        start = resume;
    }
}

/* The only stopped thread whose stack pointer lies in [start, end); NULL if none, and
 * *several is set when more than one does. */
static const struct stopped_thread *thread_with_stack_in(uintptr_t start, uintptr_t end, bool *several)
{
    const struct stopped_thread *found = NULL;
    *several = false;
    for (unsigned i = 0; i < world.count; i++)
        if (world.threads[i].stopped && world.threads[i].stack_pointer >= start &&
            world.threads[i].stack_pointer < end) {
            if (found)
                *several = true;
            found = &world.threads[i];
        }
    return found;
}

/* Can the part of this mapping below a stack pointer be skipped as dead stack?  Only when the
 * mapping is nothing but that one stack: the main thread's [stack], or a mapping right above
 * a small guard (pthread_create's layout).  A stack carved from a larger buffer, or two
 * stacks merged into one mapping, is read whole. */
static bool mapping_is_one_stack(const struct scan_walk *walk, const struct mapping *mapping)
{
    if (strcmp(mapping->name, "[stack]") == 0)
        return true;
    bool outside_reservation = walk->previous_end <= core.base || walk->previous_start >= core.base + core.size;
    return walk->previous_inaccessible && walk->previous_end == mapping->start &&
           walk->previous_end - walk->previous_start <= ((uintptr_t)1 << 20) && outside_reservation &&
           mapping->name[0] == '\0';
}

static void visit_mapping(const struct mapping *mapping, void *data)
{
    struct scan_walk *walk = data;
    uintptr_t start = mapping->start, end = mapping->end;
    bool one_stack = mapping_is_one_stack(walk, mapping);
    walk->previous_start = start;
    walk->previous_end = end;
    walk->previous_inaccessible = !mapping->readable && !mapping->writable && !mapping->executable;
    if (!mapping->readable || !mapping->writable)
        return;
    if (start >= core.base && end <= core.base + core.size)
        return; /* the chunk reservation: live chunks are scanned from the chunk table */
    if (mapping->name[0] == '[' && strcmp(mapping->name, "[heap]") != 0 &&
        strcmp(mapping->name, "[stack]") != 0)
        return; /* [vvar], [vsyscall], [vdso] */
    if (mapping->shared && mapping->file_backed)
        return;
    if (strncmp(mapping->name, "/dev/", 5) == 0 && strncmp(mapping->name, "/dev/zero", 9) != 0)
        return;

    walk->source.name = mapping->name[0] ? mapping->name : NULL;
    walk->source.thread_number = 0;
    if (mapping->shared)
        walk->source.kind = REFERRER_SHARED;
    else if (mapping->file_backed)
        walk->source.kind = REFERRER_MODULE;
    else
        walk->source.kind = REFERRER_ANONYMOUS;

    /* A stack: only the live part, from the stack pointer (less the red zone) up. */
    bool several = false;
    const struct stopped_thread *thread = thread_with_stack_in(start, end, &several);
    bool own = walk->own_stack_pointer >= start && walk->own_stack_pointer < end;
    if (thread || own || strcmp(mapping->name, "[stack]") == 0)
        walk->source.kind = REFERRER_STACK;
    if (thread)
        walk->source.thread_number = (uint32_t)thread->tid;
    else if (own)
        walk->source.thread_number = (uint32_t)syscall(SYS_gettid);
    if (one_stack && !several && !(thread && own)) {
        if (thread) {
            uintptr_t from = thread->stack_pointer - RED_ZONE_BYTES;
            start = from > start ? from : start;
        } else if (own) {
            start = walk->own_stack_pointer;
        }
    }
    scan_without_metadata(walk, start, end);
}

static void scan_live_chunks(struct scan_walk *walk)
{
    walk->source.kind = REFERRER_REGION;
    walk->source.name = NULL;
    walk->source.thread_number = 0;
    size_t words = (core.chunk_count + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        uint64_t taken = core.taken[w];
        while (taken) {
            uint32_t index = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(taken));
            taken &= taken - 1;
            if (index >= core.chunk_count)
                break;
            const struct chunk_meta *meta = &core.chunks[index];
            if (meta->state != CHUNK_LIVE)
                continue;
            uintptr_t chunk = (uintptr_t)chunk_address(index);
            scan_present_pages(walk, chunk + meta->faulted_end, chunk + core.chunk_size);
        }
    }
}

static void scan_registers(struct scan_walk *walk, const jmp_buf *own_registers)
{
    walk->source.kind = REFERRER_REGISTERS;
    walk->source.name = NULL;
    for (unsigned i = 0; i < world.count; i++) {
        const struct stopped_thread *thread = &world.threads[i];
        if (!thread->stopped)
            continue;
        walk->source.thread_number = (uint32_t)thread->tid;
        scan_range((uintptr_t)thread->registers,
                   (uintptr_t)(thread->registers + thread->register_words), &walk->source);
    }
    walk->source.thread_number = (uint32_t)syscall(SYS_gettid);
    scan_range((uintptr_t)own_registers, (uintptr_t)own_registers + sizeof(jmp_buf), &walk->source);
}

static const char *referrer_description(enum referrer_kind kind)
{
    switch (kind) {
    case REFERRER_STACK: return "stack of thread ";
    case REFERRER_REGISTERS: return "registers of thread ";
    case REFERRER_MODULE: return ".data/.bss of ";
    case REFERRER_ANONYMOUS: return "anonymous mapping";
    case REFERRER_SHARED: return "shared memory";
    case REFERRER_REGION: return "live region chunk";
    case REFERRER_HEAP: return "anonymous mapping (jemalloc heap object)";
    default: return "unknown";
    }
}

void collector_describe_referrer(const struct scan_kept *kept, struct report *report)
{
    report_string(report, referrer_description(kept->kind));
    if (kept->kind == REFERRER_STACK || kept->kind == REFERRER_REGISTERS) {
        report_decimal(report, kept->thread_number);
    } else if (kept->kind == REFERRER_MODULE) {
        report_string(report, kept->name);
    } else if (kept->kind == REFERRER_ANONYMOUS) {
        report_string(report, " (memory the program mapped)");
        if (kept->name[0]) {
            report_string(report, " ");
            report_string(report, kept->name);
        }
    }
}

static void report_kept_chunks(void)
{
    struct report *report = report_buffer;
    if (report == NULL)
        return;
    for (unsigned i = 0; i < scan_state.kept_count; i++) {
        const struct scan_kept *kept = &scan_state.kept[i];
        struct dangling_info info;
        report_init(report);
        report_string(report, "arenashim: scan kept chunk ");
        report_hex(report, (uintptr_t)chunk_address(kept->chunk));
        if (dangling_lookup(kept->value, &info) && info.found_range) {
            report_string(report, " (region #");
            report_decimal(report, info.range.region_id);
            report_string(report, ", marker '");
            report_string(report, marker_name(info.range.marker));
            report_string(report, "')");
        }
        report_string(report, ": pointer ");
        report_hex(report, kept->value);
        if (kept->location && kept->kind != REFERRER_REGISTERS) {
            report_string(report, " stored at ");
            report_hex(report, kept->location);
        }
        report_string(report, " in ");
        collector_describe_referrer(kept, report);
        report_string(report, "\n");
        report_emit(report);
    }
}

static void report_giveup(pid_t tid)
{
    if (__atomic_exchange_n(&giveup_reported, 1, __ATOMIC_RELAXED))
        return;
    struct report *report = report_buffer;
    if (report == NULL)
        return;
    report_init(report);
    report_string(report, "arenashim: warning: scan given up: thread ");
    report_decimal(report, (uint64_t)tid);
    report_string(report, " did not stop (it blocks or cannot take the scan's signal); quarantined "
                          "memory stays quarantined, which is safe (reported once)\n");
    report_emit(report);
}

static void collect_locked(uintptr_t own_stack_pointer, const jmp_buf *own_registers)
{
    if (scan_snapshot() == 0)
        return;
    if (maps_buffer == NULL)
        maps_buffer = metadata_map(MAPS_BUFFER_BYTES);
    if (world.threads == NULL)
        world.threads = metadata_map(sizeof(struct stopped_thread) * STOPPED_THREADS_MAX);
    if (walk_buffer == NULL)
        walk_buffer = metadata_map(sizeof *walk_buffer);
    if (report_buffer == NULL)
        report_buffer = metadata_map(sizeof *report_buffer);
    struct scan_walk *walk = walk_buffer;
    if (maps_buffer == NULL || world.threads == NULL || walk == NULL || report_buffer == NULL)
        return;
    memset(walk, 0, sizeof *walk);
    walk->own_stack_pointer = own_stack_pointer;
    walk->pagemap_fd = NO_SWAP_USE_MINCORE;
    if (swap_is_active()) {
        walk->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (walk->pagemap_fd < 0)
            walk->pagemap_fd = READ_EVERYTHING;
    }
    walk->metadata_count = metadata_ranges(walk->metadata, 1024);

    heap_ranges_refresh(); /* mallctl takes jemalloc's locks: before the world stops */
    uint64_t start = now_ns();
    if (!stop_world(&world)) {
        stats_add(&core.counters.scan_giveups, 1);
        report_giveup(world.unresponsive_tid);
    } else {
        bool maps_read = proc_maps_for_each(maps_buffer, MAPS_BUFFER_BYTES, visit_mapping, walk);
        if (maps_read) {
            scan_live_chunks(walk);
            scan_registers(walk, own_registers);
        }
        resume_world(&world);
        uint64_t pause = now_ns() - start;
        /* Name jemalloc's heap among the anonymous referrers, now that locks may be taken. */
        for (unsigned i = 0; i < scan_state.kept_count; i++)
            if (scan_state.kept[i].kind == REFERRER_ANONYMOUS &&
                heap_ranges_contains(scan_state.kept[i].location))
                scan_state.kept[i].kind = REFERRER_HEAP;
        if (maps_read) {
            scan_release_unmarked(); /* counted in chunks_released */
            stats_add(&core.counters.scans, 1);
            stats_add(&core.counters.scan_bytes, walk->bytes);
            stats_add(&core.counters.scan_ns, pause);
            __atomic_store_n(&core.counters.scan_pause_last_ns, pause, __ATOMIC_RELAXED);
            if (pause > core.counters.scan_pause_max_ns)
                __atomic_store_n(&core.counters.scan_pause_max_ns, pause, __ATOMIC_RELAXED);
            __atomic_store_n(&core.counters.scan_chunks_kept_last, scan_state.marks, __ATOMIC_RELAXED);
            if (core.options.verbose >= 1)
                report_kept_chunks();
        } else {
            stats_add(&core.counters.scan_giveups, 1);
        }
    }
    if (walk->pagemap_fd >= 0)
        close(walk->pagemap_fd);
}

__attribute__((noinline)) void collector_run(bool wait_for_running)
{
    if (!core.initialized || !core.options.scan)
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
    if (core.options.scan &&
        __atomic_load_n(&core.quarantine_bytes, __ATOMIC_RELAXED) > core.options.quarantine_max)
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
    if (!core.options.scan)
        return false;
    uint64_t before = __atomic_load_n(&core.counters.chunks_released, __ATOMIC_RELAXED);
    collector_run(true);
    return __atomic_load_n(&core.counters.chunks_released, __ATOMIC_RELAXED) != before;
}

void collector_init(void)
{
    stop_world_init();
    core.reclaim = reclaim_for_core;
}
