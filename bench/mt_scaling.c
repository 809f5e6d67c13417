/*
 * mt_scaling.c — allocation throughput as threads are added.
 *
 * A program that knows nothing of arenashim except the optional weak API: each of N threads
 * runs rounds of 1000 malloc+free pairs of mixed small sizes; with BENCH_REGIONS=1 and the
 * API present, each round is a region (begin, the pairs, end).  Prints, for each thread
 * count given on the command line, the total pairs per second and ns per pair per thread.
 *
 *     mt_scaling 1 2 4 8 16
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arenashim.h"

#define PAIRS_PER_ROUND 1000
#define ROUNDS 2000

static int use_regions;
static void *volatile sink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    for (int round = 0; round < ROUNDS; round++) {
        if (use_regions)
            arenashim_region_begin();
        for (int i = 0; i < PAIRS_PER_ROUND; i++) {
            seed = seed * 1103515245u + 12345u;
            size_t size = 8 + (seed >> 16) % 505;
            char *p = malloc(size);
            p[0] = (char)i;
            sink = p;
            free(p);
        }
        if (use_regions)
            arenashim_region_end();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    use_regions = getenv("BENCH_REGIONS") && arenashim_region_begin != NULL;
    for (int a = 1; a < argc; a++) {
        int threads = atoi(argv[a]);
        if (threads < 1 || threads > 256)
            continue;
        pthread_t ids[256];
        double start = now_s();
        for (int t = 0; t < threads; t++)
            pthread_create(&ids[t], NULL, worker, (void *)(uintptr_t)(t + 1));
        for (int t = 0; t < threads; t++)
            pthread_join(ids[t], NULL);
        double elapsed = now_s() - start;
        double pairs = (double)threads * ROUNDS * PAIRS_PER_ROUND;
        printf("RESULT threads=%d mpairs_per_s=%.1f ns_per_pair_per_thread=%.2f\n", threads,
               pairs / elapsed / 1e6, elapsed * 1e9 * threads / pairs);
        fflush(stdout);
    }
    return 0;
}
