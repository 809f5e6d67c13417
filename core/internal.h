/*
 * internal.h — the core's data structures and its fast paths.
 *
 * Layer: core (the allocator engine; no interposition, no TLS of its own: the preload binds
 * threads to their thread_state and passes it in).
 *
 * Address space.  One large PROT_NONE reservation, aligned to the chunk size, is cut into
 * chunks; "is this pointer ours, and which chunk?" is one subtraction, one compare and one
 * shift.  Per-chunk metadata lives in a parallel array (core.chunks) in arenashim's own
 * mmap-backed memory, never in the chunk itself, so it survives the chunk being faulted.
 *
 * Chunk lifecycle (as in Go's runtime/arena.go):
 *
 *     available --acquire--> live --region end--> quarantined --scan finds no pointer--> available
 *                  (mprotect RW)      (faulted: discarded, PROT_NONE)
 *
 * A live chunk is owned by one region at a time, or sits in its thread's spare list between
 * regions.  Regions use a chunk front to back, so its faulted part is always a prefix
 * (faulted_end); the region that owns it started at owner_start.  Requests larger than a
 * quarter chunk get a span of whole chunks; the first chunk of a span carries its metadata.
 *
 * Objects.  16-byte aligned, each preceded by a 16-byte object_header holding its size.
 * free() of a region object does nothing unless it was the region's last allocation, which
 * is undone.  Every byte below a region's high-water mark may have been handed out, so
 * region end faults everything up to it, rounded to whole pages.
 */
#ifndef ARENASHIM_CORE_INTERNAL_H
#define ARENASHIM_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lock.h"
#include "options.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define PAGE_SIZE_BYTES ((size_t)4096)
#define OBJECT_ALIGN ((size_t)16)
#define OBJECT_HEADER_SIZE ((size_t)16)
#define THREAD_SPARE_CHUNKS 4

/* Marker ids below zero are the fixed kinds; zero and up index the marker table. */
#define MARKER_API (-1)
#define MARKER_ARENA (-2)
#define MARKER_TABLE_MAX 256

enum chunk_state {
    CHUNK_AVAILABLE = 0, /* in the bitmap; PROT_NONE, no physical pages */
    CHUNK_LIVE,          /* readable-writable; owned by a region, an arena or a thread's spares */
    CHUNK_QUARANTINED,   /* faulted; waits for a scan */
};

/* 16 bytes so objects stay 16-byte aligned; only the size is kept (the region of a dead
 * object is found from its chunk's dead-range records, which survive the faulting). */
struct object_header {
    uint64_t size; /* the size asked for */
    uint64_t unused;
};

struct trace_block;

/* One faulted (or, with partial_reuse, retired) range of a chunk, for the dangling report. */
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

