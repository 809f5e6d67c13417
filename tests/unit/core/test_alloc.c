/*
 * test_alloc.c — bump allocation in a region (core/region.c, internal.h fast paths).
 *
 * Alignment and sizes from 0 to chunk_size/4, no overlap (patterns), header readback,
 * chunk rollover, spans for large requests, aligned allocation up to the chunk size, the
 * free undo, region_clear_reused (calloc), resizing in place, absurd sizes.
 */
#include "check.h"

#define MAX_OBJECTS 20000

struct object {
    char *p;
    size_t size;
};

static struct object objects[MAX_OBJECTS];
static unsigned object_count;

static void remember(void *p, size_t size)
{
    REQUIRE(object_count < MAX_OBJECTS);
    fill_pattern(p, size, object_count);
    objects[object_count].p = p;
    objects[object_count].size = size;
    object_count++;
}

/* Every remembered object still holds its pattern and size, and no two overlap. */
static void verify_objects(void)
{
    for (unsigned i = 0; i < object_count; i++) {
        size_t bad = pattern_mismatch(objects[i].p, objects[i].size, i);
        CHECK_MSG(bad == SIZE_MAX, "object %u (%p, %zu bytes) overwritten at byte %zu", i,
                  (void *)objects[i].p, objects[i].size, bad);
        CHECK_MSG(region_object_size(objects[i].p) == objects[i].size,
                  "object %u header says %zu, expected %zu", i,
                  region_object_size(objects[i].p), objects[i].size);
    }
    /* Overlap check on the sorted intervals, headers included. */
    for (unsigned i = 1; i < object_count; i++) {
        struct object key = objects[i];
        unsigned j = i;
        while (j > 0 && objects[j - 1].p > key.p) {
            objects[j] = objects[j - 1];
            j--;
        }
        objects[j] = key;
    }
    for (unsigned i = 1; i < object_count; i++) {
        char *end = objects[i - 1].p + objects[i - 1].size;
        CHECK_MSG(end <= objects[i].p - OBJECT_HEADER_SIZE,
                  "objects overlap: [%p, %p) and header of %p", (void *)objects[i - 1].p,
                  (void *)end, (void *)objects[i].p);
        if (end > objects[i].p - OBJECT_HEADER_SIZE)
            break;
    }
    object_count = 0; /* sorted now: patterns were keyed by index */
}

