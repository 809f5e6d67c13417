/*
 * test_region.c — region end in the default (strict) mode: faulting, dangling lookup,
 * quarantine, the reuse of a chunk's tail, nesting, escaped frees, mapping count.
 */
#include "check.h"

#include <stdio.h>
#include <sys/mman.h>

/* Pages of [p, p + bytes) present, by mincore (without touching them). */
static size_t pages_present(const void *p, size_t bytes)
{
    uintptr_t start = (uintptr_t)p & ~(PAGE_SIZE_BYTES - 1);
    size_t count = (align_up((uintptr_t)p + bytes, PAGE_SIZE_BYTES) - start) / PAGE_SIZE_BYTES;
    static unsigned char vec[1 << 16];
    REQUIRE(count <= sizeof vec);
    REQUIRE(mincore((void *)start, count * PAGE_SIZE_BYTES, vec) == 0);
    size_t present = 0;
    for (size_t i = 0; i < count; i++)
        present += vec[i] & 1;
    return present;
}


#define PAGE PAGE_SIZE_BYTES

static void test_end_faults_pages(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    CHECK_EQ(region_begin(t, MARKER_API, 0xb0b0), 1);
    struct region *r = t->innermost;
    uint64_t id = r->id;
    char *small = region_alloc(r, 100);
    char *pages = region_alloc(r, 5 * PAGE + 123); /* several pages */
    char *last = region_alloc(r, 40);
    char *span = region_alloc(r, 2 * core_config.chunk_size + 100);
    REQUIRE(small && pages && last && span);
    memset(small, 1, 100);
    memset(pages, 2, 5 * PAGE + 123);
    memset(last, 3, 40);
    memset(span, 4, 2 * core_config.chunk_size + 100);
    CHECK_ACCESSIBLE(small);
    CHECK_ACCESSIBLE(span + 2 * core_config.chunk_size + 99);
    CHECK(!chunk_address_is_dead(small));
    struct dangling_info info;
    CHECK(!dangling_lookup((uintptr_t)small, &info));
    CHECK(!dangling_lookup((uintptr_t)span, &info));

    CHECK(region_end(t, 0xe0e0));
    CHECK(t->innermost == NULL);
    CHECK_EQ(t->depth, 0);

    char *probes[] = {
        small, small + 99, small - OBJECT_HEADER_SIZE, pages, pages + 3 * PAGE + 7,
        pages + 5 * PAGE + 122, last, last + 39, span, span + core_config.chunk_size,
        span + 2 * core_config.chunk_size + 99,
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        char *p = probes[i];
        CHECK_FAULTED(p);
        bool found = dangling_lookup((uintptr_t)p, &info);
        CHECK_MSG(found, "dangling_lookup(%p) (probe %zu) found nothing", (void *)p, i);
        CHECK_MSG(info.found_range, "dangling_lookup(%p) (probe %zu) has no range", (void *)p, i);
        CHECK_EQ(info.address, (uintptr_t)p);
        if (info.found_range) {
            CHECK_EQ(info.range.region_id, id);
            CHECK_EQ(info.range.marker, MARKER_API);
            CHECK_EQ(info.range.thread_number, t->number);
            CHECK_EQ(info.range.begin_pc, 0xb0b0);
            CHECK_EQ(info.range.end_pc, 0xe0e0);
            CHECK(info.range.start <= (uintptr_t)p && (uintptr_t)p < info.range.end);
            CHECK(info.range.next == NULL);
        }
    }
    CHECK(!region_end(t, 0)); /* nothing left to end */
}

static void test_empty_region(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct core_counters before = test_stats();
    uint64_t quarantine_before = core.quarantine_bytes;
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(region_begin(t, MARKER_API, 0), 1);
        CHECK(region_end(t, 0));
    }
    struct core_counters after = test_stats();
    CHECK_EQ(after.chunks_mapped, before.chunks_mapped);
    CHECK_EQ(after.chunks_reused, before.chunks_reused);
    CHECK_EQ(after.chunks_quarantined, before.chunks_quarantined);
    CHECK_EQ(after.fault_calls, before.fault_calls);
    CHECK_EQ(core.quarantine_bytes, quarantine_before);
    CHECK_EQ(after.retired.regions_begun - before.retired.regions_begun, 100);
    CHECK_EQ(after.retired.regions_ended - before.retired.regions_ended, 100);
    CHECK_EQ(t->spare_count, 0);
}

