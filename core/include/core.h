/*
 * core.h — the allocator engine, as the layer above sees it.
 *
 * Layer: core, public.  The one header the preload includes (with options.h, lock.h and
 * core_arch.h, which it pulls in).  It holds what the preload's fast paths must read inline
 * (the chunk space's bounds, region and thread records), those fast paths themselves, and
 * the functions of the core's lifecycle; the chunk table, the quarantine, the scan's marks
 * and the pools stay behind core/internal.h.
 *
 * The lifecycle (as in Go's runtime/arena.go), one noun per file of core/:
 *
 *   region begins (region.c)  ->  objects bump-allocated into chunks (region_alloc below,
 *   chunk.c)  ->  region ends: its pages fault (pages.c), whole chunks are quarantined  ->
 *   a scan (scan.c, driven by the preload's collector) finds no pointer into a chunk  ->
 *   the chunk is available again.  Explicit arenas (arena.c) are regions no thread holds.
 *
 * Addresses.  One large PROT_NONE reservation, aligned to the chunk size, is cut into
 * chunks: "is this pointer ours, and which chunk?" is one subtraction, one compare and one
 * shift.  Objects are 16-byte aligned, each after a 16-byte object_header holding its size.
 */
#ifndef ARENASHIM_CORE_H
#define ARENASHIM_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core_arch.h"
#include "lock.h"
#include "options.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define PAGE_SIZE_BYTES ((size_t)4096)
#define OBJECT_ALIGN ((size_t)16)
#define OBJECT_HEADER_SIZE ((size_t)16)
#define THREAD_SPARE_CHUNKS 8

/* Marker ids below zero are the fixed kinds; zero and up index the marker table. */
#define MARKER_API (-1)
#define MARKER_ARENA (-2)

/* The most metadata ranges the scan skips (metadata_ranges). */
#define METADATA_RANGES_MAX 1024

static inline uintptr_t align_up(uintptr_t x, uintptr_t alignment)
{
    return (x + alignment - 1) & ~(alignment - 1);
}

/* A counter one thread writes and others read (statistics): relaxed atomic load and store,
 * which compile to a plain add on x86-64 — no lock prefix — yet are not a data race. */
static inline void counter_add(uint64_t *counter, uint64_t amount)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + amount, __ATOMIC_RELAXED);
}

/* --- the configuration: written once by core_init, read everywhere -------------------------- */

struct marker_counters {
    uint64_t regions;
    uint64_t bytes;
    uint64_t objects;
    uint64_t peak_bytes;   /* the largest region */
    uint64_t cycles;       /* time inside, in cycle_counter() units */
    uint64_t escapes;      /* objects (or, untraced, faulting pages) that escaped */
    uint64_t escaped_frees;
};

struct core_config {
    /* Read on every free(): together, first. */
    uintptr_t base;       /* the chunk space; size 0 when heap-only */
    uintptr_t size;
    size_t small_max;     /* larger requests get spans of whole chunks */
    unsigned chunk_shift;
    size_t chunk_size;
    uint32_t chunk_count;
    bool heap_only;       /* no chunk space fits the process's limits: the heap serves regions */
    bool measure_time;    /* statistics asked for: regions count cycles inside */
    uint64_t trace_period; /* trace_allocs: one allocation in this many is traced; 0 none */
    /* Region end hands the current chunk on unfaulted (partial_reuse, revoke_batch); dead
     * regions are then revoked when the chunk fills, or every revoke_batch region ends. */
    bool hand_on_unfaulted;
    /* Kernel features found at start-up (pages.c), unless kernel_features=none: moving
     * physical pages between addresses (mremap MREMAP_DONTUNMAP, Linux 5.7), populating
     * ahead of use (MADV_POPULATE_WRITE, 5.14).  Without them pages are discarded and
     * faulted in anew. */
    bool kernel_moves_pages;
    bool kernel_populates;
    /* Chunks ask for transparent huge pages (MADV_HUGEPAGE): huge_pages=1, chunks of at least
     * a huge page, and the kernel's THP not "never". */
    bool kernel_huge_pages;
    bool initialized;
    struct options options;
    /* Per-marker counters, for marker ids [0, marker_count) (core_markers_init). */
    unsigned marker_count;
    struct marker_counters *markers;
};

