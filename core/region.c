/*
 * region.c — regions: begin, the allocation slow path, and end.
 *
 * Layer: core.  A region is a bump allocator over a list of chunks, owned by one thread's
 * region stack (or, as an explicit arena, by whoever holds it).  Lifecycle:
 *
 *   begin   push a region record; no chunk is taken until the first allocation, so a region
 *           that allocates nothing costs no system call at all.
 *   alloc   bump in the current chunk (internal.h); when it is full, retire it to the
 *           region's chunk list and take the thread's spare chunk, else a new one; large
 *           requests get a span of whole chunks, also on the list.
 *   end     fault every page the region may have handed out, retired chunks and spans
 *           whole, in as few system calls as adjacency allows; quarantine the whole chunks;
 *           the untouched tail of the current chunk, from the next page boundary on, goes
 *           to the thread's spares for its next region.  With partial_reuse=1 the current
 *           chunk is handed on unfaulted instead (Go's behaviour): no system call at all.
 */
#include "internal.h"
#include "trace_log.h"

#include <string.h>

static struct fixed_pool region_pool = FIXED_POOL_INIT(struct region);

/* Pages are populated ahead of a region, POPULATE_AHEAD_PAGES at a time (one system call
 * instead of a page fault each), whenever fewer than POPULATE_KEEP_AHEAD_PAGES wait past the
 * region's start. */
#define POPULATE_AHEAD_PAGES 32
#define POPULATE_KEEP_AHEAD_PAGES 16

/* Tails smaller than this are not worth a spare slot: the chunk is retired whole. */
static size_t spare_min_bytes(void)
{
    return core_config.chunk_size / 8;
}

struct region *region_record_new(void)
{
    return fixed_pool_alloc(&region_pool);
}

void region_record_free(struct region *region)
{
    fixed_pool_free(&region_pool, region);
}

struct region *region_create(struct thread_state *thread, int32_t marker, uintptr_t begin_pc)
{
    struct region *region = fixed_pool_alloc(&region_pool);
    if (region != NULL)
        region_init(region, thread, marker, begin_pc);
    return region;
}

unsigned region_begin(struct thread_state *thread, int32_t marker, uintptr_t begin_pc)
{
    struct region *region = region_create(thread, marker, begin_pc);
    if (region == NULL)
        return thread->depth; /* out of metadata: the region simply does not open */
    return region_push(thread, region);
}

/* The region's current chunk is about to be in no region (retired to its list, or its region
 * popped): a scan that stops the thread from here on reads it only up to the region's
 * high-water mark, rounded to a page, not the dead chunks' words in the pages past it. */
static void note_handed_out(struct region *region)
{
    if (region->current_chunk == 0)
        return;
    uint32_t index = region->current_chunk - 1;
    uintptr_t chunk = (uintptr_t)chunk_address(index), high_water = (uintptr_t)region->cursor;
    if (high_water < (uintptr_t)region->high_water)
        high_water = (uintptr_t)region->high_water;
    if (high_water >= chunk && high_water <= chunk + core_config.chunk_size)
        __atomic_store_n(&core.chunks[index].handed_out_end,
                         (uint32_t)align_up(high_water - chunk, PAGE_SIZE_BYTES), __ATOMIC_RELEASE);
}

bool region_end(struct thread_state *thread, uintptr_t end_pc)
{
    struct region *region = thread->innermost;
    if (region == NULL)
        return false;
    /* Pop first: from here on the thread allocates from the outer region (or the heap),
     * also from inside the system calls and reports below. */
    region_sampling_hand_back(region);
    note_handed_out(region);
    __atomic_store_n(&thread->innermost, region->outer, __ATOMIC_RELEASE);
    thread->depth--;
    region_finish(region, thread, end_pc);
    return true;
}

/* --- the slow path of allocation ------------------------------------------------------ */

/* Pages below offset were touched (or populated): they are present, and stay so while the
 * chunk lives (region ends in strict mode only protect them) and when its pages move on to
 * a fresh chunk. */
static void note_pages_present(struct chunk_meta *meta, uintptr_t offset)
{
    uint32_t end = (uint32_t)align_up(offset, PAGE_SIZE_BYTES);
    if (end > meta->populated_end)
        meta->populated_end = end;
}