struct chunk_meta {
    uint8_t state;        /* enum chunk_state */
    uint8_t ever_used;    /* distinguishes chunks_mapped from chunks_reused */
    uint32_t span_chunks; /* chunks in this span (head); 0 in span tails */
    uint32_t span_head;   /* index of the span's head (== own index for heads) */
    uint32_t next;        /* list link: region chunk list or quarantine, index + 1, 0 = end */
    uint32_t owner_start; /* offset at which the owning region began using it */
    uint32_t faulted_end; /* bytes [0, faulted_end) are faulted */
    uint32_t retired_end; /* bytes [0, retired_end) belong to ended regions (partial_reuse) */
    uint32_t populated_end; /* pages below were populated ahead of use (MADV_POPULATE_WRITE) */
    uint8_t resident_dead;  /* some faulted pages were only protected, not discarded */
    struct dead_range *dead_ranges;
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

struct region {
    /* Hot: every allocation touches these, and nothing else. */
    char *cursor;
    char *limit;
    char *last_object; /* header of the last allocation, while undoing it is still possible */
    char *high_water;  /* max cursor before an undo: bytes below it may have been handed out */
    uint64_t allocs;
    uint64_t bytes;
    /* Cold. */
    uint64_t id;
    struct region *outer;
    struct thread_state *thread; /* NULL for an explicit arena */
    uint32_t current_chunk;      /* index + 1; 0 before the first allocation */
    uint32_t chunk_list;         /* retired chunks and spans, index + 1, linked by chunk_meta.next */
    char *dirty_end;             /* recycled pages of earlier regions end here (see spare_chunk) */
    int32_t marker;
    unsigned depth;
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
    uint32_t number;
    pid_t tid;
    bool alive;
    struct thread_state *next_all;
    struct thread_state *next_free;
};

struct marker_stats {
    char spec[256];
    bool resolved;
    bool refused;
    char reason[160];
    uint64_t regions;
    uint64_t bytes;
    uint64_t objects;
    uint64_t peak_bytes;   /* the largest region */
    uint64_t cycles;       /* time inside, in cycle_counter() units */
    uint64_t escapes;      /* objects (or, untraced, faulting pages) that escaped */
    uint64_t escaped_frees;
};

struct core_counters {
    uint64_t chunks_mapped;
    uint64_t chunks_reused;
    uint64_t chunks_quarantined;
    uint64_t chunks_released;
    uint64_t fault_calls;
    uint64_t bytes_faulted;
    uint64_t bytes_recycled;
    uint64_t scans;
    uint64_t scan_bytes;
    uint64_t dangling_accesses;
    uint64_t fallback_allocs;
    uint64_t reserve_exhausted;
    uint64_t scan_giveups;
    uint64_t scan_ns;
    uint64_t scan_pause_last_ns;
    uint64_t scan_pause_max_ns;
    uint64_t scan_chunks_kept_last;
    struct thread_counters retired; /* threads that exited, and explicit arenas */
};

struct core {
    /* Read on every free(): keep them together and rarely written. */
    uintptr_t base;
    uintptr_t size;
    size_t small_max;
    unsigned chunk_shift;
    size_t chunk_size;
    uint32_t chunk_count;
    struct chunk_meta *chunks;
    uint64_t *taken; /* bitmap: 1 = chunk live or quarantined, 0 = available */
    uint32_t search_hint;
    uint32_t quarantine_head;
    uint64_t quarantine_bytes;
    spin_lock lock; /* chunk bitmap, quarantine, dead-range lists */
    spin_lock threads_lock;
    struct thread_state *all_threads;
    struct thread_state *free_threads;
    uint32_t next_thread_number;
    uint64_t next_region_id;
    struct options options;
    bool measure_time; /* stats requested: regions record cycle counts for "time inside" */
    struct core_counters counters;
    unsigned marker_count;
    struct marker_stats markers[MARKER_TABLE_MAX];
    /* Set by the preload: runs a scan to free address space; true if anything came free. */
    bool (*reclaim)(void);
    /* Set by the preload: appends fields that need symbolisation to the statistics. */
    size_t (*json_extra)(char *buf, size_t len);
    size_t (*text_extra)(char *buf, size_t len);
    /* Set by the preload: the calling thread's record, or NULL. */
    struct thread_state *(*current_thread)(void);
    /* Set by the preload: a free() after its region ended (verbose reports it). */
    void (*escape_hook)(uintptr_t address);
    uint64_t start_cycles, start_ns;
    bool heap_only; /* no chunk space: regions open, but the heap serves them */
    bool initialized;
};

extern struct core core;

/* --- addresses ----------------------------------------------------------------------- */

static inline bool core_owns(const void *p)
{
    return (uintptr_t)p - core.base < core.size;
}

static inline uint32_t chunk_index_of(const void *p)
{
    return (uint32_t)(((uintptr_t)p - core.base) >> core.chunk_shift);
}

static inline char *chunk_address(uint32_t index)
{
    return (char *)(core.base + ((uintptr_t)index << core.chunk_shift));
}

/* A cheap monotonic counter for "time inside a region": the TSC on x86-64, converted to
 * seconds at exit (stats.c calibrates it against CLOCK_MONOTONIC). */
static inline uint64_t cycle_counter(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

/* A counter one thread writes and others read (statistics): relaxed atomic load and store,
 * which compile to a plain add on x86-64 — no lock prefix — yet are not a data race. */
static inline void counter_add(uint64_t *counter, uint64_t amount)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + amount, __ATOMIC_RELAXED);
}

static inline uintptr_t align_up(uintptr_t x, uintptr_t alignment)
{
    return (x + alignment - 1) & ~(alignment - 1);
}

/* --- allocation fast path --------------------------------------------------------------- */

void *region_alloc_slow(struct region *region, size_t size, size_t alignment);

/* Bump allocation; NULL only when the reservation is exhausted or the request cannot be
 * served by a region at all (the caller then falls back to the heap). */
/* The bump itself, with no call: NULL when the request does not fit the current chunk (the
 * caller then takes the slow path).  Kept call-free so that callers' fast paths need no
 * stack frame. */
static inline void *region_try_alloc(struct region *region, size_t size)
{
    size_t need = ((size + OBJECT_ALIGN - 1) & ~(OBJECT_ALIGN - 1)) + OBJECT_HEADER_SIZE;
    char *header = region->cursor;
    if (unlikely(size > core.small_max || (size_t)(region->limit - header) < need))
        return NULL;
    region->cursor = header + need;
    region->last_object = header;
    counter_add(&region->allocs, 1);
    counter_add(&region->bytes, size);
    ((struct object_header *)header)->size = size;
    return header + OBJECT_HEADER_SIZE;
}

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

