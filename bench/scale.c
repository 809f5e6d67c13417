/*
 * scale.c — does every operation stay O(1) (or O(log n)) and every resource bounded as a
 * process grows (issue 14, "Scale")?  bench/scale.py runs it under the preload and tabulates.
 *
 *   scale regions THREADS POINTS
 *       THREADS threads run small regions (arenashim_region_begin, 4-11 linked objects of
 *       16-255 bytes, half freed, end) until POINTS (a comma list of cumulative totals, like
 *       10000,100000,1000000) regions have run, the total split evenly among the threads; at
 *       each point (every thread stopped at a barrier) one line with the wall and CPU time
 *       per region of the interval since the previous point and the statistics.
 *   scale threads N TOTAL [COLLECTS]
 *       N threads alive at once (they start together and exit together), TOTAL regions split
 *       among them; then, with the N threads alive and idle, COLLECTS (5) explicit scans
 *       (arenashim_collect after some region garbage): the pause with N threads to stop.
 *   scale extents N [LARGE_PERCENT] [COLLECTS]
 *       N live heap blocks outside regions, linked (the first word of each points to the one
 *       before): LARGE_PERCENT (100) of them of 16-32 KiB, jemalloc's smallest large sizes,
 *       each its own extent (only its first page written); the rest 70:30 of 16-255 and
 *       256-4095 bytes, in slabs.  Then a thread runs regions without pause while the main
 *       thread makes COLLECTS (5) explicit scans; then every block is freed.  Times: build and
 *       free per block, the scan's pause and concurrent phase, bytes read.
 *   scale heap SIZE [TOUCH_EVERY] [BLOCK] [COLLECTS]
 *       a heap of SIZE (like 4G, 16G) in BLOCK (1M) mallocs of which only every TOUCH_EVERY-th
 *       (8) page is written (a mix of pointers, small integers and random words): sparse, so
 *       a 16 GiB heap fits a machine with less memory; then COLLECTS (5) explicit scans.
 *
 * Every mode prints "POINT key=value ..." lines (scale.py parses them): the measurement and
 * a snapshot of the statistics (kernel_mappings, metadata_bytes, quarantine_bytes, scans,
 * scan_ns, scan_pause_max_ns, chunks_*...), VmRSS and the lines of /proc/self/maps.  Without
 * the preload the program runs (plain mallocs) and the statistics read 0.
 */
#include "scale_common.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#define POINTS_MAX 16
#define COLLECTS_MAX 32

static void die(const char *message)
{
    fprintf(stderr, "scale: %s\n", message);
    exit(1);
}

