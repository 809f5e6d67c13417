/*
 * testutil.h — helpers shared by the integration test programs.
 *
 * The programs are ordinary C/C++ programs: they use only the public API of
 * include/arenashim.h (weak symbols, NULL when the shim is not preloaded) and never
 * arenashim's internals.  Where a check needs to know whether an object came from a
 * region it asks arenashim_heapify(), which returns its argument itself for anything
 * that is not a live region or arena object.
 */
#ifndef ARENASHIM_TESTUTIL_H
#define ARENASHIM_TESTUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arenashim.h"

#ifdef __cplusplus
extern "C" {
#endif

static int tu_failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stdout, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
            fflush(stdout);                                                                \
            tu_failures++;                                                                 \
        }                                                                                  \
    } while (0)

#define CHECKF(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stdout, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stdout, __VA_ARGS__);                                                  \
            fputc('\n', stdout);                                                           \
            fflush(stdout);                                                                \
            tu_failures++;                                                                 \
        }                                                                                  \
    } while (0)

/* Values the compiler cannot see through, so -O2 cannot fold the edge cases away. */
static inline size_t opaque_size(size_t x)
{
    volatile size_t v = x;
    return v;
}

static inline void *opaque_ptr(void *p)
{
    void *volatile v = p;
    return v;
}

static inline int shim_present(void)
{
    return arenashim_region_begin != NULL && arenashim_region_end != NULL &&
           arenashim_heapify != NULL && arenashim_stats_json != NULL;
}

/* Is p a live region (or arena) object?  Always 0 without the shim. */
static inline int in_region(const void *p)
{
    if (p == NULL || arenashim_heapify == NULL)
        return 0;
    void *copy = arenashim_heapify(p);
    if (copy == p)
        return 0;
    free(copy);
    return 1;
}

/* A counter from arenashim_stats_json(); -1 when absent (or no shim). */
static inline long long stats_counter(const char *key)
{
    static char buf[65536];
    char pattern[128];
    if (arenashim_stats_json == NULL)
        return -1;
    arenashim_stats_json(buf, sizeof buf);
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(buf, pattern);
    if (at == NULL)
        return -1;
    at += strlen(pattern);
    while (*at == ' ')
        at++;
    return strtoll(at, NULL, 10);
}

static inline int region_begin(void)
{
    return arenashim_region_begin ? arenashim_region_begin() : 0;
}

static inline void region_end(void)
{
    if (arenashim_region_end)
        arenashim_region_end();
}

static inline void fill_pattern(void *p, size_t n, unsigned seed)
{
    unsigned char *b = (unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 8));
}

static inline int check_pattern(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 31u + i * 7u + (i >> 8)))
            return 0;
    return 1;
}

/* Prints the verdict line the runner looks for and returns the exit status. */
static inline int finish(const char *what)
{
    if (!shim_present())
        printf("NOSHIM %s\n", what);
    if (tu_failures) {
        printf("%s: %d check(s) failed\n", what, tu_failures);
        fflush(stdout);
        return 1;
    }
    printf("OK %s\n", what);
    fflush(stdout);
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif
