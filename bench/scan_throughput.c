/*
 * scan_throughput.c — the conservative scan's speed against a plain read of the same memory.
 *
 * Usage: scan_throughput SIZE [REPS [WRITE_PERCENT]]
 *        SIZE like 256M, 1G, 4G (binary units: MiB, GiB); WRITE_PERCENT default 1
 *
 * Allocates a heap of SIZE bytes with malloc outside any region, in blocks of 256 KiB, and
 * fills it with a mix of words: pointers into other heap blocks (1 in 4), small integers and
 * zeroes (1 in 4), random 64-bit words (the rest), and, when the arenashim API is present,
 * 1 word in 1024 pointing into a live explicit arena: a candidate the scan must look up (it
 * is in the chunk reservation but not quarantined).  Then, REPS times (default 5):
 *
 *   read    a vectorised (AVX2 where the CPU has it) sum of every word of every block: the
 *           memory read bandwidth for this heap, GB/s (10^9 bytes per second);
 *   scan    (API only) some region garbage is made and ended (so the quarantine is not
 *           empty; an empty quarantine makes arenashim_collect return at once), then
 *           arenashim_collect() runs; from the stats JSON, scan GB/s = delta scan_bytes /
 *           delta scan_ns (scan_ns is the stop-the-world pause, which includes reading
 *           /proc/self/maps and pagemap), and the pause is scan_pause_last_ns.
 *
 * While the scans run, a writer thread stores into a fixed random WRITE_PERCENT of the heap's
 * pages, one word at a time without pause (a program that keeps a small working set hot): in a
 * concurrent scan those pages are read again with the world stopped.  Reported beside the
 * pause: the concurrent phase's time, the bytes read with the world stopped, the marking
 * threads, the scan's throughput over both phases (scan_bytes / (concurrent + pause)), and
 * the writer's slowdown during arenashim_collect() against the 20 ms just before it.
 *
 * Prints medians as "RESULT <name> <value>" lines (run_micro.py parses them) and a summary.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arenashim.h"

#define BLOCK_BYTES ((size_t)256 << 10)
#define BLOCK_WORDS (BLOCK_BYTES / sizeof(uint64_t))
#define MAX_REPS 32
#define GARBAGE_BYTES ((size_t)4 << 20)
#define ARENA_OBJECTS 4096

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

static int parse_size(const char *text, size_t *out)
{
    char *end;
    double value = strtod(text, &end);
    if (end == text || value <= 0)
        return 0;
    double unit = 1;
    switch (*end) {
    case 'k': case 'K': unit = 1024.0; end++; break;
    case 'm': case 'M': unit = 1024.0 * 1024; end++; break;
    case 'g': case 'G': unit = 1024.0 * 1024 * 1024; end++; break;
    case '\0': break;
    default: return 0;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return 0;
    *out = (size_t)(value * unit);
    return 1;
}

/* --- the plain read ------------------------------------------------------------------------ */

