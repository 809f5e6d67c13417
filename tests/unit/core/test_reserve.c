/*
 * test_reserve.c — a small reservation (reserve=64M, chunk_size=1M: 64 chunks).  Running
 * out returns NULL (the preload then falls back to the heap) and counts reserve_exhausted;
 * it never crashes.  Released chunks come back zeroed.
 */
#include "check.h"
#include "scan.h"

#include <sys/resource.h>

#define OPTIONS "reserve=64M,chunk_size=1M"

static void test_geometry(void)
{
    test_setup(OPTIONS);
    CHECK_EQ(core_config.chunk_size, 1 << 20);
    CHECK_EQ(core_config.chunk_count, 64);
    CHECK_EQ(core_config.size, 64u << 20);
    CHECK_EQ(core_config.base % core_config.chunk_size, 0);
    CHECK_EQ(core_config.small_max, core_config.chunk_size / 4);
    char perms[8];
    CHECK(strcmp(maps_perms((void *)core_config.base, perms), "---p") == 0);
    CHECK(strcmp(maps_perms((void *)(core_config.base + core_config.size - 1), perms), "---p") == 0);
}

static void test_exhaustion_small(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    unsigned served = 0;
    for (unsigned i = 0; i < 10000; i++) {
        char *p = region_alloc(t->innermost, 60000);
        if (p == NULL)
            break;
        p[0] = 1;
        p[59999] = 2;
        served++;
    }
    struct core_counters c = test_stats();
    CHECK(served > 0 && served < 10000);
    CHECK_EQ(c.chunks_mapped, 64);
    CHECK(c.reserve_exhausted > 0);
    /* Still NULL, in every shape, and no crash. */
    CHECK(region_alloc(t->innermost, 16) == NULL);
    CHECK(region_alloc(t->innermost, 0) == NULL);
    CHECK(region_alloc(t->innermost, 2 << 20) == NULL);
    CHECK(region_alloc_aligned(t->innermost, 100, 4096) == NULL);
    /* One attempt per region: its later allocations go straight to the caller's fallback,
     * without asking for chunks (or scanning) again. */
    CHECK_EQ(test_stats().reserve_exhausted, c.reserve_exhausted);
    /* Nested regions and arenas get NULL too, each after an attempt of its own. */
    region_begin(t, MARKER_API, 0);
    CHECK(region_alloc(t->innermost, 100) == NULL);
    CHECK(region_alloc(t->innermost, 100) == NULL);
    CHECK_EQ(test_stats().reserve_exhausted, c.reserve_exhausted + 1);
    region_end(t, 0);
    struct region *a = arena_create(0);
    CHECK(arena_alloc(a, 100, 0) == NULL);
    arena_destroy(a, t, 0);
    CHECK(region_end(t, 0));
    c = test_stats();
    CHECK_EQ(c.chunks_quarantined, 64);
    CHECK_EQ(core.quarantine_bytes, 64u << 20);
    /* Nothing came free (no scan here): a new region gets NULL too. */
    region_begin(t, MARKER_API, 0);
    CHECK(region_alloc(t->innermost, 100) == NULL);
    region_end(t, 0);
}

static void test_exhaustion_spans(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    CHECK(region_alloc(t->innermost, 65u << 20) == NULL);
    CHECK(region_alloc(t->innermost, 64u << 20) == NULL); /* the header does not fit */
    CHECK_EQ(test_stats().chunks_mapped, 0);
    char *all = region_alloc(t->innermost, (64u << 20) - OBJECT_HEADER_SIZE);
    REQUIRE(all != NULL);
    all[0] = 1;
    all[(64u << 20) - OBJECT_HEADER_SIZE - 1] = 1;
    CHECK_EQ(test_stats().chunks_mapped, 64);
    uint64_t exhausted = test_stats().reserve_exhausted;
    CHECK(region_alloc(t->innermost, 300000) == NULL);
    CHECK(region_alloc(t->innermost, 10) == NULL);
    CHECK(test_stats().reserve_exhausted >= exhausted + 2);
    region_end(t, 0);
    CHECK_FAULTED(all);
    CHECK_EQ(test_stats().chunks_quarantined, 64);
}

