/*
 * test_stats.c — the core's counters (core/stats.c): snapshots add live threads and retired
 * ones exactly once, open regions count what they allocated so far, every counter is named
 * once in the field lists the statistics JSON is written from, and marker counters follow
 * their regions.  (The JSON and text forms are the preload's: tests/unit/preload.)
 */
#include "check.h"

static uint64_t field(const struct core_counters *c, const char *name)
{
    for (unsigned i = 0; i < thread_counter_field_count; i++)
        if (strcmp(thread_counter_fields[i].name, name) == 0)
            return counter_field_value(&c->retired, &thread_counter_fields[i]);
    for (unsigned i = 0; i < core_counter_field_count; i++)
        if (strcmp(core_counter_fields[i].name, name) == 0)
            return counter_field_value(c, &core_counter_fields[i]);
    CHECK_MSG(false, "no counter named '%s'", name);
    return UINT64_MAX;
}

static void test_field_lists_name_every_counter_once(void)
{
    test_setup("");
    /* The design brief's keys are all counters; no name appears twice. */
    static const char *brief_keys[] = {
        "regions_begun", "regions_ended", "region_allocs", "region_bytes", "chunks_mapped",
        "chunks_quarantined", "chunks_reused", "scans", "scan_bytes", "dangling_accesses",
        "escaped_frees",
    };
    struct core_counters c = test_stats();
    for (size_t i = 0; i < sizeof brief_keys / sizeof brief_keys[0]; i++)
        CHECK_EQ(field(&c, brief_keys[i]), 0);
    CHECK_EQ(thread_counter_field_count * sizeof(uint64_t), sizeof(struct thread_counters));
    for (unsigned i = 0; i < core_counter_field_count; i++)
        for (unsigned j = i + 1; j < core_counter_field_count; j++)
            CHECK(strcmp(core_counter_fields[i].name, core_counter_fields[j].name) != 0);
    /* The offsets are the fields': writing one moves exactly the named value. */
    stats_add(&core_counters.dangling_accesses, 3);
    c = test_stats();
    CHECK_EQ(field(&c, "dangling_accesses"), 3);
    CHECK_EQ(field(&c, "fallback_allocs"), 0);
}

static void test_known_sequence(void)
{
    test_setup("");
    size_t cs = core_config.chunk_size;
    REQUIRE(core_markers_init(2));
    struct thread_state *t = test_thread();

    region_begin(t, MARKER_API, 0); /* R1: three objects */
    char *r1 = region_alloc(t->innermost, 10);
    region_alloc(t->innermost, 20);
    region_alloc(t->innermost, 30);
    region_end(t, 0);
    region_begin(t, 0, 0); /* R2 (marker 0): one free ignored, one undone */
    char *a = region_alloc(t->innermost, 100);
    region_alloc(t->innermost, 200);
    region_free(t, a);
    char *c2 = region_alloc(t->innermost, 300);
    region_free(t, c2);
    region_end(t, 0);
    region_begin(t, 0, 0); /* R3 (marker 0): empty */
    region_end(t, 0);
    region_begin(t, MARKER_API, 0); /* R4: a span of two chunks */
    region_alloc(t->innermost, cs);
    region_end(t, 0);
    struct region *arena = arena_create(0);
    arena_alloc(arena, 16, 0);
    arena_alloc(arena, 32, 256);
    arena_destroy(arena, NULL, 0);
    CHECK(region_free(t, r1)); /* an escaped free: the first of its object */
    CHECK(!region_free(t, r1));

    struct core_counters c = test_stats();
    CHECK_EQ(field(&c, "regions_begun"), 5);
    CHECK_EQ(field(&c, "regions_ended"), 5);
    CHECK_EQ(field(&c, "region_allocs"), 3 + 3 + 1 + 2);
    CHECK_EQ(field(&c, "region_bytes"), 60 + 600 + cs + 48);
    CHECK_EQ(field(&c, "chunks_mapped"), 1 + 2 + 1 + 2); /* and two fresh chunks take the span's pages */
    CHECK_EQ(field(&c, "chunks_quarantined"), 2 + 1);
    CHECK_EQ(quarantine_bytes(), 3 * cs);
    CHECK_EQ(field(&c, "escaped_frees"), 1);
    CHECK_EQ(field(&c, "frees_ignored"), 1);
    CHECK_EQ(field(&c, "frees_undone"), 1);
    CHECK_EQ(field(&c, "fault_calls"), 4);
    CHECK_EQ(marker_counters_of(0)->regions, 2);
    CHECK_EQ(marker_counters_of(0)->bytes, 600);
    CHECK_EQ(marker_counters_of(1)->regions, 0);
    CHECK(marker_counters_of(2) == NULL && marker_counters_of(MARKER_API) == NULL);

    /* Thread exit folds the counters once: the totals do not change. */
    thread_state_exit(t);
    c = test_stats();
    CHECK_EQ(field(&c, "regions_begun"), 5);
    CHECK_EQ(field(&c, "region_allocs"), 9);
    CHECK_EQ(field(&c, "escaped_frees"), 1);
    CHECK_EQ(field(&c, "chunks_quarantined"), 3 + 3); /* its spares too: a tail, the span's pages */
}

static void test_open_region_counts(void)
{
    /* Live threads count in the snapshot; the caller's own open regions count their objects. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    region_alloc(t->innermost, 40);
    struct core_counters c;
    stats_sum(&c, t);
    CHECK_EQ(c.retired.regions_begun, 1);
    CHECK_EQ(c.retired.regions_ended, 0);
    CHECK_EQ(c.retired.region_allocs, 1);
    stats_sum(&c, NULL);
    CHECK_EQ(c.retired.region_allocs, 0);
    region_end(t, 0);
    c = test_stats();
    CHECK_EQ(c.retired.regions_ended, 1);
    CHECK_EQ(c.retired.region_allocs, 1);
}

static void test_stats_max(void)
{
    uint64_t value = 5;
    stats_max(&value, 3);
    CHECK_EQ(value, 5);
    stats_max(&value, 9);
    CHECK_EQ(value, 9);
}

static const struct test_case cases[] = {
    TEST_CASE(field_lists_name_every_counter_once),
    TEST_CASE(known_sequence),
    TEST_CASE(open_region_counts),
    TEST_CASE(stats_max),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
