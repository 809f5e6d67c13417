/*
 * roots.c — reading every root of the process as candidate pointers.
 *
 * Layer: preload, collect.  The second step of a scan (core.h).  The roots: every
 * readable-writable private mapping and anonymous shared memory from /proc/self/maps, each
 * stopped thread's stack from its stack pointer (less the 128-byte red zone) up and its saved
 * registers, the calling thread's own stack and registers when a program thread runs the scan,
 * and the accessible part of every live region chunk.  Skipped: the rest of the chunk
 * reservation (faulted or never used), arenashim's metadata (it names chunk addresses on
 * purpose) and its marking threads' stacks, [vvar]/[vsyscall]/[vdso], file-backed shared and
 * device mappings, and pages never touched (mincore while no swap is active, else pagemap).
 *
 * Two phases (collector.c decides which run):
 *
 *   concurrent  world running: every private anonymous mapping that is not a stack is armed
 *               for write tracking (write_tracking.c) and then read; a range that faults
 *               under the reader (unmapped meanwhile) is left to the stop.
 *   stopped     world stopped: /proc/self/maps again; stacks, registers, live chunks, shared
 *               and file-backed memory, and every mapping or part of one that the concurrent
 *               phase did not read whole or can no longer vouch for are read whole; of the
 *               rest, only the pages written since they were armed.
 *
 * Why that loses no pointer: a word that holds a pointer into a quarantined chunk when the
 * world stops was either there when the concurrent phase read its page (and was marked), or
 * written after its page was armed (and its page is read again in the stop), or lives in
 * memory that is read in the stop anyway.  A quarantined chunk's address cannot come from
 * anywhere but such a word: its memory is inaccessible.
 *
 * Reading is cut into jobs of at most JOB_BYTES for the marking threads (scan_workers.c).
 * Nothing here takes a lock or allocates; the world-stopped part cannot.
 */
#include "roots.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"
#include "scan_workers.h"
#include "sys.h"
#include "write_tracking.h"

#define RED_ZONE_BYTES 128
#define NO_SWAP_USE_MINCORE (-1)
#define READ_EVERYTHING (-2)
#define JOB_BYTES ((uintptr_t)2 << 20)
#define WRITTEN_JOB_BYTES ((uintptr_t)64 << 20)
#define JOBS_MAX ((size_t)1 << 16)
#define ARMED_MAX ((size_t)1 << 16)
#define SKIP_MAX (METADATA_RANGES_MAX + 32)
#define NO_ARMED_RANGE UINT32_MAX
#define STACKS_MAX 4096

enum job_kind {
    JOB_READ,         /* its present pages, less the skipped ranges */
    JOB_READ_PRESENT, /* pages known to be present (written since arming) */
    JOB_READ_WRITTEN, /* stop: the pages written since arming, asked of write tracking;
                       * all of it when the range is no longer tracked */
    JOB_PRECLEAN,     /* world running, after the first read: the pages written meanwhile,
                       * protected again, read again */
};

struct root_job {
    uintptr_t start, end;
    struct scan_source source;
    uint32_t armed; /* the armed range it reads (concurrent phase), or NO_ARMED_RANGE */
    uint8_t kind;   /* enum job_kind */
};

/* A range the concurrent phase armed and read; `complete` falls when a job of it faulted. */
struct armed_range {
    uintptr_t start, end;
    bool complete;
    struct scan_source source; /* its name points into the maps buffer of the concurrent phase */
};

struct scan_walk {
    const struct stopped_world *world;
    struct roots_caller caller;
    int pagemap_fd;              /* >= 0: pagemap; NO_SWAP_USE_MINCORE; READ_EVERYTHING */
    unsigned skip_count;         /* metadata, the marking threads' stacks */
    uintptr_t skip[SKIP_MAX][2];
    uint64_t bytes;              /* atomic: bytes read (both phases) */
    uint64_t rescanned_bytes;    /* atomic: bytes read in the stop */
    bool stopped;
    struct root_job *jobs;
    size_t job_count;
    struct armed_range *armed;
    size_t armed_count;
    /* The stacks the stop found, to name a referrer the concurrent phase found in one. */
    unsigned stack_count;
    struct { uintptr_t start, end; uint32_t thread; } stacks[STACKS_MAX];
    /* The mapping before the one being visited: a small inaccessible one right below a
     * stack is the guard page of a stack made by pthread_create. */
    uintptr_t previous_start, previous_end;
    bool previous_inaccessible;
};

/* --- reading one range ----------------------------------------------------------------- */

