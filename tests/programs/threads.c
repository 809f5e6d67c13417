/*
 * threads.c — regions on many threads, and frees that cross threads.
 *
 *   threads regions [THREADS ROUNDS]   each thread opens ROUNDS regions (some nested), allocates
 *                                      mixed sizes, verifies its own data, ends them
 *   threads crossfree [ROUNDS]         thread A allocates in its open region and hands the
 *                                      pointers through a queue to thread B, which frees them
 *                                      (B sometimes inside a region of its own) before A ends it
 *   threads latefree                   B frees A's region objects after A's region ended
 *                                      (escaped frees: counted, never touched)
 *   threads arenas                     8 threads, each making and freeing explicit arenas; the
 *                                      last arena of each is freed by the main thread
 *   threads exit-open                  threads exit with regions still open
 *
 * Prints "OK threads-MODE" and exits 0 when every check holds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int thread_failures;

static void thread_fail(const char *what, unsigned id, unsigned round)
{
    pthread_mutex_lock(&fail_lock);
    if (thread_failures++ < 10)
        printf("FAILED thread %u round %u: %s\n", id, round, what);
    pthread_mutex_unlock(&fail_lock);
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* --- regions ----------------------------------------------------------------------------- */

static unsigned rounds = 200;

static void *region_worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1);
    enum { MAX_OBJECTS = 64 };
    for (unsigned round = 0; round < rounds; round++) {
        void *objects[MAX_OBJECTS];
        size_t sizes[MAX_OBJECTS];
        int depth = region_begin();
        if (shim_present() && depth != 1)
            thread_fail("depth != 1", id, round);
        unsigned count = 8 + (unsigned)(next_random(&rng) % (MAX_OBJECTS - 8));
        for (unsigned i = 0; i < count; i++) {
            uint64_t r = next_random(&rng);
            size_t n = (r % 16 == 0) ? 20000 + r % 100000 : (r % 97 == 0 ? 400000 : 1 + r % 700);
            if (i % 5 == 4) {
                void *p = calloc(1, n);
                if (p && ((unsigned char *)p)[n - 1] != 0)
                    thread_fail("calloc not zeroed", id, round);
                objects[i] = p;
            } else {
                objects[i] = malloc(n);
            }
            sizes[i] = n;
            if (objects[i] == NULL) {
                thread_fail("allocation failed", id, round);
                sizes[i] = 0;
                continue;
            }
            fill_pattern(objects[i], n, id * 1000 + i);
            if (i == 0 && shim_present() && !in_region(objects[i]))
                thread_fail("object not in region", id, round);
            if (r % 7 == 0 && i > 0) { /* free an earlier one, or the last one (undo) */
                unsigned k = (unsigned)(r % i);
                free(objects[k]);
                objects[k] = NULL;
            }
            if (r % 11 == 0 && objects[i]) { /* grow the last one */
                void *q = realloc(objects[i], n * 2);
                if (!q || !check_pattern(q, n, id * 1000 + i))
                    thread_fail("realloc lost data", id, round);
                objects[i] = q;
                fill_pattern(q, n * 2, id * 1000 + i);
                sizes[i] = n * 2;
            }
        }
        if (round % 10 == 0) { /* a nested region in between */
            int inner = region_begin();
            if (shim_present() && inner != 2)
                thread_fail("nested depth != 2", id, round);
            char *s = malloc(100);
            memset(s, 'i', 100);
            region_end();
        }
        for (unsigned i = 0; i < count; i++)
            if (objects[i] && !check_pattern(objects[i], sizes[i], id * 1000 + i))
                thread_fail("data overwritten", id, round);
        region_end();
        /* Heap traffic between regions. */
        void *h = malloc(1 + next_random(&rng) % 5000);
        if (in_region(h))
            thread_fail("heap object in region", id, round);
        free(h);
    }
    return NULL;
}

