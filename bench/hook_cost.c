/*
 * hook_cost.c — what a function marker costs per call (issue 4's benchmark).
 *
 * A program that knows nothing of arenashim.  It times, in cycles (rdtsc) and ns:
 *   empty      a call of an empty noinline function (mark it: ARENASHIM_REGIONS=empty_call)
 *   region16k  a call of a function that allocates and frees 16 KiB of small objects
 *              (mark it: ARENASHIM_REGIONS=work_16k)
 *   kernel16k  the kernel work a strict region end cannot avoid for 16 KiB, done by hand
 *              beside it: the 4 touched pages made inaccessible (one mmap PROT_NONE) and
 *              4 fresh pages touched for the next round
 * Run it once plain and once with the markers: the differences are the hook's cost.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <x86intrin.h>

static volatile int calls_made;

/* Empty, but long enough to be hooked (a bare "lea; ret" is refused as too short). */
__attribute__((noinline)) int empty_call(int x)
{
    calls_made++;
    return x + 1;
}

static void *volatile sink;

__attribute__((noinline)) size_t work_16k(unsigned seed)
{
    void *objects[128];
    size_t total = 0;
    unsigned n = 0;
    while (total < 16384 && n < 128) {
        size_t size = 64 + (seed = seed * 1103515245u + 12345u) % 192;
        objects[n] = malloc(size);
        memset(objects[n], (int)n, size);
        total += size;
        n++;
    }
    for (unsigned i = 0; i < n; i++)
        free(objects[i]);
    sink = objects[0];
    return total;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define REPS 7

static void report(const char *name, double cycles[REPS], double ns[REPS])
{
    qsort(cycles, REPS, sizeof(double), compare_doubles);
    qsort(ns, REPS, sizeof(double), compare_doubles);
    printf("RESULT %s_cycles %.1f\nRESULT %s_ns %.1f\n", name, cycles[REPS / 2], name, ns[REPS / 2]);
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 2000000;
    long heavy = calls / 100;
    double cycles[REPS], ns[REPS];

    for (int r = 0; r < REPS; r++) {
        int x = 0;
        double t0 = now_ns();
        uint64_t c0 = __rdtsc();
        for (long i = 0; i < calls; i++)
            x = empty_call(x);
        uint64_t c1 = __rdtsc();
        double t1 = now_ns();
        cycles[r] = (double)(c1 - c0) / calls;
        ns[r] = (t1 - t0) / calls;
        sink = (void *)(intptr_t)x;
    }
    report("empty", cycles, ns);

    for (int r = 0; r < REPS; r++) {
        size_t total = 0;
        double t0 = now_ns();
        uint64_t c0 = __rdtsc();
        for (long i = 0; i < heavy; i++)
            total += work_16k((unsigned)i);
        uint64_t c1 = __rdtsc();
        double t1 = now_ns();
        cycles[r] = (double)(c1 - c0) / heavy;
        ns[r] = (t1 - t0) / heavy;
        sink = (void *)(uintptr_t)total;
    }
    report("region16k", cycles, ns);

    /* The unavoidable kernel work of a strict 16 KiB region: its 4 touched pages stop being
     * accessible (one mmap PROT_NONE, which also discards them), and the next region's 4
     * pages must be present (4 first-touch faults on fresh memory). */
    size_t bytes = 16384;
    char *area = mmap(NULL, bytes * (size_t)heavy * REPS, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        uint64_t c0 = __rdtsc();
        for (long i = 0; i < heavy; i++) {
            char *pages = area + ((size_t)r * heavy + i) * bytes;
            for (size_t p = 0; p < bytes; p += 4096)
                pages[p] = 1;
            mmap(pages, bytes, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        }
        uint64_t c1 = __rdtsc();
        double t1 = now_ns();
        cycles[r] = (double)(c1 - c0) / heavy;
        ns[r] = (t1 - t0) / heavy;
    }
    report("kernel16k", cycles, ns);
    return 0;
}
