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

#include <string.h>
#include <sys/mman.h>

struct scan_state scan_state;
static scan_kernel_fn scan_kernel;

static bool ensure_bitmaps(void)
{
    if (scan_state.quarantined)
        return true;
    size_t words = (core.chunk_count + 63) / 64;
    scan_state.quarantined = metadata_map(words * sizeof(uint64_t));
    scan_state.marked = metadata_map(words * sizeof(uint64_t));
    scan_state.bitmap_words = words;
    scan_kernel = scan_kernel_select();
    return scan_state.quarantined && scan_state.marked;
}

uint64_t scan_snapshot(void)
{
    if (!ensure_bitmaps())
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
            scan_state.quarantined[i >> 6] |= (uint64_t)1 << (i & 63);
        scan_state.snapshot_chunks += meta->span_chunks;
        link = meta->next;
    }
    spin_lock_release(&core.lock);
    return scan_state.snapshot_chunks;
}

static void remember_referrer(uint32_t chunk, const uintptr_t *location, uintptr_t value)
{
    uint32_t head = core.chunks[chunk].span_head;
    for (unsigned i = 0; i < scan_state.kept_count; i++)
        if (scan_state.kept[i].chunk == head)
            return;
    if (scan_state.kept_count == SCAN_KEPT_MAX)
        return;
    struct scan_kept *kept = &scan_state.kept[scan_state.kept_count++];
    const struct scan_source *source = scan_state.source;
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

void scan_candidate(const uintptr_t *location, uintptr_t value)
{
    uint32_t chunk = (uint32_t)((value - core.base) >> core.chunk_shift);
    uint64_t bit = (uint64_t)1 << (chunk & 63);
    if (!(scan_state.quarantined[chunk >> 6] & bit))
        return;
    if (!(scan_state.marked[chunk >> 6] & bit)) {
        scan_state.marked[chunk >> 6] |= bit;
        scan_state.marks++;
        remember_referrer(chunk, location, value);
    }
}

void scan_kernel_scalar(const uintptr_t *words, size_t count)
{
    uintptr_t base = core.base, size = core.size;
    for (size_t i = 0; i < count; i++)
        if (unlikely(words[i] - base < size))
            scan_candidate(&words[i], words[i]);
}

void scan_range(uintptr_t start, uintptr_t end, const struct scan_source *source)
{
    start = align_up(start, sizeof(uintptr_t));
    end &= ~(uintptr_t)(sizeof(uintptr_t) - 1);
    if (end <= start)
        return;
    scan_state.source = source;
    size_t count = (end - start) / sizeof(uintptr_t);
    scan_kernel((const uintptr_t *)start, count);
    scan_state.words_scanned += count;
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
            bool in_snapshot = scan_state.quarantined[head >> 6] & ((uint64_t)1 << (head & 63));
            bool marked = false;
            for (uint32_t i = head; i < head + meta->span_chunks && !marked; i++)
                marked = scan_state.marked[i >> 6] & ((uint64_t)1 << (i & 63));
            if (in_snapshot && !marked) {
                *link = meta->next;
                meta->next = 0;
                scan_state.quarantined[head >> 6] &= ~((uint64_t)1 << (head & 63));
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
            if (core.options.on_dangling == ON_DANGLING_RECOVER) {
                /* Recover mode kept the contents (and pinned pages may be accessible):
                 * drop them now and make the span fault again before it is reused. */
                size_t bytes = (size_t)core.chunks[head].span_chunks << core.chunk_shift;
                mmap(chunk_address(head), bytes, PROT_NONE,
                     MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            }
            released += core.chunks[head].span_chunks;
            chunk_release(head);
        }
    }
    return released;
}