extern struct core_config core_config;

static inline bool core_owns(const void *p)
{
    return (uintptr_t)p - core_config.base < core_config.size;
}

static inline char *chunk_address(uint32_t index)
{
    return (char *)(core_config.base + ((uintptr_t)index << core_config.chunk_shift));
}

/* NULL for the fixed kinds and unknown ids. */
static inline struct marker_counters *marker_counters_of(int32_t marker)
{
    return marker >= 0 && (unsigned)marker < core_config.marker_count ? &core_config.markers[marker] : NULL;
}

/* --- records ------------------------------------------------------------------------------ */

/* 16 bytes so objects stay 16-byte aligned; only the size is kept (the region of a dead
 * object is found from its chunk's dead-range records, which survive the faulting). */
struct object_header {
    uint64_t size; /* the size asked for */
    uint64_t unused;
};

struct thread_counters {
    uint64_t regions_begun;
    uint64_t regions_ended;
    uint64_t region_allocs;
    uint64_t region_bytes;
    uint64_t frees_ignored;
    uint64_t frees_undone;
    uint64_t escaped_frees;
};

struct trace_block;

struct region {
    /* Hot: every allocation touches these, and nothing else. */
    char *cursor;
    char *limit;
    char *last_object; /* header of the last allocation, while undoing it is still possible */
    char *high_water;  /* max cursor before an undo: bytes below it may have been handed out */
    /* Counts written by the owning thread only (plain: no other thread reads an open region's
     * counts; they fold into the thread's at region end). */
    uint64_t allocs;
    uint64_t bytes;
    uint64_t sample_at;  /* allocs count at which the next allocation is traced (trace_allocs) */
    uint64_t frees_undone;
    uint64_t frees_ignored;
    char *chunk_begin;   /* where this region began in its current chunk: [chunk_begin, cursor)
                          * holds only its own live objects */
    /* Cold. */
    uint64_t id;
    struct region *outer;
    struct thread_state *thread; /* NULL for an explicit arena */
    uint32_t current_chunk;      /* index + 1; 0 before the first allocation */
    uint32_t chunk_list;         /* retired chunks and spans, index + 1 */
    char *dirty_end;             /* recycled pages of earlier regions end here */
    char *span_object;           /* the last span, while its first span_dirty bytes (from the */
    size_t span_dirty;           /* span's start) hold pages moved in from a spare */
    int32_t marker;
    unsigned depth;
    bool out_of_chunks;          /* no chunk could be had: the heap serves it until it ends */
    uintptr_t begin_pc;
    uint64_t begin_cycles;
    uint32_t begin_stack, end_stack; /* stack_table ids (verbose, trace_allocs) */
    struct trace_block *trace;       /* allocation records when trace_allocs is on */
};

struct spare_chunk {
    uint32_t chunk;       /* index */
    uint32_t offset;      /* first byte no region has used, page aligned in strict mode */
    uint32_t present_end; /* [offset, present_end): physical pages recycled from earlier
                           * regions (present, dirty); beyond it, never touched */
};

struct thread_state {
    struct region *innermost;
    unsigned depth;
    unsigned spare_count;
    struct spare_chunk spares[THREAD_SPARE_CHUNKS];
    struct thread_counters counters;
    uint64_t next_region_id, region_id_limit; /* a block of region numbers taken at once */
    uint64_t trace_countdown; /* allocations until the next traced one, between regions */
    unsigned unrevoked_regions; /* revoke_batch: region ends since the last revocation */
    uint32_t number;
    pid_t tid;
    bool alive;
    struct thread_state *next_all;
    struct thread_state *next_free;
};

/* One faulted (or, with partial_reuse, retired) range of a chunk: what a report says of a
 * dead address. */
struct dead_range {
    struct dead_range *next;
    uintptr_t start, end;
    uint64_t region_id;
    int32_t marker;
    uint32_t thread_number;
    uintptr_t begin_pc, end_pc;
    uint32_t begin_stack, end_stack; /* stack_table ids, 0 when not recorded */
    struct trace_block *trace;       /* the region's allocation records (trace_allocs) */
};

/* --- allocation fast path (region.c has the slow paths) ------------------------------------ */

void *region_alloc_slow(struct region *region, size_t size, size_t alignment);

/* The bump itself, with no call: NULL when the request does not fit the current chunk (the
 * caller then takes the slow path).  Kept call-free so that callers' fast paths need no
 * stack frame. */
static inline void *region_try_alloc(struct region *region, size_t size)
{
    size_t need = ((size + OBJECT_ALIGN - 1) & ~(OBJECT_ALIGN - 1)) + OBJECT_HEADER_SIZE;
    char *header = region->cursor;
    if (unlikely(size > core_config.small_max || (size_t)(region->limit - header) < need))
        return NULL;
    region->cursor = header + need;
    region->last_object = header;
    region->allocs++;
    region->bytes += size;
    ((struct object_header *)header)->size = size;
    return header + OBJECT_HEADER_SIZE;
}

/* NULL only when the chunk space is exhausted or the request cannot be served by a region
 * at all (the caller then falls back to the heap). */
static inline void *region_alloc(struct region *region, size_t size)
{
    void *p = region_try_alloc(region, size);
    return likely(p != NULL) ? p : region_alloc_slow(region, size, OBJECT_ALIGN);
}

static inline struct object_header *object_header_of(const void *p)
{
    return (struct object_header *)((uintptr_t)p - OBJECT_HEADER_SIZE);
}

/* Reads the header: faults (and is reported) when the object's region has ended. */
static inline size_t region_object_size(const void *p)
{
    return object_header_of(p)->size;
}

/* The cheap cases of free() of a region object, given the caller's innermost open region:
 * the region's last object (the bump is undone), or another live object of its current
 * chunk (nothing to do, and no look at the chunk table).  false for anything else. */
static inline bool region_free_fast(struct region *region, void *p)
{
    char *header = (char *)p - OBJECT_HEADER_SIZE;
    if (region->last_object == header) {
        if (region->high_water < region->cursor)
            region->high_water = region->cursor;
        region->cursor = header;
        region->last_object = NULL;
        region->frees_undone++;
        return true;
    }
    if ((uintptr_t)header - (uintptr_t)region->chunk_begin < (uintptr_t)(region->cursor - region->chunk_begin)) {
        region->frees_ignored++;
        return true;
    }
    return false;
}

/* The rest: an object of an outer region, an arena, a retired chunk, or one whose region
 * ended (an escape, counted once per object).  true when it is the object's first free after
 * its region ended (the preload may report it).  thread may be NULL. */
bool region_free_slow(struct thread_state *thread, void *p);

/* free() of p, an address in the chunk space, by thread (NULL: a thread without a record).
 * Returns region_free_slow's answer, false for the cheap cases. */
static inline bool region_free(struct thread_state *thread, void *p)
{
    struct region *innermost = thread ? thread->innermost : NULL;
    if (innermost != NULL && region_free_fast(innermost, p))
        return false;
    return region_free_slow(thread, p);
}

/* --- opening and ending regions without a call (the hooks' fast paths use these) ---------- */

/* Region numbers: unique and, per thread, increasing; taken from the global counter in
 * blocks so opening a region needs no atomic operation. */
uint64_t region_id_refill(struct thread_state *thread);

