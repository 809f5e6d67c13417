/*
 * alloc_trace.h — backtraces of region allocations (trace_allocs) and of region begin/end.
 *
 * Layer: preload, report.
 */
#ifndef ARENASHIM_PRELOAD_ALLOC_TRACE_H
#define ARENASHIM_PRELOAD_ALLOC_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

/* Whether region begin and end record full backtraces (verbose or trace_allocs). */
extern bool alloc_trace_region_stacks;

void alloc_trace_init(void);
/* Records the allocation site of a fresh region object (its region's sample_at was reached)
 * and sets the next one. */
void alloc_trace_record(struct region *region, void *object, size_t size);
/* Interns the calling thread's backtrace, skipping our own frames; 0 when unavailable. */
uint32_t alloc_trace_capture(int32_t marker, unsigned skip);
/* The backtrace as seen from pc with the given stack pointer (a hooked function's entry or
 * return, where our own frames must not appear). */
uint32_t alloc_trace_capture_at(int32_t marker, uintptr_t pc, uintptr_t stack_pointer, bool exact_pc);

/* After each region allocation: is it one to trace?  (The region counts its allocations; a
 * thread's count carries over from region to region: core.h, region_push.) */
static inline bool alloc_trace_due(const struct region *region)
{
    return unlikely(region->allocs >= region->sample_at);
}

/* alloc_trace_record, returning object: the malloc fast path's tail call. */
void *alloc_trace_sampled(struct region *region, void *object, size_t size);

static inline void alloc_trace_maybe(struct region *region, void *object, size_t size)
{
    if (alloc_trace_due(region))
        alloc_trace_record(region, object, size);
}

#endif