static void retire_current_chunk(struct region *region)
{
    if (region->current_chunk == 0)
        return;
    uint32_t index = region->current_chunk - 1;
    if (region->high_water < region->cursor)
        region->high_water = region->cursor;
    note_pages_present(&core.chunks[index], (uintptr_t)region->high_water - (uintptr_t)chunk_address(index));
    note_handed_out(region);
    core.chunks[index].next = region->chunk_list;
    region->chunk_list = index + 1;
    __atomic_store_n(&region->current_chunk, 0, __ATOMIC_RELEASE);
    region->cursor = region->limit = region->last_object = region->high_water = region->chunk_begin = NULL;
    region->dirty_end = NULL;
}

/* Populates the pages a region is about to use, a batch at a time, unless enough are present
 * already (touched by earlier regions of this chunk, or moved here with a whole chunk).  A
 * region that has filled a chunk already is large: the rest of the next one is populated at
 * once (one call instead of a fault per page; the fast path never calls out mid-chunk). */
static void populate_ahead(struct chunk_meta *meta, char *chunk, uint32_t offset, bool whole_rest)
{
    if (core_config.options.on_dangling == ON_DANGLING_RECOVER ||
        meta->populated_end >= core_config.chunk_size ||
        (!whole_rest && meta->populated_end >= offset + POPULATE_KEEP_AHEAD_PAGES * PAGE_SIZE_BYTES))
        return;
    uintptr_t from = (uintptr_t)chunk + (meta->populated_end > offset ? meta->populated_end : offset);
    uintptr_t to = whole_rest ? (uintptr_t)chunk + core_config.chunk_size
                              : from + POPULATE_AHEAD_PAGES * PAGE_SIZE_BYTES;
    if (to > (uintptr_t)chunk + core_config.chunk_size)
        to = (uintptr_t)chunk + core_config.chunk_size;
    if (chunk_populate(from, to))
        meta->populated_end = (uint32_t)(to - (uintptr_t)chunk);
}

/* The observer (core_set_observer) sees each chunk a region starts in: a slow path already. */
static void note_chunk_started(void)
{
    const struct core_observer *observer = __atomic_load_n(&core.observer, __ATOMIC_ACQUIRE);
    if (observer != NULL)
        observer->chunk_started();
}

static void start_in_chunk(struct region *region, uint32_t index, uint32_t offset,
                           uint32_t present_end)
{
    char *chunk = chunk_address(index);
    core.chunks[index].owner_start = offset;
    populate_ahead(&core.chunks[index], chunk, offset, region->chunk_list != 0);
    region->current_chunk = index + 1;
    region->cursor = chunk + offset;
    region->chunk_begin = chunk + offset;
    region->high_water = chunk + offset;
    region->dirty_end = chunk + (present_end > offset ? present_end : offset);
    region->limit = chunk + core_config.chunk_size;
    region->last_object = NULL;
    /* Its thread's scan reads it up to the cursor now; anyone else's (an arena) whole. */
    __atomic_store_n(&core.chunks[index].handed_out_end, (uint32_t)core_config.chunk_size, __ATOMIC_RELEASE);
    note_chunk_started();
}

static bool take_spare(struct region *region)
{
    struct thread_state *thread = region->thread;
    if (thread == NULL || thread->spare_count == 0)
        return false;
    struct spare_chunk spare = thread->spares[--thread->spare_count];
    start_in_chunk(region, spare.chunk, spare.offset, spare.present_end);
    return true;
}

static void *place(struct region *region, size_t size, size_t alignment)
{
    uintptr_t object = align_up((uintptr_t)region->cursor + OBJECT_HEADER_SIZE, alignment);
    uintptr_t end = object + align_up(size, OBJECT_ALIGN);
    if (end > (uintptr_t)region->limit || end < object)
        return NULL;
    char *header = (char *)object - OBJECT_HEADER_SIZE;
    region->cursor = (char *)end;
    region->last_object = header;
    region->allocs++;
    region->bytes += size;
    struct object_header *h = (struct object_header *)header;
    h->size = size;
    return (void *)object;
}

/* The slot of an unused spare of the thread (offset 0: no region has handed out any of it):
 * the one with the most physical pages (want_pages), or an empty one; -1 when there is none. */
static int find_unused_spare(const struct thread_state *owner, bool want_pages)
{
    if (owner == NULL)
        return -1;
    int found = -1;
    for (int i = (int)owner->spare_count - 1; i >= 0; i--) {
        const struct spare_chunk *spare = &owner->spares[i];
        if (spare->offset != 0 || (spare->present_end > 0) != want_pages)
            continue;
        if (!want_pages)
            return i;
        if (found < 0 || spare->present_end > owner->spares[found].present_end)
            found = i;
    }
    return found;
}