static inline uint64_t region_id_next(struct thread_state *thread)
{
    if (unlikely(thread == NULL || thread->next_region_id == thread->region_id_limit))
        return region_id_refill(thread);
    return thread->next_region_id++;
}

/* Sets every field of a region record for a new region of thread (NULL for an arena). */
static inline void region_init(struct region *region, struct thread_state *thread, int32_t marker,
                               uintptr_t begin_pc)
{
    region->cursor = NULL;
    region->limit = NULL;
    region->last_object = NULL;
    region->high_water = NULL;
    region->chunk_begin = NULL;
    region->allocs = 0;
    region->bytes = 0;
    region->sample_at = UINT64_MAX;
    region->frees_undone = 0;
    region->frees_ignored = 0;
    region->id = region_id_next(thread);
    region->outer = NULL;
    region->thread = thread;
    region->current_chunk = 0;
    region->chunk_list = 0;
    region->dirty_end = NULL;
    region->span_object = NULL;
    region->span_dirty = 0;
    region->marker = marker;
    region->depth = 0;
    region->out_of_chunks = false;
    region->begin_pc = begin_pc;
    region->begin_cycles = core_config.measure_time ? cycle_counter() : 0;
    region->begin_stack = 0;
    region->end_stack = 0;
    region->trace = NULL;
}

/* Sampling for trace_allocs counts a thread's allocations across its regions: the innermost
 * region holds the count as sample_at (its allocs value at which the next one is traced);
 * the rest of the count moves to the new innermost at a push, and back at the end. */
static inline uint64_t region_sampling_left(const struct region *region)
{
    return region->sample_at > region->allocs ? region->sample_at - region->allocs : 1;
}

static inline void region_sampling_hand_back(const struct region *region)
{
    if (core_config.trace_period == 0 || region->thread == NULL)
        return;
    struct region *outer = region->outer;
    if (outer)
        outer->sample_at = outer->allocs + region_sampling_left(region);
    else
        region->thread->trace_countdown = region_sampling_left(region);
}

/* Makes region the thread's innermost; returns the new depth. */
static inline unsigned region_push(struct thread_state *thread, struct region *region)
{
    if (core_config.trace_period)
        region->sample_at = thread->innermost ? region_sampling_left(thread->innermost) : thread->trace_countdown;
    region->outer = thread->innermost;
    region->depth = thread->depth + 1;
    counter_add(&thread->counters.regions_begun, 1);
    thread->depth = region->depth;
    __atomic_store_n(&thread->innermost, region, __ATOMIC_RELEASE);
    return region->depth;
}

/* Ends the thread's innermost region when it is region and never took a chunk: nothing to
 * fault, only counts to keep.  false (nothing done) otherwise: region_end's work. */
static inline bool region_end_untouched(struct thread_state *thread, struct region *region)
{
    if (thread->innermost != region || region->current_chunk != 0 || region->chunk_list != 0 ||
        region->trace != NULL)
        return false;
    region_sampling_hand_back(region);
    __atomic_store_n(&thread->innermost, region->outer, __ATOMIC_RELEASE);
    thread->depth--;
    counter_add(&thread->counters.regions_ended, 1);
    struct marker_counters *marker = marker_counters_of(region->marker);
    if (marker) {
        __atomic_fetch_add(&marker->regions, 1, __ATOMIC_RELAXED);
        if (core_config.measure_time)
            __atomic_fetch_add(&marker->cycles, cycle_counter() - region->begin_cycles, __ATOMIC_RELAXED);
    }
    return true;
}

/* --- start-up, threads, fork (core.c) ------------------------------------------------------ */

/* Reserves the chunk space and maps its tables.  false: an error the program must stop on
 * (an explicit reserve= that cannot be met), described in message.  true with
 * core_config.heap_only set: no useful reservation fits the process's limits, so regions
 * serve nothing and every allocation goes to the heap; message says why, for one warning. */
