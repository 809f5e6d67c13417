/*
 * stress.c — threads allocating in regions, ending them and scanning, all at once.
 *
 * THREADS threads run for SECONDS (argv[1], default 3): each keeps a few objects in a long-lived
 * outer region, and in a loop opens a region, allocates objects of mixed sizes (some large
 * enough to get spans of their own), fills each with a pattern of (thread, iteration, index),
 * sometimes nests a region, verifies every pattern, ends the region and, every few
 * iterations, calls arenashim_collect().  With a small quarantine_max automatic scans run as
 * well.  Every object must keep its contents to the end of its region (a chunk handed out
 * twice, or a stopped thread resumed with clobbered registers, shows up as a bad pattern).
 */
#include "scanutil.h"

#include <pthread.h>

#define THREADS 4
#define OBJECTS 96
#define OUTER_OBJECTS 16

struct object {
    unsigned char *p;
    size_t size;
    uint64_t seed;
};

static double deadline;
static volatile int failed;

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void fill(struct object *o)
{
    uint64_t x = o->seed;
    for (size_t i = 0; i < o->size; i += 8) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = o->size - i < 8 ? o->size - i : 8;
        memcpy(o->p + i, &x, n);
    }
}

static int verify(const struct object *o, int thread, const char *what)
{
    uint64_t x = o->seed;
    for (size_t i = 0; i < o->size; i += 8) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = o->size - i < 8 ? o->size - i : 8;
        if (memcmp(o->p + i, &x, n) != 0) {
            printf("FAILED: thread %d: %s object %p (size %zu) corrupted at offset %zu\n", thread,
                   what, (void *)o->p, o->size, i);
            fflush(stdout);
            failed = 1;
            return 0;
        }
    }
    return 1;
}

static size_t pick_size(uint64_t *state)
{
    uint64_t r = next_random(state);
    switch (r % 16) {
    case 0:
        return 300000 + r % 700000; /* a span of its own */
    case 1: case 2:
        return 4096 + r % 60000;
    default:
        return 1 + r % 512;
    }
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t state = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    /* Outside any region: these arrays are jemalloc memory. */
    struct object *objects = calloc(OBJECTS, sizeof *objects);
    struct object *outer = calloc(OUTER_OBJECTS, sizeof *outer);
    struct object *inner = calloc(OBJECTS, sizeof *inner);
    unsigned long iterations = 0;

    arenashim_region_begin();
    for (int i = 0; i < OUTER_OBJECTS; i++) {
        outer[i].size = pick_size(&state);
        outer[i].p = malloc(outer[i].size);
        outer[i].seed = next_random(&state);
        fill(&outer[i]);
    }
    while (!failed && su_now() < deadline) {
        iterations++;
        arenashim_region_begin();
        unsigned count = 8 + (unsigned)(next_random(&state) % (OBJECTS - 8));
        for (unsigned i = 0; i < count; i++) {
            objects[i].size = pick_size(&state);
            objects[i].p = malloc(objects[i].size);
            objects[i].seed = next_random(&state) ^ ((uint64_t)id << 56) ^ iterations;
            if (objects[i].p == NULL) {
                printf("FAILED: thread %d: region malloc(%zu) returned NULL\n", id, objects[i].size);
                failed = 1;
                break;
            }
            fill(&objects[i]);
        }
        if (iterations % 3 == 0) {
            arenashim_region_begin();
            unsigned n = 4 + (unsigned)(next_random(&state) % 32);
            for (unsigned i = 0; i < n; i++) {
                inner[i].size = pick_size(&state);
                inner[i].p = malloc(inner[i].size);
                inner[i].seed = next_random(&state);
                fill(&inner[i]);
            }
            for (unsigned i = 0; i < n; i++)
                verify(&inner[i], id, "nested-region");
            arenashim_region_end();
            memset(inner, 0, OBJECTS * sizeof *inner);
        }
        if (iterations % 5 == 0)
            arenashim_collect();
        for (unsigned i = 0; i < count && !failed; i++)
            verify(&objects[i], id, "region");
        arenashim_region_end();
        memset(objects, 0, OBJECTS * sizeof *objects);
        for (int i = 0; i < OUTER_OBJECTS && !failed; i++)
            verify(&outer[i], id, "outer-region");
    }
    arenashim_region_end();
    memset(outer, 0, OUTER_OBJECTS * sizeof *outer);
    free(objects);
    free(outer);
    free(inner);
    printf("thread %d: %lu iterations\n", id, iterations);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv)
{
    su_require_shim();
    double seconds = argc >= 2 ? atof(argv[1]) : 3.0;
    deadline = su_now() + seconds;
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            printf("FAILED: pthread_create\n");
            return 3;
        }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    su_collect_clean();
    su_stats_refresh();
    unsigned long long scans = su_json_number("scans"), reused = su_json_number("chunks_reused");
    printf("scans %llu, chunks_reused %llu, chunks_released %llu, scan_giveups %llu\n", scans, reused,
           su_json_number("chunks_released"), su_json_number("scan_giveups"));
    CHECK(!failed, "an object was corrupted or an allocation failed");
    CHECK(scans > 0, "no scan ran");
    CHECK(reused > 0, "no chunk was reused");
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