static void test_tail_reuse(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct core_counters s0 = test_stats();
    region_begin(t, MARKER_API, 0);
    char *a = region_alloc(t->innermost, 100);
    char *a_end = a + 100;
    region_end(t, 0);
    struct core_counters s1 = test_stats();
    CHECK_EQ(s1.chunks_mapped - s0.chunks_mapped, 1);
    CHECK_EQ(s1.fault_calls - s0.fault_calls, 1);
    CHECK_EQ(s1.chunks_quarantined, s0.chunks_quarantined);
    CHECK_EQ(t->spare_count, 1);
    CHECK_FAULTED(a);

    /* The next region continues in the same chunk, from the next page on. */
    region_begin(t, MARKER_API, 0);
    char *b = region_alloc(t->innermost, 100);
    REQUIRE(b != NULL);
    CHECK_EQ(chunk_index_of(b), chunk_index_of(a));
    CHECK_EQ(((uintptr_t)b - OBJECT_HEADER_SIZE) % PAGE, 0);
    CHECK((uintptr_t)b - OBJECT_HEADER_SIZE >= align_up((uintptr_t)a_end, PAGE));
    CHECK_EQ((uintptr_t)b - OBJECT_HEADER_SIZE, align_up((uintptr_t)a_end, PAGE));
    CHECK_ACCESSIBLE(b);
    CHECK_FAULTED(a);
    struct core_counters s2 = test_stats();
    CHECK_EQ(s2.chunks_mapped, s1.chunks_mapped);
    CHECK_EQ(s2.chunks_reused, s1.chunks_reused);
    /* A region that used several pages: the next one starts after the last of them. */
    char *c = region_alloc(t->innermost, 3 * PAGE);
    char *c_end = c + 3 * PAGE;
    region_end(t, 0);
    CHECK_FAULTED(b);
    CHECK_FAULTED(c_end - 1);
    region_begin(t, MARKER_API, 0);
    char *d = region_alloc(t->innermost, 8);
    CHECK_EQ(chunk_index_of(d), chunk_index_of(a));
    CHECK_EQ((uintptr_t)d - OBJECT_HEADER_SIZE, align_up((uintptr_t)c_end, PAGE));
    /* The untouched tail beyond d is still live, and not a dangling address. */
    char *tail = d + 2 * PAGE;
    CHECK_ACCESSIBLE(tail);
    struct dangling_info info;
    CHECK(!dangling_lookup((uintptr_t)tail, &info));
    CHECK(!chunk_address_is_dead(tail));
    char perms[8];
    CHECK(strcmp(maps_perms(tail, perms), "rw-p") == 0);
    region_end(t, 0);
}

static void test_calloc_after_previous_region(void)
{
    /* The next region's memory may hold the previous region's pages (moved there instead of
     * discarded); region_clear_reused (calloc) must still return zeroes, and a dangling
     * pointer must still fault. */
    test_setup("");
    struct thread_state *t = test_thread();
    for (int round = 0; round < 6; round++) {
        region_begin(t, MARKER_API, 0);
        struct region *r = t->innermost;
        char *objects[40];
        size_t sizes[40];
        for (int k = 0; k < 40; k++) {
            sizes[k] = 16 + (size_t)((k * 977 + round * 131) % 2500);
            objects[k] = region_alloc(r, sizes[k]);
            REQUIRE(objects[k] != NULL);
            region_clear_reused(r, objects[k], sizes[k]);
            CHECK_MSG(all_bytes_are(objects[k], sizes[k], 0),
                      "round %d object %d: calloc returned old bytes", round, k);
            memset(objects[k], 0xff, sizes[k]);
        }
        /* An undone object over old bytes, too. */
        region_free(t, objects[39]);
        char *again = region_alloc(r, sizes[39] + 5000);
        region_clear_reused(r, again, sizes[39] + 5000);
        CHECK(all_bytes_are(again, sizes[39] + 5000, 0));
        memset(again, 0xee, sizes[39] + 5000);
        region_end(t, 0);
        for (int k = 0; k < 40; k += 13)
            CHECK_FAULTED(objects[k]);
        CHECK_FAULTED(again + sizes[39] + 4999);
    }
}

