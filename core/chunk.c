/*
 * chunk.c — the chunk reservation and each chunk's state.
 *
 * Layer: core.  Owns the address space reserved at start-up, the bitmap of available chunks,
 * the quarantine list and the dead-range records that let the fault handler say which
 * region a faulted address belonged to.  Implements the chunk lifecycle of internal.h:
 * acquire (available -> live), fault and quarantine (live -> quarantined) and release
 * (quarantined -> available, after a scan).
 *
 * The bitmap and lists are under core.lock; system calls are made outside it.  Faulting is
 * one mmap(MAP_FIXED, PROT_NONE, MAP_NORESERVE) per contiguous range: the kernel drops the
 * pages and the new mapping has the reservation's own flags, so it merges with faulted and
 * never-used neighbours and the process does not run out of mappings (vm.max_map_count).
 */
#include "internal.h"
#include "stack_table.h"
#include "trace_log.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static struct fixed_pool dead_range_pool = FIXED_POOL_INIT(struct dead_range);

static inline bool bit_test(const uint64_t *bits, uint32_t i)
{
    return (bits[i >> 6] >> (i & 63)) & 1;
}

static inline void bit_set(uint64_t *bits, uint32_t i)
{
    bits[i >> 6] |= (uint64_t)1 << (i & 63);
}