static int run_regions(int argc, char **argv)
{
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
    if (argc > 3)
        rounds = (unsigned)atoi(argv[3]);
    pthread_t tids[64];
    for (unsigned i = 0; i < threads; i++)
        CHECK(pthread_create(&tids[i], NULL, region_worker, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    CHECK(thread_failures == 0);
    if (shim_present()) {
        long long begun = stats_counter("regions_begun"), ended = stats_counter("regions_ended");
        long long expected = (long long)threads * rounds + (long long)threads * ((rounds + 9) / 10);
        CHECKF(begun == expected && ended == expected, "begun %lld ended %lld expected %lld", begun,
               ended, expected);
    }
    return finish("threads-regions");
}

/* --- cross-thread frees ------------------------------------------------------------------- */

#define QUEUE_SIZE 1024
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    void *items[QUEUE_SIZE];
    unsigned head, tail;
    unsigned freed; /* acknowledged frees */
    int done;
} queue = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0, 0 };

static void queue_push(void *p)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.tail - queue.head == QUEUE_SIZE)
        pthread_cond_wait(&queue.changed, &queue.lock);
    queue.items[queue.tail++ % QUEUE_SIZE] = p;
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
}

static void *queue_pop(void)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.tail == queue.head && !queue.done)
        pthread_cond_wait(&queue.changed, &queue.lock);
    void *p = queue.tail == queue.head ? NULL : queue.items[queue.head++ % QUEUE_SIZE];
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
    return p;
}

static void queue_ack(void)
{
    pthread_mutex_lock(&queue.lock);
    queue.freed++;
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
}

static void queue_wait_freed(unsigned count)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.freed < count)
        pthread_cond_wait(&queue.changed, &queue.lock);
    pthread_mutex_unlock(&queue.lock);
}

static int late_mode;
static unsigned cross_rounds = 20;
enum { PER_ROUND = 2000 };

static void *consumer(void *arg)
{
    (void)arg;
    unsigned n = 0;
    void *p;
    while ((p = queue_pop()) != NULL) {
        int own = (n % 3 == 0) && !late_mode;
        if (own)
            region_begin(); /* free from inside a region of this thread */
        if (!late_mode && !check_pattern(p, 24, 77))
            thread_fail("handed-over object damaged", 1, n);
        free(p);
        if (own) {
            void *mine = malloc(32);
            free(mine);
            region_end();
        }
        n++;
        queue_ack();
    }
    return NULL;
}

static int run_crossfree(int argc, char **argv)
{
    if (argc > 2)
        cross_rounds = (unsigned)atoi(argv[2]);
    pthread_t b;
    CHECK(pthread_create(&b, NULL, consumer, NULL) == 0);
    unsigned total = 0;
    for (unsigned round = 0; round < cross_rounds; round++) {
        /* Heap objects cross too: made before the region opens. */
        void *heap[PER_ROUND / 100];
        for (unsigned i = 0; i < PER_ROUND / 100; i++) {
            heap[i] = malloc(50);
            fill_pattern(heap[i], 24, 77);
        }
        region_begin();
        void *kept[64];
        for (unsigned i = 0; i < PER_ROUND; i++) {
            void *p = malloc(24 + (i % 300));
            fill_pattern(p, 24, 77);
            if (i < 64)
                kept[i] = p;
            if (i == 0 && shim_present() && !in_region(p))
                thread_fail("object not in region", 0, round);
            if (i >= 64)
                queue_push(p);
            if (i % 100 == 0)
                queue_push(heap[i / 100]);
        }
        total += PER_ROUND - 64 + PER_ROUND / 100;
        queue_wait_freed(total); /* B has freed them all while our region is open */
        for (unsigned i = 0; i < 64; i++)
            if (!check_pattern(kept[i], 24, 77))
                thread_fail("kept object damaged", 0, round);
        region_end();
    }
    pthread_mutex_lock(&queue.lock);
    queue.done = 1;
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
    pthread_join(b, NULL);
    CHECK(thread_failures == 0);
    return finish("threads-crossfree");
}

