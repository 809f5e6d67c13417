/*
 * arenashim.h — the public API of arenashim.
 *
 * Every function here is declared weak: a program built against this header runs unchanged
 * without the preload, where each function's address is NULL.  Test before calling:
 *
 *     if (arenashim_region_begin) arenashim_region_begin();
 *
 * Regions are per thread and nest.  Inside a region malloc and friends are served by bump
 * allocation and free costs nothing; when the region ends all of its memory is faulted, so a
 * dangling access crashes with a report instead of reading another object's memory.
 */
#ifndef ARENASHIM_H
#define ARENASHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opens a region on the calling thread; returns the new nesting depth (1 for the outermost). */
__attribute__((weak)) int arenashim_region_begin(void);

/* Ends the calling thread's innermost region: its memory is faulted and quarantined. */
__attribute__((weak)) void arenashim_region_end(void);

/* Runs a conservative scan now and returns when it is done. */
__attribute__((weak)) void arenashim_collect(void);

/* Writes the statistics as one JSON object; snprintf-like: returns the length the whole
 * object needs (without the terminating NUL) and writes at most len bytes, NUL-terminated. */
__attribute__((weak)) size_t arenashim_stats_json(char *buf, size_t len);

/* An explicit arena: not tied to a thread's region stack; one arena is not for concurrent use. */
typedef struct arenashim_arena arenashim_arena;

__attribute__((weak)) arenashim_arena *arenashim_arena_new(void);
/* align: a power of two, 0 meaning 16.  Returns NULL when out of memory. */
__attribute__((weak)) void *arenashim_arena_alloc(arenashim_arena *arena, size_t size, size_t align);
/* Frees every object of the arena at once, with the same fault-and-quarantine safety as a region. */
__attribute__((weak)) void arenashim_arena_free(arenashim_arena *arena);

/* Returns a heap (jemalloc) copy of a live region or arena object, p itself for any other
 * pointer: Go's arena.Clone, for objects that must outlive their region. */
__attribute__((weak)) void *arenashim_heapify(const void *p);

#ifdef __cplusplus
}
#endif

#endif