static uint32_t remove_spare(struct thread_state *owner, int slot)
{
    uint32_t index = owner->spares[slot].chunk;
    for (unsigned i = (unsigned)slot; i + 1 < owner->spare_count; i++)
        owner->spares[i] = owner->spares[i + 1];
    owner->spare_count--;
    return index;
}

/* Physical pages for a new span, moved in chunk by chunk from the thread's unused spares (one
 * mremap each, against a page fault and a page of zeroing per page); the spares stay, empty,
 * to receive the next chunk's pages.  Each chunk of the span records how far its pages may be
 * present (populated_end), so that region end can hand them on again.  Returns how many bytes
 * from the span's start may hold old data. */
static size_t span_take_pages(struct thread_state *owner, uint32_t head, uint32_t count, size_t bytes)
{
    size_t dirty = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t left = bytes - ((size_t)i << core_config.chunk_shift);
        uint32_t extent = (uint32_t)(left < core_config.chunk_size ? align_up(left, PAGE_SIZE_BYTES)
                                                                   : core_config.chunk_size);
        struct chunk_meta *meta = &core.chunks[head + i];
        meta->populated_end = extent;
        int slot = core_config.options.on_dangling == ON_DANGLING_RECOVER ? -1
                                                                          : find_unused_spare(owner, true);
        if (slot < 0)
            continue;
        struct spare_chunk *spare = &owner->spares[slot];
        uintptr_t to = (uintptr_t)chunk_address(head + i);
        if (!chunk_move_pages((uintptr_t)chunk_address(spare->chunk), spare->present_end, to))
            continue;
        uint32_t moved = spare->present_end;
        if (moved > meta->populated_end)
            meta->populated_end = moved;
        /* Up to the end of the last moved pages (fresh zero pages between are cleared too). */
        dirty = ((size_t)i << core_config.chunk_shift) + moved;
        core.chunks[spare->chunk].populated_end = 0;
        spare->present_end = 0;
        stats_add(&core_counters.bytes_recycled, moved);
    }
    return dirty;
}

/* A span of whole chunks for one large object; it joins the region's chunk list. */
static void *alloc_span(struct region *region, size_t size, size_t alignment)
{
    size_t offset = align_up(OBJECT_HEADER_SIZE, alignment);
    if (size > core_config.size - offset)
        return NULL;
    size_t bytes = offset + size;
    uint64_t count = (bytes + core_config.chunk_size - 1) >> core_config.chunk_shift;
    uint32_t index;
    if (count > core_config.chunk_count || !chunk_acquire_or_reclaim((uint32_t)count, &index))
        return NULL;
    core.chunks[index].next = region->chunk_list;
    region->chunk_list = index + 1;
    note_chunk_started();
    char *object = chunk_address(index) + offset;
    region->span_object = object;
    region->span_dirty = span_take_pages(region->thread, index, (uint32_t)count, bytes);
    struct object_header *h = object_header_of(object);
    h->size = size;
    region->allocs++;
    region->bytes += size;
    return object;
}

void *region_alloc_slow(struct region *region, size_t size, size_t alignment)
{
    /* Alignment beyond a chunk cannot be met by chunk-aligned spans: the heap serves it. */
    if (alignment > core_config.chunk_size)
        return NULL;
    /* Out of chunk space (or refused by the kernel) earlier in this region: one attempt, or
     * one scan, per region rather than per allocation; the next region tries again. */
    if (region->out_of_chunks)
        return NULL;
    if (size > core_config.small_max || alignment > core_config.small_max)
        return alloc_span(region, size, alignment);
    if (region->current_chunk != 0) {
        void *object = place(region, size, alignment);
        if (object)
            return object;
        retire_current_chunk(region);
    }
    if (!take_spare(region)) {
        uint32_t index;
        if (!chunk_acquire_or_reclaim(1, &index)) {
            region->out_of_chunks = true;
            return NULL;
        }
        start_in_chunk(region, index, 0, 0);
    }
    void *object = place(region, size, alignment);
    if (object == NULL) {
        /* A spare tail too small for this request: move on to a fresh chunk. */
        retire_current_chunk(region);
        uint32_t index;
        if (!chunk_acquire_or_reclaim(1, &index)) {
            region->out_of_chunks = true;
            return NULL;
        }
        start_in_chunk(region, index, 0, 0);
        object = place(region, size, alignment);
    }
    return object;
}

