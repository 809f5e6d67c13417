/*
 * internal.h — the core's private data structures and its files' internal interfaces.
 *
 * Layer: core, private: included by the core's sources and unit tests, never by the preload
 * (which sees core/include/core.h).
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
 * Per-chunk metadata lives in a parallel array (core.chunks) in arenashim's own mmap-backed
 * memory, never in the chunk itself, so it survives the chunk being faulted.
 *
 * Objects.  free() of a region object does nothing unless it was the region's last
 * allocation, which is undone.  Every byte below a region's high-water mark may have been
 * handed out, so region end faults everything up to it, rounded to whole pages.
 */
#ifndef ARENASHIM_CORE_INTERNAL_H
#define ARENASHIM_CORE_INTERNAL_H

#include "core.h"

enum chunk_state {
    CHUNK_AVAILABLE = 0, /* in the bitmap; PROT_NONE, no physical pages */
    CHUNK_LIVE,          /* readable-writable; owned by a region, an arena or a thread's spares */
    CHUNK_QUARANTINED,   /* faulted; waits for a scan */
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
    uint32_t populated_end; /* pages below are present: touched, populated ahead, or moved here */
    /* Nothing at or past handed_out_end was handed out since the chunk was taken: what a scan
     * reads of a live chunk that it finds in no region and no spare (an arena's, a retired one,
     * or one whose thread was stopped midway through handing it on).  Pages moved in from a
     * done chunk hold that chunk's old words, which point at its own, quarantined, address. */
    uint32_t handed_out_end;
    uint8_t resident_dead;  /* some faulted pages were only protected, not discarded */
    struct dead_range *dead_ranges;
};

/* The core's mutable state; core_config (core.h) holds what is fixed at start-up. */
struct core {
    struct chunk_meta *chunks;
    uint64_t *taken; /* bitmap: 1 = chunk live or quarantined, 0 = available */
    uint32_t search_hint;
    uint32_t quarantine_head;
    uint64_t quarantine_bytes;
    /* After a scan that freed no chunk space (chunk_acquire_or_reclaim): the quarantine then
     * (0: none), the attempts skipped since, and how many to skip before trying anyway. */
    uint64_t quarantine_at_fruitless_scan;
    uint64_t skipped_since_fruitless_scan;
    uint64_t skips_before_retry;
    spin_lock lock; /* chunk bitmap, quarantine, dead-range lists */
    spin_lock threads_lock;
    struct thread_state *all_threads;
    struct thread_state *free_threads;
    uint32_t next_thread_number;
    uint64_t next_region_id;
    bool (*reclaim)(void); /* a scan to free chunk space (core_set_reclaim) */
    const struct core_observer *observer; /* core_set_observer; NULL when none */
    uint64_t start_cycles, start_ns;
};

extern struct core core;

static inline uint32_t chunk_index_of(const void *p)
{
    return (uint32_t)(((uintptr_t)p - core_config.base) >> core_config.chunk_shift);
}

/* --- region.c ------------------------------------------------------------------------------ */

/* Ends any region or arena: faults its memory, quarantines its whole chunks, hands the
 * tail of its last chunk to spare_owner (may be NULL).  Frees the region record. */
void region_finish(struct region *region, struct thread_state *spare_owner, uintptr_t end_pc);
struct region *region_create(struct thread_state *thread, int32_t marker, uintptr_t begin_pc);
void region_fork_child(void);
void region_lock_pools(void);
void region_unlock_pools(void);

/* --- chunk.c ------------------------------------------------------------------------------- */

/* Takes count contiguous available chunks and makes them accessible; false when the
 * reservation has no such run or the kernel refuses the mapping. */
bool chunk_acquire(uint32_t count, uint32_t *index);
/* chunk_acquire, and when the reservation is full, one scan to reclaim and a second try. */
bool chunk_acquire_or_reclaim(uint32_t count, uint32_t *index);
void chunk_record_dead_range(uint32_t head, const struct dead_range *range);
void chunk_quarantine(uint32_t head);
/* Returns a quarantined chunk or span to the available set (after a scan). */
void chunk_release(uint32_t head);
void chunk_fork_child(void);
void chunk_lock_pools(void);
void chunk_unlock_pools(void);

/* --- pages.c: every system call on the core's memory -------------------------------------- */

/* What RLIMIT_AS still lets the process map; SIZE_MAX when unlimited. */
size_t address_space_left(void);
/* Reserves up to *bytes (PROT_NONE, MAP_NORESERVE, aligned to alignment, a power of two),
 * halving on refusal down to minimum; *bytes becomes what was reserved.  NULL when not even
 * minimum could be had. */
void *address_space_reserve(size_t *bytes, size_t minimum, size_t alignment);
/* Gives a reservation back (start-up failures only). */
void address_space_release(void *start, size_t bytes);
/* Makes reserved pages readable-writable (chunks, metadata); false when the kernel refuses. */
bool pages_make_accessible(uintptr_t start, size_t bytes);
/* Discards [start, end) (page aligned) and makes it PROT_NONE (recover mode: only
 * PROT_NONE, contents kept).  Never fails silently: when the kernel refuses the mapping the
 * pages are at least discarded. */
void chunk_fault_range(uintptr_t start, uintptr_t end);
/* Discards [start, end) and makes it PROT_NONE whatever the mode (a span whose recover-mode
 * contents are no longer needed). */
void pages_discard(uintptr_t start, uintptr_t end);
/* Moves the physical pages of [from, from + len) to [to, to + len), leaving the old range
 * mapped and empty (the caller faults it); the destination keeps the source's protection. */
bool chunk_move_pages(uintptr_t from, size_t len, uintptr_t to);
/* Makes [start, end) PROT_NONE without discarding it (one cheap system call; the pages are
 * given back when the chunk is quarantined).  false when the kernel refuses. */
bool chunk_protect_range(uintptr_t start, uintptr_t end);
/* Faults in [start, end) in one system call, ahead of use; false when unsupported. */
bool chunk_populate(uintptr_t start, uintptr_t end);
/* Asks for transparent huge pages on a chunk just made accessible, when core_config says so. */
void chunk_prefer_huge_pages(uintptr_t start, size_t bytes);
/* Start-up: which of the calls above the kernel has (core_config.kernel_*); none when not
 * allowed (kernel_features=none). */
void pages_probe_kernel(bool allowed);

/* --- escape.c ------------------------------------------------------------------------------ */

void escape_fork_child(void);

/* --- metadata.c ---------------------------------------------------------------------------- */

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
void metadata_fork_child(void);
void metadata_lock_pools(void);
void metadata_unlock_pools(void);

/* --- stats.c ------------------------------------------------------------------------------- */

void stats_fold_thread(const struct thread_counters *from);

/* --- stack_table.c, trace_log.c ------------------------------------------------------------- */

void stack_table_fork_child(void);

#endif