void region_free_slow(struct thread_state *thread, void *p);

/* free() of a region object: undo the bump when it was the innermost region's last object. */
static inline void region_free(struct thread_state *thread, void *p)
{
    struct region *region = thread ? thread->innermost : NULL;
    if (region && region->last_object == (char *)p - OBJECT_HEADER_SIZE) {
        if (region->high_water < region->cursor)
            region->high_water = region->cursor;
        region->cursor = region->last_object;
        region->last_object = NULL;
        counter_add(&thread->counters.frees_undone, 1);
        return;
    }
    region_free_slow(thread, p);
}

/* Region numbers: unique and, per thread, increasing; taken from the global counter in
 * blocks so opening a region needs no atomic operation. */
#define REGION_ID_BLOCK 1024

static inline uint64_t region_id_next(struct thread_state *thread)
{
    if (thread == NULL)
        return __atomic_add_fetch(&core.next_region_id, 1, __ATOMIC_RELAXED);
    if (unlikely(thread->next_region_id == thread->region_id_limit)) {
        thread->next_region_id = __atomic_fetch_add(&core.next_region_id, REGION_ID_BLOCK,
                                                    __ATOMIC_RELAXED) + 1;
        thread->region_id_limit = thread->next_region_id + REGION_ID_BLOCK;
    }
    return thread->next_region_id++;
}

/* Sets every field of a region record for a new region of thread (NULL for an arena).
 * Inline and call-free: the hooks' fast path, compiled with general registers only, opens
 * regions with it too. */
static inline void region_init(struct region *region, struct thread_state *thread, int32_t marker,
                               uintptr_t begin_pc)
{
    region->cursor = NULL;
    region->limit = NULL;
    region->last_object = NULL;
    region->high_water = NULL;
    __atomic_store_n(&region->allocs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&region->bytes, 0, __ATOMIC_RELAXED);
    region->id = region_id_next(thread);
    region->outer = NULL;
    region->thread = thread;
    region->current_chunk = 0;
    region->chunk_list = 0;
    region->dirty_end = NULL;
    region->marker = marker;
    region->depth = 0;
    region->begin_pc = begin_pc;
    region->begin_cycles = core.measure_time ? cycle_counter() : 0;
    region->begin_stack = 0;
    region->end_stack = 0;
    region->trace = NULL;
}

/* Makes region the thread's innermost; returns the new depth. */
static inline unsigned region_push(struct thread_state *thread, struct region *region)
{
    region->outer = thread->innermost;
    region->depth = thread->depth + 1;
    counter_add(&thread->counters.regions_begun, 1);
    thread->depth = region->depth;
    __atomic_store_n(&thread->innermost, region, __ATOMIC_RELEASE);
    return region->depth;
}

/* --- core.c ------------------------------------------------------------------------------ */

/* Reserves the chunk space and maps its tables.  false: an error the program must stop on
 * (an explicit reserve= that cannot be met), described in message.  true with
 * core.heap_only set: no useful reservation fits the process's limits, so regions serve
 * nothing and every allocation goes to the heap; message says why, for one warning. */
bool core_init(const struct options *options, char *message, size_t message_len);
void core_fork_child(struct thread_state *survivor);
void core_lock_all(void);
void core_unlock_all(void);

/* --- thread_state.c ---------------------------------------------------------------------- */

struct thread_state *thread_state_create(pid_t tid);
void thread_state_exit(struct thread_state *thread);

/* --- region.c ---------------------------------------------------------------------------- */

/* Opens a region on the thread; returns the new depth. */
unsigned region_begin(struct thread_state *thread, int32_t marker, uintptr_t begin_pc);
/* Ends the innermost region; false when none is open. */
bool region_end(struct thread_state *thread, uintptr_t end_pc);
/* Ends any region or arena: faults its memory, quarantines its whole chunks, hands the
 * tail of its last chunk to spare_owner (may be NULL).  Frees the region struct. */
void region_finish(struct region *region, struct thread_state *spare_owner, uintptr_t end_pc);
struct region *region_create(struct thread_state *thread, int32_t marker, uintptr_t begin_pc);
/* Bare region records, for callers that open regions themselves (the hook fast path). */
struct region *region_record_new(void);
void region_record_free(struct region *region);
/* Grows or shrinks p in place when it is the region's last object; false otherwise. */
bool region_resize_in_place(struct region *region, void *p, size_t new_size);
/* calloc support: zeroes the part of [p, p+size) that may hold old bytes. */
void region_clear_reused(struct region *region, void *p, size_t size);
void *region_alloc_aligned(struct region *region, size_t size, size_t alignment);
void region_fork_child(void);
void region_lock_pools(void);
void region_unlock_pools(void);