static int parse_size(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (end == text || errno || value == 0)
        return 0;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (shift && (*end == 'b' || *end == 'B'))
        end++;
    if (*end != '\0')
        return 0;
    *out = (size_t)value << shift;
    return 1;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median_u64(uint64_t *values, unsigned count)
{
    if (count == 0)
        return 0;
    qsort(values, count, sizeof *values, compare_u64);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

/* The statistics every POINT line ends with. */
static void print_snapshot(const struct stats *s)
{
    static const char *keys[] = {
        "kernel_mappings", "metadata_bytes", "quarantine_bytes", "regions_begun", "regions_ended",
        "scans", "scans_concurrent", "scan_ns", "scan_concurrent_ns", "scan_bytes",
        "scan_stopped_bytes", "scan_pause_last_ns", "scan_pause_max_ns", "scan_giveups",
        "scan_threads_last", "scan_chunks_kept_last", "chunks_mapped", "chunks_reused", "chunks_quarantined",
        "chunks_released", "memory_calls", "fallback_allocs", "reclaims_skipped",
    };
    for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *at = stat_find(s, keys[i]);
        if (at)
            printf(" %s=%llu", keys[i], strtoull(at, NULL, 10));
        else
            printf(" %s=NA", keys[i]);
    }
    printf(" rss_kib=%ld peak_rss_kib=%ld maps_lines=%ld\n", rss_kib(), peak_rss_kib(), maps_lines());
    fflush(stdout);
}

/* One explicit scan with some garbage in quarantine; its figures from the statistics. */
struct collect_figures {
    uint64_t wall_ns, pause_ns, concurrent_ns, bytes, stopped_bytes, scans;
};

static struct collect_figures collect_once(void)
{
    struct collect_figures f = { 0 };
    make_garbage();
    struct stats before = stats_take();
    uint64_t start = now_ns();
    arenashim_collect();
    f.wall_ns = now_ns() - start;
    struct stats after = stats_take();
    f.scans = stat_of(&after, "scans") - stat_of(&before, "scans");
    f.pause_ns = stat_of(&after, "scan_pause_last_ns");
    f.concurrent_ns = stat_of(&after, "scan_concurrent_ns") - stat_of(&before, "scan_concurrent_ns");
    f.bytes = stat_of(&after, "scan_bytes") - stat_of(&before, "scan_bytes");
    f.stopped_bytes = stat_of(&after, "scan_stopped_bytes") - stat_of(&before, "scan_stopped_bytes");
    if (f.scans > 1) { /* automatic scans of another thread's garbage came in between: per scan */
        f.concurrent_ns /= f.scans;
        f.bytes /= f.scans;
        f.stopped_bytes /= f.scans;
    }
    stats_drop(&before);
    stats_drop(&after);
    return f;
}

/* COLLECTS explicit scans after a warm-up one; prints their medians (no newline). */
static void collects(unsigned count)
{
    uint64_t wall[COLLECTS_MAX], pause[COLLECTS_MAX], concurrent[COLLECTS_MAX], bytes[COLLECTS_MAX],
        stopped[COLLECTS_MAX], max_pause = 0;
    unsigned done = 0;
    if (count > COLLECTS_MAX)
        count = COLLECTS_MAX;
    if (!api_present()) {
        printf(" collects=0");
        return;
    }
    collect_once(); /* warm-up: buffers, write tracking, marking threads */
    for (unsigned i = 0; i < count; i++) {
        struct collect_figures f = collect_once();
        if (f.scans == 0)
            continue;
        wall[done] = f.wall_ns;
        pause[done] = f.pause_ns;
        concurrent[done] = f.concurrent_ns;
        bytes[done] = f.bytes;
        stopped[done] = f.stopped_bytes;
        if (f.pause_ns > max_pause)
            max_pause = f.pause_ns;
        done++;
    }
    printf(" collects=%u collect_wall_ns=%llu collect_pause_ns=%llu collect_pause_worst_ns=%llu "
           "collect_concurrent_ns=%llu collect_bytes=%llu collect_stopped_bytes=%llu",
           done, (unsigned long long)median_u64(wall, done), (unsigned long long)median_u64(pause, done),
           (unsigned long long)max_pause, (unsigned long long)median_u64(concurrent, done),
           (unsigned long long)median_u64(bytes, done), (unsigned long long)median_u64(stopped, done));
}

/* --- regions: a million regions, on one thread or several -------------------------------------- */

static pthread_barrier_t barrier;
static unsigned thread_count, point_count;
static uint64_t points[POINTS_MAX];
static uint64_t checksum; /* atomic */

static uint64_t share_of(uint64_t interval, unsigned index)
{
    return interval / thread_count + (index < interval % thread_count ? 1 : 0);
}

static void *regions_worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    uint64_t state = 0x9e3779b97f4a7c15ull * (index + 1), sum = 0;
    for (unsigned p = 0; p < point_count; p++) {
        uint64_t n = share_of(points[p] - (p ? points[p - 1] : 0), index);
        pthread_barrier_wait(&barrier);
        for (uint64_t i = 0; i < n; i++)
            sum += small_region(&state);
        pthread_barrier_wait(&barrier);
    }
    __atomic_fetch_add(&checksum, sum, __ATOMIC_RELAXED);
    return NULL;
}