/* Opens a region and fills its chunk to within a sixteenth of its end (too small a tail to
 * keep); returns its first object. */
static char *begin_region_filling_a_chunk(struct thread_state *t)
{
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    char *first = region_alloc(r, 1000);
    while (chunk_offset(r->cursor) < core_config.chunk_size - core_config.chunk_size / 16 &&
           chunk_index_of(r->cursor) == chunk_index_of(first))
        region_alloc(r, 1000);
    REQUIRE(chunk_index_of(r->cursor - 1) == chunk_index_of(first));
    return first;
}

static void test_small_tail_retires_chunk(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    char *first = begin_region_filling_a_chunk(t);
    struct core_counters before = test_stats();
    uint64_t q_before = core.quarantine_bytes;
    region_end(t, 0);
    struct core_counters after = test_stats();
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 1);
    CHECK_EQ(core.quarantine_bytes - q_before, core_config.chunk_size);
    /* Its physical pages went on to a fresh chunk, the thread's spare (no page is allocated
     * and zeroed anew for the next regions), and the whole old chunk is faulted, its
     * never-used end too. */
    REQUIRE(t->spare_count == 1);
    CHECK_NE(t->spares[0].chunk, chunk_index_of(first));
    CHECK_EQ(t->spares[0].offset, 0);
    /* Present, in the fresh chunk, are the pages the old one had touched: the next region
     * populates only beyond them. */
    CHECK(t->spares[0].present_end >= core_config.chunk_size - core_config.chunk_size / 16);
    CHECK_EQ(core.chunks[t->spares[0].chunk].populated_end, t->spares[0].present_end);
    /* ... and they are really there, before anything touches them (mincore). */
    size_t moved_pages = pages_present(chunk_address(t->spares[0].chunk), t->spares[0].present_end);
    CHECK_MSG(moved_pages == t->spares[0].present_end / PAGE_SIZE_BYTES, "%zu of %zu pages present",
              moved_pages, (size_t)(t->spares[0].present_end / PAGE_SIZE_BYTES));
    CHECK_FAULTED(first);
    CHECK_FAULTED(chunk_address(chunk_index_of(first)) + core_config.chunk_size - 1);
    CHECK_EQ(core.chunks[chunk_index_of(first)].state, CHUNK_QUARANTINED);
    region_begin(t, MARKER_API, 0);
    char *next = region_alloc(t->innermost, 100);
    CHECK_NE(chunk_index_of(next), chunk_index_of(first));
    region_end(t, 0);
}

