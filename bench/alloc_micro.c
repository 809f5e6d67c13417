/*
 * alloc_micro.c — allocation micro-benchmarks for any malloc, and for arenashim's regions.
 *
 * Knows nothing of arenashim but the weak API of include/arenashim.h: run it bare (glibc),
 * under LD_PRELOAD of any allocator, or under libarenashim.so.  With BENCH_REGIONS=1 and the
 * API present, every batch is wrapped in arenashim_region_begin/end, so the in-region cost
 * (including the amortised begin+end) is what is measured.
 *
 * Tests (each: BENCH_REPS repetitions after a warm-up, the median printed, in ns):
 *
 *   pairs            malloc(s) + free immediately, s from a fixed pseudo-random sequence of
 *                    sizes 8..512; ns per pair.  Regions: one region per BENCH_BATCH pairs
 *                    (default 1000).
 *   pairs_1region    regions only: the same with one region around the whole repetition,
 *                    the per-pair fast path without the amortised begin+end.
 *   build_free       N (BENCH_N, default 100000) objects of mixed sizes, then free all (in
 *                    allocation order); ns per object.  Regions: one region per round.
 *   build_free_2t    the same in 2 threads at once (each its own N, its own region); wall
 *                    time per object of one thread (equal to build_free if it scales).
 *   bump_pairs       the bare limit: a noinline bump allocator over a static buffer with a
 *   bump_build_free  noinline no-op free, in the same two patterns, in the same process.
 *   region_empty     API only: begin+end of an empty region; ns per region.
 *   region_16k       API only: begin, small objects of mixed sizes up to 16 KiB, free them,
 *                    end; ns per region.
 *   heap_16k         the same work without a region (whatever malloc is underneath).
 *
 * Each allocation writes one byte of its object, so that memory is really handed out.
 * Output: "# ..." comments and "RESULT <name> <ns>" lines (run_micro.py parses them).
 *
 * Environment: BENCH_REGIONS=1, BENCH_REPS (default 7), BENCH_PAIRS (pairs per repetition,
 * default 2000000), BENCH_N, BENCH_BATCH, BENCH_QUICK=1 (fewer and shorter repetitions),
 * BENCH_ONLY=name[,name...] (run only those tests: for profiling one of them).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arenashim.h"

#define SIZES_COUNT 8192 /* a power of two */
#define SIZE_MIN 8
#define SIZE_MAX_BYTES 512
#define MAX_REPS 64

static unsigned sizes[SIZES_COUNT];
static int use_regions;
static unsigned reps = 7;
static size_t pairs_per_rep = 2000000;
static size_t build_n = 100000;
static size_t batch = 1000;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void make_sizes(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < SIZES_COUNT; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sizes[i] = SIZE_MIN + (unsigned)(x % (SIZE_MAX_BYTES - SIZE_MIN + 1));
    }
}

static size_t env_size(const char *name, size_t fallback)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return fallback;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    return (*end == '\0' && n > 0) ? (size_t)n : fallback;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *values, unsigned count)
{
    qsort(values, count, sizeof *values, compare_double);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

/* Keeps the compiler from proving a malloc+free pair useless (GCC removes such pairs). */
static inline void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

static inline int regions_on(void)
{
    return use_regions && arenashim_region_begin && arenashim_region_end;
}

static inline void region_begin(void)
{
    if (regions_on())
        arenashim_region_begin();
}

static inline void region_end(void)
{
    if (regions_on())
        arenashim_region_end();
}

/* --- the bare bump pointer ------------------------------------------------------------- */

#define BUMP_BYTES ((size_t)64 << 20)
/* The pairs pattern wraps within a small window: an allocator whose free is immediate (or
 * undoes the last bump, as a region does) reuses the same cache lines, and a bump pointer
 * marching through 64 MiB would measure write-allocate cache misses instead. */
#define BUMP_PAIRS_WINDOW ((size_t)64 << 10)
static char bump_buffer[BUMP_BYTES] __attribute__((aligned(64)));
static size_t bump_offset;
static size_t bump_limit = BUMP_BYTES;

__attribute__((noinline, noipa)) static void *bump_alloc(size_t size)
{
    size_t need = (size + 15) & ~(size_t)15;
    if (__builtin_expect(bump_offset + need > bump_limit, 0))
        bump_offset = 0;
    void *p = bump_buffer + bump_offset;
    bump_offset += need;
    return p;
}

__attribute__((noinline, noipa)) static void bump_free(void *p)
{
    (void)p;
}

__attribute__((noinline, noipa)) static void bump_reset(void)
{
    bump_offset = 0;
}

/* --- the patterns, once for malloc and once for the bump pointer ---------------------- */

/* Returns ns per pair. */
static double run_pairs(size_t count, size_t per_region)
{
    uint64_t start = now_ns();
    size_t done = 0;
    while (done < count) {
        size_t n = count - done < per_region ? count - done : per_region;
        region_begin();
        for (size_t i = done; i < done + n; i++) {
            char *p = malloc(sizes[i & (SIZES_COUNT - 1)]);
            p[0] = (char)i;
            escape(p);
            free(p);
        }
        region_end();
        done += n;
    }
    return (double)(now_ns() - start) / (double)count;
}

static double run_bump_pairs(size_t count)
{
    bump_offset = 0;
    bump_limit = BUMP_PAIRS_WINDOW;
    uint64_t start = now_ns();
    for (size_t i = 0; i < count; i++) {
        char *p = bump_alloc(sizes[i & (SIZES_COUNT - 1)]);
        p[0] = (char)i;
        escape(p);
        bump_free(p);
    }
    double ns = (double)(now_ns() - start) / (double)count;
    bump_limit = BUMP_BYTES;
    return ns;
}

/* One round of build-then-free-all; returns its duration in ns. */
static uint64_t build_free_round(void **objects, size_t n, unsigned offset)
{
    uint64_t start = now_ns();
    region_begin();
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(sizes[(i + offset) & (SIZES_COUNT - 1)]);
        p[0] = (char)i;
        objects[i] = p;
    }
    escape(objects);
    for (size_t i = 0; i < n; i++)
        free(objects[i]);
    region_end();
    return now_ns() - start;
}