static int mode_regions(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    thread_count = (unsigned)atoi(argv[0]);
    if (thread_count < 1 || thread_count > 4096)
        return 2;
    for (char *text = argv[1], *end; *text && point_count < POINTS_MAX; text = *end ? end + 1 : end) {
        points[point_count] = strtoull(text, &end, 10);
        if (end == text || (point_count && points[point_count] <= points[point_count - 1]))
            return 2;
        point_count++;
    }
    pthread_barrier_init(&barrier, NULL, thread_count + 1);
    pthread_t *ids = calloc(thread_count, sizeof *ids);
    for (unsigned t = 0; t < thread_count; t++)
        if (pthread_create(&ids[t], NULL, regions_worker, (void *)(uintptr_t)t) != 0)
            die("pthread_create failed");
    printf("# scale regions: %u thread(s), points", thread_count);
    for (unsigned p = 0; p < point_count; p++)
        printf(" %llu", (unsigned long long)points[p]);
    printf("; api=%s\n", api_present() ? "yes" : "no");
    for (unsigned p = 0; p < point_count; p++) {
        uint64_t interval = points[p] - (p ? points[p - 1] : 0);
        uint64_t wall = now_ns(), cpu = cpu_ns();
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        wall = now_ns() - wall;
        cpu = cpu_ns() - cpu;
        struct stats s = stats_take();
        printf("POINT mode=regions threads=%u regions=%llu interval=%llu wall_ns_per_region=%.1f "
               "cpu_ns_per_region=%.1f",
               thread_count, (unsigned long long)points[p], (unsigned long long)interval,
               (double)wall / (double)interval, (double)cpu / (double)interval);
        print_snapshot(&s);
        stats_drop(&s);
    }
    for (unsigned t = 0; t < thread_count; t++)
        pthread_join(ids[t], NULL);
    printf("# checksum %llx\n", (unsigned long long)checksum);
    return 0;
}

/* --- threads: hundreds of threads alive at once ---------------------------------------------- */

static pthread_barrier_t start_barrier, done_barrier, exit_barrier;
static uint64_t per_thread_regions;

static void *threads_worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    uint64_t state = 0x9e3779b97f4a7c15ull * (index + 1), sum = 0;
    pthread_barrier_wait(&start_barrier);
    for (uint64_t i = 0; i < per_thread_regions; i++)
        sum += small_region(&state);
    __atomic_fetch_add(&checksum, sum, __ATOMIC_RELAXED);
    pthread_barrier_wait(&done_barrier);
    pthread_barrier_wait(&exit_barrier); /* alive and idle while the main thread scans */
    return NULL;
}

static int mode_threads(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    unsigned n = (unsigned)atoi(argv[0]);
    uint64_t total = strtoull(argv[1], NULL, 10);
    unsigned count = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
    if (n < 1 || n > 4000 || total < n)
        return 2;
    per_thread_regions = total / n;
    total = per_thread_regions * n;
    pthread_barrier_init(&start_barrier, NULL, n + 1);
    pthread_barrier_init(&done_barrier, NULL, n + 1);
    pthread_barrier_init(&exit_barrier, NULL, n + 1);
    pthread_t *ids = calloc(n, sizeof *ids);
    struct stats s0 = stats_take();
    for (unsigned t = 0; t < n; t++)
        if (pthread_create(&ids[t], NULL, threads_worker, (void *)(uintptr_t)t) != 0)
            die("pthread_create failed (thread limits?)");
    uint64_t wall = now_ns(), cpu = cpu_ns();
    pthread_barrier_wait(&start_barrier);
    pthread_barrier_wait(&done_barrier);
    wall = now_ns() - wall;
    cpu = cpu_ns() - cpu;
    struct stats s1 = stats_take();
    uint64_t scans = stat_of(&s1, "scans") - stat_of(&s0, "scans");
    uint64_t pause = stat_of(&s1, "scan_ns") - stat_of(&s0, "scan_ns");
    printf("POINT mode=threads threads=%u regions=%llu wall_ns_per_region=%.1f cpu_ns_per_region=%.1f "
           "run_scans=%llu run_pause_mean_ns=%llu run_pause_max_ns=%llu",
           n, (unsigned long long)total, (double)wall / (double)total, (double)cpu / (double)total,
           (unsigned long long)scans, (unsigned long long)(scans ? pause / scans : 0),
           (unsigned long long)stat_of(&s1, "scan_pause_max_ns"));
    collects(count);
    struct stats s2 = stats_take();
    print_snapshot(&s2);
    pthread_barrier_wait(&exit_barrier);
    for (unsigned t = 0; t < n; t++)
        pthread_join(ids[t], NULL);
    struct stats s3 = stats_take();
    printf("POINT mode=threads_joined threads=%u", n);
    print_snapshot(&s3);
    stats_drop(&s0);
    stats_drop(&s1);
    stats_drop(&s2);
    stats_drop(&s3);
    printf("# checksum %llx\n", (unsigned long long)checksum);
    return 0;
}