/* --- chunk.c ----------------------------------------------------------------------------- */

/* Takes count contiguous available chunks and makes them accessible; false when the
 * reservation has no such run or the kernel refuses the mapping. */
bool chunk_acquire(uint32_t count, uint32_t *index);
/* chunk_acquire, and when the reservation is full, one scan to reclaim and a second try. */
bool chunk_acquire_or_reclaim(uint32_t count, uint32_t *index);
/* Discards [start, end) (page aligned) and makes it PROT_NONE. */
void chunk_fault_range(uintptr_t start, uintptr_t end);
/* Moves the physical pages of [from, from + len) to [to, to + len) and makes the old range
 * fault: the old addresses die as with chunk_fault_range, but the next region reuses the
 * pages instead of faulting in fresh ones.  false (nothing changed) when the kernel cannot. */
bool chunk_recycle_pages(uintptr_t from, size_t len, uintptr_t to);
/* Moves the physical pages of [from, from + len) to [to, to + len), leaving the old range
 * mapped and empty (the caller faults it); the destination keeps the source's protection. */
bool chunk_move_pages(uintptr_t from, size_t len, uintptr_t to);
/* Makes [start, end) PROT_NONE without discarding it (one cheap system call; the pages are
 * given back when the chunk is quarantined).  false when the kernel refuses. */
bool chunk_protect_range(uintptr_t start, uintptr_t end);
/* Faults in [start, end) in one system call, ahead of use; false when unsupported. */
bool chunk_populate(uintptr_t start, uintptr_t end);
void chunk_record_dead_range(uint32_t head, const struct dead_range *range);
void chunk_quarantine(uint32_t head);
/* Returns a quarantined chunk or span to the available set (after a scan). */
void chunk_release(uint32_t head);
void chunk_fork_child(void);
void chunk_lock_pools(void);
void chunk_unlock_pools(void);

struct dangling_info {
    uintptr_t address;
    bool found_range; /* false: faulted chunk memory of unknown origin */
    struct dead_range range;
};
/* Async-signal-safe: does address lie in faulted region memory? */
bool dangling_lookup(uintptr_t address, struct dangling_info *info);
/* Is p (an address we own) in memory whose region has ended? */
bool chunk_address_is_dead(const void *p);

enum escape_kind { ESCAPE_ACCESS, ESCAPE_FREE };
/* Counts an escape of the object at address (dead region memory): once per object when its
 * allocation was traced, per event otherwise.  Returns the allocation's stack id (0: unknown)
 * and, through first, whether this object was seen escaping for the first time. */
uint32_t escape_note(uintptr_t address, enum escape_kind kind, bool *first);

/* --- address_space.c ------------------------------------------------------------------------ */

/* What RLIMIT_AS still lets the process map; SIZE_MAX when unlimited. */
size_t address_space_left(void);
/* Reserves up to *bytes (PROT_NONE, MAP_NORESERVE, aligned to alignment, a power of two),
 * halving on refusal down to minimum; *bytes becomes what was reserved.  NULL when not even
 * minimum could be had. */
void *address_space_reserve(size_t *bytes, size_t minimum, size_t alignment);

/* --- metadata.c ---------------------------------------------------------------------------- */

void *metadata_map(size_t bytes);
/* Memory that is metadata without coming from metadata_map (the library's own .data/.bss). */
void metadata_register(const void *start, size_t bytes);
struct fixed_pool {
    spin_lock lock;
    size_t object_size;
    void *free_list;
    char *block_cursor;
    char *block_limit;
};
#define FIXED_POOL_INIT(type) { SPIN_LOCK_INIT, sizeof(type), NULL, NULL, NULL }
void *fixed_pool_alloc(struct fixed_pool *pool); /* zeroed */
void fixed_pool_free(struct fixed_pool *pool, void *object);
/* Zeroed metadata of any size up to 64 GiB (a power-of-two class); NULL when exhausted.
 * Freed with the size it was asked for. */
void *metadata_alloc(size_t bytes);
void metadata_free(void *object, size_t bytes);
void metadata_lock_pools(void);
void metadata_unlock_pools(void);
unsigned metadata_ranges(uintptr_t (*ranges)[2], unsigned max);
void metadata_fork_child(void);

/* --- stats.c ------------------------------------------------------------------------------- */

void stats_add(uint64_t *counter, uint64_t amount);
void stats_fold_thread(const struct thread_counters *from);
void stats_sum(struct core_counters *out);
size_t stats_format_json(char *buf, size_t len);
size_t stats_format_text(char *buf, size_t len);
const char *marker_name(int32_t marker);

#endif