bool core_init(const struct options *options, char *message, size_t message_len);
/* Counters for marker ids [0, count); false when metadata is exhausted. */
bool core_markers_init(unsigned count);
/* When the chunk space is full, the core calls reclaim (a scan) once before giving up;
 * reclaim returns true if anything came free. */
void core_set_reclaim(bool (*reclaim)(void));
/* What watches the core's slow paths (the statistics over time, preload/report/timeseries.c):
 * region_ended for every region, arena or not, that ends through the slow path (with the
 * bytes it allocated; regions the hooks end untouched are not seen), chunk_started each time
 * a region starts in a chunk (its first allocation, a refill, a span).  Called with no lock
 * of the core held; they must not allocate.  NULL (the default): nothing is called. */
struct core_observer {
    void (*region_ended)(int32_t marker, uint64_t bytes);
    void (*chunk_started)(void);
};
void core_set_observer(const struct core_observer *observer);
void core_fork_child(struct thread_state *survivor);
void core_lock_all(void);
void core_unlock_all(void);

struct thread_state *thread_state_create(pid_t tid);
/* Ends the thread's open regions, quarantines its spare chunks and retires its record. */
void thread_state_exit(struct thread_state *thread);

/* --- regions (region.c) and arenas (arena.c) ----------------------------------------------- */

/* Opens a region on the thread; returns the new depth. */
unsigned region_begin(struct thread_state *thread, int32_t marker, uintptr_t begin_pc);
/* Ends the innermost region; false when none is open. */
bool region_end(struct thread_state *thread, uintptr_t end_pc);
/* Bare region records, for callers that open regions themselves (the hook fast path). */
struct region *region_record_new(void);
void region_record_free(struct region *region);
/* Grows or shrinks p in place when it is the region's last object; false otherwise. */
bool region_resize_in_place(struct region *region, void *p, size_t new_size);
/* calloc support: zeroes the part of [p, p+size) that may hold old bytes. */
void region_clear_reused(struct region *region, void *p, size_t size);
void *region_alloc_aligned(struct region *region, size_t size, size_t alignment);

struct region *arena_create(uintptr_t begin_pc);
/* alignment: a power of two, 0 meaning 16; NULL when it cannot be served from chunks. */
void *arena_alloc(struct region *arena, size_t size, size_t alignment);
void arena_destroy(struct region *arena, struct thread_state *caller, uintptr_t end_pc);

/* --- dead memory: what a report says of an address (chunk.c, escape.c) --------------------- */

struct dangling_info {
    uintptr_t address;
    bool found_range; /* false: faulted chunk memory of unknown origin */
    struct dead_range range;
};
/* Async-signal-safe: does address lie in faulted region memory? */
bool dangling_lookup(uintptr_t address, struct dangling_info *info);
/* Is p (an address we own) in memory whose region has ended? */
bool chunk_address_is_dead(const void *p);
/* Recover mode, after a dangling access was reported: the page holding address becomes
 * accessible again (its contents were kept) and stays so until the scan frees its chunk.
 * Out of kernel mappings, the run of inaccessible pages from it to an accessible one does
 * (counted in recovered_runs: their other dead objects are no longer reported).  false when
 * not in recover mode or the kernel refuses even that. */
bool dangling_page_recover(uintptr_t address);

enum escape_kind { ESCAPE_ACCESS, ESCAPE_FREE };
/* Counts an escape of the object at address (dead region memory): once per object when its
 * allocation was traced, per event otherwise.  Returns the allocation's stack id (0: unknown)
 * and, through first, whether this object was seen escaping for the first time. */
uint32_t escape_note(uintptr_t address, enum escape_kind kind, bool *first);

/* --- allocation sites (stack_table.c, trace_log.c) ----------------------------------------- */

#define STACK_DEPTH_MAX 24

struct stack_record {
    uint64_t hash;
    uint32_t depth;
    int32_t marker;          /* of the region the first allocation from here was in */
    uint64_t escapes;        /* objects from this site that escaped their region */
    uint64_t allocations;    /* traced allocations from this site */
    uintptr_t pcs[STACK_DEPTH_MAX];
};