static uint64_t bump_build_free_round(void **objects, size_t n, unsigned offset)
{
    uint64_t start = now_ns();
    bump_reset();
    for (size_t i = 0; i < n; i++) {
        char *p = bump_alloc(sizes[(i + offset) & (SIZES_COUNT - 1)]);
        p[0] = (char)i;
        objects[i] = p;
    }
    escape(objects);
    for (size_t i = 0; i < n; i++)
        bump_free(objects[i]);
    return now_ns() - start;
}

/* --- two threads ------------------------------------------------------------------------ */

struct thread_job {
    pthread_barrier_t *barrier;
    void **objects;
    unsigned index;
    unsigned rounds; /* warm-up + timed */
    double *results; /* thread 0 writes wall ns per object per round */
};

static void *thread_main(void *arg)
{
    struct thread_job *job = arg;
    for (unsigned r = 0; r < job->rounds; r++) {
        pthread_barrier_wait(job->barrier);
        uint64_t start = now_ns();
        build_free_round(job->objects, build_n, job->index * 977 + r);
        pthread_barrier_wait(job->barrier);
        if (job->index == 0)
            job->results[r] = (double)(now_ns() - start) / (double)build_n;
    }
    return NULL;
}

static double run_build_free_2t(void)
{
    enum { THREADS = 2 };
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    pthread_t threads[THREADS];
    struct thread_job jobs[THREADS];
    double results[MAX_REPS + 1];
    for (unsigned t = 0; t < THREADS; t++) {
        jobs[t] = (struct thread_job){ &barrier, malloc(build_n * sizeof(void *)), t, reps + 1, results };
        if (jobs[t].objects == NULL) {
            fprintf(stderr, "alloc_micro: out of memory\n");
            exit(1);
        }
    }
    for (unsigned t = 0; t < THREADS; t++)
        if (pthread_create(&threads[t], NULL, thread_main, &jobs[t]) != 0) {
            fprintf(stderr, "alloc_micro: pthread_create failed\n");
            exit(1);
        }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    for (unsigned t = 0; t < THREADS; t++)
        free(jobs[t].objects);
    pthread_barrier_destroy(&barrier);
    return median(results + 1, reps);
}

/* --- region begin+end ------------------------------------------------------------------- */

#define REGION_16K_BYTES 16384
#define REGION_16K_MAX_OBJECTS (REGION_16K_BYTES / SIZE_MIN)

/* The 16 KiB workload: small objects of mixed sizes, then freed (in allocation order). */
static void work_16k(void **objects, unsigned offset)
{
    size_t total = 0, n = 0;
    while (total < REGION_16K_BYTES) {
        unsigned size = sizes[(n + offset) & (SIZES_COUNT - 1)];
        char *p = malloc(size);
        p[0] = (char)n;
        objects[n++] = p;
        total += size;
    }
    escape(objects);
    for (size_t i = 0; i < n; i++)
        free(objects[i]);
}