struct job_reader {
    struct scan_walk *walk;
    const struct scan_source *source;
};

static void read_present_run(uintptr_t start, uintptr_t end, void *data)
{
    struct job_reader *reader = data;
    scan_range(start, end, reader->source);
    __atomic_add_fetch(&reader->walk->bytes, end - start, __ATOMIC_RELAXED);
    if (reader->walk->stopped)
        __atomic_add_fetch(&reader->walk->rescanned_bytes, end - start, __ATOMIC_RELAXED);
}

static void read_present_pages(struct job_reader *reader, uintptr_t start, uintptr_t end)
{
    int fd = reader->walk->pagemap_fd;
    if (fd == NO_SWAP_USE_MINCORE)
        mincore_for_each_present_run(start, end, read_present_run, reader);
    else
        pagemap_for_each_present_run(fd, start, end, read_present_run, reader);
}

/* Calls piece() for each part of [start, end) outside the skipped ranges. */
static void for_each_unskipped_piece(struct scan_walk *walk, uintptr_t start, uintptr_t end,
                                     void (*piece)(struct scan_walk *walk, uintptr_t start, uintptr_t end,
                                                   void *data),
                                     void *data)
{
    while (start < end) {
        uintptr_t cut = end, resume = end;
        for (unsigned i = 0; i < walk->skip_count; i++) {
            uintptr_t s_start = walk->skip[i][0], s_end = walk->skip[i][1];
            if (s_end <= start || s_start >= end)
                continue;
            if (s_start <= start) {
                cut = start;
                resume = s_end;
                break;
            }
            if (s_start < cut) {
                cut = s_start;
                resume = s_end;
            }
        }
        if (cut > start)
            piece(walk, start, cut, data);
        start = resume;
    }
}

static void read_piece(struct scan_walk *walk, uintptr_t start, uintptr_t end, void *data)
{
    (void)walk;
    read_present_pages(data, start, end);
}

/* Reads [start, end) less the skipped ranges, page by present page. */
static void read_without_skipped(struct job_reader *reader, uintptr_t start, uintptr_t end)
{
    for_each_unskipped_piece(reader->walk, start, end, read_piece, reader);
}

static void job_faulted(size_t index, void *data)
{
    struct scan_walk *walk = data;
    uint32_t armed = walk->jobs[index].armed;
    if (armed != NO_ARMED_RANGE)
        __atomic_store_n(&walk->armed[armed].complete, false, __ATOMIC_RELAXED);
}

static void run_job(size_t index, void *data)
{
    struct scan_walk *walk = data;
    const struct root_job *job = &walk->jobs[index];
    struct job_reader reader = { walk, &job->source };
    switch (job->kind) {
    case JOB_READ_PRESENT:
        read_present_run(job->start, job->end, &reader);
        break;
    case JOB_PRECLEAN:
        /* A range no longer tracked is read whole in the stop (complete falls). */
        if (!write_tracking_written_rearm(job->start, job->end, read_present_run, &reader))
            job_faulted(index, data);
        break;
    case JOB_READ_WRITTEN:
        /* The walk of the page tables is the stop's main cost for a large heap: it runs on
         * every marking thread, a slice each. */
        if (!write_tracking_written(job->start, job->end, read_present_run, &reader))
            read_without_skipped(&reader, job->start, job->end);
        break;
    default:
        read_without_skipped(&reader, job->start, job->end);
        break;
    }
}


static void run_jobs(struct scan_walk *walk)
{
    if (walk->job_count == 0)
        return;
    scan_workers_run(walk->job_count, run_job, walk->stopped ? NULL : job_faulted, walk);
    walk->job_count = 0;
}

/* Queues [start, end) in jobs of at most JOB_BYTES; a full queue is run first. */
static void add_jobs_of(struct scan_walk *walk, uintptr_t start, uintptr_t end, const struct scan_source *source,
                        uint32_t armed, enum job_kind kind)
{
    /* Asking which pages were written costs little per byte: larger slices. */
    uintptr_t slice = kind == JOB_READ_WRITTEN || kind == JOB_PRECLEAN ? WRITTEN_JOB_BYTES : JOB_BYTES;
    while (start < end) {
        if (walk->job_count == JOBS_MAX)
            run_jobs(walk);
        uintptr_t piece_end = end - start > slice ? start + slice : end;
        struct root_job *job = &walk->jobs[walk->job_count++];
        job->start = start;
        job->end = piece_end;
        job->source = *source;
        job->armed = armed;
        job->kind = (uint8_t)kind;
        start = piece_end;
    }
}