static void test_calloc_after_one_chunk_span(void)
{
    /* A span of one chunk (an object above small_max) hands its pages on to a fresh chunk as
     * any retired chunk does: they are dirty with the object's bytes, and a later calloc there
     * must still return zeroes. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    size_t big = core_config.small_max + core_config.small_max / 2;
    REQUIRE(big < core_config.chunk_size);
    char *span = region_alloc(t->innermost, big);
    REQUIRE(span != NULL);
    memset(span, 0xa5, big);
    uint32_t span_chunk = chunk_index_of(span);
    region_end(t, 0);
    CHECK_FAULTED(span);
    bool reused_pages = false;
    for (unsigned i = 0; i < t->spare_count; i++)
        reused_pages |= t->spares[i].chunk != span_chunk && t->spares[i].present_end >= big;
    CHECK_MSG(reused_pages, "the span's pages did not go on to a spare chunk");
    unsigned old_bytes = 0;
    char *first_bad = NULL;
    for (int round = 0; round < 4; round++) {
        region_begin(t, MARKER_API, 0);
        struct region *r = t->innermost;
        for (size_t done = 0; done < core_config.chunk_size; done += 3000) {
            char *p = region_alloc(r, 3000);
            REQUIRE(p != NULL);
            region_clear_reused(r, p, 3000);
            if (!all_bytes_are(p, 3000, 0) && old_bytes++ == 0)
                first_bad = p;
            memset(p, 0x5a, 3000);
        }
        region_end(t, 0);
    }
    CHECK_MSG(old_bytes == 0, "calloc returned old bytes %u times, first at %p", old_bytes,
              (void *)first_bad);
}

static void test_old_kernel_faults_chunk_without_moving(void)
{
    /* kernel_features=none (a kernel without MREMAP_DONTUNMAP): a finished chunk is faulted
     * and quarantined whole as before, but no fresh chunk is taken for pages that cannot
     * move. */
    test_setup("kernel_features=none");
    CHECK(!core_config.kernel_moves_pages);
    CHECK(!core_config.kernel_populates);
    struct thread_state *t = test_thread();
    char *first = begin_region_filling_a_chunk(t);
    struct core_counters before = test_stats();
    region_end(t, 0);
    struct core_counters after = test_stats();
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 1);
    CHECK_EQ(after.chunks_mapped - before.chunks_mapped, 0);
    CHECK_EQ(after.bytes_recycled - before.bytes_recycled, 0);
    CHECK_EQ(t->spare_count, 0);
    CHECK_FAULTED(first);
    CHECK_FAULTED(chunk_address(chunk_index_of(first)) + core_config.chunk_size - 1);
    /* The next region starts in a fresh chunk and its calloc reads zero. */
    region_begin(t, MARKER_API, 0);
    char *next = region_alloc(t->innermost, 4096);
    region_clear_reused(t->innermost, next, 4096);
    CHECK(all_bytes_are(next, 4096, 0));
    CHECK_NE(chunk_index_of(next), chunk_index_of(first));
    region_end(t, 0);
}

static void test_span_pages_recycled(void)
{
    /* A span's physical pages go on to spares at region end, and into the next region's span
     * (moved, not faulted in and zeroed anew); calloc still reads zero there. */
    test_setup("");
    REQUIRE(core_config.kernel_moves_pages);
    struct thread_state *t = test_thread();
    size_t big = core_config.chunk_size + core_config.chunk_size / 2; /* a span of two chunks */
    region_begin(t, MARKER_API, 0);
    char *first = region_alloc(t->innermost, big);
    REQUIRE(first != NULL);
    memset(first, 0x77, big);
    region_end(t, 0);
    CHECK_FAULTED(first);
    unsigned with_pages = 0;
    for (unsigned i = 0; i < t->spare_count; i++)
        with_pages += t->spares[i].offset == 0 && t->spares[i].present_end > 0;
    CHECK_EQ(with_pages, 2);

    struct core_counters before = test_stats();
    region_begin(t, MARKER_API, 0);
    char *second = region_alloc(t->innermost, big);
    REQUIRE(second != NULL);
    CHECK_NE(chunk_index_of(second), chunk_index_of(first));
    struct core_counters after = test_stats();
    CHECK(after.bytes_recycled - before.bytes_recycled >= big);
    /* Present before any touch: the pages came with the spares. */
    size_t pages = align_up(big, PAGE_SIZE_BYTES) / PAGE_SIZE_BYTES;
    CHECK_MSG(pages_present(second, big) >= pages - 1, "%zu of %zu pages present",
              pages_present(second, big), pages);
    region_clear_reused(t->innermost, second, big);
    CHECK(all_bytes_are(second, big, 0));
    memset(second, 0x66, big);
    region_end(t, 0);
    CHECK_FAULTED(second);
    CHECK_FAULTED(second + big - 1);

    /* Two spans' pages waiting (two full chunks, two half ones), then a span of four chunks:
     * its third chunk gets half a chunk of old pages, its fourth too, with fresh pages between;
     * calloc must clear the old ones after the gap as well. */
    region_begin(t, MARKER_API, 0);
    for (int k = 0; k < 2; k++) {
        char *third = region_alloc(t->innermost, big);
        REQUIRE(third != NULL);
        memset(third, 0x55, big);
    }
    region_end(t, 0);
    with_pages = 0;
    for (unsigned i = 0; i < t->spare_count; i++)
        with_pages += t->spares[i].offset == 0 && t->spares[i].present_end > 0;
    CHECK_EQ(with_pages, 4);
    size_t huge = 3 * core_config.chunk_size + core_config.chunk_size / 2;
    region_begin(t, MARKER_API, 0);
    char *fourth = region_alloc(t->innermost, huge);
    REQUIRE(fourth != NULL);
    region_clear_reused(t->innermost, fourth, huge);
    size_t old_bytes = 0;
    for (size_t i = 0; i < huge; i++)
        old_bytes += fourth[i] != 0;
    CHECK_MSG(old_bytes == 0, "calloc left %zu old bytes in a span with moved pages", old_bytes);
    region_end(t, 0);
}