__attribute__((target("avx2"))) static uint64_t sum_block_avx2(const uint64_t *words)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < BLOCK_WORDS; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(words + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(words + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(words + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(words + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

static uint64_t sum_block_scalar(const uint64_t *words)
{
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i < BLOCK_WORDS; i += 2) {
        a += words[i];
        b += words[i + 1];
    }
    return a + b;
}

static uint64_t (*sum_block)(const uint64_t *words);

static uint64_t read_all(uint64_t **blocks, size_t count)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += sum_block(blocks[i]);
    return sum;
}

/* --- the heap ------------------------------------------------------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dull;
static inline uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill(uint64_t **blocks, size_t count, void **arena_objects, unsigned arena_count)
{
    for (size_t b = 0; b < count; b++) {
        uint64_t *words = blocks[b];
        for (size_t i = 0; i < BLOCK_WORDS; i++) {
            uint64_t r = next_random();
            if (arena_count && ((b * BLOCK_WORDS + i) & 1023) == 511) {
                words[i] = (uint64_t)(uintptr_t)arena_objects[(((r >> 16) & 0xffffffff) * arena_count) >> 32];
                continue;
            }
            switch (r & 7) {
            case 0: case 1:
                words[i] = (uint64_t)(uintptr_t)blocks[(((r >> 8) & 0xffffffff) * count) >> 32] +
                           ((r >> 40) & (BLOCK_BYTES - 8));
                break;
            case 2:
                words[i] = (r >> 32) & 0xffff;
                break;
            case 3:
                words[i] = 0;
                break;
            default:
                words[i] = r;
                break;
            }
        }
    }
}

/* --- the writer -------------------------------------------------------------------------- */

static uint64_t **writer_pages; /* one word pointer per hot page */
static size_t writer_page_count;
static uint64_t writer_writes;  /* atomic */
static volatile int writer_stop;

static void *writer(void *arg)
{
    (void)arg;
    uint64_t state = 0x9e3779b97f4a7c15ull, count = 0;
    while (!writer_stop) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        uint64_t *page = writer_pages[(size_t)(state % writer_page_count)];
        page[(state >> 32) & 511] = (state >> 16) & 0xffff;
        if ((++count & 255) == 0)
            __atomic_store_n(&writer_writes, count, __ATOMIC_RELAXED);
    }
    return NULL;
}

static double writes_per_ns_over(uint64_t ns)
{
    uint64_t w0 = __atomic_load_n(&writer_writes, __ATOMIC_RELAXED), t0 = now_ns();
    while (now_ns() - t0 < ns) {
    }
    return (double)(__atomic_load_n(&writer_writes, __ATOMIC_RELAXED) - w0) / (double)(now_ns() - t0);
}

/* Region garbage: small objects in a region that ends, so whole chunks go to quarantine. */
static void make_garbage(void)
{
    arenashim_region_begin();
    size_t total = 0;
    unsigned n = 0;
    while (total < GARBAGE_BYTES) {
        size_t size = 32 + (n++ * 37) % 480;
        char *p = malloc(size);
        if (p == NULL)
            break;
        p[0] = 1;
        total += size;
    }
    arenashim_region_end();
}

static uint64_t stat_value(const char *json, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(json, pattern);
    return at ? strtoull(at + strlen(pattern), NULL, 10) : 0;
}

static char *stats(void)
{
    size_t len = arenashim_stats_json(NULL, 0) + 1;
    char *json = malloc(len + 4096); /* it may grow between the two calls */
    if (json == NULL) {
        fprintf(stderr, "scan_throughput: out of memory\n");
        exit(1);
    }
    arenashim_stats_json(json, len + 4096);
    return json;
}

int main(int argc, char **argv)
{
    size_t heap_bytes;
    if (argc < 2 || !parse_size(argv[1], &heap_bytes) || heap_bytes < BLOCK_BYTES) {
        fprintf(stderr, "usage: scan_throughput SIZE [REPS]   (SIZE like 100M, 1G, 4G)\n");
        return 2;
    }
    unsigned reps = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
    double write_percent = argc > 3 ? atof(argv[3]) : 1.0;
    if (reps < 1)
        reps = 1;
    if (reps > MAX_REPS)
        reps = MAX_REPS;
    int api = arenashim_region_begin && arenashim_region_end && arenashim_collect &&
              arenashim_stats_json && arenashim_arena_new && arenashim_arena_alloc;

    __builtin_cpu_init();
    sum_block = __builtin_cpu_supports("avx2") ? sum_block_avx2 : sum_block_scalar;

    size_t count = heap_bytes / BLOCK_BYTES;
    uint64_t **blocks = malloc(count * sizeof *blocks);
    if (blocks == NULL)
        return 1;
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(BLOCK_BYTES);
        if (blocks[i] == NULL) {
            fprintf(stderr, "scan_throughput: out of memory after %zu blocks\n", i);
            return 1;
        }
    }

    arenashim_arena *arena = NULL;
    void *arena_objects[ARENA_OBJECTS];
    unsigned arena_count = 0;
    if (api) {
        arena = arenashim_arena_new();
        for (; arena && arena_count < ARENA_OBJECTS; arena_count++) {
            arena_objects[arena_count] = arenashim_arena_alloc(arena, 64, 0);
            if (arena_objects[arena_count] == NULL)
                break;
        }
    }
    uint64_t fill_start = now_ns();
    fill(blocks, count, arena_objects, arena_count);
    printf("# scan_throughput: heap %zu bytes in %zu blocks of %zu KiB, filled in %.0f ms; api=%s\n",
           count * BLOCK_BYTES, count, BLOCK_BYTES >> 10, (double)(now_ns() - fill_start) / 1e6,
           api ? "yes" : "no");

    double read_gbps[MAX_REPS];
    uint64_t checksum = read_all(blocks, count); /* warm-up */
    for (unsigned r = 0; r < reps; r++) {
        uint64_t start = now_ns();
        checksum += read_all(blocks, count);
        read_gbps[r] = (double)(count * BLOCK_BYTES) / (double)(now_ns() - start);
    }
    double read = median(read_gbps, reps);
    printf("# checksum %llx\n", (unsigned long long)checksum);
    printf("RESULT heap_bytes %zu\n", count * BLOCK_BYTES);
    printf("RESULT read_gbps %.3f\n", read);
    if (!api) {
        printf("# arenashim API absent (run under LD_PRELOAD=libarenashim.so): no scan measured\n");
        return 0;
    }

    /* The writer's hot pages: a fixed random WRITE_PERCENT of the heap's. */
    size_t pages = count * (BLOCK_BYTES / 4096);
    writer_page_count = (size_t)((double)pages * write_percent / 100.0);
    pthread_t writer_thread;
    int writing = 0;
    if (writer_page_count > 0) {
        writer_pages = malloc(writer_page_count * sizeof *writer_pages);
        if (writer_pages == NULL)
            return 1;
        /* Whole pages: jemalloc places a large block at a random offset within its first
         * page (cache-oblivious layout), so a block's "page k" straddles two. */
        size_t per_block = BLOCK_BYTES / 4096 - 1;
        for (size_t i = 0; i < writer_page_count; i++) {
            size_t page = (size_t)(next_random() % (count * per_block));
            uintptr_t at = (uintptr_t)blocks[page / per_block] + (page % per_block) * 4096;
            writer_pages[i] = (uint64_t *)((at + 4095) & ~(uintptr_t)4095);
        }
        writing = pthread_create(&writer_thread, NULL, writer, NULL) == 0;
    }

    double scan_gbps[MAX_REPS], pause_ms[MAX_REPS], collect_ms[MAX_REPS], scanned_mb[MAX_REPS];
    double concurrent_ms[MAX_REPS], stopped_mb[MAX_REPS], total_gbps[MAX_REPS], slowdown[MAX_REPS];
    uint64_t threads = 0, concurrent_scans = 0;
    make_garbage();
    arenashim_collect(); /* warm-up: bitmaps, maps buffer, pagemap, threads, arming */
    unsigned done = 0;
    for (unsigned r = 0; r < reps; r++) {
        make_garbage();
        char *before = stats();
        double idle_rate = writing ? writes_per_ns_over(20 * 1000 * 1000) : 0;
        uint64_t writes_before = __atomic_load_n(&writer_writes, __ATOMIC_RELAXED);
        uint64_t start = now_ns();
        arenashim_collect();
        uint64_t elapsed = now_ns() - start;
        uint64_t writes = __atomic_load_n(&writer_writes, __ATOMIC_RELAXED) - writes_before;
        char *after = stats();
        uint64_t scans = stat_value(after, "scans") - stat_value(before, "scans");
        uint64_t bytes = stat_value(after, "scan_bytes") - stat_value(before, "scan_bytes");
        uint64_t ns = stat_value(after, "scan_ns") - stat_value(before, "scan_ns");
        uint64_t concurrent_ns = stat_value(after, "scan_concurrent_ns") - stat_value(before, "scan_concurrent_ns");
        uint64_t released = stat_value(after, "chunks_released") - stat_value(before, "chunks_released");
        if (scans != 1 || ns == 0) {
            printf("# repetition %u: no scan ran (scans +%llu); skipped\n", r, (unsigned long long)scans);
        } else {
            scan_gbps[done] = (double)bytes / (double)ns;
            pause_ms[done] = (double)stat_value(after, "scan_pause_last_ns") / 1e6;
            collect_ms[done] = (double)elapsed / 1e6;
            scanned_mb[done] = (double)bytes / 1e6;
            concurrent_ms[done] = (double)concurrent_ns / 1e6;
            stopped_mb[done] = (double)(stat_value(after, "scan_stopped_bytes") -
                                        stat_value(before, "scan_stopped_bytes")) / 1e6;
            total_gbps[done] = (double)bytes / (double)(ns + concurrent_ns);
            slowdown[done] = writing && writes ? idle_rate / ((double)writes / (double)elapsed) : 0;
            threads = stat_value(after, "scan_threads_last");
            concurrent_scans += stat_value(after, "scans_concurrent") - stat_value(before, "scans_concurrent");
            if (r == 0)
                printf("# scan read %.1f MB (heap %.1f MB); released %llu chunks\n", (double)bytes / 1e6,
                       (double)(count * BLOCK_BYTES) / 1e6, (unsigned long long)released);
            done++;
        }
        free(before);
        free(after);
    }
    writer_stop = 1;
    if (writing)
        pthread_join(writer_thread, NULL);
    if (done == 0) {
        printf("# no scan measured\n");
        return 1;
    }
    double scan = median(scan_gbps, done);
    double pause = median(pause_ms, done);
    printf("RESULT scan_gbps %.3f\n", scan);
    printf("RESULT scan_bytes %.0f\n", median(scanned_mb, done) * 1e6);
    printf("RESULT pause_ms %.3f\n", pause);
    printf("RESULT pause_ms_per_gib %.3f\n", pause / ((double)(count * BLOCK_BYTES) / (1 << 30)));
    printf("RESULT collect_ms %.3f\n", median(collect_ms, done));
    printf("RESULT concurrent_ms %.3f\n", median(concurrent_ms, done));
    printf("RESULT stopped_mb %.3f\n", median(stopped_mb, done));
    printf("RESULT total_gbps %.3f\n", median(total_gbps, done));
    printf("RESULT writer_slowdown %.3f\n", median(slowdown, done));
    printf("RESULT threads %llu\n", (unsigned long long)threads);
    printf("RESULT concurrent %llu\n", (unsigned long long)(concurrent_scans == done));
    printf("RESULT ratio %.3f\n", scan / read);
    printf("# %.1f MiB heap: read %.2f GB/s, pause %.2f ms (%s, %llu threads), concurrent phase %.2f ms, "
           "%.1f MB read stopped; writer %.2fx slower during the scan\n",
           (double)heap_bytes / 1048576.0, read, pause, concurrent_scans == done ? "concurrent" : "stopped",
           (unsigned long long)threads, median(concurrent_ms, done), median(stopped_mb, done),
           median(slowdown, done));
    if (arena)
        arenashim_arena_free(arena);
    return 0;
}