void *region_alloc_aligned(struct region *region, size_t size, size_t alignment)
{
    if (alignment <= OBJECT_ALIGN)
        return region_alloc(region, size);
    if (region->current_chunk != 0 && size <= core_config.small_max) {
        void *object = place(region, size, alignment);
        if (object)
            return object;
    }
    return region_alloc_slow(region, size, alignment);
}

bool region_resize_in_place(struct region *region, void *p, size_t new_size)
{
    char *header = (char *)p - OBJECT_HEADER_SIZE;
    if (region == NULL || region->last_object != header || new_size > core_config.small_max)
        return false;
    uintptr_t end = (uintptr_t)p + align_up(new_size, OBJECT_ALIGN);
    if (end > (uintptr_t)region->limit || end < (uintptr_t)p)
        return false;
    if (region->high_water < region->cursor)
        region->high_water = region->cursor;
    struct object_header *h = (struct object_header *)header;
    if (new_size > h->size)
        region->bytes += new_size - h->size;
    h->size = new_size;
    region->cursor = (char *)end;
    return true;
}

void region_clear_reused(struct region *region, void *p, size_t size)
{
    /* Chunk memory comes from the kernel zeroed (fresh, or faulted and re-protected); only
     * bytes below the high-water mark of an undone allocation, or pages recycled from an
     * earlier region, can hold old data; in a span, the pages moved in from a spare. */
    char *object = p;
    if (object == region->span_object) {
        size_t offset = (size_t)(object - chunk_address(chunk_index_of(object)));
        if (region->span_dirty > offset)
            memset(object, 0, region->span_dirty - offset < size ? region->span_dirty - offset : size);
        return;
    }
    if (region->current_chunk == 0 || object < region->limit - core_config.chunk_size ||
        object >= region->limit)
        return;
    char *dirty_end = region->high_water > region->dirty_end ? region->high_water : region->dirty_end;
    if (object < dirty_end) {
        size_t dirty = (size_t)(dirty_end - object);
        memset(object, 0, dirty < size ? dirty : size);
    }
}

/* --- region end ------------------------------------------------------------------------ */

/* Region end gathers the ranges to fault and the chunks to quarantine, merging adjacent
 * ranges into one system call; chunks are quarantined only once they are faulted. */
#define FAULT_BATCH_CHUNKS 64

struct fault_batch {
    uintptr_t start, end;
    unsigned quarantine_count;
    uint32_t quarantine[FAULT_BATCH_CHUNKS];
};

static void fault_batch_flush(struct fault_batch *batch)
{
    chunk_fault_range(batch->start, batch->end);
    batch->start = batch->end = 0;
    for (unsigned i = 0; i < batch->quarantine_count; i++)
        chunk_quarantine(batch->quarantine[i]);
    batch->quarantine_count = 0;
}

static void fault_batch_quarantine(struct fault_batch *batch, uint32_t index)
{
    /* The scan reads live chunks from faulted_end on, with the world stopped at any point:
     * mark the chunk dead before its pages stop being readable. */
    for (uint32_t i = index; i < index + core.chunks[index].span_chunks; i++)
        __atomic_store_n(&core.chunks[i].faulted_end, (uint32_t)core_config.chunk_size, __ATOMIC_RELEASE);
    if (batch->quarantine_count == FAULT_BATCH_CHUNKS)
        fault_batch_flush(batch);
    batch->quarantine[batch->quarantine_count++] = index;
}

static void fault_batch_add(struct fault_batch *batch, uintptr_t start, uintptr_t end)
{
    if (end <= start)
        return;
    if (batch->end == start) {
        batch->end = end;
        return;
    }
    if (batch->start == end) {
        batch->start = start;
        return;
    }
    chunk_fault_range(batch->start, batch->end);
    batch->start = start;
    batch->end = end;
}


static void record_range(const struct region *region, uint32_t head, uintptr_t start,
                         uintptr_t end, uintptr_t end_pc)
{
    if (end <= start)
        return;
    struct dead_range range = {
        .start = start,
        .end = end,
        .region_id = region->id,
        .marker = region->marker,
        .thread_number = region->thread ? region->thread->number : 0,
        .begin_pc = region->begin_pc,
        .end_pc = end_pc,
        .begin_stack = region->begin_stack,
        .end_stack = region->end_stack,
        .trace = region->trace,
    };
    trace_log_retain(region->trace);
    chunk_record_dead_range(head, &range);
}