static void add_jobs(struct scan_walk *walk, uintptr_t start, uintptr_t end, const struct scan_source *source,
                     uint32_t armed)
{
    add_jobs_of(walk, start, end, source, armed, JOB_READ);
}

/* --- which mappings, and what they are ------------------------------------------------------ */

/* The only stopped thread whose stack pointer lies in [start, end); NULL if none, and
 * *several is set when more than one does. */
static const struct stopped_thread *thread_with_stack_in(const struct stopped_world *world, uintptr_t start,
                                                        uintptr_t end, bool *several)
{
    const struct stopped_thread *found = NULL;
    *several = false;
    for (unsigned i = 0; world && i < world->count; i++)
        if (world->threads[i].stopped && world->threads[i].stack_pointer >= start &&
            world->threads[i].stack_pointer < end) {
            if (found)
                *several = true;
            found = &world->threads[i];
        }
    return found;
}

/* Is this mapping nothing but one stack: the main thread's [stack], or a mapping right above
 * a small guard (pthread_create's layout)?  A stack carved from a larger buffer, or two
 * stacks merged into one mapping, does not look like one. */
static bool mapping_is_one_stack(const struct scan_walk *walk, const struct mapping *mapping)
{
    if (strcmp(mapping->name, "[stack]") == 0)
        return true;
    bool outside_reservation = walk->previous_end <= core_config.base || walk->previous_start >= core_config.base + core_config.size;
    return walk->previous_inaccessible && walk->previous_end == mapping->start &&
           walk->previous_end - walk->previous_start <= ((uintptr_t)1 << 20) && outside_reservation &&
           mapping->name[0] == '\0';
}

/* The mappings no scan reads at all. */
static bool mapping_is_ignored(const struct mapping *mapping)
{
    if (!mapping->readable || !mapping->writable)
        return true;
    if (mapping->start >= core_config.base && mapping->end <= core_config.base + core_config.size)
        return true; /* the chunk reservation: live chunks are read from the chunk table */
    if (mapping->name[0] == '[' && strcmp(mapping->name, "[heap]") != 0 &&
        strcmp(mapping->name, "[stack]") != 0)
        return true; /* [vvar], [vsyscall], [vdso] */
    if (mapping->shared && mapping->file_backed)
        return true;
    return strncmp(mapping->name, "/dev/", 5) == 0 && strncmp(mapping->name, "/dev/zero", 9) != 0;
}

static struct scan_source mapping_source(const struct mapping *mapping)
{
    struct scan_source source = { .name = mapping->name[0] ? mapping->name : NULL };
    if (mapping->shared)
        source.kind = REFERRER_SHARED;
    else if (mapping->file_backed)
        source.kind = REFERRER_MODULE;
    else
        source.kind = REFERRER_ANONYMOUS;
    return source;
}

static void remember_previous(struct scan_walk *walk, const struct mapping *mapping)
{
    walk->previous_start = mapping->start;
    walk->previous_end = mapping->end;
    walk->previous_inaccessible = !mapping->readable && !mapping->writable && !mapping->executable;
}

/* --- the concurrent phase ---------------------------------------------------------------- */

static void arm_piece(struct scan_walk *walk, uintptr_t start, uintptr_t end, void *data)
{
    const struct scan_source *source = data;
    if (walk->armed_count == ARMED_MAX || !write_tracking_arm(start, end))
        return; /* read in the stop */
    uint32_t index = (uint32_t)walk->armed_count++;
    walk->armed[index] = (struct armed_range){ start, end, true, *source };
    add_jobs(walk, start, end, source, index);
}

static void visit_mapping_concurrent(const struct mapping *mapping, void *data)
{
    struct scan_walk *walk = data;
    bool one_stack = mapping_is_one_stack(walk, mapping);
    remember_previous(walk, mapping);
    /* Private anonymous memory only: shared memory is written through other page tables,
     * stacks are read from their stack pointer in the stop, and file-backed private data is
     * small (and would raise SIGBUS past a truncated file's end). */
    if (mapping_is_ignored(mapping) || mapping->shared || mapping->file_backed || one_stack ||
        (mapping->name[0] != '\0' && strcmp(mapping->name, "[heap]") != 0))
        return;
    struct scan_source source = mapping_source(mapping);
    for_each_unskipped_piece(walk, mapping->start, mapping->end, arm_piece, &source);
}