/* --- extents: a million live heap blocks while regions run ----------------------------------- */

static volatile int background_stop;
static uint64_t background_regions; /* atomic */

static void *background_regions_worker(void *arg)
{
    (void)arg;
    uint64_t state = 0x243f6a8885a308d3ull, sum = 0, n = 0;
    while (!background_stop) {
        sum += small_region(&state);
        if ((++n & 63) == 0)
            __atomic_store_n(&background_regions, n, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&background_regions, n, __ATOMIC_RELAXED);
    __atomic_fetch_add(&checksum, sum, __ATOMIC_RELAXED);
    return NULL;
}

static int mode_extents(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    size_t n = strtoull(argv[0], NULL, 10);
    unsigned large_percent = argc > 1 ? (unsigned)atoi(argv[1]) : 100;
    unsigned count = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
    if (n < 1 || large_percent > 100)
        return 2;
    uint64_t **blocks = mmap(NULL, n * sizeof *blocks, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (blocks == MAP_FAILED)
        die("cannot map the block array");
    uint64_t state = 0x2545f4914f6cdd1dull, large = 0, bytes = 0;
    uint64_t wall = now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t r = xorshift64(&state);
        size_t size;
        if ((unsigned)(r % 100) < large_percent)
            size = ((size_t)16 << 10) + (r >> 8) % ((size_t)16 << 10), large++;
        else if ((r >> 8) % 10 < 7)
            size = 16 + (r >> 16) % 240;
        else
            size = 256 + (r >> 16) % 3840;
        uint64_t *p = malloc(size);
        if (p == NULL)
            die("out of memory building the heap");
        p[0] = (uint64_t)(uintptr_t)(i ? blocks[i - 1] : NULL);
        p[1] = i;
        blocks[i] = p;
        bytes += size;
    }
    uint64_t build_ns = now_ns() - wall;

    pthread_t background;
    int running = api_present() && pthread_create(&background, NULL, background_regions_worker, NULL) == 0;
    struct stats s0 = stats_take();
    wall = now_ns();
    printf("POINT mode=extents blocks=%zu large_blocks=%llu heap_bytes=%llu build_ns_per_block=%.1f",
           n, (unsigned long long)large, (unsigned long long)bytes, (double)build_ns / (double)n);
    collects(count);
    wall = now_ns() - wall;
    background_stop = 1;
    if (running)
        pthread_join(background, NULL);
    struct stats s1 = stats_take();
    uint64_t scans = stat_of(&s1, "scans") - stat_of(&s0, "scans");
    printf(" background_regions=%llu background_ns_per_region=%.1f all_scans=%llu all_pause_mean_ns=%llu "
           "all_concurrent_mean_ns=%llu all_bytes_mean=%llu",
           (unsigned long long)background_regions,
           background_regions ? (double)wall / (double)background_regions : 0.0, (unsigned long long)scans,
           (unsigned long long)(scans ? (stat_of(&s1, "scan_ns") - stat_of(&s0, "scan_ns")) / scans : 0),
           (unsigned long long)(scans ? (stat_of(&s1, "scan_concurrent_ns") - stat_of(&s0, "scan_concurrent_ns")) / scans : 0),
           (unsigned long long)(scans ? (stat_of(&s1, "scan_bytes") - stat_of(&s0, "scan_bytes")) / scans : 0));
    print_snapshot(&s1);
    uint64_t check = 0;
    for (size_t i = 1; i < n; i++)
        check += blocks[i][0] == (uint64_t)(uintptr_t)blocks[i - 1] && blocks[i][1] == i;
    if (check != n - 1)
        die("a heap block does not hold what was written");
    wall = now_ns();
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    uint64_t free_ns = now_ns() - wall;
    struct stats s2 = stats_take();
    printf("POINT mode=extents_freed blocks=%zu free_ns_per_block=%.1f", n, (double)free_ns / (double)n);
    print_snapshot(&s2);
    stats_drop(&s0);
    stats_drop(&s1);
    stats_drop(&s2);
    munmap(blocks, n * sizeof *blocks);
    return 0;
}

/* --- heap: 4 and 16 GiB, sparse ------------------------------------------------------------- */

static int mode_heap(int argc, char **argv)
{
    size_t heap_bytes, block_bytes = (size_t)1 << 20;
    if (argc < 1 || !parse_size(argv[0], &heap_bytes))
        return 2;
    size_t touch_every = argc > 1 ? strtoull(argv[1], NULL, 10) : 8;
    if (argc > 2 && !parse_size(argv[2], &block_bytes))
        return 2;
    unsigned count = argc > 3 ? (unsigned)atoi(argv[3]) : 5;
    if (touch_every < 1 || block_bytes < 8192 || block_bytes > heap_bytes)
        return 2;
    size_t nblocks = heap_bytes / block_bytes, pages_per_block = block_bytes / 4096 - 1;
    uint64_t **blocks = malloc(nblocks * sizeof *blocks);
    if (blocks == NULL)
        die("out of memory");
    uint64_t wall = now_ns();
    for (size_t i = 0; i < nblocks; i++)
        if ((blocks[i] = malloc(block_bytes)) == NULL)
            die("out of memory building the heap (overcommit?)");
    uint64_t alloc_ns = now_ns() - wall;
    /* Whole pages inside each block (jemalloc may start a large block anywhere in its first
     * page), every touch_every-th written: pointers into other blocks (1 in 4), small integers
     * and zeroes (1 in 4), random words (the rest). */
    uint64_t state = 0x2545f4914f6cdd1dull, touched = 0;
    wall = now_ns();
    for (size_t b = 0; b < nblocks; b++) {
        uintptr_t first = ((uintptr_t)blocks[b] + 4095) & ~(uintptr_t)4095;
        for (size_t page = b % touch_every; page < pages_per_block; page += touch_every) {
            uint64_t *words = (uint64_t *)(first + page * 4096);
            for (unsigned w = 0; w < 512; w++) {
                uint64_t r = xorshift64(&state);
                switch (r & 7) {
                case 0: case 1:
                    words[w] = (uint64_t)(uintptr_t)blocks[(((r >> 8) & 0xffffffff) * nblocks) >> 32] +
                               ((r >> 40) & (block_bytes - 8));
                    break;
                case 2: words[w] = (r >> 32) & 0xffff; break;
                case 3: words[w] = 0; break;
                default: words[w] = r; break;
                }
            }
            touched++;
        }
    }
    uint64_t fill_ns = now_ns() - wall;
    printf("POINT mode=heap heap_bytes=%zu block_bytes=%zu blocks=%zu touch_every=%zu touched_bytes=%llu "
           "alloc_ms=%.1f fill_ms=%.1f",
           nblocks * block_bytes, block_bytes, nblocks, touch_every, (unsigned long long)touched * 4096,
           (double)alloc_ns / 1e6, (double)fill_ns / 1e6);
    collects(count);
    struct stats s = stats_take();
    print_snapshot(&s);
    stats_drop(&s);
    for (size_t i = 0; i < nblocks; i++)
        free(blocks[i]);
    free(blocks);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: scale regions THREADS POINTS   (POINTS like 10000,100000,1000000)\n"
                    "       scale threads N TOTAL [COLLECTS]\n"
                    "       scale extents N [LARGE_PERCENT] [COLLECTS]\n"
                    "       scale heap SIZE [TOUCH_EVERY] [BLOCK] [COLLECTS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    int rc = 2;
    if (!strcmp(argv[1], "regions"))
        rc = mode_regions(argc - 2, argv + 2);
    else if (!strcmp(argv[1], "threads"))
        rc = mode_threads(argc - 2, argv + 2);
    else if (!strcmp(argv[1], "extents"))
        rc = mode_extents(argc - 2, argv + 2);
    else if (!strcmp(argv[1], "heap"))
        rc = mode_heap(argc - 2, argv + 2);
    if (rc == 2)
        usage();
    return rc;
}
