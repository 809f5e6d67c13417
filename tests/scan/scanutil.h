/*
 * scanutil.h — helpers shared by the conservative-scan test programs (tests/scan/).
 *
 * The programs use only the public API of include/arenashim.h.  They reason about chunks by
 * number: chunk = address >> 20 with chunk_size=1M (the reservation is chunk-aligned), so a
 * chunk number is a small integer that never looks like a pointer into the reservation.
 *
 * Conservative-scan hygiene: a test that wants a chunk released must leave no stray copy of
 * the pointer anywhere the scan reads.  Pointers are therefore made and stored inside
 * noinline helpers that return only chunk numbers; before each scan the dead part of the
 * stack below the caller is overwritten and the caller-saved registers are zeroed.
 */
#ifndef ARENASHIM_SCANUTIL_H
#define ARENASHIM_SCANUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arenashim.h"

#define NOINLINE __attribute__((noinline, noclone))
#define SU_HELPER __attribute__((noinline, noclone, unused))
#define CHUNK_SHIFT 20 /* run.py sets chunk_size=1M for every program */
#define CHUNK_BYTES ((size_t)1 << CHUNK_SHIFT)
/* More than a quarter chunk: one span of a whole chunk of its own, quarantined at region end. */
#define SPAN_OBJECT_BYTES ((size_t)600 << 10)

static int su_failures __attribute__((unused));

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stdout, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stdout, __VA_ARGS__);                                                  \
            fputc('\n', stdout);                                                           \
            fflush(stdout);                                                                \
            su_failures++;                                                                 \
        }                                                                                  \
    } while (0)

static inline __attribute__((unused)) double su_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline __attribute__((unused)) void su_require_shim(void)
{
    if (!arenashim_region_begin || !arenashim_collect || !arenashim_stats_json) {
        printf("FAILED: arenashim is not preloaded\n");
        exit(3);
    }
}

/* --- statistics ------------------------------------------------------------------------ */

static char su_json[1 << 16] __attribute__((unused));

static inline __attribute__((unused)) const char *su_stats_refresh(void)
{
    size_t n = arenashim_stats_json(su_json, sizeof su_json);
    if (n >= sizeof su_json)
        printf("note: stats JSON truncated (%zu bytes)\n", n);
    return su_json;
}

/* A numeric top-level key of the JSON last read by su_stats_refresh().  A key that is not
 * there (renamed, removed) or whose value is not a number is a failure of the test, named,
 * and ends the program: no value could stand in for it without some check passing on it. */
static inline __attribute__((unused)) unsigned long long su_json_number(const char *key)
{
    size_t key_len = strlen(key);
    int depth = 0;
    for (const char *p = su_json; *p; p++) {
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        } else if (*p == '"') {
            const char *start = ++p;
            while (*p && *p != '"')
                p += p[0] == '\\' && p[1] ? 2 : 1;
            if (*p == '\0')
                break;
            if (depth == 1 && (size_t)(p - start) == key_len && memcmp(start, key, key_len) == 0 &&
                p[1] == ':') {
                const char *value = p + 2;
                while (*value == ' ')
                    value++;
                char *end;
                errno = 0;
                unsigned long long number = strtoull(value, &end, 10);
                if (end != value && *value != '-' && errno == 0)
                    return number;
                printf("FAILED scanutil.h: statistics key \"%s\" is not a number: %.40s\n", key, value);
                fflush(stdout);
                exit(1);
            }
        }
    }
    printf("FAILED scanutil.h: statistics key \"%s\" is missing from arenashim_stats_json()\n", key);
    fflush(stdout);
    exit(1);
}

static inline __attribute__((unused)) unsigned long long su_stat(const char *key)
{
    su_stats_refresh();
    return su_json_number(key);
}

/* Is chunk number `chunk` in the last scan's scan_kept list?  Copies its kind.  Takes the
 * chunk number, not its address: a caller that kept the address in its frame would keep the
 * chunk alive itself. */
SU_HELPER static int su_kept_kind(uintptr_t chunk, char *kind, size_t kind_len)
{
    uintptr_t chunk_address = chunk << CHUNK_SHIFT;
    su_stats_refresh();
    const char *list = strstr(su_json, "\"scan_kept\": [");
    if (list == NULL)
        return 0;
    const char *list_end = strchr(list, ']');
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"chunk\": \"%#" PRIxPTR "\"", chunk_address);
    const char *entry = strstr(list, pattern);
    if (entry == NULL || (list_end && entry > list_end))
        return 0;
    const char *k = strstr(entry, "\"kind\": \"");
    if (kind_len)
        kind[0] = '\0';
    if (k) {
        k += 9;
        size_t i = 0;
        while (k[i] && k[i] != '"' && i + 1 < kind_len) {
            kind[i] = k[i];
            i++;
        }
        if (kind_len)
            kind[i] = '\0';
    }
    return 1;
}

