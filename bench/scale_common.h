/*
 * scale_common.h — the ground under bench/scale.c's modes: clocks, the statistics JSON
 * (arenashim_stats_json, read by key), the process's resident set, descriptors and kernel
 * mappings, the work of one small region and region garbage for a scan to find.
 * Header-only (static functions); knows nothing of arenashim but the weak API of
 * include/arenashim.h.  (tests/hardening/programs/soak.c, a test program, has its own.)
 */
#ifndef SCALE_COMMON_H
#define SCALE_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "arenashim.h"

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread), ns. */
static inline uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static inline int api_present(void)
{
    return arenashim_region_begin && arenashim_region_end && arenashim_collect && arenashim_stats_json;
}

/* --- the statistics -------------------------------------------------------------------------- */

/* A snapshot of the statistics JSON, in a buffer of its own (malloc'd outside any region by
 * the caller's thread: call it outside regions). */
struct stats {
    char *json;
};

static inline struct stats stats_take(void)
{
    struct stats s = { NULL };
    if (!arenashim_stats_json)
        return s;
    size_t len = arenashim_stats_json(NULL, 0) + 4096; /* it may grow between the two calls */
    s.json = malloc(len);
    if (s.json)
        arenashim_stats_json(s.json, len);
    return s;
}

static inline void stats_drop(struct stats *s)
{
    free(s->json);
    s->json = NULL;
}

/* Where a top-level counter's value starts in the JSON; NULL when it is missing. */
static inline const char *stat_find(const struct stats *s, const char *key)
{
    if (s->json == NULL)
        return NULL;
    char pattern[80];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(s->json, pattern);
    return at ? at + strlen(pattern) : NULL;
}

/* A counter's value, 0 when missing: for differences only; snapshots print a missing key as
 * NA (stat_find), so a renamed counter shows instead of reading as 0. */
static inline uint64_t stat_of(const struct stats *s, const char *key)
{
    const char *at = stat_find(s, key);
    return at ? strtoull(at, NULL, 10) : 0;
}

/* --- the process ------------------------------------------------------------------------------- */

/* VmRSS from /proc/self/status, KiB. */
static inline long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static inline long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Open file descriptors (entries of /proc/self/fd, less the one opendir holds). */
static inline long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long count = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            count++;
    closedir(d);
    return count - 1;
}

/* Lines of /proc/self/maps: the kernel's mappings, counted by the program itself (the same
 * figure as the statistics' kernel_mappings, also without the preload). */
static inline long maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long count = 0;
    int c;
    if (f == NULL)
        return -1;
    while ((c = getc_unlocked(f)) != EOF)
        count += c == '\n';
    fclose(f);
    return count;
}

/* --- one small region ------------------------------------------------------------------------ */

/* The body of a small region: 4 to 11 objects of 16 to 255 bytes, linked (each holds a pointer
 * to the one before: pointer-dense memory, as real trees are), half of them freed.  About
 * 1 KiB in all.  Returns a checksum so nothing is optimised away. */
__attribute__((noinline)) static uint64_t small_region_body(uint64_t *state)
{
    uint64_t r = xorshift64(state), sum = 0;
    unsigned count = 4 + (unsigned)(r & 7);
    void *objects[12];
    void *previous = NULL;
    for (unsigned i = 0; i < count; i++) {
        size_t size = 16 + (size_t)((r >> (8 + 4 * i)) & 0xf0) + (i & 15);
        uint64_t *p = malloc(size);
        if (p == NULL) {
            fprintf(stderr, "malloc(%zu) failed in a region\n", size);
            exit(1);
        }
        p[0] = (uint64_t)(uintptr_t)previous;
        p[1] = r + i;
        previous = p;
        objects[i] = p;
        sum += p[1];
    }
    OPAQUE(previous);
    for (unsigned i = 0; i < count; i += 2)
        free(objects[i]);
    return sum;
}

/* One region through the API (plain mallocs without the preload). */
static inline uint64_t small_region(uint64_t *state)
{
    if (arenashim_region_begin)
        arenashim_region_begin();
    uint64_t sum = small_region_body(state);
    if (arenashim_region_end)
        arenashim_region_end();
    return sum;
}

/* Region garbage for a scan to find: a region of about 4 MiB of small objects that ends, so
 * whole chunks go to quarantine (arenashim_collect returns at once on an empty quarantine). */
static inline void make_garbage(void)
{
    if (!arenashim_region_begin)
        return;
    arenashim_region_begin();
    size_t total = 0;
    unsigned n = 0;
    while (total < ((size_t)4 << 20)) {
        size_t size = 32 + (n++ * 37) % 480;
        char *p = malloc(size);
        if (p == NULL)
            break;
        p[0] = 1;
        total += size;
    }
    arenashim_region_end();
}

#endif
