/*
 * heap_scale.c — how the allocator copes with a heap of many blocks (issue 9, item 1).
 *
 * Usage: heap_scale SIZE BLOCK [--churn N] [--touch-every K]
 *
 *   SIZE   total heap, binary units: 512M, 1G, 4G, 16G
 *   BLOCK  bytes per malloc, e.g. 64 or 4096
 *
 * An ordinary program that knows nothing of arenashim: run it bare or with LD_PRELOAD of
 * jemalloc or build/preload/libarenashim.so and compare.  Phases, each timed:
 *
 *   build   malloc SIZE/BLOCK blocks, writing the first 16 bytes of each (a value derived
 *           from its index); the pointers live in an mmap'd array, so the program's own
 *           bookkeeping never goes through the allocator under test;
 *   churn   N rounds (default 3), each frees a pseudo-random (xorshift, fixed seed) 10% of
 *           the blocks, then mallocs them again;
 *   verify  reads every block's 16 bytes back and checks them;
 *   free    frees every block.
 *
 * Prints "phase=NAME seconds=... cpu_seconds=... blocks=... rss_kib=... peak_rss_kib=..."
 * per phase and a final "checksum=... verified=..." line (the same under every allocator).
 * Exits 1 with a message when malloc fails or a block does not hold what was written.
 *
 * Memory: writing 16 bytes of a block faults in its page, so for blocks up to a page the
 * whole heap becomes resident (16G of 64-byte blocks: 16 GiB of heap plus a 2 GiB pointer
 * array).  --touch-every K writes only every K-th block and keeps a large heap sparse.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TOUCH_BYTES 16
#define CHURN_PERCENT 10
#define CHURN_SEED 0x2545f4914f6cdd1dull

static size_t block_bytes, block_count, touch_every = 1;
static void **blocks; /* mmap'd: block_count pointers */
static uint64_t checksum;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("heap_scale: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
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
    case 't': case 'T': shift = 40; end++; break;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (shift && (*end == 'b' || *end == 'B'))
        end++;
    if (*end != '\0' || value > (SIZE_MAX >> shift))
        return 0;
    *out = (size_t)value << shift;
    return 1;
}

static int parse_count(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || errno || text[0] == '-')
        return 0;
    *out = (size_t)value;
    return 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* What block i holds: two words, so that a block handed out twice or moved shows. */
static void block_value(size_t i, uint64_t word[2])
{
    word[0] = (i + 1) * 0x9e3779b97f4a7c15ull;
    word[1] = ~word[0] ^ (uint64_t)i;
}

static void fill(size_t i)
{
    void *p = malloc(block_bytes);
    if (!p)
        die("malloc(%zu) failed at block %zu of %zu (%zu MiB allocated): out of memory",
            block_bytes, i, block_count, (i * block_bytes) >> 20);
    blocks[i] = p;
    if (i % touch_every == 0) {
        uint64_t word[2];
        block_value(i, word);
        memcpy(p, word, block_bytes < TOUCH_BYTES ? block_bytes : TOUCH_BYTES);
        checksum = (checksum ^ word[0]) * 0x100000001b3ull;
    }
}

static uint64_t xorshift(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

struct phase {
    double wall, cpu;
};

static struct phase phase_begin(void)
{
    return (struct phase){now_seconds(), cpu_seconds()};
}

static void phase_end(const char *name, struct phase start, size_t count, const char *extra)
{
    double wall = now_seconds() - start.wall, cpu = cpu_seconds() - start.cpu;
    printf("phase=%s seconds=%.3f cpu_seconds=%.3f blocks=%zu rss_kib=%ld peak_rss_kib=%ld%s\n",
           name, wall, cpu, count, rss_kib(), peak_rss_kib(), extra);
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr, "usage: heap_scale SIZE BLOCK [--churn N] [--touch-every K]\n"
                    "  SIZE like 512M, 1G, 16G (binary units); BLOCK in bytes, e.g. 64 or 4096\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t heap_bytes = 0, churn_rounds = 3;
    const char *positional[2];
    int npositional = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--churn") && i + 1 < argc) {
            if (!parse_count(argv[++i], &churn_rounds))
                usage();
        } else if (!strcmp(argv[i], "--touch-every") && i + 1 < argc) {
            if (!parse_count(argv[++i], &touch_every) || touch_every == 0)
                usage();
        } else if (argv[i][0] == '-' || npositional == 2) {
            usage();
        } else {
            positional[npositional++] = argv[i];
        }
    }
    if (npositional != 2 || !parse_size(positional[0], &heap_bytes) ||
        !parse_count(positional[1], &block_bytes) || block_bytes == 0 || block_bytes > heap_bytes)
        usage();
    block_count = heap_bytes / block_bytes;

    /* MAP_NORESERVE: only the pages of the array that are written count. */
    size_t array_bytes = block_count * sizeof *blocks;
    blocks = mmap(NULL, array_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
    if (blocks == MAP_FAILED)
        die("cannot map the pointer array (%zu MiB): %s", array_bytes >> 20, strerror(errno));

    printf("heap_scale heap_bytes=%zu block_bytes=%zu blocks=%zu churn_rounds=%zu touch_every=%zu\n",
           heap_bytes, block_bytes, block_count, churn_rounds, touch_every);
    fflush(stdout);

    struct phase t = phase_begin();
    for (size_t i = 0; i < block_count; i++)
        fill(i);
    phase_end("build", t, block_count, "");

    /* Each round frees its 10% first and only then mallocs them again, so that jemalloc sees
     * whole slabs and extents go empty (and is asked to merge, purge and unmap) rather than
     * handing the same slot straight back.  The second pass replays the same xorshift
     * sequence; an index drawn twice is freed once and refilled once. */
    t = phase_begin();
    size_t per_round = block_count / (100 / CHURN_PERCENT), churned = 0;
    uint64_t rng = CHURN_SEED;
    for (size_t round = 0; round < churn_rounds; round++) {
        uint64_t replay = rng;
        for (size_t k = 0; k < per_round; k++) {
            size_t i = xorshift(&rng) % block_count;
            if (blocks[i]) {
                free(blocks[i]);
                blocks[i] = NULL;
                churned++;
            }
        }
        for (size_t k = 0; k < per_round; k++) {
            size_t i = xorshift(&replay) % block_count;
            if (!blocks[i])
                fill(i);
        }
    }
    char extra[64];
    snprintf(extra, sizeof extra, " rounds=%zu", churn_rounds);
    phase_end("churn", t, churned, extra);

    t = phase_begin();
    size_t verified = 0;
    for (size_t i = 0; i < block_count; i += touch_every) {
        uint64_t word[2], held[2] = {0, 0};
        block_value(i, word);
        size_t n = block_bytes < TOUCH_BYTES ? block_bytes : TOUCH_BYTES;
        memcpy(held, blocks[i], n);
        if (memcmp(held, word, n))
            die("block %zu at %p holds %016llx %016llx, not what was written (%016llx %016llx)", i,
                blocks[i], (unsigned long long)held[0], (unsigned long long)held[1],
                (unsigned long long)word[0], (unsigned long long)word[1]);
        verified++;
    }
    phase_end("verify", t, verified, "");

    t = phase_begin();
    for (size_t i = 0; i < block_count; i++)
        free(blocks[i]);
    phase_end("free", t, block_count, "");
    munmap(blocks, array_bytes);

    printf("checksum=%016llx verified=%zu\n", (unsigned long long)checksum, verified);
    return 0;
}