static bool can_give_spare(const struct thread_state *owner, uint32_t offset)
{
    return owner != NULL && owner->spare_count < THREAD_SPARE_CHUNKS &&
           core_config.chunk_size - offset >= spare_min_bytes();
}

static bool give_spare(struct thread_state *owner, uint32_t index, uint32_t offset,
                       uint32_t present_end)
{
    if (!can_give_spare(owner, offset))
        return false;
    __atomic_store_n(&core.chunks[index].handed_out_end, offset, __ATOMIC_RELEASE);
    owner->spares[owner->spare_count].chunk = index;
    owner->spares[owner->spare_count].offset = offset;
    owner->spares[owner->spare_count].present_end = present_end;
    owner->spare_count++;
    return true;
}

/* A dead region's pages are only protected: one mprotect; they stay resident and move on with
 * the chunk to its next owner (recycle_whole_chunk), or are discarded with it.  faulted_end
 * moves first, so a scan never reads a page as it turns PROT_NONE. */
static bool protect_dead_prefix(struct chunk_meta *meta, uintptr_t used_start, uintptr_t used_end,
                                uint32_t offset)
{
    uint32_t previous = meta->faulted_end;
    __atomic_store_n(&meta->faulted_end, offset, __ATOMIC_RELEASE);
    if (!chunk_protect_range(used_start, used_end)) {
        __atomic_store_n(&meta->faulted_end, previous, __ATOMIC_RELEASE);
        return false;
    }
    meta->resident_dead = 1;
    return true;
}

/* Whole-chunk recycling needs the kernel's page moves, a thread to keep the pages, and a
 * spare slot left over for the current chunk's tail (or an empty spare to move them into). */
static bool can_recycle_to(const struct thread_state *owner)
{
    return core_config.options.on_dangling != ON_DANGLING_RECOVER && core_config.kernel_moves_pages &&
           owner != NULL &&
           (owner->spare_count < THREAD_SPARE_CHUNKS - 1 || find_unused_spare(owner, false) >= 0);
}

/* A chunk to move pages into: an empty unused spare (its slot is freed), else a new chunk. */
static bool take_fresh_chunk(struct thread_state *owner, uint32_t *index)
{
    int slot = find_unused_spare(owner, false);
    if (slot >= 0) {
        *index = remove_spare(owner, slot);
        return true;
    }
    return chunk_acquire(1, index);
}

/* A chunk that is done (a large region's retired chunk, or one whose tail is too small to
 * keep) hands its physical pages to a fresh chunk that becomes the thread's spare: the next
 * regions find pages in place instead of having fresh ones allocated, zeroed and faulted in
 * (on these machines that allocation, not the instructions, is what a region costs).  The
 * pages of earlier regions go too: with partial_reuse they were never faulted; in strict
 * mode region ends only protected them (PROT_NONE, still resident), and a second move
 * carries that protected prefix, made accessible at its new address.  The old chunk is then
 * faulted whole by one fresh mapping.  At most THREAD_SPARE_CHUNKS - 1 such spares per
 * thread.  Returns true when the old chunk was faulted here. */
