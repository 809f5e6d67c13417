/*
 * roots.c — reading every root of the process as candidate pointers, world stopped.
 *
 * Layer: preload, collect.  The second step of a scan (core.h): every readable-writable
 * private mapping and anonymous shared memory from /proc/self/maps, each stopped thread's
 * stack from its stack pointer (less the 128-byte red zone) up and its saved registers, the
 * collecting thread's own stack from the collector's entry frame up and its registers, and
 * the accessible part of every live region chunk.  Skipped: the rest of the chunk
 * reservation (faulted or never used), arenashim's metadata (it names chunk addresses on
 * purpose), [vvar]/[vsyscall]/[vdso], file-backed shared and device mappings, and pages
 * never touched (mincore while no swap is active, else pagemap).  Everything here runs with
 * other threads stopped: no lock, no malloc, no stdio.
 */
#include "roots.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"

#define RED_ZONE_BYTES 128
#define NO_SWAP_USE_MINCORE (-1)
#define READ_EVERYTHING (-2)

struct scan_walk {
    const struct stopped_world *world;
    uintptr_t own_stack_pointer;
    int pagemap_fd; /* >= 0: pagemap; NO_SWAP_USE_MINCORE; READ_EVERYTHING (pagemap unreadable) */
    unsigned metadata_count;
    uintptr_t metadata[METADATA_RANGES_MAX][2];
    uint64_t bytes;
    struct scan_source source;
    /* The mapping before the one being visited: a small inaccessible one right below a
     * stack is the guard page of a stack made by pthread_create. */
    uintptr_t previous_start, previous_end;
    bool previous_inaccessible;
};

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
static const struct stopped_thread *thread_with_stack_in(const struct stopped_world *world, uintptr_t start,
                                                        uintptr_t end, bool *several)
{
    const struct stopped_thread *found = NULL;
    *several = false;
    for (unsigned i = 0; i < world->count; i++)
        if (world->threads[i].stopped && world->threads[i].stack_pointer >= start &&
            world->threads[i].stack_pointer < end) {
            if (found)
                *several = true;
            found = &world->threads[i];
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
    bool outside_reservation = walk->previous_end <= core_config.base || walk->previous_start >= core_config.base + core_config.size;
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
    if (start >= core_config.base && end <= core_config.base + core_config.size)
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
    const struct stopped_thread *thread = thread_with_stack_in(walk->world, start, end, &several);
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

static void scan_live_range(uintptr_t start, uintptr_t end, void *data)
{
    scan_present_pages(data, start, end);
}

static void scan_live_chunks(struct scan_walk *walk)
{
    walk->source.kind = REFERRER_REGION;
    walk->source.name = NULL;
    walk->source.thread_number = 0;
    scan_for_each_live_range(scan_live_range, walk);
}

static void scan_registers(struct scan_walk *walk, const jmp_buf *own_registers)
{
    walk->source.kind = REFERRER_REGISTERS;
    walk->source.name = NULL;
    for (unsigned i = 0; i < walk->world->count; i++) {
        const struct stopped_thread *thread = &walk->world->threads[i];
        if (!thread->stopped)
            continue;
        walk->source.thread_number = (uint32_t)thread->tid;
        scan_range((uintptr_t)thread->registers,
                   (uintptr_t)(thread->registers + thread->register_words), &walk->source);
    }
    walk->source.thread_number = (uint32_t)syscall(SYS_gettid);
    scan_range((uintptr_t)own_registers, (uintptr_t)own_registers + sizeof(jmp_buf), &walk->source);
}

size_t roots_walk_size(void)
{
    return sizeof(struct scan_walk);
}

void roots_prepare(struct scan_walk *walk, const struct stopped_world *world, uintptr_t own_stack_pointer)
{
    memset(walk, 0, sizeof *walk);
    walk->world = world;
    walk->own_stack_pointer = own_stack_pointer;
    walk->pagemap_fd = NO_SWAP_USE_MINCORE;
    if (swap_is_active()) {
        walk->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (walk->pagemap_fd < 0)
            walk->pagemap_fd = READ_EVERYTHING;
    }
    walk->metadata_count = metadata_ranges(walk->metadata, METADATA_RANGES_MAX);
}

bool roots_scan(struct scan_walk *walk, char *maps_buffer, size_t maps_buffer_len, const jmp_buf *own_registers)
{
    if (!proc_maps_for_each(maps_buffer, maps_buffer_len, visit_mapping, walk))
        return false;
    scan_live_chunks(walk);
    scan_registers(walk, own_registers);
    return true;
}

uint64_t roots_bytes_read(const struct scan_walk *walk)
{
    return walk->bytes;
}

void roots_finish(struct scan_walk *walk)
{
    if (walk->pagemap_fd >= 0)
        close(walk->pagemap_fd);
}