static inline void bit_clear(uint64_t *bits, uint32_t i)
{
    bits[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* First run of count available chunks at or after from; UINT32_MAX if none. */
static uint32_t find_available_run(uint32_t from, uint32_t count)
{
    uint32_t run_start = from, run_length = 0;
    for (uint32_t i = from; i < core.chunk_count;) {
        uint64_t word = ~core.taken[i >> 6] >> (i & 63);
        if (run_length == 0 && word == 0) {
            i = (i | 63) + 1; /* nothing available in the rest of this word */
            continue;
        }
        if (word & 1) {
            if (run_length++ == 0)
                run_start = i;
            if (run_length == count)
                return run_start;
        } else {
            run_length = 0;
        }
        i++;
    }
    return UINT32_MAX;
}

bool chunk_acquire(uint32_t count, uint32_t *index)
{
    spin_lock_acquire(&core.lock);
    uint32_t start = find_available_run(core.search_hint, count);
    if (start == UINT32_MAX && core.search_hint != 0)
        start = find_available_run(0, count);
    if (start == UINT32_MAX) {
        spin_lock_release(&core.lock);
        return false;
    }
    for (uint32_t i = start; i < start + count; i++)
        bit_set(core.taken, i);
    if (start == core.search_hint && count == 1)
        core.search_hint = start + 1;
    spin_lock_release(&core.lock);

    char *address = chunk_address(start);
    size_t bytes = (size_t)count << core.chunk_shift;
    if (mprotect(address, bytes, PROT_READ | PROT_WRITE) != 0) {
        spin_lock_acquire(&core.lock);
        for (uint32_t i = start; i < start + count; i++)
            bit_clear(core.taken, i);
        spin_lock_release(&core.lock);
        return false;
    }

    uint64_t fresh = 0;
    for (uint32_t i = start; i < start + count; i++) {
        struct chunk_meta *meta = &core.chunks[i];
        fresh += !meta->ever_used;
        meta->ever_used = 1;
        meta->span_chunks = i == start ? count : 0;
        meta->span_head = start;
        meta->next = 0;
        meta->owner_start = 0;
        meta->populated_end = 0;
        meta->resident_dead = 0;
        __atomic_store_n(&meta->faulted_end, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&meta->retired_end, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&meta->state, CHUNK_LIVE, __ATOMIC_RELEASE);
    }
    stats_add(&core.counters.chunks_mapped, fresh);
    stats_add(&core.counters.chunks_reused, count - fresh);
    *index = start;
    return true;
}

bool chunk_acquire_or_reclaim(uint32_t count, uint32_t *index)
{
    if (core.heap_only)
        return false; /* said once at start-up; no scan can make chunk space appear */
    if (chunk_acquire(count, index))
        return true;
    if (core.reclaim && core.reclaim() && chunk_acquire(count, index))
        return true;
    stats_add(&core.counters.reserve_exhausted, 1);
    return false;
}

void chunk_fault_range(uintptr_t start, uintptr_t end)
{
    if (end <= start)
        return;
    int result;
    if (core.options.on_dangling == ON_DANGLING_RECOVER) {
        /* Recover mode keeps the contents: a dangling access is reported, then the page is
         * made accessible again and the program reads what it would have read. */
        result = mprotect((void *)start, end - start, PROT_NONE);
    } else {
        void *p = mmap((void *)start, end - start, PROT_NONE,
                       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        result = p == MAP_FAILED ? -1 : 0;
    }
    if (result != 0) {
        /* Out of mappings: at least drop the contents so a dangling read sees zeroes. */
        madvise((void *)start, end - start, MADV_DONTNEED);
    }
    stats_add(&core.counters.fault_calls, 1);
    stats_add(&core.counters.bytes_faulted, end - start);
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static bool recycling_unsupported;

bool chunk_move_pages(uintptr_t from, size_t len, uintptr_t to)
{
    if (recycling_unsupported || len == 0)
        return false;
    /* MREMAP_DONTUNMAP (Linux 5.7) moves the page tables and leaves the old range mapped and
     * empty: no hole opens at the old addresses. */
    void *moved = mremap((void *)from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
                         (void *)to);
    if (moved != MAP_FAILED)
        return true;
    int error = errno;
    /* The kernel unmaps the destination before some failures: map it back at once (it was
     * untouched, so nothing is lost).  EEXIST means it was never unmapped. */
    void *p = mmap((void *)to, len, PROT_READ | PROT_WRITE,
                   MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED && errno != EEXIST)
        madvise((void *)to, len, MADV_DONTNEED);
    if (error == EINVAL)
        recycling_unsupported = true;
    return false;
}

bool chunk_recycle_pages(uintptr_t from, size_t len, uintptr_t to)
{
    if (!chunk_move_pages(from, len, to))
        return false;
    /* The emptied old range gets a fresh PROT_NONE mapping with the reservation's flags, so it
     * merges with the faulted part before it (mprotect would leave a separate mapping behind,
     * one per region, until vm.max_map_count runs out). */
    void *p = mmap((void *)from, len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        mprotect((void *)from, len, PROT_NONE);
    stats_add(&core.counters.fault_calls, 1);
    stats_add(&core.counters.bytes_faulted, len);
    stats_add(&core.counters.bytes_recycled, len);
    return true;
}

bool chunk_protect_range(uintptr_t start, uintptr_t end)
{
    if (mprotect((void *)start, end - start, PROT_NONE) != 0)
        return false;
    stats_add(&core.counters.fault_calls, 1);
    stats_add(&core.counters.bytes_faulted, end - start);
    return true;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static bool populate_unsupported;

bool chunk_populate(uintptr_t start, uintptr_t end)
{
    if (populate_unsupported || end <= start)
        return false;
    if (madvise((void *)start, end - start, MADV_POPULATE_WRITE) != 0) {
        if (errno == EINVAL)
            populate_unsupported = true; /* Linux before 5.14 */
        return false;
    }
    return true;
}

void chunk_record_dead_range(uint32_t head, const struct dead_range *range)
{
    struct dead_range *record = fixed_pool_alloc(&dead_range_pool);
    if (record == NULL)
        return; /* the report then says the region is unknown; safety is unaffected */
    *record = *range;
    spin_lock_acquire(&core.lock);
    record->next = core.chunks[head].dead_ranges;
    __atomic_store_n(&core.chunks[head].dead_ranges, record, __ATOMIC_RELEASE);
    spin_lock_release(&core.lock);
}

void chunk_quarantine(uint32_t head)
{
    struct chunk_meta *meta = &core.chunks[head];
    uint32_t count = meta->span_chunks;
    spin_lock_acquire(&core.lock);
    for (uint32_t i = head; i < head + count; i++) {
        __atomic_store_n(&core.chunks[i].state, CHUNK_QUARANTINED, __ATOMIC_RELAXED);
        __atomic_store_n(&core.chunks[i].faulted_end, (uint32_t)core.chunk_size, __ATOMIC_RELAXED);
    }
    meta->next = core.quarantine_head;
    core.quarantine_head = head + 1;
    __atomic_add_fetch(&core.quarantine_bytes, (uint64_t)count << core.chunk_shift, __ATOMIC_RELAXED);
    stats_add(&core.counters.chunks_quarantined, count);
    spin_lock_release(&core.lock);
}

void chunk_release(uint32_t head)
{
    struct chunk_meta *meta = &core.chunks[head];
    uint32_t count = meta->span_chunks;
    struct dead_range *ranges;
    spin_lock_acquire(&core.lock);
    ranges = meta->dead_ranges;
    meta->dead_ranges = NULL;
    for (uint32_t i = head; i < head + count; i++) {
        __atomic_store_n(&core.chunks[i].state, CHUNK_AVAILABLE, __ATOMIC_RELAXED);
        bit_clear(core.taken, i);
    }
    if (head < core.search_hint)
        core.search_hint = head;
    __atomic_sub_fetch(&core.quarantine_bytes, (uint64_t)count << core.chunk_shift, __ATOMIC_RELAXED);
    stats_add(&core.counters.chunks_released, count);
    spin_lock_release(&core.lock);
    while (ranges) {
        struct dead_range *next = ranges->next;
        trace_log_release(ranges->trace);
        fixed_pool_free(&dead_range_pool, ranges);
        ranges = next;
    }
}

static const struct chunk_meta *span_head_of(uint32_t index)
{
    return &core.chunks[core.chunks[index].span_head];
}

bool chunk_address_is_dead(const void *p)
{
    uint32_t index = chunk_index_of(p);
    const struct chunk_meta *meta = &core.chunks[index];
    if (__atomic_load_n(&meta->state, __ATOMIC_ACQUIRE) != CHUNK_LIVE)
        return true;
    uintptr_t offset = ((uintptr_t)p - core.base) & (core.chunk_size - 1);
    return offset < __atomic_load_n(&meta->faulted_end, __ATOMIC_RELAXED) ||
           offset < __atomic_load_n(&meta->retired_end, __ATOMIC_RELAXED);
}

bool dangling_lookup(uintptr_t address, struct dangling_info *info)
{
    memset(info, 0, sizeof *info);
    info->address = address;
    if (!core.initialized || address - core.base >= core.size)
        return false;
    uint32_t index = chunk_index_of((void *)address);
    if (!core.chunks[index].ever_used)
        return false; /* never handed out: a wild pointer, not a dangling one */
    const struct chunk_meta *head = span_head_of(index);
    for (const struct dead_range *r = __atomic_load_n(&head->dead_ranges, __ATOMIC_ACQUIRE); r;
         r = r->next) {
        if (address >= r->start && address < r->end) {
            info->found_range = true;
            info->range = *r;
            info->range.next = NULL;
            return true;
        }
    }
    /* Faulted space with no record (a never-used tail retired with its chunk). */
    return __atomic_load_n(&core.chunks[index].state, __ATOMIC_ACQUIRE) == CHUNK_QUARANTINED ||
           chunk_address_is_dead((void *)address);
}

/* Objects seen escaping without a trace record, keyed by (address, region): a program that
 * frees or touches one dead object a thousand times has one escape.  Bounded: once full,
 * new escapes are counted without deduplication. */
#define ESCAPE_SET_SLOTS 16384

static struct {
    spin_lock lock;
    unsigned used;
    uint64_t (*slots)[2];
} escape_set;

static bool escape_first_seen(uintptr_t address, uint64_t region_id)
{
    bool first = true;
    spin_lock_acquire(&escape_set.lock);
    if (escape_set.slots == NULL)
        escape_set.slots = metadata_map(sizeof(uint64_t[2]) * ESCAPE_SET_SLOTS);
    if (escape_set.slots != NULL) {
        uint64_t hash = (address ^ (region_id * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
        for (uint64_t i = 0, slot = (hash >> 32) % ESCAPE_SET_SLOTS; i < ESCAPE_SET_SLOTS;
             i++, slot = (slot + 1) % ESCAPE_SET_SLOTS) {
            uint64_t *entry = escape_set.slots[slot];
            if (entry[0] == address && entry[1] == region_id) {
                first = false;
                break;
            }
            if (entry[0] == 0) {
                if (escape_set.used < ESCAPE_SET_SLOTS * 3 / 4) {
                    entry[0] = address;
                    entry[1] = region_id;
                    escape_set.used++;
                }
                break;
            }
        }
    }
    spin_lock_release(&escape_set.lock);
    return first;
}

uint32_t escape_note(uintptr_t address, enum escape_kind kind, bool *first)
{
    struct dangling_info info;
    *first = true;
    if (!dangling_lookup(address, &info) || !info.found_range)
        return 0;
    int32_t marker = info.range.marker;
    struct marker_stats *stats = marker >= 0 && (unsigned)marker < core.marker_count
                                     ? &core.markers[marker] : NULL;
    /* One object, one escape, however often it is touched or freed; and one late free,
     * however often it is freed, also when it was touched first. */
    struct trace_record *record = trace_log_find(info.range.trace, address);
    bool object_first, kind_first;
    if (record) {
        uint32_t kind_bit = 1u << kind;
        uint32_t before = __atomic_fetch_or(&record->escaped, kind_bit, __ATOMIC_RELAXED);
        object_first = before == 0;
        kind_first = !(before & kind_bit);
    } else {
        /* Untraced: the object is known only by the address used (two keys per region). */
        uint64_t key = info.range.region_id * 4;
        object_first = escape_first_seen(address, key);
        kind_first = escape_first_seen(address, key + 1 + (uint64_t)kind);
    }
    *first = kind_first;
    if (object_first) {
        struct stack_record *site = record ? stack_table_get(record->stack) : NULL;
        if (site)
            __atomic_add_fetch(&site->escapes, 1, __ATOMIC_RELAXED);
        if (stats)
            __atomic_add_fetch(&stats->escapes, 1, __ATOMIC_RELAXED);
    }
    if (stats && kind == ESCAPE_FREE && kind_first)
        __atomic_add_fetch(&stats->escaped_frees, 1, __ATOMIC_RELAXED);
    return record ? record->stack : 0;
}

void chunk_fork_child(void)
{
    spin_lock_reset(&dead_range_pool.lock);
    spin_lock_reset(&escape_set.lock);
}

void chunk_lock_pools(void)
{
    spin_lock_acquire(&dead_range_pool.lock);
}

void chunk_unlock_pools(void)
{
    spin_lock_release(&dead_range_pool.lock);
}
