/*
 * test_partial_reuse.c — partial_reuse=1 (Go's fast path): a region's partly used chunk goes
 * on to the thread's next region unfaulted, with no system call; the next region allocates
 * after the old objects, and no byte is handed out twice before the chunk is full, faulted
 * and quarantined.
 */
#include "check.h"

#define OPTIONS "partial_reuse=1"

static void test_no_fault_call(void)
{
    test_setup(OPTIONS);
    CHECK(core_config.options.partial_reuse);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *first = region_alloc(t->innermost, 100);
    REQUIRE(first != NULL);
    struct core_counters before = test_stats();
    uint64_t q_before = core.quarantine_bytes;
    for (int i = 0; i < 50; i++) {
        region_end(t, 0);
        region_begin(t, MARKER_API, 0);
        char *p = region_alloc(t->innermost, 100 + (size_t)i * 10);
        REQUIRE(p != NULL);
        CHECK_EQ(chunk_index_of(p), chunk_index_of(first));
    }
    region_end(t, 0);
    struct core_counters after = test_stats();
    CHECK_EQ(after.fault_calls, before.fault_calls);
    CHECK_EQ(after.bytes_faulted, before.bytes_faulted);
    CHECK_EQ(after.chunks_quarantined, before.chunks_quarantined);
    CHECK_EQ(after.chunks_mapped, before.chunks_mapped);
    CHECK_EQ(core.quarantine_bytes, q_before);
    CHECK_EQ(t->spare_count, 1);
    /* Stale but readable, as Go's arenas are until the chunk is done. */
    CHECK_ACCESSIBLE(first);
}

#define REGIONS 800 /* enough to fill a 2 MiB chunk (the default) */
#define PER_REGION 8

static char *region_objects[REGIONS][PER_REGION];
static size_t region_sizes[REGIONS][PER_REGION];

static void test_next_region_after_previous(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    uint32_t chunk = UINT32_MAX;
    int filled_at = -1;
    struct core_counters before = test_stats();
    for (int r = 0; r < REGIONS; r++) {
        region_begin(t, MARKER_API, 0);
        struct region *region = t->innermost;
        char *previous_end = NULL;
        if (r > 0) {
            int k = PER_REGION - 1;
            previous_end = region_objects[r - 1][k] + region_sizes[r - 1][k];
        }
        for (int k = 0; k < PER_REGION; k++) {
            size_t size = 16 + (size_t)((r * 7 + k * 13) % 40) * 24;
            char *p = region_alloc(region, size);
            REQUIRE(p != NULL);
            region_objects[r][k] = p;
            region_sizes[r][k] = size;
            fill_pattern(p, size, (uint32_t)(r * PER_REGION + k));
            if (chunk == UINT32_MAX)
                chunk = chunk_index_of(p);
            if (k == 0 && previous_end && chunk_index_of(p) == chunk_index_of(previous_end)) {
                /* Right after the previous region's objects: no page rounding, no gap
                 * beyond the header and alignment. */
                CHECK_MSG(p - OBJECT_HEADER_SIZE >= previous_end,
                          "region %d's first object %p overlaps the previous region (end %p)",
                          r, (void *)p, (void *)previous_end);
                CHECK_MSG(p - OBJECT_HEADER_SIZE < previous_end + OBJECT_ALIGN,
                          "region %d's first object %p is not right after %p", r, (void *)p,
                          (void *)previous_end);
            }
        }
        if (filled_at < 0 && chunk_index_of(region_objects[r][PER_REGION - 1]) != chunk)
            filled_at = r;
        region_end(t, 0);
        /* No byte handed out twice: every older object still in the first chunk keeps
         * its pattern (until that chunk is faulted). */
        if (filled_at < 0 && r % 16 == 15 && core.chunks[chunk].state == CHUNK_LIVE) {
            for (int o = 0; o <= r; o++)
                for (int k = 0; k < PER_REGION; k++)
                    CHECK_MSG(pattern_mismatch(region_objects[o][k], region_sizes[o][k],
                                               (uint32_t)(o * PER_REGION + k)) == SIZE_MAX,
                              "object %d/%d overwritten by a later region", o, k);
        }
    }
    REQUIRE(filled_at > 0);
    struct core_counters after = test_stats();
    /* The first chunk filled up: it is faulted whole (old objects included) and quarantined. */
    CHECK(after.chunks_quarantined - before.chunks_quarantined >= 1);
    CHECK(after.fault_calls - before.fault_calls >= 1);
    CHECK_EQ(core.chunks[chunk].state, CHUNK_QUARANTINED);
    CHECK_FAULTED(region_objects[0][0]);
    CHECK_FAULTED(chunk_address(chunk));
    CHECK_FAULTED(chunk_address(chunk) + core_config.chunk_size - 1);
}