bool roots_scan_concurrent(struct scan_walk *walk, char *maps_buffer, size_t maps_buffer_len)
{
    walk->stopped = false;
    walk->armed_count = 0;
    walk->job_count = 0;
    walk->previous_start = walk->previous_end = 0;
    walk->previous_inaccessible = false;
    if (!write_tracking_available())
        return false;
    /* Arming comes first for a mapping, its reading after: a write between the two is
     * reported, never lost.  A maps file that cannot be read whole leaves it all to the stop. */
    if (!proc_maps_for_each(maps_buffer, maps_buffer_len, visit_mapping_concurrent, walk)) {
        walk->armed_count = walk->job_count = 0;
        return false;
    }
    run_jobs(walk);
    /* Precleaning: what the program wrote during the first read is read again now, so that
     * the stop has only what it writes from here on. */
    for (size_t i = 0; i < walk->armed_count; i++)
        if (__atomic_load_n(&walk->armed[i].complete, __ATOMIC_RELAXED))
            add_jobs_of(walk, walk->armed[i].start, walk->armed[i].end, &walk->armed[i].source,
                        (uint32_t)i, JOB_PRECLEAN);
    run_jobs(walk);
    return true;
}

/* --- the stopped phase ------------------------------------------------------------------- */

/* The first armed range that ends after address (they are sorted and disjoint). */
static size_t first_armed_after(const struct scan_walk *walk, uintptr_t address)
{
    size_t low = 0, high = walk->armed_count;
    while (low < high) {
        size_t middle = (low + high) / 2;
        if (walk->armed[middle].end <= address)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/* A piece of a mapping, world stopped: what the concurrent phase read whole and can vouch
 * for, only its written pages; the rest whole. */
static void add_stopped_piece(struct scan_walk *walk, uintptr_t start, uintptr_t end, void *data)
{
    const struct scan_source *source = data;
    for (size_t i = first_armed_after(walk, start); start < end; i++) {
        const struct armed_range *armed = i < walk->armed_count ? &walk->armed[i] : NULL;
        if (armed == NULL || armed->start >= end) {
            add_jobs(walk, start, end, source, NO_ARMED_RANGE);
            return;
        }
        if (armed->start > start)
            add_jobs(walk, start, armed->start, source, NO_ARMED_RANGE);
        uintptr_t from = armed->start > start ? armed->start : start;
        uintptr_t to = armed->end < end ? armed->end : end;
        add_jobs_of(walk, from, to, source, NO_ARMED_RANGE, armed->complete ? JOB_READ_WRITTEN : JOB_READ);
        start = to;
    }
}

static void add_whole_piece(struct scan_walk *walk, uintptr_t start, uintptr_t end, void *data)
{
    add_jobs(walk, start, end, data, NO_ARMED_RANGE);
}

static void visit_mapping_stopped(const struct mapping *mapping, void *data)
{
    struct scan_walk *walk = data;
    uintptr_t start = mapping->start, end = mapping->end;
    bool one_stack = mapping_is_one_stack(walk, mapping);
    remember_previous(walk, mapping);
    if (mapping_is_ignored(mapping))
        return;
    struct scan_source source = mapping_source(mapping);

    /* A stack: only the live part, from the stack pointer (less the red zone) up, all of it. */
    bool several = false;
    const struct stopped_thread *thread = thread_with_stack_in(walk->world, start, end, &several);
    uintptr_t own_sp = walk->caller.stack_pointer;
    bool own = walk->caller.is_program && own_sp >= start && own_sp < end;
    if (thread || own || strcmp(mapping->name, "[stack]") == 0) {
        source.kind = REFERRER_STACK;
        if (thread)
            source.thread_number = (uint32_t)thread->tid;
        else if (own)
            source.thread_number = (uint32_t)syscall(SYS_gettid);
        if (walk->stack_count < STACKS_MAX) {
            walk->stacks[walk->stack_count].start = start;
            walk->stacks[walk->stack_count].end = end;
            walk->stacks[walk->stack_count].thread = source.thread_number;
            walk->stack_count++;
        }
        if (one_stack && !several && !(thread && own)) {
            if (thread) {
                uintptr_t from = thread->stack_pointer - RED_ZONE_BYTES;
                start = from > start ? from : start;
            } else if (own) {
                start = own_sp;
            }
        }
        for_each_unskipped_piece(walk, start, end, add_whole_piece, &source);
        return;
    }
    for_each_unskipped_piece(walk, start, end, add_stopped_piece, &source);
}

static void add_live_range(uintptr_t start, uintptr_t end, void *data)
{
    static const struct scan_source region = { .kind = REFERRER_REGION };
    add_jobs(data, start, end, &region, NO_ARMED_RANGE);
}

static void read_registers(struct scan_walk *walk, const jmp_buf *own_registers)
{
    struct scan_source source = { .kind = REFERRER_REGISTERS };
    for (unsigned i = 0; i < walk->world->count; i++) {
        const struct stopped_thread *thread = &walk->world->threads[i];
        if (!thread->stopped)
            continue;
        source.thread_number = (uint32_t)thread->tid;
        scan_range((uintptr_t)thread->registers,
                   (uintptr_t)(thread->registers + thread->register_words), &source);
    }
    if (walk->caller.is_program && own_registers) {
        source.thread_number = (uint32_t)syscall(SYS_gettid);
        scan_range((uintptr_t)own_registers, (uintptr_t)own_registers + sizeof(jmp_buf), &source);
    }
}

/* Metadata grows while the program runs: the stop skips what exists now. */
static void refresh_skipped(struct scan_walk *walk)
{
    walk->skip_count = metadata_ranges(walk->skip, METADATA_RANGES_MAX);
    pid_t tids[16];
    uintptr_t stacks[16][2];
    unsigned helpers = scan_workers_helpers(tids, stacks, 16);
    for (unsigned i = 0; i < helpers && walk->skip_count < SKIP_MAX; i++)
        if (stacks[i][1] > stacks[i][0]) {
            walk->skip[walk->skip_count][0] = stacks[i][0];
            walk->skip[walk->skip_count][1] = stacks[i][1];
            walk->skip_count++;
        }
    if (!walk->caller.is_program && walk->caller.stack_high > walk->caller.stack_low &&
        walk->skip_count < SKIP_MAX) {
        walk->skip[walk->skip_count][0] = walk->caller.stack_low; /* the collector thread's */
        walk->skip[walk->skip_count][1] = walk->caller.stack_high;
        walk->skip_count++;
    }
}

bool roots_scan_stopped(struct scan_walk *walk, char *maps_buffer, size_t maps_buffer_len,
                        const jmp_buf *own_registers)
{
    walk->stopped = true;
    walk->job_count = 0;
    walk->stack_count = 0;
    walk->previous_start = walk->previous_end = 0;
    walk->previous_inaccessible = false;
    refresh_skipped(walk);
    if (!proc_maps_for_each(maps_buffer, maps_buffer_len, visit_mapping_stopped, walk))
        return false;
    scan_for_each_live_range(add_live_range, walk);
    run_jobs(walk);
    read_registers(walk, own_registers);
    return true;
}

/* --- set-up ------------------------------------------------------------------------------ */

size_t roots_walk_size(void)
{
    return sizeof(struct scan_walk);
}

bool roots_buffers(struct scan_walk *walk)
{
    if (walk->jobs == NULL)
        walk->jobs = metadata_map(sizeof(struct root_job) * JOBS_MAX);
    if (walk->armed == NULL)
        walk->armed = metadata_map(sizeof(struct armed_range) * ARMED_MAX);
    return walk->jobs && walk->armed;
}

void roots_prepare(struct scan_walk *walk, const struct stopped_world *world, const struct roots_caller *caller)
{
    struct root_job *jobs = walk->jobs;
    struct armed_range *armed = walk->armed;
    memset(walk, 0, sizeof *walk);
    walk->jobs = jobs;
    walk->armed = armed;
    walk->world = world;
    walk->caller = *caller;
    walk->pagemap_fd = NO_SWAP_USE_MINCORE;
    if (swap_is_active()) {
        walk->pagemap_fd = sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (walk->pagemap_fd < 0)
            walk->pagemap_fd = READ_EVERYTHING;
    }
    refresh_skipped(walk);
}

bool roots_stack_owner(const struct scan_walk *walk, uintptr_t location, uint32_t *thread)
{
    for (unsigned i = 0; i < walk->stack_count; i++)
        if (location >= walk->stacks[i].start && location < walk->stacks[i].end) {
            *thread = walk->stacks[i].thread;
            return true;
        }
    return false;
}

uint64_t roots_bytes_read(const struct scan_walk *walk)
{
    return __atomic_load_n(&walk->bytes, __ATOMIC_RELAXED);
}

uint64_t roots_bytes_read_stopped(const struct scan_walk *walk)
{
    return __atomic_load_n(&walk->rescanned_bytes, __ATOMIC_RELAXED);
}

void roots_finish(struct scan_walk *walk)
{
    if (walk->pagemap_fd >= 0)
        sys_close(walk->pagemap_fd);
}