/* Returns the id of the stack (interning it), 0 when the table is full or depth is 0. */
uint32_t stack_table_intern(const uintptr_t *pcs, unsigned depth, int32_t marker);
/* NULL for id 0 or an unknown id. */
struct stack_record *stack_table_get(uint32_t id);
uint32_t stack_table_count(void);

struct trace_record {
    uintptr_t address;
    uint32_t size;     /* clamped to 4 GiB - 1 */
    uint32_t stack;
    uint32_t escaped;  /* escape kinds seen (1 << enum escape_kind): each counts once */
    uint32_t sequence; /* allocation order in the region: the newer of two at one address wins */
};

/* Appends a record to *head (allocating blocks as needed); false when metadata is exhausted. */
bool trace_log_append(struct trace_block **head, uintptr_t address, uint64_t size, uint32_t stack);
/* The record of the object containing address, or NULL. */
struct trace_record *trace_log_find(struct trace_block *head, uintptr_t address);

/* --- the scan (scan.c; the preload stops the world and names the roots) -------------------- */

enum referrer_kind {
    REFERRER_NONE = 0,
    REFERRER_STACK,      /* a thread's stack */
    REFERRER_REGISTERS,  /* a stopped thread's saved registers */
    REFERRER_MODULE,     /* .data/.bss of a module (file-backed private mapping) */
    REFERRER_ANONYMOUS,  /* an anonymous mapping: the heap, mmap'd buffers, thread-local data */
    REFERRER_SHARED,     /* anonymous shared memory */
    REFERRER_REGION,     /* a live region chunk */
    REFERRER_HEAP,       /* an anonymous mapping that is jemalloc's heap (named after the scan) */
};

/* What the scanner is reading now, so a mark can say where its pointer was found. */
struct scan_source {
    enum referrer_kind kind;
    uint32_t thread_number; /* stacks and registers: the thread's number, or tid */
    const char *name;       /* mapping name (module path), may be NULL */
};

/* The first chunks a scan kept, one referrer each: the dangling-pointer finder's answer. */
#define SCAN_KEPT_MAX 64
struct scan_kept {
    uint32_t chunk;       /* head of the kept span */
    uintptr_t location;   /* where the pointer was found (0 for registers) */
    uintptr_t value;      /* the pointer */
    enum referrer_kind kind;
    uint32_t thread_number;
    char name[96];
};

/* 1. Under the core's lock, world running: returns the number of quarantined chunks
 *    (0: nothing to do). */
uint64_t scan_snapshot(void);
/* The scan's bitmaps, made on first use: false while metadata cannot be had. */
bool scan_bitmaps_ready(void);
/* 2. Marking, from any number of threads at once, world stopped or not (the caller makes sure
 *    that what it reads while the program runs is read again if written meanwhile): read
 *    [start, end) (8-byte aligned inside) as candidate pointers. */
void scan_range(uintptr_t start, uintptr_t end, const struct scan_source *source);
/* 2. World stopped: calls visit with the part of every live chunk that may hold objects, live
 *    or dead but readable: a region's current chunk up to its cursor, a spare up to its offset,
 *    any other live chunk (retired, a span, an arena's) whole, from faulted_end. */
void scan_for_each_live_range(void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data);
/* 3. World running: releases every snapshot span none of whose chunks was marked; returns
 *    chunks released. */
uint64_t scan_release_unmarked(void);
/* The last scan's chunks marked, and the referrers it remembered. */
uint64_t scan_marked_chunks(void);
unsigned scan_kept(const struct scan_kept **kept);

/* --- statistics (stats.c) ------------------------------------------------------------------ */

/* Events other than the per-thread ones; the layer above adds its own (scans, dangling
 * accesses).  Listed once: counter_fields names them for every output. */
