/*
 * scan.c — quarantine snapshot, marking, and release: the core of the conservative scan.
 *
 * Layer: core.  See scan.h for the three steps.  A word is a candidate when it falls in
 * the chunk reservation (one subtraction and compare, done by the vectorised kernel for
 * whole runs of words); a candidate marks its chunk when the snapshot says the chunk is
 * quarantined.  Marks are per chunk; a span is kept when any of its chunks is marked.  The
 * first few kept chunks remember one referrer each: the dangling-pointer finder's answer.
 */
#include "scan.h"
#include "bitmap.h"

#include <string.h>

static struct {
    uint64_t *quarantined; /* snapshot: 1 = chunk is in quarantine (span heads and tails) */
    uint64_t *marked;      /* set by any marking thread (atomic) */
    size_t bitmap_words;
    uint64_t snapshot_chunks;
    uint64_t words_scanned; /* atomic */
    uint64_t marks;         /* atomic */
    spin_lock kept_lock;
    uint32_t *live_end;     /* scratch: per chunk, where its live bytes end */
    unsigned kept_count;
    struct scan_kept kept[SCAN_KEPT_MAX];
} scan_state = { .kept_lock = SPIN_LOCK_INIT };
static scan_kernel_fn scan_kernel;

/* Each bitmap is asked for until it is had (metadata may run out), and kept once it is. */
bool scan_bitmaps_ready(void)
{
    size_t words = bitmap_words(core_config.chunk_count);
    if (scan_state.quarantined == NULL)
        scan_state.quarantined = metadata_map(words * sizeof(uint64_t));
    if (scan_state.marked == NULL)
        scan_state.marked = metadata_map(words * sizeof(uint64_t));
    if (scan_state.live_end == NULL)
        scan_state.live_end = metadata_map(sizeof(uint32_t) * core_config.chunk_count);
    scan_state.bitmap_words = words;
    if (scan_kernel == NULL)
        scan_kernel = scan_kernel_select();
    return scan_state.quarantined && scan_state.marked && scan_state.live_end;
}

uint64_t scan_snapshot(void)
{
    if (!scan_bitmaps_ready())
        return 0;
    memset(scan_state.quarantined, 0, scan_state.bitmap_words * sizeof(uint64_t));
    memset(scan_state.marked, 0, scan_state.bitmap_words * sizeof(uint64_t));
    scan_state.snapshot_chunks = 0;
    scan_state.words_scanned = 0;
    scan_state.marks = 0;
    scan_state.kept_count = 0;
    spin_lock_acquire(&core.lock);
    for (uint32_t link = core.quarantine_head; link != 0;) {
        uint32_t head = link - 1;
        const struct chunk_meta *meta = &core.chunks[head];
        for (uint32_t i = head; i < head + meta->span_chunks; i++)
            bit_set(scan_state.quarantined, i);
        scan_state.snapshot_chunks += meta->span_chunks;
        link = meta->next;
    }
    spin_lock_release(&core.lock);
    return scan_state.snapshot_chunks;
}

static void remember_referrer(uint32_t chunk, const uintptr_t *location, uintptr_t value,
                              const struct scan_source *source)
{
    uint32_t head = core.chunks[chunk].span_head;
    spin_lock_acquire(&scan_state.kept_lock);
    bool known = false;
    for (unsigned i = 0; i < scan_state.kept_count && !known; i++)
        known = scan_state.kept[i].chunk == head;
    if (!known && scan_state.kept_count < SCAN_KEPT_MAX) {
        struct scan_kept *kept = &scan_state.kept[scan_state.kept_count++];
        kept->chunk = head;
        kept->location = (uintptr_t)location;
        kept->value = value;
        kept->kind = source ? source->kind : REFERRER_NONE;
        kept->thread_number = source ? source->thread_number : 0;
        kept->name[0] = '\0';
        if (source && source->name) {
            size_t len = strlen(source->name);
            if (len >= sizeof kept->name)
                len = sizeof kept->name - 1;
            memcpy(kept->name, source->name, len);
            kept->name[len] = '\0';
        }
    }
    spin_lock_release(&scan_state.kept_lock);
}

void scan_candidate(const uintptr_t *location, uintptr_t value, const struct scan_source *source)
{
    uint32_t chunk = chunk_index_of((const void *)value);
    if (!bit_test(scan_state.quarantined, chunk) || !bit_test_and_set_atomic(scan_state.marked, chunk))
        return;
    __atomic_add_fetch(&scan_state.marks, 1, __ATOMIC_RELAXED);
    remember_referrer(chunk, location, value, source);
}

void scan_kernel_scalar(const uintptr_t *words, size_t count, const struct scan_source *source)
{
    uintptr_t base = core_config.base, size = core_config.size;
    for (size_t i = 0; i < count; i++) {
        /* One load per word: the program may be writing it meanwhile (concurrent phase). */
        uintptr_t word = __atomic_load_n(&words[i], __ATOMIC_RELAXED);
        if (unlikely(word - base < size))
            scan_candidate(&words[i], word, source);
    }
}

void scan_range(uintptr_t start, uintptr_t end, const struct scan_source *source)
{
    start = align_up(start, sizeof(uintptr_t));
    end &= ~(uintptr_t)(sizeof(uintptr_t) - 1);
    if (end <= start)
        return;
    size_t count = (end - start) / sizeof(uintptr_t);
    scan_kernel((const uintptr_t *)start, count, source);
    __atomic_add_fetch(&scan_state.words_scanned, count, __ATOMIC_RELAXED);
}