/* AnonHugePages (kB) of the mapping that holds p, from /proc/self/smaps. */
static long huge_kib_at(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    REQUIRE(f != NULL);
    char line[512];
    bool inside = false;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)p >= start && (uintptr_t)p < end;
            continue;
        }
        if (inside && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

static void test_chunks_use_huge_pages(void)
{
    /* With the kernel's transparent huge pages on "madvise" or "always", a chunk's first touch
     * brings a whole huge page (one fault, not 512); huge_pages=0 and old kernels do without. */
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f))
            mode[0] = '\0';
        fclose(f);
    }
    bool available = mode[0] && !strstr(mode, "[never]");
    test_setup("");
    CHECK_EQ(core_config.kernel_huge_pages, available);
    core_config.options.huge_pages = false; /* as huge_pages=0 would have probed */
    pages_probe_kernel(true);
    CHECK(!core_config.kernel_huge_pages);
    core_config.options.huge_pages = true;
    pages_probe_kernel(true);
    CHECK_EQ(core_config.kernel_huge_pages, available);
    if (!available)
        return;
    struct thread_state *t = test_thread();
    long best = 0;
    for (int attempt = 0; attempt < 3 && best < 2048; attempt++) {
        region_begin(t, MARKER_API, 0);
        char *p = region_alloc(t->innermost, 64);
        p[0] = 1;
        long kib = huge_kib_at(p);
        if (kib > best)
            best = kib;
        region_end(t, 0);
    }
    CHECK_MSG(best >= 2048, "no huge page behind a touched chunk (AnonHugePages %ld kB; THP %s)",
              best, mode);
}

static void test_whole_chunks_quarantined(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct core_counters before = test_stats();
    uint64_t q_before = core.quarantine_bytes;
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    /* Two and a half chunks of small objects, and a span of three chunks. */
    char *first = region_alloc(r, 4000);
    size_t total = 4000;
    char *p = first;
    while (total < 2 * core_config.chunk_size + core_config.chunk_size / 4) {
        p = region_alloc(r, 4000);
        total += 4000;
    }
    char *span = region_alloc(r, 2 * core_config.chunk_size + core_config.chunk_size / 2);
    REQUIRE(span != NULL);
    uint32_t current = chunk_index_of(p);
    region_end(t, 0);
    struct core_counters after = test_stats();
    /* Six chunks used, plus a fresh chunk for each chunk whose pages were handed on (the two
     * retired small-object chunks and the span's three). */
    CHECK_EQ(after.chunks_mapped - before.chunks_mapped, 11);
    /* Two retired chunks and the span's three; the current chunk's tail is a spare. */
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 5);
    CHECK_EQ(core.quarantine_bytes - q_before, 5 * core_config.chunk_size);
    CHECK_EQ(t->spare_count, 6);
    for (unsigned i = 0; i < 5; i++) /* the recycled pages wait there, at offset 0 */
        CHECK(t->spares[i].offset == 0 && t->spares[i].present_end > 0);
    CHECK_EQ(t->spares[5].chunk, current); /* the tail is taken first */
    CHECK_EQ(core.chunks[chunk_index_of(first)].state, CHUNK_QUARANTINED);
    CHECK_EQ(core.chunks[chunk_index_of(span)].state, CHUNK_QUARANTINED);
    CHECK_EQ(core.chunks[chunk_index_of(span + 2 * core_config.chunk_size)].state, CHUNK_QUARANTINED);
    CHECK_EQ(core.chunks[current].state, CHUNK_LIVE);
    CHECK_FAULTED(first);
    CHECK_FAULTED(span + 2 * core_config.chunk_size + 1);
    CHECK_FAULTED(p);
    /* The quarantine list holds the five chunks (spans by their head). */
    unsigned listed = 0, guard = 0;
    for (uint32_t link = core.quarantine_head; link && guard < 1000; guard++) {
        listed += core.chunks[link - 1].span_chunks;
        link = core.chunks[link - 1].next;
    }
    CHECK_EQ(listed, 5);
}