static bool recycle_whole_chunk(uint32_t index, struct thread_state *owner)
{
    struct chunk_meta *meta = &core.chunks[index];
    uint32_t fresh;
    if (meta->span_chunks != 1 || !can_recycle_to(owner) || !take_fresh_chunk(owner, &fresh))
        return false;
    uintptr_t from = (uintptr_t)chunk_address(index), to = (uintptr_t)chunk_address(fresh);
    size_t size = core_config.chunk_size;
    /* Below faulted_end: earlier regions' pages, faulted (strict, revoke_batch) and, when only
     * protected, still resident; above it everything is accessible (with partial_reuse, the
     * whole chunk). */
    size_t live_from = meta->faulted_end;
    /* Both chunks unreadable to a scan while pages move: one that stopped the world midway
     * would find protected pages in the fresh chunk before they are made accessible. */
    struct chunk_meta *fresh_meta = &core.chunks[fresh];
    __atomic_store_n(&fresh_meta->handed_out_end, 0, __ATOMIC_RELAXED); /* nothing yet: old words */
    __atomic_store_n(&fresh_meta->faulted_end, (uint32_t)size, __ATOMIC_RELEASE);
    __atomic_store_n(&meta->faulted_end, (uint32_t)size, __ATOMIC_RELEASE);
    bool prefix_moved = false, rest_moved;
    if (live_from > 0 && meta->resident_dead)
        prefix_moved = chunk_move_pages(from, live_from, to);
    rest_moved = chunk_move_pages(from + live_from, size - live_from, to + live_from);
    /* The moved prefix keeps its PROT_NONE: made accessible here, or, if the kernel refuses,
     * left out of the spare (faulted, as it would be in the old chunk). */
    uint32_t spare_from = 0;
    if (prefix_moved && !pages_make_accessible(to, live_from))
        spare_from = (uint32_t)live_from;
    __atomic_store_n(&fresh_meta->faulted_end, spare_from, __ATOMIC_RELEASE);
    chunk_fault_range(from, from + size);
    uint32_t present_end = rest_moved ? meta->populated_end : prefix_moved ? (uint32_t)live_from : spare_from;
    if (present_end < spare_from)
        present_end = spare_from;
    fresh_meta->populated_end = present_end;
    give_spare(owner, fresh, spare_from, present_end);
    if (prefix_moved || rest_moved)
        stats_add(&core_counters.bytes_recycled, size);
    return true;
}

/* A span of several chunks: its pages go on to fresh chunks, one per chunk of the span while
 * the thread has spare slots, for its next regions and spans (span_take_pages).  The span
 * itself is faulted whole by the caller, its pages gone. */
static void recycle_span_pages(uint32_t head, struct thread_state *owner)
{
    for (uint32_t i = head; i < head + core.chunks[head].span_chunks && can_recycle_to(owner); i++) {
        uint32_t extent = core.chunks[i].populated_end, fresh;
        if (extent == 0 || !take_fresh_chunk(owner, &fresh))
            break;
        __atomic_store_n(&core.chunks[fresh].handed_out_end, 0, __ATOMIC_RELEASE); /* old words */
        bool moved = chunk_move_pages((uintptr_t)chunk_address(i), extent, (uintptr_t)chunk_address(fresh));
        core.chunks[fresh].populated_end = moved ? extent : 0;
        give_spare(owner, fresh, 0, moved ? extent : 0);
        if (!moved)
            break;
        stats_add(&core_counters.bytes_recycled, extent);
    }
}

/* Retired chunks and spans: faulted whole from where this region began in them. */
static void finish_retired_chunks(struct region *region, struct thread_state *spare_owner,
                                  struct fault_batch *batch, uintptr_t end_pc)
{
    for (uint32_t link = region->chunk_list; link != 0;) {
        uint32_t index = link - 1;
        struct chunk_meta *meta = &core.chunks[index];
        link = meta->next;
        uintptr_t chunk = (uintptr_t)chunk_address(index);
        uintptr_t used_start = chunk + meta->owner_start;
        uintptr_t chunk_end = chunk + ((uintptr_t)meta->span_chunks << core_config.chunk_shift);
        record_range(region, index, used_start, chunk_end, end_pc);
        /* The part before owner_start belongs to earlier regions: already faulted in strict
         * mode (but maybe only protected: then discarded here); with partial_reuse it is
         * faulted here, now that the chunk is done.  A chunk going to quarantine is faulted
         * whole, from its start, by one fresh mapping: its pieces (faulted, protected, moved at
         * different times) become one mapping that merges with its quarantined neighbours, so
         * kernel mappings do not pile up. */
        if (meta->span_chunks > 1) {
            recycle_span_pages(index, spare_owner);
            fault_batch_add(batch, chunk, chunk_end);
        } else if (!recycle_whole_chunk(index, spare_owner)) {
            fault_batch_add(batch, chunk, chunk_end);
        }
        fault_batch_quarantine(batch, index);
    }
}

/* A chunk no spare slot takes: its pages go on to a fresh chunk, or are faulted with it; it
 * is quarantined whole. */
static void retire_whole_chunk(uint32_t index, struct thread_state *spare_owner, struct fault_batch *batch)
{
    uintptr_t chunk = (uintptr_t)chunk_address(index);
    if (!recycle_whole_chunk(index, spare_owner))
        fault_batch_add(batch, chunk, chunk + core_config.chunk_size);
    fault_batch_quarantine(batch, index);
}