static void test_exhaustion_fragmented(void)
{
    /* Enough chunks in total, but no run long enough for a span. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    /* Spans of one chunk each use up everything. */
    char *spans[64];
    unsigned n = 0;
    while (n < 64 && (spans[n] = region_alloc(t->innermost, 600000)) != NULL)
        n++;
    CHECK_EQ(n, 64);
    region_end(t, 0);
    /* A scan finds a pointer into every odd chunk: only the even ones come free. */
    static uintptr_t roots[32];
    for (unsigned i = 0; i < 64; i++)
        if (chunk_index_of(spans[i]) % 2 == 1)
            roots[chunk_index_of(spans[i]) / 2] = (uintptr_t)spans[i] + 1000;
    CHECK_EQ(scan_snapshot(), 64);
    struct scan_source source = { REFERRER_ANONYMOUS, 0, "test roots" };
    scan_range((uintptr_t)roots, (uintptr_t)(roots + 32), &source);
    CHECK_EQ(scan_release_unmarked(), 32);
    region_begin(t, MARKER_API, 0);
    CHECK(region_alloc(t->innermost, 1500000) == NULL); /* needs two adjacent chunks */
    char *one = region_alloc(t->innermost, 600000);
    CHECK(one != NULL);
    if (one)
        CHECK_EQ(chunk_index_of(one) % 2, 0);
    region_end(t, 0);
}

static void test_release_then_reuse(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *first = NULL;
    for (;;) {
        char *p = region_alloc(t->innermost, 200000);
        if (p == NULL)
            break;
        if (first == NULL)
            first = p;
        memset(p, 0xab, 200000);
    }
    region_end(t, 0);
    struct core_counters before = test_stats();
    CHECK_EQ(before.chunks_mapped, 64);
    /* A scan that found no pointers releases them all. */
    CHECK_EQ(scan_snapshot(), 64);
    CHECK_EQ(scan_release_unmarked(), 64);
    CHECK_EQ(core.quarantine_head, 0);
    CHECK_EQ(core.quarantine_bytes, 0);
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 200000);
    REQUIRE(p != NULL);
    CHECK(p == first);
    /* Fresh again: no old bytes (strict mode discarded them at region end). */
    CHECK(all_bytes_are(p, 200000, 0));
    unsigned served = 1;
    while (region_alloc(t->innermost, 200000))
        served++;
    struct core_counters after = test_stats();
    CHECK_EQ(after.chunks_mapped, 64);
    CHECK_EQ(after.chunks_reused - before.chunks_reused, 64);
    CHECK(served >= 64 * 4);
    region_end(t, 0);
}

static unsigned reclaim_calls;

/* The preload's reclaim hook runs a scan; this one finds no pointers. */
static bool reclaim_everything(void)
{
    reclaim_calls++;
    scan_snapshot();
    return scan_release_unmarked() > 0;
}

static void test_reclaim_on_exhaustion(void)
{
    /* When the reservation runs out, the core asks for a scan and tries again: allocation
     * goes on without a NULL, as long as the scan frees something. */
    test_setup(OPTIONS);
    core.reclaim = reclaim_everything;
    struct thread_state *t = test_thread();
    unsigned regions = 0;
    for (int i = 0; i < 40; i++) {
        region_begin(t, MARKER_API, 0);
        for (int k = 0; k < 8; k++) {
            char *p = region_alloc(t->innermost, 100000 + (i % 3) * 700000);
            CHECK_MSG(p != NULL, "region %d object %d: NULL although a scan could reclaim", i, k);
            if (p == NULL)
                break;
            p[0] = 1;
        }
        region_end(t, 0);
        regions++;
    }
    struct core_counters c = test_stats();
    CHECK(reclaim_calls > 0);
    CHECK_EQ(c.reserve_exhausted, 0);
    CHECK(c.chunks_reused > 0);
    CHECK(c.chunks_mapped <= 64);
    /* A hook that frees nothing: NULL, counted. */
    core.reclaim = NULL;
    region_begin(t, MARKER_API, 0);
    while (region_alloc(t->innermost, 100000) != NULL) {
    }
    CHECK(test_stats().reserve_exhausted > 0);
    region_end(t, 0);
}