static void test_alignment_and_sizes(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    CHECK_EQ(region_begin(t, MARKER_API, 0x1234), 1);
    struct region *r = t->innermost;
    REQUIRE(r != NULL);
    /* Every size up to 2048, then a sweep up to chunk_size/4 included. */
    for (size_t size = 0; size <= 2048; size++) {
        void *p = region_alloc(r, size);
        REQUIRE(p != NULL);
        CHECK_MSG(((uintptr_t)p & (OBJECT_ALIGN - 1)) == 0, "size %zu at %p misaligned", size, p);
        CHECK(core_owns(p));
        remember(p, size);
    }
    for (size_t size = 2049; size <= core_config.small_max; size += 2049 + size / 3) {
        void *p = region_alloc(r, size);
        REQUIRE(p != NULL);
        CHECK_MSG(((uintptr_t)p & 15) == 0, "size %zu at %p misaligned", size, p);
        CHECK(core_owns(p));
        remember(p, size);
    }
    void *p = region_alloc(r, core_config.small_max);
    REQUIRE(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    remember(p, core_config.small_max);
    /* Distinct pointers, even for size 0. */
    void *z1 = region_alloc(r, 0), *z2 = region_alloc(r, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    CHECK_EQ(region_object_size(z1), 0);
    verify_objects();
    CHECK(region_end(t, 0x5678));
}

static void test_small_max_boundary(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    void *small = region_alloc(r, 8);
    void *q = region_alloc(r, core_config.small_max);
    REQUIRE(small && q);
    /* chunk_size/4 is still a small object: same chunk as the one before. */
    CHECK_EQ(chunk_index_of(q), chunk_index_of(small));
    void *span = region_alloc(r, core_config.small_max + 1);
    REQUIRE(span != NULL);
    /* One more byte makes it a span: its header starts a chunk of its own. */
    CHECK_NE(chunk_index_of(span), chunk_index_of(small));
    CHECK_EQ(chunk_offset((char *)span - OBJECT_HEADER_SIZE), 0);
    CHECK_EQ(region_object_size(span), core_config.small_max + 1);
    CHECK_EQ(core.chunks[chunk_index_of(span)].span_chunks, 1);
    /* The bump pointer went on in the small chunk. */
    void *next = region_alloc(r, 8);
    CHECK_EQ(chunk_index_of(next), chunk_index_of(small));
    CHECK((char *)next > (char *)q);
    region_end(t, 0);
}

static void test_chunk_rollover(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    struct core_counters before = test_stats();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    size_t total = 0, size = 1000;
    uint32_t chunks[16];
    unsigned chunk_count = 0;
    while (total < 3 * core_config.chunk_size + core_config.chunk_size / 2) {
        void *p = region_alloc(r, size);
        REQUIRE(p != NULL);
        CHECK(((uintptr_t)p & 15) == 0);
        remember(p, size);
        total += size;
        uint32_t index = chunk_index_of(p);
        if (chunk_count == 0 || chunks[chunk_count - 1] != index) {
            for (unsigned i = 0; i < chunk_count; i++)
                CHECK_MSG(chunks[i] != index, "chunk %u used again after the region left it",
                          index);
            REQUIRE(chunk_count < 16);
            chunks[chunk_count++] = index;
        }
    }
    CHECK_EQ(chunk_count, 4);
    struct core_counters after = test_stats();
    CHECK_EQ(after.chunks_mapped - before.chunks_mapped, 4);
    /* Objects never straddle a chunk boundary. */
    for (unsigned i = 0; i < object_count; i++)
        CHECK(chunk_index_of(objects[i].p) == chunk_index_of(objects[i].p + objects[i].size - 1));
    verify_objects();
    region_end(t, 0);
}

static void test_large_spans(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    size_t cs = core_config.chunk_size;
    static const struct { size_t size_num, size_den; long adjust; unsigned chunks; } shapes[] = {
        { 1, 4, 1, 1 },   /* small_max + 1 */
        { 1, 2, 0, 1 },   /* half a chunk */
        { 1, 1, -16, 1 }, /* exactly one chunk with its header */
        { 1, 1, -15, 2 }, /* one byte too many for one chunk */
        { 1, 1, 0, 2 },   /* a chunk's worth */
        { 7, 2, 0, 4 },   /* three and a half chunks */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t size = (size_t)((long)(cs * shapes[i].size_num / shapes[i].size_den) + shapes[i].adjust);
        struct core_counters before = test_stats();
        char *p = region_alloc(r, size);
        REQUIRE(p != NULL);
        struct core_counters after = test_stats();
        CHECK_MSG(after.chunks_mapped - before.chunks_mapped == shapes[i].chunks,
                  "size %zu took %llu chunks, expected %u", size,
                  (unsigned long long)(after.chunks_mapped - before.chunks_mapped), shapes[i].chunks);
        CHECK_EQ(chunk_offset(p - OBJECT_HEADER_SIZE), 0);
        CHECK_EQ(core.chunks[chunk_index_of(p)].span_chunks, shapes[i].chunks);
        CHECK_EQ(region_object_size(p), size);
        /* Usable over its whole size. */
        fill_pattern(p, size, (uint32_t)i);
        CHECK(pattern_mismatch(p, size, (uint32_t)i) == SIZE_MAX);
        remember(p, size);
    }
    verify_objects();
    region_end(t, 0);
}

static void test_aligned(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    static const size_t sizes[] = { 1, 100, 5000 };
    for (size_t align = 1; align <= 65536; align *= 2) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            /* Shift the cursor so that alignment really has to skip something. */
            remember(region_alloc(r, 16 * (s + 1)), 16 * (s + 1));
            char *p = region_alloc_aligned(r, sizes[s], align);
            REQUIRE(p != NULL);
            size_t need = align < OBJECT_ALIGN ? OBJECT_ALIGN : align;
            CHECK_MSG(((uintptr_t)p & (need - 1)) == 0, "align %zu size %zu: %p", align,
                      sizes[s], (void *)p);
            CHECK_EQ(region_object_size(p), sizes[s]);
            remember(p, sizes[s]);
        }
    }
    /* Alignments up to the chunk size, which spans serve. */
    for (size_t align = 128 << 10; align <= core_config.chunk_size; align *= 2) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            char *p = region_alloc_aligned(r, sizes[s], align);
            REQUIRE(p != NULL);
            CHECK_MSG(((uintptr_t)p & (align - 1)) == 0, "align %zu size %zu: %p", align,
                      sizes[s], (void *)p);
            CHECK_EQ(region_object_size(p), sizes[s]);
            remember(p, sizes[s]);
        }
        char *big = region_alloc_aligned(r, core_config.chunk_size, align);
        REQUIRE(big != NULL);
        CHECK(((uintptr_t)big & (align - 1)) == 0);
        remember(big, core_config.chunk_size);
    }
    /* Beyond a chunk no span can promise the alignment: NULL, for the heap to serve. */
    CHECK(region_alloc_aligned(r, 64, core_config.chunk_size * 2) == NULL);
    verify_objects();
    region_end(t, 0);
}

