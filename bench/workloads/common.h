/*
 * common.h — small helpers shared by the benchmark workloads (the wl_*.c programs here) and
 * the demo program (bench/programs/request_loop.c).
 *
 * The workloads are ordinary C programs: they know nothing of arenashim (no header, no API)
 * and run unchanged under glibc, any LD_PRELOADed allocator, or arenashim with a function
 * marker on their natural per-unit function.  Every program prints one line
 * "checksum <16 hex digits>" on stdout, identical under every allocator (bench/suite.py
 * checks it), and on stderr: "loop_ns <ns>" (the time of its main loop), "start_rss_kib <KiB>"
 * (the RSS when the loop starts), "peak_rss_kib <KiB>" (VmHWM at the end) and, with
 * --rss-every K, "rss <units done> <KiB>" every K units.  Nothing here allocates.
 */
#ifndef WORKLOADS_COMMON_H
#define WORKLOADS_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define COUNT(a) (sizeof(a) / sizeof(a)[0])

/* ---- deterministic pseudo-random numbers (splitmix64) ----------------------------------- */

struct rng {
    uint64_t state;
};

static inline uint64_t rng_next(struct rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [low, high]. */
static inline unsigned rng_range(struct rng *rng, unsigned low, unsigned high)
{
    return low + (unsigned)(rng_next(rng) % (uint64_t)(high - low + 1));
}

static inline uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

#define FNV_START 0xcbf29ce484222325ull

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void die(const char *program, const char *what)
{
    fprintf(stderr, "%s: out of memory (%s)\n", program, what);
    exit(1);
}

/* ---- a growing text buffer (realloc, as real programs do) -------------------------------- */

struct text {
    char *data;
    size_t len, cap;
};

static inline void text_reserve(struct text *t, size_t more)
{
    if (t->len + more + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 256;
    while (t->len + more + 1 > cap)
        cap *= 2;
    char *data = realloc(t->data, cap);
    if (data == NULL)
        die("workload", "text buffer");
    t->data = data;
    t->cap = cap;
}

static inline void text_add(struct text *t, const char *s, size_t n)
{
    text_reserve(t, n);
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static inline void text_str(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static inline void text_char(struct text *t, char c)
{
    text_reserve(t, 1);
    t->data[t->len++] = c;
    t->data[t->len] = '\0';
}

/* Decimal, without stdio (printf-family calls are slow enough to dominate small handlers). */
static inline void text_long(struct text *t, long long v)
{
    char digits[24], *p = digits + sizeof digits;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    text_add(t, p, (size_t)(digits + sizeof digits - p));
}

/* ---- resident set size, from /proc/self/statm, without allocating ------------------------ */

static inline long rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strchr(buf, ' ');
    if (p == NULL)
        return -1;
    return strtol(p + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}

static inline void report_rss(unsigned long done)
{
    char line[64];
    int n = snprintf(line, sizeof line, "rss %lu %ld\n", done, rss_kib());
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

/* The peak resident set of this program (VmHWM), printed at exit: the runner's wait4 cannot
 * give it, since a child's ru_maxrss includes the RSS of the process that forked it. */
static inline void report_peak_rss(void)
{
    char buf[4096], line[64];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = strstr(buf, "VmHWM:");
    if (p == NULL)
        return;
    int len = snprintf(line, sizeof line, "peak_rss_kib %ld\n", strtol(p + 6, NULL, 10));
    if (len > 0 && write(2, line, (size_t)len) < 0)
        return;
}

/* The resident set when the main loop starts: libraries and the allocator's own start-up. */
static inline void report_start_rss(void)
{
    char line[64];
    int n = snprintf(line, sizeof line, "start_rss_kib %ld\n", rss_kib());
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

static inline void report_loop(uint64_t ns)
{
    char line[64];
    int n = snprintf(line, sizeof line, "loop_ns %llu\n", (unsigned long long)ns);
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

/* Parses the common options: a positive count, --rss-every K, --threads T, --leak.  Returns 0
 * on an unknown argument. */
struct options {
    unsigned long count;
    unsigned long rss_every;
    unsigned threads;
    int leak;
};

static inline int parse_options(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--leak") == 0)
            o->leak = 1;
        else if (strcmp(argv[i], "--rss-every") == 0 && i + 1 < argc)
            o->rss_every = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o->threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] >= '0' && argv[i][0] <= '9' &&
                 (o->count = strtoul(argv[i], &end, 10), *end == '\0') && o->count > 0)
            continue;
        else
            return 0;
    }
    return 1;
}

/* The single-threaded loop of a workload: make input i, run the marked function on it, fold
 * its result into the checksum; report RSS every rss_every inputs, then the loop time, the
 * peak RSS and the checksum.  The marked function is called through a pointer, which also
 * keeps it from being inlined into the loop (a marker needs a real call). */
static inline int run_workload(const struct options *o, void (*make)(struct text *, unsigned long),
                               uint64_t (*work)(const char *, size_t))
{
    struct text input = { 0 };
    uint64_t checksum = FNV_START;
    report_start_rss();
    uint64_t start = now_ns();
    if (o->rss_every)
        report_rss(0);
    for (unsigned long i = 0; i < o->count; i++) {
        make(&input, i);
        uint64_t sum = work(input.data, input.len);
        checksum = (checksum ^ sum) * 0x100000001b3ull;
        if (o->rss_every && (i + 1) % o->rss_every == 0)
            report_rss(i + 1);
    }
    report_loop(now_ns() - start);
    report_peak_rss();
    free(input.data);
    printf("checksum %016llx\n", (unsigned long long)checksum);
    return 0;
}

#endif