static void test_few_fault_calls_per_region(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    /* Fresh process: the region's chunks are adjacent, so few system calls fault them. */
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    size_t total = 0;
    while (total < 3 * core_config.chunk_size + core_config.chunk_size / 2) {
        region_alloc(r, 3000);
        total += 3000;
    }
    struct core_counters before = test_stats();
    region_end(t, 0);
    struct core_counters after = test_stats();
    /* Retired chunks hand their pages to fresh spare chunks (one call each, up to the spare
     * limit) or are faulted together, and the current chunk's used pages take one more: a
     * bounded number, not one per page. */
    CHECK(after.fault_calls - before.fault_calls >= 1);
    CHECK(after.fault_calls - before.fault_calls <= 4);
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 3);
    /* A small region: one call. */
    region_begin(t, MARKER_API, 0);
    region_alloc(t->innermost, 10);
    before = test_stats();
    region_end(t, 0);
    after = test_stats();
    CHECK_EQ(after.fault_calls - before.fault_calls, 1);
}

static void test_nesting(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    CHECK_EQ(region_begin(t, MARKER_API, 0), 1);
    struct region *outer = t->innermost;
    char *o1 = region_alloc(outer, 200);
    fill_pattern(o1, 200, 1);
    CHECK_EQ(region_begin(t, MARKER_API, 0), 2);
    struct region *inner = t->innermost;
    CHECK(inner != outer);
    CHECK(inner->outer == outer);
    CHECK_EQ(t->depth, 2);
    char *i1 = region_alloc(inner, 300);
    fill_pattern(i1, 300, 2);
    CHECK_NE(chunk_index_of(i1), chunk_index_of(o1));
    CHECK_EQ(region_begin(t, MARKER_API, 0), 3);
    char *j1 = region_alloc(t->innermost, 50);
    fill_pattern(j1, 50, 3);
    CHECK_NE(chunk_index_of(j1), chunk_index_of(o1));
    CHECK_NE(chunk_index_of(j1), chunk_index_of(i1));

    CHECK(region_end(t, 0));
    CHECK_EQ(t->depth, 2);
    CHECK(t->innermost == inner);
    CHECK_FAULTED(j1);
    CHECK(pattern_mismatch(i1, 300, 2) == SIZE_MAX);
    CHECK(pattern_mismatch(o1, 200, 1) == SIZE_MAX);

    CHECK(region_end(t, 0));
    CHECK_EQ(t->depth, 1);
    CHECK(t->innermost == outer);
    CHECK_FAULTED(i1);
    CHECK_ACCESSIBLE(o1);
    CHECK(pattern_mismatch(o1, 200, 1) == SIZE_MAX);
    /* The outer region goes on in its own chunk; its older objects are untouched. */
    char *o2 = region_alloc(outer, 200);
    CHECK_EQ(chunk_index_of(o2), chunk_index_of(o1));
    CHECK(o2 > o1);
    fill_pattern(o2, 200, 4);
    CHECK(pattern_mismatch(o1, 200, 1) == SIZE_MAX);
    /* A nested region that begins after the outer one allocated, and ends again. */
    CHECK_EQ(region_begin(t, MARKER_API, 0), 2);
    char *k1 = region_alloc(t->innermost, 64);
    CHECK_NE(chunk_index_of(k1), chunk_index_of(o1));
    region_end(t, 0);
    CHECK(pattern_mismatch(o2, 200, 4) == SIZE_MAX);

    CHECK(region_end(t, 0));
    CHECK_EQ(t->depth, 0);
    CHECK(t->innermost == NULL);
    CHECK_FAULTED(o1);
    CHECK_FAULTED(o2);
    CHECK(!region_end(t, 0));
}