static void test_undo_not_reused_by_next_region(void)
{
    /* Bytes of an undone allocation were handed out once: the next region starts after the
     * high-water mark, not after the undone cursor. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *keep = region_alloc(t->innermost, 32);
    char *gone = region_alloc(t->innermost, 1000);
    memset(gone, 0x5a, 1000);
    region_free(t, gone);
    region_end(t, 0);
    region_begin(t, MARKER_API, 0);
    char *next = region_alloc(t->innermost, 64);
    CHECK_EQ(chunk_index_of(next), chunk_index_of(keep));
    CHECK_MSG(next - OBJECT_HEADER_SIZE >= gone + 1000,
              "next region's object %p reuses bytes of the undone %p", (void *)next, (void *)gone);
    CHECK(all_bytes_are(gone, 1000, 0x5a));
    region_end(t, 0);
}

static void test_dangling_lookup_retired(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0xbe);
    uint64_t id = t->innermost->id;
    char *p = region_alloc(t->innermost, 100);
    region_end(t, 0xed);
    region_begin(t, MARKER_API, 0);
    char *q = region_alloc(t->innermost, 100);
    struct dangling_info info;
    /* The retired range is on record with its region, though still readable. */
    CHECK(dangling_lookup((uintptr_t)p, &info));
    CHECK(info.found_range);
    CHECK_EQ(info.range.region_id, id);
    CHECK_EQ(info.range.begin_pc, 0xbe);
    CHECK_EQ(info.range.end_pc, 0xed);
    CHECK(!dangling_lookup((uintptr_t)q, &info));
    CHECK(!chunk_address_is_dead(q));
    region_end(t, 0);
}

static void test_escaped_free_counted(void)
{
    /* A free of an object whose region ended is an escaped free in this mode too. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 100);
    region_alloc(t->innermost, 100);
    region_end(t, 0);
    region_begin(t, MARKER_API, 0);
    region_alloc(t->innermost, 100);
    uint64_t escaped = thread_counts(t).escaped_frees;
    region_free(t, p);
    CHECK_EQ(thread_counts(t).escaped_frees, escaped + 1);
    CHECK_MSG(chunk_address_is_dead(p), "chunk_address_is_dead is false for an object whose "
              "region ended (partial_reuse=1)");
    region_end(t, 0);
}

static void test_thread_exit_faults_spare(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 100);
    region_end(t, 0);
    CHECK_ACCESSIBLE(p);
    CHECK_EQ(t->spare_count, 1);
    struct core_counters before = test_stats();
    thread_state_exit(t);
    struct core_counters after = test_stats();
    /* Now the whole chunk is done: faulted from its start, old objects included. */
    CHECK_FAULTED(p);
    CHECK_FAULTED(chunk_address(chunk_index_of(p)));
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 1);
}

static void test_large_objects_still_faulted(void)
{
    /* Spans and full chunks are faulted at region end in this mode too. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *span = region_alloc(t->innermost, core_config.chunk_size);
    char *small = region_alloc(t->innermost, 100);
    struct core_counters before = test_stats();
    region_end(t, 0);
    struct core_counters after = test_stats();
    CHECK_FAULTED(span);
    CHECK_FAULTED(span + core_config.chunk_size - 1);
    CHECK_ACCESSIBLE(small);
    CHECK_EQ(after.chunks_quarantined - before.chunks_quarantined, 2);
}

static const struct test_case cases[] = {
    TEST_CASE(no_fault_call),
    TEST_CASE(next_region_after_previous),
    TEST_CASE(undo_not_reused_by_next_region),
    TEST_CASE(dangling_lookup_retired),
    TEST_CASE(escaped_free_counted),
    TEST_CASE(thread_exit_faults_spare),
    TEST_CASE(large_objects_still_faulted),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