/* revoke_batch: does this region end complete a batch of its thread's region ends? */
static bool revoke_batch_due(struct thread_state *owner)
{
    if (core_config.options.revoke_batch < 2 || owner == NULL ||
        ++owner->unrevoked_regions < core_config.options.revoke_batch)
        return false;
    owner->unrevoked_regions = 0;
    return true;
}

/* Revokes the dead prefix [faulted_end, dead_end) of a chunk that goes on being used, rounded
 * up to a page (the next region starts after it, so nothing live shares that page): one
 * mprotect, the pages kept resident for whole-chunk recycling.  Returns where the chunk's
 * free space now starts: the page boundary, or dead_end when nothing could be revoked. */
static uint32_t revoke_dead_prefix(uint32_t index, uint32_t dead_end)
{
    struct chunk_meta *meta = &core.chunks[index];
    uintptr_t chunk = (uintptr_t)chunk_address(index);
    uint32_t page_end = (uint32_t)align_up(dead_end, PAGE_SIZE_BYTES);
    if (page_end <= meta->faulted_end || page_end > core_config.chunk_size ||
        !protect_dead_prefix(meta, chunk + meta->faulted_end, chunk + page_end, page_end))
        return dead_end;
    __atomic_store_n(&meta->retired_end, page_end, __ATOMIC_RELAXED);
    return page_end;
}

/* A batch is due: every spare of the thread has its dead prefix revoked too. */
static void revoke_spares(struct thread_state *owner)
{
    for (unsigned i = 0; i < owner->spare_count; i++) {
        struct spare_chunk *spare = &owner->spares[i];
        spare->offset = revoke_dead_prefix(spare->chunk, spare->offset);
        if (spare->present_end < spare->offset)
            spare->present_end = spare->offset;
    }
}

/* partial_reuse and revoke_batch: no system call on most region ends; the old objects stay
 * readable until the chunk fills and is faulted (or, with revoke_batch, until the thread's
 * batch of region ends is complete), but their bytes are never handed out again. */
static void hand_on_unfaulted(struct region *region, uint32_t index, uintptr_t high_water,
                              struct thread_state *spare_owner, struct fault_batch *batch)
{
    uintptr_t chunk = (uintptr_t)chunk_address(index);
    uint32_t offset = (uint32_t)align_up(high_water - chunk, OBJECT_ALIGN);
    __atomic_store_n(&core.chunks[index].retired_end, offset, __ATOMIC_RELAXED);
    note_pages_present(&core.chunks[index], offset);
    if (revoke_batch_due(spare_owner)) {
        offset = revoke_dead_prefix(index, offset);
        revoke_spares(spare_owner);
    }
    /* Recycled pages past the cursor are still dirty for the next region's calloc. */
    uintptr_t dirty_end = (uintptr_t)region->dirty_end;
    uint32_t present_end = dirty_end > chunk + offset ? (uint32_t)(dirty_end - chunk) : offset;
    if (!give_spare(spare_owner, index, offset, present_end))
        retire_whole_chunk(index, spare_owner, batch); /* none of its pages was faulted */
}

/* Strict mode: every page the region may have handed out faults now, by one mprotect that
 * keeps the physical pages for the chunk's next owner (whole-chunk recycling above); the
 * tail, from the next page on, goes to the thread's spares. */
static void fault_used_pages(struct region *region, uint32_t index, uintptr_t high_water,
                             struct thread_state *spare_owner, struct fault_batch *batch)
{
    struct chunk_meta *meta = &core.chunks[index];
    uintptr_t chunk = (uintptr_t)chunk_address(index);
    uintptr_t used_start = chunk + meta->owner_start;
    uintptr_t used_end = align_up(high_water, PAGE_SIZE_BYTES);
    uint32_t offset = (uint32_t)(used_end - chunk);
    uintptr_t dirty_end = align_up((uintptr_t)region->dirty_end, PAGE_SIZE_BYTES);
    uint32_t present_end = (uint32_t)((dirty_end > used_end ? dirty_end : used_end) - chunk);
    note_pages_present(meta, offset);
    if (!can_give_spare(spare_owner, offset)) {
        /* The tail is too small to keep: the chunk's physical pages (the protected ones of its
         * earlier regions too) go on to a fresh chunk, and it is faulted whole from its
         * start, as retired chunks are.  Without this every chunk's pages were allocated and
         * zeroed anew (MADV_POPULATE_WRITE was a fifth of the request loop's time); kernel
         * mappings stay bounded (tests/programs/mapcount.c). */
        retire_whole_chunk(index, spare_owner, batch);
        return;
    }
    if (used_end > used_start && core_config.options.on_dangling != ON_DANGLING_RECOVER &&
        protect_dead_prefix(meta, used_start, used_end, offset)) {
        give_spare(spare_owner, index, offset, present_end);
        return;
    }
    give_spare(spare_owner, index, offset, present_end);
    fault_batch_add(batch, used_start, used_end);
    __atomic_store_n(&meta->faulted_end, offset, __ATOMIC_RELAXED);
}