uint64_t scan_release_unmarked(void)
{
    uint64_t released = 0;
    uint32_t release[256];
    for (;;) {
        unsigned count = 0;
        spin_lock_acquire(&core.lock);
        /* Unlink unmarked snapshot spans; spans quarantined after the snapshot stay. */
        uint32_t *link = &core.quarantine_head;
        while (*link != 0 && count < 256) {
            uint32_t head = *link - 1;
            struct chunk_meta *meta = &core.chunks[head];
            bool in_snapshot = bit_test(scan_state.quarantined, head);
            bool marked = false;
            for (uint32_t i = head; i < head + meta->span_chunks && !marked; i++)
                marked = bit_test(scan_state.marked, i);
            if (in_snapshot && !marked) {
                *link = meta->next;
                meta->next = 0;
                bit_clear(scan_state.quarantined, head);
                release[count++] = head;
            } else {
                link = &meta->next;
            }
        }
        spin_lock_release(&core.lock);
        if (count == 0)
            break;
        for (unsigned i = 0; i < count; i++) {
            uint32_t head = release[i];
            if (core_config.options.on_dangling == ON_DANGLING_RECOVER) {
                /* Recover mode kept the contents (and pinned pages may be accessible):
                 * drop them now and make the span fault again before it is reused. */
                uintptr_t start = (uintptr_t)chunk_address(head);
                pages_discard(start, start + ((size_t)core.chunks[head].span_chunks << core_config.chunk_shift));
            }
            released += core.chunks[head].span_chunks;
            chunk_release(head);
        }
    }
    return released;
}

/* Where the bytes that may hold objects end in a chunk that is some region's current chunk or
 * a thread's spare: handed out up to the cursor, or (a spare) up to its offset; the rest was
 * never handed out since the chunk was taken (pages moved in hold a dead chunk's old bytes).
 * Threads are stopped, perhaps midway through taking or giving a chunk: a chunk found in
 * neither place is read up to its handed_out_end (the whole chunk while some region may be
 * bumping in it), and a cursor outside its chunk counts for nothing. */
static void limit_to_handed_out(uint32_t *live_end)
{
    if (!spin_try_lock(&core.threads_lock))
        return; /* a thread stopped while holding it: read every live chunk whole */
    for (struct thread_state *t = core.all_threads; t; t = t->next_all) {
        if (!__atomic_load_n(&t->alive, __ATOMIC_ACQUIRE))
            continue;
        unsigned spares = t->spare_count < THREAD_SPARE_CHUNKS ? t->spare_count : THREAD_SPARE_CHUNKS;
        for (unsigned i = 0; i < spares; i++) {
            uint32_t chunk = t->spares[i].chunk;
            if (chunk < core_config.chunk_count && t->spares[i].offset <= core_config.chunk_size)
                live_end[chunk] = t->spares[i].offset;
        }
        for (const struct region *r = t->innermost; r; r = r->outer) {
            if (r->current_chunk == 0 || r->current_chunk > core_config.chunk_count)
                continue;
            uint32_t chunk = r->current_chunk - 1;
            uintptr_t start = (uintptr_t)chunk_address(chunk), cursor = (uintptr_t)r->cursor;
            if (cursor >= start && cursor <= start + core_config.chunk_size)
                live_end[chunk] = (uint32_t)align_up(cursor - start, PAGE_SIZE_BYTES);
        }
    }
    spin_lock_release(&core.threads_lock);
}

void scan_for_each_live_range(void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data)
{
    /* Without the scratch array (no metadata left) every live chunk is read whole. */
    uint32_t *live_end = scan_bitmaps_ready() ? scan_state.live_end : NULL;
    size_t words = bitmap_words(core_config.chunk_count);
    if (live_end) {
        for (size_t w = 0; w < words; w++)
            for (uint64_t taken = core.taken[w]; taken; taken &= taken - 1) {
                uint32_t index = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(taken));
                if (index < core_config.chunk_count)
                    live_end[index] = __atomic_load_n(&core.chunks[index].handed_out_end, __ATOMIC_RELAXED);
            }
        limit_to_handed_out(live_end);
    }
    for (size_t w = 0; w < words; w++) {
        for (uint64_t taken = core.taken[w]; taken; taken &= taken - 1) {
            uint32_t index = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(taken));
            if (index >= core_config.chunk_count)
                break;
            const struct chunk_meta *meta = &core.chunks[index];
            if (__atomic_load_n(&meta->state, __ATOMIC_ACQUIRE) != CHUNK_LIVE)
                continue;
            uintptr_t chunk = (uintptr_t)chunk_address(index);
            uint32_t from = __atomic_load_n(&meta->faulted_end, __ATOMIC_ACQUIRE);
            uint32_t end = live_end ? live_end[index] : __atomic_load_n(&meta->handed_out_end, __ATOMIC_RELAXED);
            if (end > from)
                visit(chunk + from, chunk + end, data);
        }
    }
}

uint64_t scan_marked_chunks(void)
{
    return __atomic_load_n(&scan_state.marks, __ATOMIC_RELAXED);
}

unsigned scan_kept(const struct scan_kept **kept)
{
    *kept = scan_state.kept;
    return scan_state.kept_count;
}
