/*
 * test_scan.c — the core's marking from several threads at once (built with TSan too).
 */
#include "check.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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

struct visited {
    unsigned count;
    uintptr_t start[64], end[64];
};

static void note_live(uintptr_t start, uintptr_t end, void *data)
{
    struct visited *v = data;
    if (v->count < 64) {
        v->start[v->count] = start;
        v->end[v->count] = end;
    }
    v->count++;
}

/* The range visited for the chunk holding p; false if none. */
static bool live_range_of(const struct visited *v, const void *p, uintptr_t *start, uintptr_t *end)
{
    uintptr_t chunk = (uintptr_t)chunk_address(chunk_index_of(p));
    for (unsigned i = 0; i < v->count && i < 64; i++)
        if (v->start[i] >= chunk && v->start[i] < chunk + core_config.chunk_size) {
            *start = v->start[i];
            *end = v->end[i];
            return true;
        }
    return false;
}

static void test_live_ranges_end_where_handed_out(void)
{
    /* The stop reads a live chunk only where objects may be: a region's current chunk up to
     * its cursor (rounded to a page), a spare up to its offset (nothing, in strict mode),
     * an arena's chunk whole. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *first = region_alloc(t->innermost, 100);
    region_end(t, 0); /* its chunk's tail becomes a spare: offset one page in */
    region_begin(t, MARKER_API, 0);
    char *current = region_alloc(t->innermost, 10000);
    REQUIRE(chunk_index_of(current) == chunk_index_of(first));
    struct region *arena = arena_create(0);
    char *in_arena = arena_alloc(arena, 64, 0);
    REQUIRE(in_arena != NULL);

    struct visited v = { 0 };
    scan_for_each_live_range(note_live, &v);
    uintptr_t start, end;
    uintptr_t chunk = (uintptr_t)chunk_address(chunk_index_of(current));
    REQUIRE(live_range_of(&v, current, &start, &end));
    CHECK_EQ(start, chunk + core.chunks[chunk_index_of(current)].faulted_end);
    CHECK_EQ(end, align_up((uintptr_t)t->innermost->cursor, PAGE_SIZE_BYTES));
    CHECK(end < chunk + core_config.chunk_size);
    REQUIRE(live_range_of(&v, in_arena, &start, &end));
    CHECK_EQ(end - (uintptr_t)chunk_address(chunk_index_of(in_arena)), core_config.chunk_size);
    region_end(t, 0);

    /* Now the chunk is a spare: strict mode faulted what was used, nothing is left to read. */
    REQUIRE(t->spare_count >= 1);
    memset(&v, 0, sizeof v);
    scan_for_each_live_range(note_live, &v);
    CHECK(!live_range_of(&v, current, &start, &end));
    arena_destroy(arena, NULL, 0);
}

/* A scan that stops a thread inside a system call of region end, where the kernel delivers the
 * stop signal: this executable's mprotect (it takes the C library's place for the core) runs
 * scan_for_each_live_range at the first PROT_NONE call once armed, as such a stop would. */
static bool probe_armed;
static unsigned probe_calls;
static struct visited probe_visits;

int mprotect(void *address, size_t len, int protection)
{
    if (probe_armed && protection == PROT_NONE) {
        probe_armed = false;
        probe_calls++;
        scan_for_each_live_range(note_live, &probe_visits);
    }
    return (int)syscall(SYS_mprotect, address, len, protection);
}

static void test_chunk_handed_on_is_read_only_where_handed_out(void)
{
    /* Strict region end pops the region, protects its pages (one mprotect) and then gives the
     * chunk's tail to the thread as a spare: stopped at that mprotect, the chunk is in no region
     * and no spare.  Its tail was never handed out, and once pages have moved in from done
     * chunks it holds their old words, which point at their quarantined addresses: read whole,
     * one thread of small regions kept hundreds of chunks in quarantine (bench/scale.py). */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *object = region_alloc(t->innermost, 100);
    REQUIRE(object != NULL);
    uintptr_t chunk = (uintptr_t)chunk_address(chunk_index_of(object));
    uintptr_t handed_out = align_up((uintptr_t)object + 100, PAGE_SIZE_BYTES);
    memset(&probe_visits, 0, sizeof probe_visits);
    probe_armed = true;
    region_end(t, 0);
    probe_armed = false;
    REQUIRE(probe_calls == 1); /* the stop landed inside region end */
    uintptr_t start, end;
    if (live_range_of(&probe_visits, object, &start, &end))
        CHECK_MSG(end <= handed_out, "read [%#lx, %#lx) of the chunk; handed out below %#lx",
                  (unsigned long)(start - chunk), (unsigned long)(end - chunk),
                  (unsigned long)(handed_out - chunk));
    /* And once it is a spare, nothing of it is read (the spare's offset is where it ended). */
    REQUIRE(t->spare_count >= 1);
    struct visited after = { 0 };
    scan_for_each_live_range(note_live, &after);
    CHECK(!live_range_of(&after, object, &start, &end));
}

static const struct test_case cases[] = {
    TEST_CASE(parallel_marks),
    TEST_CASE(live_ranges_end_where_handed_out),
    TEST_CASE(chunk_handed_on_is_read_only_where_handed_out),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
