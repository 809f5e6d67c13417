/*
 * test_arena.c — explicit arenas (core/arena.c): allocation with alignments, destruction
 * faults the memory, dangling_lookup names MARKER_ARENA, statistics, spare tails.
 */
#include "check.h"

static void test_alloc_alignments(void)
{
    test_setup("");
    struct region *a = arena_create(0x42);
    REQUIRE(a != NULL);
    CHECK(a->thread == NULL);
    CHECK_EQ(a->marker, MARKER_ARENA);
    char *objects[64];
    size_t sizes[64];
    unsigned n = 0;
    /* 0 means 16; then every power of two up to the chunk size. */
    for (size_t align = 0; align <= core_config.chunk_size; align = align ? align * 2 : 1) {
        size_t size = 24 + n * 40;
        char *p = arena_alloc(a, size, align);
        REQUIRE(p != NULL);
        size_t need = align < OBJECT_ALIGN ? OBJECT_ALIGN : align;
        CHECK_MSG(((uintptr_t)p & (need - 1)) == 0, "align %zu: %p", align, (void *)p);
        CHECK(core_owns(p));
        CHECK_EQ(region_object_size(p), size);
        fill_pattern(p, size, n);
        REQUIRE(n < 64);
        objects[n] = p;
        sizes[n] = size;
        n++;
    }
    /* Large objects. */
    char *big = arena_alloc(a, 3 * core_config.chunk_size, 0);
    REQUIRE(big != NULL);
    memset(big, 0x77, 3 * core_config.chunk_size);
    for (unsigned i = 0; i < n; i++)
        CHECK_MSG(pattern_mismatch(objects[i], sizes[i], i) == SIZE_MAX, "object %u damaged", i);
    /* Alignments that are not powers of two, or beyond a chunk, are refused. */
    CHECK(arena_alloc(a, 64, 24) == NULL);
    CHECK(arena_alloc(a, 64, 3) == NULL);
    CHECK(arena_alloc(a, 64, core_config.chunk_size * 2) == NULL);
    CHECK(arena_alloc(a, SIZE_MAX, 0) == NULL);
    arena_destroy(a, NULL, 0);
}

static void test_destroy_faults(void)
{
    test_setup("");
    struct region *a = arena_create(0xa1);
    REQUIRE(a != NULL);
    uint64_t id = a->id;
    char *p = arena_alloc(a, 100, 0);
    char *q = arena_alloc(a, 5000, 4096);
    char *big = arena_alloc(a, core_config.chunk_size, 64);
    REQUIRE(p && q && big);
    memset(p, 1, 100);
    memset(q, 2, 5000);
    memset(big, 3, core_config.chunk_size);
    struct core_counters before = test_stats();
    arena_destroy(a, NULL, 0xa2);
    struct core_counters after = test_stats();
    char *probes[] = { p, p + 99, q, q + 4999, big, big + core_config.chunk_size - 1 };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        char *x = probes[i];
        CHECK_FAULTED(x);
        struct dangling_info info;
        CHECK(dangling_lookup((uintptr_t)x, &info));
        CHECK(info.found_range);
        CHECK_EQ(info.range.marker, MARKER_ARENA);
        CHECK_EQ(info.range.region_id, id);
        CHECK_EQ(info.range.thread_number, 0);
        CHECK_EQ(info.range.begin_pc, 0xa1);
        CHECK_EQ(info.range.end_pc, 0xa2);
    }
    /* With no thread to take its tail, the arena's chunk goes to quarantine whole, and so
     * does the span (2 chunks). */
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 3);
    CHECK(after.fault_calls > before.fault_calls);
}

static void test_destroy_gives_tail_to_caller(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct region *a = arena_create(0);
    char *p = arena_alloc(a, 100, 0);
    REQUIRE(p != NULL);
    char *q = arena_alloc(a, 3 * PAGE_SIZE_BYTES, 0);
    REQUIRE(q != NULL);
    memset(p, 0xff, 100);
    memset(q, 0xff, 3 * PAGE_SIZE_BYTES);
    CHECK_EQ(t->spare_count, 0);
    arena_destroy(a, t, 0);
    CHECK_EQ(t->spare_count, 1);
    CHECK_FAULTED(p);
    region_begin(t, MARKER_API, 0);
    char *r = region_alloc(t->innermost, 100);
    CHECK_EQ(chunk_index_of(r), chunk_index_of(p));
    CHECK_EQ(((uintptr_t)r - OBJECT_HEADER_SIZE) % PAGE_SIZE_BYTES, 0);
    CHECK(r > q);
    CHECK_ACCESSIBLE(r);
    CHECK_FAULTED(q + 3 * PAGE_SIZE_BYTES - 1);
    /* calloc in the tail sees zeroes, whatever pages the arena left there. */
    region_clear_reused(t->innermost, r, 100);
    CHECK(all_bytes_are(r, 100, 0));
    char *s = region_alloc(t->innermost, 4 * PAGE_SIZE_BYTES);
    region_clear_reused(t->innermost, s, 4 * PAGE_SIZE_BYTES);
    CHECK(all_bytes_are(s, 4 * PAGE_SIZE_BYTES, 0));
    region_end(t, 0);
}

static void test_arena_beside_region(void)
{
    /* An arena does not disturb the thread's open region, nor does the region's end touch
     * the arena. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *r1 = region_alloc(t->innermost, 64);
    struct region *a = arena_create(0);
    char *a1 = arena_alloc(a, 64, 0);
    char *r2 = region_alloc(t->innermost, 64);
    CHECK(r2 == r1 + 64 + OBJECT_HEADER_SIZE);
    CHECK_NE(chunk_index_of(a1), chunk_index_of(r1));
    memset(a1, 9, 64);
    /* A free of an arena object from the thread is not an undo of anything. */
    uint64_t ignored = thread_counts(t).frees_ignored;
    region_free(t, a1);
    CHECK_EQ(thread_counts(t).frees_ignored, ignored + 1);
    char *a2 = arena_alloc(a, 64, 0);
    CHECK(a2 > a1);
    region_end(t, 0);
    CHECK_FAULTED(r1);
    CHECK_ACCESSIBLE(a1);
    CHECK(all_bytes_are(a1, 64, 9));
    arena_destroy(a, t, 0);
    CHECK_FAULTED(a1);
}

static void test_arena_stats(void)
{
    test_setup("");
    struct core_counters before = test_stats();
    for (int i = 0; i < 3; i++) {
        struct region *a = arena_create(0);
        arena_alloc(a, 10, 0);
        arena_alloc(a, 20, 64);
        arena_destroy(a, NULL, 0);
    }
    struct region *empty = arena_create(0);
    arena_destroy(empty, NULL, 0);
    struct core_counters after = test_stats();
    CHECK_EQ(after.retired.regions_begun - before.retired.regions_begun, 4);
    CHECK_EQ(after.retired.regions_ended - before.retired.regions_ended, 4);
    CHECK_EQ(after.retired.region_allocs - before.retired.region_allocs, 6);
    CHECK_EQ(after.retired.region_bytes - before.retired.region_bytes, 90);
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 3);
}

static const struct test_case cases[] = {
    TEST_CASE(alloc_alignments),
    TEST_CASE(destroy_faults),
    TEST_CASE(destroy_gives_tail_to_caller),
    TEST_CASE(arena_beside_region),
    TEST_CASE(arena_stats),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