/* The current chunk: fault (or retire) what was handed out, keep the rest for the next
 * region. */
static void finish_current_chunk(struct region *region, struct thread_state *spare_owner,
                                 struct fault_batch *batch, uintptr_t end_pc)
{
    if (region->current_chunk == 0)
        return;
    uint32_t index = region->current_chunk - 1;
    uintptr_t chunk = (uintptr_t)chunk_address(index);
    uintptr_t high_water = (uintptr_t)region->cursor;
    if (high_water < (uintptr_t)region->high_water)
        high_water = (uintptr_t)region->high_water;
    record_range(region, index, chunk + core.chunks[index].owner_start, high_water, end_pc);
    if (core_config.hand_on_unfaulted)
        hand_on_unfaulted(region, index, high_water, spare_owner, batch);
    else
        fault_used_pages(region, index, high_water, spare_owner, batch);
}

/* The region's counters go to its thread (or, for arenas, the global ones) and its marker. */
static void fold_region_counters(const struct region *region)
{
    struct thread_counters arena_counters = { 0 };
    struct thread_counters *counters = region->thread ? &region->thread->counters : &arena_counters;
    counter_add(&counters->regions_ended, 1);
    counter_add(&counters->region_allocs, region->allocs);
    counter_add(&counters->region_bytes, region->bytes);
    counter_add(&counters->frees_undone, region->frees_undone);
    counter_add(&counters->frees_ignored, region->frees_ignored);
    if (region->thread == NULL)
        stats_fold_thread(&arena_counters);
    const struct core_observer *observer = __atomic_load_n(&core.observer, __ATOMIC_ACQUIRE);
    struct marker_counters *marker = marker_counters_of(region->marker);
    if (marker != NULL) {
        stats_add(&marker->regions, 1);
        stats_add(&marker->bytes, region->bytes);
        stats_add(&marker->objects, region->allocs);
        if (core_config.measure_time)
            stats_add(&marker->cycles, cycle_counter() - region->begin_cycles);
        stats_max(&marker->peak_bytes, region->bytes);
    }
    /* After the marker's counters: the observer's region counts never exceed them. */
    if (observer != NULL)
        observer->region_ended(region->marker, region->bytes);
}

void region_finish(struct region *region, struct thread_state *spare_owner, uintptr_t end_pc)
{
    struct fault_batch batch = { 0 };
    trace_log_seal(region->trace); /* before the dead ranges share it */
    finish_retired_chunks(region, spare_owner, &batch, end_pc);
    finish_current_chunk(region, spare_owner, &batch, end_pc);
    fault_batch_flush(&batch);
    fold_region_counters(region);
    trace_log_release(region->trace);
    fixed_pool_free(&region_pool, region);
}

bool region_free_slow(struct thread_state *thread, void *p)
{
    /* Counting is all a region free does: the memory stays until its region ends.  A free
     * after the region ended must not touch the object (its page is faulted). */
    struct thread_counters *counters = thread ? &thread->counters : NULL;
    if (chunk_address_is_dead(p)) {
        bool first;
        escape_note((uintptr_t)p, ESCAPE_FREE, &first);
        if (!first)
            return false; /* this object was counted already */
        if (counters)
            counter_add(&counters->escaped_frees, 1);
        else
            stats_add(&core_counters.retired.escaped_frees, 1);
        return true;
    }
    if (counters)
        counter_add(&counters->frees_ignored, 1);
    else
        stats_add(&core_counters.retired.frees_ignored, 1);
    return false;
}

void region_fork_child(void)
{
    spin_lock_reset(&region_pool.lock);
}

void region_lock_pools(void)
{
    spin_lock_acquire(&region_pool.lock);
}

void region_unlock_pools(void)
{
    spin_lock_release(&region_pool.lock);
}