static inline __attribute__((unused)) void su_print_stats(const char *tag)
{
    su_stats_refresh();
    printf("STATS %s %s\n", tag, su_json);
    fflush(stdout);
}

/* --- hygiene --------------------------------------------------------------------------- */

/* Overwrites a large piece of the stack below the caller's frame. */
SU_HELPER static void su_clear_stack(void)
{
    volatile char buffer[256 << 10];
    memset((char *)buffer, 0, sizeof buffer);
    __asm__ volatile("" : : "r"(buffer) : "memory");
}

/* Zeroes the caller-saved general and vector registers. */
SU_HELPER static void su_scrub_registers(void)
{
    __asm__ volatile("xor %%eax, %%eax\n\t"
                     "xor %%ecx, %%ecx\n\t"
                     "xor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\t"
                     "xor %%edi, %%edi\n\t"
                     "xor %%r8d, %%r8d\n\t"
                     "xor %%r9d, %%r9d\n\t"
                     "xor %%r10d, %%r10d\n\t"
                     "xor %%r11d, %%r11d\n\t"
                     "pxor %%xmm0, %%xmm0\n\t"
                     "pxor %%xmm1, %%xmm1\n\t"
                     "pxor %%xmm2, %%xmm2\n\t"
                     "pxor %%xmm3, %%xmm3\n\t"
                     "pxor %%xmm4, %%xmm4\n\t"
                     "pxor %%xmm5, %%xmm5\n\t"
                     "pxor %%xmm6, %%xmm6\n\t"
                     "pxor %%xmm7, %%xmm7\n\t"
                     "pxor %%xmm8, %%xmm8\n\t"
                     "pxor %%xmm9, %%xmm9\n\t"
                     "pxor %%xmm10, %%xmm10\n\t"
                     "pxor %%xmm11, %%xmm11\n\t"
                     "pxor %%xmm12, %%xmm12\n\t"
                     "pxor %%xmm13, %%xmm13\n\t"
                     "pxor %%xmm14, %%xmm14\n\t"
                     "pxor %%xmm15, %%xmm15\n\t"
                     :
                     :
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0",
                       "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
}

/* A scan from a clean stack and clean registers. */
SU_HELPER static void su_collect_clean(void)
{
    su_clear_stack();
    su_scrub_registers();
    arenashim_collect();
}

/* --- dead chunks ----------------------------------------------------------------------- */

/* Makes a region whose only object is a span of `bytes` (whole chunks), ends it (the span is
 * faulted and quarantined), and hands `store` the pointer object + offset.  Returns the span's
 * first chunk number; *chunks gets its length in chunks.  The pointer itself never leaves
 * this frame except through store(). */
SU_HELPER static uintptr_t su_make_dead(size_t bytes, size_t offset, void (*store)(uintptr_t),
                                       unsigned *chunks)
{
    arenashim_region_begin();
    char *volatile object = malloc(bytes);
    if (object == NULL) {
        printf("FAILED: region malloc(%zu) returned NULL\n", bytes);
        exit(3);
    }
    memset(object, 0x5a, 64);
    uintptr_t first = (uintptr_t)object >> CHUNK_SHIFT;
    uintptr_t last = ((uintptr_t)object + bytes - 1) >> CHUNK_SHIFT;
    arenashim_region_end();
    if (store)
        store((uintptr_t)object + offset);
    object = NULL;
    if (chunks)
        *chunks = (unsigned)(last - first + 1);
    return first;
}

/* Opens a region and allocates `count` one-chunk spans (each from the ready list or fresh
 * address space, lowest available chunk first); returns how many landed in chunks
 * [first, first + chunks).  The region is ended (its chunks quarantined) before returning. */
static uint32_t su_probe_chunks[1 << 14] __attribute__((unused));
SU_HELPER static unsigned su_probe(uintptr_t first, unsigned chunks, unsigned count)
{
    unsigned hits = 0;
    if (count > sizeof su_probe_chunks / sizeof su_probe_chunks[0])
        count = sizeof su_probe_chunks / sizeof su_probe_chunks[0];
    arenashim_region_begin();
    for (unsigned i = 0; i < count; i++) {
        char *volatile q = malloc(SPAN_OBJECT_BYTES);
        if (q == NULL) {
            printf("FAILED: probe malloc returned NULL\n");
            exit(3);
        }
        q[0] = (char)i;
        uintptr_t chunk = (uintptr_t)q >> CHUNK_SHIFT;
        su_probe_chunks[i] = (uint32_t)chunk;
        if (chunk >= first && chunk < first + chunks)
            hits++;
        q = NULL;
    }
    arenashim_region_end();
    return hits;
}

/* Enough probes to cycle through every chunk ever handed out, plus a few. */
static inline __attribute__((unused)) unsigned su_probe_count(void)
{
    unsigned long long mapped = su_stat("chunks_mapped");
    return (unsigned)(mapped + 8);
}

#endif