static void test_nesting_inner_first(void)
{
    /* The outer region allocates only after an inner one has come and gone. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    region_begin(t, MARKER_API, 0);
    char *i1 = region_alloc(t->innermost, 100);
    region_end(t, 0);
    char *o1 = region_alloc(t->innermost, 100);
    REQUIRE(o1 != NULL);
    CHECK_ACCESSIBLE(o1);
    CHECK_FAULTED(i1);
    CHECK(page_of(o1 - OBJECT_HEADER_SIZE) > page_of(i1) ||
          chunk_index_of(o1) != chunk_index_of(i1));
    region_end(t, 0);
    CHECK_FAULTED(o1);
}

static void test_spare_limit(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    enum { NESTED = THREAD_SPARE_CHUNKS + 2 };
    char *objects[NESTED];
    for (int i = 0; i < NESTED; i++) {
        region_begin(t, MARKER_API, 0);
        objects[i] = region_alloc(t->innermost, 100);
    }
    for (int i = 0; i < NESTED; i++)
        for (int j = 0; j < i; j++)
            CHECK_NE(chunk_index_of(objects[i]), chunk_index_of(objects[j]));
    struct core_counters before = test_stats();
    for (int i = 0; i < NESTED; i++)
        region_end(t, 0);
    struct core_counters after = test_stats();
    CHECK_EQ(t->spare_count, THREAD_SPARE_CHUNKS);
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, NESTED - THREAD_SPARE_CHUNKS);
    for (int i = 0; i < NESTED; i++)
        CHECK_FAULTED(objects[i]);
}

static void test_escaped_free(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 64);
    char *q = region_alloc(t->innermost, 64);
    char *r = region_alloc(t->innermost, 64);
    region_end(t, 0);
    uint64_t escaped = thread_counts(t).escaped_frees, ignored = thread_counts(t).frees_ignored;
    /* Freeing dead objects must not touch them (that would crash here). */
    region_free(t, q);
    CHECK_EQ(thread_counts(t).escaped_frees, escaped + 1);
    region_begin(t, MARKER_API, 0);
    char *live = region_alloc(t->innermost, 64);
    region_free(t, p);
    CHECK_EQ(thread_counts(t).escaped_frees, escaped + 2);
    CHECK_EQ(thread_counts(t).frees_ignored, ignored);
    /* The free did not undo anything in the live region. */
    char *live2 = region_alloc(t->innermost, 64);
    CHECK(live2 > live);
    /* Without a thread record the count goes to the global counters. */
    uint64_t global = core_counters.retired.escaped_frees;
    region_free(NULL, r);
    CHECK_EQ(core_counters.retired.escaped_frees, global + 1);
    region_end(t, 0);
    struct core_counters c = test_stats();
    CHECK(c.retired.escaped_frees >= 3);
}

