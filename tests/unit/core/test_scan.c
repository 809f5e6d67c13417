/*
 * test_scan.c — the core's marking from several threads at once (built with TSan too).
 */
#include "check.h"

#include <pthread.h>

#define DEAD_CHUNKS 24
#define MARKING_THREADS 4
#define WORDS 4096

static uintptr_t dead_objects[DEAD_CHUNKS];
static uintptr_t buffers[MARKING_THREADS][WORDS];

/* DEAD_CHUNKS one-chunk spans, each in a region of its own, ended: quarantined. */
static void make_dead_chunks(struct thread_state *t)
{
    for (int i = 0; i < DEAD_CHUNKS; i++) {
        region_begin(t, MARKER_API, 0);
        char *p = region_alloc(t->innermost, core_config.small_max + 1);
        REQUIRE(p != NULL);
        dead_objects[i] = (uintptr_t)p;
        region_end(t, 0);
    }
}

static void *mark_buffer(void *arg)
{
    uintptr_t *words = arg;
    struct scan_source source = { .kind = REFERRER_ANONYMOUS };
    /* Several passes, in pieces, as marking threads would. */
    for (int pass = 0; pass < 3; pass++)
        for (size_t at = 0; at < WORDS; at += 512)
            scan_range((uintptr_t)&words[at], (uintptr_t)&words[at + 512], &source);
    return NULL;
}

static void test_parallel_marks(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    make_dead_chunks(t);
    REQUIRE(scan_snapshot() >= DEAD_CHUNKS);
    /* Thread k points at chunks k, k+4, ... and all of them at chunks 20..23 (contended); the
     * chunks 16..19 are pointed at by nobody.  Words that are not pointers fill the rest. */
    for (int k = 0; k < MARKING_THREADS; k++) {
        for (size_t w = 0; w < WORDS; w++)
            buffers[k][w] = w * 2654435761u;
        size_t w = 7;
        for (int c = k; c < 16; c += MARKING_THREADS, w += 97)
            buffers[k][w] = dead_objects[c] + (uintptr_t)c * 8;
        for (int c = 20; c < DEAD_CHUNKS; c++, w += 131)
            buffers[k][w] = dead_objects[c];
    }
    pthread_t threads[MARKING_THREADS];
    for (int k = 0; k < MARKING_THREADS; k++)
        REQUIRE(pthread_create(&threads[k], NULL, mark_buffer, buffers[k]) == 0);
    for (int k = 0; k < MARKING_THREADS; k++)
        pthread_join(threads[k], NULL);

    CHECK_EQ(scan_marked_chunks(), 20);
    const struct scan_kept *kept;
    unsigned count = scan_kept(&kept);
    CHECK_EQ(count, 20);
    for (unsigned i = 0; i < count; i++)
        for (unsigned j = i + 1; j < count; j++)
            CHECK_MSG(kept[i].chunk != kept[j].chunk, "chunk %u remembered twice", kept[i].chunk);
    uint64_t released = scan_release_unmarked();
    CHECK_EQ(released, 4); /* chunks 16..19 */
    for (int c = 0; c < DEAD_CHUNKS; c++) {
        uint32_t index = chunk_index_of((void *)dead_objects[c]);
        bool unreferenced = c >= 16 && c < 20;
        CHECK_MSG((core.chunks[index].state == CHUNK_AVAILABLE) == unreferenced,
                  "chunk %d: state %u", c, core.chunks[index].state);
    }
}

static const struct test_case cases[] = {
    TEST_CASE(parallel_marks),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