static int run_latefree(void)
{
    late_mode = 1;
    enum { COUNT = 500 };
    static void *objects[COUNT];
    long long escaped_before = stats_counter("escaped_frees");
    region_begin();
    for (unsigned i = 0; i < COUNT; i++)
        objects[i] = malloc(40 + i);
    region_end();
    pthread_t b;
    CHECK(pthread_create(&b, NULL, consumer, NULL) == 0);
    for (unsigned i = 0; i < COUNT; i++)
        queue_push(objects[i]);
    pthread_mutex_lock(&queue.lock);
    queue.done = 1;
    pthread_cond_broadcast(&queue.changed);
    pthread_mutex_unlock(&queue.lock);
    pthread_join(b, NULL);
    /* and this thread frees some of them a second time, after the region */
    for (unsigned i = 0; i < 10; i++)
        free(objects[i]);
    if (shim_present()) {
        long long escaped = stats_counter("escaped_frees") - escaped_before;
        CHECKF(escaped >= COUNT, "escaped_frees grew by %lld, expected >= %d", escaped, COUNT);
    }
    return finish("threads-latefree");
}

/* --- explicit arenas on several threads ---------------------------------------------------- */

static arenashim_arena *handed_over[8];

static void *arena_worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x2545f4914f6cdd1dull * (id + 3);
    for (unsigned round = 0; round < 100; round++) {
        arenashim_arena *arena = arenashim_arena_new();
        if (!arena) {
            thread_fail("arena_new failed", id, round);
            continue;
        }
        enum { N = 100 };
        char *objects[N];
        size_t sizes[N];
        for (unsigned i = 0; i < N; i++) {
            uint64_t r = next_random(&rng);
            sizes[i] = r % 50 == 0 ? 300000 : 1 + r % 2000;
            objects[i] = arenashim_arena_alloc(arena, sizes[i], (size_t)1 << (r % 8));
            if (!objects[i]) {
                thread_fail("arena_alloc failed", id, round);
                sizes[i] = 0;
                continue;
            }
            fill_pattern(objects[i], sizes[i], id + i);
        }
        for (unsigned i = 0; i < N; i++)
            if (objects[i] && !check_pattern(objects[i], sizes[i], id + i))
                thread_fail("arena data overwritten", id, round);
        if (round == 99) {
            handed_over[id] = arena; /* freed by the main thread */
        } else {
            arenashim_arena_free(arena);
        }
    }
    return NULL;
}

static int run_arenas(void)
{
    if (!arenashim_arena_new)
        return finish("threads-arenas");
    pthread_t tids[8];
    for (unsigned i = 0; i < 8; i++)
        CHECK(pthread_create(&tids[i], NULL, arena_worker, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < 8; i++)
        pthread_join(tids[i], NULL);
    for (unsigned i = 0; i < 8; i++)
        arenashim_arena_free(handed_over[i]);
    CHECK(thread_failures == 0);
    long long begun = stats_counter("regions_begun"), ended = stats_counter("regions_ended");
    CHECKF(begun == 800 && ended == 800, "begun %lld ended %lld, expected 800", begun, ended);
    return finish("threads-arenas");
}

/* --- threads that exit with regions open -------------------------------------------------- */

static void *leave_open(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < 3; i++) {
        region_begin();
        char *p = malloc(1000 + id);
        memset(p, (int)id, 1000 + id);
    }
    return NULL;
}

static int run_exit_open(void)
{
    for (unsigned wave = 0; wave < 5; wave++) {
        pthread_t tids[8];
        for (unsigned i = 0; i < 8; i++)
            CHECK(pthread_create(&tids[i], NULL, leave_open, (void *)(uintptr_t)(wave * 8 + i)) == 0);
        for (unsigned i = 0; i < 8; i++)
            pthread_join(tids[i], NULL);
    }
    if (shim_present()) {
        long long begun = stats_counter("regions_begun"), ended = stats_counter("regions_ended");
        CHECKF(begun == 120 && ended == 120, "begun %lld ended %lld, expected 120", begun, ended);
    }
    return finish("threads-exit-open");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "regions";
    if (strcmp(mode, "regions") == 0)
        return run_regions(argc, argv);
    if (strcmp(mode, "crossfree") == 0)
        return run_crossfree(argc, argv);
    if (strcmp(mode, "latefree") == 0)
        return run_latefree();
    if (strcmp(mode, "arenas") == 0)
        return run_arenas();
    if (strcmp(mode, "exit-open") == 0)
        return run_exit_open();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