static void test_thread_churn_does_not_leak_chunks(void)
{
    /* Thread records come and go; their spares go to quarantine, none is lost, and the
     * reservation is not used up by regions that end. */
    test_setup(OPTIONS);
    for (int i = 0; i < 32; i++) {
        struct thread_state *t = test_thread();
        region_begin(t, MARKER_API, 0);
        CHECK(region_alloc(t->innermost, 1000) != NULL);
        region_end(t, 0);
        thread_state_exit(t);
    }
    struct core_counters c = test_stats();
    CHECK_EQ(c.chunks_mapped, 32);
    CHECK_EQ(c.chunks_quarantined, 32);
    CHECK_EQ(c.retired.regions_ended, 32);
}

/* Limits the address space to what the process maps now plus extra bytes. */
static void limit_address_space(size_t extra)
{
    struct rlimit limit;
    size_t now = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    REQUIRE(statm != NULL && fscanf(statm, "%zu", &now) == 1);
    fclose(statm);
    limit.rlim_cur = limit.rlim_max = now * 4096 + extra;
    REQUIRE(setrlimit(RLIMIT_AS, &limit) == 0);
}

/* The sanitizers' runtimes map more as they go: an address-space limit would stop them,
 * not the code under test. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIMIT_TESTS_RUN 0
#else
#define LIMIT_TESTS_RUN 1
#endif

static void test_limit_shrinks_default_reserve(void)
{
    if (!LIMIT_TESTS_RUN)
        return;
    /* ulimit -v 8G: the default 256G cannot be had; a quarter of what is left is taken, the
     * quarantine scans at a quarter of that, and regions work. */
    limit_address_space((size_t)8 << 30);
    test_setup("");
    CHECK(!core_config.heap_only);
    CHECK(core_config.size <= (size_t)2 << 30);
    CHECK(core_config.size >= (size_t)1 << 30);
    CHECK(core_config.options.quarantine_max <= core_config.size / 4);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *p = region_alloc(t->innermost, 1000);
    REQUIRE(p != NULL);
    memset(p, 1, 1000);
    char *big = region_alloc(t->innermost, 64u << 20);
    REQUIRE(big != NULL);
    big[(64u << 20) - 1] = 1;
    CHECK(region_end(t, 0));
}

static void test_limit_too_small_runs_heap_only(void)
{
    if (!LIMIT_TESTS_RUN)
        return;
    /* Nothing useful fits: heap-only, never a failure; regions open and serve nothing, and no
     * scan is attempted to find chunk space that cannot exist. */
    limit_address_space((size_t)48 << 20);
    test_setup("");
    CHECK(core_config.heap_only);
    CHECK_EQ(core_config.size, 0);
    CHECK(!core_owns((void *)0x10000));
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    CHECK(region_alloc(t->innermost, 100) == NULL);
    CHECK(region_alloc(t->innermost, 1u << 20) == NULL);
    CHECK(region_end(t, 0));
    CHECK_EQ(test_stats().reserve_exhausted, 0);
}

static void test_limit_with_given_reserve_is_an_error(void)
{
    if (!LIMIT_TESTS_RUN)
        return;
    limit_address_space((size_t)1 << 30);
    struct options options;
    char message[512];
    options_set_defaults(&options);
    REQUIRE(options_parse(&options, "reserve=64G", message, sizeof message));
    CHECK(!core_init(&options, message, sizeof message));
    CHECK_STR_CONTAINS(message, "reserve");
    CHECK_STR_CONTAINS(message, "ulimit -v");
}

static const struct test_case cases[] = {
    TEST_CASE(limit_shrinks_default_reserve),
    TEST_CASE(limit_too_small_runs_heap_only),
    TEST_CASE(limit_with_given_reserve_is_an_error),
    TEST_CASE(geometry),
    TEST_CASE(exhaustion_small),
    TEST_CASE(exhaustion_spans),
    TEST_CASE(exhaustion_fragmented),
    TEST_CASE(release_then_reuse),
    TEST_CASE(reclaim_on_exhaustion),
    TEST_CASE(thread_churn_does_not_leak_chunks),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