static void test_escaped_free_counted_once(void)
{
    /* hazards.md: count an escaped object once, however many times it is freed. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 64);
    region_alloc(t->innermost, 64);
    region_end(t, 0);
    uint64_t before = test_stats().retired.escaped_frees;
    region_free(t, p);
    region_free(t, p);
    region_free(t, p);
    CHECK_EQ(test_stats().retired.escaped_frees - before, 1);
}

static void test_dangling_negative(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct dangling_info info;
    int on_stack = 0;
    /* Not ours at all. */
    CHECK(!dangling_lookup((uintptr_t)&on_stack, &info));
    CHECK(!dangling_lookup(0, &info));
    CHECK(!dangling_lookup(core_config.base - 1, &info));
    CHECK(!dangling_lookup(core_config.base + core_config.size, &info));
    CHECK(!core_owns(&on_stack));
    CHECK(core_owns((void *)core_config.base));
    CHECK(core_owns((void *)(core_config.base + core_config.size - 1)));
    CHECK(!core_owns((void *)(core_config.base + core_config.size)));
    /* Never handed out: wild, not dangling. */
    CHECK(!dangling_lookup(core_config.base + core_config.size - 1, &info));
    /* Live objects. */
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 100);
    CHECK(!dangling_lookup((uintptr_t)p, &info));
    CHECK(!chunk_address_is_dead(p));
    region_end(t, 0);
    CHECK(dangling_lookup((uintptr_t)p, &info));
}

static void test_map_count_bounded(void)
{
    /* Many small regions must not leave a kernel mapping behind each (vm.max_map_count). */
    test_setup("");
    struct thread_state *t = test_thread();
    for (int i = 0; i < 50; i++) { /* warm up: the first chunks split the reservation */
        region_begin(t, MARKER_API, 0);
        region_alloc(t->innermost, 100);
        region_end(t, 0);
    }
    unsigned maps_before = maps_count();
    struct core_counters before = test_stats();
    for (int i = 0; i < 2000; i++) {
        region_begin(t, MARKER_API, 0);
        char *p = region_alloc(t->innermost, 100 + (size_t)(i % 7) * 1000);
        p[0] = 1;
        region_end(t, 0);
    }
    struct core_counters after = test_stats();
    unsigned maps_after = maps_count();
    CHECK_EQ(after.fault_calls - before.fault_calls, 2000);
    CHECK_MSG(maps_after <= maps_before + 8, "mappings grew from %u to %u over 2000 regions",
              maps_before, maps_after);
}

static void test_thread_exit_ends_regions(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct core_counters before = test_stats();
    char *objects[3];
    for (int i = 0; i < 3; i++) {
        region_begin(t, MARKER_API, 0);
        objects[i] = region_alloc(t->innermost, 500);
        memset(objects[i], i + 1, 500);
    }
    /* and a spare tail from an earlier region */
    CHECK_EQ(t->depth, 3);
    thread_state_exit(t);
    struct core_counters after = test_stats();
    CHECK_EQ(after.retired.regions_ended - before.retired.regions_ended, 3);
    CHECK_EQ(after.retired.region_allocs - before.retired.region_allocs, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_FAULTED(objects[i]);
        /* the spare tails went to quarantine with their chunks */
        char *end = chunk_address(chunk_index_of(objects[i])) + core_config.chunk_size - 1;
        CHECK_FAULTED(end);
        CHECK_EQ(core.chunks[chunk_index_of(objects[i])].state, CHUNK_QUARANTINED);
    }
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 3);
}

static const struct test_case cases[] = {
    TEST_CASE(end_faults_pages),
    TEST_CASE(empty_region),
    TEST_CASE(tail_reuse),
    TEST_CASE(calloc_after_previous_region),
    TEST_CASE(calloc_after_one_chunk_span),
    TEST_CASE(old_kernel_faults_chunk_without_moving),
    TEST_CASE(span_pages_recycled),
    TEST_CASE(chunks_use_huge_pages),
    TEST_CASE(small_tail_retires_chunk),
    TEST_CASE(whole_chunks_quarantined),
    TEST_CASE(few_fault_calls_per_region),
    TEST_CASE(nesting),
    TEST_CASE(nesting_inner_first),
    TEST_CASE(spare_limit),
    TEST_CASE(escaped_free),
    TEST_CASE(escaped_free_counted_once),
    TEST_CASE(dangling_negative),
    TEST_CASE(map_count_bounded),
    TEST_CASE(thread_exit_ends_regions),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
