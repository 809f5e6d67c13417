/*
 * no_reuse.c — no address is handed out again after its region ended, before a scan.
 *
 *   no_reuse THREADS ROUNDS
 *
 * Run with scan=off, so that no scan ever runs: then whatever the revocation mode
 * (strict, partial_reuse, revoke_batch, with or without the kernel's page moves), an address
 * that a region handed out must never be handed out by a later region.  Each thread runs
 * ROUNDS regions of mixed sizes (small objects, medium ones, a span above a quarter chunk now
 * and then, a nested region, frees that undo the last allocation, realloc in place) and
 * records every object's [start, end) with its region's number, in memory of its own (mmap,
 * outside any region).  At the end the records of all threads are sorted by address; two
 * overlapping objects must belong to one region (an undone allocation's bytes may be handed
 * out again by the same region, never by another).  calloc() must also read zero throughout.
 * Prints "OK no_reuse regions=N objects=M".
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "testutil.h"

struct record {
    uintptr_t start, end;
    uint32_t region;
};

#define MAX_THREADS 8
#define OBJECTS_PER_ROUND 96

static unsigned rounds;
static struct record *records[MAX_THREADS];
static size_t record_count[MAX_THREADS];
static unsigned calloc_failures[MAX_THREADS];

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void note(unsigned thread, const void *p, size_t size, uint32_t region)
{
    if (p == NULL)
        return;
    struct record *r = &records[thread][record_count[thread]++];
    r->start = (uintptr_t)p;
    r->end = (uintptr_t)p + (size ? size : 1);
    r->region = region;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void one_region(unsigned thread, uint32_t region, uint64_t *rng, int depth)
{
    region_begin();
    unsigned count = 8 + (unsigned)(next_random(rng) % (OBJECTS_PER_ROUND / 2 - 8));
    for (unsigned i = 0; i < count; i++) {
        uint64_t r = next_random(rng);
        size_t n = r % 61 == 0 ? (600 << 10) + r % 4096   /* a span, above a quarter chunk */
                 : r % 9 == 0 ? 8192 + r % 40000          /* medium */
                 : 1 + r % 400;                           /* small */
        unsigned char *p;
        if (i % 4 == 3) {
            p = calloc(1, n);
            if (p && !all_zero(p, n))
                calloc_failures[thread]++;
        } else {
            p = malloc(n);
        }
        if (p == NULL)
            continue;
        memset(p, (int)(region & 0xff), n);
        if (r % 13 == 0) {
            free(p); /* the last object: its bytes may come back, in this region only */
            p = malloc(n / 2 + 1);
            n = n / 2 + 1;
            if (p)
                memset(p, 1, n);
        } else if (r % 17 == 0) {
            unsigned char *q = realloc(p, n + 100); /* in place when it is the last */
            if (q) {
                p = q;
                n += 100;
                memset(p, 2, n);
            }
        }
        note(thread, p, n, region);
    }
    if (depth == 0 && next_random(rng) % 5 == 0)
        one_region(thread, region + 1, rng, 1); /* a nested region, its own number */
    region_end();
}

static void *worker(void *arg)
{
    unsigned thread = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (thread + 1);
    for (unsigned round = 0; round < rounds; round++) {
        /* Region numbers: unique across threads; even for the outer, odd for a nested one. */
        uint32_t region = (uint32_t)((thread * rounds + round) * 2);
        one_region(thread, region, &rng, 0);
    }
    return NULL;
}

static int by_start(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
    if (threads < 1 || threads > MAX_THREADS || rounds < 1) {
        fprintf(stderr, "usage: no_reuse THREADS(1-%d) ROUNDS\n", MAX_THREADS);
        return 2;
    }
    size_t per_thread = (size_t)rounds * OBJECTS_PER_ROUND;
    for (unsigned t = 0; t < threads; t++) {
        records[t] = mmap(NULL, per_thread * sizeof(struct record), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(records[t] != MAP_FAILED);
        if (records[t] == MAP_FAILED)
            return 1;
    }
    pthread_t ids[MAX_THREADS];
    for (unsigned t = 0; t < threads; t++)
        CHECK(pthread_create(&ids[t], NULL, worker, (void *)(uintptr_t)t) == 0);
    for (unsigned t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);

    size_t total = 0;
    for (unsigned t = 0; t < threads; t++)
        total += record_count[t];
    struct record *all = mmap(NULL, total * sizeof *all, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(all != MAP_FAILED);
    if (all == MAP_FAILED)
        return 1;
    size_t n = 0;
    for (unsigned t = 0; t < threads; t++) {
        memcpy(all + n, records[t], record_count[t] * sizeof *all);
        n += record_count[t];
        CHECKF(calloc_failures[t] == 0, "thread %u: %u calloc()s returned old bytes", t,
               calloc_failures[t]);
    }
    qsort(all, n, sizeof *all, by_start);
    /* Sorted by start: an object overlaps the one before it, or the furthest-reaching one
     * before it, whenever it overlaps any earlier one. */
    unsigned reused = 0;
    size_t reach = 0; /* the record with the largest end so far */
    for (size_t i = 1; i < n; i++) {
        if (all[i].start < all[reach].end && all[i].region != all[reach].region) {
            if (reused++ < 5)
                printf("FAILED: [%#lx, %#lx) of region %u overlaps [%#lx, %#lx) of region %u\n",
                       (unsigned long)all[i].start, (unsigned long)all[i].end, all[i].region,
                       (unsigned long)all[reach].start, (unsigned long)all[reach].end,
                       all[reach].region);
        }
        if (all[i].end > all[reach].end)
            reach = i;
    }
    CHECKF(reused == 0, "%u objects reuse addresses of another region's objects", reused);
    if (tu_failures == 0)
        printf("OK no_reuse regions=%u objects=%zu\n", threads * rounds, n);
    return tu_failures ? 1 : 0;
}