static double run_regions(int empty, int with_region, size_t count)
{
    static void *objects[REGION_16K_MAX_OBJECTS];
    uint64_t start = now_ns();
    for (size_t i = 0; i < count; i++) {
        if (with_region)
            arenashim_region_begin();
        if (!empty)
            work_16k(objects, (unsigned)i * 31);
        if (with_region)
            arenashim_region_end();
    }
    return (double)(now_ns() - start) / (double)count;
}

/* --- driver ------------------------------------------------------------------------------ */

typedef double (*test_fn)(void);

static double t_pairs(void) { return run_pairs(pairs_per_rep, regions_on() ? batch : pairs_per_rep); }
static double t_pairs_1region(void) { return run_pairs(pairs_per_rep, pairs_per_rep); }
static double t_bump_pairs(void) { return run_bump_pairs(pairs_per_rep); }

static void **build_objects;
static unsigned round_counter;
static double t_build_free(void)
{
    return (double)build_free_round(build_objects, build_n, round_counter++) / (double)build_n;
}
static double t_bump_build_free(void)
{
    return (double)bump_build_free_round(build_objects, build_n, round_counter++) / (double)build_n;
}
static double t_region_empty(void) { return run_regions(1, 1, pairs_per_rep / 20); }
static double t_region_16k(void) { return run_regions(0, 1, pairs_per_rep / 400); }
static double t_heap_16k(void) { return run_regions(0, 0, pairs_per_rep / 400); }

static const char *only; /* BENCH_ONLY: run just the tests with these names (comma-separated) */

static int selected(const char *name)
{
    if (only == NULL || *only == '\0')
        return 1;
    size_t len = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += len)
        if ((p == only || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
            return 1;
    return 0;
}

static void report(const char *name, test_fn fn)
{
    double values[MAX_REPS];
    if (!selected(name))
        return;
    fn(); /* warm-up: first touch of pages, thread records, lazily made structures */
    for (unsigned r = 0; r < reps; r++)
        values[r] = fn();
    double best = values[0];
    for (unsigned r = 1; r < reps; r++)
        if (values[r] < best)
            best = values[r];
    printf("RESULT %s %.3f\n", name, median(values, reps));
    printf("# %s best %.3f ns\n", name, best);
    fflush(stdout);
}

int main(void)
{
    const char *quick = getenv("BENCH_QUICK");
    int is_quick = quick && *quick && strcmp(quick, "0") != 0;
    if (is_quick) {
        reps = 5;
        pairs_per_rep = 1000000;
    }
    reps = (unsigned)env_size("BENCH_REPS", reps);
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    pairs_per_rep = env_size("BENCH_PAIRS", pairs_per_rep);
    build_n = env_size("BENCH_N", build_n);
    batch = env_size("BENCH_BATCH", batch);
    only = getenv("BENCH_ONLY");
    const char *r = getenv("BENCH_REGIONS");
    use_regions = r && *r && strcmp(r, "0") != 0;
    int api = arenashim_region_begin != NULL && arenashim_region_end != NULL;
    if (use_regions && !api)
        printf("# BENCH_REGIONS set but the arenashim API is absent: no regions\n");
    if ((size_t)build_n * ((SIZE_MAX_BYTES + 15) & ~15u) > BUMP_BYTES) {
        fprintf(stderr, "alloc_micro: BENCH_N too large for the bump buffer\n");
        return 1;
    }

    make_sizes();
    build_objects = malloc(build_n * sizeof(void *));
    if (build_objects == NULL) {
        fprintf(stderr, "alloc_micro: out of memory\n");
        return 1;
    }
    printf("# alloc_micro: api=%s regions=%s reps=%u pairs=%zu n=%zu batch=%zu sizes=%d..%d\n",
           api ? "yes" : "no", regions_on() ? "on" : "off", reps, pairs_per_rep, build_n, batch,
           SIZE_MIN, SIZE_MAX_BYTES);

    report("pairs", t_pairs);
    if (regions_on())
        report("pairs_1region", t_pairs_1region);
    report("bump_pairs", t_bump_pairs);
    report("build_free", t_build_free);
    report("bump_build_free", t_bump_build_free);
    if (selected("build_free_2t")) {
        printf("RESULT build_free_2t %.3f\n", run_build_free_2t());
        fflush(stdout);
    }
    if (api) {
        report("region_empty", t_region_empty);
        report("region_16k", t_region_16k);
        report("heap_16k", t_heap_16k);
    }
    free(build_objects);
    return 0;
}