struct core_counters {
    uint64_t chunks_mapped;
    uint64_t chunks_reused;
    uint64_t chunks_quarantined;
    uint64_t chunks_released;
    uint64_t fault_calls;
    uint64_t memory_calls; /* every mmap/munmap/mprotect/madvise/mremap on chunk memory */
    uint64_t bytes_faulted;
    uint64_t bytes_recycled;
    uint64_t scans;
    uint64_t scan_bytes;
    uint64_t scan_giveups;
    uint64_t scan_ns;
    uint64_t scan_pause_last_ns;
    uint64_t scan_pause_max_ns;
    uint64_t scan_chunks_kept_last;
    uint64_t scans_concurrent;       /* scans that read most of memory with the world running */
    uint64_t scan_concurrent_ns;     /* time spent in their concurrent phases */
    uint64_t scan_stopped_bytes;     /* bytes read with the world stopped (pages written meanwhile too) */
    uint64_t scan_threads_last;      /* marking threads of the last scan */
    uint64_t dangling_accesses;
    uint64_t fallback_allocs;
    uint64_t reserve_exhausted;
    uint64_t kernel_refusals;    /* chunk memory the kernel refused (vm.max_map_count, ENOMEM) */
    uint64_t reclaims_skipped;   /* out of chunks, with nothing quarantined since the last
                                  * fruitless scan: no scan (it could free nothing) */
    uint64_t recovered_runs;     /* recover mode out of kernel mappings: dangling accesses that
                                  * made their neighbouring dead pages accessible too */
    uint64_t ends_unprotected;   /* recover mode: dead ranges the kernel refused to protect,
                                  * left accessible with their contents */
    struct thread_counters retired; /* threads that exited, and explicit arenas */
};

extern struct core_counters core_counters;

/* The errno of the kernel's last refusal of chunk memory (0: none): the fallback's warning
 * names it (ENOMEM with the reservation not full: vm.max_map_count or commit limits). */
extern int chunk_refusal_errno;

/* The name of each uint64_t of struct thread_counters and struct core_counters, in order,
 * as the statistics JSON writes them. */
struct counter_field {
    const char *name;
    size_t offset;
};
extern const struct counter_field thread_counter_fields[];
extern const unsigned thread_counter_field_count;
extern const struct counter_field core_counter_fields[];
extern const unsigned core_counter_field_count;

static inline uint64_t counter_field_value(const void *counters, const struct counter_field *field)
{
    return __atomic_load_n((const uint64_t *)((const char *)counters + field->offset), __ATOMIC_RELAXED);
}

void stats_add(uint64_t *counter, uint64_t amount);
/* Sets *counter to value when value is larger. */
void stats_max(uint64_t *counter, uint64_t value);
/* A snapshot: live threads' counters added to the retired ones, and self's open regions
 * (the regions open at exit) counted so far. */
void stats_sum(struct core_counters *out, const struct thread_state *self);
uint64_t quarantine_bytes(void);
/* cycle_counter() units to seconds, calibrated over the life of the process. */
double seconds_of_cycles(uint64_t cycles);

/* --- metadata: the core's own memory, never from malloc (metadata.c) ---------------------- */

void *metadata_map(size_t bytes);
/* Bytes of metadata address space handed out so far (statistics: "metadata_bytes"). */
size_t metadata_taken_bytes(void);
/* Memory that is metadata without coming from metadata_map (the library's own .data/.bss). */
void metadata_register(const void *start, size_t bytes);
/* Zeroed metadata of any size up to 64 GiB (a power-of-two class); NULL when exhausted.
 * Freed with the size it was asked for. */
void *metadata_alloc(size_t bytes);
void metadata_free(void *object, size_t bytes);
/* The ranges the scan must skip; at most max (METADATA_RANGES_MAX holds them all). */
unsigned metadata_ranges(uintptr_t (*ranges)[2], unsigned max);

#endif