static void test_free_undo_last(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    void *keep = region_alloc(r, 48);
    void *p = region_alloc(r, 64);
    uint64_t undone = thread_counts(t).frees_undone;
    region_free(t, p);
    CHECK_EQ(thread_counts(t).frees_undone, undone + 1);
    void *q = region_alloc(r, 64);
    CHECK(q == p);
    /* A larger object also starts there: the bump pointer went back. */
    region_free(t, q);
    void *big = region_alloc(r, 500);
    CHECK(big == p);
    CHECK_EQ(region_object_size(big), 500);
    /* Same for an aligned object. */
    region_free(t, big);
    void *aligned = region_alloc_aligned(r, 64, 256);
    CHECK(((uintptr_t)aligned & 255) == 0);
    region_free(t, aligned);
    void *after = region_alloc(r, 16);
    CHECK((char *)after <= (char *)aligned);
    CHECK((char *)after > (char *)keep);
    region_end(t, 0);
}

static void test_free_not_last(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    char *a = region_alloc(r, 64);
    char *b = region_alloc(r, 64);
    fill_pattern(a, 64, 1);
    fill_pattern(b, 64, 2);
    uint64_t ignored = thread_counts(t).frees_ignored, undone = thread_counts(t).frees_undone;
    region_free(t, a);
    CHECK_EQ(thread_counts(t).frees_ignored, ignored + 1);
    CHECK_EQ(thread_counts(t).frees_undone, undone);
    char *c = region_alloc(r, 64);
    CHECK(c != a);
    CHECK(c > b);
    /* Freeing did not touch the object. */
    CHECK(pattern_mismatch(a, 64, 1) == SIZE_MAX);
    CHECK(pattern_mismatch(b, 64, 2) == SIZE_MAX);

    /* Only the last allocation can be undone, and only once. */
    region_free(t, c); /* undone */
    region_free(t, b); /* b was last before c, but the undo goes back one step only */
    char *d = region_alloc(r, 64);
    CHECK(d == c);
    CHECK(pattern_mismatch(b, 64, 2) == SIZE_MAX);
    /* A span is not undone either: the next small object goes on in the chunk. */
    char *span = region_alloc(r, core_config.small_max * 2);
    region_free(t, span);
    char *e = region_alloc(r, 64);
    CHECK(e > d);
    CHECK(chunk_index_of(e) == chunk_index_of(d));
    region_end(t, 0);
}

