/*
 * chunk.c — the chunk reservation and each chunk's state.
 *
 * Layer: core.  Owns the address space reserved at start-up, the bitmap of available chunks,
 * the quarantine list and the dead-range records that let the fault handler say which
 * region a faulted address belonged to.  Implements the chunk lifecycle of internal.h:
 * acquire (available -> live), fault and quarantine (live -> quarantined) and release
 * (quarantined -> available, after a scan).
 *
 * The bitmap and lists are under core.lock; system calls (pages.c) are made outside it.
 */
#include "internal.h"
#include "bitmap.h"
#include "trace_log.h"

#include <errno.h>
#include <string.h>

static struct fixed_pool dead_range_pool = FIXED_POOL_INIT(struct dead_range);

/* First run of count available chunks at or after from; UINT32_MAX if none. */
static uint32_t find_available_run(uint32_t from, uint32_t count)
{
    uint32_t run_start = from, run_length = 0;
    for (uint32_t i = from; i < core_config.chunk_count;) {
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

int chunk_refusal_errno;

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

    size_t bytes = (size_t)count << core_config.chunk_shift;
    if (!pages_make_accessible((uintptr_t)chunk_address(start), bytes)) {
        /* The reservation has room but the kernel refused the memory: out of mappings
         * (vm.max_map_count) or of commit charge.  Said once by the allocator's fallback. */
        __atomic_store_n(&chunk_refusal_errno, errno, __ATOMIC_RELAXED);
        stats_add(&core_counters.kernel_refusals, 1);
        spin_lock_acquire(&core.lock);
        for (uint32_t i = start; i < start + count; i++)
            bit_clear(core.taken, i);
        spin_lock_release(&core.lock);
        return false;
    }
    chunk_prefer_huge_pages((uintptr_t)chunk_address(start), bytes);

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
        __atomic_store_n(&meta->handed_out_end, (uint32_t)core_config.chunk_size, __ATOMIC_RELAXED);
        __atomic_store_n(&meta->state, CHUNK_LIVE, __ATOMIC_RELEASE);
    }
    stats_add(&core_counters.chunks_mapped, fresh);
    stats_add(&core_counters.chunks_reused, count - fresh);
    *index = start;
    return true;
}

bool chunk_acquire_or_reclaim(uint32_t count, uint32_t *index)
{
    if (core_config.heap_only)
        return false; /* said once at start-up; no scan can make chunk space appear */
    if (chunk_acquire(count, index))
        return true;
    /* A scan frees only quarantined chunks nothing points into.  After one that freed
     * nothing, another is likely futile until more has been quarantined: without this, every
     * allocation of a region that fell back to the heap scanned the whole process.  Pointers
     * that kept chunks may go away meanwhile, so a scan is tried anyway after a number of
     * skipped attempts that doubles with every fruitless scan (up to 65536). */
    uint64_t quarantined = __atomic_load_n(&core.quarantine_bytes, __ATOMIC_RELAXED);
    uint64_t at_fruitless = __atomic_load_n(&core.quarantine_at_fruitless_scan, __ATOMIC_RELAXED);
    if (at_fruitless != 0 && quarantined <= at_fruitless &&
        __atomic_add_fetch(&core.skipped_since_fruitless_scan, 1, __ATOMIC_RELAXED) <
            __atomic_load_n(&core.skips_before_retry, __ATOMIC_RELAXED)) {
        stats_add(&core_counters.reclaims_skipped, 1);
    } else if (core.reclaim) {
        if (core.reclaim() && chunk_acquire(count, index)) {
            __atomic_store_n(&core.quarantine_at_fruitless_scan, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&core.skips_before_retry, 0, __ATOMIC_RELAXED);
            return true;
        }
        /* Never 0 (0 means no fruitless scan): an empty quarantine counts as one byte. */
        quarantined = __atomic_load_n(&core.quarantine_bytes, __ATOMIC_RELAXED);
        __atomic_store_n(&core.quarantine_at_fruitless_scan, quarantined ? quarantined : 1, __ATOMIC_RELAXED);
        __atomic_store_n(&core.skipped_since_fruitless_scan, 0, __ATOMIC_RELAXED);
        uint64_t skips = __atomic_load_n(&core.skips_before_retry, __ATOMIC_RELAXED);
        __atomic_store_n(&core.skips_before_retry, skips == 0 ? 16 : skips < 65536 ? 2 * skips : skips,
                         __ATOMIC_RELAXED);
    }
    stats_add(&core_counters.reserve_exhausted, 1);
    return false;
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
        __atomic_store_n(&core.chunks[i].faulted_end, (uint32_t)core_config.chunk_size, __ATOMIC_RELAXED);
    }
    meta->next = core.quarantine_head;
    core.quarantine_head = head + 1;
    __atomic_add_fetch(&core.quarantine_bytes, (uint64_t)count << core_config.chunk_shift, __ATOMIC_RELAXED);
    stats_add(&core_counters.chunks_quarantined, count);
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
    __atomic_sub_fetch(&core.quarantine_bytes, (uint64_t)count << core_config.chunk_shift, __ATOMIC_RELAXED);
    stats_add(&core_counters.chunks_released, count);
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
    uintptr_t offset = ((uintptr_t)p - core_config.base) & (core_config.chunk_size - 1);
    return offset < __atomic_load_n(&meta->faulted_end, __ATOMIC_RELAXED) ||
           offset < __atomic_load_n(&meta->retired_end, __ATOMIC_RELAXED);
}

bool dangling_lookup(uintptr_t address, struct dangling_info *info)
{
    memset(info, 0, sizeof *info);
    info->address = address;
    if (!core_config.initialized || address - core_config.base >= core_config.size)
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

void chunk_fork_child(void)
{
    spin_lock_reset(&dead_range_pool.lock);
}

void chunk_lock_pools(void)
{
    spin_lock_acquire(&dead_range_pool.lock);
}

void chunk_unlock_pools(void)
{
    spin_lock_release(&dead_range_pool.lock);
}
