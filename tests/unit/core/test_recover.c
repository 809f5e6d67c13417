/*
 * test_recover.c — on_dangling=recover: region end makes the memory inaccessible but keeps
 * its contents, so that the fault handler can report a dangling access and let it proceed.
 */
#include "check.h"
#include "scan.h"

#define OPTIONS "on_dangling=recover"

/* Makes the pages holding [p, p + size) accessible again, as the fault handler would. */
static void unprotect(const void *p, size_t size)
{
    uintptr_t start = page_of(p);
    uintptr_t end = align_up((uintptr_t)p + size, PAGE_SIZE_BYTES);
    REQUIRE(mprotect((void *)start, end - start, PROT_READ | PROT_WRITE) == 0);
}

static void test_contents_kept(void)
{
    test_setup(OPTIONS);
    CHECK_EQ(core_config.options.on_dangling, ON_DANGLING_RECOVER);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    uint64_t id = t->innermost->id;
    char *small = region_alloc(t->innermost, 100);
    char *pages = region_alloc(t->innermost, 3 * PAGE_SIZE_BYTES + 5);
    fill_pattern(small, 100, 1);
    fill_pattern(pages, 3 * PAGE_SIZE_BYTES + 5, 2);
    region_end(t, 0);
    CHECK_FAULTED(small);
    CHECK_FAULTED(pages + 3 * PAGE_SIZE_BYTES + 4);
    struct dangling_info info;
    CHECK(dangling_lookup((uintptr_t)pages, &info));
    CHECK(info.found_range);
    CHECK_EQ(info.range.region_id, id);
    unprotect(small, 100);
    unprotect(pages, 3 * PAGE_SIZE_BYTES + 5);
    CHECK_MSG(pattern_mismatch(small, 100, 1) == SIZE_MAX, "recover mode lost the contents");
    CHECK_MSG(pattern_mismatch(pages, 3 * PAGE_SIZE_BYTES + 5, 2) == SIZE_MAX,
              "recover mode lost the contents");
    CHECK_EQ(region_object_size(small), 100);
}

static void test_span_contents_kept(void)
{
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    size_t size = 2 * core_config.chunk_size + 1000;
    char *span = region_alloc(t->innermost, size);
    fill_pattern(span, size, 3);
    /* and a chunk retired whole by rollover */
    char *first = region_alloc(t->innermost, 1000);
    fill_pattern(first, 1000, 4);
    for (size_t total = 0; total < core_config.chunk_size; total += 1000)
        region_alloc(t->innermost, 1000);
    region_end(t, 0);
    CHECK_FAULTED(span);
    CHECK_FAULTED(span + size - 1);
    CHECK_FAULTED(first);
    unprotect(span, size);
    unprotect(first, 1000);
    CHECK(pattern_mismatch(span, size, 3) == SIZE_MAX);
    CHECK(pattern_mismatch(first, 1000, 4) == SIZE_MAX);
}

static void test_next_region_unaffected(void)
{
    /* The tail of the chunk is live for the next region as in strict mode. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *a = region_alloc(t->innermost, 100);
    region_end(t, 0);
    region_begin(t, MARKER_API, 0);
    char *b = region_alloc(t->innermost, 100);
    CHECK_EQ(chunk_index_of(a), chunk_index_of(b));
    CHECK_EQ(((uintptr_t)b - OBJECT_HEADER_SIZE) % PAGE_SIZE_BYTES, 0);
    CHECK_ACCESSIBLE(b);
    CHECK_FAULTED(a);
    region_end(t, 0);
}

/* A scan that found no pointer: every quarantined chunk is released. */
static uint64_t release_quarantine(void)
{
    uint64_t quarantined = scan_snapshot();
    uint64_t released = scan_release_unmarked();
    CHECK_EQ(released, quarantined);
    return released;
}

static void test_released_chunk_reads_zero(void)
{
    /* internal.h: an available chunk has no physical pages.  Keeping contents for dangling
     * readers ends when the scan releases the chunk: a new region must not see them (calloc
     * relies on chunk memory being zero), and the range faults again until it is reused. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    size_t size = core_config.chunk_size;
    char *span = region_alloc(t->innermost, size);
    memset(span, 0xff, size);
    region_end(t, 0);
    CHECK(release_quarantine() >= 2);
    CHECK_FAULTED(span);
    region_begin(t, MARKER_API, 0);
    char *again = region_alloc(t->innermost, size);
    REQUIRE(again != NULL);
    CHECK(again == span); /* the same chunks came back */
    region_clear_reused(t->innermost, again, size);
    CHECK_MSG(all_bytes_are(again, size, 0),
              "a released chunk kept the old region's bytes (calloc would return them)");
    region_end(t, 0);
}

static const struct test_case cases[] = {
    TEST_CASE(contents_kept),
    TEST_CASE(span_contents_kept),
    TEST_CASE(next_region_unaffected),
    TEST_CASE(released_chunk_reads_zero),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