static void test_clear_reused(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;

    /* Fresh chunk memory reads zero without any clearing. */
    char *fresh = region_alloc(r, 4096);
    CHECK(all_bytes_are(fresh, 4096, 0));
    region_clear_reused(r, fresh, 4096);
    CHECK(all_bytes_are(fresh, 4096, 0));

    char *neighbour = region_alloc(r, 64);
    memset(neighbour, 0xaa, 64);

    /* malloc 64, fill, free (undone), allocate again: calloc must see zeroes. */
    char *p = region_alloc(r, 64);
    memset(p, 0xff, 64);
    region_free(t, p);
    char *q = region_alloc(r, 64);
    CHECK(q == p);
    region_clear_reused(r, q, 64);
    CHECK_MSG(all_bytes_are(q, 64, 0), "calloc after an undo returned old bytes");
    CHECK(all_bytes_are(neighbour, 64, 0xaa));

    /* A larger object over the undone one: the old part is cleared, the rest was fresh. */
    memset(q, 0xff, 64);
    region_free(t, q);
    char *bigger = region_alloc(r, 256);
    CHECK(bigger == q);
    region_clear_reused(r, bigger, 256);
    CHECK(all_bytes_are(bigger, 256, 0));

    /* A smaller object, then a second one, both over dirty bytes. */
    memset(bigger, 0xee, 256);
    region_free(t, bigger);
    char *s1 = region_alloc(r, 32);
    region_clear_reused(r, s1, 32);
    char *s2 = region_alloc(r, 100);
    region_clear_reused(r, s2, 100);
    CHECK(all_bytes_are(s1, 32, 0));
    CHECK(all_bytes_are(s2, 100, 0));

    /* Over bytes freed by shrinking in place. */
    char *grown = region_alloc(r, 512);
    memset(grown, 0xdd, 512);
    CHECK(region_resize_in_place(r, grown, 16));
    char *over = region_alloc(r, 400);
    CHECK(over > grown && over < grown + 512);
    region_clear_reused(r, over, 400);
    CHECK_MSG(all_bytes_are(over, 400, 0), "calloc over a shrunk object returned old bytes");

    /* An aligned object over dirty bytes. */
    char *dirty = region_alloc(r, 8192);
    memset(dirty, 0xcc, 8192);
    region_free(t, dirty);
    char *aligned = region_alloc_aligned(r, 1000, 1024);
    CHECK(aligned >= dirty && aligned < dirty + 8192);
    region_clear_reused(r, aligned, 1000);
    CHECK(all_bytes_are(aligned, 1000, 0));

    /* Clearing does not touch memory outside the object. */
    CHECK(all_bytes_are(neighbour, 64, 0xaa));
    region_end(t, 0);
}

static void test_resize_in_place(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    char *p = region_alloc(r, 100);
    fill_pattern(p, 100, 9);
    CHECK(region_resize_in_place(r, p, 1000));
    CHECK_EQ(region_object_size(p), 1000);
    CHECK(pattern_mismatch(p, 100, 9) == SIZE_MAX);
    memset(p + 100, 0x11, 900);
    char *q = region_alloc(r, 32);
    CHECK(q >= p + 1000 + OBJECT_HEADER_SIZE);
    /* No longer the last object. */
    CHECK(!region_resize_in_place(r, p, 2000));
    CHECK_EQ(region_object_size(p), 1000);
    /* Shrinking gives the bytes back to the bump pointer. */
    CHECK(region_resize_in_place(r, q, 10));
    CHECK_EQ(region_object_size(q), 10);
    char *next = region_alloc(r, 16);
    CHECK(next == q + 16 + OBJECT_HEADER_SIZE);
    /* Larger than a small object: not in place. */
    CHECK(!region_resize_in_place(r, next, core_config.small_max + 1));
    /* Not past the end of the chunk. */
    char *tail = region_alloc(r, core_config.small_max);
    CHECK(tail != NULL);
    while ((size_t)(r->limit - r->cursor) > core_config.small_max / 2)
        tail = region_alloc(r, core_config.small_max / 4);
    CHECK(!region_resize_in_place(r, tail, core_config.small_max));
    CHECK(region_object_size(tail) == core_config.small_max / 4);
    /* Not for a NULL region. */
    CHECK(!region_resize_in_place(NULL, tail, 16));
    region_end(t, 0);
}

static void test_absurd_sizes(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    struct region *r = t->innermost;
    void *before = region_alloc(r, 16);
    CHECK(region_alloc(r, SIZE_MAX) == NULL);
    CHECK(region_alloc(r, SIZE_MAX - 100) == NULL);
    CHECK(region_alloc(r, SIZE_MAX / 2) == NULL);
    CHECK(region_alloc(r, core_config.size) == NULL);
    CHECK(region_alloc_aligned(r, SIZE_MAX, 64) == NULL);
    CHECK(region_alloc_aligned(r, SIZE_MAX - 4096, 4096) == NULL);
    CHECK(!region_resize_in_place(r, before, SIZE_MAX));
    /* The region still works. */
    void *after = region_alloc(r, 16);
    CHECK(after != NULL && after != before);
    region_end(t, 0);
}

static const struct test_case cases[] = {
    TEST_CASE(alignment_and_sizes),
    TEST_CASE(small_max_boundary),
    TEST_CASE(chunk_rollover),
    TEST_CASE(large_spans),
    TEST_CASE(aligned),
    TEST_CASE(free_undo_last),
    TEST_CASE(free_not_last),
    TEST_CASE(clear_reused),
    TEST_CASE(resize_in_place),
    TEST_CASE(absurd_sizes),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
